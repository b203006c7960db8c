/* End to end (issue 20): `fibvid diversity` report.html as a reader sees it. The tiny reference models
 * (tests/data/tiny_hf dense, tests/data/tiny_castling_hf Castling, both 2 layers x 3 heads, made by
 * scripts/make_reference.py) on 2 generated clips; the page rendered by headless Chromium (--dump-dom) and its
 * DOM checked for the headline figure, axis titles on every chart, colour bars on every heatmap and cls map,
 * and, with --models A,B, columns that name both models and their attention. The headline figure is checked
 * against the per-clip diagnostics in diversity.json. Without /usr/bin/chromium the test says why and reports
 * a skip (77). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "clipgen.h"
#include "testutil.h"

#define CHROMIUM "/usr/bin/chromium"

static int g_no_chromium;

typedef struct Ctx {
    char *dir, *clip1, *clip2, *tiny, *castling, *psvit;
} Ctx;

static int setup(void **state)
{
    Ctx *c = calloc(1, sizeof(*c));
    c->dir = fvt_tmpdir();
    c->clip1 = fvt_join(c->dir, "a.avi");
    c->clip2 = fvt_join(c->dir, "b.avi");
    c->tiny = fvt_join(fvt_data_dir(), "tiny_hf");
    c->castling = fvt_join(fvt_data_dir(), "tiny_castling_hf");
    c->psvit = fvt_join(fvt_data_dir(), "tiny_psvit_avg_hf");
    FvtClipSpec s;
    fvt_clip_spec_default(&s);
    if (fvt_clip_write(c->clip1, &s) < 0)
        return -1;
    s.width = 96;
    s.height = 64;
    s.nframes = 30;
    if (fvt_clip_write(c->clip2, &s) < 0)
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    Ctx *c = *state;
    fvt_rmtree(c->dir);
    free(c->dir);
    free(c->clip1);
    free(c->clip2);
    free(c->tiny);
    free(c->castling);
    free(c->psvit);
    free(c);
    return 0;
}

static int run(const char *cmd, char **out, char **err)
{
    int rc = fvt_run(cmd, out, err);
    printf("$ %s -> %d\n", cmd, rc);
    return rc;
}

static json_t *load_json(const char *dir, const char *name)
{
    char *p = fvt_join(dir, name);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    if (!j)
        printf("%s: %s\n", p, e.text);
    free(p);
    return j;
}

/* The DOM of @dir/report.html after Chromium has loaded it, or NULL (g_no_chromium set) without Chromium. */
static char *render_dom(const Ctx *c, const char *dir)
{
    if (access(CHROMIUM, X_OK) != 0) {
        printf("SKIP: %s is not installed (Debian package chromium): report.html is not rendered\n", CHROMIUM);
        g_no_chromium = 1;
        return NULL;
    }
    char cmd[4096], *dom = NULL;
    snprintf(cmd, sizeof(cmd),
             "cd %s && HOME=%s timeout 120 " CHROMIUM " --headless --no-sandbox --disable-gpu "
             "--disable-background-networking --user-data-dir=%s/chromium --dump-dom file://%s/report.html",
             c->dir, c->dir, c->dir, dir);
    assert_int_equal(run(cmd, &dom, NULL), 0);
    assert_non_null(dom);
    assert_non_null(strstr(dom, "</html>"));
    return dom;
}

