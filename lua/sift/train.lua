-- sift/train.lua — sift.train (the training loop behind every method), sift.evaluate and the trainer
-- object for pausable stepping. Same data order, schedule, clipping and evaluation for every method
-- (sparse, lora, full), so comparisons are fair by construction. Ctrl-C (an "interrupted" error raised
-- by sift-repl's hook) stops between steps with the weights intact; trainer:save(path) and resume = path
-- continue a run bit for bit (sift/checkpoint.lua). Encoding of rows into batches is sift.data.encode;
-- metrics are sift.metrics.
-- Several processes (an MPI build under mpiexec, sift.dist): every rank walks the same data order and
-- takes its contiguous part of each global batch; each back-propagates its share of the batch's loss terms
-- and the gradients are summed over ranks as the tape finishes them (core/dist.h), so every rank takes
-- the step one process would take with the whole batch. Rank 0 alone prints. Ctrl-C on any rank stops
-- every rank after the same step.
local M = {}
local checkpoint = require "sift.checkpoint"
local sift_ref -- the module table, set by install

-- The rows [lo, hi] of n that this rank takes (contiguous; empty when n < ranks): sift.dist.part, which the
-- analyses (sift/analysis.lua, sift/landscape.lua) split their batches by too.
local function my_part(n)
  local P, R = sift.dist.size(), sift.dist.rank()
  return R * n // P + 1, (R + 1) * n // P
end

local function schedule_lr(kind, base, t, T, warmup)
  local w = math.max(1, math.floor(warmup * T + 0.5))
  local warm = math.min(1, (t + 1) / w)
  if kind == "constant" then return base * warm end
  if kind == "cosine" then return base * warm * 0.5 * (1 + math.cos(math.pi * t / T)) end
  return base * warm * (1 - t / T) -- linear
end

local function fmt_time(s)
  if s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%d:%02d:%02d"):format(s // 3600, s % 3600 // 60, s % 60) end
  return ("%d:%02d"):format(s // 60, s % 60)
end

-- A progress display: a bar redrawn in place on a terminal, plain periodic lines otherwise. st: {step =,
-- elapsed = seconds, ...}; describe(st, total, eta) -> the text after the bar (default: a training step's).
-- sift.landscape shows its walk with it too (M.progress).
local function progress(total, quiet, describe)
  local tty = sift.isatty(1)
  local last_line = -math.huge
  local p = {}
  function p.update(st)
    if quiet then return end
    local frac = st.step / total
    local eta = fmt_time(st.elapsed / math.max(st.step, 1) * (total - st.step))
    local msg = describe and describe(st, total, eta)
      or ("step %d/%d  epoch %d  loss %.4f  %.0f tok/s  ETA %s"):format(st.step, total, st.epoch, st.loss,
        st.tokens_per_s, eta)
    if tty then
      local width = 24
      local fill = math.floor(frac * width + 0.5)
      io.stdout:write("\r[", ("#"):rep(fill), ("."):rep(width - fill), "] ", msg, "   ")
      io.stdout:flush()
    elseif st.elapsed - last_line >= 5 or st.step == total or st.step == 1 then
      last_line = st.elapsed
      print(msg)
    end
  end
  function p.finish()
    if tty and not quiet then io.stdout:write("\n") end
  end
  return p
end

-- rows -> a batch; for a language model, next-token labels on real tokens only (with mask_prompt, on the
-- response of {text, text_b} rows only: instruction tuning's loss)
local function batch_of(rows, opts, task)
  return sift.data.encode(rows, opts.tokenizer, { max_len = opts.max_len, pad_id = opts.pad_id, bos = opts.bos,
    task = task == "lm" and "lm" or nil, mask_prompt = task == "lm" and opts.mask_prompt or nil })
end

local function default_bos(model)
  return model.config.arch == "llama"
end

local function default_pad(model)
  local c = model.config
  return c.pad_token_id or c.eos_token_id or 0
end

-- A labelled dataset must match the model's head: as many classes, or one output for regression.
local function check_head(model, ds, who)
  local want, have = ds.num_labels, model.config.num_labels
  if want and have and model.config.task == "classify" and want ~= have then
    local what = function(k) return k == 1 and "1 output (regression)" or k .. " classes" end
    error(("%s: the data has %s but the model's head has %s (load it with {task = \"classify\", num_labels = %d})")
      :format(who, what(want), what(have), want), 0)
  end
end

-- Evaluates a classification model on a dataset: accuracy, mcc (binary), f1 (binary), mean loss and each
-- row's predicted label; a regression head (num_labels = 1): pearson, spearman, mse, mean loss and each
-- row's predicted value, in the dataset's order. Batches run packed (model:forward), so padding costs
-- nothing and the rows go in dataset order (sorting them by length, as before packing, cost an extra
-- encoding pass: 0.66-0.70 s against 0.78-0.80 for SST-2 dev on gpt2-4m).
-- A language model (task "lm"): the mean next-token loss over the rows' target tokens (each token weighs the
-- same), its perplexity exp(loss), the token count and n (rows); mask_prompt = true counts the responses of
-- {text, text_b} rows only.
local function evaluate_lm(model, ds, o, bs)
  local loss_sum, terms = 0, 0
  local lo, hi = my_part(#ds) -- several processes: each evaluates its part, the sums are summed
  for i = lo, hi, bs do
    local rows = {}
    for j = i, math.min(i + bs - 1, hi) do rows[#rows + 1] = ds[j] end
    local b = batch_of(rows, o, "lm")
    local n = sift.data.loss_terms(b, "lm")
    if n > 0 then
      local out = model:forward(b, { grad = false })
      loss_sum, terms = loss_sum + out.loss * n, terms + n
    end
  end
  if sift.dist.size() > 1 then
    local v = sift.dist.sum({ loss_sum, terms })
    loss_sum, terms = v[1], math.tointeger(v[2])
  end
  if terms == 0 then error("sift.evaluate: no target tokens in the dataset (empty rows, or prompts only)", 3) end
  local loss = loss_sum / terms
  return { loss = loss, perplexity = math.exp(loss), tokens = terms, n = #ds }
end

-- a whole number (an integer, or a float with an integer's value)
local function whole(v) return type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 end

function M.evaluate(model, ds, opts)
  opts = sift_ref._check_options(opts, "sift.evaluate",
    { "tokenizer", "batch", "max_len", "pad_id", "bos", "mask_prompt" }) or {}
  for _, k in ipairs { "batch", "max_len" } do
    if opts[k] ~= nil and not (whole(opts[k]) and opts[k] >= 1) then
      error(("sift.evaluate: %s must be a whole number >= 1, got %s"):format(k, tostring(opts[k])), 2)
    end
  end
  assert(opts.tokenizer, "sift.evaluate: opts.tokenizer is required")
  local bs = opts.batch or 64
  local o = { tokenizer = opts.tokenizer, max_len = opts.max_len or 64, pad_id = opts.pad_id or default_pad(model),
    bos = opts.bos == nil and default_bos(model) or opts.bos, mask_prompt = opts.mask_prompt }
  if #ds == 0 then error("sift.evaluate: the dataset is empty", 2) end
  if model.config.task == "lm" then return evaluate_lm(model, ds, o, bs) end
  if opts.mask_prompt then error("sift.evaluate: mask_prompt is for language models (this one classifies)", 2) end
  check_head(model, ds, "sift.evaluate")
  for i = 1, #ds do
    if ds[i].label == nil then error(("sift.evaluate: row %d has no label (a labelled dataset is needed)"):format(i), 2) end
  end
  local regression = model.config.num_labels == 1
  local preds, gold, loss_sum, n = {}, {}, 0, 0
  local lo, hi = my_part(#ds) -- several processes: each evaluates its part, the results are summed
  for i = lo, hi, bs do
    local rows = {}
    for j = i, math.min(i + bs - 1, hi) do rows[#rows + 1] = ds[j] end
    local b = batch_of(rows, o, "classify")
    local out = model:forward(b, { grad = false })
    local logits = out.logits:totable()
    for r, row in ipairs(logits) do
      local best = 1
      for c = 2, #row do if row[c] > row[best] then best = c end end
      preds[i + r - 1] = regression and row[1] or best - 1
    end
    if out.loss then loss_sum, n = loss_sum + out.loss * #rows, n + #rows end
  end
  for i = 1, #ds do gold[i] = ds[i].label end
  if sift.dist.size() > 1 then
    local v = {}
    for i = 1, #ds do v[i] = preds[i] or 0 end
    v[#ds + 1], v[#ds + 2] = loss_sum, n
    v = sift.dist.sum(v)
    for i = 1, #ds do preds[i] = regression and v[i] or math.tointeger(v[i]) end
    loss_sum, n = v[#ds + 1], math.tointeger(v[#ds + 2])
  end
  local m = sift.metrics
  if regression then
    local res = m.regression(preds, gold)
    res.loss, res.predictions = n > 0 and loss_sum / n or nil, preds
    return res
  end
  local res = { accuracy = m.accuracy(preds, gold), n = #gold, loss = n > 0 and loss_sum / n or nil,
    predictions = preds }
  local binary = true
  for _, g in ipairs(gold) do if g ~= 0 and g ~= 1 then binary = false end end
  if binary then
    res.mcc = m.mcc(preds, gold)
    res.f1 = m.f1(preds, gold, 1)
  end
  return res
end

-- The trainer: sift.train(opts) runs it to the end; sift.trainer(opts) returns it for trainer:step(n).
-- the options of sift.train / sift.trainer (help.lua's "sift.train" lists them)
local TRAIN_OPTIONS = { "model", "method", "data", "tokenizer", "max_len", "epochs", "batch", "lr", "warmup",
  "schedule", "clip", "seed", "max_steps", "eval", "eval_batch", "on_step", "quiet", "pack", "micro_batch",
  "mask_prompt", "pad_id", "bos", "betas", "eps", "weight_decay", "decay", "sparse_weight_decay", "checkpoint",
  "checkpoint_every", "resume" }

-- The values of sift.train's options that are not checked where they are used (or only after a step had run):
-- each refused by name at `level` (as M.trainer's: 2 = the caller of M.trainer). Before, batch = 2.5, max_len
-- = 0, warmup = 5, clip = 0 (every gradient scaled to 0), schedule = "cosin" ran silently, on_step = 5 failed
-- after the first step, and batch = 0 was reported as a bad checkpoint_every.
local function check_train_values(o, level)
  local function want(ok, what, v)
    if not ok then error(("sift.train: %s, got %s"):format(what, tostring(v)), level + 2) end -- (+ want, + this)
  end
  for _, k in ipairs { "batch", "epochs", "eval_batch", "max_steps", "max_len" } do -- (checkpoint_every: below)
    if o[k] ~= nil then want(whole(o[k]) and o[k] >= 1, k .. " must be a whole number >= 1", o[k]) end
  end
  if o.seed ~= nil then want(whole(o.seed), "seed must be a whole number", o.seed) end
  if o.lr ~= nil then
    want(type(o.lr) == "number" and o.lr >= 0 and o.lr < math.huge, "lr must be a finite number >= 0", o.lr)
  end
  if o.warmup ~= nil then
    want(type(o.warmup) == "number" and o.warmup >= 0 and o.warmup <= 1,
      "warmup must be a fraction of the steps in [0, 1]", o.warmup)
  end
  if o.schedule ~= nil then
    want(o.schedule == "linear" or o.schedule == "cosine" or o.schedule == "constant",
      "schedule must be \"linear\", \"cosine\" or \"constant\"", o.schedule)
  end
  if o.clip ~= nil and o.clip ~= false then
    want(type(o.clip) == "number" and o.clip > 0, "clip must be a number > 0 (the largest gradient norm; false: none)",
      o.clip)
  end
  for _, k in ipairs { "quiet", "pack", "mask_prompt" } do
    if o[k] ~= nil then want(type(o[k]) == "boolean", k .. " must be true or false", o[k]) end
  end
  if o.on_step ~= nil then want(type(o.on_step) == "function", "on_step must be a function", o.on_step) end
end

-- (level: where an unknown option's error points, 2 = the caller of sift.trainer; sift.train passes 3)
function M.trainer(opts, level)
  level = level or 2
  if type(opts) ~= "table" then error("sift.train: expected a table of options, got " .. type(opts), level) end
  sift_ref._check_options(opts, "sift.train", TRAIN_OPTIONS, level)
  check_train_values(opts, level)
  local model, set = opts.model, opts.method
  if not model then error("sift.train: model is required", level) end
  if not set then error("sift.train: method (a set from sift.sparse / sift.lora / sift.full) is required", level) end
  local data = opts.data
  if not data then error("sift.train: data is required", level) end
  check_head(model, data, "sift.train")
  if opts.eval then check_head(model, opts.eval, "sift.train (eval)") end
  local task = model.config.task
  local bs, epochs = opts.batch or 32, opts.epochs or 1
  local per_epoch = math.ceil(#data / bs)
  local T = per_epoch * epochs
  if opts.max_steps then T = math.min(T, opts.max_steps) end
  if T < 1 then error("sift.train: no steps to run (empty data?)", level) end
  if opts.mask_prompt and task ~= "lm" then
    error("sift.train: mask_prompt is for language models (this one classifies)", level)
  end
  if not opts.tokenizer then error("sift.train: tokenizer is required", level) end
  local enc_opts = { tokenizer = opts.tokenizer, max_len = opts.max_len or 64,
    pad_id = opts.pad_id or default_pad(model), bos = opts.bos == nil and default_bos(model) or opts.bos,
    mask_prompt = opts.mask_prompt and true or nil }
  local lr = opts.lr or 1e-3
  local opt = sift.AdamW(set, { lr = lr, betas = opts.betas, eps = opts.eps, weight_decay = opts.weight_decay or 0.01,
    decay = opts.decay or "matrices", sparse_weight_decay = opts.sparse_weight_decay or 0 })
  local seed = opts.seed or 0
  local pack = opts.pack ~= false
  local ranks = sift.dist.size()
  local quiet = opts.quiet or sift.dist.rank() ~= 0
  local micro = opts.micro_batch
  if micro ~= nil and (math.type(micro) ~= "integer" or micro < 1) then
    error("sift.train: micro_batch must be a positive integer (rows per forward + backward)", level)
  end
  local tr = { history = { loss = {}, lr = {}, eval = {}, grad_norm = {}, bytes_sent = {}, method = set:kind(),
    trainable = nil, steps = 0, ranks = ranks }, step_no = 0, total = T, optimizer = opt }
  local order, epoch = nil, 0
  local interrupt_seen = false -- several processes: some rank got a Ctrl-C during this step
  local prog = progress(T, quiet)
  local t0, tokens = sift.now(), 0
  -- what a checkpoint must agree with to resume (sift/checkpoint.lua)
  local fingerprint = checkpoint.fingerprint { method = set:kind(), task = task, data = data, batch = bs, seed = seed,
    steps = T, mask_prompt = enc_opts.mask_prompt }
  -- checkpoint = path: saved every checkpoint_every steps (default: each epoch), at the end and on Ctrl-C
  local ckpt, ckpt_every = opts.checkpoint, opts.checkpoint_every or per_epoch
  if ckpt ~= nil and type(ckpt) ~= "string" then error("sift.train: checkpoint must be a file path", level) end
  if math.type(ckpt_every) ~= "integer" or ckpt_every < 1 then
    error("sift.train: checkpoint_every must be a positive integer (steps)", level)
  end
  if opts.resume then
    local r = checkpoint.load(opts.resume, set, opt, fingerprint)
    tr.step_no, tokens, t0 = r.step, r.tokens, sift.now() - r.seconds
    for k, v in pairs(r.history) do tr.history[k] = v end
    tr.history.steps = r.step
  end

  local function rows_for(step) -- step is 0-based
    local e = step // per_epoch + 1
    if e ~= epoch then
      epoch = e
      order = data:shuffle(seed + e - 1)
    end
    local first = (step % per_epoch) * bs + 1
    local last = math.min(first + bs - 1, #order)
    local lo, hi = my_part(last - first + 1) -- this rank's part of the global batch
    local rows = {}
    for j = first + lo - 1, first + hi - 1 do rows[#rows + 1] = order[j] end
    return rows
  end

  local function real_tokens(b)
    local n = 0
    for _, r in ipairs(b.attention_mask) do for _, v in ipairs(r) do n = n + v end end
    return n
  end

  -- Forward and backward of one batch's rows (this rank's part of it): packed (the default), only their
  -- real tokens run, each row attending within itself (model:forward's pack); pack = false runs the batch
  -- padded to its longest row. With micro_batch, the rows run micro_batch at a time, each chunk
  -- back-propagating its share of the batch's loss terms (model:backward(share)), so the gradients add up
  -- to the whole batch's (up to float rounding) for a chunk's activations in memory; SIFT's first step
  -- calibrates its masks from the batch the same way (s:select). Several processes: the shares are of the
  -- global batch's terms, and the gradients are summed over ranks during the last backward (the set's
  -- sync). Returns the batch's loss and its real tokens (over all ranks).
  local function forward_backward(rows)
    local b = #rows > 0 and batch_of(rows, enc_opts, task) or { input_ids = {} }
    local terms = #rows > 0 and sift.data.loss_terms(b, task) or 0
    local total = sift.dist.sum(terms) -- over ranks (one process: terms)
    local share = total > 0 and terms / total or 1 -- a batch without targets still runs: a loss of 0
    local loss
    if set:kind() == "sparse" and not set:selected() then
      -- the first training batch calibrates the masks; its gradient is applied by this step
      set:select(b, { pack = pack, scale = share, micro_batch = micro })
      loss = #rows > 0 and set:calibration_loss() or 0
    else
      loss = set:_backward_parts(b, { micro_batch = micro, scale = share, pack = pack, sync = ranks > 1 })
    end
    -- several processes: whether any rank got a Ctrl-C travels with the step's loss and tokens
    local v = sift.dist.sum({ loss * share, #rows > 0 and real_tokens(b) or 0,
      ranks > 1 and sift._interrupt_pending() and 1 or 0 })
    interrupt_seen = v[3] > 0
    return v[1], v[2]
  end

  -- Runs fn(...) with Ctrl-C deferred (one process; several processes defer while they step) and returns
  -- whether one arrived meanwhile: the update and its step count, or a checkpoint, are never cut in two.
  local function deferred(fn, ...)
    if ranks > 1 then
      fn(...)
      return false
    end
    sift._defer_interrupts(true)
    local ok, err = pcall(fn, ...)
    sift._defer_interrupts(false)
    if not ok then error(err, 0) end
    return sift._interrupt_pending()
  end

  local function one_step()
    local t = tr.step_no
    local rows = rows_for(t)
    local sent0 = sift.dist.bytes_sent()
    local loss, real = forward_backward(rows)
    if loss ~= loss or loss == math.huge then
      opt:zero_grad()
      error(("sift.train: loss is %s at step %d; weights left as they were before this step"):format(loss, t + 1), 0)
    end
    local norm = opt:clip(opts.clip == nil and 1.0 or opts.clip or math.huge)
    local cur = schedule_lr(opts.schedule or "linear", lr, t, T, opts.warmup or 0.06)
    opt:set_lr(cur)
    local h = tr.history
    -- the update and the step count change together, so the weights are always those of step_no (what a
    -- checkpoint saves): a Ctrl-C meanwhile is taken once both are done
    if deferred(function()
      opt:step()
      opt:zero_grad()
      tokens = tokens + real
      tr.step_no = t + 1
      h.loss[#h.loss + 1], h.lr[#h.lr + 1], h.grad_norm[#h.grad_norm + 1] = loss, cur, norm
      h.bytes_sent[#h.bytes_sent + 1] = sift.dist.bytes_sent() - sent0
      h.steps = tr.step_no
    end) then error("interrupted", 0) end
    local elapsed = sift.now() - t0
    local st = { step = tr.step_no, total = T, epoch = epoch, loss = loss, lr = cur, grad_norm = norm,
      elapsed = elapsed, tokens_per_s = tokens / math.max(elapsed, 1e-9), model = model, method = set }
    prog.update(st)
    if opts.on_step then opts.on_step(st) end
    if opts.eval and (tr.step_no % per_epoch == 0 or tr.step_no == T) then
      local metrics = M.evaluate(model, opts.eval, { tokenizer = enc_opts.tokenizer, max_len = enc_opts.max_len,
        batch = opts.eval_batch or 64, pad_id = enc_opts.pad_id, bos = enc_opts.bos, mask_prompt = enc_opts.mask_prompt })
      metrics.epoch, metrics.step = epoch, tr.step_no
      h.eval[#h.eval + 1] = metrics
      if not quiet then
        prog.finish()
        if metrics.accuracy then
          print(("epoch %d: eval accuracy %.4f%s"):format(epoch, metrics.accuracy,
            metrics.mcc and ("  mcc %.4f"):format(metrics.mcc) or ""))
        elseif metrics.perplexity then
          print(("epoch %d: eval loss %.4f  perplexity %.2f (%d tokens)"):format(epoch, metrics.loss, metrics.perplexity,
            metrics.tokens))
        else
          print(("epoch %d: eval pearson %.4f  spearman %.4f  mse %.4f"):format(epoch, metrics.pearson,
            metrics.spearman, metrics.mse))
        end
      end
    end
  end

  -- Records where training stopped on Ctrl-C (the weights are those after the last whole step).
  local function stopped(self)
    sift._defer_interrupts(false)
    sift._interrupt_pending() -- taken: clear it
    pcall(opt.zero_grad, opt)
    prog.finish()
    local where = ("stopped at step %d of %d (epoch %d); the weights are those after step %d"):format(
      self.step_no + 1, T, epoch, self.step_no)
    self.history.interrupted = where
    if ckpt then self:save(ckpt) end
    if sift.dist.rank() == 0 then print("interrupted: " .. where .. (ckpt and ("; saved to " .. ckpt) or "")) end
    return self.history
  end

  -- Runs n more steps (all remaining when n is nil); stops cleanly on Ctrl-C. Returns the history.
  -- Several processes: Ctrl-C is deferred while the steps run (sift._defer_interrupts): each step's sums
  -- carry whether any rank got one, and every rank stops after that same step.
  function tr:step(n)
    local stop = n and math.min(T, self.step_no + n) or T
    if ranks > 1 then sift._defer_interrupts(true) end
    while self.step_no < stop do
      local ok, err = pcall(one_step)
      if not ok then
        sift._defer_interrupts(false) -- (several processes defer while they step)
        if tostring(err):find("interrupted", 1, true) and ranks == 1 then return stopped(self) end
        prog.finish()
        error(err, 0)
      end
      if interrupt_seen then
        interrupt_seen = false
        return stopped(self)
      end
      if ckpt and (self.step_no % ckpt_every == 0 or self.step_no == T) then
        local saved, arrived = pcall(deferred, self.save, self, ckpt) -- a Ctrl-C while saving: taken after it
        if not saved then
          prog.finish()
          error(arrived, 0)
        end
        if arrived then return stopped(self) end
      end
    end
    if ranks > 1 then sift._defer_interrupts(false) end
    if self.step_no >= T then prog.finish() end
    self.history.trainable = set:trainable()
    self.history.seconds = sift.now() - t0
    return self.history
  end

  -- Writes the state to resume from after the steps run so far (sift/checkpoint.lua): pass the file as
  -- resume = path to sift.trainer / sift.train with the same model checkpoint, method and options.
  function tr:save(path)
    return checkpoint.save(path, { set = set, opt = opt, step = self.step_no, tokens = tokens,
      seconds = sift.now() - t0, history = self.history, fingerprint = fingerprint })
  end

  tr.history.trainable = set:trainable()
  return tr
end

function M.install(sift)
  sift_ref = sift
  sift.train = function(opts) return M.trainer(opts, 3):step() end
  sift.trainer = M.trainer
  sift.evaluate = M.evaluate
  sift.lr_schedule = schedule_lr
  sift.dist.part = my_part
end

M.progress = progress

return M
