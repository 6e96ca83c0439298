/* AVX-512 max pooling window (see pool.c for the layout and the portable twin max_window,
 * which computes the same maxima and indices bit for bit: only comparisons and selects).
 * Compiled with -mavx512f; pool.c calls it only after __builtin_cpu_supports("avx512f"). */
#include "ops.h"

#include <immintrin.h>

void oc_maxpool_window_avx512(int C, int W, const float *xn, int h0, int h1, int w0, int w1,
                              float *y, int32_t *am);

/* Channel blocks outermost so the running maximum and its index stay in registers across the
 * whole window; a masked tail handles C % 16 != 0. PyTorch's test per element: take the new
 * value when it is greater (strict, so the first maximum in row-major order wins) or NaN. */
void oc_maxpool_window_avx512(int C, int W, const float *xn, int h0, int h1, int w0, int w1,
                              float *y, int32_t *am)
{
    for (int c0 = 0; c0 < C; c0 += 16) {
        int left = C - c0;
        __mmask16 k = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        const float *x0 = xn + ((int64_t)h0 * W + w0) * C + c0;
        __m512 m = _mm512_maskz_loadu_ps(k, x0);
        __m512i a = _mm512_set1_epi32(h0 * W + w0);
        for (int h = h0; h < h1; h++)
            for (int w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                __m512 v = _mm512_maskz_loadu_ps(k, xn + ((int64_t)h * W + w) * C + c0);
                __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) |
                                 _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                m = _mm512_mask_mov_ps(m, take, v);
                a = _mm512_mask_mov_epi32(a, take, _mm512_set1_epi32(h * W + w));
            }
        _mm512_mask_storeu_ps(y + c0, k, m);
        _mm512_mask_storeu_epi32(am + c0, k, a);
    }
}
