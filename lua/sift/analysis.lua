-- sift/analysis.lua — looking inside gradients and masks:
--   sift.coverage(model, batch, {fractions = {0.001, 0.01, 0.1}, targets = patterns?})
--     gradient concentration: the share of ||g||_2 (and of ||g||_2^2) held by the top x % of the
--     components of each target's full gradient, from one forward/backward of `batch`, and the mean over
--     the targets (t:top_share does the per-tensor work in C; k = max(1, floor(x * numel))).
--   sift.mask_density(set, {rows = 16, cols = 16})
--     for each target of a selected sparse set, a rows x cols grid of the fraction of selected entries in
--     each block of the weight (for sift.plot.heatmap).
-- Pure Lua over the C model / set methods. Targets default to sift.sparse's (sets.default_targets).
local sets = require "sift.sets"

local M = {}

M.default_fractions = { 0.001, 0.01, 0.1 }

local matches = sets.matches

local function resolve_targets(model, patterns, who)
  if patterns == nil then return sets.default_targets(model) end
  if type(patterns) == "string" then patterns = { patterns } end
  if type(patterns) ~= "table" then error(who .. ": targets must be a table of name patterns", 3) end
  local out = {}
  for _, name in ipairs(model:names()) do
    if matches(name, patterns) then out[#out + 1] = name end
  end
  if #out == 0 then error(("%s: no parameter matches %s"):format(who, table.concat(patterns, ", ")), 3) end
  return out
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

-- sift.coverage(model, batch, opts) -> { fractions, names, tensors = {[name] = {norm = {...}, sq = {...}}},
-- mean, mean_sq, loss }. The model's gradients are zeroed before and after.
function M.coverage(model, batch, opts)
  opts = opts or {}
  local who = "sift.coverage"
  if type(batch) ~= "table" or batch.input_ids == nil then
    error(who .. ": expected a batch {input_ids =, attention_mask =, labels =} (see sift.data.encode)", 2)
  end
  if batch.labels == nil then error(who .. ": the batch needs labels (a loss to differentiate)", 2) end
  local fractions = opts.fractions or M.default_fractions
  if type(fractions) == "number" then fractions = { fractions } end
  for _, f in ipairs(fractions) do
    if type(f) ~= "number" or not (f > 0 and f <= 1) then
      error(who .. ": fractions must be numbers in (0, 1], got " .. tostring(f), 2)
    end
  end
  local hooked = hooked_param(model)
  if hooked then
    error(("%s: the model's parameters are hooked by a sparse set (e.g. %s): a forward/backward here would "
      .. "disturb its gradients. Close the set (s:close()) or measure on a fresh model (sift.load)."):format(who, hooked), 2)
  end
  local s, kind = attached_set(model)
  if s then
    error(("%s: a %s set is attached to this model (only its parameters are trainable, and a backward here "
      .. "would add to its gradients). Close it (s:close()) or measure on a fresh model (sift.load)."):format(who, kind), 2)
  end
  local targets = resolve_targets(model, opts.targets, who)
  if #targets == 0 then error(who .. ": no target parameters", 2) end
  model:zero_grad()
  local out = model:forward(batch)
  if not out.loss then error(who .. ": the forward pass gave no loss (labels missing?)", 2) end
  model:backward()
  local res = setmetatable({ fractions = {}, names = targets, tensors = {}, mean = {}, mean_sq = {}, loss = out.loss },
    Coverage)
  for i, f in ipairs(fractions) do res.fractions[i], res.mean[i], res.mean_sq[i] = f, 0, 0 end
  for _, name in ipairs(targets) do
    local ok, g = pcall(model.grad, model, name)
    if not ok then
      model:zero_grad()
      error(("%s: no gradient for %s (%s)"):format(who, name, tostring(g)), 2)
    end
    local norm, sq = g:top_share(res.fractions)
    res.tensors[name] = { norm = norm, sq = sq, numel = g:numel(), grad_norm = g:norm() }
    for i = 1, #fractions do
      res.mean[i] = res.mean[i] + norm[i] / #targets
      res.mean_sq[i] = res.mean_sq[i] + sq[i] / #targets
    end
  end
  model:zero_grad()
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
  opts = opts or {}
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

function M.install(sift)
  sift.coverage = M.coverage
  sift.mask_density = M.mask_density
  -- remember every set made, so that coverage can refuse a model a live set is attached to
  for _, ctor in ipairs { "_sparse", "_lora", "_full" } do
    local f = rawget(sift, ctor)
    if type(f) == "function" then
      sift[ctor] = function(...)
        local s = f(...)
        live_sets[s] = true
        return s
      end
    end
  end
end

return M
