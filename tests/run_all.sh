#!/bin/sh
# run_all.sh BUILD_DIR [c|lua] — runs every test program and Lua test, prints each program's output,
# then the totals as the last line "N passed, N failed"; exits non-zero on any failure.
# Tests that need ../shared (SIFT_SHARED) report themselves skipped when it is absent.
BUILD=${1:-build}
ONLY=${2:-all}
: "${SIFT_SHARED:=$(cd "$(dirname "$0")/.." && pwd)/../shared}"
export SIFT_SHARED
# the same runtime settings the programs give themselves (see core/threads.h)
: "${OPENBLAS_CORETYPE:=Haswell}" "${OMP_WAIT_POLICY:=passive}" "${GOMP_SPINCOUNT:=10000}"
export OPENBLAS_CORETYPE OMP_WAIT_POLICY GOMP_SPINCOUNT
passed=0; failed=0; skipped=0; broken=""
tally() { # $1 = name, $2 = output file, $3 = exit status
    line=$(tail -n 1 "$2")
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    s=$(grep -E '^[0-9]+ skipped$' "$2" | tail -n 1 | cut -d' ' -f1)
    if [ -z "$p" ]; then
        echo "!! $1 did not print a closing 'N passed, N failed' line (exit $3)"; failed=$((failed + 1)); broken="$broken $1"; return
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $1 exited $3"; failed=$((failed + 1)); broken="$broken $1"
    elif [ "$f" -ne 0 ]; then broken="$broken $1"; fi
}
out=$(mktemp); trap 'rm -f "$out"' EXIT
if [ "$ONLY" = all ] || [ "$ONLY" = c ]; then
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        echo "== $(basename "$t")"
        "$t" > "$out" 2>&1; rc=$?
        cat "$out"; tally "$(basename "$t")" "$out" $rc
    done
fi
if [ "$ONLY" = all ] || [ "$ONLY" = lua ]; then
    for t in tests/lua/test_*.lua; do
        [ -f "$t" ] || continue
        echo "== $t"
        "$BUILD/sift-repl" "$t" > "$out" 2>&1; rc=$?
        cat "$out"; tally "$t" "$out" $rc
    done
    for t in tests/sh/test_*.sh; do
        [ -f "$t" ] || continue
        echo "== $t"
        sh "$t" "$BUILD" > "$out" 2>&1; rc=$?
        cat "$out"; tally "$t" "$out" $rc
    done
fi
[ -n "$broken" ] && echo "failing:$broken"
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
