/* OpenBLAS and oneDNN loaded on first use, like FFmpeg (src/video/ffmpeg_dl.c): libfibvid.so is compiled against
 * their headers but not linked with them, so a process that never multiplies matrices (--version, help, merge,
 * masks, synth) does not pay their loading: about 12 ms for OpenBLAS (its DYNAMIC_ARCH kernels and constructor)
 * and 7 ms for oneDNN (libstdc++ and its relocations) on a 2-core EPYC VM (scripts/bench_startup.sh). Each
 * function the library calls is defined here (hidden, the headers' prototype) and forwards to the real one.
 *
 * Adding a call to either library: add one X(...) line below (the shared library is linked with
 * --no-undefined: a missing line is a link error). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <cblas.h>
#include <openblas_config.h>
#ifdef FV_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_version.h>
#endif

#include "fibvid/common.h"
#include "util/util.h"

#ifndef FV_OPENBLAS_LIB
#define FV_OPENBLAS_LIB "libopenblas.so.0"
#endif

#define FV_OPENBLAS_FUNCS(X, V)                                                                                    \
    V(cblas_sgemm,                                                                                                   \
      (OPENBLAS_CONST enum CBLAS_ORDER Order, OPENBLAS_CONST enum CBLAS_TRANSPOSE TransA,                          \
       OPENBLAS_CONST enum CBLAS_TRANSPOSE TransB, OPENBLAS_CONST blasint M, OPENBLAS_CONST blasint N,             \
       OPENBLAS_CONST blasint K, OPENBLAS_CONST float alpha, OPENBLAS_CONST float *A, OPENBLAS_CONST blasint lda,  \
       OPENBLAS_CONST float *B, OPENBLAS_CONST blasint ldb, OPENBLAS_CONST float beta, float *C,                  \
       OPENBLAS_CONST blasint ldc),                                                                                  \
      (Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))                                         \
    V(cblas_ssyrk,                                                                                                   \
      (OPENBLAS_CONST enum CBLAS_ORDER Order, OPENBLAS_CONST enum CBLAS_UPLO Uplo,                                 \
       OPENBLAS_CONST enum CBLAS_TRANSPOSE Trans, OPENBLAS_CONST blasint N, OPENBLAS_CONST blasint K,              \
       OPENBLAS_CONST float alpha, OPENBLAS_CONST float *A, OPENBLAS_CONST blasint lda, OPENBLAS_CONST float beta, \
       float *C, OPENBLAS_CONST blasint ldc),                                                                        \
      (Order, Uplo, Trans, N, K, alpha, A, lda, beta, C, ldc))                                                       \
    X(char *, openblas_get_config, (void), ())                                                                       \
    X(char *, openblas_get_corename, (void), ())

#ifdef FV_HAVE_DNNL
#define FV_DNNL_SONAME2(major) "libdnnl.so." #major
#define FV_DNNL_SONAME(major) FV_DNNL_SONAME2(major)
#define FV_DNNL_FUNCS(X, V)                                                                                        \
    X(dnnl_status_t, dnnl_sgemm,                                                                                     \
      (char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K, float alpha, const float *A,             \
       dnnl_dim_t lda, const float *B, dnnl_dim_t ldb, float beta, float *C, dnnl_dim_t ldc),                       \
      (transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))                                                \
    X(const dnnl_version_t *, dnnl_version, (void), ())                                                              \
    X(dnnl_cpu_isa_t, dnnl_get_effective_cpu_isa, (void), ()) \
    /* the matmul primitives of the prepared weights (src/kernels/gemm_dnnl.c) */ \
    X(dnnl_status_t, dnnl_engine_create, (dnnl_engine_t *engine, dnnl_engine_kind_t kind, size_t index), (engine, kind, index)) \
    X(dnnl_status_t, dnnl_matmul_desc_init, (dnnl_matmul_desc_t *matmul_desc, const dnnl_memory_desc_t *src_desc, const dnnl_memory_desc_t *weights_desc, const dnnl_memory_desc_t *bias_desc, const dnnl_memory_desc_t *dst_desc), (matmul_desc, src_desc, weights_desc, bias_desc, dst_desc)) \
    X(dnnl_status_t, dnnl_memory_create, (dnnl_memory_t *memory, const dnnl_memory_desc_t *memory_desc, dnnl_engine_t engine, void *handle), (memory, memory_desc, engine, handle)) \
    X(int, dnnl_memory_desc_equal, (const dnnl_memory_desc_t *lhs, const dnnl_memory_desc_t *rhs), (lhs, rhs)) \
    X(size_t, dnnl_memory_desc_get_size, (const dnnl_memory_desc_t *memory_desc), (memory_desc)) \
    X(dnnl_status_t, dnnl_memory_desc_init_by_tag, (dnnl_memory_desc_t *memory_desc, int ndims, const dnnl_dims_t dims, dnnl_data_type_t data_type, dnnl_format_tag_t tag), (memory_desc, ndims, dims, data_type, tag)) \
    X(dnnl_status_t, dnnl_memory_destroy, (dnnl_memory_t memory), (memory)) \
    X(dnnl_status_t, dnnl_post_ops_append_eltwise, (dnnl_post_ops_t post_ops, float scale, dnnl_alg_kind_t alg_kind, float alpha, float beta), (post_ops, scale, alg_kind, alpha, beta)) \
    X(dnnl_status_t, dnnl_post_ops_append_sum, (dnnl_post_ops_t post_ops, float scale), (post_ops, scale)) \
    X(dnnl_status_t, dnnl_post_ops_create, (dnnl_post_ops_t *post_ops), (post_ops)) \
    X(dnnl_status_t, dnnl_post_ops_destroy, (dnnl_post_ops_t post_ops), (post_ops)) \
    X(dnnl_status_t, dnnl_primitive_attr_create, (dnnl_primitive_attr_t *attr), (attr)) \
    X(dnnl_status_t, dnnl_primitive_attr_destroy, (dnnl_primitive_attr_t attr), (attr)) \
    X(dnnl_status_t, dnnl_primitive_attr_set_post_ops, (dnnl_primitive_attr_t attr, const_dnnl_post_ops_t post_ops), (attr, post_ops)) \
    X(dnnl_status_t, dnnl_primitive_attr_set_scratchpad_mode, (dnnl_primitive_attr_t attr, dnnl_scratchpad_mode_t mode), (attr, mode)) \
    X(dnnl_status_t, dnnl_primitive_create, (dnnl_primitive_t *primitive, const_dnnl_primitive_desc_t primitive_desc), (primitive, primitive_desc)) \
    X(dnnl_status_t, dnnl_primitive_desc_create, (dnnl_primitive_desc_t *primitive_desc, const_dnnl_op_desc_t op_desc, const_dnnl_primitive_attr_t attr, dnnl_engine_t engine, const_dnnl_primitive_desc_t hint_forward_primitive_desc), (primitive_desc, op_desc, attr, engine, hint_forward_primitive_desc)) \
    X(dnnl_status_t, dnnl_primitive_desc_destroy, (dnnl_primitive_desc_t primitive_desc), (primitive_desc)) \
    X(dnnl_status_t, dnnl_primitive_desc_query, (const_dnnl_primitive_desc_t primitive_desc, dnnl_query_t what, int index, void *result), (primitive_desc, what, index, result)) \
    X(const dnnl_memory_desc_t *, dnnl_primitive_desc_query_md, (const_dnnl_primitive_desc_t primitive_desc, dnnl_query_t what, int index), (primitive_desc, what, index)) \
    X(dnnl_status_t, dnnl_primitive_destroy, (dnnl_primitive_t primitive), (primitive)) \
    X(dnnl_status_t, dnnl_primitive_execute, (const_dnnl_primitive_t primitive, dnnl_stream_t stream, int nargs, const dnnl_exec_arg_t *args), (primitive, stream, nargs, args)) \
    X(dnnl_status_t, dnnl_primitive_get_primitive_desc, (const_dnnl_primitive_t primitive, const_dnnl_primitive_desc_t *primitive_desc), (primitive, primitive_desc)) \
    X(dnnl_status_t, dnnl_reorder_primitive_desc_create, (dnnl_primitive_desc_t *reorder_primitive_desc, const dnnl_memory_desc_t *src_desc, dnnl_engine_t src_engine, const dnnl_memory_desc_t *dst_desc, dnnl_engine_t dst_engine, const_dnnl_primitive_attr_t attr), (reorder_primitive_desc, src_desc, src_engine, dst_desc, dst_engine, attr)) \
    X(dnnl_status_t, dnnl_stream_destroy, (dnnl_stream_t stream), (stream)) \
    X(dnnl_status_t, dnnl_set_jit_profiling_flags, (unsigned flags), (flags)) \
    X(dnnl_status_t, dnnl_stream_create, (dnnl_stream_t *stream, dnnl_engine_t engine, unsigned flags), (stream, engine, flags)) \
    X(dnnl_status_t, dnnl_stream_wait, (dnnl_stream_t stream), (stream))
