/* A small test harness. Each tests/unit/test_<area>.c lists its cases and calls oc_test_main,
 * which runs them (or those named on the command line), prints one line per case and closes
 * with "N passed, N failed"; the exit status is non-zero when any case failed. */
#ifndef OC_TEST_H
#define OC_TEST_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} oc_test_case;

int oc_test_main(int argc, char **argv, const oc_test_case *cases, int n_cases);

/* Records a failure of the running case (it goes on, so one run shows every problem). */
void oc_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define T_CHECK(cond, ...)                                                                        \
    do {                                                                                          \
        if (!(cond))                                                                              \
            oc_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                        \
    } while (0)

/* Compares n floats with |a - b| <= atol + rtol * |b|; on failure reports the worst index, both
 * values and the max difference. Returns 1 if all close. `what` names the comparison. */
int oc_test_close(const char *file, int line, const char *what, const float *a, const float *b,
                  int64_t n, double atol, double rtol);
#define T_CLOSE(what, a, b, n, atol, rtol) oc_test_close(__FILE__, __LINE__, what, a, b, n, atol, rtol)

/* Prints an informational line under the current case (e.g. a measured error). */
void oc_test_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The deterministic values the PyTorch fixtures and the C tests both compute instead of storing
 * weights (tests/ref/torch_zoo.py: sym_uniform, fnv1a): element i of stream `seed`, uniform in
 * [-1, 1) and exact in double; and the 32-bit FNV-1a hash that names a tensor's stream. */
double oc_test_sym_uniform(uint32_t seed, size_t i);
uint32_t oc_test_fnv1a(const char *s);

/* Removes the regular files directly inside `dir`, then `dir` itself (the temporary
 * directories tests make with mkdtemp hold no sub-directories). */
void oc_test_remove_dir(const char *dir);

/* "dir/rel" in one of four rotating static buffers (so a call may take up to four paths). */
const char *oc_test_path(const char *dir, const char *rel);

/* Directory of the repository's test data: tests/fixtures (run from the repo root). */
#define OC_FIXTURE_DIR "tests/fixtures"

/* ---- fixtures: named float32/int32 arrays written by tests/ref/fixture.py ---- */
typedef struct {
    char name[64];
    int ndim;
    int64_t shape[8];
    int is_int;     /* 1: data holds int32 values */
    int64_t numel;
    void *data;     /* float* or int32_t* */
} oc_fixture_array;

typedef struct {
    int n;
    oc_fixture_array *arrays;
} oc_fixture;

/* Loads tests/fixtures/<name>.bin; returns NULL (and records a test failure) if missing. */
oc_fixture *oc_fixture_load(const char *name);
/* The array called `name`, or NULL (and a recorded failure). */
oc_fixture_array *oc_fixture_get(oc_fixture *f, const char *name);
/* Convenience: float data of array `name` (NULL + failure if missing). */
float *oc_fixture_f32(oc_fixture *f, const char *name);
void oc_fixture_free(oc_fixture *f);

#endif
