/* The batch loader. Batch number `seq` (counted from the resume position) is a pure function of
 * (dataset, index list, options, seq): the epoch's permutation comes from (seed, epoch), each
 * sample's augmentation from (seed, epoch, dataset index), mixup from (seed, epoch, batch). So
 * workers may fill batches in any order and at any speed and the caller still sees the same
 * bytes for 0, 1 or 2 workers.
 *
 * Slots form a ring: batch seq lives in slot seq % nslots. A worker claims the next seq when its
 * slot is free, fills it without holding the lock, and marks it ready; oc_loader_next waits for
 * its seq to be ready, hands it out, and frees it on the following call. */
#include "data.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_HELD };

#define SHUFFLE_STREAM 0x5f1ea11ull
#define MIXUP_SEED_XOR 0x6d697875702d2dull

typedef struct {
    int state;
    int64_t seq;
    oc_status st;
    char err[1024];
    oc_batch b;
    float *tmp;      /* [bs][len] mixup copy */
    int *perm;       /* [bs] mixup partners */
    int64_t *idx;    /* [bs] */
} slot;

/* What one producer (worker thread, or the caller when workers = 0) owns. */
typedef struct {
    oc_loader *l;
    pthread_t thread;
    int started;
    int64_t *perm;   /* [n] permutation of the epoch `perm_epoch` */
    int64_t perm_epoch;
    oc_image img, scratch[2];
} producer;

struct oc_loader {
    oc_dataset *ds;
    int64_t *idx, n;
    oc_loader_opts o;
    oc_augment *aug;
    int K;
    size_t len;          /* floats per sample */
    int64_t per_epoch;
    int64_t first;       /* global batch number of seq 0 */
    int nslots;
    slot *slots;
    int nprod;
    producer *prod;      /* [max(workers, 1)] */
    pthread_mutex_t mu;
    pthread_cond_t cond_free, cond_ready;
    int64_t next_fill, next_take;
    int held;            /* slot handed out by the last oc_loader_next, or -1 */
    int stop;
};

void oc_loader_opts_default(oc_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_size = 128;
    o->shuffle = 1;
    o->workers = 2;
    o->prefetch = 2;
    o->pp.height = o->pp.width = 32;
    o->pp.channels = 3;
    for (int c = 0; c < 4; c++)
        o->pp.std[c] = 1.0f;
    o->pp.resize = OC_RESIZE_STRETCH;
}

int64_t oc_loader_num_batches(const oc_loader *l)
{
    return l ? l->per_epoch : 0;
}

static void make_perm(const oc_loader *l, producer *p, int64_t epoch)
{
    oc_rng r;
    if (p->perm_epoch == epoch)
        return;
    for (int64_t i = 0; i < l->n; i++)
        p->perm[i] = i;
    if (l->o.shuffle) {
        oc_rng_seed(&r, l->o.seed, SHUFFLE_STREAM ^ ((uint64_t)epoch << 20));
        for (int64_t i = l->n - 1; i > 0; i--) {
            int64_t j = (int64_t)oc_rng_below(&r, (uint64_t)i + 1), t = p->perm[i];
            p->perm[i] = p->perm[j];
            p->perm[j] = t;
        }
    }
    p->perm_epoch = epoch;
}

/* Fills slot s with batch `seq`. */
static void fill(oc_loader *l, producer *p, slot *s, int64_t seq)
{
    int64_t g = l->first + seq, epoch = g / l->per_epoch, batch = g % l->per_epoch;
    int64_t lo = batch * l->o.batch_size;
    int64_t hi = lo + l->o.batch_size < l->n ? lo + l->o.batch_size : l->n;
    oc_status st = OC_OK;
    make_perm(l, p, epoch);
    s->b.epoch = epoch;
    s->b.batch = batch;
    s->b.n = (int)(hi - lo);
    for (int64_t k = lo; k < hi && st == OC_OK; k++) {
        int64_t i = k - lo, di = l->idx[p->perm[k]];
        s->idx[i] = di;
        st = oc_dataset_get(l->ds, di, &p->img, &s->b.labels[i]);
        if (st == OC_OK)
            st = oc_augment_sample_at(l->aug, &p->img, &l->o.pp, l->o.seed, epoch, di,
                                      p->scratch, s->b.x + (size_t)i * l->len);
        if (st != OC_OK)
            oc_fail_context(st, "sample %lld (epoch %lld, batch %lld)", (long long)di,
                            (long long)epoch, (long long)batch);
    }
    if (st == OC_OK && s->b.targets) {
        oc_rng r;
        oc_rng_seed(&r, l->o.seed ^ MIXUP_SEED_XOR, ((uint64_t)epoch << 32) ^ (uint64_t)batch);
        augment_mixup(oc_augment_mixup_alpha(l->aug), &r, s->b.n, l->K, l->len, s->b.x, s->tmp,
                      s->perm, s->b.labels, s->b.targets);
    }
    s->st = st;
    if (st != OC_OK)
        snprintf(s->err, sizeof s->err, "%s", oc_last_error());
}