#else
#define FV_DNNL_FUNCS(X, V)
#endif

#ifdef FV_LAZY_LIBS /* else (-Dlazy_libs=false) the library links OpenBLAS and oneDNN */
typedef struct {
    pthread_once_t once;
    const char    *soname;
    int            status; /* 1 loaded, -1 failed */
    char           err[512];
} Lib;

static Lib g_blas = { PTHREAD_ONCE_INIT, FV_OPENBLAS_LIB, 0, "" };
static struct {
    void (*openblas_set_num_threads)(int num_threads);
#define X(ret, name, params, args) ret(*name) params;
#define V(name, params, args) void(*name) params;
    FV_OPENBLAS_FUNCS(X, V)
#undef X
#undef V
} g_blas_fn;
static int g_blas_threads; /* openblas_set_num_threads() before the load: applied by it */

static void *open_lib(Lib *l)
{
    void *h = dlopen(l->soname, RTLD_LAZY | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(l->err, sizeof(l->err), "cannot load %s", e ? e : l->soname);
        l->status = -1;
    }
    return h;
}

#define LOOKUP(l, fn, h, name)                                                                                     \
    if (!(*(void **)&(fn).name = dlsym(h, #name))) {                                                                 \
        snprintf((l)->err, sizeof((l)->err), "cannot load %s: it has no %s", (l)->soname, #name);                   \
        (l)->status = -1;                                                                                            \
        return;                                                                                                      \
    }

static void blas_once(void)
{
    void *h = open_lib(&g_blas);
    if (!h)
        return;
#define X(ret, name, params, args) LOOKUP(&g_blas, g_blas_fn, h, name)
#define V(name, params, args) LOOKUP(&g_blas, g_blas_fn, h, name)
    FV_OPENBLAS_FUNCS(X, V)
    V(openblas_set_num_threads, , )
#undef X
#undef V
    /* published with the functions, then the thread count set so far applied: a setter that stored its count
     * before this store sees the library loaded and applies it itself, or its count is read here */
    __atomic_store_n(&g_blas.status, 1, __ATOMIC_SEQ_CST);
    const int n = __atomic_load_n(&g_blas_threads, __ATOMIC_SEQ_CST);
    if (n > 0)
        g_blas_fn.openblas_set_num_threads(n);
}

/* The library is needed where no error can be returned (a matrix product): when it is missing, say so on one
 * line and stop, as the dynamic loader would have at process start. */
static void need(Lib *l, void (*once)(void))
{
    if (__builtin_expect(__atomic_load_n(&l->status, __ATOMIC_ACQUIRE) > 0, 1))
        return;
    pthread_once(&l->once, once);
    if (l->status < 0) {
        fprintf(stderr, "fibvid: %s\n", l->err);
        exit(3); /* README "Exit codes": runtime failure */
    }
}

void openblas_set_num_threads(int num_threads);
void openblas_set_num_threads(int num_threads)
{
    __atomic_store_n(&g_blas_threads, num_threads, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&g_blas.status, __ATOMIC_SEQ_CST) > 0)
        g_blas_fn.openblas_set_num_threads(num_threads);
}

#define X(ret, name, params, args)                                                                                 \
    ret name params                                                                                                  \
    {                                                                                                                \
        need(&g_blas, blas_once);                                                                                    \
        return g_blas_fn.name args;                                                                                  \
    }
#define V(name, params, args)                                                                                      \
    void name params                                                                                                 \
    {                                                                                                                \
        need(&g_blas, blas_once);                                                                                    \
        g_blas_fn.name args;                                                                                         \
    }
FV_OPENBLAS_FUNCS(X, V)
#undef X
#undef V

#ifdef FV_HAVE_DNNL
static Lib g_dnnl = { PTHREAD_ONCE_INIT, FV_DNNL_SONAME(DNNL_VERSION_MAJOR), 0, "" };
static struct {
#define X(ret, name, params, args) ret(*name) params;
    FV_DNNL_FUNCS(X, X)
#undef X
} g_dnnl_fn;

static void dnnl_once(void)
{
    void *h = open_lib(&g_dnnl);
    if (!h)
        return;
#define X(ret, name, params, args) LOOKUP(&g_dnnl, g_dnnl_fn, h, name)
    FV_DNNL_FUNCS(X, X)
#undef X
    __atomic_store_n(&g_dnnl.status, 1, __ATOMIC_RELEASE);
}

#define X(ret, name, params, args)                                                                                 \
    ret name params                                                                                                  \
    {                                                                                                                \
        need(&g_dnnl, dnnl_once);                                                                                    \
        return g_dnnl_fn.name args;                                                                                  \
    }
FV_DNNL_FUNCS(X, X)
#undef X
#endif

#endif /* FV_LAZY_LIBS */

void fv_gemm_libs_preload(void)
{
#ifdef FV_LAZY_LIBS
#ifdef FV_HAVE_DNNL
    pthread_once(&g_dnnl.once, dnnl_once);
#else
    pthread_once(&g_blas.once, blas_once);
#endif
#endif
}

#define FV_STR2(x) #x
#define FV_STR(x) FV_STR2(x)

const char *fv_libraries_built(void)
{
    return
#ifdef FV_HAVE_DNNL
        "oneDNN " FV_STR(DNNL_VERSION_MAJOR) "." FV_STR(DNNL_VERSION_MINOR) "." FV_STR(DNNL_VERSION_PATCH) ","
#endif
        OPENBLAS_VERSION
#ifdef FV_LAZY_LIBS
        "(built against; loaded on first use)";
#else
        "(built against; linked)";
#endif
}
