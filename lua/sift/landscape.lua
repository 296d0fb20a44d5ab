-- sift/landscape.lua — the loss around the current weights along one or two directions: the plots of Li et
-- al. (2018, filter-normalised random directions) that the SIFT paper uses to show a pre-trained start
-- sitting in a different landscape from a random one.
--   sift.landscape(model, batch | {batch, ...}, {span = 1, points = 21, directions = 1 | 2 | {d1 [, d2]},
--     seed = 0, normalize = "filter" | "layer" | "none", targets = patterns?, quiet = false}) -> Landscape
-- (on a terminal a progress bar counts the points unless quiet)
-- Each point sets every target to w0 + a * d1 (+ b * d2), computed from the saved originals w0 (no drift
-- from point to point), and runs one forward per batch (the loss is the mean of the batches' losses). The
-- originals are written back bit for bit at the end, also when a forward fails or Ctrl-C stops the walk
-- (the write-back itself is never cut short; the error is raised again after it; a Ctrl-C recorded but not
-- raised is taken after the point it arrived in). Under mpiexec each rank runs its part of every batch's
-- rows and the losses are summed: every rank gets the one-process result (up to rounding) and stops at the
-- same point on a Ctrl-C.
-- Random directions: per target, sift.direction(w0, {seed, stream = the direction and target's place,
-- normalize, filters = the weight's output axis}); explicit ones: a table {name = tensor} per direction (e.g.
-- a fine-tuning's w_ft - w_0), whose names are then the targets. L:plot() draws the result (a line or a
-- heatmap, through sift.plot). What it does not do: backward.
local sets = require "sift.sets"

local S -- the sift module, set by install
local checked = require "sift.options" -- refuses option keys a public function does not know

local M = {}

local Landscape = {}
Landscape.__index = Landscape

function Landscape:__tostring()
  local lines = { ("loss landscape: %d-D, %d points per axis in [%g, %g], %s directions over %d tensors; loss at the "
    .. "weights %.4f"):format(self.dims, #self.alphas, self.alphas[1], self.alphas[#self.alphas], self.normalize,
    #self.targets, self.center) }
  if self.dims == 1 then
    for i, a in ipairs(self.alphas) do lines[#lines + 1] = ("  %+8.3f  %.4f"):format(a, self.loss[i]) end
  else
    local head = { "  a \\ b   " }
    for _, b in ipairs(self.betas) do head[#head + 1] = ("%8.3f"):format(b) end
    lines[#lines + 1] = table.concat(head)
    for i, a in ipairs(self.alphas) do
      local row = { ("  %+8.3f"):format(a) }
      for j = 1, #self.betas do row[#row + 1] = ("%8.4f"):format(self.loss[i][j]) end
      lines[#lines + 1] = table.concat(row)
    end
  end
  return table.concat(lines, "\n")
end

-- L:plot(opts?) -> figure: 1-D, the loss against a (sift.plot.line); 2-D, the grid as a heatmap (rows: a,
-- columns: b) shaded from its own lowest to its highest loss (opts.min / opts.max override). opts go on to
-- the plot function (title, width, height, color, ...).
function Landscape:plot(opts)
  local o = {}
  checked(opts, "landscape:plot", self.dims == 1 and { "label", table.unpack(S.plot.LINE_OPTIONS) }
    or S.plot.HEATMAP_OPTIONS)
  for k, v in pairs(opts or {}) do o[k] = v end
  if self.dims == 1 then
    o.title = o.title or "loss along the direction"
    o.xlabel = o.xlabel or "a"
    local label = o.label or "loss"
    o.label = nil -- (line's options are the rest)
    return S.plot.line({ { x = self.alphas, y = self.loss, label = label } }, o)
  end
  local lo, hi = math.huge, -math.huge
  for _, row in ipairs(self.loss) do
    for _, v in ipairs(row) do lo, hi = math.min(lo, v), math.max(hi, v) end
  end
  o.min, o.max = o.min or lo, o.max or hi
  o.title = o.title or ("loss at a (rows, %g .. %g) x b (columns), %.4f .. %.4f"):format(self.alphas[1],
    self.alphas[#self.alphas], lo, hi)
  return S.plot.heatmap(self.loss, o)
end

local function check_batches(batch, who)
  if type(batch) ~= "table" then error(who .. ": expected a batch or a list of batches", 3) end
  local list = batch.input_ids ~= nil and { batch } or batch
  if #list == 0 then error(who .. ": expected a batch {input_ids =, labels =} or a list of them", 3) end
  for i, b in ipairs(list) do
    if type(b) ~= "table" or b.input_ids == nil then error(("%s: batch %d has no input_ids"):format(who, i), 3) end
    if b.labels == nil then error(("%s: batch %d has no labels (a loss to measure)"):format(who, i), 3) end
  end
  return list
end

-- explicit directions: a list of 1 or 2 tables name -> tensor, with the same names and the params' shapes
local function explicit_directions(model, dirs, who)
  if #dirs < 1 or #dirs > 2 then error(who .. ": directions must be 1, 2, or a list of one or two {name = tensor} tables", 3) end
  local targets = {}
  for name, _ in pairs(dirs[1]) do targets[#targets + 1] = name end
  table.sort(targets)
  if #targets == 0 then error(who .. ": the first direction names no tensor", 3) end
  for di, d in ipairs(dirs) do
    if type(d) ~= "table" then error(("%s: direction %d must be a table {name = tensor}"):format(who, di), 3) end
    local count = 0
    for name, t in pairs(d) do
      count = count + 1
      local okp, p = pcall(model.param, model, name)
      if not okp then error(("%s: direction %d names %s, which the model does not have"):format(who, di, name), 3) end
      local okn, n = pcall(function() return t:numel() end)
      if not okn or type(t) ~= "userdata" then error(("%s: direction %d's %s is not a tensor"):format(who, di, name), 3) end
      if n ~= p:numel() then
        error(("%s: direction %d's %s has %d entries, the parameter %d"):format(who, di, name, n, p:numel()), 3)
      end
    end
    if count ~= #targets then error(("%s: the two directions name different tensors"):format(who), 3) end
    for _, name in ipairs(targets) do
      if d[name] == nil then error(("%s: direction %d has no %s"):format(who, di, name), 3) end
    end
  end
  local out = {}
  for di, d in ipairs(dirs) do
    out[di] = {}
    for _, name in ipairs(targets) do out[di][name] = d[name]:float() end
  end
  return targets, out
end

local function axis(span, points)
  local v = {}
  for i = 1, points do v[i] = points == 1 and 0 or -span + 2 * span * (i - 1) / (points - 1) end
  return v
end

-- sift.landscape(model, batch, opts) -> { dims, alphas, betas (2-D), loss[i] or loss[i][j] (a = alphas[i], b =
-- betas[j]), center (the loss at the weights themselves), targets, normalize, seed, direction_norms[d] (the
-- whole direction's 2-norm) }
function M.landscape(model, batch, opts)
  opts = checked(opts, "sift.landscape", { "directions", "normalize", "points", "quiet", "seed", "span", "targets" })
    or {}
  local who = "sift.landscape"
  local batches = check_batches(batch, who)
  local span, points = opts.span or 1, opts.points or 21
  if type(span) ~= "number" or not (span > 0 and span < math.huge) then
    error(who .. ": span must be a positive number, got " .. tostring(span), 2)
  end
  if math.type(points) ~= "integer" or points < 1 or points > 1001 then
    error(who .. ": points must be an integer in 1..1001, got " .. tostring(points), 2)
  end
  local normalize = opts.normalize or "filter"
  if normalize ~= "filter" and normalize ~= "layer" and normalize ~= "none" then
    error(who .. ': normalize must be "filter", "layer" or "none", got ' .. tostring(normalize), 2)
  end
  local seed = opts.seed or 0
  if math.type(seed) ~= "integer" then error(who .. ": seed must be an integer", 2) end
  local dirs_opt = opts.directions or 1
  local targets, dirs
  if type(dirs_opt) == "table" then
    if opts.targets then error(who .. ": explicit directions name their own tensors; leave targets out", 2) end
    targets, dirs = explicit_directions(model, dirs_opt, who)
    normalize = "given"
  elseif dirs_opt == 1 or dirs_opt == 2 then
    targets = opts.targets and sets.resolve(model, opts.targets, who) or sets.default_targets(model)
    if #targets == 0 then error(who .. ": no target parameters", 2) end
  else
    error(who .. ": directions must be 1, 2, or a list of one or two {name = tensor} tables", 2)
  end

  local originals = {}
  for _, name in ipairs(targets) do originals[name] = model:param(name):clone() end
  if not dirs then
    dirs = {}
    for d = 1, dirs_opt do
      dirs[d] = {}
      for ti, name in ipairs(targets) do
        local layout = model:param_layout(name)
        dirs[d][name] = S.direction(originals[name], { seed = seed, stream = d * 1000003 + ti, normalize = normalize,
          filters = layout == "in_out" and "cols" or "rows" })
      end
    end
  end

  local res = setmetatable({ dims = #dirs, alphas = axis(span, points), targets = targets, normalize = normalize,
    seed = seed, direction_norms = {}, loss = {} }, Landscape)
  for d = 1, #dirs do
    local sq = 0
    for _, name in ipairs(targets) do sq = sq + dirs[d][name]:norm() ^ 2 end
    res.direction_norms[d] = math.sqrt(sq)
  end
  if #dirs == 2 then res.betas = axis(span, points) end

  -- Several processes: each runs its contiguous part of every batch's rows (a batch given as tensors runs
  -- whole on every rank) and the loss sums, weighted by loss terms, are summed over the ranks at each point,
  -- with a flag for a Ctrl-C on any rank (deferred meanwhile, so every rank stops at the same point).
  local ranks, task = S.dist.size(), model.config.task
  local parts = {}
  for i, bt in ipairs(batches) do
    if ranks > 1 and type(bt.input_ids) == "table" then
      local lo, hi = S.dist.part(#bt.input_ids)
      parts[i] = hi >= lo and S.data.rows_of(bt, lo, hi) or false
    else
      parts[i] = bt
    end
  end

  -- the mean loss of the batches at the weights as they are now
  local function mean_loss()
    if ranks == 1 then
      local sum = 0
      for _, bt in ipairs(batches) do
        local out = model:forward(bt)
        if not out.loss then error(who .. ": the forward pass gave no loss", 0) end
        sum = sum + out.loss
      end
      -- a Ctrl-C that did not raise by itself (deferred, or recorded by sift._interrupt) stops at this point
      if S._interrupt_pending() then error("interrupted", 0) end
      return sum / #batches
    end
    local v = {}
    for i, part in ipairs(parts) do
      local loss, terms = 0, 0
      if part then
        local out = model:forward(part)
        if not out.loss then error(who .. ": the forward pass gave no loss", 0) end
        terms = type(part.input_ids) == "table" and S.data.loss_terms(part, task) or 1
        loss = out.loss * terms
      end
      v[2 * i - 1], v[2 * i] = loss, terms
    end
    v[#v + 1] = S._interrupt_pending() and 1 or 0
    v = S.dist.sum(v)
    if v[#v] > 0 then error("interrupted", 0) end
    local sum = 0
    for i = 1, #parts do sum = sum + v[2 * i - 1] / v[2 * i] end
    return sum / #parts
  end

  local function loss_at(a, b)
    for _, name in ipairs(targets) do
      local p = model:param(name)
      if b then p:combine_(originals[name], a, dirs[1][name], b, dirs[2][name])
      else p:combine_(originals[name], a, dirs[1][name]) end
    end
    return mean_loss()
  end

  -- on a terminal, a bar with the points done and the time left (quiet = true: none)
  local total, done, t0 = 1 + (res.betas and points * points or points), 0, S.now()
  local prog = require("sift.train").progress(total, opts.quiet or S.dist.rank() ~= 0 or not S.isatty(1), function(st, n, eta)
    return ("landscape: point %d/%d  loss %.4f  ETA %s"):format(st.step, n, st.loss, eta)
  end)
  local function point(v)
    done = done + 1
    prog.update({ step = done, elapsed = S.now() - t0, loss = v })
    return v
  end
  if ranks > 1 then S._defer_interrupts(true) end -- until the write-back below is done
  local ok, err = pcall(function()
    res.center = point(mean_loss()) -- the weights themselves, bit for bit
    for i, a in ipairs(res.alphas) do
      if res.betas then
        res.loss[i] = {}
        for j, b in ipairs(res.betas) do res.loss[i][j] = point(loss_at(a, b)) end
      else
        res.loss[i] = point(loss_at(a))
      end
    end
  end)
  if done > 0 then prog.finish() end
  S._defer_interrupts(true) -- the write-back is never cut short
  local okr, errr = pcall(function()
    for _, name in ipairs(targets) do model:param(name):copy_(originals[name]) end
  end)
  S._defer_interrupts(false)
  local pending = S._interrupt_pending()
  if not okr then error(who .. ": restoring the weights failed: " .. tostring(errr), 2) end
  if not ok then error(err, 0) end
  if pending then error("interrupted", 0) end
  return res
end

function M.install(sift)
  S = sift
  sift.landscape = M.landscape
end

return M
