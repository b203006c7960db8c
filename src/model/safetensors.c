/* Safetensors files: read-only memory mapping with every header rule validated, F16/BF16 -> F32
 * conversion, and atomic F32 writing. Format: u64 LE header length N, N bytes of UTF-8 JSON, data. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util/util.h"
#include "model/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fibvid maps F32 tensors in place and needs a little-endian host"
#endif

/* The reference implementation's limit: a larger header is a corrupt length, not a real model. */
#define FV_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

struct FvSafetensors {
    char *path;
    uint8_t *map;            /* whole file */
    size_t map_size;
    const uint8_t *data;     /* data section, after the header */
    size_t data_size;
    FvTensorInfo *tensors;   /* (n) in data order */
    size_t n;
    size_t *by_name;         /* (n) indices into tensors, sorted by name */
    char **meta_keys, **meta_values;
    size_t nmeta;
};

typedef struct DtypeDesc {
    const char *name;
    size_t size;
    FvDtype dt;
} DtypeDesc;

/* Every byte-addressable dtype the safetensors format defines. */
static const DtypeDesc g_dtypes[] = {
    { "F32", 4, FV_DT_F32 },   { "F16", 2, FV_DT_F16 },   { "BF16", 2, FV_DT_BF16 },
    { "F64", 8, FV_DT_OTHER }, { "I64", 8, FV_DT_OTHER }, { "I32", 4, FV_DT_OTHER },
    { "I16", 2, FV_DT_OTHER }, { "I8", 1, FV_DT_OTHER },  { "U64", 8, FV_DT_OTHER },
    { "U32", 4, FV_DT_OTHER }, { "U16", 2, FV_DT_OTHER }, { "U8", 1, FV_DT_OTHER },
    { "BOOL", 1, FV_DT_OTHER }, { "F8_E4M3", 1, FV_DT_OTHER }, { "F8_E5M2", 1, FV_DT_OTHER },
    { "F8_E8M0", 1, FV_DT_OTHER }, { "C64", 8, FV_DT_OTHER },
};

static const DtypeDesc *dtype_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(g_dtypes) / sizeof(g_dtypes[0]); i++)
        if (!strcmp(g_dtypes[i].name, name))
            return &g_dtypes[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Half-precision conversion */

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* inf / nan: keep the payload */
        return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in F32 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

static float bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

/* ---------------------------------------------------------------------------------------------- */
/* Reading */

/* Byte offset of the first invalid UTF-8 sequence, or -1 when @s is valid UTF-8 (no overlongs,
 * no surrogates, nothing above U+10FFFF). */
static int64_t utf8_invalid_at(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2; cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3; cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4; cp = c & 0x07;
        } else {
            return (int64_t)i;
        }
        if (n - i < len)
            return (int64_t)i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return (int64_t)i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return (int64_t)i;
        i += len;
    }
    return -1;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const FvTensorInfo *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_tensor_name(const FvTensorInfo *t, const char *name)
{
    return strcmp(t->name, name);
}

static int cmp_index_by_name(const void *a, const void *b, void *ctx)
{
    const FvTensorInfo *t = ctx;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* Read one JSON integer >= 0 into *out; 0 or -1. */
static int json_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_metadata(FvSafetensors *st, const json_t *meta)
{
    const char *path = st->path;
    if (json_is_null(meta))
        return 0;
    if (!json_is_object(meta))
        return fv_error(FV_EINVAL, "%s: __metadata__ must be an object of string -> string", path);
    size_t n = json_object_size(meta);
    if (n) {
        st->meta_keys = calloc(n, sizeof(char *));
        st->meta_values = calloc(n, sizeof(char *));
        if (!st->meta_keys || !st->meta_values)
            return fv_error(FV_ENOMEM, "%s: out of memory", path);
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)meta, key, val) {
        if (!json_is_string(val))
            return fv_error(FV_EINVAL, "%s: __metadata__ value of \"%s\" is not a string", path, key);
        st->meta_keys[st->nmeta] = strdup(key);
        st->meta_values[st->nmeta] = strdup(json_string_value(val));
        st->nmeta++;
        if (!st->meta_keys[st->nmeta - 1] || !st->meta_values[st->nmeta - 1])
            return fv_error(FV_ENOMEM, "%s: out of memory", path);
    }
    return 0;
}

