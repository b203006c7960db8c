/* LayerNorm, exact (erf) GELU and softmax, forward and backward: OpenMP over rows, vectorisable inner loops. */
#include <math.h>
#include <string.h>

#include <omp.h>

#include "kernels/fastmath.h"
#include "kernels/bf16.h"
#include "kernels/layers.h"
#include "util/util.h"

/* A row's mean and 1/sqrt(var + eps) in two passes: the mean is subtracted before squaring, as PyTorch does, so
 * large offsets do not cancel. */
static inline void ln_stats(const float *x, int32_t D, float eps, float *mu_out, float *rs_out)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int32_t i = 0; i < D; i++)
        s += x[i];
    const float mu = s / D;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int32_t i = 0; i < D; i++) {
        const float d = x[i] - mu;
        v += d * d;
    }
    *mu_out = mu;
    *rs_out = 1.0f / sqrtf(v / D + eps);
}

void fv_layernorm_forward(float *out, int64_t ldo, const float *in, int64_t ldi, float *mean, float *rstd,
                          const float *w, const float *b, int64_t rows, int32_t D, float eps)
{
#pragma omp parallel for schedule(static) if (rows > 16)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * ldi;
        float *y = out + r * ldo, mu, rs;
        ln_stats(x, D, eps, &mu, &rs);
        if (mean) {
            mean[r] = mu;
            rstd[r] = rs;
        }
        for (int32_t i = 0; i < D; i++)
            y[i] = (x[i] - mu) * rs * w[i] + b[i];
    }
}

void fv_layernorm_gather(void *out, int64_t ldo, int bf16, const float *in, int64_t ldi, const int32_t *idx,
                         const float *w, const float *b, int64_t rows, int32_t D, float eps)
{
#pragma omp parallel for schedule(static) if (rows > 16)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + (idx ? idx[r] : r) * ldi;
        float mu, rs;
        ln_stats(x, D, eps, &mu, &rs);
        if (bf16) {
            uint16_t *y = (uint16_t *)out + r * ldo;
            for (int32_t i = 0; i < D; i++)
                y[i] = fv_bf16_from_f32((x[i] - mu) * rs * w[i] + b[i]);
        } else {
            float *y = (float *)out + r * ldo;
            for (int32_t i = 0; i < D; i++)
                y[i] = (x[i] - mu) * rs * w[i] + b[i];
        }
    }
}

void fv_layernorm_forward_bf16(uint16_t *out, int64_t ldo, const float *in, int64_t ldi, const float *w,
                               const float *b, int64_t rows, int32_t D, float eps)
{
    fv_layernorm_gather(out, ldo, 1, in, ldi, NULL, w, b, rows, D, eps);
}

void fv_layernorm_backward(float *dx, int64_t lddx, int acc, const float *dout, int64_t lddo, const float *in,
                           int64_t ldi, const float *mean, const float *rstd, const float *w, float *dw, float *db,
                           int64_t rows, int32_t D, float *scratch, size_t stride, int32_t nthreads)
{
#pragma omp parallel num_threads(nthreads)
    {
        float *pw = scratch + stride * (size_t)omp_get_thread_num(), *pb = pw + D;
        memset(pw, 0, sizeof(float) * 2 * (size_t)D);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *x = in + r * ldi, *dy = dout + r * lddo;
            const float mu = mean[r], rs = rstd[r];
            float s1 = 0.0f, s2 = 0.0f; /* mean(dxhat), mean(dxhat * xhat) */
#pragma omp simd reduction(+ : s1, s2)
            for (int32_t i = 0; i < D; i++) {
                const float xh = (x[i] - mu) * rs, dxh = dy[i] * w[i];
                pw[i] += dy[i] * xh;
                pb[i] += dy[i];
                s1 += dxh;
                s2 += dxh * xh;
            }
            s1 /= D;
            s2 /= D;
            float *o = dx + r * lddx;
            for (int32_t i = 0; i < D; i++) {
                const float xh = (x[i] - mu) * rs;
                const float v = rs * (dy[i] * w[i] - s1 - xh * s2);
                o[i] = acc ? o[i] + v : v;
            }
        }
#pragma omp critical
        for (int32_t i = 0; i < D; i++) {
            dw[i] += pw[i];
            db[i] += pb[i];
        }
    }
}

void fv_gelu(float *x, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + fv_erf(x[i] * 0.70710678118654752f));
}

void fv_gelu_backward(float *dh, const float *pre, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        const float x = pre[i];
        const float cdf = 0.5f * (1.0f + fv_erf(x * 0.70710678118654752f));
        const float pdf = 0.39894228040143268f * fv_expf(-0.5f * x * x);
        dh[i] *= cdf + x * pdf;
    }
}

void fv_softmax(float *x, int32_t n)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int32_t i = 0; i < n; i++)
        m = x[i] > m ? x[i] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int32_t i = 0; i < n; i++) {
        x[i] = fv_expf(x[i] - m);
        s += x[i];
    }
    float inv = 1.0f / s;
    for (int32_t i = 0; i < n; i++)
        x[i] *= inv;
}
