/* The kernel harness (dav1d's checkasm habit): every entry of every attention kind in the registry — the
 * forward, the forward that gathers diagnostics, the backward — run on random inputs and held against the
 * kind's plain C reference, and timed. `fibvid bench attention` and tests/test_kernels.c are its two callers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "fibvid/attention.h"
#include "kernels/attention.h"
#include "kernels/attn_bf16.h"
#include "kernels/bf16.h"
#include "util/util.h"

/* Bounds on |fast - reference| / (1 + |reference|): float kernels against double references. The backward
 * accumulates over every key of a query, and its inputs pass through exp(): a looser bound. */
#define TOL_FORWARD  1e-5
#define TOL_STATS    2e-5
#define TOL_BACKWARD 1e-4
/* The dense bf16 kernel against the fp32 one: q and k rounded to bf16 move a score by ~2^-8 |s| (|s| up to ~12
 * at amplitude 2), the weights and v rounded to bf16 and the output too add ~2^-8 each: a few 1e-2 at most. */
#define TOL_BF16     5e-2

void fv_attn_check_default_settings(FvAttnCheckSettings *s)
{
    memset(s, 0, sizeof(*s));
    s->seed = 1;
    s->shapes = 6;
    s->frames = 8;
    s->heads = 12;
    s->head_dim = 64;
    s->variant = FV_FIB_MODIFIED;
    s->check = 1;
    s->backward = 1;
}

/* One shape: B sequences of N tokens (n = N - cls patch tokens on an Hp x Wp grid; Wp = 0: a line). */
typedef struct Shape {
    int32_t N, cls, B, H, hd, Hp, Wp, layer;
    float amp; /* scale of q and k: larger values give peaked softmaxes */
} Shape;

/* One kind under one semantics, with or without its auxiliary training branch. */
typedef struct Config {
    const FvAttnKindDsp *dsp;
    FvFibSemantics sem;
    float aux_weight; /* > 0: the auxiliary branch on, with this weight */
    char name[32];
} Config;

typedef struct Rows {
    FvAttnCheckRow *v;
    int32_t n, cap;
} Rows;

static FvAttnCheckRow *push_row(Rows *r)
{
    if (r->n == r->cap) {
        const int32_t cap = r->cap ? 2 * r->cap : 32;
        FvAttnCheckRow *v = realloc(r->v, sizeof(*v) * (size_t)cap);
        if (!v)
            return NULL;
        r->v = v;
        r->cap = cap;
    }
    FvAttnCheckRow *row = &r->v[r->n++];
    memset(row, 0, sizeof(*row));
    return row;
}

static double max_err(const float *fast, const float *ref, int64_t n)
{
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)fast[i] - ref[i]) / (1.0 + fabs((double)ref[i]));
        if (!(d <= e)) /* NaN-safe: a NaN makes e NaN, failing the bound */
            e = d;
    }
    return e;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------------------------------------------- */
/* the diagnostics' reference: statistics of every task from the reference weights, in double            */

typedef struct Geometry {
    float *dtab, *dall;
} Geometry;

static double grid_dist(int32_t j, int32_t k, int32_t Wp)
{
    if (!Wp)
        return fabs((double)j - k);
    const double dy = j / Wp - k / Wp, dx = j % Wp - k % Wp;
    return sqrt(dy * dy + dx * dx);
}

static int geometry(const Shape *sh, Geometry *g)
{
    const int32_t n = sh->N - sh->cls, Hp = sh->Hp, Wp = sh->Wp;
    g->dtab = NULL;
    if (!(g->dall = calloc((size_t)n, sizeof(float))))
        return FV_ENOMEM;
    if (Wp) {
        const int32_t tw = 2 * Wp - 1;
        if (!(g->dtab = malloc(sizeof(float) * (size_t)(2 * Hp - 1) * tw)))
            return FV_ENOMEM;
        for (int32_t dy = -(Hp - 1); dy <= Hp - 1; dy++)
            for (int32_t dx = -(Wp - 1); dx <= Wp - 1; dx++)
                g->dtab[(dy + Hp - 1) * tw + dx + Wp - 1] = (float)sqrt((double)dy * dy + (double)dx * dx);
    }
    for (int32_t j = 0; j < n; j++) {
        double s = 0.0;
        for (int32_t k = 0; k < n; k++)
            s += grid_dist(j, k, Wp);
        g->dall[j] = (float)s;
    }
    return 0;
}

