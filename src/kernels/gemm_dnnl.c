/* oneDNN matmul primitives for the packed weights: one engine, a stream per thread, weights reordered once into
 * the layout the primitive prefers (format_tag any; the layout depends on N, K and the data type only, checked
 * at every primitive made), and a cache of primitives keyed by (M, N, K, data type, bias, post-ops): rows vary
 * per call (batch, tokens) and take a handful of values per input size, so each gets a primitive of its own
 * (runtime dimensions would fall back to oneDNN's slower plain GEMM). Bias, GELU (eltwise gelu_erf) and the
 * residual add (sum) run as the primitive's bias and post-ops.
 * Threads share the cached primitives, so each product brings its calling thread's scratchpad (scratchpad mode
 * user). oneDNN's own (library-managed) scratchpad is per primitive or per creating thread depending on its build,
 * and neither may serve one primitive run from two threads at once: with the packaged 2.6 two threads running
 * the same matmul got wrong products, now and then a crash (test_gemm_packed's test_threads_share_primitive). */
#ifdef FV_HAVE_DNNL
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/gemm_dnnl.h"
#include "util/util.h"

static dnnl_engine_t g_engine;
static int g_engine_ok;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void engine_init(void)
{
    /* No VTune JIT registration unless asked for (ONEDNN_JIT_PROFILE): its first kernel would look for the
     * profiler's library (a dlopen of libJitPI.so, which also waits for any other dlopen in progress, such as
     * FFmpeg's ~130 libraries loading on fv_video_preload's thread) */
    if (!getenv("ONEDNN_JIT_PROFILE") && !getenv("DNNL_JIT_PROFILE"))
        (void)dnnl_set_jit_profiling_flags(0);
    g_engine_ok = dnnl_engine_create(&g_engine, dnnl_cpu, 0) == dnnl_success;
}

static dnnl_engine_t engine(void)
{
    pthread_once(&g_once, engine_init);
    return g_engine_ok ? g_engine : NULL;
}

/* Per thread: a stream (cheap on the CPU, and one stream is not meant to be shared between threads) and the
 * scratchpad of the products run on it, grown to the largest a primitive asks for. Both go when the thread ends
 * (a caller's short-lived threads would otherwise leave theirs behind). */
typedef struct ThreadCtx {
    dnnl_stream_t stream;
    void *scratch;
    size_t scratch_bytes;
} ThreadCtx;

static _Thread_local ThreadCtx *t_ctx;
static pthread_key_t g_ctx_key;
static int g_ctx_key_ok;
static pthread_once_t g_ctx_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *p)
{
    ThreadCtx *c = p;
    dnnl_stream_destroy(c->stream);
    fv_free(c->scratch);
    free(c);
}

static void ctx_key_init(void)
{
    g_ctx_key_ok = pthread_key_create(&g_ctx_key, ctx_free) == 0;
}

static ThreadCtx *thread_ctx(void)
{
    if (t_ctx || !engine())
        return t_ctx;
    pthread_once(&g_ctx_once, ctx_key_init);
    ThreadCtx *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (dnnl_stream_create(&c->stream, engine(), dnnl_stream_default_flags) != dnnl_success) {
        free(c);
        return NULL;
    }
    if (g_ctx_key_ok)
        pthread_setspecific(g_ctx_key, c);
    return t_ctx = c;
}

static dnnl_stream_t stream(void)
{
    ThreadCtx *c = thread_ctx();
    return c ? c->stream : NULL;
}

/* This thread's scratchpad of at least @bytes, or NULL. */
static void *thread_scratch(size_t bytes)
{
    ThreadCtx *c = thread_ctx();
    if (!c)
        return NULL;
    if (bytes > c->scratch_bytes) {
        void *p = fv_malloc(bytes);
        if (!p)
            return NULL;
        fv_free(c->scratch);
        c->scratch = p;
        c->scratch_bytes = bytes;
    }
    return c->scratch;
}

static dnnl_data_type_t dnnl_dt(FvGemmType dt)
{
    return dt == FV_GT_BF16 ? dnnl_bf16 : dnnl_f32;
}

typedef struct Prim {
    int32_t M, N, K, flags, bias;
    FvGemmType dt;
    dnnl_memory_desc_t wmd;
    dnnl_primitive_t prim;
    struct Prim *next;
} Prim;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static Prim *g_prims;

