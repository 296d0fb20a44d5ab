-- test_builders.lua — models built from a config (sift.build) for every architecture, checked end to end:
-- forward/backward run, and the analytic gradient of every checked parameter matches central differences
-- of the model's loss along directions (random signs) over the whole tensor, its first row and its last
-- row: a direction moves many weights at once, so the loss changes far above its float32 rounding and the
-- tolerance can be tight (see fd_check) — this covers the BERT path (learned + type embeddings, post-LN
-- encoder, pooler + classifier) that has no HF fixture.
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check = H.test, H.check

-- Directional derivative check: for a direction d (signs +-1 on a range of the flattened parameter),
-- analytic sum(g * d) against (L(p + eps d) - L(p - eps d)) / (2 eps). eps = 1e-2: the central
-- difference's truncation error is O(eps^2); the loss's float32 rounding (~1e-6 of it) becomes ~1e-4 of
-- the difference. Tolerance 3e-3 of sum|g * d| (the scale of the derivative along d) plus 4 units in
-- the last place of the float32 loss over 2 eps (what the difference itself can resolve).
local function fd_check(m, batch, names)
  m:zero_grad()
  m:forward(batch)
  m:backward()
  local seed = 12345
  local function sign()
    seed = (seed * 1103515245 + 12345) % 2147483648
    return (seed // 65536) % 2 == 0 and 1 or -1 -- a high bit: the low bits of this LCG cycle
  end
  for _, name in ipairs(names) do
    local p, g = m:param(name), m:grad(name)
    local n = p:numel()
    local shape = p:shape()
    local row = #shape >= 2 and shape[#shape] or math.max(1, n // 4)
    local flat, gflat = p:reshape(n), g:reshape(n)
    for _, range in ipairs { { 1, n, "whole" }, { 1, row, "first row" }, { n - row + 1, n, "last row" } } do
      local lo, hi, what = range[1], range[2], range[3]
      local keep, d, ana, scale = {}, {}, 0, 0
      for i = lo, hi do
        keep[i], d[i] = flat:get(i), sign()
        local gd = gflat:get(i) * d[i]
        ana, scale = ana + gd, scale + math.abs(gd)
      end
      local eps = 1e-3
      local function loss_at(e)
        for i = lo, hi do flat:set(i, keep[i] + e * d[i]) end
        return m:forward(batch, { grad = false }).loss
      end
      local lp, lm = loss_at(eps), loss_at(-eps)
      for i = lo, hi do flat:set(i, keep[i]) end
      local num = (lp - lm) / (2 * eps)
      -- the loss comes back as a float32: its difference is known to a few units in the last place
      local ulp = 2.0 ^ (math.floor(math.log(math.max(math.abs(lp), math.abs(lm)), 2)) - 23)
      local tol = 3e-3 * scale + 4 * ulp / (2 * eps)
      check(math.abs(num - ana) <= tol, "%s (%s, %d weights): analytic %.7g, numeric %.7g (tolerance %.3g)",
        name, what, hi - lo + 1, ana, num, tol)
    end
  end
end

test("bert classification model: shapes, finite loss, gradients match finite differences", function()
  local m = sift.build({ arch = "bert", vocab_size = 50, n_layer = 2, n_head = 2, d_model = 16, max_pos = 32, type_vocab = 2 },
    { task = "classify", num_labels = 3, seed = 1 })
  check(m.config.arch == "bert" and m.config.num_labels == 3, "config")
  local names = m:names()
  check(names[1] == "bert.embeddings.word_embeddings.weight", "first name %s", names[1])
  local heads = m:head_names()
  check(#heads == 4 and heads[1] == "bert.pooler.dense.weight", "head %s", heads[1])
  local batch = { input_ids = { { 2, 5, 7, 9, 0 }, { 3, 4, 0, 0, 0 } }, attention_mask = { { 1, 1, 1, 1, 0 }, { 1, 1, 0, 0, 0 } },
    labels = { 2, 0 } }
  local out = m:forward(batch)
  check(#out.logits:shape() == 2 and out.logits:shape()[2] == 3, "logits shape")
  check(out.loss == out.loss and out.loss > 0, "loss %s", tostring(out.loss))
  fd_check(m, batch, { "bert.encoder.layer.0.attention.self.query.weight", "bert.embeddings.position_embeddings.weight",
    "bert.embeddings.token_type_embeddings.weight", "bert.pooler.dense.weight", "classifier.bias",
    "bert.encoder.layer.1.output.LayerNorm.weight" })
end)

test("gpt2 and llama builders: LM gradients match finite differences; padding does not leak", function()
  for _, arch in ipairs { "gpt2", "llama" } do
    local m = sift.build({ arch = arch, vocab_size = 40, n_layer = 2, n_head = 4, n_kv_head = arch == "llama" and 2 or 4,
      d_model = 16, max_pos = 16 }, { seed = 2 })
    local ids = { { 1, 5, 9, 3, 7, 2 } }
    fd_check(m, { input_ids = ids, labels = ids }, m:names())
    -- a right-padded row gives the same logits on its real tokens as the row alone
    local alone = m:forward({ input_ids = { { 1, 5, 9 } } }, { grad = false }).logits:totable()[1]
    local padded = m:forward({ input_ids = { { 1, 5, 9, 0, 0 } }, attention_mask = { { 1, 1, 1, 0, 0 } } }, { grad = false }).logits:totable()[1]
    local worst = 0
    for t = 1, 3 do for v = 1, 40 do worst = math.max(worst, math.abs(alone[t][v] - padded[t][v])) end end
    check(worst < 1e-5, "%s: padding changed real-token logits by %g", arch, worst)
  end
end)

-- One output is a regression head (Hugging Face's problem_type "regression"): real-valued labels, the
-- loss is the mean squared error of the logit, and its gradients match finite differences.
test("regression heads (num_labels = 1): MSE loss on real targets, gradients match finite differences", function()
  for _, arch in ipairs { "gpt2", "bert" } do
    local m = sift.build({ arch = arch, vocab_size = 50, n_layer = 2, n_head = 2, d_model = 16, max_pos = 32, type_vocab = 2 },
      { task = "classify", num_labels = 1, seed = 4 })
    local batch = { input_ids = { { 2, 5, 7, 9, 0 }, { 3, 4, 0, 0, 0 }, { 8, 1, 6, 0, 0 } },
      attention_mask = { { 1, 1, 1, 1, 0 }, { 1, 1, 0, 0, 0 }, { 1, 1, 1, 0, 0 } }, labels = { 4.25, 0.5, 2.0 } }
    local out = m:forward(batch)
    local logits = out.logits:totable()
    check(#logits == 3 and #logits[1] == 1, "%s: logits shape", arch)
    local mse = 0
    for r = 1, 3 do mse = mse + (logits[r][1] - batch.labels[r]) ^ 2 / 3 end
    check(math.abs(out.loss - mse) <= 1e-6 * mse, "%s: loss %.9g, mean squared error of the logits %.9g", arch, out.loss, mse)
    local names = m:names()
    fd_check(m, batch, { names[1], names[#names], names[#names - 1], names[#names // 2] })
    local ok, err = pcall(m.forward, m, { input_ids = batch.input_ids, labels = { 1, 2 } })
    check(not ok and err:find("one f32 target per row", 1, true), "%s: two targets for three rows: %s", arch, tostring(err))
  end
end)

test("save_tensors writes a loaded table back whole, metadata included, atomically", function()
  local t = { w = sift.randn(3, 4, { seed = 1 }), ids = sift.tensor({ 1, 2, 3 }, { dtype = "i64" }), [".metadata"] = { step = "7" } }
  local path = os.tmpname()
  sift.save_tensors(path, t)
  local u = sift.load_tensors(path)
  check(u[".metadata"].step == "7", "metadata kept")
  check(u.w:max_abs_diff(t.w) == 0 and u.ids:dtype() == "i64", "tensors kept")
  sift.save_tensors(path, u, { step = 8 })
  check(sift.load_tensors(path)[".metadata"].step == "8", "an explicit metadata argument wins")
  local ok, err = pcall(sift.save_tensors, "/nonexistent_dir/x.safetensors", t)
  check(not ok and err:find("nonexistent_dir"), "unwritable path: %s", tostring(err))
  check(sift.load_tensors(path).w:max_abs_diff(t.w) == 0, "the earlier file is intact")
  os.remove(path)
end)

H.run()
