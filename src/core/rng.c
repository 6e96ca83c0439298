/* xoshiro256** (Blackman & Vigna, 2018), seeded through splitmix64 so that nearby seeds and
 * stream ids give unrelated states. */
#include "core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void oc_rng_seed(oc_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    /* mix the stream id in twice so (seed, stream) and (seed', stream') rarely collide */
    x = splitmix64(&x) ^ stream;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t oc_rng_u64(oc_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float oc_rng_uniform(oc_rng *r)
{
    /* top 24 bits: exactly representable, strictly below 1 */
    return (float)(oc_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

void oc_rng_dropout_mask(oc_rng *r, int64_t n, float p, float keep, float *mask)
{
    /* oc_rng_u64 and oc_rng_uniform inlined, the state in registers: the same draws as a loop
     * of oc_rng_uniform(r) < p ? 0 : keep, about three times faster */
    uint64_t s0 = r->s[0], s1 = r->s[1], s2 = r->s[2], s3 = r->s[3];
    for (int64_t i = 0; i < n; i++) {
        const uint64_t v = rotl(s1 * 5, 7) * 9, t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 45);
        mask[i] = (float)(v >> 40) * (1.0f / 16777216.0f) < p ? 0.0f : keep;
    }
    r->s[0] = s0, r->s[1] = s1, r->s[2] = s2, r->s[3] = s3;
}

uint64_t oc_rng_below(oc_rng *r, uint64_t n)
{
    /* Lemire's nearly-divisionless method would be faster; rejection keeps it unbiased. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do
        v = oc_rng_u64(r);
    while (v >= limit);
    return v % n;
}

float oc_rng_normal(oc_rng *r)
{
    double u1 = ((double)(oc_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(oc_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
