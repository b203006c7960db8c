/* Inference precision: the tiny reference model (tests/data/tiny_hf, made by scripts/make_reference.py) on the
 * prepared weights in fp32 against the plain C reference backend (tight), in bf16 against fp32 (max |logit|
 * difference and top-1 agreement over 64 random clips, stated tolerance), oneDNN's bf16 against the plain C bf16
 * kernel; a bf16 model refuses training and saving; `--precision bf16` where bf16 cannot run is one line, exit 1. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fibvid/fibvid.h"
#include "kernels/gemm.h"
#include "kernels/gemm_packed.h"
#include "model/forward.h"
#include "util/util.h"
#include "testutil.h"

#define NCLIPS 64

/* logits (NCLIPS, L) of the tiny model loaded in @p under backend @b, on NCLIPS random clips (seed fixed) */
static float *run(FvPrecision p, FvGemmBackend b, int32_t *L)
{
    char *dir = fvt_join(fvt_data_dir(), "tiny_hf");
    fv_gemm_set_backend(b);
    FvModel *m = NULL;
    const FvModelLoadOptions lo = { .precision = p };
    assert_int_equal(fv_model_load_ex(&m, dir, &lo), 0);
    assert_int_equal(fv_model_precision(m), p);
    const FvModelConfig *c = fv_model_config(m);
    const int64_t n = (int64_t)c->num_frames * 3 * c->image_size * c->image_size;
    float *x = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * NCLIPS * c->num_labels);
    uint64_t st = 1234;
    for (int32_t k = 0; k < NCLIPS; k++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = fv_rand_normal(&st);
        assert_int_equal(fv_model_forward(m, x, c->num_frames, c->image_size, c->image_size, out + k * c->num_labels), 0);
    }
    *L = c->num_labels;
    free(x);
    fv_model_close(&m);
    free(dir);
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
    return out;
}

static int argmax(const float *v, int32_t n)
{
    int best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* max |a - b|, largest |b|, and how many of the NCLIPS rows have the same arg max */
static void compare(const char *what, const float *a, const float *b, int32_t L, double tol, int need_agree)
{
    double d = 0.0, big = 0.0;
    int agree = 0;
    for (int32_t k = 0; k < NCLIPS; k++) {
        for (int32_t i = 0; i < L; i++) {
            d = fmax(d, fabs((double)a[k * L + i] - b[k * L + i]));
            big = fmax(big, fabs((double)b[k * L + i]));
        }
        agree += argmax(a + k * L, L) == argmax(b + k * L, L);
    }
    printf("%s: max |logit diff| %g (tol %g; largest |logit| %g), top-1 agreement %d/%d (need %d)\n", what, d, tol,
           big, agree, NCLIPS, need_agree);
    assert_true(d <= tol);
    assert_true(agree >= need_agree);
}

static void test_fp32_packed(void **state)
{
    (void)state;
    if (!fv_gemm_available(FV_GEMM_DNNL)) {
        printf("skipped: built without oneDNN (fp32 products are the selected backend's already)\n");
        return;
    }
    int32_t L;
    float *ref = run(FV_PRECISION_FP32, FV_GEMM_REF, &L), *dnnl = run(FV_PRECISION_FP32, FV_GEMM_DNNL, &L);
    compare("fp32 prepared (oneDNN) vs reference", dnnl, ref, L, 1e-4, NCLIPS);
    free(ref);
    free(dnnl);
}

static void test_bf16_vs_fp32(void **state)
{
    (void)state;
    int32_t L;
    float *f32 = run(FV_PRECISION_FP32, FV_GEMM_REF, &L);
    /* the plain C bf16 kernel (weights prepared under the reference backend) runs everywhere */
    float *ref16 = run(FV_PRECISION_BF16, FV_GEMM_REF, &L);
    if (!fv_precision_supported(FV_PRECISION_BF16)) {
        printf("oneDNN bf16 skipped: this machine cannot run bf16 products\n");
        compare("bf16 (plain C) vs fp32", ref16, f32, L, 0.1, NCLIPS - 2);
        free(f32);
        free(ref16);
        return;
    }
    float *b16 = run(FV_PRECISION_BF16, FV_GEMM_DNNL, &L);
    /* bf16 keeps 8 bits of mantissa: each product's inputs are off by up to 2^-9 relative; the tolerance, 0.1, is
     * 2.5 % of the largest logit (about 4) and twice the 0.045 measured */
    compare("bf16 (oneDNN) vs fp32", b16, f32, L, 0.1, NCLIPS - 2);
    /* the same bf16 operands: only the accumulation order and GELU's approximation differ (a bf16-rounded
     * intermediate can flip one bf16 step, 2^-8 relative, and that carries through the layers) */
    compare("bf16 (oneDNN) vs bf16 (plain C)", b16, ref16, L, 0.02, NCLIPS - 1);
    free(f32);
    free(ref16);
    free(b16);
}

static void test_bf16_inference_only(void **state)
{
    (void)state;
    if (!fv_precision_supported(FV_PRECISION_BF16)) {
        printf("skipped: this machine cannot run bf16 products\n");
        return;
    }
    char *dir = fvt_join(fvt_data_dir(), "tiny_hf"), *tmp = fvt_tmpdir();
    char *out = fvt_join(tmp, "m.safetensors");
    FvModel *m = NULL;
    const FvModelLoadOptions lo = { .precision = FV_PRECISION_BF16 };
    assert_int_equal(fv_model_load_ex(&m, dir, &lo), 0);
    assert_int_equal(fv_model_save(m, out), FV_EINVAL);
    printf("save: %s\n", fv_last_error());
    FvState *st = NULL;
    assert_int_equal(fv_state_create_train(&st, m, 1, 4, 32, 32), FV_EINVAL);
    printf("train: %s\n", fv_last_error());
    /* back to fp32: the weights are re-read from the file's mapping */
    assert_int_equal(fv_model_set_precision(m, FV_PRECISION_FP32), 0);
    assert_int_equal(fv_model_save(m, out), 0);
    fv_model_close(&m);
    free(dir);
    free(out);
    free(tmp);
}

static void test_cli_no_bf16(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "FIBVID_NO_BF16=1 '%s' classify --precision bf16 -m '%s/tiny_hf' nosuch.avi 2>&1; "
             "echo rc=$?", fvt_bin(), fvt_data_dir());
    FILE *f = popen(cmd, "r");
    char buf[8192] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    pclose(f);
    printf("%s", buf);
    assert_non_null(strstr(buf, "fibvid classify: --precision bf16: this machine cannot run bf16"));
    assert_non_null(strstr(buf, "\nrc=1\n"));
    assert_ptr_equal(strchr(buf, '\n'), strstr(buf, "\nrc=1")); /* one line, then the exit code */
    snprintf(cmd, sizeof(cmd), "'%s' bench --precision fp16 2>&1; echo rc=$?", fvt_bin());
    f = popen(cmd, "r");
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    pclose(f);
    printf("%s", buf);
    assert_non_null(strstr(buf, "bad value 'fp16' for --precision"));
    assert_non_null(strstr(buf, "rc=1\n"));
}

