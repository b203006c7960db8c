/* The inference block on the model's prepared weights (model/prepare.c), in fp32 or bf16: the same arithmetic as
 * block_forward() in forward.c with the bias, GELU and residual adds fused into the products (the temporal
 * output's residual per clip, whose rows are contiguous in the residual stream, and the MLP's), and in bf16 the
 * products' inputs rounded to bf16 where they are made: LayerNorm writes bf16, the first MLP product writes its
 * GELU'd output in bf16, the attention output is rounded before its projection. Dense attention (no sharing, no
 * diagnostics) runs on bf16 where the CPU has AVX512-BF16 (kernels/attn_bf16.h): the qkv product writes bf16 and
 * the attention writes the projection's bf16 input. LayerNorm, softmax, GELU, residuals and the classifier stay
 * fp32. The buffers are the inference state's (bf16 ones in the space of fp32
 * ones, which they half fill).
 * Two shortcuts compute the same logits with fewer FLOPs: where prepare.c folded the temporal projection into
 * temporal_dense (W->t_fold_b set) one product replaces the two, and the last block makes only the cls rows when
 * nothing observes them (fv_forward_cls_only: the spatial attention as always, every query, so that diagnostics
 * see it whole and the logits do not change with them; then the projection of the cls query rows and the MLP on
 * cls alone; in bf16 without diagnostics, for kinds whose cls row is a softmax over every key, the attention of
 * the cls queries alone, kernels/attn_cls.c). */
#include <string.h>

#include "kernels/attention.h"
#include "kernels/attn_bf16.h"
#include "kernels/gemm.h"
#include "kernels/layers.h"
#include "model/state.h"
#include "util/util.h"

int fv_forward_uses_packed(const FvState *st)
{
    const FvModel *m = st->m;
    return !st->train && m->packed && (m->prec == FV_PRECISION_BF16 || fv_gemm_backend() == FV_GEMM_DNNL);
}

/* LayerNorm of @rows rows (stride @ldi) into @out: fp32 or bf16 per @bf */
static void ln_into(void *out, const float *in, int64_t ldi, const float *w, const float *b, int64_t rows, int32_t D,
                    float eps, int bf)
{
    if (bf)
        fv_layernorm_forward_bf16(out, D, in, ldi, w, b, rows, D, eps);
    else
        fv_layernorm_forward(out, D, in, ldi, NULL, NULL, w, b, rows, D, eps);
}

/* 1 when attention @a (0 spatial, 1 temporal) of layer @l runs on bf16 operands (kernels/attn_bf16.h): a bf16
 * model, dense attention with no sharing and no diagnostics, on a CPU with the AVX512-BF16 kernel. The qkv
 * product then writes bf16 and the attention writes the projection's bf16 input. */
static int attn_in_bf16(const FvState *st, int32_t l, int a, const FvAttnPlan *p)
{
    const FvModelConfig *c = &st->m->cfg;
    return st->m->prec == FV_PRECISION_BF16 && !st->diag && p->s.kind == FV_ATTN_DENSE &&
           !fv_forward_sharer(c, a, l) && !fv_forward_sharer(c, a, l + 1) && fv_attn_dense_bf16_fast(p->hd);
}

int fv_patch_embed_packed(FvState *st, int64_t rows)
{
    const FvModel *m = st->m;
    const FvPackedW *pw = m->w.pk_patch;
    const void *in = st->patches;
    if (m->prec == FV_PRECISION_BF16) {
        fv_f32_to_bf16((uint16_t *)st->patch16, st->patches, rows * pw->K);
        in = st->patch16;
    }
    return fv_linear_packed(st->tmp, in, pw, m->w.patch_b, (int32_t)rows, 0);
}

int fv_forward_cls_only(const FvState *st, int32_t l)
{
    const FvModelConfig *c = &st->m->cfg;
    return l == c->num_layers - 1 && !st->hook && fv_config_pool_after(c, l) < 0;
}

int fv_forward_cls_query(const FvState *st, int32_t l)
{
    return fv_forward_cls_only(st, l) && st->m->prec == FV_PRECISION_BF16 && !st->diag &&
           !fv_forward_sharer(&st->m->cfg, 0, l) && fv_attn_cls_exact(&st->splan[l]);
}

/* The last block's rest after the spatial attention when only cls reaches the classifier (fv_forward_cls_only):
 * @att (B*T, D), fp32 or bf16 as the projection takes it, the attention output of the B*T cls queries; their
 * projection, c' = c + mean_t(...), and the MLP on the B cls rows. xout's cls rows are the block's, its patch
 * rows are left as they are (nothing reads them). */
