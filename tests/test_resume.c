/* Stopping and continuing `fibvid train` and `fibvid evaluate` (issue 20), end to end on a tiny `fibvid synth`
 * data set in a temporary directory: Ctrl-C (a real SIGINT, raised by the process itself after optimizer step
 * K through the test hook FIBVID_TEST_SIGINT_AT=K[,COUNT]) stops train at that step boundary with one line
 * naming the command that continues and a mid-epoch checkpoint, and the process ends by the signal (status
 * 130); `train --resume --out DIR` alone continues it, from any directory, and ends with the bytes of the
 * uninterrupted run (-t 1); a second Ctrl-C ends the process at once and leaves the last complete checkpoint
 * intact; options given with --resume must be the run's (one line naming the option and both values, exit 1)
 * except --epochs (extends a finished run), --root and the running options; evaluate --resume --out DIR
 * likewise; warnings for settings that make little sense; exit codes of a resume without a run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "testutil.h"

static char *g_tmp;  /* everything lives here */
static char *g_data; /* `fibvid synth` output */
static char *g_full; /* an uninterrupted 2-epoch run of RUN_ARGS */

/* 48 training clips at batch 8: 6 steps an epoch */
#define RUN_ARGS "--config test --epochs 2 -b 8 --lr 3e-3 --warmup 0.5 --seed 7 -q --log-every 1"

/* Run "fibvid ARGS" (a format) with @env (may be empty) before it; returns the exit code (-1: killed by a
 * signal), output strings malloc'd when asked for. */
static int fibvid(char **out, char **err, const char *env, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fibvid(char **out, char **err, const char *env, const char *fmt, ...)
{
    char args[8192], cmd[12000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s '%s' %s", env, fvt_bin(), args);
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

static json_t *load_json(const char *dir, const char *name)
{
    char *p = fvt_join(dir, name);
    json_error_t jerr;
    json_t *o = json_load_file(p, 0, &jerr);
    if (!o)
        fail_msg("%s: %s", p, jerr.text);
    free(p);
    return o;
}

/* The lines of DIR/train.jsonl of @type ("step", "epoch", "done", ...). */
static json_t *log_lines(const char *dir, const char *type)
{
    char *p = fvt_join(dir, "train.jsonl");
    char *text = fvt_read_file(p, NULL);
    if (!text)
        fail_msg("%s: missing", p);
    json_t *a = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        if (!json_is_object(o))
            fail_msg("%s: bad line: %s", p, line);
        if (!strcmp(json_string_value(json_object_get(o, "type")), type))
            json_array_append(a, o);
        json_decref(o);
    }
    free(text);
    free(p);
    return a;
}

/* Whether two files hold the same bytes. */
static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = fvt_read_file(a, &na), *y = fvt_read_file(b, &nb);
    const int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static int setup(void **state)
{
    (void)state;
    g_tmp = fvt_tmpdir();
    g_data = fvt_join(g_tmp, "synth");
    g_full = fvt_join(g_tmp, "full");
    char *err = NULL;
    /* 12 classes x 8 clips (48 train, 48 test), 64x48, about a second each */
    int rc = fibvid(NULL, &err, "", "synth -o '%s' -n 8 --size 64x48 --seconds 1:1.2 -s 5 -q -t 2", g_data);
    if (rc != 0)
        fail_msg("fibvid synth: %s", err ? err : "");
    free(err);
    err = NULL;
    rc = fibvid(NULL, &err, "", "train --ucf101 '%s' -o '%s' " RUN_ARGS " -t 1", g_data, g_full);
    if (rc != 0)
        fail_msg("fibvid train: rc %d: %s", rc, err ? err : "");
    free(err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fvt_rmtree(g_tmp);
    free(g_tmp);
    free(g_data);
    free(g_full);
    return 0;
}

/* Ctrl-C after step 9 (epoch 2, step 3 of 6): exit 130, one line with the command, a checkpoint of step 9;
 * `--resume --out DIR` alone continues it to the uninterrupted run's bytes. */
static void test_sigint_mid_epoch(void **state)
{
    (void)state;
    char *dir = fvt_join(g_tmp, "sigint"), *err = NULL, *out = NULL;
    int rc = fibvid(&out, &err, "FIBVID_TEST_SIGINT_AT=9", "train --ucf101 '%s' -o '%s' " RUN_ARGS " -t 1", g_data,
                    dir);
    printf("interrupted: rc %d, stderr: %s", rc, err);
    assert_int_equal(rc, 130);
    assert_int_equal(count_lines(err), 1);
    char want[4096];
    snprintf(want, sizeof(want), "continue with: fibvid train --resume --out %s\n", dir);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "step 9"));
    free(err);
    free(out);

    /* the checkpoint: epoch 1 done, 3 steps of epoch 2, its own files; the epoch-1 files are gone */
    json_t *ck = load_json(dir, "checkpoint.json");
    assert_int_equal(json_integer_value(json_object_get(ck, "epoch")), 1);
    assert_int_equal(json_integer_value(json_object_get(ck, "epoch_step")), 3);
    assert_int_equal(json_integer_value(json_object_get(ck, "step")), 9);
    assert_true(exists(dir, json_string_value(json_object_get(ck, "weights"))));
    assert_true(exists(dir, json_string_value(json_object_get(ck, "optim"))));
    assert_false(exists(dir, "ckpt-epoch0001.safetensors"));
    assert_false(exists(dir, "model.safetensors"));
    json_decref(ck);
    json_t *steps = log_lines(dir, "step");
    assert_int_equal(json_array_size(steps), 9);
    json_decref(steps);

    /* continued from another directory with nothing but --out (-t 1 and the rest come from run.json) */
    rc = fibvid(&out, &err, "cd / &&", "train --resume --out '%s'", dir);
    if (rc != 0)
        fail_msg("train --resume: rc %d: %s", rc, err);
    assert_non_null(strstr(err, "(resumed)"));
    free(err);
    free(out);
    char *a = fvt_join(g_full, "model.safetensors"), *b = fvt_join(dir, "model.safetensors");
    const int same = same_file(a, b);
    printf("uninterrupted and interrupted at step 9 + resumed: %s\n", same ? "identical bytes" : "DIFFERENT");
    assert_true(same);
    free(a);
    free(b);
    /* the log reads as one run: every step once, the epoch-2 figures of the uninterrupted run */
    steps = log_lines(dir, "step");
    assert_int_equal(json_array_size(steps), 12);
    for (size_t i = 0; i < 12; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(steps, i), "step")), (json_int_t)i + 1);
    json_decref(steps);
    json_t *e1 = log_lines(g_full, "epoch"), *e2 = log_lines(dir, "epoch");
    assert_int_equal(json_array_size(e2), 2);
    const double l1 = json_real_value(json_object_get(json_array_get(e1, 1), "train_loss"));
    const double l2 = json_real_value(json_object_get(json_array_get(e2, 1), "train_loss"));
    printf("epoch 2 train loss: %.8f uninterrupted, %.8f resumed\n", l1, l2);
    assert_true(l1 == l2);
    json_decref(e1);
    json_decref(e2);
    free(dir);
}

