/* The output directory of `fibvid evaluate`: run.json (settings), append-only predictions.jsonl and
 * failures.jsonl (fsync per video, read back for --resume), shard selection and merge; the reports are written
 * by evalreport.c. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fibvid/eval.h"
#include "eval/image.h"
#include "util/util.h"
#include "eval/confusion.h"
#include "eval/evalctx.h"

#define RUN_FILE   "run.json"
#define PRED_FILE  "predictions.jsonl"
#define FAIL_FILE  "failures.jsonl"
#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7))

/* One line kept by a merge, to be written back in list order. */
typedef struct Line {
    int64_t index;
    char   *text; /* without the newline */
} Line;

typedef struct LineVec {
    Line  *v;
    size_t n, cap;
} LineVec;



static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : (int64_t)st.st_size;
}

/* ------------------------------------------------------------------------------------------------ */
/* Shards                                                                                            */
/* ------------------------------------------------------------------------------------------------ */

int fv_shard_parse(const char *s, int32_t *k, int32_t *n)
{
    long a, b;
    char *e;
    if (!s || !k || !n)
        return fv_error(FV_EINVAL, "fv_shard_parse: NULL argument");
    errno = 0;
    a = strtol(s, &e, 10);
    if (e == s || *e != '/' || errno)
        goto bad;
    const char *s2 = e + 1;
    b = strtol(s2, &e, 10);
    if (e == s2 || *e || errno || b < 1 || b > 1000000 || a < 1 || a > b)
        goto bad;
    *k = (int32_t)a;
    *n = (int32_t)b;
    return 0;
bad:
    return fv_error(FV_EINVAL, "shard '%s': expected K/N with 1 <= K <= N", s);
}

int fv_shard_has(int64_t index, int32_t k, int32_t n)
{
    if (n <= 1)
        return 1;
    return index % n == k - 1;
}

static int64_t shard_count(int64_t num_videos, int32_t k, int32_t n)
{
    if (n <= 1)
        return num_videos;
    return num_videos > k - 1 ? (num_videos - (k - 1) + n - 1) / n : 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* run.json                                                                                          */
/* ------------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------------ */
/* Paths, class names and reasons are bytes: JSON holds text. A value that is not valid UTF-8 is written as
 * "<key>" (readable: each invalid byte as U+FFFD) and "<key>_bytes" (exact: bytes outside printable ASCII and
 * '%' as %XX), so every record can be read back, resumed and merged.                                */
/* ------------------------------------------------------------------------------------------------ */

/* @s as JSON text: itself when it is valid UTF-8, else with each invalid byte as U+FFFD; *@exact (may be NULL)
 * receives the %XX form of the bytes then (NULL when @s is valid). New reference(s). */
static json_t *bytes_json(const char *s, json_t **exact)
{
    json_t *v = json_string(s);
    if (exact)
        *exact = NULL;
    if (v)
        return v;
    FvStrBuf lossy = { 0 }, ex = { 0 };
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        /* the UTF-8 sequence that starts at p, if valid (jansson checks the code point) */
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        char cp[5] = { 0 };
        int ok = len > 0;
        for (int i = 0; ok && i < len; i++)
            ok = p[i] && (i == 0 || (p[i] >> 6) == 2);
        if (ok) {
            memcpy(cp, p, (size_t)len);
            json_t *t = json_string(cp);
            ok = t != NULL;
            json_decref(t);
        }
        fv_strbuf_printf(&lossy, "%s", ok ? cp : "\xEF\xBF\xBD");
        const int n = ok ? len : 1;
        for (int i = 0; i < n; i++) {
            if (p[i] >= 0x20 && p[i] < 0x7F && p[i] != '%')
                fv_strbuf_printf(&ex, "%c", p[i]);
            else
                fv_strbuf_printf(&ex, "%%%02X", p[i]);
        }
        p += n;
    }
    v = json_string(lossy.s ? lossy.s : "");
    if (exact)
        *exact = json_string(ex.s ? ex.s : "");
    fv_strbuf_free(&lossy);
    fv_strbuf_free(&ex);
    return v;
}

static void set_bytes(json_t *o, const char *key, const char *s)
{
    json_t *exact;
    json_object_set_new(o, key, bytes_json(s, &exact));
    if (exact) {
        char kb[64];
        snprintf(kb, sizeof(kb), "%s_bytes", key);
        json_object_set_new(o, kb, exact);
    }
}

