/* The one matrix-product interface every layer goes through: a table of kernels (dav1d *_dsp style) with a
 * plain C reference, OpenBLAS and oneDNN; the linear layer and its backward. A bf16 backend slots in here. */
#ifndef FV_GEMM_H
#define FV_GEMM_H

#include <stdint.h>

typedef enum FvGemmBackend {
    FV_GEMM_BLAS = 0, /* OpenBLAS cblas_sgemm */
    FV_GEMM_REF  = 1, /* plain C loops: the reference the fast backends are tested against */
    FV_GEMM_DNNL = 2, /* oneDNN dnnl_sgemm (default when built with it: 5-40 % faster than OpenBLAS on
                       * this model's shapes, measured on the 2-core Sapphire Rapids machine) */
} FvGemmBackend;

#ifdef FV_HAVE_DNNL
#define FV_GEMM_DEFAULT FV_GEMM_DNNL
#else
#define FV_GEMM_DEFAULT FV_GEMM_BLAS
#endif

typedef struct FvGemmDsp {
    /* C (M, N) = A (M, K) * B^T, with B stored (N, K) row-major (PyTorch linear weight layout);
     * beta 0 overwrites C, beta 1 accumulates into it. Leading dimensions in floats. */
    void (*sgemm_nt)(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                     int32_t ldb, float beta, float *C, int32_t ldc);
    /* C (M, N) = A (M, K) * B, with B stored (K, N) row-major. */
    void (*sgemm_nn)(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                     int32_t ldb, float beta, float *C, int32_t ldc);
    /* C (M, N) = A^T * B, with A stored (K, M) and B stored (K, N) row-major: weight gradients
     * dW (out, in) = dY^T X summed over rows (the backward, model/forward.c). */
    void (*sgemm_tn)(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                     int32_t ldb, float beta, float *C, int32_t ldc);
} FvGemmDsp;

/* 1 when backend @b was built in. */
int fv_gemm_available(FvGemmBackend b);
/* The backend in use, and a name for reports ("onednn", "openblas", "reference"). */
FvGemmBackend fv_gemm_backend(void);
const char *fv_gemm_backend_name(FvGemmBackend b);
/* Select the backend used by fv_linear and the attention kernels (process-wide; default FV_GEMM_DEFAULT;
 * an unavailable backend is ignored).
 * Products called from inside an OpenMP parallel region run on the calling thread (the OpenMP build of
 * OpenBLAS does not nest), which is how the attention kernels use them: one (sequence, head) per thread. */
void fv_gemm_set_backend(FvGemmBackend b);
const FvGemmDsp *fv_gemm_dsp(FvGemmBackend b);
/* The selected backend's table. */
const FvGemmDsp *fv_gemm(void);

/* out (rows, n_out) = in (rows, n_in) * w^T (w: (n_out, n_in)) + b (n_out, may be NULL).
 * accumulate = 1 adds the result to what out already holds (fused residual). */
void fv_linear(float *out, const float *in, const float *w, const float *b, int32_t rows, int32_t n_in,
               int32_t n_out, int accumulate);

/* Backward of out = in w^T + b: dx (rows, n_in) = dy w (added when @acc), dw (n_out, n_in) += dy^T x,
 * db (n_out) += column sums of dy. @dx and @db may be NULL (not needed). */
void fv_linear_backward(float *dx, int acc, const float *dy, const float *x, const float *w, float *dw, float *db,
                        int64_t rows, int32_t n_in, int32_t n_out);

#endif /* FV_GEMM_H */
