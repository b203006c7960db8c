/* The optimiser's pieces: label-smoothed cross-entropy and its gradient, global-norm gradient clipping and
 * one AdamW update. Pure arithmetic on flat arrays (the schedule is fv_train_lr_schedule, fibvid/train.h). */
#ifndef FV_OPTIM_H
#define FV_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "fibvid/train.h"

/* Mean over @B rows of the label-smoothed cross-entropy of logits (B, C): per row
 * -(1 - eps) log p[label] - (eps / C) sum_c log p[c] (PyTorch's cross_entropy(label_smoothing=eps)).
 * Writes the gradient of the mean to dlogits (B, C) when not NULL and the count of rows whose top logit
 * is the label to *@correct when not NULL. Computed in double. */
double fv_loss_ce_smooth(const float *logits, const int32_t *labels, int32_t B, int32_t C, float eps,
                         float *dlogits, int32_t *correct);

/* Global L2 norm of @g (n floats), computed in double; when @max_norm > 0 and the norm exceeds it, scales
 * @g by max_norm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does. Returns the norm before clipping. */
double fv_grad_clip(float *g, size_t n, float max_norm);

/* One AdamW update (torch.optim.AdamW) of @n parameters at 1-based step @t:
 * p -= lr * wd * p (when @decay); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps). */
void fv_adamw_update(float *p, const float *g, float *m, float *v, size_t n, int64_t t, float lr,
                     const FvTrainSettings *s, int decay);

#endif /* FV_OPTIM_H */
