/* fibvid public API: video decoding (FFmpeg), temporal sampling and spatial preprocessing —
 * everything between a file on disk and the model's input tensor. */
#ifndef FIBVID_VIDEO_H
#define FIBVID_VIDEO_H

#include "fibvid/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How frame indices are chosen from a clip (SPEC section 2). */
typedef enum FvSampling {
    FV_SAMPLING_UNIFORM = 0, /**< T equal segments, middle frame of each (random frame when training) */
    FV_SAMPLING_DENSE   = 1, /**< T frames at a fixed stride `rate`, K windows spread over the clip */
} FvSampling;

/** Where dense-sampling view k starts. */
typedef enum FvDenseStart {
    FV_DENSE_START_MMACTION = 0, /**< floor(delta*(k+0.5)/K): windows centred in K equal parts */
    FV_DENSE_START_SLOWFAST = 1, /**< floor(delta*k/K): PySlowFast (one view = frame 0) */
} FvDenseStart;

/** Spatial crops per temporal view. */
typedef enum FvCrop {
    FV_CROP_CENTER = 0, /**< one centre crop */
    FV_CROP_THREE  = 1, /**< left/centre/right (or top/centre/bottom) along the long side, PySlowFast */
} FvCrop;

/** What the demuxer found out about a file. */
typedef struct FvVideoInfo {
    int32_t width, height;  /**< coded picture size in pixels */
    int64_t nframes;        /**< frames in presentation order, counted from the packets (exact) */
    double  fps;            /**< average frame rate (0 when unknown) */
    double  duration_s;     /**< duration in seconds (0 when unknown) */
    char    codec[32];      /**< decoder name, e.g. "mpeg4", "h264" */
    int64_t nkeyframes;     /**< number of keyframes in the index */
} FvVideoInfo;

typedef struct FvVideo FvVideo;

/**
 * Open @p path, find its best video stream and build a frame index by demuxing every packet
 * (no decoding): exact frame count and keyframe positions, also for containers that store no frame
 * count (MKV) or have variable frame rates.
 * On success *@p out owns the opened file; release it with fv_video_close().
 * Returns 0, or FV_ENOENT (missing), FV_EIO (unreadable / truncated), FV_EINVAL (not a media file),
 * FV_ENODATA (no video stream or no frames); fv_last_error() names the file and the reason.
 */
FV_API int fv_video_open(FvVideo **out, const char *path);

/** Stream information of an opened video. The pointer lives as long as @p v. */
FV_API const FvVideoInfo *fv_video_info(const FvVideo *v);

/**
 * Decode the frames at presentation-order indices @p idx[0..n-1] (any order, repeats allowed,
 * each 0 <= idx < nframes) and convert each with libswscale (bilinear) to packed RGB24 of
 * @p dst_w x @p dst_h, written to @p rgb as (n, dst_h, dst_w, 3) bytes owned by the caller.
 * Seeks to the nearest preceding keyframe when that is cheaper than decoding through.
 * Returns 0 or a negative error code (FV_EIO for a decoding failure, FV_ENODATA when a frame
 * cannot be reached).
 */
FV_API int fv_video_read_rgb(FvVideo *v, const int64_t *idx, int32_t n, int32_t dst_w, int32_t dst_h,
                      uint8_t *rgb);

/** Number of frames actually decoded by the last fv_video_read_rgb() call (for measurements). */
FV_API int64_t fv_video_frames_decoded(const FvVideo *v);

/** Close the file and free everything; sets *@p v to NULL. Accepts NULL and *v == NULL. */
FV_API void fv_video_close(FvVideo **v);

/** Temporal sampling settings. */
typedef struct FvSampleSettings {
    FvSampling   mode;        /**< default FV_SAMPLING_UNIFORM */
    int32_t      num_frames;  /**< T, frames per view (default 8) */
    int32_t      rate;        /**< dense stride in native frames (default 32; unused for uniform) */
    int32_t      num_views;   /**< K temporal views (default 1) */
    FvDenseStart dense_start; /**< default FV_DENSE_START_MMACTION */
    int32_t      train;       /**< 1: random frame in each uniform segment / random dense start */
    uint64_t     seed;        /**< random state for train mode */
} FvSampleSettings;

