/* conv2d: shape validation, central-difference gradients (ref and fast), fast vs ref on random
 * shapes with 1 and 2 threads, and parity with PyTorch fixtures (tests/ref/gen_conv2d.py). */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* conv2d.c's test hooks: 0 forces the portable kernels, 1 restores run-time dispatch; 0 makes
 * im2col convolutions pack their weights per chunk again instead of once per call. */
void oc_conv2d_allow_simd(int allow);
void oc_conv2d_allow_prepack(int allow);
void oc_conv2d_allow_winograd(int allow);
void oc_conv2d_wino_train_min_tiles(int64_t tiles);

static oc_conv_shape mk(int N, int H, int W, int C, int K, int R, int S, int sh, int sw, int ph,
                        int pw, int dh, int dw, int G)
{
    oc_conv_shape s = {N, H, W, C, K, R, S, 0, 0, sh, sw, ph, pw, dh, dw, G};
    return s;
}

static int64_t x_numel(const oc_conv_shape *s) { return (int64_t)s->N * s->H * s->W * s->C; }
static int64_t y_numel(const oc_conv_shape *s) { return (int64_t)s->N * s->P * s->Q * s->K; }
static int64_t w_numel(const oc_conv_shape *s)
{
    return (int64_t)s->K * s->R * s->S * (s->C / s->groups);
}

static float *randv(oc_rng *r, int64_t n, float scale)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * oc_rng_normal(r);
    return v;
}

static float *copyv(const float *a, int64_t n)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(v, a, (size_t)n * sizeof(float));
    return v;
}

/* Index of the first element where a and b differ in their bits, or -1. */
static int64_t first_diff(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)))
            return i;
    return -1;
}

static float max_abs(const float *a, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}

/* The three passes, either the `_ref` oracle or the fast entry points with their workspace. */
static void fwd(int fast, const oc_conv_shape *s, const float *x, const float *w, const float *b,
                float *y)
{
    if (!fast) {
        oc_conv2d_fwd_ref(s, x, w, b, y);
        return;
    }
    void *ws = oc_alloc(oc_conv2d_fwd_workspace(s) + 64);
    oc_conv2d_fwd(s, x, w, b, y, ws);
    oc_free(ws);
}

static void bwd_data(int fast, const oc_conv_shape *s, const float *dy, const float *w, float *dx)
{
    if (!fast) {
        oc_conv2d_bwd_data_ref(s, dy, w, dx);
        return;
    }
    void *ws = oc_alloc(oc_conv2d_bwd_data_workspace(s) + 64);
    oc_conv2d_bwd_data(s, dy, w, dx, ws);
    oc_free(ws);
}

static void bwd_weights(int fast, const oc_conv_shape *s, const float *x, const float *dy,
                        float *dw, float *db)
{
    if (!fast) {
        oc_conv2d_bwd_weights_ref(s, x, dy, dw, db);
        return;
    }
    void *ws = oc_alloc(oc_conv2d_bwd_weights_workspace(s) + 64);
    oc_conv2d_bwd_weights(s, x, dy, dw, db, ws);
    oc_free(ws);
}

/* ---------------------------------------------------------------- shapes */

