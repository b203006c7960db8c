/* Prediction: a clip's views through the forward pass, the softmax of each view averaged over the views
 * (MMAction2 average_clips='prob'), the mean logits and the top-k labels; the clip settings a model's
 * configuration implies. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/predict.h"
#include "kernels/layers.h"
#include "util/util.h"

void fv_predict_default_settings(FvPredictSettings *s)
{
    memset(s, 0, sizeof(*s));
    s->temporal_views = 1;
    s->spatial_views = 1;
    s->sampling = -1;
    s->dense_start = FV_DENSE_START_MMACTION;
    s->top_k = 5;
    s->batch = 1;
}

static int check_settings(const FvPredictSettings *s, const char *fn)
{
    if (s->temporal_views < 1 || s->temporal_views > 64)
        return fv_error(FV_EINVAL, "%s: %d temporal views (1..64)", fn, s->temporal_views);
    if (s->spatial_views != 1 && s->spatial_views != 3)
        return fv_error(FV_EINVAL, "%s: %d spatial views (1 or 3)", fn, s->spatial_views);
    if (s->sampling != -1 && s->sampling != FV_SAMPLING_UNIFORM && s->sampling != FV_SAMPLING_DENSE)
        return fv_error(FV_EINVAL, "%s: bad sampling mode %d", fn, s->sampling);
    if (s->frames < 0 || s->rate < 0 || s->short_side < 0)
        return fv_error(FV_EINVAL, "%s: negative frames, rate or short side", fn);
    if (s->dense_start != FV_DENSE_START_MMACTION && s->dense_start != FV_DENSE_START_SLOWFAST)
        return fv_error(FV_EINVAL, "%s: bad dense start %d", fn, (int)s->dense_start);
    if (s->top_k < 1 || s->top_k > FV_PREDICT_MAX_TOPK)
        return fv_error(FV_EINVAL, "%s: top-k %d outside 1..%d", fn, s->top_k, FV_PREDICT_MAX_TOPK);
    if (s->batch < 1 || s->batch > 4096)
        return fv_error(FV_EINVAL, "%s: batch %d outside 1..4096", fn, s->batch);
    return 0;
}

int fv_predict_clip_settings(const FvModel *m, const FvPredictSettings *s, FvClipSettings *cs)
{
    int ret;
    if (!m || !s || !cs)
        return fv_error(FV_EINVAL, "fv_predict_clip_settings: NULL argument");
    if ((ret = check_settings(s, "fv_predict_clip_settings")) < 0)
        return ret;
    const FvModelConfig *c = fv_model_config(m);
    fv_clip_default_settings(cs);
    cs->sample.mode = s->sampling >= 0 ? (FvSampling)s->sampling : c->sampling;
    cs->sample.num_frames = s->frames ? s->frames : c->num_frames;
    cs->sample.rate = s->rate ? s->rate : c->sampling_rate;
    cs->sample.num_views = s->temporal_views;
    cs->sample.dense_start = s->dense_start;
    cs->pre.crop_size = c->image_size;
    cs->pre.short_side = s->short_side ? s->short_side : c->short_side;
    if (cs->pre.short_side && cs->pre.short_side < cs->pre.crop_size) /* would fail every clip: say so once */
        return fv_error(FV_EINVAL, "fv_predict_clip_settings: short side %d is smaller than the model's crop size %d",
                        cs->pre.short_side, cs->pre.crop_size);
    cs->pre.crop = s->spatial_views == 3 ? FV_CROP_THREE : FV_CROP_CENTER;
    memcpy(cs->pre.mean, c->image_mean, sizeof(cs->pre.mean));
    memcpy(cs->pre.std, c->image_std, sizeof(cs->pre.std));
    return 0;
}

void fv_predict_result_free(FvPredictResult *r)
{
    if (!r)
        return;
    free(r->probs);
    free(r->logits);
    memset(r, 0, sizeof(*r));
}

/* The k highest of @p (L), highest first; ties rank the lower index first. */
static void rank(const float *p, int32_t L, int32_t k, int32_t *top)
{
    for (int32_t r = 0; r < k; r++) {
        int32_t best = -1;
        for (int32_t i = 0; i < L; i++) {
            int used = 0;
            for (int32_t q = 0; q < r && !used; q++)
                used = top[q] == i;
            if (!used && (best < 0 || p[i] > p[best]))
                best = i;
        }
        top[r] = best;
    }
}

