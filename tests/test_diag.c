/* Attention diagnostics on hand-built attention whose figures are known: uniform weights (entropy log n,
 * normalised 1), one-hot weights (0), a fixed offset (known distance), identical heads (CKA 1, Jaccard 1),
 * disjoint masks (Jaccard 0), plus the collector attached to a model and the aggregation over clips. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kernels/attention.h"
#include "model/diag_internal.h"
#include "kernels/fibottention.h"
#include "fibvid/diag.h"
#include "util/util.h"
#include "testutil.h"

typedef struct Stats {
    int32_t B, H, n;
    double *ent, *entn, *dist;
    float *cls, *out;
} Stats;

/* Run plan @p over @qkv (B sequences) with statistics; tokens form a Hp x Wp grid (Wp = 0: a line). */
static void run_stats(const FvAttnPlan *p, const float *qkv, int32_t B, int32_t Hp, int32_t Wp, Stats *s)
{
    const int32_t n = p->N - (p->has_cls ? 1 : 0);
    s->B = B, s->H = p->H, s->n = n;
    s->ent = calloc((size_t)B * p->H, sizeof(double));
    s->entn = calloc((size_t)B * p->H, sizeof(double));
    s->dist = calloc((size_t)B * p->H, sizeof(double));
    s->cls = calloc((size_t)B * p->H * n, sizeof(float));
    s->out = calloc((size_t)B * p->N * p->H * p->hd, sizeof(float));
    float *dtab, *dall;
    assert_int_equal(fv_diag_geometry(Hp, Wp, &dtab, &dall), 0);
    FvAttnStats st = { .Hp = Hp, .Wp = Wp, .dtab = dtab, .dall = dall, .ent = s->ent, .ent_norm = s->entn,
                       .dist = s->dist, .cls = p->has_cls ? s->cls : NULL };
    assert_int_equal(fv_attn_forward(p, qkv, s->out, NULL, B, &st, NULL), 0);
    /* same outputs as the plain kernel */
    float *ref = calloc((size_t)B * p->N * p->H * p->hd, sizeof(float));
    assert_int_equal(fv_attn_forward(p, qkv, ref, NULL, B, NULL, NULL), 0);
    assert_true(memcmp(ref, s->out, sizeof(float) * (size_t)B * p->N * p->H * p->hd) == 0);
    free(ref);
    fv_free(dtab);
    fv_free(dall);
}

static void stats_free(Stats *s)
{
    free(s->ent);
    free(s->entn);
    free(s->dist);
    free(s->cls);
    free(s->out);
}

static float *random_qkv(int32_t B, int32_t N, int32_t H, int32_t hd, uint64_t seed, float qscale)
{
    const int64_t ld = 3 * (int64_t)H * hd;
    float *x = malloc(sizeof(float) * (size_t)(B * N * ld));
    for (int64_t i = 0; i < B * N * ld; i++) {
        x[i] = fv_rand_normal(&seed);
        if (i % ld < (int64_t)H * hd)
            x[i] *= qscale; /* queries */
    }
    return x;
}

static double grid_dist(int32_t j, int32_t k, int32_t Wp)
{
    if (!Wp)
        return fabs((double)j - k);
    double dy = j / Wp - k / Wp, dx = j % Wp - k % Wp;
    return sqrt(dy * dy + dx * dx);
}

/* plan mask, as the reference semantics define it */
static int allows(const FvAttnPlan *p, int32_t h, int32_t i, int32_t j)
{
    if (p->s.kind == FV_ATTN_DENSE)
        return 1;
    if (p->has_cls) {
        if (!i || !j)
            return 1;
        i--, j--;
    }
    int32_t d = abs(i - j);
    for (int32_t k = 0; k < p->noff[h]; k++)
        if (p->off[(int64_t)h * p->max_off + k] == d)
            return 1;
    return 0;
}

/* Uniform weights (all queries 0): dense and Fibottention-zero spread over all N keys, exclude over the
 * attended keys. Entropy per query = log(K), normalised 1; distance = mean distance to the keys. */
