/* The library core: error messages (thread-local, one line), version, threads, denormals, time and aligned
 * allocation. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "util/util.h"

static _Thread_local char g_errmsg[1024];

int fv_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errmsg, sizeof(g_errmsg), fmt, ap);
    va_end(ap);
    /* one line: the CLI prints it as is */
    for (char *p = g_errmsg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return code;
}

void fv_error_clear(void)
{
    g_errmsg[0] = '\0';
}

const char *fv_last_error(void)
{
    return g_errmsg;
}

int fv_error_is_input(int code)
{
    switch (code) {
    case FV_EINVAL: case FV_ENOENT: case FV_EIO: case FV_ENODATA: case FV_ENOTSUP: case FV_ERANGE:
    case -EACCES: case -EISDIR: case -ENOTDIR:
        return 1;
    default:
        return 0;
    }
}

const char *fv_version(void)
{
#define FV_STR2(x) #x
#define FV_STR(x) FV_STR2(x)
    return FV_STR(FIBVID_VERSION_MAJOR) "." FV_STR(FIBVID_VERSION_MINOR) "." FV_STR(FIBVID_VERSION_PATCH);
}

/* Threads: fibvid's OpenMP loops and OpenBLAS (OpenMP build) share omp_set_num_threads(). */
extern void openblas_set_num_threads(int num_threads);
static int g_threads = 0;

void fv_set_num_threads(int32_t n)
{
    if (n <= 0)
        n = omp_get_num_procs();
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int32_t fv_num_threads(void)
{
    return g_threads > 0 ? g_threads : omp_get_max_threads();
}

/* Denormal floats take a microcode assist on x86 (each operation ~100x slower). Training produces them:
 * once softmax weights sharpen, exp() of far-below-max scores, their gradients and the products with them
 * land below FLT_MIN. Flush them to zero (FTZ) and read them as zero (DAZ) in every thread of the pool;
 * a value below 1.2e-38 changes nothing that fp32 training resolves. */
void fv_flush_denormals(void)
{
#if defined(__x86_64__) || defined(__i386__)
#pragma omp parallel num_threads(fv_num_threads())
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

double fv_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Blocks from FV_HUGE_MIN bytes up are mappings of their own on huge pages (util/hugemem.c), which come zeroed;
 * not under AddressSanitizer, whose leak checker does not look for pointers inside such mappings. */
#if defined(__SANITIZE_ADDRESS__)
#define FV_HUGE_BLOCKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FV_HUGE_BLOCKS 0
#endif
#endif
#ifndef FV_HUGE_BLOCKS
#define FV_HUGE_BLOCKS 1
#endif

static void *alloc(size_t size, int *zeroed)
{
    *zeroed = 0;
    if (size == 0)
        return NULL;
    if (FV_HUGE_BLOCKS && size >= FV_HUGE_MIN) {
        void *h = fv_huge_block_alloc(size);
        if (h) {
            *zeroed = 1;
            return h;
        }
    }
    void *p = NULL;
    if (size > SIZE_MAX - 63) /* the rounding below would wrap to a tiny block */
        return NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded))
        return NULL;
    return p;
}

void *fv_malloc(size_t size)
{
    int zeroed;
    return alloc(size, &zeroed);
}

void *fv_calloc(size_t n, size_t size)
{
    if (n && size > SIZE_MAX / n)
        return NULL;
    int zeroed;
    void *p = alloc(n * size, &zeroed);
    if (p && !zeroed)
        memset(p, 0, n * size);
    return p;
}

void fv_free(void *p)
{
    if (!(FV_HUGE_BLOCKS && fv_huge_block_free(p)))
        free(p);
}
