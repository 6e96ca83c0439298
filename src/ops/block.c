/* The fused inference forward of an inverted-residual block (MobileNetV2's):
 *
 *   x --expand 1x1--> h --depthwise RxS / stride--> d --project 1x1 (+ residual)--> y
 *
 * each convolution with its fused epilogue (ops.h), from weights packed once; or of one
 * without the expand layer (h = x, MobileNetV2's first block). Run one layer at a time, h and
 * d (6 times wider than x and y) go through memory: at 224x224, batch 1, the first blocks'
 * h and d are 1.8-4.8 MB each, more than a core's L2, and each is written once and read
 * back. Here each thread takes a range of output rows and walks it in bands of a few
 * rows: it computes the rows of h the band's depthwise rows need (keeping the rows the next
 * band shares with this one), then the band's rows of d, then the band's rows of y. h and d
 * then only ever exist as a band, in the thread's L2.
 *
 * Every value is computed by the same kernels, in the same order, as the three layers' own
 * fused forwards (oc_conv2d_fwd_fused: the GEMM with its epilogue in registers, the AVX-512
 * depthwise row kernel), so the block gives their bits, for any band size and thread count;
 * only the rows of h at the edges of two threads' ranges are computed twice. */
#include "core/core.h"
#include "ops.h"

#include <string.h>

/* conv2d.c / conv2d_avx512.c */
int oc_conv2d_avx512_on(void);
void oc_conv2d_dw_fwd_row_avx512(const oc_conv_shape *s, const float *x, const float *wt,
                                 const float *b, const oc_conv_epilogue *e, float *y, int n,
                                 int p);

/* Band buffers per thread: about this many bytes of h and d rows, so that a band's h rows, its
 * d rows and the 1x1 weights stay in a 1 MiB L2. */
static size_t band_budget = 384 * 1024;

void oc_block_set_band_bytes(size_t bytes)
{
    band_budget = bytes ? bytes : 384 * 1024;
}

static int pointwise(const oc_conv_shape *s)
{
    return s->R == 1 && s->S == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 &&
           s->pad_w == 0 && s->groups == 1;
}

int oc_block_fused_ok(const oc_conv_shape *ex, const oc_conv_shape *dw, const oc_conv_shape *pr,
                      oc_act act_ex, oc_act act_pr)
{
    if (ex && !(oc_gemm_epi_act(act_ex) && pointwise(ex) && dw->C == ex->K && dw->H == ex->P &&
                dw->W == ex->Q && dw->N == ex->N))
        return 0;
    return oc_conv2d_avx512_on() && oc_math_get() != OC_MATH_BF16 && oc_gemm_epi_act(act_pr) &&
           pointwise(pr) && dw->groups == dw->C && dw->K == dw->C && pr->C == dw->K &&
           pr->H == dw->P && pr->W == dw->Q && pr->N == dw->N && dw->dil_h == 1 &&
           dw->dil_w == 1 && dw->R <= 7 && dw->S <= 7;
}

/* Rows of the band buffers for bands of b output rows. */
static int in_rows(const oc_conv_shape *dw, int b)
{
    return (b - 1) * dw->stride_h + dw->R;
}

/* Output rows per band: as many as the budget holds, at least 1. */
static int band_rows(const oc_conv_shape *dw)
{
    const size_t row_in = (size_t)dw->W * dw->C * sizeof(float);
    const size_t row_out = (size_t)dw->Q * dw->C * sizeof(float);
    int b = 1;
    while (b < dw->P && (size_t)in_rows(dw, b + 1) * row_in + (size_t)(b + 1) * row_out <=
                            band_budget)
        b++;
    return b;
}

/* A thread's band buffers (h rows, then d rows), in whole cache lines. */
static size_t per_thread_bytes(const oc_conv_shape *dw)
{
    const int b = band_rows(dw);
    size_t bytes = ((size_t)in_rows(dw, b) * dw->W + (size_t)b * dw->Q) * dw->C * sizeof(float);
    return (bytes + 63) / 64 * 64;
}

size_t oc_block_fused_workspace(const oc_conv_shape *dw, int threads)
{
    return per_thread_bytes(dw) * (size_t)(threads > 0 ? threads : 1);
}

typedef struct {
    const oc_conv_shape *ex, *dw, *pr;
    const float *x, *w_ex, *w_pr;
    const oc_conv_epilogue *e_ex, *e_dw, *e_pr;
    float *y;
    unsigned char *ws;
    size_t ws_per_thread;
} block_ctx;

