/* `fibvid classify`: top-k action labels for clips (K temporal x S spatial views, probabilities averaged), or a
 * timeline of sliding windows over long videos; clips from the command line, directories, lists and stdin. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "fibvid/diag.h"

typedef struct ClassifyOpts {
    const char *model;
    FvPredictSettings pred; /* views, sampling, frames, top-k */
    FvOutFormat format;
    int logits;
    long threads;
    int quiet;
    FvAttnOverrides attn;
    const char *diag;      /* --diag FILE.json, or NULL */
    const char *list;      /* --list FILE ("-": stdin), or NULL */
    const char *labels_file;
    const char *out;       /* -o FILE, or NULL: stdout */
    double window, stride; /* --window/--stride seconds; window 0: each clip as a whole */
    const char *timeline;  /* --timeline FILE.svg, or NULL */
    long progress_every;   /* progress line every N clips when stderr is not a terminal (0: not by count) */
    double progress_s;     /* ... and after a clip ending this long after the last line (0: not by time) */
    char **labels;         /* --labels: (nlabels) class names, or NULL: the model's */
    int32_t nlabels;
} ClassifyOpts;

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid classify [-m MODEL] [options] (CLIP | DIR | -)... [--list FILE]\n"
        "\n"
        "Top-k action labels for each clip. Several clips load the model once. A DIR is searched recursively\n"
        "for video files, by file name extension (.avi .mp4 .m4v .mkv .webm .mov .mpg .mpeg .ts .m2ts .mts\n"
        ".flv .wmv .asf .ogv .3gp .3g2 .vob .dv .y4m .mxf, any case; hidden entries and symbolic links to\n"
        "directories are skipped), in sorted order. '-' reads one video from stdin (spooled to an unlinked\n"
        "temporary file in $TMPDIR, else /tmp). A named pipe is refused (not seekable): pipe it into '-'.\n"
        "\n"
        "  -m, --model PATH        Hugging Face TimeSformer directory or fibvid .safetensors file\n"
        "                          (default: $FIBVID_MODEL, else the bundled default model)\n"
        "      --list FILE         also classify the clips listed in FILE, one path a line ('-': stdin;\n"
        "                          empty lines and lines starting with # are skipped) (default: none)\n"
        "      --labels FILE       class names, one a line in class order, for a model without id2label\n"
        "                          (default: the model's labels)\n"
        "  -k, --top-k N           labels to show, 1..64; a model with fewer labels shows all of them,\n"
        "                          with a warning (default 5)\n"
        "      --views TxS         T temporal x S spatial views, probabilities averaged (default 1x1;\n"
        "                          S is 1 (centre crop) or 3 (left/centre/right crops))\n"
        "      --sampling MODE     uniform|dense (default: the model's config, else uniform)\n"
        "      --frames N          frames per view (default: the model's num_frames)\n"
        "      --rate R            dense sampling stride in native frames (default: the model's)\n"
        "      --dense-start S     mmaction|slowfast: where dense views start (default mmaction)\n"
        "      --short-side N      resize the shorter side to N before cropping (default: crop size)\n"
        "      --window SECONDS    long videos: classify windows of SECONDS, sliding over the whole video,\n"
        "                          and print a timeline (per window: start, end, top-k); views are sampled\n"
        "                          inside each window; the last window is cut at the end (default: off)\n"
        "      --stride SECONDS    start of one window to the next (default: the window, no overlap)\n"
        "      --timeline FILE.svg with --window: also draw the timeline as an SVG strip per clip (one band\n"
        "                          per window: top-1 label and probability; time axis in seconds; legend)\n"
        "  -f, --format FMT        text|json|jsonl|csv (default text); csv: a header row, then one row per\n"
        "                          clip (x window) x rank\n"
        "  -o, --output FILE       write the results to FILE (atomically, at the end) (default: stdout)\n"
        "      --logits            include the raw logits (mean over views)\n"
        "      --diag FILE.json    also write per-head attention diagnostics of every layer for every clip\n"
        "                          (with --window: every window) (entropy, distance, density, cls attention,\n"
        "                          head-pair CKA/cosine/Frobenius/Jaccard; means over the views) to FILE.json\n"
        "                          (default: off)\n"
        "  -t, --threads N         threads (default: all cores)\n"
        "      --precision P       matrix products in fp32 (default) or bf16 (weights held in bf16 only;\n"
        "                          needs AVX512-BF16 or AMX: otherwise a usage error)\n"
        "  -q, --quiet             no progress on stderr\n"
        "      --progress-every N  when stderr is not a terminal (batch jobs, Slurm logs): a progress line\n"
        "                          every N clips (default 10; 0: not by count) ...\n"
        "      --progress-seconds S ... and after a clip that ends S seconds or more after the last line\n"
        "                          (default 30; 0: not by time)\n"
        "  -h, --help              this help\n"
        "%s"
        "\n"
        "Exit codes: 0 success, 1 usage error, 2 input error (a clip, list, directory or the model could not\n"
        "be read; the other clips are still classified), 3 runtime failure.\n",
        fv_cli_attn_help);
}


