/* The model: building the graph from a parsed spec (input resolution, shape inference, the flat
 * parameter / gradient / state buffers and their named views), initialisation, and the plain
 * accessors of the public API. */
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest tensor / total parameter count a spec may ask for (2^31 floats = 8 GiB). */
#define OC_NN_MAX_FLOATS ((int64_t)1 << 31)

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

oc_status oc_nn_add_tensor(oc_model *m, oc_node *nd, const char *suffix, oc_param_kind kind,
                           int ndim, const int64_t *shape)
{
    oc_param_info *t;
    int64_t numel = 1;
    size_t *counter = kind == OC_PARAM_STATE ? &m->n_state : &m->n_params;
    char *name;
    for (int d = 0; d < ndim; d++) {
        numel *= shape[d];
        if (numel > OC_NN_MAX_FLOATS)
            return oc_fail(OC_ERR_SHAPE, "node '%s': %s has too many elements", nd->name, suffix);
    }
    if ((int64_t)*counter + numel > OC_NN_MAX_FLOATS)
        return oc_fail(OC_ERR_SHAPE, "node '%s': the model has too many parameters", nd->name);
    name = malloc(strlen(nd->name) + strlen(suffix) + 2);
    if (!name)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    sprintf(name, "%s.%s", nd->name, suffix);
    t = realloc(m->tensors, (size_t)(m->n_tensors + 1) * sizeof *t);
    if (!t) {
        free(name);
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    m->tensors = t;
    t += m->n_tensors;
    memset(t, 0, sizeof *t);
    t->name = name;
    t->kind = kind;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->numel = (size_t)numel;
    t->frozen = kind != OC_PARAM_STATE &&
                (((nd->freeze & OC_FREEZE_WEIGHT) && !strcmp(suffix, "weight")) ||
                 ((nd->freeze & OC_FREEZE_BIAS) && !strcmp(suffix, "bias")));
    t->offset = *counter;
    *counter += (size_t)numel;
    if (nd->nt == 0)
        nd->t0 = m->n_tensors;
    nd->nt++;
    if (kind != OC_PARAM_STATE)
        nd->params += numel;
    m->n_tensors++;
    return OC_OK;
}

float *oc_nn_param(oc_model *m, const oc_node *nd, int k)
{
    const oc_param_info *t = &m->tensors[nd->t0 + k];
    return (t->kind == OC_PARAM_STATE ? m->state : m->params) + t->offset;
}

float *oc_nn_grad(oc_model *m, const oc_node *nd, int k)
{
    return m->grads + m->tensors[nd->t0 + k].offset;
}

/* Resolves "inputs" of node i (names of earlier nodes; default: the previous node). */
static oc_status resolve_inputs(oc_model *m, int i, const cJSON *j)
{
    oc_node *nd = &m->nodes[i];
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    const oc_op_def *def = oc_nn_op(nd->op);
    int n;
    if (!ins) {
        n = 1;
    } else if (cJSON_IsString(ins)) {
        n = 1;
    } else if (cJSON_IsArray(ins)) {
        n = cJSON_GetArraySize(ins);
    } else {
        return oc_fail(OC_ERR_FORMAT, "node '%s': inputs must be a list of node names", nd->name);
    }
    if (n < def->min_in || n > def->max_in) {
        if (def->min_in == def->max_in)
            return oc_fail(OC_ERR_FORMAT, "node '%s': %s takes %d input%s, not %d", nd->name,
                           def->name, def->min_in, def->min_in == 1 ? "" : "s", n);
        return oc_fail(OC_ERR_FORMAT, "node '%s': %s takes at least %d inputs, not %d", nd->name,
                       def->name, def->min_in, n);
    }
    nd->in = calloc((size_t)n, sizeof *nd->in);
    if (!nd->in)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    nd->n_in = n;
    if (!ins) {
        nd->in[0] = i - 1;
        return OC_OK;
    }
    for (int k = 0; k < n; k++) {
        const cJSON *e = cJSON_IsString(ins) ? ins : cJSON_GetArrayItem(ins, k);
        int found = -1;
        if (!cJSON_IsString(e))
            return oc_fail(OC_ERR_FORMAT, "node '%s': inputs must be node names", nd->name);
        for (int q = 0; q < i; q++)
            if (!strcmp(m->nodes[q].name, e->valuestring))
                found = q;
        if (found < 0) {
            for (int q = i + 1; q < m->n_nodes; q++)
                if (m->nodes[q].name && !strcmp(m->nodes[q].name, e->valuestring))
                    return oc_fail(OC_ERR_FORMAT,
                                   "node '%s': input '%s' comes later; nodes must be listed "
                                   "after their inputs",
                                   nd->name, e->valuestring);
            return oc_fail(OC_ERR_FORMAT, "node '%s': unknown input '%s'", nd->name,
                           e->valuestring);
        }
        nd->in[k] = found;
    }
    return OC_OK;
}

oc_status oc_nn_build(oc_model **out, const cJSON *spec, int height, int width, int channels,
                      int classes, uint64_t seed)
{
    oc_model *m;
    const cJSON *fmt, *ver, *nodes, *item;
    oc_status st;
    int i;

    *out = NULL;
    if (height < 1 || width < 1 || channels < 1 || classes < 1)
        return oc_fail(OC_ERR_ARG, "input %dx%dx%d with %d classes: every size must be >= 1",
                       height, width, channels, classes);
    if ((int64_t)height * width * channels > INT32_MAX)
        return oc_fail(OC_ERR_ARG, "input %dx%dx%d is too large", height, width, channels);
    if (!cJSON_IsObject(spec))
        return oc_fail(OC_ERR_FORMAT, "model spec must be a JSON object");
    fmt = cJSON_GetObjectItemCaseSensitive(spec, "format");
    ver = cJSON_GetObjectItemCaseSensitive(spec, "version");
    nodes = cJSON_GetObjectItemCaseSensitive(spec, "nodes");
    if (fmt && !(cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "ocelot-graph")))
        return oc_fail(OC_ERR_FORMAT, "model spec: format must be \"ocelot-graph\"");
    if (ver && !(cJSON_IsNumber(ver) && ver->valuedouble == 1.0))
        return oc_fail(OC_ERR_FORMAT, "model spec: version %g is not supported (this is version 1)",
                       cJSON_IsNumber(ver) ? ver->valuedouble : -1.0);
    if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) < 1)
        return oc_fail(OC_ERR_FORMAT, "model spec: \"nodes\" must be a non-empty list");

    m = calloc(1, sizeof *m);
    if (!m)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    m->H = height;
    m->W = width;
    m->C = channels;
    m->classes = classes;
    m->n_nodes = cJSON_GetArraySize(nodes) + 1;
    m->nodes = calloc((size_t)m->n_nodes, sizeof *m->nodes);
    st = OC_ERR_NOMEM;
    if (!m->nodes)
        goto fail_nomem;
    m->nodes[0].name = dup_str("input");
    m->nodes[0].op = OC_OP_INPUT;
    if (!m->nodes[0].name)
        goto fail_nomem;

    /* names and attributes first, so inputs can refer to any earlier node by name */
    i = 1;
    cJSON_ArrayForEach(item, nodes) {
        st = oc_nn_parse_node(&m->nodes[i], item, i);
        if (st != OC_OK)
            goto fail;
        for (int q = 0; q < i; q++)
            if (!strcmp(m->nodes[q].name, m->nodes[i].name)) {
                st = oc_fail(OC_ERR_FORMAT, "node %d: the name '%s' is used twice", i,
                             m->nodes[i].name);
                goto fail;
            }
        i++;
    }
    st = oc_nn_op(OC_OP_INPUT)->infer(m, &m->nodes[0]);
    i = 1;
    cJSON_ArrayForEach(item, nodes) {
        oc_node *nd = &m->nodes[i];
        if ((st = resolve_inputs(m, i, item)) != OC_OK)
            goto fail;
        if ((st = oc_nn_op(nd->op)->infer(m, nd)) != OC_OK)
            goto fail;
        if ((nd->freeze & OC_FREEZE_BIAS) && (nd->nt < 2 || !m->tensors[nd->t0 + 1].frozen)) {
            st = oc_fail(OC_ERR_FORMAT, "node '%s': freeze names \"bias\" but it has none",
                         nd->name);
            goto fail;
        }
        if (oc_nn_size(nd) > INT32_MAX) {
            st = oc_fail(OC_ERR_SHAPE, "node '%s': output %dx%dx%d is too large", nd->name, nd->H,
                         nd->W, nd->C);
            goto fail;
        }
        for (int k = 0; k < nd->n_in; k++) {
            m->nodes[nd->in[k]].n_consumers++;
            m->nodes[nd->in[k]].last_consumer = i;
        }
        i++;
    }
    for (i = 0; i < m->n_nodes - 1; i++)
        if (m->nodes[i].n_consumers == 0) {
            st = oc_fail(OC_ERR_FORMAT, "node '%s': its output is never used (only the last node "
                         "may be the output)", m->nodes[i].name);
            goto fail;
        }
    {
        const oc_node *last = &m->nodes[m->n_nodes - 1];
        if (last->H != 1 || last->W != 1 || last->C != classes) {
            st = oc_fail(OC_ERR_SHAPE,
                         "node '%s': the last node must output [N][classes] = [N][%d], not "
                         "[N][%d][%d][%d]",
                         last->name, classes, last->H, last->W, last->C);
            goto fail;
        }
    }

    m->params = oc_alloc_zero((m->n_params ? m->n_params : 1) * sizeof(float));
    m->grads = oc_alloc_zero((m->n_params ? m->n_params : 1) * sizeof(float));
    m->state = oc_alloc_zero((m->n_state ? m->n_state : 1) * sizeof(float));
    m->class_names = calloc((size_t)classes, sizeof *m->class_names);
    if (!m->params || !m->grads || !m->state || !m->class_names)
        goto fail_nomem;
    for (i = 0; i < classes; i++) {
        char buf[24];
        snprintf(buf, sizeof buf, "%d", i);
        if (!(m->class_names[i] = dup_str(buf)))
            goto fail_nomem;
    }
    m->pre.height = height;
    m->pre.width = width;
    m->pre.channels = channels;
    for (i = 0; i < 4; i++) {
        m->pre.mean[i] = 0.0f;
        m->pre.std[i] = 1.0f;
    }
    m->pre.resize = OC_RESIZE_STRETCH;
    oc_model_init_params(m, seed);
    *out = m;
    return OC_OK;

