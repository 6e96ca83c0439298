/* Pooling: shape validation, tie and padding rules, central-difference gradients, the kernels
 * against direct definitions with 1 and 2 threads, and parity with PyTorch fixtures
 * (tests/ref/gen_pool.py). */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void oc_pool_allow_simd(int allow); /* src/ops/pool.c test hook */

static oc_pool_shape mk(int N, int H, int W, int C, int R, int S, int sh, int sw, int ph, int pw,
                        int cip)
{
    oc_pool_shape s = {N, H, W, C, R, S, 0, 0, sh, sw, ph, pw, cip};
    return s;
}

static int64_t x_numel(const oc_pool_shape *s) { return (int64_t)s->N * s->H * s->W * s->C; }
static int64_t y_numel(const oc_pool_shape *s) { return (int64_t)s->N * s->P * s->Q * s->C; }

static float *randv(oc_rng *r, int64_t n)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = oc_rng_normal(r);
    return v;
}

static float *copyv(const float *a, int64_t n)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(v, a, (size_t)n * sizeof(float));
    return v;
}

/* Distinct values spaced 0.05 apart (well over 2h = 0.02), shuffled, shifted to be all
 * negative when `negative`: no ties, and a finite difference never changes the argmax. */
static float *distinct(oc_rng *r, int64_t n, int negative)
{
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = 0.05f * (float)i - (negative ? 0.05f * (float)n + 1.0f : 0.025f * (float)n);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)oc_rng_below(r, (uint64_t)i + 1);
        float t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    return v;
}

/* ---------------------------------------------------------------- direct definitions */

static void max_def(const oc_pool_shape *s, const float *x, float *y, int32_t *am)
{
    for (int n = 0; n < s->N; n++)
        for (int p = 0; p < s->P; p++)
            for (int q = 0; q < s->Q; q++)
                for (int c = 0; c < s->C; c++) {
                    float best = 0.0f;
                    int32_t idx = -1;
                    for (int r = 0; r < s->R; r++)
                        for (int t = 0; t < s->S; t++) {
                            int h = p * s->stride_h - s->pad_h + r;
                            int w = q * s->stride_w - s->pad_w + t;
                            if (h < 0 || h >= s->H || w < 0 || w >= s->W)
                                continue;
                            float v = x[(((int64_t)n * s->H + h) * s->W + w) * s->C + c];
                            if (idx < 0 || v > best) {
                                best = v;
                                idx = h * s->W + w;
                            }
                        }
                    int64_t o = (((int64_t)n * s->P + p) * s->Q + q) * s->C + c;
                    y[o] = best;
                    am[o] = idx;
                }
}

/* Average as torch.nn.functional.avg_pool2d documents it (floor mode). */
static void avg_def(const oc_pool_shape *s, const float *x, float *y)
{
    for (int n = 0; n < s->N; n++)
        for (int p = 0; p < s->P; p++)
            for (int q = 0; q < s->Q; q++)
                for (int c = 0; c < s->C; c++) {
                    double sum = 0;
                    int real = 0, padded = 0;
                    for (int r = 0; r < s->R; r++)
                        for (int t = 0; t < s->S; t++) {
                            int h = p * s->stride_h - s->pad_h + r;
                            int w = q * s->stride_w - s->pad_w + t;
                            if (h < s->H + s->pad_h && w < s->W + s->pad_w)
                                padded++;
                            if (h < 0 || h >= s->H || w < 0 || w >= s->W)
                                continue;
                            real++;
                            sum += (double)x[(((int64_t)n * s->H + h) * s->W + w) * s->C + c];
                        }
                    y[(((int64_t)n * s->P + p) * s->Q + q) * s->C + c] =
                        (float)(sum / (s->count_include_pad ? padded : real));
                }
}

