/* The pictures' text and colours: the bitmap font of fv_image (glyph boxes, ink where text is drawn and nowhere
 * else, widths, ellipsis, upward text), confusion.png (an error cell of 1/12 clearly apart from an empty cell and
 * from the diagonal, names, counts, 101 and 300 classes), confusion.svg (every text inside the view box) and the
 * titled, labelled PNG of `fibvid masks`. PNGs are decoded with FFmpeg's own decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libavcodec/avcodec.h>

#include "eval/confusion.h"
#include "eval/image.h"
#include "fibvid/attention.h"
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

/* ---- confusion matrix ------------------------------------------------------------------------------ */

/* Decode PNG bytes with FFmpeg into an RGB24 image. */
static void decode_png(const uint8_t *data, size_t size, FvImage *im)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_PNG);
    assert_non_null(codec);
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    assert_true(ctx && pkt && fr);
    assert_int_equal(avcodec_open2(ctx, codec, NULL), 0);
    assert_int_equal(av_new_packet(pkt, (int)size), 0);
    memcpy(pkt->data, data, size);
    assert_int_equal(avcodec_send_packet(ctx, pkt), 0);
    assert_int_equal(avcodec_receive_frame(ctx, fr), 0);
    assert_int_equal(fr->format, AV_PIX_FMT_RGB24);
    assert_int_equal(fv_image_alloc(im, fr->width, fr->height, 0, 0, 0), 0);
    for (int y = 0; y < fr->height; y++)
        memcpy(im->rgb + (size_t)y * (size_t)fr->width * 3, fr->data[0] + (size_t)y * (size_t)fr->linesize[0],
               (size_t)fr->width * 3);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&ctx);
}

static const uint8_t *px(const FvImage *im, int32_t x, int32_t y)
{
    assert_true(x >= 0 && y >= 0 && x < im->w && y < im->h);
    return im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
}

static int colour_dist(const uint8_t *a, const uint8_t *b)
{
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]);
}