/* Rows [h0, h1) of image n's h into buf (rows of W*C): the expand GEMM and its epilogue. */
static void expand_rows(const block_ctx *c, int n, int h0, int h1, float *buf)
{
    const oc_conv_shape *ex = c->ex;
    const int64_t m0 = ((int64_t)n * ex->P + h0) * ex->Q; /* its first pixel */
    const oc_gemm_epi ge = oc_conv_epilogue_cols(c->e_ex, 0, NULL, 0);
    oc_gemm_pre_epi((h1 - h0) * ex->Q, ex->K, ex->C, c->x + m0 * ex->C, ex->C,
                    c->e_ex->w_packed, c->w_ex, ex->C, 1, buf, ex->K, &ge);
}

static void block_task(void *ctx, int tid, int nt)
{
    const block_ctx *c = ctx;
    const oc_conv_shape *dw = c->dw, *pr = c->pr;
    const int S = dw->stride_h, R = dw->R, C = dw->C, band = band_rows(dw);
    const size_t in_floats = (size_t)in_rows(dw, band) * dw->W * C;
    float *hbuf = (float *)(c->ws + (size_t)tid * c->ws_per_thread);
    float *dbuf = hbuf + in_floats;
    const oc_conv_epilogue *e = c->e_pr;
    int64_t a, b;
    oc_split_range((int64_t)dw->N * dw->P, tid, nt, &a, &b);
    int held_n = -1, held0 = 0, held1 = 0; /* rows [held0, held1) of image held_n's h */
    for (int64_t j = a; j < b;) {
        const int n = (int)(j / dw->P), p0 = (int)(j % dw->P);
        int p1 = p0 + band < dw->P ? p0 + band : dw->P;
        if (p1 - p0 > b - j)
            p1 = p0 + (int)(b - j);
        /* the rows of h that output rows [p0, p1) read */
        const int top = p0 * S - dw->pad_h;
        const int h0 = top > 0 ? top : 0;
        const int h1 = (p1 - 1) * S - dw->pad_h + R < dw->H ? (p1 - 1) * S - dw->pad_h + R
                                                            : dw->H;
        const float *hrows = c->x + ((int64_t)n * dw->H + h0) * dw->W * C; /* no expand */
        if (c->ex) {
            int have = 0;
            if (held_n == n && held0 <= h0 && h0 < held1) { /* keep the shared rows */
                have = held1 - h0;
                memmove(hbuf, hbuf + (size_t)(h0 - held0) * dw->W * C,
                        (size_t)have * dw->W * C * sizeof(float));
            }
            if (h0 + have < h1)
                expand_rows(c, n, h0 + have, h1, hbuf + (size_t)have * dw->W * C);
            held_n = n, held0 = h0, held1 = h1;
            hrows = hbuf;
        }
        /* the band as an image of h1 - h0 rows and p1 - p0 output rows, whose top padding is
         * what remains of the image's: the row kernel skips the same taps as in the whole
         * image (rows above 0, and at the bottom rows from h1 = min(H, ...) on) */
        oc_conv_shape bs = *dw;
        bs.N = 1;
        bs.H = h1 - h0;
        bs.pad_h = h0 - top;
        bs.P = p1 - p0;
        for (int p = 0; p < p1 - p0; p++)
            oc_conv2d_dw_fwd_row_avx512(&bs, hrows, c->e_dw->w_packed, NULL, c->e_dw, dbuf, 0, p);
        /* the band's output rows */
        const int64_t m0 = ((int64_t)n * pr->H + p0) * pr->W;
        const oc_gemm_epi ge = oc_conv_epilogue_cols(e, 0, e->res ? e->res + m0 * pr->K : NULL,
                                                      pr->K);
        oc_gemm_pre_epi((p1 - p0) * pr->W, pr->K, pr->C, dbuf, pr->C, e->w_packed, c->w_pr, pr->C,
                        1, c->y + m0 * pr->K, pr->K, &ge);
        j += p1 - p0;
    }
}

void oc_block_fwd_fused(const oc_conv_shape *ex, const oc_conv_shape *dw,
                        const oc_conv_shape *pr, const float *x, const float *w_ex,
                        const float *w_pr, const oc_conv_epilogue *e_ex,
                        const oc_conv_epilogue *e_dw, const oc_conv_epilogue *e_pr, float *y,
                        void *ws, size_t ws_bytes)
{
    block_ctx c = {ex, dw, pr, x, w_ex, w_pr, e_ex, e_dw, e_pr, y, ws, per_thread_bytes(dw)};
    const int64_t rows = (int64_t)dw->N * dw->P;
    int nt = oc_get_threads();
    int fit = (int)(ws_bytes / c.ws_per_thread);
    OC_ASSERT(fit >= 1 && (!ex || e_ex->w_packed) && e_dw->w_packed && e_pr->w_packed &&
              !e_dw->res && oc_block_fused_ok(ex, dw, pr, ex ? e_ex->act : OC_ACT_IDENTITY,
                                              e_pr->act));
    nt = nt < fit ? nt : fit;
    nt = (int64_t)nt < rows ? nt : (int)rows;
    oc_parallel_n(block_task, &c, nt);
}
