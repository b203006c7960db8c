/* Fibottention masks: CPython random reproduction (MT19937, getrandbits, _randbelow, shuffle), per-head
 * offsets and per-layer head shuffle against the reference, plans, density and Jaccard overlap.
 * Fixtures: tests/data/fib_vectors.json (made by scripts/make_fib_vectors.py from CPython's random and an
 * independent Python version of the offset rules) and tests/data/fib_offsets_N196_h12.json (the reference
 * code's output, copied by the same script). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kernels/attention.h"
#include "kernels/fibottention.h"
#include "util/util.h"
#include "testutil.h"

static json_t *load_json(const char *name)
{
    char *path = fvt_join(fvt_data_dir(), name);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        fprintf(stderr, "%s: %s (line %d)\n", path, err.text, err.line);
    free(path);
    assert_non_null(j);
    return j;
}

static void settings(FvAttnSettings *s, int32_t modified, int32_t wmin, int32_t wmax, int32_t shuffle)
{
    memset(s, 0, sizeof(*s));
    s->kind = FV_ATTN_FIB;
    s->variant = modified ? FV_FIB_MODIFIED : FV_FIB_ORIGINAL;
    s->semantics = FV_FIB_ZERO;
    s->wmin = wmin;
    s->wmax = wmax;
    s->shuffle = shuffle;
}

static void test_getrandbits(void **state)
{
    (void)state;
    json_t *root = load_json("fib_vectors.json");
    json_t *cases = json_object_get(root, "getrandbits"), *c;
    size_t i, checked = 0;
    assert_true(json_array_size(cases) >= 32);
    json_array_foreach(cases, i, c) {
        FvPyRandom r;
        int64_t seed = json_integer_value(json_object_get(c, "seed"));
        int32_t k = (int32_t)json_integer_value(json_object_get(c, "k"));
        json_t *vals = json_object_get(c, "values"), *v;
        size_t t;
        fv_pyrandom_seed(&r, seed);
        json_array_foreach(vals, t, v) {
            /* values >= 2^63 are decimal strings (jansson integers are int64) */
            uint64_t want = json_is_string(v) ? strtoull(json_string_value(v), NULL, 10)
                                              : (uint64_t)json_integer_value(v);
            uint64_t got = fv_pyrandom_getrandbits(&r, k);
            if (got != want)
                fprintf(stderr, "seed %lld k %d item %zu: got %llu want %llu\n", (long long)seed, k, t,
                        (unsigned long long)got, (unsigned long long)want);
            assert_true(got == want);
            checked++;
        }
    }
    printf("getrandbits values checked: %zu\n", checked);
    assert_true(checked >= 32 * 16);
    json_decref(root);
}

static void test_randbelow(void **state)
{
    (void)state;
    json_t *root = load_json("fib_vectors.json");
    json_t *cases = json_object_get(root, "randbelow"), *c;
    size_t i;
    assert_true(json_array_size(cases) > 0);
    json_array_foreach(cases, i, c) {
        FvPyRandom r;
        fv_pyrandom_seed(&r, json_integer_value(json_object_get(c, "seed")));
        uint64_t n = (uint64_t)json_integer_value(json_object_get(c, "n"));
        json_t *vals = json_object_get(c, "values"), *v;
        size_t t;
        json_array_foreach(vals, t, v) {
            uint64_t got = fv_pyrandom_randbelow(&r, n);
            assert_true(got < n);
            assert_true(got == (uint64_t)json_integer_value(v));
        }
    }
    json_decref(root);
}

static void test_shuffle(void **state)
{
    (void)state;
    json_t *root = load_json("fib_vectors.json");
    json_t *cases = json_object_get(root, "shuffle"), *c;
    size_t i, checked = 0;
    assert_int_equal(json_array_size(cases), 32);
    json_array_foreach(cases, i, c) {
        int64_t seed = json_integer_value(json_object_get(c, "seed"));
        json_t *perms = json_object_get(c, "perms"), *pj;
        size_t L;
        json_array_foreach(perms, L, pj) {
            int32_t n = (int32_t)json_array_size(pj), x[64], perm[64];
            assert_int_equal(n, (int32_t)L + 1);
            for (int32_t t = 0; t < n; t++)
                x[t] = t;
            FvPyRandom r;
            fv_pyrandom_seed(&r, seed);
            fv_pyrandom_shuffle(&r, x, n);
            fv_fib_head_order(seed, n, 1, perm);
            for (int32_t t = 0; t < n; t++) {
                assert_int_equal(x[t], (int32_t)json_integer_value(json_array_get(pj, (size_t)t)));
                assert_int_equal(perm[t], x[t]);
            }
            checked++;
        }
    }
    printf("shuffle permutations checked: %zu\n", checked);
    assert_int_equal(checked, 32 * 16);
    /* shuffle off: identity order */
    int32_t perm[5];
    fv_fib_head_order(3, 5, 0, perm);
    for (int32_t t = 0; t < 5; t++)
        assert_int_equal(perm[t], t);
    json_decref(root);
}

