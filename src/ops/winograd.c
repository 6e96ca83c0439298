/* Winograd F(2x2, 3x3) convolution for wide 3x3 layers (stride 1, padding 1, one group): the
 * fused inference forward, with the weights transformed and packed once (oc_conv2d_fused_pack,
 * for a model whose weights stay fixed), and the training forward and backward-data, which
 * transform them on every call (about one tile's worth of work per filter).
 *
 * Each 2x2 block of outputs ("tile") comes from a 4x4 input patch: the 16 products of the
 * transformed patch V and the transformed filters U, summed over the input channels, are 16
 * independent GEMMs M[xi] = V[xi] U[xi] ([tiles x C] by [C x K]), and the output transform
 * turns each tile's 16 sums into its 2x2 outputs: 2.25x fewer multiplies than the direct
 * convolution. The transforms (winograd_avx512.c) add and subtract only, except U's halves;
 * results match the direct sums within fp32 rounding (tests/unit/test_conv2d.c).
 *
 * Tiles are processed in blocks of whole tile rows whose V and M fit block_bytes: per
 * block one parallel region transforms the inputs, one runs the 16 GEMMs (a task each, so
 * every GEMM runs on one thread without synchronisation), one transforms the outputs and
 * applies the epilogue row by row while they are in cache. The GEMMs split no sums, so the
 * result does not depend on the thread count. */
#include "ops.h"

#include "core/core.h"

#include <stdint.h>
#include <string.h>

void oc_wino_input_tile_avx512(const float *const *rows, const int *cols_ok, int C, int col0,
                               float *v, ptrdiff_t xi_stride);
void oc_wino_output_tile_avx512(const float *m, ptrdiff_t xi_stride, int K, float *y0,
                                float *y1, int two_cols, int accum);

/* Above this C * K Winograd beats the direct kernel on Zen 5 (bench/conv.c, fused with kept
 * weights, 2 threads: 256 x 256 channels 1.3x, 512 x 512 2x; 128 x 128 0.93x, 64 x 64 0.7x:
 * thinner GEMMs, and the transforms' memory passes weigh more). */
#define WINO_MIN_CK (128 * 128)
/* Bytes of V and M of one block of tiles (oc_wino_set_block_bytes changes it, for tests). */
static size_t block_bytes = (size_t)8 << 20;

void oc_wino_set_block_bytes(size_t bytes);
void oc_wino_set_block_bytes(size_t bytes)
{
    block_bytes = bytes ? bytes : (size_t)8 << 20;
}

int oc_wino_shape(const oc_conv_shape *s)
{
    return s->R == 3 && s->S == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 1 &&
           s->pad_w == 1 && s->dil_h == 1 && s->dil_w == 1 && s->groups == 1 && s->W >= 3 &&
           s->K >= 16 && (int64_t)s->C * s->K > WINO_MIN_CK;
}

static int tiles_w(const oc_conv_shape *s)
{
    return (s->Q + 1) / 2;
}

static int tiles_h(const oc_conv_shape *s)
{
    return (s->P + 1) / 2;
}

int64_t oc_wino_tiles(const oc_conv_shape *s)
{
    return (int64_t)s->N * tiles_h(s) * tiles_w(s);
}

/* Tile rows per block. */
static int64_t block_rows(const oc_conv_shape *s)
{
    size_t row = (size_t)16 * tiles_w(s) * (size_t)(s->C + s->K) * sizeof(float);
    int64_t r = (int64_t)(block_bytes / row), all = (int64_t)s->N * tiles_h(s);
    if (r < 1)
        r = 1;
    return r < all ? r : all;
}

size_t oc_wino_workspace(const oc_conv_shape *s)
{
    return (size_t)block_rows(s) * 16 * tiles_w(s) * (size_t)(s->C + s->K) * sizeof(float) + 64;
}

/* Bytes of one xi's packed U, rounded to keep every xi 64-byte aligned. */
static size_t xi_bytes(const oc_conv_shape *s)
{
    return (oc_gemm_b_bytes(s->K, s->C) + 63) & ~(size_t)63;
}

size_t oc_wino_pack_bytes(const oc_conv_shape *s)
{
    return 16 * xi_bytes(s);
}

/* U[xi][c][k] = (G g G^T)[xi] with G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1], written straight
 * into the packed B (C x K) of each xi's GEMM (oc_gemm_packed_index), for the filter g of input
 * channel c and output channel k: w[k][.][.][c], or with flip (backward-data, where the
 * convolution runs from dy's K channels to dx's C) w[c][2-.][2-.][k] of the forward weights.
 * Tasks take ranges of output channels. */
typedef struct {
    const oc_conv_shape *s; /* the convolution U serves (C inputs, K outputs) */
    const float *w;
    char *dst;
    int flip;
} pack_ctx;

