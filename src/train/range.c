/* Elementwise work over a flat buffer, split across the thread pool (train.h). */
#include "core/core.h"
#include "train/train.h"

/* Below this many floats per thread the fork/join costs more than the update saves (a step of
 * SGD or AdamW streams 12-20 bytes per float; 32 K floats is ~10 us of memory traffic). */
#define RANGE_MIN_PER_THREAD 32768
#define RANGE_LINE 16

typedef struct {
    size_t n;
    oc_range_fn fn;
    void *ctx;
} range_ctx;

static void range_worker(void *ctx, int tid, int nt)
{
    const range_ctx *c = ctx;
    int64_t lines = (int64_t)((c->n + RANGE_LINE - 1) / RANGE_LINE), lb, le;
    size_t b, e;
    oc_split_range(lines, tid, nt, &lb, &le);
    b = (size_t)lb * RANGE_LINE;
    e = (size_t)le * RANGE_LINE;
    if (e > c->n)
        e = c->n;
    if (b < e)
        c->fn(c->ctx, b, e);
}

void oc_train_parallel_range(size_t n, oc_range_fn fn, void *ctx)
{
    size_t threads = n / RANGE_MIN_PER_THREAD;
    range_ctx c = {n, fn, ctx};
    if (threads <= 1) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    oc_parallel_n(range_worker, &c, threads > 1024 ? 1024 : (int)threads);
}
