/* Stratified, seeded index splits. Within each class the members are shuffled by one RNG
 * stream seeded from `seed` (classes visited in label order), the first k are picked, and the
 * outputs keep the input order: the result depends only on (labels, idx, fraction, seed). */
#include "data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Positions (into idx) grouped by class: members[start[k] .. start[k+1]). */
typedef struct {
    int K;
    int64_t *start;   /* [K+1] */
    int64_t *members; /* [n] */
} by_class;

static void bc_free(by_class *b)
{
    free(b->start);
    free(b->members);
}

static oc_status bc_build(const oc_dataset *ds, const int64_t *idx, int64_t n, by_class *b)
{
    int64_t *fill;
    memset(b, 0, sizeof *b);
    if (!ds || (!idx && n) || n < 0)
        return oc_fail(OC_ERR_ARG, "split: NULL dataset or index list");
    b->K = oc_dataset_num_classes(ds);
    b->start = calloc((size_t)b->K + 2, sizeof *b->start);
    b->members = malloc(sizeof *b->members * (size_t)(n ? n : 1));
    fill = calloc((size_t)b->K + 1, sizeof *fill);
    if (!b->start || !b->members || !fill) {
        free(fill);
        bc_free(b);
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t l;
        if (idx[i] < 0 || idx[i] >= oc_dataset_count(ds)) {
            free(fill);
            bc_free(b);
            return oc_fail(OC_ERR_ARG, "split: index %lld out of range", (long long)idx[i]);
        }
        l = oc_dataset_label(ds, idx[i]);
        b->start[l + 1]++;
    }
    for (int k = 0; k < b->K; k++)
        b->start[k + 1] += b->start[k];
    for (int64_t i = 0; i < n; i++) {
        int32_t l = oc_dataset_label(ds, idx[i]);
        b->members[b->start[l] + fill[l]++] = i;
    }
    free(fill);
    return OC_OK;
}

/* Marks `take` random members of class k in `mark`. */
static void pick(const by_class *b, int k, int64_t take, oc_rng *r, uint8_t *mark)
{
    int64_t *m = b->members + b->start[k];
    int64_t cnt = b->start[k + 1] - b->start[k];
    for (int64_t i = 0; i < take; i++) { /* partial Fisher-Yates */
        int64_t j = i + (int64_t)oc_rng_below(r, (uint64_t)(cnt - i));
        int64_t t = m[i];
        m[i] = m[j];
        m[j] = t;
        mark[m[i]] = 1;
    }
}

oc_status oc_split_stratified(const oc_dataset *ds, const int64_t *idx, int64_t n, double frac,
                              uint64_t seed, int64_t **train, int64_t *n_train, int64_t **val,
                              int64_t *n_val)
{
    by_class b;
    uint8_t *mark;
    oc_rng r;
    oc_status st;
    int64_t nv = 0, nt = 0;
    if (!train || !n_train || !val || !n_val)
        return oc_fail(OC_ERR_ARG, "oc_split_stratified: NULL output");
    *train = *val = NULL;
    *n_train = *n_val = 0;
    if (!(frac >= 0 && frac < 1))
        return oc_fail(OC_ERR_ARG, "validation fraction %g must be in [0, 1)", frac);
    if ((st = bc_build(ds, idx, n, &b)) != OC_OK)
        return st;
    mark = calloc((size_t)(n ? n : 1), 1);
    if (!mark) {
        bc_free(&b);
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    oc_rng_seed(&r, seed, 0x5e11);
    for (int k = 0; k < b.K; k++) {
        int64_t cnt = b.start[k + 1] - b.start[k];
        int64_t take = (int64_t)floor(frac * (double)cnt + 0.5);
        if (frac > 0 && cnt >= 2 && take == 0)
            take = 1;
        if (take >= cnt && cnt >= 1)
            take = cnt >= 2 ? cnt - 1 : 0; /* keep every class in training */
        pick(&b, k, take, &r, mark);
        nv += take;
    }
    nt = n - nv;
    *train = malloc(sizeof **train * (size_t)(nt ? nt : 1));
    *val = malloc(sizeof **val * (size_t)(nv ? nv : 1));
    if (!*train || !*val) {
        free(*train);
        free(*val);
        *train = *val = NULL;
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
    } else {
        int64_t a = 0, c = 0;
        for (int64_t i = 0; i < n; i++) {
            if (mark[i])
                (*val)[c++] = idx[i];
            else
                (*train)[a++] = idx[i];
        }
        *n_train = nt;
        *n_val = nv;
    }
    free(mark);
    bc_free(&b);
    return st;
}

oc_status oc_subset_stratified(const oc_dataset *ds, const int64_t *idx, int64_t n, int64_t limit,
                               uint64_t seed, int64_t **out, int64_t *n_out)
{
    by_class b;
    uint8_t *mark;
    int64_t *quota = NULL;
    uint8_t *extra = NULL;
    oc_rng r;
    oc_status st;
    if (!out || !n_out)
        return oc_fail(OC_ERR_ARG, "oc_subset_stratified: NULL output");
    *out = NULL;
    *n_out = 0;
    if (limit < 0)
        return oc_fail(OC_ERR_ARG, "subset size %lld is negative", (long long)limit);
    if ((st = bc_build(ds, idx, n, &b)) != OC_OK)
        return st;
    if (limit > n)
        limit = n;
    mark = calloc((size_t)(n ? n : 1), 1);
    quota = calloc((size_t)b.K + 1, sizeof *quota);
    extra = calloc((size_t)b.K + 1, 1);
    *out = malloc(sizeof **out * (size_t)(limit ? limit : 1));
    if (!mark || !quota || !extra || !*out) {
        free(*out);
        *out = NULL;
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (n > 0) {
        /* largest remainder: floor quotas, then one more to the largest remainders (ties to
         * the lower class index) until the total is `limit` */
        int64_t given = 0;
        for (int k = 0; k < b.K; k++) {
            int64_t cnt = b.start[k + 1] - b.start[k];
            quota[k] = cnt * limit / n;
            given += quota[k];
        }
        while (given < limit) {
            int best = -1;
            int64_t best_rem = -1;
            for (int k = 0; k < b.K; k++) {
                int64_t cnt = b.start[k + 1] - b.start[k];
                int64_t rem = (cnt * limit) % n;
                if (!extra[k] && quota[k] < cnt && rem > best_rem) {
                    best = k;
                    best_rem = rem;
                }
            }
            OC_ASSERT(best >= 0);
            extra[best] = 1;
            quota[best]++;
            given++;
        }
    }
    oc_rng_seed(&r, seed, 0x5ab5e7);
    for (int k = 0; k < b.K; k++)
        pick(&b, k, quota[k], &r, mark);
    {
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++)
            if (mark[i])
                (*out)[c++] = idx[i];
        *n_out = c;
    }
done:
    free(extra);
    free(quota);
    free(mark);
    bc_free(&b);
    return st;
}
