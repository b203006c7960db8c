/* Fibottention sparse attention kernels for one (sequence, head): each patch query visits only the keys its
 * head's offsets reach (each key once), with the masked keys either left out of the softmax (exclude) or
 * kept at logit 0 as the reference code does (zero), the latter through the sum of all V rows.
 *
 * The head's Q, K and V rows are first copied into contiguous scratch (qkv rows are 3*H*hd floats apart, one
 * page each). Scores go into one row per diagonal (key = query + signed offset) so that the softmax runs
 * with unit stride over queries; the weighted V sum then runs over head_dim per query. Work:
 * O(|mask| * hd) plus O(N * hd) for the copies, the cls row and V's sum. */
#include <math.h>
#include <string.h>

#include "kernels/attn_kind.h"
#include "kernels/fibottention.h"
#include "util/util.h"

/* -std=c11 turns off FMA contraction; ask for it where the hardware has it (fmaf vectorises then). */
#ifdef __FMA__
#define FMA(a, b, c) fmaf((a), (b), (c))
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#endif

#define ALIGN16(x) (((x) + 15) & ~(size_t)15)

/* Rows of 16 floats as GCC/Clang vector values, so a head's query and accumulator live in registers.
 * (Plain loops over a constant head_dim get fully unrolled, and the loop over keys is then vectorised
 * with gathers.) Head sizes that are not a multiple of 16 take plain loops. */
#if defined(__GNUC__) && !defined(__clang__)
/* without AVX-512, GCC notes that 64-byte vector arguments changed ABI; these helpers are static and inlined */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
#define NV_MAX 8 /* head_dim up to 128 in registers */

static inline v16f load16(const float *p)
{
    v16f x;
    memcpy(&x, p, sizeof(x));
    return x;
}

static inline void store16(float *p, const v16f *x)
{
    memcpy(p, x, sizeof(*x));
}

static inline float hsum16(const v16f *x)
{
    v8f a, b;
    memcpy(&a, x, sizeof(a));
    memcpy(&b, (const char *)x + sizeof(a), sizeof(b));
    a += b;
    v4f c, d;
    memcpy(&c, &a, sizeof(c));
    memcpy(&d, (const char *)&a + sizeof(c), sizeof(d));
    c += d;
    return (c[0] + c[2]) + (c[1] + c[3]);
}

/* exp for x <= 0 (softmax arguments after subtracting the row max), branch-free so loops vectorise:
 * Cephes' expf polynomial after reduction by ln 2, ~1 ulp. Arguments below -87 give e^-87, not 0, which
 * is negligible next to the row maximum's e^0 = 1. */
static inline float exp_neg(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 0.0f ? 0.0f : x;
    const float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln 2) */
    float r = FMA(fn, -0.693359375f, x);
    r = FMA(fn, 2.12194440e-4f, r);
    float y = 1.9875691500e-4f;
    y = FMA(y, r, 1.3981999507e-3f);
    y = FMA(y, r, 8.3334519073e-3f);
    y = FMA(y, r, 4.1665795894e-2f);
    y = FMA(y, r, 1.6666665459e-1f);
    y = FMA(y, r, 5.0000001201e-1f);
    y = FMA(y, r * r, r) + 1.0f;
    const int32_t bits = ((int32_t)fn + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof(s));
    return y * s;
}

/* Diagonals visited: signed offsets (-o_max .. -o_1, 0, o_1 .. o_max), ascending. */
static int32_t signed_offsets(const FvAttnPlan *p, int32_t h, int32_t n, int32_t *so)
{
    const int32_t *off = p->off + (size_t)h * p->max_off;
    const int32_t cnt = p->noff[h];
    int32_t D = 0;
    for (int32_t i = cnt - 1; i >= 0; i--)
        if (off[i] > 0 && off[i] < n)
            so[D++] = -off[i];
    for (int32_t i = 0; i < cnt; i++)
        if (off[i] == 0) {
            so[D++] = 0;
            break;
        }
    for (int32_t i = 0; i < cnt; i++)
        if (off[i] > 0 && off[i] < n)
            so[D++] = off[i];
    return D;
}