/* Compare a plan's raw and unique offsets with the expected per-slot lists @layer (JSON). */
static void check_plan_layer(const FvAttnPlan *p, json_t *layer, int32_t n)
{
    assert_int_equal((int32_t)json_array_size(layer), p->H);
    for (int32_t s = 0; s < p->H; s++) {
        json_t *want = json_array_get(layer, (size_t)s);
        int32_t cnt = (int32_t)json_array_size(want);
        assert_int_equal(p->raw_noff[s], cnt);
        assert_true(cnt <= p->raw_max);
        int used[4096] = {0};
        int32_t nuniq = 0;
        for (int32_t t = 0; t < cnt; t++) {
            int32_t o = (int32_t)json_integer_value(json_array_get(want, (size_t)t));
            assert_int_equal(p->raw_off[(size_t)s * p->raw_max + t], o);
            if (o < n && o < 4096 && !used[o]) {
                used[o] = 1;
                nuniq++;
            }
        }
        if (!p->has_cls && !used[0]) {
            used[0] = 1;
            nuniq++;
        }
        /* unique offsets: sorted, each once, all < n, exactly the set above */
        assert_int_equal(p->noff[s], nuniq);
        assert_true(p->noff[s] <= p->max_off);
        const int32_t *off = p->off + (size_t)s * p->max_off;
        for (int32_t t = 0; t < p->noff[s]; t++) {
            assert_true(off[t] >= 0 && off[t] < n);
            assert_true(used[off[t]]);
            if (t > 0)
                assert_true(off[t] > off[t - 1]);
        }
    }
}

static void test_offsets_reference(void **state)
{
    (void)state;
    json_t *root = load_json("fib_offsets_N196_h12.json");
    const char *keys[2] = {"N196_h12_mod", "N196_h12_orig"};
    for (int v = 0; v < 2; v++) {
        json_t *layers = json_object_get(root, keys[v]);
        assert_int_equal(json_array_size(layers), 12);
        for (int32_t d = 0; d < 12; d++) {
            FvAttnSettings s;
            FvAttnPlan p;
            settings(&s, v == 0, 0, 0, 1); /* defaults: wmin 5, wmax 196 // 3 */
            assert_int_equal(fv_attn_plan_init(&p, &s, d, 197, 1, 12, 64), 0);
            assert_int_equal(p.s.wmin, 5);
            assert_int_equal(p.s.wmax, 65);
            check_plan_layer(&p, json_array_get(layers, (size_t)d), 196);
            fv_attn_plan_free(&p);
        }
    }
    json_decref(root);
}

static void test_offsets_vectors(void **state)
{
    (void)state;
    json_t *root = load_json("fib_vectors.json");
    json_t *cases = json_object_get(root, "offsets"), *c;
    size_t i, nlayers = 0;
    assert_true(json_array_size(cases) > 0);
    json_array_foreach(cases, i, c) {
        int32_t n = (int32_t)json_integer_value(json_object_get(c, "N"));
        int32_t h = (int32_t)json_integer_value(json_object_get(c, "h"));
        int32_t wmin = (int32_t)json_integer_value(json_object_get(c, "wmin"));
        int32_t wmax = (int32_t)json_integer_value(json_object_get(c, "wmax"));
        int32_t mod = (int32_t)json_integer_value(json_object_get(c, "modified"));
        int32_t shuf = (int32_t)json_integer_value(json_object_get(c, "shuffle"));
        json_t *layers = json_object_get(c, "layers"), *layer;
        size_t d;
        json_array_foreach(layers, d, layer) {
            /* head by head through the low-level functions */
            int32_t perm[64], buf[FV_FIB_MAX_TERMS];
            fv_fib_head_order((int64_t)d, h, shuf, perm);
            for (int32_t s = 0; s < h; s++) {
                int32_t cnt = fv_fib_head_offsets(perm[s] + 1, h, wmin, wmax, mod, buf);
                json_t *want = json_array_get(layer, (size_t)s);
                assert_int_equal(cnt, (int32_t)json_array_size(want));
                for (int32_t t = 0; t < cnt; t++)
                    assert_int_equal(buf[t], (int32_t)json_integer_value(json_array_get(want, (size_t)t)));
            }
            /* and through a spatial plan (n patches + cls) */
            FvAttnSettings st;
            FvAttnPlan p;
            settings(&st, mod, wmin, wmax, shuf);
            assert_int_equal(fv_attn_plan_init(&p, &st, (int32_t)d, n + 1, 1, h, 16), 0);
            check_plan_layer(&p, layer, n);
            fv_attn_plan_free(&p);
            nlayers++;
        }
    }
    printf("offset layers checked: %zu\n", nlayers);
    json_decref(root);
}

