/* libFuzzer harness: evaluate's output directory (src/eval/evaldir.c): resuming a directory with fuzzed
 * run.json, predictions.jsonl and failures.jsonl (then recording more and writing the reports), and
 * merging two shard directories of fuzzed files. The dataset and run settings are fixed; the seeds are
 * directories the library itself wrote. First byte: bits 0-1 0/1 resume (1: dropping failures), 2 merge;
 * bit 2 write the reports after resuming. Then the files, separated by FZ_SEP lines: run.json,
 * predictions.jsonl, failures.jsonl (merge: those of shard 1, then of shard 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/fibvid.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NC 3
static FvDataset *g_ds;
static const char *const g_labels[NC] = { "apply eye makeup", "archery", "catch" };
static const int32_t g_map[NC] = { 0, 1, 2 };
static const char *const g_files[3] = { "run.json", "predictions.jsonl", "failures.jsonl" };

static FvEvalRun run_settings(int32_t k, int32_t n)
{
    FvEvalRun r = { .model = "tiny_hf", .model_id = "sha:0123", .attention = "dense", .settings = "T=4 S=32",
                    .views = 1, .shard_k = k, .shard_n = n, .model_labels = g_labels, .num_model_labels = NC,
                    .map = g_map };
    return r;
}

static int predict(FvEval *e, int64_t i)
{
    float probs[NC] = { 0.2f, 0.3f, 0.5f };
    probs[i % NC] += 0.4f;
    FvPrediction p;
    int ret = fv_prediction_from_probs(&p, probs, NC, i, g_ds->entries[i].label, g_map, NC);
    return ret < 0 ? ret : fv_eval_add_prediction(e, &p, 12.5);
}

/* Run shard k of n in @dir with the library, predicting every video but those i with i % 4 == 3 (failed). */
static void real_run(const char *dir, int32_t k, int32_t n, int64_t stop)
{
    FvEvalRun r = run_settings(k, n);
    FvEval *e = NULL;
    if (fv_eval_open(&e, dir, &r, g_ds, 0) < 0) {
        fprintf(stderr, "%s\n", fv_last_error());
        abort();
    }
    for (int64_t i = 0; i < g_ds->num_entries && i < stop; i++) {
        if (!fv_shard_has(i, k, n))
            continue;
        if (i % 4 == 3)
            fv_eval_add_failure(e, i, "x.avi: no video stream", 1.0);
        else
            predict(e, i);
    }
    fv_eval_close(&e);
}

static void seed_from(const char *out, const char *name, uint8_t mode, const char *const *dirs, int ndirs)
{
    const char *p[6];
    size_t l[6];
    char *texts[6];
    int n = 0;
    for (int d = 0; d < ndirs; d++)
        for (int f = 0; f < 3; f++) {
            char path[600];
            snprintf(path, sizeof(path), "%s/%s", dirs[d], g_files[f]);
            texts[n] = fz_read(path, &l[n]);
            if (!texts[n])
                abort();
            if (n == 0) { /* the mode byte leads */
                char *t = malloc(l[0] + 2);
                t[0] = (char)mode;
                memcpy(t + 1, texts[0], l[0] + 1);
                free(texts[0]);
                texts[0] = t;
                l[0]++;
            }
            p[n] = texts[n];
            n++;
        }
    fz_write_seed(out, name, p, l, n);
    for (int i = 0; i < n; i++)
        free(texts[i]);
}

static void write_seeds(const char *out)
{
    const char *a = fz_subdir("seed_a"), *b = fz_subdir("seed_b");
    real_run(a, 1, 1, 4);
    seed_from(out, "resume_partial", 0, &a, 1);
    seed_from(out, "resume_drop_failures_reports", 1 | 4, &a, 1);
    a = fz_subdir("seed_a");
    real_run(a, 1, 2, 99);
    real_run(b, 2, 2, 99);
    const char *dirs[2] = { a, b };
    seed_from(out, "merge_two_shards", 2, dirs, 2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init_library();
    const char *list = "ApplyEyeMakeup/a0.avi 0\nArchery/b0.avi 1\ncatch/c0.avi 2\nApplyEyeMakeup/a1.avi 0\n"
                       "Archery/b1.avi 1\ncatch/c1.avi 2\n";
    const char *classes = "ApplyEyeMakeup\nArchery\ncatch\n";
    char *lp = fz_write(fz_dir(), "list.txt", list, strlen(list));
    char *cp = fz_write(fz_dir(), "classes.txt", classes, strlen(classes));
    if (fv_dataset_load_list(&g_ds, lp, 0, cp) < 0 || g_ds->num_classes != NC)
        abort();
    free(lp);
    free(cp);
    if (fz_seed_dir()) {
        write_seeds(fz_seed_dir());
        fv_dataset_free(&g_ds);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    FzParts parts;
    fz_split(data + 1, size - 1, &parts);
    if ((mode & 3) < 2) {
        const char *dir = fz_subdir("eval");
        for (int f = 0; f < 3 && f < parts.n; f++)
            free(fz_write(dir, g_files[f], parts.p[f], parts.len[f]));
        FvEvalRun r = run_settings(1, 1);
        FvEval *e = NULL;
        if (fv_eval_open(&e, dir, &r, g_ds, (mode & 3) == 1 ? 2 : 1) == 0) {
            int64_t done = fv_eval_num_done(e), todo = fv_eval_num_todo(e);
            if (done < 0 || done > todo || todo != g_ds->num_entries)
                abort();
            int64_t added = 0;
            for (int64_t i = 0; i < g_ds->num_entries; i++) {
                if (fv_eval_done(e, i))
                    continue;
                int ret = added++ % 2 ? fv_eval_add_failure(e, i, "fuzz", 1.0) : predict(e, i);
                if (ret == 0 && !fv_eval_done(e, i))
                    abort(); /* recorded, but not known as done */
            }
            FvMetricsSummary s;
            fv_eval_metrics(e, &s);
            if (mode & 4)
                fv_eval_write_reports(e);
            fv_eval_close(&e);
        }
    } else {
        const char *dirs[2] = { fz_subdir("shard1"), fz_subdir("shard2") };
        for (int f = 0; f < parts.n && f < 6; f++)
            free(fz_write(dirs[f / 3], g_files[f % 3], parts.p[f], parts.len[f]));
        fv_eval_merge(fz_subdir("merged"), dirs, 2);
    }
    return 0;
}
