/* The fibvid command-line tool: subcommands and the option handling they share. The CLI is a thin layer
 * over the library: it parses options into library settings, calls the library and formats results. */
#ifndef FV_CLI_H
#define FV_CLI_H

#include <stdio.h>

#include "fibvid/fibvid.h"

#include <getopt.h>

/* Exit codes (documented in README.md and every --help). */
enum {
    FV_EXIT_OK = 0,
    FV_EXIT_USAGE = 1,   /* bad command line */
    FV_EXIT_INPUT = 2,   /* bad input: missing/corrupt clip or model, no video stream, ... */
    FV_EXIT_RUNTIME = 3, /* runtime failure: out of memory, internal error */
};

typedef enum FvOutFormat { FV_OUT_TEXT = 0, FV_OUT_JSON, FV_OUT_JSONL, FV_OUT_CSV, FV_OUT_SVG, FV_OUT_PNG } FvOutFormat;

int fv_cli_classify(int argc, char **argv);
int fv_cli_info(int argc, char **argv);
int fv_cli_bench(int argc, char **argv);
int fv_cli_masks(int argc, char **argv);
int fv_cli_evaluate(int argc, char **argv);
int fv_cli_merge(int argc, char **argv);
int fv_cli_diversity(int argc, char **argv);
int fv_cli_synth(int argc, char **argv);
int fv_cli_train(int argc, char **argv);

/* Exit code for a library error code. */
int fv_cli_exit_code(int err);

/* Print "fibvid <cmd>: <message>" to stderr (one line). */
void fv_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Join the other MPI ranks when mpirun/srun started several (fibvid/dist.h); ranks other than 0 then print
 * nothing (rank 0 speaks for all; FIBVID_ALL_RANKS_VERBOSE=1 keeps their output). Returns -1 to go on, or an
 * exit code after rank 0 said why not (a launch as several processes of a build without MPI). */
int fv_cli_dist_start(const char *cmd);

/* Verbosity of every command: -q/--quiet (-1: errors only, no progress or warnings), -v/--verbose (1, 2: FFmpeg's
 * own warnings / info too), taken from the command line by main() wherever they appear. */
void fv_cli_set_verbosity(int v);
int fv_cli_quiet(void);
int fv_cli_verbose(void);
/* "fibvid <cmd>: warning: <message>" on stderr (one line), unless quiet. @cmd may be NULL ("fibvid: warning:"). */
void fv_cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* @one when @n is 1, else @many ("1 clip", "2 clips"). */
const char *fv_cli_plural(long n, const char *one, const char *many);
/* Said once per run on stderr when the bundled default model is used (and by `info`). */
extern const char fv_cli_default_model_note[];
/* The one line for an option getopt_long refused ('?'): unknown, ambiguous, or missing its value, and "see fibvid
 * CMD --help" (the help itself is not printed). Returns FV_EXIT_USAGE. Needs opterr = 0 (main sets it). */
int fv_cli_bad_option(const char *cmd, char **argv, const char *shortopts, const struct option *longopts);

/* "bad value 'V' for --OPT (valid: <the option's line of the command's help>)": the help lines give every
 * option's values and default, so the message names them without a second copy. */
void fv_cli_bad_value(const char *cmd, const char *opt, const char *value, void (*help)(FILE *));

/* Parse a decimal integer in [lo, hi]; 0 on success. */
int fv_cli_parse_int(const char *s, long lo, long hi, long *out);
/* PSViT options (SPEC 4.3): "--token-pool 1:avg,2:conv" into @pools / *@n; "--share-spatial 2,3" into a bit per
 * layer. 0 or -1 (malformed). */
int fv_cli_parse_pools(const char *s, FvTokenPool *pools, int32_t *n);
int fv_cli_parse_layers(const char *s, uint64_t *bits);
extern const char fv_cli_psvit_help[];
/* Parse --format values allowed by @allowed (bit mask of 1 << FvOutFormat). */
int fv_cli_parse_format(const char *s, unsigned allowed, FvOutFormat *out);
/* "text, json, csv": the names in @allowed, for error messages. Static storage. */
const char *fv_cli_format_list(unsigned allowed);

