/* The TimeSformer forward pass (divided space-time attention, SPEC section 1) over a batch of clips and its
 * backward, on a run state: the state owns the activation arena, the attention plans, the hook and the
 * diagnostics collector, so one read-only model serves any number of states (whisper.cpp's context / state).
 * There is one forward: inference and training run the same kernels; a training state only keeps every
 * layer's activations (and the attention's log-sum-exp) for the backward, where an inference state lets the
 * layers share one set of buffers and runs the residual updates in place. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/layers.h"
#include "model/diag_internal.h"
#include "model/forward.h"
#include "model/model_internal.h"
#include "model/pool.h"
#include "util/util.h"

#include "model/state.h"

/* ---------------------------------------------------------------------------------------------------- */
/* lifetime                                                                                              */

static void free_plans(FvState *st)
{
    const int32_t L = st->m->cfg.num_layers;
    for (int32_t l = 0; st->splan && l < L; l++)
        fv_attn_plan_free(&st->splan[l]);
    for (int32_t l = 0; st->tplan && l < L; l++)
        fv_attn_plan_free(&st->tplan[l]);
    for (int a = 0; a < 2; a++) {
        for (int32_t l = 0; st->share[a] && l < L; l++)
            fv_attn_share_free(&st->share[a][l]);
        free(st->share[a]);
        st->share[a] = NULL;
    }
    free(st->splan);
    free(st->tplan);
    st->splan = st->tplan = NULL;
    fv_free(st->ascr.buf);
    memset(&st->ascr, 0, sizeof(st->ascr));
}

static void free_arena(FvState *st)
{
    fv_free(st->arena);
    st->arena = NULL;
    free(st->pos_idx);
    free(st->time_idx);
    st->pos_idx = st->time_idx = NULL;
    free(st->lP);
    st->lP = st->lgh = st->lgw = NULL;
    st->Bmax = st->T = st->Hp = st->Wp = st->P = 0;
}

void fv_state_close(FvState **pst)
{
    if (!pst || !*pst)
        return;
    FvState *st = *pst;
    free_plans(st);
    free_arena(st);
    free(st->la);
    free(st);
    *pst = NULL;
}

static int state_new(FvState **out, const FvModel *m, int train)
{
    if (!out || !m)
        return fv_error(FV_EINVAL, "fv_state_create: NULL argument");
    *out = NULL;
    FvState *st = calloc(1, sizeof(*st));
    if (!st || !(st->la = calloc((size_t)m->cfg.num_layers, sizeof(LayerActs)))) {
        free(st);
        return fv_error(FV_ENOMEM, "fv_state_create: out of memory");
    }
    st->m = m;
    st->train = train;
    *out = st;
    return 0;
}

int fv_state_create(FvState **out, const FvModel *m)
{
    return state_new(out, m, 0);
}

const FvModel *fv_state_model(const FvState *st)
{
    return st->m;
}

void fv_state_set_hook(FvState *st, FvActivationHook hook, void *user)
{
    st->hook = hook;
    st->hook_user = user;
}

