/* Video input (SPEC section 2): open a file with libavformat, index every frame of its best video
 * stream by demuxing (no decoding), then decode requested frames by presentation index, seeking to
 * the nearest keyframe when that saves work, and convert them to RGB24 with libswscale. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "util/util.h"
#include "video/ffmpeg_dl.h"

#include "fibvid/video.h"

/* One video packet found by the indexing pass. */
typedef struct FvPacketInfo {
    int64_t ts;      /* pts, or dts when the container gives no pts (stream time base) */
    int64_t seek_ts; /* what to pass to av_seek_frame for a keyframe: dts when known (<= pts) */
    int64_t dur;     /* packet duration, 0 when unknown */
    int     key;
} FvPacketInfo;

struct FvVideo {
    char            *path;
    AVFormatContext *fmt;
    AVCodecContext  *dec;
    int              stream;
    AVPacket        *pkt;
    AVFrame         *frame;
    int              draining;   /* NULL packet sent: the decoder only empties its queue */
    int64_t          first_pos;  /* byte position of the first video packet (-1 unknown) */

    FvPacketInfo    *frames;     /* (nframes) sorted by presentation time */
    int64_t         *keyof;      /* (nframes) presentation index of the keyframe to seek to for frame i */
    int              use_ts;     /* 1: frames are identified by timestamp; 0: by counting from the start */
    int              no_seek;    /* 1: seeking lost frames that decoding from the start found */

    struct SwsContext *sws;
    int              sws_key[7];  /* source w, h, format, output w, h, matrix, range of sws */
    uint8_t         *rgbtmp;     /* padded RGB24 scratch, swscale may write past a tight row */
    int              rgbtmp_stride, rgbtmp_h;

    int64_t          decoded;    /* frames decoded by the last fv_video_read_rgb() */
    FvVideoInfo      info;
};

static const char *err_str(int averr, char *buf, size_t n)
{
    av_strerror(averr, buf, n);
    return buf;
}

/* Why avformat_open_input failed: tell a damaged media file (its content probes as a known format)
 * from something that is not a media file at all. The file name's extension is left out of the probe
 * on purpose: random bytes named .mp4 must not count as MP4. */
static int classify_open_error(const char *path, int averr)
{
    char eb[128];
    if (averr == AVERROR(ENOENT))
        return fv_error(FV_ENOENT, "%s: no such file", path);
    if (averr == AVERROR(EACCES))
        return fv_error(-EACCES, "%s: permission denied", path);

    const AVInputFormat *probed = NULL;
    int score = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        enum { PROBE = 1 << 16 };
        uint8_t *buf = av_mallocz(PROBE + AVPROBE_PADDING_SIZE);
        if (buf) {
            size_t n = fread(buf, 1, PROBE, f);
            AVProbeData pd = { .filename = "", .buf = buf, .buf_size = (int)n, .mime_type = NULL };
            probed = av_probe_input_format2(&pd, 1, &score);
            av_free(buf);
        }
        fclose(f);
    }
    if (probed && score > AVPROBE_SCORE_MAX / 4)
        return fv_error(FV_EIO, "%s: cannot read %s file: %s (truncated or corrupt?)", path, probed->name,
                        err_str(averr, eb, sizeof(eb)));
    if (averr == AVERROR_INVALIDDATA)
        return fv_error(FV_EINVAL, "%s: not a media file (unrecognised format)", path);
    return fv_error(FV_EIO, "%s: cannot open: %s", path, err_str(averr, eb, sizeof(eb)));
}

static int open_input(FvVideo *v)
{
    char eb[128];
    int r = avformat_open_input(&v->fmt, v->path, NULL, NULL);
    if (r < 0)
        return classify_open_error(v->path, r);
    r = avformat_find_stream_info(v->fmt, NULL);
    if (r < 0)
        return fv_error(FV_EIO, "%s: cannot read stream information: %s", v->path,
                        err_str(r, eb, sizeof(eb)));
    return 0;
}

static int cmp_packet_ts(const void *a, const void *b)
{
    int64_t x = ((const FvPacketInfo *)a)->ts, y = ((const FvPacketInfo *)b)->ts;
    return (x > y) - (x < y);
}