/* The element that starts at @p (its text up to the matching close tag @close, no nesting of the same tag). */
static char *element(const char *p, const char *close)
{
    const char *e = strstr(p, close);
    assert_non_null(e);
    const size_t n = (size_t)(e - p) + strlen(close);
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* Every chart has both axis titles, every heatmap and every row of cls maps its colour bar; returns the
 * charts seen. */
static int check_charts(const char *dom, int *heatmaps)
{
    int charts = 0;
    *heatmaps = 0;
    for (const char *p = dom; (p = strstr(p, "<svg")); p += 4) {
        char *svg = element(p, "</svg>");
        const char *cls = strstr(svg, "class=\"");
        if (cls && cls < strchr(svg, '>') && !strncmp(cls + 7, "chart", 5)) {
            charts++;
            if (count(svg, "class=\"axis-title\"") < 2)
                printf("chart without its two axis titles: %.300s\n", svg);
            assert_true(count(svg, "class=\"axis-title\"") >= 2);
            if (!strncmp(cls + 7, "chart heatmap", 13)) {
                ++*heatmaps;
                assert_non_null(strstr(svg, "class=\"colorbar\""));
            }
        }
        free(svg);
    }
    int cls_rows = 0;
    for (const char *p = dom; (p = strstr(p, "<div class=\"heads cls\">")); p += 10) {
        char *div = element(p, "</div>");
        assert_true(count(div, "<img") >= 3); /* 3 heads, each captioned */
        assert_true(count(div, "<figcaption>head ") == count(div, "<img"));
        assert_non_null(strstr(div, "class=\"colorbar\""));
        cls_rows++;
        free(div);
    }
    printf("DOM: %d charts, %d heatmaps, %d rows of cls maps\n", charts, *heatmaps, cls_rows);
    assert_true(cls_rows > 0);
    return charts;
}

/* The headline figure of every setting from diversity.json's per-clip diagnostics: the mean over layers and
 * their two attentions of the off-diagonal mean CKA, then mean and population std over clips. */
static void check_head_similarity(json_t *j, const char *name, double *mean, double *sd)
{
    json_t *clips = json_object_get(j, "clips");
    const size_t n = json_array_size(clips);
    assert_true(n == 2);
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_object_get(json_object_get(json_array_get(clips, i), "settings"), name);
        json_t *layers = json_object_get(d, "layer");
        assert_true(json_array_size(layers) == 2);
        double v = 0.0;
        for (size_t l = 0; l < json_array_size(layers); l++)
            v += json_number_value(json_object_get(json_object_get(json_array_get(layers, l), "spatial"), "mean_cka")) +
                 json_number_value(json_object_get(json_object_get(json_array_get(layers, l), "temporal"), "mean_cka"));
        v /= 2.0 * (double)json_array_size(layers);
        assert_true(fabs(v - json_number_value(json_object_get(d, "head_similarity"))) < 1e-5);
        s += v;
        s2 += v * v;
    }
    *mean = s / (double)n;
    *sd = sqrt(fmax(0.0, s2 / (double)n - *mean * *mean));
    json_t *hs = json_object_get(json_object_get(json_object_get(j, "settings"), name), "head_similarity");
    printf("%s: head similarity %.6f +- %.6f (diversity.json %.6f +- %.6f)\n", name, *mean, *sd,
           json_number_value(json_object_get(hs, "mean")), json_number_value(json_object_get(hs, "std")));
    assert_true(fabs(*mean - json_number_value(json_object_get(hs, "mean"))) < 1e-5);
    assert_true(fabs(*sd - json_number_value(json_object_get(hs, "std"))) < 1e-5);
    assert_int_equal(json_integer_value(json_object_get(hs, "clips")), 2);
    assert_true(*mean > 0.0 && *mean < 1.0 && *sd > 0.0); /* two different clips: some spread */
}

/* One model, its own weights run densely and under Fibottention. */
static void test_report_dom(void **state)
{
    Ctx *c = *state;
    char *out = fvt_join(c->dir, "dom"), cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s diversity -q -m %s --compare dense,fib --out %s %s %s", fvt_bin(), c->tiny, out,
             c->clip1, c->clip2);
    char *so = NULL;
    assert_int_equal(run(cmd, &so, NULL), 0);
    printf("%s", so);
    free(so);
    json_t *j = load_json(out, "diversity.json");
    assert_non_null(j);
    double m[2], sd[2];
    check_head_similarity(j, "dense", &m[0], &sd[0]);
    check_head_similarity(j, "fib", &m[1], &sd[1]);
    /* the dense-vs-fib mode says it runs one model's weights both ways */
    json_t *fib = json_object_get(json_object_get(j, "settings"), "fib");
    assert_true(json_is_false(json_object_get(fib, "own_attention")));
    assert_non_null(strstr(json_string_value(json_object_get(fib, "description")), "the same weights"));
    json_decref(j);

    char *dom = render_dom(c, out);
    if (!dom) {
        free(out);
        return;
    }
    /* the headline: both numbers with their spread, as diversity.json has them */
    const char *hp = strstr(dom, "<p id=\"headline\">");
    assert_non_null(hp);
    char *head = element(hp, "</p>"), want[128];
    printf("%s\n", head);
    for (int s = 0; s < 2; s++) {
        snprintf(want, sizeof(want), "%.3f \xc2\xb1 %.3f (%s)", m[s], sd[s], s ? "fib" : "dense");
        assert_non_null(strstr(head, want));
    }
    assert_non_null(strstr(head, "over 2 clips"));
    free(head);
    assert_non_null(strstr(dom, "population standard deviation over the clips"));
    int heatmaps = 0;
    const int charts = check_charts(dom, &heatmaps);
    /* 2 summary charts + the headline chart; per layer and attention: the entropy and distance bars (mask
     * density is constant for dense but not for fib), and CKA, cosine, Frobenius of both settings plus fib's
     * Jaccard (dense Jaccard, 1 everywhere, folded into a line) */
    assert_true(heatmaps >= 2 * 2 * 7);
    assert_true(charts >= 3 + heatmaps);
    assert_non_null(strstr(dom, "Jaccard: 1 for every head pair"));
    /* the columns say which weights and which attention */
    assert_non_null(strstr(dom, "not a model trained for that attention"));
    assert_null(strstr(dom, "<script"));
    assert_null(strstr(dom, "http://"));
    assert_null(strstr(dom, "https://"));
    free(dom);
    free(out);
}

