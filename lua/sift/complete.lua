-- sift/complete.lua — completion inside string literals for sift-repl. The REPL calls the global
-- __sift_complete_string(before, text) when Tab is pressed inside a string: `before` is the line up to the
-- word being completed (it contains the opening quote), `text` is the word. When the string is the first
-- argument of a method that takes a parameter name — model:param("…, model:grad("…, model:param_shape("…,
-- s:indices("…, s:increment("…, s:budget("… — and the receiver is a loaded model or a set, the result is
-- the list of matching parameter names (replacements for `text`); otherwise nil, and the REPL falls back
-- to file names. The receiver is looked up as a path of names (`m`, `runs.base`, `models[2]`,
-- `t["gpt2"].model`) through raw fields and __index tables only: nothing the user wrote is executed.
local M = {}

-- method name -> which names it takes: "model" (every parameter of the model or of the set's model) or
-- "targets" (the sparse / LoRA targets of a set). Extend freely.
M.methods = {
  param = "model", grad = "model", param_shape = "model",
  indices = "targets", increment = "targets", budget = "targets",
}

local getmeta = (debug and debug.getmetatable) or getmetatable

local function kind_of(v)
  local mt = getmeta(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  if name == "sift.Model" then return "model" end
  if name == "sift.Set" then return "set" end
  return nil
end

-- v[key] without running any function: raw field, then __index tables (a few levels).
local function field(v, key)
  for _ = 1, 8 do
    if type(v) == "table" then
      local r = rawget(v, key)
      if r ~= nil then return r end
    elseif type(v) ~= "userdata" then
      return nil
    end
    local mt = getmeta(v)
    local idx = type(mt) == "table" and rawget(mt, "__index")
    if type(idx) ~= "table" then return nil end
    v = idx
  end
  return nil
end

-- Resolves a path such as  a.b[2]["c"].d  starting at the globals; nil when it is not such a path.
local function resolve(path)
  local name = path:match("^[%a_][%w_]*")
  if not name then return nil end
  local v = field(_G, name)
  local pos = #name + 1
  while v ~= nil and pos <= #path do
    local key, stop
    local f = path:match("^%.([%a_][%w_]*)", pos)
    if f then
      key, stop = f, pos + 1 + #f
    else
      local n = path:match("^%[%s*(%d+)%s*%]", pos)
      if n then
        key, stop = tonumber(n), pos + #path:match("^%b[]", pos)
      else
        local q, s = path:match("^%[%s*([\"'])(.-)%1%s*%]", pos)
        if not q then return nil end
        key, stop = s, pos + #path:match("^%b[]", pos)
      end
    end
    v, pos = field(v, key), stop
  end
  return v
end

-- Start of the unclosed string literal in `line` (index of its quote) or nil.
local function open_quote(line)
  local q, at, i = nil, nil, 1
  while i <= #line do
    local c = line:sub(i, i)
    if q then
      if c == "\\" then
        i = i + 1
      elseif c == q then
        q = nil
      end
    elseif c == '"' or c == "'" then
      q, at = c, i
    elseif c == "-" and line:sub(i, i + 1) == "--" then
      return nil -- in a comment
    end
    i = i + 1
  end
  return q and at or nil
end

local function names_for(v, want)
  local kind = kind_of(v)
  local ok, list
  if kind == "model" then
    ok, list = pcall(v.names, v)
  elseif kind == "set" then
    if want == "targets" then
      ok, list = pcall(v.targets, v)
    else
      ok, list = pcall(function() return v:model():names() end)
    end
  end
  if ok and type(list) == "table" then return list end
  return nil
end

-- The candidates for a string whose content so far is `typed` inside the call that `call` ends with.
function M.candidates(call, typed)
  local head, method = call:match("^(.-)%s*:%s*([%a_][%w_]*)%s*%(?%s*$")
  if not head or not M.methods[method] then return nil end
  local path = head:match("([%a_][%w_%.%[%]\"']*)$")
  if not path then return nil end
  local v = resolve(path)
  if v == nil then return nil end
  local list = names_for(v, M.methods[method])
  if not list then return nil end
  local out = {}
  for _, n in ipairs(list) do
    if type(n) == "string" and n:sub(1, #typed) == typed then out[#out + 1] = n end
  end
  table.sort(out)
  return out
end

-- The REPL hook: `before` ends where the word `text` starts; returns replacements for `text`.
function M.complete_string(before, text)
  before, text = tostring(before or ""), tostring(text or "")
  local q = open_quote(before)
  if not q then return nil end
  local typed_before = before:sub(q + 1) -- part of the string left of the word (when it had break characters)
  local list = M.candidates(before:sub(1, q - 1), typed_before .. text)
  if not list then return nil end
  local out = {}
  for i, n in ipairs(list) do out[i] = n:sub(#typed_before + 1) end
  return out
end

function M.install(sift)
  sift.complete = M
  _G.__sift_complete_string = function(before, text)
    local ok, r = pcall(M.complete_string, before, text)
    if ok then return r end
    return nil
  end
end

return M
