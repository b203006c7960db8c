/* Option handling shared by the subcommands: numbers, formats, attention overrides, model loading. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int fv_cli_exit_code(int err)
{
    if (err >= 0)
        return FV_EXIT_OK;
    return fv_error_is_input(err) ? FV_EXIT_INPUT : FV_EXIT_RUNTIME;
}

int fv_cli_dist_start(const char *cmd)
{
    if (fv_dist_init() < 0) {
        int32_t rank = 0;
        fv_dist_launched(&rank, NULL);
        if (rank == 0)
            fv_cli_error(cmd, "%s", fv_last_error());
        return FV_EXIT_USAGE;
    }
    if (fv_dist_rank() > 0 && !getenv("FIBVID_ALL_RANKS_VERBOSE")) {
        fflush(stdout);
        fflush(stderr);
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            return FV_EXIT_RUNTIME;
    }
    return -1;
}

void fv_cli_error(const char *cmd, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* the library names its functions ("fv_clip_load: ..."): a user of the command needs the rest */
    const char *m = msg;
    for (;;) {
        size_t n = 0;
        if (strncmp(m, "fv_", 3))
            break;
        while (m[n] && (m[n] == '_' || (m[n] >= 'a' && m[n] <= 'z') || (m[n] >= '0' && m[n] <= '9')))
            n++;
        if (m[n] != ':' || m[n + 1] != ' ')
            break;
        m += n + 2;
    }
    fprintf(stderr, "fibvid %s: %s\n", cmd, m);
}

static int g_verbosity; /* -1 quiet, 0 normal, 1.. verbose */

void fv_cli_set_verbosity(int v)
{
    g_verbosity = v;
}

int fv_cli_quiet(void)
{
    return g_verbosity < 0;
}

int fv_cli_verbose(void)
{
    return g_verbosity > 0 ? g_verbosity : 0;
}

