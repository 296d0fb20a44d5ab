-- 06_data_parallel.lua — the same training on several processes: each takes its part of every batch,
-- gradients are summed over the processes as backward finishes each one, and every process takes the
-- step one process would take with the whole batch. What travels is the point: a SIFT set sends the k
-- values of each target, full fine-tuning every gradient.
--
--   ./build/sift-repl examples/06_data_parallel.lua                  one process (any build)
--   make MPI=1 && mpiexec -n 2 build-mpi/sift-repl examples/06_data_parallel.lua
--
-- Run both: the losses agree to rounding. Only rank 0 prints (and would write files).

SHARED = os.getenv("SIFT_SHARED") or "../shared"
MODEL = SHARED .. "/models/gpt2-4m"
if not io.open(MODEL .. "/config.json") or not io.open(SHARED .. "/data/sst2/train.txt") then
  print("needs " .. MODEL .. "/ and " .. SHARED .. "/data/sst2/; skipping")
  os.exit(0)
end
local rank0 = sift.dist.rank() == 0
local function say(...) if rank0 then print(string.format(...)) end end

say("%d process(es)%s; this one has %d thread(s)", sift.dist.size(), sift.dist.enabled and " (MPI build)" or "",
  sift.threads())
tok = sift.tokenizer(MODEL)
train = sift.data.load("sst2", { split = "train" }):shuffle(0):take(640)

for _, method in ipairs { "sparse", "full" } do
  local model = sift.load(MODEL, { task = "classify", num_labels = 2 })
  local set = method == "sparse" and sift.sparse(model, { rate = 0.01 }) or sift.full(model)
  local h = sift.train { model = model, method = set, data = train, tokenizer = tok, batch = 32, lr = 1e-3,
    quiet = true }
  -- history.bytes_sent[i]: what this process put into sums at step i (0 with one process). SIFT's first
  -- step sends the targets' dense gradients once: every process must pick its masks from the whole batch.
  local later = h.bytes_sent[#h.bytes_sent]
  say("%-6s %d steps in %.2f s, losses %.4f ... %.4f; bytes sent: step 1 %d, then %d a step (%d trainable)", method,
    h.steps, h.seconds, h.loss[1], h.loss[h.steps], h.bytes_sent[1], later, set:trainable())
end

-- sums over the processes for your own loops: every rank calls them in the same order
local mine = sift.dist.rank() + 1
say("sum of ranks + 1 over %d process(es): %d", sift.dist.size(), sift.dist.sum(mine))
