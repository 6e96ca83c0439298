/* AVX-512 depthwise convolution rows and col2im's add (see conv2d.c for the layouts and the
 * portable twins dw_fwd_row, dw_bwd_data_row, dw_bwd_weights_row, add_to, which compute the
 * same sums; results differ only by rounding: FMA, and the weight gradient's summation order).
 * Compiled with -mavx512f; conv2d.c calls these only after __builtin_cpu_supports("avx512f").
 * Masked loads and stores handle C % 16 != 0. */
#include "epi_avx512.h"
#include "ops.h"

#include <immintrin.h>

void oc_conv2d_dw_fwd_row_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                 const float *b, const oc_conv_epilogue *e, float *y, int n,
                                 int p);
void oc_conv2d_dw_bwd_data_row_avx512(const oc_conv_shape *s, const float *dy, const float *wt,
                                      float *dx, int n, int h, int set);
void oc_conv2d_dw_bwd_weights_row_avx512(const oc_conv_shape *s, const float *x, const float *dy,
                                         float *part, int n, int p);
void oc_conv2d_add_avx512(float *d, const float *v, int64_t n);
void oc_conv2d_col_sums_avx512(float *acc, const float *dy, int64_t i0, int64_t i1, int K);

static __mmask16 tail_mask(int left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* Output columns [q0, q1) of one output row, every tap read from memory: channel blocks
 * outermost, so the accumulators stay in registers across all R*S taps; 64 channels (four
 * independent FMA chains) at a time, then 16 with a masked tail. Any stride, padding and
 * dilation; the row's border columns and the shapes dw_fwd_tab lacks come here. */
static void dw_fwd_cols(const oc_conv_shape *s, const float *x, const float *wt, const float *b,
                        float *y, int n, int p, int r0, int r1, int q0, int q1)
{
    const int C = s->C;
    for (int q = q0; q < q1; q++) {
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

/* The interior tile: QB adjacent output columns (all S taps inside the row, dilation 1 across)
 * by 16*V channels, for kernel width KS and column stride SW fixed at compile time. The tile's
 * QB*V accumulators and one kernel row's KS*V weight vectors sit in registers, and each input
 * vector, loaded once per kernel row, feeds every output that reads it: input column j meets
 * output i through tap t = j - i*SW. Walking j upwards gives each output its taps in ascending t,
 * so every output still sums bias (or zero), then r ascending, t ascending, one FMA each: the
 * same sequence, so the same bits, as dw_fwd_cols. x0: the input at the tile's first tap of
 * kernel row r0; xrs, wrs: floats between consecutive kernel rows in x and in wt. With ep (at
 * the tile's first channel and output), the fused epilogue runs on the accumulators before the
 * store (epi_avx512.h), so its results are bitwise those of oc_conv_epilogue_apply on the
 * stored row. */
typedef void (*dw_fwd_fn)(const float *x0, ptrdiff_t xrs, int nr, const float *w0, ptrdiff_t wrs,
                          int C, const float *b, const oc_gemm_epi *ep, float *out,
                          __mmask16 mlast);

#define DW_FWD_KERNEL(KS, SW, QB, V)                                                              \
    static void dw_fwd_##KS##s##SW##_##QB##x##V(const float *x0, ptrdiff_t xrs, int nr,           \
                                               const float *w0, ptrdiff_t wrs, int C,             \
                                               const float *b, const oc_gemm_epi *ep,             \
                                               float *out, __mmask16 mlast)                       \
    {                                                                                             \
        __m512 acc[QB][V];                                                                        \
        _Pragma("GCC unroll 8") for (int i = 0; i < QB; i++)                                      \
            _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                                   \
                acc[i][v] = b ? _mm512_maskz_loadu_ps(v == V - 1 ? mlast : (__mmask16)0xffff,     \
                                                      b + 16 * v)                                 \
                              : _mm512_setzero_ps();                                              \
        for (int r = 0; r < nr; r++) {                                                            \
            const float *xr = x0 + r * xrs, *wr = w0 + r * wrs;                                   \
            __m512 w[KS][V];                                                                      \
            _Pragma("GCC unroll 5") for (int t = 0; t < KS; t++)                                  \
                _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                               \
                    w[t][v] = _mm512_maskz_loadu_ps(v == V - 1 ? mlast : (__mmask16)0xffff,       \
                                                    wr + (ptrdiff_t)t * C + 16 * v);              \
            _Pragma("GCC unroll 20") for (int j = 0; j < (QB - 1) * SW + KS; j++)                 \
                _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                               \
                {                                                                                 \
                    __m512 xv = _mm512_maskz_loadu_ps(v == V - 1 ? mlast : (__mmask16)0xffff,     \
                                                      xr + (ptrdiff_t)j * C + 16 * v);            \
                    _Pragma("GCC unroll 8") for (int i = 0; i < QB; i++)                          \
                    {                                                                             \
                        const int t = j - i * SW, in = t >= 0 && t < KS;                          \
                        if (in)                                                                   \
                            acc[i][v] = _mm512_fmadd_ps(xv, w[in ? t : 0][v], acc[i][v]);         \
                    }                                                                             \
                }                                                                                 \
        }                                                                                         \
        if (ep)                                                                                   \
            _Pragma("GCC unroll 8") for (int i = 0; i < QB; i++)                                  \
                _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                               \
                    acc[i][v] = oc_epi_vec(ep, acc[i][v], (ptrdiff_t)i * C + 16 * v, 16 * v,      \
                                           v == V - 1 ? mlast : (__mmask16)0xffff);               \
        _Pragma("GCC unroll 8") for (int i = 0; i < QB; i++)                                      \
            _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                                   \
                _mm512_mask_storeu_ps(out + (ptrdiff_t)i * C + 16 * v,                            \
                                      v == V - 1 ? mlast : (__mmask16)0xffff, acc[i][v]);         \
    }

#define DW_FWD_KERNELS(KS, SW)                                                                    \
    DW_FWD_KERNEL(KS, SW, 8, 1)                                                                   \
    DW_FWD_KERNEL(KS, SW, 4, 1)                                                                   \
    DW_FWD_KERNEL(KS, SW, 2, 1)                                                                   \
    DW_FWD_KERNEL(KS, SW, 1, 1)                                                                   \
    DW_FWD_KERNEL(KS, SW, 8, 2)                                                                   \
    DW_FWD_KERNEL(KS, SW, 4, 2)                                                                   \
    DW_FWD_KERNEL(KS, SW, 2, 2)                                                                   \
    DW_FWD_KERNEL(KS, SW, 1, 2)

DW_FWD_KERNELS(3, 1)
DW_FWD_KERNELS(3, 2)
DW_FWD_KERNELS(5, 1)
DW_FWD_KERNELS(5, 2)

#define DW_FWD_ROW(KS, SW)                                                                        \
    {                                                                                             \
        {dw_fwd_##KS##s##SW##_1x1, dw_fwd_##KS##s##SW##_2x1, dw_fwd_##KS##s##SW##_4x1,            \
         dw_fwd_##KS##s##SW##_8x1},                                                               \
        {dw_fwd_##KS##s##SW##_1x2, dw_fwd_##KS##s##SW##_2x2, dw_fwd_##KS##s##SW##_4x2,            \
         dw_fwd_##KS##s##SW##_8x2},                                                               \
    }

/* [kernel width 3, 5][stride 1, 2][V - 1][log2 QB]; QB <= 8 and V <= 2 keep the tile, a kernel
 * row's weights and the input vectors within 32 zmm (8*2 + 5*2 + 2 at most) */
static const dw_fwd_fn dw_fwd_tab[2][2][2][4] = {
    {DW_FWD_ROW(3, 1), DW_FWD_ROW(3, 2)},
    {DW_FWD_ROW(5, 1), DW_FWD_ROW(5, 2)},
};

/* One output row (n, p): the columns whose S taps all fall inside the input row go through the
 * register tiles above, 8 columns at a time (then 4, 2, 1), each tile sweeping the channels 32
 * at a time (then a masked block of up to 16 or 32), so the tile's input columns stay in L1
 * across the channel blocks; the border columns, and shapes without a tile, take dw_fwd_cols.
 * With e (b is then NULL) the row gets the fused epilogue: the tiles apply it in registers, the
 * other columns through oc_conv_epilogue_apply, and activations other than ReLU, ReLU6 and
 * identity run per output pixel afterwards, as oc_conv_epilogue_apply runs them. */
void oc_conv2d_dw_fwd_row_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                 const float *b, const oc_conv_epilogue *e, float *y, int n,
                                 int p)
{
    const int C = s->C, S = s->S, sw = s->stride_w;
    const int64_t m0 = ((int64_t)n * s->P + p) * s->Q; /* the row's first output pixel */
    int r0 = 0, r1 = s->R;
    while (r0 < r1 && p * s->stride_h - s->pad_h + r0 * s->dil_h < 0)
        r0++;
    while (r1 > r0 && p * s->stride_h - s->pad_h + (r1 - 1) * s->dil_h >= s->H)
        r1--;
    /* interior columns [qa, qb): q*sw - pad_w >= 0 and q*sw - pad_w + S - 1 <= W - 1 */
    int qa = 0, qb = 0;
    if ((S == 3 || S == 5) && (sw == 1 || sw == 2) && s->dil_w == 1 && s->W - S + s->pad_w >= 0) {
        qa = (s->pad_w + sw - 1) / sw;
        qb = (s->W - S + s->pad_w) / sw + 1;
        if (qb > s->Q)
            qb = s->Q;
    }
    if (qa >= qb) {
        dw_fwd_cols(s, x, wt, b, y, n, p, r0, r1, 0, s->Q);
        if (e)
            oc_conv_epilogue_apply(e, m0, m0 + s->Q, 0, C, C, y);
        return;
    }
    dw_fwd_cols(s, x, wt, b, y, n, p, r0, r1, 0, qa);
    dw_fwd_cols(s, x, wt, b, y, n, p, r0, r1, qb, s->Q);
    oc_gemm_epi ep = {NULL, NULL, NULL, NULL, C, OC_ACT_IDENTITY};
    int inl = 1; /* the activation runs inside the tiles */
    if (e) {
        oc_conv_epilogue_apply(e, m0, m0 + qa, 0, C, C, y);
        oc_conv_epilogue_apply(e, m0 + qb, m0 + s->Q, 0, C, C, y);
        inl = oc_gemm_epi_act(e->act);
        ep.act = inl ? e->act : OC_ACT_IDENTITY;
    }
    const dw_fwd_fn(*tab)[4] = dw_fwd_tab[S == 5][sw == 2];
    const ptrdiff_t xrs = (ptrdiff_t)s->dil_h * s->W * C, wrs = (ptrdiff_t)S * C;
    const float *xrow = x + ((int64_t)n * s->H + p * s->stride_h - s->pad_h + r0 * s->dil_h) *
                                s->W * C;
    const float *w0 = wt + (int64_t)r0 * S * C;
    float *yrow = y + m0 * C;
    for (int q = qa; q < qb;) {
        int l = 3;
        while ((1 << l) > qb - q)
            l--;
        const float *xq = xrow + (int64_t)(q * sw - s->pad_w) * C;
        for (int c = 0; c < C; c += 32) {
            int left = C - c, v = left > 16 ? 2 : 1;
            __mmask16 mlast = tail_mask(left - 16 * (v - 1));
            float *out = yrow + (int64_t)q * C + c;
            if (e) {
                ep.pre = e->pre + c;
                ep.scale = e->scale + c;
                ep.shift = e->shift + c;
                ep.res = e->res ? e->res + (out - y) : NULL;
            }
            tab[v - 1][l](xq + c, xrs, r1 - r0, w0 + c, wrs, C, b ? b + c : NULL, e ? &ep : NULL,
                          out, mlast);
        }
        q += 1 << l;
    }
    if (!inl)
        for (int q = qa; q < qb; q++)
            oc_act_fwd(e->act, e->alpha, C, yrow + (int64_t)q * C, yrow + (int64_t)q * C);
}

/* Mask of the 16-lane block starting `left` channels before the end (0 once past it). */
static __mmask16 block_mask(int left)
{
    return left <= 0 ? (__mmask16)0 : tail_mask(left);
}

/* Columns [w0, w1) of input row (n, h) of dx, each gathered from every (p, q, r, s) that reads
 * it, every tap read from memory; 64 channels at a time in four independent accumulators
 * (masked lanes past C load zeros and store nothing). Any stride, padding and dilation; the
 * row's border columns and the shapes dw_bwd_tab lacks come here. */
static void dw_bwd_data_cols(const oc_conv_shape *s, const float *dy, const float *wt, float *dx,
                             int n, int h, int w0, int w1, int set)
{
    const int C = s->C;
    for (int ww = w0; ww < w1; ww++) {
        float *dxp = dx + (((int64_t)n * s->H + h) * s->W + ww) * C;
        for (int c = 0; c < C; c += 64) {
            __mmask16 m0 = block_mask(C - c), m1 = block_mask(C - c - 16);
            __mmask16 m2 = block_mask(C - c - 32), m3 = block_mask(C - c - 48);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            if (!set) {
                a0 = _mm512_maskz_loadu_ps(m0, dxp + c);
                a1 = _mm512_maskz_loadu_ps(m1, dxp + c + 16);
                a2 = _mm512_maskz_loadu_ps(m2, dxp + c + 32);
                a3 = _mm512_maskz_loadu_ps(m3, dxp + c + 48);
            }
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

/* The interior tile of backward-data, for column stride sw (1 or 2) and dilation 1 across: QB
 * input columns ww0 + i*sw of one residue class mod sw, by 16*V channels. The taps that reach a
 * column of that class are t = t0 + k*sw, k < KS (t0 fixed by the class), meeting dy column
 * (ww0 + i*sw + pad_w - t) / sw = qb + i - k, qb = (ww0 + pad_w - t0) / sw; in the tile every
 * one of them lands inside dy's row. Counting dy columns j from qb - (KS - 1), k = i + KS - 1 - j,
 * so walking j downwards hands each column its taps in ascending t, and the kernel rows come in
 * ascending r: each dx value adds the same products in the same order, one FMA each, as
 * dw_bwd_data_cols, which skips the taps of the other classes. rows[k], wrows[k]: the dy row and
 * the weight row of the k-th kernel row that reaches this input row; off: floats from the start
 * of a dy row to the tile's first dy column and channel; wo: from a weight row to tap t0 and the
 * channel; wts = sw*C floats between the class's taps, os = sw*C between the tile's dx columns. */
typedef void (*dw_bwd_fn)(const float *const *rows, const float *const *wrows, int nr,
                          ptrdiff_t off, ptrdiff_t wo, ptrdiff_t wts, ptrdiff_t os, int C,
                          float *dxp, __mmask16 mlast, int set);

#define DW_BWD_KERNEL(KS, QB, V)                                                                  \
    static void dw_bwd_##KS##_##QB##x##V(const float *const *rows, const float *const *wrows,    \
                                         int nr, ptrdiff_t off, ptrdiff_t wo, ptrdiff_t wts,      \
                                         ptrdiff_t os, int C, float *dxp, __mmask16 mlast,        \
                                         int set)                                                 \
    {                                                                                             \
        __m512 acc[QB][V];                                                                        \
        _Pragma("GCC unroll 8") for (int i = 0; i < QB; i++)                                      \
            _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                                   \
                acc[i][v] = set ? _mm512_setzero_ps()                                             \
                                : _mm512_maskz_loadu_ps(v == V - 1 ? mlast : (__mmask16)0xffff,   \
                                                        dxp + i * os + 16 * v);                   \
        for (int k = 0; k < nr; k++) {                                                            \
            const float *d = rows[k] + off, *wr = wrows[k] + wo;                                  \
            __m512 w[KS][V];                                                                      \
            _Pragma("GCC unroll 5") for (int t = 0; t < KS; t++)                                  \
                _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                               \
                    w[t][v] = _mm512_maskz_loadu_ps(v == V - 1 ? mlast : (__mmask16)0xffff,       \
                                                    wr + t * wts + 16 * v);                       \
            _Pragma("GCC unroll 12") for (int j = QB + KS - 2; j >= 0; j--)                       \
                _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                               \
                {                                                                                 \
                    __m512 dv = _mm512_maskz_loadu_ps(v == V - 1 ? mlast : (__mmask16)0xffff,     \
                                                      d + (ptrdiff_t)j * C + 16 * v);             \
                    _Pragma("GCC unroll 8") for (int i = 0; i < QB; i++)                          \
                    {                                                                             \
                        const int t = i + KS - 1 - j, in = t >= 0 && t < KS;                      \
                        if (in)                                                                   \
                            acc[i][v] = _mm512_fmadd_ps(dv, w[in ? t : 0][v], acc[i][v]);         \
                    }                                                                             \
                }                                                                                 \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int i = 0; i < QB; i++)                                      \
            _Pragma("GCC unroll 2") for (int v = 0; v < V; v++)                                   \
                _mm512_mask_storeu_ps(dxp + i * os + 16 * v,                                      \
                                      v == V - 1 ? mlast : (__mmask16)0xffff, acc[i][v]);         \
    }

#define DW_BWD_KERNELS(KS)                                                                        \
    DW_BWD_KERNEL(KS, 8, 1)                                                                       \
    DW_BWD_KERNEL(KS, 4, 1)                                                                       \
    DW_BWD_KERNEL(KS, 2, 1)                                                                       \
    DW_BWD_KERNEL(KS, 1, 1)                                                                       \
    DW_BWD_KERNEL(KS, 8, 2)                                                                       \
    DW_BWD_KERNEL(KS, 4, 2)                                                                       \
    DW_BWD_KERNEL(KS, 2, 2)                                                                       \
    DW_BWD_KERNEL(KS, 1, 2)

DW_BWD_KERNELS(1)
DW_BWD_KERNELS(2)
DW_BWD_KERNELS(3)
DW_BWD_KERNELS(5)

#define DW_BWD_ROW(KS)                                                                            \
    {                                                                                             \
        {dw_bwd_##KS##_1x1, dw_bwd_##KS##_2x1, dw_bwd_##KS##_4x1, dw_bwd_##KS##_8x1},             \
        {dw_bwd_##KS##_1x2, dw_bwd_##KS##_2x2, dw_bwd_##KS##_4x2, dw_bwd_##KS##_8x2},             \
    }

/* [taps per class: 1, 2, 3, 5][V - 1][log2 QB]: 3x3 and 5x5 at stride 1, and their classes at
 * stride 2 (3x3: taps {0, 2} and {1}; 5x5: {0, 2, 4} and {1, 3}) */
static const dw_bwd_fn dw_bwd_tab[4][2][4] = {
    DW_BWD_ROW(1), DW_BWD_ROW(2), DW_BWD_ROW(3), DW_BWD_ROW(5),
};

/* Kernel rows a backward-data tile takes; taller kernels use dw_bwd_data_cols throughout. */
#define DW_BWD_MAX_R 16

/* One input row (n, h) of dx: per residue class of the column mod stride_w, the columns where
 * every tap of the class lands inside dy's row go through the register tiles above (3x3 and
 * 5x5, column stride 1 or 2; 8, 4, 2, 1 columns by 32 channels, then a masked block), the other
 * columns and other shapes through dw_bwd_data_cols. With set, the row is written, not added
 * to: the sums start from zero instead of loading dx (the same bits as adding into zeros). */
void oc_conv2d_dw_bwd_data_row_avx512(const oc_conv_shape *s, const float *dy, const float *wt,
                                      float *dx, int n, int h, int set)
{
    const int C = s->C, S = s->S, sw = s->stride_w, pad = s->pad_w;
    if (!((S == 3 || S == 5) && (sw == 1 || sw == 2) && s->dil_w == 1 &&
          s->R <= DW_BWD_MAX_R)) {
        dw_bwd_data_cols(s, dy, wt, dx, n, h, 0, s->W, set);
        return;
    }
    const float *rows[DW_BWD_MAX_R], *wrows[DW_BWD_MAX_R];
    int nr = 0;
    for (int r = 0; r < s->R; r++) {
        int tp = h + s->pad_h - r * s->dil_h;
        if (tp < 0 || tp % s->stride_h || tp / s->stride_h >= s->P)
            continue;
        rows[nr] = dy + ((int64_t)n * s->P + tp / s->stride_h) * s->Q * C;
        wrows[nr++] = wt + (int64_t)r * S * C;
    }
    float *dxrow = dx + ((int64_t)n * s->H + h) * s->W * C;
    const ptrdiff_t wts = (ptrdiff_t)sw * C;
    int lo[2] = {0, 0}, hi[2] = {-1, -1}; /* per class, the tiled columns [lo, hi] */
    for (int cls = 0; cls < sw; cls++) {
        const int t0 = (cls + pad) % sw, ks = (S - t0 + sw - 1) / sw;
        /* first tap's dy column <= Q - 1, last tap's >= 0: */
        int a = t0 + (ks - 1) * sw - pad, b = (s->Q - 1) * sw + t0 - pad;
        if (a < 0)
            a = 0;
        if (b > s->W - 1)
            b = s->W - 1;
        a += ((cls - a) % sw + sw) % sw; /* up to the class */
        b -= ((b - cls) % sw + sw) % sw; /* down to the class */
        if (a > b)
            continue;
        lo[cls] = a;
        hi[cls] = b;
        const dw_bwd_fn(*tab)[4] = dw_bwd_tab[ks == 5 ? 3 : ks - 1];
        for (int ww = a; ww <= b;) {
            int l = 3;
            while ((1 << l) > (b - ww) / sw + 1)
                l--;
            const ptrdiff_t off = (ptrdiff_t)((ww + pad - t0) / sw - (ks - 1)) * C;
            for (int c = 0; c < C; c += 32) {
                int left = C - c, v = left > 16 ? 2 : 1;
                __mmask16 mlast = tail_mask(left - 16 * (v - 1));
                tab[v - 1][l](rows, wrows, nr, off + c, (ptrdiff_t)t0 * C + c, wts, wts, C,
                              dxrow + (int64_t)ww * C + c, mlast, set);
            }
            ww += sw << l;
        }
    }
    for (int ww = 0; ww < s->W;) { /* the rest, in runs */
        int e = ww;
        while (e < s->W && !(e >= lo[e % sw] && e <= hi[e % sw]))
            e++;
        dw_bwd_data_cols(s, dy, wt, dx, n, h, ww, e, set);
        ww = e + 1;
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

/* acc[K] = sum over rows [i0, i1) of dy[i][K] (the bias gradient's blocks): 64 channels at a
 * time in four registers, rows in order, so each channel's sum is the scalar loop's. */
void oc_conv2d_col_sums_avx512(float *acc, const float *dy, int64_t i0, int64_t i1, int K)
{
    for (int k0 = 0; k0 < K; k0 += 64) {
        __mmask16 m[4];
        __m512 a[4];
        for (int v = 0; v < 4; v++) {
            int left = K - k0 - 16 * v;
            m[v] = left <= 0 ? 0 : tail_mask(left);
            a[v] = _mm512_setzero_ps();
        }
        for (int64_t i = i0; i < i1; i++) {
            const float *d = dy + i * K + k0;
            for (int v = 0; v < 4; v++)
                a[v] = _mm512_add_ps(a[v], _mm512_maskz_loadu_ps(m[v], d + 16 * v));
        }
        for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(acc + k0 + 16 * v, m[v], a[v]);
    }
}

/* ---------------------------------------------------------------- direct 3x3 convolution
 * Stride 1, padding 1, no dilation, one group (P == H, Q == W): the 3x3 "same" convolution of
 * the CIFAR ResNets and the Keras cnn. No im2col: a register tile of MR output pixels (one row,
 * consecutive columns) by 16*KV output channels sums over the three kernel rows r and the input
 * channels c. Along a row, input column `col` feeds output col+1-s through tap s, so each
 * broadcast x value is multiplied into up to three accumulators (the three taps s) with the
 * three weight vectors of (r, c): 3*MR*KV FMAs per 3*KV + MR + 2 loads, FMA-bound even at
 * K = 16 where an im2col GEMM loads one broadcast per FMA.
 *
 * Weights come packed as wt[r][s][c][Kp] (Kp = K rounded up to 16, zero padded; conv2d.c
 * packs them). Backward-data is the same kernel on dy with the kernel flipped and the channel
 * roles swapped (wt[r][s][k][Cp] = w[k][2-r][2-s][c]), accumulating into dx.
 *
 * Two flavours share the code, each a 4-byte unit per "channel": F32, fp32 values and FMAs;
 * B16 (bf16 math), bf16 pairs of channels (2c, 2c+1), low half first, and vdpbf16ps, which
 * adds both products of a pair into the fp32 lane: twice the multiply-adds per instruction.
 * In B16, C counts pairs (ceil(channels / 2), an odd count's last high half zero), x is the
 * input rounded to bf16 (conv2d.c converts it) and wt[r][s][cp][Kp] holds the pairs
 * (w[k][r][s][2cp], w[k][r][s][2cp+1]). Accumulators, bias and output stay fp32. */
#define F32_WT __m512
#define F32_LOAD(p) _mm512_loadu_ps(p)
#define F32_MLOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define F32_BCAST(p) _mm512_set1_ps(*(p))
#define F32_ZERO() _mm512_setzero_ps()
#define F32_MAC(acc, x, w) _mm512_fmadd_ps(x, w, acc)
#define B16_WT __m512bh
#define B16_LOAD(p) ((__m512bh)_mm512_loadu_si512(p))
#define B16_MLOAD(m, p) ((__m512bh)_mm512_maskz_loadu_epi32(m, p))
#define B16_BCAST(p) ((__m512bh)_mm512_set1_epi32(*(const int *)(p)))
#define B16_ZERO() ((__m512bh)_mm512_setzero_si512())
#define B16_MAC(acc, x, w) _mm512_dpbf16_ps(acc, x, w)

typedef void (*d3_fwd_fn)(const float *const *xr, int C, int cn, int W, int q0,
                          const float *wt, ptrdiff_t wsc, int Kp, float *yp, int ldy,
                          __mmask16 mlast, const float *bias, int accum);

/* xr[r]: input row p-1+r (NULL if outside) at the first input channel summed; C: units per
 * input pixel; cn: input units summed; yp: output pixel (row, q0), channel block start;
 * wt: packed weights at the first input unit and the output channel block start;
 * wsc = C*Kp units between taps s. */
#define D3_FWD_KERNEL(FL, MR, KV, CC)                                                             \
    static void d3_fwd_##FL##_##MR##x##KV##_c##CC(                                                \
        const float *const *xr, int C_, int cn, int W, int q0, const float *wt, ptrdiff_t wsc,   \
        int Kp, float *yp, int ldy, __mmask16 mlast, const float *bias, int accum)               \
    {                                                                                             \
        const int C = CC ? CC : C_;                                                               \
        __m512 acc[MR][KV];                                                                       \
        const int lo = q0 == 0, hi = q0 + MR == W;                                                \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                  \
        {                                                                                         \
            __mmask16 m = v == KV - 1 ? mlast : (__mmask16)0xffff;                                \
            if (accum)                                                                            \
                acc[i][v] = _mm512_maskz_loadu_ps(m, yp + (ptrdiff_t)i * ldy + 16 * v);           \
            else if (bias)                                                                        \
                acc[i][v] = _mm512_maskz_loadu_ps(m, bias + 16 * v);                              \
            else                                                                                  \
                acc[i][v] = _mm512_setzero_ps();                                                  \
        }                                                                                         \
        for (int r = 0; r < 3; r++) {                                                             \
            if (!xr[r])                                                                           \
                continue;                                                                         \
            /* xc: input column q0 - 1, channel c; wc: tap (r, 0), channel c */                   \
            const float *xc = xr[r] + (ptrdiff_t)(q0 - 1) * C;                                    \
            const float *wc = wt + (ptrdiff_t)r * 3 * wsc;                                        \
            for (int c = 0; c < cn; c++, xc++, wc += Kp) {                                        \
                FL##_WT w0[KV], w1[KV], w2[KV];                                                   \
                _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                              \
                {                                                                                 \
                    w0[v] = FL##_LOAD(wc + 16 * v);                                               \
                    w1[v] = FL##_LOAD(wc + wsc + 16 * v);                                         \
                    w2[v] = FL##_LOAD(wc + 2 * wsc + 16 * v);                                     \
                }                                                                                 \
                _Pragma("GCC unroll 18") for (int j = 0; j < MR + 2; j++)                         \
                {                                                                                 \
                    if ((j == 0 && lo) || (j == MR + 1 && hi))                                    \
                        continue;                                                                 \
                    FL##_WT bx = FL##_BCAST(xc + (ptrdiff_t)j * C);                               \
                    _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                          \
                    {                                                                             \
                        if (j < MR)                                                               \
                            acc[j < MR ? j : 0][v] =                                              \
                                FL##_MAC(acc[j < MR ? j : 0][v], bx, w0[v]);                      \
                        if (j >= 1 && j <= MR)                                                    \
                            acc[j >= 1 && j <= MR ? j - 1 : 0][v] =                               \
                                FL##_MAC(acc[j >= 1 && j <= MR ? j - 1 : 0][v], bx, w1[v]);       \
                        if (j >= 2)                                                               \
                            acc[j >= 2 ? j - 2 : 0][v] =                                          \
                                FL##_MAC(acc[j >= 2 ? j - 2 : 0][v], bx, w2[v]);                  \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                  \
                _mm512_mask_storeu_ps(yp + (ptrdiff_t)i * ldy + 16 * v,                           \
                                      v == KV - 1 ? mlast : (__mmask16)0xffff, acc[i][v]);        \
    }

/* Every tile of one flavour: each width MR up to the widest (16 columns by 16 channels, 8 by
 * 32), so a row's last tile covers the columns left in one pass (a 7-wide row, airnet's, is one
 * 7-wide tile rather than 4 + 2 + 1). The widest tile of each row comes again with the input
 * pixel stride C a constant, for the common C = 8, 16, 32, 64 units (bf16 pairs: 16 to 128
 * channels): the input column offsets
 * (q0 + j - 1) * C become displacements of one base register instead of one index register per
 * column, which the 16-wide tile does not have enough of (gcc spilled them; 8 x 32 tiles at
 * C = 128, 256 gained nothing from it). The same operations in the same order. */
#define D3_FWD_WIDTHS_1_8(FL, KV)                                                                 \
    D3_FWD_KERNEL(FL, 1, KV, 0)                                                                   \
    D3_FWD_KERNEL(FL, 2, KV, 0)                                                                   \
    D3_FWD_KERNEL(FL, 3, KV, 0)                                                                   \
    D3_FWD_KERNEL(FL, 4, KV, 0)                                                                   \
    D3_FWD_KERNEL(FL, 5, KV, 0)                                                                   \
    D3_FWD_KERNEL(FL, 6, KV, 0)                                                                   \
    D3_FWD_KERNEL(FL, 7, KV, 0)                                                                   \
    D3_FWD_KERNEL(FL, 8, KV, 0)
#define D3_FWD_KERNELS(FL)                                                                        \
    D3_FWD_WIDTHS_1_8(FL, 1)                                                                      \
    D3_FWD_WIDTHS_1_8(FL, 2)                                                                      \
    D3_FWD_KERNEL(FL, 9, 1, 0)                                                                    \
    D3_FWD_KERNEL(FL, 10, 1, 0)                                                                   \
    D3_FWD_KERNEL(FL, 11, 1, 0)                                                                   \
    D3_FWD_KERNEL(FL, 12, 1, 0)                                                                   \
    D3_FWD_KERNEL(FL, 13, 1, 0)                                                                   \
    D3_FWD_KERNEL(FL, 14, 1, 0)                                                                   \
    D3_FWD_KERNEL(FL, 15, 1, 0)                                                                   \
    D3_FWD_KERNEL(FL, 16, 1, 0)                                                                   \
    D3_FWD_KERNEL(FL, 16, 1, 8)                                                                   \
    D3_FWD_KERNEL(FL, 16, 1, 16)                                                                  \
    D3_FWD_KERNEL(FL, 16, 1, 32)                                                                  \
    D3_FWD_KERNEL(FL, 16, 1, 64)                                                                  \
    D3_FWD_KERNEL(FL, 8, 2, 8)                                                                    \
    D3_FWD_KERNEL(FL, 8, 2, 16)                                                                   \
    D3_FWD_KERNEL(FL, 8, 2, 32)                                                                   \
    D3_FWD_KERNEL(FL, 8, 2, 64)

D3_FWD_KERNELS(F32)
D3_FWD_KERNELS(B16)

/* [flavour][KV index: 1, 2][MR]; the largest MR of each row keeps the tile within 32 zmm.
 * Wider channel blocks (4 x 64 tiles) were tried: 12 weight loads per 48 FMAs instead of 6
 * made them 5-15 % slower than 8 x 32 tiles from 64 channels up (bench/conv.c). */
#define D3_FWD_MR_MAX(kvi) ((kvi) ? 8 : 16)
#define D3_FWD_ROW_1_8(FL, KV)                                                                    \
    NULL, d3_fwd_##FL##_1x##KV##_c0, d3_fwd_##FL##_2x##KV##_c0, d3_fwd_##FL##_3x##KV##_c0,        \
        d3_fwd_##FL##_4x##KV##_c0, d3_fwd_##FL##_5x##KV##_c0, d3_fwd_##FL##_6x##KV##_c0,          \
        d3_fwd_##FL##_7x##KV##_c0, d3_fwd_##FL##_8x##KV##_c0
#define D3_FWD_TAB(FL)                                                                            \
    {{D3_FWD_ROW_1_8(FL, 1), d3_fwd_##FL##_9x1_c0, d3_fwd_##FL##_10x1_c0, d3_fwd_##FL##_11x1_c0,  \
      d3_fwd_##FL##_12x1_c0, d3_fwd_##FL##_13x1_c0, d3_fwd_##FL##_14x1_c0,                        \
      d3_fwd_##FL##_15x1_c0, d3_fwd_##FL##_16x1_c0},                                              \
     {D3_FWD_ROW_1_8(FL, 2)}}
static const d3_fwd_fn d3_fwd_tab[2][2][17] = {D3_FWD_TAB(F32), D3_FWD_TAB(B16)};

/* [flavour][KV index][C = 8, 16, 32, 64 units]: the widest tiles with C fixed */
#define D3_FWD_CTAB(FL)                                                                           \
    {{d3_fwd_##FL##_16x1_c8, d3_fwd_##FL##_16x1_c16, d3_fwd_##FL##_16x1_c32,                      \
      d3_fwd_##FL##_16x1_c64},                                                                    \
     {d3_fwd_##FL##_8x2_c8, d3_fwd_##FL##_8x2_c16, d3_fwd_##FL##_8x2_c32, d3_fwd_##FL##_8x2_c64}}
static const d3_fwd_fn d3_fwd_ctab[2][2][4] = {D3_FWD_CTAB(F32), D3_FWD_CTAB(B16)};

/* Index into d3_fwd_ctab's rows for pixel stride C, or -1. */
static int d3_c_index(int C)
{
    switch (C) {
    case 8: return 0;
    case 16: return 1;
    case 32: return 2;
    case 64: return 3;
    default: return -1;
    }
}

void oc_conv2d_d3_fwd_rows_avx512(const oc_conv_shape *s, const float *x, int64_t x_row0,
                                  const float *wt, const float *b, float *y, int accum, int bf16,
                                  int64_t j0, int64_t j1);

/* Input units summed per pass: wider inputs are summed in chunks (added into y), so that
 * the packed weights of one chunk and one block of 16*KV output channels (at most 9 * 64 * 32
 * units, 72 KiB) stay in L2 while the tiles of a group of output rows sweep them. */
#define D3_FWD_CHUNK 64

/* Bytes of output a group of rows may span: the group's y stays in L2 between the passes of
 * its (chunk, block) pairs, and the fused forward applies its epilogue while it is there. */
#define D3_FWD_GROUP_BYTES (256 << 10)

int oc_conv2d_d3_fwd_group_rows(const oc_conv_shape *s);
int oc_conv2d_d3_fwd_group_rows(const oc_conv_shape *s)
{
    int64_t g = D3_FWD_GROUP_BYTES / ((int64_t)s->W * s->K * (int64_t)sizeof(float));
    return g < 1 ? 1 : g > 64 ? 64 : (int)g;
}

/* Accumulating into y that an earlier pass left in memory, a tile's first instructions wait
 * for its outputs (on a 16-channel layer, 16 lines per ~300 ns of FMAs; the hardware prefetcher
 * runs too few lines ahead): the next tile's mr pixels (kv lines each, from offset off of y on;
 * rows are contiguous, so past a row's end they are the next row's first pixels; none from
 * `end` on) are fetched while this one computes. The loads themselves stay where they are, so
 * no result changes. A macro, not a function: gcc deems a function of prefetches alone free of
 * side effects and drops the call wherever it does not inline it (it did here). */
#define D3_PREFETCH_NEXT(y, off, end, mr, kv, K)                                                  \
    do {                                                                                          \
        int64_t o_ = (off);                                                                       \
        for (int i_ = 0; i_ < (mr) && o_ < (end); i_++, o_ += (K))                                \
            for (int v_ = 0; v_ < (kv); v_++)                                                     \
                _mm_prefetch((const char *)((y) + o_ + 16 * v_), _MM_HINT_T0);                    \
    } while (0)

/* Output rows j = n*H + p in [j0, j1) of y[N][H][W][K] (+= with accum) from x[N][H][W][C]
 * (bf16: x[N][H][W][ceil(C/2)] pairs) whose first row in memory is row x_row0 (x holds the rows
 * the outputs read from there on), in groups of oc_conv2d_d3_fwd_group_rows rows; within a
 * group, the (chunk, block) pairs outside and the rows inside, so each pair's weights are read
 * from memory once per group rather than once per row. Every output sums its chunks in order,
 * r, c and s within each: the grouping and the tile shapes do not change a bit of the result. */
void oc_conv2d_d3_fwd_rows_avx512(const oc_conv_shape *s, const float *x, int64_t x_row0,
                                  const float *wt, const float *b, float *y, int accum, int bf16,
                                  int64_t j0, int64_t j1)
{
    const int C = bf16 ? (s->C + 1) / 2 : s->C, K = s->K, H = s->H, W = s->W;
    const int Kp = (K + 15) & ~15;
    const ptrdiff_t wsc = (ptrdiff_t)C * Kp;
    const int group = oc_conv2d_d3_fwd_group_rows(s), ci = d3_c_index(C);
    for (int64_t g0 = j0; g0 < j1; g0 += group) {
        const int64_t g1 = g0 + group < j1 ? g0 + group : j1;
        for (int c0 = 0; c0 < C; c0 += D3_FWD_CHUNK) {
            const int cn = C - c0 < D3_FWD_CHUNK ? C - c0 : D3_FWD_CHUNK;
            for (int k0 = 0; k0 < K;) {
                const int left = K - k0, kvi = left > 16 ? 1 : 0, kv = 1 << kvi;
                const __mmask16 mlast =
                    left <= 16 * kv ? tail_mask(left - 16 * (kv - 1)) : 0xffff;
                const int mr_max = D3_FWD_MR_MAX(kvi);
                for (int64_t j = g0; j < g1; j++) {
                    const int64_t n = j / H;
                    const int p = (int)(j % H);
                    const float *xr[3];
                    for (int r = 0; r < 3; r++) {
                        int h = p - 1 + r;
                        xr[r] = h >= 0 && h < H ? x + (n * H + h - x_row0) * W * C + c0 : NULL;
                    }
                    float *yrow = y + j * W * K;
                    for (int q0 = 0; q0 < W;) {
                        const int mr = W - q0 < mr_max ? W - q0 : mr_max;
                        d3_fwd_fn f = d3_fwd_tab[bf16][kvi][mr];
                        if (mr == mr_max && ci >= 0)
                            f = d3_fwd_ctab[bf16][kvi][ci];
                        if (accum && c0 == 0)
                            D3_PREFETCH_NEXT(y, (j * W + q0 + mr) * K + k0, j1 * W * K, mr, kv,
                                             K);
                        f(xr, C, cn, W, q0, wt + (ptrdiff_t)c0 * Kp + k0, wsc, Kp,
                          yrow + (int64_t)q0 * K + k0, K, mlast, b && c0 == 0 ? b + k0 : NULL,
                          accum || c0 > 0);
                        q0 += mr;
                    }
                }
                k0 += 16 * kv;
            }
        }
    }
}

/* Backward weights: part[r][s][c][Kp] += sum over output rows of x-patch * dy. For one kernel
 * row r, a block of CB input channels and 16*KV output channels, the 3*CB*KV accumulators stay
 * in registers across a run of output rows; input column `col` meets dy columns col+1, col,
 * col-1 through taps s = 0, 1, 2, held in three rotating registers.
 *
 * B16 sums images two at a time: its x and dy hold, per pixel and channel, the bf16 pair of
 * images (2m, 2m+1) (conv2d.c interleaves them; an odd batch's last pair has a zero image), so
 * the rows here run over image pairs and each vdpbf16ps adds both images' products. */
typedef struct {
    const float *x, *dy;
    int64_t x_row0, dy_row0; /* the rows x and dy start at */
    int C, K, H, W, Kp;
    ptrdiff_t psc; /* C*Kp floats between taps s in part */
} d3_bw_args;

typedef void (*d3_bw_fn)(const d3_bw_args *a, int64_t j0, int64_t j1, int r, int c0, int k0,
                         __mmask16 mlast, float *part);

#define D3_BW_KERNEL(FL, CB, KV)                                                                  \
    static void d3_bw_##FL##_##CB##x##KV(const d3_bw_args *a, int64_t j0, int64_t j1, int r,     \
                                         int c0, int k0, __mmask16 mlast, float *part)           \
    {                                                                                             \
        const int C = a->C, K = a->K, H = a->H, W = a->W, Kp = a->Kp;                             \
        const ptrdiff_t psc = a->psc;                                                             \
        __m512 acc[3][CB][KV];                                                                    \
        FL##_WT dm[KV], d0[KV], dp[KV];                                                           \
        _Pragma("GCC unroll 3") for (int t = 0; t < 3; t++)                                       \
            _Pragma("GCC unroll 8") for (int c = 0; c < CB; c++)                                  \
                _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                              \
                    acc[t][c][v] = _mm512_loadu_ps(part + t * psc + (ptrdiff_t)c * Kp + 16 * v);  \
        for (int64_t j = j0; j < j1; j++) {                                                       \
            const int64_t n = j / H;                                                              \
            const int h = (int)(j % H) - 1 + r;                                                   \
            if (h < 0 || h >= H)                                                                  \
                continue;                                                                         \
            const float *xrow = a->x + (n * H + h - a->x_row0) * W * C + c0;                      \
            const float *dyrow = a->dy + (j - a->dy_row0) * W * K + k0;                           \
            _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                  \
            {                                                                                     \
                __mmask16 m = v == KV - 1 ? mlast : (__mmask16)0xffff;                            \
                dm[v] = FL##_ZERO();                                                              \
                d0[v] = FL##_MLOAD(m, dyrow + 16 * v);                                            \
                dp[v] = W > 1 ? FL##_MLOAD(m, dyrow + K + 16 * v) : FL##_ZERO();                  \
            }                                                                                     \
            for (int col = 0; col < W; col++) {                                                   \
                const float *xp = xrow + (ptrdiff_t)col * C;                                      \
                _Pragma("GCC unroll 8") for (int c = 0; c < CB; c++)                              \
                {                                                                                 \
                    FL##_WT bx = FL##_BCAST(xp + c);                                              \
                    _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                          \
                    {                                                                             \
                        acc[0][c][v] = FL##_MAC(acc[0][c][v], bx, dp[v]);                         \
                        acc[1][c][v] = FL##_MAC(acc[1][c][v], bx, d0[v]);                         \
                        acc[2][c][v] = FL##_MAC(acc[2][c][v], bx, dm[v]);                         \
                    }                                                                             \
                }                                                                                 \
                _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                              \
                {                                                                                 \
                    __mmask16 m = v == KV - 1 ? mlast : (__mmask16)0xffff;                        \
                    dm[v] = d0[v];                                                                \
                    d0[v] = dp[v];                                                                \
                    dp[v] = col + 2 < W                                                           \
                                ? FL##_MLOAD(m, dyrow + (ptrdiff_t)(col + 2) * K + 16 * v)        \
                                : FL##_ZERO();                                                    \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 3") for (int t = 0; t < 3; t++)                                       \
            _Pragma("GCC unroll 8") for (int c = 0; c < CB; c++)                                  \
                _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                              \
                    _mm512_storeu_ps(part + t * psc + (ptrdiff_t)c * Kp + 16 * v, acc[t][c][v]);  \
    }

#define D3_BW_KERNELS(FL)                                                                         \
    D3_BW_KERNEL(FL, 8, 1)                                                                        \
    D3_BW_KERNEL(FL, 4, 1)                                                                        \
    D3_BW_KERNEL(FL, 2, 1)                                                                        \
    D3_BW_KERNEL(FL, 1, 1)                                                                        \
    D3_BW_KERNEL(FL, 4, 2)                                                                        \
    D3_BW_KERNEL(FL, 2, 2)                                                                        \
    D3_BW_KERNEL(FL, 1, 2)

D3_BW_KERNELS(F32)
D3_BW_KERNELS(B16)

#define D3_BW_TAB(FL)                                                                             \
    {{d3_bw_##FL##_1x1, d3_bw_##FL##_2x1, d3_bw_##FL##_4x1, d3_bw_##FL##_8x1},                    \
     {d3_bw_##FL##_1x2, d3_bw_##FL##_2x2, d3_bw_##FL##_4x2, NULL}}
static const d3_bw_fn d3_bw_tab[2][2][4] = {D3_BW_TAB(F32), D3_BW_TAB(B16)};

/* Bytes of x and dy rows one sub-run of output rows keeps in L1/L2 while every (r, channel
 * block) tile sweeps it (tuned on the Zen 5 dev VM, ResNet-20 shapes). */
#define D3_BW_RUN_BYTES (64 << 10)

int oc_conv2d_d3_bw_run_rows(const oc_conv_shape *s);
void oc_conv2d_d3_bwd_weights_rows_avx512(const oc_conv_shape *s, const float *x, int64_t x_row0,
                                          const float *dy, int64_t dy_row0, float *part,
                                          int bf16, int64_t j0, int64_t j1);

/* Output rows per run: the tiles sweep a run's x and dy rows, D3_BW_RUN_BYTES of them. */
int oc_conv2d_d3_bw_run_rows(const oc_conv_shape *s)
{
    int64_t run = D3_BW_RUN_BYTES / ((int64_t)s->W * (s->C + s->K) * (int64_t)sizeof(float));
    return run < 1 ? 1 : (int)run;
}

/* part[3][3][C][Kp] += the weight gradient of output rows j = n*H + p in [j0, j1) (bf16: n
 * counts image pairs, s->N of them), x and dy starting at rows x_row0 and dy_row0 (holding the
 * rows these outputs read from there on). */
void oc_conv2d_d3_bwd_weights_rows_avx512(const oc_conv_shape *s, const float *x, int64_t x_row0,
                                          const float *dy, int64_t dy_row0, float *part,
                                          int bf16, int64_t j0, int64_t j1)
{
    d3_bw_args a = {x, dy, x_row0, dy_row0, s->C, s->K, s->H, s->W, (s->K + 15) & ~15, 0};
    const int64_t run = oc_conv2d_d3_bw_run_rows(s);
    a.psc = (ptrdiff_t)a.C * a.Kp;
    for (int64_t r0 = j0; r0 < j1; r0 += run) {
        int64_t r1 = r0 + run < j1 ? r0 + run : j1;
        for (int r = 0; r < 3; r++) {
            float *pr = part + (ptrdiff_t)r * 3 * a.psc;
            for (int k0 = 0; k0 < a.K;) {
                int left = a.K - k0, kvi = left > 16 ? 1 : 0, kv = 1 << kvi;
                __mmask16 mlast = left <= 16 * kv ? tail_mask(left - 16 * (kv - 1)) : 0xffff;
                int lmax = kvi == 0 ? 3 : 2;
                for (int c0 = 0; c0 < a.C;) {
                    int l = lmax;
                    while ((1 << l) > a.C - c0)
                        l--;
                    d3_bw_tab[bf16][kvi][l](&a, r0, r1, r, c0, k0, mlast,
                                            pr + (ptrdiff_t)c0 * a.Kp + k0);
                    c0 += 1 << l;
                }
                k0 += 16 * kv;
            }
        }
    }
}

/* ---------------------------------------------------------------- bf16 conversions
 * The direct kernels' B16 inputs, rounded to nearest even as the bf16 GEMM's packing rounds. */

/* 16 bf16 pairs (a[i] low, b[i] high) from the first n <= 16 of a and b (b NULL: zeros). */
static inline __m512i interleave_pairs(const float *a, const float *b, int n)
{
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    const __mmask16 m = tail_mask(n);
    __m512 va = _mm512_maskz_loadu_ps(m, a);
    __m512 vb = b ? _mm512_maskz_loadu_ps(m, b) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(vb, va));
}

void oc_conv2d_bf16_channel_pairs_avx512(const float *x, int64_t pixels, int C, uint32_t *dst);
void oc_conv2d_bf16_image_pairs_avx512(const float *a, const float *b, int64_t n, uint32_t *dst);

/* x[0..n) -> dst[0..ceil(n/2)) pairs of neighbours (x[2i], x[2i+1]), an odd n's last high
 * half zero. */
static void channel_pairs_run(const float *x, int64_t n, uint32_t *dst)
{
    for (int64_t i = 0; i < n; i += 32) {
        const int left = n - i < 32 ? (int)(n - i) : 32;
        __m512 lo = _mm512_maskz_loadu_ps(tail_mask(left), x + i);
        __m512 hi = left > 16 ? _mm512_maskz_loadu_ps(tail_mask(left - 16), x + i + 16)
                              : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(dst + i / 2, tail_mask((left + 1) / 2),
                                 (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

/* pixels x C floats -> pixels x ceil(C/2) pairs of neighbouring channels: with C even the
 * pairs never straddle two pixels, so all of it is one run; with C odd each pixel's last pair
 * gets a zero high half. */
void oc_conv2d_bf16_channel_pairs_avx512(const float *x, int64_t pixels, int C, uint32_t *dst)
{
    if (C % 2 == 0) {
        channel_pairs_run(x, pixels * C, dst);
        return;
    }
    for (int64_t px = 0; px < pixels; px++)
        channel_pairs_run(x + px * C, C, dst + px * ((C + 1) / 2));
}

/* dst[i] = the pair (a[i], b[i]) (b NULL: zero high halves), i < n. */
void oc_conv2d_bf16_image_pairs_avx512(const float *a, const float *b, int64_t n, uint32_t *dst)
{
    for (int64_t i = 0; i < n; i += 16) {
        const int left = n - i < 16 ? (int)(n - i) : 16;
        _mm512_mask_storeu_epi32(dst + i, tail_mask(left),
                                 interleave_pairs(a + i, b ? b + i : NULL, left));
    }
}

/* ---------------------------------------------------------------- few input channels
 * Any kernel size, stride and padding (no dilation, one group) with few input channels: the
 * stems of ImageNet networks (3 -> 32 3x3 stride 2, 3 -> 64 7x7 stride 2), where im2col rows
 * are R*S*C = 27..147 floats long and the GEMM spends its time packing. A register tile of MR
 * output pixels (one row, consecutive columns) by 16*KV output channels sums over r, s and c
 * in that order, one broadcast input value per pixel and tap. Interior tiles read without
 * bounds checks; tiles touching the padding check each column. Weights come packed as
 * wt[r][s][c][Kp], Kp = K rounded up to 16 (conv2d.c packs them). */

typedef void (*sc_fwd_fn)(const oc_conv_shape *s, const float *const *xr, int q0,
                          const float *wt, int Kp, float *yp, __mmask16 mlast, const float *bias);

#define SC_FWD_KERNEL(MR, KV, EDGE)                                                               \
    static void sc_fwd_##MR##x##KV##_##EDGE(const oc_conv_shape *s, const float *const *xr,      \
                                            int q0, const float *wt, int Kp, float *yp,          \
                                            __mmask16 mlast, const float *bias)                  \
    {                                                                                             \
        const int C = s->C, W = s->W, S = s->S, sw = s->stride_w, K = s->K;                       \
        const ptrdiff_t step = (ptrdiff_t)sw * C;                                                 \
        __m512 acc[MR][KV];                                                                       \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                     \
            _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++)                                  \
                acc[i][v] = bias ? _mm512_maskz_loadu_ps(v == KV - 1 ? mlast : (__mmask16)0xffff, \
                                                         bias + 16 * v)                           \
                                 : _mm512_setzero_ps();                                           \
        for (int r = 0; r < s->R; r++) {                                                          \
            if (!xr[r])                                                                           \
                continue;                                                                         \
            for (int t = 0; t < S; t++) {                                                         \
                const int col0 = q0 * sw - s->pad_w + t; /* input column of pixel q0 */           \
                const float *xc = xr[r] + (ptrdiff_t)col0 * C;                                    \
                const float *wc = wt + ((ptrdiff_t)r * S + t) * C * Kp;                           \
                for (int c = 0; c < C; c++, xc++, wc += Kp) {                                     \
                    __m512 wv[KV];                                                                \
                    _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++)                          \
                        wv[v] = _mm512_loadu_ps(wc + 16 * v);                                     \
                    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                         \
                    {                                                                             \
                        if (EDGE && (unsigned)(col0 + i * sw) >= (unsigned)W)                     \
                            continue;                                                             \
                        __m512 bx = _mm512_set1_ps(xc[i * step]);                                 \
                        _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++)                      \
                            acc[i][v] = _mm512_fmadd_ps(bx, wv[v], acc[i][v]);                    \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                     \
            _Pragma("GCC unroll 2") for (int v = 0; v < KV; v++)                                  \
                _mm512_mask_storeu_ps(yp + (ptrdiff_t)i * K + 16 * v,                             \
                                      v == KV - 1 ? mlast : (__mmask16)0xffff, acc[i][v]);        \
    }

SC_FWD_KERNEL(12, 2, 0)
SC_FWD_KERNEL(12, 2, 1)
SC_FWD_KERNEL(4, 2, 1)
SC_FWD_KERNEL(1, 2, 1)
SC_FWD_KERNEL(16, 1, 0)
SC_FWD_KERNEL(16, 1, 1)
SC_FWD_KERNEL(4, 1, 1)
SC_FWD_KERNEL(1, 1, 1)

/* [KV - 1][widest interior, widest with checks, 4 with checks, 1 with checks] */
static const sc_fwd_fn sc_fwd_tab[2][4] = {
    {sc_fwd_16x1_0, sc_fwd_16x1_1, sc_fwd_4x1_1, sc_fwd_1x1_1},
    {sc_fwd_12x2_0, sc_fwd_12x2_1, sc_fwd_4x2_1, sc_fwd_1x2_1},
};

void oc_conv2d_sc_fwd_rows_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                  const float *b, float *y, int64_t j0, int64_t j1);

/* Output rows j = n*P + p in [j0, j1) of y[N][P][Q][K] from x[N][H][W][C] (R <= 16). */
void oc_conv2d_sc_fwd_rows_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                  const float *b, float *y, int64_t j0, int64_t j1)
{
    const int C = s->C, K = s->K, H = s->H, W = s->W, P = s->P, Q = s->Q, Kp = (K + 15) & ~15;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t n = j / P;
        const int p = (int)(j % P);
        const float *xr[16];
        for (int r = 0; r < s->R; r++) {
            int h = p * s->stride_h - s->pad_h + r;
            xr[r] = h >= 0 && h < H ? x + (n * H + h) * W * C : NULL;
        }
        float *yrow = y + j * Q * K;
        for (int k0 = 0; k0 < K;) {
            const int left = K - k0, kv = left > 16 ? 2 : 1, mr = kv == 2 ? 12 : 16;
            const __mmask16 mlast = left <= 16 * kv ? tail_mask(left - 16 * (kv - 1)) : 0xffff;
            const sc_fwd_fn *tab = sc_fwd_tab[kv - 1];
            for (int q0 = 0; q0 < Q;) {
                const int n_px = Q - q0 >= mr ? mr : Q - q0 >= 4 ? 4 : 1;
                sc_fwd_fn f = n_px == mr ? tab[1] : n_px == 4 ? tab[2] : tab[3];
                if (n_px == mr) { /* every tap column of the tile inside the row: no checks */
                    int first = q0 * s->stride_w - s->pad_w;
                    int last = (q0 + mr - 1) * s->stride_w - s->pad_w + s->S - 1;
                    if (first >= 0 && last < W)
                        f = tab[0];
                }
                f(s, xr, q0, wt + k0, Kp, yrow + (ptrdiff_t)q0 * K + k0, mlast,
                  b ? b + k0 : NULL);
                q0 += n_px;
            }
            k0 += 16 * kv;
        }
    }
}
