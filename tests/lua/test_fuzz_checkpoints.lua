-- test_fuzz_checkpoints.lua — trainer checkpoints (lua/sift/checkpoint.lua) against mutated copies of
-- real ones, for SIFT, full fine-tuning and LoRA: every metadata value (of the per-tensor keys, those of
-- the first and the last tensor) replaced by each of a list of bad values (empty, negative, fractional,
-- overflowing, NaN, words, junk appended) or removed; every tensor (the same choice) removed, one value
-- short or long, of the other dtype, or holding NaN, Inf, -1 or 3e38 at its first entry; a mask's
-- indices set out of range, repeated or reversed; then random bit flips in the tensor data (the C test
-- test_fuzz_loaders.c fuzzes the safetensors header itself). SIFT_FUZZ_CASES sets the bit-flip cases.
--
-- Each case resumes a fresh model and set from the mutated file. Either it is refused — with a message
-- that begins "resume", and the model and set left as they were: the same set then trains from scratch to
-- the very bits of an untouched run — or it is accepted, and then the next step either runs and leaves
-- every weight finite, or stops with an error message. Never a crash, and never a half-restored model.
-- (Before the checks it drove, the load took counters such as a step of -1 or 2^63 - 1, a missing one as
-- nil, NaN values and moments no AdamW can produce — m = 3e38 with a small v made the next step write
-- Inf into the weights — and lost two of its messages to a format lua_pushfstring does not know.)
--
-- What it does not do: the safetensors parser (test_fuzz_loaders.c), or runs that differ in their
-- options (test_train.lua's refusals).
local H = dofile((arg[0]:match("^(.*)/") or ".") .. "/harness.lua")
local test, check, same_params, all_finite = H.test, H.check, H.same_params, H.all_finite

local CONFIG = { arch = "gpt2", vocab_size = 4096, n_layer = 2, n_head = 2, d_model = 16, max_pos = 64 }
local makers = {
  sparse = function(m) return sift.sparse(m, { rate = 0.05 }) end,
  full = function(m) return sift.full(m) end,
  lora = function(m) return sift.lora(m, { r = 2, seed = 3 }) end,
}

local env -- {tok, data}, loaded once
local function setup()
  if env then return env end
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  H.need_shared("data/sst2/train.txt")
  env = { tok = sift.tokenizer(dir), data = sift.data.load("sst2", { split = "train" }):take(16) }
  return env
end

local function base_model() return sift.build(CONFIG, { task = "classify", num_labels = 2, seed = 1 }) end

local function trainer(m, set, resume)
  local e = setup()
  return sift.trainer { model = m, method = set, data = e.data, tokenizer = e.tok, batch = 4, max_len = 24, quiet = true,
    resume = resume }
end

-- the untouched run of one step from the base model: its loss and its model
local pristine = {}
local function pristine_run(kind)
  if not pristine[kind] then
    local m = base_model()
    local h = trainer(m, makers[kind](m)):step(1)
    pristine[kind] = { loss = h.loss[1], model = m }
  end
  return pristine[kind]
end

-- one mutated file: returns "refused" or "accepted", checking the properties above
local function try(kind, path, label, stats)
  local m = base_model()
  local set = makers[kind](m)
  local ok, err = pcall(trainer, m, set, path)
  if not ok then
    stats.refused = stats.refused + 1
    local msg = tostring(err)
    if not check(type(err) == "string" and msg:find("^resume"), "%s %s: refused without a resume message: %s", kind,
      label, msg) then return end
    local base = base_model()
    local same, where = same_params(m, base)
    if not check(same, "%s %s: refused, but the model changed (%s): %s", kind, label, tostring(where), msg) then return end
    -- the same set trains from scratch to the untouched run's bits
    local ok2, h = pcall(function() return trainer(m, set):step(1) end)
    local p = pristine_run(kind)
    if check(ok2, "%s %s: after the refusal, the set no longer trains: %s", kind, label, tostring(h)) then
      local same2, where2 = same_params(m, p.model)
      check(h.loss[1] == p.loss and same2, "%s %s: after the refusal, training differs from an untouched run (loss "
        .. "%.9g vs %.9g, %s)", kind, label, h.loss[1], p.loss, tostring(where2))
    end
    return
  end
  stats.accepted = stats.accepted + 1
  local tr = err
  check(math.type(tr.step_no) == "integer" and tr.step_no >= 0 and tr.step_no <= tr.total,
    "%s %s: accepted with step %s of %s", kind, label, tostring(tr.step_no), tostring(tr.total))
  local ok3, e3 = pcall(tr.step, tr, 1)
  if ok3 then
    local fin, where = all_finite(m)
    check(fin, "%s %s: accepted, and a step left %s non-finite", kind, label, tostring(where))
  else
    check(type(e3) == "string", "%s %s: accepted, then a step raised a non-string error", kind, label)
  end
end

local BAD_VALUES = { "", "-1", "0", "1.5", "1e400", "-1e400", "nan", "inf", "abc", "9223372036854775807",
  "99999999999999999999", "0x10", " 2", "2,", ",,", "1e18" }

local function saved_checkpoint(kind, path)
  local m = base_model()
  local tr = trainer(m, makers[kind](m))
  tr:step(2)
  tr:save(path)
  return sift.load_tensors(path)
end

local function write(path, f)
  local t, meta = {}, {}
  for k, v in pairs(f) do if k ~= ".metadata" then t[k] = v end end
  for k, v in pairs(f[".metadata"]) do meta[k] = v end
  sift.save_tensors(path, t, meta)
end

local function copy(f)
  local c = {}
  for k, v in pairs(f) do c[k] = v end
  local meta = {}
  for k, v in pairs(f[".metadata"]) do meta[k] = v end
  c[".metadata"] = meta
  return c
end

local function sorted_keys(t, skip)
  local keys = {}
  for k in pairs(t) do if k ~= skip then keys[#keys + 1] = k end end
  table.sort(keys)
  return keys
end

-- a tensor like x with the values fn(table of x's values) returns, in dtype (x's by default)
local function remade(x, fn, dtype)
  local vals = fn(x:totable())
  return sift.tensor(vals, { dtype = dtype or x:dtype() })
end

local function tensor_mutations(key, x, numel_of_target)
  local out = {}
  local function add(label, t) out[#out + 1] = { label = label, value = t } end
  add("removed", false)
  add("one value short", remade(x, function(v) v[#v] = nil return v end))
  add("one value long", remade(x, function(v) v[#v + 1] = v[1] return v end))
  if x:dtype() == "f32" then
    add("as i64", remade(x, function(v) for i = 1, #v do v[i] = math.floor(v[i]) end return v end, "i64"))
    for _, bad in ipairs { { "NaN", 0 / 0 }, { "Inf", math.huge }, { "-1", -1 }, { "3e38", 3e38 } } do
      add("value 1 = " .. bad[1], remade(x, function(v) v[1] = bad[2] return v end))
    end
  else
    add("as f32", remade(x, function(v) return v end, "f32"))
  end
  if key:find("%.idx$") and numel_of_target then
    add("index -1", remade(x, function(v) v[1] = -1 return v end))
    add("index = numel", remade(x, function(v) v[#v] = numel_of_target return v end))
    add("index 2^40", remade(x, function(v) v[1] = 1 << 40 return v end))
    if x:numel() > 1 then
      add("an index repeated", remade(x, function(v) v[2] = v[1] return v end))
      add("indices reversed", remade(x, function(v)
        local r = {}
        for i = #v, 1, -1 do r[#r + 1] = v[i] end
        return r
      end))
    end
  end
  return out
end

-- the keys mutated: every counter and run key, and of the per-tensor keys (opt.I.*, sparse.I.*) those of
-- the first and the last tensor (the others take the same paths)
local function chosen(keys)
  local last = {}
  for _, k in ipairs(keys) do
    local group, i = k:match("^(%a+)%.(%d+)%.")
    if group then last[group] = math.max(last[group] or 0, tonumber(i)) end
  end
  local out = {}
  for _, k in ipairs(keys) do
    local group, i = k:match("^(%a+)%.(%d+)%.")
    if not group or tonumber(i) == 1 or tonumber(i) == last[group] then out[#out + 1] = k end
  end
  return out
end

local function fuzz_semantic(kind)
  local path, mutated = os.tmpname(), os.tmpname()
  local f = saved_checkpoint(kind, path)
  local stats = { refused = 0, accepted = 0 }
  -- the unmutated file resumes
  try(kind, path, "(unmutated)", stats)
  check(stats.accepted == 1, "%s: the unmutated checkpoint was refused", kind)
  local meta = f[".metadata"]
  for _, key in ipairs(chosen(sorted_keys(meta))) do
    local values = { false }
    for _, v in ipairs(BAD_VALUES) do values[#values + 1] = v end
    values[#values + 1] = meta[key] .. "x"
    for _, v in ipairs(values) do
      local c = copy(f)
      c[".metadata"][key] = v or nil
      write(mutated, c)
      try(kind, mutated, ("metadata %s = %s"):format(key, v and ("%q"):format(v) or "(removed)"), stats)
    end
  end
  local model = base_model()
  for _, key in ipairs(chosen(sorted_keys(f, ".metadata"))) do
    local target_numel
    local i = key:match("^sparse%.(%d+)%.idx$")
    if i then target_numel = model:param(meta["sparse." .. i .. ".name"]):numel() end
    for _, mu in ipairs(tensor_mutations(key, f[key], target_numel)) do
      local c = copy(f)
      c[key] = mu.value or nil
      write(mutated, c)
      try(kind, mutated, ("tensor %s %s"):format(key, mu.label), stats)
    end
  end
  os.remove(path)
  os.remove(mutated)
  return stats
end

for _, kind in ipairs { "sparse", "full", "lora" } do
  test(kind .. " checkpoints: every metadata value and tensor mutated, refused cleanly or resumed soundly", function()
    setup()
    local stats = fuzz_semantic(kind)
    print(("    %s: %d refused, %d accepted"):format(kind, stats.refused, stats.accepted))
    check(stats.refused > 0 and stats.accepted > 0, "%s: %d refused, %d accepted", kind, stats.refused, stats.accepted)
  end)
end

-- The AdamW moment bound (opt:_check_moments): the states of a real run pass it after every step, with
-- clipping and over epochs; a moment pushed past it, or a resume with other betas early on, is refused.
test("AdamW moments: real states pass the bound at every step; past it, refused naming the entry", function()
  local e = setup()
  local path = os.tmpname()
  for _, kind in ipairs { "sparse", "full" } do
    local m = base_model()
    local args = { model = m, method = makers[kind](m), data = e.data, tokenizer = e.tok, batch = 4, max_len = 24,
      quiet = true, epochs = 3, lr = 3e-3, clip = 0.5 }
    local tr = sift.trainer(args)
    for step = 1, 12 do
      tr:step(1)
      tr:save(path)
      local m2 = base_model()
      local a2 = {}
      for k, v in pairs(args) do a2[k] = v end
      a2.model, a2.method, a2.resume = m2, makers[kind](m2), path
      local ok, err = pcall(sift.trainer, a2)
      check(ok, "%s step %d: a real state refused: %s", kind, step, tostring(err))
    end
  end
  -- after one step, m / sqrt(v) is (1 - b1) / sqrt(1 - b2) = 3.16 at every trained entry: over the bound of
  -- betas (0.9, 0.9), 1.0
  local m = base_model()
  local tr = trainer(m, makers.full(m))
  tr:step(1)
  tr:save(path)
  local m2 = base_model()
  local ok, err = pcall(sift.trainer, { model = m2, method = makers.full(m2), data = e.data, tokenizer = e.tok, batch = 4,
    max_len = 24, quiet = true, resume = path, betas = { 0.9, 0.9 } })
  check(not ok and tostring(err):find("cannot come from this optimizer (a corrupted file, or betas other", 1, true),
    "other betas: %s", tostring(err))
  local f = sift.load_tensors(path)
  local mm, vv = f["opt.1.m"], f["opt.1.v"]
  local flat_m, flat_v = mm:reshape(mm:numel()), vv:reshape(vv:numel())
  flat_m:set(5, 8 * math.sqrt(flat_v:get(5)) + 1e-6) -- past 7.3 sqrt(v)
  write(path, f)
  m2 = base_model()
  ok, err = pcall(trainer, m2, makers.full(m2), path)
  check(not ok and tostring(err):find("AdamW moments at entry 5", 1, true), "m past the bound: %s", tostring(err))
  os.remove(path)
end)

-- random bit flips in the tensor data (after the header), 1 to 4 per case, seeded
test("sparse checkpoints: random bit flips in the tensor data", function()
  setup()
  local path, mutated = os.tmpname(), os.tmpname()
  saved_checkpoint("sparse", path)
  local fh = io.open(path, "rb")
  local bytes = fh:read("a")
  fh:close()
  local header = string.unpack("<I8", bytes) + 8
  local rng = sift.data.rng(7)
  local stats = { refused = 0, accepted = 0 }
  local cases = tonumber(os.getenv("SIFT_FUZZ_CASES") or "") or 150
  for case = 1, cases do
    local b = { bytes:byte(1, -1) }
    local flips = {}
    for _ = 1, rng:int(4) do
      local pos = header + rng:int(#bytes - header)
      local bit = rng:int(8) - 1
      b[pos] = b[pos] ~ (1 << bit)
      flips[#flips + 1] = ("%d.%d"):format(pos - 1, bit)
    end
    local out = {}
    for i = 1, #b, 4096 do out[#out + 1] = string.char(table.unpack(b, i, math.min(i + 4095, #b))) end
    fh = io.open(mutated, "wb")
    fh:write(table.concat(out))
    fh:close()
    try("sparse", mutated, ("case %d (bits %s)"):format(case, table.concat(flips, " ")), stats)
  end
  print(("    bit flips: %d refused, %d accepted"):format(stats.refused, stats.accepted))
  os.remove(path)
  os.remove(mutated)
end)

H.run()
