"""The PyTorch + PEFT peer of one sweep trial: the same training and evaluation, timed.

Mirrors a `loraplus sweep` trial of a `bert_checkpoint` model on a `text` task: a new head,
LoRA on query/value (PEFT's names for the model's family: `query`/`value`, MPNet's `q`/`v`),
LoRA+ AdamW (PEFT's `create_loraplus_optimizer`, no weight decay), transformers' linear schedule
with warmup, batches drawn at random from the training rows (cut to the batch's longest example),
and val + test accuracy at step 0, every `--eval-interval` steps and at the end, in chunks of 256
rows, as the sweep's trial loop does. The head is the family's `*ForSequenceClassification`
head (BERT's pooler, MPNet's and RoBERTa's `classifier.dense` + `out_proj`).

Prints the median time per training step, the training and evaluation seconds, the whole
trial's wall time (model load excluded) and the final accuracies:

    scripts/fetch-data.sh
    python -m venv target/bench-venv && target/bench-venv/bin/pip install -r scripts/bench/requirements.txt
    target/bench-venv/bin/python scripts/bench/peft_trial.py --model data/all-mpnet-base-v2 --task snli
    target/bench-venv/bin/python scripts/bench/peft_trial.py --model data/all-MiniLM-L6-v2 \\
        --task rotten-tomatoes --steps 35 --eval-interval 1000 --n-val 32 --n-test 32 --device cuda
"""

import argparse
import csv
import json
import random
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

# The tasks as this project's experiments/ configs read them: files, columns, labels in order.
TASKS = {
    "rotten-tomatoes": dict(train="data/rotten-tomatoes/rotten_tomatoes_corpus_full.csv", test=None,
                            text="text", text_pair=None, label="category", labels=["rotten", "fresh"]),
    "snli": dict(train="data/snli/snli_1.0_train_subset.jsonl", test="data/snli/snli_1.0_test.jsonl",
                 text="sentence1", text_pair="sentence2", label="gold_label",
                 labels=["entailment", "neutral", "contradiction"]),
}
# PEFT's module names for query and value in each family.
TARGETS = {"bert": ["query", "value"], "roberta": ["query", "value"], "mpnet": ["q", "v"]}
EVAL_CHUNK = 256


def read_rows(path, task):
    """(text, text_pair, label index) of every row whose label is one of the task's."""
    with open(path, encoding="utf-8", newline="") as f:
        records = csv.DictReader(f) if path.endswith(".csv") else (json.loads(line) for line in f if line.strip())
        rows = [(r[task["text"]], r[task["text_pair"]] if task["text_pair"] else None, r[task["label"]])
                for r in records]
    return [(a, b, task["labels"].index(y)) for a, b, y in rows if y in task["labels"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/all-mpnet-base-v2")
    parser.add_argument("--task", choices=sorted(TASKS), default="snli")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-interval", type=int, default=100)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--max-seq-len", type=int, default=64)
    parser.add_argument("--eta-a", type=float, default=1e-3)
    parser.add_argument("--ratio", type=float, default=8.0)
    parser.add_argument("--warmup-steps", type=int, default=30)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    args = parser.parse_args()

    torch.manual_seed(0)
    rng = random.Random(0)
    device = torch.device(args.device)
    task = TASKS[args.task]
    train = read_rows(task["train"], task)
    rng.shuffle(train)
    val, train = train[:args.n_val], train[args.n_val:]
    if task["test"]:
        test = read_rows(task["test"], task)
        rng.shuffle(test)
    else:
        test, train = train[:args.n_test], train[args.n_test:]
    test = test[:args.n_test]

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(task["labels"]), hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.lora_dropout,
                      target_modules=TARGETS[model.config.model_type], modules_to_save=["classifier"])
    model = get_peft_model(model, lora).to(device)
    optimizer = create_loraplus_optimizer(model, torch.optim.AdamW, lr=args.eta_a,
                                          loraplus_lr_ratio=args.ratio, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, args.warmup_steps, args.steps)

    def encode(rows):
        first = [a for a, _, _ in rows]
        second = [b for _, b, _ in rows] if task["text_pair"] else None
        encoded = tokenizer(first, second, truncation=True, max_length=args.max_seq_len, padding=True,
                            return_tensors="pt").to(device)
        return encoded, torch.tensor([y for _, _, y in rows], device=device)

    def accuracy(rows):
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(rows), EVAL_CHUNK):
                encoded, labels = encode(rows[start:start + EVAL_CHUNK])
                correct += (model(**encoded).logits.argmax(-1) == labels).sum().item()
        model.train()
        return correct / len(rows)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    step_seconds, eval_seconds = [], 0.0
    started = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.eval_interval == 0 or step == args.steps:
            sync()
            eval_started = time.perf_counter()
            val_accuracy, test_accuracy = accuracy(val), accuracy(test)
            eval_seconds += time.perf_counter() - eval_started
        if step == args.steps:
            break
        step_started = time.perf_counter()
        encoded, labels = encode(rng.sample(train, args.batch_size))
        loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        loss.item()  # a host read every step: the trial loop checks each step's loss for divergence
        sync()
        step_seconds.append(time.perf_counter() - step_started)
    total = time.perf_counter() - started

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"peft {args.device} ({name}), torch {torch.__version__}, {args.model} on {args.task}: "
          f"{args.steps} steps of {args.batch_size}, {statistics.median(step_seconds) * 1000:.1f} ms/step (median); "
          f"training {sum(step_seconds):.1f} s, evaluation {eval_seconds:.1f} s, trial {total:.1f} s; "
          f"val accuracy {val_accuracy:.4f}, test accuracy {test_accuracy:.4f}")


if __name__ == "__main__":
    main()
