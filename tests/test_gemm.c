/* GEMM backends: OpenBLAS against the plain C reference on random shapes, with bias and accumulation. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/gemm.h"
#include "util/util.h"
#include "testutil.h"

static void fill(float *x, int64_t n, uint64_t *st)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = fv_rand_normal(st);
}

static void check_shape(int32_t M, int32_t N, int32_t K, int with_bias, int accumulate)
{
    uint64_t st = (uint64_t)M * 1000003u + N * 1009u + K;
    float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    fill(A, (int64_t)M * K, &st);
    fill(W, (int64_t)N * K, &st);
    fill(b, N, &st);
    fill(C1, (int64_t)M * N, &st);
    memcpy(C2, C1, sizeof(float) * M * N);
    float *C0 = malloc(sizeof(float) * M * N);
    memcpy(C0, C1, sizeof(float) * M * N);
    fv_gemm_set_backend(FV_GEMM_REF);
    fv_linear(C2, A, W, with_bias ? b : NULL, M, K, N, accumulate);
    static const FvGemmBackend fast[] = { FV_GEMM_BLAS, FV_GEMM_DNNL };
    for (size_t i = 0; i < 2; i++) {
        if (!fv_gemm_available(fast[i]))
            continue;
        memcpy(C1, C0, sizeof(float) * M * N);
        fv_gemm_set_backend(fast[i]);
        fv_linear(C1, A, W, with_bias ? b : NULL, M, K, N, accumulate);
        /* normalised bound: each output sums K products of N(0,1) values, so the error scales with sqrt(K) */
        double d = fvt_max_abs_diff(C1, C2, (size_t)M * N), tol = 2e-6 * sqrt((double)K) * 8;
        printf("gemm %s M=%d N=%d K=%d bias=%d acc=%d: max abs diff %g (tol %g)\n",
               fv_gemm_backend_name(fast[i]), M, N, K, with_bias, accumulate, d, tol);
        assert_true(d <= tol);
    }
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
    free(C0);
    free(A); free(W); free(b); free(C1); free(C2);
}

static void test_gemm_shapes(void **state)
{
    (void)state;
    static const int32_t shapes[][3] = { { 1, 1, 1 }, { 3, 5, 7 }, { 17, 33, 65 }, { 197, 48, 48 },
                                         { 64, 144, 48 }, { 1, 400, 768 }, { 129, 257, 31 } };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (int bias = 0; bias < 2; bias++)
            for (int acc = 0; acc < 2; acc++)
                check_shape(shapes[i][0], shapes[i][1], shapes[i][2], bias, acc);
}

static void test_linear_known(void **state)
{
    (void)state;
    /* y = x W^T + b with hand-computed values; W is [out, in] like PyTorch */
    const float x[2 * 3] = { 1, 2, 3, -1, 0, 1 };
    const float W[2 * 3] = { 1, 0, -1, 0.5f, 0.5f, 0.5f };
    const float b[2] = { 10, -10 };
    float y[4] = { 100, 100, 100, 100 };
    static const FvGemmBackend all[] = { FV_GEMM_BLAS, FV_GEMM_REF, FV_GEMM_DNNL };
    for (int be = 0; be < 3; be++) {
        if (!fv_gemm_available(all[be]))
            continue;
        fv_gemm_set_backend(all[be]);
        fv_linear(y, x, W, b, 2, 3, 2, 0);
        assert_float_equal(y[0], 10 + (1 - 3), 1e-6);
        assert_float_equal(y[1], -10 + 3, 1e-6);
        assert_float_equal(y[2], 10 + (-1 - 1), 1e-6);
        assert_float_equal(y[3], -10 + 0, 1e-6);
        fv_linear(y, x, W, NULL, 2, 3, 2, 1); /* accumulate without bias */
        assert_float_equal(y[0], 8 - 2, 1e-6);
        assert_float_equal(y[3], -10 + 0, 1e-6);
    }
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
}

static void test_nn_tn(void **state)
{
    (void)state;
    /* the other product forms against the reference, every backend */
    const int32_t M = 37, N = 29, K = 41;
    uint64_t st = 99;
    float A[41 * 41], B[41 * 41], R[37 * 29], C[37 * 29];
    fill(A, 41 * 41, &st);
    fill(B, 41 * 41, &st);
    static const FvGemmBackend fast[] = { FV_GEMM_BLAS, FV_GEMM_DNNL };
    for (int form = 0; form < 2; form++)
        for (size_t i = 0; i < 2; i++) {
            if (!fv_gemm_available(fast[i]))
                continue;
            const FvGemmDsp *ref = fv_gemm_dsp(FV_GEMM_REF), *g = fv_gemm_dsp(fast[i]);
            if (form == 0) { /* C = A (M,K) B (K,N) */
                ref->sgemm_nn(M, N, K, A, K, B, N, 0.0f, R, N);
                g->sgemm_nn(M, N, K, A, K, B, N, 0.0f, C, N);
            } else {         /* C = A^T B, A (K,M) */
                ref->sgemm_tn(M, N, K, A, M, B, N, 0.0f, R, N);
                g->sgemm_tn(M, N, K, A, M, B, N, 0.0f, C, N);
            }
            double d = fvt_max_abs_diff(R, C, (size_t)M * N);
            printf("%s %s: max abs diff %g\n", fv_gemm_backend_name(fast[i]), form ? "tn" : "nn", d);
            assert_true(d < 1e-4);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_known),
        cmocka_unit_test(test_gemm_shapes),
        cmocka_unit_test(test_nn_tn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
