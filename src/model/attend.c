/* One attention of a layer as both forward passes run it (training's, model/forward.c, and the packed
 * inference block, model/forward_packed.c): attention sharing chains (SPEC 4.3), the diagnostics collector, the
 * kind's kernels; and the spatial attention's output added back into the token rows. */
#include "kernels/attention.h"
#include "model/diag_internal.h"
#include "model/model_internal.h"
#include "model/state.h"

/* Attention sharing (SPEC 4.3) of attention @a (0 spatial, 1 temporal) in layer @l: it applies the weights of
 * an earlier layer (a sharer), or a later layer applies its weights (the root of a chain), or neither. */
int fv_forward_sharer(const FvModelConfig *c, int a, int32_t l)
{
    const uint64_t bits = a ? c->share_temporal : c->share_spatial;
    return l >= 0 && l < FV_MAX_SHARE_LAYERS && (bits >> l & 1);
}

int fv_forward_chain_root(const FvModelConfig *c, int a, int32_t l)
{
    return !fv_forward_sharer(c, a, l) && fv_forward_sharer(c, a, l + 1);
}

/* The root whose weights sharer @l applies. */
int32_t fv_forward_root_of(const FvModelConfig *c, int a, int32_t l)
{
    while (fv_forward_sharer(c, a, l))
        l--;
    return l;
}

/* One attention of layer @l: the kind's kernels, or through the attached diagnostics collector (same
 * outputs; inference of one clip at a time). */
int fv_forward_attention(FvState *st, int32_t l, FvDiagAttnKind kind, const FvAttnPlan *p, const float *qkv,
                         float *out, float *aux, int64_t nseq)
{
    const FvModelConfig *c = &st->m->cfg;
    const int a = kind == FV_DIAG_TEMPORAL;
    int ret;
    if (fv_forward_sharer(c, a, l)) { /* @qkv holds v only: the chain root's weights on it */
        const int32_t r = fv_forward_root_of(c, a, l);
        const float *W = st->train ? st->la[r].shW[a] : st->shW[a];
        if ((ret = fv_attn_share_apply(&st->share[a][r], W, qkv, c->hidden_size, out, nseq)) < 0)
            return ret;
        return st->diag ? fv_diag_shared(st->diag, l, kind, r, out, (int32_t)nseq, p->N) : 0;
    }
    const float *const *own = st->m->w.layers[l].own[a][p->s.kind];
    if (fv_forward_chain_root(c, a, l)) { /* the weights for the layers that share them */
        float *W = st->train ? st->la[l].shW[a] : st->shW[a];
        if ((ret = fv_attn_share_forward(&st->share[a][l], qkv, out, W, nseq)) < 0 || !st->diag)
            return ret;
        /* with diagnostics the kind's kernels run again for the statistics, into tmp (free while the attention
         * runs): the layer's output stays the one the weights give, as without diagnostics */
        return fv_diag_attention(st->diag, l, kind, p, own, qkv, st->tmp, (int32_t)nseq, &st->ascr);
    }
    if (st->diag)
        return fv_diag_attention(st->diag, l, kind, p, own, qkv, out, (int32_t)nseq, &st->ascr);
    return fv_attn_forward_own(p, own, qkv, out, aux, nseq, NULL, &st->ascr);
}

/* The spatial attention's output S (B*T sequences of 1 + P tokens, (B*T*(1+P), D)) added to the token rows y
 * (B sequences of 1 + P*T tokens, patch-major within a frame group: row 1 + n*T + t): cls gets the mean of its T
 * per-frame copies, each patch token its own row. */
void fv_forward_add_spatial(float *y, const float *tmp, int64_t B, int64_t T, int64_t P, int64_t D)
{
    const int64_t tok = 1 + P * T, S = 1 + P, Rx = B * tok;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < Rx; r++) {
        const int64_t b = r / tok, i = r % tok;
        float *yr = y + r * D;
        if (i == 0) {
            for (int64_t d = 0; d < D; d++) {
                float s = 0.0f;
                for (int64_t t = 0; t < T; t++)
                    s += tmp[((b * T + t) * S) * D + d];
                yr[d] += s / T;
            }
        } else {
            const int64_t n = (i - 1) / T, t = (i - 1) % T;
            const float *sr = tmp + ((b * T + t) * S + 1 + n) * D;
            for (int64_t d = 0; d < D; d++)
                yr[d] += sr[d];
        }
    }
}
