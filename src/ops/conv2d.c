/* 2-D convolution, NHWC activations, weights [K][R][S][C/groups].
 *
 * The fast paths beside the scalar `_ref` oracle, by shape:
 *  - 1x1, stride 1, no padding: the input already is the im2col matrix, so forward, backward-data
 *    and backward-weights are one GEMM per group straight on x / dx.
 *  - depthwise (groups == C == K, channel multiplier 1): direct loops that run over channels,
 *    the contiguous NHWC dimension; AVX-512 when the CPU has it (conv2d_avx512.c).
 *  - 3x3, stride 1, padding 1 up to 256 x 256 channels (where Winograd does not take them):
 *    direct register tiles (AVX-512), for forward, backward-data and, up to 128 x 128,
 *    backward-weights; in bf16 math (AVX512_BF16) the same tiles on bf16 pairs of channels
 *    (forward, backward-data) and of images (backward-weights), each task rounding the input
 *    rows it is about to read into its part of the workspace.
 *  - at most 4 input channels (stems), forward: direct register tiles for any kernel, stride
 *    and padding (AVX-512, fp32 math).
 *  - wider 3x3 stride-1 layers: Winograd F(2x2, 3x3) (winograd.c) in the fused inference
 *    forward with weights kept packed, and in the training forward and backward-data from
 *    a few hundred tiles on.
 *  - everything else: im2col + oc_gemm, col2im for backward-data.
 *
 * im2col layout: one row per output pixel (n, p, q), each row [g][r][s][c/g] (R*S*C floats), so
 * group g's patch is a contiguous slice of R*S*C/g floats at offset g*R*S*C/g, matching the
 * weight layout [K][R][S][C/g], and the GEMMs walk groups with lda = R*S*C.
 *
 * Workspace policy: the batch is processed in chunks of whole output rows (n, p), so a chunk may
 * span several images or part of one; the im2col buffer holds one chunk: about
 * OC_CONV_COL_TARGET bytes, never over OC_CONV_COL_MAX unless one output row alone is larger
 * (see chunk_rows). The chunk length depends only on the shape, which makes every _workspace()
 * a pure function of the shape.
 *
 * Determinism: im2col, col2im and the depthwise kernels give each thread disjoint outputs and
 * sum every output in a fixed order. Reductions over the batch (db, depthwise dw) sum fixed
 * blocks of rows (OC_CONV_RED_BLOCKS, independent of the thread count) into partials in the
 * workspace and combine them in block order, so they are bitwise identical for any thread
 * count; the GEMM parts are as deterministic as oc_gemm.
 */
#include "core/core.h"
#include "ops.h"
#include "ops/gemm.h"

#include <string.h>

/* im2col chunk size. Small chunks stay in cache between im2col writing them and GEMM reading
 * them (and between GEMM writing and col2im reading in backward-data): on the dev machine (an
 * AMD EPYC VM) a ResNet-20 3x3x16 layer at N=128 ran fwd+bwd in 28 ms of CPU time with 1-2 MB
 * chunks against 52 ms with 16 MB ones. A chunk still gets at least
 * OC_CONV_MIN_GEMM_ROWS GEMM rows so deep layers (large R*S*C) keep GEMM efficient, and never
 * more than OC_CONV_COL_MAX bytes unless a single output row needs more. */
#define OC_CONV_COL_TARGET ((size_t)2 << 20)
#define OC_CONV_COL_MAX ((size_t)16 << 20)
#define OC_CONV_MIN_GEMM_ROWS 256
/* Row blocks of the batch reductions; partial sums cost OC_CONV_RED_BLOCKS * K floats. */
#define OC_CONV_RED_BLOCKS 32

/* AVX-512 depthwise kernels (conv2d_avx512.c); prototypes must match that file. */
void oc_conv2d_dw_fwd_row_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                 const float *b, const oc_conv_epilogue *e, float *y, int n,
                                 int p);
void oc_conv2d_dw_bwd_data_row_avx512(const oc_conv_shape *s, const float *dy, const float *wt,
                                      float *dx, int n, int h, int set);
void oc_conv2d_dw_bwd_weights_row_avx512(const oc_conv_shape *s, const float *x, const float *dy,
                                         float *part, int n, int p);
void oc_conv2d_add_avx512(float *d, const float *v, int64_t n);
void oc_conv2d_col_sums_avx512(float *acc, const float *dy, int64_t i0, int64_t i1, int K);
void oc_conv2d_d3_fwd_rows_avx512(const oc_conv_shape *s, const float *x, int64_t x_row0,
                                  const float *wt, const float *b, float *y, int accum, int bf16,
                                  int64_t j0, int64_t j1);
int oc_conv2d_d3_fwd_group_rows(const oc_conv_shape *s);
void oc_conv2d_sc_fwd_rows_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                  const float *b, float *y, int64_t j0, int64_t j1);
int oc_conv2d_d3_bw_run_rows(const oc_conv_shape *s);
void oc_conv2d_d3_bwd_weights_rows_avx512(const oc_conv_shape *s, const float *x, int64_t x_row0,
                                          const float *dy, int64_t dy_row0, float *part,
                                          int bf16, int64_t j0, int64_t j1);
void oc_conv2d_bf16_channel_pairs_avx512(const float *x, int64_t pixels, int C, uint32_t *dst);
void oc_conv2d_bf16_image_pairs_avx512(const float *a, const float *b, int64_t n, uint32_t *dst);

int oc_conv_shape_init(oc_conv_shape *s)
{
    int64_t ph, qw;
    if (!s)
        return -1;
    if (s->N < 1 || s->H < 1 || s->W < 1 || s->C < 1 || s->K < 1 || s->R < 1 || s->S < 1)
        return -1;
    if (s->stride_h < 1 || s->stride_w < 1 || s->pad_h < 0 || s->pad_w < 0 || s->dil_h < 1 ||
        s->dil_w < 1 || s->groups < 1 || s->C % s->groups || s->K % s->groups)
        return -1;
    ph = ((int64_t)s->H + 2 * (int64_t)s->pad_h - (int64_t)s->dil_h * (s->R - 1) - 1) /
             s->stride_h + 1;
    qw = ((int64_t)s->W + 2 * (int64_t)s->pad_w - (int64_t)s->dil_w * (s->S - 1) - 1) /
             s->stride_w + 1;
    /* the numerator can be negative (kernel larger than the padded input): C division truncates
     * towards zero, so test the numerator rather than the quotient */
    if ((int64_t)s->H + 2 * (int64_t)s->pad_h - (int64_t)s->dil_h * (s->R - 1) - 1 < 0 ||
        (int64_t)s->W + 2 * (int64_t)s->pad_w - (int64_t)s->dil_w * (s->S - 1) - 1 < 0)
        return -1;
    if (ph < 1 || qw < 1 || ph > INT32_MAX || qw > INT32_MAX)
        return -1;
    /* every element index is computed in int64; keep each tensor addressable */
    if ((int64_t)s->N * s->H * s->W > INT32_MAX || (int64_t)s->N * ph * qw > INT32_MAX ||
        (int64_t)s->R * s->S * s->C > INT32_MAX / 64)
        return -1;
    s->P = (int)ph;
    s->Q = (int)qw;
    return 0;
}

/* ---------------------------------------------------------------- reference (the oracle)
 * Plain direct loops. Long sums (forward taps, weight and bias gradients over the batch) are
 * accumulated in double so the oracle's own rounding stays far below the tolerances the fast
 * paths are held to. */

void oc_conv2d_fwd_ref(const oc_conv_shape *s, const float *x, const float *w, const float *b,
                       float *y)
{
    const int Cg = s->C / s->groups, Kg = s->K / s->groups;
    for (int n = 0; n < s->N; n++)
        for (int p = 0; p < s->P; p++)
            for (int q = 0; q < s->Q; q++)
                for (int k = 0; k < s->K; k++) {
                    int g = k / Kg;
                    double acc = b ? (double)b[k] : 0.0;
                    for (int r = 0; r < s->R; r++) {
                        int h = p * s->stride_h - s->pad_h + r * s->dil_h;
                        if (h < 0 || h >= s->H)
                            continue;
                        for (int t = 0; t < s->S; t++) {
                            int ww = q * s->stride_w - s->pad_w + t * s->dil_w;
                            if (ww < 0 || ww >= s->W)
                                continue;
                            const float *xp = x + (((int64_t)n * s->H + h) * s->W + ww) * s->C +
                                              (int64_t)g * Cg;
                            const float *wp = w + (((int64_t)k * s->R + r) * s->S + t) * Cg;
                            for (int c = 0; c < Cg; c++)
                                acc += (double)xp[c] * (double)wp[c];
                        }
                    }
                    y[(((int64_t)n * s->P + p) * s->Q + q) * s->K + k] = (float)acc;
                }
}

void oc_conv2d_bwd_data_ref(const oc_conv_shape *s, const float *dy, const float *w, float *dx)
{
    const int Cg = s->C / s->groups, Kg = s->K / s->groups;
    for (int n = 0; n < s->N; n++)
        for (int p = 0; p < s->P; p++)
            for (int q = 0; q < s->Q; q++)
                for (int k = 0; k < s->K; k++) {
                    int g = k / Kg;
                    float d = dy[(((int64_t)n * s->P + p) * s->Q + q) * s->K + k];
                    for (int r = 0; r < s->R; r++) {
                        int h = p * s->stride_h - s->pad_h + r * s->dil_h;
                        if (h < 0 || h >= s->H)
                            continue;
                        for (int t = 0; t < s->S; t++) {
                            int ww = q * s->stride_w - s->pad_w + t * s->dil_w;
                            if (ww < 0 || ww >= s->W)
                                continue;
                            float *dxp = dx + (((int64_t)n * s->H + h) * s->W + ww) * s->C +
                                         (int64_t)g * Cg;
                            const float *wp = w + (((int64_t)k * s->R + r) * s->S + t) * Cg;
                            for (int c = 0; c < Cg; c++)
                                dxp[c] += d * wp[c];
                        }
                    }
                }
}

void oc_conv2d_bwd_weights_ref(const oc_conv_shape *s, const float *x, const float *dy,
                               float *dw, float *db)
{
    const int Cg = s->C / s->groups, Kg = s->K / s->groups;
    for (int k = 0; k < s->K; k++) {
        int g = k / Kg;
        for (int r = 0; r < s->R; r++)
            for (int t = 0; t < s->S; t++)
                for (int c = 0; c < Cg; c++) {
                    double acc = 0.0;
                    for (int n = 0; n < s->N; n++)
                        for (int p = 0; p < s->P; p++) {
                            int h = p * s->stride_h - s->pad_h + r * s->dil_h;
                            if (h < 0 || h >= s->H)
                                continue;
                            for (int q = 0; q < s->Q; q++) {
                                int ww = q * s->stride_w - s->pad_w + t * s->dil_w;
                                if (ww < 0 || ww >= s->W)
                                    continue;
                                acc += (double)x[(((int64_t)n * s->H + h) * s->W + ww) * s->C +
                                                 (int64_t)g * Cg + c] *
                                       (double)dy[(((int64_t)n * s->P + p) * s->Q + q) * s->K + k];
                            }
                        }
                    dw[(((int64_t)k * s->R + r) * s->S + t) * Cg + c] += (float)acc;
                }
        if (db) {
            double acc = 0.0;
            for (int64_t i = 0; i < (int64_t)s->N * s->P * s->Q; i++)
                acc += (double)dy[i * s->K + k];
            db[k] += (float)acc;
        }
    }
}

