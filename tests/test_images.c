/* The pictures' text: the bitmap font of fv_image (glyph boxes, ink where text is drawn and nowhere else, widths,
 * the ellipsis of a cut text, upward text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "eval/image.h"
#include "testutil.h"

static const uint8_t black[3] = { 0, 0, 0 };

static int is_ink(const FvImage *im, int32_t x, int32_t y)
{
    const uint8_t *p = im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
    return p[0] != 255 || p[1] != 255 || p[2] != 255;
}

/* Bounding box of the non-white pixels of @im; returns their count. */
static int64_t ink_box(const FvImage *im, int32_t *x0, int32_t *y0, int32_t *x1, int32_t *y1)
{
    int64_t n = 0;
    *x0 = *y0 = INT32_MAX;
    *x1 = *y1 = -1;
    for (int32_t y = 0; y < im->h; y++)
        for (int32_t x = 0; x < im->w; x++)
            if (is_ink(im, x, y)) {
                n++;
                *x0 = x < *x0 ? x : *x0;
                *y0 = y < *y0 ? y : *y0;
                *x1 = x > *x1 ? x : *x1;
                *y1 = y > *y1 ? y : *y1;
            }
    return n;
}

static int64_t ink_in(const FvImage *im, int32_t x0, int32_t y0, int32_t x1, int32_t y1)
{
    int64_t n = 0;
    for (int32_t y = y0; y < y1; y++)
        for (int32_t x = x0; x < x1; x++)
            n += is_ink(im, x, y);
    return n;
}

/* 'H' fills its 5 x 7 box exactly, at every scale; nothing else is touched. */
static void test_glyph_box(void **state)
{
    (void)state;
    for (int32_t s = 1; s <= 3; s++) {
        FvImage im;
        assert_int_equal(fv_image_alloc(&im, 60, 60, 255, 255, 255), 0);
        assert_int_equal(fv_image_text(&im, 7, 4, s, black, "H"), 5 * s);
        int32_t x0, y0, x1, y1;
        const int64_t n = ink_box(&im, &x0, &y0, &x1, &y1);
        printf("H at scale %d: box (%d,%d)-(%d,%d), %lld pixels\n", s, x0, y0, x1, y1, (long long)n);
        assert_int_equal(x0, 7);
        assert_int_equal(y0, 4);
        assert_int_equal(x1, 7 + 5 * s - 1);
        assert_int_equal(y1, 4 + FV_FONT_ASCENT * s - 1);
        /* two full stems and the bar: 7 + 7 + 3 cells */
        assert_int_equal(n, (int64_t)(7 + 7 + 3) * s * s);
        fv_image_free(&im);
    }
    /* descenders go below the baseline, 'g' into both rows under it */
    FvImage im;
    assert_int_equal(fv_image_alloc(&im, 20, 20, 255, 255, 255), 0);
    fv_image_text(&im, 2, 2, 1, black, "g");
    int32_t x0, y0, x1, y1;
    ink_box(&im, &x0, &y0, &x1, &y1);
    assert_int_equal(y1, 2 + FV_FONT_HEIGHT - 1);
    assert_true(y0 >= 2 + 2); // lower case starts under the capitals
    fv_image_free(&im);
}

/* Widths count glyphs (UTF-8 code points), and a run's ink lies within its width, every glyph with ink in its
 * own cell and the space without. */
static void test_text_ink(void **state)
{
    (void)state;
    assert_int_equal(fv_image_text_width("", 2), 0);
    assert_int_equal(fv_image_text_width("abc", 1), 17);
    assert_int_equal(fv_image_text_width("abc", 2), 34);
    assert_int_equal(fv_image_text_width("\xc3\xa9t\xc3\xa9 \xe2\x80\x94 x", 1), 7 * 6 - 1);
    const char *t = "Hello, world";
    const int32_t s = 2, x = 11, y = 9, w = fv_image_text_width(t, s);
    FvImage im;
    assert_int_equal(fv_image_alloc(&im, 200, 40, 255, 255, 255), 0);
    assert_int_equal(fv_image_text(&im, x, y, s, black, t), w);
    int32_t x0, y0, x1, y1;
    ink_box(&im, &x0, &y0, &x1, &y1);
    assert_true(x0 >= x && x1 < x + w && y0 >= y && y1 < y + FV_FONT_HEIGHT * s);
    for (int32_t i = 0; t[i]; i++) {
        const int64_t n = ink_in(&im, x + i * 6 * s, y, x + i * 6 * s + 5 * s, y + FV_FONT_HEIGHT * s);
        if (t[i] == ' ')
            assert_int_equal(n, 0);
        else
            assert_true(n > 0);
        /* the column between two glyphs stays blank */
        assert_int_equal(ink_in(&im, x + i * 6 * s + 5 * s, y, x + (i + 1) * 6 * s, y + FV_FONT_HEIGHT * s), 0);
    }
    /* a character the font lacks is a box, not nothing */
    fv_image_fill_rect(&im, 0, 0, im.w, im.h, (const uint8_t[3]){ 255, 255, 255 });
    fv_image_text(&im, 0, 0, 1, black, "\xe4\xb8\xad");
    assert_true(ink_in(&im, 0, 0, 5, 7) >= 20);
    /* clipped at the image's edges without harm */
    fv_image_text(&im, -7, -3, 3, black, "clipped");
    fv_image_text(&im, 190, 35, 3, black, "clipped");
    fv_image_free(&im);
}

