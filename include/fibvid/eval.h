/* fibvid public API: batch evaluation — dataset lists (UCF101, HMDB51, generic), matching dataset
 * classes to model labels, accuracy metrics, and the output directory of `fibvid evaluate`
 * (append-only predictions for resume, shards and their merge, summary, per-class and confusion files). */
#ifndef FIBVID_EVAL_H
#define FIBVID_EVAL_H

#include "fibvid/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Dataset lists                                                                                     */
/* ------------------------------------------------------------------------------------------------ */

/** Which part of an official split to evaluate. */
typedef enum FvSubset {
    FV_SUBSET_TEST  = 0,
    FV_SUBSET_TRAIN = 1,
} FvSubset;

/** One video of a dataset list. */
typedef struct FvDatasetEntry {
    const char *path;       /**< video path relative to the video root, as written in the list */
    int32_t     label;      /**< class index in [0, num_classes) */
    const char *class_name; /**< the dataset's name of that class (same as classes[label]) */
} FvDatasetEntry;

/** A parsed dataset list. Every string is owned by the dataset (freed by fv_dataset_free()). */
typedef struct FvDataset {
    const char     *name;        /**< "ucf101", "hmdb51" or "list" */
    const char     *description; /**< e.g. "ucf101 split 1 test" or "list val.txt" */
    int32_t         num_classes;
    const char    **classes;     /**< (num_classes) class names, in class-index order */
    int32_t         named;       /**< 0: a generic list without a classes file: names are "class_<i>" */
    int64_t         num_entries;
    FvDatasetEntry *entries;     /**< (num_entries) in list order */
} FvDataset;

/**
 * Load an official UCF101 split from @p split_dir (the `ucfTrainTestlist` directory, or a directory
 * holding it): `classInd.txt` (`1 ApplyEyeMakeup`, 1-based), `trainlist0<split>.txt` (path and 1-based
 * label) or `testlist0<split>.txt` (path only; the class is the path's folder name). CRLF line ends and
 * trailing spaces are accepted. @p split is 1, 2 or 3.
 * Returns 0 and a dataset in *@p out (free with fv_dataset_free()), or a negative code with
 * fv_last_error() naming the file and line.
 */
FV_API int fv_dataset_load_ucf101(FvDataset **out, const char *split_dir, int32_t split, FvSubset subset);

/**
 * Load an official HMDB51 split from @p split_dir holding `<class>_test_split<split>.txt` files whose
 * lines are `<video>.avi <0|1|2>` (1 train, 2 test, 0 unused). Classes are numbered in alphabetical
 * order of their names; entry paths are `<class>/<video>`. Returns 0 or a negative code.
 */
FV_API int fv_dataset_load_hmdb51(FvDataset **out, const char *split_dir, int32_t split, FvSubset subset);

/**
 * Load a generic list @p list_path: MMAction2 `path label` or PySlowFast CSV `path,label` lines (the
 * label is the last field after a space, tab or comma, so paths may hold spaces; a non-numeric first
 * line is taken as a CSV header). Labels are numbered from @p label_base (0 or 1).
 * @p classes_path (may be NULL) names one class per line, in label order; without it the classes are
 * "class_0" ... up to the largest label and the dataset is unnamed (matched to the model by index).
 * Returns 0 or a negative code.
 */
FV_API int fv_dataset_load_list(FvDataset **out, const char *list_path, int32_t label_base,
                         const char *classes_path);

/** 64-bit FNV-1a fingerprint of the classes and entries (paths and labels), for checking that runs
 *  and shards used the same list. */
FV_API uint64_t fv_dataset_hash(const FvDataset *ds);

/** Free a dataset and set *@p ds to NULL. Accepts NULL. */
FV_API void fv_dataset_free(FvDataset **ds);

/* ------------------------------------------------------------------------------------------------ */
/* Matching dataset classes to model labels                                                          */
/* ------------------------------------------------------------------------------------------------ */

/**
 * Normalise a class name for matching: CamelCase is split into words, letters are lowercased and
 * everything that is not a letter or digit (`_`, `-`, spaces, brackets...) is dropped, so
 * "ApplyEyeMakeup", "apply_eye_makeup" and "apply eye makeup" all become "applyeyemakeup".
 * Writes at most @p n bytes including the NUL (truncating). Returns the length written.
 */
FV_API size_t fv_label_normalize(const char *name, char *out, size_t n);

/** How dataset classes are mapped to model labels. */
typedef struct FvLabelMatchSettings {
    const char *label_map_path; /**< NULL, or a file of `dataset_name model_label` lines (split at a tab
                                     when the line has one, else at the first space; the model label
                                     may be a name or a 0-based index; `#` starts a comment) or a JSON
                                     object {"dataset_name": "model label" or index}. Its entries win
                                     over name matching; names of classes not in this dataset are
                                     ignored. */
    int32_t     by_index;       /**< 1: class i is model label i; needs equal counts */
} FvLabelMatchSettings;

