-- bench_report.lua BENCH_JSON — prints the table of a `make bench` run (scripts/bench.sh) with ours/PyTorch
-- ratios, the fraction of the bare sgemm rate, and the PASS/FAIL lines of the bars in issues #4 and #6.
local path = assert(arg[1], "usage: bench_report.lua build/bench.json")
local f = assert(io.open(path))
local text = f:read("a")
f:close()
local rate = tonumber(text:match('"sgemm_gflops":%s*([%d%.]+)')) -- the ceiling: the best bare rate measured
local openblas_rate = tonumber(text:match('"openblas_sgemm_gflops":%s*([%d%.]+)'))
local own_rate = tonumber(text:match('"own_sgemm_gflops":%s*([%d%.]+)'))
local rows = {}
for obj in text:gmatch("{[^{}]*}") do
  local r = {}
  for k, v in obj:gmatch('"([%w_]+)":"?([^,"}]*)"?') do r[k] = tonumber(v) or v end
  if r.method then rows[#rows + 1] = r end
end
local by, gen = {}, {} -- training rows by "who/method/shape BxT"; generation rows by who
local shapes, seen = {}, {} -- "shape BxT" in the order of the run
for _, r in ipairs(rows) do
  if r.batch then
    local shape = ("%s %dx%d"):format(r.shape or "?", r.batch, r.seq)
    by[r.who .. "/" .. r.method .. "/" .. shape] = r
    if not seen[shape] then seen[shape], shapes[#shapes + 1] = true, shape end
  end
  if r.method == "generate" then gen[r.who] = r end
end
-- the GPT-2 shapes' parameter counts, for 6 * N * tokens (their head is the tied embedding: every
-- parameter is in a product; the other architectures show their counted products only)
local nparams = { ["gpt2-4m"] = 4273664, ["gpt2-124M"] = 124439808 }
print(("\nsgemm %.1f GFLOP/s (the best bare rate: OpenBLAS %s, sift's own kernel %s); ours: methods interleaved in"
  .. " one process (vs full: median of paired step ratios); peak MB: each method alone"):format(rate or 0,
  openblas_rate or "-", own_rate or "-"))
print(("%-19s %-6s %9s %9s %8s %9s %9s %9s %12s %7s %7s"):format("shape", "method", "ours ms", "min-max", "vs full",
  "torch ms", "ratio", "peak MB", "opt+grad MB", "sgemm%", "GFLOP"))
local function bar(ok, text) print((ok and "PASS  " or "FAIL  ") .. text) end
for _, shape in ipairs(shapes) do
  for _, m in ipairs { "full", "sift", "lora" } do
    local o, t = by["sift/" .. m .. "/" .. shape], by["pytorch/" .. m .. "/" .. shape]
    if o then
      local frac, n = "", nparams[o.shape]
      if m == "full" and rate and n then
        frac = ("%.0f"):format(100 * 6 * n * o.batch * o.seq / (o.ms_median / 1000) / 1e9 / rate)
      end
      local alone = by["sift_alone/" .. m .. "/" .. shape]
      print(("%-19s %-6s %9.1f %4.0f-%-4.0f %8.2f %9s %9s %9.0f %12.2f %7s %7s"):format(shape, m, o.ms_median, o.ms_min,
        o.ms_max, o.paired_ratio_to_full or o.ms_median / by["sift/full/" .. shape].ms_median, t and ("%.1f"):format(t.ms_median) or "-", t and ("%.2f"):format(o.ms_median / t.ms_median) or "-",
        alone and alone.peak_rss_mb or o.peak_rss_mb,
        o.opt_grad_bytes / 2 ^ 20, frac, o.gemm_gflop and ("%.2f"):format(o.gemm_gflop) or "-"))
    end
  end
end
do
  local r, t = gen.sift, gen.pytorch
  if r then
    print(("\ngeneration with the KV cache: gpt2-4m %d tokens/s, stories260K %d tokens/s"):format(r.gpt2_4m_tokens_per_s,
      r.stories260K_tokens_per_s))
    if r.gpt2_4m_prefill_250_tokens_per_s then
      print(("prompt prefill: gpt2-4m %d tokens/s (250-token prompt), stories260K %d tokens/s (500)"):format(
        r.gpt2_4m_prefill_250_tokens_per_s, r.stories260K_prefill_500_tokens_per_s))
    end
    if t then
      print(("PyTorch (KV cache, same weights): gpt2-4m %d tokens/s decoding (ours %.1fx), %d prefill (ours %.1fx)")
        :format(t.gpt2_4m_tokens_per_s, r.gpt2_4m_tokens_per_s / t.gpt2_4m_tokens_per_s,
          t.gpt2_4m_prefill_250_tokens_per_s, r.gpt2_4m_prefill_250_tokens_per_s / t.gpt2_4m_prefill_250_tokens_per_s))
    end
  end
end
print()
local function get(who, m, shape) return by[who .. "/" .. m .. "/" .. shape] end
local sf, ss = get("sift", "full", "gpt2-4m 32x32"), get("sift", "sift", "gpt2-4m 32x32")
if sf and ss then
  bar(ss.opt_grad_bytes / sf.opt_grad_bytes <= 0.025, ("#4 SIFT optimizer+gradient state / full = %.4f (<= 0.025)"):format(ss.opt_grad_bytes / sf.opt_grad_bytes))
  -- the median of paired step ratios (each SIFT step against the full step right before it), beside
  -- the ratio of the two medians
  local pr, mr = ss.paired_ratio_to_full or ss.ms_median / sf.ms_median, ss.ms_median / sf.ms_median
  bar(pr <= 0.75, ("#4 SIFT step / full step (gpt2-4m 32x32) = %.2f paired, %.2f of medians (<= 0.75)"):format(pr, mr))
  bar(pr <= 0.6, ("#6 SIFT step / our full step = %.2f paired, %.2f of medians (<= 0.6)"):format(pr, mr))
  if ss.gemm_gflop and sf.gemm_gflop then -- what the products alone allow, at equal gemm speed
    print(("      (the products alone: SIFT %.2f / full %.2f GFLOP per step = %.3f at equal gemm speed)"):format(
      ss.gemm_gflop, sf.gemm_gflop, ss.gemm_gflop / sf.gemm_gflop))
  end
end
local tf, ts = get("pytorch", "full", "gpt2-4m 32x32"), get("pytorch", "sift", "gpt2-4m 32x32")
if sf and tf then bar(sf.ms_median / tf.ms_median <= 0.8, ("#6 gpt2-4m 32x32 full / PyTorch = %.2f (<= 0.8)"):format(sf.ms_median / tf.ms_median)) end
if ss and ts then bar(ss.ms_median / ts.ms_median <= 0.5, ("#6 gpt2-4m 32x32 SIFT / PyTorch SIFT-style = %.2f (<= 0.5)"):format(ss.ms_median / ts.ms_median)) end
local big = "gpt2-124M 4x64"
local bf, bs = get("sift", "full", big), get("sift", "sift", big)
local pf, ps = get("pytorch", "full", big), get("pytorch", "sift", big)
if bf and pf then bar(bf.ms_median / pf.ms_median <= 0.6, ("#6 GPT-2 124M 4x64 full / PyTorch = %.2f (<= 0.6)"):format(bf.ms_median / pf.ms_median)) end
if bf and rate then
  -- the bar: the fraction of the bare rate measured right after each step (the median over steps; this
  -- VM's speed drifts within minutes, so a rate from another minute of the run mixes two machine states),
  -- when the run paired them; else that of the best bare rate of the whole run
  local frac = 6 * nparams["gpt2-124M"] * 256 / (bf.ms_median / 1000) / 1e9 / rate
  if bf.paired_sgemm_frac then
    bar(bf.paired_sgemm_frac >= 0.7, ("#6 GPT-2 124M full at %.0f %% of the bare sgemm rate measured beside each step"
      .. " (median %.1f GFLOP/s; >= 70 %%)"):format(100 * bf.paired_sgemm_frac, bf.paired_sgemm_gflops))
    print(("      (%.0f %% of the best bare rate of the whole run, %.1f GFLOP/s)"):format(100 * frac, rate))
  else
    bar(frac >= 0.7, ("#6 GPT-2 124M full at %.0f %% of the best bare sgemm rate (>= 70 %%)"):format(100 * frac))
  end
  if openblas_rate and openblas_rate < rate then
    print(("      (%.0f %% of OpenBLAS's bare cblas_sgemm rate, %.1f GFLOP/s)"):format(100 * frac * rate / openblas_rate,
      openblas_rate))
  end
end
if bs and ps then
  bar(bs.ms_median / ps.ms_median <= 0.6, ("#6 GPT-2 124M SIFT / PyTorch SIFT-style = %.2f (<= 0.6)"):format(bs.ms_median / ps.ms_median))
  local peak = (get("sift_alone", "sift", big) or bs).peak_rss_mb
  bar(peak <= 900 and peak / ps.peak_rss_mb <= 0.6,
    ("#6 GPT-2 124M SIFT peak %.0f MB (<= 900 MB and <= 0.6x PyTorch's %.0f MB)"):format(peak, ps.peak_rss_mb))
end
