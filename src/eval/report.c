/* report.html of `fibvid diversity`: one self-contained page (inline SVG heatmaps and bars, PNG pictures
 * encoded by FFmpeg and embedded as base64; no script, font or network), laid out so that a reader sees at
 * a glance which heads look where and how alike they are under each attention setting. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void hex_colour(float v, char out[8])
{
    uint8_t c[3];
    fv_colormap(v, c);
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* (H, H) matrix as an SVG heatmap, colours over [lo, hi]; every cell carries its value as a tooltip. */
static void svg_heatmap(FILE *f, const double *m, int32_t H, double lo, double hi, const char *title)
{
    const double size = 150.0, cell = size / H, top = 16.0;
    fprintf(f, "<svg class=\"hm\" width=\"%.0f\" height=\"%.0f\"><text x=\"0\" y=\"11\">%s (mean %.3f)</text>\n",
            size + 2, size + top + 2, title, fv_diag_pair_mean(m, H));
    for (int32_t a = 0; a < H; a++)
        for (int32_t b = 0; b < H; b++) {
            const double v = m[(int64_t)a * H + b];
            char col[8];
            hex_colour(hi > lo ? (float)((v - lo) / (hi - lo)) : 0.0f, col);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>heads %d,%d: "
                       "%.4g</title></rect>", b * cell, top + a * cell, cell + 0.3, cell + 0.3, col, a, b, v);
        }
    fputs("</svg>\n", f);
}

/* Per-head bars for every setting side by side, with the spread over clips as whiskers. */
static void svg_bars(FILE *f, const FvReportSetting *sets, int32_t nsets, int32_t l, int kind, size_t field,
                     const char *title)
{
    const int32_t H = sets[0].mean->num_heads;
    const double w = 220.0, h = 110.0, top = 16.0, left = 4.0;
    double vmax = 0.0;
    for (int32_t s = 0; s < nsets; s++)
        for (int32_t k = 0; k < H; k++) {
            const double *v = (const double *)&sets[s].mean->layer[l].attn[kind].head[k] + field;
            const double *e = sets[s].std ? (const double *)&sets[s].std->layer[l].attn[kind].head[k] + field : NULL;
            vmax = fmax(vmax, *v + (e ? *e : 0.0));
        }
    if (!(vmax > 0.0))
        vmax = 1.0;
    /* a setting without the figure (entropy of SimA and Castling: no distribution) gets no bars */
    int missing = 0;
    for (int32_t s = 0; s < nsets; s++)
        missing |= !isfinite(*((const double *)&sets[s].mean->layer[l].attn[kind].head[0] + field));
    const double gw = (w - left) / H, bw = gw * 0.8 / nsets;
    fprintf(f, "<svg class=\"bars\" width=\"%.0f\" height=\"%.0f\"><text x=\"0\" y=\"11\">%s (max %.3g%s)</text>\n",
            w, h + top + 14, title, vmax, missing ? "; none for linear kinds" : "");
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n", left, top + h, w,
            top + h);
    for (int32_t k = 0; k < H; k++) {
        for (int32_t s = 0; s < nsets; s++) {
            const double v = *((const double *)&sets[s].mean->layer[l].attn[kind].head[k] + field);
            const double e = sets[s].std ? *((const double *)&sets[s].std->layer[l].attn[kind].head[k] + field) : 0.0;
            if (!isfinite(v))
                continue;
            const double x = left + k * gw + gw * 0.1 + s * bw, bh = h * v / vmax;
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>%s head %d: "
                       "%.4g &#177; %.3g</title></rect>", x, top + h - bh, bw, bh, SET_COLOUR(s), sets[s].name, k, v, e);
            if (isfinite(e) && e > 0.0)
                fprintf(f, "<line x1=\"%.2f\" x2=\"%.2f\" y1=\"%.2f\" y2=\"%.2f\" stroke=\"#222\"/>", x + bw / 2,
                        x + bw / 2, top + h - h * fmin(vmax, v + e) / vmax, top + h - h * fmax(0.0, v - e) / vmax);
        }
        if (H <= 16 || k % 2 == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">%d</text>", left + k * gw + gw * 0.3,
                    top + h + 11, k);
    }
    fputs("</svg>\n", f);
}