/* Its adjoint: each output's gradient divided by the same count, added to the real inputs. */
static void avg_bwd_def(const oc_pool_shape *s, const float *dy, float *dx)
{
    for (int n = 0; n < s->N; n++)
        for (int p = 0; p < s->P; p++)
            for (int q = 0; q < s->Q; q++)
                for (int c = 0; c < s->C; c++) {
                    int real = 0, padded = 0;
                    for (int r = 0; r < s->R; r++)
                        for (int t = 0; t < s->S; t++) {
                            int h = p * s->stride_h - s->pad_h + r;
                            int w = q * s->stride_w - s->pad_w + t;
                            padded += h < s->H + s->pad_h && w < s->W + s->pad_w;
                            real += h >= 0 && h < s->H && w >= 0 && w < s->W;
                        }
                    double d = (double)dy[(((int64_t)n * s->P + p) * s->Q + q) * s->C + c] /
                               (s->count_include_pad ? padded : real);
                    for (int r = 0; r < s->R; r++)
                        for (int t = 0; t < s->S; t++) {
                            int h = p * s->stride_h - s->pad_h + r;
                            int w = q * s->stride_w - s->pad_w + t;
                            if (h >= 0 && h < s->H && w >= 0 && w < s->W)
                                dx[(((int64_t)n * s->H + h) * s->W + w) * s->C + c] += (float)d;
                        }
                }
}

/* ---------------------------------------------------------------- shapes and rules */