static int cls_only_rest(FvState *st, int32_t l, int32_t B, const void *att, float *xout)
{
    const FvModelConfig *c = &st->m->cfg;
    const FvLayerWeights *W = &st->m->w.layers[l];
    LayerActs *a = &st->la[l];
    const int32_t T = st->T, P = st->lP[l], D = c->hidden_size;
    const int64_t tok = 1 + (int64_t)P * T, BT = (int64_t)B * T;
    const int bf = st->m->prec == FV_PRECISION_BF16;
    float *xc = a->s_seq; /* (B, D): the cls rows, compact (the packed block gathers no s_seq) */
    int ret;
    if ((ret = fv_linear_packed(st->tmp, att, W->pk[FV_PK_PROJ], W->proj_b, (int32_t)BT, 0)) < 0)
        return ret;
    for (int64_t b = 0; b < B; b++) /* c' = c + mean_t S_cls(t), summed as fv_forward_add_spatial does */
        for (int64_t d = 0; d < D; d++) {
            float s = 0.0f;
            for (int64_t t = 0; t < T; t++)
                s += st->tmp[(b * T + t) * D + d];
            xc[b * D + d] = a->y[b * tok * D + d] + s / T;
        }
    ln_into(a->m_ln, xc, D, W->ln2_w, W->ln2_b, B, D, c->layer_norm_eps, bf);
    if ((ret = fv_linear_packed(a->h_pre, a->m_ln, W->pk[FV_PK_FC1], W->fc1_b, B,
                                FV_LIN_GELU | (bf ? FV_LIN_OUT_BF16 : 0))) < 0 ||
        (ret = fv_linear_packed(xc, a->h_pre, W->pk[FV_PK_FC2], W->fc2_b, B, FV_LIN_SUM)) < 0)
        return ret;
    for (int64_t b = 0; b < B; b++)
        memcpy(xout + b * tok * D, xc + b * D, sizeof(float) * D);
    return 0;
}

