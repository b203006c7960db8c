/* Training forward and backward passes of the TimeSformer (SPEC section 1) on a mini-batch of B clips:
 * the forward keeps every activation the backward needs in one arena; the backward produces the gradient of
 * every parameter in the fv_model_visit_tensors layout. Attention saves only its log-sum-exp per (row, head)
 * and recomputes scores in the backward (flash-attention style): dense heads through the GEMM table,
 * Fibottention heads (zero and exclude semantics) at sparse cost, O(|mask| * head_dim + N * head_dim).
 * Also: the trainer's lifetime, its step, and moving a model's weights into a writable block. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kernels/attention.h"
#include "kernels/fastmath.h"
#include "kernels/gemm.h"
#include "util/util.h"
#include "kernels/layers.h"
#include "model/model_internal.h"
#include "model/safetensors.h"
#include "train/optim.h"
#include "train/trainer.h"

#define ALIGN16(x) (((size_t)(x) + 15) & ~(size_t)15)

/* Dense heads of sequences this long or longer go through the GEMM table; shorter ones (temporal attention,
 * small frames) through the per-pair loops, where a GEMM call costs more than its few flops. */
int32_t fv_train_dense_gemm_min = 64;

/* Saved activations of one layer; rows: Rt = B*P*T (temporal, no cls), Rs = B*T*(1+P) (spatial sequences),
 * Rx = B*(1+P*T) (the residual stream, model token order per clip). */
typedef struct LayerActs {
    float *xin;              // xin (Rx, D): the block's input
    float *t_mean, *t_rstd;  // (Rt)
    float *t_ln;             // t_ln (Rt, D)
    float *t_qkv;            // t_qkv (Rt, 3D)
    float *t_lse;            // t_lse (Rt, H): log-sum-exp of each softmax row
    float *t_att;            // t_att (Rt, D): heads concatenated, before the output projection
    float *t_prj;            // t_prj (Rt, D): after temporal_attention.output.dense
    float *s_seq;            // s_seq (Rs, D): [c, Xt[:, t]] per (clip, frame)
    float *s_mean, *s_rstd;  // (Rs)
    float *s_ln;             // s_ln (Rs, D)
    float *s_qkv;            // s_qkv (Rs, 3D)
    float *s_lse;            // s_lse (Rs, H)
    float *s_att;            // s_att (Rs, D)
    float *y;                // y (Rx, D): [c'; X'], the MLP's input
    float *m_mean, *m_rstd;  // (Rx)
    float *m_ln;             // m_ln (Rx, D)
    float *h_pre;            // h_pre (Rx, I): intermediate.dense output before GELU
} LayerActs;

struct FvTrainer {
    FvModel *m;
    FvTrainSettings s;
    int32_t T, H, W, P, Hp, Wp, Cpp;
    int32_t D, I, NH, hd, L, nlayers;
    int32_t nthreads;

    /* parameters: m->owned, tensors in visit order, 16-float aligned */
    float *param, *grad, *adam_m, *adam_v;
    size_t nparam;
    FvTrainTensor *tensors;
    int32_t ntensors;
    int64_t step;

    FvAttnPlan *splan, *tplan; /* (nlayers) */
    int32_t *pos_idx;          /* (1 + P): source row of position_embeddings (nearest-neighbour resize) */
    int32_t *time_idx;         /* (T): source row of time_embeddings */

    /* arena */
    float *arena;
    LayerActs *la;             /* (nlayers) */
    float *patches;            // patches (Rt, Cpp): im2col of the clips
    float *xout;               // xout (Rx, D): the last block's output
    float *f_mean, *f_rstd;    // (B)
    float *f_ln;               // f_ln (B, D): final LayerNorm of cls
    float *logits, *dlogits;   // (B, L)
    float *g;                  // g (Rx, D): gradient of the residual stream
    float *bufa, *bufb;        // (Rs, D) work
    float *dqkv;               // dqkv (Rs, 3D)
    float *hbuf, *dhbuf;       // (Rx, I): GELU output, its gradient
    float *tscratch;           // per thread: attention (dense: 2 N^2; sparse: O(N + hd)) or LayerNorm sums (2D)
    size_t tscratch_stride;
};

/* ---------------------------------------------------------------------------------------------------- */
/* weights into one writable block                                                                        */

typedef struct AdoptWalk {
    float *block;
    size_t n;          /* floats used (16-aligned per tensor) */
    FvTrainTensor *tab;
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
        if (!*slot)
            return fv_error(FV_EINVAL, "fv_trainer_new: tensor \"%s\" has no data", name);
        float *dst = aw->block + aw->n;
        memcpy(dst, *slot, sizeof(float) * count);
        *slot = dst;
    }
    if (aw->tab) {
        FvTrainTensor *t = &aw->tab[aw->ntab];
        size_t len = strlen(name);
        if (!(t->name = strdup(name)))
            return fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
        t->ndim = ndim > 4 ? 4 : ndim;
        for (int32_t i = 0; i < t->ndim; i++)
            t->shape[i] = shape[i];
        t->offset = aw->n;
        t->count = count;
        /* decay only matrices of products (linear, patch conv, classifier); not biases, LayerNorm or the
         * cls/position/time embeddings (timm's no_weight_decay, PySlowFast's ZERO_WD_1D_PARAM) */
        t->decay = len > 7 && !strcmp(name + len - 7, ".weight") && !strstr(name, "layernorm");
    }
    aw->ntab++;
    aw->n += ALIGN16(count);
    return 0;
}

/* Copy every weight of @m into one new block owned by the model (visit order, 16-float aligned), release
 * the old block and the file mapping. Optionally fills the tensor table (*tab, *ntab). */
