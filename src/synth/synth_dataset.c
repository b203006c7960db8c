/* The synthetic data set's writer (`fibvid synth`): the UCF101 layout (class folders, classInd/trainlist/testlist,
 * the group split), every clip rendered by synth.c and encoded by synth_encode.c, then synth.json, in parallel
 * over clips (each clip is independent, so the bytes do not depend on the thread count). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <omp.h>

#include "util/util.h"
#include "video/ffmpeg_dl.h"
#include "synth/synth_internal.h"

#include "fibvid/synth.h"

/* UCF101's split, scaled: ~4 clips per group, 2..25 groups, the first round(7G/25) groups are the test set. */
static void group_layout(int32_t n, int32_t *groups, int32_t *test_groups)
{
    int32_t g = (n + 3) / 4;
    g = g < 2 ? 2 : g > 25 ? 25 : g;
    int32_t t = (int32_t)floor(7.0 * g / 25 + 0.5);
    *groups = g;
    *test_groups = t < 1 ? 1 : t;
}

/* Group (1-based) and clip within the group (1-based) of clip @k (0-based) of a class: the first n % G
 * groups hold one clip more. */
static void group_of(int32_t k, int32_t n, int32_t G, int32_t *g, int32_t *c)
{
    int32_t base = n / G, extra = n % G, start = 0;
    for (int32_t i = 0; i < G; i++) {
        int32_t size = base + (i < extra);
        if (k < start + size) {
            *g = i + 1;
            *c = k - start + 1;
            return;
        }
        start += size;
    }
    *g = G;
    *c = 1;
}

/* Write DIR/NAME atomically. */
static int write_text(const char *dir, const char *name, const char *text)
{
    char *path = fv_path_join(dir, name);
    if (!path)
        return fv_error(FV_ENOMEM, "%s: out of memory", dir);
    int ret = fv_write_file_atomic(path, text, strlen(text));
    free(path);
    return ret;
}

static json_t *settings_json(const FvSynthSettings *s, int32_t G, int32_t T, int64_t ntrain, int64_t ntest)
{
    json_t *j = json_object();
    json_object_set_new(j, "generator", json_string("fibvid synth"));
    json_object_set_new(j, "version", json_string(fv_version()));
    if (s->seed <= (uint64_t)INT64_MAX)
        json_object_set_new(j, "seed", json_integer((json_int_t)s->seed));
    else {
        char b[32];
        snprintf(b, sizeof(b), "%llu", (unsigned long long)s->seed);
        json_object_set_new(j, "seed", json_string(b));
    }
    json_object_set_new(j, "clips_per_class", json_integer(s->clips_per_class));
    json_object_set_new(j, "width", json_integer(s->width));
    json_object_set_new(j, "height", json_integer(s->height));
    json_object_set_new(j, "fps", json_integer(s->fps));
    json_object_set_new(j, "seconds", json_pack("[f, f]", s->min_seconds, s->max_seconds));
    json_object_set_new(j, "min_frames", json_integer(8));
    json_object_set_new(j, "codec", json_string("mpeg4"));
    json_object_set_new(j, "encoder", json_string(fv_synth_encoder_ident()));
    json_object_set_new(j, "container", json_string("avi"));
    json_object_set_new(j, "pix_fmt", json_string("yuv420p"));
    json_object_set_new(j, "qscale", json_integer(s->qscale));
    json_object_set_new(j, "gop", json_integer(s->gop));
    json_object_set_new(j, "clean", json_boolean(s->clean));
    json_object_set_new(j, "playfield", json_string("centred square of side min(width, height): the main "
                                                    "action stays inside it (a centre crop keeps it)"));
    json_t *split = json_object();
    json_object_set_new(split, "groups", json_integer(G));
    json_object_set_new(split, "test_groups", json_pack("[i, i]", 1, T));
    json_object_set_new(split, "train_groups", json_pack("[i, i]", T + 1, G));
    json_object_set_new(split, "train_clips", json_integer(ntrain));
    json_object_set_new(split, "test_clips", json_integer(ntest));
    json_object_set_new(j, "split01", split);
    json_t *cl = json_array(), *fp = json_array(), *rp = json_array(), *hinv = json_array();
    for (int i = 0; i < fv_synth_num_classes(); i++) {
        json_array_append_new(cl, json_string(fv_synth_class_name(i)));
        if (fv_synth_hflip_class(i) > i)
            json_array_append_new(fp, json_pack("[s, s]", fv_synth_class_name(i), fv_synth_class_name(fv_synth_hflip_class(i))));
        else if (fv_synth_hflip_class(i) == i)
            json_array_append_new(hinv, json_string(fv_synth_class_name(i)));
        if (fv_synth_reverse_class(i) > i)
            json_array_append_new(rp, json_pack("[s, s]", fv_synth_class_name(i), fv_synth_class_name(fv_synth_reverse_class(i))));
    }
    json_object_set_new(j, "classes", cl);
    json_object_set_new(j, "flip_pairs", fp);
    json_object_set_new(j, "hflip_invariant", hinv);
    json_object_set_new(j, "reverse_pairs", rp);
    json_object_set_new(j, "notes", json_string(
        "flip_pairs: a horizontal flip turns one class of the pair into the other (swap the labels when "
        "flipping for augmentation); hflip_invariant: classes a horizontal flip keeps. reverse_pairs: one "
        "class is the other played backwards, so a single frame cannot tell them apart. A vertical flip is "
        "not a label-preserving augmentation (Bounce has a floor)."));
    return j;
}

