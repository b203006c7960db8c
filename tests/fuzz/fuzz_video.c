/* libFuzzer harness: opening and reading videos (src/video/): fv_video_open builds the frame index of the
 * fuzzed file, fv_video_read_rgb decodes its first, middle and last frames, and fv_clip_load samples and
 * preprocesses it (2 dense views of 4 frames, three 16x16 crops). Seeds: tiny clips written with
 * tests/clipgen.c in the containers and codecs the tests use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/fibvid.h"
#include "../clipgen.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void seed_clip(const char *dir, const char *name, const char *codec, const char *pix_fmt, int n, int bframes,
                      int vfr)
{
    FvtClipSpec s;
    fvt_clip_spec_default(&s);
    s.width = 32;
    s.height = 32;
    s.nframes = n;
    s.codec = codec;
    s.pix_fmt = pix_fmt;
    s.gop = 3;
    s.bframes = bframes;
    s.vfr = vfr;
    char *path = fz_write(fz_dir(), name, "", 0);
    if (fvt_clip_write(path, &s) < 0) {
        fprintf(stderr, "cannot write %s with %s\n", name, codec);
        free(path);
        return;
    }
    size_t len;
    char *bytes = fz_read(path, &len);
    const char *p[1] = { bytes };
    fz_write_seed(dir, name, p, &len, 1);
    free(bytes);
    free(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init_library();
    const char *dir = fz_seed_dir();
    if (dir) {
        seed_clip(dir, "mpeg4.avi", "mpeg4", NULL, 6, 0, 0);
        seed_clip(dir, "mpeg4_vfr.avi", "mpeg4", NULL, 5, 0, 1);
        seed_clip(dir, "ffv1.mkv", "ffv1", NULL, 3, 0, 0);
        seed_clip(dir, "h264_bframes.mp4", "libx264", NULL, 6, 2, 0);
        seed_clip(dir, "h264_vfr.mkv", "libx264", NULL, 4, 0, 1);
        seed_clip(dir, "raw.h264", "libx264", NULL, 4, 0, 0);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = fz_write(fz_dir(), "clip", data, size);
    FvVideo *v = NULL;
    if (fv_video_open(&v, path) == 0) {
        const FvVideoInfo *info = fv_video_info(v);
        if (info->nframes < 1 || info->width < 1 || info->height < 1)
            abort(); /* open promises a video stream with frames */
        const int64_t idx[4] = { 0, info->nframes - 1, info->nframes / 2, 0 };
        uint8_t rgb[4 * 16 * 16 * 3];
        fv_video_read_rgb(v, idx, 4, 16, 16, rgb);
        fv_video_close(&v);

        FvClipSettings cs;
        fv_clip_default_settings(&cs);
        cs.sample.mode = FV_SAMPLING_DENSE;
        cs.sample.num_frames = 4;
        cs.sample.rate = 2;
        cs.sample.num_views = 2;
        cs.pre.crop_size = 16;
        cs.pre.short_side = 16;
        cs.pre.crop = FV_CROP_THREE;
        FvClip clip;
        memset(&clip, 0, sizeof(clip));
        if (fv_clip_load(path, &cs, &clip) == 0 && (clip.num_tviews != 2 || clip.num_sviews != 3 || !clip.data))
            abort();
        fv_clip_free(&clip);
    }
    free(path);
    return 0;
}
