/* Dataset lists: official UCF101 and HMDB51 split files, generic MMAction2 / PySlowFast lists, classes
 * files, and matching dataset class names to model labels. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fibvid/eval.h"
#include "util/util.h"

/* Lists are at most a few MB; a larger file is not a list. */
#define MAX_LIST_BYTES (256u << 20)

/* Entry and class strings live in one pool; pointers are fixed up once the pool stops growing. */
typedef struct Pool {
    char  *buf;
    size_t len, cap;
} Pool;

/* Internal layout: the public struct first, so fv_dataset_free can free everything from it. */
typedef struct Dataset {
    FvDataset pub;
    Pool      pool;
    size_t   *class_off;  /* (num_classes) offsets in pool */
    size_t   *entry_off;  /* (num_entries) */
    int32_t   class_cap;
    int64_t   entry_cap;
    size_t    name_off, desc_off;
    /* class name -> index, open addressing (-1 empty): exact names and normalised names (fv_label_normalize),
     * so that checking 100k classes for duplicates or matching 20k list entries is linear, not quadratic */
    int32_t  *hexact, *hnorm;
    size_t    hcap;   /* power of two, at least twice the classes */
} Dataset;

static int grow(void **p, size_t elem, size_t len, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *n = fv_malloc(ncap * elem);
    if (!n)
        return FV_ENOMEM;
    if (*p)
        memcpy(n, *p, len * elem);
    fv_free(*p);
    *p = n;
    *cap = ncap;
    return 0;
}

static int pool_add(Pool *pl, const char *s, size_t n, size_t *off)
{
    int ret = grow((void **)&pl->buf, 1, pl->len, &pl->cap, pl->len + n + 1);
    if (ret < 0)
        return fv_error(ret, "dataset: out of memory");
    memcpy(pl->buf + pl->len, s, n);
    pl->buf[pl->len + n] = '\0';
    *off = pl->len;
    pl->len += n + 1;
    return 0;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static size_t norm_key(const char *name, size_t n, char *out, size_t cap)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%.*s", (int)FV_MIN(n, sizeof(tmp) - 1), name);
    return fv_label_normalize(tmp, out, cap);
}

/* Slot of @p name (@p n bytes) in table @p t: the class's slot, or the empty slot where it would go. */
static size_t hash_find(const Dataset *d, const int32_t *t, int norm, const char *name, size_t n)
{
    char key[256], other[256];
    size_t kn = n;
    const char *k = name;
    if (norm) {
        kn = norm_key(name, n, key, sizeof(key));
        k = key;
    }
    size_t i = (size_t)hash_bytes(k, kn) & (d->hcap - 1);
    for (;; i = (i + 1) & (d->hcap - 1)) {
        if (t[i] < 0)
            return i;
        const char *cn = d->pool.buf + d->class_off[t[i]];
        if (norm) {
            if (norm_key(cn, strlen(cn), other, sizeof(other)) == kn && !memcmp(other, key, kn))
                return i;
        } else if (strlen(cn) == n && !memcmp(cn, name, n))
            return i;
    }
}

/* Put class @p c in both tables (growing them first); the first class of a normalised name keeps it. */
static int hash_add(Dataset *d, int32_t c)
{
    if ((size_t)(c + 1) * 2 > d->hcap) {
        size_t cap = d->hcap ? d->hcap * 2 : 64;
        while ((size_t)(c + 1) * 2 > cap)
            cap *= 2;
        int32_t *e = fv_malloc(cap * sizeof(int32_t)), *m = fv_malloc(cap * sizeof(int32_t));
        if (!e || !m) {
            fv_free(e);
            fv_free(m);
            return fv_error(FV_ENOMEM, "dataset: out of memory");
        }
        memset(e, 0xff, cap * sizeof(int32_t));
        memset(m, 0xff, cap * sizeof(int32_t));
        fv_free(d->hexact);
        fv_free(d->hnorm);
        d->hexact = e;
        d->hnorm = m;
        d->hcap = cap;
        for (int32_t i = 0; i < c; i++) /* rehash the earlier classes, in order */
            if (hash_add(d, i) < 0)
                return FV_ENOMEM;
    }
    const char *cn = d->pool.buf + d->class_off[c];
    size_t i = hash_find(d, d->hexact, 0, cn, strlen(cn));
    if (d->hexact[i] < 0)
        d->hexact[i] = c;
    i = hash_find(d, d->hnorm, 1, cn, strlen(cn));
    if (d->hnorm[i] < 0)
        d->hnorm[i] = c;
    return 0;
}

