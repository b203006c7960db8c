/* Safetensors reader/writer: round trip, every header rule with its error, F16/BF16 conversion, and a
 * fixed-seed mutation fuzz loop that must never crash (run it under ASan/UBSan too). All inputs are
 * built here. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"
#include "model/safetensors.h"
#include "testutil.h"

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    g_dir = fvt_tmpdir();
    return g_dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fvt_rmtree(g_dir);
    free(g_dir);
    return 0;
}

/* A file made of an explicit 8-byte length, header bytes and data bytes. */
static char *write_raw_len(const char *name, uint64_t hlen, const void *hdr, size_t hdr_bytes, const void *data,
                           size_t ndata)
{
    char *path = fvt_join(g_dir, name);
    size_t n = 8 + hdr_bytes + ndata;
    uint8_t *buf = malloc(n + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8, hdr, hdr_bytes);
    if (ndata)
        memcpy(buf + 8 + hdr_bytes, data, ndata);
    assert_int_equal(fvt_write_file(path, buf, n), 0);
    free(buf);
    return path;
}

static char *write_raw(const char *name, const char *hdr, const void *data, size_t ndata)
{
    return write_raw_len(name, strlen(hdr), hdr, strlen(hdr), data, ndata);
}

/* fv_st_open must fail with @code and a message naming the file and containing @needle. */
static void expect_open_error(const char *path, int code, const char *needle)
{
    FvSafetensors *st = (FvSafetensors *)0x1;
    int ret = fv_st_open(&st, path);
    const char *msg = fv_last_error();
    printf("  %s -> %d: %s\n", strrchr(path, '/') + 1, ret, msg);
    assert_int_equal(ret, code);
    assert_null(st);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, needle));
    assert_null(strchr(msg, '\n'));
}

