/* The fit loop `fibvid train` runs: the model (a preset, a JSON config, or a model to fine-tune with a new
 * classifier when its labels are not the data's), the data loaders, then per epoch the steps, validation
 * through the prediction path, an atomic checkpoint (weights, optimizer state, checkpoint.json naming both)
 * and a line in train.jsonl. A resumed run checks that its settings are the checkpoint's, reloads the
 * weights and optimizer state, and cuts the log back to the checkpoint's epoch. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fibvid/dist.h"
#include "fibvid/predict.h"
#include "fibvid/train.h"
#include "model/model_internal.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/trainer_part.h"
#include "util/util.h"

enum { RNG_WEIGHTS = 1, RNG_CLASSIFIER = 2 };

void fv_fit_default_settings(FvFitSettings *s)
{
    memset(s, 0, sizeof(*s));
    s->hflip = -1;
    s->reverse = -1;
    s->config = "synth";
    s->epochs = 30;
    s->batch = 16;
    s->lr = 1e-3;
    s->min_lr = 1e-5;
    s->warmup = 2.0;
    s->weight_decay = 0.05;
    s->label_smoothing = 0.1;
    s->clip_norm = 1.0;
    s->castling_aux_until = 0.8;
    s->seed = 1;
    s->log_every = 10;
}

/* ---------------------------------------------------------------------------------------------------- */
/* the model                                                                                             */

