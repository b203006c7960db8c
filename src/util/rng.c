/* Deterministic pseudo-random numbers: the splitmix64 sequence (random weights, the data set generator, tests)
 * and counter-based streams keyed by (seed, purpose, epoch, index) for training. */
#include <math.h>

#include "util/util.h"

uint64_t fv_rand_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t fv_rand_u64(uint64_t *state)
{
    const uint64_t x = *state;
    *state += 0x9e3779b97f4a7c15ull;
    return fv_rand_mix(x);
}

float fv_rand_uniform(uint64_t *state)
{
    return (float)(fv_rand_u64(state) >> 40) * (1.0f / 16777216.0f);
}

double fv_rand_unit(uint64_t *state)
{
    return (double)(fv_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

float fv_rand_normal(uint64_t *state)
{
    /* Box-Muller; u1 in (0, 1] so the log is finite */
    float u1 = 1.0f - fv_rand_uniform(state);
    float u2 = fv_rand_uniform(state);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

uint64_t fv_rng_stream(uint64_t seed, uint64_t purpose, uint64_t epoch, uint64_t index)
{
    return fv_rand_mix(fv_rand_mix(fv_rand_mix(fv_rand_mix(seed) ^ purpose) ^ epoch) ^ index);
}

uint64_t fv_rng_next(uint64_t *s)
{
    *s = fv_rand_mix(*s);
    return *s;
}

double fv_rng_unit(uint64_t *s)
{
    return (double)(fv_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

int64_t fv_rng_below(uint64_t *s, int64_t n)
{
    return n <= 1 ? 0 : (int64_t)(fv_rng_unit(s) * (double)n);
}
