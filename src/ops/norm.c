/* Batch normalisation over x[M][C] (M = N*H*W, channels innermost), as torch.nn.BatchNorm2d.
 *
 * Reductions (the batch statistics in forward, sum dy and sum dy*(x - mean) in backward) run
 * one channel tile at a time: rows are split over the threads, each thread sums its rows in
 * double into its own slot of a partials table on the caller's stack, and the slots are added
 * in thread order, so results are bitwise reproducible for a given thread count. Forward sums
 * x - x[0][c] rather than x, so a large common offset (mean >> std) does not cancel away the
 * variance. The elementwise passes (normalise, dx) then sweep whole rows once with per-channel
 * coefficients held on the stack (up to BN_CHUNK channels at a time). Stack use: about 45 KiB
 * in the calling thread (partials table and dx coefficients), 12 KiB in each worker.
 *
 * Extension beyond ops.h: gamma / beta may be NULL (weight 1, bias 0, as affine=False), and
 * dgamma / dbeta may be NULL (not wanted).
 *
 * The _act variants fuse a following ReLU, ReLU6 or GELU (oc_batchnorm_act_fusable): forward
 * applies it in the normalising pass; backward gets the activation's derivative inside both
 * passes over dy, from the normalised value z recomputed from x with the forward's own
 * per-channel coefficients and expression (bitwise the forward's z). For ReLU and ReLU6 the
 * tests z > 0 and 0 < z < 6 are the tests act.c makes on the output y (y > 0 holds exactly
 * when z > 0, NaN and -0 included; 0 < y < 6 exactly when 0 < z < 6), so backward reads x and
 * dy only, not the fused output as well: a third less memory traffic. Neither the normalised
 * tensor nor its gradient is ever written, and the results are bitwise those of the separate
 * ops. */

/* See act.c: lets GCC vectorise these loops at -O2 (no reassociation, so results are the same
 * as the plain scalar loops). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")
#endif

#include "act_math.h"
#include "core/core.h"
#include "ops.h"

#include <math.h>
#include <string.h>

/* Channels per reduction tile and the most threads a reduction uses: the partials table,
 * BN_MAX_T * 2 * BN_TILE doubles (32 KiB), lives on the caller's stack. */
#define BN_TILE 64
#define BN_MAX_T 32
/* Channels whose per-channel coefficients the elementwise passes hold at once (three float
 * arrays, 12 KiB of stack): up to this many channels, each pass is one contiguous sweep over
 * whole rows. Wider layers sweep in chunks of this many channels. */
#define BN_CHUNK 1024
/* Elements per thread below which waking another thread costs more than it saves. */
#define BN_GRAIN 16384
/* Channels per register-resident block of the reductions (16 doubles: two AVX-512 vectors). */
#define BN_VEC 16
/* Rows per block of the register-resident reductions: every 16-channel block of the tile sums
 * these rows before the next rows are read, so the tile's part of them (at most 64 rows x 64
 * channels, 16 KiB of x and as much of dy) is read from memory once, in address order, and
 * from L1 by the tile's other channel blocks. Sweeping all rows once per 16-channel block
 * instead reads every row's cache lines in as many strided passes; from DRAM that ran at
 * half the memory's bandwidth (bench/norm.c). Each channel still adds its rows in row order,
 * so the sums are bitwise those of one sweep. */
#define BN_ROWS 64

/* The first channel block of a row block prefetches, row by row, the tile's lines of the row
 * BN_ROWS further on (ct floats from column c0 of row m of p[][C]): the loads of one 16-channel
 * block are 64 bytes a row, a stride the hardware prefetchers do not run far enough ahead on
 * (the loads were half of the reduction's cycles). A macro: GCC drops calls to a function made
 * of prefetches alone when it does not inline it. */
#define BN_PREFETCH_ROW(p, m, C, c0, ct)                                                          \
    do {                                                                                          \
        const char *pf_ = (const char *)((p) + (m) * (C) + (c0));                                 \
        for (int pc_ = 0; pc_ < (ct); pc_ += 16)                                                  \
            __builtin_prefetch(pf_ + (ptrdiff_t)pc_ * 4);                                         \
    } while (0)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BN_CLONES