/* A text longer than its room is cut and ends in an ellipsis; a short one is drawn whole. */
static void test_text_fit(void **state)
{
    (void)state;
    FvImage im;
    assert_int_equal(fv_image_alloc(&im, 300, 20, 255, 255, 255), 0);
    const char *t = "A label far too long to fit";
    const int32_t w = fv_image_text_fit(&im, 0, 0, 1, black, t, 60);
    printf("fit in 60: %d pixels\n", w);
    assert_true(w <= 60 && w >= 60 - 6);
    int32_t x0, y0, x1, y1;
    ink_box(&im, &x0, &y0, &x1, &y1);
    assert_true(x1 < 60);
    /* the last glyph is the ellipsis: three dots on the baseline row, nothing above */
    const int32_t e = w - 5;
    assert_int_equal(ink_in(&im, e, 0, e + 5, FV_FONT_ASCENT - 1), 0);
    assert_true(is_ink(&im, e, 6) && !is_ink(&im, e + 1, 6) && is_ink(&im, e + 2, 6) && is_ink(&im, e + 4, 6));
    /* whole when it fits, even exactly */
    const int32_t full = fv_image_text_width("fits", 1);
    assert_int_equal(fv_image_text_fit(&im, 100, 0, 1, black, "fits", full), full);
    assert_int_equal(fv_image_text_fit(&im, 100, 0, 1, black, "fits", full - 1), 17); // "fi…"
    /* no room even for one glyph and the ellipsis: nothing */
    fv_image_fill_rect(&im, 0, 0, im.w, im.h, (const uint8_t[3]){ 255, 255, 255 });
    assert_int_equal(fv_image_text_fit(&im, 0, 0, 1, black, "abc", 10), 0);
    assert_int_equal(ink_box(&im, &x0, &y0, &x1, &y1), 0);
    fv_image_free(&im);
}

/* Upward text: 'H' turned a quarter turn counter-clockwise, starting at the row above y. */
static void test_text_up(void **state)
{
    (void)state;
    FvImage im;
    assert_int_equal(fv_image_alloc(&im, 40, 80, 255, 255, 255), 0);
    assert_int_equal(fv_image_text_up(&im, 10, 50, 1, black, "HH", 100), 11);
    int32_t x0, y0, x1, y1;
    ink_box(&im, &x0, &y0, &x1, &y1);
    printf("upward HH: box (%d,%d)-(%d,%d)\n", x0, y0, x1, y1);
    assert_int_equal(x0, 10);
    assert_int_equal(x1, 10 + FV_FONT_ASCENT - 1);
    assert_int_equal(y1, 49);
    assert_int_equal(y0, 50 - 11);
    /* the H's left stem is the bottom row of its box, the bar a vertical line in the middle */
    for (int32_t x = 10; x < 17; x++)
        assert_true(is_ink(&im, x, 49) && is_ink(&im, x, 45));
    assert_true(is_ink(&im, 13, 47) && !is_ink(&im, 12, 47));
    /* cut with an ellipsis upwards too */
    fv_image_fill_rect(&im, 0, 0, im.w, im.h, (const uint8_t[3]){ 255, 255, 255 });
    assert_int_equal(fv_image_text_up(&im, 10, 79, 1, black, "a long upward label", 30), 29);
    ink_box(&im, &x0, &y0, &x1, &y1);
    assert_true(y0 >= 79 - 30);
    fv_image_free(&im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glyph_box),
        cmocka_unit_test(test_text_ink),
        cmocka_unit_test(test_text_fit),
        cmocka_unit_test(test_text_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
