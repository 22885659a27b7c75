#!/usr/bin/env bash
# A long fuzz campaign (not part of tests/run.sh): every target (or the ones
# named) for RUNS executions (default 10^7) on one core, starting from its
# seeds (fuzz/seeds/<target>) and its committed corpus (fuzz/corpus/<target>);
# then the grown corpus is minimised (`cargo fuzz cmin`) back into
# fuzz/corpus/<target>, for committing. Stops at the first crash, panic, leak,
# timeout or OOM and prints the reproducer (fuzz/artifacts/<target>/).
#
# Prints one line per target: executions, seconds, corpus files before and
# after minimising. Run it in the background and commit fuzz/corpus/ and the
# figures (bench/RESULTS.md, "Fuzzing").
#
# The campaign builds without AddressSanitizer (`-s none`), into its own
# target directory so it does not rebuild `fuzz/run.sh`'s ASan binaries:
# vncap-core is `#![forbid(unsafe_code)]`, so the memory errors ASan finds
# cannot happen in the code under test, and without it the targets run two to
# three times as fast. cargo fuzz's release build keeps debug assertions and
# overflow checks on, so an arithmetic overflow still stops the campaign.
# `fuzz/run.sh`, the short run in tests/run.sh, keeps ASan.
#
# Usage: bash fuzz/campaign.sh [RUNS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")"

runs="${1:-10000000}"
shift || true

build=(-s none --target-dir target/campaign)
cargo +nightly fuzz build "${build[@]}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for target in "${targets[@]}"; do
    grown="$work/$target"
    mkdir -p "$grown" "artifacts/$target" "corpus/$target"
    for dir in "seeds/$target" "corpus/$target"; do
        if [ -d "$dir" ]; then
            cp -r "$dir/." "$grown/"
        fi
    done
    log="$work/$target.log"
    t=$(date +%s)
    if ! cargo +nightly fuzz run "${build[@]}" "$target" "$grown" -- \
        -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
        echo "campaign: $target FAILED"
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written to' "$log" | head -8 || true
        exit 1
    fi
    done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(( $(date +%s) - t ))
    before=$(find "$grown" -type f | wc -l)
    rm -rf "corpus/$target"
    mkdir -p "corpus/$target"
    cargo +nightly fuzz cmin "${build[@]}" "$target" "$grown" -- -artifact_prefix="artifacts/$target/" \
        >"$log.cmin" 2>&1 || { tail -20 "$log.cmin"; exit 1; }
    # cmin minimises in place; keep what it kept.
    cp -r "$grown/." "corpus/$target/"
    after=$(find "corpus/$target" -type f | wc -l)
    printf 'campaign: %-14s %10s runs %6s s  corpus %5s -> %4s files\n' \
        "$target" "${done_runs:-?}" "$secs" "$before" "$after"
done
