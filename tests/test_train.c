/* `fibvid train` end to end, on a tiny data set that `fibvid synth` writes into a temporary directory:
 * a few AdamW steps on a test-size model reduce the loss on a fixed batch of synth clips (library level);
 * a 3-epoch run of a test-size model writes a well-formed JSONL log, the checkpoint files and loadable
 * models whose config records the labels and the Fibottention settings, and its training loss goes down;
 * a run stopped after epoch 1 and continued with --resume ends with bit-identical weights to the
 * uninterrupted run (-t 1: the whole run is deterministic in --seed); the validation figure equals what
 * `fibvid evaluate` reports for the same model; JSON configs, fine-tuning with a new classifier, and bad
 * command lines / inputs (one-line errors, exit codes). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "fibvid/model.h"
#include "fibvid/synth.h"
#include "model/model_internal.h"
#include "testutil.h"
#include "train/optim.h"


static char *g_tmp;  /* everything lives here */
static char *g_data; /* `fibvid synth` output */

/* Run "fibvid ARGS" (a format); returns the exit code, output strings malloc'd when asked for. */
static int fibvid(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fibvid(char **out, char **err, const char *fmt, ...)
{
    char args[8192], cmd[12000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "'%s' %s", fvt_bin(), args);
    return fvt_run(cmd, out, err);
}

static int exists(const char *dir, const char *name)
{
    char *p = fvt_join(dir, name);
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

static int setup(void **state)
{
    (void)state;
    g_tmp = fvt_tmpdir();
    g_data = fvt_join(g_tmp, "synth");
    char *err = NULL;
    /* 12 classes x 8 clips (2 groups: 1 train, 1 test), 64x48, about a second each */
    int rc = fibvid(NULL, &err, "synth -o '%s' -n 8 --size 64x48 --seconds 1:1.2 -s 5 -q -t 2", g_data);
    if (rc != 0)
        fail_msg("fibvid synth: %s", err ? err : "");
    free(err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fvt_rmtree(g_tmp);
    free(g_tmp);
    free(g_data);
    return 0;
}

/* ---- the library loop: a fixed batch of real synth clips ---- */

static void test_steps_reduce_loss(void **state)
{
    (void)state;
    FvModelConfig c;
    assert_int_equal(fv_model_config_preset(&c, "test"), 0);
    c.num_labels = fv_synth_num_classes();
    c.spatial.kind = c.temporal.kind = FV_ATTN_FIB;
    FvModel *m = NULL;
    assert_int_equal(fv_model_create_random(&m, &c, 11), 0);
    FvSynthSettings ss;
    fv_synth_default_settings(&ss);
    ss.width = ss.height = 32;
    ss.min_seconds = ss.max_seconds = 0.5;
    enum { B = 6 };
    const int32_t T = c.num_frames, S = c.image_size;
    const size_t clip = (size_t)T * 3 * S * S;
    float *x = malloc(sizeof(float) * clip * B);
    int32_t labels[B];
    assert_non_null(x);
    for (int b = 0; b < B; b++) {
        labels[b] = (b * 5) % c.num_labels;
        const int32_t nf = fv_synth_clip_frames(&ss, labels[b], b);
        assert_true(nf >= T);
        uint8_t *rgb = malloc((size_t)nf * S * S * 3);
        assert_non_null(rgb);
        assert_int_equal(fv_synth_render(&ss, labels[b], b, rgb), 0);
        for (int32_t t = 0; t < T; t++) {
            const uint8_t *fr = rgb + (size_t)(t * nf / T) * S * S * 3;
            for (int32_t ch = 0; ch < 3; ch++)
                for (int32_t i = 0; i < S * S; i++)
                    x[b * clip + ((size_t)t * 3 + ch) * S * S + i] = (fr[i * 3 + ch] / 255.0f - 0.45f) / 0.225f;
        }
        free(rgb);
    }
    FvTrainSettings s;
    fv_train_default_settings(&s);
    s.max_batch = B;
    s.lr = 2e-3f;
    s.warmup_steps = 2;
    s.total_steps = 12;
    FvTrainer *tr = NULL;
    assert_int_equal(fv_trainer_new(&tr, m, &s), 0);
    FvStepStats first, st;
    for (int i = 0; i < 12; i++) {
        if (fv_trainer_step(tr, x, labels, B, &st) < 0)
            fail_msg("%s", fv_last_error());
        if (i == 0)
            first = st;
    }
    float logits[B * 12];
    assert_int_equal(fv_trainer_forward(tr, x, B, logits), 0);
    const double after = fv_loss_ce_smooth(logits, labels, B, c.num_labels, s.label_smoothing, NULL, NULL);
    printf("fixed batch of %d synth clips: loss %.4f -> %.4f after 12 steps (last step %.4f)\n", B, first.loss,
           after, st.loss);
    assert_true(after < 0.7 * first.loss);
    fv_trainer_close(&tr);
    fv_model_close(&m);
    free(x);
}

/* ---- the command ---- */

/* Parse train.jsonl: every line a JSON object; returns the lines as an array. */
static json_t *read_log(const char *dir)
{
    char *p = fvt_join(dir, "train.jsonl");
    char *text = fvt_read_file(p, NULL);
    if (!text)
        fail_msg("%s: missing", p);
    json_t *a = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!json_is_object(o))
            fail_msg("%s: bad line: %s", p, line);
        json_array_append_new(a, o);
    }
    free(text);
    free(p);
    return a;
}

static json_t *epoch_line(const json_t *log, int epoch)
{
    size_t i;
    json_t *o;
    json_array_foreach(log, i, o) {
        if (!strcmp(json_string_value(json_object_get(o, "type")), "epoch") &&
            json_integer_value(json_object_get(o, "epoch")) == epoch)
            return o;
    }
    fail_msg("no epoch %d line", epoch);
    return NULL;
}

#define TRAIN_ARGS "--config test --epochs 3 -b 8 --lr 3e-3 --warmup 0.5 --seed 7 -t 1 -q --log-every 2"

static void test_train_resume(void **state)
{
    (void)state;
    char *full = fvt_join(g_tmp, "full"), *part = fvt_join(g_tmp, "part"), *err = NULL, *out = NULL;
    int rc = fibvid(&out, &err, "train --ucf101 '%s' -o '%s' " TRAIN_ARGS, g_data, full);
    if (rc != 0)
        fail_msg("train: rc %d: %s", rc, err);
    free(err);
    free(out);

    /* the log: start, 3 epochs with validation figures, step lines, done */
    json_t *log = read_log(full);
    const json_t *start = json_array_get(log, 0);
    assert_string_equal(json_string_value(json_object_get(start, "type")), "start");
    assert_int_equal(json_integer_value(json_object_get(start, "train_clips")), 48);
    assert_int_equal(json_integer_value(json_object_get(start, "val_clips")), 48);
    assert_string_equal(json_string_value(json_object_get(json_object_get(start, "settings"), "hflip")), "flip_pairs");
    double l1 = 0, l3 = 0;
    for (int e = 1; e <= 3; e++) {
        const json_t *o = epoch_line(log, e);
        const double loss = json_number_value(json_object_get(o, "train_loss"));
        const double v = json_number_value(json_object_get(o, "val_top1"));
        printf("epoch %d: train loss %.4f, val top-1 %.1f%%, %.0f clips/s\n", e, loss, v,
               json_number_value(json_object_get(o, "clips_per_s")));
        assert_true(json_is_number(json_object_get(o, "val_mean_class_acc")));
        assert_true(v >= 0.0 && v <= 100.0);
        assert_int_equal(json_integer_value(json_object_get(o, "step")), e * 6);
        if (e == 1)
            l1 = loss;
        if (e == 3)
            l3 = loss;
    }
    assert_true(l3 < l1);
    int nsteps = 0;
    size_t i;
    json_t *o;
    json_array_foreach(log, i, o) {
        if (!strcmp(json_string_value(json_object_get(o, "type")), "step")) {
            nsteps++;
            assert_true(json_is_number(json_object_get(o, "loss")) && json_is_number(json_object_get(o, "lr")) &&
                        json_is_number(json_object_get(o, "grad_norm")));
        }
    }
    assert_int_equal(nsteps, 9); /* steps 2, 4, ..., 18 */
    const json_t *done = json_array_get(log, json_array_size(log) - 1);
    assert_string_equal(json_string_value(json_object_get(done, "type")), "done");

    /* checkpoint files: only the latest epoch's are kept */
    assert_true(exists(full, "checkpoint.json") && exists(full, "ckpt-epoch0003.safetensors") &&
                exists(full, "ckpt-epoch0003.optim.safetensors") && exists(full, "best.safetensors") &&
                exists(full, "model.safetensors"));
    assert_false(exists(full, "ckpt-epoch0002.safetensors") || exists(full, "ckpt-epoch0001.optim.safetensors"));

    /* the saved model: the data's labels, Fibottention in both attentions */
    char *mp = fvt_join(full, "model.safetensors");
    FvModel *m = NULL;
    if (fv_model_load(&m, mp) < 0)
        fail_msg("%s", fv_last_error());
    assert_int_equal(fv_model_config(m)->num_labels, 12);
    assert_string_equal(fv_model_label(m, 0), "Approach");
    assert_string_equal(fv_model_label(m, 11), "Shrink");
    assert_int_equal(fv_model_config(m)->spatial.kind, FV_ATTN_FIB);
    assert_int_equal(fv_model_config(m)->temporal.kind, FV_ATTN_FIB);
    fv_model_close(&m);

    /* stopped after epoch 1, resumed: the same bytes */
    rc = fibvid(NULL, &err, "train --ucf101 '%s' -o '%s' " TRAIN_ARGS " --stop-after 1", g_data, part);
    if (rc != 0)
        fail_msg("train --stop-after 1: rc %d: %s", rc, err);
    free(err);
    assert_true(exists(part, "ckpt-epoch0001.safetensors"));
    assert_false(exists(part, "model.safetensors"));
    /* without --resume the directory is refused */
    rc = fibvid(NULL, &err, "train --ucf101 '%s' -o '%s' " TRAIN_ARGS, g_data, part);
    printf("no --resume: rc %d: %s", rc, err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--resume"));
    free(err);
    /* other settings are refused */
    rc = fibvid(NULL, &err, "train --ucf101 '%s' -o '%s' " TRAIN_ARGS " --resume --lr 1e-3", g_data, part);
    printf("other settings: rc %d: %s", rc, err);
    assert_int_equal(rc, 1); /* a usage error (issue 20): the option differs from the run's */
    free(err);
    rc = fibvid(NULL, &err, "train --ucf101 '%s' -o '%s' " TRAIN_ARGS " --resume", g_data, part);
    if (rc != 0)
        fail_msg("train --resume: rc %d: %s", rc, err);
    free(err);
    size_t na = 0, nb = 0;
    char *pb = fvt_join(part, "model.safetensors");
    char *a = fvt_read_file(mp, &na), *b = fvt_read_file(pb, &nb);
    assert_non_null(a);
    assert_non_null(b);
    printf("uninterrupted %zu bytes, resumed %zu bytes: %s\n", na, nb,
           na == nb && !memcmp(a, b, na) ? "identical" : "DIFFERENT");
    assert_true(na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);
    json_t *plog = read_log(part);
    const double e3a = json_number_value(json_object_get(epoch_line(log, 3), "val_top1"));
    const double e3b = json_number_value(json_object_get(epoch_line(plog, 3), "val_top1"));
    assert_true(e3a == e3b);
    json_decref(plog);

    /* the validation figure is what `fibvid evaluate` reports */
    char *ev = fvt_join(g_tmp, "eval");
    rc = fibvid(&out, &err, "evaluate -m '%s' --root '%s' --ucf101 '%s' -o '%s' -q -t 1", mp, g_data, g_data, ev);
    if (rc != 0)
        fail_msg("evaluate: %s", err);
    char *sp = fvt_join(ev, "summary.json");
    json_t *sum = json_load_file(sp, 0, NULL);
    assert_non_null(sum);
    const double et = json_number_value(json_object_get(sum, "top1_acc"));
    printf("validation top-1 %.6f, fibvid evaluate %.6f: max abs diff %g\n", e3a, et, fabs(et - e3a));
    assert_true(fabs(et - e3a) < 1e-3); /* summary.json rounds; one clip of 48 is 2.08 points */
    json_decref(sum);
    json_decref(log);
    free(sp);
    free(ev);
    free(out);
    free(err);
    free(mp);
    free(pb);
    free(full);
    free(part);
}

static void test_config_and_finetune(void **state)
{
    (void)state;
    char *err = NULL, *out = NULL;
    /* a JSON config with HF names, dense attention by its own keys */
    char *cfgp = fvt_join(g_tmp, "cfg.json"), *o1 = fvt_join(g_tmp, "json");
    const char *cfg = "{\"hidden_size\": 24, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                      "\"intermediate_size\": 48, \"num_frames\": 2, \"image_size\": 32, \"patch_size\": 16}";
    assert_int_equal(fvt_write_file(cfgp, cfg, strlen(cfg)), 0);
    int rc = fibvid(&out, &err, "train --ucf101 '%s' -o '%s' --config '%s' --epochs 1 -t 1 -q --hflip off", g_data, o1,
                    cfgp);
    if (rc != 0)
        fail_msg("train --config json: %s", err);
    free(err);
    free(out);
    char *mp = fvt_join(o1, "model.safetensors");
    FvModel *m = NULL;
    if (fv_model_load(&m, mp) < 0)
        fail_msg("%s", fv_last_error());
    const FvModelConfig *c = fv_model_config(m);
    printf("JSON config: D=%d layers=%d heads=%d T=%d S=%d labels=%d spatial %d\n", c->hidden_size, c->num_layers,
           c->num_heads, c->num_frames, c->image_size, c->num_labels, (int)c->spatial.kind);
    assert_true(c->hidden_size == 24 && c->num_layers == 1 && c->num_heads == 2 && c->num_frames == 2 &&
                c->num_labels == 12 && c->spatial.kind == FV_ATTN_DENSE);
    fv_model_close(&m);
    /* from scratch: sin-cos position/time embeddings unless --embed-init random (the log says which) */
    json_t *log = read_log(o1);
    const json_t *st = json_object_get(json_array_get(log, 0), "settings");
    assert_string_equal(json_string_value(json_object_get(st, "embed_init")), "sincos");
    /* synth.json's reverse pairs: time reversal on by default, flips as asked */
    assert_string_equal(json_string_value(json_object_get(st, "reverse")), "reverse_pairs");
    assert_string_equal(json_string_value(json_object_get(st, "hflip")), "off");
    json_decref(log);

    /* fine-tuning on a list of 3 of the classes: a new classifier with their names */
    char *list = fvt_join(g_tmp, "three.txt"), *classes = fvt_join(g_tmp, "three_classes.txt");
    const char *lt = "Blink/v_Blink_g02_c01.avi 0\nBlink/v_Blink_g02_c02.avi 0\nGrow/v_Grow_g02_c01.avi 1\n"
                     "Grow/v_Grow_g02_c02.avi 1\nMoveUp/v_MoveUp_g02_c01.avi 2\nMoveUp/v_MoveUp_g02_c02.avi 2\n";
    const char *ct = "Blink\nGrow\nMoveUp\n";
    assert_int_equal(fvt_write_file(list, lt, strlen(lt)), 0);
    assert_int_equal(fvt_write_file(classes, ct, strlen(ct)), 0);
    char *o2 = fvt_join(g_tmp, "ft");
    rc = fibvid(&out, &err, "train --list '%s' --classes '%s' --root '%s' -m '%s' -o '%s' --epochs 2 -b 3 -t 1",
                list, classes, g_data, mp, o2);
    if (rc != 0)
        fail_msg("fine-tune: %s", err);
    printf("fine-tune: %s%s", out, err);
    assert_non_null(strstr(err, "new classifier"));
    free(err);
    free(out);
    char *fp = fvt_join(o2, "model.safetensors");
    if (fv_model_load(&m, fp) < 0)
        fail_msg("%s", fv_last_error());
    assert_int_equal(fv_model_config(m)->num_labels, 3);
    assert_string_equal(fv_model_label(m, 2), "MoveUp");
    assert_int_equal(fv_model_config(m)->hidden_size, 24);
    fv_model_close(&m);
    free(fp);
    free(o2);
    free(list);
    free(classes);
    free(mp);
    free(cfgp);
    free(o1);
}

/* The first step's loss in a run's log. */
static double first_step_loss(const char *dir)
{
    json_t *log = read_log(dir);
    double loss = NAN;
    for (size_t i = 0; i < json_array_size(log) && isnan(loss); i++) {
        const json_t *l = json_array_get(log, i);
        if (!strcmp(json_string_value(json_object_get(l, "type")), "step"))
            loss = json_real_value(json_object_get(l, "loss"));
    }
    json_decref(log);
    return loss;
}

/* SimA and Castling from scratch (SPEC 4): the model saves and loads with the kinds and Castling's taps,
 * which a preset starts at zero (a warning line says so) and training moves; the auxiliary branch's end
 * (--castling-aux-until, recorded in the run's settings) changes the first step's loss, 0 turns it off;
 * fine-tuning the castling model into sima drops nothing it needs; a value outside [0, 1] is a usage error. */
static void test_linear_kinds(void **state)
{
    (void)state;
    char *err = NULL, *out = NULL;
    char *o1 = fvt_join(g_tmp, "castling"), *o2 = fvt_join(g_tmp, "castling_noaux"), *o3 = fvt_join(g_tmp, "sima_ft");
    int rc = fibvid(&out, &err, "train --ucf101 '%s' -o '%s' --config test --frames 4 --epochs 1 -b 8 -t 1 "
                    "--spatial-attn sima --temporal-attn castling --log-every 1", g_data, o1);
    if (rc != 0)
        fail_msg("train castling: %s", err);
    printf("train sima/castling: %s", err);
    assert_non_null(strstr(err, "taken as zero"));
    free(err);
    free(out);
    rc = fibvid(&out, &err, "train --ucf101 '%s' -o '%s' --config test --frames 4 --epochs 1 -b 8 -t 1 -q "
                "--spatial-attn sima --temporal-attn castling --log-every 1 --castling-aux-until 0", g_data, o2);
    if (rc != 0)
        fail_msg("train castling without the branch: %s", err);
    free(err);
    free(out);
    const double l1 = first_step_loss(o1), l2 = first_step_loss(o2);
    printf("first step loss: %.6f with the auxiliary branch (lambda 1), %.6f without\n", l1, l2);
    assert_true(isfinite(l1) && isfinite(l2) && fabs(l1 - l2) > 1e-6);
    json_t *log = read_log(o1);
    const json_t *st = json_object_get(json_array_get(log, 0), "settings");
    assert_true(fabs(json_real_value(json_object_get(st, "castling_aux_until")) - 0.8) < 1e-9);
    json_decref(log);

    char *mp = fvt_join(o1, "model.safetensors");
    FvModel *m = NULL;
    if (fv_model_load(&m, mp) < 0)
        fail_msg("%s", fv_last_error());
    const FvModelConfig *c = fv_model_config(m);
    assert_int_equal(c->spatial.kind, FV_ATTN_SIMA);
    assert_int_equal(c->temporal.kind, FV_ATTN_CASTLING);
    assert_int_equal(fv_model_attention_tensors_missing(m), 0);
    /* the taps started at zero and were trained */
    double tapsum = 0.0;
    for (int32_t l = 0; l < c->num_layers; l++) {
        const float *w = m->w.layers[l].own[1][FV_ATTN_CASTLING][0];
        assert_non_null(w);
        for (int32_t i = 0; i < c->num_heads * FV_CASTLING_TAPS; i++)
            tapsum += fabs(w[i]);
    }
    printf("castling taps after one epoch: sum |w| = %g\n", tapsum);
    assert_true(tapsum > 0.0);
    fv_model_close(&m);

    /* fine-tuning into sima in both attentions */
    rc = fibvid(&out, &err, "train --ucf101 '%s' -o '%s' -m '%s' --epochs 1 -b 8 -t 1 -q --temporal-attn sima",
                g_data, o3, mp);
    if (rc != 0)
        fail_msg("fine-tune into sima: %s", err);
    free(err);
    free(out);
    char *fp = fvt_join(o3, "model.safetensors");
    if (fv_model_load(&m, fp) < 0)
        fail_msg("%s", fv_last_error());
    assert_int_equal(fv_model_config(m)->temporal.kind, FV_ATTN_SIMA);
    fv_model_close(&m);
    log = read_log(o3);
    st = json_object_get(json_array_get(log, 0), "settings");
    assert_null(json_object_get(st, "castling_aux_until")); /* runs without castling: as before */
    json_decref(log);

    rc = fibvid(&out, &err, "train --ucf101 '%s' -o '%s/bad' --config test --castling-aux-until 1.5", g_data, g_tmp);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "castling-aux-until"));
    free(err);
    free(out);
    free(fp);
    free(mp);
    free(o1);
    free(o2);
    free(o3);
}

