/* data: the batch loader on the Fashion-MNIST test split: identical bytes for 0, 1 and 2
 * workers, seeds matter, resume from (epoch, batch), epochs cover every index once, mixup
 * targets, and clean shutdown with batches still in flight. */
#include "test.h"
#include "ocelot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NIDX = 600, BS = 64, NB = 14 }; /* 10 batches per epoch: NB crosses an epoch boundary */

static oc_dataset *ds;
static int64_t idx[NIDX];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static oc_loader_opts opts(int workers, uint64_t seed, const char *aug)
{
    oc_loader_opts o;
    oc_loader_opts_default(&o);
    o.batch_size = BS;
    o.workers = workers;
    o.seed = seed;
    o.augment = aug;
    o.pp.height = o.pp.width = 24;
    o.pp.channels = 1;
    o.pp.mean[0] = 0.286f;
    o.pp.std[0] = 0.353f;
    o.pp.resize = OC_RESIZE_CENTER_CROP;
    return o;
}

/* Concatenates NB batches (x, labels, targets, indices, positions) into one byte string. */
static size_t collect(const oc_loader_opts *o, int nb, uint8_t **out)
{
    oc_loader *l = NULL;
    size_t per = (size_t)BS * (24 * 24 * 4 + 4 + 10 * 4 + 8) + 16, len = 0;
    uint8_t *buf = calloc((size_t)nb, per);
    *out = buf;
    T_CHECK(oc_loader_new(ds, idx, NIDX, o, &l) == OC_OK, "loader: %s", oc_last_error());
    if (!l)
        return 0;
    for (int b = 0; b < nb; b++) {
        const oc_batch *bt;
        if (oc_loader_next(l, &bt) != OC_OK) {
            T_CHECK(0, "next %d: %s", b, oc_last_error());
            break;
        }
        memcpy(buf + len, bt->x, sizeof(float) * (size_t)bt->n * 24 * 24);
        len += sizeof(float) * (size_t)bt->n * 24 * 24;
        memcpy(buf + len, bt->labels, 4 * (size_t)bt->n);
        len += 4 * (size_t)bt->n;
        memcpy(buf + len, bt->indices, 8 * (size_t)bt->n);
        len += 8 * (size_t)bt->n;
        if (bt->targets) {
            memcpy(buf + len, bt->targets, 40 * (size_t)bt->n);
            len += 40 * (size_t)bt->n;
        }
        memcpy(buf + len, &bt->epoch, 8);
        memcpy(buf + len + 8, &bt->batch, 8);
        len += 16;
    }
    oc_loader_free(l);
    return len;
}

static void same_bytes_for_0_1_2_workers(void)
{
    const char *aug = "crop:pad=3,flip,rotate:10,color:0.2,cutout:6,mixup:0.4";
    uint8_t *a, *b, *c, *d;
    oc_loader_opts o0 = opts(0, 11, aug), o1 = opts(1, 11, aug), o2 = opts(2, 11, aug);
    oc_loader_opts o3 = opts(2, 12, aug);
    double t0 = now_s();
    size_t na = collect(&o0, NB, &a);
    double t1 = now_s();
    size_t nb = collect(&o1, NB, &b);
    size_t nc = collect(&o2, NB, &c);
    size_t nd = collect(&o3, NB, &d);
    T_CHECK(na > 0 && na == nb && nb == nc, "lengths %zu %zu %zu", na, nb, nc);
    T_CHECK(!memcmp(a, b, na), "1 worker differs from 0 workers");
    T_CHECK(!memcmp(a, c, na), "2 workers differ from 0 workers");
    T_CHECK(nd == na && memcmp(a, d, na) != 0, "another seed gave the same batches");
    oc_test_note("%d batches of %d (24x24, augmented + mixup), 0 workers: %.0f images/s", NB, BS,
                 NB * BS / (t1 - t0));
    free(a);
    free(b);
    free(c);
    free(d);
}

static void resume_matches_the_uninterrupted_run(void)
{
    oc_loader_opts o = opts(2, 5, "crop:pad=2,flip");
    uint8_t *full, *tail;
    size_t nf = collect(&o, NB, &full), nt;
    size_t batch_bytes = (size_t)BS * (24 * 24 * 4 + 4 + 8) + 16;
    /* 600 = 9 full batches + one of 24: batch 10 of the stream is epoch 1, batch 0 */
    size_t skip = 9 * batch_bytes + (size_t)24 * (24 * 24 * 4 + 4 + 8) + 16;
    o.start_epoch = 1;
    o.start_batch = 0;
    nt = collect(&o, NB - 10, &tail);
    T_CHECK(nf == skip + nt, "sizes: full %zu, skip %zu, tail %zu", nf, skip, nt);
    T_CHECK(nf == skip + nt && !memcmp(full + skip, tail, nt), "resumed batches differ");
    free(tail);
    /* just past epoch 0's last batch (a checkpoint between that step and the epoch's end) */
    o.start_epoch = 0;
    o.start_batch = 10;
    nt = collect(&o, NB - 10, &tail);
    T_CHECK(nf == skip + nt && !memcmp(full + skip, tail, nt),
            "resuming at (0, 10) differs from (1, 0)");
    free(full);
    free(tail);
}

