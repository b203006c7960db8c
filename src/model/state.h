/* The run state shared by the forward pass (forward.c) and its inference block on prepared weights
 * (forward_packed.c). */
#ifndef FV_STATE_H
#define FV_STATE_H

#include "kernels/attention.h"
#include "model/diag_internal.h"
#include "model/model_internal.h"

/* Activations of one layer for B clips; rows: Rt = B*P*T (temporal, no cls), Rs = B*T*(1+P) (spatial
 * sequences), Rx = B*(1+P*T) (the residual stream, model token order per clip), P the layer's patches per frame
 * (fewer after a token pooling). In an inference state every layer points at the same buffers (sized for the
 * first layer, the largest), xin = y = the residual stream, and the statistics are NULL. */
typedef struct LayerActs {
    float *xin;              // xin (Rx, D): the block's input
    float *t_mean, *t_rstd;  // (Rt) LayerNorm statistics, or NULL
    float *t_ln;             // t_ln (Rt, D)
    float *t_qkv;            // t_qkv (Rt, 3D)
    float *t_aux;            // t_aux (Rt, H): what the attention's backward needs, or NULL
    float *t_att;            // t_att (Rt, D): heads concatenated, before the output projection
    float *t_prj;            // t_prj (Rt, D): after temporal_attention.output.dense
    float *s_seq;            // s_seq (Rs, D): [c, Xt[:, t]] per (clip, frame)
    float *s_mean, *s_rstd;  // (Rs) or NULL
    float *s_ln;             // s_ln (Rs, D)
    float *s_qkv;            // s_qkv (Rs, 3D)
    float *s_aux;            // s_aux (Rs, H) or NULL
    float *s_att;            // s_att (Rs, D)
    float *y;                // y (Rx, D): [c'; X'], the MLP's input
    float *m_mean, *m_rstd;  // (Rx) or NULL
    float *m_ln;             // m_ln (Rx, D)
    float *h_pre;            // h_pre (Rx, I): intermediate.dense output (GELU'd in place when not training)
    float *pool_in;          // pool_in (Rx, D): the block's output before the token pooling after it (training), or NULL
    /* attention sharing (training): a chain root's weights and their gradient, per attention ([0] spatial) */
    float *shW[2], *shdW[2];
} LayerActs;

struct FvState {
    const FvModel *m;
    int train;                 /* 1: keep what the backward needs (fixed shape and batch) */
    /* what the arena and plans are built for */
    int32_t Bmax, T, Hp, Wp, P, L;  /* P = Hp * Wp: the input grid's patches per frame */
    int32_t *lP, *lgh, *lgw;        /* (num_layers) each layer's patches per frame and grid (token pooling) */
    uint64_t attn_gen;
    float aux_weight;          /* Castling's auxiliary branch weight this step (training states) */
    int32_t nthreads;          /* threads the scratch is sized for */
    FvAttnPlan *splan, *tplan; /* (num_layers) */
    FvAttnShare *share[2];     /* (num_layers) [0] spatial, [1] temporal: set at the roots of sharing chains */
    float *shW[2];             /* inference: the current chain's weights, per attention */
    int32_t *pos_idx;          /* (1 + P): source row of position_embeddings (nearest-neighbour resize) */
    int32_t *time_idx;         /* (T): source row of time_embeddings */
    FvAttnScratch ascr;        /* attention kernels, per thread */

    float *arena;
    LayerActs *la;             /* (num_layers) */
    float *patches;            // patches (Rt, C*p*p): im2col of the clips
    float *patch16;            // patch16 (Rt, C*p*p) bf16: the same for bf16 products (inference states)
    float *tmp;                // tmp (max(Rt, Rs), D): products added into the residual stream
    float *hbuf;               // hbuf (Rx, I): GELU output (training; the inference state GELUs h_pre in place)
    float *xout;               // xout (Rx, D): the last block's output
    float *f_mean, *f_rstd;    // (B) or NULL
    float *f_ln;               // f_ln (B, D): final LayerNorm of cls
    float *logits;             // logits (B, L)
    /* backward (training) */
    float *g;                  // g (Rx, D): gradient of the residual stream
    float *bufa, *bufb;        // (max(Rs, Rx), D) work
    float *dqkv;               // dqkv (Rs, 3D)
    float *dhbuf;              // dhbuf (Rx, I)
    float *lnscr;              // (nthreads, lnstride) LayerNorm backward partial sums
    size_t lnstride;
    int32_t last_B;            /* clips of the last forward */
    float *grad;               /* during fv_state_backward: the gradient block, laid out as */
    const float *param;        /* the weight block */

    FvActivationHook hook;
    void *hook_user;
    FvDiag *diag;
};

/* attend.c, shared by the training block (forward.c) and the packed inference block (forward_packed.c):
 * y (B*(1 + P*T), D) += the spatial attention's output @s (B*T*(1 + P), D), cls the mean over its T frames; one
 * attention of layer @l (the kind's kernels, a sharing chain or the diagnostics collector); whether attention @a
 * (0 spatial) of layer @l applies an earlier layer's weights (a sharer), starts a chain (its root), and the root
 * a sharer applies. */
void fv_forward_add_spatial(float *y, const float *s, int64_t B, int64_t T, int64_t P, int64_t D);
int fv_forward_attention(FvState *st, int32_t l, FvDiagAttnKind kind, const FvAttnPlan *p, const float *qkv,
                         float *out, float *aux, int64_t nseq);
int fv_forward_sharer(const FvModelConfig *c, int a, int32_t l);
int fv_forward_chain_root(const FvModelConfig *c, int a, int32_t l);
int32_t fv_forward_root_of(const FvModelConfig *c, int a, int32_t l);

/* forward_packed.c: 1 when a forward of @st runs on the model's prepared weights (an inference state, prepared
 * weights, and bf16 or the oneDNN backend selected). */
int fv_forward_uses_packed(const FvState *st);
/* The patch embedding st->tmp (Rt, D) = patches W^T + b, and one block on B clips (xin -> xout), on them. */
int fv_patch_embed_packed(FvState *st, int64_t rows);
int fv_block_forward_packed(FvState *st, int32_t l, int32_t B, float *xout);
/* 1 when block @l of a packed forward of @st need only make the cls rows of its output: the last block, no hook
 * (which would see every token) and no token pooling after it. Diagnostics see the attention, which runs whole.
 * fv_forward_cls_query: moreover the spatial attention runs for the cls queries alone (fv_attn_cls_forward on
 * bf16 qkv): bf16, no diagnostics, no sharing in the block, and a kind whose cls row fv_attn_cls_exact says. */
int fv_forward_cls_only(const FvState *st, int32_t l);
int fv_forward_cls_query(const FvState *st, int32_t l);

#endif /* FV_STATE_H */
