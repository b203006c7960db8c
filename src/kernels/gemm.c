/* GEMM kernels behind FvGemmDsp: plain C reference, OpenBLAS, and oneDNN where it is installed. */
#include <cblas.h>
#ifdef FV_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#include <string.h>

#include "kernels/gemm.h"
#include "util/util.h"

static void sgemm_nt_ref(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                         int32_t ldb, float beta, float *C, int32_t ldc)
{
#pragma omp parallel for schedule(static)
    for (int32_t i = 0; i < M; i++) {
        for (int32_t j = 0; j < N; j++) {
            double acc = 0.0; /* double: the reference must not be the error source */
            for (int32_t k = 0; k < K; k++)
                acc += (double)A[(int64_t)i * lda + k] * B[(int64_t)j * ldb + k];
            float *c = &C[(int64_t)i * ldc + j];
            *c = (float)acc + (beta != 0.0f ? beta * *c : 0.0f);
        }
    }
}

static void sgemm_nn_ref(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                         int32_t ldb, float beta, float *C, int32_t ldc)
{
    for (int32_t i = 0; i < M; i++) {
        for (int32_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int32_t k = 0; k < K; k++)
                acc += (double)A[(int64_t)i * lda + k] * B[(int64_t)k * ldb + j];
            float *c = &C[(int64_t)i * ldc + j];
            *c = (float)acc + (beta != 0.0f ? beta * *c : 0.0f);
        }
    }
}

static void sgemm_tn_ref(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                         int32_t ldb, float beta, float *C, int32_t ldc)
{
    for (int32_t i = 0; i < M; i++) {
        for (int32_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int32_t k = 0; k < K; k++)
                acc += (double)A[(int64_t)k * lda + i] * B[(int64_t)k * ldb + j];
            float *c = &C[(int64_t)i * ldc + j];
            *c = (float)acc + (beta != 0.0f ? beta * *c : 0.0f);
        }
    }
}