/* ---------------------------------------------------------------- shape classes and sizes */

static int is_pointwise(const oc_conv_shape *s)
{
    return s->R == 1 && s->S == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 &&
           s->pad_w == 0;
}

static int is_depthwise(const oc_conv_shape *s)
{
    return s->groups == s->C && s->K == s->C;
}

static int64_t col_row_floats(const oc_conv_shape *s) /* one output row (n, p) of im2col */
{
    return (int64_t)s->Q * s->R * s->S * s->C;
}

static int64_t chunk_rows(const oc_conv_shape *s) /* output rows (n, p) per im2col chunk */
{
    const size_t row_bytes = (size_t)col_row_floats(s) * sizeof(float);
    int64_t total = (int64_t)s->N * s->P;
    int64_t c = (int64_t)(OC_CONV_COL_TARGET / row_bytes);
    int64_t min_rows = (OC_CONV_MIN_GEMM_ROWS + s->Q - 1) / s->Q;
    int64_t max_rows = (int64_t)(OC_CONV_COL_MAX / row_bytes);
    if (c < min_rows)
        c = min_rows;
    if (c > max_rows)
        c = max_rows;
    if (c < 1)
        c = 1;
    return c < total ? c : total;
}

static size_t col_bytes(const oc_conv_shape *s)
{
    size_t b = (size_t)chunk_rows(s) * (size_t)col_row_floats(s) * sizeof(float);
    return (b + 63) & ~(size_t)63;
}

static int red_blocks(int64_t rows)
{
    return rows < OC_CONV_RED_BLOCKS ? (int)rows : OC_CONV_RED_BLOCKS;
}

static int simd_allowed = 1;

/* Test hook, no public API (tests/unit/test_conv2d.c declares it): 0 forces the portable
 * kernels so they are tested on machines with AVX-512 too; 1, the default, lets the CPU check
 * decide. Not thread safe: call it between kernel calls. */
void oc_conv2d_allow_simd(int allow);
void oc_conv2d_allow_simd(int allow)
{
    simd_allowed = allow != 0;
}

static int use_avx512(void)
{
    /* libgcc fills the CPU model in a constructor, so this is a load and a test */
    return simd_allowed && __builtin_cpu_supports("avx512f");
}

/* For block.c: whether the AVX-512 kernels run (the CPU has them and no test turned them off). */
int oc_conv2d_avx512_on(void);
int oc_conv2d_avx512_on(void)
{
    return use_avx512();
}

/* ---------------------------------------------------------------- shared helpers */

typedef struct {
    const oc_conv_shape *s;
    const float *b;
    float *y;
    int64_t rows;
} bias_ctx;

static void bias_fill_task(void *ctx, int tid, int nt)
{
    const bias_ctx *c = ctx;
    int64_t i0, i1;
    oc_split_range(c->rows, tid, nt, &i0, &i1);
    for (int64_t i = i0; i < i1; i++)
        memcpy(c->y + i * c->s->K, c->b, (size_t)c->s->K * sizeof(float));
}

/* y[rows][K] = b, or nothing (returns 0) when b is NULL; returns the beta for the GEMM. */
static float bias_fill(const oc_conv_shape *s, const float *b, float *y, int64_t rows)
{
    bias_ctx c = {s, b, y, rows};
    if (!b)
        return 0.0f;
    oc_parallel_n(bias_fill_task, &c, (int)(rows / 256 + 1));
    return 1.0f;
}

typedef struct {
    const float *dy;
    float *part; /* [blocks][K] */
    int64_t rows;
    int K, blocks;
} bsum_ctx;

/* acc[K] = sum over rows [i0, i1) of dy[i][K], row by row (the AVX-512 twin sums each
 * channel in the same order: the same bits) */
static void bias_sum_rows(float *acc, const float *dy, int64_t i0, int64_t i1, int K)
{
    if (use_avx512()) {
        oc_conv2d_col_sums_avx512(acc, dy, i0, i1, K);
        return;
    }
    memset(acc, 0, (size_t)K * sizeof(float));
    for (int64_t i = i0; i < i1; i++) {
        const float *d = dy + i * K;
        for (int k = 0; k < K; k++)
            acc[k] += d[k];
    }
}

static void bias_sum_task(void *ctx, int tid, int nt)
{
    const bsum_ctx *c = ctx;
    int64_t b0, b1;
    oc_split_range(c->blocks, tid, nt, &b0, &b1);
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0, i1;
        oc_split_range(c->rows, (int)blk, c->blocks, &i0, &i1);
        bias_sum_rows(c->part + blk * c->K, c->dy, i0, i1, c->K);
    }
}

/* db[K] += sum over rows of dy[rows][K], via `blocks` fixed row blocks (part holds blocks*K
 * floats). */
static void bias_sum_blocks(const float *dy, int64_t rows, int K, float *part, float *db,
                            int blocks)
{
    bsum_ctx c = {dy, part, rows, K, blocks};
    oc_parallel_n(bias_sum_task, &c, c.blocks);
    for (int blk = 0; blk < c.blocks; blk++)
        for (int k = 0; k < K; k++)
            db[k] += part[(int64_t)blk * K + k];
}

static void bias_sum(const float *dy, int64_t rows, int K, float *part, float *db)
{
    bias_sum_blocks(dy, rows, K, part, db, red_blocks(rows));
}

/* ---------------------------------------------------------------- im2col / col2im */

typedef struct {
    const oc_conv_shape *s;
    const float *x; /* im2col source */
    float *dx;      /* col2im destination */
    float *col;     /* (j1 - j0) * Q rows of R*S*C */
    int64_t j0, j1; /* output rows (n, p) of this chunk */
} col_ctx;

/* Kernel taps t in [*t0, *t1) for which base + t*dil lands inside [0, size). */
static void tap_range(int base, int dil, int taps, int size, int *t0, int *t1)
{
    int lo = base < 0 ? (-base + dil - 1) / dil : 0;
    int hi = base <= size - 1 ? (size - 1 - base) / dil + 1 : 0;
    *t0 = lo < taps ? lo : taps;
    *t1 = hi < taps ? hi : taps;
    if (*t1 < *t0)
        *t1 = *t0;
}

/* The im2col row of output pixel (n, p, q) into dst (R*S*C floats). */
static void im2col_row(const oc_conv_shape *s, const float *x, int n, int p, int q, float *dst)
{
    const int G = s->groups, Cg = s->C / G, C = s->C, S = s->S;
    const int64_t RSCg = (int64_t)s->R * S * Cg;
    const size_t cg_bytes = (size_t)Cg * sizeof(float);
    int wb = q * s->stride_w - s->pad_w, t0, t1;
    tap_range(wb, s->dil_w, S, s->W, &t0, &t1);
    for (int r = 0; r < s->R; r++) {
        int h = p * s->stride_h - s->pad_h + r * s->dil_h;
        int64_t off = (int64_t)r * S * Cg; /* tap (r, 0) within a group's patch */
        const float *xrow = x + ((int64_t)n * s->H + h) * s->W * C;
        if (h < 0 || h >= s->H) {
            for (int g = 0; g < G; g++)
                memset(dst + g * RSCg + off, 0, (size_t)S * cg_bytes);
            continue;
        }
        if (G == 1 && s->dil_w == 1) {
            /* the taps of one kernel row are adjacent pixels: one copy of the valid run, zeros
             * for the padding on either side */
            memset(dst + off, 0, (size_t)t0 * cg_bytes);
            memcpy(dst + off + (int64_t)t0 * C, xrow + (int64_t)(wb + t0) * C,
                   (size_t)(t1 - t0) * cg_bytes);
            memset(dst + off + (int64_t)t1 * C, 0, (size_t)(S - t1) * cg_bytes);
            continue;
        }
        for (int g = 0; g < G; g++) {
            float *dg = dst + g * RSCg + off;
            memset(dg, 0, (size_t)t0 * cg_bytes);
            for (int tt = t0; tt < t1; tt++)
                memcpy(dg + (int64_t)tt * Cg,
                       xrow + (int64_t)(wb + tt * s->dil_w) * C + (int64_t)g * Cg, cg_bytes);
            memset(dg + (int64_t)t1 * Cg, 0, (size_t)(S - t1) * cg_bytes);
        }
    }
}

static void im2col_task(void *ctx, int tid, int nt)
{
    const col_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int64_t RSC = (int64_t)s->R * s->S * s->C;
    int64_t a, e;
    oc_split_range(c->j1 - c->j0, tid, nt, &a, &e);
    for (int64_t j = c->j0 + a; j < c->j0 + e; j++)
        for (int q = 0; q < s->Q; q++)
            im2col_row(s, c->x, (int)(j / s->P), (int)(j % s->P), q,
                       c->col + ((j - c->j0) * s->Q + q) * RSC);
}

/* im2col straight into bf16 pair rows (oc_bf16_pack_row), BF16_ROW words apart: each row is
 * built in floats in this thread's buffer (L1) and rounded from there, so the chunk is written
 * once, at half the bytes, and the GEMM reads it without packing. */
#define OC_CONV_BF16_ROW_MAX 8192 /* floats of one im2col row on this path */
static _Thread_local float bf16_row_buf[OC_CONV_BF16_ROW_MAX];

static void im2col_bf16_task(void *ctx, int tid, int nt)
{
    const col_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int RSC = s->R * s->S * s->C, words = (RSC + 1) / 2;
    uint32_t *rows = (uint32_t *)c->col;
    int64_t a, e;
    oc_split_range(c->j1 - c->j0, tid, nt, &a, &e);
    for (int64_t j = c->j0 + a; j < c->j0 + e; j++)
        for (int q = 0; q < s->Q; q++) {
            im2col_row(s, c->x, (int)(j / s->P), (int)(j % s->P), q, bf16_row_buf);
            oc_bf16_pack_row(bf16_row_buf, RSC, rows + ((j - c->j0) * s->Q + q) * words);
        }
}

/* Backward-weights in bf16: im2col rows (n, p, q) taken two at a time straight into the bf16
 * panels of the GEMM's B (oc_gemm_bf16_pack_b_pair), so the chunk is never written in floats
 * and never packed again. */
static _Thread_local float bf16_row_buf2[OC_CONV_BF16_ROW_MAX];

typedef struct {
    const oc_conv_shape *s;
    const float *x;
    void *bp;
    int64_t j0; /* first output row (n, p) of the chunk */
    int rows;   /* im2col rows of the chunk */
} pair_ctx;