#endif

typedef struct {
    int64_t M;
    int C, c0, ct;                 /* the tile: channels [c0, c0 + ct) */
    oc_act act;                    /* backward: fused activation, its derivative at z */
    const float *x, *dy;
    const float *fa, *fb;          /* fused activation: the forward's a and b (bn_affine_loop)
                                      for the channels from fa_c0 on, to recompute z */
    int fa_c0;
    float *gz;                     /* GELU with dx set: dx, where each gradient through the
                                      GELU is stored for the dx pass (bn_bwd); else NULL */
    const float *center;           /* [C]: x[0][c] (forward) or the saved mean (backward) */
    double (*part)[2][BN_TILE];    /* [nthreads][2][BN_TILE] */
    int nt_used;                   /* threads the pool really ran (it may give fewer) */
} bn_reduce_job;

/* The normalised value as the forward pass computed it (bn_affine_loop: same operands, same
 * order, no contraction under -std=c11), for the fused activation's derivative. */
static inline __attribute__((always_inline)) float bn_z(float x, float mu, float a, float b)
{
    return (x - mu) * a + b;
}

/* The gradient reaching the normalised value z through the fused activation `act` (a constant
 * after inlining): ReLU / ReLU6 pass dy where z is in their linear range, else 0; GELU scales
 * it by its derivative at z. */
static inline __attribute__((always_inline)) float bn_act_grad(oc_act act, float z, float g)
{
    if (act == OC_ACT_RELU)
        return z > 0.0f ? g : 0.0f;
    if (act == OC_ACT_RELU6)
        return ((z > 0.0f) & (z < 6.0f)) ? g : 0.0f;
    if (act == OC_ACT_GELU)
        return oc_gelu_grad(z, g);
    return g;
}

/* One value's two terms in a reduction (bwd, act and store are constants after inlining):
 * forward, d = x - center and d * d; backward, g = dy taken through the fused activation `act`
 * (bn_act_grad of z recomputed from x; dy itself for OC_ACT_IDENTITY) and g * (x - mean), g
 * also stored to *gz with store. */
static inline __attribute__((always_inline)) void bn_terms(const int bwd, const oc_act act,
                                                           const int store, float x, float dy,
                                                           float ctr, float fa, float fb,
                                                           float *gz, double *t1, double *t2)
{
    if (!bwd) {
        double d = (double)x - (double)ctr;
        *t1 = d;
        *t2 = d * d;
        return;
    }
    float z = act != OC_ACT_IDENTITY ? bn_z(x, ctr, fa, fb) : 0.0f;
    float ga = bn_act_grad(act, z, dy);
    double g = (double)ga;
    if (store)
        *gz = ga;
    *t1 = g;
    *t2 = g * ((double)x - (double)ctr);
}

/* s1[c], s2[c] = the sums of bn_terms over rows [m0, m1) of the tile, in row order for each
 * channel. The sums live on this thread's stack and are copied out once: accumulating straight
 * into the shared partials table would bounce cache lines between neighbouring threads' slots
 * on every row. */
