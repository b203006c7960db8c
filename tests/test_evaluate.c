/* End-to-end tests of `fibvid evaluate` and `fibvid merge` on small generated trees in the official UCF101
 * (classInd.txt, testlist01.txt, trainlist01.txt, CRLF) and HMDB51 (<class>_test_split1.txt, trailing
 * spaces) layouts, with a missing and a corrupt video, run with the tiny model tests/data/tiny_hf (made by
 * scripts/make_reference.py): metrics equal figures computed here from predictions.jsonl, a killed run
 * resumed equals an uninterrupted one, 3 shards merged equal one run, class-name matching rules. */
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

#include "clipgen.h"
#include "fibvid/model.h"
#include "fibvid/predict.h"
#include "fibvid/video.h"
#include "testutil.h"

/* UCF101-style names of the tiny model's labels ("apply eye makeup", ...), so name matching is exercised */
static const char *g_ucf_classes[5] = { "ApplyEyeMakeup", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching" };
static const char *g_hmdb_classes[5] = { "brush_hair", "cartwheel", "catch", "chew", "clap" };

#define NTEST 11 /* UCF101 test list: 9 clips, a corrupt file and a missing file */
#define THREADS "-t 2"

static char *g_tmp;     /* everything lives here */
static char *g_videos;  /* UCF101 video root */
static char *g_ucf;     /* UCF101 split dir */
static char *g_hmdb_v;  /* HMDB51 video root */
static char *g_hmdb;    /* HMDB51 split dir */
static char *g_ref;     /* output of one uninterrupted run over the UCF101 test list */
static char g_model[4096];

static void put(const char *path, const char *text)
{
    assert_int_equal(fvt_write_file(path, text, strlen(text)), 0);
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    char *s = malloc(4096);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, 4096, fmt, ap);
    va_end(ap);
    return s;
}

/* Run "fibvid ARGS"; returns the exit code (-1 when killed by a signal), output strings malloc'd. */
static int fibvid(const char *args, char **out, char **err)
{
    char cmd[20000];
    snprintf(cmd, sizeof(cmd), "'%s' %s", fvt_bin(), args);
    return fvt_run(cmd, out, err);
}

/* Run and expect exit code @want; prints stderr when it differs. */
static void fibvid_expect(int want, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fibvid_expect(int want, const char *fmt, ...)
{
    char args[16384], *out = NULL, *err = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    int rc = fibvid(args, &out, &err);
    if (rc != want)
        printf("fibvid %s\n-> %d (want %d)\nstdout: %s\nstderr: %s\n", args, rc, want, out, err);
    free(out);
    free(err);
    assert_int_equal(rc, want);
}

static void write_clip(const char *path, int i)
{
    FvtClipSpec s;
    fvt_clip_spec_default(&s);
    /* different sizes and lengths give different pictures after sampling and cropping */
    static const int sizes[4][2] = { { 64, 48 }, { 72, 56 }, { 96, 64 }, { 48, 64 } };
    s.width = sizes[i % 4][0];
    s.height = sizes[i % 4][1];
    s.nframes = 8 + (i * 5) % 9;
    s.gop = 4;
    assert_int_equal(fvt_clip_write(path, &s), 0);
}

static int setup(void **state)
{
    (void)state;
    g_tmp = fvt_tmpdir();
    if (!g_tmp)
        return -1;
    snprintf(g_model, sizeof(g_model), "%s/tiny_hf", fvt_data_dir());
    g_videos = pathf("%s/UCF-101", g_tmp);
    g_ucf = pathf("%s/ucfTrainTestlist", g_tmp);
    g_hmdb_v = pathf("%s/hmdb51", g_tmp);
    g_hmdb = pathf("%s/testTrainMulti_7030_splits", g_tmp);
    g_ref = pathf("%s/ref", g_tmp);
    mkdir(g_videos, 0777);
    mkdir(g_ucf, 0777);
    mkdir(g_hmdb_v, 0777);
    mkdir(g_hmdb, 0777);

    /* UCF101: classInd.txt (1-based, CRLF, a trailing space), testlist01.txt (CRLF), trainlist01.txt */
    char cls[1024] = "", test[4096] = "", train[4096] = "";
    int clip = 0;
    for (int c = 0; c < 5; c++) {
        char *d = pathf("%s/%s", g_videos, g_ucf_classes[c]);
        mkdir(d, 0777);
        snprintf(cls + strlen(cls), sizeof(cls) - strlen(cls), "%d %s%s\r\n", c + 1, g_ucf_classes[c],
                 c == 2 ? " " : "");
        for (int g = 1; g <= 3; g++) {
            char name[256];
            snprintf(name, sizeof(name), "%s/v_%s_g%02d_c01.avi", g_ucf_classes[c], g_ucf_classes[c], g);
            char *p = pathf("%s/%s", g_videos, name);
            if (g <= 2) { /* test: 2 per class */
                snprintf(test + strlen(test), sizeof(test) - strlen(test), "%s\r\n", name);
                if (c == 1 && g == 2)
                    put(p, "RIFF\x10\x00\x00\x00" "AVI LIST garbage, not a video at all"); /* corrupt */
                else
                    write_clip(p, clip++);
            } else { /* train: 1 per class */
                snprintf(train + strlen(train), sizeof(train) - strlen(train), "%s %d\r\n", name, c + 1);
                write_clip(p, clip++);
            }
            free(p);
        }
        free(d);
    }
    /* a listed video that does not exist */
    snprintf(test + strlen(test), sizeof(test) - strlen(test), "BandMarching/v_BandMarching_g09_c01.avi\r\n");
    char *p = pathf("%s/classInd.txt", g_ucf);
    put(p, cls);
    free(p);
    p = pathf("%s/testlist01.txt", g_ucf);
    put(p, test);
    free(p);
    p = pathf("%s/trainlist01.txt", g_ucf);
    put(p, train);
    free(p);

    /* HMDB51: <class>_test_split1.txt lines `<video>.avi <0|1|2> ` with the trailing space */
    for (int c = 0; c < 5; c++) {
        char *d = pathf("%s/%s", g_hmdb_v, g_hmdb_classes[c]);
        mkdir(d, 0777);
        char lines[1024] = "";
        for (int k = 0; k < 3; k++) {
            char *v = pathf("%s/%s_%d.avi", d, g_hmdb_classes[c], k);
            write_clip(v, clip++);
            free(v);
            snprintf(lines + strlen(lines), sizeof(lines) - strlen(lines), "%s_%d.avi %d \n", g_hmdb_classes[c], k,
                     k == 2 ? 1 : 2);
        }
        char *sp = pathf("%s/%s_test_split1.txt", g_hmdb, g_hmdb_classes[c]);
        put(sp, lines);
        free(sp);
        free(d);
    }

    /* the reference: one uninterrupted run */
    char args[8192], *out = NULL, *err = NULL;
    snprintf(args, sizeof(args), "evaluate -m '%s' --root '%s' --ucf101 '%s' --out '%s' " THREADS, g_model,
             g_videos, g_ucf, g_ref);
    int rc = fibvid(args, &out, &err);
    if (rc != 0)
        printf("reference run failed (%d): %s\n", rc, err);
    free(out);
    free(err);
    return rc == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fvt_rmtree(g_tmp);
    free(g_tmp);
    free(g_videos);
    free(g_ucf);
    free(g_hmdb_v);
    free(g_hmdb);
    free(g_ref);
    return 0;
}

static json_t *load_json(const char *dir, const char *name)
{
    char *p = pathf("%s/%s", dir, name);
    json_error_t jerr;
    json_t *j = json_load_file(p, 0, &jerr);
    if (!j)
        printf("%s: %s\n", p, jerr.text);
    free(p);
    assert_non_null(j);
    return j;
}

/* Every JSON line of DIR/NAME, parsed. */
static json_t *load_lines(const char *dir, const char *name)
{
    char *p = pathf("%s/%s", dir, name);
    char *text = fvt_read_file(p, NULL);
    free(p);
    assert_non_null(text);
    json_t *arr = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!o)
            printf("bad line in %s: %s\n", name, line);
        assert_non_null(o);
        json_array_append_new(arr, o);
    }
    free(text);
    return arr;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The records of DIR/NAME without their timing ("ms"), canonical and sorted: the same set of videos and
 * results gives the same string whatever the order they were written in. */