fail_nomem:
    st = oc_fail(OC_ERR_NOMEM, "out of memory building the model");
fail:
    oc_model_free(m);
    return st;
}

void oc_model_free(oc_model *m)
{
    if (!m)
        return;
    oc_nn_plan_release(m);
    free(m->untrained);
    for (int i = 0; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        free(nd->name);
        free(nd->in);
        free(nd->c_in);
        free(nd->x_ptr);
        free(nd->dx_ptr);
    }
    free(m->nodes);
    free(m->prof);
    for (int i = 0; i < m->n_tensors; i++)
        free((char *)m->tensors[i].name);
    free(m->tensors);
    oc_free(m->params);
    oc_free(m->grads);
    oc_free(m->state);
    if (m->class_names)
        for (int i = 0; i < m->classes; i++)
            free(m->class_names[i]);
    free(m->class_names);
    for (int i = 0; i < m->n_meta; i++) {
        free(m->meta_key[i]);
        free(m->meta_val[i]);
    }
    free(m->meta_key);
    free(m->meta_val);
    free(m);
}

/* ---------------------------------------------------------------- initialisation */

static void fill_uniform(oc_rng *r, float *p, size_t n, double bound)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((2.0 * (double)oc_rng_uniform(r) - 1.0) * bound);
}

static void fill_normal(oc_rng *r, float *p, size_t n, double std)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((double)oc_rng_normal(r) * std);
}

