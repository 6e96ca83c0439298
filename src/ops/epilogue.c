/* The output epilogue of fused inference convolutions (ops.h, oc_conv2d_fwd_fused):
 *   y = act((acc + pre) * scale + shift + res)
 * over a block of rows and channels that the conv kernel has just written. ReLU, ReLU6 and
 * identity run in the same loop as the affine; other activations run over each finished row
 * segment (oc_act_fwd, which stays on the calling thread inside a parallel task).
 * Compiled for baseline x86-64 with AVX-512 and AVX2 clones picked at load time, like the
 * batch-norm passes in norm.c. */
#include "ops.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* -O2's "very cheap" vectoriser model leaves run-time trip counts scalar: ask for the
 * dynamic one here */
#define EPI_CLONES                                                                                \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),               \
                   optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define EPI_CLONES
#endif

/* The act tests fold away: every call site passes a constant. */
static inline __attribute__((always_inline)) void epi_row(float *restrict y,
                                                          const float *restrict r,
                                                          const float *restrict pre,
                                                          const float *restrict sc,
                                                          const float *restrict sh, int n,
                                                          oc_act act)
{
    for (int k = 0; k < n; k++) {
        float v = (y[k] + pre[k]) * sc[k] + sh[k];
        if (r)
            v += r[k];
        if (act == OC_ACT_RELU || act == OC_ACT_RELU6) /* as act.c */
            v = v < 0.0f ? 0.0f : v;
        if (act == OC_ACT_RELU6)
            v = v > 6.0f ? 6.0f : v;
        y[k] = v;
    }
}

static inline __attribute__((always_inline)) void epi_rows(const oc_conv_epilogue *e,
                                                           int64_t m0, int64_t m1, int k0,
                                                           int n, int K, float *y, int res,
                                                           oc_act act)
{
    const float *pre = e->pre + k0, *sc = e->scale + k0, *sh = e->shift + k0;
    for (int64_t m = m0; m < m1; m++)
        epi_row(y + m * K + k0, res ? e->res + m * K + k0 : NULL, pre, sc, sh, n, act);
}

EPI_CLONES void oc_conv_epilogue_apply(const oc_conv_epilogue *e, int64_t m0, int64_t m1,
                                       int k0, int k1, int K, float *y)
{
    const int n = k1 - k0, res = e->res != NULL;
    const oc_act inl = e->act == OC_ACT_RELU || e->act == OC_ACT_RELU6 ? e->act
                                                                         : OC_ACT_IDENTITY;
    /* one specialised loop per (residual, act) pair */
    if (inl == OC_ACT_RELU)
        res ? epi_rows(e, m0, m1, k0, n, K, y, 1, OC_ACT_RELU)
            : epi_rows(e, m0, m1, k0, n, K, y, 0, OC_ACT_RELU);
    else if (inl == OC_ACT_RELU6)
        res ? epi_rows(e, m0, m1, k0, n, K, y, 1, OC_ACT_RELU6)
            : epi_rows(e, m0, m1, k0, n, K, y, 0, OC_ACT_RELU6);
    else
        res ? epi_rows(e, m0, m1, k0, n, K, y, 1, OC_ACT_IDENTITY)
            : epi_rows(e, m0, m1, k0, n, K, y, 0, OC_ACT_IDENTITY);
    if (inl != e->act)
        for (int64_t m = m0; m < m1; m++)
            oc_act_fwd(e->act, e->alpha, n, y + m * K + k0, y + m * K + k0);
}

void oc_conv_epilogue_ref(const oc_conv_epilogue *e, int64_t M, int K, float *y)
{
    for (int64_t m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            float *v = &y[m * K + k];
            double t = ((double)*v + (double)e->pre[k]) * (double)e->scale[k] +
                       (double)e->shift[k];
            if (e->res)
                t += (double)e->res[m * K + k];
            *v = (float)t;
        }
    oc_act_fwd(e->act, e->alpha, M * K, y, y);
}