static void im2col_bf16_pairs_task(void *ctx, int tid, int nt)
{
    const pair_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int RSC = s->R * s->S * s->C;
    int64_t a, e;
    oc_split_range((c->rows + 1) / 2, tid, nt, &a, &e);
    for (int64_t t = a; t < e; t++) {
        int r0 = (int)(2 * t), r1 = r0 + 1;
        int64_t j = c->j0 + r0 / s->Q;
        im2col_row(s, c->x, (int)(j / s->P), (int)(j % s->P), r0 % s->Q, bf16_row_buf);
        if (r1 < c->rows) {
            j = c->j0 + r1 / s->Q;
            im2col_row(s, c->x, (int)(j / s->P), (int)(j % s->P), r1 % s->Q, bf16_row_buf2);
        }
        oc_gemm_bf16_pack_b_pair(bf16_row_buf, r1 < c->rows ? bf16_row_buf2 : NULL, RSC, c->rows,
                                 (int)t, c->bp);
    }
}

/* d[0..n) += v[0..n); unrolled by 8 so the compiler's straight-line vectoriser handles it. */
static void add_to(float *restrict d, const float *restrict v, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        d[i + 0] += v[i + 0];
        d[i + 1] += v[i + 1];
        d[i + 2] += v[i + 2];
        d[i + 3] += v[i + 3];
        d[i + 4] += v[i + 4];
        d[i + 5] += v[i + 5];
        d[i + 6] += v[i + 6];
        d[i + 7] += v[i + 7];
    }
    for (; i < n; i++)
        d[i] += v[i];
}

/* col2im: each thread owns whole input rows (n, h) of dx and adds into them, in (r, q, s)
 * order, every column entry of this chunk that maps there, so no two threads touch the same
 * dx value and the summation order does not depend on the split. */
static void col2im_task(void *ctx, int tid, int nt)
{
    const col_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int G = s->groups, Cg = s->C / G, C = s->C, S = s->S;
    const int64_t RSC = (int64_t)s->R * S * C, RSCg = RSC / G;
    const int64_t n0 = c->j0 / s->P, n1 = (c->j1 - 1) / s->P + 1;
    void (*add)(float *, const float *, int64_t) = use_avx512() ? oc_conv2d_add_avx512 : add_to;
    int64_t a, e;
    oc_split_range((n1 - n0) * s->H, tid, nt, &a, &e);
    for (int64_t i = a; i < e; i++) {
        int64_t n = n0 + i / s->H;
        int h = (int)(i % s->H);
        float *dxrow = c->dx + (n * s->H + h) * s->W * C;
        for (int r = 0; r < s->R; r++) {
            int tp = h + s->pad_h - r * s->dil_h;
            if (tp < 0 || tp % s->stride_h)
                continue;
            int p = tp / s->stride_h;
            int64_t j = n * s->P + p;
            if (p >= s->P || j < c->j0 || j >= c->j1)
                continue;
            for (int q = 0; q < s->Q; q++) {
                const float *src = c->col + ((j - c->j0) * s->Q + q) * RSC + (int64_t)r * S * Cg;
                int wb = q * s->stride_w - s->pad_w, t0, t1;
                tap_range(wb, s->dil_w, S, s->W, &t0, &t1);
                if (G == 1 && s->dil_w == 1) {
                    if (t1 > t0)
                        add(dxrow + (int64_t)(wb + t0) * C, src + (int64_t)t0 * C,
                            (int64_t)(t1 - t0) * C);
                    continue;
                }
                for (int tt = t0; tt < t1; tt++) {
                    float *dxp = dxrow + (int64_t)(wb + tt * s->dil_w) * C;
                    for (int g = 0; g < G; g++)
                        add(dxp + (int64_t)g * Cg, src + g * RSCg + (int64_t)tt * Cg, Cg);
                }
            }
        }
    }
}

static void run_cols(oc_parallel_fn fn, col_ctx *c)
{
    oc_parallel_n(fn, c, (int)(c->j1 - c->j0));
}

/* ---------------------------------------------------------------- depthwise direct kernels */

/* Depthwise weights [C][R][S][1] transposed to wt[R][S][C], so every tap is a contiguous
 * channel vector like the NHWC pixels it multiplies. */
static void dw_transpose(const oc_conv_shape *s, const float *w, float *wt)
{
    const int RS = s->R * s->S;
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < RS; i++)
            wt[(int64_t)i * s->C + c] = w[(int64_t)c * RS + i];
}

static void dw_fwd_row(const oc_conv_shape *s, const float *x, const float *wt, const float *b,
                       float *y, int n, int p)
{
    const int C = s->C;
    for (int q = 0; q < s->Q; q++) {
        float *restrict out = y + (((int64_t)n * s->P + p) * s->Q + q) * C;
        if (b)
            memcpy(out, b, (size_t)C * sizeof(float));
        else
            memset(out, 0, (size_t)C * sizeof(float));
        for (int r = 0; r < s->R; r++) {
            int h = p * s->stride_h - s->pad_h + r * s->dil_h;
            if (h < 0 || h >= s->H)
                continue;
            for (int t = 0; t < s->S; t++) {
                int ww = q * s->stride_w - s->pad_w + t * s->dil_w;
                if (ww < 0 || ww >= s->W)
                    continue;
                const float *restrict xp = x + (((int64_t)n * s->H + h) * s->W + ww) * C;
                const float *restrict wp = wt + ((int64_t)r * s->S + t) * C;
                for (int c = 0; c < C; c++)
                    out[c] += xp[c] * wp[c];
            }
        }
    }
}

static void dw_bwd_data_row(const oc_conv_shape *s, const float *dy, const float *wt, float *dx,
                            int n, int h, int set)
{
    const int C = s->C;
    for (int ww = 0; ww < s->W; ww++) {
        float *restrict dxp = dx + (((int64_t)n * s->H + h) * s->W + ww) * C;
        if (set)
            memset(dxp, 0, (size_t)C * sizeof(float));
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
                const float *restrict d = dy + (((int64_t)n * s->P + p) * s->Q + q) * C;
                const float *restrict wp = wt + ((int64_t)r * s->S + t) * C;
                for (int c = 0; c < C; c++)
                    dxp[c] += d[c] * wp[c];
            }
        }
    }
}

/* part[R][S][C] += x-patch * dy and part[R*S][C] (the bias row) += dy over output row (n, p). */
static void dw_bwd_weights_row(const oc_conv_shape *s, const float *x, const float *dy,
                               float *part, int n, int p)
{
    const int C = s->C, RS = s->R * s->S;
    for (int q = 0; q < s->Q; q++) {
        const float *restrict d = dy + (((int64_t)n * s->P + p) * s->Q + q) * C;
        float *restrict pb = part + (int64_t)RS * C;
        for (int c = 0; c < C; c++)
            pb[c] += d[c];
        for (int r = 0; r < s->R; r++) {
            int h = p * s->stride_h - s->pad_h + r * s->dil_h;
            if (h < 0 || h >= s->H)
                continue;
            for (int t = 0; t < s->S; t++) {
                int ww = q * s->stride_w - s->pad_w + t * s->dil_w;
                if (ww < 0 || ww >= s->W)
                    continue;
                const float *restrict xp = x + (((int64_t)n * s->H + h) * s->W + ww) * C;
                float *restrict pw = part + ((int64_t)r * s->S + t) * C;
                for (int c = 0; c < C; c++)
                    pw[c] += xp[c] * d[c];
            }
        }
    }
}

typedef struct {
    const oc_conv_shape *s;
    const float *x, *w, *b, *dy;
    float *y, *dx, *part;
    int blocks;
    const oc_conv_epilogue *epi; /* fused forward */
    int set;                     /* backward-data writes dx instead of adding to it */
} dw_ctx;

static void dw_fwd_task(void *ctx, int tid, int nt)
{
    const dw_ctx *c = ctx;
    const int avx = use_avx512();
    int64_t a, e;
    oc_split_range((int64_t)c->s->N * c->s->P, tid, nt, &a, &e);
    for (int64_t j = a; j < e; j++) {
        int n = (int)(j / c->s->P), p = (int)(j % c->s->P);
        if (avx)
            oc_conv2d_dw_fwd_row_avx512(c->s, c->x, c->w, c->b, NULL, c->y, n, p);
        else
            dw_fwd_row(c->s, c->x, c->w, c->b, c->y, n, p);
    }
}

static void dw_bwd_data_task(void *ctx, int tid, int nt)
{
    const dw_ctx *c = ctx;
    const int avx = use_avx512();
    int64_t a, e;
    oc_split_range((int64_t)c->s->N * c->s->H, tid, nt, &a, &e);
    for (int64_t i = a; i < e; i++) {
        int n = (int)(i / c->s->H), h = (int)(i % c->s->H);
        if (avx)
            oc_conv2d_dw_bwd_data_row_avx512(c->s, c->dy, c->w, c->dx, n, h, c->set);
        else
            dw_bwd_data_row(c->s, c->dy, c->w, c->dx, n, h, c->set);
    }
}

static void dw_bwd_weights_task(void *ctx, int tid, int nt)
{
    const dw_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int avx = use_avx512();
    const int64_t part_floats = (int64_t)(s->R * s->S + 1) * s->C;
    int64_t b0, b1;
    oc_split_range(c->blocks, tid, nt, &b0, &b1);
    for (int64_t blk = b0; blk < b1; blk++) {
        float *part = c->part + blk * part_floats;
        int64_t j0, j1;
        oc_split_range((int64_t)s->N * s->P, (int)blk, c->blocks, &j0, &j1);
        memset(part, 0, (size_t)part_floats * sizeof(float));
        for (int64_t j = j0; j < j1; j++) {
            int n = (int)(j / s->P), p = (int)(j % s->P);
            if (avx)
                oc_conv2d_dw_bwd_weights_row_avx512(s, c->x, c->dy, part, n, p);
            else
                dw_bwd_weights_row(s, c->x, c->dy, part, n, p);
        }
    }
}

/* ---------------------------------------------------------------- direct 3x3 (AVX-512)
 * The 3x3 stride-1 pad-1 convolution without im2col (conv2d_avx512.c has the kernels and the
 * packed weight layouts). Forward and backward-data split output rows over the threads, each
 * value summed in a fixed order; backward-weights sums fixed row blocks (OC_CONV_D3_BLOCKS,
 * independent of the thread count) into partials [block][3][3][C][Kp] and adds them in block
 * order, so all three are bitwise identical for any thread count. Forward and backward-data
 * sum wide inputs in chunks of 64 channels, whose packed weights for one block of output
 * channels stay in L2; up to 256 x 256 channels that beats im2col + GEMM on Zen 5 (at
 * 512 x 512 they are even: bench/conv.c). Backward-weights keeps per-block partials of all
 * the weights, so it takes the direct kernel only while C * K <= OC_CONV_D3_BW_MAX_CK. */
#define OC_CONV_D3_BLOCKS 16
#define OC_CONV_D3_MAX_CK (256 * 256)
#define OC_CONV_D3_BW_MAX_CK (128 * 128)

static int is_direct3(const oc_conv_shape *s)
{
    return s->R == 3 && s->S == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 1 &&
           s->pad_w == 1 && s->dil_h == 1 && s->dil_w == 1 && s->groups == 1 &&
           (int64_t)s->C * s->K <= OC_CONV_D3_MAX_CK;
}

