/* Options recorded with a run (train's and evaluate's run.json "options"): `--resume --out DIR` takes them from
 * there, a given option that differs is named in one line, and the record is written atomically. Also an
 * evaluation's summary.json (evaluate, merge): one key set atomically, and its one-line summary. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

int fv_cli_in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (!strcmp(*list, name))
            return 1;
    return 0;
}

/* The long name of the option getopt_long() returned as @c with long index @li (-1 for a short one). */
const char *fv_cli_option_name(const struct option *longopts, int c, int li)
{
    if (li >= 0)
        return longopts[li].name;
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

/* @s as JSON: a string when it is UTF-8, else {"bytes": "<%XX form>"} (printable ASCII but '%' kept), so a
 * Latin-1 path is recorded exactly. */
static json_t *text_or_bytes(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    const size_t n = strlen(s);
    char *e = malloc(3 * n + 1), *q = e;
    if (!e)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        q += *p >= 0x20 && *p < 0x7F && *p != '%' ? (*q = (char)*p, 1) : sprintf(q, "%%%02X", *p);
    *q = '\0';
    v = json_pack("{s:s}", "bytes", e);
    free(e);
    return v;
}

/* The bytes a recorded value stands for (a string, or {"bytes": ...} decoded): a new JSON string that may hold
 * any bytes (never written out: argv for the replay). NULL for other values. */
static json_t *recorded_bytes(const json_t *v)
{
    if (json_is_string(v))
        return json_stringn_nocheck(json_string_value(v), json_string_length(v));
    const char *x = json_string_value(json_object_get(v, "bytes"));
    if (!x)
        return NULL;
    char *out = malloc(strlen(x) + 1), *q = out;
    if (!out)
        return NULL;
    for (const char *p = x; *p; p++) {
        unsigned b;
        if (p[0] == '%' && p[1] && p[2] && sscanf(p + 1, "%2x", &b) == 1) {
            *q++ = (char)b;
            p += 2;
        } else {
            *q++ = *p;
        }
    }
    json_t *r = json_stringn_nocheck(out, (size_t)(q - out));
    free(out);
    return r;
}

/* The value an option is recorded with: file names made absolute; a flag is true. */
json_t *fv_cli_record_value(const FvCliRecordSpec *s, const char *name, const char *value)
{
    if (!value)
        return json_true();
    if (fv_cli_in_list(s->paths, name) && !(s->not_a_path && s->not_a_path(name, value))) {
        char *abs = realpath(value, NULL);
        if (abs) {
            json_t *v = text_or_bytes(abs);
            free(abs);
            return v;
        }
    }
    return text_or_bytes(value);
}

/* Whether option @name given as @value (NULL: a flag) is the recorded @rec: numbers by value, files by their
 * absolute path, the rest as text. */
static int same_value(const FvCliRecordSpec *s, const char *name, const char *value, const json_t *rec)
{
    if (!value || json_is_true(rec))
        return !value && json_is_true(rec);
    const char *r = json_string_value(rec);
    json_t *v = fv_cli_record_value(s, name, value);
    if (json_is_object(rec) || json_is_object(v)) { /* bytes: equal or not */
        const int eq = json_equal(rec, v);
        json_decref(v);
        return eq;
    }
    const char *g = json_string_value(v);
    int same = 0;
    if (r && g) {
        char *e1, *e2;
        const double x = strtod(g, &e1), y = strtod(r, &e2);
        same = *g && *r && !*e1 && !*e2 ? x == y : !strcmp(g, r);
    }
    json_decref(v);
    return same;
}

/* Load the record @path (DIR/run.json). Returns -1 with *@doc the whole file, or NULL when there is none (or it
 * records no options: an older run), or an exit code after one line (a file that is not JSON). */
int fv_cli_record_load(const FvCliRecordSpec *s, const char *path, json_t **doc)
{
    *doc = NULL;
    if (access(path, F_OK) != 0)
        return -1;
    json_error_t jerr;
    json_t *d = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(d)) {
        fv_cli_error(s->cmd, "%s: %s", path, d ? "not a JSON object" : jerr.text);
        json_decref(d);
        return FV_EXIT_INPUT;
    }
    const json_t *opts = json_object_get(d, "options");
    if (opts && !json_is_object(opts)) {
        fv_cli_error(s->cmd, "%s: \"options\" is not an object", path);
        json_decref(d);
        return FV_EXIT_INPUT;
    }
    *doc = d;
    return -1;
}