static inline __attribute__((always_inline)) void bn_reduce_rows(const bn_reduce_job *j,
                                                                 int64_t m0, int64_t m1,
                                                                 double *out1, double *out2,
                                                                 const int bwd, const oc_act act,
                                                                 const int store)
{
    const int ct = j->ct, fused = bwd && act != OC_ACT_IDENTITY;
    const float *restrict ctr = j->center + j->c0;
    const float *restrict fa = fused ? j->fa + (j->c0 - j->fa_c0) : NULL;
    const float *restrict fb = fused ? j->fb + (j->c0 - j->fa_c0) : NULL;
    double s1[BN_TILE], s2[BN_TILE];
    for (int c = 0; c < ct; c++)
        s1[c] = s2[c] = 0.0;
    if (ct % BN_VEC == 0) {
        /* whole vectors of channels: BN_VEC-wide constant loops keep the sums in registers
         * across a block of BN_ROWS rows (the same per-channel order of additions as the
         * generic loop below) */
        for (int64_t b0 = m0; b0 < m1; b0 += BN_ROWS) {
            const int64_t b1 = m1 - b0 < BN_ROWS ? m1 : b0 + BN_ROWS;
            for (int c0 = 0; c0 < ct; c0 += BN_VEC) {
                double v1[BN_VEC], v2[BN_VEC];
                memcpy(v1, s1 + c0, sizeof v1);
                memcpy(v2, s2 + c0, sizeof v2);
                for (int64_t m = b0; m < b1; m++) {
                    const int64_t at = m * j->C + j->c0 + c0;
                    const float *restrict xr = j->x + at;
                    const float *restrict gr = bwd ? j->dy + at : NULL;
                    float *restrict gzr = store ? j->gz + at : NULL;
                    if (c0 == 0 && m + BN_ROWS < m1) {
                        BN_PREFETCH_ROW(j->x, m + BN_ROWS, j->C, j->c0, ct);
                        if (bwd)
                            BN_PREFETCH_ROW(j->dy, m + BN_ROWS, j->C, j->c0, ct);
                    }
                    for (int c = 0; c < BN_VEC; c++) {
                        double t1, t2;
                        bn_terms(bwd, act, store, xr[c], bwd ? gr[c] : 0.0f, ctr[c0 + c],
                                 fused ? fa[c0 + c] : 0.0f, fused ? fb[c0 + c] : 0.0f,
                                 store ? gzr + c : NULL, &t1, &t2);
                        v1[c] += t1;
                        v2[c] += t2;
                    }
                }
                memcpy(s1 + c0, v1, sizeof v1);
                memcpy(s2 + c0, v2, sizeof v2);
            }
        }
    } else {
        for (int64_t m = m0; m < m1; m++) {
            const int64_t at = m * j->C + j->c0;
            const float *restrict xr = j->x + at;
            const float *restrict gr = bwd ? j->dy + at : NULL;
            float *restrict gzr = store ? j->gz + at : NULL;
            for (int c = 0; c < ct; c++) {
                double t1, t2;
                bn_terms(bwd, act, store, xr[c], bwd ? gr[c] : 0.0f, ctr[c],
                         fused ? fa[c] : 0.0f, fused ? fb[c] : 0.0f, store ? gzr + c : NULL,
                         &t1, &t2);
                s1[c] += t1;
                s2[c] += t2;
            }
        }
    }
    memcpy(out1, s1, (size_t)ct * sizeof *s1);
    memcpy(out2, s2, (size_t)ct * sizeof *s2);
}

/* Forward: s[c] = sum (x - center), ss[c] = sum (x - center)^2 over rows [m0, m1). */
BN_CLONES static void bn_stats_rows(const bn_reduce_job *j, int64_t m0, int64_t m1,
                                    double *out_s, double *out_ss)
{
    bn_reduce_rows(j, m0, m1, out_s, out_ss, 0, OC_ACT_IDENTITY, 0);
}

/* Backward: s[c] = sum dy, sx[c] = sum dy * (x - mean), dy taken through the fused activation
 * (GELU with j->gz: each gradient through it stored there). */
BN_CLONES static void bn_dstats_rows(const bn_reduce_job *j, int64_t m0, int64_t m1,
                                     double *out_s, double *out_sx)
{
    if (j->act == OC_ACT_RELU)
        bn_reduce_rows(j, m0, m1, out_s, out_sx, 1, OC_ACT_RELU, 0);
    else if (j->act == OC_ACT_RELU6)
        bn_reduce_rows(j, m0, m1, out_s, out_sx, 1, OC_ACT_RELU6, 0);
    else if (j->act == OC_ACT_GELU && j->gz)
        bn_reduce_rows(j, m0, m1, out_s, out_sx, 1, OC_ACT_GELU, 1);
    else if (j->act == OC_ACT_GELU)
        bn_reduce_rows(j, m0, m1, out_s, out_sx, 1, OC_ACT_GELU, 0);
    else
        bn_reduce_rows(j, m0, m1, out_s, out_sx, 1, OC_ACT_IDENTITY, 0);
}

