/* Attention kernels: the fast paths (dense, Fibottention zero and exclude) against the kinds' dense masked
 * references (fv_attn_forward_ref), over spatial (cls) and temporal (no cls) shapes, both offset variants,
 * shuffle on/off and custom windows; plus the Fibottention kernel entry with arbitrary row strides against a
 * reference written here from the plan's raw offsets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention.h"
#include "kernels/fibottention.h"
#include "kernels/gemm_packed.h"
#include "util/util.h"
#include "testutil.h"

#define TOL 1e-5

typedef struct Case {
    FvAttnKind kind;
    int32_t N, has_cls, H, hd, B;
    int32_t wmin, wmax, shuffle;
    float amp; /* q and k scale: larger values give peaked softmaxes */
} Case;

static float *random_qkv(int64_t n, uint64_t seed, float amp)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    assert_non_null(x);
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++)
        x[i] = amp * fv_rand_normal(&s);
    return x;
}

/* Fast vs reference for one case under one variant and semantics; returns the max abs difference. */
static double run_case(const Case *c, FvFibVariant variant, FvFibSemantics sem, int32_t layer, uint64_t seed)
{
    FvAttnSettings s;
    memset(&s, 0, sizeof(s));
    s.kind = c->kind;
    s.variant = variant;
    s.semantics = sem;
    s.wmin = c->wmin;
    s.wmax = c->wmax;
    s.shuffle = c->shuffle;
    FvAttnPlan p;
    assert_int_equal(fv_attn_plan_init(&p, &s, layer, c->N, c->has_cls, c->H, c->hd), 0);
    const int64_t nin = (int64_t)c->B * c->N * 3 * c->H * c->hd, nout = (int64_t)c->B * c->N * c->H * c->hd;
    float *qkv = random_qkv(nin, seed, 1.0f);
    /* scale q and k only: peaked softmaxes, outputs still O(1) so an absolute bound stays meaningful */
    const int64_t row = (int64_t)c->H * c->hd;
    for (int64_t i = 0; i < nin; i++)
        if ((i / row) % 3 < 2)
            qkv[i] *= c->amp;
    float *fast = malloc(sizeof(float) * (size_t)nout), *ref = malloc(sizeof(float) * (size_t)nout);
    assert_non_null(fast);
    assert_non_null(ref);
    for (int64_t i = 0; i < nout; i++)
        fast[i] = ref[i] = NAN; /* every output must be written */
    assert_int_equal(fv_attn_forward(&p, qkv, fast, NULL, c->B, NULL, NULL), 0);
    fv_attn_forward_ref(&p, NULL, qkv, ref, NULL, c->B);
    double d = 0;
    for (int64_t i = 0; i < nout; i++) {
        double e = fabs((double)fast[i] - ref[i]);
        if (!(e <= d)) /* NaN-safe: a NaN makes d NaN, failing the bound */
            d = e;
    }
    free(qkv);
    free(fast);
    free(ref);
    fv_attn_plan_free(&p);
    return d;
}

static void run_table(const Case *cases, int ncase, const char *name)
{
    double worst = 0;
    int runs = 0;
    for (int i = 0; i < ncase; i++) {
        const Case *c = &cases[i];
        const int nv = c->kind == FV_ATTN_FIB ? 2 : 1;
        for (int v = 0; v < nv; v++)
            for (int sm = 0; sm < nv; sm++) {
                int32_t layer = (i * 5 + v * 3 + sm) % 12;
                double d = run_case(c, (FvFibVariant)v, (FvFibSemantics)sm, layer, 1000u + (uint64_t)i * 17 + v * 2 + sm);
                printf("%s N=%d cls=%d H=%d hd=%d B=%d w=[%d,%d] shuffle=%d %s %s layer %d: max abs diff %g\n",
                       name, c->N, c->has_cls, c->H, c->hd, c->B, c->wmin, c->wmax, c->shuffle,
                       c->kind == FV_ATTN_DENSE ? "dense" : v == 0 ? "modified" : "original",
                       c->kind == FV_ATTN_DENSE ? "" : sm == 0 ? "zero" : "exclude", layer, d);
                assert_true(d <= TOL);
                worst = d > worst ? d : worst;
                runs++;
            }
    }
    printf("%s: %d runs, max abs diff %g\n", name, runs, worst);
}

