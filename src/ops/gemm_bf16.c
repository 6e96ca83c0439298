/* bf16 GEMM: C = alpha * op(A) op(B) + beta * C with both operands rounded to bfloat16 (round to
 * nearest even) and every product summed in fp32, the mixed precision of bf16 training
 * (Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019): 8 bits of
 * mantissa in the multiplies, fp32 everywhere else. A product of two bf16 values is exact in
 * fp32, so the only rounding besides the inputs' is that of the fp32 sums.
 *
 * The operands stay fp32 in memory; they are rounded while being packed, which the blocked
 * scheme of gemm.c (Goto / BLIS) does anyway, into panels of bf16 pairs along k
 * (gemm_bf16.h), the layout vdpbf16ps reads. Blocking and threading follow gemm.c: the larger
 * of the M and N tile counts is cut into one contiguous range per thread, or, for a small C
 * over a long K (weight gradients), K is cut and per-thread partial products are added in
 * thread order, so results are deterministic for a given thread count.
 *
 * The math mode (oc_math_set) is per thread: the graph turns bf16 on around a bf16 model's
 * forward and backward, and oc_gemm on that thread then comes here. Without AVX512_BF16 the
 * same rounding runs in portable loops (slow; callers that care check oc_bf16_supported). */
#include "ops.h"

#include "core/core.h"
#include "ops/gemm.h"
#include "ops/gemm_bf16.h"

#include <pthread.h>
#include <string.h>

/* Cache blocking in k pairs, rows and columns. A packed A block of MC x KCP words (336 KiB)
 * stays in L2 and a 32-column B panel (KCP x 32 words, 32 KiB) in L1 on Zen 5 (1 MiB L2,
 * 48 KiB L1d), the fp32 kernel's working sets with twice the k per byte. */
#define BF16_KCP 256
#define BF16_MC 336
#define BF16_NC 3072
#define BF16_PER_THREAD 262144 /* multiply-adds per thread below which one more does not pay */
#define BF16_KSPLIT_MAX 16

static _Thread_local oc_math_mode math_mode = OC_MATH_F32;

oc_math_mode oc_math_set(oc_math_mode mode)
{
    oc_math_mode prev = math_mode;
    math_mode = mode;
    return prev;
}

oc_math_mode oc_math_get(void)
{
    return math_mode;
}

int oc_bf16_supported(void)
{
    /* libgcc fills the CPU model in a constructor: a load and a test */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
}

float oc_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) /* NaN stays a (quiet) NaN */
        u |= 0x00400000u;
    else
        u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

void oc_gemm_bf16_ref(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                float a = transa ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = transb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)oc_bf16_round(a) * (double)oc_bf16_round(b);
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)((double)alpha * acc) + (beta == 0.0f ? 0.0f : beta * *c);
        }
}

/* Portable path (CPUs without AVX512_BF16): the same rounding, fp32 sums. */
static void gemm_bf16_portable(int transa, int transb, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta,
                               float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) {
                float a = transa ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = transb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += oc_bf16_round(a) * oc_bf16_round(b);
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = alpha * acc + (beta == 0.0f ? 0.0f : beta * *c);
        }
}

/* ---------------------------------------------------------------- per-thread scratch */

typedef struct {
    uint32_t *a, *b; /* packed A block, packed B block (words) */
    float *part;     /* K-split partial products (calling thread) */
    size_t cap_a, cap_b, cap_part;
} bf16_ws;

static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok;

static void ws_destroy(void *p)
{
    bf16_ws *ws = p;
    oc_free(ws->a);
    oc_free(ws->b);
    oc_free(ws->part);
    oc_free(ws);
}

static void ws_key_init(void)
{
    ws_key_ok = pthread_key_create(&ws_key, ws_destroy) == 0;
}

static int grow(void **buf, size_t *cap, size_t bytes)
{
    if (*cap >= bytes)
        return 1;
    oc_free(*buf);
    *buf = oc_alloc(bytes);
    *cap = *buf ? bytes : 0;
    return *buf != NULL;
}

static int scratch_denied;

/* Test hook, no public API (tests/unit/test_bf16.c declares it): 1 makes every scratch request
 * fail, as when memory runs out, so the fallback loops run; 0 restores. Not thread safe. */