/* A JSON training config: HF TimesformerConfig names; num_labels is the data's. */
static int load_json_config(const char *path, int32_t num_labels, FvModelConfig *c)
{
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    char **labels = NULL;
    int ret;
    if (!o)
        return fv_error(FV_EINVAL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    if (!json_is_object(o)) {
        json_decref(o);
        return fv_error(FV_EINVAL, "%s: not a JSON object", path);
    }
    json_object_del(o, "id2label");
    json_object_del(o, "label2id");
    json_object_set_new(o, "num_labels", json_integer(num_labels));
    char *text = json_dumps(o, 0);
    json_decref(o);
    if (!text)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    ret = fv_config_parse(text, NULL, path, c, &labels);
    free(text);
    if (ret < 0)
        return ret;
    for (int32_t i = 0; i < c->num_labels; i++)
        free(labels[i]);
    free(labels);
    return 0;
}

/* A checkpoint to fine-tune or resume, in fp32 whatever its config's "fibvid_precision" (a default for inference:
 * a bf16 model keeps no fp32 weights to train). */
static int load_for_training(FvModel **m, const char *path)
{
    const FvModelLoadOptions lo = { .precision = FV_PRECISION_FP32 };
    return fv_model_load_ex(m, path, &lo);
}

/* A new model of the settings' preset or JSON config, with the data's @nc classes. */
static int new_model(const FvFitSettings *s, int32_t nc, FvModel **m)
{
    FvModelConfig cfg;
    int ret;
    const char *name = s->config ? s->config : "synth";
    const int preset = fv_model_config_preset(&cfg, name) == 0;
    if (!preset) {
        if (!fv_file_exists(name))
            return fv_error(FV_EINVAL, "config %s: neither a preset (synth, test, tiny, small, base) nor a readable "
                            "file", name);
        if ((ret = load_json_config(name, nc, &cfg)) < 0)
            return ret;
    } else {
        cfg.spatial.kind = cfg.temporal.kind = FV_ATTN_FIB; /* presets train Fibottention */
    }
    cfg.num_labels = nc;
    if (s->num_pools) { /* PSViT: token pooling and attention sharing as asked (SPEC 4.3) */
        cfg.num_pools = s->num_pools;
        memcpy(cfg.pools, s->pools, sizeof(cfg.pools));
    }
    if (s->share_spatial)
        cfg.share_spatial = s->share_spatial;
    if (s->share_temporal)
        cfg.share_temporal = s->share_temporal;
    if (s->frames)
        cfg.num_frames = s->frames;
    if (s->image_size)
        cfg.image_size = s->image_size;
    cfg.short_side = 0;
    if ((ret = fv_model_config_validate(&cfg)) < 0) {
        char msg[1024];
        const char *colon = strstr(fv_last_error(), ": ");
        snprintf(msg, sizeof(msg), "%s", colon ? colon + 2 : fv_last_error());
        return fv_error(ret, "config %s: %s", name, msg);
    }
    if ((ret = fv_model_create_random(m, &cfg, fv_rng_stream(s->seed, RNG_WEIGHTS, 0, 0))) < 0 ||
        (!s->embed_random && (ret = fv_model_init_sincos_embeddings(*m)) < 0))
        return ret;
    return 0;
}

/* Dataset class -> model label into @map: kept when a model to fine-tune already has exactly these classes,
 * else a new classifier for them (*@reset = 1). */
static int map_labels(const FvFitSettings *s, FvModel *m, const FvDataset *ds, int32_t *map, int *reset)
{
    const int32_t NC = ds->num_classes, L = fv_model_config(m)->num_labels;
    int keep = 0, ret;
    *reset = 0;
    if (s->init_model && L == NC) {
        const char **ml = calloc((size_t)L, sizeof(char *));
        if (!ml)
            return fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
        for (int32_t i = 0; i < L; i++)
            ml[i] = fv_model_label(m, i);
        FvLabelMatchSettings lm;
        fv_label_match_default_settings(&lm);
        keep = fv_label_match(ds, ml, L, &lm, map) == 0;
        free(ml);
        for (int32_t i = 0; keep && i < NC; i++) /* a one-to-one map only */
            for (int32_t j = 0; j < i; j++)
                if (map[i] == map[j])
                    keep = 0;
    }
    if (keep)
        return 0;
    if ((ret = fv_model_reset_classifier(m, NC, (char *const *)ds->classes, fv_rng_stream(s->seed, RNG_CLASSIFIER, 0, 0))) < 0)
        return ret;
    for (int32_t i = 0; i < NC; i++)
        map[i] = i;
    *reset = s->init_model != NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* settings, checkpoints and the log                                                                     */

/* Keep only the log lines up to the checkpoint a resumed run continues from: epochs <= @epoch, and the step
 * lines of the next epoch up to optimizer step @step (a checkpoint taken mid-epoch); a "done" line goes too
 * (a finished run being extended ends with a new one). */
static int log_truncate(const char *path, int64_t epoch, int64_t step)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *line = NULL, *keep = NULL;
    size_t cap = 0, klen = 0, kcap = 0;
    ssize_t len;
    int ret = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        const int64_t e = o ? (int64_t)json_integer_value(json_object_get(o, "epoch")) : INT64_MAX;
        const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
        const int done = type && !strcmp(type, "done");
        const int early_step = type && !strcmp(type, "step") && e == epoch + 1 &&
                               (int64_t)json_integer_value(json_object_get(o, "step")) <= step;
        json_decref(o);
        if (!o || done || (e > epoch && !early_step) || line[len - 1] != '\n')
            continue;
        if (klen + (size_t)len + 1 > kcap) {
            kcap = (klen + (size_t)len + 1) * 2;
            char *k = realloc(keep, kcap);
            if (!k) {
                ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            keep = k;
        }
        memcpy(keep + klen, line, (size_t)len);
        klen += (size_t)len;
    }
    fclose(f);
    f = NULL;
    ret = fv_write_file_atomic(path, keep ? keep : "", klen);
done:
    if (f)
        fclose(f);
    free(line);
    free(keep);
    return ret;
}

static int log_line(FILE *log, const char *path, json_t *o)
{
    if (!log) { /* ranks other than 0 write no log */
        json_decref(o);
        return 0;
    }
    if (!o)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    json_decref(o);
    if (!s)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    int bad = fprintf(log, "%s\n", s) < 0 || fflush(log) != 0;
    free(s);
    return bad ? fv_error(fv_write_error_code(errno), "%s: cannot write: %s", path, strerror(errno)) : 0;
}

/* A model or config file as an absolute path (a resumed run may start elsewhere); a preset name as it is. */
static json_t *path_json(const char *name)
{
    FvModelConfig c;
    char *abs = fv_model_config_preset(&c, name) == 0 ? NULL : realpath(name, NULL);
    json_t *v = json_string(abs ? abs : name);
    free(abs);
    return v;
}

/* Everything that changes the result, compared by resume. */
static json_t *settings_json(const FvFitSettings *s, const FvModelConfig *c, const FvDataset *tr, const FvDataset *va,
                             int32_t T, int32_t S, int32_t lo, int32_t hi, int32_t F, const char *hflip,
                             const char *reverse)
{
    char hash[32], vhash[32];
    snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)fv_dataset_hash(tr));
    snprintf(vhash, sizeof(vhash), "%016llx", va ? (unsigned long long)fv_dataset_hash(va) : 0ull);
    json_t *j = json_object();
    json_object_set_new(j, "train", json_string(tr->description));
    json_object_set_new(j, "train_hash", json_string(hash));
    json_object_set_new(j, "val", va ? json_string(va->description) : json_null());
    json_object_set_new(j, "val_hash", json_string(vhash));
    json_object_set_new(j, "config", s->init_model ? json_null() : path_json(s->config ? s->config : "synth"));
    json_object_set_new(j, "init_model", s->init_model ? path_json(s->init_model) : json_null());
    json_object_set_new(j, "embed_init", s->init_model ? json_null() : json_string(s->embed_random ? "random" : "sincos"));
    json_object_set_new(j, "frames", json_integer(T));
    json_object_set_new(j, "image_size", json_integer(S));
    json_object_set_new(j, "epochs", json_integer(s->epochs));
    json_object_set_new(j, "batch", json_integer(s->batch));
    json_object_set_new(j, "lr", json_real(s->lr));
    json_object_set_new(j, "min_lr", json_real(s->min_lr));
    json_object_set_new(j, "warmup_epochs", json_real(s->warmup));
    json_object_set_new(j, "weight_decay", json_real(s->weight_decay));
    json_object_set_new(j, "label_smoothing", json_real(s->label_smoothing));
    json_object_set_new(j, "clip_norm", json_real(s->clip_norm));
    if (c->spatial.kind == FV_ATTN_CASTLING || c->temporal.kind == FV_ATTN_CASTLING) /* runs of other kinds resume as before */
        json_object_set_new(j, "castling_aux_until", json_real(s->castling_aux_until));
    if (c->num_pools || c->share_spatial || c->share_temporal) { /* PSViT, likewise only when used */
        static const char *const pk[] = { "avg", "max", "conv" };
        json_t *pools = json_array(), *ss = json_array(), *st = json_array();
        for (int32_t i = 0; i < c->num_pools; i++)
            json_array_append_new(pools, json_pack("{s:i, s:s}", "after", c->pools[i].after, "kind",
                                                   pk[(int)c->pools[i].kind]));
        for (int32_t i = 0; i < FV_MAX_SHARE_LAYERS; i++) {
            if (c->share_spatial >> i & 1)
                json_array_append_new(ss, json_integer(i));
            if (c->share_temporal >> i & 1)
                json_array_append_new(st, json_integer(i));
        }
        json_object_set_new(j, "token_pool", pools);
        json_object_set_new(j, "share_spatial", ss);
        json_object_set_new(j, "share_temporal", st);
    }
    json_object_set_new(j, "seed", json_integer((json_int_t)s->seed));
    json_object_set_new(j, "cache_frames", json_integer(F));
    json_object_set_new(j, "scale", json_pack("[i, i]", lo, hi));
    json_object_set_new(j, "hflip", json_string(hflip));
    json_object_set_new(j, "reverse", json_string(reverse));
    return j;
}

