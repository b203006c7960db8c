/* Inference precision: the linear weights prepared once (kernels/gemm_packed.h) in fp32 or bf16, the public
 * precision queries, and the machine's measured peak per precision. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "kernels/gemm.h"
#include "model/model_internal.h"
#include "util/util.h"

int fv_precision_parse(const char *name, FvPrecision *p)
{
    if (name && !strcmp(name, "fp32"))
        *p = FV_PRECISION_FP32;
    else if (name && !strcmp(name, "bf16"))
        *p = FV_PRECISION_BF16;
    else
        return fv_error(FV_EINVAL, "unknown precision '%s' (fp32 or bf16)", name ? name : "(null)");
    return 0;
}

const char *fv_precision_name(FvPrecision p)
{
    return p == FV_PRECISION_BF16 ? "bf16" : "fp32";
}

int fv_precision_supported(FvPrecision p)
{
    return p != FV_PRECISION_BF16 || fv_bf16_supported();
}

const char *fv_precision_isa(FvPrecision p)
{
    return fv_packed_impl(p == FV_PRECISION_BF16 ? FV_GT_BF16 : FV_GT_F32);
}

FvPackedW **fv_model_pack_slot(FvModel *m, const float *const *slot, const int64_t *shape, int32_t ndim, int32_t *N,
                               int32_t *K)
{
    FvPackedW **pk = NULL;
    if (slot == &m->w.patch_w)
        pk = &m->w.pk_patch;
    for (int32_t l = 0; !pk && m->w.layers && l < m->cfg.num_layers; l++) {
        FvLayerWeights *L = &m->w.layers[l];
        const float *const *lin[FV_PK_LAYER] = { &L->t_qkv_w, &L->t_proj_w, &L->t_fc_w, &L->qkv_w,
                                                 &L->proj_w,  &L->fc1_w,    &L->fc2_w };
        for (int i = 0; i < FV_PK_LAYER && !pk; i++)
            if (slot == lin[i])
                pk = &L->pk[i];
    }
    if (pk) {
        int64_t k = 1;
        for (int32_t d = 1; d < ndim; d++)
            k *= shape[d];
        *N = (int32_t)shape[0];
        *K = (int32_t)k;
    }
    return pk;
}

int fv_model_fold_slot(const FvModel *m, FvPackedW *const *pk, int32_t *layer)
{
    for (int32_t l = 0; m->w.layers && l < m->cfg.num_layers; l++) {
        const FvLayerWeights *L = &m->w.layers[l];
        if (pk == &L->pk[FV_PK_T_PROJ] || pk == &L->pk[FV_PK_T_FC]) {
            if (layer)
                *layer = l;
            return pk == &L->pk[FV_PK_T_PROJ] ? FV_PK_T_PROJ : FV_PK_T_FC;
        }
    }
    return -1;
}

void fv_model_unpack(FvModel *m)
{
    fv_packed_free(&m->w.pk_patch);
    for (int32_t l = 0; m->w.layers && l < m->cfg.num_layers; l++) {
        for (int i = 0; i < FV_PK_LAYER; i++)
            fv_packed_free(&m->w.layers[l].pk[i]);
        fv_free(m->w.layers[l].t_fold_b);
        m->w.layers[l].t_fold_b = NULL;
    }
    m->packed = 0;
    m->prec = FV_PRECISION_FP32;
}

int fv_model_fold_wanted(FvGemmType dt)
{
    return dt == FV_GT_BF16 || fv_gemm_backend() == FV_GEMM_DNNL;
}

/* W (D, D) = Wf Wp, summed in double: tiles of 4 output rows x 32 columns held in registers (16 zmm of doubles)
 * over the whole inner dimension, so each element of Wp read serves 4 rows and each of Wf 32 columns; a last
 * partial tile of columns the same way with a shorter row. Small models on the calling thread alone: their fold
 * takes milliseconds, and the OpenMP team is better started by the first forward pass than during loading. */
enum { FOLD_R = 4, FOLD_C = 32 };

