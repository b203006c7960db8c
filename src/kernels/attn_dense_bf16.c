/* Dense softmax attention on bf16 operands (kernels/attn_bf16.h): an AVX512-BF16 kernel per (sequence, head) and
 * its plain C reference.
 *
 * The kernel, eight queries at a time (vdpbf16ps multiplies pairs of bf16 and adds both products to an fp32 lane):
 *   K^T in pairs   kt (hd/2, Np) 32-bit words (k[j][2c], k[j][2c+1]), Np = N rounded up to 32, zero-padded
 *                  (16 x 16 word transposes);
 *   scores         S (8, Np) = scale * q K^T: the query's pair c broadcast against kt's row c;
 *   softmax        per row in fp32, the weights rounded to bf16 into pb (8, Np), zero past N;
 *   V in pairs     vv (ceil(N/2), hd) words (v[2j][c], v[2j+1][c]) (v[N] = 0 for odd N);
 *   output         O (4, hd) = P V, twice: the weights' pair j broadcast against vv's row j, rounded to bf16.
 * The kernel is compiled for AVX512-BF16 by a target attribute and runs only where the CPU has it. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn_bf16.h"
#include "kernels/fastmath.h"
#include "kernels/bf16.h"
#include "util/util.h"

void fv_attn_dense_bf16_ref(uint16_t *out, const uint16_t *qkv, int64_t nseq, int32_t N, int32_t H, int32_t hd)
{
    const int64_t D = (int64_t)H * hd, ld = 3 * D;
    const double scale = 1.0 / sqrt((double)hd);
#pragma omp parallel
    {
        double *s = malloc(sizeof(double) * (size_t)N);
        float *p = malloc(sizeof(float) * (size_t)N);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < nseq * H; t++) {
            const int64_t b = t / H, h = t % H;
            const uint16_t *q = qkv + b * N * ld + h * hd, *k = q + D, *v = q + 2 * D;
            uint16_t *o = out + b * N * D + h * hd;
            for (int32_t i = 0; i < N && s && p; i++) {
                double m = -INFINITY, z = 0.0;
                for (int32_t j = 0; j < N; j++) {
                    double d = 0.0;
                    for (int32_t c = 0; c < hd; c++)
                        d += (double)fv_f32_from_bf16(q[i * ld + c]) * fv_f32_from_bf16(k[j * ld + c]);
                    s[j] = d * scale;
                    m = s[j] > m ? s[j] : m;
                }
                for (int32_t j = 0; j < N; j++)
                    z += (s[j] = exp(s[j] - m));
                for (int32_t j = 0; j < N; j++) /* the weights as AV sees them */
                    p[j] = fv_f32_from_bf16(fv_bf16_from_f32((float)(s[j] / z)));
                for (int32_t c = 0; c < hd; c++) {
                    double acc = 0.0;
                    for (int32_t j = 0; j < N; j++)
                        acc += (double)p[j] * fv_f32_from_bf16(v[j * ld + c]);
                    o[i * D + c] = fv_bf16_from_f32((float)acc);
                }
            }
        }
        free(s);
        free(p);
    }
}

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 10))
#define FV_BF16_KERNEL 1
#include <immintrin.h>

#define FV_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
typedef uint32_t fv_u32a __attribute__((may_alias, aligned(2))); /* a pair of bf16, read where bf16 lie */

#define QB 8 /* queries per block: the scores of 8 queries x 32 keys in 16 accumulators */

static size_t head_scratch_bytes(int32_t N, int32_t hd)
{
    const size_t Np = ((size_t)N + 31) & ~(size_t)31, N2 = ((size_t)N + 1) / 2;
    const size_t b = 4 * ((size_t)hd / 2 * Np + N2 * (size_t)hd + QB * Np) + 2 * QB * Np;
    return (b + 63) & ~(size_t)63;
}

/* Transpose a 16 x 16 block of 32-bit words in place: r[i] lane-word j -> r[j] lane-word i. */
FV_TARGET_BF16 static inline void transpose16(__m512i r[16])
{
    __m512i a[16], b[16];
    for (int i = 0; i < 16; i += 2) { /* lane L: (r_i[4L], r_i+1[4L], r_i[4L+1], r_i+1[4L+1]) and the next two */
        a[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        a[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* b[4g + m] lane L: column 4L + m of rows 4g .. 4g + 3 */
        b[4 * g + 0] = _mm512_unpacklo_epi64(a[4 * g], a[4 * g + 2]);
        b[4 * g + 1] = _mm512_unpackhi_epi64(a[4 * g], a[4 * g + 2]);
        b[4 * g + 2] = _mm512_unpacklo_epi64(a[4 * g + 1], a[4 * g + 3]);
        b[4 * g + 3] = _mm512_unpackhi_epi64(a[4 * g + 1], a[4 * g + 3]);
    }
    for (int m = 0; m < 4; m++) { /* column 4L + m: lane g from b[4g + m] lane L */
        const __m512i x0 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0x44), x1 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0xee);
        const __m512i y0 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0x44);
        const __m512i y1 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0xee);
        r[m] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        r[4 + m] = _mm512_shuffle_i32x4(x0, y0, 0xdd);
        r[8 + m] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        r[12 + m] = _mm512_shuffle_i32x4(x1, y1, 0xdd);
    }
}