static void test_roundtrip(void **state)
{
    (void)state;
    float a[6] = { 1, -2, 3.5f, 1e-30f, INFINITY, -0.0f };
    float b[3] = { 7, 8, 9 };
    float c[1] = { 42 };
    FvStWriteTensor t[4] = {
        { .name = "layer.a", .ndim = 2, .shape = { 2, 3 }, .data = a },
        { .name = "b", .ndim = 1, .shape = { 3 }, .data = b },
        { .name = "scalar", .ndim = 0, .data = c },
        { .name = "empty", .ndim = 2, .shape = { 0, 5 }, .data = NULL },
    };
    const char *keys[] = { "format", "note" };
    const char *vals[] = { "fibvid", "caf\xc3\xa9 \"quoted\"" };
    char *path = fvt_join(g_dir, "rt.safetensors");
    assert_int_equal(fv_st_write(path, t, 4, keys, vals, 2), 0);

    /* header padded so the data section (and the F32 tensors) start 8-aligned; no temp file left behind */
    size_t n;
    uint8_t *raw = (uint8_t *)fvt_read_file(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(n, 8 + hlen + (6 + 3 + 1) * 4);
    free(raw);
    DIR *d = opendir(g_dir);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_null(strstr(de->d_name, ".tmp"));
    closedir(d);

    FvSafetensors *st = NULL;
    assert_int_equal(fv_st_open(&st, path), 0);
    assert_int_equal(fv_st_count(st), 4);
    assert_string_equal(fv_st_path(st), path);
    assert_string_equal(fv_st_metadata(st, "format"), "fibvid");
    assert_string_equal(fv_st_metadata(st, "note"), vals[1]);
    assert_null(fv_st_metadata(st, "nope"));
    assert_null(fv_st_find(st, "nope"));
    assert_null(fv_st_tensor(st, 4));
    /* tensors come in data order: the order they were written */
    assert_string_equal(fv_st_tensor(st, 0)->name, "layer.a");
    const FvTensorInfo *ti = fv_st_find(st, "layer.a");
    assert_non_null(ti);
    assert_int_equal(ti->dtype, FV_DT_F32);
    assert_string_equal(ti->dtype_name, "F32");
    assert_int_equal(ti->ndim, 2);
    assert_int_equal(ti->shape[0], 2);
    assert_int_equal(ti->shape[1], 3);
    assert_int_equal(ti->begin, 0);
    assert_int_equal(ti->end, 24);

    const float *out = NULL;
    assert_int_equal(fv_st_get_f32(st, "layer.a", 2, (int64_t[]){ 2, 3 }, NULL, &out), 0); /* in place */
    assert_ptr_equal(out, ti->data);
    assert_int_equal(memcmp(out, a, sizeof(a)), 0);
    assert_int_equal(fv_st_get_f32(st, "b", 1, (int64_t[]){ 3 }, NULL, &out), 0);
    double diff = fvt_max_abs_diff(out, b, 3);
    printf("max abs diff %g\n", diff);
    assert_true(diff == 0);
    assert_int_equal(fv_st_get_f32(st, "scalar", 0, NULL, NULL, &out), 0);
    assert_true(out[0] == 42.0f);
    assert_int_equal(fv_st_find(st, "empty")->end - fv_st_find(st, "empty")->begin, 0);

    /* lookup errors name the file and the tensor */
    assert_int_equal(fv_st_get_f32(st, "missing.weight", 1, (int64_t[]){ 3 }, NULL, &out), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "missing tensor \"missing.weight\""));
    assert_non_null(strstr(fv_last_error(), path));
    assert_int_equal(fv_st_get_f32(st, "layer.a", 2, (int64_t[]){ 3, 2 }, NULL, &out), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "\"layer.a\" has shape [2, 3], expected [3, 2]"));
    assert_int_equal(fv_st_get_f32(st, "layer.a", 1, (int64_t[]){ 6 }, NULL, &out), FV_EINVAL);
    fv_st_close(&st);
    assert_null(st);
    fv_st_close(&st); /* NULL is fine */

    /* overwriting replaces the file atomically */
    assert_int_equal(fv_st_write(path, t + 1, 1, NULL, NULL, 0), 0);
    assert_int_equal(fv_st_open(&st, path), 0);
    assert_int_equal(fv_st_count(st), 1);
    assert_null(fv_st_metadata(st, "format"));
    fv_st_close(&st);
    free(path);
}

static void test_write_errors(void **state)
{
    (void)state;
    float x[2] = { 1, 2 };
    FvStWriteTensor dup[2] = {
        { .name = "x", .ndim = 1, .shape = { 2 }, .data = x },
        { .name = "x", .ndim = 1, .shape = { 2 }, .data = x },
    };
    char *path = fvt_join(g_dir, "w.safetensors");
    assert_int_equal(fv_st_write(path, dup, 2, NULL, NULL, 0), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "given twice"));
    FvStWriteTensor meta = { .name = "__metadata__", .ndim = 1, .shape = { 2 }, .data = x };
    assert_int_equal(fv_st_write(path, &meta, 1, NULL, NULL, 0), FV_EINVAL);
    FvStWriteTensor neg = { .name = "n", .ndim = 1, .shape = { -2 }, .data = x };
    assert_int_equal(fv_st_write(path, &neg, 1, NULL, NULL, 0), FV_EINVAL);
    FvStWriteTensor bad = { .name = "bad\xff", .ndim = 1, .shape = { 2 }, .data = x };
    assert_int_equal(fv_st_write(path, &bad, 1, NULL, NULL, 0), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "UTF-8"));
    /* nothing was written by the failures */
    FvSafetensors *st = NULL;
    assert_int_equal(fv_st_open(&st, path), FV_ENOENT);
    char *nodir = fvt_join(g_dir, "no/such/dir.safetensors");
    assert_int_equal(fv_st_write(nodir, dup, 1, NULL, NULL, 0), FV_ENOENT);
    assert_non_null(strstr(fv_last_error(), nodir));
    free(nodir);
    free(path);
}

