/* l_dist.c — sift.dist: which process this is among those of an MPI job (`make MPI=1`, run under
 * mpirun / mpiexec), sums over them, and the rule that only rank 0 writes files. A build without MPI,
 * or one process, reports rank 0 of 1 and its sums return their input.
 *   sift.dist.enabled        true in an MPI build
 *   sift.dist.rank(), size() 0-based rank, number of processes
 *   sift.dist.sum(x)         x a number, an array of numbers or an f32 tensor (summed in place): the sum over
 *                            every rank (each rank must call it)
 *   sift.dist.bytes_sent()   bytes this process has put into sums since start-up
 *   sift.dist.barrier()      returns when every rank has reached it
 * The data-parallel training loop itself is lua/sift/train.lua; gradient sums core/dist.h. */
#include <stdlib.h>

#include "../core/dist.h"
#include "lsift.h"

sf_status lsift_rank0_wrote(sf_status st, const char *path) {
    if (sf_dist_size() == 1) return st;
    double failed = sf_dist_rank() == 0 && st != SF_OK ? 1.0 : 0.0;
    sf_status sum = sf_dist_sum_f64(&failed, 1);
    if (sum) return sum;
    if (sf_dist_rank() != 0 && failed != 0)
        return sf_fail(SF_ERR_IO, "%s: rank 0, which writes the files of the job, could not write it", path);
    return st;
}

static int l_rank(lua_State *L) {
    lua_pushinteger(L, sf_dist_rank());
    return 1;
}

static int l_size(lua_State *L) {
    lua_pushinteger(L, sf_dist_size());
    return 1;
}

static int l_sum(lua_State *L) {
    sf_tensor *t = lsift_test_tensor(L, 1);
    if (t) { /* an f32 tensor: summed in place (a gradient, say), and returned */
        if (t->dtype != SF_F32) return luaL_error(L, "sift.dist.sum: a tensor must be f32, this one is %s", sf_dtype_name(t->dtype));
        if (sf_dist_sum_f32(sf_f32(t), sf_tensor_numel(t))) return lsift_error(L, "sift.dist.sum");
        lua_settop(L, 1);
        return 1;
    }
    if (lua_type(L, 1) == LUA_TNUMBER) {
        double v = lua_tonumber(L, 1);
        if (sf_dist_sum_f64(&v, 1)) return lsift_error(L, "sift.dist.sum");
        lua_pushnumber(L, v);
        return 1;
    }
    luaL_argexpected(L, lua_istable(L, 1), 1, "a number, an array of numbers or an f32 tensor");
    lua_Integer n = luaL_len(L, 1);
    double *v = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *v, 0); /* freed by the GC on error */
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        int ok;
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok) return luaL_error(L, "sift.dist.sum: element %d is not a number", (int)i + 1);
        lua_pop(L, 1);
    }
    if (sf_dist_sum_f64(v, n)) return lsift_error(L, "sift.dist.sum");
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_bytes_sent(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)sf_dist_bytes_sent());
    return 1;
}

static int l_barrier(lua_State *L) {
    double one = 1;
    if (sf_dist_sum_f64(&one, 1)) return lsift_error(L, "sift.dist.barrier");
    return 0;
}

void lsift_open_dist(lua_State *L) {
    static const luaL_Reg fns[] = {{"rank", l_rank},   {"size", l_size}, {"sum", l_sum}, {"bytes_sent", l_bytes_sent},
                                   {"barrier", l_barrier}, {NULL, NULL}};
    if (sf_dist_init(NULL, NULL)) { /* a module loaded by another interpreter: MPI starts here */
        lua_pushfstring(L, "sift.dist: %s", sf_last_error());
        lua_error(L);
    }
    luaL_newlib(L, fns);
    lua_pushboolean(L, sf_dist_built_with_mpi());
    lua_setfield(L, -2, "enabled");
    lua_setfield(L, -2, "dist");
}
