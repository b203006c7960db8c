/* Attention plans and kernels: the dense softmax kernel, dispatch to the Fibottention kernels
 * (attn_fib.c), and the dense masked reference every fast kernel is tested against. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <omp.h>

#include "kernels/attention.h"
#include "kernels/fastmath.h"
#include "util/util.h"

void fv_attn_describe(const FvAttnSettings *a, unsigned flags, char *buf, size_t n)
{
    if (a->kind != FV_ATTN_FIB) {
        snprintf(buf, n, "dense");
        return;
    }
    const char *variant = a->variant == FV_FIB_MODIFIED ? "modified" : "original";
    const char *sem = a->semantics == FV_FIB_ZERO ? "zero" : "exclude";
    if (flags & FV_ATTN_DESCRIBE_SHORT) {
        snprintf(buf, n, "fib(%s,%s,w=%d..%d%s)", variant, sem, a->wmin, a->wmax, a->shuffle ? ",shuffle" : "");
        return;
    }
    char wmin[16] = "default", wmax[16] = "default";
    if (a->wmin > 0)
        snprintf(wmin, sizeof(wmin), "%d", a->wmin);
    if (a->wmax > 0)
        snprintf(wmax, sizeof(wmax), "%d", a->wmax);
    snprintf(buf, n, "fib(%s,%s,wmin=%s,wmax=%s,shuffle=%s)", variant, sem, wmin, wmax, a->shuffle ? "on" : "off");
}

int fv_attn_settings_validate(const FvAttnSettings *a, const char *fn, const char *what)
{
    if (a->kind != FV_ATTN_DENSE && a->kind != FV_ATTN_FIB)
        return fv_error(FV_EINVAL, "%s: %s attention: invalid kind %d", fn, what, (int)a->kind);
    if (a->variant != FV_FIB_MODIFIED && a->variant != FV_FIB_ORIGINAL)
        return fv_error(FV_EINVAL, "%s: %s attention: invalid variant %d", fn, what, (int)a->variant);
    if (a->semantics != FV_FIB_ZERO && a->semantics != FV_FIB_EXCLUDE)
        return fv_error(FV_EINVAL, "%s: %s attention: invalid semantics %d", fn, what, (int)a->semantics);
    if (a->wmin > 0 && a->wmax > 0 && a->wmin > a->wmax)
        return fv_error(FV_EINVAL, "%s: %s attention: wmin %d > wmax %d", fn, what, a->wmin, a->wmax);
    if (a->shuffle != 0 && a->shuffle != 1)
        return fv_error(FV_EINVAL, "%s: %s attention: shuffle must be 0 or 1", fn, what);
    return 0;
}

int fv_attn_plan_init(FvAttnPlan *p, const FvAttnSettings *s, int32_t layer, int32_t N, int32_t has_cls,
                      int32_t H, int32_t hd)
{
    memset(p, 0, sizeof(*p));
    if (N < 1 || H < 1 || hd < 1 || (has_cls && N < 2))
        return fv_error(FV_EINVAL, "fv_attn_plan_init: bad shape N=%d H=%d hd=%d", N, H, hd);
    p->s = *s;
    p->layer = layer;
    p->N = N;
    p->has_cls = has_cls;
    p->H = H;
    p->hd = hd;
    if (s->kind == FV_ATTN_DENSE)
        return 0;
    if (s->kind != FV_ATTN_FIB)
        return fv_error(FV_EINVAL, "fv_attn_plan_init: unknown attention kind %d", (int)s->kind);
    int32_t n = N - (has_cls ? 1 : 0);
    /* reference defaults: spatial w_min 5, w_max N // 3; temporal w_min 1, w_max T - 1 */
    if (p->s.wmin <= 0)
        p->s.wmin = has_cls ? 5 : 1;
    if (p->s.wmax <= 0)
        p->s.wmax = has_cls ? n / 3 : n - 1;
    if (p->s.wmax < 1)
        p->s.wmax = 1;
    int ret = fv_fib_plan_build(p);
    if (ret < 0)
        fv_attn_plan_free(p);
    return ret;
}

