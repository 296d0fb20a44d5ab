-- test_landscape.lua — sift.direction (filter / layer / no normalisation, by seed and stream), t:combine_,
-- and sift.landscape: the centre is the model's own loss, every point is the loss of the model set by hand
-- to w0 + a d1 (+ b d2), the weights come back bit for bit (also after a failed forward and after Ctrl-C
-- mid-walk), refusals change nothing; on gpt2-4m the pre-trained model's landscape swings more than a
-- random initialisation's (the paper's observation).
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check, close = H.test, H.check, H.close

local tiny, tiny_batch = H.tiny_classifier, H.tiny_batch

-- every parameter's bits, to compare before / after
local function snapshot(m)
  local s = {}
  for _, n in ipairs(m:names()) do s[n] = m:param(n):clone() end
  return s
end

local function unchanged(m, snap, what)
  for _, n in ipairs(m:names()) do
    if m:param(n):max_abs_diff(snap[n]) ~= 0 then
      check(false, "%s: %s changed", what, n)
      return
    end
  end
  check(true)
end

-- 2-norm of row r (1-based) or column c of a 2-D tensor, in Lua
local function line_norm(t, r, c)
  local sh, s = t:shape(), 0
  if r then for j = 1, sh[2] do s = s + t:get(r, j) ^ 2 end
  else for i = 1, sh[1] do s = s + t:get(i, c) ^ 2 end end
  return math.sqrt(s)
end

test("sift.direction: filter norms by rows and columns, layer norm, seeds and streams", function()
  local w = sift.randn(7, 5, { seed = 1, std = 0.3 })
  w:set(3, 1, 0); w:set(3, 2, 0); w:set(3, 3, 0); w:set(3, 4, 0); w:set(3, 5, 0) -- a zero filter (row 3)
  local d = sift.direction(w, { seed = 4 })
  for r = 1, 7 do close(line_norm(d, r), line_norm(w, r), 1e-5 * (1 + line_norm(w, r)), "row " .. r) end
  check(line_norm(d, 3) == 0, "a zero filter of w gives a zero filter of d")
  local dc = sift.direction(w, { seed = 4, filters = "cols" })
  for c = 1, 5 do close(line_norm(dc, nil, c), line_norm(w, nil, c), 1e-5, "column " .. c) end
  local dl = sift.direction(w, { seed = 4, normalize = "layer" })
  close(dl:norm(), w:norm(), 1e-5, "layer norm")
  -- none: the generator's draw, which layer / filter rescale (same signs, proportional rows)
  local dn = sift.direction(w, { seed = 4, normalize = "none" })
  for r = 1, 7 do
    local f = line_norm(dn, r) > 0 and line_norm(w, r) / line_norm(dn, r) or 0
    for j = 1, 5 do close(d:get(r, j), dn:get(r, j) * f, 1e-6, "filter scaling") end
  end
  check(sift.direction(w, { seed = 4 }):max_abs_diff(d) == 0, "same seed and stream: same direction")
  check(sift.direction(w, { seed = 5 }):max_abs_diff(d) > 0, "another seed: another direction")
  check(sift.direction(w, { seed = 4, stream = 1 }):max_abs_diff(d) > 0, "another stream: another direction")
  local b = sift.direction(sift.randn(6, { seed = 2 }), { seed = 1 })
  close(b:norm(), sift.randn(6, { seed = 2 }):norm(), 1e-5, "a 1-D weight is one filter")
  local ok, err = pcall(sift.direction, w, { normalize = "unit" })
  check(not ok and err:find("normalize"), "unknown normalisation: %s", tostring(err))
  ok, err = pcall(sift.direction, w, { filters = "diagonal" })
  check(not ok and err:find("filters"), "unknown filters: %s", tostring(err))
  ok, err = pcall(sift.direction, w, { seed = 1.5 })
  check(not ok and err:find("seed must be an integer", 1, true), "a fractional seed: %s", tostring(err))
  ok, err = pcall(sift.direction, w, { normalize = 3 })
  check(not ok and err:find("normalize must be a string", 1, true), "a number for normalize: %s", tostring(err))
end)

test("combine_: base + a d1 + b d2 in place, checked shapes", function()
  local base, d1, d2 = sift.randn(4, 6, { seed = 1 }), sift.randn(4, 6, { seed = 2 }), sift.randn(4, 6, { seed = 3 })
  local p = sift.zeros(4, 6)
  check(p:combine_(base, 0.25, d1, -1.5, d2) == p, "returns p")
  for i = 1, 4 do for j = 1, 6 do
    local want = base:get(i, j) + (0.25 * d1:get(i, j) - 1.5 * d2:get(i, j))
    close(p:get(i, j), want, 1e-6 * (1 + math.abs(want)), "entry")
  end end
  p:combine_(base, 0, d1, 0, d2)
  check(p:max_abs_diff(base) == 0, "a = b = 0 gives the base")
  local q = base:clone()
  q:combine_(q, 2, d1) -- p may be base
  for i = 1, 4 do close(q:get(i, 1), base:get(i, 1) + 2 * d1:get(i, 1), 1e-6, "in place over the base") end
  local ok, err = pcall(p.combine_, p, base, 1, sift.zeros(5))
  check(not ok and err:find("first direction"), "wrong size: %s", tostring(err))
end)

