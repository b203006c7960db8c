/* fibvid command-line entry point: dispatches to the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "`fibvid <command> --help` lists a command's options with their defaults.\n"
            "Exit codes: 0 success, 1 usage error, 2 input error (bad clip or model), 3 runtime failure.\n"
            "Environment: FIBVID_MODEL (default model), FIBVID_VERBOSE=1|2 (show FFmpeg's own messages),\n"
            "FIBVID_GEMM=onednn|openblas|reference (matrix-product backend).\n");
}

int main(int argc, char **argv)
{
    /* FFmpeg's own log lines would break the one-line error contract; FIBVID_VERBOSE=1|2 shows them */
    const char *verbose = getenv("FIBVID_VERBOSE");
    fv_set_verbosity(verbose ? atoi(verbose) : 0);
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
        usage(stdout);
        return FV_EXIT_OK;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("fibvid %s\n", fv_version());
        return FV_EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "classify", fv_cli_classify },
        { "info", fv_cli_info },
        { "bench", fv_cli_bench },
        { "masks", fv_cli_masks },
        { "evaluate", fv_cli_evaluate },
        { "merge", fv_cli_merge },
        { "diversity", fv_cli_diversity },
        { "synth", fv_cli_synth },
        { "train", fv_cli_train },
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "fibvid: unknown command '%s'\n", cmd);
    usage(stderr);
    return FV_EXIT_USAGE;
}
