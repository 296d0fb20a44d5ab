-- bench_train.lua MODEL_DIR METHOD BATCH SEQ [STEPS] — times training steps of one method in this
-- process (so peak resident memory is this method's own) and prints one JSON line:
-- {"method":..., "ms_median":..., "ms_min":..., "ms_max":..., "tokens_per_s":..., "peak_rss_mb":...,
--  "opt_grad_bytes":..., "trainable":...}. METHOD: full | sift | lora. Used by scripts/bench.sh.
local dir, method, B, T, steps = arg[1], arg[2] or "sift", tonumber(arg[3] or 32), tonumber(arg[4] or 32), tonumber(arg[5] or 12)
assert(dir, "usage: bench_train.lua MODEL_DIR METHOD BATCH SEQ [STEPS]")
local model
if dir == "gpt2-124M" then -- random weights, real shape
  model = sift.build({ arch = "gpt2", vocab_size = 50257, n_layer = 12, n_head = 12, d_model = 768, max_pos = 1024 }, { seed = 1 })
else
  model = sift.load(dir)
end
local V = model.config.vocab_size
-- deterministic token ids (xorshift), same for every method
local state = 88172645463325252
local function rnd()
  state = state ~ (state << 13); state = state ~ (state >> 7); state = state ~ (state << 17)
  return state
end
local ids = {}
for b = 1, B do
  ids[b] = {}
  for t = 1, T do ids[b][t] = rnd() % V end
end
local batch = { input_ids = sift.tensor(ids, { dtype = "i64" }), labels = sift.tensor(ids, { dtype = "i64" }) }

local set
if method == "full" then set = sift.full(model)
elseif method == "sift" then set = sift.sparse(model, { rate = 0.01 })
elseif method == "lora" then set = sift.lora(model, { r = 8, alpha = 16 })
else error("unknown method " .. method) end
local opt = sift.AdamW(set, { lr = 1e-4 })
if method == "sift" then set:select(batch); opt:step(); opt:zero_grad() end

local function step()
  model:forward(batch)
  model:backward()
  opt:step()
  opt:zero_grad()
end
for _ = 1, 3 do step() end -- warm-up
local times = {}
for i = 1, steps do
  local t0 = sift.now()
  step()
  times[i] = (sift.now() - t0) * 1000
end
table.sort(times)
local med = #times % 2 == 1 and times[(#times + 1) // 2] or (times[#times // 2] + times[#times // 2 + 1]) / 2
local rss = 0
for line in io.lines("/proc/self/status") do
  local kb = line:match("^VmHWM:%s*(%d+)")
  if kb then rss = tonumber(kb) / 1024 end
end
local mem = set:memory()
print(string.format('{"method":"%s","batch":%d,"seq":%d,"ms_median":%.2f,"ms_min":%.2f,"ms_max":%.2f,"tokens_per_s":%.0f,"peak_rss_mb":%.1f,"opt_grad_bytes":%d,"trainable":%d,"steps":%d}',
  method, B, T, med, times[1], times[#times], B * T / (med / 1000), rss, mem.optimizer_and_grads, set:trainable(), steps))
