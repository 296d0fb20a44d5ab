-- sift/checkpoint.lua — a trainer's state as one safetensors file and back: tr:save(path) writes it,
-- sift.trainer{…, resume = path} (or sift.train) reads it, and the resumed run takes the same bits as
-- the uninterrupted one. In the file: every densely trained tensor (task head, LoRA factors, or all of a
-- full fine-tuning) with its AdamW moments; a SIFT set's masks, original values, increments and moments;
-- the optimizer steps, the training step, tokens, seconds and history. Not in it: the base model (the
-- caller loads the same checkpoint again; SIFT's saved originals are checked entry by entry against
-- it), the data and the options — the caller passes them again, and a run that differs in method, data
-- rows, batch, seed or steps in all is refused with what differs. Written atomically (sift.save_tensors),
-- by rank 0 only with several processes. Evaluation results keep their numbers, not their predictions.
local M = {}

local FORMAT = "sift-trainer-1"

local function joined(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = ("%.17g"):format(v) end
  return table.concat(s, ",")
end

local function numbers(s)
  local out = {}
  for v in (s or ""):gmatch("[^,]+") do out[#out + 1] = tonumber(v) end
  return out
end

-- history.eval: a list of tables of numbers, as "k=v;k=v|k=v;…" (predictions and strings dropped)
local function evals_of(list)
  local out = {}
  for i, e in ipairs(list) do
    local kv = {}
    for k, v in pairs(e) do
      if type(v) == "number" and type(k) == "string" then kv[#kv + 1] = ("%s=%.17g"):format(k, v) end
    end
    table.sort(kv)
    out[i] = table.concat(kv, ";")
  end
  return table.concat(out, "|")
end

local function evals_from(s)
  local out = {}
  for entry in (s or ""):gmatch("[^|]+") do
    local e = {}
    for k, v in entry:gmatch("([%w_]+)=([^;]+)") do e[k] = tonumber(v) end
    out[#out + 1] = e
  end
  return out
end

-- What a run must agree with to resume: {method =, task =, data = dataset, batch =, seed =, steps =,
-- mask_prompt =} ->
-- the fingerprint saved and compared (the data as its row count and a position-weighted sum of the rows'
-- text lengths and labels, so that another data set of the same size shows).
function M.fingerprint(run)
  local h, data = 0, run.data
  for i = 1, #data do
    local r = data[i]
    local label = math.floor((tonumber(r.label) or 0) * 1000 + 0.5)
    h = (h * 31 + #(r.text or "") + 7 * #(r.text_b or "") + label * 1009 + i) % 2147483647
  end
  -- mask_prompt only when on: checkpoints from before it existed (all without) still compare equal
  return { method = run.method, task = run.task, rows = #data, data = h, batch = run.batch, seed = run.seed,
    steps = run.steps, mask_prompt = run.mask_prompt and "true" or nil }
end

-- st: {set =, opt =, step =, tokens =, seconds =, history =, fingerprint = M.fingerprint(...)}
function M.save(path, st)
  local set, opt, h = st.set, st.opt, st.history
  local t = {}
  local meta = { format = FORMAT, step = tostring(st.step), tokens = tostring(st.tokens),
    seconds = ("%.17g"):format(st.seconds), ["history.loss"] = joined(h.loss), ["history.lr"] = joined(h.lr),
    ["history.grad_norm"] = joined(h.grad_norm), ["history.bytes_sent"] = joined(h.bytes_sent),
    ["history.eval"] = evals_of(h.eval) }
  for k, v in pairs(st.fingerprint) do meta["run." .. k] = tostring(v) end
  local dense = opt:_state()
  meta["opt.steps"], meta["opt.tensors"] = tostring(dense.steps), tostring(#dense)
  for i, e in ipairs(dense) do
    t["opt." .. i .. ".value"], t["opt." .. i .. ".m"], t["opt." .. i .. ".v"] = e.value, e.m, e.v
    meta["opt." .. i .. ".name"], meta["opt." .. i .. ".grad"] = e.name, e.grad and "1" or "0"
  end
  if set:kind() == "sparse" and set:selected() then -- (saved before its first step: the resumed run calibrates)
    meta["sparse.step"] = tostring(set:_sparse_step())
    for i, name in ipairs(set:targets()) do
      local ts = set:_target_state(name)
      t["sparse." .. i .. ".idx"] = set:indices(name)
      t["sparse." .. i .. ".w0"], t["sparse." .. i .. ".delta"] = ts.w0, ts.delta
      t["sparse." .. i .. ".m"], t["sparse." .. i .. ".v"] = ts.m, ts.v
      meta["sparse." .. i .. ".name"] = name
    end
  end
  sift.save_tensors(path, t, meta)
  return path
end

-- meta[key] as a count 0..max (plain decimal digits), or an error naming it
local function count_of(path, meta, key, max)
  local v = meta[key]
  local n = type(v) == "string" and v:match("^%d+$") and math.tointeger(tonumber(v))
  if not n or n > max then
    error(("resume: %s: %s = %s is not a count in 0..%d"):format(path, key, v and ("%q"):format(v) or "(missing)", max), 0)
  end
  return n
end

-- meta[key] as a finite number >= 0, or an error naming it
local function amount_of(path, meta, key)
  local x = tonumber(meta[key])
  if not x or x ~= x or x < 0 or x == math.huge then
    error(("resume: %s: %s = %s is not a finite number >= 0"):format(path, key,
      meta[key] and ("%q"):format(meta[key]) or "(missing)"), 0)
  end
  return x
end

-- x's values are all finite (and, for a second moment, none negative), or an error naming what holds them
local function check_values(path, what, x, second_moment)
  local lo, hi = x:range()
  if lo and not (lo > -math.huge and hi < math.huge) then
    error(("resume: %s: %s holds a non-finite value"):format(path, what), 0)
  end
  if second_moment and lo and lo < 0 then
    error(("resume: %s: %s holds a negative value (%.9g; AdamW's second moments are never negative)"):format(path,
      what, lo), 0)
  end
end

-- m and v (when given, same size) could be the AdamW moments of opt, or an error naming the entry
local function check_moments(path, what, opt, m, v)
  if not m or not v or m:numel() ~= v:numel() then return end -- (sizes are checked where they are used)
  local bad = opt:_check_moments(m, v)
  if bad then
    error(("resume: %s: %s's AdamW moments at entry %d (m %.9g, v %.9g) cannot come from this optimizer (a "
      .. "corrupted file, or betas other than the run that saved it)"):format(path, what, bad,
      m:reshape(m:numel()):get(bad), v:reshape(v:numel()):get(bad)), 0)
  end
end

local MAX_STEPS = (1 << 31) - 1 -- an optimizer's step count (its bias correction's exponent)
local MAX_TENSORS = 1 << 20

local load_checked -- below

-- Restores set, optimizer and counters from path; returns {step =, tokens =, seconds =, history =}.
-- Every count and tensor is checked before anything changes: a refused checkpoint leaves the set, its
-- optimizer and the model as they were. Errors begin with "resume:" (the engine's own checks' messages
-- lose their Lua source position).
function M.load(path, set, opt, fingerprint)
  local ok, r = pcall(load_checked, path, set, opt, fingerprint)
  if ok then return r end
  local msg = tostring(r):gsub("^[^\n]-%.lua:%d+: ", "")
  if not msg:find("^resume") then msg = "resume: " .. msg end
  error(msg, 0)
end

function load_checked(path, set, opt, fingerprint)
  local ok, f = pcall(sift.load_tensors, path)
  if not ok then error("resume: " .. tostring(f), 0) end
  local meta = f[".metadata"] or {}
  if meta.format ~= FORMAT then
    error(("resume: %s is not a trainer checkpoint (format %s, want %s)"):format(path, tostring(meta.format), FORMAT), 0)
  end
  local keys, seen = {}, {}
  for k in pairs(fingerprint) do keys[#keys + 1], seen[k] = k, true end
  for mk in pairs(meta) do -- a key only the checkpoint has (e.g. mask_prompt) differs too
    local k = mk:match("^run%.(.+)$")
    if k and not seen[k] then keys[#keys + 1], seen[k] = k, true end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local have = fingerprint[k] ~= nil and tostring(fingerprint[k]) or nil
    if meta["run." .. k] ~= have then
      error(("resume: %s was saved with %s = %s, this run has %s"):format(path, k, tostring(meta["run." .. k]),
        tostring(have)), 0)
    end
  end
  local resumable, why = set:_resumable()
  if not resumable then error("resume: " .. why, 0) end
  -- the counters: the training step within the run's steps, the optimizers' step counts, the clocks
  local step = count_of(path, meta, "step", tonumber(fingerprint.steps) or MAX_STEPS)
  local opt_steps = count_of(path, meta, "opt.steps", MAX_STEPS)
  local sparse_step = meta["sparse.step"] and count_of(path, meta, "sparse.step", MAX_STEPS)
  local tokens, seconds = amount_of(path, meta, "tokens"), amount_of(path, meta, "seconds")
  local dense = {}
  for i = 1, count_of(path, meta, "opt.tensors", MAX_TENSORS) do
    dense[i] = { value = f["opt." .. i .. ".value"], m = f["opt." .. i .. ".m"], v = f["opt." .. i .. ".v"],
      grad = meta["opt." .. i .. ".grad"] == "1", name = meta["opt." .. i .. ".name"] }
    if not dense[i].value then error(("resume: %s lacks dense tensor %d"):format(path, i), 0) end
    if (dense[i].m == nil) ~= (dense[i].v == nil) then
      error(("resume: %s holds only one of dense tensor %d's two AdamW moments"):format(path, i), 0)
    end
    local what = ("dense tensor %d (%s)"):format(i, tostring(dense[i].name))
    for _, part in ipairs { "value", "m", "v" } do
      local x = dense[i][part]
      if x then check_values(path, what .. " " .. part, x, part == "v") end
    end
    check_moments(path, what, opt, dense[i].m, dense[i].v)
  end
  opt:_restore(dense, opt_steps, true) -- checks every dense tensor before anything changes
  if set:kind() == "sparse" and sparse_step then
    local targets = set:targets()
    for i, name in ipairs(targets) do
      if meta["sparse." .. i .. ".name"] ~= name then
        error(("resume: target %d is %s in %s, %s in this set"):format(i, tostring(meta["sparse." .. i .. ".name"]),
          path, name), 0)
      end
      if not f["sparse." .. i .. ".idx"] then error(("resume: %s has no mask for %s"):format(path, name), 0) end
    end
    if meta["sparse." .. (#targets + 1) .. ".name"] then
      error(("resume: %s has more sparse targets than this set's %d"):format(path, #targets), 0)
    end
    -- the same base model: its weights at the masks must be the saved originals (checked before any change)
    local model = set:model()
    for i, name in ipairs(targets) do
      local idx, w0 = f["sparse." .. i .. ".idx"], f["sparse." .. i .. ".w0"]
      for _, part in ipairs { "w0", "delta", "m", "v" } do
        local x = f["sparse." .. i .. "." .. part]
        if not x or x:numel() ~= idx:numel() or x:dtype() ~= "f32" then
          error(("resume: %s: the checkpoint's %s does not match its mask of %d entries"):format(name, part, idx:numel()), 0)
        end
        check_values(path, name .. "'s " .. part, x, part == "v")
      end
      check_moments(path, name, opt, f["sparse." .. i .. ".m"], f["sparse." .. i .. ".v"])
      local w = model:param(name)
      local flat, n = w:reshape(w:numel()), w:numel()
      for j = 1, idx:numel() do
        local e = idx:get(j)
        if math.type(e) ~= "integer" or e < 0 or e >= n then
          error(("resume: %s: index %s outside 0..%d"):format(name, tostring(e), n - 1), 0)
        end
        if flat:get(e + 1) ~= w0:get(j) then
          error(("resume: %s differs from the checkpoint's base weights at entry %d (load the same base model)"):format(
            name, e), 0)
        end
      end
    end
    set:_begin_selection()
    for i, name in ipairs(targets) do set:_set_indices(name, f["sparse." .. i .. ".idx"]) end
    set:_finish_selection()
    for i, name in ipairs(targets) do
      set:_restore_target(name, f["sparse." .. i .. ".w0"], f["sparse." .. i .. ".delta"], f["sparse." .. i .. ".m"],
        f["sparse." .. i .. ".v"])
    end
    set:_sparse_step(sparse_step)
  end
  opt:_restore(dense, opt_steps)
  local h = { loss = numbers(meta["history.loss"]), lr = numbers(meta["history.lr"]),
    grad_norm = numbers(meta["history.grad_norm"]), bytes_sent = numbers(meta["history.bytes_sent"]),
    eval = evals_from(meta["history.eval"]) }
  return { step = step, tokens = tokens, seconds = seconds, history = h }
end

return M
