/* PSViT token pooling (fibvid's reconstruction, SPEC 4.3): 2x2 windows of stride 2 on each frame's patch grid
 * (a window at an odd edge covers only its valid cells), or a depthwise 3x3 convolution of stride 2 and
 * padding 1; cls untouched. Every output row is one (clip, pooled patch, frame); every input cell belongs to
 * exactly one 2x2 window, so the backward writes each input row once and runs in parallel without races. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "model/pool.h"
#include "util/util.h"

/* Tap (ky, kx) of every channel as a row: wt (9, D) from w (D, 1, 3, 3). */
static float *taps_by_row(const float *w, int32_t D)
{
    float *wt = malloc(sizeof(float) * 9 * (size_t)D);
    if (!wt)
        return NULL;
    for (int32_t d = 0; d < D; d++)
        for (int32_t k = 0; k < 9; k++)
            wt[(size_t)k * D + d] = w[(size_t)d * 9 + k];
    return wt;
}

int fv_token_pool_forward(FvPoolKind kind, const float *x, float *y, int32_t B, int32_t T, int32_t gh, int32_t gw,
                          int32_t D, const float *w, const float *b)
{
    const int32_t ph = (gh + 1) / 2, pw = (gw + 1) / 2;
    const int64_t tin = 1 + (int64_t)gh * gw * T, tout = 1 + (int64_t)ph * pw * T;
    float *wt = kind == FV_POOL_CONV ? taps_by_row(w, D) : NULL;
    if (kind == FV_POOL_CONV && !wt)
        return fv_error(FV_ENOMEM, "token pooling: out of memory");
    for (int32_t c = 0; c < B; c++)
        memcpy(y + c * tout * D, x + c * tin * D, sizeof(float) * (size_t)D); /* cls */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < (int64_t)B * ph * pw * T; r++) {
        const int64_t c = r / ((int64_t)ph * pw * T), n = r / T % ((int64_t)ph * pw), t = r % T;
        const int32_t oy = (int32_t)(n / pw), ox = (int32_t)(n % pw);
        const float *xc = x + c * tin * D;
        float *o = y + (c * tout + 1 + n * T + t) * D;
        if (kind == FV_POOL_CONV) {
            for (int32_t d = 0; d < D; d++)
                o[d] = b[d];
            for (int32_t k = 0; k < 9; k++) {
                const int32_t iy = 2 * oy + k / 3 - 1, ix = 2 * ox + k % 3 - 1;
                if (iy < 0 || iy >= gh || ix < 0 || ix >= gw)
                    continue;
                const float *xi = xc + (1 + ((int64_t)iy * gw + ix) * T + t) * D, *wk = wt + (size_t)k * D;
#pragma omp simd
                for (int32_t d = 0; d < D; d++)
                    o[d] += wk[d] * xi[d];
            }
            continue;
        }
        int32_t cnt = 0;
        for (int32_t k = 0; k < 4; k++) {
            const int32_t iy = 2 * oy + k / 2, ix = 2 * ox + k % 2;
            if (iy >= gh || ix >= gw)
                continue;
            const float *xi = xc + (1 + ((int64_t)iy * gw + ix) * T + t) * D;
            if (cnt++ == 0) {
                memcpy(o, xi, sizeof(float) * (size_t)D);
            } else if (kind == FV_POOL_MAX) {
#pragma omp simd
                for (int32_t d = 0; d < D; d++)
                    o[d] = xi[d] > o[d] ? xi[d] : o[d];
            } else {
#pragma omp simd
                for (int32_t d = 0; d < D; d++)
                    o[d] += xi[d];
            }
        }
        if (kind == FV_POOL_AVG && cnt > 1) {
            const float inv = 1.0f / (float)cnt;
            for (int32_t d = 0; d < D; d++)
                o[d] *= inv;
        }
    }
    free(wt);
    return 0;
}

