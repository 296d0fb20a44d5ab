-- 00_demo.lua — the built-in demo (no external files): tensors and a real checkpoint when available.
print(("sift %s, %d threads"):format(sift.version, sift.threads()))
local a = sift.randn(3, 4, {seed = 1})
print(a)
print("a:norm() =", a:norm())
local shared = os.getenv("SIFT_SHARED") or "../shared"
local ok, m = pcall(sift.load, shared .. "/models/stories260K/stories260K.bin")
if ok then
  local tok = sift.tokenizer(shared .. "/models/stories260K/tok512.bin")
  print(m)
  print(tok:decode(m:generate({1}, {max_new = 40})))
end
