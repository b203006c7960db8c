/* The Fibottention mask drawing report.html (fv_report_diversity_html, fibvid/diag.h) shares with the mask
 * pictures of `fibvid masks` (masks.c). */
#ifndef FV_REPORT_H
#define FV_REPORT_H

#include <stdint.h>

#include "fibvid/diag.h"
#include "eval/image.h"

/* Draw one head's mask over @n tokens (query rows, key columns) at (@x0, @y0), @px pixels per token, from
 * its offsets @off (each one's two diagonals), in colour @col over background @bg. */
void fv_report_draw_mask(FvImage *im, int32_t x0, int32_t y0, int32_t px, int32_t n, const int32_t *off,
                         int32_t noff, const uint8_t col[3], const uint8_t bg[3]);

#endif /* FV_REPORT_H */
