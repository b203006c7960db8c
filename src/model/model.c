/* The TimeSformer forward pass (divided space-time attention, SPEC section 1), the model's tensor list,
 * random initialisation and lifetime. Every matrix product goes through fv_linear (gemm.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention.h"
#include "model/diag_internal.h"
#include "kernels/gemm.h"
#include "util/util.h"
#include "kernels/layers.h"
#include "model/model_internal.h"

/* ---------------------------------------------------------------------------------------------------- */
/* tensor list                                                                                           */

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
#define LNAME(suffix) (snprintf(name, sizeof(name), "timesformer.encoder.layer.%d.%s", i, suffix), name)
        VISIT(LNAME("attention.attention.qkv.weight"), L->qkv_w, 3 * D, D);
        if (c->qkv_bias)
            VISIT(LNAME("attention.attention.qkv.bias"), L->qkv_b, 3 * D);
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
        VISIT(LNAME("temporal_attention.attention.qkv.weight"), L->t_qkv_w, 3 * D, D);
        if (c->qkv_bias)
            VISIT(LNAME("temporal_attention.attention.qkv.bias"), L->t_qkv_b, 3 * D);
        VISIT(LNAME("temporal_attention.output.dense.weight"), L->t_proj_w, D, D);
        VISIT(LNAME("temporal_attention.output.dense.bias"), L->t_proj_b, D);
        VISIT(LNAME("temporal_dense.weight"), L->t_fc_w, D, D);
        VISIT(LNAME("temporal_dense.bias"), L->t_fc_b, D);
#undef LNAME
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
        n *= shape[i];
    ri->count += n;
    if (ri->sizing)
        return 0;
    float *dst = ri->next;
    ri->next += n;
    size_t len = strlen(name);
    int is_ln = strstr(name, "layernorm") != NULL;
    int is_bias = len > 5 && strcmp(name + len - 5, ".bias") == 0;
    for (int64_t i = 0; i < n; i++) {
        if (is_ln)
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
    fv_model_visit_tensors(m, rand_visitor, &ri);
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
    *out = m;
    return 0;
fail:
    fv_model_close(&m);
    return ret;
}

static void free_plans(FvModel *m)
{
    for (int32_t i = 0; m->splan && i < m->cfg.num_layers; i++)
        fv_attn_plan_free(&m->splan[i]);
    for (int32_t i = 0; m->tplan && i < m->cfg.num_layers; i++)
        fv_attn_plan_free(&m->tplan[i]);
    free(m->splan);
    free(m->tplan);
    m->splan = m->tplan = NULL;
    m->plan_T = m->plan_P = 0;
}