/* P (4 rows of pair words @pr) times vv into out rows @i0.. (@nb of them stored) */
FV_TARGET_BF16 static inline void av4(const fv_u32a *const *pr, const uint32_t *vv, int32_t N2, int32_t hd,
                                      uint16_t *out, int64_t ldo, int32_t nb)
{
    int32_t c0 = 0;
    for (; c0 + 64 <= hd; c0 += 64) {
        __m512 o[4][4];
        for (int32_t r = 0; r < 4; r++)
            for (int32_t u = 0; u < 4; u++)
                o[r][u] = _mm512_setzero_ps();
        for (int32_t j2 = 0; j2 < N2; j2++) {
            const uint32_t *vr = vv + (size_t)j2 * hd + c0;
            const __m512bh v0 = (__m512bh)_mm512_loadu_si512(vr), v1 = (__m512bh)_mm512_loadu_si512(vr + 16);
            const __m512bh v2 = (__m512bh)_mm512_loadu_si512(vr + 32), v3 = (__m512bh)_mm512_loadu_si512(vr + 48);
            for (int32_t r = 0; r < 4; r++) {
                const __m512bh p = (__m512bh)_mm512_set1_epi32((int)pr[r][j2]);
                o[r][0] = _mm512_dpbf16_ps(o[r][0], p, v0);
                o[r][1] = _mm512_dpbf16_ps(o[r][1], p, v1);
                o[r][2] = _mm512_dpbf16_ps(o[r][2], p, v2);
                o[r][3] = _mm512_dpbf16_ps(o[r][3], p, v3);
            }
        }
        for (int32_t r = 0; r < nb; r++)
            for (int32_t u = 0; u < 4; u++)
                _mm256_storeu_si256((__m256i *)(out + r * ldo + c0 + 16 * u), (__m256i)_mm512_cvtneps_pbh(o[r][u]));
    }
    for (; c0 < hd; c0 += 16) { /* head dims past the last multiple of 64 */
        __m512 o[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
        for (int32_t j2 = 0; j2 < N2; j2++) {
            const __m512bh vx = (__m512bh)_mm512_loadu_si512(vv + (size_t)j2 * hd + c0);
            for (int32_t r = 0; r < 4; r++)
                o[r] = _mm512_dpbf16_ps(o[r], (__m512bh)_mm512_set1_epi32((int)pr[r][j2]), vx);
        }
        for (int32_t r = 0; r < nb; r++)
            _mm256_storeu_si256((__m256i *)(out + r * ldo + c0), (__m256i)_mm512_cvtneps_pbh(o[r]));
    }
}

FV_TARGET_BF16 static void head_bf16(int32_t N, int32_t hd, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                     int64_t ld, uint16_t *out, int64_t ldo, void *scr)
{
    const int32_t Np = (N + 31) & ~31, N2 = (N + 1) / 2, H2 = hd / 2;
    uint32_t *kt = scr;                                /* (H2, Np) */
    uint32_t *vv = kt + (size_t)H2 * Np;               /* (N2, hd) */
    float *s = (float *)(vv + (size_t)N2 * hd);        /* (QB, Np) */
    uint16_t *pb = (uint16_t *)(s + QB * (size_t)Np);  /* (QB, Np) */
    const __m512 scale = _mm512_set1_ps(1.0f / sqrtf((float)hd));

    /* K^T in pairs, 16 x 16 word blocks; keys past N are zero */
    for (int32_t j0 = 0; j0 < Np; j0 += 16)
        for (int32_t c0 = 0; c0 < H2; c0 += 16) {
            const __mmask16 m = H2 - c0 >= 16 ? 0xffff : 0xff;
            __m512i r[16];
            for (int32_t i = 0; i < 16; i++)
                r[i] = j0 + i < N ? _mm512_maskz_loadu_epi32(m, k + (j0 + i) * ld + 2 * c0) : _mm512_setzero_si512();
            transpose16(r);
            for (int32_t i = 0; i < 16 && c0 + i < H2; i++)
                _mm512_storeu_si512(kt + (size_t)(c0 + i) * Np + j0, r[i]);
        }
    /* rows 2j2 and 2j2 + 1 interleaved: unpack gives 4-channel groups per 128-bit lane, the permutes order them */
    const __m512i lo_idx = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), hi_idx = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    for (int32_t j2 = 0; j2 < N2; j2++) {
        const uint16_t *a = v + 2 * j2 * ld, *b = a + ld;
        const int has_b = 2 * j2 + 1 < N;
        for (int32_t c0 = 0; c0 < hd; c0 += 32) {
            const __mmask32 m = hd - c0 >= 32 ? 0xffffffffu : 0xffffu;
            const __m512i va = _mm512_maskz_loadu_epi16(m, a + c0);
            const __m512i vb = has_b ? _mm512_maskz_loadu_epi16(m, b + c0) : _mm512_setzero_si512();
            const __m512i lo = _mm512_unpacklo_epi16(va, vb), hi = _mm512_unpackhi_epi16(va, vb);
            _mm512_storeu_si512(vv + (size_t)j2 * hd + c0, _mm512_permutex2var_epi64(lo, lo_idx, hi));
            if (hd - c0 >= 32)
                _mm512_storeu_si512(vv + (size_t)j2 * hd + c0 + 16, _mm512_permutex2var_epi64(lo, hi_idx, hi));
        }
    }
    memset(pb, 0, sizeof(uint16_t) * QB * (size_t)Np);

    for (int32_t i0 = 0; i0 < N; i0 += QB) {
        const int32_t nb = FV_MIN(QB, N - i0);
        const fv_u32a *qr[QB];
        for (int32_t r = 0; r < QB; r++) /* rows past the end repeat the first: computed, never stored */
            qr[r] = (const fv_u32a *)(q + (int64_t)(i0 + (r < nb ? r : 0)) * ld);
        for (int32_t j0 = 0; j0 < Np; j0 += 32) {
            __m512 acc[QB][2];
            for (int32_t r = 0; r < QB; r++)
                acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int32_t c2 = 0; c2 < H2; c2++) {
                const __m512bh k0 = (__m512bh)_mm512_loadu_si512(kt + (size_t)c2 * Np + j0);
                const __m512bh k1 = (__m512bh)_mm512_loadu_si512(kt + (size_t)c2 * Np + j0 + 16);
                for (int32_t r = 0; r < QB; r++) {
                    const __m512bh b = (__m512bh)_mm512_set1_epi32((int)qr[r][c2]);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], b, k0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], b, k1);
                }
            }
            for (int32_t r = 0; r < QB; r++) {
                _mm512_storeu_ps(s + r * Np + j0, _mm512_mul_ps(acc[r][0], scale));
                _mm512_storeu_ps(s + r * Np + j0 + 16, _mm512_mul_ps(acc[r][1], scale));
            }
        }
        for (int32_t r = 0; r < nb; r++) {
            float *sr = s + (size_t)r * Np;
            float m = -INFINITY, z = 0.0f;
#pragma omp simd reduction(max : m)
            for (int32_t j = 0; j < N; j++)
                m = sr[j] > m ? sr[j] : m;
#pragma omp simd reduction(+ : z)
            for (int32_t j = 0; j < N; j++)
                z += (sr[j] = fv_expf(sr[j] - m));
            const __m512 inv = _mm512_set1_ps(1.0f / z);
            for (int32_t j = N; j < Np; j++)
                sr[j] = 0.0f;
            for (int32_t j = 0; j < Np; j += 16)
                _mm256_storeu_si256((__m256i *)(pb + (size_t)r * Np + j),
                                    (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(sr + j), inv)));
        }
        for (int32_t h = 0; h < nb; h += 4) {
            const fv_u32a *pr[4];
            for (int32_t r = 0; r < 4; r++)
                pr[r] = (const fv_u32a *)(pb + (size_t)(h + r) * Np);
            av4(pr, vv, N2, hd, out + (i0 + h) * ldo, ldo, FV_MIN(4, nb - h));
        }
    }
}
#endif

