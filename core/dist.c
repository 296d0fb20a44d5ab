/* dist.c — processes, sums and the tape-driven gradient sync over MPI; one process without it.
 * See dist.h. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "threads.h"

#ifdef SIFT_MPI
#include <mpi.h>
#endif

static uint64_t g_bytes_sent;

#ifdef SIFT_MPI
static int g_we_initialised;

sf_status sf_dist_init(int *argc, char ***argv) {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return sf_fail(SF_ERR_STATE, "MPI_Init_thread failed");
        g_we_initialised = 1;
    }
    /* one owner of the cores: processes on this node share them */
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    if (local > 1) {
        int n = sf_num_cores() / local;
        sf_set_threads(n > 0 ? n : 1);
    }
    return SF_OK;
}

/* MPI is running: initialised and not yet finalised */
static int mpi_ready(void) {
    int ready = 0, done = 0;
    MPI_Initialized(&ready);
    MPI_Finalized(&done);
    return ready && !done;
}

void sf_dist_finalize(void) {
    if (mpi_ready() && g_we_initialised) MPI_Finalize();
}

void sf_dist_abort(int code, const char *why) {
    if (!mpi_ready()) return;
    if (why) fprintf(stderr, "sift: rank %d ends the job: %s\n", sf_dist_rank(), why);
    fflush(stdout);
    fflush(stderr);
    struct timespec pause = {0, 300 * 1000 * 1000}; /* 0.3 s: mpiexec reads the ranks' pipes meanwhile */
    nanosleep(&pause, NULL);
    MPI_Abort(MPI_COMM_WORLD, code);
}

int sf_dist_built_with_mpi(void) { return 1; }

