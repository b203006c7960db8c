/* report.html of `fibvid diversity`: one self-contained page (inline SVG charts, PNG pictures encoded by FFmpeg
 * and embedded as base64; no script, font or network): a headline figure per setting, then per layer
 * (collapsible) which heads look where and how alike they are, the settings or models in side-by-side columns. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/attention.h"
#include "util/util.h"
#include "eval/report.h"

/* setting colours (lines, bars) */
static const char *const set_colour[] = { "#3b518b", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e" };
#define SET_COLOUR(i) set_colour[(i) % (int32_t)(sizeof(set_colour) / sizeof(set_colour[0]))]

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void put_base64(FILE *f, const uint8_t *d, int32_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int32_t i = 0; i < n; i += 3) {
        const uint32_t b0 = d[i], b1 = i + 1 < n ? d[i + 1] : 0, b2 = i + 2 < n ? d[i + 2] : 0;
        const uint32_t v = b0 << 16 | b1 << 8 | b2;
        fputc(tab[v >> 18 & 63], f);
        fputc(tab[v >> 12 & 63], f);
        fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? tab[v & 63] : '=', f);
    }
}

/* <img> of @im as an embedded PNG. */
static int put_png(FILE *f, const FvImage *im, const char *alt)
{
    uint8_t *png;
    int32_t size;
    int ret = fv_image_encode_png(im, &png, &size);
    if (ret < 0)
        return ret;
    fputs("<img alt=\"", f);
    put_escaped(f, alt);
    fprintf(f, "\" width=\"%d\" height=\"%d\" src=\"data:image/png;base64,", im->w, im->h);
    put_base64(f, png, size);
    fputs("\">\n", f);
    fv_image_png_free(png);
    return 0;
}

/* One palette per meaning, the same in every chart:
 * - similarity of two heads (CKA, cosine, Jaccard, and Frobenius distance turned round): viridis, similar =
 *   yellow, different = dark purple;
 * - attention weight (cls maps): a black-red-yellow-white heat scale;
 * - signed weights (Castling's taps): blue-white-red;
 * - masks: attended pairs dark grey; settings (bars, lines): one categorical colour each. */
static void sim_colour(double t, char out[8])
{
    uint8_t c[3];
    fv_colormap((float)t, c);
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static void heat_rgb(double t, uint8_t c[3])
{
    static const uint8_t stops[5][3] = { { 0, 0, 4 }, { 120, 28, 109 }, { 237, 105, 37 }, { 252, 206, 37 },
                                         { 252, 255, 164 } };
    t = t > 0.0 ? (t < 1.0 ? t : 1.0) : 0.0;
    double f = t * 4.0;
    int i = (int)f;
    if (i >= 4)
        i = 3;
    f -= i;
    for (int k = 0; k < 3; k++)
        c[k] = (uint8_t)(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]) + 0.5);
}

