/* Tests for the video input stage (src/video.c, src/clip.c): clips of every container/codec kind
 * made by clipgen, frames read back by the index their pixels encode, exact frame counts, lossless
 * round trips, seeking savings, bad files, and fv_clip_load end to end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/error.h>
#include <libavutil/log.h>

#include "fibvid/video.h"
#include "util/util.h"

#include "clipgen.h"
#include "testutil.h"

static char *g_dir;

static char *make_clip(const char *name, const FvtClipSpec *s)
{
    char *path = fvt_join(g_dir, name);
    int r = fvt_clip_write(path, s);
    if (r < 0)
        printf("clipgen %s: %s\n", name, av_err2str(r));
    assert_int_equal(r, 0);
    return path;
}

/* Read @n frames at w x h and check each shows the requested index. */
static void read_and_check(FvVideo *v, const int64_t *idx, int32_t n, int32_t w, int32_t h)
{
    uint8_t *rgb = malloc((size_t)n * w * h * 3);
    assert_non_null(rgb);
    int r = fv_video_read_rgb(v, idx, n, w, h, rgb);
    if (r < 0)
        printf("read failed: %s\n", fv_last_error());
    assert_int_equal(r, 0);
    for (int32_t i = 0; i < n; i++) {
        int got = fvt_clip_read_index(rgb + (size_t)i * w * h * 3, w, h);
        if (got != idx[i])
            printf("request %d: wanted frame %lld, got %d\n", i, (long long)idx[i], got);
        assert_int_equal(got, idx[i]);
    }
    free(rgb);
}

typedef struct Kind {
    const char *name;       /* file name; the extension picks nothing, spec.format does */
    const char *format, *codec, *pix_fmt;
    int w, h, n, fps_num, fps_den, gop, bframes, vfr;
    const char *decoder;
    int64_t nkeys;          /* expected keyframes, 0 = not checked */
    int counted;            /* 1: no usable timestamps, frames are counted from the start */
} Kind;

static const Kind kinds[] = {
    /* UCF101-like: MPEG-4 part 2 in AVI */
    { "ucf.avi", "avi", "mpeg4", NULL, 64, 48, 60, 25, 1, 12, 0, 0, "mpeg4", 5, 0 },
    /* AVI stores no pts: B-frames leave only decode-order dts, frames are counted instead */
    { "bframes.avi", "avi", "mpeg4", NULL, 64, 48, 40, 25, 1, 12, 2, 0, "mpeg4", 4, 1 },
    /* Kinetics-like: H.264 with B-frames in MP4, NTSC rate */
    { "k400.mp4", "mp4", "libx264", NULL, 96, 64, 61, 30000, 1001, 12, 2, 0, "h264", 6, 0 },
    /* MKV stores no frame count; odd rate */
    { "seven.mkv", "matroska", "libx264", NULL, 64, 48, 50, 7, 1, 10, 0, 0, "h264", 5, 0 },
    { "mpeg4b.mkv", "matroska", "mpeg4", NULL, 64, 48, 45, 30000, 1001, 12, 2, 0, "mpeg4", 4, 0 },
    /* lossless RGB; FFV1 non-keyframes carry coder state, so they need their keyframe too */
    { "ffv1.mkv", "matroska", "ffv1", "bgr0", 64, 48, 30, 25, 1, 8, 0, 0, "ffv1", 4, 0 },
    { "ffv1bgra.mkv", "matroska", "ffv1", "bgra", 48, 32, 20, 24, 1, 1, 0, 0, "ffv1", 20, 0 },
    /* variable frame rate */
    { "vfr.mp4", "mp4", "libx264", NULL, 64, 48, 40, 25, 1, 12, 2, 1, "h264", 4, 0 },
    { "vfr.mkv", "matroska", "ffv1", "bgr0", 64, 48, 33, 30, 1, 6, 0, 1, "ffv1", 6, 0 },
    { "vfr_b.mkv", "matroska", "libx264", NULL, 64, 48, 41, 30000, 1001, 12, 3, 1, "h264", 4, 0 },
    /* AVI gaps are empty "drop frame" chunks, counted in the header but not frames */
    { "drop.avi", "avi", "mpeg4", NULL, 64, 48, 30, 25, 1, 12, 0, 1, "mpeg4", 3, 0 },
    /* raw H.264: no timestamps at all, frames are counted */
    { "raw.h264", "h264", "libx264", NULL, 64, 48, 37, 25, 1, 12, 2, 0, "h264", 4, 1 },
};

