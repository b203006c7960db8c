/* Multi-head attention kernels for the divided space-time block: dense and Fibottention (zero and
 * exclude semantics), each with a plain C reference (dense score matrix, tests only) and a fast path,
 * selected through one plan per (layer, attention). */
#ifndef FV_ATTENTION_H
#define FV_ATTENTION_H

#include <stdint.h>

#include "fibvid/model.h"

typedef struct FvAttnPlan {
    FvAttnSettings s;    /* kind, variant, semantics, wmin/wmax (resolved: never <= 0 for FIB) */
    int32_t layer;       /* depth id (drives the head shuffle) */
    int32_t N;           /* tokens per sequence, including cls when has_cls */
    int32_t has_cls;     /* 1: token 0 is cls, whose row and column are always attended (spatial) */
    int32_t H, hd;       /* heads, head dim */
    /* Fibottention only: head h attends |j - k| in off[h*max_off .. + noff[h]) over non-cls tokens:
     * the head's offset set, sorted ascending, duplicates removed (the set the reference mask encodes). */
    int32_t *noff;       /* (H) */
    int32_t *off;        /* (H, max_off) */
    int32_t max_off;
    /* the offsets per head slot exactly as the reference returns them (may repeat), for reports */
    int32_t *raw_noff;   /* (H) */
    int32_t *raw_off;    /* (H, raw_max) */
    int32_t raw_max;
} FvAttnPlan;

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

/* Plain C reference: builds the dense (N x N) score matrix per head and applies the mask (multiply by
 * 0/1 for zero, -inf for exclude) before the softmax. Tests only. */
void fv_attn_forward_ref(const FvAttnPlan *p, const float *qkv, float *out, int32_t B);

/* fibottention.c hooks used by the plan: fill p->noff/off/raw_* for a FIB plan. */
int fv_fib_plan_build(FvAttnPlan *p);
/* attn_fib.c: sparse kernels for one (sequence, head). q/k/v rows have stride @ld floats. */
void fv_attn_fib_head(const FvAttnPlan *p, int32_t h, const float *q, const float *k, const float *v,
                      int32_t ld, float *out, int32_t ldo, float *scratch);
/* Scratch floats fv_attn_fib_head needs per thread. */
size_t fv_attn_fib_scratch(const FvAttnPlan *p);

#endif /* FV_ATTENTION_H */
