-- experiment.lua — what the experiment scripts in scripts/ share: command-line options (--name value or
-- --name=value, typed by their defaults; --flag / --no-flag for booleans; --help), the model and task they
-- run on (a Hugging Face folder or llama2.c .bin, a data set sift.data.load knows), batches of consecutive
-- rows, and results written as JSON (atomically) with their figures (SVG). Under mpiexec rank 0 alone prints.
-- A script starts with
--   package.path = (arg[0]:match("^(.*)/") or ".") .. "/lib/?.lua;" .. package.path
--   local X = require "experiment"
-- What it does not do: train or measure (the scripts call sift's functions for that).
local M = {}

-- under mpiexec every rank runs the script (the analyses and training split their rows over the ranks);
-- rank 0 alone prints, as sift.train does, and writes (sift.write_file)
if sift.dist.rank() ~= 0 then print = function() end end

-- A usage error: the message on stderr and exit status 2 (no traceback: nothing is broken).
function M.fail(fmt, ...)
  io.stderr:write((arg and arg[0] or "script"), ": ", fmt:format(...), "\n")
  os.exit(2)
end

-- M.options(spec, about) -> opts. spec: list of {name, default, help}; a default's type types the option
-- (integer, number, string — "" for none — or boolean). Unknown options, missing values and malformed numbers are usage errors naming the option.
function M.options(spec, about)
  local by_name, opts = {}, {}
  for _, o in ipairs(spec) do
    by_name[o[1]] = o
    opts[o[1]] = o[2]
  end
  local function usage()
    local lines = { about, "", "options:" }
    for _, o in ipairs(spec) do
      local d = o[2]
      local shown = type(d) == "boolean" and (d and "on" or "off") or tostring(d)
      lines[#lines + 1] = ("  --%-14s %s (default %s)"):format(o[1], o[3], shown)
    end
    return table.concat(lines, "\n")
  end
  local args, i = arg or {}, 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then
      print(usage())
      os.exit(0)
    end
    local name, value = a:match("^%-%-([%w_]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w_]+)$") end
    if not name then M.fail("unexpected argument %q (options are --name value; --help lists them)", a) end
    local negated = false
    if not by_name[name] and name:match("^no_") and by_name[name:sub(4)] and type(by_name[name:sub(4)][2]) == "boolean" then
      name, negated = name:sub(4), true
    end
    local o = by_name[name]
    if not o then M.fail("unknown option --%s (--help lists them)", name) end
    local kind = type(o[2])
    if kind == "boolean" then
      if value then M.fail("--%s takes no value", name) end
      opts[name] = not negated
    else
      if not value then
        i = i + 1
        value = args[i]
        if value == nil then M.fail("--%s needs a value", name) end
      end
      if kind == "number" then
        local v = tonumber(value)
        if not v then M.fail("--%s expects a number, got %q", name, value) end
        opts[name] = math.type(o[2]) == "integer" and math.tointeger(v) or v
        if math.type(o[2]) == "integer" and opts[name] == nil then M.fail("--%s expects an integer, got %q", name, value) end
      else
        opts[name] = value
      end
    end
    i = i + 1
  end
  return opts
end

-- comma-separated numbers, e.g. "0.001,0.01,0.1"
function M.numbers(s, name)
  local out = {}
  for part in tostring(s):gmatch("[^,]+") do
    local v = tonumber(part)
    if not v then M.fail("--%s: %q is not a number", name, part) end
    out[#out + 1] = v
  end
  if #out == 0 then M.fail("--%s: no numbers", name) end
  return out
end

M.shared = sift.data.shared_root()

-- The default model: gpt2-4m from ../shared (or $SIFT_SHARED); nil when it is not there.
function M.default_model()
  local p = M.shared .. "/models/gpt2-4m"
  local f = io.open(p .. "/config.json")
  if f then f:close() return p end
  return nil
end

-- The task: train and dev sets of a data set sift.data.load knows ("sst2", "cola", ... or a path), the number
-- of labels its head needs (1 = regression; nil for instruction data: lm = true), and the tokenizer of the
-- model. rows / dev_rows: 0 = all; the training rows are shuffled with seed first (the dev rows keep their
-- order). A data set without a dev split (instruction data) gives up its last shuffled rows as one
-- (dev_rows of them, or 10 % up to 200; held_out = true), before rows takes the training rows.
function M.task(opts)
  if not opts.model or opts.model == "" then
    M.fail("no model: pass --model PATH (a Hugging Face folder or llama2.c .bin); gpt2-4m is looked for in %s/models",
      M.shared)
  end
  local ok, tok = pcall(sift.tokenizer, opts.model)
  if not ok then M.fail("cannot load a tokenizer from %s: %s", opts.model, tostring(tok)) end
  local okt, train = pcall(sift.data.load, opts.task, { split = "train" })
  if not okt then M.fail("cannot load the task %s: %s", opts.task, tostring(train)) end
  local okd, dev = pcall(sift.data.load, opts.task, { split = "dev" })
  if not okd then dev = nil end
  train = train:shuffle(opts.seed or 0)
  local held = false
  if not dev and #train >= 20 then -- no dev split (instruction data): hold out the shuffled rows' last ones
    local n = (opts.dev_rows or 0) > 0 and math.min(opts.dev_rows, #train // 2) or math.min(200, #train // 10)
    dev, train, held = train:slice(#train - n + 1, #train), train:take(#train - n), true
  end
  if (opts.rows or 0) > 0 then train = train:take(math.min(opts.rows, #train)) end
  if dev and (opts.dev_rows or 0) > 0 then dev = dev:take(math.min(opts.dev_rows, #dev)) end
  -- instruction data (jsonl) has no classes: a language-model task
  return { tok = tok, train = train, dev = dev, held_out = held, num_labels = train.num_labels,
    lm = train.num_labels == nil }
end

-- The pre-trained model with a fresh task head (seed = the head's draw; a language model for instruction
-- data), or with random = true a model of the same shape with Hugging Face's random initialisation (seed =
-- its draw).
function M.model(opts, task, random, seed)
  local how = task.lm and { task = "lm" } or { task = "classify", num_labels = task.num_labels, seed = seed or 0 }
  local ok, m = pcall(sift.load, opts.model, how)
  if not ok then M.fail("cannot load the model %s: %s", opts.model, tostring(m)) end
  if random then
    how.seed = seed or 0
    return sift.build(m.config, how)
  end
  return m
end

-- n batches of `size` consecutive rows of ds (encoded to at most max_len tokens), from row `from` (1-based)
function M.batches(ds, tok, n, size, max_len, from)
  local out = {}
  from = from or 1
  for i = 1, n do
    local a = from + (i - 1) * size
    if a + size - 1 > #ds then M.fail("the data has %d rows; %d batches of %d need %d", #ds, n, size, from - 1 + n * size) end
    out[i] = sift.data.encode(ds:slice(a, a + size - 1), tok, { max_len = max_len, pad_id = 0 })
  end
  return out
end

-- results to path as JSON (atomically); nothing when path is "" or false
function M.write_json(path, value)
  if not path or path == "" then return end
  sift.write_file(path, sift.data.json.encode(value) .. "\n")
  print("wrote " .. path)
end

-- a figure as SVG next to the JSON (out "r.json" -> "r.NAME.svg"); nothing without an out path
function M.save_figure(out, name, fig)
  if not out or out == "" then return end
  local path = out:gsub("%.json$", "") .. "." .. name .. ".svg"
  sift.plot.save(fig, path)
  print("wrote " .. path)
end

return M