/* SPEC section 6 from the kind's reference weights in double: per task the summed entropy, normalised entropy
 * and patch-query distance, and the cls query's weights. */
static int stats_ref(const FvAttnPlan *p, const Shape *sh, const float *qkv, double *ent, double *entn,
                     double *dist, float *cls)
{
    const int32_t N = p->N, H = p->H, hd = p->hd, c = p->has_cls, n = N - c;
    const int64_t D = (int64_t)H * hd, ld = 3 * D;
    const int zero = p->s.semantics == FV_FIB_ZERO;
    double *w = malloc(sizeof(double) * (size_t)N);
    if (!w)
        return FV_ENOMEM;
    for (int32_t b = 0; b < sh->B; b++)
        for (int32_t h = 0; h < H; h++) {
            const int64_t t = (int64_t)b * H + h;
            const float *q = qkv + (int64_t)b * N * ld + (int64_t)h * hd;
            const FvAttnHead io = { .h = h, .q = q, .k = q + D, .v = q + 2 * D, .ld = ld };
            ent[t] = entn[t] = dist[t] = 0.0;
            for (int32_t i = 0; i < N; i++) {
                p->dsp->weights_ref(p, &io, i, w);
                int32_t K = 0; /* keys of non-zero weight: all under zero semantics */
                double e = 0.0;
                for (int32_t j = 0; j < N; j++) {
                    K += zero || p->dsp->allows(p, h, i, j);
                    e -= w[j] > 0.0 ? w[j] * log(w[j]) : 0.0;
                }
                ent[t] += e;
                entn[t] += K > 1 ? e / log((double)K) : 0.0;
                if (c && i == 0) {
                    for (int32_t j = 0; j < n; j++)
                        cls[t * n + j] = (float)w[1 + j];
                    continue;
                }
                double ws = 0.0, ds = 0.0;
                for (int32_t j = 0; j < n; j++) {
                    ws += w[c + j];
                    ds += w[c + j] * grid_dist(i - c, j, sh->Wp);
                }
                dist[t] += ws > 0.0 ? ds / ws : 0.0;
            }
        }
    free(w);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* one kind on one shape                                                                                 */

static void fill(float *x, int64_t n, uint64_t *seed)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = fv_rand_normal(seed);
}

/* Time @iters runs of one entry: min and median in ms. */
typedef struct Timer {
    double *t;
    int32_t iters;
} Timer;

static void timing(const Timer *tm, FvAttnCheckRow *row)
{
    if (tm->iters <= 0)
        return;
    double *t = malloc(sizeof(double) * (size_t)tm->iters);
    if (!t)
        return;
    memcpy(t, tm->t, sizeof(double) * (size_t)tm->iters);
    qsort(t, (size_t)tm->iters, sizeof(double), cmp_double);
    row->min_ms = t[0];
    row->median_ms = tm->iters % 2 ? t[tm->iters / 2] : 0.5 * (t[tm->iters / 2 - 1] + t[tm->iters / 2]);
    free(t);
}

static void row_init(FvAttnCheckRow *row, const Config *cf, const char *entry, const Shape *sh, const FvAttnPlan *p)
{
    snprintf(row->kind, sizeof(row->kind), "%s", cf->name);
    snprintf(row->entry, sizeof(row->entry), "%s", entry);
    row->spatial = sh->cls;
    row->tokens = sh->N;
    row->sequences = sh->B;
    row->heads = sh->H;
    row->head_dim = sh->hd;
    for (int32_t h = 0; h < sh->H; h++)
        row->density += fv_attn_plan_density(p, h) / sh->H;
    row->gflop = fv_attn_plan_flops(p) * sh->B * 1e-9;
    row->pass = 1;
}