static int parse_entry(FvSafetensors *st, const char *name, const json_t *e, FvTensorInfo *t)
{
    const char *path = st->path;
    if (!json_is_object(e))
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": entry is not an object", path, name);

    const json_t *jd = json_object_get(e, "dtype");
    if (!jd)
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": missing dtype", path, name);
    if (!json_is_string(jd))
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": dtype is not a string", path, name);
    const DtypeDesc *dd = dtype_lookup(json_string_value(jd));
    if (!dd)
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": unknown dtype \"%.16s\"", path, name,
                        json_string_value(jd));
    t->dtype = dd->dt;
    snprintf(t->dtype_name, sizeof(t->dtype_name), "%s", dd->name);

    const json_t *js = json_object_get(e, "shape");
    if (!js)
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": missing shape", path, name);
    if (!json_is_array(js))
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": shape is not a list", path, name);
    if (json_array_size(js) > FV_ST_MAX_DIMS)
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": shape has %zu dimensions (at most %d supported)", path,
                        name, json_array_size(js), FV_ST_MAX_DIMS);
    t->ndim = (int32_t)json_array_size(js);
    uint64_t count = 1;
    for (int32_t d = 0; d < t->ndim; d++) {
        uint64_t v;
        if (json_uint(json_array_get(js, (size_t)d), &v) || v > INT64_MAX)
            return fv_error(FV_EINVAL, "%s: tensor \"%s\": shape is not a list of non-negative integers", path,
                            name);
        t->shape[d] = (int64_t)v;
        if (__builtin_mul_overflow(count, v, &count))
            return fv_error(FV_ERANGE, "%s: tensor \"%s\": shape product overflows", path, name);
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(count, (uint64_t)dd->size, &nbytes))
        return fv_error(FV_ERANGE, "%s: tensor \"%s\": shape product overflows", path, name);

    const json_t *jo = json_object_get(e, "data_offsets");
    if (!jo)
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": missing data_offsets", path, name);
    uint64_t b, en;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || json_uint(json_array_get(jo, 0), &b) ||
        json_uint(json_array_get(jo, 1), &en))
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": data_offsets is not [begin, end] of non-negative integers",
                        path, name);
    if (b > en)
        return fv_error(FV_EINVAL, "%s: tensor \"%s\": data_offsets [%llu, %llu] has begin > end", path, name,
                        (unsigned long long)b, (unsigned long long)en);
    if (en - b != nbytes)
        return fv_error(FV_EINVAL,
                        "%s: tensor \"%s\": data_offsets span %llu bytes but shape x %s needs %llu", path,
                        name, (unsigned long long)(en - b), dd->name, (unsigned long long)nbytes);
    if (en > st->data_size)
        return fv_error(FV_ERANGE,
                        "%s: tensor \"%s\": data_offsets [%llu, %llu] past the end of the data section "
                        "(%zu bytes; file truncated?)", path, name, (unsigned long long)b,
                        (unsigned long long)en, st->data_size);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    t->data = st->data + t->begin;
    t->name = strdup(name);
    if (!t->name)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    return 0;
}