/* The bytes of "<key>" of a record (from "<key>_bytes" when there is one), malloc'd; NULL when absent. */
static char *get_bytes(const json_t *o, const char *key)
{
    char kb[64];
    snprintf(kb, sizeof(kb), "%s_bytes", key);
    const char *x = json_string_value(json_object_get(o, kb));
    if (!x) {
        const char *v = json_string_value(json_object_get(o, key));
        return v ? strdup(v) : NULL;
    }
    char *out = malloc(strlen(x) + 1), *q = out;
    if (!out)
        return NULL;
    for (const char *p = x; *p; p++) {
        unsigned v;
        if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1 && isxdigit((unsigned char)p[1]) &&
            isxdigit((unsigned char)p[2])) {
            *q++ = (char)v;
            p += 2;
        } else {
            *q++ = *p;
        }
    }
    *q = '\0';
    return out;
}


static json_t *make_run_json(const FvEvalRun *r, const FvDataset *ds, int32_t k, int32_t n)
{
    char hash[32], shard[48];
    snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)fv_dataset_hash(ds));
    snprintf(shard, sizeof(shard), "%d/%d", k, n);
    json_t *classes = json_array(), *map = json_array(), *mapped = json_array();
    json_t *o = json_object();
    if (!classes || !map || !mapped || !o)
        goto fail;
    for (int32_t c = 0; c < ds->num_classes; c++) {
        int32_t j = r->map[c];
        json_array_append_new(classes, bytes_json(ds->classes[c], NULL));
        json_array_append_new(map, json_integer(j));
        json_array_append_new(mapped, bytes_json(r->model_labels[j] ? r->model_labels[j] : "", NULL));
    }
    json_object_set_new(o, "fibvid_version", json_string(fv_version()));
    json_object_set_new(o, "model", bytes_json(r->model ? r->model : "", NULL));
    json_object_set_new(o, "model_id", r->model_id ? json_string(r->model_id) : json_null());
    json_object_set_new(o, "attention", json_string(r->attention ? r->attention : ""));
    json_object_set_new(o, "settings", json_string(r->settings ? r->settings : ""));
    json_object_set_new(o, "split", json_string(r->split ? r->split : "test_final"));
    json_object_set_new(o, "views", json_integer(r->views));
    if (r->spatial_views > 0 && r->views % r->spatial_views == 0)
        json_object_set_new(o, "spatial_views", json_integer(r->spatial_views));
    json_object_set_new(o, "dataset", bytes_json(ds->name, NULL));
    json_object_set_new(o, "dataset_description", bytes_json(ds->description, NULL));
    json_object_set_new(o, "num_videos", json_integer(ds->num_entries));
    json_object_set_new(o, "list_hash", json_string(hash));
    json_object_set_new(o, "num_model_labels", json_integer(r->num_model_labels));
    json_object_set_new(o, "classes", classes);
    json_object_set_new(o, "label_map", map);
    json_object_set_new(o, "mapped_labels", mapped);
    json_object_set_new(o, "shard", json_string(shard));
    return o;
fail:
    json_decref(classes);
    json_decref(map);
    json_decref(mapped);
    json_decref(o);
    return NULL;
}

/* The part of run.json two runs must share: without the shard (merge), without the model path when a
 * path-independent model_id is given, without the list's description (it names the list file as it was given,
 * relative to where the run started; list_hash compares what it holds) and without "options" (the command
 * line the caller records there for --resume, which it checks itself). */
static json_t *run_key(const json_t *run, int drop_shard)
{
    json_t *k = json_deep_copy(run);
    if (!k)
        return NULL;
    json_object_del(k, "dataset_description");
    json_object_del(k, "options");
    if (drop_shard)
        json_object_del(k, "shard");
    if (json_is_string(json_object_get(k, "model_id")))
        json_object_del(k, "model");
    return k;
}

/* 0 when equal; else an error naming the first differing field. */
static int run_compare(const json_t *old, const json_t *now, int drop_shard, const char *what)
{
    json_t *a = run_key(old, drop_shard), *b = run_key(now, drop_shard);
    int ret = 0;
    if (!a || !b) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", what);
        goto done;
    }
    if (json_equal(a, b))
        goto done;
    const char *key;
    json_t *va;
    json_object_foreach(a, key, va) {
        json_t *vb = json_object_get(b, key);
        if (vb && json_equal(va, vb))
            continue;
        char *sa = json_dumps(va, JSON_ENCODE_ANY | JSON_COMPACT);
        char *sb = vb ? json_dumps(vb, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        /* whole values: two long paths or settings strings often differ only at their end */
        ret = fv_error(FV_EINVAL, "%s: setting '%s' differs: %s vs %s", what, key, sa ? sa : "?",
                       sb ? sb : "(missing)");
        free(sa);
        free(sb);
        goto done;
    }
    json_object_foreach(b, key, va) {
        if (!json_object_get(a, key)) {
            ret = fv_error(FV_EINVAL, "%s: setting '%s' is missing", what, key);
            goto done;
        }
    }
done:
    json_decref(a);
    json_decref(b);
    return ret;
}

