/* `fibvid diversity`: per-head attention diagnostics over a set of clips (given, or taken from a dataset list),
 * under one or several attention settings side by side; writes DIR/diversity.json and DIR/report.html. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "fibvid/diag.h"
#include "fibvid/eval.h"

#define CMD "diversity"
#define MAX_SETS 8

typedef struct DivOpts {
    const char *model, *out, *compare;
    const char *root, *ucf101, *hmdb51, *list, *classes;
    long split, label_base, max_clips, report_clips, threads;
    FvSubset subset;
    int quiet;
    int force;         /* --force: replace the diversity.json and report.html of an earlier run */
    FvPredictSettings pred;
    FvAttnOverrides attn;
} DivOpts;

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid diversity [-m MODEL] CLIP... --out DIR [options]\n"
        "       fibvid diversity [-m MODEL] --root VIDEO_DIR (--ucf101 DIR | --hmdb51 DIR | --list FILE) --out DIR\n"
        "                        [options]\n"
        "\n"
        "Per-head attention diagnostics of every layer (entropy, attention distance, density, cls attention,\n"
        "and head-pair similarity: linear CKA, cosine and Frobenius distance of the head outputs, Jaccard\n"
        "overlap of the masks), per clip and as mean and spread over the clips, under one or more attention\n"
        "settings. Writes DIR/diversity.json and DIR/report.html (one self-contained page).\n"
        "\n"
        "  -o, --out DIR           output directory (required; created when missing; one that holds files is\n"
        "                          refused unless --force, which replaces diversity.json and report.html)\n"
        "      --force             write into a directory that is not empty\n"
        "      --compare KINDS     comma-separated attention settings run on the same clips, side by side:\n"
        "                          model (the model's own, after the attention options below); dense, fib,\n"
        "                          sima, castling (that kind in both attentions); fib-spatial (Fibottention\n"
        "                          spatial, dense temporal, as the reference video code) (default model)\n"
        "      --max-clips N       clips used: the first N given, or N spread evenly over a dataset list\n"
        "                          (default: every clip given; 16 from a dataset)\n"
        "      --report-clips N    clips whose cls attention is drawn over a frame in the report (default 3)\n"
        "dataset (instead of CLIP...; the same options as `fibvid evaluate`):\n"
        "      --root DIR          directory the list's video paths are relative to\n"
        "      --ucf101 DIR        official UCF101 split files\n"
        "      --hmdb51 DIR        official HMDB51 split files\n"
        "      --list FILE         MMAction2 `path label` or PySlowFast `path,label` list\n"
        "      --split N           official split 1, 2 or 3 (default 1)\n"
        "      --subset S          test|train (default test)\n"
        "      --label-base B      first label number of --list: 0 or 1 (default 0)\n"
        "      --classes FILE      class names of --list (default: none)\n"
        "model and clips:\n"
        "  -m, --model PATH        Hugging Face TimeSformer directory or fibvid .safetensors file\n"
        "                          (default: $FIBVID_MODEL, else the bundled default model)\n"
        "      --views TxS         views per clip, diagnostics averaged over them (default 1x1)\n"
        "      --sampling MODE     uniform|dense (default: the model's config, else uniform)\n"
        "      --frames N          frames per view (default: the model's num_frames)\n"
        "      --rate R            dense sampling stride (default: the model's)\n"
        "      --dense-start S     mmaction|slowfast (default mmaction)\n"
        "      --short-side N      resize the shorter side to N before cropping (default: crop size)\n"
        "  -t, --threads N         threads (default: all cores)\n"
        "  -q, --quiet             no progress on stderr\n"
        "  -h, --help              this help\n"
        "%s"
        "\n"
        "Clips that cannot be read are listed under \"failures\" in diversity.json and the run goes on.\n"
        "Exit codes: 0 success, 1 usage error, 2 input error (model, list, or no clip could be read),\n"
        "3 runtime failure.\n",
        fv_cli_attn_help);
}

