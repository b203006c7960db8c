/* Model loading and saving: fibvid single files and Hugging Face directories written by this test from a
 * random "test"-preset model; F16/BF16 weights; missing / misshapen / wrongly typed tensors; config.json
 * parsing (values, errors, preprocessor_config override, labels); presets and validation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "model/model_internal.h"
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

/* ---------------------------------------------------------------------------------------------- */
/* helpers */

typedef struct Tensor {
    char name[160];
    int32_t ndim;
    int64_t shape[FV_ST_MAX_DIMS];
    int64_t count;
    const float *data;
} Tensor;

typedef struct TensorList {
    Tensor t[512];
    size_t n;
} TensorList;

static int collect_visitor(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    TensorList *l = user;
    assert_true(l->n < 512);
    Tensor *t = &l->t[l->n++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (int32_t d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->count *= shape[d];
    }
    t->data = *slot;
    return 0;
}

static TensorList *collect(FvModel *m)
{
    TensorList *l = calloc(1, sizeof(*l));
    assert_int_equal(fv_model_visit_tensors(m, collect_visitor, l), 0);
    return l;
}

static FvModel *random_model(int qkv_bias)
{
    FvModelConfig c;
    assert_int_equal(fv_model_config_preset(&c, "test"), 0);
    c.qkv_bias = qkv_bias;
    FvModel *m = NULL;
    assert_int_equal(fv_model_create_random(&m, &c, 7), 0);
    return m;
}

/* Independent of the loader: the compiler's _Float16 and a bit-level BF16 rounding. */
static uint16_t to_f16(float f, float *back)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    *back = (float)h;
    return u;
}

static uint16_t to_bf16(float f, float *back)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even (no NaNs here) */
    uint16_t h = (uint16_t)(u >> 16);
    uint32_t b = (uint32_t)h << 16;
    memcpy(back, &b, 4);
    return h;
}

enum { W_F32, W_F16, W_BF16, W_I32, W_SKIP, W_BADSHAPE };

/* Write @l as model.safetensors with a per-tensor treatment; @expect receives what the loader should
 * produce for each tensor (the F16/BF16-rounded values). @extra adds an unexpected tensor. */
static void write_weights(const char *path, const TensorList *l, const int *how, float **expect, int extra)
{
    size_t hcap = 1 << 16, dcap = 1 << 20, hl = 0, dl = 0;
    char *hdr = malloc(hcap);
    uint8_t *data = malloc(dcap);
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{");
    for (size_t i = 0; i < l->n + (extra ? 1 : 0); i++) {
        const Tensor *t = i < l->n ? &l->t[i] : NULL;
        int h = t ? how[i] : W_F32;
        if (h == W_SKIP)
            continue;
        const char *dt = h == W_F16 ? "F16" : h == W_BF16 ? "BF16" : h == W_I32 ? "I32" : "F32";
        size_t esz = (h == W_F16 || h == W_BF16) ? 2 : 4;
        int64_t count = t ? t->count : 3;
        size_t begin = dl;
        assert_true(dl + (size_t)count * esz <= dcap);
        for (int64_t k = 0; k < count; k++) {
            float v = t ? t->data[k] : 1.0f, back = v;
            if (h == W_F16 || h == W_BF16) {
                uint16_t b = h == W_F16 ? to_f16(v, &back) : to_bf16(v, &back);
                memcpy(data + dl, &b, 2);
            } else if (h == W_I32) {
                int32_t iv = (int32_t)k;
                memcpy(data + dl, &iv, 4);
            } else {
                memcpy(data + dl, &v, 4);
            }
            dl += esz;
            if (t && expect)
                expect[i][k] = back;
        }
        hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", hl > 1 ? "," : "",
                               t ? t->name : "extra.unused", dt);
        if (t) {
            for (int32_t d = 0; d < t->ndim; d++)
                hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s%lld", d ? "," : "",
                                       (long long)(h == W_BADSHAPE && d == 0 ? t->shape[0] * 2 : t->shape[d]));
        } else {
            hl += (size_t)snprintf(hdr + hl, hcap - hl, "3");
        }
        if (h == W_BADSHAPE) { /* keep the file valid: the data must match the header's shape */
            assert_true(dl + (size_t)count * 4 <= dcap);
            memcpy(data + dl, t->data, (size_t)count * 4);
            dl += (size_t)count * 4;
        }
        hl += (size_t)snprintf(hdr + hl, hcap - hl, "],\"data_offsets\":[%zu,%zu]}", begin, dl);
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8)
        hdr[hl++] = ' ';
    size_t total = 8 + hl + dl;
    uint8_t *file = malloc(total);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(file + 8, hdr, hl);
    memcpy(file + 8 + hl, data, dl);
    assert_int_equal(fvt_write_file(path, file, total), 0);
    free(file);
    free(hdr);
    free(data);
}