static void bn_stats_task(void *ctx, int tid, int nt)
{
    bn_reduce_job *j = ctx;
    int64_t b, e;
    if (tid == 0)
        j->nt_used = nt;
    oc_split_range(j->M, tid, nt, &b, &e);
    bn_stats_rows(j, b, e, j->part[tid][0], j->part[tid][1]);
}

static void bn_dstats_task(void *ctx, int tid, int nt)
{
    bn_reduce_job *j = ctx;
    int64_t b, e;
    if (tid == 0)
        j->nt_used = nt;
    oc_split_range(j->M, tid, nt, &b, &e);
    bn_dstats_rows(j, b, e, j->part[tid][0], j->part[tid][1]);
}

static int bn_threads(int64_t work)
{
    int64_t t = work / BN_GRAIN;
    return t < 1 ? 1 : (t > BN_MAX_T ? BN_MAX_T : (int)t);
}

/* Runs `fn` over the rows of tile [c0, c0+ct) and adds the per-thread partials, in thread
 * order, into s[ct] and s2[ct]. */
static void bn_reduce(bn_reduce_job *j, oc_parallel_fn fn, double *s, double *s2)
{
    _Alignas(64) double part[BN_MAX_T][2][BN_TILE]; /* slots are whole cache lines */
    j->part = part;
    j->nt_used = 0;
    oc_parallel_n(fn, j, bn_threads(j->M * j->ct));
    OC_ASSERT(j->nt_used >= 1 && j->nt_used <= BN_MAX_T);
    for (int c = 0; c < j->ct; c++)
        s[c] = s2[c] = 0.0;
    for (int t = 0; t < j->nt_used; t++)
        for (int c = 0; c < j->ct; c++) {
            s[c] += part[t][0][c];
            s2[c] += part[t][1][c];
        }
}

/* ---- elementwise passes: y = (x - mean) * a + b, and dx += k*dy + kx*(x - mean) + k0 ---- */

typedef struct {
    int64_t M;
    int C;
    oc_act act;       /* fused activation (forward: applied; backward: derivative at z) */
    const float *x, *dy;
    float *out;
    /* forward: per-channel a and b come from mean, gamma, beta and either invstd (training)
     * or var and eps (inference: each thread takes the C square roots itself, since there is
     * no scratch to share them in; that is per channel, not per element) */
    const float *mean, *invstd, *var, *gamma, *beta;
    float eps;
    /* backward, one chunk of channels [c0, c0 + cn): dx += k*dy + kx*(x - mean) + k0, with
     * k[i] for channel c0 + i */
    int c0, cn;
    const float *k, *kx, *k0;
    const float *fa, *fb; /* backward with an activation: the forward's a and b, like k: [cn] */
    int set; /* backward: dx = 0 + ... rather than dx += ... (oc_batchnorm_act_bwd_set) */
    int gz_stored; /* backward, GELU, set: dx holds the gradients through the GELU already */
} bn_apply_job;

/* The row loops of the elementwise passes for a channel count `cn` that is a compile-time
 * constant after inlining (16, 32, 64: the per-channel coefficients then stay in registers
 * across rows) or the run-time count. */
static inline __attribute__((always_inline)) void bn_affine_loop(const bn_apply_job *j,
                                                                 int64_t m0, int64_t m1,
                                                                 int c0, const int cn,
                                                                 const float *a, const float *b,
                                                                 const float *mu,
                                                                 const oc_act act)
{
    /* (x - mean) * a + beta rather than PyTorch's x * a + (beta - mean * a): one more
     * operation on data already in registers, and no cancellation when mean >> std */
    for (int64_t m = m0; m < m1; m++) { /* y may be x (in-place inference): no restrict */
        const float *xr = j->x + m * j->C + c0;
        float *yr = j->out + m * j->C + c0;
        for (int c = 0; c < cn; c++) {
            float v = (xr[c] - mu[c]) * a[c] + b[c];
            if (act == OC_ACT_RELU || act == OC_ACT_RELU6) /* as act.c */
                v = v < 0.0f ? 0.0f : v;
            if (act == OC_ACT_RELU6)
                v = v > 6.0f ? 6.0f : v;
            if (act == OC_ACT_GELU)
                v = oc_gelu(v);
            yr[c] = v;
        }
    }
}