/* Check the fields of a run.json read from disk that the rest of this file relies on. */
static int run_validate(const json_t *run, const char *path, int32_t *k, int32_t *n)
{
    json_t *classes = json_object_get(run, "classes"), *map = json_object_get(run, "label_map");
    json_t *mapped = json_object_get(run, "mapped_labels");
    json_t *nv = json_object_get(run, "num_videos"), *nl = json_object_get(run, "num_model_labels");
    const char *shard = json_string_value(json_object_get(run, "shard"));
    if (!json_is_object(run) || !json_is_array(classes) || !json_is_array(map) || !json_is_array(mapped) ||
        !json_is_integer(nv) || !json_is_integer(nl) || !shard || json_array_size(classes) == 0 ||
        json_array_size(map) != json_array_size(classes) || json_array_size(mapped) != json_array_size(classes) ||
        json_integer_value(nv) <= 0 || json_integer_value(nv) > INT32_MAX || json_integer_value(nl) <= 0 ||
        json_array_size(classes) > 1000000)
        return fv_error(FV_EINVAL, "%s: not a fibvid run file (missing or bad fields)", path);
    for (size_t c = 0; c < json_array_size(classes); c++) {
        json_t *m = json_array_get(map, c);
        if (!json_is_string(json_array_get(classes, c)) || !json_is_string(json_array_get(mapped, c)) ||
            !json_is_integer(m) || json_integer_value(m) < 0 || json_integer_value(m) >= json_integer_value(nl))
            return fv_error(FV_EINVAL, "%s: bad class %zu", path, c);
    }
    if (fv_shard_parse(shard, k, n) < 0)
        return fv_error(FV_EINVAL, "%s: bad shard '%s'", path, shard);
    return 0;
}

static json_t *load_run(const char *dir, int32_t *k, int32_t *n)
{
    char *path = fv_path_join(dir, RUN_FILE);
    json_error_t jerr;
    json_t *run = NULL;
    if (!path) {
        fv_error(FV_ENOMEM, "%s: out of memory", dir);
        return NULL;
    }
    if (!(run = json_load_file(path, 0, &jerr)))
        fv_error(file_size(path) < 0 ? FV_ENOENT : FV_EINVAL, "%s:%d: %s", path, jerr.line, jerr.text);
    else if (run_validate(run, path, k, n) < 0) {
        json_decref(run);
        run = NULL;
    }
    free(path);
    return run;
}

/* ------------------------------------------------------------------------------------------------ */
/* The context                                                                                       */
/* ------------------------------------------------------------------------------------------------ */

static FvEval *eval_new(const char *dir, json_t *run, int32_t k, int32_t n)
{
    FvEval *e = fv_calloc(1, sizeof(*e));
    if (!e)
        goto fail;
    e->pred_fd = e->fail_fd = -1;
    e->run = run;
    e->num_classes = (int32_t)json_array_size(json_object_get(run, "classes"));
    e->num_videos = json_integer_value(json_object_get(run, "num_videos"));
    e->shard_k = k;
    e->shard_n = n;
    e->todo = shard_count(e->num_videos, k, n);
    if (!(e->dir = fv_malloc(strlen(dir) + 1)) || !(e->done = fv_calloc((size_t)e->num_videos, 1)))
        goto fail;
    strcpy(e->dir, dir);
    if (fv_metrics_create(&e->metrics, e->num_classes) < 0)
        goto fail;
    return e;
fail:
    if (e) {
        e->run = NULL; /* the caller still owns it */
        fv_eval_close(&e);
    }
    fv_error(FV_ENOMEM, "%s: out of memory", dir);
    return NULL;
}

void fv_eval_close(FvEval **pe)
{
    if (!pe || !*pe)
        return;
    FvEval *e = *pe;
    if (e->pred_fd >= 0)
        close(e->pred_fd);
    if (e->fail_fd >= 0)
        close(e->fail_fd);
    json_decref(e->run);
    fv_metrics_free(&e->metrics);
    fv_free(e->done);
    fv_free(e->dir);
    fv_free(e);
    *pe = NULL;
}

