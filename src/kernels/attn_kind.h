/* The attention-kind interface: what every kind of attention (dense softmax, Fibottention, ...) provides to
 * the one forward and backward of the model, as one table of entry points per kind (dav1d's *_dsp habit),
 * each with a plain C reference the harness (attn_check.c) holds it against.
 *
 * A kind replaces `softmax(q k^T / sqrt(hd)) v` of one head of one sequence (SPEC sections 1, 3, 4); the
 * qkv projection, the concatenation of heads and the output projection stay outside. Every entry works on
 * one (sequence, head) task (FvAttnHead): the dispatcher (attention.c) runs the tasks of a batch of
 * sequences in parallel, each thread with its own scratch. Kinds fit this as follows:
 *  - softmax kinds (dense, fib) save the log-sum-exp of every query row in `aux` and recompute the weights
 *    in the backward (flash-attention style);
 *  - linear kinds with no score matrix (SimA, Castling-ViT, SPEC 4.1/4.2) compute k^T v per task in their
 *    scratch, keep what their normalisations need in `aux`, and own tensors (Castling's depthwise taps) that
 *    the model lists through `tensors`;
 *  - attention sharing (PSViT, SPEC 4.3) applies another layer's post-softmax weights to its own v: a
 *    softmax kind can write the weights it computes (dense: (N, N) rows; fib: the attended keys only, never
 *    densified) where FvAttnHead points, and a sharing kind reads them there instead of q and k.
 * Adding a kind: one file with its kernels and table, plus its entry in attention.c's registry. */
#ifndef FV_ATTN_KIND_H
#define FV_ATTN_KIND_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fibvid/attention.h"

typedef struct FvAttnKindDsp FvAttnKindDsp;

/* Most tensors one attention kind owns in one attention of one layer. */
#define FV_ATTN_MAX_TENSORS 2

/* Room for every kind in per-kind tables (a model keeps each kind's own tensors apart); attention.c checks
 * the registry fits. */
#define FV_ATTN_KIND_SLOTS 8

/* A tensor a kind owns (Castling-ViT's depthwise taps): its name after the attention's prefix
 * ("...layer.<i>.attention.attention." or "...temporal_attention.attention.") and its shape. */
typedef struct FvAttnTensor {
    char    suffix[48];
    int32_t ndim;
    int64_t shape[4];
} FvAttnTensor;

