/* repl.c — the sift-repl program: an embedded Lua 5.4 with the `sift` module preloaded.
 *
 *   sift-repl                      interactive REPL (GNU readline)
 *   sift-repl FILE.lua [args...]   run a script (`arg` as in lua); non-zero exit + traceback on error
 *   sift-repl -e 'CODE'            run code;   -i: enter the REPL afterwards
 *
 * Interactive features: persistent history ($SIFT_HISTORY or ~/.sift_history), multi-line input for
 * incomplete chunks, auto-printing of results (`expr` or `= expr`; a trailing `;` suppresses it),
 * tab completion (globals, table fields, methods through metatables, file paths inside strings),
 * timing of commands that take over a second, errors with a short traceback (never fatal).
 * Ctrl-C interrupts running Lua code (a hook raises "interrupted" at the next instruction count check);
 * at the prompt it clears the line (at a ">> " prompt it drops the incomplete chunk); Ctrl-D exits.
 * Multi-line commands stay one history entry, also in the file (a "#<time>" line before each entry).
 * The Lua-side library (the .lua files in lua/sift/) is found next to the executable's source tree or installed tree.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../core/dist.h"
#include "../core/status.h"
#include "../core/threads.h"
#include "lsift.h"

static lua_State *g_L;
static volatile sig_atomic_t g_in_readline;
static volatile sig_atomic_t g_interrupted;
static volatile sig_atomic_t g_prompt_sigint; /* Ctrl-C while readline waits for a key */
static volatile sig_atomic_t g_winch;         /* the terminal was resized */
static int g_in_continuation;                  /* reading a ">> " line of an incomplete chunk */
static int g_chunk_cancelled;                  /* Ctrl-C at a ">> " prompt dropped the incomplete chunk */

#define PROMPT "sift> "
#define PROMPT2 ">> "

/* ---- Ctrl-C ---- */
static int msghandler(lua_State *L);

/* Raises "interrupted" at the first hook event after Ctrl-C. Except when that event is the call of the
 * error handler: an error is already on its way out (a core call that stopped on the interrupt request
 * says where, e.g. "generate: interrupted after 3 of 100 new tokens"), and raising here would replace
 * that message with the bare "interrupted". */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
    lua_sethook(L, NULL, 0, 0);
    g_interrupted = 0;
    if (ar->event == LUA_HOOKCALL && lua_getinfo(L, "f", ar)) {
        const int in_handler = lua_tocfunction(L, -1) == msghandler;
        lua_pop(L, 1);
        if (in_handler) return;
    }
    luaL_error(L, "interrupted");
}

static void on_sigint(int sig) {
    (void)sig;
    if (g_in_readline) { /* read_key turns it into the key C-c, outside the handler */
        g_prompt_sigint = 1;
        return;
    }
    sf_interrupt_request(); /* a long core call (generation) stops at its next check */
    if (sf_interrupt_deferred()) return; /* the running code polls the request at its safe points */
    g_interrupted = 1;
    if (g_L) lua_sethook(g_L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void on_sigwinch(int sig) {
    (void)sig;
    g_winch = 1;
}

#define KEY_INTERRUPT 3 /* C-c: typed, it is a signal (ISIG), so this byte only comes from read_key */

/* rl_getc_function: waits for a key. A Ctrl-C meanwhile comes back as the key C-c (bound to interrupt_line),
 * so readline first leaves whatever it was in (an incremental search, a numeric argument); a resize of the
 * terminal is applied here. */
static int read_key(FILE *in) {
    int fd = fileno(in);
    for (;;) {
        if (g_prompt_sigint) {
            g_prompt_sigint = 0;
            return KEY_INTERRUPT;
        }
        if (g_winch) {
            g_winch = 0;
            rl_resize_terminal();
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0) { /* poll is not restarted after a signal */
            if (errno == EINTR) continue;
            return EOF;
        }
        unsigned char c;
        ssize_t n = read(fd, &c, 1);
        if (n == 1) return c;
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        return EOF;
    }
}

/* Ctrl-C at the prompt: shows ^C, clears the line and gives a fresh prompt; at a continuation prompt it also
 * drops the incomplete chunk (the next line typed starts a new command). */
static int interrupt_line(int count, int key) {
    (void)count;
    (void)key;
    rl_point = rl_end;
    rl_redisplay();
    fputs("^C", rl_outstream ? rl_outstream : stdout);
    rl_crlf();
    rl_on_new_line(); /* before anything below redisplays */
    if (g_in_continuation) {
        g_chunk_cancelled = 1;
        rl_set_prompt(PROMPT);
    }
    rl_maybe_unsave_line(); /* leave the history browsing */
    using_history();
    rl_free_line_state();
    rl_replace_line("", 1);
    return 0;
}

/* ---- running chunks ---- */
static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    lua_sethook(L, NULL, 0, 0);
    return status;
}

static void report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
        fflush(stderr);
        lua_pop(L, 1);
    }
}

