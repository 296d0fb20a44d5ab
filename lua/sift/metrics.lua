-- sift/metrics.lua — evaluation metrics on plain Lua arrays (becomes `sift.metrics`).
--   accuracy(pred, gold), mcc(pred, gold), f1(pred, gold, positive = 1), pearson(x, y), spearman(x, y),
--   confusion(pred, gold, n), classification(pred, gold, n), regression(pred, gold).
-- Labels are the datasets' 0-based class ids (integers; confusion and classification take at most
-- M.max_classes = 65536 classes and check every label first). Degenerate inputs follow scikit-learn / SciPy:
-- mcc and f1 are 0 when undefined; pearson and spearman are NaN when one side is constant.
local M = {}

local function check_pair(a, b, who)
  if type(a) ~= "table" or type(b) ~= "table" then error(who .. ": expected two arrays", 3) end
  if #a ~= #b then error(string.format("%s: lengths differ (%d vs %d)", who, #a, #b), 3) end
  if #a == 0 then error(who .. ": empty input", 3) end
  return #a
end

-- Share of positions where pred equals gold.
function M.accuracy(pred, gold)
  local n = check_pair(pred, gold, "accuracy")
  local hit = 0
  for i = 1, n do if pred[i] == gold[i] then hit = hit + 1 end end
  return hit / n
end

M.max_classes = 1 << 16 -- a confusion matrix or per-class metrics over more classes is refused

-- The number of classes: n when given (an integer 1..max_classes), else 1 + the largest label; every
-- label must be an integer 0..n-1. Checked before anything is built, so a stray 1e12 is an error, not a
-- table of 1e24 cells.
local function class_count(pred, gold, len, n, who)
  if n ~= nil and (math.type(n) == nil or n ~= math.floor(n) or n < 1 or n > M.max_classes) then
    error(("%s: the number of classes must be an integer 1..%d, got %s"):format(who, M.max_classes, tostring(n)), 3)
  end
  local top = 0
  for i = 1, len do
    local g, p = math.tointeger(gold[i]), math.tointeger(pred[i])
    if not g or not p or g < 0 or p < 0 or g >= (n or M.max_classes) or p >= (n or M.max_classes) then
      error(string.format("%s: labels must be integers 0..%d (row %d: pred %s, gold %s)", who,
        (n or M.max_classes) - 1, i, tostring(pred[i]), tostring(gold[i])), 3)
    end
    top = math.max(top, g + 1, p + 1)
  end
  return math.tointeger(n) or top
end

-- Confusion matrix m[g + 1][p + 1] = number of rows with gold g and prediction p (rows = gold, as
-- scikit-learn). n defaults to 1 + the largest label seen.
function M.confusion(pred, gold, n)
  local len = check_pair(pred, gold, "confusion")
  n = class_count(pred, gold, len, n, "confusion")
  local m = {}
  for i = 1, n do
    m[i] = {}
    for j = 1, n do m[i][j] = 0 end
  end
  for i = 1, len do
    local g, p = math.tointeger(gold[i]), math.tointeger(pred[i])
    m[g + 1][p + 1] = m[g + 1][p + 1] + 1
  end
  return m
end

-- Matthews correlation coefficient. For two classes the usual (tp·tn − fp·fn)/√(…); for more classes
-- Gorodkin's R_K (what scikit-learn's matthews_corrcoef computes). 0 when the denominator is 0.
function M.mcc(pred, gold)
  local n = check_pair(pred, gold, "mcc")
  local tcount, pcount, correct = {}, {}, 0
  for i = 1, n do
    local p, g = pred[i], gold[i]
    pcount[p] = (pcount[p] or 0) + 1
    tcount[g] = (tcount[g] or 0) + 1
    if p == g then correct = correct + 1 end
  end
  local s = n + 0.0
  local pt, pp, tt = 0.0, 0.0, 0.0
  for k, c in pairs(pcount) do
    pp = pp + c * c
    pt = pt + c * (tcount[k] or 0)
  end
  for _, c in pairs(tcount) do tt = tt + c * c end
  local den = (s * s - pp) * (s * s - tt)
  if den <= 0 then return 0.0 end
  return (correct * s - pt) / math.sqrt(den)
