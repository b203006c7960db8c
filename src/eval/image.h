/* Small raster images for reports (mask pictures, heatmaps, confusion matrices): drawing rectangles,
 * a perceptual colour map, and PNG output through FFmpeg's own PNG encoder (no other dependency). */
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
/* Encode as PNG into @path. 0 or a negative code with fv_last_error() set. */
int fv_image_write_png(const FvImage *im, const char *path);
/* Encode as PNG into memory (caller frees *data with av_free... use fv_image_png_free). */
int fv_image_encode_png(const FvImage *im, uint8_t **data, int32_t *size);
void fv_image_png_free(uint8_t *data);
/* Viridis-like colour of v in [0, 1] (clamped). */
void fv_colormap(float v, uint8_t rgb[3]);

#endif /* FV_IMAGE_H */