/* q . k over head_dim (@nv chunks of 16 when > 0, else @hd plain) with q given as registers @qv. */
static inline __attribute__((always_inline)) float
dot_q(const int32_t nv, int32_t hd, const v16f *qv, const float *qs, const float *k)
{
    if (nv > 0) {
        v16f acc = qv[0] * load16(k);
        for (int32_t t = 1; t < nv; t++)
            acc += qv[t] * load16(k + 16 * t);
        return hsum16(&acc);
    }
    float s = 0.0f;
    for (int32_t d = 0; d < hd; d++)
        s = FMA(qs[d], k[d], s);
    return s;
}

/* Statistics of the patch queries from the kernel's softmax state: S[r][j] + e0[j] is the unnormalised
 * weight of diagonal r's key, scls[j] + e0[j] the cls key's, e0[j] each masked key's (zero semantics; 0 for
 * exclude), z[j] the denominator. Entropy counts the masked keys' shared weight; its normaliser is log of
 * the keys with non-zero weight: N under zero semantics, the attended keys under exclude. */
static void fib_patch_stats(const FvAttnPlan *p, const int32_t *so, int32_t D, const float *S, size_t np,
                            const float *scls, const float *e0, const float *z, const FvAttnStats *st, int64_t task)
{
    const int32_t c = p->has_cls ? 1 : 0, N = p->N, n = N - c;
    const int32_t zero = p->s.semantics == FV_FIB_ZERO;
    const int32_t Wp = st->Wp, Hp = st->Hp, tw = 2 * Wp - 1;
    double ent = 0.0, entn = 0.0, dist = 0.0;
    int32_t rlo = D, rhi = D;
    for (int32_t j = 0; j < n; j++) {
        while (rlo > 0 && so[rlo - 1] >= -j)
            rlo--;
        while (rhi > 0 && so[rhi - 1] >= n - j)
            rhi--;
        const float inv = 1.0f / z[j], w0 = e0[j] * inv;
        const int32_t att = rhi - rlo, unatt = n - att; /* masked patch keys (the cls key never is) */
        float e = c ? fv_attn_plogp((scls[j] + e0[j]) * inv) : 0.0f;
        e += (float)unatt * fv_attn_plogp(w0);
        float ws = (float)unatt * w0, ds = 0.0f, dsa = 0.0f;
        const int32_t jy = Wp ? j / Wp : 0, jx = Wp ? j % Wp : 0;
        for (int32_t r = rlo; r < rhi; r++) {
            const float w = (S[(size_t)r * np + j] + e0[j]) * inv;
            e += fv_attn_plogp(w);
            const int32_t kk = j + so[r];
            const float d = st->dtab ? st->dtab[(int64_t)(kk / Wp - jy + Hp - 1) * tw + (kk % Wp - jx + Wp - 1)]
                                     : (float)(so[r] < 0 ? -so[r] : so[r]);
            ws += w;
            ds += w * d;
            dsa += d;
        }
        ds += w0 * (st->dall[j] - dsa); /* the masked keys at their shared weight */
        const int32_t K = zero ? N : c + att;
        ent += e;
        entn += K > 1 ? e / logf((float)K) : 0.0f;
        dist += ws > 0.0f ? ds / ws : 0.0f;
    }
    st->ent[task] += ent;
    st->ent_norm[task] += entn;
    st->dist[task] += dist;
}

/* The cls query: unnormalised weights @crow (N) over every key, times @inv. */
static void fib_cls_stats(const float *crow, int32_t N, float inv, const FvAttnStats *st, int64_t task)
{
    float e = 0.0f;
    for (int32_t t = 0; t < N; t++)
        e += fv_attn_plogp(crow[t] * inv);
    st->ent[task] += e;
    st->ent_norm[task] += N > 1 ? e / logf((float)N) : 0.0f;
    if (st->cls)
        for (int32_t t = 1; t < N; t++)
            st->cls[task * (N - 1) + t - 1] = crow[t] * inv;
}