static void spec_of(const Kind *k, FvtClipSpec *s)
{
    fvt_clip_spec_default(s);
    s->format = k->format;
    s->codec = k->codec;
    s->pix_fmt = k->pix_fmt;
    s->width = k->w;
    s->height = k->h;
    s->nframes = k->n;
    s->fps_num = k->fps_num;
    s->fps_den = k->fps_den;
    s->gop = k->gop;
    s->bframes = k->bframes;
    s->vfr = k->vfr;
}

static void test_kinds(void **state)
{
    (void)state;
    uint64_t rs = 1234;
    for (size_t ki = 0; ki < sizeof(kinds) / sizeof(kinds[0]); ki++) {
        const Kind *k = &kinds[ki];
        FvtClipSpec s;
        spec_of(k, &s);
        char *path = make_clip(k->name, &s);
        FvVideo *v = NULL;
        int r = fv_video_open(&v, path);
        if (r < 0)
            printf("%s\n", fv_last_error());
        assert_int_equal(r, 0);
        const FvVideoInfo *in = fv_video_info(v);
        printf("%-14s %dx%d %lld frames %lld keys %.4f fps %.3f s codec %s\n", k->name, in->width,
               in->height, (long long)in->nframes, (long long)in->nkeyframes, in->fps, in->duration_s,
               in->codec);
        assert_int_equal(in->width, k->w);
        assert_int_equal(in->height, k->h);
        assert_int_equal(in->nframes, k->n);
        assert_string_equal(in->codec, k->decoder);
        if (k->nkeys)
            assert_int_equal(in->nkeyframes, k->nkeys);
        if (k->vfr) {
            double avg = k->n / in->duration_s;
            assert_true(in->fps > avg * 0.999 && in->fps < avg * 1.001);
        }
        if (!k->vfr && strcmp(k->format, "h264")) {
            double fps = (double)k->fps_num / k->fps_den;
            assert_true(in->fps > fps * 0.999 && in->fps < fps * 1.001);
            assert_true(in->duration_s > k->n / fps * 0.97 && in->duration_s < k->n / fps * 1.03);
        }
        if (k->vfr) {
            /* span of the irregular timestamps, last frame lasting about one period */
            double span = fvt_clip_frame_ticks(&s, k->n - 1) * (double)k->fps_den / k->fps_num;
            assert_true(in->duration_s > span && in->duration_s < span + 4.0 * k->fps_den / k->fps_num);
        }

        const int32_t n = (int32_t)in->nframes;
        int64_t *idx = malloc(sizeof(*idx) * (size_t)(2 * n + 8));
        /* every frame in order */
        for (int32_t i = 0; i < n; i++)
            idx[i] = i;
        read_and_check(v, idx, n, k->w, k->h);
        assert_true(fv_video_frames_decoded(v) >= n);
        /* reversed: every frame needs a seek back */
        for (int32_t i = 0; i < n; i++)
            idx[i] = n - 1 - i;
        read_and_check(v, idx, n, k->w, k->h);
        /* random sets with repeats, resized */
        for (int rep = 0; rep < 6; rep++) {
            int32_t m = 1 + (int32_t)(fv_rand_u64(&rs) % 12);
            for (int32_t i = 0; i < m; i++)
                idx[i] = (int64_t)(fv_rand_u64(&rs) % (uint64_t)n);
            if (m > 2)
                idx[m - 1] = idx[0];
            read_and_check(v, idx, m, 40 + 8 * rep, 32 + 4 * rep);
        }
        /* around every GOP boundary, and the last frame alone */
        int32_t m = 0;
        for (int32_t i = 0; i < n && m < 2 * n; i += FV_MAX(k->gop, 1)) {
            if (i > 0)
                idx[m++] = i - 1;
            idx[m++] = i;
        }
        read_and_check(v, idx, m, k->w, k->h);
        idx[0] = n - 1;
        read_and_check(v, idx, 1, k->w, k->h);
        /* the last frame alone: its GOP (plus decoder delay) when seeking, everything when counting */
        printf("  last frame alone: %lld decoded\n", (long long)fv_video_frames_decoded(v));
        if (k->counted)
            assert_int_equal(fv_video_frames_decoded(v), n);
        else
            assert_true(fv_video_frames_decoded(v) <= FV_MAX(k->gop, 1) + 2 * k->bframes + 2);
        /* second read of the same frames: state from the last call must not matter */
        idx[0] = 0;
        idx[1] = n / 2;
        idx[2] = 0;
        read_and_check(v, idx, 3, 32, 32);

        free(idx);
        fv_video_close(&v);
        assert_null(v);
        fv_video_close(&v); /* NULL again: no-op */
        free(path);
    }
}

