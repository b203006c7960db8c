/* libFuzzer harness: resuming a training run (src/train/fit.c, fv_trainer_load_state in trainer.c,
 * fv_model_load): the run directory holds a fuzzed checkpoint.json, the weights and optimizer state it
 * names (ckpt-epoch0001.safetensors, ckpt-epoch0001.optim.safetensors) and train.jsonl, in that order in the
 * input, separated by FZ_SEP lines. The data (2 tiny clips, 2 classes) and settings (a 1-layer model of 8x8
 * frames, so the seed stays small; 1 epoch of batch 1) are fixed; the seed is the directory of a real run.
 * The run's settings name the model's config file, whose path differs per process: the seed says @CONFIG@,
 * which the harness replaces with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/fibvid.h"
#include "../clipgen.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FvDataset *g_ds;
static char g_root[512], g_config[600];
static const char *const g_files[4] = { "checkpoint.json", "ckpt-epoch0001.safetensors",
                                        "ckpt-epoch0001.optim.safetensors", "train.jsonl" };

static void settings(FvFitSettings *s, const char *out_dir, int resume)
{
    fv_fit_default_settings(s);
    s->train = g_ds;
    s->root = g_root;
    s->hflip = 0;
    s->reverse = 0;
    s->config = g_config;
    s->epochs = 1;
    s->batch = 1;
    s->warmup = 0;
    s->out_dir = out_dir;
    s->resume = resume;
    s->log_every = 1;
}

static void write_seeds(const char *dir)
{
    const char *out = fz_subdir("seed_run");
    FvFitSettings s;
    settings(&s, out, 0);
    if (fv_fit_run(&s, NULL) < 0) {
        fprintf(stderr, "%s\n", fv_last_error());
        abort();
    }
    const char *p[4];
    size_t l[4];
    char *t[4];
    for (int i = 0; i < 4; i++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/%s", out, g_files[i]);
        if (!(t[i] = fz_read(path, &l[i]))) {
            fprintf(stderr, "no %s\n", path);
            abort();
        }
        p[i] = t[i];
    }
    char *at = strstr(t[0], g_config);
    if (!at)
        abort();
    memmove(at + 8, at + strlen(g_config), strlen(at + strlen(g_config)) + 1);
    memcpy(at, "@CONFIG@", 8);
    l[0] = strlen(t[0]);
    fz_write_seed(dir, "run_epoch1", p, l, 4);
    /* resuming mid-run: epoch 0 makes the run train its one epoch again */
    char *ck = strstr(t[0], "\"epoch\": 1");
    if (ck) {
        ck[9] = '0';
        fz_write_seed(dir, "run_epoch0", p, l, 4);
    }
    for (int i = 0; i < 4; i++)
        free(t[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init_library();
    snprintf(g_root, sizeof(g_root), "%s", fz_subdir("videos"));
    for (int i = 0; i < 2; i++) {
        FvtClipSpec cs;
        fvt_clip_spec_default(&cs);
        cs.width = 40;
        cs.height = 32;
        cs.nframes = 8;
        char name[32];
        snprintf(name, sizeof(name), "v%d.avi", i);
        char *path = fz_write(g_root, name, "", 0);
        if (fvt_clip_write(path, &cs) < 0)
            abort();
        free(path);
    }
    const char *list = "v0.avi 0\nv1.avi 1\n", *classes = "walk\nrun\n";
    const char *config = "{\"image_size\": 8, \"patch_size\": 4, \"num_frames\": 2, \"hidden_size\": 8, "
                         "\"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"intermediate_size\": 16}";
    char *jp = fz_write(fz_dir(), "config.json", config, strlen(config));
    snprintf(g_config, sizeof(g_config), "%s", jp);
    free(jp);
    char *lp = fz_write(fz_dir(), "train.txt", list, strlen(list));
    char *cp = fz_write(fz_dir(), "classes.txt", classes, strlen(classes));
    if (fv_dataset_load_list(&g_ds, lp, 0, cp) < 0)
        abort();
    free(lp);
    free(cp);
    if (fz_seed_dir()) {
        write_seeds(fz_seed_dir());
        fv_dataset_free(&g_ds);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FzParts parts;
    fz_split(data, size, &parts);
    const char *out = fz_subdir("run");
    for (int i = 1; i < parts.n && i < 4; i++)
        free(fz_write(out, g_files[i], parts.p[i], parts.len[i]));
    /* checkpoint.json with its first @CONFIG@ replaced by the config's path */
    const char *ck = parts.p[0], *at = memmem(ck, parts.len[0], "@CONFIG@", 8);
    const size_t cl = strlen(g_config), pre = at ? (size_t)(at - ck) : parts.len[0];
    char *text = malloc(parts.len[0] + cl + 1);
    if (!text)
        abort();
    memcpy(text, ck, pre);
    size_t n = pre;
    if (at) {
        memcpy(text + n, g_config, cl);
        n += cl;
        memcpy(text + n, at + 8, parts.len[0] - pre - 8);
        n += parts.len[0] - pre - 8;
    }
    free(fz_write(out, g_files[0], text, n));
    free(text);
    FvFitSettings s;
    settings(&s, out, 1);
    FvFitResult r;
    fv_fit_run(&s, &r);
    return 0;
}