int fv_token_pool_backward(FvPoolKind kind, const float *x, const float *dy, float *dx, int32_t B, int32_t T,
                           int32_t gh, int32_t gw, int32_t D, const float *w, float *dw, float *db)
{
    const int32_t ph = (gh + 1) / 2, pw = (gw + 1) / 2;
    const int64_t tin = 1 + (int64_t)gh * gw * T, tout = 1 + (int64_t)ph * pw * T;
    const int nt = omp_get_max_threads();
    float *wt = NULL;
    double *part = NULL; /* the weights' gradients sum many products that cancel: in double */
    if (kind == FV_POOL_CONV) {
        wt = taps_by_row(w, D);
        part = calloc((size_t)nt * 10 * (size_t)D, sizeof(double)); /* per thread: 9 taps and the bias */
        if (!wt || !part) {
            free(wt);
            free(part);
            return fv_error(FV_ENOMEM, "token pooling backward: out of memory");
        }
    }
    for (int32_t c = 0; c < B; c++)
        memcpy(dx + c * tin * D, dy + c * tout * D, sizeof(float) * (size_t)D); /* cls */
    if (kind == FV_POOL_CONV) {
        /* dx: every input cell gathers from the outputs whose taps cover it */
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < (int64_t)B * gh * gw * T; r++) {
            const int64_t c = r / ((int64_t)gh * gw * T), n = r / T % ((int64_t)gh * gw), t = r % T;
            const int32_t iy = (int32_t)(n / gw), ix = (int32_t)(n % gw);
            float *o = dx + (c * tin + 1 + n * T + t) * D;
            memset(o, 0, sizeof(float) * (size_t)D);
            for (int32_t k = 0; k < 9; k++) {
                const int32_t ky = k / 3, kx = k % 3, sy = iy + 1 - ky, sx = ix + 1 - kx;
                if (sy < 0 || sx < 0 || sy % 2 || sx % 2 || sy / 2 >= ph || sx / 2 >= pw)
                    continue;
                const float *g = dy + (c * tout + 1 + ((int64_t)(sy / 2) * pw + sx / 2) * T + t) * D;
                const float *wk = wt + (size_t)k * D;
#pragma omp simd
                for (int32_t d = 0; d < D; d++)
                    o[d] += wk[d] * g[d];
            }
        }
        /* dw, db: per-thread sums over the outputs, then added up */
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < (int64_t)B * ph * pw * T; r++) {
            const int64_t c = r / ((int64_t)ph * pw * T), n = r / T % ((int64_t)ph * pw), t = r % T;
            const int32_t oy = (int32_t)(n / pw), ox = (int32_t)(n % pw);
            const float *g = dy + (c * tout + 1 + n * T + t) * D;
            double *pt = part + (size_t)omp_get_thread_num() * 10 * D;
            for (int32_t k = 0; k < 9; k++) {
                const int32_t iy = 2 * oy + k / 3 - 1, ix = 2 * ox + k % 3 - 1;
                if (iy < 0 || iy >= gh || ix < 0 || ix >= gw)
                    continue;
                const float *xi = x + (c * tin + 1 + ((int64_t)iy * gw + ix) * T + t) * D;
                double *pk = pt + (size_t)k * D;
#pragma omp simd
                for (int32_t d = 0; d < D; d++)
                    pk[d] += (double)g[d] * xi[d];
            }
            double *pb = pt + 9 * (size_t)D;
#pragma omp simd
            for (int32_t d = 0; d < D; d++)
                pb[d] += g[d];
        }
        for (int32_t d = 0; d < D; d++) {
            for (int32_t k = 0; k < 10; k++) {
                double sum = 0.0;
                for (int i = 0; i < nt; i++)
                    sum += part[((size_t)i * 10 + k) * D + d];
                if (k < 9 && dw)
                    dw[(size_t)d * 9 + k] += (float)sum;
                else if (k == 9 && db)
                    db[d] += (float)sum;
            }
        }
        free(wt);
        free(part);
        return 0;
    }
    /* avg and max: one window at a time, each of its cells written once */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < (int64_t)B * ph * pw * T; r++) {
        const int64_t c = r / ((int64_t)ph * pw * T), n = r / T % ((int64_t)ph * pw), t = r % T;
        const int32_t oy = (int32_t)(n / pw), ox = (int32_t)(n % pw);
        const float *g = dy + (c * tout + 1 + n * T + t) * D;
        int64_t cell[4];
        int32_t cnt = 0;
        for (int32_t k = 0; k < 4; k++) {
            const int32_t iy = 2 * oy + k / 2, ix = 2 * ox + k % 2;
            if (iy < gh && ix < gw)
                cell[cnt++] = c * tin + 1 + ((int64_t)iy * gw + ix) * T + t;
        }
        if (kind == FV_POOL_AVG) {
            const float inv = 1.0f / (float)cnt;
            for (int32_t k = 0; k < cnt; k++) {
                float *o = dx + cell[k] * D;
#pragma omp simd
                for (int32_t d = 0; d < D; d++)
                    o[d] = g[d] * inv;
            }
            continue;
        }
        /* max: the first cell (window order) holding the maximum takes the gradient */
        for (int32_t d = 0; d < D; d++) {
            int32_t best = 0;
            float m = x[cell[0] * D + d];
            for (int32_t k = 1; k < cnt; k++)
                if (x[cell[k] * D + d] > m) {
                    m = x[cell[k] * D + d];
                    best = k;
                }
            for (int32_t k = 0; k < cnt; k++)
                dx[cell[k] * D + d] = k == best ? g[d] : 0.0f;
        }
    }
    return 0;
}
