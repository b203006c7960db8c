/* `fibvid evaluate`: accuracy of a model on a dataset split or list. Clips are decoded one step ahead by a
 * decoder thread (fv_prefetch_*) while the model runs; every finished video is appended and fsync()ed to the
 * output directory before the next one, so a killed run continues with --resume. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "fibvid/eval.h"

#define CMD "evaluate"

typedef struct EvalOpts {
    const char *model, *model_id;
    const char *root, *ucf101, *hmdb51, *list, *classes, *label_map;
    long split, label_base;
    FvSubset subset;
    int by_index;
    const char *out;
    int resume;
    const char *shard;
    long prefetch;
    long threads;
    int quiet;
    long progress_every;     /* stderr not a terminal: a progress line every N videos (0: not by count) */
    double progress_s;       /* ... and after a video that ends S seconds after the last line (0: not by time) */
    FvPredictSettings pred;
    FvAttnOverrides attn;
    json_t *record;          /* the options run.json records  */
    const char *shown_model; /* --resume: the model as the run named it (NULL: -m or the default) */
} EvalOpts;

/* ------------------------------------------------------------------------------------------------ */
/* The run's record of its options (run.json "options"), for --resume                               */
/* ------------------------------------------------------------------------------------------------ */

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid evaluate [-m MODEL] --root VIDEO_DIR (--ucf101 SPLIT_DIR | --hmdb51 SPLIT_DIR)\n"
        "                       [--split 1|2|3] [--subset test|train] [options]\n"
        "       fibvid evaluate [-m MODEL] --root VIDEO_DIR --list FILE [--label-base 0|1] [--classes FILE]\n"
        "                       [options]\n"
        "       fibvid evaluate --resume --out DIR            (the run's options come from DIR/run.json)\n"
        "\n"
        "Video-level accuracy of a model on a dataset: the softmax of every view is averaged per video.\n"
        "Every finished video is appended to the output directory at once: a run that was stopped continues\n"
        "with --resume and the same --out, and evaluates each video exactly once.\n"
        "\n"
        "dataset:\n"
        "      --root DIR          directory the list's video paths are relative to (required)\n"
        "      --ucf101 DIR        official UCF101 split files (classInd.txt, testlist0N.txt, trainlist0N.txt)\n"
        "      --hmdb51 DIR        official HMDB51 split files (<class>_test_splitN.txt)\n"
        "      --list FILE         MMAction2 `path label` or PySlowFast `path,label` list\n"
        "      --split N           official split 1, 2 or 3 (default 1)\n"
        "      --subset S          test|train part of the official split (default test)\n"
        "      --label-base B      first label number of --list: 0 or 1 (default 0)\n"
        "      --classes FILE      class names of --list, one a line in label order (default: none; the\n"
        "                          list's labels are then the model's label indices)\n"
        "dataset classes -> model labels (default: by name, CamelCase/underscores/case ignored):\n"
        "      --label-map FILE    `dataset_class model_label` lines or a JSON object (default: none)\n"
        "      --labels-by-index   class i is model label i (needs equal counts; default off)\n"
        "model and clips:\n"
        "  -m, --model PATH        Hugging Face TimeSformer directory or fibvid .safetensors file\n"
        "                          (default: $FIBVID_MODEL, else the bundled default model)\n"
        "      --model-id ID       identity of the model compared by --resume and merge instead of its path\n"
        "                          (default: none, the path is compared)\n"
        "      --views TxS         T temporal x S spatial views per video (default 1x1; S is 1 or 3)\n"
        "      --sampling MODE     uniform|dense (default: the model's config, else uniform)\n"
        "      --frames N          frames per view (default: the model's num_frames)\n"
        "      --rate R            dense sampling stride in native frames (default: the model's)\n"
        "      --dense-start S     mmaction|slowfast: where dense views start (default mmaction)\n"
        "      --short-side N      resize the shorter side to N before cropping (default: crop size)\n"
        "output and running:\n"
        "  -o, --out DIR           output directory (default ./fibvid-eval-<YYYYmmdd-HHMMSS>)\n"
        "      --resume            continue the run recorded in --out: every option not given is taken from\n"
        "                          OUT/run.json; a given one must equal the run's, except --root, --threads\n"
        "                          and --prefetch; a run killed before its first prediction starts from\n"
        "                          the beginning (one line says so); stale temporary files of the run's\n"
        "                          files (summary.json.tmp, ...) are removed (default off)\n"
        "      --retry-failed      --resume, and evaluate the videos recorded as failed again (e.g. after fixing\n"
        "                          --root); their failure records are dropped\n"
        "      --shard K/N         evaluate list positions i with i %% N == K-1 only (default 1/1); combine\n"
        "                          the shard directories with `fibvid merge`. Under `mpirun -np N` (a build\n"
        "                          with MPI) rank K evaluates shard K+1/N into OUT/shard-K+1 and rank 0\n"
        "                          merges them into OUT (--out required, no --shard)\n"
        "      --prefetch N        clips decoded ahead by the decoder thread, 0..16 (default 2; 0 = decode\n"
        "                          in the main thread, no overlap)\n"
        "  -t, --threads N         threads (default: all cores)\n"
        "      --precision P       matrix products in fp32 (default) or bf16 (weights held in bf16 only;\n"
        "                          needs AVX512-BF16 or AMX: otherwise a usage error)\n"
        "  -q, --quiet             no progress on stderr\n"
        "      --progress-every N  when stderr is not a terminal (batch jobs, Slurm logs): a progress line\n"
        "                          every N videos (default 100; 0: not by count) ...\n"
        "      --progress-seconds S ... and after a video that ends S seconds or more after the last line\n"
        "                          (default 60; 0: not by time)\n"
        "  -h, --help              this help\n"
        "%s"
        "\n"
        "Output files: run.json (settings), predictions.jsonl, failures.jsonl (path, reason), summary.json\n"
        "(split, top1_acc, top5_acc, mean_class_acc in percent, num_videos, num_evaluated, num_failed, views,\n"
        "model, attention, wall_s, clips_per_s, and `timing` of this invocation), per_class.csv,\n"
        "confusion.csv, confusion.svg, confusion.png.\n"
        "Videos that cannot be read are recorded in failures.jsonl and the run goes on.\n"
        "Exit codes: 0 the run is complete (failed videos are counted, not an error; but when every video\n"
        "failed: 2), 1 usage error (also an option that differs from the run's with --resume),\n"
        "2 input error (list, model, class names, or an --out that holds another run), 3 runtime failure (a full disk: one line).\n"
        "A run stopped by SIGINT/SIGTERM writes its reports first; continue it with --resume.\n",
        fv_cli_attn_help);
}

