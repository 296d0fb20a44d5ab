-- 05_compare_methods.lua — SIFT against LoRA, full fine-tuning and head-only training, same data, same
-- schedule, one table.
--
--   ./build/sift-repl examples/05_compare_methods.lua [rows] [epochs]
--
-- Each method starts from the same pre-trained gpt2-4m with the same new sentiment head (seed 0), sees the
-- same shuffled SST-2 rows in the same order with the same learning-rate schedule (sift.train does that for
-- every method), and is evaluated on the same dev sentences. Only what may change differs: which values
-- train, and the learning rate (each method's usual one, from ../shared/README.md).
-- The default run (512 sentences, 1 epoch: 16 steps per method, about half a minute for all four on two
-- cores) is a demonstration, not a benchmark: after so few steps every method is still close to chance and
-- 200 dev sentences put about +-3.5 % of noise on each accuracy. The peer table in ../shared/README.md
-- (3 epochs over all 6,920 sentences) has full 76 %, LoRA 73 %, SIFT 1 % 68 %, head only 63 %; run
-- `./build/sift-repl examples/05_compare_methods.lua 6920 3` for that (tens of minutes).
-- Every statement also works pasted line by line into ./build/sift-repl.

SHARED = os.getenv("SIFT_SHARED") or "../shared"
MODEL = SHARED .. "/models/gpt2-4m"
if not io.open(MODEL .. "/config.json") or not io.open(SHARED .. "/data/sst2/train.txt") then
  print("needs " .. MODEL .. "/ and " .. SHARED .. "/data/sst2/; skipping")
  os.exit(0)
end

-- 1. Data: a shuffled slice of the training set and the first 200 dev sentences.
ROWS = tonumber(arg and arg[1]) or 512
EPOCHS = tonumber(arg and arg[2]) or 1
MAX_LEN = 40
tok = sift.tokenizer(MODEL)
train = sift.data.load("sst2", { split = "train" }):shuffle(0):take(ROWS)
dev = sift.data.load("sst2", { split = "dev" }):take(200)
print(train, "|", dev)

-- 2. The four methods: a function that makes the trainable set for a fresh model, and a learning rate.
--   sift.sparse  the top 1 % of |gradient| entries of every block matrix + the head (SIFT)
--   sift.lora    rank-8 adapters A, B beside every block matrix (W + alpha/r * A B) + the head
--   sift.full    every parameter
--   sift.head    the new classification head only (the transformer stays frozen)
methods = {
  { name = "SIFT 1 %", lr = 3e-3, make = function(m) return sift.sparse(m, { rate = 0.01 }) end },
  { name = "LoRA r=8", lr = 1e-3, make = function(m) return sift.lora(m, { r = 8, alpha = 16 }) end },
  { name = "full", lr = 3e-4, make = function(m) return sift.full(m) end },
  { name = "head only", lr = 1e-3, make = function(m) return sift.head(m) end },
}

-- 3. Train each one with sift.train: batches of 32, at most MAX_LEN tokens a sentence (40 keeps 72 % of the SST-2
-- sentences whole and the run short; the published recipe uses 64),
-- linear decay after a 6 % warm-up, gradient clipping at 1, evaluation on `dev` at the end of each epoch.
results = {}
for _, meth in ipairs(methods) do
  local model = sift.load(MODEL, { task = "classify", num_labels = 2, seed = 0 })
  local set = meth.make(model)
  local t0 = sift.now()
  local h = sift.train({ model = model, method = set, data = train, tokenizer = tok, max_len = MAX_LEN, batch = 32,
    epochs = EPOCHS, lr = meth.lr, seed = 0, eval = dev, quiet = true })
  if h.interrupted then -- Ctrl-C: the table below shows the methods that finished
    set:close()
    break
  end
  local last = h.eval[#h.eval]
  results[#results + 1] = { name = meth.name, trainable = h.trainable, seconds = sift.now() - t0, steps = #h.loss,
    first_loss = h.loss[1], final_loss = h.loss[#h.loss], accuracy = last.accuracy, mcc = last.mcc }
  print(("%-10s done: %d steps in %.1f s, dev accuracy %.3f"):format(meth.name, #h.loss, sift.now() - t0, last.accuracy))
  set:close()   -- release the set's optimizer state and hooks before the next model
end

-- 4. The table. "trainable" counts the values the optimizer updates (SIFT: 31,468 sparse + 512 head).
print()
print(("%-10s %10s %9s %8s %11s %11s %9s %7s"):format("method", "trainable", "% of all", "seconds", "first loss",
  "final loss", "accuracy", "mcc"))
total = sift.load(MODEL, { task = "classify", num_labels = 2 }).config.n_params
for _, r in ipairs(results) do
  print(("%-10s %10d %8.3f%% %8.1f %11.4f %11.4f %9.3f %7.3f"):format(r.name, r.trainable, 100 * r.trainable / total,
    r.seconds, r.first_loss, r.final_loss, r.accuracy, r.mcc))
end
-- The first losses agree: every method starts from the same model on the same first batch.
