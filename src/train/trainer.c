/* The trainer: a model's weights in one writable block, their gradients and AdamW moments, the schedule, and
 * the optimisation step — the one forward and backward of model/forward.c on a training state, the
 * label-smoothed loss, global-norm clipping and the AdamW update (optim.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/forward.h"
#include "model/model_internal.h"
#include "model/safetensors.h"
#include "train/optim.h"
#include "train/trainer_part.h"

#include "util/util.h"

struct FvTrainer {
    FvModel *m;
    FvTrainSettings s;
    FvState *state;            /* training state: keeps the activations of the batch for the backward */
    int32_t T, H, W, L;
    int32_t nthreads;
    /* parameters: m->owned, tensors in visit order, 16-float aligned */
    float *param, *grad, *adam_m, *adam_v;
    size_t nparam;
    FvTrainTensor *tensors;
    int32_t ntensors;
    int64_t step;
    float *dlogits;            /* (max_batch, L) */
};

void fv_train_default_settings(FvTrainSettings *s)
{
    memset(s, 0, sizeof(*s));
    s->max_batch = 8;
    s->lr = 5e-4f;
    s->min_lr = 1e-6f;
    s->weight_decay = 0.05f;
    s->beta1 = 0.9f;
    s->beta2 = 0.999f;
    s->eps = 1e-8f;
    s->label_smoothing = 0.1f;
    s->clip_norm = 1.0f;
    s->castling_aux_until = 0.8f;
}

float fv_train_aux_weight(const FvTrainSettings *s, int64_t step)
{
    if (!(s->castling_aux_until > 0.0f) || s->total_steps <= 0)
        return 0.0f;
    const double w = 1.0 - (double)step / ((double)s->castling_aux_until * (double)s->total_steps);
    return w > 0.0 ? (float)w : 0.0f;
}

static int check_settings(const FvTrainSettings *s, const FvModelConfig *c)
{
    const int32_t p = c->patch_size;
    if (s->max_batch < 1 || s->max_batch > 65536)
        return fv_error(FV_EINVAL, "fv_trainer_new: max_batch %d outside 1..65536", s->max_batch);
    if (s->T < 1 || s->H < p || s->W < p || s->H % p || s->W % p)
        return fv_error(FV_EINVAL, "fv_trainer_new: clip %dx%dx%d is not a positive multiple of patch %d", s->T,
                        s->H, s->W, p);
    if (!(s->lr >= 0.0f) || !(s->min_lr >= 0.0f) || !(s->weight_decay >= 0.0f) || !(s->beta1 >= 0.0f) ||
        !(s->beta1 < 1.0f) || !(s->beta2 >= 0.0f) || !(s->beta2 < 1.0f) || !(s->eps > 0.0f) ||
        !(s->label_smoothing >= 0.0f) || !(s->label_smoothing < 1.0f) || s->warmup_steps < 0 ||
        isnan(s->clip_norm) || !(s->castling_aux_until >= 0.0f) || !(s->castling_aux_until <= 1.0f))
        return fv_error(FV_EINVAL, "fv_trainer_new: bad optimizer settings");
    if (c->num_channels != 3)
        return fv_error(FV_EINVAL, "fv_trainer_new: %d input channels (3 expected)", c->num_channels);
    return 0;
}

static int check_batch(const FvTrainer *tr, const float *clips, int32_t B, const char *fn)
{
    if (!tr || !clips)
        return fv_error(FV_EINVAL, "%s: NULL argument", fn);
    if (B < 1 || B > tr->s.max_batch)
        return fv_error(FV_EINVAL, "%s: batch of %d clips outside 1..%d", fn, B, tr->s.max_batch);
    /* one NaN would spread through the whole step (and the shared weights): refuse it up front, naming the
     * clip; the scan costs far less than the step */
    const int64_t clip = (int64_t)tr->T * 3 * tr->H * tr->W;
    int64_t bad = -1;
#pragma omp parallel for schedule(static) reduction(max : bad)
    for (int64_t i = 0; i < B * clip; i++)
        if (!isfinite(clips[i]))
            bad = bad > i ? bad : i;
    if (bad >= 0)
        return fv_error(FV_EINVAL, "%s: clip %lld of the batch has a non-finite value", fn,
                        (long long)(bad / clip));
    return 0;
}

void fv_trainer_close(FvTrainer **ptr)
{
    if (!ptr || !*ptr)
        return;
    FvTrainer *tr = *ptr;
    fv_state_close(&tr->state);
    for (int32_t i = 0; tr->tensors && i < tr->ntensors; i++)
        free((char *)tr->tensors[i].name);
    free(tr->tensors);
    fv_free(tr->grad);
    fv_free(tr->adam_m);
    fv_free(tr->adam_v);
    free(tr->dlogits);
    free(tr);
    *ptr = NULL;
}

