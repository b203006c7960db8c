/* Attention for the divided space-time block: plans (one per layer and attention), the registry of kinds,
 * and the batched forward and backward that run a kind's kernels over (sequence, head) tasks in parallel.
 * The references and the harness that holds every kind against them live in attn_check.c. */
#ifndef FV_ATTENTION_H
#define FV_ATTENTION_H

#include <stdint.h>

#include "fibvid/attention.h"
#include "kernels/attn_kind.h"

/* The table of kind @k, or NULL for a kind fibvid does not know. */
const FvAttnKindDsp *fv_attn_kind_dsp(FvAttnKind k);
/* Every kind, in FvAttnKind order: *@n receives the count. */
const FvAttnKindDsp *const *fv_attn_kinds(int32_t *n);

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
/* FLOPs of one sequence's attention, every head (multiply-add = 2). */
double fv_attn_plan_flops(const FvAttnPlan *p);

/* Per-thread scratch for the kernels of a plan: @stride floats for each of @nthreads threads. */
typedef struct FvAttnScratch {
    float *buf;
    size_t stride;
    int32_t nthreads;
} FvAttnScratch;

/* Floats of scratch one thread needs for plan @p (forward and backward). */
size_t fv_attn_scratch_floats(const FvAttnPlan *p);

/* qkv (B, N, 3, H, hd)  — the qkv linear's output rows for B independent sequences
 * out (B, N, H, hd)      — heads concatenated, ready for the output projection
 * aux (B, N, H) or NULL  — what the backward needs (softmax kinds: log-sum-exp per query row and head)
 * @st NULL, or statistics to gather (diagnostics; same outputs). @scr NULL: scratch is allocated here.
 * Multi-threaded over (sequence, head). Returns 0 or FV_ENOMEM. */
int fv_attn_forward(const FvAttnPlan *p, const float *qkv, float *out, float *aux, int64_t B,
                    const FvAttnStats *st, const FvAttnScratch *scr);
/* fv_attn_forward with the kind's own tensors @own (FV_ATTN_MAX_TENSORS, or NULL for kinds that own none). */
int fv_attn_forward_own(const FvAttnPlan *p, const float *const *own, const float *qkv, float *out, float *aux,
                        int64_t B, const FvAttnStats *st, const FvAttnScratch *scr);

/* Backward of fv_attn_forward from its saved qkv, out and aux: dout (B, N, H, hd) -> dqkv (B, N, 3, H, hd)
 * (overwritten). Returns 0 or FV_ENOMEM. */
int fv_attn_backward(const FvAttnPlan *p, const float *qkv, const float *out, const float *aux, const float *dout,
                     float *dqkv, int64_t B, const FvAttnScratch *scr);
/* fv_attn_backward with the kind's own tensors @own and their gradients @down (added to; NULL: none). */
int fv_attn_backward_own(const FvAttnPlan *p, const float *const *own, float *const *down, const float *qkv,
                         const float *out, const float *aux, const float *dout, float *dqkv, int64_t B,
                         const FvAttnScratch *scr);

/* The kinds' plain C references over the same batch layout (tests and the harness); @own / @down as for the
 * fast entries (NULL: none). */
void fv_attn_forward_ref(const FvAttnPlan *p, const float *const *own, const float *qkv, float *out, float *aux,
                         int64_t B);
void fv_attn_backward_ref(const FvAttnPlan *p, const float *const *own, float *const *down, const float *qkv,
                          const float *out, const float *aux, const float *dout, float *dqkv, int64_t B);

/* ---- the cls query alone (attn_cls.c) ----
 * 1 when plan @p's query 0 is cls and, in every head, a softmax over every key of the sequence (dense, and
 * Fibottention's spatial plans): its output row is then fv_attn_cls_forward's. */
int fv_attn_cls_exact(const FvAttnPlan *p);
/* out (nseq, H*hd) fp32 = softmax(q_0 K^T / sqrt(hd)) V per head of each of @nseq sequences of @N tokens, from
 * the qkv rows (nseq * N, 3 * H * hd) in fp32, or bf16 when @bf (q | k | v, heads of hd consecutive values).
 * Multi-threaded over (sequence, head); fp32 sums. The _ref: the same in double with libm's exp (tests). */
void fv_attn_cls_forward(float *out, const void *qkv, int bf, int64_t nseq, int32_t N, int32_t H, int32_t hd);
void fv_attn_cls_forward_ref(float *out, const void *qkv, int bf, int64_t nseq, int32_t N, int32_t H, int32_t hd);

/* ---- attention sharing (PSViT, SPEC 4.3; attn_shared.c) ----
 * A softmax attention (a kind with keys: dense, fib) whose post-softmax weights later layers apply to their own
 * v. Weights W per sequence: fv_attn_share_floats() floats (dense: N x N per head; masked kinds: a weight per
 * attended pair, plus under `zero` semantics the weight each row's masked keys share). */
typedef struct FvAttnShare {
    const FvAttnPlan *p;    /* the source's plan (its mask is the one applied) */
    int dense, zero;
    int64_t per_seq;        /* floats of W per sequence */
    int64_t *hoff;          /* (H + 1) head h's first float in a sequence's W */
    int64_t *rowptr;        /* masked kinds: (H, N + 1) into @keys */
    int32_t *keys;
} FvAttnShare;

int fv_attn_share_init(FvAttnShare *s, const FvAttnPlan *p); /* FV_EINVAL for a kind without keys */
void fv_attn_share_free(FvAttnShare *s);
size_t fv_attn_share_floats(const FvAttnShare *s);
size_t fv_attn_share_scratch_floats(const FvAttnShare *s);
/* The source's forward: out (B, N, H, hd) as fv_attn_forward gives it, and its weights W (B, per_seq). */
int fv_attn_share_forward(const FvAttnShare *s, const float *qkv, float *out, float *W, int64_t B);
/* A sharing layer: out (B, N, H, hd) = W v, v rows @ldv apart (heads concatenated). */
int fv_attn_share_apply(const FvAttnShare *s, const float *W, const float *v, int64_t ldv, float *out, int64_t B);
/* Its backward: dv (rows @ldv apart) += W^T dout, dW += the weights' gradient. */
int fv_attn_share_apply_backward(const FvAttnShare *s, const float *W, const float *v, int64_t ldv,
                                 const float *dout, float *dv, float *dW, int64_t B);
/* The source's backward from its own dout and dW (its sharers' gradients, added to here and used up):
 * dqkv (B, N, 3, H, hd) overwritten. */
int fv_attn_share_backward(const FvAttnShare *s, const float *qkv, const float *W, const float *dout, float *dW,
                           float *dqkv, int64_t B);

#endif /* FV_ATTENTION_H */
