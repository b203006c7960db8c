/* Per-head attention diagnostics (SPEC section 6): the collector attached to a run state (statistics from the
 * attention kernels' own weights, head-output similarity from the attention output buffer), results with
 * one block of numbers, their mean and spread over clips, and the JSON form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <jansson.h>

#include "model/diag_internal.h"
#include "util/util.h"
#include "model/model_internal.h"

struct FvDiag {
    /* shape of the passes held (or of the buffers when none is held) */
    int32_t L, H, hd, T, Hp, Wp, patch;
    FvAttnSettings spatial, temporal; /* resolved (the plans' own) */
    int64_t passes;
    FvDiagResult cur;  /* the pass in progress */
    FvDiagResult sum;  /* sum over finished passes */
    FvDiagResult mean; /* what fv_diag_result() returns */
    int mean_valid;
    /* per-attention buffers */
    double *ent, *entn, *dist; /* (max(T, P) * H) */
    float *cls;                /* (T * H * P) */
    float *dtab, *dall;        /* spatial grid geometry */
    float *dall_t;             /* temporal line geometry (T) */
    float *xc;                 /* (max rows, D) centred head outputs */
    float *gram;               /* (D, D) */
    /* token pooling (SPEC 4.3): each layer's grid and pooling level, and the geometry of each pooled grid */
    int32_t *lgh, *lgw, *llevel;            /* (L) */
    float *pdtab[FV_MAX_POOLS + 1], *pdall[FV_MAX_POOLS + 1]; /* [0]: dtab, dall */
    float *clsp;                            /* (T * H * P) pooled cls weights before they are spread */
};

/* ---------------------------------------------------------------------------------------------------- */
/* results                                                                                               */

static size_t layer_values(int32_t H, int32_t P)
{
    return 2 * ((size_t)H * 5 + 4 * (size_t)H * H + (size_t)H * FV_CASTLING_TAPS) + (size_t)H * P;
}

/* Point the layer arrays of @r into @r->values. */
static void result_layout(FvDiagResult *r)
{
    const int32_t H = r->num_heads, P = r->grid_h * r->grid_w;
    double *v = r->values;
    for (int32_t l = 0; l < r->num_layers; l++) {
        FvDiagLayer *L = &r->layer[l];
        for (int a = 0; a < 2; a++) {
            FvDiagAttn *A = &L->attn[a];
            A->head = (FvDiagHead *)v;
            v += (size_t)H * 5;
            A->jaccard = v, v += (size_t)H * H;
            A->cka = v, v += (size_t)H * H;
            A->cosine = v, v += (size_t)H * H;
            A->frobenius = v, v += (size_t)H * H;
            A->taps = v, v += (size_t)H * FV_CASTLING_TAPS;
        }
        L->cls_attention = v;
        v += (size_t)H * P;
    }
}

int fv_diag_result_alloc(FvDiagResult *r, int32_t layers, int32_t heads, int32_t grid_h, int32_t grid_w)
{
    memset(r, 0, sizeof(*r));
    if (layers < 1 || heads < 1 || grid_h < 1 || grid_w < 1 || layers > 4096 || heads > 4096 ||
        (int64_t)grid_h * grid_w > (1 << 24))
        return fv_error(FV_EINVAL, "fv_diag_result_alloc: bad shape %d layers, %d heads, %dx%d grid", layers,
                        heads, grid_h, grid_w);
    r->num_layers = layers;
    r->num_heads = heads;
    r->grid_h = grid_h;
    r->grid_w = grid_w;
    r->num_values = (size_t)layers * layer_values(heads, grid_h * grid_w);
    r->layer = calloc((size_t)layers, sizeof(FvDiagLayer));
    r->values = fv_calloc(r->num_values, sizeof(double));
    if (!r->layer || !r->values) {
        fv_diag_result_free(r);
        return fv_error(FV_ENOMEM, "fv_diag_result_alloc: out of memory");
    }
    result_layout(r);
    return 0;
}