static void check_uniform(FvAttnKind kind, FvFibSemantics sem, int32_t Hp, int32_t Wp, int has_cls)
{
    FvAttnSettings s;
    fv_attn_default_settings(&s);
    s.kind = kind;
    s.semantics = sem;
    s.wmin = 1;
    s.wmax = has_cls ? 4 : 3;
    const int32_t n = Wp ? Hp * Wp : Hp, N = n + has_cls, H = 3, hd = 16, B = 2;
    FvAttnPlan p;
    assert_int_equal(fv_attn_plan_init(&p, &s, 1, N, has_cls, H, hd), 0);
    float *qkv = random_qkv(B, N, H, hd, 7, 0.0f);
    Stats st;
    run_stats(&p, qkv, B, Hp, Wp, &st);
    double maxd = 0;
    for (int32_t b = 0; b < B; b++)
        for (int32_t h = 0; h < H; h++) {
            double e = 0, dist = 0;
            for (int32_t i = 0; i < N; i++) {
                int32_t K = 0;
                double ds = 0;
                int32_t kp = 0;
                for (int32_t j = 0; j < N; j++) {
                    int a = kind == FV_ATTN_DENSE || sem == FV_FIB_ZERO || allows(&p, h, i, j);
                    K += a;
                    if (a && (!has_cls || (i && j))) {
                        ds += grid_dist(i - has_cls, j - has_cls, Wp);
                        kp++;
                    }
                }
                e += log((double)K);
                if (!has_cls || i)
                    dist += ds / kp;
            }
            const int64_t t = (int64_t)b * H + h;
            maxd = fmax(maxd, fabs(st.ent[t] - e) / N);
            maxd = fmax(maxd, fabs(st.entn[t] / N - 1.0));
            maxd = fmax(maxd, fabs(st.dist[t] - dist) / n);
            if (has_cls)
                for (int32_t k = 0; k < n; k++)
                    maxd = fmax(maxd, fabs(st.cls[t * n + k] - 1.0 / N));
        }
    printf("uniform kind %d sem %d grid %dx%d cls %d: max abs diff %g\n", kind, sem, Hp, Wp, has_cls, maxd);
    assert_true(maxd < 2e-5);
    stats_free(&st);
    free(qkv);
    fv_attn_plan_free(&p);
}

static void test_uniform(void **state)
{
    (void)state;
    check_uniform(FV_ATTN_DENSE, FV_FIB_ZERO, 4, 4, 1);   /* short dense kernel */
    check_uniform(FV_ATTN_DENSE, FV_FIB_ZERO, 7, 6, 1);   /* blocked dense kernel */
    check_uniform(FV_ATTN_DENSE, FV_FIB_ZERO, 8, 0, 0);   /* temporal */
    check_uniform(FV_ATTN_FIB, FV_FIB_ZERO, 7, 6, 1);     /* masked keys' shared weight counts */
    check_uniform(FV_ATTN_FIB, FV_FIB_EXCLUDE, 7, 6, 1);
    check_uniform(FV_ATTN_FIB, FV_FIB_EXCLUDE, 8, 0, 0);
    check_uniform(FV_ATTN_FIB, FV_FIB_ZERO, 8, 0, 0);
}

