/* Test clip generator (see clipgen.h): encodes clips whose frames say their own index, plus an
 * audio-only file, with libavcodec/libavformat. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "clipgen.h"

enum { GRID = 4, INDEX_BITS = 12, CHECK_BITS = 4 };

static const uint8_t on_rgb[3] = { 230, 140, 60 };
static const uint8_t off_rgb[3] = { 20, 90, 170 };

static int check_nibble(int index)
{
    return (index ^ (index >> 4) ^ (index >> 8) ^ 0x5) & 0xF;
}

static int cell_bit(int index, int cell)
{
    if (cell < INDEX_BITS)
        return (index >> cell) & 1;
    return (check_nibble(index) >> (cell - INDEX_BITS)) & 1;
}

void fvt_clip_spec_default(FvtClipSpec *s)
{
    memset(s, 0, sizeof(*s));
    s->format = "avi";
    s->codec = "mpeg4";
    s->width = 64;
    s->height = 48;
    s->nframes = 60;
    s->fps_num = 25;
    s->fps_den = 1;
    s->gop = 12;
}

int64_t fvt_clip_frame_ticks(const FvtClipSpec *s, int i)
{
    if (!s->vfr)
        return i;
    int64_t t = 0;
    for (int k = 0; k < i; k++)
        t += 1 + (k * 7 + k / 5) % 3;
    return t;
}

void fvt_clip_picture(int index, int w, int h, uint8_t *rgb)
{
    for (int y = 0; y < h; y++) {
        int cy = y * GRID / h;
        for (int x = 0; x < w; x++) {
            int cx = x * GRID / w;
            const uint8_t *c = cell_bit(index, cy * GRID + cx) ? on_rgb : off_rgb;
            /* a little texture so an exact comparison also checks pixel positions */
            int tex = (x * 3 + y * 5) & 7;
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            for (int k = 0; k < 3; k++)
                p[k] = (uint8_t)(c[k] + tex);
        }
    }
}

int fvt_clip_read_index(const uint8_t *rgb, int w, int h)
{
    if (w < GRID * 4 || h < GRID * 4)
        return -1;
    int bits = 0;
    for (int cell = 0; cell < GRID * GRID; cell++) {
        int cx = cell % GRID, cy = cell / GRID;
        int xc = (2 * cx + 1) * w / (2 * GRID), yc = (2 * cy + 1) * h / (2 * GRID);
        int sum = 0;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const uint8_t *p = rgb + ((size_t)(yc + dy) * w + (xc + dx)) * 3;
                sum += (int)p[0] - (int)p[2];
            }
        if (sum > 0)
            bits |= 1 << cell;
    }
    int index = bits & ((1 << INDEX_BITS) - 1);
    if ((bits >> INDEX_BITS) != check_nibble(index))
        return -1;
    return index;
}

/* Packets to the muxer. Encoders leave durations out; MP4 needs the last one, or its edit list
 * ends at the last frame's start and hides that frame: take it from the next frame's timestamp. */
static int write_packets(AVFormatContext *oc, AVCodecContext *c, AVStream *st, AVPacket *pkt,
                         const int64_t *pts, int n)
{
    int r;
    while ((r = avcodec_receive_packet(c, pkt)) >= 0) {
        if (pkt->duration <= 0 && pts && pkt->pts != AV_NOPTS_VALUE) {
            for (int i = 0; i < n; i++)
                if (pts[i] == pkt->pts)
                    pkt->duration = i + 1 < n ? pts[i + 1] - pts[i] : 1;
        }
        av_packet_rescale_ts(pkt, c->time_base, st->time_base);
        pkt->stream_index = st->index;
        r = av_interleaved_write_frame(oc, pkt);
        if (r < 0)
            return r;
    }
    return r == AVERROR(EAGAIN) || r == AVERROR_EOF ? 0 : r;
}

/* Shared tail of both writers: open the file, header, frames via @fill, trailer. */
typedef int (*FillFn)(AVFrame *f, int i, void *ctx);

