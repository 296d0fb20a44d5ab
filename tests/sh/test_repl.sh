#!/bin/sh
# test_repl.sh BUILD_DIR — drives an interactive sift-repl inside tmux (a private server, a temporary HOME
# and history file): banner, multi-line input, auto-printing with and without `;`, tab completion of
# globals, fields, methods through metatables and (with the gpt2-4m checkpoint) parameter names inside
# model:param("…, errors, Ctrl-C at the prompt / at a continuation prompt / in a Lua loop / in a training
# loop (then the model is used at the prompt), timing of slow commands, Ctrl-D, the history file and
# recalling a multi-line entry in a second session. Prints "N skipped" and "N passed, N failed" last.
# Cases that need $SIFT_SHARED/models/gpt2-4m (SIFT_SHARED defaults to ../shared) are skipped without it.
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPL=$(cd "$BUILD" 2>/dev/null && pwd)/sift-repl
: "${SIFT_SHARED:=$ROOT/../shared}"
SIFT_SHARED=$(cd "$SIFT_SHARED" 2>/dev/null && pwd || echo "$SIFT_SHARED")
MODEL=$SIFT_SHARED/models/gpt2-4m
SOCK=sift_test_$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sift_repl_test.XXXXXX")
passed=0 failed=0 skipped=0 n=0

T() { tmux -L "$SOCK" -f /dev/null "$@"; }
cleanup() {
    T kill-server >/dev/null 2>&1
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

finish() {
    echo "$skipped skipped"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

if ! command -v tmux >/dev/null 2>&1; then
    echo "tmux not found: skipping the interactive REPL test"
    skipped=1
    finish
fi
if [ ! -x "$REPL" ]; then
    echo "FAIL 1 - $REPL not found (build it first)"
    failed=1
    finish
fi
HAVE_MODEL=0
[ -f "$MODEL/config.json" ] && HAVE_MODEL=1

# ---- helpers ----
# The pane (scrollback and screen), wrapped lines joined, trailing spaces and blank lines at the end dropped.
trim() { sed 's/[[:space:]]*$//' | awk 'NF { for (; blank > 0; blank--) print ""; print; next } { blank++ }'; }
screen() { T capture-pane -p -J -S - -t repl 2>/dev/null | trim; }
last_line() { screen | tail -n 1; }
visible() { T capture-pane -p -J -t repl 2>/dev/null | trim; }
prompts() { screen | grep -cE '^(sift>|>>)( |$)'; }
has() { screen | grep -qF -- "$1"; }
has_re() { screen | grep -qE -- "$1"; }
at_prompt() { [ "$(last_line)" = "sift>" ]; }
# wait_for SECONDS 'condition': polls every 0.1 s (gives up at once when sift-repl has exited); the status
# of the condition at the end.
wait_for() {
    _left=$(($1 * 10))
    while [ "$_left" -gt 0 ]; do
        eval "$2" && return 0
        exited && break
        sleep 0.1
        _left=$((_left - 1))
    done
    eval "$2"
}
# type TEXT: literal keys (a trailing ';' would be taken by tmux as a command separator).
type_text() {
    case $1 in
    *';') T send-keys -t repl -l -- "${1%;}\\;" ;;
    *) T send-keys -t repl -l -- "$1" ;;
    esac
}
key() { T send-keys -t repl "$@"; }
# run LINE [SECONDS]: types a line and Enter, waits for the next prompt (sift> or >>).
run() {
    _p0=$(prompts)
    type_text "$1"
    key Enter
    wait_for "${2:-10}" '[ "$(prompts)" -gt "$_p0" ] && last_line | grep -qE "^(sift>|>>)$"'
}
# fresh: clears the screen and the scrollback at an idle prompt, so each case looks at its own output only.
fresh() {
    wait_for 10 at_prompt
    key C-l
    wait_for 5 '[ "$(visible)" = "sift>" ]'
    T clear-history -t repl
}
# out: the output lines of the case (everything but the prompt lines).
out() { screen | grep -vE '^(sift>|>>)( |$)'; }
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
bad() {
    n=$((n + 1)); failed=$((failed + 1)); echo "FAIL $n - $1"
    echo "---- pane ----"
    screen
    exited && echo "(sift-repl exited with status $(cat "$TMP/exit_status"))"
    echo "--------------"
}
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
# check_wait DESC SECONDS 'condition': passes when the condition becomes true in time.
check_wait() { if wait_for "$2" "$3"; then ok "$1"; else bad "$1"; fi; }
# check_line DESC TEXT: the line being edited becomes "sift> TEXT" (after a completion).
check_line() { want="sift> $2"; check_wait "$1" 5 '[ "$(last_line)" = "$want" ]'; }
skip() { n=$((n + 1)); skipped=$((skipped + 1)); echo "skip $n - $1 (no $MODEL)"; }
# start_repl HOME [SIFT_HISTORY]: a new session running sift-repl in the repo root. Its exit status goes to
# $TMP/exit_status (tmux itself can be slow to reap a pane's process); the pane stays after the exit.
start_repl() {
    T kill-server >/dev/null 2>&1
    rm -f "$TMP/exit_status"
    T start-server \; set-option -g remain-on-exit on \; new-session -d -s repl -x 200 -y 50 -c "$ROOT" \
        "env HOME='$1' SIFT_HISTORY='${2:-}' SIFT_SHARED='$SIFT_SHARED' INPUTRC=/dev/null '$REPL'; echo \$? > '$TMP/exit_status'"
}
exited() { [ -s "$TMP/exit_status" ]; }

