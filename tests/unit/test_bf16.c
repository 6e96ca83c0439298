/* bf16 arithmetic: the rounding, the bf16 GEMM against its reference on bf16-rounded inputs,
 * oc_gemm and the conv / dense kernels in bf16 math mode against the fp32 scalar oracles, the
 * model-level precision switch, and a short training run in bf16 against fp32.
 *
 * Error bounds. oc_gemm_bf16_ref rounds the operands exactly as the kernel does and sums the
 * (exact) products in double, so the kernel differs from it only by its fp32 sums: the
 * recursive-summation bound of test_gemm.c, (K + 4) u32 * sum |a~||b~| (+ the beta term).
 * Against the fp32 oracles, the operands' rounding adds at most 2 u16 + u16^2 (u16 = 2^-8,
 * bf16's unit roundoff) relative to each product: tolerance (2^-7 + 2^-15 + (K + 4) u32) times
 * the sum of |products|, computed by the oracle itself on |x|, |w|. Each check also requires
 * that the largest error exceed the fp32 bound somewhere, so a path that quietly stayed fp32
 * fails. */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"
#include "ops/gemm_bf16.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U_F32 5.9604644775390625e-8 /* 2^-24 */
#define BF16_PRODUCT_REL (1.0 / 128 + 1.0 / 32768) /* 2 u16 + u16^2 */

static void fill(oc_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * oc_rng_uniform(r) - 1.0f;
}

/* A copy of x[0..n) with f applied to each value. */
static float *map_copy(const float *x, size_t n, float (*f)(float))
{
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = f(x[i]);
    return a;
}

static float abs_value(float v)
{
    return fabsf(v);
}

static float *fabs_copy(const float *x, size_t n)
{
    return map_copy(x, n, abs_value);
}

static void rounding(void)
{
    /* bf16 keeps 8 significant bits: at 1.0 its ulp is 2^-7 */
    T_CHECK(oc_bf16_round(1.0f) == 1.0f, "1.0 is exact");
    T_CHECK(oc_bf16_round(1.0f + 0x1p-8f) == 1.0f, "a tie rounds to even (down)");
    T_CHECK(oc_bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f, "a tie rounds to even (up)");
    T_CHECK(oc_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f, "above a tie rounds up");
    T_CHECK(oc_bf16_round(-3.0f) == -3.0f, "sign kept");
    T_CHECK(isinf(oc_bf16_round(INFINITY)) && oc_bf16_round(-INFINITY) < 0, "inf stays inf");
    T_CHECK(isnan(oc_bf16_round(NAN)), "NaN stays NaN");
    T_CHECK(isinf(oc_bf16_round(3.4e38f)), "the largest floats round up to inf");
}

typedef struct {
    int M, N, K;
} shape3;

/* Around the tile (14 x 32, pairs of k), the blocks (512 k, 336 rows) and the K split (long
 * K with 2 threads); odd K everywhere so the zero-padded last pair is exercised. */
