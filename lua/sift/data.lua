-- sift/data.lua — labelled datasets for fine-tuning (becomes `sift.data`).
--
--   local ds = sift.data.load("sst2", {split = "dev"})        -- task name under $SIFT_SHARED/data
--   local ds = sift.data.load("../shared/data/rte")           -- a folder: the split picks the file
--   local ds = sift.data.load("my/file.tsv", {format = "cola"})
--
-- A dataset is a plain array of rows {text = string, text_b = string|nil, label = integer|number|nil}
-- (`#ds`, `ds[i]`) with the fields name, format, split, num_labels (1 = regression, nil = no labels),
-- label_names, path and note, and the methods shuffle(seed), take(n), slice(i, j), batches(size),
-- labels(), count_labels(), filter(fn). Everything here is pure Lua 5.4.
local M = {}
local checked = require "sift.options" -- refuses option keys a public function does not know

M.formats = { "sst2", "cola", "rte", "mrpc", "stsb", "trec", "jsonl" }

local NUM_LABELS = { sst2 = 2, cola = 2, rte = 2, mrpc = 2, stsb = 1, trec = 6 }
local LABEL_NAMES = {
  sst2 = { "negative", "positive" },
  cola = { "unacceptable", "acceptable" },
  rte = { "entailment", "not_entailment" },
  mrpc = { "not_equivalent", "equivalent" },
  -- the harvardnlp TREC.*.all numbering (checked against the TREC-6 class sizes of train.txt)
  trec = { "DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM" },
}

local function known_formats() return table.concat(M.formats, ", ") end

---------------------------------------------------------------------------------------------------
-- deterministic PRNG: splitmix64 on Lua 5.4 integers (64-bit wrap-around arithmetic)
---------------------------------------------------------------------------------------------------
local Rng = {}
Rng.__index = Rng

local function to_seed(seed, who)
  if seed == nil then return 0 end
  local s = math.tointeger(seed)
  if not s then error((who or "seed") .. ": seed must be an integer, got " .. tostring(seed), 3) end
  return s
end

-- M.rng(seed) → generator with :next() (64-bit integer), :int(n) (uniform 1..n), :float() ([0, 1)).
-- The same seed gives the same sequence on every machine.
function M.rng(seed) return setmetatable({ state = to_seed(seed, "sift.data.rng") }, Rng) end

function Rng:next()
  local z = self.state + 0x9E3779B97F4A7C15
  self.state = z
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

