/* `fibvid bench`: times the forward pass (min/median; GFLOP/s from the FLOPs the forward executes,
 * fv_model_flops_executed: the model's analytic count less what inference on prepared weights leaves out without
 * changing the logits, the folded temporal projection and the last block's non-cls rows), and
 * `fibvid bench attention`: the attention kernels alone, every kind against dense, on the same q/k/v. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU time of the process (every thread) in ms: with -t 1 an iteration's compute time whatever else runs */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void help_model(FILE *f)
{
    fprintf(f,
        "usage: fibvid bench [-m MODEL | --config base|small|tiny|synth|test] [options]\n"
        "       fibvid bench attention [options]   (see fibvid bench attention --help)\n"
        "\n"
        "Times the forward pass of one view on random input. --config uses random weights (no checkpoint).\n"
        "\n"
        "  -m, --model PATH     model to time (default: $FIBVID_MODEL, else the bundled default model)\n"
        "      --config NAME    a preset with random weights instead of a model: Fibottention in both\n"
        "                       attentions, as `fibvid train --config NAME` starts it (--spatial-attn dense\n"
        "                       --temporal-attn dense for the Hugging Face model's dense attention)\n"
        "      --frames N       frames (default: the model's num_frames)\n"
        "      --size N         input height and width (default: the model's image_size)\n"
        "      --iters N        timed iterations after one warm-up (default 5)\n"
        "      --precision LIST precisions to time, each against the machine's peak for it measured at the start\n"
        "                       (a register-only FMA loop for fp32, vdpbf16ps for bf16): fp32, bf16, fp32,bf16 or\n"
        "                       bf16,fp32, in that order (default: fp32, and bf16 where the CPU has it)\n"
        "  -t, --threads N      threads (default: all cores)\n"
        "  -f, --format FMT     text|json (default text; json also gives per precision cpu_min_ms, the least\n"
        "                       process CPU time of an iteration: with -t 1 its compute time on a busy machine)\n"
        "  -h, --help           this help\n"
        "%s%s", fv_cli_attn_help, fv_cli_psvit_help);
}

static void help_attn(FILE *f)
{
    fprintf(f,
        "usage: fibvid bench attention [--tokens N] [--frames T] [--heads H] [--head-dim D] [options]\n"
        "\n"
        "Times spatial attention (T sequences of N tokens, cls included) and temporal attention\n"
        "(N-1 sequences of T tokens) of one clip-layer for every kind (dense, fib-zero, fib-exclude, sima,\n"
        "castling) on the same random q/k/v. GFLOP is the kind's analytic count (the one fibvid bench uses);\n"
        "density the attended fraction of the N x N pairs (linear kinds form no matrix: 100%%).\n"
        "Tokens are counted as everywhere in fibvid (masks, info): patches per frame, cls not included;\n"
        "spatial attention runs over them plus cls.\n"
        "\n"
        "      --tokens N       patch tokens per frame, cls not counted (default 196 = 224x224 / 16x16)\n"
        "      --frames T       frames (default 8)\n"
        "      --heads H        heads (default 12)\n"
        "      --head-dim D     head dimension (default 64)\n"
        "      --iters N        timed iterations (default 5)\n"
        "      --fib-variant modified|original (default modified)\n"
        "      --kinds LIST     comma-separated kinds or rows to time, e.g. dense,sima or fib-exclude\n"
        "                       (default: all; the speed-up column needs dense)\n"
        "      --precision LIST fp32, bf16 or fp32,bf16 (default: fp32, and bf16 where the CPU has it). With\n"
        "                       bf16, also the row dense-bf16: the kernel bf16 inference runs for dense\n"
        "                       attention (AVX512-BF16, head_dim a multiple of 16). bf16 inference runs the\n"
        "                       other kinds' fp32 kernels, so their rows hold for both precisions.\n"
        "  -t, --threads N      threads (default: all cores)\n"
        "  -f, --format FMT     text|json (default text)\n"
        "  -h, --help           this help\n");
}

