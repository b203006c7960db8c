/* Internal interface between the synthetic data set renderer (synth.c) and its MPEG-4/AVI writer
 * (synth_encode.c). */
#ifndef FV_SYNTH_INTERNAL_H
#define FV_SYNTH_INTERNAL_H

#include <stdint.h>

typedef struct FvSynthEncoder FvSynthEncoder;

/* The libavcodec build that encodes (e.g. "Lavc59.37.100"): the bytes are reproducible for one build. */
const char *fv_synth_encoder_ident(void);

/* Open @path for writing an MPEG-4 Part 2 stream in AVI: @w x @h (even), @fps frames per second, fixed
 * quantiser @qscale, keyframe every @gop frames, bit-exact and single-threaded so that the same pictures
 * give the same bytes. */
int fv_synth_encoder_open(FvSynthEncoder **out, const char *path, int32_t w, int32_t h, int32_t fps,
                          int32_t qscale, int32_t gop);

/* Encode one packed RGB24 picture (h, w, 3): converted to yuv420p (BT.601, limited range) here, in
 * integers, so that no library's SIMD path can change a byte. */
int fv_synth_encoder_write(FvSynthEncoder *e, const uint8_t *rgb);

/* Flush the encoder and write the trailer (when @finish is 1), close the file and free everything;
 * sets *e to NULL. Returns the first error. */
int fv_synth_encoder_close(FvSynthEncoder **e, int finish);

#endif /* FV_SYNTH_INTERNAL_H */