static int ds_add_class(Dataset *d, const char *name, size_t n)
{
    size_t cap = (size_t)d->class_cap;
    int ret = grow((void **)&d->class_off, sizeof(size_t), (size_t)d->pub.num_classes, &cap,
                   (size_t)d->pub.num_classes + 1);
    if (ret < 0)
        return fv_error(ret, "dataset: out of memory");
    d->class_cap = (int32_t)cap;
    if ((ret = pool_add(&d->pool, name, n, &d->class_off[d->pub.num_classes])) < 0)
        return ret;
    return hash_add(d, d->pub.num_classes++);
}

static int ds_add_entry(Dataset *d, const char *path, size_t n, int32_t label)
{
    size_t cap = (size_t)d->entry_cap;
    int ret = grow((void **)&d->entry_off, sizeof(size_t), (size_t)d->pub.num_entries, &cap,
                   (size_t)d->pub.num_entries + 1);
    if (ret < 0)
        return fv_error(ret, "dataset: out of memory");
    if (cap != (size_t)d->entry_cap) {
        /* labels ride along in a parallel array sized like entry_off */
        FvDatasetEntry *e = fv_calloc(cap, sizeof(*e));
        if (!e)
            return fv_error(FV_ENOMEM, "dataset: out of memory");
        if (d->pub.entries)
            memcpy(e, d->pub.entries, (size_t)d->pub.num_entries * sizeof(*e));
        fv_free(d->pub.entries);
        d->pub.entries = e;
        d->entry_cap = (int64_t)cap;
    }
    d->pub.entries[d->pub.num_entries].label = label;
    return pool_add(&d->pool, path, n, &d->entry_off[d->pub.num_entries++]);
}

/* Turn pool offsets into the public pointers (the pool no longer moves). */
static int ds_finish(Dataset *d)
{
    FvDataset *p = &d->pub;
    p->classes = fv_calloc((size_t)p->num_classes + 1, sizeof(*p->classes));
    if (!p->classes)
        return fv_error(FV_ENOMEM, "dataset: out of memory");
    for (int32_t c = 0; c < p->num_classes; c++)
        p->classes[c] = d->pool.buf + d->class_off[c];
    for (int64_t i = 0; i < p->num_entries; i++) {
        p->entries[i].path = d->pool.buf + d->entry_off[i];
        p->entries[i].class_name = p->classes[p->entries[i].label];
    }
    p->name = d->pool.buf + d->name_off;
    p->description = d->pool.buf + d->desc_off;
    return 0;
}

static Dataset *ds_new(void)
{
    Dataset *d = fv_calloc(1, sizeof(*d));
    if (!d)
        fv_error(FV_ENOMEM, "dataset: out of memory");
    return d;
}

void fv_dataset_free(FvDataset **ds)
{
    if (!ds || !*ds)
        return;
    Dataset *d = (Dataset *)*ds;
    fv_free(d->pool.buf);
    fv_free(d->class_off);
    fv_free(d->entry_off);
    fv_free(d->pub.entries);
    fv_free((void *)d->pub.classes);
    fv_free(d->hexact);
    fv_free(d->hnorm);
    fv_free(d);
    *ds = NULL;
}

/* Line iterator over a buffer: handles LF, CRLF and lone CR; strips surrounding blanks in place. */
typedef struct Lines {
    char   *p, *end;
    int64_t lineno;
} Lines;

static char *next_line(Lines *L, size_t *n)
{
    while (L->p < L->end) {
        char *s = L->p, *e = s;
        while (e < L->end && *e != '\n' && *e != '\r')
            e++;
        char *nx = e;
        if (nx < L->end)
            nx += (*nx == '\r' && nx + 1 < L->end && nx[1] == '\n') ? 2 : 1;
        L->p = nx;
        L->lineno++;
        *e = '\0';
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            *--e = '\0';
        /* a UTF-8 byte-order mark on the first line is not part of the name */
        if (L->lineno == 1 && e - s >= 3 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
            s += 3;
        *n = (size_t)(e - s);
        return s;
    }
    return NULL;
}

/* Strict decimal integer of the whole string. */
static int parse_int(const char *s, int64_t *v)
{
    if (!*s)
        return -1;
    int64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || x > (INT32_MAX - 9) / 10)
            return -1;
        x = x * 10 + (*p - '0');
    }
    *v = x;
    return 0;
}

