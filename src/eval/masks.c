/* The Fibottention masks of one attention over every layer and head, as `fibvid masks` shows them: offsets
 * (as the reference returns them and as the mask encodes them), density and head-pair Jaccard over the
 * tokens without cls, and a PNG of every head's mask. */
#include <stdlib.h>
#include <string.h>

#include "fibvid/attention.h"
#include "eval/image.h"
#include "eval/report.h"
#include "kernels/attention.h"
#include "kernels/fibottention.h"
#include "util/util.h"

struct FvAttnMasks {
    int32_t n, H, L, temporal;
    FvAttnSettings s;    /* windows resolved */
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
    free(m);
    *pm = NULL;
}

int fv_attn_masks_create(FvAttnMasks **out, const FvAttnSettings *s, int32_t tokens, int32_t heads, int32_t layers,
                         int32_t temporal)
{
    int ret;
    if (!out || !s)
        return fv_error(FV_EINVAL, "fv_attn_masks_create: NULL argument");
    *out = NULL;
    if (tokens < 1 || heads < 1 || layers < 1)
        return fv_error(FV_EINVAL, "fv_attn_masks_create: %d tokens, %d heads, %d layers", tokens, heads, layers);
    FvAttnMasks *m = calloc(1, sizeof(*m));
    if (!m || !(m->plans = calloc((size_t)layers, sizeof(FvAttnPlan)))) {
        free(m);
        return fv_error(FV_ENOMEM, "fv_attn_masks_create: out of memory");
    }
    m->n = tokens;
    m->H = heads;
    m->L = layers;
    m->temporal = temporal;
    FvAttnSettings fs = *s;
    fs.kind = FV_ATTN_FIB;
    for (int32_t l = 0; l < layers; l++) {
        /* spatial plans span the tokens plus cls; temporal ones the frames; head size plays no part */
        if ((ret = fv_attn_plan_init(&m->plans[l], &fs, l, temporal ? tokens : tokens + 1, !temporal, heads, 1)) < 0) {
            m->L = l;
            fv_attn_masks_close(&m);
            return ret;
        }
    }
    m->s = m->plans[0].s;
    *out = m;
    return 0;
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
    return c < 0 ? -1.0 : fv_fib_density(o, c, m->n, 0);
}

double fv_attn_masks_jaccard(const FvAttnMasks *m, int32_t layer, int32_t a, int32_t b)
{
    const int32_t *oa, *ob;
    const int32_t ca = fv_attn_masks_offsets(m, layer, a, 0, &oa), cb = fv_attn_masks_offsets(m, layer, b, 0, &ob);
    return ca < 0 || cb < 0 ? -1.0 : fv_fib_jaccard(oa, ca, ob, cb, m->n, 0);
}

int fv_attn_masks_write_png(const FvAttnMasks *m, const char *path)
{
    if (!m || !path)
        return fv_error(FV_EINVAL, "fv_attn_masks_write_png: NULL argument");
    const int32_t n = m->n, px = n <= 40 ? 160 / n : n <= 160 ? 2 : 1, side = n * px, gap = 6;
    FvImage im;
    int ret = fv_image_alloc(&im, gap + m->H * (side + gap), gap + m->L * (side + gap), 255, 255, 255);
    if (ret < 0)
        return ret;
    static const uint8_t bg[3] = { 235, 235, 235 };
    for (int32_t l = 0; l < m->L; l++)
        for (int32_t h = 0; h < m->H; h++) {
            const int32_t *o;
            const int32_t c = fv_attn_masks_offsets(m, l, h, 0, &o);
            uint8_t col[3];
            fv_colormap(0.15f + 0.7f * h / (m->H > 1 ? m->H - 1 : 1), col); /* a hue per head */
            /* the drawing report.html uses too */
            fv_report_draw_mask(&im, gap + h * (side + gap), gap + l * (side + gap), px, n, o, c, col, bg);
        }
    ret = fv_image_write_png(&im, path);
    fv_image_free(&im);
    return ret;
}