static const char *g_test_config =
    "{\n"
    "  \"architectures\": [\"TimesformerForVideoClassification\"],\n"
    "  \"attention_type\": \"divided_space_time\",\n"
    "  \"hidden_act\": \"gelu\",\n"
    "  \"hidden_size\": 48,\n"
    "  \"image_size\": 32,\n"
    "  \"intermediate_size\": 192,\n"
    "  \"layer_norm_eps\": 1e-06,\n"
    "  \"num_attention_heads\": 3,\n"
    "  \"num_channels\": 3,\n"
    "  \"num_frames\": 4,\n"
    "  \"num_hidden_layers\": 2,\n"
    "  \"patch_size\": 16,\n"
    "  \"qkv_bias\": %s,\n"
    "  \"id2label\": {\"3\": \"dribbling\", \"0\": \"abseiling\", \"1\": \"air drumming\", \"4\": \"caf\xc3\xa9\", "
    "\"2\": \"answering \\\"questions\\\"\"},\n"
    "  \"label2id\": {\"abseiling\": 0},\n"
    "  \"model_type\": \"timesformer\",\n"
    "  \"torch_dtype\": \"float32\",\n"
    "  \"transformers_version\": \"4.40.0\"\n"
    "}\n";

/* A HF directory: config.json (optionally with qkv_bias false), optional preprocessor config, weights. */
static char *write_hf_dir(const char *name, const TensorList *l, const int *how, float **expect, int qkv_bias,
                          const char *pre, int extra)
{
    char *dir = fvt_join(g_dir, name);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg), g_test_config, qkv_bias ? "true" : "false");
    char *p = fvt_join(dir, "config.json");
    assert_int_equal(fvt_write_file(p, cfg, strlen(cfg)), 0);
    free(p);
    if (pre) {
        p = fvt_join(dir, "preprocessor_config.json");
        assert_int_equal(fvt_write_file(p, pre, strlen(pre)), 0);
        free(p);
    }
    p = fvt_join(dir, "model.safetensors");
    write_weights(p, l, how, expect, extra);
    free(p);
    return dir;
}

static void expect_load_error(const char *path, int code, const char *needle1, const char *needle2)
{
    FvModel *m = (FvModel *)0x1;
    int ret = fv_model_load(&m, path);
    printf("  -> %d: %s\n", ret, fv_last_error());
    assert_int_equal(ret, code);
    assert_null(m);
    assert_non_null(strstr(fv_last_error(), needle1));
    if (needle2)
        assert_non_null(strstr(fv_last_error(), needle2));
}

static int64_t expected_params_test_preset(int qkv_bias)
{
    const int64_t D = 48, I = 192, L = 5, P0 = 4, T = 4, C = 3, p = 16, layers = 2;
    int64_t emb = D + (1 + P0) * D + T * D + D * C * p * p + D;
    int64_t qkv = 3 * D * D + (qkv_bias ? 3 * D : 0);
    int64_t lin = D * D + D;
    int64_t layer = 2 * qkv + 3 * lin + (I * D + I) + (D * I + D) + 3 * 2 * D;
    return emb + layers * layer + 2 * D + L * D + L;
}

static void cfg_assert_equal(const FvModelConfig *a, const FvModelConfig *b)
{
    assert_int_equal(a->image_size, b->image_size);
    assert_int_equal(a->patch_size, b->patch_size);
    assert_int_equal(a->num_channels, b->num_channels);
    assert_int_equal(a->num_frames, b->num_frames);
    assert_int_equal(a->hidden_size, b->hidden_size);
    assert_int_equal(a->num_layers, b->num_layers);
    assert_int_equal(a->num_heads, b->num_heads);
    assert_int_equal(a->intermediate_size, b->intermediate_size);
    assert_int_equal(a->num_labels, b->num_labels);
    assert_true(a->layer_norm_eps == b->layer_norm_eps);
    assert_int_equal(a->qkv_bias, b->qkv_bias);
    for (int i = 0; i < 3; i++) {
        assert_true(a->image_mean[i] == b->image_mean[i]);
        assert_true(a->image_std[i] == b->image_std[i]);
    }
    assert_int_equal(a->short_side, b->short_side);
    assert_int_equal(a->sampling, b->sampling);
    assert_int_equal(a->sampling_rate, b->sampling_rate);
    assert_memory_equal(&a->spatial, &b->spatial, sizeof(a->spatial));
    assert_memory_equal(&a->temporal, &b->temporal, sizeof(a->temporal));
}

/* Every tensor of @m equals @want (or the F16/BF16-rounded @expect when given). */
static void assert_weights(FvModel *m, const TensorList *want, float **expect)
{
    TensorList *got = collect(m);
    assert_int_equal(got->n, want->n);
    double d = 0;
    for (size_t i = 0; i < got->n; i++) {
        assert_string_equal(got->t[i].name, want->t[i].name);
        assert_int_equal(got->t[i].count, want->t[i].count);
        assert_non_null(got->t[i].data);
        d = fmax(d, fvt_max_abs_diff(got->t[i].data, expect ? expect[i] : want->t[i].data,
                                     (size_t)got->t[i].count));
    }
    printf("max abs diff %g\n", d);
    assert_true(d == 0);
    free(got);
}

/* ---------------------------------------------------------------------------------------------- */
/* tests */