/* Attention overrides given on the command line (every subcommand that runs a model takes them). */
typedef struct FvAttnOverrides {
    int spatial_kind, temporal_kind;   /* -1: keep the model's */
    int variant, semantics, shuffle;   /* -1: keep */
    int wmin, wmax, twmin, twmax;      /* 0: keep */
} FvAttnOverrides;

void fv_cli_attn_overrides_init(FvAttnOverrides *o);
/* Handle one attention option (long name without dashes); returns 1 if it was one, 0 if not, -1 on a bad
 * value (message printed). */
int fv_cli_attn_option(FvAttnOverrides *o, const char *cmd, const char *name, const char *value);
/* The overrides on top of @s and @t (a model's settings). */
void fv_cli_attn_resolve(const FvAttnOverrides *o, FvAttnSettings *s, FvAttnSettings *t);
/* Apply to a model; warns on stderr when a kind's own tensors are missing (taken as zero). */
int fv_cli_attn_apply(const FvAttnOverrides *o, FvModel *m);
/* --precision fp32|bf16 (classify, evaluate, diversity, bench): the getopt_long entry, and the value's check: 0,
 * or FV_EXIT_USAGE after one line (an unknown value; bf16 on a CPU or build without it). The models the command
 * loads afterwards with fv_cli_load_model() use it. */
#define FV_OPT_PRECISION 0x1300
#define FV_CLI_PRECISION_LONGOPT { "precision", required_argument, NULL, FV_OPT_PRECISION }
int fv_cli_precision_option(const char *cmd, const char *value);
/* The precision chosen (FV_PRECISION_DEFAULT: none, the model config's). */
FvPrecision fv_cli_precision(void);
/* bench's --precision LIST: fp32, bf16, or both comma-separated in the order to run them, each at most once (so
 * two entries are both precisions) and each checked as fv_cli_precision_option() does. Fills @out[0..*n): 0, or
 * FV_EXIT_USAGE after one line. */
int fv_cli_precision_list(const char *cmd, const char *value, FvPrecision out[2], int *n);

/* getopt_long entries for the attention options (val = FV_OPT_ATTN), and their help text. */
#define FV_OPT_ATTN 0x1000
#define FV_CLI_ATTN_LONGOPTS                                                         \
    { "spatial-attn", required_argument, NULL, FV_OPT_ATTN },                        \
    { "temporal-attn", required_argument, NULL, FV_OPT_ATTN },                       \
    { "fib-variant", required_argument, NULL, FV_OPT_ATTN },                         \
    { "fib-semantics", required_argument, NULL, FV_OPT_ATTN },                       \
    { "fib-wmin", required_argument, NULL, FV_OPT_ATTN },                            \
    { "fib-wmax", required_argument, NULL, FV_OPT_ATTN },                            \
    { "fib-temporal-wmin", required_argument, NULL, FV_OPT_ATTN },                   \
    { "fib-temporal-wmax", required_argument, NULL, FV_OPT_ATTN },                   \
    { "fib-shuffle", required_argument, NULL, FV_OPT_ATTN }
extern const char fv_cli_attn_help[];

/* "DIR/NAME", malloc'd (NULL when out of memory). */
char *fv_cli_path_join(const char *dir, const char *name);
/* Model path used when -m is not given: $FIBVID_MODEL, else the bundled default model. NULL when none. */
const char *fv_cli_default_model(void);
/* Load -m PATH (or the default) and report errors; returns an exit code (0 on success). */
int fv_cli_load_model(const char *cmd, const char *path, FvModel **out);
/* An output file the command will write at the end: checked before any work (its directory exists and takes a
 * new file, @path is not a directory). 0, or FV_EXIT_INPUT after one line naming the file and the OS reason. */