int fv_state_set_diag(FvState *st, FvDiag *d)
{
    if (!st)
        return fv_error(FV_EINVAL, "fv_state_set_diag: NULL state");
    st->diag = d;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* arena and plans                                                                                        */

/* torch.nn.functional.interpolate(mode='nearest') source index: floor(dst * (in / out)) in float. */
static int32_t nearest_src(int32_t dst, int32_t in, int32_t out)
{
    const float scale = (float)in / (float)out;
    const int32_t s = (int32_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

/* Floats of a root's weights for @B clips: at most H N (N + 1) per sequence whatever the kind (so the arena
 * does not depend on the attention kinds). */
static int64_t share_floats(const FvState *st, int a, int32_t l, int64_t B)
{
    const FvModelConfig *c = &st->m->cfg;
    const int64_t P = st->lP[l], N = a ? st->T : 1 + P, seqs = a ? B * P : B * st->T;
    return seqs * c->num_heads * N * (N + 1);
}

/* Carve the arena for @B clips: with @base NULL only count. Every buffer 16-float aligned. */
static size_t carve(FvState *st, float *base, int32_t B)
{
    const FvModelConfig *c = &st->m->cfg;
    /* the first layer's sizes are the largest: token pooling only removes tokens */
    const int64_t T = st->T, P = st->P, D = c->hidden_size, I = c->intermediate_size, H = c->num_heads, S = 1 + P;
    const int64_t Rt = B * P * T, Rs = B * T * S, Rx = B * (1 + P * T), Rts = FV_MAX(Rt, Rs);
    const int64_t Cpp = (int64_t)c->num_channels * c->patch_size * c->patch_size;
    size_t off = 0;
#define TAKE(ptr, n)                                     \
    do {                                                 \
        if (base)                                        \
            (ptr) = base + off;                          \
        off += FV_ALIGN16((size_t)(n));                  \
    } while (0)
    if (st->train) {
        for (int32_t l = 0; l < c->num_layers; l++) {
            LayerActs *a = &st->la[l];
            const int64_t Pl = st->lP[l], Rt = B * Pl * T, Rs = B * T * (1 + Pl), Rx = B * (1 + Pl * T);
            a->pool_in = NULL;
            if (fv_config_pool_after(c, l) >= 0)
                TAKE(a->pool_in, Rx * D);
            TAKE(a->xin, Rx * D);
            TAKE(a->t_mean, Rt);
            TAKE(a->t_rstd, Rt);
            TAKE(a->t_ln, Rt * D);
            TAKE(a->t_qkv, Rt * 3 * D);
            TAKE(a->t_aux, Rt * H);
            TAKE(a->t_att, Rt * D);
            TAKE(a->t_prj, Rt * D);
            TAKE(a->s_seq, Rs * D);
            TAKE(a->s_mean, Rs);
            TAKE(a->s_rstd, Rs);
            TAKE(a->s_ln, Rs * D);
            TAKE(a->s_qkv, Rs * 3 * D);
            TAKE(a->s_aux, Rs * H);
            TAKE(a->s_att, Rs * D);
            for (int k = 0; k < 2; k++) {
                a->shW[k] = a->shdW[k] = NULL;
                if (fv_forward_chain_root(c, k, l)) {
                    TAKE(a->shW[k], share_floats(st, k, l, B));
                    TAKE(a->shdW[k], share_floats(st, k, l, B));
                }
            }
            TAKE(a->y, Rx * D);
            TAKE(a->m_mean, Rx);
            TAKE(a->m_rstd, Rx);
            TAKE(a->m_ln, Rx * D);
            TAKE(a->h_pre, Rx * I);
        }
        TAKE(st->xout, Rx * D);
        TAKE(st->hbuf, Rx * I);
        TAKE(st->f_mean, B);
        TAKE(st->f_rstd, B);
        TAKE(st->g, Rx * D);
        TAKE(st->bufa, FV_MAX(Rs, Rx) * D);
        TAKE(st->bufb, FV_MAX(Rs, Rx) * D);
        TAKE(st->dqkv, Rs * 3 * D);
        TAKE(st->dhbuf, Rx * I);
        TAKE(st->lnscr, st->lnstride * (size_t)st->nthreads);
    } else {
        /* one set of buffers for every layer: the residual stream is updated in place */
        LayerActs a = { 0 };
        TAKE(a.xin, Rx * D); /* a token pooling rewrites it in place, through tmp */
        TAKE(a.t_ln, FV_MAX(Rts, Rx) * D);
        TAKE(a.t_qkv, Rts * 3 * D);
        TAKE(a.t_att, Rts * D);
        TAKE(a.t_prj, Rt * D);
        TAKE(a.s_seq, Rs * D);
        TAKE(a.h_pre, Rx * I);
        TAKE(st->patch16, (Rt * Cpp + 1) / 2); /* bf16 */
        if (base) {
            a.y = a.xin;
            a.s_ln = a.m_ln = a.t_ln;
            a.s_qkv = a.t_qkv;
            a.s_att = a.t_att;
            for (int32_t l = 0; l < c->num_layers; l++)
                st->la[l] = a;
            st->xout = a.xin;
            st->hbuf = a.h_pre;
            st->f_mean = st->f_rstd = NULL;
        }
    }
    for (int k = 0; k < 2; k++) { /* inference: one chain's weights at a time */
        int64_t most = 0;
        for (int32_t l = 0; !st->train && l < c->num_layers; l++)
            if (fv_forward_chain_root(c, k, l))
                most = FV_MAX(most, share_floats(st, k, l, B));
        st->shW[k] = NULL;
        if (most)
            TAKE(st->shW[k], most);
    }
    TAKE(st->patches, Rt * Cpp);
    TAKE(st->tmp, Rts * D);
    TAKE(st->f_ln, B * D);
    TAKE(st->logits, B * c->num_labels);
#undef TAKE
    return off;
}

/* Plans, embedding index tables and the arena for @B clips of T frames on an Hp x Wp patch grid. */
static int prepare(FvState *st, int32_t B, int32_t T, int32_t Hp, int32_t Wp)
{
    const FvModel *m = st->m;
    const FvModelConfig *c = &m->cfg;
    const int32_t P = Hp * Wp, D = c->hidden_size, H = c->num_heads, hd = D / H;
    const int same_shape = st->T == T && st->Hp == Hp && st->Wp == Wp;
    int ret;

    int32_t *lP = NULL;
    if (!same_shape || !st->lP) {
        /* each layer's grid: the input's, halved (rounding up) by every token pooling before it */
        if (!(lP = malloc(sizeof(int32_t) * 3 * (size_t)c->num_layers)))
            return fv_error(FV_ENOMEM, "fv_state_forward: out of memory");
        for (int32_t l = 0; l < c->num_layers; l++) {
            fv_model_layer_grid(c, l, Hp, Wp, &lP[c->num_layers + l], &lP[2 * c->num_layers + l]);
            lP[l] = lP[c->num_layers + l] * lP[2 * c->num_layers + l];
        }
    }
    const int32_t *layerP = lP ? lP : st->lP;
    if (!st->splan || !same_shape || st->attn_gen != m->attn_gen) {
        free_plans(st);
        st->splan = calloc((size_t)c->num_layers, sizeof(FvAttnPlan));
        st->tplan = calloc((size_t)c->num_layers, sizeof(FvAttnPlan));
        if (!st->splan || !st->tplan) {
            free_plans(st);
            free(lP);
            return fv_error(FV_ENOMEM, "fv_state_forward: out of memory");
        }
        size_t scratch = 0;
        for (int32_t l = 0; l < c->num_layers; l++) {
            if ((ret = fv_attn_plan_init(&st->splan[l], &c->spatial, l, 1 + layerP[l], 1, H, hd)) < 0 ||
                (ret = fv_attn_plan_init(&st->tplan[l], &c->temporal, l, T, 0, H, hd)) < 0) {
                free_plans(st);
                free(lP);
                return ret;
            }
            for (int k = 0; k < 2; k++)
                if (fv_forward_chain_root(c, k, l)) {
                    if (!st->share[k] && !(st->share[k] = calloc((size_t)c->num_layers, sizeof(FvAttnShare)))) {
                        free_plans(st);
                        free(lP);
                        return fv_error(FV_ENOMEM, "fv_state_forward: out of memory");
                    }
                    if ((ret = fv_attn_share_init(&st->share[k][l], k ? &st->tplan[l] : &st->splan[l])) < 0) {
                        free_plans(st);
                        free(lP);
                        return ret;
                    }
                }
            /* only a training state runs auxiliary branches (their scratch holds an N x N matrix) */
            st->splan[l].aux = st->tplan[l].aux = st->train;
            st->splan[l].aux_weight = st->tplan[l].aux_weight = st->train ? st->aux_weight : 0.0f;
            scratch = FV_MAX(scratch, fv_attn_scratch_floats(&st->splan[l]));
            scratch = FV_MAX(scratch, fv_attn_scratch_floats(&st->tplan[l]));
        }
        st->ascr.nthreads = omp_get_max_threads();
        st->ascr.stride = scratch;
        if (!(st->ascr.buf = fv_malloc(sizeof(float) * scratch * (size_t)st->ascr.nthreads))) {
            free_plans(st);
            free(lP);
            return fv_error(FV_ENOMEM, "fv_state_forward: out of memory for attention scratch");
        }
        st->attn_gen = m->attn_gen;
    }
    if (st->arena && same_shape && B <= st->Bmax && st->L == c->num_labels) {
        free(lP);
        return 0;
    }
    if (st->train && st->arena) {
        free(lP);
        return fv_error(FV_EINVAL, "fv_state_forward: this training state takes at most %d clips of %dx%dx%d",
                        st->Bmax, st->T, st->Hp * c->patch_size, st->Wp * c->patch_size);
    }
    if (!lP) { /* same grid, a larger batch: keep the layers' grids */
        if (!(lP = malloc(sizeof(int32_t) * 3 * (size_t)c->num_layers)))
            return fv_error(FV_ENOMEM, "fv_state_forward: out of memory");
        memcpy(lP, st->lP, sizeof(int32_t) * 3 * (size_t)c->num_layers);
    }
    free_arena(st);
    st->lP = lP;
    st->lgh = lP + c->num_layers;
    st->lgw = lP + 2 * c->num_layers;
    st->T = T, st->Hp = Hp, st->Wp = Wp, st->P = P;
    st->nthreads = FV_MAX(1, omp_get_max_threads());
    st->lnstride = FV_ALIGN16(2 * (size_t)D);
    st->pos_idx = malloc(sizeof(int32_t) * (1 + (size_t)P));
    st->time_idx = malloc(sizeof(int32_t) * (size_t)T);
    const size_t total = carve(st, NULL, B);
    st->arena = fv_malloc(sizeof(float) * total);
    if (!st->arena || !st->pos_idx || !st->time_idx) {
        free_arena(st);
        return fv_error(FV_ENOMEM, "fv_state_forward: out of memory for %.1f MB of activations (%d clips of %d "
                        "frames, %d patches)", total * 4.0 / 1e6, B, T, P);
    }
    carve(st, st->arena, B);
    st->Bmax = B;
    st->L = c->num_labels; /* a new classifier (fine-tuning) re-sizes the logits */
    st->T = T, st->Hp = Hp, st->Wp = Wp, st->P = P;
    /* embeddings resized to this grid by nearest-neighbour interpolation, as the original TimeSformer code
     * does when the input differs from the training size (the identity otherwise) */
    const int32_t g0 = c->image_size / c->patch_size;
    st->pos_idx[0] = 0;
    for (int32_t y = 0; y < Hp; y++)
        for (int32_t x = 0; x < Wp; x++)
            st->pos_idx[1 + y * Wp + x] = 1 + nearest_src(y, g0, Hp) * g0 + nearest_src(x, g0, Wp);
    for (int32_t t = 0; t < T; t++)
        st->time_idx[t] = nearest_src(t, c->num_frames, T);
    return 0;
}

int fv_state_create_train(FvState **out, const FvModel *m, int32_t max_batch, int32_t T, int32_t H, int32_t W)
{
    const int32_t p = m ? m->cfg.patch_size : 1;
    if (m && (max_batch < 1 || T < 1 || H < p || W < p || H % p || W % p))
        return fv_error(FV_EINVAL, "fv_state_create_train: %d clips of %dx%dx%d (not a positive multiple of patch %d)",
                        max_batch, T, H, W, p);
    if (m && m->prec == FV_PRECISION_BF16)
        return fv_error(FV_EINVAL, "fv_state_create_train: the model is held in bf16 for inference; training needs "
                        "it in fp32");
    int ret = state_new(out, m, 1);
    if (ret < 0)
        return ret;
    if ((ret = prepare(*out, max_batch, T, H / p, W / p)) < 0)
        fv_state_close(out);
    return ret;
}

void fv_state_set_aux_weight(FvState *st, float w)
{
    if (!st->train)
        return;
    st->aux_weight = w;
    for (int32_t l = 0; st->splan && l < st->m->cfg.num_layers; l++)
        st->splan[l].aux_weight = st->tplan[l].aux_weight = w;
}

const float *fv_state_logits(const FvState *st)
{
    return st->logits;
}

/* ---------------------------------------------------------------------------------------------------- */
/* forward                                                                                               */

static void hook_clips(const FvState *st, const char *name, const float *x, int32_t B, int64_t rows, int64_t ld,
                       int64_t cols)
{
    for (int32_t b = 0; b < B; b++)
        st->hook(st->hook_user, name, x + b * ld, rows, cols);
}

/* One divided space-time block on B clips: xin -> xout (the same buffer in an inference state). */
static int block_forward(FvState *st, int32_t l, int32_t B, float *xout)
{
    const FvModelConfig *c = &st->m->cfg;
    const FvLayerWeights *W = &st->m->w.layers[l];
    LayerActs *a = &st->la[l];
    const int32_t T = st->T, P = st->lP[l], D = c->hidden_size, I = c->intermediate_size;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT, S = 1 + P;
    const int64_t Rt = B * PT, Rs = (int64_t)B * T * S, Rx = B * tok;
    const float eps = c->layer_norm_eps;
    float *tmp = st->tmp, *y = a->y;
    int ret;

    /* temporal: the T tokens of patch n are contiguous rows 1 + n*T ..; sequences (B*P, T) */
    for (int32_t b = 0; b < B; b++)
        fv_layernorm_forward(a->t_ln + b * PT * D, D, a->xin + (b * tok + 1) * D, D,
                             a->t_mean ? a->t_mean + b * PT : NULL, a->t_rstd ? a->t_rstd + b * PT : NULL,
                             W->t_ln_w, W->t_ln_b, PT, D, eps);
    /* an attention that shares an earlier layer's weights projects v only */
    const int tq = fv_forward_sharer(c, 1, l) ? D : 3 * D, sq = fv_forward_sharer(c, 0, l) ? D : 3 * D;
    fv_linear(a->t_qkv, a->t_ln, W->t_qkv_w, W->t_qkv_b, (int32_t)Rt, D, tq, 0);
    if ((ret = fv_forward_attention(st, l, FV_DIAG_TEMPORAL, &st->tplan[l], a->t_qkv, a->t_att, a->t_aux, (int64_t)B * P)) < 0)
        return ret;
    fv_linear(a->t_prj, a->t_att, W->t_proj_w, W->t_proj_b, (int32_t)Rt, D, D, 0);
    fv_linear(tmp, a->t_prj, W->t_fc_w, W->t_fc_b, (int32_t)Rt, D, D, 0); // tmp (Rt, D)
    /* y = [c; X + temporal_dense(...)] (in place when y is xin) */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < Rx; r++) {
        const int64_t b = r / tok, i = r % tok;
        const float *xi = a->xin + r * D;
        float *yo = y + r * D;
        if (i == 0) {
            if (yo != xi)
                memcpy(yo, xi, sizeof(float) * D);
        } else {
            const float *tr = tmp + (b * PT + i - 1) * D;
            for (int32_t d = 0; d < D; d++)
                yo[d] = xi[d] + tr[d];
        }
    }

    /* spatial: per (clip, frame) the sequence [c, Xt[n=0..P-1, t]] */
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        const int64_t b = bt / T, t = bt % T;
        float *seq = a->s_seq + bt * S * D;
        const float *yb = y + b * tok * D;
        memcpy(seq, yb, sizeof(float) * D);
        for (int32_t n = 0; n < P; n++)
            memcpy(seq + (1 + (int64_t)n) * D, yb + (1 + (int64_t)n * T + t) * D, sizeof(float) * D);
    }
    fv_layernorm_forward(a->s_ln, D, a->s_seq, D, a->s_mean, a->s_rstd, W->ln1_w, W->ln1_b, Rs, D, eps);
    fv_linear(a->s_qkv, a->s_ln, W->qkv_w, W->qkv_b, (int32_t)Rs, D, sq, 0);
    if ((ret = fv_forward_attention(st, l, FV_DIAG_SPATIAL, &st->splan[l], a->s_qkv, a->s_att, a->s_aux, (int64_t)B * T)) < 0)
        return ret;
    fv_linear(tmp, a->s_att, W->proj_w, W->proj_b, (int32_t)Rs, D, D, 0); // tmp (Rs, D) = S
    /* c' = c + mean_t S_cls(t); X' = Xt + S_patch */
    fv_forward_add_spatial(y, tmp, B, T, P, D);

    /* MLP on every token, the residual fused into the second product */
    fv_layernorm_forward(a->m_ln, D, y, D, a->m_mean, a->m_rstd, W->ln2_w, W->ln2_b, Rx, D, eps);
    fv_linear(a->h_pre, a->m_ln, W->fc1_w, W->fc1_b, (int32_t)Rx, D, I, 0); // h_pre (Rx, I)
    if (st->hbuf != a->h_pre) /* training keeps h_pre for GELU's backward */
        memcpy(st->hbuf, a->h_pre, sizeof(float) * (size_t)(Rx * I));
    fv_gelu(st->hbuf, Rx * I);
    if (xout != y)
        memcpy(xout, y, sizeof(float) * (size_t)(Rx * D));
    fv_linear(xout, st->hbuf, W->fc2_w, W->fc2_b, (int32_t)Rx, I, D, 1);
    return 0;
}

/* Forward of B clips (B, T, 3, H, W) into the arena; logits in st->logits (B, L). */
static int forward(FvState *st, const float *clips, int32_t B)
{
    const FvModelConfig *c = &st->m->cfg;
    const FvWeights *w = &st->m->w;
    const int32_t T = st->T, P = st->P, D = c->hidden_size, p = c->patch_size, C = c->num_channels;
    const int32_t Hh = st->Hp * p, Ww = st->Wp * p, Wp = st->Wp, Cpp = C * p * p;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT;
    float *x0 = st->la[0].xin; // x0 (B, tok, D)
    int ret;

    /* patch embedding as one product: im2col rows in model token order (patch-major, time fastest) */
#pragma omp parallel for schedule(static)
    for (int64_t bn = 0; bn < (int64_t)B * P; bn++) {
        const int64_t b = bn / P;
        const int32_t n = (int32_t)(bn % P), py = n / Wp, px = n % Wp;
        const float *clip = clips + b * (int64_t)T * C * Hh * Ww;
        for (int32_t t = 0; t < T; t++) {
            float *row = st->patches + ((b * P + n) * T + t) * Cpp; /* (C, p, p) like the conv weight */
            for (int32_t ch = 0; ch < C; ch++)
                for (int32_t yy = 0; yy < p; yy++)
                    memcpy(row + ((int64_t)ch * p + yy) * p,
                           clip + (((int64_t)t * C + ch) * Hh + (int64_t)py * p + yy) * Ww + (int64_t)px * p,
                           sizeof(float) * p);
        }
    }
    const int packed = fv_forward_uses_packed(st);
    if (packed) {
        if ((ret = fv_patch_embed_packed(st, B * PT)) < 0)
            return ret;
    } else {
        fv_linear(st->tmp, st->patches, w->patch_w, w->patch_b, (int32_t)(B * PT), Cpp, D, 0);
    }
    /* cls = cls_token + pos[0]; patch (n, t) = conv + pos[1 + n] + time[t], resized by nearest neighbour */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * tok; r++) {
        const int64_t b = r / tok, i = r % tok;
        float *xr = x0 + r * D;
        if (i == 0) {
            for (int32_t d = 0; d < D; d++)
                xr[d] = w->cls_token[d] + w->pos_embed[d];
        } else {
            const int64_t n = (i - 1) / T, t = (i - 1) % T;
            const float *pe = w->pos_embed + (int64_t)st->pos_idx[1 + n] * D;
            const float *te = w->time_embed + (int64_t)st->time_idx[t] * D;
            const float *cv = st->tmp + (b * PT + i - 1) * D;
            for (int32_t d = 0; d < D; d++)
                xr[d] = cv[d] + pe[d] + te[d];
        }
    }
    if (st->hook)
        hook_clips(st, "embeddings", x0, B, tok, tok * D, D);

    for (int32_t l = 0; l < c->num_layers; l++) {
        const int j = fv_config_pool_after(c, l);
        float *next = l + 1 < c->num_layers ? st->la[l + 1].xin : st->xout;
        /* before a token pooling the block writes where the pooling reads: its own buffer (training) or the
         * residual stream in place (inference) */
        float *xout = j < 0 ? next : st->la[l].pool_in ? st->la[l].pool_in : st->la[l].xin;
        const int64_t ltok = 1 + (int64_t)st->lP[l] * T;
        if ((ret = packed ? fv_block_forward_packed(st, l, B, xout) : block_forward(st, l, B, xout)) < 0)
            return ret;
        if (st->hook) {
            char name[32];
            snprintf(name, sizeof(name), "layer.%d", l);
            hook_clips(st, name, xout, B, ltok, ltok * D, D);
        }
        if (j >= 0) {
            const int64_t ntok = 1 + (int64_t)st->lP[l + 1] * T;
            float *dst = xout == next ? st->tmp : next; /* in place: through tmp */
            if ((ret = fv_token_pool_forward(c->pools[j].kind, xout, dst, B, T, st->lgh[l], st->lgw[l], D,
                                             w->pool_w[j], w->pool_b[j])) < 0)
                return ret;
            if (dst != next)
                memcpy(next, dst, sizeof(float) * (size_t)(B * ntok * D));
            if (st->hook) {
                char name[32];
                snprintf(name, sizeof(name), "pool.%d", j);
                hook_clips(st, name, next, B, ntok, ntok * D, D);
            }
        }
    }

    const int64_t ftok = 1 + (int64_t)st->lP[c->num_layers - 1] * T; /* the last layer's tokens */
    fv_layernorm_forward(st->f_ln, D, st->xout, ftok * D, st->f_mean, st->f_rstd, w->norm_w, w->norm_b, B, D,
                         c->layer_norm_eps);
    if (st->hook)
        hook_clips(st, "final_norm", st->f_ln, B, 1, D, D);
    fv_linear(st->logits, st->f_ln, w->head_w, w->head_b, B, D, c->num_labels, 0);
    st->last_B = B;
    return 0;
}

