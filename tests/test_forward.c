/* Parity of the whole forward pass against an independent plain-PyTorch TimeSformer.
 *
 * Fixtures: tests/data/tiny_hf/ and tests/data/ref_*.safetensors, made by scripts/make_reference.py
 * (float64 reference on float32 weights). Each fixture's __metadata__ holds the input geometry (T, H, W),
 * the seed of its input generator (gen_input below, the same LCG as the script) and both attention
 * settings; it stores the expected activations the hook sees ("embeddings", "layer.<i>", "final_norm")
 * and "logits". Everything is compared with max abs error <= 1e-4. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/model.h"
#include "model/safetensors.h"
#include "testutil.h"

#define TOL 1e-4

static const char *const k_fixtures[] = {
    "ref_dense.safetensors",
    "ref_fib_spatial_zero.safetensors",
    "ref_fib_st_zero.safetensors",
    "ref_fib_st_exclude.safetensors",
    "ref_dense_96x64.safetensors",
    "ref_fib_spatial_zero_96x64.safetensors",
    "ref_fib_st_zero_96x64.safetensors",
    "ref_fib_st_exclude_96x64.safetensors",
    "ref_fib_original_96x64.safetensors",
    "ref_dense_t6.safetensors",
    "ref_fib_st_exclude_t6.safetensors",
    /* SimA and Castling (SPEC 4); the castling ones with taps run on tiny_castling_hf */
    "ref_sima_st.safetensors",
    "ref_sima_st_96x64.safetensors",
    "ref_castling_st.safetensors",
    "ref_castling_st_96x64.safetensors",
    "ref_castling_notaps.safetensors",
    "ref_mixed_fib_sima.safetensors",
    "ref_mixed_castling_fib_96x64.safetensors",
    "ref_mixed_sima_castling_t6.safetensors",
    /* PSViT (SPEC 4.3): token pooling (avg, max, conv) and attention sharing, on the tiny_psvit_* models */
    "ref_psvit_avg.safetensors",
    "ref_psvit_avg_48x40.safetensors",
    "ref_psvit_max.safetensors",
    "ref_psvit_max_48x40.safetensors",
    "ref_psvit_conv.safetensors",
    "ref_psvit_conv_48x40.safetensors",
};
#define NUM_FIXTURES (sizeof(k_fixtures) / sizeof(k_fixtures[0]))

/* Same generator as make_reference.py gen_input(): exact multiples of 1/1024 in [-2, 2). */
static void gen_input(uint32_t seed, float *out, size_t n)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        out[i] = (float)((int32_t)(s >> 20) - 2048) / 1024.0f;
    }
}

/* ---- activations seen by the hook ---- */

#define MAX_ACTS 16

typedef struct Capture {
    int n;
    char name[MAX_ACTS][32];
    int64_t rows[MAX_ACTS], cols[MAX_ACTS];
    float *data[MAX_ACTS];
    int calls; /* hook calls, including repeats of a name */
} Capture;

static void capture_hook(void *user, const char *name, const float *data, int64_t rows, int64_t cols)
{
    Capture *c = user;
    c->calls++;
    for (int i = 0; i < c->n; i++) {
        if (!strcmp(c->name[i], name)) {
            /* a name seen twice in one forward pass is a bug: make it visible */
            c->rows[i] = -1;
            return;
        }
    }
    if (c->n == MAX_ACTS)
        return;
    int i = c->n++;
    snprintf(c->name[i], sizeof(c->name[i]), "%s", name);
    c->rows[i] = rows;
    c->cols[i] = cols;
    c->data[i] = malloc((size_t)(rows * cols) * sizeof(float));
    assert_non_null(c->data[i]);
    memcpy(c->data[i], data, (size_t)(rows * cols) * sizeof(float));
}

static int capture_find(const Capture *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->name[i], name))
            return i;
    return -1;
}

static void capture_free(Capture *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->data[i]);
    memset(c, 0, sizeof(*c));
}

/* ---- fixture metadata ---- */

static int meta_int(const FvSafetensors *st, const char *key)
{
    const char *v = fv_st_metadata(st, key);
    if (!v)
        fail_msg("%s: no metadata %s", fv_st_path(st), key);
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (end == v || *end)
        fail_msg("%s: metadata %s=%s is not an integer", fv_st_path(st), key, v);
    return (int)x;
}

