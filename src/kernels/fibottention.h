/* Fibottention mask generation (SPEC section 3), reproducing the reference code bit for bit: CPython's
 * `random` (MT19937 + getrandbits + shuffle) for the per-layer head shuffle, the Wythoff/Fibonacci offset
 * sets per head, and mask statistics (density, Jaccard overlap) computed from the offsets. */
#ifndef FV_FIBOTTENTION_H
#define FV_FIBOTTENTION_H

#include <stdint.h>

#include "kernels/attn_kind.h"

/* CPython `random.Random` state (MT19937). */
typedef struct FvPyRandom {
    uint32_t mt[624];
    int32_t mti;
} FvPyRandom;

/* random.seed(seed) for an int seed: init_by_array over the 32-bit words of |seed|, least significant first
 * (seed 0 -> key [0]). */
void fv_pyrandom_seed(FvPyRandom *r, int64_t seed);
/* One raw 32-bit output (genrand_uint32). */
uint32_t fv_pyrandom_u32(FvPyRandom *r);
/* random.getrandbits(k) for 0 <= k <= 64 (words least significant first, as CPython fills them). */
uint64_t fv_pyrandom_getrandbits(FvPyRandom *r, int32_t k);
/* random._randbelow(n) for n >= 1: getrandbits(n.bit_length()) until below n. */
uint64_t fv_pyrandom_randbelow(FvPyRandom *r, uint64_t n);
/* random.shuffle(x) on @n int32 items: Fisher-Yates from the end with _randbelow(i + 1). */
void fv_pyrandom_shuffle(FvPyRandom *r, int32_t *x, int32_t n);

/* Most offsets one head can have: terms grow like Fibonacci numbers, so a window that fits in int32 ends
 * the sequence well before this. */
#define FV_FIB_MAX_TERMS 64

/* Offsets of head @i (1-based) of @h heads as the reference's get_fibonacci returns them (duplicates kept,
 * the first term kept even when above the window). @modified: 1 for the modified Wythoff start.
 * Writes at most FV_FIB_MAX_TERMS values to @out and returns their count, or FV_EINVAL / FV_ERANGE. */
int32_t fv_fib_head_offsets(int32_t i, int32_t h, int32_t wmin, int32_t wmax, int32_t modified, int32_t *out);

/* Head order of layer @depth: slot s holds head perm[s] (0-based) — random.seed(depth); random.shuffle()
 * over range(h). Identity when @shuffle is 0. */
void fv_fib_head_order(int64_t depth, int32_t h, int32_t shuffle, int32_t *perm);

/* Attended (query, key) pairs of a head with offsets @off[0..@noff) (any order, repeats allowed) over @n
 * tokens, plus the always-attended cls row and column when @has_cls (the sequence then has n + 1 tokens). */
int64_t fv_fib_pairs(const int32_t *off, int32_t noff, int32_t n, int32_t has_cls);
/* fv_fib_pairs / (N x N) with N = n + has_cls. */
double fv_fib_density(const int32_t *off, int32_t noff, int32_t n, int32_t has_cls);
/* Jaccard index |A & B| / |A | B| of two heads' masks (sets of (query, key) pairs), from their offsets.
 * Two empty masks count as identical (1). */
double fv_fib_jaccard(const int32_t *off_a, int32_t na, const int32_t *off_b, int32_t nb, int32_t n,
                      int32_t has_cls);

/* Fill p->noff / off / raw_* of a Fibottention plan whose settings (windows resolved) and shape are set:
 * every head's offsets in this layer's shuffled order. Returns 0, FV_EINVAL or FV_ENOMEM. */
int fv_fib_plan_build(FvAttnPlan *p);

#endif /* FV_FIBOTTENTION_H */
