/* SimA (Koohpayegani & Pirsiavash, SPEC 4.1): softmax-free attention. Each (head, channel) column of q and of
 * k is l1-normalised over the tokens (cls included), q^ = q / max(sum_n |q[n, c]|, 1e-12), and the head's
 * output is q^ (k^^T v): no softmax, no 1/sqrt(d), no parameters of its own. Work O(N hd^2) and memory
 * O(N hd) per head (the N x N order only for N < hd, where it is the smaller); its backward, the dense
 * N x N reference in double, the diagnostic weights |q^ k^^T| and the kind's table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn_kind.h"
#include "util/util.h"

#define EPS 1e-12

/* Scratch layout of one task: qh, kh, dqh, dkh (N, hd) each, nq, nk (hd), a weight row (N), the product's, and
 * hd double accumulators. */
typedef struct Scr {
    float *qh, *kh, *dqh, *dkh, *nq, *nk, *row, *lin;
    double *acc;
} Scr;

static Scr carve(const FvAttnPlan *p, float *s)
{
    const size_t nd = FV_ALIGN16((size_t)p->N * p->hd), d = FV_ALIGN16(p->hd), n = FV_ALIGN16(p->N);
    Scr c = { .qh = s, .kh = s + nd, .dqh = s + 2 * nd, .dkh = s + 3 * nd, .nq = s + 4 * nd, .nk = s + 4 * nd + d,
              .row = s + 4 * nd + 2 * d };
    c.lin = c.row + n;
    c.acc = (double *)(c.lin + fv_attn_linear_scratch(p->N, p->hd)); /* 16-float aligned: fits doubles */
    return c;
}

static size_t sima_scratch(const FvAttnPlan *p)
{
    return 4 * FV_ALIGN16((size_t)p->N * p->hd) + 2 * FV_ALIGN16(p->hd) + FV_ALIGN16(p->N) +
           fv_attn_linear_scratch(p->N, p->hd) + FV_ALIGN16(2 * (size_t)p->hd);
}

/* xh (N, hd) = x / max(column l1 norm over the tokens, eps); nrm (hd) the divisors (eps: clamped). The sums
 * run over the rows in order (row-major reads, one double accumulator per column in @acc (hd)). */
static void normalise_columns(int32_t N, int32_t hd, const float *x, int64_t ld, float *xh, float *nrm, double *acc)
{
    for (int32_t c = 0; c < hd; c++)
        acc[c] = 0.0;
    for (int32_t n = 0; n < N; n++) {
        const float *r = x + n * ld;
#pragma omp simd
        for (int32_t c = 0; c < hd; c++)
            acc[c] += fabs((double)r[c]);
    }
    for (int32_t c = 0; c < hd; c++)
        nrm[c] = (float)(acc[c] > EPS ? acc[c] : EPS);
    for (int32_t n = 0; n < N; n++) {
        const float *r = x + n * ld;
        float *o = xh + (size_t)n * hd;
#pragma omp simd
        for (int32_t c = 0; c < hd; c++)
            o[c] = r[c] / nrm[c];
    }
}

/* Backward of normalise_columns: dx (rows @ld, added to) from dxh (N, hd):
 * dx[m, c] = (dxh[m, c] - sign(x[m, c]) sum_n dxh[n, c] xh[n, c]) / nrm[c]; a clamped column passes dxh / eps. */
static void normalise_columns_backward(int32_t N, int32_t hd, const float *x, int64_t ld, const float *xh,
                                       const float *nrm, const float *dxh, float *dx, double *acc)
{
    for (int32_t c = 0; c < hd; c++)
        acc[c] = 0.0;
    for (int32_t n = 0; n < N; n++) {
        const float *g = dxh + (size_t)n * hd, *h = xh + (size_t)n * hd;
#pragma omp simd
        for (int32_t c = 0; c < hd; c++)
            acc[c] += (double)g[c] * h[c];
    }
    for (int32_t c = 0; c < hd; c++)
        if (!(nrm[c] > (float)EPS))
            acc[c] = 0.0;
    for (int32_t n = 0; n < N; n++) {
        const float *r = x + n * ld, *g = dxh + (size_t)n * hd;
        float *o = dx + n * ld;
#pragma omp simd
        for (int32_t c = 0; c < hd; c++) {
            const float sg = r[c] > 0.0f ? 1.0f : r[c] < 0.0f ? -1.0f : 0.0f;
            o[c] += (g[c] - sg * (float)acc[c]) / nrm[c];
        }
    }
}

