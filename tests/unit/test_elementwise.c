/* Elementwise ops: central-difference gradients of dropout, add, concat and channel multiply
 * (x and s), PyTorch parity (tests/ref/gen_misc_ops.py), backward accumulation, NULL outputs
 * skipped, and the threaded kernels against plain loops on large inputs with 1 and 2 threads. */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *alloc_f(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

static float *rand_f(oc_rng *r, int64_t n)
{
    float *v = alloc_f(n);
    for (int64_t i = 0; i < n; i++)
        v[i] = oc_rng_normal(r);
    return v;
}

/* ---- gradient check: L = sum g * y, y = op(inputs); one input perturbed at a time ---- */

typedef void (*fwd_fn)(void *ctx, float *y);

/* Central differences of L over v[n] (an input of `fwd`), compared with ana[n] (the backward
 * output minus what it held before). Returns the worst relative error, the denominator floored
 * at 1e-2 of the largest numerical gradient. */
static double gradcheck(fwd_fn fwd, void *ctx, float *v, int64_t n, const float *g, int64_t ny,
                        const double *ana)
{
    const double h = 1e-2;
    float *y = alloc_f(ny);
    double *num = calloc((size_t)n, sizeof(double));
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        float keep = v[i];
        float hi = (float)((double)keep + h), lo = (float)((double)keep - h);
        double lp = 0, lm = 0;
        v[i] = hi;
        fwd(ctx, y);
        for (int64_t k = 0; k < ny; k++)
            lp += (double)g[k] * (double)y[k];
        v[i] = lo;
        fwd(ctx, y);
        for (int64_t k = 0; k < ny; k++)
            lm += (double)g[k] * (double)y[k];
        v[i] = keep;
        num[i] = (lp - lm) / ((double)hi - (double)lo);
        scale = fmax(scale, fabs(num[i]));
    }
    for (int64_t i = 0; i < n; i++) {
        double den = fmax(fmax(fabs(ana[i]), fabs(num[i])), 1e-2 * scale);
        double e = fabs(ana[i] - num[i]) / den;
        worst = isnan(e) ? (double)INFINITY : fmax(worst, e);
    }
    free(y);
    free(num);
    return worst;
}

/* backward output minus the value it was pre-filled with */
static double *minus_pre(const float *d, int64_t n, double pre)
{
    double *a = calloc((size_t)n, sizeof(double));
    for (int64_t i = 0; i < n; i++)
        a[i] = (double)d[i] - pre;
    return a;
}

static float *filled(int64_t n, float v)
{
    float *a = alloc_f(n);
    for (int64_t i = 0; i < n; i++)
        a[i] = v;
    return a;
}

#define N_ 2
#define HW_ (5 * 7)
#define PRE 0.25f

typedef struct {
    int64_t n;
    float *x, *mask, *a, *b;
} flat_ctx;

static void drop_fwd(void *c, float *y)
{
    flat_ctx *f = c;
    oc_dropout_fwd(f->n, f->x, f->mask, y);
}

static void add_fwd(void *c, float *y)
{
    flat_ctx *f = c;
    oc_add_fwd(f->n, f->a, f->b, y);
}

static void dropout_add_gradcheck(void)
{
    const int64_t n = (int64_t)N_ * HW_ * 3;
    oc_rng r;
    flat_ctx f;
    float *g, *dx = filled(n, PRE), *da = filled(n, PRE), *db = filled(n, PRE);
    double *ana, e;

    oc_rng_seed(&r, 1, 0);
    f.n = n;
    f.x = rand_f(&r, n);
    f.a = rand_f(&r, n);
    f.b = rand_f(&r, n);
    g = rand_f(&r, n);
    f.mask = alloc_f(n);
    for (int64_t i = 0; i < n; i++)
        f.mask[i] = oc_rng_uniform(&r) < 0.3f ? 0.0f : 1.0f / 0.7f;

    oc_dropout_bwd(n, f.mask, g, dx);
    ana = minus_pre(dx, n, PRE);
    e = gradcheck(drop_fwd, &f, f.x, n, g, n, ana);
    free(ana);
    oc_test_note("dropout dx worst relative error %.2e", e);
    T_CHECK(e < 1e-2, "dropout dx relative error %.3g", e);

    /* add's backward is accumulate into each input */
    oc_accumulate(n, g, da);
    oc_accumulate(n, g, db);
    ana = minus_pre(da, n, PRE);
    e = gradcheck(add_fwd, &f, f.a, n, g, n, ana);
    free(ana);
    ana = minus_pre(db, n, PRE);
    e = fmax(e, gradcheck(add_fwd, &f, f.b, n, g, n, ana));
    free(ana);
    oc_test_note("add (accumulate) da, db worst relative error %.2e", e);
    T_CHECK(e < 1e-2, "add relative error %.3g", e);

    free(f.x), free(f.a), free(f.b), free(f.mask), free(g), free(dx), free(da), free(db);
}