static char *records_canonical(const char *dir, const char *name)
{
    json_t *arr = load_lines(dir, name);
    size_t n = json_array_size(arr), total = 1;
    char **v = calloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        json_object_del(o, "ms");
        v[i] = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        total += strlen(v[i]) + 1;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    char *s = calloc(1, total);
    for (size_t i = 0; i < n; i++) {
        strcat(s, v[i]);
        strcat(s, "\n");
        free(v[i]);
    }
    free(v);
    json_decref(arr);
    return s;
}

static void assert_same_records(const char *a, const char *b, const char *name)
{
    char *x = records_canonical(a, name), *y = records_canonical(b, name);
    if (strcmp(x, y))
        printf("%s differs:\n--- %s\n%s--- %s\n%s", name, a, x, b, y);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

static void assert_same_file(const char *a, const char *b, const char *name)
{
    char *pa = pathf("%s/%s", a, name), *pb = pathf("%s/%s", b, name);
    size_t na = 0, nb = 0;
    char *x = fvt_read_file(pa, &na), *y = fvt_read_file(pb, &nb);
    assert_non_null(x);
    assert_non_null(y);
    if (na != nb || memcmp(x, y, na))
        printf("%s and %s differ\n", pa, pb);
    assert_true(na == nb && memcmp(x, y, na) == 0);
    free(x);
    free(y);
    free(pa);
    free(pb);
}

/* summary.json equal apart from the timing fields */
static void assert_same_summary(const char *a, const char *b)
{
    json_t *x = load_json(a, "summary.json"), *y = load_json(b, "summary.json");
    const char *timing[] = { "wall_s", "clips_per_s", "timing", "video_s", "videos_per_s" };
    for (int i = 0; i < 5; i++) {
        assert_non_null(json_object_get(x, timing[i]));
        json_object_del(x, timing[i]);
        json_object_del(y, timing[i]);
    }
    if (!json_equal(x, y)) {
        char *sx = json_dumps(x, JSON_INDENT(1)), *sy = json_dumps(y, JSON_INDENT(1));
        printf("summaries differ:\n%s\n%s\n", sx, sy);
        free(sx);
        free(sy);
    }
    assert_true(json_equal(x, y));
    json_decref(x);
    json_decref(y);
}

/* Everything an evaluation writes, apart from timing, is the same in @a and @b. */
static void assert_same_run(const char *a, const char *b)
{
    assert_same_summary(a, b);
    assert_same_records(a, b, "predictions.jsonl");
    assert_same_records(a, b, "failures.jsonl");
    assert_same_file(a, b, "per_class.csv");
    assert_same_file(a, b, "confusion.csv");
    assert_same_file(a, b, "confusion.svg");
    assert_same_file(a, b, "confusion.png");
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        printf("summary field %s missing\n", key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void test_metrics_match_predictions(void **state)
{
    (void)state;
    json_t *preds = load_lines(g_ref, "predictions.jsonl"), *fails = load_lines(g_ref, "failures.jsonl");
    json_t *sum = load_json(g_ref, "summary.json");
    assert_int_equal(json_array_size(preds), NTEST - 2);
    assert_int_equal(json_array_size(fails), 2);

    /* by hand: top-1 and top-5 from each line's true model label and ranked labels; mean class recall */
    int n = 0, top1 = 0, top5 = 0, cnt[5] = { 0 }, hit[5] = { 0 };
    long long conf[5][6] = { { 0 } };
    size_t i;
    json_t *p;
    json_array_foreach(preds, i, p) {
        int cls = (int)json_integer_value(json_object_get(p, "class"));
        int target = (int)json_integer_value(json_object_get(p, "target"));
        json_t *top = json_object_get(p, "top5");
        assert_int_equal(json_array_size(top), 5); /* the model has 5 labels */
        /* UCF101 class c is the model's label c: matched by name ("ApplyEyeMakeup" = "apply eye makeup") */
        assert_int_equal(target, cls);
        assert_string_equal(json_string_value(json_object_get(p, "label")), g_ucf_classes[cls]);
        int t0 = (int)json_integer_value(json_object_get(json_array_get(top, 0), "index"));
        int in5 = 0;
        float prev = 2.0f, psum = 0;
        for (size_t r = 0; r < json_array_size(top); r++) {
            json_t *t = json_array_get(top, r);
            in5 |= json_integer_value(json_object_get(t, "index")) == target;
            float pr = (float)json_number_value(json_object_get(t, "prob"));
            assert_true(pr <= prev + 1e-6f); /* ranked */
            prev = pr;
            psum += pr;
        }
        printf("max abs diff %g (sum of the 5 probabilities - 1)\n", fabs(psum - 1.0));
        assert_true(fabs(psum - 1.0) < 1e-4);
        n++;
        top1 += t0 == target;
        top5 += in5;
        cnt[cls]++;
        hit[cls] += t0 == target;
        conf[cls][t0]++;
        assert_int_equal(json_is_true(json_object_get(p, "correct")), t0 == target);
        assert_int_equal(json_integer_value(json_object_get(p, "pred_class")), t0);
    }
    double mean = 0;
    int present = 0;
    for (int c = 0; c < 5; c++)
        if (cnt[c]) {
            mean += 100.0 * hit[c] / cnt[c];
            present++;
        }
    mean /= present;
    double d1 = fabs(num(sum, "top1_acc") - 100.0 * top1 / n), d5 = fabs(num(sum, "top5_acc") - 100.0 * top5 / n);
    double dm = fabs(num(sum, "mean_class_acc") - mean);
    printf("top1 %d/%d, mean class %.4f; max abs diff %g\n", top1, n, mean, fmax(d1, fmax(d5, dm)));
    assert_true(d1 < 1e-3 && d5 < 1e-3 && dm < 1e-3);
    assert_int_equal((int)num(sum, "num_videos"), NTEST);
    assert_int_equal((int)num(sum, "num_evaluated"), NTEST - 2);
    assert_int_equal((int)num(sum, "num_failed"), 2);
    assert_int_equal((int)num(sum, "views_per_video"), 1);
    assert_string_equal(json_string_value(json_object_get(sum, "views")), "1x1");
    assert_true(json_is_true(json_object_get(sum, "complete")));
    assert_string_equal(json_string_value(json_object_get(sum, "split")), "test_final");
    assert_string_equal(json_string_value(json_object_get(sum, "model")), g_model);
    assert_non_null(strstr(json_string_value(json_object_get(sum, "attention")), "spatial=dense"));
    assert_true(num(sum, "wall_s") > 0 && num(sum, "clips_per_s") > 0 && num(sum, "video_s") > 0);
    /* wall_s is real time: at least the per-video times, which happen inside it */
    assert_true(num(sum, "wall_s") >= num(sum, "video_s") - 1e-3);
    json_t *t = json_object_get(sum, "timing");
    assert_true(json_is_object(t));
    double share = num(t, "decode_wait_share");
    assert_true(share >= 0 && share <= 1);
    assert_true(num(t, "elapsed_s") >= num(t, "loop_s") && num(t, "loop_s") >= num(t, "decode_wait_s"));
    assert_int_equal((int)num(t, "videos"), NTEST);
    assert_int_equal((int)num(t, "clips"), NTEST - 2);

    /* the failures: the corrupt file and the missing one, each with a reason naming it */
    int seen_missing = 0, seen_corrupt = 0;
    json_array_foreach(fails, i, p) {
        const char *path = json_string_value(json_object_get(p, "path"));
        const char *reason = json_string_value(json_object_get(p, "reason"));
        assert_non_null(path);
        assert_non_null(reason);
        printf("failure: %s: %s\n", path, reason);
        assert_non_null(strstr(reason, strrchr(path, '/') + 1));
        seen_missing += !strcmp(path, "BandMarching/v_BandMarching_g09_c01.avi");
        seen_corrupt += !strcmp(path, "Archery/v_Archery_g02_c01.avi");
    }
    assert_int_equal(seen_missing, 1);
    assert_int_equal(seen_corrupt, 1);

    /* confusion.csv: the counts computed here; per_class.csv: one row per class */
    char *cp = pathf("%s/confusion.csv", g_ref);
    char *csv = fvt_read_file(cp, NULL);
    assert_non_null(csv);
    char *line = strchr(csv, '\n') + 1;
    for (int r = 0; r < 5; r++) {
        char *comma = strchr(line, ',');
        assert_non_null(comma);
        assert_memory_equal(line, g_ucf_classes[r], strlen(g_ucf_classes[r]));
        for (int c = 0; c < 5; c++) {
            long long v = strtoll(comma + 1, &comma, 10);
            assert_int_equal(v, conf[r][c]);
        }
        line = strchr(line, '\n') + 1;
    }
    free(csv);
    free(cp);
    cp = pathf("%s/per_class.csv", g_ref);
    csv = fvt_read_file(cp, NULL);
    int lines = 0;
    for (char *q = csv; *q; q++)
        lines += *q == '\n';
    assert_int_equal(lines, 6);
    free(csv);
    free(cp);
    /* the pictures */
    cp = pathf("%s/confusion.png", g_ref);
    size_t pn = 0;
    char *png = fvt_read_file(cp, &pn);
    assert_non_null(png);
    assert_true(pn > 100 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    free(png);
    free(cp);
    cp = pathf("%s/confusion.svg", g_ref);
    char *svg = fvt_read_file(cp, NULL);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "BabyCrawling"));
    free(svg);
    free(cp);
    json_decref(preds);
    json_decref(fails);
    json_decref(sum);
}

/* Issue 23: multi-view probabilities checked by value. evaluate --views 3x3 records, for each video, the mean
 * over its 9 views of each view's softmax; here the views come from the library (fv_clip_load with the
 * settings of those views), each view goes through fv_state_forward alone and its softmax is computed in
 * double, then averaged; the recorded top-5 probabilities (6 decimals) must be those means, and the recorded
 * class their arg max. The test also shows that the first view alone would not pass. */
static void test_multiview_probs(void **state)
{
    (void)state;
    char *dir = pathf("%s/views", g_tmp);
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --views 3x3 " THREADS, g_model,
                  g_videos, g_ucf, dir);
    FvModel *m = NULL;
    FvState *st = NULL;
    assert_int_equal(fv_model_load(&m, g_model), 0);
    assert_int_equal(fv_state_create(&st, m), 0);
    const int32_t L = fv_model_config(m)->num_labels;
    FvPredictSettings ps;
    fv_predict_default_settings(&ps);
    ps.temporal_views = 3;
    ps.spatial_views = 3;
    FvClipSettings cs;
    assert_int_equal(fv_predict_clip_settings(m, &ps, &cs), 0);
    char *pp = pathf("%s/predictions.jsonl", dir), *text = fvt_read_file(pp, NULL), *save = NULL;
    assert_non_null(text);
    double *mean = calloc((size_t)L, sizeof(double)), *first = calloc((size_t)L, sizeof(double));
    float *logits = malloc(sizeof(float) * (size_t)L);
    double worst = 0.0, first_worst = 0.0;
    int videos = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        char *vp = pathf("%s/%s", g_videos, json_string_value(json_object_get(o, "path")));
        FvClip clip = { 0 };
        assert_int_equal(fv_clip_load(vp, &cs, &clip), 0);
        const int32_t V = clip.num_tviews * clip.num_sviews;
        assert_int_equal(V, 9);
        const size_t view = (size_t)clip.T * 3 * clip.H * clip.W;
        memset(mean, 0, sizeof(double) * (size_t)L);
        for (int32_t v = 0; v < V; v++) {
            assert_int_equal(fv_state_forward(st, clip.data + (size_t)v * view, 1, clip.T, clip.H, clip.W, logits), 0);
            double mx = logits[0], sum = 0.0;
            for (int32_t i = 1; i < L; i++)
                mx = fmax(mx, logits[i]);
            for (int32_t i = 0; i < L; i++)
                sum += exp((double)logits[i] - mx);
            for (int32_t i = 0; i < L; i++) {
                const double p = exp((double)logits[i] - mx) / sum;
                mean[i] += p / V;
                if (v == 0)
                    first[i] = p;
            }
        }
        int32_t best = 0;
        for (int32_t i = 1; i < L; i++)
            best = mean[i] > mean[best] ? i : best;
        json_t *top = json_object_get(o, "top5");
        assert_true(json_array_size(top) >= 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(top, 0), "index")), best);
        for (size_t r = 0; r < json_array_size(top); r++) {
            const json_t *e = json_array_get(top, r);
            const int64_t i = json_integer_value(json_object_get(e, "index"));
            const double got = json_number_value(json_object_get(e, "prob"));
            assert_true(i >= 0 && i < L);
            worst = fmax(worst, fabs(got - mean[i]));
            first_worst = fmax(first_worst, fabs(got - first[i]));
        }
        videos++;
        fv_clip_free(&clip);
        free(vp);
        json_decref(o);
    }
    printf("%d videos, 9 views: |recorded - mean of the views' softmax| <= %.2e; first view alone: %.2e\n", videos,
           worst, first_worst);
    assert_int_equal(videos, NTEST - 2); /* the corrupt and the missing file are failures */
    assert_true(worst <= 1e-6);          /* 6 decimals recorded */
    assert_true(first_worst > 1e-4);     /* a first-view-only average would be caught */
    free(mean);
    free(first);
    free(logits);
    free(text);
    free(pp);
    fv_state_close(&st);
    fv_model_close(&m);
    free(dir);
}