static int parse_header(FvSafetensors *st, const uint8_t *hdr, size_t hlen)
{
    const char *path = st->path;
    json_t *root = NULL;
    int ret;

    int64_t bad = utf8_invalid_at(hdr, hlen);
    if (bad >= 0)
        return fv_error(FV_EINVAL, "%s: header is not valid UTF-8 (byte %lld of the header)", path,
                        (long long)bad);
    size_t i = 0;
    while (i < hlen && (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == '\n' || hdr[i] == '\r'))
        i++;
    if (i == hlen || hdr[i] != '{')
        return fv_error(FV_EINVAL, "%s: header is not a JSON object", path);

    json_error_t jerr;
    root = json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fv_error(FV_EINVAL, "%s: header is not valid JSON: %s (line %d, column %d)", path, jerr.text,
                        jerr.line, jerr.column);
    if (!json_is_object(root)) {
        ret = fv_error(FV_EINVAL, "%s: header is not a JSON object", path);
        goto fail;
    }

    size_t cap = json_object_size(root);
    st->tensors = calloc(cap ? cap : 1, sizeof(*st->tensors));
    st->by_name = calloc(cap ? cap : 1, sizeof(*st->by_name));
    if (!st->tensors || !st->by_name) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if ((ret = parse_metadata(st, val)))
                goto fail;
            continue;
        }
        if ((ret = parse_entry(st, key, val, &st->tensors[st->n])))
            goto fail;
        st->n++;
    }

    /* The data section must be covered exactly: sorted by offset, each tensor starts where the last ended. */
    qsort(st->tensors, st->n, sizeof(*st->tensors), cmp_by_offset);
    size_t pos = 0;
    for (size_t k = 0; k < st->n; k++) {
        const FvTensorInfo *t = &st->tensors[k];
        if (t->begin < pos) {
            ret = fv_error(FV_EINVAL, "%s: tensors \"%s\" and \"%s\" overlap in the data section", path,
                           st->tensors[k - 1].name, t->name);
            goto fail;
        }
        if (t->begin > pos) {
            ret = fv_error(FV_EINVAL, "%s: gap in the data section: bytes [%zu, %zu) before tensor \"%s\" "
                           "belong to no tensor", path, pos, t->begin, t->name);
            goto fail;
        }
        pos = t->end;
    }
    if (pos != st->data_size) {
        ret = fv_error(FV_EINVAL, "%s: data section not fully covered: tensors end at byte %zu of %zu", path, pos,
                       st->data_size);
        goto fail;
    }
    for (size_t k = 0; k < st->n; k++)
        st->by_name[k] = k;
    qsort_r(st->by_name, st->n, sizeof(size_t), cmp_index_by_name, st->tensors);
    json_decref(root);
    return 0;

fail:
    json_decref(root);
    return ret;
}