/* Mean head similarity per layer for every setting: solid spatial, dashed temporal. */
static void svg_summary_chart(FILE *f, const FvReportSetting *sets, int32_t nsets, const char *metric)
{
    const int32_t L = sets[0].mean->num_layers, H = sets[0].mean->num_heads;
    const double w = 520.0, h = 200.0, left = 36.0, top = 20.0, bottom = 24.0;
    fprintf(f, "<svg width=\"%.0f\" height=\"%.0f\"><text x=\"%.0f\" y=\"13\">mean head %s per layer "
               "(solid spatial, dashed temporal)</text>\n", w, h + top + bottom, left, metric);
    for (int i = 0; i <= 4; i++) {
        const double y = top + h - h * i / 4.0;
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"2\" y=\"%.1f\" "
                   "font-size=\"10\">%.2f</text>\n", left, w, y, y, y + 3, i / 4.0);
    }
    const double dx = L > 1 ? (w - left - 10) / (L - 1) : 0.0;
    for (int32_t l = 0; l < L; l++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%d</text>", left + l * dx - 3, top + h + 14, l);
    for (int32_t s = 0; s < nsets; s++)
        for (int kind = 0; kind < 2; kind++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", SET_COLOUR(s),
                    kind ? " stroke-dasharray=\"5,3\"" : "");
            for (int32_t l = 0; l < L; l++) {
                const FvDiagAttn *A = &sets[s].mean->layer[l].attn[kind];
                const double v = fv_diag_pair_mean(!strcmp(metric, "CKA") ? A->cka : A->jaccard, H);
                fprintf(f, "%.1f,%.1f ", left + l * dx, top + h - h * fmin(1.0, fmax(0.0, v)));
            }
            fputs("\"/>\n", f);
        }
    fputs("</svg>\n", f);
}

/* Castling's depthwise-convolution taps of every head (SPEC 4.2: reported apart from the attention weights),
 * a row per head, the tap at the query's own token in the middle, coloured over [-max|w|, max|w|]. */
