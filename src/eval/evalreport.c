/* The reports of an evaluate output directory: summary.json, per_class.csv, confusion.csv, and confusion.svg /
 * confusion.png (drawn by confusion.c), all written atomically from the records evaldir.c has read or added. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fibvid/eval.h"
#include "eval/confusion.h"
#include "eval/evalctx.h"
#include "eval/image.h"
#include "util/util.h"

int fv_eval_write_atomic(const char *dir, const char *name, const char *data, size_t n)
{
    char *path = fv_path_join(dir, name);
    if (!path)
        return fv_error(FV_ENOMEM, "%s: out of memory", dir);
    int ret = fv_write_file_atomic(path, data, n);
    free(path);
    return ret;
}

static const char *run_str(const FvEval *e, const char *key)
{
    const char *s = json_string_value(json_object_get(e->run, key));
    return s ? s : "";
}

static const char *class_name(const FvEval *e, int32_t c)
{
    return json_string_value(json_array_get(json_object_get(e->run, "classes"), (size_t)c));
}

/* The "(other)" column exists when some model label is no dataset class: a stable property of the
 * settings, so every run with these settings writes the same columns. */
static int has_other_column(const FvEval *e)
{
    json_t *map = json_object_get(e->run, "label_map");
    json_int_t nl = json_integer_value(json_object_get(e->run, "num_model_labels"));
    int64_t distinct = 0;
    for (int32_t c = 0; c < e->num_classes; c++) {
        json_int_t j = json_integer_value(json_array_get(map, (size_t)c));
        int seen = 0;
        for (int32_t q = 0; q < c && !seen; q++)
            seen = json_integer_value(json_array_get(map, (size_t)q)) == j;
        distinct += !seen;
    }
    return nl > distinct;
}

static void csv_field(FvStrBuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fv_strbuf_printf(b, "%s", s);
        return;
    }
    fv_strbuf_printf(b, "\"");
    for (const char *p = s; *p; p++)
        fv_strbuf_printf(b, *p == '"' ? "\"\"" : "%c", *p);
    fv_strbuf_printf(b, "\"");
}

static int write_summary(const FvEval *e, const FvMetricsSummary *s)
{
    json_t *o = json_object();
    if (!o)
        return fv_error(FV_ENOMEM, "%s: out of memory", e->dir);
    double wall_s = e->ms_sum / 1000.0;
    int64_t views = json_integer_value(json_object_get(e->run, "views"));
    double clips = (double)s->num_evaluated * (double)views;
    json_object_set_new(o, "split", json_string(run_str(e, "split")));
    /* no video evaluated: no accuracy (null), not 0 % */
    const int any = s->num_evaluated > 0;
#define ACC(v, scale) (any ? json_real(fv_eval_round((v), (scale))) : json_null())
    json_object_set_new(o, "top1_acc", ACC(s->top1_acc, 1e4));
    json_object_set_new(o, "top5_acc", ACC(s->top5_acc, 1e4));
    json_object_set_new(o, "mean_class_acc", ACC(s->mean_class_acc, 1e4));
    json_object_set_new(o, "acc/top1", ACC(s->top1_acc / 100.0, 1e6));
    json_object_set_new(o, "acc/top5", ACC(s->top5_acc / 100.0, 1e6));
    json_object_set_new(o, "acc/mean1", ACC(s->mean_class_acc / 100.0, 1e6));
#undef ACC
    json_object_set_new(o, "num_videos", json_integer(e->todo));
    json_object_set_new(o, "num_evaluated", json_integer(s->num_evaluated));
    json_object_set_new(o, "num_failed", json_integer(s->num_failed));
    json_object_set_new(o, "top1_correct", json_integer(s->top1_correct));
    json_object_set_new(o, "top5_correct", json_integer(s->top5_correct));
    json_object_set_new(o, "num_classes", json_integer(e->num_classes));
    json_object_set_new(o, "classes_present", json_integer(s->classes_present));
    json_object_set_new(o, "complete", json_boolean(e->ndone == e->todo));
    /* views as "TxS" (temporal clips x spatial crops), and their count */
    const int64_t sv = json_integer_value(json_object_get(e->run, "spatial_views"));
    char vbuf[48];
    if (sv > 0 && views % sv == 0)
        snprintf(vbuf, sizeof(vbuf), "%lldx%lld", (long long)(views / sv), (long long)sv);
    else
        snprintf(vbuf, sizeof(vbuf), "%lld", (long long)views);
    json_object_set_new(o, "views", json_string(vbuf));
    json_object_set_new(o, "views_per_video", json_integer(views));
    json_object_set_new(o, "model", json_string(run_str(e, "model")));
    json_object_set_new(o, "attention", json_string(run_str(e, "attention")));
    json_object_set_new(o, "dataset", json_string(run_str(e, "dataset_description")));
    json_object_set_new(o, "shard", json_string(run_str(e, "shard")));
    /* wall_s, the real time of the run, is the command's to set (it knows when each invocation started) */
    json_object_set_new(o, "wall_s", json_null());
    json_object_set_new(o, "video_s", json_real(fv_eval_round(wall_s, 1e3)));
    json_object_set_new(o, "videos_per_s", json_real(wall_s > 0 ? fv_eval_round(s->num_evaluated / wall_s, 1e3) : 0.0));
    json_object_set_new(o, "clips_per_s", json_real(wall_s > 0 ? fv_eval_round(clips / wall_s, 1e3) : 0.0));
    json_object_set_new(o, "note", json_string(
        "video-level accuracy: the softmax of every view of a video is averaged before ranking; top1_acc, "
        "top5_acc and mean_class_acc in percent (PySlowFast names), acc/* as fractions (MMAction2 names); "
        "accuracies count evaluated videos, failed ones are listed in failures.jsonl; mean_class_acc is the "
        "mean over classes with videos of their top-1 recall; views \"TxS\" = T temporal clips x S spatial crops "
        "per video (views_per_video of them); a clip is one view of a video; video_s sums the per-video decode and "
        "model times, videos_per_s and clips_per_s are rates over it; wall_s is the real time of every invocation "
        "(null where no command set it)"));
    char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!txt)
        return fv_error(FV_ENOMEM, "%s: out of memory", e->dir);
    size_t n = strlen(txt);
    char *t = realloc(txt, n + 2);
    if (!t) {
        free(txt);
        return fv_error(FV_ENOMEM, "%s: out of memory", e->dir);
    }
    t[n] = '\n';
    int ret = fv_eval_write_atomic(e->dir, "summary.json", t, n + 1);
    free(t);
    return ret;
}

