/* Dense (fully connected) layer, y = x w^T + b with PyTorch's weight layout w[O][I]
 * (torch.nn.functional.linear). Forward and both backward products are oc_gemm calls; the
 * _ref versions are the plain loops the tests hold them to. */
#include "ops.h"

#include <string.h>

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

void oc_dense_fwd(int N, int I, int O, const float *x, const float *w, const float *b, float *y)
{
    if (N <= 0 || O <= 0)
        return;
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
