/* Recording a run's command-line options in its run.json and taking them back for --resume (runrecord.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "runrecord.h"

static int in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (!strcmp(*list, name))
            return 1;
    return 0;
}

const char *fv_cli_option_name(const struct option *longopts, int c, int li)
{
    if (li >= 0)
        return longopts[li].name;
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

/* The value an option is recorded with: file names made absolute; a flag is true. */
static json_t *record_value(const FvCliRecordSpec *s, const char *name, const char *value)
{
    if (!value)
        return json_true();
    if (in_list(s->paths, name) && !(s->not_a_path && s->not_a_path(name, value))) {
        char *abs = realpath(value, NULL);
        if (abs) {
            json_t *v = json_string(abs);
            free(abs);
            return v;
        }
    }
    return json_string(value);
}

/* Whether option @name given as @value (NULL: a flag) is the recorded @rec: numbers by value, files by their
 * absolute path, the rest as text. */
static int same_value(const FvCliRecordSpec *s, const char *name, const char *value, const json_t *rec)
{
    if (!value || json_is_true(rec))
        return !value && json_is_true(rec);
    const char *r = json_string_value(rec);
    json_t *v = record_value(s, name, value);
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

int fv_cli_record_check(const FvCliRecordSpec *s, const json_t *opts, const FvCliGiven *given, int n,
                        const char *path)
{
    for (int i = 0; i < n; i++) {
        const char *name = given[i].name, *val = given[i].value;
        if (in_list(s->unrecorded, name) || in_list(s->changeable, name))
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
        if (in_list(s->unrecorded, key) || !(json_is_string(val) || json_is_true(val)))
            continue;
        json_t *opt = json_sprintf("--%s", key);
        if (!opt || json_array_append_new(names, opt) < 0) {
            free(a);
            return NULL;
        }
        a[n++] = (char *)json_string_value(opt);
        if (json_is_string(val))
            a[n++] = (char *)json_string_value(val);
    }
    for (int i = 1; i < argc; i++)
        a[n++] = argv[i];
    *nargs = n;
    return a;
}

json_t *fv_cli_record_merge(const FvCliRecordSpec *s, const json_t *opts, const FvCliGiven *given, int n)
{
    json_t *r = opts ? json_deep_copy(opts) : json_object();
    if (!r)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (in_list(s->unrecorded, given[i].name))
            continue;
        if (json_object_set_new(r, given[i].name, record_value(s, given[i].name, given[i].value)) < 0) {
            json_decref(r);
            return NULL;
        }
    }
    return r;
}

int fv_cli_json_write_atomic(const char *path, const json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
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