mkdir -p "$TMP/home" "$TMP/home2"
HIST=$TMP/history

# ---- 1. start and banner ----
start_repl "$TMP/home" "$HIST"
check_wait "banner and prompt" 30 'has "sift " && has "Ctrl-C interrupts" && at_prompt'

# ---- 2. multi-line function ----
fresh
run 'function f(x)'; run 'return x * 2'; run 'end'
check "continuation prompts for an incomplete chunk" '[ "$(screen | grep -c "^>> ")" -eq 2 ] && at_prompt'
fresh
run 'f(21)'
check "multi-line function then f(21) prints 42" '[ "$(out)" = 42 ]'

# ---- 3. completion of globals / table fields ----
fresh
type_text 'sift.lo'
key Tab; key Tab
check_wait "sift.lo<Tab><Tab> lists sift.load( and sift.lora(" 5 'has "sift.load(" && has "sift.lora(" && has "sift.load_tensors("'
key C-u
fresh
type_text 'sift.load_t'
key Tab
check_line "sift.load_t<Tab> completes to sift.load_tensors(" 'sift.load_tensors('
key C-u
fresh
type_text 'sift.tens'
key Tab
check_line "sift.tens<Tab> completes to sift.tensor(" 'sift.tensor('
type_text '{{1, 2}, {3, 4}}):numel()'
key Enter
check_wait "the completed call runs" 10 'at_prompt && [ "$(out)" = 4 ]'

# ---- 4. auto-printing ----
fresh
run 'x = 5;'
check "'x = 5;' prints nothing" '[ -z "$(out)" ]'
fresh
run 'x'
check "'x' prints 5" '[ "$(out)" = 5 ]'
fresh
run '= x + 1'
check "'= x + 1' prints 6" '[ "$(out)" = 6 ]'
fresh
run 'x + 1;'
check "'x + 1;' prints nothing" '[ -z "$(out)" ]'
fresh
run '"a", 2, nil'
check "several results are printed on one line" 'out | grep -qxE "\"?a\"? +2 +nil"'
fresh
run '= 1 +'
run '2'
check "'= 1 +' continues on the next line (then prints 3)" '[ "$(out)" = 3 ]'

# ---- 5. method completion through a userdata metatable ----
fresh
run 't = sift.zeros(2,2)'
type_text 't:nu'
key Tab
check_line "t:nu<Tab> completes to t:numel( (tensor metatable)" 't:numel('
type_text ')'
key Enter
check_wait "t:numel() prints 4" 10 'at_prompt && [ "$(out)" = 4 ]'

# ---- 6. errors are reported, never fatal ----
fresh
run 'error("boom")'
check "error prints the message and a traceback" 'has_re "^stdin:1: boom" && has "stack traceback"'
fresh
run '1 +'
check "a syntax error is reported" 'has_re "^stdin:[0-9]+: .*near"'
fresh
run '1+1'
check "the REPL is alive after errors" '[ "$(out)" = 2 ]'

# ---- 7. Ctrl-C at the prompt ----
fresh
type_text 'abc'
wait_for 5 'has "sift> abc"'
key C-c
wait_for 5 'at_prompt' >/dev/null
run '1+1'
check "Ctrl-C clears the typed line (then 1+1 prints 2, nothing about abc)" \
    '[ "$(out)" = 2 ] && ! has "stdin:"'
