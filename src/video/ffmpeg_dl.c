/* FFmpeg loaded on first use. Debian's libavcodec/libavformat pull in ~130 shared libraries (x265, rav1e,
 * gnutls, librsvg, ...): loading and relocating them is most of a process start (about 100 ms of 110 ms for
 * `fibvid --version` on a 2-core EPYC VM, see scripts/bench_startup.sh). So libfibvid.so is not linked with
 * them; each FFmpeg function it calls is defined here (hidden, same prototype: the compiler checks it against
 * the headers) and forwards to the real one, which is looked up once with dlopen/dlsym of the exact sonames
 * the headers were built for. A program can start the loading early on a background thread (fv_video_preload();
 * fibvid's commands do not: see its header).
 *
 * Adding an FFmpeg call anywhere in the library: add one X(...) line below (the shared library is linked with
 * --no-undefined, so a missing line is a link error, never a run-time one).
 *
 * Built with -Dlazy_libs=false (no FV_LAZY_LIBS: the sanitizer CI build, whose LeakSanitizer cannot walk the
 * thread-local storage of libraries dlopen'ed after start), the library links FFmpeg and only the functions
 * after the shims below remain, as if the load had happened at start. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "util/util.h"
#include "fibvid/video.h"
#include "video/ffmpeg_dl.h"

/* X(library, return type, name, (parameters), (arguments)); V(...) for void functions */
#define FV_FFMPEG_FUNCS(X, V)                                                                                      \
    X(avutil, unsigned, avutil_version, (void), ())                                                                  \
    X(avutil, const char *, av_version_info, (void), ())                                                             \
    X(avutil, void *, av_malloc, (size_t size), (size))                                                              \
    X(avutil, void *, av_mallocz, (size_t size), (size))                                                             \
    V(avutil, av_free, (void *ptr), (ptr))                                                                           \
    V(avutil, av_freep, (void *ptr), (ptr))                                                                          \
    X(avutil, int, av_strerror, (int errnum, char *errbuf, size_t errbuf_size), (errnum, errbuf, errbuf_size))       \
    X(avutil, int64_t, av_rescale_q, (int64_t a, AVRational bq, AVRational cq), (a, bq, cq))                         \
    X(avutil, AVFrame *, av_frame_alloc, (void), ())                                                                 \
    V(avutil, av_frame_free, (AVFrame **frame), (frame))                                                             \
    X(avutil, int, av_frame_get_buffer, (AVFrame *frame, int align), (frame, align))                                 \
    X(avutil, int, av_frame_make_writable, (AVFrame *frame), (frame))                                                \
    X(avutil, const char *, av_get_pix_fmt_name, (enum AVPixelFormat pix_fmt), (pix_fmt))                            \
    X(avutil, const AVPixFmtDescriptor *, av_pix_fmt_desc_get, (enum AVPixelFormat pix_fmt), (pix_fmt))              \
    X(swscale, unsigned, swscale_version, (void), ())                                                                \
    V(swscale, sws_freeContext, (struct SwsContext *c), (c))                                                         \
    X(swscale, struct SwsContext *, sws_getCachedContext,                                                            \
      (struct SwsContext *context, int srcW, int srcH, enum AVPixelFormat srcFormat, int dstW, int dstH,            \
       enum AVPixelFormat dstFormat, int flags, SwsFilter *srcFilter, SwsFilter *dstFilter, const double *param),   \
      (context, srcW, srcH, srcFormat, dstW, dstH, dstFormat, flags, srcFilter, dstFilter, param))                   \
    X(swscale, const int *, sws_getCoefficients, (int colorspace), (colorspace))                                     \
    X(swscale, int, sws_scale,                                                                                       \
      (struct SwsContext *c, const uint8_t *const srcSlice[], const int srcStride[], int srcSliceY, int srcSliceH,  \
       uint8_t *const dst[], const int dstStride[]),                                                                 \
      (c, srcSlice, srcStride, srcSliceY, srcSliceH, dst, dstStride))                                                \
    X(swscale, int, sws_setColorspaceDetails,                                                                        \
      (struct SwsContext *c, const int inv_table[4], int srcRange, const int table[4], int dstRange, int brightness, \
       int contrast, int saturation),                                                                                \
      (c, inv_table, srcRange, table, dstRange, brightness, contrast, saturation))                                   \
    X(avcodec, unsigned, avcodec_version, (void), ())                                                                \
    X(avcodec, AVPacket *, av_packet_alloc, (void), ())                                                              \
    V(avcodec, av_packet_free, (AVPacket **pkt), (pkt))                                                              \
    V(avcodec, av_packet_unref, (AVPacket *pkt), (pkt))                                                              \
    V(avcodec, av_packet_rescale_ts, (AVPacket *pkt, AVRational tb_src, AVRational tb_dst), (pkt, tb_src, tb_dst))   \
    X(avcodec, AVCodecContext *, avcodec_alloc_context3, (const AVCodec *codec), (codec))                            \
    V(avcodec, avcodec_free_context, (AVCodecContext **avctx), (avctx))                                              \
    X(avcodec, const AVCodec *, avcodec_find_encoder, (enum AVCodecID id), (id))                                     \
    X(avcodec, const char *, avcodec_get_name, (enum AVCodecID id), (id))                                            \
    X(avcodec, int, avcodec_open2, (AVCodecContext *avctx, const AVCodec *codec, AVDictionary **options),            \
      (avctx, codec, options))                                                                                       \
    V(avcodec, avcodec_flush_buffers, (AVCodecContext *avctx), (avctx))                                              \
    X(avcodec, int, avcodec_parameters_from_context, (AVCodecParameters *par, const AVCodecContext *codec),          \
      (par, codec))                                                                                                  \
    X(avcodec, int, avcodec_parameters_to_context, (AVCodecContext *codec, const AVCodecParameters *par),            \
      (codec, par))                                                                                                  \
    X(avcodec, int, avcodec_send_packet, (AVCodecContext *avctx, const AVPacket *avpkt), (avctx, avpkt))             \
    X(avcodec, int, avcodec_receive_frame, (AVCodecContext *avctx, AVFrame *frame), (avctx, frame))                  \
    X(avcodec, int, avcodec_send_frame, (AVCodecContext *avctx, const AVFrame *frame), (avctx, frame))               \
    X(avcodec, int, avcodec_receive_packet, (AVCodecContext *avctx, AVPacket *avpkt), (avctx, avpkt))                \
    X(avformat, unsigned, avformat_version, (void), ())                                                              \
    X(avformat, int, avformat_open_input,                                                                            \
      (AVFormatContext **ps, const char *url, const AVInputFormat *fmt, AVDictionary **options),                    \
      (ps, url, fmt, options))                                                                                       \
    V(avformat, avformat_close_input, (AVFormatContext **s), (s))                                                    \
    X(avformat, int, avformat_find_stream_info, (AVFormatContext *ic, AVDictionary **options), (ic, options))        \
    X(avformat, int, av_find_best_stream,                                                                            \
      (AVFormatContext *ic, enum AVMediaType type, int wanted_stream_nb, int related_stream,                        \
       const AVCodec **decoder_ret, int flags),                                                                      \
      (ic, type, wanted_stream_nb, related_stream, decoder_ret, flags))                                              \
    X(avformat, const AVInputFormat *, av_probe_input_format2, (const AVProbeData *pd, int is_opened, int *score_max), \
      (pd, is_opened, score_max))                                                                                    \
    X(avformat, int, av_read_frame, (AVFormatContext *s, AVPacket *pkt), (s, pkt))                                   \
    X(avformat, int, av_seek_frame, (AVFormatContext *s, int stream_index, int64_t timestamp, int flags),            \
      (s, stream_index, timestamp, flags))                                                                           \
    X(avformat, int, avformat_alloc_output_context2,                                                                 \
      (AVFormatContext **ctx, const AVOutputFormat *oformat, const char *format_name, const char *filename),        \
      (ctx, oformat, format_name, filename))                                                                         \
    V(avformat, avformat_free_context, (AVFormatContext *s), (s))                                                    \
    X(avformat, AVStream *, avformat_new_stream, (AVFormatContext *s, const AVCodec *c), (s, c))                     \
    X(avformat, int, avformat_write_header, (AVFormatContext *s, AVDictionary **options), (s, options))              \
    X(avformat, int, av_interleaved_write_frame, (AVFormatContext *s, AVPacket *pkt), (s, pkt))                      \
    X(avformat, int, av_write_trailer, (AVFormatContext *s), (s))                                                    \
    X(avformat, int, avio_open, (AVIOContext **s, const char *url, int flags), (s, url, flags))                      \
    X(avformat, int, avio_closep, (AVIOContext **s), (s))

