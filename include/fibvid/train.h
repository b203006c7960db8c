/* fibvid public API: training, in three layers —
 *  - the trainer: one optimisation step on a batch of preprocessed clips (the model's one forward and its
 *    backward, label-smoothed cross-entropy, global-norm clipping, AdamW, warm-up + cosine schedule) and its
 *    checkpoint state;
 *  - the data loader: a dataset list decoded once into memory and served as augmented batches (random
 *    temporal offsets, scale, crop, class-aware flips and time reversal), every draw a pure function of the
 *    seed, the epoch and the clip, so a resumed run replays an uninterrupted one;
 *  - the fit loop: what `fibvid train` runs — model set-up, epochs, validation, checkpoints, --resume and
 *    the JSONL log.
 *
 * The trainer on its own:
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

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "fibvid/common.h"
#include "fibvid/eval.h"
#include "fibvid/model.h"
#include "fibvid/video.h"

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
    float   castling_aux_until; /* Castling-ViT's auxiliary branch (SPEC 4.2): its weight lambda falls linearly
                                 * from 1 at step 0 to 0 at this fraction of total_steps and stays 0; 0 = off;
                                 * default 0.8 (with total_steps <= 0: off) */
} FvTrainSettings;

/* Castling's auxiliary-branch weight at (0-based) step @step: max(0, 1 - step / (castling_aux_until *
 * total_steps)); 0 when castling_aux_until or total_steps is <= 0. */
FV_API float fv_train_aux_weight(const FvTrainSettings *s, int64_t step);

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
FV_API void fv_train_default_settings(FvTrainSettings *s);

/* Create a trainer for @m (which must outlive it). The model's weights are copied into one writable block
 * owned by the model (its FvWeights point there from now on; a read-only file mapping is released), so
 * fv_model_forward / fv_model_save see the trained weights. The model's attention settings (dense, fib
 * zero/exclude) are taken as they are now. Returns 0 and *@out (free with fv_trainer_close), or
 * FV_EINVAL (bad settings or geometry) / FV_ENOMEM. */
FV_API int fv_trainer_new(FvTrainer **out, FvModel *m, const FvTrainSettings *s);
FV_API void fv_trainer_close(FvTrainer **tr);

/* One optimisation step on @B (1..max_batch) clips: forward, loss, backward, clipping, AdamW update with
 * the learning rate fv_trainer_lr(tr, step) of the step about to be taken (0-based).
 * clips (B, T, 3, H, W) preprocessed floats; labels (B) in [0, num_labels). @out may be NULL.
 * Returns 0, FV_EINVAL (bad batch, label, or a non-finite input value) or FV_ERANGE (non-finite loss or
 * gradient: the update is skipped and the weights are left unchanged; the step count does not advance). */
FV_API int fv_trainer_step(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, FvStepStats *out);

/* Forward and backward without an update: overwrites the gradients (fv_trainer_grads) with those of the
 * batch's mean loss, writes the loss to *@loss and, when @logits is not NULL, the logits (B, num_labels).
 * Used by gradient checks and available for custom loops. Returns 0 or a negative code. */
FV_API int fv_trainer_backward(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, float *loss,
                        float *logits);

/* Batched inference with the trainer's arena: logits (B, num_labels) for clips (B, T, 3, H, W), as inference
 * computes them (no Castling auxiliary branch, whatever the step). */
FV_API int fv_trainer_forward(FvTrainer *tr, const float *clips, int32_t B, float *logits);

/* Learning rate of (0-based) step @step under the trainer's schedule. */
FV_API float fv_trainer_lr(const FvTrainer *tr, int64_t step);
/* The same schedule from settings alone: linear warm-up lr * (step + 1) / warmup_steps, then
 * min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2 with progress = (step - warmup) / (total - warmup)
 * clamped to [0, 1] (constant lr when total_steps <= warmup_steps). */
FV_API float fv_train_lr_schedule(const FvTrainSettings *s, int64_t step);