static void test_presets_validate(void **state)
{
    (void)state;
    FvModelConfig c;
    assert_int_equal(fv_model_config_preset(&c, "base"), 0);
    assert_int_equal(c.hidden_size, 768);
    assert_int_equal(c.num_layers, 12);
    assert_int_equal(c.num_heads, 12);
    assert_int_equal(c.intermediate_size, 3072);
    assert_int_equal(c.num_frames, 8);
    assert_int_equal(c.image_size, 224);
    assert_int_equal(c.patch_size, 16);
    assert_int_equal(c.num_labels, 400);
    assert_true(c.layer_norm_eps == 1e-6f);
    assert_true(c.image_mean[1] == 0.45f && c.image_std[2] == 0.225f);
    assert_int_equal(c.spatial.kind, FV_ATTN_DENSE);
    assert_int_equal(fv_model_config_validate(&c), 0);
    assert_int_equal(fv_model_config_preset(&c, "small"), 0);
    assert_int_equal(c.hidden_size, 384);
    assert_int_equal(c.num_heads, 6);
    assert_int_equal(c.intermediate_size, 1536);
    assert_int_equal(fv_model_config_preset(&c, "tiny"), 0);
    assert_int_equal(c.hidden_size, 192);
    assert_int_equal(c.num_heads, 3);
    assert_int_equal(c.intermediate_size, 768);
    assert_int_equal(fv_model_config_preset(&c, "test"), 0);
    assert_int_equal(c.hidden_size, 48);
    assert_int_equal(c.num_layers, 2);
    assert_int_equal(c.num_frames, 4);
    assert_int_equal(c.image_size, 32);
    assert_int_equal(c.num_labels, 5);
    assert_int_equal(fv_model_config_validate(&c), 0);
    assert_int_equal(fv_model_config_preset(&c, "huge"), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "unknown preset \"huge\""));

    FvAttnSettings a;
    fv_attn_default_settings(&a);
    assert_int_equal(a.kind, FV_ATTN_DENSE);
    assert_int_equal(a.variant, FV_FIB_MODIFIED);
    assert_int_equal(a.semantics, FV_FIB_ZERO);
    assert_int_equal(a.shuffle, 1);

    FvModelConfig b;
#define BAD(stmt, needle)                                                  \
    do {                                                                   \
        fv_model_config_preset(&b, "test");                                \
        stmt;                                                              \
        assert_int_equal(fv_model_config_validate(&b), FV_EINVAL);         \
        printf("  %s\n", fv_last_error());                                 \
        assert_non_null(strstr(fv_last_error(), needle));                  \
    } while (0)
    BAD(b.hidden_size = 50, "not a multiple of num_attention_heads");
    BAD(b.image_size = 40, "image_size 40 is not a multiple of patch_size 16");
    BAD(b.num_channels = 4, "num_channels must be 3");
    BAD(b.layer_norm_eps = 0, "layer_norm_eps");
    BAD(b.layer_norm_eps = NAN, "layer_norm_eps");
    BAD(b.num_labels = 0, "num_labels must be > 0");
    BAD(b.num_layers = -1, "num_hidden_layers");
    BAD(b.patch_size = 0, "patch_size");
    BAD(b.image_std[1] = 0, "image_std[1]");
    BAD(b.sampling_rate = 0, "fibvid_sampling_rate");
    BAD(b.short_side = -1, "fibvid_short_side");
    BAD((b.spatial.wmin = 9, b.spatial.wmax = 3), "spatial attention: wmin 9 > wmax 3");
    BAD(b.temporal.kind = (FvAttnKind)7, "temporal attention: invalid kind");
    BAD((b.image_size = 1 << 30, b.patch_size = 1), "image_size 1073741824 is above fibvid's limit 8192");
    BAD(b.num_labels = INT32_MAX, "num_labels 2147483647 is above fibvid's limit 100000");
#undef BAD
    /* issue 23, fault 1: fv_model_create_random got a small buffer for such a config and wrote past it */
    fv_model_config_preset(&b, "test");
    b.image_size = 1 << 30;
    b.patch_size = 1;
    FvModel *m = (FvModel *)0x1;
    assert_int_equal(fv_model_create_random(&m, &b, 1), FV_EINVAL);
    assert_null(m);
}

