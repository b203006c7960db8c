/* fibvid public API: training — the trainer (forward and backward of a batch of clips, label-smoothed
 * cross-entropy, global-norm clipping, AdamW, warm-up + cosine schedule) and its checkpoint state.
 *
 *     FvTrainSettings s;
 *     fv_train_default_settings(&s);
 *     s.max_batch = 8; s.total_steps = epochs * steps_per_epoch; ...
 *     fv_model_reset_classifier(m, n, names, seed);      // fine-tuning on another label set (optional)
 *     fv_trainer_new(&tr, m, &s);                         // m's weights now live in a writable block
 *     fv_trainer_load_state(tr, "ckpt.optim.safetensors"); // resuming (after loading the model's weights)
 *     for (...) {
 *         fv_trainer_step(tr, clips, labels, B, &st);     // clips (B, T, 3, H, W) preprocessed floats
 *         ... st.loss, st.lr, st.grad_norm ...
 *     }
 *     fv_model_save(m, "ckpt.safetensors");               // the trained weights (the model owns them)
 *     fv_trainer_save_state(tr, "ckpt.optim.safetensors");
 *     fv_trainer_close(&tr);
 *
 * Not thread-safe for one trainer; every call runs multi-threaded inside (OpenMP + BLAS). */
#ifndef FIBVID_TRAIN_H
#define FIBVID_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "fibvid/common.h"
#include "fibvid/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct FvTrainSettings {
    int32_t max_batch;       /* most clips per step (sizes the activation arena); default 8 */
    int32_t T, H, W;         /* clip geometry; 0 = the model's num_frames / image_size; multiples of patch */
    float   lr;              /* peak learning rate, reached at the end of the warm-up; default 5e-4 */
    float   min_lr;          /* the cosine's floor at total_steps; default 1e-6 */
    int64_t warmup_steps;    /* linear warm-up length in steps; default 0 */
    int64_t total_steps;     /* schedule length; <= 0: constant lr after the warm-up; default 0 */
    float   weight_decay;    /* decoupled (AdamW), on linear/conv/classifier weights only; default 0.05 */
    float   beta1, beta2;    /* default 0.9, 0.999 */
    float   eps;             /* default 1e-8 */
    float   label_smoothing; /* default 0.1 */
    float   clip_norm;       /* clip the global gradient L2 norm to this; <= 0: no clipping; default 1.0 */
} FvTrainSettings;

/* Results of one step. */
typedef struct FvStepStats {
    float   loss;      /* mean label-smoothed cross-entropy of the batch (before the update) */
    float   grad_norm; /* global gradient L2 norm before clipping */
    float   lr;        /* learning rate used by the update */
    int32_t correct;   /* clips of the batch whose top logit is their label (before the update) */
    int64_t step;      /* optimizer steps taken, this one included */
    double  ms;        /* wall time of the step */
} FvStepStats;

/* One parameter tensor of the trainer, in fv_model_visit_tensors order. */
typedef struct FvTrainTensor {
    const char *name;     /* HF name */
    int32_t     ndim;
    int64_t     shape[4];
    size_t      offset;   /* in floats, into fv_trainer_params / fv_trainer_grads / the AdamW moments */
    size_t      count;
    int32_t     decay;    /* 1: weight decay applies (.weight of linear/conv/classifier); 0: biases,
                           * LayerNorm, cls/position/time embeddings (as timm / PySlowFast) */
} FvTrainTensor;

typedef struct FvTrainer FvTrainer;

/* Defaults as documented on each FvTrainSettings field. */
void fv_train_default_settings(FvTrainSettings *s);

/* Create a trainer for @m (which must outlive it). The model's weights are copied into one writable block
 * owned by the model (its FvWeights point there from now on; a read-only file mapping is released), so
 * fv_model_forward / fv_model_save see the trained weights. The model's attention settings (dense, fib
 * zero/exclude) are taken as they are now. Returns 0 and *@out (free with fv_trainer_close), or
 * FV_EINVAL (bad settings or geometry) / FV_ENOMEM. */
