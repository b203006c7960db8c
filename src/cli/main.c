/* fibvid command-line entry point: dispatches to the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fibvid <command> [options]\n"
            "\n"
            "commands:\n"
            "  classify   top-k action labels for one or more clips\n"
            "  info       describe a model (architecture, parameters, labels, preprocessing, attention)\n"
            "  bench      time the forward pass (or `bench attention`: the attention kernels alone)\n"
            "  masks      Fibottention offsets, densities and overlap of every head (JSON, SVG, PNG)\n"
            "  evaluate   accuracy on a dataset split or list (UCF101, HMDB51, MMAction2/PySlowFast lists),\n"
            "             resumable, shardable; writes summary.json, predictions, per-class and confusion files\n"
            "  merge      combine the output directories of `evaluate --shard K/N` runs into one\n"
            "  diversity  per-head attention diagnostics and head similarity over clips, dense vs Fibottention\n"
            "             side by side: diversity.json and a self-contained report.html\n"
            "  synth      render a procedural action data set (UCF101 layout, MPEG-4 AVI, seeded)\n"
            "  train      train or fine-tune a model (AdamW, augmentation, checkpoints, --resume, JSONL log)\n"
            "\n"
            "`fibvid <command> --help` or `fibvid help <command>` lists a command's options with their defaults.\n"
            "Every command takes -q/--quiet (errors only: no progress lines, notes or warnings) and -v/--verbose\n"
            "(-v: FFmpeg's own warnings too, -vv: its info messages); `fibvid --version` shows the build.\n"
            "Exit codes: 0 success, 1 usage error, 2 input error (bad clip or model), 3 runtime failure.\n"
            "Environment: FIBVID_MODEL (default model), FIBVID_VERBOSE=1|2 (show FFmpeg's own messages),\n"
            "FIBVID_GEMM=onednn|openblas|reference (matrix-product backend).\n");
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} cmds[] = {
    { "classify", fv_cli_classify },   { "info", fv_cli_info },   { "bench", fv_cli_bench },
    { "masks", fv_cli_masks },         { "evaluate", fv_cli_evaluate }, { "merge", fv_cli_merge },
    { "diversity", fv_cli_diversity }, { "synth", fv_cli_synth }, { "train", fv_cli_train },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static int find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (!strcmp(name, cmds[i].name))
            return (int)i;
    return -1;
}

/* Edit distance (insertions, deletions, substitutions, adjacent swaps) for "did you mean". */
static int distance(const char *a, const char *b)
{
    enum { MAXL = 32 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAXL || lb >= MAXL)
        return 99;
    int d[MAXL][MAXL];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static void version(void)
{
    printf("fibvid %s (%s)\n", fv_version(), fv_build_commit());
    printf("built: %s, C %ld, %s%s\n", __DATE__, (long)__STDC_VERSION__,
#ifdef __clang__
           "clang " __clang_version__,
#elif defined(__GNUC__)
           "gcc " __VERSION__,
#else
           "unknown compiler",
#endif
#ifdef __AVX512F__
           ", -march with AVX-512"
#elif defined(__AVX2__)
           ", -march with AVX2"
#else
           ""
#endif
    );
    /* versions only: loading oneDNN, OpenBLAS and FFmpeg would take ~20x the rest (`fibvid info` says what runs) */
    printf("matrix products: %s backend; %s\n", fv_gemm_backend_current(), fv_libraries_built());
    printf("video: %s\n", fv_video_describe());
    printf("ranks: %s\n", fv_dist_built() ? "MPI (fibvid-mpi.so, loaded when mpirun or srun starts several processes)"
                                           : "one process (built without MPI)");
}

int main(int argc, char **argv)
{
    /* FFmpeg's own log lines would break the one-line error contract; FIBVID_VERBOSE=1|2 or -v/-vv show them */
    const char *verbose = getenv("FIBVID_VERBOSE");
    int verbosity = verbose ? atoi(verbose) : 0;
    /* -q/--quiet and -v/--verbose work on every command: taken out here (up to a "--"), except that the
     * commands with a -q of their own still see it */
    int quiet = 0, nargs = argc > 1 ? 2 : argc;
    const int own_quiet = argc > 1 && (find_cmd(argv[1]) < 0 || (strcmp(argv[1], "info") && strcmp(argv[1], "bench") &&
                                                                    strcmp(argv[1], "masks")));
    for (int i = nargs, dashdash = 0; i < argc; i++) {
        const char *a = argv[i];
        dashdash |= !strcmp(a, "--");
        if (!dashdash && (!strcmp(a, "-v") || !strcmp(a, "--verbose") || !strcmp(a, "-vv"))) {
            verbosity += a[2] == 'v' ? 2 : 1;
            continue;
        }
        if (!dashdash && (!strcmp(a, "-q") || !strcmp(a, "--quiet"))) {
            quiet = 1;
            if (!own_quiet)
                continue;
        }
        argv[nargs++] = argv[i];
    }
    argc = nargs;
    argv[argc] = NULL;
    fv_set_verbosity(verbosity);
    fv_cli_set_verbosity(quiet ? -1 : verbosity);
    opterr = 0; /* the commands print one line for a bad option (fv_cli_bad_option) */
    const char *gemm = getenv("FIBVID_GEMM");
    if (gemm && *gemm && fv_set_gemm_backend(gemm) < 0) {
        fprintf(stderr, "fibvid: FIBVID_GEMM: %s\n", fv_last_error());
        return FV_EXIT_USAGE;
    }
    if (argc < 2) {
        usage(stderr);
        return FV_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        if (!strcmp(cmd, "help") && argc > 2) { /* fibvid help CMD: that command's help */
            int c = find_cmd(argv[2]);
            if (c < 0) {
                fprintf(stderr, "fibvid help: unknown command '%s' (see fibvid --help)\n", argv[2]);
                return FV_EXIT_USAGE;
            }
            char *hargv[] = { argv[2], "--help", NULL };
            return cmds[c].fn(2, hargv);
        }
        usage(stdout);
        return FV_EXIT_OK;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        version();
        return FV_EXIT_OK;
    }
    int c = find_cmd(cmd);
    /* FFmpeg, oneDNN and OpenBLAS load when first used, one after the other on this thread: loading FFmpeg on a
     * background thread meanwhile (fv_video_preload) was slower on the 2-core VM measured (one-clip classify,
     * median of 25 interleaved runs: 166 ms with it and a warm-up forward, 144 ms without; README "Start-up and
     * memory") */
    if (c >= 0)
        return cmds[c].fn(argc - 1, argv + 1);
    int best = -1, bestd = 3;
    for (size_t i = 0; i < NCMDS; i++) {
        int d = distance(cmd, cmds[i].name);
        if (d < bestd) {
            bestd = d;
            best = (int)i;
        }
    }
    if (best >= 0)
        fprintf(stderr, "fibvid: unknown command '%s'; did you mean '%s'? (see fibvid --help)\n", cmd,
                cmds[best].name);
    else
        fprintf(stderr, "fibvid: unknown command '%s' (see fibvid --help)\n", cmd);
    return FV_EXIT_USAGE;
}