static void test_save_load_single(void **state)
{
    (void)state;
    FvModel *m = random_model(1);
    m->cfg.spatial.kind = FV_ATTN_FIB;
    m->cfg.spatial.semantics = FV_FIB_EXCLUDE;
    m->cfg.spatial.wmin = 3;
    m->cfg.spatial.wmax = 7;
    m->cfg.spatial.shuffle = 0;
    m->cfg.temporal.variant = FV_FIB_ORIGINAL;
    m->cfg.sampling = FV_SAMPLING_DENSE;
    m->cfg.sampling_rate = 32;
    m->cfg.short_side = 40;
    m->cfg.image_mean[0] = 0.485f;
    m->cfg.image_std[2] = 0.225f;
    free(m->labels[2]);
    m->labels[2] = strdup("label with \"quotes\" and caf\xc3\xa9");
    assert_int_equal(fv_model_num_params(m), expected_params_test_preset(1));

    char *path = fvt_join(g_dir, "single.safetensors");
    assert_int_equal(fv_model_save(m, path), 0);

    /* the file is plain safetensors with the documented metadata */
    FvSafetensors *st = NULL;
    assert_int_equal(fv_st_open(&st, path), 0);
    assert_string_equal(fv_st_metadata(st, "format"), "fibvid");
    assert_string_equal(fv_st_metadata(st, "format_version"), "1");
    assert_non_null(strstr(fv_st_metadata(st, "config"), "\"fibvid_spatial_attention\""));
    fv_st_close(&st);

    FvModel *l = NULL;
    assert_int_equal(fv_model_load(&l, path), 0);
    cfg_assert_equal(&l->cfg, &m->cfg);
    assert_int_equal(fv_model_num_params(l), expected_params_test_preset(1));
    for (int32_t i = 0; i < 5; i++)
        assert_string_equal(fv_model_label(l, i), fv_model_label(m, i));
    assert_null(fv_model_label(l, 5));
    /* F32 linear weights are read in place from the mapping; the small tensors (LayerNorm, biases, embeddings,
     * classifier) are copied, so that reading them does not map the page-cache folios around them */
    assert_non_null(l->owned);
    const float *own_lo = l->owned, *own_hi = l->owned + l->owned_floats;
    for (int32_t i = 0; i < l->cfg.num_layers; i++) {
        const FvLayerWeights *L = &l->w.layers[i];
        assert_true(L->ln1_w >= own_lo && L->ln1_w < own_hi);
        assert_true(L->fc1_b >= own_lo && L->fc1_b < own_hi);
        assert_false(L->fc1_w >= own_lo && L->fc1_w < own_hi);
        assert_false(L->qkv_w >= own_lo && L->qkv_w < own_hi);
    }
    assert_true(l->w.cls_token >= own_lo && l->w.cls_token < own_hi);
    TensorList *want = collect(m);
    assert_weights(l, want, NULL);
    free(want);

    /* saving a loaded model gives the same model again */
    char *path2 = fvt_join(g_dir, "single2.safetensors");
    assert_int_equal(fv_model_save(l, path2), 0);
    FvModel *l2 = NULL;
    assert_int_equal(fv_model_load(&l2, path2), 0);
    cfg_assert_equal(&l2->cfg, &m->cfg);
    want = collect(m);
    assert_weights(l2, want, NULL);
    free(want);
    fv_model_close(&l2);
    fv_model_close(&l);
    fv_model_close(&m);
    free(path2);
    free(path);
}

static void test_hf_dir(void **state)
{
    (void)state;
    FvModel *m = random_model(1);
    TensorList *l = collect(m);
    int how[512] = { 0 };
    const char *pre = "{\"image_processor_type\": \"VideoMAEImageProcessor\", \"image_mean\": [0.485, 0.456, 0.406],"
                      " \"image_std\": [0.229, 0.224, 0.225], \"size\": {\"shortest_edge\": 36},"
                      " \"crop_size\": {\"height\": 32, \"width\": 32}}";
    char *dir = write_hf_dir("hf", l, how, NULL, 1, pre, 1 /* an extra tensor, ignored as HF does */);
    FvModel *h = NULL;
    assert_int_equal(fv_model_load(&h, dir), 0);
    const FvModelConfig *c = fv_model_config(h);
    assert_int_equal(c->hidden_size, 48);
    assert_int_equal(c->num_labels, 5);
    assert_true(c->layer_norm_eps == 1e-6f);
    assert_true(c->image_mean[0] == 0.485f && c->image_mean[1] == 0.456f && c->image_mean[2] == 0.406f);
    assert_true(c->image_std[0] == 0.229f && c->image_std[2] == 0.225f);
    assert_int_equal(c->short_side, 36);
    assert_int_equal(c->sampling, FV_SAMPLING_UNIFORM);
    assert_int_equal(c->sampling_rate, 4);
    assert_int_equal(c->spatial.kind, FV_ATTN_DENSE);
    assert_int_equal(c->temporal.kind, FV_ATTN_DENSE);
    assert_string_equal(fv_model_label(h, 0), "abseiling");
    assert_string_equal(fv_model_label(h, 1), "air drumming");
    assert_string_equal(fv_model_label(h, 2), "answering \"questions\"");
    assert_string_equal(fv_model_label(h, 3), "dribbling");
    assert_string_equal(fv_model_label(h, 4), "caf\xc3\xa9");
    assert_int_equal(fv_model_num_params(h), expected_params_test_preset(1));
    assert_weights(h, l, NULL);
    fv_model_close(&h);
    free(dir);

    /* without a preprocessor config: the defaults */
    dir = write_hf_dir("hf_nopre", l, how, NULL, 1, NULL, 0);
    assert_int_equal(fv_model_load(&h, dir), 0);
    assert_true(fv_model_config(h)->image_mean[0] == 0.45f && fv_model_config(h)->image_std[0] == 0.225f);
    assert_int_equal(fv_model_config(h)->short_side, 0);
    fv_model_close(&h);
    free(dir);
    free(l);
    fv_model_close(&m);
}

static void test_half_weights(void **state)
{
    (void)state;
    FvModel *m = random_model(1);
    TensorList *l = collect(m);
    int how[512];
    float **expect = calloc(l->n, sizeof(float *));
    size_t n16 = 0, nb = 0;
    for (size_t i = 0; i < l->n; i++) {
        how[i] = (i % 3 == 0) ? W_F16 : (i % 3 == 1) ? W_BF16 : W_F32;
        n16 += how[i] == W_F16;
        nb += how[i] == W_BF16;
        expect[i] = malloc((size_t)l->t[i].count * sizeof(float));
    }
    char *dir = write_hf_dir("hf_half", l, how, expect, 1, NULL, 0);
    FvModel *h = NULL;
    assert_int_equal(fv_model_load(&h, dir), 0);
    printf("%zu F16 and %zu BF16 tensors\n", n16, nb);
    assert_non_null(h->owned);
    assert_true(h->owned_floats > 0);
    assert_weights(h, l, expect);
    /* the rounding really happened (the test would pass vacuously otherwise) */
    double d = fvt_max_abs_diff(expect[0], l->t[0].data, (size_t)l->t[0].count);
    assert_true(d > 0);
    assert_int_equal(fv_model_num_params(h), expected_params_test_preset(1));
    fv_model_close(&h);
    for (size_t i = 0; i < l->n; i++)
        free(expect[i]);
    free(expect);
    free(dir);
    free(l);
    fv_model_close(&m);
}

