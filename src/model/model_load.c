/* Model files: loading a Hugging Face directory (config.json + model.safetensors) or a fibvid single file
 * (config in the safetensors __metadata__) into FvModel, and saving the fibvid single file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/gemm.h"
#include "util/util.h"
#include "model/model_internal.h"

#define FV_FORMAT_NAME    "fibvid"
#define FV_FORMAT_VERSION "1"

/* Read a small text file (a JSON config) whole; NULL with an error set. */
static char *read_text(const char *path, int *ret)
{
    char *text = NULL;
    *ret = fv_read_file(path, 64u << 20, "a JSON text file", &text, NULL);
    return text;
}

/* Walk state: pass 0 checks every tensor and sizes the conversion block, pass 1 fills the slots. */
typedef struct LoadWalk {
    const FvSafetensors *st;
    FvModel *m;
    int bf16;            /* 1: linear weights go straight to bf16 prepared copies, without an fp32 copy */
    int pass;
    size_t owned_floats; /* pass 0: total; pass 1: next free float */
    float *owned;
    int64_t params;
    /* bf16: the fp32 temporal projection weight of the layer being read (in the mapping, or @fold_tmp), until
     * temporal_dense's comes and the two are folded into one prepared product (prepare.c) */
    const float *fold_wp;
    float *fold_tmp;
} LoadWalk;

/* Each converted tensor starts on a 64-byte boundary, like fv_malloc'd buffers. */
static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static int load_visitor(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    LoadWalk *lw = user;
    int64_t count = 1;
    for (int32_t d = 0; d < ndim; d++)
        if (shape[d] < 0 || __builtin_mul_overflow(count, shape[d], &count)) /* validated configs never get here */
            return fv_error(FV_EINVAL, "%s: size overflows", name);
    int32_t N, K;
    FvPackedW **lin = fv_model_pack_slot(lw->m, slot, shape, ndim, &N, &K), **pk = lw->bf16 ? lin : NULL;
    if (lw->pass == 0) {
        int need = fv_st_get_f32(lw->st, name, ndim, shape, NULL, NULL);
        if (need < 0)
            return need;
        if (!pk && (need || !lin)) /* converted, or a small tensor copied (below) */
            lw->owned_floats += round16((size_t)count);
        lw->params += count;
        return 0;
    }
    const float *in_place = NULL;
    int need = fv_st_get_f32(lw->st, name, ndim, shape, NULL, &in_place);
    if (need < 0)
        return need;
    if (pk) { /* bf16: from the mapping (its pages given back after) or a one-tensor conversion buffer */
        float *tmp = need ? fv_malloc(sizeof(float) * (size_t)count) : NULL;
        const float *src = in_place;
        int ret = need && !tmp ? fv_error(FV_ENOMEM, "%s: out of memory", name) : 0;
        if (!ret && need)
            ret = fv_st_get_f32(lw->st, name, ndim, shape, tmp, &src);
        int32_t l = 0;
        const int fold = fv_model_fold_slot(lw->m, pk, &l);
        if (!ret && fold == FV_PK_T_PROJ) { /* kept until temporal_dense's weight */
            lw->fold_wp = src;
            lw->fold_tmp = tmp;
            *slot = need ? NULL : in_place;
            return 0;
        }
        if (!ret && fold == FV_PK_T_FC) /* the bias t_fc_b is added after the walk */
            ret = lw->fold_wp ? fv_model_fold_temporal(lw->m, l, lw->fold_wp, lw->m->w.layers[l].t_proj_b, src, NULL,
                                                       FV_GT_BF16)
                              : fv_error(FV_EINVAL, "%s: read before the temporal projection", name);
        else if (!ret)
            ret = fv_packed_create(pk, src, N, K, FV_GT_BF16);
        fv_free(tmp);
        if (fold == FV_PK_T_FC) {
            if (lw->fold_wp && !lw->fold_tmp)
                fv_st_drop_pages(lw->st, lw->fold_wp, sizeof(float) * (size_t)count);
            fv_free(lw->fold_tmp);
            lw->fold_wp = lw->fold_tmp = NULL;
        }
        if (ret < 0)
            return ret;
        if (!need)
            fv_st_drop_pages(lw->st, in_place, sizeof(float) * (size_t)count);
        *slot = need ? NULL : in_place; /* fp32 data only where the file has it */
        return 0;
    }
    if (!need && lin) { /* a linear weight: read in place (and prepared from there) */
        *slot = in_place;
        return 0;
    }
    float *dst = lw->owned + lw->owned_floats;
    lw->owned_floats += round16((size_t)count);
    if (!need) { /* the small ones (LayerNorm, biases, embeddings, classifier) copied: in place, each read would map
                  * the large page-cache folio around it, ~2 MB of the neighbouring weights (~100 MB for base) */
        memcpy(dst, in_place, sizeof(float) * (size_t)count);
        *slot = dst;
        return 0;
    }
    return fv_st_get_f32(lw->st, name, ndim, shape, dst, slot);
}