int fv_attn_dense_bf16_fast(int32_t hd)
{
#ifdef FV_BF16_KERNEL
    return hd > 0 && hd % 16 == 0 && __builtin_cpu_supports("avx512bf16");
#else
    (void)hd;
    return 0;
#endif
}

int fv_attn_dense_bf16(uint16_t *out, const uint16_t *qkv, int64_t nseq, int32_t N, int32_t H, int32_t hd)
{
    if (nseq < 1 || N < 1)
        return 0;
#ifdef FV_BF16_KERNEL
    if (fv_attn_dense_bf16_fast(hd)) {
        const int64_t D = (int64_t)H * hd, ld = 3 * D;
        const size_t per = head_scratch_bytes(N, hd);
        const int nt = omp_get_max_threads();
        uint8_t *scr = fv_malloc(per * (size_t)nt);
        if (!scr)
            return fv_error(FV_ENOMEM, "fv_attn_dense_bf16: out of memory");
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < nseq * H; t++) {
            const int64_t b = t / H, h = t % H;
            const uint16_t *q = qkv + b * N * ld + h * hd;
            head_bf16(N, hd, q, q + D, q + 2 * D, ld, out + b * N * D + h * hd, D,
                      scr + per * (size_t)omp_get_thread_num());
        }
        fv_free(scr);
        return 0;
    }
#endif
    fv_attn_dense_bf16_ref(out, qkv, nseq, N, H, hd);
    return 0;
}