static const char *label(const ClassifyOpts *o, const FvModel *m, int32_t i)
{
    return o->labels && i >= 0 && i < o->nlabels ? o->labels[i] : fv_model_label(m, i);
}

static json_t *top_json(const FvModel *m, const ClassifyOpts *o, const FvPredictResult *res)
{
    json_t *top = json_array();
    for (int32_t r = 0; r < res->k; r++)
        json_array_append_new(top, json_pack("{s:s, s:i, s:f}", "label", label(o, m, res->top[r]), "index",
                                             res->top[r], "prob", (double)res->probs[res->top[r]]));
    return top;
}

static json_t *frames_json(const int64_t *frames, int32_t K, int32_t T)
{
    json_t *a = json_array();
    for (int32_t v = 0; v < K; v++) {
        json_t *fv = json_array();
        for (int32_t t = 0; t < T; t++)
            json_array_append_new(fv, json_integer(frames[(int64_t)v * T + t]));
        json_array_append_new(a, fv);
    }
    return a;
}

static json_t *logits_json(const FvPredictResult *res)
{
    json_t *lg = json_array();
    for (int32_t i = 0; i < res->num_labels; i++)
        json_array_append_new(lg, json_real(res->logits[i]));
    return lg;
}

static json_t *clip_json(FvModel *m, const ClassifyOpts *o, const char *path, const FvClip *clip,
                         const FvPredictResult *res)
{
    json_t *j = json_object();
    json_object_set_new(j, "path", json_string(path));
    json_object_set_new(j, "top", top_json(m, o, res));
    if (o->logits)
        json_object_set_new(j, "logits", logits_json(res));
    json_object_set_new(j, "frames", frames_json(clip->frames, clip->num_tviews, clip->T));
    char views[32];
    snprintf(views, sizeof(views), "%dx%d", clip->num_tviews, clip->num_sviews);
    json_object_set_new(j, "views", json_string(views));
    json_object_set_new(j, "timing_ms", json_pack("{s:f, s:f}", "decode", clip->decode_ms, "forward",
                                                  res->forward_ms));
    return j;
}

static void print_text(FILE *out, FvModel *m, const ClassifyOpts *o, const char *path, const FvClip *clip,
                       const FvPredictResult *res)
{
    const int32_t L = res->num_labels, k = res->k;
    const int32_t *idx = res->top;
    fprintf(out, "%s  (%d frames, %dx%d views, decode %.1f ms, forward %.1f ms)\n", path, clip->T, clip->num_tviews,
            clip->num_sviews, clip->decode_ms, res->forward_ms);
    fprintf(out, "  %-4s  %-8s  %-5s  %s\n", "rank", "prob", "index", "label");
    for (int32_t r = 0; r < k; r++)
        fprintf(out, "  %-4d  %-8.4f  %-5d  %s\n", r + 1, res->probs[idx[r]], idx[r], label(o, m, idx[r]));
    if (o->logits) {
        fprintf(out, "  logits:");
        for (int32_t i = 0; i < L; i++)
            fprintf(out, " %.6g", res->logits[i]);
        fprintf(out, "\n");
    }
}


/* ---------------------------------------------------------------------------------------------------- */
/* The command                                                                                           */
/* ---------------------------------------------------------------------------------------------------- */

/* What the window callback fills for one clip. */
typedef struct TimelineCtx {
    FvModel *m;
    const ClassifyOpts *o;
    FvDiag *diag;
    json_t *windows; /* the windows' results */
    json_t *diags;   /* the windows' diagnostics (--diag), or NULL */
} TimelineCtx;