/* One-hot: query t meets only key t (q_t = 80 e_t, k_t = e_t, hd >= N): every weight is 0 or 1. */
static void check_onehot(FvAttnKind kind, FvFibSemantics sem, int32_t N)
{
    FvAttnSettings s;
    fv_attn_default_settings(&s);
    s.kind = kind;
    s.semantics = sem;
    const int32_t H = 2, hd = 32, B = 3;
    const int64_t ld = 3 * (int64_t)H * hd;
    FvAttnPlan p;
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, N, 0, H, hd), 0);
    float *qkv = calloc((size_t)(B * N * ld), sizeof(float));
    for (int32_t b = 0; b < B; b++)
        for (int32_t t = 0; t < N; t++)
            for (int32_t h = 0; h < H; h++) {
                float *row = qkv + ((int64_t)b * N + t) * ld;
                row[h * hd + t] = 80.0f * sqrtf((float)hd);  /* q: score 80 on its own key */
                row[(H + h) * hd + t] = 1.0f;                /* k */
                row[(2 * H + h) * hd + t] = (float)t;        /* v */
            }
    Stats st;
    run_stats(&p, qkv, B, N, 0, &st);
    double maxd = 0;
    for (int64_t t = 0; t < (int64_t)B * H; t++)
        maxd = fmax(maxd, fmax(fabs(st.ent[t]), fmax(fabs(st.entn[t]), fabs(st.dist[t]))));
    printf("one-hot kind %d sem %d N %d: max abs diff %g\n", kind, sem, N, maxd);
    assert_true(maxd < 1e-6);
    stats_free(&st);
    free(qkv);
    fv_attn_plan_free(&p);
}

static void test_onehot(void **state)
{
    (void)state;
    check_onehot(FV_ATTN_DENSE, FV_FIB_ZERO, 8);
    check_onehot(FV_ATTN_DENSE, FV_FIB_ZERO, 30);
    check_onehot(FV_ATTN_FIB, FV_FIB_EXCLUDE, 8);
    check_onehot(FV_ATTN_FIB, FV_FIB_ZERO, 16);
}

/* Hand-built plan: every head attends exactly offset @o over n tokens (no cls, exclude). */
static void hand_plan(FvAttnPlan *p, int32_t n, int32_t H, int32_t hd, const int32_t *offs)
{
    memset(p, 0, sizeof(*p));
    fv_attn_default_settings(&p->s);
    p->s.kind = FV_ATTN_FIB;
    p->s.semantics = FV_FIB_EXCLUDE;
    p->dsp = &fv_attn_fib_dsp; /* the kind's kernels on a hand-made mask */
    p->N = n;
    p->H = H;
    p->hd = hd;
    p->max_off = 1;
    p->noff = fv_malloc(sizeof(int32_t) * H);
    p->off = fv_malloc(sizeof(int32_t) * H);
    for (int32_t h = 0; h < H; h++) {
        p->noff[h] = 1;
        p->off[h] = offs[h];
    }
}

static void test_known_distance(void **state)
{
    (void)state;
    /* offset 3 over 10 frames: every key is 3 frames away, whatever the weights */
    const int32_t offs[2] = { 3, 3 };
    FvAttnPlan p;
    hand_plan(&p, 10, 2, 16, offs);
    float *qkv = random_qkv(4, 10, 2, 16, 11, 1.0f);
    Stats st;
    run_stats(&p, qkv, 4, 10, 0, &st);
    double maxd = 0;
    for (int32_t t = 0; t < 8; t++)
        maxd = fmax(maxd, fabs(st.dist[t] / 10 - 3.0));
    printf("offset 3: max abs diff %g\n", maxd);
    assert_true(maxd < 1e-5);
    stats_free(&st);
    free(qkv);
    fv_attn_plan_free(&p);

    /* spatial, exclude, 6x6 grid, uniform: patch query j attends keys j +- o along the token index, so its
     * distance is the mean of the grid distances of those keys (brute force) */
    FvAttnSettings s;
    fv_attn_default_settings(&s);
    s.kind = FV_ATTN_FIB;
    s.semantics = FV_FIB_EXCLUDE;
    s.wmin = 2;
    s.wmax = 9;
    assert_int_equal(fv_attn_plan_init(&p, &s, 3, 37, 1, 3, 16), 0);
    qkv = random_qkv(1, 37, 3, 16, 5, 0.0f);
    run_stats(&p, qkv, 1, 6, 6, &st);
    maxd = 0;
    for (int32_t h = 0; h < 3; h++) {
        double want = 0;
        for (int32_t j = 0; j < 36; j++) {
            double ds = 0;
            int32_t k = 0;
            for (int32_t x = 0; x < 36; x++)
                if (allows(&p, h, j + 1, x + 1)) {
                    ds += grid_dist(j, x, 6);
                    k++;
                }
            want += ds / k;
        }
        maxd = fmax(maxd, fabs(st.dist[h] - want) / 36);
    }
    printf("spatial offsets on a 6x6 grid: max abs diff %g\n", maxd);
    assert_true(maxd < 1e-5);
    stats_free(&st);
    free(qkv);
    fv_attn_plan_free(&p);
}

