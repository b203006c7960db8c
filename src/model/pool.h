/* PSViT token pooling (fibvid's reconstruction, SPEC 4.3) on the residual stream in model token order
 * [cls, n0t0, n0t1, ..., n0t(T-1), n1t0, ...] (patch-major, time fastest): each frame's gh x gw patch grid
 * becomes ceil(gh/2) x ceil(gw/2) by 2x2 windows of stride 2 (avg, max) or a depthwise 3x3 convolution of
 * stride 2 and padding 1 (conv); the cls token is copied. Forward and backward over B clips. */
#ifndef FV_MODEL_POOL_H
#define FV_MODEL_POOL_H

#include <stdint.h>

#include "fibvid/model.h"

/* x (B, 1 + gh*gw*T, D) -> y (B, 1 + ceil(gh/2)*ceil(gw/2)*T, D). @w (D, 1, 3, 3) and @b (D): conv only.
 * Returns 0 or FV_ENOMEM. */
int fv_token_pool_forward(FvPoolKind kind, const float *x, float *y, int32_t B, int32_t T, int32_t gh, int32_t gw,
                          int32_t D, const float *w, const float *b);

/* dx (B, 1 + gh*gw*T, D) = the gradient of x (written, not added) from dy (pooled rows); conv adds its weights'
 * gradients to @dw, @db (may be NULL). @x is the forward's input (max: the winning cell; conv: dw). */
int fv_token_pool_backward(FvPoolKind kind, const float *x, const float *dy, float *dx, int32_t B, int32_t T,
                           int32_t gh, int32_t gw, int32_t D, const float *w, float *dw, float *db);

#endif /* FV_MODEL_POOL_H */
