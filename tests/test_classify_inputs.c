/* End-to-end tests of `fibvid classify`'s inputs and outputs (issue 20): stdin as '-', named pipes refused,
 * directories searched recursively for video files, --list, --labels, -o FILE, -f csv, the sliding-window
 * timeline of a long video (a 2-minute clip generated here with tests/clipgen.c, JSON/CSV/SVG, --diag per
 * window) and the progress lines of batch jobs (stderr not a terminal). Model: tests/data/tiny_hf. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "clipgen.h"
#include "fibvid/fibvid.h"
#include "testutil.h"

static char *g_tmp;
static char *g_long;  /* the 2-minute clip: 1200 frames of 64x48 at 10 fps, lossless (ffv1 in Matroska) */
static char *g_head;  /* its first 100 frames (the first 10 s window) as a clip of their own */

static void long_spec(FvtClipSpec *s, int nframes)
{
    fvt_clip_spec_default(s);
    s->format = "matroska";
    s->codec = "ffv1";
    s->nframes = nframes;
    s->fps_num = 10;
    s->fps_den = 1;
}

static int setup(void **state)
{
    (void)state;
    FvtClipSpec s;
    g_tmp = fvt_tmpdir();
    if (!g_tmp)
        return -1;
    g_long = fvt_join(g_tmp, "long.mkv");
    g_head = fvt_join(g_tmp, "head.mkv");
    long_spec(&s, 1200); /* every frame shows its own index: the content changes all the way through */
    if (fvt_clip_write(g_long, &s) < 0)
        return -1;
    long_spec(&s, 100);
    return fvt_clip_write(g_head, &s) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    fvt_rmtree(g_tmp);
    free(g_tmp);
    free(g_long);
    free(g_head);
    return 0;
}

/* Run "fibvid classify -m tiny_hf ARGS" (ARGS printf-style; may end in a redirection or start a pipe's end). */
static int classify(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int classify(char **out, char **err, const char *fmt, ...)
{
    char args[8192], cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "'%s' classify -m '%s/tiny_hf' %s", fvt_bin(), fvt_data_dir(), args);
    return fvt_run(cmd, out, err);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static int count_str(const char *s, const char *x)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, x)); p += strlen(x))
        n++;
    return n;
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s ? s : "", 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %.200s", e.text, s ? s : "(null)");
    return j;
}

static double top1_prob(const json_t *clip)
{
    return json_real_value(json_object_get(json_array_get(json_object_get(clip, "top"), 0), "prob"));
}

/* Bug 8: '-' reads the video from stdin, through a pipe (spooled) or a redirected file, with the same result as
 * the file itself; the results name it '-'. It used to fail with "-: no such file". */
static void test_stdin(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;
    const char *d = fvt_data_dir();
    assert_int_equal(classify(&out, &err, "-f json '%s/clip_ffv1.mkv'", d), 0);
    json_t *ref = parse(out);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cat '%s/clip_ffv1.mkv' | '%s' classify -m '%s/tiny_hf' -f json -", d, fvt_bin(), d);
    int rc = fvt_run(cmd, &out2, &err2);
    if (rc)
        printf("stderr: %s\n", err2);
    assert_int_equal(rc, 0);
    json_t *piped = parse(out2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(piped, 0), "path")), "-");
    assert_true(json_equal(json_object_get(json_array_get(piped, 0), "top"), json_object_get(json_array_get(ref, 0), "top")));
    json_decref(piped);
    free(out2);
    free(err2);

    assert_int_equal(classify(&out2, &err2, "-f json - < '%s/clip_ffv1.mkv'", d), 0); /* a regular file as stdin */
    piped = parse(out2);
    assert_true(json_equal(json_object_get(json_array_get(piped, 0), "top"), json_object_get(json_array_get(ref, 0), "top")));
    json_decref(piped);
    json_decref(ref);
    free(out);
    free(err);
    free(out2);
    free(err2);

    /* bad input on stdin: one line naming '-' (not the spool file), exit 2 */
    snprintf(cmd, sizeof(cmd), "printf 'not a video at all, just some text\\n' | '%s' classify -m '%s/tiny_hf' -",
             fvt_bin(), d);
    assert_int_equal(fvt_run(cmd, &out, &err), 2);
    printf("%s", err);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "fibvid classify: -: not a media file"));
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd), "'%s' classify -m '%s/tiny_hf' - < /dev/null", fvt_bin(), d);
    assert_int_equal(fvt_run(cmd, &out, &err), 2);
    assert_non_null(strstr(err, "-: empty file"));
    free(out);
    free(err);
    /* stdin taken twice */
    assert_int_equal(classify(&out, &err, "- - < /dev/null"), 1);
    free(out);
    free(err);
}

