/* `fibvid masks`: the Fibottention offsets of every head of every layer, with density and inter-head
 * overlap, as text, JSON, or pictures (SVG, PNG through FFmpeg's encoder). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid masks (--tokens N --heads H [--layers L] | -m MODEL) [options]\n"
        "\n"
        "Fibottention offsets of every head of every layer (after the per-layer head shuffle), each head's\n"
        "density (fraction of the N x N token pairs it attends, cls excluded) and the Jaccard overlap of\n"
        "every pair of heads.\n"
        "\n"
        "  -m, --model PATH       take tokens, heads, layers and settings from a model\n"
        "      --tokens N         tokens the mask spans, cls not counted (spatial: patches per frame, e.g.\n"
        "                         196 for 224x224; temporal: frames)\n"
        "      --heads H          heads (default 12)\n"
        "      --layers L         layers (default 12)\n"
        "      --temporal         temporal masks (offset 0 always attended, defaults wmin 1, wmax N-1)\n"
        "      --fib-variant V    modified|original (default: the model's, else modified)\n"
        "      --fib-wmin N       smallest window (default 5 spatial, 1 temporal; with --temporal also\n"
        "                         --fib-temporal-wmin, as the other commands name it)\n"
        "      --fib-wmax N       largest window (default N/3 spatial, N-1 temporal; --fib-temporal-wmax)\n"
        "      --fib-shuffle on|off  per-layer head shuffle (default on)\n"
        "  -f, --format FMT       text|json|svg|png (default text)\n"
        "  -o, --out PATH         write there instead of stdout (required for png: titled, every\n"
        "                         layer and head labelled with its density and offsets)\n"
        "(--variant, --wmin, --wmax, --shuffle and --output, the names of fibvid 0.1, still work.)\n"
        "  -h, --help             this help\n"
        "\nExit codes: 0 success, 1 usage error, 2 model could not be read, 3 runtime failure.\n");
}

typedef struct MaskSet {
    int32_t n, H, L, temporal;
    FvAttnSettings s;   /* as asked (windows resolved in the masks' own settings) */
    FvAttnMasks *masks;
} MaskSet;

static const int32_t *raw(const MaskSet *ms, int32_t l, int32_t h, int32_t *cnt)
{
    const int32_t *o;
    *cnt = fv_attn_masks_offsets(ms->masks, l, h, 1, &o);
    return o;
}

/* the set a head attends (unique; temporal with offset 0) */
static const int32_t *uniq(const MaskSet *ms, int32_t l, int32_t h, int32_t *cnt)
{
    const int32_t *o;
    *cnt = fv_attn_masks_offsets(ms->masks, l, h, 0, &o);
    return o;
}

static double density(const MaskSet *ms, int32_t l, int32_t h)
{
    return fv_attn_masks_density(ms->masks, l, h);
}

static double jaccard(const MaskSet *ms, int32_t l, int32_t a, int32_t b)
{
    return fv_attn_masks_jaccard(ms->masks, l, a, b);
}

static double mean_jaccard(const MaskSet *ms, int32_t l)
{
    double s = 0;
    int cnt = 0;
    for (int32_t a = 0; a < ms->H; a++)
        for (int32_t b = a + 1; b < ms->H; b++, cnt++)
            s += jaccard(ms, l, a, b);
    return cnt ? s / cnt : 1.0;
}

