/* The model's in-memory layout, shared by the loader (model_load.c), the tensor list and lifetime
 * (model.c), the forward and backward (forward.c) and training. Weight pointers point into the mapped file or
 * into `owned`; a model never changes while states run on it (fv_model_set_attention aside). */
#ifndef FV_MODEL_INTERNAL_H
#define FV_MODEL_INTERNAL_H

#include "fibvid/model.h"
#include "kernels/attn_kind.h"
#include "kernels/gemm_packed.h"
#include "model/safetensors.h"

/* The linear layers of a block whose weights are prepared for inference (model/prepare.c). */
enum { FV_PK_T_QKV, FV_PK_T_PROJ, FV_PK_T_FC, FV_PK_QKV, FV_PK_PROJ, FV_PK_FC1, FV_PK_FC2, FV_PK_LAYER };

/* Linear weights are [out, in] (y = x W^T + b), as in PyTorch / Hugging Face. */
typedef struct FvLayerWeights {
    const float *t_ln_w, *t_ln_b;     /* temporal_layernorm (D) */
    const float *t_qkv_w, *t_qkv_b;   /* temporal_attention.attention.qkv (3D, D), (3D) or NULL */
    const float *t_proj_w, *t_proj_b; /* temporal_attention.output.dense (D, D), (D) */
    const float *t_fc_w, *t_fc_b;     /* temporal_dense (D, D), (D) */
    const float *ln1_w, *ln1_b;       /* layernorm_before (D) */
    const float *qkv_w, *qkv_b;       /* attention.attention.qkv (3D, D), (3D) or NULL */
    const float *proj_w, *proj_b;     /* attention.output.dense (D, D), (D) */
    const float *ln2_w, *ln2_b;       /* layernorm_after (D) */
    const float *fc1_w, *fc1_b;       /* intermediate.dense (I, D), (I) */
    const float *fc2_w, *fc2_b;       /* output.dense (D, I), (D) */
    /* tensors the attention kinds own: [0] spatial, [1] temporal, then per kind (what the kind's table lists),
     * NULL where the model has none. Kept per kind so that switching kinds and back keeps them. */
    const float *own[2][FV_ATTN_KIND_SLOTS][FV_ATTN_MAX_TENSORS];
    /* the linear weights above prepared for inference (FV_PK_*), or NULL; with bf16 the fp32 slot may be NULL */
    FvPackedW *pk[FV_PK_LAYER];
    /* non-NULL: the temporal projection is folded into temporal_dense (prepare.c): pk[FV_PK_T_FC] holds
     * t_fc_w t_proj_w, this (D) is t_fc_w t_proj_b + t_fc_b (owned), and pk[FV_PK_T_PROJ] is NULL */
    float *t_fold_b;
} FvLayerWeights;

typedef struct FvWeights {
    const float *pool_w[FV_MAX_POOLS], *pool_b[FV_MAX_POOLS]; /* conv token pooling j: (D, 1, 3, 3), (D) */
    const float *cls_token;  /* (D) */
    const float *pos_embed;  /* (1 + P0, D), P0 = (image_size/patch)^2 */
    const float *time_embed; /* (T0, D), T0 = num_frames */
    const float *patch_w;    /* (D, C, p, p) */
    const float *patch_b;    /* (D) */
    FvLayerWeights *layers;  /* (num_layers), owned */
    const float *norm_w, *norm_b; /* timesformer.layernorm (D) */
    const float *head_w, *head_b; /* classifier (L, D), (L): fp32 in every precision */
    FvPackedW *pk_patch;          /* patch_w prepared for inference, or NULL */
} FvWeights;

struct FvModel {
    FvModelConfig cfg;
    char **labels;            /* (num_labels) owned strings */
    FvWeights w;
    FvSafetensors *st;        /* mapping the weights point into, or NULL */
    float *owned;             /* weights that are not in the mapping (converted or random), one block */
    size_t owned_floats;
    int64_t num_params;
    uint64_t attn_gen;        /* bumped by every fv_model_set_attention(): states rebuild their plans */
    struct FvState *state;    /* the state fv_model_forward() runs on, made on its first call */
    FvPrecision prec;         /* FP32 or BF16: what the prepared weights hold */
    int packed;               /* 1: every linear weight has its prepared copy (pk) */
};

/* prepare.c: prepare every linear weight from its fp32 slot for inference in @p (FP32 or BF16), dropping the
 * mapped file pages of weights that were copied; replaces earlier ones. FV_EINVAL when a slot has no fp32 data. */