static void sima_forward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    const Scr s = carve(p, scratch);
    normalise_columns(p->N, p->hd, t->q, t->ld, s.qh, s.nq, s.acc);
    normalise_columns(p->N, p->hd, t->k, t->ld, s.kh, s.nk, s.acc);
    fv_attn_linear_product(p->N, p->hd, s.qh, s.kh, t->v, t->ld, t->out, t->ldo, s.lin);
}

/* Diagnostic weights of query i: |q^_i . k^_j| (SPEC 4.1). */
static void sima_row(const FvAttnPlan *p, const float *qh, const float *kh, int32_t i, float *w)
{
    const int32_t hd = p->hd;
    for (int32_t j = 0; j < p->N; j++) {
        float d = 0.0f;
        for (int32_t c = 0; c < hd; c++)
            d += qh[(size_t)i * hd + c] * kh[(size_t)j * hd + c];
        w[j] = fabsf(d);
    }
}

static void sima_forward_stats(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, const FvAttnStats *st,
                               int64_t task)
{
    sima_forward(p, t, scratch);
    const Scr s = carve(p, scratch);
    fv_attn_linear_stats(p, s.qh, s.kh, sima_row, s.row, st, task);
}

static void sima_backward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    const Scr s = carve(p, scratch);
    const int32_t N = p->N, hd = p->hd;
    normalise_columns(N, hd, t->q, t->ld, s.qh, s.nq, s.acc);
    normalise_columns(N, hd, t->k, t->ld, s.kh, s.nk, s.acc);
    fv_attn_linear_product_backward(N, hd, s.qh, s.kh, t->v, t->ld, t->dout, t->ldo, s.dqh, s.dkh, t->dv, s.lin);
    normalise_columns_backward(N, hd, t->q, t->ld, s.qh, s.nq, s.dqh, t->dq, s.acc);
    normalise_columns_backward(N, hd, t->k, t->ld, s.kh, s.nk, s.dkh, t->dk, s.acc);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the reference: the N x N formulation in double                                                        */

typedef struct Ref {
    double *qh, *kh, *nq, *nk, *A; /* (N, hd) x2, (hd) x2, (N, N) */
} Ref;

/* q^, k^ and (with @full) A = q^ k^^T in double. */
static int ref_build(const FvAttnPlan *p, const FvAttnHead *t, Ref *r, int full)
{
    const int32_t N = p->N, hd = p->hd;
    r->qh = malloc(sizeof(double) * (size_t)N * hd);
    r->kh = malloc(sizeof(double) * (size_t)N * hd);
    r->nq = malloc(sizeof(double) * (size_t)hd);
    r->nk = malloc(sizeof(double) * (size_t)hd);
    r->A = full ? malloc(sizeof(double) * (size_t)N * N) : NULL;
    if (!r->qh || !r->kh || !r->nq || !r->nk || (full && !r->A))
        return -1;
    for (int32_t c = 0; c < hd; c++) {
        double sq = 0.0, sk = 0.0;
        for (int32_t n = 0; n < N; n++) {
            sq += fabs((double)t->q[n * t->ld + c]);
            sk += fabs((double)t->k[n * t->ld + c]);
        }
        r->nq[c] = sq > EPS ? sq : EPS;
        r->nk[c] = sk > EPS ? sk : EPS;
        for (int32_t n = 0; n < N; n++) {
            r->qh[(size_t)n * hd + c] = t->q[n * t->ld + c] / r->nq[c];
            r->kh[(size_t)n * hd + c] = t->k[n * t->ld + c] / r->nk[c];
        }
    }
    for (int32_t i = 0; full && i < N; i++)
        for (int32_t j = 0; j < N; j++) {
            double a = 0.0;
            for (int32_t c = 0; c < hd; c++)
                a += r->qh[(size_t)i * hd + c] * r->kh[(size_t)j * hd + c];
            r->A[(size_t)i * N + j] = a;
        }
    return 0;
}

static void ref_free(Ref *r)
{
    free(r->qh);
    free(r->kh);
    free(r->nq);
    free(r->nk);
    free(r->A);
}

static void sima_forward_ref(const FvAttnPlan *p, const FvAttnHead *t)
{
    const int32_t N = p->N, hd = p->hd;
    Ref r;
    if (ref_build(p, t, &r, 1) == 0)
        for (int32_t i = 0; i < N; i++)
            for (int32_t c = 0; c < hd; c++) {
                double acc = 0.0;
                for (int32_t j = 0; j < N; j++)
                    acc += r.A[(size_t)i * N + j] * t->v[j * t->ld + c];
                t->out[i * t->ldo + c] = (float)acc;
            }
    ref_free(&r);
}