/* Seeking decodes only what each wanted frame needs; timestamp-less files decode from the start. */
static void test_seek_saves_work(void **state)
{
    (void)state;
    FvtClipSpec s;
    fvt_clip_spec_default(&s); /* mpeg4 AVI GOP 12 */
    s.nframes = 175;
    char *path = make_clip("long.avi", &s);
    FvVideo *v = NULL;
    assert_int_equal(fv_video_open(&v, path), 0);
    FvSampleSettings ss;
    fv_sample_default_settings(&ss);
    int64_t idx[8];
    assert_int_equal(fv_sample_indices(&ss, 175, 0, idx), 0);
    read_and_check(v, idx, 8, 64, 48);
    int64_t dec = fv_video_frames_decoded(v);
    printf("8 uniform frames of 175 (GOP 12): %lld decoded\n", (long long)dec);
    /* each frame costs at most its GOP (plus the decoder's pipeline) */
    assert_true(dec >= 8 && dec <= 8 * 12 + 16);
    assert_true(dec < 175 / 2);
    int64_t last = 174;
    read_and_check(v, &last, 1, 64, 48);
    assert_true(fv_video_frames_decoded(v) <= 12 + 16);
    fv_video_close(&v);
    free(path);

    /* raw H.264 has no timestamps: frame k is the k-th picture from the start */
    s.format = "h264";
    s.codec = "libx264";
    s.nframes = 50;
    path = make_clip("long.h264", &s);
    assert_int_equal(fv_video_open(&v, path), 0);
    int64_t two[2] = { 30, 10 };
    read_and_check(v, two, 2, 64, 48);
    assert_true(fv_video_frames_decoded(v) >= 31);
    fv_video_close(&v);
    free(path);
}

/* FFV1 is lossless and RGB -> RGB24 at the same size must be exact. */
static void test_ffv1_exact(void **state)
{
    (void)state;
    const char *pix[] = { "bgr0", "bgra" };
    for (int p = 0; p < 2; p++) {
        FvtClipSpec s;
        fvt_clip_spec_default(&s);
        s.format = "matroska";
        s.codec = "ffv1";
        s.pix_fmt = pix[p];
        s.width = 72;
        s.height = 40;
        s.nframes = 24;
        s.gop = 5;
        char name[32];
        snprintf(name, sizeof(name), "exact_%s.mkv", pix[p]);
        char *path = make_clip(name, &s);
        FvVideo *v = NULL;
        assert_int_equal(fv_video_open(&v, path), 0);
        int64_t idx[5] = { 23, 0, 7, 7, 12 };
        const size_t fb = (size_t)72 * 40 * 3;
        uint8_t *rgb = malloc(fb * 5), *ref = malloc(fb);
        assert_int_equal(fv_video_read_rgb(v, idx, 5, 72, 40, rgb), 0);
        int maxd = 0;
        for (int i = 0; i < 5; i++) {
            fvt_clip_picture((int)idx[i], 72, 40, ref);
            for (size_t b = 0; b < fb; b++) {
                int d = abs((int)rgb[fb * i + b] - (int)ref[b]);
                maxd = d > maxd ? d : maxd;
            }
        }
        printf("ffv1 %s: max abs diff %d\n", pix[p], maxd);
        assert_int_equal(maxd, 0);
        free(rgb);
        free(ref);
        fv_video_close(&v);
        free(path);
    }
}

