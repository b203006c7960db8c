/* What the linear attention kinds (SimA, Castling-ViT) share: the product q^ (k^^T v) of one head in whichever
 * order is cheaper, and its backward, through the GEMM table; their diagnostics from weight rows; and the
 * plan entries of kinds that weigh every pair. No N x N matrix unless N < head_dim (then it is the smaller). */
#include <math.h>
#include <string.h>

#include "kernels/attn_kind.h"
#include "kernels/gemm.h"
#include "util/util.h"

size_t fv_attn_linear_scratch(int32_t N, int32_t hd)
{
    /* forward: M (hd, hd) or A (N, N); backward: the same and its gradient */
    const size_t m = N >= hd ? (size_t)hd * hd : (size_t)N * N;
    return 2 * FV_ALIGN16(m);
}

double fv_attn_linear_product_flops(int32_t N, int32_t hd)
{
    return 4.0 * N * hd * (double)FV_MIN(N, hd);
}

/* Sequences this short take plain loops: a GEMM call costs more than the product (temporal attention: the
 * T frames of one patch, thousands of sequences a layer). */
#define SHORT_N 32

/* A (N, N) = qh kh^T for a short sequence. */
static void short_scores(int32_t N, int32_t hd, const float *qh, const float *kh, float *A)
{
    for (int32_t i = 0; i < N; i++)
        for (int32_t j = 0; j < N; j++) {
            const float *a = qh + (size_t)i * hd, *b = kh + (size_t)j * hd;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int32_t c = 0; c < hd; c++)
                d += a[c] * b[c];
            A[(size_t)i * N + j] = d;
        }
}

void fv_attn_linear_product(int32_t N, int32_t hd, const float *qh, const float *kh, const float *v, int64_t ldv,
                            float *out, int64_t ldo, float *scratch)
{
    const FvGemmDsp *g = fv_gemm();
    if (N < hd && N <= SHORT_N) {
        float *A = scratch;
        short_scores(N, hd, qh, kh, A);
        for (int32_t i = 0; i < N; i++) {
            float *o = out + i * ldo;
            for (int32_t c = 0; c < hd; c++)
                o[c] = 0.0f;
            for (int32_t j = 0; j < N; j++) {
                const float a = A[(size_t)i * N + j], *vr = v + j * ldv;
#pragma omp simd
                for (int32_t c = 0; c < hd; c++)
                    o[c] += a * vr[c];
            }
        }
    } else if (N >= hd) {
        float *M = scratch; // M (hd, hd) = kh^T v
        g->sgemm_tn(hd, hd, N, kh, hd, v, (int32_t)ldv, 0.0f, M, hd);
        g->sgemm_nn(N, hd, hd, qh, hd, M, hd, 0.0f, out, (int32_t)ldo);
    } else {
        float *A = scratch; // A (N, N) = qh kh^T
        g->sgemm_nt(N, N, hd, qh, hd, kh, hd, 0.0f, A, N);
        g->sgemm_nn(N, hd, N, A, N, v, (int32_t)ldv, 0.0f, out, (int32_t)ldo);
    }
}

