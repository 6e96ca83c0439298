/* General matrix multiply. oc_gemm dispatches to the fastest kernel for this CPU;
 * oc_gemm_ref is the plain triple loop every fast path is tested against.
 *
 * The fast path is the GotoBLAS / BLIS scheme (Goto & van de Geijn, "Anatomy of
 * high-performance matrix multiplication", TOMS 2008; Van Zee & van de Geijn, "BLIS", 2015):
 *
 *   for jc in N step NC:              B block  [KC][NC]  packed once, streamed from L3
 *     for pc in K step KC:
 *       pack op(B)[pc:+KC][jc:+NC] into NR-column panels
 *       for ic in M step MC:          A block  [MC][KC]  packed, stays in L2
 *         pack op(A)[ic:+MC][pc:+KC] into MR-row panels
 *         for jr in NC step NR:       B panel  [KC][NR]  stays in L1 across the ir loop
 *           for ir in MC step MR:     micro-kernel: MR x NR tile of C in registers
 *
 * Packing makes every kernel read unit-stride and aligned whatever the transposes and leading
 * dimensions, and lets edge panels be zero padded. Three cases skip a packing step: with
 * N <= 16 (skinny C) the kernel reads A in place, since each element of A feeds one tile only;
 * with few column panels (N <= GEMM_DIRECT_A_N) a non-transposed A is read in place, since
 * each packed panel would serve few tiles; with at most two row panels, a non-transposed B is
 * read in place for the same reason (unless it comes pre-packed, see below). The first K
 * block applies the caller's beta, later ones accumulate (beta = 1); an epilogue
 * (oc_gemm_pre_epi) goes with the last K block's stores.
 *
 * Threads: the M or the N dimension (whichever has more register tiles) is cut into one
 * contiguous range of whole tiles per thread; each thread packs what it needs itself (the
 * duplicated packing of the other operand costs O(1/M) or O(1/N) of the multiply) and writes
 * a disjoint part of C, with no locks and no barriers. A caller that multiplies the same B
 * many times (a convolution's weights, once per im2col chunk) packs it once with
 * oc_gemm_pack_b and passes it to oc_gemm_pre, which reads it in place. Each element is then
 * summed over k in the same order whatever the split, so these results are bitwise identical
 * for any thread count. A small C over a long K (weight gradients) is split over K instead:
 * each thread sums its slice into a private partial C and the caller adds the partials in
 * thread order, which is deterministic for a given thread count. Inside an oc_parallel region
 * oc_parallel runs serially and the whole product runs on the calling thread.
 *
 * Scratch: each thread keeps its packing buffers in thread-specific storage, grown on demand
 * and reused by every later call on that thread (so steady-state calls never allocate) and
 * freed when the thread exits: at most (MC*KC + KC*NC) floats, about 3.5 MB, per thread, plus
 * threads * M * N floats of K-split partials on the calling thread. If memory runs out the
 * affected range falls back to the unblocked loops (same results within rounding). */
#include "ops.h"

#include "core/core.h"
#include "ops/gemm.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

void oc_gemm_ref(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                float a = transa ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = transb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)((double)alpha * acc) + (beta == 0.0f ? 0.0f : beta * *c);
        }
    }
}

/* Cache blocking, tuned on AMD Zen 5 (EPYC, 48 KiB L1d, 1 MiB L2 per core) with the 14x32
 * AVX-512 kernel (bench/gemm.c): a 14x32 tile performs 28 FMAs per 46 floats read, so the
 * kernel is insensitive to where its panels sit as long as the A block stays in L2
 * (MC*KC*4 = 336 KiB) and a B panel (KC*NR*4 = 32 KiB) in L1. MC is a multiple of every
 * kernel's MR (14, 28, 6) and NC of every NR (32, 16), so tiles line up across blocks. */