int fv_state_forward(FvState *st, const float *frames, int32_t B, int32_t T, int32_t H, int32_t W, float *logits)
{
    int ret;
    if (!st || !frames || !logits)
        return fv_error(FV_EINVAL, "fv_state_forward: NULL argument");
    const FvModelConfig *c = &st->m->cfg;
    const int32_t p = c->patch_size, L = c->num_labels;
    if (B < 1 || T < 1 || H < p || W < p || H % p || W % p)
        return fv_error(FV_EINVAL, "fv_state_forward: %d clips of %dx%dx%d: not a positive multiple of patch %d",
                        B, T, H, W, p);
    if (st->diag && B > 1) {
        /* the collector counts forward passes of one view */
        const int64_t view = (int64_t)T * c->num_channels * H * W;
        for (int32_t b = 0; b < B; b++)
            if ((ret = fv_state_forward(st, frames + b * view, 1, T, H, W, logits + (int64_t)b * L)) < 0)
                return ret;
        return 0;
    }
    const int32_t Hp = H / p, Wp = W / p;
    if ((ret = prepare(st, B, T, Hp, Wp)) < 0)
        return ret;
    fv_flush_denormals();
    if (st->diag && (ret = fv_diag_forward_begin(st->diag, c, T, Hp, Wp, st->splan, st->tplan)) < 0)
        return ret;
    if ((ret = forward(st, frames, B)) < 0)
        return ret;
    if (st->diag)
        fv_diag_forward_end(st->diag);
    memcpy(logits, st->logits, sizeof(float) * (size_t)B * L);
    return 0;
}

