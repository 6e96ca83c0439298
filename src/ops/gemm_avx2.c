/* AVX2 + FMA micro-kernel for oc_gemm (compiled with -mavx2 -mfma; gemm.c calls it only after
 * __builtin_cpu_supports("avx2") and ("fma")).
 *
 * A 6 x 16 tile of C lives in 12 ymm accumulators; per k the kernel loads 2 vectors of the
 * packed B panel and broadcasts 6 scalars of the packed A panel: 12 independent FMA chains,
 * enough to cover 2 FMA pipes x 4-5 cycles latency, and 12 + 2 + 1 = 15 of the 16 ymm
 * registers. Panels are zero padded to 6 rows / 16 columns; partial tiles are computed in full
 * and only their valid part is written back. Panels are always packed, so the stride arguments
 * are those of the packed layout and go unused. */
#include "gemm.h"

#include <immintrin.h>

#define MR 6
#define NR 16

static void kernel(int mr, int nr, int kc, const float *restrict a, ptrdiff_t a_rs,
                   ptrdiff_t a_ks, const float *restrict b, ptrdiff_t b_ks, float alpha,
                   float beta, float *restrict c, int ldc)
{
    __m256 acc[MR][2];
    float tile[MR][NR];

    (void)a_rs;
    (void)a_ks;
    (void)b_ks;

    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b + (size_t)k * NR);
        __m256 b1 = _mm256_load_ps(b + (size_t)k * NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + (size_t)k * MR + r);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }

    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (mr == MR && nr == NR) {
        for (int r = 0; r < MR; r++) {
            float *cr = c + (size_t)r * ldc;
            __m256 x0 = _mm256_mul_ps(va, acc[r][0]), x1 = _mm256_mul_ps(va, acc[r][1]);
            if (beta != 0.0f) {
                x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), x0);
                x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), x1);
            }
            _mm256_storeu_ps(cr, x0);
            _mm256_storeu_ps(cr + 8, x1);
        }
        return;
    }
    for (int r = 0; r < MR; r++) {
        _mm256_storeu_ps(tile[r], _mm256_mul_ps(va, acc[r][0]));
        _mm256_storeu_ps(tile[r] + 8, _mm256_mul_ps(va, acc[r][1]));
    }
    for (int r = 0; r < mr; r++) {
        float *cr = c + (size_t)r * ldc;
        for (int j = 0; j < nr; j++)
            cr[j] = beta != 0.0f ? tile[r][j] + beta * cr[j] : tile[r][j];
    }
}

const oc_gemm_kernel oc_gemm_avx2_main = {"avx2-6x16", MR, NR, 1,    NR,
                                          0,           kernel, NULL, NULL, NULL};