static const char *meta_str(const FvSafetensors *st, const char *key)
{
    const char *v = fv_st_metadata(st, key);
    if (!v)
        fail_msg("%s: no metadata %s", fv_st_path(st), key);
    return v;
}

/* Attention settings "<prefix>.kind" etc. as written by make_reference.py settings_meta(). */
static void meta_attention(const FvSafetensors *st, const char *prefix, FvAttnSettings *a)
{
    char key[64];
    fv_attn_default_settings(a);
    snprintf(key, sizeof(key), "%s.kind", prefix);
    const char *kind = meta_str(st, key);
    if (fv_attn_kind_from_name(kind, &a->kind) < 0)
        fail_msg("%s: unknown %s=%s", fv_st_path(st), key, kind);
    snprintf(key, sizeof(key), "%s.variant", prefix);
    const char *variant = meta_str(st, key);
    a->variant = !strcmp(variant, "original") ? FV_FIB_ORIGINAL : FV_FIB_MODIFIED;
    snprintf(key, sizeof(key), "%s.semantics", prefix);
    const char *sem = meta_str(st, key);
    a->semantics = !strcmp(sem, "exclude") ? FV_FIB_EXCLUDE : FV_FIB_ZERO;
    snprintf(key, sizeof(key), "%s.wmin", prefix);
    a->wmin = meta_int(st, key);
    snprintf(key, sizeof(key), "%s.wmax", prefix);
    a->wmax = meta_int(st, key);
    snprintf(key, sizeof(key), "%s.shuffle", prefix);
    a->shuffle = meta_int(st, key);
}

static const char *attn_desc(const FvAttnSettings *a, char *buf, size_t n)
{
    if (a->kind != FV_ATTN_FIB)
        snprintf(buf, n, "%s", fv_attn_kind_name(a->kind));
    else
        snprintf(buf, n, "fib %s/%s w=[%d,%d] shuffle=%d",
                 a->variant == FV_FIB_ORIGINAL ? "original" : "modified",
                 a->semantics == FV_FIB_EXCLUDE ? "exclude" : "zero", a->wmin, a->wmax, a->shuffle);
    return buf;
}

/* ---- one fixture ---- */

typedef struct Fixture {
    FvSafetensors *st;
    const char *model; /* the model directory under tests/data (metadata "model") */
    int T, H, W;
    float *input;   /* (T, 3, H, W), owned */
    FvAttnSettings spatial, temporal;
} Fixture;

static void fixture_open(Fixture *fx, const char *name)
{
    memset(fx, 0, sizeof(*fx));
    char *path = fvt_join(fvt_data_dir(), name);
    int r = fv_st_open(&fx->st, path);
    if (r < 0)
        fail_msg("%s: %s (regenerate with scripts/make_reference.py)", path, fv_last_error());
    free(path);
    fx->model = meta_str(fx->st, "model");
    fx->T = meta_int(fx->st, "T");
    fx->H = meta_int(fx->st, "H");
    fx->W = meta_int(fx->st, "W");
    assert_true(fx->T > 0 && fx->H > 0 && fx->W > 0);
    size_t n = (size_t)fx->T * 3 * (size_t)fx->H * (size_t)fx->W;
    fx->input = malloc(n * sizeof(float));
    assert_non_null(fx->input);

    const char *seed = fv_st_metadata(fx->st, "input_seed");
    int have_seed = seed && *seed;
    if (have_seed)
        gen_input((uint32_t)strtoul(seed, NULL, 10), fx->input, n);
    if (fv_st_find(fx->st, "input")) {
        int64_t shape[4] = { fx->T, 3, fx->H, fx->W };
        float *conv = malloc(n * sizeof(float));
        const float *in = NULL;
        assert_non_null(conv);
        r = fv_st_get_f32(fx->st, "input", 4, shape, conv, &in);
        if (r < 0)
            fail_msg("%s", fv_last_error());
        if (have_seed) {
            /* the stored input must be what the generator gives: checks gen_input against the script */
            double d = fvt_max_abs_diff(in, fx->input, n);
            printf("%s: stored input vs generator: max abs diff %g\n", fv_st_path(fx->st), d);
            assert_true(d == 0.0);
        }
        memcpy(fx->input, in, n * sizeof(float));
        free(conv);
    } else if (!have_seed) {
        fail_msg("%s: neither an input tensor nor an input_seed", fv_st_path(fx->st));
    }
    if (fv_st_metadata(fx->st, "spatial.kind")) {
        meta_attention(fx->st, "spatial", &fx->spatial);
        meta_attention(fx->st, "temporal", &fx->temporal);
    } else {
        fv_attn_default_settings(&fx->spatial);
        fv_attn_default_settings(&fx->temporal);
    }
}