static int is_direct3_bw(const oc_conv_shape *s)
{
    return is_direct3(s) && (int64_t)s->C * s->K <= OC_CONV_D3_BW_MAX_CK;
}

/* In bf16 math mode the direct kernels run in bf16 (their B16 flavour, conv2d_avx512.c) on a
 * CPU with AVX512_BF16: x (or dy) rounded to bf16 by each task a few rows at a time, then
 * vdpbf16ps tiles, fp32 sums. Without AVX512_BF16, bf16 math keeps the fp32 direct kernel for
 * layers below this C * K and takes im2col + the (portable) bf16 GEMM from there. */
#define OC_CONV_D3_BF16_MIN_CK (64 * 64)

typedef enum { D3_NONE, D3_F32, D3_BF16 } d3_kind;

static d3_kind d3_kind_of(const oc_conv_shape *s)
{
    if (!is_direct3(s) || !use_avx512())
        return D3_NONE;
    if (oc_math_get() != OC_MATH_BF16)
        return D3_F32;
    if (oc_bf16_supported())
        return D3_BF16;
    return (int64_t)s->C * s->K < OC_CONV_D3_BF16_MIN_CK ? D3_F32 : D3_NONE;
}

static int use_direct3(const oc_conv_shape *s)
{
    return d3_kind_of(s) != D3_NONE;
}

static int use_direct3_bw(const oc_conv_shape *s)
{
    return use_direct3(s) && is_direct3_bw(s);
}

static int pad16(int v)
{
    return (v + 15) & ~15;
}

static int d3_blocks(const oc_conv_shape *s)
{
    int64_t rows = (int64_t)s->N * s->P;
    return rows < OC_CONV_D3_BLOCKS ? (int)rows : OC_CONV_D3_BLOCKS;
}

/* Bytes of packed weights (fwd: [R][S][C][pad16(K)]; bwd-data: [R][S][K][pad16(C)]). */
static size_t d3_pack_bytes(const oc_conv_shape *s, int for_bwd_data)
{
    const size_t RS = (size_t)s->R * s->S;
    size_t f = for_bwd_data ? RS * s->K * pad16(s->C) : RS * s->C * pad16(s->K);
    return (f * sizeof(float) + 63) & ~(size_t)63;
}

static size_t d3_part_floats(const oc_conv_shape *s)
{
    return (size_t)9 * s->C * pad16(s->K);
}

static size_t align64(size_t b)
{
    return (b + 63) & ~(size_t)63;
}

/* The B16 kernels read bf16 copies of their inputs, which each task makes in its own part of
 * the workspace just before its tiles read them, a few rows at a time (so they stay in its L2):
 * the input rows a group of output rows reads (forward, backward-data), or the x and dy rows
 * of a run of rows (backward-weights, by image pairs). At most OC_CONV_D3B_TASKS tasks. */
#define OC_CONV_D3B_TASKS OC_CONV_D3_BLOCKS

/* The weight gradient's partials group its sums (which fixes its bits) by spans of whole image
 * pairs of about this many bytes of x or dy, each span's rows cut into the blocks: the grouping
 * the bf16 speed run was validated with (a function of the shape only). */
#define OC_CONV_D3B_SPAN_BYTES ((size_t)4 << 20)
static size_t d3b_span_bytes = OC_CONV_D3B_SPAN_BYTES;

/* Test hook, no public API (tests/unit/test_bf16.c declares it): the span's byte budget (0:
 * the default). */
void oc_conv2d_d3b_span_bytes(size_t bytes);
void oc_conv2d_d3b_span_bytes(size_t bytes)
{
    d3b_span_bytes = bytes ? bytes : OC_CONV_D3B_SPAN_BYTES;
}

/* Image pairs per span. */
static int d3b_span_pairs(const oc_conv_shape *s)
{
    const int c = s->C > s->K ? s->C : s->K, pairs = (s->N + 1) / 2;
    const size_t per = (size_t)s->H * s->W * c * sizeof(uint32_t);
    const size_t n = d3b_span_bytes / per;
    return n < 1 ? 1 : n > (size_t)pairs ? pairs : (int)n;
}

/* The B16 forward's (backward-data's) packed pairs of weights [3][3][ceil(C/2)][pad16(K)]
 * (flipped: [3][3][ceil(K/2)][pad16(C)]). */
static size_t d3b_pack_bytes(const oc_conv_shape *s, int for_bwd_data)
{
    const int cin = for_bwd_data ? s->K : s->C, cout = for_bwd_data ? s->C : s->K;
    return align64((size_t)9 * ((cin + 1) / 2) * pad16(cout) * sizeof(uint32_t));
}

/* A forward task's input rows in channel pairs: a group of output rows and the two beside it,
 * of t, the convolution the kernels run (backward-data: the transposed one). */
static size_t d3b_task_words(const oc_conv_shape *t)
{
    const size_t rows = (size_t)oc_conv2d_d3_fwd_group_rows(t) + 2;
    return align64(rows * t->W * ((t->C + 1) / 2) * sizeof(uint32_t)) / sizeof(uint32_t);
}

static size_t d3b_bytes(const oc_conv_shape *s, int for_bwd_data)
{
    oc_conv_shape t = *s;
    if (for_bwd_data)
        t.C = s->K, t.K = s->C;
    return d3b_pack_bytes(s, for_bwd_data) +
           OC_CONV_D3B_TASKS * d3b_task_words(&t) * sizeof(uint32_t);
}

/* A backward-weights task's x rows of a run and the two beside it, then the run's dy rows, by
 * image pairs. */
static size_t d3b_bw_task_words(const oc_conv_shape *s)
{
    const size_t run = (size_t)oc_conv2d_d3_bw_run_rows(s);
    return align64(((run + 2) * s->C + run * s->K) * s->W * sizeof(uint32_t)) / sizeof(uint32_t);
}

static size_t d3b_bw_bytes(const oc_conv_shape *s)
{
    return OC_CONV_D3B_TASKS * d3b_bw_task_words(s) * sizeof(uint32_t);
}

/* Packs w [K][R][S][C] as the direct kernels read it: forward (also the few-channel kernel)
 * wt[r][s][c][Kp]; backward-data (3x3 only) the flipped kernel wt[r][s][k][Cp]. */
static void d3_pack(const oc_conv_shape *s, const float *w, float *wt, int for_bwd_data)
{
    const int C = s->C, K = s->K, RS = s->R * s->S;
    if (!for_bwd_data) {
        const int Kp = pad16(K);
        for (int rs = 0; rs < RS; rs++)
            for (int c = 0; c < C; c++) {
                float *d = wt + ((int64_t)rs * C + c) * Kp;
                for (int k = 0; k < K; k++)
                    d[k] = w[((int64_t)k * RS + rs) * C + c];
                for (int k = K; k < Kp; k++)
                    d[k] = 0.0f;
            }
    } else {
        const int Cp = pad16(C);
        for (int rs = 0; rs < RS; rs++)
            for (int k = 0; k < K; k++) {
                float *d = wt + ((int64_t)rs * K + k) * Cp;
                const float *src = w + ((int64_t)k * RS + (RS - 1 - rs)) * C; /* (2-r, 2-s) */
                memcpy(d, src, (size_t)C * sizeof(float));
                for (int c = C; c < Cp; c++)
                    d[c] = 0.0f;
            }
    }
}

/* The B16 packing of d3_pack: pairs of input channels (2cp, 2cp+1) rounded to bf16, low half
 * first, the missing half of an odd count zero. */
static uint32_t bf16_pair(float lo, float hi)
{
    uint32_t a, b;
    lo = oc_bf16_round(lo);
    hi = oc_bf16_round(hi);
    memcpy(&a, &lo, sizeof a);
    memcpy(&b, &hi, sizeof b);
    return (a >> 16) | (b & 0xFFFF0000u);
}

static void d3b_pack(const oc_conv_shape *s, const float *w, uint32_t *wt, int for_bwd_data)
{
    const int C = s->C, K = s->K;
    const int cin = for_bwd_data ? K : C, cout = for_bwd_data ? C : K;
    const int cp_n = (cin + 1) / 2, op = pad16(cout);
    for (int rs = 0; rs < 9; rs++)
        for (int cp = 0; cp < cp_n; cp++) {
            uint32_t *d = wt + ((int64_t)rs * cp_n + cp) * op;
            const int i0 = 2 * cp, i1 = 2 * cp + 1;
            for (int o = 0; o < cout; o++) {
                float lo, hi = 0.0f;
                if (!for_bwd_data) { /* w[o][rs][i] */
                    const float *src = w + ((int64_t)o * 9 + rs) * C;
                    lo = src[i0];
                    if (i1 < C)
                        hi = src[i1];
                } else { /* the flipped kernel: w[i][8 - rs][o] */
                    lo = w[((int64_t)i0 * 9 + (8 - rs)) * C + o];
                    if (i1 < K)
                        hi = w[((int64_t)i1 * 9 + (8 - rs)) * C + o];
                }
                d[o] = bf16_pair(lo, hi);
            }
            for (int o = cout; o < op; o++)
                d[o] = 0;
        }
}

/* Rows [r0, r1) of image pairs (row m*H + h: row h of images 2m and 2m+1, the second zero
 * past the batch) of x[N][H][row] into dst, one bf16 pair per value. */
static void b16_pair_rows(const float *x, int N, int H, int64_t row, int64_t r0, int64_t r1,
                          uint32_t *dst)
{
    for (int64_t r = r0; r < r1; r++) {
        const int64_t m = r / H, h = r % H;
        const float *a = x + (2 * m * H + h) * row;
        oc_conv2d_bf16_image_pairs_avx512(a, 2 * m + 1 < N ? a + H * row : NULL, row,
                                          dst + (r - r0) * row);
    }
}

typedef struct {
    const oc_conv_shape *s;
    const float *x, *wt, *b, *dy;
    float *y, *part, *dw;
    int accum, blocks;
    const oc_conv_epilogue *epi; /* fused forward */
    int small_c;                 /* fused forward: the few-channel kernel */
    uint32_t *bufs;              /* B16: the tasks' bf16 rows, task_words apart */
    size_t task_words;
} d3_ctx;

/* B16 forward: each task's output rows in groups; per group, the input rows it reads rounded
 * to channel pairs into the task's buffer, then the tiles, then (fused forward) the epilogue
 * while the group's output is in cache. */
static void d3b_fwd_task(void *ctx, int tid, int nt)
{
    const d3_ctx *c = ctx;
    const oc_conv_shape *t = c->s;
    const int64_t rows = (int64_t)t->N * t->H, group = oc_conv2d_d3_fwd_group_rows(t);
    const int64_t row = (int64_t)t->W * t->C;
    uint32_t *buf = c->bufs + (size_t)tid * c->task_words;
    int64_t a, e;
    oc_split_range(rows, tid, nt, &a, &e);
    for (int64_t g0 = a; g0 < e; g0 += group) {
        const int64_t g1 = g0 + group < e ? g0 + group : e;
        const int64_t x0 = g0 > 0 ? g0 - 1 : 0, x1 = g1 < rows ? g1 + 1 : rows;
        oc_conv2d_bf16_channel_pairs_avx512(c->x + x0 * row, (x1 - x0) * t->W, t->C, buf);
        oc_conv2d_d3_fwd_rows_avx512(t, (const float *)buf, x0, c->wt, c->b, c->y, c->accum, 1,
                                     g0, g1);
        if (c->epi)
            oc_conv_epilogue_apply(c->epi, g0 * t->W, g1 * t->W, 0, t->K, t->K, c->y);
    }
}