static int find_class(const Dataset *d, const char *name, size_t n)
{
    if (!d->hcap)
        return -1;
    int32_t c = d->hexact[hash_find(d, d->hexact, 0, name, n)];
    if (c >= 0)
        return c;
    /* folder names in the official lists differ from classInd only in case (HandStand...) */
    return d->hnorm[hash_find(d, d->hnorm, 1, name, n)];
}

static int set_names(Dataset *d, const char *name, const char *desc)
{
    int ret = pool_add(&d->pool, name, strlen(name), &d->name_off);
    if (ret < 0)
        return ret;
    return pool_add(&d->pool, desc, strlen(desc), &d->desc_off);
}

/* ------------------------------------------------------------------------------------------------ */

int fv_dataset_load_ucf101(FvDataset **out, const char *split_dir, int32_t split, FvSubset subset)
{
    char *cpath = NULL, *lpath = NULL, *text = NULL, *dir = NULL;
    Dataset *d = NULL;
    size_t len, n;
    int ret;
    if (!out || !split_dir)
        return fv_error(FV_EINVAL, "fv_dataset_load_ucf101: NULL argument");
    *out = NULL;
    if (split < 1 || split > 3)
        return fv_error(FV_EINVAL, "%s: UCF101 split must be 1, 2 or 3, not %d", split_dir, split);
    if (subset != FV_SUBSET_TEST && subset != FV_SUBSET_TRAIN)
        return fv_error(FV_EINVAL, "fv_dataset_load_ucf101: bad subset %d", (int)subset);

    /* accept the directory of the official zip as well as the folder inside it */
    dir = fv_path_join(split_dir, "ucfTrainTestlist");
    cpath = dir ? fv_path_join(dir, "classInd.txt") : NULL;
    if (!cpath) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", split_dir);
        goto fail;
    }
    if (!fv_file_exists(cpath)) {
        fv_free(dir);
        fv_free(cpath);
        dir = fv_path_join(split_dir, ".");
        cpath = fv_path_join(split_dir, "classInd.txt");
        if (!dir || !cpath) {
            ret = fv_error(FV_ENOMEM, "%s: out of memory", split_dir);
            goto fail;
        }
    }
    if (!(d = ds_new())) {
        ret = FV_ENOMEM;
        goto fail;
    }
    d->pub.named = 1; /* official splits name their classes: matched to the model by name */

    if ((ret = fv_read_file(cpath, MAX_LIST_BYTES, "a text list", &text, &len)) < 0)
        goto fail;
    Lines L = { text, text + len, 0 };
    char *s;
    while ((s = next_line(&L, &n))) {
        if (!n)
            continue;
        char *sp = s;
        while (*sp && !isspace((unsigned char)*sp))
            sp++;
        char *name = sp;
        while (*name && isspace((unsigned char)*name))
            name++;
        *sp = '\0';
        int64_t idx;
        if (!*name || parse_int(s, &idx) < 0) {
            ret = fv_error(FV_EINVAL, "%s:%lld: expected `<index> <ClassName>`", cpath, (long long)L.lineno);
            goto fail;
        }
        if (idx != d->pub.num_classes + 1) {
            ret = fv_error(FV_EINVAL, "%s:%lld: class index %lld out of order (expected %d)", cpath,
                           (long long)L.lineno, (long long)idx, d->pub.num_classes + 1);
            goto fail;
        }
        if ((ret = ds_add_class(d, name, strlen(name))) < 0)
            goto fail;
    }
    if (d->pub.num_classes == 0) {
        ret = fv_error(FV_EINVAL, "%s: no classes", cpath);
        goto fail;
    }
    fv_free(text);
    text = NULL;

    char fname[32];
    snprintf(fname, sizeof(fname), "%s%02d.txt", subset == FV_SUBSET_TRAIN ? "trainlist" : "testlist", split);
    if (!(lpath = fv_path_join(dir, fname))) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", split_dir);
        goto fail;
    }
    if ((ret = fv_read_file(lpath, MAX_LIST_BYTES, "a text list", &text, &len)) < 0)
        goto fail;
    L = (Lines){ text, text + len, 0 };
    while ((s = next_line(&L, &n))) {
        if (!n)
            continue;
        char *sp = s;
        while (*sp && !isspace((unsigned char)*sp))
            sp++;
        char *rest = sp;
        while (*rest && isspace((unsigned char)*rest))
            rest++;
        size_t plen = (size_t)(sp - s);
        int32_t label;
        char *slash = memchr(s, '/', plen);
        if (subset == FV_SUBSET_TRAIN) {
            int64_t v;
            if (!*rest || parse_int(rest, &v) < 0) {
                ret = fv_error(FV_EINVAL, "%s:%lld: expected `<Class>/<video>.avi <label>`", lpath,
                               (long long)L.lineno);
                goto fail;
            }
            if (v < 1 || v > d->pub.num_classes) {
                ret = fv_error(FV_EINVAL, "%s:%lld: label %lld out of range 1..%d", lpath, (long long)L.lineno,
                               (long long)v, d->pub.num_classes);
                goto fail;
            }
            label = (int32_t)(v - 1);
        } else {
            if (*rest) {
                ret = fv_error(FV_EINVAL, "%s:%lld: expected `<Class>/<video>.avi` only", lpath,
                               (long long)L.lineno);
                goto fail;
            }
            if (!slash || slash == s) {
                ret = fv_error(FV_EINVAL, "%s:%lld: path without a class folder", lpath, (long long)L.lineno);
                goto fail;
            }
            label = find_class(d, s, (size_t)(slash - s));
            if (label < 0) {
                ret = fv_error(FV_EINVAL, "%s:%lld: class folder '%.*s' is not in classInd.txt", lpath,
                               (long long)L.lineno, (int)(slash - s), s);
                goto fail;
            }
        }
        if ((ret = ds_add_entry(d, s, plen, label)) < 0)
            goto fail;
    }
    if (d->pub.num_entries == 0) {
        ret = fv_error(FV_EINVAL, "%s: no videos", lpath);
        goto fail;
    }
    char desc[64];
    snprintf(desc, sizeof(desc), "ucf101 split %d %s", split, subset == FV_SUBSET_TRAIN ? "train" : "test");
    if ((ret = set_names(d, "ucf101", desc)) < 0 || (ret = ds_finish(d)) < 0)
        goto fail;
    *out = &d->pub;
    d = NULL;
    ret = 0;
