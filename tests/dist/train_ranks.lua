-- train_ranks.lua OUT — the data-parallel scenarios behind tests/sh/test_dist.sh. Run once as one process
-- and once under `mpiexec -n N` (an MPI build); each run trains the same things and rank 0 writes what
-- came out (histories, bytes sent, masks, trained weights) to OUT (safetensors), which
-- tests/dist/compare_ranks.lua compares. Needs ../shared (gpt2-4m, SST-2).
local out = assert(arg[1], "usage: train_ranks.lua OUT")
local shared = os.getenv("SIFT_SHARED") or "../shared"
local dir = shared .. "/models/gpt2-4m"
local tok = sift.tokenizer(dir)
local rows = sift.data.load("sst2", { split = "train" }):take(20)
local tensors, meta = {}, { ranks = tostring(sift.dist.size()) }

local function joined(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = ("%.17g"):format(v) end
  return table.concat(s, ",")
end

local function keep(case, h, m, names, set)
  meta[case .. ".loss"], meta[case .. ".grad_norm"] = joined(h.loss), joined(h.grad_norm)
  meta[case .. ".bytes_sent"] = joined(h.bytes_sent)
  -- the tensors whose gradients are summed: dense ones, then LoRA's two factors or SIFT's targets
  local targets = set:kind() == "full" and 0 or #set:targets()
  meta[case .. ".tensors"] = tostring(#set:dense() + (set:kind() == "lora" and 2 or 1) * targets)
  meta[case .. ".dense_tensors"] = tostring(#set:dense())
  for _, n in ipairs(names) do tensors[case .. ".w." .. n] = m:param(n):clone() end
  if set:kind() == "sparse" then
    local k, dense = 0, 0
    for _, n in ipairs(set:targets()) do
      k = k + set:budget(n)
      tensors[case .. ".idx." .. n] = set:indices(n)
    end
    for _, n in ipairs(set:dense()) do dense = dense + m:param(n):numel() end
    local numel = 0
    for _, n in ipairs(set:targets()) do numel = numel + m:param(n):numel() end
    meta[case .. ".k"], meta[case .. ".dense"], meta[case .. ".numel"] = tostring(k), tostring(dense), tostring(numel)
  else
    meta[case .. ".trainable"] = tostring(set:trainable())
  end
end

local block = "transformer.h.1.mlp.c_fc.weight"
local cases = {
  -- name, task, method, batch, extra options; 20 rows: batches 8, 8, 4 (and 5 x 4 for the LM)
  { "sparse", "classify", function(m) return sift.sparse(m, { rate = 0.01 }) end, 8, {} },
  { "full", "classify", sift.full, 8, {} },
  { "lora", "classify", function(m) return sift.lora(m, { r = 8, alpha = 16, seed = 3 }) end, 8, {} },
  { "fisher", "classify", function(m) return sift.sparse(m, { rate = 0.01, policy = "fisher" }) end, 8, {} },
  -- 11 rows in batches of 5: the last batch has 1 row, so some ranks hold none; chunks of 2 rows
  { "lm_sparse", "lm", function(m) return sift.sparse(m, { rate = 0.01 }) end, 5, { micro_batch = 2, rows = 11 } },
}
for _, c in ipairs(cases) do
  local name, task, make, batch, extra = c[1], c[2], c[3], c[4], c[5]
  local m = sift.load(dir, task == "classify" and { task = "classify", num_labels = 2 } or nil)
  local set = make(m)
  local h = sift.train { model = m, method = set, data = extra.rows and rows:take(extra.rows) or rows, tokenizer = tok,
    batch = batch, lr = 1e-3, quiet = name ~= "sparse", micro_batch = extra.micro_batch, max_len = 32 }
  local names = { block }
  if task == "classify" then names[#names + 1] = m:head_names()[1] end
  if name == "full" then names[#names + 1] = "transformer.wte.weight" end
  keep(name, h, m, names, set)
  if name == "sparse" then -- saved after 2 steps (rank 0 writes) and resumed on every rank: the same bits
    local function trainer(resume)
      local mm = sift.load(dir, { task = "classify", num_labels = 2 })
      return mm, sift.trainer { model = mm, method = make(mm), data = rows, tokenizer = tok, batch = batch, lr = 1e-3,
        quiet = true, max_len = 32, resume = resume }
    end
    local _, first = trainer()
    first:step(2)
    first:save(out .. ".trainer")
    local resumed_model, resumed = trainer(out .. ".trainer")
    resumed:step()
    local worst = 0
    for _, n in ipairs(m:names()) do worst = math.max(worst, m:param(n):max_abs_diff(resumed_model:param(n))) end
    meta["resume.max_diff"] = ("%.17g"):format(worst)
  end
  if name == "lm_sparse" then -- a language model's evaluation: each rank its rows, the sums summed
    local ev = sift.evaluate(m, rows:take(7), { tokenizer = tok, batch = 2, max_len = 32 })
    meta["lm_eval.loss"], meta["lm_eval.tokens"] = ("%.17g"):format(ev.loss), tostring(ev.tokens)
  end
  if name == "sparse" then
    set:save_delta(out .. ".delta." .. sift.dist.rank()) -- rank 0 alone writes
    local ev = sift.evaluate(m, sift.data.load("sst2", { split = "dev" }):take(30), { tokenizer = tok, batch = 8 })
    meta["eval.accuracy"], meta["eval.loss"] = tostring(ev.accuracy), ("%.17g"):format(ev.loss)
    meta["eval.predictions"] = joined(ev.predictions)
  end
end

-- select with each rank passing its part of each batch (6 rows a batch: equal parts for 1, 2 or 3 ranks):
-- fisher over two batches (squares per batch of the summed gradient), global (one top-K over every
-- target) and a Lua policy (given the summed dense gradient)
local function my_parts(n_batches)
  local parts = {}
  for b = 0, n_batches - 1 do
    local lo, hi = sift.dist.part(6)
    local mine = {}
    for i = lo, hi do mine[#mine + 1] = rows[b * 6 + i] end
    parts[#parts + 1] = sift.data.encode(mine, tok, { max_len = 32, pad_id = 0 })
  end
  return parts
end
local function top_abs(_, g, k) return g:top_indices(k) end -- the k largest |g|, as a Lua policy
for _, c in ipairs { { "fisher", { policy = "fisher" }, 2 }, { "global", { policy = "global" }, 1 },
  { "custom", { policy = top_abs, targets = { block } }, 1 } } do
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local o = c[2]
  o.rate = 0.01
  local s = sift.sparse(m, o)
  s:select(my_parts(c[3]), { scale = 1 / sift.dist.size() }) -- equal parts: each rank's share of the mean loss
  tensors["select_" .. c[1] .. ".idx." .. block] = s:indices(block)
end
-- sift.landscape over ranks: each rank its part of every batch's rows (7 and 5 rows: uneven parts), the losses
-- summed; then a Ctrl-C recorded on the last rank at its 3rd forward stops every rank at the same point
do
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local b1 = sift.data.encode(rows:take(7), tok, { max_len = 32, pad_id = 0 })
  local b2 = sift.data.encode(rows:slice(8, 12), tok, { max_len = 32, pad_id = 0 })
  local L = sift.landscape(m, { b1, b2 }, { points = 5, seed = 3, quiet = true })
  meta["landscape.loss"], meta["landscape.center"] = joined(L.loss), ("%.17g"):format(L.center)
  local w0 = m:param(block):clone()
  local forwards, fwd = 0, m.forward
  if sift.dist.rank() == sift.dist.size() - 1 then
    debug.sethook(function()
      if debug.getinfo(2, "f").func == fwd then
        forwards = forwards + 1
        if forwards == 3 then sift._interrupt() end
      end
    end, "c")
  end
  local ok, err = pcall(sift.landscape, m, b1, { points = 9, seed = 3, quiet = true })
  debug.sethook()
  meta["landscape.interrupted"] = tostring(not ok and tostring(err):find("interrupted", 1, true) ~= nil)
  meta["landscape.restored"] = tostring(m:param(block):max_abs_diff(w0) == 0)
end
-- sift.coverage and sift.masks over ranks: each rank back-propagates its part of the 7 rows, the gradients
-- are summed before they are measured
do
  local m = sift.load(dir, { task = "classify", num_labels = 2 })
  local b = sift.data.encode(rows:take(7), tok, { max_len = 32, pad_id = 0 })
  local c = sift.coverage(m, b, { fractions = { 0.01, 0.1 } })
  meta["coverage.mean"], meta["coverage.loss"] = joined(c.mean), ("%.17g"):format(c.loss)
  local mk = sift.masks(m, b, { rate = 0.01 })
  for _, n in ipairs(mk.names) do tensors["masks.idx." .. n] = mk[n] end
end
sift.save_tensors(out, tensors, meta)
print(("rank %d of %d: done"):format(sift.dist.rank(), sift.dist.size()))
