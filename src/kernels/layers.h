/* Row-wise and element-wise layers of the Transformer, each forward next to its backward: LayerNorm,
 * exact (erf) GELU, softmax. */
#ifndef FV_LAYERS_H
#define FV_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* out (rows, D), row stride @ldo = LayerNorm(in (rows, D), row stride @ldi) * w + b; in and out may alias.
 * When @mean and @rstd are not NULL, each row's mean and 1/std are saved there for the backward. */
void fv_layernorm_forward(float *out, int64_t ldo, const float *in, int64_t ldi, float *mean, float *rstd,
                          const float *w, const float *b, int64_t rows, int32_t D, float eps);

/* fv_layernorm_forward without the statistics, the output rounded to bf16 (for a bf16 product). */
void fv_layernorm_forward_bf16(uint16_t *out, int64_t ldo, const float *in, int64_t ldi, const float *w,
                               const float *b, int64_t rows, int32_t D, float eps);

/* LayerNorm of gathered rows, for inference: output row r (stride @ldo, fp32 or with @bf16 rounded to bf16) is
 * the LayerNorm of input row @idx[r] (row stride @ldi; @idx NULL: row r) * w + b. */
void fv_layernorm_gather(void *out, int64_t ldo, int bf16, const float *in, int64_t ldi, const int32_t *idx,
                         const float *w, const float *b, int64_t rows, int32_t D, float eps);

/* Backward of fv_layernorm_forward: dx (stride @lddx) receives (@acc 0) or has added (@acc 1) the input
 * gradient for dout (stride @lddo); dw and db (D) accumulate. @scratch: @nthreads slices of @stride >= 2*D
 * floats (per-thread partial sums of dw and db; the loop runs on at most @nthreads threads). */
void fv_layernorm_backward(float *dx, int64_t lddx, int acc, const float *dout, int64_t lddo, const float *in,
                           int64_t ldi, const float *mean, const float *rstd, const float *w, float *dw, float *db,
                           int64_t rows, int32_t D, float *scratch, size_t stride, int32_t nthreads);

/* x = 0.5 x (1 + erf(x / sqrt 2)), in place over n floats. */
void fv_gelu(float *x, int64_t n);
/* dh *= GELU'(pre) (exact erf form: Phi(x) + x phi(x)), over n floats. */
void fv_gelu_backward(float *dh, const float *pre, int64_t n);

/* In-place softmax of one row of n logits. */
void fv_softmax(float *x, int32_t n);

#endif /* FV_LAYERS_H */