/* Prints results on the stack from index `from` with tostring, tab-separated. */
static void print_results(lua_State *L, int from) {
    int n = lua_gettop(L) - from + 1;
    if (n <= 0) return;
    lua_getglobal(L, "__sift_show"); /* Lua-side pretty printer if the library installed one */
    if (lua_isfunction(L, -1)) {
        lua_insert(L, from);
        if (lua_pcall(L, n, 0, 0) != LUA_OK) report(L, LUA_ERRRUN);
        return;
    }
    lua_pop(L, 1);
    for (int i = from; i <= lua_gettop(L); i++) {
        if (i > from) fputs("\t", stdout);
        fputs(luaL_tolstring(L, i, NULL), stdout);
        lua_pop(L, 1);
    }
    fputs("\n", stdout);
    lua_settop(L, from - 1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int incomplete(lua_State *L, int status) {
    if (status == LUA_ERRSYNTAX) {
        size_t lmsg;
        const char *msg = lua_tolstring(L, -1, &lmsg);
        const char *eof = "<eof>";
        size_t le = strlen(eof);
        if (lmsg >= le && strcmp(msg + lmsg - le, eof) == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

/* Compiles `code` (trying "return code" first so expressions print; trailing semicolons are dropped there so
 * `expr;` evaluates too, silently). `= expr` is only an expression. Leaves the function (or the error) on the stack. */
static int compile_line(lua_State *L, const char *code, int *is_expr) {
    const char *src = code[0] == '=' ? code + 1 : code;
    size_t n = strlen(src);
    while (n > 0 && (src[n - 1] == ';' || src[n - 1] == ' ' || src[n - 1] == '\t' || src[n - 1] == '\n')) n--;
    lua_pushliteral(L, "return ");
    lua_pushlstring(L, src, n);
    lua_concat(L, 2);
    size_t len;
    const char *ret = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, ret, len, "=stdin");
    lua_remove(L, -2);
    if (status == LUA_OK || code[0] == '=') {
        *is_expr = status == LUA_OK;
        return status;
    }
    lua_pop(L, 1);
    *is_expr = 0;
    return luaL_loadbuffer(L, code, strlen(code), "=stdin");
}

static int ends_with_semicolon(const char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n')) n--;
    return n > 0 && s[n - 1] == ';';
}

/* ---- completion ---- */
static char *xstrdup(const char *s) {
    char *c = malloc(strlen(s) + 1);
    if (c) strcpy(c, s);
    return c;
}

/* Candidates are collected into a Lua table at the registry key "sift.completions". */
static int g_cand_i;
static int g_cand_n;

static void collect_keys(lua_State *L, int tbl, const char *prefix, const char *base, char sep, int out, int depth) {
    if (depth > 3 || !lua_istable(L, tbl)) return;
    size_t pl = strlen(prefix);
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            if (strncmp(k, prefix, pl) == 0 && k[0] != '_') {
                int isfn = lua_isfunction(L, -1);
                const char *full = lua_pushfstring(L, "%s%s%s%s", base, base[0] ? (char[]){sep, 0} : "", k,
                                                   isfn ? "(" : "");
                lua_rawseti(L, out, (lua_Integer)luaL_len(L, out) + 1);
                (void)full;
            }
        }
        lua_pop(L, 1);
    }
    /* fields through the metatable's __index table */
    if (lua_getmetatable(L, tbl)) {
        lua_getfield(L, -1, "__index");
        if (lua_istable(L, -1)) collect_keys(L, lua_gettop(L), prefix, base, sep, out, depth + 1);
        lua_pop(L, 2);
    }
}

/* Looks up key (on top) in the value below it without running Lua code: raw field, then the chain of
 * __index tables (a few levels); for userdata with a C __index function (sift's models and tokenizers:
 * `m.config`, `tok.bos`) that function is called under pcall, otherwise its metatable's "methods" table is
 * used. Replaces both with the result (or nil). */
static void safe_field(lua_State *L) {
    int key = lua_gettop(L), obj = key - 1;
    int found = 0;
    lua_pushvalue(L, obj);
    for (int depth = 0; depth < 8 && !found; depth++) {
        int cur = lua_gettop(L);
        int t = lua_type(L, cur);
        if (t == LUA_TTABLE) {
            lua_pushvalue(L, key);
            lua_rawget(L, cur);
            if (!lua_isnil(L, -1)) {
                found = 1;
                break;
            }
            lua_pop(L, 1);
        } else if (t != LUA_TUSERDATA) {
            break;
        }
        if (!lua_getmetatable(L, cur)) break;
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
        if (lua_istable(L, -1)) { /* continue with the __index table */
            lua_replace(L, cur);
            lua_settop(L, cur);
            continue;
        }
        if (t == LUA_TUSERDATA && lua_iscfunction(L, -1)) {
            lua_pushvalue(L, cur);
            lua_pushvalue(L, key);
            if (lua_pcall(L, 2, 1, 0) == LUA_OK && !lua_isnil(L, -1)) {
                found = 1;
                break;
            }
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
        }
        lua_pushliteral(L, "methods");
        lua_rawget(L, -2);
        if (!lua_istable(L, -1)) break;
        lua_replace(L, cur);
        lua_settop(L, cur);
    }
    if (!found) {
        lua_settop(L, obj - 1);
        lua_pushnil(L);
        return;
    }
    lua_replace(L, obj);
    lua_settop(L, obj);
}

/* Resolves "a.b.c" (dots or colons) to a value; pushes it or nil. */
static void resolve_path(lua_State *L, const char *path, size_t len) {
    lua_pushglobaltable(L);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '.' && path[j] != ':') j++;
        lua_pushlstring(L, path + i, j - i);
        safe_field(L);
        i = j + 1;
    }
}

