/* Tests of the procedural data set (fibvid/synth.h, `fibvid synth`): the class table, bad settings,
 * determinism (same seed and any thread count -> same bytes, another seed -> other clips), the UCF101 layout
 * and group split, every listed clip decoding with the expected frame count, the motions themselves (clean
 * renders measured frame by frame) and the command line. Inputs are generated here, at tiny sizes. */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <jansson.h>

#include "fibvid/eval.h"
#include "fibvid/synth.h"
#include "fibvid/video.h"
#include "testutil.h"

enum { N_CLIPS = 5 }; /* 2 groups: g01 (3 clips) is the test set, g02 (2 clips) the training set */

static char *g_tmp;
static char *g_a, *g_b, *g_c; /* seed 7 on 1 thread, seed 7 on 2 threads, seed 8 */

static void tiny_settings(FvSynthSettings *s, const char *dir, uint64_t seed)
{
    fv_synth_default_settings(s);
    s->out_dir = dir;
    s->clips_per_class = N_CLIPS;
    s->seed = seed;
    s->width = 64;
    s->height = 48;
    s->fps = 25;
    s->min_seconds = 0.4; /* 10..16 frames */
    s->max_seconds = 0.64;
}

static int setup(void **state)
{
    (void)state;
    g_tmp = fvt_tmpdir();
    if (!g_tmp)
        return -1;
    g_a = fvt_join(g_tmp, "a");
    g_b = fvt_join(g_tmp, "b/nested");
    g_c = fvt_join(g_tmp, "c");
    FvSynthSettings s;
    tiny_settings(&s, g_a, 7);
    fv_set_num_threads(1);
    if (fv_synth_run(&s, NULL, NULL) < 0) {
        fprintf(stderr, "synth a: %s\n", fv_last_error());
        return -1;
    }
    tiny_settings(&s, g_b, 7);
    fv_set_num_threads(2);
    if (fv_synth_run(&s, NULL, NULL) < 0) {
        fprintf(stderr, "synth b: %s\n", fv_last_error());
        return -1;
    }
    tiny_settings(&s, g_c, 8);
    if (fv_synth_run(&s, NULL, NULL) < 0) {
        fprintf(stderr, "synth c: %s\n", fv_last_error());
        return -1;
    }
    fv_set_num_threads(0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fvt_rmtree(g_tmp);
    free(g_tmp);
    free(g_a);
    free(g_b);
    free(g_c);
    return 0;
}

static int class_index(const char *name)
{
    for (int32_t i = 0; i < fv_synth_num_classes(); i++)
        if (!strcmp(fv_synth_class_name(i), name))
            return i;
    return -1;
}

static void test_class_table(void **state)
{
    (void)state;
    const int32_t n = fv_synth_num_classes();
    assert_true(n >= 10);
    for (int32_t i = 0; i < n; i++) {
        const char *a = fv_synth_class_name(i);
        assert_non_null(a);
        for (const char *p = a; *p; p++)
            assert_true((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'));
        if (i > 0)
            assert_true(strcmp(fv_synth_class_name(i - 1), a) < 0); /* alphabetical, like UCF101 */
        /* both relations pair classes up */
        assert_int_equal(fv_synth_hflip_class(fv_synth_hflip_class(i)), i);
        assert_int_equal(fv_synth_reverse_class(fv_synth_reverse_class(i)), i);
    }
    assert_null(fv_synth_class_name(n));
    assert_null(fv_synth_class_name(-1));
    assert_int_equal(fv_synth_hflip_class(n), -1);
    int l = class_index("MoveLeft"), r = class_index("MoveRight"), cw = class_index("RotateClockwise"),
        acw = class_index("RotateAnticlockwise"), up = class_index("MoveUp"), down = class_index("MoveDown");
    int grow = class_index("Grow"), shrink = class_index("Shrink"), ap = class_index("Approach"),
        sep = class_index("Separate");
    assert_true(l >= 0 && r >= 0 && cw >= 0 && acw >= 0 && up >= 0 && down >= 0);
    assert_int_equal(fv_synth_hflip_class(l), r);
    assert_int_equal(fv_synth_hflip_class(cw), acw);
    assert_int_equal(fv_synth_hflip_class(up), up);
    assert_int_equal(fv_synth_reverse_class(up), down);
    assert_int_equal(fv_synth_reverse_class(grow), shrink);
    assert_int_equal(fv_synth_reverse_class(ap), sep);
    assert_int_equal(fv_synth_reverse_class(cw), acw);
}

static void test_bad_settings(void **state)
{
    (void)state;
    FvSynthSettings s;
    char *dir = fvt_join(g_tmp, "bad");
    tiny_settings(&s, NULL, 1);
    assert_int_equal(fv_synth_run(&s, NULL, NULL), FV_EINVAL);
    tiny_settings(&s, dir, 1);
    s.width = 63;
    assert_int_equal(fv_synth_run(&s, NULL, NULL), FV_EINVAL);
    tiny_settings(&s, dir, 1);
    s.clips_per_class = 1;
    assert_int_equal(fv_synth_run(&s, NULL, NULL), FV_EINVAL);
    tiny_settings(&s, dir, 1);
    s.min_seconds = 2;
    s.max_seconds = 1;
    assert_int_equal(fv_synth_run(&s, NULL, NULL), FV_EINVAL);
    assert_int_equal(fv_synth_clip_frames(&s, 0, 0), FV_EINVAL);
    tiny_settings(&s, dir, 1);
    assert_int_equal(fv_synth_clip_frames(&s, fv_synth_num_classes(), 0), FV_EINVAL);
    assert_int_equal(fv_synth_render(&s, 0, -1, (uint8_t *)dir), FV_EINVAL);
    /* the output directory below a regular file: an input error naming the path */
    char *file = fvt_join(g_tmp, "plainfile");
    assert_int_equal(fvt_write_file(file, "x", 1), 0);
    char *under = fvt_join(file, "out");
    tiny_settings(&s, under, 1);
    int ret = fv_synth_run(&s, NULL, NULL);
    assert_true(ret < 0);
    assert_true(fv_error_is_input(ret));
    assert_non_null(strstr(fv_last_error(), "plainfile"));
    free(under);
    free(file);
    free(dir);
}

/* The relative paths of every file of a data set: the four list files and the listed clips. */
static int dataset_files(const char *dir, char ***out)
{
    static const char *const fixed[] = { "classInd.txt", "trainlist01.txt", "testlist01.txt", "synth.json" };
    int n = 0, cap = 16;
    char **v = malloc(sizeof(char *) * (size_t)cap);
    for (int i = 0; i < 4; i++)
        v[n++] = strdup(fixed[i]);
    const char *lists[2] = { "trainlist01.txt", "testlist01.txt" };
    for (int l = 0; l < 2; l++) {
        char *path = fvt_join(dir, lists[l]);
        char *text = fvt_read_file(path, NULL);
        free(path);
        assert_non_null(text);
        for (char *line = strtok(text, "\r\n"); line; line = strtok(NULL, "\r\n")) {
            char *sp = strchr(line, ' ');
            if (sp)
                *sp = '\0';
            if (n == cap)
                v = realloc(v, sizeof(char *) * (size_t)(cap *= 2));
            v[n++] = strdup(line);
        }
        free(text);
    }
    *out = v;
    return n;
}

static void free_files(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void test_determinism(void **state)
{
    (void)state;
    char **files;
    int n = dataset_files(g_a, &files);
    assert_int_equal(n, 4 + fv_synth_num_classes() * N_CLIPS);
    int differ_c = 0, clips = 0;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        char *pa = fvt_join(g_a, files[i]), *pb = fvt_join(g_b, files[i]), *pc = fvt_join(g_c, files[i]);
        size_t na, nb, nc;
        char *a = fvt_read_file(pa, &na), *b = fvt_read_file(pb, &nb), *c = fvt_read_file(pc, &nc);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        if (na != nb || memcmp(a, b, na))
            fail_msg("%s differs between two runs with the same seed (1 and 2 threads)", files[i]);
        if (strstr(files[i], ".avi")) {
            clips++;
            bytes += na;
            differ_c += na != nc || memcmp(a, c, na) != 0;
        }
        free(a);
        free(b);
        free(c);
        free(pa);
        free(pb);
        free(pc);
    }
    printf("%d clips, %zu bytes, identical for the same seed; %d of them differ with another seed\n", clips,
           bytes, differ_c);
    assert_int_equal(differ_c, clips);
    free_files(files, n);
}

/* Read a list file; checks every line ends in CRLF and returns the lines (CR LF removed). */
static int read_lines(const char *dir, const char *name, char ***out)
{
    char *path = fvt_join(dir, name);
    size_t len;
    char *text = fvt_read_file(path, &len);
    free(path);
    assert_non_null(text);
    assert_true(len > 2 && text[len - 2] == '\r' && text[len - 1] == '\n');
    int n = 0;
    char **v = malloc(sizeof(char *) * (len + 1));
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl > p && nl[-1] == '\r');
        nl[-1] = '\0';
        v[n++] = strdup(p);
        p = nl + 1;
    }
    free(text);
    *out = v;
    return n;
}

/* Clip index within its class from group g and clip c: the first N % G groups hold one clip more. */
static int clip_index(int g, int c, int N, int G)
{
    int base = N / G, extra = N % G;
    return (g - 1) * base + (g - 1 < extra ? g - 1 : extra) + c - 1;
}

static void test_layout(void **state)
{
    (void)state;
    const int32_t K = fv_synth_num_classes();
    const int G = 2, T = 1; /* 5 clips per class: ceil(5/4) = 2 groups, round(7*2/25) = 1 test group */
    char **ci, **tr, **te;
    int nci = read_lines(g_a, "classInd.txt", &ci);
    int ntr = read_lines(g_a, "trainlist01.txt", &tr);
    int nte = read_lines(g_a, "testlist01.txt", &te);
    assert_int_equal(nci, K);
    for (int i = 0; i < K; i++) {
        char want[128];
        snprintf(want, sizeof(want), "%d %s", i + 1, fv_synth_class_name(i));
        assert_string_equal(ci[i], want);
    }
    int seen[64][8][8];
    memset(seen, 0, sizeof(seen));
    FvSynthSettings s;
    tiny_settings(&s, g_a, 7);
    double min_motion = 1e9;
    for (int l = 0; l < 2; l++) {
        char **lines = l ? te : tr;
        int nl = l ? nte : ntr;
        for (int i = 0; i < nl; i++) {
            char cls[64], cls2[64];
            int g, c, label = -1, used = 0;
            /* Class/v_Class_gGG_cCC.avi [label] */
            int k = l ? sscanf(lines[i], "%63[^/]/v_%63[^_]_g%2d_c%2d.avi%n", cls, cls2, &g, &c, &used)
                      : sscanf(lines[i], "%63[^/]/v_%63[^_]_g%2d_c%2d.avi %d%n", cls, cls2, &g, &c, &label, &used);
            if (k != (l ? 4 : 5) || lines[i][used] != '\0')
                fail_msg("bad list line '%s'", lines[i]);
            assert_string_equal(cls, cls2);
            int ix = class_index(cls);
            assert_true(ix >= 0);
            char path[256];
            snprintf(path, sizeof(path), "%s/v_%s_g%02d_c%02d.avi", cls, cls, g, c);
            assert_int_equal(strncmp(lines[i], path, strlen(path)), 0);
            if (!l)
                assert_int_equal(label, ix + 1);
            /* group split: whole groups on one side */
            assert_true(g >= 1 && g <= G && c >= 1);
            if (l)
                assert_true(g <= T);
            else
                assert_true(g > T);
            assert_int_equal(seen[ix][g][c], 0);
            seen[ix][g][c] = 1;

            /* the clip decodes, with the frames the renderer drew, and changes over time */
            char *full = fvt_join(g_a, path);
            FvVideo *v = NULL;
            if (fv_video_open(&v, full) < 0)
                fail_msg("%s: %s", path, fv_last_error());
            const FvVideoInfo *info = fv_video_info(v);
            int want = fv_synth_clip_frames(&s, ix, clip_index(g, c, N_CLIPS, G));
            assert_true(want >= 10 && want <= 16);
            assert_int_equal(info->nframes, want);
            assert_int_equal(info->width, 64);
            assert_int_equal(info->height, 48);
            assert_string_equal(info->codec, "mpeg4");
            assert_true(fabs(info->fps - 25) < 1e-6);
            int64_t idx[2] = { 0, info->nframes - 1 };
            uint8_t rgb[2 * 64 * 48 * 3];
            assert_int_equal(fv_video_read_rgb(v, idx, 2, 64, 48, rgb), 0);
            double d = 0;
            for (int p = 0; p < 64 * 48 * 3; p++)
                d += abs((int)rgb[p] - (int)rgb[64 * 48 * 3 + p]);
            d /= 64 * 48 * 3;
            min_motion = d < min_motion ? d : min_motion;
            fv_video_close(&v);
            free(full);
        }
    }
    printf("smallest mean |first - last frame| over the clips: %.2f\n", min_motion);
    assert_true(min_motion > 1.0);
    /* every clip of every class is listed once */
    int total = 0;
    for (int ix = 0; ix < K; ix++) {
        int nclass = 0;
        for (int g = 1; g <= G; g++)
            for (int c = 1; c < 8; c++)
                nclass += seen[ix][g][c];
        assert_int_equal(nclass, N_CLIPS);
        total += nclass;
    }
    assert_int_equal(ntr, K * 2);
    assert_int_equal(nte, K * 3);
    assert_int_equal(total, K * N_CLIPS);

    /* the library's UCF101 reader takes the directory as it is */
    FvDataset *ds = NULL;
    assert_int_equal(fv_dataset_load_ucf101(&ds, g_a, 1, FV_SUBSET_TRAIN), 0);
    assert_int_equal(ds->num_classes, K);
    assert_int_equal(ds->num_entries, ntr);
    fv_dataset_free(&ds);
    assert_int_equal(fv_dataset_load_ucf101(&ds, g_a, 1, FV_SUBSET_TEST), 0);
    assert_int_equal(ds->num_entries, nte);
    assert_int_equal(ds->entries[0].label, 0);
    fv_dataset_free(&ds);

    /* no partial files left */
    for (int ix = 0; ix < K; ix++) {
        char p[512];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/%s/v_%s_g01_c01.avi.part", g_a, fv_synth_class_name(ix), fv_synth_class_name(ix));
        assert_true(stat(p, &sb) < 0);
    }

    /* synth.json: settings and the flip pairs, by name */
    char *jp = fvt_join(g_a, "synth.json");
    json_error_t jerr;
    json_t *j = json_load_file(jp, 0, &jerr);
    free(jp);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "seed")), 7);
    assert_int_equal(json_integer_value(json_object_get(j, "clips_per_class")), N_CLIPS);
    assert_int_equal(json_array_size(json_object_get(j, "classes")), (size_t)K);
    json_t *fp = json_object_get(j, "flip_pairs");
    assert_int_equal(json_array_size(fp), 2);
    int found_lr = 0;
    for (size_t i = 0; i < json_array_size(fp); i++) {
        const char *a = json_string_value(json_array_get(json_array_get(fp, i), 0));
        const char *b = json_string_value(json_array_get(json_array_get(fp, i), 1));
        assert_true(a && b && class_index(a) >= 0);
        assert_int_equal(fv_synth_hflip_class(class_index(a)), class_index(b));
        found_lr += !strcmp(a, "MoveLeft") && !strcmp(b, "MoveRight");
    }
    assert_int_equal(found_lr, 1);
    assert_int_equal(json_array_size(json_object_get(j, "reverse_pairs")), 5);
    json_decref(j);

    for (int i = 0; i < nci; i++)
        free(ci[i]);
    for (int i = 0; i < ntr; i++)
        free(tr[i]);
    for (int i = 0; i < nte; i++)
        free(te[i]);
    free(ci);
    free(tr);
    free(te);
}

