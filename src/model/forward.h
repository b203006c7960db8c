/* The one forward pass of the TimeSformer over a batch of clips, and its backward: what the trainer uses
 * beyond the public state API (fibvid/model.h). A training state keeps every layer's activations for the
 * backward; an inference state shares one set of buffers between the layers. */
#ifndef FV_FORWARD_H
#define FV_FORWARD_H

#include <stdint.h>

#include "fibvid/model.h"

/* A state for training on clips of T x H x W, at most @max_batch per call: every layer's activations are kept
 * for fv_state_backward(). Returns 0 and *@out (free with fv_state_close), FV_EINVAL or FV_ENOMEM. */
int fv_state_create_train(FvState **out, const FvModel *m, int32_t max_batch, int32_t T, int32_t H, int32_t W);

/* The weight of auxiliary training branches (Castling-ViT's masked softmax, SPEC 4.2) from the next forward
 * of a training state on; inference states never run them. */
void fv_state_set_aux_weight(FvState *st, float w);

/* The logits (B, num_labels) of the last forward. */
const float *fv_state_logits(const FvState *st);

/* Backward of the last forward of a training state from the gradient of the loss with respect to its logits
 * @dlogits (B, num_labels), B as in that forward: adds the gradient of every parameter to @grad (zero it
 * first), laid out like the model's weight block @param (the block fv_model_adopt_weights made: grad[i]
 * belongs to param[i]). Returns 0, or FV_EINVAL for a state that does not train. */
int fv_state_backward(FvState *st, const float *dlogits, float *grad, const float *param);

#endif /* FV_FORWARD_H */
