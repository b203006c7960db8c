/* Dense attention on bf16 operands (kernels/attn_bf16.h): the AVX512-BF16 kernel against its plain C reference
 * (same roundings, sums in double), and against the fp32 attention's reference (fv_attn_forward_ref on the
 * unrounded fp32 qkv), over the lengths and head sizes the models use (spatial 197 / 50 with cls, temporal 8)
 * and odd ones (odd N: the padded key pair; head dims 16, 48, 80: the 16-channel tail). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/attention.h"
#include "kernels/attn_bf16.h"
#include "kernels/gemm_packed.h"
#include "util/util.h"
#include "testutil.h"

static const int32_t shapes[][4] = { /* nseq, N, H, hd */
                                     { 2, 197, 2, 64 }, { 3, 8, 12, 64 }, { 1, 1, 1, 16 }, { 2, 33, 3, 48 },
                                     { 1, 50, 2, 80 },  { 2, 31, 1, 32 }, { 1, 64, 1, 128 } };

/* The kernel against the reference with the same roundings. The two differ by fp32 against double sums and
 * a polynomial exponential against exp, and so by a weight or an output that rounds to the neighbouring bf16: one bf16 step of
 * the output (2^-8 |ref|) plus one step of a weight times |v| (2^-8 max |v|), doubled. */
static void test_kernel_vs_ref(void **state)
{
    (void)state;
    if (!fv_attn_dense_bf16_fast(64)) {
        printf("kernel vs reference: skipped, this CPU has no AVX512-BF16 (or the build no kernel for it)\n");
        skip();
    }
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int32_t B = shapes[s][0], N = shapes[s][1], H = shapes[s][2], hd = shapes[s][3];
        const int64_t D = (int64_t)H * hd, nq = B * N * 3 * D, no = B * N * D;
        uint64_t st = 1234567u + (uint64_t)s;
        uint16_t *qkv = malloc(2 * (size_t)nq), *o = malloc(2 * (size_t)no), *r = malloc(2 * (size_t)no);
        double vmax = 0.0;
        for (int64_t i = 0; i < nq; i++) {
            qkv[i] = fv_bf16_from_f32(1.5f * fv_rand_normal(&st));
            vmax = fmax(vmax, fabs(fv_f32_from_bf16(qkv[i])));
        }
        assert_int_equal(fv_attn_dense_bf16(o, qkv, B, N, H, hd), 0);
        fv_attn_dense_bf16_ref(r, qkv, B, N, H, hd);
        double maxd = 0.0, worst = 0.0;
        for (int64_t i = 0; i < no; i++) {
            const double a = fv_f32_from_bf16(o[i]), b = fv_f32_from_bf16(r[i]);
            const double d = fabs(a - b), tol = 2.0 * (ldexp(vmax, -8) + ldexp(fabs(b), -8));
            maxd = fmax(maxd, d);
            worst = fmax(worst, d / tol);
        }
        printf("bf16 kernel vs reference nseq=%d N=%d H=%d hd=%d: max abs diff %.3g (tol 2 (2^-8 max|v| + 2^-8 "
               "|ref|), max|v| %.2f), worst diff/tol %.3f\n", B, N, H, hd, maxd, vmax, worst);
        assert_true(worst <= 1.0);
        free(qkv), free(o), free(r);
    }
}

/* bf16 attention against the fp32 reference on the unrounded inputs: q, k and v rounded to bf16 (relative
 * 2^-9 each), the weights and the output too. Tolerance 0.03 (absolute, on outputs of order 1 from inputs of
 * standard deviation 1): the worst difference seen is about a third of it. */
static void test_bf16_vs_fp32(void **state)
{
    (void)state;
    const double tol = 0.03;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int32_t B = shapes[s][0], N = shapes[s][1], H = shapes[s][2], hd = shapes[s][3];
        const int64_t D = (int64_t)H * hd, nq = B * N * 3 * D, no = B * N * D;
        uint64_t st = 7654321u + (uint64_t)s;
        float *qkv = malloc(sizeof(float) * (size_t)nq), *ref = malloc(sizeof(float) * (size_t)no);
        uint16_t *q16 = malloc(2 * (size_t)nq), *o16 = malloc(2 * (size_t)no);
        for (int64_t i = 0; i < nq; i++)
            qkv[i] = fv_rand_normal(&st);
        fv_f32_to_bf16(q16, qkv, nq);
        FvAttnSettings as;
        memset(&as, 0, sizeof(as));
        as.kind = FV_ATTN_DENSE;
        FvAttnPlan p;
        assert_int_equal(fv_attn_plan_init(&p, &as, 0, N, N > 8, H, hd), 0);
        fv_attn_forward_ref(&p, NULL, qkv, ref, NULL, B);
        fv_attn_plan_free(&p);
        assert_int_equal(fv_attn_dense_bf16(o16, q16, B, N, H, hd), 0);
        double maxd = 0.0;
        for (int64_t i = 0; i < no; i++)
            maxd = fmax(maxd, fabs((double)fv_f32_from_bf16(o16[i]) - ref[i]));
        printf("bf16 (%s) vs fp32 reference nseq=%d N=%d H=%d hd=%d: max abs diff %.3g (tol %.3g)\n",
               fv_attn_dense_bf16_fast(hd) ? "AVX512-BF16 kernel" : "plain C", B, N, H, hd, maxd, tol);
        assert_true(maxd <= tol);
        free(qkv), free(ref), free(q16), free(o16);
    }
}

