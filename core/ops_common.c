/* ops_common.c — argument checks and the column split shared by the tape ops and kernels. See ops.h. */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops.h"

void sf_omp_columns(int64_t C, int64_t *j0, int64_t *j1) {
    int nth = 1, tid = 0;
#ifdef _OPENMP
    nth = omp_get_num_threads();
    tid = omp_get_thread_num();
#endif
    int64_t chunk = ((C + nth - 1) / nth + 15) / 16 * 16;
    *j0 = (int64_t)tid * chunk;
    *j1 = *j0 + chunk;
    if (*j0 > C) *j0 = C;
    if (*j1 > C) *j1 = C;
}

sf_status sf_check_f32(const sf_tensor *t, const char *op, const char *arg) {
    if (!t) return sf_fail(SF_ERR_ARG, "%s: %s is missing", op, arg);
    if (t->dtype != SF_F32) return sf_fail(SF_ERR_ARG, "%s: %s must be f32, got %s", op, arg, sf_dtype_name(t->dtype));
    return SF_OK;
}

sf_status sf_check_index(const sf_tensor *t, const char *op, const char *arg) {
    if (!t) return sf_fail(SF_ERR_ARG, "%s: %s is missing", op, arg);
    if (t->dtype != SF_I64 && t->dtype != SF_I32)
        return sf_fail(SF_ERR_ARG, "%s: %s must be an i32 or i64 index tensor, got %s", op, arg, sf_dtype_name(t->dtype));
    return SF_OK;
}
