-- test_fuzz_data.lua — the data-set readers (sift.data.load, lua/sift/data.lua) against mutated copies of
-- the first lines of every real data set in ../shared (SST-2, CoLA, RTE, MRPC, STS-B, TREC and the
-- instruction JSONL) and of generic JSONL rows written here: seeded random edits — bytes flipped, deleted, duplicated, replaced by a separator
-- (tab, newline, space, quote, brace, bracket, backslash, colon, comma, NUL), runs of brackets or digits
-- inserted, lines cut short, the file truncated — 300 cases per file (SIFT_FUZZ_CASES sets it).
--
-- Each case must either load — and then every row has a string text, a string or no text_b, and a
-- finite number or no label — or fail with a message naming the file and line ("path:N: format: ...").
-- A Lua runtime error from inside a parser (indexing nil, comparing a number with nil) or a crash fails.
--
-- What it does not do: the model-file loaders (test_fuzz_loaders.c), checkpoints (test_fuzz_checkpoints.lua).
local H = dofile((arg[0]:match("^(.*)/") or ".") .. "/harness.lua")
local test, check = H.test, H.check

local FILES = { -- {format, path under data/, lines kept}
  { "sst2", "sst2/train.txt" }, { "cola", "cola/train.tsv" }, { "rte", "rte/train.tsv" },
  { "mrpc", "mrpc/train.tsv" }, { "stsb", "stsb/sts-train.csv" }, { "trec", "trec/test.txt" },
  { "jsonl", "instruct/alpaca_libre_tasks_v1.jsonl" },
  -- generic JSONL rows (text, text_b, label), written here
  { "jsonl", nil, '{"text": "a fine film", "label": 1}\n{"text": "dull", "text_b": "and long", "label": 0}\n'
    .. '{"text": "a score", "label": 3.25}\n{"text": "no label", "label": null, "extra": [1, {"k": "v"}]}\n' },
}
local LINES = 12
local CASES = tonumber(os.getenv("SIFT_FUZZ_CASES") or "") or 300
local SEPARATORS = { "\t", "\n", " ", '"', "{", "}", "[", "]", "\\", ":", ",", "\0" }

local function head_of(path)
  local f = assert(io.open(path, "rb"))
  local out = {}
  for _ = 1, LINES do
    local line = f:read("L")
    if not line then break end
    out[#out + 1] = line
  end
  f:close()
  return table.concat(out)
end

local function mutate(s, rng)
  local edits = {}
  for _ = 1, rng:int(3) do
    local kind, pos = rng:int(8), rng:int(math.max(#s, 1))
    if kind == 1 then -- a bit flipped
      local b = s:byte(pos) or 0
      s = s:sub(1, pos - 1) .. string.char(b ~ (1 << (rng:int(8) - 1))) .. s:sub(pos + 1)
    elseif kind == 2 then -- a range deleted
      s = s:sub(1, pos - 1) .. s:sub(pos + rng:int(20))
    elseif kind == 3 then -- a range duplicated
      local len = rng:int(40)
      s = s:sub(1, pos + len) .. s:sub(pos, pos + len) .. s:sub(pos + len + 1)
    elseif kind == 4 then -- a separator in place of a byte
      s = s:sub(1, pos - 1) .. SEPARATORS[rng:int(#SEPARATORS)] .. s:sub(pos + 1)
    elseif kind == 5 then -- a separator inserted
      s = s:sub(1, pos - 1) .. SEPARATORS[rng:int(#SEPARATORS)] .. s:sub(pos)
    elseif kind == 6 then -- a run of brackets or of digits
      local runs = { ("["):rep(300), ("{"):rep(50), ("9"):rep(400), "-1e999", "1e400", "0x7fffffffffffffff" }
      s = s:sub(1, pos - 1) .. runs[rng:int(#runs)] .. s:sub(pos)
    elseif kind == 7 then -- a line cut short
      local nl = s:find("\n", pos, true)
      if nl then s = s:sub(1, math.max(pos, nl - rng:int(30))) .. s:sub(nl) end
    else -- the file truncated
      s = s:sub(1, pos)
    end
    edits[#edits + 1] = kind .. "@" .. pos
  end
  return s, table.concat(edits, " ")
end

for _, spec in ipairs(FILES) do
  local format, rel = spec[1], spec[2]
  test(format .. (rel and "" or " (generic rows)") .. ": mutated files load sound rows or fail naming file and line", function()
    local seed = spec[3] or head_of(H.need_shared("data/" .. rel))
    local path = os.tmpname()
    local ok_count, refused = 0, 0
    local rng = sift.data.rng(#seed)
    for case = 0, CASES do
      local text, edits = seed, "(unmutated)"
      if case > 0 then text, edits = mutate(seed, rng) end
      local f = assert(io.open(path, "wb"))
      f:write(text)
      f:close()
      local ok, ds = pcall(sift.data.load, path, { format = format })
      if ok then
        ok_count = ok_count + 1
        for i = 1, #ds do
          local r = ds[i]
          local sound = type(r.text) == "string" and (r.text_b == nil or type(r.text_b) == "string")
            and (r.label == nil or (type(r.label) == "number" and r.label == r.label and math.abs(r.label) < math.huge))
          if not check(sound, "%s case %d (%s): row %d loaded unsound: text %s, text_b %s, label %s", format, case, edits,
            i, type(r.text), type(r.text_b), tostring(r.label)) then break end
        end
      else
        refused = refused + 1
        local msg = tostring(ds)
        check(msg:sub(1, #path + 1) == path .. ":" and msg:find("^" .. path:gsub("%p", "%%%0") .. ":%d+: " .. format .. ": "),
          "%s case %d (%s): the error does not name file, line and format: %s", format, case, edits, msg)
      end
      check(case > 0 or ok, "%s: the unmutated lines did not load: %s", format, tostring(ds))
    end
    os.remove(path)
    print(("    %s: %d loaded, %d refused"):format(format, ok_count, refused))
  end)
end

H.run()
