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

/* The SVG text into *@out (an empty FvStrBuf; free with fv_strbuf_free): title, figures, axis titles, class
 * names (cut past 40 characters; each cell's tooltip names both classes whole), counts on cells of 22 pixels and
 * more, colours as in the PNG, every text inside the view box. Returns 0, FV_EINVAL or FV_ENOMEM. */
int fv_confusion_svg(const FvConfusion *cf, FvStrBuf *out);

/* The PNG, the SVG's picture in fv_image's bitmap font: title, figures, axis titles; class names on both axes
 * up to 128 classes (cut with an ellipsis past 24 characters), beyond that class indices every few cells and a
 * legend of index and name under the matrix; counts on the cells when they fit; each cell coloured by its
 * share of the row (correct in blues, errors in reds, empty white, the smallest share already a visible tint)
 * and the legend's colour bars. Into *@png (@size bytes; free with fv_image_png_free()). Returns 0 or a
 * negative code with fv_last_error() set. */
int fv_confusion_png(const FvConfusion *cf, uint8_t **png, int32_t *size);

/* Where fv_confusion_png() draws: the picture's size and the matrix, cell (r, c) covering columns
 * left + c * cell .. + cell - 1 and rows top + r * cell .. + cell - 1 (its first row and column a light line
 * between cells when cell >= 6). */
typedef struct FvConfusionLayout {
    int32_t width, height;
    int32_t left, top, cell;
    int32_t label;  /* room for the names: right-aligned in the @label pixels that end 6 left of the matrix, and
                       upwards in the @label pixels that end 6 above it */
    int32_t named;  /* 1: class names on the axes; 0: class indices, and a legend of the names under the matrix */
    int32_t counts; /* 1: the counts are written on the non-empty cells */
} FvConfusionLayout;

/* The layout of @cf's PNG into *@layout. Returns 0 or FV_EINVAL. */
int fv_confusion_png_layout(const FvConfusion *cf, FvConfusionLayout *layout);

#endif /* FV_CONFUSION_H */
