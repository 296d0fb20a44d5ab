#!/bin/sh
# test_dist.sh BUILD_DIR — data-parallel training over MPI. Runs tests/dist/train_ranks.lua with the MPI
# build (build-mpi/sift-repl, which `make test` builds when mpicc is installed) as one process and under
# `mpiexec -n 2` and `-n 3`, and compares them with tests/dist/compare_ranks.lua (the same steps, masks,
# weights and evaluation as one process; the bytes each rank sent). Also: sift.dist in BUILD_DIR's
# (non-MPI) build reports one process; only rank 0 writes files and prints progress; a failed write on
# rank 0 is an error on every rank; one rank failing alone ends the whole job instead of leaving the
# others waiting; Ctrl-C on one rank stops every rank after the same step; a checkpoint resumed on another
# number of processes (tests/dist/resume_ranks.lua) ends where one process ends. Skipped without mpiexec, the MPI
# build or ../shared. Ends with "N passed, N failed".
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
MPI_REPL="$ROOT/build-mpi/sift-repl"
cd "$ROOT" || exit 1
: "${SIFT_SHARED:=$ROOT/../shared}"
export SIFT_SHARED
passed=0; failed=0; skipped=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "$2" ] && [ -f "$2" ] && tail -n 15 "$2" | sed 's/^/    /'; }
finish() { echo "$skipped skipped"; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if "$BUILD/sift-repl" -e 'assert(sift.dist.size() == 1 and sift.dist.rank() == 0 and sift.dist.sum(3) == 3
    and sift.dist.sum({1, 2})[2] == 2 and sift.dist.bytes_sent() == 0)' > "$tmp/one" 2>&1; then
    ok "sift.dist in $(basename "$BUILD"): one process"
else bad "sift.dist in $(basename "$BUILD"): one process" "$tmp/one"; fi

if ! command -v mpiexec >/dev/null 2>&1 || [ ! -x "$MPI_REPL" ]; then
    echo "skip data-parallel runs: mpiexec or $MPI_REPL missing (make deps; make test builds it)"
    skipped=$((skipped + 1)); finish
fi
LIMIT="timeout 300"

if $LIMIT mpiexec -n 2 "$MPI_REPL" -e 'assert(sift.dist.enabled and sift.dist.size() == 2)
    local s = sift.dist.sum({1, sift.dist.rank(), 0.5}); assert(s[1] == 2 and s[2] == 1 and s[3] == 1)
    assert(sift.dist.sum(sift.dist.rank() + 1) == 3); sift.dist.barrier()
    assert(sift.dist.bytes_sent() == 3 * 8 + 8 + 8)' > "$tmp/basic" 2>&1; then
    ok "sift.dist under mpiexec -n 2: ranks, sums, bytes"
else bad "sift.dist under mpiexec -n 2: ranks, sums, bytes" "$tmp/basic"; fi

# a write that fails on rank 0 is an error on every rank (each rank prints what it caught)
$LIMIT mpiexec -n 2 "$MPI_REPL" -e 'local ok, e = pcall(sift.save_tensors, "/nonexistent/dir/x.safetensors",
    {a = sift.zeros(2)}); print(("rank %d: %s %s"):format(sift.dist.rank(), ok, e))' > "$tmp/wfail" 2>&1
if grep -q "rank 0: false .*nonexistent" "$tmp/wfail" && grep -q "rank 1: false .*rank 0, which writes" "$tmp/wfail"; then
    ok "a failed write on rank 0 fails on every rank"
else bad "a failed write on rank 0 fails on every rank" "$tmp/wfail"; fi

# one rank failing alone ends the job (exit non-zero, not the time limit) and its error reaches mpiexec's output
timeout 60 mpiexec -n 2 "$MPI_REPL" -e 'if sift.dist.rank() == 1 then error("rank 1 fails alone") end
    sift.dist.barrier()' > "$tmp/abort" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "rank 1 fails alone" "$tmp/abort" \
    && grep -q "sift: rank 1 ends the job" "$tmp/abort"; then
    ok "one rank failing alone ends the job (exit $rc)"
else bad "one rank failing alone ends the job (exit $rc)" "$tmp/abort"; fi