static void fixture_close(Fixture *fx)
{
    fv_st_close(&fx->st);
    free(fx->input);
    fx->input = NULL;
}

static FvModel *load_model(const char *name)
{
    FvModel *m = NULL;
    char *dir = fvt_join(fvt_data_dir(), name);
    int r = fv_model_load(&m, dir);
    if (r < 0)
        fail_msg("fv_model_load %s: %s", dir, fv_last_error());
    free(dir);
    return m;
}

static FvModel *load_tiny(void)
{
    return load_model("tiny_hf");
}

/* Compare one expected tensor (2-D activations or a 1-D vector) with what the run produced; returns
 * the max abs difference. */
static double compare_tensor(const Fixture *fx, const FvTensorInfo *ti, const float *got, int64_t rows,
                             int64_t cols)
{
    int64_t n = 1;
    for (int32_t d = 0; d < ti->ndim; d++)
        n *= ti->shape[d];
    if (rows * cols != n)
        fail_msg("%s: %s: got (%lld, %lld), expected %lld values", fv_st_path(fx->st), ti->name,
                 (long long)rows, (long long)cols, (long long)n);
    if (ti->ndim == 2 && (ti->shape[0] != rows || ti->shape[1] != cols))
        fail_msg("%s: %s: got (%lld, %lld), expected (%lld, %lld)", fv_st_path(fx->st), ti->name,
                 (long long)rows, (long long)cols, (long long)ti->shape[0], (long long)ti->shape[1]);
    float *conv = malloc((size_t)n * sizeof(float));
    const float *want = NULL;
    assert_non_null(conv);
    int r = fv_st_get_f32(fx->st, ti->name, ti->ndim, ti->shape, conv, &want);
    if (r < 0)
        fail_msg("%s", fv_last_error());
    double d = fvt_max_abs_diff(got, want, (size_t)n);
    /* NaN compares false everywhere: treat a non-finite output as a failure */
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(got[i]))
            d = INFINITY;
    free(conv);
    return d;
}

