/* Procedural action data set (`fibvid synth`): plans and renders each clip from its own random state
 * (shapes, colours, motions, textured panning backgrounds, distractors, camera jitter, noise), then writes
 * the UCF101 layout (class folders, classInd/trainlist/testlist, group split) and synth.json (synth_dataset.c).
 *
 * Every class but the two periodic ones has a partner that is the same motion played backwards (MoveLeft
 * is MoveRight reversed, Shrink is Grow reversed, ...): the reversed class draws the same distributions and
 * evaluates the motion at time 1 - u, so a frame taken at a random time has the same distribution in both
 * classes of a pair and only the order of frames tells them apart.
 *
 * Determinism: all randomness comes from splitmix64 streams seeded by (seed, class, clip); the geometry uses
 * only + - * / sqrt floor and a local sine polynomial (no libm transcendental that could differ between
 * C libraries), and every clip is independent, so the output does not depend on the thread count. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <omp.h>

#include "util/util.h"
#include "synth/synth_internal.h"

#include "fibvid/synth.h"

/* ---------------------------------------------------------------------------------------------- */
/* Classes                                                                                         */

typedef enum Motion {
    MOTION_MOVE_H,  /* forward: left to right */
    MOTION_MOVE_V,  /* forward: top to bottom */
    MOTION_ROTATE,  /* forward: clockwise on screen */
    MOTION_SCALE,   /* forward: growing */
    MOTION_PAIR,    /* forward: two objects approaching each other */
    MOTION_BOUNCE,  /* periodic: bouncing on a floor */
    MOTION_BLINK,   /* periodic: switching on and off */
} Motion;

typedef struct ClassDef {
    const char *name;
    Motion      motion;
    int         reversed; /* motion played backwards */
    int         hflip;    /* class index a horizontal flip gives */
    int         reverse;  /* class index playing backwards gives */
} ClassDef;

/* alphabetical, like UCF101's classInd.txt */
enum {
    C_APPROACH, C_BLINK, C_BOUNCE, C_GROW, C_MOVE_DOWN, C_MOVE_LEFT, C_MOVE_RIGHT, C_MOVE_UP,
    C_ROTATE_ACW, C_ROTATE_CW, C_SEPARATE, C_SHRINK, NUM_CLASSES
};

static const ClassDef g_classes[NUM_CLASSES] = {
    [C_APPROACH]   = { "Approach", MOTION_PAIR, 0, C_APPROACH, C_SEPARATE },
    [C_BLINK]      = { "Blink", MOTION_BLINK, 0, C_BLINK, C_BLINK },
    [C_BOUNCE]     = { "Bounce", MOTION_BOUNCE, 0, C_BOUNCE, C_BOUNCE },
    [C_GROW]       = { "Grow", MOTION_SCALE, 0, C_GROW, C_SHRINK },
    [C_MOVE_DOWN]  = { "MoveDown", MOTION_MOVE_V, 0, C_MOVE_DOWN, C_MOVE_UP },
    [C_MOVE_LEFT]  = { "MoveLeft", MOTION_MOVE_H, 1, C_MOVE_RIGHT, C_MOVE_RIGHT },
    [C_MOVE_RIGHT] = { "MoveRight", MOTION_MOVE_H, 0, C_MOVE_LEFT, C_MOVE_LEFT },
    [C_MOVE_UP]    = { "MoveUp", MOTION_MOVE_V, 1, C_MOVE_UP, C_MOVE_DOWN },
    [C_ROTATE_ACW] = { "RotateAnticlockwise", MOTION_ROTATE, 1, C_ROTATE_CW, C_ROTATE_CW },
    [C_ROTATE_CW]  = { "RotateClockwise", MOTION_ROTATE, 0, C_ROTATE_ACW, C_ROTATE_ACW },
    [C_SEPARATE]   = { "Separate", MOTION_PAIR, 1, C_SEPARATE, C_APPROACH },
    [C_SHRINK]     = { "Shrink", MOTION_SCALE, 1, C_SHRINK, C_GROW },
};

int32_t fv_synth_num_classes(void)
{
    return NUM_CLASSES;
}

const char *fv_synth_class_name(int32_t i)
{
    return i >= 0 && i < NUM_CLASSES ? g_classes[i].name : NULL;
}

int32_t fv_synth_hflip_class(int32_t i)
{
    return i >= 0 && i < NUM_CLASSES ? g_classes[i].hflip : -1;
}

int32_t fv_synth_reverse_class(int32_t i)
{
    return i >= 0 && i < NUM_CLASSES ? g_classes[i].reverse : -1;
}