test("landscape: centre, points by hand, weights back bit for bit, 1-D and 2-D", function()
  local m = tiny(3)
  local b = tiny_batch()
  local snap = snapshot(m)
  local center = m:forward(b).loss
  local L = sift.landscape(m, b, { points = 5, span = 0.8, seed = 7 })
  unchanged(m, snap, "after a 1-D walk")
  check(L.dims == 1 and #L.alphas == 5 and #L.loss == 5 and L.alphas[1] == -0.8 and L.alphas[5] == 0.8, "axis")
  check(L.center == center, "centre %.9g vs the model's loss %.9g", L.center, center)
  check(L.loss[3] == center, "the middle point is the centre")
  check(#L.targets == 8 and L.normalize == "filter", "default targets: the 8 block matrices")
  -- point i by hand: the same directions (seed, stream = d * 1000003 + target index, filters on the output axis)
  for i = 1, 5, 2 do
    for ti, n in ipairs(L.targets) do
      local w0 = snap[n]
      local d = sift.direction(w0, { seed = 7, stream = 1000003 + ti,
        filters = m:param_layout(n) == "in_out" and "cols" or "rows" })
      m:param(n):combine_(w0, L.alphas[i], d)
    end
    check(m:forward(b).loss == L.loss[i], "point %d: %.9g by hand vs %.9g", i, m:forward(b).loss, L.loss[i])
    for _, n in ipairs(L.targets) do m:param(n):copy_(snap[n]) end
  end
  check(L.loss[1] ~= center and L.loss[5] ~= center, "the ends move the loss")
  check(tostring(L):find("1-D, 5 points", 1, true), "tostring")
  -- same seed: same walk; another seed: another
  local again = sift.landscape(m, b, { points = 5, span = 0.8, seed = 7 })
  for i = 1, 5 do check(again.loss[i] == L.loss[i], "repeatable point %d", i) end
  check(sift.landscape(m, b, { points = 5, span = 0.8, seed = 8 }).loss[1] ~= L.loss[1], "another seed")
  -- 2-D: the grid's axes are the two directions
  local L2 = sift.landscape(m, b, { points = 3, span = 0.5, directions = 2, seed = 7 })
  unchanged(m, snap, "after a 2-D walk")
  check(#L2.loss == 3 and #L2.loss[1] == 3 and #L2.betas == 3, "3 x 3 grid")
  check(L2.loss[2][2] == center, "grid centre")
  for i = 1, 3 do close(L2.loss[i][2], sift.landscape(m, b, { points = 3, span = 0.5, seed = 7 }).loss[i], 0,
    "b = 0 column is the 1-D walk along d1") end
  check(tostring(L2):find("2-D", 1, true), "tostring 2-D")
  -- plots: a line over a; the grid as a heatmap shaded over its own range (the lowest point blank)
  local fig1, fig2 = L:plot({ width = 30, height = 6 }), L2:plot()
  check(tostring(fig1):find("loss along the direction", 1, true) and fig1.kind == "line", "1-D plot")
  local lo, hi = math.huge, -math.huge
  for _, row in ipairs(L2.loss) do for _, v in ipairs(row) do lo, hi = math.min(lo, v), math.max(hi, v) end end
  check(fig2.kind == "heatmap" and tostring(fig2):find(("%.4f .. %.4f"):format(lo, hi), 1, true), "2-D heatmap over its range")
  -- their options are checked (a line's for a 1-D walk, with its curve's label; a heatmap's for a grid)
  check(tostring(L:plot({ label = "walk", title = "T1" })):find("T1", 1, true), "1-D plot with a label and a title")
  local ok, err = pcall(L.plot, L, { widht = 30 })
  check(not ok and tostring(err):find("landscape:plot: unknown option 'widht' (did you mean 'width'?)", 1, true),
    "1-D plot refuses an unknown option: %s", tostring(err))
  ok, err = pcall(L2.plot, L2, { width = 30 })
  check(not ok and tostring(err):find("landscape:plot: unknown option 'width'", 1, true),
    "a heatmap has no width option: %s", tostring(err))
  -- a list of batches: the mean of their losses
  local b2 = tiny_batch(5)
  local Lb = sift.landscape(m, { b, b2 }, { points = 3, seed = 1 })
  close(Lb.center, (center + m:forward(b2).loss) / 2, 1e-12, "mean over batches")
end)

test("landscape along given directions: a fine-tuning's own increment", function()
  local m = tiny(4)
  local b = tiny_batch()
  local snap = snapshot(m)
  local base_loss = m:forward(b).loss
  -- direction: w_ft - w0 of a few SIFT steps (the straight line from the start to the fine-tuned weights)
  local s = sift.sparse(m, { rate = 0.2 }):select(b)
  local opt = sift.AdamW(s, { lr = 5e-2 })
  for _ = 1, 4 do
    opt:step(); opt:zero_grad()
    m:forward(b); m:backward()
  end
  local ft = snapshot(m)
  local dir = {}
  local trained = {}
  for _, n in ipairs(s:targets()) do trained[#trained + 1] = n end
  for _, n in ipairs(s:dense()) do trained[#trained + 1] = n end -- the score head
  for _, n in ipairs(trained) do dir[n] = snap[n] - ft[n] end -- from the fine-tuned point back to w0
  local L = sift.landscape(m, b, { directions = { dir }, points = 3, span = 1 })
  unchanged(m, ft, "the fine-tuned weights after the walk")
  check(L.normalize == "given" and #L.targets == #trained, "the direction's names are the targets")
  close(L.loss[2], m:forward(b).loss, 0, "a = 0: the fine-tuned loss")
  -- a = 1 lands on w0 (up to the rounding of w_ft + (w0 - w_ft)): the base model's loss
  close(L.loss[3], base_loss, 1e-5, "a = 1: back at the pre-trained weights")
  check(L.loss[2] < base_loss, "fine-tuning lowered the loss (%.4f < %.4f)", L.loss[2], base_loss)
  -- refusals before any change
  local snap2 = snapshot(m)
  local bad = { ["transformer.h.0.attn.c_attn.weight"] = sift.zeros(3) }
  local ok, err = pcall(sift.landscape, m, b, { directions = { bad } })
  check(not ok and err:find("entries"), "wrong size: %s", tostring(err))
  ok, err = pcall(sift.landscape, m, b, { directions = { { nope = sift.zeros(3) } } })
  check(not ok and err:find("does not have"), "unknown name: %s", tostring(err))
  ok, err = pcall(sift.landscape, m, b, { directions = 3 })
  check(not ok and err:find("directions"), "three directions: %s", tostring(err))
  ok, err = pcall(sift.landscape, m, b, { span = -1 })
  check(not ok and err:find("span"), "negative span: %s", tostring(err))
  ok, err = pcall(sift.landscape, m, { input_ids = { { 1, 2 } } })
  check(not ok and err:find("labels"), "no labels: %s", tostring(err))
  unchanged(m, snap2, "after refusals")
end)

test("landscape: a failing forward or Ctrl-C mid-walk leaves the weights as they were", function()
  local m = tiny(5)
  local b = tiny_batch()
  local snap = snapshot(m)
  -- a batch whose input_ids are read: the 5th read (the 2nd point; check_batches reads twice) records a
  -- Ctrl-C as sift-repl's handler does when it is deferred (tests/sh/test_repl.sh sends a real one)
  local reads = 0
  local proxy = setmetatable({}, { __index = function(_, k)
    if k == "input_ids" then
      reads = reads + 1
      if reads == 5 then sift._interrupt() end
    end
    return b[k]
  end })
  local ok, err = pcall(sift.landscape, m, proxy, { points = 9, seed = 2 })
  check(not ok and tostring(err):find("interrupted"), "stopped by the interrupt: %s", tostring(err))
  check(reads == 5, "stopped after the point it arrived in (%d reads of 12)", reads)
  unchanged(m, snap, "after Ctrl-C")
  sift._interrupt_pending() -- nothing left over
  -- a forward that fails at the third point: token ids out of the vocabulary from then on
  local calls = 0
  local bad = setmetatable({}, { __index = function(_, k)
    if k == "input_ids" then
      calls = calls + 1
      if calls >= 4 then return { { 1, 2, 999 } } end
    end
    if k == "attention_mask" and calls >= 4 then return nil end
    if k == "labels" then return calls >= 4 and { 0 } or b.labels end
    return b[k]
  end })
  ok, err = pcall(sift.landscape, m, bad, { points = 5 })
  check(not ok and (tostring(err):find("999") or tostring(err):find("vocab")) ~= nil, "the forward's error: %s",
    tostring(err))
  unchanged(m, snap, "after a failed forward")
  check(sift.landscape(m, b, { points = 3 }).center == m:forward(b).loss, "the model works after")
end)

test("gpt2-4m: the pre-trained landscape swings more than a random initialisation's (the paper's figure)", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  H.need_shared("data/sst2/train.txt")
  local tok = sift.tokenizer(dir)
  local b = sift.data.encode(sift.data.load("sst2", { split = "train" }):take(64), tok, { max_len = 64, pad_id = 0 })
  local pre = sift.load(dir, { task = "classify", num_labels = 2 })
  local rnd = sift.build(pre.config, { task = "classify", num_labels = 2, seed = 0 })
  local function swing(m, seed)
    local L = sift.landscape(m, b, { points = 9, span = 1, seed = seed })
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(L.loss) do lo, hi = math.min(lo, v), math.max(hi, v) end
    return hi - lo, L
  end
  for seed = 0, 2 do
    local sp, Lp = swing(pre, seed)
    local sr = swing(rnd, seed)
    io.write(("    seed %d: loss range along a filter-normalised direction, pre-trained %.4f vs random init %.4f\n")
      :format(seed, sp, sr))
    check(sp > 3 * sr, "seed %d: pre-trained swing %.4f not above 3x the random init's %.4f", seed, sp, sr)
    check(Lp.center == pre:forward(b).loss, "centre")
  end
end)

H.run()
