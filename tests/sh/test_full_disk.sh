#!/bin/sh
# test_full_disk.sh BUILD_DIR — every way sift saves, when the disk fills up mid-write: the file-size limit
# (ulimit -f, with SIGXFSZ ignored, so a write past it fails with EFBIG as a full disk fails with ENOSPC)
# lets the process write no file longer than a few KB. Each save over an existing good file must fail with
# a message naming the file, leave the old file whole (it still loads and works), and leave no temporary
# file behind: sift.save_tensors, sift.write_file, s:save_delta, d:save, a trainer's tr:save, the
# periodic checkpoint of sift.train, sift.plot.save, an experiment script's --out; and at the interactive
# prompt the session goes on after the failed save.
# The cases that train on text need $SIFT_SHARED (gpt2-4m's tokenizer, SST-2) and are skipped without it.
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPL=$(cd "$BUILD" 2>/dev/null && pwd)/sift-repl
: "${SIFT_SHARED:=$ROOT/../shared}"
export SIFT_SHARED
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sift_full_disk.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0 skipped=0
cd "$ROOT" || exit 1

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "$2" ] && echo "$2" | tail -8; }

# limited LUA: runs the Lua chunk in sift-repl with files capped at 16 blocks (8-16 KB); prints its output
limited() { sh -c "trap '' XFSZ; ulimit -f 16; \"$REPL\" -e \"\$1\"" limited "$1" 2>&1; }
free() { "$REPL" -e "$1" 2>&1; }

# case NAME FILE LUA_BEFORE LUA_SAVE LUA_CHECK: LUA_BEFORE writes FILE without a limit; LUA_SAVE overwrites
# it under the limit and must fail naming FILE; then LUA_CHECK (no limit) must succeed on the old FILE.
case_() {
    name=$1 file=$2
    if ! out=$(free "$3"); then bad "$name: the first save failed" "$out"; return; fi
    sum=$(cksum < "$file")
    if out=$(limited "$4"); then bad "$name: the save past the limit did not fail" "$out"; return; fi
    echo "$out" | grep -q "cannot write $file" || { bad "$name: the error does not name $file" "$out"; return; }
    echo "$out" | grep -q "File too large" || { bad "$name: the error does not say why" "$out"; return; }
    [ "$(cksum < "$file")" = "$sum" ] || { bad "$name: the old file changed"; return; }
    leftover=$(ls "$TMP" | grep '\.tmp\.' || true)
    [ -z "$leftover" ] || { bad "$name: a temporary file was left: $leftover"; return; }
    if ! out=$(free "$5"); then bad "$name: the old file no longer works" "$out"; return; fi
    ok "$name"
}

MODEL='local m = sift.build({ arch = "gpt2", vocab_size = 256, n_layer = 2, n_head = 2, d_model = 64, max_pos = 32 },
  { task = "classify", num_labels = 2, seed = 1 })
local ids = {} for i = 1, 4 do ids[i] = {} for j = 1, 10 do ids[i][j] = (i * 7 + j * 3) % 256 end end
local b = { input_ids = ids, labels = { 0, 1, 1, 0 } }
local function tuned() local s = sift.sparse(m, { rate = 0.05 }); s:select(b); local o = sift.AdamW(s, { lr = 1e-2 })
  for _ = 1, 2 do m:forward(b); m:backward(); o:step(); o:zero_grad() end return s end'

case_ "sift.save_tensors" "$TMP/w.st" \
  "sift.save_tensors('$TMP/w.st', { w = sift.randn(100, { seed = 1 }) }, { note = 'old' })" \
  "sift.save_tensors('$TMP/w.st', { w = sift.randn(100000, { seed = 2 }) })" \
  "local f = sift.load_tensors('$TMP/w.st'); assert(f.w:numel() == 100 and f['.metadata'].note == 'old')"

case_ "sift.write_file" "$TMP/t.txt" \
  "sift.write_file('$TMP/t.txt', 'old text')" \
  "sift.write_file('$TMP/t.txt', string.rep('new ', 100000))" \
  "local f = assert(io.open('$TMP/t.txt')); assert(f:read('a') == 'old text')"