static int grow(void **p, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int64_t nc = FV_MAX(*cap * 2, 256);
    void *q = fv_malloc((size_t)nc * elem);
    if (!q)
        return -1;
    if (*p)
        memcpy(q, *p, (size_t)*cap * elem);
    fv_free(*p);
    *p = q;
    *cap = nc;
    return 0;
}

/*
 * Demux every packet once. Frame count = number of (non-empty, non-discarded) video packets, so it is
 * exact for containers that store no count and for odd/variable frame rates. Also detects files cut
 * short: fewer packets than the header's frame count, an incomplete last packet, or every stream
 * ending well before the duration the header declares (MKV stores no frame count but a duration).
 */
static int build_index(FvVideo *v)
{
    char eb[128];
    AVStream *st = v->fmt->streams[v->stream];
    FvPacketInfo *pk = NULL;
    int64_t n = 0, cap = 0, npackets = 0, nopts = 0;
    int64_t end_us = INT64_MIN; /* end of the last packet of any stream, AV_TIME_BASE units */
    int64_t vmin_ts = INT64_MAX, vmax_end = INT64_MIN; /* video packets, stream time base */
    int last_corrupt = 0, r, ret;

    v->first_pos = -1;
    for (int again = 0;;) {
        r = av_read_frame(v->fmt, v->pkt);
        if (r == AVERROR(EAGAIN) && ++again < 1000)
            continue;
        if (r < 0)
            break;
        again = 0;
        AVPacket *p = v->pkt;
        AVStream *ps = v->fmt->streams[p->stream_index];
        int64_t t = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
        if (t != AV_NOPTS_VALUE) {
            int64_t e = av_rescale_q(t + FV_MAX(p->duration, 0), ps->time_base, AV_TIME_BASE_Q);
            end_us = FV_MAX(end_us, e);
        }
        if (p->stream_index == v->stream) {
            npackets++;
            if (t != AV_NOPTS_VALUE) {
                vmin_ts = FV_MIN(vmin_ts, t);
                vmax_end = FV_MAX(vmax_end, t + FV_MAX(p->duration, 1));
            }
            last_corrupt = !!(p->flags & AV_PKT_FLAG_CORRUPT);
            if (p->size > 0 && !(p->flags & AV_PKT_FLAG_DISCARD)) {
                if (grow((void **)&pk, &cap, n + 1, sizeof(*pk))) {
                    av_packet_unref(p);
                    ret = fv_error(FV_ENOMEM, "%s: out of memory indexing frames", v->path);
                    goto fail;
                }
                if (v->first_pos < 0 && n == 0)
                    v->first_pos = p->pos;
                pk[n].ts = t;
                pk[n].seek_ts = p->dts != AV_NOPTS_VALUE ? p->dts : t;
                pk[n].dur = FV_MAX(p->duration, 0);
                pk[n].key = !!(p->flags & AV_PKT_FLAG_KEY);
                nopts += p->pts == AV_NOPTS_VALUE;
                n++;
            }
        }
        av_packet_unref(p);
    }
    if (r != AVERROR_EOF) {
        ret = fv_error(FV_EIO, "%s: read error after %lld frames: %s (truncated or corrupt?)", v->path,
                       (long long)n, err_str(r, eb, sizeof(eb)));
        goto fail;
    }
    if (n == 0) {
        ret = fv_error(FV_ENODATA, "%s: video stream has no frames", v->path);
        goto fail;
    }
    if (st->nb_frames > 0 && npackets < st->nb_frames) {
        /* AVI counts "drop frames" (empty chunks, never returned as packets) in its header, so
         * compare the time the packets cover, in frames, rather than the packet count. */
        double covered = (double)npackets;
        AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
        if (fr.num > 0 && fr.den > 0 && vmax_end != INT64_MIN && vmin_ts != INT64_MAX)
            covered = (double)(vmax_end - vmin_ts) * av_q2d(st->time_base) * av_q2d(fr);
        if (covered < (double)st->nb_frames - 1.5) {
            ret = fv_error(FV_EIO, "%s: file truncated: %lld of %lld frames present", v->path,
                           (long long)npackets, (long long)st->nb_frames);
            goto fail;
        }
    }
    if (last_corrupt) {
        ret = fv_error(FV_EIO, "%s: file truncated: last frame incomplete", v->path);
        goto fail;
    }
    if (v->fmt->duration > 0 && v->fmt->duration_estimation_method == AVFMT_DURATION_FROM_STREAM &&
        end_us != INT64_MIN) {
        /* FFmpeg's duration is a length from the start time, but MKV and MP4 headers store the end
         * time, which FFmpeg passes on as is: with a non-zero start the duration already includes it.
         * The data must reach the end under one of the two readings (slack: 1 s or a tenth). */
        int64_t start = v->fmt->start_time != AV_NOPTS_VALUE ? v->fmt->start_time : 0;
        int64_t len = v->fmt->duration;
        int64_t end = start + len;
        if (start > 0 && len > start && end_us < end - FV_MAX((int64_t)AV_TIME_BASE, len / 10)) {
            len -= start; /* the header's duration read as the end time */
            end = start + len;
        }
        if (end_us < end - FV_MAX((int64_t)AV_TIME_BASE, len / 10)) {
            ret = fv_error(FV_EIO, "%s: file truncated: data ends at %.2f s of %.2f s", v->path,
                           (end_us - start) / (double)AV_TIME_BASE, len / (double)AV_TIME_BASE);
            goto fail;
        }
    }

    /* Timestamps identify frames only when every frame has one, they are distinct, and they are
     * presentation times: dts stands in for a missing pts only without frame reordering (AVI with
     * packed B-frames gives dts in decode order). Otherwise frames are counted from the start. */
    int use_ts = 1;
    for (int64_t i = 0; i < n; i++)
        if (pk[i].ts == AV_NOPTS_VALUE)
            use_ts = 0;
    if (nopts > 0 && st->codecpar->video_delay > 0)
        use_ts = 0;
    if (use_ts) {
        qsort(pk, (size_t)n, sizeof(*pk), cmp_packet_ts);
        for (int64_t i = 1; i < n; i++)
            if (pk[i].ts == pk[i - 1].ts)
                use_ts = 0;
    }
    v->use_ts = use_ts;

    v->keyof = fv_malloc((size_t)n * sizeof(*v->keyof));
    if (!v->keyof) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory indexing frames", v->path);
        goto fail;
    }
    /* With presentation order known, frame i is reached by decoding from the last keyframe shown at
     * or before it (open-GOP leading frames map to the previous GOP, which decodes them correctly). */
    int64_t last_key = 0, nkeys = 0;
    for (int64_t i = 0; i < n; i++) {
        if (pk[i].key) {
            nkeys++;
            if (use_ts)
                last_key = i;
        }
        v->keyof[i] = last_key;
    }
    v->frames = pk;
    v->info.nframes = n;
    v->info.nkeyframes = nkeys;

    double tb = av_q2d(st->time_base);
    double dur = 0;
    if (use_ts) {
        int64_t span = pk[n - 1].ts - pk[0].ts;
        int64_t last = pk[n - 1].dur > 0 ? pk[n - 1].dur : (n > 1 ? span / (n - 1) : 0);
        dur = (span + last) * tb;
    }
    if (!(dur > 0) && st->duration > 0 && st->duration != AV_NOPTS_VALUE)
        dur = st->duration * tb;
    if (!(dur > 0) && v->fmt->duration > 0)
        dur = v->fmt->duration / (double)AV_TIME_BASE;
    AVRational fr = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate
                                                                                 : st->r_frame_rate;
    double fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
    /* the header's rate unless the timestamps disagree (variable frame rate) */
    if (use_ts && dur > 0 && (!(fps > 0) || fabs(fps * dur / n - 1.0) > 0.01))
        fps = n / dur;
    if (!(fps > 0) && dur > 0)
        fps = n / dur;
    if (!(dur > 0) && fps > 0)
        dur = n / fps;
    v->info.fps = fps;
    v->info.duration_s = dur;
    return 0;