/* ------------------------------------------------------------------------------------------------ */
/* The run                                                                                           */
/* ------------------------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
}

/* Timing of this invocation (a resumed run reports the time since it was started again). */
typedef struct Timing {
    double t_start;      /* ms, process clock at option parsing */
    double loop_ms;      /* evaluation loop, first video requested to last recorded */
    double wait_ms;      /* main thread blocked on the decoder */
    double decode_ms;    /* decoder busy time */
    double forward_ms;   /* model forward passes */
    int64_t videos, predicted, clips, repeated;
    int32_t depth, threads;
    int resumed;
    double wall_before;  /* s, wall time of the run's earlier invocations (its summary.json's wall_s) */
} Timing;

static json_t *timing_json(const Timing *t)
{
    double elapsed = (fv_cli_now_ms() - t->t_start) / 1e3, loop = t->loop_ms / 1e3;
    json_t *o = json_object();
    json_object_set_new(o, "elapsed_s", json_real(round(elapsed * 1e3) / 1e3));
    json_object_set_new(o, "loop_s", json_real(round(loop * 1e3) / 1e3));
    json_object_set_new(o, "decode_wait_s", json_real(round(t->wait_ms) / 1e3));
    json_object_set_new(o, "decode_wait_share", json_real(loop > 0 ? round(t->wait_ms / t->loop_ms * 1e4) / 1e4 : 0.0));
    json_object_set_new(o, "decode_s", json_real(round(t->decode_ms) / 1e3));
    json_object_set_new(o, "forward_s", json_real(round(t->forward_ms) / 1e3));
    json_object_set_new(o, "videos", json_integer(t->videos));
    json_object_set_new(o, "clips", json_integer(t->clips));
    json_object_set_new(o, "clips_per_s", json_real(loop > 0 ? round(t->clips / loop * 1e3) / 1e3 : 0.0));
    json_object_set_new(o, "prefetch", json_integer(t->depth));
    json_object_set_new(o, "threads", json_integer(t->threads));
    json_object_set_new(o, "resumed", json_boolean(t->resumed));
    json_object_set_new(o, "note", json_string(
        "this invocation only (a resumed run: since it was started again): elapsed_s from start to end, "
        "loop_s the evaluation loop, decode_wait_s the time the model waited for decoded clips, "
        "decode_wait_share = decode_wait_s / loop_s, decode_s the decoder thread's busy time (overlapped), "
        "clips = videos x views evaluated (a clip is one view); video_s above sums the per-video loop times of every "
        "invocation, wall_s above their real time"));
    return o;
}

/* @say: report a failure (0 after one was reported already: a full disk fails the reports too, and the user
 * needs one line, not two). */
static int write_reports(FvEval *e, const char *dir, const Timing *t, int say)
{
    int ret = fv_eval_write_reports(e);
    if (ret < 0) {
        if (say)
            fv_cli_error(CMD, "%s", fv_last_error());
        return ret;
    }
    /* wall_s: the real time of every invocation of the run, this one up to now included */
    const double wall = t->wall_before + (fv_cli_now_ms() - t->t_start) / 1e3;
    if ((ret = fv_cli_summary_set(CMD, dir, "wall_s", json_real(round(wall * 1e3) / 1e3))) < 0)
        return ret;
    return fv_cli_summary_set(CMD, dir, "timing", timing_json(t));
}


/* Remove what interrupted atomic writes of the run's own files left in @dir ("X.tmp", "X.tmp.XXXXXX" with
 * mkstemp's six characters, X one of the files evaluate writes), on --resume; nothing else is touched. */