/* B16 backward-weights: each task's blocks; a block's rows in every span (d3b_span_pairs) in
 * span order, in runs; per run, its x and dy rows rounded to image pairs into the task's
 * buffer, then the tiles. Rows count image pairs: m*H + p. */
static void d3b_bw_task(void *ctx, int tid, int nt)
{
    const d3_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const size_t pf = d3_part_floats(s);
    const int64_t H = s->H, pair_rows = (int64_t)(s->N + 1) / 2 * H;
    const int64_t span = (int64_t)d3b_span_pairs(s) * H, run = oc_conv2d_d3_bw_run_rows(s);
    const int64_t xrow = (int64_t)s->W * s->C, dyrow = (int64_t)s->W * s->K;
    uint32_t *xb = c->bufs + (size_t)tid * c->task_words, *dyb = xb + (run + 2) * xrow;
    oc_conv_shape u = *s; /* the kernels' view: N image pairs */
    int64_t b0, b1;
    u.N = (s->N + 1) / 2;
    oc_split_range(c->blocks, tid, nt, &b0, &b1);
    for (int64_t blk = b0; blk < b1; blk++) {
        float *part = c->part + blk * pf;
        memset(part, 0, pf * sizeof(float));
        for (int64_t s0 = 0; s0 < pair_rows; s0 += span) {
            int64_t j0, j1;
            oc_split_range(pair_rows - s0 < span ? pair_rows - s0 : span, (int)blk, c->blocks,
                           &j0, &j1);
            for (int64_t q0 = s0 + j0; q0 < s0 + j1; q0 += run) {
                const int64_t q1 = q0 + run < s0 + j1 ? q0 + run : s0 + j1;
                const int64_t x0 = q0 > 0 ? q0 - 1 : 0, x1 = q1 < pair_rows ? q1 + 1 : pair_rows;
                b16_pair_rows(c->x, s->N, s->H, xrow, x0, x1, xb);
                b16_pair_rows(c->dy, s->N, s->H, dyrow, q0, q1, dyb);
                oc_conv2d_d3_bwd_weights_rows_avx512(&u, (const float *)xb, x0,
                                                     (const float *)dyb, q0, part, 1, q0, q1);
            }
        }
    }
}

static void d3_fwd_task(void *ctx, int tid, int nt)
{
    const d3_ctx *c = ctx;
    int64_t a, e;
    oc_split_range((int64_t)c->s->N * c->s->H, tid, nt, &a, &e);
    if (e > a)
        oc_conv2d_d3_fwd_rows_avx512(c->s, c->x, 0, c->wt, c->b, c->y, c->accum, 0, a, e);
}

static void d3_bw_task(void *ctx, int tid, int nt)
{
    const d3_ctx *c = ctx;
    const size_t pf = d3_part_floats(c->s);
    int64_t b0, b1;
    oc_split_range(c->blocks, tid, nt, &b0, &b1);
    for (int64_t blk = b0; blk < b1; blk++) {
        float *part = c->part + blk * pf;
        int64_t j0, j1;
        oc_split_range((int64_t)c->s->N * c->s->P, (int)blk, c->blocks, &j0, &j1);
        memset(part, 0, pf * sizeof(float));
        oc_conv2d_d3_bwd_weights_rows_avx512(c->s, c->x, 0, c->dy, 0, part, 0, j0, j1);
    }
}

/* dw[k][r][s][c] += sum over blocks, in block order, of part[blk][r][s][c][k]; threads take
 * disjoint ranges of (r, s, c). */
static void d3_bw_combine_task(void *ctx, int tid, int nt)
{
    const d3_ctx *c = ctx;
    const int C = c->s->C, K = c->s->K, Kp = pad16(K);
    const size_t pf = d3_part_floats(c->s);
    int64_t a, e;
    oc_split_range((int64_t)9 * C, tid, nt, &a, &e);
    for (int64_t i = a; i < e; i++) {
        float sum[16];
        for (int k0 = 0; k0 < K; k0 += 16) {
            int kn = K - k0 < 16 ? K - k0 : 16;
            const float *p0 = c->part + i * Kp + k0;
            for (int k = 0; k < kn; k++)
                sum[k] = p0[k];
            for (int blk = 1; blk < c->blocks; blk++) {
                const float *pb = p0 + blk * pf;
                for (int k = 0; k < kn; k++)
                    sum[k] += pb[k];
            }
            for (int k = 0; k < kn; k++)
                c->dw[((int64_t)(k0 + k) * 9 + i / C) * C + i % C] += sum[k];
        }
    }
}

/* The direct forward of s (backward-data: of its transpose t, with w packed flipped) into y.
 * In bf16 the weights are packed as pairs and each task rounds the input rows it reads
 * (d3b_fwd_task), and applies epi (NULL: none; the fused forward's, bf16 only) to them. */
static void d3_run(const oc_conv_shape *s, const oc_conv_shape *t, const float *x,
                   const float *w, const float *b, float *y, int accum, int for_bwd_data,
                   void *ws, const oc_conv_epilogue *epi)
{
    d3_ctx c = {t, x, ws, b, NULL, y, NULL, NULL, accum, 0, epi, 0, NULL, 0};
    const int64_t rows = (int64_t)t->N * t->H;
    OC_ASSERT(!epi || d3_kind_of(s) == D3_BF16);
    if (d3_kind_of(s) != D3_BF16) {
        d3_pack(s, w, ws, for_bwd_data);
        oc_parallel_n(d3_fwd_task, &c, (int)rows);
        return;
    }
    d3b_pack(s, w, ws, for_bwd_data);
    c.bufs = (uint32_t *)((char *)ws + d3b_pack_bytes(s, for_bwd_data));
    c.task_words = d3b_task_words(t);
    oc_parallel_n(d3b_fwd_task, &c, rows < OC_CONV_D3B_TASKS ? (int)rows : OC_CONV_D3B_TASKS);
}

static void d3_fwd(const oc_conv_shape *s, const float *x, const float *w, const float *b,
                   float *y, void *ws)
{
    d3_run(s, s, x, w, b, y, 0, 0, ws, NULL);
}

static void d3_bwd_data(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                        void *ws, int set)
{
    oc_conv_shape t = *s; /* the transposed convolution: dy (K channels) -> dx (C channels) */
    t.C = s->K;
    t.K = s->C;
    d3_run(s, &t, dy, w, NULL, dx, !set, 1, ws, NULL);
}

/* Per-block partials over the rows, then their sum in block order. bf16 sums image pairs, the
 * blocks cutting spans of image pairs (d3b_bw_task). */
static void d3_bwd_weights(const oc_conv_shape *s, const float *x, const float *dy, float *dw,
                           void *ws)
{
    d3_ctx c = {s, x, NULL, NULL, dy, NULL, ws, dw, 0, d3_blocks(s), NULL, 0, NULL, 0};
    const int bf16 = d3_kind_of(s) == D3_BF16;
    if (bf16) {
        c.bufs = (uint32_t *)((char *)ws +
                              align64((size_t)c.blocks * d3_part_floats(s) * sizeof(float)));
        c.task_words = d3b_bw_task_words(s);
    }
    oc_parallel_n(bf16 ? d3b_bw_task : d3_bw_task, &c, c.blocks);
    oc_parallel_n(d3_bw_combine_task, &c, (int)((int64_t)9 * s->C * s->K / 4096 + 1));
}

/* ---------------------------------------------------------------- few input channels
 * Stems (conv2d_avx512.c): at most OC_CONV_SC_MAX_C input channels, any kernel size up to
 * 16 rows, stride and padding, no dilation, forward only (backward takes im2col). Used in fp32
 * math; in bf16 math these layers keep the bf16 im2col path. */
#define OC_CONV_SC_MAX_C 4

static int is_smallc(const oc_conv_shape *s)
{
    return s->groups == 1 && s->C <= OC_CONV_SC_MAX_C && s->R <= 16 && s->dil_h == 1 &&
           s->dil_w == 1 && !is_pointwise(s) && !is_depthwise(s) && !is_direct3(s);
}

static int use_smallc(const oc_conv_shape *s)
{
    return is_smallc(s) && use_avx512() && oc_math_get() != OC_MATH_BF16;
}

static void sc_fwd_task(void *ctx, int tid, int nt)
{
    const d3_ctx *c = ctx;
    int64_t a, e;
    oc_split_range((int64_t)c->s->N * c->s->P, tid, nt, &a, &e);
    if (e > a)
        oc_conv2d_sc_fwd_rows_avx512(c->s, c->x, c->wt, c->b, c->y, a, e);
}

/* Rows of output per epilogue pass (about 64 KiB of y, still in L1/L2). */
static int64_t sc_group_rows(const oc_conv_shape *s)
{
    int64_t g = (64 << 10) / ((int64_t)s->Q * s->K * (int64_t)sizeof(float));
    return g < 1 ? 1 : g;
}

/* ---------------------------------------------------------------- packed weights
 * The im2col convolutions of one group pack their weights once per call (after the im2col
 * chunk in the workspace) for every chunk's GEMM, instead of each chunk (and each thread, when
 * the threads split the rows) packing all of them again: oc_gemm_pack_b's panels in fp32,
 * oc_gemm_bf16_pack_b's bf16 pairs in bf16 math mode, where the forward's im2col also writes
 * bf16 pair rows that the GEMM reads in place. Either way the products are bitwise those of
 * plain oc_gemm calls per chunk: the same values, summed in the same order. */
static int pre_allowed = 1;

/* Test hook, no public API (tests/unit/test_bf16.c and test_conv2d.c declare it): 0 sends
 * these convolutions through plain oc_gemm calls per chunk, the path this one must match bit
 * for bit. */
void oc_conv2d_allow_prepack(int allow);
void oc_conv2d_allow_prepack(int allow)
{
    pre_allowed = allow != 0;
}

static int pre_shape(const oc_conv_shape *s)
{
    return s->groups == 1 && !is_pointwise(s) && !is_depthwise(s);
}

static int bf16_pre_shape(const oc_conv_shape *s)
{
    return pre_shape(s) && (int64_t)s->R * s->S * s->C <= OC_CONV_BF16_ROW_MAX;
}

static int use_bf16_pre(const oc_conv_shape *s)
{
    return pre_allowed && bf16_pre_shape(s) && use_avx512() && oc_math_get() == OC_MATH_BF16 &&
           oc_bf16_supported();
}

/* fp32: unless the batch has at most two row tiles of the 14-row kernel, where backward-data's
 * GEMM reads the weights in place and packing them first would only add a pass. */