static int model_adopt_weights(FvModel *m, FvTrainTensor **tab, int32_t *ntab, size_t *nfloats)
{
    AdoptWalk aw = { .sizing = 1 };
    int ret;
    if ((ret = fv_model_visit_tensors(m, adopt_visitor, &aw)) < 0)
        return ret;
    const int32_t count = aw.ntab;
    AdoptWalk w2 = { .sizing = 0 };
    w2.block = fv_calloc(aw.n ? aw.n : 1, sizeof(float));
    if (tab && !(w2.tab = calloc((size_t)count, sizeof(FvTrainTensor)))) {
        fv_free(w2.block);
        return fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
    }
    if (!w2.block) {
        free(w2.tab);
        return fv_error(FV_ENOMEM, "fv_trainer_new: out of memory for %zu weights", aw.n);
    }
    /* visiting rewrites the slots one by one: on failure, the remaining ones still point at valid data,
     * but the rewritten ones point into the new block, so it is kept as the model's (nothing is lost) */
    FvWeights saved = m->w;
    FvLayerWeights *saved_layers = malloc(sizeof(FvLayerWeights) * (size_t)m->cfg.num_layers);
    if (!saved_layers) {
        fv_free(w2.block);
        free(w2.tab);
        return fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
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

/* The inference path caches the resized position/time embeddings with its activations (model.c prepare):
 * drop them after the weights change so the next fv_model_forward rebuilds them. */
static void model_drop_cache(FvModel *m)
{
    FvActs *a = &m->acts;
    if (!a->x)
        return;
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
    if ((ret = model_adopt_weights(m, NULL, NULL, NULL)) < 0) {
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
    model_drop_cache(m);
fail:
    fv_free(hw);
    fv_free(hb);
    for (int32_t i = 0; names && i < num_labels; i++)
        free(names[i]);
    free(names);
    return ret;
}

/* ---------------------------------------------------------------------------------------------------- */
/* row-wise layers with saved statistics                                                                   */

/* out (rows, D) with stride ldo = LayerNorm(in (rows, D) with stride ldi); saves mean and 1/std per row. */
static void ln_fwd(float *out, int64_t ldo, const float *in, int64_t ldi, float *mean, float *rstd,
                   const float *w, const float *b, int64_t rows, int32_t D, float eps)
{
#pragma omp parallel for schedule(static) if (rows > 16)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * ldi;
        float *y = out + r * ldo;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int32_t i = 0; i < D; i++)
            s += x[i];
        const float mu = s / D;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int32_t i = 0; i < D; i++) {
            const float d = x[i] - mu;
            v += d * d;
        }
        const float rs = 1.0f / sqrtf(v / D + eps);
        mean[r] = mu;
        rstd[r] = rs;
        for (int32_t i = 0; i < D; i++)
            y[i] = (x[i] - mu) * rs * w[i] + b[i];
    }
}

/* LayerNorm backward: dx (stride lddx) += or = (@acc) the input gradient for dout (stride lddo); dw, db
 * accumulate. @part: per-thread scratch of 2*D floats (tr->tscratch). */
static void ln_bwd(FvTrainer *tr, float *dx, int64_t lddx, int acc, const float *dout, int64_t lddo,
                   const float *in, int64_t ldi, const float *mean, const float *rstd, const float *w, float *dw,
                   float *db, int64_t rows, int32_t D)
{
    const int nt = tr->nthreads;
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num();
        float *pw = tr->tscratch + (size_t)tid * tr->tscratch_stride, *pb = pw + D;
        memset(pw, 0, sizeof(float) * 2 * (size_t)D);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *x = in + r * ldi, *dy = dout + r * lddo;
            const float mu = mean[r], rs = rstd[r];
            float s1 = 0.0f, s2 = 0.0f; /* mean(dxhat), mean(dxhat * xhat) */
#pragma omp simd reduction(+ : s1, s2)
            for (int32_t i = 0; i < D; i++) {
                const float xh = (x[i] - mu) * rs, dxh = dy[i] * w[i];
                pw[i] += dy[i] * xh;
                pb[i] += dy[i];
                s1 += dxh;
                s2 += dxh * xh;
            }
            s1 /= D;
            s2 /= D;
            float *o = dx + r * lddx;
            for (int32_t i = 0; i < D; i++) {
                const float xh = (x[i] - mu) * rs;
                const float v = rs * (dy[i] * w[i] - s1 - xh * s2);
                o[i] = acc ? o[i] + v : v;
            }
        }
#pragma omp critical
        for (int32_t i = 0; i < D; i++) {
            dw[i] += pw[i];
            db[i] += pb[i];
        }
    }
}

/* db (n) += column sums of dy (rows, n). */
static void bias_bwd(float *db, const float *dy, int64_t rows, int32_t n)
{
    const int32_t chunk = 64, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int32_t c = 0; c < nchunks; c++) {
        const int32_t c0 = c * chunk, c1 = FV_MIN(n, c0 + chunk);
        double acc[64] = { 0 };
        for (int64_t r = 0; r < rows; r++) {
            const float *row = dy + r * n;
            for (int32_t j = c0; j < c1; j++)
                acc[j - c0] += row[j];
        }
        for (int32_t j = c0; j < c1; j++)
            db[j] += (float)acc[j - c0];
    }
}

/* Backward of y (rows, out) = x (rows, in) W^T + b: dx (rows, in) = dy W (accumulated when @acc), dW += dy^T x,
 * db += column sums of dy. @dx may be NULL (input gradient not needed). */
static void linear_bwd(float *dx, int acc, const float *dy, const float *x, const float *w, float *dw, float *db,
                       int64_t rows, int32_t n_in, int32_t n_out)
{
    const FvGemmDsp *g = fv_gemm();
    if (dx)
        g->sgemm_nn((int32_t)rows, n_in, n_out, dy, n_out, w, n_in, acc ? 1.0f : 0.0f, dx, n_in);
    g->sgemm_tn(n_out, n_in, (int32_t)rows, dy, n_out, x, n_in, 1.0f, dw, n_in);
    if (db)
        bias_bwd(db, dy, rows, n_out);
}

