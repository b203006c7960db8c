/* The options a run records in its output directory (the "options" object of DIR/run.json), so that
 * `--resume --out DIR` needs nothing else: what was given is replayed, what is given again is checked
 * against it (one line naming the option and both values, whole). Used by `train` and `evaluate`. */
#ifndef FV_CLI_RUNRECORD_H
#define FV_CLI_RUNRECORD_H

#include <getopt.h>

#include <jansson.h>

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

/* The long name of the option getopt_long() returned as @c with long index @li (-1 for a short one). */
const char *fv_cli_option_name(const struct option *longopts, int c, int li);

/* Load the record @path (DIR/run.json). Returns -1 with *@doc the whole file, or NULL when there is none (or it
 * records no options: an older run), or an exit code after one line (a file that is not JSON). */
int fv_cli_record_load(const FvCliRecordSpec *s, const char *path, json_t **doc);

/* The given options against the recorded @opts: -1 when every one that is recorded (or has a default) has its
 * value there (numbers by value, files by absolute path), else FV_EXIT_USAGE after one line naming the first
 * that differs and the run's value (@path is named as where it is recorded). Changeable options pass. */
int fv_cli_record_check(const FvCliRecordSpec *s, const json_t *opts, const FvCliGiven *given, int n,
                        const char *path);

/* argv with the recorded options first (those not unrecorded), then @argv[1..]: parsed again, the given options
 * come last and win. The "--name" strings live in @names (a JSON array the caller owns); the array itself is
 * malloc'd (free() it), *@nargs its length. NULL when out of memory. */
char **fv_cli_record_argv(const FvCliRecordSpec *s, const json_t *opts, int argc, char **argv, json_t *names,
                          int *nargs);

/* What the run records now: @opts (may be NULL) with the given options set over them (unrecorded ones left
 * out). New reference, NULL when out of memory. */
json_t *fv_cli_record_merge(const FvCliRecordSpec *s, const json_t *opts, const FvCliGiven *given, int n);

/* Write @doc to @path atomically (fv_write_file_atomic), indented, keys in order, with a final newline.
 * 0 or a negative code (fv_last_error() says why). */
int fv_cli_json_write_atomic(const char *path, const json_t *doc);

#endif /* FV_CLI_RUNRECORD_H */
