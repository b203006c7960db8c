/* classify's result writers: timeline text, CSV rows, the timeline SVG (declared in cli.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
/* A timeline as text: one line per window, its top-k. */
void fv_classify_print_timeline(FILE *out, const json_t *j)
{
    fprintf(out, "%s  (%.2f s, %lld frames, %d windows of %g s every %g s, decode %.1f ms, forward %.1f ms)\n",
            json_string_value(json_object_get(j, "path")), json_real_value(json_object_get(j, "duration_s")),
            (long long)json_integer_value(json_object_get(j, "nframes")),
            (int)json_array_size(json_object_get(j, "windows")), json_real_value(json_object_get(j, "window_s")),
            json_real_value(json_object_get(j, "stride_s")),
            json_real_value(json_object_get(json_object_get(j, "timing_ms"), "decode")),
            json_real_value(json_object_get(json_object_get(j, "timing_ms"), "forward")));
    fprintf(out, "  %-6s  %-9s  %-9s  %s\n", "window", "start (s)", "end (s)", "top-k (prob)");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(j, "windows"), i, w) {
        fprintf(out, "  %-6d  %-9.2f  %-9.2f ", (int)i, json_real_value(json_object_get(w, "start_s")),
                json_real_value(json_object_get(w, "end_s")));
        size_t r;
        json_t *t;
        json_array_foreach(json_object_get(w, "top"), r, t)
            fprintf(out, "%s %s (%.4f)", r ? "," : "", json_string_value(json_object_get(t, "label")),
                    json_real_value(json_object_get(t, "prob")));
        fputc('\n', out);
    }
}

/* One CSV field (RFC 4180: quoted when it holds a comma, quote or line break). */
static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

void fv_classify_csv_header(FILE *out, int windows)
{
    fputs(windows ? "path,window,start_s,end_s,rank,index,label,prob,error\n" : "path,rank,index,label,prob,error\n",
          out);
}