fail:
    fv_free(text);
    fv_free(dir);
    fv_free(cpath);
    fv_free(lpath);
    if (d) {
        FvDataset *p = &d->pub;
        fv_dataset_free(&p);
    }
    return ret;
}

/* ------------------------------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fv_dataset_load_hmdb51(FvDataset **out, const char *split_dir, int32_t split, FvSubset subset)
{
    DIR *dh = NULL;
    char **names = NULL, *text = NULL, *path = NULL;
    size_t nnames = 0, cap = 0;
    Dataset *d = NULL;
    int ret;
    if (!out || !split_dir)
        return fv_error(FV_EINVAL, "fv_dataset_load_hmdb51: NULL argument");
    *out = NULL;
    if (split < 1 || split > 3)
        return fv_error(FV_EINVAL, "%s: HMDB51 split must be 1, 2 or 3, not %d", split_dir, split);
    if (subset != FV_SUBSET_TEST && subset != FV_SUBSET_TRAIN)
        return fv_error(FV_EINVAL, "fv_dataset_load_hmdb51: bad subset %d", (int)subset);

    if (!(dh = opendir(split_dir))) {
        ret = fv_error(errno == ENOENT ? FV_ENOENT : FV_EIO, "%s: %s", split_dir, strerror(errno));
        goto fail;
    }
    char suffix[32];
    snprintf(suffix, sizeof(suffix), "_test_split%d.txt", split);
    size_t slen = strlen(suffix);
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t l = strlen(de->d_name);
        if (l <= slen || strcmp(de->d_name + l - slen, suffix))
            continue;
        if ((ret = grow((void **)&names, sizeof(char *), nnames, &cap, nnames + 1)) < 0) {
            fv_error(ret, "%s: out of memory", split_dir);
            goto fail;
        }
        if (!(names[nnames] = fv_malloc(l - slen + 1))) {
            ret = fv_error(FV_ENOMEM, "%s: out of memory", split_dir);
            goto fail;
        }
        memcpy(names[nnames], de->d_name, l - slen);
        names[nnames++][l - slen] = '\0';
    }
    if (!nnames) {
        ret = fv_error(FV_EINVAL, "%s: no <class>%s files", split_dir, suffix);
        goto fail;
    }
    /* class index = alphabetical order, the convention of every HMDB51 loader */
    qsort(names, nnames, sizeof(*names), cmp_str);
    if (!(d = ds_new())) {
        ret = FV_ENOMEM;
        goto fail;
    }
    d->pub.named = 1; /* official splits name their classes: matched to the model by name */
    for (size_t c = 0; c < nnames; c++)
        if ((ret = ds_add_class(d, names[c], strlen(names[c]))) < 0)
            goto fail;
    const char want = subset == FV_SUBSET_TRAIN ? '1' : '2';
    for (size_t c = 0; c < nnames; c++) {
        char fname[512];
        snprintf(fname, sizeof(fname), "%s%s", names[c], suffix);
        fv_free(path);
        if (!(path = fv_path_join(split_dir, fname))) {
            ret = fv_error(FV_ENOMEM, "%s: out of memory", split_dir);
            goto fail;
        }
        size_t len, n;
        fv_free(text);
        text = NULL;
        if ((ret = fv_read_file(path, MAX_LIST_BYTES, "a text list", &text, &len)) < 0)
            goto fail;
        Lines L = { text, text + len, 0 };
        char *s;
        while ((s = next_line(&L, &n))) {
            if (!n)
                continue;
            char *sp = s;
            while (*sp && !isspace((unsigned char)*sp))
                sp++;
            char *rest = sp;
            while (*rest && isspace((unsigned char)*rest))
                rest++;
            if (rest[0] < '0' || rest[0] > '2' || rest[1] != '\0' || sp == s) {
                ret = fv_error(FV_EINVAL, "%s:%lld: expected `<video>.avi <0|1|2>`", path, (long long)L.lineno);
                goto fail;
            }
            if (rest[0] != want)
                continue;
            char vpath[1024];
            int m = snprintf(vpath, sizeof(vpath), "%s/%.*s", names[c], (int)(sp - s), s);
            if (m < 0 || (size_t)m >= sizeof(vpath)) {
                ret = fv_error(FV_EINVAL, "%s:%lld: video name too long", path, (long long)L.lineno);
                goto fail;
            }
            if ((ret = ds_add_entry(d, vpath, (size_t)m, (int32_t)c)) < 0)
                goto fail;
        }
    }
    if (d->pub.num_entries == 0) {
        ret = fv_error(FV_EINVAL, "%s: no %s videos in split %d", split_dir,
                       subset == FV_SUBSET_TRAIN ? "train" : "test", split);
        goto fail;
    }
    char desc[64];
    snprintf(desc, sizeof(desc), "hmdb51 split %d %s", split, subset == FV_SUBSET_TRAIN ? "train" : "test");
    if ((ret = set_names(d, "hmdb51", desc)) < 0 || (ret = ds_finish(d)) < 0)
        goto fail;
    *out = &d->pub;
    d = NULL;
    ret = 0;
