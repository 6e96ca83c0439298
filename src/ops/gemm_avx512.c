/* AVX-512F micro-kernels for oc_gemm (compiled with -mavx512f -mfma; gemm.c calls them only
 * after __builtin_cpu_supports("avx512f")).
 *
 * A kernel keeps an MR x (16*NV) tile of C in MR*NV zmm accumulators. Per k it loads NV
 * vectors of the packed B panel and multiplies each by MR scalars of the packed A panel,
 * broadcast straight from memory into the FMA ({1to16} operand), so the 2 FMA pipes of a
 * Zen 4/5 or Skylake-X core see MR*NV independent chains: with an FMA latency of 4 cycles,
 * 2 pipes need >= 8 chains; 14x32 gives 28 (and leaves 4 zmm for the B vectors).
 *
 * Every (MR, NV) up to the full tile is instantiated so edge tiles run a kernel of their exact
 * height instead of computing zero-padded rows; the last vector of a row is stored through a
 * mask, so partial widths never touch C past column nr. */
#include "epi_avx512.h"
#include "gemm.h"

#include <immintrin.h>

/* How a kernel reads A(r, k) and the v-th B vector of step k (see gemm.h). Packed panels have
 * compile-time strides; the in-place variants take the caller's. */
#define A_PACKED(MR) a[(size_t)k * MR + r]
#define A_DIRECT(MR) a[r * a_rs + k * a_ks]
#define B_PACKED(NV) _mm512_load_ps(b + (size_t)k * (16 * NV) + 16 * v)
#define B_DIRECT(NV) _mm512_maskz_loadu_ps(v == NV - 1 ? last : (__mmask16)0xFFFF, b + k * b_ks + 16 * v)

/* The accumulation of an MR x (16*NV) tile: acc[r][v] = sum over k of A(r, k) * B(k, v),
 * one FMA chain per register; `last` masks the last vector of a row to nr columns. */
#define KERNEL_ACC(MR, NV, A_AT, B_AT)                                                            \
    const __mmask16 last = (__mmask16)((1u << (nr - 16 * (NV - 1))) - 1u);                       \
    __m512 acc[MR][NV];                                                                           \
    _Pragma("GCC unroll 32") for (int r = 0; r < MR; r++)                                         \
    {                                                                                             \
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);                          \
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 16 * NV - 1), _MM_HINT_T0);            \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();     \
    }                                                                                             \
    _Pragma("GCC unroll 2") for (ptrdiff_t k = 0; k < kc; k++)                                    \
    {                                                                                             \
        __m512 bv[NV];                                                                            \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = B_AT(NV);                    \
        _Pragma("GCC unroll 32") for (int r = 0; r < MR; r++)                                     \
        {                                                                                         \
            __m512 av = _mm512_set1_ps(A_AT(MR));                                                 \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] =                      \
                _mm512_fmadd_ps(av, bv[v], acc[r][v]);                                            \
        }                                                                                         \
    }

/* Stores the tile, each vector x = acc[r][v] first finished by FINISH(x, r, v, m, cr) (m: the
 * vector's lane mask, cr: its row of C). */
#define KERNEL_STORE(MR, NV, FINISH)                                                              \
    _Pragma("GCC unroll 32") for (int r = 0; r < MR; r++)                                         \
    {                                                                                             \
        float *cr = c + (size_t)r * ldc;                                                          \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                      \
        {                                                                                         \
            __mmask16 m = v == NV - 1 ? last : (__mmask16)0xFFFF;                                 \
            __m512 x = acc[r][v];                                                                 \
            FINISH(x, r, v, m, cr);                                                               \
            _mm512_mask_storeu_ps(cr + 16 * v, m, x);                                             \
        }                                                                                         \
    }

/* alpha * sum + beta * C */
#define FINISH_PLAIN(x, r, v, m, cr)                                                              \
    x = _mm512_mul_ps(_mm512_set1_ps(alpha), x);                                                  \
    if (beta != 0.0f)                                                                             \
        x = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, cr + 16 * v), x)

