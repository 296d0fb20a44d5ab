-- interrupt_ranks.lua OUT — a long sift.train for tests/sh/test_dist.sh to interrupt with SIGINT sent to one
-- rank only: every rank must stop after the same step with the weights of that step, the history saying
-- where, and the script must go on (rank 0 then writes the delta to OUT.delta; each rank writes what it
-- saw to OUT.rankR). OUT.started appears once training runs. Needs ../shared (gpt2-4m, SST-2).
local out = assert(arg[1], "usage: interrupt_ranks.lua OUT")
local dir = (os.getenv("SIFT_SHARED") or "../shared") .. "/models/gpt2-4m"
local m = sift.load(dir, { task = "classify", num_labels = 2 })
local s = sift.sparse(m, { rate = 0.01 })
local h = sift.train { model = m, method = s, data = sift.data.load("sst2"):take(64), tokenizer = sift.tokenizer(dir),
  batch = 8, epochs = 2000, quiet = true, on_step = function(st)
    if st.step == 3 and sift.dist.rank() == 0 then io.open(out .. ".started", "w"):close() end
  end }
s:save_delta(out .. ".delta")
local f = assert(io.open(out .. ".rank" .. sift.dist.rank(), "w")) -- each rank's own line, compared by the shell
f:write(("%d steps, %s, increment norm %.9g\n"):format(h.steps, h.interrupted, s:increment(s:targets()[1]):norm()))
f:close()
