/* The training data loader: a dataset list decoded once, through the clip prefetcher, into an in-memory
 * cache of packed RGB24 frames, then served as batches.
 *
 * Training clips keep F frames (cache_frames, default 2T) at the middles of F equal segments of the clip,
 * resized so the short side is the top of the scale range. A sample is T of the F frames (one at random in
 * each of T equal segments: random temporal offsets), a random short side in the scale range and a random
 * square crop (one bilinear resample from the cached frame), a horizontal flip and time reversal where the
 * class set allows it (the label becomes the mirror / reverse partner). Validation clips keep T frames
 * decoded the way `fibvid evaluate` decodes one view (uniform middle frames, the short side, a centre crop).
 *
 * Randomness is a pure function of (seed, purpose, epoch, index) (fv_rng_stream): the shuffle of epoch e
 * uses purpose 3, clip i's augmentation in epoch e purpose 4. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fibvid/train.h"
#include "util/util.h"

enum { RNG_SHUFFLE = 3, RNG_AUGMENT = 4 };

typedef struct CachedClip {
    uint8_t *rgb;  /* (F, h, w, 3), NULL when the clip could not be read */
    int32_t w, h, F;
    int32_t label; /* dataset class */
} CachedClip;

struct FvLoader {
    FvLoaderSettings s;
    int32_t T, S, lo, hi, F;
    const FvDataset *ds;
    CachedClip *clips;
    int64_t n, ok;
    size_t bytes;
    double decode_s;
    int64_t order_epoch;  /* the epoch `order` holds, -1 none */
    int64_t *order;       /* (n) */
    int32_t *xs;          /* (S) horizontal taps: left sample */
    float *wx;            /* (S) and its weight */
    FvPreprocessSettings pre; /* validation */
};

void fv_loader_default_settings(FvLoaderSettings *s)
{
    memset(s, 0, sizeof(*s));
    s->train = 1;
    s->frames = 8;
    s->crop = 224;
    for (int c = 0; c < 3; c++) {
        s->mean[c] = 0.45f;
        s->std[c] = 0.225f;
    }
    s->seed = 1;
}

void fv_loader_close(FvLoader **pl)
{
    if (!pl || !*pl)
        return;
    FvLoader *l = *pl;
    for (int64_t i = 0; l->clips && i < l->n; i++)
        fv_free(l->clips[i].rgb);
    free(l->clips);
    free(l->order);
    free(l->xs);
    free(l->wx);
    free(l);
    *pl = NULL;
}

static int check_settings(const FvLoaderSettings *s)
{
    if (s->frames < 1 || s->frames > 4096 || s->crop < 1 || s->crop > 8192)
        return fv_error(FV_EINVAL, "fv_loader_open: %d frames of %d pixels", s->frames, s->crop);
    if (s->short_side < 0 || (s->short_side && s->short_side < s->crop))
        return fv_error(FV_EINVAL, "fv_loader_open: short side %d is smaller than the crop %d", s->short_side,
                        s->crop);
    if (s->cache_frames && (s->cache_frames < s->frames || s->cache_frames > 512))
        return fv_error(FV_EINVAL, "fv_loader_open: %d cached frames for samples of %d (%d..512)", s->cache_frames,
                        s->frames, s->frames);
    const int32_t lo = s->scale_lo ? s->scale_lo : s->crop;
    if (s->scale_lo < 0 || s->scale_hi < 0 || lo < s->crop || (s->scale_hi && s->scale_hi < lo) || s->scale_hi > 16384)
        return fv_error(FV_EINVAL, "fv_loader_open: scale %d:%d: the short side must be at least the crop size %d",
                        lo, s->scale_hi, s->crop);
    for (int c = 0; c < 3; c++)
        if (!(s->std[c] > 0.0f))
            return fv_error(FV_EINVAL, "fv_loader_open: std[%d] must be > 0", c);
    if (s->workers < 0 || s->workers > 256)
        return fv_error(FV_EINVAL, "fv_loader_open: %d decoder threads (0..256)", s->workers);
    return 0;
}

