/* Data-parallel `fibvid train` over MPI (mpirun --oversubscribe -np 2), end to end on a tiny `fibvid synth` set
 * written into a temporary directory:
 *  - 2 ranks give the weights of 1 process with the same global batch, within 1e-5 relative (L2 over every
 *    tensor): the summation order of the gradients is the only difference;
 *  - a run stopped after epoch 1 by one process resumes with 2 ranks, and the reverse, to the same weights;
 *  - a rank that dies (test hook FIBVID_TEST_KILL_AT=RANK,STEP: SIGKILL) stops the job, the last checkpoint
 *    stays whole and resumes;
 *  - a rank that cannot read a clip the other read (its --root lacks one file) stops every rank with one line
 *    naming the rank and the clip, exit code 2;
 *  - mpirun -np 2 fibvid evaluate merges its rank shards into the files of one process;
 *  - a start as one of several processes that cannot become ranks is refused (exit 1), in every build.
 * The others are skipped, saying why, when this build has no MPI or mpirun is not installed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fibvid/dist.h"
#include "model/safetensors.h"
#include "testutil.h"

static char *g_tmp;  /* everything lives here */
static char *g_data; /* `fibvid synth` output */
static const char *g_skip; /* why the tests cannot run, or NULL */

#define MPIRUN "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 " \
               "timeout 120 mpirun --oversubscribe --bind-to none"
#define ARGS "--config test --epochs 2 -b 8 --lr 3e-3 --warmup 0.5 --seed 7 -t 1 -q --log-every 1"

