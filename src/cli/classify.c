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

/* ---------------------------------------------------------------------------------------------------- */
/* Inputs: clips, directories, --list, stdin                                                             */
/* ---------------------------------------------------------------------------------------------------- */

typedef struct Input {
    char *path; /* what is opened */
    char *name; /* what is shown ("-" for stdin) */
} Input;

typedef struct Inputs {
    Input *v;
    size_t n, cap;
    int spool_fd;     /* the stdin spool, or -1 */
    char *spool_name; /* its name while it still has one (no /proc to reach an unlinked file), or NULL */
    int stdin_used;   /* '-' or --list - took stdin */
} Inputs;

static int inputs_add(Inputs *in, const char *path, const char *name)
{
    if (in->n == in->cap) {
        size_t nc = in->cap ? in->cap * 2 : 16;
        Input *v = realloc(in->v, nc * sizeof(*v));
        if (!v)
            return -1;
        in->v = v;
        in->cap = nc;
    }
    Input *e = &in->v[in->n];
    e->path = strdup(path);
    e->name = strdup(name ? name : path);
    if (!e->path || !e->name) {
        free(e->path);
        free(e->name);
        return -1;
    }
    in->n++;
    return 0;
}

static void inputs_free(Inputs *in)
{
    for (size_t i = 0; i < in->n; i++) {
        free(in->v[i].path);
        free(in->v[i].name);
    }
    free(in->v);
    if (in->spool_fd >= 0)
        close(in->spool_fd);
    if (in->spool_name)
        unlink(in->spool_name);
    free(in->spool_name);
}

static int is_video_name(const char *name)
{
    static const char *const ext[] = { "avi", "mp4", "m4v", "mkv", "webm", "mov", "mpg", "mpeg", "ts", "m2ts",
                                       "mts", "flv", "wmv", "asf", "ogv", "3gp", "3g2", "vob", "dv", "y4m", "mxf" };
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return 0;
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
        if (!strcasecmp(dot + 1, ext[i]))
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Video files under @dir, recursively, in sorted order. Returns an exit code (0, or after one line). */
static int add_dir(Inputs *in, const char *dir, int depth)
{
    if (depth > 64) {
        fv_cli_error("classify", "%s: directories nested too deep", dir);
        return FV_EXIT_INPUT;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fv_cli_error("classify", "%s: cannot read directory: %s", dir, strerror(errno));
        return FV_EXIT_INPUT;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **v = realloc(names, nc * sizeof(*v));
            if (!v)
                goto oom;
            names = v;
            cap = nc;
        }
        if (!(names[n] = fv_cli_path_join(dir, e->d_name)))
            goto oom;
        n++;
    }
    closedir(d);
    d = NULL;
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        struct stat ls, sb;
        if (lstat(names[i], &ls) != 0)
            continue; /* vanished meanwhile */
        if (S_ISDIR(ls.st_mode)) {
            int r = add_dir(in, names[i], depth + 1);
            rc = r > rc ? r : rc;
        } else if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode) && is_video_name(names[i])) {
            if (inputs_add(in, names[i], NULL) < 0)
                goto oom;
        }
        if (rc == FV_EXIT_RUNTIME)
            break;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
oom:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    fv_cli_error("classify", "out of memory listing %s", dir);
    return FV_EXIT_RUNTIME;
}

/* stdin as a seekable file: itself when it is a regular file, else copied to an unlinked temporary file.
 * Returns an exit code. */
