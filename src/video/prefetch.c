/* Clip prefetching: a bounded producer/consumer queue between one decoder thread (fv_clip_load) and the
 * thread running the model. Errors of a clip travel with its item; the consumer's waiting time is measured
 * so an evaluation can report how much of its wall time decoding did not hide. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"
#include "video/prefetch.h"

#define FV_PREFETCH_MAX_DEPTH 16

struct FvPrefetch {
    const FvClipSettings *s;
    const char *const    *paths; // (n)
    const int64_t        *ids;   // (n) or NULL: ids are positions
    int64_t               n;
    int32_t               depth;
    FvPrefetchItem       *ring;  // (depth) slots; job i sits in slot i % depth
    int64_t               produced, taken;
    int                   stop;
    int                   has_thread;
    pthread_t             thread;
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

static void *producer(void *arg)
{
    FvPrefetch *p = arg;
    for (int64_t i = 0; i < p->n; i++) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->produced - p->taken >= p->depth)
            pthread_cond_wait(&p->not_full, &p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;

        FvPrefetchItem it;
        double t0 = fv_time_ms();
        load_one(p, i, &it);
        double ms = fv_time_ms() - t0;

        pthread_mutex_lock(&p->mu);
        p->decode_ms += ms;
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            fv_clip_free(&it.clip);
            break;
        }
        p->ring[i % p->depth] = it;
        p->produced++;
        pthread_cond_signal(&p->not_empty);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

int fv_prefetch_start(FvPrefetch **out, const FvClipSettings *s, const char *const *paths, const int64_t *ids,
                      int64_t n, int32_t depth)
{
    if (!out || !s || (!paths && n > 0) || n < 0)
        return fv_error(FV_EINVAL, "fv_prefetch_start: NULL argument");
    if (depth < 0 || depth > FV_PREFETCH_MAX_DEPTH)
        return fv_error(FV_EINVAL, "fv_prefetch_start: depth %d not in 0..%d", depth, FV_PREFETCH_MAX_DEPTH);
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
    if (!(p->ring = fv_calloc((size_t)depth, sizeof(*p->ring)))) {
        fv_free(p);
        return fv_error(FV_ENOMEM, "fv_prefetch_start: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->not_empty, NULL);
    pthread_cond_init(&p->not_full, NULL);
    /* the decoder thread takes no signals: SIGINT/SIGTERM handlers of the caller run on its own thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&p->thread, NULL, producer, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        pthread_cond_destroy(&p->not_full);
        pthread_cond_destroy(&p->not_empty);
        pthread_mutex_destroy(&p->mu);
        fv_free(p->ring);
        fv_free(p);
        return fv_error(FV_EIO, "fv_prefetch_start: cannot start the decoder thread: %s", strerror(err));
    }
    p->has_thread = 1;
    *out = p;
    return 0;
}

int fv_prefetch_next(FvPrefetch *p, FvPrefetchItem *item)
{
    if (!p || !item || p->taken >= p->n)
        return 0;
    double t0 = fv_time_ms();
    if (!p->has_thread) {
        load_one(p, p->taken, item);
        p->taken++;
        double ms = fv_time_ms() - t0;
        p->wait_ms += ms;
        p->decode_ms += ms;
        return 1;
    }
    pthread_mutex_lock(&p->mu);
    while (p->produced == p->taken)
        pthread_cond_wait(&p->not_empty, &p->mu);
    FvPrefetchItem *slot = &p->ring[p->taken % p->depth];
    *item = *slot;
    memset(slot, 0, sizeof(*slot));
    p->taken++;
    pthread_cond_signal(&p->not_full);
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
    if (!p->has_thread)
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
    if (p->has_thread) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->not_full);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        for (int64_t i = p->taken; i < p->produced; i++)
            fv_clip_free(&p->ring[i % p->depth].clip);
        pthread_cond_destroy(&p->not_full);
        pthread_cond_destroy(&p->not_empty);
        pthread_mutex_destroy(&p->mu);
    }
    fv_free(p->ring);
    fv_free(p);
    *pp = NULL;
}