#ifndef GEMM_KC
#define GEMM_KC 256
#endif
#ifndef GEMM_MC
#define GEMM_MC 336
#endif
#ifndef GEMM_NC
#define GEMM_NC 3072
#endif
/* Below this many multiply-adds (M*N*K) the packing and dispatch cost more than they save
 * (ops.h: oc_gemm_pre reads the floats of B there). */
#define GEMM_SMALL OC_GEMM_SMALL
/* Columns of C up to which the AVX-512 tile reads a non-transposed A in place (pick_direct_a). */
#ifndef GEMM_DIRECT_A_N
#define GEMM_DIRECT_A_N 512
#endif
/* Multiply-adds per thread below which adding a thread does not pay for waking it. */
#define GEMM_PER_THREAD 262144

/* ---------------------------------------------------------------- simple path */

void oc_gemm_scale_c(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(c, 0, (size_t)N * sizeof *c);
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++)
                c[j] *= beta;
    }
}

/* Unblocked loops for small products and CPUs without AVX2: row i of C is built as a sum of
 * rows of op(B) scaled by alpha * op(A)[i][k] (unit stride, auto-vectorised), or, for
 * transposed B, as dot products over contiguous rows of B. */
void oc_gemm_simple(int transa, int transb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    oc_gemm_scale_c(M, N, beta, C, ldc);
    if (alpha == 0.0f)
        return;
    for (int i = 0; i < M; i++) {
        float *restrict c = C + (size_t)i * ldc;
        if (!transb) {
            for (int k = 0; k < K; k++) {
                const float *restrict b = B + (size_t)k * ldb;
                float a = alpha * (transa ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                for (int j = 0; j < N; j++)
                    c[j] += a * b[j];
            }
        } else {
            for (int j = 0; j < N; j++) {
                const float *restrict b = B + (size_t)j * ldb;
                float acc = 0.0f;
                if (transa)
                    for (int k = 0; k < K; k++)
                        acc += A[(size_t)k * lda + i] * b[k];
                else
                    for (int k = 0; k < K; k++)
                        acc += A[(size_t)i * lda + k] * b[k];
                c[j] += alpha * acc;
            }
        }
    }
}

/* ---------------------------------------------------------------- packing */

/* The row panels of an mc-row block: ceil(mc / mr) panels of balanced heights (16 rows make
 * two 8-row tiles, not 14 + 2, so no tile runs a kernel starved of independent FMAs). Panel p
 * covers rows [*r0, *r1) of the block and its packed data starts at *off floats per k. */
static void a_panel(const oc_gemm_kernel *kern, int mc, int p, int *r0, int *r1, size_t *off)
{
    int panels = (mc + kern->mr - 1) / kern->mr;
    int64_t b, e;
    oc_split_range(mc, p, panels, &b, &e);
    *r0 = (int)b;
    *r1 = (int)e;
    *off = kern->pad_a ? (size_t)p * kern->mr : (size_t)b;
}

/* op(A)[i0:+mc][p0:+kc] -> row panels (a_panel); panel p starts at out + off*kc and holds, for
 * each k, its rows (zero padded to mr when the kernel family wants padded panels). */
static void pack_a(const oc_gemm_kernel *kern, int transa, const float *A, int lda, int i0,
                   int mc, int p0, int kc, float *restrict out)
{
    int panels = (mc + kern->mr - 1) / kern->mr;
    for (int p = 0; p < panels; p++) {
        int r0, r1;
        size_t off;
        a_panel(kern, mc, p, &r0, &r1, &off);
        int mr = r1 - r0, ir = r0;
        int s = kern->pad_a ? kern->mr : mr;
        float *restrict dst = out + off * kc;
        if (kern->pack_a_panel && !kern->pad_a) {
            kern->pack_a_panel(transa,
                               transa ? A + (size_t)p0 * lda + i0 + ir
                                      : A + (size_t)(i0 + ir) * lda + p0,
                               lda, mr, kc, dst);
            continue;
        }
        if (transa) {
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(p0 + k) * lda + i0 + ir;
                for (int r = 0; r < mr; r++)
                    dst[(size_t)k * s + r] = src[r];
                for (int r = mr; r < s; r++)
                    dst[(size_t)k * s + r] = 0.0f;
            }
        } else {
            for (int r = 0; r < mr; r++) {
                const float *src = A + (size_t)(i0 + ir + r) * lda + p0;
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * s + r] = src[k];
            }
            for (int r = mr; r < s; r++)
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * s + r] = 0.0f;
        }
    }
}

