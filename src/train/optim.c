/* Optimizers over the model's flat params / grads buffers: SGD (momentum, Nesterov, dampening)
 * and AdamW, with the exact update order of torch.optim 1.13 (_single_tensor_sgd and
 * _single_tensor_adamw), so that weights after N steps match PyTorch to float rounding.
 *
 * The buffer is processed as a sorted list of spans (one per tensor) carrying that tensor's
 * weight decay, learning-rate multiplier (norm_lr_scale) and frozen flag (a frozen span is
 * skipped entirely: no decay, no momentum, as torch skips a parameter without a gradient).
 * Every update is elementwise, so the work is split by element range across the thread pool
 * and the result does not depend on the thread count. */

/* The updates vectorised (as act.c: GCC's -O2 cost model leaves loops of unknown length
 * scalar) and in AVX-512, AVX2 and baseline clones: elementwise, no reassociation and no
 * contraction (-std=c11), so every clone gives the same bits. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")
#endif

#include "core/core.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define OPT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OPT_CLONES
#endif

typedef struct {
    size_t offset, numel;
    double wd;      /* this tensor's weight decay (0 when its kind is excluded) */
    double lr_mult; /* its learning rate is lr x lr_mult */
    int frozen;     /* not updated */
} span;

struct oc_optimizer {
    oc_optim_config cfg;
    size_t n;      /* floats in the params buffer */
    int n_spans;
    span *spans;   /* sorted by offset, non-overlapping, numel > 0 */
    float *state;  /* SGD: momentum[n]; AdamW: exp_avg[n] then exp_avg_sq[n] */
    size_t n_state;
    int64_t steps;
};

oc_optim_config oc_optim_defaults(oc_optim_type type)
{
    oc_optim_config c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    if (type == OC_OPTIM_ADAMW) {
        c.lr = 1e-3;
        c.weight_decay = 1e-2;
    } else {
        c.lr = 0.01;
    }
    return c;
}

oc_status oc_optim_type_parse(const char *name, oc_optim_type *out)
{
    if (!name || !out)
        return oc_fail(OC_ERR_ARG, "optimizer name: NULL argument");
    if (strcmp(name, "sgd") == 0)
        *out = OC_OPTIM_SGD;
    else if (strcmp(name, "adamw") == 0)
        *out = OC_OPTIM_ADAMW;
    else
        return oc_fail(OC_ERR_ARG, "unknown optimizer '%s' (expected sgd or adamw)", name);
    return OC_OK;
}

static int finite_nonneg(double x)
{
    return isfinite(x) && x >= 0;
}

