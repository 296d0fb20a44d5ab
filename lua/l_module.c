/* l_module.c — luaopen_sift: builds the `sift` module table from the parts (l_*.c) and the module-level
 * functions version, now, threads. Does not implement any part itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <stdlib.h>
#include <unistd.h>

#include <cblas.h>

#include "../core/gemm.h"
#include "../core/threads.h"
#include "l_delta.h"
#include "lsift.h"

int lsift_error(lua_State *L, const char *what) {
    const char *msg = sf_last_error();
    size_t n = strlen(what);
    if (strncmp(msg, what, n) == 0 && msg[n] == ':') return luaL_error(L, "%s", msg); /* already prefixed */
    return luaL_error(L, "%s: %s", what, msg);
}

static int l_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

static int l_threads(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n >= 0 && n <= 1024, 1, "thread count must be 0 (all cores) .. 1024");
        sf_set_threads((int)n);
    }
    lua_pushinteger(L, sf_get_threads());
    return 1;
}

/* Adds <root>/lua (found from where this code is loaded: build/sift.so or build/sift-repl -> <root>/lua;
 * installed: <prefix>/lib/lua/5.4/sift.so -> <prefix>/share/lua/5.4) to package.path. */
static void add_library_path(lua_State *L) {
    Dl_info info;
    char dir[4096];
    if (!dladdr((void *)luaopen_sift, &info) || !info.dli_fname) return;
    char exe[4096];
    if (strchr(info.dli_fname, '/') == NULL) { /* the executable itself */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return;
        exe[n] = 0;
    } else {
        snprintf(exe, sizeof exe, "%s", info.dli_fname);
    }
    snprintf(dir, sizeof dir, "%s", exe);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = 0;
    lua_getglobal(L, "package");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/../lua/?.lua;%s/../lua/?/init.lua;%s/../../../share/lua/5.4/?.lua;%s/../share/lua/5.4/?.lua;%s",
                    dir, dir, dir, dir, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

/* Runs lua/sift/init.lua with the module table (on top of the stack) as its argument, if found. */
static void load_lua_library(lua_State *L) {
    add_library_path(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushliteral(L, "sift.init");
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 1);
    if (lua_isstring(L, -1)) {
        const char *file = lua_tostring(L, -1);
        int st = luaL_loadfile(L, file);
        if (st == LUA_OK) {
            lua_pushvalue(L, -4); /* the module table */
            st = lua_pcall(L, 1, 0, 0);
        }
        if (st != LUA_OK) { /* the C module still works; say why the Lua part is missing */
            fprintf(stderr, "sift: the Lua library did not load: %s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2);
}

/* sift.sgemm_rate(n, reps, kernel) -> GFLOP/s of a bare n x n x n product (median of reps), the
 * ceiling benchmarks compare against. kernel "openblas" (default): OpenBLAS's cblas_sgemm; "sift": the
 * engine's sf_sgemm, i.e. its own AVX-512 or AVX2 kernel where the build has one (core/gemm.h). */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void product(int own, lua_Integer n, const float *a, const float *b, float *c) { // c (n, n) = a b
    if (own)
        sf_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a, (int)n, b, (int)n, 0.0f,
                    c, (int)n);
}

static int l_sgemm_rate(lua_State *L) {
    lua_Integer n = luaL_optinteger(L, 1, 768), reps = luaL_optinteger(L, 2, 10);
    static const char *const kernels[] = {"openblas", "sift", NULL};
    const int own = luaL_checkoption(L, 3, "openblas", kernels) == 1;
    if (n < 16 || n > 8192 || reps < 1 || reps > 1000) return luaL_error(L, "sgemm_rate: n in 16..8192, reps in 1..1000");
    size_t bytes = (size_t)(n * n) * sizeof(float);
    float *a = sf_alloc(bytes), *b = sf_alloc(bytes), *c = sf_alloc(bytes);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!a || !b || !c || !t) {
        sf_free(a, bytes);
        sf_free(b, bytes);
        sf_free(c, bytes);
        free(t);
        return luaL_error(L, "sgemm_rate: out of memory");
    }
    for (lua_Integer i = 0; i < n * n; i++) a[i] = b[i] = (float)((i % 7) - 3) * 0.01f;
    product(own, n, a, b, c);
    for (lua_Integer r = 0; r < reps; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        product(own, n, a, b, c);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        t[r] = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    sf_free(a, bytes);
    sf_free(b, bytes);
    sf_free(c, bytes);
    free(t);
    lua_pushnumber(L, 2.0 * (double)n * (double)n * (double)n / med / 1e9);
    return 1;
}

/* sift.gemm_kernel(name?) -> the kernel large products use ("avx512", "avx2" or "openblas"); with a name
 * ("openblas", or "auto" for the build's best) it switches first. */
static int l_gemm_kernel(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        static const char *const names[] = {"auto", "openblas", NULL};
        sf_gemm_use_openblas(luaL_checkoption(L, 1, NULL, names) == 1);
    }
    lua_pushstring(L, sf_gemm_kernel());
    return 1;
}

/* sift.gemm_flops() -> floating-point operations (2 per multiply-add) of every matrix product the engine
 * has made since start-up (core/gemm.h, sf_gemm_macs); differences count a piece of work's products. */
static int l_gemm_flops(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)(2 * sf_gemm_macs()));
    return 1;
}

/* sift._defer_interrupts(on): whether Ctrl-C is deferred (status.h: sift-repl then only records it);
 * sift._interrupt_pending() -> whether one is pending, clearing it; sift._interrupt() records one, as
 * Ctrl-C does (tests). sift.train defers Ctrl-C while it commits a step, and with several processes
 * while it steps, so that every rank stops after the same step. */
static int l_defer_interrupts(lua_State *L) {
    sf_interrupt_defer(lua_toboolean(L, 1));
    return 0;
}

static int l_interrupt_pending(lua_State *L) {
    lua_pushboolean(L, sf_interrupt_pending());
    sf_interrupt_clear();
    return 1;
}

static int l_interrupt(lua_State *L) {
    (void)L;
    sf_interrupt_request();
    return 0;
}

static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
    return 1;
}

int luaopen_sift(lua_State *L) {
    static const luaL_Reg fns[] = {{"now", l_now}, {"threads", l_threads}, {"isatty", l_isatty},
                                   {"sgemm_rate", l_sgemm_rate}, {"gemm_kernel", l_gemm_kernel},
                                   {"gemm_flops", l_gemm_flops}, {"_interrupt", l_interrupt},
                                   {"_defer_interrupts", l_defer_interrupts}, {"_interrupt_pending", l_interrupt_pending},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushliteral(L, SIFT_VERSION);
    lua_setfield(L, -2, "version");
    lsift_open_tensor(L);
    lsift_open_print(L);
    lsift_open_io(L);
    lsift_open_tokenizer(L);
    lsift_open_model(L);
    lsift_open_delta(L);
    lsift_open_sets(L);
    lsift_open_dist(L);
    lsift_open_probe(L); /* after lsift_open_tensor: adds tensor methods */
    lsift_open_options(L);
    load_lua_library(L);
    return 1;
}