static void expect_open_error(const char *path, int code, const char *reason)
{
    FvVideo *v = (FvVideo *)(uintptr_t)1; /* must be reset to NULL */
    int r = fv_video_open(&v, path);
    const char *msg = fv_last_error();
    printf("%d: %s\n", r, msg);
    assert_int_equal(r, code);
    assert_null(v);
    assert_non_null(strstr(msg, path));
    assert_null(strchr(msg, '\n'));
    if (reason)
        assert_non_null(strstr(msg, reason));
    assert_true(fv_error_is_input(r));

    /* fv_clip_load reports the same */
    FvClipSettings cs;
    fv_clip_default_settings(&cs);
    cs.pre.crop_size = 32;
    FvClip clip;
    assert_int_equal(fv_clip_load(path, &cs, &clip), code);
    assert_non_null(strstr(fv_last_error(), path));
    assert_null(clip.data);
    fv_clip_free(&clip);
}

static void truncate_half(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
}

static void test_bad_files(void **state)
{
    (void)state;
    char *p = fvt_join(g_dir, "missing.mp4");
    expect_open_error(p, FV_ENOENT, "no such file");
    free(p);

    p = fvt_join(g_dir, "empty.mp4");
    assert_int_equal(fvt_write_file(p, "", 0), 0);
    expect_open_error(p, FV_EIO, "empty");
    free(p);

    p = fvt_join(g_dir, "random.mp4");
    uint8_t junk[8192];
    uint64_t rs = 99;
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)fv_rand_u64(&rs);
    assert_int_equal(fvt_write_file(p, junk, sizeof(junk)), 0);
    expect_open_error(p, FV_EINVAL, "not a media file");
    free(p);

    p = fvt_join(g_dir, "tone.wav");
    assert_int_equal(fvt_audio_write(p), 0);
    expect_open_error(p, FV_ENODATA, "no video stream");
    free(p);
    p = fvt_join(g_dir, "tone.mkv");
    assert_int_equal(fvt_audio_write(p), 0);
    expect_open_error(p, FV_ENODATA, "no video stream");
    free(p);

    expect_open_error(g_dir, -EISDIR, "directory");

    /* truncated halfway, one per container: header counts (AVI), no index (MP4), duration (MKV) */
    const char *fmts[][3] = { { "trunc.avi", "avi", "mpeg4" }, { "trunc.mp4", "mp4", "libx264" },
                              { "trunc.mkv", "matroska", "libx264" }, { "trunc_ffv1.mkv", "matroska", "ffv1" } };
    for (int i = 0; i < 4; i++) {
        FvtClipSpec s;
        fvt_clip_spec_default(&s);
        s.format = fmts[i][1];
        s.codec = fmts[i][2];
        s.nframes = 60;
        p = make_clip(fmts[i][0], &s);
        truncate_half(p);
        expect_open_error(p, FV_EIO, "truncated");
        free(p);
    }
}

/* Issue 23 fault 8: valid files refused as corrupt. MPEG-TS (the muxer delays every timestamp by
 * 1.4 s) with B-frames, and MKV/MP4/TS with a non-zero start time, for several codecs: every frame
 * must be found, and each frame read alone (seeking) must equal the frame decoded from the start,
 * by its index and pixel for pixel. */
typedef struct OffsetKind {
    const char *name, *format, *codec, *pix_fmt;
    int n, fps_num, fps_den, gop, bframes, vfr;
    int64_t start_us;
} OffsetKind;

static const OffsetKind offset_kinds[] = {
    { "b.ts", "mpegts", "libx264", NULL, 50, 25, 1, 12, 2, 0, 0 },
    { "b10.ts", "mpegts", "libx264", NULL, 41, 30000, 1001, 10, 3, 0, 10000000 },
    { "m4b.ts", "mpegts", "mpeg4", NULL, 40, 25, 1, 12, 2, 0, 0 },
    { "b10.mkv", "matroska", "libx264", NULL, 50, 25, 1, 12, 2, 0, 10000000 },
    { "m4b3.mkv", "matroska", "mpeg4", NULL, 45, 30000, 1001, 12, 2, 0, 3000000 },
    { "ffv1.mkv", "matroska", "ffv1", "bgr0", 30, 25, 1, 8, 0, 0, 3500000 },
    { "vfr7.mkv", "matroska", "libx264", NULL, 41, 30, 1, 12, 2, 1, 7000000 },
    { "b10.mp4", "mp4", "libx264", NULL, 50, 25, 1, 12, 2, 0, 10000000 },
    { "m4b2.mp4", "mp4", "mpeg4", NULL, 40, 24, 1, 12, 2, 0, 2000000 },
    { "x264.mp4", "mp4", "libx264", NULL, 30, 25, 1, 6, 0, 0, 12000000 },
    { "ffv1a.mkv", "matroska", "ffv1", "bgra", 20, 24, 1, 1, 0, 0, 12000000 },
};

