/* Dense softmax attention on bf16 operands (kernels/attn_bf16.h): an AVX512-BF16 kernel per (sequence, head) and
 * its plain C reference.
 *
 * The kernel, eight queries at a time (vdpbf16ps multiplies pairs of bf16 and adds both products to an fp32 lane):
 *   K^T in pairs   kt (hd/2, Np) 32-bit words (k[j][2c], k[j][2c+1]), Np = N rounded up to 16, zero-padded
 *                  (16 x 16 word transposes);
 *   scores         S (8, Np) = q K^T, 32 keys at a time (16 for the last odd block of 16): the query's pair c
 *                  broadcast against kt's row c; keys past N stored as -inf; each row's maximum kept in a register;
 *   softmax        per row in fp32, 2^((s - max) scale log2 e) by a polynomial and vscalefps, the weights rounded to
 *                  bf16 into pb (8, Np), zero past N;
 *   V in pairs     vv (ceil(N/2), hd) words (v[2j][c], v[2j+1][c]) (v[N] = 0 for odd N);
 *   output         O (4, hd) = P V, twice: the weights' pair j broadcast against vv's row j, rounded to bf16.
 * The kernel is compiled for AVX512-BF16 by a target attribute and runs only where the CPU has it. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn_bf16.h"
#include "kernels/bf16.h"
#include "util/util.h"

int fv_attn_dense_bf16_ref(uint16_t *out, const uint16_t *qkv, int64_t nseq, int32_t N, int32_t H, int32_t hd)
{
    const int64_t D = (int64_t)H * hd, ld = 3 * D;
    const double scale = 1.0 / sqrt((double)hd);
    int oom = 0;
#pragma omp parallel
    {
        double *s = malloc(sizeof(double) * (size_t)N);
        float *p = malloc(sizeof(float) * (size_t)N);
        if (!s || !p) {
#pragma omp atomic write
            oom = 1;
        }
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
    return oom ? fv_error(FV_ENOMEM, "fv_attn_dense_bf16: out of memory") : 0;
}

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 10))
#define FV_BF16_KERNEL 1
#include <immintrin.h>

#define FV_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
typedef uint32_t fv_u32a __attribute__((may_alias, aligned(2))); /* a pair of bf16, read where bf16 lie */

#define QB 8 /* queries per block: the scores of 8 queries x 32 keys in 16 accumulators */

/* keys rounded up to 16, the width of one score vector */
static inline int32_t keys_padded(int32_t N)
{
    return (N + 15) & ~15;
}

static size_t head_scratch_bytes(int32_t N, int32_t hd)
{
    const size_t Np = (size_t)keys_padded(N), N2 = ((size_t)N + 1) / 2;
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

/* 2^x for x <= 0, NaN for NaN: x = n + f with n an integer and |f| <= 1/2, 2^f by its Taylor series in f ln 2 to
 * degree 6 (remainder < 1.3e-7), times 2^n by vscalefps. Below -151 it is 2^-151, under half the least denormal:
 * 0 (a clamp at -126 gave a key whose score lay 126 below the row's maximum a weight 2^-126 that survived the sum
 * and, times a v near float's range, moved the output). */
FV_TARGET_BF16 static inline __m512 exp2_nonpos(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-151.0f), x); /* vmaxps returns its second operand for a NaN: x */
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5403530393381608e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
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

/* The raw scores q K^T of QB query rows @qr against the 16 * W keys from @j0 (W = 1 or 2) into s (row stride
 * @Np), keys at and past @N stored as -inf, and each row's running maximum in @mx. */
#define FV_SCORE_BLOCK(W)                                                                                            \
    do {                                                                                                             \
        __m512 acc[QB][W];                                                                                           \
        for (int32_t r = 0; r < QB; r++)                                                                             \
            for (int32_t u = 0; u < W; u++)                                                                          \
                acc[r][u] = _mm512_setzero_ps();                                                                     \
        for (int32_t c2 = 0; c2 < H2; c2++) {                                                                        \
            __m512bh kk[W];                                                                                          \
            for (int32_t u = 0; u < W; u++)                                                                          \
                kk[u] = (__m512bh)_mm512_loadu_si512(kt + (size_t)c2 * Np + j0 + 16 * u);                            \
            for (int32_t r = 0; r < QB; r++) {                                                                       \
                const __m512bh b = (__m512bh)_mm512_set1_epi32((int)qr[r][c2]);                                      \
                for (int32_t u = 0; u < W; u++)                                                                      \
                    acc[r][u] = _mm512_dpbf16_ps(acc[r][u], b, kk[u]);                                               \
            }                                                                                                        \
        }                                                                                                            \
        for (int32_t u = 0; u < W; u++) {                                                                            \
            const int32_t left = N - (j0 + 16 * u);                                                                  \
            const __mmask16 valid = left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;              \
            for (int32_t r = 0; r < QB; r++) {                                                                       \
                const __m512 a = _mm512_mask_mov_ps(ninf, valid, acc[r][u]);                                         \
                mx[r] = _mm512_max_ps(mx[r], a);                                                                     \
                _mm512_storeu_ps(s + r * Np + j0 + 16 * u, a);                                                       \
            }                                                                                                        \
        }                                                                                                            \
    } while (0)