void fv_diag_result_free(FvDiagResult *r)
{
    if (!r)
        return;
    free(r->layer);
    fv_free(r->values);
    memset(r, 0, sizeof(*r));
}

/* Shape and settings of @src onto @dst (same-shape arrays assumed allocated). */
static void result_meta(FvDiagResult *dst, const FvDiagResult *src)
{
    dst->frames = src->frames;
    dst->patch_size = src->patch_size;
    dst->count = src->count;
    dst->spatial = src->spatial;
    dst->temporal = src->temporal;
}

int fv_diag_result_copy(FvDiagResult *dst, const FvDiagResult *src)
{
    int ret = fv_diag_result_alloc(dst, src->num_layers, src->num_heads, src->grid_h, src->grid_w);
    if (ret < 0)
        return ret;
    result_meta(dst, src);
    memcpy(dst->values, src->values, sizeof(double) * src->num_values);
    return 0;
}

static int same_shape(const FvDiagResult *a, const FvDiagResult *b)
{
    return a->num_layers == b->num_layers && a->num_heads == b->num_heads && a->grid_h == b->grid_h &&
           a->grid_w == b->grid_w;
}

double fv_diag_pair_mean(const double *m, int32_t H)
{
    if (H == 1)
        return m[0];
    double s = 0.0;
    for (int32_t a = 0; a < H; a++)
        for (int32_t b = 0; b < H; b++)
            if (a != b)
                s += m[(int64_t)a * H + b];
    return s / ((double)H * (H - 1));
}

/* ---------------------------------------------------------------------------------------------------- */
/* aggregation over clips                                                                                */

struct FvDiagAgg {
    FvDiagResult first; /* shape and settings */
    double *sum, *sumsq;
    int64_t count;
};

int fv_diag_agg_create(FvDiagAgg **out)
{
    if (!out)
        return fv_error(FV_EINVAL, "fv_diag_agg_create: NULL argument");
    *out = calloc(1, sizeof(FvDiagAgg));
    return *out ? 0 : fv_error(FV_ENOMEM, "fv_diag_agg_create: out of memory");
}

int fv_diag_agg_add(FvDiagAgg *a, const FvDiagResult *r)
{
    int ret;
    if (!a || !r || !r->values)
        return fv_error(FV_EINVAL, "fv_diag_agg_add: NULL argument");
    if (!a->count) {
        fv_diag_result_free(&a->first);
        fv_free(a->sum);
        fv_free(a->sumsq);
        a->sum = a->sumsq = NULL;
        if ((ret = fv_diag_result_copy(&a->first, r)) < 0)
            return ret;
        a->sum = fv_calloc(r->num_values, sizeof(double));
        a->sumsq = fv_calloc(r->num_values, sizeof(double));
        if (!a->sum || !a->sumsq)
            return fv_error(FV_ENOMEM, "fv_diag_agg_add: out of memory");
    } else if (!same_shape(&a->first, r)) {
        return fv_error(FV_EINVAL, "fv_diag_agg_add: result of another shape (%d layers, %d heads, %dx%d grid; "
                        "expected %d, %d, %dx%d)", r->num_layers, r->num_heads, r->grid_h, r->grid_w,
                        a->first.num_layers, a->first.num_heads, a->first.grid_h, a->first.grid_w);
    }
    for (size_t i = 0; i < r->num_values; i++) {
        a->sum[i] += r->values[i];
        a->sumsq[i] += r->values[i] * r->values[i];
    }
    a->count++;
    return 0;
}

int64_t fv_diag_agg_count(const FvDiagAgg *a)
{
    return a ? a->count : 0;
}

