/* Helpers shared by the tests: fixture paths, temp dirs, running the CLI, comparing arrays. */
#ifndef FVT_TESTUTIL_H
#define FVT_TESTUTIL_H

#include <stddef.h>

/* tests/data (FIBVID_TESTDATA, set by meson). */
const char *fvt_data_dir(void);
/* Path of the built fibvid executable (FIBVID_BIN, set by meson). */
const char *fvt_bin(void);
/* A fresh temporary directory (caller frees the string; removed by fvt_rmtree). */
char *fvt_tmpdir(void);
void fvt_rmtree(const char *dir);
/* Join a directory and a file name into a static-lifetime-free string the caller frees. */
char *fvt_join(const char *dir, const char *name);
/* Run @cmd through /bin/sh; stdout and stderr captured into malloc'd strings (either may be NULL).
 * Returns the exit status (0..255), or -1 when the command was killed by a signal. */
int fvt_run(const char *cmd, char **out, char **err);
/* Largest |a[i] - b[i]|. */
double fvt_max_abs_diff(const float *a, const float *b, size_t n);
/* Write @n bytes to @path; 0 on success. */
int fvt_write_file(const char *path, const void *data, size_t n);
/* Monotonic clock in milliseconds (for printed timings; tests never fail on time). */
double fvt_now_ms(void);
/* Read a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *fvt_read_file(const char *path, size_t *n);

#endif
