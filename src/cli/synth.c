/* `fibvid synth`: render the procedural action data set (fibvid/synth.h) in the UCF101 layout. */
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "fibvid/synth.h"

static void help(FILE *f)
{
    FvSynthSettings d;
    fv_synth_default_settings(&d);
    fprintf(f,
        "usage: fibvid synth --out DIR [options]\n"
        "\n"
        "Render a procedural action-recognition data set in the official UCF101 layout: DIR/classInd.txt,\n"
        "DIR/trainlist01.txt, DIR/testlist01.txt (CRLF, UCF101's group split scaled to the clip count),\n"
        "DIR/<Class>/v_<Class>_gGG_cCC.avi (MPEG-4 Part 2 in AVI) and DIR/synth.json (settings, classes,\n"
        "flip_pairs: the classes a horizontal flip swaps). %d classes that only motion tells apart; the same\n"
        "seed and options give the same bytes.\n"
        "\n"
        "  -o, --out DIR             output directory, created when missing (required); one that holds files\n"
        "                            is refused unless --force, which first removes a previous synth run's\n"
        "                            files there (its lists, synth.json and class folders' v_*.avi)\n"
        "      --force               write into a directory that is not empty\n"
        "  -n, --clips-per-class N   clips per class, 2..2000 (default %d)\n"
        "  -s, --seed S              random seed, 0..2^64-1 (default %llu)\n"
        "      --size WxH            frame size, even, 32..1920 x 32..1080 (default %dx%d)\n"
        "      --fps F               frames per second, 1..120 (default %d)\n"
        "      --seconds MIN:MAX     clip length range in seconds, 0 < MIN <= MAX <= 60 (default %g:%g;\n"
        "                            at least 8 frames)\n"
        "      --qscale Q            MPEG-4 quantiser 2..31, lower = larger and sharper (default %d)\n"
        "      --gop N               keyframe interval in frames, 1..300 (default %d)\n"
        "      --clean               plain grey background, no distractors, jitter or noise (to inspect\n"
        "                            the motions; default off)\n"
        "      --list-classes        print the classes, their horizontal-flip and time-reversal partners, and exit\n"
        "  -t, --threads N           threads (default: all cores; the output does not depend on it)\n"
        "  -q, --quiet               no progress on stderr\n"
        "  -h, --help                this help\n"
        "\n"
        "Exit codes: 0 success, 1 usage error, 2 input error (DIR cannot be created or written),\n"
        "3 runtime failure.\n",
        fv_synth_num_classes(), d.clips_per_class, (unsigned long long)d.seed, d.width, d.height, d.fps,
        d.min_seconds, d.max_seconds, d.qscale, d.gop);
}