int fv_model_forward(FvModel *m, const float *frames, int32_t T, int32_t H, int32_t W, float *logits)
{
    int ret;
    if (!m)
        return fv_error(FV_EINVAL, "fv_model_forward: NULL model");
    if (!m->state && (ret = fv_state_create(&m->state, m)) < 0)
        return ret;
    return fv_state_forward(m->state, frames, 1, T, H, W, logits);
}

/* ---------------------------------------------------------------------------------------------------- */
/* backward                                                                                              */

#define GRAD(ptr) (st->grad + ((ptr) - st->param))

static void ln_backward(FvState *st, float *dx, int64_t lddx, int acc, const float *dout, int64_t lddo,
                        const float *in, int64_t ldi, const float *mean, const float *rstd, const float *w, float *dw,
                        float *db, int64_t rows, int32_t D)
{
    fv_layernorm_backward(dx, lddx, acc, dout, lddo, in, ldi, mean, rstd, w, dw, db, rows, D, st->lnscr, st->lnstride,
                          FV_MIN(st->nthreads, omp_get_max_threads()));
}

/* Backward of attention @a (0 spatial, 1 temporal) of layer @l: dout -> dqkv (overwritten; a sharer's is v
 * only), through the kind's kernels, a sharing chain's root (its own output and its sharers' weight gradients,
 * gathered before: layers run backwards) or a sharer. */
