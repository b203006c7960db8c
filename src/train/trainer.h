/* Trainer internals exposed for the tests. */
#ifndef FV_TRAINER_H
#define FV_TRAINER_H

#include <stdint.h>

#include "fibvid/train.h"

/* grad.c: dense heads over sequences of at least this many tokens use GEMM calls, shorter ones per-pair
 * loops (default 64). Process-wide; tests set it to compare both paths. */
extern int32_t fv_train_dense_gemm_min;

#endif /* FV_TRAINER_H */
