/* Multi-head attention kernels for the divided space-time block: dense and Fibottention (zero and
 * exclude semantics), each with a plain C reference (dense score matrix, tests only) and a fast path,
 * selected through one plan per (layer, attention). */
#ifndef FV_ATTENTION_H
#define FV_ATTENTION_H

#include <stdint.h>
#include <string.h>

#include "fibvid/model.h"
#include "kernels/attn_kind.h"

/* Build the plan for one attention of layer @layer over sequences of @N tokens (@has_cls: token 0 is cls,
 * so the Fibottention window runs over N-1 patch tokens). Temporal plans (has_cls = 0) always include
 * offset 0 (own frame). Returns 0 or FV_ENOMEM / FV_EINVAL. */
int fv_attn_plan_init(FvAttnPlan *p, const FvAttnSettings *s, int32_t layer, int32_t N, int32_t has_cls,
                      int32_t H, int32_t hd);
void fv_attn_plan_free(FvAttnPlan *p);

/* Fraction of the (N x N) (query, key) pairs head @h may attend (1 for dense). */
double fv_attn_plan_density(const FvAttnPlan *p, int32_t h);
/* Number of attended (query, key) pairs of head @h. */
int64_t fv_attn_plan_pairs(const FvAttnPlan *p, int32_t h);

/* qkv (B, N, 3, H, hd) — the qkv linear's output rows for B independent sequences
 * out (B, N, H, hd)     — heads concatenated, ready for the output projection.
 * Fast path: multi-threaded over (sequence, head), work proportional to the attended pairs.
 * Returns 0 or FV_ENOMEM (per-thread scratch). */
int fv_attn_forward(const FvAttnPlan *p, const float *qkv, float *out, int32_t B);

/* fv_attn_forward that also fills @st (same outputs, same kernels: the statistics are read from the
 * weights the kernels compute). @st NULL is exactly fv_attn_forward. Returns 0 or FV_ENOMEM. */
int fv_attn_forward_stats(const FvAttnPlan *p, const float *qkv, float *out, int32_t B, const FvAttnStats *st);

/* Plain C reference: builds the dense (N x N) score matrix per head and applies the mask (multiply by
 * 0/1 for zero, -inf for exclude) before the softmax. Tests only. */
void fv_attn_forward_ref(const FvAttnPlan *p, const float *qkv, float *out, int32_t B);

#endif /* FV_ATTENTION_H */
