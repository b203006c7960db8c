/* GEMM kernels behind FvGemmDsp: plain C reference and OpenBLAS. */
#include <cblas.h>
#include <string.h>

#include "gemm.h"
#include "internal.h"

static void sgemm_nt_ref(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                         int32_t ldb, float beta, float *C, int32_t ldc)
{
#pragma omp parallel for schedule(static)
    for (int32_t i = 0; i < M; i++) {
        for (int32_t j = 0; j < N; j++) {
            double acc = 0.0; /* double: the reference must not be the error source */
            for (int32_t k = 0; k < K; k++)
                acc += (double)A[(int64_t)i * lda + k] * B[(int64_t)j * ldb + k];
            float *c = &C[(int64_t)i * ldc + j];
            *c = (float)acc + (beta != 0.0f ? beta * *c : 0.0f);
        }
    }
}

static void sgemm_nn_ref(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                         int32_t ldb, float beta, float *C, int32_t ldc)
{
    for (int32_t i = 0; i < M; i++) {
        for (int32_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int32_t k = 0; k < K; k++)
                acc += (double)A[(int64_t)i * lda + k] * B[(int64_t)k * ldb + j];
            float *c = &C[(int64_t)i * ldc + j];
            *c = (float)acc + (beta != 0.0f ? beta * *c : 0.0f);
        }
    }
}

static void sgemm_nn_blas(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void sgemm_nt_blas(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static const FvGemmDsp g_dsp[] = {
    [FV_GEMM_BLAS] = { sgemm_nt_blas, sgemm_nn_blas },
    [FV_GEMM_REF]  = { sgemm_nt_ref, sgemm_nn_ref },
};

static FvGemmBackend g_backend = FV_GEMM_BLAS;

void fv_gemm_set_backend(FvGemmBackend b)
{
    g_backend = b;
}

const FvGemmDsp *fv_gemm_dsp(FvGemmBackend b)
{
    return &g_dsp[b];
}

const FvGemmDsp *fv_gemm(void)
{
    return &g_dsp[g_backend];
}

void fv_linear(float *out, const float *in, const float *w, const float *b, int32_t rows, int32_t n_in,
               int32_t n_out, int accumulate)
{
    /* the bias is put in first so the product can accumulate onto it (beta = 1): one pass over out */
    if (b) {
#pragma omp parallel for schedule(static) if (rows > 64)
        for (int32_t r = 0; r < rows; r++) {
            float *o = out + (int64_t)r * n_out;
            if (accumulate)
                for (int32_t j = 0; j < n_out; j++)
                    o[j] += b[j];
            else
                memcpy(o, b, sizeof(float) * n_out);
        }
    }
    float beta = (b || accumulate) ? 1.0f : 0.0f;
    g_dsp[g_backend].sgemm_nt(rows, n_out, n_in, in, n_in, w, n_in, beta, out, n_out);
}
