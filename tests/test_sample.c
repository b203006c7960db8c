/* Tests for temporal sampling (src/sample.c) against hand-computed indices (SPEC section 2). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "fibvid/video.h"

static void settings(FvSampleSettings *s, FvSampling mode, int32_t T, int32_t rate, int32_t K)
{
    fv_sample_default_settings(s);
    s->mode = mode;
    s->num_frames = T;
    s->rate = rate;
    s->num_views = K;
}

static void expect(const FvSampleSettings *s, int64_t n, int32_t view, const int64_t *want)
{
    int64_t got[64];
    int r = fv_sample_indices(s, n, view, got);
    assert_int_equal(r, 0);
    for (int32_t i = 0; i < s->num_frames; i++) {
        if (got[i] != want[i])
            printf("n %lld view %d: index %d is %lld, want %lld\n", (long long)n, view, i,
                   (long long)got[i], (long long)want[i]);
        assert_int_equal(got[i], want[i]);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    FvSampleSettings s;
    memset(&s, 0x55, sizeof(s));
    fv_sample_default_settings(&s);
    assert_int_equal(s.mode, FV_SAMPLING_UNIFORM);
    assert_int_equal(s.num_frames, 8);
    assert_int_equal(s.rate, 32);
    assert_int_equal(s.num_views, 1);
    assert_int_equal(s.dense_start, FV_DENSE_START_MMACTION);
    assert_int_equal(s.train, 0);
}

static void test_uniform(void **state)
{
    (void)state;
    FvSampleSettings s;
    settings(&s, FV_SAMPLING_UNIFORM, 8, 32, 1);
    /* (int)((i + 0.5) * 60 / 8) = 3.75, 11.25, 18.75, ... */
    expect(&s, 60, 0, (const int64_t[]){ 3, 11, 18, 26, 33, 41, 48, 56 });
    /* UCF101 clip of 164 frames: 10.25, 30.75, ... */
    expect(&s, 164, 0, (const int64_t[]){ 10, 30, 51, 71, 92, 112, 133, 153 });
    /* shorter than T: frames repeat, none past the end */
    expect(&s, 5, 0, (const int64_t[]){ 0, 0, 1, 2, 2, 3, 4, 4 });
    expect(&s, 1, 0, (const int64_t[]){ 0, 0, 0, 0, 0, 0, 0, 0 });
    expect(&s, 8, 0, (const int64_t[]){ 0, 1, 2, 3, 4, 5, 6, 7 });

    /* same as MMAction2's float formula (TSN SampleFrames test mode) for many sizes */
    for (int32_t T = 1; T <= 32; T++) {
        settings(&s, FV_SAMPLING_UNIFORM, T, 1, 1);
        for (int64_t n = 1; n <= 400; n++) {
            int64_t got[32];
            assert_int_equal(fv_sample_indices(&s, n, 0, got), 0);
            for (int32_t i = 0; i < T; i++)
                assert_int_equal(got[i], (int64_t)((i + 0.5) * (double)n / T));
        }
    }
}

/* K views: view k shifted by (k + 0.5) / K of a segment: (int)((i + (k + 0.5) / K) * n / T). */
static void test_uniform_views(void **state)
{
    (void)state;
    FvSampleSettings s;
    settings(&s, FV_SAMPLING_UNIFORM, 4, 32, 2);
    expect(&s, 40, 0, (const int64_t[]){ 2, 12, 22, 32 });
    expect(&s, 40, 1, (const int64_t[]){ 7, 17, 27, 37 });
    settings(&s, FV_SAMPLING_UNIFORM, 2, 32, 3);
    expect(&s, 10, 0, (const int64_t[]){ 0, 5 });
    expect(&s, 10, 1, (const int64_t[]){ 2, 7 });
    expect(&s, 10, 2, (const int64_t[]){ 4, 9 });
    /* three views of a 2-frame clip with T = 4 clamp inside the clip */
    settings(&s, FV_SAMPLING_UNIFORM, 4, 32, 3);
    expect(&s, 2, 2, (const int64_t[]){ 0, 0, 1, 1 });
}