/* The kind's own tensors (Castling's taps): random values, and zeroed gradient blocks for the fast entry and
 * the reference. Returns their count or a negative code. */
typedef struct Own {
    int32_t n;
    size_t size[FV_ATTN_MAX_TENSORS];
    float *w[FV_ATTN_MAX_TENSORS], *d[FV_ATTN_MAX_TENSORS], *d_ref[FV_ATTN_MAX_TENSORS];
} Own;

static int own_build(const FvAttnPlan *p, uint64_t *seed, Own *o)
{
    FvAttnTensor t[FV_ATTN_MAX_TENSORS];
    memset(o, 0, sizeof(*o));
    o->n = p->dsp->tensors(&p->s, p->H, p->hd, t);
    for (int32_t i = 0; i < o->n; i++) {
        o->size[i] = 1;
        for (int32_t d = 0; d < t[i].ndim; d++)
            o->size[i] *= (size_t)t[i].shape[d];
        o->w[i] = malloc(sizeof(float) * o->size[i]);
        o->d[i] = calloc(o->size[i], sizeof(float));
        o->d_ref[i] = calloc(o->size[i], sizeof(float));
        if (!o->w[i] || !o->d[i] || !o->d_ref[i])
            return FV_ENOMEM;
        for (size_t e = 0; e < o->size[i]; e++)
            o->w[i][e] = 0.3f * fv_rand_normal(seed);
    }
    return o->n;
}

static void own_free(Own *o)
{
    for (int32_t i = 0; i < FV_ATTN_MAX_TENSORS; i++) {
        free(o->w[i]);
        free(o->d[i]);
        free(o->d_ref[i]);
    }
}