/* Floats per k of a B panel with nr columns. */
static int b_stride(const oc_gemm_kernel *kern, int nr)
{
    return (nr + kern->nr_quantum - 1) / kern->nr_quantum * kern->nr_quantum;
}

/* op(B)[p0:+kc][j0:+nc] -> panels of kern->nr columns; panel p starts at out + p*nr*kc and
 * holds, for each k, its columns zero padded to b_stride(). */
static void pack_b(const oc_gemm_kernel *kern, int transb, const float *B, int ldb, int p0,
                   int kc, int j0, int nc, float *restrict out)
{
    for (int jr = 0; jr < nc; jr += kern->nr) {
        int nr = nc - jr < kern->nr ? nc - jr : kern->nr;
        int s = b_stride(kern, nr);
        float *restrict dst = out + (size_t)jr * kc;
        if (transb) {
            for (int j = 0; j < nr; j++) {
                const float *src = B + (size_t)(j0 + jr + j) * ldb + p0;
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * s + j] = src[k];
            }
            for (int j = nr; j < s; j++)
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * s + j] = 0.0f;
        } else {
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)(p0 + k) * ldb + j0 + jr;
                memcpy(dst + (size_t)k * s, src, (size_t)nr * sizeof *src);
                for (int j = nr; j < s; j++)
                    dst[(size_t)k * s + j] = 0.0f;
            }
        }
    }
}

/* ---------------------------------------------------------------- per-thread scratch */

typedef struct {
    float *buf[3];     /* packed A block, packed B block, K-split partial sums */
    size_t cap[3];     /* in floats */
} pack_ws;

static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok;

static void ws_destroy(void *p)
{
    pack_ws *ws = p;
    for (int i = 0; i < 3; i++)
        oc_free(ws->buf[i]);
    oc_free(ws);
}

static void ws_key_init(void)
{
    ws_key_ok = pthread_key_create(&ws_key, ws_destroy) == 0;
}

/* This thread's scratch with room for n[i] floats in buf[i], or NULL when memory ran out (the
 * caller then takes a path that needs none). Buffers only grow. */
static pack_ws *ws_get(size_t n_a, size_t n_b, size_t n_c)
{
    const size_t n[3] = {n_a, n_b, n_c};
    pack_ws *ws;
    pthread_once(&ws_once, ws_key_init);
    if (!ws_key_ok)
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
    for (int i = 0; i < 3; i++) {
        if (ws->cap[i] >= n[i])
            continue;
        oc_free(ws->buf[i]);
        ws->buf[i] = oc_alloc(n[i] * sizeof(float));
        ws->cap[i] = ws->buf[i] ? n[i] : 0;
        if (!ws->buf[i])
            return NULL;
    }
    return ws;
}

/* ---------------------------------------------------------------- blocked driver */

/* Threads that may share one product's K dimension (each needs an M*N partial sum). */
#define GEMM_KSPLIT_MAX 16

typedef struct {
    const oc_gemm_kernel *kern;
    int transa, transb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    const float *bp;  /* op(B) packed by oc_gemm_pack_b, or NULL */
    int split;        /* 0: threads take ranges of rows, 1: of columns, 2: of K */
    float *part;      /* split 2: GEMM_KSPLIT_MAX partial products [M][N], one per thread */
    int ksplit_nt;    /* split 2: the thread count the region really ran with */
    const oc_gemm_epi *epi; /* applied by the last K block's tiles (alpha 1), or NULL */
} gemm_job;