static int bench_attention(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "tokens", required_argument, NULL, 'N' }, { "frames", required_argument, NULL, 'T' },
        { "heads", required_argument, NULL, 'H' },  { "head-dim", required_argument, NULL, 'D' },
        { "iters", required_argument, NULL, 'i' },  { "fib-variant", required_argument, NULL, 'v' },
        { "threads", required_argument, NULL, 't' }, { "format", required_argument, NULL, 'f' },
        { "kinds", required_argument, NULL, 'k' },  { "help", no_argument, NULL, 'h' },
        { "precision", required_argument, NULL, 'p' }, { NULL, 0, NULL, 0 },
    };
    long N = 196, T = 8, H = 12, D = 64, iters = 5, threads = 0;
    int bf16 = fv_precision_supported(FV_PRECISION_BF16);
    const char *kinds = NULL;
    FvFibVariant variant = FV_FIB_MODIFIED;
    FvOutFormat fmt = FV_OUT_TEXT;
    int c, li;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:f:h", longopts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case 'N': bad = fv_cli_parse_int(optarg, 1, 1 << 16, &N); break;
        case 'T': bad = fv_cli_parse_int(optarg, 1, 4096, &T); break;
        case 'H': bad = fv_cli_parse_int(optarg, 1, 256, &H); break;
        case 'D': bad = fv_cli_parse_int(optarg, 1, 1024, &D); break;
        case 'i': bad = fv_cli_parse_int(optarg, 1, 100000, &iters); break;
        case 't': bad = fv_cli_parse_int(optarg, 1, 1024, &threads); break;
        case 'v':
            if (!strcmp(optarg, "modified")) variant = FV_FIB_MODIFIED;
            else if (!strcmp(optarg, "original")) variant = FV_FIB_ORIGINAL;
            else bad = -1;
            break;
        case 'f': bad = fv_cli_parse_format(optarg, 1u << FV_OUT_TEXT | 1u << FV_OUT_JSON, &fmt); break;
        case 'k': kinds = optarg; break;
        case 'p': {
            FvPrecision precs[2];
            int n;
            if (fv_cli_precision_list("bench attention", optarg, precs, &n))
                return FV_EXIT_USAGE;
            bf16 = n == 2 || precs[0] == FV_PRECISION_BF16; /* two entries: both precisions */
            break;
        }
        case 'h': help_attn(stdout); return FV_EXIT_OK;
        default: return fv_cli_bad_option("bench attention", argv, "t:f:h", longopts);
        }
        if (bad) {
            fv_cli_error("bench attention", "bad value '%s' for --%s (valid: %s)", optarg,
                         c == 't' ? "threads" : c == 'f' ? "format" : longopts[li].name,
                         c == 'f' ? "text, json" : c == 'v' ? "modified, original" : c == 'N' ? "1..65536"
                         : c == 'T' ? "1..4096" : c == 'H' ? "1..256" : c == 'D' ? "1..1024"
                         : c == 'i' ? "1..100000" : "1..1024");
            return FV_EXIT_USAGE;
        }
    }
    fv_set_num_threads((int32_t)threads);
    /* the kernel harness on one layer of one clip, timing only */
    FvAttnCheckSettings cs;
    fv_attn_check_default_settings(&cs);
    cs.tokens = (int32_t)N + 1; /* the harness counts the spatial sequence: patches + cls */
    cs.frames = (int32_t)T;
    cs.heads = (int32_t)H;
    cs.head_dim = (int32_t)D;
    cs.variant = variant;
    cs.check = 0;
    cs.backward = 0;
    cs.iters = (int32_t)iters;
    cs.kinds = kinds;
    cs.bf16 = bf16;
    FvAttnCheckRow *rows = NULL;
    int32_t nrows = 0;
    if (fv_attn_check(&cs, &rows, &nrows) < 0) {
        fv_cli_error("bench attention", "%s", fv_last_error());
        return kinds ? FV_EXIT_USAGE : FV_EXIT_RUNTIME;
    }
    json_t *res = json_array();
    if (fmt == FV_OUT_TEXT)
        printf("%-9s %-12s %8s %10s %10s %9s %8s %8s\n", "attention", "kind", "tokens", "min_ms", "median_ms",
               "density", "GFLOP", "speedup");
    double dense_min = 0;
    int dense_rows = 0, bf16_rows = 0;
    for (int32_t i = 0; i < nrows; i++) {
        const FvAttnCheckRow *r = &rows[i];
        if (strcmp(r->entry, "forward"))
            continue;
        if (!strcmp(r->kind, "dense"))
            dense_min = r->min_ms;
        dense_rows += !strcmp(r->kind, "dense");
        bf16_rows += !strcmp(r->kind, "dense-bf16");
        const char *att = r->spatial ? "spatial" : "temporal";
        const double speedup = dense_min > 0 ? dense_min / r->min_ms : 0.0; /* 0: no dense row */
        const int32_t tokens = r->spatial ? r->tokens - 1 : r->tokens; /* patches (cls not counted) / frames */
        if (fmt == FV_OUT_TEXT) {
            char sp[32] = "       -";
            if (speedup > 0)
                snprintf(sp, sizeof(sp), "%7.1fx", speedup);
            printf("%-9s %-12s %8d %10.3f %10.3f %8.2f%% %8.4f %s\n", att, r->kind, tokens, r->min_ms,
                   r->median_ms, 100 * r->density, r->gflop, sp);
        } else {
            json_array_append_new(res, json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:o}",
                "attention", att, "kind", r->kind, "precision", strcmp(r->kind, "dense-bf16") ? "fp32" : "bf16",
                "tokens", tokens, "sequences", r->sequences, "heads",
                r->heads, "head_dim", r->head_dim, "min_ms", r->min_ms, "median_ms", r->median_ms, "density",
                r->density, "gflop", r->gflop, "speedup_vs_dense", speedup > 0 ? json_real(speedup) : json_null()));
        }
    }
    if (bf16 && dense_rows && !bf16_rows)
        fv_cli_warn("bench attention", "no dense-bf16 row: its kernel needs a head_dim that is a multiple of 16 (%ld "
                    "here); bf16 inference runs dense attention's fp32 kernel for this shape", D);
    if (fmt == FV_OUT_JSON) {
        char *js = json_dumps(res, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        puts(js);
        free(js);
    }
    json_decref(res);
    free(rows);
    return FV_EXIT_OK;
}