static json_t *to_json(const MaskSet *ms)
{
    json_t *j = json_object();
    json_object_set_new(j, "tokens", json_integer(ms->n));
    json_object_set_new(j, "heads", json_integer(ms->H));
    json_object_set_new(j, "attention", json_string(ms->temporal ? "temporal" : "spatial"));
    json_object_set_new(j, "variant", json_string(ms->s.variant == FV_FIB_MODIFIED ? "modified" : "original"));
    json_object_set_new(j, "wmin", json_integer(fv_attn_masks_settings(ms->masks)->wmin));
    json_object_set_new(j, "wmax", json_integer(fv_attn_masks_settings(ms->masks)->wmax));
    json_object_set_new(j, "shuffle", json_boolean(ms->s.shuffle));
    json_t *layers = json_array();
    for (int32_t l = 0; l < ms->L; l++) {
        json_t *jl = json_object(), *heads = json_array(), *jac = json_array();
        double dsum = 0;
        for (int32_t h = 0; h < ms->H; h++) {
            int32_t c;
            const int32_t *o = raw(ms, l, h, &c);
            json_t *off = json_array();
            for (int32_t i = 0; i < c; i++)
                json_array_append_new(off, json_integer(o[i]));
            double d = density(ms, l, h);
            dsum += d;
            json_array_append_new(heads, json_pack("{s:i, s:o, s:f}", "head", h, "offsets", off, "density", d));
            json_t *row = json_array();
            for (int32_t b = 0; b < ms->H; b++)
                json_array_append_new(row, json_real(jaccard(ms, l, h, b)));
            json_array_append_new(jac, row);
        }
        json_object_set_new(jl, "layer", json_integer(l));
        json_object_set_new(jl, "tokens", json_integer(fv_attn_masks_tokens(ms->masks, l)));
        json_object_set_new(jl, "wmin", json_integer(fv_attn_masks_layer_settings(ms->masks, l)->wmin));
        json_object_set_new(jl, "wmax", json_integer(fv_attn_masks_layer_settings(ms->masks, l)->wmax));
        json_object_set_new(jl, "heads", heads);
        json_object_set_new(jl, "mean_density", json_real(dsum / ms->H));
        json_object_set_new(jl, "mean_jaccard", json_real(mean_jaccard(ms, l)));
        json_object_set_new(jl, "jaccard", jac);
        json_array_append_new(layers, jl);
    }
    json_object_set_new(j, "layers", layers);
    return j;
}

static void write_text(const MaskSet *ms, FILE *f)
{
    fprintf(f, "%s Fibottention, %s variant, %d tokens, %d heads, windows %d..%d, shuffle %s\n",
            ms->temporal ? "temporal" : "spatial", ms->s.variant == FV_FIB_MODIFIED ? "modified" : "original", ms->n,
            ms->H, fv_attn_masks_settings(ms->masks)->wmin, fv_attn_masks_settings(ms->masks)->wmax, ms->s.shuffle ? "on" : "off");
    for (int32_t l = 0; l < ms->L; l++) {
        double dsum = 0;
        for (int32_t h = 0; h < ms->H; h++)
            dsum += density(ms, l, h);
        const int32_t nl = fv_attn_masks_tokens(ms->masks, l);
        const FvAttnSettings *ls = fv_attn_masks_layer_settings(ms->masks, l);
        fprintf(f, "layer %d: mean density %.2f%%, mean pairwise Jaccard %.4f", l, 100 * dsum / ms->H,
                mean_jaccard(ms, l));
        if (nl != ms->n) /* after a token pooling */
            fprintf(f, " (%d tokens, windows %d..%d)", nl, ls->wmin, ls->wmax);
        fputc('\n', f);
        for (int32_t h = 0; h < ms->H; h++) {
            int32_t c;
            const int32_t *o = raw(ms, l, h, &c);
            fprintf(f, "  head %2d  density %6.2f%%  offsets [", h, 100 * density(ms, l, h));
            for (int32_t i = 0; i < c; i++)
                fprintf(f, "%s%d", i ? ", " : "", o[i]);
            fprintf(f, "]\n");
        }
    }
}

/* SVG: one square per head, a row per layer; every offset is drawn as its two diagonals (compact even for
 * thousands of tokens), so each head's dilated pattern reads at a glance. */
