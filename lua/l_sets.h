/* l_sets.h — what the binding's set, optimizer and checkpoint files share (lua/l_sets.c, l_optim.c,
 * l_resume.c): the sift.Set and sift.AdamW userdata layouts and the checks and helpers all three use.
 * Lua's view of them is sift.sparse / sift.lora / sift.full (lua/sift/sets.lua) and sift.AdamW. */
#ifndef LSIFT_SETS_H
#define LSIFT_SETS_H

#include "../core/dist.h"
#include "../core/lora.h"
#include "../core/model.h"
#include "../core/optim.h"
#include "../core/sift.h"
#include "lsift.h"

#define LSIFT_SET "sift.Set"
#define LSIFT_OPT "sift.AdamW"

typedef enum { SET_SPARSE = 0, SET_LORA, SET_FULL } set_kind;

/* sift.Set: the model's trainable part (uservalue 1 keeps the model userdata alive) */
typedef struct {
    set_kind kind;
    sf_model *m;               /* borrowed: the model userdata is kept alive in uservalue 1 */
    sf_sparse_set *sparse;
    sf_lora_set *lora;
    sf_tensor **dense;         /* (n_dense) trained densely, retained */
    char **dense_names;
    int n_dense;
    size_t opt_bytes;          /* dense moments of the optimizer attached last */
    sf_dist_sync *sync;        /* several processes: the gradient sync (kept across steps), or NULL */
    int *sync_target;          /* (sync_n) the sparse target behind each of its leaves, or -1 */
    int *sync_got;             /* (sync_n) whether each leaf holds a gradient this step (sf_dist_sync_finish) */
    int sync_n, sync_selecting, sync_armed;
} l_set;

/* sift.AdamW: the dense part's optimizer (the sparse part's moments live in the sparse set); uservalue 1 is
 * the set */
typedef struct {
    sf_adamw *dense;
    sf_adamw_hparams h;
    float sparse_wd;  /* weight decay of the increments */
    int64_t steps;
} l_opt;

l_set *lsift_check_set(lua_State *L, int idx);               /* raises on a closed set */
sf_sparse_set *lsift_need_sparse(lua_State *L, l_set *s, const char *what); /* raises unless sparse */
int lsift_target_index(lua_State *L, sf_sparse_set *sp, int arg); /* 0-based, from a name or 1-based index */
int lsift_all_selected(const sf_sparse_set *sp);
double lsift_opt_number(lua_State *L, int idx, const char *key, double def); /* field of an options table */
l_opt *lsift_check_opt(lua_State *L, int idx);
l_set *lsift_opt_set(lua_State *L, int idx); /* the set an optimizer trains */
/* The tensors the dense optimizer trains: the set's dense list, then LoRA's factors (A, B per target);
 * a malloc'd array of the count returned (-1 when out of memory). */
int lsift_collect_dense(l_set *s, sf_tensor ***out);

/* l_resume.c's methods (checkpoints), added to the Set and AdamW method tables */
extern const luaL_Reg lsift_resume_set_methods[];
extern const luaL_Reg lsift_resume_opt_methods[];
void lsift_open_optim(lua_State *L); /* l_optim.c: the sift.AdamW metatable and sift.AdamW */

#endif
