-- sift/analysis.lua — looking inside gradients and masks:
--   sift.coverage(model, batch, {fractions = {0.001, 0.01, 0.1}, targets = patterns?})
--     gradient concentration: the share of ||g||_2 (and of ||g||_2^2) held by the top x % of the
--     components of each target's full gradient, from one forward/backward of `batch`, and the mean over
--     the targets (t:top_share does the per-tensor work in C; k = max(1, floor(x * numel))).
--   sift.mask_density(set, {rows = 16, cols = 16})
--     for each target of a selected sparse set, a rows x cols grid of the fraction of selected entries in
--     each block of the weight (for sift.plot.heatmap).
--   sift.masks(model, batch, {rate = 0.01, targets = patterns?, policy = "topk"})
--     the masks a policy would pick from one batch: for topk each target's top-k |g| offsets (k = the sparse
--     set's budget, sift.budget), without making a set; other policies through a temporary sparse set.
--   sift.mask_overlap(a, b) and sift.mask_stability(model, batches, {rate, targets})
--     how much two masks agree (shared offsets over k, Jaccard, and what chance alone would give): the
--     question behind fixing SIFT's masks after one batch (do other batches, or later steps, want the same
--     components?).
-- Pure Lua over the C model / set methods (t:top_share, t:top_indices, idx:count_common). Targets default to
-- sift.sparse's (sets.default_targets). Under mpiexec the gradient passes split the rows over the ranks
-- and sum the gradients (with_gradients). The loss landscape is sift/landscape.lua's.
local sets = require "sift.sets"

local M = {}
local checked = require "sift.options" -- refuses option keys a public function does not know

M.default_fractions = { 0.001, 0.01, 0.1 }

local matches = sets.matches
local sift_budget -- sift.budget (C), set by install

local function resolve_targets(model, patterns, who)
  if patterns == nil then return sets.default_targets(model) end
  return sets.resolve(model, patterns, who)
end

-- Live sets per model (weak both ways), filled by the wrappers installed around sift._sparse/_lora/_full:
-- a set that froze or hooked the model's parameters makes coverage refuse (it would disturb the set).
local live_sets = setmetatable({}, { __mode = "k" })

local function attached_set(model)
  for s in pairs(live_sets) do
    local ok, kind = pcall(s.kind, s) -- raises once the set is closed
    if ok then
      local okm, m = pcall(s.model, s)
      if okm and rawequal(m, model) then return s, kind end
    else
      live_sets[s] = nil
    end
  end
  return nil
end

-- A parameter hooked by a sparse set has no dense gradient: model:grad says so without side effects.
local function hooked_param(model)
  for _, name in ipairs(model:names()) do
    local ok, err = pcall(model.grad, model, name)
    if not ok and tostring(err):find("hooked", 1, true) then return name end
  end
  return nil
end

local Coverage = {}
Coverage.__index = Coverage

local function pct(x)
  local s = ("%.4g"):format(100 * x)
  return s .. "%"
end

