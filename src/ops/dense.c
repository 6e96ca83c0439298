/* Dense (fully connected) layer, y = x w^T + b with PyTorch's weight layout w[O][I]
 * (torch.nn.functional.linear). Forward and both backward products are oc_gemm calls, except
 * the forward of a few rows (batch-1 inference): there the GEMM would pack all of w (read
 * strided, once per call) to use each element once, so the rows of w are instead read in place
 * as dot products (gemv below; AVX-512 in dense_avx512.c). The _ref versions are the plain
 * loops the tests hold them to. */
#include "core/core.h"
#include "ops.h"

#include <string.h>

/* Batches up to this many rows take the dot-product path in forward. */
#define OC_DENSE_GEMV_MAX_N 4
/* Output units per thread below which another thread does not pay for waking it. */
#define OC_DENSE_GEMV_MIN_O 64

/* AVX-512 twin of gemv_rows (dense_avx512.c); the prototype must match that file. */
void oc_dense_gemv_rows_avx512(int N, int I, int O, const float *x, const float *w,
                               const float *b, float *y, int o0, int o1);

void oc_dense_fwd_ref(int N, int I, int O, const float *x, const float *w, const float *b,
                      float *y)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double acc = b ? (double)b[o] : 0.0;
            for (int i = 0; i < I; i++)
                acc += (double)x[(size_t)n * I + i] * (double)w[(size_t)o * I + i];
            y[(size_t)n * O + o] = (float)acc;
        }
}

/* y[n][o] = b[o] + x[n] . w[o] for o in [o0, o1), eight partial sums per dot product. */
static void gemv_rows(int N, int I, int O, const float *x, const float *w, const float *b,
                      float *y, int o0, int o1)
{
    for (int o = o0; o < o1; o++) {
        const float *wo = w + (size_t)o * I;
        for (int n = 0; n < N; n++) {
            const float *xn = x + (size_t)n * I;
            float acc[8] = {0};
            int i = 0;
            for (; i + 8 <= I; i += 8)
                for (int l = 0; l < 8; l++)
                    acc[l] += xn[i + l] * wo[i + l];
            for (; i < I; i++)
                acc[0] += xn[i] * wo[i];
            float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            y[(size_t)n * O + o] = b ? b[o] + s : s;
        }
    }
}

static int simd_allowed = 1;

/* Test hook, no public API (tests/unit/test_dense.c declares it): 0 forces the portable
 * kernel so it is tested on machines with AVX-512 too. Not thread safe. */
void oc_dense_allow_simd(int allow);
void oc_dense_allow_simd(int allow)
{
    simd_allowed = allow != 0;
}

typedef struct {
    int N, I, O;
    const float *x, *w, *b;
    float *y;
} gemv_ctx;

/* Threads take disjoint ranges of output units; each value is summed in a fixed order. */
static void gemv_task(void *ctx, int tid, int nt)
{
    const gemv_ctx *c = ctx;
    int64_t o0, o1;
    oc_split_range(c->O, tid, nt, &o0, &o1);
    if (o1 <= o0)
        return;
    if (simd_allowed && __builtin_cpu_supports("avx512f"))
        oc_dense_gemv_rows_avx512(c->N, c->I, c->O, c->x, c->w, c->b, c->y, (int)o0, (int)o1);
    else
        gemv_rows(c->N, c->I, c->O, c->x, c->w, c->b, c->y, (int)o0, (int)o1);
}

void oc_dense_fwd(int N, int I, int O, const float *x, const float *w, const float *b, float *y)
{
    if (N <= 0 || O <= 0)
        return;
    if (N <= OC_DENSE_GEMV_MAX_N && oc_math_get() != OC_MATH_BF16) {
        gemv_ctx c = {N, I, O, x, w, b, y};
        oc_parallel_n(gemv_task, &c, O / OC_DENSE_GEMV_MIN_O + 1);
        return;
    }
    /* Start y at the bias and let the GEMM accumulate onto it (beta = 1): one pass over y. */
    if (b) {
        for (int n = 0; n < N; n++)
            memcpy(y + (size_t)n * O, b, (size_t)O * sizeof *b);
    }
    /* y[N][O] (+)= x[N][I] * w[O][I]^T */
    oc_gemm(0, 1, N, O, I, 1.0f, x, I, w, I, b ? 1.0f : 0.0f, y, O);
}

void oc_dense_bwd_ref(int N, int I, int O, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db)
{
    if (dx)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < I; i++) {
                double acc = 0.0;
                for (int o = 0; o < O; o++)
                    acc += (double)dy[(size_t)n * O + o] * (double)w[(size_t)o * I + i];
                dx[(size_t)n * I + i] += (float)acc;
            }
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                acc += (double)dy[(size_t)n * O + o] * (double)x[(size_t)n * I + i];
            dw[(size_t)o * I + i] += (float)acc;
        }
    if (db)
        for (int o = 0; o < O; o++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++)
                acc += (double)dy[(size_t)n * O + o];
            db[o] += (float)acc;
        }
}

void oc_dense_bwd(int N, int I, int O, const float *x, const float *w, const float *dy, float *dx,
                  float *dw, float *db)
{
    if (N <= 0 || I <= 0 || O <= 0)
        return;
    /* dx[N][I] += dy[N][O] * w[O][I] */
    if (dx)
        oc_gemm(0, 0, N, I, O, 1.0f, dy, O, w, I, 1.0f, dx, I);
    /* dw[O][I] += dy[N][O]^T * x[N][I] */
    oc_gemm(1, 0, O, I, N, 1.0f, dy, O, x, I, 1.0f, dw, I);
    /* db[o] += sum_n dy[n][o], summed over n in order in float like the GEMM paths; the loop
     * runs over o innermost so it reads dy row by row. */
    if (db)
        for (int n = 0; n < N; n++) {
            const float *d = dy + (size_t)n * O;
            for (int o = 0; o < O; o++)
                db[o] += d[o];
        }
}
