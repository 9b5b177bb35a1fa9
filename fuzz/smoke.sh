#!/usr/bin/env bash
# Builds every fuzz target and runs each briefly from its seeds, replaying
# every kept crash input (fuzz/regressions/<target>/) first: the CI smoke
# run of the fuzzers (docs/fuzzing.md). FUZZ_SECONDS sets the time per
# target (default 20).
#
# cargo-fuzz asks rustc for AddressSanitizer, an unstable flag: on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets it through (the sanitizer is as stable
# in practice as libFuzzer itself; nothing else of the build is nightly).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-20}
./seeds.sh
targets=$(cargo fuzz list)
cargo fuzz build -O
for t in $targets; do
    mkdir -p "regressions/$t"
    if [ -n "$(ls -A "regressions/$t")" ]; then
        echo "fuzz/smoke.sh: $t: replaying $(ls "regressions/$t" | wc -l) kept inputs" >&2
        cargo fuzz run -O "$t" regressions/"$t"/* -- -runs=1
    fi
    echo "fuzz/smoke.sh: $t: ${seconds}s from the seeds" >&2
    log=$(mktemp)
    set +e
    cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1
    code=$?
    set -e
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done' "$log" >&2 || true
    if [ "$code" != 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz/smoke.sh: $t failed (exit $code): keep the input from fuzz/artifacts/$t/ in fuzz/regressions/$t/ once fixed" >&2
        exit "$code"
    fi
    rm -f "$log"
done
