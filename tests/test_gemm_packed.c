/* Packed weights (kernels/gemm_packed.h): oneDNN matmul primitives on weights reordered once, with bias, GELU and
 * the residual add fused, against the plain C reference (double accumulation): fp32 to a tight tolerance, bf16
 * against the reference on the same bf16-rounded operands; the plain layouts (OpenBLAS, reference); the bf16
 * rounding; products from several threads at once through the primitive cache, and one primitive run by two of
 * the caller's threads at once. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/gemm.h"
#include "kernels/gemm_packed.h"
#include "util/util.h"
#include "testutil.h"

static void fill(float *x, int64_t n, uint64_t *st)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = fv_rand_normal(st);
}

static const int32_t shapes[][3] = { { 1, 1, 1 }, { 3, 5, 7 }, { 17, 33, 65 }, { 197, 48, 48 }, { 64, 144, 48 },
                                     { 1, 400, 768 }, { 129, 257, 31 }, { 300, 192, 768 } };
static const int flag_sets[] = { 0, FV_LIN_GELU, FV_LIN_SUM, FV_LIN_GELU | FV_LIN_SUM };

/* max |a - b| / (tol_abs + tol_rel |b|) over n values: <= 1 passes */
static double worst(const float *a, const float *b, size_t n, double tol_abs, double tol_rel, double *maxd)
{
    double w = 0.0;
    *maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        *maxd = d > *maxd ? d : *maxd;
        const double r = d / (tol_abs + tol_rel * fabs((double)b[i]));
        w = r > w ? r : w;
    }
    return w;
}

/* One shape and flag set in @dt (@out_bf16: bf16 output) under the backend selected now, against the reference. */
static void check(int32_t M, int32_t N, int32_t K, int flags, FvGemmType dt, int bias)
{
    uint64_t st = (uint64_t)M * 1000003u + N * 1009u + K + (uint64_t)flags * 7;
    float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
    float *C0 = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N), *C = malloc(sizeof(float) * M * N);
    uint16_t *A16 = malloc(2 * (size_t)M * K), *W16 = malloc(2 * (size_t)N * K);
    uint16_t *R16 = malloc(2 * (size_t)M * N), *C16 = malloc(2 * (size_t)M * N);
    fill(A, (int64_t)M * K, &st);
    fill(W, (int64_t)N * K, &st);
    fill(b, N, &st);
    fill(C0, (int64_t)M * N, &st);
    FvPackedW *pw = NULL;
    assert_int_equal(fv_packed_create(&pw, W, N, K, dt), 0);
    const double tol = 2e-6 * sqrt((double)K) * 8; /* as test_gemm: the error grows with sqrt(K) */
    double d, w;
    const char *be = fv_gemm_backend_name(fv_gemm_backend());
    if (dt == FV_GT_F32) {
        memcpy(R, C0, sizeof(float) * M * N);
        memcpy(C, C0, sizeof(float) * M * N);
        fv_linear_ref(R, A, W, FV_GT_F32, bias ? b : NULL, M, N, K, flags);
        assert_int_equal(fv_linear_packed(C, A, pw, bias ? b : NULL, M, flags), 0);
        w = worst(C, R, (size_t)M * N, tol, 1e-6, &d);
        printf("fp32 %s%s M=%d N=%d K=%d flags=%d bias=%d: max abs diff %g (tol %g + 1e-6 |ref|)\n", be,
               fv_packed_is_blocked(pw) ? " packed" : " plain", M, N, K, flags, bias, d, tol);
        assert_true(w <= 1.0);
    } else {
        /* the reference on the same bf16-rounded operands, so only the accumulation order (and the bf16 rounding
         * of an output in bf16) differs */
        fv_f32_to_bf16(A16, A, (int64_t)M * K);
        for (int64_t i = 0; i < (int64_t)N * K; i++)
            W16[i] = fv_bf16_from_f32(W[i]);
        for (int out16 = 0; out16 < 2; out16++) {
            const int fl = flags | (out16 ? FV_LIN_OUT_BF16 : 0);
            if (out16) {
                fv_f32_to_bf16(R16, C0, (int64_t)M * N);
                memcpy(C16, R16, 2 * (size_t)M * N);
                fv_linear_ref(R16, A16, W16, FV_GT_BF16, bias ? b : NULL, M, N, K, fl);
                assert_int_equal(fv_linear_packed(C16, A16, pw, bias ? b : NULL, M, fl), 0);
                fv_bf16_to_f32(R, R16, (int64_t)M * N);
                fv_bf16_to_f32(C, C16, (int64_t)M * N);
            } else {
                memcpy(R, C0, sizeof(float) * M * N);
                memcpy(C, C0, sizeof(float) * M * N);
                fv_linear_ref(R, A16, W16, FV_GT_BF16, bias ? b : NULL, M, N, K, fl);
                assert_int_equal(fv_linear_packed(C, A16, pw, bias ? b : NULL, M, fl), 0);
            }
            /* a bf16 output may round the other way: one bf16 step (2^-7 relative) on top */
            const double rel = out16 ? 1.0 / 128 : 1e-6;
            w = worst(C, R, (size_t)M * N, tol, rel, &d);
            printf("bf16 %s%s M=%d N=%d K=%d flags=%d bias=%d out=%s: max abs diff %g (tol %g + %g |ref|)\n", be,
                   fv_packed_is_blocked(pw) ? " packed" : " plain", M, N, K, flags, bias, out16 ? "bf16" : "fp32", d,
                   tol, rel);
            assert_true(w <= 1.0);
        }
    }
    fv_packed_free(&pw);
    free(A); free(W); free(b); free(C0); free(R); free(C); free(A16); free(W16); free(R16); free(C16);
}