int fv_loader_open(FvLoader **out, const FvDataset *ds, const char *root, const FvLoaderSettings *s,
                   const FvLoaderCallbacks *cb)
{
    int ret;
    if (!out || !ds || !root || !s)
        return fv_error(FV_EINVAL, "fv_loader_open: NULL argument");
    *out = NULL;
    if ((ret = check_settings(s)) < 0)
        return ret;
    FvLoader *l = calloc(1, sizeof(*l));
    if (!l)
        return fv_error(FV_ENOMEM, "fv_loader_open: out of memory");
    l->s = *s;
    l->ds = ds;
    l->T = s->frames;
    l->S = s->crop;
    l->lo = s->scale_lo ? s->scale_lo : l->S;
    l->hi = s->scale_hi ? s->scale_hi : (int32_t)(l->S * 1.25 + 0.5);
    l->F = s->train ? (s->cache_frames ? s->cache_frames : 2 * l->T) : l->T;
    l->n = ds->num_entries;
    l->order_epoch = -1;
    fv_preprocess_default_settings(&l->pre);
    l->pre.crop_size = l->S;
    memcpy(l->pre.mean, s->mean, sizeof(l->pre.mean));
    memcpy(l->pre.std, s->std, sizeof(l->pre.std));

    char **paths = calloc((size_t)(l->n ? l->n : 1), sizeof(char *));
    l->clips = calloc((size_t)(l->n ? l->n : 1), sizeof(CachedClip));
    l->order = malloc(sizeof(int64_t) * (size_t)(l->n ? l->n : 1));
    l->xs = malloc(sizeof(int32_t) * (size_t)l->S);
    l->wx = malloc(sizeof(float) * (size_t)l->S);
    if (!paths || !l->clips || !l->order || !l->xs || !l->wx) {
        ret = fv_error(FV_ENOMEM, "fv_loader_open: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < l->n; i++) {
        const char *p = ds->entries[i].path;
        if (!(paths[i] = p[0] == '/' ? strdup(p) : fv_path_join(root, p))) {
            ret = fv_error(FV_ENOMEM, "fv_loader_open: out of memory");
            goto done;
        }
        l->clips[i].label = ds->entries[i].label;
    }

    /* the frames of every clip, decoded in parallel and taken in list order */
    FvClipSettings cs;
    fv_clip_default_settings(&cs);
    cs.sample.mode = FV_SAMPLING_UNIFORM;
    cs.sample.num_frames = l->F;
    cs.pre.crop_size = l->S;
    cs.pre.short_side = s->train ? l->hi : (s->short_side ? s->short_side : l->S);
    cs.keep_rgb = 1;
    const int32_t workers = s->workers ? s->workers : FV_MAX(1, fv_num_threads());
    const double t0 = fv_time_ms();
    FvPrefetch *pf = NULL;
    if ((ret = fv_prefetch_start(&pf, &cs, (const char *const *)paths, NULL, l->n, 2 * workers, workers)) < 0)
        goto done;
    FvPrefetchItem it;
    int64_t done_n = 0;
    while (fv_prefetch_next(pf, &it) == 1) {
        CachedClip *c = &l->clips[it.id];
        if (it.status == FV_ENOMEM) {
            fv_prefetch_stop(&pf);
            ret = fv_error(FV_ENOMEM, "%s: out of memory", paths[it.id]);
            goto done;
        }
        if (it.status < 0) {
            if (cb && cb->skipped)
                cb->skipped(cb->user, paths[it.id], it.error);
        } else {
            c->rgb = it.clip.rgb; /* taken over */
            it.clip.rgb = NULL;
            c->w = it.clip.rgb_w;
            c->h = it.clip.rgb_h;
            c->F = it.clip.T;
            l->ok++;
            l->bytes += (size_t)c->F * c->w * c->h * 3;
        }
        fv_clip_free(&it.clip);
        done_n++;
        if (cb && cb->progress && (done_n % 16 == 0 || done_n == l->n))
            cb->progress(cb->user, done_n, l->n);
    }
    fv_prefetch_stop(&pf);
    l->decode_s = (fv_time_ms() - t0) / 1e3;
    ret = 0;
done:
    for (int64_t i = 0; paths && i < l->n; i++)
        free(paths[i]);
    free(paths);
    if (ret < 0)
        fv_loader_close(&l);
    *out = l;
    return ret;
}

int64_t fv_loader_num_clips(const FvLoader *l)
{
    return l->n;
}

int64_t fv_loader_num_ok(const FvLoader *l)
{
    return l->ok;
}

size_t fv_loader_bytes(const FvLoader *l)
{
    return l->bytes;
}

double fv_loader_decode_s(const FvLoader *l)
{
    return l->decode_s;
}

int64_t fv_loader_steps_per_epoch(const FvLoader *l, int32_t batch)
{
    return batch < 1 ? 0 : (l->n + batch - 1) / batch;
}

/* ---------------------------------------------------------------------------------------------------- */
/* augmentation                                                                                          */

/* One augmented training sample into @out (T, 3, S, S): random temporal offsets, random short side in
 * [lo, hi] and crop, optional flip, optional time reversal. The frames were cached at short side hi. */
static void augment(FvLoader *l, const CachedClip *c, int flip, int reverse, uint64_t *rs, float *out)
{
    const int32_t T = l->T, S = l->S, lo = l->lo, hi = l->hi;
    int32_t *xs = l->xs;
    float *wx = l->wx;
    const int32_t shortc = FV_MIN(c->w, c->h);
    const double target = lo + fv_rng_unit(rs) * (hi - lo + 1); /* short side the frame is scaled to */
    double r = (double)S * shortc / FV_MIN(target, (double)hi);  /* crop side in cached pixels */
    if (r > shortc)
        r = shortc;
    const double x0 = fv_rng_unit(rs) * (c->w - r), y0 = fv_rng_unit(rs) * (c->h - r), step = r / S;
    /* horizontal taps once for all rows and frames: xs = left sample, wx = its weight's complement */
    for (int32_t ox = 0; ox < S; ox++) {
        double sx = x0 + (ox + 0.5) * step - 0.5;
        sx = sx < 0 ? 0 : sx > c->w - 1 ? c->w - 1 : sx;
        int32_t ix = (int32_t)sx;
        if (ix > c->w - 2)
            ix = c->w - 2 < 0 ? 0 : c->w - 2;
        xs[flip ? S - 1 - ox : ox] = ix;
        wx[flip ? S - 1 - ox : ox] = (float)(sx - ix);
    }
    float scale[3], bias[3];
    for (int ch = 0; ch < 3; ch++) {
        scale[ch] = 1.0f / (255.0f * l->s.std[ch]);
        bias[ch] = -l->s.mean[ch] / l->s.std[ch];
    }
    const double seg = (double)c->F / T;
    const size_t plane = (size_t)S * S;
    for (int32_t t = 0; t < T; t++) {
        int32_t fi = (int32_t)(seg * t + fv_rng_unit(rs) * seg);
        fi = fi >= c->F ? c->F - 1 : fi;
        const uint8_t *fr = c->rgb + (size_t)fi * c->w * c->h * 3;
        float *o = out + (size_t)(reverse ? T - 1 - t : t) * 3 * plane;
        for (int32_t oy = 0; oy < S; oy++) {
            double sy = y0 + (oy + 0.5) * step - 0.5;
            sy = sy < 0 ? 0 : sy > c->h - 1 ? c->h - 1 : sy;
            int32_t iy = (int32_t)sy;
            if (iy > c->h - 2)
                iy = c->h - 2 < 0 ? 0 : c->h - 2;
            const float fy = (float)(sy - iy);
            const uint8_t *r0 = fr + (size_t)iy * c->w * 3, *r1 = c->h > 1 ? r0 + (size_t)c->w * 3 : r0;
            for (int32_t ox = 0; ox < S; ox++) {
                const int32_t ix = xs[ox], ix1 = c->w > 1 ? ix + 1 : ix;
                const float fx = wx[ox];
                for (int ch = 0; ch < 3; ch++) {
                    const float a = r0[ix * 3 + ch] + fx * (r0[ix1 * 3 + ch] - r0[ix * 3 + ch]);
                    const float b = r1[ix * 3 + ch] + fx * (r1[ix1 * 3 + ch] - r1[ix * 3 + ch]);
                    o[ch * plane + (size_t)oy * S + ox] = (a + fy * (b - a)) * scale[ch] + bias[ch];
                }
            }
        }
    }
}

int fv_loader_batch_part(FvLoader *l, int64_t epoch, int64_t step, int32_t batch, int32_t part, int32_t parts,
                         float *clips, int32_t *labels, int32_t *n, int32_t *total)
{
    if (!l || !clips || !labels || !n || batch < 1 || epoch < 0 || step < 0 || !l->s.train || parts < 1 ||
        part < 0 || part >= parts)
        return fv_error(FV_EINVAL, "fv_loader_batch: bad arguments");
    *n = 0;
    if (l->order_epoch != epoch) {
        /* this epoch's order: Fisher-Yates from the epoch's own random state */
        uint64_t rs = fv_rng_stream(l->s.seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
        for (int64_t i = 0; i < l->n; i++)
            l->order[i] = i;
        for (int64_t i = l->n - 1; i > 0; i--) {
            const int64_t j = fv_rng_below(&rs, i + 1), t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
        l->order_epoch = epoch;
    }
    /* the step's readable clips, in order; this part is the slice [m * part / parts, m * (part + 1) / parts) */
    const int64_t end = FV_MIN((step + 1) * batch, l->n);
    int64_t m = 0;
    for (int64_t pos = step * batch; pos < end; pos++)
        m += l->clips[l->order[pos]].rgb != NULL;
    const int64_t lo = m * part / parts, hi = m * (part + 1) / parts;
    if (total)
        *total = (int32_t)m;
    const size_t clip_floats = (size_t)l->T * 3 * l->S * l->S;
    int64_t k = 0;
    for (int64_t pos = step * batch; pos < end && k < hi; pos++) {
        const CachedClip *c = &l->clips[l->order[pos]];
        if (!c->rgb || k++ < lo)
            continue;
        uint64_t cs = fv_rng_stream(l->s.seed, RNG_AUGMENT, (uint64_t)epoch, (uint64_t)l->order[pos]);
        const int flip = l->s.flip_to && l->s.flip_to[c->label] >= 0 && (fv_rng_next(&cs) >> 63);
        int32_t label = flip ? l->s.flip_to[c->label] : c->label;
        /* a time-reversed clip is its reverse partner (flips and reversal commute on the labels) */
        const int rev = l->s.reverse_to && l->s.reverse_to[label] >= 0 && (fv_rng_next(&cs) >> 63);
        label = rev ? l->s.reverse_to[label] : label;
        augment(l, c, flip, rev, &cs, clips + (size_t)*n * clip_floats);
        labels[(*n)++] = label;
    }
    return 0;
}

int fv_loader_batch(FvLoader *l, int64_t epoch, int64_t step, int32_t batch, float *clips, int32_t *labels,
                    int32_t *n)
{
    return fv_loader_batch_part(l, epoch, step, batch, 0, 1, clips, labels, n, NULL);
}

int fv_loader_clip_ok(const FvLoader *l, int64_t i)
{
    return l && i >= 0 && i < l->n && l->clips[i].rgb != NULL;
}

int fv_loader_view(const FvLoader *l, int64_t i, float *out, int32_t *label)
{
    if (!l || !out || !label || i < 0 || i >= l->n)
        return fv_error(FV_EINVAL, "fv_loader_view: bad arguments");
    const CachedClip *c = &l->clips[i];
    if (!c->rgb)
        return 0;
    int ret = fv_preprocess_crop(&l->pre, c->rgb, FV_MIN(c->F, l->T), c->w, c->h, 0, out);
    if (ret < 0)
        return ret;
    *label = c->label;
    return 1;
}

/* ---------------------------------------------------------------------------------------------------- */
/* class maps of synthetic data                                                                          */

int fv_loader_class_map(const char *path, const FvDataset *ds, const char *pairs_key, const char *keep_key,
                        int32_t *to)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    int ret = 0;
    for (int32_t c = 0; c < ds->num_classes; c++)
        to[c] = -1;
    if (!root)
        return fv_error(FV_EINVAL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    const json_t *pairs = json_object_get(root, pairs_key), *keep = keep_key ? json_object_get(root, keep_key) : NULL;
    if (!json_is_array(pairs) || (keep && !json_is_array(keep))) {
        ret = fv_error(FV_EINVAL, "%s: no \"%s\" array", path, pairs_key);
        goto done;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(keep, i, v) {
        for (int32_t c = 0; json_is_string(v) && c < ds->num_classes; c++)
            if (!strcmp(ds->classes[c], json_string_value(v)))
                to[c] = c;
    }
    json_array_foreach(pairs, i, v) {
        const char *a = json_string_value(json_array_get(v, 0)), *b = json_string_value(json_array_get(v, 1));
        if (json_array_size(v) != 2 || !a || !b) {
            ret = fv_error(FV_EINVAL, "%s: %s[%zu] is not a pair of class names", path, pairs_key, i);
            goto done;
        }
        int32_t ia = -1, ib = -1;
        for (int32_t c = 0; c < ds->num_classes; c++) {
            if (!strcmp(ds->classes[c], a))
                ia = c;
            if (!strcmp(ds->classes[c], b))
                ib = c;
        }
        /* a pair with a class that is not in the data: its partner has no class to become */
        if (ia >= 0 && ib >= 0) {
            to[ia] = ib;
            to[ib] = ia;
        } else if (ia >= 0) {
            to[ia] = -1;
        } else if (ib >= 0) {
            to[ib] = -1;
        }
    }
done:
    json_decref(root);
    return ret;
}
