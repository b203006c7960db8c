/* The evaluation output directory: reports against hand-checked figures, kill (a record file cut at a
 * random byte) and resume giving the same files as an uninterrupted run, 3 shards merged giving the same
 * files as one run, and the consistency checks of resume and merge. No model: probabilities are generated. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fibvid/eval.h"
#include "util/util.h"
#include "testutil.h"

#define NV 23 /* videos in the list */
#define NL 9  /* model labels */

static const char *g_labels[NL] = { "Swim", "jump", "juggle", "run", "throw", "dive", "climb", "dance", "eat" };
static const char *g_files[] = { "run.json", "predictions.jsonl", "failures.jsonl", "summary.json",
                                 "per_class.csv", "confusion.csv", "confusion.svg" };

typedef struct Fx {
    char      *root;
    FvDataset *ds;
    int32_t    map[4];
} Fx;

static void put(const char *dir, const char *name, const char *text)
{
    char *p = fvt_join(dir, name);
    assert_int_equal(fvt_write_file(p, text, strlen(text)), 0);
    free(p);
}

static int setup(void **state)
{
    Fx *f = calloc(1, sizeof(*f));
    f->root = fvt_tmpdir();
    char list[2048] = "";
    for (int i = 0; i < NV; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "clips/v%02d.mp4 %d\n", i, (i * 7 + i / 5) % 4);
    }
    put(f->root, "list.txt", list);
    put(f->root, "classes.txt", "jump\r\nrun\r\nswim\r\nthrow\r\n");
    char *lp = fvt_join(f->root, "list.txt"), *cp = fvt_join(f->root, "classes.txt");
    assert_int_equal(fv_dataset_load_list(&f->ds, lp, 0, cp), 0);
    assert_int_equal(fv_label_match(f->ds, g_labels, NL, NULL, f->map), 0);
    assert_int_equal(f->map[0], 1);
    assert_int_equal(f->map[2], 0);
    free(lp);
    free(cp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fx *f = *state;
    fv_dataset_free(&f->ds);
    fvt_rmtree(f->root);
    free(f->root);
    free(f);
    return 0;
}

static FvEvalRun make_run(Fx *f, int32_t k, int32_t n, const char *attention)
{
    FvEvalRun r = { 0 };
    r.model = "models/test.safetensors";
    r.attention = attention;
    r.settings = "frames=8 size=224 views=1x3";
    r.views = 3;
    r.shard_k = k;
    r.shard_n = n;
    r.model_labels = g_labels;
    r.num_model_labels = NL;
    r.map = f->map;
    return r;
}

static int is_failure(int64_t i)
{
    return i == 5 || i == 17;
}

/* Deterministic video-level probabilities: mostly right, sometimes not. */
static void video_probs(const Fx *f, int64_t i, float *p)
{
    uint64_t st = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    float sum = 0;
    for (int j = 0; j < NL; j++)
        p[j] = fv_rand_uniform(&st);
    p[f->map[f->ds->entries[i].label]] += (i % 3) ? 0.7f : 0.1f;
    for (int j = 0; j < NL; j++)
        sum += p[j];
    for (int j = 0; j < NL; j++)
        p[j] /= sum;
}

/* Evaluate the videos of the shard not done yet, in list order; stop (as if killed) after @stop_after
 * new records when >= 0. Returns 1 when the shard is complete. */
static int evaluate(Fx *f, const char *dir, int32_t k, int32_t n, int resume, int stop_after)
{
    FvEvalRun r = make_run(f, k, n, "spatial=fib temporal=dense");
    FvEval *e = NULL;
    int ret = fv_eval_open(&e, dir, &r, f->ds, resume);
    if (ret < 0)
        printf("%s\n", fv_last_error());
    assert_int_equal(ret, 0);
    int added = 0;
    for (int64_t i = 0; i < f->ds->num_entries; i++) {
        if (!fv_shard_has(i, k, n) || fv_eval_done(e, i))
            continue;
        if (stop_after >= 0 && added == stop_after) {
            fv_eval_close(&e);
            return 0;
        }
        if (is_failure(i)) {
            assert_int_equal(fv_eval_add_failure(e, i, "clips/corrupt: invalid data found", 10.0 + i), 0);
        } else {
            float p[NL];
            FvPrediction pr;
            video_probs(f, i, p);
            assert_int_equal(fv_prediction_from_probs(&pr, p, NL, i, f->ds->entries[i].label, f->map, 4), 0);
            assert_int_equal(fv_eval_add_prediction(e, &pr, 10.0 + i), 0);
        }
        added++;
    }
    assert_int_equal(fv_eval_num_done(e), fv_eval_num_todo(e));
    assert_int_equal(fv_eval_write_reports(e), 0);
    fv_eval_close(&e);
    return 1;
}

