/* `fibvid train`: train a TimeSformer (from scratch with a named size or a JSON config, or fine-tuning an
 * existing model) on a UCF101-layout split or a generic list, with the training core of src/train.h.
 *
 * Data path: every training clip is decoded once, before the first epoch, into an in-memory cache of
 * packed RGB24 frames: F frames per clip (--cache-frames, default 2T) at the middles of F equal segments of
 * the clip, resized so the short side is the top of the --scale range. Epochs then only augment from the
 * cache: T of the F frames (one at random in each of T equal segments: random temporal offsets), a random
 * short-side scale in the --scale range and a random square crop (one bilinear resample from the cached
 * frame), and a horizontal flip where the class set allows it (synth.json's flip_pairs swap their labels;
 * classes a flip would change without a partner are never flipped). Validation clips are decoded once, the
 * way `fibvid evaluate` decodes them (uniform middle frames, short side = crop, centre crop), so the
 * validation figures are what evaluate would report for one view.
 *
 * Everything random (initial weights, the new classifier, the shuffle of every epoch, every clip's
 * augmentation) follows from --seed, the epoch and the clip's position, never from what ran before: a
 * run stopped after an epoch and continued with --resume takes exactly the steps of an uninterrupted one
 * (bit-identical weights with -t 1; with more threads the gradient reductions may round differently). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util/util.h"
#include "model/model_internal.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "cli.h"
#include "fibvid/eval.h"

#define CMD "train"

typedef struct TrainOpts {
    const char *root, *ucf101, *list, *val_list, *classes, *synth_json;
    long split, label_base;
    int no_val;
    const char *config, *model;
    long frames, image_size;
    const char *out;
    int resume;
    long epochs, stop_after, batch;
    double lr, min_lr, warmup, wd, smoothing, clip_norm;
    long cache_frames, scale_lo, scale_hi;
    int hflip; /* -1 auto, 0 off, 1 on (every class keeps its label) */
    int reverse; /* -1 auto (synth.json's reverse_pairs), 0 off */
    int embed_random; /* --embed-init random: keep the N(0, 0.02^2) position/time embeddings */
    unsigned long long seed;
    long log_every, threads;
    int quiet;
    FvAttnOverrides attn;
} TrainOpts;

/* The default configuration for `fibvid synth` data (no --config and no -m): small and fast on a CPU. */
static void synth_preset(FvModelConfig *c)
{
    fv_model_config_preset(c, "tiny");
    c->num_layers = 4;
    c->num_frames = 8;
    c->image_size = 64;
    c->patch_size = 16;
}

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid train --ucf101 SPLIT_DIR [--root VIDEO_DIR] [--split 1|2|3] -o OUT_DIR [options]\n"
        "       fibvid train --list FILE [--val-list FILE] [--classes FILE] --root VIDEO_DIR -o OUT_DIR [options]\n"
        "\n"
        "Train a TimeSformer with AdamW (warm-up + cosine learning rate, label smoothing, gradient clipping)\n"
        "on mini-batches of augmented clips, evaluate on the validation list after every epoch and write a\n"
        "checkpoint (weights + optimizer state) every epoch. Training clips are decoded once into memory.\n"
        "\n"
        "data:\n"
        "      --ucf101 DIR        UCF101-layout split files (classInd.txt, trainlist0N.txt, testlist0N.txt);\n"
        "                          trains on the train list, validates on the test list (`fibvid synth` output)\n"
        "      --split N           official split 1, 2 or 3 (default 1)\n"
        "      --list FILE         MMAction2 `path label` / PySlowFast `path,label` training list\n"
        "      --val-list FILE     validation list of the same classes (with --list; default: none)\n"
        "      --classes FILE      class names of --list, one a line in label order (default: class_<i>)\n"
        "      --label-base B      first label number of the lists: 0 or 1 (default 0)\n"
        "      --root DIR          directory the list paths are relative to (default: the --ucf101 DIR)\n"
        "      --no-val            no validation after each epoch (default: validate when there is a list)\n"
        "model:\n"
        "      --config NAME|FILE  train from scratch: a preset synth|test|tiny|small|base or a JSON file\n"
        "                          with Hugging Face TimesformerConfig field names (num_labels is taken from\n"
        "                          the data). Default synth: hidden 192, 4 layers, 3 heads, MLP 768, 8 frames,\n"
        "                          64x64, patch 16. Presets get Fibottention in both attentions unless the\n"
        "                          attention options below say otherwise\n"
        "  -m, --model PATH        fine-tune this model instead (HF directory or fibvid file); its classifier\n"
        "                          is replaced when its labels are not the data's classes\n"
        "      --frames N          override the config's num_frames (with --config; default: the config's)\n"
        "      --image-size N      override the config's image_size (with --config; default: the config's)\n"
        "      --embed-init KIND   sincos|random: position and time embeddings of a model trained from\n"
        "                          scratch start as fixed 2-D/1-D sin-cos tables (MAE) or as N(0, 0.02^2)\n"
        "                          noise (default sincos)\n"
        "optimisation:\n"
        "      --epochs N          epochs (default 30)\n"
        "  -b, --batch N           clips per step, 1..256 (default 16)\n"
        "      --lr X              peak learning rate (default 1e-3)\n"
        "      --min-lr X          cosine floor at the last step (default 1e-5)\n"
        "      --warmup E          linear warm-up in epochs, may be fractional (default 2)\n"
        "      --weight-decay X    AdamW decoupled weight decay on matrices (default 0.05)\n"
        "      --label-smoothing X label smoothing of the cross-entropy (default 0.1)\n"
        "      --clip-norm X       clip the global gradient norm to X, 0 = off (default 1)\n"
        "      --seed S            seed of the initial weights, shuffling and augmentation (default 1)\n"
        "augmentation and cache:\n"
        "      --cache-frames F    frames kept per training clip, T..512 (default 2T); T of them are drawn per\n"
        "                          epoch, one at random in each of T equal segments\n"
        "      --scale MIN:MAX     random short side before the random crop, in pixels (default S:1.25S for\n"
        "                          crop size S; frames are cached at short side MAX)\n"
        "      --hflip MODE        auto|on|off: horizontal flips with probability 1/2. auto: only with the\n"
        "                          --ucf101 DIR's synth.json (flip_pairs swap labels, classes a flip changes\n"
        "                          otherwise are not flipped), else off; on: every clip, labels kept\n"
        "                          (default auto)\n"
        "      --reverse MODE      auto|off: play training clips backwards with probability 1/2 where the\n"
        "                          class set allows it. auto: with a synth.json (reverse_pairs swap labels,\n"
        "                          e.g. Grow <-> Shrink; other classes are never reversed), else off\n"
        "                          (default auto)\n"
        "      --synth-json FILE   class flip / reversal information for --hflip auto and --reverse auto\n"
        "                          (default: DIR/synth.json of --ucf101)\n"
        "output and running:\n"
        "  -o, --out DIR           output directory, created when missing (required): train.jsonl (the log),\n"
        "                          checkpoint.json + ckpt-epochNNNN{,.optim}.safetensors (the latest\n"
        "                          epoch), best.safetensors (best validation top-1), model.safetensors (final)\n"
        "      --resume            continue the run in --out from its last checkpoint (same settings)\n"
        "      --stop-after N      stop after epoch N (the schedule still spans --epochs; continue with\n"
        "                          --resume; default: run to the end)\n"
        "      --log-every N       a step line in train.jsonl every N steps, 0 = none (default 10)\n"
        "  -t, --threads N         threads (default: all cores; with 1 thread runs are bit-reproducible)\n"
        "  -q, --quiet             no progress line and no per-epoch lines (progress is shown only when\n"
        "                          stderr is a terminal; per-epoch lines go to stdout)\n"
        "  -h, --help              this help\n"
        "%s"
        "\n"
        "Exit codes: 0 success, 1 usage error, 2 input error (lists, videos, config, model, or an --out that\n"
        "holds another run), 3 runtime failure (out of memory, diverged training).\n",
        fv_cli_attn_help);
}

