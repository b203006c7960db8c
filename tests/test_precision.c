/* Inference precision: the tiny reference model (tests/data/tiny_hf, made by scripts/make_reference.py) on the
 * prepared weights in fp32 against the plain C reference backend (tight), in bf16 against fp32 (max |logit|
 * difference and top-1 agreement over 64 random clips, stated tolerance), oneDNN's bf16 against the plain C bf16
 * kernel; a bf16 model refuses training and saving; `--precision bf16` where bf16 cannot run is one line, exit 1;
 * a config's bf16 default: training in fp32, fp32 with a warning where bf16 cannot run, no merge across
 * precisions; bench --precision fp32,bf16 on a BF16 checkpoint. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <sys/stat.h>

#include "fibvid/fibvid.h"
#include "kernels/gemm.h"
#include "kernels/gemm_packed.h"
#include "model/forward.h"
#include "model/safetensors.h"
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

/* max |a - b|, largest |b|, and how many of the first n rows have the same arg max */
static void compare_n(const char *what, const float *a, const float *b, int32_t L, double tol, int need_agree,
                      int32_t n)
{
    double d = 0.0, big = 0.0;
    int agree = 0;
    for (int32_t k = 0; k < n; k++) {
        for (int32_t i = 0; i < L; i++) {
            d = fmax(d, fabs((double)a[k * L + i] - b[k * L + i]));
            big = fmax(big, fabs((double)b[k * L + i]));
        }
        agree += argmax(a + k * L, L) == argmax(b + k * L, L);
    }
    printf("%s: max |logit diff| %g (tol %g; largest |logit| %g), top-1 agreement %d/%d (need %d)\n", what, d, tol,
           big, agree, n, need_agree);
    assert_true(d <= tol);
    assert_true(agree >= need_agree);
}

static void compare(const char *what, const float *a, const float *b, int32_t L, double tol, int need_agree)
{
    compare_n(what, a, b, L, tol, need_agree, NCLIPS);
}

/* clips of each run of test_fold_cls_only (12 runs) */
#define NFOLD 16

static void noop_hook(void *user, const char *name, const float *data, int64_t rows, int64_t cols)
{
    (void)user, (void)name, (void)data, (void)rows, (void)cols;
}

/* As run(), with spatial attention @kind, and @hook: a (no-op) activation hook on the state, so that every block
 * computes every token (no cls-only last block). *@saved: fv_model_flops - fv_model_flops_executed. */
static float *run_kind(FvPrecision p, FvGemmBackend b, FvAttnKind kind, int hook, int32_t *L, double *saved)
{
    char *dir = fvt_join(fvt_data_dir(), "tiny_hf");
    fv_gemm_set_backend(b);
    FvModel *m = NULL;
    const FvModelLoadOptions lo = { .precision = p };
    assert_int_equal(fv_model_load_ex(&m, dir, &lo), 0);
    FvAttnSettings sp;
    fv_attn_default_settings(&sp);
    sp.kind = kind;
    assert_int_equal(fv_model_set_attention(m, &sp, NULL), 0);
    const FvModelConfig *c = fv_model_config(m);
    const int32_t T = c->num_frames, S = c->image_size;
    const int64_t n = (int64_t)T * 3 * S * S;
    float *x = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * NFOLD * c->num_labels);
    FvState *st = NULL;
    assert_int_equal(fv_state_create(&st, m), 0);
    if (hook)
        fv_state_set_hook(st, noop_hook, NULL);
    uint64_t rs = 1234;
    for (int32_t k = 0; k < NFOLD; k++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = fv_rand_normal(&rs);
        assert_int_equal(fv_state_forward(st, x, 1, T, S, S, out + k * c->num_labels), 0);
    }
    *L = c->num_labels;
    *saved = fv_model_flops(m, T, S, S) - fv_model_flops_executed(m, T, S, S);
    fv_state_close(&st);
    free(x);
    fv_model_close(&m);
    free(dir);
    fv_gemm_set_backend(FV_GEMM_DEFAULT);
    return out;
}