int fv_model_pack(FvModel *m, FvPrecision p);
/* Free the prepared weights (training moves the weights: inference then runs on the fp32 slots). */
void fv_model_unpack(FvModel *m);
/* Inference needs only what temporal_dense makes of the temporal projection, and nothing nonlinear lies between
 * them: fv_model_pack prepares one D x D product W = t_fc_w t_proj_w (summed in double), bias
 * b = t_fc_w t_proj_b + t_fc_b, instead of two, where the prepared weights are copies (bf16, or the oneDNN
 * backend selected): fv_model_fold_wanted(). The packed forward then runs the one product; the training forward
 * and the plain fp32 path keep the two. fv_model_fold_temporal folds layer @l from fp32 @Wp, @bp, @Wf and @bf
 * (@bf NULL: left out, for the loader to add later), replacing pk[FV_PK_T_PROJ] and pk[FV_PK_T_FC]. */
int fv_model_fold_wanted(FvGemmType dt);
int fv_model_fold_temporal(FvModel *m, int32_t l, const float *Wp, const float *bp, const float *Wf, const float *bf,
                           FvGemmType dt);
/* FV_PK_T_PROJ or FV_PK_T_FC when @pk is one of those two slots of some layer (*@layer, may be NULL), else -1. */
int fv_model_fold_slot(const FvModel *m, FvPackedW *const *pk, int32_t *layer);
/* The prepared-weight slot of linear weight slot @slot (and its product's N and K), or NULL. */
FvPackedW **fv_model_pack_slot(FvModel *m, const float *const *slot, const int64_t *shape, int32_t ndim, int32_t *N,
                               int32_t *K);

/* model.c: move every weight into one writable block owned by the model (visit order, each tensor 16-float
 * aligned), releasing the file mapping; fills the tensor table (*@tab, *@ntab; may be NULL) and the block's
 * size in floats (*@nfloats; may be NULL). On failure the model is as it was. Training's first step. */
typedef struct FvTensorSlot {
    char   *name;     /* HF name (owned) */
    int32_t ndim;
    int64_t shape[4];
    size_t  offset;   /* in floats into the block */
    size_t  count;
} FvTensorSlot;
int fv_model_adopt_weights(FvModel *m, FvTensorSlot **tab, int32_t *ntab, size_t *nfloats);

/* config.c: JSON <-> FvModelConfig (+ labels). @json_text is a whole config.json; @pre_text an optional
 * preprocessor_config.json (NULL when absent). @what names the source in error messages. */
int fv_config_parse(const char *json_text, const char *pre_text, const char *what, FvModelConfig *cfg,
                    char ***labels);
/* Serialise to config.json text (HF field names + fibvid_* keys + id2label/label2id); caller frees. */
char *fv_config_to_json(const FvModelConfig *cfg, char *const *labels);
/* The index in c->pools of the pooling after layer @layer, or -1. */
int fv_config_pool_after(const FvModelConfig *c, int32_t layer);
/* Attention sharing of @c with the attention kinds @sp and @tp (SPEC 4.3): 0, or FV_EINVAL naming the layer
 * (layer 0, a layer that does not exist, a pooling in between, a kind without attention weights); @fn
 * prefixes the message. */
int fv_config_check_sharing(const FvModelConfig *c, const FvAttnSettings *sp, const FvAttnSettings *tp,
                            const char *fn);

/* model.c: the weight tensor list in HF names and shapes, used by the loader, the saver and random init.
 * Calls @fn for every tensor with a pointer to the FvWeights slot it fills (the slot may be left NULL
 * by the callee only for optional tensors: qkv biases when !qkv_bias, and see fv_model_is_own_slot). Returns the first non-zero @fn
 * result. */
typedef int (*FvTensorVisitor)(void *user, const char *name, int32_t ndim, const int64_t *shape,
                               const float **slot);
int fv_model_visit_tensors(FvModel *m, FvTensorVisitor fn, void *user);
/* 1 when @slot is one of the attention kinds' own tensor slots (m->w.layers[l].own). Such a slot may be NULL
 * after fv_model_set_attention switched a model to a kind whose tensors it does not have: the kind then runs
 * with those tensors zero (Castling: no depthwise-convolution term), training starts them at zero and saving
 * writes zeros. */
int fv_model_is_own_slot(const FvModel *m, const float *const *slot);

#endif /* FV_MODEL_INTERNAL_H */
