/* thread_scratch.h — scratch buffers that belong to the calling thread and are kept from call to call:
 * the own GEMM's packs (gemm_own_scheme.h) and the skinny kernels' copies (gemm_skinny.c). OpenMP's pool
 * threads keep theirs across products, so a training step allocates nothing after its first; two
 * threads never share one (attention runs products from the threads of its own parallel region); a
 * thread's buffers are freed when it ends (thread-specific data).
 *
 * SF_THREAD_SCRATCH(name, SLOTS) defines, in the including file, a function
 *     static float *name(int slot, int64_t floats)
 * returning the calling thread's buffer number `slot` (< SLOTS) with room for at least `floats` floats,
 * 64-byte aligned; it only grows (a larger request frees the old one: its content is not kept). NULL when
 * memory runs out, and then the caller takes a path that needs none.
 *
 * What it does not do: share buffers between threads, keep content across growth, or shrink. */
#ifndef SF_THREAD_SCRATCH_H
#define SF_THREAD_SCRATCH_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    float *p;
    int64_t n; /* floats */
} sf_scratch_slot;

/* The buffer of `slot` grown to `floats` floats (NULL, with the slot emptied, when that fails). */
static inline float *sf_scratch_slot_grow(sf_scratch_slot *s, int64_t floats) {
    if (s->n < floats) {
        free(s->p);
        s->p = aligned_alloc(64, (size_t)((floats * (int64_t)sizeof(float) + 63) / 64 * 64));
        s->n = s->p ? floats : 0;
    }
    return s->p;
}

#define SF_THREAD_SCRATCH(name, SLOTS)                                                                       \
    static pthread_key_t name##_key;                                                                         \
    static pthread_once_t name##_once = PTHREAD_ONCE_INIT;                                                   \
    static int name##_key_ok;                                                                                \
    static void name##_free(void *p) {                                                                       \
        sf_scratch_slot *s = p;                                                                              \
        for (int i = 0; i < (SLOTS); i++) free(s[i].p);                                                      \
        free(s);                                                                                             \
    }                                                                                                        \
    static void name##_make_key(void) { name##_key_ok = pthread_key_create(&name##_key, name##_free) == 0; } \
    static float *name(int slot, int64_t floats) {                                                           \
        pthread_once(&name##_once, name##_make_key);                                                         \
        if (!name##_key_ok) return NULL;                                                                     \
        sf_scratch_slot *s = pthread_getspecific(name##_key);                                                \
        if (!s) {                                                                                            \
            if (!(s = calloc((SLOTS), sizeof *s))) return NULL;                                              \
            if (pthread_setspecific(name##_key, s) != 0) {                                                   \
                free(s);                                                                                     \
                return NULL;                                                                                 \
            }                                                                                                \
        }                                                                                                    \
        return sf_scratch_slot_grow(&s[slot], floats);                                                       \
    }

#endif