/* The FLOPs the packed forward leaves out of the tiny model (2 layers, D 48, I 192, T 4, 2 x 2 patches): the
 * folded temporal projection, 2 P T D^2 a layer, the last block's spatial projection and MLP on every row but
 * cls, and with @dense_q (bf16, dense) the spatial attention of the patch queries, 4 D (S^2 - S) per frame. */
static double expected_saving(int dense_q)
{
    const double D = 48, I = 192, T = 4, P = 4, S = 1 + P, Lyr = 2;
    return Lyr * 2 * P * T * D * D + 2 * (T * S - T) * D * D + 2 * (P * T) * D * I * 2 +
           (dense_q ? T * 4 * D * (S * S - S) : 0);
}

static void check_saving(const char *what, FvAttnKind kind, int bf16, double saved)
{
    const double want = expected_saving(bf16 && kind == FV_ATTN_DENSE);
    const int more = bf16 && kind == FV_ATTN_FIB; /* and the patch queries' Fibottention */
    printf("  %s: FLOPs left out %g, expected %g%s\n", what, saved, want, more ? " + the patch queries' attention" : "");
    assert_true(more ? saved > want : fabs(saved - want) <= 1e-9 * want);
}

/* Inference on prepared weights folds the temporal projection into temporal_dense and, without a hook, makes
 * only cls in the last block (in bf16 with the cls queries' attention alone where the kind allows): the same
 * logits as the plain C reference forward (which does neither) in fp32 (oneDNN) to the fp32 tolerance, and in
 * bf16 to the bf16 one, with and without the hook (every token), for a dense, a Fibottention (cls queries alone
 * too) and a SimA (the full attention: no softmax cls row) spatial attention on the two-layer tiny model; the
 * FLOPs left out as counted. (test_diag: the same logits with diagnostics as without.) */
static void test_fold_cls_only(void **state)
{
    (void)state;
    const FvAttnKind kinds[] = { FV_ATTN_DENSE, FV_ATTN_FIB, FV_ATTN_SIMA };
    const char *names[] = { "dense", "fib", "sima" };
    const int dnnl = fv_gemm_available(FV_GEMM_DNNL), bf = fv_precision_supported(FV_PRECISION_BF16);
    if (!dnnl)
        printf("fp32 prepared path skipped: built without oneDNN (fp32 runs the plain path)\n");
    const int32_t threads = fv_num_threads();
    fv_set_num_threads(1); /* 192 forwards of a tiny model: one thread, no barriers to wait at on a busy machine */
    for (int k = 0; k < 3; k++) {
        int32_t L;
        double saved;
        char what[128];
        float *ref = run_kind(FV_PRECISION_FP32, FV_GEMM_REF, kinds[k], 0, &L, &saved);
        printf("%s: the plain fp32 path leaves out %g FLOPs\n", names[k], saved);
        assert_true(saved == 0.0);
        float *f32[2] = { NULL, NULL }, *b16[2];
        for (int h = 0; h < 2; h++) {
            if (dnnl) {
                f32[h] = run_kind(FV_PRECISION_FP32, FV_GEMM_DNNL, kinds[k], h, &L, &saved);
                snprintf(what, sizeof(what), "%s fp32 prepared%s vs reference", names[k], h ? " (hook)" : "");
                compare_n(what, f32[h], ref, L, 1e-4, NFOLD, NFOLD);
                check_saving("fp32", kinds[k], 0, saved);
            }
            b16[h] = run_kind(FV_PRECISION_BF16, bf ? FV_GEMM_DNNL : FV_GEMM_REF, kinds[k], h, &L, &saved);
            check_saving("bf16", kinds[k], 1, saved);
            snprintf(what, sizeof(what), "%s bf16%s vs fp32 reference", names[k], h ? " (hook)" : "");
            compare_n(what, b16[h], ref, L, 0.1, NFOLD - 1, NFOLD);
        }
        /* the cls-only last block against the full one on the same prepared weights */
        if (dnnl)
            compare_n("  fp32 prepared, cls-only vs every token", f32[0], f32[1], L, 1e-5, NFOLD, NFOLD);
        compare_n("  bf16, cls-only vs every token", b16[0], b16[1], L, 0.02, NFOLD - 1, NFOLD);
        free(ref);
        for (int h = 0; h < 2; h++) {
            free(f32[h]);
            free(b16[h]);
        }
    }
    fv_set_num_threads(threads);
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

/* stdout of the shell command @cmd (the caller's 2>&1 and echo rc=$? gather what it checks), printed */
static char *shell(const char *cmd)
{
    char *buf = NULL;
    fvt_run(cmd, &buf, NULL);
    assert_non_null(buf);
    printf("%s", buf);
    return buf;
}

static void test_cli_no_bf16(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "FIBVID_NO_BF16=1 '%s' classify --precision bf16 -m '%s/tiny_hf' nosuch.avi 2>&1; "
             "echo rc=$?", fvt_bin(), fvt_data_dir());
    char *buf = shell(cmd);
    assert_non_null(strstr(buf, "fibvid classify: --precision bf16: this machine cannot run bf16"));
    assert_non_null(strstr(buf, "\nrc=1\n"));
    assert_ptr_equal(strchr(buf, '\n'), strstr(buf, "\nrc=1")); /* one line, then the exit code */
    free(buf);
    snprintf(cmd, sizeof(cmd), "'%s' bench --precision fp16 2>&1; echo rc=$?", fvt_bin());
    buf = shell(cmd);
    assert_non_null(strstr(buf, "bad value 'fp16' for --precision"));
    assert_non_null(strstr(buf, "rc=1\n"));
    free(buf);
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
    char *buf = shell(cmd);
    assert_non_null(strstr(buf, "recorded=1 done=2\n"));
    assert_non_null(strstr(buf, "--precision fp32 differs from the run's bf16"));
    assert_non_null(strstr(buf, "\nrc=1\n"));
    assert_non_null(strstr(buf, "rc2=0 done=12 still=1\n"));
    free(buf);
}

