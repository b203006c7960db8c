/* From a file to model input: sample K temporal views, decode the union of their frames once at the
 * resized size, crop S spatial views of each and normalise (SPEC section 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#include "fibvid/video.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int32_t find_i64(const int64_t *v, int32_t n, int64_t x)
{
    int32_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (v[mid] == x)
            return mid;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Re-issue the last error with the file name in front (sampling and cropping errors name functions). */
static int prefix_error(int code, const char *path)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", fv_last_error());
    return fv_error(code, "%s: %s", path, msg);
}

void fv_clip_default_settings(FvClipSettings *s)
{
    memset(s, 0, sizeof(*s));
    fv_sample_default_settings(&s->sample);
    fv_preprocess_default_settings(&s->pre);
}

void fv_clip_free(FvClip *clip)
{
    if (!clip)
        return;
    fv_free(clip->data);
    fv_free(clip->rgb);
    fv_free(clip->frames);
    memset(clip, 0, sizeof(*clip));
}

int fv_clip_load(const char *path, const FvClipSettings *s, FvClip *clip)
{
    FvVideo *v = NULL;
    int64_t *uniq = NULL;  // (U) distinct frame indices, ascending
    uint8_t *rgb = NULL;   // rgb (U, rh, rw, 3)
    uint8_t *view = NULL;  // view (T, rh, rw, 3)
    int ret;
    if (!clip)
        return fv_error(FV_EINVAL, "%s: NULL clip", __func__);
    memset(clip, 0, sizeof(*clip));
    if (!path || !s)
        return fv_error(FV_EINVAL, "%s: NULL argument", __func__);
    double t0 = fv_time_ms();

    const int32_t K = s->sample.num_views, T = s->sample.num_frames;
    const int32_t S = fv_preprocess_num_crops(s->pre.crop), C = s->pre.crop_size;
    if (K < 1 || K > 4096 || T < 1 || T > 4096)
        return fv_error(FV_EINVAL, "%s: %s: bad view/frame counts (%d views of %d frames)", __func__, path, K, T);
    if (C < 1 || C > 8192 || s->pre.short_side < 0 || s->pre.short_side > 16384)
        return fv_error(FV_EINVAL, "%s: %s: bad crop %d / short side %d", __func__, path, C, s->pre.short_side);
    const int32_t short_side = s->pre.short_side > 0 ? s->pre.short_side : C;
    if (short_side < C)
        return fv_error(FV_EINVAL, "%s: %s: short side %d is smaller than the crop %d", __func__, path,
                        short_side, C);

    if ((ret = fv_video_open(&v, path)) < 0)
        goto fail;
    clip->info = *fv_video_info(v);

    clip->frames = fv_malloc((size_t)K * T * sizeof(*clip->frames));
    uniq = fv_malloc((size_t)K * T * sizeof(*uniq));
    if (!clip->frames || !uniq) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int32_t k = 0; k < K; k++)
        if ((ret = fv_sample_indices(&s->sample, clip->info.nframes, k, clip->frames + (size_t)k * T)) < 0) {
            ret = prefix_error(ret, path);
            goto fail;
        }
    memcpy(uniq, clip->frames, (size_t)K * T * sizeof(*uniq));
    qsort(uniq, (size_t)K * T, sizeof(*uniq), cmp_i64);
    int32_t U = 0;
    for (int32_t i = 0; i < K * T; i++)
        if (U == 0 || uniq[U - 1] != uniq[i])
            uniq[U++] = uniq[i];

    int32_t rw, rh;
    fv_preprocess_resized_size(clip->info.width, clip->info.height, short_side, &rw, &rh);
    if (rw < C || rh < C || rw > 16384 || rh > 16384) {
        ret = fv_error(FV_EINVAL, "%s: resized size %dx%d does not fit crop %d", path, rw, rh, C);
        goto fail;
    }
    const size_t fb = (size_t)rw * rh * 3;
    rgb = fv_malloc(fb * U);
    view = fv_malloc(fb * T * (s->keep_rgb ? (size_t)K : 1));
    clip->data = s->keep_rgb ? NULL : fv_malloc((size_t)K * S * T * 3 * C * C * sizeof(float));
    if (!rgb || !view || (!s->keep_rgb && !clip->data)) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory for %d frames of %dx%d", path, U, rw, rh);
        goto fail;
    }
    if ((ret = fv_video_read_rgb(v, uniq, U, rw, rh, rgb)) < 0)
        goto fail;

    if (s->keep_rgb) {
        /* the frames of every view in order, as decoded and resized */
        for (int32_t i = 0; i < K * T; i++)
            memcpy(view + fb * i, rgb + fb * find_i64(uniq, U, clip->frames[i]), fb);
        clip->rgb = view;
        view = NULL;
        clip->rgb_w = rw;
        clip->rgb_h = rh;
        clip->num_tviews = K;
        clip->num_sviews = 1;
        clip->T = T;
        clip->H = clip->W = C;
        goto done;
    }
    for (int32_t k = 0; k < K; k++) {
        for (int32_t t = 0; t < T; t++) {
            int32_t u = find_i64(uniq, U, clip->frames[(size_t)k * T + t]);
            memcpy(view + fb * t, rgb + fb * u, fb);
        }
        for (int32_t sv = 0; sv < S; sv++) {
            float *out = clip->data + ((size_t)k * S + sv) * T * 3 * C * C; // out (T, 3, C, C)
            if ((ret = fv_preprocess_crop(&s->pre, view, T, rw, rh, sv, out)) < 0) {
                ret = prefix_error(ret, path);
                goto fail;
            }
        }
    }
    clip->num_tviews = K;
    clip->num_sviews = S;
    clip->T = T;
    clip->H = clip->W = C;
done:
    fv_video_close(&v);
    fv_free(uniq);
    fv_free(rgb);
    fv_free(view);
    clip->decode_ms = fv_time_ms() - t0;
    return 0;
fail:
    fv_video_close(&v);
    fv_free(uniq);
    fv_free(rgb);
    fv_free(view);
    fv_clip_free(clip);
    return ret;
}

int32_t fv_clip_repeated_frames(const FvClip *c)
{
    int32_t worst = 0;
    if (!c || !c->frames)
        return 0;
    for (int32_t k = 0; k < c->num_tviews; k++) {
        const int64_t *f = c->frames + (int64_t)k * c->T;
        int32_t rep = 0;
        for (int32_t t = 1; t < c->T; t++) { /* dense sampling may wrap around: any earlier slot counts */
            int32_t seen = 0;
            for (int32_t u = 0; u < t && !seen; u++)
                seen = f[u] == f[t];
            rep += seen;
        }
        if (rep > worst)
            worst = rep;
    }
    return worst;
}