/* Run @fx through @m and compare every stored tensor; returns the worst difference. */
static double run_fixture(FvModel *m, const Fixture *fx, const char *name, int verbose)
{
    const FvModelConfig *cfg = fv_model_config(m);
    int r = fv_model_set_attention(m, &fx->spatial, &fx->temporal);
    if (r < 0)
        fail_msg("%s: fv_model_set_attention: %s", name, fv_last_error());

    Capture cap;
    memset(&cap, 0, sizeof(cap));
    FvState *st = NULL;
    assert_int_equal(fv_state_create(&st, m), 0);
    fv_state_set_hook(st, capture_hook, &cap);
    float logits[64];
    assert_true(cfg->num_labels <= 64);
    r = fv_state_forward(st, fx->input, 1, fx->T, fx->H, fx->W, logits);
    fv_state_close(&st);
    if (r < 0)
        fail_msg("%s: fv_state_forward: %s", name, fv_last_error());

    if (verbose) {
        char a[96], b[96];
        printf("%s: T=%d %dx%d spatial %s, temporal %s\n", name, fx->T, fx->H, fx->W,
               attn_desc(&fx->spatial, a, sizeof(a)), attn_desc(&fx->temporal, b, sizeof(b)));
    }

    /* the hook must report every activation exactly once, with the documented shapes: each layer's output on
     * its own grid (token pooling halves it), each pooling's output on the next layer's */
    const int32_t Hp = fx->H / cfg->patch_size, Wp = fx->W / cfg->patch_size;
    assert_int_equal(cap.calls, cfg->num_layers + 2 + cfg->num_pools);
    for (int i = -1; i <= cfg->num_layers + cfg->num_pools; i++) {
        char nm[32];
        int32_t gh = Hp, gw = Wp;
        if (i < 0) {
            snprintf(nm, sizeof(nm), "embeddings");
        } else if (i < cfg->num_layers) {
            snprintf(nm, sizeof(nm), "layer.%d", i);
            fv_model_layer_grid(cfg, i, Hp, Wp, &gh, &gw);
        } else if (i < cfg->num_layers + cfg->num_pools) {
            const int j = i - cfg->num_layers;
            snprintf(nm, sizeof(nm), "pool.%d", j);
            fv_model_layer_grid(cfg, cfg->pools[j].after + 1, Hp, Wp, &gh, &gw);
        } else {
            snprintf(nm, sizeof(nm), "final_norm");
        }
        int k = capture_find(&cap, nm);
        if (k < 0 || cap.rows[k] < 0)
            fail_msg("%s: hook saw %s %s", name, nm, k < 0 ? "never" : "twice");
        if (i < cfg->num_layers + cfg->num_pools) {
            assert_int_equal(cap.rows[k], 1 + (int64_t)gh * gw * fx->T);
            assert_int_equal(cap.cols[k], cfg->hidden_size);
        } else {
            assert_int_equal(cap.rows[k] * cap.cols[k], cfg->hidden_size);
        }
    }

    double worst = 0.0;
    int compared = 0;
    for (size_t i = 0; i < fv_st_count(fx->st); i++) {
        const FvTensorInfo *ti = fv_st_tensor(fx->st, i);
        double d;
        if (!strcmp(ti->name, "input"))
            continue;
        if (!strcmp(ti->name, "logits")) {
            d = compare_tensor(fx, ti, logits, 1, cfg->num_labels);
        } else {
            int k = capture_find(&cap, ti->name);
            if (k < 0)
                fail_msg("%s: the hook never reported %s", name, ti->name);
            d = compare_tensor(fx, ti, cap.data[k], cap.rows[k], cap.cols[k]);
        }
        if (verbose)
            printf("  %-12s max abs diff %g\n", ti->name, d);
        if (!(d <= worst))
            worst = d;
        compared++;
    }
    assert_true(compared >= 2); /* at least final_norm and logits */
    capture_free(&cap);
    return worst;
}

/* Each fixture on a freshly loaded model. */
static void test_fixture(void **state)
{
    const char *name = *state;
    Fixture fx;
    fixture_open(&fx, name);
    FvModel *m = load_model(fx.model);
    double worst = run_fixture(m, &fx, name, 1);
    printf("%s: max abs diff %g (tolerance %g)\n", name, worst, TOL);
    assert_true(worst <= TOL);
    fv_model_close(&m);
    assert_null(m);
    fixture_close(&fx);
}

/* All fixtures of tiny_hf one after the other on one model: shapes (32x32, 96x64, 6 frames) and attention
 * settings (every kind) change between calls, so buffers, resized embeddings and attention plans must be
 * rebuilt each time. Then the first fixture again, which must reproduce its result bit for bit. */
static void test_one_model_all_fixtures(void **state)
{
    (void)state;
    FvModel *m = load_tiny();
    Fixture fx;
    float first[64], again[64];
    for (size_t i = 0; i <= NUM_FIXTURES; i++) {
        const char *name = k_fixtures[i % NUM_FIXTURES];
        fixture_open(&fx, name);
        if (strcmp(fx.model, "tiny_hf")) {
            fixture_close(&fx);
            continue;
        }
        double worst = run_fixture(m, &fx, name, 0);
        printf("%-40s (shared model) max abs diff %g\n", name, worst);
        assert_true(worst <= TOL);
        if (i == 0 || i == NUM_FIXTURES) {
            int r = fv_model_forward(m, fx.input, fx.T, fx.H, fx.W, i == 0 ? first : again);
            assert_int_equal(r, 0);
        }
        fixture_close(&fx);
    }
    assert_memory_equal(first, again, sizeof(float) * (size_t)fv_model_config(m)->num_labels);
    fv_model_close(&m);
}

/* The attention settings must matter: a Fibottention fixture run with dense attention (and the dense
 * fixture run with Fibottention, and zero vs exclude swapped) must be far off. Guards against a
 * forward pass that ignores fv_model_set_attention() and a fixture set where masks change nothing. */
