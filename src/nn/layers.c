/* The op table: per op type, the spec attributes (parse / emit), shape inference with the
 * parameter layout and FLOP count, and forward / backward over the planned buffers.
 *
 * FLOPs are forward FLOPs per image: a multiply-add counts 2 (conv2d, dense, channel_mul 1),
 * batch norm 2 per output element, other elementwise ops and pools 1 per element read. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ attribute helpers */

static oc_status bad(const oc_node *nd, const char *what)
{
    return oc_fail(OC_ERR_FORMAT, "node '%s': %s", nd->name, what);
}

/* A whole number >= lo. */
static oc_status check_int(const oc_node *nd, const char *key, double d, int lo, int *out)
{
    if (d != floor(d) || d > 1e9 || d < -1e9)
        return oc_fail(OC_ERR_FORMAT, "node '%s': %s %g must be a whole number", nd->name, key, d);
    if (d < lo)
        return oc_fail(OC_ERR_FORMAT, "node '%s': %s %d must be >= %d", nd->name, key, (int)d,
                       lo);
    *out = (int)d;
    return OC_OK;
}

/* An integer attribute: absent -> def. */
static oc_status get_int(const oc_node *nd, const cJSON *j, const char *key, int def, int lo,
                         int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) {
        *out = def;
        return OC_OK;
    }
    if (!cJSON_IsNumber(v))
        return oc_fail(OC_ERR_FORMAT, "node '%s': %s must be a number", nd->name, key);
    return check_int(nd, key, v->valuedouble, lo, out);
}

/* An int or a [h, w] pair. */
static oc_status get_pair(const oc_node *nd, const cJSON *j, const char *key, int def, int lo,
                          int *a, int *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    oc_status st;
    if (v && cJSON_IsArray(v)) {
        const cJSON *e0 = cJSON_GetArrayItem(v, 0), *e1 = cJSON_GetArrayItem(v, 1);
        if (cJSON_GetArraySize(v) != 2 || !cJSON_IsNumber(e0) || !cJSON_IsNumber(e1))
            return oc_fail(OC_ERR_FORMAT, "node '%s': %s must be a number or [height, width]",
                           nd->name, key);
        st = check_int(nd, key, e0->valuedouble, lo, a);
        return st ? st : check_int(nd, key, e1->valuedouble, lo, b);
    }
    st = get_int(nd, j, key, def, lo, a);
    *b = *a;
    return st;
}

static oc_status get_float(const oc_node *nd, const cJSON *j, const char *key, float def, double lo,
                           double hi, int hi_open, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    double d;
    if (!v) {
        *out = def;
        return OC_OK;
    }
    if (!cJSON_IsNumber(v))
        return oc_fail(OC_ERR_FORMAT, "node '%s': %s must be a number", nd->name, key);
    d = v->valuedouble;
    if (!(d >= lo && (hi_open ? d < hi : d <= hi)))
        return oc_fail(OC_ERR_FORMAT, "node '%s': %s %g must be in [%g, %g%s", nd->name, key, d,
                       lo, hi, hi_open ? ")" : "]");
    *out = (float)d;
    return OC_OK;
}

static oc_status get_bool(const oc_node *nd, const cJSON *j, const char *key, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) {
        *out = def;
        return OC_OK;
    }
    if (!cJSON_IsBool(v))
        return oc_fail(OC_ERR_FORMAT, "node '%s': %s must be true or false", nd->name, key);
    *out = cJSON_IsTrue(v);
    return OC_OK;
}

/* "padding": "same" | "valid" | int | [h, w] */
static oc_status get_padding(oc_node *nd, const cJSON *j, int allow_same)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "padding");
    nd->same = 0;
    nd->ph = nd->pw = 0;
    if (!v)
        return OC_OK;
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "valid"))
            return OC_OK;
        if (!strcmp(v->valuestring, "same") && allow_same) {
            nd->same = 1;
            return OC_OK;
        }
        return oc_fail(OC_ERR_FORMAT, "node '%s': padding '%s' must be %sa number or [h, w]",
                       nd->name, v->valuestring, allow_same ? "\"same\", \"valid\", " : "\"valid\", ");
    }
    return get_pair(nd, j, "padding", 0, 0, &nd->ph, &nd->pw);
}

static const char *const init_names[] = {"default", "he_fan_in", "he_fan_out", "normal", "dirac",
                                         "whiten"};

static oc_status get_init(oc_node *nd, const cJSON *j)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "init");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bias_init");
    oc_status st;
    nd->init = OC_INIT_DEFAULT;
    if (v) {
        int found = 0;
        if (cJSON_IsString(v))
            for (int i = 0; i < (int)(sizeof init_names / sizeof *init_names); i++)
                if (!strcmp(v->valuestring, init_names[i])) {
                    nd->init = (oc_init_kind)i;
                    found = 1;
                }
        if (!found)
            return bad(nd, "init must be \"default\", \"he_fan_in\", \"he_fan_out\", "
                           "\"normal\", \"dirac\" or \"whiten\"");
    }
    st = get_float(nd, j, "init_std", 0.01f, 0, 1e6, 0, &nd->init_std);
    if (st != OC_OK)
        return st;
    nd->bias_zero = 0;
    if (b) {
        if (cJSON_IsString(b) && !strcmp(b->valuestring, "zeros"))
            nd->bias_zero = 1;
        else if (!(cJSON_IsString(b) && !strcmp(b->valuestring, "default")))
            return bad(nd, "bias_init must be \"default\" or \"zeros\"");
    }
    return OC_OK;
}