/* evaluate records --precision in run.json and --resume replays it: a bf16 run stopped after 2 videos resumes
 * in bf16 without the option, and refuses --precision fp32 (one line, exit 1). */
static void test_evaluate_resume_precision(void **state)
{
    (void)state;
    if (!fv_bf16_supported()) {
        printf("evaluate --resume --precision: skipped, this machine cannot run bf16 products\n");
        skip();
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "d=$(mktemp -d) && B='%s' && \"$B\" synth -o $d/s -n 2 -s 3 -q -t 1 >/dev/null 2>&1 && "
             "FIBVID_TEST_STOP_AFTER=2 \"$B\" evaluate --root $d/s --ucf101 $d/s --precision bf16 -t 1 -o $d/e -q "
             ">/dev/null 2>&1; echo recorded=$(grep -c '\"precision\": \"bf16\"' $d/e/run.json) "
             "done=$(wc -l < $d/e/predictions.jsonl); "
             "\"$B\" evaluate --resume -o $d/e --precision fp32 -q 2>&1; echo rc=$?; "
             "\"$B\" evaluate --resume -o $d/e -q >/dev/null 2>&1; echo rc2=$? done=$(wc -l < $d/e/predictions.jsonl) "
             "still=$(grep -c '\"precision\": \"bf16\"' $d/e/run.json); rm -rf $d",
             fvt_bin());
    FILE *f = popen(cmd, "r");
    char buf[8192] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    pclose(f);
    printf("%s", buf);
    assert_non_null(strstr(buf, "recorded=1 done=2\n"));
    assert_non_null(strstr(buf, "--precision fp32 differs from the run's bf16"));
    assert_non_null(strstr(buf, "\nrc=1\n"));
    assert_non_null(strstr(buf, "rc2=0 done=12 still=1\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_packed),
        cmocka_unit_test(test_bf16_vs_fp32),
        cmocka_unit_test(test_bf16_inference_only),
        cmocka_unit_test(test_cli_no_bf16),
        cmocka_unit_test(test_evaluate_resume_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
