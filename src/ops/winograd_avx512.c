/* Winograd F(2x2, 3x3) tile transforms with AVX-512 (compiled with -mavx512f; winograd.c calls
 * them only on CPUs that have it). Each works on 16 channels at a time, the last vector masked.
 *
 * With the 4x4 input tile d, the 3x3 filter g and the 4x4 product m (Lavin & Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016):
 *   V = B^T d B,  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   Y = A^T m A,  A^T = [1 1 1 0; 0 1 -1 -1]
 * (the filter transform U = G g G^T is done once, in portable code, when weights are packed). */
#include "ops/ops.h"

#include <immintrin.h>
#include <stddef.h>

void oc_wino_input_tile_avx512(const float *const *rows, const int *cols_ok, int C, int col0,
                               float *v, ptrdiff_t xi_stride);
void oc_wino_output_tile_avx512(const float *m, ptrdiff_t xi_stride, int K, float *y0,
                                float *y1, int two_cols, int accum);

static __mmask16 lanes(int left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* V[xi][c] (xi = 4*i + j, xi_stride floats apart) of the tile whose input rows are rows[0..3]
 * (NULL: outside the image) and columns col0 .. col0 + 3 (cols_ok[j]: inside). */
void oc_wino_input_tile_avx512(const float *const *rows, const int *cols_ok, int C, int col0,
                               float *v, ptrdiff_t xi_stride)
{
    for (int c0 = 0; c0 < C; c0 += 16) {
        const __mmask16 m = lanes(C - c0);
        __m512 d[4][4], t[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                d[i][j] = rows[i] && cols_ok[j]
                              ? _mm512_maskz_loadu_ps(m, rows[i] + (ptrdiff_t)(col0 + j) * C + c0)
                              : _mm512_setzero_ps();
        for (int j = 0; j < 4; j++) { /* B^T d, column by column */
            t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
            t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
            t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
            t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
        }
        for (int i = 0; i < 4; i++) { /* (B^T d) B, row by row */
            float *vi = v + (ptrdiff_t)4 * i * xi_stride + c0;
            _mm512_mask_storeu_ps(vi, m, _mm512_sub_ps(t[i][0], t[i][2]));
            _mm512_mask_storeu_ps(vi + xi_stride, m, _mm512_add_ps(t[i][1], t[i][2]));
            _mm512_mask_storeu_ps(vi + 2 * xi_stride, m, _mm512_sub_ps(t[i][2], t[i][1]));
            _mm512_mask_storeu_ps(vi + 3 * xi_stride, m, _mm512_sub_ps(t[i][1], t[i][3]));
        }
    }
}

static void put(float *y, __mmask16 mk, __m512 v, int accum)
{
    if (accum)
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, y), v);
    _mm512_mask_storeu_ps(y, mk, v);
}

/* The 2x2 outputs of one tile from its products m[xi][k] (xi_stride floats apart): row 0 to
 * y0, row 1 to y1 (NULL: below the image), the second column only if two_cols; added to what
 * y holds with accum. */
void oc_wino_output_tile_avx512(const float *m, ptrdiff_t xi_stride, int K, float *y0,
                                float *y1, int two_cols, int accum)
{
    for (int k0 = 0; k0 < K; k0 += 16) {
        const __mmask16 mk = lanes(K - k0);
        __m512 p[4][4], o[2][4];
        for (int xi = 0; xi < 16; xi++)
            p[xi / 4][xi % 4] = _mm512_maskz_loadu_ps(mk, m + xi * xi_stride + k0);
        for (int j = 0; j < 4; j++) { /* A^T m */
            o[0][j] = _mm512_add_ps(_mm512_add_ps(p[0][j], p[1][j]), p[2][j]);
            o[1][j] = _mm512_sub_ps(_mm512_sub_ps(p[1][j], p[2][j]), p[3][j]);
        }
        for (int i = 0; i < 2; i++) { /* (A^T m) A */
            float *yr = i ? y1 : y0;
            if (!yr)
                continue;
            put(yr + k0, mk, _mm512_add_ps(_mm512_add_ps(o[i][0], o[i][1]), o[i][2]), accum);
            if (two_cols)
                put(yr + K + k0, mk, _mm512_sub_ps(_mm512_sub_ps(o[i][1], o[i][2]), o[i][3]),
                    accum);
        }
    }
}