static void emit_pair(cJSON *j, const char *key, int a, int b)
{
    if (a == b) {
        cJSON_AddNumberToObject(j, key, a);
    } else {
        int v[2] = {a, b};
        cJSON_AddItemToObject(j, key, cJSON_CreateIntArray(v, 2));
    }
}

static void emit_init(const oc_node *nd, cJSON *j)
{
    if (nd->init != OC_INIT_DEFAULT)
        cJSON_AddStringToObject(j, "init", init_names[nd->init]);
    if (nd->init == OC_INIT_NORMAL)
        cJSON_AddNumberToObject(j, "init_std", (double)nd->init_std);
    if (nd->bias_zero)
        cJSON_AddStringToObject(j, "bias_init", "zeros");
}

static void emit_padding(const oc_node *nd, cJSON *j)
{
    if (nd->same)
        cJSON_AddStringToObject(j, "padding", "same");
    else
        emit_pair(j, "padding", nd->ph, nd->pw);
}

/* Output extent of a window op with explicit or "same" padding: returns the output size and
 * the leading padding, or -1 if the window does not fit. */
static int window_out(int in, int k_eff, int stride, int same, int pad, int *lead)
{
    if (same) {
        int out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + k_eff - in;
        *lead = total > 0 ? total / 2 : 0;
        return out;
    }
    *lead = pad;
    if (in + 2 * pad - k_eff < 0)
        return -1;
    return (in + 2 * pad - k_eff) / stride + 1;
}

static const oc_node *input_node(const oc_model *m, const oc_node *nd, int j)
{
    return &m->nodes[nd->in[j]];
}

/* ------------------------------------------------------------------ conv2d */

static const char *const conv_attrs[] = {"filters", "kernel", "stride", "padding", "dilation",
                                         "groups", "bias", "init", "init_std", "bias_init", NULL};

static oc_status conv_parse(oc_node *nd, const cJSON *j)
{
    oc_status st;
    if (!cJSON_GetObjectItemCaseSensitive(j, "filters"))
        return bad(nd, "conv2d needs \"filters\"");
    if (!cJSON_GetObjectItemCaseSensitive(j, "kernel"))
        return bad(nd, "conv2d needs \"kernel\"");
    if ((st = get_int(nd, j, "filters", 1, 1, &nd->filters)) ||
        (st = get_pair(nd, j, "kernel", 1, 1, &nd->kh, &nd->kw)) ||
        (st = get_pair(nd, j, "stride", 1, 1, &nd->sh, &nd->sw)) ||
        (st = get_pair(nd, j, "dilation", 1, 1, &nd->dh, &nd->dw)) ||
        (st = get_int(nd, j, "groups", 1, 1, &nd->groups)) ||
        (st = get_bool(nd, j, "bias", 1, &nd->bias)) || (st = get_padding(nd, j, 1)) ||
        (st = get_init(nd, j)))
        return st;
    return OC_OK;
}

static void conv_emit(const oc_node *nd, cJSON *j)
{
    cJSON_AddNumberToObject(j, "filters", nd->filters);
    emit_pair(j, "kernel", nd->kh, nd->kw);
    emit_pair(j, "stride", nd->sh, nd->sw);
    emit_padding(nd, j);
    if (nd->dh != 1 || nd->dw != 1)
        emit_pair(j, "dilation", nd->dh, nd->dw);
    if (nd->groups != 1)
        cJSON_AddNumberToObject(j, "groups", nd->groups);
    cJSON_AddBoolToObject(j, "bias", nd->bias);
    emit_init(nd, j);
}

static oc_status conv_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    int64_t shape[4];
    int P, Q, Cg;
    oc_status st;
    if (x->C % nd->groups)
        return oc_fail(OC_ERR_SHAPE, "node '%s': %d input channels are not divisible by groups %d",
                       nd->name, x->C, nd->groups);
    if (nd->filters % nd->groups)
        return oc_fail(OC_ERR_SHAPE, "node '%s': filters %d are not divisible by groups %d",
                       nd->name, nd->filters, nd->groups);
    P = window_out(x->H, nd->dh * (nd->kh - 1) + 1, nd->sh, nd->same, nd->ph, &nd->pad_top);
    Q = window_out(x->W, nd->dw * (nd->kw - 1) + 1, nd->sw, nd->same, nd->pw, &nd->pad_left);
    if (P < 1 || Q < 1)
        return oc_fail(OC_ERR_SHAPE,
                       "node '%s': kernel %dx%d (dilation %dx%d, padding %dx%d) does not fit its "
                       "%dx%d input",
                       nd->name, nd->kh, nd->kw, nd->dh, nd->dw, nd->ph, nd->pw, x->H, x->W);
    Cg = x->C / nd->groups;
    nd->H = P;
    nd->W = Q;
    nd->C = nd->filters;
    shape[0] = nd->filters;
    shape[1] = nd->kh;
    shape[2] = nd->kw;
    shape[3] = Cg;
    if ((st = oc_nn_add_tensor(m, nd, "weight", OC_PARAM_WEIGHT, 4, shape)))
        return st;
    if (nd->bias && (st = oc_nn_add_tensor(m, nd, "bias", OC_PARAM_BIAS, 1, shape)))
        return st;
    nd->flops = 2.0 * P * Q * nd->filters * nd->kh * nd->kw * Cg;
    return OC_OK;
}

