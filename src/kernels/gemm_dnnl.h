/* The oneDNN backend of the prepared weights (kernels/gemm_dnnl.c): matmul primitives made once per shape and
 * cached, weights reordered once into the layout they prefer. Called by kernels/gemm_packed.c. */
#ifndef FV_GEMM_DNNL_H
#define FV_GEMM_DNNL_H

#include <stdint.h>

#include "kernels/packed_w.h"

#ifdef FV_HAVE_DNNL
/* Reorder W (N, K) fp32 row-major into @p's layout (p->N, K, dt set; p->owned, md, bytes, blocked filled). */
int fv_dnnl_pack(FvPackedW *p, const float *w32);
/* fv_linear_packed on a blocked weight. */
int fv_dnnl_linear(void *out, const void *in, const FvPackedW *w, const float *b, int32_t M, int flags);
#endif

/* The oneDNN implementation a product of @dt runs ("brg:avx512_core_bf16", ...), or "none". */
const char *fv_packed_impl(FvGemmType dt);

#endif /* FV_GEMM_DNNL_H */