static void test_start_offsets(void **state)
{
    (void)state;
    const int32_t w = 64, h = 48;
    const size_t fb = (size_t)w * h * 3;
    uint64_t rs = 99;
    for (size_t ki = 0; ki < sizeof(offset_kinds) / sizeof(offset_kinds[0]); ki++) {
        const OffsetKind *k = &offset_kinds[ki];
        FvtClipSpec s;
        fvt_clip_spec_default(&s);
        s.format = k->format;
        s.codec = k->codec;
        s.pix_fmt = k->pix_fmt;
        s.nframes = k->n;
        s.fps_num = k->fps_num;
        s.fps_den = k->fps_den;
        s.gop = k->gop;
        s.bframes = k->bframes;
        s.vfr = k->vfr;
        s.start_us = k->start_us;
        char *path = make_clip(k->name, &s);
        FvVideo *v = NULL;
        int r = fv_video_open(&v, path);
        if (r < 0)
            printf("%s: %s\n", k->name, fv_last_error());
        assert_int_equal(r, 0);
        const FvVideoInfo *in = fv_video_info(v);
        printf("%-10s start %.2f s: %lld frames %.4f fps %.3f s\n", k->name, k->start_us / 1e6,
               (long long)in->nframes, in->fps, in->duration_s);
        assert_int_equal(in->nframes, k->n);
        /* the duration is the clip's length, not its end time */
        double len = (double)(fvt_clip_frame_ticks(&s, k->n - 1) + 1) * k->fps_den / k->fps_num;
        assert_true(in->duration_s > len * 0.95 && in->duration_s < len * 1.05);

        const int32_t n = k->n;
        int64_t *idx = malloc(sizeof(*idx) * (size_t)n);
        uint8_t *ref = malloc(fb * (size_t)n), *one = malloc(fb * (size_t)n);
        assert_true(idx && ref && one);
        for (int32_t i = 0; i < n; i++)
            idx[i] = i;
        r = fv_video_read_rgb(v, idx, n, w, h, ref); /* from the start, in order */
        if (r < 0)
            printf("%s: %s\n", k->name, fv_last_error());
        assert_int_equal(r, 0);
        for (int32_t i = 0; i < n; i++)
            assert_int_equal(fvt_clip_read_index(ref + fb * i, w, h), i);
        fv_video_close(&v);

        /* a fresh open for each pass, so no state from the sequential read carries over */
        for (int pass = 0; pass < 2; pass++) {
            assert_int_equal(fv_video_open(&v, path), 0);
            int32_t m = n;
            for (int32_t i = 0; i < n; i++)
                idx[i] = pass == 0 ? n - 1 - i : (int64_t)(fv_rand_u64(&rs) % (uint64_t)n);
            if (pass == 1)
                m = 1 + (int32_t)(fv_rand_u64(&rs) % 8);
            for (int32_t i = 0; i < m; i++) {
                /* one frame per call: every call seeks */
                r = fv_video_read_rgb(v, &idx[i], 1, w, h, one);
                if (r < 0)
                    printf("%s: frame %lld: %s\n", k->name, (long long)idx[i], fv_last_error());
                assert_int_equal(r, 0);
                int got = fvt_clip_read_index(one, w, h);
                if (got != idx[i] || memcmp(one, ref + fb * (size_t)idx[i], fb))
                    printf("%s: frame %lld alone: index %d, pixels %s\n", k->name, (long long)idx[i], got,
                           memcmp(one, ref + fb * (size_t)idx[i], fb) ? "differ" : "same");
                assert_int_equal(got, idx[i]);
                assert_memory_equal(one, ref + fb * (size_t)idx[i], fb);
            }
            fv_video_close(&v);
        }
        free(idx);
        free(ref);
        free(one);
        free(path);
    }

    /* files cut short are still refused with a start time: duration (MKV) and frame count (MP4) */
    const char *cut[][2] = { { "cut10.mkv", "matroska" }, { "cut10.mp4", "mp4" } };
    for (int i = 0; i < 2; i++) {
        FvtClipSpec s;
        fvt_clip_spec_default(&s);
        s.format = cut[i][1];
        s.codec = "libx264";
        s.bframes = 2;
        s.nframes = 60;
        s.start_us = 10000000;
        char *p = make_clip(cut[i][0], &s);
        truncate_half(p);
        expect_open_error(p, FV_EIO, "truncated");
        free(p);
    }
}

