/* fibvid public API: the TimeSformer model — configuration, loading (Hugging Face directories and
 * fibvid single files), saving, and the forward pass on run states. */
#ifndef FIBVID_MODEL_H
#define FIBVID_MODEL_H

#include "fibvid/attention.h"
#include "fibvid/common.h"
#include "fibvid/video.h"

#ifdef __cplusplus
extern "C" {
#endif

/** PSViT token pooling (fibvid's reconstruction, SPEC 4.3): 2x2 windows, stride 2, on each frame's patch grid. */
typedef enum FvPoolKind {
    FV_POOL_AVG  = 0, /**< mean of the window's valid cells */
    FV_POOL_MAX  = 1, /**< per-channel maximum of the valid cells */
    FV_POOL_CONV = 2, /**< depthwise 3x3 convolution, stride 2, padding 1, with weights and a bias of its own */
} FvPoolKind;

/** One token pooling: after layer @p after (0-based), of kind @p kind. */
typedef struct FvTokenPool {
    int32_t    after;
    FvPoolKind kind;
} FvTokenPool;

/** Most token poolings in one model. */
/** Upper bounds of a model config (fv_model_config_validate; models/README.md): every tensor size computed from
 *  a config stays far inside int32 element counts per dimension product and int64 in total. */
#define FV_MAX_IMAGE_SIZE 8192
#define FV_MAX_PATCHES_PER_SIDE 256
#define FV_MAX_FRAMES 1024
#define FV_MAX_HIDDEN 16384
#define FV_MAX_LAYERS 1024
#define FV_MAX_INTERMEDIATE 65536
#define FV_MAX_LABELS 100000
#define FV_MAX_POOLS 8
/** Attention sharing is described by a bit per layer: layers 0..63. */
#define FV_MAX_SHARE_LAYERS 64

/** Arithmetic of the matrix products of inference (training is always fp32). */
typedef enum FvPrecision {
    FV_PRECISION_DEFAULT = 0, /**< in load options: the model config's "fibvid_precision" where this machine
                                   runs it (fv_precision_supported), else fp32 */
    FV_PRECISION_FP32    = 1,
    FV_PRECISION_BF16    = 2, /**< weights held in bf16 only (converted once at load), products in bf16 with fp32
                                   accumulation; LayerNorm, softmax, GELU, residuals, attention and the classifier in
                                   fp32. Needs oneDNN and a CPU with AVX512-BF16 or AMX. */
} FvPrecision;

/** "fp32" / "bf16" -> *@p p (0), or FV_EINVAL. */
FV_API int fv_precision_parse(const char *name, FvPrecision *p);
/** "fp32", "bf16" ("fp32" for FV_PRECISION_DEFAULT). */
FV_API const char *fv_precision_name(FvPrecision p);
/** 1 when @p p can run on this machine and build (bf16: oneDNN and AVX512-BF16 or AMX; FIBVID_NO_BF16=1 in the
 *  environment pretends it cannot), else 0. */
FV_API int fv_precision_supported(FvPrecision p);
/** The oneDNN implementation the products of @p p run, with its ISA, e.g. "brg:avx512_core_bf16"; "none". */
FV_API const char *fv_precision_isa(FvPrecision p);
/** The machine's peak for @p p in GFLOP/s, measured now: a register-only loop of independent FMAs (fp32) or
 *  vdpbf16ps (bf16) on every thread of fv_num_threads() for about @p seconds. 0 where the ISA lacks it. */
FV_API double fv_peak_gflops(FvPrecision p, double seconds);

/** Model configuration: the HF `config.json` fields plus preprocessing and attention kinds. */
typedef struct FvModelConfig {
    int32_t image_size;        /**< training input size (square) */
    int32_t patch_size;
    int32_t num_channels;      /**< must be 3 */
    int32_t num_frames;        /**< training frame count T */
    int32_t hidden_size;       /**< D */
    int32_t num_layers;
    int32_t num_heads;
    int32_t intermediate_size;
    int32_t num_labels;
    float   layer_norm_eps;
    int32_t qkv_bias;          /**< 1: qkv projections have a bias */
    /* preprocessing */
    float   image_mean[3];
    float   image_std[3];
    int32_t short_side;        /**< 0: same as image_size */
    FvSampling sampling;
    int32_t sampling_rate;     /**< dense stride */
    /* attention */
    FvAttnSettings spatial;
    FvAttnSettings temporal;
    /* PSViT (fibvid's reconstruction, SPEC 4.3) */
    int32_t     num_pools;             /**< token poolings in @p pools, by increasing layer */
    FvTokenPool pools[FV_MAX_POOLS];
    uint64_t    share_spatial;         /**< bit i: layer i's spatial attention applies layer i-1's weights */
    uint64_t    share_temporal;        /**< the same for temporal attention */
    FvPrecision precision;             /**< "fibvid_precision": the default for inference (DEFAULT: fp32) */
} FvModelConfig;

/**
 * Fill @p c with a named preset: "base" (HF timesformer-base: 768 wide, 12 layers, 12 heads,
 * 8x224x224, 400 labels), "small" (384, 12, 6), "tiny" (192, 12, 3), "synth" (tiny with 4 layers,
 * 8x64x64: what `fibvid train` trains on `fibvid synth` data) or "test" (48 wide, 2 layers,
 * 3 heads, 4x32x32, patch 16, 5 labels). Returns 0 or FV_EINVAL for an unknown name.
 */
FV_API int fv_model_config_preset(FvModelConfig *c, const char *name);

/** Check a configuration for consistency; 0 or FV_EINVAL with fv_last_error() saying why. */
FV_API int fv_model_config_validate(const FvModelConfig *c);

/** The patch grid layer @p layer sees (*@p gh x *@p gw) for an input grid of @p Hp x @p Wp patches: halved
 *  (rounding up) by every token pooling before it. */
FV_API void fv_model_layer_grid(const FvModelConfig *c, int32_t layer, int32_t Hp, int32_t Wp, int32_t *gh,
                                int32_t *gw);

typedef struct FvModel FvModel;

/**
 * Load a model from @p path: either a Hugging Face model directory (`config.json` +
 * `model.safetensors`, optional `preprocessor_config.json`) or a fibvid single `.safetensors` file
 * whose `__metadata__` holds the config (see models/README.md). F32 tensors are used in place from the
 * memory-mapped file; F16/BF16 are converted once. Every tensor's presence, dtype and shape is checked.
 * Returns 0 and a model in *@p out (free with fv_model_close()), or a negative code with
 * fv_last_error() naming the file and the problem.
 */
FV_API int fv_model_load(FvModel **out, const char *path);

/** Options of fv_model_load_ex(); zero-initialised means the defaults. */
typedef struct FvModelLoadOptions {
    FvPrecision precision; /**< DEFAULT: the config's "fibvid_precision" where this machine runs it, else fp32 */
} FvModelLoadOptions;

/** fv_model_load() with options (NULL: defaults). With bf16 the linear layers' weights are converted once to bf16
 *  in the layout the products prefer and no fp32 copy is kept (F16/BF16 checkpoints are converted directly); such
 *  a model runs inference only (fv_model_save and training return FV_EINVAL). bf16 on a machine without it
 *  (fv_precision_supported) is FV_ENOTSUP. */
FV_API int fv_model_load_ex(FvModel **out, const char *path, const FvModelLoadOptions *opt);

/** Switch a model made by fv_model_create_random() (or loaded in fp32 from a file it still maps) to @p p: the
 *  linear weights are prepared again from the fp32 ones. Not while a forward pass runs. Returns 0, FV_ENOTSUP
 *  (@p p not supported here) or FV_EINVAL (a bf16 model that keeps no fp32 weights). */
FV_API int fv_model_set_precision(FvModel *m, FvPrecision p);
/** The precision @p m runs inference in (FP32 or BF16). */
FV_API FvPrecision fv_model_precision(const FvModel *m);

/** Create a model of configuration @p c with random weights (deterministic in @p seed), with
 *  labels "class_0", ... Used by benchmarks and tests. */
FV_API int fv_model_create_random(FvModel **out, const FvModelConfig *c, uint64_t seed);

/** Overwrite the position and time embeddings of a model made by fv_model_create_random() with fixed
 *  sin-cos tables, as MAE / VideoMAE initialise theirs: each patch's row holds sines and cosines of
 *  its grid row (first half of the channels) and column (second half) at geometric frequencies
 *  10000^(-i/(D/4)), the CLS position is 0, and frame t's time embedding is the 1-D table of t over
 *  all D channels. The weights stay trainable. `fibvid train` starts from these by default
 *  (`--embed-init`). Call before the first forward pass. Returns 0 or a negative code (FV_EINVAL for
 *  a loaded model, whose weights may be read-only, or a hidden size that is not a multiple of 4). */
FV_API int fv_model_init_sincos_embeddings(FvModel *m);

/**
 * Replace the classifier with a fresh one for @p num_labels classes (fine-tuning on another label set):
 * weight ~ 0.02 N(0, 1) (deterministic in @p seed), bias 0, labels copied from @p labels (NULL: "class_<i>").
 * Call before fv_trainer_new(); states made before follow the new label count. Like fv_trainer_new(), moves
 * every weight into a writable block owned by the model. Returns 0, FV_EINVAL or FV_ENOMEM (the model is
 * unchanged on failure).
 */
FV_API int fv_model_reset_classifier(FvModel *m, int32_t num_labels, char *const *labels, uint64_t seed);

/** Save @p m as a fibvid single-file model (F32). Returns 0 or a negative code. */
FV_API int fv_model_save(const FvModel *m, const char *path);

/** The configuration of @p m (lives as long as @p m). */
FV_API const FvModelConfig *fv_model_config(const FvModel *m);

/** Label of class @p i, or NULL when out of range. */
FV_API const char *fv_model_label(const FvModel *m, int32_t i);

/** Number of parameters (all tensors). */
FV_API int64_t fv_model_num_params(const FvModel *m);

/** Replace the attention settings (NULL keeps the current one); states running on @p m use them from their
 *  next forward pass. Not while a forward pass runs on @p m. Returns 0 or FV_EINVAL.
 *  A kind with weights of its own (Castling's depthwise-convolution taps) that the model does not have runs
 *  with them zero; training starts them at zero and fv_model_save() writes them (see
 *  fv_model_attention_tensors_missing()). Switching kinds and back keeps a kind's weights (until training
 *  moves the model's weights: then only the kinds in use keep theirs). */
FV_API int fv_model_set_attention(FvModel *m, const FvAttnSettings *spatial, const FvAttnSettings *temporal);

/** How many of the current attention kinds' own tensors (over layers, spatial and temporal) the model lacks
 *  and runs as zeros: 0 when it has them all, e.g. after loading a Castling checkpoint, or for kinds with
 *  none (dense, fib, sima). Never counts after training: a trainer gives them a home. */
FV_API int32_t fv_model_attention_tensors_missing(const FvModel *m);

/**
 * A run state: the activation buffers, attention plans, activation hook and diagnostics collector of forward
 * passes over one model (whisper.cpp's whisper_state). The model's weights are read-only and shared: any
 * number of states may run on one model at once, one thread per state. A state grows its buffers to the
 * largest batch and input it has seen.
 */
typedef struct FvState FvState;

/** Create a state for @p m (which must outlive it). Returns 0 and *@p out (free with fv_state_close()), or
 *  FV_EINVAL / FV_ENOMEM. */
FV_API int fv_state_create(FvState **out, const FvModel *m);

/** Free @p st and set *@p st to NULL. Accepts NULL. */
FV_API void fv_state_close(FvState **st);

/** The model @p st runs. */
FV_API const FvModel *fv_state_model(const FvState *st);

/**
 * Forward pass of @p B views: @p frames (B, T, 3, H, W) preprocessed floats -> @p logits (B, num_labels).
 * T, H and W may differ from the training configuration (embeddings are resized by nearest-neighbour
 * interpolation, as the original TimeSformer code does); H and W must be multiples of patch_size.
 * Not thread-safe for one state; runs multi-threaded inside. On x86 it sets flush-to-zero and
 * denormals-are-zero (MXCSR) in the calling thread and fibvid's OpenMP threads, and leaves them set:
 * denormal arithmetic is ~100x slower and changes nothing fibvid computes. Returns 0 or a negative code.
 */
FV_API int fv_state_forward(FvState *st, const float *frames, int32_t B, int32_t T, int32_t H, int32_t W,
                            float *logits);

/**
 * Forward pass of one view (T, 3, H, W) -> logits (num_labels) on the model's own state, made on the first
 * call: the simple way for one thread. Use fv_state_create() + fv_state_forward() to run one model from
 * several threads. Returns 0 or a negative code.
 */
FV_API int fv_model_forward(FvModel *m, const float *frames, int32_t T, int32_t H, int32_t W, float *logits);

/**
 * Optional observer of intermediate activations (tests, diagnostics), per view: called with names
 * "embeddings" (tokens after the embedding, (1+P*T, D)), "layer.<i>" (block i output, (1+P*T, D)),
 * "final_norm" (cls after the final LayerNorm, (D)). Tokens are in model order [cls, n0t0, n0t1, ...].
 * Pass NULL to remove. (With a hook every layer computes every token; without one, inference on prepared
 * weights makes only cls in the last block, fv_model_flops_executed.)
 */
typedef void (*FvActivationHook)(void *user, const char *name, const float *data, int64_t rows,
                                 int64_t cols);
FV_API void fv_state_set_hook(FvState *st, FvActivationHook hook, void *user);

/** Analytic FLOP count (multiply-add = 2) of one forward pass of T x H x W with the model's current
 *  attention kinds (sparse attention counts only the attended pairs); negative on failure. */
FV_API double fv_model_flops(const FvModel *m, int32_t T, int32_t H, int32_t W);
/** The FLOPs a forward pass of T x H x W (fv_model_forward: no hook, no diagnostics) executes on the model
 *  as prepared now: fv_model_flops less what inference on prepared weights (bf16, or fp32 under oneDNN) leaves
 *  out without changing the logits: the temporal projection folded into temporal_dense (one D x D product
 *  instead of two, 2 P T D^2 a layer) and, in the last block, the spatial projection and the MLP of every token
 *  but cls (only cls reaches the classifier), and in bf16 the spatial attention of the patch queries too (dense
 *  and Fibottention, no sharing in that block). fv_model_flops where the forward runs the plain fp32 path;
 *  negative on failure. */
FV_API double fv_model_flops_executed(const FvModel *m, int32_t T, int32_t H, int32_t W);

/** Free the model and its mapping; sets *@p m to NULL. Accepts NULL. */
FV_API void fv_model_close(FvModel **m);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_MODEL_H */