typedef struct Job {
    int32_t cls, clip, group, gclip;
} Job;

static int write_clip(const FvSynthSettings *s, const Job *jb, uint8_t *img)
{
    const char *name = fv_synth_class_name(jb->cls);
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s/v_%s_g%02d_c%02d.avi", s->out_dir, name, name, jb->group, jb->gclip);
    snprintf(tmp, sizeof(tmp), "%s.part", path);
    FvSynthPlan *p = NULL;
    FvSynthEncoder *enc = NULL;
    int32_t W, H, nframes;
    int ret = fv_synth_plan_open(&p, s, jb->cls, jb->clip, &W, &H, &nframes);
    if (ret < 0)
        return ret;
    if ((ret = fv_synth_encoder_open(&enc, tmp, W, H, s->fps, s->qscale, s->gop)) < 0)
        goto fail;
    for (int i = 0; i < nframes; i++) {
        fv_synth_plan_frame(p, i, img);
        if ((ret = fv_synth_encoder_write(enc, img)) < 0)
            goto fail;
    }
    if ((ret = fv_synth_encoder_close(&enc, 1)) < 0)
        goto fail;
    if (rename(tmp, path) < 0) {
        int e = errno;
        ret = fv_error(-e, "%s: cannot rename: %s", tmp, strerror(e));
        goto fail;
    }
    fv_synth_plan_close(&p);
    return 0;
fail:
    fv_synth_encoder_close(&enc, 0);
    remove(tmp);
    fv_synth_plan_close(&p);
    return ret;
}

int fv_synth_run(const FvSynthSettings *s, FvSynthProgress progress, void *opaque)
{
    int ret = fv_synth_check_settings(s, 1);
    if (ret < 0 || (ret = fv_ffmpeg_load()) < 0) /* FFmpeg missing: one error before any directory is made */
        return ret;
    const int32_t N = s->clips_per_class;
    int32_t G, T;
    group_layout(N, &G, &T);
    const int64_t total = (int64_t)fv_synth_num_classes() * N;
    Job *jobs = NULL;
    FvStrBuf ci = { 0 }, tr = { 0 }, te = { 0 };
    json_t *meta = NULL;
    char *js = NULL;

    if ((ret = fv_mkdir_p(s->out_dir)) < 0)
        return ret;
    /* lists of an earlier run go first: lists on disk mean a complete data set */
    static const char *const lists[] = { "classInd.txt", "trainlist01.txt", "testlist01.txt", "synth.json" };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", s->out_dir, lists[i]);
        if (unlink(path) < 0 && errno != ENOENT) {
            int e = errno;
            return fv_error(-e, "%s: cannot remove: %s", path, strerror(e));
        }
    }
    for (int c = 0; c < fv_synth_num_classes(); c++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", s->out_dir, fv_synth_class_name(c));
        if ((ret = fv_mkdir_p(path)) < 0)
            return ret;
    }

    jobs = fv_malloc(sizeof(Job) * (size_t)total);
    if (!jobs)
        return fv_error(FV_ENOMEM, "fv_synth_run: out of memory");
    for (int c = 0; c < fv_synth_num_classes(); c++)
        for (int32_t k = 0; k < N; k++) {
            Job *jb = &jobs[(int64_t)c * N + k];
            jb->cls = c;
            jb->clip = k;
            group_of(k, N, G, &jb->group, &jb->gclip);
        }

    /* clips in parallel: each has its own random state, so the bytes do not depend on the schedule */
    int err = 0;
    int64_t done = 0;
    char errmsg[1024] = "";
    const size_t fsz = (size_t)s->width * s->height * 3;
    omp_lock_t lock; /* a lock of its own (a named critical would be an exported symbol of the library) */
    omp_init_lock(&lock);
