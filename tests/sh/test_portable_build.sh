#!/bin/sh
# test_portable_build.sh [BUILD_DIR] — compiles every C source of sift (core/, lua/, scripts/, tests/)
# for other x86-64 CPU levels than this machine's: x86-64-v2 (SSE4.2), x86-64-v3 (AVX2, the AMD EPYC
# kind) and x86-64-v4 (AVX-512), with the project's warnings as errors. A build compiles only the
# code paths of its own -march=native, so without this a change to the AVX-512 kernels can break the
# AVX2 build (or the other way round) and nothing here notices until a machine of the other kind
# builds main. Syntax and front-end checks only (-fsyntax-only): nothing is linked or run, so it takes
# seconds. BUILD_DIR is unused (the runner passes it). Ends with "N passed, N failed", one per level.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
CC=${CC:-cc}
LUA_INC=${LUA_INC:-/usr/include/lua5.4}
BLAS_INC=${BLAS_INC:-/usr/include/x86_64-linux-gnu/openblas-openmp}
case "$(uname -m)" in
    x86_64) ;;
    *) echo "test_portable_build.sh: not an x86-64 machine; skipping"; echo "1 skipped"; echo "0 passed, 0 failed"; exit 0 ;;
esac
passed=0; failed=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
for level in x86-64-v2 x86-64-v3 x86-64-v4; do
    : > "$log"
    # two compilers at a time; xargs exits non-zero when any of them fails
    if ls core/*.c lua/*.c scripts/*.c tests/*.c |
        xargs -P 2 -n 4 "$CC" -std=gnu11 -march="$level" -fno-math-errno -Wall -Wextra -Werror -fopenmp \
            -I"$BLAS_INC" -I"$LUA_INC" -Icore -Ilua -fsyntax-only >> "$log" 2>&1; then
        echo "ok - every source compiles for -march=$level"; passed=$((passed + 1))
    else
        echo "not ok - sources fail to compile for -march=$level:"; head -n 20 "$log"; failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
