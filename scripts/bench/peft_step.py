"""The PyTorch + PEFT side of the train-step benchmark (`scripts/bench/vs-peft.sh`).

The same workload as `cargo bench --bench train_step -- --model minilm|mpnet`: all-MiniLM-L6-v2 or
all-mpnet-base-v2 (`--model`; fp32, CPU) with a new 2-class head, dropout 0.1, batches of 32 x 64 token ids (random, fixed: every step does the same
work), one AdamW step per batch:

- `--mode lora`: LoRA r = 8, alpha 16, no adapter dropout, on query/value (MPNet's `q`/`v`),
  head trained, with
  PEFT's `create_loraplus_optimizer` (ratio 16);
- `--mode full`: every parameter trained, plain AdamW.

Threads are pinned to this machine's cores (`torch.set_num_threads`). Prints one line:
`<mode> <median ms/step> <samples/s> <peak MB>` over `--steps` timed steps after 3 warm-up steps.
"""

import argparse
import resource
import os
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import AutoModelForSequenceClassification

MODELS = {"minilm": "data/all-MiniLM-L6-v2", "mpnet": "data/all-mpnet-base-v2"}
# PEFT's module names for query and value in each family.
TARGETS = {"bert": ["query", "value"], "mpnet": ["q", "v"]}
BATCH, SEQ = 32, 64


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["lora", "full"], required=True)
    parser.add_argument("--model", choices=sorted(MODELS), default="minilm")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 3 warm-up steps)")
    args = parser.parse_args()

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        MODELS[args.model], num_labels=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1
    )
    if args.mode == "lora":
        config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS[model.config.model_type],
                            modules_to_save=["classifier"])
        model = get_peft_model(model, config)
        optimizer = create_loraplus_optimizer(model, torch.optim.AdamW, lr=1e-4, loraplus_lr_ratio=16)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    model.train()

    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(0, model.config.vocab_size, (BATCH, SEQ), generator=generator)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    labels = torch.randint(0, 2, (BATCH,), generator=generator)

    def step():
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    ms = statistics.median(times) * 1000
    # Peak resident memory of this process (the model, one batch's activations, the optimizer).
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.mode} {ms:.1f} {BATCH / (ms / 1000):.2f} {peak_mb:.0f}")


if __name__ == "__main__":
    main()