int fv_predict_views(FvState *st, const float *views, int32_t n, int32_t views_per_clip, int32_t T, int32_t H,
                     int32_t W, const FvPredictSettings *s, FvPredictResult *r)
{
    int ret;
    if (!st || !views || !s || !r || n < 1 || views_per_clip < 1)
        return fv_error(FV_EINVAL, "fv_predict_views: bad arguments");
    if ((ret = check_settings(s, "fv_predict_views")) < 0)
        return ret;
    const int32_t L = fv_model_config(fv_state_model(st))->num_labels, V = views_per_clip;
    const int64_t total = (int64_t)n * V, view = (int64_t)T * 3 * H * W;
    const int32_t batch = (int32_t)FV_MIN((int64_t)s->batch, total);
    float *lg = malloc(sizeof(float) * (size_t)batch * (size_t)L);
    memset(r, 0, sizeof(*r) * (size_t)n);
    if (!lg)
        return fv_error(FV_ENOMEM, "fv_predict_views: out of memory");
    for (int32_t i = 0; i < n; i++) {
        r[i].num_labels = L;
        r[i].num_views = V;
        r[i].probs = calloc((size_t)L, sizeof(float));
        r[i].logits = calloc((size_t)L, sizeof(float));
        if (!r[i].probs || !r[i].logits) {
            ret = fv_error(FV_ENOMEM, "fv_predict_views: out of memory");
            goto fail;
        }
    }
    for (int64_t v0 = 0; v0 < total; v0 += batch) {
        const int32_t nb = (int32_t)FV_MIN((int64_t)batch, total - v0);
        const double t0 = fv_time_ms();
        if ((ret = fv_state_forward(st, views + v0 * view, nb, T, H, W, lg)) < 0)
            goto fail;
        const double ms = fv_time_ms() - t0;
        for (int32_t b = 0; b < nb; b++) {
            FvPredictResult *ri = &r[(v0 + b) / V];
            float *z = lg + (int64_t)b * L;
            for (int32_t i = 0; i < L; i++)
                ri->logits[i] += z[i] / V;
            fv_softmax(z, L); /* per view, then the mean of the probabilities */
            for (int32_t i = 0; i < L; i++)
                ri->probs[i] += z[i] / V;
            ri->forward_ms += ms / nb;
        }
    }
    for (int32_t i = 0; i < n; i++) {
        r[i].k = FV_MIN(s->top_k, L);
        rank(r[i].probs, L, r[i].k, r[i].top);
    }
    free(lg);
    return 0;
fail:
    free(lg);
    for (int32_t i = 0; i < n; i++)
        fv_predict_result_free(&r[i]);
    return ret;
}

int fv_predict_clip(FvState *st, const FvClip *clip, const FvPredictSettings *s, FvPredictResult *r)
{
    if (!clip || !clip->data)
        return fv_error(FV_EINVAL, "fv_predict_clip: no clip");
    return fv_predict_views(st, clip->data, 1, clip->num_tviews * clip->num_sviews, clip->T, clip->H, clip->W, s, r);
}

int fv_predict_warmup(FvState *st, const FvPredictSettings *s)
{
    FvClipSettings cs;
    int ret;
    if (!st || !s)
        return fv_error(FV_EINVAL, "fv_predict_warmup: NULL argument");
    if ((ret = fv_predict_clip_settings(fv_state_model(st), s, &cs)) < 0)
        return ret;
    const int32_t T = cs.sample.num_frames, S = cs.pre.crop_size, L = fv_model_config(fv_state_model(st))->num_labels;
    const int32_t B = FV_MIN(s->batch, s->temporal_views * s->spatial_views);
    float *x = fv_calloc((size_t)B * T * 3 * S * S, sizeof(float)), *lg = malloc(sizeof(float) * (size_t)B * L);
    ret = x && lg ? fv_state_forward(st, x, B, T, S, S, lg) : fv_error(FV_ENOMEM, "fv_predict_warmup: out of memory");
    fv_free(x);
    free(lg);
    return ret;
}