static void test_tensor_errors(void **state)
{
    (void)state;
    FvModel *m = random_model(1);
    TensorList *l = collect(m);
    int how[512] = { 0 };
    size_t victim = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, "timesformer.encoder.layer.1.temporal_dense.weight"))
            victim = i;
    assert_true(victim > 0);

    how[victim] = W_SKIP;
    char *dir = write_hf_dir("missing", l, how, NULL, 1, NULL, 0);
    expect_load_error(dir, FV_EINVAL, "missing tensor \"timesformer.encoder.layer.1.temporal_dense.weight\"",
                      "model.safetensors");
    free(dir);

    how[victim] = W_BADSHAPE;
    dir = write_hf_dir("badshape", l, how, NULL, 1, NULL, 0);
    expect_load_error(dir, FV_EINVAL, "\"timesformer.encoder.layer.1.temporal_dense.weight\" has shape [96, 48], "
                      "expected [48, 48]", "model.safetensors");
    free(dir);

    how[victim] = W_I32;
    dir = write_hf_dir("baddtype", l, how, NULL, 1, NULL, 0);
    expect_load_error(dir, FV_ENOTSUP, "\"timesformer.encoder.layer.1.temporal_dense.weight\" has dtype I32",
                      "model.safetensors");
    free(dir);

    /* qkv_bias true in the config but the file has no qkv biases (a qkv_bias=false model) */
    how[victim] = W_F32;
    for (size_t i = 0; i < l->n; i++)
        if (strstr(l->t[i].name, "qkv.bias"))
            how[i] = W_SKIP;
    dir = write_hf_dir("nobias_cfgtrue", l, how, NULL, 1, NULL, 0);
    expect_load_error(dir, FV_EINVAL, "missing tensor \"timesformer.encoder.layer.0.attention.attention.qkv.bias\"",
                      NULL);
    free(dir);
    free(l);
    fv_model_close(&m);
}

static void test_no_qkv_bias(void **state)
{
    (void)state;
    FvModel *m = random_model(0);
    TensorList *l = collect(m);
    int how[512] = { 0 };
    char *dir = write_hf_dir("nobias", l, how, NULL, 0, NULL, 0);
    FvModel *h = NULL;
    assert_int_equal(fv_model_load(&h, dir), 0);
    assert_int_equal(fv_model_config(h)->qkv_bias, 0);
    assert_null(h->w.layers[0].qkv_b);
    assert_null(h->w.layers[1].t_qkv_b);
    assert_int_equal(fv_model_num_params(h), expected_params_test_preset(0));
    assert_weights(h, l, NULL);
    fv_model_close(&h);
    free(dir);
    free(l);
    fv_model_close(&m);
}

static void test_config_values(void **state)
{
    (void)state;
    FvModelConfig c;
    char **labels = NULL;
    /* HF defaults fill what is absent; num_labels without id2label names the classes class_<i> */
    assert_int_equal(fv_config_parse("{\"num_labels\": 3, \"hidden_act\": \"gelu_python\"}", NULL, "cfg", &c,
                                     &labels), 0);
    assert_int_equal(c.hidden_size, 768);
    assert_int_equal(c.num_frames, 8);
    assert_int_equal(c.num_labels, 3);
    assert_string_equal(labels[2], "class_2");
    for (int i = 0; i < 3; i++)
        free(labels[i]);
    free(labels);

    /* fibvid keys, and image_mean/std in config.json overridden by the preprocessor config */
    const char *cfg = "{\"num_labels\": 2, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": 0.5,"
                      " \"fibvid_sampling\": \"dense\", \"fibvid_sampling_rate\": 32, \"fibvid_short_side\": 256,"
                      " \"fibvid_spatial_attention\": {\"kind\": \"fib\", \"variant\": \"original\","
                      " \"semantics\": \"exclude\", \"wmin\": 5, \"wmax\": 65, \"shuffle\": false},"
                      " \"fibvid_temporal_attention\": {\"kind\": \"fib\"}}";
    assert_int_equal(fv_config_parse(cfg, "{\"image_mean\": [0.1, 0.2, 0.3], \"size\": {\"shortest_edge\": 224}}",
                                     "cfg", &c, &labels), 0);
    assert_true(c.image_mean[0] == 0.1f && c.image_mean[2] == 0.3f);
    assert_true(c.image_std[0] == 0.5f && c.image_std[2] == 0.5f);
    assert_int_equal(c.sampling, FV_SAMPLING_DENSE);
    assert_int_equal(c.sampling_rate, 32);
    assert_int_equal(c.short_side, 256); /* fibvid_short_side wins over the processor's shortest_edge */
    assert_int_equal(c.spatial.kind, FV_ATTN_FIB);
    assert_int_equal(c.spatial.variant, FV_FIB_ORIGINAL);
    assert_int_equal(c.spatial.semantics, FV_FIB_EXCLUDE);
    assert_int_equal(c.spatial.wmin, 5);
    assert_int_equal(c.spatial.wmax, 65);
    assert_int_equal(c.spatial.shuffle, 0);
    assert_int_equal(c.temporal.kind, FV_ATTN_FIB);
    assert_int_equal(c.temporal.variant, FV_FIB_MODIFIED);
    assert_int_equal(c.temporal.shuffle, 1);

    /* serialise -> parse gives the same config and labels */
    char *names[2] = { "a \"b\"", "\xe6\x97\xa5" };
    char *json = fv_config_to_json(&c, names);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"layer_norm_eps\": 1e-6"));
    FvModelConfig c2;
    for (int i = 0; i < 2; i++)
        free(labels[i]);
    free(labels);
    assert_int_equal(fv_config_parse(json, NULL, "roundtrip", &c2, &labels), 0);
    cfg_assert_equal(&c2, &c);
    assert_string_equal(labels[0], names[0]);
    assert_string_equal(labels[1], names[1]);
    for (int i = 0; i < 2; i++)
        free(labels[i]);
    free(labels);
    free(json);
}