static void test_dense(void **state)
{
    (void)state;
    FvSampleSettings s;
    settings(&s, FV_SAMPLING_DENSE, 8, 32, 1);
    /* delta = 300 - 256 = 44; MMAction2 starts at floor(44 * 0.5) = 22 */
    expect(&s, 300, 0, (const int64_t[]){ 22, 54, 86, 118, 150, 182, 214, 246 });
    s.dense_start = FV_DENSE_START_SLOWFAST;
    expect(&s, 300, 0, (const int64_t[]){ 0, 32, 64, 96, 128, 160, 192, 224 });

    /* three views: MMAction2 floor(44 (k + 0.5) / 3) = 7, 22, 36; PySlowFast floor(44 k / 3) = 0, 14, 29 */
    settings(&s, FV_SAMPLING_DENSE, 8, 32, 3);
    expect(&s, 300, 0, (const int64_t[]){ 7, 39, 71, 103, 135, 167, 199, 231 });
    expect(&s, 300, 1, (const int64_t[]){ 22, 54, 86, 118, 150, 182, 214, 246 });
    expect(&s, 300, 2, (const int64_t[]){ 36, 68, 100, 132, 164, 196, 228, 260 });
    s.dense_start = FV_DENSE_START_SLOWFAST;
    expect(&s, 300, 0, (const int64_t[]){ 0, 32, 64, 96, 128, 160, 192, 224 });
    expect(&s, 300, 1, (const int64_t[]){ 14, 46, 78, 110, 142, 174, 206, 238 });
    expect(&s, 300, 2, (const int64_t[]){ 29, 61, 93, 125, 157, 189, 221, 253 });

    /* shorter than the window: delta = 0, indices clamp to the last frame */
    settings(&s, FV_SAMPLING_DENSE, 8, 32, 1);
    expect(&s, 100, 0, (const int64_t[]){ 0, 32, 64, 96, 99, 99, 99, 99 });
    settings(&s, FV_SAMPLING_DENSE, 8, 32, 2);
    expect(&s, 100, 1, (const int64_t[]){ 0, 32, 64, 96, 99, 99, 99, 99 });
    expect(&s, 1, 0, (const int64_t[]){ 0, 0, 0, 0, 0, 0, 0, 0 });
    /* K400 TimeSformer: 8 x 32 of a 250-frame clip (delta 0) */
    settings(&s, FV_SAMPLING_DENSE, 8, 32, 1);
    expect(&s, 250, 0, (const int64_t[]){ 0, 32, 64, 96, 128, 160, 192, 224 });
    settings(&s, FV_SAMPLING_DENSE, 4, 2, 1);
    expect(&s, 11, 0, (const int64_t[]){ 1, 3, 5, 7 }); /* delta 3, floor(1.5) = 1 */
}

static void test_train(void **state)
{
    (void)state;
    FvSampleSettings s;
    settings(&s, FV_SAMPLING_UNIFORM, 8, 32, 1);
    s.train = 1;
    int64_t a[8], b[8];
    int hits[80] = { 0 }, differ = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        s.seed = seed;
        assert_int_equal(fv_sample_indices(&s, 80, 0, a), 0);
        assert_int_equal(fv_sample_indices(&s, 80, 0, b), 0);
        assert_memory_equal(a, b, sizeof(a)); /* deterministic in the seed */
        for (int i = 0; i < 8; i++) {
            assert_true(a[i] >= i * 10 && a[i] < (i + 1) * 10); /* inside its segment */
            hits[a[i]]++;
        }
        s.seed = seed + 1000;
        assert_int_equal(fv_sample_indices(&s, 80, 0, b), 0);
        differ += memcmp(a, b, sizeof(a)) != 0;
    }
    for (int f = 0; f < 80; f++)
        assert_true(hits[f] > 0); /* every frame of every segment can be drawn */
    assert_true(differ > 250);

    /* dense train: a random start in [0, delta], stride kept */
    settings(&s, FV_SAMPLING_DENSE, 4, 8, 2);
    s.train = 1;
    int starts[9] = { 0 };
    for (uint64_t seed = 0; seed < 300; seed++) {
        s.seed = seed;
        for (int32_t k = 0; k < 2; k++) {
            assert_int_equal(fv_sample_indices(&s, 40, k, a), 0); /* delta = 40 - 32 = 8 */
            assert_true(a[0] >= 0 && a[0] <= 8);
            for (int i = 1; i < 4; i++)
                assert_int_equal(a[i], a[0] + 8 * i);
            starts[a[0]]++;
        }
    }
    for (int i = 0; i <= 8; i++)
        assert_true(starts[i] > 0);
}

static void test_errors(void **state)
{
    (void)state;
    FvSampleSettings s;
    int64_t idx[8];
    settings(&s, FV_SAMPLING_UNIFORM, 8, 32, 1);
    assert_int_equal(fv_sample_indices(&s, 0, 0, idx), FV_ENODATA);
    assert_int_equal(fv_sample_indices(&s, -5, 0, idx), FV_ENODATA);
    assert_int_equal(fv_sample_indices(&s, 10, 1, idx), FV_EINVAL);
    assert_int_equal(fv_sample_indices(&s, 10, -1, idx), FV_EINVAL);
    assert_int_equal(fv_sample_indices(NULL, 10, 0, idx), FV_EINVAL);
    assert_int_equal(fv_sample_indices(&s, 10, 0, NULL), FV_EINVAL);
    s.num_frames = 0;
    assert_int_equal(fv_sample_indices(&s, 10, 0, idx), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "num_frames"));
    settings(&s, FV_SAMPLING_UNIFORM, 8, 32, 0);
    assert_int_equal(fv_sample_indices(&s, 10, 0, idx), FV_EINVAL);
    settings(&s, FV_SAMPLING_DENSE, 8, 0, 1);
    assert_int_equal(fv_sample_indices(&s, 10, 0, idx), FV_EINVAL);
    settings(&s, (FvSampling)7, 8, 32, 1);
    assert_int_equal(fv_sample_indices(&s, 10, 0, idx), FV_EINVAL);
    /* the stride does not matter for uniform sampling */
    settings(&s, FV_SAMPLING_UNIFORM, 8, 0, 1);
    assert_int_equal(fv_sample_indices(&s, 10, 0, idx), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_uniform_views),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
