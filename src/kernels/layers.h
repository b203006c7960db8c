/* Element-wise and row-wise layers of the Transformer: LayerNorm, exact GELU, softmax. */
#ifndef FV_LAYERS_H
#define FV_LAYERS_H

#include <stdint.h>

/* out (rows, D) = LayerNorm(in (rows, D)) * w + b; in and out may alias. Input rows are read with
 * stride @ld_in floats, output rows written with stride D. */
void fv_layernorm(float *out, const float *in, int64_t ld_in, const float *w, const float *b, int64_t rows,
                  int32_t D, float eps);

/* x = 0.5 x (1 + erf(x / sqrt 2)), in place over n floats. */
void fv_gelu(float *x, int64_t n);

/* In-place softmax of one row of n logits; returns nothing. */
void fv_softmax(float *x, int32_t n);

#endif /* FV_LAYERS_H */