static double luma(const uint8_t *p)
{
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

/* dark and neutral: text, never a cell's colour */
static int is_text_ink(const uint8_t *p)
{
    const int mx = FV_MAX(p[0], FV_MAX(p[1], p[2])), mn = FV_MIN(p[0], FV_MIN(p[1], p[2]));
    return mx < 150 && mx - mn < 16;
}

static int64_t text_ink_in(const FvImage *im, int32_t x0, int32_t y0, int32_t x1, int32_t y1)
{
    int64_t n = 0;
    for (int32_t y = FV_MAX(y0, 0); y < FV_MIN(y1, im->h); y++)
        for (int32_t x = FV_MAX(x0, 0); x < FV_MIN(x1, im->w); x++)
            n += is_text_ink(px(im, x, y));
    return n;
}

/* Render @cf's PNG, decode it and check it against its layout. */
static void render(const FvConfusion *cf, FvImage *im, FvConfusionLayout *L)
{
    uint8_t *png = NULL;
    int32_t size = 0;
    assert_int_equal(fv_confusion_png(cf, &png, &size), 0);
    assert_true(size > 100);
    decode_png(png, (size_t)size, im);
    fv_image_png_free(png);
    assert_int_equal(fv_confusion_png_layout(cf, L), 0);
    assert_int_equal(im->w, L->width);
    assert_int_equal(im->h, L->height);
    printf("confusion.png of %d classes: %dx%d, cell %d, names %d, counts %d\n", cf->num_classes, im->w, im->h,
           L->cell, L->named, L->counts);
}

/* a cell's colour away from its count and its grid line */
static const uint8_t *cell_px(const FvImage *im, const FvConfusionLayout *L, int32_t r, int32_t c)
{
    const int32_t o = FV_MIN(3, L->cell - 1);
    return px(im, L->left + c * L->cell + o, L->top + r * L->cell + o);
}

/* names: in the label pixels left of row @r and above column @r */
static int64_t row_name_ink(const FvImage *im, const FvConfusionLayout *L, int32_t r)
{
    return text_ink_in(im, L->left - 6 - L->label, L->top + r * L->cell, L->left - 6, L->top + (r + 1) * L->cell);
}

static int64_t col_name_ink(const FvImage *im, const FvConfusionLayout *L, int32_t c)
{
    return text_ink_in(im, L->left + c * L->cell, L->top - 6 - L->label, L->left + (c + 1) * L->cell, L->top - 6);
}

/* Three classes of 12 videos: class 0 has 11 right and one taken for class 1; the 1/12 error cell is clearly
 * coloured (neither white like an empty cell nor the diagonal's hue) and lighter than a large share; names,
 * title and counts are drawn. */
static void test_confusion_png_colours(void **state)
{
    (void)state;
    const int64_t cm[3 * 4] = { 11, 1, 0, 0, /**/ 0, 12, 0, 0, /**/ 2, 4, 6, 0 };
    const char *const names[3] = { "jump", "run", "swim" };
    FvMetricsSummary s = { .num_evaluated = 36, .top1_acc = 80.56, .top5_acc = 100, .mean_class_acc = 80.56 };
    FvConfusion cf = { .cm = cm, .num_classes = 3, .cols = 3, .names = names, .model = "tiny", .dataset = "test",
                       .summary = &s };
    FvImage im;
    FvConfusionLayout L;
    render(&cf, &im, &L);
    assert_true(L.named && L.counts);
    const uint8_t *zero = cell_px(&im, &L, 0, 2), *err = cell_px(&im, &L, 0, 1), *diag = cell_px(&im, &L, 0, 0);
    const uint8_t *err_big = cell_px(&im, &L, 2, 1), *diag_small = cell_px(&im, &L, 2, 2);
    printf("empty %d,%d,%d  1/12 error %d,%d,%d  4/12 error %d,%d,%d  11/12 correct %d,%d,%d  6/12 correct "
           "%d,%d,%d\n", zero[0], zero[1], zero[2], err[0], err[1], err[2], err_big[0], err_big[1], err_big[2],
           diag[0], diag[1], diag[2], diag_small[0], diag_small[1], diag_small[2]);
    /* empty is white; one error in twelve a visible tint, lighter than bigger shares */
    assert_true(zero[0] == 255 && zero[1] == 255 && zero[2] == 255);
    assert_true(colour_dist(err, zero) >= 90);
    assert_true(luma(err) < luma(zero) - 25);
    assert_true(luma(err) > luma(err_big) + 20);
    assert_true(luma(diag) < luma(diag_small));
    /* errors and the diagonal in different hues: errors red, the diagonal blue */
    assert_true(err[0] > err[2] + 40 && err_big[0] > err_big[2] + 60);
    assert_true(diag[2] > diag[0] + 60 && diag_small[2] > diag_small[0] + 60);
    /* counts: text ink on the 1/12 cell (dark on light); the white count on the dark diagonal cell */
    const int32_t x = L.left + L.cell, y = L.top;
    assert_true(text_ink_in(&im, x + 1, y + 1, x + L.cell, y + L.cell) > 10);
    assert_int_equal(text_ink_in(&im, L.left + 2 * L.cell + 1, y + 1, L.left + 3 * L.cell, y + L.cell), 0);
    int64_t white = 0;
    for (int32_t yy = y + 1; yy < y + L.cell; yy++)
        for (int32_t xx = L.left + 1; xx < L.left + L.cell; xx++)
            white += !memcmp(px(&im, xx, yy), "\xff\xff\xff", 3);
    assert_true(white > 10);
    /* title over the names, names left of each row and over each column */
    assert_true(text_ink_in(&im, 0, 0, im.w, 30) > 200);
    for (int32_t r = 0; r < 3; r++)
        assert_true(row_name_ink(&im, &L, r) > 20 && col_name_ink(&im, &L, r) > 20);
    fv_image_free(&im);
}

/* UCF-101's 101 classes: names on both axes, one per row and column, diagonal blue. */
static void test_confusion_png_101(void **state)
{
    (void)state;
    enum { C = 101 };
    int64_t *cm = calloc((size_t)C * (C + 1), sizeof(int64_t));
    char (*nm)[32] = malloc(sizeof(char[32]) * C);
    const char *names[C];
    assert_true(cm && nm);
    for (int32_t r = 0; r < C; r++) {
        snprintf(nm[r], 32, "Class%03dName", r);
        names[r] = nm[r];
        cm[(size_t)r * (C + 1) + (size_t)r] = 30 + r % 7;
        cm[(size_t)r * (C + 1) + (size_t)((r * 37 + 5) % C)] += 2;
        cm[(size_t)r * (C + 1) + C] = r % 3 == 0; // now and then no dataset class
    }
    FvMetricsSummary s = { .num_evaluated = 3600 };
    FvConfusion cf = { .cm = cm, .num_classes = C, .cols = C + 1, .names = names, .model = "m", .dataset = "ucf",
                       .summary = &s };
    FvImage im;
    FvConfusionLayout L;
    render(&cf, &im, &L);
    assert_true(L.named);
    assert_true(L.cell >= FV_FONT_HEIGHT + 1);
    assert_true(im.w <= 2000 && im.h <= 2000);
    for (int32_t r = 0; r < C; r++) {
        assert_true(row_name_ink(&im, &L, r) > 20 && col_name_ink(&im, &L, r) > 20);
        const uint8_t *d = cell_px(&im, &L, r, r);
        assert_true(d[2] > d[0] + 60);
    }
    /* the last column, "(other)", named too */
    assert_true(col_name_ink(&im, &L, C) > 20);
    fv_image_free(&im);
    free(nm);
    free(cm);
}

/* More classes than names fit for: indices on the axes, names in a legend under the matrix. */
static void test_confusion_png_many(void **state)
{
    (void)state;
    enum { C = 300 };
    int64_t *cm = calloc((size_t)C * (C + 1), sizeof(int64_t));
    assert_non_null(cm);
    const char *names[C];
    for (int32_t r = 0; r < C; r++) {
        names[r] = "some class";
        cm[(size_t)r * (C + 1) + (size_t)r] = 5;
        cm[(size_t)r * (C + 1) + (size_t)((r + 1) % C)] = 1;
    }
    FvMetricsSummary s = { .num_evaluated = 1800 };
    FvConfusion cf = { .cm = cm, .num_classes = C, .cols = C, .names = names, .model = "m", .dataset = "d",
                       .summary = &s };
    FvImage im;
    FvConfusionLayout L;
    render(&cf, &im, &L);
    assert_false(L.named);
    assert_false(L.counts);
    assert_true(im.w <= 2000);
    const int32_t below = L.top + C * L.cell + 2;
    assert_true(im.h > below + 100);
    assert_true(text_ink_in(&im, 0, below, im.w, im.h) > 1000);
    const uint8_t *e = cell_px(&im, &L, 10, 11);
    assert_true(e[0] > e[2] + 40);
    fv_image_free(&im);
    free(cm);
}

/* ---- confusion.svg ------------------------------------------------------------------------------- */

/* code points of the text between > and </text>, an entity counting one */
static int text_len(const char *s, const char *end)
{
    int n = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '&') {
            const char *q = strchr(p, ';');
            p = q && q < end ? q : p;
        }
        n += ((unsigned char)*p & 0xc0) != 0x80;
    }
    return n;
}

