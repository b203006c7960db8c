/* fibvid public API: attention — the kinds of attention a TimeSformer layer can use (dense softmax,
 * Fibottention), their settings, the Fibottention masks every head attends, and the kernel harness that holds
 * every kind's fast kernels against their plain C references and times them. */
#ifndef FIBVID_ATTENTION_H
#define FIBVID_ATTENTION_H

#include "fibvid/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Attention kind of one of the two attentions (spatial, temporal) of every block (SPEC sections 3, 4). */
typedef enum FvAttnKind {
    FV_ATTN_DENSE    = 0, /**< plain softmax attention over all keys */
    FV_ATTN_FIB      = 1, /**< Fibottention: each head attends a dilated Fibonacci set of offsets */
    FV_ATTN_SIMA     = 2, /**< SimA: l1-normalised q and k (over tokens), q^ (k^^T v), no softmax */
    FV_ATTN_CASTLING = 3, /**< Castling-ViT linear-angular: 0.5 v + (1/pi) q^ (k^^T v), l2-normalised, plus a
                               depthwise convolution of v (its own tensors) */
} FvAttnKind;

/** Castling's depthwise convolution: taps per head along the token index (tensor [H, 1, 9, 1]). */
#define FV_CASTLING_TAPS 9

/** Fibottention offset sequence variant (SPEC section 3). */
typedef enum FvFibVariant {
    FV_FIB_MODIFIED = 0, /**< start at (a - (b - a), b - a): the reference's video default */
    FV_FIB_ORIGINAL = 1, /**< start at the Wythoff pair (a, b) */
} FvFibVariant;

/** How masked keys are treated. */
typedef enum FvFibSemantics {
    FV_FIB_ZERO    = 0, /**< reference code: masked scores become 0 and stay in the softmax */
    FV_FIB_EXCLUDE = 1, /**< true sparse attention: masked keys leave the softmax */
} FvFibSemantics;

/** Settings of one attention (spatial or temporal). */
typedef struct FvAttnSettings {
    FvAttnKind     kind;
    FvFibVariant   variant;
    FvFibSemantics semantics;
    int32_t        wmin;    /**< smallest head window; <= 0: default (spatial 5, temporal 1) */
    int32_t        wmax;    /**< largest head window; <= 0: default (spatial N/3, temporal T-1) */
    int32_t        shuffle; /**< 1: per-layer head shuffle as random.seed(layer); random.shuffle() */
} FvAttnSettings;

/** Fill @p a with dense attention and the Fibottention defaults (modified, zero, shuffle on). */
FV_API void fv_attn_default_settings(FvAttnSettings *a);

/** fv_attn_describe() flags. */
#define FV_ATTN_DESCRIBE_SHORT 1u /**< "fib(modified,zero,w=5..65,shuffle)": windows as given (resolved ones) */

/**
 * One-line description of an attention setting into @p buf (@p n bytes, truncated, NUL-terminated):
 * "dense", or by default "fib(modified,zero,wmin=default,wmax=default,shuffle=on)" as run.json and the
 * command line tools show it; with FV_ATTN_DESCRIBE_SHORT the compact form diagnostics use.
 */
FV_API void fv_attn_describe(const FvAttnSettings *a, unsigned flags, char *buf, size_t n);

/** Check @p a: kind, variant and semantics known, wmin <= wmax when both are set, shuffle 0 or 1.
 *  Returns 0 or FV_EINVAL with fv_last_error() reading "<fn>: <what> attention: <reason>". */
FV_API int fv_attn_settings_validate(const FvAttnSettings *a, const char *fn, const char *what);

/** The name of kind @p k as configs and the command line write it ("dense", "fib"), or NULL when unknown. */
FV_API const char *fv_attn_kind_name(FvAttnKind k);

/** The kind named @p name into *@p k. Returns 0, or FV_EINVAL with fv_last_error() listing the known names. */
FV_API int fv_attn_kind_from_name(const char *name, FvAttnKind *k);

/* ------------------------------------------------------------------------------------------------ */
/* Fibottention masks                                                                                */
/* ------------------------------------------------------------------------------------------------ */

/** The masks of every head of every layer of one attention (as a model of that many layers builds them). */
typedef struct FvAttnMasks FvAttnMasks;

/**
 * Build the Fibottention masks of @p layers layers of @p heads heads over @p tokens tokens (cls not counted)
 * with the settings @p s (kind ignored: always Fibottention); @p temporal 1 for temporal attention (offset 0
 * always attended, defaults wmin 1, wmax tokens - 1), 0 for spatial (defaults 5 and tokens / 3).
 * Returns 0 and *@p out (free with fv_attn_masks_close()), FV_EINVAL or FV_ENOMEM.
 */
FV_API int fv_attn_masks_create(FvAttnMasks **out, const FvAttnSettings *s, int32_t tokens, int32_t heads,
                                int32_t layers, int32_t temporal);
FV_API void fv_attn_masks_close(FvAttnMasks **m);

/**
 * As fv_attn_masks_create(), with each layer's own token count @p tokens[layer] (cls not counted): a model with
 * token pooling (PSViT) attends fewer tokens after each pooling, and each layer's default windows follow its count.
 * No layer may have more tokens than the first.
 */
FV_API int fv_attn_masks_create_layers(FvAttnMasks **out, const FvAttnSettings *s, const int32_t *tokens,
                                       int32_t heads, int32_t layers, int32_t temporal);

