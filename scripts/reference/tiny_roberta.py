#!/usr/bin/env python3
"""A tiny random RoBERTa and what transformers computes with it, for the RoBERTa parity test.

No RoBERTa checkpoint ships in a package these machines reach, so this writes one: a byte-level
BPE tokenizer trained with the `tokenizers` package on a few sentences (vocabulary 300, RoBERTa's
special tokens and post-processor), and a RobertaForSequenceClassification (width 32, 2 layers,
4 heads, 3 classes, random weights from seed 0) saved by `save_pretrained`. Then it encodes the
same batch as bert_reference.py (three sentences and a pair, padded to the longest) and records the
token ids, the encoder's hidden states and the classifier's logits.

Regenerate (from the repository root; packages pinned in scripts/reference/requirements.txt):

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install -r scripts/reference/requirements.txt
    /tmp/refvenv/bin/python scripts/reference/tiny_roberta.py crates/model/tests/fixtures/tiny-roberta
"""

import json
import os
import sys

import torch
import transformers
from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing
from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

CORPUS = [
    "The movie was great!",
    "A dull, lifeless film that never finds its footing.",
    "Is the plot any good? The plot is thin but the acting saves it.",
    "Two dogs run across a snowy field.",
    "A man is playing a guitar on stage.",
    "Nobody is outside; the street is empty.",
]
INPUTS = [
    {"text": "The movie was great!", "text_pair": None},
    {"text": "A dull film that never finds its footing.", "text_pair": None},
    {"text": "Café crème: a naïve résumé.", "text_pair": None},
    {"text": "Two dogs run across a field.", "text_pair": "Nobody is outside."},
]
MAX_LENGTH = 32


def rows(tensor):
    return [[round(float(v), 9) for v in row] for row in tensor.tolist()]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    bpe.save(os.path.join(out, "tokenizer.json"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(out, "tokenizer.json"),
                                        bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, max_position_embeddings=MAX_LENGTH + 2,
                           type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=3,
                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                           # Weights large enough that outputs, logits too, are far from uniform.
                           initializer_range=0.4)
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(out)

    features = [tokenizer(x["text"], x["text_pair"], truncation=True, max_length=MAX_LENGTH) for x in INPUTS]
    batch = tokenizer.pad(features, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    fixture = {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "inputs": INPUTS,
        "max_length": MAX_LENGTH,
        "input_ids": batch["input_ids"].tolist(),
        "attention_mask": batch["attention_mask"].tolist(),
        "last_hidden_state": [rows(h) for h in hidden],
        "logits": rows(logits),
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