static void shape_init_computes_and_rejects(void)
{
    oc_conv_shape s = mk(2, 9, 11, 3, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1);
    T_CHECK(oc_conv_shape_init(&s) == 0 && s.P == 5 && s.Q == 6, "P=%d Q=%d", s.P, s.Q);
    s = mk(1, 8, 7, 4, 4, 3, 3, 1, 1, 2, 2, 2, 2, 4); /* dilation 2 keeps the size */
    T_CHECK(oc_conv_shape_init(&s) == 0 && s.P == 8 && s.Q == 7, "P=%d Q=%d", s.P, s.Q);
    s = mk(1, 3, 3, 1, 1, 3, 3, 1, 1, 0, 0, 1, 1, 1); /* kernel equal to input: 1x1 output */
    T_CHECK(oc_conv_shape_init(&s) == 0 && s.P == 1 && s.Q == 1, "P=%d Q=%d", s.P, s.Q);

    const oc_conv_shape bad[] = {
        mk(0, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),  /* N = 0 */
        mk(1, 5, 5, 3, 4, 3, 3, 0, 1, 1, 1, 1, 1, 1),  /* stride 0 */
        mk(1, 5, 5, 3, 4, 3, 3, 1, 1, -1, 1, 1, 1, 1), /* negative pad */
        mk(1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1, 0, 1, 1),  /* dilation 0 */
        mk(1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2),  /* C % groups */
        mk(1, 5, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 2),  /* K % groups */
        mk(1, 5, 5, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 0),  /* groups 0 */
        mk(1, 2, 5, 3, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1),  /* kernel taller than the input */
        mk(1, 5, 5, 3, 4, 3, 3, 1, 1, 0, 0, 3, 1, 1),  /* dilated kernel taller */
        mk(1, 5, 5, 3, 0, 3, 3, 1, 1, 1, 1, 1, 1, 1),  /* K = 0 */
        mk(1, 5, 5, 3, 4, 0, 3, 1, 1, 1, 1, 1, 1, 1),  /* R = 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        oc_conv_shape b = bad[i];
        T_CHECK(oc_conv_shape_init(&b) == -1, "invalid shape %zu accepted", i);
    }
    T_CHECK(oc_conv_shape_init(NULL) == -1, "NULL accepted");
}

static void workspace_is_bounded_and_pure(void)
{
    oc_conv_shape a = mk(1000, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    oc_conv_shape b = mk(1000, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    size_t full = (size_t)1000 * 32 * 32 * 9 * 16 * sizeof(float);
    T_CHECK(oc_conv_shape_init(&a) == 0 && oc_conv_shape_init(&b) == 0, "init");
    size_t f = oc_conv2d_fwd_workspace(&a), d = oc_conv2d_bwd_data_workspace(&a);
    size_t w = oc_conv2d_bwd_weights_workspace(&a);
    oc_test_note("N=1000 32x32x16 3x3: workspace fwd %.1f MB, bwd_data %.1f MB, bwd_w %.1f MB "
                 "(unchunked im2col %.0f MB)",
                 (double)f / 1e6, (double)d / 1e6, (double)w / 1e6, (double)full / 1e6);
    T_CHECK(f > 0 && f <= ((size_t)32 << 20), "fwd workspace %zu", f);
    T_CHECK(d > 0 && d <= ((size_t)32 << 20), "bwd_data workspace %zu", d);
    T_CHECK(w > 0 && w <= ((size_t)32 << 20), "bwd_weights workspace %zu", w);
    T_CHECK(f == oc_conv2d_fwd_workspace(&b) && w == oc_conv2d_bwd_weights_workspace(&b),
            "workspace not a function of the shape");
}

/* ---------------------------------------------------------------- gradient check */

static double loss(int fast, const oc_conv_shape *s, const float *x, const float *w,
                   const float *b, const float *g, float *y)
{
    double L = 0;
    fwd(fast, s, x, w, b, y);
    for (int64_t i = 0; i < y_numel(s); i++)
        L += (double)g[i] * (double)y[i];
    return L;
}

/* Central differences of L = sum g*y against `an` (analytic d L / d v) for every element of v. */
static double numeric_worst(int fast, const oc_conv_shape *s, float *x, float *w, float *b,
                            const float *g, float *v, int64_t n, const float *an, float *y)
{
    const float h = 1e-2f;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + h;
        double lp = loss(fast, s, x, w, b, g, y);
        v[i] = keep - h;
        double lm = loss(fast, s, x, w, b, g, y);
        v[i] = keep;
        double num = (lp - lm) / (2.0 * (double)h);
        /* relative error; gradients below 0.1 are compared against 0.1 so rounding noise on a
         * near-zero gradient does not count as a relative blow-up */
        double den = fmax(fmax(fabs(num), fabs((double)an[i])), 0.1);
        double e = fabs(num - (double)an[i]) / den;
        if (e > worst)
            worst = e;
    }
    return worst;
}

static void grad_case(const char *name, oc_conv_shape s, int with_bias)
{
    oc_rng r;
    T_CHECK(oc_conv_shape_init(&s) == 0, "%s: shape", name);
    oc_rng_seed(&r, 7, 0);
    int64_t nx = x_numel(&s), nw = w_numel(&s), ny = y_numel(&s);
    float *x = randv(&r, nx, 1.0f), *w = randv(&r, nw, 1.0f), *b = randv(&r, s.K, 1.0f);
    float *g = randv(&r, ny, 1.0f), *y = randv(&r, ny, 1.0f);
    float *base_dx = randv(&r, nx, 1.0f), *base_dw = randv(&r, nw, 1.0f);
    float *base_db = randv(&r, s.K, 1.0f);
    for (int fast = 0; fast < 2; fast++) {
        float *dx = copyv(base_dx, nx), *dw = copyv(base_dw, nw), *db = copyv(base_db, s.K);
        const float *bb = with_bias ? b : NULL;
        bwd_data(fast, &s, g, w, dx);
        bwd_weights(fast, &s, x, g, dw, with_bias ? db : NULL);
        /* backward accumulates: subtract what was there before */
        for (int64_t i = 0; i < nx; i++)
            dx[i] -= base_dx[i];
        for (int64_t i = 0; i < nw; i++)
            dw[i] -= base_dw[i];
        for (int i = 0; i < s.K; i++)
            db[i] -= base_db[i];
        double ex = numeric_worst(fast, &s, x, w, (float *)bb, g, x, nx, dx, y);
        double ew = numeric_worst(fast, &s, x, w, (float *)bb, g, w, nw, dw, y);
        double eb = with_bias ? numeric_worst(fast, &s, x, w, b, g, b, s.K, db, y) : 0.0;
        if (!with_bias)
            for (int i = 0; i < s.K; i++)
                T_CHECK(db[i] == 0.0f, "%s: db touched with db == NULL", name);
        oc_test_note("%-22s %s: worst rel err dx %.2e dw %.2e db %.2e", name,
                     fast ? "fast" : "ref ", ex, ew, eb);
        T_CHECK(ex < 1e-2 && ew < 1e-2 && eb < 1e-2, "%s (%s): gradient check failed", name,
                fast ? "fast" : "ref");
        free(dx);
        free(dw);
        free(db);
    }
    free(x);
    free(w);
    free(b);
    free(g);
    free(y);
    free(base_dx);
    free(base_dw);
    free(base_db);
}

static void gradient_check(void)
{
    grad_case("3x3 pad 1", mk(2, 5, 7, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1), 1);
    grad_case("3x3 stride 2", mk(2, 5, 7, 3, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1), 1);
    grad_case("5x5 stride 2 pad 2", mk(2, 5, 7, 3, 2, 5, 5, 2, 2, 2, 2, 1, 1, 1), 0);
    grad_case("3x3 dilation 2", mk(2, 5, 7, 3, 2, 3, 3, 1, 1, 2, 2, 2, 2, 1), 1);
    grad_case("depthwise stride 2", mk(2, 5, 7, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 3), 1);
    grad_case("depthwise dil 2", mk(2, 5, 7, 3, 3, 3, 3, 1, 1, 2, 2, 2, 2, 3), 0);
    grad_case("groups 2", mk(2, 5, 7, 4, 6, 3, 3, 1, 1, 0, 1, 1, 1, 2), 1);
    grad_case("1x1", mk(2, 5, 7, 3, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1), 1);
    grad_case("1x1 stride 2 groups 3", mk(2, 5, 7, 3, 6, 1, 1, 2, 2, 0, 0, 1, 1, 3), 1);
}

/* ---------------------------------------------------------------- fast vs ref */

/* Compares the fast kernels (1 and 2 threads) with `_ref` on one shape. Tolerances scale with
 * the largest reference value: the fast paths sum in a different order, in float. Returns 1 if
 * the shape was valid. */
static int fast_vs_ref_case(const char *name, oc_conv_shape s, int with_bias, uint64_t seed)
{
    oc_rng r;
    if (oc_conv_shape_init(&s) != 0)
        return 0;
    oc_rng_seed(&r, seed, 1);
    int64_t nx = x_numel(&s), nw = w_numel(&s), ny = y_numel(&s);
    float wscale = 1.0f / sqrtf((float)(s.R * s.S * (s.C / s.groups)));
    float *x = randv(&r, nx, 1.0f), *w = randv(&r, nw, wscale), *b = randv(&r, s.K, 1.0f);
    float *g = randv(&r, ny, 1.0f);
    float *dx0 = randv(&r, nx, 1.0f), *dw0 = randv(&r, nw, 1.0f), *db0 = randv(&r, s.K, 1.0f);
    float *y_ref = malloc((size_t)ny * sizeof(float));
    float *dx_ref = copyv(dx0, nx), *dw_ref = copyv(dw0, nw), *db_ref = copyv(db0, s.K);
    const float *bb = with_bias ? b : NULL;
    float *y1 = NULL, *dx1 = NULL, *dw1 = NULL, *db1 = NULL;
    double worst[3] = {0, 0, 0};

    fwd(0, &s, x, w, bb, y_ref);
    bwd_data(0, &s, g, w, dx_ref);
    bwd_weights(0, &s, x, g, dw_ref, db_ref);
    float sy = max_abs(y_ref, ny), sx = max_abs(dx_ref, nx), sw = max_abs(dw_ref, nw);
    float sb = max_abs(db_ref, s.K);
    for (int threads = 1; threads <= 2; threads++) {
        float *y = malloc((size_t)ny * sizeof(float));
        float *dx = copyv(dx0, nx), *dw = copyv(dw0, nw), *db = copyv(db0, s.K);
        oc_set_threads(threads);
        for (int64_t i = 0; i < ny; i++)
            y[i] = NAN; /* forward must overwrite */
        fwd(1, &s, x, w, bb, y);
        bwd_data(1, &s, g, w, dx);
        bwd_weights(1, &s, x, g, dw, db);
        char what[160];
        snprintf(what, sizeof what, "%s y (%d thr)", name, threads);
        T_CLOSE(what, y, y_ref, ny, 1e-5 * (double)sy + 1e-6, 1e-5);
        snprintf(what, sizeof what, "%s dx (%d thr)", name, threads);
        T_CLOSE(what, dx, dx_ref, nx, 1e-5 * (double)sx + 1e-6, 1e-5);
        snprintf(what, sizeof what, "%s dw (%d thr)", name, threads);
        T_CLOSE(what, dw, dw_ref, nw, 1e-5 * (double)sw + 1e-6, 1e-5);
        snprintf(what, sizeof what, "%s db (%d thr)", name, threads);
        T_CLOSE(what, db, db_ref, s.K, 1e-5 * (double)sb + 1e-6, 1e-5);
        for (int64_t i = 0; i < ny; i++)
            worst[0] = fmax(worst[0], fabs((double)(y[i] - y_ref[i])) / ((double)sy + 1e-30));
        for (int64_t i = 0; i < nx; i++)
            worst[1] = fmax(worst[1], fabs((double)(dx[i] - dx_ref[i])) / ((double)sx + 1e-30));
        for (int64_t i = 0; i < nw; i++)
            worst[2] = fmax(worst[2], fabs((double)(dw[i] - dw_ref[i])) / ((double)sw + 1e-30));
        if (threads == 1) {
            y1 = y;
            dx1 = dx;
            dw1 = dw;
            db1 = db;
            continue;
        }
        /* the depthwise kernels and the bias reduction split work so that every value is summed
         * in the same order for any thread count */
        if (s.groups == s.C && s.K == s.C) {
            T_CHECK(!memcmp(y, y1, (size_t)ny * 4) && !memcmp(dx, dx1, (size_t)nx * 4) &&
                        !memcmp(dw, dw1, (size_t)nw * 4),
                    "%s: depthwise results differ between 1 and 2 threads", name);
        }
        T_CHECK(!memcmp(db, db1, (size_t)s.K * 4), "%s: db differs between 1 and 2 threads",
                name);
        free(y);
        free(dx);
        free(dw);
        free(db);
    }
    oc_set_threads(0);
    oc_test_note("%-26s N%d %dx%d C%d K%d %dx%d s%d/%d p%d/%d d%d/%d g%d: max err/scale y %.1e "
                 "dx %.1e dw %.1e",
                 name, s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.stride_h, s.stride_w, s.pad_h,
                 s.pad_w, s.dil_h, s.dil_w, s.groups, worst[0], worst[1], worst[2]);
    free(y1);
    free(dx1);
    free(dw1);
    free(db1);
    free(x);
    free(w);
    free(b);
    free(g);
    free(dx0);
    free(dw0);
    free(db0);
    free(y_ref);
    free(dx_ref);
    free(dw_ref);
    free(db_ref);
    return 1;
}

static void fast_matches_ref_fixed_shapes(void)
{
    fast_vs_ref_case("3x3 C17 K19", mk(3, 9, 13, 17, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1), 1, 1);
    /* direct forward and backward-data summing 64-channel chunks (136 = 64 + 64 + 8 one way,
     * 96 = 64 + 32 the other), im2col backward-weights */
    fast_vs_ref_case("3x3 C136 K96", mk(2, 6, 7, 136, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1), 1, 14);
    /* Winograd forward and backward-data (transforming the weights per call; taken here from
     * one tile on), partial tiles, channels off the vectors */
    oc_conv2d_wino_train_min_tiles(1);
    fast_vs_ref_case("3x3 C136 K140 Winograd", mk(2, 6, 7, 136, 140, 3, 3, 1, 1, 1, 1, 1, 1, 1),
                     1, 20);
    fast_vs_ref_case("3x3 C130 K129 Winograd", mk(1, 5, 9, 130, 129, 3, 3, 1, 1, 1, 1, 1, 1, 1),
                     0, 21);
    oc_conv2d_wino_train_min_tiles(0);
    /* the few-channel forward: interior and padded tiles, 4- and 1-pixel remainders, one and
     * two 16-channel blocks with partial ones, 1 to 4 channels */
    fast_vs_ref_case("stem 3x3 s2 C3 K32", mk(2, 17, 63, 3, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1), 1, 15);
    fast_vs_ref_case("stem 7x7 s2 C3 K40", mk(1, 37, 41, 3, 40, 7, 7, 2, 2, 3, 3, 1, 1, 1), 1, 16);
    fast_vs_ref_case("2x2 C3 K24", mk(2, 9, 40, 3, 24, 2, 2, 1, 1, 0, 0, 1, 1, 1), 1, 17);
    fast_vs_ref_case("5x5 C1 K16", mk(1, 20, 33, 1, 16, 5, 5, 1, 1, 2, 2, 1, 1, 1), 0, 18);
    fast_vs_ref_case("4x4 s4 C4 K20", mk(2, 16, 32, 4, 20, 4, 4, 4, 4, 0, 0, 1, 1, 1), 1, 19);
    fast_vs_ref_case("1x1 C33 K19", mk(2, 7, 5, 33, 19, 1, 1, 1, 1, 0, 0, 1, 1, 1), 1, 2);
    fast_vs_ref_case("1x1 groups 2", mk(2, 6, 5, 10, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2), 0, 3);
    fast_vs_ref_case("5x5 stride 2", mk(2, 15, 12, 6, 10, 5, 5, 2, 2, 2, 2, 1, 1, 1), 1, 4);
    fast_vs_ref_case("7x7 stride 2 (stem)", mk(2, 23, 21, 3, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1), 1, 5);
    fast_vs_ref_case("depthwise C35", mk(2, 11, 9, 35, 35, 3, 3, 1, 1, 1, 1, 1, 1, 35), 1, 6);
    fast_vs_ref_case("depthwise C64 s2", mk(3, 12, 12, 64, 64, 3, 3, 2, 2, 1, 1, 1, 1, 64), 1, 7);
    fast_vs_ref_case("depthwise 5x5 dil 2", mk(2, 13, 10, 20, 20, 5, 5, 1, 2, 4, 3, 2, 2, 20), 0,
                     8);
    fast_vs_ref_case("grouped 3x3 g4", mk(2, 8, 9, 12, 20, 3, 3, 1, 1, 1, 1, 1, 1, 4), 1, 9);
    fast_vs_ref_case("dilated 3x3 d2", mk(2, 10, 11, 9, 7, 3, 3, 1, 1, 2, 2, 2, 2, 1), 1, 10);
}

/* The portable twins of the SIMD kernels (depthwise rows, col2im's add), which the CPU check
 * passes over on machines with AVX-512. */
static void portable_kernels_match_ref(void)
{
    oc_conv2d_allow_simd(0);
    grad_case("depthwise stride 2", mk(2, 5, 7, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 3), 1);
    fast_vs_ref_case("depthwise C35", mk(2, 11, 9, 35, 35, 3, 3, 1, 1, 1, 1, 1, 1, 35), 1, 6);
    fast_vs_ref_case("depthwise C64 s2", mk(3, 12, 12, 64, 64, 3, 3, 2, 2, 1, 1, 1, 1, 64), 1, 7);
    fast_vs_ref_case("depthwise 5x5 dil 2", mk(2, 13, 10, 20, 20, 5, 5, 1, 2, 4, 3, 2, 2, 20), 0,
                     8);
    fast_vs_ref_case("3x3 C17 K19 (col2im)", mk(3, 9, 13, 17, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1), 1,
                     1);
    fast_vs_ref_case("grouped dilated (col2im)", mk(2, 10, 11, 12, 8, 3, 3, 2, 1, 2, 2, 2, 2, 4),
                     1, 13);
    oc_conv2d_allow_simd(1);
}

/* The AVX-512 depthwise forward (plain and fused with an epilogue) and backward-data against
 * scalar loops that sum in their documented order: each output starts from its bias (or zero),
 * each dx value from its old contents, then takes one fmaf per valid tap, r-major, t-minor. The register tiles for interior
 * columns must keep that order exactly, so the comparison is bitwise: trained models give the
 * same outputs, and training the same gradients, as before the tiles. Channel counts cover one
 * and two 16-lane vectors per tile, masked tails, and the 64-wide border path; widths are odd
 * and small so tiles of 8, 4, 2 and 1 columns and the border columns all occur. */
static void depthwise_avx512_matches_fma_order(void)
{
    static const int Cs[] = {8, 16, 24, 32, 96, 144, 150};
    static const int geo[][4] = {
        /* kernel, stride, pad, dil */
        {3, 1, 1, 1}, {3, 2, 1, 1}, {3, 1, 0, 1}, {3, 2, 0, 1}, {5, 1, 2, 1},
        {5, 2, 2, 1}, {5, 1, 1, 1}, {3, 1, 2, 1}, {3, 1, 1, 2}, {5, 2, 0, 1},
    };
    static const int HW[][2] = {{7, 9}, {13, 7}, {9, 13}, {5, 23}};
    if (!__builtin_cpu_supports("avx512f")) {
        oc_test_note("no AVX-512: depthwise fma-order check skipped");
        return;
    }
    oc_rng rng;
    oc_rng_seed(&rng, 77, 0);
    oc_set_threads(1);
    int cases = 0;
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
        for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++) {
            const int C = Cs[ci], k = geo[gi][0], st = geo[gi][1], pad = geo[gi][2];
            const int dil = geo[gi][3];
            const int H = HW[(ci + gi) % 4][0], W = HW[(ci + gi) % 4][1];
            /* the stride and dilation differ across rows in some cases: the tiles take any
             * stride_h, dil_h */
            oc_conv_shape s = mk(2, H, W, C, C, k, k, gi % 3 == 1 ? 1 : st, st, pad, pad,
                                 gi == 8 ? 1 : dil, dil, C);
            if (oc_conv_shape_init(&s) != 0)
                continue;
            const int64_t nx = x_numel(&s), ny = y_numel(&s), nw = w_numel(&s);
            float *x = randv(&rng, nx, 1.0f), *w = randv(&rng, nw, 0.5f), *b = randv(&rng, C, 1.0f);
            float *y = malloc((size_t)ny * sizeof(float)), *want = malloc((size_t)ny * sizeof(float));
            for (int with_bias = 0; with_bias <= 1; with_bias++) {
                const float *bb = with_bias ? b : NULL;
                for (int n = 0; n < s.N; n++)
                    for (int p = 0; p < s.P; p++)
                        for (int q = 0; q < s.Q; q++)
                            for (int c = 0; c < C; c++) {
                                float acc = bb ? bb[c] : 0.0f;
                                for (int r = 0; r < k; r++) {
                                    int h = p * s.stride_h - pad + r * s.dil_h;
                                    if (h < 0 || h >= H)
                                        continue;
                                    for (int t = 0; t < k; t++) {
                                        int ww = q * st - pad + t * dil;
                                        if (ww < 0 || ww >= W)
                                            continue;
                                        acc = fmaf(x[(((int64_t)n * H + h) * W + ww) * C + c],
                                                   w[((int64_t)c * k + r) * k + t], acc);
                                    }
                                }
                                want[(((int64_t)n * s.P + p) * s.Q + q) * C + c] = acc;
                            }
                for (int64_t i = 0; i < ny; i++)
                    y[i] = NAN;
                fwd(1, &s, x, w, bb, y);
                int64_t bad = first_diff(y, want, ny);
                T_CHECK(bad < 0,
                        "depthwise C%d %dx%d %dx%d s%d/%d p%d d%d/%d bias %d: y[%lld] = %.9g, "
                        "fma order gives %.9g",
                        C, H, W, k, k, s.stride_h, st, pad, s.dil_h, dil, with_bias,
                        (long long)bad, bad < 0 ? 0.0 : (double)y[bad],
                        bad < 0 ? 0.0 : (double)want[bad]);
                cases++;
                if (with_bias)
                    continue;
                /* the fused inference forward: the bias-free sums, then the epilogue exactly as
                 * oc_conv_epilogue_apply computes it on the stored outputs (activations inside
                 * and outside the epilogue loop, with and without a residual) */
                static const oc_act acts[] = {OC_ACT_RELU6, OC_ACT_RELU, OC_ACT_IDENTITY,
                                              OC_ACT_GELU, OC_ACT_LEAKY_RELU};
                float *pre = randv(&rng, C, 1.0f), *sc = randv(&rng, C, 1.0f);
                float *sh = randv(&rng, C, 1.0f), *res = randv(&rng, ny, 1.0f);
                oc_conv_epilogue e = {pre, sc, sh, (ci + gi) % 2 ? res : NULL,
                                      acts[(ci + gi) % 5], 0.1f, NULL};
                void *ws = oc_alloc(oc_conv2d_fwd_workspace(&s) + 64);
                oc_conv_epilogue_apply(&e, 0, ny / C, 0, C, C, want);
                for (int64_t i = 0; i < ny; i++)
                    y[i] = NAN;
                oc_conv2d_fwd_fused(&s, x, w, &e, y, ws);
                bad = first_diff(y, want, ny);
                T_CHECK(bad < 0,
                        "depthwise fused C%d %dx%d %dx%d s%d/%d p%d d%d/%d act %d res %d: y[%lld] "
                        "= %.9g, the epilogue on the fma order gives %.9g",
                        C, H, W, k, k, s.stride_h, st, pad, s.dil_h, dil, (int)e.act,
                        e.res != NULL, (long long)bad, bad < 0 ? 0.0 : (double)y[bad],
                        bad < 0 ? 0.0 : (double)want[bad]);
                cases++;
                oc_free(ws);
                free(pre);
                free(sc);
                free(sh);
                free(res);
            }
            /* backward-data: dx accumulates onto its old contents, here random */
            float *dx0 = randv(&rng, nx, 1.0f), *dx = copyv(dx0, nx);
            float *wantx = malloc((size_t)nx * sizeof(float));
            for (int n = 0; n < s.N; n++)
                for (int h = 0; h < H; h++)
                    for (int ww = 0; ww < W; ww++)
                        for (int c = 0; c < C; c++) {
                            const int64_t at = (((int64_t)n * H + h) * W + ww) * C + c;
                            float acc = dx0[at];
                            for (int r = 0; r < k; r++) {
                                int tp = h + pad - r * s.dil_h;
                                if (tp < 0 || tp % s.stride_h || tp / s.stride_h >= s.P)
                                    continue;
                                for (int t = 0; t < k; t++) {
                                    int tq = ww + pad - t * dil;
                                    if (tq < 0 || tq % st || tq / st >= s.Q)
                                        continue;
                                    acc = fmaf(y[(((int64_t)n * s.P + tp / s.stride_h) * s.Q +
                                                  tq / st) * C + c],
                                               w[((int64_t)c * k + r) * k + t], acc);
                                }
                            }
                            wantx[at] = acc;
                        }
            bwd_data(1, &s, y, w, dx); /* y, the last forward's output, serves as dy */
            int64_t bad = first_diff(dx, wantx, nx);
            T_CHECK(bad < 0,
                    "depthwise bwd-data C%d %dx%d %dx%d s%d/%d p%d d%d/%d: dx[%lld] = %.9g, fma "
                    "order gives %.9g",
                    C, H, W, k, k, s.stride_h, st, pad, s.dil_h, dil, (long long)bad,
                    bad < 0 ? 0.0 : (double)dx[bad], bad < 0 ? 0.0 : (double)wantx[bad]);
            cases++;
            /* backward-weights onto old contents, in its documented order: the rows (n, p) in
             * min(N*P, 32) blocks (OC_CONV_RED_BLOCKS in conv2d.c) as oc_split_range splits
             * them; per block each tap's sum starts at 0 and adds x * dy by FMA over the
             * block's rows and, in a row, over q ascending (the bias: plain adds of dy); each
             * block's sums are then added to dw and db in block order */
            float *dw = randv(&rng, nw, 1.0f), *db = randv(&rng, C, 1.0f);
            float *wantw = copyv(dw, nw), *wantb = copyv(db, C);
            const int64_t rows = (int64_t)s.N * s.P;
            const int blocks = rows < 32 ? (int)rows : 32;
            for (int blk = 0; blk < blocks; blk++) {
                int64_t j0, j1;
                oc_split_range(rows, blk, blocks, &j0, &j1);
                for (int c = 0; c < C; c++) {
                    float sb = 0.0f;
                    for (int64_t j = j0; j < j1; j++)
                        for (int q = 0; q < s.Q; q++)
                            sb += y[(j * s.Q + q) * C + c];
                    wantb[c] += sb;
                    for (int r = 0; r < k; r++)
                        for (int t = 0; t < k; t++) {
                            float acc = 0.0f;
                            for (int64_t j = j0; j < j1; j++) {
                                const int n = (int)(j / s.P), p = (int)(j % s.P);
                                const int h = p * s.stride_h - pad + r * s.dil_h;
                                if (h < 0 || h >= H)
                                    continue;
                                for (int q = 0; q < s.Q; q++) {
                                    const int ww = q * st - pad + t * dil;
                                    if (ww >= 0 && ww < W)
                                        acc = fmaf(x[(((int64_t)n * H + h) * W + ww) * C + c],
                                                   y[(j * s.Q + q) * C + c], acc);
                                }
                            }
                            wantw[((int64_t)c * k + r) * k + t] += acc;
                        }
                }
            }
            bwd_weights(1, &s, x, y, dw, db);
            bad = first_diff(dw, wantw, nw);
            T_CHECK(bad < 0,
                    "depthwise bwd-weights C%d %dx%d %dx%d s%d/%d p%d d%d/%d: dw[%lld] = %.9g, "
                    "the documented order gives %.9g",
                    C, H, W, k, k, s.stride_h, st, pad, s.dil_h, dil, (long long)bad,
                    bad < 0 ? 0.0 : (double)dw[bad], bad < 0 ? 0.0 : (double)wantw[bad]);
            bad = first_diff(db, wantb, C);
            T_CHECK(bad < 0, "depthwise bwd-weights C%d: db[%lld] = %.9g, the order gives %.9g", C,
                    (long long)bad, bad < 0 ? 0.0 : (double)db[bad],
                    bad < 0 ? 0.0 : (double)wantb[bad]);
            cases++;
            free(x);
            free(w);
            free(b);
            free(y);
            free(want);
            free(dx0);
            free(dx);
            free(wantx);
            free(dw);
            free(db);
            free(wantw);
            free(wantb);
        }
    oc_set_threads(0);
    oc_test_note("depthwise AVX-512 forward, fused forward, backward-data and backward-weights "
                 "bitwise equal to their documented order in %d cases",
                 cases);
}