int fv_trainer_new(FvTrainer **out, FvModel *m, const FvTrainSettings *s_in)
{
    int ret;
    if (!out || !m || !s_in)
        return fv_error(FV_EINVAL, "fv_trainer_new: NULL argument");
    *out = NULL;
    const FvModelConfig *c = &m->cfg;
    FvTrainSettings s = *s_in;
    if (s.T <= 0)
        s.T = c->num_frames;
    if (s.H <= 0)
        s.H = c->image_size;
    if (s.W <= 0)
        s.W = c->image_size;
    if ((ret = check_settings(&s, c)) < 0)
        return ret;
    FvTrainer *tr = calloc(1, sizeof(*tr));
    if (!tr)
        return fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
    tr->m = m;
    tr->s = s;
    tr->T = s.T;
    tr->H = s.H;
    tr->W = s.W;
    tr->L = c->num_labels;
    tr->nthreads = FV_MAX(1, fv_num_threads());

    FvTensorSlot *slots = NULL;
    if ((ret = fv_model_adopt_weights(m, &slots, &tr->ntensors, &tr->nparam)) < 0)
        goto fail;
    if (!(tr->tensors = calloc((size_t)tr->ntensors, sizeof(FvTrainTensor)))) {
        for (int32_t i = 0; i < tr->ntensors; i++)
            free(slots[i].name);
        free(slots);
        ret = fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < tr->ntensors; i++) {
        FvTrainTensor *t = &tr->tensors[i];
        const size_t len = strlen(slots[i].name);
        t->name = slots[i].name; /* taken over */
        t->ndim = slots[i].ndim;
        memcpy(t->shape, slots[i].shape, sizeof(t->shape));
        t->offset = slots[i].offset;
        t->count = slots[i].count;
        /* decay only matrices of products (linear, patch conv, classifier); not biases, LayerNorm or the
         * cls/position/time embeddings (timm's no_weight_decay, PySlowFast's ZERO_WD_1D_PARAM) */
        t->decay = len > 7 && !strcmp(t->name + len - 7, ".weight") && !strstr(t->name, "layernorm");
    }
    free(slots);
    tr->param = m->owned;
    tr->grad = fv_calloc(tr->nparam, sizeof(float));
    tr->adam_m = fv_calloc(tr->nparam, sizeof(float));
    tr->adam_v = fv_calloc(tr->nparam, sizeof(float));
    tr->dlogits = malloc(sizeof(float) * (size_t)s.max_batch * (size_t)tr->L);
    if (!tr->grad || !tr->adam_m || !tr->adam_v || !tr->dlogits) {
        ret = fv_error(FV_ENOMEM, "fv_trainer_new: out of memory");
        goto fail;
    }
    if ((ret = fv_state_create_train(&tr->state, m, s.max_batch, s.T, s.H, s.W)) < 0)
        goto fail;
    *out = tr;
    return 0;
fail:
    fv_trainer_close(&tr);
    return ret;
}

int fv_trainer_forward(FvTrainer *tr, const float *clips, int32_t B, float *logits)
{
    int ret;
    if ((ret = check_batch(tr, clips, B, "fv_trainer_forward")) < 0)
        return ret;
    if (!logits)
        return fv_error(FV_EINVAL, "fv_trainer_forward: NULL argument");
    fv_state_set_aux_weight(tr->state, 0.0f); /* the model as inference runs it: no auxiliary branch */
    return fv_state_forward(tr->state, clips, B, tr->T, tr->H, tr->W, logits);
}

/* Forward, loss and backward of a batch: the gradients in tr->grad, the logits in the state. */
static int forward_backward(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, float *loss,
                            float *logits, int32_t *correct)
{
    int ret;
    if ((ret = check_batch(tr, clips, B, "fv_trainer_backward")) < 0)
        return ret;
    if (!labels)
        return fv_error(FV_EINVAL, "fv_trainer_backward: NULL labels");
    for (int32_t b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= tr->L)
            return fv_error(FV_EINVAL, "fv_trainer_backward: label %d of clip %d outside 0..%d", labels[b], b,
                            tr->L - 1);
    float *lg = logits ? logits : tr->dlogits; /* the logits land somewhere before dlogits overwrites them */
    fv_state_set_aux_weight(tr->state, fv_train_aux_weight(&tr->s, tr->step));
    if ((ret = fv_state_forward(tr->state, clips, B, tr->T, tr->H, tr->W, lg)) < 0)
        return ret;
    const float *z = fv_state_logits(tr->state);
    const double l = fv_loss_ce_smooth(z, labels, B, tr->L, tr->s.label_smoothing, tr->dlogits, correct);
    if (loss)
        *loss = (float)l;
    memset(tr->grad, 0, sizeof(float) * tr->nparam);
    return fv_state_backward(tr->state, tr->dlogits, tr->grad, tr->param);
}

