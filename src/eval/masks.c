/* The Fibottention masks of one attention over every layer and head, as `fibvid masks` shows them: offsets
 * (as the reference returns them and as the mask encodes them), density and head-pair Jaccard over the
 * tokens without cls, and a PNG of every head's mask with a title and per-head labels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/attention.h"
#include "eval/image.h"
#include "eval/report.h"
#include "kernels/attention.h"
#include "kernels/fibottention.h"
#include "util/util.h"

struct FvAttnMasks {
    int32_t n, H, L, temporal; /* n: the first layer's tokens (the most) */
    int32_t *ln;         /* (L) each layer's tokens: fewer after a token pooling */
    FvAttnSettings s;    /* the first layer's settings, windows resolved */
    FvAttnPlan *plans;   /* (L) */
};

void fv_attn_masks_close(FvAttnMasks **pm)
{
    if (!pm || !*pm)
        return;
    FvAttnMasks *m = *pm;
    for (int32_t l = 0; m->plans && l < m->L; l++)
        fv_attn_plan_free(&m->plans[l]);
    free(m->plans);
    free(m->ln);
    free(m);
    *pm = NULL;
}

int fv_attn_masks_create(FvAttnMasks **out, const FvAttnSettings *s, int32_t tokens, int32_t heads, int32_t layers,
                         int32_t temporal)
{
    if (layers < 1 || tokens < 1)
        return fv_error(FV_EINVAL, "fv_attn_masks_create: %d tokens, %d layers", tokens, layers);
    int32_t *ln = malloc((size_t)layers * sizeof(int32_t));
    if (!ln)
        return fv_error(FV_ENOMEM, "fv_attn_masks_create: out of memory");
    for (int32_t l = 0; l < layers; l++)
        ln[l] = tokens;
    int ret = fv_attn_masks_create_layers(out, s, ln, heads, layers, temporal);
    free(ln);
    return ret;
}

int fv_attn_masks_create_layers(FvAttnMasks **out, const FvAttnSettings *s, const int32_t *tokens, int32_t heads,
                                int32_t layers, int32_t temporal)
{
    int ret;
    if (!out || !s || !tokens)
        return fv_error(FV_EINVAL, "fv_attn_masks_create: NULL argument");
    *out = NULL;
    if (heads < 1 || layers < 1)
        return fv_error(FV_EINVAL, "fv_attn_masks_create: %d heads, %d layers", heads, layers);
    for (int32_t l = 0; l < layers; l++)
        if (tokens[l] < 1 || (l && tokens[l] > tokens[0]))
            return fv_error(FV_EINVAL, "fv_attn_masks_create: layer %d: %d tokens (1..%d)", l, tokens[l],
                            l ? tokens[0] : INT32_MAX);
    FvAttnMasks *m = calloc(1, sizeof(*m));
    if (!m || !(m->plans = calloc((size_t)layers, sizeof(FvAttnPlan))) ||
        !(m->ln = malloc((size_t)layers * sizeof(int32_t)))) {
        if (m)
            free(m->plans);
        free(m);
        return fv_error(FV_ENOMEM, "fv_attn_masks_create: out of memory");
    }
    memcpy(m->ln, tokens, (size_t)layers * sizeof(int32_t));
    m->n = tokens[0];
    m->H = heads;
    m->L = layers;
    m->temporal = temporal;
    FvAttnSettings fs = *s;
    fs.kind = FV_ATTN_FIB;
    for (int32_t l = 0; l < layers; l++) {
        /* spatial plans span the tokens plus cls; temporal ones the frames; head size plays no part. Each layer's
         * default windows follow its own token count, as the model's plans do (model/forward.c). */
        const int32_t n = tokens[l];
        if ((ret = fv_attn_plan_init(&m->plans[l], &fs, l, temporal ? n : n + 1, !temporal, heads, 1)) < 0) {
            m->L = l;
            fv_attn_masks_close(&m);
            return ret;
        }
    }
    m->s = m->plans[0].s;
    *out = m;
    return 0;
}

int32_t fv_attn_masks_tokens(const FvAttnMasks *m, int32_t layer)
{
    return m && layer >= 0 && layer < m->L ? m->ln[layer] : -1;
}

const FvAttnSettings *fv_attn_masks_layer_settings(const FvAttnMasks *m, int32_t layer)
{
    return m && layer >= 0 && layer < m->L ? &m->plans[layer].s : NULL;
}

const FvAttnSettings *fv_attn_masks_settings(const FvAttnMasks *m)
{
    return &m->s;
}

int32_t fv_attn_masks_offsets(const FvAttnMasks *m, int32_t layer, int32_t head, int32_t raw, const int32_t **off)
{
    if (!m || layer < 0 || layer >= m->L || head < 0 || head >= m->H)
        return -1;
    const FvAttnPlan *p = &m->plans[layer];
    if (raw) {
        *off = p->raw_off + (int64_t)head * p->raw_max;
        return p->raw_noff[head];
    }
    *off = p->off + (int64_t)head * p->max_off;
    return p->noff[head];
}

double fv_attn_masks_density(const FvAttnMasks *m, int32_t layer, int32_t head)
{
    const int32_t *o;
    const int32_t c = fv_attn_masks_offsets(m, layer, head, 0, &o);
    return c < 0 ? -1.0 : fv_fib_density(o, c, m->ln[layer], 0);
}