/* ------------------------------------------------------------------------------------------------ */
/* Randomness: a pure function of (seed, purpose, epoch, index), so resumed runs replay exactly         */
/* ------------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------------ */
/* Clips in memory                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

typedef struct CachedClip {
    uint8_t *rgb;  /* (F, h, w, 3), NULL when the clip could not be read */
    int32_t w, h, F;
    int32_t label; /* dataset class */
} CachedClip;

typedef struct ClipSet {
    CachedClip *clips;
    int64_t n, ok;
    size_t bytes;
    double decode_s;
} ClipSet;

static void clipset_free(ClipSet *cs)
{
    for (int64_t i = 0; cs->clips && i < cs->n; i++)
        free(cs->clips[i].rgb);
    free(cs->clips);
    memset(cs, 0, sizeof(*cs));
}

/* Decode @F frames (the middles of F equal segments) of every entry, short side @short_side. Clips that
 * cannot be read are reported (unless @quiet) and left out. Parallel over clips; the result does not
 * depend on the thread count. */
static int clipset_load(ClipSet *cs, const FvDataset *ds, const char *root, int32_t F, int32_t short_side,
                        int quiet, const char *what)
{
    memset(cs, 0, sizeof(*cs));
    cs->n = ds->num_entries;
    if (!(cs->clips = calloc((size_t)(cs->n ? cs->n : 1), sizeof(CachedClip))))
        return FV_ENOMEM;
    const double t0 = fv_cli_now_ms();
    int oom = 0;
    int64_t done = 0;
    const int progress = !quiet && isatty(STDERR_FILENO);
#pragma omp parallel for schedule(dynamic, 1) num_threads(fv_num_threads())
    for (int64_t i = 0; i < cs->n; i++) {
        CachedClip *c = &cs->clips[i];
        const char *p = ds->entries[i].path;
        char *path = p[0] == '/' ? strdup(p) : fv_cli_path_join(root, p);
        FvVideo *v = NULL;
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)F);
        int ret = FV_ENOMEM;
        c->label = ds->entries[i].label;
        if (!path || !idx)
            goto next;
        if ((ret = fv_video_open(&v, path)) < 0)
            goto next;
        const FvVideoInfo *info = fv_video_info(v);
        int32_t w, h;
        fv_preprocess_resized_size(info->width, info->height, short_side, &w, &h);
        FvSampleSettings ss;
        fv_sample_default_settings(&ss);
        ss.mode = FV_SAMPLING_UNIFORM;
        ss.num_frames = F;
        if ((ret = fv_sample_indices(&ss, info->nframes, 0, idx)) < 0)
            goto next;
        if (!(c->rgb = malloc((size_t)F * w * h * 3))) {
            ret = FV_ENOMEM;
            goto next;
        }
        if ((ret = fv_video_read_rgb(v, idx, F, w, h, c->rgb)) < 0) {
            free(c->rgb);
            c->rgb = NULL;
            goto next;
        }
        c->w = w;
        c->h = h;
        c->F = F;
    next:
        if (ret < 0) {
            if (ret == FV_ENOMEM) {
#pragma omp atomic write
                oom = 1;
            }
#pragma omp critical(train_report)
            if (!quiet) {
                if (progress)
                    fprintf(stderr, "\r\033[K");
                fprintf(stderr, "fibvid train: skipping %s: %s\n", path ? path : p,
                        ret == FV_ENOMEM ? "out of memory" : fv_last_error());
            }
        }
        fv_video_close(&v);
        free(path);
        free(idx);
#pragma omp critical(train_report)
        {
            done++;
            if (progress && (done % 16 == 0 || done == cs->n))
                fprintf(stderr, "\rfibvid train: decoding %s clips %lld/%lld\033[K", what, (long long)done,
                        (long long)cs->n);
        }
    }
    if (progress && cs->n)
        fprintf(stderr, "\r\033[K");
    cs->decode_s = (fv_cli_now_ms() - t0) / 1e3;
    for (int64_t i = 0; i < cs->n; i++)
        if (cs->clips[i].rgb) {
            cs->ok++;
            cs->bytes += (size_t)cs->clips[i].F * cs->clips[i].w * cs->clips[i].h * 3;
        }
    return oom ? FV_ENOMEM : 0;
}

/* One augmented training sample into @out (T, 3, S, S): random temporal offsets, random short side in
 * [lo, hi] and crop, optional flip, optional time reversal. The frame was cached at short side hi. */