/* A batch whose im2col does not fit one workspace chunk, with chunk boundaries falling inside
 * an image (the chunk is a whole number of output rows, not of images). */
static void fast_matches_ref_chunked_batch(void)
{
    oc_conv_shape s = mk(6, 32, 32, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    T_CHECK(oc_conv_shape_init(&s) == 0, "shape");
    size_t full = (size_t)6 * 32 * 32 * 9 * 16 * sizeof(float);
    size_t ws = oc_conv2d_fwd_workspace(&s);
    oc_test_note("workspace %zu bytes for an im2col of %zu bytes", ws, full);
    T_CHECK(ws < full, "the batch fits one chunk: this case does not test chunking");
    fast_vs_ref_case("chunked batch 3x3", s, 1, 11);
    fast_vs_ref_case("chunked batch s2 g2", mk(12, 33, 31, 16, 10, 3, 3, 2, 2, 1, 1, 1, 1, 2), 1,
                     12);
}

static void fast_matches_ref_random_shapes(void)
{
    oc_rng r;
    int done = 0;
    oc_rng_seed(&r, 99, 2);
    while (done < 24) {
        int G = 1 + (int)oc_rng_below(&r, 3);
        int dwise = oc_rng_below(&r, 4) == 0;
        int C = G * (1 + (int)oc_rng_below(&r, 7)), K = G * (1 + (int)oc_rng_below(&r, 7));
        if (dwise) {
            C = 1 + (int)oc_rng_below(&r, 40);
            K = G = C;
        }
        oc_conv_shape s = mk(1 + (int)oc_rng_below(&r, 3), 1 + (int)oc_rng_below(&r, 14),
                             1 + (int)oc_rng_below(&r, 14), C, K, 1 + (int)oc_rng_below(&r, 5),
                             1 + (int)oc_rng_below(&r, 5), 1 + (int)oc_rng_below(&r, 3),
                             1 + (int)oc_rng_below(&r, 3), (int)oc_rng_below(&r, 3),
                             (int)oc_rng_below(&r, 3), 1 + (int)oc_rng_below(&r, 2),
                             1 + (int)oc_rng_below(&r, 2), G);
        done += fast_vs_ref_case(dwise ? "random depthwise" : "random", s,
                                 (int)oc_rng_below(&r, 2), 100 + (uint64_t)done);
    }
}

/* ---------------------------------------------------------------- PyTorch parity */

/* dw NULL (a frozen weight): only the bias gradient, the same bits as the full call's for every
 * method (1x1, direct 3x3, im2col), close to it for depthwise (fewer blocks may fit there), and
 * nothing written past the workspace (ASan). */
static void frozen_weight_gives_bias_only(void)
{
    const oc_conv_shape shapes[] = {
        mk(4, 9, 9, 8, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1),   /* 1x1 */
        mk(4, 9, 9, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1),  /* direct 3x3 */
        mk(2, 5, 5, 136, 140, 3, 3, 1, 1, 1, 1, 1, 1, 1), /* wide: im2col backward */
        mk(4, 9, 9, 3, 24, 2, 2, 1, 1, 0, 0, 1, 1, 1),   /* airnet's whitening: im2col */
        mk(4, 9, 9, 8, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1),   /* stride 2: im2col */
        mk(2, 5, 5, 12, 12, 1, 1, 1, 1, 0, 0, 1, 1, 12), /* depthwise 1x1 */
        mk(4, 9, 9, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, 12), /* depthwise 3x3 */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        oc_conv_shape s = shapes[i];
        oc_rng r;
        T_CHECK(oc_conv_shape_init(&s) == 0, "shape %zu", i);
        oc_rng_seed(&r, 900 + i, 1);
        float *x = randv(&r, x_numel(&s), 1.0f), *dy = randv(&r, y_numel(&s), 1.0f);
        float *dw = randv(&r, w_numel(&s), 1.0f), *db1 = randv(&r, s.K, 1.0f);
        float *db2 = copyv(db1, s.K);
        size_t wsb = oc_conv2d_bwd_weights_workspace(&s);
        void *ws = oc_alloc(wsb ? wsb : 1);
        oc_conv2d_bwd_weights(&s, x, dy, dw, db1, ws);
        oc_conv2d_bwd_weights(&s, x, dy, NULL, db2, ws);
        if (s.groups == 1)
            T_CHECK(!memcmp(db1, db2, (size_t)s.K * sizeof(float)), "shape %zu: bias differs", i);
        else
            T_CLOSE("depthwise bias", db2, db1, s.K, 1e-5, 1e-5);
        oc_free(ws);
        free(x), free(dy), free(dw), free(db1), free(db2);
    }
}

static void matches_pytorch(void)
{
    oc_fixture *f = oc_fixture_load("conv2d");
    oc_fixture_array *cnt = oc_fixture_get(f, "count");
    if (!f || !cnt)
        goto done;
    int count = ((int32_t *)cnt->data)[0];
    T_CHECK(count >= 8, "fixture has %d cases", count);
    for (int i = 0; i < count; i++) {
        char key[32];
        snprintf(key, sizeof key, "c%d_shape", i);
        oc_fixture_array *sa = oc_fixture_get(f, key);
        if (!sa)
            break;
        const int32_t *v = sa->data;
        oc_conv_shape s = mk(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
                             v[11], v[12], v[13]);
        int has_bias = v[14];
        T_CHECK(oc_conv_shape_init(&s) == 0, "case %d: shape", i);
#define GET(name) (snprintf(key, sizeof key, "c%d_" name, i), oc_fixture_f32(f, key))
        const float *x = GET("x"), *w = GET("w"), *b = GET("b"), *g = GET("g");
        const float *y_t = GET("y"), *dx_t = GET("dx"), *dw_t = GET("dw"), *db_t = GET("db");
#undef GET
        if (!x || !w || !b || !g || !y_t || !dx_t || !dw_t || !db_t)
            break;
        int64_t nx = x_numel(&s), nw = w_numel(&s), ny = y_numel(&s);
        for (int fast = 0; fast < 2; fast++) {
            float *y = malloc((size_t)ny * sizeof(float));
            float *dx = calloc((size_t)nx, sizeof(float)), *dw = calloc((size_t)nw, sizeof(float));
            float *db = calloc((size_t)s.K, sizeof(float));
            char what[96];
            fwd(fast, &s, x, w, has_bias ? b : NULL, y);
            bwd_data(fast, &s, g, w, dx);
            bwd_weights(fast, &s, x, g, dw, has_bias ? db : NULL);
            const char *impl = fast ? "fast" : "ref";
            snprintf(what, sizeof what, "case %d %s y", i, impl);
            T_CLOSE(what, y, y_t, ny, 1e-4, 1e-4);
            snprintf(what, sizeof what, "case %d %s dx", i, impl);
            T_CLOSE(what, dx, dx_t, nx, 1e-4, 1e-4);
            snprintf(what, sizeof what, "case %d %s dw", i, impl);
            T_CLOSE(what, dw, dw_t, nw, 1e-4, 1e-4);
            snprintf(what, sizeof what, "case %d %s db", i, impl);
            T_CLOSE(what, db, db_t, s.K, 1e-4, 1e-4);
            if (fast) {
                double e = 0;
                for (int64_t k = 0; k < ny; k++)
                    e = fmax(e, fabs((double)(y[k] - y_t[k])));
                for (int64_t k = 0; k < nx; k++)
                    e = fmax(e, fabs((double)(dx[k] - dx_t[k])));
                for (int64_t k = 0; k < nw; k++)
                    e = fmax(e, fabs((double)(dw[k] - dw_t[k])));
                oc_test_note("case %d: N%d %dx%d C%d K%d %dx%d s%d/%d p%d/%d d%d/%d g%d bias %d: "
                             "fast max |diff| %.2e",
                             i, s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.stride_h, s.stride_w,
                             s.pad_h, s.pad_w, s.dil_h, s.dil_w, s.groups, has_bias, e);
            }
            free(y);
            free(dx);
            free(dw);
            free(db);
        }
    }
done:
    oc_fixture_free(f);
}

/* ---------------------------------------------------------------- rough speed */

static double time_passes(int fast, const oc_conv_shape *s, const float *x, const float *w,
                          const float *b, const float *g, float *y, float *dx, float *dw,
                          float *db)
{
    double t0 = oc_now();
    fwd(fast, s, x, w, b, y);
    bwd_data(fast, s, g, w, dx);
    bwd_weights(fast, s, x, g, dw, db);
    return (oc_now() - t0) * 1e3;
}

/* Informational: fwd + bwd of a ResNet-20 3x3 layer on a small batch. Checks only that the
 * timed results agree, so the numbers come from a correct run. */
static void speed_note(void)
{
    oc_rng r;
    oc_conv_shape s = mk(8, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    T_CHECK(oc_conv_shape_init(&s) == 0, "shape");
    oc_rng_seed(&r, 3, 3);
    int64_t nx = x_numel(&s), nw = w_numel(&s), ny = y_numel(&s);
    float *x = randv(&r, nx, 1.0f), *w = randv(&r, nw, 0.1f), *b = randv(&r, 16, 1.0f);
    float *g = randv(&r, ny, 1.0f);
    float *y[2], *dx[2], *dw[2], *db[2];
    double ms[2];
    for (int f = 0; f < 2; f++) {
        y[f] = malloc((size_t)ny * 4);
        dx[f] = calloc((size_t)nx, 4);
        dw[f] = calloc((size_t)nw, 4);
        db[f] = calloc(16, 4);
        ms[f] = time_passes(f, &s, x, w, b, g, y[f], dx[f], dw[f], db[f]);
    }
    oc_test_note("N=8 32x32 C=K=16 3x3 fwd+bwd: ref %.1f ms, fast %.1f ms (%d threads)", ms[0],
                 ms[1], oc_get_threads());
    T_CLOSE("timed y", y[1], y[0], ny, 1e-4, 1e-4);
    T_CLOSE("timed dw", dw[1], dw[0], nw, 1e-3, 1e-4);
    for (int f = 0; f < 2; f++) {
        free(y[f]);
        free(dx[f]);
        free(dw[f]);
        free(db[f]);
    }
    free(x);
    free(w);
    free(b);
    free(g);
}

/* oc_conv2d_fwd_fused against the oracle: oc_conv2d_fwd_ref (no bias) then
 * oc_conv_epilogue_ref, on every kernel path (depthwise, 1x1 GEMM blocks with and without
 * column slices, direct 3x3, im2col, grouped fallback), with and without a residual, for the
 * inline and the generic activations, 1 and 2 threads, SIMD on and off. The row-wise and 1x1
 * paths must also not depend on the thread count (bitwise). Tolerance: 1e-5 relative to the largest output
 * plus 1e-5 per element relative (sums reordered, the affine applied in float). */
static void fused_matches_unfused(void)
{
    static const struct {
        const char *name;
        int N, H, W, C, K, R, S, sh, ph, G;
    } cs[] = {
        {"depthwise 3x3", 1, 13, 11, 40, 40, 3, 3, 1, 1, 40},
        {"depthwise 3x3 s2", 2, 14, 14, 72, 72, 3, 3, 2, 1, 72},
        {"1x1 many rows", 1, 24, 23, 19, 24, 1, 1, 1, 0, 1},
        {"1x1 column slices", 1, 7, 7, 96, 200, 1, 1, 1, 0, 1},
        {"1x1 balanced row blocks", 1, 7, 7, 96, 160, 1, 1, 1, 0, 1},
        {"1x1 two row blocks, slices", 1, 14, 15, 40, 576, 1, 1, 1, 0, 1},
        {"direct 3x3", 2, 9, 10, 16, 32, 3, 3, 1, 1, 1},
        {"few channels 3x3 s2 C=3", 1, 33, 31, 3, 32, 3, 3, 2, 1, 1},
        {"im2col 3x3 s2 C=8", 1, 33, 31, 8, 32, 3, 3, 2, 1, 1},
        {"direct 3x3 wide (channel chunks)", 1, 8, 8, 136, 140, 3, 3, 1, 1, 1},
        {"im2col 3x3 wide", 1, 6, 6, 264, 260, 3, 3, 1, 1, 1},
        {"grouped", 1, 10, 10, 8, 12, 3, 3, 1, 1, 4},
    };
    static const oc_act acts[] = {OC_ACT_RELU, OC_ACT_RELU6, OC_ACT_IDENTITY, OC_ACT_GELU};
    oc_rng r;
    oc_rng_seed(&r, 77, 0);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        oc_conv_shape s = mk(cs[c].N, cs[c].H, cs[c].W, cs[c].C, cs[c].K, cs[c].R, cs[c].S,
                             cs[c].sh, cs[c].sh, cs[c].ph, cs[c].ph, 1, 1, cs[c].G);
        T_CHECK(oc_conv_shape_init(&s) == 0, "%s: shape", cs[c].name);
        const int64_t ny = y_numel(&s);
        float *x = randv(&r, x_numel(&s), 1.0f), *w = randv(&r, w_numel(&s), 0.3f);
        float *res = randv(&r, ny, 1.0f), *pre = randv(&r, s.K, 0.5f);
        float *sc = randv(&r, s.K, 1.0f), *sh = randv(&r, s.K, 0.5f);
        float *want = malloc((size_t)ny * sizeof(float)), *got = malloc((size_t)ny * sizeof(float));
        float *got1 = malloc((size_t)ny * sizeof(float));
        void *ws = oc_alloc(oc_conv2d_fwd_workspace(&s) + 64);
        for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++)
            for (int with_res = 0; with_res < 2; with_res++)
                for (int simd = 1; simd >= 0; simd--) {
                    oc_conv_epilogue e = {pre, sc, sh, with_res ? res : NULL, acts[a], 0.0f, NULL};
                    char what[160];
                    oc_conv2d_fwd_ref(&s, x, w, NULL, want);
                    oc_conv_epilogue_ref(&e, ny / s.K, s.K, want);
                    oc_conv2d_allow_simd(simd);
                    for (int nt = 1; nt <= 2; nt++) {
                        oc_set_threads(nt);
                        oc_conv2d_fwd_fused(&s, x, w, &e, nt == 1 ? got1 : got, ws);
                    }
                    oc_set_threads(0);
                    oc_conv2d_allow_simd(1);
                    snprintf(what, sizeof what, "%s act %d res %d simd %d", cs[c].name,
                             (int)acts[a], with_res, simd);
                    T_CLOSE(what, got, want, ny, 1e-5 * (double)max_abs(want, ny) + 1e-6, 1e-5);
                    T_CLOSE(what, got1, want, ny, 1e-5 * (double)max_abs(want, ny) + 1e-6,
                            1e-5);
                    /* im2col chunks run one threaded oc_gemm, whose K-split products (deep,
                     * few rows) are deterministic per thread count only; without SIMD the
                     * direct shapes take im2col too */
                    T_CHECK(!strncmp(cs[c].name, "im2col", 6) ||
                                (!simd && !strncmp(cs[c].name, "direct", 6)) ||
                                !memcmp(got, got1, (size_t)ny * sizeof(float)),
                            "%s: 1 and 2 threads differ", what);
                }
        free(x); free(w); free(res); free(pre); free(sc); free(sh);
        free(want); free(got); free(got1);
        oc_free(ws);
    }
}

