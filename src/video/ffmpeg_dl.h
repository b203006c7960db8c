/* FFmpeg loaded on first use (ffmpeg_dl.c): libfibvid.so does not link the FFmpeg libraries. */
#ifndef FV_VIDEO_FFMPEG_DL_H
#define FV_VIDEO_FFMPEG_DL_H

/* Load FFmpeg now (once; later calls wait for a load in progress). 0, or -ELIBACC with fv_last_error() saying
 * which library or function is missing. */
int fv_ffmpeg_load(void);

/* 1 once FFmpeg is loaded. */
int fv_ffmpeg_loaded(void);

/* Milliseconds the loading took (0 before it finished). */
double fv_ffmpeg_load_ms(void);

#endif
