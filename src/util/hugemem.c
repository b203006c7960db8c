/* Large buffers on transparent huge pages. A 4 KiB page touched for the first time costs a page fault, and on a
 * virtual machine a fault costs far more than the page: on the 2-core EPYC VM these figures come from, 32 MiB
 * written once took 104 ms in 4 KiB pages (12.7 us a page) and 3.5 ms in 2 MiB pages; a one-clip classify of
 * the bundled model took ~6,400 faults, ~2,600 of them the prepared weights' copies. So:
 *   - fv_huge_alloc: a mapping whose start is 2 MiB-aligned, advised MADV_HUGEPAGE (used where the kernel's
 *     THP mode is "madvise" or "always"), trimmed to the size: the whole 2 MiB ranges it covers come as huge
 *     pages, the tail as 4 KiB pages, so nothing is paid for that is not used. fv_malloc() takes this path
 *     from FV_HUGE_MIN bytes up (the inference state's arena, decoded clips, ...).
 *   - fv_pool_alloc: many long-lived buffers smaller than a huge page (a model's prepared weights: ~150 KiB to
 *     4.5 MiB each) placed one after another in shared chunks, so they share huge pages too; a chunk is unmapped
 *     when the last buffer in it is freed.
 * Where the kernel has no THP the mappings are plain ones: same behaviour, no gain. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/util.h"

#define HUGE_PAGE ((size_t)2 << 20)
#define PAGE      ((size_t)4096)

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

void *fv_huge_alloc(size_t size, size_t *mapped)
{
    if (size == 0 || size > SIZE_MAX - 2 * HUGE_PAGE)
        return NULL;
    const size_t len = round_up(size, PAGE);
    /* map a huge page more than needed, then give back the parts before the aligned start and after the end */
    char *raw = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *p = (char *)round_up((uintptr_t)raw, HUGE_PAGE);
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (raw + len + HUGE_PAGE > p + len)
        munmap(p + len, (size_t)(raw + len + HUGE_PAGE - (p + len)));
#ifdef MADV_HUGEPAGE
    if (len >= HUGE_PAGE)
        (void)madvise(p, len, MADV_HUGEPAGE); /* advice: without THP the mapping just stays in 4 KiB pages */
#endif
    if (mapped)
        *mapped = len;
    return p;
}

void fv_huge_free(void *p, size_t mapped)
{
    if (p)
        munmap(p, mapped);
}

/* ---- fv_malloc's large blocks: their mapped sizes, by address -------------------------------------------- */

enum { NSLOTS = 4096 }; /* live large blocks at once (less one); beyond, fv_malloc uses the C heap */
static struct {
    void *p;
    size_t len;
} g_slots[NSLOTS];
static size_t g_nblocks;
static pthread_mutex_t g_slots_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(const void *p)
{
    return (size_t)(((uintptr_t)p / HUGE_PAGE) * 0x9e3779b97f4a7c15u >> 52) % NSLOTS;
}

void *fv_huge_block_alloc(size_t size)
{
    size_t len;
    void *p = fv_huge_alloc(size, &len);
    if (!p)
        return NULL;
    pthread_mutex_lock(&g_slots_lock);
    int full = g_nblocks >= NSLOTS - 1; /* one slot stays empty: it ends every probe and every removal's shift */
    if (!full) {
        size_t i = slot_of(p);
        while (g_slots[i].p)
            i = (i + 1) % NSLOTS;
        g_slots[i].p = p, g_slots[i].len = len;
        g_nblocks++;
    }
    pthread_mutex_unlock(&g_slots_lock);
    if (full) { /* not one of ours: the caller takes the C heap */
        fv_huge_free(p, len);
        return NULL;
    }
    return p;
}

int fv_huge_block_free(void *p)
{
    if (!p || ((uintptr_t)p & (HUGE_PAGE - 1)))
        return 0; /* ours start on a huge page */
    size_t len = 0;
    pthread_mutex_lock(&g_slots_lock);
    size_t i = slot_of(p);
    for (; g_slots[i].p; i = (i + 1) % NSLOTS)
        if (g_slots[i].p == p) {
            len = g_slots[i].len;
            /* remove with backward shift, so that probe sequences stay unbroken */
            size_t j = i;
            for (;;) {
                j = (j + 1) % NSLOTS;
                if (!g_slots[j].p)
                    break;
                size_t h = slot_of(g_slots[j].p);
                if ((i <= j) ? (i < h && h <= j) : (i < h || h <= j))
                    continue; /* already between its home and here */
                g_slots[i] = g_slots[j];
                i = j;
            }
            g_slots[i].p = NULL;
            g_nblocks--;
            break;
        }
    pthread_mutex_unlock(&g_slots_lock);
    if (!len)
        return 0;
    fv_huge_free(p, len);
    return 1;
}

/* ---- the pool ------------------------------------------------------------------------------------------------ */

enum { POOL_CHUNK = 32 << 20 }; /* address space, not memory: only the pages written are backed */

typedef struct Chunk {
    char *base;
    size_t len, used;
    int64_t live; /* buffers not yet freed */
    struct Chunk *next;
} Chunk;

static Chunk *g_chunks; /* the newest first: the one buffers are taken from */
static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;

void *fv_pool_alloc(size_t size)
{
    if (size == 0 || size > SIZE_MAX / 2)
        return NULL;
    size = round_up(size, 64);
    void *p = NULL;
    pthread_mutex_lock(&g_pool_lock);
    Chunk *c = g_chunks;
    if (!c || c->len - c->used < size) {
        Chunk *n = calloc(1, sizeof(*n));
        size_t want = size > POOL_CHUNK ? round_up(size, HUGE_PAGE) : POOL_CHUNK;
        if (n && (n->base = fv_huge_alloc(want, &n->len))) {
            n->next = g_chunks;
            g_chunks = c = n;
        } else {
            free(n);
            c = NULL;
        }
    }
    if (c) {
        p = c->base + c->used;
        c->used += size;
        c->live++;
    }
    pthread_mutex_unlock(&g_pool_lock);
    return p;
}

void fv_pool_free(void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&g_pool_lock);
    Chunk **pc = &g_chunks;
    for (; *pc; pc = &(*pc)->next)
        if ((char *)p >= (*pc)->base && (char *)p < (*pc)->base + (*pc)->len)
            break;
    Chunk *c = *pc;
    if (c && --c->live == 0) { /* its last buffer: the chunk goes, pages and address space */
        *pc = c->next;
        fv_huge_free(c->base, c->len);
        free(c);
    }
    pthread_mutex_unlock(&g_pool_lock);
}