static int on_window(void *opaque, const FvWindow *w)
{
    TimelineCtx *c = opaque;
    json_t *j = json_pack("{s:i, s:f, s:f, s:I, s:I}", "index", w->index, "start_s", w->start_s, "end_s", w->end_s,
                          "first_frame", (json_int_t)w->first_frame, "end_frame", (json_int_t)w->end_frame);
    if (!j)
        return FV_ENOMEM;
    json_object_set_new(j, "frames", frames_json(w->frames, w->num_tviews, w->T));
    json_object_set_new(j, "top", top_json(c->m, c->o, &w->result));
    if (c->o->logits)
        json_object_set_new(j, "logits", logits_json(&w->result));
    json_object_set_new(j, "forward_ms", json_real(w->result.forward_ms));
    json_array_append_new(c->windows, j);
    if (c->diag) {
        char *text = fv_diag_result_json(fv_diag_result(c->diag), 0);
        json_t *dj = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        json_array_append_new(c->diags, json_pack("{s:i, s:f, s:f, s:f, s:o*}", "index", w->index, "start_s",
                                                  w->start_s, "end_s", w->end_s, "forward_ms", w->result.forward_ms,
                                                  "diag", dj));
        fv_diag_reset(c->diag); /* the next window starts afresh */
    }
    return 0;
}

/* Non-terminal progress (batch jobs): "N/M clips" every o->progress_every clips, and after a clip that ends
 * o->progress_s or more after the last line. */
static void batch_progress(const ClassifyOpts *o, size_t done, size_t total, int failed, double t0, double *last)
{
    const double now = fv_cli_now_ms();
    const int by_count = o->progress_every > 0 && done % (size_t)o->progress_every == 0;
    const int by_time = o->progress_s > 0 && now - *last >= o->progress_s * 1e3;
    if (!by_count && !by_time)
        return;
    *last = now;
    const double el = (now - t0) / 1e3, rate = el > 0 ? (double)done / el : 0;
    char e1[32], e2[32];
    fv_cli_fmt_eta(el, e1, sizeof(e1));
    fv_cli_fmt_eta(rate > 0 ? (double)(total - done) / rate : 0, e2, sizeof(e2));
    fprintf(stderr, "fibvid classify: %zu/%zu clips (%d failed), %.2f clips/s, elapsed %s, ETA %s\n", done, total,
            failed, rate, e1, e2);
    fflush(stderr);
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 1e6)
        return -1;
    *out = v;
    return 0;
}

/* Emit one clip's JSON result (or error object) in the chosen format; steals @j. */
static void emit(FILE *out, const ClassifyOpts *o, json_t *all, json_t *j)
{
    if (o->format == FV_OUT_CSV) {
        fv_classify_csv_rows(out, j, o->window > 0);
        json_decref(j);
    } else if (all) {
        json_array_append_new(all, j);
    } else {
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        fprintf(out, "%s\n", s);
        free(s);
        json_decref(j);
    }
}