int fv_eval_done(const FvEval *e, int64_t index)
{
    return e && index >= 0 && index < e->num_videos && e->done[index];
}

int64_t fv_eval_num_todo(const FvEval *e)
{
    return e ? e->todo : 0;
}

int64_t fv_eval_num_done(const FvEval *e)
{
    return e ? e->ndone : 0;
}

void fv_eval_metrics(const FvEval *e, FvMetricsSummary *s)
{
    fv_metrics_summary(e ? e->metrics : NULL, s);
}

static int line_push(LineVec *lv, int64_t index, const char *s, size_t n)
{
    if (lv->n == lv->cap) {
        size_t ncap = lv->cap ? lv->cap * 2 : 256;
        Line *nv = fv_malloc(ncap * sizeof(*nv));
        if (!nv)
            return FV_ENOMEM;
        if (lv->v)
            memcpy(nv, lv->v, lv->n * sizeof(*nv));
        fv_free(lv->v);
        lv->v = nv;
        lv->cap = ncap;
    }
    char *t = fv_malloc(n + 1);
    if (!t)
        return FV_ENOMEM;
    memcpy(t, s, n);
    t[n] = '\0';
    lv->v[lv->n].index = index;
    lv->v[lv->n++].text = t;
    return 0;
}

static void lines_free(LineVec *lv)
{
    for (size_t i = 0; i < lv->n; i++)
        fv_free(lv->v[i].text);
    fv_free(lv->v);
    memset(lv, 0, sizeof(*lv));
}

/* Parse one record line and count it. @k/@n is the shard that wrote it. */

static int take_record(FvEval *e, const char *path, int64_t lineno, char *line, size_t len, int failure,
                       int32_t k, int32_t n, LineVec *keep)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    char *rpath = NULL;
    int ret;
    json_int_t index = -1, cls = -1;
    if (!o || !json_is_object(o)) {
        ret = fv_error(FV_EINVAL, "%s:%lld: malformed record: %s", path, (long long)lineno,
                       o ? "not an object" : jerr.text);
        goto fail;
    }
    json_t *ji = json_object_get(o, "index"), *jc = json_object_get(o, "class");
    rpath = get_bytes(o, "path");
    if (!json_is_integer(ji) || !json_is_integer(jc) || !rpath) {
        ret = fv_error(FV_EINVAL, "%s:%lld: record without index, class or path", path, (long long)lineno);
        goto fail;
    }
    index = json_integer_value(ji);
    cls = json_integer_value(jc);
    if (index < 0 || index >= e->num_videos || cls < 0 || cls >= e->num_classes) {
        ret = fv_error(FV_EINVAL, "%s:%lld: index %lld or class %lld out of range", path, (long long)lineno,
                       (long long)index, (long long)cls);
        goto fail;
    }
    if (!fv_shard_has(index, k, n)) {
        ret = fv_error(FV_EINVAL, "%s:%lld: video %lld is not in shard %d/%d", path, (long long)lineno,
                       (long long)index, k, n);
        goto fail;
    }
    if (e->ds && (strcmp(rpath, e->ds->entries[index].path) || cls != e->ds->entries[index].label)) {
        ret = fv_error(FV_EINVAL, "%s:%lld: video %lld is %s in the list, not %s", path, (long long)lineno,
                       (long long)index, e->ds->entries[index].path, rpath);
        goto fail;
    }
    if (e->done[index]) {
        ret = fv_error(FV_EINVAL, "%s:%lld: video %lld (%s) recorded twice", path, (long long)lineno,
                       (long long)index, rpath);
        goto fail;
    }
    json_t *ms = json_object_get(o, "ms");
    if (failure) {
        fv_metrics_add_failure(e->metrics);
    } else {
        FvPrediction p = { 0 };
        json_t *top = json_object_get(o, "top5"), *tg = json_object_get(o, "target");
        json_t *pc = json_object_get(o, "pred_class");
        size_t nt = json_array_size(top);
        if (!json_is_array(top) || nt < 1 || nt > FV_EVAL_TOPK || !json_is_integer(tg) || !json_is_integer(pc)) {
            ret = fv_error(FV_EINVAL, "%s:%lld: record without top5, target or pred_class", path,
                           (long long)lineno);
            goto fail;
        }
        p.index = index;
        p.label = (int32_t)cls;
        p.target = (int32_t)json_integer_value(tg);
        p.pred_class = (int32_t)json_integer_value(pc);
        p.k = (int32_t)nt;
        for (size_t r = 0; r < nt; r++) {
            json_t *t = json_array_get(top, r);
            json_t *ti = json_object_get(t, "index");
            if (!json_is_integer(ti)) {
                ret = fv_error(FV_EINVAL, "%s:%lld: top5 entry without index", path, (long long)lineno);
                goto fail;
            }
            p.top[r] = (int32_t)json_integer_value(ti);
            p.prob[r] = (float)json_number_value(json_object_get(t, "prob"));
        }
        if (p.pred_class < -1 || p.pred_class >= e->num_classes) {
            ret = fv_error(FV_EINVAL, "%s:%lld: pred_class out of range", path, (long long)lineno);
            goto fail;
        }
        if ((ret = fv_metrics_add(e->metrics, &p)) < 0)
            goto fail;
    }
    if (keep && (ret = line_push(keep, index, line, len)) < 0) {
        fv_error(ret, "%s: out of memory", path);
        goto fail;
    }
    e->done[index] = 1;
    e->ndone++;
    if (json_is_number(ms) && json_number_value(ms) > 0)
        e->ms_sum += json_number_value(ms);
    ret = 0;
