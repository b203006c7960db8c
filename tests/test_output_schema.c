/* Every field of every machine-readable output is documented: runs each command that writes JSON, JSONL or
 * CSV on the tiny fixtures (tests/data/tiny_hf, tests/data/clip_ffv1.mkv, a `fibvid synth` data set made
 * here), collects every key path (`timing.elapsed_s`, `top[].prob`; a record file's paths are those of one
 * record) and every CSV column, and checks each against its table in README.md's "Output files and fields"
 * section. A table row's first cell names fields in backticks; `*` stands for one key that is data (a
 * setting or model name, a class), and a nested object documented once (the diagnostics object) is checked
 * against its own table below the key that holds it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "testutil.h"

static char *g_tmp;     /* everything lives here */
static char *g_section; /* README.md's "## Output files and fields" */

static int setup(void **state)
{
    (void)state;
    g_tmp = fvt_tmpdir();
    const char *root = getenv("FIBVID_SRCROOT");
    if (!g_tmp || !root)
        return -1;
    char *p = fvt_join(root, "README.md");
    char *readme = fvt_read_file(p, NULL);
    free(p);
    if (!readme)
        return -1;
    const char *s = strstr(readme, "\n## Output files and fields\n");
    if (s) {
        const char *e = strstr(s + 1, "\n## ");
        size_t n = e ? (size_t)(e - s) : strlen(s);
        g_section = malloc(n + 1);
        memcpy(g_section, s, n);
        g_section[n] = '\0';
    }
    free(readme);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fvt_rmtree(g_tmp);
    free(g_tmp);
    free(g_section);
    return 0;
}

/* Run "fibvid ARGS" in the temporary directory; returns the exit code. */
static int fibvid(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fibvid(const char *fmt, ...)
{
    char args[8192], cmd[12000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' %s", g_tmp, fvt_bin(), args);
    char *err = NULL;
    int rc = fvt_run(cmd, NULL, &err);
    if (rc != 0 && rc != 2)
        printf("fibvid %s -> %d: %s\n", args, rc, err ? err : "");
    free(err);
    return rc;
}

/* ---- the README tables ---- */

/* The documented names of the subsection whose heading line starts with @heading: every backticked word in the
 * first cell of its table rows. NULL-terminated, malloc'd; NULL when there is no such subsection. */
static char **documented(const char *heading)
{
    if (!g_section)
        return NULL;
    const char *h = g_section;
    for (;;) {
        h = strstr(h, "\n#### ");
        if (!h)
            return NULL;
        const char *eol = strchr(h + 1, '\n');
        if (!eol)
            return NULL;
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(eol - h), h);
        h = eol;
        if (!strncmp(line + 6, heading, strlen(heading))) /* "\n#### " + the heading's start */
            break;
    }
    const char *end = strstr(h, "\n#### ");
    if (!end)
        end = h + strlen(h);
    size_t n = 0, cap = 64;
    char **names = malloc(cap * sizeof(*names));
    for (const char *l = h; l && l < end; l = strchr(l + 1, '\n')) {
        if (strncmp(l, "\n| `", 4))
            continue;
        const char *cell_end = strchr(l + 2, '|');
        for (const char *b = strchr(l + 2, '`'); b && b < cell_end;) {
            const char *e = strchr(b + 1, '`');
            if (!e || e > cell_end)
                break;
            if (n + 2 > cap)
                names = realloc(names, (cap *= 2) * sizeof(*names));
            names[n] = malloc((size_t)(e - b));
            memcpy(names[n], b + 1, (size_t)(e - b - 1));
            names[n][e - b - 1] = '\0';
            n++;
            b = strchr(e + 1, '`');
        }
    }
    names[n] = NULL;
    return names;
}

static void free_names(char **names)
{
    for (char **p = names; p && *p; p++)
        free(*p);
    free(names);
}

/* Does the pattern @pat (keys separated by '.', `*` = any one key, `*[]` = any one array's elements) match
 * @path?
 * @mode 0: all of both; 1: @pat matches the first keys of @path (returns the length of @path matched);
 * 2: @path is the first keys of @pat (an object or array documented through its fields: `timing` by
 * `timing.elapsed_s`, `windows` by `windows[].index`). Returns 0 when it does not match. */
static size_t match(const char *pat, const char *path, int mode)
{
    const char *p = pat, *q = path;
    for (;;) {
        size_t lp = strcspn(p, "."), lq = strcspn(q, ".");
        const int q_arr = lq >= 2 && !strncmp(q + lq - 2, "[]", 2);
        int ok;
        if (lp == 1 && *p == '*')
            ok = !q_arr;
        else if (lp == 3 && !strncmp(p, "*[]", 3))
            ok = q_arr;
        else
            ok = (lp == lq && !strncmp(p, q, lp)) ||
                 (mode == 2 && !q[lq] && lp == lq + 2 && !strncmp(p, q, lq) && !strncmp(p + lq, "[]", 2));
        if (!ok)
            return 0;
        p += lp;
        q += lq;
        if (!*q && (!*p || mode == 2))
            return (size_t)(q - path);
        if (!*p)
            return mode == 1 && *q == '.' ? (size_t)(q - path) : 0;
        if (!*q)
            return 0;
        p++;
        q++;
    }
}

static int is_documented(char **names, const char *path)
{
    for (char **d = names; d && *d; d++)
        if (match(*d, path, 0) || match(*d, path, 2))
            return 1;
    return 0;
}

typedef struct Check {
    const char *what;          /* the output, as printed */
    char **names;              /* its table */
    const char *const *nested; /* key paths of objects documented in @nested_heading's table */
    char **nested_names;
    json_t *seen; /* the paths checked (an object used as a set) */
    json_t *missing;
} Check;

static void check_path(Check *c, const char *path)
{
    if (json_object_get(c->seen, path))
        return;
    json_object_set_new(c->seen, path, json_true());
    for (const char *const *n = c->nested; n && *n; n++) {
        size_t len = match(*n, path, 1);
        if (len && path[len] == '.') {
            if (!is_documented(c->nested_names, path + len + 1))
                json_array_append_new(c->missing, json_string(path));
            return;
        }
    }
    if (!is_documented(c->names, path))
        json_array_append_new(c->missing, json_string(path));
}

/* Every key path of @v below @prefix ("" at the top; an array's elements add "[]" to its key). */
static void walk(Check *c, const json_t *v, const char *prefix)
{
    char path[1024];
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k);
            check_path(c, path);
            walk(c, x, path);
        }
    } else if (json_is_array(v)) {
        snprintf(path, sizeof(path), "%s[]", prefix);
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)v, i, x)
            walk(c, x, path);
    }
}

