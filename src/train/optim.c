/* Optimisation pieces of training: label-smoothed cross-entropy and its gradient, global-norm gradient
 * clipping, AdamW with decoupled weight decay (torch.optim.AdamW) and the linear warm-up + cosine schedule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "train/optim.h"

double fv_loss_ce_smooth(const float *logits, const int32_t *labels, int32_t B, int32_t C, float eps,
                         float *dlogits, int32_t *correct)
{
    double total = 0.0;
    int32_t ok = 0;
    for (int32_t b = 0; b < B; b++) {
        const float *z = logits + (int64_t)b * C;
        double mx = -INFINITY;
        int32_t arg = 0;
        for (int32_t c = 0; c < C; c++)
            if (z[c] > mx) {
                mx = z[c];
                arg = c;
            }
        ok += arg == labels[b];
        double se = 0.0, sz = 0.0;
        for (int32_t c = 0; c < C; c++) {
            se += exp((double)z[c] - mx);
            sz += (double)z[c];
        }
        const double lse = mx + log(se);
        /* -(1 - eps) log p[y] - eps/C sum_c log p[c], with log p[c] = z[c] - lse */
        total += -(1.0 - eps) * ((double)z[labels[b]] - lse) - (double)eps / C * (sz - C * lse);
        if (dlogits)
            for (int32_t c = 0; c < C; c++) {
                const double target = (c == labels[b] ? 1.0 - eps : 0.0) + (double)eps / C;
                dlogits[(int64_t)b * C + c] = (float)((exp((double)z[c] - lse) - target) / B);
            }
    }
    if (correct)
        *correct = ok;
    return B > 0 ? total / B : 0.0;
}

double fv_grad_clip(float *g, size_t n, float max_norm)
{
    double ss = 0.0;
#pragma omp parallel for reduction(+ : ss) schedule(static)
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    const double norm = sqrt(ss);
    if (max_norm > 0.0f && norm > max_norm) {
        const float coef = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            g[i] *= coef;
    }
    return norm;
}

void fv_adamw_update(float *p, const float *g, float *m, float *v, size_t n, int64_t t, float lr,
                     const FvTrainSettings *s, int decay)
{
    const float b1 = s->beta1, b2 = s->beta2;
    const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    const float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    const float shrink = decay ? 1.0f - lr * s->weight_decay : 1.0f;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        const float denom = sqrtf(v[i]) * rbc2 + s->eps;
        p[i] = p[i] * shrink - step * m[i] / denom;
    }
}

float fv_train_lr_schedule(const FvTrainSettings *s, int64_t step)
{
    if (step < 0)
        step = 0;
    if (step < s->warmup_steps)
        return s->lr * (float)(step + 1) / (float)s->warmup_steps;
    if (s->total_steps <= s->warmup_steps)
        return s->lr;
    double prog = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
    prog = prog < 0.0 ? 0.0 : prog > 1.0 ? 1.0 : prog;
    return (float)(s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * prog)));
}
