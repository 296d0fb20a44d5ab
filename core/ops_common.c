/* ops_common.c — argument checks shared by the tape ops. See ops.h. */
#include "ops.h"

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
