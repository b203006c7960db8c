/* Model configuration: presets, validation, and the HF config.json (+ preprocessor_config.json and the
 * fibvid_* keys) <-> FvModelConfig mapping. Field names and defaults: models/README.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kernels/attention.h"
#include "util/util.h"
#include "model/model_internal.h"

int fv_model_config_preset(FvModelConfig *c, const char *name)
{
    if (!c || !name)
        return fv_error(FV_EINVAL, "fv_model_config_preset: NULL argument");
    FvModelConfig b;
    memset(&b, 0, sizeof(b));
    /* HF facebook/timesformer-base-finetuned-k400 */
    b.image_size = 224;
    b.patch_size = 16;
    b.num_channels = 3;
    b.num_frames = 8;
    b.hidden_size = 768;
    b.num_layers = 12;
    b.num_heads = 12;
    b.intermediate_size = 3072;
    b.num_labels = 400;
    b.layer_norm_eps = 1e-6f;
    b.qkv_bias = 1;
    for (int i = 0; i < 3; i++) {
        b.image_mean[i] = 0.45f;
        b.image_std[i] = 0.225f;
    }
    b.short_side = 0;
    b.sampling = FV_SAMPLING_UNIFORM;
    b.sampling_rate = 4;
    fv_attn_default_settings(&b.spatial);
    fv_attn_default_settings(&b.temporal);

    if (!strcmp(name, "base")) {
    } else if (!strcmp(name, "small")) {
        b.hidden_size = 384;
        b.num_heads = 6;
        b.intermediate_size = 1536;
    } else if (!strcmp(name, "tiny")) {
        b.hidden_size = 192;
        b.num_heads = 3;
        b.intermediate_size = 768;
    } else if (!strcmp(name, "synth")) {
        /* `fibvid train`'s default for `fibvid synth` data: small and fast on a CPU */
        b.hidden_size = 192;
        b.num_heads = 3;
        b.intermediate_size = 768;
        b.num_layers = 4;
        b.image_size = 64;
    } else if (!strcmp(name, "test")) {
        b.hidden_size = 48;
        b.num_layers = 2;
        b.num_heads = 3;
        b.intermediate_size = 192;
        b.num_frames = 4;
        b.image_size = 32;
        b.num_labels = 5;
    } else {
        return fv_error(FV_EINVAL, "fv_model_config_preset: unknown preset \"%s\" (base, small, tiny, synth, test)",
                        name);
    }
    *c = b;
    return 0;
}