/* ---------------------------------------------------------------------------------------------------- */
/* validation                                                                                            */

typedef struct ValResult {
    double top1, mean_class, loss;
    int64_t n;
} ValResult;

/* One view of every decoded validation clip through the prediction path, @B clips per forward: top-1, mean
 * class accuracy and the plain cross-entropy. With several ranks each predicts every nranks-th clip and the
 * figures come from all of them, the same on every rank. Collective. */
static int validate(FvState *st, const FvLoader *vl, const FvDataset *ds, const int32_t *map, int32_t B, int32_t T,
                    int32_t S, float *batch, ValResult *res)
{
    const int32_t L = fv_model_config(fv_state_model(st))->num_labels;
    const int32_t rank = fv_dist_rank(), nranks = fv_dist_size();
    const int64_t V = fv_loader_num_clips(vl);
    const size_t clip = (size_t)T * 3 * S * S, row = 2 * (size_t)L + 2; /* logits, probabilities, class, done */
    FvMetrics *mt = NULL;
    FvPredictResult *pr = calloc((size_t)B, sizeof(*pr));
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)B);
    int32_t *classes = malloc(sizeof(int32_t) * (size_t)B);
    float *all = calloc((size_t)(V ? V : 1) * row, sizeof(float));
    double loss = 0.0;
    int ret = 0;
    memset(res, 0, sizeof(*res));
    FvPredictSettings ps;
    fv_predict_default_settings(&ps);
    ps.batch = B;
    if (!pr || !ids || !classes || !all) {
        ret = fv_error(FV_ENOMEM, "validation: out of memory");
        goto local_done;
    }
    for (int64_t i = rank; i < V;) {
        int32_t nb = 0;
        for (; i < V && nb < B; i += nranks) {
            if ((ret = fv_loader_view(vl, i, batch + nb * clip, &classes[nb])) < 0)
                goto local_done;
            if (ret == 0)
                continue;
            ids[nb++] = i;
        }
        ret = 0;
        if (!nb)
            break;
        if ((ret = fv_predict_views(st, batch, nb, 1, T, S, S, &ps, pr)) < 0)
            goto local_done;
        for (int32_t b = 0; b < nb; b++) {
            float *r = all + (size_t)ids[b] * row;
            memcpy(r, pr[b].logits, sizeof(float) * (size_t)L);
            memcpy(r + L, pr[b].probs, sizeof(float) * (size_t)L);
            r[2 * L] = (float)classes[b];
            r[2 * L + 1] = 1.0f;
            fv_predict_result_free(&pr[b]);
        }
    }
local_done:
    if ((ret = fv_dist_agree(ret, 0, NULL)) < 0 || (ret = fv_dist_sum_f32(all, (size_t)V * row)) < 0)
        goto done;
    if ((ret = fv_metrics_create(&mt, ds->num_classes)) < 0)
        goto done;
    for (int64_t i = 0; i < V; i++) { /* in list order, as one process adds them */
        const float *r = all + (size_t)i * row;
        if (r[2 * L + 1] < 0.5f)
            continue;
        const int32_t cls = (int32_t)lroundf(r[2 * L]), target = map[cls];
        loss += fv_loss_ce_smooth(r, &target, 1, L, 0.0f, NULL, NULL);
        FvPrediction p;
        if ((ret = fv_prediction_from_probs(&p, r + L, L, i, cls, map, ds->num_classes)) < 0 ||
            (ret = fv_metrics_add(mt, &p)) < 0)
            goto done;
    }
    FvMetricsSummary sm;
    fv_metrics_summary(mt, &sm);
    res->top1 = sm.top1_acc;
    res->mean_class = sm.mean_class_acc;
    res->n = sm.num_evaluated;
    res->loss = sm.num_evaluated ? loss / (double)sm.num_evaluated : 0.0;
    ret = 0;
done:
    fv_metrics_free(&mt);
    for (int32_t b = 0; pr && b < B; b++)
        fv_predict_result_free(&pr[b]);
    free(pr);
    free(ids);
    free(classes);
    free(all);
    return ret;
}

/* ---------------------------------------------------------------------------------------------------- */
/* the run                                                                                               */

typedef struct Ctx {
    const FvFitSettings *s;
    const char *what;
    char first[1024];   /* the first clip left out and why */
} Ctx;

static void on_skipped(void *user, const char *path, const char *reason)
{
    Ctx *c = user;
    if (!c->first[0])
        snprintf(c->first, sizeof(c->first), "%s", reason); /* the reason names the file */
    (void)path;
    if (c->s->cb.skipped)
        c->s->cb.skipped(c->s->cb.user, path, reason);
}

static void on_progress(void *user, int64_t done, int64_t total)
{
    const Ctx *c = user;
    if (c->s->cb.decoding)
        c->s->cb.decoding(c->s->cb.user, c->what, done, total);
}

/* Every rank must have decoded the same clips of @l (the list @ds): a clip this rank could not read but another
 * could is an FV_ENODATA naming it (a node missing files or a codec). Collective. */
