"""The PyTorch + PEFT side of the MiniLM trial benchmark (`loraplus bench experiments/bench-minilm.toml`).

Runs the same trial as the bench: all-MiniLM-L6-v2 with a new 2-class head, LoRA rank 8 (alpha 16,
dropout 0.05) on query/value, LoRA+ AdamW (PEFT's `create_loraplus_optimizer`, ratio 16), dropout
0.1, batches of 32 Rotten Tomatoes sentences truncated to 64 tokens, and prints the median time
per training step and the trials per hour that implies for a trial of `--trial-steps` steps.
PEFT runs trials one at a time; there is no stacked counterpart.

    python -m venv .venv && .venv/bin/pip install -r scripts/bench/requirements.txt
    scripts/fetch-data.sh
    .venv/bin/python scripts/bench/peft_minilm.py --device cuda   # or cpu
"""

import argparse
import csv
import random
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

MODEL = "data/all-MiniLM-L6-v2"
CORPUS = "data/rotten-tomatoes/rotten_tomatoes_corpus_full.csv"


def sentences():
    with open(CORPUS, encoding="utf-8", newline="") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)]
    return [(text, int(label == "fresh")) for text, label in rows if label in ("fresh", "rotten")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps (after 5 warm-up steps)")
    parser.add_argument("--trial-steps", type=int, default=300, help="steps per trial, for trials/hour")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForSequenceClassification.from_pretrained(
        MODEL, num_labels=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1
    )
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "value"],
                      modules_to_save=["classifier"])
    model = get_peft_model(model, lora).to(device)
    model.train()
    optimizer = create_loraplus_optimizer(model, torch.optim.AdamW, lr=4e-4, loraplus_lr_ratio=16)

    data = sentences()
    rng = random.Random(0)

    def step():
        batch = rng.sample(data, args.batch_size)
        encoded = tokenizer([t for t, _ in batch], truncation=True, max_length=64, padding=True,
                            return_tensors="pt").to(device)
        labels = torch.tensor([y for _, y in batch], device=device)
        loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()  # a host read every step, as the trial loop's divergence check needs

    for _ in range(5):
        step()
    times = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    per_step = statistics.median(times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"peft {args.device} ({name}), torch {torch.__version__}: batch {args.batch_size} x seq <= 64, "
          f"{per_step * 1000:.1f} ms/step (median of {args.steps}), "
          f"{3600 / (per_step * args.trial_steps):.1f} trials/hour of {args.trial_steps} steps")


if __name__ == "__main__":
    main()