int fv_model_config_validate(const FvModelConfig *c)
{
    const char *fn = "fv_model_config_validate";
    if (!c)
        return fv_error(FV_EINVAL, "%s: NULL config", fn);
    const struct { const char *name; int32_t v; } pos[] = {
        { "image_size", c->image_size },     { "patch_size", c->patch_size },
        { "num_frames", c->num_frames },     { "hidden_size", c->hidden_size },
        { "num_hidden_layers", c->num_layers }, { "num_attention_heads", c->num_heads },
        { "intermediate_size", c->intermediate_size }, { "num_labels", c->num_labels },
        { "fibvid_sampling_rate", c->sampling_rate },
    };
    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++)
        if (pos[i].v <= 0)
            return fv_error(FV_EINVAL, "%s: %s must be > 0 (got %d)", fn, pos[i].name, pos[i].v);
    /* upper bounds: sizes computed from a file never overflow, and a hostile config cannot ask for terabytes */
    const struct { const char *name; int32_t v, max; } upper[] = {
        { "image_size", c->image_size, FV_MAX_IMAGE_SIZE },     { "num_frames", c->num_frames, FV_MAX_FRAMES },
        { "hidden_size", c->hidden_size, FV_MAX_HIDDEN },       { "num_hidden_layers", c->num_layers, FV_MAX_LAYERS },
        { "num_attention_heads", c->num_heads, FV_MAX_HIDDEN }, { "intermediate_size", c->intermediate_size,
                                                                   FV_MAX_INTERMEDIATE },
        { "num_labels", c->num_labels, FV_MAX_LABELS },         { "fibvid_sampling_rate", c->sampling_rate, 100000 },
        { "fibvid_short_side", c->short_side, 16384 },
    };
    for (size_t i = 0; i < sizeof(upper) / sizeof(upper[0]); i++)
        if (upper[i].v > upper[i].max)
            return fv_error(FV_EINVAL, "%s: %s %d is above fibvid's limit %d", fn, upper[i].name, upper[i].v,
                            upper[i].max);
    if (c->image_size / c->patch_size > FV_MAX_PATCHES_PER_SIDE)
        return fv_error(FV_EINVAL, "%s: image_size %d / patch_size %d gives %d patches per side, above fibvid's "
                        "limit %d", fn, c->image_size, c->patch_size, c->image_size / c->patch_size,
                        FV_MAX_PATCHES_PER_SIDE);
    if (c->num_channels != 3)
        return fv_error(FV_EINVAL, "%s: num_channels must be 3 (got %d)", fn, c->num_channels);
    if (c->hidden_size % c->num_heads)
        return fv_error(FV_EINVAL, "%s: hidden_size %d is not a multiple of num_attention_heads %d", fn,
                        c->hidden_size, c->num_heads);
    if (c->image_size % c->patch_size)
        return fv_error(FV_EINVAL, "%s: image_size %d is not a multiple of patch_size %d", fn, c->image_size,
                        c->patch_size);
    if (!(c->layer_norm_eps > 0.0f) || !isfinite(c->layer_norm_eps))
        return fv_error(FV_EINVAL, "%s: layer_norm_eps must be > 0 (got %g)", fn, (double)c->layer_norm_eps);
    if (c->qkv_bias != 0 && c->qkv_bias != 1)
        return fv_error(FV_EINVAL, "%s: qkv_bias must be 0 or 1", fn);
    for (int i = 0; i < 3; i++) {
        if (!isfinite(c->image_mean[i]))
            return fv_error(FV_EINVAL, "%s: image_mean[%d] is not finite", fn, i);
        if (!(c->image_std[i] > 0.0f) || !isfinite(c->image_std[i]))
            return fv_error(FV_EINVAL, "%s: image_std[%d] must be > 0 (got %g)", fn, i, (double)c->image_std[i]);
    }
    if (c->short_side < 0)
        return fv_error(FV_EINVAL, "%s: fibvid_short_side must be >= 0 (got %d)", fn, c->short_side);
    if (c->sampling != FV_SAMPLING_UNIFORM && c->sampling != FV_SAMPLING_DENSE)
        return fv_error(FV_EINVAL, "%s: invalid sampling mode %d", fn, (int)c->sampling);
    int ret;
    if ((ret = fv_attn_settings_validate(&c->spatial, fn, "spatial")) ||
        (ret = fv_attn_settings_validate(&c->temporal, fn, "temporal")))
        return ret;
    if (c->num_pools < 0 || c->num_pools > FV_MAX_POOLS)
        return fv_error(FV_EINVAL, "%s: fibvid_token_pool has %d entries (at most %d)", fn, c->num_pools,
                        FV_MAX_POOLS);
    for (int32_t i = 0; i < c->num_pools; i++) {
        const FvTokenPool *tp = &c->pools[i];
        if (tp->after < 0 || tp->after > c->num_layers - 2)
            return fv_error(FV_EINVAL, "%s: fibvid_token_pool: pooling after layer %d; layers are 0..%d and the "
                            "last one cannot pool (after 0..%d)", fn, tp->after, c->num_layers - 1, c->num_layers - 2);
        if (i && tp->after <= c->pools[i - 1].after)
            return fv_error(FV_EINVAL, "%s: fibvid_token_pool: layers must be strictly increasing (%d after %d)", fn,
                            tp->after, c->pools[i - 1].after);
        if (tp->kind != FV_POOL_AVG && tp->kind != FV_POOL_MAX && tp->kind != FV_POOL_CONV)
            return fv_error(FV_EINVAL, "%s: fibvid_token_pool: invalid kind %d after layer %d", fn, (int)tp->kind,
                            tp->after);
    }
    return fv_config_check_sharing(c, &c->spatial, &c->temporal, fn);
}

int fv_config_pool_after(const FvModelConfig *c, int32_t layer)
{
    for (int32_t i = 0; i < c->num_pools; i++)
        if (c->pools[i].after == layer)
            return i;
    return -1;
}

