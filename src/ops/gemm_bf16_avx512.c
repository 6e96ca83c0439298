/* AVX-512 BF16 packing and micro-kernels for oc_gemm_bf16 (compiled with -mavx512bf16;
 * gemm_bf16.c calls them only after checking the CPU has AVX512_BF16).
 *
 * vdpbf16ps multiplies 16 pairs of bf16 by 16 pairs and adds both products of each pair to an
 * fp32 lane: per instruction twice the multiply-adds of an fp32 FMA, at the same width. The
 * tile is the fp32 kernel's (gemm_avx512.c): MR x (16*NV) of C in MR*NV zmm accumulators, per
 * pair of k NV vectors of B pairs and MR broadcast A pairs ({1to16} from memory), 14 x 32
 * giving 28 independent chains, enough to cover the instruction's latency on 2 pipes.
 * Every (MR, NV) is instantiated so edge tiles run at their exact height. */
#include "gemm_bf16.h"

#include <immintrin.h>

/* ---------------------------------------------------------------- packing */

/* In-register transpose of a 16 x 16 block of 32-bit words (gemm_avx512.c's, on integers). */
static inline void transpose16(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xDD);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
    }
}

static inline __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* 32 floats from p (the first n, the rest zero) as 16 bf16 pairs, rounded to nearest even. */
static inline __m512i pairs32(const float *p, int n)
{
    __m512 lo = _mm512_maskz_loadu_ps(mask16(n), p);
    __m512 hi = n > 16 ? _mm512_maskz_loadu_ps(mask16(n - 16), p + 16) : _mm512_setzero_ps();
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

void oc_gemm_bf16_pack_avx512(const float *x, ptrdiff_t is, ptrdiff_t ks, int w, int kc,
                              uint32_t *dst, int ds)
{
    const int kp_n = (kc + 1) / 2;
    if (ks == 1) {
        /* k runs contiguous per i: convert 32 k of 16 rows, then transpose the 16 x 16 words
         * so each store writes one pair index for 16 values of i. */
        for (int i0 = 0; i0 < ds; i0 += 16) {
            const __mmask16 sm = mask16(ds - i0);
            for (int k0 = 0; k0 < kc; k0 += 32) {
                __m512i r[16];
                int kn = kc - k0 < 32 ? kc - k0 : 32, pn = (kn + 1) / 2;
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    r[i] = i0 + i < w ? pairs32(x + (i0 + i) * is + k0, kn)
                                      : _mm512_setzero_si512();
                transpose16(r);
                for (int p = 0; p < pn; p++)
                    _mm512_mask_storeu_epi32(dst + (size_t)(k0 / 2 + p) * ds + i0, sm, r[p]);
            }
        }
        return;
    }
    /* i runs contiguous per k: rows k and k+1 of 16 values each become 16 pairs by one
     * conversion and one 16-bit interleave. */
    {
        const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25,
                                             9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2,
                                             17, 1, 16, 0);
        for (int i0 = 0; i0 < ds; i0 += 16) {
            const __mmask16 lm = mask16(w - i0 > 0 ? w - i0 : 0), sm = mask16(ds - i0);
            for (int kp = 0; kp < kp_n; kp++) {
                const float *p = x + (ptrdiff_t)(2 * kp) * ks + i0;
                __m512 r0 = _mm512_maskz_loadu_ps(lm, p);
                __m512 r1 = 2 * kp + 1 < kc ? _mm512_maskz_loadu_ps(lm, p + ks)
                                            : _mm512_setzero_ps();
                __m512i v = _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(r1, r0));
                _mm512_mask_storeu_epi32(dst + (size_t)kp * ds + i0, sm, v);
            }
        }
    }
}

void oc_gemm_bf16_pack_pair_avx512(const float *r0, const float *r1, int n, int kp, int K,
                                   uint32_t *dst)
{
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    const size_t panel_words = (size_t)OC_BF16_NR * (size_t)((K + 1) / 2);
    for (int j0 = 0; j0 < n; j0 += 16) {
        const __mmask16 m = mask16(n - j0);
        const int panel = j0 / OC_BF16_NR, off = j0 % OC_BF16_NR;
        const int pw = n - panel * OC_BF16_NR, ds = pw >= OC_BF16_NR ? OC_BF16_NR : (pw + 15) & ~15;
        __m512 a = _mm512_maskz_loadu_ps(m, r0 + j0);
        __m512 b = r1 ? _mm512_maskz_loadu_ps(m, r1 + j0) : _mm512_setzero_ps();
        __m512i v = _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(b, a));
        /* ds is a multiple of 16 past this block's start: the 16 words (zeros past n) fit */
        _mm512_storeu_si512(dst + panel * panel_words + (size_t)kp * ds + off, v);
    }
}

