/* Batch norm: central-difference gradients (x, gamma, beta), PyTorch parity (training forward,
 * backward, running stats with two momenta, inference forward) from tests/ref/gen_misc_ops.py,
 * and the threaded kernels against a two-pass double-precision oracle on a large batch and on
 * many channels, with 1 and 2 threads (bitwise reproducible per thread count). */
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

/* ---- the oracle: plain two-pass loops in double ---- */

static void ref_train(int64_t M, int C, const float *x, const float *gamma, const float *beta,
                      double eps, double mom, double *rm, double *rv, double *mean,
                      double *invstd, double *y)
{
    for (int c = 0; c < C; c++) {
        double s = 0, v = 0;
        for (int64_t m = 0; m < M; m++)
            s += (double)x[m * C + c];
        s /= (double)M;
        for (int64_t m = 0; m < M; m++)
            v += ((double)x[m * C + c] - s) * ((double)x[m * C + c] - s);
        mean[c] = s;
        invstd[c] = 1.0 / sqrt(v / (double)M + eps);
        rm[c] = (1 - mom) * rm[c] + mom * s;
        rv[c] = (1 - mom) * rv[c] + mom * v / (double)(M - 1);
        for (int64_t m = 0; m < M; m++)
            y[m * C + c] = ((double)x[m * C + c] - s) * invstd[c] * (double)gamma[c] +
                           (double)beta[c];
    }
}

static void ref_bwd(int64_t M, int C, const float *x, const float *gamma, const double *mean,
                    const double *invstd, const float *dy, double *dx, double *dgamma,
                    double *dbeta)
{
    for (int c = 0; c < C; c++) {
        double sg = 0, sgx = 0;
        for (int64_t m = 0; m < M; m++) {
            double xh = ((double)x[m * C + c] - mean[c]) * invstd[c];
            sg += (double)dy[m * C + c];
            sgx += (double)dy[m * C + c] * xh;
        }
        dgamma[c] = sgx;
        dbeta[c] = sg;
        for (int64_t m = 0; m < M; m++) {
            double xh = ((double)x[m * C + c] - mean[c]) * invstd[c];
            dx[m * C + c] = (double)gamma[c] * invstd[c] / (double)M *
                            ((double)M * (double)dy[m * C + c] - sg - xh * sgx);
        }
    }
}

/* worst |a - b| / max(|a|, |b|, floor) over n values */
static double worst_rel(const double *a, const double *b, int64_t n, double floor_)
{
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        double s = fmax(fmax(fabs(a[i]), fabs(b[i])), floor_);
        if (d / s > w || isnan(d))
            w = isnan(d) ? (double)INFINITY : d / s;
    }
    return w;
}