/* Weights packed once per call give the bits of packing them per chunk: forward (with bias,
 * several chunks, few rows read in place), the fused inference forward and backward-data, on
 * the wide, the skinny (K <= 16) and the AVX2 kernels' shapes, 1 and 2 threads. */
static void prepacked_weights_are_bitwise(void)
{
    static const struct {
        const char *name;
        int N, H, W, C, K, R, S, sh, ph;
    } cs[] = {
        {"3x3 wide, chunks", 12, 8, 8, 264, 260, 3, 3, 1, 1},
        {"3x3 s2 skinny", 2, 15, 13, 24, 12, 3, 3, 2, 1},
        {"5x5 odd", 1, 11, 9, 7, 45, 5, 5, 1, 2},
        {"3x3 few rows", 1, 4, 4, 64, 70, 3, 3, 2, 1},
    };
    oc_conv2d_allow_winograd(0); /* the wide shape tests im2col's packing */
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        oc_conv_shape s = mk(cs[c].N, cs[c].H, cs[c].W, cs[c].C, cs[c].K, cs[c].R, cs[c].S,
                             cs[c].sh, cs[c].sh, cs[c].ph, cs[c].ph, 1, 1, 1);
        T_CHECK(oc_conv_shape_init(&s) == 0, "%s: shape", cs[c].name);
        oc_rng r;
        oc_rng_seed(&r, 40 + c, 0);
        int64_t nx = x_numel(&s), ny = y_numel(&s), nw = w_numel(&s);
        size_t wsb = oc_conv2d_fwd_workspace(&s), b2 = oc_conv2d_bwd_data_workspace(&s);
        float *x = randv(&r, nx, 1.0f), *w = randv(&r, nw, 0.1f), *b = randv(&r, s.K, 0.1f);
        float *dy = randv(&r, ny, 1.0f), *dx0 = randv(&r, nx, 1.0f);
        float *sc = randv(&r, s.K, 1.0f), *sh = randv(&r, s.K, 1.0f);
        float *y[2], *yf[2], *dx[2];
        void *ws = oc_alloc(b2 > wsb ? b2 : wsb);
        oc_conv_epilogue e = {b, sc, sh, NULL, OC_ACT_RELU, 0.0f, NULL};
        for (int nt = 1; nt <= 2; nt++) {
            oc_set_threads(nt);
            for (int pre = 0; pre <= 1; pre++) {
                y[pre] = malloc((size_t)ny * sizeof(float));
                yf[pre] = malloc((size_t)ny * sizeof(float));
                dx[pre] = copyv(dx0, nx);
                oc_conv2d_allow_prepack(pre);
                oc_conv2d_fwd(&s, x, w, b, y[pre], ws);
                oc_conv2d_fwd_fused(&s, x, w, &e, yf[pre], ws);
                oc_conv2d_bwd_data(&s, dy, w, dx[pre], ws);
            }
            oc_conv2d_allow_prepack(1);
            T_CHECK(!memcmp(y[0], y[1], (size_t)ny * sizeof(float)),
                    "%s, %d threads: forward differs", cs[c].name, nt);
            T_CHECK(!memcmp(yf[0], yf[1], (size_t)ny * sizeof(float)),
                    "%s, %d threads: fused forward differs", cs[c].name, nt);
            T_CHECK(!memcmp(dx[0], dx[1], (size_t)nx * sizeof(float)),
                    "%s, %d threads: backward-data differs", cs[c].name, nt);
            for (int pre = 0; pre <= 1; pre++)
                free(y[pre]), free(yf[pre]), free(dx[pre]);
        }
        oc_set_threads(0);
        free(x), free(w), free(b), free(dy), free(dx0), free(sc), free(sh);
        oc_free(ws);
    }
    oc_conv2d_allow_winograd(1);
}

