/* Attention settings (description, validation), the registry of attention kinds, plans, and the batched
 * forward and backward that run a kind's kernels over (sequence, head) tasks in parallel. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <omp.h>

#include "kernels/attention.h"
#include "kernels/fastmath.h"
#include "util/util.h"

void fv_attn_default_settings(FvAttnSettings *a)
{
    if (!a)
        return;
    memset(a, 0, sizeof(*a));
    a->kind = FV_ATTN_DENSE;
    a->variant = FV_FIB_MODIFIED;
    a->semantics = FV_FIB_ZERO;
    a->wmin = 0;
    a->wmax = 0;
    a->shuffle = 1;
}

void fv_attn_describe(const FvAttnSettings *a, unsigned flags, char *buf, size_t n)
{
    if (a->kind != FV_ATTN_FIB) {
        const char *name = fv_attn_kind_name(a->kind);
        snprintf(buf, n, "%s", name ? name : "unknown");
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
    if (!fv_attn_kind_dsp(a->kind))
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

/* ---------------------------------------------------------------------------------------------------- */
/* the registry of kinds                                                                                 */

static const FvAttnKindDsp *const g_kinds[] = {
    [FV_ATTN_DENSE] = &fv_attn_dense_dsp,
    [FV_ATTN_FIB] = &fv_attn_fib_dsp,
    [FV_ATTN_SIMA] = &fv_attn_sima_dsp,
    [FV_ATTN_CASTLING] = &fv_attn_castling_dsp,
};

_Static_assert(sizeof(g_kinds) / sizeof(g_kinds[0]) <= FV_ATTN_KIND_SLOTS, "raise FV_ATTN_KIND_SLOTS");

const FvAttnKindDsp *fv_attn_kind_dsp(FvAttnKind k)
{
    return (int)k >= 0 && (size_t)k < sizeof(g_kinds) / sizeof(g_kinds[0]) ? g_kinds[k] : NULL;
}

const FvAttnKindDsp *const *fv_attn_kinds(int32_t *n)
{
    *n = (int32_t)(sizeof(g_kinds) / sizeof(g_kinds[0]));
    return g_kinds;
}

const char *fv_attn_kind_name(FvAttnKind k)
{
    const FvAttnKindDsp *d = fv_attn_kind_dsp(k);
    return d ? d->name : NULL;
}

int fv_attn_kind_from_name(const char *name, FvAttnKind *k)
{
    char known[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < sizeof(g_kinds) / sizeof(g_kinds[0]); i++) {
        if (name && !strcmp(name, g_kinds[i]->name)) {
            *k = g_kinds[i]->kind;
            return 0;
        }
        len += (size_t)snprintf(known + len, sizeof(known) - len, "%s%s", i ? ", " : "", g_kinds[i]->name);
        len = FV_MIN(len, sizeof(known) - 1);
    }
    return fv_error(FV_EINVAL, "unknown attention kind '%s' (%s)", name ? name : "(null)", known);
}

/* ---------------------------------------------------------------------------------------------------- */
/* plans                                                                                                 */

int fv_attn_plan_init(FvAttnPlan *p, const FvAttnSettings *s, int32_t layer, int32_t N, int32_t has_cls,
                      int32_t H, int32_t hd)
{
    memset(p, 0, sizeof(*p));
    if (N < 1 || H < 1 || hd < 1 || (has_cls && N < 2))
        return fv_error(FV_EINVAL, "fv_attn_plan_init: bad shape N=%d H=%d hd=%d", N, H, hd);
    if (!(p->dsp = fv_attn_kind_dsp(s->kind)))
        return fv_error(FV_EINVAL, "fv_attn_plan_init: unknown attention kind %d", (int)s->kind);
    p->s = *s;
    p->layer = layer;
    p->N = N;
    p->has_cls = has_cls;
    p->H = H;
    p->hd = hd;
    int ret = p->dsp->plan_build(p);
    if (ret < 0)
        fv_attn_plan_free(p);
    return ret;
}

void fv_attn_plan_free(FvAttnPlan *p)
{
    if (p && p->dsp)
        p->dsp->plan_free(p);
}