/* Config, preprocessor config and weights of a HF directory. */
static int open_hf_dir(const char *dir, char **cfg_text, char **pre_text, char **what, FvSafetensors **st)
{
    char *cfg_path = fv_path_join(dir, "config.json");
    char *pre_path = fv_path_join(dir, "preprocessor_config.json");
    char *st_path = fv_path_join(dir, "model.safetensors");
    char *other = NULL;
    int ret = 0;

    if (!cfg_path || !pre_path || !st_path) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (!fv_file_exists(cfg_path)) {
        ret = fv_error(FV_ENOENT, "%s: no config.json: not a Hugging Face model directory", dir);
        goto done;
    }
    if (!fv_file_exists(st_path)) {
        free(other);
        other = fv_path_join(dir, "model.safetensors.index.json");
        if (other && fv_file_exists(other)) {
            ret = fv_error(FV_ENOTSUP, "%s: sharded checkpoints (model.safetensors.index.json) are not supported",
                           dir);
            goto done;
        }
        free(other);
        other = fv_path_join(dir, "pytorch_model.bin");
        if (other && fv_file_exists(other)) {
            ret = fv_error(FV_ENOTSUP, "%s: only pytorch_model.bin, no model.safetensors: convert it to "
                           "safetensors first", dir);
            goto done;
        }
        ret = fv_error(FV_ENOENT, "%s: no model.safetensors in the model directory", dir);
        goto done;
    }
    if (!(*cfg_text = read_text(cfg_path, &ret)))
        goto done;
    if (fv_file_exists(pre_path) && !(*pre_text = read_text(pre_path, &ret)))
        goto done;
    if ((ret = fv_st_open(st, st_path)) < 0)
        goto done;
    *what = cfg_path;
    cfg_path = NULL;
done:
    free(cfg_path);
    free(pre_path);
    free(st_path);
    free(other);
    return ret;
}

/* Config of a fibvid single file, from its __metadata__. */
static int open_single(const char *path, char **cfg_text, char **pre_text, char **what, FvSafetensors **st)
{
    int ret;
    if ((ret = fv_st_open(st, path)) < 0)
        return ret;
    const char *fmt = fv_st_metadata(*st, "format");
    const char *ver = fv_st_metadata(*st, "format_version");
    const char *cfg = fv_st_metadata(*st, "config");
    const char *pre = fv_st_metadata(*st, "preprocessor_config");
    if (!fmt || strcmp(fmt, FV_FORMAT_NAME))
        return fv_error(FV_EINVAL, "%s: not a fibvid model file (__metadata__ has no \"format\": \"fibvid\"); "
                        "for a Hugging Face model pass its directory", path);
    if (!ver || strcmp(ver, FV_FORMAT_VERSION))
        return fv_error(FV_ENOTSUP, "%s: fibvid format_version \"%.16s\" is not supported (this build reads \"%s\")",
                        path, ver ? ver : "(missing)", FV_FORMAT_VERSION);
    if (!cfg)
        return fv_error(FV_EINVAL, "%s: __metadata__ has no \"config\"", path);
    size_t n = strlen(path) + 32;
    *cfg_text = strdup(cfg);
    *pre_text = pre ? strdup(pre) : NULL;
    *what = malloc(n);
    if (!*cfg_text || (pre && !*pre_text) || !*what)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    snprintf(*what, n, "%s: config", path);
    return 0;
}

