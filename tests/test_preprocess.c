/* Tests for spatial preprocessing (src/preprocess.c): resized sizes, crop offsets (centre and
 * PySlowFast three-crop), layout (T, 3, c, c), normalisation values, and resized pixels against an
 * independent bilinear resize (tests/data/resize_ref.safetensors). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/video.h"
#include "model/safetensors.h"

#include "clipgen.h"
#include "testutil.h"

static void test_defaults(void **state)
{
    (void)state;
    FvPreprocessSettings p;
    memset(&p, 0x55, sizeof(p));
    fv_preprocess_default_settings(&p);
    assert_int_equal(p.short_side, 0);
    assert_int_equal(p.crop_size, 224);
    assert_int_equal(p.crop, FV_CROP_CENTER);
    for (int c = 0; c < 3; c++) {
        assert_true(p.mean[c] == 0.45f);
        assert_true(p.std[c] == 0.225f);
    }
    assert_int_equal(fv_preprocess_num_crops(FV_CROP_CENTER), 1);
    assert_int_equal(fv_preprocess_num_crops(FV_CROP_THREE), 3);
}

static void expect_size(int32_t w, int32_t h, int32_t s, int32_t ew, int32_t eh)
{
    int32_t rw = -1, rh = -1;
    fv_preprocess_resized_size(w, h, s, &rw, &rh);
    if (rw != ew || rh != eh)
        printf("%dx%d short %d -> %dx%d, want %dx%d\n", w, h, s, rw, rh, ew, eh);
    assert_int_equal(rw, ew);
    assert_int_equal(rh, eh);
}

static void test_resized_size(void **state)
{
    (void)state;
    expect_size(320, 240, 224, 299, 224);   /* 298.67 */
    expect_size(240, 320, 224, 224, 299);   /* portrait */
    expect_size(340, 256, 224, 298, 224);   /* 297.5 rounds up, as int(x + 0.5) */
    expect_size(320, 240, 256, 341, 256);   /* 341.33 */
    expect_size(1920, 1080, 256, 455, 256); /* 455.1 */
    expect_size(171, 128, 112, 150, 112);   /* 149.6 */
    expect_size(100, 100, 50, 50, 50);
    expect_size(224, 224, 224, 224, 224);
    expect_size(64, 48, 32, 43, 32);        /* 42.67 */
    expect_size(0, 48, 32, 0, 0);           /* degenerate input: 0x0, no division by zero */
}

/* Frames whose pixel (x, y) of frame t is (x, y, 10 t): with mean 0 and std 1 the output is
 * value / 255, so each output pixel says where it came from. */
static uint8_t *coord_frames(int32_t T, int32_t w, int32_t h)
{
    uint8_t *rgb = malloc((size_t)T * w * h * 3);
    for (int32_t t = 0; t < T; t++)
        for (int32_t y = 0; y < h; y++)
            for (int32_t x = 0; x < w; x++) {
                uint8_t *p = rgb + (((size_t)t * h + y) * w + x) * 3;
                p[0] = (uint8_t)x;
                p[1] = (uint8_t)y;
                p[2] = (uint8_t)(10 * t);
            }
    return rgb;
}

static void expect_crop(FvCrop mode, int32_t w, int32_t h, int32_t c, int32_t view, int32_t x0, int32_t y0)
{
    const int32_t T = 3;
    FvPreprocessSettings p;
    fv_preprocess_default_settings(&p);
    p.crop = mode;
    p.crop_size = c;
    for (int k = 0; k < 3; k++) {
        p.mean[k] = 0.0f;
        p.std[k] = 1.0f;
    }
    uint8_t *rgb = coord_frames(T, w, h);
    float *out = malloc(sizeof(float) * (size_t)T * 3 * c * c);
    assert_int_equal(fv_preprocess_crop(&p, rgb, T, w, h, view, out), 0);
    int bad = 0;
    for (int32_t t = 0; t < T; t++)
        for (int32_t y = 0; y < c; y++)
            for (int32_t x = 0; x < c; x++) {
                const float *o = out + (size_t)t * 3 * c * c + (size_t)y * c + x; // (T, 3, c, c)
                int r = (int)lrintf(o[0] * 255.0f), g = (int)lrintf(o[(size_t)c * c] * 255.0f);
                int b = (int)lrintf(o[(size_t)2 * c * c] * 255.0f);
                if (r != ((x0 + x) & 255) || g != ((y0 + y) & 255) || b != 10 * t)
                    bad++;
            }
    if (bad) {
        int r = (int)lrintf(out[0] * 255.0f), g = (int)lrintf(out[(size_t)c * c] * 255.0f);
        printf("%dx%d crop %d view %d: origin (%d, %d), want (%d, %d); %d wrong pixels\n", w, h, c, view, r,
               g, x0, y0, bad);
    }
    assert_int_equal(bad, 0);
    free(rgb);
    free(out);
}

