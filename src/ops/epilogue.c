/* The output epilogue of fused inference convolutions (ops.h, oc_conv2d_fwd_fused):
 *   y = act((acc + pre) * scale + shift + res)
 * over a block of rows and channels that the conv kernel has just written. ReLU, ReLU6 and
 * identity run in the same loop as the affine; other activations run over each finished row
 * segment (oc_act_fwd, which stays on the calling thread inside a parallel task). The same
 * loops serve the GEMM form of the epilogue (oc_gemm_epi) where a product's tiles do not apply
 * it. Compiled for baseline x86-64 with AVX-512 and AVX2 clones picked at load time, like the
 * batch-norm passes in norm.c. */
#include "core/core.h"
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

static inline __attribute__((always_inline)) void epi_rows(
    const float *pre, const float *sc, const float *sh, const float *res, ptrdiff_t ldr,
    int64_t M, int n, float *y, ptrdiff_t ldy, int with_res, oc_act act)
{
    for (int64_t m = 0; m < M; m++)
        epi_row(y + m * ldy, with_res ? res + m * ldr : NULL, pre, sc, sh, n, act);
}

/* act((y + pre) * sc + sh + res) over rows [0, M) of n columns: y and res rows ldy and ldr
 * floats apart, one specialised loop per (residual, inline act) pair. */
static EPI_CLONES void epi_block(const float *pre, const float *sc, const float *sh,
                                 const float *res, ptrdiff_t ldr, int64_t M, int n, float *y,
                                 ptrdiff_t ldy, oc_act act)
{
    const int r = res != NULL;
    if (act == OC_ACT_RELU)
        r ? epi_rows(pre, sc, sh, res, ldr, M, n, y, ldy, 1, OC_ACT_RELU)
          : epi_rows(pre, sc, sh, res, ldr, M, n, y, ldy, 0, OC_ACT_RELU);
    else if (act == OC_ACT_RELU6)
        r ? epi_rows(pre, sc, sh, res, ldr, M, n, y, ldy, 1, OC_ACT_RELU6)
          : epi_rows(pre, sc, sh, res, ldr, M, n, y, ldy, 0, OC_ACT_RELU6);
    else
        r ? epi_rows(pre, sc, sh, res, ldr, M, n, y, ldy, 1, OC_ACT_IDENTITY)
          : epi_rows(pre, sc, sh, res, ldr, M, n, y, ldy, 0, OC_ACT_IDENTITY);
}

static int act_inline(oc_act act)
{
    return act == OC_ACT_RELU || act == OC_ACT_RELU6;
}

void oc_conv_epilogue_apply(const oc_conv_epilogue *e, int64_t m0, int64_t m1, int k0, int k1,
                            int K, float *y)
{
    const int n = k1 - k0;
    epi_block(e->pre + k0, e->scale + k0, e->shift + k0, e->res ? e->res + m0 * K + k0 : NULL, K,
              m1 - m0, n, y + m0 * K + k0, K, act_inline(e->act) ? e->act : OC_ACT_IDENTITY);
    if (!act_inline(e->act) && e->act != OC_ACT_IDENTITY)
        for (int64_t m = m0; m < m1; m++)
            oc_act_fwd(e->act, e->alpha, n, y + m * K + k0, y + m * K + k0);
}

oc_gemm_epi oc_conv_epilogue_cols(const oc_conv_epilogue *e, int k0, const float *res,
                                  ptrdiff_t ldr)
{
    oc_gemm_epi g = {e->pre + k0, e->scale + k0, e->shift + k0, res, ldr, e->act};
    OC_ASSERT(oc_gemm_epi_act(e->act));
    return g;
}

int oc_gemm_epi_act(oc_act act)
{
    return act == OC_ACT_IDENTITY || act_inline(act);
}

void oc_gemm_epi_apply(const oc_gemm_epi *e, int64_t M, int N, float *C, int ldc)
{
    epi_block(e->pre, e->scale, e->shift, e->res, e->ldr, M, N, C, ldc, e->act);
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
