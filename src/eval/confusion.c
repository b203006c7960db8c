/* The confusion matrix of an evaluation as pictures: confusion.svg (class names, counts on the cells, a colour
 * bar; any non-empty cell tinted) and confusion.png for viewers and pipelines that take bitmaps only (fv_image_*
 * drawing, FFmpeg's PNG encoder; no font library, so its axes carry class indices, drawn with a 3x5 digit
 * font: per_class.csv names them). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval/confusion.h"
#include "eval/image.h"
#include "util/util.h"

static void xml_text(FvStrBuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '<': fv_strbuf_printf(b, "&lt;"); break;
        case '>': fv_strbuf_printf(b, "&gt;"); break;
        case '&': fv_strbuf_printf(b, "&amp;"); break;
        case '"': fv_strbuf_printf(b, "&quot;"); break;
        default:
            if ((unsigned char)*p >= 0x20 || *p == '\t')
                fv_strbuf_printf(b, "%c", *p);
        }
    }
}

/* ColorBrewer "Blues", light to dark: the fraction of a row's videos in a cell. */
static void blues(double f, int *r, int *g, int *bl)
{
    static const int stops[9][3] = {
        { 247, 251, 255 }, { 222, 235, 247 }, { 198, 219, 239 }, { 158, 202, 225 }, { 107, 174, 214 },
        { 66, 146, 198 },  { 33, 113, 181 },  { 8, 81, 156 },    { 8, 48, 107 },
    };
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    double x = f * 8;
    int i = (int)x;
    if (i >= 8)
        i = 7;
    double t = x - i;
    *r = (int)lround(stops[i][0] + t * (stops[i + 1][0] - stops[i][0]));
    *g = (int)lround(stops[i][1] + t * (stops[i + 1][1] - stops[i][1]));
    *bl = (int)lround(stops[i][2] + t * (stops[i + 1][2] - stops[i][2]));
}