#ifdef FV_LAZY_LIBS
#define FV_SONAME2(lib, major) "lib" #lib ".so." #major
#define FV_SONAME(lib, major) FV_SONAME2(lib, major)

/* in dependency order: each one's DT_NEEDED are then already loaded */
static const struct {
    const char *soname;
} g_libs[] = {
    { FV_SONAME(avutil, LIBAVUTIL_VERSION_MAJOR) },
    { FV_SONAME(swscale, LIBSWSCALE_VERSION_MAJOR) },
    { FV_SONAME(avcodec, LIBAVCODEC_VERSION_MAJOR) },
    { FV_SONAME(avformat, LIBAVFORMAT_VERSION_MAJOR) },
};
enum { LIB_avutil, LIB_swscale, LIB_avcodec, LIB_avformat, NLIBS };

static struct {
    void (*av_log_set_level)(int level); /* looked up with the rest, defined by hand below */
#define X(lib, ret, name, params, args) ret(*name) params;
#define V(lib, name, params, args) void(*name) params;
    FV_FFMPEG_FUNCS(X, V)
#undef X
#undef V
} g_fn;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_status;     /* 0 not tried, 1 loaded, < 0 failed */
static char g_err[512];
static int g_log_level = AV_LOG_QUIET; /* av_log_set_level() before the load: applied by it */
static double g_load_ms;