static double attr(const char *tag, const char *tag_end, const char *name, double dflt)
{
    char key[32];
    snprintf(key, sizeof(key), " %s=\"", name);
    const char *p = strstr(tag, key);
    return p && p < tag_end ? strtod(p + strlen(key), NULL) : dflt;
}

/* Every <text> of @svg inside its view box, its width taken as 0.55 em a character (DejaVu Sans' average);
 * returns how many texts were checked. */
static int check_svg_texts(const char *svg)
{
    double vw = 0, vh = 0;
    const char *vb = strstr(svg, "viewBox=\"");
    assert_non_null(vb);
    assert_int_equal(sscanf(vb, "viewBox=\"0 0 %lf %lf\"", &vw, &vh), 2);
    int n = 0;
    for (const char *t = strstr(svg, "<text"); t; t = strstr(t + 1, "<text")) {
        const char *gt = strchr(t, '>'), *end = strstr(t, "</text>");
        assert_true(gt && end && gt < end);
        const double font = attr(t, gt, "font-size", 16), len = text_len(gt + 1, end) * font * 0.55;
        double x = attr(t, gt, "x", 0), y = attr(t, gt, "y", 0);
        const char *anchor = strstr(t, "text-anchor=\"");
        const char *tr = strstr(t, "transform=\"translate(");
        double lo, hi;
        if (anchor && anchor < gt && !strncmp(anchor + 13, "end", 3))
            lo = -len, hi = 0;
        else if (anchor && anchor < gt && !strncmp(anchor + 13, "middle", 6))
            lo = -len / 2, hi = len / 2;
        else
            lo = 0, hi = len;
        int ok;
        if (tr && tr < gt) { /* translate(tx,ty) rotate(-90): the text runs upwards from (tx, ty) */
            double tx, ty;
            assert_int_equal(sscanf(tr, "transform=\"translate(%lf,%lf) rotate(-90)", &tx, &ty), 2);
            ok = ty - hi >= 0 && ty - lo <= vh && tx - font >= 0 && tx + font * 0.3 <= vw;
        } else {
            ok = x + lo >= 0 && x + hi <= vw && y - font >= 0 && y + font * 0.3 <= vh;
        }
        if (!ok)
            printf("outside the %gx%g view box: %.*s\n", vw, vh, (int)(end - t + 7), t);
        assert_true(ok);
        n++;
    }
    return n;
}