fail:
    if (dh)
        closedir(dh);
    for (size_t c = 0; c < nnames; c++)
        fv_free(names[c]);
    fv_free(names);
    fv_free(text);
    fv_free(path);
    if (d) {
        FvDataset *p = &d->pub;
        fv_dataset_free(&p);
    }
    return ret;
}

/* ------------------------------------------------------------------------------------------------ */

int fv_dataset_load_list(FvDataset **out, const char *list_path, int32_t label_base, const char *classes_path)
{
    char *text = NULL, *ctext = NULL;
    Dataset *d = NULL;
    size_t len, n;
    int ret;
    if (!out || !list_path)
        return fv_error(FV_EINVAL, "fv_dataset_load_list: NULL argument");
    *out = NULL;
    if (label_base != 0 && label_base != 1)
        return fv_error(FV_EINVAL, "%s: label base must be 0 or 1, not %d", list_path, label_base);
    if (!(d = ds_new()))
        return FV_ENOMEM;

    if (classes_path) {
        if ((ret = fv_read_file(classes_path, MAX_LIST_BYTES, "a text list", &ctext, &len)) < 0)
            goto fail;
        Lines L = { ctext, ctext + len, 0 };
        char *s;
        int64_t blank = 0;
        while ((s = next_line(&L, &n))) {
            if (!n) {
                if (!blank)
                    blank = L.lineno;
                continue;
            }
            /* a blank line inside the file would shift every later class index */
            if (blank) {
                ret = fv_error(FV_EINVAL, "%s:%lld: empty class name", classes_path, (long long)blank);
                goto fail;
            }
            if (d->hcap && d->hexact[hash_find(d, d->hexact, 0, s, n)] >= 0) {
                ret = fv_error(FV_EINVAL, "%s:%lld: class '%s' listed twice", classes_path, (long long)L.lineno, s);
                goto fail;
            }
            if ((ret = ds_add_class(d, s, n)) < 0)
                goto fail;
        }
        if (!d->pub.num_classes) {
            ret = fv_error(FV_EINVAL, "%s: no classes", classes_path);
            goto fail;
        }
        d->pub.named = 1;
    }

    if ((ret = fv_read_file(list_path, MAX_LIST_BYTES, "a text list", &text, &len)) < 0)
        goto fail;
    Lines L = { text, text + len, 0 };
    char *s;
    int64_t max_label = -1;
    int header = 0;
    while ((s = next_line(&L, &n))) {
        if (!n || s[0] == '#')
            continue;
        char *sep = s + n;
        while (sep > s && !isspace((unsigned char)sep[-1]) && sep[-1] != ',')
            sep--;
        char *lab = sep;
        char *pe = sep;
        while (pe > s && (isspace((unsigned char)pe[-1]) || pe[-1] == ','))
            pe--;
        int64_t v;
        if (sep == s || pe == s || parse_int(lab, &v) < 0) {
            if (d->pub.num_entries == 0 && !header && sep != s) {
                /* the first line of a CSV may be a header ("path,label") */
                header = 1;
                continue;
            }
            ret = fv_error(FV_EINVAL, "%s:%lld: expected `<path> <label>` or `<path>,<label>`", list_path,
                           (long long)L.lineno);
            goto fail;
        }
        if (v < label_base) {
            ret = fv_error(FV_EINVAL, "%s:%lld: label %lld below the label base %d", list_path,
                           (long long)L.lineno, (long long)v, label_base);
            goto fail;
        }
        v -= label_base;
        if (d->pub.named && v >= d->pub.num_classes) {
            ret = fv_error(FV_EINVAL, "%s:%lld: label %lld but %s has %d classes", list_path,
                           (long long)L.lineno, (long long)(v + label_base), classes_path, d->pub.num_classes);
            goto fail;
        }
        if (v > 1000000) {
            ret = fv_error(FV_EINVAL, "%s:%lld: label %lld is implausibly large", list_path, (long long)L.lineno,
                           (long long)v);
            goto fail;
        }
        if (v > max_label)
            max_label = v;
        if ((ret = ds_add_entry(d, s, (size_t)(pe - s), (int32_t)v)) < 0)
            goto fail;
    }
    if (d->pub.num_entries == 0) {
        ret = fv_error(FV_EINVAL, "%s: no videos", list_path);
        goto fail;
    }
    if (!d->pub.named) {
        for (int64_t c = 0; c <= max_label; c++) {
            char nm[32];
            int m = snprintf(nm, sizeof(nm), "class_%lld", (long long)c);
            if ((ret = ds_add_class(d, nm, (size_t)m)) < 0)
                goto fail;
        }
    }
    const char *base = strrchr(list_path, '/');
    char desc[300];
    snprintf(desc, sizeof(desc), "list %s", base ? base + 1 : list_path);
    if ((ret = set_names(d, "list", desc)) < 0 || (ret = ds_finish(d)) < 0)
        goto fail;
    *out = &d->pub;
    d = NULL;
    ret = 0;
fail:
    fv_free(text);
    fv_free(ctext);
    if (d) {
        FvDataset *p = &d->pub;
        fv_dataset_free(&p);
    }
    return ret;
}

