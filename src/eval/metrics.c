/* Accuracy metrics of an evaluation: per-video top-k from probabilities, then top-1, top-5, mean class
 * accuracy, per-class counts and the confusion matrix. */
#include <math.h>
#include <string.h>

#include "fibvid/eval.h"
#include "util/util.h"

struct FvMetrics {
    int32_t num_classes;
    int64_t evaluated, failed, top1, top5;
    int64_t *count;     // (C) evaluated videos per true class
    int64_t *hit1;      // (C)
    int64_t *hit5;      // (C)
    int64_t *confusion; // (C, C + 1) rows true class, columns predicted class, last = no dataset class
};

int fv_prediction_from_probs(FvPrediction *p, const float *probs, int32_t num_labels, int64_t index,
                             int32_t label, const int32_t *map, int32_t num_classes)
{
    if (!p || !probs || !map || num_labels <= 0 || label < 0 || label >= num_classes || index < 0)
        return fv_error(FV_EINVAL, "fv_prediction_from_probs: invalid argument");
    for (int32_t c = 0; c < num_classes; c++)
        if (map[c] < 0 || map[c] >= num_labels)
            return fv_error(FV_EINVAL, "fv_prediction_from_probs: class %d maps to no model label", c);
    memset(p, 0, sizeof(*p));
    p->index = index;
    p->label = label;
    p->target = map[label];
    p->k = FV_MIN(FV_EVAL_TOPK, num_labels);
    /* partial selection: strict '>' keeps the lower index first on ties; NaN ranks last */
    for (int32_t r = 0; r < p->k; r++) {
        int32_t best = -1;
        for (int32_t j = 0; j < num_labels; j++) {
            int taken = 0;
            for (int32_t q = 0; q < r; q++)
                taken |= p->top[q] == j;
            if (taken)
                continue;
            if (best < 0 || probs[j] > probs[best] || (isnan(probs[best]) && !isnan(probs[j])))
                best = j;
        }
        p->top[r] = best;
        p->prob[r] = probs[best];
    }
    p->pred_class = -1;
    for (int32_t c = 0; c < num_classes; c++) {
        if (map[c] == p->top[0]) {
            p->pred_class = c;
            break;
        }
    }
    return 0;
}

int fv_metrics_create(FvMetrics **out, int32_t num_classes)
{
    if (!out || num_classes <= 0 || num_classes > 1000000)
        return fv_error(FV_EINVAL, "fv_metrics_create: invalid number of classes %d", num_classes);
    FvMetrics *m = fv_calloc(1, sizeof(*m));
    if (!m)
        goto fail;
    m->num_classes = num_classes;
    m->count = fv_calloc((size_t)num_classes, sizeof(int64_t));
    m->hit1 = fv_calloc((size_t)num_classes, sizeof(int64_t));
    m->hit5 = fv_calloc((size_t)num_classes, sizeof(int64_t));
    m->confusion = fv_calloc((size_t)num_classes * (size_t)(num_classes + 1), sizeof(int64_t));
    if (!m->count || !m->hit1 || !m->hit5 || !m->confusion)
        goto fail;
    *out = m;
    return 0;
fail:
    fv_metrics_free(&m);
    return fv_error(FV_ENOMEM, "fv_metrics_create: out of memory (%d classes)", num_classes);
}

int fv_metrics_add(FvMetrics *m, const FvPrediction *p)
{
    if (!m || !p)
        return fv_error(FV_EINVAL, "fv_metrics_add: NULL argument");
    const int32_t C = m->num_classes;
    if (p->label < 0 || p->label >= C || p->pred_class < -1 || p->pred_class >= C || p->k < 1 ||
        p->k > FV_EVAL_TOPK)
        return fv_error(FV_EINVAL, "fv_metrics_add: video %lld: class %d / predicted class %d / k %d out of range",
                        (long long)p->index, p->label, p->pred_class, p->k);
    int hit1 = p->top[0] == p->target, hit5 = 0;
    for (int32_t r = 0; r < p->k; r++)
        hit5 |= p->top[r] == p->target;
    m->evaluated++;
    m->top1 += hit1;
    m->top5 += hit5;
    m->count[p->label]++;
    m->hit1[p->label] += hit1;
    m->hit5[p->label] += hit5;
    m->confusion[(size_t)p->label * (size_t)(C + 1) + (size_t)(p->pred_class < 0 ? C : p->pred_class)]++;
    return 0;
}

void fv_metrics_add_failure(FvMetrics *m)
{
    if (m)
        m->failed++;
}

void fv_metrics_summary(const FvMetrics *m, FvMetricsSummary *s)
{
    if (!s)
        return;
    memset(s, 0, sizeof(*s));
    if (!m)
        return;
    s->num_evaluated = m->evaluated;
    s->num_failed = m->failed;
    s->top1_correct = m->top1;
    s->top5_correct = m->top5;
    if (m->evaluated) {
        s->top1_acc = 100.0 * (double)m->top1 / (double)m->evaluated;
        s->top5_acc = 100.0 * (double)m->top5 / (double)m->evaluated;
    }
    /* MMAction2's mean_class_accuracy: classes without videos are left out, not counted as 0 */
    double sum = 0;
    for (int32_t c = 0; c < m->num_classes; c++) {
        if (m->count[c]) {
            sum += (double)m->hit1[c] / (double)m->count[c];
            s->classes_present++;
        }
    }
    if (s->classes_present)
        s->mean_class_acc = 100.0 * sum / s->classes_present;
}

int fv_metrics_class(const FvMetrics *m, int32_t c, int64_t *count, int64_t *top1, int64_t *top5)
{
    if (!m || c < 0 || c >= m->num_classes)
        return fv_error(FV_EINVAL, "fv_metrics_class: class %d out of range", c);
    if (count)
        *count = m->count[c];
    if (top1)
        *top1 = m->hit1[c];
    if (top5)
        *top5 = m->hit5[c];
    return 0;
}

const int64_t *fv_metrics_confusion(const FvMetrics *m)
{
    return m ? m->confusion : NULL;
}

void fv_metrics_free(FvMetrics **m)
{
    if (!m || !*m)
        return;
    fv_free((*m)->count);
    fv_free((*m)->hit1);
    fv_free((*m)->hit5);
    fv_free((*m)->confusion);
    fv_free(*m);
    *m = NULL;
}