/* Parameters, gradients and the tensor table (fv_model_visit_tensors order). The parameter block is the
 * model's; pointers stay valid for the trainer's lifetime. */
FV_API size_t fv_trainer_num_params(const FvTrainer *tr); /* floats in each flat block (tensors 16-float aligned) */
FV_API float *fv_trainer_params(FvTrainer *tr);
FV_API float *fv_trainer_grads(FvTrainer *tr);
FV_API int32_t fv_trainer_num_tensors(const FvTrainer *tr);
FV_API const FvTrainTensor *fv_trainer_tensor(const FvTrainer *tr, int32_t i);

/* Optimizer state as flat F32 arrays in the parameter layout (m, v: fv_trainer_num_params floats each,
 * writable, owned by the trainer) and the step count, for checkpointing with fv_st_write. */
typedef struct FvOptimState {
    float  *m, *v;
    size_t  n;
    int64_t step;
} FvOptimState;
FV_API void fv_trainer_optim_state(FvTrainer *tr, FvOptimState *st);
FV_API void fv_trainer_set_step(FvTrainer *tr, int64_t step);

/* Save / restore the optimizer state to / from a safetensors file: tensors "adam.m" and "adam.v" (F32, flat,
 * fv_trainer_num_params floats) and metadata "step" and "num_params". Loading checks the sizes and names
 * the file on error. The weights themselves are saved with fv_model_save. */
FV_API int fv_trainer_save_state(const FvTrainer *tr, const char *path);
FV_API int fv_trainer_load_state(FvTrainer *tr, const char *path);

/* ------------------------------------------------------------------------------------------------ */
/* The data loader                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

/** How a loader decodes and augments. Fill with fv_loader_default_settings(), then change fields. */
typedef struct FvLoaderSettings {
    int32_t     train;          /**< 1: training samples (augmented); 0: validation views as `fibvid evaluate`
                                     takes one view (uniform middle frames, short side, centre crop) (default 1) */
    int32_t     frames;         /**< T frames per sample (default 8) */
    int32_t     crop;           /**< S: the square crop fed to the model (default 224) */
    int32_t     short_side;     /**< validation: short side before the centre crop; 0: the crop (default 0) */
    int32_t     cache_frames;   /**< training: frames decoded per clip, T..512, the middles of equal segments;
                                     0: 2T (default 0) */
    int32_t     scale_lo;       /**< training: random short side in [scale_lo, scale_hi] before the random crop; */
    int32_t     scale_hi;       /**< 0: S and round(1.25 S); frames are cached at short side scale_hi (default 0) */
    float       mean[3];        /**< normalisation (x/255 - mean) / std, RGB (default 0.45) */
    float       std[3];         /**< (default 0.225) */
    const int32_t *flip_to;     /**< training: (dataset classes) the class a horizontally flipped clip of class c
                                     is, -1: never flip c; NULL: no flips (default NULL) */
    const int32_t *reverse_to;  /**< training: the same for time reversal (applied after the flip) (default NULL) */
    uint64_t    seed;           /**< every draw follows from it, the epoch and the clip (default 1) */
    int32_t     workers;        /**< decoder threads; 0: fibvid's thread count (default 0) */
} FvLoaderSettings;

/** Fill @p s with the defaults listed on each field. */
FV_API void fv_loader_default_settings(FvLoaderSettings *s);

typedef struct FvLoader FvLoader;

/** Told about each clip that cannot be decoded (it is left out), and about decoding progress. Either may be
 *  NULL; both are called from the caller's thread. */
typedef struct FvLoaderCallbacks {
    void (*skipped)(void *user, const char *path, const char *reason);
    void (*progress)(void *user, int64_t done, int64_t total);
    void *user;
} FvLoaderCallbacks;

