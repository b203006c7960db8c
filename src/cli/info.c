/* `fibvid info`: what a model is — architecture, parameters, labels, preprocessing, attention kinds. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: fibvid info [-m MODEL] [-f text|json]\n"
            "\n"
            "  -m, --model PATH   model to describe (default: $FIBVID_MODEL, else the bundled default)\n"
            "  -f, --format FMT   text|json (default text)\n"
            "  -h, --help         this help\n"
            "\nExit codes: 0 success, 1 usage error, 2 model could not be read, 3 runtime failure.\n");
}

/* The Fibottention windows the model runs with (defaults resolved over its token count), as numbers; 0 when the
 * kind is not fib. */
static int resolved_windows(const FvAttnSettings *a, int32_t tokens, int32_t heads, int temporal, int32_t *wmin,
                            int32_t *wmax)
{
    *wmin = *wmax = 0;
    FvAttnMasks *mk = NULL;
    if (a->kind != FV_ATTN_FIB || fv_attn_masks_create(&mk, a, tokens, heads, 1, temporal) < 0)
        return 0;
    *wmin = fv_attn_masks_settings(mk)->wmin;
    *wmax = fv_attn_masks_settings(mk)->wmax;
    fv_attn_masks_close(&mk);
    return 1;
}

static json_t *attn_json(const FvAttnSettings *a, int32_t tokens, int32_t heads, int temporal)
{
    json_t *j = json_object();
    int32_t wmin, wmax;
    json_object_set_new(j, "kind", json_string(fv_attn_kind_name(a->kind)));
    if (a->kind == FV_ATTN_FIB) {
        json_object_set_new(j, "variant", json_string(a->variant == FV_FIB_MODIFIED ? "modified" : "original"));
        json_object_set_new(j, "semantics", json_string(a->semantics == FV_FIB_ZERO ? "zero" : "exclude"));
        json_object_set_new(j, "wmin", a->wmin > 0 ? json_integer(a->wmin) : json_string("default"));
        json_object_set_new(j, "wmax", a->wmax > 0 ? json_integer(a->wmax) : json_string("default"));
        json_object_set_new(j, "shuffle", json_boolean(a->shuffle));
        if (resolved_windows(a, tokens, heads, temporal, &wmin, &wmax))
            json_object_set_new(j, "windows", json_pack("{s:i, s:i, s:i}", "wmin", wmin, "wmax", wmax, "tokens",
                                                        tokens));
    }
    return j;
}

/* PSViT (SPEC 4.3): the layers' patch grids at the model's size, the poolings and the sharing layers. */
static json_t *psvit_json(const FvModelConfig *cf)
{
    static const char *const pk[] = { "avg", "max", "conv" };
    const int32_t g = cf->image_size / cf->patch_size;
    json_t *j = json_object(), *pools = json_array(), *grids = json_array(), *ss = json_array(), *st = json_array();
    for (int32_t i = 0; i < cf->num_pools; i++)
        json_array_append_new(pools, json_pack("{s:i, s:s}", "after", cf->pools[i].after, "kind",
                                               pk[(int)cf->pools[i].kind]));
    for (int32_t l = 0; l < cf->num_layers; l++) {
        int32_t gh, gw;
        fv_model_layer_grid(cf, l, g, g, &gh, &gw);
        json_array_append_new(grids, json_pack("[i, i]", gh, gw));
        if (cf->share_spatial >> l & 1)
            json_array_append_new(ss, json_integer(l));
        if (cf->share_temporal >> l & 1)
            json_array_append_new(st, json_integer(l));
    }
    json_object_set_new(j, "token_pool", pools);
    json_object_set_new(j, "share_spatial", ss);
    json_object_set_new(j, "share_temporal", st);
    json_object_set_new(j, "layer_grids", grids);
    return j;
}