static int check_share(const FvAttnCheckSettings *s, const Config *cf, const Shape *sh, const FvAttnPlan *p,
                       const float *qkv, float *out_ref, uint64_t *seed, Rows *rows)
{
    const int64_t D = (int64_t)sh->H * sh->hd, R = (int64_t)sh->B * sh->N, nqkv = R * 3 * D, nout = R * D;
    FvAttnShare sh_;
    int ret = fv_attn_share_init(&sh_, p);
    if (ret < 0)
        return ret;
    const size_t nw = fv_attn_share_floats(&sh_) * (size_t)sh->B;
    float *W = fv_malloc(sizeof(float) * FV_MAX(nw, 1)), *dW = fv_calloc(FV_MAX(nw, 1), sizeof(float));
    float *qkv2 = fv_malloc(sizeof(float) * (size_t)nqkv), *o = fv_malloc(sizeof(float) * (size_t)nout);
    float *o2 = fv_malloc(sizeof(float) * (size_t)nout), *o2r = fv_malloc(sizeof(float) * (size_t)nout);
    float *d1 = fv_malloc(sizeof(float) * (size_t)nout), *d2 = fv_malloc(sizeof(float) * (size_t)nout);
    float *g = fv_malloc(sizeof(float) * (size_t)nqkv), *dv2 = fv_calloc((size_t)nout, sizeof(float));
    float *ga = fv_malloc(sizeof(float) * (size_t)nqkv), *gb = fv_malloc(sizeof(float) * (size_t)nqkv);
    FvAttnCheckRow *row;
    if (!W || !dW || !qkv2 || !o || !o2 || !o2r || !d1 || !d2 || !g || !dv2 || !ga || !gb) {
        ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
        goto done;
    }
    memcpy(qkv2, qkv, sizeof(float) * (size_t)nqkv); /* the same q, k; another v */
    for (int64_t r = 0; r < R; r++)
        fill(qkv2 + r * 3 * D + 2 * D, D, seed);
    fill(d1, nout, seed);
    fill(d2, nout, seed);
    /* forward: the source's output and weights, then the weights on v2 */
    if (!(row = push_row(rows))) {
        ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
        goto done;
    }
    row_init(row, cf, "shared", sh, p);
    if ((ret = fv_attn_share_forward(&sh_, qkv, o, W, sh->B)) < 0 ||
        (ret = fv_attn_share_apply(&sh_, W, qkv2 + 2 * D, 3 * D, o2, sh->B)) < 0)
        goto done;
    if (s->check) {
        fv_attn_forward_ref(p, NULL, qkv, out_ref, NULL, sh->B); /* @out_ref: the caller's, free to reuse */
        fv_attn_forward_ref(p, NULL, qkv2, o2r, NULL, sh->B);
        row->max_err = fmax(max_err(o, out_ref, nout), max_err(o2, o2r, nout));
        row->tolerance = TOL_FORWARD;
        row->pass = row->max_err <= row->tolerance;
    }
    if (s->backward) {
        if (!(row = push_row(rows))) {
            ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
            goto done;
        }
        row_init(row, cf, "shared-bwd", sh, p);
        /* the sharer (v2, dout d2) first, then the source (v, d1) with the sharer's weight gradient */
        memset(g, 0, sizeof(float) * (size_t)nqkv);
        if ((ret = fv_attn_share_apply_backward(&sh_, W, qkv2 + 2 * D, 3 * D, d2, g + 2 * D, dW, sh->B)) < 0)
            goto done;
        for (int64_t r = 0; r < R; r++) /* dv2 from g's v columns, before the source overwrites g */
            memcpy(dv2 + r * D, g + r * 3 * D + 2 * D, sizeof(float) * (size_t)D);
        if ((ret = fv_attn_share_backward(&sh_, qkv, W, d1, dW, g, sh->B)) < 0)
            goto done;
        if (s->check) {
            fv_attn_backward_ref(p, NULL, NULL, qkv, out_ref, NULL, d1, ga, sh->B);
            fv_attn_backward_ref(p, NULL, NULL, qkv2, o2r, NULL, d2, gb, sh->B);
            double e = 0.0;
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < D; c++) {
                    const int64_t i = r * 3 * D + c;
                    float want[3] = { ga[i] + gb[i], ga[i + D] + gb[i + D], ga[i + 2 * D] };
                    float got[3] = { g[i], g[i + D], g[i + 2 * D] };
                    e = fmax(e, max_err(got, want, 3));
                    e = fmax(e, max_err(&dv2[r * D + c], &gb[i + 2 * D], 1));
                }
            row->max_err = e;
            row->tolerance = TOL_BACKWARD;
            row->pass = row->max_err <= row->tolerance;
        }
    }
    ret = 0;
done:
    fv_attn_share_free(&sh_);
    fv_free(W);
    fv_free(dW);
    fv_free(qkv2);
    fv_free(o);
    fv_free(o2);
    fv_free(o2r);
    fv_free(d1);
    fv_free(d2);
    fv_free(g);
    fv_free(dv2);
    fv_free(ga);
    fv_free(gb);
    return ret;
}

/* The row "dense-bf16": the kernel bf16 inference runs for dense attention (kernels/attn_bf16.h) on @qkv rounded
 * to bf16, held to the fp32 kernel's outputs @ref (themselves held to the reference) within TOL_BF16, timed. */
