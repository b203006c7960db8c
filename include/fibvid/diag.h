/* fibvid public API: per-head attention diagnostics (SPEC section 6) — entropy, attention distance,
 * density and cls attention of every head, and how alike the heads of a layer are (mask Jaccard, linear
 * CKA, cosine and Frobenius distance of the head outputs) — gathered during the forward pass from the
 * attention kernels' own weights, averaged over clips, and written as JSON. */
#ifndef FIBVID_DIAG_H
#define FIBVID_DIAG_H

#include "fibvid/common.h"
#include "fibvid/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which attention of a divided space-time block. */
typedef enum FvDiagAttnKind {
    FV_DIAG_SPATIAL  = 0, /**< over the 1 + P tokens of one frame (cls first) */
    FV_DIAG_TEMPORAL = 1, /**< over the T frames of one patch position (no cls) */
} FvDiagAttnKind;

/**
 * Statistics of one head, means over the queries of every sequence of the forward pass:
 * - entropy: softmax entropy of a query's weights in nats, over all its keys. Under Fibottention's `zero`
 *   semantics the masked keys keep weight e^(0-m)/Z each, and that shared weight counts (count x w0 log w0).
 *   Every query counts, the spatial cls query included.
 * - entropy_norm: mean over queries of entropy / log(K), K the keys with non-zero weight: all N keys for
 *   dense attention and for `zero`, the attended keys (mask row) for `exclude`. 1 for uniform attention
 *   over those keys, 0 for one-hot (and for a query with a single key).
 * - mean_distance: attention-weighted distance between a patch query and the patch keys, the weights
 *   renormalised over the patch keys (the cls key and the cls query are left out): spatial on the patch
 *   grid (Euclidean, in patches), temporal in frames. mean_distance_px is the spatial figure times the
 *   patch size (the ViT paper's "mean attention distance"); for temporal it equals mean_distance.
 * - density: fraction of the N x N (query, key) pairs the head may attend (1 for dense).
 */
typedef struct FvDiagHead {
    double density;
    double entropy;
    double entropy_norm;
    double mean_distance;
    double mean_distance_px;
} FvDiagHead;

/** One attention of one layer: per-head statistics and (H, H) head-pair matrices, row-major. */
typedef struct FvDiagAttn {
    FvDiagHead *head;  /**< (H) */
    double *jaccard;   /**< (H, H) Jaccard index of the two heads' masks (sets of (query, key) pairs) */
    double *cka;       /**< (H, H) linear CKA of the heads' outputs X_a, X_b (tokens x head_dim, before
                            output.dense), columns centred: ||Xb^T Xa||_F^2 / (||Xa^T Xa||_F ||Xb^T Xb||_F) */
    double *cosine;    /**< (H, H) cosine similarity of the flattened outputs (not centred) */
    double *frobenius; /**< (H, H) ||X_a - X_b||_F */
    double *taps;      /**< (H, FV_CASTLING_TAPS) Castling's depthwise-convolution taps (0 for other kinds and
                            for a model without them) */
} FvDiagAttn;

/** One layer. */
typedef struct FvDiagLayer {
    FvDiagAttn attn[2];     /**< [FV_DIAG_SPATIAL], [FV_DIAG_TEMPORAL] */
    double *cls_attention;  /**< (H, Hp, Wp): the spatial cls query's weight on each patch, mean over frames */
} FvDiagLayer;

/**
 * Diagnostics of a model run: one clip (means over its forward passes, e.g. its views), or a mean or
 * spread over clips. Every number lives in @p values (the pointers of @p layer point into it), so results
 * of the same shape can be added element by element.
 */
typedef struct FvDiagResult {
    int32_t num_layers, num_heads;
    int32_t frames;               /**< T of the forward passes */
    int32_t grid_h, grid_w;       /**< patch grid Hp x Wp */
    int32_t patch_size;
    int64_t count;                /**< forward passes (one clip) or clips (aggregate) averaged */
    FvAttnSettings spatial, temporal; /**< attention settings in effect */
    FvDiagLayer *layer;           /**< (num_layers) */
    double *values;               /**< every number, one block */
    size_t num_values;
} FvDiagResult;

/** A diagnostics collector: attach it to a run state, run forward passes, read the result. */
typedef struct FvDiag FvDiag;

/** Create an empty collector. Returns 0 and *@p out (free with fv_diag_close()) or FV_ENOMEM. */
FV_API int fv_diag_create(FvDiag **out);

/**
 * Attach @p d to the run state @p st (NULL detaches): every later fv_state_forward() on @p st adds its
 * statistics to @p d, one forward pass per view. The attention kernels then gather them from their own softmax
 * weights (no N x N matrix is built) and the forward pass costs more (see README); detached, the forward pass
 * is unchanged. The collector must outlive the attachment. Returns 0 or FV_EINVAL.
 */
FV_API int fv_state_set_diag(FvState *st, FvDiag *d);

/** Forget every forward pass gathered so far (the next forward may have another shape). Accepts NULL. */
FV_API void fv_diag_reset(FvDiag *d);

/**
 * The means over the forward passes gathered since the last reset, or NULL when there were none (or on
 * out of memory; fv_last_error() then says so). The result lives in @p d until the next forward, reset or
 * close.
 */
FV_API const FvDiagResult *fv_diag_result(FvDiag *d);

/** Free @p d and set it to NULL. Accepts NULL. Detach it from its model first. */
FV_API void fv_diag_close(FvDiag **d);