static const shape3 shapes[] = {
    {1, 1, 1},     {1, 1, 2},      {3, 5, 7},     {14, 32, 64},  {15, 33, 65},  {13, 17, 31},
    {29, 16, 101}, {61, 97, 127},  {100, 200, 513}, {341, 40, 30}, {45, 3, 1025}, {7, 47, 257},
    {16, 40, 2001}, {20, 9, 4001}, {3, 3103, 5},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

/* One product, checked three ways: against the bf16 reference (tight), bitwise unchanged past
 * column N, and (returned) the worst error in units of the fp32 bound against fp32 math. */
static double check_gemm(oc_rng *r, int ta, int tb, shape3 s, int pad, float alpha, float beta,
                         const char *what)
{
    int a_rows = ta ? s.K : s.M, a_cols = ta ? s.M : s.K;
    int b_rows = tb ? s.N : s.K, b_cols = tb ? s.K : s.N;
    int lda = a_cols + pad, ldb = b_cols + 2 * pad, ldc = s.N + pad;
    size_t na = (size_t)a_rows * lda, nb = (size_t)b_rows * ldb, nc = (size_t)s.M * ldc;
    float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
    float *C0 = malloc(nc * sizeof *C0), *C = malloc(nc * sizeof *C), *ref = malloc(nc * sizeof *C);
    float *f32 = malloc(nc * sizeof *C);
    double worst_f32 = 0;
    int bad = 0;
    fill(r, A, na);
    fill(r, B, nb);
    fill(r, C0, nc);
    memcpy(C, C0, nc * sizeof *C);
    memcpy(ref, C0, nc * sizeof *C);
    memcpy(f32, C0, nc * sizeof *C);
    oc_gemm_bf16(ta, tb, s.M, s.N, s.K, alpha, A, lda, B, ldb, beta, C, ldc);
    oc_gemm_bf16_ref(ta, tb, s.M, s.N, s.K, alpha, A, lda, B, ldb, beta, ref, ldc);
    oc_gemm_ref(ta, tb, s.M, s.N, s.K, alpha, A, lda, B, ldb, beta, f32, ldc);
    for (int i = 0; i < s.M && !bad; i++)
        for (int j = 0; j < ldc; j++) {
            size_t at = (size_t)i * ldc + j;
            double mag = 0, err, tol;
            if (j >= s.N) {
                if (memcmp(&C[at], &C0[at], sizeof *C)) {
                    T_CHECK(0, "%s: wrote C[%d][%d] past N=%d", what, i, j, s.N);
                    bad = 1;
                    break;
                }
                continue;
            }
            for (int k = 0; k < s.K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                mag += fabs((double)oc_bf16_round(a) * (double)oc_bf16_round(b));
            }
            mag = mag * fabs((double)alpha) + fabs((double)beta * (double)C0[at]);
            err = fabs((double)C[at] - (double)ref[at]);
            tol = (s.K + 4) * U_F32 * mag + 1e-30;
            if (!(err <= tol)) {
                T_CHECK(0, "%s: C[%d][%d] = %.9g, bf16 ref %.9g, |err| %.3g > tol %.3g", what, i,
                        j, (double)C[at], (double)ref[at], err, tol);
                bad = 1;
                break;
            }
            if (mag > 0) {
                double e32 = fabs((double)C[at] - (double)f32[at]) / ((s.K + 4) * U_F32 * mag);
                worst_f32 = e32 > worst_f32 ? e32 : worst_f32;
            }
        }
    free(A);
    free(B);
    free(C0);
    free(C);
    free(ref);
    free(f32);
    return worst_f32;
}

static void gemm_matches_bf16_ref(void)
{
    static const float ab[][2] = {{1.0f, 0.0f}, {-1.5f, 0.75f}, {0.5f, 1.0f}};
    oc_rng r;
    char what[128];
    double worst_f32 = 0;
    int saved = oc_get_threads();
    if (!oc_bf16_supported())
        oc_test_note("no AVX512_BF16: testing the portable bf16 loops");
    oc_rng_seed(&r, 42, 0);
    for (int threads = 1; threads <= 2; threads++) {
        oc_set_threads(threads);
        for (int si = 0; si < N_SHAPES; si++)
            for (int t = 0; t < 4; t++) {
                const float *sc = ab[(si + t) % 3];
                snprintf(what, sizeof what, "%dx%dx%d ta=%d tb=%d alpha=%g beta=%g threads=%d",
                         shapes[si].M, shapes[si].N, shapes[si].K, t >> 1, t & 1,
                         (double)sc[0], (double)sc[1], threads);
                double w = check_gemm(&r, t >> 1, t & 1, shapes[si], (si + t) % 3, sc[0],
                                      sc[1], what);
                worst_f32 = w > worst_f32 ? w : worst_f32;
            }
    }
    oc_set_threads(saved);
    /* the same products in fp32 agree to (K+4) u32; bf16 operands must not */
    T_CHECK(worst_f32 > 1.0, "bf16 GEMM agrees with fp32 math to %.3g of the fp32 bound: were "
                             "the operands rounded at all?", worst_f32);
    oc_test_note("worst |bf16 - fp32| = %.0f x the fp32 error bound", worst_f32);
}

/* The same product is bitwise identical for a given thread count, and oc_gemm in bf16 math
 * mode is oc_gemm_bf16; the mode is per thread and oc_math_set returns the previous one. */
static void gemm_dispatch_and_determinism(void)
{
    const int M = 67, N = 45, K = 333;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
    oc_rng r;
    oc_rng_seed(&r, 7, 0);
    fill(&r, A, (size_t)M * K);
    fill(&r, B, (size_t)K * N);
    oc_gemm_bf16(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    oc_gemm_bf16(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    T_CHECK(!memcmp(C1, C2, sizeof(float) * M * N), "two identical calls differ");
    T_CHECK(oc_math_get() == OC_MATH_F32, "the default math mode is fp32");
    T_CHECK(oc_math_set(OC_MATH_BF16) == OC_MATH_F32, "oc_math_set returns the previous mode");
    oc_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    T_CHECK(oc_math_set(OC_MATH_F32) == OC_MATH_BF16, "oc_math_set returns the previous mode");
    if (oc_bf16_supported())
        T_CHECK(!memcmp(C1, C2, sizeof(float) * M * N), "oc_gemm in bf16 mode != oc_gemm_bf16");
    oc_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    T_CHECK(memcmp(C1, C2, sizeof(float) * M * N) != 0, "oc_gemm in fp32 mode ran bf16");
    free(A);
    free(B);
    free(C1);
    free(C2);
}

/* oc_gemm_bf16_pre with B packed once, and A as floats or as pair rows, is bitwise
 * oc_gemm_bf16: odd K, a 16-column edge panel, K cut between the threads, beta 0 and 1. */
static void gemm_pre_is_gemm_bf16(void)
{
    static const struct { int M, N, K; } pre_shapes[] = {
        {67, 45, 333}, {37, 16, 1100}, {29, 70, 2305}, {100, 8, 31}, {5, 33, 1}};
    int saved = oc_get_threads(), checked = 0;
    if (!oc_bf16_supported()) {
        oc_test_note("no AVX512_BF16: pre-packed operands are not used");
        return;
    }
    for (int threads = 1; threads <= 2; threads++) {
        oc_set_threads(threads);
        for (size_t si = 0; si < sizeof pre_shapes / sizeof pre_shapes[0]; si++)
            for (int tb = 0; tb <= 1; tb++)
                for (int beta = 0; beta <= 1; beta++) {
                    const int M = pre_shapes[si].M, N = pre_shapes[si].N, K = pre_shapes[si].K;
                    const int ldb = tb ? K : N, words = (K + 1) / 2;
                    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
                    float *C3 = malloc(sizeof(float) * M * N);
                    uint32_t *ar = malloc(sizeof(uint32_t) * M * words);
                    void *bp = oc_alloc(oc_gemm_bf16_b_bytes(N, K));
                    oc_rng r;
                    oc_rng_seed(&r, 11 + si, 0);
                    fill(&r, A, (size_t)M * K);
                    fill(&r, B, (size_t)K * N);
                    fill(&r, C1, (size_t)M * N);
                    memcpy(C2, C1, sizeof(float) * M * N);
                    memcpy(C3, C1, sizeof(float) * M * N);
                    for (int i = 0; i < M; i++)
                        oc_bf16_pack_row(A + (size_t)i * K, K, ar + (size_t)i * words);
                    oc_gemm_bf16(0, tb, M, N, K, 0.75f, A, K, B, ldb, (float)beta, C1, N);
                    oc_gemm_bf16_pack_b(tb, N, K, B, ldb, bp);
                    oc_gemm_bf16_pre(0, M, N, K, 0.75f, NULL, 0, A, K, bp, B, ldb, tb, (float)beta,
                                     C2, N);
                    oc_gemm_bf16_pre(0, M, N, K, 0.75f, ar, words, NULL, 0, bp, B, ldb, tb,
                                     (float)beta, C3, N);
                    T_CHECK(!memcmp(C1, C2, sizeof(float) * M * N),
                            "%dx%dx%d transb %d beta %d threads %d: packed B differs", M, N, K,
                            tb, beta, threads);
                    T_CHECK(!memcmp(C1, C3, sizeof(float) * M * N),
                            "%dx%dx%d transb %d beta %d threads %d: A rows differ", M, N, K, tb,
                            beta, threads);
                    checked++;
                    free(A), free(B), free(C1), free(C2), free(C3), free(ar);
                    oc_free(bp);
                }
    }
    oc_set_threads(saved);
    T_CHECK(checked == 40, "ran %d of 40 products", checked);
}

void oc_gemm_bf16_deny_scratch(int deny); /* gemm_bf16.c's test hook */

/* A B packed row pair by row pair (oc_gemm_bf16_pack_b_pair, as the backward-weights im2col
 * writes it) is byte for byte oc_gemm_bf16_pack_b's, odd K and a 16-wide edge panel included;
 * and where the packing scratch cannot be had, a product on such a B with no floats of B left
 * (the portable loops reading the packed pairs) is bitwise the portable loops on the floats. */
static void packed_b_by_pairs_and_without_scratch(void)
{
    static const struct { int M, N, K; } pb_shapes[] = {{9, 45, 7}, {20, 70, 64}, {3, 16, 1}};
    if (!oc_bf16_supported()) {
        oc_test_note("no AVX512_BF16: pre-packed operands are not used");
        return;
    }
    for (size_t si = 0; si < sizeof pb_shapes / sizeof pb_shapes[0]; si++)
        for (int ta = 0; ta <= 1; ta++) {
            const int M = pb_shapes[si].M, N = pb_shapes[si].N, K = pb_shapes[si].K;
            const size_t bytes = oc_gemm_bf16_b_bytes(N, K);
            float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
            float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
            void *bp = oc_alloc(bytes), *bq = oc_alloc(bytes);
            oc_rng r;
            oc_rng_seed(&r, 60 + si, 0);
            fill(&r, A, (size_t)M * K);
            fill(&r, B, (size_t)K * N);
            fill(&r, C1, (size_t)M * N);
            memcpy(C2, C1, sizeof(float) * M * N);
            memset(bp, 0xAB, bytes);
            memset(bq, 0xCD, bytes);
            oc_gemm_bf16_pack_b(0, N, K, B, N, bp);
            for (int kp = 0; kp < (K + 1) / 2; kp++)
                oc_gemm_bf16_pack_b_pair(B + (size_t)2 * kp * N,
                                         2 * kp + 1 < K ? B + (size_t)(2 * kp + 1) * N : NULL, N,
                                         K, kp, bq);
            /* the bytes the kernels read: each panel's pairs at its own width */
            for (int j0 = 0; j0 < N; j0 += OC_BF16_NR) {
                int ds = N - j0 >= OC_BF16_NR ? OC_BF16_NR : (N - j0 + 15) & ~15;
                size_t at = (size_t)j0 * ((K + 1) / 2) * sizeof(uint32_t);
                T_CHECK(!memcmp((char *)bp + at, (char *)bq + at,
                                (size_t)ds * ((K + 1) / 2) * sizeof(uint32_t)),
                        "%dx%d: pair packing differs from oc_gemm_bf16_pack_b at column %d", K,
                        N, j0);
            }
            oc_gemm_bf16_deny_scratch(1);
            oc_gemm_bf16(ta, 0, M, N, K, 0.5f, A, ta ? M : K, B, N, 1.0f, C1, N);
            oc_gemm_bf16_pre(ta, M, N, K, 0.5f, NULL, 0, A, ta ? M : K, bq, NULL, 0, 0, 1.0f, C2,
                             N);
            oc_gemm_bf16_deny_scratch(0);
            T_CHECK(!memcmp(C1, C2, sizeof(float) * M * N),
                    "%dx%dx%d transa %d: packed-B fallback differs from the portable loops", M, N,
                    K, ta);
            free(A), free(B), free(C1), free(C2);
            oc_free(bp);
            oc_free(bq);
        }
}

/* ---------------------------------------------------------------- conv and dense */

void oc_conv2d_allow_prepack(int allow); /* conv2d.c's test hook */

/* bf16 convolutions through weights packed once per call and bf16 im2col rows (forward, fused
 * inference forward, backward-data, backward-weights) give the bits of the per-chunk oc_gemm
 * path they replace: odd R*S*C, stride 2, no padding, dilation (the 3x3 stride-1 pad-1 shapes
 * take the direct kernels instead), bias, several im2col chunks, 1 and 2 threads. */
static void conv_bf16_pre_is_plain(void)
{
    static const oc_conv_shape conv_shapes[] = {
        /* N, H, W, C, K, R, S, P, Q, stride, pad, dil, groups */
        {2, 9, 9, 64, 72, 3, 3, 0, 0, 1, 1, 2, 2, 2, 2, 1},
        {3, 11, 9, 24, 70, 3, 3, 0, 0, 2, 2, 1, 1, 1, 1, 1},
        {2, 8, 10, 5, 33, 3, 3, 0, 0, 1, 1, 0, 1, 1, 1, 1},
        {40, 9, 9, 128, 40, 3, 3, 0, 0, 1, 1, 0, 0, 1, 1, 1},
    };
    int saved = oc_get_threads();
    if (!oc_bf16_supported()) {
        oc_test_note("no AVX512_BF16: the pre-packed path is not used");
        return;
    }
    for (int threads = 1; threads <= 2; threads++) {
        oc_set_threads(threads);
        for (size_t ci = 0; ci < sizeof conv_shapes / sizeof conv_shapes[0]; ci++) {
            oc_conv_shape s = conv_shapes[ci];
            T_CHECK(oc_conv_shape_init(&s) == 0, "case %zu: bad shape", ci);
            const int64_t nx = (int64_t)s.N * s.H * s.W * s.C;
            const int64_t ny = (int64_t)s.N * s.P * s.Q * s.K;
            const int64_t nw = (int64_t)s.K * s.R * s.S * s.C;
            size_t wsb = oc_conv2d_fwd_workspace(&s), b2 = oc_conv2d_bwd_data_workspace(&s);
            size_t b3 = oc_conv2d_bwd_weights_workspace(&s);
            float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w);
            float *dy = malloc(ny * sizeof *dy), *b = malloc(s.K * sizeof *b);
            float *y1 = malloc(ny * sizeof *y1), *y2 = malloc(ny * sizeof *y2);
            float *dx1 = malloc(nx * sizeof *dx1), *dx2 = malloc(nx * sizeof *dx2);
            float *dw1 = malloc(nw * sizeof *dw1), *dw2 = malloc(nw * sizeof *dw2);
            float *db1 = malloc(s.K * sizeof *db1), *db2 = malloc(s.K * sizeof *db2);
            float *f1 = malloc(ny * sizeof *f1), *f2 = malloc(ny * sizeof *f2);
            float *sc = malloc(s.K * sizeof *sc), *sh = malloc(s.K * sizeof *sh);
            oc_conv_epilogue e = {b, sc, sh, NULL, OC_ACT_RELU, 0.0f, NULL};
            void *ws;
            oc_rng r;
            wsb = b2 > wsb ? b2 : wsb;
            ws = oc_alloc(b3 > wsb ? b3 : wsb);
            oc_rng_seed(&r, 300 + ci, 0);
            fill(&r, x, nx);
            fill(&r, w, nw);
            fill(&r, dy, ny);
            fill(&r, b, s.K);
            fill(&r, dx1, nx);
            memcpy(dx2, dx1, nx * sizeof *dx1);
            fill(&r, dw1, nw);
            memcpy(dw2, dw1, nw * sizeof *dw1);
            fill(&r, db1, s.K);
            memcpy(db2, db1, s.K * sizeof *db1);
            fill(&r, sc, s.K);
            fill(&r, sh, s.K);
            oc_math_set(OC_MATH_BF16);
            oc_conv2d_fwd(&s, x, w, b, y1, ws);
            oc_conv2d_bwd_data(&s, dy, w, dx1, ws);
            oc_conv2d_bwd_weights(&s, x, dy, dw1, db1, ws);
            oc_conv2d_fwd_fused(&s, x, w, &e, f1, ws);
            oc_conv2d_allow_prepack(0);
            oc_conv2d_fwd(&s, x, w, b, y2, ws);
            oc_conv2d_bwd_data(&s, dy, w, dx2, ws);
            oc_conv2d_bwd_weights(&s, x, dy, dw2, db2, ws);
            oc_conv2d_fwd_fused(&s, x, w, &e, f2, ws);
            oc_conv2d_allow_prepack(1);
            oc_math_set(OC_MATH_F32);
            T_CHECK(!memcmp(y1, y2, ny * sizeof *y1), "case %zu, threads %d: forward differs",
                    ci, threads);
            T_CHECK(!memcmp(dx1, dx2, nx * sizeof *dx1),
                    "case %zu, threads %d: backward-data differs", ci, threads);
            T_CHECK(!memcmp(dw1, dw2, nw * sizeof *dw1) && !memcmp(db1, db2, s.K * sizeof *db1),
                    "case %zu, threads %d: backward-weights differs", ci, threads);
            T_CHECK(!memcmp(f1, f2, ny * sizeof *f1), "case %zu, threads %d: fused forward differs",
                    ci, threads);
            free(x), free(w), free(dy), free(b), free(y1), free(y2), free(dx1), free(dx2);
            free(dw1), free(dw2), free(db1), free(db2), free(f1), free(f2), free(sc), free(sh);
            oc_free(ws);
        }
    }
    oc_set_threads(saved);
}

/* |got - ref| <= (BF16_PRODUCT_REL + (terms + 4) u32) * mag elementwise; returns the worst
 * error in units of the fp32 bound (terms + 4) u32 * mag. */
static double check_bf16(const char *what, const float *got, const float *ref, const float *mag,
                         int64_t n, int64_t terms)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)ref[i]);
        double b32 = (terms + 4) * U_F32 * (double)mag[i] + 1e-30;
        double tol = BF16_PRODUCT_REL * (double)mag[i] + b32;
        if (!(err <= tol)) {
            T_CHECK(0, "%s: [%lld] = %.9g, fp32 ref %.9g, |err| %.3g > tol %.3g", what,
                    (long long)i, (double)got[i], (double)ref[i], err, tol);
            return -1;
        }
        worst = err / b32 > worst ? err / b32 : worst;
    }
    return worst;
}