static void test_settings_matter(void **state)
{
    (void)state;
    static const char *const names[] = {
        "ref_fib_spatial_zero.safetensors", "ref_fib_st_exclude.safetensors",
        "ref_fib_spatial_zero_96x64.safetensors", "ref_fib_st_zero_96x64.safetensors",
        "ref_fib_st_exclude_t6.safetensors", "ref_dense_96x64.safetensors",
    };
    FvModel *m = load_tiny();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        Fixture fx;
        fixture_open(&fx, names[i]);
        if (fx.spatial.kind == FV_ATTN_FIB || fx.temporal.kind == FV_ATTN_FIB) {
            fv_attn_default_settings(&fx.spatial);
            fv_attn_default_settings(&fx.temporal);
        } else {
            fx.spatial.kind = FV_ATTN_FIB;
        }
        double d = run_fixture(m, &fx, names[i], 0);
        printf("%-40s with the wrong attention: max abs diff %g (must be > 1e-2)\n", names[i], d);
        assert_true(d > 1e-2);
        fixture_close(&fx);
    }
    Fixture fx;
    fixture_open(&fx, "ref_fib_st_exclude_96x64.safetensors");
    fx.spatial.semantics = FV_FIB_ZERO;
    double d = run_fixture(m, &fx, "ref_fib_st_exclude_96x64 as zero", 0);
    printf("ref_fib_st_exclude_96x64 with spatial zero semantics: max abs diff %g (must be > 1e-2)\n", d);
    assert_true(d > 1e-2);
    fixture_close(&fx);
    /* SimA run as Castling, and the other way round */
    fixture_open(&fx, "ref_sima_st.safetensors");
    fx.spatial.kind = fx.temporal.kind = FV_ATTN_CASTLING;
    d = run_fixture(m, &fx, "ref_sima_st as castling", 0);
    printf("ref_sima_st as castling: max abs diff %g (must be > 1e-2)\n", d);
    assert_true(d > 1e-2);
    fixture_close(&fx);
    fixture_open(&fx, "ref_castling_notaps.safetensors");
    fx.spatial.kind = fx.temporal.kind = FV_ATTN_SIMA;
    d = run_fixture(m, &fx, "ref_castling_notaps as sima", 0);
    printf("ref_castling_notaps as sima: max abs diff %g (must be > 1e-2)\n", d);
    assert_true(d > 1e-2);
    fixture_close(&fx);
    /* the taps matter: Castling with taps on the model without them, and without on the one with them */
    fixture_open(&fx, "ref_castling_st.safetensors");
    d = run_fixture(m, &fx, "ref_castling_st on tiny_hf", 0);
    printf("ref_castling_st on tiny_hf (zero taps): max abs diff %g (must be > 1e-2)\n", d);
    assert_true(d > 1e-2);
    fixture_close(&fx);
    fv_model_close(&m);
    m = load_model("tiny_castling_hf");
    fixture_open(&fx, "ref_castling_notaps.safetensors");
    d = run_fixture(m, &fx, "ref_castling_notaps on tiny_castling_hf", 0);
    printf("ref_castling_notaps on tiny_castling_hf (its taps): max abs diff %g (must be > 1e-2)\n", d);
    assert_true(d > 1e-2);
    fixture_close(&fx);
    fv_model_close(&m);
}

/* PSViT models (SPEC 4.3): loading checks the tensor shapes the config implies (a sharing attention's qkv is
 * [D, D]: tiny_hf's weights under a config that shares layer 1 are refused, naming the tensor and both shapes);
 * switching a shared attention to a kind without weights is refused naming the layer; FLOPs and the layer
 * grids follow the pooling. */
