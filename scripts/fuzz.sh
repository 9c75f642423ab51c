#!/usr/bin/env bash
# Fuzzes the sweep-config parser and the data loaders for a bounded time (cargo-fuzz, libFuzzer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each TARGET (default: all four) for SECONDS (default: 60), one after another:
#
#   config          SweepConfig::parse on any text (with fuzz/config.dict), then the model checks
#                   (run::setup::check_models), plan::expand and each trial's id and steps
#   config_values   the same on valid configs (experiments/quick.toml, fuzz/seeds/config/) whose
#                   numbers and lists the input overwrites: reaches the value checks, the models
#                   built to check adapters and the expansion, which text rarely gets past parsing
#   table           rows_from_bytes (what read_rows reads) as CSV, TSV, JSON lines and Orange
#                   .tab, with each column layout of the fixtures
#   images          pixel_csv_from_bytes (label first and last) and idx_from_bytes on an IDX pair
#
# The corpus in fuzz/corpus/<target>/ is seeded from experiments/*.toml, fuzz/seeds/config/ and
# crates/data/tests/fixtures/, and grows across runs (it is not committed). A crash stops its
# target and leaves the input in fuzz/artifacts/<target>/; the script goes on with the other
# targets and exits 1. Replay one with (FUZZ_PRINT_CONFIG=1 prints the config config_values made)
#
#   cd fuzz && cargo +nightly fuzz run --codegen-units 16 <target> artifacts/<target>/<file>
#
# Installs cargo-fuzz when it is missing; needs the nightly toolchain (rustup toolchain install
# nightly). The first run builds the instrumented workspace into fuzz/target (Burn included:
# many minutes); later runs reuse it.
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config config_values table images)

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
fixtures="$root/crates/data/tests/fixtures"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seed() {
    local corpus="$fuzz/corpus/$1"
    mkdir -p "$corpus"
    case "$1" in
        config) cp "$root"/experiments/*.toml "$fuzz"/seeds/config/*.toml "$corpus/" ;;
        config_values) ;; # Its input is edits, not text: it starts from nothing.
        table) cp "$fixtures"/*.csv "$fixtures"/*.tsv "$fixtures"/*.jsonl "$fixtures"/*.tab "$corpus/" ;;
        images)
            cp "$fixtures"/pixels.csv "$fixtures"/bad-pixel.csv "$corpus/"
            # The images target reads its input as [image file length: u16 LE][image file][label
            # file]: here two 2x2 images and their labels.
            {
                printf '\x18\x00'
                printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02'
                printf '\x00\x40\x80\xff\x10\x20\x30\x40'
                printf '\x00\x00\x08\x01\x00\x00\x00\x02\x07\x03'
            } >"$corpus/idx-pair"
            ;;
    esac
}

# The same flags for building and running, so the build is reused: optimised, with debug
# assertions (overflow checks), AddressSanitizer, and 16 codegen units (Burn builds much faster).
flags=(--codegen-units 16)
cd "$fuzz"
cargo +nightly fuzz build "${flags[@]}"

status=0
for target in "${targets[@]}"; do
    seed "$target"
    echo "== $target: ${seconds}s"
    # Memory: parsing a config builds a throwaway copy of each model, up to 10^9 parameters
    # (MAX_PARAMETERS in crates/sweep/src/zoo.rs: one tensor of at most 4 GB, and adapters of up
    # to twice the weights), so the limits leave room for that; the data targets stay far below.
    extra=()
    [ "$target" != config ] || extra=(-dict=config.dict)
    if ! cargo +nightly fuzz run "${flags[@]}" "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=12288 -malloc_limit_mb=8192 -timeout=120 \
        -print_final_stats=1 "${extra[@]}"; then
        echo "== $target: crashed; the input is in fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
