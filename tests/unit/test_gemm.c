/* GEMM: every path (dispatching oc_gemm, each blocked kernel family this CPU runs, the simple
 * path) against oc_gemm_ref on many shapes, transposes, leading dimensions, alpha/beta, with 1
 * and 2 threads; beta = 0 over NaN-filled C; determinism; calls nested in oc_parallel.
 *
 * Error bound. oc_gemm_ref sums in double and rounds once, so it is within one float ulp of
 * the exact result. A fast path forms each element with K fused multiply-adds in float (one
 * rounding each), one multiply by alpha and one multiply-add for beta*C. The classic bound for
 * recursive summation (Higham, "Accuracy and Stability of Numerical Algorithms", 3.1) gives
 *     |fast - exact| <= gamma_(K+2) * (|alpha| sum_k |a_ik||b_kj| + |beta||c_ij|),
 * gamma_n = n u / (1 - n u), u = 2^-24. We allow (K + 4) u times that magnitude (the extra
 * 2 u cover the reference's own rounding), per element. This bound holds for any summation
 * order, so it is safe for every tiling, yet a wrong index, a missed k block or a lost beta
 * term is off by O(|a||b|) and fails it. The worst measured error relative to u * magnitude is
 * printed (typically a few units, far below K + 4). */
#include "test.h"
#include "core/core.h"
#include "ops/gemm.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U_F32 5.9604644775390625e-8 /* 2^-24 */

typedef enum { PATH_DISPATCH, PATH_BLOCKED, PATH_SIMPLE } path_kind;

typedef struct {
    path_kind kind;
    const oc_gemm_kernel *kern; /* PATH_BLOCKED */
    const char *name;
} gemm_path;

