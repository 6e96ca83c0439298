/* Timing helpers shared by the benchmark programs (bench/gemm.c, bench/conv.c), each built as
 * one file: static inline functions.
 *
 * On a shared machine wall-clock rates fall with the load; with bench_cpu_time set (the
 * programs set it for 1-thread runs when OC_BENCH_CPU_TIME=1) bench_now reads the calling
 * thread's CPU clock instead (time it was actually running), which is what a quiet machine
 * would show, less some cache pollution. */
#ifndef OC_BENCH_TIMING_H
#define OC_BENCH_TIMING_H

#include "core/core.h"

#include <stdlib.h>
#include <time.h>

static int bench_cpu_time;

static inline double bench_now(void)
{
    struct timespec ts;
    if (!bench_cpu_time)
        return oc_now();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of t[0..n) (sorts t). */
static inline double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return t[n / 2];
}

/* The smallest of t[0..n) (sorts t). */
static inline double bench_min(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return t[0];
}

#endif