static void pack_task(void *ctx, int tid, int nthreads)
{
    const pack_ctx *p = ctx;
    const int C = p->s->C, K = p->s->K;
    const size_t xb = xi_bytes(p->s) / sizeof(float);
    float *dst = (float *)p->dst;
    int64_t a, b;
    oc_split_range((K + 15) / 16, tid, nthreads, &a, &b);
    /* 16 output channels at a time: consecutive in a packed row (the GEMM's panels are 16 or
     * 32 columns wide), so each xi gets one contiguous run per (c, block) */
    for (int c = 0; c < C; c++)
        for (int64_t k0 = 16 * a; k0 < 16 * b && k0 < K; k0 += 16) {
            const int kn = K - k0 < 16 ? (int)(K - k0) : 16;
            float g[3][3][16], t[4][3][16], u[4][4][16];
            for (int r = 0; r < 3; r++)
                for (int q = 0; q < 3; q++)
                    for (int j = 0; j < kn; j++) {
                        const int64_t k = k0 + j;
                        g[r][q][j] = p->flip
                                         ? p->w[(((int64_t)c * 3 + 2 - r) * 3 + 2 - q) * K + k]
                                         : p->w[((k * 3 + r) * 3 + q) * C + c];
                    }
            for (int q = 0; q < 3; q++) /* G g */
                for (int j = 0; j < kn; j++) {
                    t[0][q][j] = g[0][q][j];
                    t[1][q][j] = 0.5f * (g[0][q][j] + g[1][q][j] + g[2][q][j]);
                    t[2][q][j] = 0.5f * (g[0][q][j] - g[1][q][j] + g[2][q][j]);
                    t[3][q][j] = g[2][q][j];
                }
            for (int i = 0; i < 4; i++) /* (G g) G^T */
                for (int j = 0; j < kn; j++) {
                    u[i][0][j] = t[i][0][j];
                    u[i][1][j] = 0.5f * (t[i][0][j] + t[i][1][j] + t[i][2][j]);
                    u[i][2][j] = 0.5f * (t[i][0][j] - t[i][1][j] + t[i][2][j]);
                    u[i][3][j] = t[i][2][j];
                }
            const size_t at = oc_gemm_packed_index(K, C, c, (int)k0, NULL);
            for (int xi = 0; xi < 16; xi++)
                memcpy(dst + xi * xb + at, u[xi / 4][xi % 4], (size_t)kn * sizeof(float));
        }
}

static void pack(const oc_conv_shape *s, const float *w, int flip, void *dst)
{
    pack_ctx p = {s, w, dst, flip};
    int padded;
    oc_gemm_packed_index(s->K, s->C, 0, 0, &padded);
    if (padded) /* the last panel's padding columns */
        memset(dst, 0, oc_wino_pack_bytes(s));
    oc_parallel_n(pack_task, &p, (int)((int64_t)s->C * s->K / 16384 + 1));
}

void oc_wino_pack(const oc_conv_shape *s, const float *w, void *dst)
{
    pack(s, w, 0, dst);
}

typedef struct {
    const oc_conv_shape *s;
    const float *x;
    const char *u;           /* packed U, xi_bytes apart */
    const oc_conv_epilogue *e; /* or NULL */
    const float *bias;       /* without e: added to y, or NULL */
    int accum;               /* y += instead of y = */
    float *y, *v, *m;        /* V [16][nt][C], M [16][nt][K] of the block */
    int64_t g0, g1, nt;      /* the block's tile rows (over the batch) and tiles */
} wino_ctx;

static void input_task(void *ctx, int tid, int nthreads)
{
    const wino_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int tw = tiles_w(s), th = tiles_h(s), C = s->C, H = s->H, W = s->W;
    int64_t a, b;
    oc_split_range(c->g1 - c->g0, tid, nthreads, &a, &b);
    for (int64_t g = c->g0 + a; g < c->g0 + b; g++) {
        const int64_t n = g / th;
        const int ty = (int)(g % th);
        const float *rows[4];
        for (int i = 0; i < 4; i++) {
            int h = 2 * ty - 1 + i;
            rows[i] = h >= 0 && h < H ? c->x + (n * H + h) * W * C : NULL;
        }
        for (int tx = 0; tx < tw; tx++) {
            const int col0 = 2 * tx - 1;
            int ok[4];
            for (int j = 0; j < 4; j++)
                ok[j] = col0 + j >= 0 && col0 + j < W;
            oc_wino_input_tile_avx512(rows, ok, C, col0, c->v + ((g - c->g0) * tw + tx) * C,
                                      c->nt * C);
        }
    }
}