static void test_offsets_edges(void **state)
{
    (void)state;
    int32_t buf[FV_FIB_MAX_TERMS];
    /* bad head indices */
    assert_true(fv_fib_head_offsets(0, 12, 5, 65, 1, buf) < 0);
    assert_true(fv_fib_head_offsets(13, 12, 5, 65, 1, buf) < 0);
    assert_true(strstr(fv_last_error(), "fv_fib_head_offsets") != NULL);
    /* h = 1: window w_max (the reference would divide by zero) */
    assert_int_equal(fv_fib_head_offsets(1, 1, 5, 100, 0, buf), 10); /* 1 2 3 5 8 13 21 34 55 89 */
    assert_int_equal(buf[9], 89);
    /* the first term stays even above the window */
    assert_int_equal(fv_fib_head_offsets(12, 12, 5, 5, 0, buf), 1);
    assert_int_equal(buf[0], 30);
    /* modified head 1 starts 0, 1, 1 */
    assert_int_equal(fv_fib_head_offsets(1, 12, 5, 65, 1, buf), 6);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[1], 1);
    assert_int_equal(buf[2], 1);
    /* a huge window ends within the term limit */
    assert_true(fv_fib_head_offsets(1, 1, 1, INT32_MAX - 1, 0, buf) > 40);

    /* N smaller than the offsets: spatial heads may have no offset at all (cls row/column remain) */
    FvAttnSettings s;
    FvAttnPlan p;
    settings(&s, 0, 0, 0, 1);
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, 5, 1, 12, 8), 0);
    int empty = 0;
    for (int32_t h = 0; h < 12; h++) {
        for (int32_t t = 0; t < p.noff[h]; t++)
            assert_true(p.off[h * p.max_off + t] < 4);
        empty += p.noff[h] == 0;
        assert_int_equal(fv_attn_plan_pairs(&p, h), fv_fib_pairs(p.raw_off + h * p.raw_max, p.raw_noff[h], 4, 1));
    }
    assert_true(empty > 0);
    fv_attn_plan_free(&p);

    /* one patch token */
    assert_int_equal(fv_attn_plan_init(&p, &s, 3, 2, 1, 3, 8), 0);
    for (int32_t h = 0; h < 3; h++)
        assert_true(p.noff[h] <= 1);
    fv_attn_plan_free(&p);

    /* temporal (no cls), T = 8: defaults w_min 1, w_max 7; offset 0 in every head, nothing >= 8 */
    settings(&s, 1, 0, 0, 1);
    assert_int_equal(fv_attn_plan_init(&p, &s, 5, 8, 0, 12, 64), 0);
    assert_int_equal(p.s.wmin, 1);
    assert_int_equal(p.s.wmax, 7);
    for (int32_t h = 0; h < 12; h++) {
        assert_true(p.noff[h] >= 1);
        assert_int_equal(p.off[h * p.max_off], 0);
        for (int32_t t = 0; t < p.noff[h]; t++)
            assert_true(p.off[h * p.max_off + t] < 8);
    }
    fv_attn_plan_free(&p);
    /* temporal T = 1: only the own frame */
    assert_int_equal(fv_attn_plan_init(&p, &s, 0, 1, 0, 4, 8), 0);
    for (int32_t h = 0; h < 4; h++) {
        assert_int_equal(p.noff[h], 1);
        assert_int_equal(p.off[h * p.max_off], 0);
    }
    fv_attn_plan_free(&p);
}

/* Count pairs by building the mask explicitly. */
static int64_t brute_pairs(const int32_t *off, int32_t noff, int32_t n, int32_t has_cls, uint8_t *mask)
{
    const int32_t N = n + has_cls;
    memset(mask, 0, (size_t)N * N);
    for (int32_t i = 0; i < N; i++)
        for (int32_t j = 0; j < N; j++) {
            if (has_cls && (i == 0 || j == 0)) {
                mask[i * N + j] = 1;
                continue;
            }
            int32_t d = abs((i - has_cls) - (j - has_cls));
            for (int32_t t = 0; t < noff; t++)
                if (off[t] == d)
                    mask[i * N + j] = 1;
        }
    int64_t c = 0;
    for (int64_t t = 0; t < (int64_t)N * N; t++)
        c += mask[t];
    return c;
}

