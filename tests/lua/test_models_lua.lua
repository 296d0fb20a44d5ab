-- test_models_lua.lua — the Lua side of model loading, checked against real references: forward logits,
-- loss and gradients of the gpt2 / llama / roberta-cls fixtures (written by Hugging Face transformers), the
-- sharded and BF16 copies, the golden generations of stories260K and gpt2-4m, the GPT-2 BPE encoder, tokenizer
-- round trips on every corpus file, and many corrupted or lying files that must fail with a Lua error naming
-- the file or tensor — never a crash.
--   ./build/sift-repl tests/lua/test_models_lua.lua [name filter]
package.path = "./tests/lua/?.lua;" .. package.path
local H = require "harness"
local test, check, close = H.test, H.check, H.close

---------------------------------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------------------------------
local function dir_of(rel) return (H.need_shared(rel):gsub("/[^/]+$", "")) end

local function maxabs(t) -- max |entry| of a tensor of any dtype
  local f = t:float()
  local n = f:numel()
  local flat = f:reshape(n)
  local m = 0
  for i = 1, n do
    local a = math.abs(flat:get(i))
    if a > m then m = a end
  end
  return m
end

local function scalar(t) return t:float():reshape(1):get(1) end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

local tmp_root
local function tmpdir()
  if not tmp_root then
    tmp_root = os.tmpname()
    os.remove(tmp_root)
    assert(os.execute("mkdir -p '" .. tmp_root .. "'"))
  end
  return tmp_root
end

local function remove_tmpdir()
  if tmp_root then
    os.execute("rm -rf '" .. tmp_root .. "'")
    tmp_root = nil
  end
end

-- a test that writes files under tmpdir(): the folder is removed when the test ends, however it ends
local function tmp_test(name, fn)
  test(name, function()
    local ok, err = pcall(fn)
    remove_tmpdir()
    if not ok then error(err, 0) end
  end)
end

local function mkdir(rel)
  local p = tmpdir() .. "/" .. rel
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

