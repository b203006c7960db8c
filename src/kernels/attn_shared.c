/* PSViT attention sharing (fibvid's reconstruction, SPEC 4.3): a softmax attention (dense or fib) that a later
 * layer shares keeps its post-softmax weights W; the sharing layer computes only v and applies W to it. The
 * weights are kept as the kind attends, never densified: dense as (N, N) per head, a masked kind as the
 * weights of each query's keys (the kind's keys list) plus, under `zero` semantics, the one weight every
 * masked key of the row shares (its score is 0). Forward, apply, and both backwards, batched over (sequence,
 * head) tasks like fv_attn_forward; dense rows longer than SHORT_N go through the GEMM table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "util/util.h"

#define SHORT_N 32

void fv_attn_share_free(FvAttnShare *s)
{
    if (!s)
        return;
    free(s->hoff);
    free(s->rowptr);
    free(s->keys);
    memset(s, 0, sizeof(*s));
}

int fv_attn_share_init(FvAttnShare *s, const FvAttnPlan *p)
{
    memset(s, 0, sizeof(*s));
    if (!p->dsp->keys)
        return fv_error(FV_EINVAL, "attention sharing: %s attention has no weights to share", p->dsp->name);
    const int32_t N = p->N, H = p->H;
    s->p = p;
    s->dense = !p->dsp->masked;
    s->zero = p->dsp->masked && p->s.semantics == FV_FIB_ZERO;
    s->hoff = malloc(sizeof(int64_t) * (size_t)(H + 1));
    if (!s->hoff)
        return fv_error(FV_ENOMEM, "attention sharing: out of memory");
    if (s->dense) {
        for (int32_t h = 0; h <= H; h++)
            s->hoff[h] = (int64_t)h * N * N;
        s->per_seq = s->hoff[H];
        return 0;
    }
    /* the keys of every row of every head (the same for every sequence), as row pointers into one list */
    s->rowptr = malloc(sizeof(int64_t) * (size_t)H * (N + 1));
    int32_t *tmp = malloc(sizeof(int32_t) * (size_t)N);
    int64_t total = 0;
    if (!s->rowptr || !tmp) {
        free(tmp);
        fv_attn_share_free(s);
        return fv_error(FV_ENOMEM, "attention sharing: out of memory");
    }
    for (int32_t h = 0; h < H; h++)
        for (int32_t i = 0; i < N; i++) {
            s->rowptr[(size_t)h * (N + 1) + i] = total;
            total += p->dsp->keys(p, h, i, tmp);
            s->rowptr[(size_t)h * (N + 1) + i + 1] = total;
        }
    if (!(s->keys = malloc(sizeof(int32_t) * (size_t)FV_MAX(total, 1)))) {
        free(tmp);
        fv_attn_share_free(s);
        return fv_error(FV_ENOMEM, "attention sharing: out of memory");
    }
    for (int32_t h = 0; h < H; h++)
        for (int32_t i = 0; i < N; i++)
            p->dsp->keys(p, h, i, s->keys + s->rowptr[(size_t)h * (N + 1) + i]);
    /* per sequence and head: a weight per (query, key) pair, then (zero) one masked weight per query */
    int64_t off = 0;
    for (int32_t h = 0; h < H; h++) {
        s->hoff[h] = off;
        const int64_t pairs = s->rowptr[(size_t)h * (N + 1) + N] - s->rowptr[(size_t)h * (N + 1)];
        off += pairs + (s->zero ? N : 0);
    }
    s->hoff[H] = off;
    s->per_seq = off;
    free(tmp);
    return 0;
}

size_t fv_attn_share_floats(const FvAttnShare *s)
{
    return (size_t)s->per_seq;
}

/* One (sequence, head) task's pointers. */
typedef struct Task {
    const float *q, *k, *v; /* rows @ld / @ldv apart */
    int64_t ld, ldv;
    float *W, *dW;          /* the head's weights (and their gradient) */
    const int64_t *rp;      /* masked kinds: row pointers (N + 1), relative to the head's first pair */
    const int32_t *keys;    /* masked kinds: the keys, indexed by rp */
} Task;

