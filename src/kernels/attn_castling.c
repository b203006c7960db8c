/* Castling-ViT linear-angular attention (You et al., SPEC 4.2). Per head: q^, k^ = the tokens of q and k
 * l2-normalised (max(||.||, 1e-12)); y = 0.5 v + (1/pi) q^ (k^^T v) (the angular kernel 1 - theta/pi kept to
 * its linear term); x = y / max(||y||, 1e-12) per token; then x[n, c] += sum_{i<9} w[h, i] v[n - 4 + i, c], a
 * depthwise convolution of v along the token index (cls is token 0 of a spatial sequence), 9 taps per head:
 * the kind's own tensor "dwconv.weight" [H, 1, 9, 1] (absent: zero taps). In training the auxiliary branch
 * adds lambda * S v before the normalisation, S = A * [A > 0.02], A = softmax(q k^T / sqrt(d)) of the raw q
 * and k (the indicator passes no gradient); lambda is the plan's aux_weight, 0 at inference, where the branch
 * never runs. Work O(N hd^2) and memory O(N hd) per head without the branch. Backward, the dense reference in
 * double, the diagnostic weights 0.5 + (1/pi) q^.k^, and the kind's table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn_kind.h"
#include "kernels/gemm.h"
#include "util/util.h"

#define EPS 1e-12
#define TAPS FV_CASTLING_TAPS
#define AUX_THRESHOLD 0.02f
#define INV_PI 0.318309886183790671

/* Scratch of one task: qh, kh, y, dy, dqh, dkh (N, hd); qn, kn, yn (N); a row (N); the product's; and for the
 * auxiliary branch A and S / dS (N, N). */
typedef struct Scr {
    float *qh, *kh, *y, *dy, *dqh, *dkh, *qn, *kn, *yn, *row, *lin, *A, *S;
} Scr;

static Scr carve(const FvAttnPlan *p, float *s)
{
    const size_t nd = FV_ALIGN16((size_t)p->N * p->hd), n = FV_ALIGN16(p->N);
    Scr c = { .qh = s, .kh = s + nd, .y = s + 2 * nd, .dy = s + 3 * nd, .dqh = s + 4 * nd, .dkh = s + 5 * nd };
    c.qn = s + 6 * nd;
    c.kn = c.qn + n;
    c.yn = c.kn + n;
    c.row = c.yn + n;
    c.lin = c.row + n;
    c.A = c.lin + fv_attn_linear_scratch(p->N, p->hd);
    c.S = c.A + FV_ALIGN16((size_t)p->N * p->N);
    return c;
}

static size_t castling_scratch(const FvAttnPlan *p)
{
    const size_t nn = p->aux ? 2 * FV_ALIGN16((size_t)p->N * p->N) : 0;
    return 6 * FV_ALIGN16((size_t)p->N * p->hd) + 4 * FV_ALIGN16(p->N) + fv_attn_linear_scratch(p->N, p->hd) + nn;
}

/* xh (N, hd) = each token of x (rows @ld) over max(its l2 norm, eps); nrm (N) the divisors. */
static void normalise_rows(int32_t N, int32_t hd, const float *x, int64_t ld, float *xh, float *nrm)
{
    for (int32_t n = 0; n < N; n++) {
        const float *r = x + n * ld;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int32_t c = 0; c < hd; c++)
            s += r[c] * r[c];
        const double l = sqrt((double)s);
        nrm[n] = (float)(l > EPS ? l : EPS);
        const float inv = 1.0f / nrm[n];
#pragma omp simd
        for (int32_t c = 0; c < hd; c++)
            xh[(size_t)n * hd + c] = r[c] * inv;
    }
}

/* Backward of normalise_rows into dx (rows @ldx, added to) from dxh (rows @lddxh):
 * dx = (dxh - xh (xh . dxh)) / nrm; a clamped token passes dxh / eps. */
static void normalise_rows_backward(int32_t N, int32_t hd, const float *xh, const float *nrm, const float *dxh,
                                    int64_t lddxh, float *dx, int64_t ldx)
{
    for (int32_t n = 0; n < N; n++) {
        const float *g = dxh + n * lddxh, *h = xh + (size_t)n * hd;
        float dot = 0.0f;
        if (nrm[n] > (float)EPS) {
#pragma omp simd reduction(+ : dot)
            for (int32_t c = 0; c < hd; c++)
                dot += g[c] * h[c];
        }
        const float inv = 1.0f / nrm[n];
        for (int32_t c = 0; c < hd; c++)
            dx[n * ldx + c] += (g[c] - h[c] * dot) * inv;
    }
}