void fv_attn_plan_free(FvAttnPlan *p)
{
    if (!p)
        return;
    fv_free(p->noff);
    fv_free(p->off);
    fv_free(p->raw_noff);
    fv_free(p->raw_off);
    p->noff = p->off = p->raw_noff = p->raw_off = NULL;
    p->max_off = p->raw_max = 0;
}

int64_t fv_attn_plan_pairs(const FvAttnPlan *p, int32_t h)
{
    int64_t N = p->N;
    if (p->s.kind == FV_ATTN_DENSE)
        return N * N;
    int64_t n = N - (p->has_cls ? 1 : 0);
    int64_t pairs = p->has_cls ? 2 * n + 1 : 0; /* cls row (n + 1 keys) and cls column (n queries) */
    const int32_t *off = p->off + (int64_t)h * p->max_off;
    for (int32_t i = 0; i < p->noff[h]; i++) {
        int64_t o = off[i];
        if (o < n)
            pairs += o == 0 ? n : 2 * (n - o);
    }
    return pairs;
}

double fv_attn_plan_density(const FvAttnPlan *p, int32_t h)
{
    return (double)fv_attn_plan_pairs(p, h) / ((double)p->N * p->N);
}

/* 1 when query i may attend key j in head h (reference semantics of the mask). */
static int plan_allows(const FvAttnPlan *p, int32_t h, int32_t i, int32_t j)
{
    if (p->s.kind == FV_ATTN_DENSE)
        return 1;
    if (p->has_cls) {
        if (i == 0 || j == 0)
            return 1;
        i--, j--;
    }
    int32_t d = i > j ? i - j : j - i;
    const int32_t *off = p->off + (int64_t)h * p->max_off;
    for (int32_t k = 0; k < p->noff[h]; k++)
        if (off[k] == d)
            return 1;
    return 0;
}

void fv_attn_forward_ref(const FvAttnPlan *p, const float *qkv, float *out, int32_t B)
{
    const int32_t N = p->N, H = p->H, hd = p->hd;
    const int64_t ld = 3 * (int64_t)H * hd, ldo = (int64_t)H * hd;
    const double scale = 1.0 / sqrt((double)hd);
    double *s = fv_malloc(sizeof(double) * N);
    if (!s)
        return;
    for (int32_t b = 0; b < B; b++)
        for (int32_t h = 0; h < H; h++) {
            const float *q = qkv + (int64_t)b * N * ld + (int64_t)h * hd;
            const float *k = q + (int64_t)H * hd, *v = q + 2 * (int64_t)H * hd;
            for (int32_t i = 0; i < N; i++) {
                double m = -INFINITY;
                for (int32_t j = 0; j < N; j++) {
                    double dot = 0;
                    for (int32_t c = 0; c < hd; c++)
                        dot += (double)q[i * ld + c] * k[j * ld + c];
                    dot *= scale;
                    if (!plan_allows(p, h, i, j))
                        dot = p->s.semantics == FV_FIB_ZERO ? 0.0 : -INFINITY; /* score * 0 or -inf */
                    s[j] = dot;
                    m = dot > m ? dot : m;
                }
                double z = 0;
                for (int32_t j = 0; j < N; j++)
                    z += (s[j] = exp(s[j] - m));
                float *o = out + (int64_t)b * N * ldo + (int64_t)i * ldo + (int64_t)h * hd;
                for (int32_t c = 0; c < hd; c++) {
                    double acc = 0;
                    for (int32_t j = 0; j < N; j++)
                        acc += s[j] * v[j * ld + c];
                    o[c] = (float)(acc / z);
                }
            }
        }
    fv_free(s);
}

/* Dense softmax attention of one (sequence, head) with register-blocked micro-kernels (GCC vector types:
 * AVX-512 with -march=native, narrower ISAs otherwise). OpenBLAS is slower here: at these sizes (N ~ 200,
 * head_dim 64) it re-packs K and V on every call. Four queries at a time:
 *   scores  S (4, Np) = (q * scale) K^T   — K transposed once into kt (hd, Np), Np = N rounded up to 32;
 *   softmax per row (vectorised exp and reductions);
 *   output  O (4, hd) = P V                — V copied once into contiguous rows.
 * scratch: hd*Np + N*hd + 4*Np floats. Head dims that are not a multiple of 16 take plain loops. */
