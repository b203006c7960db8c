/* `fibvid train`: the command line over the library's fit loop (fv_fit_run, fibvid/train.h): options into
 * FvFitSettings, the dataset lists, the attention options applied to the model before training, and the
 * progress line, per-epoch lines and messages printed from the fit's callbacks. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

#define CMD "train"

typedef struct TrainOpts {
    const char *root, *ucf101, *list, *val_list, *classes, *synth_json;
    long split, label_base;
    int no_val;
    long threads;
    int quiet;
    FvAttnOverrides attn;
    FvFitSettings fit;
    /* while running */
    int progress;      /* the progress line is on */
    double last_progress; /* ms of the last progress line */
    int o_config;      /* --config given */
    int usage_error;   /* configure refused an option: exit 1 */
    int reported;      /* ... and said why */
    json_t *record;    /* the options DIR/run.json records (written once training starts) */
    long sigint_at, sigint_count; /* test hook FIBVID_TEST_SIGINT_AT=STEP[,COUNT] */
    long kill_rank, kill_at;      /* test hook FIBVID_TEST_KILL_AT=RANK,STEP: that rank dies (SIGKILL) there */
} TrainOpts;

/* SIGINT/SIGTERM: the fit stops after the step in progress and writes a checkpoint of it; the handler is
 * reset by the first signal (SA_RESETHAND), so a second one ends the process at once */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
}

/* ------------------------------------------------------------------------------------------------ */
/* The run's record of its options (run.json "options"), for --resume                               */
/* ------------------------------------------------------------------------------------------------ */

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid train --ucf101 SPLIT_DIR [--root VIDEO_DIR] [--split 1|2|3] -o OUT_DIR [options]\n"
        "       fibvid train --list FILE [--val-list FILE] [--classes FILE] --root VIDEO_DIR -o OUT_DIR [options]\n"
        "       fibvid train --resume -o OUT_DIR [--epochs N]      (the run's options come from OUT_DIR/run.json)\n"
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
        "      --epochs N          epochs, 1..100000 (default 30)\n"
        "  -b, --batch N           clips per step, 1..256 (default 16)\n"
        "      --lr X              peak learning rate, 1e-9..10 (default 1e-3)\n"
        "      --min-lr X          cosine floor at the last step, 0..10 (default 1e-5)\n"
        "      --warmup E          linear warm-up in epochs, 0..100000, may be fractional (default 2)\n"
        "      --weight-decay X    AdamW decoupled weight decay on matrices, 0..10 (default 0.05)\n"
        "      --label-smoothing X label smoothing of the cross-entropy, 0..0.99 (default 0.1)\n"
        "      --clip-norm X       clip the global gradient norm to X, 0 = off (default 1)\n"
        "      --castling-aux-until F  with castling attention: the auxiliary masked-softmax branch's weight\n"
        "                          falls linearly from 1 at the first step to 0 at fraction F of the steps\n"
        "                          and stays 0 (SPEC 4.2); 0 = off (default 0.8)\n"
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
        "      --resume            continue the run in --out from its last checkpoint: every option not given\n"
        "                          is taken from OUT_DIR/run.json; a given one must equal the run's, except\n"
        "                          --root, --threads, --log-every and --epochs, which may grow (a finished\n"
        "                          run is then extended); a run stopped before its first checkpoint\n"
        "                          starts from the beginning (one line says so); stale temporary files of\n"
        "                          the run (X.tmp, X.tmp.XXXXXX) are removed on start and resume\n"
        "      --stop-after N      stop after epoch N, 1..100000 (the schedule still spans --epochs; continue with\n"
        "                          --resume; default: run to the end)\n"
        "      --log-every N       a step line in train.jsonl every N steps, 0..1000000, 0 = none (default 10)\n"
        "  -t, --threads N         threads (default: all cores; with 1 thread runs are bit-reproducible)\n"
        "  -q, --quiet             no progress line and no per-epoch lines (progress is shown only when\n"
        "                          stderr is a terminal; per-epoch lines go to stdout)\n"
        "  -h, --help              this help\n"
        "%s%s"
        "\n"
        "Ctrl-C (SIGINT) or SIGTERM stops after the optimizer step in progress, writes a checkpoint of that\n"
        "step and prints the command that continues it (the resumed run takes exactly the steps of an\n"
        "uninterrupted one); a second Ctrl-C stops at once (the last checkpoint stays whole).\n"
        "\n"
        "Several processes (MPI; a build with -Dmpi): `mpirun -np N fibvid train ...` or `srun --mpi=pmix\n"
        "fibvid train ...` trains data-parallel: each rank takes its part of every --batch (the global batch:\n"
        "the same steps, learning rates and augmentations as one process), the gradients are summed with\n"
        "MPI_Allreduce, rank 0 writes every file; --threads defaults to the cores of a rank's affinity mask\n"
        "shared among the ranks of its node; --resume works with any number of ranks. Every rank needs every\n"
        "clip (--root may differ between ranks). A failed rank stops all with one line naming it.\n"
        "\n"
        "Exit codes: 0 success, 1 usage error (also an option that differs from the run's with --resume),\n"
        "2 input error (lists, videos, config, model, or an --out that holds another run), 3 runtime failure\n"
        "(out of memory, diverged training, a full disk, an MPI failure); 1 also for a start by mpirun/srun as\n"
        "several processes of a build without MPI; stopped by SIGINT (SIGTERM) after its checkpoint, it ends by\n"
        "that signal, as `evaluate` does (a shell's status 130, or 143).\n",
        fv_cli_attn_help, fv_cli_psvit_help);
}

