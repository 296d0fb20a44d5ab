-- analyze_gradients.lua — the paper's first observation: after pre-training, a few components carry most
-- of the gradient. For a pre-trained model and a randomly initialised one of the same shape, the share of
-- the gradient's ||g||_2 held by its top x % components (sift.coverage: the block matrices, one batch of
-- the task's training rows), over several draws of the fresh task head (the gradients reaching the blocks
-- go through it, and the pre-trained figures move with its draw).
--
--   ./build/sift-repl scripts/analyze_gradients.lua --task sst2 --heads 4 --out grads.json
--
-- Prints one table (mean and range over the draws); --out writes every draw's figures (per tensor too) as
-- JSON and the curves as grads.curves.svg. ../shared/README.md has a peer figure for gpt2-4m on SST-2 (first
-- 64 training rows, max 64 tokens): 0.379 / 0.647 / 0.833 / 0.900 at 0.1 / 1 / 5 / 10 %, random init
-- 0.241 / 0.502 / 0.746 / 0.847 (the default batch is that one).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/lib/?.lua;" .. package.path
local X = require "experiment"

local o = X.options({
  { "model", X.default_model() or "", "a Hugging Face folder or llama2.c .bin" },
  { "task", "sst2", "a data set sift.data.load knows or a path" },
  { "rows", 64, "rows in the batch" },
  { "max_len", 64, "tokens per row at most" },
  { "fractions", "0.001,0.01,0.05,0.1", "the top fractions x, comma-separated" },
  { "heads", 4, "draws of the task head (seeds 0..heads-1)" },
  { "shuffle", false, "shuffle the training rows first (off: the first rows, as the peer figure)" },
  { "seed", 0, "seed of the shuffle" },
  { "out", "", "write the figures here as JSON (and the curves as SVG beside it)" },
}, "analyze_gradients.lua — gradient concentration of a pre-trained model against a random initialisation")

local fractions = X.numbers(o.fractions, "fractions")
local task = X.task({ model = o.model, task = o.task, seed = o.seed, rows = 0 })
if task.lm then X.fail("--task %s has no classes; gradient concentration here uses a classification loss", o.task) end
local ds = o.shuffle and task.train or sift.data.load(o.task, { split = "train" })
local batch = X.batches(ds, task.tok, 1, o.rows, o.max_len)[1]

local runs = { pretrained = {}, random = {} }
for seed = 0, o.heads - 1 do
  for _, kind in ipairs { "pretrained", "random" } do
    local m = X.model(o, task, kind == "random", seed)
    local c = sift.coverage(m, batch, { fractions = fractions })
    local per = {}
    for _, n in ipairs(c.names) do per[n] = c.tensors[n].norm end
    runs[kind][#runs[kind] + 1] = { seed = seed, mean = c.mean, mean_sq = c.mean_sq, loss = c.loss, tensors = per,
      coverage = c }
  end
end

local function summary(list)
  local mean, lo, hi = {}, {}, {}
  for i = 1, #fractions do
    mean[i], lo[i], hi[i] = 0, math.huge, -math.huge
    for _, r in ipairs(list) do
      mean[i] = mean[i] + r.mean[i] / #list
      lo[i], hi[i] = math.min(lo[i], r.mean[i]), math.max(hi[i], r.mean[i])
    end
  end
  return mean, lo, hi
end

print(("share of ||g||_2 in the top x %% of each block matrix (%s, %s, %d rows; mean [min, max] over %d head draws)")
  :format(o.model:match("[^/]+$"), o.task, o.rows, o.heads))
local head = { ("  %-12s"):format("x") }
for _, f in ipairs(fractions) do head[#head + 1] = ("%22s"):format(("%g %%"):format(100 * f)) end
print(table.concat(head))
local result = { options = o, fractions = fractions }
for _, kind in ipairs { "pretrained", "random" } do
  local mean, lo, hi = summary(runs[kind])
  local row = { ("  %-12s"):format(kind) }
  for i = 1, #fractions do row[#row + 1] = ("%22s"):format(("%.3f [%.3f, %.3f]"):format(mean[i], lo[i], hi[i])) end
  print(table.concat(row))
  result[kind] = { mean = mean, min = lo, max = hi, draws = {} }
  for i, r in ipairs(runs[kind]) do
    result[kind].draws[i] = { seed = r.seed, mean = r.mean, mean_sq = r.mean_sq, loss = r.loss, tensors = r.tensors }
  end
end
X.write_json(o.out, result)
X.save_figure(o.out, "curves", sift.plot.curve({ pretrained = runs.pretrained[1].coverage, random = runs.random[1].coverage },
  { title = "share of ||g||_2 in the top x % (head draw 0)" }))
