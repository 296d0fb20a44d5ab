-- harness.lua — a tiny test harness for Lua tests, run by sift-repl (tests/run_all.sh).
-- test(name, fn) registers; check(cond, fmt, ...) records failures; close(a, b, tol, what);
-- same_params(a, b) and all_finite(m) compare and inspect models;
-- skip(reason) marks the current test skipped; run() runs all (or those matching arg[1]) and prints
-- "N skipped" then "N passed, N failed" and exits non-zero on failure.
local H = { tests = {} }
local current

function H.test(name, fn) H.tests[#H.tests + 1] = { name = name, fn = fn } end

function H.check(cond, fmt, ...)
  if not cond then
    current.failures = current.failures + 1
    local msg = fmt and string.format(fmt, ...) or "check failed"
    io.stderr:write("    FAIL ", debug.traceback(msg, 2):gsub("\n.*", ""), "\n")
  end
  return cond
end

function H.close(a, b, tol, what)
  return H.check(math.abs(a - b) <= tol, "%s: %.9g vs %.9g (tol %.3g)", what or "value", a, b, tol)
end

function H.skip(reason) error({ skip = reason }, 0) end

function H.shared(rel)
  local root = os.getenv("SIFT_SHARED") or "../shared"
  local path = root .. "/" .. rel
  local f = io.open(path, "r")
  if f then f:close() return path end
  -- folders: io.open works on directories on Linux for reading their existence
  return nil
end

function H.need_shared(rel)
  local p = H.shared(rel)
  if not p then H.skip((rel) .. " not found (set SIFT_SHARED)") end
  return p
end

-- A 2-layer GPT-2 with a 2-way head (vocab 64, d_model 16, random init by seed), and a padded batch of 4 rows
-- (ids shifted by `shift`) for it: quick models for the analysis tests.
function H.tiny_classifier(seed)
  return sift.build({ arch = "gpt2", vocab_size = 64, n_layer = 2, n_head = 2, d_model = 16, max_pos = 32 },
    { task = "classify", num_labels = 2, seed = seed or 0 })
end

-- Whether two models hold the same parameters bit for bit; else false and the first that differs.
function H.same_params(a, b)
  for _, n in ipairs(a:names()) do
    if a:param(n):max_abs_diff(b:param(n)) ~= 0 then return false, n end
  end
  return true
end

-- Whether every parameter of a model is finite; else false and the first that is not.
function H.all_finite(m)
  for _, n in ipairs(m:names()) do
    local lo, hi = m:param(n):range()
    if not (lo > -math.huge and hi < math.huge) then return false, n end
  end
  return true
end

function H.tiny_batch(shift)
  local ids, mask = {}, {}
  for i = 1, 4 do
    ids[i], mask[i] = {}, {}
    for j = 1, 12 do
      ids[i][j] = (i * 7 + j * 3 + (shift or 0)) % 64
      mask[i][j] = j <= 8 + i and 1 or 0
    end
  end
  return { input_ids = ids, attention_mask = mask, labels = { 0, 1, 1, 0 } }
end

function H.run()
  local passed, failed, skipped = 0, 0, 0
  for _, t in ipairs(H.tests) do
    if not arg or not arg[1] or t.name:find(arg[1], 1, true) then
      current = { failures = 0 }
      local ok, err = xpcall(t.fn, function(e)
        if type(e) == "table" and e.skip then return e end
        return debug.traceback(tostring(e), 2)
      end)
      if not ok and type(err) == "table" and err.skip then
        skipped = skipped + 1
        print("skip " .. t.name)
        io.stderr:write("    skipped: ", err.skip, "\n")
      elseif not ok then
        failed = failed + 1
        print("FAIL " .. t.name)
        io.stderr:write("    error: ", tostring(err), "\n")
      elseif current.failures > 0 then
        failed = failed + 1
        print("FAIL " .. t.name)
      else
        passed = passed + 1
        print("ok   " .. t.name)
      end
      io.stdout:flush()
    end
  end
  print(skipped .. " skipped")
  print(passed .. " passed, " .. failed .. " failed")
  os.exit(failed == 0 and 0 or 1)
end

return H
