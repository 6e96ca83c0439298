/* Dense layer: gradient check against central differences, fast vs _ref (forward and the
 * accumulating backward, 1 and 2 threads), and parity with torch.nn.functional.linear
 * (tests/ref/gen_dense.py -> tests/fixtures/dense.bin). */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U_F32 5.9604644775390625e-8 /* 2^-24 */

/* Test hook in src/ops/dense.c: 0 forces the portable small-batch forward. */
void oc_dense_allow_simd(int allow);

static float *rnd(oc_rng *r, size_t n, float scale)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (2.0f * oc_rng_uniform(r) - 1.0f);
    return x;
}

static float *zeros(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

/* L = sum g * dense_fwd(x, w, b), summed in double. */
static double loss(int N, int I, int O, const float *x, const float *w, const float *b,
                   const float *g, float *y)
{
    double L = 0;
    oc_dense_fwd(N, I, O, x, w, b, y);
    for (int i = 0; i < N * O; i++)
        L += (double)g[i] * (double)y[i];
    return L;
}

/* Central differences of L over every element of p (one of x, w, b) against the analytic
 * gradient `ana`. The step actually taken is measured in double ((x+h) - (x-h) as stored in
 * float), so float rounding of x +- h does not bias the quotient. Returns the worst relative
 * error |ana - num| / max(|num|, 1e-2) (the floor keeps near-zero gradients from turning the
 * O(1e-5) absolute noise of a float forward into a large ratio). */
static double grad_check(int N, int I, int O, float *x, float *w, float *b, const float *g,
                         float *p, int n, const float *ana, float *y)
{
    const float h = 1e-2f;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = keep + h;
        float hi = p[i];
        double Lp = loss(N, I, O, x, w, b, g, y);
        p[i] = keep - h;
        float lo = p[i];
        double Lm = loss(N, I, O, x, w, b, g, y);
        p[i] = keep;
        double num = (Lp - Lm) / ((double)hi - (double)lo);
        double den = fabs(num) > 1e-2 ? fabs(num) : 1e-2;
        double rel = fabs((double)ana[i] - num) / den;
        if (rel > worst)
            worst = rel;
    }
    return worst;
}

static void gradient_check(void)
{
    static const int shapes[][3] = {{2, 5, 3}, {3, 37, 19}, {4, 17, 40}, {1, 1, 1}};
    oc_rng r;
    oc_rng_seed(&r, 11, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], I = shapes[s][1], O = shapes[s][2];
        float *x = rnd(&r, (size_t)N * I, 1.0f), *w = rnd(&r, (size_t)O * I, 1.0f);
        float *b = rnd(&r, O, 1.0f), *g = rnd(&r, (size_t)N * O, 1.0f);
        float *y = zeros((size_t)N * O);
        float *dx = zeros((size_t)N * I), *dw = zeros((size_t)O * I), *db = zeros(O);
        double ex, ew, eb;
        oc_dense_bwd(N, I, O, x, w, g, dx, dw, db);
        ex = grad_check(N, I, O, x, w, b, g, x, N * I, dx, y);
        ew = grad_check(N, I, O, x, w, b, g, w, O * I, dw, y);
        eb = grad_check(N, I, O, x, w, b, g, b, O, db, y);
        oc_test_note("N=%d I=%d O=%d: worst relative error dx %.2e dw %.2e db %.2e", N, I, O, ex,
                     ew, eb);
        T_CHECK(ex <= 1e-2 && ew <= 1e-2 && eb <= 1e-2,
                "N=%d I=%d O=%d: gradient mismatch (dx %.3g, dw %.3g, db %.3g > 1e-2)", N, I, O,
                ex, ew, eb);
        free(x);
        free(w);
        free(b);
        free(g);
        free(y);
        free(dx);
        free(dw);
        free(db);
    }
}