static void shape_init_computes_and_rejects(void)
{
    oc_pool_shape s = mk(2, 9, 11, 3, 3, 3, 2, 2, 1, 1, 1);
    T_CHECK(oc_pool_shape_init(&s) == 0 && s.P == 5 && s.Q == 6, "P=%d Q=%d", s.P, s.Q);
    s = mk(1, 7, 8, 3, 2, 2, 2, 2, 0, 0, 1); /* floor mode drops the last odd row */
    T_CHECK(oc_pool_shape_init(&s) == 0 && s.P == 3 && s.Q == 4, "P=%d Q=%d", s.P, s.Q);
    const oc_pool_shape bad[] = {
        mk(0, 5, 5, 3, 2, 2, 2, 2, 0, 0, 1), /* N = 0 */
        mk(1, 5, 5, 3, 2, 2, 0, 2, 0, 0, 1), /* stride 0 */
        mk(1, 5, 5, 3, 3, 3, 1, 1, 2, 1, 1), /* pad over half the window */
        mk(1, 5, 5, 3, 3, 3, 1, 1, 1, -1, 1), /* negative pad */
        mk(1, 2, 5, 3, 3, 3, 1, 1, 0, 0, 1), /* window taller than the input */
        mk(1, 5, 5, 0, 2, 2, 1, 1, 0, 0, 1), /* C = 0 */
        mk(1, 5, 5, 3, 0, 2, 1, 1, 0, 0, 1), /* R = 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        oc_pool_shape b = bad[i];
        T_CHECK(oc_pool_shape_init(&b) == -1, "invalid shape %zu accepted", i);
    }
    T_CHECK(oc_pool_shape_init(NULL) == -1, "NULL accepted");
}

static void maxpool_first_max_and_padding_never_wins(void)
{
    /* one channel, 4x4, 3x3 window, stride 1, pad 1: ties everywhere, all values negative */
    oc_pool_shape s = mk(1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1);
    float x[16], y[16], dx[16] = {0}, dy[16];
    int32_t am[16];
    T_CHECK(oc_pool_shape_init(&s) == 0 && s.P == 4 && s.Q == 4, "shape");
    for (int i = 0; i < 16; i++) {
        x[i] = -1.0f;
        dy[i] = 1.0f;
    }
    oc_maxpool_fwd(&s, x, y, am);
    for (int p = 0; p < 4; p++)
        for (int q = 0; q < 4; q++) {
            int first = (p > 0 ? p - 1 : 0) * 4 + (q > 0 ? q - 1 : 0); /* top-left real input */
            T_CHECK(y[p * 4 + q] == -1.0f, "y[%d][%d] = %g: padding won", p, q,
                    (double)y[p * 4 + q]);
            T_CHECK(am[p * 4 + q] == first, "argmax[%d][%d] = %d, want first max %d", p, q,
                    am[p * 4 + q], first);
        }
    oc_maxpool_bwd(&s, am, dy, dx);
    T_CHECK(dx[0] == 4.0f && dx[1] == 2.0f && dx[5] == 1.0f && dx[15] == 0.0f,
            "tie gradients routed to the wrong inputs: %g %g %g %g", (double)dx[0], (double)dx[1],
            (double)dx[5], (double)dx[15]);
}

/* oc_maxpool_bwd_set writes the bits oc_maxpool_bwd adds onto a zeroed dx, whatever dx held,
 * for overlapping (3x3 stride 2, padded) and tiling (2x2) windows, several images. */
static void maxpool_bwd_set_is_zeroed_accumulate(void)
{
    const oc_pool_shape shapes[2] = {mk(3, 9, 7, 19, 3, 3, 2, 2, 1, 1, 0),
                                     mk(2, 31, 31, 5, 2, 2, 2, 2, 0, 0, 0)};
    for (int k = 0; k < 2; k++) {
        oc_pool_shape s = shapes[k];
        T_CHECK(oc_pool_shape_init(&s) == 0, "shape");
        int64_t nx = (int64_t)s.N * s.H * s.W * s.C, ny = (int64_t)s.N * s.P * s.Q * s.C;
        float *x = malloc((size_t)nx * sizeof *x), *y = malloc((size_t)ny * sizeof *y);
        float *dy = malloc((size_t)ny * sizeof *dy), *d0 = calloc((size_t)nx, sizeof *d0);
        float *d1 = malloc((size_t)nx * sizeof *d1);
        int32_t *am = malloc((size_t)ny * sizeof *am);
        for (int64_t i = 0; i < nx; i++) {
            x[i] = sinf((float)i * 1.3f);
            d1[i] = 7.0f; /* stale values the set variant must overwrite */
        }
        for (int64_t i = 0; i < ny; i++)
            dy[i] = cosf((float)i * 0.7f);
        oc_maxpool_fwd(&s, x, y, am);
        oc_maxpool_bwd(&s, am, dy, d0);
        oc_maxpool_bwd_set(&s, am, dy, d1);
        T_CHECK(!memcmp(d0, d1, (size_t)nx * sizeof *d0), "shape %d: set differs", k);
        free(x), free(y), free(dy), free(d0), free(d1), free(am);
    }
}

/* The AVX-512 window must keep the portable loop's answer bit for bit where it is delicate:
 * ties (first maximum wins), NaN (takes over, the last NaN's index), channel tails. */
static void maxpool_simd_nan_and_ties_match_portable(void)
{
    static const float vals[4] = {-1.0f, 0.0f, 1.0f, NAN};
    oc_pool_shape s = mk(2, 9, 10, 37, 3, 3, 2, 2, 1, 1, 1);
    oc_rng r;
    T_CHECK(oc_pool_shape_init(&s) == 0, "shape");
    int64_t nx = x_numel(&s), ny = y_numel(&s);
    float *x = malloc((size_t)nx * 4), *y[2] = {malloc((size_t)ny * 4), malloc((size_t)ny * 4)};
    int32_t *am[2] = {malloc((size_t)ny * 4), malloc((size_t)ny * 4)};
    int64_t nans = 0;
    oc_rng_seed(&r, 42, 1);
    for (int64_t i = 0; i < nx; i++)
        x[i] = vals[oc_rng_below(&r, 4)];
    for (int simd = 0; simd < 2; simd++) {
        oc_pool_allow_simd(simd);
        oc_maxpool_fwd(&s, x, y[simd], am[simd]);
    }
    oc_pool_allow_simd(1);
    for (int64_t i = 0; i < ny; i++)
        nans += isnan(y[0][i]);
    T_CHECK(nans > 0 && nans < ny, "the data must give NaN and non-NaN maxima (%lld of %lld)",
            (long long)nans, (long long)ny);
    T_CHECK(!memcmp(y[0], y[1], (size_t)ny * 4), "maxima differ between SIMD and portable");
    T_CHECK(!memcmp(am[0], am[1], (size_t)ny * 4), "argmax differs between SIMD and portable");
    free(x);
    for (int i = 0; i < 2; i++) {
        free(y[i]);
        free(am[i]);
    }
}

/* ---------------------------------------------------------------- gradient check */

enum { OP_MAX, OP_AVG, OP_GAP };

static double loss(int op, const oc_pool_shape *s, const float *x, const float *g, float *y,
                   int32_t *am)
{
    int64_t ny = op == OP_GAP ? (int64_t)s->N * s->C : y_numel(s);
    double L = 0;
    if (op == OP_MAX)
        oc_maxpool_fwd(s, x, y, am);
    else if (op == OP_AVG)
        oc_avgpool_fwd(s, x, y);
    else
        oc_global_avgpool_fwd(s->N, s->H * s->W, s->C, x, y);
    for (int64_t i = 0; i < ny; i++)
        L += (double)g[i] * (double)y[i];
    return L;
}

static void grad_case(const char *name, int op, oc_pool_shape s, int negative)
{
    oc_rng r;
    T_CHECK(op == OP_GAP || oc_pool_shape_init(&s) == 0, "%s: shape", name);
    if (op == OP_GAP)
        s.P = s.Q = 1;
    oc_rng_seed(&r, 11, 0);
    int64_t nx = x_numel(&s), ny = y_numel(&s);
    float *x = distinct(&r, nx, negative), *g = randv(&r, ny), *y = randv(&r, ny);
    float *base = randv(&r, nx), *dx = copyv(base, nx);
    int32_t *am = malloc((size_t)ny * sizeof(int32_t));
    const float h = 1e-2f;
    double worst = 0;

    loss(op, &s, x, g, y, am);
    if (op == OP_MAX)
        oc_maxpool_bwd(&s, am, g, dx);
    else if (op == OP_AVG)
        oc_avgpool_bwd(&s, g, dx);
    else
        oc_global_avgpool_bwd(s.N, s.H * s.W, s.C, g, dx);
    for (int64_t i = 0; i < nx; i++) {
        double an = (double)(dx[i] - base[i]); /* backward accumulates */
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(op, &s, x, g, y, am);
        x[i] = keep - h;
        double lm = loss(op, &s, x, g, y, am);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * (double)h);
        /* relative error, with gradients below 0.1 compared against 0.1 (max pool gives exact
         * zeros, where a relative error means nothing) */
        double e = fabs(num - an) / fmax(fmax(fabs(num), fabs(an)), 0.1);
        worst = fmax(worst, e);
    }
    oc_test_note("%-34s worst rel err dx %.2e", name, worst);
    T_CHECK(worst < 1e-2, "%s: gradient check failed (%.3g)", name, worst);
    free(x);
    free(g);
    free(y);
    free(base);
    free(dx);
    free(am);
}