fail:
    fv_free(pk);
    return ret;
}

int fv_video_open(FvVideo **out, const char *path)
{
    char eb[128];
    int ret, r;
    FvVideo *v = NULL;
    if (!out || !path)
        return fv_error(FV_EINVAL, "%s: NULL argument", __func__);
    *out = NULL;

    /* Cheap checks first, with plain messages: FFmpeg's would be vaguer. */
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fv_error(FV_ENOENT, "%s: no such file", path);
        return fv_error(FV_EIO, "%s: cannot access: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return fv_error(-EISDIR, "%s: is a directory", path);
    /* A pipe cannot be rewound: indexing reads it to the end and decoding would then find nothing (and
     * opening a FIFO without a writer blocks forever). Refuse it before opening. */
    if (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode) || S_ISCHR(sb.st_mode))
        return fv_error(FV_ENOTSUP, "%s: not seekable (a pipe, socket or device): save it to a file first",
                        path);
    if (S_ISREG(sb.st_mode) && sb.st_size == 0)
        return fv_error(FV_EIO, "%s: empty file (0 bytes)", path);
    if ((ret = fv_ffmpeg_load()) < 0)
        return ret;

    v = fv_calloc(1, sizeof(*v));
    if (!v)
        return fv_error(FV_ENOMEM, "%s: out of memory", path);
    v->path = fv_malloc(strlen(path) + 1);
    if (v->path)
        memcpy(v->path, path, strlen(path) + 1);
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    if (!v->path || !v->pkt || !v->frame) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((ret = open_input(v)) < 0)
        goto fail;

    const AVCodec *codec = NULL;
    r = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r == AVERROR_STREAM_NOT_FOUND ||
        (r >= 0 && (v->fmt->streams[r]->disposition & AV_DISPOSITION_ATTACHED_PIC))) {
        ret = fv_error(FV_ENODATA, "%s: no video stream", path);
        goto fail;
    }
    if (r < 0 || !codec) {
        enum AVCodecID id = AV_CODEC_ID_NONE;
        if (r >= 0)
            id = v->fmt->streams[r]->codecpar->codec_id;
        ret = fv_error(FV_ENOTSUP, "%s: no decoder for video codec %s", path, avcodec_get_name(id));
        goto fail;
    }
    v->stream = r;
    AVStream *st = v->fmt->streams[r];

    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((r = avcodec_parameters_to_context(v->dec, st->codecpar)) < 0) {
        ret = fv_error(FV_EINVAL, "%s: bad codec parameters: %s", path, err_str(r, eb, sizeof(eb)));
        goto fail;
    }
    v->dec->pkt_timebase = st->time_base;
    /* Frame threads change latency, not output: results stay deterministic. They pay off on large
     * pictures decoded in long runs; on small ones (UCF101/HMDB51, 320x240) every seek flushes the
     * thread pipeline and one thread was measured ~2x faster, so those decode single-threaded. */
    v->dec->thread_count = (int64_t)st->codecpar->width * st->codecpar->height > 640 * 480 ? 0 : 1;
    if ((r = avcodec_open2(v->dec, codec, NULL)) < 0) {
        ret = fv_error(FV_ENOTSUP, "%s: cannot open %s decoder: %s", path, codec->name,
                       err_str(r, eb, sizeof(eb)));
        goto fail;
    }

    v->info.width = st->codecpar->width;
    v->info.height = st->codecpar->height;
    snprintf(v->info.codec, sizeof(v->info.codec), "%s", codec->name);
    if (v->info.width <= 0 || v->info.height <= 0) {
        ret = fv_error(FV_EINVAL, "%s: video stream has no picture size", path);
        goto fail;
    }
    if ((ret = build_index(v)) < 0)
        goto fail;
    *out = v;
    return 0;