fresh
run 'function g()'
type_text 'return 1'
key C-c
wait_for 5 'at_prompt'
run '1+2'
check "Ctrl-C at a continuation prompt drops the incomplete chunk" '[ "$(out)" = 3 ] && ! has "stdin:"'
fresh
key C-r
type_text 'f(2'
wait_for 5 'has "reverse-i-search" && has "f(21)"'
key C-c
wait_for 5 'at_prompt'
run '1+1'
check "Ctrl-C leaves a history search and clears the line" '[ "$(out)" = 2 ]'

# ---- 8. Ctrl-C in running Lua code; timing ----
fresh
type_text 'print("looping") n = 0 while true do n = n + 1 end'
key Enter
wait_for 10 'has_re "^looping"'
key C-c
check_wait "Ctrl-C interrupts a running loop" 10 'at_prompt && has "interrupted"'
fresh
run 'n > 0'
check "the state is kept after the interrupt" '[ "$(out)" = true ]'
# a long call into the core: 1000 tokens of a GPT-2 124M shape (random weights) take seconds (5-10 ms a
# token); Ctrl-C one second in stops it at its next token, so the command's timing line reads under 3 s
fresh
run 'g = sift.build({arch = "gpt2", vocab_size = 50257, n_layer = 12, n_head = 12, d_model = 768, max_pos = 1024}, {seed = 1})' 60
fresh
type_text 'print("generating") ids = g:generate({1}, {max_new = 1000})'
key Enter
wait_for 10 'has_re "^generating"'
sleep 1
key C-c
check_wait "Ctrl-C stops a long generation at its next token, and says where" 10 \
    'at_prompt && has_re "generate: interrupted after [0-9]+ of 1000 new tokens" && has_re "^\([0-2]\.[0-9][0-9] s\)$"'
# a long prompt runs as one forward over all its rows (~250 GFLOP for 1000 tokens here: a second or
# more); Ctrl-C a moment in stops it before its next layer
fresh
run 'p = {} for i = 1, 1000 do p[i] = i end'
fresh
type_text 'print("reading") ids = g:generate(p, {max_new = 1})'
key Enter
wait_for 10 'has_re "^reading"'
sleep 0.3
key C-c
check_wait "Ctrl-C stops a long prompt's forward before its next layer" 10 \
    'at_prompt && has "interrupted while reading the 1000-token prompt, before layer"'
fresh
run 'g = nil; collectgarbage()'
run 'ids == nil'
check "nothing was assigned from the interrupted call" '[ "$(out)" = true ]'
fresh
run 'local t0 = sift.now() while sift.now() - t0 < 1.2 do end' 20
check "a command over 1 s prints its timing" 'has_re "^\([0-9]+\.[0-9][0-9] s\)$"'
fresh
run 'sift.now() > 0'
check "a quick command prints no timing" '[ "$(out)" = true ]'

