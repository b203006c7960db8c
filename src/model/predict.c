/* Prediction: a clip's views through the forward pass, the softmax of each view averaged over the views
 * (MMAction2 average_clips='prob'), the mean logits and the top-k labels; the clip settings a model's
 * configuration implies. */
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
