/* Large buffers on huge pages (src/util/hugemem.c) and fv_malloc's use of them: alignment, zeroing, sizes that
 * are not multiples of a page, the address table under many live blocks (and its fallback to the C heap when
 * full), the pool's chunks (buffers side by side without overlap, a buffer larger than a chunk, chunks given
 * back with their last buffer), and all of it from several threads at once. Whether the kernel backs the
 * mappings with huge pages depends on its THP setting: printed, not asserted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define MiB ((size_t)1 << 20)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4093)
        p[i] = (unsigned char)(seed + i);
    p[n - 1] = (unsigned char)seed;
}

static int check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4093)
        if (p[i] != (unsigned char)(seed + i))
            return 0;
    return p[n - 1] == (unsigned char)seed;
}

/* kB of huge pages backing the mapping that holds @p (/proc/self/smaps), or -1 */
static long huge_kb(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    int in = 0;
    long kb = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

static void test_malloc_sizes(void **state)
{
    (void)state;
    const size_t sizes[] = { 1, 63, 64, 4097, MiB, FV_HUGE_MIN - 1, FV_HUGE_MIN, FV_HUGE_MIN + 1, 5 * MiB + 123,
                             17 * MiB };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = fv_malloc(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        fill(p, sizes[i], (unsigned)i);
        assert_true(check(p, sizes[i], (unsigned)i));
        unsigned char *z = fv_calloc(sizes[i], 1);
        assert_non_null(z);
        for (size_t k = 0; k < sizes[i]; k += 511)
            assert_int_equal(z[k], 0);
        assert_int_equal(z[sizes[i] - 1], 0);
        if (sizes[i] == 17 * MiB)
            printf("test_hugemem: a 17 MiB block at %p (%s2 MiB-aligned): %ld kB in huge pages once written\n",
                   (void *)p, (uintptr_t)p % FV_HUGE_MIN ? "not " : "", huge_kb(p));
        fv_free(z);
        fv_free(p);
    }
    fv_free(NULL);
    assert_null(fv_malloc(0));
    assert_null(fv_calloc(SIZE_MAX / 2, 4)); /* overflow */
    /* sizes the 64-byte rounding would wrap to a tiny block: NULL, never a block smaller than asked for */
    assert_null(fv_malloc(SIZE_MAX));
    assert_null(fv_malloc(SIZE_MAX - 10));
    assert_null(fv_calloc(1, SIZE_MAX - 1));
}

static void test_huge_alloc(void **state)
{
    (void)state;
    size_t mapped = 0;
    unsigned char *p = fv_huge_alloc(3 * MiB + 5, &mapped);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % (2 * MiB), 0);
    assert_int_equal(mapped, 3 * MiB + 4096); /* rounded up to a page, not to a huge page */
    for (size_t i = 0; i < 3 * MiB + 5; i += 997)
        assert_int_equal(p[i], 0);
    fill(p, 3 * MiB + 5, 7);
    assert_true(check(p, 3 * MiB + 5, 7));
    printf("test_hugemem: fv_huge_alloc 3 MiB: %ld kB in huge pages (THP: %s)\n", huge_kb(p), "see "
           "/sys/kernel/mm/transparent_hugepage/enabled");
    fv_huge_free(p, mapped);
    assert_null(fv_huge_alloc(0, &mapped));
}

/* Many live blocks (address space only: none is written): the address table (open addressing, removal by
 * backward shift) must find every one in any free order; past its capacity (4,095 blocks) fv_malloc takes the C
 * heap instead. */
static void test_block_table(void **state)
{
    (void)state;
    enum { N = 5000 };
    void **v = calloc(N, sizeof(*v));
    char *ours = calloc(N, 1);
    assert_non_null(v);
    assert_non_null(ours);
    int from_table = 0;
    for (int i = 0; i < N; i++) {
        v[i] = fv_huge_block_alloc(FV_HUGE_MIN + (size_t)(i % 7) * 4096);
        if (!v[i]) { /* table full: fv_malloc's fallback */
            v[i] = fv_malloc(64);
            assert_non_null(v[i]);
        } else {
            from_table++;
            ours[i] = 1; /* not written: each block would take a 2 MiB page */
        }
    }
    printf("test_hugemem: %d of %d blocks in the table\n", from_table, N);
    assert_int_equal(from_table, 4095); /* the table's capacity */
    /* free in a scrambled order (a permutation: 2311 is prime to N) */
    for (int k = 0; k < N; k++) {
        int i = (int)(((int64_t)k * 2311) % N);
        if (ours[i]) {
            assert_int_equal(fv_huge_block_free(v[i]), 1);
        } else {
            assert_int_equal(fv_huge_block_free(v[i]), 0);
            fv_free(v[i]);
        }
    }
    /* all gone: the whole table is free again */
    for (int i = 0; i < 4095; i++) {
        v[i] = fv_huge_block_alloc(FV_HUGE_MIN);
        assert_non_null(v[i]);
    }
    for (int i = 4094; i >= 0; i--)
        assert_int_equal(fv_huge_block_free(v[i]), 1);
    int x = 0;
    assert_int_equal(fv_huge_block_free(&x), 0);
    free(ours);
    free(v);
}

static void test_pool(void **state)
{
    (void)state;
    enum { N = 300 };
    unsigned char *v[N];
    size_t sz[N];
    for (int i = 0; i < N; i++) {
        sz[i] = (size_t)(i % 13 + 1) * 37 * 1024 + (size_t)i; /* 37 KiB .. 481 KiB, not multiples of 64 */
        if (i == 150)
            sz[i] = 40 * MiB; /* larger than a chunk */
        v[i] = fv_pool_alloc(sz[i]);
        assert_non_null(v[i]);
        assert_int_equal((uintptr_t)v[i] % 64, 0);
        assert_int_equal(v[i][0], 0);
        assert_int_equal(v[i][sz[i] - 1], 0);
        fill(v[i], sz[i], (unsigned)i);
    }
    /* no buffer overlaps another: each still holds its own pattern */
    for (int i = 0; i < N; i++)
        assert_true(check(v[i], sz[i], (unsigned)i));
    for (int i = 0; i < N; i += 2)
        fv_pool_free(v[i]);
    for (int i = 1; i < N; i += 2)
        assert_true(check(v[i], sz[i], (unsigned)i));
    for (int i = 1; i < N; i += 2)
        fv_pool_free(v[i]);
    /* every chunk went with its last buffer; new ones are fresh and zeroed */
    unsigned char *p = fv_pool_alloc(MiB);
    assert_non_null(p);
    for (size_t i = 0; i < MiB; i += 4096)
        assert_int_equal(p[i], 0);
    fv_pool_free(p);
    fv_pool_free(NULL);
    assert_null(fv_pool_alloc(0));
}

static void test_threads(void **state)
{
    (void)state;
    int bad = 0;
#pragma omp parallel for num_threads(4) reduction(+ : bad) schedule(dynamic)
    for (int t = 0; t < 64; t++) {
        const size_t n = FV_HUGE_MIN + (size_t)t * 8192, m = 64 * 1024 + (size_t)t * 100;
        unsigned char *a = fv_malloc(n), *b = fv_pool_alloc(m);
        if (!a || !b) {
            bad++;
            continue;
        }
        fill(a, n, (unsigned)t);
        fill(b, m, (unsigned)t + 1);
        bad += !check(a, n, (unsigned)t) + !check(b, m, (unsigned)t + 1);
        fv_free(a);
        fv_pool_free(b);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_sizes), cmocka_unit_test(test_huge_alloc), cmocka_unit_test(test_block_table),
        cmocka_unit_test(test_pool),         cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