static int add_stdin(Inputs *in)
{
    if (in->stdin_used) {
        fv_cli_error("classify", "stdin ('-') given twice");
        return FV_EXIT_USAGE;
    }
    in->stdin_used = 1;
    if (isatty(STDIN_FILENO)) {
        fv_cli_error("classify", "-: stdin is a terminal: pipe a video into it (fibvid classify - < clip.mp4)");
        return FV_EXIT_USAGE;
    }
    const int have_proc = access("/proc/self/fd/0", F_OK) == 0;
    struct stat sb;
    if (have_proc && fstat(STDIN_FILENO, &sb) == 0 && S_ISREG(sb.st_mode))
        return inputs_add(in, "/proc/self/fd/0", "-") < 0 ? FV_EXIT_RUNTIME : 0;

    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir)
        tmpdir = "/tmp";
    char *tmp = fv_cli_path_join(tmpdir, "fibvid-stdin-XXXXXX");
    if (!tmp) {
        fv_cli_error("classify", "out of memory");
        return FV_EXIT_RUNTIME;
    }
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        fv_cli_error("classify", "-: cannot spool stdin to %s: %s", tmpdir, strerror(errno));
        free(tmp);
        return FV_EXIT_RUNTIME;
    }
    in->spool_fd = fd;
    if (have_proc) { /* nothing is left behind whatever happens to the process */
        unlink(tmp);
        free(tmp);
    } else {
        in->spool_name = tmp;
    }
    static char buf[1 << 16];
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fv_cli_error("classify", "-: cannot read stdin: %s", strerror(errno));
            return FV_EXIT_INPUT;
        }
        for (ssize_t o = 0; o < r;) {
            ssize_t w = write(fd, buf + o, (size_t)(r - o));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                fv_cli_error("classify", "-: cannot spool stdin to %s: %s", tmpdir, strerror(errno));
                return FV_EXIT_RUNTIME;
            }
            o += w;
        }
    }
    char path[64];
    if (have_proc)
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return inputs_add(in, have_proc ? path : in->spool_name, "-") < 0 ? FV_EXIT_RUNTIME : 0;
}

/* One command-line operand: a directory, '-' or a clip (kept as given: a missing one fails when classified). */
static int add_arg(Inputs *in, const char *arg)
{
    struct stat sb;
    if (!strcmp(arg, "-"))
        return add_stdin(in);
    if (stat(arg, &sb) == 0 && (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode))) {
        /* the decoder would need to seek in it; opening a FIFO without a writer would also block */
        fv_cli_error("classify", "%s: a pipe is not seekable: pipe it into '-' instead (fibvid classify - < %s)",
                     arg, arg);
        return FV_EXIT_INPUT;
    }
    if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        const size_t before = in->n;
        char *dir = strdup(arg);
        if (!dir)
            return FV_EXIT_RUNTIME;
        for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) /* "clips/" lists "clips/a.mp4" */
            dir[n - 1] = 0;
        int rc = add_dir(in, dir, 0);
        free(dir);
        if (!rc && in->n == before) {
            fv_cli_error("classify", "%s: no video files in this directory", arg);
            rc = FV_EXIT_INPUT;
        }
        return rc;
    }
    return inputs_add(in, arg, NULL) < 0 ? FV_EXIT_RUNTIME : 0;
}

/* Lines of a text file ("-": stdin), trailing CR/LF removed; *@n lines. Returns an exit code. */
static int read_lines(const char *path, char ***out, int32_t *n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    *out = NULL;
    *n = 0;
    if (!f) {
        fv_cli_error("classify", "%s: cannot read: %s", path, strerror(errno));
        return FV_EXIT_INPUT;
    }
    char *line = NULL, **v = NULL;
    size_t lcap = 0;
    int32_t cnt = 0, cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (cnt == cap) {
            int32_t nc = cap ? cap * 2 : 64;
            char **nv = realloc(v, (size_t)nc * sizeof(*nv));
            if (!nv) {
                rc = FV_EXIT_RUNTIME;
                break;
            }
            v = nv;
            cap = nc;
        }
        if (!(v[cnt] = strdup(line))) {
            rc = FV_EXIT_RUNTIME;
            break;
        }
        cnt++;
    }
    if (!rc && ferror(f)) {
        fv_cli_error("classify", "%s: read error: %s", path, strerror(errno));
        rc = FV_EXIT_INPUT;
    } else if (rc) {
        fv_cli_error("classify", "%s: out of memory", path);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    *out = v;
    *n = cnt;
    return rc;
}