/* C[m0:m1][n0:n1] = alpha * sum_{k in [k0, k1)} op(A)[i][k] op(B)[k][j] + beta * C on the
 * calling thread. C and ldc may differ from the job's (K-split partials). */
static void blocked_range(const gemm_job *j, int m0, int m1, int n0, int n1, int k0, int k1,
                          float alpha, float beta, float *C, int ldc)
{
    const oc_gemm_kernel *kern = j->kern;
    const float *A = j->A, *B = j->B;
    int lda = j->lda, ldb = j->ldb, transa = j->transa, transb = j->transb;
    int M = m1 - m0, N = n1 - n0, K = k1 - k0;
    int kc_max = K < GEMM_KC ? K : GEMM_KC;
    int mc_max = M < GEMM_MC ? M : GEMM_MC;
    int nc_max = N < GEMM_NC ? N : GEMM_NC;
    /* B packed for at most 2 row panels would be read twice per pack: use it in place (unless
     * it comes packed: the same sums in the same order either way). */
    int direct_b = kern->kernel_direct_b && !transb && M <= 2 * kern->mr && !j->bp && !j->epi;
    size_t a_n = kern->direct_a ? 0 : (size_t)((mc_max + kern->mr - 1) / kern->mr * kern->mr) * kc_max;
    size_t b_n = direct_b || j->bp ? 0
                                   : (size_t)((nc_max + kern->nr - 1) / kern->nr * kern->nr) * kc_max;
    oc_gemm_ukernel ukr = direct_b ? kern->kernel_direct_b : kern->kernel;
    pack_ws *ws;

    if (M <= 0 || N <= 0)
        return;
    ws = ws_get(a_n, b_n, 0);
    if (!ws) {
        const float *a0 = transa ? A + (size_t)k0 * lda + m0 : A + (size_t)m0 * lda + k0;
        const float *b0 = transb ? B + (size_t)n0 * ldb + k0 : B + (size_t)k0 * ldb + n0;
        oc_gemm_simple(transa, transb, M, N, K, alpha, a0, lda, b0, ldb, beta,
                       C + (size_t)m0 * ldc + n0, ldc);
        if (j->epi) {
            oc_gemm_epi e = *j->epi; /* the block's columns and rows */
            e.pre += n0, e.scale += n0, e.shift += n0;
            e.res = e.res ? e.res + (size_t)m0 * e.ldr + n0 : NULL;
            oc_gemm_epi_apply(&e, M, N, C + (size_t)m0 * ldc + n0, ldc);
        }
        return;
    }
    for (int jc = n0; jc < n1; jc += GEMM_NC) {
        int nc = n1 - jc < GEMM_NC ? n1 - jc : GEMM_NC;
        for (int pc = k0; pc < k1; pc += GEMM_KC) {
            int kc = k1 - pc < GEMM_KC ? k1 - pc : GEMM_KC;
            float beta_k = pc == k0 ? beta : 1.0f;
            /* the epilogue goes with the last K block's stores */
            const oc_gemm_epi *epi = j->epi && pc + GEMM_KC >= k1 ? j->epi : NULL;
            if (!direct_b && !j->bp)
                pack_b(kern, transb, B, ldb, pc, kc, jc, nc, ws->buf[1]);
            for (int ic = m0; ic < m1; ic += GEMM_MC) {
                int mc = m1 - ic < GEMM_MC ? m1 - ic : GEMM_MC;
                if (!kern->direct_a)
                    pack_a(kern, transa, A, lda, ic, mc, pc, kc, ws->buf[0]);
                for (int jr = 0; jr < nc; jr += kern->nr) {
                    int nr = nc - jr < kern->nr ? nc - jr : kern->nr;
                    const float *bp;
                    ptrdiff_t b_ks;
                    if (direct_b) {
                        bp = B + (size_t)pc * ldb + jc + jr;
                        b_ks = ldb;
                    } else if (j->bp) {
                        /* the panel of oc_gemm_pack_b at column jc + jr holds every k */
                        b_ks = b_stride(kern, nr);
                        bp = j->bp + (size_t)(jc + jr) * j->K + (size_t)pc * b_ks;
                    } else {
                        bp = ws->buf[1] + (size_t)jr * kc;
                        b_ks = b_stride(kern, nr);
                    }
                    for (int p = 0; p < (mc + kern->mr - 1) / kern->mr; p++) {
                        int r0, r1;
                        size_t off;
                        a_panel(kern, mc, p, &r0, &r1, &off);
                        int mr = r1 - r0;
                        float *ct = C + (size_t)(ic + r0) * ldc + jc + jr;
                        if (epi) {
                            const size_t col = (size_t)(jc + jr);
                            const oc_gemm_epi te = {
                                epi->pre + col, epi->scale + col, epi->shift + col,
                                epi->res ? epi->res + (size_t)(ic + r0) * epi->ldr + col : NULL,
                                epi->ldr, epi->act}; /* at the tile */
                            const float *at = kern->direct_a
                                                  ? A + (size_t)(ic + r0) * lda + pc
                                                  : ws->buf[0] + off * kc;
                            OC_ASSERT(!transa || !kern->direct_a);
                            kern->kernel_epi(mr, nr, kc, at, kern->direct_a ? lda : 1,
                                             kern->direct_a ? 1 : (kern->pad_a ? kern->mr : mr),
                                             bp, b_ks, beta_k, ct, ldc, &te);
                        } else if (kern->direct_a) {
                            size_t i = (size_t)(ic + r0);
                            if (transa)
                                ukr(mr, nr, kc, A + (size_t)pc * lda + i, 1, lda, bp, b_ks,
                                    alpha, beta_k, ct, ldc);
                            else
                                ukr(mr, nr, kc, A + i * lda + pc, lda, 1, bp, b_ks, alpha,
                                    beta_k, ct, ldc);
                        } else {
                            int s = kern->pad_a ? kern->mr : mr;
                            ukr(mr, nr, kc, ws->buf[0] + off * kc, 1, s, bp, b_ks, alpha,
                                beta_k, ct, ldc);
                        }
                    }
                }
            }
        }
    }
}

