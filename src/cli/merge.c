/* `fibvid merge`: combine the output directories of `fibvid evaluate --shard K/N` runs into the files one
 * unsharded run writes (the library checks that the shards agree and are complete). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "fibvid/eval.h"

#define CMD "merge"

static void help(FILE *f)
{
    fprintf(f,
        "usage: fibvid merge --out DIR SHARD_DIR...\n"
        "\n"
        "Combine the output directories of `fibvid evaluate --shard K/N` (all N of them, each complete) into\n"
        "DIR: the same run.json, predictions.jsonl, failures.jsonl, summary.json, per_class.csv,\n"
        "confusion.csv, confusion.svg and confusion.png an unsharded run writes. The shards must agree on\n"
        "the model, the list and every setting. summary.json's `timing` sums the shards' own timings.\n"
        "\n"
        "  -o, --out DIR           output directory, created when missing; must hold no results (required)\n"
        "  -q, --quiet             print nothing on success\n"
        "  -h, --help              this help\n"
        "\n"
        "Exit codes: 0 success, 1 usage error, 2 input error (shards missing, incomplete or from different\n"
        "runs), 3 runtime failure.\n");
}

/* The shards' `timing` objects: times add up (the work done), elapsed_s_max is the slowest shard. */
static json_t *merged_timing(char *const *dirs, int n)
{
    double elapsed_sum = 0, elapsed_max = 0, loop = 0, wait = 0, decode = 0, fwd = 0;
    json_int_t clips = 0, videos = 0;
    int found = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dirs[i]) + 16;
        char *p = malloc(len);
        if (!p)
            continue;
        snprintf(p, len, "%s/summary.json", dirs[i]);
        json_t *s = json_load_file(p, 0, NULL);
        free(p);
        json_t *t = json_object_get(s, "timing");
        if (json_is_object(t)) {
            double el = json_number_value(json_object_get(t, "elapsed_s"));
            elapsed_sum += el;
            elapsed_max = el > elapsed_max ? el : elapsed_max;
            loop += json_number_value(json_object_get(t, "loop_s"));
            wait += json_number_value(json_object_get(t, "decode_wait_s"));
            decode += json_number_value(json_object_get(t, "decode_s"));
            fwd += json_number_value(json_object_get(t, "forward_s"));
            clips += json_integer_value(json_object_get(t, "clips"));
            videos += json_integer_value(json_object_get(t, "videos"));
            found++;
        }
        json_decref(s);
    }
    json_t *o = json_object();
    json_object_set_new(o, "shards", json_integer(n));
    json_object_set_new(o, "shards_with_timing", json_integer(found));
    json_object_set_new(o, "elapsed_s_max", json_real(round(elapsed_max * 1e3) / 1e3));
    json_object_set_new(o, "elapsed_s_sum", json_real(round(elapsed_sum * 1e3) / 1e3));
    json_object_set_new(o, "loop_s_sum", json_real(round(loop * 1e3) / 1e3));
    json_object_set_new(o, "decode_wait_s_sum", json_real(round(wait * 1e3) / 1e3));
    json_object_set_new(o, "decode_wait_share", json_real(loop > 0 ? round(wait / loop * 1e4) / 1e4 : 0.0));
    json_object_set_new(o, "decode_s_sum", json_real(round(decode * 1e3) / 1e3));
    json_object_set_new(o, "forward_s_sum", json_real(round(fwd * 1e3) / 1e3));
    json_object_set_new(o, "videos", json_integer(videos));
    json_object_set_new(o, "clips", json_integer(clips));
    json_object_set_new(o, "note", json_string(
        "sums of the timing objects of the shards' summary.json (their last invocation each); "
        "elapsed_s_max is the slowest shard, the wall time when the shards ran side by side"));
    return o;
}

int fv_cli_merge(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "out", required_argument, NULL, 'o' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *out = NULL;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': help(stdout); return FV_EXIT_OK;
        default:
            return fv_cli_bad_option("merge", argv, "o:qh", longopts);
        }
    }
    if (!out) {
        fv_cli_error(CMD, "--out DIR is required (see --help)");
        return FV_EXIT_USAGE;
    }
    if (optind >= argc) {
        fv_cli_error(CMD, "no shard directory given (see --help)");
        return FV_EXIT_USAGE;
    }
    const int n = argc - optind;
    char *const *dirs = argv + optind;
    int ret = fv_eval_merge(out, (const char *const *)dirs, (int32_t)n);
    if (ret < 0) {
        fv_cli_error(CMD, "%s", fv_last_error());
        return fv_cli_exit_code(ret);
    }
    if ((ret = fv_cli_summary_set(CMD, out, "timing", merged_timing(dirs, n))) < 0)
        return FV_EXIT_RUNTIME;
    /* wall_s: the shards ran side by side (a job array), so the run took as long as the slowest shard */
    double wall = 0;
    int known = 1;
    for (int i = 0; i < n && known; i++) {
        char *p = fv_cli_path_join(dirs[i], "summary.json");
        json_t *sj = p ? json_load_file(p, 0, NULL) : NULL;
        const json_t *w = json_object_get(sj, "wall_s");
        known = json_is_number(w);
        if (known && json_number_value(w) > wall)
            wall = json_number_value(w);
        json_decref(sj);
        free(p);
    }
    if ((ret = fv_cli_summary_set(CMD, out, "wall_s", known ? json_real(wall) : json_null())) < 0)
        return FV_EXIT_RUNTIME;
    return quiet ? FV_EXIT_OK : fv_cli_summary_print(CMD, out, stdout);
}
