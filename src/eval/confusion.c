/* The confusion matrix of an evaluation as pictures: confusion.svg and confusion.png for viewers and pipelines
 * that take bitmaps only (fv_image_* drawing and bitmap font, FFmpeg's PNG encoder). Both carry the same title,
 * axis titles, class names, counts and colours: the share of the row's videos, the diagonal (correct) in blues,
 * errors in reds, empty cells white, and any non-empty cell a visible tint. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval/confusion.h"
#include "eval/image.h"
#include "util/util.h"

/* Palette position of the smallest share: one error among many videos must not look like an empty cell. */
#define MIN_TINT 0.22

/* ColorBrewer "Blues" (correct) and "Reds" (errors), light to dark. */
static const int blues[9][3] = {
    { 247, 251, 255 }, { 222, 235, 247 }, { 198, 219, 239 }, { 158, 202, 225 }, { 107, 174, 214 },
    { 66, 146, 198 },  { 33, 113, 181 },  { 8, 81, 156 },    { 8, 48, 107 },
};
static const int reds[9][3] = {
    { 255, 245, 240 }, { 254, 224, 210 }, { 252, 187, 161 }, { 252, 146, 114 }, { 251, 106, 74 },
    { 239, 59, 44 },   { 203, 24, 29 },   { 165, 15, 21 },   { 103, 0, 13 },
};

static void palette(const int stops[9][3], double t, uint8_t rgb[3])
{
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double x = t * 8;
    int i = (int)x;
    if (i >= 8)
        i = 7;
    double f = x - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
}

/* Palette position of a share @f > 0 of the row. */
static double tint(double f)
{
    return MIN_TINT + (1.0 - MIN_TINT) * f;
}

/* The colour of a cell holding @v of its row's @row videos (white when empty) into @rgb; returns its palette
 * position (0 when empty), which decides the colour of the count drawn on it. */
static double cell_colour(int64_t v, int64_t row, int diag, uint8_t rgb[3])
{
    if (v <= 0 || row <= 0) {
        rgb[0] = rgb[1] = rgb[2] = 255;
        return 0.0;
    }
    const double t = tint((double)v / (double)row);
    palette(diag ? blues : reds, t, rgb);
    return t;
}

static int64_t cell_at(const FvConfusion *cf, int32_t r, int32_t c)
{
    return cf->cm[(size_t)r * (size_t)(cf->num_classes + 1) + (size_t)c];
}

static int64_t row_total(const FvConfusion *cf, int32_t r)
{
    int64_t t = 0;
    for (int32_t c = 0; c < cf->cols; c++)
        t += cell_at(cf, r, c);
    return t;
}

static const char *col_name(const FvConfusion *cf, int32_t c)
{
    return c < cf->num_classes && cf->names && cf->names[c] ? cf->names[c] : "(other)";
}

static const char *row_name(const FvConfusion *cf, int32_t r)
{
    return cf->names && cf->names[r] ? cf->names[r] : "?";
}

/* The lines above the matrix, the same in both pictures: a title and three lines of figures and legend. */
enum { HEAD_LINES = 4, HEAD_LEN = 640 };
static void head_lines(const FvConfusion *cf, char out[HEAD_LINES][HEAD_LEN])
{
    const FvMetricsSummary *s = cf->summary;
    const long long n = s ? (long long)s->num_evaluated : 0;
    const char *model = cf->model && *cf->model ? cf->model : "?";
    const char *data = cf->dataset && *cf->dataset ? cf->dataset : "?";
    snprintf(out[0], HEAD_LEN, "Confusion matrix \xe2\x80\x94 %lld video%s", n, n == 1 ? "" : "s");
    snprintf(out[1], HEAD_LEN, "model %s; dataset %s", model, data);
    snprintf(out[2], HEAD_LEN, "top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%% (video level)",
             s ? s->top1_acc : 0.0, s ? s->top5_acc : 0.0, s ? s->mean_class_acc : 0.0);
    snprintf(out[3], HEAD_LEN, "rows: true class, columns: predicted class; colour: share of the row "
                               "(blue correct, red error, white none)");
}

