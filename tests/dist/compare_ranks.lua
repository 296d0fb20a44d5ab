-- compare_ranks.lua ONE MANY — what tests/dist/train_ranks.lua wrote as one process (ONE) and under
-- mpiexec (MANY) must agree: every rank takes the step one process takes with the whole batch, so the
-- histories match up to the order of float sums, masks match exactly, trained weights to 1e-6 but for a
-- few entries of dense matrices (within 1e-4: see below); and the
-- bytes each rank sent are exactly the gradients it had to sum: a sparse step's k values (plus the
-- dense head), never the dense matrices, after the calibration step. Prints "N passed, N failed".
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check = H.test, H.check
local one, many = sift.load_tensors(arg[1]), sift.load_tensors(arg[2])
local m1, mn = one[".metadata"], many[".metadata"]
local ranks = tonumber(mn.ranks)
arg = {} -- the harness reads arg[1] as a filter on test names

local function list(s)
  local out = {}
  for v in s:gmatch("[^,]+") do out[#out + 1] = tonumber(v) end
  return out
end

test("the runs are one process and several", function()
  check(tonumber(m1.ranks) == 1 and ranks > 1, "ranks %s and %s", m1.ranks, mn.ranks)
end)

for _, case in ipairs { "sparse", "full", "lora", "fisher", "lm_sparse" } do
  test(case .. ": the single-process steps, loss and gradient norm", function()
    local l1, ln = list(m1[case .. ".loss"]), list(mn[case .. ".loss"])
    local g1, gn = list(m1[case .. ".grad_norm"]), list(mn[case .. ".grad_norm"])
    check(#l1 >= 3 and #l1 == #ln, "%d and %d steps", #l1, #ln)
    for s = 1, #l1 do
      check(math.abs(ln[s] - l1[s]) <= 1e-5 * math.abs(l1[s]), "step %d: loss %.9g vs %.9g", s, ln[s], l1[s])
      check(math.abs(gn[s] - g1[s]) <= 1e-4 * g1[s], "step %d: gradient norm %.9g vs %.9g", s, gn[s], g1[s])
    end
  end)
  test(case .. ": trained weights and masks", function()
    local n = 0
    for key, t in pairs(one) do
      if key:sub(1, #case + 1) == case .. "." then
        n = n + 1
        local u = many[key]
        check(u ~= nil, "%s missing", key)
        if u and key:find("%.idx%.") then
          check(u:numel() == t:numel() and u:max_abs_diff(t) == 0, "%s: the masks differ", key)
        elseif u then -- AdamW moves a weight whose gradient is rounding noise by up to lr (1e-3), whatever
          -- its size: a few such entries of a dense matrix may differ by a tenth of a step, the rest agree
          local d, off = u:max_abs_diff(t), 0
          local a, b = t:reshape(t:numel()), u:reshape(u:numel())
          for i = 1, a:numel() do
            if math.abs(a:get(i) - b:get(i)) > 1e-6 then off = off + 1 end
          end
          check(d <= 1e-4 and off <= 1e-4 * t:numel(), "%s differs by %.3g, %d entries by more than 1e-6", key, d, off)
        end
      end
    end
    check(n >= 2, "%d tensors", n)
  end)
  test(case .. ": bytes sent per step", function()
    local b1, bn = list(m1[case .. ".bytes_sent"]), list(mn[case .. ".bytes_sent"])
    for s = 1, #b1 do check(b1[s] == 0, "one process sent %d bytes at step %d", b1[s], s) end
    -- every step: the sum of loss terms (one double), then the loss, real tokens and whether a rank got
    -- Ctrl-C (three doubles), and a flag per synced tensor (one int: does any rank hold a gradient for it)
    local scalars, tensors = 8 + 24, tonumber(mn[case .. ".tensors"])
    local want = {}
    if mn[case .. ".k"] then -- SIFT: the calibration step sums the targets' dense gradients, then only k values
      local k, dense, numel = tonumber(mn[case .. ".k"]), tonumber(mn[case .. ".dense"]), tonumber(mn[case .. ".numel"])
      want[1] = scalars + 4 * (numel + dense) + 4 * tonumber(mn[case .. ".dense_tensors"])
      for s = 2, #bn do want[s] = scalars + 4 * (k + dense) + 4 * tensors end
    else
      for s = 1, #bn do want[s] = scalars + 4 * tonumber(mn[case .. ".trainable"]) + 4 * tensors end
    end
    for s = 1, #bn do check(bn[s] == want[s], "step %d: %d bytes, want %d", s, bn[s], want[s]) end
  end)
end

test("a language model's evaluation over ranks: one process's loss per token and token count", function()
  local l1, ln = tonumber(m1["lm_eval.loss"]), tonumber(mn["lm_eval.loss"])
  check(l1 and ln and math.abs(l1 - ln) <= 1e-6 * l1, "loss %s vs %s", tostring(m1["lm_eval.loss"]), tostring(mn["lm_eval.loss"]))
  check(m1["lm_eval.tokens"] == mn["lm_eval.tokens"] and tonumber(m1["lm_eval.tokens"]) > 0, "tokens %s vs %s",
    tostring(m1["lm_eval.tokens"]), tostring(mn["lm_eval.tokens"]))
end)

test("sift.landscape over ranks: one process's losses; a Ctrl-C on one rank stops all, weights restored", function()
  local l1, ln = list(m1["landscape.loss"]), list(mn["landscape.loss"])
  check(#l1 == 5 and #ln == 5, "%d and %d points", #l1, #ln)
  for i = 1, #l1 do check(math.abs(l1[i] - ln[i]) <= 1e-6 * l1[i], "point %d: %.9g vs %.9g", i, ln[i], l1[i]) end
  check(math.abs(tonumber(m1["landscape.center"]) - tonumber(mn["landscape.center"])) <= 1e-6, "centre")
  for _, m in ipairs { m1, mn } do
    check(m["landscape.interrupted"] == "true" and m["landscape.restored"] == "true", "interrupted %s, restored %s",
      tostring(m["landscape.interrupted"]), tostring(m["landscape.restored"]))
  end
end)

test("sift.coverage and sift.masks over ranks: the whole batch's gradient, summed", function()
  local c1, cn = list(m1["coverage.mean"]), list(mn["coverage.mean"])
  check(#c1 == 2 and #cn == 2, "fractions")
  for i = 1, #c1 do check(math.abs(c1[i] - cn[i]) <= 1e-5, "coverage %d: %.9g vs %.9g", i, cn[i], c1[i]) end
  local l1, ln = tonumber(m1["coverage.loss"]), tonumber(mn["coverage.loss"])
  check(math.abs(l1 - ln) <= 1e-6 * l1, "loss %.9g vs %.9g", ln, l1)
  local n = 0
  for key, t in pairs(one) do
    if key:find("^masks%.idx%.") then -- the sums round differently: an entry at the k-th place may swap
      n = n + 1
      local u = many[key]
      check(u and u:numel() == t:numel() and u:count_common(t) >= 0.995 * t:numel(), "%s: %s of %d offsets shared", key,
        u and tostring(u:count_common(t)) or "none", t:numel())
    end
  end
  check(n == 16, "%d masks", n)
end)

test("a trainer saved by rank 0 and resumed on every rank: the uninterrupted run's bits", function()
  check(tonumber(m1["resume.max_diff"]) == 0 and tonumber(mn["resume.max_diff"]) == 0, "resumed weights differ by %s / %s",
    tostring(m1["resume.max_diff"]), tostring(mn["resume.max_diff"]))
end)

test("SIFT sends ~1 % of what full fine-tuning sends", function()
  local sp, full = list(mn["sparse.bytes_sent"]), list(mn["full.bytes_sent"])
  check(sp[2] < 0.02 * full[2], "sparse %d bytes a step, full %d", sp[2], full[2])
end)

test("evaluation split over ranks: the same predictions and loss", function()
  check(m1["eval.predictions"] == mn["eval.predictions"], "predictions differ")
  local a, b = tonumber(m1["eval.loss"]), tonumber(mn["eval.loss"])
  check(math.abs(a - b) <= 1e-5 * a, "loss %.9g vs %.9g", a, b)
  check(m1["eval.accuracy"] == mn["eval.accuracy"], "accuracy %s vs %s", m1["eval.accuracy"], mn["eval.accuracy"])
end)

for _, policy in ipairs { "fisher", "global", "custom" } do
  test("select with each rank passing its part of each batch (" .. policy .. "): the same mask", function()
    local key = "select_" .. policy .. ".idx.transformer.h.1.mlp.c_fc.weight"
    check(one[key] and many[key] and one[key]:max_abs_diff(many[key]) == 0, "masks differ")
  end)
end

H.run()
