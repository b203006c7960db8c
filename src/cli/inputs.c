/* classify's inputs: command-line operands, directories, --list files and stdin (declared in cli.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int inputs_add(FvInputs *in, const char *path, const char *name)
{
    if (in->n == in->cap) {
        size_t nc = in->cap ? in->cap * 2 : 16;
        FvInput *v = realloc(in->v, nc * sizeof(*v));
        if (!v)
            return -1;
        in->v = v;
        in->cap = nc;
    }
    FvInput *e = &in->v[in->n];
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

void fv_inputs_free(FvInputs *in)
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
static int add_dir(FvInputs *in, const char *dir, int depth)
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
static int add_stdin(FvInputs *in)
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
int fv_inputs_add_arg(FvInputs *in, const char *arg)
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
int fv_cli_read_lines(const char *path, char ***out, int32_t *n)
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

void fv_cli_free_lines(char **v, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int fv_inputs_add_list(FvInputs *in, const char *list)
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
    int rc = fv_cli_read_lines(list, &lines, &n);
    for (int32_t i = 0; !rc && i < n; i++) {
        const char *l = lines[i];
        while (*l == ' ' || *l == '\t')
            l++;
        if (*l && *l != '#' && inputs_add(in, l, NULL) < 0)
            rc = FV_EXIT_RUNTIME;
    }
    fv_cli_free_lines(lines, n);
    return rc;
}

/* The library's message with the opened path shown as the user gave it ('-' for stdin). */
void fv_input_error(const FvInput *in, char *buf, size_t n)
{
    const char *msg = fv_last_error()[0] ? fv_last_error() : "failed";
    const char *at = strcmp(in->path, in->name) ? strstr(msg, in->path) : NULL;
    if (at)
        snprintf(buf, n, "%.*s%s%s", (int)(at - msg), msg, in->name, at + strlen(in->path));
    else
        snprintf(buf, n, "%s", msg);
}