fail:
    free(rpath);
    json_decref(o);
    return ret;
}

/*
 * Read back a record file. A last line without its newline is what a kill during the write leaves:
 * it is ignored, and cut off the file when @truncate_torn so later appends start on a fresh line.
 */
static int read_records(FvEval *e, const char *dir, const char *name, int failure, int32_t k, int32_t n,
                        LineVec *keep, int truncate_torn)
{
    char *path = fv_path_join(dir, name), *text = NULL;
    size_t len = 0;
    int ret;
    if (!path)
        return fv_error(FV_ENOMEM, "%s: out of memory", dir);
    if (file_size(path) < 0) {
        ret = 0; /* nothing recorded yet */
        goto done;
    }
    if ((ret = fv_read_file(path, SIZE_MAX, NULL, &text, &len)) < 0)
        goto done;
    size_t pos = 0;
    int64_t lineno = 0;
    while (pos < len) {
        char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t l = (size_t)(nl - (text + pos));
        lineno++;
        if (l > 0 && (ret = take_record(e, path, lineno, text + pos, l, failure, k, n, keep)) < 0)
            goto done;
        pos += l + 1;
    }
    if (pos < len && truncate_torn && truncate(path, (off_t)pos) < 0) {
        ret = fv_error(FV_EIO, "%s: cannot cut the torn last line: %s", path, strerror(errno));
        goto done;
    }
    ret = 0;
done:
    free(text);
    free(path);
    return ret;
}

static int open_append(const char *dir, const char *name, int trunc, int *fd)
{
    char *path = fv_path_join(dir, name);
    if (!path)
        return fv_error(FV_ENOMEM, "%s: out of memory", dir);
    *fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0666);
    int ret = *fd < 0 ? fv_error(FV_EIO, "%s: %s", path, strerror(errno)) : 0;
    free(path);
    return ret;
}

static int write_run(const char *dir, const json_t *run)
{
    char *s = json_dumps(run, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s)
        return fv_error(FV_ENOMEM, "%s: out of memory", dir);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return fv_error(FV_ENOMEM, "%s: out of memory", dir);
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    int ret = fv_eval_write_atomic(dir, RUN_FILE, t, n + 1);
    free(t);
    return ret;
}

static int has_records(const char *dir)
{
    const char *names[2] = { PRED_FILE, FAIL_FILE };
    for (int i = 0; i < 2; i++) {
        char *p = fv_path_join(dir, names[i]);
        int64_t sz = p ? file_size(p) : -1;
        free(p);
        if (sz > 0)
            return 1;
    }
    return 0;
}

