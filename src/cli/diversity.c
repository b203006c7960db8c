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
    const char *model, *models, *out, *compare;
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
        "usage: fibvid diversity [-m MODEL | --models A,B] CLIP... --out DIR [options]\n"
        "       fibvid diversity [-m MODEL] --root VIDEO_DIR (--ucf101 DIR | --hmdb51 DIR | --list FILE) --out DIR\n"
        "                        [options]\n"
        "\n"
        "Per-head attention diagnostics of every layer (entropy, attention distance, mask density, cls\n"
        "attention, and head-pair similarity: linear CKA, cosine and Frobenius distance of the head outputs,\n"
        "Jaccard overlap of the masks), per clip and as mean and spread over the clips, under one or more attention\n"
        "settings, or for several models side by side (--models). Writes DIR/diversity.json and DIR/report.html\n"
        "(one self-contained page: a headline figure, the mean pairwise head similarity = mean over layers and\n"
        "over spatial and temporal attention of the off-diagonal mean linear CKA of the head outputs, with its\n"
        "standard deviation over clips; then charts per layer).\n"
        "\n"
        "  -o, --out DIR           output directory (required; created when missing; one that holds files is\n"
        "                          refused unless --force, which replaces diversity.json and report.html)\n"
        "      --force             write into a directory that is not empty\n"
        "      --compare KINDS     comma-separated attention settings run on the same clips, side by side:\n"
        "                          model (the model's own, after the attention options below); dense, fib,\n"
        "                          sima, castling (that kind in both attentions); fib-spatial (Fibottention\n"
        "                          spatial, dense temporal, as the reference video code) (default model).\n"
        "                          dense runs the model's own weights densely: not a dense-trained model\n"
        "      --models A,B        compare checkpoints (up to 4) on the same clips, each with its own config,\n"
        "                          attention and clip size (e.g. a Fibottention model and its dense-trained\n"
        "                          baseline); with --compare, every model under every setting\n"
        "      --max-clips N       clips used: the first N given, or N spread evenly over a dataset list\n"
        "                          (default: every clip given; 16 from a dataset)\n"
        "      --report-clips N    clips whose cls attention is drawn over a frame in the report, 0..64\n"
        "                          (default 3)\n"
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
        "      --precision P       matrix products in fp32 (default) or bf16 (weights held in bf16 only;\n"
        "                          needs AVX512-BF16 or AMX: otherwise a usage error)\n"
        "  -q, --quiet             no progress on stderr\n"
        "  -h, --help              this help\n"
        "%s"
        "\n"
        "Clips that cannot be read get one line each on stderr (the file and the reason), are listed under\n"
        "\"failures\" in diversity.json and the run goes on; the results of the other clips are written.\n"
        "mask_density in diversity.json is the fraction of the patch-token (query, key) pairs a head's mask\n"
        "allows, cls excluded, as `fibvid masks` reports it (there in percent).\n"
        "Exit codes: 0 success, 1 usage error, 2 input error (model, list, or any clip could not be read),\n"
        "3 runtime failure.\n",
        fv_cli_attn_help);
}

#define MAX_MODELS 4

/* One model of the run (-m, or each of --models): its own config, clip settings and run state. */
typedef struct Run {
    const char *path;
    char name[64];
    FvModel *m;
    FvState *st;
    FvDiag *diag;
    FvClipSettings cs;
    FvAttnSettings sp, tp; /* its own attention, after the attention options */
    FvClip clip;           /* the clip of the moment, decoded at this model's size */
} Run;

/* One column of the report: a model under one attention setting. */
typedef struct Setting {
    char name[96];
    char label[1536];
    const char *kind;      /* the --compare word */
    int run;
    FvAttnSettings sp, tp;
    FvDiagAgg *agg;
    FvDiagResult mean, std;
    FvDiagResult *shown; /* (report clips) per-clip results kept for the cls maps */
    double forward_ms;
    int64_t forwards;
    double sim_sum, sim_sq; /* the headline figure over clips */
    int warned;
} Setting;