static void gradient_check(void)
{
    grad_case("max 3x3 s2 p1 (negative inputs)", OP_MAX, mk(2, 5, 7, 3, 3, 3, 2, 2, 1, 1, 1), 1);
    grad_case("max 2x2 s2", OP_MAX, mk(2, 5, 7, 3, 2, 2, 2, 2, 0, 0, 1), 0);
    grad_case("max 3x2 s1/2 p1/1", OP_MAX, mk(2, 5, 7, 3, 3, 2, 1, 2, 1, 1, 1), 0);
    grad_case("avg 3x3 s2 p1 include pad", OP_AVG, mk(2, 5, 7, 3, 3, 3, 2, 2, 1, 1, 1), 0);
    grad_case("avg 3x3 s2 p1 exclude pad", OP_AVG, mk(2, 5, 7, 3, 3, 3, 2, 2, 1, 1, 0), 0);
    grad_case("avg 2x3 s1/2 p1/1 exclude pad", OP_AVG, mk(2, 5, 7, 3, 2, 3, 1, 2, 1, 1, 0), 0);
    grad_case("global avg", OP_GAP, mk(2, 5, 7, 3, 1, 1, 1, 1, 0, 0, 1), 0);
}

/* ---------------------------------------------------------------- kernels vs definitions */