static void test_dense(void **state)
{
    (void)state;
    static const Case cases[] = {
        {FV_ATTN_DENSE, 197, 1, 12, 64, 1, 0, 0, 0, 1.0f},
        {FV_ATTN_DENSE, 8, 0, 12, 64, 3, 0, 0, 0, 1.0f},
        {FV_ATTN_DENSE, 50, 1, 3, 8, 2, 0, 0, 0, 2.0f},
        {FV_ATTN_DENSE, 1, 0, 2, 16, 1, 0, 0, 0, 1.0f},
    };
    run_table(cases, (int)(sizeof(cases) / sizeof(cases[0])), "dense");
}

static void test_fib_spatial(void **state)
{
    (void)state;
    static const Case cases[] = {
        {FV_ATTN_FIB, 197, 1, 12, 64, 1, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 197, 1, 12, 64, 2, 0, 0, 0, 2.0f},
        {FV_ATTN_FIB, 2, 1, 3, 8, 2, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 5, 1, 12, 16, 3, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 17, 1, 1, 32, 2, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 51, 1, 3, 24, 1, 0, 0, 1, 2.0f},
        {FV_ATTN_FIB, 101, 1, 6, 64, 3, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 101, 1, 12, 8, 1, 2, 40, 1, 1.0f},   /* custom window */
        {FV_ATTN_FIB, 65, 1, 5, 16, 1, 30, 10, 0, 1.0f},   /* w_min > w_max */
        {FV_ATTN_FIB, 129, 1, 4, 40, 1, 1, 1, 1, 1.0f},    /* tiny windows */
        {FV_ATTN_FIB, 197, 1, 16, 12, 1, 5, 150, 1, 2.5f}, /* 16 heads, peaked softmax */
        {FV_ATTN_FIB, 785, 1, 12, 8, 1, 0, 0, 1, 1.0f},    /* 28 x 28 patches, every head slot */
        {FV_ATTN_FIB, 785, 1, 2, 64, 1, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 300, 1, 2, 136, 1, 0, 0, 1, 0.5f},   /* head wider than the register accumulator */
        {FV_ATTN_FIB, 150, 1, 2, 128, 2, 0, 0, 1, 0.7f},
        {FV_ATTN_FIB, 90, 1, 4, 48, 1, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 60, 1, 3, 96, 1, 3, 30, 0, 1.0f},
    };
    run_table(cases, (int)(sizeof(cases) / sizeof(cases[0])), "fib spatial");
}

static void test_fib_temporal(void **state)
{
    (void)state;
    static const Case cases[] = {
        {FV_ATTN_FIB, 8, 0, 12, 64, 3, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 8, 0, 12, 64, 2, 0, 0, 0, 2.0f},
        {FV_ATTN_FIB, 1, 0, 3, 8, 2, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 2, 0, 1, 16, 1, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 4, 0, 6, 32, 2, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 16, 0, 12, 64, 1, 0, 0, 1, 1.0f},
        {FV_ATTN_FIB, 32, 0, 3, 24, 3, 2, 20, 1, 1.0f},
        {FV_ATTN_FIB, 196, 0, 12, 16, 1, 5, 65, 1, 1.0f},  /* spatial offsets without cls */
        {FV_ATTN_FIB, 12, 0, 2, 128, 2, 0, 0, 1, 1.0f},
    };
    run_table(cases, (int)(sizeof(cases) / sizeof(cases[0])), "fib temporal");
}

/* Zero and exclude must differ where masked keys exist, and exclude with a temporal window covering
 * every frame is plain dense attention. */
static void test_semantics(void **state)
{
    (void)state;
    const int32_t N = 50, H = 3, hd = 16;
    float *qkv = random_qkv((int64_t)N * 3 * H * hd, 5, 1.0f);
    float *o[3];
    for (int i = 0; i < 3; i++) {
        o[i] = malloc(sizeof(float) * N * H * hd);
        assert_non_null(o[i]);
    }
    FvAttnSettings s;
    FvAttnPlan p;
    memset(&s, 0, sizeof(s));
    s.kind = FV_ATTN_FIB;
    s.shuffle = 1;
    for (int i = 0; i < 2; i++) {
        s.semantics = (FvFibSemantics)i;
        assert_int_equal(fv_attn_plan_init(&p, &s, 0, N, 1, H, hd), 0);
        assert_int_equal(fv_attn_forward(&p, qkv, o[i], NULL, 1, NULL, NULL), 0);
        fv_attn_plan_free(&p);
    }
    double d = fvt_max_abs_diff(o[0], o[1], (size_t)N * H * hd);
    printf("zero vs exclude: max abs diff %g\n", d);
    assert_true(d > 1e-3);

    /* temporal, T = 3: offsets 0, 1, 1, 2 reach every frame (modified head 1, w_max = 2) */
    const int32_t T = 3;
    s.kind = FV_ATTN_FIB;
    s.semantics = FV_FIB_EXCLUDE;
    s.variant = FV_FIB_MODIFIED;
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, T, 0, 1, hd), 0);
    assert_int_equal(p.noff[0], 3);
    assert_int_equal(fv_attn_forward(&p, qkv, o[0], NULL, 1, NULL, NULL), 0);
    fv_attn_plan_free(&p);
    s.kind = FV_ATTN_DENSE;
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, T, 0, 1, hd), 0);
    assert_int_equal(fv_attn_forward(&p, qkv, o[1], NULL, 1, NULL, NULL), 0);
    fv_attn_plan_free(&p);
    d = fvt_max_abs_diff(o[0], o[1], (size_t)T * hd);
    printf("full-window exclude vs dense: max abs diff %g\n", d);
    assert_true(d <= TOL);
    for (int i = 0; i < 3; i++)
        free(o[i]);
    free(qkv);
}