static void test_jaccard(void **state)
{
    (void)state;
    const int32_t disjoint[2] = { 1, 2 }, same[2] = { 2, 2 };
    FvAttnPlan p;
    hand_plan(&p, 12, 2, 16, disjoint);
    double j01 = fv_diag_plan_jaccard(&p, 0, 1), j00 = fv_diag_plan_jaccard(&p, 0, 0);
    printf("disjoint masks: jaccard %g, self %g\n", j01, j00);
    assert_true(j01 == 0.0 && j00 == 1.0);
    fv_attn_plan_free(&p);
    hand_plan(&p, 12, 2, 16, same);
    assert_true(fv_diag_plan_jaccard(&p, 0, 1) == 1.0);
    fv_attn_plan_free(&p);
    FvAttnSettings s;
    fv_attn_default_settings(&s); /* dense: every head attends every pair */
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, 50, 1, 4, 16), 0);
    assert_true(fv_diag_plan_jaccard(&p, 1, 3) == 1.0);
    fv_attn_plan_free(&p);
    /* Fibottention: the library's Jaccard from the plan's offsets, strictly between 0 and 1 */
    s.kind = FV_ATTN_FIB;
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, 197, 1, 12, 64), 0);
    double j = fv_diag_plan_jaccard(&p, 0, 5);
    double want = fv_fib_jaccard(p.off, p.noff[0], p.off + 5 * p.max_off, p.noff[5], 196, 1);
    printf("fib heads 0,5: jaccard %g (library %g)\n", j, want);
    assert_true(j == want && j > 0.0 && j < 1.0);
    fv_attn_plan_free(&p);
}

/* double-precision reference of linear CKA with centred columns */
static double ref_cka(const float *X, const float *Y, int64_t rows, int64_t ld, int32_t hd)
{
    double *mx = calloc((size_t)hd, sizeof(double)), *my = calloc((size_t)hd, sizeof(double));
    for (int64_t t = 0; t < rows; t++)
        for (int32_t c = 0; c < hd; c++) {
            mx[c] += X[t * ld + c] / (double)rows;
            my[c] += Y[t * ld + c] / (double)rows;
        }
    double yx = 0, xx = 0, yy = 0;
    for (int32_t a = 0; a < hd; a++)
        for (int32_t b = 0; b < hd; b++) {
            double s1 = 0, s2 = 0, s3 = 0;
            for (int64_t t = 0; t < rows; t++) {
                double xa = X[t * ld + a] - mx[a], xb = X[t * ld + b] - mx[b];
                double ya = Y[t * ld + a] - my[a], yb = Y[t * ld + b] - my[b];
                s1 += ya * xb;
                s2 += xa * xb;
                s3 += ya * yb;
            }
            yx += s1 * s1;
            xx += s2 * s2;
            yy += s3 * s3;
        }
    free(mx);
    free(my);
    return yx / sqrt(xx * yy);
}

