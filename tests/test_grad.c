/* Training core: gradients of every parameter against PyTorch autograd (dense, Fibottention zero and
 * exclude, SimA, Castling-ViT with its taps and auxiliary branch), a finite-difference spot check, the optimizer pieces (loss, clipping, AdamW, schedule), a few
 * AdamW steps that must reduce the loss, optimizer state save/restore, classifier reset and bad input.
 *
 * Fixtures: tests/data/grad_*.safetensors, made by `scripts/make_reference.py --grads` (float64 autograd on
 * the tiny model tests/data/tiny_hf or tiny_castling_hf, metadata "model"; a batch of two clips from the script's gen_input LCG, label smoothing
 * 0.1). Per parameter tensor, in fv_model_visit_tensors order: sampled gradient elements (every element of
 * tensors with <= 256, else 256 at (i * 7919 + 13) % count), the gradient's L2 norm and its dot product
 * with gen_input(1000 + tensor index) — the last two cover every element. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/model.h"
#include "kernels/attn_kind.h"
#include "kernels/gemm.h"
#include "util/util.h"
#include "model/safetensors.h"
#include "testutil.h"
#include "train/optim.h"


/* Per element: within REL_TOL relative, or ABS_TOL absolute, or SCALE_TOL of the tensor's RMS gradient.
 * The last one covers elements hundreds of times smaller than the rest of their tensor (a LayerNorm weight
 * whose gradient sums many terms that cancel): there fp32 summation noise, ~1e-7 of the terms' magnitude,
 * is the whole difference. Every tensor's norm and projection must still match within REL_TOL. */
#define REL_TOL 1e-4
#define ABS_TOL 1e-6
#define SCALE_TOL 1e-5

/* Same generator as make_reference.py gen_input(): exact multiples of 1/1024 in [-2, 2). */
static void gen_input(uint32_t seed, float *out, size_t n)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        out[i] = (float)((int32_t)(s >> 20) - 2048) / 1024.0f;
    }
}

static const char *meta_str(const FvSafetensors *st, const char *key)
{
    const char *v = fv_st_metadata(st, key);
    if (!v)
        fail_msg("%s: no metadata %s", fv_st_path(st), key);
    return v;
}

static int meta_int(const FvSafetensors *st, const char *key)
{
    const char *v = meta_str(st, key);
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (end == v || *end)
        fail_msg("%s: metadata %s=%s is not an integer", fv_st_path(st), key, v);
    return (int)x;
}

/* "[21, 22]" -> up to @max integers; returns the count. */
static int meta_ints(const FvSafetensors *st, const char *key, int *out, int max)
{
    const char *s = meta_str(st, key);
    int n = 0;
    while (*s && n < max) {
        if ((*s >= '0' && *s <= '9') || *s == '-') {
            char *end = NULL;
            out[n++] = (int)strtol(s, &end, 10);
            s = end;
        } else {
            s++;
        }
    }
    return n;
}

static void meta_attention(const FvSafetensors *st, const char *prefix, FvAttnSettings *a)
{
    char key[64];
    fv_attn_default_settings(a);
    snprintf(key, sizeof(key), "%s.kind", prefix);
    if (fv_attn_kind_from_name(meta_str(st, key), &a->kind) < 0)
        fail_msg("%s: unknown %s", fv_st_path(st), key);
    snprintf(key, sizeof(key), "%s.variant", prefix);
    a->variant = !strcmp(meta_str(st, key), "original") ? FV_FIB_ORIGINAL : FV_FIB_MODIFIED;
    snprintf(key, sizeof(key), "%s.semantics", prefix);
    a->semantics = !strcmp(meta_str(st, key), "exclude") ? FV_FIB_EXCLUDE : FV_FIB_ZERO;
    snprintf(key, sizeof(key), "%s.wmin", prefix);
    a->wmin = meta_int(st, key);
    snprintf(key, sizeof(key), "%s.wmax", prefix);
    a->wmax = meta_int(st, key);
    snprintf(key, sizeof(key), "%s.shuffle", prefix);
    a->shuffle = meta_int(st, key);
}

static FvModel *load_model(const char *name)
{
    char *dir = fvt_join(fvt_data_dir(), name);
    FvModel *m = NULL;
    if (fv_model_load(&m, dir) < 0)
        fail_msg("%s", fv_last_error());
    free(dir);
    return m;
}

static FvModel *load_tiny(void)
{
    return load_model("tiny_hf");
}

