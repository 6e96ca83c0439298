/* Exponential moving average of the weights (ocelot.h documents the rule). One flat copy of
 * the params buffer and one of the state buffer, updated elementwise like timm's ModelEmaV2:
 * ema = d * ema + (1 - d) * current, with torch's rounding order (lerp written out). */
#include "core/core.h"
#include "train/train.h"

#include <stdlib.h>
#include <string.h>

struct oc_ema {
    double decay;
    int warmup;
    int64_t updates;
    float *params; /* [n_params] */
    size_t n_params;
    float *state;  /* [n_state] */
    size_t n_state;
};

oc_status oc_ema_new(oc_ema **out, double decay, int warmup, const float *params,
                     size_t n_params, const float *state, size_t n_state)
{
    oc_ema *e;
    if (!out)
        return oc_fail(OC_ERR_ARG, "oc_ema_new: NULL out");
    *out = NULL;
    if (!(decay >= 0 && decay <= 1))
        return oc_fail(OC_ERR_ARG, "ema: decay %g outside [0, 1]", decay);
    if ((n_params && !params) || (n_state && !state))
        return oc_fail(OC_ERR_ARG, "ema: NULL buffer");
    if (n_params > SIZE_MAX / sizeof(float) || n_state > SIZE_MAX / sizeof(float))
        return oc_fail(OC_ERR_NOMEM, "ema: buffer size overflows");
    e = calloc(1, sizeof *e);
    if (!e)
        return oc_fail(OC_ERR_NOMEM, "ema: out of memory");
    e->decay = decay;
    e->warmup = warmup;
    e->n_params = n_params;
    e->n_state = n_state;
    if (n_params) {
        e->params = oc_alloc(n_params * sizeof(float));
        if (!e->params)
            goto no_memory;
        memcpy(e->params, params, n_params * sizeof(float));
    }
    if (n_state) {
        e->state = oc_alloc(n_state * sizeof(float));
        if (!e->state)
            goto no_memory;
        memcpy(e->state, state, n_state * sizeof(float));
    }
    *out = e;
    return OC_OK;

no_memory:
    oc_ema_free(e);
    return oc_fail(OC_ERR_NOMEM, "ema: cannot allocate %zu + %zu floats", n_params, n_state);
}

void oc_ema_free(oc_ema *e)
{
    if (!e)
        return;
    oc_free(e->params);
    oc_free(e->state);
    free(e);
}

double oc_ema_decay(const oc_ema *e)
{
    if (e->warmup) {
        double w = (1.0 + (double)e->updates) / (10.0 + (double)e->updates);
        return w < e->decay ? w : e->decay;
    }
    return e->decay;
}

typedef struct {
    float *avg;
    const float *cur;
    float d, one_minus_d;
} ema_ctx;

static void ema_range(void *ctx, size_t b, size_t e)
{
    const ema_ctx *c = ctx;
    float *restrict avg = c->avg;
    const float *restrict cur = c->cur;
    for (size_t i = b; i < e; i++)
        avg[i] = c->d * avg[i] + c->one_minus_d * cur[i];
}

void oc_ema_update(oc_ema *e, const float *params, const float *state)
{
    oc_ema_update_with(e, oc_ema_decay(e), params, state);
}

void oc_ema_update_with(oc_ema *e, double d, const float *params, const float *state)
{
    ema_ctx c = {e->params, params, (float)d, (float)(1.0 - d)};
    oc_train_parallel_range(e->n_params, ema_range, &c);
    c.avg = e->state;
    c.cur = state;
    oc_train_parallel_range(e->n_state, ema_range, &c);
    e->updates++;
}

float *oc_ema_params(oc_ema *e, size_t *n)
{
    if (n)
        *n = e->n_params;
    return e->params;
}

float *oc_ema_state(oc_ema *e, size_t *n)
{
    if (n)
        *n = e->n_state;
    return e->state;
}

int64_t oc_ema_updates(const oc_ema *e)
{
    return e->updates;
}

void oc_ema_set_updates(oc_ema *e, int64_t t)
{
    e->updates = t < 0 ? 0 : t;
}
