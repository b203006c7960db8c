/* Dense softmax attention: the fast kernel of one (sequence, head) for every length (register-blocked
 * micro-kernels for long sequences, direct dot products for short ones), its backward (GEMM products for
 * long sequences, (query, key) loops for short ones), and the kind's table. */
#include <math.h>
#include <string.h>

#include "kernels/attn_kind.h"
#include "kernels/fastmath.h"
#include "kernels/gemm.h"
#include "util/util.h"

/* Dense softmax attention of one (sequence, head) with register-blocked micro-kernels (GCC vector types:
 * AVX-512 with -march=native, narrower ISAs otherwise). OpenBLAS is slower here: at these sizes (N ~ 200,
 * head_dim 64) it re-packs K and V on every call. Four queries at a time:
 *   scores  S (4, Np) = (q * scale) K^T   — K transposed once into kt (hd, Np), Np = N rounded up to 32;
 *   softmax per row (vectorised exp and reductions);
 *   output  O (4, hd) = P V                — V copied once into contiguous rows.
 * scratch: hd*Np + N*hd + 4*Np floats. Head dims that are not a multiple of 16 take plain loops. */
#pragma GCC diagnostic ignored "-Wpsabi" /* 64-byte vectors change the ABI without AVX-512: internal only */
typedef float fv_v16 __attribute__((vector_size(64), aligned(4), may_alias));

static size_t dense_scratch(int32_t N, int32_t hd)
{
    const size_t Np = ((size_t)N + 31) & ~(size_t)31;
    return (size_t)hd * Np + (size_t)N * hd + 4 * Np;
}

/* In-place softmax of @rows rows of @N scores (row stride @lds); the log-sum-exp of row r goes to
 * lse[r * ldl] when @lse is not NULL (the backward recomputes the weights from it). */
static void softmax_rows(float *s, int32_t rows, int32_t N, int64_t lds, float *lse, int64_t ldl)
{
    for (int32_t r = 0; r < rows; r++) {
        float *sr = s + r * lds;
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (int32_t j = 0; j < N; j++)
            m = sr[j] > m ? sr[j] : m;
        float z = 0.0f;
#pragma omp simd reduction(+ : z)
        for (int32_t j = 0; j < N; j++)
            z += (sr[j] = fv_expf(sr[j] - m));
        const float inv = 1.0f / z;
#pragma omp simd
        for (int32_t j = 0; j < N; j++)
            sr[j] *= inv;
        if (lse)
            lse[r * ldl] = m + logf(z);
    }
}

/* Short sequences (temporal attention: N = frames): dot products straight from the qkv rows, no
 * transposition or padding, which would cost more than the attention itself. */
/* Statistics of dense query @i (c = 1: token 0 is cls) from its normalised weights @w (N). */
static void dense_row_stats(const FvAttnStats *st, int64_t task, int32_t N, int32_t c, int32_t i, const float *w)
{
    float e = 0.0f;
#pragma omp simd reduction(+ : e)
    for (int32_t j = 0; j < N; j++)
        e += fv_attn_plogp(w[j]);
    st->ent[task] += e;
    st->ent_norm[task] += N > 1 ? e / logf((float)N) : 0.0f;
    const int32_t n = N - c;
    const float *wp = w + c; /* weights of the patch keys */
    if (c && i == 0) {
        if (st->cls)
            memcpy(st->cls + task * n, wp, sizeof(float) * (size_t)n);
        return;
    }
    const int32_t j = i - c;
    float ws = 0.0f, ds = 0.0f;
    if (!st->dtab) {
        for (int32_t k = 0; k < n; k++) {
            ws += wp[k];
            ds += wp[k] * (float)(k > j ? k - j : j - k);
        }
    } else {
        const int32_t Wp = st->Wp, jy = j / Wp, jx = j % Wp, tw = 2 * Wp - 1;
        for (int32_t ky = 0; ky < st->Hp; ky++) {
            const float *drow = st->dtab + (int64_t)(ky - jy + st->Hp - 1) * tw + (Wp - 1 - jx);
            const float *wr = wp + (int64_t)ky * Wp;
#pragma omp simd reduction(+ : ws, ds)
            for (int32_t kx = 0; kx < Wp; kx++) {
                ws += wr[kx];
                ds += wr[kx] * drow[kx];
            }
        }
    }
    st->dist[task] += ws > 0.0f ? ds / ws : 0.0f;
}