int64_t fv_attn_plan_pairs(const FvAttnPlan *p, int32_t h)
{
    return p->dsp->pairs(p, h);
}

double fv_attn_plan_flops(const FvAttnPlan *p)
{
    return p->dsp->flops(p);
}

double fv_attn_plan_density(const FvAttnPlan *p, int32_t h)
{
    return (double)fv_attn_plan_pairs(p, h) / ((double)p->N * p->N);
}

size_t fv_attn_scratch_floats(const FvAttnPlan *p)
{
    return FV_ALIGN16(p->dsp->scratch(p)); /* every thread's slice on its own cache lines */
}

/* ---------------------------------------------------------------------------------------------------- */
/* batches of sequences                                                                                  */

/* Task (sequence b, head h) of a batch laid out as fv_attn_forward documents. */
static FvAttnHead task_io(const FvAttnPlan *p, int64_t b, int32_t h, const float *qkv, float *out, float *aux)
{
    const int64_t N = p->N, D = (int64_t)p->H * p->hd, ld = 3 * D;
    const float *q = qkv + b * N * ld + (int64_t)h * p->hd;
    return (FvAttnHead){
        .h = h, .q = q, .k = q + D, .v = q + 2 * D, .ld = ld,
        .out = out + b * N * D + (int64_t)h * p->hd, .ldo = D,
        .aux = aux ? aux + b * N * p->H + h : NULL, .ldaux = p->H,
    };
}

/* Scratch for this call: the caller's, or a new block (freed by the caller through *@own). */
static float *get_scratch(const FvAttnPlan *p, const FvAttnScratch *scr, size_t *stride, float **own)
{
    const int nt = omp_get_max_threads();
    *own = NULL;
    *stride = fv_attn_scratch_floats(p);
    if (scr && scr->buf && scr->stride >= *stride && scr->nthreads >= nt) {
        *stride = scr->stride;
        return scr->buf;
    }
    return *own = fv_malloc(sizeof(float) * *stride * (size_t)nt);
}

int fv_attn_forward(const FvAttnPlan *p, const float *qkv, float *out, float *aux, int64_t B,
                    const FvAttnStats *st, const FvAttnScratch *scr)
{
    return fv_attn_forward_own(p, NULL, qkv, out, aux, B, st, scr);
}

int fv_attn_forward_own(const FvAttnPlan *p, const float *const *own, const float *qkv, float *out, float *aux,
                        int64_t B, const FvAttnStats *st, const FvAttnScratch *scr)
{
    size_t per;
    float *own_scr, *scratch = get_scratch(p, scr, &per, &own_scr);
    if (!scratch)
        return fv_error(FV_ENOMEM, "fv_attn_forward: out of memory");
    const int32_t H = p->H;
    const int64_t tasks = B * H;
    /* chunks keep the scheduling cost down when there are thousands of tiny tasks (temporal attention) */
    const int64_t nt = omp_get_max_threads();
    const int chunk = (int)FV_MAX(1, FV_MIN(64, tasks / (8 * nt)));
    const FvAttnKindDsp *k = p->dsp;
#pragma omp parallel for schedule(dynamic, chunk)
    for (int64_t t = 0; t < tasks; t++) {
        FvAttnHead io = task_io(p, t / H, (int32_t)(t % H), qkv, out, aux);
        io.own = own;
        float *s = scratch + per * (size_t)omp_get_thread_num();
        if (st)
            k->forward_stats(p, &io, s, st, t);
        else
            k->forward(p, &io, s);
    }
    fv_free(own_scr);
    return 0;
}

int fv_attn_backward(const FvAttnPlan *p, const float *qkv, const float *out, const float *aux, const float *dout,
                     float *dqkv, int64_t B, const FvAttnScratch *scr)
{
    return fv_attn_backward_own(p, NULL, NULL, qkv, out, aux, dout, dqkv, B, scr);
}

