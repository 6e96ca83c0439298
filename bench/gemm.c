/* GEMM benchmark: the machine's fp32 FMA peak (a register-only FMA loop) and oc_gemm's
 * GFLOP/s on large and layer-shaped products, with 1 and 2 threads, as % of that peak; on CPUs
 * with AVX512_BF16 also oc_gemm_bf16 (--precision bf16) on the same shapes.
 * Build and run: see bench/README.md. With -DOC_BENCH_CBLAS (and -lopenblas) it also times
 * cblas_sgemm on the same shapes. */
#include "core/core.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#include "timing.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef OC_BENCH_CBLAS
#include <cblas.h>
#endif

#define RUNS 5 /* timed repetitions per measurement; the median is reported */

/* ---------------------------------------------------------------- FMA peak */

#define PEAK_ITERS 20000000L
#define PEAK_CHAINS 12 /* independent accumulators: more than 2 pipes x 4 cycles latency */

typedef struct {
    int avx512;
    float sink[64];
} peak_ctx;

__attribute__((target("avx512f,fma"))) static float fma_loop_512(long iters)
{
    __m512 acc[PEAK_CHAINS];
    const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    }
    __m512 s = acc[0];
    for (int i = 1; i < PEAK_CHAINS; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_loop_256(long iters)
{
    __m256 acc[PEAK_CHAINS];
    const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
    float out[8], s = 0;
    for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    }
    for (int i = 1; i < PEAK_CHAINS; i++)
        acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(out, acc[0]);
    for (int i = 0; i < 8; i++)
        s += out[i];
    return s;
}

static void peak_worker(void *ctx, int tid, int nt)
{
    peak_ctx *p = ctx;
    (void)nt;
    p->sink[tid & 63] = p->avx512 ? fma_loop_512(PEAK_ITERS) : fma_loop_256(PEAK_ITERS);
}

/* GFLOP/s of the FMA loop on `threads` threads (each runs the full loop). */
static double measure_peak(int threads, int avx512)
{
    peak_ctx p;
    double t[RUNS];
    int lanes = avx512 ? 16 : 8;
    memset(&p, 0, sizeof p);
    p.avx512 = avx512;
    oc_set_threads(threads);
    oc_parallel(peak_worker, &p); /* warm-up: clocks up, threads started */
    bench_cpu_time = threads == 1 && getenv("OC_BENCH_CPU_TIME");
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now();
        oc_parallel(peak_worker, &p);
        t[r] = bench_now() - t0;
    }
    return 2.0 * lanes * PEAK_CHAINS * (double)PEAK_ITERS * threads / bench_median(t, RUNS) * 1e-9;
}

/* ---------------------------------------------------------------- GEMM */

typedef struct {
    const char *what;
    int ta, tb, M, N, K;
} shape;

static const shape shapes[] = {
    {"square 1024^3", 0, 0, 1024, 1024, 1024},
    {"square 2048^3", 0, 0, 2048, 2048, 2048},
    {"im2col-like 4096x4096x1152", 0, 0, 4096, 4096, 1152},
    {"B^T (dense fwd) 1024^3", 0, 1, 1024, 1024, 1024},
    {"resnet20 stage1 fwd 131072x16x144", 0, 1, 128 * 32 * 32, 16, 144},
    {"resnet20 stage2 fwd 32768x32x288", 0, 1, 128 * 16 * 16, 32, 288},
    {"resnet20 stage3 fwd 8192x64x576", 0, 1, 128 * 8 * 8, 64, 576},
    {"resnet20 stage1 bwd-data 131072x144x16", 0, 0, 128 * 32 * 32, 144, 16},
    {"resnet20 stage1 bwd-weights 16x144x131072", 1, 0, 16, 144, 128 * 32 * 32},
    {"resnet20 stage3 bwd-weights 64x576x8192", 1, 0, 64, 576, 128 * 8 * 8},
};

typedef void (*gemm_fn)(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc);

#ifdef OC_BENCH_CBLAS
static void cblas_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#endif