void oc_gemm_bf16_deny_scratch(int deny);
void oc_gemm_bf16_deny_scratch(int deny)
{
    scratch_denied = deny != 0;
}

/* This thread's scratch with at least these many bytes, or NULL when memory ran out (the
 * caller then takes the portable loops). Buffers only grow. */
static bf16_ws *ws_get(size_t a_bytes, size_t b_bytes, size_t part_bytes)
{
    bf16_ws *ws;
    pthread_once(&ws_once, ws_key_init);
    if (!ws_key_ok || scratch_denied)
        return NULL;
    ws = pthread_getspecific(ws_key);
    if (!ws) {
        ws = oc_alloc_zero(sizeof *ws);
        if (!ws)
            return NULL;
        if (pthread_setspecific(ws_key, ws) != 0) {
            oc_free(ws);
            return NULL;
        }
    }
    if (!grow((void **)&ws->a, &ws->cap_a, a_bytes) ||
        !grow((void **)&ws->b, &ws->cap_b, b_bytes) ||
        !grow((void **)&ws->part, &ws->cap_part, part_bytes))
        return NULL;
    return ws;
}

/* ---------------------------------------------------------------- blocked driver */

typedef struct {
    int transa, transb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    const uint32_t *ar; /* A already as bf16 pair rows (oc_gemm_bf16_pre), or NULL */
    ptrdiff_t ar_ld;    /* words between those rows */
    const uint32_t *bp; /* B already packed by oc_gemm_bf16_pack_b, or NULL */
    int split;     /* 0: threads take ranges of rows, 1: of columns, 2: of K */
    float *part;   /* split 2: one [M][N] partial product per thread */
    int ksplit_nt; /* split 2: the thread count the region really ran with */
} bf16_job;

/* op(A)(i, k) as a packing source: pointer to (i0, k0) and the (is, ks) strides. */
static const float *a_at(const bf16_job *j, int i0, int k0, ptrdiff_t *is, ptrdiff_t *ks)
{
    *is = j->transa ? 1 : j->lda;
    *ks = j->transa ? j->lda : 1;
    return j->A + (ptrdiff_t)i0 * *is + (ptrdiff_t)k0 * *ks;
}

/* op(B)(k, j) as a packing source, indexed (j, k). */
static const float *b_at(const bf16_job *j, int j0, int k0, ptrdiff_t *is, ptrdiff_t *ks)
{
    *is = j->transb ? j->ldb : 1;
    *ks = j->transb ? 1 : j->ldb;
    return j->B + (ptrdiff_t)j0 * *is + (ptrdiff_t)k0 * *ks;
}