int fv_predict_file(FvState *st, const char *path, const FvPredictSettings *s, FvPredictResult *r, FvClip *clip)
{
    FvClipSettings cs;
    FvClip own = { 0 }, *c = clip ? clip : &own;
    int ret;
    if (!st || !path || !r)
        return fv_error(FV_EINVAL, "fv_predict_file: NULL argument");
    memset(r, 0, sizeof(*r));
    memset(c, 0, sizeof(*c));
    if ((ret = fv_predict_clip_settings(fv_state_model(st), s, &cs)) < 0)
        return ret;
    if ((ret = fv_clip_load(path, &cs, c)) < 0)
        return ret;
    ret = fv_predict_clip(st, c, s, r);
    if (!clip || ret < 0)
        fv_clip_free(c);
    return ret;
}

/* Sliding windows over a long video. The file is opened and indexed once; consecutive windows are grouped so
 * that the distinct frames of a group fit a memory budget, and each group is decoded in one
 * fv_video_read_rgb() call, which walks the file forwards (a seek only where it skips a whole GOP). */
enum { FV_TIMELINE_BUDGET = 256 << 20 }; /* bytes of resized RGB frames per decoding pass */

static int cmp_frame(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Re-issue the last error with the file name in front (sampling and cropping errors name functions). */
static int timeline_error(int code, const char *path)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", fv_last_error());
    return fv_error(code, "%s: %s", path, msg);
}

/* Frames of the window [start, end) s: [*f0, *f1), frame i shown at i / fps; at least one. */
static void window_frames(double start, double end, double fps, int64_t n, int64_t *f0, int64_t *f1)
{
    const double eps = 1e-6;
    int64_t a = (int64_t)ceil(start * fps - eps), b = (int64_t)ceil(end * fps - eps);
    a = FV_MAX((int64_t)0, FV_MIN(a, n - 1));
    b = FV_MIN(b, n);
    *f0 = a;
    *f1 = FV_MAX(b, a + 1);
}