/* --models A,B: two checkpoints with their own attention side by side. */
static void test_models(void **state)
{
    Ctx *c = *state;
    char *out = fvt_join(c->dir, "models"), cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s diversity -q --models %s,%s --out %s %s %s", fvt_bin(), c->tiny, c->castling, out,
             c->clip1, c->clip2);
    char *so = NULL;
    assert_int_equal(run(cmd, &so, NULL), 0);
    printf("%s", so);
    assert_non_null(strstr(so, "tiny_hf"));
    assert_non_null(strstr(so, "tiny_castling_hf"));
    free(so);
    json_t *j = load_json(out, "diversity.json");
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 2);
    json_t *sets = json_object_get(j, "settings");
    assert_int_equal(json_object_size(sets), 2);
    json_t *a = json_object_get(sets, "tiny_hf"), *b = json_object_get(sets, "tiny_castling_hf");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "model")), c->tiny);
    assert_string_equal(json_string_value(json_object_get(b, "model")), c->castling);
    assert_string_equal(json_string_value(json_object_get(a, "spatial_attention")), "dense");
    assert_non_null(strstr(json_string_value(json_object_get(b, "spatial_attention")), "castling"));
    assert_true(json_is_true(json_object_get(a, "own_attention")) && json_is_true(json_object_get(b, "own_attention")));
    double m[2], sd[2];
    check_head_similarity(j, "tiny_hf", &m[0], &sd[0]);
    check_head_similarity(j, "tiny_castling_hf", &m[1], &sd[1]);
    assert_true(fabs(m[0] - m[1]) > 1e-6); /* two models, two figures */
    json_decref(j);

    char *dom = render_dom(c, out);
    if (dom) {
        int setting_headers = 0, heatmaps = 0;
        for (const char *p = dom; (p = strstr(p, "<th class=\"setting\">")); p += 10) {
            char *th = element(p, "</th>");
            const int is_a = strstr(th, c->tiny) && strstr(th, "spatial dense, temporal dense") && !strstr(th, "castling");
            const int is_b = strstr(th, c->castling) && strstr(th, "spatial castling");
            assert_true(is_a || is_b);
            setting_headers++;
            free(th);
        }
        printf("%d column headers name a model and its attention\n", setting_headers);
        assert_true(setting_headers >= 2 * 5); /* the top, 2 layers x 2 attentions, cls maps of 2 layers */
        const char *hp = strstr(dom, "<p id=\"headline\">");
        assert_non_null(hp);
        char *head = element(hp, "</p>");
        assert_non_null(strstr(head, "(tiny_hf)"));
        assert_non_null(strstr(head, "(tiny_castling_hf)"));
        free(head);
        check_charts(dom, &heatmaps);
        assert_true(heatmaps > 0);
        free(dom);
    }

    /* models of different shapes cannot share the columns: input error, one line; both -m and --models: usage */
    char *se = NULL;
    snprintf(cmd, sizeof(cmd), "%s diversity -q --force --models %s,%s --out %s %s", fvt_bin(), c->tiny, c->psvit, out,
             c->clip1);
    assert_int_equal(run(cmd, NULL, &se), 2);
    printf("  %s", se);
    assert_non_null(strstr(se, "fibvid diversity: "));
    assert_non_null(strstr(se, "of one shape"));
    free(se);
    se = NULL;
    snprintf(cmd, sizeof(cmd), "%s diversity -q -m %s --models %s,%s --out %s %s", fvt_bin(), c->tiny, c->tiny,
             c->castling, out, c->clip1);
    assert_int_equal(run(cmd, NULL, &se), 1);
    printf("  %s", se);
    free(se);
    free(out);
}