/* Issue 23: the thread count changes nothing: classify --logits -f json with -t 1 and -t 2 gives the same
 * logits and probabilities to the last bit (floats printed with 9 significant digits, which round-trip), on
 * the tiny test model (9 clips, 3x3 views) and on the bundled default model (its sample clips, 1x3 views). */
static void test_threads_same_logits(void **state)
{
    (void)state;
    const char *src = getenv("FIBVID_SRCROOT");
    char model2[4096], clips[16384] = "", clips2[4096];
    snprintf(model2, sizeof(model2), "%s/models/fibvid-default.safetensors", src ? src : ".");
    snprintf(clips2, sizeof(clips2), "'%s/models/samples/v_MoveLeft_g01_c01.avi' "
             "'%s/models/samples/v_Approach_g01_c01.avi'", src ? src : ".", src ? src : ".");
    for (int c = 0; c < 5; c++)
        snprintf(clips + strlen(clips), sizeof(clips) - strlen(clips), "'%s/%s/v_%s_g01_c01.avi' ", g_videos,
                 g_ucf_classes[c], g_ucf_classes[c]);
    const char *models[2] = { g_model, model2 }, *inputs[2] = { clips, clips2 }, *views[2] = { "3x3", "1x3" };
    for (int k = 0; k < 2; k++) {
        json_t *res[2];
        for (int t = 0; t < 2; t++) {
            char args[16384], *out = NULL, *err = NULL;
            snprintf(args, sizeof(args), "classify -q -m '%s' --logits -f json --views %s -t %d %s", models[k],
                     views[k], t + 1, inputs[k]);
            const int rc = fibvid(args, &out, &err);
            if (rc != 0)
                fail_msg("%s: rc %d: %s", args, rc, err);
            res[t] = json_loads(out, 0, NULL);
            assert_non_null(res[t]);
            free(out);
            free(err);
        }
        assert_int_equal(json_array_size(res[0]), json_array_size(res[1]));
        assert_true(json_array_size(res[0]) > 0);
        for (size_t i = 0; i < json_array_size(res[0]); i++) {
            const json_t *a = json_array_get(res[0], i), *b = json_array_get(res[1], i);
            assert_true(json_array_size(json_object_get(a, "logits")) > 0);
            if (!json_equal(json_object_get(a, "logits"), json_object_get(b, "logits")) ||
                !json_equal(json_object_get(a, "top"), json_object_get(b, "top")))
                fail_msg("%s: -t 1 and -t 2 differ", json_string_value(json_object_get(a, "path")));
        }
        printf("%s: %zu clips, -t 1 and -t 2: identical logits\n", models[k], json_array_size(res[0]));
        json_decref(res[0]);
        json_decref(res[1]);
    }
}