fail:
    fv_video_close(&v);
    return ret;
}

const FvVideoInfo *fv_video_info(const FvVideo *v)
{
    return v ? &v->info : NULL;
}

int64_t fv_video_frames_decoded(const FvVideo *v)
{
    return v ? v->decoded : 0;
}

void fv_video_close(FvVideo **pv)
{
    if (!pv || !*pv)
        return;
    FvVideo *v = *pv;
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);
    av_packet_free(&v->pkt);
    av_frame_free(&v->frame);
    sws_freeContext(v->sws);
    av_free(v->rgbtmp);
    fv_free(v->frames);
    fv_free(v->keyof);
    fv_free(v->path);
    fv_free(v);
    *pv = NULL;
}

/* Next decoded frame into v->frame: 1 = got one, 0 = end of stream, < 0 = error. Packets the
 * decoder rejects as invalid are skipped, as players do; the frames they held go missing and are
 * reported by the caller. */
static int next_frame(FvVideo *v)
{
    char eb[128];
    for (;;) {
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) {
            v->decoded++;
            return 1;
        }
        if (r == AVERROR_EOF)
            return 0;
        if (r == AVERROR_INVALIDDATA)
            continue;
        if (r != AVERROR(EAGAIN))
            return fv_error(FV_EIO, "%s: decoding failed: %s", v->path, err_str(r, eb, sizeof(eb)));
        if (v->draining)
            return 0; /* cannot happen: a draining decoder answers EOF, never EAGAIN */

        for (int again = 0;;) {
            r = av_read_frame(v->fmt, v->pkt);
            if (r == AVERROR(EAGAIN) && ++again < 1000)
                continue;
            if (r < 0) {
                v->draining = 1;
                r = avcodec_send_packet(v->dec, NULL);
                break;
            }
            if (v->pkt->stream_index != v->stream || v->pkt->size <= 0) {
                av_packet_unref(v->pkt);
                continue;
            }
            r = avcodec_send_packet(v->dec, v->pkt);
            av_packet_unref(v->pkt);
            break;
        }
        if (r < 0 && r != AVERROR_INVALIDDATA && r != AVERROR_EOF)
            return fv_error(FV_EIO, "%s: decoding failed: %s", v->path, err_str(r, eb, sizeof(eb)));
    }
}

