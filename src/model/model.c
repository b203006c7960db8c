/* The model: its tensor list (HF names and shapes), random initialisation, lifetime and accessors, the
 * attention settings, FLOP counts, and moving the weights into one writable block for training. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "util/util.h"
#include "model/model_internal.h"

/* ---------------------------------------------------------------------------------------------------- */
/* tensor list                                                                                           */

/* The tensors the attention kind of layer @l's spatial (@temporal 0) or temporal attention owns. */
static int visit_own(FvModel *m, FvTensorVisitor fn, void *user, int32_t l, int temporal)
{
    const FvModelConfig *c = &m->cfg;
    const FvAttnSettings *s = temporal ? &c->temporal : &c->spatial;
    const FvAttnKindDsp *k = fv_attn_kind_dsp(s->kind);
    FvAttnTensor t[FV_ATTN_MAX_TENSORS];
    const int32_t n = k ? k->tensors(s, c->num_heads, c->hidden_size / c->num_heads, t) : 0;
    char name[256];
    int ret;
    for (int32_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "timesformer.encoder.layer.%d.%sattention.attention.%s", l,
                 temporal ? "temporal_" : "", t[i].suffix);
        if ((ret = fn(user, name, t[i].ndim, t[i].shape, &m->w.layers[l].own[temporal][s->kind][i])) != 0)
            return ret;
    }
    return 0;
}

int fv_model_is_own_slot(const FvModel *m, const float *const *slot)
{
    for (int32_t l = 0; m->w.layers && l < m->cfg.num_layers; l++) {
        const float *const *own = &m->w.layers[l].own[0][0][0];
        if (slot >= own && slot < own + 2 * FV_ATTN_KIND_SLOTS * FV_ATTN_MAX_TENSORS)
            return 1;
    }
    return 0;
}

typedef struct MissingWalk {
    const FvModel *m;
    int32_t n;
} MissingWalk;

static int missing_visitor(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    MissingWalk *mw = user;
    (void)name, (void)ndim, (void)shape;
    mw->n += !*slot && fv_model_is_own_slot(mw->m, slot);
    return 0;
}

int32_t fv_model_attention_tensors_missing(const FvModel *m)
{
    MissingWalk mw = { .m = m };
    if (!m || !m->w.layers)
        return 0;
    /* visiting only reads the slots; the cast is for the shared visitor signature */
    fv_model_visit_tensors((FvModel *)m, missing_visitor, &mw);
    return mw.n;
}