/* A second Ctrl-C ends the process at once: no checkpoint of the step, the epoch-1 one intact and resumable. */
static void test_second_sigint(void **state)
{
    (void)state;
    char *dir = fvt_join(g_tmp, "twice"), *err = NULL;
    int rc = fibvid(NULL, &err, "FIBVID_TEST_SIGINT_AT=9,2", "train --ucf101 '%s' -o '%s' " RUN_ARGS " -t 1", g_data,
                    dir);
    printf("two SIGINTs: rc %d, stderr: '%s'\n", rc, err);
    assert_true(rc == 130 || rc == -1); /* killed by SIGINT (as the shell reports it) */
    assert_null(strstr(err, "continue with"));
    free(err);
    json_t *ck = load_json(dir, "checkpoint.json");
    assert_int_equal(json_integer_value(json_object_get(ck, "epoch")), 1);
    assert_int_equal(json_integer_value(json_object_get(ck, "step")), 6);
    assert_string_equal(json_string_value(json_object_get(ck, "weights")), "ckpt-epoch0001.safetensors");
    assert_true(exists(dir, "ckpt-epoch0001.safetensors") && exists(dir, "ckpt-epoch0001.optim.safetensors"));
    json_decref(ck);
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' -q", dir);
    if (rc != 0)
        fail_msg("train --resume: rc %d: %s", rc, err);
    free(err);
    char *a = fvt_join(g_full, "model.safetensors"), *b = fvt_join(dir, "model.safetensors");
    assert_true(same_file(a, b));
    free(a);
    free(b);
    free(dir);
}