/** The tokens of layer @p layer (cls not counted), or -1 out of range. */
FV_API int32_t fv_attn_masks_tokens(const FvAttnMasks *m, int32_t layer);

/** Layer @p layer's settings with its windows resolved, or NULL out of range. */
FV_API const FvAttnSettings *fv_attn_masks_layer_settings(const FvAttnMasks *m, int32_t layer);

/** The first layer's settings with the windows resolved (wmin, wmax as used). */
FV_API const FvAttnSettings *fv_attn_masks_settings(const FvAttnMasks *m);

/**
 * Offsets of head @p head of layer @p layer (after the layer's head shuffle) into *@p off (valid as long as
 * @p m): with @p raw 1 exactly as the reference code returns them (may repeat, the first term kept even above
 * the window), with 0 the set the mask encodes (sorted, unique). Returns their count, or -1 out of range.
 */
FV_API int32_t fv_attn_masks_offsets(const FvAttnMasks *m, int32_t layer, int32_t head, int32_t raw,
                                     const int32_t **off);

/** Fraction of the tokens x tokens (query, key) pairs the head attends (cls not counted); -1 out of range. */
FV_API double fv_attn_masks_density(const FvAttnMasks *m, int32_t layer, int32_t head);

/** Jaccard index of the pair sets of heads @p a and @p b of a layer (cls not counted); -1 out of range. */
FV_API double fv_attn_masks_jaccard(const FvAttnMasks *m, int32_t layer, int32_t a, int32_t b);

/** Draw every head's mask (query rows, key columns; a row of heads per layer, a hue per head) as PNG into
 *  @p path, with a title, a label per layer and each head's density and offsets under its square. Returns 0 or a negative code with fv_last_error() set. */
FV_API int fv_attn_masks_write_png(const FvAttnMasks *m, const char *path);

/* ------------------------------------------------------------------------------------------------ */
/* The kernel harness                                                                                */
/* ------------------------------------------------------------------------------------------------ */

/**
 * What the harness runs. With @p tokens 0 it draws @p shapes random shapes per kind and attention (lengths
 * with and without cls, head sizes the fast kernels specialise and others); else the one shape given (the
 * shape of one layer of a clip: spatial T sequences of @p tokens tokens with cls, temporal tokens - 1
 * sequences of @p frames tokens).
 */
typedef struct FvAttnCheckSettings {
    uint64_t     seed;       /**< random inputs and shapes (default 1) */
    int32_t      shapes;     /**< random shapes per kind and attention (default 6) */
    int32_t      tokens;     /**< fixed shape: tokens per frame including cls; 0: random shapes (default) */
    int32_t      frames;     /**< fixed shape: frames (default 8) */
    int32_t      heads;      /**< fixed shape: heads (default 12) */
    int32_t      head_dim;   /**< fixed shape: head dimension (default 64) */
    FvFibVariant variant;    /**< Fibottention offsets (default modified) */
    int32_t      check;      /**< 1: compare every fast entry with its reference (default 1) */
    int32_t      backward;   /**< 1: the backward entries too (default 1) */
    int32_t      iters;      /**< timed runs of each fast entry after a warm-up; 0: no timing (default 0) */
    const char  *kinds;      /**< comma-separated rows to run: a kind ("fib": every semantics) or a row name
                                  ("fib-exclude", "castling-aux"); NULL: all (default) */
    float        amplitude;  /**< scale of q and k (scores grow with its square: 30 gives scores of several
                                  hundred, far past exp()'s float range without max-subtraction); 0: 1 or 2
                                  drawn per random shape, 1 for the fixed shape (default 0) */
    int32_t      bf16;       /**< 1: also the row "dense-bf16", the kernel bf16 inference runs for dense attention
                                  (q, k, v rounded to bf16, fp32 softmax), after the dense kind's forward row and
                                  held to its outputs within a bf16 bound (amplitudes up to 2); only where that
                                  kernel runs here (AVX512-BF16, head_dim a multiple of 16) (default 0) */
} FvAttnCheckSettings;

/** Fill @p s with the defaults listed on each field. */
FV_API void fv_attn_check_default_settings(FvAttnCheckSettings *s);

/** One entry of one kind on one shape. */
typedef struct FvAttnCheckRow {
    char    kind[32];      /**< "dense", "fib-zero", "fib-exclude", ... */
    char    entry[16];     /**< "forward", "stats" (forward gathering diagnostics), "backward" */
    int32_t spatial;       /**< 1: spatial (token 0 is cls), 0: temporal */
    int32_t tokens, sequences, heads, head_dim;
    double  density;       /**< mean over heads of the attended fraction of pairs */
    double  gflop;         /**< the kind's analytic forward count over all sequences (fv_model_flops' terms) */
    double  max_err;       /**< largest |fast - reference| / (1 + |reference|) over every output (0 unchecked) */
    double  tolerance;     /**< the bound max_err is held to */
    int32_t pass;          /**< 1: max_err <= tolerance (or unchecked) */
    double  min_ms, median_ms; /**< the fast entry's time over the timed runs (0 untimed) */
} FvAttnCheckRow;

/** Run the harness: *@p rows receives *@p n rows (free with free()). Returns 0 (also when a row fails: read
 *  its pass) or a negative code (bad settings, out of memory). */
FV_API int fv_attn_check(const FvAttnCheckSettings *s, FvAttnCheckRow **rows, int32_t *n);

#ifdef __cplusplus
}
#endif

#endif /* FIBVID_ATTENTION_H */
