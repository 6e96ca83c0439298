/* core: tensors, arenas, RNG streams, thread pool, error messages. */
#include "test.h"
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static void tensor_new_and_free(void)
{
    int64_t shape[3] = {2, 3, 5};
    oc_tensor *t = NULL;
    T_CHECK(oc_tensor_new(&t, OC_DTYPE_F32, 3, shape) == OC_OK, "new failed: %s", oc_last_error());
    T_CHECK(oc_tensor_numel(t) == 30, "numel %lld", (long long)oc_tensor_numel(t));
    T_CHECK(oc_tensor_nbytes(t) == 120, "nbytes %zu", oc_tensor_nbytes(t));
    T_CHECK(((uintptr_t)t->data & 63) == 0, "not 64-byte aligned");
    for (int i = 0; i < 30; i++)
        T_CHECK(((float *)t->data)[i] == 0.0f, "not zeroed at %d", i);
    oc_tensor_free(t);
    oc_tensor_free(NULL);
}

static void tensor_rejects_bad_shapes(void)
{
    int64_t neg[2] = {2, -1};
    int64_t huge[4] = {INT64_C(1) << 40, INT64_C(1) << 40, 16, 16};
    oc_tensor *t = NULL;
    T_CHECK(oc_tensor_new(&t, OC_DTYPE_F32, 2, neg) == OC_ERR_ARG, "negative dim accepted");
    T_CHECK(strstr(oc_last_error(), "negative") != NULL, "message: %s", oc_last_error());
    T_CHECK(oc_tensor_new(&t, OC_DTYPE_F32, 4, huge) == OC_ERR_NOMEM, "overflow accepted");
    T_CHECK(oc_tensor_new(&t, OC_DTYPE_F32, OC_MAX_DIMS + 1, neg) == OC_ERR_ARG, "ndim accepted");
    T_CHECK(t == NULL, "out not NULL on failure");
}

static void arena_bumps_and_resets(void)
{
    oc_arena a;
    void *p, *q;
    T_CHECK(oc_arena_init(&a, 1024) == OC_OK, "init");
    p = oc_arena_alloc(&a, 10);
    q = oc_arena_alloc(&a, 10);
    T_CHECK(p && q && (char *)q - (char *)p == 64, "alignment: %td", (char *)q - (char *)p);
    T_CHECK(oc_arena_alloc(&a, 2000) == NULL, "over-capacity allocation succeeded");
    oc_arena_reset(&a);
    T_CHECK(oc_arena_alloc(&a, 10) == p, "reset did not rewind");
    oc_arena_release(&a);
}

/* Small blocks are 64-byte aligned; blocks of 4 MiB and more start on a 2 MiB boundary, the
 * only place the kernel can back them with huge pages, and are writable to their last byte;
 * a size near SIZE_MAX fails cleanly. */