static int parse_size(const char *s, int32_t *w, int32_t *h)
{
    const char *x = strchr(s, 'x');
    char buf[32];
    long a, b;
    if (!x || x == s || (size_t)(x - s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, (size_t)(x - s));
    buf[x - s] = '\0';
    if (fv_cli_parse_int(buf, 32, 1920, &a) < 0 || fv_cli_parse_int(x + 1, 32, 1080, &b) < 0 || (a & 1) || (b & 1))
        return -1;
    *w = (int32_t)a;
    *h = (int32_t)b;
    return 0;
}

static int parse_seconds(const char *s, double *lo, double *hi)
{
    char *end;
    errno = 0;
    double a = strtod(s, &end);
    if (errno || end == s)
        return -1;
    double b = a;
    if (*end == ':') {
        const char *t = end + 1;
        b = strtod(t, &end);
        if (errno || end == t)
            return -1;
    }
    if (*end || !(a > 0) || !(b >= a) || b > 60)
        return -1;
    *lo = a;
    *hi = b;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static void progress(void *opaque, int64_t done, int64_t total)
{
    (void)opaque;
    fprintf(stderr, "\rfibvid synth: %lld/%lld clips\033[K", (long long)done, (long long)total);
}

static void list_classes(void)
{
    printf("%-5s  %-20s  %-20s  %s\n", "index", "class", "hflip", "reversed");
    for (int32_t i = 0; i < fv_synth_num_classes(); i++)
        printf("%-5d  %-20s  %-20s  %s\n", i + 1, fv_synth_class_name(i),
               fv_synth_class_name(fv_synth_hflip_class(i)), fv_synth_class_name(fv_synth_reverse_class(i)));
}

/* --force: what an earlier run wrote, so that its clips do not stay beside the new ones (a run with more clips
 * per class or other classes leaves more than the new one writes). Other files stay. */
static void remove_previous_run(const char *dir)
{
    static const char *const files[] = { "classInd.txt", "trainlist01.txt", "testlist01.txt", "synth.json" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = fv_cli_path_join(dir, files[i]);
        if (p)
            unlink(p);
        free(p);
    }
    for (int32_t c = 0; c < fv_synth_num_classes(); c++) {
        char *cd = fv_cli_path_join(dir, fv_synth_class_name(c));
        DIR *d = cd ? opendir(cd) : NULL;
        for (struct dirent *e; d && (e = readdir(d));) {
            const size_t n = strlen(e->d_name);
            if (strncmp(e->d_name, "v_", 2) || n < 5 || strcmp(e->d_name + n - 4, ".avi"))
                continue;
            char *f = fv_cli_path_join(cd, e->d_name);
            if (f)
                unlink(f);
            free(f);
        }
        if (d)
            closedir(d);
        if (cd)
            rmdir(cd); /* only when now empty */
        free(cd);
    }
}

int fv_cli_synth(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "out", required_argument, NULL, 'o' },
        { "clips-per-class", required_argument, NULL, 'n' },
        { "seed", required_argument, NULL, 's' },
        { "size", required_argument, NULL, 'Z' },
        { "fps", required_argument, NULL, 'F' },
        { "seconds", required_argument, NULL, 'S' },
        { "qscale", required_argument, NULL, 'Q' },
        { "gop", required_argument, NULL, 'G' },
        { "clean", no_argument, NULL, 'C' },
        { "list-classes", no_argument, NULL, 'L' },
        { "threads", required_argument, NULL, 't' },
        { "quiet", no_argument, NULL, 'q' },
        { "force", no_argument, NULL, 'X' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    FvSynthSettings s;
    fv_synth_default_settings(&s);
    long v, threads = 0;
    int quiet = 0, force = 0, c, li = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:n:s:t:qh", longopts, &li)) != -1) {
        switch (c) {
        case 'o': s.out_dir = optarg; break;
        case 'X': force = 1; break;
        case 'n':
            if (fv_cli_parse_int(optarg, 2, 2000, &v) < 0)
                goto bad;
            s.clips_per_class = (int32_t)v;
            break;
        case 's':
            if (parse_seed(optarg, &s.seed) < 0)
                goto bad;
            break;
        case 'Z':
            if (parse_size(optarg, &s.width, &s.height) < 0)
                goto bad;
            break;
        case 'F':
            if (fv_cli_parse_int(optarg, 1, 120, &v) < 0)
                goto bad;
            s.fps = (int32_t)v;
            break;
        case 'S':
            if (parse_seconds(optarg, &s.min_seconds, &s.max_seconds) < 0)
                goto bad;
            break;
        case 'Q':
            if (fv_cli_parse_int(optarg, 2, 31, &v) < 0)
                goto bad;
            s.qscale = (int32_t)v;
            break;
        case 'G':
            if (fv_cli_parse_int(optarg, 1, 300, &v) < 0)
                goto bad;
            s.gop = (int32_t)v;
            break;
        case 'C': s.clean = 1; break;
        case 'L': list_classes(); return FV_EXIT_OK;
        case 't':
            if (fv_cli_parse_int(optarg, 1, 1024, &threads) < 0)
                goto bad;
            break;
        case 'q': quiet = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        default:
            return fv_cli_bad_option("synth", argv, "o:n:s:t:qh", longopts);
        }
        li = -1;
        continue;
    bad:
        fv_cli_bad_value("synth", fv_cli_option_name(longopts, c, li), optarg, help);
        return FV_EXIT_USAGE;
    }
    if (optind < argc) {
        fv_cli_error("synth", "unexpected argument '%s' (see --help)", argv[optind]);
        return FV_EXIT_USAGE;
    }
    if (!s.out_dir) {
        fv_cli_error("synth", "no output directory given: --out DIR (see --help)");
        return FV_EXIT_USAGE;
    }
    const int used = fv_cli_dir_in_use("synth", s.out_dir);
    if (used < 0)
        return FV_EXIT_INPUT;
    if (used && !force) {
        fv_cli_error("synth", "%s is not empty: choose another --out, or --force to replace a synth run there",
                     s.out_dir);
        return FV_EXIT_INPUT;
    }
    if (used)
        remove_previous_run(s.out_dir);
    fv_set_num_threads((int32_t)threads);
    const int show = !quiet && isatty(STDERR_FILENO);
    double t0 = fv_cli_now_ms();
    int ret = fv_synth_run(&s, show ? progress : NULL, NULL);
    if (show)
        fputc('\n', stderr);
    if (ret < 0) {
        fv_cli_error("synth", "%s", fv_last_error());
        return fv_cli_exit_code(ret);
    }
    if (!quiet)
        fprintf(stderr, "fibvid synth: %d clips (%d classes x %d) written to %s in %.1f s\n",
                fv_synth_num_classes() * s.clips_per_class, fv_synth_num_classes(), s.clips_per_class, s.out_dir,
                (fv_cli_now_ms() - t0) / 1000);
    return FV_EXIT_OK;
}