static int def_case(oc_pool_shape s, uint64_t seed)
{
    oc_rng r;
    if (oc_pool_shape_init(&s) != 0)
        return 0;
    oc_rng_seed(&r, seed, 4);
    int64_t nx = x_numel(&s), ny = y_numel(&s);
    float *x = randv(&r, nx), *g = randv(&r, ny), *base = randv(&r, nx);
    float *y_max = malloc((size_t)ny * 4), *y_avg = malloc((size_t)ny * 4);
    float *dx_max = copyv(base, nx), *dx_avg = copyv(base, nx);
    int32_t *am_def = malloc((size_t)ny * 4);
    float *y1[2] = {NULL, NULL}, *dx1[2] = {NULL, NULL};
    int32_t *am1 = NULL;
    char what[128];

    max_def(&s, x, y_max, am_def);
    avg_def(&s, x, y_avg);
    /* backward by definition: each output's gradient to its argmax / spread over its window */
    for (int n = 0; n < s.N; n++)
        for (int64_t o = 0; o < (int64_t)s.P * s.Q; o++)
            for (int c = 0; c < s.C; c++) {
                int64_t i = ((int64_t)n * s.P * s.Q + o) * s.C + c;
                dx_max[((int64_t)n * s.H * s.W + am_def[i]) * s.C + c] += g[i];
            }
    avg_bwd_def(&s, g, dx_avg);
    for (int threads = 1; threads <= 2; threads++) {
        float *y = malloc((size_t)ny * 4), *ya = malloc((size_t)ny * 4);
        float *dxm = copyv(base, nx), *dxa = copyv(base, nx);
        int32_t *am = malloc((size_t)ny * 4);
        oc_set_threads(threads);
        oc_maxpool_fwd(&s, x, y, am);
        oc_maxpool_bwd(&s, am, g, dxm);
        oc_avgpool_fwd(&s, x, ya);
        oc_avgpool_bwd(&s, g, dxa);
        snprintf(what, sizeof what, "max y %dx%d s%d/%d p%d/%d (%d thr)", s.R, s.S, s.stride_h,
                 s.stride_w, s.pad_h, s.pad_w, threads);
        T_CLOSE(what, y, y_max, ny, 0, 0);
        T_CHECK(!memcmp(am, am_def, (size_t)ny * 4), "%s: argmax differs", what);
        T_CLOSE(what, dxm, dx_max, nx, 1e-6, 1e-6);
        snprintf(what, sizeof what, "avg cip=%d %dx%d s%d/%d p%d/%d (%d thr)",
                 s.count_include_pad, s.R, s.S, s.stride_h, s.stride_w, s.pad_h, s.pad_w,
                 threads);
        T_CLOSE(what, ya, y_avg, ny, 1e-6, 1e-5);
        T_CLOSE(what, dxa, dx_avg, nx, 1e-6, 1e-5);
        if (threads == 1) {
            y1[0] = ya;
            y1[1] = y;
            dx1[0] = dxa;
            dx1[1] = dxm;
            am1 = am;
            continue;
        }
        T_CHECK(!memcmp(ya, y1[0], (size_t)ny * 4) && !memcmp(dxa, dx1[0], (size_t)nx * 4) &&
                    !memcmp(dxm, dx1[1], (size_t)nx * 4),
                "%s: results differ between 1 and 2 threads", what);
        free(y);
        free(ya);
        free(dxm);
        free(dxa);
        free(am);
    }
    oc_set_threads(0);
    for (int i = 0; i < 2; i++) {
        free(y1[i]);
        free(dx1[i]);
    }
    free(am1);
    free(x);
    free(g);
    free(base);
    free(y_max);
    free(y_avg);
    free(dx_max);
    free(dx_avg);
    free(am_def);
    return 1;
}