static void run_all(FvGemmType dt)
{
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++)
            check(shapes[i][0], shapes[i][1], shapes[i][2], flag_sets[f], dt, f != 2 || i % 2);
}

static void test_packed_fp32(void **state)
{
    (void)state;
    static const FvGemmBackend all[] = { FV_GEMM_DNNL, FV_GEMM_BLAS, FV_GEMM_REF };
    for (size_t i = 0; i < 3; i++) {
        if (!fv_gemm_available(all[i])) {
            printf("fp32 %s: not built in, skipped\n", fv_gemm_backend_name(all[i]));
            continue;
        }
        fv_gemm_set_backend(all[i]);
        run_all(FV_GT_F32);
    }
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
}

static void test_packed_bf16(void **state)
{
    (void)state;
    /* the plain C bf16 kernel (weights packed under another backend) always; oneDNN's where the CPU has bf16 */
    fv_gemm_set_backend(FV_GEMM_REF);
    run_all(FV_GT_BF16);
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
    if (!fv_gemm_available(FV_GEMM_DNNL) || !fv_bf16_supported()) {
        printf("bf16 onednn: skipped, %s\n", fv_gemm_available(FV_GEMM_DNNL) ? "this CPU has no AVX512-BF16 / AMX"
                                                                             : "built without oneDNN");
        return;
    }
    fv_gemm_set_backend(FV_GEMM_DNNL);
    printf("bf16 onednn implementation: %s\n", fv_packed_impl(FV_GT_BF16));
    run_all(FV_GT_BF16);
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
}

static void test_bf16_rounding(void **state)
{
    (void)state;
    assert_int_equal(fv_bf16_from_f32(1.0f), 0x3f80);
    assert_int_equal(fv_bf16_from_f32(-2.0f), 0xc000);
    assert_int_equal(fv_bf16_from_f32(1.0f + 1.0f / 256), 0x3f80);     /* tie: to even (down) */
    assert_int_equal(fv_bf16_from_f32(1.0f + 3.0f / 256), 0x3f82);     /* tie: to even (up) */
    assert_int_equal(fv_bf16_from_f32(1.0f + 1.0f / 256 + 1.0f / 65536), 0x3f81); /* above the tie */
    assert_int_equal(fv_bf16_from_f32(INFINITY), 0x7f80);
    assert_int_equal(fv_bf16_from_f32(3.4028235e38f), 0x7f80);        /* FLT_MAX rounds to infinity */
    assert_true(isnan(fv_f32_from_bf16(fv_bf16_from_f32(NAN))));
    assert_true(fv_f32_from_bf16(0x3f81) == 1.0f + 1.0f / 128);
    /* every bf16 value converts back exactly */
    for (uint32_t h = 0; h < 0x10000; h++) {
        const float f = fv_f32_from_bf16((uint16_t)h);
        if (!isnan(f))
            assert_int_equal(fv_bf16_from_f32(f), h);
    }
}

/* Products of several shapes from the threads of one OpenMP region at once (each runs its primitive single-
 * threaded), equal to the same products made one at a time. */
static void test_packed_threads(void **state)
{
    (void)state;
    if (!fv_gemm_available(FV_GEMM_DNNL)) {
        printf("skipped: built without oneDNN\n");
        return;
    }
    fv_gemm_set_backend(FV_GEMM_DNNL);
    const int32_t N = 96, K = 80, J = 8;
    uint64_t st = 5;
    float *W = malloc(sizeof(float) * N * K), *A = malloc(sizeof(float) * 64 * K);
    float *C = calloc((size_t)J * 64 * N, sizeof(float)), *R = calloc((size_t)J * 64 * N, sizeof(float));
    fill(W, (int64_t)N * K, &st);
    fill(A, (int64_t)64 * K, &st);
    FvPackedW *pw = NULL;
    assert_int_equal(fv_packed_create(&pw, W, N, K, FV_GT_F32), 0);
    for (int32_t j = 0; j < J; j++)
        assert_int_equal(fv_linear_packed(R + (int64_t)j * 64 * N, A, pw, NULL, 8 * (j + 1), FV_LIN_GELU), 0);
    int bad = 0;
#pragma omp parallel for schedule(dynamic) num_threads(4) reduction(+ : bad)
    for (int32_t j = 0; j < 4 * J; j++)
        bad += fv_linear_packed(C + (int64_t)(j % J) * 64 * N, A, pw, NULL, 8 * (j % J + 1), FV_LIN_GELU) != 0;
    assert_int_equal(bad, 0);
    const double d = fvt_max_abs_diff(C, R, (size_t)J * 64 * N);
    printf("threads: max abs diff %g (tol 0: the same primitive on the same data)\n", d);
    assert_true(d == 0.0);
    fv_packed_free(&pw);
    free(W); free(A); free(C); free(R);
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
}