void oc_nn_conv_shape(const oc_model *m, const oc_node *nd, int n, oc_conv_shape *s)
{
    const oc_node *x = input_node(m, nd, 0);
    memset(s, 0, sizeof *s);
    s->N = n;
    s->H = x->H;
    s->W = x->W;
    s->C = x->C;
    s->K = nd->filters;
    s->R = nd->kh;
    s->S = nd->kw;
    s->P = nd->H;
    s->Q = nd->W;
    s->stride_h = nd->sh;
    s->stride_w = nd->sw;
    s->pad_h = nd->pad_top;
    s->pad_w = nd->pad_left;
    s->dil_h = nd->dh;
    s->dil_w = nd->dw;
    s->groups = nd->groups;
}

static void conv_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    oc_conv_shape s;
    if (!training && nd->blk_pr) { /* its whole inverted-residual block (epilogue.c) */
        oc_nn_block_fwd_fused(m, nd, n);
        return;
    }
    if (!training && nd->epi_last) { /* with the nodes after it (epilogue.c) */
        oc_nn_conv_fwd_fused(m, nd, n);
        return;
    }
    oc_nn_conv_shape(m, nd, n, &s);
    oc_conv2d_fwd(&s, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0),
                  nd->bias ? oc_nn_param(m, nd, 1) : NULL, nd->y, m->ws);
}

static void conv_bwd(oc_model *m, oc_node *nd, int n)
{
    oc_conv_shape s;
    float *dx = oc_nn_din_needed(m, nd, 0);
    float *db = nd->bias && oc_nn_wants_grad(m, nd, 1) ? oc_nn_grad(m, nd, 1) : NULL;
    oc_nn_conv_shape(m, nd, n, &s);
    if (dx)
        (nd->sets_dx ? oc_conv2d_bwd_data_set : oc_conv2d_bwd_data)(
            &s, nd->dy, oc_nn_param(m, nd, 0), dx, m->ws);
    /* a frozen weight (the spec's "freeze", e.g. airnet's whitening filters, or one training
     * leaves alone) gets no gradient: no optimizer reads it, and it is the costliest product
     * of the layer */
    if (oc_nn_wants_grad(m, nd, 0) || db)
        oc_conv2d_bwd_weights(&s, oc_nn_in(m, nd, 0), nd->dy,
                              oc_nn_wants_grad(m, nd, 0) ? oc_nn_grad(m, nd, 0) : NULL, db,
                              m->ws);
}

/* ------------------------------------------------------------------ dense */

static void scale_buf(float *x, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

static const char *const dense_attrs[] = {"units", "bias", "init", "init_std", "bias_init", "scale",
                                          NULL};

static oc_status dense_parse(oc_node *nd, const cJSON *j)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "units");
    oc_status st;
    if (!u)
        return bad(nd, "dense needs \"units\"");
    nd->units_classes = 0;
    if (cJSON_IsString(u)) {
        if (strcmp(u->valuestring, "classes"))
            return bad(nd, "units must be a number or \"classes\"");
        nd->units_classes = 1;
        nd->units = 0;
    } else if ((st = get_int(nd, j, "units", 1, 1, &nd->units))) {
        return st;
    }
    if ((st = get_bool(nd, j, "bias", 1, &nd->bias)) || (st = get_init(nd, j)) ||
        (st = get_float(nd, j, "scale", 1.0f, -1e6, 1e6, 0, &nd->scale)))
        return st;
    if (nd->init == OC_INIT_DIRAC || nd->init == OC_INIT_WHITEN)
        return bad(nd, "init \"dirac\" and \"whiten\" are for conv2d");
    return OC_OK;
}

static void dense_emit(const oc_node *nd, cJSON *j)
{
    if (nd->units_classes)
        cJSON_AddStringToObject(j, "units", "classes");
    else
        cJSON_AddNumberToObject(j, "units", nd->units);
    cJSON_AddBoolToObject(j, "bias", nd->bias);
    emit_init(nd, j);
    if (nd->scale != 1.0f)
        cJSON_AddNumberToObject(j, "scale", (double)nd->scale);
}