typedef struct {
    int64_t M;
    int n_in;
    const int *C;
    const float *const *x;
} cat_ctx;

static void cat_fwd(void *c, float *y)
{
    cat_ctx *f = c;
    oc_concat_fwd(f->M, f->n_in, f->C, f->x, y);
}

static void concat_gradcheck(void)
{
    const int64_t M = (int64_t)N_ * HW_;
    const int C[3] = {3, 1, 5};
    const int Ct = 9;
    oc_rng r;
    float *x[3], *dx[3], *g;
    cat_ctx f = {M, 3, C, (const float *const *)x};
    double worst = 0;

    oc_rng_seed(&r, 2, 0);
    for (int k = 0; k < 3; k++) {
        x[k] = rand_f(&r, M * C[k]);
        dx[k] = filled(M * C[k], PRE);
    }
    g = rand_f(&r, M * Ct);
    oc_concat_bwd(M, 3, C, g, dx);
    for (int k = 0; k < 3; k++) {
        double *ana = minus_pre(dx[k], M * C[k], PRE);
        worst = fmax(worst, gradcheck(cat_fwd, &f, x[k], M * C[k], g, M * Ct, ana));
        free(ana);
    }
    oc_test_note("concat dx0..2 worst relative error %.2e", worst);
    T_CHECK(worst < 1e-2, "concat relative error %.3g", worst);
    for (int k = 0; k < 3; k++)
        free(x[k]), free(dx[k]);
    free(g);
}

typedef struct {
    int N, HW, C;
    float *x, *s;
} cm_ctx;

static void cm_fwd(void *c, float *y)
{
    cm_ctx *f = c;
    oc_channel_mul_fwd(f->N, f->HW, f->C, f->x, f->s, y);
}

static void channel_mul_gradcheck(void)
{
    const int C = 3;
    const int64_t n = (int64_t)N_ * HW_ * C;
    oc_rng r;
    cm_ctx f = {N_, HW_, C, NULL, NULL};
    float *g, *dx = filled(n, PRE), *ds = filled(N_ * C, PRE);
    double *ana, ex, es;

    oc_rng_seed(&r, 3, 0);
    f.x = rand_f(&r, n);
    f.s = rand_f(&r, N_ * C);
    g = rand_f(&r, n);
    oc_channel_mul_bwd(N_, HW_, C, f.x, f.s, g, dx, ds);
    ana = minus_pre(dx, n, PRE);
    ex = gradcheck(cm_fwd, &f, f.x, n, g, n, ana);
    free(ana);
    ana = minus_pre(ds, N_ * C, PRE);
    es = gradcheck(cm_fwd, &f, f.s, N_ * C, g, n, ana);
    free(ana);
    oc_test_note("channel_mul worst relative error: dx %.2e, ds %.2e", ex, es);
    T_CHECK(ex < 1e-2, "channel_mul dx relative error %.3g", ex);
    T_CHECK(es < 1e-2, "channel_mul ds relative error %.3g", es);
    free(f.x), free(f.s), free(g), free(dx), free(ds);
}

/* ---- PyTorch parity ---- */