void fv_cli_warn(const char *cmd, const char *fmt, ...)
{
    if (g_verbosity < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (cmd)
        fprintf(stderr, "fibvid %s: warning: ", cmd);
    else
        fputs("fibvid: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *fv_cli_plural(long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

const char fv_cli_default_model_note[] =
    "using the bundled default model: 12 procedural synth actions (fibvid synth), not real-world classes; on "
    "real footage it still answers with confident synth labels (pass -m MODEL for a real model)";

int fv_cli_bad_option(const char *cmd, char **argv, const char *shortopts, const struct option *longopts)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (optopt && optopt < 256 && optopt != '?') {
        const char *p = strchr(shortopts, optopt);
        if (p && p[1] == ':')
            fv_cli_error(cmd, "option -%c needs a value (see fibvid %s --help)", optopt, cmd);
        else
            fv_cli_error(cmd, "unknown option -%c (see fibvid %s --help)", optopt, cmd);
        return FV_EXIT_USAGE;
    }
    if (!strncmp(arg, "--", 2)) {
        size_t n = strcspn(arg + 2, "=");
        for (const struct option *o = longopts; o && o->name; o++)
            if (strlen(o->name) == n && !strncmp(o->name, arg + 2, n)) {
                if (o->has_arg == required_argument)
                    fv_cli_error(cmd, "option --%s needs a value (see fibvid %s --help)", o->name, cmd);
                else
                    fv_cli_error(cmd, "option --%s takes no value (see fibvid %s --help)", o->name, cmd);
                return FV_EXIT_USAGE;
            }
        /* a prefix of several long options is ambiguous for getopt_long */
        int matches = 0;
        for (const struct option *o = longopts; o && o->name; o++)
            matches += strlen(o->name) > n && !strncmp(o->name, arg + 2, n);
        if (matches > 1) {
            fv_cli_error(cmd, "option '%.*s' is ambiguous (see fibvid %s --help)", (int)n + 2, arg, cmd);
            return FV_EXIT_USAGE;
        }
        fv_cli_error(cmd, "unknown option '%.*s' (see fibvid %s --help)", (int)n + 2, arg, cmd);
        return FV_EXIT_USAGE;
    }
    fv_cli_error(cmd, "bad option '%s' (see fibvid %s --help)", arg, cmd);
    return FV_EXIT_USAGE;
}

void fv_cli_bad_value(const char *cmd, const char *opt, const char *value, void (*help)(FILE *))
{
    /* the option's own line(s) of the command's help, which give its values and default */
    char *text = NULL, line[512] = "";
    size_t len = 0;
    FILE *f = help ? open_memstream(&text, &len) : NULL;
    if (f) {
        help(f);
        fclose(f);
    }
    char key[96];
    snprintf(key, sizeof(key), "--%s", opt);
    const char *p = text;
    while (p && (p = strstr(p, key))) {
        const char e = p[strlen(key)];
        /* the option's own line: only blanks (and its short form, "-b, ") before it, not a usage line */
        const char *ls = p;
        while (ls > text && ls[-1] != '\n')
            ls--;
        size_t lead = strspn(ls, " ");
        if (ls[lead] == '-' && ls[lead + 1] != '-' && ls[lead + 2] == ',' && ls[lead + 3] == ' ')
            lead += 4;
        const int own_line = ls + lead == p;
        if (own_line && (e == ' ' || e == ',' || e == '\n' || e == '=')) { /* --lr, not --lr-min */
            const char *b = p, *end = strchr(p, '\n');
            size_t n = end ? (size_t)(end - b) : strlen(b);
            /* with its continuation lines (indented past the option column) */
            while (end && end[1] == ' ' && end[2] == ' ' && end[3] == ' ' && end[4] == ' ' && end[5] == ' ' &&
                   end[6] == ' ' && end[7] != '-' && strspn(end + 1, " ") > 12) {
                const char *next = strchr(end + 1, '\n');
                n = next ? (size_t)(next - b) : strlen(b);
                end = next;
            }
            size_t k = 0;
            for (size_t i = 0; i < n && k + 1 < sizeof(line); i++) { /* squeeze runs of blanks */
                if ((b[i] == ' ' || b[i] == '\n') && k && line[k - 1] == ' ')
                    continue;
                line[k++] = b[i] == '\n' ? ' ' : b[i];
            }
            line[k] = '\0';
            break;
        }
        p += strlen(key);
    }
    if (line[0])
        fv_cli_error(cmd, "bad value '%s' for --%s (valid: %s)", value, opt, line);
    else
        fv_cli_error(cmd, "bad value '%s' for --%s (see fibvid %s --help)", value, opt, cmd);
    free(text);
}

int fv_cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int fv_cli_parse_pools(const char *s, FvTokenPool *pools, int32_t *n)
{
    static const char *const kinds[] = { "avg", "max", "conv" };
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        long after;
        if (!colon || *n >= FV_MAX_POOLS)
            return -1;
        *colon = '\0';
        if (fv_cli_parse_int(tok, 0, 4095, &after) < 0)
            return -1;
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(colon + 1, kinds[i]))
                k = i;
        if (k < 0)
            return -1;
        pools[*n].after = (int32_t)after;
        pools[(*n)++].kind = (FvPoolKind)k;
    }
    return *n > 0 ? 0 : -1;
}

int fv_cli_parse_layers(const char *s, uint64_t *bits)
{
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    *bits = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long l;
        if (fv_cli_parse_int(tok, 0, FV_MAX_SHARE_LAYERS - 1, &l) < 0)
            return -1;
        *bits |= (uint64_t)1 << l;
    }
    return *bits ? 0 : -1;
}

const char fv_cli_psvit_help[] =
    "PSViT (fibvid's reconstruction of token pooling and attention sharing, SPEC 4.3; a new model only):\n"
    "      --token-pool LIST            pool each frame's patch grid 2x2 after these layers, e.g. 1:avg,2:conv\n"
    "                                   (kinds avg, max, conv; layers 0-based, increasing, not the last)\n"
    "      --share-spatial LAYERS       these layers' spatial attention applies the previous layer's weights\n"
    "                                   to their own v (e.g. 2,3; dense or fib attention, no pooling between)\n"
    "      --share-temporal LAYERS      the same for temporal attention\n";

static const char *const format_names[] = { "text", "json", "jsonl", "csv", "svg", "png" };