/** Fill @p s with the defaults: no label map, match by name. */
FV_API void fv_label_match_default_settings(FvLabelMatchSettings *s);

/**
 * Map every class of @p ds to a model label: @p map (num_classes) receives model label indices.
 * Order: the label map file, then the exact name, then the normalised name (fv_label_normalize()).
 * An unnamed dataset (generic list without classes) is always mapped by index.
 * @p model_labels (@p num_labels strings) are the model's labels (fv_model_label()).
 * Returns 0, or FV_EINVAL with fv_last_error() listing the unmatched class names (and suggesting a
 * label map or labels by index), naming an ambiguous normalised name, or giving the label map's
 * file:line.
 */
FV_API int fv_label_match(const FvDataset *ds, const char *const *model_labels, int32_t num_labels,
                   const FvLabelMatchSettings *s, int32_t *map);

/* ------------------------------------------------------------------------------------------------ */
/* Predictions and metrics                                                                           */
/* ------------------------------------------------------------------------------------------------ */

#define FV_EVAL_TOPK 5

/** The result of one video: what the output files and the metrics need. */
typedef struct FvPrediction {
    int64_t index;               /**< position of the video in the dataset list */
    int32_t label;               /**< true dataset class */
    int32_t target;              /**< model label of the true class (map[label]) */
    int32_t k;                   /**< entries in top/prob: min(FV_EVAL_TOPK, model labels) */
    int32_t top[FV_EVAL_TOPK];   /**< model label indices, most probable first */
    float   prob[FV_EVAL_TOPK];  /**< their probabilities (views averaged) */
    int32_t pred_class;          /**< dataset class whose model label is top[0]; -1 when none */
} FvPrediction;

/**
 * Fill @p p from the video-level probability vector @p probs (@p num_labels, the softmax averaged over
 * the views) of the video at list position @p index with true dataset class @p label, given the class
 * -> model label @p map (@p num_classes). Ties rank the lower label index first.
 * Returns 0 or FV_EINVAL.
 */
FV_API int fv_prediction_from_probs(FvPrediction *p, const float *probs, int32_t num_labels, int64_t index,
                             int32_t label, const int32_t *map, int32_t num_classes);

typedef struct FvMetrics FvMetrics;

/** Figures of a set of predictions. Accuracies are in percent, over the evaluated videos (failures
 *  are counted apart, not as wrong); 0 when nothing was evaluated. */
typedef struct FvMetricsSummary {
    int64_t num_evaluated;
    int64_t num_failed;
    int64_t top1_correct;
    int64_t top5_correct;
    int32_t classes_present; /**< classes with at least one evaluated video */
    double  top1_acc;        /**< 100 * top1_correct / num_evaluated */
    double  top5_acc;
    double  mean_class_acc;  /**< mean over present classes of the per-class top-1 recall */
} FvMetricsSummary;

/** A metrics accumulator for @p num_classes dataset classes. Returns 0 or FV_ENOMEM / FV_EINVAL. */
FV_API int fv_metrics_create(FvMetrics **out, int32_t num_classes);

/** Count one prediction. Returns 0, or FV_EINVAL for a label or predicted class out of range. */
FV_API int fv_metrics_add(FvMetrics *m, const FvPrediction *p);

/** Count one video that could not be evaluated. */
FV_API void fv_metrics_add_failure(FvMetrics *m);

/** Overall figures. */
FV_API void fv_metrics_summary(const FvMetrics *m, FvMetricsSummary *s);

/** Per-class counts of class @p c: evaluated videos, top-1 and top-5 hits. Returns 0 or FV_EINVAL. */
FV_API int fv_metrics_class(const FvMetrics *m, int32_t c, int64_t *count, int64_t *top1, int64_t *top5);

/**
 * The confusion matrix, rows the true class, columns the predicted class: (num_classes,
 * num_classes + 1), the last column counting top-1 predictions that are no dataset class.
 * Lives as long as @p m.
 */
FV_API const int64_t *fv_metrics_confusion(const FvMetrics *m);

/** Free @p m and set it to NULL. Accepts NULL. */
FV_API void fv_metrics_free(FvMetrics **m);

/* ------------------------------------------------------------------------------------------------ */
/* The output directory of an evaluation                                                             */
/* ------------------------------------------------------------------------------------------------ */

/**
 * Settings of an evaluation run. They are written to `run.json` in the output directory; a resumed run
 * must match them exactly and shards must match them except for the shard.
 */
