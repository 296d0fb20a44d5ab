-- test_data.lua — sift.data (loaders, dataset methods, encode, JSON) and sift.metrics.
-- Runs under build/sift-repl (tests/run_all.sh) or plain lua5.4 from the repo root.
package.path = "./lua/?.lua;./tests/lua/?.lua;" .. package.path
local H = require "harness"
local D = require "sift.data"
local Mt = require "sift.metrics"
local test, check, close = H.test, H.check, H.close

local function first_line(path, n)
  local f = assert(io.open(path, "r"))
  local line
  for _ = 1, n or 1 do line = f:read("l") end
  f:close()
  return line
end

local function split_tabs(line)
  local c = {}
  for x in (line .. "\t"):gmatch("([^\t]*)\t") do c[#c + 1] = x end
  return c
end

local function write_tmp(name, content)
  local base = os.tmpname() -- creates an empty file: keep only the name
  os.remove(base)
  local path = base .. "_" .. name
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
  return path
end

-- expects fn to raise an error whose message contains every string in `needles` (plain find)
local function expect_error(fn, needles, what)
  local ok, err = pcall(fn)
  if not check(not ok, "%s: expected an error", what) then return end
  err = tostring(err)
  for _, s in ipairs(needles) do
    check(err:find(s, 1, true), "%s: error '%s' lacks '%s'", what, err, s)
  end
end

---------------------------------------------------------------------------------------------------
-- real data in $SIFT_SHARED/data
---------------------------------------------------------------------------------------------------
local SIZES = {
  { "sst2", "train", 6920 }, { "sst2", "dev", 872 },
  { "cola", "train", 8551 }, { "cola", "dev", 1043 },
  { "rte", "train", 2490 }, { "rte", "dev", 277 },
  { "mrpc", "train", 3668 }, { "mrpc", "dev", 408 },
  { "stsb", "train", 5749 }, { "stsb", "dev", 1500 },
  { "trec", "train", 5452 }, { "trec", "test", 500 },
}
local NUM_LABELS = { sst2 = 2, cola = 2, rte = 2, mrpc = 2, stsb = 1, trec = 6 }

test("row counts, label ranges and metadata of the GLUE-style tasks", function()
  H.need_shared("data/sst2/train.txt")
  for _, t in ipairs(SIZES) do
    local name, split, n = t[1], t[2], t[3]
    local ds = D.load(name, { split = split })
    check(#ds == n, "%s/%s: %d rows, want %d", name, split, #ds, n)
    check(ds.name == name and ds.format == name and ds.split == split, "%s/%s: metadata", name, split)
    check(ds.num_labels == NUM_LABELS[name], "%s: num_labels %s", name, tostring(ds.num_labels))
    check(ds.path:find("/data/" .. name .. "/", 1, true), "%s: path %s", name, tostring(ds.path))
    local bad = 0
    for i = 1, #ds do
      local r = ds[i]
      if type(r.text) ~= "string" or r.text == "" then bad = bad + 1 end
      if name == "stsb" then
        if math.type(r.label) ~= "float" or r.label < 0 or r.label > 5 then bad = bad + 1 end
      elseif math.type(r.label) ~= "integer" or r.label < 0 or r.label >= NUM_LABELS[name] then
        bad = bad + 1
      end
      local pair = name == "rte" or name == "mrpc" or name == "stsb"
      if pair ~= (type(r.text_b) == "string") then bad = bad + 1 end
    end
    check(bad == 0, "%s/%s: %d bad rows", name, split, bad)
  end
end)

test("label counts", function()
  H.need_shared("data/sst2/train.txt")
  local want = {
    { "sst2", "train", { [0] = 3310, [1] = 3610 } },
    { "cola", "train", { [0] = 2528, [1] = 6023 } },
    { "rte", "train", { [0] = 1249, [1] = 1241 } },
    { "mrpc", "train", { [0] = 1194, [1] = 2474 } },
    { "trec", "train", { [0] = 1162, [1] = 1250, [2] = 86, [3] = 1223, [4] = 835, [5] = 896 } },
    { "trec", "test", { [0] = 138, [1] = 94, [2] = 9, [3] = 65, [4] = 81, [5] = 113 } },
  }
  for _, t in ipairs(want) do
    local c = D.load(t[1], { split = t[2] }):count_labels()
    for k, v in pairs(t[3]) do
      check(c[k] == v, "%s/%s label %d: %s, want %d", t[1], t[2], k, tostring(c[k]), v)
    end
  end
  local ds = D.load("trec", { split = "train" })
  check(ds.label_names[1] == "DESC" and ds.label_names[3] == "ABBR" and ds.label_names[6] == "NUM", "trec names")
  local labels = ds:labels()
  check(#labels == #ds and labels[1] == ds[1].label, "labels()")
end)

test("first rows match the files", function()
  local root = H.need_shared("data/sst2/train.txt"):gsub("/sst2/train.txt$", "")
  local ds = D.load("sst2")
  check(ds.split == "train", "default split train")
  local l = first_line(root .. "/sst2/train.txt")
  check(ds[1].text == l:sub(3) and ds[1].label == tonumber(l:sub(1, 1)), "sst2 row 1 vs file")
  check(ds[1].text == "a stirring , funny and finally transporting re-imagining of beauty and the beast and 1930s horror films"
    and ds[1].label == 1, "sst2 row 1 literal")
  check(D.load("sst2", { split = "dev" })[1].text == "one long string of cliches .", "sst2 dev row 1")

  ds = D.load("cola", { split = "dev" })
  local c = split_tabs(first_line(root .. "/cola/dev.tsv"))
  check(ds[1].text == c[4] and ds[1].label == 1 and ds[1].text_b == nil, "cola dev row 1")
  check(ds[#ds].text == "John talked to Bill about himself.", "cola dev last row (no final newline): %s",
    ds[#ds].text)

  ds = D.load("rte")
  c = split_tabs(first_line(root .. "/rte/train.tsv", 2)) -- line 1 is the header
  check(ds[1].text == c[2] and ds[1].text_b == c[3] and ds[1].label == 1, "rte row 1 (not_entailment = 1)")
  check(ds[2].label == 0, "rte row 2 is entailment = 0")
  check(ds[1].text == "No Weapons of Mass Destruction Found in Iraq Yet.", "rte row 1 literal")

  ds = D.load("mrpc", { split = "dev" })
  c = split_tabs(first_line(root .. "/mrpc/dev.tsv", 2))
  check(ds[1].text == c[4] and ds[1].text_b == c[5] and ds[1].label == 1, "mrpc dev row 1")
  check(ds[2].label == 0, "mrpc dev row 2 label 0")

  ds = D.load("stsb", { split = "dev" })
  check(ds[1].text == "A man with a hard hat is dancing." and ds[1].text_b == "A man wearing a hard hat is dancing."
    and ds[1].label == 5.0, "stsb dev row 1")
  check(ds[2].label == 4.75, "stsb dev row 2 score")
  -- rows with 9 columns (two trailing source columns): the sentences are still columns 6 and 7
  local f = assert(io.open(root .. "/stsb/sts-train.csv"))
  local n, found = 0, false
  for line in f:lines() do
    n = n + 1
    c = split_tabs(line)
    if #c == 9 then
      found = true
      local r = D.load("stsb")[n]
      check(r.text == c[6] and r.text_b == c[7] and r.label == tonumber(c[5]),
        "stsb train row %d (9 columns): %s | %s", n, r.text, tostring(r.text_b))
      break
    end
  end
  f:close()
  check(found, "sts-train.csv has 9-column rows")

  ds = D.load("trec", { split = "test" })
  check(ds[1].text == "How far is it from Denver to Aspen ?" and ds[1].label == 5, "trec test row 1")
end)

test("MRPC: the UTF-8 BOM and the header are skipped", function()
  H.need_shared("data/mrpc/train.tsv")
  for _, split in ipairs { "train", "dev" } do
    local ds = D.load("mrpc", { split = split })
    check(ds[1].text:sub(1, 3) ~= "\239\187\191", "%s: BOM in row 1", split)
    for i = 1, #ds do
      if ds[i].text:find("\239\187\191", 1, true) or ds[i].text == "#1 String" then
        check(false, "%s: header or BOM leaked into row %d", split, i)
        break
      end
    end
  end
  check(D.load("mrpc")[1].text:sub(1, 6) == "Amrozi", "mrpc train row 1")
end)

test("names, folders and files resolve to the same data; errors for unknown things", function()
  local p = H.need_shared("data/rte/dev.tsv")
  local dir = p:gsub("/dev.tsv$", "")
  local a = D.load("rte", { split = "dev" })
  local b = D.load(dir, { split = "dev" })
  local c = D.load(p)
  local d = D.load(dir .. "/", { split = "dev", format = "rte" })
  check(#a == 277 and #b == 277 and #c == 277 and #d == 277, "same counts")
  check(a[5].text == b[5].text and b[5].text == c[5].text and c[5].text_b == d[5].text_b, "same rows")
  check(c.split == "dev" and c.format == "rte", "split/format from the file name: %s %s", tostring(c.split), c.format)
  check(D.guess_format("x/y/sts-train.csv") == "stsb" and D.guess_format("GLUE/SST-2/dev.tsv") == "sst2"
    and D.guess_format("a/b.jsonl") == "jsonl" and D.guess_format("data/cola/train.tsv") == "cola"
    and D.guess_format("/home/inverted/x.txt") == nil, "guess_format")

  local t = D.load("trec", { split = "dev" })
  check(#t == 500 and t.path:find("test.txt", 1, true) and t.note and t.note:find("dev", 1, true),
    "trec dev → test.txt with a note")
  check(#D.load("sst2", { split = "validation" }) == 872, "validation is an alias of dev")

  expect_error(function() D.load("sst2", { format = "csv" }) end, { "unknown format 'csv'", "sst2", "jsonl" }, "format")
  expect_error(function() D.load("sst2", { split = "test" }) end, { "no 'test' split", "test.txt" }, "split")
  expect_error(function() D.load("no_such_task_xyz") end, { "no_such_task_xyz", "not found" }, "name")
  local tmp = write_tmp("data.txt", "1 fine\n")
  expect_error(function() D.load(tmp) end, { "cannot guess", "format" }, "guess")
  check(#D.load(tmp, { format = "sst2" }) == 1, "explicit format")
  os.remove(tmp)
end)

test("instruction jsonl: status ok rows, input joined, escapes decoded", function()
  local p = H.need_shared("data/instruct/alpaca_libre_tasks_v1.jsonl")
  local want = 0
  for line in io.lines(p) do if line:find('"status": "ok"', 1, true) then want = want + 1 end end
  local ds = D.load("instruct")
  check(#ds == want and want == 1202, "%d rows, want %d (status ok)", #ds, want)
  check(#D.load(p) == want, "by file path")
  check(ds.format == "jsonl" and ds.num_labels == nil and ds[1].label == nil, "jsonl metadata")
  check(ds[1].text == "Create a palindrome sentence." and ds[1].text_b == "A man, a plan, a canal, Panama!", "row 1")
  check(#D.load(p, { all = true }) == 2375, "all = true keeps every row")
  local with_input, accent, emoji = 0, 0, false
  for i = 1, #ds do
    if ds[i].text:find("\n", 1, true) then with_input = with_input + 1 end
    if (ds[i].text .. ds[i].text_b):find("\195\169", 1, true) then accent = accent + 1 end -- \u00e9
    if ds[i].text_b:find("\240\159\153\140", 1, true) then emoji = true end -- U+1F64C from a surrogate pair
  end
  check(with_input > 0, "some rows have instruction + '\\n' + input")
  check(emoji, "surrogate pair decoded to U+1F64C")
  check(utf8.len(table.concat((function() local t = {} for i = 1, #ds do t[i] = ds[i].text_b end return t end)()))
    ~= nil, "all outputs are valid UTF-8")
  check(accent == 8, "%d rows with \\u00e9 decoded to UTF-8, want 8", accent)
end)

test("JSON decoder", function()
  local J = D.json
  local v = J.decode('{"a": [1, 2.5, -3e2, true, false, null], "s": "x\\n\\"q\\"\\\\ \\u00e9 \\ud83d\\ude00 \\/", "o": {}}')
  check(v.a[1] == 1 and v.a[2] == 2.5 and v.a[3] == -300 and v.a[4] == true and v.a[5] == false
    and v.a[6] == J.null and #v.a == 6, "array values")
  check(v.s == 'x\n"q"\\ \195\169 \240\159\152\128 /', "string escapes: %q", v.s)
  check(type(v.o) == "table" and next(v.o) == nil, "empty object")
  check(J.decode("  [ ]  ")[1] == nil, "empty array")
  check(J.decode('"\\ud800x"') == "\239\191\189x", "lone surrogate → U+FFFD")
  for _, bad in ipairs { '{"a": }', '{"a" 1}', '[1, 2', '"abc', '{"a": 1} x', '"\\q"', "tru" } do
    check(not pcall(J.decode, bad), "should fail: %s", bad)
  end
end)

test("JSON encoder: round trip through the decoder, sorted keys, refusals; sift.write_file", function()
  local J = D.json
  local v = { a = { 1, 2.5, 0.1, -1e300, 1 / 3 }, s = 'x\n"q"\\ \1 \195\169', o = {}, n = J.null, t = true,
    nested = { z = { -3 }, b = false } }
  local text = J.encode(v)
  check(text:find('^{"a":%[1,2.5,0.1,%-1e%+300,0.3333333333333333%],"n":null,"nested":{"b":false,"z":%[%-3%]},"o":%[%],')
    ~= nil, "layout and sorted keys: %s", text)
  local back = J.decode(text)
  check(back.a[5] == 1 / 3 and back.a[3] == 0.1 and back.s == v.s and back.n == J.null and back.nested.z[1] == -3,
    "values read back the same")
  check(J.encode(back) == text, "encode(decode(x)) == x")
  check(J.encode({ 0 / 0, math.huge }) == "[null,null]", "NaN and inf as null")
  check(J.encode(7) == "7" and J.encode("a") == '"a"', "scalars")
  check(J.encode({ [2] = 1, [3] = 2 }) == "[null,1,2]", "an array with a hole at 1: %s", J.encode({ [2] = 1, [3] = 2 }))
  local cyc = {}
  cyc.self = cyc
  for _, bad in ipairs { cyc, { f = print }, { [2] = 1, x = 1 }, { [1000] = 1 } } do check(not pcall(J.encode, bad), "refused") end
  -- written atomically: a failed write leaves the earlier file as it was
  local path = os.tmpname()
  check(sift.write_file(path, text) == path, "returns the path")
  local f = io.open(path, "rb")
  check(f:read("a") == text, "content")
  f:close()
  local ok, err = pcall(sift.write_file, path .. ".d/none/x", "y")
  check(not ok and err:find("cannot"), "a missing directory: %s", tostring(err))
  f = io.open(path, "rb")
  check(f:read("a") == text, "the earlier file is whole")
  f:close()
  os.remove(path)
end)

---------------------------------------------------------------------------------------------------
-- malformed files → path:line errors
---------------------------------------------------------------------------------------------------
test("malformed files give errors naming file and line", function()
  local cases = {
    { "bad_sst2.txt", "1 good film .\n0 bad film .\n2 what ?\n", "sst2", 3, "label" },
    { "bad2_sst2.txt", "1 fine\nnolabel\n", "sst2", 2, "expected" },
    { "bad_trec.txt", "0 How ?\n6 Why ?\n", "trec", 2, "0..5" },
    { "bad_cola.tsv", "gj04\t1\t\tGood.\ngj04\t1\tOnly three\n", "cola", 2, "4 tab-separated" },
    { "bad2_cola.tsv", "gj04\t1\t\tGood.\ngj04\t1\t\tGood.\ngj04\tyes\t\tBad label.\n", "cola", 3, "0 or 1" },
    { "bad_rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n", "rte", 3, "entailment" },
    { "bad_mrpc.tsv", "\239\187\191Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\nx\t1\t2\ta\tb\n", "mrpc", 3, "0 or 1" },
    { "bad_stsb.csv", "g\tf\t2012\t0001\t5.000\ta\tb\ng\tf\t2012\t0002\t7.5\ta\tb\n", "stsb", 2, "0..5" },
    { "bad2_stsb.csv", "g\tf\t2012\t0001\t5.000\ta\n", "stsb", 1, "7" },
    { "bad.jsonl", '{"instruction": "a", "input": "", "output": "b", "status": "ok"}\n{"instruction": "a", "output: 1}\n',
      "jsonl", 2, "invalid JSON" },
  }
  for _, c in ipairs(cases) do
    local path = write_tmp(c[1], c[2])
    expect_error(function() D.load(path) end, { path .. ":" .. c[4] .. ":", c[5] }, c[1])
    os.remove(path)
  end
  -- the good parts of such files parse, including a BOM before an sst2 line and CRLF line ends
  local path = write_tmp("ok_sst2.txt", "\239\187\1911 good\r\n0 bad\r\n\n")
  local ds = D.load(path)
  check(#ds == 2 and ds[1].label == 1 and ds[1].text == "good" and ds[2].text == "bad", "BOM + CRLF sst2")
  os.remove(path)
  path = write_tmp("plain.jsonl", '{"text": "hi", "label": 1}\n\n{"text": "yo", "text_b": "x", "label": 0}\n')
  ds = D.load(path)
  check(#ds == 2 and ds[1].text == "hi" and ds[1].label == 1 and ds[2].text_b == "x", "generic jsonl rows")
  os.remove(path)
end)

---------------------------------------------------------------------------------------------------
-- dataset methods
---------------------------------------------------------------------------------------------------
local function numbered(n)
  local rows = {}
  for i = 1, n do rows[i] = { text = "row " .. i, label = i % 2, id = i } end
  return D.new(rows, { name = "toy", format = "sst2", split = "train", num_labels = 2 })
end

test("PRNG is splitmix64 (fixed reference values)", function()
  local r = D.rng(0)
  check(r:next() == 0xE220A8397B1DCDAF and r:next() == 0x6E789E6AA1B965F4 and r:next() == 0x06C45D188009454F,
    "splitmix64(0) sequence")
  local g = D.rng(7)
  for _ = 1, 1000 do
    local k = g:int(6)
    if k < 1 or k > 6 then check(false, "int(6) out of range: %d", k) break end
    local f = g:float()
    if f < 0 or f >= 1 then check(false, "float out of range: %g", f) break end
  end
end)

test("shuffle: deterministic, seed-dependent, a permutation", function()
  local ds = numbered(10)
  local s = ds:shuffle(42)
  local want = { 4, 9, 5, 3, 10, 6, 8, 2, 1, 7 } -- checked against an independent Python splitmix64
  for i = 1, 10 do check(s[i].id == want[i], "seed 42 position %d: %d, want %d", i, s[i].id, want[i]) end
  check(ds[1].id == 1 and ds[10].id == 10, "original left untouched")
  check(s.name == "toy" and s.num_labels == 2 and getmetatable(s) == getmetatable(ds), "metadata and methods kept")

  local big = numbered(500)
  local a, b, c = big:shuffle(1), big:shuffle(1), big:shuffle(2)
  local same_ab, same_ac, seen = true, true, {}
  for i = 1, 500 do
    if a[i] ~= b[i] then same_ab = false end
    if a[i] ~= c[i] then same_ac = false end
    seen[a[i].id] = (seen[a[i].id] or 0) + 1
  end
  check(same_ab, "same seed, same order")
  check(not same_ac, "different seeds, different orders")
  local perm = #a == 500
  for i = 1, 500 do if seen[i] ~= 1 then perm = false end end
  check(perm, "a permutation")
  check(#numbered(0):shuffle(3) == 0 and numbered(1):shuffle(3)[1].id == 1, "tiny datasets")
  check(not pcall(big.shuffle, big, 1.5), "non-integer seed is an error")
end)

test("take, slice, filter, batches", function()
  local ds = numbered(10)
  check(#ds:take(3) == 3 and ds:take(3)[3].id == 3 and #ds:take(99) == 10 and #ds:take(0) == 0, "take")
  local s = ds:slice(3, 5)
  check(#s == 3 and s[1].id == 3 and s[3].id == 5 and s.split == "train", "slice")
  check(ds:slice(-2)[1].id == 9 and #ds:slice(-2) == 2 and #ds:slice(8, 100) == 3 and #ds:slice(6, 5) == 0, "slice bounds")
  check(#ds:filter(function(r) return r.label == 1 end) == 5, "filter")
  for _, size in ipairs { 1, 3, 4, 10, 32 } do
    local n, ids, last, count = 0, {}, nil, 0
    for b, k in ds:batches(size) do
      count = count + 1
      check(k == count, "batch index")
      last = #b
      for _, r in ipairs(b) do n = n + 1 ids[n] = r.id end
      if count < math.ceil(10 / size) then check(#b == size, "full batch of %d", size) end
    end
    check(n == 10 and count == math.ceil(10 / size), "size %d: %d rows in %d batches", size, n, count)
    check(last == (10 % size == 0 and size or 10 % size) or size > 10 and last == 10, "last batch size %d", size)
    for i = 1, 10 do if ids[i] ~= i then check(false, "batch order") break end end
  end
  local c = ds:count_labels()
  check(c[0] == 5 and c[1] == 5, "count_labels")
  check(tostring(ds):find("10 rows", 1, true), "tostring: %s", tostring(ds))
end)

test("batches over a real dataset cover all rows", function()
  H.need_shared("data/cola/dev.tsv")
  local ds = D.load("cola", { split = "dev" }):shuffle(0)
  local n, nb = 0, 0
  for b in ds:batches(32) do n, nb = n + #b, nb + 1 end
  check(n == 1043 and nb == 33, "%d rows in %d batches", n, nb)
end)

---------------------------------------------------------------------------------------------------
-- encode
---------------------------------------------------------------------------------------------------
-- a fake tokenizer: one id per byte (byte + 3), BOS = 1
local tok = {}
function tok:encode(text, opts)
  local ids = {}
  if opts and opts.bos then ids[1] = 1 end
  for i = 1, #text do ids[#ids + 1] = text:byte(i) + 3 end
  return ids
end

local function eq(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

test("encode: padding, truncation, mask, labels", function()
  local rows = { { text = "ab", label = 1 }, { text = "abcd", label = 0 }, { text = "", label = 1 } }
  local b = D.encode(rows, tok, {})
  local A, B, C, Dd = 97 + 3, 98 + 3, 99 + 3, 100 + 3
  check(#b.input_ids == 3 and eq(b.input_ids[1], { A, B, 0, 0 }) and eq(b.input_ids[2], { A, B, C, Dd })
    and eq(b.input_ids[3], { 0, 0, 0, 0 }), "ids padded with 0 to the longest row")
  check(eq(b.attention_mask[1], { 1, 1, 0, 0 }) and eq(b.attention_mask[2], { 1, 1, 1, 1 })
    and eq(b.attention_mask[3], { 0, 0, 0, 0 }), "mask")
  check(eq(b.labels, { 1, 0, 1 }), "labels")

  b = D.encode(rows, tok, { max_len = 3, pad_id = 9, bos = true })
  check(eq(b.input_ids[1], { 1, A, B }) and eq(b.input_ids[2], { 1, A, B }) and eq(b.input_ids[3], { 1, 9, 9 }),
    "bos, truncation to max_len, pad_id")
  check(eq(b.attention_mask[3], { 1, 0, 0 }), "bos is a real token")

  b = D.encode(rows, tok, { pad_to = 6 })
  check(#b.input_ids[1] == 6 and #b.attention_mask[2] == 6 and b.input_ids[2][5] == 0, "pad_to")

  local pairs_rows = { { text = "a", text_b = "b", label = 0 }, { text = "ab", text_b = "c" } }
  b = D.encode(pairs_rows, tok, {})
  check(eq(b.input_ids[1], { A, 32 + 3, B, 0 }) and eq(b.input_ids[2], { A, B, 32 + 3, C }), "pair joined with a space")
  check(b.labels == nil, "labels omitted when a row has none")
  b = D.encode(pairs_rows, tok, { sep = { 7, 8 }, bos = true })
  check(eq(b.input_ids[1], { 1, A, 7, 8, B, 0 }) and eq(b.input_ids[2], { 1, A, B, 7, 8, C }), "pair with sep ids")
  b = D.encode(pairs_rows, tok, { sep = 5 })
  check(eq(b.input_ids[1], { A, 5, B, 0 }), "single sep id")

  b = D.encode({ { text = "ab", text_b = "cd" } }, tok, { task = "lm", sep = 5, mask_prompt = true, eos = 2, pad_to = 7 })
  check(eq(b.input_ids[1], { A, B, 5, C, Dd, 2, 0 }), "lm ids with eos: %s", table.concat(b.input_ids[1], ","))
  check(eq(b.labels[1], { -100, -100, -100, C, Dd, 2, -100 }), "lm labels: %s", table.concat(b.labels[1], ","))
  b = D.encode({ { text = "abcdef" } }, tok, { max_len = 3, eos = 2 })
  check(eq(b.input_ids[1], { A, B, 2 }), "eos kept under truncation")

  local ids = tok:encode("abc")
  local keep = { encode = function() return ids end }
  D.encode({ { text = "x" } }, keep, { max_len = 2, eos = 2 })
  check(#ids == 3, "the tokenizer's table is not modified")
  check(not pcall(D.encode, { { label = 1 } }, tok, {}), "row without text is an error")
end)

test("encode a real dataset slice", function()
  H.need_shared("data/rte/dev.tsv")
  local ds = D.load("rte", { split = "dev" }):take(8)
  local b = D.encode(ds, tok, { max_len = 64 })
  check(#b.input_ids == 8 and #b.labels == 8, "8 rows")
  for i = 1, 8 do
    check(#b.input_ids[i] == 64 and #b.attention_mask[i] == 64, "row %d truncated to 64", i)
    check(b.labels[i] == ds[i].label, "label %d", i)
  end
end)

---------------------------------------------------------------------------------------------------
-- metrics
---------------------------------------------------------------------------------------------------
test("metrics: accuracy, confusion, mcc, f1", function()
  -- binary: tp 6, tn 3, fp 1, fn 2
  local pred, gold = {}, {}
  local function add(p, g, n) for _ = 1, n do pred[#pred + 1], gold[#gold + 1] = p, g end end
  add(1, 1, 6); add(0, 0, 3); add(1, 0, 1); add(0, 1, 2)
  close(Mt.accuracy(pred, gold), 9 / 12, 1e-15, "accuracy")
  local m = Mt.confusion(pred, gold, 2)
  check(m[1][1] == 3 and m[1][2] == 1 and m[2][1] == 2 and m[2][2] == 6, "confusion rows = gold")
  close(Mt.mcc(pred, gold), 16 / math.sqrt(7 * 8 * 4 * 5), 1e-12, "mcc") -- 0.47809144373375745
  close(Mt.mcc(pred, gold), 0.47809144373375745, 1e-12, "mcc literal")
  close(Mt.f1(pred, gold), 12 / 15, 1e-12, "f1 positive 1")
  close(Mt.f1(pred, gold, 0), 6 / 9, 1e-12, "f1 positive 0")
  close(Mt.mcc(gold, gold), 1, 1e-12, "perfect mcc")
  local inv = {}
  for i, g in ipairs(gold) do inv[i] = 1 - g end
  close(Mt.mcc(inv, gold), -1, 1e-12, "inverted mcc")
  check(Mt.mcc({ 1, 1, 1, 1 }, { 0, 1, 0, 1 }) == 0, "constant predictions → mcc 0")
  check(Mt.f1({ 0, 0 }, { 0, 0 }) == 0, "no positives → f1 0")
  -- multiclass: Gorodkin R_K = (c·s − Σ p_k t_k) / √((s² − Σ p_k²)(s² − Σ t_k²)) = 26 / √(66·64)
  local p3 = { 0, 1, 2, 2, 1, 0, 2, 1, 0, 0 }
  local g3 = { 0, 1, 2, 1, 1, 0, 0, 2, 0, 1 }
  close(Mt.mcc(p3, g3), 26 / math.sqrt(66 * 64), 1e-12, "multiclass mcc")
  local m3 = Mt.confusion(p3, g3)
  check(#m3 == 3 and m3[1][1] == 3 and m3[2][1] == 1 and m3[3][2] == 1 and m3[1][3] == 1, "3x3 confusion")
  local cl = Mt.classification(p3, g3, 3)
  close(cl.accuracy, 0.6, 1e-12, "classification accuracy")
  check(cl.macro_f1 and cl.f1 == nil, "macro f1 for 3 classes")
  local by_class = (Mt.f1(p3, g3, 0) + Mt.f1(p3, g3, 1) + Mt.f1(p3, g3, 2)) / 3
  close(cl.macro_f1, by_class, 1e-15, "macro f1 = the mean of each class's f1")
  close(Mt.classification(p3, g3, 5).macro_f1, by_class * 3 / 5, 1e-15, "absent classes count as 0")
  check(not pcall(Mt.accuracy, { 1 }, { 1, 2 }), "length mismatch is an error")
  -- labels and class counts checked before anything is built (a stray 1e12 once meant a 1e24-cell table)
  for _, case in ipairs {
    { Mt.confusion, { 0, 1e12 }, { 0, 1 }, nil, "labels must be integers 0..65535" },
    { Mt.confusion, { 0, 1 }, { 0, 1 }, 1e12, "number of classes must be an integer 1..65536" },
    { Mt.classification, { 0, 1 }, { 0, 1 }, math.maxinteger, "number of classes" },
    { Mt.classification, { 0, -1 }, { 0, 1 }, nil, "row 2: pred -1" },
    { Mt.classification, { 0, 0.5 }, { 0, 1 }, nil, "row 2: pred 0.5" },
    { Mt.confusion, { 0, 2 }, { 0, 1 }, 2, "labels must be integers 0..1" },
  } do
    local ok, err = pcall(case[1], case[2], case[3], case[4])
    check(not ok and tostring(err):find(case[5], 1, true), "want '%s': %s", case[5], tostring(err))
  end
end)

test("metrics: pearson, spearman with ties", function()
  local x, y = { 1, 2, 3, 4, 5 }, { 2, 4, 5, 4, 5 }
  close(Mt.pearson(x, y), 6 / math.sqrt(60), 1e-12, "pearson") -- 0.7745966692
  local r = Mt.ranks(y)
  check(eq(r, { 1, 2.5, 4.5, 2.5, 4.5 }), "average ranks for ties: %s", table.concat(r, ","))
  close(Mt.spearman(x, y), 7 / math.sqrt(90), 1e-12, "spearman with ties") -- 0.7378647874
  local a, b = { 3, 1, 4, 1, 5, 9, 2, 6 }, { 2, 7, 1, 8, 2, 8, 1, 8 }
  close(Mt.spearman(a, b), 0.19885368120992464, 1e-12, "spearman, ties on both sides")
  close(Mt.pearson(a, b), 0.20965531907301213, 1e-12, "pearson 8 values")
  close(Mt.pearson(x, { 10, 8, 6, 4, 2 }), -1, 1e-12, "perfect negative")
  close(Mt.spearman(x, { 1, 10, 100, 1000, 1e4 }), 1, 1e-12, "monotone → spearman 1")
  local nan = Mt.pearson(x, { 3, 3, 3, 3, 3 })
  check(nan ~= nan, "constant side → NaN")
  local reg = Mt.regression(x, y)
  close(reg.mse, (1 + 4 + 4 + 0 + 0) / 5, 1e-12, "mse")
end)

test("metrics install and sift.data.metrics", function()
  local fake = {}
  Mt.install(fake)
  check(fake.metrics == Mt and D.metrics == Mt, "install")
end)

H.run()