/* The auxiliary branch's weights: A = softmax(q k^T / sqrt(hd)) (N, N) of the raw q and k, and S = A where
 * A > 0.02, else 0. */
static void aux_weights(const FvAttnPlan *p, const FvAttnHead *t, float *A, float *S)
{
    const int32_t N = p->N, hd = p->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    fv_gemm()->sgemm_nt(N, N, hd, t->q, (int32_t)t->ld, t->k, (int32_t)t->ld, 0.0f, A, N);
    for (int32_t i = 0; i < N; i++) {
        float *a = A + (size_t)i * N, *s = S + (size_t)i * N, mx = -INFINITY, z = 0.0f;
        for (int32_t j = 0; j < N; j++)
            mx = a[j] * scale > mx ? a[j] * scale : mx;
        for (int32_t j = 0; j < N; j++)
            z += (a[j] = expf(a[j] * scale - mx));
        for (int32_t j = 0; j < N; j++) {
            a[j] /= z;
            s[j] = a[j] > AUX_THRESHOLD ? a[j] : 0.0f;
        }
    }
}

/* y (N, hd) before its normalisation: 0.5 v + (1/pi) q^ (k^^T v) (+ lambda S v); the norms yn. */
static void castling_y(const FvAttnPlan *p, const FvAttnHead *t, const Scr *s)
{
    const int32_t N = p->N, hd = p->hd;
    normalise_rows(N, hd, t->q, t->ld, s->qh, s->qn);
    normalise_rows(N, hd, t->k, t->ld, s->kh, s->kn);
    fv_attn_linear_product(N, hd, s->qh, s->kh, t->v, t->ld, s->y, hd, s->lin);
    const int aux = p->aux && p->aux_weight > 0.0f;
    if (aux) {
        aux_weights(p, t, s->A, s->S);
        for (size_t i = 0; i < (size_t)N * N; i++)
            s->S[i] *= p->aux_weight * (float)M_PI; /* times pi: added before the 1/pi below */
        fv_gemm()->sgemm_nn(N, hd, N, s->S, N, t->v, (int32_t)t->ld, 1.0f, s->y, hd);
    }
    /* y = 0.5 v + (1/pi) (q^ (k^^T v) [+ pi lambda S v]) and its norm, in one pass */
    for (int32_t n = 0; n < N; n++) {
        const float *v = t->v + n * t->ld;
        float *y = s->y + (size_t)n * hd, q = 0.0f;
#pragma omp simd reduction(+ : q)
        for (int32_t c = 0; c < hd; c++) {
            y[c] = 0.5f * v[c] + (float)INV_PI * y[c];
            q += y[c] * y[c];
        }
        const double l = sqrt((double)q);
        s->yn[n] = (float)(l > EPS ? l : EPS);
    }
}

/* The 9 taps of head h, or NULL when the model has none (zero taps). */
static const float *taps(const FvAttnHead *t)
{
    return t->own && t->own[0] ? t->own[0] + (size_t)t->h * TAPS : NULL;
}

static void castling_forward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    const Scr s = carve(p, scratch);
    const int32_t N = p->N, hd = p->hd;
    const float *w = taps(t);
    castling_y(p, t, &s);
    /* x = y / |y| + the taps' sum of v, built in a block of registers and stored once */
    for (int32_t n = 0; n < N; n++) {
        float *o = t->out + n * t->ldo;
        const float inv = 1.0f / s.yn[n], *y = s.y + (size_t)n * hd;
        for (int32_t c0 = 0; c0 < hd; c0 += 64) {
            const int32_t cn = FV_MIN(64, hd - c0);
            float acc[64];
#pragma omp simd
            for (int32_t c = 0; c < cn; c++)
                acc[c] = y[c0 + c] * inv;
            for (int32_t i = 0; w && i < TAPS; i++) {
                const int32_t src = n - TAPS / 2 + i;
                if (src < 0 || src >= N || w[i] == 0.0f)
                    continue;
                const float wi = w[i], *vs = t->v + src * t->ld + c0;
#pragma omp simd
                for (int32_t c = 0; c < cn; c++)
                    acc[c] += wi * vs[c];
            }
#pragma omp simd
            for (int32_t c = 0; c < cn; c++)
                o[c0 + c] = acc[c];
        }
    }
}