/* A fused convolution reading weights packed once (oc_conv2d_fused_pack, as a model with fixed
 * weights keeps them) gives the bits of packing them per call, for every layout: 1x1 GEMM
 * panels (many row blocks, column slices whose last one is narrower than a panel and falls
 * back to its own packing, skinny K), direct 3x3 (with channel chunks), im2col (few and many
 * rows, wide), depthwise; 1 and 2 threads; with the inline activations (which the 1x1 layers
 * apply in the GEMM's registers, over one or two K blocks) and GELU, with and without a
 * residual. A stale packing would be caught: the test also packs different weights and
 * expects different outputs. */
static void fused_packed_weights_are_bitwise(void)
{
    const oc_conv_shape shapes[] = {
        mk(1, 24, 24, 19, 24, 1, 1, 1, 1, 0, 0, 1, 1, 1),
        mk(1, 7, 7, 96, 200, 1, 1, 1, 1, 0, 0, 1, 1, 1),
        mk(1, 7, 7, 96, 160, 1, 1, 1, 1, 0, 0, 1, 1, 1),
        mk(1, 6, 7, 300, 40, 1, 1, 1, 1, 0, 0, 1, 1, 1),   /* 1x1, two K blocks */
        mk(2, 9, 9, 40, 12, 1, 1, 1, 1, 0, 0, 1, 1, 1),
        mk(1, 3, 3, 64, 70, 1, 1, 1, 1, 0, 0, 1, 1, 1),
        mk(2, 9, 10, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1),   /* direct 3x3 */
        mk(1, 6, 7, 136, 140, 3, 3, 1, 1, 1, 1, 1, 1, 1),  /* direct 3x3, channel chunks */
        mk(3, 17, 15, 8, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1),   /* im2col, stride 2 */
        mk(1, 3, 3, 8, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1),     /* im2col, few rows (*) */
        mk(1, 5, 5, 264, 260, 3, 3, 1, 1, 1, 1, 1, 1, 1),  /* im2col, wide */
        mk(2, 8, 8, 16, 32, 1, 1, 2, 2, 0, 0, 1, 1, 1),    /* 1x1 stride 2: im2col (*) */
        mk(2, 11, 9, 24, 24, 3, 3, 1, 1, 1, 1, 1, 1, 24),  /* depthwise */
        mk(1, 12, 12, 40, 40, 5, 5, 2, 2, 2, 2, 1, 1, 40), /* depthwise 5x5 stride 2 */
        mk(1, 33, 35, 3, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1),   /* few channels (a stem) */
    };
    /* (*) products too small for the blocked GEMM, which reads the plain weights instead */
    const int small_product[sizeof shapes / sizeof shapes[0]] = {[9] = 1, [11] = 1};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        oc_conv_shape s = shapes[c];
        T_CHECK(oc_conv_shape_init(&s) == 0, "shape %zu", c);
        oc_rng r;
        oc_rng_seed(&r, 90 + c, 0);
        int64_t nx = x_numel(&s), ny = y_numel(&s), nw = w_numel(&s);
        float *x = randv(&r, nx, 1.0f), *w = randv(&r, nw, 0.1f), *pre = randv(&r, s.K, 0.1f);
        float *w2 = randv(&r, nw, 0.1f);
        float *sc = randv(&r, s.K, 1.0f), *sh = randv(&r, s.K, 1.0f);
        float *y0 = malloc((size_t)ny * sizeof(float)), *y1 = malloc((size_t)ny * sizeof(float));
        size_t bytes = oc_conv2d_fused_pack_bytes(&s);
        T_CHECK(bytes > 0, "shape %zu: no packed layout", c);
        void *bp = oc_alloc(bytes + 64);
        void *ws = oc_alloc(oc_conv2d_fwd_workspace(&s) + 64);
        float *res = randv(&r, ny, 1.0f);
        oc_conv_epilogue e = {pre, sc, sh, NULL, OC_ACT_RELU6, 0.0f, NULL};
        /* the 1x1 layers apply these epilogues in the GEMM's registers (oc_gemm_pre_epi) */
        static const oc_act acts[] = {OC_ACT_RELU6, OC_ACT_RELU, OC_ACT_IDENTITY, OC_ACT_GELU};
        oc_conv2d_allow_winograd(0); /* its own test: winograd_matches_direct */
        oc_conv2d_fused_pack(&s, w, bp);
        for (int v = 0; v < 8; v++)
            for (int nt = 1; nt <= 2; nt++) {
                oc_set_threads(nt);
                e.act = acts[v / 2];
                e.res = v % 2 ? res : NULL;
                e.w_packed = NULL;
                oc_conv2d_fwd_fused(&s, x, w, &e, y0, ws);
                e.w_packed = bp;
                oc_conv2d_fwd_fused(&s, x, w, &e, y1, ws);
                T_CHECK(!memcmp(y0, y1, (size_t)ny * sizeof(float)),
                        "shape %zu, act %d, res %d, %d threads: packed weights differ", c,
                        (int)e.act, v % 2, nt);
            }
        e.act = OC_ACT_RELU6;
        e.res = NULL;
        oc_conv2d_fused_pack(&s, w2, bp); /* the packing is what the kernel reads */
        oc_conv2d_fwd_fused(&s, x, w, &e, y1, ws);
        T_CHECK(small_product[c] || memcmp(y0, y1, (size_t)ny * sizeof(float)) != 0,
                "shape %zu: other packed weights gave the same output", c);
        oc_conv2d_allow_winograd(1);
        oc_set_threads(0);
        free(x), free(w), free(w2), free(pre), free(sc), free(sh), free(y0), free(y1), free(res);
        oc_free(bp);
        oc_free(ws);
    }
}

