#!/bin/sh
# test_runtime_env.sh BUILD_DIR — sift-repl's runtime settings (core/threads.h, sf_runtime_env_reexec):
# started with OPENBLAS_CORETYPE, OMP_WAIT_POLICY and GOMP_SPINCOUNT unset, the program runs with
# Haswell, passive and SF_GOMP_SPINCOUNT's bounded spin (re-executed once); values the caller set are
# kept, GOMP_SPINCOUNT=0 included (plain passive waiting).
BUILD=${1:-build}
REPL="$BUILD/sift-repl"
passed=0; failed=0
check() { # name, expected output, command...
    name=$1; want=$2; shift 2
    if got=$("$@" 2>&1) && [ "$got" = "$want" ]; then passed=$((passed + 1)); echo "ok   $name"
    else failed=$((failed + 1)); echo "FAIL $name: got '$got', want '$want'"; fi
}
SHOW='io.write(table.concat({os.getenv("OPENBLAS_CORETYPE"), os.getenv("OMP_WAIT_POLICY"),
  os.getenv("GOMP_SPINCOUNT"), tostring(os.getenv("SIFT_NO_REEXEC"))}, " "))'
WANT=$(sed -n 's/^#define SF_GOMP_SPINCOUNT "\([0-9]*\)"$/\1/p' "$(dirname "$0")/../../core/threads.h")
check "unset: Haswell, passive and a spin of $WANT polls, set by one re-exec" "Haswell passive $WANT 1" \
    env -u OPENBLAS_CORETYPE -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u SIFT_NO_REEXEC "$REPL" -e "$SHOW"
check "only GOMP_SPINCOUNT unset: it alone is added" "SkylakeX active $WANT 1" \
    env -u GOMP_SPINCOUNT -u SIFT_NO_REEXEC OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=active "$REPL" -e "$SHOW"
check "all set by the caller, GOMP_SPINCOUNT=0 included: kept, no re-exec" "Haswell passive 0 nil" \
    env -u SIFT_NO_REEXEC OPENBLAS_CORETYPE=Haswell OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=0 "$REPL" -e "$SHOW"
check "a training step runs under the bounded spin" "ok" \
    env -u GOMP_SPINCOUNT -u SIFT_NO_REEXEC "$REPL" -e 'local m = sift.build({arch = "gpt2", vocab_size = 64,
      n_layer = 1, n_head = 2, d_model = 32, max_pos = 16}, {seed = 1})
      local ids = sift.tensor({{1, 2, 3, 4, 5, 6, 7, 8}}, {dtype = "i64"})
      local set = sift.full(m); local opt = sift.AdamW(set, {lr = 1e-3})
      local out = m:forward({input_ids = ids, labels = ids}); m:backward(); opt:step()
      assert(out.loss == out.loss and out.loss > 0); io.write("ok")'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