/* A frame whose packet is present but undecodable: the demuxer still indexes it, the decoder gives
 * nothing for it, and asking for it is a clear error instead of a neighbouring frame. */
static void test_undecodable_frame(void **state)
{
    (void)state;
    FvtClipSpec s;
    fvt_clip_spec_default(&s); /* mpeg4 AVI, GOP 12, no B-frames: one VOP start code per frame */
    s.nframes = 30;
    char *path = make_clip("broken.avi", &s);
    size_t size;
    char *data = fvt_read_file(path, &size);
    assert_non_null(data);
    int vop = 0;
    size_t at = 0;
    for (size_t i = 0; i + 4 <= size; i++)
        if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 && (uint8_t)data[i + 3] == 0xB6 && vop++ == 12)
            at = i;
    assert_int_equal(vop, 30);
    assert_true(at > 0);
    memset(data + at, 0xFF, 4); /* frame 12 (a keyframe) loses its picture start code */
    assert_int_equal(fvt_write_file(path, data, size), 0);
    free(data);

    FvVideo *v = NULL;
    assert_int_equal(fv_video_open(&v, path), 0);
    assert_int_equal(fv_video_info(v)->nframes, 30);
    uint8_t *rgb = malloc(64 * 48 * 3 * 2);
    int64_t idx[2] = { 3, 12 };
    int r = fv_video_read_rgb(v, idx, 2, 64, 48, rgb);
    printf("%d: %s\n", r, fv_last_error());
    assert_int_equal(r, FV_ENODATA);
    assert_non_null(strstr(fv_last_error(), path));
    assert_non_null(strstr(fv_last_error(), "frame 12 of 30 could not be decoded"));
    /* frames of other GOPs still decode */
    idx[0] = 5;
    idx[1] = 29;
    read_and_check(v, idx, 2, 64, 48);
    free(rgb);
    fv_video_close(&v);
    free(path);
}

/* Damaged files (random bytes overwritten, random cut points) either open and decode or fail with a
 * one-line message naming the file: never a crash or a hang (run under ASan in CI). */