/* Value (k, j) of a B packed by oc_gemm_bf16_pack_b, as a float. */
static float bp_value(const uint32_t *bp, int N, int K, int k, int j)
{
    const int panel = j / OC_BF16_NR, pw = N - panel * OC_BF16_NR;
    const int ds = pw >= OC_BF16_NR ? OC_BF16_NR : (pw + 15) & ~15;
    uint32_t w = bp[(size_t)panel * OC_BF16_NR * (size_t)((K + 1) / 2) + (size_t)(k / 2) * ds +
                    j % OC_BF16_NR];
    uint32_t u = k % 2 ? w & 0xFFFF0000u : w << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The portable loops on a packed B (no floats of B to fall back on): fp32 sums of the same
 * rounded products, for C[m0:m1][n0:n1] over k [k0, k1). */
static void portable_packed_b(const bf16_job *j, int m0, int m1, int n0, int n1, int k0, int k1,
                              float alpha, float beta, float *C, int ldc)
{
    for (int i = m0; i < m1; i++)
        for (int jj = n0; jj < n1; jj++) {
            float acc = 0.0f, *c = &C[(size_t)i * ldc + jj];
            for (int k = k0; k < k1; k++) {
                float a = j->transa ? j->A[(size_t)k * j->lda + i] : j->A[(size_t)i * j->lda + k];
                acc += oc_bf16_round(a) * bp_value(j->bp, j->N, j->K, k, jj);
            }
            *c = alpha * acc + (beta == 0.0f ? 0.0f : beta * *c);
        }
}

/* The packed B panel of columns [j0, j0 + nr) from pair pc / 2 on, in oc_gemm_bf16_pack_b's
 * layout: panel j0 / NR holds all of K's pairs, so any even k block of it is contiguous. */
static const uint32_t *b_panel(const bf16_job *j, int j0, int nr, int pc)
{
    return j->bp + (size_t)(j0 / OC_BF16_NR) * OC_BF16_NR * (size_t)((j->K + 1) / 2) +
           (size_t)(pc / 2) * (size_t)((nr + 15) & ~15);
}

/* C[m0:m1][n0:n1] = alpha * sum_{k in [k0, k1)} op(A) op(B) + beta * C on the calling thread. */
static void blocked_range(const bf16_job *j, int m0, int m1, int n0, int n1, int k0, int k1,
                          float alpha, float beta, float *C, int ldc)
{
    const int M = m1 - m0, N = n1 - n0, K = k1 - k0;
    const int kcp_max = (K + 1) / 2 < BF16_KCP ? (K + 1) / 2 : BF16_KCP;
    const int mc_max = M < BF16_MC ? M : BF16_MC;
    const int nc_max = N < BF16_NC ? N : BF16_NC;
    const int nc_pad = (nc_max + OC_BF16_NR - 1) / OC_BF16_NR * OC_BF16_NR;
    /* A not transposed: its pairs already lie along rows; converting row by row (no
     * transpose) and letting the kernel broadcast from each row costs a fraction of packing
     * k-major panels, which matters when N is small and every A element feeds few columns
     * (convolutions with 16-64 output channels). */
    const int rows_a = !j->transa;
    bf16_ws *ws;

    if (M <= 0 || N <= 0)
        return;
    /* pre-packed A rows come with pre-packed B (oc_gemm_bf16_pre): nothing to pack here */
    ws = j->ar ? NULL
               : ws_get((size_t)mc_max * kcp_max * 4, j->bp ? 0 : (size_t)nc_pad * kcp_max * 4, 0);
    if (!ws && !j->ar && !j->B) {
        portable_packed_b(j, m0, m1, n0, n1, k0, k1, alpha, beta, C, ldc);
        return;
    }
    if (!ws && !j->ar) {
        const float *a0 = j->transa ? j->A + (size_t)k0 * j->lda + m0
                                    : j->A + (size_t)m0 * j->lda + k0;
        const float *b0 = j->transb ? j->B + (size_t)n0 * j->ldb + k0
                                    : j->B + (size_t)k0 * j->ldb + n0;
        gemm_bf16_portable(j->transa, j->transb, M, N, K, alpha, a0, j->lda, b0, j->ldb, beta,
                           C + (size_t)m0 * ldc + n0, ldc);
        return;
    }
    for (int jc = n0; jc < n1; jc += BF16_NC) {
        int nc = n1 - jc < BF16_NC ? n1 - jc : BF16_NC;
        for (int pc = k0; pc < k1; pc += 2 * BF16_KCP) {
            int kc = k1 - pc < 2 * BF16_KCP ? k1 - pc : 2 * BF16_KCP, kcp = (kc + 1) / 2;
            float beta_k = pc == k0 ? beta : 1.0f;
            for (int jr = 0; jr < nc && !j->bp; jr += OC_BF16_NR) {
                int nr = nc - jr < OC_BF16_NR ? nc - jr : OC_BF16_NR;
                ptrdiff_t is, ks;
                const float *src = b_at(j, jc + jr, pc, &is, &ks);
                oc_gemm_bf16_pack_avx512(src, is, ks, nr, kc, ws->b + (size_t)jr * kcp,
                                         (nr + 15) & ~15);
            }
            for (int ic = m0; ic < m1; ic += BF16_MC) {
                int mc = m1 - ic < BF16_MC ? m1 - ic : BF16_MC;
                int panels = (mc + OC_BF16_MR - 1) / OC_BF16_MR;
                /* balanced panel heights: 16 rows make two 8-row tiles, not 14 + 2 */
                if (j->ar)
                    ; /* the rows are read where they lie */
                else if (rows_a)
                    oc_gemm_bf16_pack_rows_avx512(j->A + (size_t)ic * j->lda + pc, j->lda, mc,
                                                  kc, ws->a, kcp);
                else
                    for (int p = 0; p < panels; p++) {
                        int64_t r0, r1;
                        ptrdiff_t is, ks;
                        oc_split_range(mc, p, panels, &r0, &r1);
                        const float *src = a_at(j, ic + (int)r0, pc, &is, &ks);
                        oc_gemm_bf16_pack_avx512(src, is, ks, (int)(r1 - r0), kc,
                                                 ws->a + (size_t)r0 * kcp, (int)(r1 - r0));
                    }
                for (int jr = 0; jr < nc; jr += OC_BF16_NR) {
                    int nr = nc - jr < OC_BF16_NR ? nc - jr : OC_BF16_NR;
                    const uint32_t *bp = j->bp ? b_panel(j, jc + jr, nr, pc)
                                               : ws->b + (size_t)jr * kcp;
                    for (int p = 0; p < panels; p++) {
                        int64_t r0, r1;
                        oc_split_range(mc, p, panels, &r0, &r1);
                        float *ct = C + (size_t)(ic + r0) * ldc + jc + jr;
                        if (j->ar)
                            oc_gemm_bf16_tile_rows_avx512(
                                (int)(r1 - r0), nr, kcp,
                                j->ar + (size_t)(ic + r0) * j->ar_ld + pc / 2, j->ar_ld, bp,
                                alpha, beta_k, ct, ldc);
                        else if (rows_a)
                            oc_gemm_bf16_tile_rows_avx512((int)(r1 - r0), nr, kcp,
                                                          ws->a + (size_t)r0 * kcp, kcp, bp,
                                                          alpha, beta_k, ct, ldc);
                        else
                            oc_gemm_bf16_tile_avx512((int)(r1 - r0), nr, kcp,
                                                     ws->a + (size_t)r0 * kcp, bp, alpha, beta_k,
                                                     ct, ldc);
                    }
                }
            }
        }
    }
}

static void bf16_worker(void *ctx, int tid, int nt)
{
    bf16_job *j = ctx;
    oc_gemm_range r = oc_gemm_thread_range(j->split, j->M, j->N, j->K, OC_BF16_MR, OC_BF16_NR,
                                           tid, nt);
    if (j->split == 2) {
        /* K is cut between pairs, so every k block starts on a pair of a pre-packed operand */
        int64_t b, e;
        oc_split_range((j->K + 1) / 2, tid, nt, &b, &e);
        r.k0 = (int)(2 * b);
        r.k1 = 2 * e < j->K ? (int)(2 * e) : j->K;
    }
    if (j->split == 2 && tid == 0)
        j->ksplit_nt = nt;
    if (j->split == 2 && nt > 1) /* partial sums; nt 1 (nested in a parallel region): direct */
        blocked_range(j, r.m0, r.m1, r.n0, r.n1, r.k0, r.k1, 1.0f, 0.0f,
                      j->part + (size_t)tid * j->M * j->N, j->N);
    else
        blocked_range(j, r.m0, r.m1, r.n0, r.n1, r.k0, r.k1, j->alpha, j->beta, j->C, j->ldc);
}

/* ---------------------------------------------------------------- pre-packed operands */

size_t oc_gemm_bf16_b_bytes(int N, int K)
{
    size_t panels = (size_t)(N + OC_BF16_NR - 1) / OC_BF16_NR;
    return panels * OC_BF16_NR * (size_t)((K + 1) / 2) * sizeof(uint32_t);
}

typedef struct {
    int transb, N, K, ldb;
    const float *B;
    uint32_t *dst;
} packb_job;

static void packb_task(void *ctx, int tid, int nt)
{
    const packb_job *p = ctx;
    const int panels = (p->N + OC_BF16_NR - 1) / OC_BF16_NR;
    const size_t kp = (size_t)((p->K + 1) / 2);
    int64_t a, e;
    oc_split_range(panels, tid, nt, &a, &e);
    for (int64_t q = a; q < e; q++) {
        int j0 = (int)q * OC_BF16_NR, w = p->N - j0 < OC_BF16_NR ? p->N - j0 : OC_BF16_NR;
        ptrdiff_t is = p->transb ? p->ldb : 1, ks = p->transb ? 1 : p->ldb;
        oc_gemm_bf16_pack_avx512(p->B + (ptrdiff_t)j0 * is, is, ks, w, p->K,
                                 p->dst + (size_t)q * OC_BF16_NR * kp, (w + 15) & ~15);
    }
}

void oc_gemm_bf16_pack_b(int transb, int N, int K, const float *B, int ldb, void *dst)
{
    packb_job p = {transb, N, K, ldb, B, dst};
    OC_ASSERT(oc_bf16_supported() && ((uintptr_t)dst & 63) == 0);
    oc_parallel_n(packb_task, &p, (N + OC_BF16_NR - 1) / OC_BF16_NR);
}

void oc_bf16_pack_row(const float *x, int n, uint32_t *dst)
{
    oc_gemm_bf16_pack_rows_avx512(x, 0, 1, n, dst, (n + 1) / 2);
}

void oc_gemm_bf16_pack_b_pair(const float *r0, const float *r1, int N, int K, int kp, void *bp)
{
    oc_gemm_bf16_pack_pair_avx512(r0, r1, N, kp, K, bp);
}

static void gemm_bf16_run(bf16_job job);

void oc_gemm_bf16_pre(int transa, int M, int N, int K, float alpha, const uint32_t *ar,
                      ptrdiff_t ar_ld, const float *A, int lda, const void *bp, const float *B,
                      int ldb, int transb, float beta, float *C, int ldc)
{
    bf16_job job = {transa, transb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc,
                    ar, ar_ld, bp, 0, NULL, 1};
    OC_ASSERT(bp && oc_bf16_supported() && (ar ? !transa && B : A != NULL));
    gemm_bf16_run(job);
}

void oc_gemm_bf16(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    bf16_job job = {transa, transb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc,
                    NULL, 0, NULL, 0, NULL, 1};
    gemm_bf16_run(job);
}

static void gemm_bf16_run(bf16_job job)
{
    const int transa = job.transa, transb = job.transb, M = job.M, N = job.N, K = job.K;
    const float alpha = job.alpha, beta = job.beta, *A = job.A, *B = job.B;
    const int lda = job.lda, ldb = job.ldb, ldc = job.ldc;
    float *C = job.C;
    int m_tiles = (M + OC_BF16_MR - 1) / OC_BF16_MR, n_tiles = (N + OC_BF16_NR - 1) / OC_BF16_NR;
    double per_thread = (double)M * (double)N * (double)K / BF16_PER_THREAD;
    int max_threads = per_thread < 1.0 ? 1 : per_thread > 256.0 ? 256 : (int)per_thread;
    int nt = oc_get_threads() < max_threads ? oc_get_threads() : max_threads;

    if (M <= 0 || N <= 0)
        return;
    OC_ASSERT(ldc >= N);
    OC_ASSERT(K <= 0 || job.ar || lda >= (transa ? M : K));
    OC_ASSERT(K <= 0 || !B || ldb >= (transb ? K : N));
    if (K <= 0 || alpha == 0.0f) {
        oc_gemm_scale_c(M, N, beta, C, ldc);
        return;
    }
    if (!oc_bf16_supported()) {
        gemm_bf16_portable(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    job.split = m_tiles >= n_tiles ? 0 : 1;
    if (max_threads > (job.split == 0 ? m_tiles : n_tiles))
        max_threads = job.split == 0 ? m_tiles : n_tiles;
    /* a small C over a long K: each thread sums a slice of K into its own partial C */
    if (nt > 1 && K >= 1024 && K >= 8 * (M > N ? M : N)) {
        bf16_ws *ws;
        if (nt > BF16_KSPLIT_MAX)
            nt = BF16_KSPLIT_MAX;
        ws = ws_get(0, 0, (size_t)nt * M * N * sizeof(float));
        if (ws) {
            job.split = 2;
            job.part = ws->part;
            max_threads = nt;
        }
    }
    oc_parallel_n(bf16_worker, &job, max_threads);
    if (job.split == 2 && job.ksplit_nt > 1)
        oc_gemm_ksplit_reduce(M, N, job.ksplit_nt, job.part, alpha, beta, C, ldc);
}