static double max_abs_d(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* ---- gradient check ---- */

typedef struct {
    int64_t M;
    int C;
    float *x, *gamma, *beta, *g, *y, *mean, *invstd;
} bn_case;

static double loss_of(bn_case *b)
{
    double L = 0;
    oc_batchnorm_fwd_train(b->M, b->C, b->x, b->gamma, b->beta, 1e-5f, 0.1f, NULL, NULL,
                           b->mean, b->invstd, b->y);
    for (int64_t i = 0; i < b->M * b->C; i++)
        L += (double)b->g[i] * (double)b->y[i];
    return L;
}

/* Central differences of L over every element of v[n]; num[i] receives dL/dv[i]. */
static void numeric_grad(bn_case *b, float *v, int64_t n, double h, double *num)
{
    for (int64_t i = 0; i < n; i++) {
        float keep = v[i];
        float hi = (float)((double)keep + h), lo = (float)((double)keep - h);
        double lp, lm;
        v[i] = hi;
        lp = loss_of(b);
        v[i] = lo;
        lm = loss_of(b);
        v[i] = keep;
        num[i] = (lp - lm) / ((double)hi - (double)lo);
    }
}

static void bn_train_gradcheck(void)
{
    const int N = 2, H = 5, W = 7, C = 3;
    const int64_t M = (int64_t)N * H * W, n = M * C;
    const double h = 1e-2, pre = 0.25;
    oc_rng r;
    bn_case b = {M, C, alloc_f(n), alloc_f(C), alloc_f(C), alloc_f(n), alloc_f(n), alloc_f(C),
                 alloc_f(C)};
    float *dx = alloc_f(n), *dgamma = alloc_f(C), *dbeta = alloc_f(C);
    double *num = calloc((size_t)n, sizeof(double)), *ana = calloc((size_t)n, sizeof(double));
    double e_x, e_g, e_b;

    oc_rng_seed(&r, 11, 0);
    for (int c = 0; c < C; c++) {
        b.gamma[c] = 1.0f + 0.3f * oc_rng_normal(&r);
        b.beta[c] = 0.5f * oc_rng_normal(&r);
    }
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % C);
        b.x[i] = (float)(c - 1) + (1.0f + 0.5f * (float)c) * oc_rng_normal(&r);
        b.g[i] = oc_rng_normal(&r);
    }
    /* backward ACCUMULATES: start from a known value and subtract it afterwards */
    for (int64_t i = 0; i < n; i++)
        dx[i] = (float)pre;
    for (int c = 0; c < C; c++)
        dgamma[c] = dbeta[c] = (float)pre;
    loss_of(&b);
    oc_batchnorm_bwd(M, C, b.x, b.gamma, b.mean, b.invstd, b.g, dx, dgamma, dbeta);

    numeric_grad(&b, b.x, n, h, num);
    for (int64_t i = 0; i < n; i++)
        ana[i] = (double)dx[i] - pre;
    e_x = worst_rel(ana, num, n, 1e-2 * max_abs_d(num, n));

    numeric_grad(&b, b.gamma, C, h, num);
    for (int c = 0; c < C; c++)
        ana[c] = (double)dgamma[c] - pre;
    e_g = worst_rel(ana, num, C, 1e-2 * max_abs_d(num, C));

    numeric_grad(&b, b.beta, C, h, num);
    for (int c = 0; c < C; c++)
        ana[c] = (double)dbeta[c] - pre;
    e_b = worst_rel(ana, num, C, 1e-2 * max_abs_d(num, C));

    oc_test_note("worst relative error: dx %.2e, dgamma %.2e, dbeta %.2e", e_x, e_g, e_b);
    T_CHECK(e_x < 1e-2, "dx relative error %.3g", e_x);
    T_CHECK(e_g < 1e-2, "dgamma relative error %.3g", e_g);
    T_CHECK(e_b < 1e-2, "dbeta relative error %.3g", e_b);

    free(b.x), free(b.gamma), free(b.beta), free(b.g), free(b.y), free(b.mean), free(b.invstd);
    free(dx), free(dgamma), free(dbeta), free(num), free(ana);
}

/* ---- PyTorch parity ---- */