static char *completion_generator(const char *text, int state) {
    lua_State *L = g_L;
    if (state == 0) {
        g_cand_i = 0;
        lua_newtable(L);
        int out = lua_gettop(L);
        const char *last = strrchr(text, '.');
        const char *lastc = strrchr(text, ':');
        if (lastc && (!last || lastc > last)) last = lastc;
        if (last) {
            char sep = *last;
            char *base = xstrdup(text);
            base[last - text] = 0;
            resolve_path(L, text, (size_t)(last - text));
            int v = lua_gettop(L);
            if (lua_istable(L, v)) {
                collect_keys(L, v, last + 1, base, sep, out, 0);
            } else if (lua_getmetatable(L, v)) { /* userdata: methods of its __index */
                lua_getfield(L, -1, "__index");
                if (!lua_istable(L, -1)) {
                    lua_pop(L, 1);
                    lua_getfield(L, -1, "methods");
                }
                if (lua_istable(L, -1)) collect_keys(L, lua_gettop(L), last + 1, base, sep, out, 0);
                lua_pop(L, 2);
            }
            lua_pop(L, 1);
            free(base);
        } else {
            lua_pushglobaltable(L);
            collect_keys(L, lua_gettop(L), text, "", '.', out, 0);
            lua_pop(L, 1);
            static const char *kw[] = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                                       "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return",
                                       "then", "true", "until", "while", NULL};
            for (int i = 0; kw[i]; i++)
                if (strncmp(kw[i], text, strlen(text)) == 0) {
                    lua_pushstring(L, kw[i]);
                    lua_rawseti(L, out, (lua_Integer)luaL_len(L, out) + 1);
                }
        }
        g_cand_n = (int)luaL_len(L, out);
        lua_setfield(L, LUA_REGISTRYINDEX, "sift.completions");
    }
    if (g_cand_i >= g_cand_n) return NULL;
    lua_getfield(L, LUA_REGISTRYINDEX, "sift.completions");
    lua_geti(L, -1, ++g_cand_i);
    char *r = xstrdup(lua_tostring(L, -1));
    lua_pop(L, 2);
    return r;
}

/* The quote character of the string literal open at position `end` of `line`, or 0. */
static int quote_at(const char *line, int end) {
    int q = 0;
    for (int i = 0; i < end && line[i]; i++) {
        char c = line[i];
        if (q) {
            if (c == '\\') i++;
            else if (c == q) q = 0;
        } else if (c == '"' || c == '\'') {
            q = c;
        }
    }
    return q;
}

/* Is the cursor inside a string literal? Returns the quote char or 0. */
static int in_string(int end) { return quote_at(rl_line_buffer, end); }

/* rl_char_is_quoted_p: is line[index] inside a string literal (its delimiting quotes are not)? Without it
 * readline takes a break character right after the opening quote ("/tmp…, "-…) as the word start. */