void oc_conv2d_d3b_span_bytes(size_t bytes); /* conv2d.c's test hook */

/* got within the fp32 summation bound (terms + 4) u32 * mag of ref, elementwise. */
static int within_f32(const char *what, const float *got, const float *ref, const float *mag,
                      int64_t n, int64_t terms)
{
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)ref[i]);
        double tol = (terms + 4) * U_F32 * (double)mag[i] + 1e-30;
        if (!(err <= tol)) {
            T_CHECK(0, "%s: [%lld] = %.9g, ref %.9g, |err| %.3g > tol %.3g", what, (long long)i,
                    (double)got[i], (double)ref[i], err, tol);
            return 0;
        }
    }
    return 1;
}

static float *rounded_copy(const float *x, size_t n)
{
    return map_copy(x, n, oc_bf16_round);
}

/* The direct 3x3 kernels in bf16 math (vdpbf16ps on channel pairs, and on image pairs for the
 * weight gradient) compute the products of the bf16-rounded operands with fp32 sums: each pass
 * agrees with the fp32 oracle run on rounded x, w and dy to within the fp32 summation bound,
 * far tighter than the bf16 one (and it must differ from the oracle on the unrounded inputs by
 * more than that bound somewhere). Forward and backward-data give the same bits for 1 and 2
 * threads (tasks rounding different rows) and any span of image pairs; backward-weights the
 * same bits for 1 and 2 threads at a given span (which groups its sums: down to one pair).
 * Odd channel counts (a pair's zero half), odd batches (a zero image in the last pair), every
 * tile width (7, 15, 33 columns), two input chunks (130 channels), set and accumulated input
 * gradients; the fused forward (bias, batch norm affine, residual, ReLU) is the plain forward
 * then the epilogue, bit for bit. */