void oc_gemm_bf16_pack_rows_avx512(const float *x, ptrdiff_t ld, int rows, int kc, uint32_t *dst,
                                   int ds)
{
    for (int r = 0; r < rows; r++) {
        const float *src = x + r * ld;
        uint32_t *d = dst + (size_t)r * ds;
        for (int k0 = 0; k0 < kc; k0 += 32) {
            int kn = kc - k0 < 32 ? kc - k0 : 32;
            _mm512_mask_storeu_epi32(d + k0 / 2, mask16((kn + 1) / 2), pairs32(src + k0, kn));
        }
    }
}

/* ---------------------------------------------------------------- micro-kernels */

#define KERNEL_BODY(MR, NV, A_AT)                                                                     \
    const __mmask16 last = mask16(nr - 16 * (NV - 1));                                           \
    __m512 acc[MR][NV];                                                                           \
    _Pragma("GCC unroll 32") for (int r = 0; r < MR; r++)                                         \
    {                                                                                             \
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);                          \
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 16 * NV - 1), _MM_HINT_T0);            \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();     \
    }                                                                                             \
    _Pragma("GCC unroll 2") for (ptrdiff_t k = 0; k < kp; k++)                                    \
    {                                                                                             \
        __m512bh bv[NV];                                                                          \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] =                              \
            (__m512bh)_mm512_load_si512(b + (size_t)k * (16 * NV) + 16 * v);                      \
        _Pragma("GCC unroll 32") for (int r = 0; r < MR; r++)                                     \
        {                                                                                         \
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)A_AT(MR));                             \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] =                      \
                _mm512_dpbf16_ps(acc[r][v], av, bv[v]);                                           \
        }                                                                                         \
    }                                                                                             \
    {                                                                                             \
        const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                       \
        _Pragma("GCC unroll 32") for (int r = 0; r < MR; r++)                                     \
        {                                                                                         \
            float *cr = c + (size_t)r * ldc;                                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                  \
            {                                                                                     \
                __mmask16 m = v == NV - 1 ? last : (__mmask16)0xFFFF;                             \
                __m512 x = _mm512_mul_ps(va, acc[r][v]);                                          \
                if (beta != 0.0f)                                                                 \
                    x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cr + 16 * v), x);            \
                _mm512_mask_storeu_ps(cr + 16 * v, m, x);                                         \
            }                                                                                     \
        }                                                                                         \
    }

/* How a kernel reads pair k of row r: k-major panels (compile-time stride) or rows. */
#define A_KMAJOR(MR) a[(size_t)k * MR + r]
#define A_ROWS(MR) a[r * a_rs + k]

#define DEFINE_KERNEL(NAME, MR, NV, A_AT)                                                         \
    static void NAME##MR##x##NV(int nr, int kp, const uint32_t *restrict a, ptrdiff_t a_rs,      \
                                const uint32_t *restrict b, float alpha, float beta,              \
                                float *restrict c, int ldc)                                       \
    {                                                                                             \
        (void)a_rs;                                                                               \
        KERNEL_BODY(MR, NV, A_AT)                                                                 \
    }
#define KM(MR, NV) DEFINE_KERNEL(km, MR, NV, A_KMAJOR)
#define RM(MR, NV) DEFINE_KERNEL(rm, MR, NV, A_ROWS)

typedef void (*tile_fn)(int nr, int kp, const uint32_t *restrict a, ptrdiff_t a_rs,
                        const uint32_t *restrict b, float alpha, float beta, float *restrict c,
                        int ldc);

#define ROWS_1_14(X, NV)                                                                          \
    X(1, NV) X(2, NV) X(3, NV) X(4, NV) X(5, NV) X(6, NV) X(7, NV) X(8, NV) X(9, NV) X(10, NV)  \
    X(11, NV) X(12, NV) X(13, NV) X(14, NV)

ROWS_1_14(KM, 1)
ROWS_1_14(KM, 2)
ROWS_1_14(RM, 1)
ROWS_1_14(RM, 2)

#define TABLE_1_14(P, NV)                                                                         \
    {0,          P##1x##NV,  P##2x##NV,  P##3x##NV,  P##4x##NV, P##5x##NV,                      \
     P##6x##NV,  P##7x##NV,  P##8x##NV,  P##9x##NV,  P##10x##NV, P##11x##NV,                    \
     P##12x##NV, P##13x##NV, P##14x##NV}

static const tile_fn km[2][OC_BF16_MR + 1] = {TABLE_1_14(km, 1), TABLE_1_14(km, 2)};
static const tile_fn rm[2][OC_BF16_MR + 1] = {TABLE_1_14(rm, 1), TABLE_1_14(rm, 2)};

void oc_gemm_bf16_tile_avx512(int mr, int nr, int kp, const uint32_t *a, const uint32_t *b,
                              float alpha, float beta, float *c, int ldc)
{
    km[nr > 16][mr](nr, kp, a, 0, b, alpha, beta, c, ldc);
}

void oc_gemm_bf16_tile_rows_avx512(int mr, int nr, int kp, const uint32_t *a, ptrdiff_t a_rs,
                                   const uint32_t *b, float alpha, float beta, float *c, int ldc)
{
    rm[nr > 16][mr](nr, kp, a, a_rs, b, alpha, beta, c, ldc);
}