int fv_config_check_sharing(const FvModelConfig *c, const FvAttnSettings *sp, const FvAttnSettings *tp,
                            const char *fn)
{
    for (int a = 0; a < 2; a++) {
        const uint64_t bits = a ? c->share_temporal : c->share_spatial;
        const char *key = a ? "fibvid_share_temporal" : "fibvid_share_spatial";
        const FvAttnSettings *s = a ? tp : sp;
        for (int32_t i = 0; i < FV_MAX_SHARE_LAYERS; i++) {
            if (!(bits >> i & 1))
                continue;
            if (i == 0)
                return fv_error(FV_EINVAL, "%s: %s: layer 0 has no previous layer to share from", fn, key);
            if (i >= c->num_layers)
                return fv_error(FV_EINVAL, "%s: %s: layer %d does not exist (layers 0..%d)", fn, key, i,
                                c->num_layers - 1);
            if (fv_config_pool_after(c, i - 1) >= 0)
                return fv_error(FV_EINVAL, "%s: %s: layer %d cannot share layer %d's attention: tokens are pooled "
                                "between them", fn, key, i, i - 1);
            const FvAttnKindDsp *k = fv_attn_kind_dsp(s->kind);
            if (!k || !k->keys)
                return fv_error(FV_EINVAL, "%s: %s: layer %d cannot share layer %d's %s attention: only dense and fib "
                                "attention have weights to share", fn, key, i, i - 1, k ? k->name : "unknown");
        }
    }
    return 0;
}

void fv_model_layer_grid(const FvModelConfig *c, int32_t layer, int32_t Hp, int32_t Wp, int32_t *gh, int32_t *gw)
{
    for (int32_t i = 0; c && i < c->num_pools && c->pools[i].after < layer; i++) {
        Hp = (Hp + 1) / 2;
        Wp = (Wp + 1) / 2;
    }
    *gh = Hp;
    *gw = Wp;
}

/* ---------------------------------------------------------------------------------------------- */
/* Parsing */

/* Optional integer field: absent keeps *out. */
static int get_int(const json_t *obj, const char *key, const char *what, int32_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return fv_error(FV_EINVAL, "%s: \"%s\" must be an integer", what, key);
    json_int_t x = json_integer_value(v);
    if (x < INT32_MIN || x > INT32_MAX)
        return fv_error(FV_EINVAL, "%s: \"%s\" is out of range (%lld)", what, key, (long long)x);
    *out = (int32_t)x;
    return 0;
}

static int get_bool(const json_t *obj, const char *key, const char *what, int32_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fv_error(FV_EINVAL, "%s: \"%s\" must be true or false", what, key);
    *out = json_is_true(v);
    return 0;
}

static int get_float(const json_t *obj, const char *key, const char *what, float *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return fv_error(FV_EINVAL, "%s: \"%s\" must be a number", what, key);
    *out = (float)json_number_value(v);
    return 0;
}

/* image_mean / image_std: a list of 3 numbers (or 1, or a bare number, broadcast to 3 channels). */
static int get_float3(const json_t *obj, const char *key, const char *what, float out[3])
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (json_is_number(v)) {
        out[0] = out[1] = out[2] = (float)json_number_value(v);
        return 0;
    }
    size_t n = json_array_size(v);
    if (!json_is_array(v) || (n != 3 && n != 1))
        return fv_error(FV_EINVAL, "%s: \"%s\" must be a list of 3 numbers", what, key);
    for (size_t i = 0; i < 3; i++) {
        const json_t *x = json_array_get(v, n == 1 ? 0 : i);
        if (!json_is_number(x))
            return fv_error(FV_EINVAL, "%s: \"%s\" must be a list of 3 numbers", what, key);
        out[i] = (float)json_number_value(x);
    }
    return 0;
}