static oc_status dense_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    int64_t shape[2];
    int64_t in = oc_nn_size(x);
    oc_status st;
    if (nd->units_classes)
        nd->units = m->classes;
    if (in > INT32_MAX / 4)
        return oc_fail(OC_ERR_SHAPE, "node '%s': %lld inputs are too many for a dense layer",
                       nd->name, (long long)in);
    nd->H = nd->W = 1;
    nd->C = nd->units;
    shape[0] = nd->units;
    shape[1] = in;
    if ((st = oc_nn_add_tensor(m, nd, "weight", OC_PARAM_WEIGHT, 2, shape)))
        return st;
    if (nd->bias && (st = oc_nn_add_tensor(m, nd, "bias", OC_PARAM_BIAS, 1, shape)))
        return st;
    nd->flops = 2.0 * (double)in * nd->units;
    return OC_OK;
}

static void dense_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    int I = (int)oc_nn_size(input_node(m, nd, 0));
    oc_dense_fwd(n, I, nd->units, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0),
                 nd->bias ? oc_nn_param(m, nd, 1) : NULL, nd->y);
    if (nd->scale != 1.0f)
        scale_buf(nd->y, (size_t)n * (size_t)nd->units, nd->scale);
}

static void dense_bwd(oc_model *m, oc_node *nd, int n)
{
    int I = (int)oc_nn_size(input_node(m, nd, 0));
    /* y = s (W x + b): the layer's own dy is read only here, so it is scaled in place */
    if (nd->scale != 1.0f)
        scale_buf(nd->dy, (size_t)n * (size_t)nd->units, nd->scale);
    oc_dense_bwd(n, I, nd->units, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0), nd->dy,
                 oc_nn_din_needed(m, nd, 0), oc_nn_grad(m, nd, 0),
                 nd->bias ? oc_nn_grad(m, nd, 1) : NULL);
}

/* ------------------------------------------------------------------ batchnorm */

static const char *const bn_attrs[] = {"eps", "momentum", NULL};

static oc_status bn_parse(oc_node *nd, const cJSON *j)
{
    oc_status st;
    if ((st = get_float(nd, j, "eps", 1e-5f, 0, 1, 0, &nd->eps)) ||
        (st = get_float(nd, j, "momentum", 0.1f, 0, 1, 0, &nd->momentum)))
        return st;
    if (!(nd->eps > 0))
        return bad(nd, "eps must be > 0");
    return OC_OK;
}

static void bn_emit(const oc_node *nd, cJSON *j)
{
    cJSON_AddNumberToObject(j, "eps", (double)nd->eps);
    cJSON_AddNumberToObject(j, "momentum", (double)nd->momentum);
}

static oc_status bn_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    int64_t shape[1] = {x->C};
    oc_status st;
    nd->H = x->H;
    nd->W = x->W;
    nd->C = x->C;
    if ((st = oc_nn_add_tensor(m, nd, "weight", OC_PARAM_NORM_SCALE, 1, shape)) ||
        (st = oc_nn_add_tensor(m, nd, "bias", OC_PARAM_NORM_SHIFT, 1, shape)) ||
        (st = oc_nn_add_tensor(m, nd, "running_mean", OC_PARAM_STATE, 1, shape)) ||
        (st = oc_nn_add_tensor(m, nd, "running_var", OC_PARAM_STATE, 1, shape)))
        return st;
    nd->flops = 2.0 * (double)oc_nn_size(nd);
    return OC_OK;
}

/* With a fused activation (plan.c) nd->y is the activation node's output and the gradient
 * comes from that node's dy. */
static void bn_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    int64_t M = (int64_t)n * nd->H * nd->W;
    if (training)
        oc_batchnorm_act_fwd_train(M, nd->C, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0),
                                   oc_nn_param(m, nd, 1), nd->eps, nd->momentum,
                                   oc_nn_param(m, nd, 2), oc_nn_param(m, nd, 3),
                                   nd->save_mean, nd->save_invstd, nd->fuse_act, nd->y);
    else
        oc_batchnorm_act_fwd_infer(M, nd->C, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0),
                                   oc_nn_param(m, nd, 1), oc_nn_param(m, nd, 2),
                                   oc_nn_param(m, nd, 3), nd->eps, nd->fuse_act, nd->y);
}

static void bn_bwd(oc_model *m, oc_node *nd, int n)
{
    int64_t M = (int64_t)n * nd->H * nd->W;
    const oc_node *out = nd->fuse_act != OC_ACT_IDENTITY ? nd + 1 : nd;
    (nd->sets_dx ? oc_batchnorm_act_bwd_set : oc_batchnorm_act_bwd)(
        M, nd->C, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0), oc_nn_param(m, nd, 1),
        nd->save_mean, nd->save_invstd, nd->fuse_act, out->dy, oc_nn_din(m, nd, 0),
        oc_nn_grad(m, nd, 0), oc_nn_grad(m, nd, 1));
}

void oc_nn_bn_rebuild(oc_model *m, oc_node *nd, int n)
{
    oc_batchnorm_act_apply((int64_t)n * nd->H * nd->W, nd->C, oc_nn_in(m, nd, 0),
                           oc_nn_param(m, nd, 0), oc_nn_param(m, nd, 1), nd->save_mean,
                           nd->save_invstd, nd->fuse_act, nd->y);
}