int fv_confusion_svg(const FvConfusion *cf, FvStrBuf *out)
{
    FvStrBuf b = { 0 };
    const int32_t C = cf->num_classes, cols = cf->cols;
    const int64_t *cm = cf->cm; // (C, C + 1)
    const FvMetricsSummary *s = cf->summary;
    /* cells shrink with the class count so 101 classes stay on one screen; names stay legible */
    const int cell = C <= 12 ? 36 : C <= 30 ? 22 : C <= 60 ? 14 : 10;
    const double font = cell >= 22 ? 12 : cell >= 14 ? 10 : 8;
    size_t maxlen = 8;
    for (int32_t c = 0; c < C; c++)
        maxlen = FV_MAX(maxlen, strlen(cf->names[c]));
    maxlen = FV_MIN(maxlen, 40);
    const int label_w = (int)(maxlen * font * 0.62) + 12;
    const int left = label_w + 24, top = 64 + label_w;
    const int grid_w = cols * cell, grid_h = C * cell;
    const int width = left + grid_w + 110, height = top + grid_h + 40;

    fv_strbuf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                   "font-family=\"DejaVu Sans, Arial, sans-serif\">\n",
               width, height, width, height);
    fv_strbuf_printf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fv_strbuf_printf(&b, "<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Confusion matrix: ");
    xml_text(&b, cf->model);
    fv_strbuf_printf(&b, ", ");
    xml_text(&b, cf->dataset);
    fv_strbuf_printf(&b, "</text>\n<text x=\"12\" y=\"42\" font-size=\"12\">top-1 %.2f%%, top-5 %.2f%%, mean class "
                   "%.2f%% over %lld videos (video level); rows: true class, columns: predicted class, colour: "
                   "fraction of the row</text>\n",
               s->top1_acc, s->top5_acc, s->mean_class_acc, (long long)s->num_evaluated);
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">predicted</text>\n",
               left + grid_w / 2, 62);
    fv_strbuf_printf(&b, "<text font-size=\"12\" text-anchor=\"middle\" transform=\"translate(14,%d) rotate(-90)\">true"
                   "</text>\n", top + grid_h / 2);

    /* labels */
    for (int32_t c = 0; c < cols; c++) {
        const char *nm = c < C ? cf->names[c] : "(other)";
        fv_strbuf_printf(&b, "<text font-size=\"%g\" transform=\"translate(%d,%d) rotate(-90)\">", font,
                   left + c * cell + cell / 2 + (int)(font / 3), top - 4);
        xml_text(&b, nm);
        fv_strbuf_printf(&b, "</text>\n");
    }
    for (int32_t r = 0; r < C; r++) {
        fv_strbuf_printf(&b, "<text font-size=\"%g\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", font, left - 4,
                   top + r * cell + cell / 2 + (int)(font / 3));
        xml_text(&b, cf->names[r]);
        fv_strbuf_printf(&b, "</text>\n");
    }

    /* cells: only the non-empty ones, over a light background */
    fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"white\" stroke=\"#999\" "
                   "stroke-width=\"0.5\"/>\n", left, top, grid_w, grid_h);
    for (int32_t r = 0; r < C; r++) {
        int64_t row = 0;
        for (int32_t c = 0; c < cols; c++)
            row += cm[(size_t)r * (size_t)(C + 1) + (size_t)c];
        for (int32_t c = 0; c < cols; c++) {
            int64_t v = cm[(size_t)r * (size_t)(C + 1) + (size_t)c];
            if (!v)
                continue;
            double f = (double)v / (double)row;
            int cr, cg, cb;
            /* any non-empty cell gets a visible tint, or single confusions vanish on the background */
            blues(0.1 + 0.9 * f, &cr, &cg, &cb);
            fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#%02x%02x%02x\"%s><title>",
                       left + c * cell, top + r * cell, cell, cell, cr, cg, cb,
                       r == c ? " stroke=\"#d62728\" stroke-width=\"0.8\"" : "");
            xml_text(&b, cf->names[r]);
            fv_strbuf_printf(&b, " -> ");
            xml_text(&b, c < C ? cf->names[c] : "(other)");
            fv_strbuf_printf(&b, ": %lld (%.1f%%)</title></rect>\n", (long long)v, 100.0 * f);
            if (cell >= 22)
                fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"%g\" text-anchor=\"middle\" fill=\"%s\">%lld"
                               "</text>\n", left + c * cell + cell / 2, top + r * cell + cell / 2 + (int)(font / 3),
                           font - 1, f > 0.5 ? "white" : "black", (long long)v);
        }
    }
    /* colour bar */
    const int bx = left + grid_w + 24, bh = FV_MAX(grid_h, 100);
    for (int i = 0; i < 50; i++) {
        int cr, cg, cb;
        blues(0.1 + 0.9 * (1.0 - (i + 0.5) / 50.0), &cr, &cg, &cb);
        fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%.2f\" width=\"16\" height=\"%.2f\" fill=\"#%02x%02x%02x\"/>\n", bx,
                   top + i * bh / 50.0, bh / 50.0 + 0.3, cr, cg, cb);
    }
    fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"%d\" fill=\"none\" stroke=\"#999\" "
                   "stroke-width=\"0.5\"/>\n", bx, top, bh);
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"10\">1.0</text>\n", bx + 20, top + 8);
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"10\">0.5</text>\n", bx + 20, top + bh / 2 + 4);
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"10\">0</text>\n", bx + 20, top + bh);
    fv_strbuf_printf(&b, "</svg>\n");
    if (b.oom) {
        fv_strbuf_free(&b);
        return fv_error(FV_ENOMEM, "confusion.svg: out of memory");
    }
    *out = b;
    return 0;
}

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

int fv_confusion_png(const FvConfusion *cf, uint8_t **png, int32_t *size)
{
    const int64_t *cm = cf->cm;
    const int32_t C = cf->num_classes, cols = cf->cols;
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