/* Optional string field that must be one of @allowed (NULL-terminated); *idx = its index. */
static int get_enum(const json_t *obj, const char *key, const char *what, const char *const *allowed,
                    int *idx)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char list[128] = "";
    for (int i = 0; allowed[i]; i++) {
        if (json_is_string(v) && !strcmp(json_string_value(v), allowed[i])) {
            *idx = i;
            return 0;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"", i ? " or " : "", allowed[i]);
    }
    if (!json_is_string(v))
        return fv_error(FV_EINVAL, "%s: \"%s\" must be a string (%s)", what, key, list);
    return fv_error(FV_EINVAL, "%s: \"%s\" is \"%.64s\"; must be %s", what, key, json_string_value(v), list);
}

static int parse_attn(const json_t *root, const char *key, const char *what, FvAttnSettings *a)
{
    const char *kinds[16] = { NULL }; /* the registry's names, in FvAttnKind order */
    int32_t nk;
    const FvAttnKindDsp *const *reg = fv_attn_kinds(&nk);
    for (int32_t i = 0; i < nk && i < 15; i++)
        kinds[i] = reg[i]->name;
    static const char *const variants[] = { "modified", "original", NULL };
    static const char *const sems[] = { "zero", "exclude", NULL };
    char ctx[512];
    const json_t *o = json_object_get(root, key);
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return fv_error(FV_EINVAL, "%s: \"%s\" must be an object {\"kind\", \"variant\", \"semantics\", "
                        "\"wmin\", \"wmax\", \"shuffle\"}", what, key);
    snprintf(ctx, sizeof(ctx), "%s: %s", what, key);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (strcmp(k, "kind") && strcmp(k, "variant") && strcmp(k, "semantics") && strcmp(k, "wmin") &&
            strcmp(k, "wmax") && strcmp(k, "shuffle"))
            return fv_error(FV_EINVAL, "%s: unknown key \"%.64s\" (kind, variant, semantics, wmin, wmax, shuffle)",
                            ctx, k);
    }
    int kind = (int)a->kind, var = (int)a->variant, sem = (int)a->semantics, ret;
    if ((ret = get_enum(o, "kind", ctx, kinds, &kind)) || (ret = get_enum(o, "variant", ctx, variants, &var)) ||
        (ret = get_enum(o, "semantics", ctx, sems, &sem)) || (ret = get_int(o, "wmin", ctx, &a->wmin)) ||
        (ret = get_int(o, "wmax", ctx, &a->wmax)) || (ret = get_bool(o, "shuffle", ctx, &a->shuffle)))
        return ret;
    a->kind = (FvAttnKind)kind;
    a->variant = (FvFibVariant)var;
    a->semantics = (FvFibSemantics)sem;
    return 0;
}

/* "fibvid_token_pool": [{"after": i, "kind": "avg" | "max" | "conv"}, ...] */
static int parse_pools(const json_t *root, const char *what, FvModelConfig *c)
{
    static const char *const kinds[] = { "avg", "max", "conv", NULL };
    const json_t *a = json_object_get(root, "fibvid_token_pool");
    char ctx[512];
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return fv_error(FV_EINVAL, "%s: \"fibvid_token_pool\" must be a list of {\"after\": layer, \"kind\": "
                        "\"avg\" | \"max\" | \"conv\"}", what);
    if (json_array_size(a) > FV_MAX_POOLS)
        return fv_error(FV_EINVAL, "%s: \"fibvid_token_pool\" has %zu entries (at most %d)", what, json_array_size(a),
                        FV_MAX_POOLS);
    c->num_pools = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *o = json_array_get(a, i);
        snprintf(ctx, sizeof(ctx), "%s: fibvid_token_pool[%zu]", what, i);
        if (!json_is_object(o))
            return fv_error(FV_EINVAL, "%s must be an object {\"after\", \"kind\"}", ctx);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)o, k, v) {
            if (strcmp(k, "after") && strcmp(k, "kind"))
                return fv_error(FV_EINVAL, "%s: unknown key \"%.64s\" (after, kind)", ctx, k);
        }
        int32_t after = -1;
        int kind = -1, ret;
        if ((ret = get_int(o, "after", ctx, &after)) || (ret = get_enum(o, "kind", ctx, kinds, &kind)))
            return ret;
        if (!json_object_get(o, "after") || !json_object_get(o, "kind"))
            return fv_error(FV_EINVAL, "%s: needs both \"after\" and \"kind\"", ctx);
        c->pools[c->num_pools].after = after;
        c->pools[c->num_pools++].kind = (FvPoolKind)kind;
    }
    return 0;
}