static void write_svg(const MaskSet *ms, FILE *f)
{
    const double cell = 120.0, gap = 14.0, left = 70.0, top = 40.0;
    const double W = left + ms->H * (cell + gap), Hh = top + ms->L * (cell + gap + 14);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", W, Hh);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"18\" font-size=\"14\">%s Fibottention masks: %d tokens, %d heads, %s variant "
               "(query rows, key columns)</text>\n", left, ms->temporal ? "Temporal" : "Spatial", ms->n, ms->H,
            ms->s.variant == FV_FIB_MODIFIED ? "modified" : "original");
    for (int32_t l = 0; l < ms->L; l++) {
        double y0 = top + l * (cell + gap + 14);
        /* a pooled layer's square is drawn smaller, on the first layer's scale */
        const int32_t nl = fv_attn_masks_tokens(ms->masks, l);
        const double e = cell * nl / ms->n, sc = cell / ms->n, sw = sc < 1.0 ? 1.0 : sc;
        fprintf(f, "<text x=\"4\" y=\"%.1f\">layer %d</text>\n", y0 + cell / 2, l);
        if (nl != ms->n)
            fprintf(f, "<text x=\"4\" y=\"%.1f\" fill=\"#666\">%d tokens</text>\n", y0 + cell / 2 + 13, nl);
        for (int32_t h = 0; h < ms->H; h++) {
            double x0 = left + h * (cell + gap);
            fprintf(f, "<g transform=\"translate(%.1f,%.1f)\"><title>layer %d head %d: density %.2f%%</title>\n", x0,
                    y0, l, h, 100 * density(ms, l, h));
            fprintf(f, "<rect width=\"%.1f\" height=\"%.1f\" fill=\"#f4f4f4\" stroke=\"#999\"/>\n", e, e);
            int32_t c;
            const int32_t *o = uniq(ms, l, h, &c);
            for (int32_t i = 0; i < c; i++) {
                double d = o[i] * sc;
                fprintf(f, "<path d=\"M%.2f %.2fL%.2f %.2fM%.2f %.2fL%.2f %.2f\" stroke=\"#3b518b\" "
                           "stroke-width=\"%.2f\"/>\n", sc / 2 + d, sc / 2, e - sc / 2, e - d - sc / 2, sc / 2,
                        sc / 2 + d, e - d - sc / 2, e - sc / 2, sw);
            }
            fprintf(f, "<text x=\"0\" y=\"%.1f\">h%d %.1f%%</text></g>\n", cell + 12, h, 100 * density(ms, l, h));
        }
    }
    fprintf(f, "</svg>\n");
}