/* Rows of one clip's JSON result (or error): one per rank (x window). */
void fv_classify_csv_rows(FILE *out, const json_t *j, int windows)
{
    const char *path = json_string_value(json_object_get(j, "path"));
    const json_t *err = json_object_get(j, "error");
    if (err) {
        csv_field(out, path);
        fputs(windows ? ",,,,,,,," : ",,,,,", out);
        csv_field(out, json_string_value(err));
        fputc('\n', out);
        return;
    }
    json_t *single = json_pack("[{s:O}]", "top", json_object_get(j, "top"));
    const json_t *wins = windows ? json_object_get(j, "windows") : single;
    size_t i, r;
    json_t *w, *t;
    json_array_foreach(wins, i, w) {
        json_array_foreach(json_object_get(w, "top"), r, t) {
            csv_field(out, path);
            if (windows)
                fprintf(out, ",%d,%.3f,%.3f", (int)i, json_real_value(json_object_get(w, "start_s")),
                        json_real_value(json_object_get(w, "end_s")));
            fprintf(out, ",%d,%d,", (int)r + 1, (int)json_integer_value(json_object_get(t, "index")));
            csv_field(out, json_string_value(json_object_get(t, "label")));
            fprintf(out, ",%.6f,\n", json_real_value(json_object_get(t, "prob")));
        }
    }
    json_decref(single);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Timeline SVG                                                                                          */
/* ---------------------------------------------------------------------------------------------------- */

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Distinct, stable colours: the golden angle around the hue circle (saturation 0.6, lightness 0.62), in order of
 * first appearance, as #rrggbb (SVG 1.1 has no hsl()). */
static void label_colour(int i, char *buf, size_t n)
{
    const double h = fmod(i * 137.508, 360.0) / 60.0, l = 0.62, sat = 0.6;
    const double ch = (1 - fabs(2 * l - 1)) * sat, x = ch * (1 - fabs(fmod(h, 2.0) - 1)), m0 = l - ch / 2;
    double rgb[3] = { 0, 0, 0 };
    const int sector = (int)h % 6;
    const int hi[6] = { 0, 1, 1, 2, 2, 0 }, lo[6] = { 1, 0, 2, 1, 0, 2 };
    rgb[hi[sector]] = ch;
    rgb[lo[sector]] = x;
    snprintf(buf, n, "#%02x%02x%02x", (int)lround((rgb[0] + m0) * 255), (int)lround((rgb[1] + m0) * 255),
             (int)lround((rgb[2] + m0) * 255));
}

static int colour_index(json_t *seen, const char *lab)
{
    size_t i;
    json_t *v;
    json_array_foreach(seen, i, v)
        if (!strcmp(json_string_value(v), lab))
            return (int)i;
    json_array_append_new(seen, json_string(lab));
    return (int)json_array_size(seen) - 1;
}

static double nice_step(double span)
{
    static const double steps[] = { 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600 };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (span / steps[i] <= 12)
            return steps[i];
    return ceil(span / 12 / 3600) * 3600;
}

/* One panel per timeline in @clips: lanes of bands (overlapping windows go to separate lanes), a time axis in
 * seconds, then one legend for every label shown. Returns 0 or -1 (out of memory). */
int fv_classify_write_timeline_svg(const char *path, const json_t *clips)
{
    enum { WIDTH = 1000, LEFT = 30, PLOT = 940, LANE = 40, TITLE = 44, AXIS = 52 };
    char *buf = NULL, col[64];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_t *seen = json_array();
    if (!f || !seen) {
        if (f)
            fclose(f);
        free(buf);
        json_decref(seen);
        return -1;
    }
    /* the panels first into a group, the height is known after the legend */
    char *body = NULL;
    size_t blen = 0;
    FILE *b = open_memstream(&body, &blen);
    if (!b) {
        fclose(f);
        free(buf);
        json_decref(seen);
        return -1;
    }
    int y = 10;
    size_t ci;
    json_t *c;
    json_array_foreach(clips, ci, c) {
        const double dur = json_real_value(json_object_get(c, "duration_s"));
        const double win = json_real_value(json_object_get(c, "window_s"));
        const double stride = json_real_value(json_object_get(c, "stride_s"));
        const json_t *wins = json_object_get(c, "windows");
        const double span = dur > 0 ? dur : 1;
        int lanes = (int)ceil(win / stride - 1e-9);
        lanes = lanes < 1 ? 1 : lanes > 8 ? 8 : lanes;
        if ((size_t)lanes > json_array_size(wins))
            lanes = json_array_size(wins) ? (int)json_array_size(wins) : 1;
        fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">Top-1 label per window: ", LEFT,
                y + 18);
        xml_text(b, json_string_value(json_object_get(c, "path")));
        fprintf(b, "</text>\n<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#444\">window %g s, stride %g s, "
                   "%d window%s, video %.2f s%s</text>\n", LEFT, y + 36, win, stride, (int)json_array_size(wins),
                json_array_size(wins) == 1 ? "" : "s", dur, lanes > 1 ? "; overlapping windows are drawn in separate rows" : "");
        y += TITLE;
        size_t i;
        json_t *w;
        json_array_foreach(wins, i, w) {
            const json_t *t0 = json_array_get(json_object_get(w, "top"), 0);
            const char *lab = json_string_value(json_object_get(t0, "label"));
            const double p = json_real_value(json_object_get(t0, "prob"));
            const double s = json_real_value(json_object_get(w, "start_s")), e = json_real_value(json_object_get(w, "end_s"));
            const double x = LEFT + PLOT * s / span, wd = PLOT * (e - s) / span;
            const int ly = y + (int)(i % (size_t)lanes) * LANE;
            label_colour(colour_index(seen, lab), col, sizeof(col));
            fprintf(b, "<g><title>window %d: %.2f-%.2f s: ", (int)i, s, e);
            xml_text(b, lab);
            fprintf(b, " (%.3f)</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
                       "stroke=\"#fff\" stroke-width=\"1\"/>", p, x, ly, wd > 0.5 ? wd : 0.5, LANE - 4, col);
            const int chars = (int)((wd - 4) / 7);
            if (chars >= 3) {
                fprintf(b, "<text x=\"%.2f\" y=\"%d\" font-size=\"11\">", x + 3, ly + 15);
                char shown[256];
                snprintf(shown, sizeof(shown), "%.*s", chars < 255 ? chars : 255, lab);
                xml_text(b, shown);
                fprintf(b, "</text><text x=\"%.2f\" y=\"%d\" font-size=\"10\" fill=\"#222\">%.2f</text>", x + 3,
                        ly + 29, p);
            }
            fputs("</g>\n", b);
        }
        y += lanes * LANE;
        /* time axis */
        const double step = nice_step(span);
        fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n", LEFT, y + 2, LEFT + PLOT, y + 2);
        for (double tk = 0; tk <= span + 1e-9; tk += step) {
            const double x = LEFT + PLOT * tk / span;
            fprintf(b, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#000\"/>"
                       "<text x=\"%.2f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n",
                    x, y + 2, x, y + 7, x, y + 20, tk);
        }
        fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">time (s)</text>\n",
                LEFT + PLOT / 2, y + 38);
        y += AXIS;
    }
    /* legend */
    fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">Legend (top-1 labels)</text>\n", LEFT,
            y + 14);
    y += 22;
    int x = LEFT;
    size_t li;
    json_t *lv;
    json_array_foreach(seen, li, lv) {
        const char *lab = json_string_value(lv);
        const int wd = 24 + 7 * (int)strlen(lab);
        if (x + wd > LEFT + PLOT && x > LEFT) {
            x = LEFT;
            y += 20;
        }
        label_colour((int)li, col, sizeof(col));
        fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" "
                   "font-size=\"12\">", x, y, col, x + 18, y + 12);
        xml_text(b, lab);
        fputs("</text>\n", b);
        x += wd;
    }
    y += 30;
    fclose(b);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
               "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n<rect width=\"100%%\" "
               "height=\"100%%\" fill=\"#fff\"/>\n", WIDTH, y, WIDTH, y);
    fwrite(body, 1, blen, f);
    fputs("</svg>\n", f);
    free(body);
    fclose(f);
    json_decref(seen);
    int ret = fv_write_file_atomic(path, buf, len);
    free(buf);
    return ret < 0 ? -2 : 0;
}