static void bn_matches_torch(void)
{
    oc_fixture *f = oc_fixture_load("norm");
    int cases = 0;
    if (!f)
        return;
    for (int i = 0;; i++) {
        char k[64];
#define FX(name) (snprintf(k, sizeof k, "bn%d_%s", i, name), oc_fixture_f32(f, k))
        snprintf(k, sizeof k, "bn%d_shape", i);
        int found = 0;
        for (int a = 0; a < f->n; a++)
            found |= strcmp(f->arrays[a].name, k) == 0;
        if (!found)
            break;
        const int32_t *shape = oc_fixture_get(f, k)->data;
        const float *hp = FX("hp");
        const int64_t M = (int64_t)shape[0] * shape[1] * shape[2];
        const int C = shape[3];
        const float *x = FX("x"), *gamma = FX("gamma"), *beta = FX("beta"), *g = FX("g");
        float *rm = alloc_f(C), *rv = alloc_f(C), *mean = alloc_f(C), *invstd = alloc_f(C);
        float *y = alloc_f(M * C), *dx = alloc_f(M * C), *dgamma = alloc_f(C),
              *dbeta = alloc_f(C);
        char what[96];

        memcpy(rm, FX("rm0"), (size_t)C * sizeof(float));
        memcpy(rv, FX("rv0"), (size_t)C * sizeof(float));
        oc_batchnorm_fwd_train(M, C, x, gamma, beta, hp[1], hp[0], rm, rv, mean, invstd, y);
        oc_batchnorm_bwd(M, C, x, gamma, mean, invstd, g, dx, dgamma, dbeta);
#define CMP(arr, name, n)                                                                         \
    do {                                                                                          \
        snprintf(what, sizeof what, "case %d (C=%d, momentum %.2f) %s", i, C, (double)hp[0],     \
                 name);                                                                           \
        T_CLOSE(what, arr, FX(name), n, 1e-4, 1e-4);                                              \
    } while (0)
        CMP(y, "y", M * C);
        CMP(mean, "mean", C);
        CMP(invstd, "invstd", C);
        CMP(rm, "rm", C);
        CMP(rv, "rv", C);
        CMP(dx, "dx", M * C);
        CMP(dgamma, "dgamma", C);
        CMP(dbeta, "dbeta", C);
        oc_batchnorm_fwd_infer(M, C, x, gamma, beta, FX("rm0"), FX("rv0"), hp[1], y);
        CMP(y, "yi", M * C);
#undef CMP
#undef FX
        free(rm), free(rv), free(mean), free(invstd), free(y), free(dx), free(dgamma),
            free(dbeta);
        cases++;
    }
    oc_test_note("%d PyTorch cases compared", cases);
    T_CHECK(cases >= 5, "expected at least 5 cases in norm.bin, found %d", cases);
    oc_fixture_free(f);
}

/* ---- threaded kernels against the oracle ---- */

typedef struct {
    double fwd_err, bwd_err, param_err, stat_err, infer_err;
    double t_fwd, t_bwd;
} oracle_result;

