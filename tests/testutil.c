/* Helpers shared by the tests (see testutil.h). */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

const char *fvt_data_dir(void)
{
    const char *d = getenv("FIBVID_TESTDATA");
    return d ? d : "tests/data";
}

const char *fvt_bin(void)
{
    const char *b = getenv("FIBVID_BIN");
    return b ? b : "./fibvid";
}

char *fvt_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *t = malloc(4096);
    snprintf(t, 4096, "%s/fibvid-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(t)) {
        free(t);
        return NULL;
    }
    return t;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void fvt_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

char *fvt_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

char *fvt_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (cap - len - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    if (n)
        *n = len;
    return buf;
}

int fvt_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

int fvt_run(const char *cmd, char **out, char **err)
{
    char *dir = fvt_tmpdir();
    char *fo = fvt_join(dir, "stdout"), *fe = fvt_join(dir, "stderr");
    size_t n = strlen(cmd) + strlen(fo) + strlen(fe) + 64;
    char *full = malloc(n);
    snprintf(full, n, "(%s) </dev/null >'%s' 2>'%s'", cmd, fo, fe);
    int st = system(full);
    if (out)
        *out = fvt_read_file(fo, NULL);
    if (err)
        *err = fvt_read_file(fe, NULL);
    fvt_rmtree(dir);
    free(full); free(fo); free(fe); free(dir);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

double fvt_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double fvt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