/* Run "PREFIX 'fibvid' ARGS" (ARGS a format); returns the exit code, output strings malloc'd when asked for. */
static int run(char **out, char **err, const char *prefix, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int run(char **out, char **err, const char *prefix, const char *fmt, ...)
{
    char args[8192], cmd[12000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s '%s' %s", prefix, fvt_bin(), args);
    return fvt_run(cmd, out, err);
}

/* Relative L2 difference of every tensor of two safetensors files together; -1 when they cannot be compared. */
static double rel_diff(const char *a_path, const char *b_path, double *max_abs)
{
    FvSafetensors *a = NULL, *b = NULL;
    double num = 0.0, den = 0.0;
    *max_abs = 0.0;
    if (fv_st_open(&a, a_path) < 0 || fv_st_open(&b, b_path) < 0 || fv_st_count(a) != fv_st_count(b)) {
        fv_st_close(&a);
        fv_st_close(&b);
        return -1.0;
    }
    for (size_t i = 0; i < fv_st_count(a); i++) {
        const FvTensorInfo *ta = fv_st_tensor(a, i), *tb = fv_st_find(b, ta->name);
        if (!tb || ta->dtype != FV_DT_F32 || tb->dtype != FV_DT_F32 || ta->end - ta->begin != tb->end - tb->begin) {
            num = -1.0;
            break;
        }
        const float *x = ta->data, *y = tb->data;
        for (size_t k = 0; k < (ta->end - ta->begin) / sizeof(float); k++) {
            const double d = (double)x[k] - (double)y[k];
            num += d * d;
            den += (double)x[k] * x[k];
            *max_abs = fmax(*max_abs, fabs(d));
        }
    }
    fv_st_close(&a);
    fv_st_close(&b);
    return num < 0 ? -1.0 : sqrt(num / (den > 0 ? den : 1.0));
}

static void expect_same(const char *what, const char *dir_a, const char *dir_b)
{
    char *pa = fvt_join(dir_a, "model.safetensors"), *pb = fvt_join(dir_b, "model.safetensors");
    double max_abs;
    const double rel = rel_diff(pa, pb, &max_abs);
    printf("%s: weights differ by %.3g relative (L2), %.3g at most; tolerance 1e-5 relative\n", what, rel, max_abs);
    assert_true(rel >= 0.0 && rel <= 1e-5);
    free(pa);
    free(pb);
}

static int setup(void **state)
{
    (void)state;
    if (!fv_dist_built()) {
        g_skip = "this build has no MPI (-Dmpi=disabled, or no libopenmpi-dev when meson set it up)";
        return 0;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        g_skip = "mpirun is not installed (Debian: openmpi-bin)";
        return 0;
    }
    g_tmp = fvt_tmpdir();
    g_data = fvt_join(g_tmp, "synth");
    char *err = NULL;
    /* 12 classes x 8 clips (2 groups: 1 train, 1 test), 64x48, about a second each */
    int rc = run(NULL, &err, "", "synth -o '%s' -n 8 --size 64x48 --seconds 1:1.2 -s 5 -q -t 2", g_data);
    if (rc != 0)
        fail_msg("fibvid synth: %s", err ? err : "");
    free(err);
    /* the reference: one process, 2 epochs of 6 steps of 8 clips */
    char *o1 = fvt_join(g_tmp, "one");
    if ((rc = run(NULL, &err, "", "train --ucf101 '%s' -o '%s' " ARGS, g_data, o1)) != 0)
        fail_msg("fibvid train (1 process): %s", err ? err : "");
    free(err);
    free(o1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_tmp)
        fvt_rmtree(g_tmp);
    free(g_tmp);
    free(g_data);
    return 0;
}

#define SKIP_UNLESS_MPI()                                                                                         \
    do {                                                                                                          \
        if (g_skip) {                                                                                             \
            printf("skipped: %s\n", g_skip);                                                                      \
            skip();                                                                                               \
        }                                                                                                         \
    } while (0)

static void test_two_ranks_equal_one(void **state)
{
    (void)state;
    SKIP_UNLESS_MPI();
    char *o1 = fvt_join(g_tmp, "one"), *o2 = fvt_join(g_tmp, "two");
    char *err = NULL, *out = NULL;
    int rc = run(&out, &err, MPIRUN " -np 2", "train --ucf101 '%s' -o '%s' " ARGS, g_data, o2);
    if (rc != 0)
        fail_msg("mpirun -np 2 fibvid train: rc %d: %s", rc, err ? err : "");
    expect_same("2 ranks vs 1 process, 12 steps of 8 clips", o1, o2);
    /* rank 0 logs for both: the step lines say how many ranks and how long the gradient sum took */
    char *log = fvt_join(o2, "train.jsonl");
    char *text = fvt_read_file(log, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"ranks\":2"));
    assert_non_null(strstr(text, "\"comm_ms\""));
    free(text);
    free(log);
    free(out);
    free(err);
    free(o1);
    free(o2);
}

/* epoch 1 by @first_prefix, epoch 2 (--resume) by @second_prefix: the weights of the uninterrupted run */
static void stop_and_resume(const char *name, const char *first_prefix, const char *second_prefix)
{
    char *o1 = fvt_join(g_tmp, "one"), *o = fvt_join(g_tmp, name);
    char *err = NULL;
    int rc = run(NULL, &err, first_prefix, "train --ucf101 '%s' -o '%s' " ARGS " --stop-after 1", g_data, o);
    if (rc != 0)
        fail_msg("%s: first epoch: rc %d: %s", name, rc, err ? err : "");
    free(err);
    err = NULL;
    rc = run(NULL, &err, second_prefix, "train --resume -o '%s' -q", o);
    if (rc != 0)
        fail_msg("%s: --resume: rc %d: %s", name, rc, err ? err : "");
    char what[256];
    snprintf(what, sizeof(what), "epoch 1 by %s, resumed by %s, vs 1 process", first_prefix[0] ? "2 ranks" :
             "1 process", second_prefix[0] ? "2 ranks" : "1 process");
    expect_same(what, o1, o);
    free(err);
    free(o1);
    free(o);
}

static void test_resume_one_to_two(void **state)
{
    (void)state;
    SKIP_UNLESS_MPI();
    stop_and_resume("one-two", "", MPIRUN " -np 2");
}

static void test_resume_two_to_one(void **state)
{
    (void)state;
    SKIP_UNLESS_MPI();
    stop_and_resume("two-one", MPIRUN " -np 2", "");
}

static void test_dead_rank(void **state)
{
    (void)state;
    SKIP_UNLESS_MPI();
    char *o1 = fvt_join(g_tmp, "one"), *o = fvt_join(g_tmp, "dead");
    char *err = NULL;
    /* rank 1 dies after step 9 (epoch 2): the job stops; the checkpoint of epoch 1 stays and resumes */
    int rc = run(NULL, &err, "FIBVID_TEST_KILL_AT=1,9 " MPIRUN " -np 2", "train --ucf101 '%s' -o '%s' " ARGS,
                 g_data, o);
    printf("rank 1 killed at step 9: mpirun rc %d\n", rc);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, 124); /* stopped, not hung until the timeout */
    char *ck = fvt_join(o, "checkpoint.json"), *text = fvt_read_file(ck, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"epoch\": 1,"));
    free(text);
    free(err);
    err = NULL;
    rc = run(NULL, &err, MPIRUN " -np 2", "train --resume -o '%s' -q", o);
    if (rc != 0)
        fail_msg("--resume after a dead rank: rc %d: %s", rc, err ? err : "");
    expect_same("resumed after a dead rank vs 1 process", o1, o);
    free(ck);
    free(err);
    free(o1);
    free(o);
}

