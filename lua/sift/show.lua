-- sift/show.lua — how the REPL prints results. install(sift) sets the global __sift_show(...), which
-- sift-repl calls with the values of an expression: values with a __tostring (tensors, models, sets,
-- figures, datasets, coverage results) print with tostring; plain tables print nested with sorted keys,
-- abbreviated beyond M.max_items entries and M.max_depth levels (like torch7's th); strings print as they
-- are at top level and quoted inside tables; a function that has a help entry shows its signature.
-- sift.show(value, opts) returns the text (opts: max_items, max_depth, width).
local M = { max_items = 40, max_depth = 3, width = 100 }

local sift_ref -- the module table, for help signatures
local inline -- defined below

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat return then true
  until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function is_ident(k) return type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

local function fmt_number(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  local s = ("%.6g"):format(v)
  if not s:find("[%.eni]") then s = s .. ".0" end -- keep floats visibly floats (like Lua's own 1.0)
  return s
end

local function signature_of(f)
  local h = sift_ref and rawget(sift_ref, "help_signature")
  if type(h) == "function" then
    local ok, sig = pcall(h, f)
    if ok and sig then return sig end
  end
  return nil
end

-- one-line form of a value that is not a plain table
local function scalar(v, quote)
  local t = type(v)
  if t == "string" then return quote and ("%q"):format(v):gsub("\\\n", "\\n") or v end
  if t == "number" then return fmt_number(v) end
  if t == "function" then
    local sig = signature_of(v)
    return sig and ("function: %s"):format(sig) or tostring(v)
  end
  if has_tostring(v) then
    local ok, s = pcall(tostring, v)
    if not ok then return "<" .. t .. ": tostring failed>" end
    if quote and s:find("\n") then -- multi-line (a tensor, a figure) inside a table: a summary
      local tail = s:match("(shape=%b(), dtype=[%w_]+)%)%s*$")
      if tail then return "tensor(" .. tail .. ")" end
      return s:match("^[^\n]*") .. " …"
    end
    return s
  end
  return tostring(v)
end

local function sorted_keys(t)
  local n = #t
  local keys = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  local rank = { number = 1, string = 2, boolean = 3 }
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return (rank[ta] or 9) < (rank[tb] or 9) end
    if ta == "number" then return a < b end
    if ta == "string" then -- natural order: k2 before k10
      local pa, pb = a:gsub("%d+", function(d) return ("%012d"):format(tonumber(d) or 0) end),
        b:gsub("%d+", function(d) return ("%012d"):format(tonumber(d) or 0) end)
      if pa ~= pb then return pa < pb end
      return a < b
    end
    return tostring(a) < tostring(b)
  end)
  return n, keys
end

local function key_str(k)
  if is_ident(k) then return k end
  return "[" .. scalar(k, true) .. "]"
end

local function plain_table(v) return type(v) == "table" and not has_tostring(v) end

-- one-line form of a small table (at most 8 entries per level, nothing multi-line), or nil
inline = function(v, opts, depth, seen, budget)
  local n, keys = sorted_keys(v)
  if n + #keys > 8 or depth >= opts.max_depth then return nil end
  local parts = {}
  local function one(x)
    if plain_table(x) then
      if seen[x] then return "<cycle>" end
      if next(x) == nil then return "{}" end
      seen[x] = true
      local r = inline(x, opts, depth + 1, seen, budget)
      seen[x] = nil
      return r
    end
    local s = scalar(x, true)
    if s:find("\n") then return nil end
    return s
  end
  for i = 1, n do
    local s = one(v[i])
    if not s then return nil end
    parts[#parts + 1] = s
  end
  for _, k in ipairs(keys) do
    local s = one(v[k])
    if not s then return nil end
    parts[#parts + 1] = key_str(k) .. " = " .. s
  end
  local line = "{" .. table.concat(parts, ", ") .. "}"
  if #line > 100 then return nil end
  return line
end

local function render(v, opts, depth, indent, seen, out)
  if not plain_table(v) then
    out[#out + 1] = scalar(v, depth > 0)
    return
  end
  if seen[v] then
    out[#out + 1] = "<cycle>"
    return
  end
  local n, keys = sorted_keys(v)
  local total = n + #keys
  if total == 0 then
    out[#out + 1] = "{}"
    return
  end
  if depth >= opts.max_depth then
    out[#out + 1] = ("{…%d %s}"):format(total, total == 1 and "entry" or "entries")
    return
  end
  seen[v] = true
  -- small nested tables on one line when they fit: {a = 1, b = {1, 2}}
  local compact = inline(v, opts, depth, seen, 0)
  if compact and utf8.len(compact) + #indent <= math.min(opts.width, 80) then
    out[#out + 1] = compact
    seen[v] = nil
    return
  end
  -- inline form when everything is scalar and it fits on one line
  local all_scalar = true
  for i = 1, n do if plain_table(v[i]) then all_scalar = false break end end
  if all_scalar then for _, k in ipairs(keys) do if plain_table(v[k]) then all_scalar = false break end end end
  local max = opts.max_items
  if all_scalar then
    local parts = {}
    local cut, head = total > max, math.max(1, max - 3)
    for i = 1, n do
      if cut and i > head and i <= n - 2 then
        if i == head + 1 then parts[#parts + 1] = ("… (%d more)"):format(n - 2 - head) end
      else
        parts[#parts + 1] = scalar(v[i], true)
      end
    end
    for i, k in ipairs(keys) do
      if n + i <= max then parts[#parts + 1] = key_str(k) .. " = " .. scalar(v[k], true)
      elseif n + i == max + 1 then parts[#parts + 1] = ("… (%d more keys)"):format(#keys - i + 1) end
    end
    local line = "{" .. table.concat(parts, ", ") .. "}"
    if total > max then line = line .. (" -- %d entries"):format(total) end
    if utf8.len(line) + #indent <= opts.width then
      out[#out + 1] = line
      seen[v] = nil
      return
    end
    -- too long for one line: pack the items into lines of the display width
    local inner = indent .. "  "
    local lines, cur = { "{" }, inner
    for i, p in ipairs(parts) do
      local piece = p .. (i < #parts and "," or "")
      if cur ~= inner and utf8.len(cur) + 1 + utf8.len(piece) > opts.width then
        lines[#lines + 1] = cur
        cur = inner .. piece
      else
        cur = cur == inner and inner .. piece or cur .. " " .. piece
      end
    end
    lines[#lines + 1] = cur
    if total > max then lines[1] = ("{ -- %d entries"):format(total) end
    lines[#lines + 1] = indent .. "}"
    out[#out + 1] = table.concat(lines, "\n")
    seen[v] = nil
    return
  end
  local inner = indent .. "  "
  local lines = { "{" }
  local function item(prefix, val)
    local sub = {}
    render(val, opts, depth + 1, inner, seen, sub)
    lines[#lines + 1] = inner .. prefix .. table.concat(sub) .. ","
  end
  local cut, head = total > max, math.max(1, max - 3)
  for i = 1, n do
    if cut and i > head and i <= n - 2 then
      if i == head + 1 then lines[#lines + 1] = inner .. ("… (%d more entries)"):format(n - 2 - head) end
    else
      item("", v[i])
    end
  end
  for i, k in ipairs(keys) do
    if n + i <= max then item(key_str(k) .. " = ", v[k])
    elseif n + i == max + 1 then lines[#lines + 1] = inner .. ("… (%d more keys)"):format(#keys - i + 1) end
  end
  lines[#lines + 1] = indent .. "}"
  seen[v] = nil
  out[#out + 1] = table.concat(lines, "\n")
end

-- sift.show(value, opts) -> the text the REPL prints for value
function M.show(v, opts)
  local o = { max_items = M.max_items, max_depth = M.max_depth, width = M.width }
  if type(opts) == "table" then
    package.loaded.sift._check_options(opts, "sift.show", { "max_items", "max_depth", "width", "stdout" })
    for k, x in pairs(opts) do o[k] = x end
  end
  local out = {}
  render(v, o, 0, "", {}, out)
  return table.concat(out)
end

-- the REPL's printer: several values are separated by tabs (multi-line ones by new lines)
function M.print(...)
  local n = select("#", ...)
  if n == 0 then return end
  local parts, multi = {}, false
  for i = 1, n do
    parts[i] = M.show((select(i, ...)))
    if parts[i]:find("\n") then multi = true end
  end
  io.stdout:write(table.concat(parts, multi and "\n" or "\t"), "\n")
  io.stdout:flush()
end

function M.install(sift)
  sift_ref = sift
  sift.show = M.show
  _G.__sift_show = M.print
end

return M
