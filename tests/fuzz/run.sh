#!/bin/bash
# Runs every libFuzzer target for FUZZ_SECONDS (default 60) each, FUZZ_JOBS
# at a time (default: the number of CPUs), after replaying its regression
# inputs (tests/fuzz/regressions/<target>/). Seeds come from
# tests/fuzz/corpus/<target>/ and stay untouched: new inputs go to
# BUILD_DIR/corpus/<target>/, crashes to BUILD_DIR/crashes/<target>/
# (emptied when the target next runs).
# Prints one line per target (executions, crashes) and a total; exits
# non-zero if any target crashed or a regression input fails.
#   tests/fuzz/run.sh [BUILD_DIR] [TARGET...]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz}
shift || true
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
"$root/tests/fuzz/build.sh" "$out" || exit 1

# UBSan reports are crashes, not warnings; no leak is expected from a
# parser either (OpenSSL and our code free what they allocate).
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1

if [ $# -gt 0 ]; then targets=("$@"); else
    mapfile -t targets < <(cd "$out/bin" && ls); fi

# one_target NAME: replay, then fuzz; writes $out/logs/NAME.result as
# "NAME EXECUTIONS CRASHES REGRESSION_FAILURES".
one_target() {
    local t=$1 bin=$out/bin/$1 log=$out/logs/$1.log
    local seeds=$root/tests/fuzz/corpus/$t regress=$root/tests/fuzz/regressions/$t
    local reg_fail=0 crashes execs
    # Crashes of earlier runs were reported then; keep them under
    # regressions/ (see README there), not here.
    rm -rf "$out/crashes/$t"
    mkdir -p "$out/corpus/$t" "$out/crashes/$t"
    if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
        "$bin" "$regress"/* >"$out/logs/$t.regressions.log" 2>&1 || reg_fail=1
    fi
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/crashes/$t/" "$out/corpus/$t" "$seeds" >"$log" 2>&1
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(find "$out/crashes/$t" -type f | wc -l)
    echo "$t ${execs:-0} $crashes $reg_fail" >"$out/logs/$t.result"
}
export -f one_target
export out root seconds
mkdir -p "$out/logs"
rm -f "$out"/logs/*.result
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'one_target "$@"' _ {}

status=0 total=0
printf '%-14s %12s %8s\n' target executions crashes
for t in "${targets[@]}"; do
    read -r name execs crashes reg_fail <"$out/logs/$t.result" || { echo "$t: no result"; status=1; continue; }
    printf '%-14s %12s %8s\n' "$name" "$execs" "$crashes"
    total=$((total + execs))
    if [ "$crashes" -ne 0 ]; then
        status=1
        echo "  crash inputs in $out/crashes/$t/ (log: $out/logs/$t.log)"
    fi
    if [ "$reg_fail" -ne 0 ]; then
        status=1
        echo "  a regression input of $t fails again (log: $out/logs/$t.regressions.log)"
    fi
done
echo "fuzz: ${#targets[@]} targets, $total executions in ${seconds}s each, $([ $status -eq 0 ] && echo 'no crashes' || echo 'FAILED')"
exit $status