/* torch.nn.init.dirac_(w[:C]) on a [K][R][S][C] conv weight: filter k < min(K, C) becomes
 * the identity on channel k at the kernel centre (R/2, S/2), zeros elsewhere. */
static void init_dirac(float *w, const oc_param_info *t)
{
    int64_t K = t->shape[0], R = t->shape[1], S = t->shape[2], C = t->shape[3];
    for (int64_t k = 0; k < K && k < C; k++) {
        float *f = w + k * R * S * C;
        memset(f, 0, (size_t)(R * S * C) * sizeof *f);
        f[((R / 2) * S + S / 2) * C + k] = 1.0f;
    }
}

/* PyTorch's initialisers (torch.nn.init): conv / dense weights kaiming_uniform_(a=sqrt(5)),
 * i.e. U(+-1/sqrt(fan_in)), biases U(+-1/sqrt(fan_in)), batch norm gamma 1, beta 0, running
 * mean 0, var 1; or the node's "init". fan_in = C/g*R*S (conv) or I (dense); fan_out = K*R*S
 * (conv) or O (dense), as torch's _calculate_fan_in_and_fan_out. Every tensor draws from its
 * own stream (seed, tensor index), so one tensor's values do not depend on the others. */
void oc_model_init_params(oc_model *m, uint64_t seed)
{
    m->seed = seed;
    oc_rng_seed(&m->rng, seed, 0);
    for (int i = 1; i < m->n_nodes; i++) {
        const oc_node *nd = &m->nodes[i];
        double fan_in = 1, fan_out = 1;
        for (int k = 0; k < nd->nt; k++) {
            const oc_param_info *t = &m->tensors[nd->t0 + k];
            float *p = oc_nn_param(m, nd, k);
            oc_rng r;
            oc_rng_seed(&r, seed, (uint64_t)(nd->t0 + k) + 1);
            switch (t->kind) {
            case OC_PARAM_WEIGHT:
                fan_in = (double)t->numel / (double)t->shape[0];
                fan_out = (double)t->shape[0] * (t->ndim == 4 ? (double)(t->shape[1] * t->shape[2])
                                                              : 1.0);
                switch (nd->init) {
                case OC_INIT_DEFAULT: fill_uniform(&r, p, t->numel, 1.0 / sqrt(fan_in)); break;
                case OC_INIT_HE_FAN_IN: fill_normal(&r, p, t->numel, sqrt(2.0 / fan_in)); break;
                case OC_INIT_HE_FAN_OUT: fill_normal(&r, p, t->numel, sqrt(2.0 / fan_out)); break;
                case OC_INIT_NORMAL: fill_normal(&r, p, t->numel, (double)nd->init_std); break;
                case OC_INIT_DIRAC:
                    fill_uniform(&r, p, t->numel, 1.0 / sqrt(fan_in));
                    init_dirac(p, t);
                    break;
                case OC_INIT_WHITEN: fill_uniform(&r, p, t->numel, 1.0 / sqrt(fan_in)); break;
                }
                break;
            case OC_PARAM_BIAS:
                if (nd->bias_zero)
                    memset(p, 0, t->numel * sizeof *p);
                else
                    fill_uniform(&r, p, t->numel, 1.0 / sqrt(fan_in));
                break;
            case OC_PARAM_NORM_SCALE:
                for (size_t e = 0; e < t->numel; e++)
                    p[e] = 1.0f;
                break;
            case OC_PARAM_NORM_SHIFT:
                memset(p, 0, t->numel * sizeof *p);
                break;
            case OC_PARAM_STATE: {
                size_t len = strlen(t->name);
                float v = len >= 4 && !strcmp(t->name + len - 4, "_var") ? 1.0f : 0.0f;
                for (size_t e = 0; e < t->numel; e++)
                    p[e] = v;
                break;
            }
            }
        }
    }
}