static void psvit_text(const FvModelConfig *cf)
{
    static const char *const pk[] = { "avg", "max", "conv" };
    const int32_t g = cf->image_size / cf->patch_size;
    if (!cf->num_pools && !cf->share_spatial && !cf->share_temporal)
        return;
    printf("psvit          (fibvid's reconstruction of PSViT)\n");
    for (int32_t i = 0; i < cf->num_pools; i++) {
        int32_t gh, gw, ph, pw;
        fv_model_layer_grid(cf, cf->pools[i].after, g, g, &gh, &gw);
        fv_model_layer_grid(cf, cf->pools[i].after + 1, g, g, &ph, &pw);
        printf("  pooling      after layer %d: %s, %dx%d -> %dx%d patches per frame\n", cf->pools[i].after,
               pk[(int)cf->pools[i].kind], gh, gw, ph, pw);
    }
    for (int a = 0; a < 2; a++) {
        const uint64_t bits = a ? cf->share_temporal : cf->share_spatial;
        if (!bits)
            continue;
        printf("  sharing      %s:", a ? "temporal" : "spatial");
        for (int32_t l = 0; l < FV_MAX_SHARE_LAYERS; l++)
            if (bits >> l & 1)
                printf(" layer %d applies layer %d's weights;", l, l - 1);
        printf("\n");
    }
}