/* ------------------------------------------------------------------ activations */

static const char *const no_attrs[] = {NULL};
static const char *const leaky_attrs[] = {"alpha", NULL};

static oc_status none_parse(oc_node *nd, const cJSON *j)
{
    return OC_OK;
}

static void none_emit(const oc_node *nd, cJSON *j)
{
}

static oc_status leaky_parse(oc_node *nd, const cJSON *j)
{
    return get_float(nd, j, "alpha", 0.01f, -1e6, 1e6, 0, &nd->alpha);
}

static void leaky_emit(const oc_node *nd, cJSON *j)
{
    cJSON_AddNumberToObject(j, "alpha", (double)nd->alpha);
}

static oc_status same_shape_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    nd->H = x->H;
    nd->W = x->W;
    nd->C = x->C;
    nd->flops = (double)oc_nn_size(nd);
    return OC_OK;
}

static oc_act act_of(oc_op_type op)
{
    switch (op) {
    case OC_OP_RELU: return OC_ACT_RELU;
    case OC_OP_RELU6: return OC_ACT_RELU6;
    case OC_OP_LEAKY_RELU: return OC_ACT_LEAKY_RELU;
    case OC_OP_GELU: return OC_ACT_GELU;
    case OC_OP_SILU: return OC_ACT_SILU;
    case OC_OP_SIGMOID: return OC_ACT_SIGMOID;
    case OC_OP_HARDSWISH: return OC_ACT_HARDSWISH;
    default: return OC_ACT_IDENTITY;
    }
}

static void act_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    if (nd->fused) /* its producer applied it (plan.c) */
        return;
    oc_act_fwd(act_of(nd->op), nd->alpha, n * oc_nn_size(nd), oc_nn_in(m, nd, 0), nd->y);
}

static void act_bwd(oc_model *m, oc_node *nd, int n)
{
    if (nd->fused)
        return;
    (nd->sets_dx ? oc_act_bwd_set : oc_act_bwd)(act_of(nd->op), nd->alpha, n * oc_nn_size(nd),
                                                 oc_nn_in(m, nd, 0), nd->dy,
                                                 oc_nn_din(m, nd, 0));
}

/* identity, flatten, and dropout when it is off: copy forward, accumulate backward */
static void copy_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    memcpy(nd->y, oc_nn_in(m, nd, 0), (size_t)(n * oc_nn_size(nd)) * sizeof(float));
}

static void copy_bwd(oc_model *m, oc_node *nd, int n)
{
    (nd->sets_dx ? oc_accumulate_set : oc_accumulate)(n * oc_nn_size(nd), nd->dy,
                                                      oc_nn_din(m, nd, 0));
}

/* ------------------------------------------------------------------ pooling */

static const char *const pool_attrs[] = {"kernel", "stride", "padding", NULL};
static const char *const avgpool_attrs[] = {"kernel", "stride", "padding", "count_include_pad",
                                            NULL};

static oc_status pool_parse(oc_node *nd, const cJSON *j)
{
    oc_status st;
    if (!cJSON_GetObjectItemCaseSensitive(j, "kernel"))
        return bad(nd, "pooling needs \"kernel\"");
    if ((st = get_pair(nd, j, "kernel", 1, 1, &nd->kh, &nd->kw)) ||
        (st = get_pair(nd, j, "stride", 1, 1, &nd->sh, &nd->sw)) ||
        (st = get_padding(nd, j, nd->op == OC_OP_MAXPOOL)))
        return st;
    if (!cJSON_GetObjectItemCaseSensitive(j, "stride")) {
        nd->sh = nd->kh;
        nd->sw = nd->kw;
    }
    if (nd->op == OC_OP_AVGPOOL &&
        (st = get_bool(nd, j, "count_include_pad", 1, &nd->count_include_pad)))
        return st;
    if (2 * nd->ph > nd->kh || 2 * nd->pw > nd->kw)
        return oc_fail(OC_ERR_FORMAT, "node '%s': padding %dx%d must be at most half the kernel %dx%d",
                       nd->name, nd->ph, nd->pw, nd->kh, nd->kw);
    return OC_OK;
}

static void pool_emit(const oc_node *nd, cJSON *j)
{
    emit_pair(j, "kernel", nd->kh, nd->kw);
    emit_pair(j, "stride", nd->sh, nd->sw);
    emit_padding(nd, j);
    if (nd->op == OC_OP_AVGPOOL)
        cJSON_AddBoolToObject(j, "count_include_pad", nd->count_include_pad);
}

static oc_status pool_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    int P = window_out(x->H, nd->kh, nd->sh, nd->same, nd->ph, &nd->pad_top);
    int Q = window_out(x->W, nd->kw, nd->sw, nd->same, nd->pw, &nd->pad_left);
    if (P < 1 || Q < 1)
        return oc_fail(OC_ERR_SHAPE, "node '%s': window %dx%d (padding %dx%d) does not fit its %dx%d input",
                       nd->name, nd->kh, nd->kw, nd->ph, nd->pw, x->H, x->W);
    nd->H = P;
    nd->W = Q;
    nd->C = x->C;
    nd->flops = (double)P * Q * x->C * nd->kh * nd->kw;
    return OC_OK;
}