double fv_attn_masks_jaccard(const FvAttnMasks *m, int32_t layer, int32_t a, int32_t b)
{
    const int32_t *oa, *ob;
    const int32_t ca = fv_attn_masks_offsets(m, layer, a, 0, &oa), cb = fv_attn_masks_offsets(m, layer, b, 0, &ob);
    return ca < 0 || cb < 0 ? -1.0 : fv_fib_jaccard(oa, ca, ob, cb, m->ln[layer], 0);
}

/* The PNG: a title, then a row of squares per layer (labelled on the left), one per head in its own hue, each
 * with its density and offsets under it, as the SVG of `fibvid masks` shows them. */
int fv_attn_masks_write_png(const FvAttnMasks *m, const char *path)
{
    if (!m || !path)
        return fv_error(FV_EINVAL, "fv_attn_masks_write_png: NULL argument");
    static const uint8_t bg[3] = { 235, 235, 235 }, ink[3] = { 20, 20, 20 }, grey[3] = { 110, 110, 110 };
    const int32_t n = m->n, px = n <= 40 ? 160 / n : n <= 160 ? 2 : 1, side = n * px, gap = 10, pad = 10;
    char title[160], sub[200], lab[160];
    snprintf(title, sizeof(title), "%s Fibottention masks: %d %s, %d heads, %d layer%s",
             m->temporal ? "Temporal" : "Spatial", n, m->temporal ? "frames" : "tokens", m->H, m->L,
             m->L == 1 ? "" : "s");
    snprintf(sub, sizeof(sub), "%s variant, windows %d..%d, head shuffle %s; each square: query rows, key columns%s",
             m->s.variant == FV_FIB_MODIFIED ? "modified" : "original", m->s.wmin, m->s.wmax,
             m->s.shuffle ? "on" : "off", m->temporal ? "" : " (cls not shown)");
    snprintf(lab, sizeof(lab), "layer %d", m->L - 1);
    const int32_t lab_h = 2 * (FV_FONT_HEIGHT + 2) + 4; // two label lines under each square
    const int32_t left = pad + fv_image_text_width(lab, 1) + 10, top = pad + 2 * FV_FONT_HEIGHT + 6 + 13 + 10;
    const int32_t W = FV_MAX(left + m->H * (side + gap) - gap + pad,
                             2 * pad + FV_MAX(fv_image_text_width(title, 2), fv_image_text_width(sub, 1)));
    FvImage im;
    int32_t H = top - gap + pad; /* rows as tall as their squares: a pooled layer's are smaller */
    for (int32_t l = 0; l < m->L; l++)
        H += FV_MAX(m->ln[l] * px, 2 * (FV_FONT_HEIGHT + 2)) + lab_h + gap;
    int ret = fv_image_alloc(&im, W, H, 255, 255, 255);
    if (ret < 0)
        return ret;
    fv_image_text(&im, pad, pad, 2, ink, title);
    fv_image_text(&im, pad, pad + 2 * FV_FONT_HEIGHT + 6, 1, grey, sub);
    for (int32_t l = 0, y0 = top; l < m->L; l++) {
        const int32_t nl = m->ln[l], side_l = nl * px; /* a pooled layer: a smaller square, same scale */
        const int32_t row = FV_MAX(side_l, 2 * (FV_FONT_HEIGHT + 2)), ylab = y0 + (side_l - FV_FONT_ASCENT) / 2;
        snprintf(lab, sizeof(lab), "layer %d", l);
        fv_image_text(&im, pad, nl != n ? FV_MAX(y0, ylab - FV_FONT_HEIGHT / 2) : ylab, 1, ink, lab);
        if (nl != n) {
            snprintf(lab, sizeof(lab), "%d tokens", nl);
            fv_image_text(&im, pad, FV_MAX(y0, ylab - FV_FONT_HEIGHT / 2) + FV_FONT_HEIGHT + 2, 1, grey, lab);
        }
        for (int32_t h = 0; h < m->H; h++) {
            const int32_t x0 = left + h * (side + gap);
            const int32_t *o;
            const int32_t c = fv_attn_masks_offsets(m, l, h, 0, &o);
            uint8_t col[3];
            fv_colormap(0.15f + 0.7f * h / (m->H > 1 ? m->H - 1 : 1), col); /* a hue per head */
            /* the drawing report.html uses too */
            fv_report_draw_mask(&im, x0, y0, px, nl, o, c, col, bg);
            snprintf(lab, sizeof(lab), "head %d: %.1f%%", h, 100 * fv_attn_masks_density(m, l, h));
            fv_image_text_fit(&im, x0, y0 + side_l + 4, 1, ink, lab, side);
            int len = snprintf(lab, sizeof(lab), "offsets");
            int32_t i = 0;
            for (; i < c && len < (int)sizeof(lab) - 16; i++)
                len += snprintf(lab + len, sizeof(lab) - (size_t)len, " %d", o[i]);
            if (i < c)
                snprintf(lab + len, sizeof(lab) - (size_t)len, " \xe2\x80\xa6");
            fv_image_text_fit(&im, x0, y0 + side_l + 4 + FV_FONT_HEIGHT + 2, 1, grey, lab, side);
        }
        y0 += row + lab_h + gap;
    }
    ret = fv_image_write_png(&im, path);
    fv_image_free(&im);
    return ret;
}
