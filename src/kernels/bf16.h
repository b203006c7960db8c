/* bfloat16: conversions (round to nearest even; NaN stays NaN; back exactly) and whether bf16 products can run
 * on this machine. */
#ifndef FV_BF16_H
#define FV_BF16_H

#include <stdint.h>

static inline uint16_t fv_bf16_from_f32(float f)
{
    union { float f; uint32_t u; } v = { f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

static inline float fv_f32_from_bf16(uint16_t h)
{
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}

void fv_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
void fv_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);

/* 1 when bf16 products can run here: built with oneDNN, and oneDNN runs an AVX512-BF16 or AMX kernel on this
 * CPU (dnnl_get_effective_cpu_isa). FIBVID_NO_BF16=1 in the environment says 0 (tests of the usage error). */
int fv_bf16_supported(void);

#endif /* FV_BF16_H */