int fv_diag_agg_get(const FvDiagAgg *a, FvDiagResult *mean, FvDiagResult *std)
{
    int ret;
    if (!a || !a->count)
        return fv_error(FV_EINVAL, "fv_diag_agg_get: no result added");
    FvDiagResult *outs[2] = { mean, std };
    for (int k = 0; k < 2; k++) {
        FvDiagResult *o = outs[k];
        if (!o)
            continue;
        if ((ret = fv_diag_result_alloc(o, a->first.num_layers, a->first.num_heads, a->first.grid_h,
                                        a->first.grid_w)) < 0) {
            if (k == 1 && mean)
                fv_diag_result_free(mean);
            return ret;
        }
        result_meta(o, &a->first);
        o->count = a->count;
        for (size_t i = 0; i < o->num_values; i++) {
            const double m = a->sum[i] / (double)a->count;
            o->values[i] = k == 0 ? m : sqrt(fmax(0.0, a->sumsq[i] / (double)a->count - m * m));
        }
    }
    return 0;
}

void fv_diag_agg_close(FvDiagAgg **pa)
{
    if (!pa || !*pa)
        return;
    FvDiagAgg *a = *pa;
    fv_diag_result_free(&a->first);
    fv_free(a->sum);
    fv_free(a->sumsq);
    free(a);
    *pa = NULL;
}

/* ---------------------------------------------------------------------------------------------------- */
/* geometry and similarity                                                                               */

int fv_diag_geometry(int32_t Hp, int32_t Wp, float **dtab, float **dall)
{
    *dtab = *dall = NULL;
    if (Hp < 1 || Wp < 0)
        return fv_error(FV_EINVAL, "fv_diag_geometry: bad grid %dx%d", Hp, Wp);
    const int32_t n = Wp ? Hp * Wp : Hp;
    *dall = fv_malloc(sizeof(float) * (size_t)n);
    if (Wp)
        *dtab = fv_malloc(sizeof(float) * (size_t)(2 * Hp - 1) * (2 * Wp - 1));
    if (!*dall || (Wp && !*dtab)) {
        fv_free(*dall);
        fv_free(*dtab);
        *dtab = *dall = NULL;
        return fv_error(FV_ENOMEM, "fv_diag_geometry: out of memory");
    }
    if (!Wp) {
        for (int32_t j = 0; j < n; j++) /* sum of |j - k| over k */
            (*dall)[j] = (float)(((double)j * (j + 1) + (double)(n - 1 - j) * (n - j)) / 2.0);
        return 0;
    }
    const int32_t tw = 2 * Wp - 1;
    for (int32_t dy = -(Hp - 1); dy <= Hp - 1; dy++)
        for (int32_t dx = -(Wp - 1); dx <= Wp - 1; dx++)
            (*dtab)[(int64_t)(dy + Hp - 1) * tw + dx + Wp - 1] = (float)sqrt((double)dy * dy + (double)dx * dx);
    for (int32_t j = 0; j < n; j++) {
        double s = 0.0;
        for (int32_t k = 0; k < n; k++)
            s += (*dtab)[(int64_t)(k / Wp - j / Wp + Hp - 1) * tw + (k % Wp - j % Wp + Wp - 1)];
        (*dall)[j] = (float)s;
    }
    return 0;
}

void fv_diag_head_sims(const float *X, int64_t rows, int64_t ldx, int32_t H, int32_t hd, float *xc, float *gram,
                       double *cka, double *cosine, double *frob)
{
    const int32_t D = H * hd;
    /* column means, row by row in double (thousands of rows), parked in @gram until the product */
    double *mu = (double *)(void *)gram;
    for (int32_t c = 0; c < D; c++)
        mu[c] = 0.0;
    for (int64_t t = 0; t < rows; t++) {
        const float *x = X + t * ldx;
#pragma omp simd
        for (int32_t c = 0; c < D; c++)
            mu[c] += x[c];
    }
    for (int32_t c = 0; c < D; c++)
        mu[c] /= (double)rows;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < rows; t++)
        for (int32_t c = 0; c < D; c++)
            xc[t * D + c] = (float)(X[t * ldx + c] - mu[c]);
    /* Gram of the centred features (D, D), upper triangle: every head pair's X_b^T X_a is one block */
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)rows, 1.0f, xc, D, 0.0f, gram, D);

    const int32_t npairs = H * (H + 1) / 2;
