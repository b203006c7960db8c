/* LayerNorm, exact GELU and softmax against double-precision formulas. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "util/util.h"
#include "kernels/fastmath.h"
#include "kernels/bf16.h"
#include "kernels/layers.h"

static void test_layernorm(void **state)
{
    (void)state;
    const int32_t rows = 37, D = 48;
    uint64_t st = 3;
    float *x = malloc(sizeof(float) * rows * (D + 5)), *y = malloc(sizeof(float) * rows * D);
    float w[48], b[48];
    for (int i = 0; i < rows * (D + 5); i++)
        x[i] = 100.0f + 3.0f * fv_rand_normal(&st); /* a large offset: mean must be removed first */
    for (int i = 0; i < D; i++) {
        w[i] = fv_rand_normal(&st);
        b[i] = fv_rand_normal(&st);
    }
    fv_layernorm_forward(y, D, x, D + 5, NULL, NULL, w, b, rows, D, 1e-6f); /* strided input rows */
    double md = 0;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * (D + 5);
        double mean = 0, var = 0;
        for (int i = 0; i < D; i++)
            mean += xr[i];
        mean /= D;
        for (int i = 0; i < D; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= D;
        for (int i = 0; i < D; i++) {
            double ref = (xr[i] - mean) / sqrt(var + 1e-6) * w[i] + b[i];
            md = fmax(md, fabs(ref - y[r * D + i]));
        }
    }
    printf("layernorm max abs diff %g\n", md);
    assert_true(md < 2e-4);
    free(x);
    free(y);
}

/* The gathering LayerNorm (inference's spatial sequences) against fv_layernorm_forward on the rows it names,
 * fp32 and rounded to bf16. */
static void test_layernorm_gather(void **state)
{
    (void)state;
    const int32_t rows = 29, src_rows = 41, D = 40, ldi = D + 3;
    uint64_t st = 5;
    float *x = malloc(sizeof(float) * src_rows * ldi), *want = malloc(sizeof(float) * rows * D);
    float *got = malloc(sizeof(float) * rows * D), w[40], b[40];
    uint16_t *got16 = malloc(sizeof(uint16_t) * rows * D);
    int32_t idx[29];
    assert_non_null(x);
    assert_non_null(want);
    assert_non_null(got);
    assert_non_null(got16);
    for (int i = 0; i < src_rows * ldi; i++)
        x[i] = 10.0f + 2.0f * fv_rand_normal(&st);
    for (int i = 0; i < D; i++) {
        w[i] = fv_rand_normal(&st);
        b[i] = fv_rand_normal(&st);
    }
    for (int r = 0; r < rows; r++) { /* rows out of order, as the spatial gather takes them */
        idx[r] = (int32_t)((r * 7 + 3) % src_rows);
        fv_layernorm_forward(want + r * D, D, x + (int64_t)idx[r] * ldi, ldi, NULL, NULL, w, b, 1, D, 1e-6f);
    }
    fv_layernorm_gather(got, D, 0, x, ldi, idx, w, b, rows, D, 1e-6f);
    double d32 = 0.0;
    for (int64_t i = 0; i < (int64_t)rows * D; i++)
        d32 = fmax(d32, fabs((double)got[i] - want[i]));
    fv_layernorm_gather(got16, D, 1, x, ldi, idx, w, b, rows, D, 1e-6f);
    double worst16 = 0.0; /* one bf16 rounding of the fp32 value: within 2^-8 of it */
    for (int64_t i = 0; i < (int64_t)rows * D; i++)
        worst16 = fmax(worst16, fabs((double)fv_f32_from_bf16(got16[i]) - want[i]) / (ldexp(fabs(want[i]), -8) + 1e-6));
    printf("gathered LayerNorm vs LayerNorm of the named rows: fp32 max abs diff %g (tol 1e-5), bf16 worst "
           "diff / (2^-8 |ref| + 1e-6) %.3f (tol 1)\n", d32, worst16);
    assert_true(d32 <= 1e-5);
    assert_true(worst16 <= 1.0);
    free(x);
    free(want);
    free(got);
    free(got16);
}

static void test_gelu(void **state)
{
    (void)state;
    float x[2001];
    for (int i = 0; i < 2001; i++)
        x[i] = -10.0f + i * 0.01f;
    float y[2001];
    for (int i = 0; i < 2001; i++)
        y[i] = x[i];
    fv_gelu(y, 2001);
    double md = 0;
    for (int i = 0; i < 2001; i++) {
        double ref = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        md = fmax(md, fabs(ref - y[i]));
    }
    printf("gelu max abs diff %g\n", md);
    assert_true(md < 1e-5);
    /* exact GELU, not the tanh approximation: they differ by ~1e-3 around |x| = 2 */
    double tanh_approx = 0.5 * 2.0 * (1 + tanh(sqrt(2 / M_PI) * (2.0 + 0.044715 * 8.0)));
    float g2 = 2.0f;
    fv_gelu(&g2, 1);
    assert_true(fabs(g2 - 0.5 * 2.0 * (1 + erf(2.0 / sqrt(2.0)))) < 1e-6);
    assert_true(fabs(g2 - tanh_approx) > 1e-5);
}

static void test_softmax(void **state)
{
    (void)state;
    float x[5] = { 1000.0f, 1001.0f, 999.0f, -INFINITY, 1000.0f }; /* stable with big logits, -inf -> 0 */
    fv_softmax(x, 5);
    double z = exp(0) + exp(1) + exp(-1) + exp(0);
    assert_float_equal(x[1], exp(1) / z, 1e-6);
    assert_float_equal(x[3], 0.0f, 0);
    double s = 0;
    for (int i = 0; i < 5; i++)
        s += x[i];
    assert_float_equal(s, 1.0, 1e-6);
}

static void test_fastmath(void **state)
{
    (void)state;
    double mrel = 0, mabs = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + i * (167.0f / 200000); /* softmax and GELU only need x <= 0 */
        double ref = exp((double)x), got = fv_expf(x);
        mrel = fmax(mrel, fabs(got - ref) / ref);
    }
    for (int i = 0; i <= 200000; i++) {
        float x = -6.0f + i * (12.0f / 200000);
        mabs = fmax(mabs, fabs(fv_erf(x) - erf((double)x)));
    }
    printf("fv_expf max rel error %g, fv_erf max abs error %g\n", mrel, mabs);
    assert_true(mrel < 5e-7);
    assert_true(mabs < 1e-6);
    assert_true(fv_expf(-INFINITY) == 0.0f && fv_expf(-100.0f) == 0.0f && fv_expf(0.0f) == 1.0f);
    assert_true(isnan(fv_expf(NAN))); /* and no undefined integer conversion on the way (UBSan) */
    assert_true(fv_erf(0.0f) == 0.0f && fv_erf(10.0f) == 1.0f && fv_erf(-10.0f) == -1.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_layernorm_gather),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_fastmath),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