int fv_cli_parse_format(const char *s, unsigned allowed, FvOutFormat *out)
{
    for (unsigned i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
        if (!strcmp(s, format_names[i]) && (allowed & (1u << i))) {
            *out = (FvOutFormat)i;
            return 0;
        }
    return -1;
}

const char *fv_cli_format_list(unsigned allowed)
{
    static char buf[64];
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
        if (allowed & (1u << i))
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? ", " : "", format_names[i]);
    return buf;
}

const char fv_cli_attn_help[] =
    "attention (default: what the model's config says; HF models are dense):\n"
    "      --spatial-attn KIND          spatial attention kind: dense|fib|sima|castling\n"
    "      --temporal-attn KIND         temporal attention kind: dense|fib|sima|castling\n"
    "                                   (castling on a model without its taps runs them as zeros)\n"
    "      --fib-variant modified|original   Fibottention sequence start (default modified)\n"
    "      --fib-semantics zero|exclude masked scores -> 0 (reference) or out of the softmax (default zero)\n"
    "      --fib-wmin N, --fib-wmax N   spatial head windows (default 5 and patches/3)\n"
    "      --fib-temporal-wmin N, --fib-temporal-wmax N   temporal windows (default 1 and frames-1)\n"
    "      --fib-shuffle on|off         per-layer head shuffle as the reference code (default on)\n";

void fv_cli_attn_overrides_init(FvAttnOverrides *o)
{
    memset(o, 0, sizeof(*o));
    o->spatial_kind = o->temporal_kind = o->variant = o->semantics = o->shuffle = -1;
}

static int pick(const char *v, const char *a, const char *b)
{
    return !strcmp(v, a) ? 0 : !strcmp(v, b) ? 1 : -1;
}

int fv_cli_attn_option(FvAttnOverrides *o, const char *cmd, const char *name, const char *value)
{
    int r = -2;
    long n;
    FvAttnKind kind;
    if (!strcmp(name, "spatial-attn"))
        r = o->spatial_kind = fv_attn_kind_from_name(value, &kind) < 0 ? -1 : (int)kind;
    else if (!strcmp(name, "temporal-attn"))
        r = o->temporal_kind = fv_attn_kind_from_name(value, &kind) < 0 ? -1 : (int)kind;
    else if (!strcmp(name, "fib-variant"))
        r = o->variant = pick(value, "modified", "original");
    else if (!strcmp(name, "fib-semantics"))
        r = o->semantics = pick(value, "zero", "exclude");
    else if (!strcmp(name, "fib-shuffle"))
        r = (o->shuffle = pick(value, "off", "on"));
    else if (!strcmp(name, "fib-wmin") || !strcmp(name, "fib-wmax") || !strcmp(name, "fib-temporal-wmin") ||
             !strcmp(name, "fib-temporal-wmax")) {
        if (fv_cli_parse_int(value, 1, 1 << 20, &n) < 0) {
            r = -1;
        } else {
            r = 0;
            int *dst = !strcmp(name, "fib-wmin") ? &o->wmin : !strcmp(name, "fib-wmax") ? &o->wmax
                     : !strcmp(name, "fib-temporal-wmin") ? &o->twmin : &o->twmax;
            *dst = (int)n;
        }
    } else
        return 0;
    if (r < 0) {
        const char *v = !strcmp(name, "spatial-attn") || !strcmp(name, "temporal-attn") ? "dense, fib, sima or castling"
                      : !strcmp(name, "fib-variant") ? "modified or original"
                      : !strcmp(name, "fib-semantics") ? "zero or exclude"
                      : !strcmp(name, "fib-shuffle") ? "on or off" : "an integer in 1..1048576";
        fv_cli_error(cmd, "bad value '%s' for --%s (valid: %s)", value, name, v);
        return -1;
    }
    return 1;
}

void fv_cli_attn_resolve(const FvAttnOverrides *o, FvAttnSettings *s, FvAttnSettings *t)
{
    if (o->spatial_kind >= 0)
        s->kind = (FvAttnKind)o->spatial_kind;
    if (o->temporal_kind >= 0)
        t->kind = (FvAttnKind)o->temporal_kind;
    if (o->variant >= 0)
        s->variant = t->variant = (FvFibVariant)o->variant;
    if (o->semantics >= 0)
        s->semantics = t->semantics = (FvFibSemantics)o->semantics;
    if (o->shuffle >= 0)
        s->shuffle = t->shuffle = o->shuffle;
    if (o->wmin)
        s->wmin = o->wmin;
    if (o->wmax)
        s->wmax = o->wmax;
    if (o->twmin)
        t->wmin = o->twmin;
    if (o->twmax)
        t->wmax = o->twmax;
}