static void test_similarity(void **state)
{
    (void)state;
    const int32_t H = 4, hd = 16, D = H * hd;
    const int64_t rows = 300;
    float *X = malloc(sizeof(float) * rows * D), *xc = malloc(sizeof(float) * rows * D);
    float *gram = malloc(sizeof(float) * D * D);
    uint64_t seed = 3;
    /* head 0 random (with an offset: centring matters); head 1 = head 0 rotated (Givens on each pair of
     * columns) and scaled by 3: CKA 1; head 2 = head 0 + 1: Frobenius sqrt(rows * hd); head 3 random */
    const float cs = cosf(0.7f), sn = sinf(0.7f);
    for (int64_t t = 0; t < rows; t++) {
        float *r = X + t * D;
        for (int32_t c = 0; c < hd; c++) {
            r[c] = fv_rand_normal(&seed) + 2.0f;
            r[3 * hd + c] = fv_rand_normal(&seed);
        }
        for (int32_t c = 0; c < hd; c += 2) {
            r[hd + c] = 3.0f * (cs * r[c] - sn * r[c + 1]);
            r[hd + c + 1] = 3.0f * (sn * r[c] + cs * r[c + 1]);
        }
        for (int32_t c = 0; c < hd; c++)
            r[2 * hd + c] = r[c] + 1.0f;
    }
    double cka[16], cosv[16], frob[16];
    fv_diag_head_sims(X, rows, D, H, hd, xc, gram, cka, cosv, frob);
    double d = 0;
    d = fmax(d, fabs(cka[0 * H + 1] - 1.0));
    d = fmax(d, fabs(cka[0 * H + 2] - 1.0)); /* a shift is removed by the centring */
    d = fmax(d, fabs(frob[0 * H + 2] - sqrt((double)rows * hd)) / sqrt((double)rows * hd));
    for (int32_t a = 0; a < H; a++) {
        d = fmax(d, fabs(cka[a * H + a] - 1.0) + fabs(cosv[a * H + a] - 1.0) + fabs(frob[a * H + a]));
        for (int32_t b = 0; b < H; b++) {
            d = fmax(d, fabs(cka[a * H + b] - cka[b * H + a]));
            d = fmax(d, fabs(cka[a * H + b] - ref_cka(X + a * hd, X + b * hd, rows, D, hd)));
            double dot = 0, na = 0, nb = 0, sq = 0;
            for (int64_t t = 0; t < rows; t++)
                for (int32_t c = 0; c < hd; c++) {
                    double xa = X[t * D + a * hd + c], xb = X[t * D + b * hd + c];
                    dot += xa * xb, na += xa * xa, nb += xb * xb, sq += (xa - xb) * (xa - xb);
                }
            d = fmax(d, fabs(cosv[a * H + b] - dot / sqrt(na * nb)));
            d = fmax(d, fabs(frob[a * H + b] - sqrt(sq)) / fmax(1.0, sqrt(sq)));
        }
    }
    printf("CKA / cosine / Frobenius vs double reference: max abs diff %g (cka(0,3) = %g)\n", d, cka[3]);
    assert_true(d < 1e-4);
    assert_true(cka[3] < 0.3); /* independent heads */
    free(X);
    free(xc);
    free(gram);
}