uint64_t fv_dataset_hash(const FvDataset *ds)
{
    uint64_t h = 0xcbf29ce484222325ull;
#define FNV(byte) (h = (h ^ (uint8_t)(byte)) * 0x100000001b3ull)
    if (!ds)
        return 0;
    for (int32_t c = 0; c < ds->num_classes; c++) {
        for (const char *p = ds->classes[c]; *p; p++)
            FNV(*p);
        FNV('\n');
    }
    for (int64_t i = 0; i < ds->num_entries; i++) {
        for (const char *p = ds->entries[i].path; *p; p++)
            FNV(*p);
        FNV('\t');
        for (int b = 0; b < 4; b++)
            FNV((uint32_t)ds->entries[i].label >> (8 * b));
        FNV('\n');
    }
#undef FNV
    return h;
}

/* ------------------------------------------------------------------------------------------------ */
/* Label matching                                                                                    */
/* ------------------------------------------------------------------------------------------------ */

size_t fv_label_normalize(const char *name, char *out, size_t n)
{
    size_t k = 0;
    if (!out || !n)
        return 0;
    /* with separators dropped, splitting CamelCase into words only amounts to lowercasing */
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p && k + 1 < n; p++)
        if (isalnum(*p) || *p >= 0x80)
            out[k++] = (char)tolower(*p);
    out[k] = '\0';
    return k;
}