static const float *get_f32(const FvSafetensors *st, const char *name, int64_t count)
{
    const FvTensorInfo *ti = fv_st_find(st, name);
    if (!ti || ti->dtype != FV_DT_F32)
        fail_msg("%s: no F32 tensor %s", fv_st_path(st), name);
    int64_t n = 1;
    for (int32_t i = 0; i < ti->ndim; i++)
        n *= ti->shape[i];
    if (count >= 0 && n != count)
        fail_msg("%s: %s has %lld floats, expected %lld", fv_st_path(st), name, (long long)n, (long long)count);
    return ti->data;
}

/* ---- gradients against autograd ---- */

static void check_fixture(const char *file)
{
    char *path = fvt_join(fvt_data_dir(), file);
    FvSafetensors *st = NULL;
    if (fv_st_open(&st, path) < 0)
        fail_msg("%s (regenerate with scripts/make_reference.py --grads)", fv_last_error());
    free(path);
    const int T = meta_int(st, "T"), H = meta_int(st, "H"), W = meta_int(st, "W");
    const int nsamp = meta_int(st, "samples"), stride = meta_int(st, "stride");
    int seeds[8], labels[8];
    const int B = meta_ints(st, "input_seeds", seeds, 8);
    assert_int_equal(meta_ints(st, "labels", labels, 8), B);
    FvAttnSettings sp, tp;
    meta_attention(st, "spatial", &sp);
    meta_attention(st, "temporal", &tp);

    FvModel *m = load_model(meta_str(st, "model"));
    assert_int_equal(fv_model_set_attention(m, &sp, &tp), 0);
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.max_batch = B;
    s.T = T;
    s.H = H;
    s.W = W;
    s.label_smoothing = (float)atof(meta_str(st, "label_smoothing"));
    /* Castling's auxiliary branch: lambda = 1 - step / (0.8 x 100) is the fixture's at step 80 (1 - lambda) */
    const char *aux = fv_st_metadata(st, "aux_weight");
    const double lambda = aux ? atof(aux) : 0.0;
    const int64_t aux_step = (int64_t)llround((1.0 - lambda) * 80.0);
    s.total_steps = 100;
    s.castling_aux_until = aux ? 0.8f : 0.0f;
    FvTrainer *tr = NULL;
    if (fv_trainer_new(&tr, m, &s) < 0)
        fail_msg("%s", fv_last_error());
    if (aux) {
        fv_trainer_set_step(tr, aux_step);
        printf("%s: auxiliary branch weight %g at step %lld\n", file, fv_train_aux_weight(&s, aux_step),
               (long long)aux_step);
        assert_true(fabs(fv_train_aux_weight(&s, aux_step) - lambda) < 1e-6);
    }

    const size_t clip = (size_t)T * 3 * H * W;
    float *clips = malloc(sizeof(float) * clip * B);
    int32_t lab[8];
    assert_non_null(clips);
    for (int b = 0; b < B; b++) {
        gen_input((uint32_t)seeds[b], clips + b * clip, clip);
        lab[b] = labels[b];
    }
    const int32_t L = fv_model_config(m)->num_labels;
    float loss = 0.0f, logits[8 * 16];
    assert_true(L <= 16);
    if (fv_trainer_backward(tr, clips, lab, B, &loss, logits) < 0)
        fail_msg("%s", fv_last_error());

    const float want_loss = get_f32(st, "loss", 1)[0];
    const double dlog = fvt_max_abs_diff(logits, get_f32(st, "logits", (int64_t)B * L), (size_t)B * L);
    printf("%s: loss %.7f (autograd %.7f), logits max abs diff %g\n", file, loss, want_loss, dlog);
    assert_true(fabs(loss - want_loss) <= REL_TOL * fabs(want_loss));
    assert_true(dlog <= 1e-4);

    /* the fixture's tensor order must be fibvid's */
    const int32_t nt = fv_trainer_num_tensors(tr);
    size_t cap = 64;
    for (int32_t i = 0; i < nt; i++)
        cap += strlen(fv_trainer_tensor(tr, i)->name) + 3;
    static char names[16384];
    assert_true(cap <= sizeof(names));
    size_t len = 0;
    names[len++] = '[';
    for (int32_t i = 0; i < nt; i++) {
        const char *nm = fv_trainer_tensor(tr, i)->name;
        const size_t l = strlen(nm);
        if (i)
            names[len++] = ',';
        names[len++] = '"';
        memcpy(names + len, nm, l);
        len += l;
        names[len++] = '"';
    }
    names[len++] = ']';
    names[len] = '\0';
    assert_string_equal(names, meta_str(st, "tensors"));

    size_t total = 0;
    for (int32_t i = 0; i < nt; i++)
        total += fv_trainer_tensor(tr, i)->count <= (size_t)nsamp ? fv_trainer_tensor(tr, i)->count : (size_t)nsamp;
    const float *samples = get_f32(st, "grad_samples", (int64_t)total);
    const float *norms = get_f32(st, "grad_norm", nt), *projs = get_f32(st, "grad_proj", nt);
    const float *grads = fv_trainer_grads(tr);
    double worst = 0.0, worst_norm = 0.0, worst_proj = 0.0;
    const char *worst_name = "";
    size_t k = 0;
    for (int32_t i = 0; i < nt; i++) {
        const FvTrainTensor *t = fv_trainer_tensor(tr, i);
        const float *g = grads + t->offset;
        const size_t ns = t->count <= (size_t)nsamp ? t->count : (size_t)nsamp;
        const double floor_abs = fmax(ABS_TOL, SCALE_TOL * norms[i] / sqrt((double)t->count));
        for (size_t j = 0; j < ns; j++, k++) {
            const size_t idx = t->count <= (size_t)nsamp ? j : (size_t)(((int64_t)j * stride + 13) % (int64_t)t->count);
            const double want = samples[k], got = g[idx], err = fabs(got - want);
            /* the bound, normalised so that REL_TOL is the limit */
            const double bound = fmax(REL_TOL * fabs(want), floor_abs);
            const double e = err / bound * REL_TOL;
            if (e > worst) {
                worst = e;
                worst_name = t->name;
            }
            if (err > bound)
                fail_msg("%s: %s[%zu] = %.8g, autograd %.8g (bound %.3g)", file, t->name, idx, got, want, bound);
        }
        double ss = 0.0, pr = 0.0, rr = 0.0;
        float *r = malloc(sizeof(float) * t->count);
        assert_non_null(r);
        gen_input(1000u + (uint32_t)i, r, t->count);
        for (size_t j = 0; j < t->count; j++) {
            ss += (double)g[j] * g[j];
            pr += (double)g[j] * r[j];
            rr += (double)r[j] * r[j];
        }
        free(r);
        const double en = fabs(sqrt(ss) - norms[i]) / fmax(norms[i], ABS_TOL / REL_TOL);
        const double ep = fabs(pr - projs[i]) / fmax(norms[i] * sqrt(rr), ABS_TOL / REL_TOL);
        worst_norm = fmax(worst_norm, en);
        worst_proj = fmax(worst_proj, ep);
        if (en > REL_TOL || ep > REL_TOL)
            fail_msg("%s: %s: norm %.8g (autograd %.8g), projection %.8g (autograd %.8g)", file, t->name,
                     sqrt(ss), norms[i], pr, projs[i]);
    }
    printf("%s: %d tensors, %zu sampled elements: largest relative error %.3g (%s); norms %.3g, "
           "projections %.3g\n", file, nt, total, worst, worst_name, worst_norm, worst_proj);
    free(clips);
    fv_trainer_close(&tr);
    fv_model_close(&m);
    fv_st_close(&st);
}