void fv_synth_default_settings(FvSynthSettings *s)
{
    memset(s, 0, sizeof(*s));
    s->clips_per_class = 40;
    s->seed = 1;
    s->width = 160;
    s->height = 120;
    s->fps = 25;
    s->min_seconds = 2.0;
    s->max_seconds = 4.0;
    s->qscale = 4;
    s->gop = 12;
}

int fv_synth_check_settings(const FvSynthSettings *s, int need_dir)
{
    if (!s)
        return fv_error(FV_EINVAL, "fv_synth: no settings");
    if (need_dir && (!s->out_dir || !s->out_dir[0]))
        return fv_error(FV_EINVAL, "fv_synth: no output directory");
    if (need_dir && strlen(s->out_dir) > 3500)
        return fv_error(FV_EINVAL, "fv_synth: output directory name too long");
    if (s->clips_per_class < 2 || s->clips_per_class > 2000)
        return fv_error(FV_EINVAL, "fv_synth: clips per class %d not in 2..2000", s->clips_per_class);
    if (s->width < 32 || s->height < 32 || s->width > 1920 || s->height > 1080 || (s->width & 1) || (s->height & 1))
        return fv_error(FV_EINVAL, "fv_synth: size %dx%d: width and height must be even, 32..1920 x 32..1080",
                        s->width, s->height);
    if (s->fps < 1 || s->fps > 120)
        return fv_error(FV_EINVAL, "fv_synth: fps %d not in 1..120", s->fps);
    if (!(s->min_seconds > 0) || !(s->max_seconds >= s->min_seconds) || s->max_seconds > 60)
        return fv_error(FV_EINVAL, "fv_synth: seconds %g:%g: need 0 < min <= max <= 60", s->min_seconds,
                        s->max_seconds);
    if (s->qscale < 2 || s->qscale > 31)
        return fv_error(FV_EINVAL, "fv_synth: qscale %d not in 2..31", s->qscale);
    if (s->gop < 1 || s->gop > 300)
        return fv_error(FV_EINVAL, "fv_synth: gop %d not in 1..300", s->gop);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Deterministic helpers                                                                           */

static double uni(uint64_t *st, double a, double b)
{
    return a + (b - a) * fv_rand_unit(st);
}

static int irange(uint64_t *st, int lo, int hi) /* inclusive */
{
    return lo + (int)(fv_rand_u64(st) % (uint64_t)(hi - lo + 1));
}

#define PI 3.14159265358979323846

/* sin from + and * only, so that every C library and CPU gives the same bits (error < 1e-11) */
static double dsin(double x)
{
    x -= 2 * PI * floor(x / (2 * PI) + 0.5);
    if (x > PI / 2)
        x = PI - x;
    else if (x < -PI / 2)
        x = -PI - x;
    const double x2 = x * x;
    return x * (1 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 +
           x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800.0 + x2 * (-1.0 / 1307674368000.0))))))));
}

static double dcos(double x)
{
    return dsin(x + PI / 2);
}

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static uint8_t clamp8(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void hsv_rgb(double h, double s, double v, uint8_t rgb[3])
{
    h = (h - floor(h)) * 6;
    int i = (int)h;
    double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r, g, b;
    switch (i % 6) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
    }
    rgb[0] = clamp8((int)(r * 255 + 0.5));
    rgb[1] = clamp8((int)(g * 255 + 0.5));
    rgb[2] = clamp8((int)(b * 255 + 0.5));
}

static double color_dist(const uint8_t a[3], const double b[3])
{
    double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return sqrt(d0 * d0 + d1 * d1 + d2 * d2);
}

/* ---------------------------------------------------------------------------------------------- */
/* Shapes: unit-radius outlines in the object's own frame, two colours split along the local y axis  */
/* so that a turn is visible whatever the outline's symmetry.                                       */

enum { SHAPE_DISC, SHAPE_RING, SHAPE_ELLIPSE, SHAPE_POLY, NUM_SHAPE_KINDS };
enum { MAX_VERTS = 12 };

typedef struct Look {
    int     kind;
    int     nv;              /* polygon vertices */
    double  vx[MAX_VERTS], vy[MAX_VERTS];
    double  aspect;          /* ellipse minor/major */
    uint8_t col[2][3];       /* local x >= 0, local x < 0 */
    int     marker;          /* a disc painted on the local x axis (the turning objects) */
    uint8_t mcol[3];         /* its colour: black or white, whichever stands out from col[0] */
} Look;

/* The marker: centre on the local x axis at MARK_AT radii, radius MARK_R radii. */
#define MARK_AT 0.6
#define MARK_R  0.28