/* One video's prediction is what `fibvid classify` says of the same clip. */
static void test_matches_classify(void **state)
{
    (void)state;
    json_t *preds = load_lines(g_ref, "predictions.jsonl");
    json_t *p = json_array_get(preds, 3);
    char args[8192], *out = NULL, *err = NULL;
    snprintf(args, sizeof(args), "classify -m '%s' -f json " THREADS " '%s/%s'", g_model, g_videos,
             json_string_value(json_object_get(p, "path")));
    assert_int_equal(fibvid(args, &out, &err), 0);
    json_t *c = json_loads(out, 0, NULL);
    assert_non_null(c);
    json_t *ctop = json_object_get(json_array_get(c, 0), "top"), *etop = json_object_get(p, "top5");
    double d = 0;
    for (size_t r = 0; r < 5; r++) {
        json_t *a = json_array_get(ctop, r), *b = json_array_get(etop, r);
        assert_int_equal(json_integer_value(json_object_get(a, "index")), json_integer_value(json_object_get(b, "index")));
        d = fmax(d, fabs(json_number_value(json_object_get(a, "prob")) - json_number_value(json_object_get(b, "prob"))));
    }
    printf("max abs diff %g (probabilities, evaluate vs classify)\n", d);
    assert_true(d < 2e-6);
    json_decref(c);
    json_decref(preds);
    free(out);
    free(err);
}