/* Independent reference for one head: row strides ld / ldo, mask from the plan's offsets. */
static void head_ref(const FvAttnPlan *p, int32_t h, const float *q, const float *k, const float *v, int32_t ld,
                     float *out, int32_t ldo)
{
    const int32_t N = p->N, c = p->has_cls, hd = p->hd;
    double *s = malloc(sizeof(double) * (size_t)N);
    assert_non_null(s);
    for (int32_t i = 0; i < N; i++) {
        double m = -INFINITY;
        for (int32_t j = 0; j < N; j++) {
            int on = c && (i == 0 || j == 0);
            if (!on) {
                int32_t dist = abs(i - j);
                for (int32_t t = 0; t < p->raw_noff[h]; t++)
                    on |= p->raw_off[h * p->raw_max + t] == dist;
                on |= !c && dist == 0; /* temporal: own frame */
            }
            double dot = 0;
            for (int32_t e = 0; e < hd; e++)
                dot += (double)q[i * ld + e] * k[j * ld + e];
            dot /= sqrt((double)hd);
            s[j] = on ? dot : p->s.semantics == FV_FIB_ZERO ? 0.0 : -INFINITY;
            m = s[j] > m ? s[j] : m;
        }
        double z = 0;
        for (int32_t j = 0; j < N; j++)
            z += (s[j] = exp(s[j] - m));
        for (int32_t e = 0; e < hd; e++) {
            double acc = 0;
            for (int32_t j = 0; j < N; j++)
                acc += s[j] * v[j * ld + e];
            out[i * ldo + e] = (float)(acc / z);
        }
    }
    free(s);
}

static void test_head_strides(void **state)
{
    (void)state;
    const struct { int32_t N, has_cls, H, hd, ld, ldo; } shapes[] = {
        {197, 1, 12, 64, 67, 70}, {37, 1, 3, 20, 21, 25}, {8, 0, 12, 64, 64, 64}, {5, 0, 2, 8, 11, 9},
    };
    double worst = 0;
    for (size_t t = 0; t < sizeof(shapes) / sizeof(shapes[0]); t++)
        for (int sm = 0; sm < 2; sm++) {
            FvAttnSettings s;
            FvAttnPlan p;
            memset(&s, 0, sizeof(s));
            s.kind = FV_ATTN_FIB;
            s.semantics = (FvFibSemantics)sm;
            s.variant = (FvFibVariant)(t & 1);
            s.shuffle = 1;
            const int32_t N = shapes[t].N, ld = shapes[t].ld, ldo = shapes[t].ldo, hd = shapes[t].hd;
            assert_int_equal(fv_attn_plan_init(&p, &s, (int32_t)t + 3, N, shapes[t].has_cls, shapes[t].H, hd), 0);
            float *q = random_qkv((int64_t)N * ld, 40 + t, 1.5f), *k = random_qkv((int64_t)N * ld, 50 + t, 1.5f);
            float *v = random_qkv((int64_t)N * ld, 60 + t, 1.0f);
            float *o1 = calloc((size_t)N * ldo, sizeof(float)), *o2 = calloc((size_t)N * ldo, sizeof(float));
            float *scr = fv_malloc(sizeof(float) * fv_attn_scratch_floats(&p));
            assert_non_null(o1);
            assert_non_null(o2);
            assert_non_null(scr);
            for (int32_t h = 0; h < p.H; h++) {
                const FvAttnHead io = { .h = h, .q = q, .k = k, .v = v, .ld = ld, .out = o1, .ldo = ldo };
                p.dsp->forward(&p, &io, scr); /* the kind's own kernel entry */
                head_ref(&p, h, q, k, v, ld, o2, ldo);
                double d = fvt_max_abs_diff(o1, o2, (size_t)N * ldo);
                worst = d > worst ? d : worst;
                assert_true(d <= TOL);
            }
            fv_free(scr);
            free(q);
            free(k);
            free(v);
            free(o1);
            free(o2);
            fv_attn_plan_free(&p);
        }
    printf("per-head kernel with row strides: max abs diff %g\n", worst);
}