static void test_crops(void **state)
{
    (void)state;
    /* centre: floor((L - c) / 2) */
    expect_crop(FV_CROP_CENTER, 57, 40, 32, 0, 12, 4);
    expect_crop(FV_CROP_CENTER, 40, 57, 32, 0, 4, 12);
    expect_crop(FV_CROP_CENTER, 32, 32, 32, 0, 0, 0);
    expect_crop(FV_CROP_CENTER, 43, 32, 32, 0, 5, 0);
    /* three along the long side (PySlowFast uniform_crop): 0, ceil((L - c) / 2), L - c */
    expect_crop(FV_CROP_THREE, 57, 40, 32, 0, 0, 4);
    expect_crop(FV_CROP_THREE, 57, 40, 32, 1, 13, 4);
    expect_crop(FV_CROP_THREE, 57, 40, 32, 2, 25, 4);
    expect_crop(FV_CROP_THREE, 40, 57, 32, 0, 4, 0);
    expect_crop(FV_CROP_THREE, 40, 57, 32, 1, 4, 13);
    expect_crop(FV_CROP_THREE, 40, 57, 32, 2, 4, 25);
    expect_crop(FV_CROP_THREE, 41, 35, 32, 1, 5, 2); /* short side odd too: ceil(3 / 2) = 2 */
    /* square: along the width */
    expect_crop(FV_CROP_THREE, 36, 36, 32, 0, 0, 2);
    expect_crop(FV_CROP_THREE, 36, 36, 32, 2, 4, 2);
    /* typical: 299x224 -> 224 */
    expect_crop(FV_CROP_THREE, 299, 224, 224, 2, 75, 0);
}

static void test_normalise(void **state)
{
    (void)state;
    FvPreprocessSettings p;
    fv_preprocess_default_settings(&p);
    p.crop_size = 2;
    const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
    memcpy(p.mean, mean, sizeof(mean));
    memcpy(p.std, std, sizeof(std));
    /* 2x2 frame, T = 1; pixels cover 0, 255 and values in between */
    const uint8_t rgb[12] = { 0, 128, 255, 200, 17, 99, 255, 0, 1, 64, 254, 128 };
    float out[12];
    assert_int_equal(fv_preprocess_crop(&p, rgb, 1, 2, 2, 0, out), 0);
    double maxd = 0;
    for (int px = 0; px < 4; px++)
        for (int c = 0; c < 3; c++) {
            float got = out[c * 4 + px];                       // (3, 2, 2): channel-major
            float f32 = ((float)rgb[px * 3 + c] / 255.0f - mean[c]) / std[c]; // torch's float32 ops
            double ref = (rgb[px * 3 + c] / 255.0 - (double)mean[c]) / (double)std[c];
            assert_true(got == f32);
            maxd = fmax(maxd, fabs(got - ref));
        }
    printf("normalisation vs double: max abs diff %g\n", maxd);
    assert_true(maxd < 1e-5);
    /* K400 defaults: 0 -> -2, 255 -> (1 - 0.45) / 0.225 = 2.444 */
    fv_preprocess_default_settings(&p);
    p.crop_size = 2;
    assert_int_equal(fv_preprocess_crop(&p, rgb, 1, 2, 2, 0, out), 0);
    assert_true(fabs(out[0] - (-2.0)) < 1e-6);
    assert_true(fabs(out[8] - (0.55 / 0.225)) < 1e-6);
}

static void test_errors(void **state)
{
    (void)state;
    FvPreprocessSettings p;
    fv_preprocess_default_settings(&p);
    p.crop_size = 32;
    uint8_t *rgb = calloc(40 * 40 * 3, 1);
    float *out = malloc(sizeof(float) * 3 * 32 * 32);
    assert_int_equal(fv_preprocess_crop(&p, rgb, 1, 40, 31, 0, out), FV_EINVAL); /* taller crop than frame */
    assert_non_null(strstr(fv_last_error(), "larger"));
    assert_int_equal(fv_preprocess_crop(&p, rgb, 1, 40, 40, 1, out), FV_EINVAL); /* one centre view */
    p.crop = FV_CROP_THREE;
    assert_int_equal(fv_preprocess_crop(&p, rgb, 1, 40, 40, 2, out), 0);
    assert_int_equal(fv_preprocess_crop(&p, rgb, 1, 40, 40, 3, out), FV_EINVAL);
    assert_int_equal(fv_preprocess_crop(&p, rgb, 0, 40, 40, 0, out), FV_EINVAL);
    assert_int_equal(fv_preprocess_crop(&p, NULL, 1, 40, 40, 0, out), FV_EINVAL);
    p.std[1] = 0.0f;
    assert_int_equal(fv_preprocess_crop(&p, rgb, 1, 40, 40, 0, out), FV_EINVAL);
    free(rgb);
    free(out);
}

