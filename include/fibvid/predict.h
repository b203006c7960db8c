/* fibvid public API: prediction — the view-averaged class probabilities and top-k labels of a clip, with the
 * clip settings (sampling, frames, crop, normalisation) derived from the model's configuration. This is what
 * `fibvid classify`, `evaluate`, `diversity` and training's validation run. */
#ifndef FIBVID_PREDICT_H
#define FIBVID_PREDICT_H

#include "fibvid/common.h"
#include "fibvid/model.h"
#include "fibvid/video.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most labels a result ranks. */
#define FV_PREDICT_MAX_TOPK 64

/** How clips are turned into views: the model's configuration, with these overrides. */
typedef struct FvPredictSettings {
    int32_t      temporal_views; /**< K temporal views per clip, 1..64 (default 1) */
    int32_t      spatial_views;  /**< 1 (centre crop) or 3 (left/centre/right) (default 1) */
    int32_t      sampling;       /**< -1: the model's (default); else an FvSampling */
    int32_t      frames;         /**< frames per view; 0: the model's num_frames (default) */
    int32_t      rate;           /**< dense sampling stride; 0: the model's (default) */
    int32_t      short_side;     /**< short side before cropping; 0: the model's, else the crop size (default) */
    FvDenseStart dense_start;    /**< where dense views start (default FV_DENSE_START_MMACTION) */
    int32_t      top_k;          /**< labels ranked, 1..FV_PREDICT_MAX_TOPK (default 5) */
    int32_t      batch;          /**< views per forward pass, 1..4096 (default 1: least memory) */
} FvPredictSettings;

/** Fill @p s with the defaults listed on each field. */
FV_API void fv_predict_default_settings(FvPredictSettings *s);

/** Check @p s for @p m and derive the clip settings: crop = the model's image_size, mean and std from its
 *  config, the rest as @p s says. Returns 0 or FV_EINVAL with fv_last_error() naming the bad value. */
FV_API int fv_predict_clip_settings(const FvModel *m, const FvPredictSettings *s, FvClipSettings *cs);

/** One forward pass on zeros in the shape the first batch of a clip takes under @p s (views, frames, crop): the
 *  state's buffers, the thread pool, the products' generated kernels and the weights' pages are ready before the
 *  first clip (for a service that must answer its first request fast). Once per state: later clips of that shape
 *  are warm anyway.
 *  Call it before attaching diagnostics (it would count as a clip). Returns 0 or a negative FvError. */
FV_API int fv_predict_warmup(FvState *st, const FvPredictSettings *s);

/** The prediction of one clip. */
typedef struct FvPredictResult {
    int32_t num_labels;
    float  *probs;                     /**< (num_labels) softmax of each view, averaged over the views
                                            (MMAction2 average_clips='prob'); owned, see fv_predict_result_free */
    float  *logits;                    /**< (num_labels) mean of the views' logits; owned */
    int32_t num_views;
    int32_t k;                         /**< entries of @p top: min(top_k, num_labels) */
    int32_t top[FV_PREDICT_MAX_TOPK];  /**< label indices by probability, highest first; ties: lower index first */
    double  forward_ms;                /**< wall time of the forward passes */
} FvPredictResult;

/** Free what a prediction allocated and zero @p r. Accepts a zeroed @p r. */
FV_API void fv_predict_result_free(FvPredictResult *r);

/**
 * Predict @p n clips whose views are stored one after the other in @p views ((n * views_per_clip, T, 3, H, W)
 * preprocessed floats, clip i's views first), running @p s->batch views per forward pass on @p st.
 * @p r: @p n results (filled; free each with fv_predict_result_free()). Returns 0 or a negative code.
 */
FV_API int fv_predict_views(FvState *st, const float *views, int32_t n, int32_t views_per_clip, int32_t T, int32_t H,
                     int32_t W, const FvPredictSettings *s, FvPredictResult *r);

/** Predict a clip loaded by fv_clip_load() (all its views). Returns 0 or a negative code. */
FV_API int fv_predict_clip(FvState *st, const FvClip *clip, const FvPredictSettings *s, FvPredictResult *r);

/**
 * Decode, sample and preprocess @p path as fv_predict_clip_settings() says for the state's model and predict
 * it. When @p clip is not NULL it receives the loaded clip (free with fv_clip_free()), e.g. to show its
 * frames. Returns 0, an input error code (fv_last_error() names the file and the reason) or a runtime code.
 */
FV_API int fv_predict_file(FvState *st, const char *path, const FvPredictSettings *s, FvPredictResult *r, FvClip *clip);

/** One window of a sliding-window prediction over a long video (fv_predict_timeline()). */
typedef struct FvWindow {
    int32_t         index;        /**< 0, 1, ... in time order */
    double          start_s;      /**< window start: index * stride, in seconds from the first frame */
    double          end_s;        /**< start + window, cut at the end of the video */
    int64_t         first_frame;  /**< the window holds frames [first_frame, end_frame) (times i / fps) */
    int64_t         end_frame;
    int32_t         num_tviews;   /**< K temporal views ... */
    int32_t         T;            /**< ... of T frames each, sampled inside the window */
    const int64_t  *frames;       /**< (K, T) frame indices used; valid during the callback only */
    FvPredictResult result;       /**< the window's prediction; valid during the callback only (the callee frees it) */
} FvWindow;

/** Called once per window, in time order, right after its forward passes (e.g. to read a diagnostics
 *  collector attached to the state and reset it). A negative return stops fv_predict_timeline() with that code. */
typedef int (*FvWindowCallback)(void *opaque, const FvWindow *w);

/** What fv_predict_timeline() did. */
typedef struct FvTimelineStats {
    int32_t     num_windows;
    int64_t     frames_decoded; /**< frames the decoder produced over all windows (each file is opened once) */
    int32_t     reads;          /**< decoding passes, one per group of consecutive windows */
    double      decode_ms;      /**< opening, indexing, decoding and preprocessing */
    double      forward_ms;     /**< forward passes */
    FvVideoInfo info;           /**< the video */
} FvTimelineStats;

/**
 * Slide a window of @p window_s seconds by @p stride_s seconds over the whole of @p path and predict each
 * window as a clip of its own (K x S views as @p s says, the frames sampled inside the window). Window i
 * covers [i * stride, i * stride + window), the last one is cut at the end of the video and ends there;
 * a video shorter than the window gives one window. Times are frame index / average frame rate. The file
 * is opened and indexed once and decoded in a streaming way: the frames of consecutive windows are decoded
 * in one pass (groups bounded to about 256 MiB of frames), never once per window. @p cb receives every
 * window; @p stats (may be NULL) what was done. Returns 0, an input error code (fv_last_error() names the
 * file and the reason), FV_EINVAL for bad window settings, a runtime code, or what @p cb returned.
 */
FV_API int fv_predict_timeline(FvState *st, const char *path, const FvPredictSettings *s, double window_s,
                               double stride_s, FvWindowCallback cb, void *opaque, FvTimelineStats *stats);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_PREDICT_H */
