/* Dense softmax attention on bf16 operands for bf16 inference (attn_dense_bf16.c): the scores QK^T and the
 * product AV in bf16 with fp32 accumulation (AVX512-BF16 vdpbf16ps), the softmax in fp32, its weights rounded to
 * bf16 for AV (as PyTorch's autocast does), the output rounded to bf16 where the projection reads it. */
#ifndef FV_ATTN_BF16_H
#define FV_ATTN_BF16_H

#include <stdint.h>

/* @nseq sequences of @N tokens, @H heads of @hd: qkv rows (nseq * N, 3 * H * hd) bf16 as the qkv product writes
 * them (q | k | v, heads of hd consecutive values), out rows (nseq * N, H * hd) bf16. Runs the AVX512-BF16 kernel
 * where fv_attn_dense_bf16_fast() says 1, else the plain C reference. Returns 0 or FV_ENOMEM. */
int fv_attn_dense_bf16(uint16_t *out, const uint16_t *qkv, int64_t nseq, int32_t N, int32_t H, int32_t hd);

/* The plain C reference of the above with the same roundings (bf16 operands, weights rounded to bf16 for AV,
 * output rounded to bf16), every sum in double, libm's exp. Returns 0 or FV_ENOMEM. */
int fv_attn_dense_bf16_ref(uint16_t *out, const uint16_t *qkv, int64_t nseq, int32_t N, int32_t H, int32_t hd);

/* 1 when the AVX512-BF16 kernel runs for heads of @hd here (the CPU has AVX512-BF16, hd a multiple of 16). */
int fv_attn_dense_bf16_fast(int32_t hd);

#endif /* FV_ATTN_BF16_H */