/** Fill @p s with the defaults listed on each field. */
FV_API void fv_sample_default_settings(FvSampleSettings *s);

/**
 * Frame indices of temporal view @p view (0-based, < s->num_views) of a clip of @p nframes frames:
 * writes s->num_frames indices to @p idx. Indices past the end clamp to the last frame.
 * Returns 0, FV_EINVAL for bad settings, FV_ENODATA when nframes < 1.
 */
FV_API int fv_sample_indices(const FvSampleSettings *s, int64_t nframes, int32_t view, int64_t *idx);

/** Spatial preprocessing settings. */
typedef struct FvPreprocessSettings {
    int32_t short_side;   /**< shorter side is resized to this (default 0 = crop_size) */
    int32_t crop_size;    /**< square crop fed to the model (default 224) */
    FvCrop  crop;         /**< default FV_CROP_CENTER */
    float   mean[3];      /**< per-channel mean after x/255, RGB (default 0.45) */
    float   std[3];       /**< per-channel std (default 0.225) */
} FvPreprocessSettings;

/** Fill @p p with the defaults listed on each field. */
FV_API void fv_preprocess_default_settings(FvPreprocessSettings *p);

/** Size a (w x h) frame is resized to so that its shorter side is @p short_side (aspect kept,
 *  rounded to nearest). */
FV_API void fv_preprocess_resized_size(int32_t w, int32_t h, int32_t short_side, int32_t *rw, int32_t *rh);

/** Number of spatial views @p crop produces (1 or 3). */
FV_API int32_t fv_preprocess_num_crops(FvCrop crop);

/**
 * Crop spatial view @p view of T resized RGB24 frames (T, h, w, 3) into the model's input
 * layout (T, 3, crop, crop) as floats: (x/255 - mean[c]) / std[c].
 * Returns 0 or FV_EINVAL (crop larger than the frame, bad view).
 */
FV_API int fv_preprocess_crop(const FvPreprocessSettings *p, const uint8_t *rgb, int32_t T, int32_t w,
                       int32_t h, int32_t view, float *out);

/** Everything needed to turn a file into model input views. */
typedef struct FvClipSettings {
    FvSampleSettings     sample;
    FvPreprocessSettings pre;
    int32_t              keep_rgb; /**< 1: no float views: keep the sampled frames resized to the short side as
                                        packed RGB24 in FvClip.rgb (a training data cache crops them later);
                                        0: the float views in FvClip.data (default 0) */
} FvClipSettings;

/** Fill @p s with the defaults of its parts (fv_sample_default_settings, fv_preprocess_default_settings) and
 *  float views. */
FV_API void fv_clip_default_settings(FvClipSettings *s);

/** Model input for one clip: K temporal x S spatial views. */
typedef struct FvClip {
    int32_t  num_tviews, num_sviews; /**< K, S */
    int32_t  T, H, W;                /**< frames per view and crop size; 3 channels */
    float   *data;       /**< (K*S, T, 3, H, W); view v = k*S + s (NULL with keep_rgb) */
    uint8_t *rgb;        /**< keep_rgb only: (K, T, rgb_h, rgb_w, 3) the sampled frames, short side resized */
    int32_t  rgb_w, rgb_h;
    int64_t *frames;     /**< (K, T) frame indices used */
    FvVideoInfo info;    /**< what the decoder found */
    double   decode_ms;  /**< wall time of opening, decoding and preprocessing */
} FvClip;

/**
 * Decode, sample and preprocess @p path into @p clip (fields owned by @p clip; free with
 * fv_clip_free()). Fails with a clear fv_last_error() for missing, truncated, zero-length or
 * undecodable files, files without a video stream, and clips with no frames.
 */
FV_API int fv_clip_load(const char *path, const FvClipSettings *s, FvClip *clip);