/* Options given with --resume: the run's values pass (numbers by value, files by path), others are refused
 * with one line naming the option and both values, untruncated; --epochs extends a finished run. */
static void test_resume_options(void **state)
{
    (void)state;
    char *dir = fvt_join(g_tmp, "opts");
    /* relative paths, recorded as absolute ones */
    char *err = NULL;
    char env[4096];
    snprintf(env, sizeof(env), "cd '%s' &&", g_tmp);
    int rc = fibvid(NULL, &err, env, "train --ucf101 synth -o opts --config test --epochs 1 -b 8 --lr 3e-3 "
                    "--warmup 0.5 --seed 7 -q --no-val");
    if (rc != 0)
        fail_msg("train: rc %d: %s", rc, err);
    free(err);
    json_t *run = load_json(dir, "run.json");
    const char *rec = json_string_value(json_object_get(json_object_get(run, "options"), "ucf101"));
    assert_non_null(rec);
    assert_string_equal(rec, g_data);
    json_decref(run);

    char want[8192];
    /* a recorded value */
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' -b 4", dir);
    snprintf(want, sizeof(want), "fibvid train: --batch 4 differs from the run's 8 (recorded in %s/run.json)\n", dir);
    printf("%s", err);
    assert_int_equal(rc, 1);
    assert_string_equal(err, want);
    free(err);
    /* a default the run used */
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --min-lr 2e-5", dir);
    printf("%s", err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "--min-lr 2e-5 differs from the run's 1e-5"));
    free(err);
    /* an option the run did not have */
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --frames 4", dir);
    printf("%s", err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "--frames 4"));
    free(err);
    /* a long path, named whole */
    char longp[1200];
    int n = snprintf(longp, sizeof(longp), "%s/", g_tmp);
    while (n < 1000)
        n += snprintf(longp + n, sizeof(longp) - (size_t)n, "a-long-directory-name/");
    snprintf(longp + n, sizeof(longp) - (size_t)n, "data");
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --ucf101 '%s'", dir, longp);
    snprintf(want, sizeof(want), "fibvid train: --ucf101 %s differs from the run's %s (recorded in %s/run.json)\n",
             longp, g_data, dir);
    assert_int_equal(rc, 1);
    assert_string_equal(err, want);
    free(err);

    /* the same values written otherwise pass; --epochs 3 extends the finished 1-epoch run */
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --ucf101 '%s/../synth' --lr 0.003 -b 8 --epochs 3 -q",
                dir, g_data);
    if (rc != 0)
        fail_msg("train --resume --epochs 3: rc %d: %s", rc, err);
    free(err);
    json_t *ck = load_json(dir, "checkpoint.json");
    assert_int_equal(json_integer_value(json_object_get(ck, "epoch")), 3);
    json_decref(ck);
    json_t *ep = log_lines(dir, "epoch"), *done = log_lines(dir, "done");
    assert_int_equal(json_array_size(ep), 3);
    assert_int_equal(json_array_size(done), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(done, 0), "epoch")), 3);
    json_decref(ep);
    json_decref(done);
    /* ... and the record says 3 now: fewer than the run has done is refused */
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --epochs 2 -q", dir);
    printf("%s", err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "3"));
    free(err);
    run = load_json(dir, "run.json");
    assert_string_equal(json_string_value(json_object_get(json_object_get(run, "options"), "epochs")), "3");
    json_decref(run);
    free(dir);
}

/* A run given relative files (--list, --root, -m to fine-tune) is continued from another directory: the
 * record names them absolutely, and the checkpoint's settings take them as the same files. */
static void test_resume_relative_files(void **state)
{
    (void)state;
    char env[4096], *err = NULL;
    snprintf(env, sizeof(env), "cd '%s' && FIBVID_TEST_SIGINT_AT=4", g_tmp);
    int rc = fibvid(NULL, &err, env, "train --list synth/trainlist01.txt --label-base 1 --root synth "
                    "-m full/model.safetensors -o ft --epochs 1 -b 8 -q --no-val -t 1");
    printf("fine-tune, interrupted: rc %d: %s", rc, err);
    assert_int_equal(rc, 130);
    assert_non_null(strstr(err, "continue with: fibvid train --resume --out ft\n"));
    free(err);
    char *dir = fvt_join(g_tmp, "ft");
    rc = fibvid(NULL, &err, "cd / &&", "train --resume --out '%s' -q", dir);
    if (rc != 0)
        fail_msg("train --resume: rc %d: %s", rc, err);
    free(err);
    assert_true(exists(dir, "model.safetensors"));
    /* the same files named otherwise are the run's */
    rc = fibvid(NULL, &err, "cd / &&", "train --resume --out '%s' -q -m '%s/./full/model.safetensors' --list "
                "'%s/trainlist01.txt'", dir, g_tmp, g_data);
    if (rc != 0)
        fail_msg("train --resume with the same files: rc %d: %s", rc, err);
    free(err);
    free(dir);
}