/* The fused forward from Winograd-packed weights against the oracle (oc_conv2d_fwd_ref, then
 * the epilogue): partial tiles (odd output sizes), channel counts off the 16-lane vectors,
 * several images, several blocks of tiles, a residual; the same bits for 1 and 2 threads; and
 * the direct-layout packing still taken when Winograd is off. Tolerance as in
 * fused_matches_unfused, the transforms' extra roundings included. */
void oc_wino_set_block_bytes(size_t bytes);

static void winograd_matches_direct(void)
{
    static const struct {
        int N, H, W, C, K;
        size_t block; /* bytes of one block of tiles (0: the default) */
    } cs[] = {
        {1, 7, 9, 136, 140, 0},
        {2, 6, 5, 130, 129, 0},
        {3, 9, 8, 129, 144, 40 << 10},
        {1, 4, 3, 264, 70, 0},
    };
    oc_rng r;
    oc_rng_seed(&r, 501, 0);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        oc_conv_shape s = mk(cs[c].N, cs[c].H, cs[c].W, cs[c].C, cs[c].K, 3, 3, 1, 1, 1, 1, 1, 1, 1);
        T_CHECK(oc_conv_shape_init(&s) == 0, "shape %zu", c);
        oc_wino_set_block_bytes(cs[c].block);
        T_CHECK(oc_wino_shape(&s), "shape %zu: not a Winograd shape", c);
        const int64_t ny = y_numel(&s);
        float *x = randv(&r, x_numel(&s), 1.0f), *w = randv(&r, w_numel(&s), 0.1f);
        float *res = randv(&r, ny, 1.0f), *pre = randv(&r, s.K, 0.5f);
        float *sc = randv(&r, s.K, 1.0f), *sh = randv(&r, s.K, 0.5f);
        float *want = malloc((size_t)ny * sizeof(float)), *got[2];
        size_t bytes = oc_conv2d_fused_pack_bytes(&s);
        void *u = oc_alloc(bytes), *ws = oc_alloc(oc_conv2d_fwd_workspace(&s));
        oc_conv_epilogue e = {pre, sc, sh, res, OC_ACT_RELU, 0.0f, u};
        T_CHECK(bytes == oc_wino_pack_bytes(&s), "shape %zu: not packed for Winograd", c);
        oc_conv2d_fused_pack(&s, w, u);
        oc_conv2d_fwd_ref(&s, x, w, NULL, want);
        oc_conv_epilogue_ref(&e, ny / s.K, s.K, want);
        for (int nt = 1; nt <= 2; nt++) {
            got[nt - 1] = malloc((size_t)ny * sizeof(float));
            oc_set_threads(nt);
            oc_conv2d_fwd_fused(&s, x, w, &e, got[nt - 1], ws);
            T_CLOSE("winograd", got[nt - 1], want, ny, 1e-5 * (double)max_abs(want, ny) + 1e-6,
                    1e-5);
        }
        oc_set_threads(0);
        T_CHECK(!memcmp(got[0], got[1], (size_t)ny * sizeof(float)),
                "shape %zu: 1 and 2 threads differ", c);
        oc_conv2d_allow_winograd(0);
        T_CHECK(oc_conv2d_fused_pack_bytes(&s) != bytes,
                "shape %zu: Winograd off still packs for it", c);
        oc_conv2d_allow_winograd(1);
        oc_wino_set_block_bytes(0);
        free(x), free(w), free(res), free(pre), free(sc), free(sh), free(want);
        free(got[0]), free(got[1]);
        oc_free(u), oc_free(ws);
    }
}

