/* Temporal sampling (SPEC section 2): which frame indices of a clip feed each temporal view.
 * Integer arithmetic throughout, so indices equal the float formulas of MMAction2/PySlowFast exactly
 * (the float quotient of small integers never rounds across an integer boundary). */
#include "util/util.h"

#include "fibvid/video.h"

void fv_sample_default_settings(FvSampleSettings *s)
{
    if (!s)
        return;
    s->mode = FV_SAMPLING_UNIFORM;
    s->num_frames = 8;
    s->rate = 32;
    s->num_views = 1;
    s->dense_start = FV_DENSE_START_MMACTION;
    s->train = 0;
    s->seed = 0;
}

/* A random stream per (seed, view): views of one clip draw independently but reproducibly. */
static uint64_t view_state(const FvSampleSettings *s, int32_t view)
{
    uint64_t st = s->seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(view + 1));
    (void)fv_rand_u64(&st);
    return st;
}

static int64_t rand_below(uint64_t *st, int64_t n)
{
    return n > 1 ? (int64_t)(fv_rand_u64(st) % (uint64_t)n) : 0;
}

/*
 * Uniform (TSN / HF style). Test mode, one view: frame (int)((i + 0.5) * n / T), the middle of
 * segment i (MMAction2 SampleFrames(clip_len=1, num_clips=T, test_mode=True)).
 * K > 1 views: MMAction2's own multi-clip uniform test mode draws seeded random offsets, which cannot
 * be reproduced outside numpy, so we keep TSN's segments of the whole clip and shift view k by
 * (k + 0.5) / K of a segment: (int)((i + (k + 0.5) / K) * n / T). Every view stays inside each segment,
 * the views are evenly spread, and K = 1 is exactly the single-view formula.
 * Train mode: a random frame of segment [floor(i*n/T), floor((i+1)*n/T)).
 */
static void sample_uniform(const FvSampleSettings *s, int64_t n, int32_t view, int64_t *idx)
{
    const int64_t T = s->num_frames, K = s->num_views;
    uint64_t st = view_state(s, view);
    for (int64_t i = 0; i < T; i++) {
        int64_t f;
        if (s->train) {
            int64_t lo = i * n / T, hi = (i + 1) * n / T;
            f = hi > lo ? lo + rand_below(&st, hi - lo) : lo;
        } else {
            /* (i + (k + 0.5)/K) * n / T == (2(iK + k) + 1) n / (2TK) */
            f = (2 * (i * K + view) + 1) * n / (2 * T * K);
        }
        idx[i] = FV_MIN(f, n - 1);
    }
}

/* Dense (TimeSformer K400): a window of T*rate frames; view k starts at floor(delta*(k+0.5)/K)
 * (MMAction2) or floor(delta*k/K) (PySlowFast), delta = max(n - T*rate, 0); train: random start. */
static void sample_dense(const FvSampleSettings *s, int64_t n, int32_t view, int64_t *idx)
{
    const int64_t T = s->num_frames, K = s->num_views, rate = s->rate;
    int64_t delta = FV_MAX(n - T * rate, 0);
    int64_t start;
    if (s->train) {
        uint64_t st = view_state(s, view);
        start = rand_below(&st, delta + 1);
    } else if (s->dense_start == FV_DENSE_START_SLOWFAST) {
        start = delta * view / K;
    } else {
        start = delta * (2 * (int64_t)view + 1) / (2 * K);
    }
    for (int64_t i = 0; i < T; i++)
        idx[i] = FV_MIN(start + i * rate, n - 1);
}

int fv_sample_indices(const FvSampleSettings *s, int64_t nframes, int32_t view, int64_t *idx)
{
    if (!s || !idx)
        return fv_error(FV_EINVAL, "%s: NULL argument", __func__);
    if (s->mode != FV_SAMPLING_UNIFORM && s->mode != FV_SAMPLING_DENSE)
        return fv_error(FV_EINVAL, "%s: unknown sampling mode %d", __func__, (int)s->mode);
    if (s->num_frames < 1 || s->num_frames > 4096)
        return fv_error(FV_EINVAL, "%s: num_frames %d out of range 1..4096", __func__, s->num_frames);
    if (s->num_views < 1 || s->num_views > 4096)
        return fv_error(FV_EINVAL, "%s: num_views %d out of range 1..4096", __func__, s->num_views);
    if (s->mode == FV_SAMPLING_DENSE && (s->rate < 1 || s->rate > 65536))
        return fv_error(FV_EINVAL, "%s: sampling rate %d out of range 1..65536", __func__, s->rate);
    if (s->mode == FV_SAMPLING_DENSE && s->dense_start != FV_DENSE_START_MMACTION &&
        s->dense_start != FV_DENSE_START_SLOWFAST)
        return fv_error(FV_EINVAL, "%s: unknown dense start %d", __func__, (int)s->dense_start);
    if (view < 0 || view >= s->num_views)
        return fv_error(FV_EINVAL, "%s: view %d out of range 0..%d", __func__, view, s->num_views - 1);
    /* bounds keep every product below 2^63 */
    if (nframes < 1)
        return fv_error(FV_ENODATA, "%s: clip has no frames", __func__);
    if (nframes > ((int64_t)1 << 32))
        return fv_error(FV_EINVAL, "%s: %lld frames is too many", __func__, (long long)nframes);

    if (s->mode == FV_SAMPLING_UNIFORM)
        sample_uniform(s, nframes, view, idx);
    else
        sample_dense(s, nframes, view, idx);
    return 0;
}
