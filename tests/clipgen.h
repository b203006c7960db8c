/* Test clips written with libavcodec/libavformat. Frame i's picture encodes i in big flat blocks that
 * survive lossy coding and resizing, so a test can read back which frame the decoder returned.
 *
 *   FvtClipSpec s;
 *   fvt_clip_spec_default(&s);            // 64x48 MPEG-4 in AVI, 60 frames, 25 fps, GOP 12
 *   s.format = "mp4"; s.codec = "libx264";
 *   fvt_clip_write("/tmp/x.mp4", &s);
 *   ... decode frame to RGB24 ...
 *   int i = fvt_clip_read_index(rgb, w, h);   // -1 when the picture is not a clipgen frame
 */
#ifndef FVT_CLIPGEN_H
#define FVT_CLIPGEN_H

#include <stdint.h>

typedef struct FvtClipSpec {
    const char *format;   /**< muxer: "avi", "mp4", "matroska", "mpegts", "h264" (raw, no timestamps); NULL = from the name */
    const char *codec;    /**< encoder: "mpeg4", "libx264", "ffv1" */
    const char *pix_fmt;  /**< encoder pixel format; NULL = yuv420p (bgr0 for ffv1). "bgr0"/"bgra" = lossless RGB with ffv1 */
    int width, height;    /**< at least 32 x 32 (16 x 16 with a picture) */
    int nframes;          /**< 1..4095 */
    int fps_num, fps_den; /**< frame rate, e.g. 30000/1001 or 7/1 */
    int gop;              /**< keyframe interval in frames (scene-cut keyframes are disabled); 0 = codec default */
    int bframes;          /**< maximum consecutive B-frames (0 = none); AVI then keeps only decode-order dts */
    int vfr;              /**< 1: irregular frame durations of 1..3 frame periods (not raw); in AVI the
                               gaps become empty "drop frame" chunks the header counts as frames */
    int64_t start_us;     /**< container start time: the muxer's output_ts_offset (as ffmpeg -output_ts_offset),
                               microseconds added to every timestamp; 0 = none (MPEG-TS adds its own delay) */
    const uint8_t *picture; /**< NULL: frame i shows its index (fvt_clip_picture); else every frame is this
                               RGB24 picture (height, width, 3), e.g. a reference picture of a test */
} FvtClipSpec;

/** 64x48 mpeg4 in AVI, yuv420p, 60 frames at 25/1 fps, GOP 12, no B-frames, constant rate. */
void fvt_clip_spec_default(FvtClipSpec *s);

/** Encode the clip to @p path. Returns 0 or a negative AVERROR code. */
int fvt_clip_write(const char *path, const FvtClipSpec *s);

/** Timestamp of frame @p i in units of 1/(fps) periods: i, or the irregular sum of durations for vfr. */
int64_t fvt_clip_frame_ticks(const FvtClipSpec *s, int i);

/** Write a file with one mono 16 kHz pcm_s16le audio stream and no video (container from the name,
 *  e.g. .wav or .mkv). Returns 0 or a negative AVERROR code. */
int fvt_audio_write(const char *path);

/** The exact RGB24 picture (h, w, 3) clipgen encodes as frame @p index. */
void fvt_clip_picture(int index, int w, int h, uint8_t *rgb);

/** Which frame an RGB24 picture (h, w, 3) shows, read from the block centres (any size down to 16x16);
 *  -1 when its check bits do not match. */
int fvt_clip_read_index(const uint8_t *rgb, int w, int h);

#endif