static void kernels_match_definitions(void)
{
    for (int simd = 1; simd >= 0; simd--) {
        oc_rng r;
        int done = 0;
        oc_pool_allow_simd(simd);
        def_case(mk(3, 32, 32, 16, 2, 2, 2, 2, 0, 0, 1), 1);
        def_case(mk(2, 9, 11, 17, 3, 3, 2, 2, 1, 1, 0), 2);
        def_case(mk(2, 9, 11, 17, 3, 3, 2, 2, 1, 1, 1), 3);
        oc_rng_seed(&r, 5, 5);
        while (done < 30) {
            int R = 1 + (int)oc_rng_below(&r, 4), S = 1 + (int)oc_rng_below(&r, 4);
            int N = 1 + (int)oc_rng_below(&r, 3), H = 1 + (int)oc_rng_below(&r, 12);
            int W = 1 + (int)oc_rng_below(&r, 12), C = 1 + (int)oc_rng_below(&r, 35);
            int sh = 1 + (int)oc_rng_below(&r, 3), sw = 1 + (int)oc_rng_below(&r, 3);
            int ph = (int)oc_rng_below(&r, (uint64_t)R / 2 + 1);
            int pw = (int)oc_rng_below(&r, (uint64_t)S / 2 + 1);
            oc_pool_shape s = mk(N, H, W, C, R, S, sh, sw, ph, pw, (int)oc_rng_below(&r, 2));
            done += def_case(s, 10 + (uint64_t)done);
        }
    }
    oc_pool_allow_simd(1);
    oc_test_note("33 shapes, max/avg fwd+bwd, 1 and 2 threads, SIMD and portable");
}

static void global_avgpool_matches_definition(void)
{
    oc_rng r;
    const int N = 3, HW = 49, C = 35;
    oc_rng_seed(&r, 6, 6);
    float *x = randv(&r, (int64_t)N * HW * C), *g = randv(&r, N * C);
    float *base = randv(&r, (int64_t)N * HW * C), *dx = copyv(base, (int64_t)N * HW * C);
    float y[3 * 35], y_def[3 * 35];
    oc_set_threads(2);
    oc_global_avgpool_fwd(N, HW, C, x, y);
    oc_global_avgpool_bwd(N, HW, C, g, dx);
    oc_set_threads(0);
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double sum = 0;
            for (int i = 0; i < HW; i++)
                sum += (double)x[((int64_t)n * HW + i) * C + c];
            y_def[n * C + c] = (float)(sum / HW);
            for (int i = 0; i < HW; i++) {
                int64_t k = ((int64_t)n * HW + i) * C + c;
                double want = (double)g[n * C + c] / HW;
                worst = fmax(worst, fabs((double)(dx[k] - base[k]) - want));
            }
        }
    T_CLOSE("global avg y", y, y_def, N * C, 1e-6, 1e-5);
    oc_test_note("dx max |err| %.2e", worst);
    T_CHECK(worst < 1e-6, "global avg dx error %.3g", worst);
    free(x);
    free(g);
    free(base);
    free(dx);
}

/* ---------------------------------------------------------------- PyTorch parity */