void fv_label_match_default_settings(FvLabelMatchSettings *s)
{
    if (s)
        memset(s, 0, sizeof(*s));
}

/* Model label index for a name: exact, then normalised; -1 none, -2 ambiguous. */
static int32_t lookup_model_label(const char *name, const char *const *labels, int32_t nl)
{
    for (int32_t j = 0; j < nl; j++)
        if (labels[j] && !strcmp(labels[j], name))
            return j;
    char a[512], b[512];
    int32_t found = -1;
    fv_label_normalize(name, a, sizeof(a));
    if (!a[0])
        return -1;
    for (int32_t j = 0; j < nl; j++) {
        if (!labels[j])
            continue;
        fv_label_normalize(labels[j], b, sizeof(b));
        if (!strcmp(a, b)) {
            if (found >= 0)
                return -2;
            found = j;
        }
    }
    return found;
}

static int32_t lookup_class(const FvDataset *ds, const char *name)
{
    for (int32_t c = 0; c < ds->num_classes; c++)
        if (!strcmp(ds->classes[c], name))
            return c;
    char a[512], b[512];
    fv_label_normalize(name, a, sizeof(a));
    for (int32_t c = 0; c < ds->num_classes; c++) {
        fv_label_normalize(ds->classes[c], b, sizeof(b));
        if (a[0] && !strcmp(a, b))
            return c;
    }
    return -1;
}

/* Resolve the model side of a label map entry: a name, or a 0-based index when no label has that name. */
static int32_t map_target(const char *label, const char *const *labels, int32_t nl)
{
    int32_t j = lookup_model_label(label, labels, nl);
    int64_t v;
    if (j == -1 && parse_int(label, &v) == 0 && v < nl)
        j = (int32_t)v;
    return j;
}