int fv_cli_masks(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },  { "tokens", required_argument, NULL, 'N' },
        { "heads", required_argument, NULL, 'H' },  { "layers", required_argument, NULL, 'L' },
        { "temporal", no_argument, NULL, 'T' },     { "fib-variant", required_argument, NULL, 'v' },
        { "fib-wmin", required_argument, NULL, 'a' }, { "fib-wmax", required_argument, NULL, 'b' },
        { "fib-temporal-wmin", required_argument, NULL, 'A' }, { "fib-temporal-wmax", required_argument, NULL, 'B' },
        { "fib-shuffle", required_argument, NULL, 's' }, { "format", required_argument, NULL, 'f' },
        { "out", required_argument, NULL, 'o' },    { "help", no_argument, NULL, 'h' },
        /* the names of fibvid 0.1 */
        { "variant", required_argument, NULL, 'v' }, { "wmin", required_argument, NULL, 'a' },
        { "wmax", required_argument, NULL, 'b' },   { "shuffle", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    const char *model = NULL, *out = NULL;
    long N = 0, H = 12, L = 12, wmin = 0, wmax = 0;
    long twmin = 0, twmax = 0;
    int temporal = 0, variant = -1, shuffle = -1, c, li;
    FvOutFormat fmt = FV_OUT_TEXT;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:f:o:h", longopts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'N': bad = fv_cli_parse_int(optarg, 1, 1 << 16, &N); break;
        case 'H': bad = fv_cli_parse_int(optarg, 1, 256, &H); break;
        case 'L': bad = fv_cli_parse_int(optarg, 1, 1024, &L); break;
        case 'T': temporal = 1; break;
        case 'v': variant = !strcmp(optarg, "modified") ? 0 : !strcmp(optarg, "original") ? 1 : -2; bad = variant == -2; break;
        case 'a': bad = fv_cli_parse_int(optarg, 1, 1 << 20, &wmin); break;
        case 'b': bad = fv_cli_parse_int(optarg, 1, 1 << 20, &wmax); break;
        case 'A': bad = fv_cli_parse_int(optarg, 1, 1 << 20, &twmin); break;
        case 'B': bad = fv_cli_parse_int(optarg, 1, 1 << 20, &twmax); break;
        case 's': shuffle = !strcmp(optarg, "on") ? 1 : !strcmp(optarg, "off") ? 0 : -2; bad = shuffle == -2; break;
        case 'f': bad = fv_cli_parse_format(optarg, 1u << FV_OUT_TEXT | 1u << FV_OUT_JSON | 1u << FV_OUT_SVG |
                                            1u << FV_OUT_PNG, &fmt); break;
        case 'o': out = optarg; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        default: return fv_cli_bad_option("masks", argv, "m:f:o:h", longopts);
        }
        if (bad) {
            fv_cli_error("masks", "bad value '%s' for --%s (valid: %s)", optarg, c == 'f' ? "format" : longopts[li].name,
                         c == 'f' ? "text, json, svg, png" : c == 'v' ? "modified, original" : c == 's' ? "on, off"
                         : c == 'N' ? "1..65536" : c == 'H' ? "1..256" : c == 'L' ? "1..1024" : "1..1048576");
            return FV_EXIT_USAGE;
        }
    }
    if ((twmin || twmax) && !temporal) {
        fv_cli_error("masks", "--fib-temporal-wmin/--fib-temporal-wmax go with --temporal (--fib-wmin/--fib-wmax "
                     "set the windows of the masks shown)");
        return FV_EXIT_USAGE;
    }
    if (twmin)
        wmin = twmin;
    if (twmax)
        wmax = twmax;
    if ((!model && !N) || (model && N)) {
        fv_cli_error("masks", "give either --tokens N (with --heads/--layers) or -m MODEL");
        return FV_EXIT_USAGE;
    }
    if (fmt == FV_OUT_PNG && !out) {
        fv_cli_error("masks", "-f png needs -o PATH");
        return FV_EXIT_USAGE;
    }
    MaskSet ms = { 0 };
    int32_t *layer_tokens = NULL; /* -m: each layer's tokens (token pooling), else NULL: N in every layer */
    fv_attn_default_settings(&ms.s);
    if (model) {
        FvModel *m = NULL;
        int rc = fv_cli_load_model("masks", model, &m);
        if (rc)
            return rc;
        const FvModelConfig *cf = fv_model_config(m);
        const FvAttnSettings *a = temporal ? &cf->temporal : &cf->spatial;
        if (a->kind == FV_ATTN_FIB)
            ms.s = *a;
        N = temporal ? cf->num_frames : (cf->image_size / cf->patch_size) * (cf->image_size / cf->patch_size);
        H = cf->num_heads;
        L = cf->num_layers;
        if (!temporal && !(layer_tokens = malloc((size_t)L * sizeof(int32_t)))) {
            fv_model_close(&m);
            fv_cli_error("masks", "out of memory");
            return FV_EXIT_RUNTIME;
        }
        const int32_t side = cf->image_size / cf->patch_size;
        for (int32_t l = 0; !temporal && l < (int32_t)L; l++) { /* a pooling halves the grid after its layer */
            int32_t gh, gw;
            fv_model_layer_grid(cf, l, side, side, &gh, &gw);
            layer_tokens[l] = gh * gw;
        }
        fv_model_close(&m);
    }
    ms.s.kind = FV_ATTN_FIB;
    if (variant >= 0)
        ms.s.variant = (FvFibVariant)variant;
    if (shuffle >= 0)
        ms.s.shuffle = shuffle;
    if (wmin)
        ms.s.wmin = (int32_t)wmin;
    if (wmax)
        ms.s.wmax = (int32_t)wmax;
    ms.n = (int32_t)N;
    ms.H = (int32_t)H;
    ms.L = (int32_t)L;
    ms.temporal = temporal;
    int rc = FV_EXIT_OK;
    const int made = layer_tokens ? fv_attn_masks_create_layers(&ms.masks, &ms.s, layer_tokens, ms.H, ms.L, 0)
                                  : fv_attn_masks_create(&ms.masks, &ms.s, ms.n, ms.H, ms.L, temporal);
    free(layer_tokens);
    if (made < 0) {
        fv_cli_error("masks", "%s", fv_last_error());
        return FV_EXIT_USAGE;
    }
    if (fmt == FV_OUT_PNG) {
        int ret = fv_attn_masks_write_png(ms.masks, out);
        if (ret < 0) {
            fv_cli_error("masks", "%s", fv_last_error());
            rc = fv_cli_exit_code(ret);
        }
        goto done;
    }
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fv_cli_error("masks", "%s: cannot create: %s", out, strerror(errno));
        rc = FV_EXIT_INPUT;
        goto done;
    }
    if (fmt == FV_OUT_JSON) {
        json_t *j = to_json(&ms);
        json_dumpf(j, f, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
        fputc('\n', f);
        json_decref(j);
    } else if (fmt == FV_OUT_SVG) {
        write_svg(&ms, f);
    } else {
        write_text(&ms, f);
    }
    if (out && fclose(f) != 0) {
        fv_cli_error("masks", "%s: write failed", out);
        rc = FV_EXIT_RUNTIME;
    }
done:
    fv_attn_masks_close(&ms.masks);
    return rc;
}
