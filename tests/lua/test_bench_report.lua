-- test_bench_report.lua — scripts/bench_report.lua, the part of `make bench` that turns the run's JSON into
-- the table and the PASS/FAIL lines of issues #4 and #6: fed a synthetic run whose figures sit on known
-- sides of every bar, it must print each verdict and figure as computed by hand here, and the generation
-- lines with ours/PyTorch ratios. (The timings themselves are make bench's job, not a test's.)
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check = H.test, H.check

local function run_report(json)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(json)
  f:close()
  local buf, saved_print, saved_arg = {}, print, arg
  print = function(...) -- luacheck: ignore
    local p = table.pack(...)
    for i = 1, p.n do buf[#buf + 1] = tostring(p[i]) .. (i < p.n and "\t" or "") end
    buf[#buf + 1] = "\n"
  end
  arg = { [0] = "scripts/bench_report.lua", path } -- luacheck: ignore
  local ok, err = pcall(dofile, "scripts/bench_report.lua")
  print, arg = saved_print, saved_arg -- luacheck: ignore
  os.remove(path)
  if not ok then error(err, 0) end
  return table.concat(buf)
end

local function row(who, method, shape, fields) -- shape: "name BxT", as bench_train.lua's rows carry it
  local name, b, t = shape:match("^(%S+) (%d+)x(%d+)$")
  local parts = { ('"who":"%s","shape":"%s","method":"%s","batch":%s,"seq":%s'):format(who, name, method, b, t) }
  for k, v in pairs(fields) do parts[#parts + 1] = ('"%s":%s'):format(k, v) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- 124M full at 900 ms against a 300 GFLOP/s bare rate: 6 * 124439808 * 256 / 0.9 / 1e9 / 300 = 70.8 %
local RUN = table.concat({
  '{"sgemm_gflops": 300.0, "openblas_sgemm_gflops": 200.0, "own_sgemm_gflops": 300.0, "load": "0 0 0", "runs": [',
  row("sift", "full", "gpt2-4m 32x32", { ms_median = 100, ms_min = 95, ms_max = 110, opt_grad_bytes = 1000000,
    peak_rss_mb = 300, gemm_gflop = 26.17, paired_ratio_to_full = 1.0 }) .. ",",
  row("sift", "sift", "gpt2-4m 32x32", { ms_median = 67, ms_min = 60, ms_max = 70, opt_grad_bytes = 20000,
    peak_rss_mb = 300, gemm_gflop = 17.18, paired_ratio_to_full = 0.66 }) .. ",",
  row("pytorch", "full", "gpt2-4m 32x32", { ms_median = 200, ms_min = 190, ms_max = 210, opt_grad_bytes = 1, peak_rss_mb = 500 }) .. ",",
  row("pytorch", "sift", "gpt2-4m 32x32", { ms_median = 120, ms_min = 110, ms_max = 130, opt_grad_bytes = 1, peak_rss_mb = 480 }) .. ",",
  row("sift", "full", "gpt2-124M 4x64", { ms_median = 900, ms_min = 890, ms_max = 950, opt_grad_bytes = 1, peak_rss_mb = 3400 }) .. ",",
  row("sift", "sift", "gpt2-124M 4x64", { ms_median = 500, ms_min = 490, ms_max = 510, opt_grad_bytes = 1, peak_rss_mb = 3400 }) .. ",",
  row("sift_alone", "sift", "gpt2-124M 4x64", { ms_median = 510, ms_min = 500, ms_max = 520, opt_grad_bytes = 1, peak_rss_mb = 675 }) .. ",",
  row("pytorch", "full", "gpt2-124M 4x64", { ms_median = 1400, ms_min = 1300, ms_max = 1500, opt_grad_bytes = 1, peak_rss_mb = 2800 }) .. ",",
  row("pytorch", "sift", "gpt2-124M 4x64", { ms_median = 900, ms_min = 850, ms_max = 950, opt_grad_bytes = 1, peak_rss_mb = 1200 }) .. ",",
  -- another architecture at another shape: a row of its own, no sgemm fraction (not a GPT-2 shape)
  row("sift", "full", "roberta-base 8x64", { ms_median = 900, ms_min = 890, ms_max = 910, opt_grad_bytes = 1,
    peak_rss_mb = 2200, gemm_gflop = 263.92, paired_ratio_to_full = 1.0 }) .. ",",
  row("pytorch", "full", "roberta-base 8x64", { ms_median = 3600, ms_min = 3500, ms_max = 3700, opt_grad_bytes = 1,
    peak_rss_mb = 2800 }) .. ",",
  '{"who":"sift","method":"generate","gpt2_4m_tokens_per_s":2000,"stories260K_tokens_per_s":20000,'
    .. '"gpt2_4m_prefill_250_tokens_per_s":24000,"stories260K_prefill_500_tokens_per_s":30000},',
  '{"who":"pytorch","method":"generate","gpt2_4m_tokens_per_s":400,"gpt2_4m_prefill_250_tokens_per_s":8000,'
    .. '"peer":"pytorch"}',
  "]}",
}, "\n")

test("each bar's verdict and figure, on both sides of the thresholds", function()
  local out = run_report(RUN)
  local want = {
    "PASS  #4 SIFT optimizer+gradient state / full = 0.0200 (<= 0.025)",
    "PASS  #4 SIFT step / full step (gpt2-4m 32x32) = 0.66 paired, 0.67 of medians (<= 0.75)",
    "FAIL  #6 SIFT step / our full step = 0.66 paired, 0.67 of medians (<= 0.6)",
    "      (the products alone: SIFT 17.18 / full 26.17 GFLOP per step = 0.656 at equal gemm speed)",
    "PASS  #6 gpt2-4m 32x32 full / PyTorch = 0.50 (<= 0.8)",
    "FAIL  #6 gpt2-4m 32x32 SIFT / PyTorch SIFT-style = 0.56 (<= 0.5)",
    "FAIL  #6 GPT-2 124M 4x64 full / PyTorch = 0.64 (<= 0.6)",
    "PASS  #6 GPT-2 124M full at 71 % of the best bare sgemm rate (>= 70 %)",
    "      (106 % of OpenBLAS's bare cblas_sgemm rate, 200.0 GFLOP/s)",
    "PASS  #6 GPT-2 124M SIFT / PyTorch SIFT-style = 0.56 (<= 0.6)",
    "PASS  #6 GPT-2 124M SIFT peak 675 MB (<= 900 MB and <= 0.6x PyTorch's 1200 MB)",
  }
  for _, line in ipairs(want) do
    check(out:find("\n" .. line .. "\n", 1, true), "missing line: %q\n--- report ---\n%s", line, out)
  end
end)

test("the table rows: ours, the ratio to full and to PyTorch, the sgemm fraction", function()
  local out = run_report(RUN)
  check(out:find("sgemm 300.0 GFLOP/s (the best bare rate: OpenBLAS 200.0, sift's own kernel 300.0)", 1, true),
    "rate header:\n%s", out)
  local full = out:match("\n(gpt2%-4m 32x32%s+full[^\n]*)")
  check(full and full:find("100.0", 1, true) and full:find("95-110", 1, true) and full:find("0.50", 1, true),
    "32x32 full row: %s", tostring(full))
  local big = out:match("\n(gpt2%-124M 4x64%s+full[^\n]*)")
  check(big and big:find("71", 1, true) and big:find("1400.0", 1, true), "4x64 full row: %s", tostring(big))
  local rob = out:match("\n(roberta%-base 8x64%s+full[^\n]*)")
  local n = 0
  for _ in (rob or ""):gmatch("%S+") do n = n + 1 end
  check(rob and rob:find("900.0", 1, true) and rob:find("3600.0", 1, true) and rob:find(" 0.25 ", 1, true)
    and rob:find("263.92", 1, true) and n == 11, "roberta-base row (11 fields, no sgemm %%): %s", tostring(rob))
end)

test("generation: ours, prefill, and the PyTorch peer with ours/PyTorch ratios", function()
  local out = run_report(RUN)
  check(out:find("generation with the KV cache: gpt2-4m 2000 tokens/s, stories260K 20000 tokens/s", 1, true),
    "decode line:\n%s", out)
  check(out:find("prompt prefill: gpt2-4m 24000 tokens/s (250-token prompt), stories260K 30000 tokens/s (500)", 1,
    true), "prefill line:\n%s", out)
  check(out:find("PyTorch (KV cache, same weights): gpt2-4m 400 tokens/s decoding (ours 5.0x), 8000 prefill (ours 3.0x)",
    1, true), "peer line:\n%s", out)
end)

test("with the bare rate measured beside each 124M step, the bar takes that fraction", function()
  -- the same 124M full row carrying bench_train.lua's paired fields: 68 % of the rate beside each step
  -- (FAIL), while the run's best bare rate gives 71 %; and 72 % (PASS)
  for _, case in ipairs { { 0.68, "FAIL  #6 GPT-2 124M full at 68 %" }, { 0.72, "PASS  #6 GPT-2 124M full at 72 %" } } do
    local json = RUN:gsub('(%{"who":"sift","shape":"gpt2%-124M","method":"full"[^}]*)%}', function(r)
      return r .. (',"paired_sgemm_gflops":310.5,"paired_sgemm_frac":%.4f}'):format(case[1])
    end)
    local out = run_report(json)
    local line = case[2] .. " of the bare sgemm rate measured beside each step (median 310.5 GFLOP/s; >= 70 %)"
    check(out:find("\n" .. line .. "\n", 1, true), "missing line: %q\n--- report ---\n%s", line, out)
    check(out:find("\n      (71 % of the best bare rate of the whole run, 300.0 GFLOP/s)\n", 1, true),
      "the whole-run fraction beside it:\n%s", out)
    check(not out:find("of the best bare sgemm rate (>= 70 %)", 1, true), "the unpaired bar as well:\n%s", out)
  end
end)

test("a run without PyTorch prints no PyTorch bars and no peer line", function()
  local lines = {}
  for l in RUN:gmatch("[^\n]+") do
    if not l:find('"who":"pytorch"', 1, true) then lines[#lines + 1] = l end
  end
  local json = table.concat(lines, "\n"):gsub(",\n%]}", "\n]}")
  local out = run_report(json)
  check(not out:find("PyTorch =", 1, true) and not out:find("SIFT-style", 1, true), "PyTorch bars:\n%s", out)
  check(not out:find("PyTorch (KV cache", 1, true), "peer line without a peer:\n%s", out)
  check(out:find("FAIL  #6 SIFT step / our full step = 0.66", 1, true), "own bars still there:\n%s", out)
end)

H.run()