static void test_config_errors(void **state)
{
    (void)state;
    struct { const char *json, *pre; int code; const char *needle; } cases[] = {
        { "{\"num_labels\": 2, \"hidden_act\": \"relu\"}", NULL, FV_ENOTSUP, "\"hidden_act\" is \"relu\"" },
        { "{\"num_labels\": 2, \"attention_type\": \"joint_space_time\"}", NULL, FV_ENOTSUP,
          "\"attention_type\" is \"joint_space_time\"" },
        { "{\"num_labels\": 2, \"image_size\": \"224\"}", NULL, FV_EINVAL, "\"image_size\" must be an integer" },
        { "{\"num_labels\": 2, \"image_size\": 224.0}", NULL, FV_EINVAL, "\"image_size\" must be an integer" },
        { "{\"num_labels\": 2, \"num_frames\": 99999999999}", NULL, FV_EINVAL, "\"num_frames\" is out of range" },
        { "{\"num_labels\": 2, \"qkv_bias\": 1}", NULL, FV_EINVAL, "\"qkv_bias\" must be true or false" },
        { "{\"num_labels\": 2, \"layer_norm_eps\": \"small\"}", NULL, FV_EINVAL, "\"layer_norm_eps\" must be a number" },
        { "{\"num_labels\": 2, \"layer_norm_eps\": 0}", NULL, FV_EINVAL, "cfg: layer_norm_eps must be > 0" },
        { "{\"num_labels\": 2, \"hidden_size\": 100}", NULL, FV_EINVAL,
          "cfg: hidden_size 100 is not a multiple of num_attention_heads 12" },
        { "{\"num_labels\": 2, \"num_channels\": 1}", NULL, FV_EINVAL, "num_channels must be 3" },
        { "{\"num_labels\": 2, \"image_mean\": [0.5, 0.5]}", NULL, FV_EINVAL, "\"image_mean\" must be a list of 3" },
        { "{\"num_labels\": 2, \"fibvid_sampling\": \"random\"}", NULL, FV_EINVAL,
          "\"fibvid_sampling\" is \"random\"; must be \"uniform\" or \"dense\"" },
        { "{\"num_labels\": 2, \"fibvid_sampling_rate\": 0}", NULL, FV_EINVAL, "fibvid_sampling_rate must be > 0" },
        { "{\"num_labels\": 2, \"fibvid_spatial_attention\": \"fib\"}", NULL, FV_EINVAL,
          "\"fibvid_spatial_attention\" must be an object" },
        { "{\"num_labels\": 2, \"fibvid_spatial_attention\": {\"kind\": \"sparse\"}}", NULL, FV_EINVAL,
          "fibvid_spatial_attention: \"kind\" is \"sparse\"" },
        { "{\"num_labels\": 2, \"fibvid_temporal_attention\": {\"wmin\": \"3\"}}", NULL, FV_EINVAL,
          "fibvid_temporal_attention: \"wmin\" must be an integer" },
        { "{\"num_labels\": 2, \"fibvid_temporal_attention\": {\"shufle\": true}}", NULL, FV_EINVAL,
          "unknown key \"shufle\"" },
        { "{\"num_labels\": 2, \"fibvid_spatial_attention\": {\"kind\": \"fib\", \"wmin\": 9, \"wmax\": 2}}", NULL,
          FV_EINVAL, "wmin 9 > wmax 2" },
        { "{\"hidden_size\": 768}", NULL, FV_EINVAL, "neither \"id2label\" nor \"num_labels\"" },
        { "{\"num_labels\": 0}", NULL, FV_EINVAL, "\"num_labels\" must be a positive integer" },
        { "{\"id2label\": {\"0\": \"a\", \"2\": \"b\"}}", NULL, FV_EINVAL, "key \"2\" is not a class index in 0..1" },
        { "{\"id2label\": {\"0\": \"a\", \"00\": \"b\"}}", NULL, FV_EINVAL, "class 0 twice" },
        { "{\"id2label\": {\"0\": \"a\", \"x\": \"b\"}}", NULL, FV_EINVAL, "key \"x\"" },
        { "{\"id2label\": {\"0\": 5}}", NULL, FV_EINVAL, "value of \"0\" is not a string" },
        { "{\"id2label\": [\"a\"]}", NULL, FV_EINVAL, "\"id2label\" must be an object" },
        { "{\"id2label\": {\"0\": \"a\"}, \"num_labels\": 3}", NULL, FV_EINVAL, "\"num_labels\" is 3 but" },
        { "{\"num_labels\": 2,\n \"image_size\": 224,,\n}", NULL, FV_EINVAL, "cfg: invalid JSON" },
        { "{\"num_labels\": 2, \"a\": 1, \"a\": 2}", NULL, FV_EINVAL, "duplicate" },
        { "[1, 2]", NULL, FV_EINVAL, "cfg: not a JSON object" },
        { "{\"num_labels\": 2}", "{\"image_std\": [0, 1, 1]}", FV_EINVAL, "image_std[0] must be > 0" },
        { "{\"num_labels\": 2}", "{\"image_mean\": \"x\"}", FV_EINVAL, "cfg (preprocessor config): \"image_mean\"" },
        { "{\"num_labels\": 2}", "{oops", FV_EINVAL, "cfg (preprocessor config): invalid JSON" },
        /* PSViT (SPEC 4.3): a typo in a fibvid key is refused, not ignored; invalid pooling and sharing name the
         * layer */
        { "{\"num_labels\": 2, \"fibvid_token_pooling\": []}", NULL, FV_EINVAL, "unknown key \"fibvid_token_pooling\"" },
        { "{\"num_labels\": 2, \"fibvid_token_pool\": {\"after\": 1}}", NULL, FV_EINVAL, "must be a list" },
        { "{\"num_labels\": 2, \"fibvid_token_pool\": [{\"after\": 1, \"kind\": \"mean\"}]}", NULL, FV_EINVAL,
          "\"kind\" is \"mean\"" },
        { "{\"num_labels\": 2, \"fibvid_token_pool\": [{\"after\": 1}]}", NULL, FV_EINVAL, "needs both" },
        { "{\"num_labels\": 2, \"fibvid_token_pool\": [{\"after\": 1, \"kind\": \"avg\", \"size\": 2}]}", NULL,
          FV_EINVAL, "unknown key \"size\"" },
        { "{\"num_labels\": 2, \"fibvid_token_pool\": [{\"after\": 11, \"kind\": \"avg\"}]}", NULL, FV_EINVAL,
          "pooling after layer 11" },
        { "{\"num_labels\": 2, \"fibvid_token_pool\": [{\"after\": 3, \"kind\": \"avg\"}, {\"after\": 2, "
          "\"kind\": \"max\"}]}", NULL, FV_EINVAL, "strictly increasing (2 after 3)" },
        { "{\"num_labels\": 2, \"fibvid_share_spatial\": [0]}", NULL, FV_EINVAL,
          "fibvid_share_spatial: layer 0 has no previous layer" },
        { "{\"num_labels\": 2, \"fibvid_share_temporal\": [12]}", NULL, FV_EINVAL,
          "fibvid_share_temporal: layer 12 does not exist" },
        { "{\"num_labels\": 2, \"fibvid_share_spatial\": [3, 3]}", NULL, FV_EINVAL, "lists layer 3 twice" },
        { "{\"num_labels\": 2, \"fibvid_token_pool\": [{\"after\": 4, \"kind\": \"conv\"}], "
          "\"fibvid_share_spatial\": [5]}", NULL, FV_EINVAL, "layer 5 cannot share layer 4's attention: tokens are pooled" },
        { "{\"num_labels\": 2, \"fibvid_temporal_attention\": {\"kind\": \"sima\"}, \"fibvid_share_temporal\": [6]}",
          NULL, FV_EINVAL, "layer 6 cannot share layer 5's sima attention" },
        /* issue 23, faults 1, 2 and 4: sizes whose products overflowed (a heap overflow in fv_model_create_random,
         * signed overflow in the loader) and a label count that allocated 24 GB are refused by their bounds */
        { "{\"num_labels\": 2, \"image_size\": 1073741824, \"patch_size\": 1}", NULL, FV_EINVAL,
          "image_size 1073741824 is above fibvid's limit 8192" },
        { "{\"num_labels\": 2, \"image_size\": 4096, \"patch_size\": 1}", NULL, FV_EINVAL,
          "4096 patches per side, above fibvid's limit 256" },
        { "{\"num_labels\": 2147483647}", NULL, FV_EINVAL, "\"num_labels\" 2147483647 is above fibvid's limit" },
        { "{\"num_labels\": 2, \"hidden_size\": 1048576, \"num_attention_heads\": 1}", NULL, FV_EINVAL,
          "hidden_size 1048576 is above" },
        { "{\"num_labels\": 2, \"num_frames\": 100000}", NULL, FV_EINVAL, "num_frames 100000 is above" },
        { "{\"num_labels\": 2, \"num_hidden_layers\": 2000000}", NULL, FV_EINVAL, "num_hidden_layers 2000000 is above" },
        { "{\"num_labels\": 2, \"intermediate_size\": 2000000000}", NULL, FV_EINVAL, "intermediate_size 2000000000" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        FvModelConfig c;
        char **labels = (char **)0x1;
        int ret = fv_config_parse(cases[i].json, cases[i].pre, "cfg", &c, &labels);
        printf("  %zu -> %d: %s\n", i, ret, fv_last_error());
        assert_int_equal(ret, cases[i].code);
        assert_null(labels);
        assert_non_null(strstr(fv_last_error(), cases[i].needle));
        assert_true(strncmp(fv_last_error(), "cfg", 3) == 0);
    }
    /* jansson's line and column reach the message */
    FvModelConfig c;
    char **labels;
    assert_int_equal(fv_config_parse("{\"num_labels\": 2,\n \"image_size\": 224,,\n}", NULL, "cfg", &c, &labels),
                     FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "(line 2, column"));
}

