/* Shared helpers of the libFuzzer harnesses: a private scratch directory in memory (/dev/shm), fuzz input
 * split into the several files a parser reads, and seed writing (FVFUZZ_SEEDS=DIR: a harness writes the
 * inputs the library itself produces there and exits, which is how tests/fuzz/corpus was made). */
#ifndef FV_FUZZ_UTIL_H
#define FV_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Separator between the files of one input (a line of its own; also in every .dict). */
#define FZ_SEP "\n--fvpart--\n"
#define FZ_MAX_PARTS 8

typedef struct FzParts {
    int         n;
    const char *p[FZ_MAX_PARTS];
    size_t      len[FZ_MAX_PARTS];
} FzParts;

/* Split @data at FZ_SEP into at most FZ_MAX_PARTS parts (the last one takes the rest). */
void fz_split(const uint8_t *data, size_t size, FzParts *parts);

/* The harness's scratch directory, made on first use and removed at exit. */
const char *fz_dir(void);

/* A directory @name under fz_dir(), emptied (made when missing). Returns its path (static per name slot:
 * valid until the next call with the same @name). */
const char *fz_subdir(const char *name);

/* Write @len bytes to @dir/@name (created or truncated); aborts on an I/O error of the scratch space.
 * Returns the path (malloc'd; the caller frees). */
char *fz_write(const char *dir, const char *name, const void *data, size_t len);

/* Remove everything inside @dir (not @dir itself). */
void fz_empty_dir(const char *dir);

/* Quiet, single-threaded library settings every harness starts with. */
void fz_init_library(void);

/* Seed writing: the directory of FVFUZZ_SEEDS, or NULL when not asked. */
const char *fz_seed_dir(void);

/* Append @parts (n of them) joined by FZ_SEP to the seed file @dir/@name. */
void fz_write_seed(const char *dir, const char *name, const char *const *parts, const size_t *lens, int n);

/* Read a whole file (malloc'd, NUL-terminated; *@len without the NUL); NULL when missing. */
char *fz_read(const char *path, size_t *len);

#endif
