-- sift/sets.lua — sift.sparse, sift.lora, sift.full: resolve name patterns and defaults, then build the
-- set in C (lua/l_sets.c); Set:select runs the calibration forward/backward (and custom policies).
-- Name patterns are Lua patterns matched with string.find against full parameter names.
local M = {}

-- every 2-D weight inside the transformer blocks (GPT-2 ".h.N.", Llama ".layers.N.", BERT ".layer.N.")
M.block_patterns = { "%.h%.%d+%.", "%.layers%.%d+%.", "%.layer%.%d+%." }

local function matches(name, patterns)
  for _, p in ipairs(patterns) do
    if name:find(p) then return true end
  end
  return false
end
M.matches = matches -- true when name matches one of the Lua patterns

local function resolve(model, patterns, what)
  if type(patterns) == "string" then patterns = { patterns } end
  if type(patterns) ~= "table" then error(what .. ": expected a table of name patterns", 3) end
  local out = {}
  for _, name in ipairs(model:names()) do
    if matches(name, patterns) then out[#out + 1] = name end
  end
  if #patterns > 0 and #out == 0 then
    error(("%s: no parameter matches %s"):format(what, table.concat(patterns, ", ")), 3)
  end
  return out
end
-- the parameter names matching patterns (a pattern or a list), in checkpoint order; an error names `what`
-- (at the level of the caller's caller) when a non-empty list matches nothing
M.resolve = resolve

function M.default_targets(model)
  local heads = {}
  for _, n in ipairs(model:head_names()) do heads[n] = true end
  local out = {}
  for _, name in ipairs(model:names()) do
    if not heads[name] and #model:param_shape(name) == 2 and matches(name, M.block_patterns) then
      out[#out + 1] = name
    end
  end
  return out
end

local function dense_of(model, opts, what)
  if opts.dense then return resolve(model, opts.dense, what .. " dense") end
  return model:head_names()
end

local custom_policy = setmetatable({}, { __mode = "k" }) -- set -> Lua policy function
local calibration_loss = setmetatable({}, { __mode = "k" }) -- set -> mean loss of its last select's batches

function M.install(sift)
  local Set = sift.Set

  function sift.sparse(model, opts)
    opts = sift._check_options(opts, "sift.sparse",
      { "rate", "targets", "dense", "policy", "seed", "mode", "reference" }) or {}
    local targets = opts.targets and resolve(model, opts.targets, "sift.sparse targets") or M.default_targets(model)
    if #targets == 0 then error("sift.sparse: no target parameters", 2) end
    local policy, fn = opts.policy or "topk", nil
    if type(policy) == "function" then fn, policy = policy, "custom" end
    local s = sift._sparse(model, targets, dense_of(model, opts, "sift.sparse"), {
      rate = opts.rate or 0.01, policy = policy, seed = opts.seed or 0,
      mode = opts.mode, reference = opts.reference,
    })
    if fn then custom_policy[s] = fn end
    return s
  end

  function sift.lora(model, opts)
    opts = sift._check_options(opts, "sift.lora", { "r", "alpha", "targets", "dense", "seed" }) or {}
    local targets = opts.targets and resolve(model, opts.targets, "sift.lora targets") or M.default_targets(model)
    if #targets == 0 then error("sift.lora: no target parameters", 2) end
    -- (alpha defaults to 2 r in sift._lora, which checks r first; not a tail call, so that its errors name
    -- the caller of sift.lora, two levels up, as sift.sparse's and sift.full's do)
    local s = sift._lora(model, targets, dense_of(model, opts, "sift.lora"),
      { r = opts.r, alpha = opts.alpha, seed = opts.seed })
    return s
  end

  function sift.full(model, opts)
    opts = sift._check_options(opts, "sift.full", { "params" }) or {}
    local names = opts.params and resolve(model, opts.params, "sift.full params") or model:names()
    local s = sift._full(model, names) -- (not a tail call: see sift.lora)
    return s
  end

  -- the head-only baseline: only the task head trains (dense)
  function sift.head(model)
    local names = model:head_names()
    if #names == 0 then error("sift.head: the model has no task head (load it with {task = \"classify\"})", 2) end
    local s = sift._full(model, names) -- (not a tail call: see sift.lora)
    return s
  end

  local function is_batch(b) return type(b) == "table" and b.input_ids ~= nil end
  local function rows_in(b) return type(b.input_ids) == "table" and #b.input_ids or 1 end -- (tensor ids: one part)

  -- s:_backward_parts(batch, {micro_batch =, scale = 1, pack = true, sync =}) -> the batch's mean loss:
  -- forward + backward of scale x the batch's loss, micro_batch rows at a time (each part
  -- back-propagating its share of the batch's loss terms; a part without terms adds nothing, a batch
  -- without any still runs once). An empty batch ({input_ids = {}}) or scale 0 runs nothing. sync (several
  -- processes): the set's gradients are summed over ranks during the last backward (s:_sync_arm before
  -- it, s:_sync_wait after; a rank that ran nothing sends zeros). What sift.train and select share.
  function Set:_backward_parts(b, o)
    local model = self:model()
    local task, rows, micro, scale = model.config.task, rows_in(b), o.micro_batch, o.scale or 1
    local parts, shares = {}, {}
    if scale == 0 or rows == 0 then -- nothing to run here
    elseif micro and rows > micro then
      local total = sift.data.loss_terms(b, task)
      for r = 1, rows, micro do
        local part = sift.data.rows_of(b, r, math.min(r + micro - 1, rows))
        local terms = sift.data.loss_terms(part, task)
        if terms > 0 or (total == 0 and r == 1) then
          parts[#parts + 1], shares[#parts + 1] = part, total > 0 and terms / total or 1
        end
      end
    else
      parts[1], shares[1] = b, 1
    end
    local loss = 0
    for j, part in ipairs(parts) do
      local out = model:forward(part, { logits = false, pack = o.pack ~= false }) -- LM: head and loss fused
      if not out.loss then error("the batch needs labels (a loss to differentiate)", 3) end
      loss = loss + out.loss * shares[j]
      if o.sync and j == #parts then self:_sync_arm() end
      model:backward(scale * shares[j])
    end
    if o.sync then
      if #parts == 0 then self:_sync_arm() end -- nothing ran here: this rank's sums carry zeros
      self:_sync_wait()
    end
    return loss
  end

  -- s:select(batch) or s:select({batch1, batch2, ...}) (fisher sums over several batches); opts.pack =
  -- false runs the batches padded (model:forward's pack); opts.scale multiplies the loss differentiated
  -- (a rank's share of a batch split over several processes); opts.micro_batch = n runs each batch n rows
  -- at a time, each part back-propagating its share of the batch's loss terms, the masks chosen from the
  -- batch's whole gradient (kept dense until the batch is done). The calibration gradient is kept: the
  -- next optimizer step applies it; s:calibration_loss() is the batches' mean loss. Several processes
  -- (sift.dist): every rank calls select with its part of each batch (an empty part, {input_ids = {}},
  -- runs nothing) and the gradients are summed over ranks before the policy picks, so every rank selects
  -- the same masks.
  function Set:select(batches, opts)
    if self:kind() ~= "sparse" then return self end
    if is_batch(batches) then batches = { batches } end
    if type(batches) ~= "table" or #batches == 0 then
      error("select: expected a batch {input_ids=..., labels=...} or a list of batches", 2)
    end
    opts = sift._check_options(opts, "select", { "pack", "scale", "micro_batch" }) or {}
    local pack, scale, micro = opts.pack ~= false, opts.scale or 1, opts.micro_batch
    if micro ~= nil and (math.type(micro) ~= "integer" or micro < 1) then
      error("select: micro_batch must be a positive integer (rows per forward + backward)", 2)
    end
    local split = false
    for _, b in ipairs(batches) do split = split or (micro ~= nil and rows_in(b) > micro) end
    self:_begin_selection(split) -- a batch in parts: the policy waits for its whole gradient
    local loss, ranks = 0, sift.dist.size()
    for i, b in ipairs(batches) do
      -- the dense tensors' gradients accumulate over the batches: summed over ranks once, after the last
      loss = loss + self:_backward_parts(b, { micro_batch = micro, scale = scale, pack = pack,
        sync = ranks > 1 and i == #batches }) / #batches
      self:_note_batch()
    end
    calibration_loss[self] = loss
    local fn = custom_policy[self]
    if fn then
      for _, name in ipairs(self:targets()) do
        local k = self:budget(name)
        local idx = fn(name, self:_calib_grad(name), k)
        if idx == nil then error(("select: the policy returned no indices for %s"):format(name), 2) end
        self:_set_indices(name, idx)
      end
    end
    self:_finish_selection()
    return self
  end

  -- The mean loss of the batches the last select ran (this process's rows), or nil before any.
  function Set:calibration_loss() return calibration_loss[self] end
end

return M