int fv_trainer_backward(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, float *loss,
                        float *logits)
{
    return forward_backward(tr, clips, labels, B, loss, logits, NULL);
}

float fv_trainer_lr(const FvTrainer *tr, int64_t step)
{
    return fv_train_lr_schedule(&tr->s, step);
}

size_t fv_trainer_num_params(const FvTrainer *tr)
{
    return tr->nparam;
}

float *fv_trainer_params(FvTrainer *tr)
{
    return tr->param;
}

float *fv_trainer_grads(FvTrainer *tr)
{
    return tr->grad;
}

int32_t fv_trainer_num_tensors(const FvTrainer *tr)
{
    return tr->ntensors;
}

const FvTrainTensor *fv_trainer_tensor(const FvTrainer *tr, int32_t i)
{
    return i >= 0 && i < tr->ntensors ? &tr->tensors[i] : NULL;
}

void fv_trainer_optim_state(FvTrainer *tr, FvOptimState *st)
{
    st->m = tr->adam_m;
    st->v = tr->adam_v;
    st->n = tr->nparam;
    st->step = tr->step;
}

void fv_trainer_set_step(FvTrainer *tr, int64_t step)
{
    tr->step = step < 0 ? 0 : step;
}

int fv_trainer_grad_part(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t n, int32_t total,
                         double *loss_sum, int32_t *correct)
{
    float loss = 0.0f;
    int ret;
    *loss_sum = 0.0;
    *correct = 0;
    if (!tr || n < 0 || total < 1 || n > total)
        return fv_error(FV_EINVAL, "fv_trainer_grad_part: %d of %d clips", n, total);
    if (n == 0) { /* this rank's share of the step is empty: it adds nothing to the sum */
        memset(tr->grad, 0, sizeof(float) * tr->nparam);
        return 0;
    }
    if ((ret = forward_backward(tr, clips, labels, n, &loss, NULL, correct)) < 0)
        return ret;
    *loss_sum = (double)loss * n;
    if (n != total) { /* the mean over @total clips is the sum over the parts of (n / total) x each part's mean */
        const float w = (float)n / (float)total;
#pragma omp parallel for schedule(static) num_threads(tr->nthreads)
        for (size_t i = 0; i < tr->nparam; i++)
            tr->grad[i] *= w;
    }
    return 0;
}

int fv_trainer_apply(FvTrainer *tr, float loss, int32_t correct, FvStepStats *out)
{
    const double norm = fv_grad_clip(tr->grad, tr->nparam, tr->s.clip_norm);
    const float lr = fv_trainer_lr(tr, tr->step);
    if (out) {
        out->loss = loss;
        out->grad_norm = (float)norm;
        out->lr = lr;
        out->correct = correct;
        out->step = tr->step;
        out->ms = 0.0;
    }
    if (!isfinite(loss) || !isfinite(norm))
        return fv_error(FV_ERANGE, "fv_trainer_step: non-finite loss %g or gradient norm %g at step %lld; update "
                        "skipped", (double)loss, norm, (long long)tr->step);
    tr->step++;
#pragma omp parallel for schedule(dynamic, 1) num_threads(tr->nthreads)
    for (int32_t i = 0; i < tr->ntensors; i++) {
        const FvTrainTensor *t = &tr->tensors[i];
        fv_adamw_update(tr->param + t->offset, tr->grad + t->offset, tr->adam_m + t->offset,
                        tr->adam_v + t->offset, t->count, tr->step, lr, &tr->s, t->decay);
    }
    if (out)
        out->step = tr->step;
    return 0;
}

int fv_trainer_step(FvTrainer *tr, const float *clips, const int32_t *labels, int32_t B, FvStepStats *out)
{
    const double t0 = fv_time_ms();
    float loss = 0.0f;
    int32_t correct = 0;
    int ret;
    if ((ret = forward_backward(tr, clips, labels, B, &loss, NULL, &correct)) < 0)
        return ret;
    if ((ret = fv_trainer_apply(tr, loss, correct, out)) < 0)
        return ret;
    if (out)
        out->ms = fv_time_ms() - t0;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* optimizer state checkpoints: flat F32 tensors                                                          */

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
