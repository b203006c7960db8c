/* An outside program: built against the installed libfibvid through pkg-config alone (tests/test_install.sh),
 * it classifies a clip with a model through the public API only — one state per thread, two threads on one
 * model, and checks that both see what one thread sees.
 *
 * usage: classify_clip MODEL CLIP */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <fibvid/fibvid.h>

typedef struct Job {
    const FvModel *model;
    const char *clip;
    FvPredictResult result;
    int ret;
} Job;

static void *classify(void *arg)
{
    Job *j = arg;
    FvState *st = NULL;
    FvPredictSettings ps;
    fv_predict_default_settings(&ps);
    ps.top_k = 3;
    if ((j->ret = fv_state_create(&st, j->model)) < 0)
        return NULL;
    j->ret = fv_predict_file(st, j->clip, &ps, &j->result, NULL);
    fv_state_close(&st);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL CLIP\n", argv[0]);
        return 1;
    }
    FvModel *m = NULL;
    if (fv_model_load(&m, argv[1]) < 0) {
        fprintf(stderr, "%s\n", fv_last_error());
        return 2;
    }
    Job one = { .model = m, .clip = argv[2] }, two[2] = { { .model = m, .clip = argv[2] }, { .model = m, .clip = argv[2] } };
    classify(&one);
    if (one.ret < 0) {
        fprintf(stderr, "%s\n", fv_last_error());
        fv_model_close(&m);
        return 2;
    }
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, classify, &two[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    int same = 1;
    for (int i = 0; i < 2; i++)
        same &= two[i].ret == 0 &&
                !memcmp(two[i].result.probs, one.result.probs, sizeof(float) * (size_t)one.result.num_labels);
    printf("fibvid %s, %s\n", fv_version(), argv[2]);
    for (int32_t r = 0; r < one.result.k; r++)
        printf("%d %.4f %s\n", r + 1, one.result.probs[one.result.top[r]], fv_model_label(m, one.result.top[r]));
    printf("two threads on one model: %s\n", same ? "same" : "DIFFERENT");
    fv_predict_result_free(&one.result);
    for (int i = 0; i < 2; i++)
        fv_predict_result_free(&two[i].result);
    fv_model_close(&m);
    return same ? 0 : 3;
}