static void augment(const CachedClip *c, int32_t T, int32_t S, int32_t lo, int32_t hi, int flip, int reverse,
                    const FvModelConfig *cfg, uint64_t *rs, float *out, int32_t *xs, float *wx)
{
    const int32_t shortc = FV_MIN(c->w, c->h);
    const double target = lo + fv_rng_unit(rs) * (hi - lo + 1); /* short side the frame is scaled to */
    double r = (double)S * shortc / FV_MIN(target, (double)hi); /* crop side in cached pixels */
    if (r > shortc)
        r = shortc;
    const double x0 = fv_rng_unit(rs) * (c->w - r), y0 = fv_rng_unit(rs) * (c->h - r), step = r / S;
    /* horizontal taps once for all rows and frames: xs = left sample, wx = its weight's complement */
    for (int32_t ox = 0; ox < S; ox++) {
        double sx = x0 + (ox + 0.5) * step - 0.5;
        sx = sx < 0 ? 0 : sx > c->w - 1 ? c->w - 1 : sx;
        int32_t ix = (int32_t)sx;
        if (ix > c->w - 2)
            ix = c->w - 2 < 0 ? 0 : c->w - 2;
        xs[flip ? S - 1 - ox : ox] = ix;
        wx[flip ? S - 1 - ox : ox] = (float)(sx - ix);
    }
    float scale[3], bias[3];
    for (int ch = 0; ch < 3; ch++) {
        scale[ch] = 1.0f / (255.0f * cfg->image_std[ch]);
        bias[ch] = -cfg->image_mean[ch] / cfg->image_std[ch];
    }
    const double seg = (double)c->F / T;
    const size_t plane = (size_t)S * S;
    for (int32_t t = 0; t < T; t++) {
        int32_t fi = (int32_t)(seg * t + fv_rng_unit(rs) * seg);
        fi = fi >= c->F ? c->F - 1 : fi;
        const uint8_t *fr = c->rgb + (size_t)fi * c->w * c->h * 3;
        float *o = out + (size_t)(reverse ? T - 1 - t : t) * 3 * plane;
        for (int32_t oy = 0; oy < S; oy++) {
            double sy = y0 + (oy + 0.5) * step - 0.5;
            sy = sy < 0 ? 0 : sy > c->h - 1 ? c->h - 1 : sy;
            int32_t iy = (int32_t)sy;
            if (iy > c->h - 2)
                iy = c->h - 2 < 0 ? 0 : c->h - 2;
            const float fy = (float)(sy - iy);
            const uint8_t *r0 = fr + (size_t)iy * c->w * 3, *r1 = c->h > 1 ? r0 + (size_t)c->w * 3 : r0;
            for (int32_t ox = 0; ox < S; ox++) {
                const int32_t ix = xs[ox], ix1 = c->w > 1 ? ix + 1 : ix;
                const float fx = wx[ox];
                for (int ch = 0; ch < 3; ch++) {
                    const float a = r0[ix * 3 + ch] + fx * (r0[ix1 * 3 + ch] - r0[ix * 3 + ch]);
                    const float b = r1[ix * 3 + ch] + fx * (r1[ix1 * 3 + ch] - r1[ix * 3 + ch]);
                    o[ch * plane + (size_t)oy * S + ox] = (a + fy * (b - a)) * scale[ch] + bias[ch];
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Horizontal flips and time reversal allowed by the class set                                       */
/* ------------------------------------------------------------------------------------------------ */

/* to[c]: the class a flipped (time-reversed) clip of class c is, or -1 when c must not be flipped
 * (reversed): from synth.json's @pairs_key list of class-name pairs and its optional @inv_key list of
 * classes the transform leaves as they are. */
static int load_pair_map(const char *path, const FvDataset *ds, const char *pairs_key, const char *inv_key,
                         int32_t *to)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    int ret = 0;
    for (int32_t c = 0; c < ds->num_classes; c++)
        to[c] = -1;
    if (!root) {
        fv_cli_error(CMD, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return FV_EINVAL;
    }
    const json_t *pairs = json_object_get(root, pairs_key), *inv = inv_key ? json_object_get(root, inv_key) : NULL;
    if (!json_is_array(pairs) || (inv && !json_is_array(inv))) {
        fv_cli_error(CMD, "%s: no \"%s\" array", path, pairs_key);
        ret = FV_EINVAL;
        goto done;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(inv, i, v) {
        for (int32_t c = 0; json_is_string(v) && c < ds->num_classes; c++)
            if (!strcmp(ds->classes[c], json_string_value(v)))
                to[c] = c;
    }
    json_array_foreach(pairs, i, v) {
        const char *a = json_string_value(json_array_get(v, 0)), *b = json_string_value(json_array_get(v, 1));
        if (json_array_size(v) != 2 || !a || !b) {
            fv_cli_error(CMD, "%s: %s[%zu] is not a pair of class names", path, pairs_key, i);
            ret = FV_EINVAL;
            goto done;
        }
        int32_t ia = -1, ib = -1;
        for (int32_t c = 0; c < ds->num_classes; c++) {
            if (!strcmp(ds->classes[c], a))
                ia = c;
            if (!strcmp(ds->classes[c], b))
                ib = c;
        }
        /* a pair with a class that is not in the data: its partner has no class to become */
        if (ia >= 0 && ib >= 0) {
            to[ia] = ib;
            to[ib] = ia;
        } else if (ia >= 0) {
            to[ia] = -1;
        } else if (ib >= 0) {
            to[ib] = -1;
        }
    }
done:
    json_decref(root);
    return ret;
}

/* ------------------------------------------------------------------------------------------------ */
/* Settings, checkpoints and the log                                                                 */
/* ------------------------------------------------------------------------------------------------ */

/* Write @o to @path atomically (temporary file, fsync, rename). */
static int write_json_atomic(const char *path, const json_t *o)
{
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    const size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    }
    memcpy(t2 + n, "\n", 2);
    int ret = fv_write_file_atomic(path, t2, n + 1);
    free(t2);
    return ret;
}

/* Keep only the log lines of epochs <= @epoch (a resumed run redoes what came after its checkpoint). */
static int log_truncate(const char *path, int64_t epoch)
{
    size_t n = 0;
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
        json_decref(o);
        if (!o || e > epoch || line[len - 1] != '\n')
            continue;
        if (klen + (size_t)len + 1 > kcap) {
            kcap = (klen + (size_t)len + 1) * 2;
            char *k = realloc(keep, kcap);
            if (!k) {
                ret = FV_ENOMEM;
                goto done;
            }
            keep = k;
        }
        memcpy(keep + klen, line, (size_t)len);
        klen += (size_t)len;
        n++;
    }
    fclose(f);
    f = fopen(path, "wb");
    if (!f || (klen && fwrite(keep, 1, klen, f) != klen)) {
        ret = fv_error(FV_EIO, "%s: cannot rewrite the log", path);
        goto done;
    }
done:
    if (f && fclose(f) != 0 && !ret)
        ret = fv_error(FV_EIO, "%s: cannot rewrite the log", path);
    free(line);
    free(keep);
    return ret;
}

static int log_line(FILE *log, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    json_decref(o);
    if (!s)
        return FV_ENOMEM;
    int bad = fprintf(log, "%s\n", s) < 0 || fflush(log) != 0;
    free(s);
    return bad ? FV_EIO : 0;
}

static void fmt_eta(double s, char *buf, size_t n)
{
    long v = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (v >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(buf, n, "%ld:%02ld", v / 60, v % 60);
}

/* Read a JSON training config: HF TimesformerConfig names; num_labels is the data's. */
static int load_json_config(const char *path, int32_t num_labels, FvModelConfig *c)
{
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    char **labels = NULL;
    char *text = NULL;
    int ret;
    if (!o) {
        fv_cli_error(CMD, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return FV_EINVAL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        fv_cli_error(CMD, "%s: not a JSON object", path);
        return FV_EINVAL;
    }
    json_object_del(o, "id2label");
    json_object_del(o, "label2id");
    json_object_set_new(o, "num_labels", json_integer(num_labels));
    text = json_dumps(o, 0);
    json_decref(o);
    if (!text)
        return FV_ENOMEM;
    ret = fv_config_parse(text, NULL, path, c, &labels);
    free(text);
    if (ret < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        return ret;
    }
    for (int32_t i = 0; i < c->num_labels; i++)
        free(labels[i]);
    free(labels);
    return 0;
}

/* Everything that changes the result, compared by --resume. */
static json_t *settings_json(const TrainOpts *o, const FvDataset *tr, const FvDataset *va, int32_t T, int32_t S,
                             int32_t lo, int32_t hi, int32_t F, const char *hflip,
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
    json_object_set_new(j, "config", o->model ? json_null() : json_string(o->config ? o->config : "synth"));
    json_object_set_new(j, "init_model", o->model ? json_string(o->model) : json_null());
    json_object_set_new(j, "embed_init", o->model ? json_null() : json_string(o->embed_random ? "random" : "sincos"));
    json_object_set_new(j, "frames", json_integer(T));
    json_object_set_new(j, "image_size", json_integer(S));
    json_object_set_new(j, "epochs", json_integer(o->epochs));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "lr", json_real(o->lr));
    json_object_set_new(j, "min_lr", json_real(o->min_lr));
    json_object_set_new(j, "warmup_epochs", json_real(o->warmup));
    json_object_set_new(j, "weight_decay", json_real(o->wd));
    json_object_set_new(j, "label_smoothing", json_real(o->smoothing));
    json_object_set_new(j, "clip_norm", json_real(o->clip_norm));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(j, "cache_frames", json_integer(F));
    json_object_set_new(j, "scale", json_pack("[i, i]", lo, hi));
    json_object_set_new(j, "hflip", json_string(hflip));
    json_object_set_new(j, "reverse", json_string(reverse));
    return j;
}

/* Validation: top-1, mean class accuracy and the plain cross-entropy of every clip, in batches. */
typedef struct ValResult {
    double top1, mean_class, loss;
    int64_t n;
} ValResult;

static int validate(FvTrainer *tr, const ClipSet *vs, const FvModelConfig *cfg, const int32_t *map, int32_t B,
                    float *batch, float *logits, ValResult *res, int32_t num_classes)
{
    const int32_t T = cfg->num_frames, S = cfg->image_size, L = cfg->num_labels;
    const size_t clip = (size_t)T * 3 * S * S;
    FvMetrics *mt = NULL;
    int32_t ids[256], targets[256];
    double loss = 0.0;
    int ret;
    memset(res, 0, sizeof(*res));
    if ((ret = fv_metrics_create(&mt, num_classes)) < 0)
        return ret;
    FvPreprocessSettings pp;
    fv_preprocess_default_settings(&pp);
    pp.crop_size = S;
    memcpy(pp.mean, cfg->image_mean, sizeof(pp.mean));
    memcpy(pp.std, cfg->image_std, sizeof(pp.std));
    int64_t i = 0;
    while (i < vs->n) {
        int32_t nb = 0;
        for (; i < vs->n && nb < B; i++) {
            const CachedClip *c = &vs->clips[i];
            if (!c->rgb)
                continue;
            if ((ret = fv_preprocess_crop(&pp, c->rgb, c->F, c->w, c->h, 0, batch + nb * clip)) < 0)
                goto done;
            ids[nb] = (int32_t)i;
            targets[nb] = map[c->label];
            nb++;
        }
        if (!nb)
            break;
        if ((ret = fv_trainer_forward(tr, batch, nb, logits)) < 0)
            goto done;
        loss += fv_loss_ce_smooth(logits, targets, nb, L, 0.0f, NULL, NULL) * nb;
        for (int32_t b = 0; b < nb; b++) {
            float *z = logits + (size_t)b * L, mx = z[0], sum = 0.0f;
            for (int32_t k = 1; k < L; k++)
                mx = z[k] > mx ? z[k] : mx;
            for (int32_t k = 0; k < L; k++)
                sum += (z[k] = expf(z[k] - mx));
            for (int32_t k = 0; k < L; k++)
                z[k] /= sum;
            FvPrediction p;
            const int32_t label = vs->clips[ids[b]].label;
            if ((ret = fv_prediction_from_probs(&p, z, L, ids[b], label, map, num_classes)) < 0 ||
                (ret = fv_metrics_add(mt, &p)) < 0)
                goto done;
        }
    }
    FvMetricsSummary s;
    fv_metrics_summary(mt, &s);
    res->top1 = s.top1_acc;
    res->mean_class = s.mean_class_acc;
    res->n = s.num_evaluated;
    res->loss = s.num_evaluated ? loss / (double)s.num_evaluated : 0.0;
    ret = 0;
done:
    fv_metrics_free(&mt);
    return ret;
}

/* ------------------------------------------------------------------------------------------------ */
/* The run                                                                                           */
/* ------------------------------------------------------------------------------------------------ */

static int parse_range(const char *s, long *lo, long *hi)
{
    const char *c = strchr(s, ':');
    char buf[32];
    if (!c || c == s || (size_t)(c - s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, (size_t)(c - s));
    buf[c - s] = '\0';
    if (fv_cli_parse_int(buf, 1, 16384, lo) < 0 || fv_cli_parse_int(c + 1, 1, 16384, hi) < 0 || *lo > *hi)
        return -1;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int run(TrainOpts *o)
{
    FvDataset *tds = NULL, *vds = NULL;
    FvModel *m = NULL;
    FvTrainer *tr = NULL;
    ClipSet tcs = { 0 }, vcs = { 0 };
    json_t *settings = NULL, *ck = NULL;
    FILE *log = NULL;
    char *log_path = NULL, *ck_path = NULL, *synth_json = NULL;
    int32_t *map = NULL, *flip_to = NULL, *rev_to = NULL, *labels = NULL, *xs = NULL;
    int64_t *order = NULL;
    float *batch = NULL, *logits = NULL, *wx = NULL;
    char **names = NULL;
    int rc = FV_EXIT_INPUT, ret;
    const double t_start = fv_cli_now_ms();

    /* data lists */
    if (o->ucf101) {
        if ((ret = fv_dataset_load_ucf101(&tds, o->ucf101, (int32_t)o->split, FV_SUBSET_TRAIN)) < 0 ||
            (!o->no_val && (ret = fv_dataset_load_ucf101(&vds, o->ucf101, (int32_t)o->split, FV_SUBSET_TEST)) < 0))
            goto lib_fail;
    } else {
        if ((ret = fv_dataset_load_list(&tds, o->list, (int32_t)o->label_base, o->classes)) < 0 ||
            (o->val_list && !o->no_val &&
             (ret = fv_dataset_load_list(&vds, o->val_list, (int32_t)o->label_base, o->classes)) < 0))
            goto lib_fail;
        if (vds && vds->num_classes > tds->num_classes) {
            fv_cli_error(CMD, "%s: labels up to %d, the training list has %d classes", o->val_list,
                         vds->num_classes - 1, tds->num_classes);
            goto done;
        }
    }
    if (tds->num_entries < 1) {
        fv_cli_error(CMD, "%s: no training clips", tds->description);
        goto done;
    }
    const int32_t NC = tds->num_classes;
    const char *root = o->root ? o->root : o->ucf101;

    /* the model: a fresh one of a named size or JSON config, or an existing one to fine-tune */
    FvModelConfig cfg;
    if (o->model) {
        if ((rc = fv_cli_load_model(CMD, o->model, &m)) != FV_EXIT_OK)
            goto done;
        rc = FV_EXIT_INPUT;
    } else {
        const char *cname = o->config ? o->config : "synth";
        if (!strcmp(cname, "synth")) {
            synth_preset(&cfg);
        } else if (fv_model_config_preset(&cfg, cname) == 0) {
        } else if (fv_file_exists(cname)) {
            if ((ret = load_json_config(cname, NC, &cfg)) < 0) {
                rc = fv_cli_exit_code(ret);
                goto done;
            }
        } else {
            fv_cli_error(CMD, "--config %s: neither a preset (synth, test, tiny, small, base) nor a readable file",
                         cname);
            goto done;
        }
        if (!fv_file_exists(cname) || !strcmp(cname, "synth")) /* presets train Fibottention by default */
            cfg.spatial.kind = cfg.temporal.kind = FV_ATTN_FIB;
        cfg.num_labels = NC;
        if (o->frames)
            cfg.num_frames = (int32_t)o->frames;
        if (o->image_size)
            cfg.image_size = (int32_t)o->image_size;
        cfg.short_side = 0;
        if ((ret = fv_model_config_validate(&cfg)) < 0 ||
            (ret = fv_model_create_random(&m, &cfg, fv_rng_stream(o->seed, 1, 0, 0))) < 0 ||
            (!o->embed_random && (ret = fv_model_init_sincos_embeddings(m)) < 0)) {
            fv_cli_error(CMD, "%s", fv_last_error());
            rc = fv_cli_exit_code(ret);
            goto done;
        }
    }
    if ((ret = fv_cli_attn_apply(&o->attn, m)) < 0)
        goto lib_fail;

    /* dataset class -> model label: kept when the model already has exactly these classes */
    if (!(map = calloc((size_t)NC, sizeof(int32_t))) || !(flip_to = calloc((size_t)NC, sizeof(int32_t))) ||
        !(rev_to = calloc((size_t)NC, sizeof(int32_t))))
        goto oom;
    {
        const int32_t L = fv_model_config(m)->num_labels;
        int keep = 0;
        if (o->model && L == NC) {
            const char **ml = calloc((size_t)L, sizeof(char *));
            if (!ml)
                goto oom;
            for (int32_t i = 0; i < L; i++)
                ml[i] = fv_model_label(m, i);
            FvLabelMatchSettings lm;
            fv_label_match_default_settings(&lm);
            keep = fv_label_match(tds, ml, L, &lm, map) == 0;
            free(ml);
            for (int32_t i = 0; keep && i < NC; i++) /* a one-to-one map only */
                for (int32_t j = 0; j < i; j++)
                    if (map[i] == map[j])
                        keep = 0;
        }
        if (!o->model || !keep) {
            if (!(names = calloc((size_t)NC, sizeof(char *))))
                goto oom;
            for (int32_t i = 0; i < NC; i++)
                names[i] = (char *)tds->classes[i];
            if ((ret = fv_model_reset_classifier(m, NC, names, fv_rng_stream(o->seed, 2, 0, 0))) < 0)
                goto lib_fail;
            for (int32_t i = 0; i < NC; i++)
                map[i] = i;
            if (o->model && !o->quiet)
                fprintf(stderr, "fibvid train: %s has other labels than the data's %d classes: new classifier\n",
                        o->model, NC);
        }
    }
    cfg = *fv_model_config(m);
    const int32_t T = cfg.num_frames, S = cfg.image_size;
    const int32_t lo = o->scale_lo ? (int32_t)o->scale_lo : S;
    const int32_t hi = o->scale_hi ? (int32_t)o->scale_hi : (int32_t)lround(S * 1.25);
    const int32_t F = o->cache_frames ? (int32_t)o->cache_frames : 2 * T;
    if (lo < S) {
        fv_cli_error(CMD, "--scale %d:%d: the short side must be at least the crop size %d", lo, hi, S);
        rc = FV_EXIT_USAGE;
        goto done;
    }
    if (F < T) {
        fv_cli_error(CMD, "--cache-frames %d: fewer than the model's %d frames", F, T);
        rc = FV_EXIT_USAGE;
        goto done;
    }

    /* flips and time reversal: what the class set allows, from synth.json */
    const char *hflip_desc = "off", *reverse_desc = "off";
    const char *sj = o->synth_json;
    if (!sj && o->ucf101 && (o->hflip == -1 || o->reverse == -1)) {
        if (!(synth_json = fv_cli_path_join(o->ucf101, "synth.json")))
            goto oom;
        sj = fv_file_exists(synth_json) ? synth_json : NULL;
    }
    for (int32_t c = 0; c < NC; c++) {
        flip_to[c] = o->hflip == 1 ? c : -1;
        rev_to[c] = -1;
    }
    if (o->hflip == 1)
        hflip_desc = "on";
    if (sj && o->hflip == -1) {
        if (load_pair_map(sj, tds, "flip_pairs", "hflip_invariant", flip_to) < 0)
            goto done;
        hflip_desc = "flip_pairs";
    }
    if (sj && o->reverse == -1) {
        if (load_pair_map(sj, tds, "reverse_pairs", NULL, rev_to) < 0)
            goto done;
        reverse_desc = "reverse_pairs";
    }

    /* output directory and resume */
    if ((ret = fv_mkdir_p(o->out)) < 0)
        goto lib_fail;
    log_path = fv_cli_path_join(o->out, "train.jsonl");
    ck_path = fv_cli_path_join(o->out, "checkpoint.json");
    if (!log_path || !ck_path)
        goto oom;
    settings = settings_json(o, tds, vds, T, S, lo, hi, F, hflip_desc, reverse_desc);
    if (!settings)
        goto oom;
    int64_t start_epoch = 0, best_epoch = 0;
    double best_top1 = -1.0, prev_elapsed = 0.0;
    if (o->resume) {
        json_error_t jerr;
        if (!(ck = json_load_file(ck_path, 0, &jerr))) {
            fv_cli_error(CMD, "%s: cannot resume: %s", ck_path, jerr.text);
            goto done;
        }
        if (!json_equal(json_object_get(ck, "settings"), settings)) {
            fv_cli_error(CMD, "%s: cannot resume: the run was made with other settings (data, model, "
                         "optimisation, seed or augmentation); see its \"settings\"", ck_path);
            goto done;
        }
        start_epoch = (int64_t)json_integer_value(json_object_get(ck, "epoch"));
        best_epoch = (int64_t)json_integer_value(json_object_get(ck, "best_epoch"));
        best_top1 = json_real_value(json_object_get(ck, "best_top1"));
        prev_elapsed = json_number_value(json_object_get(ck, "elapsed_s"));
        const char *wf = json_string_value(json_object_get(ck, "weights"));
        char *wp = wf ? fv_cli_path_join(o->out, wf) : NULL;
        fv_model_close(&m);
        ret = wp ? fv_model_load(&m, wp) : fv_error(FV_EINVAL, "%s: no \"weights\"", ck_path);
        free(wp);
        if (ret < 0)
            goto lib_fail;
        if (fv_model_config(m)->num_labels != cfg.num_labels) {
            fv_cli_error(CMD, "%s: the checkpoint has %d labels, the data %d classes", ck_path,
                         fv_model_config(m)->num_labels, cfg.num_labels);
            goto done;
        }
        if ((ret = log_truncate(log_path, start_epoch)) < 0)
            goto lib_fail;
    } else if (fv_file_exists(ck_path)) {
        fv_cli_error(CMD, "%s holds a training run already: continue it with --resume or choose another --out",
                     o->out);
        goto done;
    }
    if (!(log = fopen(log_path, o->resume ? "ab" : "wb"))) {
        fv_cli_error(CMD, "%s: cannot write: %s", log_path, strerror(errno));
        goto done;
    }

    /* the trainer */
    const int64_t N = tds->num_entries;
    const int32_t B = (int32_t)FV_MIN(o->batch, N);
    const int64_t steps_per_epoch = (N + B - 1) / B, total_steps = o->epochs * steps_per_epoch;
    FvTrainSettings ts;
    fv_train_default_settings(&ts);
    ts.max_batch = B;
    ts.lr = (float)o->lr;
    ts.min_lr = (float)o->min_lr;
    ts.warmup_steps = (int64_t)llround(o->warmup * steps_per_epoch);
    ts.total_steps = total_steps;
    ts.weight_decay = (float)o->wd;
    ts.label_smoothing = (float)o->smoothing;
    ts.clip_norm = (float)o->clip_norm;
    if ((ret = fv_trainer_new(&tr, m, &ts)) < 0)
        goto lib_fail;
    if (o->resume) {
        const char *of = json_string_value(json_object_get(ck, "optim"));
        char *op = of ? fv_cli_path_join(o->out, of) : NULL;
        ret = op ? fv_trainer_load_state(tr, op) : fv_error(FV_EINVAL, "%s: no \"optim\"", ck_path);
        free(op);
        if (ret < 0)
            goto lib_fail;
        FvOptimState os;
        fv_trainer_optim_state(tr, &os);
        if (os.step != start_epoch * steps_per_epoch) {
            fv_cli_error(CMD, "%s: the optimizer state is at step %lld, epoch %lld ends at step %lld", ck_path,
                         (long long)os.step, (long long)start_epoch, (long long)(start_epoch * steps_per_epoch));
            goto done;
        }
    }

    /* decode everything once */
    if ((ret = clipset_load(&tcs, tds, root, F, hi, o->quiet, "training")) < 0)
        goto lib_fail;
    if (vds && (ret = clipset_load(&vcs, vds, root, T, cfg.short_side > 0 ? cfg.short_side : S, o->quiet,
                                   "validation")) < 0)
        goto lib_fail;
    if (tcs.ok == 0) {
        fv_cli_error(CMD, "%s: none of the %lld training clips could be read", tds->description, (long long)N);
        goto done;
    }
    const size_t clip_floats = (size_t)T * 3 * S * S;
    const int32_t L = cfg.num_labels;
    if (!(order = malloc(sizeof(int64_t) * (size_t)N)) || !(labels = malloc(sizeof(int32_t) * (size_t)B)) ||
        !(batch = fv_malloc(sizeof(float) * clip_floats * (size_t)B)) ||
        !(logits = malloc(sizeof(float) * (size_t)L * (size_t)B)) || !(xs = malloc(sizeof(int32_t) * (size_t)S)) ||
        !(wx = malloc(sizeof(float) * (size_t)S)))
        goto oom;

    if (!o->resume) {
        json_t *l = json_pack("{s:s, s:i, s:O, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I}", "type", "start", "epoch", 0,
                              "settings", settings, "num_params", (json_int_t)fv_model_num_params(m),
                              "train_clips", (json_int_t)tcs.ok, "train_failed", (json_int_t)(N - tcs.ok),
                              "val_clips", (json_int_t)vcs.ok, "steps_per_epoch", (json_int_t)steps_per_epoch,
                              "cache_mb", (double)tcs.bytes / 1048576.0, "decode_s", tcs.decode_s + vcs.decode_s,
                              "threads", (json_int_t)fv_num_threads());
        if (!l || (ret = log_line(log, l)) < 0)
            goto lib_fail;
    } else {
        json_t *l = json_pack("{s:s, s:I}", "type", "resume", "epoch", (json_int_t)start_epoch);
        if (!l || (ret = log_line(log, l)) < 0)
            goto lib_fail;
    }
    if (!o->quiet) {
        char sa[128], ta[128];
        fv_attn_describe(&cfg.spatial, 0, sa, sizeof(sa));
        fv_attn_describe(&cfg.temporal, 0, ta, sizeof(ta));
        fprintf(stderr, "fibvid train: %lld params, D=%d L=%d heads=%d %dx%dx%d patch %d, spatial %s, temporal %s\n",
                (long long)fv_model_num_params(m), cfg.hidden_size, cfg.num_layers, cfg.num_heads, T, S, S,
                cfg.patch_size, sa, ta);
        fprintf(stderr, "fibvid train: %lld training clips (%.0f MB cached, %lld unreadable), %lld validation "
                "clips, decoded in %.1f s; %lld steps of %d per epoch, %lld epochs%s\n",
                (long long)tcs.ok, (double)tcs.bytes / 1048576.0, (long long)(N - tcs.ok), (long long)vcs.ok,
                tcs.decode_s + vcs.decode_s, (long long)steps_per_epoch, B, (long long)o->epochs,
                o->resume ? " (resumed)" : "");
    }

    const int progress = !o->quiet && isatty(STDERR_FILENO);
    const int64_t last_epoch = o->stop_after ? FV_MIN(o->stop_after, o->epochs) : o->epochs;
    const double loop0 = fv_cli_now_ms();
    int64_t steps_run = 0;
    double train_ms = 0.0;
    rc = FV_EXIT_OK;
    for (int64_t epoch = start_epoch; epoch < last_epoch; epoch++) {
        const double e0 = fv_cli_now_ms();
        /* this epoch's order: Fisher-Yates from the epoch's own random state */
        uint64_t rs = fv_rng_stream(o->seed, 3, (uint64_t)epoch, 0);
        for (int64_t i = 0; i < N; i++)
            order[i] = i;
        for (int64_t i = N - 1; i > 0; i--) {
            const int64_t j = fv_rng_below(&rs, i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double loss_sum = 0.0, last_lr = 0.0;
        int64_t seen = 0, correct = 0, pos = 0;
        double last_progress = 0.0, data_ms = 0.0;
        for (int64_t s = 0; s < steps_per_epoch; s++) {
            const double s0 = fv_cli_now_ms();
            int32_t nb = 0;
            for (; pos < (s + 1) * B && pos < N; pos++) {
                const CachedClip *c = &tcs.clips[order[pos]];
                if (!c->rgb)
                    continue;
                uint64_t cs = fv_rng_stream(o->seed, 4, (uint64_t)epoch, (uint64_t)order[pos]);
                const int flip = flip_to[c->label] >= 0 && (fv_rng_next(&cs) >> 63);
                int32_t label = flip ? flip_to[c->label] : c->label;
                /* a time-reversed clip is its reverse partner (flips and reversal commute on the labels) */
                const int rev = rev_to[label] >= 0 && (fv_rng_next(&cs) >> 63);
                label = rev ? rev_to[label] : label;
                augment(c, T, S, lo, hi, flip, rev, &cfg, &cs, batch + (size_t)nb * clip_floats, xs, wx);
                labels[nb++] = map[label];
            }
            if (!nb)
                continue;
            FvStepStats st;
            const double a1 = fv_cli_now_ms();
            ret = fv_trainer_step(tr, batch, labels, nb, &st);
            if (ret == FV_ERANGE) {
                if (progress)
                    fprintf(stderr, "\r\033[K");
                fv_cli_error(CMD, "epoch %lld: %s; lower --lr or --clip-norm", (long long)epoch + 1, fv_last_error());
                rc = FV_EXIT_RUNTIME;
                goto done;
            }
            if (ret < 0)
                goto lib_fail;
            const double now = fv_cli_now_ms();
            train_ms += now - s0;
            data_ms += a1 - s0;
            steps_run++;
            loss_sum += (double)st.loss * nb;
            correct += st.correct;
            seen += nb;
            last_lr = st.lr;
            const double cps = train_ms > 0 ? (double)seen / ((now - e0) / 1e3) : 0.0;
            if (o->log_every > 0 && st.step % o->log_every == 0) {
                json_t *l = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "type", "step", "epoch",
                                      (json_int_t)epoch + 1, "step", (json_int_t)st.step, "loss", (double)st.loss,
                                      "lr", (double)st.lr, "grad_norm", (double)st.grad_norm, "batch_acc",
                                      100.0 * st.correct / nb, "step_ms", now - a1, "data_ms", a1 - s0);
                if (!l || (ret = log_line(log, l)) < 0)
                    goto lib_fail;
            }
            if (progress && (now - last_progress > 250 || s + 1 == steps_per_epoch)) {
                const double per_step = (now - loop0) / (double)steps_run;
                const double eta = per_step * (double)((last_epoch - epoch) * steps_per_epoch - s - 1) / 1e3;
                char eta_s[32];
                fmt_eta(eta, eta_s, sizeof(eta_s));
                fprintf(stderr, "\repoch %lld/%lld [%lld/%lld] loss %.4f acc %.1f%% lr %.2e %.1f clips/s ETA %s\033[K",
                        (long long)epoch + 1, (long long)o->epochs, (long long)s + 1, (long long)steps_per_epoch,
                        loss_sum / (double)seen, 100.0 * (double)correct / (double)seen, last_lr, cps, eta_s);
                last_progress = now;
            }
        }
        const double train_s = (fv_cli_now_ms() - e0) / 1e3;
        ValResult vr = { 0 };
        if (vcs.ok > 0 && (ret = validate(tr, &vcs, &cfg, map, B, batch, logits, &vr, vds->num_classes)) < 0)
            goto lib_fail;
        const int64_t done_epochs = epoch + 1;
        const int is_best = vcs.ok > 0 ? vr.top1 > best_top1 : 1;
        if (is_best) {
            best_top1 = vcs.ok > 0 ? vr.top1 : -1.0;
            best_epoch = done_epochs;
        }
        const double epoch_s = (fv_cli_now_ms() - e0) / 1e3;
        const double elapsed = prev_elapsed + (fv_cli_now_ms() - t_start) / 1e3;

        /* the checkpoint of this epoch, then checkpoint.json pointing at it, then the older files go */
        char wname[64], oname[64];
        snprintf(wname, sizeof(wname), "ckpt-epoch%04lld.safetensors", (long long)done_epochs);
        snprintf(oname, sizeof(oname), "ckpt-epoch%04lld.optim.safetensors", (long long)done_epochs);
        char *wp = fv_cli_path_join(o->out, wname), *op = fv_cli_path_join(o->out, oname), *bp = fv_cli_path_join(o->out, "best.safetensors");
        if (!wp || !op || !bp) {
            free(wp);
            free(op);
            free(bp);
            goto oom;
        }
        ret = fv_model_save(m, wp);
        if (ret >= 0)
            ret = fv_trainer_save_state(tr, op);
        if (ret >= 0 && is_best)
            ret = fv_model_save(m, bp);
        free(wp);
        free(op);
        free(bp);
        if (ret < 0)
            goto lib_fail;
        const char *old_w = ck ? json_string_value(json_object_get(ck, "weights")) : NULL;
        const char *old_o = ck ? json_string_value(json_object_get(ck, "optim")) : NULL;
        char *old_wp = old_w && strcmp(old_w, wname) ? fv_cli_path_join(o->out, old_w) : NULL;
        char *old_op = old_o && strcmp(old_o, oname) ? fv_cli_path_join(o->out, old_o) : NULL;
        json_t *nck = json_pack("{s:I, s:I, s:s, s:s, s:f, s:I, s:f, s:O}", "epoch", (json_int_t)done_epochs,
                                "step", (json_int_t)(done_epochs * steps_per_epoch), "weights", wname, "optim",
                                oname, "best_top1", best_top1, "best_epoch", (json_int_t)best_epoch, "elapsed_s",
                                elapsed, "settings", settings);
        if (!nck) {
            free(old_wp);
            free(old_op);
            goto oom;
        }
        ret = write_json_atomic(ck_path, nck);
        json_decref(ck);
        ck = nck;
        if (ret >= 0) {
            if (old_wp)
                unlink(old_wp);
            if (old_op)
                unlink(old_op);
        }
        free(old_wp);
        free(old_op);
        if (ret < 0)
            goto lib_fail;

        json_t *l = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:b, s:f, s:f, s:f}", "type", "epoch",
                              "epoch", (json_int_t)done_epochs, "step", (json_int_t)(done_epochs * steps_per_epoch),
                              "lr", last_lr, "train_loss", seen ? loss_sum / (double)seen : 0.0, "train_acc",
                              seen ? 100.0 * (double)correct / (double)seen : 0.0, "clips_per_s",
                              train_s > 0 ? (double)seen / train_s : 0.0, "epoch_s", epoch_s, "best", is_best,
                              "elapsed_s", elapsed, "train_s", train_s, "val_s", epoch_s - train_s);
        if (l && vcs.ok > 0) {
            json_object_set_new(l, "val_top1", json_real(vr.top1));
            json_object_set_new(l, "val_mean_class_acc", json_real(vr.mean_class));
            json_object_set_new(l, "val_loss", json_real(vr.loss));
        }
        if (!l || (ret = log_line(log, l)) < 0)
            goto lib_fail;
        if (progress)
            fprintf(stderr, "\r\033[K");
        if (!o->quiet) {
            const double per_epoch = (fv_cli_now_ms() - loop0) / 1e3 / (double)(done_epochs - start_epoch);
            char eta_s[32];
            fmt_eta(per_epoch * (double)(last_epoch - done_epochs), eta_s, sizeof(eta_s));
            printf("epoch %lld/%lld: loss %.4f acc %.1f%%", (long long)done_epochs, (long long)o->epochs,
                   seen ? loss_sum / (double)seen : 0.0, seen ? 100.0 * (double)correct / (double)seen : 0.0);
            if (vcs.ok > 0)
                printf(" | val top-1 %.1f%% mean-class %.1f%% loss %.4f%s", vr.top1, vr.mean_class, vr.loss,
                       is_best ? " *" : "");
            printf(" | %.1f clips/s, %.0f s, ETA %s\n", train_s > 0 ? (double)seen / train_s : 0.0, epoch_s, eta_s);
            fflush(stdout);
        }
    }
    if (last_epoch == o->epochs) {
        char *fp = fv_cli_path_join(o->out, "model.safetensors");
        ret = fp ? fv_model_save(m, fp) : FV_ENOMEM;
        free(fp);
        if (ret < 0)
            goto lib_fail;
        json_t *l = json_pack("{s:s, s:I, s:f, s:I, s:f}", "type", "done", "epoch", (json_int_t)o->epochs,
                              "best_top1", best_top1, "best_epoch", (json_int_t)best_epoch, "elapsed_s",
                              prev_elapsed + (fv_cli_now_ms() - t_start) / 1e3);
        if (!l || (ret = log_line(log, l)) < 0)
            goto lib_fail;
        if (!o->quiet)
            fprintf(stderr, "fibvid train: done in %.0f s: %s/model.safetensors (final), best.safetensors "
                    "(epoch %lld%s)\n", prev_elapsed + (fv_cli_now_ms() - t_start) / 1e3, o->out,
                    (long long)best_epoch, vcs.ok > 0 ? ", best validation top-1" : "");
    } else if (!o->quiet) {
        fprintf(stderr, "fibvid train: stopped after epoch %lld of %lld; continue with --resume --out %s\n",
                (long long)last_epoch, (long long)o->epochs, o->out);
    }
    rc = FV_EXIT_OK;
    goto done;

oom:
    ret = fv_error(FV_ENOMEM, "out of memory");
lib_fail:
    fv_cli_error(CMD, "%s", fv_last_error());
    rc = fv_cli_exit_code(ret);
done:
    if (log && fclose(log) != 0 && rc == FV_EXIT_OK) {
        fv_cli_error(CMD, "%s: cannot write", log_path);
        rc = FV_EXIT_RUNTIME;
    }
    json_decref(settings);
    json_decref(ck);
    clipset_free(&tcs);
    clipset_free(&vcs);
    fv_trainer_close(&tr);
    fv_model_close(&m);
    fv_dataset_free(&tds);
    fv_dataset_free(&vds);
    free(log_path);
    free(ck_path);
    free(synth_json);
    free(map);
    free(flip_to);
    free(rev_to);
    free(labels);
    free(order);
    free(xs);
    free(wx);
    free(logits);
    free(names);
    fv_free(batch);
    return rc;
}

int fv_cli_train(int argc, char **argv)
{
    enum {
        O_ROOT = 0x100, O_UCF, O_SPLIT, O_LIST, O_VAL, O_CLASSES, O_BASE, O_NOVAL, O_CONFIG, O_FRAMES, O_ISIZE,
        O_RESUME, O_EPOCHS, O_STOP, O_LR, O_MINLR, O_WARMUP, O_WD, O_LS, O_CLIP, O_SEED, O_CACHE, O_SCALE,
        O_HFLIP, O_SJSON, O_LOGEVERY, O_EMBED, O_REVERSE,
    };
    static const struct option longopts[] = {
        { "root", required_argument, NULL, O_ROOT },
        { "ucf101", required_argument, NULL, O_UCF },
        { "split", required_argument, NULL, O_SPLIT },
        { "list", required_argument, NULL, O_LIST },
        { "val-list", required_argument, NULL, O_VAL },
        { "classes", required_argument, NULL, O_CLASSES },
        { "label-base", required_argument, NULL, O_BASE },
        { "no-val", no_argument, NULL, O_NOVAL },
        { "config", required_argument, NULL, O_CONFIG },
        { "model", required_argument, NULL, 'm' },
        { "frames", required_argument, NULL, O_FRAMES },
        { "image-size", required_argument, NULL, O_ISIZE },
        { "embed-init", required_argument, NULL, O_EMBED },
        { "out", required_argument, NULL, 'o' },
        { "resume", no_argument, NULL, O_RESUME },
        { "epochs", required_argument, NULL, O_EPOCHS },
        { "stop-after", required_argument, NULL, O_STOP },
        { "batch", required_argument, NULL, 'b' },
        { "lr", required_argument, NULL, O_LR },
        { "min-lr", required_argument, NULL, O_MINLR },
        { "warmup", required_argument, NULL, O_WARMUP },
        { "weight-decay", required_argument, NULL, O_WD },
        { "label-smoothing", required_argument, NULL, O_LS },
        { "clip-norm", required_argument, NULL, O_CLIP },
        { "seed", required_argument, NULL, O_SEED },
        { "cache-frames", required_argument, NULL, O_CACHE },
        { "scale", required_argument, NULL, O_SCALE },
        { "hflip", required_argument, NULL, O_HFLIP },
        { "reverse", required_argument, NULL, O_REVERSE },
        { "synth-json", required_argument, NULL, O_SJSON },
        { "log-every", required_argument, NULL, O_LOGEVERY },
        { "threads", required_argument, NULL, 't' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        FV_CLI_ATTN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    TrainOpts o = { .split = 1, .epochs = 30, .batch = 16, .lr = 1e-3, .min_lr = 1e-5, .warmup = 2.0, .wd = 0.05,
                    .smoothing = 0.1, .clip_norm = 1.0, .hflip = -1, .reverse = -1, .seed = 1, .log_every = 10 };
    fv_cli_attn_overrides_init(&o.attn);
    int c, li = -1;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:b:t:qh", longopts, &li)) != -1) {
        switch (c) {
        case O_ROOT: o.root = optarg; break;
        case O_UCF: o.ucf101 = optarg; break;
        case O_SPLIT:
            if (fv_cli_parse_int(optarg, 1, 3, &o.split) < 0)
                goto bad;
            break;
        case O_LIST: o.list = optarg; break;
        case O_VAL: o.val_list = optarg; break;
        case O_CLASSES: o.classes = optarg; break;
        case O_BASE:
            if (fv_cli_parse_int(optarg, 0, 1, &o.label_base) < 0)
                goto bad;
            break;
        case O_NOVAL: o.no_val = 1; break;
        case O_CONFIG: o.config = optarg; break;
        case 'm': o.model = optarg; break;
        case O_FRAMES:
            if (fv_cli_parse_int(optarg, 1, 1024, &o.frames) < 0)
                goto bad;
            break;
        case O_ISIZE:
            if (fv_cli_parse_int(optarg, 8, 4096, &o.image_size) < 0)
                goto bad;
            break;
        case 'o': o.out = optarg; break;
        case O_RESUME: o.resume = 1; break;
        case O_EPOCHS:
            if (fv_cli_parse_int(optarg, 1, 100000, &o.epochs) < 0)
                goto bad;
            break;
        case O_STOP:
            if (fv_cli_parse_int(optarg, 1, 100000, &o.stop_after) < 0)
                goto bad;
            break;
        case 'b':
            if (fv_cli_parse_int(optarg, 1, 256, &o.batch) < 0)
                goto bad;
            break;
        case O_LR:
            if (parse_double(optarg, 1e-9, 10.0, &o.lr) < 0)
                goto bad;
            break;
        case O_MINLR:
            if (parse_double(optarg, 0.0, 10.0, &o.min_lr) < 0)
                goto bad;
            break;
        case O_WARMUP:
            if (parse_double(optarg, 0.0, 100000.0, &o.warmup) < 0)
                goto bad;
            break;
        case O_WD:
            if (parse_double(optarg, 0.0, 10.0, &o.wd) < 0)
                goto bad;
            break;
        case O_LS:
            if (parse_double(optarg, 0.0, 0.99, &o.smoothing) < 0)
                goto bad;
            break;
        case O_CLIP:
            if (parse_double(optarg, 0.0, 1e9, &o.clip_norm) < 0)
                goto bad;
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            o.seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                goto bad;
            break;
        }
        case O_CACHE:
            if (fv_cli_parse_int(optarg, 1, 512, &o.cache_frames) < 0)
                goto bad;
            break;
        case O_SCALE:
            if (parse_range(optarg, &o.scale_lo, &o.scale_hi) < 0)
                goto bad;
            break;
        case O_HFLIP:
            if (!strcmp(optarg, "auto")) o.hflip = -1;
            else if (!strcmp(optarg, "off")) o.hflip = 0;
            else if (!strcmp(optarg, "on")) o.hflip = 1;
            else goto bad;
            break;
        case O_SJSON: o.synth_json = optarg; break;
        case O_REVERSE:
            if (!strcmp(optarg, "auto")) o.reverse = -1;
            else if (!strcmp(optarg, "off")) o.reverse = 0;
            else goto bad;
            break;
        case O_EMBED:
            if (!strcmp(optarg, "sincos")) o.embed_random = 0;
            else if (!strcmp(optarg, "random")) o.embed_random = 1;
            else goto bad;
            break;
        case O_LOGEVERY:
            if (fv_cli_parse_int(optarg, 0, 1000000, &o.log_every) < 0)
                goto bad;
            break;
        case 't':
            if (fv_cli_parse_int(optarg, 1, 1024, &v) < 0)
                goto bad;
            o.threads = v;
            break;
        case 'q': o.quiet = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&o.attn, CMD, longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        default:
            help(stderr);
            return FV_EXIT_USAGE;
        }
        li = -1;
        continue;
    bad:
        fv_cli_error(CMD, "bad value '%s' for %s%s (see --help)", optarg, li >= 0 ? "--" : "-",
                     li >= 0 ? longopts[li].name : (char[]){ (char)c, '\0' });
        return FV_EXIT_USAGE;
    }
    if (optind < argc) {
        fv_cli_error(CMD, "unexpected argument '%s' (see --help)", argv[optind]);
        return FV_EXIT_USAGE;
    }
    if (!!o.ucf101 + !!o.list != 1) {
        fv_cli_error(CMD, "give exactly one of --ucf101 DIR or --list FILE (see --help)");
        return FV_EXIT_USAGE;
    }
    if (o.list && !o.root) {
        fv_cli_error(CMD, "--list needs --root VIDEO_DIR (see --help)");
        return FV_EXIT_USAGE;
    }
    if (!o.list && (o.val_list || o.classes || o.label_base)) {
        fv_cli_error(CMD, "--val-list, --classes and --label-base go with --list only");
        return FV_EXIT_USAGE;
    }
    if (!o.out) {
        fv_cli_error(CMD, "-o/--out DIR is required (see --help)");
        return FV_EXIT_USAGE;
    }
    if (o.model && (o.config || o.frames || o.image_size)) {
        fv_cli_error(CMD, "-m (fine-tuning) and --config/--frames/--image-size exclude each other");
        return FV_EXIT_USAGE;
    }
    if (o.min_lr > o.lr) {
        fv_cli_error(CMD, "--min-lr %g is above --lr %g", o.min_lr, o.lr);
        return FV_EXIT_USAGE;
    }
    if (o.synth_json && o.hflip != -1 && o.reverse != -1) {
        fv_cli_error(CMD, "--synth-json goes with --hflip auto or --reverse auto");
        return FV_EXIT_USAGE;
    }
    if (o.threads)
        fv_set_num_threads((int32_t)o.threads);
    return run(&o);
}