/* Per-frame measurements of a clean render (grey 128 background, the main objects only). */
typedef struct Meas {
    double area, cx, cy, spread, angle; /* angle: from the centroid to the centroid of colour P */
} Meas;

static void measure(const uint8_t *f, int W, int H, const uint8_t P[3], Meas *m)
{
    double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, pn = 0, px = 0, py = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *q = f + ((size_t)y * W + x) * 3;
            int d = abs(q[0] - 128) + abs(q[1] - 128) + abs(q[2] - 128);
            if (d <= 30)
                continue;
            n++;
            sx += x;
            sy += y;
            sxx += (double)x * x;
            syy += (double)y * y;
            if (q[0] == P[0] && q[1] == P[1] && q[2] == P[2]) {
                pn++;
                px += x;
                py += y;
            }
        }
    m->area = n;
    m->cx = n ? sx / n : 0;
    m->cy = n ? sy / n : 0;
    m->spread = n ? sqrt(sxx / n - m->cx * m->cx + syy / n - m->cy * m->cy) : 0;
    m->angle = pn ? atan2(py / pn - m->cy, px / pn - m->cx) : 0;
}

/* The most frequent non-grey colour of a frame: one of the two colours of the main object. */
static void main_color(const uint8_t *f, int W, int H, uint8_t P[3])
{
    int best = 0;
    memset(P, 128, 3);
    for (int i = 0; i < W * H; i += 3) {
        const uint8_t *q = f + (size_t)i * 3;
        if (abs(q[0] - 128) + abs(q[1] - 128) + abs(q[2] - 128) <= 30)
            continue;
        int cnt = 0;
        for (int k = 0; k < W * H; k++)
            cnt += !memcmp(f + (size_t)k * 3, q, 3);
        if (cnt > best) {
            best = cnt;
            memcpy(P, q, 3);
        }
    }
}

