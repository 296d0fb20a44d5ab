-- test_plot_help.lua — terminal plots (dimensions, braille, labels), their SVG twins, heatmap shading,
-- the REPL's pretty printer, and the help registry: every public function reachable from `sift` (and
-- the methods of tensors, models, sets, tokenizers, optimizers, … obtained at run time) must have a
-- help entry; docs/reference.md must be the generated one.
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check = H.test, H.check

local function lines_of(s)
  local out = {}
  for l in (s .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

local function has_braille(s)
  for _, cp in utf8.codes(s) do if cp > 0x2800 and cp <= 0x28FF then return true end end
  return false
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

local function captured(fn, ...)
  local buf = {}
  local saved = print
  print = function(...) -- luacheck: ignore
    local p = table.pack(...)
    for i = 1, p.n do buf[#buf + 1] = tostring(p[i]) .. (i < p.n and "\t" or "") end
    buf[#buf + 1] = "\n"
  end
  local ok, err = pcall(fn, ...)
  print = saved -- luacheck: ignore
  if not ok then error(err, 0) end
  return table.concat(buf)
end

---------------------------------------------------------------------------------------------------
-- plots
---------------------------------------------------------------------------------------------------
test("line plot: dimensions, braille, title, min/max labels, legend", function()
  local a, b = {}, {}
  for i = 1, 50 do a[i] = 2 - i / 50; b[i] = 1 + math.sin(i / 5) * 0.3 end
  local W, Hh = 40, 10
  local fig = sift.plot.line({ a, b }, { width = W, height = Hh, title = "training loss", labels = { "sift", "lora" } })
  local text = tostring(fig)
  local ls = lines_of(text)
  -- title + H rows + axis + tick labels + legend
  check(#ls == 1 + Hh + 2 + 1, "%d lines", #ls)
  check(ls[1]:find("training loss", 1, true), "title line: %s", ls[1])
  check(has_braille(text), "no braille characters")
  local rowlen = utf8.len(ls[2])
  for r = 2, 1 + Hh do check(utf8.len(ls[r]) == rowlen, "row %d has %d columns, not %d", r, utf8.len(ls[r]), rowlen) end
  check(utf8.len(ls[2 + Hh]) == rowlen, "axis line width")
  local lw = rowlen - W - 2
  check(lw >= 1, "label width")
  -- y: the maximum labels the top row and the minimum the bottom row
  local ymax, ymin = -math.huge, math.huge
  for _, s in ipairs { a, b } do for _, v in ipairs(s) do ymax, ymin = math.max(ymax, v), math.min(ymin, v) end end
  check(ls[2]:find(("%.4g"):format(ymax), 1, true), "max label on the top row: %s", ls[2])
  check(ls[1 + Hh]:find(("%.4g"):format(ymin), 1, true), "min label on the bottom row: %s", ls[1 + Hh])
  -- x: 1 at the left and 50 at the right of the tick-label line
  local xl = ls[3 + Hh]
  check(xl:match("^%s+1%s") and xl:match("50$"), "x labels: '%s'", xl)
  check(ls[#ls]:find("sift", 1, true) and ls[#ls]:find("lora", 1, true), "legend: %s", ls[#ls])
  -- a rising line: dots in the bottom-left and top-right cells
  local up = tostring(sift.plot.line({ 1, 2, 3, 4 }, { width = 20, height = 5 }))
  local ul = lines_of(up)
  local function cell(line, k) -- k-th plot cell of a row (after the label and axis)
    local chars = {}
    for _, cp in utf8.codes(line) do chars[#chars + 1] = utf8.char(cp) end
    return chars[#chars - 20 + k]
  end
  check(cell(ul[1], 20) ~= " ", "top-right cell of a rising line is empty")
  check(cell(ul[5], 1) ~= " ", "bottom-left cell of a rising line is empty")
  check(cell(ul[1], 1) == " " and cell(ul[5], 20) == " ", "opposite corners are empty")
  -- one series, a training history, explicit ranges, colour
  local h = { loss = { 3, 2, 1.5, 1.2 }, lr = { 1, 1, 1, 1 } }
  check(has_braille(tostring(sift.plot.line(h))), "history")
  local r = tostring(sift.plot.line({ 0.5, 0.6 }, { ymin = 0, ymax = 1, height = 4 }))
  check(lines_of(r)[1]:find("1") and lines_of(r)[4]:find("0"), "explicit y range labels")
  check(tostring(sift.plot.line({ a, b }, { color = true })):find("\27[38;5;", 1, true), "256-colour codes")
  check(not pcall(sift.plot.line, {}), "empty input refused")
  check(not pcall(sift.plot.line, { 1, 2 }, { width = 2 }), "tiny width refused")
end)

test("curve: gradient concentration on a log axis", function()
  local fr = { 0.001, 0.01, 0.05, 0.1 }
  local pre = { fractions = fr, mean = { 0.379, 0.647, 0.833, 0.900 }, mean_sq = { 0.15, 0.42, 0.69, 0.81 } }
  local rnd = { fractions = fr, mean = { 0.241, 0.502, 0.746, 0.847 }, mean_sq = { 0.06, 0.24, 0.54, 0.71 } }
  local fig = sift.plot.curve({ pretrained = pre, random = rnd }, { width = 48, height = 12 })
  local text = tostring(fig)
  check(has_braille(text), "braille")
  check(text:find("0.1%", 1, true) and text:find("10%", 1, true) and text:find("1%", 1, true), "percent ticks:\n%s", text)
  check(text:find("pretrained", 1, true) and text:find("random", 1, true), "legend")
  local ls = lines_of(text)
  check(ls[2]:match("^%s*1 ┤"), "y max 1: %s", ls[2])
  check(ls[13]:match("^%s*0 ┤"), "y min 0: %s", ls[13])
  check(tostring(sift.plot.curve(pre, { sq = true })):find("||g||^2", 1, true), "sq title")
  check(sift.plot.curve({ x = fr, y = pre.mean }).kind == "curve", "plain x/y")
end)

test("SVG: well-formed, one polyline per series, atomic write", function()
  local dir = tmpdir()
  local a, b, c = {}, {}, {}
  for i = 1, 30 do a[i], b[i], c[i] = i, 30 - i, (i % 7) end
  local fig = sift.plot.line({ a, b, c }, { title = "three <series> & more", labels = { "up", "down", "saw" },
    xlabel = "step", ylabel = "value" })
  local path = dir .. "/fig.svg"
  check(sift.plot.save(fig, path) == path, "save returns the path")
  local s = read(path)
  check(s:match("^<svg[%s>]"), "starts with <svg")
  check(s:match("</svg>%s*$"), "ends with </svg>")
  check(count(s, "<polyline") == 3, "%d polylines", count(s, "<polyline"))
  check(count(s, "<text") == count(s, "</text>"), "text elements balanced")
  check(s:find("three &lt;series&gt; &amp; more", 1, true), "title escaped")
  check(s:find(">up<", 1, true) and s:find(">saw<", 1, true), "legend labels")
  check(not s:find("<series>", 1, true), "no raw markup from labels")
  -- every tag is closed: elements either self-close or have a matching end tag
  local open_tags = count(s, "<[%a]") - count(s, "<[%a][^>]-/>")
  check(open_tags == count(s, "</%a"), "open %d vs close %d tags", open_tags, count(s, "</%a"))
  -- nothing but the file is left in the directory (the temporary was renamed)
  local p = io.popen("ls -A '" .. dir .. "'")
  local listing = p:read("a")
  p:close()
  check(listing == "fig.svg\n", "directory holds: %s", listing)
  -- heatmap as rects; text output for .txt
  local g = { { 0, 0.5 }, { 0.25, 1 } }
  local hs = sift.plot.heatmap(g, { title = "density" }):svg()
  check(hs:match("^<svg") and count(hs, "<rect") >= 4 + 1, "heatmap rects")
  local tpath = dir .. "/fig.txt"
  fig:save(tpath)
  check(read(tpath):find("three <series> & more", 1, true), "text save")
  os.remove(path)
  os.remove(tpath)
  os.remove(dir)
  check(not pcall(sift.plot.save, fig, "/nonexistent-dir/x.svg"), "unwritable path raises")
end)

test("heatmap: shading monotone in density, dimensions, colour", function()
  local row = {}
  for j = 1, 21 do row[j] = (j - 1) / 20 end
  local fig = sift.plot.heatmap({ row }, { cell_width = 1, min = 0, max = 1 })
  local ls = lines_of(tostring(fig))
  check(ls[1] == "┌" .. ("─"):rep(21) .. "┐", "top border: %s", ls[1])
  local body = ls[2]
  local chars = {}
  for _, cp in utf8.codes(body) do chars[#chars + 1] = utf8.char(cp) end
  check(#chars == 23, "row width %d", #chars)
  local level = {}
  for i, s in ipairs(sift.plot.shades) do level[s] = i end
  local prev = 0
  for j = 2, 22 do
    local l = level[chars[j]]
    check(l ~= nil, "unknown shade '%s'", chars[j])
    check(l >= prev, "shading not monotone at column %d", j - 1)
    prev = l or prev
  end
  check(level[chars[2]] == 1 and level[chars[22]] == #sift.plot.shades, "from blank to full")
  -- the level function itself over a fine sweep
  local last = 0
  for i = 0, 1000 do
    local l = sift.plot.shade_level(i / 1000, 0, 1)
    check(l >= last, "shade_level not monotone at %g", i / 1000)
    last = l
  end
  -- a mask-density result: one panel per target, titles, default cell width 2
  local dens = { names = { "a", "b" }, a = { { 0.1, 0.2 }, { 0.3, 0.4 }, shape = { 8, 8 }, name = "a", density = 0.25 },
    b = { { 0, 1 }, { 1, 0 }, shape = { 4, 4 }, name = "b", density = 0.5 } }
  local t = tostring(sift.plot.heatmap(dens))
  check(t:find("8x8, density 25%", 1, true) and t:find("4x4, density 50%", 1, true), "panel titles:\n%s", t)
  check(select(2, t:gsub("┌", "")) == 2, "two panels")
  local one = tostring(sift.plot.heatmap(dens, { name = "b" }))
  check(select(2, one:gsub("┌", "")) == 1, "one panel by name")
  check(tostring(sift.plot.heatmap({ { 0, 1 } }, { color = true })):find("\27[48;5;", 1, true), "256-colour cells")
  check(has_braille(tostring(sift.plot.line({ 1, 2 }))), "sanity")
end)

---------------------------------------------------------------------------------------------------
-- the REPL's printer
---------------------------------------------------------------------------------------------------
test("__sift_show: tostring for objects, readable nested tables", function()
  check(type(__sift_show) == "function", "__sift_show not installed")
  local out = sift.show({ b = 2, a = { 1, 2, 3 }, ["odd key"] = "x", c = { d = { e = { f = { g = 1 } } } } })
  local ia, ib = out:find("a = "), out:find("b = ")
  check(ia and ib and ia < ib, "sorted keys:\n%s", out)
  check(out:find('["odd key"] = "x"', 1, true), "quoted key and string:\n%s", out)
  check(out:find("{1, 2, 3}", 1, true), "short arrays inline:\n%s", out)
  check(out:find("…", 1, true), "depth beyond 3 abbreviated:\n%s", out)
  local big = {}
  for i = 1, 500 do big[i] = i end
  local bs = sift.show(big)
  check(bs:find("500 entries", 1, true) and not bs:find("250,", 1, true), "long array abbreviated")
  check(#lines_of(bs) < 10, "long array kept short (%d lines)", #lines_of(bs))
  local t = sift.zeros(2, 2)
  check(sift.show(t) == tostring(t), "tensor printed with tostring")
  check(sift.show({ t = t }):find("shape=(2, 2)", 1, true), "tensor inside a table summarised")
  local cyc = {}
  cyc.self = cyc
  check(sift.show(cyc):find("cycle", 1, true), "cycles")
  local printed = {}
  local saved = io.stdout
  local buf = { write = function(self, ...) for _, s in ipairs { ... } do printed[#printed + 1] = s end return self end,
    flush = function() end }
  io.stdout = buf -- luacheck: ignore
  local ok, err = pcall(__sift_show, 1, "two", { 3 })
  io.stdout = saved -- luacheck: ignore
  check(ok, "show raised: %s", tostring(err))
  check(table.concat(printed) == "1\ttwo\t{3}\n", "several values: %q", table.concat(printed))
  check(sift.show(sift.load):find("sift.load(path", 1, true), "documented function shows its signature")
end)

---------------------------------------------------------------------------------------------------
-- help
---------------------------------------------------------------------------------------------------
local function public(k) return type(k) == "string" and not k:match("^_") and k ~= "install" end

test("help covers every public function and method", function()
  local dir = H.need_shared("models/gpt2-4m/config.json"):gsub("/config.json$", "")
  local reg = sift.help_registry()
  -- method tables, taken from values obtained at run time where possible
  local tok = sift.tokenizer(dir)
  local tok_index = getmetatable(tok).__index
  local tok_methods = type(tok_index) == "table" and tok_index or select(2, debug.getupvalue(tok_index, 1))
  local model = sift.build({ arch = "gpt2", vocab_size = 64, n_layer = 1, n_head = 2, d_model = 16, max_pos = 32 },
    { task = "classify", num_labels = 2 })
  local set = sift.full(model)
  local opt = sift.AdamW(set, { lr = 1e-3 })
  local ds = sift.data.new({ { text = "a b", label = 0 }, { text = "c", label = 1 } }, { name = "x", num_labels = 2 })
  local trainer = sift.trainer { model = model, method = set, data = ds, tokenizer = tok, batch = 2, quiet = true }
  local fig = sift.plot.line({ 1, 2 })
  local classes = {
    { "Tensor", getmetatable(sift.zeros(1)).__index }, { "Tensor", sift.Tensor },
    { "Model", getmetatable(model).methods }, { "Model", sift.Model },
    { "Set", getmetatable(set).__index }, { "Set", sift.Set },
    { "Tokenizer", tok_methods }, { "Tokenizer", sift.Tokenizer },
    { "AdamW", getmetatable(opt).__index },
    { "Dataset", getmetatable(ds) }, { "Figure", getmetatable(fig) },
    { "Rng", getmetatable(sift.data.rng(1)).__index },
    { "Trainer", trainer },
    { "Landscape", getmetatable(sift.landscape(model, { input_ids = { { 1, 2, 3 } }, labels = { 0 } }, { points = 1 })) },
  }
  if rawget(sift, "Delta") then classes[#classes + 1] = { "Delta", sift.Delta } end
  local class_table = {}
  for _, c in ipairs(classes) do
    check(type(c[2]) == "table", "no method table for %s", c[1])
    if type(c[2]) == "table" then class_table[c[2]] = c[1] end
  end
  local found, seen = {}, {}
  local function walk(t, prefix, depth)
    if seen[t] or depth > 5 then return end
    seen[t] = true
    for k, v in pairs(t) do
      if public(k) then
        if type(v) == "function" then found[#found + 1] = { prefix .. "." .. k, v }
        elseif type(v) == "table" and not class_table[v] then walk(v, prefix .. "." .. k, depth + 1) end
      end
    end
  end
  walk(sift, "sift", 0)
  for t, c in pairs(class_table) do
    for k, v in pairs(t) do
      if public(k) and not k:match("^__") and type(v) == "function" then found[#found + 1] = { c .. ":" .. k, v } end
    end
  end
  found[#found + 1] = { "help", help }
  local missing = {}
  for _, f in ipairs(found) do
    if not reg[f[1]] and not sift.help_signature(f[2]) then missing[#missing + 1] = f[1] end
  end
  table.sort(missing)
  check(#found > 100, "only %d functions found", #found)
  check(#missing == 0, "functions without help (add them to lua/sift/help.lua): %s", table.concat(missing, ", "))
  print(("    %d functions and methods checked, %d help entries"):format(#found, #reg.sections > 0 and (function()
    local n = 0
    for _, s in ipairs(reg.sections) do n = n + #s.names end
    return n
  end)() or 0))
  -- entries that name nothing at run time (parts not built yet) are reported, not failed
  local names = {}
  for _, f in ipairs(found) do names[f[1]] = true end
  local orphans = {}
  for _, s in ipairs(reg.sections) do
    for _, n in ipairs(s.names) do
      local e = reg[n]
      if not names[n] and not e.sig:find("%(string%)") and not e.sig:find("%(boolean%)") then
        local ok = n:match("^sift%.") and (function()
          local v = sift
          for part in n:gmatch("[^.]+") do
            if part ~= "sift" then v = type(v) == "table" and v[part] or nil end
          end
          return v ~= nil
        end)()
        if not ok then orphans[#orphans + 1] = n end
      end
    end
  end
  if #orphans > 0 then print("    documented but not present in this build: " .. table.concat(orphans, ", ")) end
end)

test("help(name) prints signature and description; lookups by alias and value", function()
  local t = captured(help, "sift.load")
  check(t:find("sift.load(", 1, true) and t:find("path", 1, true), "help(\"sift.load\"): %s", t)
  check(captured(help, "load") == t, "help(\"load\") = help(\"sift.load\")")
  check(captured(help, sift.load) == t, "help(sift.load) by value")
  check(captured(help, "Tensor:norm"):find("t:norm()", 1, true), "Tensor:norm")
  check(captured(help, "tensor:norm"):find("t:norm()", 1, true), "tensor:norm")
  check(captured(help, "model:forward"):find("model:forward(batch", 1, true), "model:forward")
  check(captured(help, "forward"):find("model:forward(batch", 1, true), "bare method name")
  check(captured(help, "sift.plot.line"):find("braille", 1, true), "sift.plot.line")
  check(captured(help, sift.zeros(1)):find("Tensor:norm", 1, true), "help(value) lists the class methods")
  check(captured(help, "sift.data"):find("sift.data.encode", 1, true), "module overview")
  local topics = captured(help)
  check(topics:find("Tensors:", 1, true) and topics:find("sift.coverage", 1, true), "help() lists topics")
  check(captured(help, "no_such_thing"):find("no help", 1, true), "unknown topic")
  check(sift.help == help, "sift.help is the global help")
  -- every entry renders
  local reg = sift.help_registry()
  for _, s in ipairs(reg.sections) do
    for _, n in ipairs(s.names) do
      local e = reg[n]
      check(type(e.sig) == "string" and type(e.doc) == "string" and #e.doc > 0, "entry %s", n)
      local out = captured(help, n)
      check(out:find(e.sig:match("^[^\n]*"), 1, true), "help(%q) prints its signature", n)
      for l in e.doc:gmatch("[^\n]+") do check(#l <= 110, "%s: doc line longer than 110 columns", n) end
    end
  end
end)

test("docs/reference.md is generated from the registry and up to date", function()
  local dir = tmpdir()
  local out = dir .. "/reference.md"
  local saved = arg
  arg = { out } -- luacheck: ignore
  local ok, err = pcall(captured, dofile, "scripts/gen_reference.lua")
  arg = saved -- luacheck: ignore
  check(ok, "gen_reference failed: %s", tostring(err))
  local text = read(out)
  local reg = sift.help_registry()
  for _, s in ipairs(reg.sections) do
    check(text:find("## " .. s.title, 1, true), "section %s", s.title)
    for _, n in ipairs(s.names) do check(text:find("### `" .. n .. "`", 1, true), "entry %s", n) end
  end
  local f = io.open("docs/reference.md", "rb")
  check(f ~= nil, "docs/reference.md missing (run ./build/sift-repl scripts/gen_reference.lua)")
  if f then
    local cur = f:read("a")
    f:close()
    check(cur == text, "docs/reference.md is stale: run ./build/sift-repl scripts/gen_reference.lua")
  end
  os.remove(out)
  os.remove(dir)
end)

H.run()