/* The matmul descriptor of (M, N, K) with weights @wmd (NULL: format any) and @flags' post-ops. */
static int make_pd(dnnl_primitive_desc_t *pd, int32_t M, int32_t N, int32_t K, FvGemmType dt, int bias, int flags,
                   const dnnl_memory_desc_t *wmd)
{
    dnnl_memory_desc_t a, w, b, c;
    const dnnl_dims_t da = { M, K }, dw = { K, N }, db = { 1, N }, dc = { M, N };
    const dnnl_data_type_t t = dnnl_dt(dt);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_matmul_desc_t md;
    int ok = dnnl_memory_desc_init_by_tag(&a, 2, da, t, dnnl_ab) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&b, 2, db, dnnl_f32, dnnl_ab) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&c, 2, dc, (flags & FV_LIN_OUT_BF16) ? dnnl_bf16 : dnnl_f32,
                                          dnnl_ab) == dnnl_success;
    if (ok && wmd)
        w = *wmd;
    else if (ok)
        ok = dnnl_memory_desc_init_by_tag(&w, 2, dw, t, dnnl_format_tag_any) == dnnl_success;
    ok = ok && dnnl_matmul_desc_init(&md, &a, &w, bias ? &b : NULL, &c) == dnnl_success;
    ok = ok && dnnl_primitive_attr_create(&attr) == dnnl_success && dnnl_post_ops_create(&po) == dnnl_success;
    /* the caller passes the scratchpad (this thread's): a primitive then runs from several threads at once */
    ok = ok && dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && (flags & FV_LIN_SUM))
        ok = dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
    if (ok && (flags & FV_LIN_GELU))
        ok = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f) == dnnl_success;
    ok = ok && dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(pd, &md, attr, engine(), NULL) == dnnl_success;
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

int fv_dnnl_pack(FvPackedW *p, const float *w32)
{
    dnnl_engine_t eng = engine();
    dnnl_stream_t s = stream();
    if (!eng || !s)
        return fv_error(FV_ENOMEM, "oneDNN: no CPU engine");
    /* the layout a large-M product prefers; checked against every later primitive's */
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    if (make_pd(&pd, 4096, p->N, p->K, p->dt, 1, 0, NULL) < 0)
        return fv_error(FV_EINVAL, "oneDNN: no %s matmul for a %dx%d weight", p->dt == FV_GT_BF16 ? "bf16" : "fp32",
                        p->N, p->K);
    p->md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    p->bytes = dnnl_memory_desc_get_size(&p->md);
    if (!(p->owned = fv_pool_alloc(p->bytes))) /* the model's weights share huge pages */
        return fv_error(FV_ENOMEM, "oneDNN: out of memory for a packed %dx%d weight", p->N, p->K);
    /* fp32 (N, K) row-major is (K, N) with strides (1, K): tag ba; bf16 is converted by the reorder */
    dnnl_memory_desc_t src;
    const dnnl_dims_t dw = { p->K, p->N };
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_primitive_t r = NULL;
    /* a small weight on the calling thread alone: its copy gains little from more, and the OpenMP team of a small
     * model is then started by the first forward pass, not during the loading that follows (FFmpeg's: a process
     * whose threads sit on two CPUs pays a TLB shootdown for each of the loader's mprotect/munmap calls) */
    const int nt = omp_get_max_threads(), alone = (int64_t)p->N * p->K < ((int64_t)1 << 20);
    if (alone)
        omp_set_num_threads(1);
    int ok = dnnl_memory_desc_init_by_tag(&src, 2, dw, dnnl_f32, dnnl_ba) == dnnl_success &&
             dnnl_reorder_primitive_desc_create(&rpd, &src, eng, &p->md, eng, NULL) == dnnl_success &&
             dnnl_primitive_create(&r, rpd) == dnnl_success &&
             dnnl_memory_create(&ms, &src, eng, (void *)w32) == dnnl_success &&
             dnnl_memory_create(&md, &p->md, eng, p->owned) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, ms }, { DNNL_ARG_TO, md } };
        ok = dnnl_primitive_execute(r, s, 2, args) == dnnl_success && dnnl_stream_wait(s) == dnnl_success;
    }
    if (alone)
        omp_set_num_threads(nt);
    if (ms)
        dnnl_memory_destroy(ms);
    if (md)
        dnnl_memory_destroy(md);
    if (r)
        dnnl_primitive_destroy(r);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (!ok) {
        fv_pool_free(p->owned);
        p->owned = NULL;
        return fv_error(FV_EINVAL, "oneDNN: cannot reorder a %dx%d weight", p->N, p->K);
    }
    p->blocked = 1;
    return 0;
}

