/* The process-wide thread pool (pthreads; the build's THREADS switch turns threading on, and
 * THREADS=0 runs everything on the calling thread).
 *
 * A parallel call with nt threads publishes nt tasks, fn(ctx, 0, nt) .. fn(ctx, nt - 1, nt).
 * The caller and the pool's workers claim tasks one at a time with an atomic counter, and the
 * caller returns once every task has finished. Unlike a fork/join team (OpenMP's), nobody waits
 * for a thread that never got a core: on a machine shared with other jobs a worker that is not
 * scheduled simply claims nothing and the caller runs the remaining tasks itself, so a layer
 * costs at worst its one-thread time instead of a scheduler time slice per barrier. Results do
 * not depend on which thread ran which task: kernels split work by (tid, nt) alone.
 *
 * Workers spin for a short while after their last task (back-to-back layers then start without
 * a system call), then sleep on a futex. OMP_WAIT_POLICY=passive (the setting the benchmarks
 * document for loaded machines) turns the spinning off. One caller at a time owns the pool; a
 * concurrent caller (another application thread) runs its tasks itself, in order. */
#include "core.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef OC_THREADS
#define OC_POOL 1
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#else
#define OC_POOL 0
#endif

static int n_threads;

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void oc_set_threads(int n)
{
    n_threads = n > 0 ? n : online_cores();
}

int oc_get_threads(void)
{
    if (n_threads <= 0)
        n_threads = online_cores();
    return OC_POOL ? n_threads : 1;
}

static void run_serial(oc_parallel_fn fn, void *ctx, int nt)
{
    for (int t = 0; t < nt; t++)
        fn(ctx, t, nt);
}

#if OC_POOL

/* Most worker threads the pool starts (the caller is one more). */
#define POOL_MAX_WORKERS 255
/* Task index of a claim word whose job is being written: above any task count. */
#define POOL_CLOSED 0x7fffffffu
/* Spin iterations of an idle worker before it sleeps (each a pause, about 10-40 ns). */
#define POOL_SPIN 8192

typedef struct {
    pthread_mutex_t owner;          /* held by the caller of the running parallel call */
    pthread_mutex_t grow;           /* starting workers */
    /* the job: written by the owner before it publishes `claim`, read by claimers */
    _Atomic(oc_parallel_fn) fn;
    _Atomic(void *) ctx;
    atomic_int nt;
    /* (generation << 32) | next task: claiming is a compare-and-swap on the whole word, so a
     * claim succeeds only for the job it read */
    _Atomic uint64_t claim;
    atomic_int done;                /* tasks of this generation finished */
    atomic_uint wake;               /* futex word: bumped at each publication */
    atomic_int sleepers;
    atomic_int n_workers;
    int spin;
} oc_pool;

static oc_pool pool = {.owner = PTHREAD_MUTEX_INITIALIZER, .grow = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static _Thread_local int in_task; /* this thread is running a task: nested calls are serial */

static void pool_init(void)
{
    const char *w = getenv("OMP_WAIT_POLICY");
    pool.spin = w && (!strcmp(w, "passive") || !strcmp(w, "PASSIVE")) ? 0 : POOL_SPIN;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs one task of the published job; returns 0 when none is left. */
static int run_one(void)
{
    uint64_t c = atomic_load(&pool.claim);
    for (;;) {
        oc_parallel_fn fn = atomic_load_explicit(&pool.fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&pool.ctx, memory_order_relaxed);
        int nt = atomic_load_explicit(&pool.nt, memory_order_relaxed);
        int t = (int)(c & 0xffffffffu);
        if (t >= nt)
            return 0;
        /* the job fields cannot change while task t of this generation is unclaimed: the owner
         * publishes the next job only after every task finished */
        if (atomic_compare_exchange_weak(&pool.claim, &c, c + 1)) {
            fn(ctx, t, nt);
            atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
            return 1;
        }
    }
}

static int work_left(void)
{
    uint64_t c = atomic_load(&pool.claim);
    return (int)(c & 0xffffffffu) < atomic_load_explicit(&pool.nt, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    (void)arg;
    in_task = 1;
    for (;;) {
        while (run_one())
            ;
        for (int i = 0; i < pool.spin && !work_left(); i++)
            cpu_relax();
        if (work_left())
            continue;
        unsigned seq = atomic_load(&pool.wake);
        atomic_fetch_add(&pool.sleepers, 1);
        if (!work_left())
            syscall(SYS_futex, &pool.wake, FUTEX_WAIT_PRIVATE, seq, NULL, NULL, 0);
        atomic_fetch_sub(&pool.sleepers, 1);
    }
    return NULL;
}

/* Starts workers up to `want` (never stops them; idle ones sleep). */
static void pool_grow(int want)
{
    if (want > POOL_MAX_WORKERS)
        want = POOL_MAX_WORKERS;
    pthread_mutex_lock(&pool.grow);
    while (pool.n_workers < want) {
        pthread_t th;
        pthread_attr_t attr;
        int ok = pthread_attr_init(&attr) == 0;
        if (ok)
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = ok && pthread_create(&th, &attr, worker_main, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!ok)
            break; /* fewer helpers: the caller runs more tasks itself */
        pool.n_workers++;
    }
    pthread_mutex_unlock(&pool.grow);
}

static void pool_run(oc_parallel_fn fn, void *ctx, int nt)
{
    uint64_t gen;
    pthread_once(&pool_once, pool_init);
    if (pool.n_workers < nt - 1)
        pool_grow(nt - 1);
    gen = (atomic_load(&pool.claim) >> 32) + 1;
    /* Close the claim word under the new generation before the job fields change: a claimer
     * that read the old (fully claimed) word and then the new fields would otherwise see a task
     * index below the new nt and win its compare-and-swap on the old word, running a task of
     * the new job that is then claimed a second time. */
    atomic_store(&pool.claim, gen << 32 | POOL_CLOSED);
    atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool.nt, nt, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    atomic_store(&pool.claim, gen << 32); /* publishes the job (seq_cst: see the sleepers) */
    atomic_fetch_add(&pool.wake, 1);
    if (atomic_load(&pool.sleepers) > 0)
        syscall(SYS_futex, &pool.wake, FUTEX_WAKE_PRIVATE, nt - 1, NULL, NULL, 0);
    while (run_one())
        ;
    /* every task is claimed; wait for those other threads are still running */
    for (int i = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < nt; i++) {
        if (i < 4096)
            cpu_relax();
        else
            sched_yield(); /* the thread we wait for may need this core */
    }
}

void oc_parallel_n(oc_parallel_fn fn, void *ctx, int max_threads)
{
    int nt = oc_get_threads();
    if (max_threads > 0 && max_threads < nt)
        nt = max_threads;
    if (nt <= 1 || in_task) {
        fn(ctx, 0, 1);
        return;
    }
    in_task = 1; /* calls made by the tasks this thread runs stay serial */
    if (pthread_mutex_trylock(&pool.owner) != 0) {
        run_serial(fn, ctx, nt); /* another thread owns the pool */
    } else {
        pool_run(fn, ctx, nt);
        pthread_mutex_unlock(&pool.owner);
    }
    in_task = 0;
}

#else

void oc_parallel_n(oc_parallel_fn fn, void *ctx, int max_threads)
{
    (void)max_threads;
    fn(ctx, 0, 1);
}

#endif

void oc_parallel(oc_parallel_fn fn, void *ctx)
{
    oc_parallel_n(fn, ctx, 0);
}

double oc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