int fv_cli_bench(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "attention"))
        return bench_attention(argc - 1, argv + 1);
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' }, { "config", required_argument, NULL, 'c' },
        { "frames", required_argument, NULL, 'T' }, { "size", required_argument, NULL, 'S' },
        { "iters", required_argument, NULL, 'i' }, { "threads", required_argument, NULL, 't' },
        { "format", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' },
        { "token-pool", required_argument, NULL, 'P' }, { "share-spatial", required_argument, NULL, 's' },
        { "share-temporal", required_argument, NULL, 'r' }, FV_CLI_ATTN_LONGOPTS,
        { "precision", required_argument, NULL, 'p' }, { NULL, 0, NULL, 0 },
    };
    FvPrecision precs[2] = { FV_PRECISION_FP32, FV_PRECISION_BF16 };
    int nprec = fv_precision_supported(FV_PRECISION_BF16) ? 2 : 1;
    const char *model = NULL, *config = NULL;
    FvTokenPool pools[FV_MAX_POOLS];
    int32_t npools = 0;
    uint64_t shs = 0, sht = 0;
    long T = 0, S = 0, iters = 5, threads = 0; /* 0: the model's own */
    FvOutFormat fmt = FV_OUT_TEXT;
    FvAttnOverrides ov;
    fv_cli_attn_overrides_init(&ov);
    int c, li;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:f:h", longopts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': config = optarg; break;
        case 'T': bad = fv_cli_parse_int(optarg, 1, 1024, &T); break;
        case 'S': bad = fv_cli_parse_int(optarg, 1, 8192, &S); break;
        case 'i': bad = fv_cli_parse_int(optarg, 1, 100000, &iters); break;
        case 't': bad = fv_cli_parse_int(optarg, 1, 1024, &threads); break;
        case 'f': bad = fv_cli_parse_format(optarg, 1u << FV_OUT_TEXT | 1u << FV_OUT_JSON, &fmt); break;
        case 'P': bad = fv_cli_parse_pools(optarg, pools, &npools); break;
        case 's': bad = fv_cli_parse_layers(optarg, &shs); break;
        case 'r': bad = fv_cli_parse_layers(optarg, &sht); break;
        case 'h': help_model(stdout); return FV_EXIT_OK;
        case FV_OPT_ATTN:
            if (fv_cli_attn_option(&ov, "bench", longopts[li].name, optarg) < 0)
                return FV_EXIT_USAGE;
            break;
        case 'p':
            if (fv_cli_precision_list("bench", optarg, precs, &nprec))
                return FV_EXIT_USAGE;
            break;
        default: return fv_cli_bad_option("bench", argv, "m:t:f:h", longopts);
        }
        if (bad) {
            fv_cli_error("bench", "bad value '%s' for --%s (valid: %s)", optarg,
                         c == 't' ? "threads" : c == 'f' ? "format" : longopts[li].name,
                         c == 'f' ? "text, json" : c == 'P' ? "AFTER:KIND,... with KIND avg, max or conv"
                         : c == 's' || c == 'r' ? "layer numbers, e.g. 2,3" : c == 'T' ? "1..1024"
                         : c == 'S' ? "1..8192" : c == 'i' ? "1..100000" : "1..1024");
            return FV_EXIT_USAGE;
        }
    }
    if (model && config) {
        fv_cli_error("bench", "give either -m or --config, not both");
        return FV_EXIT_USAGE;
    }
    if (model && (npools || shs || sht)) {
        fv_cli_error("bench", "--token-pool and --share-* change a model's structure: they go with --config");
        return FV_EXIT_USAGE;
    }
    fv_set_num_threads((int32_t)threads);
    FvModel *m = NULL;
    int rc;
    if (!config) {
        /* loaded in fp32 where fp32 is timed (bf16 is prepared from it; a model loaded in bf16 keeps no fp32
         * weights), else in bf16 */
        const int fp32 = nprec == 2 || precs[0] == FV_PRECISION_FP32; /* two entries: both precisions */
        if ((rc = fv_cli_precision_option("bench", fp32 ? "fp32" : "bf16")) ||
            (rc = fv_cli_load_model("bench", model, &m)))
            return rc;
        if (!model)
            model = fv_cli_default_model();
    } else {
        FvModelConfig cfg;
        if (fv_model_config_preset(&cfg, config) < 0) {
            fv_cli_error("bench", "unknown --config '%s' (valid: base, small, tiny, synth, test)", config);
            return FV_EXIT_USAGE;
        }
        cfg.spatial.kind = cfg.temporal.kind = FV_ATTN_FIB; /* the presets as `fibvid train` makes them */
        fv_cli_attn_resolve(&ov, &cfg.spatial, &cfg.temporal); /* random weights for the kinds' own tensors too */
        if (npools) {
            cfg.num_pools = npools;
            memcpy(cfg.pools, pools, sizeof(pools));
        }
        cfg.share_spatial = shs;
        cfg.share_temporal = sht;
        int ret = fv_model_create_random(&m, &cfg, 42);
        if (ret < 0) {
            fv_cli_error("bench", "%s", fv_last_error());
            return fv_cli_exit_code(ret);
        }
    }
    int ret = fv_cli_attn_apply(&ov, m);
    const FvModelConfig *cf = fv_model_config(m);
    if (!T)
        T = cf->num_frames;
    if (!S)
        S = cf->image_size;
    if (ret >= 0 && S % cf->patch_size) {
        fv_cli_error("bench", "--size %ld is not a multiple of the patch size %d", S, cf->patch_size);
        fv_model_close(&m);
        return FV_EXIT_USAGE;
    }
    const int64_t n = T * 3 * S * S;
    float *x = malloc(sizeof(float) * n), *logits = malloc(sizeof(float) * cf->num_labels);
    double *times = malloc(sizeof(double) * (size_t)iters);
    rc = FV_EXIT_OK;
    if (ret < 0 || !x || !logits || !times) {
        fv_cli_error("bench", "%s", ret < 0 ? fv_last_error() : "out of memory");
        rc = ret < 0 ? FV_EXIT_USAGE : FV_EXIT_RUNTIME;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) /* any spread of values in [-1, 1] times the same */
        x[i] = (float)(((uint64_t)i * 2654435761u) % 2001u) / 1000.0f - 1.0f;
    /* the peaks first, on idle cores, then each precision: one warm-up, @iters timed */
    double peak[2], mn[2], med[2], cpu[2], exe[2];
    for (int k = 0; k < nprec; k++)
        peak[k] = fv_peak_gflops(precs[k], 0.25);
    const double flops = fv_model_flops(m, (int32_t)T, (int32_t)S, (int32_t)S);
    for (int k = 0; k < nprec; k++) {
        if ((ret = fv_model_set_precision(m, precs[k])) < 0 ||
            (ret = fv_model_forward(m, x, (int32_t)T, (int32_t)S, (int32_t)S, logits)) < 0) {
            fv_cli_error("bench", "%s", fv_last_error());
            rc = fv_cli_exit_code(ret);
            goto done;
        }
        exe[k] = fv_model_flops_executed(m, (int32_t)T, (int32_t)S, (int32_t)S); /* as prepared for precs[k] */
        cpu[k] = INFINITY;
        for (long i = 0; i < iters; i++) {
            const double t0 = fv_cli_now_ms(), c0 = cpu_ms();
            fv_model_forward(m, x, (int32_t)T, (int32_t)S, (int32_t)S, logits);
            times[i] = fv_cli_now_ms() - t0;
            cpu[k] = fmin(cpu[k], cpu_ms() - c0);
        }
        med[k] = median(times, (int)iters);
        mn[k] = times[0];
    }
    char sa[128], ta[128];
    fv_attn_describe(&cf->spatial, 0, sa, sizeof(sa));
    fv_attn_describe(&cf->temporal, 0, ta, sizeof(ta));
    if (fmt == FV_OUT_JSON) {
        /* the top-level figures are the first precision's; "precisions" has each */
        json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:{s:s, s:s}, s:I}",
            "model", model ? model : config, "frames", (int)T, "size", (int)S, "threads",
            fv_num_threads(), "gemm", fv_gemm_backend_current(), "iters", (int)iters, "min_ms", mn[0], "median_ms",
            med[0], "gflop", flops * 1e-9, "gflops", exe[0] * 1e-9 / (mn[0] * 1e-3), "peak_rss_mb", peak_rss_mb(),
            "attention", "spatial", sa, "temporal", ta, "params", (json_int_t)fv_model_num_params(m));
        json_object_set_new(j, "gflop_executed", json_real(exe[0] * 1e-9));
        json_object_set_new(j, "token_pools", json_integer(cf->num_pools));
        json_object_set_new(j, "shared_attentions", json_integer(__builtin_popcountll(cf->share_spatial) +
                                                                  __builtin_popcountll(cf->share_temporal)));
        json_t *pa = json_array();
        for (int k = 0; k < nprec; k++) {
            const double g = exe[k] * 1e-9 / (mn[k] * 1e-3);
            json_t *e = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f}", "precision", fv_precision_name(precs[k]), "isa",
                                  fv_precision_isa(precs[k]), "min_ms", mn[k], "median_ms", med[k], "gflops", g,
                                  "peak_gflops", peak[k]);
            json_object_set_new(e, "peak_fraction", peak[k] > 0 ? json_real(g / peak[k]) : json_null());
            json_object_set_new(e, "cpu_min_ms", json_real(cpu[k]));
            json_object_set_new(e, "gflop_executed", json_real(exe[k] * 1e-9));
            json_object_set_new(e, "speedup_vs_first", json_real(mn[0] / mn[k]));
            json_array_append_new(pa, e);
        }
        json_object_set_new(j, "precision", json_string(fv_precision_name(precs[0])));
        json_object_set_new(j, "precisions", pa);
        char *js = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        puts(js);
        free(js);
        json_decref(j);
    } else {
        printf("model      %s (%.1f M parameters)\n", model ? model : config,
               fv_model_num_params(m) * 1e-6);
        printf("input      %ld %s x %ldx%ld, %d %s, GEMM %s\n", T, fv_cli_plural(T, "frame", "frames"), S, S,
               fv_num_threads(), fv_cli_plural(fv_num_threads(), "thread", "threads"), fv_gemm_backend_current());
        printf("attention  spatial %s, temporal %s\n", sa, ta);
        if (cf->num_pools || cf->share_spatial || cf->share_temporal) {
            static const char *const pk[] = { "avg", "max", "conv" };
            printf("psvit     ");
            for (int32_t i = 0; i < cf->num_pools; i++)
                printf(" pool %s after %d;", pk[(int)cf->pools[i].kind], cf->pools[i].after);
            printf(" %d spatial and %d temporal attentions share the previous layer's weights\n",
                   __builtin_popcountll(cf->share_spatial), __builtin_popcountll(cf->share_temporal));
        }
        printf("compute    %.1f GFLOP per forward pass (the model's)\n", flops * 1e-9);
        for (int k = 0; k < nprec; k++) {
            const double g = exe[k] * 1e-9 / (mn[k] * 1e-3);
            printf("%-10s min %.1f ms, median %.1f ms over %ld iterations; executes %.1f GFLOP: %.1f GFLOP/s at the "
                   "minimum = %.0f%% of the %s peak %.0f GFLOP/s (%s loop, measured now); products: %s",
                   fv_precision_name(precs[k]), mn[k], med[k], iters, exe[k] * 1e-9, g,
                   peak[k] > 0 ? 100 * g / peak[k] : 0.0, fv_precision_name(precs[k]),
                   peak[k], precs[k] == FV_PRECISION_BF16 ? "vdpbf16ps" : "FMA", fv_precision_isa(precs[k]));
            if (k)
                printf("; %.2fx %s", mn[0] / mn[k], fv_precision_name(precs[0]));
            printf("\n");
        }
        printf("memory     peak RSS %.0f MB\n", peak_rss_mb());
    }
done:
    free(x);
    free(logits);
    free(times);
    fv_model_close(&m);
    return rc;
}
