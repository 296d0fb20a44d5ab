-- test_train.lua — the Lua training API on real models: sparse sets (budgets, every policy including a
-- Lua function, masks), the calibration gradient applied by the first step, LoRA and full baselines,
-- memory accounting, the published code's quirks, NaN refusal and sift.train on SST-2 for every method.
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check, close = H.test, H.check, H.close

local function gpt2_4m(task)
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  return sift.load(dir, task and { task = task, num_labels = 2 } or nil), sift.tokenizer(dir)
end

local function sst2_batch(tok, n)
  local ds = sift.data.load("sst2", { split = "train" }):take(n or 8)
  return sift.data.encode(ds, tok, { max_len = 32, pad_id = 0 })
end

test("sparse defaults match the paper's budget on gpt2-4m", function()
  local m = gpt2_4m("classify")
  local s = sift.sparse(m, { rate = 0.01 })
  check(#s:targets() == 16, "targets %d", #s:targets())
  check(s:trainable() == 31980, "trainable %d (peer: 31,980)", s:trainable())
  local l = sift.lora(sift.load(m.config.source, { task = "classify", num_labels = 2 }), { r = 8, alpha = 16 })
  check(l:trainable() == 131584, "LoRA trainable %d (peer: 131,584)", l:trainable())
  check(sift.full(m):trainable() == 4274176, "full trainable")
  check(sift.head(m):trainable() == 512, "head trainable")
end)

test("select, step and memory: the calibration gradient is applied", function()
  local m, tok = gpt2_4m("classify")
  local b = sst2_batch(tok)
  local name = "transformer.h.1.mlp.c_fc.weight"
  local before = m:param(name):clone()
  local s = sift.sparse(m, { rate = 0.01 }):select(b)
  check(s:selected(), "not selected")
  local idx = s:indices(name)
  check(idx:numel() == 2622 and idx:dtype() == "i64", "indices")
  local prev = -1
  for i = 1, idx:numel() do check(idx:get(i) > prev, "ascending"); prev = idx:get(i) end
  local opt = sift.AdamW(s, { lr = 1e-3 })
  opt:step()
  local after = m:param(name)
  local changed, changed_outside = 0, 0
  local sel = {}
  for i = 1, idx:numel() do sel[idx:get(i)] = true end
  local flat_before, flat_after = before:reshape(before:numel()), after:reshape(after:numel())
  for e = 0, after:numel() - 1 do
    if flat_after:get(e + 1) ~= flat_before:get(e + 1) then
      if sel[e] then changed = changed + 1 else changed_outside = changed_outside + 1 end
    end
  end
  check(changed > 2000, "only %d selected weights moved after the first step", changed)
  check(changed_outside == 0, "%d unselected weights moved", changed_outside)
  local mem = s:memory()
  check(mem.dense_grads == 0 or mem.dense_grads < 4 * 512 * 2 + 64, "dense grads resident: %d", mem.dense_grads)
  check(mem.increments == 31468 * 4 and mem.moments >= 2 * 31468 * 4, "increment/moment bytes")
  local ok, err = pcall(m.grad, m, name)
  check(not ok and err:find("sparse"), "grad of a hooked target should explain: %s", tostring(err))
end)

-- B sequences of T deterministic token ids below V, as inputs and labels of an LM batch.
local function lm_batch(B, T, V)
  local ids = {}
  for b = 1, B do ids[b] = {} for t = 1, T do ids[b][t] = (b * 131 + t * 17 + b * t) % V end end
  return { input_ids = sift.tensor(ids, { dtype = "i64" }), labels = sift.tensor(ids, { dtype = "i64" }) }
end

test("sift.train's and sift.evaluate's option values are refused by name at the caller's line", function()
  -- they ran silently before: batch = 2.5, max_len = 0, warmup = 5, clip = 0 (every gradient scaled to 0),
  -- schedule = "cosin"; on_step = 5 failed after a step had run; batch = 0 was reported as a bad checkpoint_every
  local m, tok = gpt2_4m("classify")
  local data = sift.data.load("sst2", { split = "train" }):take(8)
  local base = { model = m, data = data, tokenizer = tok, max_steps = 1, quiet = true }
  for _, case in ipairs {
    { { batch = 0 }, "batch must be a whole number >= 1, got 0" },
    { { batch = 2.5 }, "batch must be a whole number >= 1, got 2.5" },
    { { epochs = -1 }, "epochs must be a whole number >= 1, got -1" },
    { { max_len = 0 }, "max_len must be a whole number >= 1, got 0" },
    { { max_steps = 0 }, "max_steps must be a whole number >= 1, got 0" },
    { { eval_batch = "8" }, "eval_batch must be a whole number >= 1, got 8" },
    { { seed = 1.5 }, "seed must be a whole number, got 1.5" },
    { { lr = 0 / 0 }, "lr must be a finite number >= 0" },
    { { warmup = 5 }, "warmup must be a fraction of the steps in [0, 1], got 5" },
    { { schedule = "cosin" }, "schedule must be \"linear\", \"cosine\" or \"constant\", got cosin" },
    { { clip = 0 }, "clip must be a number > 0 (the largest gradient norm; false: none), got 0" },
    { { quiet = "no" }, "quiet must be true or false, got no" },
    { { pack = 0 }, "pack must be true or false, got 0" },
    { { on_step = 5 }, "on_step must be a function, got 5" },
  } do
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(case[1]) do o[k] = v end
    o.method = sift.head(m)
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() local h = sift.train(o) return h end)
    o.method:close()
    check(not ok and tostring(err):find("test_train.lua:" .. line .. ": sift.train: " .. case[2], 1, true),
      "%s: %s", case[2], tostring(err))
  end
  local set = sift.head(m)
  local line = debug.getinfo(1, "l").currentline + 2
  local ok, err = pcall(function()
    local t = sift.trainer({ model = m, method = set, data = data, tokenizer = tok, batch = 0 }) return t end)
  check(not ok and tostring(err):find("test_train.lua:" .. line .. ": sift.train: batch must be", 1, true),
    "sift.trainer names its caller: %s", tostring(err))
  set:close()
  for _, case in ipairs { { { batch = 0 }, "batch must be a whole number >= 1, got 0" },
    { { max_len = -1 }, "max_len must be a whole number >= 1, got -1" } } do
    case[1].tokenizer = tok
    line = debug.getinfo(1, "l").currentline + 1
    ok, err = pcall(function() local r = sift.evaluate(m, data, case[1]) return r end)
    check(not ok and tostring(err):find("test_train.lua:" .. line .. ": sift.evaluate: " .. case[2], 1, true), "%s: %s",
      case[2], tostring(err))
  end
  -- what is allowed still runs: clip = false (none), a whole float batch, every schedule
  for _, sched in ipairs { "linear", "cosine", "constant" } do
    local o = { model = m, method = sift.head(m), data = data, tokenizer = tok, max_steps = 1, quiet = true,
      batch = 4.0, clip = false, schedule = sched, warmup = 0 }
    local h = sift.train(o)
    o.method:close()
    check(#h.loss == 1 and h.loss[1] == h.loss[1], "schedule %s with clip = false runs", sched)
  end
end)

-- sift.gemm_flops counts every product; on gpt2-4m (d 256, 4 layers, vocab 4096, tied head) a step's
-- counts follow from the shapes exactly: forward = blocks (12 d^2 per layer per token) + head (V d) +
-- attention's two products (2 T^2 d per sequence per layer); full backward = twice the blocks and the
-- head (input and weight gradients) + attention's four; SIFT skips exactly the block weight gradients
-- (its k entries are dot products), the frozen head's weight gradient and block 0's qkv input gradient
-- (frozen embeddings and norm). These are the counts behind docs/performance.md's 0.656 floor.
test("products per step: full's exact counts, and exactly what SIFT skips", function()
  local B, T, d, L, V = 4, 16, 256, 4, 4096
  local batch = lm_batch(B, T, V)
  local n = B * T
  local blocks, head, attn = n * L * 12 * d * d, n * V * d, L * B * T * T * d -- multiply-adds
  local counts = {}
  for _, method in ipairs { "full", "sift" } do
    local m = gpt2_4m()
    local set = method == "full" and sift.full(m) or sift.sparse(m, { rate = 0.01 })
    local opt = sift.AdamW(set, { lr = 1e-4 })
    if method == "sift" then set:select(batch); opt:step(); opt:zero_grad() end
    local f0 = sift.gemm_flops()
    m:forward(batch, { logits = false })
    local f1 = sift.gemm_flops()
    m:backward()
    local f2 = sift.gemm_flops()
    opt:step()
    check(sift.gemm_flops() == f2, "the optimizer step made products")
    counts[method] = { fwd = (f1 - f0) // 2, bwd = (f2 - f1) // 2 }
  end
  local full, sp = counts.full, counts.sift
  check(full.fwd == blocks + head + 2 * attn, "full forward %d multiply-adds, expected %d", full.fwd, blocks + head + 2 * attn)
  check(full.bwd == 2 * blocks + 2 * head + 4 * attn, "full backward %d, expected %d", full.bwd, 2 * blocks + 2 * head + 4 * attn)
  local skipped = blocks + head + n * 3 * d * d
  check(sp.fwd + sp.bwd == full.fwd + full.bwd - skipped, "SIFT step %d, expected full's %d less %d",
    sp.fwd + sp.bwd, full.fwd + full.bwd, skipped)
  local ratio = (sp.fwd + sp.bwd) / (full.fwd + full.bwd)
  check(ratio > 0.65 and ratio < 0.66, "SIFT / full products %.4f", ratio)
end)

test("policies: global, random, magnitude, fisher and a Lua function", function()
  local m, tok = gpt2_4m("classify")
  local b = sst2_batch(tok)
  local total = 0
  for _, pol in ipairs { "global", "random", "magnitude" } do
    local s = sift.sparse(m, { rate = 0.01, policy = pol, seed = 3 }):select(b)
    check(s:trainable() == 31980, "%s trainable %d", pol, s:trainable())
    s:close()
  end
  local f = sift.sparse(m, { rate = 0.01, policy = "fisher" }):select({ b, sst2_batch(tok, 16) })
  check(f:trainable() == 31980, "fisher trainable")
  f:close()
  local seen = {}
  local s = sift.sparse(m, { rate = 0.01, policy = function(name, grad, k)
    seen[#seen + 1] = name
    check(grad:numel() > k, "grad is dense")
    local idx = {}
    for i = 1, k do idx[i] = (i - 1) * 3 end -- every third entry
    return idx
  end }):select(b)
  check(#seen == 16, "custom policy called %d times", #seen)
  check(s:indices("transformer.h.0.attn.c_proj.weight"):get(2) == 3, "custom indices used")
  s:close()
  local bad = sift.sparse(m, { policy = function() return { -1 } end })
  local ok, err = pcall(bad.select, bad, b)
  check(not ok and err:find("outside"), "bad custom index: %s", tostring(err))
end)

-- select({micro_batch = n}) runs each calibration batch n rows at a time: every policy must pick from
-- the whole batch's gradient (the parts' shares of its loss terms), not the first part's, and the kept
-- calibration gradient and loss are the whole batch's.
test("select in micro-batches: the whole batch's masks, gradient and loss for every policy", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local tok = sift.tokenizer(dir)
  local rows = sift.data.load("sst2", { split = "train" }):take(20)
  local b1 = sift.data.encode(rows:take(11), tok, { max_len = 32, pad_id = 0 })
  local b2 = sift.data.encode({ table.unpack(rows, 12, 20) }, tok, { max_len = 32, pad_id = 0 })
  local lm = sift.data.encode(rows:take(7), tok, { max_len = 32, pad_id = 0, task = "lm" })
  local name = "transformer.h.2.mlp.c_proj.weight"
  for _, case in ipairs { { "topk", { b1 } }, { "global", { b1 } }, { "fisher", { b1, b2 } }, { "topk", { lm }, "lm" },
    { "custom", { b1 } } } do
    local pol, batches, task = case[1], case[2], case[3]
    local got = {}
    for _, micro in ipairs { false, 4 } do
      local m = sift.load(dir, task ~= "lm" and { task = "classify", num_labels = 2 } or nil)
      local policy = pol ~= "custom" and pol or function(_, g, k) return g:top_indices(k) end -- a Lua policy: the k largest |g|
      local s = sift.sparse(m, { rate = 0.01, policy = policy, targets = { name } })
      s:select(batches, { micro_batch = micro or nil })
      local opt = sift.AdamW(s, { lr = 1e-3 })
      got[micro] = { idx = s:indices(name), norm = opt:clip(), loss = s:calibration_loss() }
    end
    local whole, parts = got[false], got[4]
    check(whole.idx:max_abs_diff(parts.idx) == 0, "%s: the masks differ in micro-batches", pol)
    check(math.abs(whole.norm - parts.norm) <= 1e-5 * whole.norm, "%s: calibration gradient norm %.9g vs %.9g", pol,
      parts.norm, whole.norm)
    check(math.abs(whole.loss - parts.loss) <= 1e-5 * whole.loss, "%s: calibration loss %.9g vs %.9g", pol, parts.loss,
      whole.loss)
  end
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local s = sift.sparse(m, { rate = 0.01 })
  local ok, err = pcall(s.select, s, b1, { micro_batch = 0 })
  check(not ok and tostring(err):find("micro_batch must be a positive integer", 1, true), "micro_batch 0: %s",
    tostring(err))
end)

test("reference quirks: first batch discarded, one target untrained", function()
  local m, tok = gpt2_4m("classify")
  local b = sst2_batch(tok)
  local s = sift.sparse(m, { rate = 0.01, reference = true }):select(b)
  local opt = sift.AdamW(s, { lr = 1e-3 })
  opt:step(); opt:zero_grad()
  -- the calibration gradient was discarded: no increment moved
  local moved = 0
  for _, n in ipairs(s:targets()) do moved = moved + s:increment(n):norm() end
  check(moved == 0, "increments moved although the first batch is discarded (%g)", moved)
  for _ = 1, 2 do
    m:forward(b); m:backward(); opt:step(); opt:zero_grad()
  end
  local frozen = 0
  for _, n in ipairs(s:targets()) do if s:increment(n):norm() == 0 then frozen = frozen + 1 end end
  check(frozen == 1, "%d targets untrained (expected exactly one: the last reached in backward)", frozen)
end)

test("NaN losses and gradients are refused without touching weights", function()
  local m = sift.build({ arch = "gpt2", vocab_size = 50, n_layer = 1, n_head = 2, d_model = 16, max_pos = 16 })
  local s = sift.full(m)
  local opt = sift.AdamW(s, { lr = 1e-2 })
  local w = m:param("transformer.wte.weight")
  w:set(1, 1, 0 / 0)
  local out = m:forward({ input_ids = { { 0, 1, 2 } }, labels = { { 0, 1, 2 } } })
  check(out.loss ~= out.loss, "loss should be NaN")
  m:backward()
  local before = m:param("transformer.h.0.mlp.c_fc.weight"):clone()
  local ok, err = pcall(opt.step, opt)
  check(not ok and err:find("non%-finite"), "step accepted NaN: %s", tostring(err))
  check(m:param("transformer.h.0.mlp.c_fc.weight"):max_abs_diff(before) == 0, "weights changed")
end)

test("a NaN written into a gradient the backward vouched for is still refused", function()
  -- products large enough for the own kernel, whose checked stores let opt:step skip its sweep for the
  -- weights' gradients; handing a gradient out (model:grad) withdraws that, even once the holder let go
  local m = sift.build({ arch = "gpt2", vocab_size = 256, n_layer = 1, n_head = 2, d_model = 128, max_pos = 64 }, { seed = 3 })
  local opt = sift.AdamW(sift.full(m), { lr = 1e-3 })
  local ids = {}
  for b = 1, 4 do ids[b] = {} for t = 1, 64 do ids[b][t] = (b * 31 + t * 7) % 256 end end
  local batch = { input_ids = ids, labels = ids }
  m:forward(batch); m:backward(); opt:step(); opt:zero_grad() -- a finite step goes through
  m:forward(batch); m:backward()
  local name = "transformer.h.0.mlp.c_fc.weight"
  m:grad(name):set(3, 5, 0 / 0)
  collectgarbage(); collectgarbage() -- the holder is gone: the buffer is the model's alone again
  local before = m:param(name):clone()
  local ok, err = pcall(opt.step, opt)
  check(not ok and err:find("non-finite gradient in " .. name, 1, true), "step accepted NaN: %s", tostring(err))
  check(m:param(name):max_abs_diff(before) == 0, "weights changed")
end)

-- Reproducible training, the ground bit-identical resumption and data-parallel runs will stand on: the
-- same steps give the same bits from run to run, and on 1 or 2 threads wherever the own gemm kernel
-- runs (OpenBLAS's threaded products differ by thread count in the last bits, so products too small
-- for the own kernel run on one OpenBLAS thread; with OpenBLAS forced, or on a build without an own
-- kernel, only run-to-run identity is claimed). 16 x 32 tokens put the own gemm's shares on different
-- paths by thread count (one thread: the blocked scheme for the 1024-wide products; two: the whole-A
-- path), both summing each entry in one order; on an AVX2 build LoRA's rank-8 products are below the
-- own kernel's threshold.
local function check_reproducible(load, B, T)
  local batch = lm_batch(B, T, load().config.vocab_size)
  local threads = sift.threads()
  local function run(method, nt)
    sift.threads(nt)
    local m = load()
    local set = method == "full" and sift.full(m) or method == "sift" and sift.sparse(m, { rate = 0.01 })
      or sift.lora(m, { r = 8, alpha = 16, seed = 3 })
    local opt = sift.AdamW(set, { lr = 1e-3 })
    if method == "sift" then set:select(batch); opt:step(); opt:zero_grad() end
    local losses = {}
    for s = 1, 2 do
      losses[s] = m:forward(batch, { logits = false }).loss
      m:backward(); opt:step(); opt:zero_grad()
    end
    local logits = m:forward(batch).logits -- what every method trained, the LoRA adapters included
    sift.threads(threads)
    return m, losses, logits
  end
  for _, method in ipairs { "full", "sift", "lora" } do
    local ref, ref_losses, ref_logits = run(method, 2)
    local others = { { 2, "a second run" } }
    if sift.gemm_kernel() ~= "openblas" then others[2] = { 1, "one thread" } end
    for _, other in ipairs(others) do
      local m, losses, logits = run(method, other[1])
      check(logits:max_abs_diff(ref_logits) == 0, "%s, %s: logits after training differ by %.3g", method, other[2],
        logits:max_abs_diff(ref_logits))
      check(losses[1] == ref_losses[1] and losses[2] == ref_losses[2], "%s, %s: losses %.9g %.9g vs %.9g %.9g",
        method, other[2], losses[1], losses[2], ref_losses[1], ref_losses[2])
      local differing = {}
      for _, name in ipairs(ref:names()) do
        if ref:param(name):max_abs_diff(m:param(name)) ~= 0 then differing[#differing + 1] = name end
      end
      check(#differing == 0, "%s, %s: %d parameters differ (first: %s)", method, other[2], #differing,
        differing[1] or "-")
    end
  end
end

test("training is bit-identical from run to run and on 1 or 2 threads (full, SIFT, LoRA)", function()
  check_reproducible(gpt2_4m, 16, 32)
end)

test("Llama (stories260K: RMSNorm, RoPE, grouped KV heads, SwiGLU) trains bit-identically too", function()
  local path = H.need_shared("models/stories260K/stories260K.bin")
  check_reproducible(function() return sift.load(path) end, 16, 64)
end)

-- Real data comes in batches padded to their own longest row, so each step's buffers have other sizes;
-- the tape's pool hands a step buffers left by a longer one (up to twice the size needed). Whatever an
-- earlier, longer or shorter, batch left in them, each step must give the bits a fresh model gives on
-- that batch alone (mask-padded classification rows included).
test("batches of varying lengths: every step gives a fresh model's bits", function()
  local function build(task)
    return sift.build({ arch = "gpt2", vocab_size = 256, n_layer = 2, n_head = 2, d_model = 128, max_pos = 64 },
      { seed = 5, task = task, num_labels = task and 3 or nil })
  end
  local function batch(B, T, task)
    local ids, mask, labels = {}, {}, {}
    for b = 1, B do
      ids[b], mask[b] = {}, {}
      local len = task and T - (b - 1) % 3 * 5 or T -- classification rows right-padded
      for t = 1, T do ids[b][t], mask[b][t] = t <= len and (b * 37 + t * 11 + T) % 256 or 0, t <= len and 1 or 0 end
      labels[b] = (b + T) % 3
    end
    if task then return { input_ids = ids, attention_mask = mask, labels = labels } end
    return { input_ids = ids, labels = ids }
  end
  local names = { "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.wte.weight" }
  local function step(m, b)
    m:zero_grad()
    local out = m:forward(b, { logits = false })
    m:backward()
    local grads = {}
    for i, name in ipairs(names) do grads[i] = m:grad(name):clone() end
    return out.loss, grads
  end
  for _, task in ipairs { false, "classify" } do
    local m = build(task or nil)
    for _, T in ipairs { 48, 40, 64, 33, 48, 20, 61 } do
      local b = batch(6, T, task)
      local loss, grads = step(m, b)
      local ref_loss, ref_grads = step(build(task or nil), b)
      check(loss == ref_loss, "%s T=%d: loss %.9g, a fresh model's %.9g", task or "lm", T, loss, ref_loss)
      for i, name in ipairs(names) do
        local d = grads[i]:max_abs_diff(ref_grads[i])
        check(d == 0, "%s T=%d: %s's gradient differs from a fresh model's by %.3g", task or "lm", T, name, d)
      end
    end
  end
end)

-- model:backward(scale) back-propagates scale x loss (linear in the seed: a power of two scales every
-- gradient exactly), and a batch run as parts, each scaled by its share of the rows, adds up to the
-- gradient of the whole padded batch.
test("model:backward(scale): scaled gradients, and parts of a batch add up to the whole", function()
  local m = sift.build({ arch = "gpt2", vocab_size = 256, n_layer = 2, n_head = 2, d_model = 128, max_pos = 64 },
    { seed = 7, task = "classify", num_labels = 3 })
  local ids, mask, labels = {}, {}, {}
  for b = 1, 6 do
    ids[b], mask[b], labels[b] = {}, {}, b % 3
    for t = 1, 40 do ids[b][t], mask[b][t] = t <= 8 * b - 4 and (b * 13 + t * 5) % 256 or 0, t <= 8 * b - 4 and 1 or 0 end
  end
  local function part(lo, hi)
    local T = 8 * hi - 4 -- the part's longest row
    local p = { input_ids = {}, attention_mask = {}, labels = {} }
    for b = lo, hi do
      p.input_ids[#p.input_ids + 1] = { table.unpack(ids[b], 1, T) }
      p.attention_mask[#p.attention_mask + 1] = { table.unpack(mask[b], 1, T) }
      p.labels[#p.labels + 1] = labels[b]
    end
    return p
  end
  local names = m:names()
  local function grads()
    local g = {}
    for i, name in ipairs(names) do g[i] = m:grad(name):clone() end
    m:zero_grad()
    return g
  end
  m:zero_grad()
  local whole = m:forward({ input_ids = ids, attention_mask = mask, labels = labels }).loss
  m:backward()
  local ref = grads()
  m:forward({ input_ids = ids, attention_mask = mask, labels = labels })
  m:backward(0.25)
  local quarter = grads()
  local la = m:forward(part(1, 4)).loss
  m:backward(4 / 6)
  local lb = m:forward(part(5, 6)).loss
  m:backward(2 / 6)
  local parts = grads()
  close(la * 4 / 6 + lb * 2 / 6, whole, 1e-6, "loss of the parts")
  for i, name in ipairs(names) do
    local r = ref[i]
    check(quarter[i]:max_abs_diff(r * 0.25) == 0, "%s: backward(0.25) is not a quarter of backward()", name)
    local scale = math.max(r:max_abs_diff(r * 0), 1e-30) -- max |r|
    check(parts[i]:max_abs_diff(r) <= 1e-5 * scale, "%s: parts differ from the whole batch by %.3g (max %.3g)", name,
      parts[i]:max_abs_diff(r), scale)
  end
  m:forward({ input_ids = ids, attention_mask = mask, labels = labels })
  local ok, err = pcall(m.backward, m, 0 / 0)
  check(not ok and tostring(err):find("finite", 1, true), "a NaN scale: %s", tostring(err))
end)

-- Two training histories took the same steps: per-step loss and gradient norm within 1e-5 relative.
local function same_steps(what, want, got)
  for s = 1, want.steps do
    check(math.abs(got.loss[s] - want.loss[s]) <= 1e-5 * math.abs(want.loss[s]), "%s step %d: loss %.9g vs %.9g", what,
      s, got.loss[s], want.loss[s])
    check(math.abs(got.grad_norm[s] - want.grad_norm[s]) <= 1e-5 * want.grad_norm[s],
      "%s step %d: gradient norm %.9g vs %.9g", what, s, got.grad_norm[s], want.grad_norm[s])
  end
end

-- sift.train runs each batch packed (the default): its real tokens only, one row after another. The
-- steps must be those of the padded batch up to float rounding, for classification and LM, whatever
-- trains (dense gradients, SIFT's k entries and its calibration, LoRA's adapters), for fewer products.
test("sift.train packs padded batches: the steps of the padded batch, fewer products", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local tok = sift.tokenizer(dir)
  local data = sift.data.load("sst2", { split = "train" }):take(48)
  local sets = { full = sift.full, sparse = function(m) return sift.sparse(m, { rate = 0.01 }) end,
    lora = function(m) return sift.lora(m, { r = 8, alpha = 16, seed = 3 }) end }
  for _, case in ipairs { { "classify", "full" }, { "classify", "sparse" }, { "classify", "lora" }, { "lm", "full" } } do
    local task, method = case[1], case[2]
    local hist, flops = {}, {}
    for _, pack in ipairs { false, true } do
      local m = sift.load(dir, task == "classify" and { task = "classify", num_labels = 2 } or nil)
      local set = sets[method](m)
      local f0 = sift.gemm_flops()
      hist[pack] = sift.train { model = m, method = set, data = data, tokenizer = tok, batch = 16, lr = 0,
        weight_decay = 0, quiet = true, pack = pack } -- lr 0: each step compares one batch, no drift to amplify
      flops[pack] = sift.gemm_flops() - f0
    end
    local padded, packed = hist[false], hist[true]
    local what = task .. ", " .. method
    check(flops[true] < 0.8 * flops[false], "%s: %.3g GFLOP packed, %.3g padded", what, flops[true] / 1e9,
      flops[false] / 1e9)
    same_steps(what, padded, packed)
  end
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local ok, err = pcall(sift.train, { model = m, method = sift.full(m), tokenizer = tok, quiet = true,
    data = sift.data.new({ { text = "a b c", label = 1 }, { text = "d" } }) })
  check(not ok and tostring(err):find("needs a label", 1, true), "an unlabelled row: %s", tostring(err))
end)

-- micro_batch runs a batch's rows a chunk at a time, each back-propagating its share of the loss terms
-- (rows, or LM next-token targets): the steps of the whole batch up to float rounding, with more passes.
test("sift.train micro_batch: the whole batch's steps from chunks of rows", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local tok = sift.tokenizer(dir)
  local data = sift.data.load("sst2", { split = "train" }):take(48)
  for _, case in ipairs { { "classify", "sparse" }, { "classify", "full" }, { "lm", "full" } } do
    local task, method = case[1], case[2]
    local hist, passes, sets = {}, {}, {}
    for _, micro in ipairs { 0, 5 } do
      local m = sift.load(dir, task == "classify" and { task = "classify", num_labels = 2 } or nil)
      local set = method == "sparse" and sift.sparse(m, { rate = 0.01 }) or sift.full(m)
      sets[micro] = set
      m:profile(true)
      hist[micro] = sift.train { model = m, method = set, data = data, tokenizer = tok, batch = 16, lr = 0,
        weight_decay = 0, quiet = true, micro_batch = micro > 0 and micro or nil } -- lr 0: no drift to amplify
      passes[micro] = m:profile().attention_qkv.calls // m.config.n_layer
      m:profile(false)
    end
    local whole, chunked = hist[0], hist[5]
    local what = task .. ", " .. method
    -- 3 steps of 16 rows: one pass each whole, four (5 + 5 + 5 + 1 rows) chunked, SIFT's calibration
    -- step too (its masks from the whole batch's gradient, its loss from the same passes)
    check(passes[0] == 3 and passes[5] == 4 * 3, "%s: %d passes whole, %d chunked", what, passes[0], passes[5])
    same_steps(what, whole, chunked)
    if method == "sparse" then
      for _, name in ipairs(sets[0]:targets()) do
        check(sets[0]:indices(name):max_abs_diff(sets[5]:indices(name)) == 0, "%s: %s's mask differs chunked", what,
          name)
      end
    end
  end
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local ok, err = pcall(sift.train, { model = m, method = sift.full(m), tokenizer = tok, quiet = true, data = data,
    micro_batch = 0 })
  check(not ok and tostring(err):find("micro_batch must be a positive integer", 1, true), "micro_batch 0: %s",
    tostring(err))
end)

-- sift.evaluate runs rows in packed batches; its predictions, accuracy and loss must be those of each row
-- run alone, in the dataset's order.
test("sift.evaluate: each row's result is the row's alone, in the dataset's order", function()
  local m, tok = gpt2_4m("classify")
  local dev = sift.data.load("sst2", { split = "dev" }):take(120)
  local res = sift.evaluate(m, dev, { tokenizer = tok, batch = 16 })
  local hits, loss, seen = 0, 0, {}
  for i = 1, #dev do
    local out = m:forward(sift.data.encode({ dev[i] }, tok, { max_len = 64, pad_id = 0 }), { grad = false })
    local l = out.logits:totable()[1]
    local pred = l[2] > l[1] and 1 or 0
    check(res.predictions[i] == pred, "row %d: predicted %s, alone %d (logits %.6g %.6g)", i,
      tostring(res.predictions[i]), pred, l[1], l[2])
    seen[pred] = true
    if pred == dev[i].label then hits = hits + 1 end
    loss = loss + out.loss / #dev
  end
  check(seen[0] and seen[1], "the model predicts one class only: the order check would be blind")
  check(res.n == #dev and res.accuracy == hits / #dev, "accuracy %.4f, rows alone %.4f", res.accuracy, hits / #dev)
  close(res.loss, loss, 1e-5, "mean loss")
  local ok, err = pcall(sift.evaluate, m, sift.data.new({ { text = "a b", label = 1 }, { text = "c" } }), { tokenizer = tok })
  check(not ok and err:find("row 2 has no label", 1, true), "unlabelled row: %s", tostring(err))
end)

-- Language models: sift.evaluate gives the mean next-token loss over the target tokens (each token weighs
-- the same, whatever its row's length), perplexity exp(loss) and the token count; mask_prompt counts only the
-- responses of instruction rows {text, text_b}, in evaluation as in sift.train's loss; a checkpoint saved
-- with one setting is refused by a run with the other.
test("language models: evaluate's loss and perplexity per token; mask_prompt in training and evaluation", function()
  local m, tok = gpt2_4m()
  H.need_shared("data/instruct/alpaca_libre_tasks_v1.jsonl")
  local rows = sift.data.load("instruct"):take(9)
  -- by hand, row by row: the summed loss over each row's target tokens
  local function by_hand(mask_prompt)
    local sum, terms = 0, 0
    for i = 1, #rows do
      local b = sift.data.encode({ rows[i] }, tok, { max_len = 48, pad_id = 0, task = "lm" })
      if mask_prompt then -- the prompt is "text " (text and the separator): its tokens are not targets
        local plen = #tok:encode(rows[i].text .. " ")
        for k = 1, plen do b.labels[1][k] = -100 end
      end
      local n = sift.data.loss_terms(b, "lm")
      if n > 0 then
        sum, terms = sum + m:forward(b, { grad = false }).loss * n, terms + n
      end
    end
    return sum / terms, terms
  end
  for _, mp in ipairs { false, true } do
    local want, terms = by_hand(mp)
    local res = sift.evaluate(m, rows, { tokenizer = tok, max_len = 48, batch = 4, mask_prompt = mp })
    close(res.loss, want, 1e-6 * want, ("mask_prompt %s: loss per token"):format(mp))
    check(res.tokens == terms and res.n == #rows, "mask_prompt %s: %d tokens (by hand %d)", mp, res.tokens, terms)
    close(res.perplexity, math.exp(res.loss), 1e-9 * res.perplexity, "perplexity")
  end
  check(by_hand(true) ~= by_hand(false), "masking the prompt changes the loss")
  -- training: the first step's loss is the batch's loss before any update, prompts masked or not
  for _, mp in ipairs { false, true } do
    local mm = gpt2_4m()
    local want = sift.evaluate(mm, rows:take(4), { tokenizer = tok, max_len = 48, batch = 4, mask_prompt = mp }).loss
    local h = sift.train { model = mm, method = sift.full(mm), data = rows:take(4), tokenizer = tok, batch = 4,
      max_len = 48, max_steps = 1, quiet = true, mask_prompt = mp, eval = rows:slice(5, 9) }
    close(h.loss[1], want, 1e-6 * want, ("mask_prompt %s: the first step's loss"):format(mp))
    check(h.eval[1].perplexity and h.eval[1].tokens > 0, "an LM run's evaluation has a perplexity")
  end
  -- a checkpoint remembers the setting
  local path = os.tmpname()
  local function trainer(mp, resume)
    local mm = gpt2_4m()
    return sift.trainer { model = mm, method = sift.sparse(mm, { rate = 0.01 }), data = rows, tokenizer = tok,
      batch = 3, max_len = 48, quiet = true, mask_prompt = mp, resume = resume }
  end
  local tr = trainer(true)
  tr:step(1)
  tr:save(path)
  local ok, err = pcall(trainer, false, path)
  check(not ok and tostring(err):find("mask_prompt = true, this run has nil", 1, true), "resume without mask_prompt: %s",
    tostring(err))
  check(pcall(trainer, true, path), "resume with it")
  tr = trainer(false)
  tr:step(1)
  tr:save(path)
  ok, err = pcall(trainer, true, path)
  check(not ok and tostring(err):find("mask_prompt = nil, this run has true", 1, true), "resume with mask_prompt: %s",
    tostring(err))
  os.remove(path)
  local mc = gpt2_4m("classify")
  ok, err = pcall(sift.train, { model = mc, method = sift.full(mc), data = sift.data.load("sst2"):take(4), tokenizer = tok,
    mask_prompt = true, quiet = true })
  check(not ok and tostring(err):find("language models", 1, true), "mask_prompt on a classifier: %s", tostring(err))
end)

-- STS-B (GLUE's regression task, scores 0-5) on a one-output head: SIFT training lowers the MSE, and
-- sift.evaluate reports pearson / spearman / mse with each row's predicted score. A head that does not
-- match the data is refused with a message that says how to load the model.
test("STS-B regression: sift.train lowers the loss; evaluate gives pearson, spearman, mse", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local tok = sift.tokenizer(dir)
  local m = sift.load(dir, { task = "classify", num_labels = 1 })
  local train = sift.data.load("stsb"):shuffle(0):take(256)
  local dev = sift.data.load("stsb", { split = "dev" }):take(100)
  local h = sift.train { model = m, method = sift.sparse(m, { rate = 0.01 }), data = train, tokenizer = tok, batch = 32,
    lr = 3e-3, quiet = true }
  check(h.loss[#h.loss] < 0.5 * h.loss[1], "loss %.4f -> %.4f", h.loss[1], h.loss[#h.loss])
  local res = sift.evaluate(m, dev, { tokenizer = tok })
  check(res.accuracy == nil and res.n == #dev and #res.predictions == #dev, "regression results: n %s", tostring(res.n))
  local se = 0
  for i = 1, #dev do se = se + (res.predictions[i] - dev[i].label) ^ 2 end
  close(res.mse, se / #dev, 1e-9, "mse of the predictions")
  check(math.abs(res.loss - res.mse) <= 1e-4 * res.mse, "the model's loss %.6g vs the mse %.6g", res.loss, res.mse)
  check(res.pearson > -1 and res.pearson < 1 and res.spearman > -1 and res.spearman < 1, "correlations %s %s",
    tostring(res.pearson), tostring(res.spearman))
  local two = sift.load(dir, { task = "classify", num_labels = 2 })
  local ok, err = pcall(sift.train, { model = two, method = sift.full(two), data = train, tokenizer = tok, quiet = true })
  check(not ok and tostring(err):find("num_labels = 1", 1, true), "a two-class head on STS-B: %s", tostring(err))
end)

test("sift.train: every method learns on SST-2 with the same schedule", function()
  H.need_shared("data/sst2/train.txt")
  local results = {}
  for _, method in ipairs { "sift", "lora", "full", "head" } do
    local m, tok = gpt2_4m("classify")
    local set = method == "sift" and sift.sparse(m, { rate = 0.01 }) or method == "lora" and sift.lora(m)
      or method == "full" and sift.full(m) or sift.head(m)
    local train = sift.data.load("sst2", { split = "train" }):take(256)
    local h = sift.train { model = m, method = set, data = train, tokenizer = tok, max_len = 32, batch = 32,
      epochs = 1, lr = method == "full" and 3e-4 or 3e-3, seed = 0, quiet = true }
    check(#h.loss == 8, "%s: %d steps", method, #h.loss)
    for _, l in ipairs(h.loss) do check(l == l, "%s: NaN loss", method) end
    results[method] = h
  end
  check(results.sift.trainable == 31980, "history.trainable")
  -- identical data order and schedule: the first losses (before any update) agree
  close(results.sift.loss[1], results.full.loss[1], 1e-4, "first loss sift vs full")
  close(results.lora.loss[1], results.full.loss[1], 1e-4, "first loss lora vs full")
  close(results.sift.lr[3], results.full.lr[3] * 10, 1e-9, "same schedule shape")
end)

test("sift.train stops cleanly on an interruption between steps", function()
  local m, tok = gpt2_4m("classify")
  H.need_shared("data/sst2/train.txt")
  local train = sift.data.load("sst2", { split = "train" }):take(128)
  local h = sift.train { model = m, method = sift.sparse(m), data = train, tokenizer = tok, batch = 16, max_len = 24,
    quiet = true, on_step = function(st) if st.step == 3 then error("interrupted") end end }
  check(h.interrupted and h.interrupted:find("step 3"), "interrupted: %s", tostring(h.interrupted))
  check(#h.loss == 3, "%d losses recorded", #h.loss)
  local out = m:forward(sst2_batch(tok), { grad = false })
  check(out.loss == out.loss, "model usable after the interruption")
end)

-- tr:save(path) after some steps, then sift.trainer{..., resume = path} on a freshly loaded model: the
-- remaining steps give the uninterrupted run's bits (every parameter, the losses, gradient norms and
-- evaluations), for SIFT, LoRA and full fine-tuning and an LM, across an epoch boundary.
test("a saved trainer resumes with the uninterrupted run's bits (SIFT, LoRA, full, LM)", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local tok = sift.tokenizer(dir)
  local data = sift.data.load("sst2", { split = "train" }):take(40)
  local dev = sift.data.load("sst2", { split = "dev" }):take(16)
  local path = os.tmpname()
  local makers = { sparse = function(m) return sift.sparse(m, { rate = 0.01 }) end, full = sift.full,
    lora = function(m) return sift.lora(m, { r = 4, seed = 3 }) end }
  for _, case in ipairs { { "sparse", "classify" }, { "lora", "classify" }, { "full", "classify" }, { "sparse", "lm" } } do
    local method, task = case[1], case[2]
    local function trainer(resume)
      local m = sift.load(dir, task == "classify" and { task = "classify", num_labels = 2 } or nil)
      local tr = sift.trainer { model = m, method = makers[method](m), data = data, tokenizer = tok, batch = 8,
        epochs = 2, lr = 1e-3, quiet = true, eval = task == "classify" and dev or nil, micro_batch = task == "lm" and 3 or nil,
        resume = resume }
      return m, tr
    end
    local what = method .. ", " .. task
    local m1, t1 = trainer()
    local h1 = t1:step()
    local _, t2 = trainer()
    t2:step(4) -- 5 steps an epoch: the resumed run crosses into epoch 2 and evaluates there
    t2:save(path)
    local m3, t3 = trainer(path)
    check(t3.step_no == 4, "%s: resumed at step %d", what, t3.step_no)
    local h3 = t3:step()
    check(h3.steps == h1.steps and h1.steps == 10, "%s: %d and %d steps", what, h1.steps, h3.steps)
    for i = 1, h1.steps do
      check(h3.loss[i] == h1.loss[i] and h3.grad_norm[i] == h1.grad_norm[i] and h3.lr[i] == h1.lr[i],
        "%s step %d: loss %.9g vs %.9g", what, i, h3.loss[i], h1.loss[i])
    end
    check(#h3.eval == #h1.eval, "%s: %d evaluations, want %d", what, #h3.eval, #h1.eval)
    for i, e in ipairs(h1.eval) do
      check(h3.eval[i].accuracy == e.accuracy and h3.eval[i].loss == e.loss, "%s: evaluation %d differs", what, i)
    end
    local worst = 0
    for _, n in ipairs(m1:names()) do worst = math.max(worst, m1:param(n):max_abs_diff(m3:param(n))) end
    check(worst == 0, "%s: the resumed weights differ by %.3g", what, worst)
  end

  do -- saved before the first step: the resumed run calibrates its masks itself
    local function trainer(resume)
      local mm = sift.load(dir, { task = "classify", num_labels = 2 })
      return mm, sift.trainer { model = mm, method = sift.sparse(mm, { rate = 0.01 }), data = data, tokenizer = tok,
        batch = 8, max_steps = 2, quiet = true, resume = resume }
    end
    local m1, t1 = trainer()
    t1:step()
    local _, t0 = trainer()
    t0:save(path)
    local m2, t2 = trainer(path)
    t2:step()
    local worst = 0
    for _, n in ipairs(m1:names()) do worst = math.max(worst, m1:param(n):max_abs_diff(m2:param(n))) end
    check(worst == 0, "saved at step 0: the resumed weights differ by %.3g", worst)
  end

  -- refused, naming what differs, and leaving the model as it was
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local tr = sift.trainer { model = m, method = sift.sparse(m, { rate = 0.01 }), data = data, tokenizer = tok, batch = 8,
    quiet = true }
  tr:step(2)
  tr:save(path)
  local function refused(want, o, model)
    model = model or sift.load(dir, { task = "classify", num_labels = 2 })
    local name = "transformer.h.1.mlp.c_fc.weight"
    local before = model:param(name):clone()
    local args = { model = model, method = (o.method or function(mm) return sift.sparse(mm, { rate = 0.01 }) end)(model),
      data = o.data or data, tokenizer = tok, batch = o.batch or 8, quiet = true, resume = o.resume or path }
    local ok, err = pcall(sift.trainer, args)
    check(not ok and tostring(err):find(want, 1, true), "want '%s': %s", want, tostring(err))
    check(model:param(name):max_abs_diff(before) == 0, "a refused resume changed the model (%s)", want)
  end
  refused("batch = 8, this run has 4", { batch = 4 })
  refused("was saved with data = ", { data = sift.data.load("sst2", { split = "train" }):shuffle(1):take(40) })
  refused("method = sparse, this run has full", { method = sift.full })
  refused("reference quirks", { method = function(mm) return sift.sparse(mm, { rate = 0.01, reference = true }) end })
  refused("dense tensor 1 is score.weight in the checkpoint, transformer.ln_f.bias in this set",
    { method = function(mm) return sift.sparse(mm, { rate = 0.01, dense = { "ln_f%.bias" } }) end })
  local other = sift.load(dir, { task = "classify", num_labels = 2 }) -- not the base: fine-tuned one step
  sift.train { model = other, method = sift.full(other), data = data, tokenizer = tok, batch = 8, max_steps = 1, quiet = true }
  refused("differs from the checkpoint's base weights", {}, other)
  local delta = os.tmpname()
  local s2 = sift.sparse(sift.load(dir, { task = "classify", num_labels = 2 }), { rate = 0.01, policy = "magnitude" })
  s2:select(sst2_batch(tok, 2))
  s2:save_delta(delta)
  refused("is not a trainer checkpoint", { resume = delta })
  local f = io.open(path, "rb")
  local bytes = f:read("a")
  f:close()
  f = io.open(path, "wb")
  f:write(bytes:sub(1, #bytes // 2)) -- truncated
  f:close()
  refused("resume:", {})
  refused("resume:", { resume = path .. ".missing" })
  os.remove(path)
  os.remove(delta)
end)

-- sift.train{checkpoint = path}: saved every checkpoint_every steps and on Ctrl-C. A Ctrl-C that arrives
-- while a step commits its update is taken after it (sift._interrupt() stands for the signal: the step
-- after the request completes, then training stops), so the file holds a whole step; resuming from it
-- gives the uninterrupted run's bits.
test("sift.train checkpoint: saved on Ctrl-C after a whole step, resumed bit for bit", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local tok = sift.tokenizer(dir)
  local data = sift.data.load("sst2", { split = "train" }):take(40)
  local path = os.tmpname()
  local function run(o)
    local m = sift.load(dir, { task = "classify", num_labels = 2 })
    local args = { model = m, method = sift.sparse(m, { rate = 0.01 }), data = data, tokenizer = tok, batch = 8,
      epochs = 2, quiet = true }
    for k, v in pairs(o) do args[k] = v end
    return m, sift.train(args)
  end
  local m1, h1 = run {}
  -- requested after step 3's update: taken at the end of step 4's (no periodic save in between)
  local _, h2 = run { checkpoint = path, checkpoint_every = 100,
    on_step = function(st) if st.step == 3 then sift._interrupt() end end }
  check(h2.interrupted and h2.interrupted:find("after step 4", 1, true) and h2.steps == 4, "interrupted: %s (%d steps)",
    tostring(h2.interrupted), h2.steps)
  -- with a periodic save after step 3, the request is taken right after that save
  local _, h4 = run { checkpoint = path .. ".every3", checkpoint_every = 3,
    on_step = function(st) if st.step == 3 then sift._interrupt() end end }
  check(h4.interrupted and h4.interrupted:find("after step 3", 1, true) and h4.steps == 3, "interrupted: %s (%d steps)",
    tostring(h4.interrupted), h4.steps)
  os.remove(path .. ".every3")
  local m3, h3 = run { resume = path }
  check(h3.steps == 10 and h3.loss[10] == h1.loss[10], "resumed: %d steps, last loss %.9g vs %.9g", h3.steps,
    h3.loss[10] or 0 / 0, h1.loss[10])
  local worst = 0
  for _, n in ipairs(m1:names()) do worst = math.max(worst, m1:param(n):max_abs_diff(m3:param(n))) end
  check(worst == 0, "the resumed weights differ by %.3g", worst)
  local ok, err = pcall(run, { checkpoint = path, checkpoint_every = 0 })
  check(not ok and tostring(err):find("checkpoint_every must be a positive integer", 1, true), "every 0: %s", tostring(err))
  os.remove(path)
end)

test("a saved delta reproduces the fine-tuned logits in a fresh model; unapply is bit-exact", function()
  local m, tok = gpt2_4m("classify")
  H.need_shared("data/sst2/train.txt")
  local ds = sift.data.load("sst2", { split = "train" }):take(64)
  local s = sift.sparse(m, { rate = 0.01 })
  sift.train { model = m, method = s, data = ds, tokenizer = tok, batch = 16, max_len = 32, quiet = true, lr = 3e-3 }
  local b = sst2_batch(tok)
  local tuned = m:forward(b, { grad = false }).logits:clone()
  local path = os.tmpname()
  local d = s:save_delta(path, { note = "test" })
  check(tostring(d):find("16 sparse tensors %(31468 values%), 1 dense"), "summary: %s", tostring(d))
  local fresh = gpt2_4m("classify")
  local base = fresh:param("transformer.h.2.attn.c_attn.weight"):clone()
  local loaded = sift.load_delta(path)
  check(loaded:check(fresh) == true, "check")
  loaded:apply(fresh)
  check(fresh:forward(b, { grad = false }).logits:max_abs_diff(tuned) == 0, "logits differ after apply")
  check(fresh:param("transformer.h.2.attn.c_attn.weight"):max_abs_diff(m:param("transformer.h.2.attn.c_attn.weight")) == 0, "weights differ")
  loaded:unapply(fresh)
  check(fresh:param("transformer.h.2.attn.c_attn.weight"):max_abs_diff(base) == 0, "unapply not exact")
  -- a model whose base weights differ is refused, naming the tensor
  local other = gpt2_4m("classify")
  local w = other:param("transformer.h.0.attn.c_proj.weight")
  w:set(1, 1, w:get(1, 1) + 1)
  local ok, err = pcall(loaded.apply, loaded, other)
  check(not ok and err:find("transformer.h.0.attn.c_proj.weight") and err:find("SHA"), "mismatch refused: %s", tostring(err))
  os.remove(path)
end)

H.run()