static void elementwise_matches_torch(void)
{
    oc_fixture *f = oc_fixture_load("elementwise");
    oc_fixture_array *a;
    if (!f)
        return;

    a = oc_fixture_get(f, "drop_x");
    if (a) {
        int64_t n = a->numel;
        float *y = alloc_f(n), *dx = alloc_f(n);
        oc_dropout_fwd(n, a->data, oc_fixture_f32(f, "drop_mask"), y);
        oc_dropout_bwd(n, oc_fixture_f32(f, "drop_mask"), oc_fixture_f32(f, "drop_g"), dx);
        T_CLOSE("dropout y", y, oc_fixture_f32(f, "drop_y"), n, 1e-4, 1e-4);
        T_CLOSE("dropout dx", dx, oc_fixture_f32(f, "drop_dx"), n, 1e-4, 1e-4);
        free(y), free(dx);
    }

    a = oc_fixture_get(f, "add_a");
    if (a) {
        float *y = alloc_f(a->numel);
        oc_add_fwd(a->numel, a->data, oc_fixture_f32(f, "add_b"), y);
        T_CLOSE("add y", y, oc_fixture_f32(f, "add_y"), a->numel, 1e-4, 1e-4);
        free(y);
    }

    a = oc_fixture_get(f, "cat_shape");
    if (a) {
        const int32_t *sh = a->data;
        int64_t M = sh[0];
        int C[3] = {sh[1], sh[2], sh[3]};
        const float *x[3];
        float *dx[3], *y = alloc_f(M * (C[0] + C[1] + C[2]));
        char key[32];
        for (int k = 0; k < 3; k++) {
            snprintf(key, sizeof key, "cat_x%d", k);
            x[k] = oc_fixture_f32(f, key);
            dx[k] = alloc_f(M * C[k]);
        }
        oc_concat_fwd(M, 3, C, x, y);
        oc_concat_bwd(M, 3, C, oc_fixture_f32(f, "cat_g"), dx);
        T_CLOSE("concat y", y, oc_fixture_f32(f, "cat_y"), M * (C[0] + C[1] + C[2]), 1e-4, 1e-4);
        for (int k = 0; k < 3; k++) {
            snprintf(key, sizeof key, "cat_dx%d", k);
            T_CLOSE(key, dx[k], oc_fixture_f32(f, key), M * C[k], 1e-4, 1e-4);
            free(dx[k]);
        }
        free(y);
    }

    a = oc_fixture_get(f, "cm_shape");
    if (a) {
        const int32_t *sh = a->data;
        int N = sh[0], HW = sh[1], C = sh[2];
        int64_t n = (int64_t)N * HW * C;
        float *y = alloc_f(n), *dx = alloc_f(n), *ds = alloc_f((int64_t)N * C);
        const float *x = oc_fixture_f32(f, "cm_x"), *s = oc_fixture_f32(f, "cm_s");
        oc_channel_mul_fwd(N, HW, C, x, s, y);
        oc_channel_mul_bwd(N, HW, C, x, s, oc_fixture_f32(f, "cm_g"), dx, ds);
        T_CLOSE("channel_mul y", y, oc_fixture_f32(f, "cm_y"), n, 1e-4, 1e-4);
        T_CLOSE("channel_mul dx", dx, oc_fixture_f32(f, "cm_dx"), n, 1e-4, 1e-4);
        T_CLOSE("channel_mul ds", ds, oc_fixture_f32(f, "cm_ds"), (int64_t)N * C, 1e-4, 1e-4);
        free(y), free(dx), free(ds);
    }
    oc_fixture_free(f);
}

/* ---- large inputs, 1 and 2 threads, against plain loops ---- */