/* Bug 8: a named pipe is refused at once with one line saying it is not seekable (it used to report a corrupt
 * file, and opening a FIFO nobody writes to blocks forever); the library refuses it too. */
static void test_named_pipe(void **state)
{
    (void)state;
    char *fifo = fvt_join(g_tmp, "pipe.mp4"), *out = NULL, *err = NULL;
    assert_int_equal(mkfifo(fifo, 0600), 0);
    /* nobody writes to it: without the check this would hang, so a time limit turns a hang into exit 124 */
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "timeout 60 '%s' classify -m '%s/tiny_hf' '%s' '%s/clip_ffv1.mkv'", fvt_bin(),
             fvt_data_dir(), fifo, fvt_data_dir());
    assert_int_equal(fvt_run(cmd, &out, &err), 2);
    printf("%s", err);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "not seekable"));
    assert_null(strstr(err, "corrupt"));
    assert_non_null(strstr(out, "clip_ffv1.mkv")); /* the other clip is still classified */
    free(out);
    free(err);

    FvVideo *v = NULL;
    assert_int_equal(fv_video_open(&v, fifo), FV_ENOTSUP);
    assert_null(v);
    assert_non_null(strstr(fv_last_error(), "not seekable"));
    unlink(fifo);
    free(fifo);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *data = fvt_read_file(from, &n);
    assert_non_null(data);
    assert_int_equal(fvt_write_file(to, data, n), 0);
    free(data);
}

/* A directory is searched recursively for video files by extension (any case), in sorted order; other files,
 * hidden entries and empty directories are skipped; a directory without videos is an input error. */
