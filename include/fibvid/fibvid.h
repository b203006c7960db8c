/* fibvid — video action recognition with a divided space-time Transformer (TimeSformer) whose attention
 * heads use Fibottention masks. Umbrella header: include this one.
 *
 *   decode -> sample -> preprocess (video.h) -> model and run states (model.h) -> attention kinds
 *   (attention.h) -> prediction (predict.h) -> diagnostics and reports (diag.h) -> evaluation (eval.h);
 *   training (train.h) reuses the model's one forward; synth.h makes a procedural data set. */
#ifndef FIBVID_FIBVID_H
#define FIBVID_FIBVID_H

#include "fibvid/common.h"
#include "fibvid/video.h"
#include "fibvid/attention.h"
#include "fibvid/model.h"
#include "fibvid/predict.h"
#include "fibvid/diag.h"
#include "fibvid/eval.h"
#include "fibvid/train.h"
#include "fibvid/synth.h"
#include "fibvid/dist.h"

#endif /* FIBVID_FIBVID_H */