static void check_against_oracle(int64_t M, int C, float offset, int threads, uint64_t seed,
                                 oracle_result *res, float *y_out, float *dx_out)
{
    const int64_t n = M * C;
    const float eps = 1e-5f, mom = 0.1f;
    oc_rng r;
    float *x = alloc_f(n), *g = alloc_f(n), *gamma = alloc_f(C), *beta = alloc_f(C);
    float *rm = alloc_f(C), *rv = alloc_f(C), *mean = alloc_f(C), *invstd = alloc_f(C);
    float *dgamma = alloc_f(C), *dbeta = alloc_f(C);
    double *drm = calloc((size_t)C, 8), *drv = calloc((size_t)C, 8), *dmean = calloc((size_t)C, 8),
           *dinv = calloc((size_t)C, 8), *dy = calloc((size_t)n, 8), *ddx = calloc((size_t)n, 8),
           *ddg = calloc((size_t)C, 8), *ddb = calloc((size_t)C, 8);
    double t0;

    oc_rng_seed(&r, seed, 0);
    for (int c = 0; c < C; c++) {
        gamma[c] = 1.0f + 0.2f * oc_rng_normal(&r);
        beta[c] = 0.3f * oc_rng_normal(&r);
        rm[c] = oc_rng_normal(&r);
        rv[c] = 1.0f + oc_rng_uniform(&r);
        drm[c] = (double)rm[c];
        drv[c] = (double)rv[c];
    }
    for (int64_t i = 0; i < n; i++) {
        x[i] = offset + (1.0f + (float)(i % C) * 0.05f) * oc_rng_normal(&r);
        g[i] = oc_rng_normal(&r);
    }
    ref_train(M, C, x, gamma, beta, (double)eps, (double)mom, drm, drv, dmean, dinv, dy);
    ref_bwd(M, C, x, gamma, dmean, dinv, g, ddx, ddg, ddb);

    oc_set_threads(threads);
    /* touch the outputs first: fresh pages cost more than the kernel (DESIGN.md) */
    memset(y_out, 0, (size_t)n * sizeof(float));
    memset(dx_out, 0, (size_t)n * sizeof(float));
    t0 = oc_now();
    oc_batchnorm_fwd_train(M, C, x, gamma, beta, eps, mom, rm, rv, mean, invstd, y_out);
    res->t_fwd = oc_now() - t0;
    t0 = oc_now();
    oc_batchnorm_bwd(M, C, x, gamma, mean, invstd, g, dx_out, dgamma, dbeta);
    res->t_bwd = oc_now() - t0;

    res->fwd_err = res->bwd_err = res->param_err = res->stat_err = res->infer_err = 0;
    for (int64_t i = 0; i < n; i++) {
        res->fwd_err = fmax(res->fwd_err, fabs((double)y_out[i] - dy[i]) / (1 + fabs(dy[i])));
        res->bwd_err = fmax(res->bwd_err, fabs((double)dx_out[i] - ddx[i]) / (1 + fabs(ddx[i])));
    }
    for (int c = 0; c < C; c++) {
        res->stat_err = fmax(res->stat_err, fabs((double)mean[c] - dmean[c]) / fabs(dmean[c]));
        res->stat_err = fmax(res->stat_err, fabs((double)invstd[c] - dinv[c]) / dinv[c]);
        res->stat_err = fmax(res->stat_err, fabs((double)rm[c] - drm[c]) / (1 + fabs(drm[c])));
        res->stat_err = fmax(res->stat_err, fabs((double)rv[c] - drv[c]) / drv[c]);
        res->param_err = fmax(res->param_err, fabs((double)dgamma[c] - ddg[c]) / (1 + fabs(ddg[c])));
        res->param_err = fmax(res->param_err, fabs((double)dbeta[c] - ddb[c]) / (1 + fabs(ddb[c])));
    }
    /* inference from the updated running stats */
    oc_batchnorm_fwd_infer(M, C, x, gamma, beta, rm, rv, eps, y_out);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % C);
        double want = ((double)x[i] - (double)rm[c]) / sqrt((double)rv[c] + (double)eps) *
                          (double)gamma[c] + (double)beta[c];
        res->infer_err = fmax(res->infer_err, fabs((double)y_out[i] - want) / (1 + fabs(want)));
    }
    oc_batchnorm_fwd_train(M, C, x, gamma, beta, eps, mom, NULL, NULL, mean, invstd, y_out);
    oc_set_threads(0);

    free(x), free(g), free(gamma), free(beta), free(rm), free(rv), free(mean), free(invstd);
    free(dgamma), free(dbeta), free(drm), free(drv), free(dmean), free(dinv), free(dy), free(ddx);
    free(ddg), free(ddb);
}