/* The given options against the recorded @opts: -1 when every one that is recorded (or has a default) has its
 * value there (numbers by value, files by absolute path), else FV_EXIT_USAGE after one line naming the first
 * that differs and the run's value (@path is named as where it is recorded). Changeable options pass. */
int fv_cli_record_check(const FvCliRecordSpec *s, const json_t *opts, const FvCliGiven *given, int n,
                        const char *path)
{
    for (int i = 0; i < n; i++) {
        const char *name = given[i].name, *val = given[i].value;
        if (fv_cli_in_list(s->unrecorded, name) || fv_cli_in_list(s->changeable, name))
            continue;
        const json_t *r = json_object_get(opts, name);
        json_t *def = NULL;
        const char *dv = !r && s->default_of ? s->default_of(name) : NULL;
        if (dv)
            r = def = json_string(dv);
        if (r && same_value(s, name, val, r)) {
            json_decref(def);
            continue;
        }
        if (!r)
            fv_cli_error(s->cmd, "--%s%s%s: the run was made without --%s (recorded in %s)", name, val ? " " : "",
                         val ? val : "", name, path);
        else if (json_is_true(r) || !val)
            fv_cli_error(s->cmd, "--%s%s%s differs from the run's --%s (recorded in %s)", name, val ? " " : "",
                         val ? val : "", name, path);
        else
            fv_cli_error(s->cmd, "--%s %s differs from the run's %s%s (recorded in %s)", name, val,
                         json_string_value(r) ? json_string_value(r) : "?", def ? " (the default)" : "", path);
        json_decref(def);
        return FV_EXIT_USAGE;
    }
    return -1;
}

/* argv with the recorded options first (those not unrecorded), then @argv[1..]: parsed again, the given options
 * come last and win. The "--name" strings live in @names (a JSON array the caller owns); the array itself is
 * malloc'd (free() it), *@nargs its length. NULL when out of memory. */
char **fv_cli_record_argv(const FvCliRecordSpec *s, const json_t *opts, int argc, char **argv, json_t *names,
                          int *nargs)
{
    char **a = calloc((size_t)argc + 2 * json_object_size(opts) + 1, sizeof(char *));
    if (!a)
        return NULL;
    int n = 0;
    a[n++] = argv[0];
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)opts, key, val) {
        const int bytes = json_is_object(val) && json_is_string(json_object_get(val, "bytes"));
        if (fv_cli_in_list(s->unrecorded, key) || !(json_is_string(val) || json_is_true(val) || bytes))
            continue;
        json_t *opt = json_sprintf("--%s", key);
        if (!opt || json_array_append_new(names, opt) < 0) {
            free(a);
            return NULL;
        }
        a[n++] = (char *)json_string_value(opt);
        if (!json_is_true(val)) {
            json_t *b = recorded_bytes(val);
            if (!b || json_array_append_new(names, b) < 0) {
                free(a);
                return NULL;
            }
            a[n++] = (char *)json_string_value(b);
        }
    }
    for (int i = 1; i < argc; i++)
        a[n++] = argv[i];
    *nargs = n;
    return a;
}

/* What the run records now: @opts (may be NULL) with the given options set over them (unrecorded ones left
 * out). New reference, NULL when out of memory. */
json_t *fv_cli_record_merge(const FvCliRecordSpec *s, const json_t *opts, const FvCliGiven *given, int n)
{
    json_t *r = opts ? json_deep_copy(opts) : json_object();
    if (!r)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (fv_cli_in_list(s->unrecorded, given[i].name))
            continue;
        if (json_object_set_new(r, given[i].name, fv_cli_record_value(s, given[i].name, given[i].value)) < 0) {
            json_decref(r);
            return NULL;
        }
    }
    return r;
}

/* Write @doc to @path atomically (fv_write_file_atomic), indented, keys in order, with a final newline.
 * 0 or a negative code (fv_last_error() says why). */