static void test_directory(void **state)
{
    (void)state;
    char *root = fvt_join(g_tmp, "dir"), *clip = fvt_join(fvt_data_dir(), "clip_ffv1.mkv"), p[4096];
    const char *dirs[] = { "", "/b", "/b/deep", "/a", "/.hidden", "/empty" };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", root, dirs[i]);
        assert_int_equal(mkdir(p, 0700), 0);
    }
    const char *clips[] = { "/z.mkv", "/b/deep/y.MKV", "/a/x.mkv", "/.hidden/h.mkv", "/b/.dot.mkv" };
    for (size_t i = 0; i < sizeof(clips) / sizeof(clips[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", root, clips[i]);
        copy_file(clip, p);
    }
    snprintf(p, sizeof(p), "%s/a/notes.txt", root);
    assert_int_equal(fvt_write_file(p, "hello\n", 6), 0);

    char *out = NULL, *err = NULL;
    int rc = classify(&out, &err, "-f jsonl -k 1 '%s/'", root);
    if (rc)
        printf("stderr: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines(out), 3);
    const char *want[] = { "/a/x.mkv", "/b/deep/y.MKV", "/z.mkv" };
    char *line = strtok(out, "\n");
    for (int i = 0; i < 3; i++, line = strtok(NULL, "\n")) {
        json_t *j = parse(line);
        snprintf(p, sizeof(p), "%s%s", root, want[i]);
        assert_string_equal(json_string_value(json_object_get(j, "path")), p);
        json_decref(j);
    }
    free(out);
    free(err);

    snprintf(p, sizeof(p), "%s/empty", root);
    assert_int_equal(classify(&out, &err, "'%s'", p), 2);
    assert_non_null(strstr(err, "no video files"));
    free(out);
    free(err);
    free(root);
    free(clip);
}

/* --list FILE (and --list - from stdin): one path a line, comments and empty lines skipped; a missing list is
 * an input error before the model is loaded. */
static void test_list(void **state)
{
    (void)state;
    char *list = fvt_join(g_tmp, "clips.txt"), text[8192], *out = NULL, *err = NULL;
    const char *d = fvt_data_dir();
    snprintf(text, sizeof(text), "# my clips\n%s/clip_ffv1.mkv\n\n  %s/clip_ffv1.mkv\r\n%s/missing.mp4\n", d, d, d);
    assert_int_equal(fvt_write_file(list, text, strlen(text)), 0);
    assert_int_equal(classify(&out, &err, "-f jsonl --list '%s'", list), 2); /* one listed clip is missing */
    assert_int_equal(count_lines(out), 3);
    assert_int_equal(count_str(out, "\"error\""), 1);
    assert_non_null(strstr(err, "missing.mp4: no such file"));
    free(out);
    free(err);

    assert_int_equal(classify(&out, &err, "-f jsonl '%s/clip_ffv1.mkv' --list - < '%s'", d, list), 2);
    assert_int_equal(count_lines(out), 4); /* the operand, then the list */
    free(out);
    free(err);

    assert_int_equal(classify(&out, &err, "--list '%s/nope.txt'", g_tmp), 2);
    assert_non_null(strstr(err, "nope.txt: cannot read"));
    free(out);
    free(err);
    free(list);
}

/* --labels FILE names the classes of a model without id2label (it would print LABEL_i / class_i) */
static void test_labels(void **state)
{
    (void)state;
    const char *d = fvt_data_dir();
    char *mdir = fvt_join(g_tmp, "noid2label"), *p, *src, *out = NULL, *err = NULL;
    assert_int_equal(mkdir(mdir, 0700), 0);
    src = fvt_join(d, "tiny_hf/config.json");
    json_t *cfg = json_load_file(src, 0, NULL);
    free(src);
    assert_non_null(cfg);
    json_object_del(cfg, "id2label");
    json_object_del(cfg, "label2id");
    json_object_set_new(cfg, "num_labels", json_integer(5));
    p = fvt_join(mdir, "config.json");
    assert_int_equal(json_dump_file(cfg, p, 0), 0);
    json_decref(cfg);
    free(p);
    p = fvt_join(mdir, "model.safetensors");
    src = fvt_join(d, "tiny_hf/model.safetensors");
    copy_file(src, p);
    free(src);
    free(p);

    char *labels = fvt_join(g_tmp, "labels.txt"), cmd[8192];
    const char *names = "walk\nrun\njump\nswim\nclimb, fast\n\n";
    assert_int_equal(fvt_write_file(labels, names, strlen(names)), 0);
    snprintf(cmd, sizeof(cmd), "'%s' classify -m '%s' -k 5 -f json '%s/clip_ffv1.mkv'", fvt_bin(), mdir, d);
    assert_int_equal(fvt_run(cmd, &out, &err), 0);
    json_t *plain = parse(out);
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd), "'%s' classify -m '%s' -k 5 -f json --labels '%s' '%s/clip_ffv1.mkv'", fvt_bin(),
             mdir, labels, d);
    assert_int_equal(fvt_run(cmd, &out, &err), 0);
    json_t *named = parse(out);
    const char *want[] = { "walk", "run", "jump", "swim", "climb, fast" };
    for (size_t r = 0; r < 5; r++) {
        json_t *a = json_array_get(json_object_get(json_array_get(plain, 0), "top"), r);
        json_t *b = json_array_get(json_object_get(json_array_get(named, 0), "top"), r);
        const json_int_t idx = json_integer_value(json_object_get(b, "index"));
        assert_int_equal(idx, json_integer_value(json_object_get(a, "index")));
        assert_string_not_equal(json_string_value(json_object_get(a, "label")), want[idx]);
        assert_string_equal(json_string_value(json_object_get(b, "label")), want[idx]);
    }
    json_decref(plain);
    json_decref(named);
    free(out);
    free(err);

    /* a list of the wrong length is an input error, said once */
    assert_int_equal(fvt_write_file(labels, "a\nb\n", 4), 0);
    assert_int_equal(classify(&out, &err, "--labels '%s' '%s/clip_ffv1.mkv'", labels, d), 2);
    assert_non_null(strstr(err, "2 labels, the model has 5 classes"));
    assert_int_equal(count_lines(err), 1);
    free(out);
    free(err);
    free(labels);
    free(mdir);
}

/* -o FILE gets the results (atomically at the end; nothing on stdout) and -f csv has a header and one row per
 * clip x rank, quoted where needed; failed clips get a row with the error. */