/* One head: K^T and V in pairs once, then per block of QB queries the raw scores with their row maxima, the
 * softmax in fp32 (2^((s - max) scale log2 e)), its weights rounded to bf16 and the product with V. */
FV_TARGET_BF16 static void head_bf16(int32_t N, int32_t hd, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                     int64_t ld, uint16_t *out, int64_t ldo, void *scr, const uint16_t *next)
{
    if (next) /* the next head's q, k and v rows to the caches while this head computes (the temporal heads are
               * short: their rows would otherwise come from memory one by one) */
        for (int32_t j = 0; j < N; j++)
            for (int32_t b = 0; b < 2 * hd; b += 64) {
                const char *r = (const char *)(next + j * ld) + b;
                _mm_prefetch(r, _MM_HINT_T1);
                _mm_prefetch(r + 2 * (k - q), _MM_HINT_T1);
                _mm_prefetch(r + 2 * (v - q), _MM_HINT_T1);
            }

    const int32_t Np = keys_padded(N), N2 = (N + 1) / 2, H2 = hd / 2;
    uint32_t *kt = scr;                                /* (H2, Np) */
    uint32_t *vv = kt + (size_t)H2 * Np;               /* (N2, hd) */
    float *s = (float *)(vv + (size_t)N2 * hd);        /* (QB, Np) */
    uint16_t *pb = (uint16_t *)(s + QB * (size_t)Np);  /* (QB, Np) */
    const __m512 c = _mm512_set1_ps((float)(1.4426950408889634 / sqrt((double)hd))), ninf = _mm512_set1_ps(-INFINITY);

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
    const __m512i lo_idx = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i hi_idx = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
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

    for (int32_t i0 = 0; i0 < N; i0 += QB) {
        const int32_t nb = FV_MIN(QB, N - i0);
        const fv_u32a *qr[QB];
        for (int32_t r = 0; r < QB; r++) /* rows past the end repeat the first: computed, never stored */
            qr[r] = (const fv_u32a *)(q + (int64_t)(i0 + (r < nb ? r : 0)) * ld);
        __m512 mx[QB];
        for (int32_t r = 0; r < QB; r++)
            mx[r] = ninf;
        int32_t j0 = 0;
        for (; j0 + 32 <= Np; j0 += 32)
            FV_SCORE_BLOCK(2);
        if (j0 < Np)
            FV_SCORE_BLOCK(1);
        for (int32_t r = 0; r < nb; r++) {
            float *sr = s + (size_t)r * Np;
            const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx[r]));
            __m512 z = _mm512_setzero_ps();
            for (int32_t j = 0; j < Np; j += 16) { /* keys past N: -inf, so 2^-126, masked to 0 */
                const __mmask16 valid = N - j >= 16 ? 0xffff : (__mmask16)((1u << (N - j)) - 1);
                const __m512 x = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(sr + j), m), c);
                const __m512 e = _mm512_maskz_mov_ps(valid, exp2_nonpos(x));
                z = _mm512_add_ps(z, e);
                _mm512_storeu_ps(sr + j, e);
            }
            const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(z));
            for (int32_t j = 0; j < Np; j += 16)
                _mm256_storeu_si256((__m256i *)(pb + (size_t)r * Np + j),
                                    (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(sr + j), inv)));
        }
        for (int32_t h = 0; h < nb; h += 4) {
            const fv_u32a *pr[4];
            for (int32_t r = 0; r < 4; r++) /* rows past nb: any row of pb, computed, never stored */
                pr[r] = (const fv_u32a *)(pb + (size_t)(h + r < nb ? h + r : 0) * Np);
            av4(pr, vv, N2, hd, out + (i0 + h) * ldo, ldo, FV_MIN(4, nb - h));
        }
    }
}
#undef FV_SCORE_BLOCK
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
            const int64_t t1 = t + 1; /* the thread's next head (static schedule), NULL past the last */
            const uint16_t *next = t1 < nseq * H ? qkv + t1 / H * N * ld + t1 % H * hd : NULL;
            head_bf16(N, hd, q, q + D, q + 2 * D, ld, out + b * N * D + h * hd, D,
                      scr + per * (size_t)omp_get_thread_num(), next);
        }
        fv_free(scr);
        return 0;
    }
#endif
    return fv_attn_dense_bf16_ref(out, qkv, nseq, N, H, hd);
}
