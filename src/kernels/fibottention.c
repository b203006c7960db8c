/* Fibottention masks (SPEC section 3): per-head Wythoff/Fibonacci offsets and the per-layer head shuffle,
 * reproduced bit for bit from the reference code (CPython's Mersenne Twister included), so checkpoints
 * trained with it run with the heads they were trained with. */
#include <math.h>
#include <string.h>

#include "kernels/attn_kind.h"
#include "kernels/fibottention.h"
#include "util/util.h"

/* ---- CPython random: MT19937 (Modules/_randommodule.c) ---------------------------------------------- */

#define MT_N 624
#define MT_M 397

static void mt_init_genrand(FvPyRandom *r, uint32_t s)
{
    r->mt[0] = s;
    for (int32_t i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = MT_N;
}

static void mt_init_by_array(FvPyRandom *r, const uint32_t *key, int32_t len)
{
    mt_init_genrand(r, 19650218u);
    int32_t i = 1, j = 0;
    for (int32_t k = MT_N > len ? MT_N : len; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++, j++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
        if (j >= len)
            j = 0;
    }
    for (int32_t k = MT_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000u; /* MSB is 1, assuring a non-zero initial array */
}

void fv_pyrandom_seed(FvPyRandom *r, int64_t seed)
{
    /* CPython seeds with abs(n); the magnitude's 32-bit words, least significant first, no trailing zeros */
    uint64_t u = seed < 0 ? (uint64_t)0 - (uint64_t)seed : (uint64_t)seed;
    uint32_t key[2] = {(uint32_t)u, (uint32_t)(u >> 32)};
    mt_init_by_array(r, key, key[1] ? 2 : 1);
}

uint32_t fv_pyrandom_u32(FvPyRandom *r)
{
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    uint32_t y;
    if (r->mti >= MT_N) {
        int32_t kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1u];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1u];
        }
        y = (r->mt[MT_N - 1] & 0x80000000u) | (r->mt[0] & 0x7fffffffu);
        r->mt[MT_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1u];
        r->mti = 0;
    }
    y = r->mt[r->mti++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

uint64_t fv_pyrandom_getrandbits(FvPyRandom *r, int32_t k)
{
    if (k <= 0)
        return 0;
    if (k <= 32)
        return fv_pyrandom_u32(r) >> (32 - k);
    if (k > 64)
        k = 64;
    /* CPython fills 32-bit words from the least significant one, dropping low bits of the last word */
    uint64_t lo = fv_pyrandom_u32(r);
    uint64_t hi = fv_pyrandom_u32(r) >> (64 - k);
    return lo | hi << 32;
}

uint64_t fv_pyrandom_randbelow(FvPyRandom *r, uint64_t n)
{
    if (n == 0)
        return 0;
    int32_t k = 64 - __builtin_clzll(n); /* n.bit_length() */
    uint64_t x = fv_pyrandom_getrandbits(r, k);
    while (x >= n)
        x = fv_pyrandom_getrandbits(r, k);
    return x;
}

void fv_pyrandom_shuffle(FvPyRandom *r, int32_t *x, int32_t n)
{
    for (int32_t i = n - 1; i >= 1; i--) {
        int32_t j = (int32_t)fv_pyrandom_randbelow(r, (uint64_t)i + 1);
        int32_t t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

/* ---- offsets -------------------------------------------------------------------------------------- */

int32_t fv_fib_head_offsets(int32_t i, int32_t h, int32_t wmin, int32_t wmax, int32_t modified, int32_t *out)
{
    if (i < 1 || h < 1 || i > h)
        return fv_error(FV_EINVAL, "fv_fib_head_offsets: head %d of %d", i, h);
    /* the reference's float arithmetic, step by step: Python's ** on floats is C pow() */
    const double phi = (1.0 + sqrt(5.0)) / 2.0;
    const double fi = floor((double)i * phi);
    int64_t a = (int64_t)floor(fi * phi);
    int64_t b = (int64_t)floor(fi * pow(phi, 2.0));
    int64_t w = wmax;
    if (h > 1)
        w = (int64_t)wmin + (int64_t)((double)((int64_t)wmax - wmin) / (double)(h - 1) * (double)(i - 1));
    if (modified) {
        int64_t bm = b - a;
        a = a - bm;
        b = bm;
    }
    if (a < 0 || b < 1 || a > INT32_MAX)
        return fv_error(FV_ERANGE, "fv_fib_head_offsets: head %d of %d starts at (%lld, %lld)", i, h,
                        (long long)a, (long long)b);
    /* seq = [a, b]; while seq[-1] <= w: append; return seq[:-1] */
    int32_t n = 0;
    int64_t prev = a, cur = b;
    out[n++] = (int32_t)a;
    while (cur <= w) {
        if (n >= FV_FIB_MAX_TERMS)
            return fv_error(FV_ERANGE, "fv_fib_head_offsets: window %lld too long", (long long)w);
        out[n++] = (int32_t)cur; /* cur <= w <= INT32_MAX */
        int64_t next = prev + cur;
        prev = cur;
        cur = next;
    }
    return n;
}

void fv_fib_head_order(int64_t depth, int32_t h, int32_t shuffle, int32_t *perm)
{
    for (int32_t s = 0; s < h; s++)
        perm[s] = s;
    if (shuffle) {
        FvPyRandom r;
        fv_pyrandom_seed(&r, depth);
        fv_pyrandom_shuffle(&r, perm, h);
    }
}

/* Sort ascending and drop repeats and offsets >= n (they attend nothing); returns the new count. */
static int32_t offsets_unique(int32_t *v, int32_t cnt, int32_t n)
{
    for (int32_t i = 1; i < cnt; i++) {
        int32_t x = v[i], j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
    int32_t m = 0;
    for (int32_t i = 0; i < cnt; i++)
        if (v[i] >= 0 && v[i] < n && (m == 0 || v[m - 1] != v[i]))
            v[m++] = v[i];
    return m;
}

int fv_fib_plan_build(FvAttnPlan *p)
{
    const int32_t H = p->H;
    const int32_t n = p->N - (p->has_cls ? 1 : 0);
    int ret = 0;
    int32_t *raw = NULL, *cnt = NULL, *perm = NULL;
    if (H < 1 || n < 1)
        return fv_error(FV_EINVAL, "fv_fib_plan_build: bad shape N=%d H=%d", p->N, H);
    p->noff = p->off = p->raw_noff = p->raw_off = NULL;
    raw = fv_malloc(sizeof(int32_t) * (size_t)H * (FV_FIB_MAX_TERMS + 1));
    cnt = fv_malloc(sizeof(int32_t) * (size_t)H);
    perm = fv_malloc(sizeof(int32_t) * (size_t)H);
    if (!raw || !cnt || !perm) {
        ret = fv_error(FV_ENOMEM, "fv_fib_plan_build: out of memory");
        goto fail;
    }
    const int32_t modified = p->s.variant == FV_FIB_MODIFIED;
    int32_t raw_max = 1;
    for (int32_t i = 0; i < H; i++) {
        int32_t c = fv_fib_head_offsets(i + 1, H, p->s.wmin, p->s.wmax, modified,
                                        raw + (size_t)i * (FV_FIB_MAX_TERMS + 1));
        if (c < 0) {
            ret = c;
            goto fail;
        }
        cnt[i] = c;
        raw_max = FV_MAX(raw_max, c);
    }
    fv_fib_head_order(p->layer, H, p->s.shuffle, perm);

    p->raw_max = raw_max;
    p->max_off = raw_max + 1; /* room for the temporal diagonal */
    p->raw_noff = fv_malloc(sizeof(int32_t) * (size_t)H);
    p->raw_off = fv_calloc((size_t)H * raw_max, sizeof(int32_t));
    p->noff = fv_malloc(sizeof(int32_t) * (size_t)H);
    p->off = fv_calloc((size_t)H * p->max_off, sizeof(int32_t));
    if (!p->raw_noff || !p->raw_off || !p->noff || !p->off) {
        ret = fv_error(FV_ENOMEM, "fv_fib_plan_build: out of memory");
        goto fail;
    }
    for (int32_t s = 0; s < H; s++) {
        const int32_t *src = raw + (size_t)perm[s] * (FV_FIB_MAX_TERMS + 1);
        int32_t c = cnt[perm[s]];
        p->raw_noff[s] = c;
        memcpy(p->raw_off + (size_t)s * raw_max, src, sizeof(int32_t) * (size_t)c);
        int32_t *dst = p->off + (size_t)s * p->max_off;
        memcpy(dst, src, sizeof(int32_t) * (size_t)c);
        if (!p->has_cls)
            dst[c++] = 0; /* every temporal query sees its own frame, so no row is empty */
        p->noff[s] = offsets_unique(dst, c, n);
    }
    fv_free(raw);
    fv_free(cnt);
    fv_free(perm);
    return 0;
fail:
    fv_free(raw);
    fv_free(cnt);
    fv_free(perm);
    fv_free(p->raw_noff);
    fv_free(p->raw_off);
    fv_free(p->noff);
    fv_free(p->off);
    p->noff = p->off = p->raw_noff = p->raw_off = NULL;
    p->max_off = p->raw_max = 0;
    return ret;
}

/* ---- mask statistics ------------------------------------------------------------------------------ */

static int64_t offset_pairs(int64_t o, int64_t n)
{
    if (o < 0 || o >= n)
        return 0;
    return o == 0 ? n : 2 * (n - o);
}

/* Sorted unique copy of offsets < n into @dst (FV_FIB_MAX_TERMS + 1 entries at most are kept). */
static int32_t offsets_copy_unique(const int32_t *off, int32_t noff, int32_t n, int32_t *dst)
{
    int32_t c = 0;
    for (int32_t i = 0; i < noff; i++) {
        int32_t x = off[i];
        if (x < 0 || x >= n)
            continue;
        int32_t j = 0;
        while (j < c && dst[j] < x)
            j++;
        if (j < c && dst[j] == x)
            continue;
        if (c > 2 * FV_FIB_MAX_TERMS)
            break;
        memmove(dst + j + 1, dst + j, sizeof(int32_t) * (size_t)(c - j));
        dst[j] = x;
        c++;
    }
    return c;
}

int64_t fv_fib_pairs(const int32_t *off, int32_t noff, int32_t n, int32_t has_cls)
{
    int32_t u[2 * FV_FIB_MAX_TERMS + 2];
    int32_t c = offsets_copy_unique(off, noff, n, u);
    int64_t pairs = has_cls ? 2 * (int64_t)n + 1 : 0;
    for (int32_t i = 0; i < c; i++)
        pairs += offset_pairs(u[i], n);
    return pairs;
}

double fv_fib_density(const int32_t *off, int32_t noff, int32_t n, int32_t has_cls)
{
    double N = (double)n + (has_cls ? 1 : 0);
    if (N <= 0)
        return 0.0;
    return (double)fv_fib_pairs(off, noff, n, has_cls) / (N * N);
}

double fv_fib_jaccard(const int32_t *off_a, int32_t na, const int32_t *off_b, int32_t nb, int32_t n,
                      int32_t has_cls)
{
    int32_t ua[2 * FV_FIB_MAX_TERMS + 2], ub[2 * FV_FIB_MAX_TERMS + 2];
    int32_t ca = offsets_copy_unique(off_a, na, n, ua);
    int32_t cb = offsets_copy_unique(off_b, nb, n, ub);
    int64_t inter = has_cls ? 2 * (int64_t)n + 1 : 0;
    for (int32_t i = 0, j = 0; i < ca && j < cb;) {
        if (ua[i] == ub[j]) {
            inter += offset_pairs(ua[i], n);
            i++, j++;
        } else if (ua[i] < ub[j]) {
            i++;
        } else {
            j++;
        }
    }
    int64_t uni = fv_fib_pairs(ua, ca, n, has_cls) + fv_fib_pairs(ub, cb, n, has_cls) - inter;
    return uni > 0 ? (double)inter / (double)uni : 1.0;
}
