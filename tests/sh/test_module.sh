#!/bin/sh
# test_module.sh BUILD_DIR — `require "sift"` from the standalone lua5.4 gives the same API (C functions
# and the Lua library), from the build tree and from a `make install PREFIX=...` tree.
BUILD=${1:-build}
passed=0; failed=0
# a sanitizer build of sift.so needs the ASan runtime loaded first into the plain lua5.4 interpreter
if ldd "$BUILD/sift.so" 2>/dev/null | grep -q libasan; then
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    export LD_PRELOAD ASAN_OPTIONS
fi
check() { # name, command
    if out=$(sh -c "$2" 2>&1); then passed=$((passed + 1)); echo "ok   $1"
    else failed=$((failed + 1)); echo "FAIL $1"; echo "$out" | tail -5; fi
}
check "require from the build tree" \
  "lua5.4 -e 'package.cpath=\"./$BUILD/?.so;\"..package.cpath; local s=require\"sift\"; assert(s.version); assert(type(s.sparse)==\"function\" and type(s.train)==\"function\" and type(s.data.load)==\"function\"); print(s.version)'"
check "the documented one-liner" \
  "cd $BUILD/.. && lua5.4 -e 'package.cpath=\"./$BUILD/?.so;\"..package.cpath; local s=require\"sift\"; print(s.version)'"
PREFIX=$(mktemp -d)
check "make install + require from the installed tree" \
  "make -s install-files BUILD=$BUILD PREFIX=$PREFIX >/dev/null && cd / && lua5.4 -e 'package.cpath=\"$PREFIX/lib/lua/5.4/?.so;\"..package.cpath; local s=require\"sift\"; assert(type(s.lora)==\"function\"); assert(s.dist.size()==1)' && test -f $PREFIX/share/man/man1/sift-repl.1 && $PREFIX/bin/sift-repl -e 'assert(sift.version)'"
rm -rf "$PREFIX"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
