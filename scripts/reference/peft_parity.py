#!/usr/bin/env python3
"""This project's adapters against PEFT's, both ways, with the original implementations.

Run by scripts/reference/peft-parity.sh (which trains and exports the adapter first); it needs the
packages of scripts/reference/requirements.txt (torch, transformers, peft).

What it checks and writes to OUT (the committed fixture, read by tests/peft_parity.rs):

1. ``ours/``: the adapter this project trained and exported (copied from --ours), loaded with
   ``PeftModel.from_pretrained`` on the MiniLM checkpoint, by exactly the lines the README's
   "Use the best adapter" section shows (``peft_logits`` below). Its logits on SENTENCES go to
   ``parity.json`` as ``ours_in_peft``.
2. ``peft-made/``: an adapter PEFT makes itself (random non-zero A and B, ``init_lora_weights=False``,
   rank 4 on query, key, value and the three dense layers, the head saved whole), saved with
   ``save_pretrained``; its logits in PEFT go to ``peft_made_in_peft``.
3. The merged checkpoint this project exported (--ours/merged), loaded with plain transformers
   (no PEFT): its logits go to ``merged_in_transformers`` and must equal (1) to 1e-4.

Every model is float32, in eval mode, without gradients; MiniLM is mean-pooled, so the logits are
the head applied to the attention-mask-weighted mean of the last hidden state.
"""

import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

SENTENCES = [
    "A warm, funny and generous film.",
    "Dull, lifeless and far too long.",
    "Café crème brûlée: a naïve résumé of 1999's best.",
    "The plot is thin but the acting saves it.",
]
MAX_LENGTH = 32
TOLERANCE = 1e-4


def peft_logits(base, adapter, texts):
    # The README's snippet, line for line: the adapter in PEFT, mean pooling, the trained head.
    tokenizer = AutoTokenizer.from_pretrained(base)
    labels = json.load(open(f"{adapter}/labels.json"))
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels)), adapter).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    hidden = model.base_model.model.bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    logits = model.base_model.model.classifier((hidden * mask).sum(1) / mask.sum(1))
    return logits


def mean_pooled_logits(bert, classifier, batch):
    hidden = bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return classifier((hidden * mask).sum(1) / mask.sum(1))


def peft_made(base, out, batch):
    """A rank-4 adapter PEFT initialises at random, saved, and its logits."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=r"bert\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)",
        init_lora_weights=False,
        modules_to_save=["classifier"],
        task_type="SEQ_CLS",
    )
    model = get_peft_model(model, config).eval()
    model.save_pretrained(out)
    with open(os.path.join(out, "labels.json"), "w") as f:
        json.dump(["0", "1"], f)
    # The configured base is the local checkpoint's path; the test gives its own.
    inner = model.base_model.model
    return mean_pooled_logits(inner.bert, inner.classifier, batch)


def rows(tensor):
    return [[float(f"{v:.9g}") for v in row] for row in tensor.tolist()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the MiniLM checkpoint folder")
    parser.add_argument("--ours", required=True, help="this project's export folder (with merged/)")
    parser.add_argument("--out", required=True, help="the fixture folder")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    ours = os.path.join(args.out, "ours")
    shutil.rmtree(ours, ignore_errors=True)
    os.makedirs(ours)
    for name in ["adapter_model.safetensors", "labels.json"]:
        shutil.copy(os.path.join(args.ours, name), ours)
    # The export names its base by an absolute path of the machine that made it; the fixture, by
    # the path the repository's data folder gives it.
    with open(os.path.join(args.ours, "adapter_config.json")) as f:
        config = json.load(f)
    config["base_model_name_or_path"] = args.base
    with open(os.path.join(ours, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.no_grad():
        ours_in_peft = peft_logits(args.base, ours, SENTENCES)
        made = os.path.join(args.out, "peft-made")
        shutil.rmtree(made, ignore_errors=True)
        peft_made_in_peft = peft_made(args.base, made, batch)
        merged_dir = os.path.join(args.ours, "merged")
        merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
        merged_in_transformers = mean_pooled_logits(merged.bert, merged.classifier, batch)

    gap = (merged_in_transformers - ours_in_peft).abs().max().item()
    print(f"merged checkpoint in transformers vs adapter in PEFT: max |difference| {gap:.2e}")
    if gap > TOLERANCE:
        sys.exit(f"the merged checkpoint's logits differ from the adapter's by {gap} > {TOLERANCE}")
    fixture = {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "sentences": SENTENCES,
        "max_length": MAX_LENGTH,
        "ours_in_peft": rows(ours_in_peft),
        "peft_made_in_peft": rows(peft_made_in_peft),
        "merged_in_transformers": rows(merged_in_transformers),
    }
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