static void free_lines(char **v, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int add_list(Inputs *in, const char *list)
{
    char **lines;
    int32_t n;
    if (!strcmp(list, "-")) {
        if (in->stdin_used) {
            fv_cli_error("classify", "stdin ('-') given twice");
            return FV_EXIT_USAGE;
        }
        in->stdin_used = 1;
    }
    int rc = read_lines(list, &lines, &n);
    for (int32_t i = 0; !rc && i < n; i++) {
        const char *l = lines[i];
        while (*l == ' ' || *l == '\t')
            l++;
        if (*l && *l != '#' && inputs_add(in, l, NULL) < 0)
            rc = FV_EXIT_RUNTIME;
    }
    free_lines(lines, n);
    return rc;
}

/* The library's message with the opened path shown as the user gave it ('-' for stdin). */
static void input_error(const Input *in, char *buf, size_t n)
{
    const char *msg = fv_last_error()[0] ? fv_last_error() : "failed";
    const char *at = strcmp(in->path, in->name) ? strstr(msg, in->path) : NULL;
    if (at)
        snprintf(buf, n, "%.*s%s%s", (int)(at - msg), msg, in->name, at + strlen(in->path));
    else
        snprintf(buf, n, "%s", msg);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Results                                                                                               */
/* ---------------------------------------------------------------------------------------------------- */

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

/* A timeline as text: one line per window, its top-k. */
static void print_timeline_text(FILE *out, const json_t *j)
{
    fprintf(out, "%s  (%.2f s, %lld frames, %d windows of %g s every %g s, decode %.1f ms, forward %.1f ms)\n",
            json_string_value(json_object_get(j, "path")), json_real_value(json_object_get(j, "duration_s")),
            (long long)json_integer_value(json_object_get(j, "nframes")),
            (int)json_array_size(json_object_get(j, "windows")), json_real_value(json_object_get(j, "window_s")),
            json_real_value(json_object_get(j, "stride_s")),
            json_real_value(json_object_get(json_object_get(j, "timing_ms"), "decode")),
            json_real_value(json_object_get(json_object_get(j, "timing_ms"), "forward")));
    fprintf(out, "  %-6s  %-9s  %-9s  %s\n", "window", "start (s)", "end (s)", "top-k (prob)");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(j, "windows"), i, w) {
        fprintf(out, "  %-6d  %-9.2f  %-9.2f ", (int)i, json_real_value(json_object_get(w, "start_s")),
                json_real_value(json_object_get(w, "end_s")));
        size_t r;
        json_t *t;
        json_array_foreach(json_object_get(w, "top"), r, t)
            fprintf(out, "%s %s (%.4f)", r ? "," : "", json_string_value(json_object_get(t, "label")),
                    json_real_value(json_object_get(t, "prob")));
        fputc('\n', out);
    }
}

/* One CSV field (RFC 4180: quoted when it holds a comma, quote or line break). */
static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_header(FILE *out, int windows)
{
    fputs(windows ? "path,window,start_s,end_s,rank,index,label,prob,error\n" : "path,rank,index,label,prob,error\n",
          out);
}

/* Rows of one clip's JSON result (or error): one per rank (x window). */
static void csv_rows(FILE *out, const json_t *j, int windows)
{
    const char *path = json_string_value(json_object_get(j, "path"));
    const json_t *err = json_object_get(j, "error");
    if (err) {
        csv_field(out, path);
        fputs(windows ? ",,,,,,,," : ",,,,,", out);
        csv_field(out, json_string_value(err));
        fputc('\n', out);
        return;
    }
    json_t *single = json_pack("[{s:O}]", "top", json_object_get(j, "top"));
    const json_t *wins = windows ? json_object_get(j, "windows") : single;
    size_t i, r;
    json_t *w, *t;
    json_array_foreach(wins, i, w) {
        json_array_foreach(json_object_get(w, "top"), r, t) {
            csv_field(out, path);
            if (windows)
                fprintf(out, ",%d,%.3f,%.3f", (int)i, json_real_value(json_object_get(w, "start_s")),
                        json_real_value(json_object_get(w, "end_s")));
            fprintf(out, ",%d,%d,", (int)r + 1, (int)json_integer_value(json_object_get(t, "index")));
            csv_field(out, json_string_value(json_object_get(t, "label")));
            fprintf(out, ",%.6f,\n", json_real_value(json_object_get(t, "prob")));
        }
    }
    json_decref(single);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Timeline SVG                                                                                          */
/* ---------------------------------------------------------------------------------------------------- */

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Distinct, stable colours: the golden angle around the hue circle (saturation 0.6, lightness 0.62), in order of
 * first appearance, as #rrggbb (SVG 1.1 has no hsl()). */
static void label_colour(int i, char *buf, size_t n)
{
    const double h = fmod(i * 137.508, 360.0) / 60.0, l = 0.62, sat = 0.6;
    const double ch = (1 - fabs(2 * l - 1)) * sat, x = ch * (1 - fabs(fmod(h, 2.0) - 1)), m0 = l - ch / 2;
    double rgb[3] = { 0, 0, 0 };
    const int sector = (int)h % 6;
    const int hi[6] = { 0, 1, 1, 2, 2, 0 }, lo[6] = { 1, 0, 2, 1, 0, 2 };
    rgb[hi[sector]] = ch;
    rgb[lo[sector]] = x;
    snprintf(buf, n, "#%02x%02x%02x", (int)lround((rgb[0] + m0) * 255), (int)lround((rgb[1] + m0) * 255),
             (int)lround((rgb[2] + m0) * 255));
}

static int colour_index(json_t *seen, const char *lab)
{
    size_t i;
    json_t *v;
    json_array_foreach(seen, i, v)
        if (!strcmp(json_string_value(v), lab))
            return (int)i;
    json_array_append_new(seen, json_string(lab));
    return (int)json_array_size(seen) - 1;
}

static double nice_step(double span)
{
    static const double steps[] = { 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600 };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (span / steps[i] <= 12)
            return steps[i];
    return ceil(span / 12 / 3600) * 3600;
}

/* One panel per timeline in @clips: lanes of bands (overlapping windows go to separate lanes), a time axis in
 * seconds, then one legend for every label shown. Returns 0 or -1 (out of memory). */
static int write_svg(const char *path, const json_t *clips)
{
    enum { WIDTH = 1000, LEFT = 30, PLOT = 940, LANE = 40, TITLE = 44, AXIS = 52 };
    char *buf = NULL, col[64];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_t *seen = json_array();
    if (!f || !seen) {
        if (f)
            fclose(f);
        free(buf);
        json_decref(seen);
        return -1;
    }
    /* the panels first into a group, the height is known after the legend */
    char *body = NULL;
    size_t blen = 0;
    FILE *b = open_memstream(&body, &blen);
    if (!b) {
        fclose(f);
        free(buf);
        json_decref(seen);
        return -1;
    }
    int y = 10;
    size_t ci;
    json_t *c;
    json_array_foreach(clips, ci, c) {
        const double dur = json_real_value(json_object_get(c, "duration_s"));
        const double win = json_real_value(json_object_get(c, "window_s"));
        const double stride = json_real_value(json_object_get(c, "stride_s"));
        const json_t *wins = json_object_get(c, "windows");
        const double span = dur > 0 ? dur : 1;
        int lanes = (int)ceil(win / stride - 1e-9);
        lanes = lanes < 1 ? 1 : lanes > 8 ? 8 : lanes;
        if ((size_t)lanes > json_array_size(wins))
            lanes = json_array_size(wins) ? (int)json_array_size(wins) : 1;
        fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">Top-1 label per window: ", LEFT,
                y + 18);
        xml_text(b, json_string_value(json_object_get(c, "path")));
        fprintf(b, "</text>\n<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#444\">window %g s, stride %g s, "
                   "%d window%s, video %.2f s%s</text>\n", LEFT, y + 36, win, stride, (int)json_array_size(wins),
                json_array_size(wins) == 1 ? "" : "s", dur, lanes > 1 ? "; overlapping windows are drawn in separate rows" : "");
        y += TITLE;
        size_t i;
        json_t *w;
        json_array_foreach(wins, i, w) {
            const json_t *t0 = json_array_get(json_object_get(w, "top"), 0);
            const char *lab = json_string_value(json_object_get(t0, "label"));
            const double p = json_real_value(json_object_get(t0, "prob"));
            const double s = json_real_value(json_object_get(w, "start_s")), e = json_real_value(json_object_get(w, "end_s"));
            const double x = LEFT + PLOT * s / span, wd = PLOT * (e - s) / span;
            const int ly = y + (int)(i % (size_t)lanes) * LANE;
            label_colour(colour_index(seen, lab), col, sizeof(col));
            fprintf(b, "<g><title>window %d: %.2f-%.2f s: ", (int)i, s, e);
            xml_text(b, lab);
            fprintf(b, " (%.3f)</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
                       "stroke=\"#fff\" stroke-width=\"1\"/>", p, x, ly, wd > 0.5 ? wd : 0.5, LANE - 4, col);
            const int chars = (int)((wd - 4) / 7);
            if (chars >= 3) {
                fprintf(b, "<text x=\"%.2f\" y=\"%d\" font-size=\"11\">", x + 3, ly + 15);
                char shown[256];
                snprintf(shown, sizeof(shown), "%.*s", chars < 255 ? chars : 255, lab);
                xml_text(b, shown);
                fprintf(b, "</text><text x=\"%.2f\" y=\"%d\" font-size=\"10\" fill=\"#222\">%.2f</text>", x + 3,
                        ly + 29, p);
            }
            fputs("</g>\n", b);
        }
        y += lanes * LANE;
        /* time axis */
        const double step = nice_step(span);
        fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n", LEFT, y + 2, LEFT + PLOT, y + 2);
        for (double tk = 0; tk <= span + 1e-9; tk += step) {
            const double x = LEFT + PLOT * tk / span;
            fprintf(b, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#000\"/>"
                       "<text x=\"%.2f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n",
                    x, y + 2, x, y + 7, x, y + 20, tk);
        }
        fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">time (s)</text>\n",
                LEFT + PLOT / 2, y + 38);
        y += AXIS;
    }
    /* legend */
    fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">Legend (top-1 labels)</text>\n", LEFT,
            y + 14);
    y += 22;
    int x = LEFT;
    size_t li;
    json_t *lv;
    json_array_foreach(seen, li, lv) {
        const char *lab = json_string_value(lv);
        const int wd = 24 + 7 * (int)strlen(lab);
        if (x + wd > LEFT + PLOT && x > LEFT) {
            x = LEFT;
            y += 20;
        }
        label_colour((int)li, col, sizeof(col));
        fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" "
                   "font-size=\"12\">", x, y, col, x + 18, y + 12);
        xml_text(b, lab);
        fputs("</text>\n", b);
        x += wd;
    }
    y += 30;
    fclose(b);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
               "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n<rect width=\"100%%\" "
               "height=\"100%%\" fill=\"#fff\"/>\n", WIDTH, y, WIDTH, y);
    fwrite(body, 1, blen, f);
    fputs("</svg>\n", f);
    free(body);
    fclose(f);
    json_decref(seen);
    int ret = fv_write_file_atomic(path, buf, len);
    free(buf);
    return ret < 0 ? -2 : 0;
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
        csv_rows(out, j, o->window > 0);
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

    Inputs in = { .spool_fd = -1 };
    for (int i = optind; i < argc && rc < FV_EXIT_RUNTIME && rc != FV_EXIT_USAGE; i++) {
        int r = add_arg(&in, argv[i]);
        rc = r > rc ? r : rc;
    }
    if (o.list && rc < FV_EXIT_RUNTIME && rc != FV_EXIT_USAGE) {
        int r = add_list(&in, o.list);
        rc = r > rc ? r : rc;
    }
    if (rc == FV_EXIT_USAGE || rc == FV_EXIT_RUNTIME || in.n == 0) {
        if (!rc) { /* only an empty --list gets here without a message */
            fv_cli_error("classify", "%s: no clip listed", o.list);
            rc = FV_EXIT_INPUT;
        }
        inputs_free(&in);
        return rc;
    }

    FvModel *m = NULL;
    int r0 = fv_cli_load_model("classify", o.model, &m);
    if (r0) {
        inputs_free(&in);
        return r0;
    }
    if (o.labels_file) {
        int r = read_lines(o.labels_file, &o.labels, &o.nlabels);
        while (!r && o.nlabels > 0 && !o.labels[o.nlabels - 1][0]) /* trailing empty lines */
            free(o.labels[--o.nlabels]);
        const int32_t L = fv_model_config(m)->num_labels;
        if (!r && o.nlabels != L) {
            fv_cli_error("classify", "%s: %d labels, the model has %d classes", o.labels_file, o.nlabels, L);
            r = FV_EXIT_INPUT;
        }
        if (r) {
            free_lines(o.labels, o.nlabels);
            fv_model_close(&m);
            inputs_free(&in);
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
        csv_header(out, o.window > 0);

    const size_t nclips = in.n;
    const int tty = isatty(STDERR_FILENO);
    const double t_start = fv_cli_now_ms();
    double t_last = t_start;
    int failed = 0;
    for (size_t i = 0; i < nclips; i++) {
        const Input *cur = &in.v[i];
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
            input_error(cur, msg, sizeof(msg));
            fv_cli_error("classify", "%s", msg);
            int code = fv_cli_exit_code(ret);
            rc = code > rc ? code : rc;
            failed++;
            if (o.format != FV_OUT_TEXT)
                emit(out, &o, all, json_pack("{s:s, s:s}", "path", cur->name, "error", msg));
        } else if (tl) {
            if (o.format == FV_OUT_TEXT) {
                print_timeline_text(out, tl);
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
        int r = write_svg(o.timeline, svg_clips);
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
    free_lines(o.labels, o.nlabels);
    inputs_free(&in);
    return rc;
}