static void run_oracle_case(const char *label, int64_t M, int C, float offset)
{
    const int64_t n = M * C;
    float *y1 = alloc_f(n), *dx1 = alloc_f(n), *y2 = alloc_f(n), *dx2 = alloc_f(n);
    float *y2b = alloc_f(n), *dx2b = alloc_f(n);
    oracle_result r1, r2, r2b;

    check_against_oracle(M, C, offset, 1, 5, &r1, y1, dx1);
    check_against_oracle(M, C, offset, 2, 5, &r2, y2, dx2);
    check_against_oracle(M, C, offset, 2, 5, &r2b, y2b, dx2b);
    oc_test_note("%s M=%lld C=%d offset %g, max rel err (1 / 2 threads): y %.2e / %.2e, "
                 "dx %.2e / %.2e, dgamma+dbeta %.2e / %.2e, mean+invstd+running %.2e / %.2e, "
                 "inference %.2e / %.2e", label, (long long)M, C, (double)offset, r1.fwd_err,
                 r2.fwd_err, r1.bwd_err, r2.bwd_err, r1.param_err, r2.param_err, r1.stat_err,
                 r2.stat_err, r1.infer_err, r2.infer_err);
    oc_test_note("time: 1 thread fwd %.2f ms bwd %.2f ms; 2 threads fwd %.2f ms bwd %.2f ms",
                 r1.t_fwd * 1e3, r1.t_bwd * 1e3, r2.t_fwd * 1e3, r2.t_bwd * 1e3);
    T_CHECK(r1.fwd_err < 2e-5 && r2.fwd_err < 2e-5, "y error %.3g / %.3g", r1.fwd_err,
            r2.fwd_err);
    T_CHECK(r1.bwd_err < 2e-5 && r2.bwd_err < 2e-5, "dx error %.3g / %.3g", r1.bwd_err,
            r2.bwd_err);
    T_CHECK(r1.param_err < 2e-4 && r2.param_err < 2e-4, "dgamma/dbeta error %.3g / %.3g",
            r1.param_err, r2.param_err);
    T_CHECK(r1.stat_err < 2e-6 && r2.stat_err < 2e-6, "statistics error %.3g / %.3g",
            r1.stat_err, r2.stat_err);
    T_CHECK(r1.infer_err < 2e-5 && r2.infer_err < 2e-5, "inference error %.3g / %.3g",
            r1.infer_err, r2.infer_err);
    T_CHECK(memcmp(y2, y2b, (size_t)n * sizeof(float)) == 0 &&
                memcmp(dx2, dx2b, (size_t)n * sizeof(float)) == 0,
            "two runs with 2 threads differ");
    free(y1), free(dx1), free(y2), free(dx2), free(y2b), free(dx2b);
}

/* 128 x 32 x 32 images of 16 channels, with a mean of 50 against a std of about 1: the sums
 * must neither lose the variance to cancellation nor drift over 131072 rows. */
static void bn_large_batch_matches_oracle(void)
{
    run_oracle_case("large batch", 128 * 32 * 32, 16, 50.0f);
}

/* 150 channels: three reduction tiles (64, 64, 22), and enough rows to use two threads. */
static void bn_many_channels_matches_oracle(void)
{
    run_oracle_case("many channels", 701, 150, -3.0f);
}

/* dx == NULL (input needs no gradient) still gives dgamma / dbeta, bit for bit; gamma == NULL
 * and beta == NULL act as 1 and 0. */
static void bn_optional_pointers(void)
{
    const int64_t M = 701;
    const int C = 19;
    oc_rng r;
    float *x = alloc_f(M * C), *g = alloc_f(M * C), *y1 = alloc_f(M * C), *y2 = alloc_f(M * C);
    float *dx = alloc_f(M * C), *ones = alloc_f(C), *zeros = alloc_f(C), *mean = alloc_f(C),
          *invstd = alloc_f(C), *dg1 = alloc_f(C), *db1 = alloc_f(C), *dg2 = alloc_f(C),
          *db2 = alloc_f(C);
    oc_rng_seed(&r, 21, 0);
    for (int64_t i = 0; i < M * C; i++) {
        x[i] = oc_rng_normal(&r);
        g[i] = oc_rng_normal(&r);
    }
    for (int c = 0; c < C; c++)
        ones[c] = 1.0f;
    oc_batchnorm_fwd_train(M, C, x, ones, zeros, 1e-5f, 0.1f, NULL, NULL, mean, invstd, y1);
    oc_batchnorm_fwd_train(M, C, x, NULL, NULL, 1e-5f, 0.1f, NULL, NULL, mean, invstd, y2);
    T_CHECK(memcmp(y1, y2, (size_t)(M * C) * sizeof(float)) == 0, "NULL gamma/beta differ");
    oc_batchnorm_bwd(M, C, x, ones, mean, invstd, g, dx, dg1, db1);
    oc_batchnorm_bwd(M, C, x, NULL, mean, invstd, g, NULL, dg2, db2);
    T_CHECK(memcmp(dg1, dg2, (size_t)C * sizeof(float)) == 0 &&
                memcmp(db1, db2, (size_t)C * sizeof(float)) == 0,
            "dgamma / dbeta depend on dx being wanted");
    oc_batchnorm_bwd(M, C, x, ones, mean, invstd, g, dx, NULL, NULL);
    free(x), free(g), free(y1), free(y2), free(dx), free(ones), free(zeros), free(mean);
    free(invstd), free(dg1), free(db1), free(dg2), free(db2);
}