static void begin(Check *c, const char *what, const char *heading, const char *const *nested,
                  const char *nested_heading)
{
    memset(c, 0, sizeof(*c));
    c->what = what;
    c->names = documented(heading);
    if (!c->names)
        fail_msg("README.md \"Output files and fields\" has no subsection \"#### ... %s\"", heading);
    c->nested = nested;
    if (nested_heading) {
        c->nested_names = documented(nested_heading);
        if (!c->nested_names)
            fail_msg("README.md \"Output files and fields\" has no subsection \"#### ... %s\"", nested_heading);
    }
    c->seen = json_object();
    c->missing = json_array();
}

/* Reports the count and the undocumented fields; returns their number. */
static int end(Check *c)
{
    const size_t nmiss = json_array_size(c->missing);
    printf("%-40s %3zu fields checked", c->what, json_object_size(c->seen));
    if (nmiss) {
        printf(", %zu not documented:", nmiss);
        size_t i;
        json_t *m;
        json_array_foreach(c->missing, i, m)
            printf(" %s", json_string_value(m));
    }
    printf("\n");
    free_names(c->names);
    free_names(c->nested_names);
    json_decref(c->seen);
    json_decref(c->missing);
    return (int)nmiss;
}

/* A JSON document (a top-level array: each element is a record) or, @lines, a JSONL file. */
static void check_json(Check *c, const char *name, int lines)
{
    char *p = fvt_join(g_tmp, name);
    char *text = fvt_read_file(p, NULL);
    if (!text)
        fail_msg("%s: missing", p);
    free(p);
    json_error_t e;
    size_t nrec = 0;
    if (lines) {
        for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
            json_t *j = json_loads(l, 0, &e);
            if (!json_is_object(j))
                fail_msg("%s: a line is not a JSON object: %s", name, l);
            walk(c, j, "");
            json_decref(j);
            nrec++;
        }
    } else {
        json_t *j = json_loads(text, 0, &e);
        if (!j)
            fail_msg("%s: %s", name, e.text);
        if (json_is_array(j)) {
            size_t i;
            json_t *x;
            json_array_foreach(j, i, x)
                walk(c, x, "");
        } else {
            walk(c, j, "");
        }
        json_decref(j);
        nrec++;
    }
    free(text);
    assert_true(nrec > 0);
}