oc_gemm_range oc_gemm_thread_range(int split, int M, int N, int K, int mr, int nr, int tid,
                                   int nt)
{
    oc_gemm_range r = {0, M, 0, N, 0, K};
    int64_t b, e;
    if (split == 2) {
        oc_split_range(K, tid, nt, &b, &e);
        r.k0 = (int)b;
        r.k1 = (int)e;
    } else if (split == 0) {
        oc_split_range((M + mr - 1) / mr, tid, nt, &b, &e);
        r.m0 = (int)(b * mr);
        r.m1 = e * mr < M ? (int)(e * mr) : M;
    } else {
        oc_split_range((N + nr - 1) / nr, tid, nt, &b, &e);
        r.n0 = (int)(b * nr);
        r.n1 = e * nr < N ? (int)(e * nr) : N;
    }
    return r;
}

typedef struct {
    int M, N, nt;
    const float *part;
    float alpha, beta;
    float *C;
    int ldc;
} ksplit_reduce_job;

static void ksplit_reduce_task(void *ctx, int tid, int nt)
{
    const ksplit_reduce_job *j = ctx;
    int64_t i0, i1;
    oc_split_range(j->M, tid, nt, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        float *c = j->C + (size_t)i * j->ldc;
        for (int jn = 0; jn < j->N; jn++) {
            float s = j->part[(size_t)i * j->N + jn];
            for (int t = 1; t < j->nt; t++)
                s += j->part[((size_t)t * j->M + i) * j->N + jn];
            c[jn] = j->beta == 0.0f ? j->alpha * s : j->alpha * s + j->beta * c[jn];
        }
    }
}