/* got vs want with the per-element bound (K + 4) u * mag, where mag = sum of the absolute
 * values of the terms: float summation of K products in any order stays within gamma_(K+2)
 * of that (Higham 3.1), plus the reference's own rounding. See test_gemm.c. */
static void check_bound(const char *what, const float *got, const float *want, const float *mag,
                        int64_t n, int K, double *worst)
{
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)want[i]);
        double tol = (K + 4) * U_F32 * (double)mag[i] + 1e-30;
        if (!(err <= tol)) {
            T_CHECK(0, "%s: [%lld] got %.9g want %.9g (|err| %.3g > %.3g)", what, (long long)i,
                    (double)got[i], (double)want[i], err, tol);
            return;
        }
        if (mag[i] > 0 && err / (U_F32 * (double)mag[i]) > *worst)
            *worst = err / (U_F32 * (double)mag[i]);
    }
}

static void absv(const float *x, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = fabsf(x[i]);
}

/* oc_dense_fwd / oc_dense_bwd against the _ref loops on shapes below and above the GEMM's
 * small-problem threshold, with 1 and 2 threads; backward starts from non-zero gradients (it
 * accumulates), and once with dx and db NULL (which must leave them alone). */
static void fast_matches_ref_run(void)
{
    static const int shapes[][3] = {{1, 1, 1},  {2, 37, 19},    {5, 128, 10},
                                    {64, 300, 100}, {128, 512, 10}, {33, 17, 257},
                                    {1, 1280, 1000}, {3, 45, 130}, {4, 7, 300}};
    double worst = 0;
    oc_rng r;
    oc_rng_seed(&r, 12, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int nt = 1; nt <= 2; nt++) {
            int N = shapes[s][0], I = shapes[s][1], O = shapes[s][2];
            size_t nx = (size_t)N * I, nw = (size_t)O * I, ny = (size_t)N * O;
            float *x = rnd(&r, nx, 1.0f), *w = rnd(&r, nw, 1.0f), *b = rnd(&r, O, 1.0f);
            float *dy = rnd(&r, ny, 1.0f);
            float *dx0 = rnd(&r, nx, 1.0f), *dw0 = rnd(&r, nw, 1.0f), *db0 = rnd(&r, O, 1.0f);
            float *ax = zeros(nx), *aw = zeros(nw), *ab = zeros(O), *ady = zeros(ny);
            float *y = zeros(ny), *yr = zeros(ny), *ym = zeros(ny);
            float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(O);
            float *dxr = zeros(nx), *dwr = zeros(nw), *dbr = zeros(O);
            float *mx = zeros(nx), *mw = zeros(nw), *mb = zeros(O);
            char what[96];

            oc_set_threads(nt);
            absv(x, ax, nx);
            absv(w, aw, nw);
            absv(b, ab, O);
            absv(dy, ady, ny);

            oc_dense_fwd(N, I, O, x, w, b, y);
            oc_dense_fwd_ref(N, I, O, x, w, b, yr);
            oc_dense_fwd_ref(N, I, O, ax, aw, ab, ym);
            snprintf(what, sizeof what, "fwd N=%d I=%d O=%d threads=%d", N, I, O, nt);
            check_bound(what, y, yr, ym, (int64_t)ny, I, &worst);

            memcpy(dx, dx0, nx * 4);
            memcpy(dw, dw0, nw * 4);
            memcpy(db, db0, (size_t)O * 4);
            memcpy(dxr, dx0, nx * 4);
            memcpy(dwr, dw0, nw * 4);
            memcpy(dbr, db0, (size_t)O * 4);
            absv(dx0, mx, nx);
            absv(dw0, mw, nw);
            absv(db0, mb, O);
            oc_dense_bwd(N, I, O, x, w, dy, dx, dw, db);
            oc_dense_bwd_ref(N, I, O, x, w, dy, dxr, dwr, dbr);
            oc_dense_bwd_ref(N, I, O, ax, aw, ady, mx, mw, mb);
            snprintf(what, sizeof what, "bwd dx N=%d I=%d O=%d threads=%d", N, I, O, nt);
            check_bound(what, dx, dxr, mx, (int64_t)nx, O, &worst);
            snprintf(what, sizeof what, "bwd dw N=%d I=%d O=%d threads=%d", N, I, O, nt);
            check_bound(what, dw, dwr, mw, (int64_t)nw, N, &worst);
            snprintf(what, sizeof what, "bwd db N=%d I=%d O=%d threads=%d", N, I, O, nt);
            check_bound(what, db, dbr, mb, O, N, &worst);

            /* dx and db NULL: only dw changes */
            memcpy(dw, dw0, nw * 4);
            oc_dense_bwd(N, I, O, x, w, dy, NULL, dw, NULL);
            snprintf(what, sizeof what, "bwd dw only N=%d I=%d O=%d threads=%d", N, I, O, nt);
            check_bound(what, dw, dwr, mw, (int64_t)nw, N, &worst);

            free(x); free(w); free(b); free(dy); free(dx0); free(dw0); free(db0);
            free(ax); free(aw); free(ab); free(ady); free(y); free(yr); free(ym);
            free(dx); free(dw); free(db); free(dxr); free(dwr); free(dbr);
            free(mx); free(mw); free(mb);
        }
    oc_set_threads(0);
    oc_test_note("worst |err| = %.2f u * sum of |terms| (bound K+4)", worst);
}