/* The fill of the cell whose tooltip ends in @title. */
static void svg_cell_fill(const char *svg, const char *title, int rgb[3])
{
    const char *t = strstr(svg, title);
    assert_non_null(t);
    const char *f = t;
    while (f > svg && strncmp(f, "fill=\"#", 7))
        f--;
    assert_int_equal(sscanf(f, "fill=\"#%2x%2x%2x\"", &rgb[0], &rgb[1], &rgb[2]), 3);
}

static void svg_of(const FvConfusion *cf, FvStrBuf *b)
{
    memset(b, 0, sizeof(*b));
    assert_int_equal(fv_confusion_svg(cf, b), 0);
    assert_non_null(strstr(b->s, "</svg>\n"));
}

/* The title and figures above a small matrix fit in the SVG (they used to run past its right edge), so do long
 * class names and the names of 101 classes. */
static void test_confusion_svg_fits(void **state)
{
    (void)state;
    const int64_t cm[4 * 5] = { 11, 1, 0, 0, 0, /**/ 0, 12, 0, 0, 0, /**/ 2, 4, 6, 0, 0, /**/ 0, 0, 1, 9, 2 };
    const char *const names[4] = { "jump", "run", "a class name well over forty characters long, cut", "throw" };
    FvMetricsSummary s = { .num_evaluated = 48, .top1_acc = 79.17, .top5_acc = 100, .mean_class_acc = 79.17 };
    FvConfusion cf = { .cm = cm, .num_classes = 4, .cols = 5, .names = names,
                       .model = "models/timesformer_fib_k400_8x224.safetensors", .dataset = "UCF-101 split 1 test",
                       .summary = &s };
    FvStrBuf b;
    svg_of(&cf, &b);
    int n = check_svg_texts(b.s);
    printf("%d texts inside the view box\n", n);
    assert_true(n > 20);
    assert_non_null(strstr(b.s, ">Confusion matrix \xe2\x80\x94 48 videos</text>"));
    assert_non_null(strstr(b.s, ">predicted class</text>"));
    assert_non_null(strstr(b.s, ">true class</text>"));
    assert_non_null(strstr(b.s, ">throw</text>"));
    assert_non_null(strstr(b.s, "\xe2\x80\xa6</text>")); // the long name cut
    assert_non_null(strstr(b.s, ">(other)</text>"));
    /* one error of twelve: a red tint, eleven right of twelve blue; empty cells are not drawn over the white */
    int err[3], ok[3];
    svg_cell_fill(b.s, "jump -> run: 1 of 12 (8.3%)</title>", err);
    svg_cell_fill(b.s, "jump -> jump: 11 of 12 (91.7%), correct</title>", ok);
    printf("svg: 1/12 error #%02x%02x%02x, 11/12 correct #%02x%02x%02x\n", err[0], err[1], err[2], ok[0], ok[1],
           ok[2]);
    assert_true(err[0] > err[2] + 40 && err[0] + err[1] + err[2] < 3 * 255 - 90);
    assert_true(ok[2] > ok[0] + 60);
    assert_null(strstr(b.s, "jump -> swim"));
    fv_strbuf_free(&b);

    enum { C = 101 };
    int64_t *big = calloc((size_t)C * (C + 1), sizeof(int64_t));
    const char *many[C];
    assert_non_null(big);
    for (int32_t i = 0; i < C; i++) {
        many[i] = i % 2 ? "HandstandPushups" : "YoYo";
        big[(size_t)i * (C + 1) + (size_t)i] = 20;
    }
    FvConfusion cf2 = { .cm = big, .num_classes = C, .cols = C, .names = many, .model = "m", .dataset = "d",
                        .summary = &s };
    svg_of(&cf2, &b);
    n = check_svg_texts(b.s);
    assert_true(n > 2 * C);
    fv_strbuf_free(&b);
    free(big);
}

