/* Clip prefetching for batch evaluation: one decoder thread loads the next clips (fv_clip_load) into a
 * bounded queue while the caller runs the model on the current one, so decoding hides behind compute. */
#ifndef FV_PREFETCH_H
#define FV_PREFETCH_H

#include <stdint.h>

#include "fibvid/video.h"

/* One loaded clip, or why it could not be loaded. */
typedef struct FvPrefetchItem {
    int64_t id;         /* the caller's id of the job (e.g. the list position) */
    int     status;     /* 0, or the negative code of fv_clip_load() */
    char    error[512]; /* fv_last_error() of the decoder thread when status < 0 */
    FvClip  clip;       /* valid when status == 0; owned by the caller after fv_prefetch_next() */
} FvPrefetchItem;

typedef struct FvPrefetch FvPrefetch;

/*
 * Start loading clips @p paths[0..n-1] (ids @p ids) with settings @p s, in order, keeping at most
 * @p depth loaded clips waiting (1..16). @p depth 0 starts no thread: fv_prefetch_next() then loads
 * each clip itself (for comparisons). @p paths, @p ids and @p s must outlive the queue.
 * Returns 0 and *@p out, or FV_ENOMEM / FV_EINVAL / FV_EIO (thread creation failed).
 */
int fv_prefetch_start(FvPrefetch **out, const FvClipSettings *s, const char *const *paths, const int64_t *ids,
                      int64_t n, int32_t depth);

/*
 * Take the next clip, in job order, waiting for the decoder when it is not ready yet (the time spent
 * waiting is added to fv_prefetch_wait_ms()). A clip that failed to load comes back with status < 0 and
 * its message: that is not an error of this call. Returns 1 with *@p item filled (free its clip with
 * fv_clip_free()), or 0 when every job has been taken.
 */
int fv_prefetch_next(FvPrefetch *p, FvPrefetchItem *item);

/* Milliseconds the caller has spent blocked in fv_prefetch_next() (with depth 0: loading). */
double fv_prefetch_wait_ms(const FvPrefetch *p);

/* Milliseconds the decoder spent in fv_clip_load() so far (its busy time). */
double fv_prefetch_decode_ms(FvPrefetch *p);

/* Stop the decoder after the clip it is loading, free clips not taken, join the thread and free @p p;
 * sets *@p p to NULL. Accepts NULL. */
void fv_prefetch_stop(FvPrefetch **p);

#endif /* FV_PREFETCH_H */