static void *worker_main(void *arg)
{
    producer *p = arg;
    oc_loader *l = p->l;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t seq = l->next_fill;
        slot *s = &l->slots[seq % l->nslots];
        if (s->state != SLOT_FREE) {
            pthread_cond_wait(&l->cond_free, &l->mu);
            continue;
        }
        l->next_fill++;
        s->state = SLOT_FILLING;
        s->seq = seq;
        pthread_mutex_unlock(&l->mu);
        fill(l, p, s, seq);
        pthread_mutex_lock(&l->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&l->cond_ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

oc_status oc_loader_new(oc_dataset *ds, const int64_t *idx, int64_t n, const oc_loader_opts *opts,
                        oc_loader **out)
{
    oc_loader *l;
    oc_status st;
    const oc_loader_opts *o = opts;
    size_t len;
    if (!out)
        return oc_fail(OC_ERR_ARG, "oc_loader_new: out is NULL");
    *out = NULL;
    if (!ds || !idx || !o)
        return oc_fail(OC_ERR_ARG, "oc_loader_new: NULL dataset, index list or options");
    if (n < 1)
        return oc_fail(OC_ERR_ARG, "oc_loader_new: empty index list");
    if (o->batch_size < 1 || o->workers < 0 || o->workers > 64 || o->prefetch < 0 ||
        o->prefetch > 64 || o->start_epoch < 0 || o->start_batch < 0)
        return oc_fail(OC_ERR_ARG, "oc_loader_new: bad batch size, workers, prefetch or start");
    if (o->pp.height < 1 || o->pp.width < 1 ||
        (o->pp.channels != 1 && o->pp.channels != 3 && o->pp.channels != 4))
        return oc_fail(OC_ERR_ARG, "oc_loader_new: preprocess needs height, width >= 1 and 1, "
                                   "3 or 4 channels");
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= oc_dataset_count(ds))
            return oc_fail(OC_ERR_ARG, "oc_loader_new: index %lld (at %lld) out of range [0, %lld)",
                           (long long)idx[i], (long long)i, (long long)oc_dataset_count(ds));
    len = (size_t)o->pp.height * o->pp.width * o->pp.channels;
    l = calloc(1, sizeof *l);
    if (!l)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    l->ds = ds;
    l->o = *o;
    l->o.augment = NULL;
    l->n = n;
    l->len = len;
    l->held = -1;
    l->K = oc_dataset_num_classes(ds);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond_free, NULL);
    pthread_cond_init(&l->cond_ready, NULL);
    l->per_epoch = o->drop_last ? n / o->batch_size : (n + o->batch_size - 1) / o->batch_size;
    if (l->per_epoch == 0) {
        st = oc_fail(OC_ERR_ARG, "oc_loader_new: %lld samples make no full batch of %d with "
                                 "drop_last", (long long)n, o->batch_size);
        goto fail;
    }
    /* start_batch == per_epoch: the position after an epoch's last batch (a checkpoint taken
     * between that step and the end of the epoch), which is the next epoch's first */
    if (o->start_batch > l->per_epoch) {
        st = oc_fail(OC_ERR_ARG, "oc_loader_new: start batch %lld is past the %lld batches of an "
                                 "epoch", (long long)o->start_batch, (long long)l->per_epoch);
        goto fail;
    }
    l->first = o->start_epoch * l->per_epoch + o->start_batch;
    if ((st = oc_augment_parse(o->augment, &l->aug)) != OC_OK)
        goto fail;
    l->idx = malloc(sizeof *l->idx * (size_t)n);
    if (!l->idx)
        goto nomem;
    memcpy(l->idx, idx, sizeof *l->idx * (size_t)n);
    l->nslots = (o->prefetch ? o->prefetch : 2);
    if (l->nslots < o->workers)
        l->nslots = o->workers;
    l->nslots += 1;
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    if (!l->slots)
        goto nomem;
    for (int i = 0; i < l->nslots; i++) {
        slot *s = &l->slots[i];
        size_t bs = (size_t)o->batch_size;
        s->b.x = oc_alloc(sizeof(float) * bs * len);
        s->b.labels = oc_alloc(sizeof(int32_t) * bs);
        s->idx = oc_alloc(sizeof(int64_t) * bs);
        s->b.indices = s->idx;
        if (!s->b.x || !s->b.labels || !s->idx)
            goto nomem;
        if (oc_augment_mixup_alpha(l->aug) > 0) {
            s->b.targets = oc_alloc(sizeof(float) * bs * (size_t)(l->K ? l->K : 1));
            s->tmp = oc_alloc(sizeof(float) * bs * len);
            s->perm = oc_alloc(sizeof(int) * bs);
            if (!s->b.targets || !s->tmp || !s->perm)
                goto nomem;
        }
    }
    l->nprod = o->workers ? o->workers : 1;
    l->prod = calloc((size_t)l->nprod, sizeof *l->prod);
    if (!l->prod)
        goto nomem;
    for (int w = 0; w < l->nprod; w++) {
        l->prod[w].l = l;
        l->prod[w].perm_epoch = -1;
        l->prod[w].perm = malloc(sizeof(int64_t) * (size_t)n);
        if (!l->prod[w].perm)
            goto nomem;
    }
    for (int w = 0; w < o->workers; w++) {
        if (pthread_create(&l->prod[w].thread, NULL, worker_main, &l->prod[w]) != 0) {
            st = oc_fail(OC_ERR_NOMEM, "oc_loader_new: cannot start worker thread %d", w);
            goto fail;
        }
        l->prod[w].started = 1;
    }
    *out = l;
    return OC_OK;
nomem:
    st = oc_fail(OC_ERR_NOMEM, "oc_loader_new: out of memory for %d-sample batches",
                 o->batch_size);
fail:
    oc_loader_free(l);
    return st;
}