static void test_path_errors(void **state)
{
    (void)state;
    char *p = fvt_join(g_dir, "no_such_model");
    expect_load_error(p, FV_ENOENT, p, "No such file");
    free(p);

    /* directory without config.json / without weights / with only a PyTorch checkpoint */
    char *dir = fvt_join(g_dir, "emptydir");
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    expect_load_error(dir, FV_ENOENT, "no config.json", dir);
    char *cfgp = fvt_join(dir, "config.json");
    assert_int_equal(fvt_write_file(cfgp, "{\"num_labels\": 2}", 17), 0);
    expect_load_error(dir, FV_ENOENT, "no model.safetensors", dir);
    char *bin = fvt_join(dir, "pytorch_model.bin");
    assert_int_equal(fvt_write_file(bin, "x", 1), 0);
    expect_load_error(dir, FV_ENOTSUP, "pytorch_model.bin", NULL);
    free(bin);
    /* config.json that is a directory */
    char *sub = fvt_join(g_dir, "cfgdir");
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s/config.json' && : > '%s/model.safetensors'", sub, sub);
    assert_int_equal(system(cmd), 0);
    expect_load_error(sub, FV_EINVAL, "config.json: not a regular file", NULL);
    free(sub);

    /* a bad config.json is reported with the file name, line and column */
    FvModel *m = random_model(1);
    TensorList *l = collect(m);
    int how[512] = { 0 };
    char *hd = write_hf_dir("badcfg", l, how, NULL, 1, NULL, 0);
    char *hcfg = fvt_join(hd, "config.json");
    const char *broken = "{\n  \"num_labels\": 5,\n  \"hidden_size\": 48\n  \"x\": 1\n}";
    assert_int_equal(fvt_write_file(hcfg, broken, strlen(broken)), 0);
    expect_load_error(hd, FV_EINVAL, hcfg, "(line 4, column");
    /* a config that does not fit the weights: the tensor shape check names the tensor */
    const char *mismatch = "{\"num_labels\": 5, \"hidden_size\": 48, \"num_attention_heads\": 3,"
                           " \"num_hidden_layers\": 2, \"image_size\": 32, \"num_frames\": 8,"
                           " \"intermediate_size\": 192}";
    assert_int_equal(fvt_write_file(hcfg, mismatch, strlen(mismatch)), 0);
    expect_load_error(hd, FV_EINVAL, "\"timesformer.embeddings.time_embeddings\" has shape [1, 4, 48], "
                      "expected [1, 8, 48]", NULL);
    free(hcfg);
    free(hd);

    /* a plain safetensors file is not a fibvid model */
    char *plain = fvt_join(g_dir, "plain.safetensors");
    FvStWriteTensor t = { .name = "x", .ndim = 1, .shape = { 2 }, .data = l->t[0].data };
    assert_int_equal(fv_st_write(plain, &t, 1, NULL, NULL, 0), 0);
    expect_load_error(plain, FV_EINVAL, "not a fibvid model file", plain);
    const char *k[] = { "format", "format_version", "config" };
    const char *v2[] = { "fibvid", "2", "{}" };
    assert_int_equal(fv_st_write(plain, &t, 1, k, v2, 3), 0);
    expect_load_error(plain, FV_ENOTSUP, "format_version \"2\"", NULL);
    const char *v3[] = { "fibvid", "1", "{\"num_labels\": 2, \"hidden_act\": \"silu\"}" };
    assert_int_equal(fv_st_write(plain, &t, 1, k, v3, 3), 0);
    expect_load_error(plain, FV_ENOTSUP, ": config: \"hidden_act\" is \"silu\"", plain);
    assert_int_equal(fv_st_write(plain, &t, 1, k, v3, 2), 0);
    expect_load_error(plain, FV_EINVAL, "has no \"config\"", NULL);
    /* a corrupt file: the safetensors error comes through */
    assert_int_equal(fvt_write_file(plain, "\x40\0\0\0\0\0\0\0{}", 10), 0);
    expect_load_error(plain, FV_EIO, "larger than the rest of the file", plain);
    free(plain);
    free(l);
    fv_model_close(&m);
    free(cfgp);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_validate),
        cmocka_unit_test(test_save_load_single),
        cmocka_unit_test(test_hf_dir),
        cmocka_unit_test(test_half_weights),
        cmocka_unit_test(test_tensor_errors),
        cmocka_unit_test(test_no_qkv_bias),
        cmocka_unit_test(test_config_values),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_path_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