function Rng:int(n) -- uniform integer in 1..n without modulo bias
  assert(math.type(n) == "integer" and n >= 1, "rng:int(n) needs a positive integer")
  local limit = (math.maxinteger // n) * n -- multiple of n not above 2^63 - 1
  while true do
    local r = self:next() >> 1 -- 63 random bits, non-negative
    if r < limit then return r % n + 1 end
  end
end

function Rng:float() return (self:next() >> 11) * (1.0 / 9007199254740992.0) end

---------------------------------------------------------------------------------------------------
-- datasets
---------------------------------------------------------------------------------------------------
local Dataset = {}
Dataset.__index = Dataset
M.Dataset = Dataset

local META_FIELDS = { "name", "format", "split", "num_labels", "label_names", "path", "note" }

local function derive(ds, rows)
  local out = setmetatable(rows or {}, Dataset)
  for _, k in ipairs(META_FIELDS) do out[k] = ds[k] end
  return out
end

-- M.new(rows, meta) wraps an array of rows as a dataset (meta: name, format, split, num_labels, …).
function M.new(rows, meta)
  local ds = setmetatable({}, Dataset)
  for i = 1, #rows do ds[i] = rows[i] end
  for _, k in ipairs(META_FIELDS) do ds[k] = meta and meta[k] end
  return ds
end

function M.is_dataset(x) return getmetatable(x) == Dataset end

function Dataset:__tostring()
  local s = string.format("dataset %s/%s: %d rows", tostring(self.name), tostring(self.split), #self)
  if self.num_labels == 1 then s = s .. ", regression"
  elseif self.num_labels then s = s .. ", " .. self.num_labels .. " labels" end
  return s
end

-- A new dataset with the rows in a random order (Fisher–Yates with splitmix64; same seed → same order).
function Dataset:shuffle(seed)
  local rng = M.rng(to_seed(seed, "ds:shuffle"))
  local n = #self
  local out = derive(self)
  for i = 1, n do out[i] = self[i] end
  for i = n, 2, -1 do
    local j = rng:int(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

-- The rows i..j (1-based, inclusive; negative indices count from the end like string.sub).
function Dataset:slice(i, j)
  local n = #self
  i = math.tointeger(i or 1) or error("ds:slice: i must be an integer", 2)
  j = math.tointeger(j or n) or error("ds:slice: j must be an integer", 2)
  if i < 0 then i = math.max(n + i + 1, 1) elseif i == 0 then i = 1 end
  if j < 0 then j = n + j + 1 elseif j > n then j = n end
  local out = derive(self)
  for k = i, j do out[#out + 1] = self[k] end
  return out
end

-- The first n rows (all of them when n ≥ #ds).
function Dataset:take(n)
  n = math.tointeger(n) or error("ds:take: n must be an integer", 2)
  if n <= 0 then return derive(self) end
  return self:slice(1, math.min(n, #self))
end

function Dataset:filter(fn)
  local out = derive(self)
  for i = 1, #self do if fn(self[i], i) then out[#out + 1] = self[i] end end
  return out
end

-- for batch, index in ds:batches(size) do … end — batch = array of rows; the last one may be smaller.
function Dataset:batches(size)
  size = math.tointeger(size) or error("ds:batches: size must be an integer", 2)
  if size < 1 then error("ds:batches: size must be positive", 2) end
  local n, pos, index = #self, 1, 0
  return function()
    if pos > n then return nil end
    local b = {}
    for k = pos, math.min(pos + size - 1, n) do b[#b + 1] = self[k] end
    pos = pos + size
    index = index + 1
    return b, index
  end
end

-- Array of the labels in row order (rows without a label leave holes).
function Dataset:labels()
  local out = {}
  for i = 1, #self do out[i] = self[i].label end
  return out
end

-- Table label → count; for classification every class 0..C-1 is present (possibly 0).
function Dataset:count_labels()
  local counts = {}
  if self.num_labels and self.num_labels > 1 then
    for c = 0, self.num_labels - 1 do counts[c] = 0 end
  end
  for i = 1, #self do
    local l = self[i].label
    if l ~= nil then counts[l] = (counts[l] or 0) + 1 end
  end
  return counts
end

---------------------------------------------------------------------------------------------------
-- JSON (a small, complete decoder: objects, arrays, strings with all escapes, numbers, literals)
---------------------------------------------------------------------------------------------------
local json = {}
M.json = json

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function jerr(pos, msg) error({ json_pos = pos, msg = msg }, 0) end

local function skip_ws(s, pos) return (s:find("[^ \t\r\n]", pos)) or #s + 1 end

local decode_value

local function decode_string(s, pos) -- pos at the opening quote
  local parts, i = {}, pos + 1
  while true do
    local j = s:find('["\\]', i)
    if not j then jerr(pos, "unterminated string") end
    if j > i then parts[#parts + 1] = s:sub(i, j - 1) end
    if s:byte(j) == 34 then return table.concat(parts), j + 1 end
    local c = s:sub(j + 1, j + 1)
    if c == "u" then
      local hex = s:match("^%x%x%x%x", j + 2)
      if not hex then jerr(j, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      i = j + 6
      if cp >= 0xD800 and cp <= 0xDBFF then -- high surrogate: needs a low one
        local lo = s:match("^\\u(%x%x%x%x)", i)
        lo = lo and tonumber(lo, 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
          i = i + 6
        else
          cp = 0xFFFD
        end
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        cp = 0xFFFD -- lone low surrogate
      end
      parts[#parts + 1] = utf8.char(cp)
    else
      local e = ESC[c]
      if not e then jerr(j, "bad escape '\\" .. c .. "'") end
      parts[#parts + 1] = e
      i = j + 2
    end
  end
end

local function decode_array(s, pos)
  local arr, n = {}, 0
  pos = skip_ws(s, pos + 1)
  if s:byte(pos) == 93 then return arr, pos + 1 end
  while true do
    local v
    v, pos = decode_value(s, pos)
    n = n + 1
    arr[n] = v
    pos = skip_ws(s, pos)
    local c = s:byte(pos)
    if c == 93 then return arr, pos + 1 end
    if c ~= 44 then jerr(pos, "expected ',' or ']'") end
    pos = skip_ws(s, pos + 1)
  end
end

local function decode_object(s, pos)
  local obj = {}
  pos = skip_ws(s, pos + 1)
  if s:byte(pos) == 125 then return obj, pos + 1 end
  while true do
    if s:byte(pos) ~= 34 then jerr(pos, "expected a string key") end
    local k, v
    k, pos = decode_string(s, pos)
    pos = skip_ws(s, pos)
    if s:byte(pos) ~= 58 then jerr(pos, "expected ':'") end
    v, pos = decode_value(s, skip_ws(s, pos + 1))
    obj[k] = v
    pos = skip_ws(s, pos)
    local c = s:byte(pos)
    if c == 125 then return obj, pos + 1 end
    if c ~= 44 then jerr(pos, "expected ',' or '}'") end
    pos = skip_ws(s, pos + 1)
  end
end

function decode_value(s, pos)
  pos = skip_ws(s, pos)
  local c = s:sub(pos, pos)
  if c == "{" then return decode_object(s, pos)
  elseif c == "[" then return decode_array(s, pos)
  elseif c == '"' then return decode_string(s, pos)
  elseif s:find("^true", pos) then return true, pos + 4
  elseif s:find("^false", pos) then return false, pos + 5
  elseif s:find("^null", pos) then return json.null, pos + 4
  end
  local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  local v = num and tonumber(num)
  if not v then jerr(pos, c == "" and "unexpected end of input" or "unexpected character '" .. c .. "'") end
  return v, pos + #num
end

-- json.null is a unique sentinel for JSON null (so that arrays keep their length).
json.null = setmetatable({}, { __tostring = function() return "null" end })

-- json.decode(str) → value; raises "json: <message> at column N" on malformed input.
function json.decode(s)
  local ok, v, pos = pcall(decode_value, s, 1)
  if ok then
    pos = skip_ws(s, pos)
    if pos <= #s then ok, v = false, { json_pos = pos, msg = "trailing characters" } end
  end
  if not ok then
    if type(v) == "table" and v.json_pos then
      error(string.format("invalid JSON at column %d: %s", v.json_pos, v.msg), 2)
    end
    error(v, 0)
  end
  return v
end

-- json.encode(value) -> string: tables with positive integer keys only are arrays (up to the largest key,
-- holes as null; at most half of it holes), other tables objects with their string keys sorted (stable files); numbers in the shortest form that reads back the same (integers
-- as integers; NaN and infinities, which JSON lacks, as null); json.null as null. Raises on a cycle, a
-- function or userdata value, or a non-string key in an object.
local function encode_string(v)
  return '"' .. v:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function encode_number(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if math.type(v) == "integer" then return tostring(v) end
  for digits = 15, 17 do
    local s = ("%." .. digits .. "g"):format(v)
    if tonumber(s) == v then return s end
  end
end

local function encode_value(v, out, seen)
  local t = type(v)
  if v == json.null or v == nil then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then out[#out + 1] = encode_number(v)
  elseif t == "string" then out[#out + 1] = encode_string(v)
  elseif t == "table" then
    if seen[v] then error("json.encode: a table contains itself", 0) end
    seen[v] = true
    local n, count, ints = 0, 0, true -- an array: positive integer keys only (holes become null)
    for k in pairs(v) do
      count = count + 1
      if math.type(k) == "integer" and k > 0 then n = math.max(n, k) else ints = false end
    end
    if ints and n <= 2 * count + 16 then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, seen)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("json.encode: an object key is a " .. type(k) .. " (" .. tostring(k) .. ")", 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k) .. ":"
        encode_value(v[k], out, seen)
      end
      out[#out + 1] = "}"
    end
    seen[v] = nil
  else
    error("json.encode: cannot encode a " .. t, 0)
  end
end

function json.encode(v)
  local out = {}
  encode_value(v, out, {})
  return table.concat(out)
end

---------------------------------------------------------------------------------------------------
-- file helpers
---------------------------------------------------------------------------------------------------
local BOM = "\239\187\191"

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function is_dir(path)
  local f = io.open(path, "r")
  if not f then return false end
  local ok, _, code = f:read(1)
  f:close()
  return ok == nil and code == 21 -- EISDIR
end

local function basename(path) return (path:gsub("/+$", ""):match("([^/]*)$")) end

-- Calls fn(line, lineno) for every line (BOM of the first line and a trailing '\r' removed).
local function each_line(path, fn)
  local f, err = io.open(path, "r")
  if not f then error("sift.data.load: cannot open " .. tostring(err), 0) end
  local n = 0
  for line in f:lines() do
    n = n + 1
    if n == 1 and line:sub(1, 3) == BOM then line = line:sub(4) end
    if line:sub(-1) == "\r" then line = line:sub(1, -2) end
    local ok, e = pcall(fn, line, n)
    if not ok then f:close() error(e, 0) end
  end
  f:close()
end

local function split_tabs(line)
  local cols = {}
  for c in (line .. "\t"):gmatch("([^\t]*)\t") do cols[#cols + 1] = c end
  return cols
end

---------------------------------------------------------------------------------------------------
-- per-format row parsers: parse(line, lineno, path, rows) appends rows or raises "path:line: message"
---------------------------------------------------------------------------------------------------
local function fail(path, n, fmt, ...) error(string.format("%s:%d: " .. fmt, path, n, ...), 0) end

local function short(s) return #s > 60 and s:sub(1, 57) .. "..." or s end

local function label_text_parser(format, maxlabel)
  return function(line, n, path, rows)
    if line:match("^%s*$") then return end
    local lab, text = line:match("^(%S+)%s(.*)$")
    local l = lab and math.tointeger(tonumber(lab))
    if not lab or text == "" then
      fail(path, n, "%s: expected '<label> <text>', got '%s'", format, short(line))
    elseif not l or l < 0 or l > maxlabel then
      fail(path, n, "%s: label must be an integer 0..%d, got '%s'", format, maxlabel, lab)
    end
    rows[#rows + 1] = { text = text, label = l }
  end
end

local function binary(path, n, format, s)
  if s == "0" then return 0 elseif s == "1" then return 1 end
  fail(path, n, "%s: label must be 0 or 1, got '%s'", format, short(s))
end

local PARSERS = {
  sst2 = label_text_parser("sst2", 1),
  trec = label_text_parser("trec", 5),

  -- CoLA (GLUE, no header): source, label, original annotation, sentence
  cola = function(line, n, path, rows)
    if line == "" then return end
    local c = split_tabs(line)
    if #c ~= 4 then fail(path, n, "cola: expected 4 tab-separated columns, got %d", #c) end
    rows[#rows + 1] = { text = c[4], label = binary(path, n, "cola", c[2]) }
  end,

  -- RTE (GLUE, header "index sentence1 sentence2 label"); a test file without labels has 3 columns
  rte = function(line, n, path, rows)
    if line == "" then return end
    local c = split_tabs(line)
    if n == 1 and c[1] == "index" then return end
    if #c ~= 4 and #c ~= 3 then fail(path, n, "rte: expected 4 tab-separated columns, got %d", #c) end
    local label
    if #c == 4 then
      if c[4] == "entailment" then label = 0
      elseif c[4] == "not_entailment" then label = 1
      else fail(path, n, "rte: label must be entailment or not_entailment, got '%s'", short(c[4])) end
    end
    rows[#rows + 1] = { text = c[2], text_b = c[3], label = label }
  end,

  -- MRPC (UTF-8 BOM, header "Quality #1 ID #2 ID #1 String #2 String")
  mrpc = function(line, n, path, rows)
    if line == "" then return end
    local c = split_tabs(line)
    if n == 1 and c[1] == "Quality" then return end
    if #c ~= 5 then fail(path, n, "mrpc: expected 5 tab-separated columns, got %d", #c) end
    rows[#rows + 1] = { text = c[4], text_b = c[5], label = binary(path, n, "mrpc", c[1]) }
  end,

  -- STS benchmark: genre, file, year, id, score, sentence1, sentence2[, source1, source2]
  stsb = function(line, n, path, rows)
    if line == "" then return end
    local c = split_tabs(line)
    if #c < 7 then fail(path, n, "stsb: expected at least 7 tab-separated columns, got %d", #c) end
    local score = tonumber(c[5])
    if not score or score < 0 or score > 5 then
      fail(path, n, "stsb: score (column 5) must be a number in 0..5, got '%s'", short(c[5]))
    end
    rows[#rows + 1] = { text = c[6], text_b = c[7], label = score + 0.0 }
  end,
}

-- jsonl: instruction data ({instruction, input, output[, status]}) or generic rows with text/text_b/label
local function jsonl_parser(keep_all)
  return function(line, n, path, rows)
    if line:match("^%s*$") then return end
    local ok, obj = pcall(json.decode, line)
    if not ok then fail(path, n, "jsonl: %s", tostring(obj):gsub("^.-invalid JSON", "invalid JSON")) end
    if type(obj) ~= "table" or obj[1] ~= nil then fail(path, n, "jsonl: expected a JSON object per line") end
    local function str(k)
      local v = obj[k]
      if v == nil or v == json.null then return nil end
      if type(v) ~= "string" then fail(path, n, "jsonl: field '%s' must be a string", k) end
      return v
    end
    local status = str("status")
    if status ~= nil and status ~= "ok" and not keep_all then return end
    local row
    if obj.instruction ~= nil then
      local text, input = str("instruction") or "", str("input")
      if input and input ~= "" then text = text .. "\n" .. input end
      row = { text = text, text_b = str("output") }
    elseif obj.text ~= nil then
      local label = obj.label
      if label == json.null then label = nil end
      if label ~= nil and (type(label) ~= "number" or label ~= label or math.abs(label) == math.huge) then
        fail(path, n, "jsonl: label must be a finite number, got %s", short(tostring(label)))
      end
      row = { text = str("text"), text_b = str("text_b"), label = label }
    else
      fail(path, n, "jsonl: expected the fields instruction/input/output or text[/text_b/label]")
    end
    rows[#rows + 1] = row
  end
end

---------------------------------------------------------------------------------------------------
-- locating files
---------------------------------------------------------------------------------------------------
local WORDS = {
  sst2 = "sst2", sst = "sst2", cola = "cola", rte = "rte", mrpc = "mrpc", msrp = "mrpc",
  stsb = "stsb", sts = "stsb", stsbenchmark = "stsb", trec = "trec", trec6 = "trec",
  instruct = "jsonl", alpaca = "jsonl", jsonl = "jsonl",
}

-- Guesses the format from the path: the file name first, then the folders from the innermost out.
function M.guess_format(path)
  local comps = {}
  for c in path:gmatch("[^/]+") do comps[#comps + 1] = c:lower() end
  for i = #comps, 1, -1 do
    local c = comps[i]
    if c:match("%.jsonl$") then return "jsonl" end
    for w in c:gmatch("%w+") do if WORDS[w] then return WORDS[w] end end
  end
  return nil
end

local SPLIT_ALIAS = { validation = "dev", valid = "dev", val = "dev" }

local function split_from_filename(path)
  local b = basename(path):lower()
  for w in b:gmatch("%a+") do
    if w == "train" or w == "dev" or w == "test" then return w end
    if SPLIT_ALIAS[w] then return SPLIT_ALIAS[w] end
  end
  return nil
end

local function list_jsonl(dir)
  local ok, p = pcall(io.popen, "ls -1 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
  if not ok or not p then return {} end
  local out = {}
  for l in p:lines() do if l:match("%.jsonl$") then out[#out + 1] = l end end
  p:close()
  table.sort(out)
  return out
end

-- Picks the file of `split` inside the folder `dir` → path, note.
local function split_file(dir, format, split)
  local names
  if format == "sst2" or format == "trec" then names = { split .. ".txt" }
  elseif format == "cola" or format == "rte" or format == "mrpc" then names = { split .. ".tsv" }
  elseif format == "stsb" then names = { "sts-" .. split .. ".csv", split .. ".csv" }
  elseif format == "jsonl" then names = { split .. ".jsonl" } end
  for _, nm in ipairs(names) do
    local p = dir .. "/" .. nm
    if exists(p) then return p end
  end
  if format == "trec" and split == "dev" and exists(dir .. "/test.txt") then
    return dir .. "/test.txt", "TREC has no dev split: 'dev' is test.txt (500 questions)"
  end
  if format == "jsonl" and split == "train" then
    local files = list_jsonl(dir)
    if #files == 1 then return dir .. "/" .. files[1] end
  end
  local tried = {}
  for i, nm in ipairs(names) do tried[i] = dir .. "/" .. nm end
  error(string.format("sift.data.load: no '%s' split for %s (looked for %s)", split, format,
    table.concat(tried, ", ")), 0)
end

local NAME_ALIAS = { ["sst-2"] = "sst2", ["sts-b"] = "stsb", alpaca = "instruct", jsonl = "instruct" }

function M.shared_root() return os.getenv("SIFT_SHARED") or "../shared" end

-- M.resolve(name_or_path, opts) → file path, format, split, name, note (what load would read).
function M.resolve(name_or_path, opts)
  opts = opts or {}
  if type(name_or_path) ~= "string" or name_or_path == "" then
    error("sift.data.load: expected a task name, folder or file, got " .. tostring(name_or_path), 3)
  end
  local path, name = name_or_path, nil
  if not exists(path) then
    local bare = NAME_ALIAS[path:lower()] or path
    local p = M.shared_root() .. "/data/" .. bare
    if path:find("/", 1, true) then
      error(string.format("sift.data.load: '%s' not found", name_or_path), 0)
    elseif exists(p) then
      path, name = p, bare
    else
      error(string.format("sift.data.load: '%s' not found (no such file or folder, nor %s; tasks: %s)",
        name_or_path, p, "sst2, cola, rte, mrpc, stsb, trec, instruct"), 0)
    end
  end
  local format = opts.format
  if format ~= nil and not (NUM_LABELS[format] or format == "jsonl") then
    error(string.format("sift.data.load: unknown format '%s' (known: %s)", tostring(format), known_formats()), 0)
  end
  format = format or M.guess_format(path)
  if not format then
    error(string.format("sift.data.load: cannot guess the format of '%s'; pass {format = ...} (known: %s)",
      path, known_formats()), 0)
  end
  local split, file, note = opts.split, path, nil
  if split ~= nil then split = SPLIT_ALIAS[split] or split end
  if is_dir(path) then
    split = split or "train"
    file, note = split_file(path:gsub("/+$", ""), format, split)
    name = name or (format ~= "jsonl" and format or basename(path))
  else
    split = split or split_from_filename(path)
    name = name or (format ~= "jsonl" and format or (basename(path):gsub("%.[^.]*$", "")))
  end
  return file, format, split, name, note
end

-- M.load(name_or_path, {split =, format =, all = bool}) → dataset (see the top of this file).
-- jsonl: only rows with "status": "ok" (or without a status) unless opts.all.
function M.load(name_or_path, opts)
  if opts ~= nil and type(opts) ~= "table" then error("sift.data.load: opts must be a table", 2) end
  opts = checked(opts, "sift.data.load", { "split", "format", "all" }) or {}
  local file, format, split, name, note = M.resolve(name_or_path, opts)
  local parse = format == "jsonl" and jsonl_parser(opts.all) or PARSERS[format]
  local rows = {}
  each_line(file, function(line, n) parse(line, n, file, rows) end)
  return M.new(rows, {
    name = name, format = format, split = split, num_labels = NUM_LABELS[format],
    label_names = LABEL_NAMES[format], path = file, note = note,
  })
end

---------------------------------------------------------------------------------------------------
-- encoding rows into a model batch
---------------------------------------------------------------------------------------------------
local function append(dst, src) for i = 1, #src do dst[#dst + 1] = src[i] end return dst end

-- M.encode(ds_or_rows, tokenizer, opts) → {input_ids = {{…}}, attention_mask = {{…}}, labels = {…}}.
-- opts: bos (passed to tokenizer:encode), sep (pairs: a string joining text and text_b before encoding,
-- default " ", or an id / table of ids put between the separately encoded parts), max_len (default 64;
-- truncation), pad_id (default 0), pad_to (fixed length T instead of the longest row), task = "lm"
-- (labels = B×T copies of the ids, -100 on padding, and on the text part when mask_prompt), eos (an id
-- appended after the text, kept under truncation). Labels are omitted unless every row has one.
function M.encode(rows, tok, opts)
  opts = checked(opts, "sift.data.encode",
    { "max_len", "pad_id", "pad_to", "bos", "eos", "sep", "mask_prompt", "task", "tokenizer" }) or {}
  if type(rows) ~= "table" then error("sift.data.encode: expected a dataset or an array of rows", 2) end
  if tok == nil then error("sift.data.encode: a tokenizer is needed", 2) end
  local max_len = opts.max_len or 64
  local pad_id = opts.pad_id or 0
  if opts.pad_to then max_len = math.min(max_len, opts.pad_to) end
  local sep = opts.sep
  if sep == nil then sep = " " end
  local sep_ids = type(sep) == "number" and { sep } or (type(sep) == "table" and sep or nil)
  local lm = opts.task == "lm"
  local ids_all, prompt_len, longest, all_labelled = {}, {}, 0, true
  for i = 1, #rows do
    local r = rows[i]
    if type(r) ~= "table" or type(r.text) ~= "string" then
      error(string.format("sift.data.encode: row %d has no text", i), 2)
    end
    local ids, plen
    if r.text_b == nil then
      ids = tok:encode(r.text, { bos = opts.bos })
      plen = 0
    elseif sep_ids then
      ids = append({}, tok:encode(r.text, { bos = opts.bos }))
      append(ids, sep_ids)
      plen = #ids
      append(ids, tok:encode(r.text_b, { bos = false }))
    else
      ids = tok:encode(r.text .. sep .. r.text_b, { bos = opts.bos })
      if lm and opts.mask_prompt then plen = #tok:encode(r.text .. sep, { bos = opts.bos }) end
    end
    local limit = math.min(#ids, opts.eos and max_len - 1 or max_len)
    local t = {} -- a copy: the tokenizer's table is never modified
    for k = 1, limit do t[k] = ids[k] end
    if opts.eos then t[#t + 1] = opts.eos end
    ids = t
    ids_all[i], prompt_len[i] = ids, plen
    if #ids > longest then longest = #ids end
    if r.label == nil then all_labelled = false end
  end
  local T = math.max(opts.pad_to or longest, 1)
  local input_ids, mask, lm_labels = {}, {}, {}
  for i, ids in ipairs(ids_all) do
    local row, m, lab = {}, {}, {}
    for k = 1, T do
      local id = ids[k]
      row[k] = id or pad_id
      m[k] = id and 1 or 0
      if lm then lab[k] = (id and not (opts.mask_prompt and k <= prompt_len[i])) and id or -100 end
    end
    input_ids[i], mask[i], lm_labels[i] = row, m, lab
  end
  local batch = { input_ids = input_ids, attention_mask = mask }
  if lm then
    batch.labels = lm_labels
  elseif all_labelled and #rows > 0 then
    local labels = {}
    for i = 1, #rows do labels[i] = rows[i].label end
    batch.labels = labels
  end
  return batch
end

-- M.loss_terms(batch, task) → the number of terms the batch's mean loss averages: its rows
-- (classification, regression; every row needs a label), or its next-token targets for task "lm" (the
-- model shifts labels left by one, so a row's first label is no target). A share of a batch's loss is
-- a part's terms over the whole's: what model:backward(share) scales by when a batch runs in parts.
function M.loss_terms(b, task)
  if task ~= "lm" then
    if not b.labels then error("every row of a classification batch needs a label (its loss term)", 0) end
    return #b.labels
  end
  local n = 0
  for _, row in ipairs(b.labels or {}) do
    for t = 2, #row do if row[t] ~= -100 then n = n + 1 end end
  end
  return n
end

-- M.rows_of(batch, i, j) → the batch of rows i..j of an encoded batch (every per-row field sliced, the
-- rest shared).
function M.rows_of(b, i, j)
  if type(b) ~= "table" or type(b.input_ids) ~= "table" then
    error("sift.data.rows_of: expected an encoded batch (input_ids as a table of rows)", 2)
  end
  local B, out = #b.input_ids, {}
  if math.type(i) ~= "integer" or math.type(j) ~= "integer" or i < 1 or j > B or j < i - 1 then
    error(("sift.data.rows_of: rows %s..%s are not within the batch's 1..%d"):format(tostring(i), tostring(j), B), 2)
  end
  for k, v in pairs(b) do
    if type(v) == "table" and #v == B then out[k] = table.move(v, i, j, 1, {}) else out[k] = v end
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- metrics live in sift/metrics.lua (init.lua installs them as sift.metrics); also reachable from here
---------------------------------------------------------------------------------------------------
do
  local ok, metrics = pcall(require, "sift.metrics")
  if ok and type(metrics) == "table" then M.metrics = metrics end
end
return M
