-- test_analysis.lua — sift.coverage (gradient concentration) against the peer figures of
-- ../shared/README.md on gpt2-4m, pre-trained vs random init; its refusal to disturb an attached set;
-- top_share against a plain-Lua computation; sift.mask_density grids; t:top_indices, idx:count_common and
-- sift.budget against plain Lua; sift.masks against the masks a sparse set selects; sift.mask_overlap and
-- sift.mask_stability against counts made by hand.
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check, close = H.test, H.check, H.close

local FRACTIONS = { 0.001, 0.01, 0.05, 0.1 }
-- ../shared/README.md, "Gradient concentration on gpt2-4m": share of ||g||_2 in the top x %
local PEER_PRETRAINED = { 0.379, 0.647, 0.833, 0.900 }
local PEER_RANDOM = { 0.241, 0.502, 0.746, 0.847 }

local function gpt2_dir()
  return (H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", ""))
end

-- the recipe of the peer figure: first 64 SST-2 training sentences, max 64 tokens, right padding with
-- the eos id 0 and an attention mask (GPT-2 has no pad token), a fresh 2-way score head
local function sst2_batch(tok)
  H.need_shared("data/sst2/train.txt")
  local ds = sift.data.load("sst2", { split = "train" }):take(64)
  return sift.data.encode(ds, tok, { max_len = 64, pad_id = 0 })
end

local tiny, tiny_batch = H.tiny_classifier, H.tiny_batch

local function fmt(t)
  local p = {}
  for i, v in ipairs(t) do p[i] = ("%.3f"):format(v) end
  return table.concat(p, " ")
end

-- The peer figure is one draw of the fresh score head (PyTorch's RNG); the gradients reaching the blocks
-- go through that head, and the pre-trained model's concentration moves with its draw (our seeds 0-7:
-- 0.25-0.39 at 0.1 %), while the random-init model's barely does (0.234-0.257). So: the random-init
-- figures within 0.03 of the peer's for every seed; the pre-trained peer inside the range of 8 head draws
-- (seeds 0-7); and the pre-trained model more concentrated than the random one on average over them.
test("coverage on gpt2-4m matches the peer figures (pre-trained vs random init, over head draws)", function()
  local dir = gpt2_dir()
  local tok = sift.tokenizer(dir)
  local batch = sst2_batch(tok)
  local lo, hi, mean, mean_r = {}, {}, {}, {}
  for i = 1, #FRACTIONS do lo[i], hi[i], mean[i], mean_r[i] = math.huge, -math.huge, 0, 0 end
  local cfg
  local SEEDS, RANDOM_SEEDS = 8, 2
  for seed = 0, SEEDS - 1 do
    local m = sift.load(dir, { task = "classify", num_labels = 2, seed = seed })
    cfg = m.config
    local c = sift.coverage(m, batch, { fractions = FRACTIONS })
    check(#c.names == 16, "%d target tensors (expected the 16 block matrices)", #c.names)
    if seed == 0 then
      print(("    pre-trained, seed 0: share of ||g||_2 at 0.1/1/5/10 %%: %s (peer %s)"):format(fmt(c.mean), fmt(PEER_PRETRAINED)))
      print(("    pre-trained, seed 0: share of ||g||_2^2:               %s"):format(fmt(c.mean_sq)))
    end
    for i = 1, #FRACTIONS do
      lo[i], hi[i] = math.min(lo[i], c.mean[i]), math.max(hi[i], c.mean[i])
      mean[i] = mean[i] + c.mean[i] / SEEDS
    end
  end
  print(("    pre-trained over %d head draws: min %s, max %s"):format(SEEDS, fmt(lo), fmt(hi)))
  for i = 1, #FRACTIONS do
    check(PEER_PRETRAINED[i] >= lo[i] - 0.01 and PEER_PRETRAINED[i] <= hi[i] + 0.01,
      "pre-trained at %g: peer %.3f outside our %d head draws' range [%.3f, %.3f]", FRACTIONS[i], PEER_PRETRAINED[i],
      SEEDS, lo[i], hi[i])
  end
  for seed = 0, RANDOM_SEEDS - 1 do
    local r = sift.build({ arch = "gpt2", vocab_size = cfg.vocab_size, n_layer = cfg.n_layer, n_head = cfg.n_head,
      d_model = cfg.d_model, max_pos = cfg.max_pos }, { task = "classify", num_labels = 2, seed = seed })
    local cr = sift.coverage(r, batch, { fractions = FRACTIONS })
    print(("    random init, seed %d: share of ||g||_2 at 0.1/1/5/10 %%: %s (peer %s)"):format(seed, fmt(cr.mean), fmt(PEER_RANDOM)))
    for i = 1, #FRACTIONS do
      close(cr.mean[i], PEER_RANDOM[i], 0.03, ("random init, seed %d, at %g"):format(seed, FRACTIONS[i]))
      mean_r[i] = mean_r[i] + cr.mean[i] / RANDOM_SEEDS
    end
  end
  for i = 1, #FRACTIONS do
    check(mean[i] > mean_r[i] + 0.01, "pre-trained should be more concentrated at %g on average: %.3f vs %.3f",
      FRACTIONS[i], mean[i], mean_r[i])
  end
  check(mean[1] > mean_r[1] + 0.05, "at 0.1 %%, by a clear margin: %.3f vs %.3f", mean[1], mean_r[1])
end)

test("coverage result: structure, per-tensor shares, means, defaults", function()
  local m = tiny()
  local c = sift.coverage(m, tiny_batch())
  check(#c.fractions == 3 and c.fractions[1] == 0.001 and c.fractions[3] == 0.1, "default fractions")
  check(#c.names == 8, "%d targets (2 layers x 4 matrices)", #c.names)
  local mean = { 0, 0, 0 }
  for _, n in ipairs(c.names) do
    local t = c.tensors[n]
    check(t and #t.norm == 3 and #t.sq == 3, "entry for %s", n)
    for i = 1, 3 do
      check(t.norm[i] >= t.sq[i] - 1e-12 and t.norm[i] <= 1 + 1e-12, "%s: shares in order", n)
      if i > 1 then check(t.norm[i] >= t.norm[i - 1], "%s: monotone in the fraction", n) end
      mean[i] = mean[i] + t.norm[i] / #c.names
    end
  end
  for i = 1, 3 do close(c.mean[i], mean[i], 1e-12, "mean") end
  check(tostring(c):find("gradient concentration", 1, true), "tostring")
  -- targets by pattern
  local only = sift.coverage(m, tiny_batch(), { targets = { "c_fc%.weight" }, fractions = { 0.5 } })
  check(#only.names == 2 and only.names[1]:find("c_fc"), "targets pattern: %s", table.concat(only.names, ","))
  local ok, err = pcall(sift.coverage, m, { input_ids = { { 1, 2 } } })
  check(not ok and err:find("labels"), "a batch without labels is refused: %s", tostring(err))
  ok, err = pcall(sift.coverage, m, tiny_batch(), { fractions = { 0 } })
  check(not ok and err:find("fractions"), "fraction 0 is refused: %s", tostring(err))
end)

test("top_share agrees with a plain-Lua computation on a real gradient", function()
  local m = tiny(3)
  local b = tiny_batch()
  m:zero_grad()
  m:forward(b)
  m:backward()
  local name = "transformer.h.1.mlp.c_fc.weight"
  local g = m:grad(name)
  local n = g:numel()
  local flat = g:reshape(n)
  local a, total = {}, 0
  for i = 1, n do
    a[i] = math.abs(flat:get(i))
    total = total + a[i] * a[i]
  end
  table.sort(a, function(x, y) return x > y end)
  local fr = { 0.0001, 0.01, 0.1, 0.5, 1 }
  local norm, sq = g:top_share(fr)
  for i, x in ipairs(fr) do
    local k = math.max(1, math.floor(x * n))
    local part = 0
    for j = 1, k do part = part + a[j] * a[j] end
    close(sq[i], part / total, 1e-6, ("share of ||g||^2 at %g"):format(x))
    close(norm[i], math.sqrt(part / total), 1e-6, ("share of ||g|| at %g"):format(x))
  end
  m:zero_grad()
  -- coverage zeroes gradients before it starts: a stale gradient does not leak into its figures
  local c1 = sift.coverage(m, b, { fractions = fr })
  m:forward(b)
  m:backward() -- leave a gradient behind
  local c2 = sift.coverage(m, b, { fractions = fr })
  for i = 1, #fr do close(c1.mean[i], c2.mean[i], 1e-12, "repeatable") end
end)

test("coverage refuses a model an existing set is attached to, without disturbing it", function()
  local b = tiny_batch()
  local function run(with_coverage)
    local m = tiny(1)
    local s = sift.sparse(m, { rate = 0.05 }):select(b)
    local opt = sift.AdamW(s, { lr = 1e-2 })
    if with_coverage then
      local ok, err = pcall(sift.coverage, m, b)
      check(not ok and err:find("hooked") and err:find("close", 1, true), "hooked model: %s", tostring(err))
    end
    opt:step()
    return m, s
  end
  local m1 = run(false)
  local m2, s2 = run(true)
  for _, n in ipairs(m1:names()) do
    check(m1:param(n):max_abs_diff(m2:param(n)) == 0, "%s differs after a refused coverage", n)
  end
  -- once the set is closed the model is whole again and coverage works
  s2:close()
  local c = sift.coverage(m2, b)
  check(#c.names == 8, "coverage after close")
  -- LoRA / head-only sets freeze the model: refused too
  local m3 = tiny(2)
  local l = sift.lora(m3, { r = 2 })
  local ok, err = pcall(sift.coverage, m3, b)
  check(not ok and err:find("lora"), "LoRA set attached: %s", tostring(err))
  l:close()
  check(pcall(sift.coverage, m3, b), "coverage after closing the LoRA set")
  local m4 = tiny(2)
  local h = sift.head(m4)
  ok, err = pcall(sift.coverage, m4, b)
  check(not ok and err:find("full"), "head-only set attached: %s", tostring(err))
  h = nil
end)

test("mask_density: grids, block fractions and overall density", function()
  local m = tiny(4)
  local b = tiny_batch()
  -- a custom policy choosing the first k flat offsets: the top rows are full, the rest empty
  local s = sift.sparse(m, { rate = 0.25, policy = function(_, _, k)
    local idx = {}
    for i = 1, k do idx[i] = i - 1 end
    return idx
  end }):select(b)
  local d = sift.mask_density(s, { rows = 4, cols = 4 })
  check(#d.names == 8, "%d grids", #d.names)
  local name = "transformer.h.0.mlp.c_fc.weight" -- (16, 64): k = int(0.25 * 1024) + 1 = 257
  local g = d[name]
  check(g and #g == 4 and #g[1] == 4, "grid 4x4")
  check(g.shape[1] == 16 and g.shape[2] == 64, "shape")
  check(s:budget(name) == 257 and g.selected == 257, "budget %d, selected %d", s:budget(name), g.selected)
  close(g.density, 257 / 1024, 1e-12, "overall density")
  -- offsets 0..255 fill rows 0..3 (block row 1); offset 256 is row 4, column 0 (block 2, 1 of 4 x 16)
  for j = 1, 4 do
    close(g[1][j], 1, 1e-12, "first block row full")
    close(g[2][j], j == 1 and 1 / 64 or 0, 1e-12, "second block row")
    for i = 3, 4 do close(g[i][j], 0, 1e-12, "other block rows empty") end
  end
  -- top-k masks: the block fractions average (weighted by block size) to the overall density
  local s2 = sift.sparse(tiny(4), { rate = 0.1 }):select(b)
  local d2 = sift.mask_density(s2) -- default 16 x 16, clipped to the weight's dims
  for _, n in ipairs(d2.names) do
    local gg = d2[n]
    local R, C = gg.shape[1], gg.shape[2]
    check(#gg == math.min(16, R) and #gg[1] == math.min(16, C), "%s grid dims", n)
    local k = s2:budget(n)
    close(gg.density, k / (R * C), 1e-12, n .. " density")
    local sum = 0
    for i = 1, #gg do for j = 1, #gg[i] do
      check(gg[i][j] >= 0 and gg[i][j] <= 1, "fraction in [0, 1]")
      sum = sum + gg[i][j]
    end end
    -- equal-size blocks here (dims divisible by the grid): the plain mean equals the density
    if R % #gg == 0 and C % #gg[1] == 0 then close(sum / (#gg * #gg[1]), gg.density, 1e-9, n .. " mean") end
  end
  check(tostring(d2):find("mask density", 1, true), "tostring")
  local unselected = sift.sparse(tiny(5), { rate = 0.1 })
  local ok, err = pcall(sift.mask_density, unselected)
  check(not ok and err:find("select"), "unselected set: %s", tostring(err))
  ok, err = pcall(sift.mask_density, sift.lora(tiny(6)))
  check(not ok and err:find("sparse"), "LoRA set: %s", tostring(err))
end)

-- plain-Lua reference: the k offsets (0-based) of largest |v|, ties to the lower offset, ascending
local function lua_top(values, k)
  local order = {}
  for i = 1, #values do order[i] = i end
  table.sort(order, function(a, b)
    local x, y = math.abs(values[a]), math.abs(values[b])
    if x ~= y then return x > y end
    return a < b
  end)
  local out = {}
  for i = 1, k do out[i] = order[i] - 1 end
  table.sort(out)
  return out
end

test("top_indices, count_common and budget agree with plain Lua", function()
  local v = { 3, -5, 1, 0.5, -4, 5, 0, -0.5, 2, -3 }
  local t = sift.tensor(v)
  for k = 0, #v do
    local got, want = t:top_indices(k):totable(), lua_top(v, k)
    check(#got == k, "k = %d: %d offsets", k, #got)
    for i = 1, k do check(got[i] == want[i], "k = %d entry %d: %s vs %s", k, i, tostring(got[i]), tostring(want[i])) end
  end
  check(t:top_indices(2):dtype() == "i64", "i64 offsets")
  local ok, err = pcall(t.top_indices, t, #v + 1)
  check(not ok and err:find("outside"), "k above numel: %s", tostring(err))
  -- a real gradient, 2-D: flat offsets
  local g = sift.randn(37, 29, { seed = 5 })
  local flat = g:reshape(g:numel()):totable()
  local want = lua_top(flat, 50)
  local got = g:top_indices(50):totable()
  for i = 1, 50 do check(got[i] == want[i], "randn top 50 entry %d", i) end
  -- common offsets against a Lua set
  for trial = 1, 5 do
    local a, b = sift.randn(400, { seed = trial }):top_indices(60), sift.randn(400, { seed = trial + 100 }):top_indices(90)
    local in_a, c = {}, 0
    for _, x in ipairs(a:totable()) do in_a[x] = true end
    for _, x in ipairs(b:totable()) do if in_a[x] then c = c + 1 end end
    check(a:count_common(b) == c and b:count_common(a) == c, "trial %d: %d common", trial, c)
    check(a:count_common(a) == 60, "with itself")
  end
  ok, err = pcall(function() return sift.tensor({ 3, 1 }):count_common(sift.tensor({ 1 })) end)
  check(not ok and err:find("i64"), "f32 offsets refused: %s", tostring(err))
  local idx = sift.randn(5, { seed = 1 }):top_indices(5)
  idx:set(1, 4)
  ok, err = pcall(idx.count_common, idx, idx)
  check(not ok and err:find("ascending"), "unsorted offsets refused: %s", tostring(err))
  -- the sparse sets' k: floor(rate * numel) + 1, at most numel
  check(sift.budget(0.01, 1000) == 11 and sift.budget(0.01, 50) == 1 and sift.budget(1, 7) == 7
    and sift.budget(0, 9) == 1 and sift.budget(0.5, 0) == 0, "budget rule")
  local m = tiny(2)
  local s = sift.sparse(m, { rate = 0.03 })
  for _, n in ipairs(s:targets()) do
    check(s:budget(n) == sift.budget(0.03, m:param(n):numel()), "%s: the set's budget", n)
  end
  ok, err = pcall(sift.budget, 1.5, 10)
  check(not ok and err:find("rate"), "rate above 1: %s", tostring(err))
  ok, err = pcall(sift.sparse, m, { rate = 2 }) -- (its message was lost to an unsupported %g)
  check(not ok and err:find("rate must be in (0, 1], got 2", 1, true), "sift.sparse rate 2: %s", tostring(err))
end)

test("sets' and optimizers' options that must be whole or finite numbers are refused by name", function()
  local m = tiny(2)
  local ok, err
  -- whole-number options: a rank or seed that is no integer is refused by name, at the caller's line (a rank of
  -- 1e12 was cast to int: undefined, caught by UBSan in the API fuzz)
  for _, case in ipairs {
    { sift.lora, { r = 1e12 }, "sift.lora: r must be a whole number from 1 to 2147483647, got 1000000000000.0" },
    { sift.lora, { r = 2.5 }, "r must be a whole number from 1 to 2147483647, got 2.5" },
    { sift.lora, { r = 0 }, "r must be a whole number from 1 to 2147483647, got 0" },
    { sift.lora, { r = "x" }, "r must be a whole number from 1 to 2147483647, got x" },
    { sift.lora, { r = 2, seed = 1.5 }, "sift.lora: seed must be an integer, got 1.5" },
    { sift.sparse, { seed = 1e300 }, "sift.sparse: seed must be an integer, got 1e+300" },
    { sift.sparse, { seed = -2 ^ 63 - 1e4 }, "seed must be an integer" },
  } do
    local line = debug.getinfo(1, "l").currentline + 1
    ok, err = pcall(function() local s = case[1](m, case[2]) return s end)
    check(not ok and err:find(case[3], 1, true) and err:find("test_analysis.lua:" .. line .. ":", 1, true),
      "%s refused at the caller's line %d: %s", case[3], line, tostring(err))
  end
  for _, opts in ipairs { { r = 2.0, seed = 3.0 }, { r = "2", seed = "-7" } } do
    ok, err = pcall(sift.lora, m, opts)
    check(ok, "whole numbers as floats or strings: %s", tostring(err))
    if ok then err:close() end
  end
  -- AdamW's hyper-parameters, finite and in range, each refused by name (an lr of 1e300 became Inf as a float
  -- and the first step wrote it into every weight; a negative sparse weight decay was taken)
  local s = sift.full(m)
  for _, case in ipairs {
    { { lr = 1e300 }, "sift.AdamW: lr must be a finite number >= 0, got 1e+300" },
    { { lr = -1 }, "lr must be a finite number >= 0, got -1.0" },
    { { eps = 0 }, "eps must be a finite number > 0, got 0.0" },
    { { betas = { 1.5, 0.9 } }, "betas[1] must be in [0, 1), got 1.5" },
    { { betas = { 0.9, 0 / 0 } }, "betas[2] must be in [0, 1)" },
    { { weight_decay = 1e300 }, "weight_decay must be a finite number >= 0, got 1e+300" },
    { { sparse_weight_decay = -5 }, "sparse_weight_decay must be a finite number >= 0, got -5.0" },
  } do
    ok, err = pcall(sift.AdamW, s, case[1])
    check(not ok and err:find(case[2], 1, true), "%s: %s", case[2], tostring(err))
  end
  local opt = sift.AdamW(s, { lr = 3e-4, betas = { 0.9, 0.95 }, eps = 1e-6, weight_decay = 0, sparse_weight_decay = 0 })
  ok, err = pcall(opt.set_lr, opt, math.huge)
  check(not ok and err:find("set_lr: the learning rate must be a finite number >= 0, got inf", 1, true), "set_lr inf: %s",
    tostring(err))
  check(math.abs(opt:lr() - 3e-4) < 1e-9, "the refused rate left the optimizer's: %g", opt:lr())
  s:close()
end)

test("an option or field a function does not know is refused by name, with the nearest known one", function()
  -- before, every such key was ignored: {n_layers = 1} built sift.build's default 2 layers, {rat = 0.5}
  -- selected 1 %, a batch's "lables" gave no loss; each now fails at the caller's line
  local m, b = tiny(2), tiny_batch()
  local tok_path = H.shared("models/gpt2-4m/tokenizer.json")
  local cases = {
    { function() local r = sift.build({ arch = "gpt2", n_layers = 1 }) return r end,
      "sift.build: config: unknown field 'n_layers' (did you mean 'n_layer'?); known: arch, vocab_size, n_layer" },
    { function() local r = sift.build({ arch = "gpt2" }, { sed = 1 }) return r end,
      "sift.build: unknown option 'sed' (did you mean 'seed'?); known: task, num_labels, seed" },
    { function() local r = sift.build({ arch = "gpt2" }, { task = "clasify" }) return r end,
      "sift.build: task must be \"lm\" or \"classify\", got \"clasify\"" },
    { function() local r = sift.load("nowhere", { tsk = "classify" }) return r end, "sift.load: unknown option 'tsk'" },
    { function() local r = sift.tensor({ 1 }, { dtyp = "i64" }) return r end, "sift.tensor: unknown option 'dtyp'" },
    { function() local r = sift.zeros(2, { dtpye = "i64" }) return r end, "sift.zeros: unknown option 'dtpye'" },
    { function() local r = sift.randn(2, { sed = 1 }) return r end, "sift.randn: unknown option 'sed'" },
    { function() local r = m:forward({ input_ids = b.input_ids, lables = b.labels }) return r end,
      "forward: batch: unknown field 'lables' (did you mean 'labels'?)" },
    { function() local r = m:forward(b, { grads = false }) return r end, "forward: unknown option 'grads'" },
    { function() local r = m:forward(b, { grad = "no" }) return r end, "forward: grad must be true or false, got no" },
    { function() local r = m:forward(b, { pack = 0 }) return r end, "forward: pack must be true or false, got 0" },
    { function() local r = m:generate({ 1 }, { topk = 5 }) return r end,
      "generate: unknown option 'topk'; known: max_new, temperature, seed, stop_at_eos" },
    { function() local r = sift.sparse(m, { rat = 0.5 }) return r end,
      "sift.sparse: unknown option 'rat' (did you mean 'rate'?)" },
    { function() local r = sift.lora(m, { rank = 4 }) return r end,
      "sift.lora: unknown option 'rank'; known: r, alpha" },
    { function() local r = sift.full(m, { param = {} }) return r end, "sift.full: unknown option 'param'" },
    { function() local r = sift.AdamW(sift.head(m), { learning_rate = 1 }) return r end,
      "sift.AdamW: unknown option 'learning_rate'" },
    { function() local r = sift.train { model = m, method = sift.head(m), data = {}, epoch = 1 } return r end,
      "sift.train: unknown option 'epoch' (did you mean 'epochs'?)" },
    { function() local r = sift.trainer { model = m, method = sift.head(m), data = {}, bach = 1 } return r end,
      "sift.train: unknown option 'bach' (did you mean 'batch'?)" },
    { function() local r = sift.evaluate(m, {}, { toknizer = 1 }) return r end,
      "sift.evaluate: unknown option 'toknizer' (did you mean 'tokenizer'?)" },
    { function() local r = sift.coverage(m, b, { fraction = { 0.1 } }) return r end,
      "sift.coverage: unknown option 'fraction' (did you mean 'fractions'?)" },
    { function() local r = sift.masks(m, b, { rat = 0.1 }) return r end, "sift.masks: unknown option 'rat'" },
    { function() local r = sift.mask_stability(m, { b, b }, { kep = 1 }) return r end,
      "sift.mask_stability: unknown option 'kep'" },
    { function() local r = sift.landscape(m, b, { pionts = 3 }) return r end,
      "sift.landscape: unknown option 'pionts' (did you mean 'points'?)" },
    { function() local r = sift.data.load("sst2", { splt = "dev" }) return r end,
      "sift.data.load: unknown option 'splt' (did you mean 'split'?)" },
    { function() local r = sift.data.encode({ { text = "a", label = 1 } }, {}, { maxlen = 8 }) return r end,
      "sift.data.encode: unknown option 'maxlen' (did you mean 'max_len'?)" },
    { function() local r = sift.build({ arch = "gpt2" }, { [1] = true }) return r end,
      "sift.build: unknown option 'a number key'" },
    { function() local r = sift.plot.line({ 1, 2 }, { tilte = "t" }) return r end,
      "sift.plot.line: unknown option 'tilte' (did you mean 'title'?)" },
    { function() local r = sift.plot.curve({ x = { 0.1 }, y = { 0.5 } }, { squared = true }) return r end,
      "sift.plot.curve: unknown option 'squared'; known: sq, tensors, label, width" },
    { function() local r = sift.plot.heatmap({ { 1, 2 } }, { mni = 0 }) return r end,
      "sift.plot.heatmap: unknown option 'mni' (did you mean 'min'?)" },
    { function() local r = sift.plot.line({ 1, 2 }):svg({ widht = 3 }) return r end,
      "svg: unknown option 'widht' (did you mean 'width'?); known: width, height" },
    { function() local r = sift.direction(sift.randn(2, 2), { normalise = "layer" }) return r end,
      "sift.direction: unknown option 'normalise' (did you mean 'normalize'?)" },
    { function() local r = sift.sparse(m, 0.5) return r end, "sift.sparse: options must be a table, got number" },
    { function() local r = sift.show({ 1 }, { max_item = 1 }) return r end,
      "sift.show: unknown option 'max_item' (did you mean 'max_items'?)" },
  }
  if tok_path then
    local tok = sift.tokenizer(tok_path)
    cases[#cases + 1] = { function() local r = tok:encode("hi", { bso = true }) return r end,
      "encode: unknown option 'bso' (did you mean 'bos'?); known: bos, eos" }
  end
  for _, case in ipairs(cases) do
    local line = debug.getinfo(case[1], "S").linedefined
    local ok, err = pcall(case[1])
    check(not ok and tostring(err):find(case[2], 1, true) and tostring(err):find("test_analysis.lua:" .. line .. ":", 1,
      true), "%s, at line %d: %s", case[2], line, tostring(err))
  end
  -- what the functions do know still passes, and a loaded model's config builds its shape (its descriptive fields
  -- are known, not read)
  local m2 = sift.build(m.config, { task = "classify", num_labels = 2, seed = 1 })
  check(m2.config.n_params == m.config.n_params, "a model's config builds its shape: %d vs %d", m2.config.n_params,
    m.config.n_params)
  -- and its kind: a classifier's config gives task and num_labels when the options do not (they were ignored:
  -- sift.build(classifier.config) built a language model); the options still win
  local m3 = sift.build(m.config, { seed = 1 })
  check(m3.config.task == "classify" and m3.config.num_labels == 2 and m3.config.n_params == m.config.n_params,
    "the config's task and labels: %s %s", m3.config.task, tostring(m3.config.num_labels))
  local m4 = sift.build(m.config, { task = "lm" })
  check(m4.config.task == "lm" and m4.config.num_labels == nil, "the options' task wins: %s", m4.config.task)
  local m5 = sift.build({ arch = "gpt2", vocab_size = 32, n_layer = 1, n_head = 2, d_model = 16, task = "classify",
    num_labels = 3 })
  check(m5.config.task == "classify" and m5.config.num_labels == 3, "task and num_labels in a config written by hand")
  local curve = sift.plot.curve({ x = { 0.1, 0.5 }, y = { 0.3, 0.9 } },
    { sq = true, label = "a", title = "t", ymax = 1 })
  check(tostring(curve):find("t", 1, true), "a curve with curve's own and line's options draws")
  local out = m2:forward(b, { grad = false, logits = true, pack = true })
  check(out.loss and out.loss == out.loss, "known options and fields run: %s", tostring(out.loss))
end)

test("ids and labels in a float tensor must be whole numbers; generate refuses a non-finite temperature", function()
  local m, b = tiny(2), tiny_batch()
  local rows = tiny_batch().input_ids -- (a copy: modified below)
  local f = sift.tensor(rows) -- f32
  local whole = m:forward({ input_ids = f, labels = b.labels }, { grad = false })
  local exact = m:forward({ input_ids = sift.tensor(rows, { dtype = "i64" }), labels = b.labels }, { grad = false })
  check(whole.loss == exact.loss, "whole-valued f32 ids run as the i64 ones: %s vs %s", whole.loss, exact.loss)
  rows[1][2] = rows[1][2] + 0.5 -- was truncated to the id below it, silently
  local ok, err = pcall(m.forward, m, { input_ids = sift.tensor(rows), labels = b.labels })
  check(not ok and tostring(err):find("forward: batch.input_ids: a f32 tensor holds " .. rows[1][2]
    .. " at flat position 1, not a whole number", 1, true), "a fractional id is refused: %s", tostring(err))
  ok, err = pcall(m.forward, m, { input_ids = tiny_batch().input_ids, labels = sift.tensor({ 0.5, 1, 1, 0 }) })
  check(not ok and tostring(err):find("forward: batch.labels: a f32 tensor holds 0.5", 1, true),
    "a fractional label: %s", tostring(err))
  local lm = sift.build({ arch = "gpt2", vocab_size = 32, n_layer = 1, n_head = 2, d_model = 16, max_pos = 16 },
    { seed = 1 })
  for _, t in ipairs { math.huge, -math.huge, 0 / 0, -1 } do
    ok, err = pcall(lm.generate, lm, { 1, 2 }, { max_new = 2, temperature = t })
    check(not ok and tostring(err):find("generate: temperature must be a finite number >= 0", 1, true),
      "temperature %s refused: %s", tostring(t), tostring(err))
  end
  check(#lm:generate({ 1, 2 }, { max_new = 2, temperature = 0.7, seed = 3 }) == 4, "a finite temperature samples")
end)

test("integer tensors hold every value of their type exactly and refuse the rest", function()
  local t = sift.tensor({ math.maxinteger, math.mininteger, 7 }, { dtype = "i64" })
  check(t:get(1) == math.maxinteger and t:get(2) == math.mininteger and t:totable()[1] == math.maxinteger,
    "i64 extremes read back exactly (they went through a double)")
  check(tostring(t):find("9223372036854775807", 1, true), "and print exactly: %s", tostring(t))
  t:set(3, math.maxinteger - 1)
  check(t:get(3) == math.maxinteger - 1, "set exactly")
  for _, case in ipairs { { "i64", 0 / 0 }, { "i64", math.huge }, { "i64", 1.5 }, { "i64", 2 ^ 63 }, { "i32", 2 ^ 31 },
    { "i32", -2 ^ 31 - 1 }, { "u8", 256 }, { "u8", -1 } } do
    local u = sift.tensor({ 1, 2 }, { dtype = case[1] })
    local ok, err = pcall(u.set, u, 2, case[2])
    check(not ok and tostring(err):find("takes an integer in its range", 1, true) and u:get(2) == 2,
      "%s := %s: %s", case[1], tostring(case[2]), tostring(err))
    ok, err = pcall(sift.tensor, { 1, case[2] }, { dtype = case[1] })
    check(not ok and tostring(err):find("position 2 of a " .. case[1], 1, true), "sift.tensor %s %s: %s", case[1],
      tostring(case[2]), tostring(err))
  end
  local u = sift.tensor({ 0 }, { dtype = "u8" })
  u:set(1, 255)
  check(u:get(1) == 255, "u8 255")
  local f = sift.randn(2, 2, { seed = 1 })
  f:set(1, 2, 0 / 0)
  check(f:get(1, 2) ~= f:get(1, 2), "a float tensor takes NaN")
  local ok, err = pcall(f.set, f, 3, 1, 1)
  check(not ok and err:find("set: index 3 out of range 1..2 at dimension 1", 1, true), "index: %s", tostring(err))
end)

test("t:range and max_abs_diff: extremes by hand, NaN anywhere wins", function()
  local v = { 3, -5, 1, 0.5, -4, 5, 0, -0.5, 2, -3 }
  local lo, hi = sift.tensor(v):range()
  check(lo == -5 and hi == 5, "range %s %s", tostring(lo), tostring(hi))
  lo, hi = sift.tensor({ 7, 9 }, { dtype = "i64" }):range()
  check(lo == 7 and hi == 9, "i64 range %s %s", tostring(lo), tostring(hi))
  check(select("#", sift.zeros(0):range()) == 0, "an empty tensor: nothing")
  lo, hi = sift.tensor({ 1, math.huge }):range()
  check(lo == 1 and hi == math.huge, "Inf kept")
  for _, at in ipairs { 1, 5, 10 } do -- a NaN first, in the middle, last
    local w = {}
    for i, x in ipairs(v) do w[i] = x end
    w[at] = 0 / 0
    local t = sift.tensor(w)
    lo, hi = t:range()
    check(lo ~= lo and hi ~= hi, "NaN at %d: range %s %s", at, tostring(lo), tostring(hi))
    local d = t:max_abs_diff(sift.tensor(v))
    check(d ~= d, "NaN at %d: max_abs_diff %s (it used to be lost to a later entry)", at, tostring(d))
    d = sift.tensor(v):max_abs_diff(t)
    check(d ~= d, "NaN at %d on the other side: %s", at, tostring(d))
  end
  check(sift.tensor(v):max_abs_diff(sift.tensor(v)) == 0 and sift.tensor({ 1, 2 }):max_abs_diff(sift.tensor({ 1, -2 })) == 4,
    "max_abs_diff by hand")
end)

test("sift.masks gives the masks a sparse set selects (topk), on gpt2-4m and a built model", function()
  local function compare(m, b, rate, what)
    local mk = sift.masks(m, b, { rate = rate })
    for _, n in ipairs(mk.names) do check(m:grad(n):norm() == 0, "%s: %s's gradient zeroed after", what, n) end
    local s = sift.sparse(m, { rate = rate }):select(b)
    check(#mk.names == #s:targets(), "%s: %d targets vs the set's %d", what, #mk.names, #s:targets())
    for i, n in ipairs(s:targets()) do
      local a, want = mk[n], s:indices(n)
      check(mk.names[i] == n, "%s: target order", what)
      check(a:numel() == want:numel() and a:count_common(want) == want:numel(), "%s: %s mask differs", what, n)
      check(mk.numel[n] == m:param(n):numel(), "%s: numel of %s", what, n)
    end
    local o = sift.mask_overlap(mk, s)
    check(o.overlap == 1 and o.jaccard == 1 and o.mean == 1, "%s: overlap with the set's masks is 1", what)
    s:close()
    return mk
  end
  compare(tiny(7), tiny_batch(), 0.05, "built")
  local dir = gpt2_dir()
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local mk = compare(m, sst2_batch(sift.tokenizer(dir)), 0.01, "gpt2-4m")
  check(tostring(mk):find("31468 offsets", 1, true), "tostring: %s", tostring(mk))
  check(mk.loss > 0.3 and mk.loss < 2, "loss %g", mk.loss)
end)

-- Other policies go through a temporary sparse set: the set's masks, and the model as it was after
test("sift.masks with the other policies: global, magnitude, fisher, random, a Lua function", function()
  local m = tiny(11)
  local b1, b2 = tiny_batch(), tiny_batch(9)
  local before = m:param("transformer.h.1.mlp.c_fc.weight"):clone()
  local budgets, K = {}, 0
  for _, n in ipairs(sift.masks(m, b1, { rate = 0.05 }).names) do
    budgets[n] = sift.budget(0.05, m:param(n):numel())
    K = K + budgets[n]
  end
  -- global: one top-K over every target, K the sum of the per-target budgets; its own per-tensor counts
  local g = sift.masks(m, b1, { rate = 0.05, policy = "global" })
  local total, uneven = 0, false
  for _, n in ipairs(g.names) do
    total = total + g[n]:numel()
    if g[n]:numel() ~= budgets[n] then uneven = true end
  end
  check(total == K and uneven and g.policy == "global", "global: %d offsets (K %d), per-tensor counts differ %s", total, K,
    tostring(uneven))
  local s = sift.sparse(m, { rate = 0.05, policy = "global", dense = {} }):select(b1)
  check(sift.mask_overlap(g, s).overlap == 1, "global: the set's masks")
  s:close()
  -- magnitude: the top |w| entries, whatever the batch
  local mg1, mg2 = sift.masks(m, b1, { rate = 0.05, policy = "magnitude" }), sift.masks(m, b2, { rate = 0.05, policy = "magnitude" })
  for _, n in ipairs(mg1.names) do
    local w = m:param(n)
    check(mg1[n]:count_common(w:top_indices(budgets[n])) == budgets[n], "magnitude: %s is the top |w|", n)
  end
  check(sift.mask_overlap(mg1, mg2).overlap == 1, "magnitude: the same for every batch")
  -- random: by seed, not by batch
  local r1, r2 = sift.masks(m, b1, { rate = 0.05, policy = "random", seed = 4 }), sift.masks(m, b2, { rate = 0.05, policy = "random", seed = 4 })
  check(sift.mask_overlap(r1, r2).overlap == 1, "random: the seed's mask for every batch")
  check(sift.mask_overlap(r1, sift.masks(m, b1, { rate = 0.05, policy = "random", seed = 5 })).overlap < 1, "another seed")
  -- fisher and a Lua function (the first k offsets)
  local f = sift.masks(m, b1, { rate = 0.05, policy = "fisher" })
  check(f.policy == "fisher" and f.loss > 0, "fisher")
  local first_k = sift.masks(m, b1, { rate = 0.05, policy = function(_, _, k)
    local idx = {}
    for i = 1, k do idx[i] = i - 1 end
    return idx
  end })
  for _, n in ipairs(first_k.names) do
    check(first_k[n]:get(budgets[n]) == budgets[n] - 1, "a Lua policy: %s", n)
  end
  -- mask_stability passes the policy on
  check(sift.mask_stability(m, { b1, b2 }, { rate = 0.05, policy = "magnitude" }).first[2] == 1, "stability of magnitude masks")
  -- refusals; the model is left as it was and whole (no set attached)
  local ok, err = pcall(sift.masks, m, b1, { policy = "bogus" })
  check(not ok and err:find("sift.masks: unknown policy", 1, true), "unknown policy: %s", tostring(err))
  check(m:param("transformer.h.1.mlp.c_fc.weight"):max_abs_diff(before) == 0, "weights unchanged")
  check(pcall(sift.coverage, m, b1), "no set left attached")
end)

test("mask_overlap and mask_stability: counts by hand, chance level, refusals", function()
  local m = tiny(8)
  local b1, b2 = tiny_batch(), tiny_batch()
  for i = 1, 4 do b2.labels[i] = 1 - b2.labels[i] end -- the other labels: another gradient
  local b3 = tiny_batch()
  b3.labels = { 1, 1, 0, 0 }
  local m1, m2 = sift.masks(m, b1, { rate = 0.1 }), sift.masks(m, b2, { rate = 0.1 })
  local o = sift.mask_overlap(m1, m2)
  local common, mins, expected, union, mean = 0, 0, 0, 0, 0
  for _, n in ipairs(m1.names) do
    local in1, c = {}, 0
    for _, x in ipairs(m1[n]:totable()) do in1[x] = true end
    for _, x in ipairs(m2[n]:totable()) do if in1[x] then c = c + 1 end end
    local k1, k2, N = m1[n]:numel(), m2[n]:numel(), m1.numel[n]
    local t = o.tensors[n]
    check(t.common == c and t.k_a == k1 and t.k_b == k2 and t.numel == N, "%s counts", n)
    close(t.overlap, c / math.min(k1, k2), 1e-15, n .. " overlap")
    close(t.jaccard, c / (k1 + k2 - c), 1e-15, n .. " jaccard")
    close(t.chance, math.max(k1, k2) / N, 1e-15, n .. " chance")
    common, mins, expected, union, mean = common + c, mins + math.min(k1, k2), expected + k1 * k2 / N,
      union + k1 + k2 - c, mean + c / math.min(k1, k2)
  end
  close(o.overlap, common / mins, 1e-15, "overall overlap")
  close(o.jaccard, common / union, 1e-15, "overall jaccard")
  close(o.chance, expected / mins, 1e-15, "overall chance")
  close(o.mean, mean / #m1.names, 1e-15, "mean overlap")
  check(o.overlap < 1, "flipped labels pick other components somewhere (%.3f)", o.overlap)
  check(tostring(o):find("mask overlap", 1, true), "tostring")
  -- stability: batch 1 against itself is 1; the others against batch 1 and the batch before
  local st = sift.mask_stability(m, { b1, b2, b3 }, { rate = 0.1, keep = true })
  check(st.first[1] == 1 and st.previous[1] == nil, "batch 1")
  close(st.first[2], o.overlap, 1e-15, "batch 2 vs 1")
  close(st.first[3], sift.mask_overlap(m1, st.masks[3]).overlap, 1e-15, "batch 3 vs 1")
  close(st.previous[3], sift.mask_overlap(m2, st.masks[3]).overlap, 1e-15, "batch 3 vs 2")
  close(st.previous[2], st.first[2], 1e-15, "batch 2's previous is batch 1")
  close(st.chance, o.chance, 1e-15, "chance")
  for _, n in ipairs(st.names) do close(st.tensors[n].first[2], o.tensors[n].overlap, 1e-15, n) end
  check(#st.loss == 3 and st.loss[1] == m1.loss, "losses")
  check(tostring(st):find("mask stability over 3 batches", 1, true), "tostring")
  -- refusals
  local ok, err = pcall(sift.mask_stability, m, { b1 })
  check(not ok and err:find("two batches"), "one batch: %s", tostring(err))
  ok, err = pcall(sift.mask_overlap, m1, sift.lora(tiny(9)))
  check(not ok and err:find("lora"), "a LoRA set: %s", tostring(err))
  ok, err = pcall(sift.mask_overlap, m1, sift.sparse(tiny(9), { rate = 0.1 }))
  check(not ok and err:find("select"), "an unselected set: %s", tostring(err))
  ok, err = pcall(sift.mask_overlap, m1, {})
  check(not ok and err:find("argument 2"), "not masks: %s", tostring(err))
  ok, err = pcall(sift.masks, m, b1, { rate = 2 })
  check(not ok and err:find("rate"), "rate 2: %s", tostring(err))
  local s = sift.sparse(m, { rate = 0.1 })
  ok, err = pcall(sift.masks, m, b1)
  check(not ok and err:find("hooked"), "a hooked model: %s", tostring(err))
  s:close()
  -- another model's masks with other shapes
  local big = sift.build({ arch = "gpt2", vocab_size = 64, n_layer = 2, n_head = 2, d_model = 32, max_pos = 32 },
    { task = "classify", num_labels = 2 })
  ok, err = pcall(sift.mask_overlap, m1, sift.masks(big, b1, { rate = 0.1 }))
  check(not ok and err:find("entries"), "other shapes: %s", tostring(err))
end)

H.run()
