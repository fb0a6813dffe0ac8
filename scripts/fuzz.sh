#!/usr/bin/env bash
# Fuzzes yollayah-core's parsers of untrusted input with cargo-fuzz (libFuzzer), each target for
# a bounded time, and prints executions and crashes per target. Not run in CI: it is slow and
# its result depends on luck; run it by hand after touching a parser (docs/fuzzing-and-soak.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address. The fuzzed code is safe Rust, so ASan finds
#                   little that a panic would not, and `none` builds and runs much faster.
#                   With `address`, libFuzzer also enforces -malloc_limit_mb per allocation.
#   FUZZ_JOBS       cargo build jobs (default 2: the build machine is shared).
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, -Cpasses=sancov-module, ...). The
# project's only toolchain is stable, so this sets RUSTC_BOOTSTRAP=1, which makes a stable
# rustc accept them. That is fine for a local test tool and must never leak into a real build,
# which is why it is set here and nowhere else.
#
# Corpora: fuzz/corpus/<target>/ holds the small committed seed corpus and is only read;
# libFuzzer writes what it discovers to fuzz/corpus-local/<target>/ (git-ignored), which is kept
# and reused by the next run. Copy an input from there to fuzz/corpus/ when it is worth
# committing (a regression input, say). Crash inputs land in fuzz/artifacts/<target>/; replay
# one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> fuzz/artifacts/<target>/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(ndjson ps_show parameters persona capture agent_http agent_events image_intake)
fi
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${FUZZ_JOBS:-2}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

# -a: debug assertions (and overflow checks) on, so arithmetic bugs panic instead of wrapping.
echo "== building fuzz targets (sanitizer: $sanitizer)"
# One cargo invocation builds every target and shares the instrumented dependencies.
cargo fuzz build -a -s "$sanitizer"

logdir="fuzz/logs"
mkdir -p "$logdir"
summary=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/corpus-local/$t" "fuzz/artifacts/$t"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    log="$logdir/$t.log"
    echo "== fuzzing $t for ${secs}s (log: $log)"
    set +e
    # The line limit in the ndjson target is 256 bytes; 64 KiB inputs still cover many lines.
    # -rss_limit_mb bounds the whole process: a parser that buffers without bound fails here.
    # The first corpus directory is where libFuzzer writes new inputs.
    cargo fuzz run -a -s "$sanitizer" "$t" "fuzz/corpus-local/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=1024 -malloc_limit_mb=128 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    after=$(find "fuzz/artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
    if [ -z "$execs" ]; then
        # Older libFuzzer or a crash before the stats: fall back to the last `#N` status line.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    fi
    corpus=$(find "fuzz/corpus-local/$t" "fuzz/corpus/$t" -type f | wc -l)
    status=ok
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        status="FAIL (rc $rc)"
        failed=1
        grep -m 5 -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" >&2 || true
    fi
    summary+=("$(printf '%-11s %12s %8s %8s  %s' "$t" "${execs:-?}" "$crashes" "$corpus" "$status")")
done

echo
printf '%-11s %12s %8s %8s  %s\n' target executions crashes corpus status
for line in "${summary[@]}"; do
    echo "$line"
done
exit "$failed"
