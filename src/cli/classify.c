/* `fibvid classify`: top-k action labels for clips (K temporal x S spatial views, probabilities averaged). */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    const char *diag;  /* --diag FILE.json, or NULL */
} ClassifyOpts;

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid classify [-m MODEL] [options] CLIP...\n"
        "\n"
        "Top-k action labels for each clip. Several clips load the model once.\n"
        "\n"
        "  -m, --model PATH        Hugging Face TimeSformer directory or fibvid .safetensors file\n"
        "                          (default: $FIBVID_MODEL, else the bundled default model)\n"
        "  -k, --top-k N           labels to show (default 5)\n"
        "      --views TxS         T temporal x S spatial views, probabilities averaged (default 1x1;\n"
        "                          S is 1 (centre crop) or 3 (left/centre/right crops))\n"
        "      --sampling MODE     uniform|dense (default: the model's config, else uniform)\n"
        "      --frames N          frames per view (default: the model's num_frames)\n"
        "      --rate R            dense sampling stride in native frames (default: the model's)\n"
        "      --dense-start S     mmaction|slowfast: where dense views start (default mmaction)\n"
        "      --short-side N      resize the shorter side to N before cropping (default: crop size)\n"
        "  -f, --format FMT        text|json|jsonl (default text)\n"
        "      --logits            include the raw logits (mean over views)\n"
        "      --diag FILE.json    also write per-head attention diagnostics of every layer for every clip\n"
        "                          (entropy, distance, density, cls attention, head-pair CKA/cosine/\n"
        "                          Frobenius/Jaccard; means over the views) to FILE.json (default: off)\n"
        "  -t, --threads N         threads (default: all cores)\n"
        "  -q, --quiet             no progress on stderr\n"
        "  -h, --help              this help\n"
        "%s"
        "\n"
        "Exit codes: 0 success, 1 usage error, 2 input error (a clip or the model could not be read;\n"
        "the other clips are still classified), 3 runtime failure.\n",
        fv_cli_attn_help);
}

static json_t *clip_json(FvModel *m, const ClassifyOpts *o, const char *path, const FvClip *clip,
                         const FvPredictResult *res)
{
    const int32_t L = res->num_labels, k = res->k;
    const int32_t *idx = res->top;
    json_t *j = json_object();
    json_object_set_new(j, "path", json_string(path));
    json_t *top = json_array();
    for (int32_t r = 0; r < k; r++)
        json_array_append_new(top, json_pack("{s:s, s:i, s:f}", "label", fv_model_label(m, idx[r]), "index",
                                             idx[r], "prob", (double)res->probs[idx[r]]));
    json_object_set_new(j, "top", top);
    if (o->logits) {
        json_t *lg = json_array();
        for (int32_t i = 0; i < L; i++)
            json_array_append_new(lg, json_real(res->logits[i]));
        json_object_set_new(j, "logits", lg);
    }
    json_t *frames = json_array();
    for (int32_t v = 0; v < clip->num_tviews; v++) {
        json_t *fv = json_array();
        for (int32_t t = 0; t < clip->T; t++)
            json_array_append_new(fv, json_integer(clip->frames[(int64_t)v * clip->T + t]));
        json_array_append_new(frames, fv);
    }
    json_object_set_new(j, "frames", frames);
    char views[32];
    snprintf(views, sizeof(views), "%dx%d", clip->num_tviews, clip->num_sviews);
    json_object_set_new(j, "views", json_string(views));
    json_object_set_new(j, "timing_ms", json_pack("{s:f, s:f}", "decode", clip->decode_ms, "forward",
                                                  res->forward_ms));
    return j;
}

static void print_text(FvModel *m, const ClassifyOpts *o, const char *path, const FvClip *clip,
                       const FvPredictResult *res)
{
    const int32_t L = res->num_labels, k = res->k;
    const int32_t *idx = res->top;
    printf("%s  (%d frames, %dx%d views, decode %.1f ms, forward %.1f ms)\n", path, clip->T, clip->num_tviews,
           clip->num_sviews, clip->decode_ms, res->forward_ms);
    printf("  %-4s  %-8s  %-5s  %s\n", "rank", "prob", "index", "label");
    for (int32_t r = 0; r < k; r++)
        printf("  %-4d  %-8.4f  %-5d  %s\n", r + 1, res->probs[idx[r]], idx[r], fv_model_label(m, idx[r]));
    if (o->logits) {
        printf("  logits:");
        for (int32_t i = 0; i < L; i++)
            printf(" %.6g", res->logits[i]);
        printf("\n");
    }
}

