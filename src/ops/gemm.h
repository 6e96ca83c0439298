/* Private interface between the GEMM driver (gemm.c) and its ISA-specific micro-kernels
 * (gemm_avx512.c, gemm_avx2.c). The driver packs blocks of op(A) and op(B) into panels and
 * calls a micro-kernel per register tile; see gemm.c for the blocking scheme. */
#ifndef OC_GEMM_H
#define OC_GEMM_H

#include "ops.h"

#include <stddef.h>

/* Computes one register tile of C:
 *   C[r][j] = alpha * sum_k A(r, k) * B(k, j) + beta * C[r][j]    (r < mr, j < nr)
 * with A(r, k) = a[r * a_rs + k * a_ks] and B(k, j) = b[k * b_ks + j]. A packed A panel has
 * a_rs = 1, a_ks = its row stride; a family with direct_a reads op(A) where it lies. B is
 * either a packed panel (b_ks = its stride, 64-byte aligned, zero padded: the `kernel` entry)
 * or rows of a non-transposed B in place (b_ks = ldb, any alignment: `kernel_direct_b`, which
 * never reads past column nr). beta == 0 never reads C. */
typedef void (*oc_gemm_ukernel)(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs,
                                ptrdiff_t a_ks, const float *b, ptrdiff_t b_ks, float alpha,
                                float beta, float *c, int ldc);

/* The same tile with alpha 1 followed by an oc_gemm_epi (ops.h) whose pointers are already
 * offset to the tile's first row and column. */
typedef void (*oc_gemm_ukernel_epi)(int mr, int nr, int kc, const float *a, ptrdiff_t a_rs,
                                    ptrdiff_t a_ks, const float *b, ptrdiff_t b_ks, float beta,
                                    float *c, int ldc, const oc_gemm_epi *epi);

/* One micro-kernel family. The driver's packed layout for a panel of `mr` rows is `mr` floats
 * per k (or the full tile height with pad_a, zero padded) and for `nr` columns nr rounded up
 * to nr_quantum floats per k. */
typedef struct {
    const char *name;
    int mr;          /* rows of a full register tile */
    int nr;          /* columns of a full register tile */
    int pad_a;       /* 1: A panels are padded to mr rows; 0: packed with exactly their rows */
    int nr_quantum;  /* B panels are padded to a multiple of this many columns */
    int direct_a;    /* 1: the kernel reads op(A) in place with strides: no A packing */
    oc_gemm_ukernel kernel;          /* packed B */
    oc_gemm_ukernel kernel_direct_b; /* B rows in place (no B packing), or NULL */
    /* Packs one unpadded A panel: rows [0, mr) x k [0, kc) of op(A) (a points at its first
     * element) into dst[k * mr + r]. NULL: the driver's portable loops. */
    void (*pack_a_panel)(int transa, const float *a, int lda, int mr, int kc, float *dst);
    oc_gemm_ukernel_epi kernel_epi;  /* packed B, then the epilogue; or NULL */
} oc_gemm_kernel;

/* AVX-512F: 14 x 32 register tile (28 zmm accumulators); instantiated for every smaller row
 * count and for 16-column panels, so edge tiles do not compute padding. */
extern const oc_gemm_kernel oc_gemm_avx512_wide;
/* The same tile reading A in place: same panels of B, same sums, no A packing. For products
 * whose A is used by few B panels (oc_gemm_pre with few columns), where packing it costs a
 * large part of the multiply. */
extern const oc_gemm_kernel oc_gemm_avx512_wide_a;
/* AVX-512F: 28 x 16 register tile reading A in place, for C with at most 16 columns (skinny
 * N, e.g. the conv forward of a 16-channel layer), where each element of A is used by one
 * tile only and packing it would cost more than the multiply. */
extern const oc_gemm_kernel oc_gemm_avx512_skinny;
/* AVX2 + FMA: 6 x 16 register tile (12 ymm accumulators), padded panels. */
extern const oc_gemm_kernel oc_gemm_avx2_main;

/* The kernel family oc_gemm uses on this CPU for a product with N columns; NULL when the CPU
 * has neither AVX-512F nor AVX2 + FMA (oc_gemm then runs oc_gemm_simple). */
const oc_gemm_kernel *oc_gemm_pick(int N);

/* oc_gemm's two paths, exposed so tests and benchmarks can drive each kernel family directly
 * (same contract as oc_gemm). oc_gemm_blocked splits the work over oc_parallel threads; the
 * caller must have checked that the CPU runs `kern`. oc_gemm_simple is unblocked, portable and
 * single-threaded: the small-problem path and the fallback without AVX2. */
void oc_gemm_blocked(const oc_gemm_kernel *kern, int transa, int transb, int M, int N, int K,
                     float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                     float *C, int ldc);
void oc_gemm_simple(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Pieces the fp32 and the bf16 drivers share. */
/* C = beta * C over M x N (beta 0 writes zeros, so NaNs in C do not survive). */
void oc_gemm_scale_c(int M, int N, float beta, float *C, int ldc);
/* The part of a split product that thread tid of nt computes: split 0 shares out row tiles of
 * mr rows, split 1 column tiles of nr columns, split 2 slices of K (each into its own partial
 * C, which oc_gemm_ksplit_reduce adds up). */
typedef struct {
    int m0, m1, n0, n1, k0, k1;
} oc_gemm_range;
oc_gemm_range oc_gemm_thread_range(int split, int M, int N, int K, int mr, int nr, int tid,
                                   int nt);
/* C = alpha * (sum of the nt partials part[t][M][N], in thread order) + beta * C. */
void oc_gemm_ksplit_reduce(int M, int N, int nt, const float *part, float alpha, float beta,
                           float *C, int ldc);

#endif /* OC_GEMM_H */
