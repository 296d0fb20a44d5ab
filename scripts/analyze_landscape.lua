-- analyze_landscape.lua — the paper's second observation: pre-training changes the loss landscape the
-- fine-tuning task sees. Around a pre-trained model the task's loss swings widely along random directions
-- (scaled filter by filter to the weights, Li et al. 2018); around a random initialisation of the same
-- shape it barely moves. sift.landscape walks both models along the same directions (1-D: --directions
-- draws; --dims 2: one 2-D grid each). With --finetune_steps N it also fine-tunes the pre-trained model
-- with SIFT for N steps and walks the straight line through the start w0 and the result w_ft (a = 0 is
-- w_ft, a = 1 is w0).
--
--   ./build/sift-repl scripts/analyze_landscape.lua --task sst2 --points 21 --directions 3 --out land.json
package.path = (arg[0]:match("^(.*)/") or ".") .. "/lib/?.lua;" .. package.path
local X = require "experiment"

local o = X.options({
  { "model", X.default_model() or "", "a Hugging Face folder or llama2.c .bin" },
  { "task", "sst2", "a data set sift.data.load knows or a path" },
  { "rows", 64, "rows of the batch the loss is measured on (the first training rows)" },
  { "max_len", 64, "tokens per row at most" },
  { "points", 21, "points per axis" },
  { "span", 1.0, "the walk covers [-span, span] along each direction" },
  { "directions", 3, "random directions (seeds 0..n-1), each walked for both models" },
  { "dims", 1, "1: lines; 2: one grid per model (directions seeds 0 and its second draw)" },
  { "normalize", "filter", "filter | layer | none" },
  { "finetune_steps", 0, "also: SIFT steps on the task, then the line through w0 and w_ft" },
  { "rate", 0.01, "SIFT's rate for --finetune_steps" },
  { "lr", 3e-3, "SIFT's learning rate for --finetune_steps" },
  { "out", "", "write the losses here as JSON (and the curves as SVG beside it)" },
}, "analyze_landscape.lua — the task's loss around a pre-trained model and around a random initialisation")

if o.dims ~= 1 and o.dims ~= 2 then X.fail("--dims must be 1 or 2") end
local task = X.task({ model = o.model, task = o.task })
if task.lm then X.fail("--task %s has no classes; this analysis uses a classification loss", o.task) end
local batch = X.batches(sift.data.load(o.task, { split = "train" }), task.tok, 1, o.rows, o.max_len)[1]
local models = { pretrained = X.model(o, task, false, 0), random = X.model(o, task, true, 0) }
local result = { options = o }
local series = {}

local function range(values)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    if type(v) == "table" then
      local a, b = range(v)
      lo, hi = math.min(lo, a), math.max(hi, b)
    else
      lo, hi = math.min(lo, v), math.max(hi, v)
    end
  end
  return lo, hi
end

for _, kind in ipairs { "pretrained", "random" } do
  result[kind] = {}
  local n = o.dims == 2 and 1 or o.directions
  for seed = 0, n - 1 do
    local L = sift.landscape(models[kind], batch, { points = o.points, span = o.span, seed = seed, directions = o.dims,
      normalize = o.normalize })
    local lo, hi = range(L.loss)
    result[kind][#result[kind] + 1] = { seed = seed, alphas = L.alphas, betas = L.betas, loss = L.loss, center = L.center,
      swing = hi - lo }
    if o.dims == 1 then
      series[#series + 1] = { x = L.alphas, y = L.loss, label = ("%s, direction %d"):format(kind, seed) }
    else
      print(("%s:"):format(kind))
      print(L)
    end
    print(("%-10s direction seed %d: loss %.4f at the weights, from %.4f to %.4f along the walk (swing %.4f)")
      :format(kind, seed, L.center, lo, hi, hi - lo))
  end
end

if o.finetune_steps > 0 then
  local m = models.pretrained
  local w0 = {}
  for _, n in ipairs(m:names()) do w0[n] = m:param(n):clone() end
  local s = sift.sparse(m, { rate = o.rate })
  local h = sift.train({ model = m, method = s, data = task.train, tokenizer = task.tok, max_len = o.max_len, batch = 32,
    lr = o.lr, max_steps = o.finetune_steps, epochs = math.ceil(o.finetune_steps * 32 / #task.train), quiet = true })
  local dir = {}
  for _, n in ipairs(s:targets()) do dir[n] = w0[n] - m:param(n) end
  for _, n in ipairs(s:dense()) do dir[n] = w0[n] - m:param(n) end
  local span = math.max(o.span, 1.5)
  local L = sift.landscape(m, batch, { directions = { dir }, points = o.points, span = span })
  print(("\nthe line through w_ft (a = 0, after %d SIFT steps: training loss %.4f -> %.4f) and w0 (a = 1):")
    :format(h.steps, h.loss[1], h.loss[#h.loss]))
  print(L)
  result.finetune_line = { steps = h.steps, alphas = L.alphas, loss = L.loss, train_loss = h.loss }
  series[#series + 1] = { x = L.alphas, y = L.loss, label = "line w_ft (0) -> w0 (1)" }
  s:close()
end
X.write_json(o.out, result)
if #series > 0 then
  X.save_figure(o.out, "curves", sift.plot.line(series, { title = "loss along filter-normalised directions", xlabel = "a" }))
end