#pragma GCC diagnostic ignored "-Wpsabi" /* 64-byte vectors change the ABI without AVX-512: internal only */
typedef float fv_v16 __attribute__((vector_size(64), aligned(4), may_alias));

static size_t dense_scratch(int32_t N, int32_t hd)
{
    const size_t Np = ((size_t)N + 31) & ~(size_t)31;
    return (size_t)hd * Np + (size_t)N * hd + 4 * Np;
}

static void softmax_rows(float *s, int32_t rows, int32_t N, int64_t lds)
{
    for (int32_t r = 0; r < rows; r++) {
        float *sr = s + r * lds;
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (int32_t j = 0; j < N; j++)
            m = sr[j] > m ? sr[j] : m;
        float z = 0.0f;
#pragma omp simd reduction(+ : z)
        for (int32_t j = 0; j < N; j++)
            z += (sr[j] = fv_expf(sr[j] - m));
        const float inv = 1.0f / z;
#pragma omp simd
        for (int32_t j = 0; j < N; j++)
            sr[j] *= inv;
    }
}

/* Short sequences (temporal attention: N = frames): dot products straight from the qkv rows, no
 * transposition or padding, which would cost more than the attention itself. */
/* Statistics of dense query @i (c = 1: token 0 is cls) from its normalised weights @w (N). */
static void dense_row_stats(const FvAttnStats *st, int64_t task, int32_t N, int32_t c, int32_t i, const float *w)
{
    float e = 0.0f;
#pragma omp simd reduction(+ : e)
    for (int32_t j = 0; j < N; j++)
        e += fv_attn_plogp(w[j]);
    st->ent[task] += e;
    st->ent_norm[task] += N > 1 ? e / logf((float)N) : 0.0f;
    const int32_t n = N - c;
    const float *wp = w + c; /* weights of the patch keys */
    if (c && i == 0) {
        if (st->cls)
            memcpy(st->cls + task * n, wp, sizeof(float) * (size_t)n);
        return;
    }
    const int32_t j = i - c;
    float ws = 0.0f, ds = 0.0f;
    if (!st->dtab) {
        for (int32_t k = 0; k < n; k++) {
            ws += wp[k];
            ds += wp[k] * (float)(k > j ? k - j : j - k);
        }
    } else {
        const int32_t Wp = st->Wp, jy = j / Wp, jx = j % Wp, tw = 2 * Wp - 1;
        for (int32_t ky = 0; ky < st->Hp; ky++) {
            const float *drow = st->dtab + (int64_t)(ky - jy + st->Hp - 1) * tw + (Wp - 1 - jx);
            const float *wr = wp + (int64_t)ky * Wp;
#pragma omp simd reduction(+ : ws, ds)
            for (int32_t kx = 0; kx < Wp; kx++) {
                ws += wr[kx];
                ds += wr[kx] * drow[kx];
            }
        }
    }
    st->dist[task] += ws > 0.0f ? ds / ws : 0.0f;
}

static inline __attribute__((always_inline)) void
dense_head_short(int32_t N, int32_t hd, const float *q, const float *k, const float *v, int64_t ld, float *out,
                 int64_t ldo, const FvAttnStats *st, int64_t task, int32_t c)
{
    const float scale = 1.0f / sqrtf((float)hd);
    float s[32];
    for (int32_t i = 0; i < N; i++) {
        const float *qi = q + i * ld;
        for (int32_t j = 0; j < N; j++) {
            const float *kj = k + j * ld;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int32_t c = 0; c < hd; c++)
                d += qi[c] * kj[c];
            s[j] = d * scale;
        }
        softmax_rows(s, 1, N, N);
        if (st)
            dense_row_stats(st, task, N, c, i, s);
        float *o = out + i * ldo;
        for (int32_t c = 0; c < hd; c++)
            o[c] = 0.0f;
        for (int32_t j = 0; j < N; j++) {
            const float p = s[j];
            const float *vj = v + j * ld;
#pragma omp simd
            for (int32_t c = 0; c < hd; c++)
                o[c] += p * vj[c];
        }
    }
}