/* Killed after 4 videos (the test hook sends SIGKILL to itself), with a torn half line as a kill during
 * the write leaves, then --resume: the same results as the uninterrupted run. */
static void test_kill_and_resume(void **state)
{
    (void)state;
    char *dir = pathf("%s/killed", g_tmp);
    char args[8192];
    snprintf(args, sizeof(args), "FIBVID_TEST_STOP_AFTER=4 '%s' evaluate -q -m '%s' --root '%s' --ucf101 '%s' "
             "--out '%s' " THREADS, fvt_bin(), g_model, g_videos, g_ucf, dir);
    int rc = fvt_run(args, NULL, NULL);
    assert_true(rc == -1 || rc == 128 + 9); /* died of SIGKILL (the shell in between reports 137) */
    json_t *a = load_lines(dir, "predictions.jsonl"), *b = load_lines(dir, "failures.jsonl");
    assert_int_equal(json_array_size(a) + json_array_size(b), 4);
    json_decref(a);
    json_decref(b);
    char *pp = pathf("%s/predictions.jsonl", dir);
    FILE *f = fopen(pp, "ab");
    fputs("{\"index\":5,\"path\":\"BabyCraw", f);
    fclose(f);
    free(pp);

    /* a fresh run into a directory holding results is refused */
    fibvid_expect(2, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' " THREADS, g_model, g_videos,
                  g_ucf, dir);
    /* other settings cannot resume it */
    fibvid_expect(1, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --resume --views 2x1 " THREADS,
                  g_model, g_videos, g_ucf, dir);
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --resume " THREADS, g_model,
                  g_videos, g_ucf, dir);
    assert_same_run(g_ref, dir);
    json_t *sum = load_json(dir, "summary.json");
    json_t *t = json_object_get(sum, "timing");
    assert_true(json_is_true(json_object_get(t, "resumed")));
    assert_int_equal((int)num(t, "videos"), NTEST - 4);
    json_decref(sum);
    /* resuming a complete run evaluates nothing and changes nothing */
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --resume " THREADS, g_model,
                  g_videos, g_ucf, dir);
    assert_same_run(g_ref, dir);
    free(dir);
}

/* Issue 20, bug 2: a wrong --root fails every video: exit 2, accuracies null (not 0), the resume says how to
 * retry, and --retry-failed after fixing the root gives the same results as a run that never failed. */