static int encode_all(AVFormatContext *oc, AVCodecContext *c, AVStream *st, AVFrame *f, int n,
                      FillFn fill, void *ctx, const int64_t *pts)
{
    AVPacket *pkt = av_packet_alloc();
    int r = pkt ? 0 : AVERROR(ENOMEM);
    if (r == 0 && !(oc->oformat->flags & AVFMT_NOFILE))
        r = avio_open(&oc->pb, oc->url, AVIO_FLAG_WRITE);
    if (r == 0)
        r = avformat_write_header(oc, NULL);
    for (int i = 0; r >= 0 && i < n; i++) {
        if ((r = av_frame_make_writable(f)) < 0 || (r = fill(f, i, ctx)) < 0)
            break;
        f->pts = pts ? pts[i] : i;
        if ((r = avcodec_send_frame(c, f)) < 0)
            break;
        r = write_packets(oc, c, st, pkt, pts, n);
    }
    if (r >= 0 && (r = avcodec_send_frame(c, NULL)) >= 0)
        r = write_packets(oc, c, st, pkt, pts, n);
    if (r >= 0)
        r = av_write_trailer(oc);
    if (oc->pb && !(oc->oformat->flags & AVFMT_NOFILE))
        avio_closep(&oc->pb);
    av_packet_free(&pkt);
    return r < 0 ? r : 0;
}

typedef struct VideoFill {
    struct SwsContext *sws;
    uint8_t *rgb;
    const uint8_t *picture;
    int w, h;
} VideoFill;

static int fill_video(AVFrame *f, int i, void *ctx)
{
    VideoFill *vf = ctx;
    if (vf->picture)
        memcpy(vf->rgb, vf->picture, (size_t)vf->w * vf->h * 3);
    else
        fvt_clip_picture(i, vf->w, vf->h, vf->rgb);
    const uint8_t *src[4] = { vf->rgb, NULL, NULL, NULL };
    int stride[4] = { vf->w * 3, 0, 0, 0 };
    return sws_scale(vf->sws, src, stride, 0, vf->h, f->data, f->linesize) == vf->h ? 0 : AVERROR(EINVAL);
}

