/* Activations: central-difference gradients for every activation (inputs kept away from the
 * kinks), PyTorch parity including the derivative conventions at the kinks (fixture from
 * tests/ref/gen_misc_ops.py), in-place forward, and the vectorised threaded kernels against
 * double-precision formulas on a large array with 1 and 2 threads. */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name; /* fixture prefix */
    oc_act act;
    float alpha;
} act_case;

static const act_case ACTS[] = {
    {"identity", OC_ACT_IDENTITY, 0.0f}, {"relu", OC_ACT_RELU, 0.0f},
    {"relu6", OC_ACT_RELU6, 0.0f},       {"leaky", OC_ACT_LEAKY_RELU, 0.01f},
    {"leaky2", OC_ACT_LEAKY_RELU, 0.2f}, {"gelu", OC_ACT_GELU, 0.0f},
    {"silu", OC_ACT_SILU, 0.0f},         {"sigmoid", OC_ACT_SIGMOID, 0.0f},
    {"hardswish", OC_ACT_HARDSWISH, 0.0f},
};
#define N_ACTS ((int)(sizeof ACTS / sizeof ACTS[0]))

static float *alloc_f(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

/* The oracle: each activation and its derivative in double, PyTorch's conventions at kinks. */
static double f_ref(oc_act act, double alpha, double x)
{
    switch (act) {
    case OC_ACT_IDENTITY: return x;
    case OC_ACT_RELU: return x > 0 ? x : 0;
    case OC_ACT_RELU6: return x < 0 ? 0 : (x > 6 ? 6 : x);
    case OC_ACT_LEAKY_RELU: return x > 0 ? x : alpha * x;
    case OC_ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case OC_ACT_SILU: return x / (1 + exp(-x));
    case OC_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case OC_ACT_HARDSWISH: return x * fmin(fmax(x + 3, 0), 6) / 6;
    }
    return NAN;
}

static double df_ref(oc_act act, double alpha, double x)
{
    const double pi = 3.14159265358979323846;
    double s = 1 / (1 + exp(-x));
    switch (act) {
    case OC_ACT_IDENTITY: return 1;
    case OC_ACT_RELU: return x > 0 ? 1 : 0;
    case OC_ACT_RELU6: return x > 0 && x < 6 ? 1 : 0;
    case OC_ACT_LEAKY_RELU: return x > 0 ? 1 : alpha;
    case OC_ACT_GELU: return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * pi);
    case OC_ACT_SILU: return s * (1 + x * (1 - s));
    case OC_ACT_SIGMOID: return s * (1 - s);
    case OC_ACT_HARDSWISH: return x < -3 ? 0 : (x < 3 ? x / 3 + 0.5 : 1);
    }
    return NAN;
}

static double loss_of(const act_case *a, int64_t n, const float *x, const float *g, float *y)
{
    double L = 0;
    oc_act_fwd(a->act, a->alpha, n, x, y);
    for (int64_t i = 0; i < n; i++)
        L += (double)g[i] * (double)y[i];
    return L;
}

/* L = sum g * f(x) over a 2x5x7x3 tensor, central differences with h = 1e-2 on every element;
 * inputs lie in [-8, 8] but at least 0.05 from every kink (0, 6, -3, 3). */
static void act_gradcheck(void)
{
    const int64_t n = 2 * 5 * 7 * 3;
    const double h = 1e-2, pre = 0.5;
    const float kinks[] = {0.0f, 6.0f, -3.0f, 3.0f};
    float *x = alloc_f(n), *g = alloc_f(n), *y = alloc_f(n), *dx = alloc_f(n);
    oc_rng r;

    oc_rng_seed(&r, 3, 0);
    for (int64_t i = 0; i < n; i++) {
        float v;
        int near;
        do {
            v = 16.0f * oc_rng_uniform(&r) - 8.0f;
            near = 0;
            for (int k = 0; k < 4; k++)
                near |= fabsf(v - kinks[k]) < 0.05f;
        } while (near);
        x[i] = v;
        g[i] = oc_rng_normal(&r);
    }
    for (int a = 0; a < N_ACTS; a++) {
        double worst = 0, scale = 0;
        double *num = calloc((size_t)n, sizeof(double));
        for (int64_t i = 0; i < n; i++)
            dx[i] = (float)pre; /* backward accumulates onto this */
        oc_act_bwd(ACTS[a].act, ACTS[a].alpha, n, x, g, dx);
        for (int64_t i = 0; i < n; i++) {
            float keep = x[i];
            float hi = (float)((double)keep + h), lo = (float)((double)keep - h);
            double lp, lm;
            x[i] = hi;
            lp = loss_of(&ACTS[a], n, x, g, y);
            x[i] = lo;
            lm = loss_of(&ACTS[a], n, x, g, y);
            x[i] = keep;
            num[i] = (lp - lm) / ((double)hi - (double)lo);
            scale = fmax(scale, fabs(num[i]));
        }
        for (int64_t i = 0; i < n; i++) {
            double ana = (double)dx[i] - pre;
            double den = fmax(fmax(fabs(ana), fabs(num[i])), 1e-2 * scale);
            worst = fmax(worst, fabs(ana - num[i]) / den);
        }
        oc_test_note("%-9s worst relative error %.2e", ACTS[a].name, worst);
        T_CHECK(worst < 1e-2, "%s: relative error %.3g", ACTS[a].name, worst);
        free(num);
    }
    free(x), free(g), free(y), free(dx);
}