int fv_cli_classify(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },
        { "top-k", required_argument, NULL, 'k' },
        { "format", required_argument, NULL, 'f' },
        { "logits", no_argument, NULL, 'L' },
        { "diag", required_argument, NULL, 'G' },
        { "threads", required_argument, NULL, 't' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        FV_CLI_ATTN_LONGOPTS,
        FV_CLI_CLIP_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    ClassifyOpts o = { .format = FV_OUT_TEXT };
    fv_predict_default_settings(&o.pred);
    fv_cli_attn_overrides_init(&o.attn);
    int c, li;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:k:f:t:qh", longopts, &li)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'k': {
            long k;
            if (fv_cli_parse_int(optarg, 1, 64, &k) < 0)
                goto bad;
            o.pred.top_k = (int32_t)k;
            break;
        }
        case FV_OPT_CLIP:
            if (fv_cli_clip_option(&o.pred, "classify", longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        case 'f':
            if (fv_cli_parse_format(optarg, 1u << FV_OUT_TEXT | 1u << FV_OUT_JSON | 1u << FV_OUT_JSONL, &o.format) < 0)
                goto bad;
            break;
        case 'L': o.logits = 1; break;
        case 'G': o.diag = optarg; break;
        case 't':
            if (fv_cli_parse_int(optarg, 1, 1024, &o.threads) < 0)
                goto bad;
            break;
        case 'q': o.quiet = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&o.attn, "classify", longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        default:
            return fv_cli_bad_option("classify", argv, "m:k:f:t:qh", longopts);
        }
        continue;
    bad:
        fv_cli_error("classify", "bad value '%s' for --%s", optarg, c == 'k' ? "top-k" : c == 'f' ? "format" : c == 't' ? "threads" : longopts[li].name);
        return FV_EXIT_USAGE;
    }
    if (optind >= argc) {
        fv_cli_error("classify", "no clip given (see --help)");
        return FV_EXIT_USAGE;
    }
    fv_set_num_threads((int32_t)o.threads);
    int rc;
    if (o.diag && (rc = fv_cli_check_writable("classify", o.diag)) != 0) /* before any clip is classified */
        return rc;

    FvModel *m = NULL;
    rc = fv_cli_load_model("classify", o.model, &m);
    if (rc)
        return rc;
    int ret = fv_cli_attn_apply(&o.attn, m);
    FvClipSettings cs;
    if (ret >= 0)
        ret = fv_predict_clip_settings(m, &o.pred, &cs); /* options that would fail every clip: once, up front */
    if (ret < 0) {
        fv_cli_error("classify", "%s", fv_last_error());
        fv_model_close(&m);
        return FV_EXIT_USAGE;
    }

    FvState *st = NULL;
    if ((ret = fv_state_create(&st, m)) < 0) {
        fv_cli_error("classify", "%s", fv_last_error());
        fv_model_close(&m);
        return FV_EXIT_RUNTIME;
    }
    /* --diag: a collector on the state; each clip's result (means over its views) goes into one file */
    FvDiag *diag = NULL;
    json_t *diag_clips = NULL;
    if (o.diag) {
        diag_clips = json_array();
        if (!diag_clips || fv_diag_create(&diag) < 0 || fv_state_set_diag(st, diag) < 0) {
            fv_cli_error("classify", "out of memory");
            json_decref(diag_clips);
            fv_state_close(&st);
            fv_model_close(&m);
            return FV_EXIT_RUNTIME;
        }
    }

    json_t *all = o.format == FV_OUT_JSON ? json_array() : NULL;
    int nclips = argc - optind;
    for (int i = optind; i < argc; i++) {
        const char *path = argv[i];
        FvClip clip = { 0 };
        FvPredictResult res = { 0 };
        const int show = !o.quiet && isatty(STDERR_FILENO) && nclips > 1;
        if (show)
            fprintf(stderr, "\r[%d/%d] %s\033[K", i - optind + 1, nclips, path);
        fv_diag_reset(diag);
        ret = fv_predict_file(st, path, &o.pred, &res, &clip);
        if (ret >= 0 && diag) {
            char *text = fv_diag_result_json(fv_diag_result(diag), 0);
            json_t *dj = text ? json_loads(text, 0, NULL) : NULL;
            free(text);
            json_array_append_new(diag_clips, json_pack("{s:s, s:f, s:o*}", "path", path, "forward_ms", res.forward_ms,
                                                        "diag", dj));
        }
        if (show) /* the progress line goes before a result or an error is printed (often on the same terminal) */
            fputs("\r\033[K", stderr);
        if (ret < 0) {
            fv_cli_error("classify", "%s", fv_last_error()[0] ? fv_last_error() : "failed");
            int code = fv_cli_exit_code(ret);
            rc = code > rc ? code : rc;
            if (o.format != FV_OUT_TEXT) {
                json_t *e = json_pack("{s:s, s:s}", "path", path, "error", fv_last_error());
                if (all)
                    json_array_append_new(all, e);
                else {
                    char *s = json_dumps(e, JSON_COMPACT);
                    puts(s);
                    free(s);
                    json_decref(e);
                }
            }
        } else if (o.format == FV_OUT_TEXT) {
            print_text(m, &o, path, &clip, &res);
        } else {
            json_t *j = clip_json(m, &o, path, &clip, &res);
            if (all)
                json_array_append_new(all, j);
            else {
                char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
                puts(s);
                free(s);
                json_decref(j);
            }
        }
        fflush(stdout);
        fv_predict_result_free(&res);
        fv_clip_free(&clip);
    }
    if (all) {
        char *s = json_dumps(all, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
        puts(s);
        free(s);
        json_decref(all);
    }
    if (diag) {
        json_t *dj = json_pack("{s:s, s:o}", "model", o.model ? o.model : fv_cli_default_model(), "clips", diag_clips);
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
        fv_diag_close(&diag);
    }
    fv_state_close(&st);
    fv_model_close(&m);
    return rc;
}
