/* Elementwise activations, forward and backward.
 *
 * Each activation is one plain loop over contiguous floats, selected by a switch outside the
 * loop, so the compiler vectorises it (no per-element function pointers). Backward works from
 * the forward INPUT x and accumulates: dx += f'(x) * dy.
 *
 * Derivatives at kinks follow PyTorch 1.13 (checked against autograd in tests/ref/
 * gen_misc_ops.py): ReLU'(0) = 0; ReLU6 is hardtanh(0, 6) whose derivative is 0 at both 0 and 6;
 * LeakyReLU'(0) = alpha; hardswish'(-3) = -0.5 and hardswish'(3) = 1. PyTorch's hardswish
 * backward is itself inconsistent at 3: its vectorised path (self >= 3 -> grad) gives 1, its
 * scalar tail loop (self <= 3 -> x/3 + 1/2) gives 1.5; we follow the vectorised path, which
 * handles all but the last few elements of every tensor.
 *
 * Sigmoid, SiLU and GELU use exp_nonpos(), a polynomial exp for arguments <= 0 that vectorises
 * (libm's expf does not); GELU is the exact erf form, with erf from a polynomial accurate to
 * 1.5e-7 (erf_as; both in act_math.h). Large arrays are split
 * over the thread pool in fixed chunks; elementwise work has no reductions, so the result does
 * not depend on the thread count. */
/* GCC 12 at -O2 vectorises only loops whose trip count is a known multiple of the vector width
 * (the "very-cheap" cost model), and under the default -ftrapping-math it will not if-convert
 * float selects such as x < 0 ? 0 : x. These kernels never rely on FP exceptions, so this file
 * opts into both; the results are identical to the scalar loops (no reassociation). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")
#endif

#include "core/core.h"
#include "act_math.h"
#include "ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Below this many elements one thread is faster than waking the pool. */
#define ACT_PAR_MIN 32768


/* Compiled twice, for AVX2+FMA and for baseline x86-64; the loader picks one by CPU. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ACT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ACT_CLONES
#endif

ACT_CLONES static void act_fwd_range(oc_act act, float alpha, int64_t n, const float *x,
                          float *y)
{
    switch (act) {
    case OC_ACT_IDENTITY:
        if (x != y)
            memmove(y, x, (size_t)n * sizeof *y);
        break;
    case OC_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case OC_ACT_RELU6:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i] < 0.0f ? 0.0f : x[i];
            y[i] = v > 6.0f ? 6.0f : v;
        }
        break;
    case OC_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : x[i] * alpha;
        break;
    case OC_ACT_GELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = oc_gelu(x[i]);
        break;
    case OC_ACT_SILU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * sigmoidf(x[i]);
        break;
    case OC_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            y[i] = sigmoidf(x[i]);
        break;
    case OC_ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i] + 3.0f;
            v = v < 0.0f ? 0.0f : v;
            v = v > 6.0f ? 6.0f : v;
            y[i] = x[i] * v / 6.0f;
        }
        break;
    }
}

/* dx = D(dx) + f'(x) dy, where D(dx) is dx, or with set (a compile-time constant after
 * inlining) 0, the bits of adding to zeros without reading dx. */