/** Frame slots of a view that repeat a frame of an earlier slot (the clip is shorter than the sampling window:
 *  uniform sampling of T frames from fewer, or a dense window past the end); the most of any view, 0 when
 *  every slot holds a different frame. */
FV_API int32_t fv_clip_repeated_frames(const FvClip *clip);

/** Free what fv_clip_load() allocated; safe on a zeroed or already freed clip. */
FV_API void fv_clip_free(FvClip *clip);

/* ------------------------------------------------------------------------------------------------ */
/* Prefetching: one decoder thread loads the next clips (fv_clip_load) into a bounded queue while the   */
/* caller runs the model on the current one, so decoding hides behind compute.                        */
/* ------------------------------------------------------------------------------------------------ */

/** One loaded clip, or why it could not be loaded. */
typedef struct FvPrefetchItem {
    int64_t id;         /* the caller's id of the job (e.g. the list position) */
    int     status;     /* 0, or the negative code of fv_clip_load() */
    char    error[512]; /* fv_last_error() of the decoder thread when status < 0 */
    FvClip  clip;       /* valid when status == 0; owned by the caller after fv_prefetch_next() */
} FvPrefetchItem;

typedef struct FvPrefetch FvPrefetch;

/**
 * Start loading clips @p paths[0..n-1] (ids @p ids, or NULL: the positions) with settings @p s on @p workers
 * decoder threads (1..256), keeping at most @p depth (@p workers..4096) loaded or loading clips ahead of the
 * caller. Clips come back in list order whatever the number of workers. @p depth 0 (and @p workers 0) starts
 * no thread: fv_prefetch_next() then loads each clip itself (for comparisons). @p paths, @p ids and @p s must
 * outlive the queue. Returns 0 and *@p out, or FV_ENOMEM / FV_EINVAL / FV_EIO (thread creation failed).
 */
FV_API int fv_prefetch_start(FvPrefetch **out, const FvClipSettings *s, const char *const *paths, const int64_t *ids,
                      int64_t n, int32_t depth, int32_t workers);

/*
 * Take the next clip, in job order, waiting for the decoder when it is not ready yet (the time spent
 * waiting is added to fv_prefetch_wait_ms()). A clip that failed to load comes back with status < 0 and
 * its message: that is not an error of this call. Returns 1 with *@p item filled (free its clip with
 * fv_clip_free()), or 0 when every job has been taken.
 */
FV_API int fv_prefetch_next(FvPrefetch *p, FvPrefetchItem *item);

/* Milliseconds the caller has spent blocked in fv_prefetch_next() (with depth 0: loading). */
FV_API double fv_prefetch_wait_ms(const FvPrefetch *p);

/* Milliseconds the decoder spent in fv_clip_load() so far (its busy time). */
FV_API double fv_prefetch_decode_ms(FvPrefetch *p);

/* Stop the decoder after the clip it is loading, free clips not taken, join the thread and free @p p;
 * sets *@p p to NULL. Accepts NULL. */
FV_API void fv_prefetch_stop(FvPrefetch **p);

/** The FFmpeg release and library versions fibvid runs with once FFmpeg is loaded; before that (e.g. for
 *  --version), the versions it was built against and the sonames it will load. Static storage. */
FV_API const char *fv_video_describe(void);

/** FFmpeg is loaded on first use (60-90 ms on a 2-core EPYC VM: its ~130 dependent libraries). This starts the
 *  loading on a background thread, after the default matrix-product library's (a dlopen waits for any other in
 *  progress) and after starting the OpenMP team (so does a new thread). Whether it pays depends on the machine:
 *  on that VM the two threads' contention (the dynamic loader's lock, a TLB shootdown on the other CPU for each
 *  of the loader's mprotect/munmap calls) cost more than the overlap gained, so fibvid's own commands load
 *  everything on first use, in turn (README "Start-up and memory"). Optional; calling it again does nothing. */
FV_API void fv_video_preload(void);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_VIDEO_H */
