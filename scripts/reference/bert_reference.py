#!/usr/bin/env python3
"""Reference BERT encoder outputs from the original implementation (HF transformers + torch).

What it computes
----------------
Given a local Hugging Face BERT-architecture checkpoint folder (config.json,
model.safetensors, tokenizer files), it loads the tokenizer and encoder with
``AutoTokenizer.from_pretrained(folder)`` / ``AutoModel.from_pretrained(folder)``
(float32, eval mode, no grad, offline) and runs a fixed batch of 4 inputs:

  * 3 single sentences of different lengths (one with non-ASCII text), and
  * 1 sentence pair (text, text_pair), so token_type_ids are 1 on the 2nd segment.

All 4 are tokenized together with padding=True (pad to longest), truncation=True,
max_length=32. It writes JSON with:

  model_folder, torch_version, transformers_version, inputs [{text, text_pair}],
  max_length, hidden_size,
  input_ids [B][L], token_type_ids [B][L], attention_mask [B][L],
  last_hidden_state [B][L][H]   -- outputs.last_hidden_state (incl. pad positions),
  mean_pooled [B][H]            -- attention-mask-weighted mean of last_hidden_state
                                   over tokens, NOT L2-normalized.

Floats are written with 9 significant digits (round-trips float32).
Nothing here is specific to MiniLM; any BERT-family checkpoint folder works (BERT, RoBERTa, MPNet:
the MPNet fixture, crates/model/tests/fixtures/bert-reference-mpnet.json, comes from
data/all-mpnet-base-v2).

How to regenerate the committed fixture (from the repository root)
------------------------------------------------------------------
    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install -r scripts/reference/requirements.txt
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 /tmp/refvenv/bin/python \\
        scripts/reference/bert_reference.py data/all-MiniLM-L6-v2 \\
        --out crates/model/tests/fixtures/bert-reference-minilm.json
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

MAX_LENGTH = 32

INPUTS = [
    {"text": "The movie was great!", "text_pair": None},
    {"text": "A dull, lifeless film that never finds its footing.", "text_pair": None},
    {"text": "Café crème brûlée: a naïve résumé of 1999's best.", "text_pair": None},
    {"text": "Is the plot any good?", "text_pair": "The plot is thin but the acting saves it."},
]


class F32(float):
    """Float that serializes with 9 significant digits (enough for float32)."""

    def __repr__(self):
        return format(self, ".9g")


def to_f32_lists(t):
    if t.dim() == 0:
        return F32(t.item())
    return [to_f32_lists(x) for x in t]


def encode(obj):
    """Minimal JSON writer so floats use 9 significant digits."""
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, F32):
        v = float(obj)
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("non-finite value in output")
        return format(v, ".9g")
    if isinstance(obj, (int, float)):
        return json.dumps(obj)
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {encode(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(encode(v) for v in obj) + "]"
    raise TypeError(type(obj))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_folder")
    ap.add_argument("--out", default=None, help="output path (default: stdout)")
    args = ap.parse_args()

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model_folder)
    model = AutoModel.from_pretrained(args.model_folder, dtype=torch.float32)
    model = model.float().eval()

    texts = [x["text"] for x in INPUTS]
    pairs = [x["text_pair"] for x in INPUTS]
    # A mixed batch (some items with text_pair=None) cannot go through a single
    # tokenizer() call, so encode each item (truncation=True, max_length) and
    # then pad all 4 together to the longest (== padding=True on the batch).
    features = [
        tokenizer(t, p, truncation=True, max_length=MAX_LENGTH,
                  return_attention_mask=True, return_token_type_ids=True)
        for t, p in zip(texts, pairs)
    ]
    batch = tokenizer.pad(features, padding=True, return_tensors="pt",
                          return_attention_mask=True)

    # MPNet has no token types (its model takes none); BERT's and RoBERTa's get them.
    types = {"token_type_ids": batch["token_type_ids"]} if getattr(model.config, "type_vocab_size", 0) else {}
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"], **types)
    hs = out.last_hidden_state.float()
    mask = batch["attention_mask"].unsqueeze(-1).to(hs.dtype)
    mean_pooled = (hs * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    result = {
        "model_folder": args.model_folder,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "inputs": INPUTS,
        "max_length": MAX_LENGTH,
        "hidden_size": int(model.config.hidden_size),
        "input_ids": batch["input_ids"].tolist(),
        "token_type_ids": batch["token_type_ids"].tolist(),
        "attention_mask": batch["attention_mask"].tolist(),
        "last_hidden_state": to_f32_lists(hs),
        "mean_pooled": to_f32_lists(mean_pooled),
    }
    text = encode(result) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