/* @st NULL (a constant at every call site: the function is inlined) for the plain kernel; else task
 * @task's statistics are added, @c = 1 when token 0 is cls. */
static inline __attribute__((always_inline)) void
dense_head(int32_t N, int32_t hd, const float *q, const float *k, const float *v, int64_t ld, float *out,
           int64_t ldo, float *scratch, const FvAttnStats *st, int64_t task, int32_t c)
{
    if (N <= 32) {
        dense_head_short(N, hd, q, k, v, ld, out, ldo, st, task, c);
        return;
    }
    const int32_t Np = (N + 31) & ~31;
    const float scale = 1.0f / sqrtf((float)hd);
    float *kt = scratch;                      /* (hd, Np), zero-padded columns */
    float *vc = kt + (size_t)hd * Np;         /* (N, hd) */
    float *s = vc + (size_t)N * hd;           /* (4, Np) */
    for (int32_t c = 0; c < hd; c++) {
        float *row = kt + (size_t)c * Np;
        for (int32_t j = 0; j < N; j++)
            row[j] = k[j * ld + c];
        for (int32_t j = N; j < Np; j++)
            row[j] = 0.0f;
    }
    for (int32_t j = 0; j < N; j++)
        memcpy(vc + (size_t)j * hd, v + j * ld, sizeof(float) * hd);
    const int vec = hd % 16 == 0;

    for (int32_t i0 = 0; i0 < N; i0 += 4) {
        const int32_t nb = FV_MIN(4, N - i0);
        float qs[4][256];
        const int32_t hq = FV_MIN(hd, 256);
        for (int32_t r = 0; r < 4; r++)
            for (int32_t c = 0; c < hq; c++)
                qs[r][c] = r < nb ? q[(i0 + r) * ld + c] * scale : 0.0f;
        if (vec && hd <= 256) {
            for (int32_t j0 = 0; j0 < Np; j0 += 32) {
                fv_v16 a00 = { 0 }, a01 = { 0 }, a10 = { 0 }, a11 = { 0 };
                fv_v16 a20 = { 0 }, a21 = { 0 }, a30 = { 0 }, a31 = { 0 };
                for (int32_t c = 0; c < hd; c++) {
                    const fv_v16 k0 = *(const fv_v16 *)(kt + (size_t)c * Np + j0);
                    const fv_v16 k1 = *(const fv_v16 *)(kt + (size_t)c * Np + j0 + 16);
                    a00 += qs[0][c] * k0; a01 += qs[0][c] * k1;
                    a10 += qs[1][c] * k0; a11 += qs[1][c] * k1;
                    a20 += qs[2][c] * k0; a21 += qs[2][c] * k1;
                    a30 += qs[3][c] * k0; a31 += qs[3][c] * k1;
                }
                *(fv_v16 *)(s + j0) = a00;           *(fv_v16 *)(s + j0 + 16) = a01;
                *(fv_v16 *)(s + Np + j0) = a10;      *(fv_v16 *)(s + Np + j0 + 16) = a11;
                *(fv_v16 *)(s + 2 * Np + j0) = a20;  *(fv_v16 *)(s + 2 * Np + j0 + 16) = a21;
                *(fv_v16 *)(s + 3 * Np + j0) = a30;  *(fv_v16 *)(s + 3 * Np + j0 + 16) = a31;
            }
        } else {
            for (int32_t r = 0; r < nb; r++) {
                float *sr = s + (size_t)r * Np;
                for (int32_t j = 0; j < N; j++)
                    sr[j] = 0.0f;
                for (int32_t c = 0; c < hd; c++) {
                    const float qc = q[(i0 + r) * ld + c] * scale;
                    const float *kc = kt + (size_t)c * Np;
                    for (int32_t j = 0; j < N; j++)
                        sr[j] += qc * kc[j];
                }
            }
        }
        softmax_rows(s, nb, N, Np);
        if (st)
            for (int32_t r = 0; r < nb; r++)
                dense_row_stats(st, task, N, c, i0 + r, s + (size_t)r * Np);
        int32_t c0 = 0;
        if (vec)
            for (; c0 + 64 <= hd; c0 += 64) {
                fv_v16 o[4][4] = { { { 0 } } };
                for (int32_t j = 0; j < N; j++) {
                    const float *vj = vc + (size_t)j * hd + c0;
                    const fv_v16 v0 = *(const fv_v16 *)vj, v1 = *(const fv_v16 *)(vj + 16);
                    const fv_v16 v2 = *(const fv_v16 *)(vj + 32), v3 = *(const fv_v16 *)(vj + 48);
                    for (int32_t r = 0; r < 4; r++) {
                        const float p = s[(size_t)r * Np + j];
                        o[r][0] += p * v0; o[r][1] += p * v1; o[r][2] += p * v2; o[r][3] += p * v3;
                    }
                }
                for (int32_t r = 0; r < nb; r++)
                    for (int32_t u = 0; u < 4; u++)
                        *(fv_v16 *)(out + (i0 + r) * ldo + c0 + 16 * u) = o[r][u];
            }
        for (int32_t r = 0; r < nb; r++) { /* remaining head dims */
            float *o = out + (i0 + r) * ldo;
            const float *sr = s + (size_t)r * Np;
            for (int32_t c = c0; c < hd; c++)
                o[c] = 0.0f;
            if (c0 < hd)
                for (int32_t j = 0; j < N; j++) {
                    const float p = sr[j];
                    const float *vj = vc + (size_t)j * hd;
                    for (int32_t c = c0; c < hd; c++)
                        o[c] += p * vj[c];
                }
        }
    }
}

