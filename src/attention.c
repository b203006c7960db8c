/* Attention plans and kernels: the dense softmax kernel, dispatch to the Fibottention kernels
 * (attn_fib.c), and the dense masked reference every fast kernel is tested against. */
#include <math.h>
#include <string.h>

#include <omp.h>

#include "attention.h"
#include "fastmath.h"
#include "gemm.h"
#include "internal.h"

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

/* Dense softmax attention of one (sequence, head), in blocks of FV_ATTN_QBLOCK queries so the score
 * buffer stays small at any N: S = Q_blk K^T and O_blk = softmax(S) V go through the GEMM table (run on
 * this thread: the caller is already parallel over (sequence, head)). scratch: FV_ATTN_QBLOCK * N. */
#define FV_ATTN_QBLOCK 256
static void dense_head(int32_t N, int32_t hd, const float *q, const float *k, const float *v, int64_t ld,
                       float *out, int64_t ldo, float *scratch)
{
    const FvGemmDsp *g = fv_gemm();
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t i0 = 0; i0 < N; i0 += FV_ATTN_QBLOCK) {
        const int32_t nb = FV_MIN(FV_ATTN_QBLOCK, N - i0);
        float *s = scratch; /* (nb, N) */
        g->sgemm_nt(nb, N, hd, q + i0 * ld, (int32_t)ld, k, (int32_t)ld, 0.0f, s, N);
        for (int32_t r = 0; r < nb; r++) {
            float *sr = s + (int64_t)r * N;
            /* omp simd: lets the max and sum reductions vectorise (reassociation is fine here) */
            float m = -INFINITY;
#pragma omp simd reduction(max : m)
            for (int32_t j = 0; j < N; j++)
                m = sr[j] > m ? sr[j] : m;
            float z = 0.0f;
#pragma omp simd reduction(+ : z)
            for (int32_t j = 0; j < N; j++)
                z += (sr[j] = fv_expf((sr[j] - m) * scale));
            const float inv = 1.0f / z;
#pragma omp simd
            for (int32_t j = 0; j < N; j++)
                sr[j] *= inv;
        }
        g->sgemm_nn(nb, hd, N, s, N, v, (int32_t)ld, 0.0f, out + i0 * ldo, (int32_t)ldo);
    }
}

int fv_attn_forward(const FvAttnPlan *p, const float *qkv, float *out, int32_t B)
{
    const int32_t N = p->N, H = p->H, hd = p->hd;
    const int64_t ld = 3 * (int64_t)H * hd, ldo = (int64_t)H * hd;
    const int fib = p->s.kind == FV_ATTN_FIB;
    size_t per = fib ? fv_attn_fib_scratch(p) : (size_t)FV_ATTN_QBLOCK * N;
    per = (per + 15) & ~(size_t)15; /* keep every thread's slice on its own cache lines */
    int nt = omp_get_max_threads();
    float *scratch = fv_malloc(sizeof(float) * per * nt);
    if (!scratch)
        return fv_error(FV_ENOMEM, "fv_attn_forward: out of memory");
    const int64_t tasks = (int64_t)B * H;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
        int32_t b = (int32_t)(t / H), h = (int32_t)(t % H);
        const float *q = qkv + (int64_t)b * N * ld + (int64_t)h * hd;
        const float *k = q + (int64_t)H * hd, *v = q + 2 * (int64_t)H * hd;
        float *o = out + (int64_t)b * N * ldo + (int64_t)h * hd;
        float *scr = scratch + per * omp_get_thread_num();
        if (fib)
            fv_attn_fib_head(p, h, q, k, v, (int32_t)ld, o, (int32_t)ldo, scr);
        else
            dense_head(N, hd, q, k, v, ld, o, ldo, scr);
    }
    fv_free(scratch);
    return 0;
}
