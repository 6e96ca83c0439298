/* Pooling over NHWC activations: max (with argmax for backward), average (PyTorch's
 * count_include_pad both ways) and global average. Every loop runs innermost over channels,
 * the contiguous dimension. Forward splits output rows (n, p) across threads; backward splits
 * images, so each thread owns its images' dx and adds into it in a fixed order. */
#include "core/core.h"
#include "ops.h"

#include <math.h>
#include <string.h>

/* PyTorch's rules (floor mode): pad at most half the window, so every window holds at least one
 * real input and no average divides by zero. */
int oc_pool_shape_init(oc_pool_shape *s)
{
    int64_t ph, qw;
    if (!s)
        return -1;
    if (s->N < 1 || s->H < 1 || s->W < 1 || s->C < 1 || s->R < 1 || s->S < 1 ||
        s->stride_h < 1 || s->stride_w < 1 || s->pad_h < 0 || s->pad_w < 0 ||
        2 * (int64_t)s->pad_h > s->R || 2 * (int64_t)s->pad_w > s->S)
        return -1;
    if ((int64_t)s->H + 2 * (int64_t)s->pad_h < s->R ||
        (int64_t)s->W + 2 * (int64_t)s->pad_w < s->S)
        return -1;
    ph = ((int64_t)s->H + 2 * (int64_t)s->pad_h - s->R) / s->stride_h + 1;
    qw = ((int64_t)s->W + 2 * (int64_t)s->pad_w - s->S) / s->stride_w + 1;
    if ((int64_t)s->N * s->H * s->W > INT32_MAX || (int64_t)s->N * ph * qw > INT32_MAX)
        return -1;
    s->P = (int)ph;
    s->Q = (int)qw;
    return 0;
}

/* Window of output (p, q) clipped to the input: rows [*h0, *h1), columns [*w0, *w1). */
static void window(const oc_pool_shape *s, int p, int q, int *h0, int *h1, int *w0, int *w1)
{
    int hs = p * s->stride_h - s->pad_h, ws = q * s->stride_w - s->pad_w;
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = hs + s->R < s->H ? hs + s->R : s->H;
    *w1 = ws + s->S < s->W ? ws + s->S : s->W;
}

/* Average divisor as PyTorch's avg_pool2d: with count_include_pad the window clipped to the
 * PADDED input, else the number of real inputs. */
static float avg_divisor(const oc_pool_shape *s, int p, int q)
{
    int h0, h1, w0, w1;
    if (s->count_include_pad) {
        int hs = p * s->stride_h - s->pad_h, ws = q * s->stride_w - s->pad_w;
        int he = hs + s->R < s->H + s->pad_h ? hs + s->R : s->H + s->pad_h;
        int we = ws + s->S < s->W + s->pad_w ? ws + s->S : s->W + s->pad_w;
        return (float)((he - hs) * (we - ws));
    }
    window(s, p, q, &h0, &h1, &w0, &w1);
    return (float)((h1 - h0) * (w1 - w0));
}

typedef struct {
    const oc_pool_shape *s;
    const float *x, *dy;
    float *y, *dx;
    int32_t *argmax;
    const int32_t *argmax_in;
    int set; /* maxpool backward: write dx (as if accumulated onto zeros) */
} pool_ctx;

/* AVX-512 twin of max_window (pool_avx512.c); the prototype must match that file. */
void oc_maxpool_window_avx512(int C, int W, const float *xn, int h0, int h1, int w0, int w1,
                              float *y, int32_t *am);

static int simd_allowed = 1;

/* Test hook, no public API (tests/unit/test_pool.c declares it): 0 forces the portable loop so
 * it is tested on machines with AVX-512 too. Not thread safe: call it between kernel calls. */
void oc_pool_allow_simd(int allow);
void oc_pool_allow_simd(int allow)
{
    simd_allowed = allow != 0;
}

/* Maximum and its flat index (h * W + w) over the window rows [h0, h1), columns [w0, w1) of one
 * image xn, per channel. Every window holds a real input (oc_pool_shape_init), so the first one
 * seeds the maximum, as the first comparison against -inf would. PyTorch's test: a strict '>'
 * keeps the first maximum in row-major window order, and a NaN always takes over, so NaNs
 * propagate. */