oc_status oc_loader_next(oc_loader *l, const oc_batch **out)
{
    slot *s;
    if (!l || !out)
        return oc_fail(OC_ERR_ARG, "oc_loader_next: NULL argument");
    *out = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->held >= 0) {
        l->slots[l->held].state = SLOT_FREE;
        l->held = -1;
        pthread_cond_broadcast(&l->cond_free);
    }
    s = &l->slots[l->next_take % l->nslots];
    if (l->o.workers == 0) {
        pthread_mutex_unlock(&l->mu);
        fill(l, &l->prod[0], s, l->next_take);
        pthread_mutex_lock(&l->mu);
    } else {
        while (!(s->state == SLOT_READY && s->seq == l->next_take))
            pthread_cond_wait(&l->cond_ready, &l->mu);
    }
    s->state = SLOT_HELD;
    l->held = (int)(l->next_take % l->nslots);
    l->next_take++;
    pthread_mutex_unlock(&l->mu);
    if (s->st != OC_OK)
        return oc_fail(s->st, "%s", s->err);
    *out = &s->b;
    return OC_OK;
}

void oc_loader_free(oc_loader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cond_free);
    pthread_cond_broadcast(&l->cond_ready);
    pthread_mutex_unlock(&l->mu);
    for (int w = 0; l->prod && w < l->nprod; w++) {
        producer *p = &l->prod[w];
        if (p->started)
            pthread_join(p->thread, NULL);
        free(p->perm);
        oc_image_release(&p->img);
        oc_image_release(&p->scratch[0]);
        oc_image_release(&p->scratch[1]);
    }
    free(l->prod);
    for (int i = 0; l->slots && i < l->nslots; i++) {
        slot *s = &l->slots[i];
        oc_free(s->b.x);
        oc_free(s->b.labels);
        oc_free(s->b.targets);
        oc_free(s->tmp);
        oc_free(s->perm);
        oc_free(s->idx);
    }
    free(l->slots);
    free(l->idx);
    oc_augment_free(l->aug);
    pthread_cond_destroy(&l->cond_free);
    pthread_cond_destroy(&l->cond_ready);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