int fv_block_forward_packed(FvState *st, int32_t l, int32_t B, float *xout)
{
    const FvModelConfig *c = &st->m->cfg;
    const FvLayerWeights *W = &st->m->w.layers[l];
    LayerActs *a = &st->la[l];
    const int32_t T = st->T, P = st->lP[l], D = c->hidden_size;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT, S = 1 + P;
    const int64_t Rt = B * PT, Rs = (int64_t)B * T * S, Rx = B * tok;
    const float eps = c->layer_norm_eps;
    const int bf = st->m->prec == FV_PRECISION_BF16;
    const int o16 = bf ? FV_LIN_OUT_BF16 : 0;
    float *tmp = st->tmp, *y = a->y;
    int ret;

    /* temporal: sequences (B*P, T) of the patch rows 1 + n*T .. of each clip */
    for (int32_t b = 0; b < B; b++) /* t_ln as bf16 holds (Rt, D) in its first half */
        ln_into(bf ? (void *)((uint16_t *)a->t_ln + b * PT * D) : (void *)(a->t_ln + b * PT * D),
                a->xin + (b * tok + 1) * D, D, W->t_ln_w, W->t_ln_b, PT, D, eps, bf);
    const void *att = a->t_att;
    if (attn_in_bf16(st, l, 1, &st->tplan[l])) { /* bf16 qkv; the output where the LayerNorm output was */
        if ((ret = fv_linear_packed(a->t_qkv, a->t_ln, W->pk[FV_PK_T_QKV], W->t_qkv_b, (int32_t)Rt, o16)) < 0 ||
            (ret = fv_attn_dense_bf16((uint16_t *)a->t_ln, (const uint16_t *)a->t_qkv, (int64_t)B * P, T,
                                      st->tplan[l].H, st->tplan[l].hd)) < 0)
            return ret;
        att = a->t_ln;
    } else {
        if ((ret = fv_linear_packed(a->t_qkv, a->t_ln, W->pk[FV_PK_T_QKV], W->t_qkv_b, (int32_t)Rt, 0)) < 0 ||
            (ret = fv_forward_attention(st, l, FV_DIAG_TEMPORAL, &st->tplan[l], a->t_qkv, a->t_att, NULL,
                                        (int64_t)B * P)) < 0)
            return ret;
        if (bf) { /* the projection's input in bf16, where the LayerNorm output was */
            fv_f32_to_bf16((uint16_t *)a->t_ln, a->t_att, Rt * D);
            att = a->t_ln;
        }
    }
    /* folded (prepare.c): temporal_dense(output.dense(att)) is one product on att; else the two */
    const void *tin = att;
    if (!W->t_fold_b) {
        if ((ret = fv_linear_packed(a->t_prj, att, W->pk[FV_PK_T_PROJ], W->t_proj_b, (int32_t)Rt, o16)) < 0)
            return ret;
        tin = a->t_prj;
    }
    /* y = [c; X + temporal_dense(...)]: the residual fused, per clip (its patch rows are contiguous) */
    if (y != a->xin)
        memcpy(y, a->xin, sizeof(float) * (size_t)(Rx * D));
    for (int32_t b = 0; b < B; b++) {
        const void *src = bf ? (const void *)((const uint16_t *)tin + b * PT * D)
                             : (const void *)((const float *)tin + b * PT * D);
        if ((ret = fv_linear_packed(y + (b * tok + 1) * D, src, W->pk[FV_PK_T_FC], W->t_fold_b ? W->t_fold_b
                                    : W->t_fc_b, (int32_t)PT, FV_LIN_SUM)) < 0)
            return ret;
    }

    /* spatial: per (clip, frame) the sequence [c, Xt[n=0..P-1, t]], LayerNorm'd from the rows of y it gathers */
    int32_t *rows = fv_malloc(sizeof(int32_t) * (size_t)Rs);
    if (!rows)
        return fv_error(FV_ENOMEM, "fv_block_forward_packed: out of memory");
    for (int64_t r = 0; r < Rs; r++) {
        const int64_t bt = r / S, i = r % S, b = bt / T, t = bt % T;
        rows[r] = (int32_t)(b * tok + (i ? 1 + (i - 1) * T + t : 0));
    }
    fv_layernorm_gather(a->s_ln, D, bf, y, D, rows, W->ln1_w, W->ln1_b, Rs, D, eps);
    fv_free(rows);
    const int cls = fv_forward_cls_only(st, l);
    att = a->s_att;
    if (fv_forward_cls_query(st, l)) { /* bf16 qkv of every token, the attention of the cls queries alone */
        if ((ret = fv_linear_packed(a->s_qkv, a->s_ln, W->pk[FV_PK_QKV], W->qkv_b, (int32_t)Rs, o16)) < 0)
            return ret;
        fv_attn_cls_forward(a->s_att, a->s_qkv, 1, (int64_t)B * T, (int32_t)S, st->splan[l].H, st->splan[l].hd);
        fv_f32_to_bf16((uint16_t *)a->s_ln, a->s_att, (int64_t)B * T * D);
        return cls_only_rest(st, l, B, a->s_ln, xout);
    }
    if (attn_in_bf16(st, l, 0, &st->splan[l])) {
        if ((ret = fv_linear_packed(a->s_qkv, a->s_ln, W->pk[FV_PK_QKV], W->qkv_b, (int32_t)Rs, o16)) < 0 ||
            (ret = fv_attn_dense_bf16((uint16_t *)a->s_ln, (const uint16_t *)a->s_qkv, (int64_t)B * T, (int32_t)S,
                                      st->splan[l].H, st->splan[l].hd)) < 0)
            return ret;
        att = a->s_ln;
    } else {
        if ((ret = fv_linear_packed(a->s_qkv, a->s_ln, W->pk[FV_PK_QKV], W->qkv_b, (int32_t)Rs, 0)) < 0 ||
            (ret = fv_forward_attention(st, l, FV_DIAG_SPATIAL, &st->splan[l], a->s_qkv, a->s_att, NULL,
                                        (int64_t)B * T)) < 0)
            return ret;
        if (bf) {
            fv_f32_to_bf16((uint16_t *)a->s_ln, a->s_att, Rs * D);
            att = a->s_ln;
        }
    }
    if (cls) { /* the cls query rows (bt * S) of the attention output, compact, in place */
        const size_t row = (bf ? sizeof(uint16_t) : sizeof(float)) * (size_t)D;
        for (int64_t bt = 1; bt < (int64_t)B * T; bt++)
            memmove((char *)att + bt * row, (const char *)att + bt * S * row, row);
        return cls_only_rest(st, l, B, att, xout);
    }
    if ((ret = fv_linear_packed(tmp, att, W->pk[FV_PK_PROJ], W->proj_b, (int32_t)Rs, 0)) < 0) // tmp (Rs, D) = S
        return ret;
    /* c' = c + mean_t S_cls(t); X' = Xt + S_patch */
    fv_forward_add_spatial(y, tmp, B, T, P, D);

    /* MLP on every token: GELU fused into the first product, the residual into the second */
    ln_into(a->m_ln, y, D, W->ln2_w, W->ln2_b, Rx, D, eps, bf);
    if ((ret = fv_linear_packed(a->h_pre, a->m_ln, W->pk[FV_PK_FC1], W->fc1_b, (int32_t)Rx, FV_LIN_GELU | o16)) < 0)
        return ret;
    if (xout != y)
        memcpy(xout, y, sizeof(float) * (size_t)(Rx * D));
    return fv_linear_packed(xout, a->h_pre, W->pk[FV_PK_FC2], W->fc2_b, (int32_t)Rx, FV_LIN_SUM);
}