void oc_nn_pool_shape(const oc_model *m, const oc_node *nd, int n, oc_pool_shape *s)
{
    const oc_node *x = input_node(m, nd, 0);
    memset(s, 0, sizeof *s);
    s->N = n;
    s->H = x->H;
    s->W = x->W;
    s->C = x->C;
    s->R = nd->kh;
    s->S = nd->kw;
    s->P = nd->H;
    s->Q = nd->W;
    s->stride_h = nd->sh;
    s->stride_w = nd->sw;
    s->pad_h = nd->pad_top;
    s->pad_w = nd->pad_left;
    s->count_include_pad = nd->count_include_pad;
}

static void maxpool_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    oc_pool_shape s;
    oc_nn_pool_shape(m, nd, n, &s);
    oc_maxpool_fwd(&s, oc_nn_in(m, nd, 0), nd->y, nd->argmax ? nd->argmax : m->argmax_scratch);
}

static void maxpool_bwd(oc_model *m, oc_node *nd, int n)
{
    oc_pool_shape s;
    oc_nn_pool_shape(m, nd, n, &s);
    (nd->sets_dx ? oc_maxpool_bwd_set : oc_maxpool_bwd)(&s, nd->argmax, nd->dy,
                                                        oc_nn_din(m, nd, 0));
}

static void avgpool_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    oc_pool_shape s;
    oc_nn_pool_shape(m, nd, n, &s);
    oc_avgpool_fwd(&s, oc_nn_in(m, nd, 0), nd->y);
}

static void avgpool_bwd(oc_model *m, oc_node *nd, int n)
{
    oc_pool_shape s;
    oc_nn_pool_shape(m, nd, n, &s);
    oc_avgpool_bwd(&s, nd->dy, oc_nn_din(m, nd, 0));
}

static oc_status gap_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    nd->H = nd->W = 1;
    nd->C = x->C;
    nd->flops = (double)oc_nn_size(x);
    return OC_OK;
}

static void gap_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    const oc_node *x = input_node(m, nd, 0);
    oc_global_avgpool_fwd(n, x->H * x->W, x->C, x->y, nd->y);
}

static void gap_bwd(oc_model *m, oc_node *nd, int n)
{
    const oc_node *x = input_node(m, nd, 0);
    oc_global_avgpool_bwd(n, x->H * x->W, x->C, nd->dy, x->dy);
}

/* ------------------------------------------------------------------ dropout, flatten */

static const char *const dropout_attrs[] = {"p", NULL};

static oc_status dropout_parse(oc_node *nd, const cJSON *j)
{
    return get_float(nd, j, "p", 0.5f, 0, 1, 1, &nd->p);
}

static void dropout_emit(const oc_node *nd, cJSON *j)
{
    cJSON_AddNumberToObject(j, "p", (double)nd->p);
}

/* Inverted dropout as torch.nn.Dropout: kept values are scaled by 1/(1-p). The mask is drawn
 * from the model's stream, one uniform per element in NHWC order. */
static void dropout_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    int64_t cnt = n * oc_nn_size(nd);
    if (!training || m->dropout_off || nd->p <= 0.0f) {
        copy_fwd(m, nd, n, training);
        return;
    }
    oc_rng_dropout_mask(&m->rng, cnt, nd->p, 1.0f / (1.0f - nd->p), nd->mask);
    oc_dropout_fwd(cnt, oc_nn_in(m, nd, 0), nd->mask, nd->y);
    m->dropout_used = 1;
}

static void dropout_bwd(oc_model *m, oc_node *nd, int n)
{
    if (!m->dropout_used || nd->p <= 0.0f)
        copy_bwd(m, nd, n);
    else
        (nd->sets_dx ? oc_dropout_bwd_set : oc_dropout_bwd)(n * oc_nn_size(nd), nd->mask,
                                                            nd->dy, oc_nn_din(m, nd, 0));
}

static oc_status flatten_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    int64_t c = oc_nn_size(x);
    if (c > INT32_MAX)
        return oc_fail(OC_ERR_SHAPE, "node '%s': too many features to flatten", nd->name);
    nd->H = nd->W = 1;
    nd->C = (int)c;
    nd->flops = 0;
    return OC_OK;
}

/* ------------------------------------------------------------------ add, concat, channel_mul */

static oc_status add_infer(oc_model *m, oc_node *nd)
{
    const oc_node *a = input_node(m, nd, 0), *b = input_node(m, nd, 1);
    if (a->H != b->H || a->W != b->W || a->C != b->C)
        return oc_fail(OC_ERR_SHAPE, "node '%s': cannot add '%s' (%dx%dx%d) and '%s' (%dx%dx%d)",
                       nd->name, a->name, a->H, a->W, a->C, b->name, b->H, b->W, b->C);
    return same_shape_infer(m, nd);
}

/* With a fused activation (plan.c) nd->y is the activation node's output and the gradient
 * comes from that node's dy. */