int fv_eval_open(FvEval **out, const char *dir, const FvEvalRun *run, const FvDataset *ds, int resume)
{
    json_t *now = NULL, *old = NULL;
    FvEval *e = NULL;
    int ret;
    if (!out || !dir || !run || !ds || !run->map || !run->model_labels || run->num_model_labels <= 0)
        return fv_error(FV_EINVAL, "fv_eval_open: NULL argument");
    *out = NULL;
    int32_t k = run->shard_k, n = run->shard_n;
    if (n <= 1 && k <= 1)
        k = n = 1;
    if (k < 1 || k > n)
        return fv_error(FV_EINVAL, "fv_eval_open: bad shard %d/%d", k, n);
    if (run->views < 1)
        return fv_error(FV_EINVAL, "fv_eval_open: views must be positive");
    for (int32_t c = 0; c < ds->num_classes; c++)
        if (run->map[c] < 0 || run->map[c] >= run->num_model_labels)
            return fv_error(FV_EINVAL, "fv_eval_open: class %s maps to no model label", ds->classes[c]);
    if ((ret = fv_mkdir_p(dir)) < 0)
        return ret;
    if (!(now = make_run_json(run, ds, k, n)))
        return fv_error(FV_ENOMEM, "%s: out of memory", dir);

    int32_t ok_, on_;
    char *rp = fv_path_join(dir, RUN_FILE);
    int have_run = rp && file_size(rp) >= 0;
    free(rp);
    if (resume && have_run) {
        if (!(old = load_run(dir, &ok_, &on_))) {
            ret = FV_EINVAL;
            goto fail;
        }
        char what[4200];
        snprintf(what, sizeof(what), "%s/%s: cannot resume", dir, RUN_FILE);
        if ((ret = run_compare(old, now, 0, what)) < 0)
            goto fail;
    } else if (has_records(dir)) {
        ret = fv_error(FV_EINVAL, "%s: holds the results of an earlier run: resume it or choose another "
                       "directory", dir);
        goto fail;
    }
    if (!(e = eval_new(dir, now, k, n))) {
        ret = FV_ENOMEM;
        goto fail;
    }
    now = NULL;
    e->ds = ds;
    e->model_labels = run->model_labels;
    e->num_model_labels = run->num_model_labels;
    if (old) {
        /* resume 2: the recorded failures are dropped (their videos are evaluated again) */
        if ((ret = read_records(e, dir, PRED_FILE, 0, k, n, NULL, 1)) < 0 ||
            (resume != 2 && (ret = read_records(e, dir, FAIL_FILE, 1, k, n, NULL, 1)) < 0))
            goto fail;
    } else if ((ret = write_run(dir, e->run)) < 0) {
        goto fail;
    }
    if ((ret = open_append(dir, PRED_FILE, !old, &e->pred_fd)) < 0 ||
        (ret = open_append(dir, FAIL_FILE, !old || resume == 2, &e->fail_fd)) < 0)
        goto fail;
    *out = e;
    e = NULL;
    ret = 0;
fail:
    json_decref(now);
    json_decref(old);
    fv_eval_close(&e);
    return ret;
}

/* Append one line with a single write() and make it durable; on failure cut the file back so a torn
 * line never sits in the middle of the file. */
static int append_line(const FvEval *e, int fd, const char *name, json_t *o)
{
    char *s = json_dumps(o, JSON_FLAGS);
    int ret = 0;
    if (!s)
        return fv_error(FV_ENOMEM, "%s/%s: out of memory", e->dir, name);
    size_t n = strlen(s);
    char *t = realloc(s, n + 1);
    if (!t) {
        free(s);
        return fv_error(FV_ENOMEM, "%s/%s: out of memory", e->dir, name);
    }
    t[n] = '\n';
    struct stat st;
    off_t before = fstat(fd, &st) == 0 ? st.st_size : -1;
    if (fv_write_all(fd, t, n + 1) < 0 || fsync(fd) < 0) {
        ret = fv_error(fv_write_error_code(errno), "%s/%s: %s", e->dir, name, strerror(errno));
        if (before >= 0 && ftruncate(fd, before) < 0)
            ret = fv_error(FV_EIO, "%s/%s: write failed and the partial line could not be removed", e->dir, name);
    }
    free(t);
    return ret;
}

static int check_new(const FvEval *e, int64_t index, const char *fn)
{
    if (index < 0 || index >= e->num_videos)
        return fv_error(FV_EINVAL, "%s: video %lld out of range", fn, (long long)index);
    if (!fv_shard_has(index, e->shard_k, e->shard_n))
        return fv_error(FV_EINVAL, "%s: video %lld is not in shard %d/%d", fn, (long long)index, e->shard_k,
                        e->shard_n);
    if (e->done[index])
        return fv_error(FV_EINVAL, "%s: video %lld (%s) is already recorded", fn, (long long)index,
                        e->ds->entries[index].path);
    return 0;
}