/**
 * Decode every clip of @p ds (paths relative to @p root unless absolute) once into memory as packed RGB24
 * (training: cache_frames frames at short side scale_hi; validation: T frames at the validation short side),
 * through the clip prefetcher with @p s->workers decoder threads; the result does not depend on their number.
 * @p ds and the settings' arrays must outlive the loader. Returns 0 and *@p out (free with fv_loader_close())
 * — also when clips could not be read (see fv_loader_num_ok()) — or FV_EINVAL / FV_ENOMEM.
 */
FV_API int fv_loader_open(FvLoader **out, const FvDataset *ds, const char *root, const FvLoaderSettings *s,
                   const FvLoaderCallbacks *cb);
FV_API void fv_loader_close(FvLoader **l);

/** Clips in the list, clips decoded, their bytes in memory and the wall time the decoding took. */
FV_API int64_t fv_loader_num_clips(const FvLoader *l);
FV_API int64_t fv_loader_num_ok(const FvLoader *l);
FV_API size_t fv_loader_bytes(const FvLoader *l);
FV_API double fv_loader_decode_s(const FvLoader *l);

/** Steps of an epoch at @p batch clips a step: ceil(clips / batch) (unreadable clips included). */
FV_API int64_t fv_loader_steps_per_epoch(const FvLoader *l, int32_t batch);

/**
 * Training batch @p step of epoch @p epoch: the clips at positions [step*batch, (step+1)*batch) of the epoch's
 * shuffled order (a Fisher-Yates shuffle from the epoch's own random state), unreadable ones left out, each
 * augmented from its own random state: @p clips (n, T, 3, S, S) floats, @p labels (n) dataset classes (after
 * flips and reversal), *@p n the clips written (0 when every clip of the step was unreadable).
 * Returns 0 or FV_EINVAL.
 */
FV_API int fv_loader_batch(FvLoader *l, int64_t epoch, int64_t step, int32_t batch, float *clips, int32_t *labels,
                    int32_t *n);

/**
 * Part @p part (0-based) of @p parts of training batch @p step, for data-parallel training: the readable clips
 * of the batch (in the order fv_loader_batch() serves them) cut into @p parts contiguous slices of nearly equal
 * size, this one written as fv_loader_batch() writes a batch; *@p total (may be NULL) receives the readable clips
 * of the whole batch. The parts of one step together are exactly fv_loader_batch()'s batch. Returns 0 or
 * FV_EINVAL.
 */
FV_API int fv_loader_batch_part(FvLoader *l, int64_t epoch, int64_t step, int32_t batch, int32_t part,
                                int32_t parts, float *clips, int32_t *labels, int32_t *n, int32_t *total);

/** 1 when clip @p i of the list was decoded, else 0. */
FV_API int fv_loader_clip_ok(const FvLoader *l, int64_t i);

/** Validation view of clip @p i: (T, 3, S, S) floats into @p out and its dataset class into *@p label.
 *  Returns 1, 0 when the clip could not be decoded (nothing written), or FV_EINVAL. */
FV_API int fv_loader_view(const FvLoader *l, int64_t i, float *out, int32_t *label);

/**
 * Class maps of a `fibvid synth` data set from its synth.json @p path: @p to (dataset classes) receives for
 * each class the class a transform turns it into, from the list of class-name pairs @p pairs_key (e.g.
 * "flip_pairs", "reverse_pairs") and the optional list of classes the transform keeps, @p keep_key (e.g.
 * "hflip_invariant"); -1 for classes with neither (never transformed). Returns 0 or FV_EINVAL naming the file.
 */
FV_API int fv_loader_class_map(const char *path, const FvDataset *ds, const char *pairs_key, const char *keep_key,
                        int32_t *to);

/* ------------------------------------------------------------------------------------------------ */
/* The fit loop                                                                                      */
/* ------------------------------------------------------------------------------------------------ */