static Task task_of(const FvAttnShare *s, int64_t b, int32_t h, const float *qkv, const float *v, int64_t ldv,
                    float *W, float *dW)
{
    const FvAttnPlan *p = s->p;
    const int64_t N = p->N, D = (int64_t)p->H * p->hd;
    Task t = { .ldv = ldv };
    if (qkv) {
        t.q = qkv + b * N * 3 * D + (int64_t)h * p->hd;
        t.k = t.q + D;
        t.ld = 3 * D;
    }
    t.v = v + b * N * ldv + (int64_t)h * p->hd;
    t.W = W ? W + b * s->per_seq + s->hoff[h] : NULL;
    t.dW = dW ? dW + b * s->per_seq + s->hoff[h] : NULL;
    if (!s->dense) {
        t.rp = s->rowptr + (size_t)h * (N + 1);
        t.keys = s->keys;
    }
    return t;
}

static float dot(const float *a, const float *b, int32_t n)
{
    float d = 0.0f;
#pragma omp simd reduction(+ : d)
    for (int32_t c = 0; c < n; c++)
        d += a[c] * b[c];
    return d;
}

/* ---- the source: weights ---- */

static void weights_task(const FvAttnShare *s, const Task *t)
{
    const FvAttnPlan *p = s->p;
    const int32_t N = p->N, hd = p->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    if (s->dense) {
        if (N > SHORT_N)
            fv_gemm()->sgemm_nt(N, N, hd, t->q, (int32_t)t->ld, t->k, (int32_t)t->ld, 0.0f, t->W, N);
        for (int32_t i = 0; i < N; i++) {
            float *w = t->W + (size_t)i * N, mx = -INFINITY, z = 0.0f;
            for (int32_t j = 0; j < N; j++) {
                w[j] = (N > SHORT_N ? w[j] : dot(t->q + i * t->ld, t->k + j * t->ld, hd)) * scale;
                mx = w[j] > mx ? w[j] : mx;
            }
            for (int32_t j = 0; j < N; j++)
                z += (w[j] = expf(w[j] - mx));
            const float inv = 1.0f / z;
            for (int32_t j = 0; j < N; j++)
                w[j] *= inv;
        }
        return;
    }
    const int64_t base = t->rp[0];
    for (int32_t i = 0; i < N; i++) {
        const int64_t r0 = t->rp[i] - base, r1 = t->rp[i + 1] - base;
        const int32_t *key = t->keys + t->rp[i];
        const int32_t masked = s->zero ? N - (int32_t)(r1 - r0) : 0;
        float *w = t->W + r0, mx = masked ? 0.0f : -INFINITY, z = 0.0f;
        for (int64_t e = 0; e < r1 - r0; e++) {
            w[e] = dot(t->q + i * t->ld, t->k + key[e] * t->ld, hd) * scale;
            mx = w[e] > mx ? w[e] : mx;
        }
        for (int64_t e = 0; e < r1 - r0; e++)
            z += (w[e] = expf(w[e] - mx));
        const float w0 = masked ? expf(-mx) : 0.0f;
        z += (float)masked * w0;
        const float inv = 1.0f / z;
        for (int64_t e = 0; e < r1 - r0; e++)
            w[e] *= inv;
        if (s->zero)
            t->W[(t->rp[N] - base) + i] = w0 * inv;
    }
}

/* ---- applying weights: out = W v ---- */

/* Sum of v over the sequence (zero semantics: what the masked keys share), into @vs (hd). */
static void vsum(const Task *t, int32_t N, int32_t hd, float *vs)
{
    memset(vs, 0, sizeof(float) * (size_t)hd);
    for (int32_t j = 0; j < N; j++) {
        const float *vr = t->v + j * t->ldv;
#pragma omp simd
        for (int32_t c = 0; c < hd; c++)
            vs[c] += vr[c];
    }
}