static void put_taps(FILE *f, const FvDiagAttn *A, int32_t H, const char *attn, const char *set)
{
    double mx = 0.0;
    for (int32_t i = 0; i < H * FV_CASTLING_TAPS; i++)
        mx = fmax(mx, fabs(A->taps[i]));
    fprintf(f, "<h3>%s castling depthwise-convolution taps, ", attn);
    put_escaped(f, set);
    fputs(" (offsets -4..4 along the token index)</h3>\n<table><tr><th>head</th>", f);
    for (int32_t i = 0; i < FV_CASTLING_TAPS; i++)
        fprintf(f, "<th>%+d</th>", i - FV_CASTLING_TAPS / 2);
    fputs("</tr>\n", f);
    for (int32_t h = 0; h < H; h++) {
        fprintf(f, "<tr><td>%d</td>", h);
        for (int32_t i = 0; i < FV_CASTLING_TAPS; i++) {
            const double v = A->taps[(int64_t)h * FV_CASTLING_TAPS + i];
            char col[8];
            hex_colour(mx > 0.0 ? (float)(0.5 + 0.5 * v / mx) : 0.5f, col);
            fprintf(f, "<td style=\"background:%s\">%.3g</td>", col, v);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (mx == 0.0)
        fputs("<p class=\"note\">All taps are zero: the model has no trained depthwise convolution.</p>\n", f);
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

/* The masks of every head of layer @l under settings @s over @n tokens (spatial: has_cls). */
static int put_masks(FILE *f, const FvAttnSettings *s, int32_t l, int32_t n, int32_t has_cls, int32_t H,
                     const char *what)
{
    FvAttnPlan p;
    int ret = fv_attn_plan_init(&p, s, l, n + has_cls, has_cls, H, 1);
    if (ret < 0)
        return ret;
    /* a grid about 1100 pixels wide, one square per head */
    const int32_t px = n <= 24 ? 72 / n : n <= 72 ? 2 : 1, side = n * px, gap = 4;
    const int32_t cols = FV_MAX(1, FV_MIN(H, 1100 / (side + gap))), rows = (H + cols - 1) / cols;
    FvImage im;
    if ((ret = fv_image_alloc(&im, gap + cols * (side + gap), gap + rows * (side + gap), 255, 255, 255)) < 0)
        goto done;
    static const uint8_t bg[3] = { 235, 235, 235 };
    for (int32_t h = 0; h < H; h++) {
        uint8_t col[3];
        fv_colormap(0.15f + 0.7f * h / (H > 1 ? H - 1 : 1), col);
        fv_report_draw_mask(&im, gap + h % cols * (side + gap), gap + h / cols * (side + gap), px, n,
                            p.off + (int64_t)h * p.max_off, p.noff[h], col, bg);
    }
    ret = put_png(f, &im, what);
    fv_image_free(&im);
done:
    fv_attn_plan_free(&p);
    return ret;
}

/* The cls query's attention of every head of layer @l over a frame of @c: the frame dimmed and the map
 * (bilinear, scaled to its own maximum) laid over it. */
static int put_cls_maps(FILE *f, const FvDiagResult *r, int32_t l, const FvReportClip *c, const char *what)
{
    const int32_t H = r->num_heads, gh = r->grid_h, gw = r->grid_w;
    if (!c->rgb || c->w < 1 || c->h < 1)
        return 0;
    const int32_t cw = 64, ch = FV_MAX(1, c->h * cw / c->w), gap = 4;
    FvImage im;
    int ret = fv_image_alloc(&im, gap + H * (cw + gap), ch + 2 * gap, 255, 255, 255);
    if (ret < 0)
        return ret;
    for (int32_t h = 0; h < H; h++) {
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
                const float t = mx > 0.0 ? (float)(v / mx) : 0.0f;
                fv_colormap(t, hc);
                uint8_t *dst = im.rgb + ((int64_t)(gap + y) * im.w + gap + h * (cw + gap) + x) * 3;
                for (int k = 0; k < 3; k++)
                    dst[k] = (uint8_t)(0.45f * src[k] + 0.55f * hc[k] + 0.5f);
            }
    }
    ret = put_png(f, &im, what);
    fv_image_free(&im);
    return ret;
}

static const char css[] =
    "body{font-family:sans-serif;margin:16px;color:#222;background:#fff}"
    "h1{font-size:22px}h2{font-size:18px;border-top:2px solid #ccc;padding-top:8px}h3{font-size:14px;margin:8px 0 2px}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "svg{font-size:11px;margin:2px 6px 2px 0;vertical-align:top}.row{display:flex;flex-wrap:wrap;align-items:flex-start}"
    ".key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}"
    "img{image-rendering:pixelated;margin:2px}.note{font-size:12px;color:#555;max-width:980px}";

int fv_report_diversity_html(const char *path, const char *title, const char *subtitle, const FvReportClip *clips,
                             int32_t num_clips, const FvReportSetting *sets, int32_t num_sets)
{
    if (!path || !sets || num_sets < 1 || !sets[0].mean)
        return fv_error(FV_EINVAL, "fv_report_diversity_html: nothing to report");
    const FvDiagResult *r0 = sets[0].mean;
    const int32_t L = r0->num_layers, H = r0->num_heads, P = r0->grid_h * r0->grid_w, T = r0->frames;
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
    fputs("</h1>\n<p class=\"note\">", f);
    put_escaped(f, subtitle);
    fputs("</p>\n<p class=\"key\">settings:", f);
    for (int32_t s = 0; s < num_sets; s++) {
        char sa[128], ta[128];
        fv_attn_describe(&sets[s].mean->spatial, FV_ATTN_DESCRIBE_SHORT, sa, sizeof(sa));
        fv_attn_describe(&sets[s].mean->temporal, FV_ATTN_DESCRIBE_SHORT, ta, sizeof(ta));
        fprintf(f, "<span style=\"background:%s\"></span><b>", SET_COLOUR(s));
        put_escaped(f, sets[s].name);
        fprintf(f, "</b> (spatial %s, temporal %s; %lld clips)", sa, ta, (long long)sets[s].mean->count);
    }
    fputs("</p>\n<p class=\"note\">Head similarity is measured on the heads' outputs before the output projection "
          "(tokens x head_dim): linear CKA with centred features (1: the heads carry the same information up to a "
          "rotation and scale), cosine of the flattened outputs, Frobenius distance; Jaccard is the overlap of the "
          "heads' attention masks. Lower means more diverse heads. Values are means over clips; bars show the "
          "spread (standard deviation) as whiskers. Entropy is normalised by log of the keys with non-zero weight "
          "(SimA and Castling form no probability distribution: no entropy; their distances and cls maps use the "
          "normalised kernels |q^ k^T| and 0.5 + q^.k^/pi per row); distance is attention-weighted, in pixels (spatial) or frames (temporal). cls attention over the clips' "
          "frames is drawn for every layer of models up to 6 layers deep, else for five layers spread over the "
          "depth (each map scaled to its own maximum).</p>\n", f);

    /* summary: mean head similarity per layer, settings side by side */
    fputs("<h2>Summary</h2>\n<div class=\"row\">", f);
    svg_summary_chart(f, sets, num_sets, "CKA");
    svg_summary_chart(f, sets, num_sets, "Jaccard");
    fputs("</div>\n<table><tr><th rowspan=\"2\">layer</th>", f);
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
        fprintf(f, "<tr><td>%d</td>", l);
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

    for (int32_t l = 0; l < L && ret >= 0; l++) {
        fprintf(f, "<h2 id=\"layer%d\">Layer %d</h2>\n", l, l);
        static const char *const kname[2] = { "spatial", "temporal" };
        for (int kind = 0; kind < 2; kind++) {
            fprintf(f, "<h3>%s attention: per-head entropy, distance, density</h3>\n<div class=\"row\">", kname[kind]);
            svg_bars(f, sets, num_sets, l, kind, offsetof(FvDiagHead, entropy_norm) / sizeof(double),
                     "entropy (normalised)");
            svg_bars(f, sets, num_sets, l, kind,
                     (kind ? offsetof(FvDiagHead, mean_distance) : offsetof(FvDiagHead, mean_distance_px)) / sizeof(double),
                     kind ? "mean distance (frames)" : "mean distance (pixels)");
            svg_bars(f, sets, num_sets, l, kind, offsetof(FvDiagHead, density) / sizeof(double), "density");
            fputs("</div>\n", f);
            for (int32_t s = 0; s < num_sets; s++) {
                const FvDiagAttn *A = &sets[s].mean->layer[l].attn[kind];
                double fmx = 0.0;
                for (int32_t i = 0; i < H * H; i++)
                    fmx = fmax(fmx, A->frobenius[i]);
                const FvAttnSettings *as = kind ? &sets[s].mean->temporal : &sets[s].mean->spatial;
                fprintf(f, "<h3>%s %s, ", kname[kind], fv_attn_kind_name(as->kind));
                put_escaped(f, sets[s].name);
                fputs(": head pairs</h3>\n<div class=\"row\">", f);
                svg_heatmap(f, A->cka, H, 0.0, 1.0, "CKA");
                svg_heatmap(f, A->cosine, H, 0.0, 1.0, "cosine");
                svg_heatmap(f, A->jaccard, H, 0.0, 1.0, "Jaccard");
                svg_heatmap(f, A->frobenius, H, 0.0, fmx, "Frobenius");
                fputs("</div>\n", f);
                if (as->kind == FV_ATTN_CASTLING)
                    put_taps(f, A, H, kname[kind], sets[s].name);
                if (as->kind == FV_ATTN_FIB) {
                    fprintf(f, "<h3>%s masks, ", kname[kind]);
                    put_escaped(f, sets[s].name);
                    fprintf(f, " (query rows, key columns, %s)</h3>\n", kind ? "frames" : "patch tokens, cls not drawn");
                    char alt[64];
                    snprintf(alt, sizeof(alt), "layer %d %s masks", l, kname[kind]);
                    if ((ret = put_masks(f, as, l, kind ? T : P, !kind, H, alt)) < 0)
                        break;
                }
            }
            if (ret < 0)
                break;
        }
        /* photos compress poorly: deep models show the cls maps of five layers spread over the depth */
        const int cls_layer = L <= 6 || l == 0 || l == L / 4 || l == L / 2 || l == 3 * L / 4 || l == L - 1;
        for (int32_t s = 0; s < num_sets && ret >= 0 && cls_layer; s++)
            for (int32_t c = 0; c < num_clips && sets[s].clip && sets[s].clip[c] && ret >= 0; c++) {
                fputs("<h3>cls attention over a frame, one picture per head, ", f);
                put_escaped(f, sets[s].name);
                fputs(": ", f);
                put_escaped(f, clips[c].name);
                fputs("</h3>\n", f);
                char alt[64];
                snprintf(alt, sizeof(alt), "layer %d cls attention, clip %d", l, c);
                ret = put_cls_maps(f, sets[s].clip[c], l, &clips[c], alt);
            }
    }
    fputs("</body></html>\n", f);
    if (ret >= 0 && (ferror(f) || fflush(f) != 0))
        ret = fv_error(FV_EIO, "%s: write failed", tmp);
    if (fclose(f) != 0 && ret >= 0)
        ret = fv_error(FV_EIO, "%s: write failed", tmp);
    if (ret >= 0 && rename(tmp, path) != 0)
        ret = fv_error(-errno, "%s: cannot rename: %s", path, strerror(errno));
    if (ret < 0)
        remove(tmp);
    free(tmp);
    return ret < 0 ? ret : 0;
}