static oc_status check_config(const oc_optim_config *c)
{
    if (c->type != OC_OPTIM_SGD && c->type != OC_OPTIM_ADAMW)
        return oc_fail(OC_ERR_ARG, "optimizer: unknown type %d", (int)c->type);
    if (!finite_nonneg(c->lr))
        return oc_fail(OC_ERR_ARG, "optimizer: invalid learning rate %g", c->lr);
    if (!finite_nonneg(c->weight_decay))
        return oc_fail(OC_ERR_ARG, "optimizer: invalid weight decay %g", c->weight_decay);
    if (!finite_nonneg(c->norm_lr_scale))
        return oc_fail(OC_ERR_ARG, "optimizer: invalid norm lr scale %g", c->norm_lr_scale);
    if (c->type == OC_OPTIM_SGD) {
        if (!finite_nonneg(c->momentum))
            return oc_fail(OC_ERR_ARG, "sgd: invalid momentum %g", c->momentum);
        if (!isfinite(c->dampening))
            return oc_fail(OC_ERR_ARG, "sgd: invalid dampening %g", c->dampening);
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return oc_fail(OC_ERR_ARG, "sgd: nesterov needs momentum > 0 and zero dampening");
    } else {
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return oc_fail(OC_ERR_ARG, "adamw: invalid beta1 %g", c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return oc_fail(OC_ERR_ARG, "adamw: invalid beta2 %g", c->beta2);
        if (!finite_nonneg(c->eps))
            return oc_fail(OC_ERR_ARG, "adamw: invalid eps %g", c->eps);
    }
    return OC_OK;
}

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

oc_status oc_optimizer_new(oc_optimizer **out, const oc_optim_config *cfg, size_t n_params,
                           const oc_param_info *tensors, int n_tensors)
{
    oc_optimizer *o = NULL;
    oc_status st;
    size_t per = 0;

    if (!out || !cfg || (n_tensors > 0 && !tensors) || n_tensors < 0)
        return oc_fail(OC_ERR_ARG, "oc_optimizer_new: NULL or negative argument");
    *out = NULL;
    st = check_config(cfg);
    if (st != OC_OK)
        return st;

    o = calloc(1, sizeof *o);
    if (!o)
        return oc_fail(OC_ERR_NOMEM, "optimizer: out of memory");
    o->cfg = *cfg;
    o->n = n_params;
    o->spans = calloc(n_tensors > 0 ? (size_t)n_tensors : 1, sizeof *o->spans);
    if (!o->spans) {
        st = oc_fail(OC_ERR_NOMEM, "optimizer: out of memory");
        goto free_opt;
    }
    for (int i = 0; i < n_tensors; i++) {
        const oc_param_info *t = &tensors[i];
        span *s;
        if (t->kind == OC_PARAM_STATE || t->numel == 0)
            continue;
        if (t->offset > n_params || t->numel > n_params - t->offset) {
            st = oc_fail(OC_ERR_ARG, "optimizer: tensor '%s' [%zu, +%zu) outside the %zu-float "
                         "params buffer", t->name ? t->name : "?", t->offset, t->numel, n_params);
            goto free_opt;
        }
        s = &o->spans[o->n_spans++];
        s->offset = t->offset;
        s->numel = t->numel;
        s->wd = (cfg->no_decay >> (unsigned)t->kind) & 1u ? 0.0 : cfg->weight_decay;
        s->lr_mult = 1.0;
        s->frozen = t->frozen != 0;
        if (t->kind == OC_PARAM_NORM_SHIFT && cfg->norm_lr_scale > 0) {
            s->lr_mult = cfg->norm_lr_scale;
            s->wd /= cfg->norm_lr_scale;
        }
    }
    qsort(o->spans, (size_t)o->n_spans, sizeof *o->spans, span_cmp);
    for (int i = 1; i < o->n_spans; i++)
        if (o->spans[i - 1].offset + o->spans[i - 1].numel > o->spans[i].offset) {
            st = oc_fail(OC_ERR_ARG, "optimizer: tensors overlap at offset %zu",
                         o->spans[i].offset);
            goto free_opt;
        }

    if (cfg->type == OC_OPTIM_ADAMW)
        per = 2;
    else if (cfg->momentum != 0)
        per = 1;
    if (!oc_mul_ok(per, n_params, &o->n_state) || !oc_mul_ok(o->n_state, sizeof(float), &per)) {
        st = oc_fail(OC_ERR_NOMEM, "optimizer: state size overflows");
        goto free_opt;
    }
    if (o->n_state) {
        o->state = oc_alloc_zero(o->n_state * sizeof(float));
        if (!o->state) {
            st = oc_fail(OC_ERR_NOMEM, "optimizer: cannot allocate %zu floats of state",
                         o->n_state);
            goto free_opt;
        }
    }
    *out = o;
    return OC_OK;

free_opt:
    oc_optimizer_free(o);
    return st;
}

void oc_optimizer_free(oc_optimizer *o)
{
    if (!o)
        return;
    oc_free(o->state);
    free(o->spans);
    free(o);
}

void oc_optimizer_set_lr(oc_optimizer *o, double lr)
{
    o->cfg.lr = lr;
}

double oc_optimizer_lr(const oc_optimizer *o)
{
    return o->cfg.lr;
}

const oc_optim_config *oc_optimizer_config(const oc_optimizer *o)
{
    return &o->cfg;
}

float *oc_optimizer_state(oc_optimizer *o, size_t *n)
{
    if (n)
        *n = o->n_state;
    return o->state;
}

int64_t oc_optimizer_steps(const oc_optimizer *o)
{
    return o->steps;
}

void oc_optimizer_set_steps(oc_optimizer *o, int64_t steps)
{
    o->steps = steps < 0 ? 0 : steps;
}

oc_status oc_optimizer_set_frozen(oc_optimizer *o, size_t offset, int frozen)
{
    for (int i = 0; o && i < o->n_spans; i++)
        if (o->spans[i].offset == offset) {
            o->spans[i].frozen = frozen != 0;
            return OC_OK;
        }
    return oc_fail(OC_ERR_ARG, "optimizer: no tensor starts at offset %zu", offset);
}

void oc_optimizer_reset(oc_optimizer *o)
{
    if (o->n_state)
        memset(o->state, 0, o->n_state * sizeof(float));
    o->steps = 0;
}

/* ---------------------------------------------------------------- kernels */

/* torch: d_p = g + wd*p; buf = first ? d_p : momentum*buf + (1-dampening)*d_p;
 * d_p = nesterov ? d_p + momentum*buf : buf; p += -lr * d_p. */
OPT_CLONES static void sgd_update(size_t n, float *restrict p, const float *restrict g,
                                  float *restrict buf, float lr, float wd, float momentum,
                                  float one_minus_damp, int nesterov, int first)
{
    const float neg_lr = -lr;
    if (!buf) {
        for (size_t i = 0; i < n; i++) {
            float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
            p[i] = p[i] + neg_lr * d;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
        float b = first ? d : buf[i] * momentum + one_minus_damp * d;
        buf[i] = b;
        d = nesterov ? d + momentum * b : b;
        p[i] = p[i] + neg_lr * d;
    }
}

/* torch: p *= 1 - lr*wd; m = m*b1 + (1-b1)*g; v = v*b2 + (1-b2)*g*g;
 * p += (-step_size) * m / (sqrt(v) / bc2_sqrt + eps). */
OPT_CLONES static void adamw_update(size_t n, float *restrict p, const float *restrict g,
                                    float *restrict m, float *restrict v, float decay_mul,
                                    float beta1, float beta2, float one_minus_b1,
                                    float one_minus_b2, float bc2_sqrt, float eps,
                                    float neg_step_size)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] * beta1 + one_minus_b1 * gi;
        float vi = v[i] * beta2 + one_minus_b2 * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        float pi = decay_mul != 1.0f ? p[i] * decay_mul : p[i];
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + neg_step_size * mi / denom;
    }
}