/* evaluate --resume --out DIR needs nothing else either: a run killed after 5 videos, given relative files,
 * continues from another directory with only --out and ends with the uninterrupted run's predictions; a
 * given option that differs is named with both values (exit 1); --root may change (videos moved). */
static void test_evaluate_resume(void **state)
{
    (void)state;
    char env[4096], *err = NULL, *out = NULL;
    char *ref = fvt_join(g_tmp, "eval-ref"), *dir = fvt_join(g_tmp, "eval-cut");
    int rc = fibvid(&out, &err, "", "evaluate -q -m '%s/model.safetensors' --root '%s' --ucf101 '%s' -o '%s' -t 1",
                    g_full, g_data, g_data, ref);
    if (rc != 0)
        fail_msg("evaluate: rc %d: %s", rc, err);
    free(err);
    free(out);
    snprintf(env, sizeof(env), "cd '%s' && FIBVID_TEST_STOP_AFTER=5", g_tmp);
    rc = fibvid(NULL, NULL, env, "evaluate -q -m full/model.safetensors --root synth --ucf101 synth -o eval-cut -t 1");
    assert_true(rc == -1 || rc == 128 + 9); /* killed itself with SIGKILL */
    char want[8192];
    rc = fibvid(NULL, &err, "cd / &&", "evaluate --resume --out '%s' --views 3x1", dir);
    snprintf(want, sizeof(want), "fibvid evaluate: --views 3x1 differs from the run's 1x1 (the default) (recorded in "
             "%s/run.json)\n", dir);
    printf("%s", err);
    assert_int_equal(rc, 1);
    assert_string_equal(err, want);
    free(err);
    rc = fibvid(NULL, &err, "cd / &&", "evaluate --resume --out '%s' --split 2", dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "--split 2 differs from the run's 1"));
    free(err);
    rc = fibvid(&out, &err, "cd / &&", "evaluate --resume --out '%s' -q", dir);
    if (rc != 0)
        fail_msg("evaluate --resume: rc %d: %s", rc, err);
    free(err);
    free(out);
    /* the same predictions (the ms figures aside) */
    json_t *sa = load_json(ref, "summary.json"), *sb = load_json(dir, "summary.json");
    printf("top-1 uninterrupted %.4f, killed + resumed %.4f\n", json_number_value(json_object_get(sa, "top1_acc")),
           json_number_value(json_object_get(sb, "top1_acc")));
    const double ta = json_number_value(json_object_get(sa, "top1_acc"));
    assert_true(ta == json_number_value(json_object_get(sb, "top1_acc")));
    assert_int_equal(json_integer_value(json_object_get(sb, "num_evaluated")), 48);
    json_decref(sa);
    json_decref(sb);
    char *pa = fvt_join(ref, "per_class.csv"), *pb = fvt_join(dir, "per_class.csv");
    assert_true(same_file(pa, pb));
    free(pa);
    free(pb);
    /* the videos moved: --root may change */
    char *moved = fvt_join(g_tmp, "moved");
    snprintf(env, sizeof(env), "cp -r '%s' '%s' &&", g_data, moved);
    rc = fibvid(NULL, &err, env, "evaluate --resume --out '%s' -q --root '%s'", dir, moved);
    if (rc != 0)
        fail_msg("evaluate --resume --root elsewhere: rc %d: %s", rc, err);
    free(err);
    json_t *run = load_json(dir, "run.json");
    assert_string_equal(json_string_value(json_object_get(json_object_get(run, "options"), "root")), moved);
    json_decref(run);
    free(moved);
    free(ref);
    free(dir);
}