static void test_output_csv(void **state)
{
    (void)state;
    const char *d = fvt_data_dir();
    char *odd = fvt_join(g_tmp, "a,\"b\".mkv"), *csv = fvt_join(g_tmp, "out.csv"), *src = fvt_join(d, "clip_ffv1.mkv");
    copy_file(src, odd);
    char *out = NULL, *err = NULL;
    assert_int_equal(classify(&out, &err, "-k 3 -f csv -o '%s' '%s' '%s/gone.mkv'", csv, src, g_tmp), 2);
    assert_string_equal(out, "");
    char *text = fvt_read_file(csv, NULL);
    assert_non_null(text);
    printf("%s", text);
    assert_int_equal(count_lines(text), 1 + 3 + 1);
    assert_memory_equal(text, "path,rank,index,label,prob,error\n", 33);
    char row[8192];
    snprintf(row, sizeof(row), "%s,1,0,apply eye makeup,", src);
    assert_non_null(strstr(text, row));
    snprintf(row, sizeof(row), "%s/gone.mkv,,,,,%s/gone.mkv: no such file\n", g_tmp, g_tmp);
    assert_non_null(strstr(text, row));
    free(text);
    free(out);
    free(err);

    assert_int_equal(classify(&out, &err, "-k 2 -f csv '%s'", odd), 0);
    snprintf(row, sizeof(row), "\"%s/a,\"\"b\"\".mkv\",1,", g_tmp); /* RFC 4180 quoting */
    assert_non_null(strstr(out, row));
    free(out);
    free(err);

    /* text and json still work into a file; an unwritable -o fails before anything is classified */
    char *txt = fvt_join(g_tmp, "out.txt");
    assert_int_equal(classify(&out, &err, "-o '%s' '%s'", txt, src), 0);
    text = fvt_read_file(txt, NULL);
    assert_non_null(strstr(text, "apply eye makeup"));
    free(text);
    free(out);
    free(err);
    assert_int_equal(classify(&out, &err, "-o '%s/no/such/dir/x.csv' '%s'", g_tmp, src), 2);
    assert_int_equal(count_lines(err), 1);
    assert_string_equal(out, "");
    free(out);
    free(err);
    free(txt);
    free(odd);
    free(csv);
    free(src);
}

/* Expected windows of a video of @dur seconds */
static int n_windows(double dur, double win, double stride)
{
    return dur > win ? (int)ceil((dur - win) / stride - 1e-9) + 1 : 1;
}

/* The long-video timeline on the generated 2-minute clip: window count, start/end times, the frames of each
 * window (inside it, sampled as a clip of its own), window 0's prediction equal to that of the first 10 s as a
 * clip of their own, one streaming decoding pass; the SVG strip and CSV rows; --diag per window. */