function Coverage:__tostring()
  local lines = { ("gradient concentration over %d tensors (share of ||g||_2 / of ||g||_2^2 in the top x%%)"):format(
    #self.names) }
  local head, norm, sq = { "  x        " }, { "  ||g||    " }, { "  ||g||^2  " }
  for i, f in ipairs(self.fractions) do
    head[#head + 1] = ("%8s"):format(pct(f))
    norm[#norm + 1] = ("%8.3f"):format(self.mean[i])
    sq[#sq + 1] = ("%8.3f"):format(self.mean_sq[i])
  end
  lines[#lines + 1] = table.concat(head)
  lines[#lines + 1] = table.concat(norm)
  lines[#lines + 1] = table.concat(sq)
  if self.loss then lines[#lines + 1] = ("  loss %.4f"):format(self.loss) end
  return table.concat(lines, "\n")
end

local function check_batch(batch, who)
  if type(batch) ~= "table" or batch.input_ids == nil then
    error(who .. ": expected a batch {input_ids =, attention_mask =, labels =} (see sift.data.encode)", 3)
  end
  if batch.labels == nil then error(who .. ": the batch needs labels (a loss to differentiate)", 3) end
end

-- refuses a model whose gradients a sparse / LoRA / full set owns (level: the caller's caller)
local function check_plain_model(model, who)
  local hooked = hooked_param(model)
  if hooked then
    error(("%s: the model's parameters are hooked by a sparse set (e.g. %s): a forward/backward here would "
      .. "disturb its gradients. Close the set (s:close()) or measure on a fresh model (sift.load)."):format(who, hooked), 3)
  end
  local s, kind = attached_set(model)
  if s then
    error(("%s: a %s set is attached to this model (only its parameters are trainable, and a backward here "
      .. "would add to its gradients). Close it (s:close()) or measure on a fresh model (sift.load)."):format(who, kind), 3)
  end
end

-- One forward/backward of batch; calls each(name, grad) for every target in order, then zeroes the
-- gradients (also when each raises). Returns the loss. Several processes (sift.dist): each rank
-- back-propagates its contiguous part of the rows, scaled by its share of the batch's loss terms, and
-- every target's gradient (and the loss) is summed over the ranks before each sees it, so every rank
-- measures the whole batch's gradient (a batch given as tensors runs whole on every rank).
local function with_gradients(model, batch, targets, who, each)
  local S = require "sift"
  local split = S.dist.size() > 1 and type(batch.input_ids) == "table"
  local part, share = batch, 1
  if split then
    local task = model.config.task
    local lo, hi = S.dist.part(#batch.input_ids)
    local total = S.data.loss_terms(batch, task)
    part = hi >= lo and S.data.rows_of(batch, lo, hi) or nil
    share = part and total > 0 and S.data.loss_terms(part, task) / total or 0
  end
  model:zero_grad()
  local loss = 0
  if part then
    local out = model:forward(part)
    if not out.loss then error(who .. ": the forward pass gave no loss (labels missing?)", 3) end
    if split then model:backward(share) else model:backward() end
    loss = out.loss * share
  end
  if split then loss = S.dist.sum(loss) end
  local ok, err = pcall(function()
    for _, name in ipairs(targets) do
      local okg, g = pcall(model.grad, model, name)
      if not okg and not (split and not part) then error(("%s: no gradient for %s (%s)"):format(who, name, tostring(g)), 0) end
      if split then
        if not okg then g = S.zeros(table.unpack(model:param_shape(name))) end -- a rank without rows
        S.dist.sum(g)
      end
      each(name, g)
    end
  end)
  model:zero_grad()
  if not ok then error(err, 3) end
  return loss
end

-- sift.coverage(model, batch, opts) -> { fractions, names, tensors = {[name] = {norm = {...}, sq = {...}}},
-- mean, mean_sq, loss }. The model's gradients are zeroed before and after.
function M.coverage(model, batch, opts)
  opts = checked(opts, "sift.coverage", { "fractions", "targets" }) or {}
  local who = "sift.coverage"
  check_batch(batch, who)
  local fractions = opts.fractions or M.default_fractions
  if type(fractions) == "number" then fractions = { fractions } end
  for _, f in ipairs(fractions) do
    if type(f) ~= "number" or not (f > 0 and f <= 1) then
      error(who .. ": fractions must be numbers in (0, 1], got " .. tostring(f), 2)
    end
  end
  check_plain_model(model, who)
  local targets = resolve_targets(model, opts.targets, who)
  if #targets == 0 then error(who .. ": no target parameters", 2) end
  local res = setmetatable({ fractions = {}, names = targets, tensors = {}, mean = {}, mean_sq = {} }, Coverage)
  for i, f in ipairs(fractions) do res.fractions[i], res.mean[i], res.mean_sq[i] = f, 0, 0 end
  res.loss = with_gradients(model, batch, targets, who, function(name, g)
    local norm, sq = g:top_share(res.fractions)
    res.tensors[name] = { norm = norm, sq = sq, numel = g:numel(), grad_norm = g:norm() }
    for i = 1, #fractions do
      res.mean[i] = res.mean[i] + norm[i] / #targets
      res.mean_sq[i] = res.mean_sq[i] + sq[i] / #targets
    end
  end)
  return res
end

local Density = {}
Density.__index = Density

function Density:__tostring()
  local lines = { ("mask density of %d targets (%s grids)"):format(#self.names, self.grid) }
  for _, n in ipairs(self.names) do
    local g = self[n]
    lines[#lines + 1] = ("  %-40s %s  %d selected (%.3g%%)"):format(n, table.concat(g.shape, "x"), g.selected,
      100 * g.density)
  end
  return table.concat(lines, "\n")
end

-- sift.mask_density(set, {rows = 16, cols = 16, targets = patterns?}) -> result with result.names (targets in
-- order) and result[name] = grid: an array of `rows` arrays of `cols` fractions in [0, 1], with the fields
-- shape (of the weight), selected (count) and density (overall fraction). A weight with fewer rows or
-- columns than asked gets one block per row / column. 1-D targets are viewed as one row.
function M.mask_density(set, opts)
  opts = checked(opts, "sift.mask_density", { "rows", "cols", "targets" }) or {}
  local who = "sift.mask_density"
  local ok, kind = pcall(function() return set:kind() end)
  if not ok then error(who .. ": expected a sparse set (from sift.sparse)", 2) end
  if kind ~= "sparse" then error(who .. ": only sparse sets have masks (this set is " .. kind .. ")", 2) end
  if not set:selected() then error(who .. ": the set has not selected its masks yet (call s:select(batch))", 2) end
  local want_r, want_c = opts.rows or 16, opts.cols or 16
  if math.type(want_r) ~= "integer" or math.type(want_c) ~= "integer" or want_r < 1 or want_c < 1 then
    error(who .. ": rows and cols must be positive integers", 2)
  end
  local model = set:model()
  local names = set:targets()
  if opts.targets then
    local pats = type(opts.targets) == "string" and { opts.targets } or opts.targets
    local keep = {}
    for _, n in ipairs(names) do if matches(n, pats) then keep[#keep + 1] = n end end
    names = keep
  end
  local res = setmetatable({ names = names, grid = want_r .. "x" .. want_c }, Density)
  for _, name in ipairs(names) do
    local shape = model:param_shape(name)
    local R, C = shape[1] or 1, 1
    if #shape >= 2 then for d = 2, #shape do C = C * shape[d] end end
    if #shape == 1 then R, C = 1, shape[1] end
    local gr, gc = math.min(want_r, R), math.min(want_c, C)
    -- block of row r (0-based) = floor(r * gr / R); sizes from the same rule
    local rows_in, cols_in = {}, {}
    for i = 1, gr do rows_in[i] = 0 end
    for j = 1, gc do cols_in[j] = 0 end
    local row_block, col_block = {}, {}
    for r = 0, R - 1 do
      local b = r * gr // R + 1
      row_block[r] = b
      rows_in[b] = rows_in[b] + 1
    end
    for c = 0, C - 1 do
      local b = c * gc // C + 1
      col_block[c] = b
      cols_in[b] = cols_in[b] + 1
    end
    local count = {}
    for i = 1, gr do
      count[i] = {}
      for j = 1, gc do count[i][j] = 0 end
    end
    local idx = set:indices(name):totable()
    for _, off in ipairs(idx) do
      local r, c = off // C, off % C
      local bi, bj = row_block[r], col_block[c]
      count[bi][bj] = count[bi][bj] + 1
    end
    local grid = { shape = shape, selected = #idx, density = #idx / (R * C), name = name }
    for i = 1, gr do
      local row = {}
      for j = 1, gc do row[j] = count[i][j] / (rows_in[i] * cols_in[j]) end
      grid[i] = row
    end
    res[name] = grid
  end
  return res
end

-- ---- masks and how much they agree ----

local Masks = {}
Masks.__index = Masks

function Masks:__tostring()
  local k = 0
  for _, n in ipairs(self.names) do k = k + self[n]:numel() end
  return ("masks: top %.4g%% of the gradient of %d tensors (%d offsets)%s"):format(100 * self.rate, #self.names, k,
    self.loss and ("  loss %.4f"):format(self.loss) or "")
end

local function check_rate(rate, who)
  if type(rate) ~= "number" or not (rate >= 0 and rate <= 1) then
    error(who .. ": rate must be a number in [0, 1], got " .. tostring(rate), 3)
  end
end

-- An error message without the "file:line: " position Lua put in front of it.
local function without_position(msg) return (tostring(msg):gsub("^[^:]*:%d+: ", "", 1)) end

-- Another policy: the masks a sparse set with it selects from batch (made, selected and closed here).
local function masks_of_set(model, batch, targets, rate, opts, who)
  local S = require "sift"
  local exact = {}
  for i, n in ipairs(targets) do exact[i] = "^" .. n:gsub("%p", "%%%0") .. "$" end
  local ok_s, s = pcall(S.sparse, model, { rate = rate, policy = opts.policy, seed = opts.seed, targets = exact, dense = {} })
  if not ok_s then -- sift.sparse's message without its position
    error(("%s: %s"):format(who, (without_position(s):gsub("^sift%.sparse: ", ""))), 3)
  end
  local res = setmetatable({ names = targets, numel = {}, rate = rate, policy = opts.policy }, Masks)
  local ok, err = pcall(function()
    s:select(batch)
    for _, n in ipairs(targets) do res[n], res.numel[n] = s:indices(n), model:param(n):numel() end
    res.loss = s:calibration_loss()
  end)
  s:close()
  if not ok then error(err, 3) end
  return res
end

-- sift.masks(model, batch, {rate = 0.01, targets = patterns?, policy = "topk", seed =}) -> masks: names (targets
-- in order), masks[name] = i64 tensor of ascending offsets, numel[name], rate, policy, loss. What s:select(batch)
-- picks: topk from the dense gradients directly (no set; split over MPI ranks), any other policy ("global",
-- "magnitude", "fisher", "random", a Lua function) through a sparse set made, selected and closed here;
-- gradients are zeroed before and after.
function M.masks(model, batch, opts)
  opts = checked(opts, "sift.masks", { "rate", "policy", "seed", "targets" }) or {}
  local who = "sift.masks"
  check_batch(batch, who)
  local rate = opts.rate or 0.01
  check_rate(rate, who)
  check_plain_model(model, who)
  local targets = resolve_targets(model, opts.targets, who)
  if opts.policy ~= nil and opts.policy ~= "topk" then return masks_of_set(model, batch, targets, rate, opts, who) end
  local res = setmetatable({ names = targets, numel = {}, rate = rate, policy = "topk" }, Masks)
  res.loss = with_gradients(model, batch, targets, who, function(name, g)
    res[name] = g:top_indices(sift_budget(rate, g:numel()))
    res.numel[name] = g:numel()
  end)
  return res
end

-- a selected sparse set or a masks table -> names, indices(name), numel(name)
local function mask_source(x, who, argn)
  if getmetatable(x) == Masks or (type(x) == "table" and type(x.names) == "table" and type(x.numel) == "table") then
    for _, n in ipairs(x.names) do
      if x[n] == nil or x.numel[n] == nil then
        error(("%s: argument %d names %s but has no offsets or numel for it"):format(who, argn, n), 3)
      end
    end
    return x.names, function(n) return x[n] end, function(n) return x.numel[n] end
  end
  local ok, kind = pcall(function() return x:kind() end)
  if not ok then error(("%s: argument %d must be masks (sift.masks) or a sparse set"):format(who, argn), 3) end
  if kind ~= "sparse" then error(("%s: argument %d is a %s set; only sparse sets have masks"):format(who, argn, kind), 3) end
  if not x:selected() then error(("%s: argument %d has not selected its masks yet (s:select(batch))"):format(who, argn), 3) end
  local model = x:model()
  return x:targets(), function(n) return x:indices(n) end, function(n) return model:param(n):numel() end
end

local Overlap = {}
Overlap.__index = Overlap

function Overlap:__tostring()
  local lines = { ("mask overlap over %d tensors: %.4f of the offsets shared (chance %.4f), Jaccard %.4f"):format(
    #self.names, self.overlap, self.chance, self.jaccard) }
  for _, n in ipairs(self.names) do
    local t = self.tensors[n]
    lines[#lines + 1] = ("  %-44s %8d of %8d  %.4f  (chance %.4f)"):format(n, t.common, math.min(t.k_a, t.k_b),
      t.overlap, t.chance)
  end
  return table.concat(lines, "\n")
end

-- sift.mask_overlap(a, b) -> { names (the tensors both have, in a's order), tensors[name] = {common, k_a, k_b,
-- numel, overlap = common / min(k_a, k_b), jaccard = common / (k_a + k_b - common), chance = max(k_a, k_b) /
-- numel (the overlap two independent uniform picks would have on average)}, and over all tensors: overlap
-- (sum common / sum min k), jaccard, chance (expected common / sum min k), mean (unweighted mean of the
-- per-tensor overlaps) }. a, b: masks from sift.masks or selected sparse sets.
function M.mask_overlap(a, b)
  local who = "sift.mask_overlap"
  local names_a, idx_a, numel_a = mask_source(a, who, 1)
  local names_b, idx_b, numel_b = mask_source(b, who, 2)
  local in_b = {}
  for _, n in ipairs(names_b) do in_b[n] = true end
  local res = setmetatable({ names = {}, tensors = {} }, Overlap)
  local common, mins, union, expected, mean = 0, 0, 0, 0, 0
  for _, n in ipairs(names_a) do
    if in_b[n] then
      local N = numel_a(n)
      if numel_b(n) ~= N then error(("%s: %s has %d entries in one and %d in the other"):format(who, n, N, numel_b(n)), 2) end
      local ia, ib = idx_a(n), idx_b(n)
      local ka, kb, c = ia:numel(), ib:numel(), ia:count_common(ib)
      local m = math.min(ka, kb)
      local t = { common = c, k_a = ka, k_b = kb, numel = N, overlap = m > 0 and c / m or 1,
        jaccard = (ka + kb - c) > 0 and c / (ka + kb - c) or 1, chance = N > 0 and math.max(ka, kb) / N or 0 }
      res.names[#res.names + 1] = n
      res.tensors[n] = t
      common, mins, union = common + c, mins + m, union + ka + kb - c
      expected = expected + (N > 0 and ka * kb / N or 0)
      mean = mean + t.overlap
    end
  end
  if #res.names == 0 then error(who .. ": the two have no tensor in common", 2) end
  res.overlap = mins > 0 and common / mins or 1
  res.jaccard = union > 0 and common / union or 1
  res.chance = mins > 0 and expected / mins or 0
  res.mean = mean / #res.names
  return res
end

local Stability = {}
Stability.__index = Stability

function Stability:__tostring()
  local lines = { ("mask stability over %d batches (top %.4g%% of %d tensors; chance %.4f)"):format(#self.first,
    100 * self.rate, #self.names, self.chance), "  batch    loss   overlap with batch 1   with the batch before" }
  for i = 1, #self.first do
    lines[#lines + 1] = ("  %5d  %7.4f   %20.4f   %21s"):format(i, self.loss[i], self.first[i],
      i > 1 and ("%.4f"):format(self.previous[i]) or "-")
  end
  return table.concat(lines, "\n")
end

-- sift.mask_stability(model, batches, {rate = 0.01, targets = patterns?, policy =, seed =, keep = false}) ->
-- { rate, names, chance, loss[i], first[i] (overlap of batch i's masks with batch 1's), previous[i] (with batch
-- i-1's; nil for i = 1), tensors[name].first[i] (per tensor), masks[i] when keep }. Every mask is taken at the
-- same weights; policy and seed as sift.masks.
function M.mask_stability(model, batches, opts)
  opts = checked(opts, "sift.mask_stability", { "rate", "policy", "seed", "targets", "keep" }) or {}
  local who = "sift.mask_stability"
  if type(batches) ~= "table" or #batches < 2 then error(who .. ": expected a list of at least two batches", 2) end
  local rate = opts.rate or 0.01
  check_rate(rate, who)
  local res = setmetatable({ rate = rate, loss = {}, first = {}, previous = {}, tensors = {}, masks = opts.keep and {} or nil },
    Stability)
  local first, prev
  for i, b in ipairs(batches) do
    local ok, m = pcall(M.masks, model, b, { rate = rate, targets = opts.targets, policy = opts.policy, seed = opts.seed })
    if not ok then error(("%s: batch %d: %s"):format(who, i, tostring(m)), 2) end
    if i == 1 then
      first = m
      res.names = m.names
      for _, n in ipairs(m.names) do res.tensors[n] = { first = { 1 } } end
      res.first[1] = 1
    else
      local o = M.mask_overlap(first, m)
      res.first[i] = o.overlap
      res.previous[i] = M.mask_overlap(prev, m).overlap
      res.chance = o.chance
      for _, n in ipairs(o.names) do res.tensors[n].first[i] = o.tensors[n].overlap end
    end
    res.loss[i] = m.loss
    if res.masks then res.masks[i] = m end
    prev = m
  end
  return res
end

function M.install(sift)
  sift.coverage = M.coverage
  sift.mask_density = M.mask_density
  sift.masks = M.masks
  sift.mask_overlap = M.mask_overlap
  sift.mask_stability = M.mask_stability
  sift_budget = sift.budget
  -- remember every set made, so that coverage can refuse a model a live set is attached to
  for _, ctor in ipairs { "_sparse", "_lora", "_full" } do
    local f = rawget(sift, ctor)
    if type(f) == "function" then
      sift[ctor] = function(...)
        local ok, s = pcall(f, ...)
        -- an error names the caller of sift.sparse / lora / full (two levels up), not this wrapper
        if not ok then error(type(s) == "string" and without_position(s) or s, 3) end
        live_sets[s] = true
        return s
      end
    end
  end
end

return M