/* Code points of UTF-8 @s. */
static int32_t glyphs(const char *s)
{
    int32_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* ---- SVG ----------------------------------------------------------------------------------------- */

/* Width of a text in the SVG's sans-serif font, on the generous side (DejaVu Sans averages about 0.55 em a
 * character, bold more), so that the picture is made wide enough for it. */
static double svg_text_w(const char *s, double font, int bold)
{
    return glyphs(s) * font * (bold ? 0.68 : 0.60);
}

/* @s escaped for XML, cut at @max code points with an ellipsis. */
static void xml_text(FvStrBuf *b, const char *s, int32_t max)
{
    const int32_t n = glyphs(s);
    int32_t k = 0;
    for (const char *p = s; *p; p++) {
        if (((unsigned char)*p & 0xc0) != 0x80 && n > max && ++k > max - 1) {
            fv_strbuf_printf(b, "\xe2\x80\xa6");
            break;
        }
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

static void svg_hex(FvStrBuf *b, const uint8_t rgb[3])
{
    fv_strbuf_printf(b, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* class names longer than this are cut (the cells' tooltips keep them whole) */
#define SVG_NAME_MAX 40

int fv_confusion_svg(const FvConfusion *cf, FvStrBuf *out)
{
    FvStrBuf b = { 0 };
    const int32_t C = cf->num_classes, cols = cf->cols;
    if (!cf->cm || C < 1 || (cols != C && cols != C + 1))
        return fv_error(FV_EINVAL, "fv_confusion_svg: bad arguments");
    char head[HEAD_LINES][HEAD_LEN];
    head_lines(cf, head);
    /* cells shrink with the class count so 101 classes stay on one screen; names stay legible */
    const int cell = C <= 12 ? 36 : C <= 30 ? 22 : C <= 60 ? 14 : 10;
    const double font = cell >= 22 ? 12 : cell >= 14 ? 10 : 8;
    int32_t maxlen = 8;
    for (int32_t c = 0; c < cols; c++)
        maxlen = FV_MAX(maxlen, FV_MIN(glyphs(col_name(cf, c)), SVG_NAME_MAX));
    const int label_w = (int)ceil(maxlen * font * 0.60) + 8;
    const int left = 30 + label_w + 6, top = 112 + label_w + 6;
    const int grid_w = cols * cell, grid_h = C * cell;
    /* the legend right of the grid: two colour bars (correct, error) and their swatches */
    static const char *const keys[3] = { "correct (diagonal)", "error", "no video" };
    const int lx = left + grid_w + 24, bh = FV_MAX(FV_MIN(grid_h - 90, 240), 80);
    const int legend_w = 40 + (int)ceil(svg_text_w(keys[0], 11, 0));
    int width = lx + legend_w + 12;
    for (int i = 0; i < HEAD_LINES; i++)
        width = FV_MAX(width, 12 + (int)ceil(svg_text_w(head[i], i ? 12 : 16, !i)) + 12);
    const int height = FV_MAX(top + grid_h, top + 20 + bh + 3 * 18) + 24;

    fv_strbuf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                         "font-family=\"DejaVu Sans, Arial, sans-serif\">\n",
                     width, height, width, height);
    fv_strbuf_printf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    for (int i = 0; i < HEAD_LINES; i++) {
        fv_strbuf_printf(&b, "<text x=\"12\" y=\"%d\" font-size=\"%d\"%s>", i ? 30 + 18 * i : 24, i ? 12 : 16,
                         i ? "" : " font-weight=\"bold\"");
        xml_text(&b, head[i], HEAD_LEN);
        fv_strbuf_printf(&b, "</text>\n");
    }
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">predicted class</text>\n",
                     left + grid_w / 2, 106);
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" "
                         "transform=\"translate(%d,%d) rotate(-90)\">true class</text>\n",
                     0, 0, 20, top + grid_h / 2);

    /* class names: rotated over the columns, right-aligned left of the rows */
    for (int32_t c = 0; c < cols; c++) {
        fv_strbuf_printf(&b, "<text x=\"0\" y=\"0\" font-size=\"%g\" transform=\"translate(%d,%d) rotate(-90)\">",
                         font, left + c * cell + cell / 2 + (int)(font / 3), top - 6);
        xml_text(&b, col_name(cf, c), SVG_NAME_MAX);
        fv_strbuf_printf(&b, "</text>\n");
    }
    for (int32_t r = 0; r < C; r++) {
        fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"%g\" text-anchor=\"end\">", left - 6,
                         top + r * cell + cell / 2 + (int)(font / 3), font);
        xml_text(&b, row_name(cf, r), SVG_NAME_MAX);
        fv_strbuf_printf(&b, "</text>\n");
    }

    /* cells: the non-empty ones over a white grid, a light line between cells */
    fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", left, top, grid_w,
                     grid_h);
    for (int32_t r = 0; r < C; r++) {
        const int64_t row = row_total(cf, r);
        for (int32_t c = 0; c < cols; c++) {
            const int64_t v = cell_at(cf, r, c);
            if (!v)
                continue;
            uint8_t rgb[3];
            const double t = cell_colour(v, row, r == c, rgb);
            fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"", left + c * cell,
                             top + r * cell, cell, cell);
            svg_hex(&b, rgb);
            fv_strbuf_printf(&b, "\"><title>");
            xml_text(&b, row_name(cf, r), HEAD_LEN);
            fv_strbuf_printf(&b, " -> ");
            xml_text(&b, col_name(cf, c), HEAD_LEN);
            fv_strbuf_printf(&b, ": %lld of %lld (%.1f%%)%s</title></rect>\n", (long long)v, (long long)row,
                             100.0 * (double)v / (double)row, r == c ? ", correct" : "");
            if (cell >= 22)
                fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"%g\" text-anchor=\"middle\" fill=\"%s\">"
                                     "%lld</text>\n", left + c * cell + cell / 2,
                                 top + r * cell + cell / 2 + (int)(font / 3), font - 1, t > 0.55 ? "white" : "black",
                                 (long long)v);
        }
    }
    if (cell >= 10) {
        fv_strbuf_printf(&b, "<path d=\"");
        for (int32_t c = 1; c < cols; c++)
            fv_strbuf_printf(&b, "M%d %dv%d", left + c * cell, top, grid_h);
        for (int32_t r = 1; r < C; r++)
            fv_strbuf_printf(&b, "M%d %dh%d", left, top + r * cell, grid_w);
        fv_strbuf_printf(&b, "\" stroke=\"#e4e4e4\" stroke-width=\"0.6\" fill=\"none\"/>\n");
    }
    fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\" "
                         "stroke-width=\"0.8\"/>\n", left, top, grid_w, grid_h);
    if (cols > C) /* the "(other)" column: predictions that are no dataset class */
        fv_strbuf_printf(&b, "<path d=\"M%d %dv%d\" stroke=\"#888\" stroke-width=\"0.8\"/>\n", left + C * cell, top,
                         grid_h);

    /* legend: the two colour bars, share of the row from the smallest (bottom) to all (top), then swatches */
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">share of the row</text>\n", lx, top + 8);
    const int by = top + 20;
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 50; i++) {
            uint8_t rgb[3];
            palette(k ? reds : blues, tint(1.0 - (i + 0.5) / 50.0), rgb);
            fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%.2f\" width=\"12\" height=\"%.2f\" fill=\"", lx + 16 * k,
                             by + i * bh / 50.0, bh / 50.0 + 0.3);
            svg_hex(&b, rgb);
            fv_strbuf_printf(&b, "\"/>\n");
        }
        fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"%d\" fill=\"none\" stroke=\"#888\" "
                             "stroke-width=\"0.5\"/>\n", lx + 16 * k, by, bh);
    }
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"10\">100%%</text>\n", lx + 32, by + 8);
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"10\">50%%</text>\n", lx + 32, by + bh / 2 + 4);
    fv_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"10\">&gt;0%%</text>\n", lx + 32, by + bh);
    for (int k = 0; k < 3; k++) {
        uint8_t rgb[3] = { 255, 255, 255 };
        if (k < 2)
            palette(k ? reds : blues, tint(0.6), rgb);
        const int y = by + bh + 14 + 18 * k;
        fv_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" stroke=\"#888\" stroke-width=\"0.5\" "
                             "fill=\"", lx, y);
        svg_hex(&b, rgb);
        fv_strbuf_printf(&b, "\"/>\n<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", lx + 18, y + 10, keys[k]);
    }
    fv_strbuf_printf(&b, "</svg>\n");
    if (b.oom) {
        fv_strbuf_free(&b);
        return fv_error(FV_ENOMEM, "confusion.svg: out of memory");
    }
    *out = b;
    return 0;
}