/* The collector on a model: identical outputs, sane figures, identical heads in the head sims. */
static void test_model(void **state)
{
    (void)state;
    FvModelConfig c;
    assert_int_equal(fv_model_config_preset(&c, "test"), 0);
    FvModel *m = NULL;
    assert_int_equal(fv_model_create_random(&m, &c, 42), 0);
    const int32_t T = c.num_frames, S = c.image_size, L = c.num_labels;
    const int64_t nf = (int64_t)T * 3 * S * S;
    float *frames = malloc(sizeof(float) * nf), *l0 = malloc(sizeof(float) * L), *l1 = malloc(sizeof(float) * L);
    uint64_t seed = 9;
    for (int64_t i = 0; i < nf; i++)
        frames[i] = fv_rand_normal(&seed);
    FvAttnSettings fib;
    fv_attn_default_settings(&fib);
    fib.kind = FV_ATTN_FIB;
    for (int k = 0; k < 2; k++) {
        if (k == 1)
            assert_int_equal(fv_model_set_attention(m, &fib, &fib), 0);
        FvDiag *d = NULL;
        assert_int_equal(fv_diag_create(&d), 0);
        assert_null(fv_diag_result(d));
        assert_int_equal(fv_model_forward(m, frames, T, S, S, l0), 0);
        FvState *st = NULL;
        assert_int_equal(fv_state_create(&st, m), 0);
        assert_int_equal(fv_state_set_diag(st, d), 0);
        assert_int_equal(fv_state_forward(st, frames, 1, T, S, S, l1), 0);
        assert_int_equal(fv_state_forward(st, frames, 1, T, S, S, l1), 0);
        double diff = fvt_max_abs_diff(l0, l1, L);
        printf("%s: logits with diagnostics vs without: max abs diff %g\n", k ? "fib" : "dense", diff);
        assert_true(diff == 0.0);
        const FvDiagResult *r = fv_diag_result(d);
        assert_non_null(r);
        assert_int_equal(r->count, 2);
        assert_int_equal(r->num_layers, c.num_layers);
        const int32_t H = r->num_heads, P = r->grid_h * r->grid_w;
        for (int32_t l = 0; l < r->num_layers; l++)
            for (int a = 0; a < 2; a++) {
                const FvDiagAttn *A = &r->layer[l].attn[a];
                const int32_t N = a == 0 ? 1 + P : T;
                for (int32_t h = 0; h < H; h++) {
                    const FvDiagHead *hs = &A->head[h];
                    assert_true(hs->entropy > 0 && hs->entropy <= log(N) + 1e-6);
                    assert_true(hs->entropy_norm > 0 && hs->entropy_norm <= 1 + 1e-6);
                    assert_true(hs->density > 0 && hs->density <= 1);
                    if (k == 0)
                        assert_true(hs->density == 1.0 && A->jaccard[h * H] == 1.0);
                    assert_true(fabs(A->cka[h * H + h] - 1) < 1e-9);
                    assert_true(hs->mean_distance >= 0);
                    if (a == 0) {
                        double sum = 0;
                        for (int32_t x = 0; x < P; x++)
                            sum += r->layer[l].cls_attention[h * P + x];
                        assert_true(sum > 0 && sum < 1);
                        assert_true(fabs(hs->mean_distance_px - hs->mean_distance * c.patch_size) < 1e-9);
                    }
                    for (int32_t g = 0; g < H; g++) {
                        assert_true(A->cka[h * H + g] >= -1e-9 && A->cka[h * H + g] <= 1 + 1e-6);
                        assert_true(A->cka[h * H + g] == A->cka[g * H + h]);
                    }
                }
            }
        /* another shape without a reset is refused; after a reset it is taken */
        assert_int_equal(fv_state_forward(st, frames, 1, T / 2, S, S, l1), FV_EINVAL);
        fv_diag_reset(d);
        assert_null(fv_diag_result(d));
        assert_int_equal(fv_state_forward(st, frames, 1, T / 2, S, S, l1), 0);
        assert_non_null(fv_diag_result(d));
        char *text = fv_diag_result_json(fv_diag_result(d), 0);
        assert_non_null(text);
        json_t *j = json_loads(text, 0, NULL);
        free(text);
        assert_non_null(j);
        assert_int_equal(json_array_size(json_object_get(j, "layer")), c.num_layers);
        json_decref(j);
        fv_state_close(&st);
        fv_diag_close(&d);
        assert_null(d);
    }
    fv_model_close(&m);
    free(frames);
    free(l0);
    free(l1);
}

/* identical heads through the kernels: every head gets the same q, k, v -> CKA 1, cosine 1, Frobenius 0 */
/* Diagnostics of a PSViT model (SPEC 4.3): pooled layers report on the input grid (cls maps spread over the
 * cells a pooled patch covers, so each still sums to below 1 as the cls key keeps its share), distances in
 * input patches (x 2 after one pooling: at most the pooled grid's diagonal x 2); a sharing layer reports the
 * statistics of the layer whose weights it applies, and its own head similarities; the logits do not change. */