int fv_cli_json_write_atomic(const char *path, const json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (!text)
        return FV_ENOMEM;
    const size_t n = strlen(text);
    char *t = realloc(text, n + 2);
    if (!t) {
        free(text);
        return FV_ENOMEM;
    }
    memcpy(t + n, "\n", 2);
    const int ret = fv_write_file_atomic(path, t, n + 1);
    free(t);
    return ret;
}

int fv_cli_record_resume(const FvCliRecordSpec *s, const char *out, int argc, char **argv, const FvCliGiven *given,
                         int ngiven, json_t *names, json_t **rec, char ***args, int *nargs,
                         int (*reparse)(int argc, char **argv, void *ctx), void *ctx)
{
    char *rp = fv_cli_path_join(out, "run.json");
    int rc;
    if (!rp) {
        fv_cli_error(s->cmd, "out of memory");
        return FV_EXIT_RUNTIME;
    }
    if ((rc = fv_cli_record_load(s, rp, rec)) >= 0)
        goto done;
    const json_t *ro = json_object_get(*rec, "options");
    if (ro) {
        if ((rc = fv_cli_record_check(s, ro, given, ngiven, rp)) >= 0)
            goto done;
        if (!(*args = fv_cli_record_argv(s, ro, argc, argv, names, nargs))) {
            fv_cli_error(s->cmd, "out of memory");
            rc = FV_EXIT_RUNTIME;
            goto done;
        }
        rc = reparse(*nargs, *args, ctx);
    }
done:
    free(rp);
    return rc;
}

/* summary.json of an evaluation directory (evaluate, merge): one key set atomically, the one-line summary */
int fv_cli_summary_set(const char *cmd, const char *dir, const char *key, json_t *value)
{
    char *path = fv_cli_path_join(dir, "summary.json");
    json_t *o = NULL;
    json_error_t jerr;
    int ret = FV_ENOMEM;
    if (!path || !value)
        goto done;
    if (!(o = json_load_file(path, 0, &jerr)) || !json_is_object(o)) {
        fv_cli_error(cmd, "%s: %s", path, o ? "not a JSON object" : jerr.text);
        ret = FV_EINVAL;
        goto done;
    }
    json_object_set(o, key, value);
    if ((ret = fv_cli_json_write_atomic(path, o)) < 0) /* a kill never leaves half a summary */
        fv_cli_error(cmd, "%s", fv_last_error());
done:
    json_decref(o);
    json_decref(value);
    free(path);
    return ret;
}

int fv_cli_summary_print(const char *cmd, const char *dir, FILE *f)
{
    char *path = fv_cli_path_join(dir, "summary.json");
    json_error_t jerr;
    json_t *o = path ? json_load_file(path, 0, &jerr) : NULL;
    if (!o) {
        fv_cli_error(cmd, "%s: %s", path ? path : dir, path ? jerr.text : "out of memory");
        free(path);
        return FV_EXIT_INPUT;
    }
    char acc[128] = "no accuracy: no video evaluated";
    if (json_is_number(json_object_get(o, "top1_acc")))
        snprintf(acc, sizeof(acc), "top1_acc %.2f  top5_acc %.2f  mean_class_acc %.2f",
                 json_number_value(json_object_get(o, "top1_acc")), json_number_value(json_object_get(o, "top5_acc")),
                 json_number_value(json_object_get(o, "mean_class_acc")));
    fprintf(f, "%s: %s  (%lld of %lld %s evaluated, %lld failed%s)\n",
            json_string_value(json_object_get(o, "dataset")) ? json_string_value(json_object_get(o, "dataset")) : "?",
            acc,
            (long long)json_integer_value(json_object_get(o, "num_evaluated")),
            (long long)json_integer_value(json_object_get(o, "num_videos")),
            fv_cli_plural((long)json_integer_value(json_object_get(o, "num_videos")), "video", "videos"),
            (long long)json_integer_value(json_object_get(o, "num_failed")),
            json_is_true(json_object_get(o, "complete")) ? "" : ", INCOMPLETE");
    fprintf(f, "results in %s/\n", dir);
    json_decref(o);
    free(path);
    return FV_EXIT_OK;
}