int fv_eval_add_prediction(FvEval *e, const FvPrediction *p, double ms)
{
    json_t *o = NULL, *top = NULL;
    int ret;
    if (!e || !p || e->pred_fd < 0)
        return fv_error(FV_EINVAL, "fv_eval_add_prediction: invalid argument");
    if ((ret = check_new(e, p->index, "fv_eval_add_prediction")) < 0)
        return ret;
    const FvDatasetEntry *en = &e->ds->entries[p->index];
    if (p->label != en->label || p->k < 1 || p->k > FV_EVAL_TOPK)
        return fv_error(FV_EINVAL, "fv_eval_add_prediction: video %lld: class %d / k %d do not fit the list",
                        (long long)p->index, p->label, p->k);
    for (int32_t r = 0; r < p->k; r++)
        if (p->top[r] < 0 || p->top[r] >= e->num_model_labels)
            return fv_error(FV_EINVAL, "fv_eval_add_prediction: label %d out of range", p->top[r]);
    int correct = p->top[0] == p->target, top5 = 0;
    for (int32_t r = 0; r < p->k; r++)
        top5 |= p->top[r] == p->target;
    if (!(o = json_object()) || !(top = json_array())) {
        ret = fv_error(FV_ENOMEM, "fv_eval_add_prediction: out of memory");
        goto fail;
    }
    for (int32_t r = 0; r < p->k; r++) {
        json_t *t = json_object();
        json_object_set_new(t, "index", json_integer(p->top[r]));
        set_bytes(t, "label", e->model_labels[p->top[r]] ? e->model_labels[p->top[r]] : "");
        json_object_set_new(t, "prob", json_real(isfinite(p->prob[r]) ? fv_eval_round(p->prob[r], 1e6) : 0.0));
        json_array_append_new(top, t);
    }
    json_object_set_new(o, "index", json_integer(p->index));
    set_bytes(o, "path", en->path);
    set_bytes(o, "label", en->class_name);
    json_object_set_new(o, "class", json_integer(p->label));
    json_object_set_new(o, "target", json_integer(p->target));
    json_object_set_new(o, "top5", top);
    top = NULL;
    json_object_set_new(o, "pred", json_integer(p->top[0]));
    json_object_set_new(o, "pred_class", json_integer(p->pred_class));
    json_object_set_new(o, "correct", json_boolean(correct));
    json_object_set_new(o, "top5_correct", json_boolean(top5));
    json_object_set_new(o, "ms", json_real(fv_eval_round(ms > 0 ? ms : 0, 10)));
    if ((ret = fv_metrics_add(e->metrics, p)) < 0)
        goto fail;
    if ((ret = append_line(e, e->pred_fd, PRED_FILE, o)) < 0) {
        /* the accumulator stays consistent with the file: rebuild would be costly, so refuse further use */
        close(e->pred_fd);
        e->pred_fd = -1;
        goto fail;
    }
    e->done[p->index] = 1;
    e->ndone++;
    e->ms_sum += fv_eval_round(ms > 0 ? ms : 0, 10);
    ret = 0;
fail:
    json_decref(top);
    json_decref(o);
    return ret;
}

int fv_eval_add_failure(FvEval *e, int64_t index, const char *reason, double ms)
{
    int ret;
    if (!e || e->fail_fd < 0)
        return fv_error(FV_EINVAL, "fv_eval_add_failure: invalid argument");
    if ((ret = check_new(e, index, "fv_eval_add_failure")) < 0)
        return ret;
    const FvDatasetEntry *en = &e->ds->entries[index];
    json_t *o = json_object();
    if (!o)
        return fv_error(FV_ENOMEM, "fv_eval_add_failure: out of memory");
    json_object_set_new(o, "index", json_integer(index));
    set_bytes(o, "path", en->path);
    set_bytes(o, "label", en->class_name);
    json_object_set_new(o, "class", json_integer(en->label));
    set_bytes(o, "reason", reason ? reason : "unknown");
    json_object_set_new(o, "ms", json_real(fv_eval_round(ms > 0 ? ms : 0, 10)));
    if ((ret = append_line(e, e->fail_fd, FAIL_FILE, o)) < 0) {
        close(e->fail_fd);
        e->fail_fd = -1;
    } else {
        fv_metrics_add_failure(e->metrics);
        e->done[index] = 1;
        e->ndone++;
        e->ms_sum += fv_eval_round(ms > 0 ? ms : 0, 10);
    }
    json_decref(o);
    return ret;
}

/* ------------------------------------------------------------------------------------------------ */
/* Merge                                                                                             */
/* ------------------------------------------------------------------------------------------------ */

static int cmp_line(const void *a, const void *b)
{
    int64_t x = ((const Line *)a)->index, y = ((const Line *)b)->index;
    return (x > y) - (x < y);
}

