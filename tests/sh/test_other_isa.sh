#!/bin/sh
# test_other_isa.sh [BUILD_DIR] — builds sift for the next CPU level below this machine's and runs every C
# test program of that build here. A build runs only the code paths of its own -march: on an AVX-512
# machine the AVX2 kernels (core/gemm_avx2.c, the AVX2 branches of the sampled gradients, attention and
# norms) would otherwise never run in CI, and on an AVX2 machine the paths without AVX (OpenBLAS for every
# product, the scalar loops) would not. AVX-512 machine: x86-64-v3 (AVX2 + FMA); AVX2 machine: x86-64-v2
# (SSE4.2). The build goes to build-<level> (incremental, like `make`). Under the sanitizer run
# (BUILD_DIR build-asan) it reports itself skipped: the plain run already covers it. Ends with the
# programs' summed "N passed, N failed".
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
skip() { echo "test_other_isa.sh: $1; skipping"; echo "1 skipped"; echo "0 passed, 0 failed"; exit 0; }
case "$(uname -m)" in x86_64) ;; *) skip "not an x86-64 machine" ;; esac
case "${1:-build}" in *asan*) skip "the sanitizer run (the plain run covers the other CPU level)" ;; esac
if grep -qw avx512f /proc/cpuinfo; then level=x86-64-v3
elif grep -qw avx2 /proc/cpuinfo; then level=x86-64-v2
else skip "neither AVX-512 nor AVX2 here"; fi
dir=build-$level
log=$(mktemp); out=$(mktemp); trap 'rm -f "$log" "$out"' EXIT
if ! make -s -j2 BUILD="$dir" OPT="-O2 -march=$level" "$dir/libsift.a" $(ls tests/test_*.c | sed "s|tests/\(.*\)\.c|$dir/tests/\1|") > "$log" 2>&1; then
    echo "not ok - the -march=$level build failed:"; tail -n 20 "$log"; echo "0 passed, 1 failed"; exit 1
fi
echo "the -march=$level build ($dir), its C test programs:"
passed=0; failed=0; skipped=0
for t in "$dir"/tests/test_*; do
    case "$t" in *.o|*.d) continue ;; esac
    [ -x "$t" ] || continue
    "$t" > "$out" 2>&1; rc=$?
    line=$(tail -n 1 "$out")
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    s=$(grep -E '^[0-9]+ skipped$' "$out" | tail -n 1 | cut -d' ' -f1)
    if [ -z "$p" ] || { [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; }; then
        echo "not ok - $(basename "$t") ($level) exited $rc without a clean summary:"; tail -n 20 "$out"
        failed=$((failed + 1)); continue
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
    if [ "$f" -ne 0 ]; then echo "not ok - $(basename "$t") ($level):"; grep -E '^(FAIL|not ok)' "$out" | head -n 20
    else echo "ok - $(basename "$t") ($level): $p passed"; fi
done
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
