#!/bin/sh
# bench.sh BUILD_DIR — `make bench`: the kernel benchmark, then training steps of full fine-tuning,
# SIFT 1 % and LoRA r=8 on gpt2-4m (batch 32 x 32), each in its own process so peak RSS is its own.
# Prints a table with ratios and writes build/bench.json. Checks issue #4's bars: SIFT's optimizer +
# gradient state <= 2.5 % of full fine-tuning's, a SIFT step <= 0.75x a full step.
BUILD=${1:-build}
: "${SIFT_SHARED:=$(cd "$(dirname "$0")/.." && pwd)/../shared}"
: "${OPENBLAS_CORETYPE:=Haswell}" "${OMP_WAIT_POLICY:=passive}"
export SIFT_SHARED OPENBLAS_CORETYPE OMP_WAIT_POLICY
REPL="$BUILD/sift-repl"
MODEL="$SIFT_SHARED/models/gpt2-4m"
echo "== kernels"
"$BUILD/bench_kernels" || echo "(kernel bench reported a ratio above 1.2)"
[ -d "$MODEL" ] || { echo "bench: $MODEL missing (set SIFT_SHARED)"; exit 1; }
OUT="$BUILD/bench.json"
echo "[" > "$OUT"
first=1
for shape in "32 32"; do
  set -- $shape
  for method in full sift lora; do
    line=$("$REPL" scripts/bench_train.lua "$MODEL" "$method" "$1" "$2" 12) || { echo "bench: $method failed"; exit 1; }
    [ $first -eq 1 ] || echo "," >> "$OUT"; first=0
    echo "$line" >> "$OUT"
  done
done
echo "]" >> "$OUT"
"$REPL" -e '
local f = assert(io.open(arg and arg[1] or "'"$OUT"'"))
local text = f:read("a"); f:close()
local rows = {}
for obj in text:gmatch("{.-}") do
  local r = {}
  for k, v in obj:gmatch([["(%w+)":"?([^,"}]+)"?]]) do r[k] = tonumber(v) or v end
  rows[#rows + 1] = r
end
print(("%-6s %8s %8s %8s %10s %10s %14s %10s"):format("method", "ms/step", "min", "max", "tokens/s", "peak MB", "opt+grad B", "trainable"))
local by = {}
for _, r in ipairs(rows) do
  by[r.method] = r
  print(("%-6s %8.1f %8.1f %8.1f %10.0f %10.1f %14d %10d"):format(r.method, r.ms_median, r.ms_min, r.ms_max, r.tokens_per_s, r.peak_rss_mb, r.opt_grad_bytes, r.trainable))
end
local mem = by.sift.opt_grad_bytes / by.full.opt_grad_bytes
local time = by.sift.ms_median / by.full.ms_median
print(("SIFT optimizer+gradient state / full: %.4f (bar <= 0.025) %s"):format(mem, mem <= 0.025 and "PASS" or "FAIL"))
print(("SIFT step / full step: %.3f (bar <= 0.75) %s"):format(time, time <= 0.75 and "PASS" or "FAIL"))
print(("LoRA step / full step: %.3f"):format(by.lora.ms_median / by.full.ms_median))
'