void fv_attn_linear_product_backward(int32_t N, int32_t hd, const float *qh, const float *kh, const float *v,
                                     int64_t ldv, const float *gr, int64_t ldg, float *dqh, float *dkh, float *dv,
                                     float *scratch)
{
    const FvGemmDsp *g = fv_gemm();
    const int32_t lv = (int32_t)ldv, lg = (int32_t)ldg;
    if (N < hd && N <= SHORT_N) {
        float *A = scratch, *dA = scratch + FV_ALIGN16((size_t)N * N);
        short_scores(N, hd, qh, kh, A);
        for (int32_t i = 0; i < N; i++)
            for (int32_t j = 0; j < N; j++) {
                const float *a = gr + i * ldg, *b = v + j * ldv;
                float d = 0.0f;
#pragma omp simd reduction(+ : d)
                for (int32_t c = 0; c < hd; c++)
                    d += a[c] * b[c];
                dA[(size_t)i * N + j] = d; /* dA = G v^T */
            }
        for (int32_t i = 0; i < N; i++) {
            float *dq = dqh + (size_t)i * hd, *dk = dkh + (size_t)i * hd;
            for (int32_t c = 0; c < hd; c++)
                dq[c] = dk[c] = 0.0f;
        }
        for (int32_t i = 0; i < N; i++)
            for (int32_t j = 0; j < N; j++) {
                const float a = A[(size_t)i * N + j], da = dA[(size_t)i * N + j];
                const float *gi = gr + i * ldg, *kj = kh + (size_t)j * hd, *qi = qh + (size_t)i * hd;
                float *dvj = dv + j * ldv, *dqi = dqh + (size_t)i * hd, *dkj = dkh + (size_t)j * hd;
#pragma omp simd
                for (int32_t c = 0; c < hd; c++) {
                    dvj[c] += a * gi[c];  /* dv += A^T G */
                    dqi[c] += da * kj[c]; /* dqh = dA kh */
                    dkj[c] += da * qi[c]; /* dkh = dA^T qh */
                }
            }
    } else if (N >= hd) {
        float *M = scratch, *dM = scratch + FV_ALIGN16((size_t)hd * hd); // M, dM (hd, hd)
        g->sgemm_tn(hd, hd, N, kh, hd, v, lv, 0.0f, M, hd);             /* M = kh^T v */
        g->sgemm_nt(N, hd, hd, gr, lg, M, hd, 0.0f, dqh, hd);           /* dqh = G M^T */
        g->sgemm_tn(hd, hd, N, qh, hd, gr, lg, 0.0f, dM, hd);           /* dM = qh^T G */
        g->sgemm_nt(N, hd, hd, v, lv, dM, hd, 0.0f, dkh, hd);           /* dkh = v dM^T */
        g->sgemm_nn(N, hd, hd, kh, hd, dM, hd, 1.0f, dv, lv);           /* dv += kh dM */
    } else {
        float *A = scratch, *dA = scratch + FV_ALIGN16((size_t)N * N); // A, dA (N, N)
        g->sgemm_nt(N, N, hd, qh, hd, kh, hd, 0.0f, A, N);             /* A = qh kh^T */
        g->sgemm_nt(N, N, hd, gr, lg, v, lv, 0.0f, dA, N);             /* dA = G v^T */
        g->sgemm_tn(N, hd, N, A, N, gr, lg, 1.0f, dv, lv);             /* dv += A^T G */
        g->sgemm_nn(N, hd, N, dA, N, kh, hd, 0.0f, dqh, hd);           /* dqh = dA kh */
        g->sgemm_tn(N, hd, N, dA, N, qh, hd, 0.0f, dkh, hd);           /* dkh = dA^T qh */
    }
}

void fv_attn_linear_stats(const FvAttnPlan *p, const float *qh, const float *kh, FvAttnRowFn row, float *w,
                          const FvAttnStats *st, int64_t task)
{
    const int32_t N = p->N, c = p->has_cls ? 1 : 0, n = N - c;
    double dist = 0.0;
    for (int32_t i = 0; i < N; i++) {
        row(p, qh, kh, i, w);
        double z = 0.0;
        for (int32_t j = 0; j < N; j++)
            z += w[j];
        if (c && i == 0) {
            if (st->cls)
                for (int32_t j = 0; j < n; j++)
                    st->cls[task * n + j] = z > 0.0 ? (float)(w[1 + j] / z) : 0.0f;
            continue;
        }
        const int32_t jq = i - c;
        double ws = 0.0, ds = 0.0;
        for (int32_t k = 0; k < n; k++) {
            double d;
            if (!st->dtab) {
                d = fabs((double)k - jq);
            } else {
                const int32_t Wp = st->Wp, dy = k / Wp - jq / Wp, dx = k % Wp - jq % Wp;
                d = st->dtab[(int64_t)(dy + st->Hp - 1) * (2 * Wp - 1) + dx + Wp - 1];
            }
            ws += w[c + k];
            ds += w[c + k] * d;
        }
        dist += ws > 0.0 ? ds / ws : 0.0;
    }
    st->ent[task] = NAN; /* no probability distribution: entropy is null (SPEC 4.1) */
    st->ent_norm[task] = NAN;
    st->dist[task] += dist;
}

int64_t fv_attn_linear_pairs(const FvAttnPlan *p, int32_t h)
{
    (void)h;
    return (int64_t)p->N * p->N;
}

double fv_attn_linear_jaccard(const FvAttnPlan *p, int32_t a, int32_t b)
{
    (void)p, (void)a, (void)b;
    return 1.0;
}

int fv_attn_linear_allows(const FvAttnPlan *p, int32_t h, int32_t i, int32_t j)
{
    (void)p, (void)h, (void)i, (void)j;
    return 1;
}

int fv_attn_linear_plan_build(FvAttnPlan *p)
{
    (void)p;
    return 0;
}

void fv_attn_linear_plan_free(FvAttnPlan *p)
{
    (void)p;
}