static int write_lines(const char *dir, const char *name, LineVec *lv)
{
    FvStrBuf b = { 0 };
    qsort(lv->v, lv->n, sizeof(*lv->v), cmp_line);
    fv_strbuf_printf(&b, "%s", "");
    for (size_t i = 0; i < lv->n; i++)
        fv_strbuf_printf(&b, "%s\n", lv->v[i].text);
    int ret = b.oom ? fv_error(FV_ENOMEM, "%s: out of memory", dir) : fv_eval_write_atomic(dir, name, b.s, b.len);
    fv_strbuf_free(&b);
    return ret;
}

int fv_eval_merge(const char *out_dir, const char *const *dirs, int32_t n)
{
    json_t *first = NULL, *merged = NULL;
    json_t **runs = NULL;
    uint8_t *seen = NULL;
    FvEval *e = NULL;
    LineVec preds = { 0 }, fails = { 0 };
    int ret;
    if (!out_dir || !dirs || n < 1)
        return fv_error(FV_EINVAL, "fv_eval_merge: no shard directories");
    if (!(runs = fv_calloc((size_t)n, sizeof(*runs))) || !(seen = fv_calloc((size_t)n + 1, 1))) {
        ret = fv_error(FV_ENOMEM, "fv_eval_merge: out of memory");
        goto fail;
    }
    int32_t N = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t k, sn;
        if (!(runs[i] = load_run(dirs[i], &k, &sn))) {
            ret = FV_EINVAL;
            goto fail;
        }
        if (i == 0) {
            N = sn;
            first = runs[0];
        } else {
            char what[4200];
            snprintf(what, sizeof(what), "%s and %s do not come from the same run", dirs[0], dirs[i]);
            if ((ret = run_compare(first, runs[i], 1, what)) < 0)
                goto fail;
        }
        if (sn != N || sn != n) {
            ret = fv_error(FV_EINVAL, "%s: shard %d/%d, but %d shard directories were given (of %d shards)",
                           dirs[i], k, sn, n, N);
            goto fail;
        }
        if (seen[k]) {
            ret = fv_error(FV_EINVAL, "%s: shard %d/%d given twice", dirs[i], k, sn);
            goto fail;
        }
        seen[k] = 1;
    }
    if (!(merged = json_deep_copy(first))) {
        ret = fv_error(FV_ENOMEM, "fv_eval_merge: out of memory");
        goto fail;
    }
    json_object_set_new(merged, "shard", json_string("1/1"));
    json_object_del(merged, "options"); /* a shard's command line is not the merged run's */
    if ((ret = fv_mkdir_p(out_dir)) < 0)
        goto fail;
    if (has_records(out_dir)) {
        ret = fv_error(FV_EINVAL, "%s: already holds results: merge into an empty directory", out_dir);
        goto fail;
    }
    if (!(e = eval_new(out_dir, merged, 1, 1))) {
        ret = FV_ENOMEM;
        goto fail;
    }
    merged = NULL;
    for (int32_t i = 0; i < n; i++) {
        int32_t k, sn;
        fv_shard_parse(json_string_value(json_object_get(runs[i], "shard")), &k, &sn);
        int64_t before = e->ndone;
        if ((ret = read_records(e, dirs[i], PRED_FILE, 0, k, sn, &preds, 0)) < 0 ||
            (ret = read_records(e, dirs[i], FAIL_FILE, 1, k, sn, &fails, 0)) < 0)
            goto fail;
        int64_t want = shard_count(e->num_videos, k, sn);
        if (e->ndone - before != want) {
            ret = fv_error(FV_EINVAL, "%s: shard %d/%d is incomplete: %lld of %lld videos recorded (resume it "
                           "first)", dirs[i], k, sn, (long long)(e->ndone - before), (long long)want);
            goto fail;
        }
    }
    if ((ret = write_run(out_dir, e->run)) < 0 || (ret = write_lines(out_dir, PRED_FILE, &preds)) < 0 ||
        (ret = write_lines(out_dir, FAIL_FILE, &fails)) < 0 || (ret = fv_eval_write_reports(e)) < 0)
        goto fail;
    ret = 0;
fail:
    if (runs)
        for (int32_t i = 0; i < n; i++)
            json_decref(runs[i]);
    fv_free(runs);
    fv_free(seen);
    json_decref(merged);
    fv_eval_close(&e);
    lines_free(&preds);
    lines_free(&fails);
    return ret;
}