static void max_window(int C, int W, const float *xn, int h0, int h1, int w0, int w1,
                       float *restrict y, int32_t *restrict am)
{
    if (simd_allowed && __builtin_cpu_supports("avx512f")) {
        oc_maxpool_window_avx512(C, W, xn, h0, h1, w0, w1, y, am);
        return;
    }
    memcpy(y, xn + ((int64_t)h0 * W + w0) * C, (size_t)C * sizeof *y);
    for (int ch = 0; ch < C; ch++)
        am[ch] = h0 * W + w0;
    for (int h = h0; h < h1; h++)
        for (int w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
            const float *restrict xp = xn + ((int64_t)h * W + w) * C;
            for (int ch = 0; ch < C; ch++)
                if (xp[ch] > y[ch] || isnan(xp[ch])) {
                    y[ch] = xp[ch];
                    am[ch] = h * W + w;
                }
        }
}

/* The forward's input usually comes straight from a convolution too large for the caches, and
 * the hardware prefetcher runs too little ahead of the window's two row streams: each window
 * fetches two pixels of each of its rows MAXPOOL_AHEAD columns past its end (two stride-2
 * windows ahead); past a row's end that continues into the rows below, where the next row of
 * windows starts; never past the image. airnet's pools, batch 1024, bf16, 2 threads
 * (`ocelot bench airnet --train --batch 1024 --precision bf16 --profile`): forward 42-43 ->
 * 30-31 ms per step. A macro: gcc drops a call to a function of prefetches alone wherever it
 * does not inline it (conv2d_avx512.c). */
#define MAXPOOL_AHEAD 4
#define POOL_PREFETCH(xn, H, W, C, h0, h1, w)                                                     \
    do {                                                                                          \
        for (int h_ = (h0); h_ < (h1); h_++) {                                                    \
            const int64_t o_ = ((int64_t)h_ * (W) + (w)) * (C);                                   \
            if (o_ + 2 * (C) <= (int64_t)(H) * (W) * (C))                                         \
                for (int b_ = 0; b_ < 2 * (C) * (int)sizeof(float); b_ += 64)                     \
                    __builtin_prefetch((const char *)((xn) + o_) + b_);                           \
        }                                                                                         \
    } while (0)

static void maxpool_fwd_task(void *ctx, int tid, int nt)
{
    const pool_ctx *c = ctx;
    const oc_pool_shape *s = c->s;
    const int C = s->C;
    int64_t a, e;
    oc_split_range((int64_t)s->N * s->P, tid, nt, &a, &e);
    for (int64_t j = a; j < e; j++) {
        int n = (int)(j / s->P), p = (int)(j % s->P);
        const float *xn = c->x + (int64_t)n * s->H * s->W * C;
        for (int q = 0; q < s->Q; q++) {
            float *restrict yp = c->y + (j * s->Q + q) * C;
            int32_t *restrict ap = c->argmax + (j * s->Q + q) * C;
            int h0, h1, w0, w1;
            window(s, p, q, &h0, &h1, &w0, &w1);
            POOL_PREFETCH(xn, s->H, s->W, C, h0, h1, w1 + MAXPOOL_AHEAD);
            max_window(C, s->W, xn, h0, h1, w0, w1, yp, ap);
        }
    }
}

void oc_maxpool_fwd(const oc_pool_shape *s, const float *x, float *y, int32_t *argmax)
{
    pool_ctx c = {s, x, NULL, y, NULL, argmax, NULL, 0};
    oc_parallel_n(maxpool_fwd_task, &c, s->N * s->P);
}

static void maxpool_bwd_task(void *ctx, int tid, int nt)
{
    const pool_ctx *c = ctx;
    const oc_pool_shape *s = c->s;
    const int C = s->C;
    const int64_t PQ = (int64_t)s->P * s->Q, HW = (int64_t)s->H * s->W;
    int64_t a, e;
    oc_split_range(s->N, tid, nt, &a, &e);
    for (int64_t n = a; n < e; n++) {
        float *dxn = c->dx + n * HW * C;
        if (c->set) /* this image's gradient, zeroed while it is about to be in cache */
            memset(dxn, 0, (size_t)(HW * C) * sizeof *dxn);
        for (int64_t i = n * PQ; i < (n + 1) * PQ; i++) {
            const float *d = c->dy + i * C;
            const int32_t *am = c->argmax_in + i * C;
            for (int ch = 0; ch < C; ch++)
                dxn[(int64_t)am[ch] * C + ch] += d[ch];
        }
    }
}

void oc_maxpool_bwd(const oc_pool_shape *s, const int32_t *argmax, const float *dy, float *dx)
{
    pool_ctx c = {s, NULL, dy, NULL, dx, NULL, argmax, 0};
    oc_parallel_n(maxpool_bwd_task, &c, s->N);
}

void oc_maxpool_bwd_set(const oc_pool_shape *s, const int32_t *argmax, const float *dy, float *dx)
{
    pool_ctx c = {s, NULL, dy, NULL, dx, NULL, argmax, 1};
    oc_parallel_n(maxpool_bwd_task, &c, s->N);
}

