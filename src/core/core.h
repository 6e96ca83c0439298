/* Private core helpers shared by every layer: error reporting, assertions, aligned memory,
 * arenas, the thread pool and logging. */
#ifndef OC_CORE_H
#define OC_CORE_H

#include "ocelot.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define OC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define OC_PRINTF(a, b)
#endif

/* Stores a formatted message as this thread's last error and returns `st`. */
oc_status oc_fail(oc_status st, const char *fmt, ...) OC_PRINTF(2, 3);

/* Prefixes this thread's last error with "<context>: ". Returns `st` unchanged. */
oc_status oc_fail_context(oc_status st, const char *fmt, ...) OC_PRINTF(2, 3);

/* For bugs only: conditions that no input can trigger once a public entry point has validated
 * its arguments. Reports file and line and aborts in every build type. */
#define OC_ASSERT(cond)                                                                           \
    do {                                                                                          \
        if (!(cond))                                                                              \
            oc_assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)
_Noreturn void oc_assert_fail(const char *expr, const char *file, int line);

/* Logging through the application's callback (oc_set_log). */
void oc_log(oc_log_level level, const char *fmt, ...) OC_PRINTF(2, 3);

/* 64-byte aligned allocation; oc_free accepts NULL. oc_alloc_zero zero-fills. Both return NULL
 * on failure or when n == 0 would overflow; they do not set the last error. */
void *oc_alloc(size_t n);
void *oc_alloc_zero(size_t n);
void oc_free(void *p);

/* a*b with overflow detection: returns false on overflow. */
static inline bool oc_mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

/* Whether the n floats at p and the n floats at q share no element (a kernel may then treat
 * them as restrict). */
static inline bool oc_floats_apart(const float *p, const float *q, int64_t n)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q, bytes = (uintptr_t)n * sizeof(float);
    return a + bytes <= b || b + bytes <= a;
}

/* A bump allocator over one block allocated once. Memory is 64-byte aligned. Reset makes all
 * of it reusable without freeing; release frees the block. */
typedef struct {
    unsigned char *base;
    size_t cap;
    size_t used;
} oc_arena;

oc_status oc_arena_init(oc_arena *a, size_t cap);
void *oc_arena_alloc(oc_arena *a, size_t n); /* NULL when the arena is full */
void oc_arena_reset(oc_arena *a);
void oc_arena_release(oc_arena *a);

/* ---- thread pool (threads.c) ----
 * oc_parallel runs fn(ctx, tid, nthreads) once for each tid = 0..nthreads-1, spread over the
 * pool's threads and the caller (a thread may run several tids, one after another), and
 * returns when all have finished. The caller splits work by (tid, nthreads) with no locks;
 * reductions keep per-tid partials combined in a fixed order, so results do not depend on
 * scheduling. Calls made from inside a task run serially (nthreads = 1). */
typedef void (*oc_parallel_fn)(void *ctx, int tid, int nthreads);
void oc_parallel(oc_parallel_fn fn, void *ctx);
/* Same, with at most `max_threads` threads (useful when the work is small). */
void oc_parallel_n(oc_parallel_fn fn, void *ctx, int max_threads);

/* Static split of [0, n) for thread tid of nt: [*begin, *end). */
static inline void oc_split_range(int64_t n, int tid, int nt, int64_t *begin, int64_t *end)
{
    int64_t q = n / nt, r = n % nt;
    *begin = tid * q + (tid < r ? tid : r);
    *end = *begin + q + (tid < r ? 1 : 0);
}

/* ---- string building (strbuf.c) ---- */

/* A growable NUL-terminated string. Appends after an allocation failure are ignored and
 * `failed` stays set, so a builder can run to the end and check once. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} oc_sb;

void oc_sb_init(oc_sb *s);
void oc_sb_release(oc_sb *s);
void oc_sb_putn(oc_sb *s, const char *p, size_t n);
void oc_sb_puts(oc_sb *s, const char *p);
void oc_sb_printf(oc_sb *s, const char *fmt, ...) OC_PRINTF(2, 3);
/* Appends `n` copies of byte c. */
void oc_sb_pad(oc_sb *s, char c, size_t n);
/* Appends text escaped for HTML/XML text and attribute values (& < > " '); control characters
 * other than tab and newline are dropped. */
void oc_sb_html(oc_sb *s, const char *text);
/* Hands the buffer to the caller (NULL if an allocation failed) and resets the builder. */
char *oc_sb_take(oc_sb *s, size_t *len);

/* Display width of UTF-8 text in terminal columns (one per code point). */
size_t oc_utf8_width(const char *s);
/* Bytes of the longest prefix of s that is at most `cols` code points wide. */
size_t oc_utf8_prefix(const char *s, size_t cols);

/* JSON string literal of text (quoted, escaped) appended to s. */
void oc_sb_json(oc_sb *s, const char *text);

/* Standard base64 (RFC 4648, with padding) of n bytes appended to s. */
void oc_sb_base64(oc_sb *s, const uint8_t *data, size_t n);

/* Monotonic clock in seconds. */
double oc_now(void);

/* ---- random numbers (rng.c; the rest of the API is in ocelot.h) ----
 * mask[i] = oc_rng_uniform(r) < p ? 0 : keep for i < n, drawn in order: the same values and
 * the same final state as that loop, faster. */
void oc_rng_dropout_mask(oc_rng *r, int64_t n, float p, float keep, float *mask);

/* Eigen-decomposition of the symmetric n x n matrix a (row-major; only read) by cyclic
 * Jacobi rotations (eigen.c): values[n] in descending order, vectors[n][n] with row i the unit
 * eigenvector of values[i]. Returns the sweeps used, or -1 when n < 1 or it did not converge
 * (off-diagonal mass above 1e-13 of the total after 64 sweeps). Meant for small matrices (a
 * whitening layer's 12 x 12 patch covariance): O(n^3) per sweep, n^2 doubles of scratch on
 * the heap, -1 also on out-of-memory. */
int oc_eigen_sym(int n, const double *a, double *values, double *vectors);

#endif /* OC_CORE_H */