static void test_damaged_files(void **state)
{
    (void)state;
    const char *fmts[][3] = { { "dmg.avi", "avi", "mpeg4" }, { "dmg.mp4", "mp4", "libx264" },
                              { "dmg.mkv", "matroska", "ffv1" } };
    uint64_t rs = 7;
    int opened = 0, failed = 0;
    for (int f = 0; f < 3; f++) {
        FvtClipSpec s;
        fvt_clip_spec_default(&s);
        s.format = fmts[f][1];
        s.codec = fmts[f][2];
        s.nframes = 30;
        s.bframes = f == 1 ? 2 : 0;
        char *path = make_clip(fmts[f][0], &s);
        size_t size;
        char *orig = fvt_read_file(path, &size);
        assert_non_null(orig);
        char *data = malloc(size);
        for (int variant = 0; variant < 16; variant++) {
            memcpy(data, orig, size);
            size_t len = size;
            if (variant % 4 == 3)
                len = 1 + (size_t)(fv_rand_u64(&rs) % (size - 1));
            int flips = variant % 4 == 3 ? 0 : 1 + (int)(fv_rand_u64(&rs) % 40);
            for (int k = 0; k < flips; k++)
                data[fv_rand_u64(&rs) % len] = (char)fv_rand_u64(&rs);
            assert_int_equal(fvt_write_file(path, data, len), 0);

            FvVideo *v = NULL;
            int r = fv_video_open(&v, path);
            if (r < 0) {
                failed++;
                assert_true(fv_error_is_input(r));
                assert_non_null(strstr(fv_last_error(), path));
                assert_null(strchr(fv_last_error(), '\n'));
                continue;
            }
            opened++;
            const int32_t n = (int32_t)fv_video_info(v)->nframes;
            int64_t *idx = malloc(sizeof(*idx) * (size_t)n);
            for (int32_t i = 0; i < n; i++)
                idx[i] = (i * 7) % n;
            uint8_t *rgb = malloc((size_t)n * 32 * 32 * 3);
            r = fv_video_read_rgb(v, idx, n, 32, 32, rgb);
            if (r < 0)
                assert_non_null(strstr(fv_last_error(), path));
            free(rgb);
            free(idx);
            fv_video_close(&v);
        }
        free(data);
        free(orig);
        free(path);
    }
    printf("damaged files: %d opened, %d refused\n", opened, failed);
}

/* Frame indices out of range and bad sizes are argument errors, not crashes. */
static void test_bad_args(void **state)
{
    (void)state;
    FvtClipSpec s;
    fvt_clip_spec_default(&s);
    s.nframes = 10;
    char *path = make_clip("args.avi", &s);
    FvVideo *v = NULL;
    assert_int_equal(fv_video_open(&v, path), 0);
    uint8_t rgb[64 * 48 * 3];
    int64_t idx = 10;
    assert_int_equal(fv_video_read_rgb(v, &idx, 1, 64, 48, rgb), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), path));
    idx = -1;
    assert_int_equal(fv_video_read_rgb(v, &idx, 1, 64, 48, rgb), FV_EINVAL);
    idx = 0;
    assert_int_equal(fv_video_read_rgb(v, &idx, 1, 0, 48, rgb), FV_EINVAL);
    assert_int_equal(fv_video_read_rgb(v, &idx, 0, 64, 48, rgb), 0);
    assert_int_equal(fv_video_open(NULL, path), FV_EINVAL);
    fv_video_close(&v);
    free(path);
}