/* ---------------------------------------------------------------- accessors */

int oc_model_num_classes(const oc_model *m)
{
    return m->classes;
}

void oc_model_input_shape(const oc_model *m, int *height, int *width, int *channels)
{
    if (height)
        *height = m->H;
    if (width)
        *width = m->W;
    if (channels)
        *channels = m->C;
}

int64_t oc_model_param_count(const oc_model *m)
{
    return (int64_t)m->n_params;
}

double oc_model_flops(const oc_model *m)
{
    double f = 0;
    for (int i = 0; i < m->n_nodes; i++)
        f += m->nodes[i].flops;
    return f;
}

int oc_model_num_nodes(const oc_model *m)
{
    return m->n_nodes;
}

void oc_model_node_info(const oc_model *m, int i, oc_node_info *info)
{
    const oc_node *nd;
    memset(info, 0, sizeof *info);
    if (i < 0 || i >= m->n_nodes)
        return;
    nd = &m->nodes[i];
    info->name = nd->name;
    info->op = oc_nn_op(nd->op)->name;
    info->out_h = nd->H;
    info->out_w = nd->W;
    info->out_c = nd->C;
    info->params = nd->params;
    info->flops = nd->flops;
}

float *oc_model_params(oc_model *m, size_t *n)
{
    if (n)
        *n = m->n_params;
    return m->params;
}

float *oc_model_grads(oc_model *m, size_t *n)
{
    if (n)
        *n = m->n_params;
    return m->grads;
}

float *oc_model_state(oc_model *m, size_t *n)
{
    if (n)
        *n = m->n_state;
    return m->state;
}

int oc_model_num_tensors(const oc_model *m)
{
    return m->n_tensors;
}

