-- test_builders.lua — models built from a config (sift.build) for every architecture, checked end to end:
-- forward/backward run, and the analytic gradient of several parameters matches central differences of
-- the model's loss (eps 1e-2 on single weights, tolerance 3e-2 relative + 2e-4 absolute: the loss is float32) — this covers
-- the BERT path (learned + type embeddings, post-LN encoder, pooler + classifier) that has no HF fixture.
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check = H.test, H.check

local function fd_check(m, batch, names)
  m:zero_grad()
  m:forward(batch)
  m:backward()
  for _, name in ipairs(names) do
    local p, g = m:param(name), m:grad(name)
    local flat, gflat = p:reshape(p:numel()), g:reshape(g:numel())
    for _, i in ipairs { 1, p:numel() // 3 + 1, p:numel() } do
      local keep, eps = flat:get(i), 1e-2
      flat:set(i, keep + eps)
      local lp = m:forward(batch, { grad = false }).loss
      flat:set(i, keep - eps)
      local lm = m:forward(batch, { grad = false }).loss
      flat:set(i, keep)
      local num, ana = (lp - lm) / (2 * eps), gflat:get(i)
      check(math.abs(num - ana) <= 3e-2 * math.abs(num) + 2e-4, "%s[%d]: analytic %.6g, numeric %.6g", name, i, ana, num)
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