/* ---- PNG ----------------------------------------------------------------------------------------- */

static void outline(FvImage *im, int32_t x, int32_t y, int32_t w, int32_t h, const uint8_t col[3])
{
    fv_image_fill_rect(im, x, y, w, 1, col);
    fv_image_fill_rect(im, x, y + h - 1, w, 1, col);
    fv_image_fill_rect(im, x, y, 1, h, col);
    fv_image_fill_rect(im, x + w - 1, y, 1, h, col);
}

/* Up to this many classes the axes carry the names (cells tall enough for the font); beyond, class indices
 * every few cells and a legend of index and name under the matrix. */
#define PNG_NAMED_MAX 128
/* names are cut at this many glyphs */
#define PNG_NAME_MAX 24

/* Everything fv_confusion_png() places, from the class count, names and largest count. */
typedef struct PngLayout {
    FvConfusionLayout pub;
    int32_t ls, lh, cs, pad;  /* label font scale and line height, count font scale, margin */
    int32_t label_w;          /* the class names' (or indices') room on each axis */
    int32_t axis_y;           /* the "predicted class" line */
    int32_t lx, by, bh;       /* the legend: its left, the colour bars' top and height */
    int32_t leg_y, ent_w, nrow; /* the index legend under the matrix: top, entry width, rows */
} PngLayout;