static void alloc_aligns_small_and_huge(void)
{
    static const size_t sizes[] = {1, 100, (size_t)4 << 20, ((size_t)5 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = oc_alloc(sizes[i]);
        uintptr_t align = sizes[i] >= ((size_t)4 << 20) ? ((uintptr_t)2 << 20) : 64;
        T_CHECK(p != NULL, "size %zu: NULL", sizes[i]);
        if (!p)
            continue;
        T_CHECK((uintptr_t)p % align == 0, "size %zu: %p not %zu-aligned", sizes[i], (void *)p,
                (size_t)align);
        p[0] = 1, p[sizes[i] - 1] = 2;
        oc_free(p);
    }
    T_CHECK(oc_alloc(SIZE_MAX - 10) == NULL, "SIZE_MAX - 10 bytes allocated");
    oc_arena a;
    const int ok = oc_arena_init(&a, (size_t)6 << 20) == OC_OK;
    T_CHECK(ok, "init");
    if (!ok)
        return;
    T_CHECK((uintptr_t)oc_arena_alloc(&a, 10) % ((uintptr_t)2 << 20) == 0, "arena not aligned");
    oc_arena_release(&a);
}

/* oc_floats_apart: ranges that touch end to start are apart, any shared float is not, in
 * either order; an empty range shares nothing. */
static void floats_apart_at_the_edges(void)
{
    float buf[64];
    T_CHECK(oc_floats_apart(buf, buf + 16, 16) && oc_floats_apart(buf + 16, buf, 16),
            "ranges that touch are apart");
    T_CHECK(!oc_floats_apart(buf, buf + 15, 16) && !oc_floats_apart(buf + 15, buf, 16),
            "ranges sharing one float overlap");
    T_CHECK(!oc_floats_apart(buf, buf, 16) && !oc_floats_apart(buf + 3, buf, 40),
            "the same or a nested start overlaps");
    T_CHECK(oc_floats_apart(buf, buf, 0), "empty ranges share nothing");
}

static void rng_streams_are_reproducible_and_distinct(void)
{
    oc_rng a, b, c;
    int same = 1, differ = 0;
    double sum = 0, sq = 0;
    oc_rng_seed(&a, 42, 0);
    oc_rng_seed(&b, 42, 0);
    oc_rng_seed(&c, 42, 1);
    for (int i = 0; i < 1000; i++) {
        uint64_t x = oc_rng_u64(&a), y = oc_rng_u64(&b), z = oc_rng_u64(&c);
        same &= x == y;
        differ += x != z;
    }
    T_CHECK(same, "same seed and stream gave different numbers");
    T_CHECK(differ > 990, "streams 0 and 1 agree too often (%d differ)", differ);
    for (int i = 0; i < 100000; i++) {
        float u = oc_rng_uniform(&a);
        T_CHECK(u >= 0.0f && u < 1.0f, "uniform out of range: %g", (double)u);
        float n = oc_rng_normal(&a);
        sum += (double)n;
        sq += (double)n * (double)n;
    }
    T_CHECK(sum / 1e5 > -0.02 && sum / 1e5 < 0.02, "normal mean %g", sum / 1e5);
    T_CHECK(sq / 1e5 > 0.97 && sq / 1e5 < 1.03, "normal variance %g", sq / 1e5);
    for (int i = 0; i < 1000; i++)
        T_CHECK(oc_rng_below(&a, 7) < 7, "below out of range");
}

typedef struct {
    int hits[64];
    int nthreads;
} par_ctx;

static void mark(void *ctx, int tid, int nt)
{
    par_ctx *p = ctx;
    p->hits[tid]++;
    if (tid == 0)
        p->nthreads = nt;
}

static void parallel_runs_each_thread_once(void)
{
    par_ctx p;
    memset(&p, 0, sizeof p);
    oc_set_threads(2);
    oc_parallel(mark, &p);
    T_CHECK(p.nthreads >= 1 && p.nthreads <= 2, "nthreads %d", p.nthreads);
    for (int i = 0; i < p.nthreads; i++)
        T_CHECK(p.hits[i] == 1, "thread %d ran %d times", i, p.hits[i]);
    for (int n = 0; n < 10; n++) {
        int64_t total = 0, prev_end = 0;
        for (int t = 0; t < 3; t++) {
            int64_t b, e;
            oc_split_range(n, t, 3, &b, &e);
            T_CHECK(b == prev_end, "split not contiguous");
            total += e - b;
            prev_end = e;
        }
        T_CHECK(total == n, "split lost items");
    }
    oc_set_threads(0);
}

/* The pool under churn: 20,000 back-to-back calls of 2..8 tasks each run every task exactly
 * once and return only after all finished (the counts are read right after each call); a call
 * made inside a task runs serially (one task, nt = 1); two application threads calling at once
 * both get every task run. */
typedef struct {
    atomic_int hits[8];
    atomic_int nested_nt;
} churn_ctx;

static void nested_mark(void *ctx, int tid, int nt)
{
    churn_ctx *c = ctx;
    atomic_store(&c->nested_nt, nt * 100 + tid);
}

static void churn_task(void *ctx, int tid, int nt)
{
    churn_ctx *c = ctx;
    atomic_fetch_add(&c->hits[tid], 1);
    if (tid == nt - 1)
        oc_parallel(nested_mark, c);
}

static int churn(int rounds)
{
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        churn_ctx c;
        int nt = 2 + r % 7;
        for (int t = 0; t < 8; t++)
            atomic_init(&c.hits[t], 0);
        atomic_init(&c.nested_nt, -1);
        oc_parallel_n(churn_task, &c, nt);
        for (int t = 0; t < 8; t++)
            bad += atomic_load(&c.hits[t]) != (t < nt ? 1 : 0);
        bad += atomic_load(&c.nested_nt) != 100;
    }
    return bad;
}