static void conv_bf16_direct_is_rounded_products(void)
{
    static const oc_conv_shape d3_shapes[] = {
        /* N, H, W, C, K, R, S, P, Q, stride, pad, dil, groups */
        {5, 7, 7, 24, 64, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 1},
        {4, 6, 15, 13, 40, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 1},
        {3, 5, 33, 32, 17, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 1},
        {2, 5, 9, 130, 20, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 1},
    };
    int saved = oc_get_threads();
    double worst_unrounded = 0;
    if (!oc_bf16_supported()) {
        oc_test_note("no AVX512_BF16: bf16 math takes the fp32 direct kernel or im2col");
        return;
    }
    for (size_t ci = 0; ci < sizeof d3_shapes / sizeof d3_shapes[0]; ci++) {
        oc_conv_shape s = d3_shapes[ci];
        T_CHECK(oc_conv_shape_init(&s) == 0, "case %zu: bad shape", ci);
        const int64_t nx = (int64_t)s.N * s.H * s.W * s.C, ny = (int64_t)s.N * s.P * s.Q * s.K;
        const int64_t nw = (int64_t)s.K * 9 * s.C;
        size_t wsb = oc_conv2d_fwd_workspace(&s), b2 = oc_conv2d_bwd_data_workspace(&s);
        size_t b3 = oc_conv2d_bwd_weights_workspace(&s);
        float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w);
        float *dy = malloc(ny * sizeof *dy), *y[4], *dx[4], *dw[4];
        float *yr = malloc(ny * sizeof *yr), *my = malloc(ny * sizeof *my);
        float *dxr = calloc(nx, sizeof *dxr), *mdx = calloc(nx, sizeof *mdx);
        float *dwr = calloc(nw, sizeof *dwr), *mdw = calloc(nw, sizeof *mdw);
        float *dxs = malloc(nx * sizeof *dxs), *yu = malloc(ny * sizeof *yu);
        float *yf = malloc(ny * sizeof *yf), *res = malloc(ny * sizeof *res);
        float *pre = malloc(s.K * sizeof *pre), *sc = malloc(s.K * sizeof *sc);
        float *sh = malloc(s.K * sizeof *sh);
        float *rx, *rw, *rdy, *ax, *aw, *ady;
        void *ws;
        oc_rng r;
        char what[96];
        wsb = b2 > wsb ? b2 : wsb;
        ws = oc_alloc(b3 > wsb ? b3 : wsb);
        oc_rng_seed(&r, 700 + ci, 0);
        fill(&r, x, nx);
        fill(&r, w, nw);
        fill(&r, dy, ny);
        fill(&r, res, ny);
        fill(&r, pre, s.K);
        fill(&r, sc, s.K);
        fill(&r, sh, s.K);
        rx = rounded_copy(x, nx), rw = rounded_copy(w, nw), rdy = rounded_copy(dy, ny);
        ax = fabs_copy(rx, nx), aw = fabs_copy(rw, nw), ady = fabs_copy(rdy, ny);
        /* runs: (1 thread, 2 threads) x (default spans, one image pair a span) */
        for (int run = 0; run < 4; run++) {
            y[run] = malloc(ny * sizeof *y[run]);
            dx[run] = calloc(nx, sizeof *dx[run]);
            dw[run] = calloc(nw, sizeof *dw[run]);
            oc_set_threads(1 + run % 2);
            oc_conv2d_d3b_span_bytes(run < 2 ? 0 : 1);
            oc_math_set(OC_MATH_BF16);
            oc_conv2d_fwd(&s, x, w, NULL, y[run], ws);
            oc_conv2d_bwd_data(&s, dy, w, dx[run], ws);
            oc_conv2d_bwd_weights(&s, x, dy, dw[run], NULL, ws);
            oc_math_set(OC_MATH_F32);
        }
        oc_conv2d_d3b_span_bytes(0);
        /* the set form: the bits of adding to zeros, whatever dx held */
        for (int64_t i = 0; i < nx; i++)
            dxs[i] = NAN;
        oc_math_set(OC_MATH_BF16);
        oc_conv2d_bwd_data_set(&s, dy, w, dxs, ws);
        {
            oc_conv_epilogue e = {pre, sc, sh, res, OC_ACT_RELU, 0.0f, NULL};
            oc_conv2d_fwd_fused(&s, x, w, &e, yf, ws);
            oc_math_set(OC_MATH_F32);
            oc_conv_epilogue_apply(&e, 0, (int64_t)s.N * s.P * s.Q, 0, s.K, s.K, y[0]);
            T_CHECK(!memcmp(yf, y[0], ny * sizeof *yf), "case %zu: fused forward bits", ci);
        }
        oc_conv2d_fwd_ref(&s, rx, rw, NULL, yr);
        oc_conv2d_fwd_ref(&s, ax, aw, NULL, my);
        oc_conv2d_fwd_ref(&s, x, w, NULL, yu);
        oc_conv2d_bwd_data_ref(&s, rdy, rw, dxr);
        oc_conv2d_bwd_data_ref(&s, ady, aw, mdx);
        oc_conv2d_bwd_weights_ref(&s, rx, rdy, dwr, NULL);
        oc_conv2d_bwd_weights_ref(&s, ax, ady, mdw, NULL);
        snprintf(what, sizeof what, "case %zu forward", ci);
        within_f32(what, y[1], yr, my, ny, 9 * s.C);
        snprintf(what, sizeof what, "case %zu backward-data", ci);
        within_f32(what, dx[0], dxr, mdx, nx, 9 * s.K);
        snprintf(what, sizeof what, "case %zu backward-weights", ci);
        within_f32(what, dw[0], dwr, mdw, nw, (int64_t)s.N * s.P * s.Q);
        snprintf(what, sizeof what, "case %zu backward-weights, one image pair a span", ci);
        within_f32(what, dw[2], dwr, mdw, nw, (int64_t)s.N * s.P * s.Q);
        for (int run = 2; run < 4; run++) /* y[0] now holds the epilogue's result */
            T_CHECK(!memcmp(y[run], y[1], ny * sizeof *y[1]), "case %zu run %d: forward bits",
                    ci, run);
        for (int run = 1; run < 4; run++) {
            T_CHECK(!memcmp(dx[run], dx[0], nx * sizeof *dx[0]),
                    "case %zu run %d: backward-data bits", ci, run);
        }
        T_CHECK(!memcmp(dw[1], dw[0], nw * sizeof *dw[0]) &&
                    !memcmp(dw[3], dw[2], nw * sizeof *dw[0]),
                "case %zu: backward-weights differs between 1 and 2 threads", ci);
        T_CHECK(!memcmp(dxs, dx[0], nx * sizeof *dxs), "case %zu: set != added to zeros", ci);
        for (int64_t i = 0; i < ny; i++) {
            double e = fabs((double)y[1][i] - (double)yu[i]) /
                       ((9 * s.C + 4) * U_F32 * (double)my[i] + 1e-30);
            worst_unrounded = e > worst_unrounded ? e : worst_unrounded;
        }
        for (int run = 0; run < 4; run++)
            free(y[run]), free(dx[run]), free(dw[run]);
        free(x), free(w), free(dy), free(yr), free(my), free(dxr), free(mdx), free(dwr);
        free(mdw), free(dxs), free(yu), free(rx), free(rw), free(rdy), free(ax), free(aw);
        free(ady), free(yf), free(res), free(pre), free(sc), free(sh);
        oc_free(ws);
    }
    oc_set_threads(saved);
    oc_test_note("forward against the unrounded oracle: %.0f x the fp32 bound", worst_unrounded);
    T_CHECK(worst_unrounded > 1.0, "the forward matches unrounded inputs: did it run bf16?");
}