/* acc[r][0..nc) += sum_j Wf row r [j] * Wp[j][k0..k0+nc); inlined where called, so that a full tile's constant
 * width lets the compiler keep the accumulators in registers */
static inline __attribute__((always_inline)) void fold_acc(double acc[FOLD_R][FOLD_C], const float *const *f,
                                                            const float *Wp, int32_t D, int32_t k0, int32_t nc)
{
    for (int32_t j = 0; j < D; j++) {
        const float *wp = Wp + (int64_t)j * D + k0;
        for (int32_t r = 0; r < FOLD_R; r++) {
            const double fr = f[r][j];
            for (int32_t c = 0; c < nc; c++)
                acc[r][c] += fr * (double)wp[c];
        }
    }
}

static void fold_tile(float *W, const float *Wf, const float *Wp, int32_t D, int32_t i0, int32_t nr, int32_t k0,
                      int32_t nc)
{
    double acc[FOLD_R][FOLD_C] = { { 0 } };
    const float *f[FOLD_R];
    for (int32_t r = 0; r < FOLD_R; r++) /* rows past the end repeat the first: computed, never stored */
        f[r] = Wf + (int64_t)(i0 + (r < nr ? r : 0)) * D;
    if (nc == FOLD_C)
        fold_acc(acc, f, Wp, D, k0, FOLD_C);
    else
        fold_acc(acc, f, Wp, D, k0, nc);
    for (int32_t r = 0; r < nr; r++)
        for (int32_t c = 0; c < nc; c++)
            W[(int64_t)(i0 + r) * D + k0 + c] = (float)acc[r][c];
}

static void fold_product(float *W, const float *Wf, const float *Wp, int32_t D)
{
    const int32_t nrt = (D + FOLD_R - 1) / FOLD_R, nct = (D + FOLD_C - 1) / FOLD_C;
#pragma omp parallel for schedule(dynamic) if (D >= 384)
    for (int64_t t = 0; t < (int64_t)nrt * nct; t++) {
        const int32_t i0 = (int32_t)(t / nct) * FOLD_R, k0 = (int32_t)(t % nct) * FOLD_C;
        fold_tile(W, Wf, Wp, D, i0, FV_MIN(FOLD_R, D - i0), k0, FV_MIN(FOLD_C, D - k0));
    }
}

int fv_model_fold_temporal(FvModel *m, int32_t l, const float *Wp, const float *bp, const float *Wf, const float *bf,
                           FvGemmType dt)
{
    FvLayerWeights *L = &m->w.layers[l];
    const int32_t D = m->cfg.hidden_size;
    float *W = fv_malloc(sizeof(float) * (size_t)D * D), *b = fv_malloc(sizeof(float) * (size_t)D);
    if (!W || !b) {
        fv_free(W);
        fv_free(b);
        return fv_error(FV_ENOMEM, "layer %d: out of memory folding the temporal projection", l);
    }
    fold_product(W, Wf, Wp, D);
    for (int32_t i = 0; i < D; i++) {
        double acc = bf ? bf[i] : 0.0;
        for (int32_t j = 0; j < D; j++)
            acc += (double)Wf[(int64_t)i * D + j] * bp[j];
        b[i] = (float)acc;
    }
    FvPackedW *pk = NULL;
    int ret = fv_packed_create(&pk, W, D, D, dt);
    if (ret >= 0 && dt == FV_GT_F32 && !fv_packed_is_blocked(pk)) /* it would borrow W: not a fold to keep */
        ret = fv_error(FV_EINVAL, "layer %d: folding the temporal projection needs a copying layout", l);
    fv_free(W);
    if (ret < 0) {
        fv_packed_free(&pk);
        fv_free(b);
        return ret;
    }
    fv_packed_free(&L->pk[FV_PK_T_PROJ]);
    fv_packed_free(&L->pk[FV_PK_T_FC]);
    fv_free(L->t_fold_b);
    L->pk[FV_PK_T_FC] = pk;
    L->t_fold_b = b;
    if (fv_packed_is_blocked(pk)) { /* the file's pages are not needed any more */
        fv_st_drop_pages(m->st, Wp, sizeof(float) * (size_t)D * D);
        fv_st_drop_pages(m->st, Wf, sizeof(float) * (size_t)D * D);
    }
    return 0;
}