static void act_matches_torch(void)
{
    oc_fixture *f = oc_fixture_load("act");
    oc_fixture_array *xa;
    const float *x, *g;
    float *y, *dx;
    int64_t n;
    char key[64];
    if (!f)
        return;
    xa = oc_fixture_get(f, "x");
    g = oc_fixture_f32(f, "g");
    if (!xa || !g) {
        oc_fixture_free(f);
        return;
    }
    x = xa->data;
    n = xa->numel;
    y = alloc_f(n);
    dx = alloc_f(n);
    for (int a = 1; a < N_ACTS; a++) { /* identity has no torch counterpart in the fixture */
        memset(dx, 0, (size_t)n * sizeof(float));
        oc_act_fwd(ACTS[a].act, ACTS[a].alpha, n, x, y);
        oc_act_bwd(ACTS[a].act, ACTS[a].alpha, n, x, g, dx);
        snprintf(key, sizeof key, "%s_y", ACTS[a].name);
        T_CLOSE(key, y, oc_fixture_f32(f, key), n, 1e-4, 1e-4);
        snprintf(key, sizeof key, "%s_dx", ACTS[a].name);
        T_CLOSE(key, dx, oc_fixture_f32(f, key), n, 1e-4, 1e-4);
    }
    oc_test_note("%d activations x %lld values (kinks -3, 0, 3, 6 included)", N_ACTS - 1,
                 (long long)n);
    free(y), free(dx);
    oc_fixture_free(f);
}

