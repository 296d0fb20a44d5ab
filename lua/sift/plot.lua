-- sift/plot.lua — terminal plots (becomes `sift.plot`), pure Lua 5.4.
--
--   sift.plot.line(series, opts)    y-series (loss curves, ...) drawn with Unicode braille (2x4 dots a cell)
--   sift.plot.curve(cov, opts)      gradient-concentration curves from sift.coverage (x = fraction, log axis)
--   sift.plot.heatmap(grid, opts)   block shading ' ░▒▓█' (or 256-colour with opts.color), e.g. mask densities
--   sift.plot.save(fig, "f.svg")    the same figure as a standalone SVG file (written atomically)
--
-- Every function returns a figure: tostring(fig) is the text plot (so the REPL prints it), fig:svg() the
-- SVG text, fig:save(path) writes it. Line plots: opts.width / opts.height are the plot area in character
-- cells (default 64 x 16), so the figure is title + height rows + axis + tick labels + legend.
local M = {}
local checked = require "sift.options" -- refuses option keys a public function does not know

local Figure = {}
Figure.__index = Figure
M.Figure = Figure

local floor, ceil, huge = math.floor, math.ceil, math.huge

local function finite(v) return type(v) == "number" and v == v and v ~= huge and v ~= -huge end

local function ulen(s) return utf8.len(s) or #s end

local function fmt_num(v)
  if v == 0 then return "0" end
  local a = math.abs(v)
  if a >= 1e6 or a < 1e-4 then return ("%.2e"):format(v):gsub("%.?0+e", "e") end
  local s = ("%.4g"):format(v)
  return s
end

local function fmt_pct(v)
  local s = ("%.3g"):format(100 * v)
  return s .. "%"
end