/* Decode everything by hand (video API + sampling + cropping) and compare with fv_clip_load. */
static void test_clip_load(void **state)
{
    (void)state;
    FvtClipSpec s;
    fvt_clip_spec_default(&s);
    s.format = "matroska";
    s.codec = "ffv1";
    s.width = 64;
    s.height = 48;
    s.nframes = 50;
    s.gop = 10;
    char *path = make_clip("clip.mkv", &s);

    for (int mode = 0; mode < 2; mode++) {
        FvClipSettings cs;
        fv_clip_default_settings(&cs);
        cs.sample.num_frames = 4;
        cs.sample.num_views = 3;
        cs.pre.crop_size = 32;
        if (mode == 0) {
            cs.pre.crop = FV_CROP_THREE;
            cs.pre.short_side = 40; /* 64x48 -> 53x40 */
        } else {
            cs.sample.mode = FV_SAMPLING_DENSE;
            cs.sample.rate = 4;
            cs.pre.mean[0] = 0.485f, cs.pre.mean[1] = 0.456f, cs.pre.mean[2] = 0.406f;
            cs.pre.std[0] = 0.229f, cs.pre.std[1] = 0.224f, cs.pre.std[2] = 0.225f;
        }
        FvClip clip;
        int r = fv_clip_load(path, &cs, &clip);
        if (r < 0)
            printf("%s\n", fv_last_error());
        assert_int_equal(r, 0);
        const int32_t K = 3, S = mode == 0 ? 3 : 1, T = 4, C = 32;
        assert_int_equal(clip.num_tviews, K);
        assert_int_equal(clip.num_sviews, S);
        assert_int_equal(clip.T, T);
        assert_int_equal(clip.H, C);
        assert_int_equal(clip.W, C);
        assert_int_equal(clip.info.nframes, 50);
        assert_true(clip.decode_ms > 0);
        int32_t rw, rh;
        fv_preprocess_resized_size(64, 48, mode == 0 ? 40 : C, &rw, &rh);
        assert_int_equal(rw, mode == 0 ? 53 : 43);

        FvVideo *v = NULL;
        assert_int_equal(fv_video_open(&v, path), 0);
        const size_t fb = (size_t)rw * rh * 3, vs = (size_t)T * 3 * C * C;
        uint8_t *rgb = malloc(fb * T);
        float *ref = malloc(vs * sizeof(float));
        double maxd = 0;
        for (int32_t k = 0; k < K; k++) {
            int64_t idx[4];
            assert_int_equal(fv_sample_indices(&cs.sample, 50, k, idx), 0);
            for (int32_t t = 0; t < T; t++)
                assert_int_equal(clip.frames[k * T + t], idx[t]);
            read_and_check(v, idx, T, rw, rh);
            assert_int_equal(fv_video_read_rgb(v, idx, T, rw, rh, rgb), 0);
            for (int32_t sv = 0; sv < S; sv++) {
                assert_int_equal(fv_preprocess_crop(&cs.pre, rgb, T, rw, rh, sv, ref), 0);
                double d = fvt_max_abs_diff(ref, clip.data + (size_t)(k * S + sv) * vs, vs);
                maxd = d > maxd ? d : maxd;
            }
        }
        printf("clip views (K %d, S %d): max abs diff %g\n", K, S, maxd);
        assert_true(maxd == 0.0);
        free(rgb);
        free(ref);
        fv_video_close(&v);
        fv_clip_free(&clip);
        fv_clip_free(&clip); /* twice: safe */
        assert_null(clip.data);
    }

    /* short side smaller than the crop is rejected with the file named */
    FvClipSettings cs;
    fv_clip_default_settings(&cs);
    cs.pre.crop_size = 32;
    cs.pre.short_side = 16;
    FvClip clip;
    assert_int_equal(fv_clip_load(path, &cs, &clip), FV_EINVAL);
    assert_non_null(strstr(fv_last_error(), path));
    free(path);
}

/* Native-size load: the normalised values are exactly (x/255 - mean)/std of the encoded picture. */
static void test_clip_values(void **state)
{
    (void)state;
    FvtClipSpec s;
    fvt_clip_spec_default(&s);
    s.format = "matroska";
    s.codec = "ffv1";
    s.pix_fmt = "bgra";
    s.width = 48;
    s.height = 40;
    s.nframes = 16;
    char *path = make_clip("values.mkv", &s);
    FvClipSettings cs;
    fv_clip_default_settings(&cs);
    cs.sample.num_frames = 4;
    cs.pre.crop_size = 40; /* short side 40 = native: no resize, centre crop x0 = 4 */
    FvClip clip;
    assert_int_equal(fv_clip_load(path, &cs, &clip), 0);
    const int64_t want[4] = { 2, 6, 10, 14 }; /* (int)((i + 0.5) * 16 / 4) */
    uint8_t pic[48 * 40 * 3];
    double maxd = 0;
    for (int t = 0; t < 4; t++) {
        assert_int_equal(clip.frames[t], want[t]);
        fvt_clip_picture((int)want[t], 48, 40, pic);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 40; y++)
                for (int x = 0; x < 40; x++) {
                    float e = ((float)pic[(y * 48 + x + 4) * 3 + c] / 255.0f - 0.45f) / 0.225f;
                    double d = fabs(e - clip.data[((t * 3 + c) * 40 + y) * 40 + x]);
                    maxd = d > maxd ? d : maxd;
                }
    }
    printf("clip values: max abs diff %g\n", maxd);
    assert_true(maxd == 0.0);
    fv_clip_free(&clip);
    free(path);
}

int main(void)
{
    if (!getenv("FVT_AVLOG"))
        av_log_set_level(AV_LOG_QUIET);
    g_dir = fvt_tmpdir();
    if (!g_dir)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_start_offsets),
        cmocka_unit_test(test_seek_saves_work),
        cmocka_unit_test(test_ffv1_exact),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_undecodable_frame),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_clip_load),
        cmocka_unit_test(test_clip_values),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    fvt_rmtree(g_dir);
    free(g_dir);
    return r;
}