static void avgpool_fwd_task(void *ctx, int tid, int nt)
{
    const pool_ctx *c = ctx;
    const oc_pool_shape *s = c->s;
    const int C = s->C;
    int64_t a, e;
    oc_split_range((int64_t)s->N * s->P, tid, nt, &a, &e);
    for (int64_t j = a; j < e; j++) {
        int n = (int)(j / s->P), p = (int)(j % s->P);
        for (int q = 0; q < s->Q; q++) {
            float *restrict yp = c->y + (j * s->Q + q) * C;
            int h0, h1, w0, w1;
            float inv = 1.0f / avg_divisor(s, p, q);
            window(s, p, q, &h0, &h1, &w0, &w1);
            memset(yp, 0, (size_t)C * sizeof(float));
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++) {
                    const float *restrict xp = c->x + (((int64_t)n * s->H + h) * s->W + w) * C;
                    for (int ch = 0; ch < C; ch++)
                        yp[ch] += xp[ch];
                }
            for (int ch = 0; ch < C; ch++)
                yp[ch] *= inv;
        }
    }
}

void oc_avgpool_fwd(const oc_pool_shape *s, const float *x, float *y)
{
    pool_ctx c = {s, x, NULL, y, NULL, NULL, NULL, 0};
    oc_parallel_n(avgpool_fwd_task, &c, s->N * s->P);
}

static void avgpool_bwd_task(void *ctx, int tid, int nt)
{
    const pool_ctx *c = ctx;
    const oc_pool_shape *s = c->s;
    const int C = s->C;
    int64_t a, e;
    oc_split_range(s->N, tid, nt, &a, &e);
    for (int64_t n = a; n < e; n++)
        for (int p = 0; p < s->P; p++)
            for (int q = 0; q < s->Q; q++) {
                const float *restrict d = c->dy + ((n * s->P + p) * s->Q + q) * C;
                int h0, h1, w0, w1;
                float inv = 1.0f / avg_divisor(s, p, q);
                window(s, p, q, &h0, &h1, &w0, &w1);
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        float *restrict dxp = c->dx + ((n * s->H + h) * s->W + w) * C;
                        for (int ch = 0; ch < C; ch++)
                            dxp[ch] += d[ch] * inv;
                    }
            }
}

void oc_avgpool_bwd(const oc_pool_shape *s, const float *dy, float *dx)
{
    pool_ctx c = {s, NULL, dy, NULL, dx, NULL, NULL, 0};
    oc_parallel_n(avgpool_bwd_task, &c, s->N);
}

/* ---------------------------------------------------------------- global average */

typedef struct {
    int N, HW, C;
    const float *in;
    float *out;
} gap_ctx;

static void gap_fwd_task(void *ctx, int tid, int nt)
{
    const gap_ctx *c = ctx;
    const float inv = 1.0f / (float)c->HW;
    int64_t a, e;
    oc_split_range(c->N, tid, nt, &a, &e);
    for (int64_t n = a; n < e; n++) {
        float *restrict yp = c->out + n * c->C;
        memset(yp, 0, (size_t)c->C * sizeof(float));
        for (int64_t i = 0; i < c->HW; i++) {
            const float *restrict xp = c->in + (n * c->HW + i) * c->C;
            for (int ch = 0; ch < c->C; ch++)
                yp[ch] += xp[ch];
        }
        for (int ch = 0; ch < c->C; ch++)
            yp[ch] *= inv;
    }
}

void oc_global_avgpool_fwd(int N, int HW, int C, const float *x, float *y)
{
    gap_ctx c = {N, HW, C, x, y};
    oc_parallel_n(gap_fwd_task, &c, N);
}

static void gap_bwd_task(void *ctx, int tid, int nt)
{
    const gap_ctx *c = ctx;
    const float inv = 1.0f / (float)c->HW;
    int64_t a, e;
    oc_split_range(c->N, tid, nt, &a, &e);
    for (int64_t n = a; n < e; n++) {
        const float *restrict d = c->in + n * c->C;
        for (int64_t i = 0; i < c->HW; i++) {
            float *restrict dxp = c->out + (n * c->HW + i) * c->C;
            for (int ch = 0; ch < c->C; ch++)
                dxp[ch] += d[ch] * inv;
        }
    }
}

void oc_global_avgpool_bwd(int N, int HW, int C, const float *dy, float *dx)
{
    gap_ctx c = {N, HW, C, dy, dx};
    oc_parallel_n(gap_bwd_task, &c, N);
}
