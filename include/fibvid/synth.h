/* fibvid public API: a procedural action-recognition data set (`fibvid synth`). Clips of shapes that move,
 * turn, grow, bounce or blink over textured moving backgrounds with distractors, camera jitter and noise,
 * written in the official UCF101 layout as MPEG-4 Part 2 in AVI. The classes can only be told apart over
 * time; every byte follows from the seed. */
#ifndef FIBVID_SYNTH_H
#define FIBVID_SYNTH_H

#include "fibvid/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What to generate. Fill with fv_synth_default_settings(), then change fields. */
typedef struct FvSynthSettings {
    const char *out_dir;         /**< output directory, created when missing (default NULL: required by fv_synth_run) */
    int32_t     clips_per_class; /**< 2..2000 (default 40) */
    uint64_t    seed;            /**< default 1; the same seed and settings give the same bytes */
    int32_t     width, height;   /**< even, 32..1920 x 32..1080 (default 160 x 120, UCF101's 320x240 halved) */
    int32_t     fps;             /**< frames per second, 1..120 (default 25, as UCF101) */
    double      min_seconds;     /**< clip length drawn uniformly in [min, max] seconds (default 2) */
    double      max_seconds;     /**< default 4; at most 60. A clip has at least 8 frames */
    int32_t     qscale;          /**< MPEG-4 fixed quantiser 2..31, lower = better (default 4) */
    int32_t     gop;             /**< keyframe interval in frames, 1..300 (default 12) */
    int32_t     clean;           /**< 1: plain grey background, no distractors, jitter or noise (to look at
                                      or test the motions alone; default 0) */
} FvSynthSettings;

/** Fill @p s with the defaults listed on each field. */
FV_API void fv_synth_default_settings(FvSynthSettings *s);

/** Number of classes (12). */
FV_API int32_t fv_synth_num_classes(void);

/** Class name of 0-based class @p i (UCF101-style CamelCase, e.g. "MoveLeft"), in classInd.txt order
 *  (alphabetical, as UCF101); NULL when out of range. Static storage. */
FV_API const char *fv_synth_class_name(int32_t i);

/** The class that a horizontal flip turns class @p i into (MoveLeft <-> MoveRight, RotateClockwise <->
 *  RotateAnticlockwise); @p i itself for classes a horizontal flip keeps; -1 when out of range. */
FV_API int32_t fv_synth_hflip_class(int32_t i);

/** The class that playing class @p i backwards gives (MoveLeft <-> MoveRight, MoveUp <-> MoveDown, the two
 *  rotations, Grow <-> Shrink, Approach <-> Separate); @p i itself for the periodic classes (Bounce, Blink);
 *  -1 when out of range. */
FV_API int32_t fv_synth_reverse_class(int32_t i);

/** Number of frames of clip @p clip (0-based within its class) of class @p cls under @p s: drawn from the
 *  clip's own random state, so it does not depend on clips_per_class. Negative error code for bad
 *  settings or indices. */
FV_API int32_t fv_synth_clip_frames(const FvSynthSettings *s, int32_t cls, int32_t clip);

/**
 * Render clip @p clip of class @p cls as packed RGB24 frames (nframes, height, width, 3) into @p rgb,
 * a caller-owned buffer of fv_synth_clip_frames() * height * width * 3 bytes. These are the pictures
 * fv_synth_run() encodes (before lossy coding). Returns 0, or FV_EINVAL for bad settings or indices.
 */
FV_API int fv_synth_render(const FvSynthSettings *s, int32_t cls, int32_t clip, uint8_t *rgb);

/** Progress report: @p done of @p total clips written. Called from the worker threads, one call at a time. */
typedef void (*FvSynthProgress)(void *opaque, int64_t done, int64_t total);

/**
 * Write the data set into s->out_dir (created when missing, files of an earlier run overwritten):
 *  - `classInd.txt` (`1 Approach`, 1-based), `trainlist01.txt` (`Approach/v_Approach_g04_c01.avi 1`),
 *    `testlist01.txt` (path only), CRLF line ends like the official files;
 *  - `<Class>/v_<Class>_gGG_cCC.avi`: MPEG-4 Part 2 in AVI (fixed quantiser, bit-exact encoder and muxer);
 *  - `synth.json`: the settings, seed, groups, class list, `flip_pairs` (classes a horizontal flip swaps)
 *    and `reverse_pairs` (classes that play backwards as each other).
 * UCF101's group split, scaled: G = clamp(ceil(N/4), 2, 25) groups per class for N clips per class,
 * groups 1..round(7G/25) (at least 1) are the test set, the others the training set.
 * Clips are rendered in parallel (fv_set_num_threads); the output does not depend on the thread count.
 * @p progress (may be NULL) is told after each clip. Returns 0, FV_EINVAL for bad settings, or an I/O
 * error code (fv_last_error() names the file).
 */
FV_API int fv_synth_run(const FvSynthSettings *s, FvSynthProgress progress, void *opaque);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_SYNTH_H */