typedef struct Embeds {
    const float *pos, *time;
    int64_t npos, ntime;
} Embeds;

static int find_embeds(void *user, const char *name, int32_t ndim, const int64_t *shape, const float **slot)
{
    Embeds *e = user;
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++)
        n *= shape[i];
    if (!strcmp(name, "timesformer.embeddings.position_embeddings")) {
        e->pos = *slot;
        e->npos = n;
    } else if (!strcmp(name, "timesformer.embeddings.time_embeddings")) {
        e->time = *slot;
        e->ntime = n;
    }
    return 0;
}

/* fv_model_init_sincos_embeddings writes MAE's tables (checked element by element against sin/cos of
 * the formula in include/fibvid/model.h) and refuses a model loaded from a file. */
static void test_sincos_embeddings(void **state)
{
    (void)state;
    FvModelConfig c;
    fv_model_config_preset(&c, "test");
    c.hidden_size = 24;
    c.num_heads = 2;
    c.image_size = 48;
    c.patch_size = 16;
    c.num_frames = 4;
    c.num_labels = 3;
    FvModel *m = NULL;
    assert_int_equal(fv_model_create_random(&m, &c, 5), 0);
    assert_int_equal(fv_model_init_sincos_embeddings(m), 0);
    Embeds e = { 0 };
    fv_model_visit_tensors(m, find_embeds, &e);
    const int D = 24, g = 3, q = D / 4;
    assert_int_equal(e.npos, (1 + g * g) * D);
    assert_int_equal(e.ntime, 4 * D);
    double maxd = 0.0;
    for (int i = 0; i < D; i++)
        maxd = fmax(maxd, fabs(e.pos[i])); /* CLS: 0 */
    for (int y = 0; y < g; y++)
        for (int x = 0; x < g; x++)
            for (int i = 0; i < q; i++) {
                const float *row = e.pos + (1 + y * g + x) * D;
                const double w = pow(10000.0, -(double)i / q);
                maxd = fmax(maxd, fabs(row[i] - sin(y * w)));
                maxd = fmax(maxd, fabs(row[q + i] - cos(y * w)));
                maxd = fmax(maxd, fabs(row[2 * q + i] - sin(x * w)));
                maxd = fmax(maxd, fabs(row[3 * q + i] - cos(x * w)));
            }
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < D / 2; i++) {
            const double w = pow(10000.0, -(double)i / (D / 2));
            maxd = fmax(maxd, fabs(e.time[t * D + i] - sin(t * w)));
            maxd = fmax(maxd, fabs(e.time[t * D + D / 2 + i] - cos(t * w)));
        }
    printf("sin-cos embeddings: max abs diff %.3g\n", maxd);
    assert_true(maxd < 1e-6);
    /* a saved and reloaded model uses its file's weights: refused */
    char *p = fvt_join(g_tmp, "sincos.safetensors");
    assert_int_equal(fv_model_save(m, p), 0);
    fv_model_close(&m);
    assert_int_equal(fv_model_load(&m, p), 0);
    assert_true(fv_model_init_sincos_embeddings(m) < 0);
    assert_non_null(strstr(fv_last_error(), "loaded model"));
    fv_model_close(&m);
    free(p);
}