/* "fibvid_share_spatial" / "fibvid_share_temporal": [layer, ...] -> a bit per layer */
static int parse_share(const json_t *root, const char *key, const char *what, uint64_t *bits)
{
    const json_t *a = json_object_get(root, key);
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return fv_error(FV_EINVAL, "%s: \"%s\" must be a list of layer numbers", what, key);
    *bits = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= FV_MAX_SHARE_LAYERS)
            return fv_error(FV_EINVAL, "%s: \"%s\" entry %zu must be a layer number 0..%d", what, key, i,
                            FV_MAX_SHARE_LAYERS - 1);
        const int64_t l = json_integer_value(v);
        if (*bits >> l & 1)
            return fv_error(FV_EINVAL, "%s: \"%s\" lists layer %lld twice", what, key, (long long)l);
        *bits |= (uint64_t)1 << l;
    }
    return 0;
}

/* Keys starting with "fibvid_" that fibvid does not know: a typo (or a newer fibvid's feature) would otherwise
 * run the model without it. */
static int check_fibvid_keys(const json_t *root, const char *what)
{
    static const char *const known[] = {
        "fibvid_sampling", "fibvid_sampling_rate", "fibvid_short_side", "fibvid_spatial_attention",
        "fibvid_temporal_attention", "fibvid_token_pool", "fibvid_share_spatial", "fibvid_share_temporal",
        "fibvid_precision", NULL,
    };
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)root, k, v) {
        if (strncmp(k, "fibvid_", 7))
            continue;
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(k, known[i]);
        if (!ok)
            return fv_error(FV_EINVAL, "%s: unknown key \"%.64s\" (fibvid knows fibvid_sampling, fibvid_sampling_rate, "
                            "fibvid_short_side, fibvid_spatial_attention, fibvid_temporal_attention, fibvid_token_pool, "
                            "fibvid_share_spatial, fibvid_share_temporal, fibvid_precision)", what, k);
    }
    return 0;
}

static void free_labels(char **labels, int32_t n)
{
    if (!labels)
        return;
    for (int32_t i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
}

/* id2label {"0": "name", ...} -> labels; keys must be exactly 0 .. n-1. */
static int parse_labels(const json_t *root, const char *what, FvModelConfig *cfg, char ***out)
{
    const json_t *id2label = json_object_get(root, "id2label");
    const json_t *jn = json_object_get(root, "num_labels");
    char **labels = NULL;
    int32_t n = 0;
    int ret;

    if (jn && (!json_is_integer(jn) || json_integer_value(jn) <= 0))
        return fv_error(FV_EINVAL, "%s: \"num_labels\" must be a positive integer", what);
    /* bounded before a name is allocated for each (2^31 labels took 24 GB and the OOM killer) */
    if (jn && json_integer_value(jn) > FV_MAX_LABELS)
        return fv_error(FV_EINVAL, "%s: \"num_labels\" %lld is above fibvid's limit %d", what,
                        (long long)json_integer_value(jn), FV_MAX_LABELS);
    if (id2label && !json_is_null(id2label)) {
        if (!json_is_object(id2label))
            return fv_error(FV_EINVAL, "%s: \"id2label\" must be an object {\"0\": \"name\", ...}", what);
        if (json_object_size(id2label) == 0)
            return fv_error(FV_EINVAL, "%s: \"id2label\" is empty", what);
        if (json_object_size(id2label) > FV_MAX_LABELS)
            return fv_error(FV_EINVAL, "%s: \"id2label\" has %zu entries, above fibvid's limit %d", what,
                            json_object_size(id2label), FV_MAX_LABELS);
        n = (int32_t)json_object_size(id2label);
        if (jn && json_integer_value(jn) != n)
            return fv_error(FV_EINVAL, "%s: \"num_labels\" is %lld but \"id2label\" has %d entries", what,
                            (long long)json_integer_value(jn), n);
        labels = calloc((size_t)n, sizeof(char *));
        if (!labels)
            return fv_error(FV_ENOMEM, "%s: out of memory", what);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)id2label, k, v) {
            char *end;
            long idx = strtol(k, &end, 10);
            if (!*k || *end || k[0] == '-' || k[0] == '+' || k[0] == ' ' || idx < 0 || idx >= n) {
                ret = fv_error(FV_EINVAL, "%s: \"id2label\" key \"%.32s\" is not a class index in 0..%d", what, k,
                               n - 1);
                goto fail;
            }
            if (labels[idx]) {
                ret = fv_error(FV_EINVAL, "%s: \"id2label\" has class %ld twice", what, idx);
                goto fail;
            }
            if (!json_is_string(v)) {
                ret = fv_error(FV_EINVAL, "%s: \"id2label\" value of \"%.32s\" is not a string", what, k);
                goto fail;
            }
            if (!(labels[idx] = strdup(json_string_value(v)))) {
                ret = fv_error(FV_ENOMEM, "%s: out of memory", what);
                goto fail;
            }
        }
    } else if (jn) {
        n = (int32_t)json_integer_value(jn);
        labels = calloc((size_t)n, sizeof(char *));
        if (!labels)
            return fv_error(FV_ENOMEM, "%s: out of memory", what);
        for (int32_t i = 0; i < n; i++) {
            char buf[32];
            snprintf(buf, sizeof(buf), "class_%d", i);
            if (!(labels[i] = strdup(buf))) {
                ret = fv_error(FV_ENOMEM, "%s: out of memory", what);
                goto fail;
            }
        }
    } else {
        return fv_error(FV_EINVAL, "%s: neither \"id2label\" nor \"num_labels\" is given", what);
    }
    cfg->num_labels = n;
    *out = labels;
    return 0;

