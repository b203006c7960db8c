/* What the softmax kinds (dense, Fibottention) share: the plain C reference forward and backward of one
 * masked softmax head in double (the dense N x N formulation every fast kernel is held against), and the
 * backward by (query, key) pairs from the saved log-sum-exp that short and sparse heads use. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn_kind.h"
#include "kernels/fastmath.h"
#include "util/util.h"

double fv_attn_softmax_ref_weights(const FvAttnPlan *p, const FvAttnHead *t, int32_t i, double *w)
{
    const int32_t N = p->N, hd = p->hd;
    const double scale = 1.0 / sqrt((double)hd);
    const int zero = p->s.semantics == FV_FIB_ZERO;
    double m = -INFINITY;
    for (int32_t j = 0; j < N; j++) {
        double dot = 0.0;
        for (int32_t c = 0; c < hd; c++)
            dot += (double)t->q[i * t->ld + c] * t->k[j * t->ld + c];
        dot *= scale;
        if (!p->dsp->allows(p, t->h, i, j))
            dot = zero ? 0.0 : -INFINITY; /* score * 0, or out of the softmax */
        w[j] = dot;
        m = dot > m ? dot : m;
    }
    double z = 0.0;
    for (int32_t j = 0; j < N; j++)
        z += (w[j] = exp(w[j] - m));
    for (int32_t j = 0; j < N; j++)
        w[j] /= z;
    return m + log(z);
}

void fv_attn_softmax_forward_ref(const FvAttnPlan *p, const FvAttnHead *t)
{
    const int32_t N = p->N, hd = p->hd;
    double *w = malloc(sizeof(double) * (size_t)N);
    if (!w)
        return;
    for (int32_t i = 0; i < N; i++) {
        const double lse = fv_attn_softmax_ref_weights(p, t, i, w);
        float *o = t->out + i * t->ldo;
        for (int32_t c = 0; c < hd; c++) {
            double acc = 0.0;
            for (int32_t j = 0; j < N; j++)
                acc += w[j] * t->v[j * t->ld + c];
            o[c] = (float)acc;
        }
        if (t->aux)
            t->aux[i * t->ldaux] = (float)lse;
    }
    free(w);
}

void fv_attn_softmax_backward_ref(const FvAttnPlan *p, const FvAttnHead *t)
{
    const int32_t N = p->N, hd = p->hd;
    const double scale = 1.0 / sqrt((double)hd);
    double *s = malloc(sizeof(double) * (size_t)N), *dp = malloc(sizeof(double) * (size_t)N);
    double *g = calloc(3 * (size_t)N * (size_t)hd, sizeof(double)); /* dq, dk, dv (N, hd) each */
    if (!s || !dp || !g)
        goto done;
    double *dq = g, *dk = g + (size_t)N * hd, *dv = dk + (size_t)N * hd;
    for (int32_t i = 0; i < N; i++) {
        fv_attn_softmax_ref_weights(p, t, i, s); /* P[i][j] */
        double delta = 0.0;
        const float *doi = t->dout + i * t->ldo;
        for (int32_t j = 0; j < N; j++) {
            double d = 0.0;
            for (int32_t c = 0; c < hd; c++)
                d += (double)doi[c] * t->v[j * t->ld + c];
            dp[j] = d;
            delta += s[j] * d;
        }
        for (int32_t j = 0; j < N; j++) {
            for (int32_t c = 0; c < hd; c++)
                dv[(size_t)j * hd + c] += s[j] * doi[c];
            if (!p->dsp->allows(p, t->h, i, j))
                continue; /* a masked score is a constant (0 or -inf): no gradient reaches q or k */
            const double ds = s[j] * (dp[j] - delta) * scale;
            for (int32_t c = 0; c < hd; c++) {
                dq[(size_t)i * hd + c] += ds * t->k[j * t->ld + c];
                dk[(size_t)j * hd + c] += ds * t->q[i * t->ld + c];
            }
        }
    }
    for (int32_t i = 0; i < N; i++)
        for (int32_t c = 0; c < hd; c++) {
            t->dq[i * t->ld + c] += (float)dq[(size_t)i * hd + c];
            t->dk[i * t->ld + c] += (float)dk[(size_t)i * hd + c];
            t->dv[i * t->ld + c] += (float)dv[(size_t)i * hd + c];
        }
done:
    free(s);
    free(dp);
    free(g);
}

static inline float dotf(const float *a, const float *b, int32_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int32_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

double fv_attn_softmax_flops(const FvAttnPlan *p)
{
    double pairs = 0.0;
    for (int32_t h = 0; h < p->H; h++)
        pairs += (double)p->dsp->pairs(p, h);
    return 2.0 * 2.0 * p->hd * pairs;
}

int32_t fv_attn_softmax_tensors(const FvAttnSettings *s, int32_t H, int32_t hd, FvAttnTensor *t)
{
    (void)s, (void)H, (void)hd, (void)t;
    return 0;
}

size_t fv_attn_softmax_pairs_scratch(const FvAttnPlan *p)
{
    return FV_ALIGN16(p->N) + FV_ALIGN16(p->hd);
}

void fv_attn_softmax_backward_pairs(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, FvAttnKeysFn keys_of,
                                    int zero)
{
    const int32_t N = p->N, hd = p->hd, h = t->h;
    const int64_t ld = t->ld, ldo = t->ldo;
    const float scale = 1.0f / sqrtf((float)hd);
    int32_t *keys = (int32_t *)scratch;
    float *gsum = scratch + FV_ALIGN16(N); // gsum (hd): sum over queries of p0_j dO_j (zero semantics)
    for (int32_t d = 0; d < hd; d++)
        gsum[d] = 0.0f;
    for (int32_t j = 0; j < N; j++) {
        const int32_t cnt = keys_of(p, h, j, keys);
        const int32_t masked = zero ? N - cnt : 0;
        const float l = t->aux[j * t->ldaux];
        const float *qj = t->q + j * ld, *dOj = t->dout + j * ldo;
        const float delta = dotf(dOj, t->out + j * ldo, hd); /* sum_k p_jk dp_jk over all keys */
        const float p0 = masked ? fv_expf(-l) : 0.0f;          /* weight of each masked key */
        float *dqj = t->dq + j * ld;
        if (masked)
            for (int32_t d = 0; d < hd; d++)
                gsum[d] += p0 * dOj[d];
        for (int32_t i = 0; i < cnt; i++) {
            const int64_t kr = (int64_t)keys[i] * ld;
            const float *kk = t->k + kr, *vk = t->v + kr;
            const float pjk = fv_expf(dotf(qj, kk, hd) * scale - l);
            const float ds = pjk * (dotf(dOj, vk, hd) - delta) * scale;
            const float wv = pjk - p0; /* every key gets p0 * dO_j through gsum below */
            float *dkk = t->dk + kr, *dvk = t->dv + kr;
#pragma omp simd
            for (int32_t d = 0; d < hd; d++) {
                dqj[d] += ds * kk[d];
                dkk[d] += ds * qj[d];
                dvk[d] += wv * dOj[d];
            }
        }
    }
    if (zero)
        for (int32_t r = 0; r < N; r++)
            for (int32_t d = 0; d < hd; d++)
                t->dv[r * ld + d] += gsum[d];
}
