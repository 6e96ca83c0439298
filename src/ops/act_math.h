/* Scalar building blocks of the smooth activations, shared by act.c and the batch-norm pass
 * that fuses GELU (norm.c): both must compute bit-identical values, so the formulas live here
 * once. Written as plain float expressions that GCC vectorises (no libm calls). */
#ifndef OC_OPS_ACT_MATH_H
#define OC_OPS_ACT_MATH_H

#include <stdint.h>
#include <string.h>

/* Forced: these sit inside loops of target_clones functions, where GCC would otherwise call
 * them out of line, one element at a time, and the loops would not vectorise. */
#if defined(__GNUC__)
#define OC_ACT_INLINE static inline __attribute__((always_inline))
#else
#define OC_ACT_INLINE static inline
#endif

/* e^x for x <= 0 (inputs below -87.3 are clamped, so the result stays a normal float).
 * Cephes' expf polynomial after x = n ln2 + r, |r| <= ln2/2; relative error about 2 ulp.
 * Rounding to n uses the 1.5 * 2^23 trick, which needs no SSE4.1 round instruction. */
OC_ACT_INLINE float exp_nonpos(float x)
{
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    float t, n, r, p;
    int32_t bits;
    x = x < -87.3f ? -87.3f : x;
    t = x * 1.44269504088896341f + shifter;
    n = t - shifter;
    r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    bits = ((int32_t)n + 127) << 23;
    memcpy(&t, &bits, sizeof t);
    return p * t;
}

/* sigmoid(x) without overflow: with e = exp(-|x|) in (0, 1], 1/(1+e) or e/(1+e). */
OC_ACT_INLINE float sigmoidf(float x)
{
    float e = exp_nonpos(x < 0.0f ? x : -x);
    float r = 1.0f / (1.0f + e);
    return x < 0.0f ? e * r : r;
}

/* erf by Abramowitz & Stegun 7.1.26: erf|x| = 1 - t (a1 + t (a2 + ...)) e^{-x^2}, t = 1/(1+p|x|),
 * absolute error <= 1.5e-7. This is the formula PyTorch's vectorised CPU GELU uses (ATen's
 * Vectorized<float>::erf), so it matches torch.nn.GELU() closely, and unlike libm's erff it
 * vectorises. */
OC_ACT_INLINE float erf_as(float x)
{
    float a = x < 0.0f ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float r = 1.061405429f;
    r = r * t - 1.453152027f;
    r = r * t + 1.421413741f;
    r = r * t - 0.284496736f;
    r = r * t + 0.254829592f;
    float e = 1.0f - r * t * exp_nonpos(-a * a);
    return x < 0.0f ? -e : e;
}

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

/* GELU, exact erf form: x Phi(x). */
OC_ACT_INLINE float oc_gelu(float x)
{
    return x * 0.5f * (1.0f + erf_as(x * INV_SQRT2));
}

/* d/dx x Phi(x) = Phi(x) + x phi(x), times dy. */
OC_ACT_INLINE float oc_gelu_grad(float x, float dy)
{
    float cdf = 0.5f * (1.0f + erf_as(x * INV_SQRT2));
    float pdf = INV_SQRT_2PI * exp_nonpos(-0.5f * x * x);
    return dy * (cdf + x * pdf);
}

#endif