fail:
    free_labels(labels, n);
    return ret;
}

/* Parse @text into a JSON object; errors name the source with jansson's line and column. */
static json_t *load_object(const char *text, const char *what, int *ret)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        *ret = fv_error(FV_EINVAL, "%s: invalid JSON: %s (line %d, column %d)", what, jerr.text, jerr.line,
                        jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *ret = fv_error(FV_EINVAL, "%s: not a JSON object", what);
        return NULL;
    }
    return root;
}

int fv_config_parse(const char *json_text, const char *pre_text, const char *what, FvModelConfig *cfg,
                    char ***labels)
{
    static const char *const acts[] = { "gelu", "gelu_python", NULL };
    static const char *const atts[] = { "divided_space_time", NULL };
    static const char *const samplings[] = { "uniform", "dense", NULL };
    json_t *root = NULL, *pre = NULL;
    char **lab = NULL;
    char prewhat[512], msg[1024];
    FvModelConfig c;
    int ret = 0, idx;

    if (!json_text || !cfg || !labels)
        return fv_error(FV_EINVAL, "fv_config_parse: NULL argument");
    if (!what)
        what = "config";
    *labels = NULL;
    fv_model_config_preset(&c, "base");
    if (!(root = load_object(json_text, what, &ret)))
        goto fail;

    /* Unset fields take TimesformerConfig's defaults (those of the base preset). */
    if ((ret = get_int(root, "image_size", what, &c.image_size)) ||
        (ret = get_int(root, "patch_size", what, &c.patch_size)) ||
        (ret = get_int(root, "num_channels", what, &c.num_channels)) ||
        (ret = get_int(root, "num_frames", what, &c.num_frames)) ||
        (ret = get_int(root, "hidden_size", what, &c.hidden_size)) ||
        (ret = get_int(root, "num_hidden_layers", what, &c.num_layers)) ||
        (ret = get_int(root, "num_attention_heads", what, &c.num_heads)) ||
        (ret = get_int(root, "intermediate_size", what, &c.intermediate_size)) ||
        (ret = get_float(root, "layer_norm_eps", what, &c.layer_norm_eps)) ||
        (ret = get_bool(root, "qkv_bias", what, &c.qkv_bias)))
        goto fail;
    idx = 0;
    if ((ret = get_enum(root, "hidden_act", what, acts, &idx))) {
        snprintf(msg, sizeof(msg), "%s", fv_last_error());
        ret = fv_error(FV_ENOTSUP, "%s (fibvid implements the exact erf GELU only)", msg);
        goto fail;
    }
    if ((ret = get_enum(root, "attention_type", what, atts, &idx))) {
        snprintf(msg, sizeof(msg), "%s", fv_last_error());
        ret = fv_error(FV_ENOTSUP, "%s (only divided space-time attention is implemented)", msg);
        goto fail;
    }
    if ((ret = get_float3(root, "image_mean", what, c.image_mean)) ||
        (ret = get_float3(root, "image_std", what, c.image_std)))
        goto fail;

    idx = (int)c.sampling;
    if ((ret = get_enum(root, "fibvid_sampling", what, samplings, &idx)))
        goto fail;
    c.sampling = (FvSampling)idx;
    if ((ret = get_int(root, "fibvid_sampling_rate", what, &c.sampling_rate)) ||
        (ret = get_int(root, "fibvid_short_side", what, &c.short_side)) ||
        (ret = parse_attn(root, "fibvid_spatial_attention", what, &c.spatial)) ||
        (ret = parse_attn(root, "fibvid_temporal_attention", what, &c.temporal)) ||
        (ret = parse_pools(root, what, &c)) ||
        (ret = parse_share(root, "fibvid_share_spatial", what, &c.share_spatial)) ||
        (ret = parse_share(root, "fibvid_share_temporal", what, &c.share_temporal)) ||
        (ret = check_fibvid_keys(root, what)))
        goto fail;
    static const char *const precisions[] = { "fp32", "bf16", NULL };
    idx = -1;
    if ((ret = get_enum(root, "fibvid_precision", what, precisions, &idx)))
        goto fail;
    c.precision = idx < 0 ? FV_PRECISION_DEFAULT : idx ? FV_PRECISION_BF16 : FV_PRECISION_FP32;

    /* preprocessor_config.json overrides config.json: it is what HF's image processor applies. */
    if (pre_text) {
        snprintf(prewhat, sizeof(prewhat), "%s (preprocessor config)", what);
        if (!(pre = load_object(pre_text, prewhat, &ret)))
            goto fail;
        if ((ret = get_float3(pre, "image_mean", prewhat, c.image_mean)) ||
            (ret = get_float3(pre, "image_std", prewhat, c.image_std)))
            goto fail;
        /* resize-then-crop: size {"shortest_edge": S} is the short side before the crop */
        const json_t *size = json_object_get(pre, "size");
        if (json_is_object(size) && json_object_get(size, "shortest_edge") &&
            !json_object_get(root, "fibvid_short_side")) {
            if ((ret = get_int(size, "shortest_edge", prewhat, &c.short_side)))
                goto fail;
        }
    }

    if ((ret = parse_labels(root, what, &c, &lab)))
        goto fail;
    if ((ret = fv_model_config_validate(&c))) {
        /* re-word the validator's message to name the config file */
        snprintf(msg, sizeof(msg), "%s", fv_last_error());
        const char *colon = strstr(msg, ": ");
        ret = fv_error(ret, "%s: %s", what, colon ? colon + 2 : msg);
        goto fail;
    }
    *cfg = c;
    *labels = lab;
    json_decref(root);
    json_decref(pre);
    return 0;

fail:
    free_labels(lab, c.num_labels);
    json_decref(root);
    json_decref(pre);
    return ret;
}

