-- 07_masks_and_landscapes.lua — two more pieces of the SIFT paper's evidence, measured on a real model:
-- the components SIFT picks from one batch are largely the ones other batches would pick (so fixing the
-- mask after one batch is reasonable), and pre-training changes the loss landscape the new task sees.
--
--   ./build/sift-repl examples/07_masks_and_landscapes.lua
--
-- (03_gradient_sparsity.lua shows the first piece: the gradient's norm sits in a few components.) The
-- scripts in scripts/analyze_*.lua run the same measurements with options and write JSON; see
-- docs/analyses.md. Every statement also works pasted into ./build/sift-repl.

SHARED = os.getenv("SIFT_SHARED") or "../shared"
MODEL = SHARED .. "/models/gpt2-4m"
if not io.open(MODEL .. "/config.json") or not io.open(SHARED .. "/data/sst2/train.txt") then
  print("needs " .. MODEL .. "/ and " .. SHARED .. "/data/sst2/; skipping")
  os.exit(0)
end

-- 1. gpt2-4m with a fresh sentiment head, and four batches of 32 SST-2 training sentences.
model = sift.load(MODEL, { task = "classify", num_labels = 2 })
tok = sift.tokenizer(MODEL)
train = sift.data.load("sst2", { split = "train" }):shuffle(0)
batches = {}
for i = 1, 4 do batches[i] = sift.data.encode(train:slice(32 * i - 31, 32 * i), tok, { max_len = 64, pad_id = 0 }) end

-- 2. The masks SIFT's topk policy would pick from each batch: for every block matrix, the offsets of the
-- top 1 % of |gradient| entries (sift.masks: one forward/backward per batch, no set made).
first = sift.masks(model, batches[1], { rate = 0.01 })
print(first)
name = "transformer.h.2.mlp.c_fc.weight"
print(("%s: %d of %d entries, e.g. offsets %s"):format(name, first[name]:numel(), first.numel[name],
  table.concat({ table.unpack(first[name]:totable(), 1, 5) }, ", ")))

-- 3. How much do two batches agree? sift.mask_overlap counts the offsets two masks share. Two random masks
-- of 1 % share about 1 % of their offsets ("chance"); real gradients share far more.
second = sift.masks(model, batches[2], { rate = 0.01 })
o = sift.mask_overlap(first, second)
print(("batch 1 vs batch 2: %.1f %% of the offsets shared (chance %.1f %%), %.0fx chance"):format(100 * o.overlap,
  100 * o.chance, o.overlap / o.chance))

-- 4. All four batches against the first (sift.mask_stability does steps 2-3 for a list of batches).
print(sift.mask_stability(model, batches, { rate = 0.01 }))

-- 5. The loss landscape: the loss of batch 1 at w + a * d for a random direction d scaled filter by filter
-- to the weights (every block matrix moves at once), a from -1 to 1. The weights come back bit for bit.
pre = sift.landscape(model, batches[1], { points = 15, span = 1, seed = 0 })
print(pre)

-- 6. The same walk (the same random draws) around a randomly initialised model of the same shape: the
-- pre-trained model's loss swings far more — pre-training moved it somewhere the new task's loss is
-- sensitive to the weights, which is why a few well-chosen components can move it a long way.
random = sift.build(model.config, { task = "classify", num_labels = 2, seed = 0 })
rnd = sift.landscape(random, batches[1], { points = 15, span = 1, seed = 0 })
local function swing(L)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(L.loss) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return hi - lo
end
print(("loss swing along the walk: pre-trained %.4f, random init %.4f (%.1fx)"):format(swing(pre), swing(rnd),
  swing(pre) / swing(rnd)))
print(sift.plot.line({ { x = pre.alphas, y = pre.loss, label = "pre-trained" },
  { x = rnd.alphas, y = rnd.loss, label = "random init" } }, { title = "loss along a filter-normalised direction",
  height = 10, width = 56 }))
