/* l_print.c — tensors print like PyTorch: nested brackets, aligned columns, abbreviated with "..."
 * beyond `threshold` elements (showing `edgeitems` at each edge), fixed or scientific notation chosen
 * from the values, and sift.print_options{precision=, threshold=, edgeitems=, linewidth=, sci_mode=}
 * to change it (returns the current options). Does not print anything itself: it builds strings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lsift.h"

static struct {
    int precision, threshold, edgeitems, linewidth, sci_mode; /* sci_mode: -1 auto, 0 off, 1 on */
} opts = {4, 1000, 3, 80, -1};

typedef struct {
    const sf_tensor *t;
    int summarize, sci, is_int, width;
    double scale; /* shared factor printed once in front ("1e-04 *"); 1 when unused */
    luaL_Buffer *b;
} fmt_ctx;

/* Element i of the tensor as text: integers exactly, floats by the print options. */
static void fmt_value(const fmt_ctx *c, int64_t i, char *out, size_t n) {
    if (c->is_int) {
        snprintf(out, n, "%lld", (long long)sf_tensor_get_flat_int(c->t, i));
        return;
    }
    const double v = sf_tensor_get_flat(c->t, i);
    if (isnan(v))
        snprintf(out, n, "nan");
    else if (isinf(v))
        snprintf(out, n, v > 0 ? "inf" : "-inf");
    else if (c->sci)
        snprintf(out, n, "%.*e", opts.precision, v);
    else
        snprintf(out, n, "%.*f", opts.precision, v / c->scale);
}

/* Visits the printed elements (respecting summarisation) to compute the column width. */
static void scan(fmt_ctx *c, int d, int64_t base, int64_t stride_prod, double *amax, double *amin_nz, int *w) {
    const sf_tensor *t = c->t;
    int64_t n = t->shape[d];
    int64_t stride = stride_prod / (n ? n : 1);
    for (int64_t i = 0; i < n; i++) {
        if (c->summarize && n > 2 * opts.edgeitems && i == opts.edgeitems) i = n - opts.edgeitems;
        if (d + 1 < t->ndim) {
            scan(c, d + 1, base + i * stride, stride, amax, amin_nz, w);
        } else {
            double v = c->is_int ? 0 : sf_tensor_get_flat(t, base + i);
            if (w) {
                char s[64];
                fmt_value(c, base + i, s, sizeof s);
                int len = (int)strlen(s);
                if (len > *w) *w = len;
            } else if (isfinite(v)) {
                double a = fabs(v);
                if (a > *amax) *amax = a;
                if (a > 0 && a < *amin_nz) *amin_nz = a;
            }
        }
    }
}

static void emit(fmt_ctx *c, int d, int64_t base, int64_t stride_prod, int indent) {
    const sf_tensor *t = c->t;
    int64_t n = t->shape[d];
    int64_t stride = stride_prod / (n ? n : 1);
    luaL_addchar(c->b, '[');
    int col = indent + 1;
    for (int64_t i = 0; i < n; i++) {
        if (c->summarize && n > 2 * opts.edgeitems && i == opts.edgeitems) {
            if (d + 1 < t->ndim) {
                luaL_addstring(c->b, "...,\n");
                for (int k = 0; k < (t->ndim - d - 2); k++) luaL_addchar(c->b, '\n');
                for (int k = 0; k < indent + 1; k++) luaL_addchar(c->b, ' ');
            } else {
                luaL_addstring(c->b, "..., ");
                col += 5;
            }
            i = n - opts.edgeitems;
        }
        if (d + 1 < t->ndim) {
            emit(c, d + 1, base + i * stride, stride, indent + 1);
            if (i + 1 < n) {
                luaL_addchar(c->b, ',');
                for (int k = 0; k < t->ndim - d - 1; k++) luaL_addchar(c->b, '\n');
                for (int k = 0; k < indent + 1; k++) luaL_addchar(c->b, ' ');
            }
        } else {
            char s[64], padded[96];
            fmt_value(c, base + i, s, sizeof s);
            snprintf(padded, sizeof padded, "%*s", c->width, s);
            if (col + c->width + 2 > opts.linewidth && i > 0) {
                luaL_addchar(c->b, '\n');
                for (int k = 0; k < indent + 1; k++) luaL_addchar(c->b, ' ');
                col = indent + 1;
            }
            luaL_addstring(c->b, padded);
            col += c->width;
            if (i + 1 < n) {
                luaL_addstring(c->b, ", ");
                col += 2;
            }
        }
    }
    luaL_addchar(c->b, ']');
}