/* ---------------------------------------------------------------------------------------------- */
/* Serialising */

/* The shortest decimal that reads back as the same float (0.45f -> 0.45, not 0.449999988). */
static json_t *json_float(float f)
{
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *json_float3(const float v[3])
{
    json_t *a = json_array();
    for (int i = 0; a && i < 3; i++)
        json_array_append_new(a, json_float(v[i]));
    return a;
}

static json_t *attn_to_json(const FvAttnSettings *a)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "kind", json_string(fv_attn_kind_name(a->kind)));
    json_object_set_new(o, "variant", json_string(a->variant == FV_FIB_ORIGINAL ? "original" : "modified"));
    json_object_set_new(o, "semantics", json_string(a->semantics == FV_FIB_EXCLUDE ? "exclude" : "zero"));
    json_object_set_new(o, "wmin", json_integer(a->wmin));
    json_object_set_new(o, "wmax", json_integer(a->wmax));
    json_object_set_new(o, "shuffle", json_boolean(a->shuffle));
    return o;
}

char *fv_config_to_json(const FvModelConfig *c, char *const *labels)
{
    if (!c)
        return NULL;
    json_t *root = json_object(), *id2label = json_object(), *label2id = json_object(), *arch = json_array();
    char *text = NULL;
    if (!root || !id2label || !label2id || !arch) {
        json_decref(id2label);
        json_decref(label2id);
        json_decref(arch);
        goto done;
    }
    json_array_append_new(arch, json_string("TimesformerForVideoClassification"));
    json_object_set_new(root, "architectures", arch);
    json_object_set_new(root, "model_type", json_string("timesformer"));
    json_object_set_new(root, "image_size", json_integer(c->image_size));
    json_object_set_new(root, "patch_size", json_integer(c->patch_size));
    json_object_set_new(root, "num_channels", json_integer(c->num_channels));
    json_object_set_new(root, "num_frames", json_integer(c->num_frames));
    json_object_set_new(root, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(root, "num_hidden_layers", json_integer(c->num_layers));
    json_object_set_new(root, "num_attention_heads", json_integer(c->num_heads));
    json_object_set_new(root, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(root, "hidden_act", json_string("gelu"));
    json_object_set_new(root, "layer_norm_eps", json_float(c->layer_norm_eps));
    json_object_set_new(root, "qkv_bias", json_boolean(c->qkv_bias));
    json_object_set_new(root, "attention_type", json_string("divided_space_time"));
    json_object_set_new(root, "num_labels", json_integer(c->num_labels));
    for (int32_t i = 0; i < c->num_labels; i++) {
        char key[32], fallback[32];
        snprintf(key, sizeof(key), "%d", i);
        snprintf(fallback, sizeof(fallback), "class_%d", i);
        const char *name = labels && labels[i] ? labels[i] : fallback;
        json_t *s = json_string(name);
        if (!s) /* not UTF-8: keep the file loadable */
            s = json_string(fallback);
        json_object_set_new(label2id, json_string_value(s), json_integer(i));
        json_object_set_new(id2label, key, s);
    }
    json_object_set_new(root, "id2label", id2label);
    json_object_set_new(root, "label2id", label2id);
    json_object_set_new(root, "image_mean", json_float3(c->image_mean));
    json_object_set_new(root, "image_std", json_float3(c->image_std));
    json_object_set_new(root, "fibvid_sampling", json_string(c->sampling == FV_SAMPLING_DENSE ? "dense" : "uniform"));
    json_object_set_new(root, "fibvid_sampling_rate", json_integer(c->sampling_rate));
    json_object_set_new(root, "fibvid_short_side", json_integer(c->short_side));
    json_object_set_new(root, "fibvid_spatial_attention", attn_to_json(&c->spatial));
    json_object_set_new(root, "fibvid_temporal_attention", attn_to_json(&c->temporal));
    if (c->precision != FV_PRECISION_DEFAULT) /* only when recorded: configs without it stay as before */
        json_object_set_new(root, "fibvid_precision", json_string(c->precision == FV_PRECISION_BF16 ? "bf16" : "fp32"));
    /* PSViT keys only when used: configs without them stay as before */
    if (c->num_pools > 0) {
        static const char *const pk[] = { "avg", "max", "conv" };
        json_t *a = json_array();
        for (int32_t i = 0; i < c->num_pools; i++)
            json_array_append_new(a, json_pack("{s:i, s:s}", "after", c->pools[i].after, "kind",
                                               pk[(int)c->pools[i].kind]));
        json_object_set_new(root, "fibvid_token_pool", a);
    }
    for (int t = 0; t < 2; t++) {
        const uint64_t bits = t ? c->share_temporal : c->share_spatial;
        if (!bits)
            continue;
        json_t *a = json_array();
        for (int32_t i = 0; i < FV_MAX_SHARE_LAYERS; i++)
            if (bits >> i & 1)
                json_array_append_new(a, json_integer(i));
        json_object_set_new(root, t ? "fibvid_share_temporal" : "fibvid_share_spatial", a);
    }
    text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
done:
    json_decref(root);
    return text;
}
