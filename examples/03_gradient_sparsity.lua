-- 03_gradient_sparsity.lua — why sparse fine-tuning can work: the gradient of a pre-trained model is
-- concentrated in a few of its components.
--
--   ./build/sift-repl examples/03_gradient_sparsity.lua
--
-- We take gpt2-4m with a fresh 2-way classification head, compute the gradient of the SST-2 sentiment loss
-- on 64 training sentences, and ask: which share of the gradient's length ||g||_2 do the largest 1 % of
-- its entries hold? If a few entries carry most of it, updating only those (SIFT) moves the weights almost
-- as far downhill as updating all of them. Every statement also works pasted into ./build/sift-repl.

SHARED = os.getenv("SIFT_SHARED") or "../shared"
MODEL = SHARED .. "/models/gpt2-4m"
if not io.open(MODEL .. "/config.json") or not io.open(SHARED .. "/data/sst2/train.txt") then
  print("needs " .. MODEL .. "/ and " .. SHARED .. "/data/sst2/; skipping")
  os.exit(0)
end

-- 1. The model, with task = "classify": a new head `score.weight` (2 x 256, no bias, ~ N(0, 0.02)) reads
-- the hidden state of the last real token of each sentence.
model = sift.load(MODEL, { task = "classify", num_labels = 2 })
tok = sift.tokenizer(MODEL)
print(model)

-- 2. One batch: the first 64 SST-2 training sentences (label 0 = negative, 1 = positive), tokenised and
-- padded to the longest (at most 64 tokens); attention_mask marks the real tokens.
train = sift.data.load("sst2", { split = "train" })
print(train)
print(("first row: label %d, %q"):format(train[1].label, train[1].text))
batch = sift.data.encode(train:take(64), tok, { max_len = 64 })
print(("batch: %d rows x %d tokens"):format(#batch.input_ids, #batch.input_ids[1]))

-- 3. Forward (cross-entropy over the 2 classes) and backward: now every parameter has its full gradient.
out = model:forward(batch)
print(("loss %.4f (an untrained head guesses: ln 2 = %.4f)"):format(out.loss, math.log(2)))
model:backward()

-- 4. For a few block weights: sort |g| and measure the share of ||g||_2 held by the top x % of entries.
-- t:top_share(fractions) returns that share for each fraction (k = max(1, floor(x * numel)) entries).
-- If g were spread evenly, the top 1 % would hold sqrt(0.01) = 10 % of ||g||.
fractions = { 0.001, 0.01, 0.05, 0.1 }
print(("%-36s %10s %8s %8s %8s %8s"):format("weight", "numel", "0.1 %", "1 %", "5 %", "10 %"))
for _, name in ipairs({ "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.weight",
  "transformer.h.2.attn.c_proj.weight", "transformer.h.3.mlp.c_proj.weight" }) do
  local g = model:grad(name)
  local share = g:top_share(fractions)
  print(("%-36s %10d %8.3f %8.3f %8.3f %8.3f"):format(name, g:numel(), share[1], share[2], share[3], share[4]))
end

-- 5. The mean over all 16 block matrices (what SIFT would train). The published measurement on this model
-- (see ../shared/README.md) is 0.379 / 0.647 / 0.833 / 0.900 — a different random head gives slightly
-- different numbers.
targets = {}
for _, name in ipairs(model:names()) do
  if name:find("%.h%.%d+%.") and #model:param_shape(name) == 2 then targets[#targets + 1] = name end
end
mean = { 0, 0, 0, 0 }
for _, name in ipairs(targets) do
  local share = model:grad(name):top_share(fractions)
  for i = 1, #fractions do mean[i] = mean[i] + share[i] / #targets end
end
print(("mean over %d matrices: %.3f / %.3f / %.3f / %.3f   (published: 0.379 / 0.647 / 0.833 / 0.900)")
  :format(#targets, mean[1], mean[2], mean[3], mean[4]))

-- 6. Compare with the same architecture at random initialisation (never trained): its gradients are
-- more spread out. Pre-training is what concentrates them.
c = model.config
fresh = sift.build({ arch = "gpt2", vocab_size = c.vocab_size, n_layer = c.n_layer, n_head = c.n_head,
  d_model = c.d_model, max_pos = c.max_pos }, { task = "classify", num_labels = 2, seed = 0 })
fresh:forward(batch)
fresh:backward()
mean_fresh = { 0, 0, 0, 0 }
for _, name in ipairs(targets) do
  local share = fresh:grad(name):top_share(fractions)
  for i = 1, #fractions do mean_fresh[i] = mean_fresh[i] + share[i] / #targets end
end
print(("random init:          %.3f / %.3f / %.3f / %.3f   (published: 0.241 / 0.502 / 0.746 / 0.847)")
  :format(mean_fresh[1], mean_fresh[2], mean_fresh[3], mean_fresh[4]))

-- 7. sift.coverage does steps 3-5 in one call (one forward/backward, every default target) and
-- sift.plot.curve draws the result in the terminal. Both are optional parts of the library.
if type(sift.coverage) == "function" then
  fine = { 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1 }
  cov = sift.coverage(model, batch, { fractions = fine })
  cov_fresh = sift.coverage(fresh, batch, { fractions = fine })
  print(cov)
  if type(sift.plot) == "table" and sift.plot.curve then
    print(sift.plot.curve({ cov, cov_fresh }, { labels = { "pre-trained gpt2-4m", "random init" }, width = 56, height = 12 }))
  end
else
  print("(sift.coverage is not available in this build: steps 3-5 above are what it computes)")
end

-- 8. What this means for SIFT at rate 1 %: per matrix it keeps k = floor(0.01 * numel) + 1 entries —
-- about 0.6 of the gradient's length in this batch, with 1 % of the optimizer memory. Example 04 does it.
k_total = 0
for _, name in ipairs(targets) do
  local n = 1
  for _, d in ipairs(model:param_shape(name)) do n = n * d end
  k_total = k_total + n // 100 + 1
end
print(("SIFT 1 %% would train %d of the block weights' values"):format(k_total))