static void test_rank_cannot_read(void **state)
{
    (void)state;
    SKIP_UNLESS_MPI();
    /* rank 1's --root is a copy of the data set without one clip (--root may differ between ranks: nodes mount
     * the data at different places) */
    char *root2 = fvt_join(g_tmp, "synth-short"), *o = fvt_join(g_tmp, "unread");
    char cmd[8192], *err = NULL;
    snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s' && rm '%s/Blink/v_Blink_g01_c01.avi'", g_data, root2, root2);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s -np 1 '%s' train --ucf101 '%s' -o '%s' " ARGS " : -np 1 '%s' train --ucf101 '%s' "
             "--root '%s' -o '%s' " ARGS, MPIRUN, fvt_bin(), g_data, o, fvt_bin(), g_data, root2, o);
    const int rc = fvt_run(cmd, NULL, &err);
    printf("rank 1 without one clip: rc %d, stderr:\n%s\n", rc, err ? err : "");
    assert_int_equal(rc, 2);
    assert_non_null(err);
    const char *line = strstr(err, "fibvid train: rank 1 of 2: ");
    assert_non_null(line);
    assert_non_null(strstr(line, "v_Blink_g01_c01.avi cannot be read on this rank"));
    assert_null(strstr(line + 1, "fibvid train: rank 1 of 2: ")); /* one message, from rank 0 */
    free(err);
    free(root2);
    free(o);
}

/* mpirun -np 2 fibvid evaluate: each rank a shard, rank 0 merges into --out: the files of one process */
static void test_evaluate_ranks(void **state)
{
    (void)state;
    SKIP_UNLESS_MPI();
    char *model = fvt_join(g_tmp, "one/model.safetensors"), *e1 = fvt_join(g_tmp, "eval-one");
    char *e2 = fvt_join(g_tmp, "eval-two"), *err = NULL, *out = NULL;
    int rc = run(NULL, &err, "", "evaluate -m '%s' --ucf101 '%s' --root '%s' --out '%s' -q -t 1", model, g_data,
                 g_data, e1);
    if (rc != 0)
        fail_msg("evaluate (1 process): rc %d: %s", rc, err ? err : "");
    free(err);
    err = NULL;
    rc = run(&out, &err, MPIRUN " -np 2", "evaluate -m '%s' --ucf101 '%s' --root '%s' --out '%s' -t 1", model,
             g_data, g_data, e2);
    printf("mpirun -np 2 fibvid evaluate: rc %d: %s", rc, out ? out : "");
    if (rc != 0)
        fail_msg("mpirun -np 2 fibvid evaluate: rc %d: %s", rc, err ? err : "");
    static const char *const files[] = { "per_class.csv", "confusion.csv", "shard-1/summary.json",
                                         "shard-2/summary.json" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *pb = fvt_join(e2, files[i]), *b = fvt_read_file(pb, NULL);
        if (!b)
            fail_msg("%s: missing", pb);
        if (i < 2) { /* the merged files are one process's, byte for byte */
            char *pa = fvt_join(e1, files[i]), *a = fvt_read_file(pa, NULL);
            assert_non_null(a);
            assert_string_equal(a, b);
            free(a);
            free(pa);
        }
        free(b);
        free(pb);
    }
    printf("per_class.csv and confusion.csv of the 2 merged rank shards equal one process's\n");
    free(out);
    free(err);
    free(model);
    free(e1);
    free(e2);
}

/* A start as one of 2 processes that cannot become 2 ranks (a build without MPI, or an srun step without an
 * MPI plugin: MPI sees 1 process) is refused with one line, exit 1, before anything is written. Runs in
 * every build. */
static void test_launch_refused(void **state)
{
    (void)state;
    char *err = NULL, *tmp = fvt_tmpdir(), *o = fvt_join(tmp, "out");
    const int rc = run(NULL, &err, "SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=0 timeout 60",
                       "train --ucf101 '%s' -o '%s' --config test --epochs 1 -q", tmp, o);
    printf("started as 1 of 2 srun tasks without MPI wiring (%s build): rc %d: %s", fv_dist_built() ? "MPI" :
           "no-MPI", rc, err ? err : "(no stderr)\n");
    assert_int_equal(rc, 1);
    assert_non_null(err);
    assert_non_null(strstr(err, "fibvid train: started by srun as "));
    assert_non_null(strstr(err, fv_dist_built() ? "but MPI sees 1" : "built without MPI"));
    struct stat st;
    assert_int_not_equal(stat(o, &st), 0); /* nothing written */
    free(err);
    fvt_rmtree(tmp);
    free(tmp);
    free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ranks_equal_one),
        cmocka_unit_test(test_resume_one_to_two),
        cmocka_unit_test(test_resume_two_to_one),
        cmocka_unit_test(test_dead_rank),
        cmocka_unit_test(test_rank_cannot_read),
        cmocka_unit_test(test_evaluate_ranks),
        cmocka_unit_test(test_launch_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
