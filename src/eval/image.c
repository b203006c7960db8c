/* Raster images and PNG output through libavcodec's PNG encoder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/imgutils.h>

#include "eval/image.h"
#include "util/util.h"

int fv_image_alloc(FvImage *im, int32_t w, int32_t h, uint8_t r, uint8_t g, uint8_t b)
{
    memset(im, 0, sizeof(*im));
    if (w <= 0 || h <= 0 || (int64_t)w * h > (1 << 28))
        return fv_error(FV_EINVAL, "fv_image_alloc: bad size %dx%d", w, h);
    im->rgb = malloc((size_t)w * h * 3);
    if (!im->rgb)
        return fv_error(FV_ENOMEM, "fv_image_alloc: out of memory");
    im->w = w;
    im->h = h;
    for (int64_t i = 0; i < (int64_t)w * h; i++) {
        im->rgb[3 * i] = r;
        im->rgb[3 * i + 1] = g;
        im->rgb[3 * i + 2] = b;
    }
    return 0;
}

void fv_image_free(FvImage *im)
{
    free(im->rgb);
    memset(im, 0, sizeof(*im));
}

void fv_image_fill_rect(FvImage *im, int32_t x, int32_t y, int32_t w, int32_t h, const uint8_t rgb[3])
{
    int32_t x0 = FV_MAX(x, 0), y0 = FV_MAX(y, 0), x1 = FV_MIN(x + w, im->w), y1 = FV_MIN(y + h, im->h);
    for (int32_t yy = y0; yy < y1; yy++)
        for (int32_t xx = x0; xx < x1; xx++)
            memcpy(im->rgb + ((int64_t)yy * im->w + xx) * 3, rgb, 3);
}

void fv_colormap(float v, uint8_t rgb[3])
{
    /* viridis at 9 stops, linearly interpolated */
    static const uint8_t stops[9][3] = { { 68, 1, 84 },    { 71, 44, 122 },  { 59, 81, 139 },
                                         { 44, 113, 142 }, { 33, 144, 141 }, { 39, 173, 129 },
                                         { 92, 200, 99 },  { 170, 220, 50 }, { 253, 231, 37 } };
    if (!(v > 0.0f))
        v = 0.0f;
    if (v > 1.0f)
        v = 1.0f;
    float f = v * 8.0f;
    int i = (int)f;
    if (i >= 8)
        i = 7;
    float t = f - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)(stops[i][c] + t * (stops[i + 1][c] - stops[i][c]) + 0.5f);
}

int fv_image_encode_png(const FvImage *im, uint8_t **data, int32_t *size)
{
    int ret = 0;
    AVCodecContext *ctx = NULL;
    AVFrame *fr = NULL;
    AVPacket *pkt = NULL;
    *data = NULL;
    *size = 0;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec)
        return fv_error(FV_ENOTSUP, "png: FFmpeg has no PNG encoder");
    ctx = avcodec_alloc_context3(codec);
    fr = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!ctx || !fr || !pkt) {
        ret = fv_error(FV_ENOMEM, "png: out of memory");
        goto fail;
    }
    ctx->width = im->w;
    ctx->height = im->h;
    ctx->pix_fmt = AV_PIX_FMT_RGB24;
    ctx->time_base = (AVRational){ 1, 1 };
    if ((ret = avcodec_open2(ctx, codec, NULL)) < 0) {
        fv_error(ret, "png: cannot open the encoder");
        goto fail;
    }
    fr->format = AV_PIX_FMT_RGB24;
    fr->width = im->w;
    fr->height = im->h;
    if ((ret = av_frame_get_buffer(fr, 0)) < 0) {
        fv_error(ret, "png: out of memory");
        goto fail;
    }
    for (int32_t y = 0; y < im->h; y++)
        memcpy(fr->data[0] + (int64_t)y * fr->linesize[0], im->rgb + (int64_t)y * im->w * 3, (size_t)im->w * 3);
    if ((ret = avcodec_send_frame(ctx, fr)) < 0 || (ret = avcodec_send_frame(ctx, NULL)) < 0 ||
        (ret = avcodec_receive_packet(ctx, pkt)) < 0) {
        fv_error(ret, "png: encoding failed");
        goto fail;
    }
    *data = av_malloc((size_t)pkt->size);
    if (!*data) {
        ret = fv_error(FV_ENOMEM, "png: out of memory");
        goto fail;
    }
    memcpy(*data, pkt->data, (size_t)pkt->size);
    *size = pkt->size;
    ret = 0;
fail:
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&ctx);
    return ret;
}

void fv_image_png_free(uint8_t *data)
{
    av_free(data);
}

int fv_image_write_png(const FvImage *im, const char *path)
{
    uint8_t *data;
    int32_t size;
    int ret = fv_image_encode_png(im, &data, &size);
    if (ret < 0)
        return ret;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fv_image_png_free(data);
        return fv_error(-errno, "%s: cannot create: %s", path, strerror(errno));
    }
    size_t w = fwrite(data, 1, (size_t)size, f);
    int cl = fclose(f);
    fv_image_png_free(data);
    if (w != (size_t)size || cl != 0)
        return fv_error(FV_EIO, "%s: write failed", path);
    return 0;
}