static void make_shape(uint64_t *st, Look *lk)
{
    /* 0 disc, 1 ring, 2 ellipse, 3 triangle, 4 square, 5 pentagon, 6 hexagon, 7 star, 8 diamond, 9 cross */
    int k = irange(st, 0, 9);
    lk->nv = 0;
    lk->marker = 0;
    lk->aspect = 1;
    if (k <= 2) {
        lk->kind = k == 0 ? SHAPE_DISC : k == 1 ? SHAPE_RING : SHAPE_ELLIPSE;
        lk->aspect = uni(st, 0.5, 0.7);
        return;
    }
    lk->kind = SHAPE_POLY;
    if (k <= 6) {
        int n = k; /* 3..6 sides */
        lk->nv = n;
        for (int i = 0; i < n; i++) {
            double a = -PI / 2 + 2 * PI * i / n;
            lk->vx[i] = dcos(a);
            lk->vy[i] = dsin(a);
        }
    } else if (k == 7) {
        lk->nv = 10;
        double inner = uni(st, 0.4, 0.55);
        for (int i = 0; i < 10; i++) {
            double a = -PI / 2 + PI * i / 5, r = (i & 1) ? inner : 1.0;
            lk->vx[i] = r * dcos(a);
            lk->vy[i] = r * dsin(a);
        }
    } else if (k == 8) {
        static const double d[4][2] = { { 1, 0 }, { 0, 0.7 }, { -1, 0 }, { 0, -0.7 } };
        lk->nv = 4;
        for (int i = 0; i < 4; i++) {
            lk->vx[i] = d[i][0];
            lk->vy[i] = d[i][1];
        }
    } else {
        const double a = 0.92, b = 0.34; /* arm half-length and half-width: the corners stay inside r = 1 */
        const double c[12][2] = { { b, -a }, { b, -b }, { a, -b }, { a, b }, { b, b }, { b, a },
                                  { -b, a }, { -b, b }, { -a, b }, { -a, -b }, { -b, -b }, { -b, -a } };
        lk->nv = 12;
        for (int i = 0; i < 12; i++) {
            lk->vx[i] = c[i][0];
            lk->vy[i] = c[i][1];
        }
    }
}

static int inside(const Look *lk, double u, double v)
{
    switch (lk->kind) {
    case SHAPE_DISC: return u * u + v * v <= 1;
    case SHAPE_RING: { double r2 = u * u + v * v, ri = 0.75 * lk->aspect; return r2 <= 1 && r2 >= ri * ri; }
    case SHAPE_ELLIPSE: return u * u + v * v / (lk->aspect * lk->aspect) <= 1;
    default: break;
    }
    if (u * u + v * v > 1.0001)
        return 0;
    int c = 0;
    for (int i = 0, j = lk->nv - 1; i < lk->nv; j = i++) {
        if ((lk->vy[i] > v) != (lk->vy[j] > v) &&
            u < (lk->vx[j] - lk->vx[i]) * (v - lk->vy[i]) / (lk->vy[j] - lk->vy[i]) + lk->vx[i])
            c = !c;
    }
    return c;
}

/* Draw @lk centred at (cx, cy) pixels, radius @r pixels, turned by @theta (clockwise on screen), 2x2
 * supersampled, into the RGB24 frame. */
