#!/bin/sh
# test_scripts.sh BUILD_DIR — the experiment scripts in scripts/ on gpt2-4m and SST-2 with small settings,
# checked through the JSON they write: finetune.lua (SIFT's delta applied to a fresh model gives the run's
# dev accuracy; LoRA, full and head-only runs; checkpoint / resume; instruction data with held-out loss and
# perplexity; usage errors exit 2 naming the option), analyze_gradients.lua
# (the pre-trained model more concentrated than a random one at every fraction), analyze_masks.lua (masks
# of other batches overlap far above chance; the overlaps and shares are fractions), analyze_landscape.lua
# (the pre-trained landscape swings more than the random one's; the line through w0 and w_ft).
# Reports itself skipped without ../shared (SIFT_SHARED).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) [ -d "$BUILD" ] || BUILD="$ROOT/$BUILD" ;; esac
REPL="$BUILD/sift-repl"
cd "$ROOT" || exit 1
: "${SIFT_SHARED:=$ROOT/../shared}"
export SIFT_SHARED
passed=0; failed=0; skipped=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "$2" ] && [ -f "$2" ] && tail -n 15 "$2" | sed 's/^/    /'; }
finish() { echo "$skipped skipped"; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
MODEL="$SIFT_SHARED/models/gpt2-4m"
if [ ! -f "$MODEL/config.json" ] || [ ! -f "$SIFT_SHARED/data/sst2/train.txt" ]; then
    echo "skip the experiment scripts: $MODEL or SST-2 missing (set SIFT_SHARED)"
    skipped=1; finish
fi
# check_json NAME JSON 'Lua condition on r (the decoded JSON)'
check_json() {
    if "$REPL" -e "local f = assert(io.open('$2')); local r = sift.data.json.decode(f:read('a')); f:close()
        assert($3)" > "$tmp/check" 2>&1; then ok "$1"; else bad "$1" "$tmp/check"; fi
}

# finetune.lua: SIFT on 128 rows; the delta on a fresh model gives the dev accuracy the run reported
if "$REPL" scripts/finetune.lua --rows 128 --dev_rows 64 --epochs 1 --max_len 32 --out "$tmp/ft.json" \
    --delta "$tmp/ft.delta" > "$tmp/ft.log" 2>&1; then
    check_json "finetune.lua: SIFT's history (4 steps, dev metrics)" "$tmp/ft.json" \
        "r.steps == 4 and #r.loss == 4 and #r.lr == 4 and r.trainable == 31980 and r.eval[1].n == 64
         and r.eval[1].accuracy >= 0 and r.eval[1].accuracy <= 1 and r.options.method == 'sift'"
    if "$REPL" -e "local m = sift.load('$MODEL', {task = 'classify', num_labels = 2})
        local d = sift.load_delta('$tmp/ft.delta'); d:check(m); d:apply(m)
        local dev = sift.data.load('sst2', {split = 'dev'}):take(64)
        local e = sift.evaluate(m, dev, {tokenizer = sift.tokenizer('$MODEL'), max_len = 32})
        local f = io.open('$tmp/ft.json'); local r = sift.data.json.decode(f:read('a')); f:close()
        assert(e.accuracy == r.eval[1].accuracy, e.accuracy .. ' vs ' .. r.eval[1].accuracy)" > "$tmp/delta" 2>&1; then
        ok "finetune.lua: the saved delta on a fresh model gives the run's dev accuracy"
    else bad "finetune.lua: the saved delta on a fresh model gives the run's dev accuracy" "$tmp/delta"; fi
else
    bad "finetune.lua: SIFT run" "$tmp/ft.log"; bad "finetune.lua: delta (no run)"
fi
for m in lora full head; do
    if "$REPL" scripts/finetune.lua --method "$m" --rows 64 --dev_rows 32 --max_steps 2 --max_len 32 \
        --out "$tmp/$m.json" > "$tmp/$m.log" 2>&1; then
        check_json "finetune.lua --method $m" "$tmp/$m.json" "r.steps == 2 and r.options.method == '$m' and #r.eval == 1"
    else bad "finetune.lua --method $m" "$tmp/$m.log"; fi
done
# --checkpoint writes the training state; --resume from it with the same options continues where it stopped
# (here: at the end, so the resumed run reports the same steps and losses without training more)
if "$REPL" scripts/finetune.lua --rows 64 --dev_rows 32 --epochs 1 --max_len 32 --checkpoint "$tmp/ft.ckpt" \
    --out "$tmp/c1.json" > "$tmp/c1.log" 2>&1 && [ -s "$tmp/ft.ckpt" ] \
    && "$REPL" scripts/finetune.lua --rows 64 --dev_rows 32 --epochs 1 --max_len 32 --resume "$tmp/ft.ckpt" \
    --out "$tmp/c2.json" > "$tmp/c2.log" 2>&1; then
    check_json "finetune.lua --checkpoint / --resume: the resumed run has the saved steps and losses" "$tmp/c2.json" \
        "(function() local f = io.open('$tmp/c1.json'); local a = sift.data.json.decode(f:read('a')); f:close()
           if a.steps ~= 2 or r.steps ~= 2 or #r.loss ~= 2 then return false end
           for i = 1, 2 do if a.loss[i] ~= r.loss[i] then return false end end return true end)()"
