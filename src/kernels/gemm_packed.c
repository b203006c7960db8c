/* Packed weights: creation, the product dispatch (oneDNN primitives for blocked weights, the selected fp32
 * backend or the plain C bf16 kernel for plain ones) and the plain C reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/gemm_packed.h"
#include "kernels/layers.h"
#include "util/util.h"

int fv_packed_create(FvPackedW **out, const float *w32, int32_t N, int32_t K, FvGemmType dt)
{
    *out = NULL;
    if (!w32 || N < 1 || K < 1)
        return fv_error(FV_EINVAL, "fv_packed_create: no weight or empty shape %dx%d", N, K);
    FvPackedW *p = calloc(1, sizeof(*p));
    if (!p)
        return fv_error(FV_ENOMEM, "fv_packed_create: out of memory");
    p->N = N, p->K = K, p->dt = dt;
    int ret = 0;
#ifdef FV_HAVE_DNNL
    if (fv_gemm_backend() == FV_GEMM_DNNL) {
        if ((ret = fv_dnnl_pack(p, w32)) < 0) {
            free(p);
            return ret;
        }
        *out = p;
        return 0;
    }
#endif
    if (dt == FV_GT_F32) {
        p->plain = w32;
    } else {
        p->bytes = sizeof(uint16_t) * (size_t)N * K;
        if (!(p->owned = fv_pool_alloc(p->bytes))) {
            free(p);
            return fv_error(FV_ENOMEM, "fv_packed_create: out of memory for a %dx%d bf16 weight", N, K);
        }
        fv_f32_to_bf16(p->owned, w32, (int64_t)N * K);
        p->plain = p->owned;
    }
    *out = p;
    return ret;
}

void fv_packed_free(FvPackedW **pp)
{
    if (!pp || !*pp)
        return;
    fv_pool_free((*pp)->owned);
    free(*pp);
    *pp = NULL;
}

size_t fv_packed_bytes(const FvPackedW *p)
{
    return p ? p->bytes : 0;
}

int fv_packed_is_blocked(const FvPackedW *p)
{
    return p && p->blocked;
}

FvGemmType fv_packed_dtype(const FvPackedW *p)
{
    return p->dt;
}

static float gelu_exact(double x)
{
    return (float)(0.5 * x * (1.0 + erf(x * 0.70710678118654752440)));
}

void fv_linear_ref(void *out, const void *in, const void *w, FvGemmType dt, const float *b, int32_t M, int32_t N,
                   int32_t K, int flags)
{
#pragma omp parallel for schedule(static)
    for (int32_t i = 0; i < M; i++) {
        for (int32_t j = 0; j < N; j++) {
            double acc = b ? b[j] : 0.0;
            if (dt == FV_GT_F32) {
                const float *a = (const float *)in + (int64_t)i * K, *wr = (const float *)w + (int64_t)j * K;
                for (int32_t k = 0; k < K; k++)
                    acc += (double)a[k] * wr[k];
            } else {
                const uint16_t *a = (const uint16_t *)in + (int64_t)i * K, *wr = (const uint16_t *)w + (int64_t)j * K;
                for (int32_t k = 0; k < K; k++)
                    acc += (double)fv_f32_from_bf16(a[k]) * fv_f32_from_bf16(wr[k]);
            }
            const int64_t o = (int64_t)i * N + j;
            if (flags & FV_LIN_SUM)
                acc += (flags & FV_LIN_OUT_BF16) ? fv_f32_from_bf16(((uint16_t *)out)[o]) : ((float *)out)[o];
            float v = (flags & FV_LIN_GELU) ? gelu_exact(acc) : (float)acc;
            if (flags & FV_LIN_OUT_BF16)
                ((uint16_t *)out)[o] = fv_bf16_from_f32(v);
            else
                ((float *)out)[o] = v;
        }
    }
}

int fv_linear_packed(void *out, const void *in, const FvPackedW *w, const float *b, int32_t M, int flags)
{
    if (M < 1)
        return 0;
    if ((flags & FV_LIN_OUT_BF16) && w->dt != FV_GT_BF16)
        return fv_error(FV_EINVAL, "fv_linear_packed: a bf16 output needs bf16 weights");
#ifdef FV_HAVE_DNNL
    if (w->blocked)
        return fv_dnnl_linear(out, in, w, b, M, flags);
#endif
    if (w->dt == FV_GT_F32) { /* the selected fp32 backend, GELU as a pass of its own */
        fv_linear(out, in, w->plain, b, M, w->K, w->N, !!(flags & FV_LIN_SUM));
        if (flags & FV_LIN_GELU)
            fv_gelu(out, (int64_t)M * w->N);
        return 0;
    }
    fv_linear_ref(out, in, w->plain, FV_GT_BF16, b, M, w->N, w->K, flags);
    return 0;
}