static void test_nothing_evaluated(void **state)
{
    (void)state;
    char *dir = pathf("%s/wrongroot", g_tmp), *bad = pathf("%s/no-such-root", g_tmp), *out = NULL, *err = NULL;
    char args[16384];
    snprintf(args, sizeof(args), "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' " THREADS, g_model, bad,
             g_ucf, dir);
    assert_int_equal(fibvid(args, &out, &err), 2);
    printf("%s", err);
    assert_non_null(strstr(err, "no video could be evaluated"));
    assert_non_null(strstr(err, "--retry-failed"));
    assert_non_null(strstr(out, "no accuracy"));
    free(out);
    free(err);
    json_t *sum = load_json(dir, "summary.json");
    assert_true(json_is_null(json_object_get(sum, "top1_acc")));
    assert_true(json_is_null(json_object_get(sum, "acc/top1")));
    assert_int_equal((int)num(sum, "num_evaluated"), 0);
    json_decref(sum);
    /* a plain resume keeps the failures and says how to retry them */
    snprintf(args, sizeof(args), "evaluate -m '%s' --root '%s' --ucf101 '%s' --out '%s' --resume " THREADS, g_model,
             g_videos, g_ucf, dir);
    assert_int_equal(fibvid(args, &out, &err), 2);
    assert_non_null(strstr(err, "failed: --retry-failed evaluates them again"));
    free(out);
    free(err);
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --retry-failed " THREADS, g_model,
                  g_videos, g_ucf, dir);
    assert_same_run(g_ref, dir);
    free(dir);
    free(bad);
}

/* A real kill -9 from outside, twice, then --resume. Deterministic (issue 23: the timer-driven version
 * interrupted a run in only 7 of 40 rounds): the test hook FIBVID_TEST_PAUSE_AFTER=N stops the process
 * (SIGSTOP) after N recorded videos, the shell waits until it is stopped and kills it; the test asserts that
 * the run really stopped mid-way (N of the records there, no summary of a finished run). */
static void test_kill9_any_moment(void **state)
{
    (void)state;
    char *dir = pathf("%s/kill9", g_tmp);
    char args[8192];
    for (int round = 0; round < 2; round++) {
        const int after = 3; /* records of this invocation: 3, then 6 in all */
        snprintf(args, sizeof(args), "FIBVID_TEST_PAUSE_AFTER=%d '%s' evaluate -q -m '%s' --root '%s' --ucf101 '%s' "
                 "--out '%s' --resume " THREADS " & p=$!; "
                 "while ! grep -q '^State:[[:space:]]*T' /proc/$p/status 2>/dev/null; do "
                 "kill -0 $p 2>/dev/null || exit 3; sleep 0.01; done; kill -9 $p; wait $p; exit 0",
                 after, fvt_bin(), g_model, g_videos, g_ucf, dir);
        assert_int_equal(fvt_run(args, NULL, NULL), 0);
        char *p = pathf("%s/predictions.jsonl", dir), *f = pathf("%s/failures.jsonl", dir);
        char *text = fvt_read_file(p, NULL), *ftext = fvt_read_file(f, NULL);
        int lines = 0;
        for (char *q = text; q && *q; q++)
            lines += *q == '\n';
        for (char *q = ftext; q && *q; q++)
            lines += *q == '\n';
        printf("killed after %d recorded videos of %d\n", lines, NTEST);
        assert_int_equal(lines, after * (round + 1));
        assert_true(lines < NTEST);
        free(text);
        free(ftext);
        free(p);
        free(f);
    }
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --resume " THREADS, g_model,
                  g_videos, g_ucf, dir);
    assert_same_run(g_ref, dir);
    free(dir);
}

/* Issue 23: a full disk is one line on stderr, not two (the failed record, then the reports that fail too),
 * exit 3. The output directory is on a tmpfs of a few blocks, mounted in a user and mount namespace
 * (unshare -rm: no root needed where user namespaces are allowed; skipped with the reason otherwise). */
static void test_out_of_space(void **state)
{
    (void)state;
    char *mnt = pathf("%s/full", g_tmp), args[16384], *out = NULL, *err = NULL;
    mkdir(mnt, 0777);
    if (fvt_run("unshare -rm true", NULL, NULL) != 0) {
        printf("skipped: cannot unshare -rm here (no user namespaces) to mount a small tmpfs\n");
        free(mnt);
        skip();
    }
    /* 64 KiB, all but two 4 KiB pages filled: run.json fits, the records do not */
    snprintf(args, sizeof(args), "unshare -rm sh -c \"mount -t tmpfs -o size=64k tmpfs '%s' && "
             "dd if=/dev/zero of='%s/fill' bs=4096 count=14 2>/dev/null; "
             "'%s' evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s/e' " THREADS "\"",
             mnt, mnt, fvt_bin(), g_model, g_videos, g_ucf, mnt);
    int rc = fvt_run(args, &out, &err);
    printf("full disk: rc %d: %s", rc, err);
    assert_int_equal(rc, 3);
    /* one line for the full disk (a video that failed before it has its own line: -q shows errors) */
    int lines = 0;
    for (char *q = err; q && (q = strstr(q, "No space left on device")); q++)
        lines++;
    assert_int_equal(lines, 1);
    free(out);
    free(err);
    free(mnt);
}