else bad "finetune.lua --checkpoint / --resume" "$tmp/c2.log"; cat "$tmp/c1.log"; fi
# instruction data (no dev split): a language model on the responses, evaluated on held-out rows
if [ -f "$SIFT_SHARED/data/instruct/alpaca_libre_tasks_v1.jsonl" ] \
    && "$REPL" scripts/finetune.lua --task instruct --rows 32 --dev_rows 16 --max_steps 2 --max_len 48 \
        --out "$tmp/in.json" > "$tmp/in.log" 2>&1 \
    && "$REPL" scripts/finetune.lua --task instruct --rows 32 --dev_rows 16 --max_steps 2 --max_len 48 \
        --no_mask_prompt --out "$tmp/in2.json" > "$tmp/in2.log" 2>&1 && grep -q "held out" "$tmp/in.log"; then
    check_json "finetune.lua --task instruct: held-out loss and perplexity; the prompts masked unless --no_mask_prompt" \
        "$tmp/in.json" "(function() local f = io.open('$tmp/in2.json'); local all = sift.data.json.decode(f:read('a')); f:close()
           local e, e2 = r.eval[1], all.eval[1]
           return r.steps == 2 and e.n == 16 and e.tokens > 0 and math.abs(e.perplexity - math.exp(e.loss)) < 1e-9 * e.perplexity
             and r.options.mask_prompt == true and all.options.mask_prompt == false and e2.tokens > e.tokens end)()"
else bad "finetune.lua --task instruct" "$tmp/in.log"; cat "$tmp/in2.log" 2>/dev/null | tail -5; fi
"$REPL" scripts/finetune.lua --method bogus > "$tmp/u1" 2>&1; rc1=$?
"$REPL" scripts/finetune.lua --epochs three > "$tmp/u2" 2>&1; rc2=$?
"$REPL" scripts/finetune.lua --nope 1 > "$tmp/u3" 2>&1; rc3=$?
"$REPL" scripts/finetune.lua --method lora --delta x.delta > "$tmp/u4" 2>&1; rc4=$?
if [ $rc1 -eq 2 ] && grep -q "method" "$tmp/u1" && [ $rc2 -eq 2 ] && grep -q -- "--epochs expects" "$tmp/u2" \
    && [ $rc3 -eq 2 ] && grep -q -- "unknown option --nope" "$tmp/u3" && [ $rc4 -eq 2 ] && grep -q "SIFT" "$tmp/u4" \
    && ! grep -q traceback "$tmp/u1" "$tmp/u2" "$tmp/u3" "$tmp/u4" && [ ! -e x.delta ]; then
    ok "usage errors exit 2 naming the option, without a traceback"
else bad "usage errors exit 2 naming the option" "$tmp/u1"; cat "$tmp/u2" "$tmp/u3" "$tmp/u4"; fi
if "$REPL" scripts/finetune.lua --help > "$tmp/help" 2>&1 && grep -q -- "--rate" "$tmp/help"; then ok "--help lists the options"
else bad "--help lists the options" "$tmp/help"; fi

# analyze_gradients.lua: pre-trained more concentrated than random init at every fraction
if "$REPL" scripts/analyze_gradients.lua --heads 1 --rows 64 --out "$tmp/g.json" > "$tmp/g.log" 2>&1; then
    check_json "analyze_gradients.lua: the pre-trained gradient is more concentrated at every fraction" "$tmp/g.json" \
        "#r.fractions == 4 and #r.pretrained.mean == 4 and (function() for i = 1, 4 do
           if not (r.pretrained.mean[i] > r.random.mean[i] and r.pretrained.mean[i] <= 1) then return false end end
           return true end)() and r.pretrained.draws[1].tensors['transformer.h.0.mlp.c_fc.weight'] ~= nil"
    [ -s "$tmp/g.curves.svg" ] && ok "analyze_gradients.lua: the curves as SVG" || bad "analyze_gradients.lua: SVG"
else bad "analyze_gradients.lua" "$tmp/g.log"; bad "analyze_gradients.lua: SVG (no run)"; fi

# analyze_masks.lua: other batches' masks overlap far above chance; fractions in [0, 1]
if "$REPL" scripts/analyze_masks.lua --batches 3 --batch 16 --steps 4 --every 2 --out "$tmp/mk.json" > "$tmp/mk.log" 2>&1; then
    check_json "analyze_masks.lua: masks of other batches overlap far above chance; along fine-tuning" "$tmp/mk.json" \
        "r.across_batches.first[1] == 1 and #r.across_batches.first == 3 and math.abs(r.across_batches.chance - 0.01) < 1e-3
         and r.across_batches.first[2] > 10 * r.across_batches.chance and r.across_batches.previous[1] == sift.data.json.null
         and #r.along_fine_tuning.step == 3 and r.along_fine_tuning.step[3] == 4
         and r.along_fine_tuning.overlap_first[3] > 0 and r.along_fine_tuning.overlap_first[3] <= 1
         and r.along_fine_tuning.update_share[3] > 0 and r.along_fine_tuning.update_share[3] < 1"
else bad "analyze_masks.lua" "$tmp/mk.log"; fi

# analyze_landscape.lua: the pre-trained model's loss swings more; the fine-tuning line
if "$REPL" scripts/analyze_landscape.lua --points 9 --directions 1 --rows 64 --finetune_steps 2 \
    --out "$tmp/l.json" > "$tmp/l.log" 2>&1; then
    check_json "analyze_landscape.lua: the pre-trained landscape swings more than the random one's; the line w_ft-w0" \
        "$tmp/l.json" "r.pretrained[1].swing > 3 * r.random[1].swing and #r.pretrained[1].loss == 9
         and r.pretrained[1].loss[5] == r.pretrained[1].center and r.finetune_line.steps == 2
         and #r.finetune_line.loss == 9 and r.finetune_line.alphas[9] == 1.5"
else bad "analyze_landscape.lua" "$tmp/l.log"; fi
finish
