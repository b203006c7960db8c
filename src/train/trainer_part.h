/* A trainer's step in two halves, for data-parallel training (fit.c): each rank's gradient of its part of the
 * global batch, summed over the ranks by the caller, then the one update every rank applies alike.
 * fv_trainer_step() is the two with nothing in between. */
#ifndef FV_TRAINER_PART_H
#define FV_TRAINER_PART_H

#include <stdint.h>

#include "fibvid/train.h"

/* Forward and backward of @n clips (0..max_batch; 0: zero gradients) that are part of a global batch of @total:
 * the gradients (fv_trainer_grads) become (n / total) x those of the part's mean loss, so that their sum over the
 * parts is the global batch's; *@loss_sum is the part's summed loss, *@correct its clips whose top logit is the
 * label. Returns 0 or a negative code (as fv_trainer_backward). */
int fv_trainer_grad_part(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t n, int32_t total,
                         double *loss_sum, int32_t *correct);

/* Clip the gradients now in fv_trainer_grads (the global batch's), check them and take the AdamW step, as
 * fv_trainer_step does after its backward; @loss and @correct (the batch's) go into *@out (may be NULL). Returns
 * 0 or FV_ERANGE (non-finite loss or gradient: no update). */
int fv_trainer_apply(FvTrainer *tr, float loss, int32_t correct, FvStepStats *out);

#endif /* FV_TRAINER_PART_H */