static void load_once(void)
{
    const double t0 = fv_time_ms();
    void *h[NLIBS] = { 0 };
    for (int i = 0; i < NLIBS; i++) {
        /* RTLD_LAZY: the ~130 libraries' function relocations are resolved when first called, not all now */
        if (!(h[i] = dlopen(g_libs[i].soname, RTLD_LAZY | RTLD_LOCAL))) {
            const char *e = dlerror();
            snprintf(g_err, sizeof(g_err), "cannot load FFmpeg: %s", e ? e : g_libs[i].soname);
            g_status = -1;
            return;
        }
    }
#define X(lib, ret, name, params, args)                                                                            \
    if (!(*(void **)&g_fn.name = dlsym(h[LIB_##lib], #name))) {                                                      \
        snprintf(g_err, sizeof(g_err), "cannot load FFmpeg: %s has no %s", g_libs[LIB_##lib].soname, #name);        \
        g_status = -1;                                                                                               \
        return;                                                                                                      \
    }
#define V(lib, name, params, args) X(lib, void, name, params, args)
    FV_FFMPEG_FUNCS(X, V)
    V(avutil, av_log_set_level, (int level), (level))
#undef X
#undef V
    g_load_ms = fv_time_ms() - t0;
    /* published with the functions (release), then the level set so far applied: a setter that stored its
     * level before this store sees the library loaded and applies it itself, or its level is read here */
    __atomic_store_n(&g_status, 1, __ATOMIC_SEQ_CST);
    g_fn.av_log_set_level(__atomic_load_n(&g_log_level, __ATOMIC_SEQ_CST));
}

int fv_ffmpeg_load(void)
{
    pthread_once(&g_once, load_once);
    return g_status > 0 ? 0 : fv_error(-ELIBACC, "%s", g_err); /* a runtime failure, not the input's */
}

int fv_ffmpeg_loaded(void)
{
    return __atomic_load_n(&g_status, __ATOMIC_ACQUIRE) > 0;
}

double fv_ffmpeg_load_ms(void)
{
    return fv_ffmpeg_loaded() ? g_load_ms : 0.0;
}

static void *preload_main(void *arg)
{
    (void)arg;
    /* the model's library first: the main thread needs it within milliseconds (packing the weights, the
     * warm-up), and a dlopen waits for any other in progress, FFmpeg's ~130 libraries included */
    fv_gemm_libs_preload();
    pthread_once(&g_once, load_once);
    return NULL;
}

void fv_video_preload(void)
{
    static int started;
    if (__atomic_exchange_n(&started, 1, __ATOMIC_ACQ_REL))
        return;
    /* the OpenMP thread team now: creating a thread waits for any dlopen in progress (glibc's TLS lock), so a
     * team started later would wait for FFmpeg's libraries */
    fv_flush_denormals();
    pthread_t t;
    pthread_attr_t a;
    /* the loader runs on a small stack; detached: fv_ffmpeg_load() waits for it through the pthread_once */
    if (pthread_attr_init(&a) == 0) {
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 256 * 1024);
        if (pthread_create(&t, &a, preload_main, NULL) != 0)
            fv_error_clear(); /* no thread: the first use loads it */
        pthread_attr_destroy(&a);
    }
}

#else /* FFmpeg linked: loaded by the dynamic loader at start */
int fv_ffmpeg_load(void)
{
    return 0;
}

int fv_ffmpeg_loaded(void)
{
    return 1;
}

double fv_ffmpeg_load_ms(void)
{
    return 0.0;
}

void fv_video_preload(void)
{
}
#endif

#ifdef FV_LAZY_LIBS
/* A call without a successful fv_ffmpeg_load() first (code paths that cannot report an error): load now, and
 * if FFmpeg is missing say so on one line and stop, as the dynamic loader would have at process start. */
static void need(void)
{
    if (__builtin_expect(!fv_ffmpeg_loaded(), 0) && fv_ffmpeg_load() < 0) {
        fprintf(stderr, "fibvid: %s\n", g_err);
        exit(3); /* README "Exit codes": runtime failure */
    }
}

void av_log_set_level(int level)
{
    __atomic_store_n(&g_log_level, level, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&g_status, __ATOMIC_SEQ_CST) > 0)
        g_fn.av_log_set_level(level);
}

#define X(lib, ret, name, params, args)                                                                            \
    ret name params                                                                                                  \
    {                                                                                                                \
        need();                                                                                                      \
        return g_fn.name args;                                                                                       \
    }
#define V(lib, name, params, args)                                                                                 \
    void name params                                                                                                 \
    {                                                                                                                \
        need();                                                                                                      \
        g_fn.name args;                                                                                              \
    }
FV_FFMPEG_FUNCS(X, V)
#endif /* FV_LAZY_LIBS */