static void test_bad_input(void **state)
{
    (void)state;
    char *err = NULL, *o = fvt_join(g_tmp, "bad"), *missing = fvt_join(g_tmp, "nowhere");
    struct {
        int rc;
        char args[4096];
        const char *expect;
    } cases[9];
    int n = 0;
    cases[n].rc = 1;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s' --epochs 0 -o '%s'", g_data, o);
    cases[n++].expect = "--epochs";
    cases[n].rc = 1;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s'", g_data);
    cases[n++].expect = "--out";
    cases[n].rc = 1;
    snprintf(cases[n].args, 4096, "train -o '%s'", o);
    cases[n++].expect = "--ucf101";
    cases[n].rc = 2;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s' -o '%s'", missing, o);
    cases[n++].expect = "nowhere";
    cases[n].rc = 2;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s' -o '%s' --config nosuch", g_data, o);
    cases[n++].expect = "nosuch";
    cases[n].rc = 2;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s' -o '%s' -m '%s'", g_data, o, missing);
    cases[n++].expect = "nowhere";
    cases[n].rc = 1;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s' -o '%s' --scale 80:60", g_data, o);
    cases[n++].expect = "--scale";
    cases[n].rc = 2;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s' -o '%s' --resume", g_data, missing);
    cases[n++].expect = "resume";
    cases[n].rc = 1;
    snprintf(cases[n].args, 4096, "train --ucf101 '%s' -o '%s' --reverse sideways", g_data, o);
    cases[n++].expect = "reverse";
    for (int i = 0; i < n; i++) {
        int rc = fibvid(NULL, &err, "%s", cases[i].args);
        printf("rc %d: %s", rc, err);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(err, cases[i].expect));
        assert_non_null(strstr(err, "fibvid train"));
        free(err);
    }
    /* --help lists the options with their defaults */
    char *out = NULL;
    assert_int_equal(fibvid(&out, NULL, "train --help"), 0);
    assert_non_null(strstr(out, "--resume"));
    assert_non_null(strstr(out, "(default 30)"));
    free(out);
    free(o);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_reduce_loss),
        cmocka_unit_test(test_train_resume),
        cmocka_unit_test(test_config_and_finetune),
        cmocka_unit_test(test_linear_kinds),
        cmocka_unit_test(test_sincos_embeddings),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
