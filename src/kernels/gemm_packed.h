/* Prepared ("packed") weights of the inference linear layers and the products on them: a weight matrix is put
 * once, at load, into the layout its product prefers (oneDNN's blocked layout for a matmul primitive, in fp32
 * or bf16), and every product on it runs a cached primitive with bias, GELU and the residual add fused.
 * Without oneDNN (or with another backend selected when the weight is packed) the layout is plain (N, K) and
 * the products run the selected fp32 backend, or the plain C bf16 reference. */
#ifndef FV_GEMM_PACKED_H
#define FV_GEMM_PACKED_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/bf16.h"
#include "kernels/gemm_dnnl.h"
#include "kernels/packed_w.h"

/* Pack W (N, K) row-major (the PyTorch linear layout), given as fp32 @w32, for products in @dt. The layout
 * follows the GEMM backend selected now: oneDNN's preferred one under FV_GEMM_DNNL (a copy), else plain
 * (fp32: @w32 is borrowed and must outlive the object; bf16: a rounded copy). Returns 0, FV_ENOMEM or
 * FV_EINVAL (bf16 without a bf16 path). */
int fv_packed_create(FvPackedW **out, const float *w32, int32_t N, int32_t K, FvGemmType dt);
void fv_packed_free(FvPackedW **p);
/* Bytes the object holds (0 for a borrowed plain fp32 weight). */
size_t fv_packed_bytes(const FvPackedW *p);
/* 1 when the weight is in oneDNN's blocked layout (products through cached matmul primitives). */
int fv_packed_is_blocked(const FvPackedW *p);
FvGemmType fv_packed_dtype(const FvPackedW *p);

/* out (M, N) = in (M, K) * W^T + b (b: N floats or NULL), then @flags. @in is fp32 for fp32 weights and bf16
 * for bf16 ones; rows are contiguous (strides K and N). Thread-safe; callable inside an OpenMP region (then
 * single-threaded). Returns 0, or FV_ENOMEM / FV_EINVAL when no primitive could be made. */
int fv_linear_packed(void *out, const void *in, const FvPackedW *w, const float *b, int32_t M, int flags);

/* The plain C reference of fv_linear_packed on plain operands: @w (N, K) fp32 or bf16 per @dt, accumulation in
 * double. What the tests hold the fast paths against. */
void fv_linear_ref(void *out, const void *in, const void *w, FvGemmType dt, const float *b, int32_t M, int32_t N,
                   int32_t K, int flags);



#endif /* FV_GEMM_PACKED_H */