static void test_grad_dense(void **state)
{
    (void)state;
    /* short sequences take the per-pair loops by default; check the GEMM path against autograd too */
    const int32_t keep = fv_attn_dense_gemm_min;
    for (int pass = 0; pass < 2; pass++) {
        fv_attn_dense_gemm_min = pass ? 1 : 1 << 30;
        printf("dense heads through %s\n", pass ? "GEMM calls" : "per-pair loops");
        check_fixture("grad_dense.safetensors");
        check_fixture("grad_dense_64x48.safetensors");
    }
    fv_attn_dense_gemm_min = keep;
}

/* SimA and Castling-ViT (SPEC 4): sequences shorter than head_dim (the quadratic order) and 25 spatial
 * tokens (the linear order), Castling with taps, with its auxiliary branch at lambda 0.5, and tiny_hf fine-tuned into castling
 * (the taps it lacks start at zero and get gradients) with sima temporal. */
static void test_grad_linear(void **state)
{
    (void)state;
    check_fixture("grad_sima_64x48.safetensors");
    check_fixture("grad_sima_96x64.safetensors");
    check_fixture("grad_castling.safetensors");
    check_fixture("grad_castling_96x64.safetensors");
    check_fixture("grad_castling_aux.safetensors");
    check_fixture("grad_castling_notaps.safetensors");
}

/* PSViT (SPEC 4.3): gradients through avg, max and conv token pooling (the conv's weights too) and through
 * attention sharing into the layers whose weights are shared (a spatial fib-zero chain, fib exclude, dense),
 * on the tiny_psvit_* models at 32x32 and at 48x40 (odd grids). */