/* Forward with y == x must give the same values as out of place. */
static void act_in_place(void)
{
    const int64_t n = 100003; /* above the threading threshold, odd */
    float *x = alloc_f(n), *y = alloc_f(n), *z = alloc_f(n);
    oc_rng r;
    oc_rng_seed(&r, 9, 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = 6.0f * oc_rng_normal(&r);
    for (int a = 0; a < N_ACTS; a++) {
        memcpy(z, x, (size_t)n * sizeof(float));
        oc_act_fwd(ACTS[a].act, ACTS[a].alpha, n, x, y);
        oc_act_fwd(ACTS[a].act, ACTS[a].alpha, n, z, z);
        T_CHECK(memcmp(y, z, (size_t)n * sizeof(float)) == 0, "%s: in-place result differs",
                ACTS[a].name);
    }
    free(x), free(y), free(z);
}

/* Large array over [-12, 12] plus extremes (+-100, +-1e30, +-inf): fast kernels against the
 * double oracle, 1 and 2 threads bitwise equal (no reductions), and time per element. */
static void act_fast_matches_oracle(void)
{
    const int64_t n = (1 << 20) + 13;
    float *x = alloc_f(n), *g = alloc_f(n), *y1 = alloc_f(n), *y2 = alloc_f(n);
    float *d1 = alloc_f(n), *d2 = alloc_f(n);
    const float extremes[] = {100.0f, -100.0f, 1e30f, -1e30f, INFINITY, -INFINITY, 0.0f, -0.0f};
    oc_rng r;

    oc_rng_seed(&r, 17, 0);
    for (int64_t i = 0; i < n; i++) {
        x[i] = 24.0f * oc_rng_uniform(&r) - 12.0f;
        g[i] = oc_rng_normal(&r);
    }
    memcpy(x, extremes, sizeof extremes);
    for (int a = 0; a < N_ACTS; a++) {
        const act_case *ac = &ACTS[a];
        double ef = 0, eb = 0, t_fwd, t_bwd;
        int finite = 1;
        oc_set_threads(1);
        oc_act_fwd(ac->act, ac->alpha, n, x, y1);
        memset(d1, 0, (size_t)n * sizeof(float));
        oc_act_bwd(ac->act, ac->alpha, n, x, g, d1);
        oc_set_threads(2);
        t_fwd = t_bwd = (double)INFINITY;
        for (int rep = 0; rep < 3; rep++) { /* best of 3: the machine is shared */
            double t0;
            memset(y2, 0, (size_t)n * sizeof(float));
            memset(d2, 0, (size_t)n * sizeof(float));
            t0 = oc_now();
            oc_act_fwd(ac->act, ac->alpha, n, x, y2);
            t_fwd = fmin(t_fwd, oc_now() - t0);
            t0 = oc_now();
            oc_act_bwd(ac->act, ac->alpha, n, x, g, d2);
            t_bwd = fmin(t_bwd, oc_now() - t0);
        }
        oc_set_threads(0);
        T_CHECK(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0 &&
                    memcmp(d1, d2, (size_t)n * sizeof(float)) == 0,
                "%s: 1 and 2 threads differ", ac->name);
        for (int64_t i = 0; i < n; i++) {
            double xv = (double)x[i];
            double fy = f_ref(ac->act, (double)ac->alpha, xv);
            double fd = (double)g[i] * df_ref(ac->act, (double)ac->alpha, xv);
            if (isinf(xv)) {
                /* x * f'(x) terms are inf * 0 at infinity; only ask for the right limit */
                if (ac->act == OC_ACT_SIGMOID || ac->act == OC_ACT_RELU6)
                    ef = fmax(ef, fabs((double)y1[i] - fy));
                continue;
            }
            finite &= isfinite(y1[i]) && isfinite(d1[i]);
            ef = fmax(ef, fabs((double)y1[i] - fy) / (1 + fabs(fy)));
            eb = fmax(eb, fabs((double)d1[i] - fd) / (1 + fabs(fd)));
        }
        oc_test_note("%-9s max rel err fwd %.2e bwd %.2e; 2 threads: fwd %.2f ns/elem, bwd %.2f "
                     "ns/elem",
                     ac->name, ef, eb, t_fwd * 1e9 / (double)n, t_bwd * 1e9 / (double)n);
        T_CHECK(finite, "%s: non-finite output for finite input", ac->name);
        T_CHECK(ef < 1e-6, "%s: forward error %.3g", ac->name, ef);
        T_CHECK(eb < 1e-6, "%s: backward error %.3g", ac->name, eb);
    }
    free(x), free(g), free(y1), free(y2), free(d1), free(d2);
}

/* oc_act_bwd_set (a layer that writes its input's gradient first, plan.c) gives the bits of
 * oc_act_bwd into zeros without reading dx (NaN there), -0 gradients and kinks included, on
 * short and threaded lengths. */
static void act_bwd_set_is_bitwise(void)
{
    static const int64_t sizes[] = {37, 300001};
    for (int si = 0; si < 2; si++)
        for (int a = 0; a < N_ACTS; a++) {
            const int64_t n = sizes[si];
            float *x = alloc_f(n), *dy = alloc_f(n), *want = alloc_f(n), *got = alloc_f(n);
            oc_rng r;
            oc_rng_seed(&r, 500 + (uint64_t)a, (uint64_t)si);
            for (int64_t i = 0; i < n; i++) {
                x[i] = i % 11 == 0 ? 0.0f : i % 13 == 0 ? 6.0f : 8.0f * oc_rng_normal(&r);
                dy[i] = i % 7 == 0 ? -0.0f : oc_rng_normal(&r);
                got[i] = NAN;
            }
            oc_act_bwd(ACTS[a].act, ACTS[a].alpha, n, x, dy, want);
            oc_act_bwd_set(ACTS[a].act, ACTS[a].alpha, n, x, dy, got);
            T_CHECK(!memcmp(want, got, (size_t)n * sizeof(float)), "%s n=%lld: set differs",
                    ACTS[a].name, (long long)n);
            free(x), free(dy), free(want), free(got);
        }
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"act_gradcheck", act_gradcheck},
        {"act_matches_torch", act_matches_torch},
        {"act_in_place", act_in_place},
        {"act_fast_matches_oracle", act_fast_matches_oracle},
        {"act_bwd_set_is_bitwise", act_bwd_set_is_bitwise},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