static int load_weights(FvModel *m, const char *path, FvPrecision prec)
{
    char *cfg_text = NULL, *pre_text = NULL, *what = NULL;
    FvSafetensors *st = NULL;
    char **labels = NULL;
    FvLayerWeights *layers = NULL;
    float *owned = NULL;
    FvModelConfig cfg;
    struct stat sb;
    int ret;

    if (!m || !path)
        return fv_error(FV_EINVAL, "fv_model_load: NULL argument");
    memset(&cfg, 0, sizeof(cfg));
    if (stat(path, &sb)) {
        int e = errno;
        return fv_error(e == ENOENT ? FV_ENOENT : -e, "%s: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode))
        ret = open_hf_dir(path, &cfg_text, &pre_text, &what, &st);
    else
        ret = open_single(path, &cfg_text, &pre_text, &what, &st);
    if (ret < 0)
        goto fail;
    if ((ret = fv_config_parse(cfg_text, pre_text, what, &cfg, &labels)) < 0)
        goto fail;

    layers = calloc((size_t)cfg.num_layers, sizeof(*layers));
    if (!layers) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    m->cfg = cfg;
    m->w.layers = layers;
    /* the config's bf16 is a default for machines that run it: elsewhere fp32 (the CLI says so on stderr) */
    if (prec == FV_PRECISION_DEFAULT)
        prec = cfg.precision == FV_PRECISION_BF16 && fv_precision_supported(FV_PRECISION_BF16) ? FV_PRECISION_BF16
                                                                                             : FV_PRECISION_FP32;
    if (!fv_precision_supported(prec)) {
        ret = fv_error(FV_ENOTSUP, "%s: bf16 is not supported here (%s)", path, fv_gemm_available(FV_GEMM_DNNL)
                       ? "the CPU has neither AVX512-BF16 nor AMX" : "fibvid was built without oneDNN");
        goto fail;
    }
    LoadWalk lw = { .st = st, .m = m, .bf16 = prec == FV_PRECISION_BF16, .pass = 0 };
    if ((ret = fv_model_visit_tensors(m, load_visitor, &lw)) < 0)
        goto fail;
    if (lw.owned_floats) {
        owned = fv_malloc(lw.owned_floats * sizeof(float));
        if (!owned) {
            ret = fv_error(FV_ENOMEM, "%s: out of memory for %zu converted weights", path, lw.owned_floats);
            goto fail;
        }
    }
    m->owned_floats = lw.owned_floats;
    lw.pass = 1;
    lw.owned = owned;
    lw.owned_floats = 0;
    m->st = st; /* prepared weights give back the mapping's pages */
    ret = fv_model_visit_tensors(m, load_visitor, &lw);
    fv_free(lw.fold_tmp); /* a walk that stopped between the two temporal weights */
    if (ret < 0)
        goto fail;
    if (prec == FV_PRECISION_BF16) {
        for (int32_t l = 0; l < cfg.num_layers; l++) { /* the folded temporal bias: t_fc_w t_proj_b + t_fc_b */
            FvLayerWeights *L = &m->w.layers[l];
            for (int32_t i = 0; L->t_fold_b && i < cfg.hidden_size; i++)
                L->t_fold_b[i] += L->t_fc_b[i];
        }
        m->packed = 1;
        m->prec = FV_PRECISION_BF16;
    } else if ((ret = fv_model_pack(m, FV_PRECISION_FP32)) < 0) {
        goto fail;
    }
    /* prepared as copies (bf16, or oneDNN's layout): inference reads nothing of the file any more (training or a
     * precision switch that reads it again faults the pages back in) */
    if (m->packed && (m->prec == FV_PRECISION_BF16 || fv_packed_is_blocked(m->w.pk_patch)))
        fv_st_drop_all(st);

    m->labels = labels;
    m->owned = owned;
    m->num_params = lw.params;
    free(cfg_text);
    free(pre_text);
    free(what);
    return 0;

fail:
    /* leave @m as it came (zeroed) so the caller's close frees nothing twice */
    if (labels)
        for (int32_t i = 0; i < cfg.num_labels; i++)
            free(labels[i]);
    free(labels);
    fv_model_unpack(m);
    free(layers);
    fv_free(owned);
    m->st = NULL;
    fv_st_close(&st);
    memset(&m->cfg, 0, sizeof(m->cfg));
    memset(&m->w, 0, sizeof(m->w));
    m->owned_floats = 0;
    free(cfg_text);
    free(pre_text);
    free(what);
    return ret;
}

/* ---------------------------------------------------------------------------------------------- */
/* Saving */

typedef struct SaveWalk {
    const FvModel *m;
    FvStWriteTensor *t;
    size_t n, cap;
    char **names;
    float *zeros[64];  /* written for attention-kind tensors the model does not have (fv_model_is_own_slot) */
    size_t zeros_n[64];
    int32_t nzeros;
} SaveWalk;

int fv_model_load(FvModel **out, const char *path)
{
    return fv_model_load_ex(out, path, NULL);
}

int fv_model_load_ex(FvModel **out, const char *path, const FvModelLoadOptions *opt)
{
    int ret;
    if (!out || !path)
        return fv_error(FV_EINVAL, "fv_model_load: NULL argument");
    *out = NULL;
    FvModel *m = calloc(1, sizeof(*m));
    if (!m)
        return fv_error(FV_ENOMEM, "fv_model_load: out of memory");
    if ((ret = load_weights(m, path, opt ? opt->precision : FV_PRECISION_DEFAULT)) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    fv_model_close(&m);
    return ret;
}

static int save_visitor(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    SaveWalk *sw = user;
    const float *data = *slot;
    if (ndim > FV_ST_MAX_DIMS)
        return fv_error(FV_EINVAL, "fv_model_save: tensor \"%s\" has too many dimensions", name);
    if (!data && fv_model_is_own_slot(sw->m, slot)) {
        size_t count = 1;
        for (int32_t d = 0; d < ndim; d++)
            count *= (size_t)shape[d];
        /* one zero block per distinct size is enough; kinds own few, small tensors */
        for (int32_t i = 0; i < sw->nzeros && !data; i++)
            if (sw->zeros_n[i] >= count)
                data = sw->zeros[i];
        if (!data) {
            if (sw->nzeros == (int32_t)(sizeof(sw->zeros) / sizeof(sw->zeros[0])))
                return fv_error(FV_ENOMEM, "fv_model_save: too many missing attention tensors");
            float *z = calloc(count, sizeof(float));
            if (!z)
                return fv_error(FV_ENOMEM, "fv_model_save: out of memory");
            sw->zeros_n[sw->nzeros] = count;
            sw->zeros[sw->nzeros++] = z;
            data = z;
        }
    }
    if (!data)
        return fv_error(FV_EINVAL, "fv_model_save: tensor \"%s\" has no data", name);
    if (sw->n == sw->cap) {
        size_t cap = sw->cap ? 2 * sw->cap : 256;
        FvStWriteTensor *t = realloc(sw->t, cap * sizeof(*t));
        if (!t)
            return fv_error(FV_ENOMEM, "fv_model_save: out of memory");
        sw->t = t;
        char **names = realloc(sw->names, cap * sizeof(*names));
        if (!names)
            return fv_error(FV_ENOMEM, "fv_model_save: out of memory");
        sw->names = names;
        sw->cap = cap;
    }
    /* the visitor's name buffer is reused between calls */
    char *copy = strdup(name);
    if (!copy)
        return fv_error(FV_ENOMEM, "fv_model_save: out of memory");
    FvStWriteTensor *t = &sw->t[sw->n];
    memset(t, 0, sizeof(*t));
    t->name = copy;
    t->ndim = ndim;
    for (int32_t d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->data = data;
    sw->names[sw->n++] = copy;
    return 0;
}

int fv_model_save(const FvModel *m, const char *path)
{
    SaveWalk sw = { .m = m };
    char *cfg = NULL;
    int ret;

    if (!m || !path)
        return fv_error(FV_EINVAL, "fv_model_save: NULL argument");
    if (!m->w.layers)
        return fv_error(FV_EINVAL, "fv_model_save: %s: the model has no weights", path);
    if (m->prec == FV_PRECISION_BF16)
        return fv_error(FV_EINVAL, "fv_model_save: %s: the model is held in bf16 for inference; load it in fp32 to "
                        "save it", path);
    cfg = fv_config_to_json(&m->cfg, m->labels);
    if (!cfg) {
        ret = fv_error(FV_ENOMEM, "fv_model_save: %s: out of memory", path);
        goto done;
    }
    /* visiting only reads the slots; the cast is for the shared visitor signature */
    if ((ret = fv_model_visit_tensors((FvModel *)m, save_visitor, &sw)) < 0)
        goto done;
    const char *keys[] = { "format", "format_version", "config" };
    const char *vals[] = { FV_FORMAT_NAME, FV_FORMAT_VERSION, cfg };
    ret = fv_st_write(path, sw.t, sw.n, keys, vals, 3);
done:
    for (size_t i = 0; i < sw.n; i++)
        free(sw.names[i]);
    free(sw.names);
    free(sw.t);
    for (int32_t i = 0; i < sw.nzeros; i++)
        free(sw.zeros[i]);
    free(cfg);
    return ret;
}
