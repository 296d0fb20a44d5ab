-- sift/help.lua — the one registry of help texts for every public function and method, and help().
--
--   help()                       topics, grouped
--   help("sift.load") / help("load") / help("Tensor:norm") / help("model:forward") / help(sift.load)
--   help(t) (a tensor, model, set, … value)  the methods of its class
--   ?name in sift-repl           = help("name")
--   sift.help_registry()         → { [name] = {name, sig, doc, example, section}, ... } plus .sections
--                                  (ordered {title, names}); scripts/gen_reference.lua renders it
--   sift.help_signature(fn)      → the signature line of a documented function value, or nil
--
-- Names: module functions as "sift.load", "sift.data.encode"; methods as "Class:method" with the classes
-- Tensor, Model, Tokenizer, Set, AdamW, Trainer, Delta, Dataset, Rng, Figure, Landscape. The completeness test
-- (tests/lua/test_plot_help.lua) fails when a reachable public function has no entry here.
local M = {}

local entries, sections, current = {}, {}, nil

local function section(title, intro)
  current = { title = title, intro = intro, names = {} }
  sections[#sections + 1] = current
end

local function def(name, sig, doc, example)
  assert(not entries[name], "help: duplicate entry " .. name)
  local e = { name = name, sig = sig, doc = doc, example = example, section = current.title }
  entries[name] = e
  current.names[#current.names + 1] = name
end

---------------------------------------------------------------------------------------------------
section("Module",
  "The `sift` table: `local sift = require \"sift\"` (preloaded as the global `sift` in sift-repl).\n" ..
  "Option tables, model:forward's batch and sift.build's config are checked: a key the function does not\n" ..
  "know is an error naming it and the nearest known one (\"sift.sparse: unknown option 'rat' (did you mean\n" ..
  "'rate'?)\"), not ignored.")
def("sift.version", "sift.version  (string)", "The library version, e.g. \"0.1.0\".")
def("sift.now", "sift.now() -> seconds", "Monotonic wall-clock time in seconds (float), for timing.",
  "local t0 = sift.now(); model:forward(b); print(sift.now() - t0)")
def("sift.threads", "sift.threads(n?) -> n",
  "Sets the thread count of OpenBLAS and OpenMP together (0 = all cores) and returns the current count;\nwithout an argument only returns it.",
  "sift.threads(2)")
def("sift.isatty", "sift.isatty(fd = 1) -> boolean", "True when file descriptor fd (1 = stdout) is a terminal.")
def("sift.sgemm_rate", "sift.sgemm_rate(n = 768, reps = 10, kernel = \"openblas\") -> GFLOP/s",
  "Median rate of a bare n x n x n product on this machine: kernel \"openblas\" = OpenBLAS's cblas_sgemm,\n\"sift\" = the engine's own routing (its AVX-512 or AVX2 kernel where the build has one). `make bench`\ncompares training steps against the higher of the two.")
def("sift.gemm_kernel", "sift.gemm_kernel(name?) -> \"avx512\" | \"avx2\" | \"openblas\"",
  "The kernel the engine's large matrix products use: sift's own AVX-512 or AVX2 kernel where the build\ntargets AVX-512 or AVX2 + FMA, else OpenBLAS. gemm_kernel(\"openblas\") forces OpenBLAS (as\nSIFT_GEMM=openblas does at start-up), gemm_kernel(\"auto\") goes back to the best.",
  "sift.gemm_kernel()  --> \"avx512\"")
def("sift.gemm_flops", "sift.gemm_flops() -> integer",
  "Floating-point operations (2 per multiply-add) of every matrix product the engine has made since\nstart-up, whatever kernel ran it. Take differences around a piece of work to count its products:\na training step's forward, backward and head, attention's per-head products, generation's\nmatrix-vector products. Not counted: elementwise work (norms, GELU, softmax, the optimizer) and\nthe k dot products of SIFT's sampled gradients.",
  "local f0 = sift.gemm_flops()\nmodel:forward(batch); model:backward()\nprint((sift.gemm_flops() - f0) / 1e9, \"GFLOP\")")
def("sift.print_options", "sift.print_options{precision=, threshold=, edgeitems=, linewidth=, sci_mode=} -> options",
  "Sets how tostring(tensor) formats numbers (like torch.set_printoptions) and returns the current options.\nthreshold = element count above which tensors print abbreviated; sci_mode = true | false | \"auto\".",
  "sift.print_options{precision = 6}")
section("REPL", "Printing, help and completion in sift-repl (`?name` = help(\"name\"), Tab completes parameter names inside strings).")
def("sift.show", "sift.show(value, {max_items = 40, max_depth = 3, width = 100}) -> string",
  "The text the REPL prints for a value: tostring for tensors, models, sets, figures; plain tables nested\nwith sorted keys, abbreviated beyond max_items entries and max_depth levels.",
  "print(sift.show(history))")
def("help", "help(name_or_value?)",
  "Prints the help text of a function or method: help(\"sift.load\"), help(\"load\"), help(\"Tensor:norm\"),\nhelp(\"model:forward\"), help(sift.load); help(t) on a value lists its class's methods; help() lists\nthe topics. In sift-repl, ?name does the same.", "help \"sift.sparse\"")
def("sift.help", "sift.help(name_or_value?)", "The same function as the global help.")
def("sift.help_registry", "sift.help_registry() -> table",
  "Every help entry: registry[name] = {name, sig, doc, example, section}; registry.sections is the ordered\nlist of {title, intro, names}. scripts/gen_reference.lua writes docs/reference.md from it.")
def("sift.complete.candidates", "sift.complete.candidates(call, typed) -> {name, …} | nil",
  "REPL completion: the parameter names starting with typed for a string argument of call, e.g.\ncall = 'm:param(' lists the model's parameter names (receivers are looked up, never executed).",
  "sift.complete.candidates(\"m:param(\", \"transformer.h.0\")")
def("sift.complete.complete_string", "sift.complete.complete_string(before, text) -> {replacement, …} | nil",
  "The Tab hook inside string literals (global __sift_complete_string): before = the line up to the word,\ntext = the word; nil lets the REPL complete file names instead.")
def("sift.help_signature", "sift.help_signature(fn) -> string | nil",
  "The signature line of a documented function value (used by the REPL printer), or nil.")

---------------------------------------------------------------------------------------------------
section("Tensors", "`sift.Tensor` userdata (float32 unless said otherwise); indices are 1-based in Lua.")
def("sift.tensor", "sift.tensor(table | tensor, dtype?) -> tensor",
  "A tensor from nested tables of numbers (shape from the nesting), or a copy of a tensor.\ndtype: \"f32\" (default), \"bf16\", \"i64\", …",
  "local t = sift.tensor({{1, 2}, {3, 4}})")
def("sift.zeros", "sift.zeros(d1, d2, …, {dtype = \"f32\"}?) -> tensor", "A tensor of zeros with the given dims.",
  "local z = sift.zeros(4, 8)")
def("sift.randn", "sift.randn(d1, d2, …, {seed = 0, std = 1}?) -> tensor",
  "Normal(0, std) samples from a deterministic generator seeded with seed.", "local w = sift.randn(16, 16, {seed = 1})")
def("Tensor:copy_", "t:copy_(src) -> t", "Copies src's values into t in place (same number of elements, dtype converted). Works on\nmodel:param(name) tensors, which share the model's storage.")
def("Tensor:shape", "t:shape() -> {d1, d2, …}", "The dimensions as a table.")
def("Tensor:numel", "t:numel() -> n", "The number of elements.")
def("Tensor:dtype", "t:dtype() -> \"f32\" | \"bf16\" | \"i64\" | …", "The element type.")
def("Tensor:get", "t:get(i, j, …) -> number", "One element, 1-based indices (one per dimension).", "t:get(1, 2)")
def("Tensor:set", "t:set(i, j, …, value)", "Writes one element, 1-based indices (in place; shares storage with model:param).")
def("Tensor:totable", "t:totable() -> nested tables", "The values as nested Lua tables (numbers; integers for integer dtypes).")
def("Tensor:float", "t:float() -> tensor", "A float32 copy.")
def("Tensor:clone", "t:clone() -> tensor", "A copy with its own storage (same dtype).",
  "local before = model:param(name):clone()")
def("Tensor:max_abs_diff", "t:max_abs_diff(u) -> number", "max |t - u| over all elements (same shape); NaN when either holds a NaN.")
def("Tensor:range", "t:range() -> min, max",
  "The smallest and largest value (NaN, NaN when some value is NaN; nothing for an empty tensor).",
  "local lo, hi = t:range()  -- all finite: lo > -math.huge and hi < math.huge")
def("Tensor:norm", "t:norm() -> number", "The L2 (Frobenius) norm.", "model:grad(name):norm()")
def("Tensor:sum", "t:sum() -> number", "The sum of all elements.")
def("Tensor:matmul", "t:matmul(u) -> tensor", "Matrix product of f32 (M, K) and (K, N) tensors.")
def("Tensor:reshape", "t:reshape(d1, d2, …) -> tensor", "A view with another shape and the same storage (same element count).",
  "local flat = w:reshape(w:numel())")
def("Tensor:top_share", "t:top_share(fractions) -> norm_shares, sq_shares",
  "For each fraction x, the share of ||t||_2 (and of ||t||_2^2) held by its k = max(1, floor(x * numel))\nlargest |entries|: gradient concentration (see sift.coverage).",
  "local norm, sq = g:top_share({0.001, 0.01, 0.1})")
def("Tensor:top_indices", "t:top_indices(k) -> i64 tensor",
  "Flat 0-based offsets of t's k entries of largest |value| (ties to the lower offset), ascending: the mask\nthe topk policy picks from a gradient t (see sift.masks).",
  "local idx = model:grad(name):top_indices(sift.budget(0.01, model:grad(name):numel()))")
def("Tensor:count_common", "idx:count_common(other) -> number",
  "How many offsets two strictly ascending 1-D offset tensors (s:indices, t:top_indices) share.",
  "s:indices(name):count_common(g:top_indices(k))")
def("Tensor:combine_", "p:combine_(base, a, d1 [, b, d2]) -> p",
  "Sets p = base + a * d1 (+ b * d2) in place (f32, same sizes; p may be base): a point of a landscape walk.",
  "model:param(name):combine_(w0, 0.5, d)")
def("sift.write_file", "sift.write_file(path, text) -> path",
  "Writes a string to a file atomically (temporary file, fsync, rename): a failure leaves an earlier file\nwhole. With several processes rank 0 writes and every rank learns whether it worked.",
  "sift.write_file(\"result.json\", sift.data.json.encode(result))")
def("sift.load_tensors", "sift.load_tensors(path) -> {name = tensor, …, [\".metadata\"] = {key = value}}",
  "Reads a safetensors file (every tensor copied in its stored dtype); \".metadata\" is always present.",
  "local ref = sift.load_tensors(\"../shared/fixtures/gpt2/reference.safetensors\")")
def("sift.save_tensors", "sift.save_tensors(path, tbl, metadata?) -> count",
  "Writes every tensor-valued entry of tbl to a safetensors file at path (sorted by name, atomically);\nmetadata keys and values go through tostring.",
  "sift.save_tensors(\"grads.safetensors\", {g = model:grad(name)}, {step = 3})")

---------------------------------------------------------------------------------------------------
section("Models", "`sift.Model` userdata: GPT-2, Llama, BERT / RoBERTa from Hugging Face folders or llama2.c files.")
def("sift.load", "sift.load(path, {task = \"lm\" | \"classify\", num_labels = 2, seed = 0}?) -> model",
  "Loads a model from path: a Hugging Face folder (config.json + model.safetensors or a sharded index;\nGPT-2, Llama, BERT/RoBERTa) or a llama2.c .bin. task = \"classify\" adds a sequence-classification head\n(score.weight ~ N(0, 0.02) for GPT-2/Llama, classifier.* for RoBERTa; seed drives its init) unless the\ncheckpoint has one. num_labels = 1 is a regression head (real-valued labels, mean squared error: STS-B).",
  "local model = sift.load(\"../shared/models/gpt2-4m\", {task = \"classify\", num_labels = 2})")
def("sift.build", "sift.build(config, {task =, num_labels =, seed =}?) -> model",
  "A randomly initialised model (Hugging Face's init) of the given shape. config: arch (\"gpt2\" | \"llama\" |\n\"bert\" | \"roberta\"), vocab_size, n_layer, n_head, n_kv_head, d_model, d_ff, head_dim, max_pos, and task /\nnum_labels when the options do not give them: sift.build(model.config) builds a fresh model of the same\nshape and kind (model.config's other fields are accepted and not read).",
  "local m = sift.build({arch = \"gpt2\", vocab_size = 4096, n_layer = 4, n_head = 4, d_model = 256})")
def("Model:names", "model:names() -> {name, …}", "Parameter names in checkpoint order (Hugging Face names for HF checkpoints).")
def("Model:param", "model:param(name) -> tensor", "The parameter tensor (shares storage with the model: writes change it).",
  "model:param(\"transformer.h.0.attn.c_attn.weight\")")
def("Model:param_shape", "model:param_shape(name) -> {d1, d2, …}", "A parameter's shape without making a tensor.")
def("Model:param_layout", "model:param_layout(name) -> \"in_out\" | \"out_in\"",
  "Which axis of a weight holds its output units: \"in_out\" for GPT-2's Conv1D weights (columns), \"out_in\"\nfor every other parameter (rows: nn.Linear, embeddings; 1-D vectors).")
def("Model:profile", "model:profile(true | false) / model:profile() -> {op = {forward =, backward =, calls =}}",
  "Per-op timing: profile(true) clears and starts it, profile() returns seconds spent in each op's\nforward and backward since then, profile(false) stops it.")
def("Model:head_names", "model:head_names() -> {name, …}", "The parameters of the task head (empty for a language model).")
def("Model:grad", "model:grad(name) -> tensor",
  "The full gradient of a parameter after model:backward(). Parameters hooked by a sparse set keep no\ndense gradient (an error says so); frozen parameters have none.")
def("Model:zero_grad", "model:zero_grad()", "Clears every parameter's accumulated gradient.")
def("Model:forward", "model:forward(batch, {grad = true, logits = true, pack = true}?) -> {logits =, loss =}",
  "Runs the model. batch = {input_ids = rows of ids | i64 tensor (B x T), attention_mask = same shape\n(1 = real token), labels = B x T ids (\"lm\", next-token loss like HF) | B class ids (\"classify\") |\nB real targets (a regression head, num_labels = 1: mean squared error)}.\n{grad = false} skips recording for backward (evaluation). {logits = false} with LM labels fuses the\nhead and the loss and keeps no (B*T x vocab) logits (memory), returning only the loss.\nA right-padded batch (mask of 1s then 0s) whose outputs are per row (a classification head, or that\nfused LM loss with -100 labels on the pads) runs packed: its real tokens only, attention kept within each\nrow; same loss and gradients. {pack = false} runs the padded batch as it is.",
  "local out = model:forward({input_ids = {{875, 731, 259, 540}}})")
def("Model:backward", "model:backward(scale = 1)",
  "Back-propagates scale times the loss of the last forward; gradients accumulate into model:grad (or the\nsparse set), so parts of a batch, each scaled by its share of the loss terms, add up to the whole batch.")
def("Model:generate", "model:generate(ids, {max_new = 32, temperature = 0, seed = 0, stop_at_eos = false}?) -> ids",
  "Continues a prompt (table of ids) with a key/value cache: the prompt in one pass, then a token at a time;\ngreedy at temperature 0, sampled otherwise. Returns prompt + new ids. Ctrl-C stops it before its next token\n(inside a long prompt, before its next layer) with an error saying where.",
  "tok:decode(model:generate(tok:encode(\"Once upon a time\"), {max_new = 40}))")

---------------------------------------------------------------------------------------------------
section("Tokenizers", "`sift.Tokenizer` userdata; ids are the model's own 0-based ids. Fields: tok.bos, tok.eos (ids or nil), tok.kind (\"bpe\" | \"llama2c\").")
def("sift.tokenizer", "sift.tokenizer(path) -> tokenizer",
  "Loads a tokenizer: an HF folder or tokenizer.json, GPT-2 encoder.json + vocab.bpe (their folder), or a\nllama2.c tok*.bin.", "local tok = sift.tokenizer(\"../shared/models/gpt2-4m\")")
def("Tokenizer:encode", "tok:encode(text, {bos = false, eos = false}?) -> {id, …}", "Token ids of a string.",
  "tok:encode(\"Once upon a time\")  --> {875, 731, 259, 540}")
def("Tokenizer:decode", "tok:decode(ids) -> string", "Text of a table of ids or an integer tensor (flattened).")
def("Tokenizer:vocab_size", "tok:vocab_size() -> n", "The vocabulary size (also #tok).")
def("Tokenizer:piece", "tok:piece(id) -> string", "The bytes of one token.")
def("Tokenizer:lookup", "tok:lookup(piece) -> id | nil", "The id of a token string, or nil.")
def("Tokenizer:close", "tok:close()", "Frees the tokenizer now (also done by the garbage collector).")

---------------------------------------------------------------------------------------------------
section("Training", "Trainable sets (sparse, LoRA, full, head), the AdamW optimizer and the training loop. Name patterns are Lua patterns matched with string.find against full parameter names.")
def("sift.sparse", "sift.sparse(model, {rate = 0.01, targets =, dense =, policy = \"topk\", seed = 0}?) -> set",
  "A sparse set: only k = rate·numel entries of each target train (as increments on the pre-trained\nvalues). targets default to every 2-D weight inside the transformer blocks, dense to the task head.\npolicy: \"topk\" | \"global\" | \"random\" | \"magnitude\" | \"fisher\" | function(name, grad, k) -> indices.\nThe masks come from s:select(batch) (or the first training batch).",
  "local s = sift.sparse(model, {rate = 0.01}):select(batch)")
def("sift.lora", "sift.lora(model, {r = 8, alpha = 2r, targets =, dense =, seed = 0}?) -> set",
  "A LoRA set: low-rank adapters (A ~ kaiming-uniform, B = 0, scale alpha / r) on the targets (same\ndefaults as sift.sparse); the base weights are frozen.", "local s = sift.lora(model, {r = 8, alpha = 16})")
def("sift.full", "sift.full(model, {params = patterns}?) -> set", "Full fine-tuning: every parameter (or those matching params) trains densely.")
def("sift.head", "sift.head(model) -> set", "Only the task head trains (the head-only baseline); needs a \"classify\" model.")
def("Set:select", "s:select(batch | {batch, …}, {pack = true, scale = 1, micro_batch =}?) -> s",
  "Chooses a sparse set's masks from one forward/backward of the batch (\"fisher\" sums several batches).\nThe calibration gradient is kept: the next optimizer step applies it. No-op for LoRA / full sets.\n{pack = false} runs the batches padded (see model:forward); scale multiplies the loss differentiated;\nmicro_batch = n runs each batch n rows at a time, the masks chosen from the whole batch's gradient.\nSeveral processes: each rank passes its part of each batch ({input_ids = {}} for none) and its share\nas scale; gradients are summed over ranks before the policy picks, so every rank gets the same masks.")
def("Set:kind", "s:kind() -> \"sparse\" | \"lora\" | \"full\"", "The kind of set.")
def("Set:targets", "s:targets() -> {name, …}", "The sparse (or LoRA) target parameter names.")
def("Set:dense", "s:dense() -> {name, …}", "The parameters trained densely alongside (e.g. the task head).")
def("Set:budget", "s:budget(name | i) -> k, numel", "The number of trainable entries of a sparse target and its size.")
def("Set:calibration_loss", "s:calibration_loss() -> loss | nil", "The mean loss of the batches the last select ran.")
def("Set:selected", "s:selected() -> boolean", "Whether every sparse target has its mask (always true for LoRA / full).")
def("Set:indices", "s:indices(name | i) -> i64 tensor",
  "The selected entries of a sparse target: flat 0-based row-major offsets into the stored tensor, ascending.")
def("Set:increment", "s:increment(name | i) -> tensor", "The trained increment δ (k values) of a sparse target; W[idx] = W0[idx] + δ.")
def("Set:trainable", "s:trainable() -> n", "The number of trainable values (sparse + adapters + dense).")
def("Set:memory", "s:memory() -> {weights =, increments =, moments =, indices =, …, optimizer_and_grads =}",
  "Bytes by kind; optimizer_and_grads is the training state of what trains (the memory claim).")
def("Set:merge", "s:merge(false?)", "LoRA: folds the adapters into the weights (s:merge(false) takes them out again).")
def("Set:restore", "s:restore()", "Sparse: puts the pre-trained values back (W[idx] = W0[idx], bit-exact); increments are kept.")
def("Set:write_back", "s:write_back()", "Sparse: writes W[idx] = W0[idx] + δ again (done after every step).")
def("Set:model", "s:model() -> model", "The model the set trains.")
def("Set:close", "s:close()", "Detaches the set: the model's parameters are all trainable again and hooks are removed.")
def("Set:save_delta", "s:save_delta(path) -> delta",
  "Writes the trained sparse increments (indices, values, base hashes) to a delta file, atomically.",
  "s:save_delta(\"sst2.delta.safetensors\")")
def("sift.AdamW", "sift.AdamW(set, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01,\n  decay = \"all\" | \"matrices\", sparse_weight_decay = weight_decay}?) -> optimizer",
  "AdamW over what the set trains; for a sparse set the increments are updated and written back into\nthe weights in :step(). decay = \"matrices\" leaves vectors (biases, norms) undecayed; sparse_weight_decay\nis the increments' (sift.train passes \"matrices\" and 0). Every value must be finite: lr, weight decays\n>= 0, eps > 0, betas in [0, 1).", "local opt = sift.AdamW(s, {lr = 3e-3})")
def("AdamW:step", "opt:step()", "One AdamW update from the accumulated gradients (refuses non-finite gradients).")
def("AdamW:zero_grad", "opt:zero_grad()", "Clears the gradients of what the set trains.")
def("AdamW:set_lr", "opt:set_lr(lr)", "Changes the learning rate, a finite number >= 0 (schedules call this every step).")
def("AdamW:lr", "opt:lr() -> lr", "The current learning rate.")
def("AdamW:steps", "opt:steps() -> n", "The number of steps taken.")
def("AdamW:clip", "opt:clip(max_norm) -> norm",
  "Global L2 norm of every trainable gradient (sparse increments included), scaled down to max_norm when\nabove it. Returns the norm before clipping.")
def("sift.train", "sift.train{model=, method=set, data=dataset, tokenizer=, max_len=64, epochs=1, batch=32, lr=1e-3,\n  warmup=0.06, schedule=\"linear\", clip=1.0, seed=0, max_steps=, eval=dataset, on_step=fn, quiet=,\n  pack=true, micro_batch=, mask_prompt=, checkpoint=path, checkpoint_every=, resume=path} -> history",
  "Trains with the same data order, schedule, clipping and evaluation for every method. Values are checked:\nbatch, epochs, max_len, max_steps, eval_batch whole numbers >= 1; warmup a fraction of the steps in [0, 1];\nschedule \"linear\" | \"cosine\" | \"constant\"; clip > 0 (false: no clipping); quiet, pack, mask_prompt booleans.\nhistory =\n{loss = {...}, lr = {...}, grad_norm = {...}, eval = {{accuracy =, …}, …}, trainable =, seconds =}.\nEach batch runs packed (model:forward's pack): only its rows' real tokens, each row\nattending within itself, for the padded batch's step up to float rounding; pack = false pads it.\nmicro_batch = n runs each batch n rows at a time, each chunk back-propagating its share of the loss\n(gradient accumulation: the same step, a chunk's activations in memory; SIFT's calibration too).\nA progress bar on a terminal; Ctrl-C stops cleanly between steps (history.interrupted says where).\nhistory.bytes_sent[i]: bytes this process sent at step i (several processes: see sift.dist).\ncheckpoint = path saves the state every checkpoint_every steps (default: each epoch), at the end and\non Ctrl-C; resume = that file (or trainer:save's) continues the run (same base model, options) bit for bit.\nA language model trains on next-token loss; mask_prompt = true counts only the responses (text_b) of\ninstruction rows, as instruction tuning does; its eval gives loss and perplexity.",
  "local h = sift.train{model = m, method = s, data = train, tokenizer = tok, epochs = 3, lr = 3e-3, eval = dev}")
def("sift.trainer", "sift.trainer{…same options as sift.train…} -> trainer",
  "The training loop as an object, for stepping by hand: trainer:step(n); trainer.history, .step_no, .total.")
def("Trainer:step", "trainer:step(n?) -> history", "Runs n more steps (all remaining when nil); stops cleanly on Ctrl-C.")
def("Trainer:save", "trainer:save(path) -> path",
  "Writes the state to resume from (atomically): trained tensors and AdamW moments, SIFT's masks, originals\nand increments, the step and history. sift.trainer{…same options…, resume = path} on a freshly loaded\nbase model then takes the bits the uninterrupted run would; a run that differs (method, data rows,\nbatch, seed, steps, base weights) is refused with what differs.",
  "tr:step(100); tr:save(\"run.ckpt\")   -- later: sift.train{…, resume = \"run.ckpt\"}")
def("sift.evaluate", "sift.evaluate(model, dataset, {tokenizer=, max_len=64, batch=64, mask_prompt=}) -> {accuracy=, mcc=, f1=, loss=, n=, predictions=}",
  "Evaluates a classification model (argmax of the logits) on a labelled dataset; predictions[i] is row i's\nlabel. A regression head (num_labels = 1) gives {pearson=, spearman=, mse=, loss=, n=, predictions=}.\nA language model gives {loss=, perplexity=, tokens=, n=}: the mean next-token loss per target token\n(mask_prompt = true: the responses of {text, text_b} rows only). Batches run packed (real tokens only);\nthe results are in the dataset's order.",
  "sift.evaluate(model, dev, {tokenizer = tok})")
def("sift.lr_schedule", "sift.lr_schedule(kind, base, t, T, warmup) -> lr",
  "The learning rate at 0-based step t of T: base · min(1, (t+1)/max(1, round(warmup·T))) times (1 - t/T)\nfor \"linear\", the cosine factor for \"cosine\", 1 for \"constant\".")

---------------------------------------------------------------------------------------------------
section("Deltas", "Trained sparse increments as files: share a few hundred kB instead of a model.")
def("sift.load_delta", "sift.load_delta(path) -> delta", "Loads and validates a delta file written by s:save_delta.",
  "local d = sift.load_delta(\"sst2.delta.safetensors\"); d:apply(model)")
def("Delta:apply", "d:apply(model) -> d", "Checks names, shapes and base hashes, then writes the increments into the model.")
def("Delta:unapply", "d:unapply(model) -> d", "Restores the original values bit-exactly.")
def("Delta:check", "d:check(model) -> true", "Raises one error listing every tensor whose name, shape or base hash does not match.")
def("Delta:save", "d:save(path) -> d", "Writes the delta (atomically).")
def("Delta:entries", "d:entries() -> {{name=, k=, shape=, dense=, sha256=}, …}", "What the delta holds, per tensor.")
def("Delta:metadata", "d:metadata() -> {policy=, rate=, step=, seed=, …}", "The delta's metadata.")

---------------------------------------------------------------------------------------------------
section("Data", "`sift.data`: labelled datasets (arrays of rows {text, text_b?, label}) and batches.")
def("sift.data.load", "sift.data.load(name_or_path, {split = \"train\", format =, all = false}?) -> dataset",
  "Loads sst2, cola, rte, mrpc, stsb, trec or jsonl instruction data: a task name (under $SIFT_SHARED/data),\na folder (the split picks the file) or a file; format is guessed from the name when omitted.",
  "local train = sift.data.load(\"sst2\", {split = \"train\"})")
def("sift.data.encode", "sift.data.encode(rows, tokenizer, {max_len = 64, pad_id = 0, bos =, sep =, pad_to =, task =, eos =}?) -> batch",
  "Tokenises rows into {input_ids, attention_mask, labels}: right padding with pad_id, truncation at\nmax_len; task = \"lm\" gives next-token labels (-100 on padding).",
  "local b = sift.data.encode(train:take(32), tok, {max_len = 64})")
def("sift.data.loss_terms", "sift.data.loss_terms(batch, task) -> n",
  "The number of terms a batch's mean loss averages: its rows, or for task \"lm\" its next-token targets.\nA part of a batch back-propagates its share: model:backward(part's terms / batch's terms).")
def("sift.data.rows_of", "sift.data.rows_of(batch, i, j) -> batch", "Rows i..j of an encoded batch (each per-row field sliced).")
def("sift.data.new", "sift.data.new(rows, meta?) -> dataset", "Wraps an array of rows as a dataset (meta: name, format, split, num_labels, …).")
def("sift.data.is_dataset", "sift.data.is_dataset(x) -> boolean", "Whether x is a dataset.")
def("sift.data.rng", "sift.data.rng(seed) -> rng", "A deterministic generator (splitmix64): the same seed gives the same sequence everywhere.")
def("sift.data.guess_format", "sift.data.guess_format(path) -> format | nil", "The data format implied by a file or folder name.")
def("sift.data.resolve", "sift.data.resolve(name_or_path, opts?) -> file, format, split, name, note", "Where sift.data.load would read from.")
def("sift.data.shared_root", "sift.data.shared_root() -> path", "$SIFT_SHARED, or \"../shared\".")
def("sift.data.json.decode", "sift.data.json.decode(text) -> value", "A small JSON decoder (JSON null is sift.data.json.null).")
def("sift.data.json.encode", "sift.data.json.encode(value) -> text",
  "JSON text of a Lua value: 1..n tables as arrays, others as objects with sorted keys; numbers that read\nback the same (NaN / inf as null). Raises on cycles, functions and non-string object keys.",
  "sift.write_file(\"result.json\", sift.data.json.encode({loss = h.loss}))")
def("Dataset:shuffle", "ds:shuffle(seed) -> dataset", "A shuffled copy (deterministic for a seed).")
def("Dataset:slice", "ds:slice(i, j) -> dataset", "Rows i..j (inclusive; negative counts from the end) as a new dataset.")
def("Dataset:take", "ds:take(n) -> dataset", "The first n rows.", "sift.data.load(\"sst2\"):take(64)")
def("Dataset:filter", "ds:filter(fn) -> dataset", "The rows for which fn(row, i) is true.")
def("Dataset:batches", "ds:batches(size) -> iterator", "for rows, i in ds:batches(size) do … end: consecutive arrays of up to size rows.")
def("Dataset:labels", "ds:labels() -> {label, …}", "The labels of all rows.")
def("Dataset:count_labels", "ds:count_labels() -> {[label] = count}", "How many rows carry each label.")
def("Rng:next", "rng:next() -> integer", "The next 64-bit value.")
def("Rng:int", "rng:int(n) -> 1..n", "A uniform integer in 1..n (no modulo bias).")
def("Rng:float", "rng:float() -> [0, 1)", "A uniform float.")

---------------------------------------------------------------------------------------------------
section("Metrics", "`sift.metrics`: on plain arrays of 0-based labels (or numbers for regression).")
def("sift.metrics.accuracy", "sift.metrics.accuracy(pred, gold) -> number", "The share of positions where pred equals gold.")
def("sift.metrics.confusion", "sift.metrics.confusion(pred, gold, n?) -> m", "m[g + 1][p + 1] = rows with gold g and prediction p.")
def("sift.metrics.mcc", "sift.metrics.mcc(pred, gold) -> number", "Matthews correlation (Gorodkin's R_K for several classes); 0 when undefined.")
def("sift.metrics.f1", "sift.metrics.f1(pred, gold, positive = 1) -> number", "F1 of one class.")
def("sift.metrics.pearson", "sift.metrics.pearson(x, y) -> number", "Pearson correlation (NaN when one side is constant).")
def("sift.metrics.spearman", "sift.metrics.spearman(x, y) -> number", "Spearman rank correlation (ties averaged).")
def("sift.metrics.ranks", "sift.metrics.ranks(x) -> ranks", "1-based ranks, ties sharing their average rank.")
def("sift.metrics.classification", "sift.metrics.classification(pred, gold, n?) -> {accuracy=, mcc=, f1= | macro_f1=, n=}",
  "Every classification metric at once.")
def("sift.metrics.regression", "sift.metrics.regression(pred, gold) -> {pearson=, spearman=, mse=, n=}", "Regression metrics.")

---------------------------------------------------------------------------------------------------
section("Analysis", "Looking inside gradients, masks and the loss around the weights.")
def("sift.coverage", "sift.coverage(model, batch, {fractions = {0.001, 0.01, 0.1}, targets = patterns}?) -> result",
  "Gradient concentration: one forward/backward of batch with every parameter trainable, then for each\ntarget (default: the 2-D block weights) the share of ||g||_2 and ||g||_2^2 in its top x % entries.\nresult = {fractions, names, tensors = {[name] = {norm = {...}, sq = {...}}}, mean, mean_sq, loss}.\nRefuses a model a set is attached to (close it first); leaves the gradients zeroed. Under mpiexec each\nrank back-propagates its part of the rows and the gradients are summed (so are sift.masks').",
  "local c = sift.coverage(model, batch, {fractions = {0.001, 0.01, 0.1}}); print(sift.plot.curve(c))")
def("sift.mask_density", "sift.mask_density(set, {rows = 16, cols = 16, targets =}?) -> result",
  "For each target of a selected sparse set, a rows x cols grid of the fraction of selected entries in\neach block of the weight: result.names, result[name] = grid (rows of numbers; .shape, .density).",
  "print(sift.plot.heatmap(sift.mask_density(s)[\"transformer.h.0.mlp.c_fc.weight\"]))")

def("sift.masks", "sift.masks(model, batch, {rate = 0.01, targets = patterns, policy = \"topk\", seed =}?) -> masks",
  "The masks a policy selects from one forward/backward of batch: masks.names, masks[name] = i64 offsets,\nmasks.numel, masks.loss. topk (k = sift.budget(rate, numel)) without making a set; other policies\n(global, magnitude, fisher, random, a function) through a sparse set made and closed here.\nRefuses a model a set is attached to; leaves the gradients zeroed.",
  "local a, b = sift.masks(m, batch1), sift.masks(m, batch2); print(sift.mask_overlap(a, b))")
def("sift.mask_overlap", "sift.mask_overlap(a, b) -> result",
  "How much two masks agree; a, b: masks (sift.masks, or {names =, numel =, [name] = offsets}) or selected\nsparse sets. Per tensor (.tensors[name]): common, k_a, k_b, overlap = common / min(k), jaccard, chance =\nmax(k) / numel (random picks); over all: overlap (sum common / sum min k), jaccard, chance, mean (of the\nper-tensor overlaps).",
  "print(sift.mask_overlap(s1, s2).overlap)")
def("sift.mask_stability", "sift.mask_stability(model, batches, {rate = 0.01, targets =, policy =, seed =, keep = false}?) -> result",
  "sift.masks of every batch at the same weights, each compared with the first batch's and the one before:\nresult.first[i], result.previous[i], result.loss[i], result.chance, result.tensors[name].first[i];\nresult.masks[i] with keep = true.",
  "print(sift.mask_stability(m, {b1, b2, b3, b4}))")
def("Landscape:plot", "L:plot(opts?) -> figure",
  "A sift.landscape result drawn: 1-D, the loss against a (sift.plot.line); 2-D, the grid as a heatmap (rows a,\ncolumns b) shaded from its lowest to its highest loss (opts.min / max override); opts go to the plot.",
  "print(sift.landscape(m, batch, {directions = 2, points = 15}):plot())")
def("sift.budget", "sift.budget(rate, numel) -> k",
  "How many entries a sparse set of this rate trains in a tensor of numel entries: floor(rate * numel) + 1,\nat most numel (the reference's rule).", "sift.budget(0.01, 768 * 3072)")
def("sift.direction", "sift.direction(w, {seed = 0, stream = 0, normalize = \"filter\", filters = \"rows\"}?) -> tensor",
  "A random direction for w: N(0, 1) entries (seeded by seed and stream), scaled so each filter (row, or\ncolumn with filters = \"cols\") has the norm of w's filter (Li et al. 2018); \"layer\": the whole tensor\nhas w's norm; \"none\": as drawn. A zero filter of w gives a zero filter.",
  "local d = sift.direction(w, {seed = 1, filters = model:param_layout(name) == \"in_out\" and \"cols\" or \"rows\"})")
def("sift.landscape", "sift.landscape(model, batch | {batch, …}, {span = 1, points = 21, directions = 1 | 2 | {d1, d2},\n  seed = 0, normalize = \"filter\", targets =, quiet =}?) -> result",
  "The loss at w0 + a d1 (+ b d2) for a, b on points values in [-span, span]: random filter-normalised\ndirections (sift.direction) over the targets (default: the 2-D block weights), or given ones ({name =\ntensor} each, e.g. w_ft - w0). result: alphas, betas (2-D), loss[i] or loss[i][j], center, dims. The\nweights are put back bit for bit, also after an error or Ctrl-C. Many batches: the mean of their losses.\nOn a terminal a bar counts the points (quiet = true: none). Under mpiexec each rank runs its part of\nthe rows and the losses are summed.",
  "local r = sift.landscape(m, batch, {points = 21}); print(sift.plot.line({y = r.loss, x = r.alphas}))")

---------------------------------------------------------------------------------------------------
section("Plots", "`sift.plot`: terminal plots (braille lines, block-shaded heatmaps) that print in the REPL and save as SVG.")
def("sift.plot.line", "sift.plot.line(series, {width = 64, height = 16, title =, labels =, xlabel =, ylabel =,\n  xmin =, xmax =, ymin =, ymax =, logx =, logy =, color =}?) -> figure",
  "Line plot of one or several y-series (arrays of numbers, {x =, y =, label =}, a training history's loss,\nor name -> series) drawn in braille, with min/max tick labels and a legend.",
  "sift.plot.line({sift = h1.loss, lora = h2.loss}, {title = \"training loss\"})")
def("sift.plot.curve", "sift.plot.curve(coverage | {name = coverage, …}, {sq =, tensors =, …line options}?) -> figure",
  "Gradient-concentration curves: share of ||g||_2 (||g||^2 with sq = true) against the fraction of\ncomponents on a log axis; tensors = true adds one curve per tensor.",
  "sift.plot.curve({pretrained = c1, random = c2})")
def("sift.plot.heatmap", "sift.plot.heatmap(grid, {title =, min =, max =, color =, cell_width = 2, name =}?) -> figure",
  "Block-shaded (' ░▒▓█') or 256-colour heatmap of rows of numbers, a 2-D tensor, or sift.mask_density\noutput (a whole result gives one panel per target; name picks one).",
  "sift.plot.heatmap(sift.mask_density(s), {name = \"transformer.h.0.attn.c_attn.weight\"})")
def("sift.plot.save", "sift.plot.save(fig, path) -> path",
  "Writes the figure as a standalone SVG (polylines, axes, ticks, title, legend; heatmaps as rects), or as\ntext when path ends in .txt. Atomic: a temporary file renamed into place.",
  "sift.plot.save(fig, \"loss.svg\")")
def("sift.plot.svg", "sift.plot.svg(fig, {width = 640, height = 400}?) -> string", "The SVG document of a figure.")
def("sift.plot.shade_level", "sift.plot.shade_level(v, lo, hi) -> 1..5",
  "The index into sift.plot.shades used for v: 1 (blank) at or below lo, then one level per quarter of (lo, hi].")
def("Figure:render", "fig:render() -> string", "The text plot (what tostring(fig) and the REPL show).")
def("Figure:lines", "fig:lines() -> {line, …}", "The text plot as an array of lines.")
def("Figure:svg", "fig:svg({width =, height =}?) -> string", "The SVG document.")
def("Figure:save", "fig:save(path) -> path", "Same as sift.plot.save(fig, path).")

---------------------------------------------------------------------------------------------------
section("Several processes", "`sift.dist`: an MPI build (make MPI=1, build-mpi/sift-repl) run under mpiexec -n N trains\n" ..
  "data-parallel: sift.train gives each rank its part of every batch and sums gradients over ranks as\n" ..
  "backward finishes each one (SIFT: only the k values of each target travel), so every rank takes the\n" ..
  "step one process takes with the whole batch. sift.evaluate splits the rows. Only rank 0 prints\n" ..
  "progress and writes files (sift.save_tensors, s:save_delta, d:save). Ctrl-C on any rank stops every\n" ..
  "rank after the same step. Without MPI: one process.")
def("sift.dist.enabled", "sift.dist.enabled  (boolean)", "Whether this build has MPI (make MPI=1).")
def("sift.dist.rank", "sift.dist.rank() -> r", "This process's 0-based rank (0 without MPI).")
def("sift.dist.size", "sift.dist.size() -> n", "The number of processes (1 without MPI).")
def("sift.dist.sum", "sift.dist.sum(x | {x, …} | tensor) -> sum | {sum, …} | tensor",
  "The sum over every rank of a number, of each element of an array, or of an f32 tensor (in place, returned)\n(every rank must call it).",
  "local n = sift.dist.sum(#my_rows)")
def("sift.dist.bytes_sent", "sift.dist.bytes_sent() -> n",
  "Bytes this process has put into sums since start-up (4 per gradient value; 0 with one process).")
def("sift.dist.barrier", "sift.dist.barrier()", "Returns when every rank has reached it.")
def("sift.dist.part", "sift.dist.part(n) -> lo, hi",
  "The rows lo..hi (1-based, contiguous; empty when lo > hi) of n that this rank takes: how sift.train,\nsift.evaluate and the analyses split a batch over the ranks (one process: 1, n).",
  "local lo, hi = sift.dist.part(#rows)")

---------------------------------------------------------------------------------------------------
-- lookup
---------------------------------------------------------------------------------------------------
local CLASS_ALIASES = {
  tensor = "Tensor", t = "Tensor", model = "Model", m = "Model", tokenizer = "Tokenizer", tok = "Tokenizer",
  set = "Set", s = "Set", sparse = "Set", optimizer = "AdamW", opt = "AdamW", adamw = "AdamW",
  trainer = "Trainer", tr = "Trainer", delta = "Delta", d = "Delta", dataset = "Dataset", ds = "Dataset",
  rng = "Rng", figure = "Figure", fig = "Figure",
}
M.classes = { "Tensor", "Model", "Tokenizer", "Set", "AdamW", "Trainer", "Delta", "Dataset", "Rng", "Figure" }

local function class_of_alias(a)
  a = a:gsub("^sift%.", "")
  for _, c in ipairs(M.classes) do if c == a then return c end end
  return CLASS_ALIASES[a:lower()]
end

local sift_ref
local global_value -- defined below

-- method tables of the classes, found at run time (nil when that part is not built)
function M.class_tables(sift)
  sift = sift or sift_ref
  local out = {}
  if not sift then return out end
  local reg = debug.getregistry()
  local function idx(mtname)
    local mt = reg[mtname]
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then return rawget(mt, "__index") end
    return nil
  end
  out.Tensor = rawget(sift, "Tensor")
  out.Model = rawget(sift, "Model")
  out.Set = rawget(sift, "Set")
  out.Tokenizer = rawget(sift, "Tokenizer")
  out.Delta = rawget(sift, "Delta")
  out.AdamW = idx("sift.AdamW")
  local data = rawget(sift, "data")
  if type(data) == "table" then
    out.Dataset = data.Dataset
    if type(data.rng) == "function" then
      local ok, r = pcall(data.rng, 0)
      if ok and getmetatable(r) then out.Rng = getmetatable(r).__index end
    end
  end
  local plot = rawget(sift, "plot")
  if type(plot) == "table" then out.Figure = plot.Figure end
  return out
end

local function public(k) return type(k) == "string" and not k:match("^_") and k ~= "install" end

-- every public function reachable from the sift table: {name, fn} with help-style names. Breadth-first,
-- so a function reachable under several names gets its shortest (sift.metrics.f1, not sift.data.metrics.f1).
function M.reachable(sift)
  sift = sift or sift_ref
  local out, seen_tbl = {}, {}
  local classes = M.class_tables(sift)
  local class_name = {}
  for c, t in pairs(classes) do if type(t) == "table" then class_name[t] = c end end
  local queue, head = { { sift, "sift" } }, 1
  seen_tbl[sift] = true
  while queue[head] and head <= 200 do
    local t, prefix = queue[head][1], queue[head][2]
    head = head + 1
    local keys = {}
    for k in pairs(t) do if public(k) then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = rawget(t, k)
      if type(v) == "function" then
        out[#out + 1] = { name = prefix .. "." .. k, fn = v }
      elseif type(v) == "table" and not class_name[v] and not seen_tbl[v] then
        seen_tbl[v] = true
        queue[#queue + 1] = { v, prefix .. "." .. k }
      end
    end
  end
  for t, c in pairs(class_name) do
    for k, v in pairs(t) do
      if public(k) and not k:match("^__") and type(v) == "function" then out[#out + 1] = { name = c .. ":" .. k, fn = v } end
    end
  end
  out[#out + 1] = { name = "Trainer:step" } -- made per trainer; documented by name
  return out
end

local by_fn -- function value -> entry name (built lazily; rebuilt when a lookup misses)

local function build_by_fn()
  by_fn = {}
  for _, r in ipairs(M.reachable()) do
    if r.fn and entries[r.name] and not by_fn[r.fn] then by_fn[r.fn] = r.name end
  end
  if _G.help and entries.help then by_fn[_G.help] = by_fn[_G.help] or "help" end
end

local function entry_of_function(f)
  if not by_fn or not by_fn[f] then build_by_fn() end
  return by_fn[f] and entries[by_fn[f]]
end

-- which class a value belongs to (tensor, model, ... userdata or Lua objects)
local function class_of_value(v)
  local mt = getmetatable(v)
  if mt == nil then return nil end
  local classes = M.class_tables()
  local index = type(mt) == "table" and rawget(mt, "__index")
  for c, t in pairs(classes) do
    if t == index or t == mt or (type(mt) == "table" and rawget(mt, "methods") == t) then return c end
  end
  if type(mt) == "table" and rawget(mt, "__name") then
    local n = tostring(rawget(mt, "__name")):gsub("^sift%.", "")
    return class_of_alias(n)
  end
  return nil
end

local function format_entry(e)
  local lines = { e.sig }
  for l in (e.doc .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = "  " .. l end
  if e.example then
    lines[#lines + 1] = "  Example:"
    for l in (e.example .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = "    " .. l end
  end
  return table.concat(lines, "\n")
end

local function names_with_prefix(prefix)
  local out = {}
  for name in pairs(entries) do
    if name:sub(1, #prefix) == prefix then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

local function overview(title, names)
  local lines = { title }
  local w = 0
  for _, n in ipairs(names) do w = math.max(w, #n) end
  for _, n in ipairs(names) do
    local first = entries[n].doc:match("^[^\n]*")
    lines[#lines + 1] = ("  %-" .. w .. "s  %s"):format(n, first)
  end
  return table.concat(lines, "\n")
end

local function class_overview(c)
  local names = names_with_prefix(c .. ":")
  if #names == 0 then return nil end
  local lines = {}
  for _, n in ipairs(names) do lines[#lines + 1] = n end
  return overview(c .. " methods (help(\"" .. c .. ":name\") for details):", names)
end

local function topics()
  local lines = { "sift help — help(\"name\") or ?name for one topic, e.g. help(\"sift.load\"), ?Tensor:norm, ?forward" }
  for _, s in ipairs(sections) do
    lines[#lines + 1] = ""
    lines[#lines + 1] = s.title .. ":"
    local row = "  "
    for _, n in ipairs(s.names) do
      if #row + #n + 2 > 100 then
        lines[#lines + 1] = row
        row = "  "
      end
      row = row .. n .. "  "
    end
    if row ~= "  " then lines[#lines + 1] = row end
  end
  return table.concat(lines, "\n")
end

-- The value of a dotted path of globals (a.b.c), read with rawget only (nothing runs), or nil.
function global_value(path)
  if not path:match("^[%a_][%w_]*[%w_%.]*$") then return nil end
  local v = _G
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = rawget(v, part)
  end
  return v
end

-- The help text for a query (string or value), or nil and a message.
function M.text(q)
  if q == nil then return topics() end
  if type(q) == "function" then
    local e = entry_of_function(q)
    if e then return format_entry(e) end
    return nil, "no help for this function (help() lists the topics)"
  end
  if type(q) ~= "string" then
    local c = class_of_value(q)
    if c then return class_overview(c) or c end
    if type(q) == "table" then -- a module table: its functions
      for _, r in ipairs { "data", "metrics", "plot", "dist" } do
        if sift_ref and rawget(sift_ref, r) == q then
          return overview("sift." .. r .. ":", names_with_prefix("sift." .. r .. "."))
        end
      end
      if q == sift_ref then return topics() end
    end
    return nil, "no help for a " .. type(q) .. " value"
  end
  local s = q:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%(%)$", "")
  if s == "" then return topics() end
  if entries[s] then return format_entry(entries[s]) end
  if entries["sift." .. s] then return format_entry(entries["sift." .. s]) end
  -- Class:method / object:method / sift.Tensor.method / variable:method (a global holding an object)
  local a, m = s:match("^([%w_%.]-)[:%.]([%w_]+)$")
  if a and a ~= "" then
    local c = class_of_alias(a)
    if not c then
      local v = global_value(a)
      if v ~= nil then c = class_of_value(v) end
    end
    if c and entries[c .. ":" .. m] then return format_entry(entries[c .. ":" .. m]) end
  end
  -- a global variable holding a documented function or an object: ?m, ?my_loss_fn
  do
    local v = global_value(s)
    if v ~= nil and type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      local text = M.text(v)
      if text then return text end
    end
  end
  -- a class or a module
  local c = class_of_alias(s)
  if c then
    local o = class_overview(c)
    if o then return o end
  end
  local mod = s:gsub("^sift%.", "")
  local in_mod = names_with_prefix("sift." .. mod .. ".")
  if #in_mod > 0 then return overview("sift." .. mod .. ":", in_mod) end
  -- a bare name: every entry whose last component matches
  local last = s:match("([%w_]+)$")
  local hits = {}
  if last then
    for name in pairs(entries) do
      if name:match("[:%.]" .. last .. "$") or name == last then hits[#hits + 1] = name end
    end
  end
  table.sort(hits)
  if #hits == 1 then return format_entry(entries[hits[1]]) end
  if #hits > 1 then
    local parts = {}
    for _, n in ipairs(hits) do parts[#parts + 1] = format_entry(entries[n]) end
    return table.concat(parts, "\n\n")
  end
  -- suggestions
  local near = {}
  for name in pairs(entries) do
    if name:lower():find(s:lower(), 1, true) then near[#near + 1] = name end
  end
  table.sort(near)
  local msg = ("no help for '%s'"):format(s)
  if #near > 0 then
    msg = msg .. "; did you mean: " .. table.concat(near, ", ", 1, math.min(#near, 12))
  else
    msg = msg .. " (help() lists the topics)"
  end
  return nil, msg
end

-- help(name_or_value): prints the text (through the global print, so callers can capture it)
function M.help(q)
  local text, err = M.text(q)
  print(text or err)
end

function M.registry()
  local out = { sections = {} }
  for name, e in pairs(entries) do
    out[name] = { name = e.name, sig = e.sig, doc = e.doc, example = e.example, section = e.section }
  end
  for i, s in ipairs(sections) do
    local names = {}
    for j, n in ipairs(s.names) do names[j] = n end
    out.sections[i] = { title = s.title, intro = s.intro, names = names }
  end
  return out
end

function M.signature(f)
  local e = type(f) == "function" and entry_of_function(f)
  if not e then return nil end
  local first = e.sig:match("^[^\n]*")
  return first ~= e.sig and first .. " …" or first
end

function M.install(sift)
  sift_ref = sift
  by_fn = nil
  sift.help = M.help
  sift.help_registry = M.registry
  sift.help_signature = M.signature
  _G.help = M.help
end

return M