/** Allocate @p r for @p layers x @p heads and a @p grid_h x @p grid_w patch grid, zero-filled (other
 *  fields zero too). Returns 0, FV_EINVAL or FV_ENOMEM. */
FV_API int fv_diag_result_alloc(FvDiagResult *r, int32_t layers, int32_t heads, int32_t grid_h, int32_t grid_w);
/** Copy @p src into the (unallocated or freed) @p dst. Returns 0 or FV_ENOMEM. */
FV_API int fv_diag_result_copy(FvDiagResult *dst, const FvDiagResult *src);
/** Free the arrays of @p r and zero it. Accepts a zeroed @p r. */
FV_API void fv_diag_result_free(FvDiagResult *r);

/** Mean of the off-diagonal entries (a != b) of an (H, H) matrix; the diagonal's value when H = 1. */
FV_API double fv_diag_pair_mean(const double *m, int32_t H);

/**
 * Mean and spread over clips: fv_diag_agg_add() every clip's result (same shape), then fv_diag_agg_get()
 * fills @p mean and @p std (population standard deviation) element by element.
 */
typedef struct FvDiagAgg FvDiagAgg;
FV_API int fv_diag_agg_create(FvDiagAgg **out);
/** Add one result. Returns 0, FV_EINVAL (shape differs from the first one) or FV_ENOMEM. */
FV_API int fv_diag_agg_add(FvDiagAgg *a, const FvDiagResult *r);
/** Results added so far. */
FV_API int64_t fv_diag_agg_count(const FvDiagAgg *a);
/** Fill the unallocated @p mean and @p std (either may be NULL). Returns 0, FV_EINVAL (nothing added) or
 *  FV_ENOMEM. */
FV_API int fv_diag_agg_get(const FvDiagAgg *a, FvDiagResult *mean, FvDiagResult *std);
FV_API void fv_diag_agg_close(FvDiagAgg **a);

/** Leave the cls attention maps out of fv_diag_result_json() (they are the bulk of the numbers). */
#define FV_DIAG_JSON_NO_CLS 1u

/**
 * The result as JSON text (malloc'd, NUL-terminated, free with free(); numbers with 17 significant digits):
 * {"layers", "heads", "frames", "grid": [Hp, Wp], "patch_size", "count", "spatial_attention",
 *  "temporal_attention", "layer": [{"layer", "spatial": {"heads": [{"head", "density", "entropy",
 *  "entropy_norm", "mean_distance", "mean_distance_px"}], "jaccard", "cka", "cosine", "frobenius" (H x H),
 *  "mean_jaccard", "mean_cka", "mean_cosine", "mean_frobenius" (off-diagonal means)}, "temporal": {... the
 *  same, without mean_distance_px}, "cls_attention": [H][Hp][Wp]}]}. NULL on out of memory.
 */
FV_API char *fv_diag_result_json(const FvDiagResult *r, unsigned flags);

/* ------------------------------------------------------------------------------------------------ */
/* The head-diversity report: report.html, one self-contained file (inline SVG and base64 PNG, no network) */
/* ------------------------------------------------------------------------------------------------ */

/** A clip shown under the cls-attention heatmaps: one frame as the model saw it. */
typedef struct FvReportClip {
    const char *name;
    int32_t w, h;
    const uint8_t *rgb; /* (h, w, 3) */
} FvReportClip;

/** One column of the report, a model under one attention setting (e.g. "dense", "fib"): its mean and spread
 * over the clips, and the per-clip results of the clips shown (for their cls-attention maps). */
typedef struct FvReportSetting {
    const char *name;
    const FvDiagResult *mean, *std;   /* std may be NULL */
    const FvDiagResult *const *clip;  /* (num_clips) or NULL */
    const char *label;                /**< which model and which attention, plain text, shown under the name
                                           in every column header (NULL: none) */
    int32_t has_similarity;           /**< 1: @p similarity and @p similarity_std hold the headline figure */
    double similarity, similarity_std; /**< fv_report_head_similarity() of every clip: mean and population
                                            standard deviation over the clips (0: taken from @p mean, no spread) */
    const int32_t *layer_tokens;      /**< (num_layers) patch tokens per frame each layer attends over, after
                                           any token pooling (fv_model_layer_grid()); NULL: grid_h x grid_w */
} FvReportSetting;

/**
 * The report's headline figure for one result: the mean pairwise head similarity, i.e. the mean over the
 * layers and over their spatial and temporal attention of the off-diagonal mean linear CKA of the heads'
 * outputs (fv_diag_pair_mean() of FvDiagAttn.cka). 0: unrelated heads, 1: heads carrying the same information
 * up to rotation and scale. NaN for an empty @p r.
 */
FV_API double fv_report_head_similarity(const FvDiagResult *r);

/**
 * Write the report to @p path: a headline sentence (fv_report_head_similarity() per setting, with its spread
 * over clips), a summary of mean head similarity per layer for every setting side by side, then per layer
 * (collapsible) the head-pair heatmaps (CKA, cosine, Jaccard, Frobenius) with colour bars, per-head bars
 * (entropy, distance, mask density) on one scale per figure, the masks and the cls-attention maps over the
 * clips' frames, one column per setting. Every setting must have the same number of layers and heads.
 * @title and @subtitle are plain text (escaped here).
 * Returns 0 or a negative code with fv_last_error() set. */
FV_API int fv_report_diversity_html(const char *path, const char *title, const char *subtitle,
                                    const FvReportClip *clips, int32_t num_clips, const FvReportSetting *sets,
                                    int32_t num_sets);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_DIAG_H */
