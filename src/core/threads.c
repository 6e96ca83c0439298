/* The process-wide thread pool. OpenMP's runtime is the pool when the build enables it (its
 * worker threads persist and spin briefly between regions, which keeps per-layer dispatch
 * cheap); without OpenMP everything runs on the calling thread. */
#include "core.h"

#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
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
#ifndef _OPENMP
    return 1;
#else
    return n_threads;
#endif
}

void oc_parallel_n(oc_parallel_fn fn, void *ctx, int max_threads)
{
    int nt = oc_get_threads();
    if (max_threads > 0 && max_threads < nt)
        nt = max_threads;
#ifdef _OPENMP
    if (nt > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(nt)
        {
            /* the runtime may give fewer threads than asked; split by what we really got */
            fn(ctx, omp_get_thread_num(), omp_get_num_threads());
        }
        return;
    }
#endif
    fn(ctx, 0, 1);
}

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