/* bn_affine_loop for each fused activation. */
static inline __attribute__((always_inline)) void bn_affine_act(const bn_apply_job *j,
                                                                int64_t m0, int64_t m1,
                                                                int c0, const int cn,
                                                                const float *a, const float *b,
                                                                const float *mu)
{
    if (j->act == OC_ACT_RELU)
        bn_affine_loop(j, m0, m1, c0, cn, a, b, mu, OC_ACT_RELU);
    else if (j->act == OC_ACT_RELU6)
        bn_affine_loop(j, m0, m1, c0, cn, a, b, mu, OC_ACT_RELU6);
    else if (j->act == OC_ACT_GELU)
        bn_affine_loop(j, m0, m1, c0, cn, a, b, mu, OC_ACT_GELU);
    else
        bn_affine_loop(j, m0, m1, c0, cn, a, b, mu, OC_ACT_IDENTITY);
}

BN_CLONES static void bn_affine_rows(const bn_apply_job *j, int64_t m0, int64_t m1)
{
    float a[BN_CHUNK], b[BN_CHUNK], mu[BN_CHUNK];
    if (m1 <= m0)
        return;
    for (int c0 = 0; c0 < j->C; c0 += BN_CHUNK) {
        int cn = j->C - c0 < BN_CHUNK ? j->C - c0 : BN_CHUNK;
        for (int c = 0; c < cn; c++) {
            float g = j->gamma ? j->gamma[c0 + c] : 1.0f;
            float inv = j->var ? (float)(1.0 / sqrt((double)j->var[c0 + c] + (double)j->eps))
                               : j->invstd[c0 + c];
            a[c] = inv * g;
            b[c] = j->beta ? j->beta[c0 + c] : 0.0f;
            mu[c] = j->mean[c0 + c];
        }
        if (cn == 16 && j->C == 16)
            bn_affine_act(j, m0, m1, c0, 16, a, b, mu);
        else if (cn == 32 && j->C == 32)
            bn_affine_act(j, m0, m1, c0, 32, a, b, mu);
        else if (cn == 64 && j->C == 64)
            bn_affine_act(j, m0, m1, c0, 64, a, b, mu);
        else
            bn_affine_act(j, m0, m1, c0, cn, a, b, mu);
    }
}

/* set: dx = 0 + ... instead of dx += ...: the bits of accumulating onto a zeroed dx (0 + v
 * is v, and +0 for v = -0), without reading dx or zeroing it first. stored (with set): dx
 * holds the gradient through the activation, which the dstats pass computed and stored. */
static inline __attribute__((always_inline)) void bn_dx_loop(const bn_apply_job *j, int64_t m0,
                                                             int64_t m1, const int cn,
                                                             const oc_act act, const int set,
                                                             const int stored)
{
    const float *restrict k = j->k, *restrict kx = j->kx, *restrict k0 = j->k0;
    const float *restrict mean = j->mean + j->c0;
    const float *restrict fa = act == OC_ACT_IDENTITY ? mean : j->fa;
    const float *restrict fb = act == OC_ACT_IDENTITY ? mean : j->fb;
    for (int64_t m = m0; m < m1; m++) {
        const float *restrict xr = j->x + m * j->C + j->c0;
        const float *restrict gr = j->dy + m * j->C + j->c0;
        float *restrict dr = j->out + m * j->C + j->c0;
        if (stored)
            for (int c = 0; c < cn; c++)
                dr[c] = 0.0f + (k[c] * dr[c] + kx[c] * (xr[c] - mean[c]) + k0[c]);
        else if (set)
            for (int c = 0; c < cn; c++) {
                float z = act == OC_ACT_IDENTITY ? 0.0f : bn_z(xr[c], mean[c], fa[c], fb[c]);
                dr[c] = 0.0f + (k[c] * bn_act_grad(act, z, gr[c]) + kx[c] * (xr[c] - mean[c]) +
                                k0[c]);
            }
        else
            for (int c = 0; c < cn; c++) {
                float z = act == OC_ACT_IDENTITY ? 0.0f : bn_z(xr[c], mean[c], fa[c], fb[c]);
                dr[c] += k[c] * bn_act_grad(act, z, gr[c]) + kx[c] * (xr[c] - mean[c]) + k0[c];
            }
    }
}

