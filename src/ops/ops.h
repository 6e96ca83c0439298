/* The math kernels on raw pointers. Layouts: activations NHWC; conv weights [K][R][S][C/g];
 * dense weights [O][I] (PyTorch's). Every op has a plain scalar `_ref` beside the dispatching
 * entry point, which may pick a faster kernel by CPU feature; `_ref` is the oracle in tests.
 *
 * Conventions shared by every op:
 *  - Forward kernels OVERWRITE their outputs.
 *  - Backward kernels ACCUMULATE (+=) into dx, dw, db: a tensor read by several nodes collects
 *    gradient from each, and the graph zeroes a gradient buffer before its first writer (a
 *    _set variant instead writes dx with the bits of accumulating onto zeros).
 *  - Kernels never allocate: scratch comes in `ws`, sized by the matching _workspace().
 *  - Multi-threaded kernels split work with oc_parallel and combine per-thread partials in a
 *    fixed order, so results are bitwise reproducible for a given thread count.
 */
#ifndef OC_OPS_H
#define OC_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- convolution */

typedef struct {
    int N, H, W, C;         /* input */
    int K, R, S;            /* output channels, kernel height, kernel width */
    int P, Q;               /* output height, width (oc_conv_shape_init computes them) */
    int stride_h, stride_w;
    int pad_h, pad_w;       /* top/left padding; bottom/right is whatever makes P, Q */
    int dil_h, dil_w;
    int groups;             /* C % groups == 0 and K % groups == 0 */
} oc_conv_shape;

/* Fills P and Q as PyTorch does: P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1.
 * Returns 0 on success, -1 if the shape is invalid (P or Q < 1, bad groups). */
int oc_conv_shape_init(oc_conv_shape *s);

/* y[N][P][Q][K] = conv(x[N][H][W][C], w[K][R][S][C/g]) + b[K] (b may be NULL). */
size_t oc_conv2d_fwd_workspace(const oc_conv_shape *s);
void oc_conv2d_fwd(const oc_conv_shape *s, const float *x, const float *w, const float *b,
                   float *y, void *ws);
void oc_conv2d_fwd_ref(const oc_conv_shape *s, const float *x, const float *w, const float *b,
                       float *y);

/* dx += conv_transpose(dy, w); the _set variant writes dx = conv_transpose(dy, w), the bits
 * of adding to zeros without reading dx first */
size_t oc_conv2d_bwd_data_workspace(const oc_conv_shape *s);
void oc_conv2d_bwd_data(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                        void *ws);
void oc_conv2d_bwd_data_set(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                            void *ws);
void oc_conv2d_bwd_data_ref(const oc_conv_shape *s, const float *dy, const float *w, float *dx);

/* dw += corr(x, dy); db += sum dy (db may be NULL; dw may be NULL: the bias alone) */
size_t oc_conv2d_bwd_weights_workspace(const oc_conv_shape *s);
void oc_conv2d_bwd_weights(const oc_conv_shape *s, const float *x, const float *dy, float *dw,
                           float *db, void *ws);
void oc_conv2d_bwd_weights_ref(const oc_conv_shape *s, const float *x, const float *dy,
                               float *dw, float *db);

/* ---------------------------------------------------------------- dense (fully connected) */

/* y[N][O] = x[N][I] * w[O][I]^T + b[O] (b may be NULL) */
void oc_dense_fwd(int N, int I, int O, const float *x, const float *w, const float *b, float *y);
void oc_dense_fwd_ref(int N, int I, int O, const float *x, const float *w, const float *b,
                      float *y);
/* dx += dy * w (dx may be NULL); dw += dy^T * x; db += sum_n dy (db may be NULL) */
void oc_dense_bwd(int N, int I, int O, const float *x, const float *w, const float *dy, float *dx,
                  float *dw, float *db);
void oc_dense_bwd_ref(int N, int I, int O, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db);

/* ---------------------------------------------------------------- GEMM */

/* C[M][N] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is A[M][K] (lda) or, with
 * transa, A stored [K][M]; likewise B[K][N] or [N][K] with transb. beta == 0 ignores C's old
 * contents (NaNs included). */
