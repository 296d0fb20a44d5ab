-- 02_load_and_generate.lua — load real pre-trained checkpoints and let them write.
--
--   ./build/sift-repl examples/02_load_and_generate.lua
--
-- Uses two small real models from ../shared/models (or $SIFT_SHARED/models):
--   stories260K  a Llama-architecture model in llama2.c's .bin format, trained on TinyStories
--   gpt2-4m      a GPT-2-architecture model saved by Hugging Face transformers (config.json + safetensors)
-- Every statement also works pasted line by line into ./build/sift-repl.

SHARED = os.getenv("SIFT_SHARED") or "../shared"
STORIES = SHARED .. "/models/stories260K"
GPT2 = SHARED .. "/models/gpt2-4m"
if not io.open(STORIES .. "/stories260K.bin") or not io.open(GPT2 .. "/config.json") then
  print("needs " .. STORIES .. "/stories260K.bin and " .. GPT2 .. "/; skipping")
  os.exit(0)
end

-- 1. A llama2.c checkpoint: sift.load reads the .bin (a 7-number header, then the float32 weights), and
-- sift.tokenizer reads its 512-token SentencePiece vocabulary (tok512.bin).
m = sift.load(STORIES .. "/stories260K.bin")
tok = sift.tokenizer(STORIES .. "/tok512.bin")
print(m)   -- a summary: architecture, sizes, parameter count
print(tok)

-- 2. model.config is a plain Lua table describing the architecture.
c = m.config
print(("arch %s, %d layers, d_model %d, %d heads (%d key/value heads: grouped-query attention), vocab %d")
  :format(c.arch, c.n_layer, c.d_model, c.n_head, c.n_kv_head, c.vocab_size))
print(("RoPE theta %g (%s pairs), RMSNorm eps %g, %d parameters"):format(c.rope_theta, c.rope, c.norm_eps, c.n_params))

-- 3. Text <-> token ids. Ids are the model's own 0-based ids; id 1 is BOS (beginning of sequence).
ids = tok:encode("Once upon a time", { bos = true })
print("ids:", table.concat(ids, " "))
for i = 2, #ids do io.write(("[%s]"):format(tok:piece(ids[i]))) end -- the pieces after BOS
print()

-- 4. Greedy decoding: always take the most likely next token. Deterministic.
-- Starting from BOS alone, this model tells the story it finds most likely.
out = m:generate({ 1 }, { max_new = 60 })
print("greedy:  " .. tok:decode(out))

-- 5. Sampling: draw the next token from softmax(logits / temperature). A seed makes it repeatable;
-- change the seed for another story, raise the temperature for wilder ones.
for _, seed in ipairs({ 1, 2 }) do
  out = m:generate(ids, { max_new = 50, temperature = 0.8, seed = seed })
  print(("sampled (seed %d, T 0.8): %s"):format(seed, tok:decode(out)))
end
again = m:generate(ids, { max_new = 50, temperature = 0.8, seed = 1 })
print("seed 1 again gives the same story:", table.concat(again, ",") == table.concat(
  m:generate(ids, { max_new = 50, temperature = 0.8, seed = 1 }), ","))

-- 6. A Hugging Face folder: config.json + sharded safetensors + tokenizer.json (byte-level BPE, like GPT-2).
g = sift.load(GPT2)
gtok = sift.tokenizer(GPT2)
print(g)
print(gtok)
print("config:", g.config.arch, "d_model", g.config.d_model, "context", g.config.max_pos,
  "tied head (LM head = embedding)", g.config.tied_head)
print("the parameters of one block:")
for _, name in ipairs(g:names()) do
  if name:find("^transformer%.h%.0%.") then print(("  %-36s %s"):format(name, table.concat(g:param_shape(name), " x "))) end
end

-- 7. Generate with its tokenizer. "Once upon a time" is 4 BPE tokens here.
prompt = gtok:encode("Once upon a time")
print("ids:", table.concat(prompt, " "))
print("greedy:  " .. gtok:decode(g:generate(prompt, { max_new = 40 })))
print("sampled: " .. gtok:decode(g:generate(prompt, { max_new = 40, temperature = 0.9, seed = 7 })))
print("another: " .. gtok:decode(g:generate(gtok:encode("The little dog"), { max_new = 30, temperature = 0.9, seed = 3 })))

-- 8. Look inside: the loss of a sentence (how surprised the model is, in nats per token) ...
text = gtok:encode("Once upon a time, there was a little girl named Lily.")
print(("loss of a typical TinyStories sentence: %.3f"):format(g:forward({ input_ids = { text }, labels = { text } }).loss))
odd = gtok:encode("Quantum chromodynamics describes the strong interaction of quarks.")
print(("loss of an unusual sentence:           %.3f"):format(g:forward({ input_ids = { odd }, labels = { odd } }).loss))

-- ... and the five most likely next tokens after the prompt.
logits = g:forward({ input_ids = { prompt } }, { grad = false }).logits -- 1 x T x vocab
last = logits:totable()[1][#prompt]
order = {}
for id = 1, #last do order[id] = id end
table.sort(order, function(x, y) return last[x] > last[y] end)
for r = 1, 5 do print(("  %d. %-10s logit %.2f"):format(r, ("%q"):format(gtok:decode({ order[r] - 1 })), last[order[r]])) end