static void test_grad_psvit(void **state)
{
    (void)state;
    static const char *const names[] = { "avg", "max", "conv" };
    char file[64];
    for (int i = 0; i < 3; i++)
        for (int odd = 0; odd < 2; odd++) {
            snprintf(file, sizeof(file), "grad_psvit_%s%s.safetensors", names[i], odd ? "_48x40" : "");
            check_fixture(file);
        }
}

static void test_grad_fib_zero(void **state)
{
    (void)state;
    check_fixture("grad_fib_zero.safetensors");
    check_fixture("grad_fib_zero_64x48.safetensors");
}

static void test_grad_fib_exclude(void **state)
{
    (void)state;
    check_fixture("grad_fib_exclude.safetensors");
    check_fixture("grad_fib_exclude_64x48.safetensors");
}

/* ---- finite differences ---- */

static void fd_check(const FvAttnSettings *sp, const FvAttnSettings *tp, const char *what)
{
    FvModel *m = load_tiny();
    assert_int_equal(fv_model_set_attention(m, sp, tp), 0);
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.max_batch = 2;
    s.H = 64;
    s.W = 48;
    s.T = 4;
    FvTrainer *tr = NULL;
    if (fv_trainer_new(&tr, m, &s) < 0)
        fail_msg("%s", fv_last_error());
    const size_t clip = (size_t)s.T * 3 * s.H * s.W;
    float *clips = malloc(sizeof(float) * clip * 2);
    assert_non_null(clips);
    gen_input(5, clips, clip * 2);
    const int32_t labels[2] = { 0, 4 };
    float loss;
    assert_int_equal(fv_trainer_backward(tr, clips, labels, 2, &loss, NULL), 0);
    const size_t n = fv_trainer_num_params(tr);
    float *g = malloc(sizeof(float) * n);
    assert_non_null(g);
    memcpy(g, fv_trainer_grads(tr), sizeof(float) * n);
    float *p = fv_trainer_params(tr);

    /* the GEMM reference backend accumulates in double: less rounding noise in the differences */
    const FvGemmBackend prev = fv_gemm_backend();
    fv_gemm_set_backend(FV_GEMM_REF);
    uint64_t rs = 99;
    double worst = 0.0;
    int checked = 0;
    for (int tries = 0; checked < 12 && tries < 2000; tries++) {
        const int32_t ti = (int32_t)(fv_rand_u64(&rs) % (uint64_t)fv_trainer_num_tensors(tr));
        const FvTrainTensor *t = fv_trainer_tensor(tr, ti);
        const size_t idx = t->offset + fv_rand_u64(&rs) % t->count;
        if (fabsf(g[idx]) < 1e-2f)
            continue; /* below the differences' noise floor */
        const float h = 1e-2f, orig = p[idx];
        float lp, lm;
        p[idx] = orig + h;
        assert_int_equal(fv_trainer_backward(tr, clips, labels, 2, &lp, NULL), 0);
        p[idx] = orig - h;
        assert_int_equal(fv_trainer_backward(tr, clips, labels, 2, &lm, NULL), 0);
        p[idx] = orig;
        const double fd = ((double)lp - lm) / (2.0 * h);
        const double err = fabs(fd - g[idx]) / fmax(fabs(g[idx]), 0.1);
        printf("%s: %s[%zu]: analytic %.6g, finite difference %.6g\n", what, t->name, idx - t->offset, g[idx], fd);
        worst = fmax(worst, err);
        checked++;
    }
    fv_gemm_set_backend(prev);
    printf("%s: %d parameters, largest relative difference %.3g\n", what, checked, worst);
    assert_true(checked >= 8);
    assert_true(worst < 2e-2);
    free(g);
    free(clips);
    fv_trainer_close(&tr);
    fv_model_close(&m);
}

static void test_finite_differences(void **state)
{
    (void)state;
    FvAttnSettings d, fz, fe;
    fv_attn_default_settings(&d);
    fz = d;
    fz.kind = FV_ATTN_FIB;
    fz.semantics = FV_FIB_ZERO;
    fe = fz;
    fe.semantics = FV_FIB_EXCLUDE;
    fd_check(&fz, &fe, "fib zero/exclude");
}

/* ---- optimizer pieces ---- */