static void remove_stale_tmp(const char *dir)
{
    static const char *const files[] = { "run.json", "predictions.jsonl", "failures.jsonl", "summary.json",
                                         "per_class.csv", "confusion.csv" };
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int stale = 0;
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && !stale; i++) {
            const size_t n = strlen(files[i]);
            const char *rest = e->d_name + n;
            if (strncmp(e->d_name, files[i], n) || strncmp(rest, ".tmp", 4))
                continue;
            rest += 4;
            stale = !*rest || (rest[0] == '.' && strlen(rest) == 7);
            for (int k = 1; stale && *rest && k < 7; k++)
                stale = isalnum((unsigned char)rest[k]) != 0;
        }
        struct stat st;
        if (stale && !fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* Set "options" of DIR/run.json (written by fv_eval_open) to @record, when it is not that already. */
static void record_store(const char *dir, const json_t *record)
{
    char *rp = fv_cli_path_join(dir, "run.json");
    json_t *run = rp ? json_load_file(rp, 0, NULL) : NULL;
    if (run && json_equal(json_object_get(run, "options"), (json_t *)record))
        goto done;
    int ret = run && json_object_set(run, "options", (json_t *)record) == 0 ? fv_cli_json_write_atomic(rp, run)
                                                                             : FV_ENOMEM;
    if (ret < 0)
        fv_cli_warn(CMD, "%s: cannot record the options (%s); --resume will need them again",
                     rp ? rp : "run.json", ret == FV_ENOMEM ? "out of memory or unreadable" : fv_last_error());
done:
    json_decref(run);
    free(rp);
}

static int load_dataset(const EvalOpts *o, FvDataset **ds)
{
    int ret;
    if (o->ucf101)
        ret = fv_dataset_load_ucf101(ds, o->ucf101, (int32_t)o->split, o->subset);
    else if (o->hmdb51)
        ret = fv_dataset_load_hmdb51(ds, o->hmdb51, (int32_t)o->split, o->subset);
    else
        ret = fv_dataset_load_list(ds, o->list, (int32_t)o->label_base, o->classes);
    if (ret < 0)
        fv_cli_error(CMD, "%s", fv_last_error());
    else if ((*ds)->num_entries == 0) {
        fv_cli_error(CMD, "%s: the list holds no videos", (*ds)->description);
        fv_dataset_free(ds);
        ret = FV_EINVAL;
    }
    return ret;
}

static int run(const EvalOpts *o, double t_start)
{
    FvDataset *ds = NULL;
    FvModel *m = NULL;
    FvEval *e = NULL;
    FvPrefetch *pf = NULL;
    const char **labels = NULL;
    int32_t *map = NULL;
    char **paths = NULL;
    int64_t *ids = NULL, ntodo = 0;
    FvState *st = NULL;
    char out_default[64];
    int rc, ret;
    Timing tm = { .t_start = t_start, .depth = (int32_t)o->prefetch, .resumed = o->resume,
                  .threads = o->threads > 0 ? (int32_t)o->threads : (int32_t)sysconf(_SC_NPROCESSORS_ONLN) };

    if (load_dataset(o, &ds) < 0)
        return FV_EXIT_INPUT;
    if ((rc = fv_cli_load_model(CMD, o->model, &m)))
        goto done;
    if ((ret = fv_cli_attn_apply(&o->attn, m)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_USAGE;
        goto done;
    }
    const FvModelConfig *cfg = fv_model_config(m);
    const int32_t L = cfg->num_labels;
    labels = calloc((size_t)L, sizeof(*labels));
    map = calloc((size_t)ds->num_classes, sizeof(*map));
    if (!labels || !map)
        goto oom;
    if ((ret = fv_state_create(&st, m)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    for (int32_t i = 0; i < L; i++)
        labels[i] = fv_model_label(m, i);
    FvLabelMatchSettings ms;
    fv_label_match_default_settings(&ms);
    ms.label_map_path = o->label_map;
    ms.by_index = o->by_index;
    if ((ret = fv_label_match(ds, labels, L, &ms, map)) < 0) {
        fv_cli_error(CMD, "%s [options: --label-map FILE, --labels-by-index]", fv_last_error());
        rc = fv_cli_exit_code(ret);
        goto done;
    }

    FvClipSettings cs;
    if ((ret = fv_predict_clip_settings(m, &o->pred, &cs)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_USAGE;
        goto done;
    }
    char settings[512], sattn[128], tattn[128], attention[300];
    snprintf(settings, sizeof(settings),
             "sampling=%s frames=%d rate=%d dense_start=%s views=%ldx%ld crop=%d short_side=%d "
             "mean=%.6g,%.6g,%.6g std=%.6g,%.6g,%.6g",
             fv_cli_sampling_name(cs.sample.mode), cs.sample.num_frames, cs.sample.rate,
             cs.sample.dense_start == FV_DENSE_START_SLOWFAST ? "slowfast" : "mmaction", (long)o->pred.temporal_views,
             (long)o->pred.spatial_views, cs.pre.crop_size, cs.pre.short_side > 0 ? cs.pre.short_side : cs.pre.crop_size,
             cs.pre.mean[0], cs.pre.mean[1], cs.pre.mean[2], cs.pre.std[0], cs.pre.std[1], cs.pre.std[2]);
    /* bf16 changes the results: runs and shards in other precisions are not one run (fp32, the baseline, adds
     * nothing, so fp32 runs keep the settings they had before precisions existed) */
    if (fv_model_precision(m) == FV_PRECISION_BF16)
        snprintf(settings + strlen(settings), sizeof(settings) - strlen(settings), " precision=bf16");
    fv_attn_describe(&cfg->spatial, 0, sattn, sizeof(sattn));
    fv_attn_describe(&cfg->temporal, 0, tattn, sizeof(tattn));
    snprintf(attention, sizeof(attention), "spatial=%s temporal=%s", sattn, tattn);

    const char *out = o->out;
    if (!out) {
        time_t now = time(NULL);
        struct tm lt;
        localtime_r(&now, &lt);
        strftime(out_default, sizeof(out_default), "fibvid-eval-%Y%m%d-%H%M%S", &lt);
        out = out_default;
    }
    const int32_t views = o->pred.temporal_views * o->pred.spatial_views;
    FvEvalRun er = {
        .model = o->shown_model ? o->shown_model : o->model ? o->model : fv_cli_default_model(),
        .model_id = o->model_id,
        .attention = attention,
        .settings = settings,
        .split = NULL,
        .views = views,
        .spatial_views = o->pred.spatial_views,
        .model_labels = labels,
        .num_model_labels = L,
        .map = map,
    };
    if (o->shard && (ret = fv_shard_parse(o->shard, &er.shard_k, &er.shard_n)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_USAGE;
        goto done;
    }
    if (o->resume) { /* the real time of the earlier invocations, which wall_s goes on from */
        char *sp = fv_cli_path_join(out, "summary.json");
        json_t *old = sp ? json_load_file(sp, 0, NULL) : NULL;
        if (json_is_number(json_object_get(old, "wall_s")))
            tm.wall_before = json_number_value(json_object_get(old, "wall_s"));
        json_decref(old);
        free(sp);
    }
    if (o->resume)
        remove_stale_tmp(out);
    if ((ret = fv_eval_open(&e, out, &er, ds, o->resume)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = fv_cli_exit_code(ret);
        goto done;
    }
    if (o->record)
        record_store(out, o->record);

    /* what is left of this shard, in list order */
    paths = calloc((size_t)ds->num_entries, sizeof(*paths));
    ids = calloc((size_t)ds->num_entries, sizeof(*ids));
    if (!paths || !ids)
        goto oom;
    for (int64_t i = 0; i < ds->num_entries; i++) {
        if (!fv_shard_has(i, er.shard_k, er.shard_n) || fv_eval_done(e, i))
            continue;
        const char *p = ds->entries[i].path;
        paths[ntodo] = p[0] == '/' ? strdup(p) : fv_cli_path_join(o->root, p);
        if (!paths[ntodo])
            goto oom;
        ids[ntodo++] = i;
    }
    const int64_t total = fv_eval_num_todo(e), before = fv_eval_num_done(e);
    const int progress = !o->quiet && !fv_cli_quiet() && isatty(STDERR_FILENO);
    const int log_progress = !o->quiet && !fv_cli_quiet() && !progress;
    if (o->resume && before == 0 && !o->quiet) /* stopped before its first video: from the beginning, as train */
        fprintf(stderr, "fibvid evaluate: %s: no predictions yet; starting the run from the beginning\n", out);
    if (o->resume && before > 0 && !o->quiet) {
        FvMetricsSummary s0;
        fv_eval_metrics(e, &s0);
        fprintf(stderr, "fibvid evaluate: resuming %s: %lld of %lld %s already done", out, (long long)before,
                (long long)total, fv_cli_plural((long)total, "video", "videos"));
        if (s0.num_failed > 0) /* never a dead end: say how to try them again */
            fprintf(stderr, " (%lld failed: --retry-failed evaluates them again)", (long long)s0.num_failed);
        fputc('\n', stderr);
    }

    if ((ret = fv_prefetch_start(&pf, &cs, (const char *const *)paths, ids, ntodo, (int32_t)o->prefetch,
                                 o->prefetch > 0 ? 1 : 0)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    /* test hook: FIBVID_TEST_STOP_AFTER=N kills the process (SIGKILL) after N recorded videos */
    const char *stop_env = getenv("FIBVID_TEST_STOP_AFTER");
    const long stop_after = stop_env ? atol(stop_env) : 0;
    /* FIBVID_TEST_PAUSE_AFTER=N stops the process (SIGSTOP) after N recorded videos, so that a test can kill -9
     * it from outside at a known point, mid-way through the run */
    const char *pause_env = getenv("FIBVID_TEST_PAUSE_AFTER");
    const long pause_after = pause_env ? atol(pause_env) : 0;

    const double loop0 = fv_cli_now_ms();
    double prev = loop0, last_report = loop0, last_progress = progress ? 0 : loop0;
    FvPrefetchItem it;
    rc = FV_EXIT_OK;
    while (!g_signal && fv_prefetch_next(pf, &it) == 1) {
        const FvDatasetEntry *en = &ds->entries[it.id];
        FvPredictResult pr = { 0 };
        if (it.status >= 0) {
            tm.repeated += fv_clip_repeated_frames(&it.clip) > 0;
            double f0 = fv_cli_now_ms();
            ret = fv_predict_clip(st, &it.clip, &o->pred, &pr);
            tm.forward_ms += fv_cli_now_ms() - f0;
            if (ret < 0 && !fv_error_is_input(ret)) {
                fv_cli_error(CMD, "%s: %s", en->path, fv_last_error());
                fv_clip_free(&it.clip);
                rc = FV_EXIT_RUNTIME;
                break;
            }
            if (ret < 0) {
                it.status = ret;
                snprintf(it.error, sizeof(it.error), "%s", fv_last_error());
            }
        }
        double now = fv_cli_now_ms();
        if (it.status < 0) {
            ret = fv_eval_add_failure(e, it.id, it.error, now - prev);
            if (progress)
                fprintf(stderr, "\r\033[K");
            fprintf(stderr, "fibvid evaluate: %s\n", it.error); /* an error: shown with -q too */
        } else {
            FvPrediction p;
            ret = fv_prediction_from_probs(&p, pr.probs, L, it.id, en->label, map, ds->num_classes);
            if (ret >= 0)
                ret = fv_eval_add_prediction(e, &p, now - prev);
            tm.predicted++;
            tm.clips += views;
        }
        fv_predict_result_free(&pr);
        fv_clip_free(&it.clip);
        prev = now;
        if (ret < 0) {
            fv_cli_error(CMD, "%s", fv_last_error());
            rc = FV_EXIT_RUNTIME;
            break;
        }
        tm.videos++;
        if (stop_after > 0 && tm.videos >= stop_after)
            raise(SIGKILL);
        if (pause_after > 0 && tm.videos == pause_after)
            raise(SIGSTOP);

        now = fv_cli_now_ms();
        /* a terminal: a status line redrawn 5 times a second; a log (batch jobs, Slurm): a line every
         * --progress-every videos or --progress-seconds seconds */
        const int due = progress ? now - last_progress > 200 || tm.videos == ntodo
                                 : log_progress && ((o->progress_every > 0 && tm.videos % o->progress_every == 0) ||
                                                    (o->progress_s > 0 && now - last_progress >= o->progress_s * 1e3) ||
                                                    tm.videos == ntodo);
        if (due) {
            FvMetricsSummary s;
            fv_eval_metrics(e, &s);
            double el = (now - loop0) / 1e3, eta = (double)(ntodo - tm.videos) * el / (double)tm.videos;
            char eta_s[32];
            fv_cli_fmt_eta(eta, eta_s, sizeof(eta_s));
            fprintf(stderr, "%s[%lld/%lld] %.2f videos/s (%.1f clips/s)  ETA %s  top-1 %.1f%%  %lld failed%s",
                    progress ? "\r" : "fibvid evaluate: ", (long long)fv_eval_num_done(e), (long long)total,
                    el > 0 ? tm.videos / el : 0.0, el > 0 ? tm.clips / el : 0.0, eta_s, s.top1_acc,
                    (long long)s.num_failed, progress ? "\033[K" : "\n");
            last_progress = now;
        }
        /* reports of the work so far, so a long run can be looked at (and survives a kill) */
        if (now - last_report > 60e3) {
            tm.loop_ms = now - loop0;
            tm.wait_ms = fv_prefetch_wait_ms(pf);
            tm.decode_ms = fv_prefetch_decode_ms(pf);
            write_reports(e, out, &tm, 1);
            last_report = fv_cli_now_ms();
        }
    }
    if (progress)
        fputc('\n', stderr);
    tm.loop_ms = prev - loop0;
    tm.wait_ms = fv_prefetch_wait_ms(pf);
    tm.decode_ms = fv_prefetch_decode_ms(pf);
    fv_prefetch_stop(&pf);
    if (tm.repeated > 0 && !o->quiet)
        fv_cli_warn(CMD, "%lld of the %lld %s evaluated now %s shorter than the sampling window: frames were "
                    "repeated to fill the views", (long long)tm.repeated, (long long)tm.predicted,
                    fv_cli_plural(tm.predicted, "video", "videos"), tm.repeated == 1 ? "is" : "are");
    ret = write_reports(e, out, &tm, rc == FV_EXIT_OK);
    if (ret < 0 && rc == FV_EXIT_OK)
        rc = FV_EXIT_RUNTIME;
    if (g_signal) {
        fprintf(stderr, "fibvid evaluate: stopped by signal %d after %lld of %lld %s; continue with --resume "
                "--out %s\n", (int)g_signal, (long long)fv_eval_num_done(e), (long long)total,
                fv_cli_plural((long)total, "video", "videos"), out);
    } else if (rc == FV_EXIT_OK) {
        fv_cli_summary_print(CMD, out, stdout);
        FvMetricsSummary s;
        fv_eval_metrics(e, &s);
        if (s.num_evaluated == 0 && s.num_failed > 0) { /* nothing could be read: an input error, not a result */
            fv_cli_error(CMD, "no video could be evaluated (%lld failed, %s/failures.jsonl says why); fix the cause "
                         "and continue with --retry-failed --out %s", (long long)s.num_failed, out, out);
            rc = FV_EXIT_INPUT;
        }
    }
    goto done;
oom:
    fv_cli_error(CMD, "out of memory");
    rc = FV_EXIT_RUNTIME;
done:
    fv_prefetch_stop(&pf);
    fv_eval_close(&e);
    if (paths)
        for (int64_t i = 0; i < ntodo; i++)
            free(paths[i]);
    free(paths);
    free(ids);
    free(labels);
    free(map);
    fv_state_close(&st);
    fv_model_close(&m);
    fv_dataset_free(&ds);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* The command line, and the run's record of it (run.json "options")                     */
/* ------------------------------------------------------------------------------------------------ */
/* Options that say where the run goes and how this invocation talks: not part of the run. */
static const char *const g_unrecorded[] = { "out", "resume", "retry-failed", "quiet", "help", "progress-every",
                                            "progress-seconds", NULL };
/* Recorded and taken over by --resume, free to change there: how fast, and where the videos are (a run with
 * a wrong --root continues with the right one, --retry-failed evaluating what failed). */
static const char *const g_changeable[] = { "threads", "prefetch", "root", NULL };
/* Options naming files: recorded as absolute paths, so --resume works from any directory. */
static const char *const g_paths[] = { "model", "root", "ucf101", "hmdb51", "list", "classes", "label-map", NULL };

/* What a run that did not give an option used (as --help says); NULL: no value then. */
static const char *default_of(const char *name)
{
    static const char *const d[][2] = {
        { "split", "1" }, { "subset", "test" }, { "label-base", "0" }, { "views", "1x1" },
        { "dense-start", "mmaction" }, { "shard", "1/1" },
    };
    if (!strcmp(name, "model"))
        return fv_cli_default_model();
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
        if (!strcmp(d[i][0], name))
            return d[i][1];
    return NULL;
}

/* Parse @argv into @o (defaulted here), listing the options in @given (argc entries) when not NULL.
 * Returns -1 to go on, or the exit code (help printed, or one line on a bad option). */
static int parse(int argc, char **argv, EvalOpts *o, FvCliGiven *given, int *ngiven);

static int reparse(int argc, char **argv, void *o)
{
    return parse(argc, argv, o, NULL, NULL);
}

static int parse(int argc, char **argv, EvalOpts *o, FvCliGiven *given, int *ngiven)
{
    enum {
        O_ROOT = 0x100, O_UCF, O_HMDB, O_LIST, O_SPLIT, O_SUBSET, O_BASE, O_CLASSES, O_MAP, O_BYINDEX,
        O_MODELID, O_RESUME, O_SHARD, O_PREFETCH, O_RETRY, O_PEVERY, O_PSECS,
    };
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },
        { "model-id", required_argument, NULL, O_MODELID },
        { "root", required_argument, NULL, O_ROOT },
        { "ucf101", required_argument, NULL, O_UCF },
        { "hmdb51", required_argument, NULL, O_HMDB },
        { "list", required_argument, NULL, O_LIST },
        { "split", required_argument, NULL, O_SPLIT },
        { "subset", required_argument, NULL, O_SUBSET },
        { "label-base", required_argument, NULL, O_BASE },
        { "classes", required_argument, NULL, O_CLASSES },
        { "label-map", required_argument, NULL, O_MAP },
        { "labels-by-index", no_argument, NULL, O_BYINDEX },
        { "out", required_argument, NULL, 'o' },
        { "resume", no_argument, NULL, O_RESUME },
        { "retry-failed", no_argument, NULL, O_RETRY },
        { "shard", required_argument, NULL, O_SHARD },
        { "prefetch", required_argument, NULL, O_PREFETCH },
        { "progress-every", required_argument, NULL, O_PEVERY },
        { "progress-seconds", required_argument, NULL, O_PSECS },
        { "threads", required_argument, NULL, 't' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        FV_CLI_PRECISION_LONGOPT, FV_CLI_ATTN_LONGOPTS,
        FV_CLI_CLIP_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    *o = (EvalOpts){ .split = 1, .subset = FV_SUBSET_TEST, .prefetch = 2, .progress_every = 100, .progress_s = 60 };
    fv_predict_default_settings(&o->pred);
    fv_cli_attn_overrides_init(&o->attn);
    int c, li = -1;
    if (ngiven)
        *ngiven = 0;
    optind = 0; /* glibc: a full restart (this runs twice with --resume) */
    while ((c = getopt_long(argc, argv, "m:o:t:qh", longopts, &li)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case O_MODELID: o->model_id = optarg; break;
        case O_ROOT: o->root = optarg; break;
        case O_UCF: o->ucf101 = optarg; break;
        case O_HMDB: o->hmdb51 = optarg; break;
        case O_LIST: o->list = optarg; break;
        case O_SPLIT:
            if (fv_cli_parse_int(optarg, 1, 3, &o->split) < 0)
                goto bad;
            break;
        case O_SUBSET:
            if (!strcmp(optarg, "test")) o->subset = FV_SUBSET_TEST;
            else if (!strcmp(optarg, "train")) o->subset = FV_SUBSET_TRAIN;
            else goto bad;
            break;
        case O_BASE:
            if (fv_cli_parse_int(optarg, 0, 1, &o->label_base) < 0)
                goto bad;
            break;
        case O_CLASSES: o->classes = optarg; break;
        case O_MAP: o->label_map = optarg; break;
        case O_BYINDEX: o->by_index = 1; break;
        case FV_OPT_CLIP:
            if (fv_cli_clip_option(&o->pred, CMD, longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        case 'o': o->out = optarg; break;
        case O_RESUME: o->resume = o->resume ? o->resume : 1; break;
        case O_RETRY: o->resume = 2; break;
        case O_SHARD: {
            int32_t k, n;
            if (fv_shard_parse(optarg, &k, &n) < 0)
                goto bad;
            o->shard = optarg;
            break;
        }
        case O_PREFETCH:
            if (fv_cli_parse_int(optarg, 0, 16, &o->prefetch) < 0)
                goto bad;
            break;
        case O_PEVERY:
            if (fv_cli_parse_int(optarg, 0, 1000000000, &o->progress_every) < 0)
                goto bad;
            break;
        case O_PSECS: {
            char *end;
            o->progress_s = strtod(optarg, &end);
            if (end == optarg || *end || !(o->progress_s >= 0) || o->progress_s > 1e9)
                goto bad;
            break;
        }
        case 't':
            if (fv_cli_parse_int(optarg, 1, 1024, &o->threads) < 0)
                goto bad;
            break;
        case 'q': o->quiet = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        case FV_OPT_PRECISION:
            if (fv_cli_precision_option(CMD, optarg))
                return FV_EXIT_USAGE;
            break;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&o->attn, CMD, longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        default:
            return fv_cli_bad_option("evaluate", argv, "m:o:t:qh", longopts);
        }
        if (given) {
            given[*ngiven].name = fv_cli_option_name(longopts, c, li);
            given[*ngiven].value = optarg;
            (*ngiven)++;
        }
        li = -1;
        continue;
    bad:
        fv_cli_error(CMD, "bad value '%s' for --%s (valid: %s)", optarg,
                     c == 't' ? "threads" : li >= 0 ? longopts[li].name : "?",
                     c == O_SPLIT ? "1, 2 or 3" : c == O_SUBSET ? "test or train" : c == O_BASE ? "0 or 1"
                     : c == O_SHARD ? "K/N with 1 <= K <= N" : c == O_PREFETCH ? "0..16"
                     : c == O_PEVERY ? "0..1000000000 videos" : c == O_PSECS ? "seconds >= 0" : "1..1024");
        return FV_EXIT_USAGE;
    }
    if (optind < argc) {
        fv_cli_error(CMD, "unexpected argument '%s' (see --help)", argv[optind]);
        return FV_EXIT_USAGE;
    }
    return -1;
}

/* The options together, after --resume has filled in the run's: -1 to go on, or an exit code after one line. */
static int check_options(const EvalOpts *o)
{
    if (o->resume && !o->out) {
        fv_cli_error(CMD, "--resume needs the --out DIR of the run to continue");
        return FV_EXIT_USAGE;
    }
    if (!!o->ucf101 + !!o->hmdb51 + !!o->list != 1) {
        fv_cli_error(CMD, "give exactly one of --ucf101 DIR, --hmdb51 DIR or --list FILE (see --help)");
        return FV_EXIT_USAGE;
    }
    if (!o->root) {
        fv_cli_error(CMD, "--root VIDEO_DIR is required (see --help)");
        return FV_EXIT_USAGE;
    }
    if (!o->list && (o->classes || o->label_base)) {
        fv_cli_error(CMD, "--classes and --label-base go with --list only");
        return FV_EXIT_USAGE;
    }
    if (o->by_index && o->label_map) {
        fv_cli_error(CMD, "--labels-by-index and --label-map exclude each other");
        return FV_EXIT_USAGE;
    }
    return -1;
}

/* Under mpirun with N ranks: rank K evaluates shard K+1/N into OUT/shard-(K+1) (its summary not printed), then
 * rank 0 merges the shards into OUT as `fibvid merge` does. Every rank returns the same code. */
static int mpi_shards(EvalOpts *o, double t_start, const char *out)
{
    const int32_t rank = fv_dist_rank(), n = fv_dist_size();
    double *rcs = calloc((size_t)n, sizeof(double));
    char **dirs = calloc((size_t)n, sizeof(char *));
    char name[64];
    int rc = FV_EXIT_RUNTIME;
    if (!rcs || !dirs)
        goto done;
    for (int32_t k = 0; k < n; k++) {
        snprintf(name, sizeof(name), "shard-%d", k + 1);
        if (!(dirs[k] = fv_cli_path_join(out, name)))
            goto done;
    }
    char shard[64];
    snprintf(shard, sizeof(shard), "%d/%d", rank + 1, n);
    o->shard = shard;
    o->out = dirs[rank];
    fflush(stdout);
    const int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0)
        dup2(null, STDOUT_FILENO); /* the shard's own summary: the merged one is printed */
    rcs[rank] = run(o, t_start);
    fflush(stdout);
    if (saved >= 0 && null >= 0)
        dup2(saved, STDOUT_FILENO);
    if (saved >= 0)
        close(saved);
    if (null >= 0)
        close(null);
    if (fv_dist_sum_f64(rcs, (size_t)n) < 0)
        goto done;
    rc = FV_EXIT_OK;
    for (int32_t k = 0; k < n; k++)
        if ((int)rcs[k] != FV_EXIT_OK && (int)rcs[k] != FV_EXIT_INPUT) {
            if (rank == 0)
                fv_cli_error(CMD, "rank %d of %d (shard %d/%d) ended with exit code %d: not merged; continue with the "
                             "same command and --resume", k, n, k + 1, n, (int)rcs[k]);
            rc = (int)rcs[k];
            goto done;
        } else if ((int)rcs[k] > rc) {
            rc = (int)rcs[k];
        }
    double mrc = 0.0;
    if (rank == 0) {
        const char **margv = calloc((size_t)n + 5, sizeof(char *));
        int margc = 0;
        if (!margv)
            goto done;
        margv[margc++] = "merge";
        if (o->quiet)
            margv[margc++] = "-q";
        margv[margc++] = "--out";
        margv[margc++] = out;
        for (int32_t k = 0; k < n; k++)
            margv[margc++] = dirs[k];
        optind = 1;
        mrc = fv_cli_merge(margc, (char **)margv);
        free(margv);
    }
    if (fv_dist_sum_f64(&mrc, 1) < 0)
        goto done;
    if ((int)mrc != FV_EXIT_OK)
        rc = (int)mrc;
done:
    for (int32_t k = 0; dirs && k < n; k++)
        free(dirs[k]);
    free(dirs);
    free(rcs);
    return rc;
}

int fv_cli_evaluate(int argc, char **argv)
{
    const double t_start = fv_cli_now_ms();
    EvalOpts o = { 0 };
    FvCliGiven *given = calloc((size_t)argc + 1, sizeof(FvCliGiven));
    json_t *rec = NULL, *names = json_array();
    char **args = NULL;
    int ngiven = 0, nargs = 0, rc;
    const char *mpi_out = NULL; /* several ranks: the directory the shards merge into */
    char *mpi_shard_dir = NULL;
    if (!given || !names)
        goto oom;
    if ((rc = fv_cli_dist_start(CMD)) >= 0)
        goto done;
    if ((rc = parse(argc, argv, &o, given, &ngiven)) >= 0)
        goto done;
    if (fv_dist_size() > 1) {
        if (o.shard || !o.out) {
            fv_cli_error(CMD, "with %d MPI ranks every rank evaluates a shard into OUT/shard-K and rank 0 merges "
                         "them into OUT: give --out and no --shard", fv_dist_size());
            rc = FV_EXIT_USAGE;
            goto done;
        }
        char name[64];
        snprintf(name, sizeof(name), "shard-%d", fv_dist_rank() + 1);
        mpi_out = o.out;
        if (mkdir(mpi_out, 0777) < 0 && errno != EEXIST) {
            fv_cli_error(CMD, "%s: cannot create: %s", mpi_out, strerror(errno));
            rc = FV_EXIT_RUNTIME;
            goto done;
        }
        if (!(mpi_shard_dir = fv_cli_path_join(mpi_out, name)))
            goto oom;
        o.out = mpi_shard_dir; /* --resume reads the shard's own run.json */
    }
    const FvCliRecordSpec spec = { .cmd = CMD, .unrecorded = g_unrecorded, .changeable = g_changeable,
                                   .paths = g_paths, .default_of = default_of };
    /* --resume: the options the run recorded, under those given now (which must be the run's) */
    const char *shown_model = NULL;
    if (o.resume && o.out) {
        if ((rc = fv_cli_record_resume(&spec, o.out, argc, argv, given, ngiven, names, &rec, &args, &nargs, reparse,
                                       &o)) >= 0)
            goto done;
        /* the model is the run's (checked above): compared and shown under the name the run gave it */
        shown_model = json_string_value(json_object_get(rec, "model"));
    }
    if (o.resume && o.out && !o.ucf101 && !o.hmdb51 && !o.list && !json_object_get(rec, "options")) {
        /* nothing to take the run's options from: say so rather than ask for a data set */
        fv_cli_error(CMD, "%s: no run.json with the run's options to resume (a run from before they were recorded "
                     "needs them again: --ucf101, --hmdb51 or --list, ...)", o.out);
        rc = FV_EXIT_INPUT;
        goto done;
    }
    if ((rc = check_options(&o)) >= 0)
        goto done;
    if (!(o.record = fv_cli_record_merge(&spec, json_object_get(rec, "options"), given, ngiven)))
        goto oom;
    if (!json_object_get(o.record, "model") && fv_cli_default_model()) {
        /* the default model (or $FIBVID_MODEL) of this run, which --resume must not take from a later setting */
        const FvCliGiven dm = { "model", fv_cli_default_model() };
        json_t *r2 = fv_cli_record_merge(&spec, o.record, &dm, 1);
        if (!r2)
            goto oom;
        json_decref(o.record);
        o.record = r2;
    }
    o.shown_model = shown_model;
    fv_set_num_threads((int32_t)o.threads);

    /* SIGINT/SIGTERM finish the video in progress and write the reports; a second one kills at once */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (mpi_out) {
        rc = mpi_shards(&o, t_start, mpi_out);
    } else {
        rc = run(&o, t_start);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    goto done;
oom:
    fv_cli_error(CMD, "out of memory");
    rc = FV_EXIT_RUNTIME;
done:
    free(args);
    json_decref(names);
    json_decref(o.record);
    json_decref(rec);
    free(given);
    free(mpi_shard_dir);
    fv_dist_finalize();
    if (g_signal) {
        /* die of the signal, so callers (shells, Slurm) see how the run ended */
        signal(g_signal, SIG_DFL);
        raise(g_signal);
    }
    return rc;
}