static void draw(uint8_t *img, int W, int H, const Look *lk, double cx, double cy, double r, double theta)
{
    if (r < 0.3)
        return;
    const double c = dcos(theta), s = dsin(theta), inv = 1.0 / r;
    int x0 = (int)floor(cx - 1.05 * r) - 1, x1 = (int)floor(cx + 1.05 * r) + 1;
    int y0 = (int)floor(cy - 1.05 * r) - 1, y1 = (int)floor(cy + 1.05 * r) + 1;
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > W - 1 ? W - 1 : x1;
    y1 = y1 > H - 1 ? H - 1 : y1;
    for (int y = y0; y <= y1; y++) {
        for (int x = x0; x <= x1; x++) {
            int n = 0, sum[3] = { 0, 0, 0 };
            for (int k = 0; k < 4; k++) {
                double dx = x + 0.25 + 0.5 * (k & 1) - cx, dy = y + 0.25 + 0.5 * (k >> 1) - cy;
                /* into the object's frame: rotate by -theta */
                double u = (dx * c + dy * s) * inv, v = (-dx * s + dy * c) * inv;
                const uint8_t *col;
                if (lk->marker && (u - MARK_AT) * (u - MARK_AT) + v * v <= MARK_R * MARK_R)
                    col = lk->mcol;
                else if (inside(lk, u, v))
                    col = lk->col[u >= 0 ? 0 : 1];
                else
                    continue;
                sum[0] += col[0];
                sum[1] += col[1];
                sum[2] += col[2];
                n++;
            }
            if (!n)
                continue;
            uint8_t *p = img + ((size_t)y * W + x) * 3;
            for (int ch = 0; ch < 3; ch++)
                p[ch] = (uint8_t)((p[ch] * (4 - n) + sum[ch] + 2) / 4);
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Clip plan: everything drawn from the clip's random state before the first frame is rendered.     */

enum { TEX = 128, MAX_DISTRACTORS = 4 };

typedef struct Distractor {
    Look   look;
    double x0, y0, dx, dy; /* playfield units (may lie outside the playfield) */
    double r, theta;
    int    front;          /* drawn over the main objects */
} Distractor;

typedef struct Plan {
    int      W, H, nframes, clean;
    Motion   motion;
    int      reversed;
    /* the playfield: the centred square (side S pixels at OX, OY) the main action stays in, so that a
     * short-side resize and centre crop keeps all of it */
    double   S, OX, OY;
    /* background: periodic texture (TEX, TEX) coloured between bg0 and bg1, panning */
    uint8_t *tex;
    double   bg0[3], bg1[3];
    uint8_t  lut[256][3];    /* texture value -> colour */
    double   tex_scale;      /* texels per pixel */
    double   pan_x0, pan_y0, pan_dx, pan_dy; /* texels */
    /* camera jitter (pixels, per frame) and noise */
    double  *jit;            /* (nframes, 2) */
    int      noise_amp, noise_gray;
    uint64_t noise_seed;
    /* main objects */
    Look     look;
    double   r;              /* radius, playfield units */
    double   x0, y0, x1, y1; /* centre at u = 0 and u = 1 (MOVE_*, ROTATE, SCALE, BOUNCE x, BLINK) */
    double   theta0, theta1; /* ROTATE: angle at u = 0 and 1; others: theta0, and theta1 of object 2 */
    double   r1;             /* SCALE: radius at u = 1 */
    double   ax, ay, d0, d1; /* PAIR: unit axis, centre distance at u = 0 and 1 (midpoint x0, y0) */
    double   periods, phase, height, floor_y, duty; /* BOUNCE / BLINK */
    int      ndis;
    Distractor dis[MAX_DISTRACTORS];
} Plan;

static uint64_t clip_state(uint64_t seed, int cls, int clip)
{
    uint64_t st = seed ^ 0x6a09e667f3bcc909ull;
    uint64_t a = fv_rand_u64(&st);
    st = a ^ ((uint64_t)(cls + 1) * 0x9E3779B97F4A7C15ull);
    a = fv_rand_u64(&st);
    st = a ^ ((uint64_t)(clip + 1) * 0xC2B2AE3D27D4EB4Full);
    fv_rand_u64(&st);
    return st;
}

static int clip_nframes(const FvSynthSettings *s, uint64_t *st)
{
    double secs = uni(st, s->min_seconds, s->max_seconds);
    int n = (int)floor(secs * s->fps + 0.5);
    return n < 8 ? 8 : n;
}

/* A colour at least @mind away (RGB distance) from @ref, saturated or not, light or dark. */
static void pick_color(uint64_t *st, const double ref[3], double mind, uint8_t out[3])
{
    for (int tries = 0; tries < 64; tries++) {
        hsv_rgb(fv_rand_unit(st), uni(st, 0.3, 1.0), uni(st, 0.15, 1.0), out);
        if (color_dist(out, ref) >= mind)
            return;
    }
    /* fall back on the far end of the grey scale */
    double l = (ref[0] + ref[1] + ref[2]) / 3;
    out[0] = out[1] = out[2] = l > 128 ? 10 : 245;
}

static void make_look(uint64_t *st, const double bgmean[3], double mind, Look *lk)
{
    make_shape(st, lk);
    pick_color(st, bgmean, mind, lk->col[0]);
    for (int tries = 0; tries < 64; tries++) {
        pick_color(st, bgmean, mind, lk->col[1]);
        double c0[3] = { lk->col[0][0], lk->col[0][1], lk->col[0][2] };
        if (color_dist(lk->col[1], c0) >= 70)
            return;
    }
    /* a darker or lighter version of the first colour */
    for (int ch = 0; ch < 3; ch++)
        lk->col[1][ch] = (uint8_t)(lk->col[0][ch] > 127 ? lk->col[0][ch] / 3 : 255 - (255 - lk->col[0][ch]) / 3);
}

/* Periodic background texture in [0, 255]: smooth value noise, stripes, checks or two noise octaves. */
static void make_texture(uint64_t *st, uint8_t *tex)
{
    int kind = irange(st, 0, 3);
    double lat[2][16 * 16];
    int L[2] = { 1 << irange(st, 2, 4), 16 };
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < L[o] * L[o]; i++)
            lat[o][i] = fv_rand_unit(st);
    int kx = irange(st, -4, 4), ky = irange(st, 1, 4);
    if (irange(st, 0, 1))
        kx = kx == 0 ? 1 : kx, ky = 0;
    int cell = 8 << irange(st, 0, 2);
    for (int y = 0; y < TEX; y++) {
        for (int x = 0; x < TEX; x++) {
            double v = 0;
            if (kind == 1) {
                double t = (double)(kx * x + ky * y) / TEX;
                t -= floor(t);
                v = t < 0.5 ? 2 * t : 2 - 2 * t;
            } else if (kind == 2) {
                v = ((x / cell + y / cell) & 1) ? 0.85 : 0.15;
            } else {
                int octaves = kind == 3 ? 2 : 1;
                double wsum = 0;
                for (int o = 0; o < octaves; o++) {
                    int n = L[o];
                    double fx = (double)x * n / TEX, fy = (double)y * n / TEX;
                    int ix = (int)fx, iy = (int)fy;
                    double tx = fx - ix, ty = fy - iy;
                    tx = tx * tx * (3 - 2 * tx);
                    ty = ty * ty * (3 - 2 * ty);
                    int ix1 = (ix + 1) % n, iy1 = (iy + 1) % n;
                    double a = lat[o][iy * n + ix], b = lat[o][iy * n + ix1];
                    double c = lat[o][iy1 * n + ix], d = lat[o][iy1 * n + ix1];
                    double w = o ? 0.5 : 1.0;
                    v += w * ((a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty);
                    wsum += w;
                }
                v /= wsum;
            }
            tex[y * TEX + x] = clamp8((int)(v * 255 + 0.5));
        }
    }
}

static void plan_free(Plan *p)
{
    fv_free(p->tex);
    fv_free(p->jit);
    p->tex = NULL;
    p->jit = NULL;
}

static int plan_init(Plan *p, const FvSynthSettings *s, int cls, int clip)
{
    memset(p, 0, sizeof(*p));
    uint64_t st = clip_state(s->seed, cls, clip);
    const ClassDef *cd = &g_classes[cls];
    p->W = s->width;
    p->H = s->height;
    p->clean = s->clean;
    p->nframes = clip_nframes(s, &st);
    p->motion = cd->motion;
    p->reversed = cd->reversed;
    p->S = FV_MIN(p->W, p->H);
    p->OX = (p->W - p->S) / 2;
    p->OY = (p->H - p->S) / 2;
    p->tex = fv_malloc(TEX * TEX);
    p->jit = fv_malloc(sizeof(double) * 2 * (size_t)p->nframes);
    if (!p->tex || !p->jit) {
        plan_free(p);
        return fv_error(FV_ENOMEM, "fv_synth: out of memory");
    }

    /* separate streams for the background, the looks, the motion and the distractors: a clean clip
     * (different colour choices) keeps the motion of its full version */
    uint64_t sbg = fv_rand_u64(&st), slook = fv_rand_u64(&st), smot = fv_rand_u64(&st), sdis = fv_rand_u64(&st);

    /* background: two muted colours of moderate contrast, so that the objects stand out */
    uint8_t c0[3], c1[3];
    hsv_rgb(fv_rand_unit(&sbg), uni(&sbg, 0.0, 0.6), uni(&sbg, 0.25, 0.85), c0);
    hsv_rgb(fv_rand_unit(&sbg), uni(&sbg, 0.0, 0.6), uni(&sbg, 0.25, 0.85), c1);
    double contrast = uni(&sbg, 0.3, 0.8);
    double bgmean[3];
    for (int ch = 0; ch < 3; ch++) {
        p->bg0[ch] = c0[ch];
        p->bg1[ch] = c0[ch] + contrast * (c1[ch] - c0[ch]);
        bgmean[ch] = p->clean ? 128 : (p->bg0[ch] + p->bg1[ch]) / 2;
    }
    make_texture(&sbg, p->tex);
    for (int t = 0; t < 256; t++)
        for (int ch = 0; ch < 3; ch++)
            p->lut[t][ch] = clamp8((int)floor(p->bg0[ch] + (p->bg1[ch] - p->bg0[ch]) * t / 255 + 0.5));
    p->tex_scale = TEX / (uni(&sbg, 0.6, 2.0) * p->S);
    p->pan_x0 = uni(&sbg, 0, TEX);
    p->pan_y0 = uni(&sbg, 0, TEX);
    double pa = uni(&sbg, 0, 2 * PI), pm = uni(&sbg, 0, 0.3) * p->S * p->tex_scale;
    p->pan_dx = pm * dcos(pa);
    p->pan_dy = pm * dsin(pa);
    /* camera jitter: a damped random walk of a few pixels */
    double jamp = uni(&sbg, 0, 0.02) * p->S, jx = 0, jy = 0;
    for (int i = 0; i < p->nframes; i++) {
        jx = 0.5 * jx + jamp * uni(&sbg, -1, 1);
        jy = 0.5 * jy + jamp * uni(&sbg, -1, 1);
        p->jit[2 * i] = jx;
        p->jit[2 * i + 1] = jy;
    }
    p->noise_amp = irange(&sbg, 0, 10);
    p->noise_gray = irange(&sbg, 0, 1);
    p->noise_seed = fv_rand_u64(&sbg);

    /* main objects: the motion, in playfield units [0, 1]; both classes of a pair draw from the same
     * distributions, the reversed class plays the motion backwards */
    make_look(&slook, bgmean, 90, &p->look);
    p->theta0 = uni(&smot, 0, 2 * PI);
    p->theta1 = p->theta0;
    double r = uni(&smot, 0.10, 0.17);
    switch (p->motion) {
    case MOTION_MOVE_H:
    case MOTION_MOVE_V: {
        double d = FV_MIN(uni(&smot, 0.40, 0.62), 1 - 2 * r);
        double a0 = uni(&smot, r, 1 - r - d), b0 = uni(&smot, r, 1 - r);
        double b1 = clampd(b0 + uni(&smot, -0.06, 0.06), r, 1 - r);
        if (p->motion == MOTION_MOVE_H)
            p->x0 = a0, p->x1 = a0 + d, p->y0 = b0, p->y1 = b1;
        else
            p->y0 = a0, p->y1 = a0 + d, p->x0 = b0, p->x1 = b1;
        break;
    }
    case MOTION_ROTATE: {
        /* A large object with a marker that turns 90-150 degrees inside a 160-degree window of angles
         * centred on "up": the marker travels across patches, and, as with the bounded moves, where it is
         * early and late in the clip hints at the direction (clockwise: from the upper left to the upper
         * right). The window is symmetric about the vertical, so a horizontal flip still turns one class
         * into the other. Measured (models/README.md): with a uniform start angle, or with smaller objects
         * and no marker, a TimeSformer on 64x64 input with 16-pixel patches stays at chance on this pair. */
        r *= 1.7;
        const double turn = uni(&smot, 90, 150) * PI / 180, half = 80 * PI / 180;
        p->theta0 = uni(&smot, -PI / 2 - half, -PI / 2 + half - turn);
        p->theta1 = p->theta0 + turn;
        p->look.marker = 1;
        const uint8_t *c0 = p->look.col[0];
        memset(p->look.mcol, 299 * c0[0] + 587 * c0[1] + 114 * c0[2] < 128000 ? 255 : 0, 3);
        p->x0 = uni(&smot, r, 1 - r);
        p->y0 = uni(&smot, r, 1 - r);
        p->x1 = clampd(p->x0 + uni(&smot, -0.05, 0.05), r, 1 - r);
        p->y1 = clampd(p->y0 + uni(&smot, -0.05, 0.05), r, 1 - r);
        break;
    }
    case MOTION_SCALE: {
        r = uni(&smot, 0.055, 0.08);
        p->r1 = r * uni(&smot, 2.2, 3.0);
        p->x0 = uni(&smot, p->r1, 1 - p->r1);
        p->y0 = uni(&smot, p->r1, 1 - p->r1);
        p->x1 = clampd(p->x0 + uni(&smot, -0.05, 0.05), p->r1, 1 - p->r1);
        p->y1 = clampd(p->y0 + uni(&smot, -0.05, 0.05), p->r1, 1 - p->r1);
        break;
    }
    case MOTION_PAIR: {
        r = uni(&smot, 0.08, 0.12);
        double phi = uni(&smot, 0, PI);
        p->ax = dcos(phi);
        p->ay = dsin(phi);
        double big = FV_MAX(fabs(p->ax), fabs(p->ay));
        p->d1 = 2 * r + uni(&smot, 0.01, 0.06);
        p->d0 = FV_MIN(uni(&smot, 0.6, 0.85), 0.98 * (1 - 2 * r) / big);
        double hx = fabs(p->ax) * p->d0 / 2, hy = fabs(p->ay) * p->d0 / 2;
        p->x0 = uni(&smot, r + hx, 1 - r - hx);
        p->y0 = uni(&smot, r + hy, 1 - r - hy);
        p->theta1 = uni(&smot, 0, 2 * PI);
        break;
    }
    case MOTION_BOUNCE: {
        p->periods = uni(&smot, 2.0, 3.0);
        p->phase = fv_rand_unit(&smot);
        p->height = FV_MIN(uni(&smot, 0.45, 0.7), 1 - 2 * r);
        p->floor_y = uni(&smot, r + p->height, 1 - r);
        p->x0 = uni(&smot, r, 1 - r);
        p->x1 = clampd(p->x0 + uni(&smot, -0.1, 0.1), r, 1 - r);
        break;
    }
    case MOTION_BLINK: {
        p->periods = uni(&smot, 2.0, 3.0);
        p->phase = fv_rand_unit(&smot);
        p->duty = uni(&smot, 0.4, 0.6);
        p->x0 = uni(&smot, r, 1 - r);
        p->y0 = uni(&smot, r, 1 - r);
        p->x1 = clampd(p->x0 + uni(&smot, -0.05, 0.05), r, 1 - r);
        p->y1 = clampd(p->y0 + uni(&smot, -0.05, 0.05), r, 1 - r);
        break;
    }
    }
    p->r = r;

    /* distractors: small, slow, anywhere in the frame (also outside the playfield) */
    p->ndis = irange(&sdis, 1, 3);
    for (int i = 0; i < p->ndis; i++) {
        Distractor *d = &p->dis[i];
        make_look(&slook, bgmean, 60, &d->look);
        d->r = uni(&sdis, 0.03, 0.065);
        d->x0 = uni(&sdis, -p->OX / p->S, (p->W - p->OX) / p->S);
        d->y0 = uni(&sdis, -p->OY / p->S, (p->H - p->OY) / p->S);
        double a = uni(&sdis, 0, 2 * PI), m = uni(&sdis, 0, 0.12);
        d->dx = m * dcos(a);
        d->dy = m * dsin(a);
        d->theta = uni(&sdis, 0, 2 * PI);
        d->front = irange(&sdis, 0, 1);
    }
    if (p->clean)
        p->ndis = 0;
    return 0;
}

/* One main object's pose at normalised time @u in [0, 1] (already reversed for the reversed class). */
typedef struct Pose {
    double x, y, r, theta; /* playfield units, radians */
    int    visible;
} Pose;

static int main_poses(const Plan *p, double u, Pose out[2])
{
    double x = p->x0 + (p->x1 - p->x0) * u, y = p->y0 + (p->y1 - p->y0) * u;
    out[0] = (Pose){ x, y, p->r, p->theta0, 1 };
    switch (p->motion) {
    case MOTION_MOVE_H:
    case MOTION_MOVE_V:
        break;
    case MOTION_ROTATE:
        out[0].theta = p->theta0 + (p->theta1 - p->theta0) * u;
        break;
    case MOTION_SCALE:
        out[0].r = p->r + (p->r1 - p->r) * u;
        break;
    case MOTION_PAIR: {
        double h = (p->d0 + (p->d1 - p->d0) * u) / 2;
        out[0].x = p->x0 - h * p->ax;
        out[0].y = p->y0 - h * p->ay;
        out[1] = (Pose){ p->x0 + h * p->ax, p->y0 + h * p->ay, p->r, p->theta1, 1 };
        return 2;
    }
    case MOTION_BOUNCE: {
        double f = p->periods * u + p->phase;
        f -= floor(f);
        out[0].y = p->floor_y - p->height * 4 * f * (1 - f);
        break;
    }
    case MOTION_BLINK: {
        double f = p->periods * u + p->phase;
        f -= floor(f);
        out[0].visible = f < p->duty;
        break;
    }
    }
    return 1;
}

static void render_frame(const Plan *p, int i, uint8_t *img)
{
    const int W = p->W, H = p->H;
    const double u = p->nframes > 1 ? (double)i / (p->nframes - 1) : 0;
    const double jx = p->clean ? 0 : p->jit[2 * i], jy = p->clean ? 0 : p->jit[2 * i + 1];

    /* background */
    if (p->clean) {
        memset(img, 128, (size_t)W * H * 3);
    } else {
        const double px = p->pan_x0 + p->pan_dx * u, py = p->pan_y0 + p->pan_dy * u;
        for (int y = 0; y < H; y++) {
            /* 16.16 fixed point texture coordinates, wrapped to the period (kept positive by whole
             * periods, so the shifts and masks need no negative numbers) */
            double ty = (y - jy) * p->tex_scale + py + 64 * TEX;
            int64_t fy = (int64_t)floor(ty * 65536);
            int iy = (int)((fy >> 16) & (TEX - 1)), wy = (int)(fy & 0xFFFF);
            const uint8_t *r0 = p->tex + iy * TEX, *r1 = p->tex + ((iy + 1) & (TEX - 1)) * TEX;
            double tx0 = -jx * p->tex_scale + px + 64 * TEX;
            int64_t fx = (int64_t)floor(tx0 * 65536), step = (int64_t)floor(p->tex_scale * 65536);
            uint8_t *out = img + (size_t)y * W * 3;
            for (int x = 0; x < W; x++, fx += step) {
                int ix = (int)((fx >> 16) & (TEX - 1)), wx = (int)(fx & 0xFFFF), ix1 = (ix + 1) & (TEX - 1);
                int64_t top = (int64_t)r0[ix] * (65536 - wx) + (int64_t)r0[ix1] * wx;
                int64_t bot = (int64_t)r1[ix] * (65536 - wx) + (int64_t)r1[ix1] * wx;
                const uint8_t *col = p->lut[(top * (65536 - wy) + bot * wy) >> 32]; /* 0..255 */
                out[3 * x] = col[0];
                out[3 * x + 1] = col[1];
                out[3 * x + 2] = col[2];
            }
        }
    }

    const double S = p->S, ox = p->OX + jx, oy = p->OY + jy;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < p->ndis; k++) {
            const Distractor *d = &p->dis[k];
            if (d->front != pass)
                continue;
            draw(img, W, H, &d->look, ox + (d->x0 + d->dx * u) * S, oy + (d->y0 + d->dy * u) * S, d->r * S,
                 d->theta);
        }
        if (pass == 0) {
            Pose ps[2];
            int n = main_poses(p, p->reversed ? 1 - u : u, ps);
            for (int k = 0; k < n; k++)
                if (ps[k].visible)
                    draw(img, W, H, &p->look, ox + ps[k].x * S, oy + ps[k].y * S, ps[k].r * S, ps[k].theta);
        }
    }

    if (!p->clean && p->noise_amp > 0) {
        /* triangular noise in [-a, a], from a stream of its own per frame */
        uint64_t st = p->noise_seed ^ ((uint64_t)(i + 1) * 0xD6E8FEB86659FD93ull);
        const int a = p->noise_amp, span = 2 * a + 1;
        const size_t n = (size_t)W * H;
        for (size_t k = 0; k < n; k++) {
            uint64_t rv = fv_rand_u64(&st);
            uint8_t *q = img + 3 * k;
            /* (16-bit uniform * span) >> 16: a uniform integer in [0, span) without a division */
            if (p->noise_gray) {
                int e = (int)(((rv & 0xFFFF) * span) >> 16) + (int)((((rv >> 16) & 0xFFFF) * span) >> 16) - 2 * a;
                e /= 2;
                for (int ch = 0; ch < 3; ch++)
                    q[ch] = clamp8(q[ch] + e);
            } else {
                for (int ch = 0; ch < 3; ch++) {
                    uint64_t b = rv >> (20 * ch);
                    int e = (int)(((b & 0x3FF) * span) >> 10) + (int)((((b >> 10) & 0x3FF) * span) >> 10) - 2 * a;
                    q[ch] = clamp8(q[ch] + e / 2);
                }
            }
        }
    }
}

int32_t fv_synth_clip_frames(const FvSynthSettings *s, int32_t cls, int32_t clip)
{
    int ret = fv_synth_check_settings(s, 0);
    if (ret < 0)
        return ret;
    if (cls < 0 || cls >= NUM_CLASSES || clip < 0)
        return fv_error(FV_EINVAL, "fv_synth_clip_frames: class %d / clip %d out of range", cls, clip);
    uint64_t st = clip_state(s->seed, cls, clip);
    return clip_nframes(s, &st);
}

int fv_synth_render(const FvSynthSettings *s, int32_t cls, int32_t clip, uint8_t *rgb)
{
    int ret = fv_synth_check_settings(s, 0);
    if (ret < 0)
        return ret;
    if (cls < 0 || cls >= NUM_CLASSES || clip < 0 || !rgb)
        return fv_error(FV_EINVAL, "fv_synth_render: class %d / clip %d out of range or no buffer", cls, clip);
    Plan p;
    if ((ret = plan_init(&p, s, cls, clip)) < 0)
        return ret;
    const size_t fsz = (size_t)p.W * p.H * 3;
    for (int i = 0; i < p.nframes; i++)
        render_frame(&p, i, rgb + fsz * i);
    plan_free(&p);
    return 0;
}

struct FvSynthPlan {
    Plan p;
};

int fv_synth_plan_open(FvSynthPlan **out, const FvSynthSettings *s, int32_t cls, int32_t clip, int32_t *w, int32_t *h,
                       int32_t *nframes)
{
    *out = NULL;
    FvSynthPlan *sp = malloc(sizeof(*sp));
    if (!sp)
        return fv_error(FV_ENOMEM, "fv_synth_plan_open: out of memory");
    int ret = plan_init(&sp->p, s, cls, clip);
    if (ret < 0) {
        free(sp);
        return ret;
    }
    *w = sp->p.W;
    *h = sp->p.H;
    *nframes = sp->p.nframes;
    *out = sp;
    return 0;
}

void fv_synth_plan_frame(const FvSynthPlan *sp, int32_t i, uint8_t *rgb)
{
    render_frame(&sp->p, i, rgb);
}

void fv_synth_plan_close(FvSynthPlan **sp)
{
    if (!sp || !*sp)
        return;
    plan_free(&(*sp)->p);
    free(*sp);
    *sp = NULL;
}