/* The fused batch norm + activation against batch norm, then oc_act_fwd / oc_act_bwd: the same
 * bits (forward output, running statistics, dx accumulated onto a non-zero dx, dgamma, dbeta,
 * the output rebuilt by oc_batchnorm_act_apply, dx set by oc_batchnorm_act_bwd_set), for
 * ReLU, ReLU6 and GELU (backward from x alone, its output never passed), with 1 and 2 threads, over
 * channel counts that take the 16-wide, generic
 * and chunked (> 1024 channels) loops. x is scaled so the normalised values cross 0 and 6, and
 * two constant channels land exactly on 0 and on 6. */
static void bn_act_fused_matches_separate(void)
{
    static const struct { int64_t M; int C; } shapes[] = {{4096, 16}, {701, 150}, {37, 1100}};
    static const oc_act acts[] = {OC_ACT_RELU, OC_ACT_RELU6, OC_ACT_GELU};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t ai = 0; ai < 3; ai++)
            for (int threads = 1; threads <= 2; threads++) {
                const int64_t M = shapes[si].M, n = M * shapes[si].C;
                const int C = shapes[si].C;
                const oc_act act = acts[ai];
                oc_rng r;
                float *x = alloc_f(n), *g = alloc_f(n), *t = alloc_f(n), *y1 = alloc_f(n);
                float *y2 = alloc_f(n), *dt = alloc_f(n), *dx1 = alloc_f(n), *dx2 = alloc_f(n);
                float *gamma = alloc_f(C), *beta = alloc_f(C), *rm1 = alloc_f(C);
                float *rv1 = alloc_f(C), *rm2 = alloc_f(C), *rv2 = alloc_f(C);
                float *mean = alloc_f(C), *inv = alloc_f(C), *mean2 = alloc_f(C);
                float *inv2 = alloc_f(C), *dg1 = alloc_f(C), *db1 = alloc_f(C);
                float *dg2 = alloc_f(C), *db2 = alloc_f(C);
                oc_rng_seed(&r, 77 + si, (uint64_t)ai);
                for (int c = 0; c < C; c++) {
                    gamma[c] = 3.0f * oc_rng_normal(&r);
                    beta[c] = 2.0f * oc_rng_normal(&r);
                    rm1[c] = rm2[c] = 0.1f * (float)c;
                    rv1[c] = rv2[c] = 1.0f + 0.01f * (float)c;
                }
                /* constant channels normalise to exactly beta: 0 (ReLU's edge) and 6 (ReLU6's) */
                beta[3] = 0.0f;
                beta[5] = 6.0f;
                for (int64_t i = 0; i < n; i++) {
                    x[i] = i % C == 3 ? 1.5f : i % C == 5 ? -2.25f : oc_rng_normal(&r);
                    g[i] = oc_rng_normal(&r);
                    dx1[i] = dx2[i] = 0.25f * oc_rng_normal(&r);
                }
                oc_set_threads(threads);
                /* separate: bn -> t, act(t) -> y1; backward act into dt (zeroed), bn into dx1 */
                oc_batchnorm_fwd_train(M, C, x, gamma, beta, 1e-5f, 0.1f, rm1, rv1, mean, inv, t);
                oc_act_fwd(act, 0.0f, n, t, y1);
                memset(dt, 0, (size_t)n * sizeof(float));
                oc_act_bwd(act, 0.0f, n, t, g, dt);
                oc_batchnorm_bwd(M, C, x, gamma, mean, inv, dt, dx1, dg1, db1);
                /* fused */
                oc_batchnorm_act_fwd_train(M, C, x, gamma, beta, 1e-5f, 0.1f, rm2, rv2, mean2,
                                           inv2, act, y2);
                oc_batchnorm_act_bwd(M, C, x, gamma, beta, mean2, inv2, act, g, dx2, dg2, db2);
                T_CHECK(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0,
                        "M=%lld C=%d act %d threads %d: fused forward differs", (long long)M, C,
                        (int)act, threads);
                T_CHECK(memcmp(rm1, rm2, (size_t)C * sizeof(float)) == 0 &&
                            memcmp(rv1, rv2, (size_t)C * sizeof(float)) == 0,
                        "C=%d: running statistics differ", C);
                T_CHECK(memcmp(dx1, dx2, (size_t)n * sizeof(float)) == 0,
                        "M=%lld C=%d act %d threads %d: fused dx differs", (long long)M, C,
                        (int)act, threads);
                T_CHECK(memcmp(dg1, dg2, (size_t)C * sizeof(float)) == 0 &&
                            memcmp(db1, db2, (size_t)C * sizeof(float)) == 0,
                        "C=%d act %d: fused dgamma / dbeta differ", C, (int)act);
                /* dx written rather than accumulated: the bits of accumulating onto zeros,
                 * without reading dx (NaN there) */
                memset(dt, 0, (size_t)n * sizeof(float));
                oc_batchnorm_act_bwd(M, C, x, gamma, beta, mean2, inv2, act, g, dt, NULL, NULL);
                for (int64_t i = 0; i < n; i++)
                    y1[i] = NAN;
                oc_batchnorm_act_bwd_set(M, C, x, gamma, beta, mean2, inv2, act, g, y1, NULL, NULL);
                T_CHECK(memcmp(dt, y1, (size_t)n * sizeof(float)) == 0,
                        "M=%lld C=%d act %d threads %d: dx set differs from dx added to zeros",
                        (long long)M, C, (int)act, threads);
                /* rebuilt from the saved statistics, as a training plan does for backward,
                 * also with the other thread count: the forward's bits */
                oc_set_threads(3 - threads);
                oc_batchnorm_act_apply(M, C, x, gamma, beta, mean2, inv2, act, dt);
                T_CHECK(memcmp(dt, y2, (size_t)n * sizeof(float)) == 0,
                        "M=%lld C=%d act %d: rebuilt fused output differs", (long long)M, C,
                        (int)act);
                oc_batchnorm_act_apply(M, C, x, gamma, beta, mean, inv, OC_ACT_IDENTITY, dt);
                T_CHECK(memcmp(dt, t, (size_t)n * sizeof(float)) == 0,
                        "M=%lld C=%d: rebuilt batch norm output differs", (long long)M, C);
                oc_set_threads(threads);
                /* inference, in place as the planner may run it */
                oc_batchnorm_fwd_infer(M, C, x, gamma, beta, rm1, rv1, 1e-5f, t);
                oc_act_fwd(act, 0.0f, n, t, y1);
                memcpy(y2, x, (size_t)n * sizeof(float));
                oc_batchnorm_act_fwd_infer(M, C, y2, gamma, beta, rm1, rv1, 1e-5f, act, y2);
                T_CHECK(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0,
                        "C=%d act %d: fused inference differs", C, (int)act);
                free(x), free(g), free(t), free(y1), free(y2), free(dt), free(dx1), free(dx2);
                free(gamma), free(beta), free(rm1), free(rv1), free(rm2), free(rv2), free(mean);
                free(inv), free(mean2), free(inv2), free(dg1), free(db1), free(dg2), free(db2);
            }
    oc_set_threads(0);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"bn_train_gradcheck", bn_train_gradcheck},
        {"bn_matches_torch", bn_matches_torch},
        {"bn_large_batch_matches_oracle", bn_large_batch_matches_oracle},
        {"bn_many_channels_matches_oracle", bn_many_channels_matches_oracle},
        {"bn_optional_pointers", bn_optional_pointers},
        {"bn_act_fused_matches_separate", bn_act_fused_matches_separate},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
