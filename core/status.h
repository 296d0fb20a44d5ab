/* status.h — error reporting for the sift core.
 *
 * Every fallible core function returns an sf_status (0 = success, negative = failure) or NULL, and
 * records a one-line human-readable message in a thread-local buffer that the caller (C or the Lua
 * binding) reads with sf_last_error(). Nothing in core/ calls exit() or abort() on bad input.
 * Also the process-wide interrupt request (Ctrl-C) that long core loops poll.
 * This file does not log, print or allocate.
 */
#ifndef SF_STATUS_H
#define SF_STATUS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SF_OK = 0,
    SF_ERR_ARG = -1,     /* invalid argument: wrong shape, dtype, range */
    SF_ERR_NOMEM = -2,   /* allocation failed or size overflow */
    SF_ERR_IO = -3,      /* file system error */
    SF_ERR_FORMAT = -4,  /* malformed file content */
    SF_ERR_STATE = -5,   /* operation not valid in the current state */
    SF_ERR_NUMERIC = -6, /* NaN / Inf where a finite number was required */
    SF_ERR_INTERRUPTED = -7, /* the user asked to stop (Ctrl-C) during a long core call */
} sf_status;

/* Records a printf-style message and returns `code` (so `return sf_fail(SF_ERR_ARG, "...")` works). */
sf_status sf_fail(sf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, for functions that return a pointer: records the message and returns NULL. */
void *sf_fail_null(sf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Message of the most recent failure on this thread ("" if none). */
const char *sf_last_error(void);
sf_status sf_last_status(void);
void sf_clear_error(void);

/* A request to stop, shared by the process: a SIGINT handler calls sf_interrupt_request (async-signal
 * safe: it only stores a flag); long-running core loops (generation: before each new token and each
 * layer of a prompt) poll sf_interrupt_pending and return SF_ERR_INTERRUPTED; whoever starts a new
 * command clears it. */
void sf_interrupt_request(void);
int sf_interrupt_pending(void);
void sf_interrupt_clear(void);
/* Deferred interrupts: while on, a front end only records the request (sf_interrupt_request) instead of
 * stopping the running code, which polls at its own safe points — data-parallel training, where every
 * rank must stop at the same step (a rank stopped mid-step would leave the others waiting in a sum). */
void sf_interrupt_defer(int on);
int sf_interrupt_deferred(void);

/* Checked size arithmetic: return 0 and store the result, or return -1 on overflow. */
int sf_mul_overflow_i64(int64_t a, int64_t b, int64_t *out);
int sf_add_overflow_i64(int64_t a, int64_t b, int64_t *out);

#endif
