/* LayerNorm, exact (erf) GELU and softmax: OpenMP over rows, vectorisable inner loops. */
#include <math.h>

#include "util/util.h"
#include "kernels/fastmath.h"
#include "kernels/layers.h"

void fv_layernorm(float *out, const float *in, int64_t ld_in, const float *w, const float *b, int64_t rows,
                  int32_t D, float eps)
{
#pragma omp parallel for schedule(static) if (rows > 16)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * ld_in;
        float *y = out + r * D;
        /* two passes: the mean is subtracted before squaring, as PyTorch does, so large offsets do not cancel */
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int32_t i = 0; i < D; i++)
            s += x[i];
        float mean = s / D;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int32_t i = 0; i < D; i++) {
            float d = x[i] - mean;
            v += d * d;
        }
        float rstd = 1.0f / sqrtf(v / D + eps);
        for (int32_t i = 0; i < D; i++)
            y[i] = (x[i] - mean) * rstd * w[i] + b[i];
    }
}

void fv_gelu(float *x, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + fv_erf(x[i] * 0.70710678118654752f));
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