#define ACT_GRAD(i, v) (dx[i] = ((set) ? 0.0f : dx[i]) + (v))
static inline __attribute__((always_inline)) void act_bwd_body(oc_act act, float alpha,
                                                               int64_t n,
                                                               const float *restrict x,
                                                               const float *restrict dy,
                                                               float *restrict dx, const int set)
{
    switch (act) {
    case OC_ACT_IDENTITY:
        for (int64_t i = 0; i < n; i++)
            ACT_GRAD(i, dy[i]);
        break;
    case OC_ACT_RELU:
        for (int64_t i = 0; i < n; i++) {
            float g = dy[i]; /* loaded unconditionally, so the select if-converts */
            ACT_GRAD(i, x[i] > 0.0f ? g : 0.0f);
        }
        break;
    case OC_ACT_RELU6:
        for (int64_t i = 0; i < n; i++) {
            float g = dy[i];
            ACT_GRAD(i, ((x[i] > 0.0f) & (x[i] < 6.0f)) ? g : 0.0f);
        }
        break;
    case OC_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++)
            ACT_GRAD(i, x[i] > 0.0f ? dy[i] : dy[i] * alpha);
        break;
    case OC_ACT_GELU:
        /* d/dx x Phi(x) = Phi(x) + x phi(x) */
        for (int64_t i = 0; i < n; i++)
            ACT_GRAD(i, oc_gelu_grad(x[i], dy[i]));
        break;
    case OC_ACT_SILU:
        /* d/dx x s(x) = s (1 + x (1 - s)) */
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoidf(x[i]);
            ACT_GRAD(i, dy[i] * s * (1.0f + x[i] * (1.0f - s)));
        }
        break;
    case OC_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoidf(x[i]);
            ACT_GRAD(i, dy[i] * s * (1.0f - s));
        }
        break;
    case OC_ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) {
            float d = x[i] < -3.0f ? 0.0f : (x[i] < 3.0f ? x[i] / 3.0f + 0.5f : 1.0f);
            ACT_GRAD(i, dy[i] * d);
        }
        break;
    }
}
#undef ACT_GRAD

ACT_CLONES static void act_bwd_range(oc_act act, float alpha, int64_t n, const float *restrict x,
                          const float *restrict dy, float *restrict dx, int set)
{
    if (set)
        act_bwd_body(act, alpha, n, x, dy, dx, 1);
    else
        act_bwd_body(act, alpha, n, x, dy, dx, 0);
}

typedef struct {
    oc_act act;
    float alpha;
    int64_t n;
    const float *x, *dy;
    float *out;
    int set; /* backward: set dx rather than add to it */
} act_job;

static void act_fwd_task(void *ctx, int tid, int nt)
{
    const act_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->n, tid, nt, &b, &e);
    if (e > b)
        act_fwd_range(j->act, j->alpha, e - b, j->x + b, j->out + b);
}

static void act_bwd_task(void *ctx, int tid, int nt)
{
    const act_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->n, tid, nt, &b, &e);
    if (e > b)
        act_bwd_range(j->act, j->alpha, e - b, j->x + b, j->dy + b, j->out + b, j->set);
}

static int act_threads(int64_t n)
{
    int64_t t = n / ACT_PAR_MIN;
    return t < 1 ? 1 : (t > 1024 ? 1024 : (int)t);
}

/* x and y may be the same array: each element is read before it is written, and the restrict
 * qualifiers inside only promise that distinct elements do not overlap within one pass. */
void oc_act_fwd(oc_act act, float alpha, int64_t n, const float *x, float *y)
{
    act_job j = {act, alpha, n, x, NULL, y, 0};
    if (n <= 0)
        return;
    if (n < ACT_PAR_MIN)
        act_fwd_range(act, alpha, n, x, y);
    else
        oc_parallel_n(act_fwd_task, &j, act_threads(n));
}

static void act_bwd(oc_act act, float alpha, int64_t n, const float *x, const float *dy,
                    float *dx, int set)
{
    act_job j = {act, alpha, n, x, dy, dx, set};
    if (n <= 0 || !dx)
        return;
    if (n < ACT_PAR_MIN)
        act_bwd_range(act, alpha, n, x, dy, dx, set);
    else
        oc_parallel_n(act_bwd_task, &j, act_threads(n));
}

/* dx == NULL (an input that needs no gradient) does nothing. */
void oc_act_bwd(oc_act act, float alpha, int64_t n, const float *x, const float *dy, float *dx)
{
    act_bwd(act, alpha, n, x, dy, dx, 0);
}

void oc_act_bwd_set(oc_act act, float alpha, int64_t n, const float *x, const float *dy,
                    float *dx)
{
    act_bwd(act, alpha, n, x, dy, dx, 1);
}