static void add_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    oc_add_act_fwd(n * oc_nn_size(nd), oc_nn_in(m, nd, 0), oc_nn_in(m, nd, 1), nd->fuse_act,
                   nd->y);
}

static void add_bwd(oc_model *m, oc_node *nd, int n)
{
    const oc_node *out = nd->fuse_act != OC_ACT_IDENTITY ? nd + 1 : nd;
    oc_add_act_bwd_set(n * oc_nn_size(nd), nd->fuse_act, out->y, out->dy, oc_nn_din(m, nd, 0),
                       oc_nn_din(m, nd, 1), nd->sets_dx & 1, nd->sets_dx >> 1 & 1);
}

static oc_status concat_infer(oc_model *m, oc_node *nd)
{
    const oc_node *a = input_node(m, nd, 0);
    int64_t c = 0;
    nd->c_in = calloc((size_t)nd->n_in, sizeof *nd->c_in);
    nd->x_ptr = calloc((size_t)nd->n_in, sizeof *nd->x_ptr);
    nd->dx_ptr = calloc((size_t)nd->n_in, sizeof *nd->dx_ptr);
    if (!nd->c_in || !nd->x_ptr || !nd->dx_ptr)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    for (int j = 0; j < nd->n_in; j++) {
        const oc_node *b = input_node(m, nd, j);
        if (b->H != a->H || b->W != a->W)
            return oc_fail(OC_ERR_SHAPE,
                           "node '%s': cannot concatenate '%s' (%dx%d) and '%s' (%dx%d): "
                           "spatial sizes differ",
                           nd->name, a->name, a->H, a->W, b->name, b->H, b->W);
        nd->c_in[j] = b->C;
        c += b->C;
    }
    if (c > INT32_MAX)
        return oc_fail(OC_ERR_SHAPE, "node '%s': too many channels", nd->name);
    nd->H = a->H;
    nd->W = a->W;
    nd->C = (int)c;
    nd->flops = 0;
    return OC_OK;
}

static void concat_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    for (int j = 0; j < nd->n_in; j++)
        nd->x_ptr[j] = oc_nn_in(m, nd, j);
    oc_concat_fwd((int64_t)n * nd->H * nd->W, nd->n_in, nd->c_in, nd->x_ptr, nd->y);
}

static void concat_bwd(oc_model *m, oc_node *nd, int n)
{
    for (int j = 0; j < nd->n_in; j++)
        nd->dx_ptr[j] = oc_nn_din(m, nd, j);
    oc_concat_bwd((int64_t)n * nd->H * nd->W, nd->n_in, nd->c_in, nd->dy, nd->dx_ptr);
}

static oc_status cmul_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0), *s = input_node(m, nd, 1);
    if (s->H != 1 || s->W != 1 || s->C != x->C)
        return oc_fail(OC_ERR_SHAPE,
                       "node '%s': the scale '%s' must be 1x1x%d to multiply '%s' (%dx%dx%d), "
                       "not %dx%dx%d",
                       nd->name, s->name, x->C, x->name, x->H, x->W, x->C, s->H, s->W, s->C);
    return same_shape_infer(m, nd);
}

static void cmul_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    oc_channel_mul_fwd(n, nd->H * nd->W, nd->C, oc_nn_in(m, nd, 0), oc_nn_in(m, nd, 1), nd->y);
}

static void cmul_bwd(oc_model *m, oc_node *nd, int n)
{
    float *dx = oc_nn_din(m, nd, 0), *ds = oc_nn_din(m, nd, 1);
    oc_channel_mul_bwd(n, nd->H * nd->W, nd->C, oc_nn_in(m, nd, 0), oc_nn_in(m, nd, 1), nd->dy,
                       dx, ds);
}

/* ------------------------------------------------------------------ shortcut_pad */

/* Option-A ResNet shortcut (He et al. 2016, the CIFAR "LambdaLayer"):
 * y = F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, lo, hi)) with lo = (channels - C) / 2; the data
 * movement itself is oc_shortcut_pad_fwd / _bwd (ops/elementwise.c). */
static const char *const shortcut_attrs[] = {"channels", "stride", NULL};

static oc_status shortcut_parse(oc_node *nd, const cJSON *j)
{
    oc_status st;
    if (!cJSON_GetObjectItemCaseSensitive(j, "channels"))
        return bad(nd, "shortcut_pad needs \"channels\"");
    if ((st = get_int(nd, j, "channels", 1, 1, &nd->channels)) ||
        (st = get_int(nd, j, "stride", 2, 1, &nd->sh)))
        return st;
    nd->sw = nd->sh;
    return OC_OK;
}

static void shortcut_emit(const oc_node *nd, cJSON *j)
{
    cJSON_AddNumberToObject(j, "channels", nd->channels);
    cJSON_AddNumberToObject(j, "stride", nd->sh);
}

static oc_status shortcut_infer(oc_model *m, oc_node *nd)
{
    const oc_node *x = input_node(m, nd, 0);
    if (nd->channels < x->C)
        return oc_fail(OC_ERR_SHAPE, "node '%s': channels %d must be >= the input's %d", nd->name,
                       nd->channels, x->C);
    nd->H = (x->H + nd->sh - 1) / nd->sh;
    nd->W = (x->W + nd->sw - 1) / nd->sw;
    nd->C = nd->channels;
    nd->flops = 0;
    return OC_OK;
}