static int same_clips(const FvLoader *l, const FvDataset *ds, const Ctx *c)
{
    const int64_t n = fv_loader_num_clips(l);
    float *cnt = malloc(sizeof(float) * (size_t)(n ? n : 1));
    int ret = cnt ? 0 : fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
    for (int64_t i = 0; cnt && i < n; i++)
        cnt[i] = (float)fv_loader_clip_ok(l, i);
    if ((ret = fv_dist_agree(ret, 0, NULL)) < 0 || (ret = fv_dist_sum_f32(cnt, (size_t)n)) < 0) {
        free(cnt);
        return ret;
    }
    for (int64_t i = 0; i < n; i++)
        if (!fv_loader_clip_ok(l, i) && cnt[i] > 0.5f) {
            ret = fv_error(FV_ENODATA, "%s clip %s cannot be read on this rank, though %d other rank(s) read it "
                           "(the first clip this rank left out: %s): every rank needs every clip", c->what,
                           ds->entries[i].path, (int)(cnt[i] + 0.5f), c->first);
            break;
        }
    free(cnt);
    return fv_dist_agree(ret, 0, NULL);
}

/* The settings, the weights and (resumed) the optimizer state of every rank must be rank 0's. Collective. */
static int same_state(const json_t *settings, FvTrainer *tr)
{
    char *text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
    int ret = text ? 0 : fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
    if ((ret = fv_dist_agree(ret, 0, NULL)) < 0)
        return ret;
    ret = fv_dist_check_same(text, strlen(text), "settings");
    free(text);
    FvOptimState os;
    fv_trainer_optim_state(tr, &os);
    const size_t bytes = sizeof(float) * fv_trainer_num_params(tr);
    if (ret >= 0)
        ret = fv_dist_check_same(fv_trainer_params(tr), bytes, "weights");
    if (ret >= 0)
        ret = fv_dist_check_same(os.m, bytes, "optimizer moments (m)");
    if (ret >= 0)
        ret = fv_dist_check_same(os.v, bytes, "optimizer moments (v)");
    if (ret >= 0)
        ret = fv_dist_check_same(&os.step, sizeof(os.step), "optimizer step counts");
    return ret;
}

static int check_settings(const FvFitSettings *s)
{
    if (!s->train || !s->root || !s->out_dir)
        return fv_error(FV_EINVAL, "fv_fit_run: the training list, its root and the output directory are required");
    if (s->epochs < 1 || s->batch < 1 || s->batch > 65536 || s->stop_after < 0 || s->log_every < 0)
        return fv_error(FV_EINVAL, "fv_fit_run: %lld epochs of batch %d", (long long)s->epochs, s->batch);
    if (!(s->lr > 0.0) || !(s->min_lr >= 0.0) || s->min_lr > s->lr || !(s->warmup >= 0.0) ||
        !(s->weight_decay >= 0.0) || !(s->label_smoothing >= 0.0) || !(s->label_smoothing < 1.0) ||
        !(s->clip_norm >= 0.0) || !(s->castling_aux_until >= 0.0) || s->castling_aux_until > 1.0)
        return fv_error(FV_EINVAL, "fv_fit_run: bad optimisation settings");
    if (s->init_model && (s->num_pools || s->share_spatial || s->share_temporal))
        return fv_error(FV_EINVAL, "fv_fit_run: token pooling and attention sharing change a model's structure: they "
                        "apply to a new model (a config), not to one being fine-tuned");
    if (s->num_pools < 0 || s->num_pools > FV_MAX_POOLS)
        return fv_error(FV_EINVAL, "fv_fit_run: %d token poolings (at most %d)", s->num_pools, FV_MAX_POOLS);
    if (s->hflip < -1 || s->hflip > 1 || s->reverse < -1 || s->reverse > 0)
        return fv_error(FV_EINVAL, "fv_fit_run: hflip %d, reverse %d", s->hflip, s->reverse);
    if (s->val && s->val->num_classes > s->train->num_classes)
        return fv_error(FV_EINVAL, "%s: labels up to %d, the training list has %d classes", s->val->description,
                        s->val->num_classes - 1, s->train->num_classes);
    if (s->train->num_entries < 1)
        return fv_error(FV_EINVAL, "%s: no training clips", s->train->description);
    return 0;
}