static int check_dense_bf16(const FvAttnCheckSettings *s, const Config *cf, const Shape *sh, const FvAttnPlan *p,
                            const float *qkv, const float *ref, Timer *tm, Rows *rows)
{
    const int64_t D = (int64_t)sh->H * sh->hd, nrow = (int64_t)sh->B * sh->N;
    uint16_t *qkv16 = fv_malloc(sizeof(uint16_t) * (size_t)(nrow * 3 * D));
    uint16_t *out16 = fv_malloc(sizeof(uint16_t) * (size_t)(nrow * D));
    float *out = fv_malloc(sizeof(float) * (size_t)(nrow * D));
    FvAttnCheckRow *row = push_row(rows);
    int ret = 0;
    if (!qkv16 || !out16 || !out || !row) {
        ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
        goto done;
    }
    row_init(row, cf, "forward", sh, p);
    snprintf(row->kind, sizeof(row->kind), "%.24s-bf16", cf->name);
    fv_f32_to_bf16(qkv16, qkv, nrow * 3 * D);
    if ((ret = fv_attn_dense_bf16(out16, qkv16, sh->B, sh->N, sh->H, sh->hd)) < 0)
        goto done;
    if (s->check) {
        fv_bf16_to_f32(out, out16, nrow * D);
        row->max_err = max_err(out, ref, nrow * D);
        row->tolerance = TOL_BF16;
        row->pass = row->max_err <= row->tolerance;
    }
    for (int32_t it = 0; it < s->iters; it++) {
        const double t0 = fv_time_ms();
        fv_attn_dense_bf16(out16, qkv16, sh->B, sh->N, sh->H, sh->hd);
        tm->t[it] = fv_time_ms() - t0;
    }
    timing(tm, row);
done:
    fv_free(qkv16);
    fv_free(out16);
    fv_free(out);
    return ret;
}