static int char_is_quoted(char *line, int index) {
    int q = quote_at(line, index);
    if (!q) return 0;
    if (line[index] != q) return 1;
    int backslashes = 0;
    for (int i = index - 1; i >= 0 && line[i] == '\\'; i--) backslashes++;
    return backslashes % 2;
}

static char **sift_completion(const char *text, int start, int end) {
    (void)end;
    rl_attempted_completion_over = 1;
    if (in_string(start)) {
        /* Lua-side completer (e.g. parameter names inside model:param(" ) gets the first say */
        lua_State *L = g_L;
        lua_getglobal(L, "__sift_complete_string");
        if (lua_isfunction(L, -1)) {
            lua_pushlstring(L, rl_line_buffer, (size_t)start);
            lua_pushstring(L, text);
            if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_istable(L, -1) && luaL_len(L, -1) > 0) {
                lua_Integer n = luaL_len(L, -1);
                char **m = calloc((size_t)n + 2, sizeof *m);
                /* m[0] is the common prefix: let readline compute it by passing the first match */
                for (lua_Integer i = 1; i <= n; i++) {
                    lua_geti(L, -1, i);
                    m[i] = xstrdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
                    lua_pop(L, 1);
                }
                /* compute the common prefix */
                size_t pl = strlen(m[1]);
                for (lua_Integer i = 2; i <= n; i++) {
                    size_t k = 0;
                    while (k < pl && m[i][k] == m[1][k]) k++;
                    pl = k;
                }
                m[0] = malloc(pl + 1);
                memcpy(m[0], m[1], pl);
                m[0][pl] = 0;
                lua_pop(L, 1);
                rl_completion_suppress_append = 1;
                return m;
            }
            lua_settop(L, 0);
        } else {
            lua_pop(L, 1);
        }
        rl_attempted_completion_over = 0; /* fall back to file names */
        rl_completion_suppress_append = 1;
        return rl_completion_matches(text, rl_filename_completion_function);
    }
    rl_completion_suppress_append = 1;
    return rl_completion_matches(text, completion_generator);
}

/* ---- interactive loop ---- */
static const char *history_path(void) {
    static char buf[4096];
    const char *h = getenv("SIFT_HISTORY");
    if (h && *h) return h;
    const char *home = getenv("HOME");
    snprintf(buf, sizeof buf, "%s/.sift_history", home ? home : ".");
    return buf;
}

static char *read_line(const char *prompt) {
    g_in_readline = 1;
    char *line = readline(prompt);
    g_in_readline = 0;
    return line;
}

/* Multi-line commands are kept whole in the history file by a "#<time>" line before each entry. A file
 * written without them (one line per entry, by an older sift-repl) is read line by line. */
static int history_has_timestamps(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    int c0 = fgetc(f), c1 = fgetc(f);
    fclose(f);
    return c0 == EOF || (c0 == '#' && c1 >= '0' && c1 <= '9');
}

/* Saves the newest history entry; the first command of a session creates the file (append_history does not). */
static void save_history_entry(const char *hist) {
    if (append_history(1, hist) != 0) write_history(hist);
}