static void sgemm_tn_blas(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void sgemm_nn_blas(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void sgemm_nt_blas(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

#ifdef FV_HAVE_DNNL
/* oneDNN's sgemm takes row-major operands, like the CBLAS row-major calls above. */
static void sgemm_nt_dnnl(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    dnnl_sgemm('N', 'T', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void sgemm_nn_dnnl(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    dnnl_sgemm('N', 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void sgemm_tn_dnnl(int32_t M, int32_t N, int32_t K, const float *A, int32_t lda, const float *B,
                          int32_t ldb, float beta, float *C, int32_t ldc)
{
    dnnl_sgemm('T', 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
#endif

static const FvGemmDsp g_dsp[] = {
    [FV_GEMM_BLAS] = { sgemm_nt_blas, sgemm_nn_blas, sgemm_tn_blas },
    [FV_GEMM_REF]  = { sgemm_nt_ref, sgemm_nn_ref, sgemm_tn_ref },
#ifdef FV_HAVE_DNNL
    [FV_GEMM_DNNL] = { sgemm_nt_dnnl, sgemm_nn_dnnl, sgemm_tn_dnnl },
#endif
};

static FvGemmBackend g_backend = FV_GEMM_DEFAULT;

int fv_gemm_available(FvGemmBackend b)
{
    return b == FV_GEMM_BLAS || b == FV_GEMM_REF || (b == FV_GEMM_DNNL && FV_GEMM_DEFAULT == FV_GEMM_DNNL);
}

void fv_gemm_set_backend(FvGemmBackend b)
{
    if (fv_gemm_available(b))
        g_backend = b;
}

FvGemmBackend fv_gemm_backend(void)
{
    return g_backend;
}

const char *fv_gemm_backend_name(FvGemmBackend b)
{
    return b == FV_GEMM_DNNL ? "onednn" : b == FV_GEMM_REF ? "reference" : "openblas";
}

int fv_set_gemm_backend(const char *name)
{
    static const FvGemmBackend all[] = { FV_GEMM_DNNL, FV_GEMM_BLAS, FV_GEMM_REF };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (name && !strcmp(name, fv_gemm_backend_name(all[i])) && fv_gemm_available(all[i])) {
            g_backend = all[i];
            return 0;
        }
    return fv_error(FV_EINVAL, "fv_set_gemm_backend: '%s' is not built in (onednn%s, openblas, reference)",
                    name ? name : "(null)", fv_gemm_available(FV_GEMM_DNNL) ? "" : " is not");
}

const char *fv_gemm_backend_current(void)
{
    return fv_gemm_backend_name(g_backend);
}

/* The libraries behind the backends and the instruction set they run, for --version and bench. */
const char *fv_gemm_describe(void)
{
    static char buf[512];
    if (buf[0])
        return buf;
    int n = 0;
#ifdef FV_HAVE_DNNL
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } isas[] = { { dnnl_cpu_isa_sse41, "sse4.1" },
                 { dnnl_cpu_isa_avx, "avx" },
                 { dnnl_cpu_isa_avx2, "avx2" },
                 { dnnl_cpu_isa_avx2_vnni, "avx2_vnni" },
                 { dnnl_cpu_isa_avx512_core, "avx512_core" },
                 { dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni" },
                 { dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16" },
                 { dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx" } };
    const dnnl_version_t *v = dnnl_version();
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *isa_name = "unknown";
    for (size_t i = 0; i < sizeof(isas) / sizeof(isas[0]); i++)
        if (isas[i].isa == isa)
            isa_name = isas[i].name;
    n = snprintf(buf, sizeof(buf), "oneDNN %d.%d.%d (ISA %s); ", v->major, v->minor, v->patch, isa_name);
#endif
    char *cfg = openblas_get_config(), *core = openblas_get_corename();
    if (cfg && !strncmp(cfg, "OpenBLAS ", 9))
        cfg += 9;
    snprintf(buf + n, sizeof(buf) - (size_t)n, "OpenBLAS %s (core %s)", cfg ? cfg : "?", core ? core : "?");
    return buf;
}

const FvGemmDsp *fv_gemm_dsp(FvGemmBackend b)
{
    return fv_gemm_available(b) ? &g_dsp[b] : &g_dsp[FV_GEMM_BLAS];
}

const FvGemmDsp *fv_gemm(void)
{
    return &g_dsp[g_backend];
}

void fv_linear(float *out, const float *in, const float *w, const float *b, int32_t rows, int32_t n_in,
               int32_t n_out, int accumulate)
{
    /* the bias is put in first so the product can accumulate onto it (beta = 1): one pass over out */
    if (b) {
#pragma omp parallel for schedule(static) if (rows > 64)
        for (int32_t r = 0; r < rows; r++) {
            float *o = out + (int64_t)r * n_out;
            if (accumulate)
                for (int32_t j = 0; j < n_out; j++)
                    o[j] += b[j];
            else
                memcpy(o, b, sizeof(float) * n_out);
        }
    }
    float beta = (b || accumulate) ? 1.0f : 0.0f;
    g_dsp[g_backend].sgemm_nt(rows, n_out, n_in, in, n_in, w, n_in, beta, out, n_out);
}

/* db (n) += column sums of dy (rows, n), in double per 64-column chunk. */
static void bias_backward(float *db, const float *dy, int64_t rows, int32_t n)
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

void fv_linear_backward(float *dx, int acc, const float *dy, const float *x, const float *w, float *dw, float *db,
                        int64_t rows, int32_t n_in, int32_t n_out)
{
    const FvGemmDsp *g = &g_dsp[g_backend];
    if (dx)
        g->sgemm_nn((int32_t)rows, n_in, n_out, dy, n_out, w, n_in, acc ? 1.0f : 0.0f, dx, n_in);
    g->sgemm_tn(n_out, n_in, (int32_t)rows, dy, n_out, x, n_in, 1.0f, dw, n_in);
    if (db)
        bias_backward(db, dy, rows, n_out);
}
