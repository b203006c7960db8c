/* MPEG-4 Part 2 in AVI writer for `fibvid synth` (libavcodec/libavformat), set up so that the same pictures
 * always give the same bytes: fixed quantiser, C-only DCT/IDCT, bit-exact codec and muxer flags, one
 * encoder thread, and an integer RGB -> yuv420p conversion done here rather than in libswscale. */
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "util/util.h"
#include "synth/synth_internal.h"

const char *fv_synth_encoder_ident(void)
{
    return LIBAVCODEC_IDENT;
}

struct FvSynthEncoder {
    char            *path;
    AVFormatContext *oc;
    AVCodecContext  *enc;
    AVStream        *st;
    AVFrame         *frame;
    AVPacket        *pkt;
    int64_t          next_pts;
    int              header_written;
};

static int av_fail(const char *path, const char *what, int averr)
{
    char buf[128];
    av_strerror(averr, buf, sizeof(buf));
    int code = averr == AVERROR(ENOMEM) ? FV_ENOMEM : averr == AVERROR(ENOENT) ? FV_ENOENT
             : averr == AVERROR(EACCES) ? -EACCES : averr == AVERROR(ENOTDIR) ? -ENOTDIR
             : averr == AVERROR(EISDIR) ? -EISDIR : FV_EIO;
    return fv_error(code, "%s: %s: %s", path, what, buf);
}

int fv_synth_encoder_open(FvSynthEncoder **out, const char *path, int32_t w, int32_t h, int32_t fps,
                          int32_t qscale, int32_t gop)
{
    *out = NULL;
    if (w < 16 || h < 16 || (w & 1) || (h & 1) || fps < 1 || qscale < 1 || qscale > 31 || gop < 1)
        return fv_error(FV_EINVAL, "%s: bad encoder settings %dx%d %d fps q%d gop %d", path, w, h, fps,
                        qscale, gop);
    int ret;
    FvSynthEncoder *e = fv_calloc(1, sizeof(*e));
    size_t plen = strlen(path) + 1;
    if (!e || !(e->path = fv_malloc(plen))) {
        fv_free(e);
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    }
    memcpy(e->path, path, plen);
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) {
        ret = fv_error(FV_ENOTSUP, "%s: this FFmpeg has no MPEG-4 Part 2 encoder", path);
        goto fail;
    }
    if ((ret = avformat_alloc_output_context2(&e->oc, NULL, "avi", path)) < 0 || !e->oc) {
        ret = fv_error(FV_ENOMEM, "%s: cannot set up the AVI muxer", path);
        goto fail;
    }
    /* no "Lavf" version string in the header: same bytes from any FFmpeg build that encodes alike */
    e->oc->flags |= AVFMT_FLAG_BITEXACT;
    e->st = avformat_new_stream(e->oc, NULL);
    e->enc = avcodec_alloc_context3(codec);
    e->frame = av_frame_alloc();
    e->pkt = av_packet_alloc();
    if (!e->st || !e->enc || !e->frame || !e->pkt) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    AVCodecContext *c = e->enc;
    c->width = w;
    c->height = h;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = (AVRational){ 1, fps };
    c->framerate = (AVRational){ fps, 1 };
    c->sample_aspect_ratio = (AVRational){ 1, 1 };
    c->gop_size = gop;
    c->max_b_frames = 0;
    c->thread_count = 1;
    /* constant quantiser: no rate control state, and the size follows the content */
    c->flags |= AV_CODEC_FLAG_QSCALE | AV_CODEC_FLAG_BITEXACT;
    c->global_quality = FF_QP2LAMBDA * qscale;
    /* the C integer DCT and the simple IDCT: what FFmpeg's own bit-exact regression tests use, so the
     * bytes do not depend on the CPU's SIMD extensions */
    c->dct_algo = FF_DCT_INT;
    c->idct_algo = FF_IDCT_SIMPLE;
    if (e->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((ret = avcodec_open2(c, codec, NULL)) < 0) {
        ret = av_fail(path, "cannot open the MPEG-4 encoder", ret);
        goto fail;
    }
    if ((ret = avcodec_parameters_from_context(e->st->codecpar, c)) < 0) {
        ret = av_fail(path, "encoder parameters", ret);
        goto fail;
    }
    e->st->time_base = c->time_base;
    e->st->avg_frame_rate = c->framerate;
    e->frame->format = c->pix_fmt;
    e->frame->width = w;
    e->frame->height = h;
    if ((ret = av_frame_get_buffer(e->frame, 0)) < 0) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((ret = avio_open(&e->oc->pb, path, AVIO_FLAG_WRITE)) < 0) {
        ret = av_fail(path, "cannot create", ret);
        goto fail;
    }
    if ((ret = avformat_write_header(e->oc, NULL)) < 0) {
        ret = av_fail(path, "cannot write the AVI header", ret);
        goto fail;
    }
    e->header_written = 1;
    *out = e;
    return 0;
fail:
    fv_synth_encoder_close(&e, 0);
    return ret;
}