/* A NaN in one query gives that query's output row NaN in both, as softmax over NaN scores does; the other
 * rows stay finite. And scores far apart (the weights of all but one key below 2^-126) give finite rows. */
static void test_nan_and_range(void **state)
{
    (void)state;
    const int32_t B = 1, N = 37, H = 2, hd = 32;
    const int64_t D = (int64_t)H * hd, nq = B * N * 3 * D, no = B * N * D;
    uint64_t st = 99u;
    uint16_t *qkv = malloc(2 * (size_t)nq), *o = malloc(2 * (size_t)no), *r = malloc(2 * (size_t)no);
    assert_non_null(qkv);
    assert_non_null(o);
    assert_non_null(r);
    for (int64_t i = 0; i < nq; i++)
        qkv[i] = fv_bf16_from_f32(fv_rand_normal(&st));
    qkv[5 * 3 * D + 3] = fv_bf16_from_f32(NAN);                /* query row 5, head 0 */
    for (int32_t c = 0; c < hd; c++)                            /* query row 9, head 1: huge scores */
        qkv[9 * 3 * D + hd + c] = fv_bf16_from_f32(c % 2 ? 300.0f : -300.0f);
    assert_int_equal(fv_attn_dense_bf16(o, qkv, B, N, H, hd), 0);
    fv_attn_dense_bf16_ref(r, qkv, B, N, H, hd);
    int64_t nan_o = 0, nan_r = 0, bad = 0;
    for (int64_t i = 0; i < no; i++) {
        const int in_row5 = i / D == 5 && i % D < hd;
        const float a = fv_f32_from_bf16(o[i]), b = fv_f32_from_bf16(r[i]);
        nan_o += isnan(a);
        nan_r += isnan(b);
        bad += in_row5 ? !isnan(a) : !isfinite(a);
    }
    printf("NaN in one query: %lld NaN outputs (reference %lld, want %d), %lld outputs wrongly finite or not finite\n",
           (long long)nan_o, (long long)nan_r, hd, (long long)bad);
    assert_true(nan_r == hd);
    assert_true(bad == 0);
    free(qkv), free(o), free(r);
}

/* A key whose score lies far below the row's maximum weighs 0, as in the reference: scores +-1024 (so 2^-2954 in
 * the softmax) and that key's v at 3e38, near float's range: the output stays the other key's v (a weight clamped
 * at 2^-126 gave 4.5 instead of 1). */
static void test_far_below_max(void **state)
{
    (void)state;
    const int32_t N = 2, H = 1, hd = 16;
    const int64_t D = (int64_t)H * hd;
    uint16_t qkv[2 * 3 * 16] = { 0 }, o[2 * 16], r[2 * 16];
    qkv[0] = fv_bf16_from_f32(64.0f);          /* q0 = (64, 0, ...) */
    qkv[D] = fv_bf16_from_f32(64.0f);          /* k0 = (64, 0, ...): score +1024 */
    qkv[3 * D + D] = fv_bf16_from_f32(-64.0f); /* k1 = (-64, 0, ...): score -1024 */
    for (int32_t c = 0; c < hd; c++) {
        qkv[2 * D + c] = fv_bf16_from_f32(1.0f);              /* v0 */
        qkv[3 * D + 2 * D + c] = fv_bf16_from_f32(3e38f);     /* v1 */
    }
    assert_int_equal(fv_attn_dense_bf16(o, qkv, 1, N, H, hd), 0);
    assert_int_equal(fv_attn_dense_bf16_ref(r, qkv, 1, N, H, hd), 0);
    double worst = 0.0;
    for (int32_t c = 0; c < hd; c++)
        worst = fmax(worst, fabs((double)fv_f32_from_bf16(o[c]) - fv_f32_from_bf16(r[c])));
    printf("%s: query 0 output %g (reference %g), largest difference %g\n",
           fv_attn_dense_bf16_fast(hd) ? "AVX512-BF16 kernel" : "plain C", fv_f32_from_bf16(o[0]),
           fv_f32_from_bf16(r[0]), worst);
    assert_true(fv_f32_from_bf16(r[0]) == 1.0f);
    assert_true(worst == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_vs_ref),
        cmocka_unit_test(test_bf16_vs_fp32),
        cmocka_unit_test(test_nan_and_range),
        cmocka_unit_test(test_far_below_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
