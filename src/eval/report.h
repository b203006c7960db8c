/* The head-diversity report (report.html: one self-contained file, inline SVG and base64 PNG, no network)
 * and the Fibottention mask drawing it shares with `fibvid masks`. */
#ifndef FV_REPORT_H
#define FV_REPORT_H

#include <stdint.h>

#include "fibvid/diag.h"
#include "eval/image.h"

/* A clip shown under the cls-attention heatmaps: one frame as the model saw it. */
typedef struct FvReportClip {
    const char *name;
    int32_t w, h;
    const uint8_t *rgb; /* (h, w, 3) */
} FvReportClip;

/* One attention setting (e.g. "dense", "fib"): its mean and spread over the clips, and the per-clip results
 * of the clips shown (for their cls-attention maps). */
typedef struct FvReportSetting {
    const char *name;
    const FvDiagResult *mean, *std;   /* std may be NULL */
    const FvDiagResult *const *clip;  /* (num_clips) or NULL */
} FvReportSetting;

/* Write the report to @path: a summary of mean head similarity per layer for every setting side by side,
 * then per layer the head-pair heatmaps (CKA, cosine, Jaccard, Frobenius), per-head bars (entropy, distance,
 * density), the masks and the cls-attention heatmaps over the clips' frames. Every setting must have the
 * same number of layers and heads. @title and @subtitle are plain text (escaped here).
 * Returns 0 or a negative code with fv_last_error() set. */
int fv_report_diversity_html(const char *path, const char *title, const char *subtitle, const FvReportClip *clips,
                             int32_t num_clips, const FvReportSetting *sets, int32_t num_sets);

/* Draw one head's mask over @n tokens (query rows, key columns) at (@x0, @y0), @px pixels per token, from
 * its offsets @off (each one's two diagonals), in colour @col over background @bg. */
void fv_report_draw_mask(FvImage *im, int32_t x0, int32_t y0, int32_t px, int32_t n, const int32_t *off,
                         int32_t noff, const uint8_t col[3], const uint8_t bg[3]);

#endif /* FV_REPORT_H */