int fv_predict_timeline(FvState *st, const char *path, const FvPredictSettings *s, double window_s,
                        double stride_s, FvWindowCallback cb, void *opaque, FvTimelineStats *stats)
{
    FvVideo *v = NULL;
    FvClipSettings cs;
    int64_t *idx = NULL;   // idx (W, K, T) frame indices of every window
    int64_t *uniq = NULL;  // uniq (U) distinct frames of the current group, ascending
    uint8_t *rgb = NULL;   // rgb (U, rh, rw, 3)
    uint8_t *tube = NULL;  // tube (T, rh, rw, 3) one temporal view
    float *views = NULL;   // views (K*S, T, 3, C, C)
    FvTimelineStats own = { 0 }, *ts = stats ? stats : &own;
    int ret;
    memset(ts, 0, sizeof(*ts));
    if (!st || !path || !s)
        return fv_error(FV_EINVAL, "%s: NULL argument", __func__);
    if (!(window_s > 0) || !(stride_s > 0) || window_s > 1e7 || stride_s > 1e7)
        return fv_error(FV_EINVAL, "%s: window %g s and stride %g s must be positive", __func__, window_s, stride_s);
    if ((ret = fv_predict_clip_settings(fv_state_model(st), s, &cs)) < 0)
        return ret;
    double t0 = fv_time_ms();
    if ((ret = fv_video_open(&v, path)) < 0)
        return ret;
    const FvVideoInfo info = *fv_video_info(v);
    ts->info = info;
    const int64_t n = info.nframes;
    const double fps = info.fps;
    if (!(fps > 0)) {
        ret = fv_error(FV_ENODATA, "%s: frame rate unknown: cannot place time windows", path);
        goto done;
    }
    const double dur = (double)n / fps;
    const int64_t nw64 = dur > window_s ? (int64_t)ceil((dur - window_s) / stride_s - 1e-9) + 1 : 1;
    if (nw64 > 1000000) {
        ret = fv_error(FV_EINVAL, "%s: %lld windows: use a longer stride", path, (long long)nw64);
        goto done;
    }
    const int32_t W = (int32_t)nw64, K = cs.sample.num_views, T = cs.sample.num_frames;
    const int32_t S = fv_preprocess_num_crops(cs.pre.crop), C = cs.pre.crop_size, KT = K * T;
    const int32_t short_side = cs.pre.short_side > 0 ? cs.pre.short_side : C;
    int32_t rw, rh;
    fv_preprocess_resized_size(info.width, info.height, short_side, &rw, &rh);
    if (rw < C || rh < C || rw > 16384 || rh > 16384) {
        ret = fv_error(FV_EINVAL, "%s: resized size %dx%d does not fit crop %d", path, rw, rh, C);
        goto done;
    }
    const size_t fb = (size_t)rw * rh * 3;
    const int64_t cap = FV_MAX((int64_t)KT, (int64_t)(FV_TIMELINE_BUDGET / fb));
    idx = malloc(sizeof(*idx) * (size_t)W * KT);
    const int64_t most = FV_MIN(cap, (int64_t)W * KT); /* distinct frames of a group: U <= most */
    uniq = malloc(sizeof(*uniq) * (size_t)(most + KT));
    rgb = malloc(fb * (size_t)most);
    tube = malloc(fb * (size_t)T);
    views = malloc(sizeof(float) * (size_t)K * S * T * 3 * C * C);
    if (!idx || !uniq || !rgb || !tube || !views) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory for %d windows", path, W);
        goto done;
    }
    for (int32_t w = 0; w < W; w++) {
        int64_t f0, f1;
        const double start = w * stride_s;
        window_frames(start, FV_MIN(start + window_s, dur), fps, n, &f0, &f1);
        for (int32_t k = 0; k < K; k++) {
            int64_t *p = idx + ((size_t)w * K + k) * T;
            if ((ret = fv_sample_indices(&cs.sample, f1 - f0, k, p)) < 0) {
                ret = timeline_error(ret, path);
                goto done;
            }
            for (int32_t t = 0; t < T; t++)
                p[t] += f0;
        }
    }
    ts->decode_ms += fv_time_ms() - t0;

    for (int32_t g0 = 0; g0 < W;) {
        /* the next group: as many windows as their distinct frames allow (overlapping windows share frames) */
        int32_t g1 = g0;
        int64_t U = 0;
        t0 = fv_time_ms();
        while (g1 < W && (g1 == g0 || U + KT <= cap)) {
            memcpy(uniq + U, idx + (size_t)g1 * KT, sizeof(*uniq) * (size_t)KT);
            qsort(uniq, (size_t)(U + KT), sizeof(*uniq), cmp_frame);
            int64_t u = 0;
            for (int64_t i = 0; i < U + KT; i++)
                if (u == 0 || uniq[u - 1] != uniq[i])
                    uniq[u++] = uniq[i];
            U = u;
            g1++;
        }
        if ((ret = fv_video_read_rgb(v, uniq, (int32_t)U, rw, rh, rgb)) < 0)
            goto done;
        ts->frames_decoded += fv_video_frames_decoded(v);
        ts->reads++;
        ts->decode_ms += fv_time_ms() - t0;

        for (int32_t w = g0; w < g1; w++) {
            FvWindow win = { .index = w, .start_s = w * stride_s, .num_tviews = K, .T = T };
            win.end_s = FV_MIN(win.start_s + window_s, dur);
            window_frames(win.start_s, win.end_s, fps, n, &win.first_frame, &win.end_frame);
            win.frames = idx + (size_t)w * KT;
            t0 = fv_time_ms();
            for (int32_t k = 0; k < K; k++) {
                for (int32_t t = 0; t < T; t++) {
                    const int64_t *hit = bsearch(&win.frames[k * T + t], uniq, (size_t)U, sizeof(*uniq), cmp_frame);
                    memcpy(tube + fb * t, rgb + fb * (size_t)(hit - uniq), fb);
                }
                for (int32_t sv = 0; sv < S; sv++)
                    if ((ret = fv_preprocess_crop(&cs.pre, tube, T, rw, rh, sv,
                                                  views + ((size_t)k * S + sv) * T * 3 * C * C)) < 0) {
                        ret = timeline_error(ret, path);
                        goto done;
                    }
            }
            ts->decode_ms += fv_time_ms() - t0;
            if ((ret = fv_predict_views(st, views, 1, K * S, T, C, C, s, &win.result)) < 0)
                goto done;
            ts->forward_ms += win.result.forward_ms;
            ts->num_windows++;
            ret = cb ? cb(opaque, &win) : 0;
            fv_predict_result_free(&win.result);
            if (ret < 0)
                goto done;
        }
        g0 = g1;
    }
    ret = 0;
done:
    fv_video_close(&v);
    free(idx);
    free(uniq);
    free(rgb);
    free(tube);
    free(views);
    return ret;
}