/* One attention (spatial or temporal) of one layer over sequences of one length. */
typedef struct FvAttnPlan {
    FvAttnSettings s;    /* kind, variant, semantics, wmin/wmax (resolved: never <= 0 for FIB) */
    const FvAttnKindDsp *dsp; /* the kind's table */
    int32_t layer;       /* depth id (drives the head shuffle) */
    int32_t N;           /* tokens per sequence, including cls when has_cls */
    int32_t has_cls;     /* 1: token 0 is cls, whose row and column are always attended (spatial) */
    int32_t H, hd;       /* heads, head dim */
    /* Castling-ViT's auxiliary masked-softmax branch (training only, SPEC 4.2): @aux 1 when it may run (the
     * plan of a training state: its scratch holds an N x N matrix), @aux_weight its lambda of this step */
    int32_t aux;
    float aux_weight;
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

/* One (sequence, head) task. Rows of q, k, v are @ld floats apart (the qkv linear's output rows), rows of
 * out / dout @ldo apart (heads concatenated), the saved values @ldaux apart. */
typedef struct FvAttnHead {
    int32_t h;                 /* head index in the plan */
    const float *q, *k, *v;    /* (N, hd) each */
    int64_t ld;
    float *out;                /* (N, hd) forward output */
    int64_t ldo;
    float *aux;                /* (N) per query, what the backward needs (softmax: log-sum-exp); NULL when
                                * the forward is not followed by a backward */
    int64_t ldaux;
    const float *const *own;   /* the kind's own tensors in this attention (FV_ATTN_MAX_TENSORS), or NULL */
    /* backward only */
    float *const *down;        /* gradients of the own tensors (added to), or NULL */
    const float *dout;         /* (N, hd), stride ldo */
    float *dq, *dk, *dv;       /* (N, hd), stride ld: zero on entry, the backward adds the gradients */
} FvAttnHead;

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

/* The keys query @j of head @h attends, each once, in sequence coordinates (cls = 0 when has_cls); returns
 * their count (at most N). */
typedef int32_t (*FvAttnKeysFn)(const FvAttnPlan *p, int32_t h, int32_t j, int32_t *keys);

/* The table of one kind. Every pointer is set (kinds without data of their own use the shared helpers), but
 * @keys, which only softmax kinds have. */
struct FvAttnKindDsp {
    FvAttnKind kind;
    const char *name;                                    /* as in configs and on the command line */
    int32_t masked;                                      /* 1: a mask with zero / exclude semantics (harness) */
    int32_t entropy;                                     /* 1: the weights are a probability distribution whose
                                                          * entropy diagnostics report; 0: entropy is null */
    int32_t aux;                                         /* 1: an auxiliary training branch weighted by the
                                                          * plan's aux_weight (Castling-ViT) */
    /* plan: resolve the kind's settings and build its data for p->N, p->has_cls, p->H (plan_init has
     * filled the shape); free what plan_build allocated */
    int (*plan_build)(FvAttnPlan *p);
    void (*plan_free)(FvAttnPlan *p);
    /* attended (query, key) pairs of head h (density), and the FLOPs (multiply-add = 2) of one sequence's
     * forward, every head */
    int64_t (*pairs)(const FvAttnPlan *p, int32_t h);
    double (*flops)(const FvAttnPlan *p);
    /* the tensors the kind owns in an attention of @H heads of @hd with settings @s: fills @t, returns the
     * count (0..FV_ATTN_MAX_TENSORS); the model lists, loads and saves them with the layer's weights */
    int32_t (*tensors)(const FvAttnSettings *s, int32_t H, int32_t hd, FvAttnTensor *t);
    /* 1 when query i may attend key j in head h (sequence coordinates): the references and diagnostics */
    int (*allows)(const FvAttnPlan *p, int32_t h, int32_t i, int32_t j);
    /* Jaccard index of the sets of (query, key) pairs of heads a and b */
    double (*jaccard)(const FvAttnPlan *p, int32_t a, int32_t b);
    /* floats of per-thread scratch the forward and backward of one task need */
    size_t (*scratch)(const FvAttnPlan *p);
    /* fast kernels of one task; forward_stats adds task @task's statistics to @st (same outputs) */
    void (*forward)(const FvAttnPlan *p, const FvAttnHead *t, float *scratch);
    void (*forward_stats)(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, const FvAttnStats *st,
                          int64_t task);
    void (*backward)(const FvAttnPlan *p, const FvAttnHead *t, float *scratch);
    /* plain C references of one task (double accumulation; the dense N x N formulation), and the weights
     * query i puts on every key (normalised; what diagnostics describe), returning the row's log-sum-exp */
    void (*forward_ref)(const FvAttnPlan *p, const FvAttnHead *t);
    void (*backward_ref)(const FvAttnPlan *p, const FvAttnHead *t);
    double (*weights_ref)(const FvAttnPlan *p, const FvAttnHead *t, int32_t i, double *w);
    /* softmax kinds: the keys each query attends; their post-softmax weights are what a later layer may share
     * (PSViT, SPEC 4.3; attn_shared.c). NULL for kinds without attention weights (SimA, Castling) */
    FvAttnKeysFn keys;
};

extern const FvAttnKindDsp fv_attn_dense_dsp; /* attn_dense.c */
/* Dense heads of sequences this long or longer take the GEMM backward, shorter ones the per-pair loops
 * (default 64). Process-wide; tests set it to compare both paths. */
extern int32_t fv_attn_dense_gemm_min;
extern const FvAttnKindDsp fv_attn_fib_dsp;   /* attn_fib.c */
extern const FvAttnKindDsp fv_attn_sima_dsp;  /* attn_sima.c */
extern const FvAttnKindDsp fv_attn_castling_dsp; /* attn_castling.c */

/* ---- shared by the softmax kinds (attn_softmax.c) ------------------------------------------------- */

/* Masked softmax attention of one task in double, from the plan's `allows`: the reference forward (aux:
 * log-sum-exp) and backward of dense attention and of Fibottention under both semantics (zero: a masked
 * score is 0 and stays in the softmax; exclude: it leaves it). */
void fv_attn_softmax_forward_ref(const FvAttnPlan *p, const FvAttnHead *t);
void fv_attn_softmax_backward_ref(const FvAttnPlan *p, const FvAttnHead *t);
/* The reference weights of query @i in double into @w (N), normalised; returns the row's log-sum-exp. */
double fv_attn_softmax_ref_weights(const FvAttnPlan *p, const FvAttnHead *t, int32_t i, double *w);

/* The backward of one softmax task by (query, key) pairs from the saved log-sum-exp: every query visits the
 * keys @keys_of lists (each once) at O(keys * hd); masked keys under `zero` semantics (@zero = 1) share one
 * weight e^(0 - lse) and are handled through sums over all rows. Scratch: N ints + N floats + hd floats. */
void fv_attn_softmax_backward_pairs(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, FvAttnKeysFn keys_of,
                                    int zero);
size_t fv_attn_softmax_pairs_scratch(const FvAttnPlan *p);
/* q.k and p.v per attended pair: 4 hd FLOPs, summed over heads. */
double fv_attn_softmax_flops(const FvAttnPlan *p);
/* Softmax kinds own no tensors. */
int32_t fv_attn_softmax_tensors(const FvAttnSettings *s, int32_t H, int32_t hd, FvAttnTensor *t);

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

/* ---- shared by the linear kinds (attn_linear.c) ---------------------------------------------------- */

/* q^ (k^^T v) of one head without an N x N matrix when N >= hd (the linear order: M = k^^T v is hd x hd), and
 * through A = q^ k^^T when N < hd (cheaper there): @qh, @kh (N, hd) contiguous, @v rows @ldv apart, into
 * @out (N, hd) rows @ldo apart (overwritten). Scratch: fv_attn_linear_scratch(N, hd) floats. */
void fv_attn_linear_product(int32_t N, int32_t hd, const float *qh, const float *kh, const float *v, int64_t ldv,
                            float *out, int64_t ldo, float *scratch);
/* Its backward for the output gradient @g (N, hd), rows @ldg apart: @dqh, @dkh (N, hd) contiguous
 * (overwritten) and @dv (rows @ldv apart: added to). Same scratch, twice the size. */
void fv_attn_linear_product_backward(int32_t N, int32_t hd, const float *qh, const float *kh, const float *v,
                                     int64_t ldv, const float *g, int64_t ldg, float *dqh, float *dkh, float *dv,
                                     float *scratch);
size_t fv_attn_linear_scratch(int32_t N, int32_t hd);
/* 4 N hd min(N, hd): the product's multiply-adds x 2. */
double fv_attn_linear_product_flops(int32_t N, int32_t hd);

/* Diagnostics of a linear kind from the (non-negative) weight rows @row(p, t, i, w) writes (N floats, any
 * scale: normalised here over every key): mean distance of the patch queries and the cls query's map;
 * entropy is null (NaN): these weights are no probability distribution. */
typedef void (*FvAttnRowFn)(const FvAttnPlan *p, const float *qh, const float *kh, int32_t i, float *w);
void fv_attn_linear_stats(const FvAttnPlan *p, const float *qh, const float *kh, FvAttnRowFn row, float *w,
                          const FvAttnStats *st, int64_t task);

/* The linear kinds weigh every (query, key) pair (N^2 a head, Jaccard 1) and need no plan data. */
int64_t fv_attn_linear_pairs(const FvAttnPlan *p, int32_t h);
double fv_attn_linear_jaccard(const FvAttnPlan *p, int32_t a, int32_t b);
int fv_attn_linear_allows(const FvAttnPlan *p, int32_t h, int32_t i, int32_t j);
int fv_attn_linear_plan_build(FvAttnPlan *p);
void fv_attn_linear_plan_free(FvAttnPlan *p);

#define FV_ALIGN16(x) (((size_t)(x) + 15) & ~(size_t)15)

#endif /* FV_ATTN_KIND_H */
