/* Library-internal helpers shared by every module: error reporting and small utilities. */
#ifndef FV_INTERNAL_H
#define FV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fibvid/common.h"

/* Record a one-line message for fv_last_error() and return @code (so `return fv_error(...)` works).
 * The message should name the file or function and the reason: "%s: no video stream". */
int fv_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the thread's last error message. */
void fv_error_clear(void);

/* Monotonic time in milliseconds. */
double fv_time_ms(void);

/* 64-byte aligned allocation (free with fv_free); NULL on failure or size 0. */
void *fv_malloc(size_t size);
void *fv_calloc(size_t n, size_t size);
void fv_free(void *p);

/* Threads fibvid uses (set by fv_set_num_threads, default: all cores). */
int fv_num_threads(void);
/* Flush denormals to zero in this thread and every OpenMP pool thread (x86 FTZ + DAZ). */
void fv_flush_denormals(void);

/* Deterministic pseudo-random numbers (splitmix64 / xoshiro-free): for random weights and tests. */
uint64_t fv_rand_u64(uint64_t *state);
float fv_rand_uniform(uint64_t *state);          /* [0, 1) */
float fv_rand_normal(uint64_t *state);           /* N(0, 1) */

#define FV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FV_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* FV_INTERNAL_H */
