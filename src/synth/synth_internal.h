/* Internal interface between the synthetic data set renderer (synth.c), its data set writer (synth_dataset.c)
 * and its MPEG-4/AVI encoder (synth_encode.c). */
#ifndef FV_SYNTH_INTERNAL_H
#define FV_SYNTH_INTERNAL_H

#include <stdint.h>

#include "fibvid/synth.h"

typedef struct FvSynthEncoder FvSynthEncoder;

/* Check @s (with @need_dir: an output directory is set). Returns 0 or FV_EINVAL with fv_last_error() set. */
int fv_synth_check_settings(const FvSynthSettings *s, int need_dir);

/* One clip's plan (everything drawn from its random state), rendered a frame at a time: the writer encodes each
 * frame as it is drawn instead of holding the clip. Returns 0 with the frame size and count, or a negative code. */
typedef struct FvSynthPlan FvSynthPlan;
int fv_synth_plan_open(FvSynthPlan **out, const FvSynthSettings *s, int32_t cls, int32_t clip, int32_t *w, int32_t *h,
                       int32_t *nframes);
/* Frame @i (0 <= i < nframes) as packed RGB24 (h, w, 3) into @rgb. */
void fv_synth_plan_frame(const FvSynthPlan *sp, int32_t i, uint8_t *rgb);
void fv_synth_plan_close(FvSynthPlan **sp);

/* The libavcodec build that encodes (e.g. "Lavc59.37.100"): the bytes are reproducible for one build. */
const char *fv_synth_encoder_ident(void);

/* Open @path for writing an MPEG-4 Part 2 stream in AVI: @w x @h (even), @fps frames per second, fixed
 * quantiser @qscale, keyframe every @gop frames, bit-exact and single-threaded so that the same pictures
 * give the same bytes. FFmpeg must be loaded first (fv_ffmpeg_load(), as fv_synth_run does before its workers):
 * a worker that reached a missing FFmpeg through its shims would end the process. */
int fv_synth_encoder_open(FvSynthEncoder **out, const char *path, int32_t w, int32_t h, int32_t fps,
                          int32_t qscale, int32_t gop);

/* Encode one packed RGB24 picture (h, w, 3): converted to yuv420p (BT.601, limited range) here, in
 * integers, so that no library's SIMD path can change a byte. */
int fv_synth_encoder_write(FvSynthEncoder *e, const uint8_t *rgb);

/* Flush the encoder and write the trailer (when @finish is 1), close the file and free everything;
 * sets *e to NULL. Returns the first error. */
int fv_synth_encoder_close(FvSynthEncoder **e, int finish);

#endif /* FV_SYNTH_INTERNAL_H */