int fv_trainer_new(FvTrainer **out, FvModel *m, const FvTrainSettings *s);
void fv_trainer_close(FvTrainer **tr);

/* One optimisation step on @B (1..max_batch) clips: forward, loss, backward, clipping, AdamW update with
 * the learning rate fv_trainer_lr(tr, step) of the step about to be taken (0-based).
 * clips (B, T, 3, H, W) preprocessed floats; labels (B) in [0, num_labels). @out may be NULL.
 * Returns 0, FV_EINVAL (bad batch, label, or a non-finite input value) or FV_ERANGE (non-finite loss or
 * gradient: the update is skipped and the weights are left unchanged; the step count does not advance). */
int fv_trainer_step(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, FvStepStats *out);

/* Forward and backward without an update: overwrites the gradients (fv_trainer_grads) with those of the
 * batch's mean loss, writes the loss to *@loss and, when @logits is not NULL, the logits (B, num_labels).
 * Used by gradient checks and available for custom loops. Returns 0 or a negative code. */
int fv_trainer_backward(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, float *loss,
                        float *logits);

/* Batched inference with the trainer's arena: logits (B, num_labels) for clips (B, T, 3, H, W). */
int fv_trainer_forward(FvTrainer *tr, const float *clips, int32_t B, float *logits);

/* Learning rate of (0-based) step @step under the trainer's schedule. */
float fv_trainer_lr(const FvTrainer *tr, int64_t step);
/* The same schedule from settings alone: linear warm-up lr * (step + 1) / warmup_steps, then
 * min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2 with progress = (step - warmup) / (total - warmup)
 * clamped to [0, 1] (constant lr when total_steps <= warmup_steps). */
float fv_train_lr_schedule(const FvTrainSettings *s, int64_t step);

/* Parameters, gradients and the tensor table (fv_model_visit_tensors order). The parameter block is the
 * model's; pointers stay valid for the trainer's lifetime. */
size_t fv_trainer_num_params(const FvTrainer *tr); /* floats in each flat block (tensors 16-float aligned) */
float *fv_trainer_params(FvTrainer *tr);
float *fv_trainer_grads(FvTrainer *tr);
int32_t fv_trainer_num_tensors(const FvTrainer *tr);
const FvTrainTensor *fv_trainer_tensor(const FvTrainer *tr, int32_t i);

/* Optimizer state as flat F32 arrays in the parameter layout (m, v: fv_trainer_num_params floats each,
 * writable, owned by the trainer) and the step count, for checkpointing with fv_st_write. */
typedef struct FvOptimState {
    float  *m, *v;
    size_t  n;
    int64_t step;
} FvOptimState;
void fv_trainer_optim_state(FvTrainer *tr, FvOptimState *st);
void fv_trainer_set_step(FvTrainer *tr, int64_t step);

/* Save / restore the optimizer state to / from a safetensors file: tensors "adam.m" and "adam.v" (F32, flat,
 * fv_trainer_num_params floats) and metadata "step" and "num_params". Loading checks the sizes and names
 * the file on error. The weights themselves are saved with fv_model_save. */
int fv_trainer_save_state(const FvTrainer *tr, const char *path);
int fv_trainer_load_state(FvTrainer *tr, const char *path);

/* Replace the classifier with a fresh one for @num_labels classes (fine-tuning on another label set):
 * weight ~ 0.02 N(0, 1) (deterministic in @seed), bias 0, labels copied from @labels (NULL: "class_<i>").
 * Call before fv_trainer_new. Like fv_trainer_new, moves every weight into a writable block owned by the
 * model. Returns 0, FV_EINVAL or FV_ENOMEM (the model is unchanged on failure). */
int fv_model_reset_classifier(FvModel *m, int32_t num_labels, char *const *labels, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_TRAIN_H */