/* A short name for a model: its file or directory name without extension; the parent directory too when
 * two models would share it (runs/dense/model.safetensors, runs/fib/model.safetensors). */
/* Model path @path without trailing slashes: its last component without extension in @stem, and
 * "parent/stem" in @pstem (just the stem without a parent). */
static void path_stems(const char *path, char *stem, char *pstem, size_t n)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", path);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    char *dot = strrchr(buf, '.'), *slash = strrchr(buf, '/');
    if (dot && (!slash || dot > slash + 1))
        *dot = '\0';
    snprintf(stem, n, "%.63s", slash ? slash + 1 : buf);
    if (slash && slash != buf) {
        *slash = '\0';
        char *parent = strrchr(buf, '/');
        snprintf(pstem, n, "%.31s/%.31s", parent ? parent + 1 : buf, stem);
    } else {
        snprintf(pstem, n, "%.63s", stem);
    }
}

/* A short name for every model: its file or directory name without extension; with the parent directory
 * when two models would share it or it says nothing ("model": runs/dense/model.safetensors -> dense/model). */
static void run_names(Run *runs, int n)
{
    char stem[MAX_MODELS][64], pstem[MAX_MODELS][64];
    for (int i = 0; i < n; i++)
        path_stems(runs[i].path, stem[i], pstem[i], sizeof(stem[i]));
    for (int i = 0; i < n; i++) {
        int dup = !strcmp(stem[i], "model");
        for (int k = 0; k < n; k++)
            dup |= k != i && !strcmp(stem[k], stem[i]);
        snprintf(runs[i].name, sizeof(runs[i].name), "%.63s", dup ? pstem[i] : stem[i]);
    }
    for (int i = 0; i < n; i++) /* still the same (the same path twice): number them */
        for (int k = 0; k < i; k++)
            if (!strcmp(runs[k].name, runs[i].name)) {
                char tmp[64];
                snprintf(tmp, sizeof(tmp), "%.56s#%d", runs[i].name, (i + 1) % 1000); /* n <= MAX_MODELS */
                memcpy(runs[i].name, tmp, sizeof(tmp));
                break;
            }
}

/* The settings of --compare for every model: model-major, named by the --compare word (one model) or
 * "model" / "model:word" (several). */
static int parse_compare(const char *s, const Run *runs, int nruns, Setting *sets, int *n)
{
    static const char *const words[] = { "model", "dense", "fib", "sima", "castling", "fib-spatial" };
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        return -1;
    *n = 0;
    for (int r = 0; r < nruns; r++) {
        strcpy(buf, s);
        int first = *n;
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (*n >= MAX_SETS)
                return -1;
            Setting *st = &sets[*n];
            memset(st, 0, sizeof(*st));
            st->run = r;
            st->sp = runs[r].sp;
            st->tp = runs[r].tp;
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
            for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
                if (!strcmp(words[w], tok))
                    st->kind = words[w];
            if (!st->kind)
                return -1;
            for (int i = first; i < *n; i++)
                if (!strcmp(sets[i].kind, st->kind))
                    return -1;
            if (nruns == 1)
                snprintf(st->name, sizeof(st->name), "%s", tok);
            else if (!strcmp(tok, "model"))
                snprintf(st->name, sizeof(st->name), "%s", runs[r].name);
            else
                snprintf(st->name, sizeof(st->name), "%s:%s", runs[r].name, tok);
            (*n)++;
        }
    }
    return *n > 0 ? 0 : -1;
}

/* Which model and which attention a setting is, in words: the report's column headers and diversity.json. */
static void describe_setting(Setting *set, const Run *run)
{
    const char *sa = fv_attn_kind_name(set->sp.kind), *ta = fv_attn_kind_name(set->tp.kind);
    if (set->sp.kind == run->sp.kind && set->tp.kind == run->tp.kind)
        snprintf(set->label, sizeof(set->label), "model %s, its own attention (spatial %s, temporal %s)", run->path,
                 sa, ta);
    else
        snprintf(set->label, sizeof(set->label), "model %s, made for spatial %s, temporal %s attention, run with "
                 "spatial %s, temporal %s: the same weights, not a model trained for that attention",
                 run->path, fv_attn_kind_name(run->sp.kind), fv_attn_kind_name(run->tp.kind), sa, ta);
}