static inline __attribute__((always_inline)) void bn_dx_act(const bn_apply_job *j, int64_t m0,
                                                            int64_t m1, const int cn,
                                                            const int set)
{
    if (j->act == OC_ACT_RELU)
        bn_dx_loop(j, m0, m1, cn, OC_ACT_RELU, set, 0);
    else if (j->act == OC_ACT_RELU6)
        bn_dx_loop(j, m0, m1, cn, OC_ACT_RELU6, set, 0);
    else if (j->act == OC_ACT_GELU && set && j->gz_stored)
        bn_dx_loop(j, m0, m1, cn, OC_ACT_GELU, 1, 1);
    else if (j->act == OC_ACT_GELU)
        bn_dx_loop(j, m0, m1, cn, OC_ACT_GELU, set, 0);
    else
        bn_dx_loop(j, m0, m1, cn, OC_ACT_IDENTITY, set, 0);
}

static inline __attribute__((always_inline)) void bn_dx_set(const bn_apply_job *j, int64_t m0,
                                                            int64_t m1, const int cn)
{
    if (j->set)
        bn_dx_act(j, m0, m1, cn, 1);
    else
        bn_dx_act(j, m0, m1, cn, 0);
}

BN_CLONES static void bn_dx_rows(const bn_apply_job *j, int64_t m0, int64_t m1)
{
    if (j->cn == 16)
        bn_dx_set(j, m0, m1, 16);
    else if (j->cn == 32)
        bn_dx_set(j, m0, m1, 32);
    else if (j->cn == 64)
        bn_dx_set(j, m0, m1, 64);
    else
        bn_dx_set(j, m0, m1, j->cn);
}

static void bn_affine_task(void *ctx, int tid, int nt)
{
    const bn_apply_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->M, tid, nt, &b, &e);
    bn_affine_rows(j, b, e);
}

static void bn_dx_task(void *ctx, int tid, int nt)
{
    const bn_apply_job *j = ctx;
    int64_t b, e;
    oc_split_range(j->M, tid, nt, &b, &e);
    bn_dx_rows(j, b, e);
}

int oc_batchnorm_act_fusable(oc_act act)
{
    return act == OC_ACT_IDENTITY || act == OC_ACT_RELU || act == OC_ACT_RELU6 ||
           act == OC_ACT_GELU;
}

void oc_batchnorm_fwd_train(int64_t M, int C, const float *x, const float *gamma,
                            const float *beta, float eps, float momentum, float *running_mean,
                            float *running_var, float *save_mean, float *save_invstd, float *y)
{
    oc_batchnorm_act_fwd_train(M, C, x, gamma, beta, eps, momentum, running_mean, running_var,
                               save_mean, save_invstd, OC_ACT_IDENTITY, y);
}