static void epochs_cover_every_index_and_mixup_targets(void)
{
    oc_loader_opts o = opts(2, 3, "mixup:0.2");
    oc_loader *l = NULL;
    int *seen = calloc(NIDX, sizeof *seen);
    int64_t first_epoch_first = -1;
    T_CHECK(oc_loader_new(ds, idx, NIDX, &o, &l) == OC_OK, "loader: %s", oc_last_error());
    T_CHECK(oc_loader_num_batches(l) == 10, "batches per epoch %lld",
            (long long)oc_loader_num_batches(l));
    for (int b = 0; l && b < 20; b++) {
        const oc_batch *bt;
        if (oc_loader_next(l, &bt) != OC_OK)
            break;
        T_CHECK(bt->epoch == b / 10 && bt->batch == b % 10, "position %lld/%lld at %d",
                (long long)bt->epoch, (long long)bt->batch, b);
        T_CHECK(bt->n == (b % 10 == 9 ? 24 : BS), "batch %d has %d samples", b, bt->n);
        if (b == 0)
            first_epoch_first = bt->indices[0];
        if (b == 10)
            T_CHECK(bt->indices[0] != first_epoch_first || bt->indices[1] != idx[1],
                    "epoch 1 not reshuffled");
        for (int i = 0; i < bt->n; i++) {
            double sum = 0, lo = 0;
            if (b < 10)
                seen[(bt->indices[i] - idx[0]) / 7]++;
            for (int k = 0; k < 10; k++) {
                sum += (double)bt->targets[i * 10 + k];
                lo = (double)bt->targets[i * 10 + k] < lo ? (double)bt->targets[i * 10 + k] : lo;
            }
            T_CHECK(fabs(sum - 1) < 1e-5 && lo >= 0, "target row %d sums to %g (min %g)", i, sum,
                    lo);
        }
    }
    for (int i = 0; i < NIDX; i++)
        if (seen[i] != 1) {
            T_CHECK(0, "index %d seen %d times in epoch 0", i, seen[i]);
            break;
        }
    free(seen);
    oc_loader_free(l); /* workers still hold prefetched batches: must stop cleanly */
}

static void rejects_bad_arguments(void)
{
    oc_loader_opts o = opts(1, 0, NULL);
    oc_loader *l = NULL;
    int64_t bad = 1 << 30;
    T_CHECK(oc_loader_new(ds, &bad, 1, &o, &l) == OC_ERR_ARG && strstr(oc_last_error(), "range"),
            "out-of-range index: %s", oc_last_error());
    o.augment = "crop:pad=x";
    T_CHECK(oc_loader_new(ds, idx, NIDX, &o, &l) == OC_ERR_ARG && strstr(oc_last_error(), "pad"),
            "bad augment: %s", oc_last_error());
    o = opts(1, 0, NULL);
    o.start_batch = 11;
    T_CHECK(oc_loader_new(ds, idx, NIDX, &o, &l) == OC_ERR_ARG, "start batch past the epoch");
    o = opts(1, 0, NULL);
    o.batch_size = 0;
    T_CHECK(oc_loader_new(ds, idx, NIDX, &o, &l) == OC_ERR_ARG && l == NULL, "batch 0");
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"same_bytes_for_0_1_2_workers", same_bytes_for_0_1_2_workers},
        {"resume_matches_the_uninterrupted_run", resume_matches_the_uninterrupted_run},
        {"epochs_cover_every_index_and_mixup_targets", epochs_cover_every_index_and_mixup_targets},
        {"rejects_bad_arguments", rejects_bad_arguments},
    };
    int rc;
    if (oc_dataset_open("fashion-mnist", &(oc_dataset_opts){.split = OC_SPLIT_TEST}, &ds) != OC_OK) {
        printf("cannot open fashion-mnist: %s\n", oc_last_error());
        return 1;
    }
    for (int i = 0; i < NIDX; i++)
        idx[i] = 1000 + 7 * i;
    rc = oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    oc_dataset_free(ds);
    return rc;
}