static int write_per_class(const FvEval *e)
{
    FvStrBuf b = { 0 };
    json_t *mapped = json_object_get(e->run, "mapped_labels");
    fv_strbuf_printf(&b, "index,class,model_label,num_videos,top1_correct,top5_correct,top1_acc,top5_acc\n");
    for (int32_t c = 0; c < e->num_classes; c++) {
        int64_t cnt, h1, h5;
        fv_metrics_class(e->metrics, c, &cnt, &h1, &h5);
        fv_strbuf_printf(&b, "%d,", c);
        csv_field(&b, class_name(e, c));
        fv_strbuf_printf(&b, ",");
        csv_field(&b, json_string_value(json_array_get(mapped, (size_t)c)));
        if (cnt)
            fv_strbuf_printf(&b, ",%lld,%lld,%lld,%.4f,%.4f\n", (long long)cnt, (long long)h1, (long long)h5,
                       100.0 * (double)h1 / (double)cnt, 100.0 * (double)h5 / (double)cnt);
        else
            fv_strbuf_printf(&b, ",0,0,0,,\n");
    }
    int ret = b.oom ? fv_error(FV_ENOMEM, "%s: out of memory", e->dir)
                    : fv_eval_write_atomic(e->dir, "per_class.csv", b.s, b.len);
    fv_strbuf_free(&b);
    return ret;
}

static int write_confusion_csv(const FvEval *e)
{
    FvStrBuf b = { 0 };
    const int32_t C = e->num_classes, other = has_other_column(e);
    const int64_t *cm = fv_metrics_confusion(e->metrics); // (C, C + 1)
    fv_strbuf_printf(&b, "true\\predicted");
    for (int32_t c = 0; c < C; c++) {
        fv_strbuf_printf(&b, ",");
        csv_field(&b, class_name(e, c));
    }
    fv_strbuf_printf(&b, other ? ",(other)\n" : "\n");
    for (int32_t r = 0; r < C; r++) {
        csv_field(&b, class_name(e, r));
        for (int32_t c = 0; c < C + other; c++)
            fv_strbuf_printf(&b, ",%lld", (long long)cm[(size_t)r * (size_t)(C + 1) + (size_t)c]);
        fv_strbuf_printf(&b, "\n");
    }
    int ret = b.oom ? fv_error(FV_ENOMEM, "%s: out of memory", e->dir)
                    : fv_eval_write_atomic(e->dir, "confusion.csv", b.s, b.len);
    fv_strbuf_free(&b);
    return ret;
}

/* confusion.svg and confusion.png (confusion.c) of what is recorded. */
static int write_confusion_pictures(const FvEval *e, const FvMetricsSummary *s)
{
    const char **names = malloc(sizeof(char *) * (size_t)(e->num_classes ? e->num_classes : 1));
    if (!names)
        return fv_error(FV_ENOMEM, "%s: out of memory", e->dir);
    for (int32_t c = 0; c < e->num_classes; c++)
        names[c] = class_name(e, c);
    const FvConfusion cf = { .cm = fv_metrics_confusion(e->metrics), .num_classes = e->num_classes,
                             .cols = e->num_classes + has_other_column(e), .names = names,
                             .model = run_str(e, "model"), .dataset = run_str(e, "dataset_description"),
                             .summary = s };
    FvStrBuf b = { 0 };
    uint8_t *png = NULL;
    int32_t size = 0;
    int ret = fv_confusion_svg(&cf, &b);
    if (ret >= 0)
        ret = fv_eval_write_atomic(e->dir, "confusion.svg", b.s, b.len);
    if (ret >= 0 && (ret = fv_confusion_png(&cf, &png, &size)) >= 0)
        ret = fv_eval_write_atomic(e->dir, "confusion.png", (const char *)png, (size_t)size);
    fv_image_png_free(png);
    fv_strbuf_free(&b);
    free(names);
    return ret;
}

int fv_eval_write_reports(FvEval *e)
{
    FvMetricsSummary s;
    int ret;
    if (!e)
        return fv_error(FV_EINVAL, "fv_eval_write_reports: NULL argument");
    fv_metrics_summary(e->metrics, &s);
    if ((ret = write_summary(e, &s)) < 0 || (ret = write_per_class(e)) < 0 ||
        (ret = write_confusion_csv(e)) < 0 || (ret = write_confusion_pictures(e, &s)) < 0)
        return ret;
    return 0;
}