/* (sum + C when beta is 1), then the epilogue (ops.h, oc_gemm_epi; epi_avx512.h), alpha 1,
 * each step rounded separately as oc_conv_epilogue_apply rounds it */
#define FINISH_EPI(x, r, v, m, cr)                                                                \
    if (beta != 0.0f)                                                                             \
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, cr + 16 * v));                              \
    x = oc_epi_vec(e, x, r * e->ldr + 16 * v, 16 * v, m)

/* Body of an MR x (16*NV) kernel, and of one with the epilogue. */
#define KERNEL_BODY(MR, NV, A_AT, B_AT)                                                           \
    KERNEL_ACC(MR, NV, A_AT, B_AT)                                                                \
    KERNEL_STORE(MR, NV, FINISH_PLAIN)
#define KERNEL_EPI_BODY(MR, NV, A_AT, B_AT)                                                       \
    KERNEL_ACC(MR, NV, A_AT, B_AT)                                                                \
    KERNEL_STORE(MR, NV, FINISH_EPI)

#define DEFINE_EPI_KERNEL(NAME, MR, NV, A_AT, B_AT)                                               \
    static void NAME##MR##x##NV(int nr, int kc, const float *restrict a, ptrdiff_t a_rs,         \
                                ptrdiff_t a_ks, const float *restrict b, ptrdiff_t b_ks,          \
                                float beta, float *restrict c, int ldc,                           \
                                const oc_gemm_epi *restrict e)                                    \
    {                                                                                             \
        (void)a_rs;                                                                               \
        (void)a_ks;                                                                               \
        (void)b_ks;                                                                               \
        KERNEL_EPI_BODY(MR, NV, A_AT, B_AT)                                                       \
    }

typedef void (*tile_epi_fn)(int nr, int kc, const float *restrict a, ptrdiff_t a_rs,
                            ptrdiff_t a_ks, const float *restrict b, ptrdiff_t b_ks, float beta,
                            float *restrict c, int ldc, const oc_gemm_epi *restrict e);

#define DEFINE_KERNEL(NAME, MR, NV, A_AT, B_AT)                                                   \
    static void NAME##MR##x##NV(int nr, int kc, const float *restrict a, ptrdiff_t a_rs,         \
                                ptrdiff_t a_ks, const float *restrict b, ptrdiff_t b_ks,          \
                                float alpha, float beta, float *restrict c, int ldc)              \
    {                                                                                             \
        (void)a_rs;                                                                               \
        (void)a_ks;                                                                               \
        (void)b_ks;                                                                               \
        KERNEL_BODY(MR, NV, A_AT, B_AT)                                                           \
    }

typedef void (*tile_fn)(int nr, int kc, const float *restrict a, ptrdiff_t a_rs, ptrdiff_t a_ks,
                        const float *restrict b, ptrdiff_t b_ks, float alpha, float beta,
                        float *restrict c, int ldc);

/* packed A, packed B: the main path */
#define PP(MR, NV) DEFINE_KERNEL(pp, MR, NV, A_PACKED, B_PACKED)
/* packed A, B in place: few row panels, so B would be packed for little reuse */
#define PD(MR, NV) DEFINE_KERNEL(pd, MR, NV, A_PACKED, B_DIRECT)
/* A in place, packed B: skinny N */
#define DP(MR, NV) DEFINE_KERNEL(dp, MR, NV, A_DIRECT, B_PACKED)

/* packed A or A in place, packed B, with the epilogue */
#define PPE(MR, NV) DEFINE_EPI_KERNEL(ppe, MR, NV, A_PACKED, B_PACKED)
#define DPE(MR, NV) DEFINE_EPI_KERNEL(dpe, MR, NV, A_DIRECT, B_PACKED)

