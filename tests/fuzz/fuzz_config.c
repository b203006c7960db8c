/* libFuzzer harness: config.json (+ preprocessor_config.json) parsing (fv_config_parse, src/model/config.c)
 * and the write/read-back round trip: a config that parses is written with fv_config_to_json, which must
 * parse again to the same config and labels (compared as the text written from each). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/fibvid.h"
#include "model/model_internal.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void free_labels(char **labels, int32_t n)
{
    for (int32_t i = 0; labels && i < n; i++)
        free(labels[i]);
    free(labels);
}

static void write_seeds(const char *dir)
{
    static const char *const presets[] = { "test", "synth", "base" };
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
        FvModelConfig c;
        if (fv_model_config_preset(&c, presets[i]) < 0)
            abort();
        if (i == 0) { /* Fibottention spatially, SimA temporally, a pooling and sharing: every fibvid_* key */
            c.spatial.kind = FV_ATTN_FIB;
            c.temporal.kind = FV_ATTN_SIMA;
            c.sampling = FV_SAMPLING_DENSE;
            c.short_side = 40;
        }
        c.num_labels = 3; /* the presets' 400 labels would make a 19 KB seed */
        char *text = fv_config_to_json(&c, NULL);
        if (!text)
            abort();
        char name[64];
        snprintf(name, sizeof(name), "preset_%s.json", presets[i]);
        const char *p[2] = { text, "{\"size\": {\"shortest_edge\": 36}, \"image_mean\": [0.5, 0.4, 0.3], "
                                   "\"image_std\": [0.2, 0.25, 0.3]}" };
        size_t l[2] = { strlen(p[0]), strlen(p[1]) };
        fz_write_seed(dir, name, p, l, i == 0 ? 2 : 1);
        free(text);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init_library();
    if (fz_seed_dir()) {
        write_seeds(fz_seed_dir());
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FzParts parts;
    fz_split(data, size, &parts);
    char *cfg_text = strndup(parts.p[0], parts.len[0]);
    char *pre_text = parts.n > 1 ? strndup(parts.p[1], parts.len[1]) : NULL;
    FvModelConfig c1, c2;
    char **l1 = NULL, **l2 = NULL;
    if (fv_config_parse(cfg_text, pre_text, "fuzz", &c1, &l1) == 0) {
        char *j1 = fv_config_to_json(&c1, l1);
        if (!j1)
            abort();
        if (fv_config_parse(j1, NULL, "round trip", &c2, &l2) != 0) {
            fprintf(stderr, "written config does not read back: %s\n%s\n", fv_last_error(), j1);
            abort();
        }
        char *j2 = fv_config_to_json(&c2, l2);
        if (!j2 || strcmp(j1, j2) != 0) {
            fprintf(stderr, "round trip changed the config:\n%s\n---\n%s\n", j1, j2 ? j2 : "(null)");
            abort();
        }
        free(j1);
        free(j2);
        free_labels(l2, c2.num_labels);
        free_labels(l1, c1.num_labels);
    }
    free(cfg_text);
    free(pre_text);
    return 0;
}
