/* Diagnostics internals: the hooks the forward pass (forward.c) calls when a collector is attached to its
 * state, and the pieces the tests check on hand-built inputs. */
#ifndef FV_DIAG_INTERNAL_H
#define FV_DIAG_INTERNAL_H

#include <stdint.h>

#include "kernels/attention.h"
#include "fibvid/diag.h"

/* forward.c, once per forward pass after the plans exist: size the collector's buffers for this shape.
 * Fails with FV_EINVAL when the collector already holds passes of another shape. */
int fv_diag_forward_begin(FvDiag *d, const FvModelConfig *cfg, int32_t T, int32_t Hp, int32_t Wp,
                          const FvAttnPlan *splan, const FvAttnPlan *tplan);
/* Instead of fv_attn_forward for attention @kind of layer @layer: the same outputs in @out, plus this
 * attention's statistics and head-output similarities. */
int fv_diag_attention(FvDiag *d, int32_t layer, FvDiagAttnKind kind, const FvAttnPlan *p, const float *const *own,
                      const float *qkv, float *out, int32_t B, const FvAttnScratch *scr);
/* A layer whose attention @kind applies layer @root's weights (attention sharing, SPEC 4.3): the same weights,
 * so the same statistics (density, entropy, distances, masks' Jaccard, cls map) as @root's in this pass, and
 * its own head-output similarities from @out (B sequences of @N tokens). */
int fv_diag_shared(FvDiag *d, int32_t layer, FvDiagAttnKind kind, int32_t root, const float *out, int32_t B,
                   int32_t N);
/* The pass finished: count it. */
void fv_diag_forward_end(FvDiag *d);

/* Distances on a Hp x Wp patch grid: *dtab (2Hp-1, 2Wp-1) the Euclidean length of each (dy, dx), *dall (Hp*Wp)
 * the sum of the distances from each patch to every patch. Wp = 0: a line of Hp tokens (dtab NULL,
 * distance |j - k|). Free both with fv_free. Returns 0 or FV_ENOMEM. */
int fv_diag_geometry(int32_t Hp, int32_t Wp, float **dtab, float **dall);

/* Head-output similarity of the H heads of @X (rows, H*hd), row stride @ldx: (H, H) linear CKA (centred
 * columns), cosine (not centred) and Frobenius distance. @xc (rows * H*hd floats) and @gram (max((H*hd)^2,
 * 2*H*hd) floats, 8-byte aligned) are scratch. */
void fv_diag_head_sims(const float *X, int64_t rows, int64_t ldx, int32_t H, int32_t hd, float *xc, float *gram,
                       double *cka, double *cosine, double *frob);

/* Mask Jaccard index of heads @a and @b of plan @p (1 for dense). */
double fv_diag_plan_jaccard(const FvAttnPlan *p, int32_t a, int32_t b);

#endif /* FV_DIAG_INTERNAL_H */