/* ------------------------------------------------------------------------------------------------ */
/* Randomness: a pure function of (seed, purpose, epoch, index), so resumed runs replay exactly         */
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

/* ------------------------------------------------------------------------------------------------ */
/* The fit's callbacks                                                                               */
/* ------------------------------------------------------------------------------------------------ */
/* The attention options onto the model to train, and the options that must fit it. */
static int on_configure(void *user, FvModel *m)
{
    TrainOpts *o = user;
    const FvModelConfig *c = fv_model_config(m);
    int ret = fv_cli_attn_apply(&o->attn, m);
    if (ret < 0) {
        o->usage_error = 1;
        return ret;
    }
    if (o->fit.scale_lo && o->fit.scale_lo < c->image_size) {
        fv_cli_error(CMD, "--scale %d:%d: the short side must be at least the crop size %d", o->fit.scale_lo,
                     o->fit.scale_hi, c->image_size);
        o->usage_error = o->reported = 1;
        return FV_EINVAL;
    }
    if (o->fit.cache_frames && o->fit.cache_frames < c->num_frames) {
        fv_cli_error(CMD, "--cache-frames %d: fewer than the model's %d frames", o->fit.cache_frames, c->num_frames);
        o->usage_error = o->reported = 1;
        return FV_EINVAL;
    }
    return 0;
}

static void clear_progress(const TrainOpts *o)
{
    if (o->progress)
        fprintf(stderr, "\r\033[K");
}

static void on_skipped(void *user, const char *path, const char *reason)
{
    const TrainOpts *o = user;
    if (o->quiet)
        return;
    clear_progress(o);
    fprintf(stderr, "fibvid train: skipping %s: %s\n", path, reason);
}

static void on_decoding(void *user, const char *what, int64_t done, int64_t total)
{
    const TrainOpts *o = user;
    if (!o->progress)
        return;
    if (done < total)
        fprintf(stderr, "\rfibvid train: decoding %s clips %lld/%lld\033[K", what, (long long)done, (long long)total);
    else
        fprintf(stderr, "\r\033[K");
}