void oc_batchnorm_act_fwd_train(int64_t M, int C, const float *x, const float *gamma,
                                const float *beta, float eps, float momentum,
                                float *running_mean, float *running_var, float *save_mean,
                                float *save_invstd, oc_act act, float *y)
{
    double s[BN_TILE], ss[BN_TILE];
    bn_reduce_job rj = {0};
    bn_apply_job aj = {0};

    if (M <= 0 || C <= 0)
        return;
    rj.M = M;
    rj.C = C;
    rj.x = x;
    rj.center = x; /* row 0 */
    for (int c0 = 0; c0 < C; c0 += BN_TILE) {
        rj.c0 = c0;
        rj.ct = C - c0 < BN_TILE ? C - c0 : BN_TILE;
        bn_reduce(&rj, bn_stats_task, s, ss);
        for (int c = 0; c < rj.ct; c++) {
            double dm = s[c] / (double)M;              /* mean - x[0][c] */
            double var = ss[c] / (double)M - dm * dm;  /* biased */
            double mean = (double)x[c0 + c] + dm;
            if (var < 0.0)
                var = 0.0;
            save_mean[c0 + c] = (float)mean;
            save_invstd[c0 + c] = (float)(1.0 / sqrt(var + (double)eps));
            if (running_mean)
                running_mean[c0 + c] = (float)((1.0 - (double)momentum) *
                                                   (double)running_mean[c0 + c] +
                                               (double)momentum * mean);
            if (running_var) {
                /* PyTorch divides by M - 1; with M == 1 (which PyTorch rejects in training)
                 * the biased variance, 0, keeps the running value finite. */
                double unbiased = M > 1 ? var * (double)M / (double)(M - 1) : var;
                running_var[c0 + c] = (float)((1.0 - (double)momentum) *
                                                  (double)running_var[c0 + c] +
                                              (double)momentum * unbiased);
            }
        }
    }

    aj.M = M;
    aj.C = C;
    aj.x = x;
    aj.out = y;
    aj.mean = save_mean;
    aj.invstd = save_invstd;
    aj.gamma = gamma;
    aj.beta = beta;
    aj.act = oc_batchnorm_act_fusable(act) ? act : OC_ACT_IDENTITY;
    oc_parallel_n(bn_affine_task, &aj, bn_threads(M * C));
}

void oc_batchnorm_act_apply(int64_t M, int C, const float *x, const float *gamma,
                            const float *beta, const float *save_mean, const float *save_invstd,
                            oc_act act, float *y)
{
    /* the normalising pass of oc_batchnorm_act_fwd_train on its own: the same job, so the
     * same per-element arithmetic */
    bn_apply_job aj = {0};
    if (M <= 0 || C <= 0)
        return;
    aj.M = M;
    aj.C = C;
    aj.x = x;
    aj.out = y;
    aj.mean = save_mean;
    aj.invstd = save_invstd;
    aj.gamma = gamma;
    aj.beta = beta;
    aj.act = oc_batchnorm_act_fusable(act) ? act : OC_ACT_IDENTITY;
    oc_parallel_n(bn_affine_task, &aj, bn_threads(M * C));
}

void oc_batchnorm_fwd_infer(int64_t M, int C, const float *x, const float *gamma,
                            const float *beta, const float *running_mean,
                            const float *running_var, float eps, float *y)
{
    oc_batchnorm_act_fwd_infer(M, C, x, gamma, beta, running_mean, running_var, eps,
                               OC_ACT_IDENTITY, y);
}

void oc_batchnorm_act_fwd_infer(int64_t M, int C, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, float eps, oc_act act, float *y)
{
    bn_apply_job aj = {0};
    if (M <= 0 || C <= 0)
        return;
    aj.M = M;
    aj.C = C;
    aj.x = x;
    aj.out = y;
    aj.mean = running_mean;
    aj.var = running_var;
    aj.eps = eps;
    aj.gamma = gamma;
    aj.beta = beta;
    aj.act = oc_batchnorm_act_fusable(act) ? act : OC_ACT_IDENTITY;
    oc_parallel_n(bn_affine_task, &aj, bn_threads(M * C));
}

/* With xhat = (x - mean) * invstd, S = sum dy and Sx = sum dy * (x - mean):
 *   dbeta = S, dgamma = invstd * Sx,
 *   dx = gamma * invstd * (dy - S/M - xhat * invstd * Sx / M).
 * dx is written as k*dy + kx*(x - mean) + k0, keeping (x - mean) explicit so a large mean
 * does not cancel in float. */
void oc_batchnorm_bwd(int64_t M, int C, const float *x, const float *gamma, const float *save_mean,
                      const float *save_invstd, const float *dy, float *dx, float *dgamma,
                      float *dbeta)
{
    oc_batchnorm_act_bwd(M, C, x, gamma, NULL, save_mean, save_invstd, OC_ACT_IDENTITY, dy, dx,
                         dgamma, dbeta);
}

static void bn_bwd(int64_t M, int C, const float *x, const float *gamma, const float *beta,
                   const float *save_mean, const float *save_invstd, oc_act act,
                   const float *dy, float *dx, float *dgamma, float *dbeta, int set);