int fv_cli_attn_apply(const FvAttnOverrides *o, FvModel *m)
{
    FvAttnSettings s = fv_model_config(m)->spatial, t = fv_model_config(m)->temporal;
    fv_cli_attn_resolve(o, &s, &t);
    int ret = fv_model_set_attention(m, &s, &t);
    int32_t missing = ret < 0 ? 0 : fv_model_attention_tensors_missing(m);
    if (missing > 0)
        fv_cli_warn(NULL, "the model has no weights for %d %s of its attention kinds: they are taken as zero "
                    "(castling: no depthwise-convolution term until trained)", missing,
                    fv_cli_plural(missing, "tensor", "tensors"));
    return ret;
}

const char *fv_cli_sampling_name(FvSampling s)
{
    return s == FV_SAMPLING_DENSE ? "dense" : "uniform";
}

static int is_readable(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

char *fv_cli_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

const char *fv_cli_default_model(void)
{
    const char *env = getenv("FIBVID_MODEL");
    if (env && *env)
        return env;
    static const char *candidates[] = { FV_MODELS_SRCDIR "/fibvid-default.safetensors",
                                        FV_MODELS_DATADIR "/fibvid-default.safetensors" };
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
        if (is_readable(candidates[i]))
            return candidates[i];
    return NULL;
}

static FvPrecision g_precision = FV_PRECISION_DEFAULT;

FvPrecision fv_cli_precision(void)
{
    return g_precision;
}

int fv_cli_precision_option(const char *cmd, const char *value)
{
    FvPrecision p;
    if (fv_precision_parse(value, &p) < 0) {
        fv_cli_error(cmd, "bad value '%s' for --precision (valid: fp32, bf16)", value);
        return FV_EXIT_USAGE;
    }
    if (!fv_precision_supported(p)) {
        fv_cli_error(cmd, "--precision bf16: this machine cannot run bf16 products (they need AVX512-BF16 or AMX and "
                     "a build with oneDNN; fp32 products run %s here); use --precision fp32",
                     fv_precision_isa(FV_PRECISION_FP32));
        return FV_EXIT_USAGE;
    }
    g_precision = p;
    return 0;
}

int fv_cli_precision_list(const char *cmd, const char *value, FvPrecision out[2], int *n)
{
    char buf[64];
    *n = 0;
    if (strlen(value) < sizeof(buf)) {
        snprintf(buf, sizeof(buf), "%s", value);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            FvPrecision p;
            if (*n == 2 || fv_precision_parse(tok, &p) < 0 || (*n == 1 && out[0] == p)) {
                *n = 0; /* a third entry, an unknown one, or one given twice */
                break;
            }
            if (fv_cli_precision_option(cmd, tok))
                return FV_EXIT_USAGE;
            out[(*n)++] = fv_cli_precision();
        }
    }
    if (!*n) {
        fv_cli_error(cmd, "bad value '%s' for --precision (valid: fp32, bf16, fp32,bf16, bf16,fp32)", value);
        return FV_EXIT_USAGE;
    }
    return 0;
}

int fv_cli_load_model(const char *cmd, const char *path, FvModel **out)
{
    if (!path) {
        path = fv_cli_default_model();
        if (!path) {
            fv_cli_error(cmd, "no model given and no bundled default model found (looked in %s and %s); "
                         "pass -m MODEL (a Hugging Face TimeSformer directory or a fibvid .safetensors file)",
                         FV_MODELS_SRCDIR, FV_MODELS_DATADIR);
            return FV_EXIT_INPUT;
        }
        if (!getenv("FIBVID_MODEL") || !*getenv("FIBVID_MODEL"))
            fv_cli_warn(cmd, "%s", fv_cli_default_model_note);
    }
    const FvModelLoadOptions lo = { .precision = g_precision };
    int ret = fv_model_load_ex(out, path, &lo);
    if (ret < 0) {
        fv_cli_error(cmd, "%s", fv_last_error());
        return fv_cli_exit_code(ret);
    }
    if (fv_model_config(*out)->precision == FV_PRECISION_BF16 && fv_model_precision(*out) != FV_PRECISION_BF16 &&
        g_precision == FV_PRECISION_DEFAULT)
        fv_cli_warn(cmd, "%s: its config's default precision is bf16, which this machine cannot run (it needs "
                    "AVX512-BF16 or AMX and a build with oneDNN): running fp32", path);
    return FV_EXIT_OK;
}