-- checks the model's forward (logits, loss) and gradients of batch 0 against a fixture's reference
local function check_fixture(fx, opts)
  local dir = dir_of("fixtures/" .. fx .. "/config.json")
  local ref = sift.load_tensors(dir_of("fixtures/" .. (opts.ref or fx) .. "/reference.safetensors") .. "/reference.safetensors")
  local m = sift.load(dir, opts.load)
  local batch = {
    input_ids = ref["batch0.input_ids"],
    attention_mask = ref["batch0.attention_mask"],
    labels = ref["batch0.labels"] or ref["batch0.input_ids"],
  }
  local out = m:forward(batch)
  check(out.logits:dtype() == "f32", "%s: logits dtype %s", fx, out.logits:dtype())
  local shape, rshape = out.logits:shape(), ref.logits:shape()
  check(#shape == #rshape, "%s: logits rank %d vs %d", fx, #shape, #rshape)
  for i = 1, #rshape do check(shape[i] == rshape[i], "%s: logits dim %d is %d, reference %d", fx, i, shape[i], rshape[i]) end
  local rel = out.logits:max_abs_diff(ref.logits) / maxabs(ref.logits)
  check(rel <= opts.tol, "%s: logits differ by %.3g relative (tol %.1g)", fx, rel, opts.tol)
  local ref_loss = scalar(ref.loss)
  close(out.loss, ref_loss, opts.tol * math.abs(ref_loss), fx .. " loss")
  if not opts.grads then return m, ref end
  m:backward()
  local gmax = 0
  for _, n in ipairs(m:names()) do
    local g = ref["grad." .. n]
    check(g ~= nil, "%s: no reference gradient for %s", fx, n)
    if g then gmax = math.max(gmax, maxabs(g)) end
  end
  local checked = 0
  for _, n in ipairs(opts.grads) do
    local g, rg = m:grad(n), ref["grad." .. n]
    local tol = 1e-3 * math.max(maxabs(rg), 1e-4 * gmax)
    local d = g:max_abs_diff(rg)
    check(d <= tol, "%s: grad of %s differs by %.3g (tol %.3g)", fx, n, d, tol)
    checked = checked + 1
  end
  check(checked >= 3, "%s: only %d gradients checked", fx, checked)
  return m, ref
end

---------------------------------------------------------------------------------------------------
-- fixtures: forward and backward against Hugging Face
---------------------------------------------------------------------------------------------------
test("gpt2 fixture: logits, loss and gradients match Hugging Face", function()
  check_fixture("gpt2", { tol = 1e-4, grads = {
    "transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
    "transformer.h.0.attn.c_proj.bias", "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.ln_2.weight",
    "transformer.ln_f.bias",
  } })
end)

test("llama fixture (GQA, untied head): logits, loss and gradients match", function()
  check_fixture("llama", { tol = 1e-4, grads = {
    "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
    "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight",
    "lm_head.weight",
  } })
end)

test("roberta-cls fixture with attention mask: logits, loss and gradients match", function()
  local m = check_fixture("roberta-cls", { tol = 1e-4, load = { task = "classify" }, grads = {
    "roberta.embeddings.word_embeddings.weight", "roberta.encoder.layer.0.attention.self.query.weight",
    "roberta.encoder.layer.1.output.dense.weight", "classifier.dense.weight", "classifier.out_proj.weight",
    "classifier.out_proj.bias",
  } })
  check(m.config.task == "classify" and m.config.num_labels == 2, "roberta-cls: task %s, %s labels",
    tostring(m.config.task), tostring(m.config.num_labels))
  check(#m:head_names() == 4, "roberta-cls: %d head tensors (loaded classifier.dense.* + out_proj.*)", #m:head_names())
end)

test("roberta-cls: the padded positions do not change the logits", function()
  local dir = dir_of("fixtures/roberta-cls/config.json")
  local ref = sift.load_tensors(dir .. "/reference.safetensors")
  local m = sift.load(dir, { task = "classify" })
  local ids, mask = ref["batch0.input_ids"]:totable(), ref["batch0.attention_mask"]:totable()
  local padded_rows = 0
  for r = 1, #ids do
    local n = 0
    for _, v in ipairs(mask[r]) do n = n + v end
    if n < #mask[r] then
      padded_rows = padded_rows + 1
      -- the same row, cut to its real tokens, alone in a batch
      local row_ids, row_mask = {}, {}
      for j = 1, n do row_ids[j], row_mask[j] = ids[r][j], 1 end
      local alone = m:forward({ input_ids = { row_ids }, attention_mask = { row_mask } }, { grad = false }).logits
      local full = ref.logits:totable()[r]
      local a = alone:totable()[1]
      for c = 1, #full do close(a[c], full[c], 1e-4 * math.max(1, math.abs(full[c])), "row " .. r .. " logit " .. c) end
    end
  end
  check(padded_rows > 0, "batch 0 has no padded row")
end)

test("gpt2-sharded and gpt2-bf16 load the same weights", function()
  check_fixture("gpt2-sharded", { ref = "gpt2", tol = 1e-4 })
  local m16 = check_fixture("gpt2-bf16", { ref = "gpt2", tol = 2e-2 })
  check(#m16:names() == 28, "bf16: %d tensors", #m16:names())
end)

---------------------------------------------------------------------------------------------------
-- real models: golden generations
---------------------------------------------------------------------------------------------------
local STORIES_GOLDEN = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " ..
  "One day, she saw a big, red ball"
local GPT2_4M_GOLDEN = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park " ..
  "with her friends. One day, Lily's mom asked her to play with her friends. They went to the park"

test("stories260K: greedy golden text from BOS", function()
  local bin = H.need_shared("models/stories260K/stories260K.bin")
  local m = sift.load(bin)
  local tok = sift.tokenizer(H.need_shared("models/stories260K/tok512.bin"))
  check(m.config.arch == "llama" and m.config.vocab_size == 512 and m.config.n_layer == 5, "stories260K config")
  local ids = m:generate({ 1 }, { max_new = 60 })
  check(#ids == 61 and ids[1] == 1, "generate returned %d ids", #ids)
  local text = tok:decode(ids)
  check(text:sub(1, #STORIES_GOLDEN) == STORIES_GOLDEN, "stories260K text: %q", text)
  -- the same seed gives the same sample; a different seed (almost surely) another
  local a = m:generate({ 1 }, { max_new = 30, temperature = 1.0, seed = 5 })
  local b = m:generate({ 1 }, { max_new = 30, temperature = 1.0, seed = 5 })
  check(table.concat(a, ",") == table.concat(b, ","), "sampling with a seed is not reproducible")
end)

test("gpt2-4m: tokenizer ids and greedy golden text", function()
  local dir = dir_of("models/gpt2-4m/config.json")
  local m, tok = sift.load(dir), sift.tokenizer(dir)
  local ids = tok:encode("Once upon a time")
  check(table.concat(ids, ",") == "875,731,259,540", "encode: %s", table.concat(ids, ","))
  local out = m:generate(ids, { max_new = 40 })
  check(#out == 44, "%d ids", #out)
  local text = tok:decode(out)
  check(text == GPT2_4M_GOLDEN, "gpt2-4m text: %q", text)
  check(m.config.n_params == 4273664, "n_params %s", tostring(m.config.n_params))
end)

---------------------------------------------------------------------------------------------------
-- tokenizers
---------------------------------------------------------------------------------------------------
test("GPT-2 encoder.json + vocab.bpe encodes like OpenAI's tokenizer", function()
  local dir = dir_of("models/gpt2-bpe/encoder.json")
  local tok = sift.tokenizer(dir)
  local ids = tok:encode("Hello world! It's 2026.")
  check(table.concat(ids, ",") == "15496,995,0,632,338,1160,2075,13", "ids %s", table.concat(ids, ","))
  check(tok:decode(ids) == "Hello world! It's 2026.", "decode")
  check(#tok == 50257, "vocab %d", #tok)
end)

-- Byte-level BPE (GPT-2) and the llama2.c tokenizer's byte fallback encode any bytes: random strings —
-- invalid UTF-8, lone continuation bytes, truncated 4-byte sequences, NUL, control bytes, runs of spaces
-- and newlines — decode back to themselves exactly.
test("tokenizers: random bytes round trip exactly (three tokenizers, 1500 strings each)", function()
  local toks = {
    ["gpt2-4m tokenizer.json"] = sift.tokenizer(dir_of("models/gpt2-4m/tokenizer.json")),
    ["gpt2-bpe encoder.json"] = sift.tokenizer(dir_of("models/gpt2-bpe/encoder.json")),
    ["stories260K tok512.bin"] = sift.tokenizer(H.need_shared("models/stories260K/tok512.bin")),
  }
  local names = {}
  for name in pairs(toks) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local tok, rng, bad = toks[name], sift.data.rng(5), 0
    for case = 1, 1500 do
      local b = {}
      for i = 1, rng:int(48) - 1 do
        local r = rng:int(10)
        b[i] = r <= 3 and rng:int(256) - 1 or r <= 6 and 31 + rng:int(95)
          or ({ 0x20, 0x0a, 0x0d, 0x09, 0x00, 0xe2, 0x80, 0x99, 0xf0, 0x9f, 0xc3, 0xa9 })[rng:int(12)]
      end
      local s = string.char(table.unpack(b))
      local ok, back = pcall(function() return tok:decode(tok:encode(s)) end)
      if not (ok and back == s) and bad < 3 then
        bad = bad + 1
        check(false, "%s case %d: %q came back as %s", name, case, s, ok and ("%q"):format(back) or tostring(back))
      end
    end
  end
end)

test("tokenizer round trips on every corpus file (three tokenizers)", function()
  local toks = {
    ["gpt2-4m tokenizer.json"] = sift.tokenizer(dir_of("models/gpt2-4m/tokenizer.json")),
    ["gpt2-bpe encoder.json"] = sift.tokenizer(dir_of("models/gpt2-bpe/encoder.json")),
    ["stories260K tok512.bin"] = sift.tokenizer(H.need_shared("models/stories260K/tok512.bin")),
  }
  local root = dir_of("data/corpora/tinyshakespeare_input.txt")
  local files = { "fortunes.txt", "tinyshakespeare_input.txt", "tinystories_val_prefix.txt", "wikitext2_test.txt",
    "wikitext2_valid.txt" }
  for _, f in ipairs(files) do
    local text = read_file(root .. "/" .. f)
    for name, tok in pairs(toks) do
      local ids = tok:encode(text)
      check(#ids > 0 and #ids < #text, "%s on %s: %d ids for %d bytes", name, f, #ids, #text)
      local back = tok:decode(ids)
      if not check(back == text, "%s on %s: decode(encode(x)) differs (%d vs %d bytes)", name, f, #back, #text) then
        for i = 1, math.max(#back, #text) do
          if back:byte(i) ~= text:byte(i) then
            io.stderr:write(("      first difference at byte %d: %q vs %q\n"):format(i, text:sub(i, i + 20), back:sub(i, i + 20)))
            break
          end
        end
      end
    end
  end
end)

---------------------------------------------------------------------------------------------------
-- corrupted and lying files: each must raise a Lua error naming the file (or tensor)
---------------------------------------------------------------------------------------------------
local function u64(n) return string.pack("<I8", n) end
local function st(header, data) return u64(#header) .. header .. (data or "") end
local function f32s(n) return string.rep(string.pack("<f", 1.5), n) end

-- { name, function() return fn, arg... end, expected substrings... }
local function expect_failure(what, fn, args, needles)
  local ok, err = pcall(fn, table.unpack(args))
  if not check(not ok, "%s: accepted (should fail)", what) then return end
  err = tostring(err)
  for _, needle in ipairs(needles) do
    check(err:find(needle, 1, true), "%s: message does not name %q: %s", what, needle, err)
  end
  check(not err:find("\n", 1, true), "%s: message is not one line: %s", what, err)
end

tmp_test("sift.load_tensors refuses corrupted and lying safetensors files", function()
  local d = mkdir("st")
  local good = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
  local cases = {
    { "empty.safetensors", "" },
    { "short_length.safetensors", "\1\0\0" },
    { "zero_header.safetensors", u64(0) .. f32s(2) },
    { "header_past_eof.safetensors", u64(1000) .. good },
    { "header_absurd.safetensors", u64(1 << 62) .. good },
    { "truncated_json.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offs', f32s(2)) },
    { "bad_json.safetensors", st('{"a":{"dtype":"F32",,"shape":[2],"data_offsets":[0,8]}}', f32s(2)) },
    { "not_json.safetensors", st("GGUF\0\0\0\0garbage", f32s(2)) },
    { "json_array.safetensors", st("[1,2,3]", f32s(2)) },
    { "past_end.safetensors", st('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32s(2)), "'a'" },
    { "overlap.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f32s(3)), "overlap" },
    { "end_before_begin.safetensors", st('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', f32s(2)), "'a'" },
    { "wrong_dtype_size.safetensors", st('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f32s(2)), "'a'" },
    { "bf16_as_f32.safetensors", st('{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}}', f32s(2)), "'w'" },
    { "shape_overflow.safetensors", st('{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}',
      f32s(2)), "'a'" },
    { "shape_overflow_bytes.safetensors", st('{"a":{"dtype":"F64","shape":[536870912,536870912,8],"data_offsets":[0,8]}}',
      f32s(2)), "'a'" },
    { "negative_dim.safetensors", st('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', f32s(2)), "'a'" },
    { "fractional_dim.safetensors", st('{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}', f32s(2)), "'a'" },
    { "unknown_dtype.safetensors", st('{"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}', f32s(2)), "'a'" },
    { "fp8_dtype.safetensors", st('{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}', f32s(2)), "F8_E4M3" },
    { "missing_dtype.safetensors", st('{"a":{"shape":[2],"data_offsets":[0,8]}}', f32s(2)), "dtype" },
    { "missing_offsets.safetensors", st('{"a":{"dtype":"F32","shape":[2]}}', f32s(2)), "data_offsets" },
    { "shape_not_array.safetensors", st('{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}', f32s(2)), "shape" },
    { "offsets_not_ints.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}}', f32s(2)), "'a'" },
    { "duplicate_name.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', f32s(4)), "'a'" },
    { "hole.safetensors", st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' ..
      '"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', f32s(3)), "'b'" },
    { "trailing_bytes.safetensors", st(good, f32s(2) .. "extra") },
    { "metadata_not_strings.safetensors", st('{"__metadata__":{"format":1},' .. good:sub(2), f32s(2)), "__metadata__" },
    { "metadata_not_object.safetensors", st('{"__metadata__":"pt",' .. good:sub(2), f32s(2)), "__metadata__" },
    { "too_many_dims.safetensors", st('{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2],' ..
      '"data_offsets":[0,8]}}', f32s(2)), "'a'" },
    { "negative_offset.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}', f32s(2)), "'a'" },
    { "offset_overflow.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,' ..
      '18446744073709551616]}}', f32s(2)), "'a'" },
    { "deep_nesting.safetensors", st('{"a":' .. ("["):rep(100000) .. ("]"):rep(100000) .. "}", f32s(2)) },
    { "nul_in_header.safetensors", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}\0\0\0garbage', f32s(2)) },
    { "entry_not_object.safetensors", st('{"a":[1,2,3]}', f32s(2)), "'a'" },
    { "metadata_key_clash.safetensors", st('{".metadata":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32s(2)) },
  }
  -- a real file cut short in its data section and in its header
  local real = read_file(dir_of("fixtures/gpt2/model.safetensors") .. "/model.safetensors")
  cases[#cases + 1] = { "cut_data.safetensors", real:sub(1, #real * 6 // 10) }
  local hlen = string.unpack("<I8", real)
  cases[#cases + 1] = { "cut_header.safetensors", real:sub(1, 8 + hlen // 2) }
  -- a valid control file first: the writer above makes loadable files
  local ctl = write_file(d .. "/control.safetensors", st(good, f32s(2)))
  local t = sift.load_tensors(ctl)
  check(t.a and t.a:numel() == 2 and t.a:get(2) == 1.5, "control file did not load")
  for _, c in ipairs(cases) do
    local path = write_file(d .. "/" .. c[1], c[2])
    local needles = { c[1] }
    if c[3] then needles[2] = c[3] end
    expect_failure("load_tensors " .. c[1], sift.load_tensors, { path }, needles)
  end
  expect_failure("load_tensors of a missing file", sift.load_tensors, { d .. "/nope.safetensors" }, { "nope.safetensors" })
  expect_failure("load_tensors of a folder", sift.load_tensors, { d }, { d })
  check(#cases >= 30, "%d cases", #cases)
end)

-- writes a Hugging Face folder `name` from the gpt2 fixture: config (a table of replacements applied to the
-- config.json text), tensors (function(tbl) editing the loaded tensors) and optional extra files.
local function fake_hf(name, opts)
  local src = dir_of("fixtures/gpt2/config.json")
  local d = mkdir(name)
  local cfg = read_file(src .. "/config.json")
  for _, r in ipairs(opts.config or {}) do
    local n
    cfg, n = cfg:gsub(r[1], r[2])
    assert(n > 0, "fake_hf: pattern " .. r[1] .. " not in config.json")
  end
  write_file(d .. "/config.json", opts.config_text or cfg)
  if opts.tensors ~= false then
    local t = sift.load_tensors(src .. "/model.safetensors")
    if opts.tensors then opts.tensors(t) end
    sift.save_tensors(d .. "/" .. (opts.file or "model.safetensors"), t, t[".metadata"])
  end
  for f, bytes in pairs(opts.files or {}) do write_file(d .. "/" .. f, bytes) end
  return d
end

local function llama2c_header(dim, hidden, layers, heads, kv, vocab, seq)
  return string.pack("<i4i4i4i4i4i4i4", dim, hidden, layers, heads, kv, vocab, seq)
end

tmp_test("sift.load refuses broken model folders and llama2.c files", function()
  local gpt2_dir = dir_of("fixtures/gpt2/config.json")
  -- control: an untouched copy loads and agrees with the original
  local ctl = fake_hf("control", {})
  local m = sift.load(ctl)
  check(m:param("transformer.h.0.attn.c_attn.weight"):max_abs_diff(
    sift.load(gpt2_dir):param("transformer.h.0.attn.c_attn.weight")) == 0, "control copy differs")

  local cases = {
    { "missing tensor", fake_hf("missing", { tensors = function(t) t["transformer.h.1.mlp.c_proj.weight"] = nil end }),
      { "missing", "transformer.h.1.mlp.c_proj.weight" } },
    { "config with wrong shapes", fake_hf("wrong_shapes", { config = { { '"n_embd": 32', '"n_embd": 48' } } }),
      { "model.safetensors", "transformer." } },
    { "tensor with the wrong shape", fake_hf("bad_tensor_shape", { tensors = function(t)
      t["transformer.h.0.mlp.c_fc.weight"] = sift.zeros(32, 64) end }), { "transformer.h.0.mlp.c_fc.weight" } },
    { "integer weights", fake_hf("int_weights", { tensors = function(t)
      t["transformer.ln_f.bias"] = sift.zeros(32, { dtype = "i64" }) end }), { "transformer.ln_f.bias" } },
    { "bad config JSON", fake_hf("bad_config", { config_text = '{"model_type": "gpt2", "n_embd": 32,,}' }),
      { "config.json" } },
    { "config not an object", fake_hf("config_array", { config_text = "[1, 2, 3]" }), { "config.json" } },
    { "empty config", fake_hf("config_empty", { config_text = "" }), { "config.json" } },
    { "unknown model_type", fake_hf("mamba", { config = { { '"model_type": "gpt2"', '"model_type": "mamba"' } } }),
      { "config.json", "mamba" } },
    { "heads do not divide n_embd", fake_hf("heads", { config = { { '"n_head": 2', '"n_head": 3' } } }),
      { "config.json" } },
    { "negative vocab", fake_hf("neg_vocab", { config = { { '"vocab_size": 96', '"vocab_size": -96' } } }),
      { "config.json", "vocab_size" } },
    { "absurd layer count", fake_hf("huge_layers", { config = { { '"n_layer": 2', '"n_layer": 100000000000' } } }),
      { "config.json" } },
    { "string where a number belongs", fake_hf("string_field", { config = { { '"n_embd": 32', '"n_embd": "32"' } } }),
      { "config.json", "n_embd" } },
    { "no weights file", fake_hf("no_weights", { tensors = false }), { "no_weights" } },
    { "no config.json", (function()
      local d = mkdir("no_config")
      write_file(d .. "/model.safetensors", read_file(gpt2_dir .. "/model.safetensors"))
      return d
    end)(), { "no_config" } },
    { "truncated weights file", fake_hf("cut_weights", { tensors = false, files = {
      ["model.safetensors"] = read_file(gpt2_dir .. "/model.safetensors"):sub(1, 50000) } }), { "model.safetensors" } },
    { "bad index.json", fake_hf("bad_index", { tensors = false, files = {
      ["model.safetensors.index.json"] = '{"weight_map": {"transformer.wte.weight": ' } }), { "model.safetensors.index.json" } },
    { "index without weight_map", fake_hf("index_no_map", { tensors = false, files = {
      ["model.safetensors.index.json"] = '{"metadata": {}}' } }), { "model.safetensors.index.json" } },
    { "index naming a missing shard", fake_hf("index_missing_shard", { file = "shard-1.safetensors", files = {
      ["model.safetensors.index.json"] = '{"weight_map": {"transformer.wte.weight": "shard-1.safetensors", ' ..
        '"transformer.wpe.weight": "shard-2.safetensors"}}' } }), { "shard-2.safetensors" } },
    { "index escaping the folder", fake_hf("index_escape", { file = "shard-1.safetensors", files = {
      ["model.safetensors.index.json"] = '{"weight_map": {"transformer.wte.weight": "../control/model.safetensors"}}' } }),
      { "model.safetensors.index.json" } },
    { "index listing too few shards", fake_hf("index_partial", { tensors = function(t)
      t["transformer.wte.weight"] = nil end, file = "shard-1.safetensors", files = {
      ["model.safetensors.index.json"] = '{"weight_map": {"transformer.wpe.weight": "shard-1.safetensors"}}' } }),
      { "transformer.wte.weight" } },
    { "same tensor in two shards", (function()
      local d = fake_hf("dup_shards", { file = "shard-1.safetensors", files = {
        ["model.safetensors.index.json"] = '{"weight_map": {"transformer.wte.weight": "shard-1.safetensors", ' ..
          '"transformer.wpe.weight": "shard-2.safetensors"}}' } })
      local t = sift.load_tensors(gpt2_dir .. "/model.safetensors")
      sift.save_tensors(d .. "/shard-2.safetensors", { ["transformer.wte.weight"] = t["transformer.wte.weight"] })
      return d
    end)(), { "transformer.wte.weight" } },
    { "missing path", tmpdir() .. "/does_not_exist", { "does_not_exist" } },
    { "a plain file that is no model", write_file(tmpdir() .. "/notes.txt", "hello"), { "notes.txt" } },
  }

  -- llama2.c files: a real one truncated, and headers that lie
  local bin_path = H.shared("models/stories260K/stories260K.bin")
  if bin_path then
    local bin = read_file(bin_path)
    local d = mkdir("llama2c")
    local function bin_case(what, file, bytes, needles)
      cases[#cases + 1] = { what, write_file(d .. "/" .. file, bytes), needles or { file } }
    end
    bin_case("llama2.c truncated in the weights", "cut.bin", bin:sub(1, #bin - 1000))
    bin_case("llama2.c truncated in the header", "cut_header.bin", bin:sub(1, 12))
    bin_case("llama2.c empty file", "empty.bin", "")
    bin_case("llama2.c absurd dim", "absurd_dim.bin", llama2c_header(1 << 30, 172, 5, 8, 4, 512, 512) .. bin:sub(29))
    bin_case("llama2.c absurd layers", "absurd_layers.bin", llama2c_header(64, 172, 2000000000, 8, 4, 512, 512) .. bin:sub(29))
    bin_case("llama2.c negative sizes", "negative.bin", llama2c_header(-64, 172, 5, 8, 4, 512, 512) .. bin:sub(29))
    bin_case("llama2.c zero heads", "zero_heads.bin", llama2c_header(64, 172, 5, 0, 0, 512, 512) .. bin:sub(29))
    bin_case("llama2.c heads not dividing dim", "heads.bin", llama2c_header(64, 172, 5, 6, 3, 512, 512) .. bin:sub(29))
    bin_case("llama2.c kv heads not dividing heads", "kv.bin", llama2c_header(64, 172, 5, 8, 3, 512, 512) .. bin:sub(29))
    bin_case("llama2.c header lying about the vocab", "vocab.bin", llama2c_header(64, 172, 5, 8, 4, 4096, 512) .. bin:sub(29))
    bin_case("llama2.c extra bytes", "extra.bin", bin .. string.rep("\0", 100))
  end

  for _, c in ipairs(cases) do expect_failure("sift.load: " .. c[1], sift.load, { c[2] }, c[3]) end
  -- a classify load of a broken folder fails the same way
  expect_failure("sift.load classify: missing tensor", sift.load, { tmpdir() .. "/missing", { task = "classify", num_labels = 2 } },
    { "transformer.h.1.mlp.c_proj.weight" })
  check(#cases >= 20, "%d cases", #cases)
  -- the engine survives all of that: the control model still runs
  local out = m:forward({ input_ids = { { 1, 2, 3 } }, labels = { { 1, 2, 3 } } })
  check(out.loss == out.loss, "control model broken after the failures")
end)

tmp_test("sift.tokenizer refuses broken tokenizer files", function()
  local d = mkdir("tok")
  local tj = read_file(dir_of("models/gpt2-4m/tokenizer.json") .. "/tokenizer.json")
  local enc_dir = dir_of("models/gpt2-bpe/encoder.json")
  local cases = {
    { "broken tokenizer.json", write_file(d .. "/tokenizer.json", tj:sub(1, #tj // 2)), "tokenizer.json" },
    { "tokenizer.json without a model", write_file(mkdir("tok/nomodel") .. "/tokenizer.json", '{"version": "1.0"}'),
      "tokenizer.json" },
    { "tokenizer.json with an empty vocab", write_file(mkdir("tok/emptyvocab") .. "/tokenizer.json",
      '{"model": {"type": "BPE", "vocab": {}, "merges": []}}'), "tokenizer.json" },
    { "encoder.json without vocab.bpe", (function()
      local e = mkdir("tok/nobpe")
      write_file(e .. "/encoder.json", read_file(enc_dir .. "/encoder.json"))
      return e
    end)(), "nobpe" },
    { "broken encoder.json", (function()
      local e = mkdir("tok/badenc")
      write_file(e .. "/encoder.json", '{"hello": 1, "world": ')
      write_file(e .. "/vocab.bpe", read_file(enc_dir .. "/vocab.bpe"))
      return e
    end)(), "encoder.json" },
  }
  local tok_bin = H.shared("models/stories260K/tok512.bin")
  if tok_bin then
    local b = read_file(tok_bin)
    cases[#cases + 1] = { "truncated tok512.bin", write_file(d .. "/tok_cut.bin", b:sub(1, #b // 2)), "tok_cut.bin" }
    cases[#cases + 1] = { "tok.bin with an absurd max length", write_file(d .. "/tok_absurd.bin",
      string.pack("<i4", 0x7fffffff) .. b:sub(5)), "tok_absurd.bin" }
    cases[#cases + 1] = { "tok.bin with a negative piece length", write_file(d .. "/tok_neg.bin",
      b:sub(1, 8) .. string.pack("<i4", -5) .. b:sub(13)), "tok_neg.bin" }
  end
  for _, c in ipairs(cases) do expect_failure("sift.tokenizer: " .. c[1], sift.tokenizer, { c[2] }, { c[3] }) end
end)

test("bad batches, prompts and ids raise errors; the model keeps working", function()
  local dir = dir_of("fixtures/gpt2/config.json")
  local m = sift.load(dir)
  local c = sift.load(dir, { task = "classify", num_labels = 2 })
  local long = {}
  for i = 1, 40 do long[i] = i % 90 end
  local cases = {
    { "id past the vocabulary", m.forward, { m, { input_ids = { { 1, 2, 500 } } } }, "500" },
    { "negative id", m.forward, { m, { input_ids = { { 1, -2, 5 } } } }, "-2" },
    { "label past the vocabulary", m.forward, { m, { input_ids = { { 1, 2, 5 } }, labels = { { 1, 2, 500 } } } }, "500" },
    { "negative label other than -100", m.forward, { m, { input_ids = { { 1, 2, 5 } }, labels = { { 1, -5, 3 } } } }, "-5" },
    { "mask of the wrong shape", m.forward, { m, { input_ids = { { 1, 2, 5 } }, attention_mask = { { 1, 1 } } } },
      "attention_mask" },
    { "labels of the wrong shape", m.forward, { m, { input_ids = { { 1, 2, 5 } }, labels = { { 1, 2 } } } }, "labels" },
    { "no input_ids", m.forward, { m, { labels = { { 1 } } } }, "input_ids" },
    { "empty batch", m.forward, { m, { input_ids = {} } }, "empty" },
    { "ragged rows", m.forward, { m, { input_ids = { { 1, 2, 3 }, { 1, 2 } } } }, "ragged" },
    { "a string id", m.forward, { m, { input_ids = { { 1, "x", 3 } } } }, "string" },
    { "longer than the positions", m.forward, { m, { input_ids = { long } } }, "40" },
    { "class label out of range", c.forward, { c, { input_ids = { { 1, 2 } }, labels = { 2 } } }, "2" },
    { "token labels for a classifier", c.forward, { c, { input_ids = { { 1, 2 } }, labels = { { 1, 0 } } } }, "labels" },
    { "generate past the context", m.generate, { m, { 1, 2, 3 }, { max_new = 60 } }, "32" },
    { "generate from nothing", m.generate, { m, {}, { max_new = 5 } }, "prompt" },
    { "generate from a bad id", m.generate, { m, { 1, 999 }, { max_new = 5 } }, "999" },
    { "negative temperature", m.generate, { m, { 1 }, { max_new = 5, temperature = -1 } }, "temperature" },
    { "NaN temperature", m.generate, { m, { 1 }, { max_new = 5, temperature = 0 / 0 } }, "temperature" },
    { "grad of an unknown name", m.grad, { m, "nope" }, "nope" },
    { "param of an unknown name", m.param, { m, "nope" }, "nope" },
    { "unknown task", sift.load, { dir, { task = "seq2seq" } }, "seq2seq" },
  }
  for _, cs in ipairs(cases) do expect_failure(cs[1], cs[2], cs[3], { cs[4] }) end
  expect_failure("backward without a loss", function() m:forward({ input_ids = { { 1, 2, 3 } } }); m:backward() end, {},
    { "loss" })
  expect_failure("backward twice", function()
    m:forward({ input_ids = { { 1, 2, 3 } }, labels = { { 1, 2, 3 } } })
    m:backward()
    m:backward()
  end, {}, { "backward" })
  local tok = sift.tokenizer(dir_of("models/gpt2-4m/tokenizer.json"))
  expect_failure("decode of an id past the vocabulary", tok.decode, { tok, { 1, 99999 } }, { "99999" })
  expect_failure("decode of a negative id", tok.decode, { tok, { 1, -1 } }, { "-1" })
  expect_failure("decode of a fraction", tok.decode, { tok, { 1.5 } }, { "1.5" })
  -- after all of that, the same model still matches the reference
  local ref = sift.load_tensors(dir .. "/reference.safetensors")
  local out = m:forward({ input_ids = ref["batch0.input_ids"], labels = ref["batch0.input_ids"] })
  close(out.loss, scalar(ref.loss), 1e-4 * scalar(ref.loss), "loss after the errors")
end)

H.run()