/* 3 shards merged give the files of one run; merges of incomplete or mixed shard sets are refused. */
static void test_shards_merge(void **state)
{
    (void)state;
    char *s[3], *m = pathf("%s/merged", g_tmp), *bad = pathf("%s/shard-other", g_tmp);
    for (int k = 0; k < 3; k++) {
        s[k] = pathf("%s/shard%d", g_tmp, k + 1);
        fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --shard %d/3 --prefetch %d "
                      THREADS, g_model, g_videos, g_ucf, s[k], k + 1, k); /* also depth 0 (no thread) and 1 */
        json_t *sum = load_json(s[k], "summary.json");
        assert_int_equal((int)num(sum, "num_videos"), (NTEST - k + 2) / 3);
        json_decref(sum);
    }
    char *mm = pathf("%s/merged-missing", g_tmp);
    fibvid_expect(2, "merge -q --out '%s' '%s' '%s'", mm, s[0], s[1]);
    fibvid_expect(2, "merge -q --out '%s' '%s' '%s' '%s'", mm, s[0], s[1], s[1]);
    /* a shard with other settings */
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --shard 3/3 --frames 2 " THREADS,
                  g_model, g_videos, g_ucf, bad);
    fibvid_expect(2, "merge -q --out '%s' '%s' '%s' '%s'", mm, s[0], s[1], bad);
    fibvid_expect(1, "merge '%s'", s[0]);

    char args[8192], *out = NULL, *err = NULL;
    snprintf(args, sizeof(args), "merge --out '%s' '%s' '%s' '%s'", m, s[2], s[0], s[1]);
    int rc = fibvid(args, &out, &err);
    if (rc)
        printf("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "top1_acc"));
    free(out);
    free(err);
    assert_same_run(g_ref, m);
    /* merged records are in list order, as an unsharded run writes them */
    json_t *preds = load_lines(m, "predictions.jsonl");
    for (size_t i = 1; i < json_array_size(preds); i++)
        assert_true(json_integer_value(json_object_get(json_array_get(preds, i - 1), "index")) <
                    json_integer_value(json_object_get(json_array_get(preds, i), "index")));
    json_decref(preds);
    json_t *sum = load_json(m, "summary.json");
    assert_int_equal((int)num(json_object_get(sum, "timing"), "shards"), 3);
    json_decref(sum);
    for (int k = 0; k < 3; k++)
        free(s[k]);
    free(m);
    free(mm);
    free(bad);
}

/* Class names: HMDB51's names are not the model's -> exit 2 listing them; --labels-by-index or
 * --label-map make them match; UCF101 CamelCase names match the model's by normalised name. */
static void test_class_matching(void **state)
{
    (void)state;
    char args[8192], *out = NULL, *err = NULL;
    char *dir = pathf("%s/hmdb-byname", g_tmp);
    snprintf(args, sizeof(args), "evaluate -q -m '%s' --root '%s' --hmdb51 '%s' --out '%s'", g_model, g_hmdb_v,
             g_hmdb, dir);
    assert_int_equal(fibvid(args, &out, &err), 2);
    printf("stderr: %s", err);
    for (int c = 0; c < 5; c++)
        assert_non_null(strstr(err, g_hmdb_classes[c]));
    assert_non_null(strstr(err, "--labels-by-index"));
    assert_non_null(strstr(err, "--label-map"));
    free(out);
    free(err);
    free(dir);

    /* by index: hmdb class i (alphabetical) is model label i */
    dir = pathf("%s/hmdb-byindex", g_tmp);
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --hmdb51 '%s' --out '%s' --labels-by-index " THREADS,
                  g_model, g_hmdb_v, g_hmdb, dir);
    json_t *run = load_json(dir, "run.json"), *sum = load_json(dir, "summary.json");
    for (int c = 0; c < 5; c++)
        assert_int_equal(json_integer_value(json_array_get(json_object_get(run, "label_map"), (size_t)c)), c);
    assert_int_equal((int)num(sum, "num_videos"), 10); /* 2 test videos per class */
    assert_int_equal((int)num(sum, "num_failed"), 0);
    json_decref(run);
    json_decref(sum);
    free(dir);
    /* train subset: the other video of each class */
    dir = pathf("%s/hmdb-train", g_tmp);
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --hmdb51 '%s' --subset train --out '%s' --labels-by-index "
                  THREADS, g_model, g_hmdb_v, g_hmdb, dir);
    sum = load_json(dir, "summary.json");
    assert_int_equal((int)num(sum, "num_videos"), 5);
    json_decref(sum);
    free(dir);

    /* a label map: names and indices, reversed order */
    char *map = pathf("%s/hmdb_map.txt", g_tmp);
    put(map, "# hmdb -> tiny model\nbrush_hair\tband marching\ncartwheel balance beam\ncatch 2\nchew archery\n"
             "clap apply eye makeup\n");
    dir = pathf("%s/hmdb-map", g_tmp);
    fibvid_expect(0, "evaluate -q -m '%s' --root '%s' --hmdb51 '%s' --out '%s' --label-map '%s' " THREADS, g_model,
                  g_hmdb_v, g_hmdb, dir, map);
    run = load_json(dir, "run.json");
    for (int c = 0; c < 5; c++)
        assert_int_equal(json_integer_value(json_array_get(json_object_get(run, "label_map"), (size_t)c)), 4 - c);
    json_decref(run);
    json_t *preds = load_lines(dir, "predictions.jsonl");
    size_t i;
    json_t *p;
    json_array_foreach(preds, i, p)
        assert_int_equal(json_integer_value(json_object_get(p, "target")),
                         4 - json_integer_value(json_object_get(p, "class")));
    json_decref(preds);
    free(dir);
    free(map);

    /* by index with unequal counts is refused; a UCF101 class the model lacks is named */
    dir = pathf("%s/ucf-extra", g_tmp);
    char *split = pathf("%s/ucf-extra-split", g_tmp);
    mkdir(split, 0777);
    char *f = pathf("%s/classInd.txt", split);
    put(f, "1 ApplyEyeMakeup\r\n2 Archery\r\n3 Basketball\r\n4 BabyCrawling\r\n5 BalanceBeam\r\n6 BandMarching\r\n");
    free(f);
    f = pathf("%s/testlist01.txt", split);
    put(f, "Archery/v_Archery_g01_c01.avi\r\nBasketball/v_Basketball_g01_c01.avi\r\n");
    free(f);
    snprintf(args, sizeof(args), "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s'", g_model, g_videos,
             split, dir);
    assert_int_equal(fibvid(args, &out, &err), 2);
    printf("stderr: %s", err);
    assert_non_null(strstr(err, "Basketball"));
    assert_null(strstr(err, "Archery"));
    free(out);
    free(err);
    fibvid_expect(2, "evaluate -q -m '%s' --root '%s' --ucf101 '%s' --out '%s' --labels-by-index", g_model,
                  g_videos, split, dir);
    free(split);
    free(dir);
}