/* Settings that make little sense run, with one warning line each. */
static void test_warnings(void **state)
{
    (void)state;
    char *dir = fvt_join(g_tmp, "warn"), *err = NULL;
    int rc = fibvid(NULL, &err, "", "train --ucf101 '%s' -o '%s' --config test --epochs 1 --warmup 2 -b 64 --no-val",
                    g_data, dir);
    printf("%s", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "fibvid train: warning: --warmup 2 epochs is longer than the run's 1"));
    assert_non_null(strstr(err, "fibvid train: warning: --batch 64 is larger than the 48 training clips"));
    free(err);
    /* -q: errors only */
    char *dq = fvt_join(g_tmp, "warn-q");
    rc = fibvid(NULL, &err, "", "train --ucf101 '%s' -o '%s' --config test --epochs 1 --warmup 2 -b 64 --no-val -q",
                g_data, dq);
    assert_int_equal(rc, 0);
    assert_null(strstr(err, "warning"));
    free(err);
    free(dq);
    /* a sensible run says nothing */
    fvt_rmtree(dir);
    rc = fibvid(NULL, &err, "", "train --ucf101 '%s' -o '%s' --config test --epochs 1 --warmup 0.5 -b 8 --no-val -q",
                g_data, dir);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    free(err);
    free(dir);
}

/* Exit codes of resuming what is not there (README's table): usage 1, input 2. */
static void test_resume_exit_codes(void **state)
{
    (void)state;
    char *err = NULL, *dir = fvt_join(g_tmp, "none");
    int rc = fibvid(NULL, &err, "", "train --resume");
    printf("%s", err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "--resume needs"));
    free(err);
    /* a directory without a run: no options to take, no checkpoint (train and evaluate alike) */
    rc = fibvid(NULL, &err, "", "train --resume --out '%s'", dir);
    printf("%s", err);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, dir));
    free(err);
    rc = fibvid(NULL, &err, "", "evaluate --resume --out '%s'", dir);
    printf("%s", err);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    free(err);
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --ucf101 '%s' -q", dir, g_data);
    printf("%s", err);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    free(err);
    /* a run.json that is not JSON */
    char *bad = fvt_join(g_tmp, "badrun");
    mkdir(bad, 0755);
    char *rp = fvt_join(bad, "run.json");
    assert_int_equal(fvt_write_file(rp, "{ not json", 10), 0);
    rc = fibvid(NULL, &err, "", "train --resume --out '%s'", bad);
    printf("%s", err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "run.json"));
    free(err);
    free(rp);
    free(bad);
    free(dir);
}

/* A copy of the uninterrupted run as @name under the temporary directory, its checkpoint.json's field @key
 * (of "partial" when @part) set to the JSON value @val (NULL: the copy unchanged); returns the directory. */
static char *copy_run(const char *name, int part, const char *key, const char *val)
{
    char *dir = fvt_join(g_tmp, name), cmd[8192];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", dir, g_full, dir);
    assert_int_equal(fvt_run(cmd, NULL, NULL), 0);
    if (key) {
        json_t *ck = load_json(dir, "checkpoint.json");
        json_t *v = json_loads(val, JSON_DECODE_ANY, NULL), *o = ck;
        assert_non_null(v);
        if (part) {
            o = json_object();
            json_object_set_new(o, "loss_sum", json_real(1.0));
            json_object_set_new(ck, "partial", o);
        }
        json_object_set_new(o, key, v);
        char *p = fvt_join(dir, "checkpoint.json");
        assert_int_equal(json_dump_file(ck, p, 0), 0);
        free(p);
        json_decref(ck);
    }
    return dir;
}

/* Issue 23: every integer train reads back from checkpoint.json is bounded (UBSan reported a signed overflow
 * for "epoch": INT64_MAX): one line naming the file and the field, exit 2 (an input error, not a conflict of
 * options). */
