/* Checkpoints of the fit loop (checkpoint.c): written atomically, read back for --resume. */
#ifndef FV_TRAIN_CHECKPOINT_H
#define FV_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include <jansson.h>

#include "fibvid/train.h"

/* Where a checkpoint is taken: after @epoch complete epochs and @epoch_step steps of the next (0: at the end
 * of an epoch), @step optimizer steps in all. */
typedef struct FvCkptAt {
    int64_t epoch, epoch_step, step;
    int     best;    /* also best.safetensors */
    double  elapsed;
} FvCkptAt;

/* What a checkpoint.json says about where its run stands. */
typedef struct FvCkptResume {
    int64_t epoch, epoch_step; /* complete epochs, steps of the next one */
    int64_t step;              /* optimizer steps; -1: not recorded (runs from before mid-epoch checkpoints) */
    int64_t best_epoch;
    double  best_top1, elapsed;
    double  part_loss;         /* the unfinished epoch's running figures (0 at an epoch's end) */
    int64_t part_correct, part_seen;
} FvCkptResume;

/* The weights and optimizer state of @at, then checkpoint.json pointing at them (atomically: until it is renamed
 * the previous checkpoint stays whole), then the previous checkpoint's files go. *@ck is the current
 * checkpoint.json (NULL: none), replaced. @part: the unfinished epoch's running figures, or NULL. */
int fv_ckpt_write(const FvFitSettings *s, const FvModel *m, const FvTrainer *tr, const char *ck_path,
                  json_t *settings, const FvFitResult *r, const FvCkptAt *at, const json_t *part, json_t **ck);

/* Read @ck_path (the checkpoint.json of @out_dir) into *@ck (the caller frees it, also on error) and *@cr for
 * a resumed run of @epochs epochs over @n_clips training clips with @settings (settings_json's): every setting
 * must be the checkpoint's except the epochs (which may grow) and the lists' descriptions; a difference is an
 * FV_EINVAL naming it with *@conflict = 1 (the caller's options are at fault, not the files). */
int fv_ckpt_read(const char *ck_path, const char *out_dir, const json_t *settings, int64_t epochs, int64_t n_clips,
                 json_t **ck, FvCkptResume *cr, int32_t *conflict);

/* Remove the temporary files that interrupted writes of the run left in @dir. Nothing else is touched. */
void fv_ckpt_remove_stale_tmp(const char *dir);

#endif /* FV_TRAIN_CHECKPOINT_H */