typedef struct PackWalk {
    FvModel *m;
    FvGemmType dt;
    int fold; /* 1: the temporal projection and temporal_dense are folded after the walk, not packed in it */
} PackWalk;

static int pack_visitor(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    PackWalk *pw = user;
    int32_t N, K;
    FvPackedW **pk = fv_model_pack_slot(pw->m, slot, shape, ndim, &N, &K);
    if (!pk || (pw->fold && fv_model_fold_slot(pw->m, pk, NULL) >= 0))
        return 0;
    if (!*slot)
        return fv_error(FV_EINVAL, "%s: no fp32 weights to prepare (the model keeps bf16 ones only)", name);
    int ret = fv_packed_create(pk, *slot, N, K, pw->dt);
    if (ret < 0)
        return ret;
    if (fv_packed_is_blocked(*pk)) /* copied: the file's pages are not needed any more */
        fv_st_drop_pages(pw->m->st, *slot, sizeof(float) * (size_t)N * K);
    return 0;
}

int fv_model_pack(FvModel *m, FvPrecision p)
{
    if (p == FV_PRECISION_DEFAULT)
        p = FV_PRECISION_FP32;
    if (!fv_precision_supported(p))
        return fv_error(FV_ENOTSUP, "bf16 is not supported here: %s", fv_gemm_available(FV_GEMM_DNNL)
                        ? "the CPU has neither AVX512-BF16 nor AMX" : "fibvid was built without oneDNN");
    /* the weights must all be there before the old prepared ones go */
    FvLayerWeights *L0 = m->w.layers;
    for (int32_t l = 0; L0 && l < m->cfg.num_layers; l++) {
        const FvLayerWeights *L = &L0[l];
        if (!L->t_qkv_w || !L->t_proj_w || !L->t_fc_w || !L->qkv_w || !L->proj_w || !L->fc1_w || !L->fc2_w)
            return fv_error(FV_EINVAL, "the model keeps its linear weights in bf16 only (loaded with bf16): "
                            "load it again for another precision");
    }
    if (!m->w.patch_w)
        return fv_error(FV_EINVAL, "the model keeps its linear weights in bf16 only (loaded with bf16): "
                        "load it again for another precision");
    fv_model_unpack(m);
    PackWalk pw = { .m = m, .dt = p == FV_PRECISION_BF16 ? FV_GT_BF16 : FV_GT_F32 };
    pw.fold = fv_model_fold_wanted(pw.dt);
    int ret = fv_model_visit_tensors(m, pack_visitor, &pw);
    for (int32_t l = 0; ret >= 0 && pw.fold && l < m->cfg.num_layers; l++) {
        const FvLayerWeights *L = &m->w.layers[l];
        ret = fv_model_fold_temporal(m, l, L->t_proj_w, L->t_proj_b, L->t_fc_w, L->t_fc_b, pw.dt);
    }
    if (ret < 0) {
        fv_model_unpack(m);
        return ret;
    }
    m->packed = 1;
    m->prec = p;
    return 0;
}

int fv_model_set_precision(FvModel *m, FvPrecision p)
{
    if (!m)
        return fv_error(FV_EINVAL, "fv_model_set_precision: NULL model");
    if (p == FV_PRECISION_DEFAULT)
        p = FV_PRECISION_FP32;
    if (m->packed && m->prec == p)
        return 0;
    int ret = fv_model_pack(m, p);
    if (ret < 0)
        return ret;
    fv_state_close(&m->state); /* its buffers are typed for the old precision */
    return 0;
}

FvPrecision fv_model_precision(const FvModel *m)
{
    return m->prec == FV_PRECISION_BF16 ? FV_PRECISION_BF16 : FV_PRECISION_FP32;
}

/* ---------------------------------------------------------------------------------------------------- */
/* peak                                                                                                   */