static void test_motions(void **state)
{
    (void)state;
    FvSynthSettings s;
    fv_synth_default_settings(&s);
    s.width = 96;
    s.height = 72;
    s.min_seconds = s.max_seconds = 1.0;
    s.clean = 1;
    const int W = 96, H = 72, S = 72, T = 25, CLIPS = 4;
    uint8_t *rgb = malloc((size_t)T * W * H * 3);
    Meas m[25];
    for (int32_t cls = 0; cls < fv_synth_num_classes(); cls++) {
        const char *name = fv_synth_class_name(cls);
        for (int clip = 0; clip < CLIPS; clip++) {
            assert_int_equal(fv_synth_clip_frames(&s, cls, clip), T);
            assert_int_equal(fv_synth_render(&s, cls, clip, rgb), 0);
            uint8_t P[3];
            main_color(rgb, W, H, P);
            for (int t = 0; t < T; t++)
                measure(rgb + (size_t)t * W * H * 3, W, H, P, &m[t]);
            double dx = m[T - 1].cx - m[0].cx, dy = m[T - 1].cy - m[0].cy;
            int ok = 1;
            char what[160] = "";
            if (!strcmp(name, "MoveRight") || !strcmp(name, "MoveLeft")) {
                ok = (name[4] == 'R' ? dx : -dx) > 0.3 * S && fabs(dy) < 0.1 * S;
                snprintf(what, sizeof(what), "dx %.1f dy %.1f px", dx, dy);
            } else if (!strcmp(name, "MoveDown") || !strcmp(name, "MoveUp")) {
                ok = (name[4] == 'D' ? dy : -dy) > 0.3 * S && fabs(dx) < 0.1 * S;
                snprintf(what, sizeof(what), "dx %.1f dy %.1f px", dx, dy);
            } else if (!strcmp(name, "Grow") || !strcmp(name, "Shrink")) {
                double ratio = m[T - 1].area / m[0].area;
                ok = name[0] == 'G' ? ratio > 3 : ratio < 1 / 3.0;
                snprintf(what, sizeof(what), "area ratio %.2f", ratio);
            } else if (!strcmp(name, "Approach") || !strcmp(name, "Separate")) {
                double ratio = m[T - 1].spread / m[0].spread;
                ok = name[0] == 'A' ? ratio < 0.7 : ratio > 1 / 0.7;
                snprintf(what, sizeof(what), "spread ratio %.2f", ratio);
            } else if (!strncmp(name, "Rotate", 6)) {
                /* screen y points down: a clockwise turn increases atan2(y, x) */
                double turn = 0;
                for (int t = 1; t < T; t++) {
                    double d = m[t].angle - m[t - 1].angle;
                    d -= 2 * M_PI * floor(d / (2 * M_PI) + 0.5);
                    turn += d;
                }
                turn *= 180 / M_PI;
                /* the marker: the only pure black or white pixels of a clean frame (object colours are
                 * never pure, the background is grey) */
                int marker = 0;
                for (int k = 0; k < W * H; k++) {
                    const uint8_t *q = rgb + (size_t)k * 3;
                    marker += (q[0] == 0 && q[1] == 0 && q[2] == 0) || (q[0] == 255 && q[1] == 255 && q[2] == 255);
                }
                ok = (name[6] == 'C' ? turn : -turn) > 75 && fabs(dx) < 0.1 * S && fabs(dy) < 0.1 * S &&
                     marker >= 20;
                snprintf(what, sizeof(what), "turn %.0f deg, marker %d px", turn, marker);
            } else if (!strcmp(name, "Bounce")) {
                double lo = 1e9, hi = -1e9;
                int maxima = 0, minima = 0;
                for (int t = 0; t < T; t++) {
                    lo = fmin(lo, m[t].cy);
                    hi = fmax(hi, m[t].cy);
                    if (t > 0 && t < T - 1) {
                        maxima += m[t].cy > m[t - 1].cy && m[t].cy >= m[t + 1].cy;
                        minima += m[t].cy < m[t - 1].cy && m[t].cy <= m[t + 1].cy;
                    }
                }
                ok = hi - lo > 0.25 * S && maxima >= 1 && minima >= 1 && maxima + minima >= 3;
                snprintf(what, sizeof(what), "height range %.1f px, %d floor contacts, %d tops", hi - lo, maxima, minima);
            } else if (!strcmp(name, "Blink")) {
                int on = 0, flips = 0;
                for (int t = 0; t < T; t++) {
                    on += m[t].area > 0;
                    flips += t > 0 && (m[t].area > 0) != (m[t - 1].area > 0);
                }
                ok = on >= 5 && on <= T - 5 && flips >= 3;
                snprintf(what, sizeof(what), "%d of %d frames on, %d switches", on, T, flips);
            } else {
                fail_msg("class %s has no motion check", name);
            }
            printf("%-20s clip %d: %s\n", name, clip, what);
            if (!ok)
                fail_msg("%s clip %d does not show its motion: %s", name, clip, what);
        }
    }
    free(rgb);
}

