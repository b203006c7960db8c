/* bfloat16 conversions of arrays, and whether bf16 products can run here (kernels/bf16.h). */
#include <stdlib.h>
#include <string.h>

#ifdef FV_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#include "kernels/bf16.h"

void fv_f32_to_bf16(uint16_t *dst, const float *src, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 262144)
    for (int64_t i = 0; i < n; i++)
        dst[i] = fv_bf16_from_f32(src[i]);
}

void fv_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = fv_f32_from_bf16(src[i]);
}

int fv_bf16_supported(void)
{
    const char *e = getenv("FIBVID_NO_BF16");
    if (e && *e && strcmp(e, "0"))
        return 0;
#ifdef FV_HAVE_DNNL
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
#else
    return 0;
#endif
}