static void test_checkpoint_bounds(void **state)
{
    (void)state;
    static const struct { int part; const char *key, *val; } bad[] = {
        { 0, "epoch", "9223372036854775807" }, { 0, "epoch", "-1" }, { 0, "epoch", "\"2\"" },
        { 0, "epoch_step", "9223372036854775807" }, { 0, "epoch_step", "-3" }, { 0, "step", "-9223372036854775807" },
        { 0, "step", "9223372036854775807" }, { 0, "best_epoch", "9223372036854775807" },
        { 1, "seen", "9223372036854775807" }, { 1, "correct", "-1" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *dir = copy_run("bounds", bad[i].part, bad[i].key, bad[i].val), *err = NULL, field[64];
        int rc = fibvid(NULL, &err, "", "train --resume --out '%s' --epochs 3 -q -t 2", dir);
        printf("%s = %s: rc %d: %s", bad[i].key, bad[i].val, rc, err);
        assert_int_equal(rc, 2);
        assert_int_equal(count_lines(err), 1);
        assert_non_null(strstr(err, "checkpoint.json"));
        snprintf(field, sizeof(field), "\"%s\"", bad[i].key);
        assert_non_null(strstr(err, field));
        free(err);
        free(dir);
    }
}

/* Issue 23: a kill during a checkpoint write leaves X.tmp / X.tmp.XXXXXX files; resuming removes those of the
 * run's files and nothing else. A hand-edited checkpoint.json naming files outside the run's checkpoint set
 * is refused (exit 2) and the trainer never deletes them. */
static void test_stale_tmp_and_foreign_files(void **state)
{
    (void)state;
    char *dir = copy_run("stale", 0, NULL, NULL), *err = NULL;
    static const char *const stale[] = { "ckpt-epoch0002.safetensors.tmp.AbC123", "checkpoint.json.tmp",
                                         "model.safetensors.tmp.zz9zz9", "ckpt-epoch0001-step000003.optim.safetensors.tmp.q1w2e3" };
    static const char *const keep[] = { "notes.tmp.AbC123", "notes.txt", "my.safetensors.tmp.toolong1" };
    for (size_t i = 0; i < 4; i++) {
        char *p = fvt_join(dir, stale[i]);
        assert_int_equal(fvt_write_file(p, "x", 1), 0);
        free(p);
    }
    for (size_t i = 0; i < 3; i++) {
        char *p = fvt_join(dir, keep[i]);
        assert_int_equal(fvt_write_file(p, "x", 1), 0);
        free(p);
    }
    int rc = fibvid(NULL, &err, "", "train --resume --out '%s' --epochs 3 -q -t 2", dir);
    if (rc != 0)
        fail_msg("train --resume: rc %d: %s", rc, err);
    free(err);
    for (size_t i = 0; i < 4; i++)
        if (exists(dir, stale[i]))
            fail_msg("%s: stale temporary file left", stale[i]);
    for (size_t i = 0; i < 3; i++)
        assert_true(exists(dir, keep[i]));
    free(dir);

    /* checkpoint.json pointing at copies of its files outside the run */
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cp '%s/ckpt-epoch0002.safetensors' '%s/victim.safetensors' && "
             "cp '%s/ckpt-epoch0002.optim.safetensors' '%s/victim.optim.safetensors'", g_full, g_tmp, g_full, g_tmp);
    assert_int_equal(fvt_run(cmd, NULL, NULL), 0);
    dir = copy_run("foreign", 0, "weights", "\"../victim.safetensors\"");
    json_t *ck = load_json(dir, "checkpoint.json");
    json_object_set_new(ck, "optim", json_string("../victim.optim.safetensors"));
    char *p = fvt_join(dir, "checkpoint.json");
    assert_int_equal(json_dump_file(ck, p, 0), 0);
    free(p);
    json_decref(ck);
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --epochs 3 -q -t 2", dir);
    printf("foreign files: rc %d: %s", rc, err);
    assert_true(exists(g_tmp, "victim.safetensors"));
    assert_true(exists(g_tmp, "victim.optim.safetensors"));
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "\"weights\""));
    free(err);
    free(dir);
}

/* Issue 23: `--resume` of a run stopped before its first checkpoint (train) or prediction (evaluate), whose
 * directory holds the run's run.json, starts the run from the beginning with one line saying so, in both
 * commands alike (train exited 2 there); evaluate --resume also removes stale temporary files of its reports. */