static int load_label_map(const char *path, const FvDataset *ds, const char *const *labels, int32_t nl,
                          int32_t *map)
{
    char *text = NULL;
    json_t *root = NULL;
    size_t len, n;
    int ret = fv_read_file(path, MAX_LIST_BYTES, "a text list", &text, &len);
    if (ret < 0)
        return ret;
    char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '{') {
        json_error_t jerr;
        root = json_loads(p, 0, &jerr);
        if (!root || !json_is_object(root)) {
            ret = fv_error(FV_EINVAL, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
            goto fail;
        }
        const char *key;
        json_t *val;
        json_object_foreach(root, key, val) {
            int32_t c = lookup_class(ds, key), j;
            if (c < 0)
                continue;
            if (json_is_integer(val)) {
                json_int_t v = json_integer_value(val);
                j = v >= 0 && v < nl ? (int32_t)v : -1;
            } else if (json_is_string(val)) {
                j = map_target(json_string_value(val), labels, nl);
            } else {
                ret = fv_error(FV_EINVAL, "%s: \"%s\": the model label must be a string or an index", path, key);
                goto fail;
            }
            if (j < 0) {
                ret = fv_error(FV_EINVAL, "%s: \"%s\": model label %s %s", path, key,
                               json_is_string(val) ? json_string_value(val) : "index",
                               j == -2 ? "is ambiguous" : "does not exist");
                goto fail;
            }
            map[c] = j;
        }
    } else {
        Lines L = { text, text + len, 0 };
        char *s;
        while ((s = next_line(&L, &n))) {
            if (!n || s[0] == '#')
                continue;
            char *sep = strchr(s, '\t');
            if (!sep) {
                sep = s;
                while (*sep && !isspace((unsigned char)*sep))
                    sep++;
            }
            char *rest = sep;
            while (*rest && isspace((unsigned char)*rest))
                rest++;
            char *e = sep;
            while (e > s && isspace((unsigned char)e[-1]))
                e--;
            *e = '\0';
            if (!*rest || !*s) {
                ret = fv_error(FV_EINVAL, "%s:%lld: expected `<dataset class> <model label>`", path,
                               (long long)L.lineno);
                goto fail;
            }
            int32_t c = lookup_class(ds, s);
            if (c < 0)
                continue;
            int32_t j = map_target(rest, labels, nl);
            if (j < 0) {
                ret = fv_error(FV_EINVAL, "%s:%lld: model label '%s' %s", path, (long long)L.lineno, rest,
                               j == -2 ? "is ambiguous (several labels normalise to it)" : "does not exist");
                goto fail;
            }
            map[c] = j;
        }
    }
    ret = 0;
fail:
    json_decref(root);
    fv_free(text);
    return ret;
}

int fv_label_match(const FvDataset *ds, const char *const *model_labels, int32_t num_labels,
                   const FvLabelMatchSettings *s, int32_t *map)
{
    FvLabelMatchSettings def;
    if (!ds || !map || num_labels <= 0 || (!model_labels && !(s && s->by_index) && ds->named))
        return fv_error(FV_EINVAL, "fv_label_match: invalid argument");
    if (!s) {
        fv_label_match_default_settings(&def);
        s = &def;
    }
    if (s->by_index || !ds->named) {
        if (s->by_index && ds->num_classes != num_labels)
            return fv_error(FV_EINVAL, "labels by index: the dataset has %d classes but the model %d labels",
                            ds->num_classes, num_labels);
        if (ds->num_classes > num_labels)
            return fv_error(FV_EINVAL, "%s: labels go up to %d but the model has %d labels", ds->description,
                            ds->num_classes - 1, num_labels);
        for (int32_t c = 0; c < ds->num_classes; c++)
            map[c] = c;
        return 0;
    }
    for (int32_t c = 0; c < ds->num_classes; c++)
        map[c] = -1;
    if (s->label_map_path) {
        int ret = load_label_map(s->label_map_path, ds, model_labels, num_labels, map);
        if (ret < 0)
            return ret;
    }
    int32_t unmatched = 0;
    char list[700];
    size_t off = 0;
    list[0] = '\0';
    for (int32_t c = 0; c < ds->num_classes; c++) {
        if (map[c] >= 0)
            continue;
        int32_t j = lookup_model_label(ds->classes[c], model_labels, num_labels);
        if (j == -2)
            return fv_error(FV_EINVAL, "class '%s' matches several model labels once normalised: give a label "
                            "map", ds->classes[c]);
        if (j >= 0) {
            map[c] = j;
            continue;
        }
        if (off < sizeof(list) - 64) {
            int m = snprintf(list + off, sizeof(list) - off, "%s%s", unmatched ? ", " : "", ds->classes[c]);
            off += m > 0 ? (size_t)m : 0;
            if (off >= sizeof(list))
                off = sizeof(list) - 1;
        } else if (off < sizeof(list) - 1) {
            off += (size_t)snprintf(list + off, sizeof(list) - off, ", ...");
            off = sizeof(list) - 1;
        }
        unmatched++;
    }
    if (unmatched)
        return fv_error(FV_EINVAL, "%d of %d %s classes match no model label: %s (give a label map file, or "
                        "labels by index when the model has one label per class)", unmatched, ds->num_classes,
                        ds->name, list);
    return 0;
}