typedef struct {
    const char *name;
    oc_conv_shape s;
} conv_case;

/* Shapes of every path: 3x3 stride-1 narrow (bf16 mode keeps the direct fp32 kernel) and
 * wide (bf16 mode takes im2col + the bf16 GEMM), strided and padded 3x3 and 5x3, 1x1 pointwise
 * (GEMMs on x directly), grouped; odd sizes throughout. */
static const conv_case conv_cases[] = {
    {"3x3 s1 p1", {3, 9, 7, 13, 17, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 1}},
    {"3x3 s1 p1 wide", {2, 5, 7, 64, 65, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 1}},
    {"3x3 s2 p1", {2, 11, 9, 5, 33, 3, 3, 0, 0, 2, 2, 1, 1, 1, 1, 1}},
    {"5x3 s1 p2,0", {2, 8, 9, 7, 10, 5, 3, 0, 0, 1, 1, 2, 0, 1, 1, 1}},
    {"1x1", {3, 5, 7, 37, 19, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1}},
    {"3x3 groups 2", {2, 7, 6, 10, 14, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 2}},
};

static void conv_bf16_vs_ref(void)
{
    double worst = 0;
    int saved = oc_get_threads();
    for (int threads = 1; threads <= 2; threads++) {
        oc_set_threads(threads);
        for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
            oc_conv_shape s = conv_cases[ci].s;
            T_CHECK(oc_conv_shape_init(&s) == 0, "%s: bad shape", conv_cases[ci].name);
            const int64_t nx = (int64_t)s.N * s.H * s.W * s.C;
            const int64_t ny = (int64_t)s.N * s.P * s.Q * s.K;
            const int64_t nw = (int64_t)s.K * s.R * s.S * (s.C / s.groups);
            size_t wsb = oc_conv2d_fwd_workspace(&s);
            size_t b2 = oc_conv2d_bwd_data_workspace(&s), b3 = oc_conv2d_bwd_weights_workspace(&s);
            float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w);
            float *dy = malloc(ny * sizeof *dy), *b = malloc(s.K * sizeof *b);
            float *y = malloc(ny * sizeof *y), *yr = malloc(ny * sizeof *y);
            float *my = malloc(ny * sizeof *y), *dx = calloc(nx, sizeof *dx);
            float *dxr = calloc(nx, sizeof *dx), *mdx = calloc(nx, sizeof *dx);
            float *dw = calloc(nw, sizeof *dw), *dwr = calloc(nw, sizeof *dw);
            float *mdw = calloc(nw, sizeof *dw), *db = calloc(s.K, sizeof *db);
            float *dbr = calloc(s.K, sizeof *db), *ax, *aw, *ady;
            void *ws;
            char what[160];
            oc_rng r;
            double e;
            if (b2 > wsb)
                wsb = b2;
            if (b3 > wsb)
                wsb = b3;
            ws = oc_alloc(wsb ? wsb : 64);
            oc_rng_seed(&r, 100 + ci, 0);
            fill(&r, x, nx);
            fill(&r, w, nw);
            fill(&r, dy, ny);
            fill(&r, b, s.K);
            ax = fabs_copy(x, nx);
            aw = fabs_copy(w, nw);
            ady = fabs_copy(dy, ny);

            oc_math_set(OC_MATH_BF16);
            oc_conv2d_fwd(&s, x, w, NULL, y, ws);
            oc_conv2d_bwd_data(&s, dy, w, dx, ws);
            oc_conv2d_bwd_weights(&s, x, dy, dw, db, ws);
            oc_math_set(OC_MATH_F32);
            oc_conv2d_fwd_ref(&s, x, w, NULL, yr);
            oc_conv2d_fwd_ref(&s, ax, aw, NULL, my);
            oc_conv2d_bwd_data_ref(&s, dy, w, dxr);
            oc_conv2d_bwd_data_ref(&s, ady, aw, mdx);
            oc_conv2d_bwd_weights_ref(&s, x, dy, dwr, dbr);
            oc_conv2d_bwd_weights_ref(&s, ax, ady, mdw, NULL);

            snprintf(what, sizeof what, "%s fwd, threads %d", conv_cases[ci].name, threads);
            e = check_bf16(what, y, yr, my, ny, (int64_t)s.R * s.S * s.C);
            worst = e > worst ? e : worst;
            snprintf(what, sizeof what, "%s bwd-data, threads %d", conv_cases[ci].name, threads);
            e = check_bf16(what, dx, dxr, mdx, nx, (int64_t)s.R * s.S * s.K);
            worst = e > worst ? e : worst;
            snprintf(what, sizeof what, "%s bwd-weights, threads %d", conv_cases[ci].name,
                     threads);
            e = check_bf16(what, dw, dwr, mdw, nw, (int64_t)s.N * s.P * s.Q);
            worst = e > worst ? e : worst;
            /* the bias gradient is a plain fp32 sum in every mode */
            snprintf(what, sizeof what, "%s db, threads %d", conv_cases[ci].name, threads);
            T_CLOSE(what, db, dbr, s.K, 1e-4, 1e-4);

            free(x), free(w), free(dy), free(b), free(y), free(yr), free(my), free(dx);
            free(dxr), free(mdx), free(dw), free(dwr), free(mdw), free(db), free(dbr);
            free(ax), free(aw), free(ady);
            oc_free(ws);
        }
    }
    oc_set_threads(saved);
    if (oc_bf16_supported())
        T_CHECK(worst > 1.0, "conv in bf16 mode agrees with fp32 to %.3g of the fp32 bound: "
                             "did it run bf16?", worst);
}