static void repl(lua_State *L) {
    const char *hist = history_path();
    using_history();
    history_comment_char = '#';
    history_write_timestamps = 1;
    history_multiline_entries = history_has_timestamps(hist);
    read_history(hist);
    stifle_history(5000);
    rl_readline_name = "sift";
    rl_attempted_completion_function = sift_completion;
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]";
    rl_completer_word_break_characters = rl_basic_word_break_characters;
    /* inside an unclosed string the word starts after the quote, so paths with '/' or '-' complete whole
     * (and a unique match gets its closing quote) */
    rl_completer_quote_characters = "\"'";
    rl_char_is_quoted_p = char_is_quoted;
    rl_getc_function = read_key;
    rl_bind_key_in_map(KEY_INTERRUPT, interrupt_line, emacs_standard_keymap);
    rl_bind_key_in_map(KEY_INTERRUPT, interrupt_line, vi_insertion_keymap);
    rl_bind_key_in_map(KEY_INTERRUPT, interrupt_line, vi_movement_keymap);
    printf("sift %s (Lua 5.4) — ?name for help, Ctrl-C interrupts, Ctrl-D exits\n", SIFT_VERSION);
    char *pending = NULL; /* a line typed after Ctrl-C dropped an incomplete chunk: the next command */
    int quit = 0;
    while (!quit) {
        char *line = pending ? pending : read_line(PROMPT);
        pending = NULL;
        if (!line) break;
        if (!*line) {
            free(line);
            continue;
        }
        /* ?name -> help(name) */
        char *code = NULL;
        if (line[0] == '?') {
            const char *name = line + 1;
            while (*name == ' ') name++;
            size_t n = strlen(name) + 32;
            code = malloc(n);
            snprintf(code, n, "help(%s%s%s)", *name ? "\"" : "", name, *name ? "\"" : "");
        } else {
            code = xstrdup(line);
        }
        char *full = xstrdup(line);
        free(line);
        int is_expr = 0, status, cancelled = 0;
        lua_settop(L, 0);
        for (;;) {
            status = compile_line(L, code, &is_expr);
            if (!incomplete(L, status)) break;
            g_in_continuation = 1;
            g_chunk_cancelled = 0;
            char *more = read_line(PROMPT2);
            g_in_continuation = 0;
            if (g_chunk_cancelled) { /* Ctrl-C: drop the chunk; `more` was typed at a fresh "sift> " prompt */
                g_chunk_cancelled = 0;
                cancelled = 1;
                pending = more;
                quit = more == NULL; /* Ctrl-D at that prompt */
                break;
            }
            if (!more) break;
            size_t n = strlen(code) + strlen(more) + 2;
            char *joined = malloc(n);
            snprintf(joined, n, "%s\n%s", code, more);
            free(code);
            code = joined;
            size_t m = strlen(full) + strlen(more) + 2;
            char *fj = malloc(m);
            snprintf(fj, m, "%s\n%s", full, more);
            free(full);
            full = fj;
            free(more);
        }
        if (cancelled) {
            lua_settop(L, 0);
            free(code);
            free(full);
            continue;
        }
        add_history(full);
        save_history_entry(hist);
        if (status == LUA_OK) {
            /* a Ctrl-C that arrived after the previous command ended must not interrupt this one */
            lua_sethook(L, NULL, 0, 0);
            g_interrupted = 0;
            sf_interrupt_clear();
            double t0 = now_s();
            status = docall(L, 0, LUA_MULTRET);
            double dt = now_s() - t0;
            if (status == LUA_OK && is_expr && !ends_with_semicolon(code)) print_results(L, 1);
            report(L, status);
            if (dt > 1.0) printf("(%.2f s)\n", dt);
        } else {
            report(L, status);
        }
        lua_settop(L, 0);
        free(code);
        free(full);
        fflush(stdout);
    }
    printf("\n");
    write_history(hist);
}

/* ---- setup ---- */
static void usage(void) {
    fprintf(stderr, "usage: sift-repl [-i] [-e CODE] [FILE.lua [args...]]\n");
}

int main(int argc, char **argv) {
    sf_runtime_env_reexec(argc, argv);
    sf_heap_keep_freed();
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "sift-repl: cannot create the Lua state\n");
        return 1;
    }
    g_L = L;
    luaL_openlibs(L);
    luaL_requiref(L, "sift", luaopen_sift, 1);
    lua_pop(L, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigwinch; /* read_key resizes; elsewhere a resize must not interrupt system calls */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &sa, NULL);
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;

    int interactive = 0, ran = 0, i = 1, rc = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-i") == 0) {
            interactive = 1;
        } else if (strcmp(argv[i], "-e") == 0 && i + 1 < argc) {
            int st = luaL_loadstring(L, argv[++i]);
            if (st == LUA_OK) st = docall(L, 0, 0);
            if (st != LUA_OK) {
                report(L, st);
                rc = 1;
            }
            ran = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            lua_close(L);
            return 0;
        } else {
            usage();
            lua_close(L);
            return 2;
        }
    }
    if (i < argc && rc == 0) {
        /* script: arg table as in lua.c */
        lua_createtable(L, argc - i, i + 1);
        for (int k = 0; k < argc; k++) {
            lua_pushstring(L, argv[k]);
            lua_rawseti(L, -2, k - i);
        }
        lua_setglobal(L, "arg");
        int st = luaL_loadfile(L, argv[i]);
        if (st == LUA_OK) {
            int nargs = argc - i - 1;
            for (int k = i + 1; k < argc; k++) lua_pushstring(L, argv[k]);
            st = docall(L, nargs, 0);
        }
        if (st != LUA_OK) {
            report(L, st);
            rc = 1;
        }
        ran = 1;
    }
    /* one rank failing alone would leave the others waiting in their next sum: end the whole job */
    if (rc != 0 && sf_dist_size() > 1) sf_dist_abort(rc, "the script failed on this rank (above)");
    if ((!ran || interactive) && rc == 0) repl(L);
    lua_close(L);
    sf_dist_finalize();
    return rc;
}
