-- 01_tensors_and_autograd.lua — tensors, a tiny model, a gradient and one optimizer step.
--
--   ./build/sift-repl examples/01_tensors_and_autograd.lua
--
-- Needs no files. Every statement also works pasted line by line into `./build/sift-repl` (which prints
-- the value of an expression you type, so you can drop the print(...) around it there).

-- 1. Tensors. sift.tensor turns nested Lua tables into a float32 tensor; indices are 1-based.
a = sift.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })
print(a)
print("shape", table.concat(a:shape(), " x "), "  numel", a:numel(), "  dtype", a:dtype(), "  a[2][3] =", a:get(2, 3))

-- Random tensors always take an explicit seed: the same seed gives the same numbers on every machine.
b = sift.randn(2, 3, { seed = 1 })
print(b)

-- 2. Arithmetic. + - * work elementwise on tensors of the same shape; matmul is the matrix product.
print("a + b =", a + b)
print("a * b =", a * b)
col = sift.tensor({ { 1 }, { 0 }, { -1 } }) -- a 3 x 1 column
print("a:matmul(col) =", a:matmul(col))     -- (2 x 3) . (3 x 1) = 2 x 1: row sums of first minus third entry
print("||a|| =", a:norm(), "  max |a - b| =", a:max_abs_diff(b))
print("back to Lua:", a:totable()[2][1])

-- Big tensors print abbreviated, like PyTorch: the corners and "...".
print(sift.randn(100, 100, { seed = 2 }))

-- 3. A tiny model. sift.build makes a GPT-2 shaped transformer from a config, initialised the way Hugging
-- Face initialises a fresh model (weights ~ N(0, 0.02)); sift.load (example 02) reads real checkpoints.
model = sift.build({ arch = "gpt2", vocab_size = 64, n_layer = 2, n_head = 2, d_model = 32, max_pos = 32 }, { seed = 1 })
print(model)
print("the first parameters (Hugging Face names, checkpoint order):")
for i, name in ipairs(model:names()) do
  if i <= 6 then print(("  %-36s %s"):format(name, table.concat(model:param_shape(name), " x "))) end
end

-- 4. Forward. A batch is a table of rows of token ids (0-based, like the embedding rows). With `labels`
-- the model also returns the loss: mean cross-entropy of predicting token t+1 from tokens 1..t.
-- Our toy "language": counting up and counting down.
batch = {
  input_ids = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, { 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1 } },
}
batch.labels = batch.input_ids
out = model:forward(batch)
print("logits shape", table.concat(out.logits:shape(), " x "), "(batch x tokens x vocab)")
print("loss", out.loss, "  a uniform guess over 64 tokens would give ln 64 =", math.log(64))

-- 5. Backward. The engine recorded every operation of forward on a tape; backward walks it in reverse and
-- leaves d loss / d weight in each parameter's gradient.
model:backward()
name = "transformer.h.0.mlp.c_fc.weight"
g = model:grad(name)
print("gradient of " .. name, g)
print("||g|| =", g:norm())

-- 6. Is that gradient right? Nudge the weight with the largest |gradient| by +-eps and watch the loss:
-- (L(w + eps) - L(w - eps)) / (2 eps) should be close to the gradient entry (a finite difference).
w = model:param(name) -- shares storage with the model: changing w changes the model
rows, cols = w:shape()[1], w:shape()[2]
bi, bj, best = 1, 1, 0
for i = 1, rows do for j = 1, cols do if math.abs(g:get(i, j)) > best then bi, bj, best = i, j, math.abs(g:get(i, j)) end end end
eps, w0 = 1e-2, w:get(bi, bj)
w:set(bi, bj, w0 + eps); loss_plus = model:forward(batch, { grad = false }).loss
w:set(bi, bj, w0 - eps); loss_minus = model:forward(batch, { grad = false }).loss
w:set(bi, bj, w0) -- put it back
print(("entry (%d, %d): backward says %.6f, finite difference says %.6f"):format(bi, bj, g:get(bi, bj),
  (loss_plus - loss_minus) / (2 * eps)))

-- 7. One optimizer step. A "set" says what trains: sift.full(model) is every parameter (examples 04 and 05
-- use sparse, LoRA and head-only sets). AdamW then updates the weights from their gradients.
model:forward(batch) -- step 6 ran forward without recording; record again and backpropagate
model:backward()
set = sift.full(model)
print(set)
opt = sift.AdamW(set, { lr = 1e-2 })
loss_before = model:forward(batch, { grad = false }).loss
opt:step()      -- w <- w - lr * (Adam direction + weight decay)
opt:zero_grad() -- gradients accumulate until cleared
loss_after = model:forward(batch, { grad = false }).loss
print(("one AdamW step: loss %.4f -> %.4f"):format(loss_before, loss_after))

-- 8. A short training loop: forward, backward, step, zero_grad — the loss keeps going down.
for step = 2, 30 do
  local loss = model:forward(batch).loss
  model:backward()
  opt:step()
  opt:zero_grad()
  if step % 5 == 0 then print(("step %2d  loss %.4f"):format(step, loss)) end
end
final = model:forward(batch, { grad = false }).loss
print(("after 30 steps: loss %.4f (started at %.4f)"):format(final, loss_before))
if final >= loss_before then error("the loss should have gone down") end

-- 9. The model now continues "1 2 3" by counting (greedy decoding, token ids in and out).
print("1 2 3 ->", table.concat(model:generate({ 1, 2, 3 }, { max_new = 6 }), " "))