static void apply_task(const FvAttnShare *s, const Task *t, float *out, int64_t ldo, float *scratch)
{
    const FvAttnPlan *p = s->p;
    const int32_t N = p->N, hd = p->hd;
    if (s->dense && N > SHORT_N) {
        fv_gemm()->sgemm_nn(N, hd, N, t->W, N, t->v, (int32_t)t->ldv, 0.0f, out, (int32_t)ldo);
        return;
    }
    float *vs = scratch;
    if (s->zero)
        vsum(t, N, hd, vs);
    const int64_t base = s->dense ? 0 : t->rp[0];
    for (int32_t i = 0; i < N; i++) {
        float *o = out + i * ldo;
        memset(o, 0, sizeof(float) * (size_t)hd);
        const int64_t r0 = s->dense ? (int64_t)i * N : t->rp[i] - base;
        const int64_t r1 = s->dense ? r0 + N : t->rp[i + 1] - base;
        const int32_t *key = s->dense ? NULL : t->keys + t->rp[i];
        for (int64_t e = r0; e < r1; e++) {
            const float w = t->W[e], *vr = t->v + (key ? key[e - r0] : (int32_t)(e - r0)) * t->ldv;
#pragma omp simd
            for (int32_t c = 0; c < hd; c++)
                o[c] += w * vr[c];
        }
        if (s->zero) { /* w0 (sum of v - sum of the keys' v) */
            const float w0 = t->W[(t->rp[N] - base) + i];
            for (int64_t e = r0; e < r1; e++) {
                const float *vr = t->v + key[e - r0] * t->ldv;
#pragma omp simd
                for (int32_t c = 0; c < hd; c++)
                    o[c] -= w0 * vr[c];
            }
#pragma omp simd
            for (int32_t c = 0; c < hd; c++)
                o[c] += w0 * vs[c];
        }
    }
}

/* dv += W^T dout, dW += dout v^T (on W's entries; zero: the masked weight's gradient is dout_i . (sum of v
 * - sum of the keys' v)). */
static void apply_backward_task(const FvAttnShare *s, const Task *t, const float *dout, int64_t ldo, float *dv,
                                float *scratch)
{
    const FvAttnPlan *p = s->p;
    const int32_t N = p->N, hd = p->hd;
    if (s->dense && N > SHORT_N) {
        const FvGemmDsp *g = fv_gemm();
        g->sgemm_tn(N, hd, N, t->W, N, dout, (int32_t)ldo, 1.0f, dv, (int32_t)t->ldv);
        g->sgemm_nt(N, N, hd, dout, (int32_t)ldo, t->v, (int32_t)t->ldv, 1.0f, t->dW, N);
        return;
    }
    float *vs = scratch, *g0 = scratch + FV_ALIGN16(hd);
    if (s->zero) {
        vsum(t, N, hd, vs);
        memset(g0, 0, sizeof(float) * (size_t)hd);
    }
    const int64_t base = s->dense ? 0 : t->rp[0];
    for (int32_t i = 0; i < N; i++) {
        const float *gi = dout + i * ldo;
        const int64_t r0 = s->dense ? (int64_t)i * N : t->rp[i] - base;
        const int64_t r1 = s->dense ? r0 + N : t->rp[i + 1] - base;
        const int32_t *key = s->dense ? NULL : t->keys + t->rp[i];
        const float w0 = s->zero ? t->W[(t->rp[N] - base) + i] : 0.0f;
        float dw0 = 0.0f;
        for (int64_t e = r0; e < r1; e++) {
            const int32_t j = key ? key[e - r0] : (int32_t)(e - r0);
            const float *vr = t->v + j * t->ldv;
            float *dvr = dv + j * t->ldv;
            const float w = t->W[e] - w0; /* zero: the key's own weight, less the masked one added to all below */
            t->dW[e] += dot(gi, vr, hd);
            if (s->zero)
                dw0 -= dot(gi, vr, hd);
#pragma omp simd
            for (int32_t c = 0; c < hd; c++)
                dvr[c] += w * gi[c];
        }
        if (s->zero) {
            t->dW[(t->rp[N] - base) + i] += dw0 + dot(gi, vs, hd);
#pragma omp simd
            for (int32_t c = 0; c < hd; c++)
                g0[c] += w0 * gi[c];
        }
    }
    if (s->zero) /* every key of the sequence receives the masked weight's share */
        for (int32_t j = 0; j < N; j++) {
            float *dvr = dv + j * t->ldv;
#pragma omp simd
            for (int32_t c = 0; c < hd; c++)
                dvr[c] += g0[c];
        }
}