static void test_psvit(void **state)
{
    (void)state;
    FvModelConfig c;
    assert_int_equal(fv_model_config_preset(&c, "test"), 0);
    c.num_layers = 4;
    c.image_size = 64; /* 4x4 patches, pooled to 2x2 after layer 0 */
    c.spatial.kind = c.temporal.kind = FV_ATTN_FIB;
    c.num_pools = 1;
    c.pools[0] = (FvTokenPool){ .after = 0, .kind = FV_POOL_MAX };
    c.share_spatial = 1u << 2 | 1u << 3;
    c.share_temporal = 1u << 2;
    FvModel *m = NULL;
    assert_int_equal(fv_model_create_random(&m, &c, 7), 0);
    const int32_t T = c.num_frames, S = c.image_size, L = c.num_labels, H = c.num_heads;
    const int64_t nf = (int64_t)T * 3 * S * S;
    float *frames = malloc(sizeof(float) * nf), *l0 = malloc(sizeof(float) * L), *l1 = malloc(sizeof(float) * L);
    uint64_t seed = 3;
    for (int64_t i = 0; i < nf; i++)
        frames[i] = fv_rand_normal(&seed);
    assert_int_equal(fv_model_forward(m, frames, T, S, S, l0), 0);
    FvDiag *d = NULL;
    FvState *st = NULL;
    assert_int_equal(fv_diag_create(&d), 0);
    assert_int_equal(fv_state_create(&st, m), 0);
    assert_int_equal(fv_state_set_diag(st, d), 0);
    assert_int_equal(fv_state_forward(st, frames, 1, T, S, S, l1), 0);
    assert_true(fvt_max_abs_diff(l0, l1, L) == 0.0);
    const FvDiagResult *r = fv_diag_result(d);
    assert_non_null(r);
    assert_true(r->grid_h == 4 && r->grid_w == 4);
    const int32_t P = 16;
    for (int32_t l = 0; l < 4; l++)
        for (int32_t h = 0; h < H; h++) {
            double sum = 0.0;
            for (int32_t x = 0; x < P; x++)
                sum += r->layer[l].cls_attention[h * P + x];
            const FvDiagHead *hs = &r->layer[l].attn[0].head[h];
            printf("layer %d head %d: cls map sum %.4f, mean distance %.3f patches (%.1f px)\n", l, h, sum,
                   hs->mean_distance, hs->mean_distance_px);
            assert_true(sum > 0 && sum < 1);
            assert_true(hs->mean_distance >= 0 && hs->mean_distance <= (l ? 2.0 * sqrt(2.0) : 3.0 * sqrt(2.0)) + 1e-9);
            if (l >= 1) /* pooled: cells of one 2x2 window carry the same weight */
                for (int32_t x = 0; x < P; x++) {
                    const int32_t y = x / 4, xx = x % 4, first = (y & ~1) * 4 + (xx & ~1);
                    assert_true(fabs(r->layer[l].cls_attention[h * P + x] - r->layer[l].cls_attention[h * P + first]) < 1e-12);
                }
        }
    /* layers 2 and 3 apply layer 1's spatial weights, layer 2 its temporal ones */
    for (int32_t l = 2; l < 4; l++) {
        assert_memory_equal(r->layer[l].attn[0].head, r->layer[1].attn[0].head, sizeof(FvDiagHead) * (size_t)H);
        assert_memory_equal(r->layer[l].cls_attention, r->layer[1].cls_attention, sizeof(double) * (size_t)H * P);
    }
    assert_memory_equal(r->layer[2].attn[1].head, r->layer[1].attn[1].head, sizeof(FvDiagHead) * (size_t)H);
    assert_true(fabs(r->layer[2].attn[0].cka[1] - r->layer[1].attn[0].cka[1]) > 1e-9); /* its own outputs */
    fv_state_close(&st);
    fv_diag_close(&d);
    fv_model_close(&m);
    free(frames);
    free(l0);
    free(l1);
}