int fv_cli_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *model = NULL;
    FvOutFormat fmt = FV_OUT_TEXT;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'f':
            if (fv_cli_parse_format(optarg, 1u << FV_OUT_TEXT | 1u << FV_OUT_JSON, &fmt) < 0) {
                fv_cli_error("info", "bad value '%s' for --format (valid: text, json)", optarg);
                return FV_EXIT_USAGE;
            }
            break;
        case 'h': help(stdout); return FV_EXIT_OK;
        default: return fv_cli_bad_option("info", argv, "m:f:h", longopts);
        }
    }
    if (optind < argc) {
        fv_cli_error("info", "unexpected argument '%s'", argv[optind]);
        return FV_EXIT_USAGE;
    }
    FvModel *m = NULL;
    int rc = fv_cli_load_model("info", model, &m);
    if (rc)
        return rc;
    const FvModelConfig *cf = fv_model_config(m);
    const int32_t P = (cf->image_size / cf->patch_size) * (cf->image_size / cf->patch_size);
    const double gflop = fv_model_flops(m, cf->num_frames, cf->image_size, cf->image_size) * 1e-9;
    if (fmt == FV_OUT_JSON) {
        json_t *j = json_object();
        json_object_set_new(j, "path", json_string(model ? model : fv_cli_default_model()));
        json_object_set_new(j, "architecture", json_string("timesformer-divided-space-time"));
        json_object_set_new(j, "num_params", json_integer(fv_model_num_params(m)));
        json_object_set_new(j, "config", json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:b}",
            "image_size", cf->image_size, "patch_size", cf->patch_size, "num_frames", cf->num_frames,
            "hidden_size", cf->hidden_size, "num_hidden_layers", cf->num_layers, "num_attention_heads",
            cf->num_heads, "intermediate_size", cf->intermediate_size, "num_labels", cf->num_labels,
            "layer_norm_eps", (double)cf->layer_norm_eps, "qkv_bias", cf->qkv_bias));
        json_object_set_new(j, "tokens", json_pack("{s:i, s:i}", "patches_per_frame", P, "total",
                                                   1 + P * cf->num_frames));
        json_object_set_new(j, "gflop_per_view", json_real(gflop));
        json_object_set_new(j, "preprocessing", json_pack("{s:s, s:i, s:i, s:i, s:[f,f,f], s:[f,f,f]}",
            "sampling", fv_cli_sampling_name(cf->sampling), "sampling_rate", cf->sampling_rate, "short_side",
            cf->short_side ? cf->short_side : cf->image_size, "crop_size", cf->image_size,
            "image_mean", (double)cf->image_mean[0], (double)cf->image_mean[1], (double)cf->image_mean[2],
            "image_std", (double)cf->image_std[0], (double)cf->image_std[1], (double)cf->image_std[2]));
        json_object_set_new(j, "attention", json_pack("{s:o, s:o}", "spatial",
                                                      attn_json(&cf->spatial, P, cf->num_heads, 0), "temporal",
                                                      attn_json(&cf->temporal, cf->num_frames, cf->num_heads, 1)));
        json_object_set_new(j, "psvit", psvit_json(cf));
        json_object_set_new(j, "precision", json_pack("{s:s, s:s, s:s*}", "default",
            fv_precision_name(fv_model_precision(m)), "fp32_isa", fv_precision_isa(FV_PRECISION_FP32), "bf16_isa",
            fv_precision_supported(FV_PRECISION_BF16) ? fv_precision_isa(FV_PRECISION_BF16) : NULL));
        json_t *labels = json_array();
        for (int32_t i = 0; i < cf->num_labels; i++)
            json_array_append_new(labels, json_string(fv_model_label(m, i)));
        json_object_set_new(j, "labels", labels);
        json_object_set_new(j, "default_model", json_boolean(!model && !getenv("FIBVID_MODEL")));
        if (!model && !getenv("FIBVID_MODEL"))
            json_object_set_new(j, "note", json_string(fv_cli_default_model_note));
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        puts(s);
        free(s);
        json_decref(j);
    } else {
        char sa[128], ta[128];
        fv_attn_describe(&cf->spatial, 0, sa, sizeof(sa));
        fv_attn_describe(&cf->temporal, 0, ta, sizeof(ta));
        printf("model          %s\n", model ? model : fv_cli_default_model());
        printf("architecture   TimeSformer, divided space-time attention\n");
        printf("parameters     %lld (%.1f M)\n", (long long)fv_model_num_params(m), fv_model_num_params(m) * 1e-6);
        printf("size           hidden %d, %d layers, %d heads, MLP %d, qkv bias %s, LayerNorm eps %g\n",
               cf->hidden_size, cf->num_layers, cf->num_heads, cf->intermediate_size, cf->qkv_bias ? "yes" : "no",
               (double)cf->layer_norm_eps);
        printf("input          %d %s x %dx%d, patch %d (%d %s per frame, %d tokens%s)\n", cf->num_frames,
               fv_cli_plural(cf->num_frames, "frame", "frames"), cf->image_size, cf->image_size, cf->patch_size, P,
               fv_cli_plural(P, "patch", "patches"), 1 + P * cf->num_frames,
               cf->num_pools ? " in the first layer" : "");
        printf("compute        %.2f GFLOP per view\n", gflop);
        printf("preprocessing  %s sampling (rate %d), short side %d, crop %d, mean %.3f %.3f %.3f, std %.3f %.3f %.3f\n",
               fv_cli_sampling_name(cf->sampling), cf->sampling_rate, cf->short_side ? cf->short_side : cf->image_size,
               cf->image_size, (double)cf->image_mean[0], (double)cf->image_mean[1], (double)cf->image_mean[2],
               (double)cf->image_std[0], (double)cf->image_std[1], (double)cf->image_std[2]);
        printf("attention      spatial %s, temporal %s\n", sa, ta);
        int32_t w0, w1;
        if (resolved_windows(&cf->spatial, P, cf->num_heads, 0, &w0, &w1))
            printf("  windows      spatial wmin %d, wmax %d (offsets over the %d patches of a frame)\n", w0, w1, P);
        if (resolved_windows(&cf->temporal, cf->num_frames, cf->num_heads, 1, &w0, &w1))
            printf("  windows      temporal wmin %d, wmax %d (offsets over the %d frames)\n", w0, w1,
                   cf->num_frames);
        psvit_text(cf);
        printf("precision      %s by default; products: fp32 %s, bf16 %s\n", fv_precision_name(fv_model_precision(m)),
               fv_precision_isa(FV_PRECISION_FP32), fv_precision_supported(FV_PRECISION_BF16)
               ? fv_precision_isa(FV_PRECISION_BF16) : "not on this machine (needs AVX512-BF16 or AMX)");
        /* every label, wrapped at 100 columns under the first */
        int col = printf("labels         %d:", cf->num_labels);
        for (int32_t i = 0; i < cf->num_labels; i++) {
            const char *l = fv_model_label(m, i);
            const int w = (int)strlen(l) + 2;
            if (i && col + w > 100) {
                printf(",\n              ");
                col = 14;
            } else if (i) {
                putchar(',');
                col++;
            }
            col += printf(" %s", l);
        }
        putchar('\n');
        if (!model && !getenv("FIBVID_MODEL"))
            printf("note           %s\n", fv_cli_default_model_note);
    }
    fv_model_close(&m);
    return FV_EXIT_OK;
}