static void test_corruptions(void **state)
{
    (void)state;
    uint8_t data[64] = { 0 };
    struct {
        const char *name, *hdr;
        size_t ndata;
        int code;
        const char *needle;
    } cases[] = {
        { "not_object", "[1, 2]", 0, FV_EINVAL, "not a JSON object" },
        { "string", "\"abc\"", 0, FV_EINVAL, "not a JSON object" },
        { "empty_header", "", 0, FV_EINVAL, "not a JSON object" },
        { "malformed", "{\"a\": {\"dtype\": \"F32\",", 0, FV_EINVAL, "not valid JSON" },
        { "trailing", "{} x", 0, FV_EINVAL, "not valid JSON" },
        { "duplicate", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, FV_EINVAL, "duplicate" },
        { "entry_not_object", "{\"a\": 5}", 0, FV_EINVAL, "\"a\": entry is not an object" },
        { "no_dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FV_EINVAL, "missing dtype" },
        { "unknown_dtype", "{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "unknown dtype \"Q8\"" },
        { "dtype_type", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "dtype is not a string" },
        { "no_shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, FV_EINVAL, "missing shape" },
        { "shape_type", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "shape is not a list" },
        { "shape_neg", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "non-negative integers" },
        { "shape_float", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "non-negative integers" },
        { "shape_dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
          FV_EINVAL, "9 dimensions" },
        { "shape_overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
                            "\"data_offsets\":[0,4]}}", 4, FV_ERANGE, "overflows" },
        { "size_overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
                           "\"data_offsets\":[0,4]}}", 4, FV_ERANGE, "overflows" },
        { "no_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, FV_EINVAL, "missing data_offsets" },
        { "offsets_one", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, FV_EINVAL,
          "not [begin, end]" },
        { "offsets_neg", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, FV_EINVAL,
          "not [begin, end]" },
        { "begin_gt_end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, FV_EINVAL,
          "begin > end" },
        { "size_mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "span 4 bytes but shape x F32 needs 8" },
        { "bf16_size", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "needs 6" },
        { "truncated_data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, FV_ERANGE,
          "past the end of the data section" },
        { "out_of_range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[60,64]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[64,68]}}", 64, FV_ERANGE,
          "\"b\": data_offsets [64, 68] past the end" },
        { "overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, FV_EINVAL,
          "\"a\" and \"b\" overlap" },
        { "same_range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FV_EINVAL, "overlap" },
        { "gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, FV_EINVAL,
          "gap in the data section: bytes [4, 8)" },
        { "leading_gap", "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, FV_EINVAL,
          "gap" },
        { "trailing_bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, FV_EINVAL,
          "not fully covered: tensors end at byte 4 of 8" },
        { "no_tensors_with_data", "{}", 4, FV_EINVAL, "not fully covered" },
        { "meta_value", "{\"__metadata__\":{\"k\":1}}", 0, FV_EINVAL, "__metadata__ value of \"k\" is not a string" },
        { "meta_type", "{\"__metadata__\":[\"k\"]}", 0, FV_EINVAL, "__metadata__ must be an object" },
        { "non_utf8", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FV_EINVAL,
          "not valid UTF-8 (byte 3" },
        { "overlong_utf8", "{\"\xc0\xaf\":{}}", 0, FV_EINVAL, "UTF-8" },
        { "surrogate_utf8", "{\"\xed\xa0\x80\":{}}", 0, FV_EINVAL, "UTF-8" },
        { "cut_utf8", "{\"a\":1}\xe2\x82", 0, FV_EINVAL, "UTF-8" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = write_raw(cases[i].name, cases[i].hdr, data, cases[i].ndata);
        expect_open_error(p, cases[i].code, cases[i].needle);
        free(p);
    }

    /* the length field itself */
    char *p = fvt_join(g_dir, "empty");
    assert_int_equal(fvt_write_file(p, "", 0), 0);
    expect_open_error(p, FV_EIO, "too short");
    free(p);
    p = fvt_join(g_dir, "five");
    assert_int_equal(fvt_write_file(p, "\x02\0\0\0\0", 5), 0);
    expect_open_error(p, FV_EIO, "5 bytes, too short");
    free(p);
    p = write_raw_len("hlen_past_end", 100, "{}", 2, NULL, 0);
    expect_open_error(p, FV_EIO, "header length 100 is larger than the rest of the file");
    free(p);
    p = write_raw_len("hlen_absurd", (uint64_t)1 << 62, "{}", 2, NULL, 0);
    expect_open_error(p, FV_EINVAL, "absurd");
    free(p);
    p = write_raw_len("hlen_max", UINT64_MAX, "{}", 2, NULL, 0);
    expect_open_error(p, FV_EINVAL, "absurd");
    free(p);

    p = fvt_join(g_dir, "does_not_exist.safetensors");
    expect_open_error(p, FV_ENOENT, "cannot open");
    free(p);
    expect_open_error(g_dir, -EISDIR, "not a regular file");
    /* a FIFO must be refused, not block the open */
    p = fvt_join(g_dir, "fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    expect_open_error(p, FV_EINVAL, "not a regular file");
    free(p);
}

static void test_valid_variants(void **state)
{
    (void)state;
    uint8_t data[16] = { 0 };
    FvSafetensors *st = NULL;
    /* padding spaces, null metadata, zero-size tensors, dtypes fibvid does not compute with, unknown entry keys */
    char *p = write_raw("variants", "{\"__metadata__\":null,\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                                    "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16],\"x\":1}}      ",
                        data, 16);
    assert_int_equal(fv_st_open(&st, p), 0);
    assert_int_equal(fv_st_count(st), 2);
    const FvTensorInfo *ti = fv_st_find(st, "i");
    assert_int_equal(ti->dtype, FV_DT_OTHER);
    assert_string_equal(ti->dtype_name, "I64");
    const float *out;
    float dst[2];
    assert_int_equal(fv_st_get_f32(st, "i", 1, (int64_t[]){ 2 }, dst, &out), FV_ENOTSUP);
    assert_non_null(strstr(fv_last_error(), "\"i\" has dtype I64"));
    assert_non_null(strstr(fv_last_error(), p));
    fv_st_close(&st);
    free(p);

    /* an empty file with just "{}" is a valid (empty) safetensors file */
    p = write_raw("empty_ok", "{}", NULL, 0);
    assert_int_equal(fv_st_open(&st, p), 0);
    assert_int_equal(fv_st_count(st), 0);
    fv_st_close(&st);
    free(p);
}

static float f32_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_half_conversion(void **state)
{
    (void)state;
    static const struct { uint16_t h; float want; } f16[] = {
        { 0x3c00, 1.0f },  { 0xc000, -2.0f }, { 0x7bff, 65504.0f }, { 0x3555, 0.333251953125f },
        { 0x0001, 5.9604644775390625e-08f }, /* smallest subnormal, 2^-24 */
        { 0x03ff, 6.0975551605224609e-05f }, /* largest subnormal, 1023 * 2^-24 */
        { 0x8001, -5.9604644775390625e-08f },
        { 0x0400, 6.103515625e-05f },        /* smallest normal, 2^-14 */
        { 0x0000, 0.0f },  { 0x7c00, INFINITY }, { 0xfc00, -INFINITY },
    };
    static const struct { uint16_t h; float want; } bf16[] = {
        { 0x3f80, 1.0f }, { 0xc040, -3.0f }, { 0x7f80, INFINITY }, { 0xff80, -INFINITY },
        { 0x0001, 9.18354961579912115600575419705e-41f }, /* subnormal */
        { 0x3eab, 0.333984375f },
    };
    const size_t n16 = sizeof(f16) / sizeof(f16[0]), nb = sizeof(bf16) / sizeof(bf16[0]);
    /* F16 block, then BF16 block (with NaN and -0 appended to both) */
    uint8_t data[64];
    size_t pos = 0;
    for (size_t i = 0; i < n16; i++, pos += 2) {
        data[pos] = (uint8_t)f16[i].h;
        data[pos + 1] = (uint8_t)(f16[i].h >> 8);
    }
    const uint16_t extra16[2] = { 0x7e00, 0x8000 }, extrab[2] = { 0x7fc0, 0x8000 };
    for (int i = 0; i < 2; i++, pos += 2) {
        data[pos] = (uint8_t)extra16[i];
        data[pos + 1] = (uint8_t)(extra16[i] >> 8);
    }
    size_t bstart = pos;
    for (size_t i = 0; i < nb; i++, pos += 2) {
        data[pos] = (uint8_t)bf16[i].h;
        data[pos + 1] = (uint8_t)(bf16[i].h >> 8);
    }
    for (int i = 0; i < 2; i++, pos += 2) {
        data[pos] = (uint8_t)extrab[i];
        data[pos + 1] = (uint8_t)(extrab[i] >> 8);
    }
    char hdr[512];
    snprintf(hdr, sizeof(hdr),
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[%zu],\"data_offsets\":[0,%zu]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}}",
             n16 + 2, bstart, nb + 2, bstart, pos);
    char *p = write_raw("half", hdr, data, pos);
    FvSafetensors *st = NULL;
    assert_int_equal(fv_st_open(&st, p), 0);

    float out16[16], outb[16];
    const float *o = NULL;
    int64_t s16 = (int64_t)n16 + 2, sb = (int64_t)nb + 2;
    assert_int_equal(fv_st_get_f32(st, "h", 1, &s16, NULL, NULL), 1); /* conversion needed */
    assert_int_equal(fv_st_get_f32(st, "h", 1, &s16, out16, &o), 0);
    assert_ptr_equal(o, out16);
    assert_int_equal(fv_st_get_f32(st, "b", 1, &sb, outb, &o), 0);
    double d = 0;
    for (size_t i = 0; i < n16; i++) {
        if (isinf(f16[i].want))
            assert_true(out16[i] == f16[i].want);
        else
            d = fmax(d, fabs((double)out16[i] - (double)f16[i].want));
    }
    for (size_t i = 0; i < nb; i++) {
        if (isinf(bf16[i].want))
            assert_true(outb[i] == bf16[i].want);
        else
            d = fmax(d, fabs((double)outb[i] - (double)bf16[i].want));
    }
    printf("max abs diff %g\n", d);
    assert_true(d == 0);
    /* the conversion is exact: compare bits too (subnormals must not flush to zero) */
    assert_true(out16[4] == f32_bits(0x33800000u));
    assert_true(outb[4] == f32_bits(0x00010000u));
    assert_true(isnan(out16[n16]) && isnan(outb[nb]));
    assert_true(out16[n16 + 1] == 0.0f && signbit(out16[n16 + 1]));
    assert_true(outb[nb + 1] == 0.0f && signbit(outb[nb + 1]));
    fv_st_close(&st);
    free(p);

    /* F32 data at an odd offset cannot be used in place: it is copied */
    uint8_t udata[12];
    float vals[3] = { 1.5f, -2.25f, 1e-40f };
    memcpy(udata, vals, 12);
    char uh[128];
    snprintf(uh, sizeof(uh), "{\"u\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}");
    while ((8 + strlen(uh)) % 4 != 1) /* data at an odd offset of the page-aligned mapping */
        strcat(uh, " ");
    p = write_raw("unaligned", uh, udata, 12);
    assert_int_equal(fv_st_open(&st, p), 0);
    int64_t s3 = 3;
    float copy[3];
    assert_int_equal(fv_st_get_f32(st, "u", 1, &s3, NULL, NULL), 1);
    assert_int_equal(fv_st_get_f32(st, "u", 1, &s3, copy, &o), 0);
    assert_ptr_equal(o, copy);
    assert_int_equal(memcmp(copy, vals, 12), 0);
    fv_st_close(&st);
    free(p);
}

/* Random byte mutations and truncations of a valid file: fv_st_open may accept or refuse, but must not
 * crash, and every refusal is a one-line message naming the file. */
static void test_fuzz(void **state)
{
    (void)state;
    float a[12], b[5];
    for (int i = 0; i < 12; i++)
        a[i] = (float)i;
    for (int i = 0; i < 5; i++)
        b[i] = -(float)i;
    FvStWriteTensor t[2] = {
        { .name = "w", .ndim = 2, .shape = { 3, 4 }, .data = a },
        { .name = "bias", .ndim = 1, .shape = { 5 }, .data = b },
    };
    const char *k[] = { "format" }, *v[] = { "fibvid" };
    char *base = fvt_join(g_dir, "fuzz_base.safetensors");
    assert_int_equal(fv_st_write(base, t, 2, k, v, 1), 0);
    size_t n;
    uint8_t *orig = (uint8_t *)fvt_read_file(base, &n);
    uint8_t *buf = malloc(n + 16);
    char *p = fvt_join(g_dir, "fuzz.safetensors");
    uint64_t rng = 12345;
    int accepted = 0, refused = 0;
    const char alphabet[] = "{}[],:\"0123456789-. eE\\FBI";
    for (int it = 0; it < 2000; it++) {
        memcpy(buf, orig, n);
        size_t len = n;
        int nmut = 1 + (int)(fv_rand_u64(&rng) % 4);
        for (int m = 0; m < nmut; m++) {
            uint64_t r = fv_rand_u64(&rng);
            size_t pos = (size_t)(r % len);
            switch ((r >> 32) % 5) {
            case 0: buf[pos] = (uint8_t)(r >> 40); break;                         /* random byte */
            case 1: buf[pos] = (uint8_t)alphabet[(r >> 40) % (sizeof(alphabet) - 1)]; break; /* JSON-ish */
            case 2: len = pos; break;                                             /* truncate */
            case 3: buf[(r >> 40) % 8] ^= (uint8_t)(1u << ((r >> 48) % 8)); break; /* length field bit */
            default: if (pos > 8) buf[pos] = buf[pos - 1]; break;                 /* repeat a byte */
            }
            if (len == 0)
                break;
        }
        assert_int_equal(fvt_write_file(p, buf, len), 0);
        FvSafetensors *st = NULL;
        int ret = fv_st_open(&st, p);
        if (ret == 0) {
            accepted++;
            for (size_t i = 0; i < fv_st_count(st); i++) {
                const FvTensorInfo *ti = fv_st_tensor(st, i);
                int64_t cnt = 1;
                for (int32_t dd = 0; dd < ti->ndim; dd++)
                    cnt *= ti->shape[dd];
                float *dst = cnt > 0 && cnt < 4096 ? malloc((size_t)cnt * sizeof(float)) : NULL;
                const float *o;
                if (dst || cnt == 0)
                    fv_st_get_f32(st, ti->name, ti->ndim, ti->shape, dst, &o);
                free(dst);
            }
            fv_st_close(&st);
        } else {
            refused++;
            assert_true(ret < 0);
            assert_null(st);
            assert_non_null(strstr(fv_last_error(), p));
            assert_null(strchr(fv_last_error(), '\n'));
        }
    }
    printf("fuzz: %d accepted, %d refused\n", accepted, refused);
    assert_true(refused > 1000);
    free(orig);
    free(buf);
    free(p);
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_corruptions),
        cmocka_unit_test(test_valid_variants),
        cmocka_unit_test(test_half_conversion),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