#pragma omp parallel num_threads(fv_num_threads())
    {
        uint8_t *img = fv_malloc(fsz);
#pragma omp for schedule(dynamic, 1)
        for (int64_t j = 0; j < total; j++) {
            int stop;
#pragma omp atomic read
            stop = err;
            if (stop)
                continue;
            int r = img ? write_clip(s, &jobs[j], img) : fv_error(FV_ENOMEM, "fv_synth_run: out of memory");
            omp_set_lock(&lock);
            if (r < 0 && !err) {
                /* the message is thread-local: carry it to the calling thread */
                snprintf(errmsg, sizeof(errmsg), "%s", fv_last_error());
#pragma omp atomic write
                err = r;
            }
            if (r >= 0) {
                done++;
                if (progress)
                    progress(opaque, done, total);
            }
            omp_unset_lock(&lock);
        }
        fv_free(img);
    }
    omp_destroy_lock(&lock);
    if (err) {
        ret = fv_error(err, "%s", errmsg);
        goto fail;
    }

    /* lists, in UCF101's order: class, group, clip; CRLF like the official files */
    int64_t ntrain = 0, ntest = 0;
    for (int c = 0; c < fv_synth_num_classes(); c++) {
        const char *name = fv_synth_class_name(c);
        fv_strbuf_printf(&ci, "%d %s\r\n", c + 1, name);
        for (int32_t k = 0; k < N; k++) {
            const Job *jb = &jobs[(int64_t)c * N + k];
            if (jb->group <= T) {
                fv_strbuf_printf(&te, "%s/v_%s_g%02d_c%02d.avi\r\n", name, name, jb->group, jb->gclip);
                ntest++;
            } else {
                fv_strbuf_printf(&tr, "%s/v_%s_g%02d_c%02d.avi %d\r\n", name, name, jb->group, jb->gclip, c + 1);
                ntrain++;
            }
        }
    }
    meta = settings_json(s, G, T, ntrain, ntest);
    js = meta ? json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (ci.oom || tr.oom || te.oom || !js) {
        ret = fv_error(FV_ENOMEM, "fv_synth_run: out of memory");
        goto fail;
    }
    size_t jl = strlen(js);
    char *js2 = realloc(js, jl + 2);
    if (!js2) {
        ret = fv_error(FV_ENOMEM, "fv_synth_run: out of memory");
        goto fail;
    }
    js = js2;
    memcpy(js + jl, "\n", 2);
    if ((ret = write_text(s->out_dir, "synth.json", js)) < 0 || (ret = write_text(s->out_dir, "trainlist01.txt", tr.s ? tr.s : "")) < 0 ||
        (ret = write_text(s->out_dir, "testlist01.txt", te.s ? te.s : "")) < 0 ||
        (ret = write_text(s->out_dir, "classInd.txt", ci.s ? ci.s : "")) < 0)
        goto fail;
    ret = 0;
fail:
    free(js);
    json_decref(meta);
    free(ci.s);
    free(tr.s);
    free(te.s);
    fv_free(jobs);
    return ret;
}