void lsift_push_tensor_string(lua_State *L, const sf_tensor *t) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    fmt_ctx c = {.t = t, .b = &b, .scale = 1.0};
    c.is_int = t->dtype == SF_I64 || t->dtype == SF_I32 || t->dtype == SF_U8;
    int64_t numel = sf_tensor_numel(t);
    c.summarize = numel > opts.threshold;
    luaL_addstring(&b, "tensor(");
    if (t->ndim == 0) {
        char s[64];
        c.sci = opts.sci_mode == 1;
        fmt_value(&c, 0, s, sizeof s);
        luaL_addstring(&b, s);
    } else if (numel == 0) {
        luaL_addstring(&b, "[]");
    } else {
        double amax = 0, amin = INFINITY;
        scan(&c, 0, 0, numel, &amax, &amin, NULL);
        if (opts.sci_mode >= 0) {
            c.sci = opts.sci_mode;
        } else if (!c.is_int && amax > 0 && amax / amin <= 1000.0 && (amax >= 1e4 || amax < 1e-2)) {
            /* all of one magnitude, far from 1: print them against a shared power of ten (like th) */
            c.scale = pow(10.0, floor(log10(amax)));
            char sc[32];
            snprintf(sc, sizeof sc, "%.0e *\n       ", c.scale);
            luaL_addstring(&b, sc);
        } else {
            c.sci = !c.is_int && amax > 0 && (amax / amin > 1000.0 || amax >= 1e8 || amin < 1e-4);
        }
        c.width = 1;
        scan(&c, 0, 0, numel, &amax, &amin, &c.width);
        emit(&c, 0, 0, numel, 7);
    }
    char tail[160], shp[96];
    snprintf(tail, sizeof tail, ", shape=%s, dtype=%s)", sf_shape_str(t, shp, sizeof shp), sf_dtype_name(t->dtype));
    luaL_addstring(&b, tail);
    luaL_pushresult(&b);
}

static int l_print_options(lua_State *L) {
    if (lua_istable(L, 1)) {
        struct {
            const char *k;
            int *v;
            int lo, hi;
        } f[] = {{"precision", &opts.precision, 0, 16},
                 {"threshold", &opts.threshold, 0, 1 << 30},
                 {"edgeitems", &opts.edgeitems, 1, 1000},
                 {"linewidth", &opts.linewidth, 20, 100000}};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            lua_getfield(L, 1, f[i].k);
            if (!lua_isnil(L, -1)) {
                lua_Integer v = luaL_checkinteger(L, -1);
                if (v < f[i].lo || v > f[i].hi) luaL_error(L, "print_options: %s must be in %d..%d", f[i].k, f[i].lo, f[i].hi);
                *f[i].v = (int)v;
            }
            lua_pop(L, 1);
        }
        lua_getfield(L, 1, "sci_mode");
        if (lua_isboolean(L, -1)) opts.sci_mode = lua_toboolean(L, -1);
        else if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "auto") == 0) opts.sci_mode = -1;
        lua_pop(L, 1);
    }
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, opts.precision);
    lua_setfield(L, -2, "precision");
    lua_pushinteger(L, opts.threshold);
    lua_setfield(L, -2, "threshold");
    lua_pushinteger(L, opts.edgeitems);
    lua_setfield(L, -2, "edgeitems");
    lua_pushinteger(L, opts.linewidth);
    lua_setfield(L, -2, "linewidth");
    if (opts.sci_mode < 0) lua_pushliteral(L, "auto");
    else lua_pushboolean(L, opts.sci_mode);
    lua_setfield(L, -2, "sci_mode");
    return 1;
}

void lsift_open_print(lua_State *L) {
    lua_pushcfunction(L, l_print_options);
    lua_setfield(L, -2, "print_options");
}
