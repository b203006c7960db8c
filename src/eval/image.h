/* Small raster images for reports (mask pictures, heatmaps, confusion matrices): drawing rectangles and text
 * (a built-in bitmap font), a perceptual colour map, and PNG output through FFmpeg's own PNG encoder (no other
 * dependency). */
#ifndef FV_IMAGE_H
#define FV_IMAGE_H

#include <stdint.h>

typedef struct FvImage {
    int32_t w, h;
    uint8_t *rgb; /* (h, w, 3) */
} FvImage;

/* Allocate a w x h image filled with colour (r, g, b). 0 or FV_ENOMEM / FV_EINVAL. */
int fv_image_alloc(FvImage *im, int32_t w, int32_t h, uint8_t r, uint8_t g, uint8_t b);
void fv_image_free(FvImage *im);
/* Fill a rectangle, clipped to the image. */
void fv_image_fill_rect(FvImage *im, int32_t x, int32_t y, int32_t w, int32_t h, const uint8_t rgb[3]);

/* The built-in font: glyphs 5 pixels wide on a 6-pixel advance, 7 rows above the baseline and 2 below, every
 * size an integer multiple (@scale >= 1) of that. ASCII, plus U+2026 (ellipsis) and dashes; any other character
 * is drawn as an empty box. Text is UTF-8, one glyph per code point. */
#define FV_FONT_ADVANCE 6 /* pixels from one glyph to the next, scale 1 */
#define FV_FONT_ASCENT 7  /* rows above the baseline (capitals, digits) */
#define FV_FONT_HEIGHT 9  /* rows with the descenders */

/* Width in pixels of @text drawn at @scale: glyphs * 6 * scale - scale (0 for ""). */
int32_t fv_image_text_width(const char *text, int32_t scale);
/* Draw @text left to right, its top-left corner (the top of the capitals) at (x, y), clipped to the image.
 * Returns the width drawn. */
int32_t fv_image_text(FvImage *im, int32_t x, int32_t y, int32_t scale, const uint8_t rgb[3], const char *text);
/* As fv_image_text, in at most @max_w pixels: a longer text is cut and ends in an ellipsis (nothing is drawn
 * when not even one glyph and the ellipsis fit). Returns the width drawn. */
int32_t fv_image_text_fit(FvImage *im, int32_t x, int32_t y, int32_t scale, const uint8_t rgb[3], const char *text,
                          int32_t max_w);
/* As fv_image_text_fit, turned a quarter turn counter-clockwise so that it reads upwards from (x, y): the text
 * starts at row y - 1 and goes up; its capitals span columns x .. x + 7 * scale - 1 (descenders to the right).
 * Returns the length drawn. */
int32_t fv_image_text_up(FvImage *im, int32_t x, int32_t y, int32_t scale, const uint8_t rgb[3], const char *text,
                         int32_t max_w);

/* Encode as PNG into @path. 0 or a negative code with fv_last_error() set. */
int fv_image_write_png(const FvImage *im, const char *path);
/* Encode as PNG into memory (caller frees *data with av_free... use fv_image_png_free). */
int fv_image_encode_png(const FvImage *im, uint8_t **data, int32_t *size);
void fv_image_png_free(uint8_t *data);
/* Viridis-like colour of v in [0, 1] (clamped). */
void fv_colormap(float v, uint8_t rgb[3]);

#endif /* FV_IMAGE_H */