void oc_batchnorm_act_bwd(int64_t M, int C, const float *x, const float *gamma,
                          const float *beta, const float *save_mean, const float *save_invstd,
                          oc_act act, const float *dy, float *dx, float *dgamma, float *dbeta)
{
    bn_bwd(M, C, x, gamma, beta, save_mean, save_invstd, act, dy, dx, dgamma, dbeta, 0);
}

void oc_batchnorm_act_bwd_set(int64_t M, int C, const float *x, const float *gamma,
                              const float *beta, const float *save_mean,
                              const float *save_invstd, oc_act act, const float *dy, float *dx,
                              float *dgamma, float *dbeta)
{
    bn_bwd(M, C, x, gamma, beta, save_mean, save_invstd, act, dy, dx, dgamma, dbeta, 1);
}

static void bn_bwd(int64_t M, int C, const float *x, const float *gamma, const float *beta,
                   const float *save_mean, const float *save_invstd, oc_act act,
                   const float *dy, float *dx, float *dgamma, float *dbeta, int set)
{
    double s[BN_TILE], sx[BN_TILE];
    float k[BN_CHUNK], kx[BN_CHUNK], k0[BN_CHUNK], fa[BN_CHUNK], fb[BN_CHUNK];
    bn_reduce_job rj = {0};
    bn_apply_job aj = {0};

    if (M <= 0 || C <= 0)
        return;
    rj.M = M;
    rj.C = C;
    if (!oc_batchnorm_act_fusable(act))
        act = OC_ACT_IDENTITY;
    rj.x = x;
    rj.dy = dy;
    rj.act = act;
    rj.center = save_mean;
    aj.M = M;
    aj.C = C;
    aj.x = x;
    aj.dy = dy;
    aj.act = act;
    aj.out = dx;
    aj.mean = save_mean;
    aj.k = k;
    aj.kx = kx;
    aj.k0 = k0;
    aj.fa = rj.fa = fa;
    aj.fb = rj.fb = fb;
    aj.set = set;
    /* GELU's derivative costs more than the memory it reads: with dx set (never read) and apart
     * from x and dy, the dstats pass stores each gradient through the GELU in dx and the dx
     * pass reads it back instead of computing it again. The same floats, so the same bits. */
    if (act == OC_ACT_GELU && set && dx && oc_floats_apart(dx, x, M * C) &&
        oc_floats_apart(dx, dy, M * C))
        rj.gz = dx, aj.gz_stored = 1;
    for (int cc = 0; cc < C; cc += BN_CHUNK) {
        aj.c0 = cc;
        aj.cn = C - cc < BN_CHUNK ? C - cc : BN_CHUNK;
        rj.fa_c0 = cc;
        if (act != OC_ACT_IDENTITY) /* exactly as bn_affine_rows forms them in training */
            for (int c = 0; c < aj.cn; c++) {
                float g = gamma ? gamma[cc + c] : 1.0f;
                fa[c] = save_invstd[cc + c] * g;
                fb[c] = beta ? beta[cc + c] : 0.0f;
            }
        for (int c0 = cc; c0 < cc + aj.cn; c0 += BN_TILE) {
            rj.c0 = c0;
            rj.ct = cc + aj.cn - c0 < BN_TILE ? cc + aj.cn - c0 : BN_TILE;
            bn_reduce(&rj, bn_dstats_task, s, sx);
            for (int c = 0; c < rj.ct; c++) {
                double inv = (double)save_invstd[c0 + c];
                double g = gamma ? (double)gamma[c0 + c] : 1.0;
                double kk = g * inv;
                if (dbeta)
                    dbeta[c0 + c] += (float)s[c];
                if (dgamma)
                    dgamma[c0 + c] += (float)(inv * sx[c]);
                k[c0 - cc + c] = (float)kk;
                kx[c0 - cc + c] = (float)(-kk * inv * inv * sx[c] / (double)M);
                k0[c0 - cc + c] = (float)(-kk * s[c] / (double)M);
            }
        }
        if (dx)
            oc_parallel_n(bn_dx_task, &aj, bn_threads(M * aj.cn));
    }
}
