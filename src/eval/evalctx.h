/* The context of an evaluation, shared by its output directory (evaldir.c: run.json, the records, resuming) and
 * its reports (evalreport.c), and the helpers both write with. */
#ifndef FV_EVALCTX_H
#define FV_EVALCTX_H

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

/* Write DIR/NAME atomically (a kill never leaves half a report; evalreport.c). Returns 0 or a negative code. */
int fv_eval_write_atomic(const char *dir, const char *name, const char *data, size_t n);

/* @x rounded to a multiple of 1 / @scale (the figures the records and reports hold). */
static inline double fv_eval_round(double x, double scale)
{
    return round(x * scale) / scale;
}

#endif /* FV_EVALCTX_H */
