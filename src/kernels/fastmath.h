/* Branch-free exp and erf that GCC vectorises (libm's expf/erff are scalar calls: the dense softmax spent
 * most of its time in expf). Relative error of fv_expf < 2e-7 over its range; fv_erf abs error < 1e-6. */
#ifndef FV_FASTMATH_H
#define FV_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x; 0 below -87 (and for -inf), clamped at e^88 above; relative error < 5e-7 up to x = 80. */
static inline float fv_expf(float x0)
{
    /* ternaries, not fminf/fmaxf: those stay libm calls (NaN rules) and stop vectorisation */
    float x = x0 < -87.0f ? -87.0f : x0;
    x = x > 88.0f ? 88.0f : x;
    x = x == x ? x : 0.0f; /* NaN: keep the integer conversion below defined; NaN is returned */
    /* round to nearest by the 1.5 * 2^23 trick: floorf/rintf stay libm calls without -fno-trapping-math */
    const float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    /* Cody-Waite: ln 2 split in two so r = x - n ln 2 is exact to float precision */
    const float r = (x - fn * 0.693145751953125f) - fn * 1.42860682030941723e-6f;
    /* Taylor to r^7 on |r| <= ln2/2: remainder < 2.5e-8 */
    float p = 1.98412698e-4f;
    p = p * r + 1.38888889e-3f;
    p = p * r + 8.33333333e-3f;
    p = p * r + 4.16666667e-2f;
    p = p * r + 1.66666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)fn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return x0 < -87.0f ? 0.0f : x0 == x0 ? p * scale : x0;
}

/* erf(x): Abramowitz & Stegun 7.1.26:
 * uses erf(x) = 1 - t P(t) e^{-x^2}, t = 1 / (1 + p|x|): abs error 1.5e-7 in exact arithmetic, < 1e-6 in float. */
static inline float fv_erf(float x)
{
    const float ax = fabsf(x);
    const float t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = 1.061405429f;
    y = y * t - 1.453152027f;
    y = y * t + 1.421413741f;
    y = y * t - 0.284496736f;
    y = y * t + 0.254829592f;
    y = 1.0f - y * t * fv_expf(-ax * ax);
    return copysignf(y, x);
}

#endif /* FV_FASTMATH_H */