static void reset_decoder(FvVideo *v)
{
    avcodec_flush_buffers(v->dec);
    v->draining = 0;
}

/* Back to the first packet for counting frames: a seek when the demuxer demonstrably lands on the
 * first video packet, a fresh open otherwise. */
static int rewind_to_start(FvVideo *v)
{
    reset_decoder(v);
    if (v->first_pos >= 0 &&
        av_seek_frame(v->fmt, v->stream, v->frames[0].seek_ts, AVSEEK_FLAG_BACKWARD) >= 0) {
        int r;
        while ((r = av_read_frame(v->fmt, v->pkt)) >= 0 &&
               (v->pkt->stream_index != v->stream || v->pkt->size <= 0))
            av_packet_unref(v->pkt);
        int ok = r >= 0 && v->pkt->pos == v->first_pos;
        av_packet_unref(v->pkt);
        if (ok && av_seek_frame(v->fmt, v->stream, v->frames[0].seek_ts, AVSEEK_FLAG_BACKWARD) >= 0)
            return 0;
    }
    avformat_close_input(&v->fmt);
    int ret = open_input(v);
    if (ret < 0)
        return ret;
    if (v->stream >= (int)v->fmt->nb_streams)
        return fv_error(FV_EIO, "%s: video stream vanished on reopening", v->path);
    return 0;
}

/* Convert v->frame to RGB24 (dst_h, dst_w, 3) at @dst. Bilinear with accurate rounding and full
 * chroma interpolation, so RGB sources at their own size come out bit-exact. */