/* ---- masks PNG ----------------------------------------------------------------------------------- */

/* Intervals of the projection of the mask squares' background (235 grey) on one axis. */
static int squares_on_axis(const FvImage *im, int vertical, int32_t *lo, int32_t *hi, int max)
{
    const int32_t n = vertical ? im->h : im->w, m = vertical ? im->w : im->h;
    int k = 0, in = 0;
    for (int32_t i = 0; i < n; i++) {
        int any = 0;
        for (int32_t j = 0; j < m && !any; j++) {
            const uint8_t *p = vertical ? px(im, j, i) : px(im, i, j);
            any = p[0] == 235 && p[1] == 235 && p[2] == 235;
        }
        if (any && !in) {
            assert_true(k < max);
            lo[k] = i;
            in = 1;
        }
        if (!any && in) {
            hi[k++] = i;
            in = 0;
        }
    }
    if (in)
        hi[k++] = n;
    return k;
}

/* The masks PNG has a title above the squares, "layer l" left of each row and each head's label (density,
 * offsets) under its square, within its width. */
static void test_masks_png(void **state)
{
    (void)state;
    FvAttnSettings a;
    fv_attn_default_settings(&a);
    FvAttnMasks *m = NULL;
    assert_int_equal(fv_attn_masks_create(&m, &a, 49, 4, 2, 0), 0);
    char *dir = fvt_tmpdir(), *path = fvt_join(dir, "masks.png");
    assert_int_equal(fv_attn_masks_write_png(m, path), 0);
    fv_attn_masks_close(&m);
    size_t size = 0;
    char *data = fvt_read_file(path, &size);
    assert_non_null(data);
    FvImage im;
    decode_png((const uint8_t *)data, size, &im);
    free(data);
    int32_t x0[8], x1[8], y0[4], y1[4];
    const int nx = squares_on_axis(&im, 0, x0, x1, 8), ny = squares_on_axis(&im, 1, y0, y1, 4);
    printf("masks.png %dx%d: %d heads x %d layers of squares, the first at (%d,%d)-(%d,%d)\n", im.w, im.h, nx, ny,
           x0[0], y0[0], x1[0], y1[0]);
    assert_int_equal(nx, 4);
    assert_int_equal(ny, 2);
    assert_true(text_ink_in(&im, 0, 0, im.w, y0[0]) > 300); // the title
    for (int l = 0; l < ny; l++) {
        assert_true(text_ink_in(&im, 0, y0[l], x0[0], y1[l]) > 20); // "layer l"
        const int32_t band = y1[l] + 1, band_end = y1[l] + 2 * (FV_FONT_HEIGHT + 2) + 4;
        for (int h = 0; h < nx; h++) {
            assert_true(text_ink_in(&im, x0[h], band, x1[h], band_end) > 60); // "head h: d%", "offsets ..."
            if (h + 1 < nx) /* labels stay within their square's width */
                assert_int_equal(text_ink_in(&im, x1[h], band, x0[h + 1], band_end), 0);
        }
    }
    fv_image_free(&im);
    fvt_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glyph_box),
        cmocka_unit_test(test_text_ink),
        cmocka_unit_test(test_text_fit),
        cmocka_unit_test(test_text_up),
        cmocka_unit_test(test_confusion_png_colours),
        cmocka_unit_test(test_confusion_png_101),
        cmocka_unit_test(test_confusion_png_many),
        cmocka_unit_test(test_confusion_svg_fits),
        cmocka_unit_test(test_masks_png),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
