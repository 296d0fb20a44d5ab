-- test_packing.lua — model:forward packs right-padded batches (core/model_forward.c): a batch whose
-- outputs are per row runs on its real tokens only. Every architecture's loss and gradients must be the
-- padded batch's (GPT-2, Llama with GQA and RoPE positions, RoBERTa with its pad-derived positions, BERT
-- with token types), for LM losses and classification heads, with fewer products; the batches that must
-- stay padded (per-position logits, masks with holes or left padding, LM targets on pad positions) give
-- exactly the padded results; random ragged batches agree too; SIFT (its calibration included) and LoRA
-- steps on packed batches match padded ones.
local H = dofile("tests/lua/harness.lua")
local test, check = H.test, H.check

local V, B, T = 300, 6, 40

-- B rows of ids (3..V-1) right-padded with id 1 to T; row b has T - (7b mod (T-1)) real tokens
local function ragged(seed)
  local s = seed
  local ids, mask = {}, {}
  for b = 1, B do
    local len = T - (b * 7) % (T - 1)
    ids[b], mask[b] = {}, {}
    for t = 1, T do
      s = (s * 1103515245 + 12345) % 2147483648
      ids[b][t] = t <= len and 3 + s % (V - 3) or 1
      mask[b][t] = t <= len and 1 or 0
    end
  end
  return ids, mask
end

local function lm_labels(ids, mask)
  local lab = {}
  for b = 1, #ids do
    lab[b] = {}
    for t = 1, #ids[b] do lab[b][t] = mask[b][t] == 1 and ids[b][t] or -100 end
  end
  return lab
end

local SHAPES = {
  gpt2 = { arch = "gpt2", vocab_size = V, n_layer = 2, n_head = 4, d_model = 64, max_pos = 64 },
  llama = { arch = "llama", vocab_size = V, n_layer = 2, n_head = 4, n_kv_head = 2, d_model = 64, d_ff = 128,
    max_pos = 64 },
  roberta = { arch = "roberta", vocab_size = V, n_layer = 2, n_head = 4, d_model = 64, max_pos = 80 },
  bert = { arch = "bert", vocab_size = V, n_layer = 2, n_head = 4, d_model = 64, max_pos = 64 },
}

-- loss, every parameter's gradient and the products of one forward + backward
local function run(m, batch, fopts)
  m:zero_grad()
  local f0 = sift.gemm_flops()
  local out = m:forward(batch, fopts)
  m:backward()
  local g = {}
  for _, n in ipairs(m:names()) do
    local gr = m:grad(n)
    if gr then g[n] = gr:clone() end
  end
  return out, g, sift.gemm_flops() - f0
end

-- the largest gradient difference of a parameter, relative to that parameter's largest gradient (or to
-- a thousandth of the model's largest, for gradients that are rounding noise: a key bias's is zero)
local function worst_grad(ga, gb)
  local top = 0
  for _, g in pairs(ga) do top = math.max(top, g:max_abs_diff(g * 0)) end
  local worst, where = 0, nil
  for n, g in pairs(ga) do
    local d = g:max_abs_diff(gb[n]) / math.max(g:max_abs_diff(g * 0), 1e-3 * top)
    if d > worst then worst, where = d, n end
  end
  return worst, where
end

local function same_as_padded(what, m, batch, fopts, want_fewer)
  local o1, g1, f1 = run(m, batch, { logits = fopts.logits, pack = false })
  local o2, g2, f2 = run(m, batch, { logits = fopts.logits })
  check(math.abs(o1.loss - o2.loss) <= 1e-5 * math.abs(o1.loss), "%s: loss %.9g packed, %.9g padded", what, o2.loss,
    o1.loss)
  local d, where = worst_grad(g1, g2)
  check(d <= 1e-4, "%s: gradient of %s differs by %.3g", what, tostring(where), d)
  if want_fewer == "some" then -- any padding packed away means fewer products
    check(f2 < f1, "%s: %.4g GFLOP packed, %.4g padded: not packed?", what, f2 / 1e9, f1 / 1e9)
  elseif want_fewer then
    check(f2 < 0.8 * f1, "%s: %.4g GFLOP packed, %.4g padded: not packed?", what, f2 / 1e9, f1 / 1e9)
  else
    check(f2 == f1 and o1.loss == o2.loss and d == 0, "%s: should run padded (flops %d vs %d, loss %.9g vs %.9g)",
      what, f2, f1, o2.loss, o1.loss)
  end
  return o1, o2