static void test_density(void **state)
{
    (void)state;
    /* SPEC: N = 196, h = 12 keeps about 2.0% (original) / 3.8% (modified) of the N x N entries per head */
    const double want[2] = {0.038, 0.020};
    for (int v = 0; v < 2; v++) {
        FvAttnSettings s;
        FvAttnPlan p;
        settings(&s, v == 0, 0, 0, 1);
        assert_int_equal(fv_attn_plan_init(&p, &s, 0, 197, 1, 12, 64), 0);
        double avg = 0;
        for (int32_t h = 0; h < 12; h++)
            avg += fv_fib_density(p.raw_off + h * p.raw_max, p.raw_noff[h], 196, 0) / 12;
        printf("%s: mean head density %.4f (SPEC ~%.3f); with cls row/column %.4f\n",
               v == 0 ? "modified" : "original", avg, want[v], fv_attn_plan_density(&p, 0));
        assert_true(fabs(avg - want[v]) < 0.001);
        fv_attn_plan_free(&p);
    }

    /* pairs from offsets vs an explicit mask, with repeats, 0 and out-of-range offsets */
    uint8_t *mask = malloc(64 * 64);
    assert_non_null(mask);
    uint64_t rs = 7;
    for (int it = 0; it < 200; it++) {
        int32_t n = 1 + (int32_t)(fv_rand_u64(&rs) % 60), has_cls = (int32_t)(fv_rand_u64(&rs) & 1);
        int32_t off[8], noff = (int32_t)(fv_rand_u64(&rs) % 8);
        for (int32_t t = 0; t < noff; t++)
            off[t] = (int32_t)(fv_rand_u64(&rs) % 70);
        int64_t want_pairs = brute_pairs(off, noff, n, has_cls, mask);
        assert_true(fv_fib_pairs(off, noff, n, has_cls) == want_pairs);
        double dens = (double)want_pairs / ((double)(n + has_cls) * (n + has_cls));
        assert_true(fabs(fv_fib_density(off, noff, n, has_cls) - dens) < 1e-12);
    }
    free(mask);
}

static void test_jaccard(void **state)
{
    (void)state;
    const int32_t a[4] = {1, 3, 4, 7}, a2[5] = {7, 4, 3, 1, 1}, b[3] = {2, 5, 9};
    /* identical masks (order and repeats do not matter) */
    assert_true(fabs(fv_fib_jaccard(a, 4, a2, 5, 50, 0) - 1.0) < 1e-12);
    assert_true(fabs(fv_fib_jaccard(a, 4, a2, 5, 50, 1) - 1.0) < 1e-12);
    /* disjoint offsets: no shared pair without cls; only the cls row/column with it */
    assert_true(fv_fib_jaccard(a, 4, b, 3, 50, 0) == 0.0);
    int64_t pa = fv_fib_pairs(a, 4, 50, 1), pb = fv_fib_pairs(b, 3, 50, 1);
    double want = 101.0 / (double)(pa + pb - 101);
    assert_true(fabs(fv_fib_jaccard(a, 4, b, 3, 50, 1) - want) < 1e-12);
    /* empty masks */
    assert_true(fv_fib_jaccard(a, 0, b, 0, 10, 0) == 1.0);

    /* against explicit masks */
    const int32_t n = 40;
    uint8_t *ma = malloc(41 * 41), *mb = malloc(41 * 41);
    assert_non_null(ma);
    assert_non_null(mb);
    uint64_t rs = 11;
    double maxd = 0;
    for (int it = 0; it < 100; it++) {
        int32_t oa[6], ob[6], na = 1 + (int32_t)(fv_rand_u64(&rs) % 6), nb = 1 + (int32_t)(fv_rand_u64(&rs) % 6);
        int32_t has_cls = it & 1;
        for (int32_t t = 0; t < 6; t++) {
            oa[t] = (int32_t)(fv_rand_u64(&rs) % 45);
            ob[t] = (int32_t)(fv_rand_u64(&rs) % 45);
        }
        brute_pairs(oa, na, n, has_cls, ma);
        brute_pairs(ob, nb, n, has_cls, mb);
        int64_t inter = 0, uni = 0;
        for (int32_t t = 0; t < (n + has_cls) * (n + has_cls); t++) {
            inter += ma[t] && mb[t];
            uni += ma[t] || mb[t];
        }
        double w = uni ? (double)inter / (double)uni : 1.0;
        double d = fabs(fv_fib_jaccard(oa, na, ob, nb, n, has_cls) - w);
        maxd = d > maxd ? d : maxd;
    }
    printf("jaccard max abs diff %g\n", maxd);
    assert_true(maxd < 1e-12);
    free(ma);
    free(mb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getrandbits),
        cmocka_unit_test(test_randbelow),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_offsets_reference),
        cmocka_unit_test(test_offsets_vectors),
        cmocka_unit_test(test_offsets_edges),
        cmocka_unit_test(test_density),
        cmocka_unit_test(test_jaccard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