static const char *const png_keys[3] = { "correct (diagonal)", "error", "no video" };

static int png_layout(const FvConfusion *cf, char head[HEAD_LINES][HEAD_LEN], PngLayout *L)
{
    const int32_t C = cf->num_classes, cols = cf->cols;
    char buf[32];
    if (!cf->cm || C < 1 || C > 100000 || (cols != C && cols != C + 1))
        return fv_error(FV_EINVAL, "fv_confusion_png: bad arguments");
    head_lines(cf, head);
    memset(L, 0, sizeof(*L));
    FvConfusionLayout *p = &L->pub;
    p->named = C <= PNG_NAMED_MAX;
    /* the matrix stays under about 1550 pixels whatever the class count */
    const int32_t cell = p->cell = C <= 12 ? 40 : C <= 30 ? 24 : p->named ? 12 : FV_MAX(1, 1200 / cols);
    L->ls = C <= 12 ? 2 : 1;
    L->lh = FV_FONT_HEIGHT * L->ls;
    L->pad = 10;
    if (p->named) {
        for (int32_t c = 0; c < cols; c++)
            L->label_w = FV_MAX(L->label_w, fv_image_text_width(col_name(cf, c), L->ls));
        L->label_w = FV_MIN(L->label_w, (PNG_NAME_MAX * FV_FONT_ADVANCE - 1) * L->ls);
    } else {
        snprintf(buf, sizeof(buf), "%d", cols - 1);
        L->label_w = fv_image_text_width(buf, 1);
    }
    /* counts on the cells when the largest fits (2x font on big cells) */
    int64_t maxv = 0;
    for (int32_t r = 0; r < C; r++)
        for (int32_t c = 0; c < cols; c++)
            maxv = FV_MAX(maxv, cell_at(cf, r, c));
    snprintf(buf, sizeof(buf), "%lld", (long long)maxv);
    L->cs = cell >= 40 ? 2 : 1;
    if (fv_image_text_width(buf, L->cs) > cell - 4)
        L->cs = 1;
    p->counts = fv_image_text_width(buf, L->cs) <= cell - 2 && FV_FONT_ASCENT * L->cs <= cell - 3;

    const int32_t pad = L->pad, head_h = pad + 2 * FV_FONT_HEIGHT + 6 + (HEAD_LINES - 1) * 13;
    L->axis_y = head_h + 8;
    p->top = L->axis_y + L->lh + 6 + L->label_w + 6;
    p->left = pad + L->lh + 8 + L->label_w + 6;
    const int32_t gw = cols * cell, gh = C * cell;
    /* the legend right of the matrix */
    L->lx = p->left + gw + 20;
    L->bh = FV_MAX(FV_MIN(gh - 80, 240), 80);
    L->by = p->top + 14;
    int32_t W = L->lx + 34 + fv_image_text_width("100%", 1) + pad;
    W = FV_MAX(W, L->lx + 16 + fv_image_text_width(png_keys[0], 1) + pad);
    /* wide enough for the lines above it, but a long model path is cut rather than widening the picture */
    for (int i = 0; i < HEAD_LINES; i++)
        W = FV_MAX(W, FV_MIN(2 * pad + fv_image_text_width(head[i], i ? 1 : 2), 900));
    int32_t H = FV_MAX(p->top + gh, L->by + L->bh + 12 + 3 * 14) + pad;
    /* the index legend under the matrix */
    snprintf(buf, sizeof(buf), "%d", cols - 1);
    L->ent_w = fv_image_text_width(buf, 1) + FV_FONT_ADVANCE + (20 * FV_FONT_ADVANCE - 1) + 14;
    const int32_t ncol = FV_MAX(1, (W - 2 * pad + 14) / L->ent_w);
    L->nrow = (cols + ncol - 1) / ncol;
    L->leg_y = p->top + gh + 14;
    if (!p->named)
        H = FV_MAX(H, L->leg_y + 14 + L->nrow * 11 + pad);
    p->width = W;
    p->height = H;
    p->label = L->label_w;
    return 0;
}