static void large_matches_plain_loops(void)
{
    const int N = 16, HW = 32 * 32, C = 35;
    const int64_t n = (int64_t)N * HW * C;
    const int Cs[2] = {13, 22};
    oc_rng r;
    float *x = NULL, *s = NULL, *g = NULL, *y = alloc_f(n), *dx = alloc_f(n), *ds = alloc_f(N * C);
    float *y1 = alloc_f(n), *dx1 = alloc_f(n), *ds1 = alloc_f(N * C);
    float *dparts[2] = {NULL, alloc_f((int64_t)N * HW * Cs[1])};
    double worst_ds = 0;
    int ok_y = 1, ok_dx = 1, ok_cat = 1;

    oc_rng_seed(&r, 4, 0);
    x = rand_f(&r, n);
    s = rand_f(&r, N * C);
    g = rand_f(&r, n);
    for (int threads = 1; threads <= 2; threads++) {
        oc_set_threads(threads);
        memset(dx, 0, (size_t)n * sizeof(float));
        memset(ds, 0, (size_t)N * C * sizeof(float));
        oc_channel_mul_fwd(N, HW, C, x, s, y);
        oc_channel_mul_bwd(N, HW, C, x, s, g, dx, ds);
        for (int b = 0; b < N; b++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int p = 0; p < HW; p++) {
                    int64_t i = ((int64_t)b * HW + p) * C + c;
                    ok_y &= y[i] == x[i] * s[b * C + c];
                    ok_dx &= dx[i] == g[i] * s[b * C + c];
                    acc += (double)g[i] * (double)x[i];
                }
                worst_ds = fmax(worst_ds, fabs((double)ds[b * C + c] - acc) / (1 + fabs(acc)));
            }
        if (threads == 1) {
            memcpy(y1, y, (size_t)n * sizeof(float));
            memcpy(dx1, dx, (size_t)n * sizeof(float));
            memcpy(ds1, ds, (size_t)N * C * sizeof(float));
        } else {
            T_CHECK(memcmp(y, y1, (size_t)n * sizeof(float)) == 0 &&
                        memcmp(dx, dx1, (size_t)n * sizeof(float)) == 0 &&
                        memcmp(ds, ds1, (size_t)N * C * sizeof(float)) == 0,
                    "channel_mul: 1 and 2 threads differ");
        }
        /* concat of [M][13] and [M][22] and back, the first gradient not wanted (NULL) */
        {
            const int64_t M = (int64_t)N * HW;
            const float *in[2] = {x, x + M * Cs[0]};
            memset(dparts[1], 0, (size_t)M * Cs[1] * sizeof(float));
            oc_concat_fwd(M, 2, Cs, in, y);
            oc_concat_bwd(M, 2, Cs, g, dparts);
            for (int64_t m = 0; m < M; m++) {
                for (int c = 0; c < Cs[0]; c++)
                    ok_cat &= y[m * C + c] == in[0][m * Cs[0] + c];
                for (int c = 0; c < Cs[1]; c++) {
                    ok_cat &= y[m * C + Cs[0] + c] == in[1][m * Cs[1] + c];
                    ok_cat &= dparts[1][m * Cs[1] + c] == g[m * C + Cs[0] + c];
                }
            }
        }
    }
    oc_set_threads(0);
    oc_test_note("channel_mul ds max rel err vs double sums %.2e", worst_ds);
    T_CHECK(ok_y, "channel_mul forward differs from x * s");
    T_CHECK(ok_dx, "channel_mul dx differs from dy * s");
    T_CHECK(worst_ds < 1e-5, "channel_mul ds error %.3g", worst_ds);
    T_CHECK(ok_cat, "concat / split differ from copies");
    free(x), free(s), free(g), free(y), free(dx), free(ds), free(y1), free(dx1), free(ds1);
    free(dparts[1]);
}

/* The option-A shortcut against plain loops over y's and dx's indices, stride 2 on even and
 * odd sizes (an odd H keeps its last row) and stride 1, one padded side empty (lo = 0 when
 * Co - C = 1), with 1 and 2 threads: the forward exactly; backward added onto a random dx
 * exactly dx + dy at sampled pixels and dx elsewhere; set (dx full of NaN) the bits of adding
 * onto zeros, -0 gradients included. */
static void shortcut_pad_matches_plain_loops(void)
{
    static const struct { int N, H, W, C, s, Co; } cases[] = {
        {64, 32, 32, 16, 2, 32}, {3, 7, 5, 6, 2, 12}, {2, 5, 6, 5, 1, 6}, {4, 9, 9, 3, 3, 8}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int threads = 1; threads <= 2; threads++) {
            const int N = cases[ci].N, H = cases[ci].H, W = cases[ci].W, C = cases[ci].C;
            const int st = cases[ci].s, Co = cases[ci].Co, lo = (Co - C) / 2;
            const int Ho = (H + st - 1) / st, Wo = (W + st - 1) / st;
            const int64_t nx = (int64_t)N * H * W * C, ny = (int64_t)N * Ho * Wo * Co;
            oc_rng r;
            int ok_y = 1, ok_add = 1, ok_set = 1;
            oc_rng_seed(&r, 12, ci);
            float *x = rand_f(&r, nx), *g = rand_f(&r, ny), *dx = rand_f(&r, nx);
            float *dx0 = alloc_f(nx), *y = alloc_f(ny), *ds = alloc_f(nx), *dz = alloc_f(nx);
            for (int64_t i = 0; i < ny; i += 5)
                g[i] = -0.0f;
            memcpy(dx0, dx, (size_t)nx * sizeof(float));
            oc_set_threads(threads);
            oc_shortcut_pad_fwd(N, H, W, C, st, Co, x, y);
            oc_shortcut_pad_bwd(N, H, W, C, st, Co, g, dx, 0);
            for (int64_t i = 0; i < nx; i++) {
                ds[i] = NAN;
                dz[i] = 0.0f;
            }
            oc_shortcut_pad_bwd(N, H, W, C, st, Co, g, ds, 1);
            oc_shortcut_pad_bwd(N, H, W, C, st, Co, g, dz, 0);
            for (int n = 0; n < N; n++)
                for (int p = 0; p < Ho; p++)
                    for (int q = 0; q < Wo; q++)
                        for (int c = 0; c < Co; c++) {
                            int64_t yi = (((int64_t)n * Ho + p) * Wo + q) * Co + c;
                            int64_t xi = (((int64_t)n * H + p * st) * W + q * st) * C + c - lo;
                            int in = c >= lo && c < lo + C;
                            ok_y &= in ? y[yi] == x[xi] : y[yi] == 0.0f && !signbit(y[yi]);
                        }
            for (int n = 0; n < N; n++)
                for (int h = 0; h < H; h++)
                    for (int w = 0; w < W; w++)
                        for (int c = 0; c < C; c++) {
                            int64_t xi = (((int64_t)n * H + h) * W + w) * C + c;
                            int sampled = h % st == 0 && w % st == 0;
                            float gv = sampled ? g[(((int64_t)n * Ho + h / st) * Wo + w / st) * Co +
                                                   lo + c]
                                               : 0.0f;
                            ok_add &= dx[xi] == (sampled ? dx0[xi] + gv : dx0[xi]);
                        }
            ok_set = memcmp(ds, dz, (size_t)nx * sizeof(float)) == 0;
            T_CHECK(ok_y, "case %zu threads %d: forward differs", ci, threads);
            T_CHECK(ok_add, "case %zu threads %d: backward added differs", ci, threads);
            T_CHECK(ok_set, "case %zu threads %d: backward set differs from added onto zeros",
                    ci, threads);
            free(x), free(g), free(dx), free(dx0), free(y), free(ds), free(dz);
        }
    oc_set_threads(0);
}