/* Run "fibvid ARGS"; returns the exit code, output strings malloc'd. */
static int fibvid(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' %s", fvt_bin(), args);
    return fvt_run(cmd, out, err);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_cli(void **state)
{
    (void)state;
    char args[4096], *out = NULL, *err = NULL;
    assert_int_equal(fibvid("synth --help", &out, &err), 0);
    static const char *const opts[] = { "--out", "--clips-per-class", "--seed", "--size", "--fps", "--seconds",
                                        "--qscale", "--gop", "--clean", "--list-classes", "--threads", "--quiet",
                                        "--help", "default 40", "default 160x120", "default 25", "default 2:4" };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (!strstr(out, opts[i]))
            fail_msg("--help does not mention '%s'", opts[i]);
    free(out);
    free(err);

    assert_int_equal(fibvid("synth --list-classes", &out, &err), 0);
    assert_int_equal(count_lines(out), fv_synth_num_classes() + 1);
    assert_non_null(strstr(out, "MoveLeft"));
    free(out);
    free(err);

    static const char *const bad[] = { "synth", "synth --out x --size 33x48", "synth --out x --seconds 3:2",
                                       "synth --out x --clips-per-class 1", "synth --out x --seed -1",
                                       "synth --out x --fps 0", "synth --out x extra" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = fibvid(bad[i], &out, &err);
        if (rc != 1 || count_lines(err) != 1)
            fail_msg("'%s': exit %d, stderr '%s'", bad[i], rc, err ? err : "");
        free(out);
        free(err);
    }

    /* unwritable output: an input error in one line naming the path */
    char *file = fvt_join(g_tmp, "clifile");
    assert_int_equal(fvt_write_file(file, "x", 1), 0);
    snprintf(args, sizeof(args), "synth -q --out '%s/sub' -n 2 --size 64x48 --seconds 0.4", file);
    assert_int_equal(fibvid(args, &out, &err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "clifile"));
    free(out);
    free(err);

    /* a tiny run: same bytes as the library run with the same settings */
    char *dir = fvt_join(g_tmp, "cli");
    snprintf(args, sizeof(args), "synth -q --out '%s' -n %d -s 7 --size 64x48 --fps 25 --seconds 0.4:0.64 -t 2",
             dir, N_CLIPS);
    assert_int_equal(fibvid(args, &out, &err), 0);
    assert_string_equal(out, "");
    assert_string_equal(err, "");
    free(out);
    free(err);
    static const char *const same[] = { "classInd.txt", "trainlist01.txt", "testlist01.txt", "synth.json",
                                        "Bounce/v_Bounce_g02_c02.avi" };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        char *pa = fvt_join(g_a, same[i]), *pb = fvt_join(dir, same[i]);
        size_t na, nb;
        char *a = fvt_read_file(pa, &na), *b = fvt_read_file(pb, &nb);
        assert_non_null(a);
        assert_non_null(b);
        if (na != nb || memcmp(a, b, na))
            fail_msg("%s: the CLI's output differs from the library's", same[i]);
        free(a);
        free(b);
        free(pa);
        free(pb);
    }
    /* issue 20, bug 6: the same directory again is refused (the old run's files would stay beside the new ones);
     * --force replaces the synth run: 2 clips a class after N_CLIPS, and none of the old clips is left */
    snprintf(args, sizeof(args), "synth -q --out '%s' -n 2 -s 8 --size 64x48 --fps 25 --seconds 0.4:0.64", dir);
    assert_int_equal(fibvid(args, &out, &err), 2);
    printf("%s", err);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "is not empty"));
    free(out);
    free(err);
    char *keep = fvt_join(dir, "notes.txt"); /* not synth's: kept */
    assert_int_equal(fvt_write_file(keep, "x", 1), 0);
    snprintf(args, sizeof(args), "synth -q --force --out '%s' -n 2 -s 8 --size 64x48 --fps 25 --seconds 0.4:0.64",
             dir);
    assert_int_equal(fibvid(args, &out, &err), 0);
    free(out);
    free(err);
    char *bounce = fvt_join(dir, "Bounce");
    int clips = 0;
    DIR *d = opendir(bounce);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        clips += !strncmp(e->d_name, "v_", 2);
    closedir(d);
    printf("after --force: %d clips in Bounce (2 a class), notes.txt %s\n", clips, access(keep, F_OK) ? "gone" : "kept");
    assert_int_equal(clips, 2);
    assert_int_equal(access(keep, F_OK), 0);
    free(bounce);
    free(keep);
    free(dir);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_table),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_motions),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