static double time_gemm(gemm_fn fn, const shape *s, const float *A, const float *B, float *C)
{
    double t[RUNS];
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    fn(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N); /* warm-up */
    bench_cpu_time = oc_get_threads() == 1 && getenv("OC_BENCH_CPU_TIME");
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now();
        fn(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        t[r] = bench_now() - t0;
    }
    return 2.0 * s->M * s->N * (double)s->K / bench_median(t, RUNS) * 1e-9;
}

int main(int argc, char **argv)
{
    int avx512 = __builtin_cpu_supports("avx512f");
    int only = argc > 1 ? atoi(argv[1]) : -1; /* optional: run one shape by index */
    int max_threads = argc > 2 ? atoi(argv[2]) : 2; /* optional: 1 = single-thread only */
    double peak[3];
    size_t maxa = 0, maxb = 0, maxc = 0;
    float *A, *B, *C;

    if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        printf("no AVX2+FMA: nothing to measure\n");
        return 0;
    }
    peak[2] = 0;
    for (int t = 1; t <= max_threads; t++) {
        peak[t] = measure_peak(t, avx512);
        printf("fp32 FMA peak (%s, %d thread%s): %.1f GFLOP/s\n", avx512 ? "zmm" : "ymm", t,
               t > 1 ? "s" : "", peak[t]);
    }

    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        maxa = (size_t)s->M * s->K > maxa ? (size_t)s->M * s->K : maxa;
        maxb = (size_t)s->K * s->N > maxb ? (size_t)s->K * s->N : maxb;
        maxc = (size_t)s->M * s->N > maxc ? (size_t)s->M * s->N : maxc;
    }
    A = oc_alloc(maxa * sizeof *A);
    B = oc_alloc(maxb * sizeof *B);
    C = oc_alloc(maxc * sizeof *C);
    if (!A || !B || !C) {
        printf("out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < maxa; i++)
        A[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < maxb; i++)
        B[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    memset(C, 0, maxc * sizeof *C);

    printf("\n%-42s %-13s %18s %18s\n", "shape (M x N x K)", "kernel", "1 thread", "2 threads");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        const oc_gemm_kernel *k = oc_gemm_pick(s->N);
        double g[3] = {0, 0, 0};
        if (only >= 0 && (size_t)only != i)
            continue;
        for (int t = 1; t <= max_threads; t++) {
            oc_set_threads(t);
            g[t] = time_gemm(oc_gemm, s, A, B, C);
        }
        if (max_threads < 2)
            printf("%-42s %-13s %7.1f GF/s %4.0f%%\n", s->what, k ? k->name : "simple", g[1],
                   100 * g[1] / peak[1]);
        else
            printf("%-42s %-13s %7.1f GF/s %4.0f%% %7.1f GF/s %4.0f%%  x%.2f\n", s->what,
                   k ? k->name : "simple", g[1], 100 * g[1] / peak[1], g[2],
                   100 * g[2] / peak[2], g[2] / g[1]);
        if (oc_bf16_supported()) {
            /* the bf16 GEMM of --precision bf16 on the same shape, and its gain over fp32 */
            double h[3] = {0, 0, 0};
            for (int t = 1; t <= max_threads; t++) {
                oc_set_threads(t);
                h[t] = time_gemm(oc_gemm_bf16, s, A, B, C);
            }
            printf("%-42s %-13s %7.1f GF/s  x%.2f", "", "bf16-14x32", h[1], h[1] / g[1]);
            if (max_threads >= 2)
                printf(" %7.1f GF/s  x%.2f", h[2], h[2] / g[2]);
            printf("   (bf16 / fp32)\n");
        }
#ifdef OC_BENCH_CBLAS
        {
            /* OpenBLAS picks its thread count from OPENBLAS_NUM_THREADS (run it with 1 and 2). */
            double gb = time_gemm(cblas_gemm, s, A, B, C);
            printf("%-42s %-13s %7.1f GF/s, ocelot (%d threads) / cblas x%.2f\n", "",
                   "cblas_sgemm", gb, max_threads, g[max_threads] / gb);
        }
#endif
    }
    oc_set_threads(0);
    oc_free(A);
    oc_free(B);
    oc_free(C);
    return 0;
}