static char *sub(const Fx *f, const char *name)
{
    return fvt_join(f->root, name);
}

static void assert_same_files(const char *a, const char *b)
{
    for (size_t i = 0; i < sizeof(g_files) / sizeof(g_files[0]); i++) {
        char *pa = fvt_join(a, g_files[i]), *pb = fvt_join(b, g_files[i]);
        size_t na, nb;
        char *ta = fvt_read_file(pa, &na), *tb = fvt_read_file(pb, &nb);
        assert_non_null(ta);
        assert_non_null(tb);
        if (na != nb || memcmp(ta, tb, na))
            printf("%s differs between %s and %s\n", g_files[i], a, b);
        assert_int_equal(na, nb);
        assert_memory_equal(ta, tb, na);
        free(ta);
        free(tb);
        free(pa);
        free(pb);
    }
}

static size_t count_lines(const char *dir, const char *name)
{
    char *p = fvt_join(dir, name);
    char *t = fvt_read_file(p, NULL);
    size_t n = 0;
    for (char *c = t; c && *c; c++)
        n += *c == '\n';
    free(t);
    free(p);
    return n;
}

static void test_one_run(void **state)
{
    Fx *f = *state;
    char *dir = sub(f, "one");
    assert_int_equal(evaluate(f, dir, 1, 1, 0, -1), 1);

    /* the same predictions counted directly */
    FvMetrics *m = NULL;
    FvMetricsSummary s;
    assert_int_equal(fv_metrics_create(&m, 4), 0);
    int64_t hand_top1 = 0, hand_top5 = 0, hand_n = 0, hand_cls_n[4] = { 0 }, hand_cls_hit[4] = { 0 };
    for (int64_t i = 0; i < NV; i++) {
        if (is_failure(i)) {
            fv_metrics_add_failure(m);
            continue;
        }
        float p[NL];
        FvPrediction pr;
        video_probs(f, i, p);
        fv_prediction_from_probs(&pr, p, NL, i, f->ds->entries[i].label, f->map, 4);
        fv_metrics_add(m, &pr);
        /* by hand: the argmax is the mapped true label */
        int best = 0;
        for (int j = 1; j < NL; j++)
            if (p[j] > p[best])
                best = j;
        hand_top1 += best == f->map[f->ds->entries[i].label];
        /* top-5 by hand: the target is among the 5 highest (fewer labels than 5: all of them) when fewer than 5
         * labels have a higher probability (ties: the lower index first, as fibvid ranks) */
        const int target = f->map[f->ds->entries[i].label];
        int above = 0;
        for (int j = 0; j < NL; j++)
            above += p[j] > p[target] || (p[j] == p[target] && j < target);
        hand_top5 += above < 5;
        hand_cls_n[f->ds->entries[i].label]++;
        hand_cls_hit[f->ds->entries[i].label] += best == target;
        hand_n++;
    }
    fv_metrics_summary(m, &s);
    fv_metrics_free(&m);
    assert_int_equal(s.top1_correct, hand_top1);
    assert_int_equal(s.num_evaluated, hand_n);

    char *sp = fvt_join(dir, "summary.json");
    json_error_t jerr;
    json_t *j = json_load_file(sp, 0, &jerr);
    assert_non_null(j);
    double d1 = fabs(json_real_value(json_object_get(j, "top1_acc")) - 100.0 * hand_top1 / hand_n);
    /* top-5 and mean class accuracy counted by hand, not by fv_metrics (which is what is under test) */
    double hand_mean = 0;
    int present = 0;
    for (int c = 0; c < 4; c++)
        if (hand_cls_n[c]) {
            hand_mean += 100.0 * (double)hand_cls_hit[c] / (double)hand_cls_n[c];
            present++;
        }
    hand_mean /= present;
    assert_int_equal(s.top5_correct, hand_top5);
    double d5 = fabs(json_real_value(json_object_get(j, "top5_acc")) - 100.0 * hand_top5 / hand_n);
    double dm = fabs(json_real_value(json_object_get(j, "mean_class_acc")) - hand_mean);
    double dmm = fabs(json_real_value(json_object_get(j, "acc/mean1")) - hand_mean / 100);
    printf("top1 %.4f top5 %.4f mean class %.4f; max abs diff %g\n", s.top1_acc, s.top5_acc, s.mean_class_acc,
           fmax(fmax(d1, d5), fmax(dm, dmm * 100)));
    assert_true(d1 < 1e-4 && d5 < 1e-4 && dm < 1e-4 && dmm < 1e-6);
    /* the fixture has hits and misses at top-1 and top-5 */
    assert_true(s.top1_acc > 20 && s.top1_acc < 100 && s.top5_acc > s.top1_acc && s.top5_acc < 100);
    assert_string_equal(json_string_value(json_object_get(j, "split")), "test_final");
    assert_int_equal(json_integer_value(json_object_get(j, "num_videos")), NV);
    assert_int_equal(json_integer_value(json_object_get(j, "num_evaluated")), NV - 2);
    assert_int_equal(json_integer_value(json_object_get(j, "num_failed")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "views_per_video")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "views")), "3");
    assert_true(json_is_true(json_object_get(j, "complete")));
    assert_string_equal(json_string_value(json_object_get(j, "model")), "models/test.safetensors");
    assert_non_null(strstr(json_string_value(json_object_get(j, "note")), "video-level"));
    /* video_s sums the per-video times 10 + i ms; wall_s is the command's to set */
    assert_true(json_is_null(json_object_get(j, "wall_s")));
    double wall = 0;
    for (int i = 0; i < NV; i++)
        wall += 10 + i;
    assert_true(fabs(json_real_value(json_object_get(j, "video_s")) - wall / 1000) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(j, "videos_per_s")) - round((NV - 2) / (wall / 1000) * 1e3) / 1e3) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(j, "clips_per_s")) - round((NV - 2) * 3 / (wall / 1000) * 1e3) / 1e3) < 1e-9);
    json_decref(j);
    free(sp);

    assert_int_equal(count_lines(dir, "predictions.jsonl"), NV - 2);
    assert_int_equal(count_lines(dir, "failures.jsonl"), 2);
    assert_int_equal(count_lines(dir, "per_class.csv"), 5);
    assert_int_equal(count_lines(dir, "confusion.csv"), 5);
    char *cp = fvt_join(dir, "confusion.csv"), *svgp = fvt_join(dir, "confusion.svg");
    char *csv = fvt_read_file(cp, NULL), *svg = fvt_read_file(svgp, NULL);
    assert_memory_equal(csv, "true\\predicted,jump,run,swim,throw,(other)\n", 43);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, ">swim</text>"));
    assert_non_null(strstr(svg, "</svg>\n"));
    /* confusion rows add up to the videos of the class */
    int64_t total = 0;
    for (char *l = strchr(csv, '\n') + 1; *l; l = strchr(l, '\n') + 1)
        for (char *c = strchr(l, ','); c && c < strchr(l, '\n'); c = strchr(c + 1, ','))
            total += atoll(c + 1);
    assert_int_equal(total, NV - 2);
    /* one predictions line */
    char *pp = fvt_join(dir, "predictions.jsonl");
    char *pl = fvt_read_file(pp, NULL);
    *strchr(pl, '\n') = '\0';
    j = json_loads(pl, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "clips/v00.mp4");
    assert_int_equal(json_array_size(json_object_get(j, "top5")), 5);
    assert_true(json_is_boolean(json_object_get(j, "correct")));
    json_decref(j);
    free(pl);
    free(pp);
    free(csv);
    free(svg);
    free(cp);
    free(svgp);
    free(dir);
}

