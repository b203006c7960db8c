/* Shared helpers of the libFuzzer harnesses (fuzz_util.h). */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fibvid/fibvid.h"
#include "fuzz_util.h"

static char g_dir[256];

void fz_split(const uint8_t *data, size_t size, FzParts *parts)
{
    const size_t sl = strlen(FZ_SEP);
    const char *s = (const char *)data, *end = s + size;
    parts->n = 0;
    while (parts->n < FZ_MAX_PARTS - 1) {
        const char *hit = (size_t)(end - s) >= sl ? memmem(s, (size_t)(end - s), FZ_SEP, sl) : NULL;
        if (!hit)
            break;
        parts->p[parts->n] = s;
        parts->len[parts->n++] = (size_t)(hit - s);
        s = hit + sl;
    }
    parts->p[parts->n] = s;
    parts->len[parts->n++] = (size_t)(end - s);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

void fz_empty_dir(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_dir(void)
{
    if (g_dir[0]) {
        fz_empty_dir(g_dir);
        rmdir(g_dir);
    }
}

const char *fz_dir(void)
{
    if (!g_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(g_dir, sizeof(g_dir), "%s/fvfuzz-XXXXXX", base);
        if (!mkdtemp(g_dir)) {
            perror("fvfuzz: mkdtemp");
            abort();
        }
        atexit(remove_dir);
    }
    return g_dir;
}

const char *fz_subdir(const char *name)
{
    static char paths[8][512];
    static char names[8][64];
    int slot = 0;
    while (slot < 8 && names[slot][0] && strcmp(names[slot], name))
        slot++;
    if (slot == 8)
        abort();
    if (!names[slot][0]) {
        snprintf(names[slot], sizeof(names[slot]), "%s", name);
        snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", fz_dir(), name);
        if (mkdir(paths[slot], 0700) != 0 && errno != EEXIST) {
            perror("fvfuzz: mkdir");
            abort();
        }
    }
    fz_empty_dir(paths[slot]);
    return paths[slot];
}

char *fz_write(const char *dir, const char *name, const void *data, size_t len)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        abort();
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

void fz_init_library(void)
{
    fv_set_verbosity(0);
    fv_set_num_threads(1);
    fv_set_gemm_backend("reference");
}

const char *fz_seed_dir(void)
{
    const char *d = getenv("FVFUZZ_SEEDS");
    return d && d[0] ? d : NULL;
}

void fz_write_seed(const char *dir, const char *name, const char *const *parts, const size_t *lens, int n)
{
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = malloc(plen);
    if (!path)
        abort();
    snprintf(path, plen, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    for (int i = 0; i < n; i++) {
        if (i)
            fputs(FZ_SEP, f);
        fwrite(parts[i], 1, lens[i], f);
    }
    if (fclose(f) != 0)
        abort();
    printf("seed %s\n", path);
    free(path);
}

char *fz_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                abort();
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096)
            break;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}