local function lpad(s, n) return (" "):rep(math.max(0, n - ulen(s))) .. s end
local function rpad(s, n) return s .. (" "):rep(math.max(0, n - ulen(s))) end
local function center(s, n)
  local pad = math.max(0, n - ulen(s))
  return (" "):rep(pad // 2) .. s
end

---------------------------------------------------------------------------------------------------
-- input normalisation
---------------------------------------------------------------------------------------------------
local function is_numarray(t)
  if type(t) ~= "table" then return false end
  if getmetatable(t) and getmetatable(t).__name == "sift.Tensor" then return false end
  local n = #t
  if n == 0 then return false end
  for i = 1, n do if type(t[i]) ~= "number" then return false end end
  return true
end

local function from_tensor(t)
  local ok, tab = pcall(function() return t:totable() end)
  if ok then return tab end
  return nil
end

local function one_series(s, label)
  if type(s) == "userdata" then s = from_tensor(s) end
  if is_numarray(s) then return { y = s, label = label } end
  if type(s) == "table" and s.y then
    local y = type(s.y) == "userdata" and from_tensor(s.y) or s.y
    local x = type(s.x) == "userdata" and from_tensor(s.x) or s.x
    return { x = x, y = y, label = s.label or s.name or label }
  end
  if type(s) == "table" and is_numarray(s.loss) and (s.lr ~= nil or s.steps ~= nil or s.grad_norm ~= nil) then
    -- a training history from sift.train
    return { y = s.loss, label = label or "loss" }
  end
  return nil
end

-- Accepts: an array of numbers; a tensor; {x =, y =, label =}; a training history (its .loss); an array
-- of any of these; or a table name -> series (labelled by the names, sorted).
local function normalise(series, who)
  local out = {}
  local single = one_series(series)
  if single then
    out[1] = single
  elseif type(series) == "table" and #series > 0 then
    for i, s in ipairs(series) do
      local n = one_series(s)
      if not n then error(("%s: series %d is not an array of numbers or {x =, y =}"):format(who, i), 3) end
      out[#out + 1] = n
    end
  elseif type(series) == "table" then
    local keys = {}
    for k in pairs(series) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      local n = one_series(series[k], tostring(k))
      if n then out[#out + 1] = n end
    end
  end
  if #out == 0 then error(who .. ": expected y values (an array of numbers, {x =, y =} or several of them)", 3) end
  for i, s in ipairs(out) do
    if not s.x then
      s.x = {}
      for j = 1, #s.y do s.x[j] = j end
    end
    if #s.x ~= #s.y then error(("%s: series %d has %d x values and %d y values"):format(who, i, #s.x, #s.y), 3) end
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- axes
---------------------------------------------------------------------------------------------------
local function data_range(series, key, log)
  local lo, hi = huge, -huge
  for _, s in ipairs(series) do
    for _, v in ipairs(s[key]) do
      if finite(v) and (not log or v > 0) then
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
    end
  end
  return lo, hi
end

local function axis(series, opts, key)
  local log = opts["log" .. key]
  local r = opts[key] or {}
  local lo = opts[key .. "min"] or r[1] or r.min
  local hi = opts[key .. "max"] or r[2] or r.max
  if lo == nil or hi == nil then
    local dlo, dhi = data_range(series, key, log)
    if dlo == huge then dlo, dhi = log and 1 or 0, log and 10 or 1 end
    lo, hi = lo or dlo, hi or dhi
  end
  if log and (lo <= 0 or hi <= 0) then error("plot: a log axis needs positive limits", 3) end
  if lo == hi then
    if log then lo, hi = lo / 2, hi * 2
    else
      local d = lo == 0 and 0.5 or math.abs(lo) * 0.1
      lo, hi = lo - d, hi + d
    end
  end
  if lo > hi then lo, hi = hi, lo end
  local ax = { lo = lo, hi = hi, log = log and true or false }
  if log then
    local a, b = math.log(lo, 10), math.log(hi, 10)
    ax.t = function(v) return (math.log(v, 10) - a) / (b - a) end
  else
    ax.t = function(v) return (v - lo) / (hi - lo) end
  end
  return ax
end

-- a "nice" step (1, 2 or 5 times a power of ten) giving about n intervals over range
local function nice_step(range, n)
  local raw = range / math.max(n, 1)
  local mag = 10 ^ floor(math.log(raw, 10))
  local f = raw / mag
  return (f < 1.5 and 1 or f < 3 and 2 or f < 7 and 5 or 10) * mag
end

-- tick values: min and max, plus about n_mid round values in between (decades on a log axis), none
-- closer to an end than a fraction `gap` of the axis
local function ticks(ax, fmt, n_mid, gap)
  gap = gap or 0.08
  local out = { { v = ax.lo, label = fmt(ax.lo) } }
  if n_mid > 0 then
    if ax.log then
      local e = ceil(math.log(ax.lo, 10) - 1e-9)
      while 10 ^ e < ax.hi * (1 - 1e-9) do
        local v = 10 ^ e
        local t = ax.t(v)
        if t > gap and t < 1 - gap then out[#out + 1] = { v = v, label = fmt(v) } end
        e = e + 1
      end
    else
      local step = nice_step(ax.hi - ax.lo, n_mid + 1)
      local k = ceil(ax.lo / step - 1e-9)
      while k * step < ax.hi do
        local v = tonumber(("%.12g"):format(k * step))
        local t = ax.t(v)
        if t > gap and t < 1 - gap then out[#out + 1] = { v = v, label = fmt(v) } end
        k = k + 1
      end
    end
  end
  out[#out + 1] = { v = ax.hi, label = fmt(ax.hi) }
  return out
end

---------------------------------------------------------------------------------------------------
-- braille canvas
---------------------------------------------------------------------------------------------------
local DOT = { [0] = { [0] = 0x01, 0x02, 0x04, 0x40 }, [1] = { [0] = 0x08, 0x10, 0x20, 0x80 } }
local PALETTE = { 33, 208, 34, 199, 178, 93, 37, 160 } -- 256-colour indices per series
local SVG_COLORS = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf" }
local DASH_TEXT = { "──", "╌╌", "┈┈", "━━", "┅┅", "┉┉", "══", "··" }
local DASH_SVG = { nil, "6,3", "2,2", nil, "8,3,2,3", "1,3", "10,2", "1,1" }

local function dash_on(i, step)
  local k = (i - 1) % 4
  if k == 0 then return true end
  if k == 1 then return step % 6 < 4 end
  if k == 2 then return step % 3 == 0 end
  return step % 8 < 6
end

local function canvas(w, h)
  local c = { w = w, h = h, bits = {}, owner = {} }
  for r = 1, h do
    c.bits[r], c.owner[r] = {}, {}
    for k = 1, w do c.bits[r][k] = 0 end
  end
  return c
end

local function plot_dot(c, px, py, who)
  if px < 0 or py < 0 or px >= 2 * c.w or py >= 4 * c.h then return end
  local col, row = px // 2 + 1, py // 4 + 1
  c.bits[row][col] = c.bits[row][col] | DOT[px % 2][py % 4]
  c.owner[row][col] = who
end

local function draw_line(c, x0, y0, x1, y1, who, step0)
  local dx, dy = math.abs(x1 - x0), -math.abs(y1 - y0)
  local sx, sy = x0 < x1 and 1 or -1, y0 < y1 and 1 or -1
  local err, step = dx + dy, step0 or 0
  local guard = 0
  while true do
    if dash_on(who, step) then plot_dot(c, x0, y0, who) end
    step = step + 1
    if x0 == x1 and y0 == y1 then break end
    local e2 = 2 * err
    if e2 >= dy then err, x0 = err + dy, x0 + sx end
    if e2 <= dx then err, y0 = err + dx, y0 + sy end
    guard = guard + 1
    if guard > 100000 then break end
  end
  return step
end

---------------------------------------------------------------------------------------------------
-- text rendering of line figures
---------------------------------------------------------------------------------------------------
local function clampi(v, lo, hi) return math.max(lo, math.min(hi, v)) end

local function render_lines(fig)
  local o, series = fig.opts, fig.series
  local W, H = fig.width, fig.height
  local ax, ay = fig.xaxis, fig.yaxis
  local c = canvas(W, H)
  local PW, PH = 2 * W - 1, 4 * H - 1
  local function px(v) return floor(ax.t(v) * PW + 0.5) end
  local function py(v) return floor((1 - ay.t(v)) * PH + 0.5) end
  for i, s in ipairs(series) do
    local prev, step = nil, 0
    for j = 1, #s.y do
      local x, y = s.x[j], s.y[j]
      local ok = finite(x) and finite(y) and (not ax.log or x > 0) and (not ay.log or y > 0)
      if ok then
        local X, Y = clampi(px(x), -4 * PW, 5 * PW), clampi(py(y), -4 * PH, 5 * PH)
        if prev then step = draw_line(c, prev[1], prev[2], X, Y, i, step)
        else plot_dot(c, X, Y, i) end
        prev = { X, Y }
      else
        prev = nil
      end
    end
  end
  local yt = ticks(ay, fig.yfmt, H // 5, 1.5 / H)
  -- the ends first (max on the top row, min on the bottom row), then round values on free rows
  local row_label = {}
  local function row_of(v) return clampi(floor((1 - ay.t(v)) * (H - 1) + 0.5) + 1, 1, H) end
  row_label[1], row_label[H] = yt[#yt].label, yt[1].label
  for k = 2, #yt - 1 do
    local r = row_of(yt[k].v)
    if not row_label[r] and not row_label[r - 1] and not row_label[r + 1] then row_label[r] = yt[k].label end
  end
  local lw = 0
  for _, l in pairs(row_label) do lw = math.max(lw, ulen(l)) end
  local lines = {}
  local total_w = lw + 2 + W
  if o.title then lines[#lines + 1] = center(o.title, total_w) end
  if o.ylabel then lines[#lines + 1] = o.ylabel end
  for r = 1, H do
    local cells = {}
    local cur = nil
    for k = 1, W do
      local b = c.bits[r][k]
      local ch = b == 0 and " " or utf8.char(0x2800 + b)
      if o.color and b ~= 0 then
        local col = PALETTE[(c.owner[r][k] - 1) % #PALETTE + 1]
        if col ~= cur then ch, cur = ("\27[38;5;%dm"):format(col) .. ch, col end
      elseif o.color and cur and b == 0 then
        -- spaces need no colour
      end
      cells[k] = ch
    end
    local tail = (o.color and cur) and "\27[0m" or ""
    local lab = row_label[r]
    lines[#lines + 1] = lpad(lab or "", lw) .. (lab and " ┤" or " │") .. table.concat(cells) .. tail
  end
  -- x axis with tick marks, then tick labels placed under them without overlap
  local xt = ticks(ax, fig.xfmt, W // 14)
  local axis_cells = {}
  for k = 1, W do axis_cells[k] = "─" end
  local label_line = {}
  for k = 1, W + 2 do label_line[k] = " " end
  local placed = {}
  local order = { 1, #xt }
  for k = 2, #xt - 1 do order[#order + 1] = k end
  for _, idx in ipairs(order) do
    local t = xt[idx]
    local col = clampi(floor(ax.t(t.v) * (W - 1) + 0.5) + 1, 1, W)
    local len = ulen(t.label)
    local start
    if idx == 1 then start = 1
    elseif idx == #xt then start = W - len + 1
    else start = col - len // 2 end
    start = clampi(start, 1, math.max(1, W - len + 1))
    local free = true
    for _, p in ipairs(placed) do
      if start <= p[2] + 1 and start + len - 1 >= p[1] - 1 then free = false end
    end
    if free then
      placed[#placed + 1] = { start, start + len - 1 }
      local k = 0
      for _, cp in utf8.codes(t.label) do
        label_line[start + k] = utf8.char(cp)
        k = k + 1
      end
      if idx ~= 1 and idx ~= #xt then axis_cells[col] = "┬" end
    end
  end
  lines[#lines + 1] = (" "):rep(lw) .. " └" .. table.concat(axis_cells)
  local ll = table.concat(label_line, "", 1, W):gsub("%s+$", "")
  lines[#lines + 1] = (" "):rep(lw + 2) .. ll
  if o.xlabel then lines[#lines + 1] = (" "):rep(lw + 2) .. center(o.xlabel, W) end
  local show_legend = o.legend
  if show_legend == nil then show_legend = #series > 1 or series[1].label ~= nil end
  if show_legend then
    local parts = {}
    for i, s in ipairs(series) do
      local mark = DASH_TEXT[(i - 1) % #DASH_TEXT + 1]
      if o.color then mark = ("\27[38;5;%dm%s\27[0m"):format(PALETTE[(i - 1) % #PALETTE + 1], mark) end
      parts[#parts + 1] = mark .. " " .. tostring(s.label or ("series " .. i))
    end
    lines[#lines + 1] = (" "):rep(lw + 2) .. table.concat(parts, "   ")
  end
  return lines
end

---------------------------------------------------------------------------------------------------
-- heatmaps
---------------------------------------------------------------------------------------------------
M.shades = { " ", "░", "▒", "▓", "█" }
-- a dark-to-bright sequential ramp of 256-colour indices (viridis-like), and its RGB twin for SVG
local RAMP = { 17, 18, 54, 55, 61, 67, 31, 37, 36, 35, 71, 77, 113, 149, 185, 221, 226 }
local RAMP_RGB = { { 68, 1, 84 }, { 72, 40, 120 }, { 62, 74, 137 }, { 49, 104, 142 }, { 38, 130, 142 },
  { 31, 158, 137 }, { 53, 183, 121 }, { 109, 205, 89 }, { 180, 222, 44 }, { 253, 231, 37 } }

-- level 1 (' ') for values at or below lo, then 2..5 by quarters of (lo, hi]: monotone in the value
function M.shade_level(v, lo, hi)
  if not finite(v) or v <= lo then return 1 end
  if hi <= lo then return #M.shades end
  local t = (v - lo) / (hi - lo)
  return 2 + clampi(floor(t * 4), 0, 3) -- (0, .25) -> 2, ..., [.75, 1] -> 5
end

local function ramp_color(v, lo, hi)
  local t = hi > lo and clampi((v - lo) / (hi - lo), 0, 1) or 1
  if not finite(v) then t = 0 end
  return RAMP[clampi(floor(t * (#RAMP - 1) + 0.5) + 1, 1, #RAMP)]
end

local function ramp_rgb(v, lo, hi)
  local t = hi > lo and clampi((v - lo) / (hi - lo), 0, 1) or 1
  if not finite(v) then t = 0 end
  local x = t * (#RAMP_RGB - 1)
  local i = clampi(floor(x), 0, #RAMP_RGB - 2)
  local f = x - i
  local a, b = RAMP_RGB[i + 1], RAMP_RGB[i + 2]
  local function mix(k) return floor(a[k] + (b[k] - a[k]) * f + 0.5) end
  return ("#%02x%02x%02x"):format(mix(1), mix(2), mix(3))
end

local function grid_range(panels, o)
  local lo, hi = huge, -huge
  for _, p in ipairs(panels) do
    for _, row in ipairs(p.grid) do
      for _, v in ipairs(row) do
        if finite(v) then lo, hi = math.min(lo, v), math.max(hi, v) end
      end
    end
  end
  if lo == huge then lo, hi = 0, 1 end
  return o.min or math.min(0, lo), o.max or hi
end

local function fit(s, n) -- s cut to n display columns, keeping its end ("…h.0.mlp.c_fc.weight")
  local len = ulen(s)
  if len <= n then return s end
  if n <= 1 then return "…" end
  return "…" .. s:sub(utf8.offset(s, len - n + 2))
end

local function heatmap_block(p, o, lo, hi)
  local cw = o.cell_width or 2
  local ncol = 0
  for _, row in ipairs(p.grid) do ncol = math.max(ncol, #row) end
  local box = ncol * cw + 2
  local width = math.max(box, math.min(ulen(p.title or ""), 36), ulen(p.subtitle or ""))
  local pad = (" "):rep(width - box)
  local block = {}
  local function text(s) block[#block + 1] = rpad(fit(s, width), width) end
  if p.title then text(p.title) end
  if p.subtitle then text(p.subtitle) end
  block[#block + 1] = "┌" .. ("─"):rep(ncol * cw) .. "┐" .. pad
  for _, row in ipairs(p.grid) do
    local cells, cur = {}, nil
    for j = 1, ncol do
      local v = row[j]
      if o.color then
        local col = ramp_color(v or lo, lo, hi)
        cells[j] = (col ~= cur and ("\27[48;5;%dm"):format(col) or "") .. (" "):rep(cw)
        cur = col
      else
        cells[j] = M.shades[M.shade_level(v or lo, lo, hi)]:rep(cw)
      end
    end
    block[#block + 1] = "│" .. table.concat(cells) .. (o.color and "\27[0m" or "") .. "│" .. pad
  end
  block[#block + 1] = "└" .. ("─"):rep(ncol * cw) .. "┘" .. pad
  return block, width
end

local function term_width()
  local c = tonumber(os.getenv("COLUMNS") or "")
  return c and c >= 20 and c or 100
end

local function render_heatmap(fig)
  local o = fig.opts
  local lo, hi = fig.lo, fig.hi
  local lines = {}
  if o.title then lines[#lines + 1] = o.title end
  -- panels side by side, as many as fit in max_width (default $COLUMNS or 100)
  local max_w = o.max_width or term_width()
  local blocks = {}
  local has_sub = false
  for _, p in ipairs(fig.panels) do if p.subtitle then has_sub = true end end
  for _, p in ipairs(fig.panels) do
    if has_sub and not p.subtitle then p.subtitle = "" end
    local b, w = heatmap_block(p, o, lo, hi)
    blocks[#blocks + 1] = { lines = b, width = w }
  end
  local i = 1
  while i <= #blocks do
    local row, used = { blocks[i] }, blocks[i].width
    local j = i + 1
    while j <= #blocks and used + 2 + blocks[j].width <= max_w do
      row[#row + 1] = blocks[j]
      used = used + 2 + blocks[j].width
      j = j + 1
    end
    local height = 0
    for _, b in ipairs(row) do height = math.max(height, #b.lines) end
    if i > 1 then lines[#lines + 1] = "" end
    for r = 1, height do
      local parts = {}
      for k, b in ipairs(row) do parts[k] = b.lines[r] or (" "):rep(b.width) end
      lines[#lines + 1] = (table.concat(parts, "  "):gsub("%s+$", ""))
    end
    i = j
  end
  local scale
  if o.color then
    local parts = {}
    for k = 1, #RAMP do parts[k] = ("\27[48;5;%dm "):format(RAMP[k]) end
    scale = table.concat(parts) .. "\27[0m"
  else
    scale = table.concat(M.shades, "", 2) .. " (' ' = " .. fmt_num(lo) .. ")"
  end
  lines[#lines + 1] = ("scale %s  %s .. %s"):format(scale, fmt_num(lo), fmt_num(hi))
  return lines
end

-- grid input: rows of numbers; a 2-D tensor; one grid of sift.mask_density; or its whole result (panels)
local function heatmap_panels(grid, o, who)
  if type(grid) == "userdata" then grid = from_tensor(grid) end
  if type(grid) ~= "table" then error(who .. ": expected a grid (array of rows of numbers)", 3) end
  local function panel(g, title)
    if #g == 0 or type(g[1]) ~= "table" then error(who .. ": expected a grid (array of rows of numbers)", 4) end
    local subtitle
    if not title and g.name then
      title = g.name
      local parts = {}
      if g.shape then parts[#parts + 1] = table.concat(g.shape, "x") end
      if g.density then parts[#parts + 1] = ("density %.3g%%"):format(100 * g.density) end
      if #parts > 0 then subtitle = table.concat(parts, ", ") end
    end
    return { grid = g, title = title, subtitle = subtitle }
  end
  if grid.names and #grid == 0 then -- a mask_density result
    local panels = {}
    local names = grid.names
    if o.name then names = { o.name } end
    for _, n in ipairs(names) do
      if not grid[n] then error(who .. ": no grid named " .. tostring(n), 3) end
      panels[#panels + 1] = panel(grid[n])
    end
    if #panels == 0 then error(who .. ": the density result holds no grids", 3) end
    return panels
  end
  if is_numarray(grid) then grid = { grid } end
  return { panel(grid) }
end

---------------------------------------------------------------------------------------------------
-- figures
---------------------------------------------------------------------------------------------------
function Figure:render()
  local lines = self.kind == "heatmap" and render_heatmap(self) or render_lines(self)
  return table.concat(lines, "\n")
end

function Figure:__tostring() return self:render() end

function Figure:lines()
  local out = {}
  for l in (self:render() .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

local function xml(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local function num(v) return (("%.2f"):format(v):gsub("%.?0+$", "")) end

local function svg_text(x, y, s, anchor, size, extra)
  return ('<text x="%s" y="%s" font-size="%d" text-anchor="%s"%s>%s</text>'):format(num(x), num(y), size or 12,
    anchor or "start", extra or "", xml(s))
end

local function svg_lines(fig, W, H)
  local o = fig.opts
  local ax, ay = fig.xaxis, fig.yaxis
  local ml, mr, mt, mb = 70, 20, o.title and 40 or 20, o.xlabel and 56 or 40
  local pw, ph = W - ml - mr, H - mt - mb
  local function X(v) return ml + ax.t(v) * pw end
  local function Y(v) return mt + (1 - ay.t(v)) * ph end
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(('<rect x="0" y="0" width="%d" height="%d" fill="white"/>'):format(W, H))
  if o.title then add(svg_text(W / 2, 24, o.title, "middle", 16, ' font-weight="bold"')) end
  -- grid lines and ticks
  for _, t in ipairs(ticks(ay, fig.yfmt, 4, 0.07)) do
    local y = Y(t.v)
    add(('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd" stroke-width="1"/>'):format(num(ml), num(y),
      num(ml + pw), num(y)))
    add(svg_text(ml - 6, y + 4, t.label, "end", 11))
  end
  for _, t in ipairs(ticks(ax, fig.xfmt, 5, 0.06)) do
    local x = X(t.v)
    add(('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd" stroke-width="1"/>'):format(num(x), num(mt),
      num(x), num(mt + ph)))
    add(svg_text(x, mt + ph + 16, t.label, "middle", 11))
  end
  add(('<line x1="%d" y1="%d" x2="%d" y2="%s" stroke="black" stroke-width="1"/>'):format(ml, mt, ml, num(mt + ph)))
  add(('<line x1="%d" y1="%s" x2="%s" y2="%s" stroke="black" stroke-width="1"/>'):format(ml, num(mt + ph),
    num(ml + pw), num(mt + ph)))
  if o.xlabel then add(svg_text(ml + pw / 2, H - 12, o.xlabel, "middle", 12)) end
  if o.ylabel then
    add(('<text x="16" y="%s" font-size="12" text-anchor="middle" transform="rotate(-90 16 %s)">%s</text>'):format(
      num(mt + ph / 2), num(mt + ph / 2), xml(o.ylabel)))
  end
  add(('<clipPath id="plotarea"><rect x="%d" y="%d" width="%s" height="%s"/></clipPath>'):format(ml, mt, num(pw),
    num(ph)))
  for i, s in ipairs(fig.series) do
    local pts = {}
    for j = 1, #s.y do
      local x, y = s.x[j], s.y[j]
      if finite(x) and finite(y) and (not ax.log or x > 0) and (not ay.log or y > 0) then
        pts[#pts + 1] = num(X(x)) .. "," .. num(Y(y))
      end
    end
    local dash = DASH_SVG[(i - 1) % #DASH_SVG + 1]
    add(('<polyline fill="none" stroke="%s" stroke-width="1.8"%s clip-path="url(#plotarea)" points="%s"/>'):format(
      SVG_COLORS[(i - 1) % #SVG_COLORS + 1], dash and (' stroke-dasharray="%s"'):format(dash) or "",
      table.concat(pts, " ")))
  end
  local show_legend = o.legend
  if show_legend == nil then show_legend = #fig.series > 1 or fig.series[1].label ~= nil end
  if show_legend then
    -- the legend box goes in the corner of the plot area that the data crosses least
    local longest = 0
    for i, sr in ipairs(fig.series) do longest = math.max(longest, ulen(tostring(sr.label or ("series " .. i)))) end
    local bw, bh = math.min(pw - 12, 44 + 6.5 * longest), 18 * #fig.series + 4
    local corners = { { ml + pw - bw - 6, mt + 6 }, { ml + 6, mt + 6 }, { ml + pw - bw - 6, mt + ph - bh - 6 },
      { ml + 6, mt + ph - bh - 6 } }
    local best, best_n = corners[1], math.huge
    for _, c in ipairs(corners) do
      local n = 0
      for _, sr in ipairs(fig.series) do
        for j = 1, #sr.y do
          local x, y = sr.x[j], sr.y[j]
          if finite(x) and finite(y) and (not ax.log or x > 0) and (not ay.log or y > 0) then
            local px, py = X(x), Y(y)
            if px >= c[1] - 4 and px <= c[1] + bw + 4 and py >= c[2] - 4 and py <= c[2] + bh + 4 then n = n + 1 end
          end
        end
        -- segments crossing the box count too: sample between points
        for j = 2, #sr.y do
          local x0, y0, x1, y1 = sr.x[j - 1], sr.y[j - 1], sr.x[j], sr.y[j]
          if finite(x0) and finite(y0) and finite(x1) and finite(y1) and (not ax.log or (x0 > 0 and x1 > 0))
            and (not ay.log or (y0 > 0 and y1 > 0)) then
            for f = 0.25, 0.75, 0.25 do
              local px = X(x0) + (X(x1) - X(x0)) * f
              local py = Y(y0) + (Y(y1) - Y(y0)) * f
              if px >= c[1] and px <= c[1] + bw and py >= c[2] and py <= c[2] + bh then n = n + 1 end
            end
          end
        end
      end
      if n < best_n then best, best_n = c, n end
    end
    local lx, ly = best[1] + 6, best[2] + 10
    add(('<rect x="%s" y="%s" width="%s" height="%d" fill="white" fill-opacity="0.85" stroke="#999999"/>'):format(
      num(best[1]), num(best[2]), num(bw), bh))
    for i, s in ipairs(fig.series) do
      local y = ly + (i - 1) * 18
      local dash = DASH_SVG[(i - 1) % #DASH_SVG + 1]
      add(('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>'):format(num(lx), num(y),
        num(lx + 24), num(y), SVG_COLORS[(i - 1) % #SVG_COLORS + 1],
        dash and (' stroke-dasharray="%s"'):format(dash) or ""))
      add(svg_text(lx + 30, y + 4, s.label or ("series " .. i), "start", 11))
    end
  end
  return out
end

local function svg_heatmap(fig, W)
  local o = fig.opts
  local lo, hi = fig.lo, fig.hi
  local out = {}
  local function add(s) out[#out + 1] = s end
  local y0 = 12
  if o.title then
    add(svg_text(W / 2, 26, o.title, "middle", 16, ' font-weight="bold"'))
    y0 = 42
  end
  -- panels in a grid: one cell size for all, as many columns as fit in W
  local maxdim = 1
  for _, p in ipairs(fig.panels) do
    maxdim = math.max(maxdim, #p.grid)
    for _, row in ipairs(p.grid) do maxdim = math.max(maxdim, #row) end
  end
  local single = #fig.panels == 1
  local cell = math.max(2, math.min(24, floor((single and W - 40 or 200) / maxdim)))
  local colw = single and W - 40 or math.max(maxdim * cell, 200) + 24
  local ncols = math.max(1, floor((W - 40 + 24) / colw))
  local x0 = 20
  local y = y0
  local row_h = 0
  for pi, p in ipairs(fig.panels) do
    local c = (pi - 1) % ncols
    if c == 0 and pi > 1 then y, row_h = y + row_h + 16, 0 end
    local px, py = x0 + c * colw, y
    local ncol = 0
    for _, row in ipairs(p.grid) do ncol = math.max(ncol, #row) end
    local maxchars = floor((colw - 24) / 6)
    if p.title then
      add(svg_text(px, py + 11, fit(p.title, maxchars), "start", 11))
      py = py + 15
    end
    if p.subtitle then
      add(svg_text(px, py + 11, p.subtitle, "start", 10, ' fill="#555555"'))
      py = py + 15
    end
    for i, row in ipairs(p.grid) do
      for j = 1, ncol do
        local v = row[j] or lo
        add(('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s</title></rect>'):format(
          px + (j - 1) * cell, py + (i - 1) * cell, cell, cell, ramp_rgb(v, lo, hi), xml(fmt_num(v))))
      end
    end
    add(('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>'):format(px, py, ncol * cell,
      #p.grid * cell))
    row_h = math.max(row_h, py + #p.grid * cell - y)
  end
  y = y + row_h + 20
  -- colour bar
  local bx, bw = x0, 200
  for k = 0, 19 do
    local v = lo + (hi - lo) * (k + 0.5) / 20
    add(('<rect x="%s" y="%d" width="%s" height="12" fill="%s"/>'):format(num(bx + k * bw / 20), y,
      num(bw / 20 + 0.5), ramp_rgb(v, lo, hi)))
  end
  add(svg_text(bx, y + 26, fmt_num(lo), "start", 11))
  add(svg_text(bx + bw, y + 26, fmt_num(hi), "end", 11))
  y = y + 40
  table.insert(out, 1, ('<rect x="0" y="0" width="%d" height="%d" fill="white"/>'):format(W, y))
  return out, y
end

local SIZE_OPTIONS = { "width", "height" }
local LINE_OPTIONS = { "width", "height", "title", "labels", "xlabel", "ylabel", "xmin", "xmax", "ymin", "ymax",
  "x", "y", "logx", "logy", "color", "legend", "xfmt", "yfmt", "svg_width", "svg_height" }
local CURVE_OPTIONS = { "sq", "tensors", "label", table.unpack(LINE_OPTIONS) }
local HEATMAP_OPTIONS = { "title", "min", "max", "color", "cell_width", "max_width", "name", "xlabel", "ylabel",
  "svg_width", "svg_height" }
M.LINE_OPTIONS, M.HEATMAP_OPTIONS = LINE_OPTIONS, HEATMAP_OPTIONS

-- fig:svg({width = 640, height = 400}) -> the figure as a standalone SVG document (string)
function Figure:svg(opts)
  opts = checked(opts, "svg", SIZE_OPTIONS) or {}
  local W = opts.width or self.opts.svg_width
    or (self.kind == "heatmap" and #self.panels > 1 and math.min(4, #self.panels) * 224 + 16) or 640
  local H = opts.height or self.opts.svg_height or 400
  local body
  if self.kind == "heatmap" then body, H = svg_heatmap(self, W)
  else body = svg_lines(self, W, H) end
  local head = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
    .. 'font-family="sans-serif">'):format(W, H, W, H)
  return head .. "\n" .. table.concat(body, "\n") .. "\n</svg>\n"
end

local function write_atomic(path, data)
  local ok, err = pcall(require("sift").write_file, path, data) -- temp file + fsync + rename
  if not ok then error("sift.plot.save: " .. tostring(err):gsub("^sift%.write_file: ", ""), 3) end
end

-- fig:save(path): ".svg" (default) writes the SVG, ".txt" the text plot (without colour codes)
function Figure:save(path, opts)
  if type(path) ~= "string" then error("save: expected a file name", 2) end
  checked(opts, "save", SIZE_OPTIONS)
  local data
  if path:lower():match("%.txt$") then
    data = self:render():gsub("\27%[[%d;]*m", "") .. "\n"
  else
    data = self:svg(opts)
  end
  write_atomic(path, data)
  return path
end

---------------------------------------------------------------------------------------------------
-- public constructors
---------------------------------------------------------------------------------------------------
local function check_size(o, who)
  local W, H = o.width or 64, o.height or 16
  if math.type(W) ~= "integer" or math.type(H) ~= "integer" or W < 8 or H < 2 then
    error(who .. ": width must be an integer >= 8 and height >= 2", 3)
  end
  return W, H
end

-- sift.plot.line(series, opts) -> figure. opts: width, height (cells of the plot area), title, labels
-- (series names), xlabel, ylabel, xmin/xmax/ymin/ymax (or x = {min, max}, y = {min, max}), logx, logy,
-- color (ANSI 256 colours), legend (default: when labelled or several series).
function M.line(series, opts)
  opts = checked(opts, "sift.plot.line", LINE_OPTIONS) or {}
  local who = "sift.plot.line"
  local s = normalise(series, who)
  if opts.labels then
    for i, l in ipairs(opts.labels) do if s[i] then s[i].label = l end end
  end
  local W, H = check_size(opts, who)
  local fig = setmetatable({ kind = "line", series = s, opts = opts, width = W, height = H,
    xfmt = opts.xfmt or fmt_num, yfmt = opts.yfmt or fmt_num }, Figure)
  fig.xaxis = axis(s, opts, "x")
  fig.yaxis = axis(s, opts, "y")
  return fig
end

local function is_coverage(t) return type(t) == "table" and type(t.fractions) == "table" and type(t.mean) == "table" end

-- sift.plot.curve(cov, opts) -> figure of share of ||g||_2 vs fraction of components (log x axis).
-- cov: a sift.coverage result, several of them (array or name -> result), or {x = fractions, y = shares}.
-- opts as line, plus sq = true (share of ||g||^2), tensors = true (one curve per tensor of one result).
function M.curve(cov, opts)
  opts = checked(opts, "sift.plot.curve", CURVE_OPTIONS) or {}
  local who = "sift.plot.curve"
  local key, tkey = opts.sq and "mean_sq" or "mean", opts.sq and "sq" or "norm"
  local series = {}
  local function add(c, label)
    series[#series + 1] = { x = c.fractions, y = c[key], label = label }
  end
  if is_coverage(cov) then
    if opts.tensors then
      for _, n in ipairs(cov.names or {}) do
        series[#series + 1] = { x = cov.fractions, y = cov.tensors[n][tkey], label = n }
      end
    end
    add(cov, opts.label or "mean")
  elseif type(cov) == "table" and #cov > 0 and is_coverage(cov[1]) then
    for i, c in ipairs(cov) do add(c, (opts.labels and opts.labels[i]) or ("run " .. i)) end
  elseif type(cov) == "table" and next(cov) ~= nil and not cov.y then
    local keys = {}
    for k, v in pairs(cov) do if is_coverage(v) then keys[#keys + 1] = k end end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do add(cov[k], tostring(k)) end
  end
  if #series == 0 then series = normalise(cov, who) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.logx == nil then o.logx = true end
  if o.ymin == nil and o.y == nil then o.ymin = 0 end
  if o.ymax == nil and o.y == nil then o.ymax = 1 end
  o.title = o.title or ("gradient concentration (share of ||g||%s)"):format(opts.sq and "^2" or "")
  o.xlabel = o.xlabel or "top fraction of components"
  o.xfmt = o.xfmt or fmt_pct
  o.labels, o.sq, o.tensors, o.label = nil, nil, nil, nil -- curve's own: the rest are line's
  local fig = M.line(series, o)
  fig.kind = "curve"
  return fig
end

-- sift.plot.heatmap(grid, opts) -> figure. grid: rows of numbers, a 2-D tensor, a grid from
-- sift.mask_density (or its whole result: one panel per target, opts.name picks one). opts: title,
-- min (default min(0, smallest)), max (default largest), color (256-colour background), cell_width (2).
function M.heatmap(grid, opts)
  opts = checked(opts, "sift.plot.heatmap", HEATMAP_OPTIONS) or {}
  local panels = heatmap_panels(grid, opts, "sift.plot.heatmap")
  local fig = setmetatable({ kind = "heatmap", panels = panels, opts = opts }, Figure)
  fig.lo, fig.hi = grid_range(panels, opts)
  return fig
end

-- sift.plot.save(fig, path, opts) -> path: writes the figure as SVG (or text for *.txt), atomically
function M.save(fig, path, opts)
  if getmetatable(fig) ~= Figure then error("sift.plot.save: expected a figure from sift.plot.*", 2) end
  return fig:save(path, opts)
end

M.svg = function(fig, opts)
  if getmetatable(fig) ~= Figure then error("sift.plot.svg: expected a figure from sift.plot.*", 2) end
  return fig:svg(opts)
end

function M.install(sift) sift.plot = M end

return M
