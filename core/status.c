/* status.c — thread-local error message, the interrupt request and checked integer arithmetic. See status.h. */
#include "status.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t g_interrupt_requested;

void sf_interrupt_request(void) { g_interrupt_requested = 1; }
int sf_interrupt_pending(void) { return g_interrupt_requested != 0; }
void sf_interrupt_clear(void) { g_interrupt_requested = 0; }
static volatile sig_atomic_t g_interrupt_deferred;
void sf_interrupt_defer(int on) { g_interrupt_deferred = on != 0; }
int sf_interrupt_deferred(void) { return g_interrupt_deferred != 0; }

static _Thread_local char sf_err_buf[1024];
static _Thread_local sf_status sf_err_code;

static void sf_vrecord(sf_status code, const char *fmt, va_list ap) {
    sf_err_code = code;
    /* formatted aside first: callers often wrap the last message, passing sf_last_error() as an argument */
    char msg[sizeof sf_err_buf];
    vsnprintf(msg, sizeof msg, fmt, ap);
    memcpy(sf_err_buf, msg, sizeof msg);
}

sf_status sf_fail(sf_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sf_vrecord(code, fmt, ap);
    va_end(ap);
    return code;
}

void *sf_fail_null(sf_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sf_vrecord(code, fmt, ap);
    va_end(ap);
    return NULL;
}

const char *sf_last_error(void) { return sf_err_buf; }
sf_status sf_last_status(void) { return sf_err_code; }
void sf_clear_error(void) {
    sf_err_buf[0] = '\0';
    sf_err_code = SF_OK;
}

int sf_mul_overflow_i64(int64_t a, int64_t b, int64_t *out) {
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

int sf_add_overflow_i64(int64_t a, int64_t b, int64_t *out) {
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}