/* One primitive run by two of the caller's threads at once (each with its own OpenMP team), each on its own input
 * and output: every product bit-identical to the same product made alone. With oneDNN's library-managed
 * scratchpad the threads shared the primitive's scratchpad and about half the products came out wrong (as
 * test_forward's test_two_threads did now and then); gemm_dnnl.c passes each thread's own. */
typedef struct ShareJob {
    const FvPackedW *pw;
    const float *A, *b, *want;
    float *C;
    int32_t M, N, iters;
    int bad, err;
    double maxd;
} ShareJob;

static void *share_thread(void *arg)
{
    ShareJob *j = arg;
    const size_t n = (size_t)j->M * j->N;
    for (int32_t it = 0; it < j->iters; it++) {
        j->err += fv_linear_packed(j->C, j->A, j->pw, j->b, j->M, FV_LIN_GELU) != 0;
        if (memcmp(j->C, j->want, sizeof(float) * n)) {
            j->bad++;
            const double d = fvt_max_abs_diff(j->C, j->want, n);
            j->maxd = d > j->maxd ? d : j->maxd;
        }
    }
    return NULL;
}

static void test_threads_share_primitive(void **state)
{
    (void)state;
    if (!fv_gemm_available(FV_GEMM_DNNL)) {
        printf("skipped: built without oneDNN\n");
        return;
    }
    fv_gemm_set_backend(FV_GEMM_DNNL);
    /* the tiny test model's fc1 and patch embedding: small products, where the threads overlap most */
    static const int32_t mnk[][3] = { { 17, 192, 48 }, { 16, 48, 768 } };
    const int rounds = 10, iters = 200;
    for (size_t s = 0; s < sizeof(mnk) / sizeof(mnk[0]); s++) {
        const int32_t M = mnk[s][0], N = mnk[s][1], K = mnk[s][2];
        uint64_t st = 11 + s;
        float *W = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N), *A[2], *want[2], *C[2];
        fill(W, (int64_t)N * K, &st);
        fill(b, N, &st);
        FvPackedW *pw = NULL;
        assert_int_equal(fv_packed_create(&pw, W, N, K, FV_GT_F32), 0);
        for (int k = 0; k < 2; k++) {
            A[k] = malloc(sizeof(float) * M * K);
            want[k] = malloc(sizeof(float) * M * N);
            C[k] = malloc(sizeof(float) * M * N);
            fill(A[k], (int64_t)M * K, &st);
            assert_int_equal(fv_linear_packed(want[k], A[k], pw, b, M, FV_LIN_GELU), 0);
        }
        int bad = 0, err = 0;
        double maxd = 0.0;
        for (int r = 0; r < rounds; r++) {
            ShareJob jobs[2];
            pthread_t th[2];
            for (int k = 0; k < 2; k++) {
                jobs[k] = (ShareJob){ .pw = pw, .A = A[k], .b = b, .want = want[k], .C = C[k], .M = M, .N = N,
                                      .iters = iters };
                assert_int_equal(pthread_create(&th[k], NULL, share_thread, &jobs[k]), 0);
            }
            for (int k = 0; k < 2; k++) {
                pthread_join(th[k], NULL);
                bad += jobs[k].bad;
                err += jobs[k].err;
                maxd = jobs[k].maxd > maxd ? jobs[k].maxd : maxd;
            }
        }
        printf("%dx%dx%d from two threads at once: %d of %d products differ from one thread's, max abs diff %g "
               "(tol 0)\n", M, N, K, bad, 2 * rounds * iters, maxd);
        assert_int_equal(err, 0);
        assert_int_equal(bad, 0);
        fv_packed_free(&pw);
        for (int k = 0; k < 2; k++) {
            free(A[k]);
            free(want[k]);
            free(C[k]);
        }
        free(W);
        free(b);
    }
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_packed_fp32),
        cmocka_unit_test(test_packed_bf16),
        cmocka_unit_test(test_packed_threads),
        cmocka_unit_test(test_threads_share_primitive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