static void test_resume_before_first(void **state)
{
    (void)state;
    char *dir = fvt_join(g_tmp, "early"), *err = NULL, *out = NULL, want[8192];
    /* two Ctrl-Cs at the first step: stopped at once, before any checkpoint */
    int rc = fibvid(NULL, NULL, "FIBVID_TEST_SIGINT_AT=1,2", "train --ucf101 '%s' -o '%s' " RUN_ARGS " -t 2",
                    g_data, dir);
    assert_true(rc == -1 || rc == 130);
    assert_true(exists(dir, "run.json"));
    assert_false(exists(dir, "checkpoint.json"));
    rc = fibvid(NULL, &err, "", "train --resume --out '%s' --epochs 1", dir);
    printf("train --resume: rc %d: %s", rc, err);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof(want), "fibvid train: %s: no checkpoint yet; starting the run from the beginning\n", dir);
    assert_non_null(strstr(err, want));
    assert_true(exists(dir, "checkpoint.json"));
    assert_true(exists(dir, "model.safetensors"));
    free(err);
    free(dir);

    /* evaluate killed after its first video, that video's line taken away: the state of a kill before it */
    dir = fvt_join(g_tmp, "eval-early");
    rc = fibvid(NULL, NULL, "FIBVID_TEST_STOP_AFTER=1", "evaluate -q -m '%s/model.safetensors' --root '%s' "
                "--ucf101 '%s' -o '%s' -t 1", g_full, g_data, g_data, dir);
    assert_true(rc == -1 || rc == 128 + 9);
    char *pp = fvt_join(dir, "predictions.jsonl"), *tp = fvt_join(dir, "summary.json.tmp"),
         *tp2 = fvt_join(dir, "predictions.jsonl.tmp.Ab12Cd"), *kp = fvt_join(dir, "mine.json.tmp");
    assert_int_equal(fvt_write_file(pp, "", 0), 0);
    assert_int_equal(fvt_write_file(tp, "{", 1), 0);
    assert_int_equal(fvt_write_file(tp2, "{", 1), 0);
    assert_int_equal(fvt_write_file(kp, "{", 1), 0);
    rc = fibvid(&out, &err, "", "evaluate --resume --out '%s'", dir);
    printf("evaluate --resume: rc %d: %s", rc, err);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof(want), "fibvid evaluate: %s: no predictions yet; starting the run from the beginning\n",
             dir);
    assert_non_null(strstr(err, want));
    assert_false(exists(dir, "summary.json.tmp"));
    assert_false(exists(dir, "predictions.jsonl.tmp.Ab12Cd"));
    assert_true(exists(dir, "mine.json.tmp"));
    char *text = fvt_read_file(pp, NULL);
    assert_int_equal(count_lines(text), 48);
    free(text);
    free(pp);
    free(tp);
    free(tp2);
    free(kp);
    free(out);
    free(err);
    free(dir);
}

/* Issue 23: train on a full disk: one line naming the file, exit 3 (a runtime failure, README's table), and no
 * half checkpoint left (the weights written before the optimizer state failed are removed, no temporary
 * files). The output directory is a 700 KiB tmpfs (the test model's weights take 470 KiB, its optimizer
 * state 925 KiB) mounted in a user and mount namespace; skipped with the reason where that is not allowed. */
static void test_train_out_of_space(void **state)
{
    (void)state;
    char *mnt = fvt_join(g_tmp, "full"), *err = NULL, cmd[16384];
    mkdir(mnt, 0777);
    if (fvt_run("unshare -rm true", NULL, NULL) != 0) {
        printf("skipped: cannot unshare -rm here (no user namespaces) to mount a small tmpfs\n");
        free(mnt);
        skip();
    }
    snprintf(cmd, sizeof(cmd), "unshare -rm sh -c \"mount -t tmpfs -o size=700k tmpfs '%s' && "
             "'%s' train --ucf101 '%s' -o '%s/r' " RUN_ARGS " -t 2; rc=\\$?; ls -a '%s/r' >&2; exit \\$rc\"",
             mnt, fvt_bin(), g_data, mnt, mnt);
    int rc = fvt_run(cmd, NULL, &err);
    printf("full disk: rc %d: %s", rc, err);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(err, "fibvid train: "));
    assert_non_null(strstr(err, "No space left on device\n.\n..\n")); /* one line, then the listing */
    assert_int_equal(count_lines(strstr(err, "fibvid train: ")), 5); /* the line; ., .., run.json, train.jsonl */
    const char *listing = strstr(err, "No space left on device\n");
    assert_null(strstr(listing, "ckpt-epoch"));
    assert_null(strstr(listing, ".tmp"));
    free(err);
    free(mnt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigint_mid_epoch),
        cmocka_unit_test(test_second_sigint),
        cmocka_unit_test(test_resume_options),
        cmocka_unit_test(test_resume_relative_files),
        cmocka_unit_test(test_evaluate_resume),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_resume_exit_codes),
        cmocka_unit_test(test_checkpoint_bounds),
        cmocka_unit_test(test_stale_tmp_and_foreign_files),
        cmocka_unit_test(test_resume_before_first),
        cmocka_unit_test(test_train_out_of_space),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