/** One optimisation step, as the fit loop reports it. */
typedef struct FvFitStep {
    int64_t epoch;          /**< 1-based */
    int64_t step;           /**< optimizer steps taken, this one included */
    int64_t steps_per_epoch, step_in_epoch;
    int64_t last_epoch;     /**< the epoch this invocation stops after */
    float   loss, lr, grad_norm, batch_acc;
    double  epoch_loss, epoch_acc; /**< running means over the epoch so far */
    double  clips_per_s;    /**< training throughput of the epoch so far */
    double  data_share;     /**< share of the epoch's time spent assembling batches */
    double  eta_s;          /**< estimated time to the end of the last epoch of this invocation */
} FvFitStep;

/** One finished epoch. */
typedef struct FvFitEpoch {
    int64_t epoch, epochs, last_epoch, start_epoch;
    double  lr, train_loss, train_acc, clips_per_s, train_s, epoch_s, elapsed_s;
    int32_t validated;      /**< 1: the val_* fields hold a validation */
    double  val_top1, val_mean_class, val_loss;
    int32_t best;           /**< 1: the best validation top-1 so far (every epoch without validation) */
    double  eta_s;          /**< estimated time to the last epoch of this invocation */
} FvFitEpoch;

/** What a run told its caller besides its files. */
typedef struct FvFitInfo {
    int64_t num_params;
    FvModelConfig config;   /**< the model trained */
    int64_t train_clips, train_failed, val_clips, steps_per_epoch, epochs, start_epoch;
    int32_t batch;
    double  cache_mb, decode_s;
    int32_t resumed, new_classifier;
} FvFitInfo;

/** Callbacks of a run (each may be NULL; called from the caller's thread). */
typedef struct FvFitCallbacks {
    /** The model about to be trained: made, or loaded to fine-tune (not when resuming: the checkpoint is the
     *  model). Change its attention or check settings against it here; a negative return stops the run
     *  with that code before anything is written. */
    int  (*configure)(void *user, FvModel *m);
    void (*started)(void *user, const FvFitInfo *info);       /**< data decoded, training about to start */
    void (*skipped)(void *user, const char *path, const char *reason); /**< a clip left out */
    void (*decoding)(void *user, const char *what, int64_t done, int64_t total);
    void (*step)(void *user, const FvFitStep *st);
    void (*epoch)(void *user, const FvFitEpoch *ep);          /**< after its checkpoint is written */
    void *user;
} FvFitCallbacks;