static void matches_pytorch(void)
{
    oc_fixture *f = oc_fixture_load("pool");
    oc_fixture_array *cnt = oc_fixture_get(f, "count");
    char key[48], what[96];
    if (!f || !cnt)
        goto done;
    int count = ((int32_t *)cnt->data)[0];
    T_CHECK(count >= 5, "fixture has %d cases", count);
    for (int i = 0; i < count; i++) {
#define GET(name) (snprintf(key, sizeof key, "p%d_" name, i), oc_fixture_get(f, key))
        oc_fixture_array *sa = GET("shape"), *xa = GET("x"), *ga = GET("g");
        oc_fixture_array *my = GET("max_y"), *mi = GET("max_idx"), *mdx = GET("max_dx");
        oc_fixture_array *a1y = GET("avg1_y"), *a1dx = GET("avg1_dx");
        oc_fixture_array *a0y = GET("avg0_y"), *a0dx = GET("avg0_dx");
#undef GET
        if (!sa || !xa || !ga || !my || !mi || !mdx || !a1y || !a1dx || !a0y || !a0dx)
            break;
        const int32_t *v = sa->data;
        oc_pool_shape s = mk(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], 1);
        T_CHECK(oc_pool_shape_init(&s) == 0, "case %d: shape", i);
        int64_t nx = x_numel(&s), ny = y_numel(&s);
        T_CHECK(ny == my->numel && nx == xa->numel, "case %d: P, Q differ from PyTorch", i);
        if (ny != my->numel || nx != xa->numel)
            continue;
        const float *x = xa->data, *g = ga->data;
        float *y = malloc((size_t)ny * 4), *dx = calloc((size_t)nx, 4);
        int32_t *am = malloc((size_t)ny * 4);
        oc_maxpool_fwd(&s, x, y, am);
        oc_maxpool_bwd(&s, am, g, dx);
        snprintf(what, sizeof what, "case %d max y", i);
        T_CLOSE(what, y, my->data, ny, 1e-4, 1e-4);
        T_CHECK(!memcmp(am, mi->data, (size_t)ny * 4), "case %d: argmax differs from PyTorch", i);
        snprintf(what, sizeof what, "case %d max dx", i);
        T_CLOSE(what, dx, mdx->data, nx, 1e-4, 1e-4);
        for (int cip = 1; cip >= 0; cip--) {
            oc_fixture_array *ty = cip ? a1y : a0y, *tdx = cip ? a1dx : a0dx;
            s.count_include_pad = cip;
            memset(dx, 0, (size_t)nx * 4);
            oc_avgpool_fwd(&s, x, y);
            oc_avgpool_bwd(&s, g, dx);
            snprintf(what, sizeof what, "case %d avg(cip=%d) y", i, cip);
            T_CLOSE(what, y, ty->data, ny, 1e-4, 1e-4);
            snprintf(what, sizeof what, "case %d avg(cip=%d) dx", i, cip);
            T_CLOSE(what, dx, tdx->data, nx, 1e-4, 1e-4);
        }
        oc_test_note("case %d: N%d %dx%d C%d window %dx%d s%d/%d p%d/%d: max, avg(cip 0/1) ok",
                     i, s.N, s.H, s.W, s.C, s.R, s.S, s.stride_h, s.stride_w, s.pad_h, s.pad_w);
        free(y);
        free(dx);
        free(am);
    }
    {
        oc_fixture_array *sa = oc_fixture_get(f, "gap_shape");
        float *x = oc_fixture_f32(f, "gap_x"), *g = oc_fixture_f32(f, "gap_g");
        float *ty = oc_fixture_f32(f, "gap_y"), *tdx = oc_fixture_f32(f, "gap_dx");
        if (!sa || !x || !g || !ty || !tdx)
            goto done;
        const int32_t *v = sa->data;
        int N = v[0], HW = v[1] * v[2], C = v[3];
        float *y = malloc((size_t)N * C * 4), *dx = calloc((size_t)N * HW * C, 4);
        oc_global_avgpool_fwd(N, HW, C, x, y);
        oc_global_avgpool_bwd(N, HW, C, g, dx);
        T_CLOSE("global avg y", y, ty, N * C, 1e-4, 1e-4);
        T_CLOSE("global avg dx", dx, tdx, (int64_t)N * HW * C, 1e-4, 1e-4);
        free(y);
        free(dx);
    }
done:
    oc_fixture_free(f);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"shape_init_computes_and_rejects", shape_init_computes_and_rejects},
        {"maxpool_first_max_and_padding_never_wins", maxpool_first_max_and_padding_never_wins},
        {"maxpool_simd_nan_and_ties_match_portable", maxpool_simd_nan_and_ties_match_portable},
        {"maxpool_bwd_set_is_zeroed_accumulate", maxpool_bwd_set_is_zeroed_accumulate},
        {"gradient_check", gradient_check},
        {"kernels_match_definitions", kernels_match_definitions},
        {"global_avgpool_matches_definition", global_avgpool_matches_definition},
        {"matches_pytorch", matches_pytorch},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