/* The cls query alone (attn_cls.c): fv_attn_cls_exact for the kinds whose cls row is a softmax over every key
 * (dense, Fibottention both semantics) and not for the others (SimA, Castling-ViT, temporal plans without cls);
 * where exact, fv_attn_cls_forward (fp32 and bf16 qkv) and its double reference against row 0 of the kind's full
 * reference fv_attn_forward_ref. */
static void test_cls_query(void **state)
{
    (void)state;
    const FvAttnKind kinds[] = { FV_ATTN_DENSE, FV_ATTN_FIB, FV_ATTN_FIB, FV_ATTN_SIMA, FV_ATTN_CASTLING };
    const int32_t N = 197, H = 3, hd = 16, B = 5, D = H * hd;
    for (int k = 0; k < 5; k++) {
        FvAttnSettings s;
        fv_attn_default_settings(&s);
        s.kind = kinds[k];
        s.semantics = k == 2 ? FV_FIB_EXCLUDE : FV_FIB_ZERO;
        FvAttnPlan p, pt;
        assert_int_equal(fv_attn_plan_init(&p, &s, 3, N, 1, H, hd), 0);
        assert_int_equal(fv_attn_plan_init(&pt, &s, 3, 8, 0, H, hd), 0);
        const int exact = fv_attn_cls_exact(&p);
        printf("%s%s: cls row exact %d, temporal %d\n", p.dsp->name, k == 2 ? " (exclude)" : "", exact,
               fv_attn_cls_exact(&pt));
        assert_int_equal(exact, k < 3);
        assert_int_equal(fv_attn_cls_exact(&pt), 0);
        if (exact) {
            float *qkv = random_qkv((int64_t)B * N * 3 * D, 77 + k, 1.0f);
            for (int64_t i = 0; i < (int64_t)B * N * 3 * D; i++) /* peaked softmaxes: q and k x 3 */
                if ((i / D) % 3 < 2)
                    qkv[i] *= 3.0f;
            uint16_t *q16 = malloc(sizeof(uint16_t) * (size_t)B * N * 3 * D);
            float *full = malloc(sizeof(float) * (size_t)B * N * D), *fast = malloc(sizeof(float) * B * D);
            float *ref = malloc(sizeof(float) * B * D), *r16 = malloc(sizeof(float) * B * D);
            float *f16 = malloc(sizeof(float) * B * D);
            fv_f32_to_bf16(q16, qkv, (int64_t)B * N * 3 * D);
            fv_attn_forward_ref(&p, NULL, qkv, full, NULL, B);
            fv_attn_cls_forward(fast, qkv, 0, B, N, H, hd);
            fv_attn_cls_forward_ref(ref, qkv, 0, B, N, H, hd);
            fv_attn_cls_forward(f16, q16, 1, B, N, H, hd);
            fv_attn_cls_forward_ref(r16, q16, 1, B, N, H, hd);
            double dfast = 0, dref = 0, d16 = 0;
            for (int32_t b = 0; b < B; b++)
                for (int32_t i = 0; i < D; i++) {
                    const double want = full[(int64_t)b * N * D + i];
                    dfast = fmax(dfast, fabs(fast[b * D + i] - want));
                    dref = fmax(dref, fabs(ref[b * D + i] - want));
                    d16 = fmax(d16, fabs(f16[b * D + i] - r16[b * D + i]));
                }
            printf("  cls query vs row 0 of the full reference: fast %g, double %g; bf16 qkv fast vs its reference "
                   "%g (tol %g)\n", dfast, dref, d16, TOL);
            assert_true(dfast <= TOL && dref <= TOL && d16 <= TOL);
            free(qkv);
            free(q16);
            free(full);
            free(fast);
            free(ref);
            free(r16);
            free(f16);
        }
        fv_attn_plan_free(&p);
        fv_attn_plan_free(&pt);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_fib_spatial),
        cmocka_unit_test(test_fib_temporal),
        cmocka_unit_test(test_semantics),
        cmocka_unit_test(test_head_strides),
        cmocka_unit_test(test_cls_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