typedef struct Setting {
    char name[32];
    FvAttnSettings sp, tp;
    FvDiagAgg *agg;
    FvDiagResult mean, std;
    FvDiagResult *shown; /* (report clips) per-clip results kept for the cls maps */
    double forward_ms;
    int64_t forwards;
    int warned;
} Setting;

static int parse_compare(const char *s, const FvModelConfig *c, Setting *sets, int *n)
{
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= MAX_SETS)
            return -1;
        Setting *st = &sets[*n];
        memset(st, 0, sizeof(*st));
        st->sp = c->spatial;
        st->tp = c->temporal;
        FvAttnKind k;
        if (!strcmp(tok, "model")) {
        } else if (fv_attn_kind_from_name(tok, &k) == 0) { /* dense, fib, sima, castling: both attentions */
            st->sp.kind = st->tp.kind = k;
        } else if (!strcmp(tok, "fib-spatial")) {
            st->sp.kind = FV_ATTN_FIB;
            st->tp.kind = FV_ATTN_DENSE;
        } else {
            return -1;
        }
        for (int i = 0; i < *n; i++)
            if (!strcmp(sets[i].name, tok))
                return -1;
        snprintf(st->name, sizeof(st->name), "%s", tok);
        (*n)++;
    }
    return *n > 0 ? 0 : -1;
}

/* The diagnostics of @r as a JSON value (a null on out of memory). */
static json_t *diag_json(const FvDiagResult *r, unsigned flags)
{
    char *text = fv_diag_result_json(r, flags);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j ? j : json_null();
}

/* The middle frame of view 0 back in 8-bit RGB, (H, W, 3). */
static uint8_t *clip_frame(const FvClip *clip, const FvClipSettings *cs)
{
    const int64_t HW = (int64_t)clip->H * clip->W;
    uint8_t *rgb = malloc((size_t)HW * 3);
    if (!rgb)
        return NULL;
    const float *fr = clip->data + (int64_t)(clip->T / 2) * 3 * HW;
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < HW; i++) {
            float v = (fr[c * HW + i] * cs->pre.std[c] + cs->pre.mean[c]) * 255.0f + 0.5f;
            rgb[i * 3 + c] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
    return rgb;
}