int fv_model_visit_tensors(FvModel *m, FvTensorVisitor fn, void *user)
{
    const FvModelConfig *c = &m->cfg;
    const int64_t D = c->hidden_size, I = c->intermediate_size, C = c->num_channels, p = c->patch_size;
    const int64_t P0 = (int64_t)(c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    FvWeights *w = &m->w;
    char name[256];
    int ret;
#define VISIT(nm, slot, ...)                                                         \
    do {                                                                             \
        const int64_t shp_[] = { __VA_ARGS__ };                                      \
        if ((ret = fn(user, nm, (int32_t)(sizeof(shp_) / sizeof(shp_[0])), shp_, &(slot))) != 0) \
            return ret;                                                              \
    } while (0)

    VISIT("timesformer.embeddings.cls_token", w->cls_token, 1, 1, D);
    VISIT("timesformer.embeddings.position_embeddings", w->pos_embed, 1, 1 + P0, D);
    VISIT("timesformer.embeddings.time_embeddings", w->time_embed, 1, c->num_frames, D);
    VISIT("timesformer.embeddings.patch_embeddings.projection.weight", w->patch_w, D, C, p, p);
    VISIT("timesformer.embeddings.patch_embeddings.projection.bias", w->patch_b, D);
    for (int32_t i = 0; i < c->num_layers; i++) {
        FvLayerWeights *L = &w->layers[i];
        /* an attention that shares the previous layer's weights projects v only (SPEC 4.3) */
        const int64_t sq = (c->share_spatial >> i & 1) ? D : 3 * D, tq = (c->share_temporal >> i & 1) ? D : 3 * D;
#define LNAME(suffix) (snprintf(name, sizeof(name), "timesformer.encoder.layer.%d.%s", i, suffix), name)
        VISIT(LNAME("attention.attention.qkv.weight"), L->qkv_w, sq, D);
        if (c->qkv_bias)
            VISIT(LNAME("attention.attention.qkv.bias"), L->qkv_b, sq);
        if (sq == 3 * D && (ret = visit_own(m, fn, user, i, 0)) != 0)
            return ret;
        VISIT(LNAME("attention.output.dense.weight"), L->proj_w, D, D);
        VISIT(LNAME("attention.output.dense.bias"), L->proj_b, D);
        VISIT(LNAME("intermediate.dense.weight"), L->fc1_w, I, D);
        VISIT(LNAME("intermediate.dense.bias"), L->fc1_b, I);
        VISIT(LNAME("output.dense.weight"), L->fc2_w, D, I);
        VISIT(LNAME("output.dense.bias"), L->fc2_b, D);
        VISIT(LNAME("layernorm_before.weight"), L->ln1_w, D);
        VISIT(LNAME("layernorm_before.bias"), L->ln1_b, D);
        VISIT(LNAME("layernorm_after.weight"), L->ln2_w, D);
        VISIT(LNAME("layernorm_after.bias"), L->ln2_b, D);
        VISIT(LNAME("temporal_layernorm.weight"), L->t_ln_w, D);
        VISIT(LNAME("temporal_layernorm.bias"), L->t_ln_b, D);
        VISIT(LNAME("temporal_attention.attention.qkv.weight"), L->t_qkv_w, tq, D);
        if (c->qkv_bias)
            VISIT(LNAME("temporal_attention.attention.qkv.bias"), L->t_qkv_b, tq);
        if (tq == 3 * D && (ret = visit_own(m, fn, user, i, 1)) != 0)
            return ret;
        VISIT(LNAME("temporal_attention.output.dense.weight"), L->t_proj_w, D, D);
        VISIT(LNAME("temporal_attention.output.dense.bias"), L->t_proj_b, D);
        VISIT(LNAME("temporal_dense.weight"), L->t_fc_w, D, D);
        VISIT(LNAME("temporal_dense.bias"), L->t_fc_b, D);
#undef LNAME
        const int j = fv_config_pool_after(c, i);
        if (j >= 0 && c->pools[j].kind == FV_POOL_CONV) { /* the pooling after this layer (SPEC 4.3) */
            snprintf(name, sizeof(name), "timesformer.encoder.pool.%d.weight", j);
            VISIT(name, w->pool_w[j], D, 1, 3, 3);
            snprintf(name, sizeof(name), "timesformer.encoder.pool.%d.bias", j);
            VISIT(name, w->pool_b[j], D);
        }
    }
    VISIT("timesformer.layernorm.weight", w->norm_w, D);
    VISIT("timesformer.layernorm.bias", w->norm_b, D);
    VISIT("classifier.weight", w->head_w, c->num_labels, D);
    VISIT("classifier.bias", w->head_b, c->num_labels);
#undef VISIT
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* lifetime                                                                                              */

static FvModel *model_alloc(const FvModelConfig *c)
{
    FvModel *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (c)
        m->cfg = *c;
    return m;
}

/* Allocate the per-layer weight table once the config is known. */
static int model_alloc_layers(FvModel *m)
{
    m->w.layers = calloc((size_t)m->cfg.num_layers, sizeof(FvLayerWeights));
    return m->w.layers ? 0 : fv_error(FV_ENOMEM, "model: out of memory");
}

typedef struct RandInit {
    float *next;
    uint64_t state;
    int64_t count;
    int sizing; /* 1: only count floats */
} RandInit;

static int rand_visitor(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    RandInit *ri = user;
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n)) /* validated configs never get here */
            return fv_error(FV_EINVAL, "fv_model_create_random: tensor %s: size overflows", name);
    ri->count += n;
    if (ri->sizing)
        return 0;
    float *dst = ri->next;
    ri->next += n;
    size_t len = strlen(name);
    int is_ln = strstr(name, "layernorm") != NULL;
    int is_bias = len > 5 && strcmp(name + len - 5, ".bias") == 0;
    int is_pool = strstr(name, "encoder.pool.") != NULL; /* conv token pooling: starts as the 3x3 mean */
    for (int64_t i = 0; i < n; i++) {
        if (is_pool && !is_bias)
            dst[i] = 1.0f / 9.0f;
        else if (is_ln)
            dst[i] = is_bias ? 0.0f : 1.0f;
        else if (is_bias)
            dst[i] = 0.0f;
        else {
            /* ~N(0, 0.02^2) as ViT initialises, by Irwin-Hall (4 uniforms from one draw): Box-Muller's
             * log/cos made creating a base-size model take seconds */
            uint64_t r = fv_rand_u64(&ri->state);
            float u = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) +
                      (float)(r >> 48);
            dst[i] = 0.02f * 1.7320508f * (u * (1.0f / 32768.0f) - 4.0f) * 0.5f;
        }
    }
    *slot = dst;
    return 0;
}