/* oc_conv2d_bwd_data_set over a dx full of NaN gives the bits of oc_conv2d_bwd_data adding
 * into zeros, for every method: direct 3x3, 1x1 GEMM, im2col, depthwise (its register tiles,
 * border columns and portable loops: strides 1 and 2, 3x3 and 5x5, dilated, 1x1 stride 2, which
 * leaves rows and columns of dx that no tap reaches), grouped. */
static void bwd_data_set_is_bitwise(void)
{
    const oc_conv_shape shapes[] = {
        mk(2, 9, 10, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1),   /* direct 3x3 */
        mk(2, 7, 5, 33, 19, 1, 1, 1, 1, 0, 0, 1, 1, 1),    /* 1x1 */
        mk(2, 15, 13, 8, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1),   /* im2col */
        mk(2, 11, 9, 24, 24, 3, 3, 1, 1, 1, 1, 1, 1, 24),  /* depthwise */
        mk(2, 13, 19, 40, 40, 3, 3, 2, 2, 1, 1, 1, 1, 40), /* depthwise, stride 2 */
        mk(1, 9, 14, 20, 20, 5, 5, 1, 2, 2, 2, 1, 1, 20),  /* depthwise 5x5, column stride 2 */
        mk(2, 9, 9, 16, 16, 3, 3, 1, 1, 2, 2, 2, 2, 16),   /* depthwise, dilated */
        mk(2, 7, 7, 24, 24, 1, 1, 2, 2, 0, 0, 1, 1, 24),   /* depthwise 1x1, stride 2 */
        mk(2, 8, 9, 12, 20, 3, 3, 1, 1, 1, 1, 1, 1, 4),    /* grouped */
    };
    for (size_t i = 0; i < 2 * sizeof shapes / sizeof shapes[0]; i++) {
        const size_t c = i / 2;
        oc_conv2d_allow_simd((int)(i % 2));
        oc_conv_shape s = shapes[c];
        T_CHECK(oc_conv_shape_init(&s) == 0, "shape %zu", c);
        oc_rng r;
        oc_rng_seed(&r, 300 + c, 0);
        int64_t nx = x_numel(&s);
        float *dy = randv(&r, y_numel(&s), 1.0f), *w = randv(&r, w_numel(&s), 0.3f);
        float *want = calloc((size_t)nx, sizeof(float)), *got = malloc((size_t)nx * sizeof(float));
        void *ws = oc_alloc(oc_conv2d_bwd_data_workspace(&s) + 64);
        for (int64_t j = 0; j < nx; j++)
            got[j] = NAN;
        oc_conv2d_bwd_data(&s, dy, w, want, ws);
        oc_conv2d_bwd_data_set(&s, dy, w, got, ws);
        T_CHECK(!memcmp(got, want, (size_t)nx * sizeof(float)), "shape %zu (simd %zu): set differs",
                c, i % 2);
        free(dy), free(w), free(want), free(got);
        oc_free(ws);
    }
    oc_conv2d_allow_simd(1);
}