static inline __attribute__((always_inline)) void
dense_head_short(int32_t N, int32_t hd, const float *q, const float *k, const float *v, int64_t ld, float *out,
                 int64_t ldo, float *lse, int64_t ldl, const FvAttnStats *st, int64_t task, int32_t c)
{
    const float scale = 1.0f / sqrtf((float)hd);
    float s[32];
    for (int32_t i = 0; i < N; i++) {
        const float *qi = q + i * ld;
        for (int32_t j = 0; j < N; j++) {
            const float *kj = k + j * ld;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int32_t c = 0; c < hd; c++)
                d += qi[c] * kj[c];
            s[j] = d * scale;
        }
        softmax_rows(s, 1, N, N, lse ? lse + i * ldl : NULL, 0);
        if (st)
            dense_row_stats(st, task, N, c, i, s);
        float *o = out + i * ldo;
        for (int32_t c = 0; c < hd; c++)
            o[c] = 0.0f;
        for (int32_t j = 0; j < N; j++) {
            const float p = s[j];
            const float *vj = v + j * ld;
#pragma omp simd
            for (int32_t c = 0; c < hd; c++)
                o[c] += p * vj[c];
        }
    }
}

/* @st NULL (a constant at every call site: the function is inlined) for the plain kernel; else task
 * @task's statistics are added, @c = 1 when token 0 is cls. */