/* Mask density as `fibvid masks` gives it: the fraction of the n x n patch-token pairs, cls excluded. The
 * collector counts the (n+1) x (n+1) pairs of the spatial attention, whose cls row and column every kind
 * attends (2n + 1 pairs); temporal attention has no cls. Done per clip, so means and spreads follow. */
static void mask_density(FvDiagResult *r, const FvModelConfig *cfg)
{
    for (int32_t l = 0; l < r->num_layers; l++) {
        int32_t gh, gw;
        fv_model_layer_grid(cfg, l, r->grid_h, r->grid_w, &gh, &gw);
        const double n = (double)gh * gw;
        for (int32_t h = 0; h < r->num_heads; h++) {
            double *d = &r->layer[l].attn[FV_DIAG_SPATIAL].head[h].density;
            *d = (*d * (n + 1) * (n + 1) - (2 * n + 1)) / (n * n);
        }
    }
}

/* Rename every head's "density" of a diagnostics JSON value to "mask_density" (its value made so above). */
static json_t *rename_density(json_t *j)
{
    static const char *const kinds[2] = { "spatial", "temporal" };
    size_t l, h;
    json_t *layer, *head;
    json_array_foreach(json_object_get(j, "layer"), l, layer)
        for (int k = 0; k < 2; k++)
            json_array_foreach(json_object_get(json_object_get(layer, kinds[k]), "heads"), h, head) {
                json_t *d = json_object_get(head, "density");
                if (d) {
                    json_object_set(head, "mask_density", d);
                    json_object_del(head, "density");
                }
            }
    return j;
}

