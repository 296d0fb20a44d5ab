/* graph.h — the autograd tape: ops record nodes during forward, sf_graph_backward runs them once in
 * reverse, and leaf-gradient hooks fire as soon as a leaf's gradient is complete.
 *
 * Ownership: tensors returned by ops (sf_add, sf_linear, ...) belong to the graph: the caller borrows
 * them until sf_graph_reset/sf_graph_free (retain them to keep them longer). Their storage comes from
 * the graph's buffer pool (the exact size, else the smallest idle buffer of at most twice the size), so
 * a training loop that resets the graph each step allocates nothing after the first step, and one over
 * batches of varying lengths nothing once it has seen its longest. Inputs that are not graph-owned
 * (parameters, user tensors) are retained by the nodes that use them.
 *
 * Gradients: during backward, sf_graph_grad(g, t) hands a kernel the buffer to ACCUMULATE t's gradient
 * into (always +=):
 *   - leaf without hook: its persistent t->grad (zero-initialised on first use, accumulates across
 *     backward passes until the optimizer zeroes it, like PyTorch);
 *   - leaf with a hook: a transient pooled buffer; once every consumer of the leaf has run, the hook
 *     gets it; SF_HOOK_CONSUMED recycles the buffer (no dense gradient stays resident), SF_HOOK_KEEP
 *     adds it into t->grad;
 *   - sparse leaf (t->sparse set, SIFT targets): a transient pooled buffer whose entries at
 *     t->sparse->idx are gathered into t->sparse->values when the leaf completes (then the hook, if
 *     any, fires with grad == NULL); ops that support it skip the dense buffer entirely through
 *     sf_graph_sparse_grad (the sampled path);
 *   - intermediate tensor: a transient pooled buffer, recycled after its producer's backward ran.
 * Returns NULL for tensors that do not require grad, so kernels skip work for frozen inputs.
 * This file does not contain any math kernel.
 */
#ifndef SF_GRAPH_H
#define SF_GRAPH_H

#include "tensor.h"

#define SF_NODE_MAX_IN 5
#define SF_NODE_MAX_SAVED 6

typedef struct sf_graph sf_graph;
typedef struct sf_node sf_node;
/* Accumulates into sf_graph_grad(g, n->in[i]) given sf_graph_grad(g, n->out) (never NULL when called). */
typedef sf_status (*sf_backward_fn)(sf_graph *g, sf_node *n);

struct sf_node {
    const char *op;              /* static string, e.g. "linear" */
    sf_backward_fn backward;
    sf_tensor *out;              /* graph-owned output */
    sf_tensor *in[SF_NODE_MAX_IN];
    int n_in;
    sf_tensor *saved[SF_NODE_MAX_SAVED]; /* extra tensors kept for backward (retained) */
    int n_saved;
    double f[4];                 /* float attributes (eps, scale, p, ...) */
    int64_t i[8];                /* integer attributes (sizes, flags, seeds, ...) */
};

sf_graph *sf_graph_new(void);
void sf_graph_free(sf_graph *g);
/* Drops all nodes and releases graph-owned tensors (their buffers go back to the pool). */
void sf_graph_reset(sf_graph *g);
/* Recording on/off (off = inference: no nodes, nothing saved). Returns the previous value. */
int sf_graph_set_recording(sf_graph *g, int on);
int sf_graph_recording(const sf_graph *g);
int sf_graph_num_nodes(const sf_graph *g);
const sf_node *sf_graph_node(const sf_graph *g, int i);
/* Release the pool's idle buffers back to the system. */
void sf_graph_trim(sf_graph *g);
size_t sf_graph_pool_bytes(const sf_graph *g); /* bytes held idle in the pool */
size_t sf_graph_owned_bytes(const sf_graph *g); /* bytes of the tensors the graph owns now (activations) */

/* A new graph-owned f32 tensor (uninitialised / zeroed) from the pool; borrowed by the caller. */
sf_tensor *sf_graph_tensor(sf_graph *g, int ndim, const int64_t *shape);
sf_tensor *sf_graph_tensor_zeros(sf_graph *g, int ndim, const int64_t *shape);
sf_tensor *sf_graph_tensor_like(sf_graph *g, const sf_tensor *t);
sf_tensor *sf_graph_tensor_dtype(sf_graph *g, sf_dtype dt, int ndim, const int64_t *shape);
/* Temporary buffer for one kernel call (not graph-owned): take it from the pool, give it back with
 * sf_graph_recycle as soon as the kernel is done. */
sf_tensor *sf_graph_scratch(sf_graph *g, int ndim, const int64_t *shape);
void sf_graph_recycle(sf_graph *g, sf_tensor *t);
/* Make an externally created tensor graph-owned (the graph takes over the caller's reference). */
sf_tensor *sf_graph_adopt(sf_graph *g, sf_tensor *t);