void oc_gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
void oc_gemm_ref(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* op(B) packed once for products that share it (the weights of every im2col chunk of a
 * convolution): oc_gemm_pack_b packs op(B) (K x N; transb as oc_gemm's) into dst, 64-byte
 * aligned, of oc_gemm_b_bytes(N, K), for the kernel oc_gemm picks for N; oc_gemm_pre is
 * oc_gemm(0, transb, ...) reading B from bp, bitwise oc_gemm's result. It reads the floats of
 * B only for products too small for the blocked kernels (M * N * K < OC_GEMM_SMALL), in bf16
 * math, and on CPUs without AVX2 (where oc_gemm_pack_b packs nothing). */
#define OC_GEMM_SMALL 32768
size_t oc_gemm_b_bytes(int N, int K);
void oc_gemm_pack_b(int transb, int N, int K, const float *B, int ldb, float *dst);
void oc_gemm_pre(int M, int N, int K, float alpha, const float *A, int lda, const float *bp,
                 const float *B, int ldb, int transb, float beta, float *C, int ldc);
/* oc_gemm_pre with alpha 1 and beta 0 (bp may be NULL: B is packed here), then the output
 * epilogue epi over C (oc_gemm_epi, with the conv epilogue below): in the AVX-512 tiles'
 * registers as they store C, or (bf16 math, other CPUs) in a pass after the product. With
 * AVX-512 and fp32 math every element gets the same bits however the caller splits the rows:
 * products too small for the tiles repeat their arithmetic. */
typedef struct oc_gemm_epi oc_gemm_epi;
void oc_gemm_pre_epi(int M, int N, int K, const float *A, int lda, const float *bp,
                     const float *B, int ldb, int transb, float *C, int ldc,
                     const oc_gemm_epi *epi);
/* Where oc_gemm_pack_b(.., N, K, ..) puts element (k, n) of op(B), in floats from its start
 * (for writing a packed B directly); *padded (may be NULL) says whether the last panel has
 * padding columns, which must hold zeros. */
size_t oc_gemm_packed_index(int N, int K, int k, int n, int *padded);
/* Columns [j0, j0 + n) of a B packed by oc_gemm_pack_b(.., N, K, ..), as if packed alone, or
 * NULL where their own packing would differ (another kernel family for n columns, or j0 not on
 * a panel boundary). */
const float *oc_gemm_packed_cols(const float *bp, int N, int K, int j0, int n);

/* ---------------------------------------------------------------- bf16 GEMM (gemm_bf16.c) */

/* oc_gemm's contract with both operands rounded to bfloat16 (to nearest even) and the products
 * summed in fp32: AVX512_BF16 dot products where the CPU has them (oc_bf16_supported),
 * portable loops otherwise. oc_gemm_bf16_ref sums the same rounded products in double. */
void oc_gemm_bf16(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);
void oc_gemm_bf16_ref(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Operands converted ahead of time, for products that share one (the weights of every im2col
 * chunk of a convolution), bitwise oc_gemm_bf16's result. AVX512_BF16 CPUs only.
 * oc_gemm_bf16_pack_b packs op(B) (K x N; transb as oc_gemm's) into dst, 64-byte aligned, of
 * oc_gemm_bf16_b_bytes(N, K). oc_bf16_pack_row rounds n floats into (n + 1) / 2 bf16 pairs
 * (an odd n gets a zero high half). oc_gemm_bf16_pack_b_pair packs rows 2 kp and 2 kp + 1
 * (r1 NULL: zeros) of op(B) (K x N, rows of N floats) into oc_gemm_bf16_pack_b's layout at
 * bp, so a B made row by row (an im2col chunk) need not exist in floats. oc_gemm_bf16_pre is
 * oc_gemm_bf16(transa, transb, ...) with B given packed in bp (and as floats in B, or NULL)
 * and A either as floats (A, lda) or, not transposed and with B's floats given, as rows of
 * pairs ar[i * ar_ld + k / 2] made by oc_bf16_pack_row (ar not NULL). */
size_t oc_gemm_bf16_b_bytes(int N, int K);
void oc_gemm_bf16_pack_b(int transb, int N, int K, const float *B, int ldb, void *dst);
void oc_gemm_bf16_pack_b_pair(const float *r0, const float *r1, int N, int K, int kp, void *bp);
void oc_bf16_pack_row(const float *x, int n, uint32_t *dst);
void oc_gemm_bf16_pre(int transa, int M, int N, int K, float alpha, const uint32_t *ar,
                      ptrdiff_t ar_ld, const float *A, int lda, const void *bp, const float *B,
                      int ldb, int transb, float beta, float *C, int ldc);
/* 1 when the CPU runs the AVX512_BF16 kernels. */
int oc_bf16_supported(void);
/* x rounded to the nearest bfloat16 (ties to even), returned as a float. */
float oc_bf16_round(float x);

/* The calling thread's math mode: with OC_MATH_BF16, oc_gemm (and so the conv and dense
 * kernels built on it) computes as oc_gemm_bf16 when the CPU has AVX512_BF16, and the conv
 * kernels skip their fp32-only direct paths. Everything else stays fp32. oc_math_set returns
 * the previous mode so callers can restore it. */
typedef enum { OC_MATH_F32 = 0, OC_MATH_BF16 } oc_math_mode;
oc_math_mode oc_math_set(oc_math_mode mode);
oc_math_mode oc_math_get(void);

/* ---------------------------------------------------------------- batch normalisation */

/* Over x[M][C] (M = N*H*W), per channel. Training: normalise with the batch statistics, save
 * mean and 1/sqrt(var+eps) for backward, and update running stats as PyTorch does:
 *   running = (1 - momentum) * running + momentum * stat, with the UNBIASED batch variance
 *   (M/(M-1)) in running_var and the biased one in the normalisation.
 * running_mean / running_var may be NULL (no update). */
void oc_batchnorm_fwd_train(int64_t M, int C, const float *x, const float *gamma,
                            const float *beta, float eps, float momentum, float *running_mean,
                            float *running_var, float *save_mean, float *save_invstd, float *y);
void oc_batchnorm_fwd_infer(int64_t M, int C, const float *x, const float *gamma,
                            const float *beta, const float *running_mean,
                            const float *running_var, float eps, float *y);
/* Backward of the training forward: dx += ..., dgamma += ..., dbeta += ... */
void oc_batchnorm_bwd(int64_t M, int C, const float *x, const float *gamma, const float *save_mean,
                      const float *save_invstd, const float *dy, float *dx, float *dgamma,
                      float *dbeta);

/* ---------------------------------------------------------------- activations */

typedef enum {
    OC_ACT_IDENTITY = 0,
    OC_ACT_RELU,
    OC_ACT_RELU6,
    OC_ACT_LEAKY_RELU, /* alpha = negative slope (PyTorch default 0.01) */
    OC_ACT_GELU,       /* exact: x * 0.5 * (1 + erf(x / sqrt 2)) */
    OC_ACT_SILU,
    OC_ACT_SIGMOID,
    OC_ACT_HARDSWISH
} oc_act;

/* y = f(x) elementwise over n values (x and y may alias). */
void oc_act_fwd(oc_act act, float alpha, int64_t n, const float *x, float *y);
/* dx += f'(x) * dy, from the forward INPUT x. */
void oc_act_bwd(oc_act act, float alpha, int64_t n, const float *x, const float *dy, float *dx);
/* dx = f'(x) * dy: the bits of oc_act_bwd into zeros, without reading dx. */
void oc_act_bwd_set(oc_act act, float alpha, int64_t n, const float *x, const float *dy,
                    float *dx);

/* ---------------------------------------------------------------- fused conv epilogue */

/* Inference convolution with a fused output epilogue (batch norm folded into a per-channel
 * affine, the conv's bias, a residual add and an activation), applied to each block of y right
 * after the kernel wrote it, while it is still in cache:
 *   y[m][k] = act((acc[m][k] + pre[k]) * scale[k] + shift[k] + res[m][k])   (m = (n, p, q))
 * where acc is the bias-free convolution. For a conv with bias b and a batch norm, pre = b -
 * mean, scale = gamma / sqrt(var + eps), shift = beta: the batch norm's own arithmetic, so a
 * large mean does not cancel. pre, scale and shift are required ([K]); res (same layout as y)
 * may be NULL; act is any activation (alpha: leaky_relu's slope). w_packed may hold the
 * weights as oc_conv2d_fused_pack packed them (a model whose weights stay fixed keeps them
 * so), read instead of packing them on every call; or be NULL. Same workspace as
 * oc_conv2d_fwd. Results match oc_conv2d_fwd followed by the separate passes within rounding,
 * and are the same bits with and without w_packed, except where w_packed is in Winograd's
 * layout (then equal within rounding). */
typedef struct {
    const float *pre, *scale, *shift;
    const float *res;
    oc_act act;
    float alpha;
    const float *w_packed;
} oc_conv_epilogue;
/* Bytes of s's weights packed for oc_conv2d_fwd_fused (0: it would not read them packed), and
 * the packing, in the layout its fp32 kernel for s reads (a 1x1 convolution's is
 * oc_gemm_pack_b(1, K, C, w, C, ..)). Pack with the same CPU settings as the calls. */
size_t oc_conv2d_fused_pack_bytes(const oc_conv_shape *s);
void oc_conv2d_fused_pack(const oc_conv_shape *s, const float *w, void *dst);
void oc_conv2d_fwd_fused(const oc_conv_shape *s, const float *x, const float *w,
                         const oc_conv_epilogue *e, float *y, void *ws);
/* Winograd F(2x2, 3x3) (winograd.c), for the 3x3 stride-1 layers that oc_wino_shape accepts
 * (oc_wino_tiles: their 2x2 output tiles over the batch): the fused forward from weights
 * oc_wino_pack transformed and packed, in oc_wino_workspace bytes. Needs AVX-512 and fp32
 * math; oc_conv2d_fwd_fused takes it when the packed weights are Winograd's, oc_conv2d_fwd and
 * oc_conv2d_bwd_data for these shapes from enough tiles on. */
int oc_wino_shape(const oc_conv_shape *s);
int64_t oc_wino_tiles(const oc_conv_shape *s);
size_t oc_wino_workspace(const oc_conv_shape *s);
size_t oc_wino_pack_bytes(const oc_conv_shape *s);
void oc_wino_pack(const oc_conv_shape *s, const float *w, void *dst);
void oc_wino_fwd_fused(const oc_conv_shape *s, const float *x, const void *u,
                       const oc_conv_epilogue *e, float *y, void *ws);
/* The training passes, transforming w on every call, in oc_wino_train_workspace(s) bytes
 * (backward-data: of oc_wino_transposed(s), the convolution from dy to dx; it adds to dx
 * unless set). */
size_t oc_wino_train_workspace(const oc_conv_shape *s);
oc_conv_shape oc_wino_transposed(const oc_conv_shape *s);
void oc_wino_fwd(const oc_conv_shape *s, const float *x, const float *w, const float *b,
                 float *y, void *ws);
void oc_wino_bwd_data(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                      void *ws, int set);

/* An inverted-residual block's fused inference forward (block.c): expand 1x1 -> depthwise ->
 * project 1x1, each with its epilogue (the 1x1 ones with an activation oc_gemm_epi_act
 * accepts, the depthwise one without a residual) and its weights kept packed
 * (oc_conv2d_fused_pack; w_ex and w_pr are the plain 1x1 weights, for products too small for
 * the packed path). ex NULL (e_ex and w_ex unused): no expand layer. It runs in row bands that
 * keep the wide intermediate tensors in L2; y is bitwise what the layers' oc_conv2d_fwd_fused
 * calls give. oc_block_fused_ok says whether the shapes (at the same batch) chain, the
 * activations fit and the CPU runs the kernels it needs (AVX-512, fp32 math); the workspace is
 * per thread (threads beyond what ws_bytes holds are not used). */
int oc_block_fused_ok(const oc_conv_shape *ex, const oc_conv_shape *dw, const oc_conv_shape *pr,
                      oc_act act_ex, oc_act act_pr);
size_t oc_block_fused_workspace(const oc_conv_shape *dw, int threads);
void oc_block_fwd_fused(const oc_conv_shape *ex, const oc_conv_shape *dw,
                        const oc_conv_shape *pr, const float *x, const float *w_ex,
                        const float *w_pr, const oc_conv_epilogue *e_ex,
                        const oc_conv_epilogue *e_dw, const oc_conv_epilogue *e_pr, float *y,
                        void *ws, size_t ws_bytes);
/* Test hook: the band buffers' byte budget per thread (0: the default, 384 KiB). */
void oc_block_set_band_bytes(size_t bytes);

/* Applies e to rows [m0, m1), channels [k0, k1) of y[][K] in place (epilogue.c). */
void oc_conv_epilogue_apply(const oc_conv_epilogue *e, int64_t m0, int64_t m1, int k0, int k1,
                            int K, float *y);
/* The epilogue in the form a GEMM applies it to C[i][j] (oc_gemm_pre_epi, the AVX-512 tiles):
 *   C[i][j] = act((C[i][j] + pre[j]) * scale[j] + shift[j] + res[i * ldr + j])
 * for the activations oc_gemm_epi_act accepts (identity, ReLU, ReLU6); res may be NULL. Each
 * step is rounded as in oc_conv_epilogue_apply, so the two give the same bits. */
struct oc_gemm_epi {
    const float *pre, *scale, *shift;
    const float *res;
    ptrdiff_t ldr;
    oc_act act;
};
int oc_gemm_epi_act(oc_act act);
/* e's columns from channel k0 on, with res (at the block's first element, rows ldr apart);
 * e->act must be one oc_gemm_epi_act accepts. */
oc_gemm_epi oc_conv_epilogue_cols(const oc_conv_epilogue *e, int k0, const float *res,
                                  ptrdiff_t ldr);
/* The epilogue as a pass over C[M][N] (rows ldc apart), vectorised like
 * oc_conv_epilogue_apply. */
void oc_gemm_epi_apply(const oc_gemm_epi *e, int64_t M, int N, float *C, int ldc);
/* The scalar form of the epilogue over all of y[M][K]: the oracle of the fused kernels. */
void oc_conv_epilogue_ref(const oc_conv_epilogue *e, int64_t M, int K, float *y);

/* ---------------------------------------------------------------- batch norm + activation */

/* Batch normalisation fused with the activation that follows it, for the acts where this
 * returns 1 (identity, ReLU, ReLU6, GELU): y = act(batchnorm(x)) in one pass, the normalised
 * value never stored. The backward takes the FUSED output y and dy = d(loss)/dy, gets the
 * activation's derivative from y (ReLU, ReLU6) or from the normalised value recomputed from x,
 * gamma and beta (GELU; y may then be NULL), and accumulates dx, dgamma, dbeta as
 * oc_batchnorm_bwd does. Results are bitwise those of the separate batch norm and oc_act
 * calls. */
int oc_batchnorm_act_fusable(oc_act act);
void oc_batchnorm_act_fwd_train(int64_t M, int C, const float *x, const float *gamma,
                                const float *beta, float eps, float momentum,
                                float *running_mean, float *running_var, float *save_mean,
                                float *save_invstd, oc_act act, float *y);
void oc_batchnorm_act_fwd_infer(int64_t M, int C, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, float eps, oc_act act, float *y);
/* y again from a training forward's saved statistics (and the same x, gamma, beta): bitwise
 * the y that forward wrote, so a training plan may drop y after forward and rebuild it for
 * backward. */
void oc_batchnorm_act_apply(int64_t M, int C, const float *x, const float *gamma,
                            const float *beta, const float *save_mean, const float *save_invstd,
                            oc_act act, float *y);
/* Backward of oc_batchnorm_act_fwd_train from x and the statistics it saved: the activation's
 * derivative comes from the normalised value recomputed from x, so its output is not needed. */
void oc_batchnorm_act_bwd(int64_t M, int C, const float *x, const float *gamma,
                          const float *beta, const float *save_mean, const float *save_invstd,
                          oc_act act, const float *dy, float *dx, float *dgamma, float *dbeta);

/* oc_batchnorm_act_bwd that writes dx instead of accumulating into it: dx = 0 + (...), bitwise
 * what accumulating onto a zeroed dx gives, so a caller that would zero dx first skips that
 * pass (and dx's old contents, NaNs included, are never read). */
void oc_batchnorm_act_bwd_set(int64_t M, int C, const float *x, const float *gamma,
                              const float *beta, const float *save_mean,
                              const float *save_invstd, oc_act act, const float *dy, float *dx,
                              float *dgamma, float *dbeta);

/* y = act(a + b) (any act in the forward); backward (act: identity, ReLU or ReLU6) from the
 * fused OUTPUT y: da += act'(.) * dy and db += act'(.) * dy (either may be NULL; da may be
 * db). Bitwise the separate add and activation ops. */
void oc_add_act_fwd(int64_t n, const float *a, const float *b, oc_act act, float *y);
void oc_add_act_bwd(int64_t n, oc_act act, const float *y, const float *dy, float *da,
                    float *db);
/* The same, setting da (set_a) and db (set_b) instead of adding to them: the bits of adding
 * to zeros, without reading them (da and db must then differ). */
void oc_add_act_bwd_set(int64_t n, oc_act act, const float *y, const float *dy, float *da,
                        float *db, int set_a, int set_b);

/* ---------------------------------------------------------------- pooling */

typedef struct {
    int N, H, W, C;
    int R, S;               /* window */
    int P, Q;               /* output (oc_pool_shape_init) */
    int stride_h, stride_w;
    int pad_h, pad_w;
    int count_include_pad;  /* average pool: PyTorch's flag (default true) */
} oc_pool_shape;

/* P = (H + 2*pad_h - R) / stride_h + 1 (floor mode). Returns 0, or -1 if invalid. */
int oc_pool_shape_init(oc_pool_shape *s);

/* y = max over window; argmax[N][P][Q][C] receives the flat input index (h*W + w) of the max
 * (first max on ties, as PyTorch) for backward. Padded positions never win. */
void oc_maxpool_fwd(const oc_pool_shape *s, const float *x, float *y, int32_t *argmax);
void oc_maxpool_bwd(const oc_pool_shape *s, const int32_t *argmax, const float *dy, float *dx);
/* The same written onto dx instead of added to it: the bits of oc_maxpool_bwd on a zeroed dx,
 * without a separate zeroing pass over it. */
void oc_maxpool_bwd_set(const oc_pool_shape *s, const int32_t *argmax, const float *dy, float *dx);
void oc_avgpool_fwd(const oc_pool_shape *s, const float *x, float *y);
void oc_avgpool_bwd(const oc_pool_shape *s, const float *dy, float *dx);

/* x[N][HW][C] -> y[N][C] mean over HW */
void oc_global_avgpool_fwd(int N, int HW, int C, const float *x, float *y);
void oc_global_avgpool_bwd(int N, int HW, int C, const float *dy, float *dx);

/* ---------------------------------------------------------------- elementwise and structure */

/* Inverted dropout: mask[i] is 0 or 1/(1-p) (a float scale, kept for backward). */
void oc_dropout_fwd(int64_t n, const float *x, const float *mask, float *y);
void oc_dropout_bwd(int64_t n, const float *mask, const float *dy, float *dx);
void oc_dropout_bwd_set(int64_t n, const float *mask, const float *dy, float *dx);

/* y = a + b */
void oc_add_fwd(int64_t n, const float *a, const float *b, float *y);
/* dx += dy */
void oc_accumulate(int64_t n, const float *dy, float *dx);
/* The _set forms write dx as the accumulation into zeros would (0 + value), without reading
 * it. */
void oc_accumulate_set(int64_t n, const float *dy, float *dx);

/* Option-A ResNet shortcut: y[N][Ho][Wo][Co] = x[N][H][W][C] sampled every `stride` rows and
 * columns (Ho = ceil(H / stride)), its channels at [lo, lo + C) with lo = (Co - C) / 2 and zeros
 * around them. Backward adds dy's channels [lo, lo + C) into the sampled pixels of dx; with
 * set, it writes all of dx instead (zeros elsewhere): the bits of adding onto a zeroed dx. */
void oc_shortcut_pad_fwd(int N, int H, int W, int C, int stride, int Co, const float *x,
                         float *y);
void oc_shortcut_pad_bwd(int N, int H, int W, int C, int stride, int Co, const float *dy,
                         float *dx, int set);

/* Concatenate along channels: inputs k has shape [M][Ck]; y is [M][sum Ck]. */
void oc_concat_fwd(int64_t M, int n_in, const int *C_in, const float *const *x, float *y);
void oc_concat_bwd(int64_t M, int n_in, const int *C_in, const float *dy, float *const *dx);

/* Channel-wise multiply (squeeze-and-excitation): y[n][hw][c] = x[n][hw][c] * s[n][c]. */
void oc_channel_mul_fwd(int N, int HW, int C, const float *x, const float *s, float *y);
/* dx += dy * s; ds[n][c] += sum_hw dy * x */
void oc_channel_mul_bwd(int N, int HW, int C, const float *x, const float *s, const float *dy,
                        float *dx, float *ds);

/* ---------------------------------------------------------------- loss */

/* Softmax cross-entropy averaged over the batch, as torch.nn.CrossEntropyLoss with
 * label_smoothing: the target distribution is (1 - smoothing) * onehot(label) + smoothing / K.
 * If `target` is non-NULL it is a soft target distribution [N][K] (mixup) and labels and
 * smoothing are ignored. probs (may be NULL) receives the softmax; dlogits (may be NULL) is
 * OVERWRITTEN with d(mean loss)/d(logits). Returns the mean loss. */
double oc_softmax_xent(int N, int K, const float *logits, const int32_t *labels,
                       const float *target, float smoothing, float *probs, float *dlogits);

#endif /* OC_OPS_H */
