/* The conv output epilogue (ops.h, oc_gemm_epi) on one AVX-512 vector, for the kernels that
 * apply it in registers before their store (the GEMM tiles, the depthwise tiles). Only for
 * files compiled with AVX-512 enabled. */
#ifndef OC_EPI_AVX512_H
#define OC_EPI_AVX512_H

#include "ops.h"

#include <immintrin.h>

/* epilogue.c's epi_row on one vector, in its operations and order (no FMA: (a + pre) * scale
 * + shift + res, then the clamps as compare and select, keeping NaN and -0, as its
 * `v < 0 ? 0 : v`): co indexes pre / scale / shift, ro res; m masks the lanes. */
static inline __attribute__((always_inline)) __m512 oc_epi_vec(const oc_gemm_epi *e, __m512 a,
                                                               ptrdiff_t ro, ptrdiff_t co,
                                                               __mmask16 m)
{
    __m512 v = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, e->pre + co));
    v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, e->scale + co)),
                      _mm512_maskz_loadu_ps(m, e->shift + co));
    if (e->res)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, e->res + ro));
    if (e->act == OC_ACT_RELU || e->act == OC_ACT_RELU6) {
        const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, zero);
        if (e->act == OC_ACT_RELU6)
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, six, _CMP_GT_OQ), v, six);
    }
    return v;
}

#endif /* OC_EPI_AVX512_H */
