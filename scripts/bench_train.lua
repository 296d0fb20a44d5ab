-- bench_train.lua MODEL_DIR METHODS BATCH SEQ [STEPS] — times training steps (forward + backward + AdamW)
-- and prints one JSON line per method: {"shape" (MODEL_DIR's last part), "method", "batch", "seq",
-- "ms_median", "ms_min", "ms_max", "tokens_per_s", "peak_rss_mb", "opt_grad_bytes", "trainable", "steps",
-- "interleaved", "paired_ratio_to_<first method>" (median over steps of step i / the first method's step
-- i), "gemm_gflop" (the step's matrix products, counted by sift.gemm_flops)}; with SIFT_BENCH_PAIRED_RATE=1
-- also "paired_sgemm_gflops" and, for full, "paired_sgemm_frac" (see below).
-- METHODS is one of full | sift | lora, or several joined by commas ("full,sift,lora"): then each method
-- gets its own copy of the model and their steps are interleaved (full, sift, lora, full, ...), so the
-- ratios between methods are measured under the same machine conditions; peak RSS is then that of the
-- whole process (scripts/bench.sh also runs each method alone for its own peak). MODEL_DIR "gpt2-124M",
-- "roberta-base" (a sequence classifier, 2 labels) or "llama-124M" builds that shape with random weights.
-- Token ids are deterministic and the same for all (make_batch).
local dir, methods, B, T, steps = arg[1], arg[2] or "sift", tonumber(arg[3] or 32), tonumber(arg[4] or 32), tonumber(arg[5] or 12)
assert(dir, "usage: bench_train.lua MODEL_DIR METHODS BATCH SEQ [STEPS]")

-- shapes built with random weights (timing only); anything else is a model directory
local BUILT = {
  ["gpt2-124M"] = { { arch = "gpt2", vocab_size = 50257, n_layer = 12, n_head = 12, d_model = 768, max_pos = 1024 } },
  ["roberta-base"] = {
    { arch = "roberta", vocab_size = 50265, n_layer = 12, n_head = 12, d_model = 768, max_pos = 514 },
    { task = "classify", num_labels = 2 } },
  ["llama-124M"] = { { arch = "llama", vocab_size = 32000, n_layer = 12, n_head = 12, n_kv_head = 4, d_model = 768,
    d_ff = 2048, max_pos = 1024 } },
}
local function load()
  local b = BUILT[dir]
  if not b then return sift.load(dir) end
  local opts = { seed = 1 }
  for k, v in pairs(b[2] or {}) do opts[k] = v end
  return sift.build(b[1], opts)
end

-- The batch: xorshift64 ids, the same for every method and for scripts/bench_torch.py. A classifier's
-- rows are right-padded to lengths T - (r % (T/2)) (pad id 1: RoBERTa's), each with a label in {0, 1}.
local function make_batch(model)
  local V = model.config.vocab_size
  local state = 88172645463325252
  local function rnd()
    state = state ~ (state << 13); state = state ~ (state >> 7); state = state ~ (state << 17)
    return state
  end
  local ids, mask, labels = {}, {}, {}
  local classify = BUILT[dir] and BUILT[dir][2] and BUILT[dir][2].task == "classify"
  for b = 1, B do
    ids[b], mask[b] = {}, {}
    local len = classify and T - rnd() % (T // 2) or T
    for t = 1, T do
      if t <= len then
        ids[b][t], mask[b][t] = classify and 3 + rnd() % 50000 or rnd() % V, 1
      else
        ids[b][t], mask[b][t] = 1, 0
      end
    end
    if classify then labels[b] = rnd() % 2 end
  end
  local input = sift.tensor(ids, { dtype = "i64" })
  if not classify then return { input_ids = input, labels = input } end
  return { input_ids = input, attention_mask = sift.tensor(mask, { dtype = "i64" }),
    labels = sift.tensor(labels, { dtype = "i64" }) }
end

local runs = {}
for method in methods:gmatch("[^,]+") do
  local model = load()
  local batch = make_batch(model)
  local set
  if method == "full" then set = sift.full(model)
  elseif method == "sift" then set = sift.sparse(model, { rate = 0.01 })
  elseif method == "lora" then set = sift.lora(model, { r = 8, alpha = 16 })
  else error("unknown method " .. method) end
  local opt = sift.AdamW(set, { lr = 1e-4 })
  if method == "sift" then set:select(batch); opt:step(); opt:zero_grad() end
  runs[#runs + 1] = { method = method, model = model, set = set, opt = opt, batch = batch, times = {} }
end

local function step(r)
  r.model:forward(r.batch, { logits = false }) -- as sift.train does: LM head and loss fused
  r.model:backward()
  r.opt:step()
  r.opt:zero_grad()
end
for _ = 1, 3 do -- warm-up; the last one also counts each method's products per step
  for _, r in ipairs(runs) do
    local f0 = sift.gemm_flops()
    step(r)
    r.gflop = (sift.gemm_flops() - f0) / 1e9
  end
end
-- SIFT_BENCH_PAIRED_RATE=1: after each round, the bare rate of the engine's product (1024^3, median of 3),
-- so each step has the machine's rate of that moment beside it (this VM's speed drifts within minutes)
local paired_rate = os.getenv("SIFT_BENCH_PAIRED_RATE") == "1"
local rates = {}
for i = 1, steps do
  for _, r in ipairs(runs) do
    local t0 = sift.now()
    step(r)
    r.times[i] = (sift.now() - t0) * 1000
  end
  if paired_rate then rates[i] = sift.sgemm_rate(1024, 3, "sift") end
end
local rss = 0
for line in io.lines("/proc/self/status") do
  local kb = line:match("^VmHWM:%s*(%d+)")
  if kb then rss = tonumber(kb) / 1024 end
end
-- paired ratios: step i of each method against step i of the first, which ran right before it, so
-- both saw the same machine state; their median is the robust "ratio measured in the same run"
local function median(v)
  table.sort(v)
  return #v % 2 == 1 and v[(#v + 1) // 2] or (v[#v // 2] + v[#v // 2 + 1]) / 2
end
for _, r in ipairs(runs) do
  local q = {}
  for i = 1, steps do q[i] = r.times[i] / runs[1].times[i] end
  r.paired = median(q)
end
-- with paired rates: for full fine-tuning (a model whose every parameter sits in a product, e.g. GPT-2
-- with its tied head), the median over steps of 6 * parameters * tokens / step time / the rate measured
-- right after it; and the median rate, on every row
local rate_median = paired_rate and median(table.move(rates, 1, steps, 1, {})) -- a copy: median sorts
for _, r in ipairs(runs) do
  r.extra = ""
  if paired_rate and r.method == "full" then
    local q = {}
    for i = 1, steps do q[i] = 6 * r.set:trainable() * B * T / (r.times[i] / 1000) / 1e9 / rates[i] end
    r.extra = (',"paired_sgemm_frac":%.4f'):format(median(q))
  end
  if paired_rate then r.extra = (',"paired_sgemm_gflops":%.1f'):format(rate_median) .. r.extra end
end
for _, r in ipairs(runs) do
  local t = r.times
  local med = median(t) -- sorts t: t[1], t[#t] are the min and max
  print(string.format('{"shape":"%s","method":"%s","batch":%d,"seq":%d,"ms_median":%.2f,"ms_min":%.2f,"ms_max":%.2f,"tokens_per_s":%.0f,"peak_rss_mb":%.1f,"opt_grad_bytes":%d,"trainable":%d,"steps":%d,"interleaved":%s,"paired_ratio_to_%s":%.4f,"gemm_gflop":%.4f%s}',
    dir:match("([^/]+)/*$"), r.method, B, T, med, t[1], t[#t], B * T / (med / 1000), rss, r.set:memory().optimizer_and_grads, r.set:trainable(), steps,
    #runs > 1 and "true" or "false", runs[1].method, r.paired, r.gflop, r.extra))
end