int fv_confusion_png_layout(const FvConfusion *cf, FvConfusionLayout *layout)
{
    char head[HEAD_LINES][HEAD_LEN];
    PngLayout L;
    if (!cf || !layout)
        return fv_error(FV_EINVAL, "fv_confusion_png_layout: NULL argument");
    int ret = png_layout(cf, head, &L);
    if (ret >= 0)
        *layout = L.pub;
    return ret;
}

int fv_confusion_png(const FvConfusion *cf, uint8_t **png, int32_t *size)
{
    static const uint8_t ink[3] = { 20, 20, 20 }, grey[3] = { 110, 110, 110 }, line[3] = { 228, 228, 228 },
                         frame[3] = { 136, 136, 136 }, white[3] = { 255, 255, 255 };
    if (!cf || !png || !size)
        return fv_error(FV_EINVAL, "fv_confusion_png: NULL argument");
    *png = NULL;
    *size = 0;
    char head[HEAD_LINES][HEAD_LEN], buf[64];
    PngLayout L;
    int ret = png_layout(cf, head, &L);
    if (ret < 0)
        return ret;
    const int32_t C = cf->num_classes, cols = cf->cols, cell = L.pub.cell, left = L.pub.left, top = L.pub.top;
    const int32_t W = L.pub.width, H = L.pub.height, pad = L.pad, ls = L.ls, lh = L.lh, cs = L.cs;
    const int32_t label_w = L.label_w, gw = cols * cell, gh = C * cell, lx = L.lx, by = L.by, bh = L.bh;
    const int named = L.pub.named, counts = L.pub.counts;
    FvImage im;
    if ((ret = fv_image_alloc(&im, W, H, 255, 255, 255)) < 0)
        return ret;
    fv_image_text_fit(&im, pad, pad, 2, ink, head[0], W - 2 * pad);
    for (int i = 1; i < HEAD_LINES; i++)
        fv_image_text_fit(&im, pad, pad + 2 * FV_FONT_HEIGHT + 6 + (i - 1) * 13, 1, i == 1 ? ink : grey, head[i],
                          W - 2 * pad);

    /* axis titles: centred on the matrix */
    const char *px = named ? "predicted class" : "predicted class (index)";
    const char *py = named ? "true class" : "true class (index)";
    int32_t tw = fv_image_text_width(px, ls);
    fv_image_text(&im, FV_MAX(left + (gw - tw) / 2, pad), L.axis_y, ls, ink, px);
    tw = fv_image_text_width(py, ls);
    fv_image_text_up(&im, pad, FV_MIN(top + (gh + tw) / 2, H - pad), ls, ink, py, H - 2 * pad);

    /* class names or indices: upwards over the columns, right-aligned left of the rows */
    const int32_t step = named ? 1 : FV_MAX(1, (lh + 3 + cell - 1) / cell);
    for (int32_t c = 0; c < cols; c += step) {
        const char *nm = col_name(cf, c);
        if (!named) {
            snprintf(buf, sizeof(buf), "%d", c);
            nm = buf;
        }
        fv_image_text_up(&im, left + c * cell + (cell - FV_FONT_ASCENT * ls) / 2, top - 6, ls, ink, nm, label_w);
    }
    for (int32_t r = 0; r < C; r += step) {
        const char *nm = row_name(cf, r);
        if (!named) {
            snprintf(buf, sizeof(buf), "%d", r);
            nm = buf;
        }
        const int32_t w = FV_MIN(fv_image_text_width(nm, ls), label_w);
        fv_image_text_fit(&im, left - 6 - w, top + r * cell + (cell - FV_FONT_ASCENT * ls) / 2, ls, ink, nm, label_w);
    }

    /* the cells: a light line between them when they are big enough to show it */
    const int32_t in = cell >= 6 ? 1 : 0;
    if (in)
        fv_image_fill_rect(&im, left, top, gw, gh, line);
    for (int32_t r = 0; r < C; r++) {
        const int64_t row = row_total(cf, r);
        for (int32_t c = 0; c < cols; c++) {
            const int64_t v = cell_at(cf, r, c);
            uint8_t col[3];
            const double t = cell_colour(v, row, r == c, col);
            const int32_t x = left + c * cell, y = top + r * cell;
            fv_image_fill_rect(&im, x + in, y + in, cell - in, cell - in, col);
            if (counts && v) {
                snprintf(buf, sizeof(buf), "%lld", (long long)v);
                const int32_t w = fv_image_text_width(buf, cs);
                fv_image_text(&im, x + in + (cell - in - w + 1) / 2, y + in + (cell - in - FV_FONT_ASCENT * cs + 1) / 2,
                              cs, t > 0.55 ? white : ink, buf);
            }
        }
    }
    outline(&im, left - 1, top - 1, gw + 2, gh + 2, frame);
    if (cols > C) /* the "(other)" column: predictions that are no dataset class */
        fv_image_fill_rect(&im, left + C * cell, top, 1, gh, frame);

    /* legend: share of the row, the correct and the error palette side by side, then swatches */
    fv_image_text(&im, lx, top, 1, ink, "share of the row");
    for (int k = 0; k < 2; k++) {
        for (int32_t y = 0; y < bh; y++) {
            uint8_t col[3];
            palette(k ? reds : blues, tint(1.0 - (y + 0.5) / bh), col);
            fv_image_fill_rect(&im, lx + 16 * k, by + y, 12, 1, col);
        }
        outline(&im, lx + 16 * k - 1, by - 1, 14, bh + 2, frame);
    }
    fv_image_text(&im, lx + 34, by, 1, ink, "100%");
    fv_image_text(&im, lx + 34, by + (bh - FV_FONT_ASCENT) / 2, 1, ink, "50%");
    fv_image_text(&im, lx + 34, by + bh - FV_FONT_ASCENT, 1, ink, ">0%");
    for (int k = 0; k < 3; k++) {
        uint8_t col[3] = { 255, 255, 255 };
        if (k < 2)
            palette(k ? reds : blues, tint(0.6), col);
        const int32_t y = by + bh + 12 + 14 * k;
        fv_image_fill_rect(&im, lx, y, 10, 10, col);
        outline(&im, lx, y, 10, 10, frame);
        fv_image_text(&im, lx + 16, y + 1, 1, ink, png_keys[k]);
    }

    /* many classes: which index is which */
    if (!named) {
        fv_image_text(&im, pad, L.leg_y, 1, ink, "classes:");
        snprintf(buf, sizeof(buf), "%d", cols - 1);
        const int32_t iw = fv_image_text_width(buf, 1);
        for (int32_t c = 0; c < cols; c++) {
            const int32_t x = pad + c / L.nrow * L.ent_w, y = L.leg_y + 14 + c % L.nrow * 11;
            snprintf(buf, sizeof(buf), "%d", c);
            fv_image_text(&im, x + iw - fv_image_text_width(buf, 1), y, 1, grey, buf);
            fv_image_text_fit(&im, x + iw + FV_FONT_ADVANCE, y, 1, ink, col_name(cf, c), 20 * FV_FONT_ADVANCE - 1);
        }
    }

    ret = fv_image_encode_png(&im, png, size);
    fv_image_free(&im);
    return ret;
}