static int check_one(const FvAttnCheckSettings *s, const Config *cf, const Shape *sh, uint64_t *seed, Rows *rows)
{
    FvAttnSettings as;
    fv_attn_default_settings(&as);
    as.kind = cf->dsp->kind;
    as.semantics = cf->sem;
    as.variant = s->variant;
    FvAttnPlan p;
    Own own;
    int ret = fv_attn_plan_init(&p, &as, sh->layer, sh->N, sh->cls, sh->H, sh->hd);
    if (ret < 0)
        return ret;
    p.aux = cf->aux_weight > 0.0f;
    p.aux_weight = cf->aux_weight;
    const int64_t D = (int64_t)sh->H * sh->hd, rows_ = (int64_t)sh->B * sh->N;
    const int64_t nqkv = rows_ * 3 * D, nout = rows_ * D, naux = rows_ * sh->H, n = sh->N - sh->cls;
    const int64_t tasks = (int64_t)sh->B * sh->H;
    const int softmax = cf->dsp->entropy; /* softmax kinds save their log-sum-exp and have an entropy */
    float *qkv = fv_malloc(sizeof(float) * (size_t)nqkv), *dout = fv_malloc(sizeof(float) * (size_t)nout);
    float *out = fv_malloc(sizeof(float) * (size_t)nout), *out_ref = fv_malloc(sizeof(float) * (size_t)nout);
    float *aux = fv_malloc(sizeof(float) * (size_t)naux), *aux_ref = fv_malloc(sizeof(float) * (size_t)naux);
    float *dq = fv_malloc(sizeof(float) * (size_t)nqkv), *dq_ref = fv_malloc(sizeof(float) * (size_t)nqkv);
    double *ent = calloc((size_t)tasks * 6, sizeof(double));
    float *cls = calloc((size_t)(tasks * FV_MAX(n, 1) * 2), sizeof(float));
    Timer tm = { .t = malloc(sizeof(double) * (size_t)FV_MAX(s->iters, 1)), .iters = s->iters };
    Geometry g = { 0 };
    const int nown = own_build(&p, seed, &own);
    const float *const *ow = nown > 0 ? (const float *const *)own.w : NULL;
    /* one scratch for every call, as a run state holds it (no allocation inside the timed runs) */
    FvAttnScratch scr = { .stride = fv_attn_scratch_floats(&p), .nthreads = omp_get_max_threads() };
    scr.buf = fv_malloc(sizeof(float) * scr.stride * (size_t)scr.nthreads);
    if (!qkv || !dout || !out || !out_ref || !aux || !aux_ref || !dq || !dq_ref || !ent || !cls || !tm.t ||
        !scr.buf || geometry(sh, &g) < 0 || nown < 0) {
        ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
        goto done;
    }
    fill(qkv, nqkv, seed);
    fill(dout, nout, seed);
    for (int64_t i = 0; i < nqkv; i++) /* scale q and k only: peaked softmaxes, outputs still O(1) */
        if ((i / D) % 3 < 2)
            qkv[i] *= sh->amp;

    /* forward */
    FvAttnCheckRow *row = push_row(rows);
    if (!row) {
        ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
        goto done;
    }
    row_init(row, cf, "forward", sh, &p);
    for (int64_t i = 0; i < nout; i++)
        out[i] = NAN; /* every output must be written */
    if ((ret = fv_attn_forward_own(&p, ow, qkv, out, aux, sh->B, NULL, &scr)) < 0)
        goto done;
    if (s->check) {
        fv_attn_forward_ref(&p, ow, qkv, out_ref, aux_ref, sh->B);
        row->max_err = max_err(out, out_ref, nout);
        if (softmax)
            row->max_err = fmax(row->max_err, max_err(aux, aux_ref, naux));
        row->tolerance = TOL_FORWARD;
        row->pass = row->max_err <= row->tolerance;
    }
    memset(out_ref, 0, sizeof(float) * (size_t)nout); /* its pages in place before the clock runs */
    for (int32_t it = 0; it < s->iters; it++) {
        const double t0 = fv_time_ms();
        fv_attn_forward_own(&p, ow, qkv, out_ref, NULL, sh->B, NULL, &scr);
        tm.t[it] = fv_time_ms() - t0;
    }
    timing(&tm, row);
    if (s->bf16 && cf->dsp->kind == FV_ATTN_DENSE && cf->aux_weight == 0.0f && fv_attn_dense_bf16_fast(sh->hd) &&
        (ret = check_dense_bf16(s, cf, sh, &p, qkv, out, &tm, rows)) < 0)
        goto done;

    /* forward gathering diagnostics: the same outputs, and the statistics of the reference weights (entropy
     * null for kinds without a probability distribution) */
    if (s->check) {
        if (!(row = push_row(rows))) {
            ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
            goto done;
        }
        row_init(row, cf, "stats", sh, &p);
        double *e = ent, *en = ent + tasks, *di = ent + 2 * tasks;
        double *e_r = ent + 3 * tasks, *en_r = ent + 4 * tasks, *di_r = ent + 5 * tasks;
        float *cls_r = cls + tasks * FV_MAX(n, 1);
        const FvAttnStats st = { .Hp = sh->Wp ? sh->Hp : (int32_t)n, .Wp = sh->Wp, .dtab = g.dtab, .dall = g.dall,
                                 .ent = e, .ent_norm = en, .dist = di, .cls = sh->cls ? cls : NULL };
        if ((ret = fv_attn_forward_own(&p, ow, qkv, out_ref, NULL, sh->B, &st, &scr)) < 0 ||
            (ret = stats_ref(&p, sh, qkv, e_r, en_r, di_r, cls_r)) < 0)
            goto done;
        double err = max_err(out_ref, out, nout); /* bit for bit the plain kernel's outputs */
        for (int64_t t = 0; t < tasks; t++) { /* per-query means, as diagnostics report them */
            if (softmax)
                err = fmax(err, fmax(fabs(e[t] - e_r[t]) / sh->N, fabs(en[t] - en_r[t]) / sh->N));
            else if (!isnan(e[t]) || !isnan(en[t]))
                err = INFINITY; /* must be null */
            err = fmax(err, fabs(di[t] - di_r[t]) / FV_MAX(n, 1));
        }
        if (sh->cls)
            err = fmax(err, max_err(cls, cls_r, tasks * n));
        row->max_err = err;
        row->tolerance = TOL_STATS;
        row->pass = err <= TOL_STATS;
    }

    /* attention sharing (softmax kinds): the source's weights applied to another v, and both backwards, against
     * the reference run twice (q, k with v and with v2) */
    if (cf->dsp->keys && cf->aux_weight == 0.0f && (ret = check_share(s, cf, sh, &p, qkv, out_ref, seed, rows)) < 0)
        goto done;
    if (cf->dsp->keys && cf->aux_weight == 0.0f && s->check) /* the backward below compares with it */
        fv_attn_forward_ref(&p, ow, qkv, out_ref, aux_ref, sh->B);

    /* backward, from the fast forward's outputs */
    if (s->backward) {
        if (!(row = push_row(rows))) {
            ret = fv_error(FV_ENOMEM, "fv_attn_check: out of memory");
            goto done;
        }
        row_init(row, cf, "backward", sh, &p);
        if ((ret = fv_attn_backward_own(&p, ow, nown > 0 ? own.d : NULL, qkv, out, aux, dout, dq, sh->B, &scr)) < 0)
            goto done;
        if (s->check) {
            fv_attn_backward_ref(&p, ow, nown > 0 ? own.d_ref : NULL, qkv, out, aux, dout, dq_ref, sh->B);
            row->max_err = max_err(dq, dq_ref, nqkv);
            for (int32_t i = 0; i < own.n; i++)
                row->max_err = fmax(row->max_err, max_err(own.d[i], own.d_ref[i], (int64_t)own.size[i]));
            row->tolerance = TOL_BACKWARD;
            row->pass = row->max_err <= row->tolerance;
        }
        memset(dq_ref, 0, sizeof(float) * (size_t)nqkv);
        for (int32_t it = 0; it < s->iters; it++) {
            const double t0 = fv_time_ms();
            fv_attn_backward_own(&p, ow, nown > 0 ? own.d : NULL, qkv, out, aux, dout, dq_ref, sh->B, &scr);
            tm.t[it] = fv_time_ms() - t0;
        }
        timing(&tm, row);
    }
    ret = 0;
done:
    fv_free(scr.buf);
    fv_free(qkv);
    fv_free(dout);
    fv_free(out);
    fv_free(out_ref);
    fv_free(aux);
    fv_free(aux_ref);
    fv_free(dq);
    fv_free(dq_ref);
    free(ent);
    free(cls);
    free(tm.t);
    free(g.dtab);
    free(g.dall);
    own_free(&own);
    fv_attn_plan_free(&p);
    return ret;
}