/* @dir/model.safetensors: tiny_hf's weights as BF16 (round to nearest even), beside its config.json: a checkpoint
 * a bf16 load converts directly and keeps no fp32 weights of. */
static void write_bf16_copy(const char *dir)
{
    char *src = fvt_join(fvt_data_dir(), "tiny_hf/model.safetensors"), *cfg = fvt_join(fvt_data_dir(), "tiny_hf/config.json");
    FvSafetensors *st = NULL;
    assert_int_equal(fv_st_open(&st, src), 0);
    json_t *hdr = json_object();
    size_t total = 0;
    for (size_t i = 0; i < fv_st_count(st); i++)
        total += (fv_st_tensor(st, i)->end - fv_st_tensor(st, i)->begin) / 2;
    uint8_t *data = malloc(total), *d = data;
    for (size_t i = 0; i < fv_st_count(st); i++) {
        const FvTensorInfo *t = fv_st_tensor(st, i);
        assert_int_equal(t->dtype, FV_DT_F32);
        const size_t n = (t->end - t->begin) / 4;
        json_t *shape = json_array();
        for (int32_t k = 0; k < t->ndim; k++)
            json_array_append_new(shape, json_integer(t->shape[k]));
        json_object_set_new(hdr, t->name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "BF16", "shape", shape,
                                                     "data_offsets", (json_int_t)(d - data),
                                                     (json_int_t)(d - data + 2 * n)));
        for (size_t k = 0; k < n; k++) {
            uint32_t u;
            memcpy(&u, (const uint8_t *)t->data + 4 * k, 4);
            u += 0x7fffu + ((u >> 16) & 1u);
            const uint16_t h = (uint16_t)(u >> 16);
            memcpy(d, &h, 2);
            d += 2;
        }
    }
    fv_st_close(&st);
    char *h = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t hl = strlen(h), pad = (8 - hl % 8) % 8;
    uint64_t len = hl + pad;
    char *out = fvt_join(dir, "model.safetensors"), *outc = fvt_join(dir, "config.json");
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    fwrite(&len, 8, 1, f);
    fwrite(h, 1, hl, f);
    fwrite("        ", 1, pad, f);
    fwrite(data, 1, total, f);
    assert_int_equal(fclose(f), 0);
    size_t n;
    char *ct = fvt_read_file(cfg, &n);
    assert_non_null(ct);
    assert_int_equal(fvt_write_file(outc, ct, n), 0);
    free(ct);
    free(h);
    json_decref(hdr);
    free(data);
    free(src);
    free(cfg);
    free(out);
    free(outc);
}