static void test_loss(void **state)
{
    (void)state;
    /* uniform logits: loss log C whatever the smoothing */
    float z[10] = { 0 }, dz[10];
    int32_t lab[2] = { 1, 3 }, correct = -1;
    double l = fv_loss_ce_smooth(z, lab, 2, 5, 0.1f, dz, &correct);
    printf("uniform logits: loss %.9f, log 5 = %.9f\n", l, log(5.0));
    assert_true(fabs(l - log(5.0)) < 1e-9);
    /* gradient against central differences in double */
    uint64_t rs = 3;
    for (int i = 0; i < 10; i++)
        z[i] = 2.0f * fv_rand_normal(&rs);
    fv_loss_ce_smooth(z, lab, 2, 5, 0.1f, dz, &correct);
    double worst = 0.0;
    for (int i = 0; i < 10; i++) {
        float zp[10], zm[10];
        memcpy(zp, z, sizeof(z));
        memcpy(zm, z, sizeof(z));
        zp[i] += 1e-3f;
        zm[i] -= 1e-3f;
        const double fd = (fv_loss_ce_smooth(zp, lab, 2, 5, 0.1f, NULL, NULL) -
                           fv_loss_ce_smooth(zm, lab, 2, 5, 0.1f, NULL, NULL)) / ((double)zp[i] - zm[i]);
        worst = fmax(worst, fabs(fd - dz[i]));
    }
    printf("loss gradient vs central differences: max abs diff %g\n", worst);
    assert_true(worst < 1e-6);
    /* smoothing 0: plain cross-entropy */
    const double l0 = fv_loss_ce_smooth(z, lab, 1, 5, 0.0f, NULL, NULL);
    double se = 0.0;
    for (int i = 0; i < 5; i++)
        se += exp(z[i]);
    assert_true(fabs(l0 - (log(se) - z[1])) < 1e-9);
}

static void test_clip(void **state)
{
    (void)state;
    float g[4] = { 3.0f, 0.0f, 4.0f, 0.0f };
    double n = fv_grad_clip(g, 4, 10.0f);
    assert_true(fabs(n - 5.0) < 1e-9 && g[0] == 3.0f); /* under the limit: untouched */
    n = fv_grad_clip(g, 4, 1.0f);
    const double after = sqrt((double)g[0] * g[0] + (double)g[2] * g[2]);
    printf("clip to 1: norm before %g, after %.9f\n", n, after);
    assert_true(fabs(n - 5.0) < 1e-9);
    assert_true(fabs(after - 1.0) < 1e-6);
}

static void test_adamw_formula(void **state)
{
    (void)state;
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.weight_decay = 0.1f;
    float p[3] = { 1.0f, -2.0f, 0.5f }, m[3] = { 0 }, v[3] = { 0 };
    double pd[3] = { 1.0, -2.0, 0.5 }, md[3] = { 0 }, vd[3] = { 0 };
    const float lr = 0.01f;
    double worst = 0.0;
    for (int t = 1; t <= 5; t++) {
        float g[3] = { 0.3f * t, -0.1f, 0.0f };
        fv_adamw_update(p, g, m, v, 3, t, lr, &s, 1);
        for (int i = 0; i < 3; i++) {
            pd[i] -= lr * s.weight_decay * pd[i];
            md[i] = s.beta1 * md[i] + (1.0 - s.beta1) * g[i];
            vd[i] = s.beta2 * vd[i] + (1.0 - s.beta2) * (double)g[i] * g[i];
            const double mh = md[i] / (1.0 - pow(s.beta1, t)), vh = vd[i] / (1.0 - pow(s.beta2, t));
            pd[i] -= lr * mh / (sqrt(vh) + s.eps);
            worst = fmax(worst, fabs(p[i] - pd[i]));
        }
    }
    printf("AdamW vs double formula: max abs diff %g\n", worst);
    assert_true(worst < 1e-6);
    /* no decay: a zero gradient leaves the parameter alone */
    float q = 3.0f, mq = 0.0f, vq = 0.0f, gz = 0.0f;
    fv_adamw_update(&q, &gz, &mq, &vq, 1, 1, lr, &s, 0);
    assert_true(q == 3.0f);
}