static void gemm_task(void *ctx, int tid, int nthreads)
{
    const wino_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    int64_t a, b;
    oc_split_range(16, tid, nthreads, &a, &b);
    for (int64_t xi = a; xi < b; xi++) {
        const float *bp = (const float *)(c->u + xi * xi_bytes(s));
        /* nested in a task: runs on this thread. The product is never below OC_GEMM_SMALL
         * (oc_wino_shape: C * K > 16384, at least two tiles a row), the math is fp32 and the
         * CPU has AVX-512, so oc_gemm_pre never reads the floats of B: bp stands in for it. */
        oc_gemm_pre((int)c->nt, s->K, s->C, 1.0f, c->v + xi * c->nt * s->C, s->C, bp, bp, s->K,
                    0, 0.0f, c->m + xi * c->nt * s->K, s->K);
    }
}

static void output_task(void *ctx, int tid, int nthreads)
{
    const wino_ctx *c = ctx;
    const oc_conv_shape *s = c->s;
    const int tw = tiles_w(s), th = tiles_h(s), K = s->K, P = s->P, Q = s->Q;
    int64_t a, b;
    oc_split_range(c->g1 - c->g0, tid, nthreads, &a, &b);
    for (int64_t g = c->g0 + a; g < c->g0 + b; g++) {
        const int64_t n = g / th;
        const int p0 = 2 * (int)(g % th), two_rows = p0 + 1 < P;
        const int64_t m0 = (n * P + p0) * Q; /* first output pixel of the tile row */
        float *y0 = c->y + m0 * K, *y1 = two_rows ? y0 + (int64_t)Q * K : NULL;
        const int64_t m1 = m0 + (two_rows ? 2 : 1) * (int64_t)Q;
        for (int tx = 0; tx < tw; tx++)
            oc_wino_output_tile_avx512(c->m + ((g - c->g0) * tw + tx) * K, c->nt * K, K,
                                       y0 + (int64_t)2 * tx * K,
                                       y1 ? y1 + (int64_t)2 * tx * K : NULL, 2 * tx + 1 < Q,
                                       c->accum);
        if (c->e)
            oc_conv_epilogue_apply(c->e, m0, m1, 0, K, K, c->y);
        else if (c->bias)
            for (int64_t i = m0; i < m1; i++)
                for (int k = 0; k < K; k++)
                    c->y[i * K + k] += c->bias[k];
    }
}

/* y (=, or += with accum) the convolution of x by the packed u, then e or the bias. */
static void run(const oc_conv_shape *s, const float *x, const void *u, const oc_conv_epilogue *e,
                const float *bias, int accum, float *y, void *ws)
{
    const int tw = tiles_w(s);
    const int64_t rows = (int64_t)s->N * tiles_h(s), br = block_rows(s);
    float *v = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    for (int64_t g0 = 0; g0 < rows; g0 += br) {
        wino_ctx c = {s, x, u, e, bias, accum, y, v, NULL, g0, g0 + br < rows ? g0 + br : rows,
                      0};
        c.nt = (c.g1 - c.g0) * tw;
        c.m = v + 16 * c.nt * s->C;
        oc_parallel_n(input_task, &c, (int)(c.g1 - c.g0));
        oc_parallel_n(gemm_task, &c, 16);
        oc_parallel_n(output_task, &c, (int)(c.g1 - c.g0));
    }
}

void oc_wino_fwd_fused(const oc_conv_shape *s, const float *x, const void *u,
                       const oc_conv_epilogue *e, float *y, void *ws)
{
    run(s, x, u, e, NULL, 0, y, ws);
}

/* The training passes' workspace: the packed U, then the blocks' V and M. */
size_t oc_wino_train_workspace(const oc_conv_shape *s)
{
    return oc_wino_pack_bytes(s) + oc_wino_workspace(s) + 64;
}

void oc_wino_fwd(const oc_conv_shape *s, const float *x, const float *w, const float *b,
                 float *y, void *ws)
{
    char *u = (char *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    pack(s, w, 0, u);
    run(s, x, u, NULL, b, 0, y, u + oc_wino_pack_bytes(s));
}

oc_conv_shape oc_wino_transposed(const oc_conv_shape *s)
{
    oc_conv_shape t = *s; /* stride 1, padding 1: dy is N x H x W x K, dx N x H x W x C */
    t.C = s->K;
    t.K = s->C;
    return t;
}

void oc_wino_bwd_data(const oc_conv_shape *s, const float *dy, const float *w, float *dx,
                      void *ws, int set)
{
    const oc_conv_shape t = oc_wino_transposed(s);
    char *u = (char *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    pack(&t, w, 1, u);
    run(&t, dy, u, NULL, NULL, !set, dx, u + oc_wino_pack_bytes(&t));
}
