/* AVX-512 depthwise convolution rows and col2im's add (see conv2d.c for the layouts and the
 * portable twins dw_fwd_row, dw_bwd_data_row, dw_bwd_weights_row, add_to, which compute the
 * same sums; results differ only by rounding: FMA, and the weight gradient's summation order).
 * Compiled with -mavx512f; conv2d.c calls these only after __builtin_cpu_supports("avx512f").
 * Masked loads and stores handle C % 16 != 0. */
#include "ops.h"

#include <immintrin.h>

void oc_conv2d_dw_fwd_row_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                 const float *b, float *y, int n, int p);
void oc_conv2d_dw_bwd_data_row_avx512(const oc_conv_shape *s, const float *dy, const float *wt,
                                      float *dx, int n, int h);
void oc_conv2d_dw_bwd_weights_row_avx512(const oc_conv_shape *s, const float *x, const float *dy,
                                         float *part, int n, int p);
void oc_conv2d_add_avx512(float *d, const float *v, int64_t n);

static __mmask16 tail_mask(int left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* One output row: channel blocks outermost, so the accumulators stay in registers across all
 * R*S taps; 64 channels (four independent FMA chains) at a time, then 16 with a masked tail. */
void oc_conv2d_dw_fwd_row_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                 const float *b, float *y, int n, int p)
{
    const int C = s->C;
    int r0 = 0, r1 = s->R;
    while (r0 < r1 && p * s->stride_h - s->pad_h + r0 * s->dil_h < 0)
        r0++;
    while (r1 > r0 && p * s->stride_h - s->pad_h + (r1 - 1) * s->dil_h >= s->H)
        r1--;
    for (int q = 0; q < s->Q; q++) {
        float *out = y + (((int64_t)n * s->P + p) * s->Q + q) * C;
        int t0 = 0, t1 = s->S;
        while (t0 < t1 && q * s->stride_w - s->pad_w + t0 * s->dil_w < 0)
            t0++;
        while (t1 > t0 && q * s->stride_w - s->pad_w + (t1 - 1) * s->dil_w >= s->W)
            t1--;
        int c = 0;
        for (; c + 64 <= C; c += 64) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            if (b) {
                a0 = _mm512_loadu_ps(b + c);
                a1 = _mm512_loadu_ps(b + c + 16);
                a2 = _mm512_loadu_ps(b + c + 32);
                a3 = _mm512_loadu_ps(b + c + 48);
            }
            for (int r = r0; r < r1; r++) {
                int h = p * s->stride_h - s->pad_h + r * s->dil_h;
                const float *xrow = x + ((int64_t)n * s->H + h) * s->W * C + c;
                const float *wrow = wt + (int64_t)r * s->S * C + c;
                for (int t = t0; t < t1; t++) {
                    int ww = q * s->stride_w - s->pad_w + t * s->dil_w;
                    const float *xp = xrow + (int64_t)ww * C, *wp = wrow + (int64_t)t * C;
                    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp), _mm512_loadu_ps(wp), a0);
                    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xp + 16), _mm512_loadu_ps(wp + 16), a1);
                    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(xp + 32), _mm512_loadu_ps(wp + 32), a2);
                    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(xp + 48), _mm512_loadu_ps(wp + 48), a3);
                }
            }
            _mm512_storeu_ps(out + c, a0);
            _mm512_storeu_ps(out + c + 16, a1);
            _mm512_storeu_ps(out + c + 32, a2);
            _mm512_storeu_ps(out + c + 48, a3);
        }
        for (; c < C; c += 16) {
            __mmask16 m = tail_mask(C - c);
            __m512 acc = b ? _mm512_maskz_loadu_ps(m, b + c) : _mm512_setzero_ps();
            for (int r = r0; r < r1; r++) {
                int h = p * s->stride_h - s->pad_h + r * s->dil_h;
                const float *xrow = x + ((int64_t)n * s->H + h) * s->W * C + c;
                const float *wrow = wt + (int64_t)r * s->S * C + c;
                for (int t = t0; t < t1; t++) {
                    int ww = q * s->stride_w - s->pad_w + t * s->dil_w;
                    __m512 xv = _mm512_maskz_loadu_ps(m, xrow + (int64_t)ww * C);
                    __m512 wv = _mm512_maskz_loadu_ps(m, wrow + (int64_t)t * C);
                    acc = _mm512_fmadd_ps(xv, wv, acc);
                }
            }
            _mm512_mask_storeu_ps(out + c, m, acc);
        }
    }
}

/* Mask of the 16-lane block starting `left` channels before the end (0 once past it). */
static __mmask16 block_mask(int left)
{
    return left <= 0 ? (__mmask16)0 : tail_mask(left);
}

/* One input row (n, h) of dx, gathered from every (p, q, r, s) that reads it; 64 channels at a
 * time in four independent accumulators (masked lanes past C load zeros and store nothing). */