/* Rows of C split over the pool; every element sums its partials in thread order, so the
 * result does not depend on the split. */
void oc_gemm_ksplit_reduce(int M, int N, int nt, const float *part, float alpha, float beta,
                           float *C, int ldc)
{
    ksplit_reduce_job j = {M, N, nt, part, alpha, beta, C, ldc};
    /* below ~64 K partials waking a thread costs more than the sums */
    oc_parallel_n(ksplit_reduce_task, &j, (int64_t)M * N * nt < 65536 ? 1 : M);
}

static void gemm_worker(void *ctx, int tid, int nt)
{
    gemm_job *j = ctx;
    oc_gemm_range r = oc_gemm_thread_range(j->split, j->M, j->N, j->K, j->kern->mr, j->kern->nr,
                                           tid, nt);
    if (j->split == 2 && tid == 0)
        j->ksplit_nt = nt;
    if (j->split == 2 && nt > 1) /* partial sums; nt 1 (nested in a parallel region): direct */
        blocked_range(j, r.m0, r.m1, r.n0, r.n1, r.k0, r.k1, 1.0f, 0.0f,
                      j->part + (size_t)tid * j->M * j->N, j->N);
    else
        blocked_range(j, r.m0, r.m1, r.n0, r.n1, r.k0, r.k1, j->alpha, j->beta, j->C, j->ldc);
}

static void gemm_blocked_run(gemm_job job);

void oc_gemm_blocked(const oc_gemm_kernel *kern, int transa, int transb, int M, int N, int K,
                     float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                     float *C, int ldc)
{
    gemm_job job = {kern, transa, transb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, NULL, 0,
                    NULL, 1, NULL};
    gemm_blocked_run(job);
}

static void gemm_blocked_run(gemm_job job)
{
    const oc_gemm_kernel *kern = job.kern;
    const int M = job.M, N = job.N, K = job.K, ldc = job.ldc;
    const float alpha = job.alpha, beta = job.beta;
    float *C = job.C;
    int m_tiles = (M + kern->mr - 1) / kern->mr, n_tiles = (N + kern->nr - 1) / kern->nr;
    double per_thread = (double)M * (double)N * (double)K / GEMM_PER_THREAD;
    int max_threads = per_thread < 1.0 ? 1 : per_thread > 256.0 ? 256 : (int)per_thread;
    int nt = oc_get_threads() < max_threads ? oc_get_threads() : max_threads;

    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0.0f) {
        oc_gemm_scale_c(M, N, beta, C, ldc);
        return;
    }
    job.split = m_tiles >= n_tiles ? 0 : 1;
    if (max_threads > (job.split == 0 ? m_tiles : n_tiles))
        max_threads = job.split == 0 ? m_tiles : n_tiles;
    /* A small C over a long K (weight gradients: [K_out][R*S*C] summed over N*P*Q) has too few
     * tiles to share out evenly: give each thread a slice of K and its own partial C, then add
     * the partials in thread order (deterministic for a given thread count). */
    if (nt > 1 && K >= 1024 && K >= 8 * (M > N ? M : N) && !job.epi) {
        pack_ws *ws;
        if (nt > GEMM_KSPLIT_MAX)
            nt = GEMM_KSPLIT_MAX;
        ws = ws_get(0, 0, (size_t)nt * M * N);
        if (ws) {
            job.split = 2;
            job.part = ws->buf[2];
            max_threads = nt;
        }
    }
    oc_parallel_n(gemm_worker, &job, max_threads);
    if (job.split == 2 && job.ksplit_nt > 1)
        oc_gemm_ksplit_reduce(M, N, job.ksplit_nt, job.part, alpha, beta, C, ldc);
}

/* ---------------------------------------------------------------- dispatch */

/* libgcc fills the CPU model in a constructor, so __builtin_cpu_supports is a load and a test
 * from then on. */