static void test_schedule(void **state)
{
    (void)state;
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.lr = 1e-3f;
    s.min_lr = 1e-5f;
    s.warmup_steps = 10;
    s.total_steps = 110;
    const double mid = (1e-3 + 1e-5) / 2;
    printf("lr: step 0 %g, 9 %g, 10 %g, 60 %g, 110 %g, 500 %g\n", fv_train_lr_schedule(&s, 0),
           fv_train_lr_schedule(&s, 9), fv_train_lr_schedule(&s, 10), fv_train_lr_schedule(&s, 60),
           fv_train_lr_schedule(&s, 110), fv_train_lr_schedule(&s, 500));
    assert_true(fabs(fv_train_lr_schedule(&s, 0) - 1e-4) < 1e-9);
    assert_true(fabs(fv_train_lr_schedule(&s, 9) - 1e-3) < 1e-9);
    assert_true(fabs(fv_train_lr_schedule(&s, 10) - 1e-3) < 1e-9);
    assert_true(fabs(fv_train_lr_schedule(&s, 60) - mid) < 1e-8);
    assert_true(fabs(fv_train_lr_schedule(&s, 110) - 1e-5) < 1e-9);
    assert_true(fabs(fv_train_lr_schedule(&s, 500) - 1e-5) < 1e-9);
    assert_true(fv_train_lr_schedule(&s, 30) > fv_train_lr_schedule(&s, 31));
    s.total_steps = 0;
    assert_true(fabs(fv_train_lr_schedule(&s, 1000) - 1e-3) < 1e-9);
}

/* ---- training steps ---- */

static FvModel *random_test_model(void)
{
    FvModelConfig c;
    assert_int_equal(fv_model_config_preset(&c, "test"), 0);
    c.spatial.kind = FV_ATTN_FIB;
    c.temporal.kind = FV_ATTN_FIB;
    FvModel *m = NULL;
    assert_int_equal(fv_model_create_random(&m, &c, 7), 0);
    return m;
}

static void test_adamw_reduces_loss(void **state)
{
    (void)state;
    FvModel *m = random_test_model();
    const FvModelConfig *c = fv_model_config(m);
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.max_batch = 4;
    s.lr = 2e-3f;
    s.warmup_steps = 2;
    s.total_steps = 15;
    FvTrainer *tr = NULL;
    assert_int_equal(fv_trainer_new(&tr, m, &s), 0);

    /* the decay flags follow timm: matrices only */
    for (int32_t i = 0; i < fv_trainer_num_tensors(tr); i++) {
        const FvTrainTensor *t = fv_trainer_tensor(tr, i);
        const int want = strstr(t->name, "dense.weight") || strstr(t->name, "qkv.weight") ||
                         strstr(t->name, "projection.weight") || !strcmp(t->name, "classifier.weight");
        if (t->decay != want)
            fail_msg("%s: decay %d", t->name, t->decay);
    }

    const size_t clip = (size_t)c->num_frames * 3 * c->image_size * c->image_size;
    float *clips = malloc(sizeof(float) * clip * 4);
    assert_non_null(clips);
    gen_input(77, clips, clip * 4);
    const int32_t labels[4] = { 0, 1, 2, 3 };
    FvStepStats st[15];
    for (int i = 0; i < 15; i++) {
        if (fv_trainer_step(tr, clips, labels, 4, &st[i]) < 0)
            fail_msg("%s", fv_last_error());
        printf("step %2lld lr %.2e loss %.5f |g| %.4f correct %d (%.1f ms)\n", (long long)st[i].step, st[i].lr,
               st[i].loss, st[i].grad_norm, st[i].correct, st[i].ms);
    }
    assert_true(st[14].step == 15);
    assert_true(st[14].loss < 0.5f * st[0].loss);
    assert_true(st[14].correct == 4);

    /* the inference path sees the trained weights (its cached embeddings were dropped) */
    float lt[4 * 5], lm[5];
    assert_int_equal(fv_trainer_forward(tr, clips, 4, lt), 0);
    double d = 0.0;
    for (int b = 0; b < 4; b++) {
        assert_int_equal(fv_model_forward(m, clips + b * clip, c->num_frames, c->image_size, c->image_size, lm), 0);
        d = fmax(d, fvt_max_abs_diff(lm, lt + b * 5, 5));
    }
    printf("fv_model_forward vs fv_trainer_forward after training: max abs diff %g\n", d);
    assert_true(d < 1e-4);
    /* and again after one more step (the model had built its cache in between) */
    assert_int_equal(fv_trainer_step(tr, clips, labels, 4, NULL), 0);
    assert_int_equal(fv_trainer_forward(tr, clips, 1, lt), 0);
    assert_int_equal(fv_model_forward(m, clips, c->num_frames, c->image_size, c->image_size, lm), 0);
    d = fvt_max_abs_diff(lm, lt, 5);
    printf("after one more step: max abs diff %g\n", d);
    assert_true(d < 1e-4);
    free(clips);
    fv_trainer_close(&tr);
    fv_model_close(&m);
}