# ---- 9. model: parameter-name completion, training interrupted by Ctrl-C ----
if [ "$HAVE_MODEL" = 1 ]; then
    fresh
    run "m = sift.load(\"$MODEL\", {task = \"classify\", num_labels = 2})" 60
    run "tok = sift.tokenizer(\"$MODEL\")" 60
    run 'm:names()[1]'
    check "model loaded" 'has "transformer.wte.weight"'
    fresh
    type_text 'm:param("transformer.h.0.mlp.c_f'
    key Tab
    check_line "m:param(\"transformer.h.0.mlp.c_f<Tab> completes to the common prefix" \
        'm:param("transformer.h.0.mlp.c_fc.'
    key Tab; key Tab
    check_wait "more Tabs list the parameter names" 5 \
        'has_re "transformer\.h\.0\.mlp\.c_fc\.weight" && has_re "transformer\.h\.0\.mlp\.c_fc\.bias"'
    fresh
    type_text 'w'
    key Tab
    check_line "…c_fc.w<Tab> completes the full parameter name (and closes the string)" \
        'm:param("transformer.h.0.mlp.c_fc.weight"'
    type_text '):numel()'
    key Enter
    check_wait "the completed parameter is usable" 10 'at_prompt && out | grep -qxE "[1-9][0-9]*"'
    fresh
    type_text 'm.config.n_l'
    key Tab
    check_line "m.config.n_l<Tab> completes a field behind the model's __index" 'm.config.n_layer'
    key C-u

    fresh
    type_text 'h = sift.train{model=m, method=sift.sparse(m), data=sift.data.load("sst2"):take(4000), tokenizer=tok, batch=16, max_len=32, epochs=1}'
    key Enter
    if wait_for 60 'has_re "step ([2-9]|[1-9][0-9]+)/250"'; then
        ok "training shows its progress (step >= 2)"
        key C-c
        check_wait "Ctrl-C stops training and reports where" 60 \
            'at_prompt && has_re "interrupted: stopped at step [0-9]+ of 250"'
        fresh
        run 'h.interrupted'
        check "h.interrupted says where it stopped" 'out | grep -qE "^stopped at step [0-9]+ of 250"'
        fresh
        run 'h.steps >= 2 and #h.loss == h.steps'
        check "the history holds the completed steps" '[ "$(out)" = true ]'
        fresh
        run 'm:forward{input_ids = {{464, 3797, 318}}}.logits:numel()' 30
        check "m:forward works at the prompt after the interrupt" '[ "$(out)" = 2 ]'
        fresh
        run 'm:forward{input_ids = {{464, 3797, 318}}}.logits:norm() < math.huge' 30
        check "the weights are finite" '[ "$(out)" = true ]'
        # a loss-landscape walk stopped by Ctrl-C puts every perturbed weight back bit for bit
        fresh
        run 'b8 = sift.data.encode(sift.data.load("sst2"):take(8), tok, {max_len = 32, pad_id = 0}); w0 = m:param("transformer.h.3.mlp.c_fc.weight"):clone()' 30
        fresh
        type_text 'L = sift.landscape(m, b8, {points = 101, directions = 2})'
        key Enter
        sleep 2
        key C-c
        check_wait "Ctrl-C stops sift.landscape" 60 'at_prompt && has_re "interrupted"'
        fresh
        run 'L == nil and m:param("transformer.h.3.mlp.c_fc.weight"):max_abs_diff(w0)' 30
        check "the landscape's weights are back bit for bit after Ctrl-C" '[ "$(out)" = 0.0 ]'
    else
        bad "training shows its progress (step >= 2)"
        key C-c
        wait_for 60 at_prompt
        for c in "Ctrl-C stops training" "h.interrupted" "history" "forward after interrupt" "finite weights" \
            "Ctrl-C stops sift.landscape" "landscape weights back"; do
            bad "$c (training did not start)"
        done
    fi
else
    for c in "model loaded" "param completion prefix" "param list" "param full name" "param usable" \
        "m.config completion" "training progress" "Ctrl-C stops training" "h.interrupted" "history" \
        "forward after interrupt" "finite weights" "Ctrl-C stops sift.landscape" "landscape weights back"; do
        skip "$c"
    done
fi

# ---- 10. file names inside strings ----
fresh
mkdir -p "$TMP/a-dir"
: > "$TMP/a-dir/complete_me_file.txt"
type_text "io.open(\"$TMP/a-d"
key Tab
check_line "a path inside a string completes through '/' and '-' (directory)" "io.open(\"$TMP/a-dir/"
type_text 'complete_me_f'
key Tab
check_line "a file name inside a string completes (and the string is closed)" "io.open(\"$TMP/a-dir/complete_me_file.txt\""
key C-u

# ---- 11. Ctrl-D exits; the history file ----
fresh
key C-d
check_wait "Ctrl-D exits with status 0" 15 'exited && [ "$(cat "$TMP/exit_status")" = 0 ]'
check "history file written" '[ -s "$HIST" ]'
hist_has() { grep -qxF -- "$1" "$HIST"; }
check "history has the commands typed" 'hist_has "f(21)" && hist_has "x = 5;" && hist_has "= x + 1" && hist_has "t = sift.zeros(2,2)"'
check "history has the multi-line function as typed" \
    'grep -v "^#[0-9]" "$HIST" | grep -A2 -xF "function f(x)" | tr "\n" "|" | grep -qF "function f(x)|return x * 2|end|"'
check "history leaves out lines cancelled by Ctrl-C" '! grep -qxF abc "$HIST" && ! grep -qxF "return 1" "$HIST"'
if [ "$HAVE_MODEL" = 1 ]; then
    check "history has the training command" 'grep -qF "h = sift.train{model=m" "$HIST"'
else
    skip "history has the training command"
fi

# ---- 12. a second session: ~/.sift_history by default; a multi-line entry comes back whole ----
cp "$HIST" "$TMP/home2/.sift_history"
start_repl "$TMP/home2"
wait_for 30 at_prompt
fresh
key C-r
type_text 'function f'
wait_for 5 'has "function f(x)"'
key Enter
wait_for 10 at_prompt
fresh
run 'f(4)'
check "a multi-line entry recalled from the history file runs whole" '[ "$(out)" = 8 ]'
key C-d
wait_for 15 exited
check "without SIFT_HISTORY the history goes to ~/.sift_history" 'grep -qxF "f(4)" "$TMP/home2/.sift_history"'

finish