static void run_path(const gemm_path *p, int ta, int tb, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C,
                     int ldc)
{
    if (p->kind == PATH_DISPATCH)
        oc_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (p->kind == PATH_BLOCKED)
        oc_gemm_blocked(p->kern, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        oc_gemm_simple(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* The paths this CPU can run. */
static int list_paths(gemm_path *paths)
{
    int n = 0;
    paths[n++] = (gemm_path){PATH_DISPATCH, NULL, "oc_gemm"};
    paths[n++] = (gemm_path){PATH_SIMPLE, NULL, "simple"};
    if (__builtin_cpu_supports("avx512f")) {
        paths[n++] = (gemm_path){PATH_BLOCKED, &oc_gemm_avx512_wide, oc_gemm_avx512_wide.name};
        paths[n++] =
            (gemm_path){PATH_BLOCKED, &oc_gemm_avx512_wide_a, oc_gemm_avx512_wide_a.name};
        paths[n++] =
            (gemm_path){PATH_BLOCKED, &oc_gemm_avx512_skinny, oc_gemm_avx512_skinny.name};
    } else {
        oc_test_note("no AVX-512F: AVX-512 kernels not tested on this CPU");
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        paths[n++] = (gemm_path){PATH_BLOCKED, &oc_gemm_avx2_main, oc_gemm_avx2_main.name};
    else
        oc_test_note("no AVX2+FMA: AVX2 kernel not tested on this CPU");
    return n;
}

static void fill(oc_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * oc_rng_uniform(r) - 1.0f;
}

typedef struct {
    int M, N, K;
} shape3;

/* Shapes around the tiles (MR 14/28/6, NR 32/16) and blocks (KC 256, MC 336, NC 3072), primes,
 * degenerate sizes, skinny ones (N <= 16 picks the 28x16 kernel, which reads A in place), few
 * rows (M <= 28: B read in place) and long K (K-split threading). */
static const shape3 shapes[] = {
    {1, 1, 1},    {1, 1, 40},    {1, 37, 1},   {29, 1, 53},  {14, 32, 64},   {15, 33, 65},
    {13, 31, 63}, {28, 16, 50},  {29, 17, 51}, {6, 16, 300}, {7, 47, 257},   {61, 97, 127},
    {100, 200, 300}, {341, 40, 30}, {45, 3, 600}, {200, 16, 100}, {333, 7, 19}, {3, 3103, 5},
    {16, 40, 2000}, {20, 9, 4000}, {30, 17, 1100}, /* long K: split over K with 2 threads */
    {181, 190, 1600}, /* K split with enough partials that their sum is split over rows */
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

typedef struct {
    float alpha, beta;
    int nan_c; /* C starts as NaN (only with beta == 0) */
} scale_case;

static const scale_case scales[] = {{1.0f, 0.0f, 1}, {-1.5f, 0.75f, 0}, {0.5f, 1.0f, 0}};
#define N_SCALES (int)(sizeof scales / sizeof scales[0])

/* One problem: operands, the starting C, the reference result and the per-element bound. */
typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0, *ref;
    double *mag; /* |alpha| sum |a||b| + |beta||c| per element */
} problem;

static void problem_free(problem *p)
{
    free(p->A);
    free(p->B);
    free(p->C0);
    free(p->ref);
    free(p->mag);
}

static void problem_make(problem *p, oc_rng *r, int ta, int tb, shape3 s, int pad,
                         const scale_case *sc)
{
    int a_rows = ta ? s.K : s.M, a_cols = ta ? s.M : s.K;
    int b_rows = tb ? s.N : s.K, b_cols = tb ? s.K : s.N;
    memset(p, 0, sizeof *p);
    p->ta = ta;
    p->tb = tb;
    p->M = s.M;
    p->N = s.N;
    p->K = s.K;
    p->lda = a_cols + pad;
    p->ldb = b_cols + 2 * pad;
    p->ldc = s.N + pad;
    p->alpha = sc->alpha;
    p->beta = sc->beta;
    p->A = malloc(sizeof(float) * (size_t)a_rows * p->lda);
    p->B = malloc(sizeof(float) * (size_t)b_rows * p->ldb);
    p->C0 = malloc(sizeof(float) * (size_t)s.M * p->ldc);
    p->ref = malloc(sizeof(float) * (size_t)s.M * p->ldc);
    p->mag = malloc(sizeof(double) * (size_t)s.M * s.N);
    fill(r, p->A, (size_t)a_rows * p->lda);
    fill(r, p->B, (size_t)b_rows * p->ldb);
    fill(r, p->C0, (size_t)s.M * p->ldc);
    if (sc->nan_c)
        for (size_t i = 0; i < (size_t)s.M * p->ldc; i++)
            p->C0[i] = NAN;
    memcpy(p->ref, p->C0, sizeof(float) * (size_t)s.M * p->ldc);
    oc_gemm_ref(ta, tb, s.M, s.N, s.K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta, p->ref,
                p->ldc);
    for (int i = 0; i < s.M; i++)
        for (int j = 0; j < s.N; j++) {
            double m = 0;
            for (int k = 0; k < s.K; k++) {
                float a = ta ? p->A[(size_t)k * p->lda + i] : p->A[(size_t)i * p->lda + k];
                float b = tb ? p->B[(size_t)j * p->ldb + k] : p->B[(size_t)k * p->ldb + j];
                m += fabs((double)a * (double)b);
            }
            m *= fabs((double)p->alpha);
            if (p->beta != 0.0f)
                m += fabs((double)p->beta * (double)p->C0[(size_t)i * p->ldc + j]);
            p->mag[(size_t)i * s.N + j] = m;
        }
}

/* Runs `path` on p and checks it; returns the worst |err| / (u * magnitude) (or -1 on failure).
 * Columns past N in each row of C (ldc > N) must come back bitwise untouched. */
static double check_path(const gemm_path *path, const problem *p, const char *what)
{
    size_t nc = (size_t)p->M * p->ldc;
    float *C = malloc(sizeof(float) * nc);
    double worst = 0;
    int bad = 0;
    memcpy(C, p->C0, sizeof(float) * nc);
    run_path(path, p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta,
             C, p->ldc);
    for (int i = 0; i < p->M && !bad; i++) {
        for (int j = 0; j < p->ldc; j++) {
            size_t at = (size_t)i * p->ldc + j;
            if (j >= p->N) {
                if (memcmp(&C[at], &p->C0[at], sizeof(float)) != 0) {
                    T_CHECK(0, "%s: wrote C[%d][%d] past N=%d", what, i, j, p->N);
                    bad = 1;
                    break;
                }
                continue;
            }
            double m = p->mag[(size_t)i * p->N + j];
            double err = fabs((double)C[at] - (double)p->ref[at]);
            double tol = (p->K + 4) * U_F32 * m + 1e-30;
            if (!(err <= tol)) {
                T_CHECK(0, "%s: C[%d][%d] = %.9g, ref %.9g, |err| %.3g > tol %.3g", what, i, j,
                        (double)C[at], (double)p->ref[at], err, tol);
                bad = 1;
                break;
            }
            if (m > 0 && err / (U_F32 * m) > worst)
                worst = err / (U_F32 * m);
        }
    }
    free(C);
    return bad ? -1 : worst;
}

static void all_paths_match_ref(void)
{
    gemm_path paths[8];
    int n_paths = list_paths(paths);
    double worst[8] = {0};
    int runs = 0;
    oc_rng r;
    oc_rng_seed(&r, 1234, 0);
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 4; t++)
            for (int sc = 0; sc < N_SCALES; sc++) {
                problem p;
                int pad = (s + t + sc) % 3 == 0 ? 0 : 3; /* lda, ldb, ldc beyond the row */
                problem_make(&p, &r, t & 1, t >> 1, shapes[s], pad, &scales[sc]);
                for (int pi = 0; pi < n_paths; pi++)
                    for (int nt = 1; nt <= 2; nt++) {
                        char what[160];
                        double w;
                        snprintf(what, sizeof what,
                                 "%s threads=%d M=%d N=%d K=%d ta=%d tb=%d alpha=%g beta=%g%s",
                                 paths[pi].name, nt, p.M, p.N, p.K, p.ta, p.tb, (double)p.alpha,
                                 (double)p.beta, scales[sc].nan_c ? " C=NaN" : "");
                        oc_set_threads(nt);
                        w = check_path(&paths[pi], &p, what);
                        if (w > worst[pi])
                            worst[pi] = w;
                        runs++;
                    }
                problem_free(&p);
            }
    oc_set_threads(0);
    for (int pi = 0; pi < n_paths; pi++)
        oc_test_note("%-13s worst |err| = %.2f u * sum|alpha a b| + |beta c| (bound K+4)",
                     paths[pi].name, worst[pi]);
    oc_test_note("%d runs over %d shapes x 4 transposes x %d alpha/beta", runs, N_SHAPES,
                 N_SCALES);
}

/* alpha = 0 and K = 0 reduce to C = beta * C (and to zeros over NaNs when beta = 0). */
static void alpha0_and_k0_scale_c(void)
{
    gemm_path paths[8];
    int n_paths = list_paths(paths);
    float A[64 * 40], B[40 * 48], C[64 * 48], want[64 * 48];
    oc_rng r;
    oc_rng_seed(&r, 7, 0);
    fill(&r, A, 64 * 40);
    fill(&r, B, 40 * 48);
    for (int pi = 0; pi < n_paths; pi++)
        for (int c = 0; c < 4; c++) {
            float beta = c & 1 ? 0.0f : -2.0f;
            int K = c & 2 ? 0 : 40;
            float alpha = c & 2 ? 1.0f : 0.0f;
            fill(&r, C, 64 * 48);
            for (int i = 0; i < 64 * 48; i++) {
                if (beta == 0.0f)
                    C[i] = NAN;
                want[i] = beta == 0.0f ? 0.0f : beta * C[i];
            }
            run_path(&paths[pi], 0, 0, 64, 48, K, alpha, A, 40, B, 48, beta, C, 48);
            char what[96];
            snprintf(what, sizeof what, "%s alpha=%g K=%d beta=%g", paths[pi].name,
                     (double)alpha, K, (double)beta);
            T_CLOSE(what, C, want, 64 * 48, 0.0, 0.0);
        }
}

/* Same inputs give bitwise the same C: twice with 2 threads, and, for products split over M or
 * N (every element summed in the same order whatever the split), with 1 thread. */
static void deterministic_across_runs_and_threads(void)
{
    const int M = 301, N = 203, K = 517;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    float *C3 = malloc(sizeof(float) * M * N);
    oc_rng r;
    oc_rng_seed(&r, 99, 0);
    fill(&r, A, (size_t)M * K);
    fill(&r, B, (size_t)K * N);
    oc_set_threads(2);
    oc_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    oc_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    oc_set_threads(1);
    oc_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C3, N);
    oc_set_threads(0);
    T_CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0, "two 2-thread runs differ");
    T_CHECK(memcmp(C1, C3, sizeof(float) * M * N) == 0, "1-thread and 2-thread runs differ");
    /* split over K (M*N small, K long): reproducible for a fixed thread count */
    oc_set_threads(2);
    oc_gemm(1, 0, 20, 20, 4000, 1.0f, A, 20, B, 20, 0.0f, C1, 20);
    oc_gemm(1, 0, 20, 20, 4000, 1.0f, A, 20, B, 20, 0.0f, C2, 20);
    oc_set_threads(0);
    T_CHECK(memcmp(C1, C2, sizeof(float) * 20 * 20) == 0, "two 2-thread K-split runs differ");
    free(A);
    free(B);
    free(C1);
    free(C2);
    free(C3);
}

typedef struct {
    problem p[2];
    int ran[2];
    double worst[2];
} nested_ctx;

static void nested_worker(void *ctx, int tid, int nt)
{
    nested_ctx *c = ctx;
    static const gemm_path disp = {PATH_DISPATCH, NULL, "oc_gemm"};
    for (int i = tid; i < 2; i += nt) {
        c->ran[i] = 1;
        c->worst[i] = check_path(&disp, &c->p[i], i ? "nested problem 1" : "nested problem 0");
    }
}

/* oc_gemm called from inside an oc_parallel region (as the conv and dense layers may be) runs
 * on the calling thread with that thread's own packing buffers, two different products at once. */
static void nested_in_parallel_region(void)
{
    nested_ctx c;
    static const scale_case sc = {1.0f, 0.5f, 0};
    oc_rng r;
    memset(&c, 0, sizeof c);
    oc_rng_seed(&r, 5, 0);
    problem_make(&c.p[0], &r, 0, 1, (shape3){150, 90, 400}, 1, &sc);
    problem_make(&c.p[1], &r, 1, 0, (shape3){70, 260, 120}, 0, &sc);
    oc_set_threads(2);
    oc_parallel(nested_worker, &c);
    oc_set_threads(0);
    for (int i = 0; i < 2; i++) {
        T_CHECK(c.ran[i], "problem %d not run", i);
        T_CHECK(c.worst[i] >= 0, "problem %d wrong", i);
        problem_free(&c.p[i]);
    }
    oc_test_note("worst |err| = %.2f u * magnitude", c.worst[0] > c.worst[1] ? c.worst[0] : c.worst[1]);
}

/* oc_gemm_pre on a B packed once (oc_gemm_pack_b) gives oc_gemm's bits, few rows (where
 * oc_gemm reads B in place and oc_gemm_pre reads the packing) and many, both transposes, 1 and
 * 2 threads, beta 0 and 1. From OC_GEMM_SMALL multiply-adds on it reads only the packing (its
 * B argument is all NaN there); below, the floats. And oc_gemm_packed_index finds every
 * element of the packing, with the last panel's padding columns zero. */
static void packed_b_is_bitwise(void)
{
    static const shape3 pre_shapes[] = {{1, 45, 300}, {20, 70, 64}, {28, 33, 257}, {29, 140, 96},
                                        {200, 48, 130}};
    for (size_t si = 0; si < sizeof pre_shapes / sizeof pre_shapes[0]; si++)
        for (int tb = 0; tb <= 1; tb++) {
            const int M = pre_shapes[si].M, N = pre_shapes[si].N, K = pre_shapes[si].K;
            const int ldb = tb ? K : N;
            float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
            float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
            float *bp = oc_alloc(oc_gemm_b_bytes(N, K)), *Bnan = malloc(sizeof(float) * K * N);
            const int small = (double)M * N * K < OC_GEMM_SMALL;
            int padded, bad = 0;
            oc_rng r;
            oc_rng_seed(&r, 70 + si, (uint64_t)tb);
            fill(&r, A, (size_t)M * K);
            fill(&r, B, (size_t)K * N);
            memset(bp, 0xAB, oc_gemm_b_bytes(N, K));
            oc_gemm_pack_b(tb, N, K, B, ldb, bp);
            for (size_t i = 0; i < (size_t)K * N; i++)
                Bnan[i] = small ? B[i] : NAN;
            for (int k = 0; k < K; k++)
                for (int n = 0; n < N; n++)
                    bad += bp[oc_gemm_packed_index(N, K, k, n, &padded)] !=
                           (tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n]);
            T_CHECK(!bad, "%dx%dx%d transb %d: %d elements not where oc_gemm_packed_index says",
                    M, N, K, tb, bad);
            if (padded) { /* the column after the last, in the last panel, of every k */
                size_t at = oc_gemm_packed_index(N, K, K - 1, N - 1, NULL) + 1;
                T_CHECK(bp[at] == 0.0f, "%dx%dx%d: padding column not zero", M, N, K);
            }
            for (int threads = 1; threads <= 2; threads++)
                for (int beta = 0; beta <= 1; beta++) {
                    fill(&r, C1, (size_t)M * N);
                    memcpy(C2, C1, sizeof(float) * M * N);
                    oc_set_threads(threads);
                    oc_gemm(0, tb, M, N, K, 0.5f, A, K, B, ldb, (float)beta, C1, N);
                    oc_gemm_pre(M, N, K, 0.5f, A, K, bp, Bnan, ldb, tb, (float)beta, C2, N);
                    T_CHECK(!memcmp(C1, C2, sizeof(float) * M * N),
                            "%dx%dx%d transb %d beta %d threads %d: packed B differs", M, N, K,
                            tb, beta, threads);
                }
            oc_set_threads(0);
            free(A), free(B), free(C1), free(C2), free(Bnan);
            oc_free(bp);
        }
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"all_paths_match_ref", all_paths_match_ref},
        {"alpha0_and_k0_scale_c", alpha0_and_k0_scale_c},
        {"deterministic_across_runs_and_threads", deterministic_across_runs_and_threads},
        {"nested_in_parallel_region", nested_in_parallel_region},
        {"packed_b_is_bitwise", packed_b_is_bitwise},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