static void test_state_roundtrip(void **state)
{
    (void)state;
    char *dir = fvt_tmpdir();
    char *wpath = fvt_join(dir, "w.safetensors"), *opath = fvt_join(dir, "optim.safetensors");
    FvModel *m = load_tiny();
    const FvModelConfig *c = fv_model_config(m);
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.max_batch = 2;
    s.warmup_steps = 2;
    s.total_steps = 10;
    s.lr = 1e-3f;
    FvTrainer *tr = NULL;
    assert_int_equal(fv_trainer_new(&tr, m, &s), 0);
    const size_t clip = (size_t)c->num_frames * 3 * c->image_size * c->image_size;
    float *clips = malloc(sizeof(float) * clip * 2);
    assert_non_null(clips);
    gen_input(9, clips, clip * 2);
    const int32_t labels[2] = { 2, 0 };
    for (int i = 0; i < 2; i++)
        assert_int_equal(fv_trainer_step(tr, clips, labels, 2, NULL), 0);
    if (fv_model_save(m, wpath) < 0 || fv_trainer_save_state(tr, opath) < 0)
        fail_msg("%s", fv_last_error());
    FvStepStats a, b;
    assert_int_equal(fv_trainer_step(tr, clips, labels, 2, &a), 0);

    FvModel *m2 = NULL;
    if (fv_model_load(&m2, wpath) < 0)
        fail_msg("%s", fv_last_error());
    FvTrainer *tr2 = NULL;
    assert_int_equal(fv_trainer_new(&tr2, m2, &s), 0);
    if (fv_trainer_load_state(tr2, opath) < 0)
        fail_msg("%s", fv_last_error());
    assert_int_equal(fv_trainer_step(tr2, clips, labels, 2, &b), 0);
    const size_t n = fv_trainer_num_params(tr);
    assert_int_equal(fv_trainer_num_params(tr2), n);
    const double d = fvt_max_abs_diff(fv_trainer_params(tr), fv_trainer_params(tr2), n);
    printf("resumed vs continued: step %lld/%lld lr %g/%g loss %g/%g, parameters max abs diff %g\n",
           (long long)a.step, (long long)b.step, a.lr, b.lr, a.loss, b.loss, d);
    assert_true(a.step == 3 && b.step == 3 && a.lr == b.lr);
    assert_true(d < 1e-6);

    /* a state of another size is refused, naming the file, and the trainer keeps its state */
    FvModelConfig c3;
    assert_int_equal(fv_model_config_preset(&c3, "test"), 0);
    c3.num_labels = 7;
    FvModel *m3 = NULL;
    assert_int_equal(fv_model_create_random(&m3, &c3, 1), 0);
    FvTrainer *tr3 = NULL;
    assert_int_equal(fv_trainer_new(&tr3, m3, &s), 0);
    int r = fv_trainer_load_state(tr3, opath);
    printf("wrong size: %d %s\n", r, fv_last_error());
    assert_true(r < 0 && strstr(fv_last_error(), "optim.safetensors"));
    r = fv_trainer_load_state(tr3, wpath); /* a model file is not an optimizer state */
    printf("not a state: %d %s\n", r, fv_last_error());
    assert_true(r < 0);
    FvOptimState os;
    fv_trainer_optim_state(tr3, &os);
    assert_true(os.step == 0);

    fv_trainer_close(&tr3);
    fv_model_close(&m3);
    fv_trainer_close(&tr2);
    fv_model_close(&m2);
    fv_trainer_close(&tr);
    fv_model_close(&m);
    free(clips);
    fvt_rmtree(dir);
    free(wpath);
    free(opath);
    free(dir);
}

static void hook_final(void *user, const char *name, const float *data, int64_t rows, int64_t cols)
{
    if (!strcmp(name, "final_norm"))
        memcpy(user, data, sizeof(float) * (size_t)(rows * cols));
}

