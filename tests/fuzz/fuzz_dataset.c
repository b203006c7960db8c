/* libFuzzer harness: dataset lists (src/eval/dataset.c): generic lists with a classes file, UCF101 and
 * HMDB51 split files, then matching the classes to model labels with a label map (text or JSON).
 * The first byte picks the kind and options; the rest is the files, separated by FZ_SEP lines:
 *   list:   list.txt, classes.txt, label map     ucf101: classInd.txt, trainlist01/testlist01.txt, label map
 *   hmdb51: brush_hair, cartwheel, catch _test_split1.txt, label map */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fibvid/fibvid.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { K_LIST = 0, K_UCF = 1, K_HMDB = 2, K_LIST_UNNAMED = 3 };

static const char *const hmdb_files[3] = { "brush_hair_test_split1.txt", "cartwheel_test_split1.txt",
                                           "catch_test_split1.txt" };
static const char *const model_labels[5] = { "apply eye makeup", "archery", "brush_hair", "cartwheel", "catch" };

static void seed(const char *dir, const char *name, uint8_t mode, const char *const *files, int n)
{
    const char *p[FZ_MAX_PARTS + 1];
    size_t l[FZ_MAX_PARTS + 1];
    char m[2] = { (char)mode, 0 };
    /* the mode byte leads the first file */
    size_t l0 = strlen(files[0]);
    char *first = malloc(l0 + 2);
    if (!first)
        abort();
    first[0] = m[0];
    memcpy(first + 1, files[0], l0 + 1);
    p[0] = first;
    l[0] = l0 + 1;
    for (int i = 1; i < n; i++) {
        p[i] = files[i];
        l[i] = strlen(files[i]);
    }
    fz_write_seed(dir, name, p, l, n);
    free(first);
}

static void write_seeds(const char *dir)
{
    const char *list[3] = { "a/v1.avi 0\nb/v 2.avi 1\r\nc/v3.mp4\t2\n# comment\n", "ApplyEyeMakeup\nArchery\ncatch\n",
                            "ApplyEyeMakeup\tapply eye makeup\nArchery 1\n# x\ncatch catch\n" };
    seed(dir, "list_classes_map", K_LIST, list, 3);
    const char *csv[3] = { "path,label\nx/a.mp4,1\ny/b c.mp4,2\n", "brush hair\ncartwheel\n",
                           "{\"brush hair\": \"brush_hair\", \"cartwheel\": 3}" };
    seed(dir, "list_csv_json_map", K_LIST | 8, csv, 3);
    const char *unnamed[1] = { "v0.avi 0\nv1.avi 4\n" };
    seed(dir, "list_unnamed", K_LIST_UNNAMED, unnamed, 1);
    const char *ucf_train[3] = { "1 ApplyEyeMakeup\n2 Archery\r\n",
                                 "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2 \n",
                                 "" };
    seed(dir, "ucf101_train", K_UCF | 4, ucf_train, 2);
    const char *ucf_test[3] = { "1 ApplyEyeMakeup\n2 Archery\n",
                                ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
                                 "Archery/v_Archery_g01_c01.avi\r\n"),
                                "Archery\tarchery\n" };
    seed(dir, "ucf101_test_map", K_UCF, ucf_test, 3);
    const char *hmdb[4] = { "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nApril_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 \n",
                            ("Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi 2 \n"
                             "Bodenturnen_2004_cartwheel_f_cm_np1_le_med_1.avi 0 \n"),
                            "Ball_hochwerfen_catch_u_cm_np1_fr_goo_0.avi 2 \n", "" };
    seed(dir, "hmdb51_test", K_HMDB, hmdb, 3);
    seed(dir, "hmdb51_train_map", K_HMDB | 4, hmdb, 4);
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
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    const int kind = mode & 3;
    const FvSubset subset = (mode & 4) ? FV_SUBSET_TRAIN : FV_SUBSET_TEST;
    FzParts parts;
    fz_split(data + 1, size - 1, &parts);
    const char *dir = fz_subdir("split");
    char *paths[FZ_MAX_PARTS] = { 0 };
    char *map_path = NULL;
    FvDataset *ds = NULL;
    int ret = -1, nfiles = 0;

    switch (kind) {
    case K_LIST:
    case K_LIST_UNNAMED:
        paths[nfiles++] = fz_write(dir, "list.txt", parts.p[0], parts.len[0]);
        if (kind == K_LIST && parts.n > 1)
            paths[nfiles++] = fz_write(dir, "classes.txt", parts.p[1], parts.len[1]);
        ret = fv_dataset_load_list(&ds, paths[0], (mode & 8) ? 1 : 0, nfiles > 1 ? paths[1] : NULL);
        if (parts.n > 2)
            map_path = fz_write(dir, "labelmap.txt", parts.p[2], parts.len[2]);
        break;
    case K_UCF:
        paths[nfiles++] = fz_write(dir, "classInd.txt", parts.p[0], parts.len[0]);
        if (parts.n > 1)
            paths[nfiles++] = fz_write(dir, subset == FV_SUBSET_TRAIN ? "trainlist01.txt" : "testlist01.txt",
                                       parts.p[1], parts.len[1]);
        ret = fv_dataset_load_ucf101(&ds, dir, 1, subset);
        if (parts.n > 2)
            map_path = fz_write(dir, "labelmap.txt", parts.p[2], parts.len[2]);
        break;
    case K_HMDB:
        for (int i = 0; i < parts.n && i < 3; i++)
            paths[nfiles++] = fz_write(dir, hmdb_files[i], parts.p[i], parts.len[i]);
        ret = fv_dataset_load_hmdb51(&ds, dir, 1, subset);
        if (parts.n > 3)
            map_path = fz_write(dir, "labelmap.txt", parts.p[3], parts.len[3]);
        break;
    }
    if (ret == 0) {
        if (!ds || ds->num_classes < 1 || ds->num_entries < 0)
            abort();
        for (int64_t i = 0; i < ds->num_entries; i++) /* every entry's label names one of the classes */
            if (ds->entries[i].label < 0 || ds->entries[i].label >= ds->num_classes ||
                strcmp(ds->entries[i].class_name, ds->classes[ds->entries[i].label]) != 0 || !ds->entries[i].path)
                abort();
        fv_dataset_hash(ds);
        FvLabelMatchSettings ms;
        fv_label_match_default_settings(&ms);
        ms.label_map_path = map_path;
        ms.by_index = (mode & 16) != 0;
        int32_t *map = calloc((size_t)ds->num_classes, sizeof(int32_t));
        if (!map)
            abort();
        if (fv_label_match(ds, model_labels, 5, &ms, map) == 0)
            for (int32_t c = 0; c < ds->num_classes; c++)
                if (map[c] < 0 || map[c] >= 5)
                    abort();
        free(map);
        fv_dataset_free(&ds);
    }
    for (int i = 0; i < nfiles; i++)
        free(paths[i]);
    free(map_path);
    return 0;
}
