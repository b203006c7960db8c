/* st_reldiff A.safetensors B.safetensors TOL: the relative L2 difference of every F32 tensor of two weight files
 * together, printed with the largest absolute difference and the tolerance; exit 0 when it is at most TOL, 1 when
 * not, 2 when the files cannot be compared. The Slurm test (slurm_single_node.sh) compares weights with it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int main(int argc, char **argv)
{
    FvSafetensors *a = NULL, *b = NULL;
    if (argc != 4) {
        fprintf(stderr, "usage: st_reldiff A.safetensors B.safetensors TOLERANCE\n");
        return 2;
    }
    if (fv_st_open(&a, argv[1]) < 0 || fv_st_open(&b, argv[2]) < 0 || fv_st_count(a) != fv_st_count(b)) {
        fprintf(stderr, "st_reldiff: %s and %s cannot be compared (unreadable, or other tensors)\n", argv[1], argv[2]);
        return 2;
    }
    double num = 0.0, den = 0.0, max_abs = 0.0;
    for (size_t i = 0; i < fv_st_count(a); i++) {
        const FvTensorInfo *ta = fv_st_tensor(a, i), *tb = fv_st_find(b, ta->name);
        if (!tb || ta->dtype != FV_DT_F32 || tb->dtype != FV_DT_F32 || ta->end - ta->begin != tb->end - tb->begin) {
            fprintf(stderr, "st_reldiff: tensor %s differs in kind or size\n", ta->name);
            return 2;
        }
        const float *x = ta->data, *y = tb->data;
        for (size_t k = 0; k < (ta->end - ta->begin) / sizeof(float); k++) {
            const double d = (double)x[k] - (double)y[k];
            num += d * d;
            den += (double)x[k] * x[k];
            max_abs = fmax(max_abs, fabs(d));
        }
    }
    const double rel = sqrt(num / (den > 0 ? den : 1.0)), tol = atof(argv[3]);
    printf("weights differ by %.3g relative (L2), %.3g at most; tolerance %g relative\n", rel, max_abs, tol);
    fv_st_close(&a);
    fv_st_close(&b);
    return rel <= tol ? 0 : 1;
}