/* ---- the source's softmax backward: dW -> dq, dk ---- */

static void softmax_backward_task(const FvAttnShare *s, const Task *t, float *dq, float *dk, float *scratch)
{
    const FvAttnPlan *p = s->p;
    const int32_t N = p->N, hd = p->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    (void)scratch;
    if (s->dense) {
        /* dS = W * (dW - rowsum(W * dW)), in place in dW; dq += dS k, dk += dS^T q (times the scale) */
        for (int32_t i = 0; i < N; i++) {
            const float *w = t->W + (size_t)i * N;
            float *d = t->dW + (size_t)i * N;
            const float r = dot(w, d, N);
            for (int32_t j = 0; j < N; j++)
                d[j] = w[j] * (d[j] - r) * scale;
        }
        if (N > SHORT_N) {
            const FvGemmDsp *g = fv_gemm();
            g->sgemm_nn(N, hd, N, t->dW, N, t->k, (int32_t)t->ld, 1.0f, dq, (int32_t)t->ld);
            g->sgemm_tn(N, hd, N, t->dW, N, t->q, (int32_t)t->ld, 1.0f, dk, (int32_t)t->ld);
            return;
        }
        for (int32_t i = 0; i < N; i++)
            for (int32_t j = 0; j < N; j++) {
                const float d = t->dW[(size_t)i * N + j];
                const float *kj = t->k + j * t->ld, *qi = t->q + i * t->ld;
                float *dqi = dq + i * t->ld, *dkj = dk + j * t->ld;
#pragma omp simd
                for (int32_t c = 0; c < hd; c++) {
                    dqi[c] += d * kj[c];
                    dkj[c] += d * qi[c];
                }
            }
        return;
    }
    const int64_t base = t->rp[0];
    for (int32_t i = 0; i < N; i++) {
        const int64_t r0 = t->rp[i] - base, r1 = t->rp[i + 1] - base;
        const int32_t *key = t->keys + t->rp[i];
        const int32_t masked = s->zero ? N - (int32_t)(r1 - r0) : 0;
        float r = 0.0f;
        for (int64_t e = r0; e < r1; e++)
            r += t->W[e] * t->dW[e];
        if (masked) /* the masked keys: weight w0 each, their gradients summed in the masked slot */
            r += t->W[(t->rp[N] - base) + i] * t->dW[(t->rp[N] - base) + i];
        const float *qi = t->q + i * t->ld;
        float *dqi = dq + i * t->ld;
        for (int64_t e = r0; e < r1; e++) {
            const float d = t->W[e] * (t->dW[e] - r) * scale; /* the masked scores are constants: no gradient */
            const float *kj = t->k + key[e - r0] * t->ld;
            float *dkj = dk + key[e - r0] * t->ld;
#pragma omp simd
            for (int32_t c = 0; c < hd; c++) {
                dqi[c] += d * kj[c];
                dkj[c] += d * qi[c];
            }
        }
    }
}

/* ---- batches ---- */

size_t fv_attn_share_scratch_floats(const FvAttnShare *s)
{
    return 2 * FV_ALIGN16((size_t)s->p->hd);
}

