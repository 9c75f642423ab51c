#!/usr/bin/env bash
# Runs a study, experiments/STUDY.toml -> results/STUDY, and commits its trial records (with a
# report of them) to git every INTERVAL seconds (default 600) and at the end, so an interrupted
# study resumes from its last commit instead of starting over (`loraplus sweep` skips every
# finished record).
#
#   scripts/run-study.sh STUDY [INTERVAL] [-- SWEEP OPTIONS...]
#
# Only results/STUDY is committed (`git commit -- PATH`); other work in the tree is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:?usage: scripts/run-study.sh STUDY [INTERVAL] [-- SWEEP OPTIONS...]}
shift
interval=600
if [ $# -gt 0 ] && [ "$1" != "--" ]; then interval=$1; shift; fi
[ "${1:-}" = "--" ] && shift
config=experiments/$study.toml
out=results/$study
[ -f "$config" ] || { echo "error: no study config $config" >&2; exit 1; }

# LORAPLUS names a binary built earlier, so a study can run while the tree is mid-edit.
if [ -z "${LORAPLUS:-}" ]; then
  cargo build --quiet --release --workspace
fi
loraplus=${LORAPLUS:-${CARGO_TARGET_DIR:-target}/release/loraplus}
# Commits the records so far with a report of them (it names the pairs still incomplete), so the
# committed folder is a consistent partial study at every point.
commit() {
  local n
  n=$(find "$out/trials" -name '*.json' 2>/dev/null | wc -l)
  # A study with no record yet has no report either; committing it would leave a folder that
  # `report` cannot rebuild.
  [ "$n" -gt 0 ] || return 0
  "$loraplus" report "$out" > /dev/null 2>&1 || true
  git add -- "$out" 2>/dev/null || return 0
  git commit --quiet -m "$study: $n trial records" -- "$out" 2>/dev/null || true
}
"$loraplus" sweep "$config" --out "$out" "$@" &
sweep=$!
# set -e would end the trap at the killed sweep's non-zero status, before the commit.
trap 'kill $sweep 2>/dev/null || true; wait $sweep || true; commit; exit 130' INT TERM
status=0
while true; do
  sleep "$interval" &
  sleeper=$!
  finished=
  wait -n -p finished "$sweep" "$sleeper" || status=$?
  if [ "$finished" = "$sweep" ]; then
    kill "$sleeper" 2>/dev/null || true
    break
  fi
  status=0
  commit
done
commit
exit "$status"