static void test_psvit_model(void **state)
{
    (void)state;
    char *dir = fvt_tmpdir(), *src = fvt_join(fvt_data_dir(), "tiny_hf"), *a = fvt_join(src, "config.json");
    size_t len = 0;
    char *text = fvt_read_file(a, &len);
    assert_non_null(text);
    char *brace = strrchr(text, '}');
    assert_non_null(brace);
    *brace = '\0';
    char cfg[16384];
    snprintf(cfg, sizeof(cfg), "%s, \"fibvid_share_spatial\": [1]}", text);
    char *b = fvt_join(dir, "config.json"), *ms = fvt_join(src, "model.safetensors"), *md = fvt_join(dir, "model.safetensors");
    assert_int_equal(fvt_write_file(b, cfg, strlen(cfg)), 0);
    char *w = fvt_read_file(ms, &len);
    assert_non_null(w);
    assert_int_equal(fvt_write_file(md, w, len), 0);
    FvModel *m = NULL;
    assert_true(fv_model_load(&m, dir) < 0);
    printf("tiny_hf's weights, layer 1 sharing: %s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "layer.1.attention.attention.qkv.weight"));
    assert_non_null(strstr(fv_last_error(), "expected [48, 48]"));
    free(text);
    free(w);
    free(a);
    free(b);
    free(ms);
    free(md);
    free(src);
    fvt_rmtree(dir);
    free(dir);

    m = load_model("tiny_psvit_avg_hf");
    const FvModelConfig *c = fv_model_config(m);
    FvAttnSettings sima = c->spatial;
    sima.kind = FV_ATTN_SIMA;
    assert_true(fv_model_set_attention(m, &sima, NULL) < 0);
    printf("sima on a shared spatial attention: %s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "layer 2 cannot share layer 1's sima attention"));
    int32_t gh, gw;
    fv_model_layer_grid(c, 0, 6, 5, &gh, &gw);
    assert_true(gh == 6 && gw == 5);
    fv_model_layer_grid(c, 1, 6, 5, &gh, &gw); /* pooled after layer 0: ceil halves */
    assert_true(gh == 3 && gw == 3);
    FvModelConfig flat = *c;
    flat.num_pools = 0;
    flat.share_spatial = flat.share_temporal = 0;
    FvModel *f = NULL;
    assert_int_equal(fv_model_create_random(&f, &flat, 1), 0);
    const double pooled = fv_model_flops(m, 4, 32, 32), full = fv_model_flops(f, 4, 32, 32);
    printf("tiny_psvit_avg_hf: %.0f FLOPs, without pooling and sharing %.0f\n", pooled, full);
    assert_true(pooled > 0 && pooled < 0.6 * full);
    fv_model_close(&f);
    fv_model_close(&m);
}

/* A temporary Hugging Face directory: tiny_castling_hf's config and preprocessor config with @weights as its
 * model.safetensors (F32 tensors written by fv_st_write). Returns the directory (caller frees and removes). */
static char *castling_dir(const FvStWriteTensor *weights, size_t n)
{
    char *dir = fvt_tmpdir(), *src = fvt_join(fvt_data_dir(), "tiny_castling_hf");
    static const char *const files[] = { "config.json", "preprocessor_config.json" };
    for (int i = 0; i < 2; i++) {
        char *a = fvt_join(src, files[i]), *b = fvt_join(dir, files[i]);
        size_t len = 0;
        char *text = fvt_read_file(a, &len);
        assert_non_null(text);
        assert_int_equal(fvt_write_file(b, text, len), 0);
        free(text);
        free(a);
        free(b);
    }
    char *st = fvt_join(dir, "model.safetensors");
    static const char *const keys[] = { "format" }, *const vals[] = { "pt" };
    assert_int_equal(fv_st_write(st, weights, n, keys, vals, 1), 0);
    free(st);
    free(src);
    return dir;
}

/* Castling's own tensors (SPEC 4.2): loaded and validated; a config that asks for castling without them is a
 * load error naming the tensor; a model switched to castling without them runs zero taps (ref_castling_notaps),
 * reports them missing, and saves them as zeros; switching kinds and back keeps the taps. */
static void test_castling_tensors(void **state)
{
    (void)state;
    Fixture fx;
    FvModel *m = load_model("tiny_castling_hf");
    const FvModelConfig *c = fv_model_config(m);
    assert_int_equal(c->spatial.kind, FV_ATTN_CASTLING);
    assert_int_equal(c->temporal.kind, FV_ATTN_CASTLING);
    assert_int_equal(fv_model_attention_tensors_missing(m), 0);
    FvAttnSettings dense;
    fv_attn_default_settings(&dense);
    FvAttnSettings cs = c->spatial, ct = c->temporal;
    assert_int_equal(fv_model_set_attention(m, &dense, &dense), 0);
    assert_int_equal(fv_model_attention_tensors_missing(m), 0);
    assert_int_equal(fv_model_set_attention(m, &cs, &ct), 0);
    fixture_open(&fx, "ref_castling_st.safetensors");
    double d = run_fixture(m, &fx, "ref_castling_st after dense and back", 0);
    printf("tiny_castling_hf switched to dense and back: ref_castling_st max abs diff %g\n", d);
    assert_true(d <= TOL);
    fixture_close(&fx);
    fv_model_close(&m);

    /* tiny_hf as castling: 2 layers x 2 attentions without taps; saved, they come back as zeros */
    m = load_tiny();
    assert_int_equal(fv_model_set_attention(m, &cs, &ct), 0);
    assert_int_equal(fv_model_attention_tensors_missing(m), 4);
    char *tmp = fvt_tmpdir(), *path = fvt_join(tmp, "castling.safetensors");
    assert_int_equal(fv_model_save(m, path), 0);
    fv_model_close(&m);
    assert_int_equal(fv_model_load(&m, path), 0);
    assert_int_equal(fv_model_config(m)->spatial.kind, FV_ATTN_CASTLING);
    assert_int_equal(fv_model_attention_tensors_missing(m), 0);
    fixture_open(&fx, "ref_castling_notaps.safetensors");
    d = run_fixture(m, &fx, "ref_castling_notaps on the saved model", 1);
    printf("tiny_hf as castling, saved and reloaded (zero taps): max abs diff %g\n", d);
    assert_true(d <= TOL);
    fixture_close(&fx);
    fv_model_close(&m);
    free(path);
    fvt_rmtree(tmp);
    free(tmp);

    /* the castling config over tiny_hf's tensors (no taps), and with taps of the wrong shape */
    FvSafetensors *src = NULL;
    char *sp = fvt_join(fvt_data_dir(), "tiny_castling_hf/model.safetensors");
    assert_int_equal(fv_st_open(&src, sp), 0);
    free(sp);
    const size_t n = fv_st_count(src);
    FvStWriteTensor *w = calloc(n, sizeof(*w));
    assert_non_null(w);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const FvTensorInfo *ti = fv_st_tensor(src, i);
        assert_int_equal(ti->dtype, FV_DT_F32);
        if (strstr(ti->name, "dwconv"))
            continue;
        w[k].name = ti->name;
        w[k].ndim = ti->ndim;
        memcpy(w[k].shape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim);
        w[k++].data = ti->data;
    }
    assert_int_equal(k + 4, n);
    char *dir = castling_dir(w, k);
    assert_true(fv_model_load(&m, dir) < 0);
    printf("castling config without taps: %s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "dwconv.weight"));
    fvt_rmtree(dir);
    free(dir);
    k = 0;
    for (size_t i = 0; i < n; i++) {
        const FvTensorInfo *ti = fv_st_tensor(src, i);
        w[k].name = ti->name;
        w[k].ndim = ti->ndim;
        memcpy(w[k].shape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim);
        if (strstr(ti->name, "layer.1.attention.attention.dwconv")) { /* (3, 1, 9, 1) as (3, 9) */
            w[k].ndim = 2;
            w[k].shape[1] = 9;
        }
        w[k++].data = ti->data;
    }
    dir = castling_dir(w, k);
    assert_true(fv_model_load(&m, dir) < 0);
    printf("castling taps of the wrong shape: %s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "layer.1.attention.attention.dwconv.weight"));
    fvt_rmtree(dir);
    free(dir);
    free(w);
    fv_st_close(&src);
}

/* The model part of the end-to-end clip check: ref_clip's preprocessed input through tiny_hf. */
static void test_clip_logits(void **state)
{
    (void)state;
    Fixture fx;
    fixture_open(&fx, "ref_clip.safetensors");
    FvModel *m = load_tiny();
    double worst = run_fixture(m, &fx, "ref_clip.safetensors", 1);
    printf("ref_clip.safetensors: max abs diff %g\n", worst);
    assert_true(worst <= TOL);
    fv_model_close(&m);
    fixture_close(&fx);
}

/* Input sizes the model cannot take fail cleanly, leave the model usable, and say why. */
static void test_bad_shapes(void **state)
{
    (void)state;
    FvModel *m = load_tiny();
    size_t n = 4 * 3 * 48 * 40;
    float *in = calloc(n, sizeof(float));
    float logits[8];
    assert_non_null(in);
    assert_true(fv_model_forward(m, in, 4, 40, 32, logits) < 0); /* H not a multiple of 16 */
    printf("H=40: %s\n", fv_last_error());
    assert_true(strlen(fv_last_error()) > 0);
    assert_true(fv_model_forward(m, in, 4, 32, 24, logits) < 0); /* W not a multiple of 16 */
    assert_true(fv_model_forward(m, in, 0, 32, 32, logits) < 0);
    assert_true(fv_model_forward(m, in, 4, 0, 32, logits) < 0);
    assert_true(fv_model_forward(m, NULL, 4, 32, 32, logits) < 0);
    assert_true(fv_model_forward(m, in, 4, 32, 32, NULL) < 0);
    /* still works afterwards */
    assert_int_equal(fv_model_forward(m, in, 4, 32, 32, logits), 0);
    for (int i = 0; i < 5; i++)
        assert_true(isfinite(logits[i]));
    free(in);
    fv_model_close(&m);
}

/* One model, two threads, each on its own state: every logit equal to what one thread computes. */
typedef struct ThreadJob {
    const FvModel *m;
    const float *in;
    int32_t T, S;
    float logits[8];
    int ret;
} ThreadJob;

static void *thread_forward(void *arg)
{
    ThreadJob *j = arg;
    FvState *st = NULL;
    if ((j->ret = fv_state_create(&st, j->m)) < 0)
        return NULL;
    for (int it = 0; it < 20 && j->ret >= 0; it++) /* long enough to overlap the other thread */
        j->ret = fv_state_forward(st, j->in, 1, j->T, j->S, j->S, j->logits);
    fv_state_close(&st);
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    FvModel *m = load_tiny();
    const int32_t T = 4, S = 32;
    const size_t n = (size_t)T * 3 * S * S;
    float *in[2] = { malloc(sizeof(float) * n), malloc(sizeof(float) * n) }, want[2][8];
    assert_non_null(in[0]);
    assert_non_null(in[1]);
    for (int k = 0; k < 2; k++) {
        gen_input(11 + k, in[k], n);
        assert_int_equal(fv_model_forward(m, in[k], T, S, S, want[k]), 0);
    }
    ThreadJob jobs[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (ThreadJob){ .m = m, .in = in[k], .T = T, .S = S };
        assert_int_equal(pthread_create(&th[k], NULL, thread_forward, &jobs[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(jobs[k].ret, 0);
        const double d = fvt_max_abs_diff(jobs[k].logits, want[k], 5);
        printf("thread %d vs one thread: max abs diff %g\n", k, d);
        assert_true(d == 0.0);
    }
    free(in[0]);
    free(in[1]);
    fv_model_close(&m);
}

/* A batch of views in one forward pass gives each view's logits as one view alone does. */
static void test_batch(void **state)
{
    (void)state;
    FvModel *m = load_tiny();
    const int32_t T = 4, S = 32, B = 3;
    const size_t n = (size_t)T * 3 * S * S;
    float *in = malloc(sizeof(float) * n * B), want[3][8], got[3 * 8];
    assert_non_null(in);
    FvState *st = NULL;
    assert_int_equal(fv_state_create(&st, m), 0);
    for (int b = 0; b < B; b++) {
        gen_input(21 + b, in + n * b, n);
        assert_int_equal(fv_state_forward(st, in + n * b, 1, T, S, S, want[b]), 0);
    }
    assert_int_equal(fv_state_forward(st, in, B, T, S, S, got), 0);
    double d = 0;
    for (int b = 0; b < B; b++)
        d = fmax(d, fvt_max_abs_diff(got + 5 * b, want[b], 5));
    printf("%d views in one forward vs one at a time: max abs diff %g\n", B, d);
    assert_true(d <= 1e-5);
    fv_state_close(&st);
    free(in);
    fv_model_close(&m);
}

int main(void)
{
    struct CMUnitTest tests[NUM_FIXTURES + 16];
    size_t n = 0;
    for (size_t i = 0; i < NUM_FIXTURES; i++) {
        struct CMUnitTest t = cmocka_unit_test_prestate(test_fixture, (void *)k_fixtures[i]);
        t.name = k_fixtures[i];
        tests[n++] = t;
    }
    const struct CMUnitTest more[] = {
        cmocka_unit_test(test_clip_logits),
        cmocka_unit_test(test_one_model_all_fixtures),
        cmocka_unit_test(test_settings_matter),
        cmocka_unit_test(test_castling_tensors),
        cmocka_unit_test(test_psvit_model),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_batch),
    };
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        tests[n++] = more[i];
    return _cmocka_run_group_tests("test_forward", tests, n, NULL, NULL);
}
