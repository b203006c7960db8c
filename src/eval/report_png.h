/* Raster pictures of evaluation reports: the confusion matrix as PNG (through FFmpeg's PNG encoder),
 * the companion of confusion.svg for viewers and pipelines that take bitmaps only. */
#ifndef FV_REPORT_PNG_H
#define FV_REPORT_PNG_H

#include <stdint.h>

/*
 * Draw the confusion matrix @p cm ((C, C + 1): rows the true class, columns the predicted class, the last
 * column "no dataset class") showing @p cols columns (C or C + 1): each cell coloured by its fraction of the
 * row (fv_colormap), empty cells white, the diagonal outlined, class indices every few rows and columns,
 * a colour bar on the right. Encodes it as PNG into *@p png (@p size bytes; free with fv_image_png_free()).
 * Returns 0 or a negative code with fv_last_error() set.
 */
int fv_report_confusion_png(const int64_t *cm, int32_t C, int32_t cols, uint8_t **png, int32_t *size);

#endif /* FV_REPORT_PNG_H */