static int attention_backward(FvState *st, int32_t l, int a, const float *const *own, float *const *down,
                              const float *qkv, const float *out, const float *aux, const float *dout, float *dqkv,
                              int64_t nseq)
{
    const FvModelConfig *c = &st->m->cfg;
    const FvAttnPlan *p = a ? &st->tplan[l] : &st->splan[l];
    const int64_t D = c->hidden_size;
    if (fv_forward_sharer(c, a, l)) {
        const int32_t r = fv_forward_root_of(c, a, l);
        memset(dqkv, 0, sizeof(float) * (size_t)(nseq * p->N * D));
        return fv_attn_share_apply_backward(&st->share[a][r], st->la[r].shW[a], qkv, D, dout, dqkv, st->la[r].shdW[a],
                                            nseq);
    }
    if (fv_forward_chain_root(c, a, l))
        return fv_attn_share_backward(&st->share[a][l], qkv, st->la[l].shW[a], dout, st->la[l].shdW[a], dqkv, nseq);
    return fv_attn_backward_own(p, own, down, qkv, out, aux, dout, dqkv, nseq, &st->ascr);
}

/* g (Rx, D): gradient of the block's output on entry, of its input on return. */
static int block_backward(FvState *st, int32_t l, int32_t B)
{
    const FvModelConfig *c = &st->m->cfg;
    const FvLayerWeights *W = &st->m->w.layers[l];
    const LayerActs *a = &st->la[l];
    const int32_t T = st->T, P = st->lP[l], D = c->hidden_size, I = c->intermediate_size;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT, S = 1 + P;
    const int64_t Rt = B * PT, Rs = (int64_t)B * T * S, Rx = B * tok;
    float *g = st->g, *A = st->bufa, *Bf = st->bufb, *dqkv = st->dqkv;
    int ret;

    /* MLP: x_out = y + fc2(gelu(fc1(ln2(y)))) */
    memcpy(st->hbuf, a->h_pre, sizeof(float) * (size_t)(Rx * I));
    fv_gelu(st->hbuf, Rx * I);
    fv_linear_backward(st->dhbuf, 0, g, st->hbuf, W->fc2_w, GRAD(W->fc2_w), GRAD(W->fc2_b), Rx, I, D);
    fv_gelu_backward(st->dhbuf, a->h_pre, Rx * I);
    fv_linear_backward(A, 0, st->dhbuf, a->m_ln, W->fc1_w, GRAD(W->fc1_w), GRAD(W->fc1_b), Rx, D, I);
    ln_backward(st, g, D, 1, A, D, a->y, D, a->m_mean, a->m_rstd, W->ln2_w, GRAD(W->ln2_w), GRAD(W->ln2_b), Rx, D);
    /* g = dy */

    /* spatial: dS from y = [c + mean_t S_cls; Xt + S_patch] */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < Rs; r++) {
        const int64_t bt = r / S, i = r % S, b = bt / T, t = bt % T;
        float *o = A + r * D;
        if (i == 0) {
            const float *gr = g + b * tok * D;
            for (int32_t d = 0; d < D; d++)
                o[d] = gr[d] / T;
        } else {
            memcpy(o, g + (b * tok + 1 + (i - 1) * T + t) * D, sizeof(float) * D);
        }
    }
    fv_linear_backward(Bf, 0, A, a->s_att, W->proj_w, GRAD(W->proj_w), GRAD(W->proj_b), Rs, D, D);
    const float *const *sown = W->own[0][st->splan[l].s.kind], *const *town = W->own[1][st->tplan[l].s.kind];
    float *sdown[FV_ATTN_MAX_TENSORS], *tdown[FV_ATTN_MAX_TENSORS];
    for (int32_t i = 0; i < FV_ATTN_MAX_TENSORS; i++) {
        sdown[i] = sown[i] ? GRAD(sown[i]) : NULL;
        tdown[i] = town[i] ? GRAD(town[i]) : NULL;
    }
    const int sq = fv_forward_sharer(c, 0, l) ? D : 3 * D, tq = fv_forward_sharer(c, 1, l) ? D : 3 * D;
    if ((ret = attention_backward(st, l, 0, sown, sdown, a->s_qkv, a->s_att, a->s_aux, Bf, dqkv, (int64_t)B * T)) < 0)
        return ret;
    fv_linear_backward(A, 0, dqkv, a->s_ln, W->qkv_w, GRAD(W->qkv_w), W->qkv_b ? GRAD(W->qkv_b) : NULL, Rs, D, sq);
    ln_backward(st, Bf, D, 0, A, D, a->s_seq, D, a->s_mean, a->s_rstd, W->ln1_w, GRAD(W->ln1_w), GRAD(W->ln1_b), Rs, D);
    /* scatter the sequences' gradient back: cls gets the sum over frames */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < Rx; r++) {
        const int64_t b = r / tok, i = r % tok;
        float *gr = g + r * D;
        if (i == 0) {
            for (int32_t t = 0; t < T; t++) {
                const float *sr = Bf + (b * T + t) * S * D;
                for (int32_t d = 0; d < D; d++)
                    gr[d] += sr[d];
            }
        } else {
            const int64_t n = (i - 1) / T, t = (i - 1) % T;
            const float *sr = Bf + ((b * T + t) * S + 1 + n) * D;
            for (int32_t d = 0; d < D; d++)
                gr[d] += sr[d];
        }
    }
    /* g = dXt (patch rows), dc (cls rows: cls passes the temporal part unchanged) */

    /* temporal: Xt = X + t_fc(t_proj(attn(t_ln(X)))) */
    for (int32_t b = 0; b < B; b++)
        memcpy(A + b * PT * D, g + (b * tok + 1) * D, sizeof(float) * (size_t)(PT * D));
    fv_linear_backward(Bf, 0, A, a->t_prj, W->t_fc_w, GRAD(W->t_fc_w), GRAD(W->t_fc_b), Rt, D, D);
    fv_linear_backward(A, 0, Bf, a->t_att, W->t_proj_w, GRAD(W->t_proj_w), GRAD(W->t_proj_b), Rt, D, D);
    if ((ret = attention_backward(st, l, 1, town, tdown, a->t_qkv, a->t_att, a->t_aux, A, dqkv, (int64_t)B * P)) < 0)
        return ret;
    fv_linear_backward(Bf, 0, dqkv, a->t_ln, W->t_qkv_w, GRAD(W->t_qkv_w), W->t_qkv_b ? GRAD(W->t_qkv_b) : NULL, Rt,
                       D, tq);
    for (int32_t b = 0; b < B; b++)
        ln_backward(st, g + (b * tok + 1) * D, D, 1, Bf + b * PT * D, D, a->xin + (b * tok + 1) * D, D,
                    a->t_mean + b * PT, a->t_rstd + b * PT, W->t_ln_w, GRAD(W->t_ln_w), GRAD(W->t_ln_b), PT, D);
    return 0;
}