/* A generic list (PySlowFast CSV, 1-based labels, a classes file) and a missing video: runs, and the
 * command line's usage errors. */
static void test_list_and_usage(void **state)
{
    (void)state;
    char *list = pathf("%s/val.csv", g_tmp), *classes = pathf("%s/classes.txt", g_tmp);
    char *dir = pathf("%s/list", g_tmp);
    put(list, "path,label\nArchery/v_Archery_g01_c01.avi,2\nApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi,1\n"
              "BalanceBeam/v_BalanceBeam_g02_c01.avi,4\nnope/missing.avi,3\n");
    put(classes, "apply_eye_makeup\narchery\nbaby_crawling\nbalance_beam\nband_marching\n");
    char args[8192], *out = NULL, *err = NULL;
    snprintf(args, sizeof(args), "evaluate -m '%s' --root '%s' --list '%s' --label-base 1 --classes '%s' "
             "--out '%s' " THREADS, g_model, g_videos, list, classes, dir);
    int rc = fibvid(args, &out, &err);
    if (rc)
        printf("%s\n", err);
    assert_int_equal(rc, 0);
    /* not a terminal: no progress line; the failure is reported in one line */
    assert_null(strchr(err, '\r'));
    assert_non_null(strstr(err, "missing.avi"));
    assert_non_null(strstr(out, "top1_acc"));
    free(out);
    free(err);
    json_t *sum = load_json(dir, "summary.json");
    assert_int_equal((int)num(sum, "num_videos"), 4);
    assert_int_equal((int)num(sum, "num_evaluated"), 3);
    assert_int_equal((int)num(sum, "num_failed"), 1);
    json_decref(sum);
    json_t *preds = load_lines(dir, "predictions.jsonl");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(preds, 0), "class")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(preds, 2), "target")), 3);
    json_decref(preds);

    /* usage errors: exit 1 */
    fibvid_expect(1, "evaluate -m '%s' --root '%s'", g_model, g_videos);
    fibvid_expect(1, "evaluate -m '%s' --ucf101 '%s' --out '%s/u1'", g_model, g_ucf, g_tmp);
    fibvid_expect(1, "evaluate -m '%s' --root '%s' --ucf101 '%s' --list '%s'", g_model, g_videos, g_ucf, list);
    fibvid_expect(1, "evaluate -m '%s' --root '%s' --ucf101 '%s' --resume", g_model, g_videos, g_ucf);
    fibvid_expect(1, "evaluate -m '%s' --root '%s' --ucf101 '%s' --classes '%s'", g_model, g_videos, g_ucf, classes);
    fibvid_expect(1, "evaluate -m '%s' --root '%s' --ucf101 '%s' --shard 4/3", g_model, g_videos, g_ucf);
    fibvid_expect(1, "evaluate -m '%s' --root '%s' --ucf101 '%s' --split 4", g_model, g_videos, g_ucf);
    fibvid_expect(1, "evaluate -m '%s' --root '%s' --ucf101 '%s' --views 2x2", g_model, g_videos, g_ucf);
    fibvid_expect(1, "evaluate -m '%s' --root '%s' --ucf101 '%s' --spatial-attn sparse", g_model, g_videos, g_ucf);
    fibvid_expect(1, "evaluate --bogus");
    /* input errors: exit 2 */
    fibvid_expect(2, "evaluate -q -m '%s' --root '%s' --ucf101 '%s/nowhere' --out '%s/u2'", g_model, g_videos,
                  g_tmp, g_tmp);
    fibvid_expect(2, "evaluate -q -m '%s/nowhere' --root '%s' --ucf101 '%s' --out '%s/u3'", g_tmp, g_videos, g_ucf,
                  g_tmp);
    /* --help names every option with its default */
    assert_int_equal(fibvid("evaluate --help", &out, &err), 0);
    const char *opts[] = { "--root", "--ucf101", "--hmdb51", "--list", "--split", "--subset", "--label-base",
                           "--classes", "--label-map", "--labels-by-index", "--model", "--model-id", "--views",
                           "--sampling", "--frames", "--rate", "--dense-start", "--short-side", "--out",
                           "--resume", "--shard", "--prefetch", "--threads", "--quiet", "--spatial-attn",
                           "--fib-shuffle", "Exit codes" };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        if (!strstr(out, opts[i]))
            printf("--help lacks %s\n", opts[i]);
        assert_non_null(strstr(out, opts[i]));
    }
    free(out);
    free(err);
    assert_int_equal(fibvid("merge --help", &out, &err), 0);
    assert_non_null(strstr(out, "--out"));
    free(out);
    free(err);
    free(list);
    free(classes);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_match_predictions),
        cmocka_unit_test(test_matches_classify),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_nothing_evaluated),
        cmocka_unit_test(test_kill9_any_moment),
        cmocka_unit_test(test_out_of_space),
        cmocka_unit_test(test_multiview_probs),
        cmocka_unit_test(test_threads_same_logits),
        cmocka_unit_test(test_shards_merge),
        cmocka_unit_test(test_class_matching),
        cmocka_unit_test(test_list_and_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