void oc_conv2d_dw_bwd_data_row_avx512(const oc_conv_shape *s, const float *dy, const float *wt,
                                      float *dx, int n, int h)
{
    const int C = s->C;
    for (int ww = 0; ww < s->W; ww++) {
        float *dxp = dx + (((int64_t)n * s->H + h) * s->W + ww) * C;
        for (int c = 0; c < C; c += 64) {
            __mmask16 m0 = block_mask(C - c), m1 = block_mask(C - c - 16);
            __mmask16 m2 = block_mask(C - c - 32), m3 = block_mask(C - c - 48);
            __m512 a0 = _mm512_maskz_loadu_ps(m0, dxp + c);
            __m512 a1 = _mm512_maskz_loadu_ps(m1, dxp + c + 16);
            __m512 a2 = _mm512_maskz_loadu_ps(m2, dxp + c + 32);
            __m512 a3 = _mm512_maskz_loadu_ps(m3, dxp + c + 48);
            for (int r = 0; r < s->R; r++) {
                int tp = h + s->pad_h - r * s->dil_h;
                if (tp < 0 || tp % s->stride_h || tp / s->stride_h >= s->P)
                    continue;
                int p = tp / s->stride_h;
                for (int t = 0; t < s->S; t++) {
                    int tq = ww + s->pad_w - t * s->dil_w;
                    if (tq < 0 || tq % s->stride_w || tq / s->stride_w >= s->Q)
                        continue;
                    int q = tq / s->stride_w;
                    const float *d = dy + (((int64_t)n * s->P + p) * s->Q + q) * C + c;
                    const float *wp = wt + ((int64_t)r * s->S + t) * C + c;
                    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, d),
                                         _mm512_maskz_loadu_ps(m0, wp), a0);
                    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, d + 16),
                                         _mm512_maskz_loadu_ps(m1, wp + 16), a1);
                    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m2, d + 32),
                                         _mm512_maskz_loadu_ps(m2, wp + 32), a2);
                    a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m3, d + 48),
                                         _mm512_maskz_loadu_ps(m3, wp + 48), a3);
                }
            }
            _mm512_mask_storeu_ps(dxp + c, m0, a0);
            _mm512_mask_storeu_ps(dxp + c + 16, m1, a1);
            _mm512_mask_storeu_ps(dxp + c + 32, m2, a2);
            _mm512_mask_storeu_ps(dxp + c + 48, m3, a3);
        }
    }
}

/* part[R][S][C] += x-patch * dy, part[R*S][C] += dy, over output row (n, p). Taps outermost and
 * the output columns q innermost, so each tap's 64-channel partial sums stay in four registers
 * across the row (this sums over q before adding to part, unlike the portable twin). */
void oc_conv2d_dw_bwd_weights_row_avx512(const oc_conv_shape *s, const float *x, const float *dy,
                                         float *part, int n, int p)
{
    const int C = s->C, RS = s->R * s->S;
    const float *dyrow = dy + ((int64_t)n * s->P + p) * s->Q * C;
    for (int c = 0; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        __m512 acc = _mm512_maskz_loadu_ps(m, part + (int64_t)RS * C + c);
        for (int q = 0; q < s->Q; q++)
            acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, dyrow + (int64_t)q * C + c));
        _mm512_mask_storeu_ps(part + (int64_t)RS * C + c, m, acc);
    }
    for (int r = 0; r < s->R; r++) {
        int h = p * s->stride_h - s->pad_h + r * s->dil_h;
        if (h < 0 || h >= s->H)
            continue;
        const float *xrow = x + ((int64_t)n * s->H + h) * s->W * C;
        for (int t = 0; t < s->S; t++) {
            /* columns q whose tap t lands inside the row: 0 <= q*stride + base < W */
            int base = t * s->dil_w - s->pad_w, sw = s->stride_w;
            int q0 = base < 0 ? (-base + sw - 1) / sw : 0;
            int q1 = base <= s->W - 1 ? (s->W - 1 - base) / sw + 1 : 0;
            float *pw = part + ((int64_t)r * s->S + t) * C;
            if (q1 > s->Q)
                q1 = s->Q;
            for (int c = 0; c < C; c += 64) {
                __mmask16 m0 = block_mask(C - c), m1 = block_mask(C - c - 16);
                __mmask16 m2 = block_mask(C - c - 32), m3 = block_mask(C - c - 48);
                __m512 a0 = _mm512_maskz_loadu_ps(m0, pw + c);
                __m512 a1 = _mm512_maskz_loadu_ps(m1, pw + c + 16);
                __m512 a2 = _mm512_maskz_loadu_ps(m2, pw + c + 32);
                __m512 a3 = _mm512_maskz_loadu_ps(m3, pw + c + 48);
                for (int q = q0; q < q1; q++) {
                    const float *xp = xrow + (int64_t)(q * sw + base) * C + c;
                    const float *d = dyrow + (int64_t)q * C + c;
                    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, xp),
                                         _mm512_maskz_loadu_ps(m0, d), a0);
                    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, xp + 16),
                                         _mm512_maskz_loadu_ps(m1, d + 16), a1);
                    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m2, xp + 32),
                                         _mm512_maskz_loadu_ps(m2, d + 32), a2);
                    a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m3, xp + 48),
                                         _mm512_maskz_loadu_ps(m3, d + 48), a3);
                }
                _mm512_mask_storeu_ps(pw + c, m0, a0);
                _mm512_mask_storeu_ps(pw + c + 16, m1, a1);
                _mm512_mask_storeu_ps(pw + c + 32, m2, a2);
                _mm512_mask_storeu_ps(pw + c + 48, m3, a3);
            }
        }
    }
}

/* d[0..n) += v[0..n) (col2im's inner loop). */
void oc_conv2d_add_avx512(float *d, const float *v, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(d + i, _mm512_add_ps(_mm512_loadu_ps(d + i), _mm512_loadu_ps(v + i)));
    if (i < n) {
        __mmask16 m = tail_mask((int)(n - i));
        __m512 dv = _mm512_maskz_loadu_ps(m, d + i);
        _mm512_mask_storeu_ps(d + i, m, _mm512_add_ps(dv, _mm512_maskz_loadu_ps(m, v + i)));
    }
}