static void test_timeline_two_minutes(void **state)
{
    (void)state;
    char *svg = fvt_join(g_tmp, "timeline.svg"), *diag = fvt_join(g_tmp, "diag.json"), *out = NULL, *err = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = classify(&out, &err, "-f json -k 5 --window 10 --stride 5 --timeline '%s' --diag '%s' '%s'", svg, diag,
                      g_long);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc)
        printf("stderr: %s\n", err);
    assert_int_equal(rc, 0);
    printf("classify --window 10 --stride 5 on the 2-minute clip (with --timeline and --diag): %.2f s wall\n",
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    json_t *all = parse(out), *tl = json_array_get(all, 0);
    json_t *wins = json_object_get(tl, "windows");
    const int W = n_windows(120, 10, 5);
    assert_int_equal(W, 23);
    assert_int_equal(json_array_size(wins), W);
    assert_true(fabs(json_real_value(json_object_get(tl, "duration_s")) - 120.0) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(tl, "nframes")), 1200);
    printf("timeline: %d windows, %lld frames decoded in %lld pass(es), decode %.1f ms, forward %.1f ms\n", W,
           (long long)json_integer_value(json_object_get(tl, "frames_decoded")),
           (long long)json_integer_value(json_object_get(tl, "decoding_passes")),
           json_real_value(json_object_get(json_object_get(tl, "timing_ms"), "decode")),
           json_real_value(json_object_get(json_object_get(tl, "timing_ms"), "forward")));
    /* decoded once: never more frames than the video has (once per window would decode windows x 4 frames
     * plus an index pass each) */
    assert_true(json_integer_value(json_object_get(tl, "frames_decoded")) <= 1200);

    FvSampleSettings ss;
    fv_sample_default_settings(&ss);
    ss.num_frames = 4; /* tiny_hf: 4 frames, uniform */
    int differ = 0;
    for (int w = 0; w < W; w++) {
        json_t *win = json_array_get(wins, (size_t)w);
        const double s = json_real_value(json_object_get(win, "start_s")), e = json_real_value(json_object_get(win, "end_s"));
        assert_int_equal(json_integer_value(json_object_get(win, "index")), w);
        assert_true(fabs(s - 5.0 * w) < 1e-9);
        assert_true(fabs(e - (5.0 * w + 10)) < 1e-9); /* 120 s = 22 strides + a window: no cut window */
        assert_int_equal(json_integer_value(json_object_get(win, "first_frame")), 50 * w);
        assert_int_equal(json_integer_value(json_object_get(win, "end_frame")), 50 * w + 100);
        int64_t want[4];
        assert_int_equal(fv_sample_indices(&ss, 100, 0, want), 0);
        json_t *fr = json_array_get(json_object_get(win, "frames"), 0);
        assert_int_equal(json_array_size(fr), 4);
        for (size_t t = 0; t < 4; t++) {
            const json_int_t f = json_integer_value(json_array_get(fr, t));
            assert_int_equal(f, 50 * w + want[t]);
            assert_true(f >= 50 * w && f < 50 * w + 100);
        }
        differ += fabs(top1_prob(win) - top1_prob(json_array_get(wins, 0))) > 1e-4;
    }
    assert_true(differ > 0); /* the content changes along the video, so do the predictions */

    /* window 0 = the first 100 frames as a clip of their own (lossless, so the same pixels) */
    char *o2 = NULL, *e2 = NULL;
    assert_int_equal(classify(&o2, &e2, "-f json -k 5 '%s'", g_head), 0);
    json_t *head = parse(o2);
    json_t *a = json_object_get(json_array_get(wins, 0), "top"), *b = json_object_get(json_array_get(head, 0), "top");
    for (size_t r = 0; r < 5; r++) {
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, r), "index")),
                         json_integer_value(json_object_get(json_array_get(b, r), "index")));
        assert_true(fabs(json_real_value(json_object_get(json_array_get(a, r), "prob")) -
                         json_real_value(json_object_get(json_array_get(b, r), "prob"))) < 1e-5);
    }
    json_decref(head);
    free(o2);
    free(e2);

    /* the SVG: one band per window, the top-1 label and probability, a time axis in seconds, a legend */
    char *text = fvt_read_file(svg, NULL);
    assert_non_null(text);
    assert_int_equal(count_str(text, "<title>window "), W);
    assert_non_null(strstr(text, "<title>window 22: 110.00-120.00 s: "));
    assert_non_null(strstr(text, "time (s)"));
    assert_non_null(strstr(text, "Legend"));
    assert_non_null(strstr(text, ">120</text>")); /* the last tick */
    assert_memory_equal(text, "<?xml", 5);
    assert_non_null(strstr(text, "</svg>\n"));
    free(text);

    /* --diag: one entry per window */
    json_t *dj = json_load_file(diag, 0, NULL);
    assert_non_null(dj);
    json_t *dw = json_object_get(json_array_get(json_object_get(dj, "clips"), 0), "windows");
    assert_int_equal(json_array_size(dw), W);
    assert_non_null(json_object_get(json_array_get(dw, 3), "diag"));
    json_decref(dj);
    json_decref(all);
    free(out);
    free(err);

    /* CSV: a row per window x rank */
    assert_int_equal(classify(&out, &err, "-f csv -k 2 --window 10 --stride 5 '%s'", g_long), 0);
    assert_int_equal(count_lines(out), 1 + W * 2);
    assert_non_null(strstr(out, "path,window,start_s,end_s,rank,index,label,prob,error\n"));
    char row[8192];
    snprintf(row, sizeof(row), "%s,22,110.000,120.000,2,", g_long);
    assert_non_null(strstr(out, row));
    free(out);
    free(err);
    free(svg);
    free(diag);
}

/* Windows that do not divide the video: the last one is cut at the end; a window longer than the video gives
 * one window over all of it. Bad window options are usage errors. */
