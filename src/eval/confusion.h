/* The confusion matrix of an evaluation as an SVG and a PNG picture (confusion.c), for evaldir.c. */
#ifndef FV_CONFUSION_H
#define FV_CONFUSION_H

#include <stdint.h>

#include "fibvid/eval.h"
#include "util/util.h"

typedef struct FvConfusion {
    const int64_t *cm;        /* (C, C + 1): rows the true class, columns the predicted one, the last column
                                 "no dataset class" */
    int32_t num_classes;      /* C */
    int32_t cols;             /* columns shown: C, or C + 1 when some model label is no dataset class */
    const char *const *names; /* (C) class names */
    const char *model, *dataset; /* for the title */
    const FvMetricsSummary *summary;
} FvConfusion;

/* The SVG text into *@out (an empty FvStrBuf; free with fv_strbuf_free). Returns 0 or FV_ENOMEM. */
int fv_confusion_svg(const FvConfusion *cf, FvStrBuf *out);

/* The PNG: each cell coloured by its fraction of the row (fv_colormap), empty cells white, the diagonal
 * outlined, class indices every few rows and columns, a colour bar on the right, into *@png (@size bytes; free
 * with fv_image_png_free()). Returns 0 or a negative code with fv_last_error() set. */
int fv_confusion_png(const FvConfusion *cf, uint8_t **png, int32_t *size);

#endif /* FV_CONFUSION_H */