static int use_f32_pre(const oc_conv_shape *s)
{
    return pre_allowed && pre_shape(s) && oc_math_get() != OC_MATH_BF16 &&
           (int64_t)s->N * s->P * s->Q > 28;
}

/* Workspace bytes before the packed weights, and the packed weights' bytes. */
static size_t pre_offset(const oc_conv_shape *s, int for_bwd_data)
{
    size_t b = col_bytes(s);
    if ((is_direct3(s) || (!for_bwd_data && is_smallc(s))) && d3_pack_bytes(s, for_bwd_data) > b)
        b = d3_pack_bytes(s, for_bwd_data);
    if (is_direct3(s) && d3b_bytes(s, for_bwd_data) > b)
        b = d3b_bytes(s, for_bwd_data);
    return b;
}

static size_t pre_bytes(const oc_conv_shape *s, int for_bwd_data)
{
    int RSC = s->R * s->S * s->C, N = for_bwd_data ? RSC : s->K, K = for_bwd_data ? s->K : RSC;
    size_t f32 = oc_gemm_b_bytes(N, K), b16 = oc_gemm_bf16_b_bytes(N, K);
    if (!pre_shape(s))
        return 0;
    return bf16_pre_shape(s) && b16 > f32 ? b16 : f32;
}

/* Packs w for every chunk's GEMM (forward: op(B) = w^T, K x R*S*C; backward-data: op(B) = w)
 * after the im2col chunk in ws, where use_bf16_pre or use_f32_pre says it pays; returns the
 * packed weights, or NULL (the chunks then call oc_gemm on w), and sets *bf16 to the layout. */
static void *pack_once(const oc_conv_shape *s, const float *w, void *ws, int for_bwd_data,
                       int *bf16)
{
    const int RSC = s->R * s->S * s->C, N = for_bwd_data ? RSC : s->K;
    const int K = for_bwd_data ? s->K : RSC, transb = !for_bwd_data;
    void *bp = (char *)ws + pre_offset(s, for_bwd_data);
    *bf16 = use_bf16_pre(s);
    if (*bf16)
        oc_gemm_bf16_pack_b(transb, N, K, w, RSC, bp);
    else if (use_f32_pre(s))
        oc_gemm_pack_b(transb, N, K, w, RSC, bp);
    else
        bp = NULL;
    return bp;
}

/* Output rows (n, p) in [j0, j1) of the im2col forward: yc = im2col(x) w^T + beta * yc, with the
 * weights packed by pack_once (bp, bf16) or, bp NULL, as they are (any groups). */
static void fwd_chunk(const oc_conv_shape *s, const float *x, const float *w, const void *bp,
                      int bf16, void *ws, int64_t j0, int64_t j1, float beta, float *yc)
{
    const int G = s->groups, Kg = s->K / G;
    const int64_t RSC = (int64_t)s->R * s->S * s->C, RSCg = RSC / G;
    float *col = ws; /* (j1 - j0) * Q rows of R*S*C (bf16: of (R*S*C + 1) / 2 pairs) */
    col_ctx c = {s, x, NULL, col, j0, j1};
    int M = (int)((j1 - j0) * s->Q);
    run_cols(bf16 ? im2col_bf16_task : im2col_task, &c);
    if (bf16)
        oc_gemm_bf16_pre(0, M, s->K, (int)RSC, 1.0f, (const uint32_t *)col, (RSC + 1) / 2, NULL,
                         0, bp, w, (int)RSC, 1, beta, yc, s->K);
    else if (bp)
        oc_gemm_pre(M, s->K, (int)RSC, 1.0f, col, (int)RSC, bp, w, (int)RSC, 1, beta, yc, s->K);
    else
        for (int g = 0; g < G; g++)
            oc_gemm(0, 1, M, Kg, (int)RSCg, 1.0f, col + g * RSCg, (int)RSC,
                    w + (int64_t)g * Kg * RSCg, (int)RSCg, beta, yc + (int64_t)g * Kg, s->K);
}

/* ---------------------------------------------------------------- Winograd's share
 * (winograd.c has the kernels) */

/* Test hook, no public API (tests/unit/test_conv2d.c declares it): 0 turns Winograd off (the
 * wide 3x3 layers then take the direct / im2col kernels, and keep their packed weights in
 * those layouts). */
static int wino_allowed = 1;
void oc_conv2d_allow_winograd(int allow);
void oc_conv2d_allow_winograd(int allow)
{
    wino_allowed = allow;
}

/* A Winograd shape on a CPU that runs it (and not turned off by the hook). */
static int wino_ok(const oc_conv_shape *s)
{
    return wino_allowed && oc_wino_shape(s) && use_avx512();
}

/* Winograd in the training forward and backward-data, whose weights change every call: it
 * transforms them each time, which pays from a few hundred tiles on (resnet18's 512-channel
 * layers at 28x28 and batch 1, 196 tiles, ran slower than im2col + GEMM; bench/conv.c). */
static int64_t wino_train_min_tiles = 256;

/* Test hook (tests/unit/test_conv2d.c): the tiles from which the training passes take
 * Winograd (<= 0: the default), so small test shapes reach it. */
void oc_conv2d_wino_train_min_tiles(int64_t tiles);
void oc_conv2d_wino_train_min_tiles(int64_t tiles)
{
    wino_train_min_tiles = tiles > 0 ? tiles : 256;
}

static int use_wino_train(const oc_conv_shape *s)
{
    return wino_ok(s) && oc_math_get() != OC_MATH_BF16 && oc_wino_tiles(s) >= wino_train_min_tiles;
}

/* ---------------------------------------------------------------- forward */

size_t oc_conv2d_fwd_workspace(const oc_conv_shape *s)
{
    if (is_depthwise(s))
        return (size_t)s->R * s->S * s->C * sizeof(float);
    if (is_pointwise(s))
        return 0;
    size_t b = pre_offset(s, 0) + pre_bytes(s, 0); /* direct 3x3 or im2col (direct: AVX-512) */
    size_t wb = oc_wino_shape(s) ? oc_wino_train_workspace(s) : 0; /* covers the fused one */
    return wb > b ? wb : b;
}

void oc_conv2d_fwd(const oc_conv_shape *s, const float *x, const float *w, const float *b,
                   float *y, void *ws)
{
    const int G = s->groups, Cg = s->C / G, Kg = s->K / G;
    if (is_depthwise(s)) {
        dw_ctx c = {s, x, ws, b, NULL, y, NULL, NULL, 0, NULL, 0};
        dw_transpose(s, w, ws);
        oc_parallel_n(dw_fwd_task, &c, s->N * s->P);
        return;
    }
    if (is_pointwise(s)) {
        int64_t M = (int64_t)s->N * s->H * s->W;
        float beta = bias_fill(s, b, y, M);
        OC_ASSERT(M <= INT32_MAX);
        for (int g = 0; g < G; g++)
            oc_gemm(0, 1, (int)M, Kg, Cg, 1.0f, x + (int64_t)g * Cg, s->C,
                    w + (int64_t)g * Kg * Cg, Cg, beta, y + (int64_t)g * Kg, s->K);
        return;
    }
    if (use_wino_train(s)) {
        oc_wino_fwd(s, x, w, b, y, ws);
        return;
    }
    if (use_direct3(s)) {
        d3_fwd(s, x, w, b, y, ws);
        return;
    }
    if (use_smallc(s)) {
        d3_ctx c = {s, x, ws, b, NULL, y, NULL, NULL, 0, 0, NULL, 0, NULL, 0};
        d3_pack(s, w, ws, 0);
        oc_parallel_n(sc_fwd_task, &c, s->N * s->P);
        return;
    }
    const int64_t total = (int64_t)s->N * s->P, chunk = chunk_rows(s);
    int bf16;
    const void *bp = pack_once(s, w, ws, 0, &bf16);
    for (int64_t j0 = 0; j0 < total; j0 += chunk) {
        int64_t j1 = j0 + chunk < total ? j0 + chunk : total;
        float *yc = y + j0 * s->Q * s->K;
        float beta = bias_fill(s, b, yc, (int)((j1 - j0) * s->Q));
        fwd_chunk(s, x, w, bp, bf16, ws, j0, j1, beta, yc);
    }
}

/* ---------------------------------------------------------------- fused forward (inference)
 * oc_conv2d_fwd's kernels without the bias, each followed by the epilogue (ops.h) on the block
 * it just wrote: per output row for the depthwise kernel (in registers with AVX-512), per group
 * of output rows for the direct kernels, per tile row for Winograd, per GEMM tile for 1x1
 * convolutions (in the tile's registers, oc_gemm_pre_epi, for the inline activations with
 * AVX-512 in fp32; else per GEMM block), per im2col chunk (see chunk_rows) for the others. The
 * 1x1 GEMM blocks are about OC_CONV_FUSED_ROWS rows, and when there are few rows, balanced row
 * blocks or column slices (fused_split); a task runs its consecutive slices of one row block
 * as one single-threaded product. No sum is split, so results do not depend on the thread
 * count. */
#define OC_CONV_FUSED_ROWS 112
/* Multiply-adds per thread below which another thread does not pay for waking it (as the
 * GEMM's own threshold). */
#define OC_CONV_FUSED_PER_THREAD 262144
/* The split's cost model, in multiply-adds per k: packing a run's rows of A costs about as
 * much as this many columns of the product, and bringing its columns of the weights in about
 * as much as this many rows. */
#define OC_CONV_FUSED_PACK_COLS 16
#define OC_CONV_FUSED_LOAD_ROWS 2

typedef struct {
    const oc_conv_shape *s;
    const oc_conv_epilogue *e;
    const float *x, *w; /* fused GEMM: A (rows of lda floats) and the weights [K][Kd] */
    float *y;
    int64_t m0;         /* fused GEMM: first output row of A's row 0 */
    int M, Kd, lda;
    int row_blocks, col_blocks, col_w; /* row blocks of balanced heights */
} fused_ctx;

/* Task t's rows [*r0, *r1) and columns [*k0, *k1) (tasks run row block by row block). */
static void fused_task_block(const fused_ctx *c, int64_t t, int *r0, int *r1, int *k0, int *k1)
{
    int64_t a, b;
    oc_split_range(c->M, (int)(t / c->col_blocks), c->row_blocks, &a, &b);
    *r0 = (int)a;
    *r1 = (int)b;
    *k0 = (int)(t % c->col_blocks) * c->col_w;
    *k1 = *k0 + c->col_w < c->s->K ? *k0 + c->col_w : c->s->K;
}

/* The cost of the busiest of nt threads when c's tasks are split as fused_gemm_task splits
 * them (see the cost model above). */
static double fused_split_cost(const fused_ctx *c, int nt)
{
    double worst = 0;
    for (int tid = 0; tid < nt; tid++) {
        int64_t t0, t1;
        double cost = 0;
        oc_split_range((int64_t)c->row_blocks * c->col_blocks, tid, nt, &t0, &t1);
        for (int64_t t = t0; t < t1; t++) {
            int r0, r1, k0, k1;
            fused_task_block(c, t, &r0, &r1, &k0, &k1);
            cost += (double)(r1 - r0) * (k1 - k0) + (double)(k1 - k0) * OC_CONV_FUSED_LOAD_ROWS;
            if (t == t0 || t % c->col_blocks == 0) /* a run starts: its rows are packed */
                cost += (double)(r1 - r0) * OC_CONV_FUSED_PACK_COLS;
        }
        worst = cost > worst ? cost : worst;
    }
    return worst;
}