/* A model whose config says bf16 ("fibvid_precision"): train resumes and fine-tunes it in fp32 (its default is for
 * inference); on a machine without bf16 classify and info run it in fp32 and say so (a default, not an explicit
 * --precision bf16); evaluate shards of other precisions do not merge; bench --precision fp32,bf16 runs a BF16
 * checkpoint (loaded in fp32, then prepared in bf16). */
static void test_config_default_bf16(void **state)
{
    (void)state;
    char *d = fvt_tmpdir(), cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && B='%s' && \"$B\" synth -o ds -n 2 -s 3 -q -t 1 >/dev/null 2>&1 && "
             "echo '{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":128,"
             "\"num_frames\":4,\"image_size\":32,\"patch_size\":16,\"fibvid_precision\":\"bf16\"}' > c.json && "
             "\"$B\" train --ucf101 ds --config c.json -o tr --epochs 2 --stop-after 1 -t 1 -q 2>&1; echo train=$?; "
             "\"$B\" train --resume -o tr -t 1 -q 2>&1; echo resume=$?; "
             "\"$B\" train --ucf101 ds -m tr/model.safetensors -o ft --epochs 1 -t 1 -q 2>&1; echo finetune=$?; "
             "FIBVID_NO_BF16=1 \"$B\" classify -m tr/model.safetensors -t 1 ds/Blink/v_Blink_g01_c01.avi "
             ">/dev/null 2>err.txt; echo classify=$?; cat err.txt; "
             "FIBVID_NO_BF16=1 \"$B\" info -m tr/model.safetensors -f json 2>/dev/null | grep -c bf16_isa; "
             "echo info=$?",
             d, fvt_bin());
    char *buf = shell(cmd);
    assert_non_null(strstr(buf, "train=0\nresume=0\nfinetune=0\nclassify=0\n"));
    assert_non_null(strstr(buf, "its config's default precision is bf16, which this machine cannot run"));
    assert_non_null(strstr(buf, "\n0\ninfo=1\n")); /* info worked (JSON printed) and has no bf16_isa */
    free(buf);
    if (!fv_bf16_supported()) {
        printf("merge of precisions, bench on a BF16 checkpoint: skipped, this machine cannot run bf16 products\n");
        fvt_rmtree(d);
        free(d);
        return;
    }
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && B='%s' && M=tr/model.safetensors && "
             "\"$B\" evaluate --ucf101 ds --root ds -m $M --shard 1/2 --precision fp32 -o e1 -t 1 -q >/dev/null 2>&1 && "
             "\"$B\" evaluate --ucf101 ds --root ds -m $M --shard 2/2 -o e2 -t 1 -q >/dev/null 2>&1 && "
             "\"$B\" merge -o em e1 e2 -q 2>&1; echo merge=$?",
             d, fvt_bin());
    buf = shell(cmd);
    assert_non_null(strstr(buf, "precision=bf16"));
    assert_null(strstr(buf, "merge=0"));
    free(buf);
    char *h = fvt_join(d, "h");
    assert_int_equal(mkdir(h, 0755), 0);
    write_bf16_copy(h);
    for (int order = 0; order < 2; order++) {
        snprintf(cmd, sizeof(cmd), "'%s' bench -m '%s' --precision %s --iters 1 -t 1 2>&1; echo rc=$?", fvt_bin(), h,
                 order ? "bf16,fp32" : "fp32,bf16");
        buf = shell(cmd);
        assert_non_null(strstr(buf, "\nbf16 "));
        assert_non_null(strstr(buf, "\nfp32 "));
        assert_non_null(strstr(buf, "rc=0\n"));
        free(buf);
    }
    free(h);
    fvt_rmtree(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_packed),
        cmocka_unit_test(test_bf16_vs_fp32),
        cmocka_unit_test(test_fold_cls_only),
        cmocka_unit_test(test_bf16_inference_only),
        cmocka_unit_test(test_cli_no_bf16),
        cmocka_unit_test(test_evaluate_resume_precision),
        cmocka_unit_test(test_config_default_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
