-- 04_sift_step_by_step.lua — Sparse Increment Fine-Tuning by hand: choose the components, train them,
-- measure, and ship the result as a small delta file.
--
--   ./build/sift-repl examples/04_sift_step_by_step.lua
--
-- SIFT trains only the top 1 % (by |gradient| on one calibration batch) of the entries of every weight
-- matrix inside the transformer blocks, plus the new classification head. Each trained matrix keeps
-- k indices and an increment delta (k values); the weight is W0[idx] + delta. Every statement also works
-- pasted line by line into ./build/sift-repl.

SHARED = os.getenv("SIFT_SHARED") or "../shared"
MODEL = SHARED .. "/models/gpt2-4m"
if not io.open(MODEL .. "/config.json") or not io.open(SHARED .. "/data/sst2/train.txt") then
  print("needs " .. MODEL .. "/ and " .. SHARED .. "/data/sst2/; skipping")
  os.exit(0)
end

-- 1. A pre-trained model with a new sentiment head, its tokenizer, shuffled training rows and a dev slice.
model = sift.load(MODEL, { task = "classify", num_labels = 2 })
tok = sift.tokenizer(MODEL)
train = sift.data.load("sst2", { split = "train" }):shuffle(0)
dev = sift.data.load("sst2", { split = "dev" }):take(200)
BATCH, MAX_LEN = 32, 48

-- 2. Accuracy before training: the head is random, so about chance.
before = sift.evaluate(model, dev, { tokenizer = tok, max_len = MAX_LEN })
print(("before: dev accuracy %.3f, loss %.4f on %d sentences"):format(before.accuracy, before.loss, before.n))

-- 3. The sparse set. Nothing is chosen yet: it knows its targets and their budgets k = floor(0.01 numel) + 1.
s = sift.sparse(model, { rate = 0.01 })
print(s)

-- 4. Selection: one forward/backward of a calibration batch; for every target the k entries with the
-- largest |gradient| become its trainable components. That gradient is kept for the first step.
function batch_at(i) -- rows (i-1)*BATCH+1 .. i*BATCH of the shuffled training data, as a model batch
  return sift.data.encode(train:slice((i - 1) * BATCH + 1, i * BATCH), tok, { max_len = MAX_LEN })
end
calib = batch_at(1)
s:select(calib)
print(s)
print("trainable values:", s:trainable(), "of", model.config.n_params)