/* The whole head; @nv (head_dim / 16, or 0 for the plain loops) is a constant after inlining, and so is @st
 * (NULL: no statistics, the plain kernel). */
static inline __attribute__((always_inline)) void
fib_head(const int32_t nv, const FvAttnPlan *p, int32_t h, const float *q, const float *k, const float *v,
         int64_t ld, float *out, int64_t ldo, float *lse, int64_t ldl, float *scratch, const FvAttnStats *st,
         int64_t task)
{
    const int32_t c = p->has_cls ? 1 : 0, N = p->N, n = N - c, hd = p->hd;
    const int32_t zero = p->s.semantics == FV_FIB_ZERO;
    const size_t np = ALIGN16((size_t)n);
    const size_t Dmax = 2 * (size_t)p->max_off + 2;
    const float scale = 1.0f / sqrtf((float)hd);

    float *qc = scratch;                              // qc (N, hd): this head's queries, scaled, contiguous
    float *kc = qc + ALIGN16((size_t)N * hd);         // kc (N, hd): keys
    float *vc = kc + ALIGN16((size_t)N * hd);         // vc (N, hd): values
    float *S = vc + ALIGN16((size_t)N * hd);          // S (D + 1, np): scores -> weights per diagonal; cls
    float *m = S + Dmax * np;                         // m (np): row max
    float *z = m + np;                                // z (np): softmax denominators
    float *e0 = z + np;                               // e0 (np): attended-key count, then e^{-m} (zero)
    float *vsum = e0 + np;                            // vsum (hd): sum of every V row (zero)
    float *crow = vsum + ALIGN16((size_t)hd);         // crow (N): the cls query's weights
    int32_t *so = (int32_t *)(crow + ALIGN16((size_t)N)); // so (D): signed offsets, ascending

    /* one pass reads the head's q, k, v rows (3*H*hd floats apart) from memory; the rest runs from cache */
    for (int32_t t = 0; t < N; t++) {
        const float *qr = q + (size_t)t * ld;
        float *qd = qc + (size_t)t * hd;
        for (int32_t d = 0; d < hd; d++)
            qd[d] = qr[d] * scale;
        memcpy(kc + (size_t)t * hd, k + (size_t)t * ld, sizeof(float) * (size_t)hd);
        memcpy(vc + (size_t)t * hd, v + (size_t)t * ld, sizeof(float) * (size_t)hd);
    }
    const int32_t D = signed_offsets(p, h, n, so);
    float *scls = S + (size_t)D * np;
    const float *kp = kc + (size_t)c * hd, *vp = vc + (size_t)c * hd; /* patch rows */

    /* scores. Diagonal r is valid for query j when 0 <= j + so[r] < n: the valid r form a range
     * [rlo, rhi) that slides down as j grows. */
    int32_t rlo = D, rhi = D;
    for (int32_t j = 0; j < n; j++) {
        while (rlo > 0 && so[rlo - 1] >= -j)
            rlo--;
        while (rhi > 0 && so[rhi - 1] >= n - j)
            rhi--;
        const float *qs = qc + (size_t)(j + c) * hd;
        v16f qv[NV_MAX];
        for (int32_t t = 0; t < nv; t++)
            qv[t] = load16(qs + 16 * t);
        for (int32_t r = rlo; r < rhi; r++)
            S[(size_t)r * np + j] = dot_q(nv, hd, qv, qs, kp + (ptrdiff_t)(j + so[r]) * hd);
        if (c)
            scls[j] = dot_q(nv, hd, qv, qs, kc);
    }

    /* softmax statistics per query, vectorised over j */
    for (int32_t j = 0; j < n; j++) {
        m[j] = c ? scls[j] : -INFINITY;
        e0[j] = (float)c;
    }
    for (int32_t r = 0; r < D; r++) {
        const int32_t o = so[r], j0 = FV_MAX(0, -o), j1 = FV_MIN(n, n - o);
        const float *s = S + (size_t)r * np;
        for (int32_t j = j0; j < j1; j++) {
            m[j] = s[j] > m[j] ? s[j] : m[j];
            e0[j] += 1.0f;
        }
    }
    if (zero) {
        /* masked keys (if any) share logit 0: it takes part in the max; e0 = their weight e^{-m} */
        for (int32_t j = 0; j < n; j++) {
            const float unatt = (float)N - e0[j];
            m[j] = unatt > 0.0f && m[j] < 0.0f ? 0.0f : m[j];
            e0[j] = unatt > 0.0f ? exp_neg(-m[j]) : 0.0f;
            z[j] = unatt * e0[j];
        }
    } else {
        for (int32_t j = 0; j < n; j++) {
            e0[j] = 0.0f;
            z[j] = 0.0f;
        }
    }
    for (int32_t r = 0; r < D; r++) {
        const int32_t o = so[r], j0 = FV_MAX(0, -o), j1 = FV_MIN(n, n - o);
        float *s = S + (size_t)r * np;
        for (int32_t j = j0; j < j1; j++) {
            const float w = exp_neg(s[j] - m[j]);
            z[j] += w;
            s[j] = w - e0[j]; /* the masked-key share e0 * v is part of e0 * Vsum */
        }
    }
    if (c)
        for (int32_t j = 0; j < n; j++) {
            const float w = exp_neg(scls[j] - m[j]);
            z[j] += w;
            scls[j] = w - e0[j];
        }
    if (lse) /* the backward recomputes the weights from it */
        for (int32_t j = 0; j < n; j++)
            lse[(j + c) * ldl] = m[j] + logf(z[j]);

    if (zero) {
        /* Vsum over all N rows; partial sums per 64 rows keep the float sum accurate on long sequences */
        for (int32_t d = 0; d < hd; d++)
            vsum[d] = 0.0f;
        for (int32_t t0 = 0; t0 < N; t0 += 64) {
            const int32_t t1 = FV_MIN(N, t0 + 64);
            if (nv > 0) {
                v16f part[NV_MAX];
                for (int32_t u = 0; u < nv; u++)
                    part[u] = (v16f){0};
                for (int32_t t = t0; t < t1; t++)
                    for (int32_t u = 0; u < nv; u++)
                        part[u] += load16(vc + (size_t)t * hd + 16 * u);
                for (int32_t u = 0; u < nv; u++) {
                    part[u] += load16(vsum + 16 * u);
                    store16(vsum + 16 * u, &part[u]);
                }
            } else {
                for (int32_t d = 0; d < hd; d++) {
                    float part = 0.0f;
                    for (int32_t t = t0; t < t1; t++)
                        part += vc[(size_t)t * hd + d];
                    vsum[d] += part;
                }
            }
        }
    }

    /* out_j = (e0_j * Vsum + cls_j * v_cls + sum_r S[r][j] * v_{j+so[r]}) / z_j */
    rlo = D, rhi = D;
    for (int32_t j = 0; j < n; j++) {
        while (rlo > 0 && so[rlo - 1] >= -j)
            rlo--;
        while (rhi > 0 && so[rhi - 1] >= n - j)
            rhi--;
        float *o = out + (size_t)(j + c) * ldo;
        const float inv = z[j] > 0.0f ? 1.0f / z[j] : 0.0f;
        if (nv > 0) {
            v16f acc[NV_MAX];
            for (int32_t t = 0; t < nv; t++)
                acc[t] = zero ? e0[j] * load16(vsum + 16 * t) : (v16f){0};
            if (c)
                for (int32_t t = 0; t < nv; t++)
                    acc[t] += scls[j] * load16(vc + 16 * t);
            for (int32_t r = rlo; r < rhi; r++) {
                const float w = S[(size_t)r * np + j];
                const float *vk = vp + (ptrdiff_t)(j + so[r]) * hd;
                for (int32_t t = 0; t < nv; t++)
                    acc[t] += w * load16(vk + 16 * t);
            }
            for (int32_t t = 0; t < nv; t++) {
                acc[t] *= inv;
                store16(o + 16 * t, &acc[t]);
            }
        } else {
            for (int32_t d = 0; d < hd; d++)
                o[d] = zero ? e0[j] * vsum[d] : 0.0f;
            if (c) {
                const float w = scls[j];
                for (int32_t d = 0; d < hd; d++)
                    o[d] = FMA(w, vc[d], o[d]);
            }
            for (int32_t r = rlo; r < rhi; r++) {
                const float w = S[(size_t)r * np + j];
                const float *vk = vp + (ptrdiff_t)(j + so[r]) * hd;
                for (int32_t d = 0; d < hd; d++)
                    o[d] = FMA(w, vk[d], o[d]);
            }
            for (int32_t d = 0; d < hd; d++)
                o[d] *= inv;
        }
    }

    if (st)
        fib_patch_stats(p, so, D, S, np, scls, e0, z, st, task);
    if (!c)
        return;
    /* the cls query attends every key (its mask row is all ones), under both semantics */
    {
        const float *qs = qc;
        v16f qv[NV_MAX];
        for (int32_t t = 0; t < nv; t++)
            qv[t] = load16(qs + 16 * t);
        float mx = -INFINITY;
        for (int32_t t = 0; t < N; t++) {
            crow[t] = dot_q(nv, hd, qv, qs, kc + (size_t)t * hd);
            mx = crow[t] > mx ? crow[t] : mx;
        }
        float zc = 0.0f;
        for (int32_t t = 0; t < N; t++) {
            crow[t] = exp_neg(crow[t] - mx);
            zc += crow[t];
        }
        const float inv = 1.0f / zc;
        if (lse)
            lse[0] = mx + logf(zc);
        if (st)
            fib_cls_stats(crow, N, inv, st, task);
        if (nv > 0) {
            v16f acc[NV_MAX];
            for (int32_t u = 0; u < nv; u++)
                acc[u] = (v16f){0};
            for (int32_t t = 0; t < N; t++)
                for (int32_t u = 0; u < nv; u++)
                    acc[u] += crow[t] * load16(vc + (size_t)t * hd + 16 * u);
            for (int32_t u = 0; u < nv; u++) {
                acc[u] *= inv;
                store16(out + 16 * u, &acc[u]);
            }
        } else {
            for (int32_t d = 0; d < hd; d++)
                out[d] = 0.0f;
            for (int32_t t = 0; t < N; t++)
                for (int32_t d = 0; d < hd; d++)
                    out[d] = FMA(crow[t], vc[(size_t)t * hd + d], out[d]);
            for (int32_t d = 0; d < hd; d++)
                out[d] *= inv;
        }
    }
}