static void shortcut_fwd(oc_model *m, oc_node *nd, int n, int training)
{
    const oc_node *x = input_node(m, nd, 0);
    oc_shortcut_pad_fwd(n, x->H, x->W, x->C, nd->sh, nd->C, x->y, nd->y);
}

static void shortcut_bwd(oc_model *m, oc_node *nd, int n)
{
    const oc_node *x = input_node(m, nd, 0);
    oc_shortcut_pad_bwd(n, x->H, x->W, x->C, nd->sh, nd->C, nd->dy, oc_nn_din(m, nd, 0),
                        nd->sets_dx);
}

/* ------------------------------------------------------------------ the table */

/* The last field says whether an op's backward reads its inputs' outputs: conv2d and dense
 * (weight gradients), batch norm (the normalised input), activations on their own (the
 * derivative at the input), channel_mul (each input scales the other's gradient). Pools keep
 * their argmax, dropout its mask, and add, concat, copies and shortcut_pad need no values. */

static oc_status input_infer(oc_model *m, oc_node *nd)
{
    nd->H = m->H;
    nd->W = m->W;
    nd->C = m->C;
    return OC_OK;
}

#define ACT(id, nm)                                                                               \
    [id] = {nm, 1, 1, no_attrs, none_parse, none_emit, same_shape_infer, act_fwd, act_bwd, 1}

static const oc_op_def op_table[OC_OP_COUNT] = {
    [OC_OP_INPUT] = {"input", 0, 0, no_attrs, none_parse, none_emit, input_infer, NULL, NULL},
    [OC_OP_CONV2D] = {"conv2d", 1, 1, conv_attrs, conv_parse, conv_emit, conv_infer, conv_fwd,
                      conv_bwd, 1},
    [OC_OP_DENSE] = {"dense", 1, 1, dense_attrs, dense_parse, dense_emit, dense_infer, dense_fwd,
                     dense_bwd, 1},
    [OC_OP_BATCHNORM] = {"batchnorm", 1, 1, bn_attrs, bn_parse, bn_emit, bn_infer, bn_fwd,
                         bn_bwd, 1},
    ACT(OC_OP_RELU, "relu"),
    ACT(OC_OP_RELU6, "relu6"),
    [OC_OP_LEAKY_RELU] = {"leaky_relu", 1, 1, leaky_attrs, leaky_parse, leaky_emit,
                          same_shape_infer, act_fwd, act_bwd, 1},
    ACT(OC_OP_GELU, "gelu"),
    ACT(OC_OP_SILU, "silu"),
    ACT(OC_OP_SIGMOID, "sigmoid"),
    ACT(OC_OP_HARDSWISH, "hardswish"),
    [OC_OP_IDENTITY] = {"identity", 1, 1, no_attrs, none_parse, none_emit, same_shape_infer,
                        copy_fwd, copy_bwd},
    [OC_OP_MAXPOOL] = {"maxpool", 1, 1, pool_attrs, pool_parse, pool_emit, pool_infer,
                       maxpool_fwd, maxpool_bwd},
    [OC_OP_AVGPOOL] = {"avgpool", 1, 1, avgpool_attrs, pool_parse, pool_emit, pool_infer,
                       avgpool_fwd, avgpool_bwd},
    [OC_OP_GLOBAL_AVGPOOL] = {"global_avgpool", 1, 1, no_attrs, none_parse, none_emit, gap_infer,
                              gap_fwd, gap_bwd},
    [OC_OP_DROPOUT] = {"dropout", 1, 1, dropout_attrs, dropout_parse, dropout_emit,
                       same_shape_infer, dropout_fwd, dropout_bwd},
    [OC_OP_FLATTEN] = {"flatten", 1, 1, no_attrs, none_parse, none_emit, flatten_infer, copy_fwd,
                       copy_bwd},
    [OC_OP_ADD] = {"add", 2, 2, no_attrs, none_parse, none_emit, add_infer, add_fwd, add_bwd},
    [OC_OP_CONCAT] = {"concat", 2, 1 << 20, no_attrs, none_parse, none_emit, concat_infer,
                      concat_fwd, concat_bwd},
    [OC_OP_CHANNEL_MUL] = {"channel_mul", 2, 2, no_attrs, none_parse, none_emit, cmul_infer,
                           cmul_fwd, cmul_bwd, 1},
    [OC_OP_SHORTCUT_PAD] = {"shortcut_pad", 1, 1, shortcut_attrs, shortcut_parse, shortcut_emit,
                            shortcut_infer, shortcut_fwd, shortcut_bwd},
};

const oc_op_def *oc_nn_op(oc_op_type op)
{
    return &op_table[op];
}

int oc_nn_op_find(const char *name)
{
    for (int i = 1; i < OC_OP_COUNT; i++)
        if (!strcmp(op_table[i].name, name))
            return i;
    return -1;
}
