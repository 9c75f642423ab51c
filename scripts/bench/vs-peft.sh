#!/usr/bin/env bash
# Train-step speed against PyTorch + PEFT, side by side on this machine:
#
#   scripts/bench/vs-peft.sh [ROUNDS] [MODEL]     (default 5 rounds of minilm; or mpnet)
#
# The same workload on both sides: all-MiniLM-L6-v2 (or all-mpnet-base-v2) size, fp32, CPU, batch
# 32 x seq 64, dropout
# 0.1, one AdamW step; LoRA r = 8 on query/value with LoRA+ (ratio 16), and full fine-tuning.
# Each round runs ours (`cargo bench --bench train_step`, Burn's flex backend) and the peer
# (scripts/bench/peft_step.py) one after the other, so machine noise hits both alike; the table
# gives the median over rounds of each side's median step, as samples/s, and their ratios, and
# each workload's peak resident memory (one process per workload on each side).
#
# The peer's packages (pinned in scripts/bench/requirements.txt) go into a throwaway virtual
# environment, target/bench-venv (set BENCH_VENV to put it elsewhere); the first run downloads
# PyTorch (a few GB with its CUDA libraries, unused here).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
model=${2:-minilm}
case "$model" in minilm | mpnet) ;; *) echo "vs-peft.sh: MODEL '$model': expected minilm or mpnet" >&2; exit 2 ;; esac
venv=${BENCH_VENV:-target/bench-venv}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import peft, transformers, torch" 2>/dev/null; then
  echo "installing the peer into $venv (scripts/bench/requirements.txt)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/bench/requirements.txt
fi
scripts/fetch-data.sh >/dev/null
cargo bench --workspace --bench train_step --no-run 2>/dev/null

# One process per workload on both sides, so each process's peak resident memory is that
# workload's.
ours() { cargo bench --quiet --workspace --bench train_step -- --model "$model" --rounds 3 --backend flex --variant "$1" --brief 2>/dev/null; }
# The peer's warnings (e.g. the new head's weights missing from the checkpoint) go to a log.
peer() { "$venv/bin/python" scripts/bench/peft_step.py --model "$model" --mode "$1" --steps 3 2>>"$venv/peer.log"; }

declare -A ms mb
for round in $(seq "$rounds"); do
  for mode in lora full; do
    variant=$([ "$mode" = lora ] && echo lora+ || echo full)
    read -r _ step _ peak < <(ours "$variant")
    ms[ours_$mode]+="$step "
    mb[ours_$mode]+="$peak "
    read -r _ step _ peak < <(peer "$mode")
    ms[peer_$mode]+="$step "
    mb[peer_$mode]+="$peak "
  done
  echo "round $round/$rounds done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A med
for key in ours_lora ours_full peer_lora peer_full; do
  med[$key]=$(echo "${ms[$key]}" | median)
  med[${key}_mb]=$(echo "${mb[$key]}" | median)
done

python3 - "${med[ours_lora]}" "${med[ours_full]}" "${med[peer_lora]}" "${med[peer_full]}" \
  "${med[ours_lora_mb]}" "${med[ours_full_mb]}" "${med[peer_lora_mb]}" "${med[peer_full_mb]}" "$rounds" "$model" <<'PY'
import os, platform, sys
model = sys.argv.pop()
ours_lora, ours_full, peer_lora, peer_full, ours_lora_mb, ours_full_mb, peer_lora_mb, peer_full_mb, rounds = map(float, sys.argv[1:])
sps = lambda ms: 32 / (ms / 1000)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"train step, {model} size, batch 32 x seq 64, fp32, {os.cpu_count()} cores ({cpu}); medians of {int(rounds)} rounds\n")
print(f"{'workload':<12} {'ours ms':>9} {'peft ms':>9} {'ours samples/s':>15} {'peft samples/s':>15} {'ours / peft':>12} {'ours MB':>8} {'peft MB':>8}")
for name, ours, peer, ours_mb, peer_mb in [("LoRA+ r=8", ours_lora, peer_lora, ours_lora_mb, peer_lora_mb),
                                           ("full FT", ours_full, peer_full, ours_full_mb, peer_full_mb)]:
    print(f"{name:<12} {ours:>9.1f} {peer:>9.1f} {sps(ours):>15.1f} {sps(peer):>15.1f} {sps(ours) / sps(peer):>11.2f}x {ours_mb:>8.0f} {peer_mb:>8.0f}")
print(f"\nLoRA+ step / full step: ours {ours_lora / ours_full:.2f}x, peft {peer_lora / peer_full:.2f}x")
print("MB: peak resident memory of the process running the workload")
PY
