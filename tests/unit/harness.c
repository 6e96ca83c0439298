/* Test harness and fixture reader (see test.h). */
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int case_failures;
static const char *case_name;

void oc_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    case_failures++;
    printf("    %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void oc_test_note(const char *fmt, ...)
{
    va_list ap;
    printf("    ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int oc_test_close(const char *file, int line, const char *what, const float *a, const float *b,
                  int64_t n, double atol, double rtol)
{
    int64_t worst = -1, bad = 0;
    double worst_excess = 0, max_diff = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double tol = atol + rtol * fabs((double)b[i]);
        if (d > max_diff || isnan(d))
            max_diff = d;
        if (!(d <= tol)) {
            bad++;
            if (worst < 0 || d - tol > worst_excess || isnan(d)) {
                worst = i;
                worst_excess = d - tol;
            }
        }
    }
    if (bad) {
        oc_test_fail(file, line,
                     "%s: %lld of %lld values differ; worst at [%lld]: got %.9g want %.9g "
                     "(max |diff| %.3g, atol %.1g rtol %.1g)",
                     what, (long long)bad, (long long)n, (long long)worst, (double)a[worst],
                     (double)b[worst], max_diff, atol, rtol);
        return 0;
    }
    return 1;
}

int oc_test_main(int argc, char **argv, const oc_test_case *cases, int n_cases)
{
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < n_cases; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                wanted |= strcmp(argv[a], cases[i].name) == 0;
            if (!wanted)
                continue;
        }
        case_failures = 0;
        case_name = cases[i].name;
        printf("RUN  %s\n", case_name);
        cases[i].fn();
        if (case_failures) {
            printf("FAIL %s\n", case_name);
            failed++;
        } else {
            printf("PASS %s\n", case_name);
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* Fixture layout (little-endian): "OCFX" u32 version=1 u32 count, then per array:
 * u16 name_len, name bytes, u8 kind (0 f32, 1 i32), u8 ndim, i64 shape[ndim], data. */
static int rd(FILE *f, void *p, size_t n)
{
    return fread(p, 1, n, f) == n;
}

oc_fixture *oc_fixture_load(const char *name)
{
    char path[512];
    FILE *f;
    char magic[4];
    uint32_t version, count;
    oc_fixture *fx;

    snprintf(path, sizeof path, "%s/%s.bin", OC_FIXTURE_DIR, name);
    f = fopen(path, "rb");
    if (!f) {
        oc_test_fail(__FILE__, __LINE__, "fixture %s missing (run tests/ref/gen_all.sh)", path);
        return NULL;
    }
    if (!rd(f, magic, 4) || memcmp(magic, "OCFX", 4) || !rd(f, &version, 4) || version != 1 ||
        !rd(f, &count, 4) || count > 100000) {
        oc_test_fail(__FILE__, __LINE__, "fixture %s: bad header", path);
        fclose(f);
        return NULL;
    }
    fx = calloc(1, sizeof *fx);
    fx->arrays = calloc(count ? count : 1, sizeof *fx->arrays);
    fx->n = (int)count;
    for (uint32_t i = 0; i < count; i++) {
        oc_fixture_array *a = &fx->arrays[i];
        uint16_t len;
        uint8_t kind, ndim;
        if (!rd(f, &len, 2) || len >= sizeof a->name || !rd(f, a->name, len) || !rd(f, &kind, 1) ||
            !rd(f, &ndim, 1) || ndim > 8)
            goto bad;
        a->name[len] = 0;
        a->is_int = kind == 1;
        a->ndim = ndim;
        a->numel = 1;
        for (int d = 0; d < ndim; d++) {
            if (!rd(f, &a->shape[d], 8) || a->shape[d] < 0)
                goto bad;
            a->numel *= a->shape[d];
        }
        a->data = malloc((size_t)a->numel * 4 + 4);
        if (!rd(f, a->data, (size_t)a->numel * 4))
            goto bad;
    }
    fclose(f);
    return fx;
bad:
    oc_test_fail(__FILE__, __LINE__, "fixture %s: truncated or corrupt", path);
    fclose(f);
    oc_fixture_free(fx);
    return NULL;
}

oc_fixture_array *oc_fixture_get(oc_fixture *f, const char *name)
{
    if (!f)
        return NULL;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->arrays[i].name, name) == 0)
            return &f->arrays[i];
    oc_test_fail(__FILE__, __LINE__, "fixture has no array '%s'", name);
    return NULL;
}

float *oc_fixture_f32(oc_fixture *f, const char *name)
{
    oc_fixture_array *a = oc_fixture_get(f, name);
    return a ? (float *)a->data : NULL;
}

void oc_fixture_free(oc_fixture *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free(f->arrays[i].data);
    free(f->arrays);
    free(f);
}

void oc_test_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* lowbias32 (C: here; Python: torch_zoo._hash32) */
static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

double oc_test_sym_uniform(uint32_t seed, size_t i)
{
    uint32_t u = hash32((uint32_t)i ^ hash32(seed));
    return 2.0 * ((double)u / 4294967296.0) - 1.0;
}

uint32_t oc_test_fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

const char *oc_test_path(const char *dir, const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, rel);
    return buf[k];
}
