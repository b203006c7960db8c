/* The model's in-memory layout, shared by the loader (model_load.c), the forward pass (model.c)
 * and, later, training. Weight pointers point into the mapped file or into `owned`. */
#ifndef FV_MODEL_INTERNAL_H
#define FV_MODEL_INTERNAL_H

#include "fibvid/model.h"
#include "kernels/attention.h"
#include "model/safetensors.h"

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
} FvLayerWeights;

typedef struct FvWeights {
    const float *cls_token;  /* (D) */
    const float *pos_embed;  /* (1 + P0, D), P0 = (image_size/patch)^2 */
    const float *time_embed; /* (T0, D), T0 = num_frames */
    const float *patch_w;    /* (D, C, p, p) */
    const float *patch_b;    /* (D) */
    FvLayerWeights *layers;  /* (num_layers), owned */
    const float *norm_w, *norm_b; /* timesformer.layernorm (D) */
    const float *head_w, *head_b; /* classifier (L, D), (L) */
} FvWeights;

/* Activations for one (T, P) shape; rebuilt when the input shape changes. */
typedef struct FvActs {
    int32_t T, P;        /* frames, patches per frame */
    float *x;            /* (1 + P*T, D) residual stream, model token order */
    float *patches;      /* (T*P, C*p*p) im2col of the input */
    float *pos;          /* (1 + P, D) position embedding resized to this grid */
    float *time;         /* (T, D) time embedding resized to T */
    float *seq;          /* (max(T*(1+P), P*T), D) gathered sequence (temporal / spatial order) */
    float *ln;           /* same size as seq: LayerNorm output */
    float *qkv;          /* (max rows, 3D) */
    float *att;          /* (max rows, D) attention output before the projection */
    float *proj;         /* (max rows, D) projection output */
    float *hid;          /* (1 + P*T, I) MLP hidden */
    float *clsacc;       /* (D) */
} FvActs;

struct FvModel {
    FvModelConfig cfg;
    char **labels;            /* (num_labels) owned strings */
    FvWeights w;
    FvSafetensors *st;        /* mapping the weights point into, or NULL */
    float *owned;             /* weights that are not in the mapping (converted or random), one block */
    size_t owned_floats;
    int64_t num_params;

    FvActs acts;
    /* Attention plans per layer for the current (T, P): spatial and temporal. */
    FvAttnPlan *splan, *tplan;
    int32_t plan_T, plan_P;

    FvActivationHook hook;
    void *hook_user;

    struct FvDiag *diag;      /* attached diagnostics collector (diag.c), or NULL: plain kernels */
};

/* config.c: JSON <-> FvModelConfig (+ labels). @json_text is a whole config.json; @pre_text an optional
 * preprocessor_config.json (NULL when absent). @what names the source in error messages. */
int fv_config_parse(const char *json_text, const char *pre_text, const char *what, FvModelConfig *cfg,
                    char ***labels);
/* Serialise to config.json text (HF field names + fibvid_* keys + id2label/label2id); caller frees. */
char *fv_config_to_json(const FvModelConfig *cfg, char *const *labels);

/* model.c: the weight tensor list in HF names and shapes, used by the loader, the saver and random init.
 * Calls @fn for every tensor with a pointer to the FvWeights slot it fills (the slot may be left NULL
 * by the callee only for optional tensors: qkv biases when !qkv_bias). Returns the first non-zero @fn
 * result. */
typedef int (*FvTensorVisitor)(void *user, const char *name, int32_t ndim, const int64_t *shape,
                               const float **slot);
int fv_model_visit_tensors(FvModel *m, FvTensorVisitor fn, void *user);

#endif /* FV_MODEL_INTERNAL_H */