/* Cut @name in @dir at a random byte: what a kill can leave. Returns the complete lines kept. */
static size_t cut_random(const char *dir, const char *name, uint64_t *rng)
{
    char *p = fvt_join(dir, name);
    size_t n;
    char *t = fvt_read_file(p, &n);
    size_t at = n ? (size_t)(fv_rand_u64(rng) % (n + 1)) : 0;
    assert_int_equal(truncate(p, (off_t)at), 0);
    size_t lines = 0;
    for (size_t i = 0; i < at; i++)
        lines += t[i] == '\n';
    free(t);
    free(p);
    return lines;
}

static void test_kill_resume(void **state)
{
    Fx *f = *state;
    char *one = sub(f, "one");
    uint64_t rng = 12345;
    for (int trial = 0; trial < 30; trial++) {
        char name[32];
        snprintf(name, sizeof(name), "resume%d", trial);
        char *dir = sub(f, name);
        int complete = evaluate(f, dir, 1, 1, 0, 1 + (int)(fv_rand_u64(&rng) % 20));
        int kills = 0;
        while (!complete) {
            kills++;
            size_t kept = cut_random(dir, (fv_rand_u64(&rng) & 1) ? "predictions.jsonl" : "failures.jsonl", &rng);
            (void)kept;
            size_t want = count_lines(dir, "predictions.jsonl") + count_lines(dir, "failures.jsonl");
            /* resume reads back exactly the complete lines */
            FvEvalRun r = make_run(f, 1, 1, "spatial=fib temporal=dense");
            FvEval *e = NULL;
            assert_int_equal(fv_eval_open(&e, dir, &r, f->ds, 1), 0);
            assert_int_equal(fv_eval_num_done(e), (int64_t)want);
            fv_eval_close(&e);
            complete = evaluate(f, dir, 1, 1, 1, (fv_rand_u64(&rng) % 3) ? -1 : (int)(fv_rand_u64(&rng) % 10));
        }
        /* every video once, same files as the uninterrupted run */
        assert_true(kills >= 1);
        assert_same_files(one, dir);
        fvt_rmtree(dir);
        free(dir);
    }
    /* resuming a finished run adds nothing and changes nothing */
    char *again = sub(f, "again");
    assert_int_equal(evaluate(f, again, 1, 1, 0, -1), 1);
    assert_int_equal(evaluate(f, again, 1, 1, 1, -1), 1);
    assert_same_files(one, again);
    free(again);
    free(one);
}