/* ---------------------------------------------------------------------------------------------------- */
/* the shapes                                                                                            */

/* Random shapes: grids from 1x1 to 15x15 (short and blocked dense kernels, both sides of the GEMM
 * backward's threshold), head sizes the kernels specialise (16..128 step 16) and others, 1-4 heads. */
static Shape random_shape(uint64_t *seed, int spatial)
{
    static const int32_t hds[] = { 16, 32, 48, 64, 96, 128, 8, 24, 40 };
    Shape sh = { 0 };
    sh.cls = spatial;
    sh.H = 1 + (int32_t)(fv_rand_u64(seed) % 4);
    sh.hd = hds[fv_rand_u64(seed) % (sizeof(hds) / sizeof(hds[0]))];
    sh.B = 1 + (int32_t)(fv_rand_u64(seed) % 3);
    sh.layer = (int32_t)(fv_rand_u64(seed) % 12);
    sh.amp = fv_rand_u64(seed) % 2 ? 2.0f : 1.0f;
    if (spatial) {
        sh.Hp = 1 + (int32_t)(fv_rand_u64(seed) % 15);
        sh.Wp = 1 + (int32_t)(fv_rand_u64(seed) % 15);
        sh.N = 1 + sh.Hp * sh.Wp;
    } else {
        sh.N = 1 + (int32_t)(fv_rand_u64(seed) % 24);
        sh.Hp = sh.N;
    }
    return sh;
}