static char **default_labels(int32_t n)
{
    char **labels = calloc((size_t)n, sizeof(char *));
    if (!labels)
        return NULL;
    for (int32_t i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "class_%d", i);
        if (!(labels[i] = strdup(buf))) {
            for (int32_t j = 0; j < i; j++)
                free(labels[j]);
            free(labels);
            return NULL;
        }
    }
    return labels;
}

int fv_model_create_random(FvModel **out, const FvModelConfig *c, uint64_t seed)
{
    int ret;
    if (!out || !c)
        return fv_error(FV_EINVAL, "fv_model_create_random: NULL argument");
    *out = NULL;
    if ((ret = fv_model_config_validate(c)) < 0)
        return ret;
    FvModel *m = model_alloc(c);
    if (!m)
        return fv_error(FV_ENOMEM, "fv_model_create_random: out of memory");
    if ((ret = model_alloc_layers(m)) < 0)
        goto fail;
    RandInit ri = { .sizing = 1 };
    if ((ret = fv_model_visit_tensors(m, rand_visitor, &ri)) < 0)
        goto fail;
    if ((uint64_t)ri.count > SIZE_MAX / sizeof(float)) {
        ret = fv_error(FV_ENOMEM, "fv_model_create_random: %lld weights do not fit in memory", (long long)ri.count);
        goto fail;
    }
    m->owned_floats = (size_t)ri.count;
    m->owned = fv_malloc(sizeof(float) * m->owned_floats);
    m->labels = default_labels(c->num_labels);
    if (!m->owned || !m->labels) {
        ret = fv_error(FV_ENOMEM, "fv_model_create_random: out of memory for %zu weights", m->owned_floats);
        goto fail;
    }
    ri = (RandInit){ .next = m->owned, .state = seed };
    fv_model_visit_tensors(m, rand_visitor, &ri);
    m->num_params = ri.count;
    if ((ret = fv_model_pack(m, FV_PRECISION_FP32)) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    fv_model_close(&m);
    return ret;
}

/* MAE's fixed sin-cos table, one axis: dims [0, n/2) sin(pos * w_i), [n/2, n) cos(pos * w_i), with
 * w_i = 10000^(-i / (n/2)). */
static void sincos_1d(float *dst, int32_t n, double pos)
{
    const int32_t h = n / 2;
    for (int32_t i = 0; i < h; i++) {
        const double w = pow(10000.0, -(double)i / h);
        dst[i] = (float)sin(pos * w);
        dst[h + i] = (float)cos(pos * w);
    }
}

int fv_model_init_sincos_embeddings(FvModel *m)
{
    if (!m || m->st || !m->owned || m->w.pos_embed < m->owned || m->w.pos_embed >= m->owned + m->owned_floats ||
        m->w.time_embed < m->owned || m->w.time_embed >= m->owned + m->owned_floats)
        return fv_error(FV_EINVAL, "fv_model_init_sincos_embeddings: the embeddings are not the model's own "
                        "writable weights (a loaded model)");
    const int32_t D = m->cfg.hidden_size, g = m->cfg.image_size / m->cfg.patch_size, T = m->cfg.num_frames;
    if (D % 4)
        return fv_error(FV_EINVAL, "fv_model_init_sincos_embeddings: hidden size %d is not a multiple of 4", D);
    float *pos = (float *)m->w.pos_embed, *tim = (float *)m->w.time_embed;
    memset(pos, 0, sizeof(float) * D); /* the CLS token's */
    for (int32_t y = 0; y < g; y++)
        for (int32_t x = 0; x < g; x++) {
            float *row = pos + (int64_t)(1 + y * g + x) * D;
            sincos_1d(row, D / 2, y);
            sincos_1d(row + D / 2, D / 2, x);
        }
    for (int32_t t = 0; t < T; t++)
        sincos_1d(tim + (int64_t)t * D, D, t);
    return 0;
}

void fv_model_close(FvModel **pm)
{
    if (!pm || !*pm)
        return;
    FvModel *m = *pm;
    fv_state_close(&m->state);
    fv_model_unpack(m);
    if (m->labels)
        for (int32_t i = 0; i < m->cfg.num_labels; i++)
            free(m->labels[i]);
    free(m->labels);
    free(m->w.layers);
    fv_free(m->owned);
    fv_st_close(&m->st);
    free(m);
    *pm = NULL;
}

const FvModelConfig *fv_model_config(const FvModel *m)
{
    return &m->cfg;
}

const char *fv_model_label(const FvModel *m, int32_t i)
{
    if (!m || i < 0 || i >= m->cfg.num_labels || !m->labels)
        return NULL;
    return m->labels[i];
}

int64_t fv_model_num_params(const FvModel *m)
{
    return m->num_params;
}

int fv_model_set_attention(FvModel *m, const FvAttnSettings *spatial, const FvAttnSettings *temporal)
{
    int ret;
    if (spatial && (ret = fv_attn_settings_validate(spatial, "fv_model_set_attention", "spatial")) < 0)
        return ret;
    if (temporal && (ret = fv_attn_settings_validate(temporal, "fv_model_set_attention", "temporal")) < 0)
        return ret;
    if ((ret = fv_config_check_sharing(&m->cfg, spatial ? spatial : &m->cfg.spatial,
                                       temporal ? temporal : &m->cfg.temporal, "attention")) < 0)
        return ret;
    if (spatial)
        m->cfg.spatial = *spatial;
    if (temporal)
        m->cfg.temporal = *temporal;
    m->attn_gen++; /* states rebuild their plans on their next forward */
    return 0;
}

static double flops(const FvModel *m, int32_t T, int32_t H, int32_t W, int executed);

double fv_model_flops(const FvModel *m, int32_t T, int32_t H, int32_t W)
{
    return flops(m, T, H, W, 0);
}

double fv_model_flops_executed(const FvModel *m, int32_t T, int32_t H, int32_t W)
{
    return flops(m, T, H, W, 1);
}

/* The model's count, or (@executed) what the forward on prepared weights runs without a hook or diagnostics:
 * the temporal projection folded into temporal_dense where prepare.c folded it, and in the last block only the
 * cls rows after the spatial attention (forward_packed.c's fv_forward_cls_only), in bf16 only the cls queries'
 * attention (fv_forward_cls_query). Keep the two in step with those. */
static double flops(const FvModel *m, int32_t T, int32_t H, int32_t W, int executed)
{
    const FvModelConfig *c = &m->cfg;
    const double D = c->hidden_size, I = c->intermediate_size, p = c->patch_size;
    const int32_t Hp0 = H / c->patch_size, Wp0 = W / c->patch_size;
    const double hd = D / c->num_heads;
    const int packed = executed && m->packed && (m->prec == FV_PRECISION_BF16 || fv_gemm_backend() == FV_GEMM_DNNL);
    double f = 2.0 * (double)Hp0 * Wp0 * T * D * (c->num_channels * p * p) + 2.0 * D * c->num_labels;
    for (int32_t l = 0; l < c->num_layers; l++) {
        int32_t gh, gw;
        fv_model_layer_grid(c, l, Hp0, Wp0, &gh, &gw); /* after any token pooling */
        const int32_t P = gh * gw;
        const double PT = (double)P * T, S = 1.0 + P;
        /* a sharing attention projects v only and applies the weights it is given: one product a pair */
        const int ss = c->share_spatial >> l & 1, st = c->share_temporal >> l & 1;
        const int folded = packed && m->w.layers[l].t_fold_b;
        f += 2.0 * PT * D * ((st ? 1 : 3) * D + D + (folded ? 0 : D)); /* temporal qkv, proj, temporal_dense */
        FvAttnPlan ps, pt;
        if (fv_attn_plan_init(&ps, &c->spatial, l, 1 + P, 1, c->num_heads, (int32_t)hd) < 0)
            return -1.0;
        if (fv_attn_plan_init(&pt, &c->temporal, l, T, 0, c->num_heads, (int32_t)hd) < 0) {
            fv_attn_plan_free(&ps);
            return -1.0;
        }
        f += fv_attn_plan_flops(&pt) * P * (st ? 0.5 : 1.0);
        if (packed && l == c->num_layers - 1 && fv_config_pool_after(c, l) < 0) {
            const int one_q = m->prec == FV_PRECISION_BF16 && !ss && fv_attn_cls_exact(&ps);
            f += 2.0 * T * S * D * (ss ? 1 : 3) * D; /* spatial qkv of every token */
            f += one_q ? 4.0 * T * S * D              /* T cls queries: q.k and p.v over S keys */
                       : fv_attn_plan_flops(&ps) * T * (ss ? 0.5 : 1.0);
            f += 2.0 * T * D * D;                    /* the cls rows' projection */
            f += 2.0 * D * I * 2;                    /* the MLP of cls */
        } else {
            f += 2.0 * T * S * D * ((ss ? 1 : 3) * D + D); /* spatial qkv, proj */
            f += 2.0 * (1 + PT) * D * I * 2;                /* MLP */
            f += fv_attn_plan_flops(&ps) * T * (ss ? 0.5 : 1.0);
        }
        fv_attn_plan_free(&ps);
        fv_attn_plan_free(&pt);
        const int j = fv_config_pool_after(c, l);
        if (j >= 0) { /* pooling the patch tokens: a 2x2 window each (conv: 3x3 taps) */
            int32_t nh, nw;
            fv_model_layer_grid(c, l + 1, Hp0, Wp0, &nh, &nw);
            f += (c->pools[j].kind == FV_POOL_CONV ? 2.0 * 9 : 4.0) * nh * nw * T * D;
        }
    }
    return f;
}

/* ---------------------------------------------------------------------------------------------------- */
/* weights into one writable block (training), a new classifier (fine-tuning)                             */

typedef struct AdoptWalk {
    const FvModel *m;
    float *block;
    size_t n;          /* floats used (16-aligned per tensor) */
    FvTensorSlot *tab;
    int32_t ntab;
    int sizing;
} AdoptWalk;

static int adopt_visitor(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    AdoptWalk *aw = user;
    size_t count = 1;
    for (int32_t i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    if (!aw->sizing) {
        if (!*slot && !fv_model_is_own_slot(aw->m, slot))
            return fv_error(FV_EINVAL, "fv_model_adopt_weights: tensor \"%s\" has no data", name);
        float *dst = aw->block + aw->n; /* zeroed: a kind's missing tensors start at zero */
        if (*slot)
            memcpy(dst, *slot, sizeof(float) * count);
        *slot = dst;
    }
    if (aw->tab) {
        FvTensorSlot *t = &aw->tab[aw->ntab];
        if (!(t->name = strdup(name)))
            return fv_error(FV_ENOMEM, "fv_model_adopt_weights: out of memory");
        t->ndim = ndim > 4 ? 4 : ndim;
        for (int32_t i = 0; i < t->ndim; i++)
            t->shape[i] = shape[i];
        t->offset = aw->n;
        t->count = count;
    }
    aw->ntab++;
    aw->n += (count + 15) & ~(size_t)15;
    return 0;
}

int fv_model_adopt_weights(FvModel *m, FvTensorSlot **tab, int32_t *ntab, size_t *nfloats)
{
    AdoptWalk aw = { .m = m, .sizing = 1 };
    int ret;
    if (m->prec == FV_PRECISION_BF16)
        return fv_error(FV_EINVAL, "the model is held in bf16 for inference; training needs it loaded in fp32");
    if ((ret = fv_model_visit_tensors(m, adopt_visitor, &aw)) < 0)
        return ret;
    const int32_t count = aw.ntab;
    AdoptWalk w2 = { .m = m, .sizing = 0 };
    w2.block = fv_calloc(aw.n ? aw.n : 1, sizeof(float));
    if (tab && !(w2.tab = calloc((size_t)count, sizeof(FvTensorSlot)))) {
        fv_free(w2.block);
        return fv_error(FV_ENOMEM, "fv_model_adopt_weights: out of memory");
    }
    if (!w2.block) {
        free(w2.tab);
        return fv_error(FV_ENOMEM, "fv_model_adopt_weights: out of memory for %zu weights", aw.n);
    }
    /* visiting rewrites the slots one by one: on failure, the remaining ones still point at valid data,
     * but the rewritten ones point into the new block, so it is kept as the model's (nothing is lost) */
    FvWeights saved = m->w;
    FvLayerWeights *saved_layers = malloc(sizeof(FvLayerWeights) * (size_t)m->cfg.num_layers);
    if (!saved_layers) {
        fv_free(w2.block);
        free(w2.tab);
        return fv_error(FV_ENOMEM, "fv_model_adopt_weights: out of memory");
    }
    memcpy(saved_layers, m->w.layers, sizeof(FvLayerWeights) * (size_t)m->cfg.num_layers);
    if ((ret = fv_model_visit_tensors(m, adopt_visitor, &w2)) < 0) {
        /* put the old pointers back */
        FvLayerWeights *layers = m->w.layers;
        memcpy(layers, saved_layers, sizeof(FvLayerWeights) * (size_t)m->cfg.num_layers);
        m->w = saved;
        m->w.layers = layers;
        free(saved_layers);
        for (int32_t i = 0; w2.tab && i < w2.ntab; i++)
            free((char *)w2.tab[i].name);
        free(w2.tab);
        fv_free(w2.block);
        return ret;
    }
    free(saved_layers);
    /* other kinds' tensors were not moved: they would point into the released mapping */
    for (int32_t l = 0; l < m->cfg.num_layers; l++)
        for (int a = 0; a < 2; a++)
            for (int32_t k = 0; k < FV_ATTN_KIND_SLOTS; k++)
                if (k != (int32_t)(a ? m->cfg.temporal.kind : m->cfg.spatial.kind))
                    memset(m->w.layers[l].own[a][k], 0, sizeof(m->w.layers[l].own[a][k]));
    fv_model_unpack(m); /* training changes the weights in place: inference runs on them directly from now on */
    fv_state_close(&m->state);
    fv_free(m->owned);
    fv_st_close(&m->st);
    m->owned = w2.block;
    m->owned_floats = w2.n;
    if (tab) {
        *tab = w2.tab;
        *ntab = w2.ntab;
    }
    if (nfloats)
        *nfloats = w2.n;
    return 0;
}

int fv_model_reset_classifier(FvModel *m, int32_t num_labels, char *const *labels, uint64_t seed)
{
    if (!m || num_labels < 1)
        return fv_error(FV_EINVAL, "fv_model_reset_classifier: bad arguments");
    const int32_t D = m->cfg.hidden_size, old_n = m->cfg.num_labels;
    float *hw = fv_malloc(sizeof(float) * (size_t)num_labels * D);
    float *hb = fv_calloc((size_t)num_labels, sizeof(float));
    char **names = calloc((size_t)num_labels, sizeof(char *));
    int ret = 0;
    if (!hw || !hb || !names) {
        ret = fv_error(FV_ENOMEM, "fv_model_reset_classifier: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < num_labels; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "class_%d", i);
        if (!(names[i] = strdup(labels && labels[i] ? labels[i] : buf))) {
            ret = fv_error(FV_ENOMEM, "fv_model_reset_classifier: out of memory");
            goto fail;
        }
    }
    uint64_t st = seed;
    for (int64_t i = 0; i < (int64_t)num_labels * D; i++)
        hw[i] = 0.02f * fv_rand_normal(&st); /* timm's head init scale */
    const float *old_w = m->w.head_w, *old_b = m->w.head_b;
    m->w.head_w = hw;
    m->w.head_b = hb;
    m->cfg.num_labels = num_labels;
    const int was_packed = m->packed;
    if ((ret = fv_model_adopt_weights(m, NULL, NULL, NULL)) < 0) {
        m->w.head_w = old_w;
        m->w.head_b = old_b;
        m->cfg.num_labels = old_n;
        goto fail;
    }
    for (int32_t i = 0; m->labels && i < old_n; i++)
        free(m->labels[i]);
    free(m->labels);
    m->labels = names;
    names = NULL;
    m->num_params += (int64_t)(num_labels - old_n) * (D + 1); /* the classifier changed size */
    fv_state_close(&m->state); /* sized for the old label count */
    /* the trunk is unchanged: inference stays on prepared weights (the trainer's own adopt drops them); without
     * them it runs on the fp32 block, correctly, so a failure here is not one of the reset */
    if (was_packed && fv_model_pack(m, FV_PRECISION_FP32) < 0)
        fv_model_unpack(m);
fail:
    fv_free(hw);
    fv_free(hb);
    for (int32_t i = 0; names && i < num_labels; i++)
        free(names[i]);
    free(names);
    return ret;
}