static void test_timeline_edges(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(classify(&out, &err, "-f json --window 50 --stride 40 '%s'", g_long), 0);
    json_t *j = parse(out), *wins = json_object_get(json_array_get(j, 0), "windows");
    assert_int_equal(json_array_size(wins), n_windows(120, 50, 40));
    assert_int_equal(json_array_size(wins), 3);
    const double se[3][2] = { { 0, 50 }, { 40, 90 }, { 80, 120 } };
    for (size_t w = 0; w < 3; w++) {
        assert_true(fabs(json_real_value(json_object_get(json_array_get(wins, w), "start_s")) - se[w][0]) < 1e-9);
        assert_true(fabs(json_real_value(json_object_get(json_array_get(wins, w), "end_s")) - se[w][1]) < 1e-9);
    }
    json_decref(j);
    free(out);
    free(err);

    assert_int_equal(classify(&out, &err, "-f json --window 500 '%s'", g_head), 0);
    j = parse(out);
    wins = json_object_get(json_array_get(j, 0), "windows");
    assert_int_equal(json_array_size(wins), 1);
    assert_true(fabs(json_real_value(json_object_get(json_array_get(wins, 0), "end_s")) - 10.0) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(json_array_get(j, 0), "stride_s")) - 500.0) < 1e-9);
    json_decref(j);
    free(out);
    free(err);

    const char *bad[] = { "--window 0", "--window -3", "--window abc", "--stride 5", "--timeline x.svg",
                          "--window 10 --stride 0" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(classify(&out, &err, "%s '%s'", bad[i], g_head), 1);
        assert_int_equal(count_lines(err), 1);
        free(out);
        free(err);
    }
}

/* Batch jobs: with stderr not a terminal, a progress line every N clips (--progress-every) and after a clip that
 * ends S seconds after the last line (--progress-seconds), none with -q; the default (every 10 clips or 30 s)
 * says nothing for a few fast clips. */
static void test_batch_progress(void **state)
{
    (void)state;
    const char *d = fvt_data_dir();
    char *out = NULL, *err = NULL;
    assert_int_equal(classify(&out, &err, "--progress-every 1 -k 1 '%s/clip_ffv1.mkv' '%s/nope.mkv' '%s/clip_ffv1.mkv'",
                              d, d, d), 2);
    printf("%s", err);
    assert_non_null(strstr(err, "fibvid classify: 1/3 clips (0 failed)"));
    assert_non_null(strstr(err, "fibvid classify: 2/3 clips (1 failed)"));
    assert_non_null(strstr(err, "fibvid classify: 3/3 clips (1 failed)"));
    assert_int_equal(count_lines(err), 4); /* 3 progress lines and the error */
    assert_null(strstr(err, "\r"));
    free(out);
    free(err);
    assert_int_equal(classify(&out, &err, "-q --progress-every 1 '%s/clip_ffv1.mkv' '%s/clip_ffv1.mkv'", d, d), 0);
    assert_string_equal(err, "");
    free(out);
    free(err);
    assert_int_equal(classify(&out, &err, "--progress-every 2 '%s/clip_ffv1.mkv' '%s/clip_ffv1.mkv' '%s/clip_ffv1.mkv'", d,
                              d, d), 0);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "2/3 clips"));
    free(out);
    free(err);
    assert_int_equal(classify(&out, &err, "'%s/clip_ffv1.mkv' '%s/clip_ffv1.mkv'", d, d), 0);
    assert_string_equal(err, "");
    free(out);
    free(err);
    /* by time: after every clip that ends that long after the last line */
    assert_int_equal(classify(&out, &err, "--progress-every 0 --progress-seconds 0.000001 '%s/clip_ffv1.mkv' "
                              "'%s/clip_ffv1.mkv'", d, d), 0);
    assert_int_equal(count_lines(err), 2);
    assert_non_null(strstr(err, "2/2 clips"));
    free(out);
    free(err);
    assert_int_equal(classify(&out, &err, "--progress-every 0 --progress-seconds 1000 '%s/clip_ffv1.mkv' "
                              "'%s/clip_ffv1.mkv'", d, d), 0);
    assert_string_equal(err, "");
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_named_pipe),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_output_csv),
        cmocka_unit_test(test_timeline_two_minutes),
        cmocka_unit_test(test_timeline_edges),
        cmocka_unit_test(test_batch_progress),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
