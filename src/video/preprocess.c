/* Spatial preprocessing (SPEC section 2): resized size, centre / three crops, and the RGB24 ->
 * normalised float (T, 3, crop, crop) conversion that produces the model's input. */

#include "util/util.h"

#include "fibvid/video.h"

void fv_preprocess_default_settings(FvPreprocessSettings *p)
{
    if (!p)
        return;
    p->short_side = 0;
    p->crop_size = 224;
    p->crop = FV_CROP_CENTER;
    for (int c = 0; c < 3; c++) {
        p->mean[c] = 0.45f;
        p->std[c] = 0.225f;
    }
}

/* MMAction2 Resize(scale=(-1, S)): long side int(long * S / short + 0.5), computed exactly. */
void fv_preprocess_resized_size(int32_t w, int32_t h, int32_t short_side, int32_t *rw, int32_t *rh)
{
    int64_t W = w, H = h, S = short_side;
    if (W <= 0 || H <= 0 || S <= 0) {
        if (rw)
            *rw = 0;
        if (rh)
            *rh = 0;
        return;
    }
    int64_t ow, oh;
    if (W <= H) {
        ow = S;
        oh = (2 * H * S + W) / (2 * W);
    } else {
        oh = S;
        ow = (2 * W * S + H) / (2 * H);
    }
    if (rw)
        *rw = (int32_t)FV_MIN(FV_MAX(ow, 1), INT32_MAX);
    if (rh)
        *rh = (int32_t)FV_MIN(FV_MAX(oh, 1), INT32_MAX);
}

int32_t fv_preprocess_num_crops(FvCrop crop)
{
    return crop == FV_CROP_THREE ? 3 : 1;
}

/*
 * Top-left corner of spatial view @view. Centre crop: floor((L - c) / 2) on both axes, as MMAction2
 * CenterCrop and the HF image processors. Three crops: PySlowFast uniform_crop, i.e. ceil((L - c) / 2)
 * for the middle, 0 and L - c for the first and last view along the long side (width when square).
 */
static void crop_offsets(FvCrop crop, int32_t w, int32_t h, int32_t c, int32_t view, int32_t *x0,
                         int32_t *y0)
{
    if (crop != FV_CROP_THREE) {
        *x0 = (w - c) / 2;
        *y0 = (h - c) / 2;
        return;
    }
    *x0 = (w - c + 1) / 2;
    *y0 = (h - c + 1) / 2;
    if (h > w) {
        if (view == 0)
            *y0 = 0;
        else if (view == 2)
            *y0 = h - c;
    } else {
        if (view == 0)
            *x0 = 0;
        else if (view == 2)
            *x0 = w - c;
    }
}

int fv_preprocess_crop(const FvPreprocessSettings *p, const uint8_t *rgb, int32_t T, int32_t w,
                       int32_t h, int32_t view, float *out)
{
    if (!p || !rgb || !out)
        return fv_error(FV_EINVAL, "%s: NULL argument", __func__);
    const int32_t c = p->crop_size;
    if (T < 1 || w < 1 || h < 1 || c < 1)
        return fv_error(FV_EINVAL, "%s: bad sizes (T %d, %dx%d, crop %d)", __func__, T, w, h, c);
    if (p->crop != FV_CROP_CENTER && p->crop != FV_CROP_THREE)
        return fv_error(FV_EINVAL, "%s: unknown crop mode %d", __func__, (int)p->crop);
    if (c > w || c > h)
        return fv_error(FV_EINVAL, "%s: crop %d is larger than the %dx%d frame", __func__, c, w, h);
    if (view < 0 || view >= fv_preprocess_num_crops(p->crop))
        return fv_error(FV_EINVAL, "%s: spatial view %d out of range 0..%d", __func__, view,
                        fv_preprocess_num_crops(p->crop) - 1);
    for (int k = 0; k < 3; k++)
        if (!(p->std[k] > 0.0f || p->std[k] < 0.0f))
            return fv_error(FV_EINVAL, "%s: std[%d] is zero", __func__, k);

    /* Same float32 operations as torch's (x / 255 - mean) / std, tabulated per channel. */
    float lut[3][256];
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 256; v++)
            lut[k][v] = ((float)v / 255.0f - p->mean[k]) / p->std[k];

    int32_t x0, y0;
    crop_offsets(p->crop, w, h, c, view, &x0, &y0);
    const size_t plane = (size_t)c * c;
    for (int32_t t = 0; t < T; t++) {
        const uint8_t *frame = rgb + (size_t)t * h * w * 3; // frame (h, w, 3)
        float *o = out + (size_t)t * 3 * plane;              // o (3, c, c)
        for (int32_t y = 0; y < c; y++) {
            const uint8_t *row = frame + ((size_t)(y0 + y) * w + x0) * 3;
            float *r = o + (size_t)y * c, *g = r + plane, *b = g + plane;
            for (int32_t x = 0; x < c; x++) {
                r[x] = lut[0][row[3 * x + 0]];
                g[x] = lut[1][row[3 * x + 1]];
                b[x] = lut[2][row[3 * x + 2]];
            }
        }
    }
    return 0;
}
