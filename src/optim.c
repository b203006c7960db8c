/* Optimisation pieces of training: label-smoothed cross-entropy and its gradient, global-norm gradient
 * clipping, AdamW with decoupled weight decay (torch.optim.AdamW), the linear warm-up + cosine schedule,
 * and saving / restoring the optimizer state as flat F32 tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "safetensors.h"
#include "train.h"

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

int fv_trainer_save_state(const FvTrainer *tr, const char *path)
{
    if (!tr || !path)
        return fv_error(FV_EINVAL, "fv_trainer_save_state: NULL argument");
    FvOptimState st;
    fv_trainer_optim_state((FvTrainer *)tr, &st); /* read only */
    FvStWriteTensor t[2];
    memset(t, 0, sizeof(t));
    t[0].name = "adam.m";
    t[1].name = "adam.v";
    t[0].ndim = t[1].ndim = 1;
    t[0].shape[0] = t[1].shape[0] = (int64_t)st.n;
    t[0].data = st.m;
    t[1].data = st.v;
    char step[32], np[32];
    snprintf(step, sizeof(step), "%lld", (long long)st.step);
    snprintf(np, sizeof(np), "%zu", st.n);
    const char *keys[] = { "format", "step", "num_params" };
    const char *vals[] = { "fibvid-optim-adamw", step, np };
    return fv_st_write(path, t, 2, keys, vals, 3);
}

int fv_trainer_load_state(FvTrainer *tr, const char *path)
{
    FvSafetensors *f = NULL;
    float *mv = NULL;
    int ret;
    if (!tr || !path)
        return fv_error(FV_EINVAL, "fv_trainer_load_state: NULL argument");
    if ((ret = fv_st_open(&f, path)) < 0)
        return ret;
    FvOptimState st;
    fv_trainer_optim_state(tr, &st);
    const char *fmt = fv_st_metadata(f, "format"), *step = fv_st_metadata(f, "step");
    char *end = NULL;
    long long stepv = step ? strtoll(step, &end, 10) : -1;
    if (!fmt || strcmp(fmt, "fibvid-optim-adamw") || !step || !end || *end || stepv < 0) {
        ret = fv_error(FV_EINVAL, "%s: not a fibvid optimizer state (format/step metadata)", path);
        goto done;
    }
    const int64_t shape[1] = { (int64_t)st.n };
    const float *src = NULL;
    /* read both before touching the trainer, so a bad file leaves the state as it was */
    if (!(mv = fv_malloc(sizeof(float) * 2 * (st.n ? st.n : 1)))) {
        ret = fv_error(FV_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((ret = fv_st_get_f32(f, "adam.m", 1, shape, mv, &src)) < 0)
        goto done;
    if (src != mv)
        memcpy(mv, src, sizeof(float) * st.n);
    if ((ret = fv_st_get_f32(f, "adam.v", 1, shape, mv + st.n, &src)) < 0)
        goto done;
    if (src != mv + st.n)
        memcpy(mv + st.n, src, sizeof(float) * st.n);
    memcpy(st.m, mv, sizeof(float) * st.n);
    memcpy(st.v, mv + st.n, sizeof(float) * st.n);
    fv_trainer_set_step(tr, (int64_t)stepv);
done:
    fv_free(mv);
    fv_st_close(&f);
    return ret;
}