#if defined(__x86_64__) && defined(__GNUC__)
/* 24 independent accumulators (zmm0-23; 4-cycle latency x 2 pipes needs 8) on two constant operands, so the loop
 * never touches memory: @iters x 24 instructions of 16 (fp32) or 32 (bf16 pairs) multiply-adds. */
#define FV_ACC24(op)                                                                                                \
    op " %%zmm24, %%zmm25, %%zmm0\n\t" op " %%zmm24, %%zmm25, %%zmm1\n\t" op " %%zmm24, %%zmm25, %%zmm2\n\t"        \
    op " %%zmm24, %%zmm25, %%zmm3\n\t" op " %%zmm24, %%zmm25, %%zmm4\n\t" op " %%zmm24, %%zmm25, %%zmm5\n\t"        \
    op " %%zmm24, %%zmm25, %%zmm6\n\t" op " %%zmm24, %%zmm25, %%zmm7\n\t" op " %%zmm24, %%zmm25, %%zmm8\n\t"        \
    op " %%zmm24, %%zmm25, %%zmm9\n\t" op " %%zmm24, %%zmm25, %%zmm10\n\t" op " %%zmm24, %%zmm25, %%zmm11\n\t"      \
    op " %%zmm24, %%zmm25, %%zmm12\n\t" op " %%zmm24, %%zmm25, %%zmm13\n\t" op " %%zmm24, %%zmm25, %%zmm14\n\t"     \
    op " %%zmm24, %%zmm25, %%zmm15\n\t" op " %%zmm24, %%zmm25, %%zmm16\n\t" op " %%zmm24, %%zmm25, %%zmm17\n\t"     \
    op " %%zmm24, %%zmm25, %%zmm18\n\t" op " %%zmm24, %%zmm25, %%zmm19\n\t" op " %%zmm24, %%zmm25, %%zmm20\n\t"     \
    op " %%zmm24, %%zmm25, %%zmm21\n\t" op " %%zmm24, %%zmm25, %%zmm22\n\t" op " %%zmm24, %%zmm25, %%zmm23\n\t"
#define FV_ZMM_CLOBBERS                                                                                              \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",       \
        "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", \
        "xmm25", "cc"

__attribute__((target("avx512f"))) static void loop_fp32(long n)
{
    __asm__ volatile("vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
                     "1:\n\t" FV_ACC24("vfmadd231ps") "dec %0\n\tjnz 1b"
                     : "+r"(n)::FV_ZMM_CLOBBERS);
}

__attribute__((target("avx512f,avx512bf16"))) static void loop_bf16(long n)
{
    __asm__ volatile("vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
                     "1:\n\t" FV_ACC24("vdpbf16ps") "dec %0\n\tjnz 1b"
                     : "+r"(n)::FV_ZMM_CLOBBERS);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double fv_peak_gflops(FvPrecision p, double seconds)
{
    const int bf = p == FV_PRECISION_BF16;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || (bf && !__builtin_cpu_supports("avx512bf16")))
        return 0.0;
    const int nt = fv_num_threads();
    const double flop_per_iter = 24.0 * 16 * 2 * (bf ? 2 : 1);
    /* calibrate to about @seconds, then keep the best of 3 runs (the first also wakes the cores up) */
    long n = 100000;
    double best = 0.0;
    for (int rep = 0; rep < 12 && (rep < 3 || best == 0.0); rep++) {
        const double t0 = now_s();
#pragma omp parallel num_threads(nt)
        {
            if (bf)
                loop_bf16(n);
            else
                loop_fp32(n);
        }
        const double t = now_s() - t0;
        if (t < seconds / 4 && rep < 9) { /* too short to time: longer */
            n = (long)(n * (seconds / 3 / (t > 1e-6 ? t : 1e-6)));
            rep = -1;
            continue;
        }
        const double g = nt * (double)n * flop_per_iter / t * 1e-9;
        best = g > best ? g : best;
    }
    return best;
}
#else
double fv_peak_gflops(FvPrecision p, double seconds)
{
    (void)p, (void)seconds;
    return 0.0;
}
#endif
