-- resume_ranks.lua ONE TRAINER — a trainer saved by a run with another number of processes, resumed here (one
-- process, or under mpiexec) on the "sparse" case of tests/dist/train_ranks.lua, ends where the
-- uninterrupted one-process run (ONE, train_ranks.lua's output) ended: the same masks, losses to 1e-5 and
-- weights to 1e-4 (the sums over ranks round differently; see compare_ranks.lua). Rank 0 prints
-- "N passed, N failed"; every rank exits non-zero on a failure.
local one_path, trainer_path = assert(arg[1], "usage: resume_ranks.lua ONE TRAINER"), assert(arg[2])
local shared = os.getenv("SIFT_SHARED") or "../shared"
local dir = shared .. "/models/gpt2-4m"
local tok = sift.tokenizer(dir)
local rows = sift.data.load("sst2", { split = "train" }):take(20)
local one = sift.load_tensors(one_path)
local want_loss = {}
for v in one[".metadata"]["sparse.loss"]:gmatch("[^,]+") do want_loss[#want_loss + 1] = tonumber(v) end

local m = sift.load(dir, { task = "classify", num_labels = 2 })
local set = sift.sparse(m, { rate = 0.01 }) -- the "sparse" case's set, data, batch and learning rate
local tr = sift.trainer { model = m, method = set, data = rows, tokenizer = tok, batch = 8, lr = 1e-3, quiet = true,
  max_len = 32, resume = trainer_path }
local h = tr:step()

local passed, failed, msgs = 0, 0, {}
local function check(ok, fmt, ...)
  if ok then passed = passed + 1 else failed = failed + 1; msgs[#msgs + 1] = fmt:format(...) end
end
check(#h.loss == #want_loss, "%d steps, the uninterrupted run took %d", #h.loss, #want_loss)
for s = 1, math.min(#h.loss, #want_loss) do
  check(math.abs(h.loss[s] - want_loss[s]) <= 1e-5 * math.abs(want_loss[s]), "step %d: loss %.9g vs %.9g", s,
    h.loss[s], want_loss[s])
end
local n = 0
for key, t in pairs(one) do
  local name = key:match("^sparse%.w%.(.+)$")
  if name then
    n = n + 1
    local d = m:param(name):max_abs_diff(t)
    check(d <= 1e-4, "%s differs by %.3g from the uninterrupted run", name, d)
  end
  name = key:match("^sparse%.idx%.(.+)$")
  if name then check(set:indices(name):max_abs_diff(t) == 0, "%s: the mask differs", name) end
end
check(n >= 2, "%d weights compared", n)
if sift.dist.rank() == 0 then
  for _, msg in ipairs(msgs) do print("    FAIL " .. msg) end
  print(("resumed on %d process(es) from %s"):format(sift.dist.size(), trainer_path))
  print(("%d passed, %d failed"):format(passed, failed))
end
if failed > 0 then os.exit(1) end