if [ ! -f "$SIFT_SHARED/models/gpt2-4m/config.json" ]; then
    echo "skip training over ranks: $SIFT_SHARED/models/gpt2-4m not found (set SIFT_SHARED)"
    skipped=$((skipped + 1)); finish
fi

# Ctrl-C (SIGINT) to one rank only: every rank stops after the same step, with the same weights
timeout 120 mpiexec -n 2 "$MPI_REPL" tests/dist/interrupt_ranks.lua "$tmp/intr" > "$tmp/intr.log" 2>&1 &
job=$!
for _ in $(seq 1 600); do [ -f "$tmp/intr.started" ] && break; sleep 0.1; done
rank=$(pgrep -f "^$MPI_REPL tests/dist/interrupt_ranks.lua" | head -n 1)
[ -n "$rank" ] && kill -INT "$rank"
wait $job; rc=$?
r0=$(cat "$tmp/intr.rank0" 2>/dev/null); r1=$(cat "$tmp/intr.rank1" 2>/dev/null)
if [ "$rc" -eq 0 ] && [ -n "$r0" ] && [ "$r0" = "$r1" ] && echo "$r0" | grep -q "stopped at step" && [ -f "$tmp/intr.delta" ] \
    && [ "$(grep -c "^interrupted: stopped at step" "$tmp/intr.log")" -eq 1 ]; then
    ok "Ctrl-C on one rank: every rank stops after the same step ($(echo "$r0" | cut -d, -f1))"
else bad "Ctrl-C on one rank: every rank stops after the same step (exit $rc; $r0 / $r1)" "$tmp/intr.log"; fi
if $LIMIT "$MPI_REPL" tests/dist/train_ranks.lua "$tmp/one.st" > "$tmp/run1" 2>&1; then ok "train_ranks.lua, one process"
else bad "train_ranks.lua, one process" "$tmp/run1"; fi
for n in 2 3; do
    if $LIMIT mpiexec -n $n "$MPI_REPL" tests/dist/train_ranks.lua "$tmp/n$n.st" > "$tmp/run$n" 2>&1; then
        ok "train_ranks.lua under mpiexec -n $n"
    else bad "train_ranks.lua under mpiexec -n $n" "$tmp/run$n"; fi
    "$MPI_REPL" tests/dist/compare_ranks.lua "$tmp/one.st" "$tmp/n$n.st" > "$tmp/cmp$n" 2>&1
    sed 's/^/    /' "$tmp/cmp$n"
    line=$(tail -n 1 "$tmp/cmp$n")
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then bad "compare_ranks.lua (-n $n) printed no closing line"
    else passed=$((passed + p)); failed=$((failed + f)); fi
    # rank 0 alone writes (s:save_delta to a path naming the rank) and prints progress
    if [ -f "$tmp/n$n.st.delta.0" ] && [ ! -f "$tmp/n$n.st.delta.1" ]; then ok "-n $n: rank 0 alone wrote the delta"
    else bad "-n $n: rank 0 alone wrote the delta"; fi
    steps=$(grep -c "^step 3/3" "$tmp/run$n")
    if [ "$steps" -eq 1 ]; then ok "-n $n: progress printed once"; else bad "-n $n: progress printed $steps times" "$tmp/run$n"; fi
done
# a checkpoint resumed on another number of processes ends where the one-process run ended (up to the rounding
# of sums over ranks): saved under -n 2, resumed as one process; saved as one process, resumed under -n 3
if $LIMIT "$MPI_REPL" tests/dist/resume_ranks.lua "$tmp/one.st" "$tmp/n2.st.trainer" > "$tmp/res1" 2>&1; then
    ok "saved under -n 2, resumed as one process: the one-process run's end"
else bad "saved under -n 2, resumed as one process: the one-process run's end" "$tmp/res1"; fi
if $LIMIT mpiexec -n 3 "$MPI_REPL" tests/dist/resume_ranks.lua "$tmp/one.st" "$tmp/one.st.trainer" > "$tmp/res3" 2>&1; then
    ok "saved as one process, resumed under -n 3: the one-process run's end"
else bad "saved as one process, resumed under -n 3: the one-process run's end" "$tmp/res3"; fi
finish
