/* The prepared weight object and the product flags, shared by the front end (kernels/gemm_packed.c: creation,
 * dispatch, the plain C paths) and the oneDNN backend (kernels/gemm_dnnl.c); everything else uses the
 * functions of kernels/gemm_packed.h. */
#ifndef FV_PACKED_W_H
#define FV_PACKED_W_H

#include <stddef.h>
#include <stdint.h>

#ifdef FV_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

typedef enum FvGemmType {
    FV_GT_F32  = 0,
    FV_GT_BF16 = 1, /* bfloat16: the top 16 bits of an IEEE float, rounded to nearest even */
} FvGemmType;

typedef struct FvPackedW {
    int32_t N, K;
    FvGemmType dt;
    int blocked;        /* 1: oneDNN layout @md in @owned; 0: plain (N, K) in @plain */
    const void *plain;  /* plain: fp32 (borrowed) or bf16 (== owned) */
    void *owned;        /* freed with the object (util/hugemem.c's pool) */
    size_t bytes;       /* of @owned */
#ifdef FV_HAVE_DNNL
    dnnl_memory_desc_t md;
#endif
} FvPackedW;

/* fv_linear_packed flags */
#define FV_LIN_GELU     1 /* out = GELU(in W^T + b) (exact erf form) */
#define FV_LIN_SUM      2 /* out += in W^T + b (fused residual; applied before GELU if both were set) */
#define FV_LIN_OUT_BF16 4 /* out is bf16 (only for bf16 weights); fp32 otherwise */

#endif /* FV_PACKED_W_H */
