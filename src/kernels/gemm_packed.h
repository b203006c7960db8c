/* Prepared ("packed") weights of the inference linear layers and the products on them: a weight matrix is put
 * once, at load, into the layout its product prefers (oneDNN's blocked layout for a matmul primitive, in fp32
 * or bf16), and every product on it runs a cached primitive with bias, GELU and the residual add fused.
 * Without oneDNN (or with another backend selected when the weight is packed) the layout is plain (N, K) and
 * the products run the selected fp32 backend, or the plain C bf16 reference. */
#ifndef FV_GEMM_PACKED_H
#define FV_GEMM_PACKED_H

#include <stddef.h>
#include <stdint.h>

typedef enum FvGemmType {
    FV_GT_F32  = 0,
    FV_GT_BF16 = 1, /* bfloat16: the top 16 bits of an IEEE float, rounded to nearest even */
} FvGemmType;

#ifdef FV_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

/* (the fields are shared by gemm_packed.c and gemm_dnnl.c only) */
typedef struct FvPackedW {
    int32_t N, K;
    FvGemmType dt;
    int blocked;        /* 1: oneDNN layout @md in @owned; 0: plain (N, K) in @plain */
    const void *plain;  /* plain: fp32 (borrowed) or bf16 (== owned) */
    void *owned;        /* freed with the object */
    size_t bytes;       /* of @owned */
#ifdef FV_HAVE_DNNL
    dnnl_memory_desc_t md;
#endif
} FvPackedW;

/* fv_linear_packed flags */
#define FV_LIN_GELU     1 /* out = GELU(in W^T + b) (exact erf form) */
#define FV_LIN_SUM      2 /* out += in W^T + b (fused residual; applied before GELU if both were set) */
#define FV_LIN_OUT_BF16 4 /* out is bf16 (only for bf16 weights); fp32 otherwise */

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

/* bf16 conversions: round to nearest even (NaN stays NaN), and back (exact). */
static inline uint16_t fv_bf16_from_f32(float f)
{
    union { float f; uint32_t u; } v = { f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

static inline float fv_f32_from_bf16(uint16_t h)
{
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}

void fv_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
void fv_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);

/* 1 when bf16 products can run here: built with oneDNN, and oneDNN runs an AVX512-BF16 or AMX kernel on this
 * CPU (dnnl_get_effective_cpu_isa). FIBVID_NO_BF16=1 in the environment says 0 (tests of the usage error). */
int fv_bf16_supported(void);
/* The oneDNN implementation a product of @dt runs ("brg:avx512_core_bf16", ...), or "none". */
const char *fv_packed_impl(FvGemmType dt);

#ifdef FV_HAVE_DNNL
/* gemm_dnnl.c: the oneDNN side of the above */
int fv_dnnl_pack(FvPackedW *p, const float *w32);
int fv_dnnl_linear(void *out, const void *in, const FvPackedW *w, const float *b, int32_t M, int flags);
#endif

#endif /* FV_GEMM_PACKED_H */