static void *churn_thread(void *arg)
{
    *(int *)arg = churn(2000);
    return NULL;
}

static void parallel_pool_under_churn(void)
{
    pthread_t th;
    int bad_other = -1, bad;
    oc_set_threads(8);
    bad = churn(20000);
    T_CHECK(bad == 0, "%d wrong task counts in back-to-back calls", bad);
    T_CHECK(pthread_create(&th, NULL, churn_thread, &bad_other) == 0, "pthread_create");
    bad = churn(2000);
    pthread_join(th, NULL);
    T_CHECK(bad == 0 && bad_other == 0, "concurrent callers: %d / %d wrong counts", bad,
            bad_other);
    oc_set_threads(0);
}

static void errors_carry_messages(void)
{
    T_CHECK(oc_fail(OC_ERR_FORMAT, "bad %s", "thing") == OC_ERR_FORMAT, "status");
    T_CHECK(strcmp(oc_last_error(), "bad thing") == 0, "message '%s'", oc_last_error());
    oc_fail_context(OC_ERR_FORMAT, "file %d", 3);
    T_CHECK(strcmp(oc_last_error(), "file 3: bad thing") == 0, "context '%s'", oc_last_error());
    T_CHECK(strcmp(oc_status_name(OC_ERR_SHAPE), "OC_ERR_SHAPE") == 0, "status name");
}

/* The inlined dropout mask draws what a loop of oc_rng_uniform draws, and leaves the stream
 * where that loop leaves it. */
static void dropout_mask_matches_uniform_draws(void)
{
    enum { N = 10007 };
    static float want[N], got[N];
    const float p = 0.3f, keep = 1.0f / 0.7f;
    oc_rng a, b;
    int zeros = 0;
    oc_rng_seed(&a, 9, 4);
    b = a;
    for (int i = 0; i < N; i++)
        want[i] = oc_rng_uniform(&a) < p ? 0.0f : keep;
    oc_rng_dropout_mask(&b, N, p, keep, got);
    T_CHECK(!memcmp(want, got, sizeof want), "masks differ");
    T_CHECK(oc_rng_u64(&a) == oc_rng_u64(&b), "the streams end in different states");
    for (int i = 0; i < N; i++)
        zeros += got[i] == 0.0f;
    T_CHECK(zeros > N / 4 && zeros < N * 35 / 100, "%d of %d dropped at p = 0.3", zeros, N);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"tensor_new_and_free", tensor_new_and_free},
        {"tensor_rejects_bad_shapes", tensor_rejects_bad_shapes},
        {"arena_bumps_and_resets", arena_bumps_and_resets},
        {"alloc_aligns_small_and_huge", alloc_aligns_small_and_huge},
        {"floats_apart_at_the_edges", floats_apart_at_the_edges},
        {"rng_streams_are_reproducible_and_distinct", rng_streams_are_reproducible_and_distinct},
        {"dropout_mask_matches_uniform_draws", dropout_mask_matches_uniform_draws},
        {"parallel_runs_each_thread_once", parallel_runs_each_thread_once},
        {"parallel_pool_under_churn", parallel_pool_under_churn},
        {"errors_carry_messages", errors_carry_messages},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