int fv_cli_diversity(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },     { "out", required_argument, NULL, 'o' },
        { "compare", required_argument, NULL, 'C' },   { "max-clips", required_argument, NULL, 'N' },
        { "report-clips", required_argument, NULL, 'P' }, { "root", required_argument, NULL, 'r' },
        { "ucf101", required_argument, NULL, 'U' },    { "hmdb51", required_argument, NULL, 'B' },
        { "list", required_argument, NULL, 'l' },      { "split", required_argument, NULL, 's' },
        { "subset", required_argument, NULL, 'u' },    { "label-base", required_argument, NULL, 'b' },
        { "classes", required_argument, NULL, 'c' },   { "threads", required_argument, NULL, 't' },
        { "quiet", no_argument, NULL, 'q' },           { "help", no_argument, NULL, 'h' },
        { "force", no_argument, NULL, 'X' },
        FV_CLI_ATTN_LONGOPTS,
        FV_CLI_CLIP_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    DivOpts o = { .compare = "model", .split = 1, .report_clips = 3, .max_clips = -1, .subset = FV_SUBSET_TEST };
    fv_predict_default_settings(&o.pred);
    fv_cli_attn_overrides_init(&o.attn);
    int c, li = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:t:qh", longopts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'o': o.out = optarg; break;
        case 'C': o.compare = optarg; break;
        case 'N': bad = fv_cli_parse_int(optarg, 1, 1 << 30, &o.max_clips); break;
        case 'P': bad = fv_cli_parse_int(optarg, 0, 64, &o.report_clips); break;
        case 'r': o.root = optarg; break;
        case 'U': o.ucf101 = optarg; break;
        case 'B': o.hmdb51 = optarg; break;
        case 'l': o.list = optarg; break;
        case 's': bad = fv_cli_parse_int(optarg, 1, 3, &o.split); break;
        case 'u':
            if (!strcmp(optarg, "test")) o.subset = FV_SUBSET_TEST;
            else if (!strcmp(optarg, "train")) o.subset = FV_SUBSET_TRAIN;
            else bad = 1;
            break;
        case 'b': bad = fv_cli_parse_int(optarg, 0, 1, &o.label_base); break;
        case 'c': o.classes = optarg; break;
        case FV_OPT_CLIP:
            if (fv_cli_clip_option(&o.pred, CMD, longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        case 't': bad = fv_cli_parse_int(optarg, 1, 1024, &o.threads); break;
        case 'q': o.quiet = 1; break;
        case 'X': o.force = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&o.attn, CMD, longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        default: return fv_cli_bad_option("diversity", argv, "m:o:t:qh", longopts);
        }
        if (bad) {
            fv_cli_error(CMD, "bad value '%s' for --%s", optarg, c == 't' ? "threads" : longopts[li].name);
            return FV_EXIT_USAGE;
        }
    }
    const int nds = !!o.ucf101 + !!o.hmdb51 + !!o.list;
    if (!o.out) {
        fv_cli_error(CMD, "--out DIR is required (see --help)");
        return FV_EXIT_USAGE;
    }
    if (nds > 1 || (nds && optind < argc) || (!nds && optind >= argc) || (nds && !o.root)) {
        fv_cli_error(CMD, "give either clips or one of --ucf101/--hmdb51/--list with --root (see --help)");
        return FV_EXIT_USAGE;
    }

    fv_set_num_threads((int32_t)o.threads);

    /* the clips */
    FvDataset *ds = NULL;
    char **paths = NULL;
    int64_t npaths = 0;
    int rc = FV_EXIT_OK, ret;
    if (nds) {
        ret = o.ucf101 ? fv_dataset_load_ucf101(&ds, o.ucf101, (int32_t)o.split, o.subset)
              : o.hmdb51 ? fv_dataset_load_hmdb51(&ds, o.hmdb51, (int32_t)o.split, o.subset)
                         : fv_dataset_load_list(&ds, o.list, (int32_t)o.label_base, o.classes);
        if (ret < 0) {
            fv_cli_error(CMD, "%s", fv_last_error());
            return fv_cli_exit_code(ret);
        }
        const int64_t want = o.max_clips > 0 ? o.max_clips : 16, total = ds->num_entries;
        npaths = want < total ? want : total;
        paths = calloc((size_t)(npaths ? npaths : 1), sizeof(char *));
        for (int64_t i = 0; paths && i < npaths; i++) /* spread over the list: every class gets a say */
            if (!(paths[i] = fv_cli_path_join(o.root, ds->entries[i * total / npaths].path)))
                break;
    } else {
        npaths = argc - optind;
        if (o.max_clips > 0 && npaths > o.max_clips)
            npaths = o.max_clips;
        paths = calloc((size_t)npaths, sizeof(char *));
        for (int64_t i = 0; paths && i < npaths; i++)
            if (!(paths[i] = strdup(argv[optind + i])))
                break;
    }
    FvModel *m = NULL;
    FvState *st = NULL;
    FvDiag *diag = NULL;
    Setting sets[MAX_SETS];
    int nsets = 0;
    json_t *clips_json = json_array(), *failures = json_array(), *top = NULL;
    FvReportClip *shown = NULL;
    int64_t nshown = 0, nok = 0;
    memset(sets, 0, sizeof(sets));
    if (!paths || (npaths && !paths[npaths - 1]) || !clips_json || !failures) {
        fv_cli_error(CMD, "out of memory");
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    if (npaths == 0) {
        fv_cli_error(CMD, "the dataset list has no videos");
        rc = FV_EXIT_INPUT;
        goto done;
    }
    if ((rc = fv_cli_load_model(CMD, o.model, &m)) != 0)
        goto done;
    if ((ret = fv_cli_attn_apply(&o.attn, m)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_USAGE;
        goto done;
    }
    const FvModelConfig *cfg = fv_model_config(m);
    FvAttnSettings model_sp = cfg->spatial, model_tp = cfg->temporal;
    if (parse_compare(o.compare, cfg, sets, &nsets) < 0) {
        fv_cli_error(CMD, "bad value '%s' for --compare (comma-separated, each once: model, dense, fib, sima, castling, fib-spatial)",
                     o.compare);
        nsets = 0;
        rc = FV_EXIT_USAGE;
        goto done;
    }
    const int used = fv_cli_dir_in_use(CMD, o.out); /* before any clip is decoded */
    if (used && (used < 0 || !o.force)) {
        if (used > 0)
            fv_cli_error(CMD, "%s is not empty: choose another --out, or --force to replace its report", o.out);
        rc = FV_EXIT_INPUT;
        goto done;
    }
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {
        fv_cli_error(CMD, "%s: cannot create: %s", o.out, strerror(errno));
        rc = FV_EXIT_INPUT;
        goto done;
    }
    nshown = o.report_clips < npaths ? o.report_clips : npaths;
    shown = calloc((size_t)(nshown ? nshown : 1), sizeof(FvReportClip));
    if (!shown || fv_state_create(&st, m) < 0 || fv_diag_create(&diag) < 0 || fv_state_set_diag(st, diag) < 0) {
        fv_cli_error(CMD, "out of memory");
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    for (int s = 0; s < nsets; s++)
        if (fv_diag_agg_create(&sets[s].agg) < 0 || !(sets[s].shown = calloc((size_t)(nshown ? nshown : 1), sizeof(FvDiagResult)))) {
            fv_cli_error(CMD, "out of memory");
            rc = FV_EXIT_RUNTIME;
            goto done;
        }

    FvClipSettings cs;
    if ((ret = fv_predict_clip_settings(m, &o.pred, &cs)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_USAGE;
        goto done;
    }
    int64_t shown_i = 0;
    for (int64_t i = 0; i < npaths && rc == FV_EXIT_OK; i++) {
        if (!o.quiet && isatty(STDERR_FILENO))
            fprintf(stderr, "\r[%lld/%lld] %s\033[K", (long long)i + 1, (long long)npaths, paths[i]);
        FvClip clip = { 0 };
        if ((ret = fv_clip_load(paths[i], &cs, &clip)) < 0) {
            /* a warning, not progress: printed under --quiet too */
            fprintf(stderr, "%sfibvid %s: %s (skipped)\n", !o.quiet && isatty(STDERR_FILENO) ? "\n" : "", CMD,
                    fv_last_error());
            json_array_append_new(failures, json_pack("{s:s, s:s}", "path", paths[i], "reason", fv_last_error()));
            continue;
        }
        json_t *cj = json_pack("{s:s, s:{}}", "path", paths[i], "settings");
        const int keep = shown_i < nshown;
        const int32_t V = clip.num_tviews * clip.num_sviews;
        for (int s = 0; s < nsets && rc == FV_EXIT_OK; s++) {
            Setting *set = &sets[s];
            fv_diag_reset(diag);
            if ((ret = fv_model_set_attention(m, &set->sp, &set->tp)) < 0) {
                fv_cli_error(CMD, "%s", fv_last_error());
                rc = FV_EXIT_USAGE;
                break;
            }
            if (!set->warned && fv_model_attention_tensors_missing(m) > 0) { /* once per setting */
                fprintf(stderr, "fibvid %s: warning: setting %s: the model has no weights for its kind's own tensors: "
                        "taken as zero (castling: no depthwise-convolution term)\n", CMD, set->name);
                set->warned = 1;
            }
            double t0 = fv_cli_now_ms();
            FvPredictResult pr;
            if ((ret = fv_predict_clip(st, &clip, &o.pred, &pr)) >= 0)
                fv_predict_result_free(&pr);
            set->forward_ms += fv_cli_now_ms() - t0;
            set->forwards += V;
            const FvDiagResult *r = ret >= 0 ? fv_diag_result(diag) : NULL;
            if (!r || (ret = fv_diag_agg_add(set->agg, r)) < 0 ||
                (keep && (ret = fv_diag_result_copy(&set->shown[shown_i], r)) < 0)) {
                fv_cli_error(CMD, "%s: %s", paths[i], fv_last_error());
                rc = fv_cli_exit_code(ret < 0 ? ret : FV_ENOMEM);
                break;
            }
            json_object_set_new(json_object_get(cj, "settings"), set->name, diag_json(r, keep ? 0 : FV_DIAG_JSON_NO_CLS));
        }
        if (rc == FV_EXIT_OK && keep) {
            shown[shown_i].name = paths[i];
            shown[shown_i].w = clip.W;
            shown[shown_i].h = clip.H;
            shown[shown_i].rgb = clip_frame(&clip, &cs);
            shown_i++;
        }
        json_array_append_new(clips_json, cj);
        nok++;
        fv_clip_free(&clip);
    }
    if (!o.quiet && isatty(STDERR_FILENO))
        fputc('\n', stderr);
    fv_model_set_attention(m, &model_sp, &model_tp);
    if (rc != FV_EXIT_OK)
        goto done;
    if (nok == 0) {
        fv_cli_error(CMD, "no clip could be read");
        rc = FV_EXIT_INPUT;
        goto done;
    }

    /* aggregate, diversity.json */
    top = json_object();
    json_object_set_new(top, "model", json_string(o.model ? o.model : fv_cli_default_model()));
    json_object_set_new(top, "num_clips", json_integer(nok));
    json_object_set_new(top, "num_failed", json_integer((json_int_t)json_array_size(failures)));
    json_t *agg = json_object(), *cmp = json_array(), *timing = json_object();
    for (int s = 0; s < nsets; s++) {
        if ((ret = fv_diag_agg_get(sets[s].agg, &sets[s].mean, &sets[s].std)) < 0) {
            fv_cli_error(CMD, "%s", fv_last_error());
            rc = fv_cli_exit_code(ret);
            json_decref(agg);
            json_decref(cmp);
            json_decref(timing);
            goto done;
        }
        json_object_set_new(agg, sets[s].name, json_pack("{s:o, s:o}", "mean", diag_json(&sets[s].mean, 0),
                                                         "std", diag_json(&sets[s].std, 0)));
        json_object_set_new(timing, sets[s].name,
                            json_pack("{s:f, s:I}", "forward_ms_mean", sets[s].forward_ms / (double)sets[s].forwards,
                                      "forwards", (json_int_t)sets[s].forwards));
    }
    const int32_t L = sets[0].mean.num_layers, H = sets[0].mean.num_heads;
    for (int32_t l = 0; l < L; l++) {
        json_t *row = json_pack("{s:i}", "layer", l);
        for (int s = 0; s < nsets; s++) {
            const FvDiagLayer *Ly = &sets[s].mean.layer[l];
            json_object_set_new(row, sets[s].name,
                                json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}",
                                          "spatial_cka", fv_diag_pair_mean(Ly->attn[0].cka, H),
                                          "temporal_cka", fv_diag_pair_mean(Ly->attn[1].cka, H),
                                          "spatial_cosine", fv_diag_pair_mean(Ly->attn[0].cosine, H),
                                          "temporal_cosine", fv_diag_pair_mean(Ly->attn[1].cosine, H),
                                          "spatial_jaccard", fv_diag_pair_mean(Ly->attn[0].jaccard, H),
                                          "temporal_jaccard", fv_diag_pair_mean(Ly->attn[1].jaccard, H)));
        }
        json_array_append_new(cmp, row);
    }
    json_object_set_new(top, "compare", cmp);
    json_object_set_new(top, "timing", timing);
    json_object_set_new(top, "aggregate", agg);
    json_object_set(top, "clips", clips_json);
    json_object_set(top, "failures", failures);
    char *jpath = fv_cli_path_join(o.out, "diversity.json"), *hpath = fv_cli_path_join(o.out, "report.html");
    if (!jpath || !hpath || json_dump_file(top, jpath, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) != 0) {
        fv_cli_error(CMD, "%s: cannot write", jpath ? jpath : o.out);
        rc = FV_EXIT_RUNTIME;
        free(jpath);
        free(hpath);
        goto done;
    }

    /* report.html */
    FvReportSetting rs[MAX_SETS];
    const FvDiagResult *shown_r[MAX_SETS][64];
    for (int s = 0; s < nsets; s++) {
        rs[s].name = sets[s].name;
        rs[s].mean = &sets[s].mean;
        rs[s].std = &sets[s].std;
        for (int64_t k = 0; k < shown_i; k++)
            shown_r[s][k] = &sets[s].shown[k];
        rs[s].clip = shown_r[s];
    }
    char sub[1024];
    snprintf(sub, sizeof(sub), "model %s: %d layers, %d heads, %d frames, %dx%d patches of %d px; %lld clips (%lld "
             "could not be read); %d view(s) per clip.", o.model ? o.model : fv_cli_default_model(), L, H,
             sets[0].mean.frames, sets[0].mean.grid_h, sets[0].mean.grid_w, sets[0].mean.patch_size, (long long)nok,
             (long long)json_array_size(failures), (int)(o.pred.temporal_views * o.pred.spatial_views));
    if ((ret = fv_report_diversity_html(hpath, "fibvid head diversity", sub, shown, (int32_t)shown_i, rs, nsets)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = fv_cli_exit_code(ret);
    }

    /* the figures that matter, on stdout */
    printf("mean head similarity (linear CKA of head outputs, off-diagonal mean over %lld clips)\n", (long long)nok);
    printf("%-6s", "layer");
    for (int s = 0; s < nsets; s++)
        printf("  %14s spatial  %14s temporal", sets[s].name, sets[s].name);
    printf("\n");
    for (int32_t l = 0; l < L; l++) {
        printf("%-6d", l);
        for (int s = 0; s < nsets; s++)
            printf("  %22.4f  %23.4f", fv_diag_pair_mean(sets[s].mean.layer[l].attn[0].cka, H),
                   fv_diag_pair_mean(sets[s].mean.layer[l].attn[1].cka, H));
        printf("\n");
    }
    for (int s = 0; s < nsets; s++)
        printf("%s: forward with diagnostics %.1f ms per view\n", sets[s].name, sets[s].forward_ms / (double)sets[s].forwards);
    printf("wrote %s and %s\n", jpath, hpath);
    free(jpath);
    free(hpath);

done:
    for (int s = 0; s < nsets; s++) {
        fv_diag_agg_close(&sets[s].agg);
        fv_diag_result_free(&sets[s].mean);
        fv_diag_result_free(&sets[s].std);
        for (int64_t k = 0; sets[s].shown && k < nshown; k++)
            fv_diag_result_free(&sets[s].shown[k]);
        free(sets[s].shown);
    }
    for (int64_t k = 0; shown && k < nshown; k++)
        free((void *)shown[k].rgb);
    free(shown);
    fv_state_close(&st);
    fv_diag_close(&diag);
    fv_model_close(&m);
    json_decref(top);
    json_decref(clips_json);
    json_decref(failures);
    for (int64_t i = 0; paths && i < npaths; i++)
        free(paths[i]);
    free(paths);
    fv_dataset_free(&ds);
    return rc;
}
