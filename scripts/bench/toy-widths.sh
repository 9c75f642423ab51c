#!/usr/bin/env bash
# One LoRA+ trial of the toy width-n network at several widths: milliseconds per step, the
# step's achieved GFLOP/s, and the trial process's peak resident memory.
#
#   scripts/bench/toy-widths.sh [WIDTH ...]      (default 256 1024 4096)
#
# Each width runs as its own `loraplus sweep` process on a one-trial config (a shifted-teacher task,
# 32-d inputs, 4 classes, batch 32, rank 8 on the n x n layer, 300 steps after a 100-step
# pretraining of the base), so the peak memory is that trial's (with its pretraining, which
# holds the same model). ms/step comes from the trial record's wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
widths=("$@")
[ ${#widths[@]} -gt 0 ] || widths=(256 1024 4096)
steps=300
cargo build --quiet --release --workspace
bin=${CARGO_TARGET_DIR:-target}/release/loraplus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%-6s %10s %9s %10s %12s\n' width "ms/step" "GFLOP/s" "peak MB" "parameters"
for n in "${widths[@]}"; do
  cat >"$work/toy$n.toml" <<EOF
name = "toy$n"
seeds = [0]
[grid]
eta_a = [1e-3]
ratio = [16]
[train]
steps = $steps
batch_size = 32
eval_interval = $steps
[lora]
rank = 8
alpha = 16
[[task]]
name = "teacher"
kind = "teacher"
d_input = 32
n_classes = 4
teacher_width = 32
n_train = 4000
n_val = 500
n_test = 500
[[task]]
name = "shift"
kind = "teacher"
d_input = 32
n_classes = 4
teacher_width = 32
shift_rank = 2
shift_scale = 2.0
shift_seed = 11
n_train = 4000
n_val = 500
n_test = 500
[[model]]
name = "toy$n"
kind = "toy"
width = $n
pretrain = { task = "teacher", steps = 100, lr = 5e-4, batch_size = 32 }
EOF
  # Peak RSS of the child process, from the kernel's accounting (no /usr/bin/time needed).
  peak_kb=$(python3 - "$bin" "$work/toy$n.toml" "$work/out$n" <<'PY'
import resource, subprocess, sys
run = subprocess.run([sys.argv[1], "sweep", sys.argv[2], "--out", sys.argv[3]],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if run.returncode != 0:
    sys.exit(run.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
)
  python3 - "$n" "$steps" "$peak_kb" "$work/out$n" <<'PY'
import glob, json, sys
n, steps, peak_kb, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
record = [json.load(open(p)) for p in glob.glob(f"{out}/trials/*.json") if "/base" not in p]
record = next(r for r in record if r.get("method") != "head_only")
ms = record["wall_seconds"] / steps * 1e3
# Forward matmul work of one batch: 32 x (32 -> n -> n -> 4), plus the rank-8 path; a LoRA step
# is about twice that (activation gradients; frozen weights get none).
forward = 2 * 32 * (32 * n + n * n + n * 4 + 2 * 8 * n)
params = 32 * n + n + n * n + n + n * 4 + 4
print(f"{n:<6} {ms:>10.2f} {2 * forward / (ms / 1e3) / 1e9:>9.1f} {peak_kb / 1024:>10.0f} {params:>12}")
PY
done
