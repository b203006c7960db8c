/* The public headers compile on their own as strict C11 (-pedantic -Werror), every one of them first so that
 * each is self-contained, and together through the umbrella header; test_headers.cpp does the same as C++.
 * Like whisper.cpp's tests/test-c.c: a build check, the program only prints the version. */
#include "fibvid/common.h"
#include "fibvid/video.h"
#include "fibvid/attention.h"
#include "fibvid/model.h"
#include "fibvid/predict.h"
#include "fibvid/diag.h"
#include "fibvid/eval.h"
#include "fibvid/train.h"
#include "fibvid/synth.h"
#include "fibvid/fibvid.h"

#include <stdio.h>

int main(void)
{
    FvPredictSettings ps;
    fv_predict_default_settings(&ps);
    printf("fibvid %s (C), top-k %d\n", fv_version(), ps.top_k);
    return 0;
}