/* Move every packet the encoder has ready into the file. */
static int drain(FvSynthEncoder *e)
{
    int ret;
    while ((ret = avcodec_receive_packet(e->enc, e->pkt)) >= 0) {
        av_packet_rescale_ts(e->pkt, e->enc->time_base, e->st->time_base);
        e->pkt->stream_index = e->st->index;
        if ((ret = av_interleaved_write_frame(e->oc, e->pkt)) < 0)
            return av_fail(e->path, "write failed", ret);
    }
    if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
        return 0;
    return av_fail(e->path, "encoding failed", ret);
}

int fv_synth_encoder_write(FvSynthEncoder *e, const uint8_t *rgb)
{
    int ret;
    if ((ret = av_frame_make_writable(e->frame)) < 0)
        return av_fail(e->path, "frame buffer", ret);
    const int w = e->enc->width, h = e->enc->height;
    AVFrame *f = e->frame;
    for (int y = 0; y < h; y++) {
        const uint8_t *p = rgb + (size_t)y * w * 3;
        uint8_t *yr = f->data[0] + (size_t)y * f->linesize[0];
        for (int x = 0; x < w; x++, p += 3)
            yr[x] = (uint8_t)(((66 * p[0] + 129 * p[1] + 25 * p[2] + 128) >> 8) + 16);
    }
    for (int y = 0; y < h / 2; y++) {
        const uint8_t *r0 = rgb + (size_t)(2 * y) * w * 3, *r1 = r0 + (size_t)w * 3;
        uint8_t *ur = f->data[1] + (size_t)y * f->linesize[1], *vr = f->data[2] + (size_t)y * f->linesize[2];
        for (int x = 0; x < w / 2; x++) {
            /* chroma of the 2x2 block's mean colour (left-top siting is close enough for MPEG-4) */
            int R = r0[6 * x] + r0[6 * x + 3] + r1[6 * x] + r1[6 * x + 3];
            int G = r0[6 * x + 1] + r0[6 * x + 4] + r1[6 * x + 1] + r1[6 * x + 4];
            int B = r0[6 * x + 2] + r0[6 * x + 5] + r1[6 * x + 2] + r1[6 * x + 5];
            ur[x] = (uint8_t)(((-38 * R - 74 * G + 112 * B + 512) >> 10) + 128);
            vr[x] = (uint8_t)(((112 * R - 94 * G - 18 * B + 512) >> 10) + 128);
        }
    }
    f->pts = e->next_pts++;
    if ((ret = avcodec_send_frame(e->enc, f)) < 0)
        return av_fail(e->path, "encoding failed", ret);
    return drain(e);
}

int fv_synth_encoder_close(FvSynthEncoder **pe, int finish)
{
    FvSynthEncoder *e = pe ? *pe : NULL;
    if (!e)
        return 0;
    int ret = 0, r;
    if (finish && e->header_written) {
        if ((r = avcodec_send_frame(e->enc, NULL)) < 0)
            ret = av_fail(e->path, "encoding failed", r);
        if (ret == 0)
            ret = drain(e);
        if (ret == 0 && (r = av_write_trailer(e->oc)) < 0)
            ret = av_fail(e->path, "cannot write the AVI index", r);
    }
    if (e->oc && e->oc->pb && (r = avio_closep(&e->oc->pb)) < 0 && ret == 0 && finish)
        ret = av_fail(e->path, "close failed", r);
    avformat_free_context(e->oc);
    avcodec_free_context(&e->enc);
    av_frame_free(&e->frame);
    av_packet_free(&e->pkt);
    fv_free(e->path);
    fv_free(e);
    *pe = NULL;
    return ret;
}