/** Everything a training run needs. Fill with fv_fit_default_settings(), then change fields. */
typedef struct FvFitSettings {
    /* data */
    const FvDataset *train;      /**< the training list (required) */
    const FvDataset *val;        /**< the validation list of the same classes, or NULL (default NULL) */
    const char *root;            /**< directory the lists' paths are relative to (required) */
    const char *synth_json;      /**< a `fibvid synth` data set's synth.json: the class pairs of hflip and reverse
                                      auto; NULL: auto means off (default NULL) */
    int32_t     hflip;           /**< -1 auto (synth_json's flip_pairs), 0 off, 1 every clip with its label
                                      (default -1) */
    int32_t     reverse;         /**< -1 auto (synth_json's reverse_pairs), 0 off (default -1) */
    /* model */
    const char *init_model;      /**< fine-tune this model (HF directory or fibvid file); NULL: a new one */
    const char *config;          /**< a new model: preset name (synth, test, tiny, small, base) or a JSON file of
                                      TimesformerConfig fields (default "synth"); presets train Fibottention */
    int32_t     frames;          /**< a new model: num_frames override; 0: the config's (default 0) */
    int32_t     image_size;      /**< a new model: image_size override; 0: the config's (default 0) */
    int32_t     embed_random;    /**< a new model: 1 N(0, 0.02^2) position/time embeddings, 0 sin-cos (default 0) */
    int32_t     num_pools;       /**< a new model: PSViT token pooling replacing the config's (@p pools); 0: the
                                      config's (default 0) */
    FvTokenPool pools[FV_MAX_POOLS];
    uint64_t    share_spatial, share_temporal; /**< a new model: attention sharing replacing the config's (a bit
                                                    per layer); 0: the config's (default 0) */
    /* optimisation */
    int64_t     epochs;          /**< default 30 */
    int32_t     batch;           /**< clips per step (default 16; at most the training clips) */
    double      lr, min_lr;      /**< peak and final learning rate (default 1e-3, 1e-5) */
    double      warmup;          /**< linear warm-up in epochs, may be fractional (default 2) */
    double      weight_decay;    /**< default 0.05 */
    double      label_smoothing; /**< default 0.1 */
    double      clip_norm;       /**< default 1; 0: off */
    double      castling_aux_until; /**< Castling's auxiliary branch: lambda 1 -> 0 over this fraction of the
                                         steps (FvTrainSettings; default 0.8; 0: off) */
    uint64_t    seed;            /**< weights, shuffling and augmentation (default 1) */
    /* augmentation and cache */
    int32_t     cache_frames;    /**< 0: 2T (default) */
    int32_t     scale_lo, scale_hi; /**< 0: S and round(1.25 S) (default) */
    /* output and running */
    const char *out_dir;         /**< required: train.jsonl, checkpoint.json, ckpt-epochNNNN{,.optim}.safetensors,
                                      best.safetensors, model.safetensors */
    int32_t     resume;          /**< 1: continue the run in out_dir from its last checkpoint (same settings, except
                                      that epochs may grow: a finished run is extended, the cosine schedule then
                                      spans the new length from the checkpoint on) */
    int64_t     stop_after;      /**< stop after this epoch; 0: run to the end (default 0) */
    int64_t     log_every;       /**< a step line in train.jsonl every N steps; 0: none (default 10) */
    const volatile sig_atomic_t *stop; /**< when it points at a non-zero value (set by a signal handler, say),
                                      the run stops after the optimizer step in progress and writes a checkpoint
                                      of that step (mid-epoch: resume continues from exactly there, as the
                                      uninterrupted run would); NULL: never (default NULL) */
    FvFitCallbacks cb;
} FvFitSettings;

/** Fill @p s with the defaults listed on each field. */
FV_API void fv_fit_default_settings(FvFitSettings *s);

/** How a run ended, besides its files. */
typedef struct FvFitResult {
    int64_t last_epoch;   /**< epochs done when it stopped */
    int32_t finished;     /**< 1: every epoch is done and model.safetensors written */
    double  best_top1;    /**< best validation top-1 (-1 without validation) */
    int64_t best_epoch;
    double  elapsed_s;    /**< of the whole run, earlier invocations included */
    int32_t interrupted;  /**< 1: stopped by settings.stop; the checkpoint holds the step below */
    int64_t step;         /**< optimizer steps taken when it stopped */
    int64_t step_in_epoch;/**< of them, steps of the unfinished epoch last_epoch + 1 (0: at an epoch's end) */
    int64_t steps_per_epoch;
    int32_t conflict;     /**< 1: resume refused because a setting differs from the run's (fv_last_error() names
                               it); the caller's options are at fault, not the files */
} FvFitResult;

/**
 * Train as the settings say: load or make the model, decode the lists, then per epoch shuffle, step, validate
 * (one view per clip through the prediction path, batched), write the epoch's checkpoint atomically (weights,
 * optimizer state, checkpoint.json), best.safetensors, and a line in train.jsonl; model.safetensors at the end.
 * Everything random follows from the seed, the epoch and the clip, never from what ran before: a run stopped
 * after an epoch, or mid-epoch by @p s->stop, and continued with resume takes exactly the steps of an
 * uninterrupted one (bit-identical with one thread). Returns 0 (@p r filled, may be NULL; also when stopped),
 * an input error (lists, videos, config, model, an out_dir holding another run or a run with other settings:
 * r->conflict), FV_ERANGE (training diverged: the last checkpoint stays) or a runtime error; fv_last_error()
 * says why.
 */
FV_API int fv_fit_run(const FvFitSettings *s, FvFitResult *r);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_TRAIN_H */