/* The bias gradient sums each channel over the rows in the same order in the AVX-512 column
 * sums as in the portable loop: the same bits, for channel counts with masked tails and more
 * than one 64-channel chunk; and it matches the reference. */
static void bias_grad_simd_is_bitwise(void)
{
    const int Ks[] = {3, 32, 70, 130};
    for (size_t i = 0; i < sizeof Ks / sizeof Ks[0]; i++) {
        oc_conv_shape s = mk(3, 11, 9, 4, Ks[i], 1, 1, 1, 1, 0, 0, 1, 1, 1);
        T_CHECK(oc_conv_shape_init(&s) == 0, "K %d", Ks[i]);
        oc_rng r;
        oc_rng_seed(&r, 700 + i, 0);
        float *x = randv(&r, x_numel(&s), 1.0f), *dy = randv(&r, y_numel(&s), 1.0f);
        float *db[2], *want = calloc((size_t)s.K, sizeof(float));
        float *dw = calloc((size_t)w_numel(&s), sizeof(float));
        for (int simd = 0; simd < 2; simd++) {
            oc_conv2d_allow_simd(simd);
            db[simd] = calloc((size_t)s.K, sizeof(float));
            bwd_weights(1, &s, x, dy, NULL, db[simd]);
        }
        oc_conv2d_allow_simd(1);
        T_CHECK(first_diff(db[0], db[1], s.K) < 0, "K %d: AVX-512 bias gradient differs", Ks[i]);
        oc_conv2d_bwd_weights_ref(&s, x, dy, dw, want);
        T_CLOSE("bias gradient", db[1], want, s.K, 1e-5, 1e-5);
        free(x), free(dy), free(db[0]), free(db[1]), free(want), free(dw);
    }
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"shape_init_computes_and_rejects", shape_init_computes_and_rejects},
        {"workspace_is_bounded_and_pure", workspace_is_bounded_and_pure},
        {"gradient_check", gradient_check},
        {"fast_matches_ref_fixed_shapes", fast_matches_ref_fixed_shapes},
        {"portable_kernels_match_ref", portable_kernels_match_ref},
        {"depthwise_avx512_matches_fma_order", depthwise_avx512_matches_fma_order},
        {"fast_matches_ref_chunked_batch", fast_matches_ref_chunked_batch},
        {"fast_matches_ref_random_shapes", fast_matches_ref_random_shapes},
        {"frozen_weight_gives_bias_only", frozen_weight_gives_bias_only},
        {"matches_pytorch", matches_pytorch},
        {"fused_matches_unfused", fused_matches_unfused},
        {"prepacked_weights_are_bitwise", prepacked_weights_are_bitwise},
        {"fused_packed_weights_are_bitwise", fused_packed_weights_are_bitwise},
        {"bwd_data_set_is_bitwise", bwd_data_set_is_bitwise},
        {"winograd_matches_direct", winograd_matches_direct},
        {"bias_grad_simd_is_bitwise", bias_grad_simd_is_bitwise},
        {"speed_note", speed_note},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