/* Called by ops after computing `out` from `in[0..n_in)`: if recording and any input requires grad,
 * appends a node (retaining the inputs), marks out->requires_grad and returns the node so the op can
 * store attributes and saved tensors; otherwise returns NULL (nothing to do for backward). */
sf_node *sf_graph_record(sf_graph *g, const char *op, sf_backward_fn backward, sf_tensor *out,
                         sf_tensor *const *in, int n_in);
/* Keep `t` alive for the node's backward (retains it). */
sf_status sf_node_save(sf_node *n, sf_tensor *t);

/* During backward: the buffer to accumulate t's gradient into (see top), or NULL if t does not need one. */
sf_tensor *sf_graph_grad(sf_graph *g, sf_tensor *t);
/* The same buffer for a kernel that can either overwrite or accumulate (a gemm's beta 0 or 1): *fresh is
 * set when nothing has been accumulated into it yet (a transient buffer just taken from the pool, not
 * zeroed, or a leaf gradient known to be zero), and then the caller must WRITE every element of it
 * (which saves zeroing it and reading the zeros back). Later calls for the same t say not fresh. */
sf_tensor *sf_graph_grad_for_write(sf_graph *g, sf_tensor *t, int *fresh);
/* Whether a leaf's gradient is known to hold no Inf or NaN: zeroed, or vouched for by the last writer
 * (and nobody else holds the buffer, who could have written into it). Every sf_graph_grad or
 * sf_graph_grad_for_write of t forgets it; a writer that knows what it wrote then says so with
 * sf_graph_grad_set_finite: finite = 1 only when every element of t's gradient is now known finite (a
 * checked product that stored all of it, sf_sgemm_finite; or a writer of some rows that checked them,
 * when the rest was known finite before it wrote). */
int sf_graph_grad_known_finite(const sf_tensor *t);
void sf_graph_grad_set_finite(sf_tensor *t, int finite);
/* During backward, for ops that can compute selected entries of a weight gradient directly: the
 * sparse leaf's values (k) to accumulate into, or NULL (then use sf_graph_grad as usual). */
sf_sparse_grad *sf_graph_sparse_grad(sf_graph *g, sf_tensor *t);

/* Memory: the caller promises that nothing reads t's values any more — not itself, and not the backward
 * of t's producer or of the ops that consumed it (e.g. a linear's output consumed only by a residual add:
 * neither backward reads it). Its storage goes back to the pool now; the tensor stays on the tape for
 * gradient routing. Ignored unless t was produced by a recorded op and its storage is not shared (a
 * view, a caller's reference). */
void sf_graph_drop_value(sf_graph *g, sf_tensor *t);

/* During backward, for ops that finish a producer's work themselves (fused residual + norm): takes the
 * gradient pending on the intermediate tensor t away from the tape and returns it (NULL if none). The
 * caller passes it on and gives it back with sf_graph_recycle; t's producer then sees no gradient and
 * its backward is skipped. */
sf_tensor *sf_graph_take_grad(sf_graph *g, sf_tensor *t);

/* Runs the tape once in reverse from `out`. `seed` is d(loss)/d(out) with out's shape; NULL means out is
 * a one-element tensor and the seed is 1. Fires leaf hooks as leaves complete. A graph can be
 * back-propagated once per forward; a second call is an error. */
sf_status sf_graph_backward(sf_graph *g, sf_tensor *out, const sf_tensor *seed);

/* Leaf observer: told of every leaf whose gradient this backward has finished (after its hook, the
 * gather of a sparse leaf, or its accumulation into t->grad), in the order the tape finishes them. One
 * per graph (dist.h's gradient sync); NULL removes it. */
typedef void (*sf_leaf_observer)(sf_tensor *leaf, void *user);
void sf_graph_set_leaf_observer(sf_graph *g, sf_leaf_observer fn, void *user);

/* Profiling: when on, the time of every op's forward (measured from the previous recorded op, so it
 * includes any untaped work in between) and backward is summed per op name until cleared. */
typedef struct {
    const char *op;
    double forward_s, backward_s;
    int64_t calls;
} sf_op_time;
void sf_graph_set_profiling(sf_graph *g, int on);
int sf_graph_profile(const sf_graph *g, const sf_op_time **out); /* returns the number of entries */
void sf_graph_profile_clear(sf_graph *g);

/* Leaf parameters. */
void sf_param_set_trainable(sf_tensor *t, int trainable); /* sets requires_grad on a leaf */
void sf_param_set_hook(sf_tensor *t, sf_grad_hook hook, void *user); /* NULL hook removes it */
void sf_param_zero_grad(sf_tensor *t);    /* zeroes t->grad if present */
void sf_param_drop_grad(sf_tensor *t);    /* frees t->grad */

#endif