int fv_attn_forward(const FvAttnPlan *p, const float *qkv, float *out, int32_t B)
{
    return fv_attn_forward_stats(p, qkv, out, B, NULL);
}

int fv_attn_forward_stats(const FvAttnPlan *p, const float *qkv, float *out, int32_t B, const FvAttnStats *st)
{
    const int32_t N = p->N, H = p->H, hd = p->hd;
    const int64_t ld = 3 * (int64_t)H * hd, ldo = (int64_t)H * hd;
    const int fib = p->s.kind == FV_ATTN_FIB;
    size_t per = fib ? fv_attn_fib_scratch(p) : dense_scratch(N, hd);
    per = (per + 15) & ~(size_t)15; /* keep every thread's slice on its own cache lines */
    int nt = omp_get_max_threads();
    float *scratch = fv_malloc(sizeof(float) * per * nt);
    if (!scratch)
        return fv_error(FV_ENOMEM, "fv_attn_forward: out of memory");
    const int64_t tasks = (int64_t)B * H;
    /* chunks keep the scheduling cost down when there are thousands of tiny tasks (temporal attention) */
    const int chunk = (int)FV_MAX(1, FV_MIN(64, tasks / (8 * (int64_t)nt)));
#pragma omp parallel for schedule(dynamic, chunk)
    for (int64_t t = 0; t < tasks; t++) {
        int32_t b = (int32_t)(t / H), h = (int32_t)(t % H);
        const float *q = qkv + (int64_t)b * N * ld + (int64_t)h * hd;
        const float *k = q + (int64_t)H * hd, *v = q + 2 * (int64_t)H * hd;
        float *o = out + (int64_t)b * N * ldo + (int64_t)h * hd;
        float *scr = scratch + per * omp_get_thread_num();
        /* every call passes a constant st, so the plain kernels are the same code as without statistics */
        if (st) {
            if (fib)
                fv_attn_fib_head_stats(p, h, q, k, v, (int32_t)ld, o, (int32_t)ldo, scr, st, t);
            else
                dense_head(N, hd, q, k, v, ld, o, ldo, scr, st, t, p->has_cls);
        } else if (fib) {
            fv_attn_fib_head(p, h, q, k, v, (int32_t)ld, o, (int32_t)ldo, scr);
        } else {
            dense_head(N, hd, q, k, v, ld, o, ldo, scr, NULL, 0, 0);
        }
    }
    fv_free(scratch);
    return 0;
}