end

-- 2·tp / (2·tp + fp + fn); 0 when there is no positive at all
local function f1_of(tp, fp, fn)
  if tp + fp + fn == 0 then return 0.0 end
  return 2 * tp / (2 * tp + fp + fn)
end

-- F1 of the class `positive` (default 1): 2·tp / (2·tp + fp + fn); 0 when there is no positive at all.
function M.f1(pred, gold, positive)
  local n = check_pair(pred, gold, "f1")
  if positive == nil then positive = 1 end
  local tp, fp, fn = 0, 0, 0
  for i = 1, n do
    local p, g = pred[i] == positive, gold[i] == positive
    if p and g then tp = tp + 1 elseif p then fp = fp + 1 elseif g then fn = fn + 1 end
  end
  return f1_of(tp, fp, fn)
end

-- Pearson correlation (two-pass, centred sums).
function M.pearson(x, y)
  local n = check_pair(x, y, "pearson")
  local mx, my = 0.0, 0.0
  for i = 1, n do mx, my = mx + x[i], my + y[i] end
  mx, my = mx / n, my / n
  local sxy, sxx, syy = 0.0, 0.0, 0.0
  for i = 1, n do
    local dx, dy = x[i] - mx, y[i] - my
    sxy, sxx, syy = sxy + dx * dy, sxx + dx * dx, syy + dy * dy
  end
  if sxx == 0 or syy == 0 then return 0 / 0 end
  local r = sxy / math.sqrt(sxx * syy)
  return math.max(-1.0, math.min(1.0, r))
end

-- 1-based ranks; tied values share the average of their ranks.
function M.ranks(x)
  local n = #x
  local idx = {}
  for i = 1, n do idx[i] = i end
  table.sort(idx, function(a, b)
    if x[a] ~= x[b] then return x[a] < x[b] end
    return a < b
  end)
  local r = {}
  local i = 1
  while i <= n do
    local j = i
    while j < n and x[idx[j + 1]] == x[idx[i]] do j = j + 1 end
    local avg = (i + j) / 2
    for k = i, j do r[idx[k]] = avg end
    i = j + 1
  end
  return r
end

-- Spearman rank correlation = Pearson correlation of the (tie-averaged) ranks.
function M.spearman(x, y)
  check_pair(x, y, "spearman")
  return M.pearson(M.ranks(x), M.ranks(y))
end

-- All classification metrics at once: {accuracy, mcc, f1 (binary only), macro_f1 (more classes), n}.
-- (macro F1: each class's F1 (f1_of, as M.f1) from one pass's per-class counts, averaged over the classes)
function M.classification(pred, gold, num_classes)
  local n = check_pair(pred, gold, "classification")
  num_classes = class_count(pred, gold, n, num_classes, "classification")
  local out = { accuracy = M.accuracy(pred, gold), mcc = M.mcc(pred, gold), n = n }
  if num_classes <= 2 then
    out.f1 = M.f1(pred, gold, 1)
  else
    local tp, fp, fn = {}, {}, {}
    for i = 1, n do
      local p, g = math.tointeger(pred[i]), math.tointeger(gold[i])
      if p == g then tp[p] = (tp[p] or 0) + 1
      else fp[p], fn[g] = (fp[p] or 0) + 1, (fn[g] or 0) + 1 end
    end
    local s = 0.0
    for c = 0, num_classes - 1 do s = s + f1_of(tp[c] or 0, fp[c] or 0, fn[c] or 0) end
    out.macro_f1 = s / num_classes
  end
  return out
end

-- Regression metrics: {pearson, spearman, mse, n}.
function M.regression(pred, gold)
  local n = check_pair(pred, gold, "regression")
  local se = 0.0
  for i = 1, n do se = se + (pred[i] - gold[i]) ^ 2 end
  return { pearson = M.pearson(pred, gold), spearman = M.spearman(pred, gold), mse = se / n, n = n }
end

function M.install(sift) sift.metrics = M end

return M
