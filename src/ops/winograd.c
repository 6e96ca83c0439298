/* Winograd F(2x2, 3x3) convolution for the fused inference forward of wide 3x3 layers
 * (stride 1, padding 1, one group), with the weights transformed and packed once
 * (oc_conv2d_fused_pack, for a model whose weights stay fixed).
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

void oc_wino_input_tile_avx512(const float *const *rows, const int *cols_ok, int C, int W,
                               int col0, float *v, ptrdiff_t xi_stride);
void oc_wino_output_tile_avx512(const float *m, ptrdiff_t xi_stride, int K, float *y0,
                                float *y1, int two_cols);

/* Above this C * K Winograd beats the direct kernel on Zen 5 (bench/conv.c, fused with kept
 * weights, 2 threads: 256 x 256 channels 1.3x, 512 x 512 2x; 128 x 128 0.93x, 64 x 64 0.7x:
 * thinner GEMMs, and the transforms' memory passes weigh more). */
#define WINO_MIN_CK (128 * 128)
/* Bytes of V and M of one block of tiles (oc_wino_set_block_bytes changes it, for tests). */
static size_t block_bytes = (size_t)16 << 20;

void oc_wino_set_block_bytes(size_t bytes);
void oc_wino_set_block_bytes(size_t bytes)
{
    block_bytes = bytes ? bytes : (size_t)16 << 20;
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

/* U[xi][c][k] = (G g G^T)[xi] for the filter g = w[k][.][.][c], G = [1 0 0; .5 .5 .5;
 * .5 -.5 .5; 0 0 1], each xi packed for oc_gemm_pre as the B (C x K) of its GEMM. */
int oc_wino_pack(const oc_conv_shape *s, const float *w, void *dst)
{
    const int C = s->C, K = s->K;
    float *u = oc_alloc((size_t)16 * C * K * sizeof(float));
    if (!u)
        return -1;
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            float g[3][3], t[4][3];
            for (int r = 0; r < 3; r++)
                for (int q = 0; q < 3; q++)
                    g[r][q] = w[(((int64_t)k * 3 + r) * 3 + q) * C + c];
            for (int q = 0; q < 3; q++) { /* G g */
                t[0][q] = g[0][q];
                t[1][q] = 0.5f * (g[0][q] + g[1][q] + g[2][q]);
                t[2][q] = 0.5f * (g[0][q] - g[1][q] + g[2][q]);
                t[3][q] = g[2][q];
            }
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                float *ui = u + ((int64_t)4 * i * C + c) * K + k;
                const int64_t xs = (int64_t)C * K;
                ui[0] = t[i][0];
                ui[xs] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                ui[2 * xs] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                ui[3 * xs] = t[i][2];
            }
        }
    for (int xi = 0; xi < 16; xi++)
        oc_gemm_pack_b(0, K, C, u + (int64_t)xi * C * K, K,
                       (float *)((char *)dst + xi * xi_bytes(s)));
    oc_free(u);
    return 0;
}

typedef struct {
    const oc_conv_shape *s;
    const float *x;
    const char *u;           /* packed U, xi_bytes apart */
    const oc_conv_epilogue *e;
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
            oc_wino_input_tile_avx512(rows, ok, C, W, col0,
                                      c->v + ((g - c->g0) * tw + tx) * C, c->nt * C);
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
        /* nested in a task: runs on this thread. The product is never small enough for
         * oc_gemm_pre to take the unpacked B (oc_wino_shape: C * K > 16384 with at least two
         * tiles a row), so bp also stands in for it. */
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
        for (int tx = 0; tx < tw; tx++)
            oc_wino_output_tile_avx512(c->m + ((g - c->g0) * tw + tx) * K, c->nt * K, K,
                                       y0 + (int64_t)2 * tx * K,
                                       y1 ? y1 + (int64_t)2 * tx * K : NULL, 2 * tx + 1 < Q);
        oc_conv_epilogue_apply(c->e, m0, m0 + (two_rows ? 2 : 1) * (int64_t)Q, 0, K, K, c->y);
    }
}

void oc_wino_fwd_fused(const oc_conv_shape *s, const float *x, const void *u,
                       const oc_conv_epilogue *e, float *y, void *ws)
{
    const int tw = tiles_w(s);
    const int64_t rows = (int64_t)s->N * tiles_h(s), br = block_rows(s);
    float *v = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    for (int64_t g0 = 0; g0 < rows; g0 += br) {
        wino_ctx c = {s, x, u, e, y, v, NULL, g0, g0 + br < rows ? g0 + br : rows, 0};
        c.nt = (c.g1 - c.g0) * tw;
        c.m = v + 16 * c.nt * s->C;
        oc_parallel_n(input_task, &c, (int)(c.g1 - c.g0));
        oc_parallel_n(gemm_task, &c, 16);
        oc_parallel_n(output_task, &c, (int)(c.g1 - c.g0));
    }
}