/* Diagnostic weights of query i: 0.5 + (1/pi) q^_i . k^_j (SPEC 4.2; at least 0.5 - 1/pi). */
static void castling_row(const FvAttnPlan *p, const float *qh, const float *kh, int32_t i, float *w)
{
    const int32_t hd = p->hd;
    for (int32_t j = 0; j < p->N; j++) {
        float d = 0.0f;
        for (int32_t c = 0; c < hd; c++)
            d += qh[(size_t)i * hd + c] * kh[(size_t)j * hd + c];
        w[j] = 0.5f + (float)INV_PI * d;
    }
}

static void castling_forward_stats(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, const FvAttnStats *st,
                                   int64_t task)
{
    castling_forward(p, t, scratch);
    const Scr s = carve(p, scratch);
    fv_attn_linear_stats(p, s.qh, s.kh, castling_row, s.row, st, task);
}

static void castling_backward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    const Scr s = carve(p, scratch);
    const int32_t N = p->N, hd = p->hd, ld = (int32_t)t->ld;
    const float *w = taps(t);
    float *dw = t->down && t->down[0] ? t->down[0] + (size_t)t->h * TAPS : NULL;
    const FvGemmDsp *g = fv_gemm();
    castling_y(p, t, &s);
    /* the convolution: dv[src] += w[i] G[n], dw[i] += G[n] . v[src] */
    for (int32_t n = 0; n < N; n++) {
        const float *gr = t->dout + n * t->ldo;
        for (int32_t i = 0; i < TAPS; i++) {
            const int32_t src = n - TAPS / 2 + i;
            if (src < 0 || src >= N)
                continue;
            const float *vs = t->v + src * t->ld;
            float *dvs = t->dv + src * t->ld, d = 0.0f;
            for (int32_t c = 0; c < hd; c++) {
                d += gr[c] * vs[c];
                if (w)
                    dvs[c] += w[i] * gr[c];
            }
            if (dw)
                dw[i] += d;
        }
    }
    /* x = y / yn: dy = (G - x (x . G)) / yn; a clamped token passes G / eps */
    for (int32_t n = 0; n < N; n++) {
        const float *gr = t->dout + n * t->ldo, *y = s.y + (size_t)n * hd;
        const float inv = 1.0f / s.yn[n];
        float dot = 0.0f;
        if (s.yn[n] > (float)EPS) {
#pragma omp simd reduction(+ : dot)
            for (int32_t c = 0; c < hd; c++)
                dot += gr[c] * y[c] * inv;
        }
        for (int32_t c = 0; c < hd; c++)
            s.dy[(size_t)n * hd + c] = (gr[c] - y[c] * inv * dot) * inv;
    }
    /* y = 0.5 v + (1/pi) q^ (k^^T v) + lambda S v */
    for (int32_t n = 0; n < N; n++)
        for (int32_t c = 0; c < hd; c++)
            t->dv[n * t->ld + c] += 0.5f * s.dy[(size_t)n * hd + c];
    for (size_t i = 0; i < (size_t)N * hd; i++)
        s.dy[i] *= (float)INV_PI; /* the product's output gradient */
    fv_attn_linear_product_backward(N, hd, s.qh, s.kh, t->v, t->ld, s.dy, hd, s.dqh, s.dkh, t->dv, s.lin);
    normalise_rows_backward(N, hd, s.qh, s.qn, s.dqh, hd, t->dq, t->ld);
    normalise_rows_backward(N, hd, s.kh, s.kn, s.dkh, hd, t->dk, t->ld);
    if (p->aux && p->aux_weight > 0.0f) {
        const float lam = p->aux_weight, scale = 1.0f / sqrtf((float)hd);
        for (size_t i = 0; i < (size_t)N * hd; i++)
            s.dy[i] *= (float)M_PI; /* back to dL/dy */
        for (size_t i = 0; i < (size_t)N * N; i++)
            s.S[i] *= (float)INV_PI; /* castling_y left pi lambda S */
        /* A, S = the branch's weights (S times lambda) */
        g->sgemm_tn(N, hd, N, s.S, N, s.dy, hd, 1.0f, t->dv, ld); /* dv += lambda S^T dy */
        float *dS = s.S;
        g->sgemm_nt(N, N, hd, s.dy, hd, t->v, ld, 0.0f, dS, N); /* dS / lambda = dy v^T */
        for (int32_t i = 0; i < N; i++) {
            const float *a = s.A + (size_t)i * N;
            float *d = dS + (size_t)i * N, sum = 0.0f;
            for (int32_t j = 0; j < N; j++) {
                d[j] = a[j] > AUX_THRESHOLD ? lam * d[j] : 0.0f; /* dA: the indicator passes no gradient */
                sum += d[j] * a[j];
            }
            for (int32_t j = 0; j < N; j++)
                d[j] = a[j] * (d[j] - sum) * scale; /* the softmax's backward, with the score scale */
        }
        g->sgemm_nn(N, hd, N, dS, N, t->k, ld, 1.0f, t->dq, ld); /* dq += dscore k */
        g->sgemm_tn(N, hd, N, dS, N, t->q, ld, 1.0f, t->dk, ld); /* dk += dscore^T q */
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* the reference: the N x N formulation in double                                                        */

typedef struct Ref {
    double *qh, *kh, *qn, *kn; /* (N, hd) x2, (N) x2 */
    double *W;                 /* (N, N): 0.5 I + (1/pi) q^ k^^T + lambda S */
    double *A;                 /* (N, N): the auxiliary softmax, or NULL */
    double *y, *yn;            /* (N, hd), (N) */
} Ref;

static void ref_free(Ref *r)
{
    free(r->qh);
    free(r->kh);
    free(r->qn);
    free(r->kn);
    free(r->W);
    free(r->A);
    free(r->y);
    free(r->yn);
}

static int ref_build(const FvAttnPlan *p, const FvAttnHead *t, Ref *r)
{
    const int32_t N = p->N, hd = p->hd;
    const int aux = p->aux && p->aux_weight > 0.0f;
    memset(r, 0, sizeof(*r));
    r->qh = malloc(sizeof(double) * (size_t)N * hd);
    r->kh = malloc(sizeof(double) * (size_t)N * hd);
    r->qn = malloc(sizeof(double) * (size_t)N);
    r->kn = malloc(sizeof(double) * (size_t)N);
    r->W = malloc(sizeof(double) * (size_t)N * N);
    r->A = aux ? malloc(sizeof(double) * (size_t)N * N) : NULL;
    r->y = malloc(sizeof(double) * (size_t)N * hd);
    r->yn = malloc(sizeof(double) * (size_t)N);
    if (!r->qh || !r->kh || !r->qn || !r->kn || !r->W || (aux && !r->A) || !r->y || !r->yn)
        return -1;
    for (int32_t n = 0; n < N; n++) {
        double sq = 0.0, sk = 0.0;
        for (int32_t c = 0; c < hd; c++) {
            sq += (double)t->q[n * t->ld + c] * t->q[n * t->ld + c];
            sk += (double)t->k[n * t->ld + c] * t->k[n * t->ld + c];
        }
        r->qn[n] = sqrt(sq) > EPS ? sqrt(sq) : EPS;
        r->kn[n] = sqrt(sk) > EPS ? sqrt(sk) : EPS;
        for (int32_t c = 0; c < hd; c++) {
            r->qh[(size_t)n * hd + c] = t->q[n * t->ld + c] / r->qn[n];
            r->kh[(size_t)n * hd + c] = t->k[n * t->ld + c] / r->kn[n];
        }
    }
    for (int32_t i = 0; i < N; i++) {
        double mx = -INFINITY, z = 0.0;
        for (int32_t j = 0; j < N; j++) {
            double a = 0.0, s = 0.0;
            for (int32_t c = 0; c < hd; c++) {
                a += r->qh[(size_t)i * hd + c] * r->kh[(size_t)j * hd + c];
                s += (double)t->q[i * t->ld + c] * t->k[j * t->ld + c];
            }
            r->W[(size_t)i * N + j] = (i == j ? 0.5 : 0.0) + INV_PI * a;
            if (aux) {
                r->A[(size_t)i * N + j] = s / sqrt((double)hd);
                mx = fmax(mx, r->A[(size_t)i * N + j]);
            }
        }
        for (int32_t j = 0; aux && j < N; j++)
            z += (r->A[(size_t)i * N + j] = exp(r->A[(size_t)i * N + j] - mx));
        for (int32_t j = 0; aux && j < N; j++) {
            double *a = &r->A[(size_t)i * N + j];
            *a /= z;
            if (*a > AUX_THRESHOLD)
                r->W[(size_t)i * N + j] += p->aux_weight * *a;
        }
    }
    for (int32_t i = 0; i < N; i++) {
        double s = 0.0;
        for (int32_t c = 0; c < hd; c++) {
            double y = 0.0;
            for (int32_t j = 0; j < N; j++)
                y += r->W[(size_t)i * N + j] * t->v[j * t->ld + c];
            r->y[(size_t)i * hd + c] = y;
            s += y * y;
        }
        r->yn[i] = sqrt(s) > EPS ? sqrt(s) : EPS;
    }
    return 0;
}

static void castling_forward_ref(const FvAttnPlan *p, const FvAttnHead *t)
{
    const int32_t N = p->N, hd = p->hd;
    const float *w = taps(t);
    Ref r;
    if (ref_build(p, t, &r) == 0)
        for (int32_t n = 0; n < N; n++)
            for (int32_t c = 0; c < hd; c++) {
                double o = r.y[(size_t)n * hd + c] / r.yn[n];
                for (int32_t i = 0; w && i < TAPS; i++) {
                    const int32_t src = n - TAPS / 2 + i;
                    if (src >= 0 && src < N)
                        o += (double)w[i] * t->v[src * t->ld + c];
                }
                t->out[n * t->ldo + c] = (float)o;
            }
    ref_free(&r);
}

static void castling_backward_ref(const FvAttnPlan *p, const FvAttnHead *t)
{
    const int32_t N = p->N, hd = p->hd;
    const float *w = taps(t);
    float *dw = t->down && t->down[0] ? t->down[0] + (size_t)t->h * TAPS : NULL;
    const int aux = p->aux && p->aux_weight > 0.0f;
    Ref r;
    double *dy = malloc(sizeof(double) * (size_t)N * hd), *dW = malloc(sizeof(double) * (size_t)N * N);
    double *dqh = calloc((size_t)N * hd, sizeof(double)), *dkh = calloc((size_t)N * hd, sizeof(double));
    if (ref_build(p, t, &r) < 0 || !dy || !dW || !dqh || !dkh)
        goto done;
    for (int32_t n = 0; n < N; n++) {
        const float *gr = t->dout + n * t->ldo;
        double dot = 0.0;
        for (int32_t c = 0; c < hd; c++)
            dot += gr[c] * r.y[(size_t)n * hd + c] / r.yn[n];
        for (int32_t c = 0; c < hd; c++)
            dy[(size_t)n * hd + c] = (gr[c] - r.y[(size_t)n * hd + c] / r.yn[n] * dot) / r.yn[n];
        for (int32_t i = 0; i < TAPS; i++) { /* the convolution */
            const int32_t src = n - TAPS / 2 + i;
            if (src < 0 || src >= N)
                continue;
            double d = 0.0;
            for (int32_t c = 0; c < hd; c++) {
                d += (double)gr[c] * t->v[src * t->ld + c];
                if (w)
                    t->dv[src * t->ld + c] += w[i] * gr[c];
            }
            if (dw)
                dw[i] += (float)d;
        }
    }
    for (int32_t i = 0; i < N; i++)
        for (int32_t j = 0; j < N; j++) {
            double d = 0.0;
            for (int32_t c = 0; c < hd; c++)
                d += dy[(size_t)i * hd + c] * t->v[j * t->ld + c];
            dW[(size_t)i * N + j] = d;
        }
    for (int32_t j = 0; j < N; j++)
        for (int32_t c = 0; c < hd; c++) {
            double dv = 0.0;
            for (int32_t i = 0; i < N; i++)
                dv += r.W[(size_t)i * N + j] * dy[(size_t)i * hd + c];
            t->dv[j * t->ld + c] += (float)dv;
        }
    for (int32_t i = 0; i < N; i++)
        for (int32_t j = 0; j < N; j++)
            for (int32_t c = 0; c < hd; c++) {
                dqh[(size_t)i * hd + c] += INV_PI * dW[(size_t)i * N + j] * r.kh[(size_t)j * hd + c];
                dkh[(size_t)j * hd + c] += INV_PI * dW[(size_t)i * N + j] * r.qh[(size_t)i * hd + c];
            }
    for (int32_t n = 0; n < N; n++) {
        double dq = 0.0, dk = 0.0;
        for (int32_t c = 0; c < hd; c++) {
            dq += dqh[(size_t)n * hd + c] * r.qh[(size_t)n * hd + c];
            dk += dkh[(size_t)n * hd + c] * r.kh[(size_t)n * hd + c];
        }
        for (int32_t c = 0; c < hd; c++) {
            t->dq[n * t->ld + c] += (float)((dqh[(size_t)n * hd + c] - r.qh[(size_t)n * hd + c] * dq) / r.qn[n]);
            t->dk[n * t->ld + c] += (float)((dkh[(size_t)n * hd + c] - r.kh[(size_t)n * hd + c] * dk) / r.kn[n]);
        }
    }
    if (aux) {
        const double sc = 1.0 / sqrt((double)hd);
        for (int32_t i = 0; i < N; i++) {
            double sum = 0.0;
            for (int32_t j = 0; j < N; j++) {
                const double a = r.A[(size_t)i * N + j];
                dW[(size_t)i * N + j] = a > AUX_THRESHOLD ? p->aux_weight * dW[(size_t)i * N + j] : 0.0;
                sum += dW[(size_t)i * N + j] * a;
            }
            for (int32_t j = 0; j < N; j++) {
                const double ds = r.A[(size_t)i * N + j] * (dW[(size_t)i * N + j] - sum) * sc;
                for (int32_t c = 0; c < hd; c++) {
                    t->dq[i * t->ld + c] += (float)(ds * t->k[j * t->ld + c]);
                    t->dk[j * t->ld + c] += (float)(ds * t->q[i * t->ld + c]);
                }
            }
        }
    }
done:
    ref_free(&r);
    free(dy);
    free(dW);
    free(dqh);
    free(dkh);
}

static double castling_weights_ref(const FvAttnPlan *p, const FvAttnHead *t, int32_t i, double *w)
{
    const int32_t N = p->N, hd = p->hd;
    double qn = 0.0;
    for (int32_t c = 0; c < hd; c++)
        qn += (double)t->q[i * t->ld + c] * t->q[i * t->ld + c];
    qn = sqrt(qn) > EPS ? sqrt(qn) : EPS;
    double z = 0.0;
    for (int32_t j = 0; j < N; j++) {
        double kn = 0.0, d = 0.0;
        for (int32_t c = 0; c < hd; c++) {
            kn += (double)t->k[j * t->ld + c] * t->k[j * t->ld + c];
            d += (double)t->q[i * t->ld + c] * t->k[j * t->ld + c];
        }
        kn = sqrt(kn) > EPS ? sqrt(kn) : EPS;
        z += (w[j] = 0.5 + INV_PI * d / (qn * kn));
    }
    for (int32_t j = 0; j < N; j++)
        w[j] /= z;
    return NAN; /* no log-sum-exp: no softmax */
}

/* ---------------------------------------------------------------------------------------------------- */
/* the kind                                                                                              */

static double castling_flops(const FvAttnPlan *p)
{
    /* the product, 0.5 v + y / pi and three l2 normalisations (~3 per element each), the 9-tap convolution */
    return p->H * (fv_attn_linear_product_flops(p->N, p->hd) + 13.0 * p->N * p->hd + 2.0 * TAPS * p->N * p->hd);
}

static int32_t castling_tensors(const FvAttnSettings *s, int32_t H, int32_t hd, FvAttnTensor *t)
{
    (void)s, (void)hd;
    snprintf(t[0].suffix, sizeof(t[0].suffix), "dwconv.weight");
    t[0].ndim = 4;
    t[0].shape[0] = H;
    t[0].shape[1] = 1;
    t[0].shape[2] = TAPS;
    t[0].shape[3] = 1;
    return 1;
}

const FvAttnKindDsp fv_attn_castling_dsp = {
    .kind = FV_ATTN_CASTLING,
    .name = "castling",
    .masked = 0,
    .entropy = 0,
    .aux = 1,
    .plan_build = fv_attn_linear_plan_build,
    .plan_free = fv_attn_linear_plan_free,
    .pairs = fv_attn_linear_pairs,
    .allows = fv_attn_linear_allows,
    .jaccard = fv_attn_linear_jaccard,
    .flops = castling_flops,
    .tensors = castling_tensors,
    .scratch = castling_scratch,
    .forward = castling_forward,
    .forward_stats = castling_forward_stats,
    .backward = castling_backward,
    .forward_ref = castling_forward_ref,
    .backward_ref = castling_backward_ref,
    .weights_ref = castling_weights_ref,
};