int fv_cli_check_writable(const char *cmd, const char *path);
/* An output directory that must not hold another run's files: 1 when @dir exists and is not empty, 0 when it is
 * missing or empty, -1 when it is not a directory (message printed). */
int fv_cli_dir_in_use(const char *cmd, const char *dir);

/* "M:SS" or "H:MM:SS" of @s seconds into @buf (progress lines). */
void fv_cli_fmt_eta(double s, char *buf, size_t n);

/* Monotonic clock in milliseconds. */
double fv_cli_now_ms(void);

/* Clip options of the subcommands that decode clips (views, sampling, frames, size): fill @p s (already
 * defaulted with fv_predict_default_settings) from option @p name (long name without dashes); returns 1 if it
 * was one, 0 if not, -1 on a bad value (message printed). */
int fv_cli_clip_option(FvPredictSettings *s, const char *cmd, const char *name, const char *value);
#define FV_OPT_CLIP 0x1100
#define FV_CLI_CLIP_LONGOPTS                                                         \
    { "views", required_argument, NULL, FV_OPT_CLIP },                               \
    { "sampling", required_argument, NULL, FV_OPT_CLIP },                            \
    { "frames", required_argument, NULL, FV_OPT_CLIP },                              \
    { "rate", required_argument, NULL, FV_OPT_CLIP },                                \
    { "dense-start", required_argument, NULL, FV_OPT_CLIP },                         \
    { "short-side", required_argument, NULL, FV_OPT_CLIP }
/* Parse --views TxS (T 1..64, S 1 or 3); 0 on success. */
int fv_cli_parse_views(const char *s, int32_t *t, int32_t *sv);

/* Evaluation reports shared by `evaluate` and `merge` (record.c): set @key of DIR/summary.json to @value
 * (reference stolen; the file is rewritten atomically; errors printed as @cmd's), and print the summary's
 * figures to @f. */
struct json_t;
int fv_cli_summary_set(const char *cmd, const char *dir, const char *key, struct json_t *value);
int fv_cli_summary_print(const char *cmd, const char *dir, FILE *f);

/* Names for enums. */
const char *fv_cli_sampling_name(FvSampling s);

/* Options recorded with a run (record.c): train and evaluate keep them in DIR/run.json ("options"), so that
 * `--resume --out DIR` needs nothing else. */
/* An option as given on the command line: its long name and value (NULL for a flag; points into argv). */
typedef struct FvCliGiven {
    const char *name, *value;
} FvCliGiven;

/* How a command records its options. The lists are NULL-terminated long names. */
typedef struct FvCliRecordSpec {
    const char *cmd;                  /* "train" */
    const char *const *unrecorded;    /* not part of the run: where it goes, how this invocation talks */
    const char *const *changeable;    /* recorded and taken over, but a given value replaces the run's */
    const char *const *paths;         /* file names: recorded as absolute paths */
    /* the value a run used without the option (NULL: none); may be NULL */
    const char *(*default_of)(const char *name);
    /* 1 when @value of path option @name names no file (a preset name, say); may be NULL */
    int (*not_a_path)(const char *name, const char *value);
} FvCliRecordSpec;

/* 1 when @name is in the NULL-terminated @list. */
int fv_cli_in_list(const char *const *list, const char *name);
/* The long name of the option getopt_long() returned as @c with long index @li (-1 for a short one). */
const char *fv_cli_option_name(const struct option *longopts, int c, int li);
/* The value an option is recorded with: file names made absolute; a flag is true. New reference. */
struct json_t *fv_cli_record_value(const FvCliRecordSpec *s, const char *name, const char *value);
/* Load the record @path (DIR/run.json): -1 with *@doc the file (NULL when there is none), or an exit code after
 * one line (not JSON). */
int fv_cli_record_load(const FvCliRecordSpec *s, const char *path, struct json_t **doc);
/* The given options against the recorded @opts: -1 when every recorded one agrees (numbers by value, files by
 * absolute path), else FV_EXIT_USAGE after one line naming the first that differs. Changeable options pass. */