static void sima_backward_ref(const FvAttnPlan *p, const FvAttnHead *t)
{
    const int32_t N = p->N, hd = p->hd;
    Ref r;
    double *dA = malloc(sizeof(double) * (size_t)N * N), *dqh = calloc((size_t)N * hd, sizeof(double));
    double *dkh = calloc((size_t)N * hd, sizeof(double));
    if (ref_build(p, t, &r, 1) < 0 || !dA || !dqh || !dkh)
        goto done;
    for (int32_t i = 0; i < N; i++)
        for (int32_t j = 0; j < N; j++) {
            double d = 0.0;
            for (int32_t c = 0; c < hd; c++)
                d += (double)t->dout[i * t->ldo + c] * t->v[j * t->ld + c];
            dA[(size_t)i * N + j] = d;
        }
    for (int32_t j = 0; j < N; j++)
        for (int32_t c = 0; c < hd; c++) {
            double dv = 0.0;
            for (int32_t i = 0; i < N; i++)
                dv += r.A[(size_t)i * N + j] * t->dout[i * t->ldo + c];
            t->dv[j * t->ld + c] += (float)dv;
        }
    for (int32_t i = 0; i < N; i++)
        for (int32_t j = 0; j < N; j++)
            for (int32_t c = 0; c < hd; c++) {
                dqh[(size_t)i * hd + c] += dA[(size_t)i * N + j] * r.kh[(size_t)j * hd + c];
                dkh[(size_t)j * hd + c] += dA[(size_t)i * N + j] * r.qh[(size_t)i * hd + c];
            }
    for (int32_t c = 0; c < hd; c++) {
        double sq = 0.0, sk = 0.0;
        for (int32_t n = 0; n < N; n++) {
            sq += r.nq[c] > EPS ? dqh[(size_t)n * hd + c] * r.qh[(size_t)n * hd + c] : 0.0;
            sk += r.nk[c] > EPS ? dkh[(size_t)n * hd + c] * r.kh[(size_t)n * hd + c] : 0.0;
        }
        for (int32_t n = 0; n < N; n++) {
            const double q = t->q[n * t->ld + c], k = t->k[n * t->ld + c];
            t->dq[n * t->ld + c] += (float)((dqh[(size_t)n * hd + c] - (q > 0 ? 1 : q < 0 ? -1 : 0) * sq) / r.nq[c]);
            t->dk[n * t->ld + c] += (float)((dkh[(size_t)n * hd + c] - (k > 0 ? 1 : k < 0 ? -1 : 0) * sk) / r.nk[c]);
        }
    }
done:
    ref_free(&r);
    free(dA);
    free(dqh);
    free(dkh);
}

static double sima_weights_ref(const FvAttnPlan *p, const FvAttnHead *t, int32_t i, double *w)
{
    const int32_t N = p->N, hd = p->hd;
    Ref r;
    if (ref_build(p, t, &r, 0) == 0) {
        double z = 0.0;
        for (int32_t j = 0; j < N; j++) {
            double a = 0.0;
            for (int32_t c = 0; c < hd; c++)
                a += r.qh[(size_t)i * hd + c] * r.kh[(size_t)j * hd + c];
            z += (w[j] = fabs(a));
        }
        for (int32_t j = 0; j < N; j++)
            w[j] = z > 0.0 ? w[j] / z : 0.0;
    }
    ref_free(&r);
    return NAN; /* no log-sum-exp: no softmax */
}

/* ---------------------------------------------------------------------------------------------------- */
/* the kind                                                                                              */

static double sima_flops(const FvAttnPlan *p)
{
    /* the product, and the two column normalisations (|x|, sum, divide: ~3 per element each) */
    return p->H * (fv_attn_linear_product_flops(p->N, p->hd) + 6.0 * p->N * p->hd);
}

static int32_t sima_tensors(const FvAttnSettings *s, int32_t H, int32_t hd, FvAttnTensor *t)
{
    (void)s, (void)H, (void)hd, (void)t;
    return 0;
}

const FvAttnKindDsp fv_attn_sima_dsp = {
    .kind = FV_ATTN_SIMA,
    .name = "sima",
    .masked = 0,
    .entropy = 0,
    .plan_build = fv_attn_linear_plan_build,
    .plan_free = fv_attn_linear_plan_free,
    .pairs = fv_attn_linear_pairs,
    .allows = fv_attn_linear_allows,
    .jaccard = fv_attn_linear_jaccard,
    .flops = sima_flops,
    .tensors = sima_tensors,
    .scratch = sima_scratch,
    .forward = sima_forward,
    .forward_stats = sima_forward_stats,
    .backward = sima_backward,
    .forward_ref = sima_forward_ref,
    .backward_ref = sima_backward_ref,
    .weights_ref = sima_weights_ref,
};