static void dense_bf16_vs_ref(void)
{
    const int N = 19, I = 77, O = 13;
    float *x = malloc(sizeof(float) * N * I), *w = malloc(sizeof(float) * O * I);
    float *dy = malloc(sizeof(float) * N * O), *y = malloc(sizeof(float) * N * O);
    float *yr = malloc(sizeof(float) * N * O), *my = malloc(sizeof(float) * N * O);
    float *dx = calloc((size_t)N * I, sizeof(float)), *dxr = calloc((size_t)N * I, sizeof(float));
    float *mdx = calloc((size_t)N * I, sizeof(float)), *dw = calloc((size_t)O * I, sizeof(float));
    float *dwr = calloc((size_t)O * I, sizeof(float)), *mdw = calloc((size_t)O * I, sizeof(float));
    float *ax, *aw, *ady;
    double worst = 0, e;
    oc_rng r;
    oc_rng_seed(&r, 5, 0);
    fill(&r, x, (size_t)N * I);
    fill(&r, w, (size_t)O * I);
    fill(&r, dy, (size_t)N * O);
    ax = fabs_copy(x, (size_t)N * I);
    aw = fabs_copy(w, (size_t)O * I);
    ady = fabs_copy(dy, (size_t)N * O);
    oc_math_set(OC_MATH_BF16);
    oc_dense_fwd(N, I, O, x, w, NULL, y);
    oc_dense_bwd(N, I, O, x, w, dy, dx, dw, NULL);
    oc_math_set(OC_MATH_F32);
    oc_dense_fwd_ref(N, I, O, x, w, NULL, yr);
    oc_dense_fwd_ref(N, I, O, ax, aw, NULL, my);
    oc_dense_bwd_ref(N, I, O, x, w, dy, dxr, dwr, NULL);
    oc_dense_bwd_ref(N, I, O, ax, aw, ady, mdx, mdw, NULL);
    e = check_bf16("dense fwd", y, yr, my, (int64_t)N * O, I);
    worst = e > worst ? e : worst;
    e = check_bf16("dense bwd dx", dx, dxr, mdx, (int64_t)N * I, O);
    worst = e > worst ? e : worst;
    e = check_bf16("dense bwd dw", dw, dwr, mdw, (int64_t)O * I, N);
    worst = e > worst ? e : worst;
    if (oc_bf16_supported())
        T_CHECK(worst > 1.0, "dense in bf16 mode agrees with fp32 to %.3g of the fp32 bound",
                worst);
    free(x), free(w), free(dy), free(y), free(yr), free(my), free(dx), free(dxr), free(mdx);
    free(dw), free(dwr), free(mdw), free(ax), free(aw), free(ady);
}