const oc_gemm_kernel *oc_gemm_pick(int N)
{
    if (__builtin_cpu_supports("avx512f"))
        return N <= 16 ? &oc_gemm_avx512_skinny : &oc_gemm_avx512_wide;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &oc_gemm_avx2_main;
    return NULL;
}

/* The family for a product with N columns once kern is picked: with few column panels each
 * packed A panel is used little, so the AVX-512 tile reads a non-transposed A in place (the
 * same sums). bench/gemm.c, 2 threads: resnet20's stage-3 forward (8192 x 64 x 576) 205 ->
 * 328 GF/s; with 1024 columns, packing wins by 3-5 %. */
static const oc_gemm_kernel *pick_direct_a(const oc_gemm_kernel *kern, int transa, int N)
{
    return kern == &oc_gemm_avx512_wide && !transa && N <= GEMM_DIRECT_A_N ? &oc_gemm_avx512_wide_a
                                                                           : kern;
}

void oc_gemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    const oc_gemm_kernel *kern;

    if (M <= 0 || N <= 0)
        return;
    OC_ASSERT(ldc >= N);
    OC_ASSERT(K <= 0 || lda >= (transa ? M : K));
    OC_ASSERT(K <= 0 || ldb >= (transb ? K : N));
    if (oc_math_get() == OC_MATH_BF16 && oc_bf16_supported()) {
        oc_gemm_bf16(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    kern = pick_direct_a(oc_gemm_pick(N), transa, N);
    if (!kern || (double)M * (double)N * (double)K < GEMM_SMALL)
        oc_gemm_simple(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        oc_gemm_blocked(kern, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---------------------------------------------------------------- pre-packed B
 * A convolution multiplies the same weights by every im2col chunk; packing them per chunk (and
 * per thread, when the threads split the rows) repeats a transposing copy of the whole weight
 * matrix each time. oc_gemm_pack_b packs op(B) once into the panels of the kernel family that
 * oc_gemm picks for N, each panel holding every k, so any K block of it is contiguous and the
 * driver reads it in place: the same values in the same order, bitwise oc_gemm's result. */

size_t oc_gemm_b_bytes(int N, int K)
{
    const oc_gemm_kernel *kern = oc_gemm_pick(N);
    size_t nr = kern ? (size_t)kern->nr : 1;
    return ((size_t)N + nr - 1) / nr * nr * (size_t)(K > 0 ? K : 1) * sizeof(float);
}

typedef struct {
    const oc_gemm_kernel *kern;
    int transb, N, K, ldb;
    const float *B;
    float *dst;
} packb_job;

static void packb_task(void *ctx, int tid, int nt)
{
    const packb_job *p = ctx;
    const int nr = p->kern->nr, panels = (p->N + nr - 1) / nr;
    int64_t a, e;
    oc_split_range(panels, tid, nt, &a, &e);
    for (int64_t q = a; q < e; q++) {
        int j0 = (int)q * nr, w = p->N - j0 < nr ? p->N - j0 : nr;
        pack_b(p->kern, p->transb, p->B, p->ldb, 0, p->K, j0, w, p->dst + (size_t)j0 * p->K);
    }
}

void oc_gemm_pack_b(int transb, int N, int K, const float *B, int ldb, float *dst)
{
    packb_job p = {oc_gemm_pick(N), transb, N, K, ldb, B, dst};
    if (!p.kern || N <= 0 || K <= 0)
        return; /* oc_gemm_pre then multiplies B itself */
    oc_parallel_n(packb_task, &p, (N + p.kern->nr - 1) / p.kern->nr);
}

size_t oc_gemm_packed_index(int N, int K, int k, int n, int *padded)
{
    const oc_gemm_kernel *kern = oc_gemm_pick(N);
    const int nr = kern ? kern->nr : 1, j0 = n / nr * nr, w = N - j0 < nr ? N - j0 : nr;
    const int last = (N - 1) / nr * nr, lw = N - last;
    if (padded)
        *padded = kern && b_stride(kern, lw) != lw;
    if (!kern)
        return (size_t)k * N + n;
    return (size_t)j0 * K + (size_t)k * b_stride(kern, w) + (size_t)(n - j0);
}

const float *oc_gemm_packed_cols(const float *bp, int N, int K, int j0, int n)
{
    const oc_gemm_kernel *kern = oc_gemm_pick(N);
    if (!bp || !kern || oc_gemm_pick(n) != kern || j0 % kern->nr || j0 + n > N)
        return NULL;
    return bp + (size_t)j0 * (size_t)K;
}

void oc_gemm_pre(int M, int N, int K, float alpha, const float *A, int lda, const float *bp,
                 const float *B, int ldb, int transb, float beta, float *C, int ldc)
{
    const oc_gemm_kernel *kern = oc_gemm_pick(N);
    if (M <= 0 || N <= 0)
        return;
    if (!kern || (double)M * (double)N * (double)K < GEMM_SMALL || K <= 0 ||
        oc_math_get() == OC_MATH_BF16) {
        oc_gemm(0, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    kern = pick_direct_a(kern, 0, N);
    {
        gemm_job job = {kern, 0, transb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, bp, 0,
                        NULL, 1, NULL};
        OC_ASSERT(ldc >= N && lda >= K && ldb >= (transb ? K : N));
        gemm_blocked_run(job);
    }
}

/* The blocked kernels' arithmetic, element by element, for products too small for them: one
 * FMA chain from zero per K block of GEMM_KC, the blocks' sums added in order (the kernels'
 * beta = 1 store), so oc_gemm_pre_epi gives the same bits however its caller cuts the rows. */
__attribute__((target_clones("arch=x86-64-v3", "default"))) static void
small_fma(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int transb,
          float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int jn = 0; jn < N; jn++) {
            float total = 0.0f;
            for (int pc = 0; pc < K; pc += GEMM_KC) {
                const int kc = K - pc < GEMM_KC ? K - pc : GEMM_KC;
                float acc = 0.0f;
                for (int k = pc; k < pc + kc; k++)
                    acc = fmaf(A[(size_t)i * lda + k],
                               transb ? B[(size_t)jn * ldb + k] : B[(size_t)k * ldb + jn], acc);
                total = pc == 0 ? acc : total + acc;
            }
            C[(size_t)i * ldc + jn] = total;
        }
}

void oc_gemm_pre_epi(int M, int N, int K, const float *A, int lda, const float *bp,
                     const float *B, int ldb, int transb, float *C, int ldc,
                     const oc_gemm_epi *epi)
{
    const oc_gemm_kernel *kern = oc_gemm_pick(N);
    if (M <= 0 || N <= 0)
        return;
    kern = kern ? pick_direct_a(kern, 0, N) : NULL;
    if (!kern || !kern->kernel_epi || K <= 0 || oc_math_get() == OC_MATH_BF16) {
        if (bp)
            oc_gemm_pre(M, N, K, 1.0f, A, lda, bp, B, ldb, transb, 0.0f, C, ldc);
        else
            oc_gemm(0, transb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        oc_gemm_epi_apply(epi, M, N, C, ldc);
        return;
    }
    if ((double)M * (double)N * (double)K < GEMM_SMALL) {
        small_fma(M, N, K, A, lda, B, ldb, transb, C, ldc);
        oc_gemm_epi_apply(epi, M, N, C, ldc);
        return;
    }
    {
        gemm_job job = {kern, 0, transb, M, N, K, 1.0f, 0.0f, A, B, C, lda, ldb, ldc, bp, 0,
                        NULL, 1, epi};
        OC_ASSERT(ldc >= N && lda >= K && ldb >= (transb ? K : N));
        gemm_blocked_run(job);
    }
}