static void free_acts(FvActs *a)
{
    fv_free(a->x);
    fv_free(a->patches);
    fv_free(a->pos);
    fv_free(a->time);
    fv_free(a->seq);
    fv_free(a->ln);
    fv_free(a->qkv);
    fv_free(a->att);
    fv_free(a->proj);
    fv_free(a->hid);
    fv_free(a->clsacc);
    memset(a, 0, sizeof(*a));
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
    if (!m || !m->owned || m->w.pos_embed < m->owned || m->w.pos_embed >= m->owned + m->owned_floats ||
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
    free_acts(&m->acts); /* cached resized embeddings */
    return 0;
}

void fv_model_close(FvModel **pm)
{
    if (!pm || !*pm)
        return;
    FvModel *m = *pm;
    free_plans(m);
    free_acts(&m->acts);
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

void fv_model_set_hook(FvModel *m, FvActivationHook hook, void *user)
{
    m->hook = hook;
    m->hook_user = user;
}

int fv_model_set_attention(FvModel *m, const FvAttnSettings *spatial, const FvAttnSettings *temporal)
{
    int ret;
    if (spatial && (ret = fv_attn_settings_validate(spatial, "fv_model_set_attention", "spatial")) < 0)
        return ret;
    if (temporal && (ret = fv_attn_settings_validate(temporal, "fv_model_set_attention", "temporal")) < 0)
        return ret;
    if (spatial)
        m->cfg.spatial = *spatial;
    if (temporal)
        m->cfg.temporal = *temporal;
    free_plans(m); /* rebuilt on the next forward */
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* forward                                                                                               */

/* torch.nn.functional.interpolate(mode='nearest') source index: floor(dst * (in / out)) in float. */
static int32_t nearest_src(int32_t dst, int32_t in, int32_t out)
{
    float scale = (float)in / (float)out;
    int32_t s = (int32_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

static int prepare(FvModel *m, int32_t T, int32_t Hp, int32_t Wp)
{
    const FvModelConfig *c = &m->cfg;
    const int32_t P = Hp * Wp, D = c->hidden_size, I = c->intermediate_size;
    const int32_t Cpp = c->num_channels * c->patch_size * c->patch_size;
    FvActs *a = &m->acts;
    int ret;

    if (a->x && (a->T != T || a->P != P))
        free_acts(a);
    if (!a->x) {
        const int64_t rows = (int64_t)T * (1 + P); /* largest gathered sequence: spatial T x (1+P) */
        const int64_t tok = 1 + (int64_t)P * T;
        a->T = T;
        a->P = P;
        a->x = fv_malloc(sizeof(float) * tok * D);
        a->patches = fv_malloc(sizeof(float) * (int64_t)P * T * Cpp);
        a->pos = fv_malloc(sizeof(float) * (1 + (int64_t)P) * D);
        a->time = fv_malloc(sizeof(float) * (int64_t)T * D);
        a->seq = fv_malloc(sizeof(float) * rows * D);
        a->ln = fv_malloc(sizeof(float) * rows * D);
        a->qkv = fv_malloc(sizeof(float) * rows * 3 * D);
        a->att = fv_malloc(sizeof(float) * rows * D);
        a->proj = fv_malloc(sizeof(float) * rows * D);
        a->hid = fv_malloc(sizeof(float) * tok * I);
        a->clsacc = fv_malloc(sizeof(float) * D);
        if (!a->x || !a->patches || !a->pos || !a->time || !a->seq || !a->ln || !a->qkv || !a->att ||
            !a->proj || !a->hid || !a->clsacc) {
            free_acts(a);
            return fv_error(FV_ENOMEM, "fv_model_forward: out of memory for activations (T=%d, P=%d)", T, P);
        }
        /* Embeddings resized to this grid by nearest-neighbour interpolation, as the original
         * TimeSformer code does when the input differs from the training size (a copy otherwise). */
        const int32_t g0 = c->image_size / c->patch_size;
        memcpy(a->pos, m->w.pos_embed, sizeof(float) * D);
        for (int32_t y = 0; y < Hp; y++)
            for (int32_t x = 0; x < Wp; x++) {
                int32_t sy = nearest_src(y, g0, Hp), sx = nearest_src(x, g0, Wp);
                memcpy(a->pos + (1 + (int64_t)y * Wp + x) * D, m->w.pos_embed + (1 + (int64_t)sy * g0 + sx) * D,
                       sizeof(float) * D);
            }
        for (int32_t t = 0; t < T; t++)
            memcpy(a->time + (int64_t)t * D, m->w.time_embed + (int64_t)nearest_src(t, c->num_frames, T) * D,
                   sizeof(float) * D);
    }
    if (!m->splan || m->plan_T != T || m->plan_P != P) {
        free_plans(m);
        m->splan = calloc((size_t)c->num_layers, sizeof(FvAttnPlan));
        m->tplan = calloc((size_t)c->num_layers, sizeof(FvAttnPlan));
        if (!m->splan || !m->tplan) {
            free_plans(m);
            return fv_error(FV_ENOMEM, "fv_model_forward: out of memory");
        }
        const int32_t H = c->num_heads, hd = D / H;
        for (int32_t l = 0; l < c->num_layers; l++) {
            if ((ret = fv_attn_plan_init(&m->splan[l], &c->spatial, l, 1 + P, 1, H, hd)) < 0 ||
                (ret = fv_attn_plan_init(&m->tplan[l], &c->temporal, l, T, 0, H, hd)) < 0) {
                free_plans(m);
                return ret;
            }
        }
        m->plan_T = T;
        m->plan_P = P;
    }
    return 0;
}

static void hook(FvModel *m, const char *name, const float *data, int64_t rows, int64_t cols)
{
    if (m->hook)
        m->hook(m->hook_user, name, data, rows, cols);
}

int fv_model_set_diag(FvModel *m, FvDiag *d)
{
    if (!m)
        return fv_error(FV_EINVAL, "fv_model_set_diag: NULL model");
    m->diag = d;
    return 0;
}

/* One attention: the plain kernels, or through the attached diagnostics collector (same outputs). */
static int attention(FvModel *m, int32_t l, FvDiagAttnKind kind, const FvAttnPlan *p, const float *qkv,
                     float *out, int32_t B)
{
    if (m->diag)
        return fv_diag_attention(m->diag, l, kind, p, qkv, out, B);
    return fv_attn_forward(p, qkv, out, B);
}

/* One divided space-time block on the residual stream x (1 + P*T, D), token order [cls, n0t0, n0t1, ...]. */
static int block_forward(FvModel *m, int32_t l)
{
    const FvModelConfig *c = &m->cfg;
    const FvLayerWeights *L = &m->w.layers[l];
    FvActs *a = &m->acts;
    const int32_t T = a->T, P = a->P, D = c->hidden_size, I = c->intermediate_size;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT;
    const float eps = c->layer_norm_eps;
    float *x = a->x; /* (1 + P*T, D) */
    int ret;

    /* temporal: the T tokens of patch n are already contiguous rows 1 + n*T .. 1 + n*T + T-1 */
    fv_layernorm(a->ln, x + D, D, L->t_ln_w, L->t_ln_b, PT, D, eps);          /* ln   (P*T, D)  */
    fv_linear(a->qkv, a->ln, L->t_qkv_w, L->t_qkv_b, (int32_t)PT, D, 3 * D, 0); /* qkv  (P*T, 3D) */
    if ((ret = attention(m, l, FV_DIAG_TEMPORAL, &m->tplan[l], a->qkv, a->att, P)) < 0) /* att (P*T, D) */
        return ret;
    fv_linear(a->proj, a->att, L->t_proj_w, L->t_proj_b, (int32_t)PT, D, D, 0);
    fv_linear(x + D, a->proj, L->t_fc_w, L->t_fc_b, (int32_t)PT, D, D, 1);      /* x[1:] += temporal_dense */

    /* spatial: per frame t the sequence [cls, n0t, n1t, ...] (T, 1+P, D), cls repeated per frame */
    const int64_t S = 1 + P;
#pragma omp parallel for schedule(static)
    for (int32_t t = 0; t < T; t++) {
        float *seq = a->seq + (int64_t)t * S * D;
        memcpy(seq, x, sizeof(float) * D);
        for (int32_t n = 0; n < P; n++)
            memcpy(seq + (1 + (int64_t)n) * D, x + (1 + (int64_t)n * T + t) * D, sizeof(float) * D);
    }
    const int32_t rows = (int32_t)(T * S);
    fv_layernorm(a->ln, a->seq, D, L->ln1_w, L->ln1_b, rows, D, eps);
    fv_linear(a->qkv, a->ln, L->qkv_w, L->qkv_b, rows, D, 3 * D, 0);   /* qkv (T, 1+P, 3D) */
    if ((ret = attention(m, l, FV_DIAG_SPATIAL, &m->splan[l], a->qkv, a->att, T)) < 0) /* att (T, 1+P, D) */
        return ret;
    fv_linear(a->proj, a->att, L->proj_w, L->proj_b, rows, D, D, 0);   /* S   (T, 1+P, D)  */
    /* c' = c + mean_t S_cls(t); X' = Xt + S_patch */
    for (int32_t d = 0; d < D; d++) {
        float s = 0.0f;
        for (int32_t t = 0; t < T; t++)
            s += a->proj[(int64_t)t * S * D + d];
        x[d] += s / T;
    }
#pragma omp parallel for schedule(static)
    for (int32_t n = 0; n < P; n++)
        for (int32_t t = 0; t < T; t++) {
            float *xr = x + (1 + (int64_t)n * T + t) * D;
            const float *sr = a->proj + ((int64_t)t * S + 1 + n) * D;
            for (int32_t d = 0; d < D; d++)
                xr[d] += sr[d];
        }

    /* MLP on every token, residual fused into the second product */
    fv_layernorm(a->ln, x, D, L->ln2_w, L->ln2_b, tok, D, eps);
    fv_linear(a->hid, a->ln, L->fc1_w, L->fc1_b, (int32_t)tok, D, I, 0); /* hid (1+P*T, I) */
    fv_gelu(a->hid, tok * I);
    fv_linear(x, a->hid, L->fc2_w, L->fc2_b, (int32_t)tok, I, D, 1);
    return 0;
}

int fv_model_forward(FvModel *m, const float *frames, int32_t T, int32_t H, int32_t W, float *logits)
{
    int ret;
    if (!m || !frames || !logits)
        return fv_error(FV_EINVAL, "fv_model_forward: NULL argument");
    const FvModelConfig *c = &m->cfg;
    const int32_t p = c->patch_size, C = c->num_channels, D = c->hidden_size;
    if (T < 1 || H < p || W < p || H % p || W % p)
        return fv_error(FV_EINVAL, "fv_model_forward: input %dx%dx%d is not a positive multiple of patch %d",
                        T, H, W, p);
    const int32_t Hp = H / p, Wp = W / p, P = Hp * Wp, Cpp = C * p * p;
    if ((ret = prepare(m, T, Hp, Wp)) < 0)
        return ret;
    fv_flush_denormals();
    if (m->diag && (ret = fv_diag_forward_begin(m->diag, c, T, Hp, Wp, m->splan, m->tplan)) < 0)
        return ret;
    FvActs *a = &m->acts;
    float *x = a->x;

    /* patch embedding as one product: im2col rows in model token order (patch-major, time fastest) */
#pragma omp parallel for schedule(static)
    for (int32_t n = 0; n < P; n++) {
        const int32_t py = n / Wp, px = n % Wp;
        for (int32_t t = 0; t < T; t++) {
            float *row = a->patches + ((int64_t)n * T + t) * Cpp; /* (C, p, p) like the conv weight */
            for (int32_t ch = 0; ch < C; ch++)
                for (int32_t yy = 0; yy < p; yy++)
                    memcpy(row + ((int64_t)ch * p + yy) * p,
                           frames + (((int64_t)t * C + ch) * H + (int64_t)py * p + yy) * W + (int64_t)px * p,
                           sizeof(float) * p);
        }
    }
    fv_linear(x + D, a->patches, m->w.patch_w, m->w.patch_b, P * T, Cpp, D, 0);
    for (int32_t d = 0; d < D; d++)
        x[d] = m->w.cls_token[d] + a->pos[d];
#pragma omp parallel for schedule(static)
    for (int32_t n = 0; n < P; n++)
        for (int32_t t = 0; t < T; t++) {
            float *xr = x + (1 + (int64_t)n * T + t) * D;
            const float *pe = a->pos + (1 + (int64_t)n) * D, *te = a->time + (int64_t)t * D;
            for (int32_t d = 0; d < D; d++)
                xr[d] += pe[d] + te[d];
        }
    hook(m, "embeddings", x, 1 + (int64_t)P * T, D);

    for (int32_t l = 0; l < c->num_layers; l++) {
        if ((ret = block_forward(m, l)) < 0)
            return ret;
        if (m->hook) {
            char name[32];
            snprintf(name, sizeof(name), "layer.%d", l);
            hook(m, name, x, 1 + (int64_t)P * T, D);
        }
    }

    fv_layernorm(a->clsacc, x, D, m->w.norm_w, m->w.norm_b, 1, D, c->layer_norm_eps);
    hook(m, "final_norm", a->clsacc, 1, D);
    fv_linear(logits, a->clsacc, m->w.head_w, m->w.head_b, 1, D, c->num_labels, 0);
    if (m->diag)
        fv_diag_forward_end(m->diag);
    return 0;
}

double fv_model_flops(const FvModel *m, int32_t T, int32_t H, int32_t W)
{
    const FvModelConfig *c = &m->cfg;
    const double D = c->hidden_size, I = c->intermediate_size, p = c->patch_size;
    const int32_t Hp = H / c->patch_size, Wp = W / c->patch_size, P = Hp * Wp;
    const double PT = (double)P * T, S = 1.0 + P, hd = D / c->num_heads;
    double f = 2.0 * PT * D * (c->num_channels * p * p) + 2.0 * D * c->num_labels;
    for (int32_t l = 0; l < c->num_layers; l++) {
        f += 2.0 * PT * D * (3 * D + D + D);   /* temporal qkv, proj, temporal_dense */
        f += 2.0 * T * S * D * (3 * D + D);     /* spatial qkv, proj */
        f += 2.0 * (1 + PT) * D * I * 2;        /* MLP */
        double tp = 0, sp = 0; /* attended pairs, summed over heads */
        const int have = m->splan && m->plan_T == T && m->plan_P == P;
        FvAttnPlan ps, pt;
        if (!have) {
            if (fv_attn_plan_init(&ps, &c->spatial, l, 1 + P, 1, c->num_heads, (int32_t)hd) < 0)
                return -1.0;
            if (fv_attn_plan_init(&pt, &c->temporal, l, T, 0, c->num_heads, (int32_t)hd) < 0) {
                fv_attn_plan_free(&ps);
                return -1.0;
            }
        }
        for (int32_t h = 0; h < c->num_heads; h++) {
            sp += (double)fv_attn_plan_pairs(have ? &m->splan[l] : &ps, h);
            tp += (double)fv_attn_plan_pairs(have ? &m->tplan[l] : &pt, h);
        }
        if (!have) {
            fv_attn_plan_free(&ps);
            fv_attn_plan_free(&pt);
        }
        f += 2.0 * 2.0 * hd * (sp * T + tp * P); /* q.k and p.v per attended pair */
    }
    return f;
}
