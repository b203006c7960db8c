/* The confusion matrix of an evaluation as a PNG picture (fv_image_* drawing, FFmpeg's PNG encoder):
 * no font library, so axes carry class indices (per_class.csv names them) drawn with a 3x5 digit font. */
#include <stdio.h>
#include <string.h>

#include "eval/image.h"
#include "util/util.h"
#include "eval/report_png.h"

/* 3x5 digits, one row of 3 bits per line, top line first */
static const uint8_t digit_rows[10][5] = {
    { 7, 5, 5, 5, 7 }, { 2, 6, 2, 2, 7 }, { 7, 1, 7, 4, 7 }, { 7, 1, 7, 1, 7 }, { 5, 5, 7, 1, 1 },
    { 7, 4, 7, 1, 7 }, { 7, 4, 7, 5, 7 }, { 7, 1, 1, 1, 1 }, { 7, 5, 7, 5, 7 }, { 7, 5, 7, 1, 7 },
};

static int num_digits(int32_t v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* Draw @v at (x, y) with pixel size @s; right-aligned at x when @right. */
static void draw_number(FvImage *im, int32_t x, int32_t y, int32_t v, int32_t s, int right, const uint8_t col[3])
{
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d", v);
    int32_t w = n * 4 * s - s;
    if (right)
        x -= w;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < 5; r++)
            for (int c = 0; c < 3; c++)
                if (digit_rows[buf[i] - '0'][r] & (4 >> c))
                    fv_image_fill_rect(im, x + (i * 4 + c) * s, y + r * s, s, s, col);
}

static void outline(FvImage *im, int32_t x, int32_t y, int32_t w, int32_t h, const uint8_t col[3])
{
    fv_image_fill_rect(im, x, y, w, 1, col);
    fv_image_fill_rect(im, x, y + h - 1, w, 1, col);
    fv_image_fill_rect(im, x, y, 1, h, col);
    fv_image_fill_rect(im, x + w - 1, y, 1, h, col);
}

int fv_report_confusion_png(const int64_t *cm, int32_t C, int32_t cols, uint8_t **png, int32_t *size)
{
    static const uint8_t black[3] = { 0, 0, 0 }, grey[3] = { 200, 200, 200 }, red[3] = { 214, 39, 40 };
    if (!cm || !png || !size || C < 1 || C > 100000 || (cols != C && cols != C + 1))
        return fv_error(FV_EINVAL, "fv_report_confusion_png: bad arguments");
    /* the picture stays under about 1100 pixels wide whatever the class count */
    const int32_t cell = C <= 12 ? 32 : C <= 30 ? 20 : C <= 60 ? 12 : C <= 128 ? 8 : FV_MAX(1, 1024 / cols);
    const int32_t s = cell >= 20 ? 2 : 1;                 // font pixel size
    const int32_t dw = num_digits(cols) * 4 * s;          // widest index
    const int32_t step = FV_MAX(1, (dw + 2 * s + cell - 1) / cell); // label every step-th column
    const int32_t rstep = FV_MAX(1, (6 * s + cell - 1) / cell);
    const int32_t left = dw + 8, top = 5 * s + 8;
    const int32_t gw = cols * cell, gh = C * cell, bar_x = left + gw + 10;
    FvImage im;
    int ret = fv_image_alloc(&im, bar_x + 14 + 4 * 4 * s + 8, top + gh + 8, 255, 255, 255);
    if (ret < 0)
        return ret;

    for (int32_t r = 0; r < C; r++) {
        int64_t row = 0;
        for (int32_t c = 0; c < cols; c++)
            row += cm[(size_t)r * (size_t)(C + 1) + (size_t)c];
        for (int32_t c = 0; c < cols; c++) {
            int64_t v = cm[(size_t)r * (size_t)(C + 1) + (size_t)c];
            if (!v)
                continue;
            uint8_t col[3];
            /* any non-empty cell gets a visible colour, as in confusion.svg */
            fv_colormap(0.1f + 0.9f * (float)((double)v / (double)row), col);
            fv_image_fill_rect(&im, left + c * cell, top + r * cell, cell, cell, col);
        }
    }
    if (cell >= 4)
        for (int32_t d = 0; d < C; d++)
            outline(&im, left + d * cell, top + d * cell, cell, cell, red);
    outline(&im, left - 1, top - 1, gw + 2, gh + 2, grey);
    if (cols > C) /* the "(other)" column: predictions that are no dataset class */
        fv_image_fill_rect(&im, left + C * cell, top, 1, gh, grey);

    /* indices: columns above the grid, rows on the left */
    if (cell >= 2) {
        for (int32_t c = 0; c < C; c += step)
            draw_number(&im, left + c * cell + (cell - (num_digits(c) * 4 * s - s)) / 2, 3, c, s, 0, black);
        for (int32_t r = 0; r < C; r += rstep)
            draw_number(&im, left - 4, top + r * cell + (cell - 5 * s) / 2, r, s, 1, black);
    }

    /* colour bar: fraction of the row, 1 at the top */
    for (int32_t y = 0; y < gh; y++) {
        uint8_t col[3];
        fv_colormap(0.1f + 0.9f * (1.0f - (float)y / (float)FV_MAX(gh - 1, 1)), col);
        fv_image_fill_rect(&im, bar_x, top + y, 12, 1, col);
    }
    outline(&im, bar_x - 1, top - 1, 14, gh + 2, grey);
    draw_number(&im, bar_x + 16, top, 1, s, 0, black);
    draw_number(&im, bar_x + 16, top + gh - 5 * s, 0, s, 0, black);

    ret = fv_image_encode_png(&im, png, size);
    fv_image_free(&im);
    return ret;
}