end

test("every architecture: packed LM loss and classification heads give the padded batch's loss and gradients", function()
  local ids, mask = ragged(5)
  for _, arch in ipairs { "gpt2", "llama", "roberta", "bert" } do
    if arch == "gpt2" or arch == "llama" then
      local m = sift.build(SHAPES[arch], { seed = 3 })
      same_as_padded(arch .. " LM", m, { input_ids = ids, attention_mask = mask, labels = lm_labels(ids, mask) },
        { logits = false }, true)
    end
    local m = sift.build(SHAPES[arch], { seed = 4, task = "classify", num_labels = 3 })
    same_as_padded(arch .. " classify", m, { input_ids = ids, attention_mask = mask, labels = { 0, 1, 2, 2, 1, 0 } },
      {}, true)
    -- without labels (evaluation): the same logits, (B, num_labels)
    local pad = m:forward({ input_ids = ids, attention_mask = mask }, { grad = false, pack = false }).logits
    local o = m:forward({ input_ids = ids, attention_mask = mask }, { grad = false }).logits
    check(#o:shape() == 2 and o:shape()[1] == B and o:shape()[2] == 3, "%s logits shape", arch)
    check(o:max_abs_diff(pad) <= 1e-5 * pad:max_abs_diff(pad * 0), "%s: logits without labels differ by %.3g", arch,
      o:max_abs_diff(pad))
  end
end)

-- random batches: 1 to 5 rows of 1 to 40 tokens (lengths from 1 to T, ids from a seeded generator), every
-- architecture, LM (decoders) and classification: packed = padded each time
test("random ragged batches: packed = padded for every architecture", function()
  local rng = sift.data.rng(2024)
  local models = {}
  for _, arch in ipairs { "gpt2", "llama", "roberta", "bert" } do
    models[#models + 1] = { arch .. " classify", sift.build(SHAPES[arch], { seed = 6, task = "classify", num_labels = 2 }) }
    if arch == "gpt2" or arch == "llama" then models[#models + 1] = { arch .. " LM", sift.build(SHAPES[arch], { seed = 7 }) } end
  end
  for case = 1, 12 do
    local b, t = rng:int(5), rng:int(40)
    local ids, mask, labels = {}, {}, {}
    local padded = false
    for r = 1, b do
      local len = rng:int(t)
      padded = padded or len < t
      ids[r], mask[r] = {}, {}
      for j = 1, t do
        ids[r][j] = j <= len and 2 + rng:int(V - 3) or 1
        mask[r][j] = j <= len and 1 or 0
      end
      labels[r] = rng:int(2) - 1
    end
    for _, mm in ipairs(models) do
      local name, m = mm[1], mm[2]
      local what = ("case %d (%d x %d) %s"):format(case, b, t, name)
      if name:find("LM") then
        -- a batch whose rows are all one token has no next-token target: nothing to compare
        local lab, any = lm_labels(ids, mask), false
        for r = 1, b do for j = 2, t do any = any or lab[r][j] ~= -100 end end
        if any then
          same_as_padded(what, m, { input_ids = ids, attention_mask = mask, labels = lab }, { logits = false },
            padded and "some" or false)
        end
      else
        same_as_padded(what, m, { input_ids = ids, attention_mask = mask, labels = labels }, {}, padded and "some" or false)
      end
    end
  end
end)

test("batches that must stay padded run padded: per-position logits, holes, left padding, pad targets", function()
  local ids, mask = ragged(9)
  local m = sift.build(SHAPES.gpt2, { seed = 3 })
  local lab = lm_labels(ids, mask)
  -- LM logits of every position are returned: padded
  local o = same_as_padded("LM with logits", m, { input_ids = ids, attention_mask = mask, labels = lab }, {}, false)
  check(o.logits:shape()[1] == B and o.logits:shape()[2] == T, "LM logits keep (B, T, V)")
  -- a pad position with a counted next-token target (labels = ids, pads included): padded
  same_as_padded("LM targets on pads", m, { input_ids = ids, attention_mask = mask, labels = ids }, { logits = false },
    false)
  -- a target on the second pad position is the first pad's next token, which the padded batch counts
  local lab3 = lm_labels(ids, mask)
  for t = 1, T do
    if mask[1][t] == 0 then lab3[1][t + 1] = 7; break end
  end
  same_as_padded("LM target on the second pad", m, { input_ids = ids, attention_mask = mask, labels = lab3 },
    { logits = false }, false)
  -- the last real token's target may sit on the first pad position: still packed, same loss
  local lab2 = lm_labels(ids, mask)
  for b = 1, B do
    for t = 1, T do
      if mask[b][t] == 0 then lab2[b][t] = 7; break end
    end
  end
  same_as_padded("LM target after the last real token", m, { input_ids = ids, attention_mask = mask, labels = lab2 },
    { logits = false }, true)
  -- a hole in a row, and a left-padded row: padded
  local c = sift.build(SHAPES.gpt2, { seed = 4, task = "classify", num_labels = 2 })
  local holed = {}
  for b = 1, B do holed[b] = { table.unpack(mask[b]) } end
  holed[2][3] = 0
  same_as_padded("mask with a hole", c, { input_ids = ids, attention_mask = holed, labels = { 0, 1, 1, 0, 1, 0 } }, {},
    false)
  local left = {}
  for b = 1, B do left[b] = { table.unpack(mask[b]) } end
  left[3] = {}
  for t = 1, T do left[3][t] = t > 5 and 1 or 0 end
  same_as_padded("left padding", c, { input_ids = ids, attention_mask = left, labels = { 0, 1, 1, 0, 1, 0 } }, {}, false)
  -- no padding at all: nothing to pack, the same products
  local full = {}
  for b = 1, B do full[b] = {} for t = 1, T do full[b][t] = 1 end end
  same_as_padded("no padding", c, { input_ids = ids, attention_mask = full, labels = { 0, 1, 1, 0, 1, 0 } }, {}, false)
end)

test("SIFT and LoRA steps on packed batches: the padded steps' weights", function()
  local ids, mask = ragged(13)
  local batch = { input_ids = ids, attention_mask = mask, labels = { 1, 0, 1, 1, 0, 0 } }
  local makers = { sparse = function(m) return sift.sparse(m, { rate = 0.05 }) end,
    lora = function(m) return sift.lora(m, { r = 4, alpha = 8, seed = 2 }) end }
  for _, method in ipairs { "sparse", "lora" } do
    local models, sets, calib = {}, {}, {}
    for i, pack in ipairs { false, true } do
      local m = sift.build(SHAPES.gpt2, { seed = 4, task = "classify", num_labels = 2 })
      local set = makers[method](m)
      local opt = sift.AdamW(set, { lr = 1e-2 })
      local f0 = sift.gemm_flops()
      if method == "sparse" then set:select(batch, { pack = pack }) end -- calibrated padded, then packed
      calib[i], sets[i] = sift.gemm_flops() - f0, set
      for _ = 1, 3 do
        m:forward(batch, { pack = pack })
        m:backward()
        opt:step()
        opt:zero_grad()
      end
      if method == "lora" then set:merge() end
      models[i] = m
    end
    local worst = 0
    for _, n in ipairs(models[1]:names()) do
      local a, b = models[1]:param(n), models[2]:param(n)
      worst = math.max(worst, a:max_abs_diff(b))
    end
    check(worst <= 1e-5, "%s: weights after three steps differ by %.3g", method, worst)
    if method == "sparse" then
      check(calib[2] < 0.8 * calib[1], "select: %d products packed, %d padded", calib[2], calib[1])
      for _, n in ipairs(sets[1]:targets()) do
        check(sets[1]:indices(n):max_abs_diff(sets[2]:indices(n)) == 0, "%s: masks differ packed / padded", n)
      end
    end
  end
end)

test("gpt2-4m on SST-2 rows: packed loss and gradients are the padded batch's", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local tok = sift.tokenizer(dir)
  local rows = sift.data.load("sst2", { split = "dev" }):take(24)
  local enc = sift.data.encode(rows, tok, { max_len = 64, pad_id = 0 })
  enc.labels = {}
  for i, r in ipairs(rows) do enc.labels[i] = r.label end
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  same_as_padded("gpt2-4m classify", m, enc, {}, true)
  local lm = sift.load(dir)
  enc.labels = lm_labels(enc.input_ids, enc.attention_mask)
  same_as_padded("gpt2-4m LM", lm, enc, { logits = false }, true)
end)

H.run()