typedef struct {
    const oc_optimizer *o;
    float *p;
    const float *g;
    int first;        /* SGD: momentum buffers start as the gradient */
    double bc1, bc2;  /* AdamW bias corrections for this step */
} step_ctx;

static void step_span(const step_ctx *c, const span *s, size_t b, size_t e)
{
    const oc_optim_config *cfg = &c->o->cfg;
    size_t n = e - b;
    float *p = c->p + b;
    const float *g = c->g + b;
    double lr = cfg->lr * s->lr_mult;
    if (s->frozen)
        return;
    if (cfg->type == OC_OPTIM_SGD) {
        float *buf = c->o->n_state ? c->o->state + b : NULL;
        sgd_update(n, p, g, buf, (float)lr, (float)s->wd, (float)cfg->momentum,
                        (float)(1.0 - cfg->dampening), cfg->nesterov, c->first);
    } else {
        float *m = c->o->state + b, *v = c->o->state + c->o->n + b;
        adamw_update(n, p, g, m, v, (float)(1.0 - lr * s->wd), (float)cfg->beta1,
                          (float)cfg->beta2, (float)(1.0 - cfg->beta1), (float)(1.0 - cfg->beta2),
                          (float)sqrt(c->bc2), (float)cfg->eps, (float)(-(lr / c->bc1)));
    }
}

/* Elements [b, e) of the buffer: the parts of every span that fall inside. */
static void step_range(const step_ctx *c, size_t b, size_t e)
{
    const oc_optimizer *o = c->o;
    for (int i = 0; i < o->n_spans; i++) {
        const span *s = &o->spans[i];
        size_t sb = s->offset, se = s->offset + s->numel;
        if (se <= b)
            continue;
        if (sb >= e)
            break;
        step_span(c, s, sb > b ? sb : b, se < e ? se : e);
    }
}

static void step_range_fn(void *ctx, size_t b, size_t e)
{
    step_range(ctx, b, e);
}

oc_status oc_optimizer_step(oc_optimizer *o, float *params, const float *grads)
{
    step_ctx c;

    if (!o || ((!params || !grads) && o->n))
        return oc_fail(OC_ERR_ARG, "oc_optimizer_step: NULL argument");
    o->steps++;
    c.o = o;
    c.p = params;
    c.g = grads;
    c.first = o->steps == 1;
    c.bc1 = 1.0 - pow(o->cfg.beta1, (double)o->steps);
    c.bc2 = 1.0 - pow(o->cfg.beta2, (double)o->steps);
    oc_train_parallel_range(o->n, step_range_fn, &c);
    return OC_OK;
}