/* Fast forward of one task, dispatched on the head size so that the query and accumulators stay in
 * registers; @st NULL (constant in the plain entry) is the kernel without statistics. */
static void fib_task(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, const FvAttnStats *st, int64_t task)
{
    switch (p->hd) {
    case 64: fib_head(4, p, t->h, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task); break;
    case 32: fib_head(2, p, t->h, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task); break;
    case 128: fib_head(8, p, t->h, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task); break;
    case 16: fib_head(1, p, t->h, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task); break;
    case 48: fib_head(3, p, t->h, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task); break;
    case 96: fib_head(6, p, t->h, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task); break;
    default: fib_head(0, p, t->h, t->q, t->k, t->v, t->ld, t->out, t->ldo, t->aux, t->ldaux, scratch, st, task); break;
    }
}

static void fib_forward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    fib_task(p, t, scratch, NULL, 0);
}

static void fib_forward_stats(const FvAttnPlan *p, const FvAttnHead *t, float *scratch, const FvAttnStats *st,
                              int64_t task)
{
    fib_task(p, t, scratch, st, task);
}

/* ---------------------------------------------------------------------------------------------------- */
/* backward                                                                                              */

/* Keys query @j attends (each once). Tokens in sequence coordinates (cls = 0 when has_cls). */
static int32_t fib_keys(const FvAttnPlan *p, int32_t h, int32_t j, int32_t *keys)
{
    const int32_t c = p->has_cls ? 1 : 0, N = p->N, n = N - c;
    int32_t cnt = 0;
    if (c && j == 0) {
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

/* O(|mask| * hd + N * hd): only the attended pairs are visited; under `zero` the masked keys' shared
 * weight reaches V through one sum. */
static void fib_backward(const FvAttnPlan *p, const FvAttnHead *t, float *scratch)
{
    fv_attn_softmax_backward_pairs(p, t, scratch, fib_keys, p->s.semantics == FV_FIB_ZERO);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the kind                                                                                              */

static int fib_plan_build(FvAttnPlan *p)
{
    const int32_t n = p->N - (p->has_cls ? 1 : 0);
    /* reference defaults: spatial w_min 5, w_max N // 3; temporal w_min 1, w_max T - 1 */
    if (p->s.wmin <= 0)
        p->s.wmin = p->has_cls ? 5 : 1;
    if (p->s.wmax <= 0)
        p->s.wmax = p->has_cls ? n / 3 : n - 1;
    if (p->s.wmax < 1)
        p->s.wmax = 1;
    return fv_fib_plan_build(p);
}

static void fib_plan_free(FvAttnPlan *p)
{
    fv_free(p->noff);
    fv_free(p->off);
    fv_free(p->raw_noff);
    fv_free(p->raw_off);
    p->noff = p->off = p->raw_noff = p->raw_off = NULL;
    p->max_off = p->raw_max = 0;
}

static int64_t fib_pairs(const FvAttnPlan *p, int32_t h)
{
    const int64_t n = p->N - (p->has_cls ? 1 : 0);
    int64_t pairs = p->has_cls ? 2 * n + 1 : 0; /* cls row (n + 1 keys) and cls column (n queries) */
    const int32_t *off = p->off + (int64_t)h * p->max_off;
    for (int32_t i = 0; i < p->noff[h]; i++) {
        const int64_t o = off[i];
        if (o < n)
            pairs += o == 0 ? n : 2 * (n - o);
    }
    return pairs;
}

/* The reference semantics of the mask: |i - j| is one of the head's offsets; the cls row and column always. */
static int fib_allows(const FvAttnPlan *p, int32_t h, int32_t i, int32_t j)
{
    if (p->has_cls) {
        if (i == 0 || j == 0)
            return 1;
        i--, j--;
    }
    const int32_t d = i > j ? i - j : j - i;
    const int32_t *off = p->off + (int64_t)h * p->max_off;
    for (int32_t k = 0; k < p->noff[h]; k++)
        if (off[k] == d)
            return 1;
    return 0;
}

static double fib_jaccard(const FvAttnPlan *p, int32_t a, int32_t b)
{
    const int32_t n = p->N - (p->has_cls ? 1 : 0);
    return fv_fib_jaccard(p->off + (int64_t)a * p->max_off, p->noff[a], p->off + (int64_t)b * p->max_off,
                          p->noff[b], n, p->has_cls);
}

static size_t fib_scratch_floats(const FvAttnPlan *p)
{
    const size_t c = p->has_cls ? 1 : 0, N = (size_t)p->N, n = N - c, np = ALIGN16(n), hd = (size_t)p->hd;
    const size_t D = 2 * (size_t)p->max_off + 2; /* diagonals + the cls column */
    const size_t fwd = 3 * ALIGN16(N * hd) + D * np + 3 * np + ALIGN16(hd) + ALIGN16(N) + D + 16;
    return FV_MAX(fwd, fv_attn_softmax_pairs_scratch(p));
}

const FvAttnKindDsp fv_attn_fib_dsp = {
    .kind = FV_ATTN_FIB,
    .name = "fib",
    .masked = 1,
    .entropy = 1,
    .plan_build = fib_plan_build,
    .plan_free = fib_plan_free,
    .pairs = fib_pairs,
    .allows = fib_allows,
    .jaccard = fib_jaccard,
    .flops = fv_attn_softmax_flops,
    .tensors = fv_attn_softmax_tensors,
    .scratch = fib_scratch_floats,
    .forward = fib_forward,
    .forward_stats = fib_forward_stats,
    .backward = fib_backward,
    .forward_ref = fv_attn_softmax_forward_ref,
    .backward_ref = fv_attn_softmax_backward_ref,
    .weights_ref = fv_attn_softmax_ref_weights,
    .keys = fib_keys,
};
