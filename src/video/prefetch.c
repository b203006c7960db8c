/* Clip prefetching: a bounded producer/consumer queue between decoder threads (fv_clip_load) and the thread
 * running the model. Workers claim jobs in list order and the consumer takes them in that order, so what it
 * sees does not depend on the number of workers. Errors of a clip travel with its item; the consumer's
 * waiting time is measured so an evaluation can report how much of its wall time decoding did not hide. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fibvid/video.h"
#include "util/util.h"

#define FV_PREFETCH_MAX_DEPTH   4096
#define FV_PREFETCH_MAX_WORKERS 256

struct FvPrefetch {
    const FvClipSettings *s;
    const char *const    *paths; // (n)
    const int64_t        *ids;   // (n) or NULL: ids are positions
    int64_t               n;
    int32_t               depth;
    FvPrefetchItem       *ring;  // (depth) slots; job i sits in slot i % depth
    uint8_t              *ready; // (depth) 1: the slot holds its job
    int64_t               claimed, taken;
    int                   stop;
    int32_t               workers;
    pthread_t            *threads;
    pthread_mutex_t       mu;
    pthread_cond_t        not_empty, not_full;
    double                wait_ms;   // consumer only
    double                decode_ms; // under mu
};

static void load_one(const FvPrefetch *p, int64_t i, FvPrefetchItem *it)
{
    memset(it, 0, sizeof(*it));
    it->id = p->ids ? p->ids[i] : i;
    fv_error_clear();
    it->status = fv_clip_load(p->paths[i], p->s, &it->clip);
    if (it->status < 0) {
        /* the message lives in this thread's error buffer: copy it for the consumer */
        const char *msg = fv_last_error();
        snprintf(it->error, sizeof(it->error), "%s", msg[0] ? msg : "could not load the clip");
    }
}

static void *worker(void *arg)
{
    FvPrefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* a job may be claimed only while its slot is free: at most depth jobs are ahead of the consumer */
        while (!p->stop && p->claimed < p->n && p->claimed - p->taken >= p->depth)
            pthread_cond_wait(&p->not_full, &p->mu);
        if (p->stop || p->claimed >= p->n)
            break;
        const int64_t i = p->claimed++;
        pthread_mutex_unlock(&p->mu);

        FvPrefetchItem it;
        const double t0 = fv_time_ms();
        load_one(p, i, &it);
        const double ms = fv_time_ms() - t0;

        pthread_mutex_lock(&p->mu);
        p->decode_ms += ms;
        if (p->stop) {
            fv_clip_free(&it.clip);
            break;
        }
        p->ring[i % p->depth] = it;
        p->ready[i % p->depth] = 1;
        pthread_cond_broadcast(&p->not_empty);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void free_prefetch(FvPrefetch *p)
{
    fv_free(p->ring);
    fv_free(p->ready);
    fv_free(p->threads);
    fv_free(p);
}

int fv_prefetch_start(FvPrefetch **out, const FvClipSettings *s, const char *const *paths, const int64_t *ids,
                      int64_t n, int32_t depth, int32_t workers)
{
    if (!out || !s || (!paths && n > 0) || n < 0)
        return fv_error(FV_EINVAL, "fv_prefetch_start: NULL argument");
    if (depth < 0 || depth > FV_PREFETCH_MAX_DEPTH || workers < 0 || workers > FV_PREFETCH_MAX_WORKERS ||
        (depth > 0 && workers < 1) || workers > FV_MAX(depth, 1))
        return fv_error(FV_EINVAL, "fv_prefetch_start: depth %d and %d workers (1..%d workers, at most depth)", depth,
                        workers, FV_PREFETCH_MAX_WORKERS);
    *out = NULL;
    FvPrefetch *p = fv_calloc(1, sizeof(*p));
    if (!p)
        return fv_error(FV_ENOMEM, "fv_prefetch_start: out of memory");
    p->s = s;
    p->paths = paths;
    p->ids = ids;
    p->n = n;
    p->depth = depth;
    if (depth == 0 || n == 0) {
        *out = p;
        return 0;
    }
    p->ring = fv_calloc((size_t)depth, sizeof(*p->ring));
    p->ready = fv_calloc((size_t)depth, 1);
    p->threads = fv_calloc((size_t)workers, sizeof(*p->threads));
    if (!p->ring || !p->ready || !p->threads) {
        free_prefetch(p);
        return fv_error(FV_ENOMEM, "fv_prefetch_start: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->not_empty, NULL);
    pthread_cond_init(&p->not_full, NULL);
    /* the decoder threads take no signals: SIGINT/SIGTERM handlers of the caller run on its own thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    for (int32_t w = 0; w < workers && !err; w++)
        if (!(err = pthread_create(&p->threads[w], NULL, worker, p)))
            p->workers++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        fv_prefetch_stop(&p);
        return fv_error(FV_EIO, "fv_prefetch_start: cannot start a decoder thread: %s", strerror(err));
    }
    *out = p;
    return 0;
}

int fv_prefetch_next(FvPrefetch *p, FvPrefetchItem *item)
{
    if (!p || !item || p->taken >= p->n)
        return 0;
    double t0 = fv_time_ms();
    if (!p->workers) {
        load_one(p, p->taken, item);
        p->taken++;
        double ms = fv_time_ms() - t0;
        p->wait_ms += ms;
        p->decode_ms += ms;
        return 1;
    }
    pthread_mutex_lock(&p->mu);
    const int64_t slot = p->taken % p->depth;
    while (!p->ready[slot])
        pthread_cond_wait(&p->not_empty, &p->mu);
    *item = p->ring[slot];
    memset(&p->ring[slot], 0, sizeof(p->ring[slot]));
    p->ready[slot] = 0;
    p->taken++;
    pthread_cond_broadcast(&p->not_full);
    pthread_mutex_unlock(&p->mu);
    p->wait_ms += fv_time_ms() - t0;
    return 1;
}

double fv_prefetch_wait_ms(const FvPrefetch *p)
{
    return p ? p->wait_ms : 0.0;
}

double fv_prefetch_decode_ms(FvPrefetch *p)
{
    if (!p)
        return 0.0;
    if (!p->workers)
        return p->decode_ms;
    pthread_mutex_lock(&p->mu);
    double ms = p->decode_ms;
    pthread_mutex_unlock(&p->mu);
    return ms;
}

void fv_prefetch_stop(FvPrefetch **pp)
{
    if (!pp || !*pp)
        return;
    FvPrefetch *p = *pp;
    if (p->ring) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->not_full);
        pthread_mutex_unlock(&p->mu);
        for (int32_t w = 0; w < p->workers; w++)
            pthread_join(p->threads[w], NULL);
        for (int32_t i = 0; i < p->depth; i++)
            if (p->ready[i])
                fv_clip_free(&p->ring[i].clip);
        pthread_cond_destroy(&p->not_full);
        pthread_cond_destroy(&p->not_empty);
        pthread_mutex_destroy(&p->mu);
    }
    free_prefetch(p);
    *pp = NULL;
}
