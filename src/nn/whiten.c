/* Data-dependent initialisation of a whitening first layer (Keller Jordan's airbench, after
 * the ZCA-like patch whitening of tysam-code's hlb-CIFAR10): a conv2d whose 2 d filters
 * (d = R S C) are the eigenvectors of the R x S x C patch covariance, each divided by
 * sqrt(eigenvalue + eps), and their negatives. Its output is decorrelated with unit variance
 * per direction, so the first trained layer sees whitened input from step one. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Uncentred covariance cov[d][d] of every R x S patch (stride 1, no padding) of x[n][H][W][C],
 * the patch flattened in (r, s, c) order — the conv weight's [R][S][C] order. */
static void patch_covariance(const float *x, int n, int H, int W, int C, int R, int S,
                             double *cov)
{
    int d = R * S * C;
    double *p = malloc((size_t)d * sizeof *p);
    int64_t count = 0;
    memset(cov, 0, (size_t)d * (size_t)d * sizeof *cov);
    if (!p)
        return;
    for (int i = 0; i < n; i++)
        for (int y = 0; y + R <= H; y++)
            for (int xx = 0; xx + S <= W; xx++) {
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < S; s++)
                        for (int c = 0; c < C; c++)
                            p[(r * S + s) * C + c] =
                                x[(((size_t)i * H + (size_t)(y + r)) * W + (size_t)(xx + s)) * C +
                                  (size_t)c];
                for (int a = 0; a < d; a++)
                    for (int b = a; b < d; b++)
                        cov[a * d + b] += p[a] * p[b];
                count++;
            }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            cov[a * d + b] /= (double)count;
            cov[b * d + a] = cov[a * d + b];
        }
    free(p);
}

int oc_model_num_whiten(const oc_model *m)
{
    int k = 0;
    for (int i = 1; m && i < m->n_nodes; i++)
        k += m->nodes[i].op == OC_OP_CONV2D && m->nodes[i].init == OC_INIT_WHITEN;
    return k;
}

oc_status oc_model_init_whiten(oc_model *m, const float *x, int n, double eps, int *count)
{
    int done = 0;
    if (count)
        *count = 0;
    if (!m || !x || n < 1 || !(eps >= 0))
        return oc_fail(OC_ERR_ARG, "oc_model_init_whiten: NULL model or images, n < 1 or "
                                   "eps < 0");
    for (int i = 1; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        int d, R = nd->kh, S = nd->kw, C = m->C;
        double *cov, *val, *vec;
        float *w;
        if (nd->op != OC_OP_CONV2D || nd->init != OC_INIT_WHITEN)
            continue;
        d = R * S * C;
        if (nd->in[0] != 0 || nd->groups != 1 || nd->sh != 1 || nd->sw != 1 || nd->dh != 1 ||
            nd->dw != 1 || nd->same || nd->ph || nd->pw || nd->filters != 2 * d)
            return oc_fail(OC_ERR_ARG, "node '%s': a whitening conv reads the input image with "
                                       "stride 1, no padding, dilation or groups, and has 2 x "
                                       "%d x %d x %d = %d filters", nd->name, R, S, C, 2 * d);
        cov = malloc((size_t)d * (size_t)(2 * d + 1) * sizeof *cov);
        if (!cov)
            return oc_fail(OC_ERR_NOMEM, "whitening init: out of memory");
        vec = cov + (size_t)d * d;
        val = vec + (size_t)d * d;
        patch_covariance(x, n, m->H, m->W, C, R, S, cov);
        if (oc_eigen_sym(d, cov, val, vec) < 0) {
            free(cov);
            return oc_fail(OC_ERR_NOMEM, "node '%s': the patch covariance's eigen-decomposition "
                                         "failed (out of memory or no convergence)", nd->name);
        }
        w = oc_nn_param(m, nd, 0);
        for (int k = 0; k < d; k++) {
            /* clamp rounding negatives of a (positive semi-definite) covariance */
            double f = 1.0 / sqrt((val[k] > 0 ? val[k] : 0) + eps);
            for (int e = 0; e < d; e++) {
                w[(size_t)k * d + e] = (float)(vec[k * d + e] * f);
                w[(size_t)(k + d) * d + e] = (float)(-vec[k * d + e] * f);
            }
        }
        if (nd->bias)
            memset(oc_nn_param(m, nd, 1), 0, (size_t)nd->filters * sizeof(float));
        free(cov);
        done++;
    }
    if (count)
        *count = done;
    return OC_OK;
}