#pragma omp parallel for schedule(dynamic, 1)
    for (int32_t pi = 0; pi < npairs; pi++) {
        int32_t a = 0, r = pi;
        while (r >= H - a)
            r -= H - a, a++;
        const int32_t b = a + r; /* a <= b */
        double hs = 0.0;
        for (int32_t i = 0; i < hd; i++)
            for (int32_t j = a == b ? i : 0; j < hd; j++) {
                const double g = gram[(int64_t)(a * hd + i) * D + b * hd + j];
                hs += (a == b && j > i ? 2.0 : 1.0) * g * g; /* diagonal blocks: the lower half mirrors */
            }
        double dot = 0.0, sq = 0.0;
        for (int64_t t = 0; t < rows; t++) {
            const float *xa = X + t * ldx + (int64_t)a * hd, *xb = X + t * ldx + (int64_t)b * hd;
            float d = 0.0f, s = 0.0f;
            for (int32_t c = 0; c < hd; c++) {
                d += xa[c] * xb[c];
                s += (xa[c] - xb[c]) * (xa[c] - xb[c]);
            }
            dot += d;
            sq += s;
        }
        cka[(int64_t)a * H + b] = hs;    /* HSIC numerators for now */
        cosine[(int64_t)a * H + b] = dot; /* inner products for now */
        frob[(int64_t)a * H + b] = frob[(int64_t)b * H + a] = sqrt(sq);
    }
    for (int32_t a = 0; a < H; a++)
        for (int32_t b = a + 1; b < H; b++) {
            const double ha = cka[(int64_t)a * H + a], hb = cka[(int64_t)b * H + b];
            const double na = cosine[(int64_t)a * H + a], nb = cosine[(int64_t)b * H + b];
            const double k = ha > 0.0 && hb > 0.0 ? cka[(int64_t)a * H + b] / sqrt(ha * hb) : 0.0;
            const double c = na > 0.0 && nb > 0.0 ? cosine[(int64_t)a * H + b] / sqrt(na * nb) : 0.0;
            cka[(int64_t)a * H + b] = cka[(int64_t)b * H + a] = k;
            cosine[(int64_t)a * H + b] = cosine[(int64_t)b * H + a] = c;
        }
    for (int32_t a = 0; a < H; a++) {
        cka[(int64_t)a * H + a] = cka[(int64_t)a * H + a] > 0.0 ? 1.0 : 0.0;
        cosine[(int64_t)a * H + a] = cosine[(int64_t)a * H + a] > 0.0 ? 1.0 : 0.0;
    }
}