static void test_identical_heads(void **state)
{
    (void)state;
    const int32_t H = 3, hd = 32, N = 50, B = 2, D = H * hd;
    const int64_t ld = 3 * (int64_t)D;
    float *qkv = random_qkv(B, N, H, hd, 1, 1.0f);
    for (int64_t r = 0; r < (int64_t)B * N; r++)
        for (int32_t part = 0; part < 3; part++)
            for (int32_t h = 1; h < H; h++)
                memcpy(qkv + r * ld + (part * H + h) * hd, qkv + r * ld + part * H * hd, sizeof(float) * hd);
    FvAttnSettings s;
    fv_attn_default_settings(&s);
    FvAttnPlan p;
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, N, 1, H, hd), 0);
    Stats st;
    run_stats(&p, qkv, B, 7, 7, &st);
    float *xc = malloc(sizeof(float) * B * N * D), *gram = malloc(sizeof(float) * D * D);
    double cka[9], cosv[9], frob[9];
    fv_diag_head_sims(st.out, (int64_t)B * N, D, H, hd, xc, gram, cka, cosv, frob);
    double d = 0;
    for (int32_t i = 0; i < 9; i++)
        d = fmax(d, fmax(fabs(cka[i] - 1), fmax(fabs(cosv[i] - 1), frob[i])));
    printf("identical heads: max abs diff %g\n", d);
    assert_true(d < 1e-5);
    for (int32_t a = 0; a < H; a++)
        for (int32_t b = 0; b < H; b++)
            assert_true(fv_diag_plan_jaccard(&p, a, b) == 1.0);
    free(xc);
    free(gram);
    stats_free(&st);
    free(qkv);
    fv_attn_plan_free(&p);
}

static void test_aggregate(void **state)
{
    (void)state;
    FvDiagResult a, b, mean, std;
    assert_int_equal(fv_diag_result_alloc(&a, 2, 3, 2, 2), 0);
    assert_int_equal(fv_diag_result_alloc(&b, 2, 3, 2, 2), 0);
    for (size_t i = 0; i < a.num_values; i++) {
        a.values[i] = (double)i;
        b.values[i] = (double)i + 2.0;
    }
    a.layer[1].attn[FV_DIAG_TEMPORAL].cka[1] = 0.25;
    FvDiagAgg *agg = NULL;
    assert_int_equal(fv_diag_agg_create(&agg), 0);
    assert_int_equal(fv_diag_agg_get(agg, &mean, &std), FV_EINVAL);
    assert_int_equal(fv_diag_agg_add(agg, &a), 0);
    assert_int_equal(fv_diag_agg_add(agg, &b), 0);
    FvDiagResult other;
    assert_int_equal(fv_diag_result_alloc(&other, 2, 4, 2, 2), 0);
    assert_int_equal(fv_diag_agg_add(agg, &other), FV_EINVAL);
    fv_diag_result_free(&other);
    assert_int_equal(fv_diag_agg_count(agg), 2);
    assert_int_equal(fv_diag_agg_get(agg, &mean, &std), 0);
    double d = 0;
    for (size_t i = 0; i < a.num_values; i++)
        if (&a.values[i] != &a.layer[1].attn[FV_DIAG_TEMPORAL].cka[1])
            d = fmax(d, fabs(mean.values[i] - (i + 1.0)) + fabs(std.values[i] - 1.0));
    printf("aggregate: max abs diff %g\n", d);
    assert_true(d < 1e-9);
    assert_int_equal(mean.count, 2);
    /* off-diagonal mean */
    const double m3[9] = { 1, 0.5, 0.2, 0.5, 1, 0.3, 0.2, 0.3, 1 };
    assert_true(fabs(fv_diag_pair_mean(m3, 3) - (1.0 / 3.0)) < 1e-12);
    assert_int_equal(fv_diag_result_alloc(&other, 0, 1, 1, 1), FV_EINVAL);
    fv_diag_agg_close(&agg);
    assert_null(agg);
    fv_diag_result_free(&a);
    fv_diag_result_free(&b);
    fv_diag_result_free(&mean);
    fv_diag_result_free(&std);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_onehot),
        cmocka_unit_test(test_known_distance),
        cmocka_unit_test(test_jaccard),
        cmocka_unit_test(test_similarity),
        cmocka_unit_test(test_identical_heads),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_psvit),
        cmocka_unit_test(test_aggregate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