/* A NULL gradient output means "not wanted": skipped, and the other outputs unchanged. */
static void null_gradients_are_skipped(void)
{
    const int N = 2, HW = 35, C = 5;
    const int64_t n = (int64_t)N * HW * C;
    oc_rng r;
    float *x, *s, *g, *dx = alloc_f(n), *ds1 = alloc_f(N * C), *ds2 = alloc_f(N * C);
    oc_rng_seed(&r, 6, 0);
    x = rand_f(&r, n);
    s = rand_f(&r, N * C);
    g = rand_f(&r, n);
    oc_act_bwd(OC_ACT_GELU, 0.0f, n, x, g, NULL);
    oc_accumulate(n, g, NULL);
    oc_dropout_bwd(n, s, g, NULL);
    oc_channel_mul_bwd(N, HW, C, x, s, g, dx, ds1);
    oc_channel_mul_bwd(N, HW, C, x, s, g, NULL, ds2);
    T_CHECK(memcmp(ds1, ds2, (size_t)N * C * sizeof(float)) == 0, "ds changed without dx");
    memset(dx, 0, (size_t)n * sizeof(float));
    oc_channel_mul_bwd(N, HW, C, x, s, g, dx, NULL);
    for (int64_t i = 0; i < n; i++)
        T_CHECK(dx[i] == g[i] * s[(i / (HW * C)) * C + i % C], "dx wrong without ds at %lld",
                (long long)i);
    free(x), free(s), free(g), free(dx), free(ds1), free(ds2);
}

/* The fused add + ReLU / ReLU6 against oc_add_fwd then oc_act_fwd, and its backward against
 * oc_act_bwd into a zeroed buffer then oc_accumulate into each input: the same bits, with 1 and
 * 2 threads, on a large input (threaded) and a small odd one; da == db (x + x) gets both
 * contributions; a NULL gradient is skipped. Sums cross 0 and 6. */
