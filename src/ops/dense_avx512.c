/* AVX-512 rows of the small-batch dense forward (dense.c, gemv_rows is the portable twin:
 * same products, summed in a different order). Compiled with -mavx512f; dense.c calls this
 * only after __builtin_cpu_supports("avx512f"). */
#include "ops.h"

#include <immintrin.h>

void oc_dense_gemv_rows_avx512(int N, int I, int O, const float *x, const float *w,
                               const float *b, float *y, int o0, int o1);

static __mmask16 tail_mask(int left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* y[n][o] = b[o] + x[n] . w[o] for o in [o0, o1): four rows of w at a time, each read once
 * from memory and reused from L1 for every n, two 16-float accumulators per row. */
void oc_dense_gemv_rows_avx512(int N, int I, int O, const float *x, const float *w,
                               const float *b, float *y, int o0, int o1)
{
    for (int o = o0; o < o1; o += 4) {
        const int rows = o1 - o < 4 ? o1 - o : 4;
        const float *w0 = w + (size_t)o * I;
        const float *w1 = rows > 1 ? w0 + I : w0, *w2 = rows > 2 ? w0 + 2 * (size_t)I : w0;
        const float *w3 = rows > 3 ? w0 + 3 * (size_t)I : w0;
        for (int n = 0; n < N; n++) {
            const float *xn = x + (size_t)n * I;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            __m512 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
            int i = 0;
            for (; i + 32 <= I; i += 32) {
                __m512 xa = _mm512_loadu_ps(xn + i), xb = _mm512_loadu_ps(xn + i + 16);
                a0 = _mm512_fmadd_ps(xa, _mm512_loadu_ps(w0 + i), a0);
                a1 = _mm512_fmadd_ps(xa, _mm512_loadu_ps(w1 + i), a1);
                a2 = _mm512_fmadd_ps(xa, _mm512_loadu_ps(w2 + i), a2);
                a3 = _mm512_fmadd_ps(xa, _mm512_loadu_ps(w3 + i), a3);
                c0 = _mm512_fmadd_ps(xb, _mm512_loadu_ps(w0 + i + 16), c0);
                c1 = _mm512_fmadd_ps(xb, _mm512_loadu_ps(w1 + i + 16), c1);
                c2 = _mm512_fmadd_ps(xb, _mm512_loadu_ps(w2 + i + 16), c2);
                c3 = _mm512_fmadd_ps(xb, _mm512_loadu_ps(w3 + i + 16), c3);
            }
            for (; i < I; i += 16) {
                __mmask16 m = tail_mask(I - i);
                __m512 xa = _mm512_maskz_loadu_ps(m, xn + i);
                a0 = _mm512_fmadd_ps(xa, _mm512_maskz_loadu_ps(m, w0 + i), a0);
                a1 = _mm512_fmadd_ps(xa, _mm512_maskz_loadu_ps(m, w1 + i), a1);
                a2 = _mm512_fmadd_ps(xa, _mm512_maskz_loadu_ps(m, w2 + i), a2);
                a3 = _mm512_fmadd_ps(xa, _mm512_maskz_loadu_ps(m, w3 + i), a3);
            }
            float s[4] = {_mm512_reduce_add_ps(_mm512_add_ps(a0, c0)),
                          _mm512_reduce_add_ps(_mm512_add_ps(a1, c1)),
                          _mm512_reduce_add_ps(_mm512_add_ps(a2, c2)),
                          _mm512_reduce_add_ps(_mm512_add_ps(a3, c3))};
            for (int r = 0; r < rows; r++)
                y[(size_t)n * O + o + r] = b ? b[o + r] + s[r] : s[r];
        }
    }
}