int fv_cli_classify(int argc, char **argv)
{
    enum { OPT_LOGITS = 0x200, OPT_DIAG, OPT_LIST, OPT_LABELS, OPT_WINDOW, OPT_STRIDE, OPT_TIMELINE, OPT_PROGRESS,
           OPT_PROGRESS_S };
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },
        { "top-k", required_argument, NULL, 'k' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, 'o' },
        { "logits", no_argument, NULL, OPT_LOGITS },
        { "diag", required_argument, NULL, OPT_DIAG },
        { "list", required_argument, NULL, OPT_LIST },
        { "labels", required_argument, NULL, OPT_LABELS },
        { "window", required_argument, NULL, OPT_WINDOW },
        { "stride", required_argument, NULL, OPT_STRIDE },
        { "timeline", required_argument, NULL, OPT_TIMELINE },
        { "progress-every", required_argument, NULL, OPT_PROGRESS },
        { "progress-seconds", required_argument, NULL, OPT_PROGRESS_S },
        { "threads", required_argument, NULL, 't' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        FV_CLI_PRECISION_LONGOPT, FV_CLI_ATTN_LONGOPTS,
        FV_CLI_CLIP_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    ClassifyOpts o = { .format = FV_OUT_TEXT, .progress_every = 10, .progress_s = 30 };
    fv_predict_default_settings(&o.pred);
    fv_cli_attn_overrides_init(&o.attn);
    int c, li = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:k:f:o:t:qh", longopts, &li)) != -1) {
        const char *opt = NULL; /* the option named in a "bad value" message */
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'k': {
            long k;
            if (fv_cli_parse_int(optarg, 1, 64, &k) < 0) {
                opt = "top-k";
                goto bad;
            }
            o.pred.top_k = (int32_t)k;
            break;
        }
        case FV_OPT_CLIP:
            if (fv_cli_clip_option(&o.pred, "classify", longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        case 'f':
            if (fv_cli_parse_format(optarg, 1u << FV_OUT_TEXT | 1u << FV_OUT_JSON | 1u << FV_OUT_JSONL | 1u << FV_OUT_CSV,
                                    &o.format) < 0) {
                opt = "format";
                goto bad;
            }
            break;
        case 'o': o.out = optarg; break;
        case OPT_LOGITS: o.logits = 1; break;
        case OPT_DIAG: o.diag = optarg; break;
        case OPT_LIST: o.list = optarg; break;
        case OPT_LABELS: o.labels_file = optarg; break;
        case OPT_WINDOW:
            if (parse_seconds(optarg, &o.window) < 0) {
                opt = "window";
                goto bad;
            }
            break;
        case OPT_STRIDE:
            if (parse_seconds(optarg, &o.stride) < 0) {
                opt = "stride";
                goto bad;
            }
            break;
        case OPT_TIMELINE: o.timeline = optarg; break;
        case OPT_PROGRESS:
            if (fv_cli_parse_int(optarg, 0, 1000000000, &o.progress_every) < 0) {
                opt = "progress-every";
                goto bad;
            }
            break;
        case OPT_PROGRESS_S:
            if (strcmp(optarg, "0") && parse_seconds(optarg, &o.progress_s) < 0) {
                opt = "progress-seconds";
                goto bad;
            }
            if (!strcmp(optarg, "0"))
                o.progress_s = 0;
            break;
        case 't':
            if (fv_cli_parse_int(optarg, 1, 1024, &o.threads) < 0) {
                opt = "threads";
                goto bad;
            }
            break;
        case 'q': o.quiet = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        case FV_OPT_PRECISION:
            if (fv_cli_precision_option("classify", optarg))
                return FV_EXIT_USAGE;
            break;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&o.attn, "classify", longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        default:
            return fv_cli_bad_option("classify", argv, "m:k:f:t:qh", longopts);
        }
        continue;
    bad:
        fv_cli_error("classify", "bad value '%s' for --%s (valid: %s)", optarg, opt,
                     !strcmp(opt, "top-k") ? "1..64 (labels beyond the model's are left out)"
                     : !strcmp(opt, "format") ? "text, json, jsonl, csv"
                     : !strcmp(opt, "window") || !strcmp(opt, "stride") ? "seconds > 0, e.g. 10 or 2.5"
                     : !strcmp(opt, "progress-every") ? "0..1000000000 clips"
                     : !strcmp(opt, "progress-seconds") ? "seconds >= 0" : "1..1024");
        return FV_EXIT_USAGE;
    }
    if (optind >= argc && !o.list) {
        fv_cli_error("classify", "no clip given (see --help)");
        return FV_EXIT_USAGE;
    }
    if ((o.stride > 0 || o.timeline) && !(o.window > 0)) {
        fv_cli_error("classify", "--%s needs --window", o.stride > 0 ? "stride" : "timeline");
        return FV_EXIT_USAGE;
    }
    if (o.window > 0 && !(o.stride > 0))
        o.stride = o.window;
    fv_set_num_threads((int32_t)o.threads);
    int rc = 0;
    /* the files written at the end must be writable before any clip is classified */
    const char *outs[3] = { o.diag, o.out, o.timeline };
    for (int i = 0; i < 3; i++)
        if (outs[i] && (rc = fv_cli_check_writable("classify", outs[i])) != 0)
            return rc;

    FvInputs in = { .spool_fd = -1 };
    for (int i = optind; i < argc && rc < FV_EXIT_RUNTIME && rc != FV_EXIT_USAGE; i++) {
        int r = fv_inputs_add_arg(&in, argv[i]);
        rc = r > rc ? r : rc;
    }
    if (o.list && rc < FV_EXIT_RUNTIME && rc != FV_EXIT_USAGE) {
        int r = fv_inputs_add_list(&in, o.list);
        rc = r > rc ? r : rc;
    }
    if (rc == FV_EXIT_USAGE || rc == FV_EXIT_RUNTIME || in.n == 0) {
        if (!rc) { /* only an empty --list gets here without a message */
            fv_cli_error("classify", "%s: no clip listed", o.list);
            rc = FV_EXIT_INPUT;
        }
        fv_inputs_free(&in);
        return rc;
    }

    FvModel *m = NULL;
    int r0 = fv_cli_load_model("classify", o.model, &m);
    if (r0) {
        fv_inputs_free(&in);
        return r0;
    }
    if (o.labels_file) {
        int r = fv_cli_read_lines(o.labels_file, &o.labels, &o.nlabels);
        while (!r && o.nlabels > 0 && !o.labels[o.nlabels - 1][0]) /* trailing empty lines */
            free(o.labels[--o.nlabels]);
        const int32_t L = fv_model_config(m)->num_labels;
        if (!r && o.nlabels != L) {
            fv_cli_error("classify", "%s: %d labels, the model has %d classes", o.labels_file, o.nlabels, L);
            r = FV_EXIT_INPUT;
        }
        if (r) {
            fv_cli_free_lines(o.labels, o.nlabels);
            fv_model_close(&m);
            fv_inputs_free(&in);
            return r;
        }
    }
    int ret = fv_cli_attn_apply(&o.attn, m);
    FvClipSettings cs;
    if (ret >= 0)
        ret = fv_predict_clip_settings(m, &o.pred, &cs); /* options that would fail every clip: once, up front */
    FvState *st = NULL;
    FvDiag *diag = NULL;
    json_t *diag_clips = NULL, *all = NULL, *svg_clips = NULL;
    FILE *out = stdout;
    char *outbuf = NULL;
    size_t outlen = 0;
    if (ret < 0) {
        fv_cli_error("classify", "%s", fv_last_error());
        rc = FV_EXIT_USAGE;
        goto end;
    }
    if (o.pred.top_k > fv_model_config(m)->num_labels)
        fv_cli_warn("classify", "--top-k %d: the model has %d %s; all of them are shown", o.pred.top_k,
                    fv_model_config(m)->num_labels, fv_cli_plural(fv_model_config(m)->num_labels, "label", "labels"));
    if ((ret = fv_state_create(&st, m)) < 0) {
        fv_cli_error("classify", "%s", fv_last_error());
        rc = FV_EXIT_RUNTIME;
        goto end;
    }
    /* --diag: a collector on the state; each clip's result (means over its views) goes into one file */
    if (o.diag) {
        diag_clips = json_array();
        if (!diag_clips || fv_diag_create(&diag) < 0 || fv_state_set_diag(st, diag) < 0) {
            fv_cli_error("classify", "out of memory");
            rc = FV_EXIT_RUNTIME;
            goto end;
        }
    }
    if (o.out && !(out = open_memstream(&outbuf, &outlen))) {
        fv_cli_error("classify", "out of memory");
        rc = FV_EXIT_RUNTIME;
        goto end;
    }
    all = o.format == FV_OUT_JSON ? json_array() : NULL;
    svg_clips = o.timeline ? json_array() : NULL;
    if (o.format == FV_OUT_CSV)
        fv_classify_csv_header(out, o.window > 0);

    const size_t nclips = in.n;
    const int tty = isatty(STDERR_FILENO);
    const double t_start = fv_cli_now_ms();
    double t_last = t_start;
    int failed = 0;
    for (size_t i = 0; i < nclips; i++) {
        const FvInput *cur = &in.v[i];
        FvClip clip = { 0 };
        FvPredictResult res = { 0 };
        const int show = !o.quiet && tty && nclips > 1;
        if (show)
            fprintf(stderr, "\r[%zu/%zu] %s\033[K", i + 1, nclips, cur->name);
        fv_diag_reset(diag);
        json_t *tl = NULL; /* --window: the clip's timeline */
        if (o.window > 0) {
            TimelineCtx ctx = { .m = m, .o = &o, .diag = diag, .windows = json_array(),
                                .diags = diag ? json_array() : NULL };
            FvTimelineStats ts;
            ret = fv_predict_timeline(st, cur->path, &o.pred, o.window, o.stride, on_window, &ctx, &ts);
            if (ret >= 0) {
                tl = json_pack("{s:s, s:f, s:f, s:I, s:f, s:f, s:o, s:I, s:i, s:{s:f, s:f}}", "path", cur->name,
                               "duration_s", ts.info.fps > 0 ? (double)ts.info.nframes / ts.info.fps : 0.0, "fps",
                               ts.info.fps, "nframes", (json_int_t)ts.info.nframes, "window_s", o.window,
                               "stride_s", o.stride, "windows", ctx.windows, "frames_decoded",
                               (json_int_t)ts.frames_decoded, "decoding_passes", ts.reads, "timing_ms", "decode",
                               ts.decode_ms, "forward", ts.forward_ms);
                ctx.windows = NULL;
                if (!tl)
                    ret = FV_ENOMEM;
                if (diag)
                    json_array_append_new(diag_clips, json_pack("{s:s, s:o}", "path", cur->name, "windows", ctx.diags));
                else
                    json_decref(ctx.diags);
                ctx.diags = NULL;
                if (svg_clips && tl)
                    json_array_append(svg_clips, tl);
            }
            json_decref(ctx.windows);
            json_decref(ctx.diags);
        } else {
            ret = fv_predict_file(st, cur->path, &o.pred, &res, &clip);
            const int32_t rep = ret >= 0 ? fv_clip_repeated_frames(&clip) : 0;
            if (rep > 0 && !o.quiet && !fv_cli_quiet()) {
                if (show)
                    fputs("\r\033[K", stderr);
                fv_cli_warn("classify", "%s: %d of the %d frames of a view repeat earlier frames: the clip is shorter "
                            "than the sampling window", cur->name, rep, clip.T);
            }
            if (ret >= 0 && diag) {
                char *text = fv_diag_result_json(fv_diag_result(diag), 0);
                json_t *dj = text ? json_loads(text, 0, NULL) : NULL;
                free(text);
                json_array_append_new(diag_clips, json_pack("{s:s, s:f, s:o*}", "path", cur->name, "forward_ms",
                                                            res.forward_ms, "diag", dj));
            }
        }
        if (show) /* the progress line goes before a result or an error is printed (often on the same terminal) */
            fputs("\r\033[K", stderr);
        if (ret < 0) {
            char msg[4096];
            fv_input_error(cur, msg, sizeof(msg));
            fv_cli_error("classify", "%s", msg);
            int code = fv_cli_exit_code(ret);
            rc = code > rc ? code : rc;
            failed++;
            if (o.format != FV_OUT_TEXT)
                emit(out, &o, all, json_pack("{s:s, s:s}", "path", cur->name, "error", msg));
        } else if (tl) {
            if (o.format == FV_OUT_TEXT) {
                fv_classify_print_timeline(out, tl);
                json_decref(tl);
            } else {
                emit(out, &o, all, tl);
            }
        } else if (o.format == FV_OUT_TEXT) {
            print_text(out, m, &o, cur->name, &clip, &res);
        } else {
            emit(out, &o, all, clip_json(m, &o, cur->name, &clip, &res));
        }
        fflush(out);
        fv_predict_result_free(&res);
        fv_clip_free(&clip);
        if (!o.quiet && !tty && nclips > 1)
            batch_progress(&o, i + 1, nclips, failed, t_start, &t_last);
    }
    if (all) {
        char *s = json_dumps(all, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
        fprintf(out, "%s\n", s);
        free(s);
    }
    if (o.timeline) {
        int r = fv_classify_write_timeline_svg(o.timeline, svg_clips);
        if (r < 0) {
            fv_cli_error("classify", "%s", r == -1 ? "out of memory for the timeline" : fv_last_error());
            rc = FV_EXIT_RUNTIME;
        }
    }
    if (diag) {
        json_t *dj = json_pack("{s:s, s:O}", "model", o.model ? o.model : fv_cli_default_model(), "clips", diag_clips);
        char *text = dj ? json_dumps(dj, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) : NULL;
        if (!text) {
            fv_cli_error("classify", "%s: out of memory for the diagnostics", o.diag);
            rc = FV_EXIT_RUNTIME;
        } else if (fv_write_file_atomic(o.diag, text, strlen(text)) < 0) {
            fv_cli_error("classify", "%s", fv_last_error()); /* names the file and the OS reason */
            rc = FV_EXIT_RUNTIME;
        }
        free(text);
        json_decref(dj);
    }
end:
    if (out != stdout) {
        fclose(out);
        if (rc < FV_EXIT_RUNTIME || outlen > 0) { /* what was classified, also when some clips failed */
            if (fv_write_file_atomic(o.out, outbuf, outlen) < 0) {
                fv_cli_error("classify", "%s", fv_last_error());
                rc = FV_EXIT_RUNTIME;
            }
        }
        free(outbuf);
    }
    json_decref(all);
    json_decref(svg_clips);
    json_decref(diag_clips);
    fv_diag_close(&diag);
    fv_state_close(&st);
    fv_model_close(&m);
    fv_cli_free_lines(o.labels, o.nlabels);
    fv_inputs_free(&in);
    return rc;
}