-- 5. Look at one mask. s:indices(name) are flat 0-based row-major offsets into the weight, ascending:
-- offset o is row o // cols + 1, column o % cols + 1 (1-based, as t:get uses).
name = "transformer.h.1.mlp.c_fc.weight"
idx = s:indices(name)
nrows, cols = model:param_shape(name)[1], model:param_shape(name)[2]
print(("%s: %d of %d entries selected, dtype %s"):format(name, idx:numel(), nrows * cols, idx:dtype()))
for i = 1, 5 do
  local o = idx:get(i)
  print(("  offset %6d -> row %3d, col %4d"):format(o, o // cols + 1, o % cols + 1))
end
-- Which rows (input features) hold the most selected entries? Gradients cluster on a few of them.
per_row = {}
for i = 1, idx:numel() do local r = idx:get(i) // cols + 1; per_row[r] = (per_row[r] or 0) + 1 end
rows = {}
for r, n in pairs(per_row) do rows[#rows + 1] = { r = r, n = n } end
table.sort(rows, function(a, b) return a.n > b.n or (a.n == b.n and a.r < b.r) end)
print(("  %d of " .. nrows .. " rows hold a selected entry; the busiest rows: %d (%d entries), %d (%d), %d (%d)"):format(#rows,
  rows[1].r, rows[1].n, rows[2].r, rows[2].n, rows[3].r, rows[3].n))
if type(sift.mask_density) == "function" and type(sift.plot) == "table" then
  print(sift.plot.heatmap(sift.mask_density(s, { rows = 8, cols = 32 }), { name = name,
    title = "where the selected entries of " .. name .. " lie (8 x 32 blocks)" }))
end

-- 6. Memory: the optimizer keeps two moments per trainable value, not per weight, and no dense gradient of
-- a target stays resident. s:memory() counts bytes by kind ("activations" is the forward/backward scratch).
mem = s:memory()
kinds = {}
for kind in pairs(mem) do kinds[#kinds + 1] = kind end
table.sort(kinds)
for _, kind in ipairs(kinds) do print(("  %-20s %12d bytes"):format(kind, mem[kind])) end
print(("optimizer + gradient state: %.2f MB; full fine-tuning would hold gradients and two moments for every"
  .. " weight: %.1f MB"):format(mem.optimizer_and_grads / 2^20, 3 * mem.weights / 2^20))

-- 7. Train by hand. AdamW on the set updates only the increments (and the dense head); after every step
-- the engine writes W0[idx] + delta back into the weights. Step 1 applies the calibration gradient.
-- The learning rate warms up over the first steps and then decays linearly (what sift.train does).
LR, STEPS, WARMUP = 2e-3, 24, 4
opt = sift.AdamW(s, { lr = LR, weight_decay = 0.01 })
w_before = model:param(name):clone()
for step = 1, STEPS do
  if step > 1 then -- step 1 uses the gradient s:select kept
    out = model:forward(batch_at(step))
    model:backward()                -- the hooks gather only the selected gradient entries
  end
  opt:clip(1.0)                     -- clip the global gradient norm to 1
  opt:set_lr(LR * math.min(1, step / WARMUP) * (1 - (step - 1) / STEPS))
  opt:step()
  opt:zero_grad()
  if step > 1 and step % 2 == 0 then print(("step %2d  lr %.5f  loss %.4f"):format(step, opt:lr(), out.loss)) end
end

-- 8. Only the selected entries moved: the weight minus its old value is non-zero exactly on idx.
diff = model:param(name) - w_before
flat = diff:reshape(diff:numel())
moved, moved_outside, selected = 0, 0, {}
for i = 1, idx:numel() do selected[idx:get(i) + 1] = true end
for i = 1, flat:numel() do
  if flat:get(i) ~= 0 then
    if selected[i] then moved = moved + 1 else moved_outside = moved_outside + 1 end
  end
end
print(("%s: %d selected entries moved, %d others moved; ||delta|| = %.4f"):format(name, moved, moved_outside,
  s:increment(name):norm()))

-- 9. Accuracy after 24 small steps (the dev rows were never trained on). With 200 dev sentences the
-- accuracy moves in steps of 0.5 % and is noisy; the full recipe (3 epochs over all 6,920 sentences, see
-- ../shared/README.md) reaches about 68 % with SIFT 1 % on this model. Example 05 runs sift.train.
after = sift.evaluate(model, dev, { tokenizer = tok, max_len = MAX_LEN })
print(("after:  dev accuracy %.3f, loss %.4f   (before: %.3f, %.4f)"):format(after.accuracy, after.loss,
  before.accuracy, before.loss))

-- 10. Ship it: a delta file holds, per target, the indices, the increments and a hash of the base weights;
-- the dense head is stored whole. Apply it to a freshly loaded model and it computes the same logits; unapply
-- restores the original weights bit for bit.
if s.save_delta and sift.load_delta then
  path = os.tmpname() -- a fresh temporary file name (the delta is a safetensors file whatever its name)
  s:save_delta(path)
  local f = io.open(path, "rb")
  print(("delta file: %d bytes (the model's weights take %d bytes)"):format(f:seek("end"), 4 * model.config.n_params))
  f:close()
  fresh = sift.load(MODEL, { task = "classify", num_labels = 2 })
  probe = sift.data.encode(dev:take(16), tok, { max_len = MAX_LEN })
  base_logits = fresh:forward(probe, { grad = false }).logits:clone()
  d = sift.load_delta(path)
  print(d)
  d:check(fresh) -- names, shapes and base hashes match
  d:apply(fresh)
  same = fresh:forward(probe, { grad = false }).logits:max_abs_diff(model:forward(probe, { grad = false }).logits)
  print("trained model vs fresh model + delta: max |logit difference| =", same)
  d:unapply(fresh)
  print("after unapply vs the original:        max |logit difference| =",
    fresh:forward(probe, { grad = false }).logits:max_abs_diff(base_logits))
  os.remove(path)
else
  print("(deltas are not available in this build: s:save_delta(path) / sift.load_delta(path) would go here)")
end
