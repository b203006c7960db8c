/* libFuzzer harness: safetensors files (src/model/safetensors.c): fv_st_open validates the header and the
 * offsets; then every tensor is looked up by name and read as F32 with its own shape (F16/BF16 converted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/fibvid.h"
#include "model/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A file of one F16, one BF16 and one I64 tensor, written by hand (fv_st_write writes F32 only). */
static void seed_mixed(const char *dir)
{
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a.f16\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                      "\"b.bf16\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]},"
                      "\"c.i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[14,22]}}";
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    uint8_t buf[512];
    memset(buf, ' ', sizeof(buf));
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(padded >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    const uint8_t body[22] = { 0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c, 0x01, 0x00, /* 1, -2, inf, denormal */
                               0x80, 0x3f, 0xc0, 0x7f, 0x00, 0x80,             /* 1, nan, -0 */
                               7, 0, 0, 0, 0, 0, 0, 0 };
    memcpy(buf + 8 + padded, body, sizeof(body));
    const char *p[1] = { (const char *)buf };
    size_t l[1] = { 8 + padded + sizeof(body) };
    fz_write_seed(dir, "mixed_dtypes.safetensors", p, l, 1);
}

static void write_seeds(const char *dir)
{
    const float a[6] = { 1, 2, 3, 4, 5, 6 }, b[2] = { -1, 0.5f };
    FvStWriteTensor t[3] = {
        { .name = "w", .ndim = 2, .shape = { 2, 3 }, .data = a },
        { .name = "b", .ndim = 1, .shape = { 2 }, .data = b },
        { .name = "s", .ndim = 0, .data = b },
    };
    const char *keys[2] = { "format", "config" }, *vals[2] = { "pt", "{\"num_labels\": 2}" };
    char *path = fz_write(fz_dir(), "w.safetensors", "", 0);
    if (fv_st_write(path, t, 3, keys, vals, 2) < 0)
        abort();
    size_t len;
    char *text = fz_read(path, &len);
    const char *p[1] = { text };
    fz_write_seed(dir, "f32_meta.safetensors", p, &len, 1);
    free(text);
    if (fv_st_write(path, t, 0, NULL, NULL, 0) < 0)
        abort();
    text = fz_read(path, &len);
    p[0] = text;
    fz_write_seed(dir, "empty.safetensors", p, &len, 1);
    free(text);
    free(path);
    seed_mixed(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init_library();
    if (fz_seed_dir()) {
        write_seeds(fz_seed_dir());
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = fz_write(fz_dir(), "in.safetensors", data, size);
    FvSafetensors *st = NULL;
    if (fv_st_open(&st, path) == 0) {
        fv_st_metadata(st, "format");
        fv_st_metadata(st, "config");
        for (size_t i = 0; i < fv_st_count(st); i++) {
            const FvTensorInfo *ti = fv_st_tensor(st, i);
            if (fv_st_find(st, ti->name) != ti && !fv_st_find(st, ti->name))
                abort(); /* every listed tensor can be found by its name */
            int64_t n = 1;
            for (int32_t d = 0; d < ti->ndim; d++)
                n = ti->shape[d] > 0 && n <= (1 << 22) / ti->shape[d] ? n * ti->shape[d] : 0;
            if (n <= 0 || n > (1 << 20))
                continue;
            float *dst = NULL;
            const float *out = NULL;
            int need = fv_st_get_f32(st, ti->name, ti->ndim, ti->shape, NULL, &out);
            if (need > 0)
                dst = malloc(sizeof(float) * (size_t)n);
            if (need >= 0 && fv_st_get_f32(st, ti->name, ti->ndim, ti->shape, dst, &out) == 0) {
                volatile float sum = 0;
                for (int64_t k = 0; k < n; k++)
                    sum += out[k];
                (void)sum;
            }
            free(dst);
        }
        fv_st_close(&st);
    }
    free(path);
    return 0;
}
