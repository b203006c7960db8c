/* fibvid — video action recognition with a divided space-time Transformer (TimeSformer) whose
 * attention heads use Fibottention masks. Umbrella header: include this one. */
#ifndef FIBVID_FIBVID_H
#define FIBVID_FIBVID_H

#include "fibvid/common.h"
#include "fibvid/video.h"
#include "fibvid/model.h"

#endif /* FIBVID_FIBVID_H */