static void add_act_fused_matches_separate(void)
{
    static const int64_t sizes[] = {200003, 37};
    static const oc_act acts[] = {OC_ACT_RELU, OC_ACT_RELU6};
    for (int si = 0; si < 2; si++)
        for (int ai = 0; ai < 2; ai++)
            for (int threads = 1; threads <= 2; threads++) {
                const int64_t n = sizes[si];
                const oc_act act = acts[ai];
                oc_rng r;
                float *a, *b, *g, *da1, *db1, *da2, *db2;
                float *y1 = alloc_f(n), *y2 = alloc_f(n), *t = alloc_f(n);
                oc_rng_seed(&r, 91 + (uint64_t)si, (uint64_t)ai);
                a = rand_f(&r, n), b = rand_f(&r, n), g = rand_f(&r, n);
                da1 = rand_f(&r, n), db1 = rand_f(&r, n);
                da2 = alloc_f(n), db2 = alloc_f(n);
                for (int64_t i = 0; i < n; i++) {
                    a[i] *= 5.0f;
                    b[i] *= 4.0f;
                }
                memcpy(da2, da1, (size_t)n * sizeof(float));
                memcpy(db2, db1, (size_t)n * sizeof(float));
                oc_set_threads(threads);
                oc_add_fwd(n, a, b, t);
                oc_act_fwd(act, 0.0f, n, t, y1);
                oc_add_act_fwd(n, a, b, act, y2);
                T_CHECK(!memcmp(y1, y2, (size_t)n * sizeof(float)),
                        "n=%lld act %d threads %d: fused forward differs", (long long)n,
                        (int)act, threads);
                memset(t, 0, (size_t)n * sizeof(float));
                oc_act_bwd(act, 0.0f, n, y1, g, t); /* y > 0 iff a + b > 0 (and < 6) */
                oc_accumulate(n, t, da1);
                oc_accumulate(n, t, db1);
                oc_add_act_bwd(n, act, y2, g, da2, db2);
                T_CHECK(!memcmp(da1, da2, (size_t)n * sizeof(float)) &&
                            !memcmp(db1, db2, (size_t)n * sizeof(float)),
                        "n=%lld act %d threads %d: fused backward differs", (long long)n,
                        (int)act, threads);
                /* x + x: both contributions land in the one buffer; NULL skipped */
                oc_accumulate(n, t, da1);
                oc_add_act_bwd(n, act, y2, g, da2, NULL);
                oc_add_act_bwd(n, act, y2, g, NULL, NULL);
                oc_accumulate(n, t, da1);
                oc_add_act_bwd(n, act, y2, g, da2, da2);
                oc_accumulate(n, t, da1);
                T_CHECK(!memcmp(da1, da2, (size_t)n * sizeof(float)),
                        "n=%lld act %d: aliased / NULL gradients differ", (long long)n,
                        (int)act);
                /* setting (the add writes the gradients first) gives the bits of adding to
                 * zeros without reading them (NaN there), -0 gradients included; each input on
                 * its own, for these acts and identity */
                for (int64_t i = 0; i < n; i += 7)
                    g[i] = -0.0f;
                for (int id = 0; id < 2; id++)
                    for (int which = 1; which <= 3; which++) {
                        const oc_act ba = id ? OC_ACT_IDENTITY : act;
                        for (int64_t i = 0; i < n; i++) {
                            da1[i] = db1[i] = 0.0f;
                            da2[i] = which & 1 ? NAN : 0.0f;
                            db2[i] = which & 2 ? NAN : 0.0f;
                        }
                        oc_add_act_bwd(n, ba, y2, g, da1, db1);
                        oc_add_act_bwd_set(n, ba, y2, g, da2, db2, which & 1, which >> 1);
                        T_CHECK(!memcmp(da1, da2, (size_t)n * sizeof(float)) &&
                                    !memcmp(db1, db2, (size_t)n * sizeof(float)),
                                "n=%lld act %d set %d: set gradients differ", (long long)n,
                                (int)ba, which);
                    }
                /* the copy (flatten, identity) and dropout backward, set the same way */
                for (int64_t i = 0; i < n; i++) {
                    da1[i] = db1[i] = 0.0f;
                    da2[i] = db2[i] = NAN;
                    t[i] = i % 3 ? 2.0f : 0.0f; /* a dropout mask */
                }
                oc_accumulate(n, g, da1);
                oc_accumulate_set(n, g, da2);
                oc_dropout_bwd(n, t, g, db1);
                oc_dropout_bwd_set(n, t, g, db2);
                T_CHECK(!memcmp(da1, da2, (size_t)n * sizeof(float)) &&
                            !memcmp(db1, db2, (size_t)n * sizeof(float)),
                        "n=%lld: set copy / dropout gradients differ", (long long)n);
                free(a), free(b), free(g), free(da1), free(db1), free(da2), free(db2);
                free(y1), free(y2), free(t);
            }
    oc_set_threads(0);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"dropout_add_gradcheck", dropout_add_gradcheck},
        {"concat_gradcheck", concat_gradcheck},
        {"channel_mul_gradcheck", channel_mul_gradcheck},
        {"elementwise_matches_torch", elementwise_matches_torch},
        {"large_matches_plain_loops", large_matches_plain_loops},
        {"null_gradients_are_skipped", null_gradients_are_skipped},
        {"add_act_fused_matches_separate", add_act_fused_matches_separate},
        {"shortcut_pad_matches_plain_loops", shortcut_pad_matches_plain_loops},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