static void heat_colour(double t, char out[8])
{
    uint8_t c[3];
    heat_rgb(t, c);
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static void signed_colour(double t, char out[8]) /* t in [-1, 1] */
{
    t = t > -1.0 ? (t < 1.0 ? t : 1.0) : -1.0;
    const double a = fabs(t);
    const uint8_t r = (uint8_t)(t < 0 ? 255 - a * (255 - 33) : 255), g = (uint8_t)(255 - a * (255 - 102)),
                  b = (uint8_t)(t > 0 ? 255 - a * (255 - 43) : 255);
    snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

typedef void (*PaletteFn)(double t, char out[8]);

/* A vertical colour bar at (@x, @y), @h high: @pal from 0 (bottom) to 1 (top), the values @lo and @hi at the
 * ends, @label along it. */
static void svg_colourbar(FILE *f, double x, double y, double h, PaletteFn pal, const char *lo, const char *hi,
                          const char *label)
{
    fprintf(f, "<g class=\"colorbar\"><title>colour scale: %s</title>", label);
    const int steps = 24;
    for (int i = 0; i < steps; i++) {
        char col[8];
        pal((i + 0.5) / steps, col);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"10\" height=\"%.2f\" fill=\"%s\"/>", x,
                y + h - (i + 1) * h / steps, h / steps + 0.3, col);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>", x, y, h);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">%s</text>", x + 12, y + 8, hi);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">%s</text>", x + 12, y + h, lo);
    fprintf(f, "<text class=\"cb-label\" font-size=\"9\" transform=\"translate(%.1f,%.1f) rotate(-90)\" "
               "text-anchor=\"middle\">%s</text></g>\n", x + 34, y + h / 2, label);
}

/* Whether every off-diagonal entry of an (H, H) matrix is the same (nothing to see in a heatmap). */
static int offdiag_constant(const double *m, int32_t H)
{
    double v = NAN;
    for (int32_t a = 0; a < H; a++)
        for (int32_t b = 0; b < H; b++) {
            if (a == b)
                continue;
            const double x = m[(int64_t)a * H + b];
            if (isnan(v))
                v = x;
            else if (fabs(x - v) > 1e-9 * fmax(1.0, fabs(v)))
                return 0;
        }
    return 1;
}

/* (H, H) matrix as an SVG heatmap with axis titles and a colour bar. Similarities run over [0, 1]; a distance
 * (@distance) over [0, max] with the palette turned round, so that similar heads get one colour everywhere.
 * Every cell carries its value as a tooltip. */
static void svg_heatmap(FILE *f, const double *m, int32_t H, int distance, const char *title, const char *unit)
{
    double hi = 1.0;
    if (distance) {
        hi = 0.0;
        for (int32_t i = 0; i < H * H; i++)
            hi = fmax(hi, m[i]);
        if (!(hi > 0.0))
            hi = 1.0;
    }
    const double size = 132.0, cell = size / H, top = 18.0, left = 26.0, w = left + size + 58, h = top + size + 28;
    fprintf(f, "<svg class=\"chart heatmap\" width=\"%.0f\" height=\"%.0f\"><text x=\"0\" y=\"11\">%s (mean %.3f)"
               "</text>\n", w, h, title, fv_diag_pair_mean(m, H));
    for (int32_t a = 0; a < H; a++)
        for (int32_t b = 0; b < H; b++) {
            const double v = m[(int64_t)a * H + b];
            char col[8];
            sim_colour(distance ? 1.0 - v / hi : v, col);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>heads %d,%d: "
                       "%.4g</title></rect>", left + b * cell, top + a * cell, cell + 0.3, cell + 0.3, col, a, b, v);
        }
    const int step = H <= 12 ? 1 : H <= 24 ? 2 : 4;
    for (int32_t k = 0; k < H; k += step) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8\" text-anchor=\"middle\">%d</text>", left + (k + 0.5) * cell,
                top + size + 9, k);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8\" text-anchor=\"end\">%d</text>", left - 2,
                top + (k + 0.5) * cell + 3, k);
    }
    fprintf(f, "\n<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">head</text>", left + size / 2,
            top + size + 22);
    fprintf(f, "<text class=\"axis-title\" transform=\"translate(9,%.1f) rotate(-90)\" text-anchor=\"middle\">head"
               "</text>\n", top + size / 2);
    char lo_s[32], hi_s[32], label[96];
    if (distance) {
        snprintf(lo_s, sizeof(lo_s), "%.3g", hi);
        snprintf(hi_s, sizeof(hi_s), "0");
        snprintf(label, sizeof(label), "%s (%s), top: similar", title, unit);
    } else { /* cosine may be negative: drawn as 0 */
        snprintf(lo_s, sizeof(lo_s), "&#8804;0");
        snprintf(hi_s, sizeof(hi_s), "1");
        snprintf(label, sizeof(label), "%s (%s), top: similar", title, unit);
    }
    svg_colourbar(f, left + size + 8, top, size, sim_colour, lo_s, hi_s, label);
    fputs("</svg>\n", f);
}

/* One number of a head: the field at @field (in doubles) of its FvDiagHead. */
static double head_value(const FvDiagResult *r, int32_t l, int kind, int32_t k, size_t field)
{
    return *((const double *)&r->layer[l].attn[kind].head[k] + field);
}

/* The scale of a per-head figure: shared by every layer and setting, so that bars compare across the page. */
static double bars_scale(const FvReportSetting *sets, int32_t nsets, int kind, size_t field, double mul)
{
    double vmax = 0.0;
    for (int32_t s = 0; s < nsets; s++)
        for (int32_t l = 0; l < sets[s].mean->num_layers; l++)
            for (int32_t k = 0; k < sets[s].mean->num_heads; k++) {
                const double v = head_value(sets[s].mean, l, kind, k, field) * mul;
                const double e = sets[s].std ? head_value(sets[s].std, l, kind, k, field) * mul : 0.0;
                if (isfinite(v))
                    vmax = fmax(vmax, v + (isfinite(e) ? e : 0.0));
            }
    return vmax > 0.0 ? vmax : 1.0;
}

/* Per-head bars for every setting side by side, with the spread over clips as whiskers, on the scale [0, vmax]
 * (the same in every layer). @mul scales the stored value (100: a fraction shown in percent). A figure that is
 * the same for every head of every setting is folded into one line. */