static void test_shards_merge(void **state)
{
    Fx *f = *state;
    char *one = sub(f, "one"), *merged = sub(f, "merged");
    char *dirs[3];
    for (int k = 1; k <= 3; k++) {
        char name[32];
        snprintf(name, sizeof(name), "shard%d", k);
        dirs[k - 1] = sub(f, name);
        /* shard 2 is interrupted and resumed */
        if (k == 2) {
            assert_int_equal(evaluate(f, dirs[k - 1], k, 3, 0, 3), 0);
            cut_random(dirs[k - 1], "predictions.jsonl", &(uint64_t){ 7 });
            assert_int_equal(evaluate(f, dirs[k - 1], k, 3, 1, -1), 1);
        } else {
            assert_int_equal(evaluate(f, dirs[k - 1], k, 3, 0, -1), 1);
        }
        assert_int_equal(count_lines(dirs[k - 1], "predictions.jsonl") + count_lines(dirs[k - 1], "failures.jsonl"),
                         k == 3 ? 7 : 8);
    }
    /* in any order */
    const char *order[3] = { dirs[2], dirs[0], dirs[1] };
    int ret = fv_eval_merge(merged, order, 3);
    if (ret < 0)
        printf("%s\n", fv_last_error());
    assert_int_equal(ret, 0);
    assert_same_files(one, merged);

    /* the checks */
    char *m2 = sub(f, "merged2");
    const char *two[2] = { dirs[0], dirs[1] };
    assert_int_equal(fv_eval_merge(m2, two, 2), FV_EINVAL);
    printf("%s\n", fv_last_error());
    const char *dup[3] = { dirs[0], dirs[1], dirs[1] };
    assert_int_equal(fv_eval_merge(m2, dup, 3), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "twice"));
    assert_int_equal(fv_eval_merge(merged, order, 3), FV_EINVAL); /* never overwrite results */

    /* an incomplete shard */
    char *inc = sub(f, "inc3");
    assert_int_equal(evaluate(f, inc, 3, 3, 0, 4), 0);
    const char *withinc[3] = { dirs[0], dirs[1], inc };
    assert_int_equal(fv_eval_merge(m2, withinc, 3), FV_EINVAL);
    printf("%s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "incomplete"));

    /* a shard run with other settings */
    char *other = sub(f, "other3");
    FvEvalRun r = make_run(f, 3, 3, "spatial=dense temporal=dense");
    FvEval *e = NULL;
    assert_int_equal(fv_eval_open(&e, other, &r, f->ds, 0), 0);
    fv_eval_close(&e);
    const char *withother[3] = { dirs[0], dirs[1], other };
    assert_int_equal(fv_eval_merge(m2, withother, 3), FV_EINVAL);
    printf("%s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "attention"));
    const char *missing[3] = { dirs[0], dirs[1], "/nonexistent/fibvid-shard" };
    assert_true(fv_eval_merge(m2, missing, 3) < 0);

    for (int k = 0; k < 3; k++)
        free(dirs[k]);
    free(inc);
    free(other);
    free(m2);
    free(one);
    free(merged);
}

static void test_checks(void **state)
{
    Fx *f = *state;
    char *one = sub(f, "one");
    FvEvalRun r = make_run(f, 1, 1, "spatial=fib temporal=dense");
    FvEval *e = NULL;
    /* a fresh run never overwrites results */
    assert_int_equal(fv_eval_open(&e, one, &r, f->ds, 0), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "resume"));
    /* resume with other settings */
    r.attention = "spatial=dense temporal=dense";
    assert_int_equal(fv_eval_open(&e, one, &r, f->ds, 1), FV_EINVAL);
    printf("%s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "'attention'"));
    r = make_run(f, 2, 3, "spatial=fib temporal=dense");
    assert_int_equal(fv_eval_open(&e, one, &r, f->ds, 1), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "'shard'"));

    /* records: done, out of shard, out of range */
    char *dir = sub(f, "checks");
    assert_int_equal(fv_eval_open(&e, dir, &r, f->ds, 0), 0);
    assert_int_equal(fv_eval_num_todo(e), 8);
    float p[NL] = { 0.1f, 0.2f, 0.3f, 0.1f, 0.2f, 0.1f, 0.0f, 0.0f, 0.0f };
    FvPrediction pr;
    fv_prediction_from_probs(&pr, p, NL, 0, f->ds->entries[0].label, f->map, 4);
    assert_int_equal(fv_eval_add_prediction(e, &pr, 1), FV_EINVAL); /* 0 is in shard 1 */
    fv_prediction_from_probs(&pr, p, NL, 1, f->ds->entries[1].label, f->map, 4);
    assert_int_equal(fv_eval_add_prediction(e, &pr, 1), 0);
    assert_int_equal(fv_eval_add_prediction(e, &pr, 1), FV_EINVAL);
    assert_int_equal(fv_eval_add_failure(e, 1, "x", 1), FV_EINVAL);
    assert_int_equal(fv_eval_add_failure(e, NV + 2, "x", 1), FV_EINVAL);
    pr.index = 4;
    assert_int_equal(fv_eval_add_prediction(e, &pr, 1), FV_EINVAL); /* class of another video */
    assert_int_equal(fv_eval_add_failure(e, 4, "bad\xff utf-8", 1), 0);
    assert_true(fv_eval_done(e, 4) && fv_eval_done(e, 1) && !fv_eval_done(e, 7) && !fv_eval_done(e, -1));
    /* partial reports are allowed and say so */
    assert_int_equal(fv_eval_write_reports(e), 0);
    fv_eval_close(&e);
    char *sp = fvt_join(dir, "summary.json");
    char *st = fvt_read_file(sp, NULL);
    assert_non_null(strstr(st, "\"complete\": false"));
    free(st);
    free(sp);

    /* a malformed complete line is an error naming file:line, not something to skip */
    char *pp = fvt_join(dir, "predictions.jsonl");
    char *t = fvt_read_file(pp, NULL);
    size_t n = strlen(t);
    char *bad = malloc(2 * n + 32);
    snprintf(bad, 2 * n + 32, "%s{\"index\": 7,\n", t);
    assert_int_equal(fvt_write_file(pp, bad, strlen(bad)), 0);
    assert_int_equal(fv_eval_open(&e, dir, &r, f->ds, 1), FV_EINVAL);
    printf("%s\n", fv_last_error());
    assert_non_null(strstr(fv_last_error(), "predictions.jsonl:2"));
    /* a duplicated record too */
    snprintf(bad, 2 * n + 32, "%s%s", t, t);
    assert_int_equal(fvt_write_file(pp, bad, strlen(bad)), 0);
    assert_int_equal(fv_eval_open(&e, dir, &r, f->ds, 1), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), "twice"));
    assert_null(e);
    free(bad);
    free(t);
    free(pp);
    free(dir);
    free(one);
}

static void test_shard_parse(void **state)
{
    (void)state;
    int32_t k, n;
    assert_int_equal(fv_shard_parse("2/3", &k, &n), 0);
    assert_int_equal(k, 2);
    assert_int_equal(n, 3);
    const char *bad[] = { "0/3", "4/3", "a/b", "3", "1/0", "1/3x", "", "-1/3" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(fv_shard_parse(bad[i], &k, &n), FV_EINVAL);
    /* every index in exactly one shard */
    for (int64_t i = 0; i < 50; i++) {
        int in = 0;
        for (int32_t s = 1; s <= 4; s++)
            in += fv_shard_has(i, s, 4);
        assert_int_equal(in, 1);
        assert_true(fv_shard_has(i, 1, 1));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_run),
        cmocka_unit_test(test_kill_resume),
        cmocka_unit_test(test_shards_merge),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_shard_parse),
    };
    /* the later tests compare with the first one's directory */
    return cmocka_run_group_tests(tests, setup, teardown);
}