double fv_cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

int fv_cli_parse_views(const char *s, int32_t *t, int32_t *sv)
{
    const char *x = strchr(s, 'x');
    if (!x)
        return -1;
    char buf[32];
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    long tv, svv;
    if (fv_cli_parse_int(buf, 1, 64, &tv) < 0 || fv_cli_parse_int(x + 1, 1, 3, &svv) < 0 || svv == 2)
        return -1;
    *t = (int32_t)tv;
    *sv = (int32_t)svv;
    return 0;
}

int fv_cli_clip_option(FvPredictSettings *s, const char *cmd, const char *name, const char *value)
{
    long v = 0;
    int bad = 0;
    if (!strcmp(name, "views"))
        bad = fv_cli_parse_views(value, &s->temporal_views, &s->spatial_views) < 0;
    else if (!strcmp(name, "sampling")) {
        if (!strcmp(value, "uniform"))
            s->sampling = FV_SAMPLING_UNIFORM;
        else if (!strcmp(value, "dense"))
            s->sampling = FV_SAMPLING_DENSE;
        else
            bad = 1;
    } else if (!strcmp(name, "frames")) {
        bad = fv_cli_parse_int(value, 1, 1024, &v) < 0;
        s->frames = (int32_t)v;
    } else if (!strcmp(name, "rate")) {
        bad = fv_cli_parse_int(value, 1, 100000, &v) < 0;
        s->rate = (int32_t)v;
    } else if (!strcmp(name, "dense-start")) {
        if (!strcmp(value, "mmaction"))
            s->dense_start = FV_DENSE_START_MMACTION;
        else if (!strcmp(value, "slowfast"))
            s->dense_start = FV_DENSE_START_SLOWFAST;
        else
            bad = 1;
    } else if (!strcmp(name, "short-side")) {
        bad = fv_cli_parse_int(value, 1, 16384, &v) < 0;
        s->short_side = (int32_t)v;
    } else
        return 0;
    if (bad) {
        static const struct {
            const char *name, *valid;
        } valid[] = { { "views", "TxS with T in 1..64 and S 1 or 3, e.g. 4x3" },
                      { "sampling", "uniform or dense" },
                      { "frames", "an integer in 1..1024" },
                      { "rate", "an integer in 1..100000" },
                      { "dense-start", "mmaction or slowfast" },
                      { "short-side", "an integer in 1..16384" } };
        const char *v = "see --help";
        for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
            if (!strcmp(name, valid[i].name))
                v = valid[i].valid;
        fv_cli_error(cmd, "bad value '%s' for --%s (valid: %s)", value, name, v);
        return -1;
    }
    return 1;
}

void fv_cli_fmt_eta(double s, char *buf, size_t n)
{
    long v = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (v >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(buf, n, "%ld:%02ld", v / 60, v % 60);
}

int fv_cli_check_writable(const char *cmd, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fv_cli_error(cmd, "%s: cannot write: is a directory", path);
        return FV_EXIT_INPUT;
    }
    const size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) {
        fv_cli_error(cmd, "out of memory");
        return FV_EXIT_RUNTIME;
    }
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    const int fd = mkstemp(tmp); /* what the atomic write at the end will need: a new file beside @path */
    if (fd < 0) {
        fv_cli_error(cmd, "%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return FV_EXIT_INPUT;
    }
    close(fd);
    unlink(tmp);
    free(tmp);
    return 0;
}

int fv_cli_dir_in_use(const char *cmd, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return 0;
    if (!S_ISDIR(st.st_mode)) {
        fv_cli_error(cmd, "%s: not a directory", dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* unreadable: the write will say why */
    int used = 0;
    for (struct dirent *e; !used && (e = readdir(d));)
        used = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return used;
}