int fv_attn_backward_own(const FvAttnPlan *p, const float *const *own, float *const *down, const float *qkv,
                         const float *out, const float *aux, const float *dout, float *dqkv, int64_t B,
                         const FvAttnScratch *scr)
{
    size_t per;
    float *own_scr, *scratch = get_scratch(p, scr, &per, &own_scr);
    if (!scratch)
        return fv_error(FV_ENOMEM, "fv_attn_backward: out of memory");
    const int32_t H = p->H;
    const int64_t tasks = B * H, D = (int64_t)H * p->hd;
    const FvAttnKindDsp *k = p->dsp;
    /* the own tensors' gradients: one copy per thread (tasks of every head run at once), summed after */
    FvAttnTensor tt[FV_ATTN_MAX_TENSORS];
    const int32_t ntens = down ? k->tensors(&p->s, H, p->hd, tt) : 0;
    size_t tsize[FV_ATTN_MAX_TENSORS] = { 0 }, tall = 0;
    for (int32_t i = 0; i < ntens; i++) {
        tsize[i] = 1;
        for (int32_t d = 0; d < tt[i].ndim; d++)
            tsize[i] *= (size_t)tt[i].shape[d];
        tall += FV_ALIGN16(tsize[i]);
    }
    const int nt = omp_get_max_threads();
    float *tgrad = tall ? fv_calloc(tall * (size_t)nt, sizeof(float)) : NULL;
    if (tall && !tgrad) {
        fv_free(own_scr);
        return fv_error(FV_ENOMEM, "fv_attn_backward: out of memory");
    }
    memset(dqkv, 0, sizeof(float) * (size_t)(B * p->N * 3 * D)); /* the kernels add into it */
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t b = t / H;
        const int32_t h = (int32_t)(t % H);
        const int tid = omp_get_thread_num();
        float *mine[FV_ATTN_MAX_TENSORS] = { NULL };
        for (int32_t i = 0, o = 0; i < ntens; o += (int)FV_ALIGN16(tsize[i]), i++)
            mine[i] = tgrad + tall * (size_t)tid + o;
        FvAttnHead io = task_io(p, b, h, qkv, (float *)out, (float *)aux);
        io.own = own;
        io.down = ntens ? mine : NULL;
        io.dout = dout + b * p->N * D + (int64_t)h * p->hd;
        io.dq = dqkv + b * p->N * 3 * D + (int64_t)h * p->hd;
        io.dk = io.dq + D;
        io.dv = io.dq + 2 * D;
        k->backward(p, &io, scratch + per * (size_t)tid);
    }
    for (int32_t i = 0, o = 0; i < ntens; o += (int)FV_ALIGN16(tsize[i]), i++)
        for (int th = 0; th < nt; th++)
            for (size_t e = 0; e < tsize[i]; e++)
                down[i][e] += tgrad[tall * (size_t)th + o + e];
    fv_free(tgrad);
    fv_free(own_scr);
    return 0;
}

void fv_attn_forward_ref(const FvAttnPlan *p, const float *const *own, const float *qkv, float *out, float *aux,
                         int64_t B)
{
    for (int64_t b = 0; b < B; b++)
        for (int32_t h = 0; h < p->H; h++) {
            FvAttnHead io = task_io(p, b, h, qkv, out, aux);
            io.own = own;
            p->dsp->forward_ref(p, &io);
        }
}

void fv_attn_backward_ref(const FvAttnPlan *p, const float *const *own, float *const *down, const float *qkv,
                          const float *out, const float *aux, const float *dout, float *dqkv, int64_t B)
{
    const int64_t D = (int64_t)p->H * p->hd;
    memset(dqkv, 0, sizeof(float) * (size_t)(B * p->N * 3 * D));
    for (int64_t b = 0; b < B; b++)
        for (int32_t h = 0; h < p->H; h++) {
            FvAttnHead io = task_io(p, b, h, qkv, (float *)out, (float *)aux);
            io.own = own;
            io.down = down;
            io.dout = dout + b * p->N * D + (int64_t)h * p->hd;
            io.dq = dqkv + b * p->N * 3 * D + (int64_t)h * p->hd;
            io.dk = io.dq + D;
            io.dv = io.dq + 2 * D;
            p->dsp->backward_ref(p, &io);
        }
}