int sf_dist_rank(void) {
    int r = 0;
    if (mpi_ready()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int sf_dist_size(void) {
    int n = 1;
    if (mpi_ready()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

/* MPI counts are int: sums of more than INT_MAX values go in pieces */
static sf_status sum_in_place(void *buf, int64_t n, MPI_Datatype type, size_t elem) {
    if (sf_dist_size() == 1 || n <= 0) return SF_OK;
    char *p = buf;
    for (int64_t done = 0; done < n;) {
        int64_t c = n - done < (1 << 30) ? n - done : (1 << 30);
        if (MPI_Allreduce(MPI_IN_PLACE, p + done * elem, (int)c, type, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return sf_fail(SF_ERR_STATE, "MPI_Allreduce of %lld values failed", (long long)c);
        done += c;
    }
    g_bytes_sent += (uint64_t)n * elem;
    return SF_OK;
}

sf_status sf_dist_sum_f32(float *buf, int64_t n) { return sum_in_place(buf, n, MPI_FLOAT, sizeof(float)); }
sf_status sf_dist_sum_f64(double *buf, int64_t n) { return sum_in_place(buf, n, MPI_DOUBLE, sizeof(double)); }

#else /* one process */

sf_status sf_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return SF_OK;
}
void sf_dist_finalize(void) {}
void sf_dist_abort(int code, const char *why) {
    if (why) fprintf(stderr, "sift: %s\n", why);
    fflush(stdout);
    exit(code);
}
int sf_dist_built_with_mpi(void) { return 0; }
int sf_dist_rank(void) { return 0; }
int sf_dist_size(void) { return 1; }
sf_status sf_dist_sum_f32(float *buf, int64_t n) {
    (void)buf;
    (void)n;
    return SF_OK;
}
sf_status sf_dist_sum_f64(double *buf, int64_t n) {
    (void)buf;
    (void)n;
    return SF_OK;
}
#endif

uint64_t sf_dist_bytes_sent(void) { return g_bytes_sent; }

/* ---- the gradient sync ---- */
struct sf_dist_sync {
    sf_tensor **leaf; /* (n) retained, in the order every rank issues their sums */
    int n;
    char *done;       /* (n) the tape finished this leaf during the armed pass */
    char *made;       /* (n) a dense leaf had no gradient: the sync gave it zeros to send */
    int next;         /* leaves [0, next) have been started */
    sf_graph *g;      /* armed on this tape, or NULL */
    sf_status failed; /* the first error while starting (reported by finish) */
#ifdef SIFT_MPI
    MPI_Request *req; /* (n) */
    MPI_Status *status; /* (n) (MPI_STATUSES_IGNORE trips GCC's access checks on MPICH's prototypes) */
#endif
};

static void free_sync(sf_dist_sync *y) {
    free(y->leaf);
    free(y->done);
    free(y->made);
#ifdef SIFT_MPI
    free(y->req);
    free(y->status);
#endif
    free(y);
}

sf_dist_sync *sf_dist_sync_new(sf_tensor *const *leaves, int n) {
    sf_dist_sync *y = calloc(1, sizeof *y);
    if (!y) return sf_fail_null(SF_ERR_NOMEM, "gradient sync: out of memory");
    y->leaf = calloc((size_t)n + 1, sizeof *y->leaf);
    y->done = calloc((size_t)n + 1, 1);
    y->made = calloc((size_t)n + 1, 1);
    int ok = y->leaf && y->done && y->made;
#ifdef SIFT_MPI
    y->req = malloc(((size_t)n + 1) * sizeof *y->req);
    y->status = malloc(((size_t)n + 1) * sizeof *y->status);
    ok = ok && y->req && y->status;
    for (int i = 0; ok && i < n; i++) y->req[i] = MPI_REQUEST_NULL;
#endif
    if (!ok) {
        free_sync(y);
        return sf_fail_null(SF_ERR_NOMEM, "gradient sync: out of memory");
    }
    y->n = n;
    for (int i = 0; i < n; i++) {
        y->leaf[i] = leaves[i];
        sf_tensor_retain(leaves[i]);
    }
    return y;
}

void sf_dist_sync_free(sf_dist_sync *y) {
    if (!y) return;
    if (y->g) sf_dist_sync_finish(y, NULL);
    for (int i = 0; i < y->n; i++) sf_tensor_release(y->leaf[i]);
    free_sync(y);
}

#ifdef SIFT_MPI
/* The buffer a leaf sends: a sparse leaf's k values, else its dense gradient (zeros when the tape never
 * reached it on this rank: the other ranks still sum theirs). */
static sf_status leaf_buffer(sf_tensor *t, float **buf, int64_t *n, char *made) {
    if (t->sparse) {
        *buf = t->sparse->values;
        *n = t->sparse->k;
        return SF_OK;
    }
    if (!t->grad) {
        *made = 1;
        t->grad = sf_tensor_zeros(SF_F32, t->ndim, t->shape);
        if (!t->grad) return sf_fail(SF_ERR_NOMEM, "gradient sync: out of memory for a zero gradient of %s",
                                     t->name ? t->name : "a parameter");
    }
    t->grad_zero = 0; /* it holds the ranks' sum from now on */
    t->grad_finite = 0;
    *buf = sf_f32(t->grad);
    *n = sf_tensor_numel(t->grad);
    return SF_OK;
}

static void start(sf_dist_sync *y, int i) {
    float *buf = NULL;
    int64_t n = 0;
    sf_status st = leaf_buffer(y->leaf[i], &buf, &n, &y->made[i]);
    if (st == SF_OK && n > (1 << 30)) st = sf_fail(SF_ERR_ARG, "gradient sync: a leaf of more than 2^30 values");
    if (st == SF_OK && MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &y->req[i]) != MPI_SUCCESS)
        st = sf_fail(SF_ERR_STATE, "MPI_Iallreduce failed");
    if (st) {
        if (!y->failed) y->failed = st;
        sf_dist_abort(1, sf_last_error()); /* the other ranks would wait for this sum forever */
    }
    g_bytes_sent += (uint64_t)n * sizeof(float);
}

static void on_leaf_done(sf_tensor *t, void *user) {
    sf_dist_sync *y = user;
    for (int i = y->next; i < y->n; i++)
        if (y->leaf[i] == t) {
            y->done[i] = 1;
            break;
        }
    while (y->next < y->n && y->done[y->next]) start(y, y->next++);
    int flag; /* lets MPI progress the sums in flight */
    if (y->next > 0) MPI_Testall(y->next, y->req, &flag, y->status);
}
#endif

sf_status sf_dist_sync_arm(sf_dist_sync *y, sf_graph *g) {
    if (y->g) return sf_fail(SF_ERR_STATE, "gradient sync: already armed (finish the previous step's sync)");
    y->next = 0;
    y->failed = SF_OK;
    for (int i = 0; i < y->n; i++) y->done[i] = y->made[i] = 0;
    y->g = g;
#ifdef SIFT_MPI
    if (sf_dist_size() > 1) sf_graph_set_leaf_observer(g, on_leaf_done, y);
#endif
    return SF_OK;
}

sf_status sf_dist_sync_finish(sf_dist_sync *y, int *got) {
    (void)got; /* one process: every leaf keeps what it holds */
    if (!y->g) return sf_fail(SF_ERR_STATE, "gradient sync: not armed");
    sf_graph_set_leaf_observer(y->g, NULL, NULL);
    y->g = NULL;
#ifdef SIFT_MPI
    if (sf_dist_size() > 1) {
        while (y->next < y->n) start(y, y->next++);
        if (got) { /* a dense leaf holds a gradient unless the sync had to make one */
            for (int i = 0; i < y->n; i++)
                if (!y->leaf[i]->sparse) got[i] = !y->made[i];
            if (MPI_Allreduce(MPI_IN_PLACE, got, y->n, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS && !y->failed)
                y->failed = sf_fail(SF_ERR_STATE, "MPI_Allreduce of the gradient flags failed");
            g_bytes_sent += (uint64_t)y->n * sizeof(int);
        }
        if (MPI_Waitall(y->n, y->req, y->status) != MPI_SUCCESS && !y->failed)
            y->failed = sf_fail(SF_ERR_STATE, "MPI_Waitall failed");
        if (got)
            for (int i = 0; i < y->n; i++) /* no rank had one: as one process, the leaf keeps none */
                if (!got[i] && y->made[i]) sf_param_drop_grad(y->leaf[i]);
    }
#endif
    return y->failed;
}