int fvt_clip_write(const char *path, const FvtClipSpec *s)
{
    AVFormatContext *oc = NULL;
    AVCodecContext *c = NULL;
    AVFrame *f = NULL;
    VideoFill vf = { 0 };
    int64_t *pts = NULL;
    int r;
    const int min_side = s && s->picture ? 16 : 32;
    if (!s || s->width < min_side || s->height < min_side || s->nframes < 1 || s->nframes >= (1 << INDEX_BITS) ||
        s->fps_num <= 0 || s->fps_den <= 0)
        return AVERROR(EINVAL);
    const AVCodec *codec = avcodec_find_encoder_by_name(s->codec);
    if (!codec)
        return AVERROR_ENCODER_NOT_FOUND;
    if ((r = avformat_alloc_output_context2(&oc, NULL, s->format, path)) < 0)
        return r;
    if ((s->vfr || s->start_us) && (oc->oformat->flags & AVFMT_NOTIMESTAMPS)) {
        r = AVERROR(EINVAL);
        goto done;
    }
    const char *pf_name = s->pix_fmt ? s->pix_fmt : strcmp(s->codec, "ffv1") ? "yuv420p" : "bgr0";
    enum AVPixelFormat pf = av_get_pix_fmt(pf_name);
    AVStream *st = avformat_new_stream(oc, NULL);
    c = avcodec_alloc_context3(codec);
    f = av_frame_alloc();
    pts = malloc(sizeof(*pts) * (size_t)s->nframes);
    if (pf == AV_PIX_FMT_NONE || !st || !c || !f || !pts) {
        r = pf == AV_PIX_FMT_NONE ? AVERROR(EINVAL) : AVERROR(ENOMEM);
        goto done;
    }
    for (int i = 0; i < s->nframes; i++)
        pts[i] = fvt_clip_frame_ticks(s, i);
    oc->output_ts_offset = s->start_us;

    c->width = s->width;
    c->height = s->height;
    c->pix_fmt = pf;
    c->time_base = (AVRational){ s->fps_den, s->fps_num };
    if (!s->vfr)
        c->framerate = (AVRational){ s->fps_num, s->fps_den };
    if (s->gop > 0)
        c->gop_size = s->gop;
    c->max_b_frames = s->bframes;
    c->thread_count = 1;
    if (!strcmp(s->codec, "mpeg4")) {
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = FF_QP2LAMBDA * 3;
        av_opt_set_int(c, "sc_threshold", 1000000000, 0); /* keyframes only every gop frames */
    } else if (!strcmp(s->codec, "libx264")) {
        av_opt_set(c->priv_data, "preset", "veryfast", 0);
        av_opt_set(c->priv_data, "crf", "20", 0);
        av_opt_set(c->priv_data, "x264-params", "scenecut=0", 0);
    }
    if (oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((r = avcodec_open2(c, codec, NULL)) < 0)
        goto done;
    if ((r = avcodec_parameters_from_context(st->codecpar, c)) < 0)
        goto done;
    st->time_base = c->time_base;
    if (!s->vfr)
        st->avg_frame_rate = c->framerate;

    f->format = pf;
    f->width = s->width;
    f->height = s->height;
    if ((r = av_frame_get_buffer(f, 0)) < 0)
        goto done;
    vf.w = s->width;
    vf.h = s->height;
    vf.picture = s->picture;
    vf.rgb = malloc((size_t)s->width * s->height * 3);
    vf.sws = sws_getContext(s->width, s->height, AV_PIX_FMT_RGB24, s->width, s->height, pf,
                            SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL);
    if (!vf.rgb || !vf.sws) {
        r = AVERROR(ENOMEM);
        goto done;
    }
    r = encode_all(oc, c, st, f, s->nframes, fill_video, &vf, pts);
done:
    sws_freeContext(vf.sws);
    free(vf.rgb);
    free(pts);
    av_frame_free(&f);
    avcodec_free_context(&c);
    avformat_free_context(oc);
    return r;
}

static int fill_audio(AVFrame *f, int i, void *ctx)
{
    (void)ctx;
    int16_t *d = (int16_t *)f->data[0];
    for (int k = 0; k < f->nb_samples; k++)
        d[k] = (int16_t)(8000.0 * sin(2.0 * M_PI * 440.0 * (i * f->nb_samples + k) / 16000.0));
    return 0;
}

int fvt_audio_write(const char *path)
{
    AVFormatContext *oc = NULL;
    AVCodecContext *c = NULL;
    AVFrame *f = NULL;
    int r;
    const int nb = 1024, nframes = 16;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PCM_S16LE);
    if (!codec)
        return AVERROR_ENCODER_NOT_FOUND;
    if ((r = avformat_alloc_output_context2(&oc, NULL, NULL, path)) < 0)
        return r;
    AVStream *st = avformat_new_stream(oc, NULL);
    c = avcodec_alloc_context3(codec);
    f = av_frame_alloc();
    int64_t *pts = malloc(sizeof(*pts) * nframes);
    if (!st || !c || !f || !pts) {
        r = AVERROR(ENOMEM);
        goto done;
    }
    for (int i = 0; i < nframes; i++)
        pts[i] = (int64_t)i * nb;
    c->sample_fmt = AV_SAMPLE_FMT_S16;
    c->sample_rate = 16000;
    av_channel_layout_default(&c->ch_layout, 1);
    c->time_base = (AVRational){ 1, 16000 };
    if ((r = avcodec_open2(c, codec, NULL)) < 0)
        goto done;
    if ((r = avcodec_parameters_from_context(st->codecpar, c)) < 0)
        goto done;
    st->time_base = c->time_base;
    f->format = c->sample_fmt;
    f->sample_rate = c->sample_rate;
    f->nb_samples = nb;
    if ((r = av_channel_layout_copy(&f->ch_layout, &c->ch_layout)) < 0 || (r = av_frame_get_buffer(f, 0)) < 0)
        goto done;
    r = encode_all(oc, c, st, f, nframes, fill_audio, NULL, pts);
done:
    free(pts);
    av_frame_free(&f);
    avcodec_free_context(&c);
    avformat_free_context(oc);
    return r;
}
