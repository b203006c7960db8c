/* Metrics: top-k selection from probabilities, and top-1 / top-5 / mean class accuracy, per-class counts
 * and the confusion matrix of a small hand-computed set of videos. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fibvid/eval.h"
#include "testutil.h"

static void assert_close(double got, double want)
{
    double d = fabs(got - want);
    printf("max abs diff %g (got %.6f, want %.6f)\n", d, got, want);
    assert_true(d < 1e-9);
}

static void test_topk(void **state)
{
    (void)state;
    FvPrediction p;
    const int32_t map[2] = { 3, 1 };
    const float eq[5] = { 0.2f, 0.2f, 0.2f, 0.2f, 0.2f };
    assert_int_equal(fv_prediction_from_probs(&p, eq, 5, 7, 0, map, 2), 0);
    assert_int_equal(p.k, 5);
    for (int r = 0; r < 5; r++)
        assert_int_equal(p.top[r], r); /* ties: lower index first */
    assert_int_equal(p.index, 7);
    assert_int_equal(p.target, 3);
    assert_int_equal(p.pred_class, -1);  /* label 0 is no dataset class */

    const float pr[6] = { 0.1f, NAN, 0.3f, 0.05f, 0.5f, 0.05f };
    assert_int_equal(fv_prediction_from_probs(&p, pr, 6, 0, 1, map, 2), 0);
    const int32_t want[5] = { 4, 2, 0, 3, 5 }; /* NaN last */
    for (int r = 0; r < 5; r++)
        assert_int_equal(p.top[r], want[r]);
    assert_true(fabsf(p.prob[0] - 0.5f) < 1e-7f);

    /* fewer labels than 5 */
    const float three[3] = { 0.1f, 0.7f, 0.2f };
    assert_int_equal(fv_prediction_from_probs(&p, three, 3, 0, 1, map, 2), FV_EINVAL); /* map[0] = 3 >= 3 */
    const int32_t map3[2] = { 2, 1 };
    assert_int_equal(fv_prediction_from_probs(&p, three, 3, 0, 1, map3, 2), 0);
    assert_int_equal(p.k, 3);
    assert_int_equal(p.top[0], 1);
    assert_int_equal(p.top[1], 2);
    assert_int_equal(p.pred_class, 1);
    assert_int_equal(fv_prediction_from_probs(&p, three, 3, 0, 2, map3, 2), FV_EINVAL);
    assert_int_equal(fv_prediction_from_probs(&p, NULL, 3, 0, 0, map3, 2), FV_EINVAL);
}

/*
 * Four dataset classes mapped to a 7-label model (class 0 -> label 2, 1 -> 0, 2 -> 5, 3 -> 6; labels 1, 3,
 * 4 are no dataset class); class 3 has no videos. By hand:
 *   v0 class 0: top 2,3,4,0,1        top-1 hit, predicted class 0
 *   v1 class 0: top 0,2,1,3,4        top-5 hit only, predicted class 1
 *   v2 class 0: top 3,6,0,1,4        miss, label 2 ranks 7th, predicted "other" (label 3)
 *   v3 class 1: top 0,...            top-1 hit
 *   v4 class 1: top 5,1,0,...        top-5 hit only (rank 3), predicted class 2
 *   v5 class 2: top 5,...            top-1 hit
 * top-1 = 3/6 = 50 %, top-5 = 5/6 = 83.33 %, per-class recall 1/3, 1/2, 1/1 -> mean class 61.11 %
 * (class 3 has no videos and is left out of the mean), one failure not counted in the accuracies.
 */
