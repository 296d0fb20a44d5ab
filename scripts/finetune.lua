-- finetune.lua — fine-tune a model on a task from the command line: SIFT (sparse increments), LoRA, full
-- fine-tuning or the head alone, with the recipe of ../shared/README.md's peer table (batch 32, linear
-- decay after a 6 % warm-up, clipping at 1, evaluation on the dev set after each epoch). Instruction data
-- (--task instruct, jsonl) trains the language model on the responses (loss and perplexity on rows held out).
--
--   ./build/sift-repl scripts/finetune.lua --task sst2 --method sift --rate 0.01 --epochs 3 --out run.json
--   ./build/sift-repl scripts/finetune.lua --help
--
-- Prints the progress and each epoch's dev metrics; --out writes the history (loss, learning rate and
-- gradient norm per step, dev metrics per epoch, time, trainable values, memory) as JSON; --delta saves a
-- SIFT run's increments (sift.load_delta(path):apply(model) puts them on a fresh base); --checkpoint /
-- --resume stop and go on bit for bit. Ctrl-C stops after the current step and still writes what was asked.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/lib/?.lua;" .. package.path
local X = require "experiment"

local LR = { sift = 3e-3, lora = 1e-3, full = 3e-4, head = 1e-3 } -- the peer table's rates for gpt2-4m

local o = X.options({
  { "model", X.default_model() or "", "a Hugging Face folder or llama2.c .bin" },
  { "task", "sst2", "a data set sift.data.load knows (sst2, cola, rte, mrpc, stsb, trec) or a path" },
  { "method", "sift", "sift | lora | full | head" },
  { "rate", 0.01, "SIFT: the fraction of each block matrix that trains" },
  { "policy", "topk", "SIFT: topk | global | random | magnitude | fisher" },
  { "r", 8, "LoRA: rank" },
  { "alpha", 16, "LoRA: scale numerator (alpha / r)" },
  { "lr", 0.0, "learning rate (0: the method's rate from the peer table)" },
  { "epochs", 3, "passes over the training rows" },
  { "batch", 32, "rows per step" },
  { "micro_batch", 0, "rows per forward/backward (0: the whole batch); the same steps with less memory" },
  { "max_len", 64, "tokens per row at most" },
  { "rows", 0, "training rows, shuffled with --seed (0: all)" },
  { "dev_rows", 0, "dev rows evaluated (0: all)" },
  { "max_steps", 0, "stop after this many steps (0: all epochs)" },
  { "seed", 0, "seed of the data order, the head's draw and random masks" },
  { "mask_prompt", true, "instruction data: the loss counts the responses only (--no_mask_prompt: every token)" },
  { "out", "", "write the history here as JSON" },
  { "delta", "", "SIFT: save the increments here" },
  { "checkpoint", "", "save the training state here each epoch and on Ctrl-C" },
  { "resume", "", "go on from this checkpoint (same options)" },
}, "finetune.lua — fine-tune a model on a task (SIFT, LoRA, full, head only) and evaluate it on the dev set")

local lr = o.lr > 0 and o.lr or LR[o.method]
if not lr then X.fail("--method must be sift, lora, full or head, got %q", o.method) end
if o.delta ~= "" and o.method ~= "sift" then X.fail("--delta saves SIFT increments; --method is %s", o.method) end
local task = X.task(o)
local model = X.model(o, task, false, o.seed)
local set
if o.method == "sift" then set = sift.sparse(model, { rate = o.rate, policy = o.policy, seed = o.seed })
elseif o.method == "lora" then set = sift.lora(model, { r = o.r, alpha = o.alpha })
elseif o.method == "full" then set = sift.full(model)
else set = sift.head(model) end
print(("%s on %s: %s, %d training rows, %s dev rows%s, %d trainable values, lr %g"):format(o.method, o.task,
  o.model, #task.train, task.dev and #task.dev or "no", task.held_out and " (held out of the training rows)" or "",
  set:trainable(), lr))

local h = sift.train({ model = model, method = set, data = task.train, tokenizer = task.tok, max_len = o.max_len,
  batch = o.batch, micro_batch = o.micro_batch > 0 and o.micro_batch or nil, epochs = o.epochs, lr = lr,
  seed = o.seed, max_steps = o.max_steps > 0 and o.max_steps or nil, eval = task.dev,
  mask_prompt = task.lm and o.mask_prompt or nil,
  checkpoint = o.checkpoint ~= "" and o.checkpoint or nil, resume = o.resume ~= "" and o.resume or nil })

local last = h.eval and h.eval[#h.eval]
if last then
  local parts = {}
  for _, k in ipairs { "accuracy", "mcc", "f1", "pearson", "spearman", "mse", "loss", "perplexity" } do
    if last[k] then parts[#parts + 1] = ("%s %.4f"):format(k, last[k]) end
  end
  print("dev: " .. table.concat(parts, "  "))
end
if h.interrupted then print(h.interrupted) end
if o.delta ~= "" then
  set:save_delta(o.delta)
  print("wrote " .. o.delta)
end
local evals = {}
for i, e in ipairs(h.eval or {}) do
  evals[i] = {}
  for k, v in pairs(e) do if k ~= "predictions" then evals[i][k] = v end end
end
X.write_json(o.out, { options = o, trainable = h.trainable, steps = h.steps, seconds = h.seconds, loss = h.loss,
  lr = h.lr, grad_norm = h.grad_norm, eval = evals, memory = set:memory(), interrupted = h.interrupted })