static void svg_bars(FILE *f, const FvReportSetting *sets, int32_t nsets, int32_t l, int kind, size_t field,
                     double mul, double vmax, const char *title, const char *unit)
{
    const int32_t H = sets[0].mean->num_heads;
    int missing = 0, any = 0, constant = 1;
    double v0 = NAN;
    for (int32_t s = 0; s < nsets; s++)
        for (int32_t k = 0; k < H; k++) {
            const double v = head_value(sets[s].mean, l, kind, k, field) * mul;
            if (!isfinite(v)) {
                missing = 1;
                continue;
            }
            if (!any)
                v0 = v;
            else if (fabs(v - v0) > 1e-9 * fmax(1.0, fabs(v0)))
                constant = 0;
            any = 1;
        }
    if (!any) {
        fprintf(f, "<p class=\"fold\">%s: none (SimA and Castling form no probability distribution)</p>\n", title);
        return;
    }
    if (constant) {
        fprintf(f, "<p class=\"fold\">%s: %.4g %s for every head%s%s</p>\n", title, v0, unit,
                nsets > 1 ? " in every column" : "", missing ? " that has it" : "");
        return;
    }
    const double w = 250.0, h = 110.0, top = 18.0, left = 44.0, right = 6.0, bottom = 30.0;
    const double gw = (w - left - right) / H, bw = gw * 0.8 / nsets;
    fprintf(f, "<svg class=\"chart bars\" width=\"%.0f\" height=\"%.0f\"><text x=\"0\" y=\"11\">%s%s</text>\n", w,
            top + h + bottom, title, missing ? " (none for linear kinds)" : "");
    for (int i = 0; i <= 2; i++) {
        const double y = top + h - h * i / 2.0;
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" "
                   "font-size=\"9\" text-anchor=\"end\">%.3g</text>", left, w - right, y, y, i ? "#e4e4e4" : "#999",
                left - 2, y + 3, vmax * i / 2.0);
    }
    for (int32_t k = 0; k < H; k++) {
        for (int32_t s = 0; s < nsets; s++) {
            const double v = head_value(sets[s].mean, l, kind, k, field) * mul;
            const double e = sets[s].std ? head_value(sets[s].std, l, kind, k, field) * mul : 0.0;
            if (!isfinite(v))
                continue;
            const double x = left + k * gw + gw * 0.1 + s * bw, bh = h * fmin(v, vmax) / vmax;
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>%s head %d: "
                       "%.4g &#177; %.3g %s</title></rect>", x, top + h - bh, bw, bh, SET_COLOUR(s), sets[s].name, k, v,
                    e, unit);
            if (isfinite(e) && e > 0.0)
                fprintf(f, "<line x1=\"%.2f\" x2=\"%.2f\" y1=\"%.2f\" y2=\"%.2f\" stroke=\"#222\"/>", x + bw / 2,
                        x + bw / 2, top + h - h * fmin(vmax, v + e) / vmax, top + h - h * fmax(0.0, v - e) / vmax);
        }
        if (H <= 16 || k % 2 == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\">%d</text>",
                    left + (k + 0.5) * gw, top + h + 11, k);
    }
    fprintf(f, "\n<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">head</text>",
            left + (w - left - right) / 2, top + h + 25);
    fprintf(f, "<text class=\"axis-title\" font-size=\"10\" transform=\"translate(10,%.1f) rotate(-90)\" "
               "text-anchor=\"middle\">%s</text>\n</svg>\n", top + h / 2, unit);
}

/* Mean head similarity per layer for every setting: solid spatial, dashed temporal. */
static void svg_summary_chart(FILE *f, const FvReportSetting *sets, int32_t nsets, const char *metric)
{
    const int32_t L = sets[0].mean->num_layers, H = sets[0].mean->num_heads;
    const double w = 520.0, h = 200.0, left = 46.0, top = 20.0, bottom = 34.0, right = 10.0;
    fprintf(f, "<svg class=\"chart line\" width=\"%.0f\" height=\"%.0f\"><text x=\"%.0f\" y=\"13\">mean pairwise head "
               "%s per layer (solid spatial, dashed temporal)</text>\n", w, h + top + bottom, left, metric);
    for (int i = 0; i <= 4; i++) {
        const double y = top + h - h * i / 4.0;
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.0f\" y=\"%.1f\" "
                   "font-size=\"10\" text-anchor=\"end\">%.2f</text>\n", left, w - right, y, y, left - 3, y + 3, i / 4.0);
    }
    const double dx = L > 1 ? (w - left - right - 10) / (L - 1) : 0.0, x0 = left + 5;
    for (int32_t l = 0; l < L; l++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%d</text>", x0 + l * dx,
                top + h + 13, l);
    for (int32_t s = 0; s < nsets; s++)
        for (int kind = 0; kind < 2; kind++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", SET_COLOUR(s),
                    kind ? " stroke-dasharray=\"5,3\"" : "");
            for (int32_t l = 0; l < L; l++) {
                const FvDiagAttn *A = &sets[s].mean->layer[l].attn[kind];
                const double v = fv_diag_pair_mean(!strcmp(metric, "CKA") ? A->cka : A->jaccard, H);
                fprintf(f, "%.1f,%.1f ", x0 + l * dx, top + h - h * fmin(1.0, fmax(0.0, v)));
            }
            fputs("\"/>\n", f);
            for (int32_t l = 0; l < L; l++) { /* markers, for a model of one layer too */
                const FvDiagAttn *A = &sets[s].mean->layer[l].attn[kind];
                const double v = fv_diag_pair_mean(!strcmp(metric, "CKA") ? A->cka : A->jaccard, H);
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>%s layer %d %s: %.4f</title>"
                           "</circle>", x0 + l * dx, top + h - h * fmin(1.0, fmax(0.0, v)), SET_COLOUR(s), sets[s].name,
                        l, kind ? "temporal" : "spatial", v);
            }
            fputs("\n", f);
        }
    fprintf(f, "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">layer (0 = first)</text>",
            left + (w - left) / 2, top + h + 29);
    fprintf(f, "<text class=\"axis-title\" transform=\"translate(11,%.1f) rotate(-90)\" text-anchor=\"middle\">"
               "%s, 0-1 (1: alike)</text>\n</svg>\n", top + h / 2, metric);
}

