#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 10) on a copy of its committed
# seeds (fuzz/seeds/<target>, written by fuzz/seed.py) and its minimised
# campaign corpus (fuzz/corpus/<target>, by fuzz/campaign.sh), so runs never
# grow the repository. Fails on any crash, panic, leak, timeout or OOM and
# prints the reproducer (kept under fuzz/artifacts/<target>/; replay it with
# `cargo +nightly fuzz run <target> <file>`).
#
# Usage: bash fuzz/run.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-10}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped (no nightly toolchain)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

t0=$(date +%s)
cargo +nightly fuzz build
echo "fuzz: build took $(( $(date +%s) - t0 )) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=0
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$work/$target" "artifacts/$target"
    for dir in "seeds/$target" "corpus/$target"; do
        if [ -d "$dir" ]; then
            cp -r "$dir/." "$work/$target/"
        fi
    done
    log="$work/$target.log"
    t=$(date +%s)
    if cargo +nightly fuzz run "$target" "$work/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        echo "fuzz: $target ok ($(( $(date +%s) - t )) s, ${runs:-?} runs)"
    else
        failed=1
        echo "fuzz: $target FAILED"
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -5 || true
        grep -E '^artifact_prefix|Test unit written to' "$log" | sed 's/^/  reproducer: /' || true
        tail -40 "$log"
    fi
done
exit "$failed"