int fv_cli_record_check(const FvCliRecordSpec *s, const struct json_t *opts, const FvCliGiven *given, int n,
                        const char *path);
/* argv with the recorded options first, then @argv[1..] (given options come last and win); the "--name"
 * strings live in @names; the array is malloc'd, *@nargs its length. NULL when out of memory. */
char **fv_cli_record_argv(const FvCliRecordSpec *s, const struct json_t *opts, int argc, char **argv,
                          struct json_t *names, int *nargs);
/* @opts (may be NULL) with the given options set over them (unrecorded ones left out). New reference. */
struct json_t *fv_cli_record_merge(const FvCliRecordSpec *s, const struct json_t *opts, const FvCliGiven *given, int n);
/* --resume --out @out: load @out/run.json into *@rec (NULL when there is none), check the given options against
 * its "options", and parse the recorded options with the given ones over them again through @reparse (into the
 * caller's settings; *@args, *@nargs: the argv it parsed, free() it; its "--name" strings live in @names).
 * -1 to go on, or an exit code after one line. */
int fv_cli_record_resume(const FvCliRecordSpec *s, const char *out, int argc, char **argv, const FvCliGiven *given,
                         int ngiven, struct json_t *names, struct json_t **rec, char ***args, int *nargs,
                         int (*reparse)(int argc, char **argv, void *ctx), void *ctx);
/* @doc to @path atomically, indented, keys in order, final newline. 0 or a negative code. */
int fv_cli_json_write_atomic(const char *path, const struct json_t *doc);


/* ---- classify (src/cli/inputs.c, src/cli/classify_output.c) ---- */
/* classify's inputs: clips named on the command line, directories (searched for video files), --list files and
 * stdin ('-': a pipe spooled to an unlinked temporary file). Errors are printed as one line ("fibvid classify:
 * ..."); functions return an exit code (FV_EXIT_*). */
typedef struct FvInput {
    char *path; /* what is opened */
    char *name; /* what is shown ("-" for stdin) */
} FvInput;

typedef struct FvInputs {
    FvInput *v;
    size_t n, cap;
    int spool_fd;     /* the stdin spool, or -1 */
    char *spool_name; /* its name while it still has one (no /proc to reach an unlinked file), or NULL */
    int stdin_used;   /* '-' or --list - took stdin */
} FvInputs;

/* One command-line operand: a directory (its video files, sorted, searched recursively), '-' or a clip (kept as
 * given: a missing one fails when classified). */
int fv_inputs_add_arg(FvInputs *in, const char *arg);
/* The clips listed in @list, one a line ("-": stdin; blank lines and '#' comments skipped). */
int fv_inputs_add_list(FvInputs *in, const char *list);
void fv_inputs_free(FvInputs *in);
/* The library's last error with the opened path shown as the user gave it ('-' for stdin). */
void fv_input_error(const FvInput *in, char *buf, size_t n);

/* Lines of a text file ("-": stdin), trailing CR/LF removed; *@n lines. Returns an exit code. */
int fv_cli_read_lines(const char *path, char ***out, int32_t *n);
void fv_cli_free_lines(char **v, int32_t n);

/* classify's result writers that do not depend on the model: a timeline as text, CSV rows of a clip's JSON result,
 * and the SVG strip of timelines (--timeline). */
/* A timeline as text: one line per window, its top-k. */
void fv_classify_print_timeline(FILE *out, const struct json_t *j);
/* The CSV header, with the window columns when @windows. */
void fv_classify_csv_header(FILE *out, int windows);
/* Rows of one clip's JSON result (or error): one per rank (x window). */
void fv_classify_csv_rows(FILE *out, const struct json_t *j, int windows);
/* One panel per timeline in @clips (an array of clip results with "windows"). Returns 0, -1 (out of memory) or
 * -2 (the file could not be written: fv_last_error() says why). */
int fv_classify_write_timeline_svg(const char *path, const struct json_t *clips);

#endif /* FV_CLI_H */