/* The headline figure per setting, mean with the spread over clips as whiskers, on [0, 1]. */
static void svg_headline_chart(FILE *f, const FvReportSetting *sets, int32_t nsets, const double *m,
                               const double *sd)
{
    const double left = 150.0, w = 520.0, row = 22.0, top = 8.0, bottom = 34.0, right = 16.0;
    const double pw = w - left - right, h = nsets * row;
    fprintf(f, "<svg class=\"chart headline-chart\" width=\"%.0f\" height=\"%.0f\">\n", w, top + h + bottom);
    for (int i = 0; i <= 4; i++) {
        const double x = left + pw * i / 4.0;
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
                   "font-size=\"10\" text-anchor=\"middle\">%.2f</text>", x, x, top, top + h, x, top + h + 12, i / 4.0);
    }
    for (int32_t s = 0; s < nsets; s++) {
        const double y = top + s * row, bw = pw * fmin(1.0, fmax(0.0, m[s]));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 4, y + row * 0.65);
        put_escaped(f, sets[s].name);
        fprintf(f, "</text><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%.4f &#177; "
                   "%.4f</title></rect>", left, y + 4, bw, row - 8, SET_COLOUR(s), m[s], sd[s]);
        if (sd[s] > 0.0)
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" stroke-width=\"1.5\"/>",
                    left + pw * fmax(0.0, m[s] - sd[s]), left + pw * fmin(1.0, m[s] + sd[s]), y + row / 2, y + row / 2);
    }
    fprintf(f, "\n<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">mean pairwise head "
               "similarity (linear CKA, 0-1; whiskers: &#177; std over clips)</text>", left + pw / 2, top + h + 27);
    fprintf(f, "<text class=\"axis-title\" x=\"4\" y=\"%.1f\" font-size=\"10\">setting</text>\n</svg>\n",
            top + h + 27);
}

/* Castling's depthwise-convolution taps of every head (SPEC 4.2: reported apart from the attention weights),
 * a row per head, the tap at the query's own token in the middle, coloured over [-max|w|, max|w|]. */