/* Row blocks and column slices for nt threads. Large products take blocks of about
 * OC_CONV_FUSED_ROWS rows over all columns. For a product of few rows the rows are also cut
 * into a multiple of nt blocks of balanced heights, or the columns into slices (multiples of
 * the GEMM's panel width, so a kept packing is read in place), whichever leaves the busiest
 * thread the least work: 49 rows by 160 columns on 2 threads become blocks of 25 and 24
 * rows, where 64-column slices left one thread 128 columns and the other 32. */
static void fused_split(fused_ctx *c, int nt)
{
    const int K = c->s->K, base = (c->M + OC_CONV_FUSED_ROWS - 1) / OC_CONV_FUSED_ROWS;
    const oc_gemm_kernel *kern = oc_gemm_pick(K);
    const int nr = kern ? kern->nr : K, max_cb = (K + nr - 1) / nr;
    const int rbs[2] = {base, (base + nt - 1) / nt * nt};
    c->row_blocks = base;
    c->col_blocks = 1;
    c->col_w = K;
    if (nt <= 1 || base >= 4 * nt)
        return;
    double best = fused_split_cost(c, nt);
    for (int i = 0; i < 2; i++)
        for (int cb = 1; cb <= max_cb && cb <= 4 * nt; cb++) {
            fused_ctx t = *c;
            t.row_blocks = rbs[i];
            t.col_w = ((K + cb - 1) / cb + nr - 1) / nr * nr;
            t.col_w = t.col_w < K ? t.col_w : K;
            t.col_blocks = (K + t.col_w - 1) / t.col_w;
            if (t.row_blocks > c->M || (t.col_blocks > 1 && oc_gemm_pick(t.col_w) != kern))
                continue; /* a slice of another kernel family cannot read the packing */
            double cost = fused_split_cost(&t, nt);
            if (cost < best * 0.999) {
                best = cost;
                *c = t;
            }
        }
}

static void fused_gemm_task(void *ctx, int tid, int nt)
{
    const fused_ctx *c = ctx;
    const int K = c->s->K;
    int64_t t0, t1;
    oc_split_range((int64_t)c->row_blocks * c->col_blocks, tid, nt, &t0, &t1);
    for (int64_t t = t0, run; t < t1; t += run) {
        /* this task's consecutive column slices of one row block in one product, which packs
         * the block's rows once instead of once per slice (the same sums: none is split) */
        int r0, r1, k0, k1, cb = (int)(t % c->col_blocks);
        run = c->col_blocks - cb < t1 - t ? c->col_blocks - cb : t1 - t;
        fused_task_block(c, t + run - 1, &r0, &r1, &k0, &k1);
        k0 = cb * c->col_w;
        float *yb = c->y + (c->m0 + r0) * K;
        const float *bp = oc_gemm_packed_cols(c->e->w_packed, K, c->Kd, k0, k1 - k0);
        /* nested in a parallel task: runs on this thread */
        if (oc_gemm_epi_act(c->e->act)) { /* with the GEMM (in its tiles' registers) */
            const oc_gemm_epi ge = oc_conv_epilogue_cols(
                c->e, k0, c->e->res ? c->e->res + (c->m0 + r0) * K + k0 : NULL, K);
            oc_gemm_pre_epi(r1 - r0, k1 - k0, c->Kd, c->x + (int64_t)r0 * c->lda, c->lda, bp,
                            c->w + (int64_t)k0 * c->Kd, c->Kd, 1, yb + k0, K, &ge);
            continue;
        }
        if (bp)
            oc_gemm_pre(r1 - r0, k1 - k0, c->Kd, 1.0f, c->x + (int64_t)r0 * c->lda, c->lda, bp,
                        c->w + (int64_t)k0 * c->Kd, c->Kd, 1, 0.0f, yb + k0, K);
        else
            oc_gemm(0, 1, r1 - r0, k1 - k0, c->Kd, 1.0f, c->x + (int64_t)r0 * c->lda, c->lda,
                    c->w + (int64_t)k0 * c->Kd, c->Kd, 0.0f, yb + k0, K);
        oc_conv_epilogue_apply(c->e, c->m0 + r0, c->m0 + r1, k0, k1, K, c->y);
    }
}

/* y[m0 + i][K] = epilogue(A[i][Kd] * w[K][Kd]^T) for i < M (one group). */
static void fused_gemm(const oc_conv_shape *s, const oc_conv_epilogue *e, const float *a, int lda,
                       int M, int Kd, const float *w, float *y, int64_t m0)
{
    fused_ctx c = {s, e, a, w, y, m0, M, Kd, lda, 1, 1, s->K};
    double work = (double)M * s->K * Kd / OC_CONV_FUSED_PER_THREAD;
    int nt = oc_get_threads();
    nt = work < 1.0 ? 1 : work < nt ? (int)work : nt;
    fused_split(&c, nt);
    oc_parallel_n(fused_gemm_task, &c,
                  nt < c.row_blocks * c.col_blocks ? nt : c.row_blocks * c.col_blocks);
}

static void dw_fused_task(void *ctx, int tid, int nt)
{
    const dw_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int avx = use_avx512();
    int64_t a, e;
    oc_split_range((int64_t)s->N * s->P, tid, nt, &a, &e);
    for (int64_t j = a; j < e; j++) {
        int n = (int)(j / s->P), p = (int)(j % s->P);
        if (avx) { /* applies the epilogue itself, most of it in registers */
            oc_conv2d_dw_fwd_row_avx512(s, c->x, c->w, NULL, c->epi, c->y, n, p);
            continue;
        }
        dw_fwd_row(s, c->x, c->w, NULL, c->y, n, p);
        oc_conv_epilogue_apply(c->epi, j * s->Q, (j + 1) * s->Q, 0, s->K, s->K, c->y);
    }
}

/* The direct kernels' fused forward (3x3, or few channels with c->small_c): a group of output
 * rows, then its epilogue while the group is still in cache. */
static void direct_fused_task(void *ctx, int tid, int nt)
{
    const d3_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int64_t group = c->small_c ? sc_group_rows(s) : oc_conv2d_d3_fwd_group_rows(s);
    int64_t a, e;
    oc_split_range((int64_t)s->N * s->P, tid, nt, &a, &e);
    for (int64_t j = a; j < e; j += group) {
        int64_t j1 = j + group < e ? j + group : e;
        if (c->small_c)
            oc_conv2d_sc_fwd_rows_avx512(s, c->x, c->wt, NULL, c->y, j, j1);
        else
            oc_conv2d_d3_fwd_rows_avx512(s, c->x, 0, c->wt, NULL, c->y, 0, 0, j, j1);
        oc_conv_epilogue_apply(c->epi, j * s->Q, j1 * s->Q, 0, s->K, s->K, c->y);
    }
}

typedef struct {
    const oc_conv_epilogue *e;
    float *y;      /* the whole output */
    int64_t m0, rows;
    int K;
} epi_ctx;

/* The epilogue over output rows [m0, m0 + rows), split over the threads. */
static void epi_task(void *ctx, int tid, int nt)
{
    const epi_ctx *c = ctx;
    int64_t a, b;
    oc_split_range(c->rows, tid, nt, &a, &b);
    oc_conv_epilogue_apply(c->e, c->m0 + a, c->m0 + b, 0, c->K, c->K, c->y);
}

/* The layout oc_conv2d_fwd_fused reads weights in, for fp32 math (bf16 math packs its own). */
typedef enum {
    FUSED_NONE,
    FUSED_DW,
    FUSED_1X1,
    FUSED_WINO,
    FUSED_D3,
    FUSED_SMALLC,
    FUSED_IM2COL
} fused_layout;

static fused_layout fused_layout_of(const oc_conv_shape *s)
{
    oc_math_mode math = oc_math_set(OC_MATH_F32); /* the fp32 choice, whatever the caller's */
    fused_layout l = is_depthwise(s)   ? FUSED_DW
                     : is_pointwise(s) ? (s->groups == 1 ? FUSED_1X1 : FUSED_NONE)
                     : wino_ok(s)      ? FUSED_WINO
                     : use_direct3(s)  ? FUSED_D3
                     : use_smallc(s)   ? FUSED_SMALLC
                     : pre_shape(s)    ? FUSED_IM2COL
                                       : FUSED_NONE;
    oc_math_set(math);
    return l;
}

size_t oc_conv2d_fused_pack_bytes(const oc_conv_shape *s)
{
    switch (fused_layout_of(s)) {
    case FUSED_DW: return (size_t)s->R * s->S * s->C * sizeof(float);
    case FUSED_1X1: return oc_gemm_b_bytes(s->K, s->C);
    case FUSED_WINO: return oc_wino_pack_bytes(s);
    case FUSED_D3:
    case FUSED_SMALLC: return d3_pack_bytes(s, 0);
    case FUSED_IM2COL: return oc_gemm_b_bytes(s->K, s->R * s->S * s->C);
    default: return 0;
    }
}

void oc_conv2d_fused_pack(const oc_conv_shape *s, const float *w, void *dst)
{
    const int RSC = s->R * s->S * s->C;
    switch (fused_layout_of(s)) {
    case FUSED_WINO: oc_wino_pack(s, w, dst); break;
    case FUSED_DW: dw_transpose(s, w, dst); break;
    case FUSED_1X1: oc_gemm_pack_b(1, s->K, s->C, w, s->C, dst); break;
    case FUSED_D3:
    case FUSED_SMALLC: d3_pack(s, w, dst, 0); break;
    case FUSED_IM2COL: oc_gemm_pack_b(1, s->K, RSC, w, RSC, dst); break;
    default: break;
    }
}

