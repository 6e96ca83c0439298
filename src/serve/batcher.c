/* Dynamic batching: one thread per model collects the requests that arrive within
 * max_delay_ms of the oldest waiting one (up to max_batch images) and classifies them in one
 * forward pass, which is where a CNN on a CPU gets its throughput (GEMMs over a batch run
 * near peak; batch-1 GEMMs are skinny). */
#include "serve.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void deadline_ts(double t_mono, struct timespec *ts)
{
    /* condition variables wait on CLOCK_REALTIME by default: convert the monotonic deadline */
    struct timespec now;
    double wait = t_mono - oc_now();
    if (wait < 0)
        wait = 0;
    clock_gettime(CLOCK_REALTIME, &now);
    ts->tv_sec = now.tv_sec + (time_t)wait;
    ts->tv_nsec = now.tv_nsec + (long)((wait - (double)(time_t)wait) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Classifies a group of requests (their images total <= max_batch, except a single request
 * larger than a batch, which runs in chunks). */
static void run_group(model_entry *me, request **group, int n_req)
{
    int max_batch = me->srv->cfg.max_batch;
    int classes = oc_model_num_classes(me->model);
    int topk = 1, filled = 0;

    for (int i = 0; i < n_req; i++) {
        if (group[i]->topk > topk)
            topk = group[i]->topk;
    }
    if (topk > classes)
        topk = classes;
    /* walk the images of every request in order, a batch at a time */
    {
        int ri = 0, ii = 0;
        while (ri < n_req) {
            int start_ri = ri, start_ii = ii;
            filled = 0;
            while (ri < n_req && filled < max_batch) {
                me->batch_in[filled++] = group[ri]->inputs[ii];
                if (++ii == group[ri]->n) {
                    ri++;
                    ii = 0;
                }
            }
            oc_status st = oc_classifier_run(me->clf, me->batch_in, filled, topk, me->batch_out);
            metrics_batch(me->srv->metrics, filled);
            /* copy results back */
            ri = start_ri;
            ii = start_ii;
            for (int b = 0; b < filled; b++) {
                request *r = group[ri];
                oc_input *in = &r->inputs[ii];
                if (st == OC_OK) {
                    in->status = me->batch_in[b].status;
                    memcpy(in->error, me->batch_in[b].error, sizeof in->error);
                } else {
                    in->status = st;
                    snprintf(in->error, sizeof in->error, "%s", oc_last_error());
                }
                if (st == OC_OK)
                    memcpy(&r->preds[(size_t)ii * (size_t)r->topk],
                           &me->batch_out[(size_t)b * topk], (size_t)r->topk * sizeof *r->preds);
                if (++ii == r->n) {
                    ri++;
                    ii = 0;
                }
            }
        }
    }
    pthread_mutex_lock(&me->lock);
    for (int i = 0; i < n_req; i++)
        group[i]->done = 1;
    pthread_mutex_unlock(&me->lock);
    for (int i = 0; i < n_req; i++)
        MHD_resume_connection(group[i]->conn);
}

static void *batch_thread(void *arg)
{
    model_entry *me = arg;
    oc_server *s = me->srv;
    request **group = calloc((size_t)s->cfg.max_batch, sizeof *group);
    if (!group)
        return NULL;
    pthread_mutex_lock(&me->lock);
    for (;;) {
        int n_req = 0, images = 0;
        while (!me->head && me->running)
            pthread_cond_wait(&me->cond, &me->lock);
        if (!me->head)
            break; /* stopped and drained */
        /* wait for more requests until the batch is full or the oldest waited max_delay */
        {
            double deadline = me->head->t_enqueue + s->cfg.max_delay_ms * 1e-3;
            while (me->running && me->queued_images < s->cfg.max_batch && oc_now() < deadline) {
                struct timespec ts;
                deadline_ts(deadline, &ts);
                pthread_cond_timedwait(&me->cond, &me->lock, &ts);
            }
        }
        while (me->head && n_req < s->cfg.max_batch &&
               (n_req == 0 || images + me->head->n <= s->cfg.max_batch)) {
            request *r = me->head;
            me->head = r->qnext;
            if (!me->head)
                me->tail = NULL;
            me->queued_images -= r->n;
            images += r->n;
            group[n_req++] = r;
        }
        pthread_mutex_unlock(&me->lock);
        run_group(me, group, n_req);
        pthread_mutex_lock(&me->lock);
    }
    pthread_mutex_unlock(&me->lock);
    free(group);
    return NULL;
}

oc_status batcher_start(model_entry *me)
{
    pthread_mutex_init(&me->lock, NULL);
    pthread_cond_init(&me->cond, NULL);
    me->running = 1;
    if (pthread_create(&me->thread, NULL, batch_thread, me) != 0) {
        me->running = 0;
        return oc_fail(OC_ERR_NOMEM, "server: cannot start the batch thread for '%s'", me->name);
    }
    me->thread_started = 1;
    return OC_OK;
}

void batcher_stop(model_entry *me)
{
    if (!me->thread_started)
        return;
    pthread_mutex_lock(&me->lock);
    me->running = 0;
    pthread_cond_broadcast(&me->cond);
    pthread_mutex_unlock(&me->lock);
    pthread_join(me->thread, NULL);
    me->thread_started = 0;
    pthread_mutex_destroy(&me->lock);
    pthread_cond_destroy(&me->cond);
}

void batcher_submit(model_entry *me, request *r)
{
    pthread_mutex_lock(&me->lock);
    r->t_enqueue = oc_now();
    r->qnext = NULL;
    if (me->tail)
        me->tail->qnext = r;
    else
        me->head = r;
    me->tail = r;
    me->queued_images += r->n;
    pthread_cond_signal(&me->cond);
    pthread_mutex_unlock(&me->lock);
}