int fv_attn_share_forward(const FvAttnShare *s, const float *qkv, float *out, float *W, int64_t B)
{
    const FvAttnPlan *p = s->p;
    const int32_t H = p->H;
    const int64_t D = (int64_t)H * p->hd, stride = (int64_t)fv_attn_share_scratch_floats(s);
    float *scratch = fv_malloc(sizeof(float) * (size_t)stride * (size_t)omp_get_max_threads());
    if (!scratch)
        return fv_error(FV_ENOMEM, "attention sharing: out of memory");
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t task = 0; task < B * H; task++) {
        const int64_t b = task / H;
        const int32_t h = (int32_t)(task % H);
        const Task t = task_of(s, b, h, qkv, qkv + 2 * D, 3 * D, W, NULL);
        weights_task(s, &t);
        apply_task(s, &t, out + b * p->N * D + (int64_t)h * p->hd, D, scratch + stride * omp_get_thread_num());
    }
    fv_free(scratch);
    return 0;
}

int fv_attn_share_apply(const FvAttnShare *s, const float *W, const float *v, int64_t ldv, float *out, int64_t B)
{
    const FvAttnPlan *p = s->p;
    const int32_t H = p->H;
    const int64_t D = (int64_t)H * p->hd, stride = (int64_t)fv_attn_share_scratch_floats(s);
    float *scratch = fv_malloc(sizeof(float) * (size_t)stride * (size_t)omp_get_max_threads());
    if (!scratch)
        return fv_error(FV_ENOMEM, "attention sharing: out of memory");
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t task = 0; task < B * H; task++) {
        const int64_t b = task / H;
        const int32_t h = (int32_t)(task % H);
        const Task t = task_of(s, b, h, NULL, v, ldv, (float *)W, NULL);
        apply_task(s, &t, out + b * p->N * D + (int64_t)h * p->hd, D, scratch + stride * omp_get_thread_num());
    }
    fv_free(scratch);
    return 0;
}

int fv_attn_share_apply_backward(const FvAttnShare *s, const float *W, const float *v, int64_t ldv,
                                 const float *dout, float *dv, float *dW, int64_t B)
{
    const FvAttnPlan *p = s->p;
    const int32_t H = p->H;
    const int64_t D = (int64_t)H * p->hd, stride = (int64_t)fv_attn_share_scratch_floats(s);
    float *scratch = fv_malloc(sizeof(float) * (size_t)stride * (size_t)omp_get_max_threads());
    if (!scratch)
        return fv_error(FV_ENOMEM, "attention sharing: out of memory");
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t task = 0; task < B * H; task++) {
        const int64_t b = task / H;
        const int32_t h = (int32_t)(task % H);
        const Task t = task_of(s, b, h, NULL, v, ldv, (float *)W, dW);
        apply_backward_task(s, &t, dout + b * p->N * D + (int64_t)h * p->hd, D,
                            dv + b * p->N * ldv + (int64_t)h * p->hd, scratch + stride * omp_get_thread_num());
    }
    fv_free(scratch);
    return 0;
}

int fv_attn_share_backward(const FvAttnShare *s, const float *qkv, const float *W, const float *dout, float *dW,
                           float *dqkv, int64_t B)
{
    const FvAttnPlan *p = s->p;
    const int32_t H = p->H;
    const int64_t D = (int64_t)H * p->hd, stride = (int64_t)fv_attn_share_scratch_floats(s);
    float *scratch = fv_malloc(sizeof(float) * (size_t)stride * (size_t)omp_get_max_threads());
    if (!scratch)
        return fv_error(FV_ENOMEM, "attention sharing: out of memory");
    memset(dqkv, 0, sizeof(float) * (size_t)(B * p->N * 3 * D));
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t task = 0; task < B * H; task++) {
        const int64_t b = task / H;
        const int32_t h = (int32_t)(task % H);
        const Task t = task_of(s, b, h, qkv, qkv + 2 * D, 3 * D, (float *)W, dW);
        float *sc = scratch + stride * omp_get_thread_num();
        float *dq = dqkv + b * p->N * 3 * D + (int64_t)h * p->hd;
        apply_backward_task(s, &t, dout + b * p->N * D + (int64_t)h * p->hd, D, dq + 2 * D, sc);
        softmax_backward_task(s, &t, dq, dq + D, sc);
    }
    fv_free(scratch);
    return 0;
}
