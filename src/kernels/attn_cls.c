/* The attention output of query row 0 (cls) alone, for the last block of a bf16 classification forward
 * (model/forward_packed.c, fv_forward_cls_query): only the cls token reaches the classifier, so of the spatial
 * attention only the cls query's row is needed, while its keys and values stay every token's. Exact for the
 * kinds whose cls row is a softmax over every key of the sequence (fv_attn_cls_exact: dense, and Fibottention,
 * whose mask always keeps the cls row whole); SimA and Castling-ViT (no softmax rows) and attention sharing run
 * the kind's full attention. */
#include <math.h>
#include <stdlib.h>

#include "kernels/attention.h"
#include "kernels/fastmath.h"
#include "kernels/bf16.h"
#include "util/util.h"

int fv_attn_cls_exact(const FvAttnPlan *p)
{
    if (!p->dsp || !p->dsp->keys || !p->has_cls)
        return 0;
    int32_t *keys = malloc(sizeof(int32_t) * (size_t)p->N);
    int ok = keys != NULL;
    for (int32_t h = 0; ok && h < p->H; h++)
        ok = p->dsp->keys(p, h, 0, keys) == p->N;
    free(keys);
    return ok;
}

static inline float ld(const void *x, int bf, int64_t i)
{
    return bf ? fv_f32_from_bf16(((const uint16_t *)x)[i]) : ((const float *)x)[i];
}

void fv_attn_cls_forward(float *out, const void *qkv, int bf, int64_t nseq, int32_t N, int32_t H, int32_t hd)
{
    const int64_t D = (int64_t)H * hd, ld3 = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *s = malloc(sizeof(float) * ((size_t)N + 2 * (size_t)hd));
#pragma omp for schedule(static)
        for (int64_t task = 0; task < nseq * H; task++) {
            const int64_t b = task / H, h = task % H, r0 = b * N * ld3;
            float *o = out + b * D + h * hd;
            if (!s) { /* no scratch: NaN rather than a wrong number that looks right */
                for (int32_t d = 0; d < hd; d++)
                    o[d] = NAN;
                continue;
            }
            float *q = s + N, *acc = q + hd;
            for (int32_t d = 0; d < hd; d++)
                q[d] = ld(qkv, bf, r0 + h * hd + d) * scale;
            float mx = -INFINITY;
            for (int32_t j = 0; j < N; j++) {
                const int64_t kr = r0 + j * ld3 + D + h * hd;
                float dot = 0.0f;
                for (int32_t d = 0; d < hd; d++)
                    dot += q[d] * ld(qkv, bf, kr + d);
                s[j] = dot;
                mx = dot > mx ? dot : mx;
            }
            float sum = 0.0f;
            for (int32_t j = 0; j < N; j++)
                sum += s[j] = fv_expf(s[j] - mx);
            for (int32_t d = 0; d < hd; d++)
                acc[d] = 0.0f;
            for (int32_t j = 0; j < N; j++) {
                const int64_t vr = r0 + j * ld3 + 2 * D + h * hd;
                for (int32_t d = 0; d < hd; d++)
                    acc[d] += s[j] * ld(qkv, bf, vr + d);
            }
            const float inv = 1.0f / sum;
            for (int32_t d = 0; d < hd; d++)
                o[d] = acc[d] * inv;
        }
        free(s);
    }
}

void fv_attn_cls_forward_ref(float *out, const void *qkv, int bf, int64_t nseq, int32_t N, int32_t H, int32_t hd)
{
    const int64_t D = (int64_t)H * hd, ld3 = 3 * D;
    const double scale = 1.0 / sqrt((double)hd);
    double *s = malloc(sizeof(double) * (size_t)N);
    for (int64_t i = 0; !s && i < nseq * D; i++) /* no scratch: NaN, which no comparison passes */
        out[i] = NAN;
    for (int64_t b = 0; s && b < nseq; b++)
        for (int32_t h = 0; h < H; h++) {
            const int64_t r0 = b * N * ld3;
            double mx = -INFINITY, sum = 0.0;
            for (int32_t j = 0; j < N; j++) {
                double dot = 0.0;
                for (int32_t d = 0; d < hd; d++)
                    dot += (double)ld(qkv, bf, r0 + (int64_t)h * hd + d) * ld(qkv, bf, r0 + j * ld3 + D + h * hd + d);
                s[j] = dot * scale;
                mx = fmax(mx, s[j]);
            }
            for (int32_t j = 0; j < N; j++)
                sum += s[j] = exp(s[j] - mx);
            for (int32_t d = 0; d < hd; d++) {
                double acc = 0.0;
                for (int32_t j = 0; j < N; j++)
                    acc += s[j] * ld(qkv, bf, r0 + j * ld3 + 2 * D + h * hd + d);
                out[b * D + (int64_t)h * hd + d] = (float)(acc / sum);
            }
        }
    free(s);
}