#define ROWS_1_14(X, NV)                                                                          \
    X(1, NV) X(2, NV) X(3, NV) X(4, NV) X(5, NV) X(6, NV) X(7, NV) X(8, NV) X(9, NV) X(10, NV)  \
    X(11, NV) X(12, NV) X(13, NV) X(14, NV)
#define ROWS_15_28(X, NV)                                                                         \
    X(15, NV) X(16, NV) X(17, NV) X(18, NV) X(19, NV) X(20, NV) X(21, NV) X(22, NV) X(23, NV)    \
    X(24, NV) X(25, NV) X(26, NV) X(27, NV) X(28, NV)

ROWS_1_14(PP, 1)
ROWS_1_14(PP, 2)
ROWS_1_14(PD, 1)
ROWS_1_14(PD, 2)
ROWS_1_14(DP, 1)
ROWS_1_14(DP, 2)
ROWS_15_28(DP, 1)
ROWS_1_14(PPE, 1)
ROWS_1_14(PPE, 2)
ROWS_1_14(DPE, 1)
ROWS_1_14(DPE, 2)
ROWS_15_28(DPE, 1)

#define TABLE_1_14(P, NV)                                                                         \
    {0, P##1x##NV, P##2x##NV, P##3x##NV, P##4x##NV, P##5x##NV, P##6x##NV, P##7x##NV, P##8x##NV,  \
     P##9x##NV, P##10x##NV, P##11x##NV, P##12x##NV, P##13x##NV, P##14x##NV}

static const tile_fn pp[2][15] = {TABLE_1_14(pp, 1), TABLE_1_14(pp, 2)};
static const tile_fn pd[2][15] = {TABLE_1_14(pd, 1), TABLE_1_14(pd, 2)};
static const tile_fn dp_wide[2][15] = {TABLE_1_14(dp, 1), TABLE_1_14(dp, 2)};
static const tile_epi_fn ppe[2][15] = {TABLE_1_14(ppe, 1), TABLE_1_14(ppe, 2)};
static const tile_epi_fn dpe[2][15] = {TABLE_1_14(dpe, 1), TABLE_1_14(dpe, 2)};
static const tile_epi_fn dpe_skinny[29] = {
    0,       dpe1x1,  dpe2x1,  dpe3x1,  dpe4x1,  dpe5x1,  dpe6x1,  dpe7x1,  dpe8x1,  dpe9x1,
    dpe10x1, dpe11x1, dpe12x1, dpe13x1, dpe14x1, dpe15x1, dpe16x1, dpe17x1, dpe18x1, dpe19x1,
    dpe20x1, dpe21x1, dpe22x1, dpe23x1, dpe24x1, dpe25x1, dpe26x1, dpe27x1, dpe28x1,
};
static const tile_fn dp[29] = {
    0,      dp1x1,  dp2x1,  dp3x1,  dp4x1,  dp5x1,  dp6x1,  dp7x1,  dp8x1,  dp9x1,
    dp10x1, dp11x1, dp12x1, dp13x1, dp14x1, dp15x1, dp16x1, dp17x1, dp18x1, dp19x1,
    dp20x1, dp21x1, dp22x1, dp23x1, dp24x1, dp25x1, dp26x1, dp27x1, dp28x1,
};

/* Packed panels hold exactly mr rows and nr rounded up to 16 columns, so the kernel for
 * (mr, ceil(nr/16)) reads them with its own compile-time strides. */
static void wide(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
                 const float *b, ptrdiff_t b_ks, float alpha, float beta, float *c, int ldc)
{
    pp[nr > 16][mr](nr, kc, a, a_rs, a_ks, b, b_ks, alpha, beta, c, ldc);
}

static void wide_direct_b(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs,
                          ptrdiff_t a_ks, const float *b, ptrdiff_t b_ks, float alpha,
                          float beta, float *c, int ldc)
{
    pd[nr > 16][mr](nr, kc, a, a_rs, a_ks, b, b_ks, alpha, beta, c, ldc);
}

static void wide_direct_a(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs,
                          ptrdiff_t a_ks, const float *b, ptrdiff_t b_ks, float alpha,
                          float beta, float *c, int ldc)
{
    dp_wide[nr > 16][mr](nr, kc, a, a_rs, a_ks, b, b_ks, alpha, beta, c, ldc);
}

static void wide_epi(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
                     const float *b, ptrdiff_t b_ks, float beta, float *c, int ldc,
                     const oc_gemm_epi *e)
{
    ppe[nr > 16][mr](nr, kc, a, a_rs, a_ks, b, b_ks, beta, c, ldc, e);
}

static void wide_direct_a_epi(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs,
                              ptrdiff_t a_ks, const float *b, ptrdiff_t b_ks, float beta,
                              float *c, int ldc, const oc_gemm_epi *e)
{
    dpe[nr > 16][mr](nr, kc, a, a_rs, a_ks, b, b_ks, beta, c, ldc, e);
}

static void skinny(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
                   const float *b, ptrdiff_t b_ks, float alpha, float beta, float *c, int ldc)
{
    dp[mr](nr, kc, a, a_rs, a_ks, b, b_ks, alpha, beta, c, ldc);
}

static void skinny_epi(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks,
                       const float *b, ptrdiff_t b_ks, float beta, float *c, int ldc,
                       const oc_gemm_epi *e)
{
    dpe_skinny[mr](nr, kc, a, a_rs, a_ks, b, b_ks, beta, c, ldc, e);
}

/* In-register transpose of a 16 x 16 block: r[i] lane j <-> r[j] lane i. Four rounds of
 * shuffles (within 128-bit lanes, then across them), 64 in all for 256 elements. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xDD);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
}

/* One A panel (mr <= 16 rows) into dst[k * mr + r]. Non-transposed A has its rows lda apart:
 * 16 k at a time, mr row segments are loaded and transposed in registers, so every store
 * writes a whole k column (a scalar loop costs a store per element and made packing 25-40%
 * of the time of products with N of a few hundred; a gather per column still 17%). For
 * transposed A a panel's k column is already contiguous: masked vector copies. */
static void pack_a_panel(int transa, const float *a, int lda, int mr, int kc, float *dst)
{
    const __mmask16 m = (__mmask16)((1u << mr) - 1u);
    __m512 r[16];
    if (transa) {
        for (int k = 0; k < kc; k++)
            _mm512_mask_storeu_ps(dst + (size_t)k * mr, m,
                                  _mm512_maskz_loadu_ps(m, a + (size_t)k * lda));
        return;
    }
    for (int k0 = 0; k0 < kc; k0 += 16) {
        int kn = kc - k0 < 16 ? kc - k0 : 16;
        const __mmask16 km = (__mmask16)((1u << kn) - 1u);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            if (i < mr)
                _mm_prefetch((const char *)(a + (size_t)i * lda + k0 + 64), _MM_HINT_T0);
            r[i] = i < mr ? _mm512_maskz_loadu_ps(km, a + (size_t)i * lda + k0)
                          : _mm512_setzero_ps();
        }
        transpose16(r);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            if (j < kn)
                _mm512_mask_storeu_ps(dst + (size_t)(k0 + j) * mr, m, r[j]);
    }
}

const oc_gemm_kernel oc_gemm_avx512_wide = {"avx512-14x32", 14, 32, 0, 16, 0, wide,
                                            wide_direct_b, pack_a_panel, wide_epi};
const oc_gemm_kernel oc_gemm_avx512_wide_a = {"avx512-14x32-a", 14, 32, 0, 16, 1, wide_direct_a,
                                              NULL, NULL, wide_direct_a_epi};
const oc_gemm_kernel oc_gemm_avx512_skinny = {"avx512-28x16", 28, 16, 0, 16, 1, skinny, NULL,
                                              NULL, skinny_epi};