static inline __attribute__((always_inline)) void
dense_head(int32_t N, int32_t hd, const float *q, const float *k, const float *v, int64_t ld, float *out,
           int64_t ldo, float *lse, int64_t ldl, float *scratch, const FvAttnStats *st, int64_t task, int32_t c)
{
    if (N <= 32) {
        dense_head_short(N, hd, q, k, v, ld, out, ldo, lse, ldl, st, task, c);
        return;
    }
    const int32_t Np = (N + 31) & ~31;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kt = scratch;                      /* (hd, Np), zero-padded columns */
    float *vc = kt + (size_t)hd * Np;         /* (N, hd) */
    float *s = vc + (size_t)N * hd;           /* (4, Np) */
    for (int32_t c = 0; c < hd; c++) {
        float *row = kt + (size_t)c * Np;
        for (int32_t j = 0; j < N; j++)
            row[j] = k[j * ld + c];
        for (int32_t j = N; j < Np; j++)
            row[j] = 0.0f;
    }
    for (int32_t j = 0; j < N; j++)
        memcpy(vc + (size_t)j * hd, v + j * ld, sizeof(float) * hd);
    const int vec = hd % 16 == 0;

    for (int32_t i0 = 0; i0 < N; i0 += 4) {
        const int32_t nb = FV_MIN(4, N - i0);
        float qs[4][256];
        const int32_t hq = FV_MIN(hd, 256);
        for (int32_t r = 0; r < 4; r++)
            for (int32_t c = 0; c < hq; c++)
                qs[r][c] = r < nb ? q[(i0 + r) * ld + c] * scale : 0.0f;
        if (vec && hd <= 256) {
            for (int32_t j0 = 0; j0 < Np; j0 += 32) {
                fv_v16 a00 = { 0 }, a01 = { 0 }, a10 = { 0 }, a11 = { 0 };
                fv_v16 a20 = { 0 }, a21 = { 0 }, a30 = { 0 }, a31 = { 0 };
                for (int32_t c = 0; c < hd; c++) {
                    const fv_v16 k0 = *(const fv_v16 *)(kt + (size_t)c * Np + j0);
                    const fv_v16 k1 = *(const fv_v16 *)(kt + (size_t)c * Np + j0 + 16);
                    a00 += qs[0][c] * k0; a01 += qs[0][c] * k1;
                    a10 += qs[1][c] * k0; a11 += qs[1][c] * k1;
                    a20 += qs[2][c] * k0; a21 += qs[2][c] * k1;
                    a30 += qs[3][c] * k0; a31 += qs[3][c] * k1;
                }
                *(fv_v16 *)(s + j0) = a00;           *(fv_v16 *)(s + j0 + 16) = a01;
                *(fv_v16 *)(s + Np + j0) = a10;      *(fv_v16 *)(s + Np + j0 + 16) = a11;
                *(fv_v16 *)(s + 2 * Np + j0) = a20;  *(fv_v16 *)(s + 2 * Np + j0 + 16) = a21;
                *(fv_v16 *)(s + 3 * Np + j0) = a30;  *(fv_v16 *)(s + 3 * Np + j0 + 16) = a31;
            }
        } else {
            for (int32_t r = 0; r < nb; r++) {
                float *sr = s + (size_t)r * Np;
                for (int32_t j = 0; j < N; j++)
                    sr[j] = 0.0f;
                for (int32_t c = 0; c < hd; c++) {
                    const float qc = q[(i0 + r) * ld + c] * scale;
                    const float *kc = kt + (size_t)c * Np;
                    for (int32_t j = 0; j < N; j++)
                        sr[j] += qc * kc[j];
                }
            }
        }
        softmax_rows(s, nb, N, Np, lse ? lse + i0 * ldl : NULL, ldl);
        if (st)
            for (int32_t r = 0; r < nb; r++)
                dense_row_stats(st, task, N, c, i0 + r, s + (size_t)r * Np);
        int32_t c0 = 0;
        if (vec)
            for (; c0 + 64 <= hd; c0 += 64) {
                fv_v16 o[4][4] = { { { 0 } } };
                for (int32_t j = 0; j < N; j++) {
                    const float *vj = vc + (size_t)j * hd + c0;
                    const fv_v16 v0 = *(const fv_v16 *)vj, v1 = *(const fv_v16 *)(vj + 16);
                    const fv_v16 v2 = *(const fv_v16 *)(vj + 32), v3 = *(const fv_v16 *)(vj + 48);
                    for (int32_t r = 0; r < 4; r++) {
                        const float p = s[(size_t)r * Np + j];
                        o[r][0] += p * v0; o[r][1] += p * v1; o[r][2] += p * v2; o[r][3] += p * v3;
                    }
                }
                for (int32_t r = 0; r < nb; r++)
                    for (int32_t u = 0; u < 4; u++)
                        *(fv_v16 *)(out + (i0 + r) * ldo + c0 + 16 * u) = o[r][u];
            }
        for (int32_t r = 0; r < nb; r++) { /* remaining head dims */
            float *o = out + (i0 + r) * ldo;
            const float *sr = s + (size_t)r * Np;
            for (int32_t c = c0; c < hd; c++)
                o[c] = 0.0f;
            if (c0 < hd)
                for (int32_t j = 0; j < N; j++) {
                    const float p = sr[j];
                    const float *vj = vc + (size_t)j * hd;
                    for (int32_t c = c0; c < hd; c++)
                        o[c] += p * vj[c];
                }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* backward                                                                                              */

int32_t fv_attn_dense_gemm_min = 64;

static int32_t all_keys(const FvAttnPlan *p, int32_t h, int32_t j, int32_t *keys)
{
    (void)h, (void)j;
    for (int32_t k = 0; k < p->N; k++)
        keys[k] = k;
    return p->N;
}

/* Long sequences: the scores S and dP = dO V^T as GEMM products, the weights P = softmax(S * scale), then
 * dS = P (dP - rowsum(P dP)) scale, dV = P^T dO, dQ = dS K, dK = dS^T Q. Scratch: 2 N^2 floats. */
static void dense_backward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    const int32_t N = p->N, hd = p->hd, ld = (int32_t)t->ld, ldo = (int32_t)t->ldo;
    if (N < fv_attn_dense_gemm_min) {
        fv_attn_softmax_backward_pairs(p, t, scratch, all_keys, 0);
        return;
    }
    const float scale = 1.0f / sqrtf((float)hd);
    const FvGemmDsp *g = fv_gemm();
    float *Pm = scratch, *dP = scratch + (size_t)N * N; // Pm (N, N), dP (N, N)
    g->sgemm_nt(N, N, hd, t->q, ld, t->k, ld, 0.0f, Pm, N);
    g->sgemm_nt(N, N, hd, t->dout, ldo, t->v, ld, 0.0f, dP, N);
    for (int32_t i = 0; i < N; i++) {
        float *pr = Pm + (size_t)i * N, *dpr = dP + (size_t)i * N;
        /* the softmax of the row as these products give it (not exp(s - lse) with the forward kernel's lse):
         * weights that sum to 1 with the scores the gradient is taken of */
        float mx = -INFINITY, z = 0.0f, delta = 0.0f;
        for (int32_t j = 0; j < N; j++)
            mx = pr[j] > mx ? pr[j] : mx;
        for (int32_t j = 0; j < N; j++)
            z += (pr[j] = fv_expf((pr[j] - mx) * scale));
        const float inv = 1.0f / z;
        for (int32_t j = 0; j < N; j++) {
            pr[j] *= inv;
            delta += pr[j] * dpr[j];
        }
        for (int32_t j = 0; j < N; j++)
            dpr[j] = pr[j] * (dpr[j] - delta) * scale; /* dS, with the score scale folded in */
    }
    g->sgemm_tn(N, hd, N, Pm, N, t->dout, ldo, 1.0f, t->dv, ld);  /* dV += P^T dO */
    g->sgemm_nn(N, hd, N, dP, N, t->k, ld, 1.0f, t->dq, ld);      /* dQ += dS K */
    g->sgemm_tn(N, hd, N, dP, N, t->q, ld, 1.0f, t->dk, ld);      /* dK += dS^T Q */
}

/* ---------------------------------------------------------------------------------------------------- */
/* the kind                                                                                              */

static int dense_plan_build(FvAttnPlan *p)
{
    (void)p;
    return 0;
}

static void dense_plan_free(FvAttnPlan *p)
{
    (void)p;
}

static int64_t dense_pairs(const FvAttnPlan *p, int32_t h)
{
    (void)h;
    return (int64_t)p->N * p->N;
}

static int dense_allows(const FvAttnPlan *p, int32_t h, int32_t i, int32_t j)
{
    (void)p, (void)h, (void)i, (void)j;
    return 1;
}

static double dense_jaccard(const FvAttnPlan *p, int32_t a, int32_t b)
{
    (void)p, (void)a, (void)b;
    return 1.0;
}

static size_t dense_scratch_floats(const FvAttnPlan *p)
{
    const size_t fwd = dense_scratch(p->N, p->hd);
    const size_t bwd = p->N >= fv_attn_dense_gemm_min ? 2 * (size_t)p->N * (size_t)p->N
                                                       : fv_attn_softmax_pairs_scratch(p);
    return FV_MAX(fwd, bwd);
}

static void dense_forward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    dense_head(p->N, p->hd, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, NULL, 0, 0);
}

static void dense_forward_stats(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, const FvAttnStats *st,
                                int64_t task)
{
    dense_head(p->N, p->hd, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task,
               p->has_cls);
}

const FvAttnKindDsp fv_attn_dense_dsp = {
    .kind = FV_ATTN_DENSE,
    .name = "dense",
    .masked = 0,
    .entropy = 1,
    .plan_build = dense_plan_build,
    .plan_free = dense_plan_free,
    .pairs = dense_pairs,
    .allows = dense_allows,
    .jaccard = dense_jaccard,
    .flops = fv_attn_softmax_flops,
    .tensors = fv_attn_softmax_tensors,
    .scratch = dense_scratch_floats,
    .forward = dense_forward,
    .forward_stats = dense_forward_stats,
    .backward = dense_backward,
    .forward_ref = fv_attn_softmax_forward_ref,
    .backward_ref = fv_attn_softmax_backward_ref,
    .weights_ref = fv_attn_softmax_ref_weights,
    .keys = all_keys,
};
