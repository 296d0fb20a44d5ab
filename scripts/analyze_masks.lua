-- analyze_masks.lua — does SIFT's fixed mask stay the right one? SIFT picks each matrix's top-x % gradient
-- components from one batch and trains only those. Two measurements on a real task:
--   1. across batches, at the pre-trained weights: the overlap of the masks other batches would pick with
--      the first batch's (sift.mask_stability), against what random masks of that size would share;
--   2. along full fine-tuning (every component free to move): every --every steps, the mask the first
--      batch's gradient would now pick, its overlap with the step-0 mask, and the share of the update so
--      far, ||w_t - w_0||_2 over the block matrices, that lies inside the step-0 mask (a random mask of the
--      same size holds about sqrt(x) of it when the update is spread evenly).
--
--   ./build/sift-repl scripts/analyze_masks.lua --task sst2 --rate 0.01 --batches 8 --steps 40 --out masks.json
package.path = (arg[0]:match("^(.*)/") or ".") .. "/lib/?.lua;" .. package.path
local X = require "experiment"

local o = X.options({
  { "model", X.default_model() or "", "a Hugging Face folder or llama2.c .bin" },
  { "task", "sst2", "a data set sift.data.load knows or a path" },
  { "rate", 0.01, "the fraction of each block matrix in a mask" },
  { "policy", "topk", "part 1's selection policy: topk | global | fisher | magnitude | random" },
  { "batch", 32, "rows per batch" },
  { "max_len", 64, "tokens per row at most" },
  { "batches", 8, "batches compared at the pre-trained weights" },
  { "steps", 40, "full fine-tuning steps (0: skip part 2)" },
  { "every", 10, "take the mask every this many steps" },
  { "lr", 3e-4, "full fine-tuning's learning rate (AdamW, constant)" },
  { "seed", 0, "seed of the data order and the head's draw" },
  { "out", "", "write the figures here as JSON (and the overlap curve as SVG beside it)" },
}, "analyze_masks.lua — how stable top-x % gradient masks are across batches and along full fine-tuning")

if o.every < 1 then X.fail("--every must be at least 1") end
local task = X.task({ model = o.model, task = o.task, seed = o.seed })
if task.lm then X.fail("--task %s has no classes; this analysis uses a classification loss", o.task) end
local need = math.max(o.batches, 1) + o.steps
if #task.train < need * o.batch then X.fail("--task %s has %d rows; %d batches of %d need %d", o.task, #task.train,
  need, o.batch, need * o.batch) end
local batches = X.batches(task.train, task.tok, need, o.batch, o.max_len)
local model = X.model(o, task, false, o.seed)

-- 1. across batches
local st = sift.mask_stability(model, { table.unpack(batches, 1, o.batches) }, { rate = o.rate, policy = o.policy,
  seed = o.seed })
print(st)
local result = { options = o, across_batches = { first = st.first, previous = st.previous, loss = st.loss,
  chance = st.chance } }

-- 2. along full fine-tuning: masks of batch 1's gradient at steps 0, every, 2 * every, ...
if o.steps > 0 then
  local set = sift.full(model)
  local opt = sift.AdamW(set, { lr = o.lr })
  local names = st.names
  local w0 = {}
  for _, n in ipairs(names) do w0[n] = model:param(n):clone() end
  local function mask_now()
    opt:zero_grad()
    local out = model:forward(batches[1])
    model:backward()
    local m = { names = names, numel = {} }
    for _, n in ipairs(names) do
      local g = model:grad(n)
      m.numel[n] = g:numel()
      m[n] = g:top_indices(sift.budget(o.rate, g:numel()))
    end
    opt:zero_grad()
    return m, out.loss
  end
  -- share of ||w_t - w_0|| (over every target) inside the step-0 mask
  local function update_share(m0)
    local inside, total = 0, 0
    for _, n in ipairs(names) do
      local d = model:param(n) - w0[n]
      local flat = d:reshape(d:numel())
      total = total + d:norm() ^ 2
      for _, off in ipairs(m0[n]:totable()) do inside = inside + flat:get(off + 1) ^ 2 end
    end
    return total > 0 and math.sqrt(inside / total) or 0
  end
  local m0, loss0 = mask_now()
  local prev = m0
  local along = { step = { 0 }, overlap_first = { 1 }, overlap_previous = { 1 }, update_share = { 0 }, loss = { loss0 },
    random_share = math.sqrt(o.rate) }
  print(("\nalong full fine-tuning (lr %g, batch %d): batch 1's top %g %% mask at step t against step 0's"):format(o.lr,
    o.batch, 100 * o.rate))
  print("   step    loss   overlap with step 0   with the one before   update inside step-0 mask")
  print(("  %5d  %6.4f   %19.4f   %19s   %25s"):format(0, loss0, 1, "-", "-"))
  for t = 1, o.steps do
    opt:zero_grad()
    model:forward(batches[o.batches + t])
    model:backward()
    opt:step()
    if t % o.every == 0 or t == o.steps then
      local m, loss = mask_now()
      local a, b = sift.mask_overlap(m0, m).overlap, sift.mask_overlap(prev, m).overlap
      local share = update_share(m0)
      local i = #along.step + 1
      along.step[i], along.overlap_first[i], along.overlap_previous[i], along.update_share[i], along.loss[i] =
        t, a, b, share, loss
      print(("  %5d  %6.4f   %19.4f   %19.4f   %25.4f"):format(t, loss, a, b, share))
      prev = m
    end
  end
  print(("(random masks of this size: overlap %.4f, update share %.4f on average)"):format(st.chance, along.random_share))
  result.along_fine_tuning = along
  set:close()
  X.save_figure(o.out, "overlap", sift.plot.line({ { x = along.step, y = along.overlap_first, label = "overlap with step 0" },
    { x = along.step, y = along.update_share, label = "update inside step-0 mask" } },
    { title = "top " .. 100 * o.rate .. " % masks along full fine-tuning", ymin = 0, ymax = 1, xlabel = "step" }))
end
X.write_json(o.out, result)