int fv_state_backward(FvState *st, const float *dlogits, float *grad, const float *param)
{
    if (!st || !st->train || !st->last_B)
        return fv_error(FV_EINVAL, "fv_state_backward: not a training state after a forward");
    const FvModelConfig *c = &st->m->cfg;
    const FvWeights *w = &st->m->w;
    const int32_t B = st->last_B, T = st->T, P = st->P, D = c->hidden_size;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT;
    const int32_t Cpp = c->num_channels * c->patch_size * c->patch_size;
    float *g = st->g;
    st->grad = grad;
    st->param = param;
    fv_flush_denormals();

    const int64_t ftok = 1 + (int64_t)st->lP[c->num_layers - 1] * T; /* the last layer's tokens */
    memset(g, 0, sizeof(float) * (size_t)(B * ftok * D));
    /* head and final LayerNorm on the cls rows */
    fv_linear_backward(st->bufa, 0, dlogits, st->f_ln, w->head_w, GRAD(w->head_w), GRAD(w->head_b), B, D,
                       c->num_labels);
    ln_backward(st, g, ftok * D, 0, st->bufa, D, st->xout, ftok * D, st->f_mean, st->f_rstd, w->norm_w,
                GRAD(w->norm_w), GRAD(w->norm_b), B, D);
    for (int32_t l = 0; l < c->num_layers; l++) /* the sharing chains' weight gradients gather from zero */
        for (int k = 0; k < 2; k++)
            if (st->la[l].shdW[k])
                memset(st->la[l].shdW[k], 0, sizeof(float) * (size_t)share_floats(st, k, l, B));
    int ret;
    for (int32_t l = c->num_layers - 1; l >= 0; l--) {
        const int j = fv_config_pool_after(c, l);
        if (j >= 0) { /* g: of the pooled tokens -> of the block's output */
            ret = fv_token_pool_backward(c->pools[j].kind, st->la[l].pool_in, g, st->bufa, B, T, st->lgh[l],
                                             st->lgw[l], D, w->pool_w[j], w->pool_w[j] ? GRAD(w->pool_w[j]) : NULL,
                                             w->pool_b[j] ? GRAD(w->pool_b[j]) : NULL);
            if (ret < 0) {
                st->grad = NULL;
                st->param = NULL;
                return ret;
            }
            memcpy(g, st->bufa, sizeof(float) * (size_t)(B * (1 + (int64_t)st->lP[l] * T) * D));
        }
        if ((ret = block_backward(st, l, B)) < 0) {
            st->grad = NULL;
            st->param = NULL;
            return ret;
        }
    }

    /* embeddings: x0 = [cls + pos[0]; conv + pos[1 + n] + time[t]] (resized by nearest neighbour) */
    float *A = st->bufa;
    for (int32_t b = 0; b < B; b++)
        memcpy(A + b * PT * D, g + (b * tok + 1) * D, sizeof(float) * (size_t)(PT * D));
    fv_linear_backward(NULL, 0, A, st->patches, w->patch_w, GRAD(w->patch_w), GRAD(w->patch_b), B * PT, Cpp, D);
    float *dcls = GRAD(w->cls_token), *dpos = GRAD(w->pos_embed), *dtime = GRAD(w->time_embed);
    for (int32_t b = 0; b < B; b++)
        for (int32_t d = 0; d < D; d++) {
            dcls[d] += g[b * tok * D + d];
            dpos[d] += g[b * tok * D + d];
        }
    for (int32_t b = 0; b < B; b++)
        for (int32_t n = 0; n < P; n++)
            for (int32_t t = 0; t < T; t++) {
                const float *gr = g + (b * tok + 1 + (int64_t)n * T + t) * D;
                float *pp = dpos + (int64_t)st->pos_idx[1 + n] * D, *tp = dtime + (int64_t)st->time_idx[t] * D;
                for (int32_t d = 0; d < D; d++) {
                    pp[d] += gr[d];
                    tp[d] += gr[d];
                }
            }
    st->grad = NULL;
    st->param = NULL;
    return 0;
}