/* The diagnostics of @r as a JSON value (a null on out of memory). */
static json_t *diag_json(const FvDiagResult *r, unsigned flags)
{
    char *text = fv_diag_result_json(r, flags);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j ? rename_density(j) : json_null();
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
        { "force", no_argument, NULL, 'X' },           { "models", required_argument, NULL, 'M' },
        FV_CLI_PRECISION_LONGOPT, FV_CLI_ATTN_LONGOPTS,
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
        case 'M': o.models = optarg; break;
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
        case FV_OPT_PRECISION:
            if (fv_cli_precision_option(CMD, optarg))
                return FV_EXIT_USAGE;
            break;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&o.attn, CMD, longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        default: return fv_cli_bad_option("diversity", argv, "m:o:t:qh", longopts);
        }
        if (bad) {
            fv_cli_bad_value(CMD, fv_cli_option_name(longopts, c, li), optarg, help);
            return FV_EXIT_USAGE;
        }
    }
    const int nds = !!o.ucf101 + !!o.hmdb51 + !!o.list;
    if (!o.out) {
        fv_cli_error(CMD, "--out DIR is required (see --help)");
        return FV_EXIT_USAGE;
    }
    if (o.model && o.models) {
        fv_cli_error(CMD, "give either -m MODEL or --models A,B (see --help)");
        return FV_EXIT_USAGE;
    }
    if (nds > 1 || (nds && optind < argc) || (!nds && optind >= argc) || (nds && !o.root)) {
        fv_cli_error(CMD, "give either clips or one of --ucf101/--hmdb51/--list with --root (see --help)");
        return FV_EXIT_USAGE;
    }

    fv_set_num_threads((int32_t)o.threads);

    /* the models */
    Run runs[MAX_MODELS];
    int nruns = 0;
    char models_buf[4096];
    memset(runs, 0, sizeof(runs));
    if (o.models) {
        if (strlen(o.models) >= sizeof(models_buf)) {
            fv_cli_error(CMD, "bad value for --models: too long");
            return FV_EXIT_USAGE;
        }
        strcpy(models_buf, o.models);
        for (char *save = NULL, *tok = strtok_r(models_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (nruns == MAX_MODELS) {
                fv_cli_error(CMD, "bad value for --models: at most %d models", MAX_MODELS);
                return FV_EXIT_USAGE;
            }
            runs[nruns++].path = tok;
        }
        if (nruns < 1) {
            fv_cli_error(CMD, "bad value '%s' for --models: comma-separated model paths", o.models);
            return FV_EXIT_USAGE;
        }
    } else {
        runs[nruns++].path = o.model ? o.model : fv_cli_default_model();
    }
    run_names(runs, nruns);

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
    Setting sets[MAX_SETS];
    int nsets = 0;
    json_t *clips_json = json_array(), *failures = json_array(), *top = NULL;
    FvReportClip *shown = NULL;
    int64_t nshown = 0, nok = 0;
    char *jpath = NULL, *hpath = NULL, *jtext = NULL;
    int32_t *layer_tokens = NULL;
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
    for (int r = 0; r < nruns; r++) {
        if ((rc = fv_cli_load_model(CMD, runs[r].path, &runs[r].m)) != 0)
            goto done;
        if ((ret = fv_cli_attn_apply(&o.attn, runs[r].m)) < 0) {
            fv_cli_error(CMD, "%s", fv_last_error());
            rc = FV_EXIT_USAGE;
            goto done;
        }
        const FvModelConfig *cfg = fv_model_config(runs[r].m), *cfg0 = fv_model_config(runs[0].m);
        runs[r].sp = cfg->spatial;
        runs[r].tp = cfg->temporal;
        if (cfg->num_layers != cfg0->num_layers || cfg->num_heads != cfg0->num_heads) {
            fv_cli_error(CMD, "%s: %d layers of %d heads, %s has %d of %d: the report compares models of one shape",
                         runs[r].path, cfg->num_layers, cfg->num_heads, runs[0].path, cfg0->num_layers, cfg0->num_heads);
            rc = FV_EXIT_INPUT;
            goto done;
        }
    }
    if (parse_compare(o.compare, runs, nruns, sets, &nsets) < 0) {
        fv_cli_error(CMD, "bad value '%s' for --compare (comma-separated, each once: model, dense, fib, sima, castling, "
                     "fib-spatial; at most %d settings over all models)", o.compare, MAX_SETS);
        nsets = 0;
        rc = FV_EXIT_USAGE;
        goto done;
    }
    for (int s = 0; s < nsets; s++)
        describe_setting(&sets[s], &runs[sets[s].run]);
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
    if (!shown) {
        fv_cli_error(CMD, "out of memory");
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    for (int r = 0; r < nruns; r++) {
        if (fv_state_create(&runs[r].st, runs[r].m) < 0 || fv_diag_create(&runs[r].diag) < 0 ||
            fv_state_set_diag(runs[r].st, runs[r].diag) < 0) {
            fv_cli_error(CMD, "out of memory");
            rc = FV_EXIT_RUNTIME;
            goto done;
        }
        if ((ret = fv_predict_clip_settings(runs[r].m, &o.pred, &runs[r].cs)) < 0) {
            fv_cli_error(CMD, "%s", fv_last_error());
            rc = FV_EXIT_USAGE;
            goto done;
        }
    }
    for (int s = 0; s < nsets; s++)
        if (fv_diag_agg_create(&sets[s].agg) < 0 || !(sets[s].shown = calloc((size_t)(nshown ? nshown : 1), sizeof(FvDiagResult)))) {
            fv_cli_error(CMD, "out of memory");
            rc = FV_EXIT_RUNTIME;
            goto done;
        }

    int64_t shown_i = 0;
    int fail_rc = FV_EXIT_OK;
    for (int64_t i = 0; i < npaths && rc == FV_EXIT_OK; i++) {
        const int progress = !o.quiet && isatty(STDERR_FILENO);
        if (progress)
            fprintf(stderr, "\r[%lld/%lld] %s\033[K", (long long)i + 1, (long long)npaths, paths[i]);
        /* every model's clip first: a clip one model cannot read is left out for all, so the columns compare
         * the same clips */
        int bad = -1;
        for (int r = 0; r < nruns && bad < 0; r++)
            if ((ret = fv_clip_load(paths[i], &runs[r].cs, &runs[r].clip)) < 0)
                bad = r;
        if (bad >= 0) {
            if (progress) /* the progress line goes before the error (often on the same terminal) */
                fputs("\r\033[K", stderr);
            fv_cli_error(CMD, "%s", fv_last_error()); /* a failure, not progress: printed under --quiet too */
            json_array_append_new(failures, json_pack("{s:s, s:s}", "path", paths[i], "reason", fv_last_error()));
            const int code = fv_cli_exit_code(ret); /* the run goes on; the worst code is the exit code */
            fail_rc = code > fail_rc ? code : fail_rc;
            for (int r = 0; r < bad; r++)
                fv_clip_free(&runs[r].clip);
            continue;
        }
        json_t *cj = json_pack("{s:s, s:{}}", "path", paths[i], "settings");
        const int keep = shown_i < nshown;
        for (int s = 0; s < nsets && rc == FV_EXIT_OK; s++) {
            Setting *set = &sets[s];
            Run *R = &runs[set->run];
            const int32_t V = R->clip.num_tviews * R->clip.num_sviews;
            fv_diag_reset(R->diag);
            if ((ret = fv_model_set_attention(R->m, &set->sp, &set->tp)) < 0) {
                fv_cli_error(CMD, "%s", fv_last_error());
                rc = FV_EXIT_USAGE;
                break;
            }
            if (!set->warned && fv_model_attention_tensors_missing(R->m) > 0) { /* once per setting */
                fv_cli_warn(CMD, "setting %s: the model has no weights for its kind's own tensors: taken as zero "
                            "(castling: no depthwise-convolution term)", set->name);
                set->warned = 1;
            }
            double t0 = fv_cli_now_ms();
            FvPredictResult pr;
            if ((ret = fv_predict_clip(R->st, &R->clip, &o.pred, &pr)) >= 0)
                fv_predict_result_free(&pr);
            set->forward_ms += fv_cli_now_ms() - t0;
            set->forwards += V;
            const FvDiagResult *r = ret >= 0 ? fv_diag_result(R->diag) : NULL;
            FvDiagResult cur = { 0 };
            if (!r || (ret = fv_diag_result_copy(&cur, r)) < 0) {
                fv_cli_error(CMD, "%s: %s", paths[i], fv_last_error());
                rc = fv_cli_exit_code(ret < 0 ? ret : FV_ENOMEM);
                break;
            }
            mask_density(&cur, fv_model_config(R->m));
            const double sim = fv_report_head_similarity(&cur);
            set->sim_sum += sim;
            set->sim_sq += sim * sim;
            if ((ret = fv_diag_agg_add(set->agg, &cur)) < 0 ||
                (keep && (ret = fv_diag_result_copy(&set->shown[shown_i], &cur)) < 0)) {
                fv_diag_result_free(&cur);
                fv_cli_error(CMD, "%s: %s", paths[i], fv_last_error());
                rc = fv_cli_exit_code(ret);
                break;
            }
            json_t *sj = diag_json(&cur, keep ? 0 : FV_DIAG_JSON_NO_CLS);
            if (json_is_object(sj))
                json_object_set_new(sj, "head_similarity", json_real(sim));
            json_object_set_new(json_object_get(cj, "settings"), set->name, sj);
            fv_diag_result_free(&cur);
        }
        if (rc == FV_EXIT_OK && keep) {
            shown[shown_i].name = paths[i];
            shown[shown_i].w = runs[0].clip.W;
            shown[shown_i].h = runs[0].clip.H;
            shown[shown_i].rgb = clip_frame(&runs[0].clip, &runs[0].cs);
            shown_i++;
        }
        json_array_append_new(clips_json, cj);
        nok++;
        for (int r = 0; r < nruns; r++)
            fv_clip_free(&runs[r].clip);
    }
    if (!o.quiet && isatty(STDERR_FILENO))
        fputs("\r\033[K", stderr);
    for (int r = 0; r < nruns; r++)
        fv_model_set_attention(runs[r].m, &runs[r].sp, &runs[r].tp);
    if (rc != FV_EXIT_OK)
        goto done;
    if (nok == 0) {
        fv_cli_error(CMD, "no clip could be read");
        rc = FV_EXIT_INPUT;
        goto done;
    }

    /* aggregate, diversity.json */
    const int64_t nfailed = (int64_t)json_array_size(failures);
    top = json_object();
    json_t *models = json_array();
    for (int r = 0; r < nruns; r++)
        json_array_append_new(models, json_string(runs[r].path));
    json_object_set_new(top, "model", json_string(runs[0].path));
    json_object_set_new(top, "models", models);
    json_object_set_new(top, "num_clips", json_integer(nok));
    json_object_set_new(top, "num_failed", json_integer((json_int_t)nfailed));
    json_object_set_new(top, "head_similarity_definition",
                        json_string("mean over layers and over spatial and temporal attention of the off-diagonal "
                                    "mean linear CKA of the head outputs; per clip, then mean and population standard "
                                    "deviation over clips"));
    json_t *agg = json_object(), *cmp = json_array(), *timing = json_object(), *setj = json_object();
    json_object_set_new(top, "settings", setj);
    json_object_set_new(top, "compare", cmp);
    json_object_set_new(top, "timing", timing);
    json_object_set_new(top, "aggregate", agg);
    for (int s = 0; s < nsets; s++) {
        Setting *set = &sets[s];
        if ((ret = fv_diag_agg_get(set->agg, &set->mean, &set->std)) < 0) {
            fv_cli_error(CMD, "%s", fv_last_error());
            rc = fv_cli_exit_code(ret);
            goto done;
        }
        const double m = set->sim_sum / (double)nok, var = set->sim_sq / (double)nok - m * m;
        char sa[160], ta[160]; /* as run: windows resolved */
        fv_attn_describe(&set->mean.spatial, FV_ATTN_DESCRIBE_SHORT, sa, sizeof(sa));
        fv_attn_describe(&set->mean.temporal, FV_ATTN_DESCRIBE_SHORT, ta, sizeof(ta));
        const int own = set->sp.kind == runs[set->run].sp.kind && set->tp.kind == runs[set->run].tp.kind;
        json_object_set_new(setj, set->name,
                            json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:{s:f, s:f, s:I}}", "model", runs[set->run].path,
                                      "compare", set->kind, "spatial_attention", sa, "temporal_attention", ta,
                                      "own_attention", own, "description", set->label, "head_similarity", "mean", m,
                                      "std", var > 0.0 ? sqrt(var) : 0.0, "clips", (json_int_t)nok));
        json_object_set_new(agg, set->name, json_pack("{s:o, s:o}", "mean", diag_json(&set->mean, 0),
                                                      "std", diag_json(&set->std, 0)));
        json_object_set_new(timing, set->name,
                            json_pack("{s:f, s:I}", "forward_ms_mean", set->forward_ms / (double)set->forwards,
                                      "forwards", (json_int_t)set->forwards));
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
    json_object_set(top, "clips", clips_json);
    json_object_set(top, "failures", failures);
    jpath = fv_cli_path_join(o.out, "diversity.json");
    hpath = fv_cli_path_join(o.out, "report.html");
    jtext = json_dumps(top, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (!jpath || !hpath || !jtext) {
        fv_cli_error(CMD, "out of memory");
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    if ((ret = fv_write_file_atomic(jpath, jtext, strlen(jtext))) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = FV_EXIT_RUNTIME;
        goto done;
    }

    /* report.html */
    FvReportSetting rs[MAX_SETS];
    const FvDiagResult *shown_r[MAX_SETS][64];
    memset(rs, 0, sizeof(rs));
    if (!(layer_tokens = calloc((size_t)nsets * (size_t)L, sizeof(int32_t)))) {
        fv_cli_error(CMD, "out of memory");
        rc = FV_EXIT_RUNTIME;
        goto done;
    }
    for (int s = 0; s < nsets; s++) {
        for (int32_t l = 0; l < L; l++) { /* PSViT: the pooled grid the layer's masks span */
            int32_t gh, gw;
            fv_model_layer_grid(fv_model_config(runs[sets[s].run].m), l, sets[s].mean.grid_h, sets[s].mean.grid_w,
                                &gh, &gw);
            layer_tokens[(size_t)s * L + l] = gh * gw;
        }
        rs[s].layer_tokens = layer_tokens + (size_t)s * L;
        const double m = sets[s].sim_sum / (double)nok, var = sets[s].sim_sq / (double)nok - m * m;
        rs[s].name = sets[s].name;
        rs[s].label = sets[s].label;
        rs[s].mean = &sets[s].mean;
        rs[s].std = &sets[s].std;
        for (int64_t k = 0; k < shown_i; k++)
            shown_r[s][k] = &sets[s].shown[k];
        rs[s].clip = shown_r[s];
        rs[s].has_similarity = 1;
        rs[s].similarity = m;
        rs[s].similarity_std = var > 0.0 ? sqrt(var) : 0.0;
    }
    char sub[2048], mlist[1024] = "";
    for (int r = 0; r < nruns; r++)
        snprintf(mlist + strlen(mlist), sizeof(mlist) - strlen(mlist), "%s%s", r ? ", " : "", runs[r].path);
    const int nviews = (int)(o.pred.temporal_views * o.pred.spatial_views);
    snprintf(sub, sizeof(sub), "%s %s: %d %s, %d %s, %d %s, %dx%d patches of %d px; %lld %s (%lld could not be read); "
             "%d %s per clip.", nruns > 1 ? "models" : "model", mlist, L, fv_cli_plural(L, "layer", "layers"), H,
             fv_cli_plural(H, "head", "heads"), sets[0].mean.frames, fv_cli_plural(sets[0].mean.frames, "frame", "frames"),
             sets[0].mean.grid_h, sets[0].mean.grid_w, sets[0].mean.patch_size, (long long)nok,
             fv_cli_plural((long)nok, "clip", "clips"), (long long)nfailed, nviews, fv_cli_plural(nviews, "view", "views"));
    if ((ret = fv_report_diversity_html(hpath, "fibvid head diversity", sub, shown, (int32_t)shown_i, rs, nsets)) < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        rc = fv_cli_exit_code(ret);
        goto done;
    }

    /* the figures that matter, on stdout */
    printf("mean pairwise head similarity (linear CKA of head outputs, mean over layers and attentions; mean and "
           "std over %lld %s)\n", (long long)nok, fv_cli_plural((long)nok, "clip", "clips"));
    for (int s = 0; s < nsets; s++)
        printf("  %-24s %.4f +- %.4f\n", sets[s].name, rs[s].similarity, rs[s].similarity_std);
    printf("per layer (off-diagonal mean CKA, mean over clips)\n%-6s", "layer");
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
    if (nfailed > 0) /* as classify: the clips that worked are reported, the exit code says some did not */
        rc = fail_rc > FV_EXIT_INPUT ? fail_rc : FV_EXIT_INPUT;

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
    for (int r = 0; r < nruns; r++) {
        fv_clip_free(&runs[r].clip);
        fv_state_close(&runs[r].st);
        fv_diag_close(&runs[r].diag);
        fv_model_close(&runs[r].m);
    }
    free(jpath);
    free(hpath);
    free(jtext);
    free(layer_tokens);
    json_decref(top);
    json_decref(clips_json);
    json_decref(failures);
    for (int64_t i = 0; paths && i < npaths; i++)
        free(paths[i]);
    free(paths);
    fv_dataset_free(&ds);
    return rc;
}