static void put_taps(FILE *f, const FvDiagAttn *A, int32_t H, const char *attn)
{
    double mx = 0.0;
    for (int32_t i = 0; i < H * FV_CASTLING_TAPS; i++)
        mx = fmax(mx, fabs(A->taps[i]));
    if (mx == 0.0) {
        fprintf(f, "<p class=\"fold\">%s castling depthwise-convolution taps: all zero (the model has no trained "
                   "depthwise convolution)</p>\n", attn);
        return;
    }
    fprintf(f, "<p class=\"note\">%s castling depthwise-convolution taps (offsets -4..4 along the token index; "
               "blue negative, red positive, scale &#177;%.3g)</p>\n<table class=\"taps\"><tr><th>head</th>", attn, mx);
    for (int32_t i = 0; i < FV_CASTLING_TAPS; i++)
        fprintf(f, "<th>%+d</th>", i - FV_CASTLING_TAPS / 2);
    fputs("</tr>\n", f);
    for (int32_t h = 0; h < H; h++) {
        fprintf(f, "<tr><td>%d</td>", h);
        for (int32_t i = 0; i < FV_CASTLING_TAPS; i++) {
            const double v = A->taps[(int64_t)h * FV_CASTLING_TAPS + i];
            char col[8];
            signed_colour(v / mx, col);
            fprintf(f, "<td style=\"background:%s\">%.3g</td>", col, v);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

void fv_report_draw_mask(FvImage *im, int32_t x0, int32_t y0, int32_t px, int32_t n, const int32_t *off,
                         int32_t noff, const uint8_t col[3], const uint8_t bg[3])
{
    fv_image_fill_rect(im, x0, y0, n * px, n * px, bg);
    for (int32_t i = 0; i < noff; i++)
        for (int32_t q = 0; q + off[i] < n; q++) {
            fv_image_fill_rect(im, x0 + (q + off[i]) * px, y0 + q * px, px, px, col);
            fv_image_fill_rect(im, x0 + q * px, y0 + (q + off[i]) * px, px, px, col);
        }
}

/* The masks of every head of layer @l under settings @s over @n tokens (spatial: has_cls): one labelled
 * picture per head, attended pairs dark on light grey. */
static int put_masks(FILE *f, const FvAttnSettings *s, int32_t l, int32_t n, int32_t has_cls, int32_t H,
                     const char *what)
{
    FvAttnPlan p;
    int ret = fv_attn_plan_init(&p, s, l, n + has_cls, has_cls, H, 1);
    if (ret < 0)
        return ret;
    const int32_t px = n <= 24 ? 48 / n : n <= 48 ? 2 : 1, side = n * px;
    static const uint8_t bg[3] = { 235, 235, 235 }, fg[3] = { 40, 40, 40 };
    fputs("<div class=\"heads masks\">", f);
    for (int32_t h = 0; h < H && ret >= 0; h++) {
        FvImage im;
        if ((ret = fv_image_alloc(&im, side, side, 255, 255, 255)) < 0)
            break;
        fv_report_draw_mask(&im, 0, 0, px, n, p.off + (int64_t)h * p.max_off, p.noff[h], fg, bg);
        char alt[160];
        snprintf(alt, sizeof(alt), "%.120s, head %d", what, h);
        fputs("<figure>", f);
        ret = put_png(f, &im, alt);
        fprintf(f, "<figcaption>head %d</figcaption></figure>", h);
        fv_image_free(&im);
    }
    fputs("</div>\n", f);
    fv_attn_plan_free(&p);
    return ret;
}

/* The cls query's attention of every head of layer @l over a frame of @c, one labelled picture per head: the
 * frame dimmed and the map (bilinear, scaled to the head's own maximum) laid over it, with the colour bar. */
static int put_cls_maps(FILE *f, const FvDiagResult *r, int32_t l, const FvReportClip *c, const char *what)
{
    const int32_t H = r->num_heads, gh = r->grid_h, gw = r->grid_w;
    if (!c->rgb || c->w < 1 || c->h < 1 || !r->layer[l].cls_attention)
        return 0;
    const int32_t cw = 64, ch = FV_MAX(1, c->h * cw / c->w);
    int ret = 0;
    fputs("<div class=\"heads cls\">", f);
    for (int32_t h = 0; h < H && ret >= 0; h++) {
        FvImage im;
        if ((ret = fv_image_alloc(&im, cw, ch, 255, 255, 255)) < 0)
            break;
        const double *m = r->layer[l].cls_attention + (int64_t)h * gh * gw;
        double mx = 0.0;
        for (int32_t i = 0; i < gh * gw; i++)
            mx = fmax(mx, m[i]);
        for (int32_t y = 0; y < ch; y++)
            for (int32_t x = 0; x < cw; x++) {
                const uint8_t *src = c->rgb + ((int64_t)(y * c->h / ch) * c->w + x * c->w / cw) * 3;
                /* grid coordinates of the pixel centre, clamped at the borders */
                double gy = (y + 0.5) * gh / ch - 0.5, gx = (x + 0.5) * gw / cw - 0.5;
                gy = fmin(fmax(gy, 0.0), gh - 1.0);
                gx = fmin(fmax(gx, 0.0), gw - 1.0);
                const int32_t y0 = (int32_t)gy, x0 = (int32_t)gx, y1 = FV_MIN(y0 + 1, gh - 1), x1 = FV_MIN(x0 + 1, gw - 1);
                const double fy = gy - y0, fx = gx - x0;
                const double v = (1 - fy) * ((1 - fx) * m[y0 * gw + x0] + fx * m[y0 * gw + x1]) +
                                 fy * ((1 - fx) * m[y1 * gw + x0] + fx * m[y1 * gw + x1]);
                uint8_t hc[3];
                heat_rgb(mx > 0.0 ? v / mx : 0.0, hc);
                uint8_t *dst = im.rgb + ((int64_t)y * im.w + x) * 3;
                for (int k = 0; k < 3; k++)
                    dst[k] = (uint8_t)(0.35f * src[k] + 0.65f * hc[k] + 0.5f);
            }
        char alt[160];
        snprintf(alt, sizeof(alt), "%.120s, head %d", what, h);
        fputs("<figure>", f);
        ret = put_png(f, &im, alt);
        fprintf(f, "<figcaption>head %d<br>max %.2g</figcaption></figure>", h, mx);
        fv_image_free(&im);
    }
    fprintf(f, "<svg class=\"cbar\" width=\"70\" height=\"%d\">", ch + 34);
    svg_colourbar(f, 2, 6, ch + 20, heat_colour, "0", "max", "cls weight / head max");
    fputs("</svg>", f);
    fputs("</div>\n", f);
    return ret;
}

double fv_report_head_similarity(const FvDiagResult *r)
{
    if (!r || r->num_layers < 1 || r->num_heads < 1 || !r->layer)
        return NAN;
    double sum = 0.0;
    for (int32_t l = 0; l < r->num_layers; l++)
        for (int kind = 0; kind < 2; kind++)
            sum += fv_diag_pair_mean(r->layer[l].attn[kind].cka, r->num_heads);
    return sum / (2.0 * r->num_layers);
}

static const char css[] =
    "body{font-family:sans-serif;margin:16px;color:#222;background:#fff}"
    "h1{font-size:22px}h2{font-size:18px;border-top:2px solid #ccc;padding-top:8px}h3{font-size:14px;margin:10px 0 2px}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "table.cols{table-layout:fixed;width:100%}table.cols td,table.cols th{text-align:left;vertical-align:top}th.setting{font-weight:normal}th.clipcol{width:150px}td{overflow-wrap:anywhere}"
    "th.setting b{font-size:13px}.label{font-size:11px;color:#444}"
    "svg{font-size:11px;margin:2px 6px 2px 0;vertical-align:top}.row{display:flex;flex-wrap:wrap;align-items:flex-start}"
    ".key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}"
    ".axis-title{font-size:10px;fill:#333}"
    "img{image-rendering:pixelated;display:block}.note{font-size:12px;color:#555;max-width:1000px}"
    ".fold{font-size:12px;color:#555;margin:2px 0;font-style:italic}"
    "#headline{font-size:17px;font-weight:bold;max-width:1000px}"
    ".heads{display:flex;flex-wrap:wrap;align-items:flex-start}figure{margin:2px 3px;font-size:9px;text-align:center}"
    "details.layer{border-top:2px solid #ccc;margin-top:8px}details.layer>summary{font-size:16px;font-weight:bold;"
    "padding:6px 0;cursor:pointer}";

/* The column header of setting @s: its name, the caller's words about it and its attention. */
static void put_setting_header(FILE *f, const FvReportSetting *set, int32_t s)
{
    char sa[128], ta[128];
    fv_attn_describe(&set->mean->spatial, FV_ATTN_DESCRIBE_SHORT, sa, sizeof(sa));
    fv_attn_describe(&set->mean->temporal, FV_ATTN_DESCRIBE_SHORT, ta, sizeof(ta));
    fprintf(f, "<th class=\"setting\"><span class=\"key\"><span style=\"background:%s;margin-left:0\"></span></span><b>",
            SET_COLOUR(s));
    put_escaped(f, set->name);
    fputs("</b><br><span class=\"label\">", f);
    if (set->label) {
        put_escaped(f, set->label);
        fputs("<br>", f);
    }
    fputs("attention: spatial ", f);
    put_escaped(f, sa);
    fputs(", temporal ", f);
    put_escaped(f, ta);
    fputs("</span></th>", f);
}

static void put_header_row(FILE *f, const FvReportSetting *sets, int32_t num_sets)
{
    fputs("<tr>", f);
    for (int32_t s = 0; s < num_sets; s++)
        put_setting_header(f, &sets[s], s);
    fputs("</tr>\n", f);
}

/* The headline: the figure per setting with its spread, the settings compared, and what the number is. */
static void put_headline(FILE *f, const FvReportSetting *sets, int32_t num_sets)
{
    double m[64], sd[64];
    int32_t order[64], n = num_sets < 64 ? num_sets : 64;
    const int64_t clips = sets[0].mean->count;
    int spread = 1;
    for (int32_t s = 0; s < n; s++) {
        m[s] = sets[s].has_similarity ? sets[s].similarity : fv_report_head_similarity(sets[s].mean);
        sd[s] = sets[s].has_similarity ? sets[s].similarity_std : 0.0;
        spread &= sets[s].has_similarity;
        order[s] = s;
    }
    for (int32_t a = 1; a < n; a++) /* most diverse (lowest similarity) first */
        for (int32_t b = a; b > 0 && m[order[b]] < m[order[b - 1]]; b--) {
            const int32_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    /* "differ most" only when the gap to the next setting is larger than both spreads together */
    const int clear = n > 1 && (m[order[1]] - m[order[0]]) > sd[order[0]] + sd[order[1]];
    fputs("<p id=\"headline\">", f);
    if (n > 1 && clear) {
        fputs("Heads differ most under ", f);
        put_escaped(f, sets[order[0]].name);
        fputs(": mean pairwise head similarity ", f);
    } else if (n > 1) {
        fputs("No setting makes the heads clearly more diverse than the next: mean pairwise head similarity ", f);
    } else {
        fputs("Mean pairwise head similarity ", f);
    }
    for (int32_t i = 0; i < n; i++) {
        const int32_t s = order[i];
        fprintf(f, "%s%.3f", i ? " vs " : "", m[s]);
        if (spread)
            fprintf(f, " &#177; %.3f", sd[s]);
        fputs(" (", f);
        put_escaped(f, sets[s].name);
        fputs(")", f);
    }
    fprintf(f, " over %lld clip%s", (long long)clips, clips == 1 ? "" : "s");
    if (n > 1 && spread)
        fprintf(f, "; the gap to the next is %.3f, %s the spread over clips", m[order[1]] - m[order[0]],
                clear ? "larger than" : "within");
    fputs(".</p>\n", f);
    svg_headline_chart(f, sets, n, m, sd);
    fprintf(f, "<p class=\"note\">The number: for each clip, the mean over the layers and over their spatial and "
               "temporal attention of the mean linear CKA between every two heads' outputs (0: the heads carry "
               "unrelated information, 1: the same information up to rotation and scale; lower = more diverse "
               "heads); then its mean over the clips %s.</p>\n",
            spread ? "&#177; the population standard deviation over the clips (not a confidence interval)"
                   : "(no spread given: taken from the mean diagnostics)");
}

int fv_report_diversity_html(const char *path, const char *title, const char *subtitle, const FvReportClip *clips,
                             int32_t num_clips, const FvReportSetting *sets, int32_t num_sets)
{
    if (!path || !sets || num_sets < 1 || !sets[0].mean)
        return fv_error(FV_EINVAL, "fv_report_diversity_html: nothing to report");
    const FvDiagResult *r0 = sets[0].mean;
    const int32_t L = r0->num_layers, H = r0->num_heads;
    for (int32_t s = 1; s < num_sets; s++)
        if (!sets[s].mean || sets[s].mean->num_layers != L || sets[s].mean->num_heads != H)
            return fv_error(FV_EINVAL, "fv_report_diversity_html: settings of different shapes");
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!tmp)
        return fv_error(FV_ENOMEM, "fv_report_diversity_html: out of memory");
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ret = 0;
    if (!f) {
        ret = fv_error(-errno, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return ret;
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    put_escaped(f, title);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>", css);
    put_escaped(f, title);
    fputs("</h1>\n", f);
    put_headline(f, sets, num_sets);
    fputs("<p class=\"note\">", f);
    put_escaped(f, subtitle);
    fputs("</p>\n<table class=\"cols\">", f);
    put_header_row(f, sets, num_sets);
    fputs("</table>\n", f);
    fputs("<p class=\"note\">Head similarity is measured on the heads' outputs before the output projection "
          "(tokens x head_dim): linear CKA with centred features, cosine of the flattened outputs, Frobenius "
          "distance; Jaccard is the overlap of the heads' attention masks. Every similarity uses one palette "
          "(yellow: similar heads; the Frobenius distance is drawn turned round so that yellow still means similar). "
          "Values are means over clips; bars show the spread (population standard deviation) as whiskers, on one "
          "scale per figure for the whole page. Entropy is normalised by log of the keys with non-zero weight "
          "(SimA and Castling form no probability distribution: no entropy; their distances and cls maps use the "
          "normalised kernels |q^ k^T| and 0.5 + q^.k^/pi per row); distance is attention-weighted, in pixels "
          "(spatial) or frames (temporal); mask density is the percentage of the patch-token (query, key) pairs "
          "a head's mask allows, cls excluded, as `fibvid masks` gives it. Figures that are the same for every "
          "head are written as one line instead of a chart. cls attention over the clips' frames (black-red-yellow "
          "heat scale, each head scaled to its own maximum) is drawn for every layer of models up to 6 layers "
          "deep, else for five layers spread over the depth.</p>\n", f);

    /* summary: mean head similarity per layer, settings side by side */
    fputs("<h2>Summary</h2>\n<div class=\"row\">", f);
    svg_summary_chart(f, sets, num_sets, "CKA");
    svg_summary_chart(f, sets, num_sets, "Jaccard");
    fputs("</div>\n<p class=\"key\">", f);
    for (int32_t s = 0; s < num_sets; s++) {
        fprintf(f, "<span style=\"background:%s\"></span>", SET_COLOUR(s));
        put_escaped(f, sets[s].name);
    }
    fputs("</p>\n<table><tr><th rowspan=\"2\">layer</th>", f);
    for (int32_t s = 0; s < num_sets; s++) {
        fputs("<th colspan=\"4\">", f);
        put_escaped(f, sets[s].name);
        fputs("</th>", f);
    }
    if (num_sets > 1)
        fputs("<th colspan=\"2\">CKA change vs first</th>", f);
    fputs("</tr><tr>", f);
    for (int32_t s = 0; s < num_sets; s++)
        fputs("<th>CKA spatial</th><th>CKA temporal</th><th>Jaccard spatial</th><th>entropy spatial</th>", f);
    if (num_sets > 1)
        fputs("<th>spatial</th><th>temporal</th>", f);
    fputs("</tr>\n", f);
    for (int32_t l = 0; l < L; l++) {
        fprintf(f, "<tr><td><a href=\"#layer%d\">%d</a></td>", l, l);
        for (int32_t s = 0; s < num_sets; s++) {
            const FvDiagLayer *Ly = &sets[s].mean->layer[l];
            double ent = 0.0;
            for (int32_t h = 0; h < H; h++)
                ent += Ly->attn[0].head[h].entropy_norm / H;
            fprintf(f, "<td>%.3f</td><td>%.3f</td><td>%.3f</td>", fv_diag_pair_mean(Ly->attn[0].cka, H),
                    fv_diag_pair_mean(Ly->attn[1].cka, H), fv_diag_pair_mean(Ly->attn[0].jaccard, H));
            if (isfinite(ent))
                fprintf(f, "<td>%.3f</td>", ent);
            else
                fputs("<td>n/a</td>", f); /* no distribution: SimA, Castling */
        }
        if (num_sets > 1) {
            const FvDiagLayer *a = &sets[0].mean->layer[l], *b = &sets[num_sets - 1].mean->layer[l];
            fprintf(f, "<td>%+.3f</td><td>%+.3f</td>", fv_diag_pair_mean(b->attn[0].cka, H) - fv_diag_pair_mean(a->attn[0].cka, H),
                    fv_diag_pair_mean(b->attn[1].cka, H) - fv_diag_pair_mean(a->attn[1].cka, H));
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (num_sets > 1) {
        fputs("<p class=\"note\">CKA change: ", f);
        put_escaped(f, sets[num_sets - 1].name);
        fputs(" minus ", f);
        put_escaped(f, sets[0].name);
        fputs(" (negative: more diverse heads).</p>\n", f);
    }

    /* one scale per figure for the whole page */
    static const char *const kname[2] = { "spatial", "temporal" };
    const size_t f_ent = offsetof(FvDiagHead, entropy_norm) / sizeof(double),
                 f_den = offsetof(FvDiagHead, density) / sizeof(double);
    const size_t f_dist[2] = { offsetof(FvDiagHead, mean_distance_px) / sizeof(double),
                               offsetof(FvDiagHead, mean_distance) / sizeof(double) };
    const double dist_max[2] = { bars_scale(sets, num_sets, 0, f_dist[0], 1.0), bars_scale(sets, num_sets, 1, f_dist[1], 1.0) };

    fprintf(f, "<h2>Layers</h2>\n<p class=\"note\">Click a layer to open or fold it%s.</p>\n",
            L > 4 ? " (all folded: the model is deep)" : "");
    for (int32_t l = 0; l < L && ret >= 0; l++) {
        fprintf(f, "<details class=\"layer\" id=\"layer%d\"%s><summary>Layer %d: CKA spatial / temporal", l,
                L <= 4 ? " open" : "", l);
        for (int32_t s = 0; s < num_sets; s++) {
            const FvDiagLayer *Ly = &sets[s].mean->layer[l];
            fputs(s ? "; " : " ", f);
            put_escaped(f, sets[s].name);
            fprintf(f, " %.2f / %.2f", fv_diag_pair_mean(Ly->attn[0].cka, H), fv_diag_pair_mean(Ly->attn[1].cka, H));
        }
        fputs("</summary>\n", f);
        for (int kind = 0; kind < 2 && ret >= 0; kind++) {
            fprintf(f, "<h3>Layer %d, %s attention: per-head figures (colours: settings)</h3>\n<div class=\"row\">", l,
                    kname[kind]);
            svg_bars(f, sets, num_sets, l, kind, f_ent, 1.0, 1.0, "entropy (normalised)", "entropy / log K, 0-1");
            svg_bars(f, sets, num_sets, l, kind, f_dist[kind], 1.0, dist_max[kind], "mean attention distance",
                     kind ? "frames" : "pixels");
            svg_bars(f, sets, num_sets, l, kind, f_den, 100.0, 100.0, "mask density",
                     kind ? "% of frame pairs" : "% of patch pairs");
            fputs("</div>\n", f);
            fprintf(f, "<h3>Layer %d, %s attention: head pairs</h3>\n<table class=\"cols\">", l, kname[kind]);
            put_header_row(f, sets, num_sets);
            fputs("<tr>", f);
            for (int32_t s = 0; s < num_sets && ret >= 0; s++) {
                const FvDiagAttn *A = &sets[s].mean->layer[l].attn[kind];
                const FvAttnSettings *as = kind ? &sets[s].mean->temporal : &sets[s].mean->spatial;
                static const char *const mname[4] = { "CKA", "cosine", "Jaccard", "Frobenius" };
                static const char *const munit[4] = { "0-1", "0-1", "mask overlap, 0-1", "distance" };
                const double *mat[4] = { A->cka, A->cosine, A->jaccard, A->frobenius };
                fputs("<td><div class=\"row\">", f);
                for (int k = 0; k < 4; k++)
                    if (!offdiag_constant(mat[k], H))
                        svg_heatmap(f, mat[k], H, k == 3, mname[k], munit[k]);
                fputs("</div>", f);
                for (int k = 0; k < 4; k++)
                    if (offdiag_constant(mat[k], H))
                        fprintf(f, "<p class=\"fold\">%s: %.4g for every head pair%s</p>", mname[k],
                                H > 1 ? mat[k][1] : mat[k][0],
                                k == 2 && H > 1 && mat[k][1] == 1.0 ? " (the same mask: every pair attended)" : "");
                if (as->kind == FV_ATTN_CASTLING)
                    put_taps(f, A, H, kname[kind]);
                if (as->kind == FV_ATTN_FIB) {
                    const int32_t tokens = kind ? sets[s].mean->frames
                                           : sets[s].layer_tokens ? sets[s].layer_tokens[l]
                                                                  : sets[s].mean->grid_h * sets[s].mean->grid_w;
                    fprintf(f, "<p class=\"note\">%s Fibottention masks per head (query rows, key columns over %d %s; "
                               "dark: attended)</p>\n", kname[kind], tokens, kind ? "frames" : "patch tokens, cls not drawn");
                    char alt[64];
                    snprintf(alt, sizeof(alt), "layer %d %s mask", l, kname[kind]);
                    ret = put_masks(f, as, l, tokens, !kind, H, alt);
                }
                fputs("</td>", f);
            }
            fputs("</tr></table>\n", f);
        }
        /* photos compress poorly: deep models show the cls maps of five layers spread over the depth */
        const int cls_layer = L <= 6 || l == 0 || l == L / 4 || l == L / 2 || l == 3 * L / 4 || l == L - 1;
        if (cls_layer && num_clips > 0 && ret >= 0) {
            fprintf(f, "<h3>Layer %d: cls attention over a frame, one picture per head</h3>\n<table class=\"cols\">"
                       "<tr><th class=\"clipcol\">clip</th>", l);
            for (int32_t s = 0; s < num_sets; s++)
                put_setting_header(f, &sets[s], s);
            fputs("</tr>\n", f);
            for (int32_t c = 0; c < num_clips && ret >= 0; c++) {
                fputs("<tr><td>", f);
                put_escaped(f, clips[c].name);
                fputs("</td>", f);
                for (int32_t s = 0; s < num_sets && ret >= 0; s++) {
                    fputs("<td>", f);
                    if (sets[s].clip && sets[s].clip[c]) {
                        char alt[96];
                        snprintf(alt, sizeof(alt), "layer %d cls attention, clip %d, setting %d", l, c, s);
                        ret = put_cls_maps(f, sets[s].clip[c], l, &clips[c], alt);
                    }
                    fputs("</td>", f);
                }
                fputs("</tr>\n", f);
            }
            fputs("</table>\n", f);
        }
        fputs("</details>\n", f);
    }
    fputs("</body></html>\n", f);
    if (ret >= 0 && (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0))
        ret = fv_error(fv_write_error_code(errno), "%s: write failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && ret >= 0)
        ret = fv_error(fv_write_error_code(errno), "%s: write failed: %s", tmp, strerror(errno));
    if (ret >= 0 && rename(tmp, path) != 0)
        ret = fv_error(-errno, "%s: cannot rename: %s", path, strerror(errno));
    if (ret >= 0)
        ret = fv_fsync_dir_of(path); /* the rename survives a power loss once its directory is synced */
    if (ret < 0)
        remove(tmp);
    free(tmp);
    return ret < 0 ? ret : 0;
}
