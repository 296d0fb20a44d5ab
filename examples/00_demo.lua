-- 00_demo.lua — the built-in demo (`make demo`): sparse fine-tuning end to end with no external files.
-- 1. build a small GPT-2 and pre-train it (full fine-tuning) on a built-in "language": counting mod 16;
-- 2. look at its gradient on a new task (counting by twos): a few percent of the entries carry most of it;
-- 3. fine-tune only the top 2 % of every block matrix with SIFT and watch the new task being learned;
-- 4. save the increment as a delta and apply it to a copy of the pre-trained model.
-- With ../shared present it ends by generating from a real checkpoint.
print(("sift %s, %d threads\n"):format(sift.version, sift.threads()))

local V, T = 16, 24
local function sequences(step, n, seed)
  local rows, s = {}, seed
  for b = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    local row, x = {}, s % V
    for t = 1, T do row[t] = x; x = (x + step) % V end
    rows[b] = row
  end
  return { input_ids = rows, labels = rows }
end

-- 1. pre-training: next token = previous + 1 (mod 16)
local model = sift.build({ arch = "gpt2", vocab_size = V, n_layer = 2, n_head = 4, d_model = 64, max_pos = 32 }, { seed = 1 })
print(model)
local full = sift.full(model)
local opt = sift.AdamW(full, { lr = 3e-3, weight_decay = 0 })
for step = 1, 60 do
  local out = model:forward(sequences(1, 16, step))
  model:backward(); opt:step(); opt:zero_grad()
  if step % 20 == 0 then print(("pre-training step %2d  loss %.3f"):format(step, out.loss)) end
end
full:close()
local task = sequences(2, 16, 999) -- the new task: counting by twos
print(("\nnew task before fine-tuning: loss %.3f"):format(model:forward(task, { grad = false }).loss))
local base = {} -- keep the pre-trained weights for step 4
for _, name in ipairs(model:names()) do base[name] = model:param(name):clone() end

-- 2. gradient concentration on the new task
model:forward(task); model:backward()
local g = model:grad("transformer.h.0.mlp.c_fc.weight")
local share = g:top_share({ 0.01, 0.05, 0.2 })
print(("share of the gradient norm in the top 1 / 5 / 20 %% of h.0.mlp.c_fc: %.2f / %.2f / %.2f"):format(share[1], share[2], share[3]))
model:zero_grad()

-- 3. SIFT: top-2 % entries of every block matrix, selected on the first batch
local s = sift.sparse(model, { rate = 0.02 }):select(task)
print(s)
local sopt = sift.AdamW(s, { lr = 1e-2, weight_decay = 0 })
sopt:step(); sopt:zero_grad() -- applies the calibration batch's gradient
for step = 2, 80 do
  local out = model:forward(sequences(2, 16, step)); model:backward()
  sopt:step(); sopt:zero_grad()
  if step % 20 == 0 then print(("SIFT step %2d  loss %.3f"):format(step, out.loss)) end
end
local mem = s:memory()
print(("trainable %d of %d weights; optimizer + gradient state %d bytes"):format(s:trainable(), model.config.n_params,
  mem.optimizer_and_grads))
print(("new task after SIFT: loss %.3f"):format(model:forward(task, { grad = false }).loss))
print("continue 0 2 4 ->", table.concat(model:generate({ 0, 2, 4 }, { max_new = 6 }), " "))

-- 4. the increment as a delta, applied to a copy of the pre-trained model
local path = os.tmpname()
s:save_delta(path)
local copy = sift.build({ arch = "gpt2", vocab_size = V, n_layer = 2, n_head = 4, d_model = 64, max_pos = 32 }, { seed = 1 })
for name, t in pairs(base) do copy:param(name):copy_(t) end
local d = sift.load_delta(path)
print(d)
d:apply(copy)
print(("logits of the copy with the delta vs the fine-tuned model: max |diff| = %g"):format(
  copy:forward(task, { grad = false }).logits:max_abs_diff(model:forward(task, { grad = false }).logits)))
os.remove(path)

local shared = os.getenv("SIFT_SHARED") or "../shared"
local ok, real = pcall(sift.load, shared .. "/models/stories260K/stories260K.bin")
if ok then
  local tok = sift.tokenizer(shared .. "/models/stories260K/tok512.bin")
  print("\n" .. tostring(real))
  print(tok:decode(real:generate({ 1 }, { max_new = 40 })))
end