/* GELU derivative (exact erf form): Phi(x) + x phi(x). */
static void gelu_bwd(float *dh, const float *pre, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        const float x = pre[i];
        const float cdf = 0.5f * (1.0f + fv_erf(x * 0.70710678118654752f));
        const float pdf = 0.39894228040143268f * fv_expf(-0.5f * x * x);
        dh[i] *= cdf + x * pdf;
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* attention of one (sequence, head) with saved log-sum-exp                                               */

/* Keys query @j attends (each once; every key for a dense plan); returns the count. Tokens in sequence
 * coordinates (cls = 0 when has_cls). */
static int32_t fib_keys(const FvAttnPlan *p, int32_t h, int32_t j, int32_t *keys)
{
    const int32_t c = p->has_cls ? 1 : 0, N = p->N, n = N - c;
    int32_t cnt = 0;
    if (p->s.kind == FV_ATTN_DENSE || (c && j == 0)) {
        for (int32_t k = 0; k < N; k++)
            keys[cnt++] = k;
        return cnt;
    }
    if (c)
        keys[cnt++] = 0;
    const int32_t jj = j - c;
    const int32_t *off = p->off + (size_t)h * p->max_off;
    for (int32_t i = 0; i < p->noff[h]; i++) {
        const int32_t o = off[i];
        if (o >= n)
            break; /* sorted ascending */
        if (o == 0) {
            keys[cnt++] = c + jj;
            continue;
        }
        if (jj - o >= 0)
            keys[cnt++] = c + jj - o;
        if (jj + o < n)
            keys[cnt++] = c + jj + o;
    }
    return cnt;
}

static inline float dotf(const float *a, const float *b, int32_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int32_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Forward of head @h of one sequence: qkv rows (N, 3D) -> out rows (N, D) at column h*hd, lse (N, H).
 * Scratch: N*N floats (dense) or N ints (keys) + hd floats (Fibottention). */
static void attn_fwd_head(const FvAttnPlan *p, int32_t h, const float *qkv, float *out, float *lse,
                          float *scratch)
{
    const int32_t N = p->N, H = p->H, hd = p->hd, D = H * hd, ld = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *q = qkv + (size_t)h * hd, *k = q + D, *v = q + 2 * D;
    float *o = out + (size_t)h * hd;
    if (p->s.kind == FV_ATTN_DENSE && N >= fv_train_dense_gemm_min) {
        const FvGemmDsp *g = fv_gemm();
        float *S = scratch; // S (N, N)
        g->sgemm_nt(N, N, hd, q, ld, k, ld, 0.0f, S, N);
        for (int32_t i = 0; i < N; i++) {
            float *sr = S + (size_t)i * N;
            float mx = -INFINITY;
            for (int32_t j = 0; j < N; j++) {
                sr[j] *= scale;
                mx = sr[j] > mx ? sr[j] : mx;
            }
            float z = 0.0f;
#pragma omp simd reduction(+ : z)
            for (int32_t j = 0; j < N; j++)
                z += (sr[j] = fv_expf(sr[j] - mx));
            const float inv = 1.0f / z;
            for (int32_t j = 0; j < N; j++)
                sr[j] *= inv;
            lse[(size_t)i * H + h] = mx + logf(z);
        }
        g->sgemm_nn(N, hd, N, S, N, v, ld, 0.0f, o, D);
        return;
    }
    const int zero = p->s.kind == FV_ATTN_FIB && p->s.semantics == FV_FIB_ZERO;
    int32_t *keys = (int32_t *)scratch;
    float *sc = scratch + ALIGN16(N);       // sc (N): scores of the attended keys
    float *vsum = sc + ALIGN16(N);          // vsum (hd): sum of all V rows (zero semantics)
    if (zero) {
        for (int32_t d = 0; d < hd; d++)
            vsum[d] = 0.0f;
        for (int32_t t = 0; t < N; t++)
            for (int32_t d = 0; d < hd; d++)
                vsum[d] += v[(size_t)t * ld + d];
    }
    for (int32_t j = 0; j < N; j++) {
        const int32_t cnt = fib_keys(p, h, j, keys);
        const int32_t masked = zero ? N - cnt : 0;
        const float *qj = q + (size_t)j * ld;
        float mx = masked ? 0.0f : -INFINITY; /* masked keys share logit 0 */
        for (int32_t i = 0; i < cnt; i++) {
            sc[i] = dotf(qj, k + (size_t)keys[i] * ld, hd) * scale;
            mx = sc[i] > mx ? sc[i] : mx;
        }
        const float e0 = masked ? fv_expf(-mx) : 0.0f;
        float z = (float)masked * e0;
        float *oj = o + (size_t)j * D;
        for (int32_t d = 0; d < hd; d++)
            oj[d] = masked ? e0 * vsum[d] : 0.0f;
        for (int32_t i = 0; i < cnt; i++) {
            const float e = fv_expf(sc[i] - mx);
            z += e;
            const float w = e - e0; /* the masked-key share e0 of this key is inside e0 * vsum */
            const float *vk = v + (size_t)keys[i] * ld;
#pragma omp simd
            for (int32_t d = 0; d < hd; d++)
                oj[d] += w * vk[d];
        }
        const float inv = 1.0f / z;
        for (int32_t d = 0; d < hd; d++)
            oj[d] *= inv;
        lse[(size_t)j * H + h] = mx + logf(z);
    }
}

/* Backward of head @h of one sequence: from dout (N, D) (column h*hd) and the saved qkv, out, lse, writes
 * dq, dk, dv into dqkv (N, 3D), whose head columns must be zero on entry.
 * Scratch: 2*N*N floats (dense) or N ints + N floats + hd floats (Fibottention). */
static void attn_bwd_head(const FvAttnPlan *p, int32_t h, const float *qkv, const float *out, const float *lse,
                          const float *dout, float *dqkv, float *scratch)
{
    const int32_t N = p->N, H = p->H, hd = p->hd, D = H * hd, ld = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *q = qkv + (size_t)h * hd, *k = q + D, *v = q + 2 * D;
    const float *o = out + (size_t)h * hd, *dO = dout + (size_t)h * hd;
    float *dq = dqkv + (size_t)h * hd, *dk = dq + D, *dv = dq + 2 * D;
    if (p->s.kind == FV_ATTN_DENSE && N >= fv_train_dense_gemm_min) {
        const FvGemmDsp *g = fv_gemm();
        float *Pm = scratch, *dP = scratch + (size_t)N * N; // P (N, N), dP (N, N)
        g->sgemm_nt(N, N, hd, q, ld, k, ld, 0.0f, Pm, N);
        g->sgemm_nt(N, N, hd, dO, D, v, ld, 0.0f, dP, N);
        for (int32_t i = 0; i < N; i++) {
            float *pr = Pm + (size_t)i * N, *dpr = dP + (size_t)i * N;
            const float l = lse[(size_t)i * H + h];
            float delta = 0.0f;
            for (int32_t j = 0; j < N; j++) {
                pr[j] = fv_expf(pr[j] * scale - l);
                delta += pr[j] * dpr[j];
            }
            for (int32_t j = 0; j < N; j++)
                dpr[j] = pr[j] * (dpr[j] - delta) * scale; /* dS, with the score scale folded in */
        }
        g->sgemm_tn(N, hd, N, Pm, N, dO, D, 0.0f, dv, ld);   /* dV = P^T dO */
        g->sgemm_nn(N, hd, N, dP, N, k, ld, 0.0f, dq, ld);   /* dQ = dS K */
        g->sgemm_tn(N, hd, N, dP, N, q, ld, 0.0f, dk, ld);   /* dK = dS^T Q */
        return;
    }
    const int zero = p->s.kind == FV_ATTN_FIB && p->s.semantics == FV_FIB_ZERO;
    int32_t *keys = (int32_t *)scratch;
    float *gsum = scratch + ALIGN16(N); // gsum (hd): sum over queries of p0_j dO_j (zero semantics)
    for (int32_t d = 0; d < hd; d++)
        gsum[d] = 0.0f;
    for (int32_t j = 0; j < N; j++) {
        const int32_t cnt = fib_keys(p, h, j, keys);
        const int32_t masked = zero ? N - cnt : 0;
        const float l = lse[(size_t)j * H + h];
        const float *qj = q + (size_t)j * ld, *dOj = dO + (size_t)j * D;
        const float delta = dotf(dOj, o + (size_t)j * D, hd); /* sum_k p_jk dp_jk over all keys */
        const float p0 = masked ? fv_expf(-l) : 0.0f;           /* weight of each masked key */
        float *dqj = dq + (size_t)j * ld;
        if (masked)
            for (int32_t d = 0; d < hd; d++)
                gsum[d] += p0 * dOj[d];
        for (int32_t i = 0; i < cnt; i++) {
            const size_t kr = (size_t)keys[i] * ld;
            const float *kk = k + kr, *vk = v + kr;
            const float pjk = fv_expf(dotf(qj, kk, hd) * scale - l);
            const float ds = pjk * (dotf(dOj, vk, hd) - delta) * scale;
            const float wv = pjk - p0; /* every key gets p0 * dO_j through gsum below */
            float *dkk = dk + kr, *dvk = dv + kr;
#pragma omp simd
            for (int32_t d = 0; d < hd; d++) {
                dqj[d] += ds * kk[d];
                dkk[d] += ds * qj[d];
                dvk[d] += wv * dOj[d];
            }
        }
    }
    if (zero)
        for (int32_t t = 0; t < N; t++)
            for (int32_t d = 0; d < hd; d++)
                dv[(size_t)t * ld + d] += gsum[d];
}

/* All heads of @nseq sequences of plan @p, in parallel over (sequence, head). */
static void attn_fwd(FvTrainer *tr, const FvAttnPlan *p, const float *qkv, float *out, float *lse, int64_t nseq)
{
    const int32_t N = p->N, H = p->H, D = H * p->hd;
    const int64_t jobs = nseq * H;
#pragma omp parallel num_threads(tr->nthreads)
    {
        float *scr = tr->tscratch + (size_t)omp_get_thread_num() * tr->tscratch_stride;
#pragma omp for schedule(dynamic, 4)
        for (int64_t jb = 0; jb < jobs; jb++) {
            const int64_t sidx = jb / H;
            const int32_t h = (int32_t)(jb % H);
            attn_fwd_head(p, h, qkv + sidx * N * 3 * D, out + sidx * N * D, lse + sidx * N * H, scr);
        }
    }
}

static void attn_bwd(FvTrainer *tr, const FvAttnPlan *p, const float *qkv, const float *out, const float *lse,
                     const float *dout, float *dqkv, int64_t nseq)
{
    const int32_t N = p->N, H = p->H, D = H * p->hd;
    const int64_t jobs = nseq * H;
    if (p->s.kind != FV_ATTN_DENSE || N < fv_train_dense_gemm_min) /* the loops accumulate */
        memset(dqkv, 0, sizeof(float) * (size_t)(nseq * N * 3 * D));
#pragma omp parallel num_threads(tr->nthreads)
    {
        float *scr = tr->tscratch + (size_t)omp_get_thread_num() * tr->tscratch_stride;
#pragma omp for schedule(dynamic, 4)
        for (int64_t jb = 0; jb < jobs; jb++) {
            const int64_t sidx = jb / H;
            const int32_t h = (int32_t)(jb % H);
            attn_bwd_head(p, h, qkv + sidx * N * 3 * D, out + sidx * N * D, lse + sidx * N * H,
                          dout + sidx * N * D, dqkv + sidx * N * 3 * D, scr);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* forward                                                                                               */

static int32_t nearest_src(int32_t dst, int32_t in, int32_t out)
{
    /* torch.nn.functional.interpolate(mode='nearest'): floor(dst * (in / out)) in float, as model.c */
    const float scale = (float)in / (float)out;
    const int32_t s = (int32_t)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

static void block_fwd(FvTrainer *tr, int32_t l, int32_t B, float *xout)
{
    const FvLayerWeights *W = &tr->m->w.layers[l];
    LayerActs *a = &tr->la[l];
    const int32_t T = tr->T, P = tr->P, D = tr->D, I = tr->I;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT, S = 1 + P;
    const int64_t Rt = B * PT, Rs = B * T * S, Rx = B * tok;
    const float eps = tr->m->cfg.layer_norm_eps;
    float *tmp = tr->bufa;

    /* temporal: the T tokens of one patch are contiguous rows; sequences (B*P, T) */
    for (int32_t b = 0; b < B; b++)
        ln_fwd(a->t_ln + b * PT * D, D, a->xin + (b * tok + 1) * D, D, a->t_mean + b * PT, a->t_rstd + b * PT,
               W->t_ln_w, W->t_ln_b, PT, D, eps);
    fv_linear(a->t_qkv, a->t_ln, W->t_qkv_w, W->t_qkv_b, (int32_t)Rt, D, 3 * D, 0);
    attn_fwd(tr, &tr->tplan[l], a->t_qkv, a->t_att, a->t_lse, (int64_t)B * P);
    fv_linear(a->t_prj, a->t_att, W->t_proj_w, W->t_proj_b, (int32_t)Rt, D, D, 0);
    fv_linear(tmp, a->t_prj, W->t_fc_w, W->t_fc_b, (int32_t)Rt, D, D, 0); // tmp (Rt, D)
    float *xt = a->y; /* y holds Xt until the spatial part completes it */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < Rx; r++) {
        const int64_t b = r / tok, i = r % tok;
        const float *xi = a->xin + r * D;
        float *xo = xt + r * D;
        if (i == 0) {
            memcpy(xo, xi, sizeof(float) * D);
        } else {
            const float *tr_ = tmp + (b * PT + i - 1) * D;
            for (int32_t d = 0; d < D; d++)
                xo[d] = xi[d] + tr_[d];
        }
    }

    /* spatial: per (clip, frame) the sequence [c, Xt[n=0..P-1, t]] */
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        const int64_t b = bt / T, t = bt % T;
        float *seq = a->s_seq + bt * S * D;
        const float *xb = xt + b * tok * D;
        memcpy(seq, xb, sizeof(float) * D);
        for (int32_t n = 0; n < P; n++)
            memcpy(seq + (1 + (int64_t)n) * D, xb + (1 + (int64_t)n * T + t) * D, sizeof(float) * D);
    }
    ln_fwd(a->s_ln, D, a->s_seq, D, a->s_mean, a->s_rstd, W->ln1_w, W->ln1_b, Rs, D, eps);
    fv_linear(a->s_qkv, a->s_ln, W->qkv_w, W->qkv_b, (int32_t)Rs, D, 3 * D, 0);
    attn_fwd(tr, &tr->splan[l], a->s_qkv, a->s_att, a->s_lse, (int64_t)B * T);
    fv_linear(tmp, a->s_att, W->proj_w, W->proj_b, (int32_t)Rs, D, D, 0); // tmp (Rs, D) = S
    /* c' = c + mean_t S_cls(t); X' = Xt + S_patch */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < Rx; r++) {
        const int64_t b = r / tok, i = r % tok;
        float *yr = a->y + r * D;
        if (i == 0) {
            for (int32_t t = 0; t < T; t++) {
                const float *sr = tmp + ((b * T + t) * S) * D;
                for (int32_t d = 0; d < D; d++)
                    yr[d] += sr[d] / T;
            }
        } else {
            const int64_t n = (i - 1) / T, t = (i - 1) % T;
            const float *sr = tmp + ((b * T + t) * S + 1 + n) * D;
            for (int32_t d = 0; d < D; d++)
                yr[d] += sr[d];
        }
    }

    /* MLP */
    ln_fwd(a->m_ln, D, a->y, D, a->m_mean, a->m_rstd, W->ln2_w, W->ln2_b, Rx, D, eps);
    fv_linear(a->h_pre, a->m_ln, W->fc1_w, W->fc1_b, (int32_t)Rx, D, I, 0);
    memcpy(tr->hbuf, a->h_pre, sizeof(float) * (size_t)(Rx * I));
    fv_gelu(tr->hbuf, Rx * I);
    memcpy(xout, a->y, sizeof(float) * (size_t)(Rx * D));
    fv_linear(xout, tr->hbuf, W->fc2_w, W->fc2_b, (int32_t)Rx, I, D, 1);
}

static int check_batch(const FvTrainer *tr, const float *clips, int32_t B, const char *fn)
{
    if (!tr || !clips)
        return fv_error(FV_EINVAL, "%s: NULL argument", fn);
    if (B < 1 || B > tr->s.max_batch)
        return fv_error(FV_EINVAL, "%s: batch of %d clips outside 1..%d", fn, B, tr->s.max_batch);
    /* one NaN would spread through the whole step (and the shared weights): refuse it up front, naming the
     * clip; the scan costs far less than the step */
    const int64_t clip = (int64_t)tr->T * 3 * tr->H * tr->W;
    int64_t bad = -1;
#pragma omp parallel for schedule(static) reduction(max : bad)
    for (int64_t i = 0; i < B * clip; i++)
        if (!isfinite(clips[i]))
            bad = bad > i ? bad : i;
    if (bad >= 0)
        return fv_error(FV_EINVAL, "%s: clip %lld of the batch has a non-finite value", fn,
                        (long long)(bad / clip));
    return 0;
}

/* Forward of B clips into the arena; logits in tr->logits (B, L). */
static void forward(FvTrainer *tr, const float *clips, int32_t B)
{
    const FvWeights *w = &tr->m->w;
    const int32_t T = tr->T, P = tr->P, D = tr->D, Cpp = tr->Cpp, p = tr->m->cfg.patch_size, C = 3;
    const int32_t Hh = tr->H, Ww = tr->W, Wp = tr->Wp;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT;
    float *x0 = tr->la[0].xin; // x0 (B, tok, D)

#pragma omp parallel for schedule(static)
    for (int64_t bn = 0; bn < (int64_t)B * P; bn++) {
        const int64_t b = bn / P;
        const int32_t n = (int32_t)(bn % P), py = n / Wp, px = n % Wp;
        const float *clip = clips + b * (int64_t)T * C * Hh * Ww;
        for (int32_t t = 0; t < T; t++) {
            float *row = tr->patches + ((b * P + n) * T + t) * Cpp; /* (C, p, p) like the conv weight */
            for (int32_t ch = 0; ch < C; ch++)
                for (int32_t yy = 0; yy < p; yy++)
                    memcpy(row + ((int64_t)ch * p + yy) * p,
                           clip + (((int64_t)t * C + ch) * Hh + (int64_t)py * p + yy) * Ww + (int64_t)px * p,
                           sizeof(float) * p);
        }
    }
    fv_linear(tr->bufa, tr->patches, w->patch_w, w->patch_b, (int32_t)(B * PT), Cpp, D, 0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * tok; r++) {
        const int64_t b = r / tok, i = r % tok;
        float *xr = x0 + r * D;
        if (i == 0) {
            for (int32_t d = 0; d < D; d++)
                xr[d] = w->cls_token[d] + w->pos_embed[d];
        } else {
            const int64_t n = (i - 1) / T, t = (i - 1) % T;
            const float *pe = w->pos_embed + (int64_t)tr->pos_idx[1 + n] * D;
            const float *te = w->time_embed + (int64_t)tr->time_idx[t] * D;
            const float *cv = tr->bufa + (b * PT + i - 1) * D;
            for (int32_t d = 0; d < D; d++)
                xr[d] = cv[d] + pe[d] + te[d];
        }
    }
    for (int32_t l = 0; l < tr->nlayers; l++)
        block_fwd(tr, l, B, l + 1 < tr->nlayers ? tr->la[l + 1].xin : tr->xout);
    ln_fwd(tr->f_ln, D, tr->xout, tok * D, tr->f_mean, tr->f_rstd, w->norm_w, w->norm_b, B, D,
           tr->m->cfg.layer_norm_eps);
    fv_linear(tr->logits, tr->f_ln, w->head_w, w->head_b, B, D, tr->L, 0);
}

int fv_trainer_forward(FvTrainer *tr, const float *clips, int32_t B, float *logits)
{
    int ret;
    if ((ret = check_batch(tr, clips, B, "fv_trainer_forward")) < 0)
        return ret;
    if (!logits)
        return fv_error(FV_EINVAL, "fv_trainer_forward: NULL argument");
    forward(tr, clips, B);
    memcpy(logits, tr->logits, sizeof(float) * (size_t)B * tr->L);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* backward                                                                                              */

#define GRAD(ptr) (tr->grad + ((ptr) - tr->param))

/* g (Rx, D): gradient of the block's output on entry, of its input on return. */
static void block_bwd(FvTrainer *tr, int32_t l, int32_t B)
{
    const FvLayerWeights *W = &tr->m->w.layers[l];
    const LayerActs *a = &tr->la[l];
    const int32_t T = tr->T, P = tr->P, D = tr->D, I = tr->I;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT, S = 1 + P;
    const int64_t Rt = B * PT, Rs = B * T * S, Rx = B * tok;
    float *g = tr->g, *A = tr->bufa, *Bf = tr->bufb, *dqkv = tr->dqkv;

    /* MLP: x_out = y + fc2(gelu(fc1(ln2(y)))) */
    memcpy(tr->hbuf, a->h_pre, sizeof(float) * (size_t)(Rx * I));
    fv_gelu(tr->hbuf, Rx * I);
    linear_bwd(tr->dhbuf, 0, g, tr->hbuf, W->fc2_w, GRAD(W->fc2_w), GRAD(W->fc2_b), Rx, I, D);
    gelu_bwd(tr->dhbuf, a->h_pre, Rx * I);
    linear_bwd(A, 0, tr->dhbuf, a->m_ln, W->fc1_w, GRAD(W->fc1_w), GRAD(W->fc1_b), Rx, D, I);
    ln_bwd(tr, g, D, 1, A, D, a->y, D, a->m_mean, a->m_rstd, W->ln2_w, GRAD(W->ln2_w), GRAD(W->ln2_b), Rx, D);
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
    linear_bwd(Bf, 0, A, a->s_att, W->proj_w, GRAD(W->proj_w), GRAD(W->proj_b), Rs, D, D);
    attn_bwd(tr, &tr->splan[l], a->s_qkv, a->s_att, a->s_lse, Bf, dqkv, (int64_t)B * T);
    linear_bwd(A, 0, dqkv, a->s_ln, W->qkv_w, GRAD(W->qkv_w), W->qkv_b ? GRAD(W->qkv_b) : NULL, Rs, D, 3 * D);
    ln_bwd(tr, Bf, D, 0, A, D, a->s_seq, D, a->s_mean, a->s_rstd, W->ln1_w, GRAD(W->ln1_w), GRAD(W->ln1_b), Rs,
           D);
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
    linear_bwd(Bf, 0, A, a->t_prj, W->t_fc_w, GRAD(W->t_fc_w), GRAD(W->t_fc_b), Rt, D, D);
    linear_bwd(A, 0, Bf, a->t_att, W->t_proj_w, GRAD(W->t_proj_w), GRAD(W->t_proj_b), Rt, D, D);
    attn_bwd(tr, &tr->tplan[l], a->t_qkv, a->t_att, a->t_lse, A, dqkv, (int64_t)B * P);
    linear_bwd(Bf, 0, dqkv, a->t_ln, W->t_qkv_w, GRAD(W->t_qkv_w), W->t_qkv_b ? GRAD(W->t_qkv_b) : NULL, Rt, D,
               3 * D);
    for (int32_t b = 0; b < B; b++)
        ln_bwd(tr, g + (b * tok + 1) * D, D, 1, Bf + b * PT * D, D, a->xin + (b * tok + 1) * D, D,
               a->t_mean + b * PT, a->t_rstd + b * PT, W->t_ln_w, GRAD(W->t_ln_w), GRAD(W->t_ln_b), PT, D);
}

static void backward(FvTrainer *tr, int32_t B)
{
    const FvWeights *w = &tr->m->w;
    const int32_t T = tr->T, P = tr->P, D = tr->D;
    const int64_t PT = (int64_t)P * T, tok = 1 + PT;
    float *g = tr->g;

    memset(tr->grad, 0, sizeof(float) * tr->nparam);
    memset(g, 0, sizeof(float) * (size_t)(B * tok * D));
    /* head and final LayerNorm on the cls rows */
    linear_bwd(tr->bufa, 0, tr->dlogits, tr->f_ln, w->head_w, GRAD(w->head_w), GRAD(w->head_b), B, D, tr->L);
    ln_bwd(tr, g, tok * D, 0, tr->bufa, D, tr->xout, tok * D, tr->f_mean, tr->f_rstd, w->norm_w, GRAD(w->norm_w),
           GRAD(w->norm_b), B, D);
    for (int32_t l = tr->nlayers - 1; l >= 0; l--)
        block_bwd(tr, l, B);

    /* embeddings: x0 = [cls + pos[0]; conv + pos[1 + n] + time[t]] (resized by nearest neighbour) */
    float *A = tr->bufa;
    for (int32_t b = 0; b < B; b++)
        memcpy(A + b * PT * D, g + (b * tok + 1) * D, sizeof(float) * (size_t)(PT * D));
    linear_bwd(NULL, 0, A, tr->patches, w->patch_w, GRAD(w->patch_w), GRAD(w->patch_b), B * PT, tr->Cpp, D);
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
                float *pp = dpos + (int64_t)tr->pos_idx[1 + n] * D, *tp = dtime + (int64_t)tr->time_idx[t] * D;
                for (int32_t d = 0; d < D; d++) {
                    pp[d] += gr[d];
                    tp[d] += gr[d];
                }
            }
}

int fv_trainer_backward(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, float *loss,
                        float *logits)
{
    int ret;
    if ((ret = check_batch(tr, clips, B, "fv_trainer_backward")) < 0)
        return ret;
    fv_flush_denormals();
    if (!labels)
        return fv_error(FV_EINVAL, "fv_trainer_backward: NULL labels");
    for (int32_t b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= tr->L)
            return fv_error(FV_EINVAL, "fv_trainer_backward: label %d of clip %d outside 0..%d", labels[b], b,
                            tr->L - 1);
    forward(tr, clips, B);
    double l = fv_loss_ce_smooth(tr->logits, labels, B, tr->L, tr->s.label_smoothing, tr->dlogits, NULL);
    if (loss)
        *loss = (float)l;
    if (logits)
        memcpy(logits, tr->logits, sizeof(float) * (size_t)B * tr->L);
    backward(tr, B);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* lifetime and the optimisation step                                                                     */

void fv_train_default_settings(FvTrainSettings *s)
{
    memset(s, 0, sizeof(*s));
    s->max_batch = 8;
    s->lr = 5e-4f;
    s->min_lr = 1e-6f;
    s->weight_decay = 0.05f;
    s->beta1 = 0.9f;
    s->beta2 = 0.999f;
    s->eps = 1e-8f;
    s->label_smoothing = 0.1f;
    s->clip_norm = 1.0f;
}

static int check_settings(const FvTrainSettings *s, const FvModelConfig *c)
{
    const int32_t p = c->patch_size;
    if (s->max_batch < 1 || s->max_batch > 65536)
        return fv_error(FV_EINVAL, "fv_trainer_new: max_batch %d outside 1..65536", s->max_batch);
    if (s->T < 1 || s->H < p || s->W < p || s->H % p || s->W % p)
        return fv_error(FV_EINVAL, "fv_trainer_new: clip %dx%dx%d is not a positive multiple of patch %d", s->T,
                        s->H, s->W, p);
    if (!(s->lr >= 0.0f) || !(s->min_lr >= 0.0f) || !(s->weight_decay >= 0.0f) || !(s->beta1 >= 0.0f) ||
        !(s->beta1 < 1.0f) || !(s->beta2 >= 0.0f) || !(s->beta2 < 1.0f) || !(s->eps > 0.0f) ||
        !(s->label_smoothing >= 0.0f) || !(s->label_smoothing < 1.0f) || s->warmup_steps < 0 ||
        isnan(s->clip_norm))
        return fv_error(FV_EINVAL, "fv_trainer_new: bad optimizer settings");
    if (c->num_channels != 3)
        return fv_error(FV_EINVAL, "fv_trainer_new: %d input channels (3 expected)", c->num_channels);
    return 0;
}

void fv_trainer_close(FvTrainer **ptr)
{
    if (!ptr || !*ptr)
        return;
    FvTrainer *tr = *ptr;
    for (int32_t l = 0; tr->splan && l < tr->nlayers; l++)
        fv_attn_plan_free(&tr->splan[l]);
    for (int32_t l = 0; tr->tplan && l < tr->nlayers; l++)
        fv_attn_plan_free(&tr->tplan[l]);
    free(tr->splan);
    free(tr->tplan);
    for (int32_t i = 0; tr->tensors && i < tr->ntensors; i++)
        free((char *)tr->tensors[i].name);
    free(tr->tensors);
    free(tr->pos_idx);
    free(tr->time_idx);
    free(tr->la);
    fv_free(tr->arena);
    fv_free(tr->grad);
    fv_free(tr->adam_m);
    fv_free(tr->adam_v);
    free(tr);
    *ptr = NULL;
}

/* Carve the arena: pass 0 counts, pass 1 assigns. Every buffer 16-float aligned. */
static size_t carve(FvTrainer *tr, float *base, int32_t Bm)
{
    const int64_t T = tr->T, P = tr->P, D = tr->D, I = tr->I, H = tr->NH, S = 1 + P;
    const int64_t Rt = Bm * P * T, Rs = Bm * T * S, Rx = Bm * (1 + P * T);
    size_t off = 0;
#define TAKE(ptr, n)                                     \
    do {                                                 \
        if (base)                                        \
            (ptr) = base + off;                          \
        off += ALIGN16((size_t)(n));                     \
    } while (0)
    for (int32_t l = 0; l < tr->nlayers; l++) {
        LayerActs *a = &tr->la[l];
        TAKE(a->xin, Rx * D);
        TAKE(a->t_mean, Rt);
        TAKE(a->t_rstd, Rt);
        TAKE(a->t_ln, Rt * D);
        TAKE(a->t_qkv, Rt * 3 * D);
        TAKE(a->t_lse, Rt * H);
        TAKE(a->t_att, Rt * D);
        TAKE(a->t_prj, Rt * D);
        TAKE(a->s_seq, Rs * D);
        TAKE(a->s_mean, Rs);
        TAKE(a->s_rstd, Rs);
        TAKE(a->s_ln, Rs * D);
        TAKE(a->s_qkv, Rs * 3 * D);
        TAKE(a->s_lse, Rs * H);
        TAKE(a->s_att, Rs * D);
        TAKE(a->y, Rx * D);
        TAKE(a->m_mean, Rx);
        TAKE(a->m_rstd, Rx);
        TAKE(a->m_ln, Rx * D);
        TAKE(a->h_pre, Rx * I);
    }
    TAKE(tr->patches, Rt * tr->Cpp);
    TAKE(tr->xout, Rx * D);
    TAKE(tr->f_mean, Bm);
    TAKE(tr->f_rstd, Bm);
    TAKE(tr->f_ln, Bm * D);
    TAKE(tr->logits, Bm * tr->L);
    TAKE(tr->dlogits, Bm * tr->L);
    TAKE(tr->g, Rx * D);
    TAKE(tr->bufa, FV_MAX(Rs, Rx) * D);
    TAKE(tr->bufb, FV_MAX(Rs, Rx) * D);
    TAKE(tr->dqkv, Rs * 3 * D);
    TAKE(tr->hbuf, Rx * I);
    TAKE(tr->dhbuf, Rx * I);
    TAKE(tr->tscratch, tr->tscratch_stride * (size_t)tr->nthreads);
#undef TAKE
    return off;
}

int fv_trainer_new(FvTrainer **out, FvModel *m, const FvTrainSettings *s_in)
{
    int ret;
    if (!out || !m || !s_in)
        return fv_error(FV_EINVAL, "fv_trainer_new: NULL argument");
    *out = NULL;
    const FvModelConfig *c = &m->cfg;
    FvTrainSettings s = *s_in;
    if (s.T <= 0)
        s.T = c->num_frames;
    if (s.H <= 0)
        s.H = c->image_size;
    if (s.W <= 0)
        s.W = c->image_size;
    if ((ret = check_settings(&s, c)) < 0)
        return ret;
    FvTrainer *tr = calloc(1, sizeof(*tr));
    if (!tr)
        return fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
    tr->m = m;
    tr->s = s;
    tr->T = s.T;
    tr->H = s.H;
    tr->W = s.W;
    tr->Hp = s.H / c->patch_size;
    tr->Wp = s.W / c->patch_size;
    tr->P = tr->Hp * tr->Wp;
    tr->Cpp = c->num_channels * c->patch_size * c->patch_size;
    tr->D = c->hidden_size;
    tr->I = c->intermediate_size;
    tr->NH = c->num_heads;
    tr->hd = tr->D / tr->NH;
    tr->L = c->num_labels;
    tr->nlayers = c->num_layers;
    tr->nthreads = fv_num_threads();
    if (tr->nthreads < 1)
        tr->nthreads = 1;

    if ((ret = model_adopt_weights(m, &tr->tensors, &tr->ntensors, &tr->nparam)) < 0)
        goto fail;
    model_drop_cache(m);
    tr->param = m->owned;
    tr->grad = fv_calloc(tr->nparam, sizeof(float));
    tr->adam_m = fv_calloc(tr->nparam, sizeof(float));
    tr->adam_v = fv_calloc(tr->nparam, sizeof(float));
    tr->splan = calloc((size_t)tr->nlayers, sizeof(FvAttnPlan));
    tr->tplan = calloc((size_t)tr->nlayers, sizeof(FvAttnPlan));
    tr->la = calloc((size_t)tr->nlayers, sizeof(LayerActs));
    tr->pos_idx = calloc(1 + (size_t)tr->P, sizeof(int32_t));
    tr->time_idx = calloc((size_t)tr->T, sizeof(int32_t));
    if (!tr->grad || !tr->adam_m || !tr->adam_v || !tr->splan || !tr->tplan || !tr->la || !tr->pos_idx ||
        !tr->time_idx) {
        ret = fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
        goto fail;
    }
    for (int32_t l = 0; l < tr->nlayers; l++)
        if ((ret = fv_attn_plan_init(&tr->splan[l], &c->spatial, l, 1 + tr->P, 1, tr->NH, tr->hd)) < 0 ||
            (ret = fv_attn_plan_init(&tr->tplan[l], &c->temporal, l, tr->T, 0, tr->NH, tr->hd)) < 0)
            goto fail;
    const int32_t g0 = c->image_size / c->patch_size;
    tr->pos_idx[0] = 0;
    for (int32_t y = 0; y < tr->Hp; y++)
        for (int32_t x = 0; x < tr->Wp; x++)
            tr->pos_idx[1 + y * tr->Wp + x] = 1 + nearest_src(y, g0, tr->Hp) * g0 + nearest_src(x, g0, tr->Wp);
    for (int32_t t = 0; t < tr->T; t++)
        tr->time_idx[t] = nearest_src(t, c->num_frames, tr->T);

    /* per-thread scratch: dense heads hold two (N, N) score matrices; sparse heads only O(N + hd) */
    const size_t Nmax = (size_t)FV_MAX(1 + tr->P, tr->T);
    size_t dense = 0;
    if (c->spatial.kind == FV_ATTN_DENSE)
        dense = FV_MAX(dense, 2 * (size_t)(1 + tr->P) * (size_t)(1 + tr->P));
    if (c->temporal.kind == FV_ATTN_DENSE)
        dense = FV_MAX(dense, 2 * (size_t)tr->T * (size_t)tr->T); /* whatever path fv_train_dense_gemm_min picks */
    tr->tscratch_stride = ALIGN16(FV_MAX(dense, 3 * ALIGN16(Nmax) + ALIGN16(tr->hd)) + 2 * (size_t)tr->D + 16);
    size_t total = carve(tr, NULL, s.max_batch);
    tr->arena = fv_malloc(sizeof(float) * total);
    if (!tr->arena) {
        ret = fv_error(FV_ENOMEM, "fv_trainer_new: out of memory for %.1f MB of activations (batch %d)",
                       total * 4.0 / 1e6, s.max_batch);
        goto fail;
    }
    carve(tr, tr->arena, s.max_batch);
    *out = tr;
    return 0;
fail:
    fv_trainer_close(&tr);
    return ret;
}

float fv_trainer_lr(const FvTrainer *tr, int64_t step)
{
    return fv_train_lr_schedule(&tr->s, step);
}

size_t fv_trainer_num_params(const FvTrainer *tr)
{
    return tr->nparam;
}

float *fv_trainer_params(FvTrainer *tr)
{
    return tr->param;
}

float *fv_trainer_grads(FvTrainer *tr)
{
    return tr->grad;
}

int32_t fv_trainer_num_tensors(const FvTrainer *tr)
{
    return tr->ntensors;
}

const FvTrainTensor *fv_trainer_tensor(const FvTrainer *tr, int32_t i)
{
    return i >= 0 && i < tr->ntensors ? &tr->tensors[i] : NULL;
}

void fv_trainer_optim_state(FvTrainer *tr, FvOptimState *st)
{
    st->m = tr->adam_m;
    st->v = tr->adam_v;
    st->n = tr->nparam;
    st->step = tr->step;
}

void fv_trainer_set_step(FvTrainer *tr, int64_t step)
{
    tr->step = step < 0 ? 0 : step;
}

int fv_trainer_step(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, FvStepStats *out)
{
    const double t0 = fv_time_ms();
    float loss = 0.0f;
    int ret;
    if ((ret = fv_trainer_backward(tr, clips, labels, B, &loss, NULL)) < 0)
        return ret;
    int32_t correct = 0;
    fv_loss_ce_smooth(tr->logits, labels, B, tr->L, tr->s.label_smoothing, NULL, &correct);
    const double norm = fv_grad_clip(tr->grad, tr->nparam, tr->s.clip_norm);
    const float lr = fv_trainer_lr(tr, tr->step);
    if (out) {
        out->loss = loss;
        out->grad_norm = (float)norm;
        out->lr = lr;
        out->correct = correct;
        out->step = tr->step;
        out->ms = 0.0;
    }
    if (!isfinite(loss) || !isfinite(norm))
        return fv_error(FV_ERANGE, "fv_trainer_step: non-finite loss %g or gradient norm %g at step %lld; update "
                        "skipped", (double)loss, norm, (long long)tr->step);
    tr->step++;
#pragma omp parallel for schedule(dynamic, 1) num_threads(tr->nthreads)
    for (int32_t i = 0; i < tr->ntensors; i++) {
        const FvTrainTensor *t = &tr->tensors[i];
        fv_adamw_update(tr->param + t->offset, tr->grad + t->offset, tr->adam_m + t->offset,
                        tr->adam_v + t->offset, t->count, tr->step, lr, &tr->s, t->decay);
    }
    model_drop_cache(tr->m);
    if (out) {
        out->step = tr->step;
        out->ms = fv_time_ms() - t0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* optimizer state checkpoints: flat F32 tensors                                                          */

int fv_trainer_save_state(const FvTrainer *tr, const char *path)
{
    if (!tr || !path)
        return fv_error(FV_EINVAL, "fv_trainer_save_state: NULL argument");
    FvOptimState st;
    fv_trainer_optim_state((FvTrainer *)tr, &st); /* read only */
    FvStWriteTensor t[2];
    memset(t, 0, sizeof(t));
    t[0].name = "adam.m";
    t[1].name = "adam.v";
    t[0].ndim = t[1].ndim = 1;
    t[0].shape[0] = t[1].shape[0] = (int64_t)st.n;
    t[0].data = st.m;
    t[1].data = st.v;
    char step[32], np[32];
    snprintf(step, sizeof(step), "%lld", (long long)st.step);
    snprintf(np, sizeof(np), "%zu", st.n);
    const char *keys[] = { "format", "step", "num_params" };
    const char *vals[] = { "fibvid-optim-adamw", step, np };
    return fv_st_write(path, t, 2, keys, vals, 3);
}

int fv_trainer_load_state(FvTrainer *tr, const char *path)
{
    FvSafetensors *f = NULL;
    float *mv = NULL;
    int ret;
    if (!tr || !path)
        return fv_error(FV_EINVAL, "fv_trainer_load_state: NULL argument");
    if ((ret = fv_st_open(&f, path)) < 0)
        return ret;
    FvOptimState st;
    fv_trainer_optim_state(tr, &st);
    const char *fmt = fv_st_metadata(f, "format"), *step = fv_st_metadata(f, "step");
    char *end = NULL;
    long long stepv = step ? strtoll(step, &end, 10) : -1;
    if (!fmt || strcmp(fmt, "fibvid-optim-adamw") || !step || !end || *end || stepv < 0) {
        ret = fv_error(FV_EINVAL, "%s: not a fibvid optimizer state (format/step metadata)", path);
        goto done;
    }
    const int64_t shape[1] = { (int64_t)st.n };
    const float *src = NULL;
    /* read both before touching the trainer, so a bad file leaves the state as it was */
    if (!(mv = fv_malloc(sizeof(float) * 2 * (st.n ? st.n : 1)))) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((ret = fv_st_get_f32(f, "adam.m", 1, shape, mv, &src)) < 0)
        goto done;
    if (src != mv)
        memcpy(mv, src, sizeof(float) * st.n);
    if ((ret = fv_st_get_f32(f, "adam.v", 1, shape, mv + st.n, &src)) < 0)
        goto done;
    if (src != mv + st.n)
        memcpy(mv + st.n, src, sizeof(float) * st.n);
    memcpy(st.m, mv, sizeof(float) * st.n);
    memcpy(st.v, mv + st.n, sizeof(float) * st.n);
    fv_trainer_set_step(tr, (int64_t)stepv);
done:
    fv_free(mv);
    fv_st_close(&f);
    return ret;
}
