/* What every attention kind works with: the plan of one attention of one layer (kind, shape, the kind's own
 * data), the statistics block diagnostics fill, and the entry points of the kinds' kernels. Included by the
 * kernels themselves; callers use attention.h. */
#ifndef FV_ATTN_KIND_H
#define FV_ATTN_KIND_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* Diagnostics (SPEC section 6), gathered by the kernels from their own softmax weights when asked for.
 * Task t = b * H + h is sequence b, head h; every kernel writes only its own task's slots, so no locks. */
typedef struct FvAttnStats {
    int32_t Hp, Wp;     /* patch grid of the n = N - has_cls patch tokens (spatial); Wp = 0: the tokens
                           are a line (temporal: frames), distance |j - k| */
    const float *dtab;  /* (2Hp-1, 2Wp-1) Euclidean grid distance of each (dy, dx), or NULL for a line */
    const float *dall;  /* (n) sum of the distances from patch query j to every patch key */
    double *ent;        /* (B*H) sum over the sequence's queries (cls included) of the softmax entropy (nats) */
    double *ent_norm;   /* (B*H) sum of entropy / log(keys with non-zero weight) (0 for a single key) */
    double *dist;       /* (B*H) sum over patch queries of the mean distance to the patch keys, weights
                           renormalised over the patch keys (cls key left out) */
    float *cls;         /* (B*H, n) the cls query's weights over the patch keys; NULL: not gathered */
} FvAttnStats;

/* ln(x) for x > 0 normal, branch-free so the statistics loops vectorise: reduction to m in [sqrt(1/2),
 * sqrt(2)) and the atanh series 2(t + t^3/3 + ... + t^9/9), t = (m-1)/(m+1), |t| < 0.172: error < 1e-9
 * before float rounding. */
static inline float fv_attn_logf(float x)
{
    int32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    int32_t e = ((bits >> 23) & 0xff) - 127;
    bits = (bits & 0x7fffff) | 0x3f800000;
    float m;
    memcpy(&m, &bits, sizeof(m));
    const int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e += big;
    const float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
    float y = 1.0f / 9.0f;
    y = y * t2 + 1.0f / 7.0f;
    y = y * t2 + 1.0f / 5.0f;
    y = y * t2 + 1.0f / 3.0f;
    y = y * t2 + 1.0f;
    return (float)e * 0.693147181f + 2.0f * t * y;
}

/* -p ln p, 0 for p = 0 (and for weights below float's normal range, which add < 1e-36). */
static inline float fv_attn_plogp(float p)
{
    return p > 1e-37f ? -p * fv_attn_logf(p) : 0.0f;
}

/* fibottention.c hooks used by the plan: fill p->noff/off/raw_* for a FIB plan. */
int fv_fib_plan_build(FvAttnPlan *p);
/* attn_fib.c: sparse kernels for one (sequence, head). q/k/v rows have stride @ld floats. */
void fv_attn_fib_head(const FvAttnPlan *p, int32_t h, const float *q, const float *k, const float *v,
                      int32_t ld, float *out, int32_t ldo, float *scratch);
/* fv_attn_fib_head that also adds task @task's statistics to @st (see FvAttnStats). */
void fv_attn_fib_head_stats(const FvAttnPlan *p, int32_t h, const float *q, const float *k, const float *v,
                            int32_t ld, float *out, int32_t ldo, float *scratch, const FvAttnStats *st,
                            int64_t task);
/* Scratch floats fv_attn_fib_head needs per thread. */
size_t fv_attn_fib_scratch(const FvAttnPlan *p);

#endif /* FV_ATTN_KIND_H */
