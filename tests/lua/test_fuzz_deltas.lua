-- test_fuzz_deltas.lua — saved deltas (s:save_delta, sift.load_delta) against mutated copies of a real
-- one: every metadata value replaced by bad values or removed; every tensor removed, one value short or
-- long, of the other dtype, holding NaN, Inf or 3e38; indices set out of range, repeated or reversed. (The
-- C test test_fuzz_loaders.c fuzzes the file's bytes and header; this fuzzes what a well-formed file says.)
--
-- Each case either fails to load, fails d:check(model) or d:apply(model) with an error message and leaves
-- the model bit for bit as it was, or applies: then every weight is finite and d:unapply(model) gives the
-- base model back bit for bit. Never a crash, never a model left half-written.
local H = dofile((arg[0]:match("^(.*)/") or ".") .. "/harness.lua")
local test, check, same_params, all_finite = H.test, H.check, H.same_params, H.all_finite

local function base_model()
  return sift.build({ arch = "gpt2", vocab_size = 64, n_layer = 2, n_head = 2, d_model = 16, max_pos = 32 },
    { task = "classify", num_labels = 2, seed = 1 })
end

local function saved_delta(path)
  local m = base_model()
  local s = sift.sparse(m, { rate = 0.05, dense = { "score%.weight" } })
  local ids = {}
  for i = 1, 4 do
    ids[i] = {}
    for j = 1, 10 do ids[i][j] = (i * 7 + j * 3) % 64 end
  end
  local b = { input_ids = ids, labels = { 0, 1, 1, 0 } }
  s:select(b)
  local opt = sift.AdamW(s, { lr = 1e-2 })
  for _ = 1, 3 do
    m:forward(b)
    m:backward()
    opt:step()
    opt:zero_grad()
  end
  s:save_delta(path)
  return sift.load_tensors(path)
end

local function try(path, label, stats, base)
  local m = base_model()
  local ok, d = pcall(sift.load_delta, path)
  local stage = "load"
  if ok then
    stage = "check"
    ok, d = pcall(function() d:check(m) return d end)
  end
  if ok then
    stage = "apply"
    ok, d = pcall(function() return d:apply(m) end)
  end
  if not ok then
    stats.refused = stats.refused + 1
    check(type(d) == "string" and #d > 0, "%s: refused at %s without a message", label, stage)
    local same, where = same_params(m, base)
    check(same, "%s: refused at %s, but the model changed (%s): %s", label, stage, tostring(where), tostring(d))
    return
  end
  stats.applied = stats.applied + 1
  local fin, where = all_finite(m)
  check(fin, "%s: applied, and %s holds a non-finite value", label, tostring(where))
  local ok2, err = pcall(d.unapply, d, m)
  check(ok2, "%s: unapply failed: %s", label, tostring(err))
  local same, w2 = same_params(m, base)
  check(same, "%s: applied and unapplied, %s is not the base's any more", label, tostring(w2))
end

local BAD_VALUES = { "", "-1", "0", "1.5", "1e400", "nan", "abc", "9223372036854775807", "16,", ",16", "16,16,16",
  "0,16", "-16,16", "99999999999,1" }

local function write(path, f, key, value)
  local t, meta = {}, {}
  for k, v in pairs(f) do if k ~= ".metadata" then t[k] = v end end
  for k, v in pairs(f[".metadata"]) do meta[k] = v end
  if key then
    if key:sub(1, 1) == "." then meta[key:sub(2)] = value or nil else t[key] = value or nil end
  end
  sift.save_tensors(path, t, meta)
end

-- a tensor with the values fn gives of x's values (flat), in x's shape when the count is unchanged
local function remade(x, fn, dtype)
  local t = sift.tensor(fn(x:reshape(x:numel()):totable()), { dtype = dtype or x:dtype() })
  return t:numel() == x:numel() and t:reshape(table.unpack(x:shape())) or t
end

test("deltas: every metadata value and tensor mutated, refused untouched or applied and unapplied exactly", function()
  local path, mutated = os.tmpname(), os.tmpname()
  local f = saved_delta(path)
  local base = base_model()
  local stats = { refused = 0, applied = 0 }
  try(path, "(unmutated)", stats, base)
  check(stats.applied == 1, "the unmutated delta did not apply")
  local keys = {}
  for k in pairs(f[".metadata"]) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local values = { false, f[".metadata"][k] .. "x" }
    for _, v in ipairs(BAD_VALUES) do values[#values + 1] = v end
    for _, v in ipairs(values) do
      write(mutated, f, "." .. k, v)
      try(mutated, ("metadata %s = %s"):format(k, v and ("%q"):format(v) or "(removed)"), stats, base)
    end
  end
  keys = {}
  for k in pairs(f) do if k ~= ".metadata" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local x = f[k]
    local muts = { { "removed", false }, { "one value short", remade(x, function(v) v[#v] = nil return v end) },
      { "one value long", remade(x, function(v) v[#v + 1] = v[1] return v end) } }
    if x:dtype() == "f32" then
      muts[#muts + 1] = { "as i32", remade(x, function(v) for i = 1, #v do v[i] = math.floor(v[i]) end return v end, "i32") }
      for _, bad in ipairs { { "NaN", 0 / 0 }, { "Inf", math.huge }, { "3e38", 3e38 } } do
        muts[#muts + 1] = { "value 1 = " .. bad[1], remade(x, function(v) v[1] = bad[2] return v end) }
      end
    else
      local numel = base:param(k:gsub("%.indices$", "")):numel()
      muts[#muts + 1] = { "as f32", remade(x, function(v) return v end, "f32") }
      muts[#muts + 1] = { "index -1", remade(x, function(v) v[1] = -1 return v end) }
      muts[#muts + 1] = { "index = numel", remade(x, function(v) v[#v] = numel return v end) }
      muts[#muts + 1] = { "an index repeated", remade(x, function(v) v[2] = v[1] return v end) }
      muts[#muts + 1] = { "indices reversed", remade(x, function(v)
        local r = {}
        for i = #v, 1, -1 do r[#r + 1] = v[i] end
        return r
      end) }
    end
    for _, mu in ipairs(muts) do
      write(mutated, f, k, mu[2])
      try(mutated, ("tensor %s %s"):format(k, mu[1]), stats, base)
    end
  end
  print(("    %d refused, %d applied"):format(stats.refused, stats.applied))
  os.remove(path)
  os.remove(mutated)
end)

H.run()