case_ "s:save_delta" "$TMP/d.delta" \
  "$MODEL; tuned():save_delta('$TMP/d.delta')" \
  "$MODEL; local s = tuned(); s:save_delta('$TMP/d.delta')" \
  "$MODEL; local d = sift.load_delta('$TMP/d.delta'); d:apply(m); d:unapply(m)"

case_ "d:save (a loaded delta saved again)" "$TMP/d2.delta" \
  "$MODEL; tuned():save_delta('$TMP/d2.delta')" \
  "$MODEL; sift.load_delta('$TMP/d2.delta'):save('$TMP/d2.delta')" \
  "$MODEL; sift.load_delta('$TMP/d2.delta'):apply(m)"

case_ "sift.plot.save" "$TMP/p.svg" \
  "sift.plot.save(sift.plot.line({ { x = { 1, 2 }, y = { 3, 4 } } }), '$TMP/p.svg')" \
  "local x, y = {}, {} for i = 1, 20000 do x[i], y[i] = i, math.sin(i) end
   sift.plot.save(sift.plot.line({ { x = x, y = y } }), '$TMP/p.svg')" \
  "local f = assert(io.open('$TMP/p.svg')); assert(f:read('a'):find('</svg>'))"

DIR=$SIFT_SHARED/models/gpt2-4m
if [ -f "$DIR/config.json" ] && [ -f "$SIFT_SHARED/data/sst2/train.txt" ]; then
    TRAIN="local m = sift.build({ arch = 'gpt2', vocab_size = 4096, n_layer = 2, n_head = 2, d_model = 64, max_pos = 64 },
      { task = 'classify', num_labels = 2, seed = 1 })
    local data = sift.data.load('sst2', { split = 'train' }):take(16)
    local args = { model = m, method = sift.sparse(m, { rate = 0.05 }), data = data, tokenizer = sift.tokenizer('$DIR'),
      batch = 4, max_len = 24, quiet = true }"
    case_ "a trainer's tr:save" "$TMP/c.ckpt" \
      "$TRAIN; local tr = sift.trainer(args); tr:step(2); tr:save('$TMP/c.ckpt')" \
      "$TRAIN; local tr = sift.trainer(args); tr:step(3); tr:save('$TMP/c.ckpt')" \
      "$TRAIN; args.resume = '$TMP/c.ckpt'; local tr = sift.trainer(args); assert(tr.step_no == 2); tr:step()"
    case_ "sift.train's periodic checkpoint" "$TMP/e.ckpt" \
      "$TRAIN; local tr = sift.trainer(args); tr:step(1); tr:save('$TMP/e.ckpt')" \
      "$TRAIN; args.checkpoint, args.checkpoint_every = '$TMP/e.ckpt', 1; sift.train(args)" \
      "$TRAIN; args.resume = '$TMP/e.ckpt'; local tr = sift.trainer(args); assert(tr.step_no == 1)"
    # an experiment script's --out: usage-level failure, old JSON kept
    printf '{"old": true}' > "$TMP/r.json"
    if out=$(sh -c "trap '' XFSZ; ulimit -f 1; \"$REPL\" scripts/analyze_gradients.lua --heads 1 --rows 4 --max_len 16 --out \"$TMP/r.json\"" 2>&1); then
        bad "analyze_gradients.lua --out past the limit did not fail" "$out"
    elif ! echo "$out" | grep -q "cannot write $TMP/r.json" || [ "$(cat "$TMP/r.json")" != '{"old": true}' ]; then
        bad "analyze_gradients.lua --out: no clear error, or the old file changed" "$out"
    else ok "an experiment script's --out"; fi
else
    echo "skip the training cases: $DIR or SST-2 missing (set SIFT_SHARED)"
    skipped=$((skipped + 3))
fi

# at the interactive prompt (stdin not a terminal: the REPL reads lines), the session goes on
out=$(printf '%s\n' "sift.save_tensors('$TMP/big.st', { w = sift.randn(100000) })" "print('still ' .. 'here')" |
      sh -c "trap '' XFSZ; ulimit -f 16; \"$REPL\"" 2>&1)
if echo "$out" | grep -q "cannot write $TMP/big.st" && echo "$out" | grep -q "still here" && [ ! -e "$TMP/big.st" ]; then
    ok "the REPL reports the failed save and goes on"
else bad "the REPL after a failed save" "$out"; fi

echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
