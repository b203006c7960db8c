/* What the evaluate output directory (evaldir.c) shares with its reports (evalreport.c): the context. */
#ifndef FV_EVALDIR_INTERNAL_H
#define FV_EVALDIR_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include <jansson.h>

#include "fibvid/eval.h"

struct FvEval {
    char    *dir;
    json_t  *run;          /* run.json: what is compared and what the reports name */
    int32_t  num_classes;
    int64_t  num_videos;   /* the whole list */
    int32_t  shard_k, shard_n;
    int64_t  todo, ndone;
    uint8_t *done;         /* (num_videos) 1: predicted or failed */
    FvMetrics *metrics;
    double   ms_sum;
    const FvDataset *ds;   /* NULL in a merge */
    const char *const *model_labels;
    int32_t  num_model_labels;
    int      pred_fd, fail_fd;
};

/* Write DIR/NAME atomically (a kill never leaves half a report). Returns 0 or a negative code. */
int fv_evaldir_write_atomic(const char *dir, const char *name, const char *data, size_t n);

/* @x rounded to a multiple of 1 / @scale (the figures the records and reports hold). */
static inline double fv_evaldir_round(double x, double scale)
{
    return round(x * scale) / scale;
}

#endif /* FV_EVALDIR_INTERNAL_H */