static void on_started(void *user, const FvFitInfo *in)
{
    const TrainOpts *o = user;
    if (fv_dist_rank() > 0)
        return; /* rank 0 writes and speaks for every rank */
    /* the run's own record of its options, for --resume (written now: the fit has accepted --out) */
    char *rp = fv_cli_path_join(o->fit.out_dir, "run.json");
    json_t *doc = json_pack("{s:s, s:O}", "command", "train", "options", o->record);
    int ret = rp && doc ? fv_cli_json_write_atomic(rp, doc) : FV_ENOMEM;
    if (ret < 0)
        fv_cli_warn(CMD, "%s: %s; --resume will need the options again", rp ? rp : "run.json",
                     ret == FV_ENOMEM ? "out of memory" : fv_last_error());
    json_decref(doc);
    free(rp);
    if (o->quiet)
        return;
    const FvModelConfig *c = &in->config;
    if (in->new_classifier)
        fprintf(stderr, "fibvid train: %s has other labels than the data's %d classes: new classifier\n",
                o->fit.init_model, c->num_labels);
    char sa[128], ta[128];
    fv_attn_describe(&c->spatial, 0, sa, sizeof(sa));
    fv_attn_describe(&c->temporal, 0, ta, sizeof(ta));
    fprintf(stderr, "fibvid train: %lld params, D=%d L=%d heads=%d %dx%dx%d patch %d, spatial %s, temporal %s\n",
            (long long)in->num_params, c->hidden_size, c->num_layers, c->num_heads, c->num_frames, c->image_size,
            c->image_size, c->patch_size, sa, ta);
    fprintf(stderr, "fibvid train: %lld training clips (%.0f MB cached, %lld unreadable), %lld validation "
            "clips, decoded in %.1f s; %lld steps of %d per epoch, %lld epochs%s\n",
            (long long)in->train_clips, in->cache_mb, (long long)in->train_failed, (long long)in->val_clips,
            in->decode_s, (long long)in->steps_per_epoch, in->batch, (long long)in->epochs,
            in->resumed ? " (resumed)" : "");
    if (fv_dist_size() > 1)
        fprintf(stderr, "fibvid train: %d MPI ranks x %d threads: each takes about %d of every batch of %d clips\n",
                fv_dist_size(), fv_num_threads(), (in->batch + fv_dist_size() - 1) / fv_dist_size(), in->batch);
}

static void on_step(void *user, const FvFitStep *st)
{
    TrainOpts *o = user;
    if (o->sigint_at > 0 && st->step == o->sigint_at) /* test hook: "Ctrl-C" after this step, COUNT times */
        for (long i = 0; i < o->sigint_count; i++)
            raise(SIGINT);
    if (o->kill_at > 0 && st->step == o->kill_at && fv_dist_rank() == o->kill_rank)
        raise(SIGKILL); /* test hook: a rank that dies */
    if (!o->progress)
        return;
    const double now = fv_cli_now_ms();
    if (now - o->last_progress <= 250 && st->step_in_epoch != st->steps_per_epoch)
        return;
    o->last_progress = now;
    char eta[32];
    fv_cli_fmt_eta(st->eta_s, eta, sizeof(eta));
    fprintf(stderr, "\repoch %lld/%lld [%lld/%lld] loss %.4f acc %.1f%% lr %.2e %.1f clips/s ETA %s\033[K",
            (long long)st->epoch, (long long)o->fit.epochs, (long long)st->step_in_epoch,
            (long long)st->steps_per_epoch, st->epoch_loss, st->epoch_acc, (double)st->lr, st->clips_per_s, eta);
}

static void on_epoch(void *user, const FvFitEpoch *ep)
{
    const TrainOpts *o = user;
    clear_progress(o);
    if (o->quiet)
        return;
    char eta[32];
    fv_cli_fmt_eta(ep->eta_s, eta, sizeof(eta));
    printf("epoch %lld/%lld: loss %.4f acc %.1f%%", (long long)ep->epoch, (long long)ep->epochs, ep->train_loss,
           ep->train_acc);
    if (ep->validated)
        printf(" | val top-1 %.1f%% mean-class %.1f%% loss %.4f%s", ep->val_top1, ep->val_mean_class, ep->val_loss,
               ep->best ? " *" : "");
    printf(" | %.1f clips/s, %.0f s, ETA %s\n", ep->clips_per_s, ep->epoch_s, eta);
    fflush(stdout);
}

