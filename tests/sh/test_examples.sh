#!/bin/sh
# test_examples.sh BUILD_DIR — runs every numbered example (examples/[0-9]*.lua) with BUILD_DIR/sift-repl
# from the repository root, each under a time limit against hangs (120 s, or $SIFT_EXAMPLE_TIMEOUT; eight
# times that for a sanitizer build such as build-asan: the examples take 0-7 s normally and 8-18x that
# there on the Intel machines, 05 the longest at 130 s, but 349 s on an AMD Zen 3 one, so 960 s leaves
# room for a slower machine), and counts an example as passed
# when it exits 0. Prints the tail of the output of each failure and ends with the line
# "N passed, N failed"; exits non-zero on any failure. Examples that need ../shared (SIFT_SHARED) print
# "...; skipping" and exit 0 when it is absent.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) [ -d "$BUILD" ] || BUILD="$ROOT/$BUILD" ;; esac
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "test_examples.sh: no build folder '$1'"; echo "0 passed, 1 failed"; exit 1; }
REPL="$BUILD/sift-repl"
LIMIT=${SIFT_EXAMPLE_TIMEOUT:-120}
cd "$ROOT" || exit 1
: "${SIFT_SHARED:=$ROOT/../shared}"
export SIFT_SHARED

if [ ! -x "$REPL" ]; then
    echo "test_examples.sh: $REPL not found (build first: make)"
    echo "0 passed, 1 failed"
    exit 1
fi
if grep -qE "__asan_init|__tsan_init" "$REPL" 2>/dev/null && [ -z "$SIFT_EXAMPLE_TIMEOUT" ]; then
    LIMIT=$((LIMIT * 8))
fi
if command -v timeout >/dev/null 2>&1; then TIMEOUT="timeout $LIMIT"; else TIMEOUT=""; fi

passed=0; failed=0
out=$(mktemp); trap 'rm -f "$out"' EXIT
for ex in examples/[0-9]*.lua; do
    [ -f "$ex" ] || continue
    start=$(date +%s)
    $TIMEOUT "$REPL" "$ex" > "$out" 2>&1 < /dev/null
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        if grep -q "; skipping$" "$out"; then note=" (skipped: $(grep "; skipping$" "$out" | head -n 1))"; else note=""; fi
        echo "ok   $ex (${secs} s)$note"
    else
        failed=$((failed + 1))
        if [ "$rc" -eq 124 ] && [ -n "$TIMEOUT" ]; then why="timed out after $LIMIT s"; else why="exit status $rc"; fi
        echo "FAIL $ex ($why, ${secs} s); the last lines of its output:"
        tail -n 25 "$out" | sed 's/^/    | /'
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