const oc_param_info *oc_model_tensor(const oc_model *m, int i)
{
    if (i < 0 || i >= m->n_tensors)
        return NULL;
    return &m->tensors[i];
}

int oc_model_find_tensor(const oc_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return i;
    return -1;
}

oc_status oc_model_set_trainable(oc_model *m, int i, int trainable)
{
    if (!m || i < 0 || i >= m->n_tensors || m->tensors[i].kind == OC_PARAM_STATE)
        return oc_fail(OC_ERR_ARG, "oc_model_set_trainable: no parameter tensor %d", i);
    if (!m->untrained && !trainable) {
        m->untrained = calloc((size_t)m->n_tensors, 1);
        if (!m->untrained)
            return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    if (m->untrained)
        m->untrained[i] = !trainable;
    return OC_OK;
}

oc_status oc_model_set_weights_fixed(oc_model *m, int fixed)
{
    if (!m)
        return oc_fail(OC_ERR_ARG, "oc_model_set_weights_fixed: model is NULL");
    m->weights_fixed = fixed != 0;
    oc_nn_plan_release(m); /* the next forward plans (and packs) again */
    return OC_OK;
}

int oc_nn_node_trains(const oc_model *m, const oc_node *nd)
{
    for (int k = 0; k < nd->nt; k++)
        if (m->tensors[nd->t0 + k].kind != OC_PARAM_STATE && oc_nn_wants_grad(m, nd, k))
            return 1;
    return 0;
}

void oc_model_zero_grad(oc_model *m)
{
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
}

oc_rng *oc_model_rng(oc_model *m)
{
    return &m->rng;
}

oc_status oc_model_set_class_names(oc_model *m, int n, const char *const *names)
{
    char **copy;
    if (n != m->classes)
        return oc_fail(OC_ERR_ARG, "%d class names given for a model with %d classes", n,
                       m->classes);
    copy = calloc((size_t)n, sizeof *copy);
    if (!copy)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (!names[i] || !(copy[i] = dup_str(names[i]))) {
            for (int k = 0; k < i; k++)
                free(copy[k]);
            free(copy);
            return names[i] ? oc_fail(OC_ERR_NOMEM, "out of memory")
                            : oc_fail(OC_ERR_ARG, "class name %d is NULL", i);
        }
    }
    for (int i = 0; i < n; i++)
        free(m->class_names[i]);
    free(m->class_names);
    m->class_names = copy;
    return OC_OK;
}

const char *oc_model_class_name(const oc_model *m, int i)
{
    if (i < 0 || i >= m->classes)
        return NULL;
    return m->class_names[i];
}

oc_preprocess *oc_model_preprocess(oc_model *m)
{
    return &m->pre;
}

oc_status oc_model_set_meta(oc_model *m, const char *key, const char *json)
{
    cJSON *check;
    char *v, **keys, **vals;
    if (!key || !*key || !json)
        return oc_fail(OC_ERR_ARG, "metadata needs a key and a JSON value");
    check = cJSON_Parse(json);
    if (!check)
        return oc_fail(OC_ERR_ARG, "metadata '%s' is not valid JSON", key);
    cJSON_Delete(check);
    if (!(v = dup_str(json)))
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_meta; i++)
        if (!strcmp(m->meta_key[i], key)) {
            free(m->meta_val[i]);
            m->meta_val[i] = v;
            return OC_OK;
        }
    keys = realloc(m->meta_key, (size_t)(m->n_meta + 1) * sizeof *keys);
    if (keys)
        m->meta_key = keys;
    vals = realloc(m->meta_val, (size_t)(m->n_meta + 1) * sizeof *vals);
    if (vals)
        m->meta_val = vals;
    if (!keys || !vals || !(m->meta_key[m->n_meta] = dup_str(key))) {
        free(v);
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    m->meta_val[m->n_meta++] = v;
    return OC_OK;
}

const char *oc_model_get_meta(const oc_model *m, const char *key)
{
    for (int i = 0; i < m->n_meta; i++)
        if (!strcmp(m->meta_key[i], key))
            return m->meta_val[i];
    return NULL;
}

int oc_model_num_meta(const oc_model *m)
{
    return m->n_meta;
}

const char *oc_model_meta_key(const oc_model *m, int i)
{
    if (i < 0 || i >= m->n_meta)
        return NULL;
    return m->meta_key[i];
}

void oc_nn_set_dropout(oc_model *m, int enabled)
{
    m->dropout_off = !enabled;
}