double fv_diag_plan_jaccard(const FvAttnPlan *p, int32_t a, int32_t b)
{
    return p->dsp->jaccard(p, a, b);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the collector                                                                                         */

int fv_diag_create(FvDiag **out)
{
    if (!out)
        return fv_error(FV_EINVAL, "fv_diag_create: NULL argument");
    *out = calloc(1, sizeof(FvDiag));
    return *out ? 0 : fv_error(FV_ENOMEM, "fv_diag_create: out of memory");
}

static void free_buffers(FvDiag *d)
{
    fv_free(d->ent);
    fv_free(d->entn);
    fv_free(d->dist);
    fv_free(d->cls);
    fv_free(d->dtab);
    fv_free(d->dall);
    fv_free(d->dall_t);
    fv_free(d->xc);
    fv_free(d->gram);
    fv_free(d->clsp);
    d->clsp = NULL;
    for (int i = 1; i <= FV_MAX_POOLS; i++) {
        fv_free(d->pdtab[i]);
        fv_free(d->pdall[i]);
    }
    memset(d->pdtab, 0, sizeof(d->pdtab));
    memset(d->pdall, 0, sizeof(d->pdall));
    free(d->lgh);
    d->lgh = d->lgw = d->llevel = NULL;
    d->ent = d->entn = d->dist = NULL;
    d->cls = d->dtab = d->dall = d->dall_t = d->xc = d->gram = NULL;
    fv_diag_result_free(&d->cur);
    fv_diag_result_free(&d->sum);
    d->L = 0;
}

void fv_diag_reset(FvDiag *d)
{
    if (!d)
        return;
    d->passes = 0;
    d->mean_valid = 0;
    fv_diag_result_free(&d->mean);
    if (d->sum.values)
        memset(d->sum.values, 0, sizeof(double) * d->sum.num_values);
}

void fv_diag_close(FvDiag **pd)
{
    if (!pd || !*pd)
        return;
    free_buffers(*pd);
    fv_diag_result_free(&(*pd)->mean);
    free(*pd);
    *pd = NULL;
}

int fv_diag_forward_begin(FvDiag *d, const FvModelConfig *cfg, int32_t T, int32_t Hp, int32_t Wp,
                          const FvAttnPlan *splan, const FvAttnPlan *tplan)
{
    const int32_t L = cfg->num_layers, H = cfg->num_heads, hd = cfg->hidden_size / cfg->num_heads;
    int same = d->L == L && d->H == H && d->hd == hd && d->T == T && d->Hp == Hp && d->Wp == Wp &&
               d->patch == cfg->patch_size && !memcmp(&d->spatial, &splan[0].s, sizeof(d->spatial)) &&
               !memcmp(&d->temporal, &tplan[0].s, sizeof(d->temporal));
    for (int32_t l = 0; same && l < L; l++) {
        int32_t gh, gw;
        fv_model_layer_grid(cfg, l, Hp, Wp, &gh, &gw);
        same = d->lgh[l] == gh && d->lgw[l] == gw;
    }
    if (!same && d->passes > 0)
        return fv_error(FV_EINVAL, "fv_model_forward: the diagnostics collector holds passes of another shape or "
                        "attention (%d frames, %dx%d patches); call fv_diag_reset() first", d->T, d->Hp, d->Wp);
    if (!same || !d->xc) {
        free_buffers(d);
        const int32_t P = Hp * Wp, D = H * hd;
        const int64_t maxB = FV_MAX(T, P), rows = FV_MAX((int64_t)T * (1 + P), (int64_t)P * T);
        int ret;
        d->ent = fv_malloc(sizeof(double) * maxB * H);
        d->entn = fv_malloc(sizeof(double) * maxB * H);
        d->dist = fv_malloc(sizeof(double) * maxB * H);
        d->cls = fv_malloc(sizeof(float) * (size_t)T * H * P);
        d->xc = fv_malloc(sizeof(float) * rows * D);
        d->gram = fv_malloc(sizeof(float) * FV_MAX((size_t)D * D, 2 * (size_t)D));
        if (!d->ent || !d->entn || !d->dist || !d->cls || !d->xc || !d->gram) {
            free_buffers(d);
            return fv_error(FV_ENOMEM, "fv_model_forward: out of memory for diagnostics");
        }
        float *unused;
        if ((ret = fv_diag_geometry(Hp, Wp, &d->dtab, &d->dall)) < 0 ||
            (ret = fv_diag_geometry(T, 0, &unused, &d->dall_t)) < 0 ||
            (ret = fv_diag_result_alloc(&d->cur, L, H, Hp, Wp)) < 0 ||
            (ret = fv_diag_result_alloc(&d->sum, L, H, Hp, Wp)) < 0) {
            free_buffers(d);
            return ret;
        }
        /* pooled layers: their grid, level (poolings before them) and its geometry */
        d->pdtab[0] = d->dtab;
        d->pdall[0] = d->dall;
        d->lgh = malloc(sizeof(int32_t) * 3 * (size_t)L);
        d->clsp = fv_malloc(sizeof(float) * (size_t)T * H * P);
        if (!d->lgh || !d->clsp) {
            free_buffers(d);
            return fv_error(FV_ENOMEM, "fv_model_forward: out of memory for diagnostics");
        }
        d->lgw = d->lgh + L;
        d->llevel = d->lgh + 2 * L;
        for (int32_t l = 0; l < L; l++) {
            fv_model_layer_grid(cfg, l, Hp, Wp, &d->lgh[l], &d->lgw[l]);
            int32_t lv = 0;
            while (lv < cfg->num_pools && cfg->pools[lv].after < l)
                lv++;
            d->llevel[l] = lv;
            if (lv > 0 && !d->pdtab[lv] &&
                (ret = fv_diag_geometry(d->lgh[l], d->lgw[l], &d->pdtab[lv], &d->pdall[lv])) < 0) {
                free_buffers(d);
                return ret;
            }
        }
        d->L = L, d->H = H, d->hd = hd, d->T = T, d->Hp = Hp, d->Wp = Wp, d->patch = cfg->patch_size;
        d->spatial = splan[0].s;
        d->temporal = tplan[0].s;
    }
    memset(d->cur.values, 0, sizeof(double) * d->cur.num_values);
    return 0;
}

int fv_diag_attention(FvDiag *d, int32_t layer, FvDiagAttnKind kind, const FvAttnPlan *p, const float *const *own,
                      const float *qkv, float *out, int32_t B, const FvAttnScratch *scr)
{
    const int32_t H = p->H, N = p->N, c = p->has_cls ? 1 : 0, n = N - c;
    const int spatial = kind == FV_DIAG_SPATIAL;
    if (layer < 0 || layer >= d->L || H != d->H)
        return fv_error(FV_EINVAL, "fv_diag_attention: plan does not match the collector's shape");
    /* the layer's grid: the input's, or a pooled one (level lv: distances in original patches x 2^lv) */
    const int32_t gh = d->lgh[layer], gw = d->lgw[layer], lv = d->llevel[layer];
    if ((spatial && (n != gh * gw || B != d->T)) || (!spatial && (N != d->T || B != gh * gw)))
        return fv_error(FV_EINVAL, "fv_diag_attention: plan does not match the collector's shape");
    memset(d->ent, 0, sizeof(double) * (size_t)B * H);
    memset(d->entn, 0, sizeof(double) * (size_t)B * H);
    memset(d->dist, 0, sizeof(double) * (size_t)B * H);
    FvAttnStats st = {
        .Hp = spatial ? gh : n, .Wp = spatial ? gw : 0, .dtab = spatial ? d->pdtab[lv] : NULL,
        .dall = spatial ? d->pdall[lv] : d->dall_t, .ent = d->ent, .ent_norm = d->entn, .dist = d->dist,
        .cls = spatial && c ? (lv ? d->clsp : d->cls) : NULL,
    };
    int ret = fv_attn_forward_own(p, own, qkv, out, NULL, B, &st, scr);
    if (ret < 0)
        return ret;
    FvDiagLayer *L = &d->cur.layer[layer];
    FvDiagAttn *A = &L->attn[kind];
    for (int32_t h = 0; h < H; h++) {
        double e = 0, en = 0, ds = 0;
        for (int32_t b = 0; b < B; b++) {
            e += d->ent[(int64_t)b * H + h];
            en += d->entn[(int64_t)b * H + h];
            ds += d->dist[(int64_t)b * H + h];
        }
        FvDiagHead *hs = &A->head[h];
        hs->density = fv_attn_plan_density(p, h);
        hs->entropy = e / ((double)B * N);
        hs->entropy_norm = en / ((double)B * N);
        hs->mean_distance = ds / ((double)B * n) * (spatial ? (double)(1 << lv) : 1.0);
        hs->mean_distance_px = spatial ? hs->mean_distance * d->patch : hs->mean_distance;
        for (int32_t g = 0; g < H; g++)
            A->jaccard[(int64_t)h * H + g] = fv_diag_plan_jaccard(p, h, g);
        if (st.cls) {
            /* on the input grid: a pooled patch's weight shared evenly by the cells it covers */
            const int32_t P0 = d->Hp * d->Wp;
            for (int32_t k = 0; k < P0; k++) {
                const int32_t y = k / d->Wp, x = k % d->Wp, py = y >> lv, px = x >> lv;
                const int32_t cy = FV_MIN(d->Hp, (py + 1) << lv) - (py << lv);
                const int32_t cx = FV_MIN(d->Wp, (px + 1) << lv) - (px << lv);
                double s = 0.0;
                for (int32_t b = 0; b < B; b++)
                    s += st.cls[((int64_t)b * H + h) * n + py * gw + px];
                L->cls_attention[(int64_t)h * P0 + k] = s / B / ((double)cy * cx);
            }
        }
    }
    if (p->s.kind == FV_ATTN_CASTLING && own && own[0]) /* its weights, reported as they are (SPEC 4.2) */
        for (int32_t i = 0; i < H * FV_CASTLING_TAPS; i++)
            A->taps[i] = own[0][i];
    fv_diag_head_sims(out, (int64_t)B * N, (int64_t)H * p->hd, H, p->hd, d->xc, d->gram, A->cka, A->cosine,
                      A->frobenius);
    return 0;
}

int fv_diag_shared(FvDiag *d, int32_t layer, FvDiagAttnKind kind, int32_t root, const float *out, int32_t B,
                   int32_t N)
{
    if (layer < 0 || layer >= d->L || root < 0 || root >= layer)
        return fv_error(FV_EINVAL, "fv_diag_shared: layer %d cannot share layer %d", layer, root);
    const int32_t H = d->H;
    FvDiagAttn *A = &d->cur.layer[layer].attn[kind];
    const FvDiagAttn *R = &d->cur.layer[root].attn[kind];
    memcpy(A->head, R->head, sizeof(FvDiagHead) * (size_t)H);
    memcpy(A->jaccard, R->jaccard, sizeof(double) * (size_t)H * H);
    if (kind == FV_DIAG_SPATIAL)
        memcpy(d->cur.layer[layer].cls_attention, d->cur.layer[root].cls_attention,
               sizeof(double) * (size_t)H * d->Hp * d->Wp);
    fv_diag_head_sims(out, (int64_t)B * N, (int64_t)H * d->hd, H, d->hd, d->xc, d->gram, A->cka, A->cosine,
                      A->frobenius);
    return 0;
}

void fv_diag_forward_end(FvDiag *d)
{
    for (size_t i = 0; i < d->sum.num_values; i++)
        d->sum.values[i] += d->cur.values[i];
    d->passes++;
    d->mean_valid = 0;
}

const FvDiagResult *fv_diag_result(FvDiag *d)
{
    if (!d || !d->passes)
        return NULL;
    if (d->mean_valid)
        return &d->mean;
    fv_diag_result_free(&d->mean);
    if (fv_diag_result_alloc(&d->mean, d->L, d->H, d->Hp, d->Wp) < 0)
        return NULL;
    for (size_t i = 0; i < d->sum.num_values; i++)
        d->mean.values[i] = d->sum.values[i] / (double)d->passes;
    d->mean.frames = d->T;
    d->mean.patch_size = d->patch;
    d->mean.count = d->passes;
    d->mean.spatial = d->spatial;
    d->mean.temporal = d->temporal;
    d->mean_valid = 1;
    return &d->mean;
}

/* ---------------------------------------------------------------------------------------------------- */
/* JSON                                                                                                  */

/* A number, or null where there is none (SimA's and Castling's entropy: no distribution, SPEC 4.1). */
static json_t *num_json(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *matrix_json(const double *m, int32_t rows, int32_t cols)
{
    json_t *j = json_array();
    for (int32_t r = 0; r < rows; r++) {
        json_t *row = json_array();
        for (int32_t c = 0; c < cols; c++)
            json_array_append_new(row, num_json(m[(int64_t)r * cols + c]));
        json_array_append_new(j, row);
    }
    return j;
}

static json_t *attn_json(const FvDiagAttn *A, int32_t H, int spatial, FvAttnKind kind)
{
    json_t *j = json_object(), *heads = json_array();
    json_object_set_new(j, "kind", json_string(fv_attn_kind_name(kind)));
    for (int32_t h = 0; h < H; h++) {
        const FvDiagHead *s = &A->head[h];
        json_t *o = json_object();
        json_object_set_new(o, "head", json_integer(h));
        json_object_set_new(o, "density", num_json(s->density));
        json_object_set_new(o, "entropy", num_json(s->entropy));
        json_object_set_new(o, "entropy_norm", num_json(s->entropy_norm));
        json_object_set_new(o, "mean_distance", num_json(s->mean_distance));
        if (spatial)
            json_object_set_new(o, "mean_distance_px", num_json(s->mean_distance_px));
        json_array_append_new(heads, o);
    }
    json_object_set_new(j, "heads", heads);
    json_object_set_new(j, "mean_jaccard", num_json(fv_diag_pair_mean(A->jaccard, H)));
    json_object_set_new(j, "mean_cka", num_json(fv_diag_pair_mean(A->cka, H)));
    json_object_set_new(j, "mean_cosine", num_json(fv_diag_pair_mean(A->cosine, H)));
    json_object_set_new(j, "mean_frobenius", num_json(fv_diag_pair_mean(A->frobenius, H)));
    json_object_set_new(j, "jaccard", matrix_json(A->jaccard, H, H));
    json_object_set_new(j, "cka", matrix_json(A->cka, H, H));
    json_object_set_new(j, "cosine", matrix_json(A->cosine, H, H));
    json_object_set_new(j, "frobenius", matrix_json(A->frobenius, H, H));
    if (kind == FV_ATTN_CASTLING)
        json_object_set_new(j, "taps", matrix_json(A->taps, H, FV_CASTLING_TAPS));
    return j;
}

static json_t *result_json(const FvDiagResult *r, unsigned flags)
{
    if (!r || !r->values)
        return NULL;
    const int32_t H = r->num_heads, P = r->grid_h * r->grid_w;
    char sa[128], ta[128];
    fv_attn_describe(&r->spatial, FV_ATTN_DESCRIBE_SHORT, sa, sizeof(sa));
    fv_attn_describe(&r->temporal, FV_ATTN_DESCRIBE_SHORT, ta, sizeof(ta));
    json_t *j = json_pack("{s:i, s:i, s:i, s:[i, i], s:i, s:I, s:s, s:s}", "layers", r->num_layers, "heads", H,
                          "frames", r->frames, "grid", r->grid_h, r->grid_w, "patch_size", r->patch_size, "count",
                          (json_int_t)r->count, "spatial_attention", sa, "temporal_attention", ta);
    if (!j)
        return NULL;
    json_t *layers = json_array();
    for (int32_t l = 0; l < r->num_layers; l++) {
        const FvDiagLayer *L = &r->layer[l];
        json_t *o = json_object();
        json_object_set_new(o, "layer", json_integer(l));
        json_object_set_new(o, "spatial", attn_json(&L->attn[FV_DIAG_SPATIAL], H, 1, r->spatial.kind));
        json_object_set_new(o, "temporal", attn_json(&L->attn[FV_DIAG_TEMPORAL], H, 0, r->temporal.kind));
        if (!(flags & FV_DIAG_JSON_NO_CLS)) {
            json_t *cls = json_array();
            for (int32_t h = 0; h < H; h++)
                json_array_append_new(cls, matrix_json(L->cls_attention + (int64_t)h * P, r->grid_h, r->grid_w));
            json_object_set_new(o, "cls_attention", cls);
        }
        json_array_append_new(layers, o);
    }
    json_object_set_new(j, "layer", layers);
    return j;
}

char *fv_diag_result_json(const FvDiagResult *r, unsigned flags)
{
    json_t *j = result_json(r, flags);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!text)
        fv_error(FV_ENOMEM, "fv_diag_result_json: out of memory");
    return text;
}