/* The cached primitive for this product, made on first use. */
static dnnl_primitive_t get_prim(const FvPackedW *w, int32_t M, int bias, int flags)
{
    pthread_mutex_lock(&g_lock);
    Prim *e = g_prims;
    for (; e; e = e->next)
        if (e->M == M && e->N == w->N && e->K == w->K && e->dt == w->dt && e->bias == bias && e->flags == flags &&
            dnnl_memory_desc_equal(&e->wmd, &w->md))
            break;
    if (!e) {
        dnnl_primitive_desc_t pd = NULL;
        dnnl_primitive_t prim = NULL;
        if (make_pd(&pd, M, w->N, w->K, w->dt, bias, flags, &w->md) == 0 &&
            dnnl_primitive_create(&prim, pd) == dnnl_success && (e = calloc(1, sizeof(*e)))) {
            *e = (Prim){ .M = M, .N = w->N, .K = w->K, .flags = flags, .bias = bias, .dt = w->dt, .wmd = w->md,
                         .prim = prim, .next = g_prims };
            g_prims = e;
        } else if (prim) {
            dnnl_primitive_destroy(prim);
        }
        if (pd)
            dnnl_primitive_desc_destroy(pd);
    }
    pthread_mutex_unlock(&g_lock);
    return e ? e->prim : NULL;
}

int fv_dnnl_linear(void *out, const void *in, const FvPackedW *w, const float *b, int32_t M, int flags)
{
    dnnl_primitive_t prim = get_prim(w, M, b != NULL, flags);
    dnnl_stream_t s = stream();
    if (!prim || !s)
        return fv_error(FV_ENOMEM, "oneDNN: no matmul primitive for %dx%dx%d (%s)", M, w->N, w->K,
                        w->dt == FV_GT_BF16 ? "bf16" : "fp32");
    const_dnnl_primitive_desc_t pd;
    dnnl_primitive_get_primitive_desc(prim, &pd);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const size_t sbytes = dnnl_memory_desc_get_size(smd);
    void *scratch = sbytes ? thread_scratch(sbytes) : NULL;
    if (sbytes && !scratch)
        return fv_error(FV_ENOMEM, "oneDNN: out of memory for a %zu-byte scratchpad", sbytes);
    dnnl_memory_t ma = NULL, mw = NULL, mb = NULL, mc = NULL, ms = NULL;
    int ok = dnnl_memory_create(&ma, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), engine(),
                                (void *)in) == dnnl_success &&
             dnnl_memory_create(&mw, &w->md, engine(), w->owned) == dnnl_success &&
             dnnl_memory_create(&mc, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), engine(), out) ==
                 dnnl_success &&
             (!b || dnnl_memory_create(&mb, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1), engine(),
                                       (void *)b) == dnnl_success) &&
             (!sbytes || dnnl_memory_create(&ms, smd, engine(), scratch) == dnnl_success);
    if (ok) {
        dnnl_exec_arg_t args[5] = { { DNNL_ARG_SRC, ma }, { DNNL_ARG_WEIGHTS, mw }, { DNNL_ARG_DST, mc } };
        int nargs = 3;
        if (b)
            args[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, mb };
        if (sbytes)
            args[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, ms };
        ok = dnnl_primitive_execute(prim, s, nargs, args) == dnnl_success && dnnl_stream_wait(s) == dnnl_success;
    }
    if (ma)
        dnnl_memory_destroy(ma);
    if (mw)
        dnnl_memory_destroy(mw);
    if (mb)
        dnnl_memory_destroy(mb);
    if (mc)
        dnnl_memory_destroy(mc);
    if (ms)
        dnnl_memory_destroy(ms);
    return ok ? 0 : fv_error(FV_ENOMEM, "oneDNN: matmul %dx%dx%d failed", M, w->N, w->K);
}

const char *fv_packed_impl(FvGemmType dt)
{
    /* found once per type, under a lock of its own: a caller never sees the string half written */
    static char buf[2][64];
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    if (!buf[dt][0]) {
        dnnl_primitive_desc_t pd = NULL;
        const char *impl = "none";
        if ((dt == FV_GT_F32 || fv_bf16_supported()) && engine() &&
            make_pd(&pd, 1024, 768, 768, dt, 1, 0, NULL) == 0)
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        snprintf(buf[dt], sizeof(buf[dt]), "%s", impl);
        if (pd)
            dnnl_primitive_desc_destroy(pd);
    }
    pthread_mutex_unlock(&lock);
    return buf[dt];
}
#else
#include "kernels/gemm_dnnl.h"

const char *fv_packed_impl(FvGemmType dt)
{
    (void)dt;
    return "none";
}
#endif
