/* Private interface between the bf16 GEMM driver (gemm_bf16.c) and its AVX-512 BF16 packing
 * routines and micro-kernels (gemm_bf16_avx512.c).
 *
 * Packed panels hold bf16 pairs: word (kp, i) of a panel is the 32-bit pair
 * (X(i, 2kp), X(i, 2kp+1)), low half first, which is what vdpbf16ps multiplies and adds into
 * one fp32 lane. A panel of w rows (of op(A)) or columns (of op(B)) stores, for each pair kp,
 * `ds` words: the w values then zeros up to ds. An odd K gets a zero second half in its last
 * pair, so it adds nothing. */
#ifndef OC_GEMM_BF16_H
#define OC_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

/* Packs a panel of w <= ds values by kc k of a matrix X with X(i, k) = x[i * is + k * ks],
 * where either ks == 1 (each i's k run is contiguous: op(A) not transposed, op(B) transposed)
 * or is == 1 (each k's i run is contiguous), into dst[kp * ds + i], ceil(kc / 2) pairs,
 * rounding to bf16 to nearest even. */
void oc_gemm_bf16_pack_avx512(const float *x, ptrdiff_t is, ptrdiff_t ks, int w, int kc,
                              uint32_t *dst, int ds);

/* Packs rows [0, rows) x k [0, kc) of a row-major X (row stride ld floats) into
 * dst[r * ds + kp], ds >= ceil(kc / 2): each row's pairs stay in a row, so no transpose is
 * needed (op(A) not transposed). */
void oc_gemm_bf16_pack_rows_avx512(const float *x, ptrdiff_t ld, int rows, int kc, uint32_t *dst,
                                   int ds);

/* Rows 2 kp and 2 kp + 1 (r1 NULL: zeros) of a K x n matrix, as pair kp of every panel of
 * oc_gemm_bf16_pack_b's layout at dst (panel p at p * NR * ceil(K / 2) words, pair kp at kp *
 * its width rounded up to 16). */
void oc_gemm_bf16_pack_pair_avx512(const float *r0, const float *r1, int n, int kp, int K,
                                   uint32_t *dst);

/* One register tile: C[r][j] = alpha * sum_kp dot(a[kp * mr + r], b[kp * bs + j])
 * + beta * C[r][j] for r < mr <= OC_BF16_MR, j < nr <= OC_BF16_NR, where bs = nr rounded up
 * to 16 and b is 64-byte aligned. beta == 0 never reads C. */
void oc_gemm_bf16_tile_avx512(int mr, int nr, int kp, const uint32_t *a, const uint32_t *b,
                              float alpha, float beta, float *c, int ldc);
/* The same with A in rows: pair kp of row r at a[r * a_rs + kp] (oc_gemm_bf16_pack_rows). */
void oc_gemm_bf16_tile_rows_avx512(int mr, int nr, int kp, const uint32_t *a, ptrdiff_t a_rs,
                                   const uint32_t *b, float alpha, float beta, float *c, int ldc);

#define OC_BF16_MR 14
#define OC_BF16_NR 32

#endif /* OC_GEMM_BF16_H */
