/* The shared helpers every part of the library uses: error reporting, threads, aligned allocation, time,
 * deterministic random streams, file helpers and a growable string. Knows nothing of videos or models. */
#ifndef FV_UTIL_H
#define FV_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "fibvid/common.h"

#define FV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FV_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- core.c ---------------------------------------------------------------------------------------- */

/* Record a one-line message for fv_last_error() and return @code (so `return fv_error(...)` works).
 * The message should name the file or function and the reason: "%s: no video stream". */
int fv_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the thread's last error message. */
void fv_error_clear(void);

/* Monotonic time in milliseconds. */
double fv_time_ms(void);
/* Load the default matrix-product backend's library now (oneDNN, else OpenBLAS; src/util/libs_dl.c), so that a
 * background loader can take it before FFmpeg: the dynamic loader runs one dlopen at a time. */
void fv_gemm_libs_preload(void);

/* 64-byte aligned allocation (free with fv_free, never free()); NULL on failure or size 0. From FV_HUGE_MIN bytes
 * up a block is a mapping of its own on transparent huge pages (hugemem.c). */
#define FV_HUGE_MIN ((size_t)2 << 20)
void *fv_malloc(size_t size);
void *fv_calloc(size_t n, size_t size);
void fv_free(void *p);

/* ---- hugemem.c: large buffers on transparent huge pages ------------------------------------------ */

/* A mapping of @size bytes (rounded up to 4 KiB; the rounded size in *@mapped) starting on a 2 MiB boundary,
 * advised MADV_HUGEPAGE, zeroed; NULL on failure. Free with fv_huge_free(p, *mapped). */
void *fv_huge_alloc(size_t size, size_t *mapped);
void fv_huge_free(void *p, size_t mapped);
/* fv_huge_alloc with the size remembered by address (fv_malloc's large blocks): NULL on failure; free with
 * fv_huge_block_free, which returns 1 when @p was such a block (and unmaps it), 0 otherwise. */
void *fv_huge_block_alloc(size_t size);
int fv_huge_block_free(void *p);
/* Long-lived buffers packed one after another into shared huge-page chunks (a model's prepared weights):
 * 64-byte aligned, zeroed, NULL on failure or size 0; a chunk is unmapped with its last buffer. */
void *fv_pool_alloc(size_t size);
void fv_pool_free(void *p);

/* Flush denormals to zero in this thread and every OpenMP pool thread (x86 FTZ + DAZ). */
void fv_flush_denormals(void);

/* ---- rng.c: deterministic pseudo-random numbers (splitmix64) ------------------------------------- */

/* splitmix64's output function of @x + 0x9e3779b97f4a7c15: one well-mixed 64-bit value. */
uint64_t fv_rand_mix(uint64_t x);
/* The splitmix64 sequence of @state: advances it and returns the next value. */
uint64_t fv_rand_u64(uint64_t *state);
float fv_rand_uniform(uint64_t *state);          /* [0, 1), 24 bits */
double fv_rand_unit(uint64_t *state);            /* [0, 1), 53 bits */
float fv_rand_normal(uint64_t *state);           /* N(0, 1), Box-Muller */

/* Counter-based streams for training: the state of stream (@seed, @purpose, @epoch, @index) is a pure
 * function of the four, so a resumed run replays exactly what an uninterrupted one draws. */
uint64_t fv_rng_stream(uint64_t seed, uint64_t purpose, uint64_t epoch, uint64_t index);
uint64_t fv_rng_next(uint64_t *s);               /* *s = fv_rand_mix(*s) */
double fv_rng_unit(uint64_t *s);                 /* [0, 1) from fv_rng_next */
int64_t fv_rng_below(uint64_t *s, int64_t n);    /* [0, n); 0 when n <= 1 */

/* ---- fs.c: files ----------------------------------------------------------------------------------- */

/* "DIR/NAME", malloc'd (free with free()); NULL when out of memory. */
char *fv_path_join(const char *dir, const char *name);

/* 1 when @path names something stat() can see, 0 otherwise. */
int fv_file_exists(const char *path);

/* Create @dir and its missing parents (mode 0777 & umask). Returns 0 or a negative code with fv_last_error()
 * naming the directory and the OS reason (-ENOTDIR when a path component is not a directory). */
int fv_mkdir_p(const char *dir);

/* Read the regular file @path whole into a malloc'd, NUL-terminated buffer (*@out, free with free(); *@len
 * bytes without the terminator). Files larger than @max_bytes are refused (FV_EINVAL) naming @what, as is,
 * when @what is not NULL, a file with a NUL byte ("%s: binary data (NUL byte): not %s"): text only.
 * Returns 0, FV_ENOENT, FV_EIO, FV_EINVAL or FV_ENOMEM with fv_last_error() set. */
int fv_read_file(const char *path, size_t max_bytes, const char *what, char **out, size_t *len);

/* fv_write_file_atomic (fibvid/common.h, public): a temporary file beside @path (@path + ".tmp"), fsync(),
 * rename(); FV_EIO / FV_ENOMEM with fv_last_error() naming the file. */

/* write() all of @n bytes to @fd, retrying on EINTR; 0 or -1 (errno set). */
int fv_write_all(int fd, const void *data, size_t n);
/* The code of a failed write with errno @e: -ENOSPC / -EDQUOT (a full disk or quota: a runtime failure, exit 3
 * in the CLI), else FV_EIO. */
int fv_write_error_code(int e);
/* fsync() the directory holding @path, after a rename into it: without it the rename may be lost on a power
 * failure. 0 or FV_EIO (file systems that cannot sync directories count as done). */
int fv_fsync_dir_of(const char *path);

/* ---- strbuf.c: a growable string ----------------------------------------------------------------- */

typedef struct FvStrBuf {
    char  *s;    /* NUL-terminated text (NULL before the first append); malloc'd */
    size_t len, cap;
    int    oom;  /* an append ran out of memory: the text is incomplete */
} FvStrBuf;

void fv_strbuf_printf(FvStrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fv_strbuf_free(FvStrBuf *b);

#endif /* FV_UTIL_H */