static int convert_frame(FvVideo *v, int32_t dst_w, int32_t dst_h, uint8_t *dst)
{
    AVFrame *f = v->frame;
    enum AVPixelFormat pf = f->format;
    if (f->width <= 0 || f->height <= 0 || pf == AV_PIX_FMT_NONE)
        return fv_error(FV_EIO, "%s: decoder returned an empty picture", v->path);
    v->sws = sws_getCachedContext(v->sws, f->width, f->height, pf, dst_w, dst_h, AV_PIX_FMT_RGB24,
                                  SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
    if (!v->sws)
        return fv_error(FV_ENOTSUP, "%s: cannot convert %s %dx%d to RGB", v->path,
                        av_get_pix_fmt_name(pf) ? av_get_pix_fmt_name(pf) : "?", f->width, f->height);

    /* Honour the stream's YUV matrix and range (601 when unspecified, like FFmpeg's default). A
     * rebuilt context may reuse the old address, so changes are tracked by parameters. */
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(pf);
    if (d && !(d->flags & AV_PIX_FMT_FLAG_RGB)) {
        int cs = SWS_CS_DEFAULT;
        switch (f->colorspace) {
        case AVCOL_SPC_BT709: cs = SWS_CS_ITU709; break;
        case AVCOL_SPC_FCC: cs = SWS_CS_FCC; break;
        case AVCOL_SPC_BT470BG: case AVCOL_SPC_SMPTE170M: cs = SWS_CS_ITU601; break;
        case AVCOL_SPC_SMPTE240M: cs = SWS_CS_SMPTE240M; break;
        case AVCOL_SPC_BT2020_NCL: case AVCOL_SPC_BT2020_CL: cs = SWS_CS_BT2020; break;
        default: break;
        }
        int range = f->color_range == AVCOL_RANGE_JPEG || pf == AV_PIX_FMT_YUVJ420P ||
                    pf == AV_PIX_FMT_YUVJ422P || pf == AV_PIX_FMT_YUVJ444P || pf == AV_PIX_FMT_YUVJ440P;
        const int key[7] = { f->width, f->height, pf, dst_w, dst_h, cs, range };
        if (memcmp(key, v->sws_key, sizeof(key))) {
            sws_setColorspaceDetails(v->sws, sws_getCoefficients(cs), range,
                                     sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
            memcpy(v->sws_key, key, sizeof(key));
        }
    } else {
        memset(v->sws_key, 0, sizeof(v->sws_key));
    }

    int stride = FFALIGN(dst_w * 3, 64) + 64;
    if (!v->rgbtmp || v->rgbtmp_stride != stride || v->rgbtmp_h != dst_h) {
        av_freep(&v->rgbtmp);
        v->rgbtmp = av_malloc((size_t)stride * (dst_h + 1));
        if (!v->rgbtmp)
            return fv_error(FV_ENOMEM, "%s: out of memory", v->path);
        v->rgbtmp_stride = stride;
        v->rgbtmp_h = dst_h;
    }
    uint8_t *planes[4] = { v->rgbtmp, NULL, NULL, NULL };
    int strides[4] = { stride, 0, 0, 0 };
    int h = sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes, strides);
    if (h != dst_h)
        return fv_error(FV_EIO, "%s: colour conversion failed", v->path);
    for (int32_t y = 0; y < dst_h; y++)
        memcpy(dst + (size_t)y * dst_w * 3, v->rgbtmp + (size_t)y * stride, (size_t)dst_w * 3);
    return 0;
}

/* Requests sorted by frame index; outputs of one index are written once and copied. */
typedef struct FvRequest {
    int64_t idx;
    int32_t out;
} FvRequest;

static int cmp_request(const void *a, const void *b)
{
    const FvRequest *x = a, *y = b;
    if (x->idx != y->idx)
        return (x->idx > y->idx) - (x->idx < y->idx);
    return (x->out > y->out) - (x->out < y->out);
}

/* Deliver the current frame to every request of index req[*i].idx. */
static int deliver(FvVideo *v, const FvRequest *req, int32_t n, int32_t *i, int32_t dst_w, int32_t dst_h,
                   uint8_t *rgb)
{
    const size_t fb = (size_t)dst_w * dst_h * 3;
    int32_t first = *i;
    int ret = convert_frame(v, dst_w, dst_h, rgb + fb * req[first].out);
    if (ret < 0)
        return ret;
    for (*i = first + 1; *i < n && req[*i].idx == req[first].idx; (*i)++)
        memcpy(rgb + fb * req[*i].out, rgb + fb * req[first].out, fb);
    return 0;
}

static int missing_frame(const FvVideo *v, int64_t idx)
{
    return fv_error(FV_ENODATA, "%s: frame %lld of %lld could not be decoded (file truncated or corrupt?)", v->path,
                    (long long)idx, (long long)v->info.nframes);
}

/* Fallback: decode from the first frame, the k-th picture out of the decoder being frame k. */
static int read_sequential(FvVideo *v, const FvRequest *req, int32_t n, int32_t dst_w, int32_t dst_h,
                           uint8_t *rgb)
{
    int ret = rewind_to_start(v);
    if (ret < 0)
        return ret;
    int64_t cur = -1;
    for (int32_t i = 0; i < n;) {
        while (cur < req[i].idx) {
            ret = next_frame(v);
            if (ret < 0)
                return ret;
            if (ret == 0)
                return missing_frame(v, req[i].idx);
            cur++;
        }
        if ((ret = deliver(v, req, n, &i, dst_w, dst_h, rgb)) < 0)
            return ret;
    }
    return 0;
}

/* Presentation index of a decoded frame from its timestamp; -1 when no indexed frame has it. */
static int64_t frame_index(const FvVideo *v, int64_t ts)
{
    int64_t lo = 0, hi = v->info.nframes - 1;
    if (ts == AV_NOPTS_VALUE)
        return -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v->frames[mid].ts == ts)
            return mid;
        if (v->frames[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Demuxers index keyframes by pts (MKV cues) or by dts (MP4, AVI): try the pts first, which lands
 * exactly on the keyframe either way unless reordering makes a dts index overshoot; @late asks for
 * the dts (<= pts) after such an overshoot. */
static int seek_to(FvVideo *v, int64_t key, int late)
{
    reset_decoder(v);
    int64_t ts = late ? v->frames[key].seek_ts : v->frames[key].ts;
    return av_seek_frame(v->fmt, v->stream, ts, AVSEEK_FLAG_BACKWARD);
}

enum { FV_TS_UNRELIABLE = 1, FV_TS_SEEK_FAILED = 2 };

/*
 * Timestamp path. Frames are decoded in presentation order; for the next wanted frame we seek to
 * its keyframe only when that keyframe lies past what has been decoded, otherwise decode through.
 * After a seek the keyframe itself must be the first frame at or past its timestamp; if the demuxer
 * landed too late we retry from an earlier keyframe. Timestamps that do not match the index, or that
 * go backwards, make us return FV_TS_UNRELIABLE so the caller counts frames instead.
 * With @seek 0 the file is decoded once from its start, never seeking. A wanted frame that does not
 * come out after a seek is no proof of damage (MPEG-TS with B-frames: the seek lands where the
 * decoder cannot rebuild it), so the seeking pass answers FV_TS_SEEK_FAILED and the caller decodes
 * from the start; only that pass reports a frame as missing.
 */
static int read_by_ts(FvVideo *v, const FvRequest *req, int32_t n, int32_t dst_w, int32_t dst_h,
                      uint8_t *rgb, int seek)
{
    int64_t pos = -1;     /* presentation index of the last frame out of the decoder */
    int positioned = 0;   /* the demuxer/decoder state continues from pos */
    int ret;
    if (!seek) {
        if ((ret = rewind_to_start(v)) < 0)
            return ret;
        positioned = 1;
    }
    for (int32_t i = 0; i < n;) {
        const int64_t want = req[i].idx;
        int64_t key = v->keyof[want];
        int64_t check = -1; /* keyframe that must show up after a seek */
        int retries = 0;
        if (seek && (!positioned || key > pos + 1 || want <= pos)) {
            if (seek_to(v, key, 0) < 0)
                return FV_TS_UNRELIABLE;
            positioned = 1;
            pos = -1;
            check = key;
        }
        for (;;) {
            ret = next_frame(v);
            if (ret < 0)
                return ret;
            if (ret == 0)
                return seek ? FV_TS_SEEK_FAILED : missing_frame(v, want);
            int64_t j = frame_index(v, v->frame->best_effort_timestamp);
            if (j < 0)
                return FV_TS_UNRELIABLE;
            if (check >= 0) {
                if (j < check)
                    continue; /* landed early, or open-GOP frames before the keyframe */
                if (j > check) {
                    /* landed past the keyframe: seek by its dts, then from earlier keyframes */
                    if (++retries > 4)
                        return FV_TS_UNRELIABLE;
                    if (retries > 1 || v->frames[check].seek_ts >= v->frames[check].ts) {
                        if (check == 0)
                            return FV_TS_UNRELIABLE;
                        check = v->keyof[check - 1];
                    }
                    if (seek_to(v, check, 1) < 0)
                        return FV_TS_UNRELIABLE;
                    continue;
                }
                check = -1;
            } else if (j <= pos) {
                return FV_TS_UNRELIABLE;
            }
            pos = j;
            if (j == want)
                break;
            if (j > want)
                return seek ? FV_TS_SEEK_FAILED : missing_frame(v, want);
        }
        if ((ret = deliver(v, req, n, &i, dst_w, dst_h, rgb)) < 0)
            return ret;
    }
    return 0;
}

int fv_video_read_rgb(FvVideo *v, const int64_t *idx, int32_t n, int32_t dst_w, int32_t dst_h,
                      uint8_t *rgb)
{
    if (!v)
        return fv_error(FV_EINVAL, "%s: NULL video", __func__);
    v->decoded = 0;
    if (n == 0)
        return 0;
    if (!v->fmt)
        return fv_error(FV_EIO, "%s: file could not be reopened", v->path);
    if (n < 0 || !idx || !rgb)
        return fv_error(FV_EINVAL, "%s: %s: bad arguments", __func__, v->path);
    if (dst_w < 1 || dst_h < 1 || dst_w > 16384 || dst_h > 16384)
        return fv_error(FV_EINVAL, "%s: %s: output size %dx%d out of range", __func__, v->path, dst_w, dst_h);
    for (int32_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= v->info.nframes)
            return fv_error(FV_EINVAL, "%s: frame index %lld out of range 0..%lld", v->path,
                            (long long)idx[i], (long long)v->info.nframes - 1);

    FvRequest *req = fv_malloc((size_t)n * sizeof(*req));
    if (!req)
        return fv_error(FV_ENOMEM, "%s: out of memory", v->path);
    for (int32_t i = 0; i < n; i++) {
        req[i].idx = idx[i];
        req[i].out = i;
    }
    qsort(req, (size_t)n, sizeof(*req), cmp_request);

    int ret = FV_TS_UNRELIABLE;
    if (v->use_ts)
        ret = read_by_ts(v, req, n, dst_w, dst_h, rgb, !v->no_seek);
    if (ret == FV_TS_SEEK_FAILED) {
        /* decode from the start; when that finds the frame seeking missed, stop seeking in this file */
        ret = read_by_ts(v, req, n, dst_w, dst_h, rgb, 0);
        if (ret == 0)
            v->no_seek = 1;
    }
    if (ret == FV_TS_UNRELIABLE) {
        /* once found unreliable, stay with counting for this file */
        v->use_ts = 0;
        if (v->keyof)
            memset(v->keyof, 0, (size_t)v->info.nframes * sizeof(*v->keyof));
        ret = read_sequential(v, req, n, dst_w, dst_h, rgb);
    }
    fv_free(req);
    return ret;
}

const char *fv_video_describe(void)
{
    static char buf[256];
    if (!fv_ffmpeg_loaded()) /* not loaded for this: what it was built against */
        return "FFmpeg libavformat " AV_STRINGIFY(LIBAVFORMAT_VERSION) ", libavcodec " AV_STRINGIFY(LIBAVCODEC_VERSION)
               ", libswscale " AV_STRINGIFY(LIBSWSCALE_VERSION) ", libavutil " AV_STRINGIFY(LIBAVUTIL_VERSION)
               " (built against; loaded on first use)";
    if (!buf[0]) {
        unsigned f = avformat_version(), c = avcodec_version(), s = swscale_version(), u = avutil_version();
        snprintf(buf, sizeof(buf), "FFmpeg %s (libavformat %u.%u.%u, libavcodec %u.%u.%u, libswscale %u.%u.%u, "
                 "libavutil %u.%u.%u)", av_version_info(), f >> 16, f >> 8 & 255, f & 255, c >> 16, c >> 8 & 255,
                 c & 255, s >> 16, s >> 8 & 255, s & 255, u >> 16, u >> 8 & 255, u & 255);
    }
    return buf;
}

/* fibvid's verbosity (common.h) sets FFmpeg's log level: FFmpeg is the library that logs by itself. */
void fv_set_verbosity(int32_t level)
{
    av_log_set_level(level <= 0 ? AV_LOG_QUIET : level == 1 ? AV_LOG_WARNING : AV_LOG_INFO);
}