typedef struct FvEvalRun {
    const char         *model;        /**< model shown in the summary (a path or a name) */
    const char         *model_id;     /**< NULL, or a path-independent identity compared instead of
                                           @p model (so shards on machines with other paths agree) */
    const char         *attention;    /**< attention description shown in the summary */
    const char         *settings;     /**< NULL, or any other settings that change results (frames,
                                           size, sampling, crops...), compared as a string */
    const char         *split;        /**< PySlowFast "split" value; NULL: "test_final" */
    int32_t             views;        /**< views (temporal clips x spatial crops) per video */
    int32_t             spatial_views; /**< spatial crops per video (1 or 3; temporal clips = views /
                                           spatial_views); 0: not known (summary.json "views" then "N") */
    int32_t             shard_k;      /**< this run evaluates list positions i with i % shard_n == */
    int32_t             shard_n;      /**< shard_k - 1; 1/1 (or 0/0) = everything */
    const char *const  *model_labels; /**< (num_model_labels) the model's labels, named in outputs */
    int32_t             num_model_labels;
    const int32_t      *map;          /**< (dataset classes) model label of each class */
} FvEvalRun;

/** Parse "K/N" (1 <= K <= N) into @p k and @p n. Returns 0 or FV_EINVAL. */
FV_API int fv_shard_parse(const char *s, int32_t *k, int32_t *n);

/** 1 when list position @p index belongs to shard @p k of @p n (index % n == k - 1; n <= 1: all). */
FV_API int fv_shard_has(int64_t index, int32_t k, int32_t n);

typedef struct FvEval FvEval;

/**
 * Open the output directory @p dir (created when missing) for the run @p run over @p ds.
 * A fresh run (@p resume 0) writes `run.json` and empty `predictions.jsonl` / `failures.jsonl`; it fails
 * when the directory already holds predictions (never overwrite work: resume or choose another
 * directory). With @p resume 1 the earlier `run.json` must equal this run's, and `predictions.jsonl`
 * and `failures.jsonl` are read back: a torn last line (the process was killed while writing it) is
 * cut off, so that video is evaluated again; fv_eval_done() then tells which videos to skip.
 * @p resume 2 resumes likewise but drops the recorded failures, so those videos are evaluated again (after the
 * cause, e.g. a wrong video root, was fixed). Resuming a directory without `run.json` starts a fresh run.
 * @p ds and @p run's arrays must outlive the returned context. Returns 0 and *@p out (free with
 * fv_eval_close()), or a negative code with fv_last_error() saying why.
 */
FV_API int fv_eval_open(FvEval **out, const char *dir, const FvEvalRun *run, const FvDataset *ds, int resume);

/** 1 when list position @p index already has a prediction or a failure in the directory. */
FV_API int fv_eval_done(const FvEval *e, int64_t index);

/** Videos of this run's shard, and how many of them are done (predicted or failed). */
FV_API int64_t fv_eval_num_todo(const FvEval *e);
FV_API int64_t fv_eval_num_done(const FvEval *e);

/**
 * Append the prediction @p p of one video, which took @p ms milliseconds (decode and model), to
 * `predictions.jsonl` as one line {"index", "path", "label", "class", "target", "top5": [{"index",
 * "label", "prob"}...], "pred", "pred_class", "correct", "top5_correct", "ms"}; the line is written with
 * one write() and fsync()ed before returning, so a kill loses at most the video in progress.
 * Returns 0, FV_EINVAL (out of range, not in the shard, or already done) or FV_EIO.
 */
FV_API int fv_eval_add_prediction(FvEval *e, const FvPrediction *p, double ms);

/** Append a failed video (list position @p index, one-line @p reason) to `failures.jsonl`
 *  ({"index", "path", "label", "reason", "ms"}), fsync()ed. Returns 0 or a negative code. */
FV_API int fv_eval_add_failure(FvEval *e, int64_t index, const char *reason, double ms);

/** Figures of everything recorded so far (read back and added). */
FV_API void fv_eval_metrics(const FvEval *e, FvMetricsSummary *s);

/**
 * Write the reports of what is recorded: `summary.json` (PySlowFast names top1_acc, top5_acc,
 * mean_class_acc in percent; MMAction2 names acc/top1, acc/top5, acc/mean1 as fractions, as MMAction2
 * logs them; num_videos, num_evaluated, num_failed, views, model, attention, wall_s (sum of the per-video
 * times, so resumed and merged runs add up), clips_per_s, complete, note), `per_class.csv`,
 * `confusion.csv`, `confusion.svg` and `confusion.png`. Can be called more than once. Returns 0 or a negative code.
 */
FV_API int fv_eval_write_reports(FvEval *e);

/** Close the directory and free @p e; sets *@p e to NULL. Accepts NULL. */
FV_API void fv_eval_close(FvEval **e);

/**
 * Merge the output directories of shards @p dirs (@p n of them) into @p out_dir, writing the same
 * files a single unsharded run writes (predictions and failures in list order, reports recomputed).
 * Checks that every shard has the same `run.json` apart from the shard, that shards 1..N are all
 * present once, and that each shard is complete. Returns 0 or a negative code naming the directory.
 */
FV_API int fv_eval_merge(const char *out_dir, const char *const *dirs, int32_t n);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_EVAL_H */