/* ---------------------------------------------------------------- model level */

static void model_precision_api(void)
{
    oc_model *m = NULL;
    oc_precision p = OC_PRECISION_BF16;
    T_CHECK(oc_precision_parse("fp32", &p) == OC_OK && p == OC_PRECISION_F32, "parse fp32");
    T_CHECK(oc_precision_parse("bf16", &p) == OC_OK && p == OC_PRECISION_BF16, "parse bf16");
    T_CHECK(oc_precision_parse("fp16", &p) == OC_ERR_ARG, "fp16 is not a precision");
    T_CHECK(oc_precision_parse(NULL, &p) == OC_ERR_ARG, "NULL is not a precision");
    T_CHECK(!strcmp(oc_precision_name(OC_PRECISION_BF16), "bf16"), "name of bf16");
    T_CHECK(oc_precision_supported(OC_PRECISION_F32), "fp32 always runs");
    T_CHECK(oc_precision_supported(OC_PRECISION_BF16) == oc_bf16_supported(), "bf16 support");
    T_CHECK(oc_model_create(&m, "cnn", 16, 16, 3, 4, 1) == OC_OK, "create: %s", oc_last_error());
    if (!m)
        return;
    T_CHECK(oc_model_precision(m) == OC_PRECISION_F32, "a new model is fp32");
    T_CHECK(oc_model_set_precision(m, (oc_precision)7) == OC_ERR_ARG, "bad value accepted");
    T_CHECK(oc_model_set_precision(NULL, OC_PRECISION_F32) == OC_ERR_ARG, "NULL model accepted");
    if (oc_bf16_supported()) {
        T_CHECK(oc_model_set_precision(m, OC_PRECISION_BF16) == OC_OK, "set bf16");
        T_CHECK(oc_model_precision(m) == OC_PRECISION_BF16, "reads back bf16");
    } else {
        T_CHECK(oc_model_set_precision(m, OC_PRECISION_BF16) == OC_ERR_UNSUPPORTED,
                "bf16 accepted on a CPU without AVX512_BF16");
    }
    oc_model_free(m);
}