/*
 * The bilinear resize of fv_clip_load (libswscale in src/video/video.c) against an independent one:
 * tests/data/resize_ref.safetensors, made by scripts/make_resize_fixture.py (numpy: tent kernel at
 * half-pixel centres, widened when downscaling; checked there against torch's antialiased bilinear).
 * The picture goes through a lossless FFV1 RGB clip, then a down- and an upscale of its short side and
 * a centre crop. Tolerance 1 level: bilinear is measured within 0.6 (the output is rounded to bytes),
 * bicubic 26-39 levels away and nearest-neighbour over 100.
 */
static void test_resize_reference(void **state)
{
    (void)state;
    char *fix = fvt_join(fvt_data_dir(), "resize_ref.safetensors");
    FvSafetensors *st = NULL;
    assert_int_equal(fv_st_open(&st, fix), 0);
    const int32_t W = 36, H = 28;
    const int64_t sshape[3] = { H, W, 3 };
    float *fsrc = malloc(sizeof(float) * H * W * 3);
    const float *src = NULL;
    assert_int_equal(fv_st_get_f32(st, "source", 3, sshape, fsrc, &src), 0);
    uint8_t *pic = malloc((size_t)H * W * 3);
    for (int32_t i = 0; i < H * W * 3; i++)
        pic[i] = (uint8_t)src[i];

    char *dir = fvt_tmpdir();
    char *path = fvt_join(dir, "resize.mkv");
    FvtClipSpec s;
    fvt_clip_spec_default(&s);
    s.format = "matroska";
    s.codec = "ffv1";
    s.pix_fmt = "bgr0";
    s.width = W;
    s.height = H;
    s.nframes = 2;
    s.picture = pic;
    assert_int_equal(fvt_clip_write(path, &s), 0);

    const struct { const char *name; int32_t short_side, crop; } cases[] = { { "down", 20, 18 }, { "up", 37, 30 } };
    for (int ci = 0; ci < 2; ci++) {
        const int32_t c = cases[ci].crop;
        const int64_t shape[3] = { c, c, 3 };
        float *fref = malloc(sizeof(float) * c * c * 3);
        const float *ref = NULL;
        assert_int_equal(fv_st_get_f32(st, cases[ci].name, 3, shape, fref, &ref), 0);

        FvClipSettings cs;
        fv_clip_default_settings(&cs);
        cs.sample.num_frames = 1;
        cs.pre.short_side = cases[ci].short_side;
        cs.pre.crop_size = c;
        for (int k = 0; k < 3; k++) {
            cs.pre.mean[k] = 0.0f;
            cs.pre.std[k] = 1.0f;
        }
        FvClip clip;
        int r = fv_clip_load(path, &cs, &clip);
        if (r < 0)
            printf("%s\n", fv_last_error());
        assert_int_equal(r, 0);
        assert_int_equal(clip.H, c);
        double maxd = 0;
        int32_t at = 0;
        for (int32_t k = 0; k < 3; k++) /* clip.data (1, 3, c, c) as x / 255; ref (c, c, 3) */
            for (int32_t i = 0; i < c * c; i++) {
                double d = fabs(clip.data[k * c * c + i] * 255.0 - ref[i * 3 + k]);
                if (d > maxd) {
                    maxd = d;
                    at = i;
                }
            }
        printf("resize %s (short side %d, crop %d): largest difference from the reference %.3f levels at (%d, %d)\n",
               cases[ci].name, cases[ci].short_side, c, maxd, at % c, at / c);
        assert_true(maxd <= 1.0);
        fv_clip_free(&clip);
        free(fref);
    }
    fv_st_close(&st);
    fvt_rmtree(dir);
    free(dir);
    free(path);
    free(pic);
    free(fsrc);
    free(fix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_resized_size),
        cmocka_unit_test(test_crops),
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_resize_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
