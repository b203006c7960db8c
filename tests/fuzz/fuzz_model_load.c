/* libFuzzer harness: loading a model (src/model/model_load.c) from a Hugging Face directory whose
 * config.json (and, after an FZ_SEP line, preprocessor_config.json) is the fuzz input and whose
 * model.safetensors is fixed: a random 2-layer "test" model with Castling's own tensors, so configs of every
 * attention kind can match it. A model that loads runs one forward pass on a zero clip of its own size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/fibvid.h"
#include "model/model_internal.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *g_weights; /* the fixed model.safetensors, copied into the model directory per input */
static size_t g_weights_len;

static void make_weights(FvModelConfig *c)
{
    FvModel *m = NULL;
    if (fv_model_config_preset(c, "test") < 0)
        abort();
    c->spatial.kind = FV_ATTN_CASTLING;
    c->temporal.kind = FV_ATTN_CASTLING;
    if (fv_model_create_random(&m, c, 7) < 0) {
        fprintf(stderr, "%s\n", fv_last_error());
        abort();
    }
    char *path = fz_write(fz_dir(), "weights.safetensors", "", 0);
    if (fv_model_save(m, path) < 0)
        abort();
    fv_model_close(&m);
    g_weights = fz_read(path, &g_weights_len);
    free(path);
}

static void write_seeds(const char *dir, const FvModelConfig *base)
{
    static const FvAttnKind kinds[4] = { FV_ATTN_CASTLING, FV_ATTN_DENSE, FV_ATTN_FIB, FV_ATTN_SIMA };
    static const char *const names[4] = { "castling", "dense", "fib", "sima" };
    const char *pre = "{\"size\": {\"shortest_edge\": 40}, \"image_mean\": [0.5, 0.4, 0.3], "
                      "\"image_std\": [0.2, 0.25, 0.3]}";
    for (int i = 0; i < 4; i++) {
        FvModelConfig c = *base;
        c.spatial.kind = kinds[i];
        c.temporal.kind = kinds[(i + 1) % 4];
        char *text = fv_config_to_json(&c, NULL);
        char name[64];
        snprintf(name, sizeof(name), "config_%s", names[i]);
        const char *p[2] = { text, pre };
        size_t l[2] = { strlen(text), strlen(pre) };
        fz_write_seed(dir, name, p, l, i == 0 ? 2 : 1);
        free(text);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init_library();
    FvModelConfig c;
    make_weights(&c);
    if (fz_seed_dir()) {
        write_seeds(fz_seed_dir(), &c);
        free(g_weights);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FzParts parts;
    fz_split(data, size, &parts);
    const char *dir = fz_subdir("model");
    free(fz_write(dir, "config.json", parts.p[0], parts.len[0]));
    if (parts.n > 1)
        free(fz_write(dir, "preprocessor_config.json", parts.p[1], parts.len[1]));
    free(fz_write(dir, "model.safetensors", g_weights, g_weights_len));
    FvModel *m = NULL;
    if (fv_model_load(&m, dir) == 0) {
        const FvModelConfig *c = fv_model_config(m);
        for (int32_t i = 0; i < c->num_labels; i++)
            if (!fv_model_label(m, i))
                abort();
        const int32_t T = c->num_frames, S = c->image_size;
        const size_t n = (size_t)T * 3 * (size_t)S * (size_t)S;
        float *clip = n <= (1u << 22) ? calloc(n, sizeof(float)) : NULL;
        float *logits = calloc((size_t)c->num_labels, sizeof(float));
        FvState *st = NULL;
        if (clip && logits && fv_state_create(&st, m) == 0) {
            if (fv_state_forward(st, clip, 1, T, S, S, logits) == 0)
                for (int32_t i = 0; i < c->num_labels; i++)
                    if (!isfinite(logits[i])) {
                        fprintf(stderr, "non-finite logit %d on a zero clip\n", i);
                        abort();
                    }
            fv_state_close(&st);
        }
        free(clip);
        free(logits);
        fv_model_close(&m);
    }
    return 0;
}