/* A PSViT model pools tokens after layer 0 (4x4 -> 2x2 patches): the report draws each layer's masks over
 * the tokens that layer attends, and its mask density is over those (as the run's). */
static void test_pooled_masks(void **state)
{
    Ctx *c = *state;
    char *out = fvt_join(c->dir, "psvit"), cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s diversity -q -m %s --out %s %s", fvt_bin(), c->psvit, out, c->clip1);
    assert_int_equal(run(cmd, NULL, NULL), 0);
    char *path = fvt_join(out, "report.html");
    char *html = fvt_read_file(path, NULL);
    assert_non_null(html);
    const char *what = "spatial Fibottention masks per head (query rows, key columns over ";
    int n16 = 0, n4 = 0;
    for (const char *p = html; (p = strstr(p, what)); p += strlen(what)) {
        const int tokens = atoi(p + strlen(what));
        printf("masks over %d patch tokens\n", tokens);
        n16 += tokens == 16;
        n4 += tokens == 4;
    }
    assert_int_equal(n16, 1); /* layer 0 */
    assert_int_equal(n4, 3);  /* layers 1-3, after the pooling */
    free(html);
    json_t *j = load_json(out, "diversity.json");
    assert_non_null(j);
    json_t *layers = json_object_get(json_object_get(json_object_get(json_object_get(j, "aggregate"), "model"), "mean"),
                                     "layer");
    for (size_t l = 0; l < json_array_size(layers); l++) {
        json_t *heads = json_object_get(json_object_get(json_array_get(layers, l), "spatial"), "heads");
        for (size_t h = 0; h < json_array_size(heads); h++) {
            const double d = json_number_value(json_object_get(json_array_get(heads, h), "mask_density"));
            /* a fraction of n x n pairs: a multiple of 1/256 in layer 0, of 1/16 after the pooling */
            const double q = d * (l ? 16.0 : 256.0);
            assert_true(d > 0.0 && d <= 1.0 && fabs(q - round(q)) < 1e-3); /* 6 digits in the file */
        }
    }
    /* `fibvid masks -m` draws the same masks: each layer over its own tokens, the same densities as the run's */
    char *mout = NULL;
    snprintf(cmd, sizeof(cmd), "%s masks -m %s -f json", fvt_bin(), c->psvit);
    assert_int_equal(run(cmd, &mout, NULL), 0);
    json_t *mj = json_loads(mout, 0, NULL);
    assert_non_null(mj);
    json_t *mlayers = json_object_get(mj, "layers");
    assert_int_equal(json_array_size(mlayers), json_array_size(layers));
    double maxdiff = 0;
    for (size_t l = 0; l < json_array_size(mlayers); l++) {
        json_t *ml = json_array_get(mlayers, l);
        assert_int_equal(json_integer_value(json_object_get(ml, "tokens")), l ? 4 : 16);
        json_t *mh = json_object_get(ml, "heads"),
               *rh = json_object_get(json_object_get(json_array_get(layers, l), "spatial"), "heads");
        assert_int_equal(json_array_size(mh), json_array_size(rh));
        for (size_t h = 0; h < json_array_size(mh); h++)
            maxdiff = fmax(maxdiff, fabs(json_number_value(json_object_get(json_array_get(mh, h), "density")) -
                                         json_number_value(json_object_get(json_array_get(rh, h), "mask_density"))));
    }
    printf("masks -m vs the run's mask densities: largest difference %.2g (tolerance 1e-5: 6 digits in the files)\n",
           maxdiff);
    assert_true(maxdiff < 1e-5);
    json_decref(mj);
    free(mout);
    json_decref(j);
    free(path);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_dom),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_pooled_masks),
    };
    const int rc = cmocka_run_group_tests(tests, setup, teardown);
    return rc == 0 && g_no_chromium ? 77 : rc; /* meson's skip code */
}