static void test_reset_classifier(void **state)
{
    (void)state;
    FvModel *m = load_tiny();
    const FvModelConfig *c = fv_model_config(m);
    const int32_t T = c->num_frames, S = c->image_size;
    const size_t clip = (size_t)T * 3 * S * S;
    float *x = malloc(sizeof(float) * clip), before[48], after[48], logits[8];
    assert_non_null(x);
    gen_input(4, x, clip);
    FvState *rs = NULL;
    assert_int_equal(fv_state_create(&rs, m), 0);
    fv_state_set_hook(rs, hook_final, before);
    assert_int_equal(fv_state_forward(rs, x, 1, T, S, S, logits), 0);
    const int64_t np = fv_model_num_params(m);
    char *names[7] = { "a", "b", "c", "d", "e", "f", "g" };
    assert_int_equal(fv_model_reset_classifier(m, 7, names, 1), 0);
    assert_int_equal(c->num_labels, 7);
    assert_string_equal(fv_model_label(m, 6), "g");
    assert_int_equal(fv_model_num_params(m), np + 2 * 49);
    fv_state_set_hook(rs, hook_final, after); /* the state follows the model's new label count */
    assert_int_equal(fv_state_forward(rs, x, 1, T, S, S, logits), 0);
    const double d = fvt_max_abs_diff(before, after, 48);
    printf("final_norm before/after the classifier reset: max abs diff %g\n", d);
    assert_true(d == 0.0);
    fv_state_close(&rs);
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.max_batch = 1;
    FvTrainer *tr = NULL;
    assert_int_equal(fv_trainer_new(&tr, m, &s), 0);
    const int32_t lab = 6;
    FvStepStats st;
    assert_int_equal(fv_trainer_step(tr, x, &lab, 1, &st), 0);
    printf("7-class step: loss %g (log 7 = %g)\n", st.loss, log(7.0));
    assert_true(fabs(logits[6]) < 1.0f); /* a fresh small head: near-uniform predictions */
    assert_true(fabs(st.loss - log(7.0)) < 0.5);
    fv_trainer_close(&tr);
    fv_model_close(&m);
    free(x);
}

static void test_bad_input(void **state)
{
    (void)state;
    FvModel *m = random_test_model();
    FvTrainSettings s;
    fv_train_default_settings(&s);
    FvTrainer *tr = NULL;
    s.H = 40; /* not a multiple of the patch */
    int r = fv_trainer_new(&tr, m, &s);
    printf("H=40: %s\n", fv_last_error());
    assert_int_equal(r, FV_EINVAL);
    assert_null(tr);
    fv_train_default_settings(&s);
    s.beta2 = 1.0f;
    assert_int_equal(fv_trainer_new(&tr, m, &s), FV_EINVAL);
    fv_train_default_settings(&s);
    s.max_batch = 2;
    assert_int_equal(fv_trainer_new(&tr, m, &s), 0);
    float *x = calloc((size_t)4 * 3 * 32 * 32 * 3, sizeof(float));
    assert_non_null(x);
    int32_t lab[3] = { 0, 9, 1 };
    r = fv_trainer_step(tr, x, lab, 3, NULL);
    printf("B=3: %s\n", fv_last_error());
    assert_int_equal(r, FV_EINVAL);
    r = fv_trainer_step(tr, x, lab, 2, NULL);
    printf("label 9: %s\n", fv_last_error());
    assert_int_equal(r, FV_EINVAL);
    assert_int_equal(fv_trainer_step(tr, x, lab, 0, NULL), FV_EINVAL);
    assert_int_equal(fv_trainer_step(tr, NULL, lab, 1, NULL), FV_EINVAL);
    /* a non-finite input is refused before any work */
    x[5] = NAN;
    r = fv_trainer_step(tr, x, lab, 1, NULL);
    printf("NaN input: %s\n", fv_last_error());
    assert_int_equal(r, FV_EINVAL);
    x[5] = 0.0f;
    /* a non-finite loss (a diverged model): the update is skipped and the weights stay as they were */
    const size_t n = fv_trainer_num_params(tr);
    const FvTrainTensor *hb = fv_trainer_tensor(tr, fv_trainer_num_tensors(tr) - 1);
    assert_string_equal(hb->name, "classifier.bias");
    fv_trainer_params(tr)[hb->offset] = INFINITY;
    float *p0 = malloc(sizeof(float) * n);
    assert_non_null(p0);
    memcpy(p0, fv_trainer_params(tr), sizeof(float) * n);
    FvStepStats st;
    r = fv_trainer_step(tr, x, lab, 1, &st);
    printf("infinite logit: %s\n", fv_last_error());
    assert_int_equal(r, FV_ERANGE);
    assert_true(st.step == 0);
    assert_true(memcmp(p0, fv_trainer_params(tr), sizeof(float) * n) == 0);
    assert_int_equal(fv_model_reset_classifier(m, 0, NULL, 1), FV_EINVAL);
    free(p0);
    free(x);
    fv_trainer_close(&tr);
    fv_trainer_close(&tr); /* accepts NULL */
    fv_model_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_adamw_formula),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_grad_dense),
        cmocka_unit_test(test_grad_fib_zero),
        cmocka_unit_test(test_grad_fib_exclude),
        cmocka_unit_test(test_grad_linear),
        cmocka_unit_test(test_grad_psvit),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_adamw_reduces_loss),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_reset_classifier),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