int fv_fit_run(const FvFitSettings *s, FvFitResult *res)
{
    FvModel *m = NULL;
    FvTrainer *tr = NULL;
    FvState *vst = NULL;
    FvLoader *tl = NULL, *vl = NULL;
    json_t *settings = NULL, *ck = NULL;
    FILE *log = NULL;
    char *log_path = NULL, *ck_path = NULL;
    int32_t *map = NULL, *flip_to = NULL, *rev_to = NULL, *labels = NULL;
    float *batch = NULL;
    int ret;
    const double t_start = fv_time_ms();
    FvFitResult r = { .best_top1 = -1.0 };
    /* data parallel (fibvid/dist.h): every rank runs this function on its part of each batch. Only rank 0
     * writes; every failure meets the other ranks at the next SYNC (or at done:), so all stop with the
     * message of the lowest failed rank. */
    const int32_t rank = fv_dist_rank(), nranks = fv_dist_size();
    int synced = 0, pending = 0; /* the error is every rank's; a rank-0 write failed since the last SYNC */
#define SYNC()                                                                                                  \
    do {                                                                                                        \
        if ((ret = fv_dist_agree(ret < 0 ? ret : pending, 0, NULL)) < 0) {                                     \
            synced = 1;                                                                                         \
            goto done;                                                                                          \
        }                                                                                                       \
    } while (0)

    if (!s)
        return fv_error(FV_EINVAL, "fv_fit_run: NULL settings");
    if ((ret = check_settings(s)) < 0)
        return ret;
    const FvDataset *tds = s->train, *vds = s->val;
    const int32_t NC = tds->num_classes;

    /* the model: a fresh one of a named size or JSON config, or an existing one to fine-tune */
    if (s->init_model)
        ret = load_for_training(&m, s->init_model);
    else
        ret = new_model(s, NC, &m);
    if (ret < 0)
        goto done;
    if (s->cb.configure && (ret = s->cb.configure(s->cb.user, m)) < 0)
        goto done;
    map = calloc((size_t)NC, sizeof(int32_t));
    flip_to = calloc((size_t)NC, sizeof(int32_t));
    rev_to = calloc((size_t)NC, sizeof(int32_t));
    if (!map || !flip_to || !rev_to) {
        ret = fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
        goto done;
    }
    int new_classifier;
    if ((ret = map_labels(s, m, tds, map, &new_classifier)) < 0)
        goto done;
    FvModelConfig cfg = *fv_model_config(m);
    const int32_t T = cfg.num_frames, S = cfg.image_size;
    const int32_t lo = s->scale_lo ? s->scale_lo : S;
    const int32_t hi = s->scale_hi ? s->scale_hi : (int32_t)lround(S * 1.25);
    const int32_t F = s->cache_frames ? s->cache_frames : 2 * T;
    if (lo < S || hi < lo) {
        ret = fv_error(FV_EINVAL, "scale %d:%d: the short side must be at least the crop size %d", lo, hi, S);
        goto done;
    }
    if (F < T) {
        ret = fv_error(FV_EINVAL, "cache frames %d: fewer than the model's %d frames", F, T);
        goto done;
    }

    /* flips and time reversal: what the class set allows, from synth.json */
    const char *hflip_desc = "off", *reverse_desc = "off";
    const char *sj = s->synth_json;
    for (int32_t c = 0; c < NC; c++) {
        flip_to[c] = s->hflip == 1 ? c : -1;
        rev_to[c] = -1;
    }
    if (s->hflip == 1)
        hflip_desc = "on";
    if (sj && s->hflip == -1) {
        if ((ret = fv_loader_class_map(sj, tds, "flip_pairs", "hflip_invariant", flip_to)) < 0)
            goto done;
        hflip_desc = "flip_pairs";
    }
    if (sj && s->reverse == -1) {
        if ((ret = fv_loader_class_map(sj, tds, "reverse_pairs", NULL, rev_to)) < 0)
            goto done;
        reverse_desc = "reverse_pairs";
    }

    /* output directory and resume */
    if ((ret = fv_mkdir_p(s->out_dir)) < 0)
        goto done;
    log_path = fv_path_join(s->out_dir, "train.jsonl");
    ck_path = fv_path_join(s->out_dir, "checkpoint.json");
    settings = settings_json(s, &cfg, tds, vds, T, S, lo, hi, F, hflip_desc, reverse_desc);
    if (!log_path || !ck_path || !settings) {
        ret = fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
        goto done;
    }
    int64_t start_epoch = 0, start_in_epoch = 0, ck_step = -1, part_correct = 0, part_seen = 0;
    double prev_elapsed = 0.0, part_loss = 0.0;
    if (s->resume) {
        FvCkptResume cr;
        if ((ret = fv_ckpt_read(ck_path, s->out_dir, settings, s->epochs, tds->num_entries, &ck, &cr,
                                &r.conflict)) < 0)
            goto done;
        start_epoch = cr.epoch;
        start_in_epoch = cr.epoch_step;
        ck_step = cr.step;
        part_loss = cr.part_loss;
        part_correct = cr.part_correct;
        part_seen = cr.part_seen;
        r.last_epoch = start_epoch;
        r.best_epoch = cr.best_epoch;
        r.best_top1 = cr.best_top1;
        prev_elapsed = cr.elapsed;
        const char *wf = json_string_value(json_object_get(ck, "weights"));
        char *wp = wf ? fv_path_join(s->out_dir, wf) : NULL;
        fv_model_close(&m);
        ret = wp ? load_for_training(&m, wp) : fv_error(FV_EINVAL, "%s: no \"weights\"", ck_path);
        free(wp);
        if (ret < 0)
            goto done;
        if (fv_model_config(m)->num_labels != cfg.num_labels) {
            ret = fv_error(FV_EINVAL, "%s: the checkpoint has %d labels, the data %d classes", ck_path,
                           fv_model_config(m)->num_labels, cfg.num_labels);
            goto done;
        }
        if (rank == 0 && (ret = log_truncate(log_path, start_epoch, ck_step < 0 ? INT64_MAX : ck_step)) < 0)
            goto done;
    } else if (fv_file_exists(ck_path)) {
        ret = fv_error(FV_EINVAL, "%s holds a training run already: continue it with --resume or choose another "
                       "--out", s->out_dir);
        goto done;
    }
    if (rank == 0)
        fv_ckpt_remove_stale_tmp(s->out_dir);
    if (rank == 0 && !(log = fopen(log_path, s->resume ? "ab" : "wb"))) {
        ret = fv_error(fv_write_error_code(errno), "%s: cannot write: %s", log_path, strerror(errno));
        goto done;
    }

    /* the trainer */
    const int64_t N = tds->num_entries;
    const int32_t B = (int32_t)FV_MIN((int64_t)s->batch, N);
    const int32_t Bl = (B + nranks - 1) / nranks; /* the most clips of a batch one rank takes */
    const int64_t steps_per_epoch = (N + B - 1) / B, total_steps = s->epochs * steps_per_epoch;
    r.steps_per_epoch = steps_per_epoch;
    FvTrainSettings ts;
    fv_train_default_settings(&ts);
    ts.max_batch = Bl;
    ts.lr = (float)s->lr;
    ts.min_lr = (float)s->min_lr;
    ts.warmup_steps = (int64_t)llround(s->warmup * steps_per_epoch);
    ts.total_steps = total_steps;
    ts.weight_decay = (float)s->weight_decay;
    ts.label_smoothing = (float)s->label_smoothing;
    ts.clip_norm = (float)s->clip_norm;
    ts.castling_aux_until = (float)s->castling_aux_until;
    if ((ret = fv_trainer_new(&tr, m, &ts)) < 0)
        goto done;
    if (s->resume) {
        const char *of = json_string_value(json_object_get(ck, "optim"));
        char *op = of ? fv_path_join(s->out_dir, of) : NULL;
        ret = op ? fv_trainer_load_state(tr, op) : fv_error(FV_EINVAL, "%s: no \"optim\"", ck_path);
        free(op);
        if (ret < 0)
            goto done;
        FvOptimState os;
        fv_trainer_optim_state(tr, &os);
        const int64_t want = ck_step >= 0 ? ck_step : start_epoch * steps_per_epoch;
        if (os.step != want || start_in_epoch >= steps_per_epoch) {
            ret = fv_error(FV_EINVAL, "%s: the optimizer state is at step %lld, the checkpoint at step %lld (%lld of "
                           "epoch %lld)", ck_path, (long long)os.step, (long long)want, (long long)start_in_epoch,
                           (long long)start_epoch + 1);
            goto done;
        }
    }

    /* decode everything once */
    FvLoaderSettings ls;
    fv_loader_default_settings(&ls);
    ls.frames = T;
    ls.crop = S;
    ls.cache_frames = F;
    ls.scale_lo = lo;
    ls.scale_hi = hi;
    memcpy(ls.mean, cfg.image_mean, sizeof(ls.mean));
    memcpy(ls.std, cfg.image_std, sizeof(ls.std));
    ls.flip_to = flip_to;
    ls.reverse_to = rev_to;
    ls.seed = s->seed;
    Ctx tctx = { .s = s, .what = "training" }, vctx = { .s = s, .what = "validation" };
    const FvLoaderCallbacks tcb = { .skipped = on_skipped, .progress = on_progress, .user = &tctx };
    const FvLoaderCallbacks vcb = { .skipped = on_skipped, .progress = on_progress, .user = &vctx };
    if ((ret = fv_loader_open(&tl, tds, s->root, &ls, &tcb)) < 0)
        goto done;
    if (vds) {
        FvLoaderSettings vs = ls;
        vs.train = 0;
        vs.short_side = cfg.short_side > 0 ? cfg.short_side : S;
        vs.flip_to = vs.reverse_to = NULL;
        if ((ret = fv_loader_open(&vl, vds, s->root, &vs, &vcb)) < 0)
            goto done;
    }
    const int64_t train_ok = fv_loader_num_ok(tl), val_ok = vl ? fv_loader_num_ok(vl) : 0;
    if (train_ok == 0) {
        ret = fv_error(FV_ENODATA, "%s: none of the %lld training clips could be read", tds->description, (long long)N);
        goto done;
    }
    const double decode_s = fv_loader_decode_s(tl) + (vl ? fv_loader_decode_s(vl) : 0.0);
    const size_t clip_floats = (size_t)T * 3 * S * S;
    if (!(labels = malloc(sizeof(int32_t) * (size_t)Bl)) || !(batch = fv_malloc(sizeof(float) * clip_floats * (size_t)Bl))) {
        ret = fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
        goto done;
    }
    if (val_ok > 0 && (ret = fv_state_create(&vst, m)) < 0)
        goto done;
    SYNC();
    if (nranks > 1 && ((ret = same_clips(tl, tds, &tctx)) < 0 || (vl && (ret = same_clips(vl, vds, &vctx)) < 0) ||
                       (ret = same_state(settings, tr)) < 0)) {
        synced = 1; /* each of them ends with every rank knowing */
        goto done;
    }

    if (!s->resume) {
        json_t *l = json_pack("{s:s, s:i, s:O, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I}", "type", "start", "epoch", 0,
                              "settings", settings, "num_params", (json_int_t)fv_model_num_params(m),
                              "train_clips", (json_int_t)train_ok, "train_failed", (json_int_t)(N - train_ok),
                              "val_clips", (json_int_t)val_ok, "steps_per_epoch", (json_int_t)steps_per_epoch,
                              "cache_mb", (double)fv_loader_bytes(tl) / 1048576.0, "decode_s", decode_s,
                              "threads", (json_int_t)fv_num_threads());
        if ((ret = log_line(log, log_path, l)) < 0)
            goto done;
    } else if ((ret = log_line(log, log_path, json_pack("{s:s, s:I}", "type", "resume", "epoch",
                                                        (json_int_t)start_epoch))) < 0) {
        goto done;
    }
    SYNC();
    const int64_t last_epoch = s->stop_after ? FV_MIN(s->stop_after, s->epochs) : s->epochs;
    if (s->cb.started) {
        const FvFitInfo info = { .num_params = fv_model_num_params(m), .config = cfg, .train_clips = train_ok,
                                 .train_failed = N - train_ok, .val_clips = val_ok, .steps_per_epoch = steps_per_epoch,
                                 .epochs = s->epochs, .start_epoch = start_epoch, .batch = B,
                                 .cache_mb = (double)fv_loader_bytes(tl) / 1048576.0, .decode_s = decode_s,
                                 .resumed = s->resume, .new_classifier = new_classifier };
        s->cb.started(s->cb.user, &info);
    }

    const double loop0 = fv_time_ms();
    int64_t steps_run = 0;
    double train_ms = 0.0;
    for (int64_t epoch = start_epoch; epoch < last_epoch; epoch++) {
        const double e0 = fv_time_ms();
        double loss_sum = 0.0, last_lr = 0.0, data_ms = 0.0;
        int64_t seen = 0, correct = 0, st0 = 0;
        if (epoch == start_epoch && start_in_epoch > 0) { /* a checkpoint taken mid-epoch: its running figures */
            st0 = start_in_epoch;
            loss_sum = part_loss;
            correct = part_correct;
            seen = part_seen;
        }
        for (int64_t st = st0; st < steps_per_epoch; st++) {
            /* this rank's part of the step's batch, its gradient, then the sum over the ranks; a stop request or
             * a failure of any rank is every rank's from the sum of the step's figures on */
            int stop_now = s->stop && *s->stop;
            const double s0 = fv_time_ms();
            double a1 = s0, comm_ms = 0.0;
            int32_t nb = 0, total = 0;
            double part[4] = { 0.0, 0.0, 0.0, stop_now }; /* loss sum, correct, failed, stop */
            if (!stop_now || nranks > 1) {
                if ((ret = fv_loader_batch_part(tl, epoch, st, B, rank, nranks, batch, labels, &nb, &total)) < 0)
                    goto done; /* bad arguments: the same on every rank */
                if (!total)
                    continue; /* every clip of the step unreadable (on every rank alike) */
                for (int32_t b = 0; b < nb; b++)
                    labels[b] = map[labels[b]];
                a1 = fv_time_ms();
                int32_t corr = 0;
                const int lret = fv_trainer_grad_part(tr, batch, labels, nb, total, &part[0], &corr);
                part[1] = corr;
                part[2] = lret < 0 || pending < 0;
                if ((ret = fv_dist_sum_f64(part, 4)) < 0) {
                    synced = 1;
                    goto done;
                }
                if (part[2] > 0) { /* some rank failed: all learn which and why */
                    ret = lret;
                    SYNC();
                }
                stop_now = part[3] > 0;
                const double c0 = fv_time_ms(); /* the ranks met in the sum above: this is the transfer alone */
                if (!stop_now && (ret = fv_dist_sum_f32(fv_trainer_grads(tr), fv_trainer_num_params(tr))) < 0) {
                    synced = 1;
                    goto done;
                }
                comm_ms = fv_time_ms() - c0;
            }
            if (stop_now) {
                /* stopped between two steps: a checkpoint of exactly here, unless the last one is */
                FvOptimState os;
                fv_trainer_optim_state(tr, &os);
                const json_t *jp = json_pack("{s:f, s:I, s:I}", "loss_sum", loss_sum, "correct", (json_int_t)correct,
                                             "seen", (json_int_t)seen);
                FvCkptAt at = { .epoch = epoch, .epoch_step = st, .step = os.step, .best = 0,
                              .elapsed = prev_elapsed + (fv_time_ms() - t_start) / 1e3 };
                ret = jp ? 0 : fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
                if (ret >= 0 && os.step != ck_step && rank == 0)
                    ret = fv_ckpt_write(s, m, tr, ck_path, settings, &r, &at, jp, &ck);
                json_decref((json_t *)jp);
                if (ret >= 0)
                    ret = log_line(log, log_path, json_pack("{s:s, s:I, s:I, s:I}", "type", "interrupt", "epoch",
                                                            (json_int_t)epoch, "step", (json_int_t)os.step,
                                                            "epoch_step", (json_int_t)st));
                SYNC();
                r.interrupted = 1;
                r.step = os.step;
                r.step_in_epoch = st;
                r.last_epoch = epoch;
                r.elapsed_s = at.elapsed;
                ret = 0;
                goto done;
            }
            FvStepStats stats;
            if ((ret = fv_trainer_apply(tr, (float)(part[0] / total), (int32_t)part[1], &stats)) < 0)
                goto done; /* FV_ERANGE: diverged (on every rank alike); the last checkpoint stays */
            const double now = fv_time_ms();
            train_ms += now - s0;
            data_ms += a1 - s0;
            steps_run++;
            loss_sum += (double)stats.loss * total;
            correct += stats.correct;
            seen += total;
            last_lr = stats.lr;
            if (s->log_every > 0 && stats.step % s->log_every == 0) {
                json_t *l = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "type", "step", "epoch",
                                      (json_int_t)epoch + 1, "step", (json_int_t)stats.step, "loss", (double)stats.loss,
                                      "lr", (double)stats.lr, "grad_norm", (double)stats.grad_norm, "batch_acc",
                                      100.0 * stats.correct / total, "step_ms", now - a1, "data_ms", a1 - s0);
                if (l && nranks > 1) {
                    json_object_set_new(l, "ranks", json_integer(nranks));
                    json_object_set_new(l, "comm_ms", json_real(comm_ms));
                }
                if ((ret = log_line(log, log_path, l)) < 0)
                    pending = ret; /* rank 0's: every rank learns of it with the next step */
                ret = 0;
            }
            if (s->cb.step) {
                const double per_step = (now - loop0) / (double)steps_run;
                const FvFitStep fs = {
                    .eta_s = per_step * (double)((last_epoch - epoch) * steps_per_epoch - st - 1) / 1e3,
                    .epoch = epoch + 1, .step = stats.step, .steps_per_epoch = steps_per_epoch,
                    .step_in_epoch = st + 1, .last_epoch = last_epoch, .loss = stats.loss, .lr = stats.lr,
                    .grad_norm = stats.grad_norm, .batch_acc = 100.0f * (float)stats.correct / (float)total,
                    .epoch_loss = loss_sum / (double)seen, .epoch_acc = 100.0 * (double)correct / (double)seen,
                    .clips_per_s = train_ms > 0 ? (double)seen / ((now - e0) / 1e3) : 0.0,
                    .data_share = data_ms / (now - e0),
                };
                s->cb.step(s->cb.user, &fs);
            }
        }
        const double train_s = (fv_time_ms() - e0) / 1e3;
        ValResult vr = { 0 };
        if (val_ok > 0 && (ret = validate(vst, vl, vds, map, Bl, T, S, batch, &vr)) < 0)
            goto done;
        const int64_t done_epochs = epoch + 1;
        const int is_best = val_ok > 0 ? vr.top1 > r.best_top1 : 1;
        if (is_best) {
            r.best_top1 = val_ok > 0 ? vr.top1 : -1.0;
            r.best_epoch = done_epochs;
        }
        const double epoch_s = (fv_time_ms() - e0) / 1e3;
        const double elapsed = prev_elapsed + (fv_time_ms() - t_start) / 1e3;
        FvOptimState os;
        fv_trainer_optim_state(tr, &os);
        const FvCkptAt at = { .epoch = done_epochs, .epoch_step = 0, .step = os.step, .best = is_best,
                            .elapsed = elapsed };
        /* the ranks still agree (a drift would show here first), then rank 0 writes the checkpoint */
        if (nranks > 1 && (ret = same_state(settings, tr)) < 0) {
            synced = 1;
            goto done;
        }
        if (rank == 0 && (ret = fv_ckpt_write(s, m, tr, ck_path, settings, &r, &at, NULL, &ck)) < 0)
            goto done;
        ck_step = os.step;

        json_t *l = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:b, s:f, s:f, s:f}", "type", "epoch",
                              "epoch", (json_int_t)done_epochs, "step", (json_int_t)(done_epochs * steps_per_epoch),
                              "lr", last_lr, "train_loss", seen ? loss_sum / (double)seen : 0.0, "train_acc",
                              seen ? 100.0 * (double)correct / (double)seen : 0.0, "clips_per_s",
                              train_s > 0 ? (double)seen / train_s : 0.0, "epoch_s", epoch_s, "best", is_best,
                              "elapsed_s", elapsed, "train_s", train_s, "val_s", epoch_s - train_s);
        if (l && val_ok > 0) {
            json_object_set_new(l, "val_top1", json_real(vr.top1));
            json_object_set_new(l, "val_mean_class_acc", json_real(vr.mean_class));
            json_object_set_new(l, "val_loss", json_real(vr.loss));
        }
        if ((ret = log_line(log, log_path, l)) < 0)
            goto done;
        SYNC();
        r.last_epoch = done_epochs;
        if (s->cb.epoch) {
            const double per_epoch = (fv_time_ms() - loop0) / 1e3 / (double)(done_epochs - start_epoch);
            const FvFitEpoch fe = {
                .epoch = done_epochs, .epochs = s->epochs, .last_epoch = last_epoch, .start_epoch = start_epoch,
                .lr = last_lr, .train_loss = seen ? loss_sum / (double)seen : 0.0,
                .train_acc = seen ? 100.0 * (double)correct / (double)seen : 0.0,
                .clips_per_s = train_s > 0 ? (double)seen / train_s : 0.0, .train_s = train_s, .epoch_s = epoch_s,
                .elapsed_s = elapsed, .validated = val_ok > 0, .val_top1 = vr.top1, .val_mean_class = vr.mean_class,
                .val_loss = vr.loss, .best = is_best, .eta_s = per_epoch * (double)(last_epoch - done_epochs),
            };
            s->cb.epoch(s->cb.user, &fe);
        }
    }
    r.last_epoch = FV_MAX(r.last_epoch, start_epoch);
    r.elapsed_s = prev_elapsed + (fv_time_ms() - t_start) / 1e3;
    if (last_epoch == s->epochs) {
        char *fp = rank == 0 ? fv_path_join(s->out_dir, "model.safetensors") : NULL;
        ret = rank > 0 ? 0 : fp ? fv_model_save(m, fp) : fv_error(FV_ENOMEM, "fv_fit_run: out of memory");
        free(fp);
        if (ret < 0)
            goto done;
        json_t *l = json_pack("{s:s, s:I, s:f, s:I, s:f}", "type", "done", "epoch", (json_int_t)s->epochs,
                              "best_top1", r.best_top1, "best_epoch", (json_int_t)r.best_epoch, "elapsed_s",
                              r.elapsed_s);
        if ((ret = log_line(log, log_path, l)) < 0)
            goto done;
        SYNC();
        r.finished = 1;
    }
    ret = 0;
done:
    if (ret < 0 && !synced && nranks > 1)
        ret = fv_dist_agree(ret, 0, NULL); /* the other ranks are at their next SYNC */
#undef SYNC
    if (log && fclose(log) != 0 && ret >= 0)
        ret = fv_error(FV_EIO, "%s: cannot write", log_path);
    if (res)
        *res = r;
    json_decref(settings);
    json_decref(ck);
    fv_loader_close(&tl);
    fv_loader_close(&vl);
    fv_state_close(&vst);
    fv_trainer_close(&tr);
    fv_model_close(&m);
    free(log_path);
    free(ck_path);
    free(map);
    free(flip_to);
    free(rev_to);
    free(labels);
    fv_free(batch);
    return ret;
}