static void test_hand_computed(void **state)
{
    (void)state;
    static const float probs[6][7] = {
        { 0.05f, 0.05f, 0.60f, 0.10f, 0.10f, 0.05f, 0.05f },
        { 0.50f, 0.05f, 0.30f, 0.05f, 0.05f, 0.00f, 0.05f },
        { 0.10f, 0.10f, 0.01f, 0.40f, 0.10f, 0.10f, 0.19f },
        { 0.90f, 0.02f, 0.02f, 0.02f, 0.02f, 0.01f, 0.01f },
        { 0.20f, 0.25f, 0.05f, 0.05f, 0.05f, 0.30f, 0.10f },
        { 0.00f, 0.00f, 0.00f, 0.00f, 0.00f, 1.00f, 0.00f },
    };
    static const int32_t labels[6] = { 0, 0, 0, 1, 1, 2 };
    static const int32_t map[4] = { 2, 0, 5, 6 };
    static const int32_t pred_class[6] = { 0, 1, -1, 1, 2, 2 };
    FvMetrics *m = NULL;
    assert_int_equal(fv_metrics_create(&m, 4), 0);
    for (int v = 0; v < 6; v++) {
        FvPrediction p;
        assert_int_equal(fv_prediction_from_probs(&p, probs[v], 7, v, labels[v], map, 4), 0);
        assert_int_equal(p.pred_class, pred_class[v]);
        assert_int_equal(fv_metrics_add(m, &p), 0);
    }
    fv_metrics_add_failure(m);
    FvMetricsSummary s;
    fv_metrics_summary(m, &s);
    assert_int_equal(s.num_evaluated, 6);
    assert_int_equal(s.num_failed, 1);
    assert_int_equal(s.top1_correct, 3);
    assert_int_equal(s.top5_correct, 5);
    assert_int_equal(s.classes_present, 3);
    assert_close(s.top1_acc, 50.0);
    assert_close(s.top5_acc, 500.0 / 6.0);
    assert_close(s.mean_class_acc, 100.0 * (1.0 / 3 + 1.0 / 2 + 1.0) / 3);

    static const int64_t want_count[4] = { 3, 2, 1, 0 }, want_h1[4] = { 1, 1, 1, 0 }, want_h5[4] = { 2, 2, 1, 0 };
    for (int c = 0; c < 4; c++) {
        int64_t n, h1, h5;
        assert_int_equal(fv_metrics_class(m, c, &n, &h1, &h5), 0);
        assert_int_equal(n, want_count[c]);
        assert_int_equal(h1, want_h1[c]);
        assert_int_equal(h5, want_h5[c]);
    }
    assert_int_equal(fv_metrics_class(m, 4, NULL, NULL, NULL), FV_EINVAL);

    /* rows true class, columns predicted class, last column "other" */
    static const int64_t want_cm[4][5] = {
        { 1, 1, 0, 0, 1 },
        { 0, 1, 1, 0, 0 },
        { 0, 0, 1, 0, 0 },
        { 0, 0, 0, 0, 0 },
    };
    const int64_t *cm = fv_metrics_confusion(m);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 5; c++)
            assert_int_equal(cm[r * 5 + c], want_cm[r][c]);

    /* out-of-range records are refused and not counted */
    FvPrediction bad = { .index = 9, .label = 4, .k = 1 };
    assert_int_equal(fv_metrics_add(m, &bad), FV_EINVAL);
    bad.label = 0;
    bad.k = 0;
    assert_int_equal(fv_metrics_add(m, &bad), FV_EINVAL);
    fv_metrics_summary(m, &s);
    assert_int_equal(s.num_evaluated, 6);
    fv_metrics_free(&m);
    assert_null(m);
}

static void test_empty(void **state)
{
    (void)state;
    FvMetrics *m = NULL;
    FvMetricsSummary s;
    assert_int_equal(fv_metrics_create(&m, 0), FV_EINVAL);
    assert_int_equal(fv_metrics_create(&m, 3), 0);
    fv_metrics_add_failure(m);
    fv_metrics_summary(m, &s);
    assert_int_equal(s.num_evaluated, 0);
    assert_int_equal(s.num_failed, 1);
    assert_true(s.top1_acc == 0 && s.top5_acc == 0 && s.mean_class_acc == 0);
    fv_metrics_free(&m);
    fv_metrics_free(&m);
}

/* Issue 23 (mutation test): the top-5 boundary. The target at rank 5 is a top-5 hit, at rank 6 it is not (a
 * "rank < 4" or "rank <= 5" slip went unnoticed: no fixture had its target exactly there). */
static void test_rank_five(void **state)
{
    (void)state;
    /* labels ranked 6, 5, 4, 3, 2, 1, 0 by probability */
    static const float probs[7] = { 0.01f, 0.04f, 0.06f, 0.09f, 0.15f, 0.25f, 0.40f };
    static const int32_t map[2] = { 2, 1 }; /* class 0 -> label 2 (rank 5), class 1 -> label 1 (rank 6) */
    FvMetrics *m = NULL;
    assert_int_equal(fv_metrics_create(&m, 2), 0);
    FvPrediction p;
    assert_int_equal(fv_prediction_from_probs(&p, probs, 7, 0, 0, map, 2), 0);
    assert_int_equal(fv_metrics_add(m, &p), 0);
    assert_int_equal(fv_prediction_from_probs(&p, probs, 7, 1, 1, map, 2), 0);
    assert_int_equal(fv_metrics_add(m, &p), 0);
    FvMetricsSummary s;
    fv_metrics_summary(m, &s);
    printf("target at rank 5: top-5 hit; at rank 6: miss -> top5_correct %lld of 2\n", (long long)s.top5_correct);
    assert_int_equal(s.top1_correct, 0);
    assert_int_equal(s.top5_correct, 1);
    int64_t n, h1, h5;
    assert_int_equal(fv_metrics_class(m, 0, &n, &h1, &h5), 0);
    assert_int_equal(h5, 1);
    assert_int_equal(fv_metrics_class(m, 1, &n, &h1, &h5), 0);
    assert_int_equal(h5, 0);
    fv_metrics_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topk),
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_rank_five),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