/* A CSV header's columns; @data_columns: the columns between the first and the last are data (class names). */
static void check_csv(Check *c, const char *name, int data_columns)
{
    char *p = fvt_join(g_tmp, name);
    char *text = fvt_read_file(p, NULL);
    if (!text)
        fail_msg("%s: missing", p);
    free(p);
    text[strcspn(text, "\r\n")] = '\0';
    int ncol = 1;
    for (const char *s = text; *s; s++)
        ncol += *s == ',';
    int i = 0;
    for (char *col = strtok(text, ","); col; col = strtok(NULL, ","), i++)
        check_path(c, data_columns && i > 0 && i < ncol - 1 ? "*" : col);
    free(text);
}

static const char *const g_diag_in_classify[] = { "clips[].diag", "clips[].windows[].diag", NULL };
static const char *const g_diag_in_diversity[] = { "aggregate.*.mean", "aggregate.*.std", "clips[].settings.*", NULL };

static void test_outputs_documented(void **state)
{
    (void)state;
    if (!g_section)
        fail_msg("README.md has no \"## Output files and fields\" section");
    const char *d = fvt_data_dir();
    double t0 = fvt_now_ms();
    int missing = 0;
    Check c;
    char *v = fvt_join(g_tmp, "v");
    mkdir(v, 0777);
    char *a = fvt_join(v, "a.mkv"), *b = fvt_join(v, "b.mkv"), *bad = fvt_join(v, "bad.avi");
    char *clip = fvt_join(d, "clip_ffv1.mkv");
    size_t n = 0;
    char *bytes = fvt_read_file(clip, &n);
    assert_non_null(bytes);
    assert_int_equal(fvt_write_file(a, bytes, n), 0);
    assert_int_equal(fvt_write_file(b, bytes, n), 0);
    assert_int_equal(fvt_write_file(bad, "not a video\n", 12), 0);
    free(bytes);

    /* classify: one clip and one error each */
    char model[4096];
    snprintf(model, sizeof(model), "-m '%s/tiny_hf'", d);
    assert_int_equal(fibvid("classify -q %s --logits -f json -o c.json v/a.mkv v/bad.avi", model), 2);
    assert_int_equal(fibvid("classify -q %s -f jsonl -o c.jsonl --diag diag.json v/a.mkv v/bad.avi", model), 2);
    assert_int_equal(fibvid("classify -q %s -f csv -o c.csv v/a.mkv v/bad.avi", model), 2);
    const char *W = "--window 0.2 --stride 0.1";
    assert_int_equal(fibvid("classify -q %s %s --logits -f json -o w.json v/a.mkv v/bad.avi", model, W), 2);
    assert_int_equal(fibvid("classify -q %s %s -f jsonl -o w.jsonl --diag wdiag.json v/a.mkv", model, W), 0);
    assert_int_equal(fibvid("classify -q %s %s -f csv -o w.csv v/a.mkv v/bad.avi", model, W), 2);
    begin(&c, "classify -f json", "`classify -f json`", NULL, NULL);
    check_json(&c, "c.json", 0);
    missing += end(&c);
    begin(&c, "classify -f jsonl", "`classify -f json`", NULL, NULL);
    check_json(&c, "c.jsonl", 1);
    missing += end(&c);
    begin(&c, "classify -f csv", "`classify -f csv`", NULL, NULL);
    check_csv(&c, "c.csv", 0);
    missing += end(&c);
    begin(&c, "classify --window -f json", "`classify --window`", NULL, NULL);
    check_json(&c, "w.json", 0);
    missing += end(&c);
    begin(&c, "classify --window -f jsonl", "`classify --window`", NULL, NULL);
    check_json(&c, "w.jsonl", 1);
    missing += end(&c);
    begin(&c, "classify --window -f csv", "`classify -f csv`", NULL, NULL);
    check_csv(&c, "w.csv", 0);
    missing += end(&c);
    begin(&c, "classify --diag", "`classify --diag FILE`", g_diag_in_classify, "diagnostics object");
    check_json(&c, "diag.json", 0);
    missing += end(&c);
    begin(&c, "classify --window --diag", "`classify --diag FILE`", g_diag_in_classify, "diagnostics object");
    check_json(&c, "wdiag.json", 0);
    missing += end(&c);

    /* info: a dense HF model, the bundled Fibottention model, a PSViT model */
    assert_int_equal(fibvid("info %s -f json > info1.json", model), 0);
    assert_int_equal(fibvid("info -q -f json > info2.json"), 0);
    assert_int_equal(fibvid("info -m '%s/tiny_psvit_avg_hf' -f json > info3.json", d), 0);
    begin(&c, "info -f json", "`info -f json`", NULL, NULL);
    check_json(&c, "info1.json", 0);
    check_json(&c, "info2.json", 0);
    check_json(&c, "info3.json", 0);
    missing += end(&c);

    /* bench, bench attention, masks */
    assert_int_equal(fibvid("bench %s --iters 1 -t 1 -f json > bench.json", model), 0);
    begin(&c, "bench -f json", "`bench -f json`", NULL, NULL);
    check_json(&c, "bench.json", 0);
    missing += end(&c);
    assert_int_equal(fibvid("bench attention --tokens 4 --frames 2 --heads 2 --head-dim 8 --iters 1 -f json "
                            "> battn.json"), 0);
    begin(&c, "bench attention -f json", "`bench attention -f json`", NULL, NULL);
    check_json(&c, "battn.json", 0);
    missing += end(&c);
    assert_int_equal(fibvid("masks --tokens 16 --heads 2 --layers 2 -f json -o masks1.json"), 0);
    assert_int_equal(fibvid("masks -m '%s/tiny_castling_hf' -f json -o masks2.json", d), 0);
    begin(&c, "masks -f json", "`masks -f json`", NULL, NULL);
    check_json(&c, "masks1.json", 0);
    check_json(&c, "masks2.json", 0);
    missing += end(&c);

    /* evaluate (a failed video included), two shards and merge */
    char *list = fvt_join(g_tmp, "list.txt");
    assert_int_equal(fvt_write_file(list, "a.mkv 0\nb.mkv 1\nbad.avi 2\n", 26), 0);
    free(list);
    const char *E = "evaluate -q %s -t 2 --root v --list list.txt --out %s %s";
    assert_int_equal(fibvid(E, model, "ev", ""), 0);
    assert_int_equal(fibvid(E, model, "s1", "--shard 1/2"), 0);
    assert_int_equal(fibvid(E, model, "s2", "--shard 2/2"), 0);
    assert_int_equal(fibvid("merge -q --out mg s1 s2"), 0);
    static const struct { const char *file, *heading; int lines; } ev[] = {
        { "run.json", "`run.json` (evaluate", 0 },
        { "predictions.jsonl", "`predictions.jsonl`", 1 },
        { "failures.jsonl", "`failures.jsonl`", 1 },
        { "summary.json", "`summary.json`", 0 },
    };
    for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
        char what[128], f1[64], f2[64];
        snprintf(what, sizeof(what), "evaluate/merge %s", ev[i].file);
        snprintf(f1, sizeof(f1), "ev/%s", ev[i].file);
        snprintf(f2, sizeof(f2), "mg/%s", ev[i].file);
        begin(&c, what, ev[i].heading, NULL, NULL);
        check_json(&c, f1, ev[i].lines);
        check_json(&c, f2, ev[i].lines);
        missing += end(&c);
    }
    begin(&c, "evaluate per_class.csv", "`per_class.csv`", NULL, NULL);
    check_csv(&c, "ev/per_class.csv", 0);
    missing += end(&c);
    begin(&c, "evaluate confusion.csv", "`confusion.csv`", NULL, NULL);
    check_csv(&c, "ev/confusion.csv", 1);
    missing += end(&c);

    /* diversity: every attention setting, a failed clip */
    assert_int_equal(fibvid("diversity -q %s --compare model,dense,fib,sima,castling --out dv v/a.mkv v/bad.avi", model),
                     2);
    begin(&c, "diversity.json", "`diversity.json`", g_diag_in_diversity, "diagnostics object");
    check_json(&c, "dv/diversity.json", 0);
    missing += end(&c);

    /* synth and train: the smallest data set and model */
    assert_int_equal(fibvid("synth -q -o syn -n 2 --size 32x32 --seconds 0.5:0.5 -s 5 -t 2"), 0);
    begin(&c, "synth.json", "`synth.json`", NULL, NULL);
    check_json(&c, "syn/synth.json", 0);
    missing += end(&c);
    assert_int_equal(fibvid("train -q --ucf101 syn -o tr --config test --epochs 2 -b 4 -t 2 --log-every 1"), 0);
    begin(&c, "train.jsonl", "`train.jsonl`", NULL, NULL);
    check_json(&c, "tr/train.jsonl", 1);
    missing += end(&c);
    begin(&c, "checkpoint.json", "`checkpoint.json`", NULL, NULL);
    check_json(&c, "tr/checkpoint.json", 0);
    missing += end(&c);
    begin(&c, "train run.json", "`run.json` (train", NULL, NULL);
    check_json(&c, "tr/run.json", 0);
    missing += end(&c);

    printf("all outputs in %.1f s\n", (fvt_now_ms() - t0) / 1000);
    free(v);
    free(a);
    free(b);
    free(bad);
    free(clip);
    if (missing)
        fail_msg("%d fields not documented in README.md \"Output files and fields\" (listed above)", missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outputs_documented),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