static void fast_matches_ref(void)
{
    fast_matches_ref_run();
    oc_dense_allow_simd(0); /* the portable dot products of the small-batch forward */
    fast_matches_ref_run();
    oc_dense_allow_simd(1);
}

/* Against torch.nn.functional.linear and autograd (float32 on both sides). */
static void matches_pytorch(void)
{
    oc_fixture *f = oc_fixture_load("dense");
    oc_fixture_array *cases;
    double worst = 0;
    if (!f)
        return;
    cases = oc_fixture_get(f, "cases");
    if (!cases)
        goto done;
    for (int c = 0; c < cases->shape[0]; c++) {
        const int32_t *sh = (const int32_t *)cases->data + 3 * c;
        int N = sh[0], I = sh[1], O = sh[2];
        char key[32], what[96];
        const float *in[8];
        static const char *names[8] = {"x", "w", "b", "gy", "y", "gx", "gw", "gb"};
        int ok = 1;
        for (int k = 0; k < 8; k++) {
            snprintf(key, sizeof key, "c%d_%s", c, names[k]);
            in[k] = oc_fixture_f32(f, key);
            ok &= in[k] != NULL;
        }
        if (!ok)
            continue;
        float *y = zeros((size_t)N * O), *dx = zeros((size_t)N * I), *dw = zeros((size_t)O * I);
        float *db = zeros(O);
        oc_dense_fwd(N, I, O, in[0], in[1], in[2], y);
        oc_dense_bwd(N, I, O, in[0], in[1], in[3], dx, dw, db);
        const float *got[4] = {y, dx, dw, db};
        const int64_t n[4] = {(int64_t)N * O, (int64_t)N * I, (int64_t)O * I, O};
        for (int k = 0; k < 4; k++) {
            snprintf(what, sizeof what, "N=%d I=%d O=%d %s", N, I, O, names[4 + k]);
            T_CLOSE(what, got[k], in[4 + k], n[k], 1e-4, 1e-4);
            for (int64_t i = 0; i < n[k]; i++) {
                double d = fabs((double)got[k][i] - (double)in[4 + k][i]);
                if (d > worst)
                    worst = d;
            }
        }
        free(y);
        free(dx);
        free(dw);
        free(db);
    }
    oc_test_note("%lld cases, max |ocelot - torch| = %.3g", (long long)cases->shape[0], worst);
done:
    oc_fixture_free(f);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"gradient_check", gradient_check},
        {"fast_matches_ref", fast_matches_ref},
        {"matches_pytorch", matches_pytorch},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