/* Steps of SGD on a synthetic problem the cnn learns quickly (each class a fixed random image
 * plus noise), returning the per-step losses. */
#define TRAIN_STEPS 40
#define TRAIN_BATCH 32

static int train_losses(oc_precision prec, double *loss)
{
    const int H = 16, W = 16, C = 3, K = 4, n_in = H * W * C;
    oc_model *m = NULL;
    oc_optimizer *opt = NULL;
    oc_optim_config cfg = oc_optim_defaults(OC_OPTIM_SGD);
    float *proto = malloc(sizeof(float) * K * n_in), *x = malloc(sizeof(float) * TRAIN_BATCH * n_in);
    float *dlogits = malloc(sizeof(float) * TRAIN_BATCH * K);
    int32_t labels[TRAIN_BATCH];
    oc_rng r;
    int ok = 0;

    if (oc_model_create(&m, "cnn", H, W, C, K, 3) != OC_OK ||
        oc_model_set_precision(m, prec) != OC_OK)
        goto done;
    cfg.lr = 0.05;
    cfg.momentum = 0.9;
    if (oc_optimizer_new_for_model(&opt, &cfg, m) != OC_OK)
        goto done;
    oc_rng_seed(&r, 11, 0);
    for (int i = 0; i < K * n_in; i++)
        proto[i] = oc_rng_normal(&r);
    for (int step = 0; step < TRAIN_STEPS; step++) {
        const float *logits;
        size_t np;
        for (int b = 0; b < TRAIN_BATCH; b++) {
            labels[b] = (int32_t)oc_rng_below(&r, K);
            for (int i = 0; i < n_in; i++)
                x[b * n_in + i] = proto[labels[b] * n_in + i] + 0.5f * oc_rng_normal(&r);
        }
        if (oc_model_forward(m, x, TRAIN_BATCH, 1, &logits) != OC_OK)
            goto done;
        oc_model_zero_grad(m);
        loss[step] = oc_softmax_xent(TRAIN_BATCH, K, logits, labels, NULL, 0.0f, NULL, dlogits);
        if (oc_model_backward(m, dlogits) != OC_OK ||
            oc_optimizer_step(opt, oc_model_params(m, &np), oc_model_grads(m, &np)) != OC_OK)
            goto done;
    }
    ok = 1;
done:
    oc_optimizer_free(opt);
    oc_model_free(m);
    free(proto);
    free(x);
    free(dlogits);
    return ok;
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

static void training_bf16_like_fp32(void)
{
    double l32[TRAIN_STEPS], l16[TRAIN_STEPS], first, last32, last16;
    if (!oc_bf16_supported()) {
        oc_test_note("no AVX512_BF16: bf16 training not run");
        return;
    }
    T_CHECK(train_losses(OC_PRECISION_F32, l32), "fp32 run failed: %s", oc_last_error());
    T_CHECK(train_losses(OC_PRECISION_BF16, l16), "bf16 run failed: %s", oc_last_error());
    first = mean(l32, 5);
    last32 = mean(l32 + TRAIN_STEPS - 5, 5);
    last16 = mean(l16 + TRAIN_STEPS - 5, 5);
    oc_test_note("loss over the first 5 steps %.4f; last 5: fp32 %.4f, bf16 %.4f", first, last32,
                 last16);
    T_CHECK(fabs(l16[0] - l32[0]) < 0.01 * l32[0], "step 0 losses differ: %.5f vs %.5f", l16[0],
            l32[0]);
    T_CHECK(l16[0] != l32[0] || l16[1] != l32[1], "bf16 losses equal fp32's bitwise: no bf16");
    T_CHECK(last32 < 0.5 * first, "fp32 did not learn (%.4f -> %.4f)", first, last32);
    T_CHECK(last16 < 0.5 * first, "bf16 did not learn (%.4f -> %.4f)", first, last16);
    T_CHECK(fabs(last16 - last32) < 0.1 * first, "bf16 ends at %.4f, fp32 at %.4f", last16,
            last32);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"rounding", rounding},
        {"gemm_matches_bf16_ref", gemm_matches_bf16_ref},
        {"gemm_dispatch_and_determinism", gemm_dispatch_and_determinism},
        {"gemm_pre_is_gemm_bf16", gemm_pre_is_gemm_bf16},
        {"conv_bf16_pre_is_plain", conv_bf16_pre_is_plain},
        {"packed_b_by_pairs_and_without_scratch", packed_b_by_pairs_and_without_scratch},
        {"conv_bf16_vs_ref", conv_bf16_vs_ref},
        {"conv_bf16_direct_is_rounded_products", conv_bf16_direct_is_rounded_products},
        {"dense_bf16_vs_ref", dense_bf16_vs_ref},
        {"model_precision_api", model_precision_api},
        {"training_bf16_like_fp32", training_bf16_like_fp32},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
