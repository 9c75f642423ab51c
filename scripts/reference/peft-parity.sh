#!/usr/bin/env bash
# Regenerates crates/sweep/tests/fixtures/peft/: this project's adapters against PEFT's, both ways.
#
#   scripts/reference/peft-parity.sh
#
# 1. Trains a few steps of a real MiniLM trial (scripts/reference/peft-parity.toml) and exports it
#    with --merged.
# 2. scripts/reference/peft_parity.py (transformers + peft, pinned in requirements.txt, in a
#    throwaway virtual environment, target/peft-venv; REFERENCE_VENV puts it elsewhere) loads that
#    adapter with PeftModel.from_pretrained and the merged checkpoint with plain transformers,
#    makes an adapter of its own with PEFT, and writes every output to the fixture.
#
# CI then checks, without PyTorch, that this project reproduces those outputs
# (tests/peft_parity.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${REFERENCE_VENV:-target/peft-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import peft, transformers, torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/reference/requirements.txt
fi
scripts/fetch-data.sh > /dev/null
cargo build --quiet
work=target/peft-parity
rm -rf "$work"
target/debug/loraplus sweep scripts/reference/peft-parity.toml --out "$work/sweep" --jobs 1 > /dev/null
trial=$(basename "$(ls "$work"/sweep/trials/*.json)" .json)
target/debug/loraplus export "$work/sweep" --out "$work/export" --trial "$trial" --merged
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" scripts/reference/peft_parity.py \
  --base data/all-MiniLM-L6-v2 --ours "$work/export/trial-$trial" --out crates/sweep/tests/fixtures/peft