/* POSIX-shell quoting of @s for the "continue with" line. */
static void shell_quote(const char *s, char *buf, size_t n)
{
    if (!s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-+:=@%,")]) {
        snprintf(buf, n, "%s", s);
        return;
    }
    size_t k = 0;
    if (n < 3) {
        buf[0] = '\0';
        return;
    }
    buf[k++] = '\'';
    for (; *s && k + 6 < n; s++) {
        if (*s == '\'') {
            memcpy(buf + k, "'\\''", 4);
            k += 4;
        } else {
            buf[k++] = *s;
        }
    }
    buf[k++] = '\'';
    buf[k] = '\0';
}

/* ------------------------------------------------------------------------------------------------ */
/* The run                                                                                           */
/* ------------------------------------------------------------------------------------------------ */

static int run(TrainOpts *o)
{
    FvDataset *tds = NULL, *vds = NULL;
    char *synth_json = NULL;
    int ret, rc = FV_EXIT_INPUT, agreed = 0;

    /* data lists */
    if (o->ucf101) {
        if ((ret = fv_dataset_load_ucf101(&tds, o->ucf101, (int32_t)o->split, FV_SUBSET_TRAIN)) < 0 ||
            (!o->no_val && (ret = fv_dataset_load_ucf101(&vds, o->ucf101, (int32_t)o->split, FV_SUBSET_TEST)) < 0))
            goto lib_fail;
    } else if ((ret = fv_dataset_load_list(&tds, o->list, (int32_t)o->label_base, o->classes)) < 0 ||
               (o->val_list && !o->no_val &&
                (ret = fv_dataset_load_list(&vds, o->val_list, (int32_t)o->label_base, o->classes)) < 0)) {
        goto lib_fail;
    }
    /* flips and time reversal follow a `fibvid synth` data set's synth.json when asked for "auto" */
    if (!o->synth_json && o->ucf101 && (o->fit.hflip == -1 || o->fit.reverse == -1)) {
        if (!(synth_json = fv_cli_path_join(o->ucf101, "synth.json"))) {
            ret = FV_ENOMEM;
            goto lib_fail;
        }
        FILE *f = fopen(synth_json, "rb");
        if (f)
            fclose(f);
        o->fit.synth_json = f ? synth_json : NULL;
    } else {
        o->fit.synth_json = o->synth_json;
    }
    if (!o->fit.resume && o->fit.batch > tds->num_entries)
        fv_cli_warn(CMD, "--batch %d is larger than the %lld training clips: every step takes all of them",
                     o->fit.batch, (long long)tds->num_entries);
    o->fit.train = tds;
    o->fit.val = vds;
    o->fit.root = o->root ? o->root : o->ucf101;
    o->fit.cb = (FvFitCallbacks){ .configure = on_configure, .started = on_started, .skipped = on_skipped,
                                  .decoding = on_decoding, .step = on_step, .epoch = on_epoch, .user = o };
    o->progress = !o->quiet && isatty(STDERR_FILENO);

    FvFitResult res = { 0 };
    o->fit.stop = &g_stop;
    agreed = 1;
    if ((ret = fv_dist_agree(0, 0, NULL)) < 0) /* the other ranks read their lists */
        goto lib_fail;
    ret = fv_fit_run(&o->fit, &res);
    clear_progress(o);
    if (ret < 0 && res.conflict) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_USAGE;
        goto done;
    }
    if (ret >= 0 && res.interrupted) {
        char q[8192];
        shell_quote(o->fit.out_dir, q, sizeof(q));
        fv_cli_error(CMD, "stopped by %s at step %lld (epoch %lld, %lld of %lld steps), checkpoint written; continue "
                     "with: fibvid train --resume --out %s", g_stop == SIGTERM ? "SIGTERM" : "SIGINT",
                     (long long)res.step, (long long)res.last_epoch + 1, (long long)res.step_in_epoch,
                     (long long)res.steps_per_epoch, q);
        rc = 128 + (int)g_stop;
        goto done;
    }
    if (ret == FV_ERANGE) {
        fv_cli_error(CMD, "epoch %lld: %s; lower --lr or --clip-norm", (long long)res.last_epoch + 1, fv_last_error());
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    if (ret < 0)
        goto lib_fail;
    if (res.finished && !o->quiet)
        fprintf(stderr, "fibvid train: done in %.0f s: %s/model.safetensors (final), best.safetensors "
                "(epoch %lld%s)\n", res.elapsed_s, o->fit.out_dir, (long long)res.best_epoch,
                res.best_top1 >= 0 ? ", best validation top-1" : "");
    else if (!res.finished && !o->quiet)
        fprintf(stderr, "fibvid train: stopped after epoch %lld of %lld; continue with --resume --out %s\n",
                (long long)res.last_epoch, (long long)o->fit.epochs, o->fit.out_dir);
    rc = FV_EXIT_OK;
    goto done;

lib_fail:
    if (!agreed) /* this rank's lists: the others wait for it before the fit */
        ret = fv_dist_agree(ret, 0, NULL);
    if (!o->reported)
        fv_cli_error(CMD, "%s", ret == FV_ENOMEM && !fv_last_error()[0] ? "out of memory" : fv_last_error());
    rc = o->usage_error ? FV_EXIT_USAGE : fv_cli_exit_code(ret);
done:
    fv_dataset_free(&tds);
    fv_dataset_free(&vds);
    free(synth_json);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* The command line, and the run's record of it                                                      */
/* ------------------------------------------------------------------------------------------------ */
/* Options that say where the run goes and how this invocation talks: not part of the run, not recorded. */
static const char *const g_unrecorded[] = { "out", "resume", "stop-after", "quiet", "help", NULL };
/* Recorded and taken over by --resume, but free to change there: the length of the run (a larger --epochs
 * extends it), where the videos are (the lists' contents are compared by the checkpoint) and how it runs (the
 * log's step lines, threads: with -t 1 a run's bytes do not depend on how it was cut). */
static const char *const g_changeable[] = { "epochs", "root", "log-every", "threads", NULL };
/* Options naming files: recorded as absolute paths, so --resume works from any directory. */
static const char *const g_paths[] = { "root", "ucf101", "list", "val-list", "classes", "synth-json", "model",
                                       "config", NULL };

/* What a run that did not give an option used (as --help says); NULL: no value then. */
static const char *default_of(const char *name)
{
    static const char *const d[][2] = {
        { "split", "1" }, { "label-base", "0" }, { "config", "synth" }, { "embed-init", "sincos" },
        { "epochs", "30" }, { "batch", "16" }, { "lr", "1e-3" }, { "min-lr", "1e-5" }, { "warmup", "2" },
        { "weight-decay", "0.05" }, { "label-smoothing", "0.1" }, { "clip-norm", "1" },
        { "castling-aux-until", "0.8" }, { "seed", "1" }, { "hflip", "auto" }, { "reverse", "auto" },
    };
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
        if (!strcmp(d[i][0], name))
            return d[i][1];
    return NULL;
}

/* --config names a preset or a file */
static int not_a_path(const char *name, const char *value)
{
    FvModelConfig c;
    return !strcmp(name, "config") && fv_model_config_preset(&c, value) == 0;
}

/* Parse @argv into @o (defaulted here), listing the options in @given (argc entries) when not NULL.
 * Returns -1 to go on, or the exit code (help printed, or one line on a bad option). */
static int parse(int argc, char **argv, TrainOpts *o, FvCliGiven *given, int *ngiven);

static int reparse(int argc, char **argv, void *o)
{
    return parse(argc, argv, o, NULL, NULL);
}

static int parse(int argc, char **argv, TrainOpts *o, FvCliGiven *given, int *ngiven)
{
    enum {
        O_ROOT = 0x100, O_UCF, O_SPLIT, O_LIST, O_VAL, O_CLASSES, O_BASE, O_NOVAL, O_CONFIG, O_FRAMES, O_ISIZE,
        O_RESUME, O_EPOCHS, O_STOP, O_LR, O_MINLR, O_WARMUP, O_WD, O_LS, O_CLIP, O_SEED, O_CACHE, O_SCALE,
        O_HFLIP, O_SJSON, O_LOGEVERY, O_EMBED, O_REVERSE, O_AUX, O_POOL, O_SHS, O_SHT,
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
        { "castling-aux-until", required_argument, NULL, O_AUX },
        { "token-pool", required_argument, NULL, O_POOL },
        { "share-spatial", required_argument, NULL, O_SHS },
        { "share-temporal", required_argument, NULL, O_SHT },
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
    *o = (TrainOpts){ .split = 1 };
    fv_fit_default_settings(&o->fit);
    fv_cli_attn_overrides_init(&o->attn);
    FvFitSettings *f = &o->fit;
    int c, li = -1;
    long v;
    if (ngiven)
        *ngiven = 0;
    optind = 0; /* glibc: a full restart (this runs twice with --resume) */
    while ((c = getopt_long(argc, argv, "m:o:b:t:qh", longopts, &li)) != -1) {
        switch (c) {
        case O_ROOT: o->root = optarg; break;
        case O_UCF: o->ucf101 = optarg; break;
        case O_SPLIT:
            if (fv_cli_parse_int(optarg, 1, 3, &o->split) < 0)
                goto bad;
            break;
        case O_LIST: o->list = optarg; break;
        case O_VAL: o->val_list = optarg; break;
        case O_CLASSES: o->classes = optarg; break;
        case O_BASE:
            if (fv_cli_parse_int(optarg, 0, 1, &o->label_base) < 0)
                goto bad;
            break;
        case O_NOVAL: o->no_val = 1; break;
        case O_CONFIG: f->config = optarg; o->o_config = 1; break;
        case 'm': f->init_model = optarg; break;
        case O_FRAMES:
            if (fv_cli_parse_int(optarg, 1, 1024, &v) < 0)
                goto bad;
            f->frames = (int32_t)v;
            break;
        case O_ISIZE:
            if (fv_cli_parse_int(optarg, 8, 4096, &v) < 0)
                goto bad;
            f->image_size = (int32_t)v;
            break;
        case 'o': f->out_dir = optarg; break;
        case O_RESUME: f->resume = 1; break;
        case O_EPOCHS:
            if (fv_cli_parse_int(optarg, 1, 100000, &v) < 0)
                goto bad;
            f->epochs = v;
            break;
        case O_STOP:
            if (fv_cli_parse_int(optarg, 1, 100000, &v) < 0)
                goto bad;
            f->stop_after = v;
            break;
        case 'b':
            if (fv_cli_parse_int(optarg, 1, 256, &v) < 0)
                goto bad;
            f->batch = (int32_t)v;
            break;
        case O_LR:
            if (parse_double(optarg, 1e-9, 10.0, &f->lr) < 0)
                goto bad;
            break;
        case O_MINLR:
            if (parse_double(optarg, 0.0, 10.0, &f->min_lr) < 0)
                goto bad;
            break;
        case O_WARMUP:
            if (parse_double(optarg, 0.0, 100000.0, &f->warmup) < 0)
                goto bad;
            break;
        case O_WD:
            if (parse_double(optarg, 0.0, 10.0, &f->weight_decay) < 0)
                goto bad;
            break;
        case O_LS:
            if (parse_double(optarg, 0.0, 0.99, &f->label_smoothing) < 0)
                goto bad;
            break;
        case O_CLIP:
            if (parse_double(optarg, 0.0, 1e9, &f->clip_norm) < 0)
                goto bad;
            break;
        case O_AUX:
            if (parse_double(optarg, 0.0, 1.0, &f->castling_aux_until) < 0)
                goto bad;
            break;
        case O_POOL:
            if (fv_cli_parse_pools(optarg, f->pools, &f->num_pools) < 0)
                goto bad;
            break;
        case O_SHS:
            if (fv_cli_parse_layers(optarg, &f->share_spatial) < 0)
                goto bad;
            break;
        case O_SHT:
            if (fv_cli_parse_layers(optarg, &f->share_temporal) < 0)
                goto bad;
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            f->seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                goto bad;
            break;
        }
        case O_CACHE:
            if (fv_cli_parse_int(optarg, 1, 512, &v) < 0)
                goto bad;
            f->cache_frames = (int32_t)v;
            break;
        case O_SCALE: {
            long lo, hi;
            if (parse_range(optarg, &lo, &hi) < 0)
                goto bad;
            f->scale_lo = (int32_t)lo;
            f->scale_hi = (int32_t)hi;
            break;
        }
        case O_HFLIP:
            if (!strcmp(optarg, "auto")) f->hflip = -1;
            else if (!strcmp(optarg, "off")) f->hflip = 0;
            else if (!strcmp(optarg, "on")) f->hflip = 1;
            else goto bad;
            break;
        case O_SJSON: o->synth_json = optarg; break;
        case O_REVERSE:
            if (!strcmp(optarg, "auto")) f->reverse = -1;
            else if (!strcmp(optarg, "off")) f->reverse = 0;
            else goto bad;
            break;
        case O_EMBED:
            if (!strcmp(optarg, "sincos")) f->embed_random = 0;
            else if (!strcmp(optarg, "random")) f->embed_random = 1;
            else goto bad;
            break;
        case O_LOGEVERY:
            if (fv_cli_parse_int(optarg, 0, 1000000, &v) < 0)
                goto bad;
            f->log_every = v;
            break;
        case 't':
            if (fv_cli_parse_int(optarg, 1, 1024, &v) < 0)
                goto bad;
            o->threads = v;
            break;
        case 'q': o->quiet = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&o->attn, CMD, longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        default:
            return fv_cli_bad_option("train", argv, "m:o:b:t:qh", longopts);
        }
        if (given) {
            given[*ngiven].name = fv_cli_option_name(longopts, c, li);
            given[*ngiven].value = optarg;
            (*ngiven)++;
        }
        li = -1;
        continue;
    bad:
        fv_cli_bad_value(CMD, fv_cli_option_name(longopts, c, li), optarg, help);
        return FV_EXIT_USAGE;
    }
    if (optind < argc) {
        fv_cli_error(CMD, "unexpected argument '%s' (see --help)", argv[optind]);
        return FV_EXIT_USAGE;
    }
    return -1;
}

/* The options together, after --resume has filled in the run's: -1 to go on, or an exit code after one line. */
static int check_options(const TrainOpts *o)
{
    if (o->fit.resume && !o->fit.out_dir) {
        fv_cli_error(CMD, "--resume needs the --out DIR of the run to continue");
        return FV_EXIT_USAGE;
    }
    if (!!o->ucf101 + !!o->list != 1) {
        fv_cli_error(CMD, "give exactly one of --ucf101 DIR or --list FILE (see --help)");
        return FV_EXIT_USAGE;
    }
    if (o->list && !o->root) {
        fv_cli_error(CMD, "--list needs --root VIDEO_DIR (see --help)");
        return FV_EXIT_USAGE;
    }
    if (!o->list && (o->val_list || o->classes || o->label_base)) {
        fv_cli_error(CMD, "--val-list, --classes and --label-base go with --list only");
        return FV_EXIT_USAGE;
    }
    if (!o->fit.out_dir) {
        fv_cli_error(CMD, "-o/--out DIR is required (see --help)");
        return FV_EXIT_USAGE;
    }
    const FvFitSettings *f = &o->fit;
    if (f->init_model && (o->o_config || f->frames || f->image_size || f->num_pools || f->share_spatial ||
                          f->share_temporal)) {
        fv_cli_error(CMD, "-m (fine-tuning) and --config/--frames/--image-size/--token-pool/--share-spatial/"
                     "--share-temporal exclude each other (those make a new model)");
        return FV_EXIT_USAGE;
    }
    if (o->fit.min_lr > o->fit.lr) {
        fv_cli_error(CMD, "--min-lr %g is above --lr %g", o->fit.min_lr, o->fit.lr);
        return FV_EXIT_USAGE;
    }
    if (o->synth_json && o->fit.hflip != -1 && o->fit.reverse != -1) {
        fv_cli_error(CMD, "--synth-json goes with --hflip auto or --reverse auto");
        return FV_EXIT_USAGE;
    }
    return -1;
}

int fv_cli_train(int argc, char **argv)
{
    TrainOpts o = { 0 };
    FvCliGiven *given = calloc((size_t)argc + 1, sizeof(FvCliGiven));
    json_t *rec = NULL, *names = json_array();
    char **args = NULL;
    int ngiven = 0, nargs = 0, rc;
    if (!given || !names) {
        rc = FV_EXIT_RUNTIME;
        goto oom;
    }
    if ((rc = fv_cli_dist_start(CMD)) >= 0)
        goto done;
    if ((rc = parse(argc, argv, &o, given, &ngiven)) >= 0)
        goto done;
    const FvCliRecordSpec spec = { .cmd = CMD, .unrecorded = g_unrecorded, .changeable = g_changeable,
                                   .paths = g_paths, .default_of = default_of, .not_a_path = not_a_path };
    /* --resume: the options the run recorded, under those given now (which must be the run's) */
    if (o.fit.resume && o.fit.out_dir &&
        (rc = fv_cli_record_resume(&spec, o.fit.out_dir, argc, argv, given, ngiven, names, &rec, &args, &nargs,
                                   reparse, &o)) >= 0)
        goto done;
    if (o.fit.resume && o.fit.out_dir && !o.ucf101 && !o.list && !json_object_get(rec, "options")) {
        /* nothing to take the run's options from: say so rather than ask for a data set */
        fv_cli_error(CMD, "%s: no run.json with the run's options to resume (a run from before they were recorded "
                     "needs them again: --ucf101 or --list, ...)", o.fit.out_dir);
        rc = FV_EXIT_INPUT;
        goto done;
    }
    if (o.fit.resume && o.fit.out_dir && json_object_get(rec, "options")) {
        /* a run stopped before its first checkpoint: nothing to continue, so it starts from the beginning (as
         * evaluate --resume does before its first prediction) */
        char *cp = fv_cli_path_join(o.fit.out_dir, "checkpoint.json");
        if (!cp)
            goto oom;
        struct stat st;
        if (stat(cp, &st) < 0 && errno == ENOENT) {
            o.fit.resume = 0;
            if (!o.quiet)
                fprintf(stderr, "fibvid train: %s: no checkpoint yet; starting the run from the beginning\n",
                        o.fit.out_dir);
        }
        free(cp);
    }
    if ((rc = check_options(&o)) >= 0)
        goto done;
    if (!(o.record = fv_cli_record_merge(&spec, json_object_get(rec, "options"), given, ngiven)))
        goto oom;
    if (!o.fit.resume && o.fit.warmup > (double)o.fit.epochs)
        fv_cli_warn(CMD, "--warmup %g epochs is longer than the run's %lld: the learning rate never reaches --lr %g",
                    o.fit.warmup, (long long)o.fit.epochs, o.fit.lr);
    const char *hook = getenv("FIBVID_TEST_SIGINT_AT");
    if (hook) {
        char *end;
        o.sigint_at = strtol(hook, &end, 10);
        o.sigint_count = *end == ',' ? strtol(end + 1, NULL, 10) : 1;
    }
    const char *kill = getenv("FIBVID_TEST_KILL_AT");
    if (kill) {
        char *end;
        o.kill_rank = strtol(kill, &end, 10);
        o.kill_at = *end == ',' ? strtol(end + 1, NULL, 10) : 0;
    }
    if (o.threads)
        fv_set_num_threads((int32_t)o.threads);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = run(&o);
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
    fv_dist_finalize();
    if (g_stop && rc == 128 + (int)g_stop) {
        /* die of the signal, as `evaluate` does, so callers (shells: 130, Slurm) see how the run ended */
        signal((int)g_stop, SIG_DFL);
        raise((int)g_stop);
    }
    return rc;
}