int fv_st_open(FvSafetensors **out, const char *path)
{
    FvSafetensors *st = NULL;
    int fd = -1, ret;
    struct stat sb;

    if (!out || !path)
        return fv_error(FV_EINVAL, "fv_st_open: NULL argument");
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return fv_error(e == ENOENT ? FV_ENOENT : -e, "%s: cannot open: %s", path, strerror(e));
    }
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        ret = fv_error(S_ISDIR(sb.st_mode) ? -EISDIR : FV_EINVAL, "%s: not a regular file", path);
        goto fail;
    }
    st = calloc(1, sizeof(*st));
    if (!st || !(st->path = strdup(path))) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size < 8) {
        ret = fv_error(FV_EIO, "%s: file is %lld bytes, too short for a safetensors header (8-byte length)",
                       path, (long long)sb.st_size);
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        ret = fv_error(FV_ERANGE, "%s: file too large to map", path);
        goto fail;
    }
    st->map_size = (size_t)sb.st_size;
    void *map = mmap(NULL, st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        ret = fv_error(-errno, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    st->map = map;
    close(fd);
    fd = -1;

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->map[i];
    if (hlen > FV_ST_MAX_HEADER) {
        ret = fv_error(FV_EINVAL, "%s: header length %llu is absurd (limit %llu bytes): not a safetensors file?",
                       path, (unsigned long long)hlen, (unsigned long long)FV_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > st->map_size - 8) {
        ret = fv_error(FV_EIO, "%s: header length %llu is larger than the rest of the file (%zu bytes; "
                       "truncated?)", path, (unsigned long long)hlen, st->map_size - 8);
        goto fail;
    }
    st->data = st->map + 8 + hlen;
    st->data_size = st->map_size - 8 - (size_t)hlen;
    if ((ret = parse_header(st, st->map + 8, (size_t)hlen)))
        goto fail;
    *out = st;
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    fv_st_close(&st);
    return ret;
}

void fv_st_close(FvSafetensors **pst)
{
    if (!pst || !*pst)
        return;
    FvSafetensors *st = *pst;
    if (st->map)
        munmap(st->map, st->map_size);
    if (st->tensors)
        for (size_t i = 0; i < st->n; i++)
            free(st->tensors[i].name);
    free(st->tensors);
    free(st->by_name);
    for (size_t i = 0; i < st->nmeta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->path);
    free(st);
    *pst = NULL;
}

size_t fv_st_count(const FvSafetensors *st)
{
    return st ? st->n : 0;
}

const FvTensorInfo *fv_st_tensor(const FvSafetensors *st, size_t i)
{
    return st && i < st->n ? &st->tensors[i] : NULL;
}

const FvTensorInfo *fv_st_find(const FvSafetensors *st, const char *name)
{
    if (!st || !name)
        return NULL;
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const FvTensorInfo *t = &st->tensors[st->by_name[mid]];
        int c = cmp_tensor_name(t, name);
        if (!c)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *fv_st_metadata(const FvSafetensors *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (size_t i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta_keys[i], key))
            return st->meta_values[i];
    return NULL;
}

const char *fv_st_path(const FvSafetensors *st)
{
    return st ? st->path : NULL;
}

void fv_st_drop_pages(const FvSafetensors *st, const void *p, size_t n)
{
    const uint8_t *b = p;
    if (!st || !st->map || b < st->map || b + n > st->map + st->map_size)
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)b + page - 1) & ~(page - 1), hi = ((uintptr_t)b + n) & ~(page - 1);
    if (hi > lo) /* a read-only private mapping: the pages come back from the file if read again */
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void fv_st_drop_all(const FvSafetensors *st)
{
    if (st && st->map)
        madvise(st->map, st->map_size, MADV_DONTNEED);
}

static void format_shape(char *buf, size_t size, int32_t ndim, const int64_t *shape)
{
    size_t pos = 0;
    pos += (size_t)snprintf(buf, size, "[");
    for (int32_t d = 0; d < ndim && pos < size; d++)
        pos += (size_t)snprintf(buf + pos, size - pos, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (pos < size)
        snprintf(buf + pos, size - pos, "]");
}

int fv_st_get_f32(const FvSafetensors *st, const char *name, int32_t ndim, const int64_t *shape, float *dst,
                  const float **out)
{
    if (!st || !name || ndim < 0 || ndim > FV_ST_MAX_DIMS || (ndim && !shape))
        return fv_error(FV_EINVAL, "fv_st_get_f32: invalid argument");
    const FvTensorInfo *t = fv_st_find(st, name);
    if (!t)
        return fv_error(FV_EINVAL, "%s: missing tensor \"%s\"", st->path, name);
    int same = t->ndim == ndim;
    for (int32_t d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        char want[160], got[160];
        format_shape(want, sizeof(want), ndim, shape);
        format_shape(got, sizeof(got), t->ndim, t->shape);
        return fv_error(FV_EINVAL, "%s: tensor \"%s\" has shape %s, expected %s", st->path, name, got, want);
    }
    if (t->dtype == FV_DT_OTHER)
        return fv_error(FV_ENOTSUP, "%s: tensor \"%s\" has dtype %s; only F32, F16 and BF16 are supported",
                        st->path, name, t->dtype_name);

    size_t count = (t->end - t->begin) / (t->dtype == FV_DT_F32 ? 4 : 2);
    const uint8_t *src = t->data;
    int in_place = t->dtype == FV_DT_F32 && ((uintptr_t)src % sizeof(float)) == 0;
    if (!dst) {
        if (in_place && out)
            *out = (const float *)(const void *)src;
        return in_place ? 0 : 1;
    }
    if (in_place) {
        if (out)
            *out = (const float *)(const void *)src;
        return 0;
    }
    switch (t->dtype) {
    case FV_DT_F32:
        memcpy(dst, src, count * sizeof(float));
        break;
    case FV_DT_F16:
        for (size_t i = 0; i < count; i++)
            dst[i] = f16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        break;
    case FV_DT_BF16:
        for (size_t i = 0; i < count; i++)
            dst[i] = bf16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        break;
    default:
        break;
    }
    if (out)
        *out = dst;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Writing */

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fv_st_write(const char *path, const FvStWriteTensor *tensors, size_t n, const char *const *meta_keys,
                const char *const *meta_values, size_t nmeta)
{
    json_t *root = NULL;
    char *hdr = NULL, *tmp = NULL;
    int fd = -1, ret;

    if (!path || (n && !tensors) || (nmeta && (!meta_keys || !meta_values)))
        return fv_error(FV_EINVAL, "fv_st_write: NULL argument");
    root = json_object();
    if (!root) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (nmeta) {
        json_t *meta = json_object();
        if (!meta || json_object_set_new(root, "__metadata__", meta)) {
            ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        for (size_t i = 0; i < nmeta; i++) {
            json_t *v = json_string(meta_values[i]);
            if (!v || json_object_set_new(meta, meta_keys[i], v)) {
                ret = fv_error(FV_EINVAL, "%s: metadata \"%s\" is not valid UTF-8", path, meta_keys[i]);
                goto fail;
            }
        }
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const FvStWriteTensor *t = &tensors[i];
        if (!t->name || !strcmp(t->name, "__metadata__") || t->ndim < 0 || t->ndim > FV_ST_MAX_DIMS) {
            ret = fv_error(FV_EINVAL, "%s: tensor %zu: invalid name or number of dimensions", path, i);
            goto fail;
        }
        if (json_object_get(root, t->name)) {
            ret = fv_error(FV_EINVAL, "%s: tensor \"%s\" given twice", path, t->name);
            goto fail;
        }
        uint64_t count = 1;
        json_t *shape = json_array(), *offs = json_array(), *e = json_object();
        if (!shape || !offs || !e) {
            json_decref(shape);
            json_decref(offs);
            json_decref(e);
            ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        if (json_object_set_new(root, t->name, e)) {
            ret = fv_error(FV_EINVAL, "%s: tensor name \"%s\" is not valid UTF-8", path, t->name);
            goto fail;
        }
        for (int32_t d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || __builtin_mul_overflow(count, (uint64_t)t->shape[d], &count)) {
                ret = fv_error(FV_EINVAL, "%s: tensor \"%s\": invalid shape", path, t->name);
                goto fail;
            }
            json_array_append_new(shape, json_integer(t->shape[d]));
        }
        if (count > (uint64_t)INT64_MAX / 8 || (count && !t->data)) {
            ret = fv_error(FV_EINVAL, "%s: tensor \"%s\": invalid size or no data", path, t->name);
            goto fail;
        }
        json_array_append_new(offs, json_integer((json_int_t)pos));
        pos += count * 4;
        json_array_append_new(offs, json_integer((json_int_t)pos));
    }
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* Pad with spaces so the data section starts at a multiple of 8: F32 tensors can then be used in place. */
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7;
    char *h2 = realloc(hdr, padded + 1);
    if (!h2) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    hdr = h2;
    memset(hdr + hlen, ' ', padded - hlen);

    size_t plen = strlen(path);
    tmp = malloc(plen + 16);
    if (!tmp) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        ret = fv_error(e == ENOENT ? FV_ENOENT : -e, "%s: cannot create: %s", path, strerror(e));
        free(tmp);
        tmp = NULL;
        goto fail;
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int werr = write_all(fd, lenbuf, 8) || write_all(fd, hdr, padded);
    for (size_t i = 0; i < n && !werr; i++) {
        uint64_t count = 1;
        for (int32_t d = 0; d < tensors[i].ndim; d++)
            count *= (uint64_t)tensors[i].shape[d];
        if (count)
            werr = write_all(fd, tensors[i].data, (size_t)count * sizeof(float));
    }
    if (werr || fchmod(fd, 0644) || fsync(fd)) {
        ret = fv_error(fv_write_error_code(errno), "%s: write failed: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd)) {
        fd = -1;
        ret = fv_error(fv_write_error_code(errno), "%s: write failed: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path)) {
        ret = fv_error(-errno, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
        goto fail;
    }
    if ((ret = fv_fsync_dir_of(path)) < 0) {
        free(tmp);
        free(hdr);
        json_decref(root);
        return ret;
    }
    free(tmp);
    free(hdr);
    json_decref(root);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(hdr);
    json_decref(root);
    return ret;
}