void oc_conv2d_fwd_fused(const oc_conv_shape *s, const float *x, const float *w,
                         const oc_conv_epilogue *e, float *y, void *ws)
{
    /* weights kept packed (oc_conv2d_fused_pack): read in place of packing them here, in fp32
     * math (1x1 convolutions read them in either) */
    const void *kept = oc_math_get() != OC_MATH_BF16 ? e->w_packed : NULL;
    if (kept && fused_layout_of(s) == FUSED_WINO) {
        oc_wino_fwd_fused(s, x, kept, e, y, ws);
        return;
    }
    const int64_t rows = (int64_t)s->N * s->P * s->Q;
    if (is_depthwise(s)) {
        dw_ctx c = {s, x, kept ? kept : ws, NULL, NULL, y, NULL, NULL, 0, e, 0};
        if (!kept)
            dw_transpose(s, w, ws);
        oc_parallel_n(dw_fused_task, &c, s->N * s->P);
        return;
    }
    if (s->groups == 1 && is_pointwise(s)) {
        OC_ASSERT(rows <= INT32_MAX);
        fused_gemm(s, e, x, s->C, (int)rows, s->C, w, y, 0);
        return;
    }
    if (use_direct3(s) || use_smallc(s)) { /* both read the direct packing */
        if (!kept && d3_kind_of(s) == D3_BF16) { /* the tasks apply it per group */
            d3_run(s, s, x, w, NULL, y, 0, 0, ws, e);
            return;
        }
        d3_ctx c = {s, x, kept ? kept : ws, NULL, NULL, y, NULL, NULL, 0, 0, e, !use_direct3(s),
                    NULL, 0};
        if (!kept)
            d3_pack(s, w, ws, 0);
        oc_parallel_n(direct_fused_task, &c, s->N * s->P);
        return;
    }
    if (s->groups == 1) {
        const int64_t total = (int64_t)s->N * s->P, chunk = chunk_rows(s);
        int bf16 = 0;
        const void *bp = kept ? kept : pack_once(s, w, ws, 0, &bf16);
        for (int64_t j0 = 0; j0 < total; j0 += chunk) {
            int64_t j1 = j0 + chunk < total ? j0 + chunk : total;
            int M = (int)((j1 - j0) * s->Q);
            /* the chunk's whole GEMM (deep products keep their threaded blocking: 112-row
             * tasks would re-pack all the weights per task), then the epilogue while the
             * chunk's output is still in cache */
            epi_ctx ec = {e, y, j0 * s->Q, M, s->K};
            fwd_chunk(s, x, w, bp, bf16, ws, j0, j1, 0.0f, y + j0 * s->Q * s->K);
            oc_parallel_n(epi_task, &ec, (int)((int64_t)M * s->K / 65536 + 1));
        }
        return;
    }
    /* grouped (not depthwise): the plain kernel, then one epilogue pass */
    {
        epi_ctx c = {e, y, 0, rows, s->K};
        oc_conv2d_fwd(s, x, w, NULL, y, ws);
        oc_parallel_n(epi_task, &c, (int)(rows * s->K / 65536 + 1));
    }
}

/* ---------------------------------------------------------------- backward data */

size_t oc_conv2d_bwd_data_workspace(const oc_conv_shape *s)
{
    if (is_depthwise(s))
        return (size_t)s->R * s->S * s->C * sizeof(float);
    if (is_pointwise(s))
        return 0;
    const oc_conv_shape t = oc_wino_transposed(s);
    size_t b = pre_offset(s, 1) + pre_bytes(s, 1);
    size_t wb = oc_wino_shape(&t) ? oc_wino_train_workspace(&t) : 0;
    return wb > b ? wb : b;
}

/* dx += (or, set, =) the input gradient. Setting gives the bits of adding to zeros: the
 * direct kernel and the 1x1 GEMM start their sums from zero instead of loading dx, the other
 * methods zero dx first. */
static void bwd_data(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                     void *ws, int set)
{
    const int G = s->groups, Cg = s->C / G, Kg = s->K / G;
    const oc_conv_shape t = oc_wino_transposed(s);
    if (use_wino_train(&t)) {
        oc_wino_bwd_data(s, dy, w, dx, ws, set);
        return;
    }
    if (set && !is_pointwise(s) && !is_depthwise(s) && !use_direct3(s))
        memset(dx, 0, (size_t)s->N * s->H * s->W * s->C * sizeof(float));
    if (is_depthwise(s)) {
        dw_ctx c = {s, NULL, ws, NULL, dy, NULL, dx, NULL, 0, NULL, set};
        dw_transpose(s, w, ws);
        oc_parallel_n(dw_bwd_data_task, &c, s->N * s->H);
        return;
    }
    if (is_pointwise(s)) {
        int64_t M = (int64_t)s->N * s->H * s->W;
        OC_ASSERT(M <= INT32_MAX);
        for (int g = 0; g < G; g++)
            oc_gemm(0, 0, (int)M, Cg, Kg, 1.0f, dy + (int64_t)g * Kg, s->K,
                    w + (int64_t)g * Kg * Cg, Cg, set ? 0.0f : 1.0f, dx + (int64_t)g * Cg, s->C);
        return;
    }
    if (use_direct3(s)) {
        d3_bwd_data(s, dy, w, dx, ws, set);
        return;
    }
    const int64_t RSC = (int64_t)s->R * s->S * s->C, RSCg = RSC / G;
    const int64_t total = (int64_t)s->N * s->P, chunk = chunk_rows(s);
    float *col = ws; /* chunk * Q rows of R*S*C: d(loss)/d(im2col) */
    int bf16;
    const void *bp = pack_once(s, w, ws, 1, &bf16);
    for (int64_t j0 = 0; j0 < total; j0 += chunk) {
        col_ctx c = {s, NULL, dx, col, j0, j0 + chunk < total ? j0 + chunk : total};
        int M = (int)((c.j1 - c.j0) * s->Q);
        const float *dyc = dy + j0 * s->Q * s->K;
        if (bp && bf16)
            oc_gemm_bf16_pre(0, M, (int)RSC, s->K, 1.0f, NULL, 0, dyc, s->K, bp, w, (int)RSC, 0,
                             0.0f, col, (int)RSC);
        else if (bp)
            oc_gemm_pre(M, (int)RSC, s->K, 1.0f, dyc, s->K, bp, w, (int)RSC, 0, 0.0f, col,
                        (int)RSC);
        else
            for (int g = 0; g < G; g++)
                oc_gemm(0, 0, M, (int)RSCg, Kg, 1.0f, dyc + (int64_t)g * Kg, s->K,
                        w + (int64_t)g * Kg * RSCg, (int)RSCg, 0.0f, col + g * RSCg, (int)RSC);
        {
            int64_t rows_in = ((c.j1 - 1) / s->P - c.j0 / s->P + 1) * s->H;
            oc_parallel_n(col2im_task, &c, (int)rows_in);
        }
    }
}

void oc_conv2d_bwd_data(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                        void *ws)
{
    bwd_data(s, dy, w, dx, ws, 0);
}

void oc_conv2d_bwd_data_set(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                            void *ws)
{
    bwd_data(s, dy, w, dx, ws, 1);
}

/* ---------------------------------------------------------------- backward weights */

/* Backward-weights workspace before the bias partials: the im2col chunk, or for the direct
 * 3x3 path (when the CPU takes it) the per-block partial weight gradients. */
static size_t bw_main_bytes(const oc_conv_shape *s)
{
    size_t b = col_bytes(s);
    if (bf16_pre_shape(s)) {
        size_t p = (oc_gemm_bf16_b_bytes(s->R * s->S * s->C, (int)(chunk_rows(s) * s->Q)) + 63) &
                   ~(size_t)63;
        if (p > b)
            b = p;
    }
    if (is_direct3_bw(s)) {
        size_t d = align64((size_t)d3_blocks(s) * d3_part_floats(s) * sizeof(float)) +
                   d3b_bw_bytes(s);
        if (d > b)
            b = d;
    }
    return b;
}

size_t oc_conv2d_bwd_weights_workspace(const oc_conv_shape *s)
{
    if (is_depthwise(s))
        return (size_t)red_blocks((int64_t)s->N * s->P) * (size_t)(s->R * s->S + 1) *
               (size_t)s->C * sizeof(float);
    size_t red = (size_t)red_blocks((int64_t)s->N * s->P * s->Q) * (size_t)s->K * sizeof(float);
    if (is_pointwise(s))
        return red;
    return bw_main_bytes(s) + red;
}

void oc_conv2d_bwd_weights(const oc_conv_shape *s, const float *x, const float *dy, float *dw,
                           float *db, void *ws)
{
    const int G = s->groups, Cg = s->C / G, Kg = s->K / G;
    const int64_t rows = (int64_t)s->N * s->P * s->Q;
    if (!dw) {
        /* a frozen weight: the bias alone, in the same blocks as below where the workspace
         * holds them (every shape but depthwise reserves them), else in as many as it holds */
        size_t fit = oc_conv2d_bwd_weights_workspace(s) / ((size_t)s->K * sizeof(float));
        int blocks = red_blocks(rows);
        if (db)
            bias_sum_blocks(dy, rows, s->K, ws, db, (size_t)blocks < fit ? blocks : (int)fit);
        return;
    }
    if (is_depthwise(s)) {
        const int RS = s->R * s->S, C = s->C;
        const int64_t part_floats = (int64_t)(RS + 1) * C;
        dw_ctx c = {s, x, NULL, NULL, dy, NULL, NULL, ws, red_blocks((int64_t)s->N * s->P),
                    NULL, 0};
        oc_parallel_n(dw_bwd_weights_task, &c, c.blocks);
        for (int blk = 0; blk < c.blocks; blk++) {
            const float *part = c.part + blk * part_floats;
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < RS; i++)
                    dw[(int64_t)ch * RS + i] += part[(int64_t)i * C + ch];
            if (db)
                for (int ch = 0; ch < C; ch++)
                    db[ch] += part[(int64_t)RS * C + ch];
        }
        return;
    }
    if (is_pointwise(s)) {
        OC_ASSERT(rows <= INT32_MAX);
        for (int g = 0; g < G; g++)
            oc_gemm(1, 0, Kg, Cg, (int)rows, 1.0f, dy + (int64_t)g * Kg, s->K,
                    x + (int64_t)g * Cg, s->C, 1.0f, dw + (int64_t)g * Kg * Cg, Cg);
        if (db)
            bias_sum(dy, rows, s->K, ws, db);
        return;
    }
    if (use_direct3_bw(s)) {
        d3_bwd_weights(s, x, dy, dw, ws);
        if (db)
            bias_sum(dy, rows, s->K, (float *)((char *)ws + bw_main_bytes(s)), db);
        return;
    }
    const int64_t RSC = (int64_t)s->R * s->S * s->C, RSCg = RSC / G;
    const int64_t total = (int64_t)s->N * s->P, chunk = chunk_rows(s);
    float *col = ws; /* chunk * Q rows of R*S*C (bf16: the GEMM's packed B panels of them) */
    const int bf16 = use_bf16_pre(s);
    for (int64_t j0 = 0; j0 < total; j0 += chunk) {
        col_ctx c = {s, x, NULL, col, j0, j0 + chunk < total ? j0 + chunk : total};
        int M = (int)((c.j1 - c.j0) * s->Q);
        const float *dyc = dy + j0 * s->Q * s->K;
        if (bf16) {
            pair_ctx pc = {s, x, col, j0, M};
            oc_parallel_n(im2col_bf16_pairs_task, &pc, (M + 1) / 2);
            oc_gemm_bf16_pre(1, s->K, (int)RSC, M, 1.0f, NULL, 0, dyc, s->K, col, NULL, 0, 0,
                             1.0f, dw, (int)RSC);
            continue;
        }
        run_cols(im2col_task, &c);
        for (int g = 0; g < G; g++)
            oc_gemm(1, 0, Kg, (int)RSCg, M, 1.0f, dyc + (int64_t)g * Kg, s->K, col + g * RSCg,
                    (int)RSC, 1.0f, dw + (int64_t)g * Kg * RSCg, (int)RSCg);
    }
    if (db)
        bias_sum(dy, rows, s->K, (float *)((char *)ws + bw_main_bytes(s)), db);
}