/* Whether the row @name of kind @kind is in the comma-separated list @list (NULL: every row). */
static int wanted(const char *list, const char *kind, const char *name)
{
    if (!list)
        return 1;
    for (const char *p = list; *p;) {
        const size_t n = strcspn(p, ",");
        if ((n == strlen(kind) && !strncmp(p, kind, n)) || (n == strlen(name) && !strncmp(p, name, n)))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

int fv_attn_check(const FvAttnCheckSettings *s, FvAttnCheckRow **out, int32_t *nout)
{
    if (!s || !out || !nout)
        return fv_error(FV_EINVAL, "fv_attn_check: NULL argument");
    *out = NULL;
    *nout = 0;
    if (s->shapes < 0 || s->iters < 0 || (s->tokens && (s->tokens < 2 || s->frames < 1 || s->heads < 1 ||
                                                       s->head_dim < 1)))
        return fv_error(FV_EINVAL, "fv_attn_check: bad settings");
    Config cfg[16];
    int32_t ncfg = 0, nk;
    const FvAttnKindDsp *const *kinds = fv_attn_kinds(&nk);
    for (int32_t k = 0; k < nk && ncfg < 14; k++) {
        for (int sem = 0; sem < (kinds[k]->masked ? 2 : 1); sem++) {
            Config *c = &cfg[ncfg];
            c->dsp = kinds[k];
            c->sem = sem ? FV_FIB_EXCLUDE : FV_FIB_ZERO;
            c->aux_weight = 0.0f;
            snprintf(c->name, sizeof(c->name), "%s%s", kinds[k]->name,
                     !kinds[k]->masked ? "" : sem ? "-exclude" : "-zero");
            ncfg += wanted(s->kinds, kinds[k]->name, c->name);
        }
        if (kinds[k]->aux && s->backward) { /* the training branch, where it exists (lambda 0.5) */
            Config *c = &cfg[ncfg];
            c->dsp = kinds[k];
            c->sem = FV_FIB_ZERO;
            c->aux_weight = 0.5f;
            snprintf(c->name, sizeof(c->name), "%s-aux", kinds[k]->name);
            ncfg += wanted(s->kinds, kinds[k]->name, c->name);
        }
    }
    if (ncfg == 0)
        return fv_error(FV_EINVAL, "fv_attn_check: no kind matches \"%s\"", s->kinds);
    Rows rows = { 0 };
    uint64_t seed = s->seed;
    int ret = 0;
    if (s->tokens) {
        /* one layer of one clip: spatial T sequences of tokens (cls first), temporal tokens - 1 of T */
        const int32_t P = s->tokens - 1;
        int32_t gh = 1;
        for (int32_t d = 1; d * d <= P; d++)
            if (P % d == 0)
                gh = d;
        const float amp = s->amplitude > 0 ? s->amplitude : 1.0f;
        const Shape sp = { .N = s->tokens, .cls = 1, .B = s->frames, .H = s->heads, .hd = s->head_dim, .Hp = gh,
                           .Wp = P / gh, .layer = 0, .amp = amp };
        const Shape tp = { .N = s->frames, .cls = 0, .B = P, .H = s->heads, .hd = s->head_dim, .Hp = s->frames,
                           .Wp = 0, .layer = 0, .amp = amp };
        for (int w = 0; w < 2 && ret >= 0; w++)
            for (int32_t c = 0; c < ncfg && ret >= 0; c++)
                ret = check_one(s, &cfg[c], w ? &tp : &sp, &seed, &rows);
    } else {
        for (int32_t i = 0; i < s->shapes && ret >= 0; i++)
            for (int spatial = 1; spatial >= 0 && ret >= 0; spatial--) {
                Shape sh = random_shape(&seed, spatial);
                if (s->amplitude > 0)
                    sh.amp = s->amplitude;
                for (int32_t c = 0; c < ncfg && ret >= 0; c++)
                    ret = check_one(s, &cfg[c], &sh, &seed, &rows);
            }
    }
    if (ret < 0) {
        free(rows.v);
        return ret;
    }
    *out = rows.v;
    *nout = rows.n;
    return 0;
}
