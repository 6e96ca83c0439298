/* Inference conv epilogues: a conv2d followed, in node order, by any of
 *   batch norm (running statistics)  ->  add (a residual computed before the conv)  ->  activation
 * runs as one fused conv at inference (ops.h, oc_conv2d_fwd_fused): the batch norm becomes a
 * per-channel affine of the sum (with the conv's bias), and the
 * residual add and the activation are applied to each output block while it is in cache,
 * instead of one pass over memory per node.
 *
 * The batch norm is folded into the epilogue rather than into a copy of the weights: its
 * per-channel vectors (3 * K floats) are recomputed from the current parameters and running
 * statistics at every inference forward, so they can never go stale when the model is
 * trained further or its buffers are written through oc_model_params / oc_model_state, and
 * the stored parameters are never touched.
 *
 * Each absorbed node must be the only consumer of the one before it, so no other node reads
 * the intermediate results, and the residual must come from a node before the conv, so it is
 * ready when the conv runs. Inference plans then give the conv and the absorbed nodes but the
 * last no buffer (plan.c); training forwards run every node as before.
 *
 * With fixed weights, three such fused convs that form an inverted-residual block (1x1 expand,
 * depthwise, 1x1 project, each read only by the next) run as one op from the first one's step
 * (plan_blocks; ops.h, oc_block_fwd_fused), the other two absorbed. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>

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

/* 1 when node b reads node a. */
static int reads(const oc_node *b, int a)
{
    for (int k = 0; k < b->n_in; k++)
        if (b->in[k] == a)
            return 1;
    return 0;
}

void oc_nn_epilogues_release(oc_model *m)
{
    free(m->epi_buf);
    m->epi_buf = NULL;
    for (int i = 0; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        nd->epi_last = nd->epi_bn = nd->epi_add = nd->epi_act = 0;
        nd->blk_dw = nd->blk_pr = 0;
        nd->epi_res = -1;
        nd->absorbed = 0;
        nd->epi_pre = nd->epi_scale = nd->epi_shift = NULL;
        oc_free(nd->wpack);
        nd->wpack = NULL;
    }
}

/* pre, scale and shift from the current parameters: with a batch norm (running statistics)
 *   pre = bias - mean, scale = gamma / sqrt(var + eps) (computed as norm.c does), shift = beta;
 * without, pre = bias, scale 1, shift 0. */
static void fill_affine(oc_model *m, oc_node *nd)
{
    const int K = nd->C;
    const float *bias = nd->bias ? oc_nn_param(m, nd, 1) : NULL;
    if (nd->epi_bn) {
        const oc_node *bn = &m->nodes[nd->epi_bn];
        const float *gamma = oc_nn_param(m, bn, 0), *beta = oc_nn_param(m, bn, 1);
        const float *mean = oc_nn_param(m, bn, 2), *var = oc_nn_param(m, bn, 3);
        for (int k = 0; k < K; k++) {
            float inv = (float)(1.0 / sqrt((double)var[k] + (double)bn->eps));
            nd->epi_pre[k] = (bias ? bias[k] : 0.0f) - mean[k];
            nd->epi_scale[k] = inv * gamma[k];
            nd->epi_shift[k] = beta[k];
        }
    } else {
        for (int k = 0; k < K; k++) {
            nd->epi_pre[k] = bias ? bias[k] : 0.0f;
            nd->epi_scale[k] = 1.0f;
            nd->epi_shift[k] = 0.0f;
        }
    }
}

/* With fixed weights, a fused convolution keeps its weights packed the way its kernel reads
 * them (the epilogue's w_packed: GEMM panels, direct, Winograd or depthwise layouts), instead
 * of packing them on every call. With the affine below, computed once too, these are the only
 * copies of parameters an inference plan keeps, and only on that promise
 * (oc_model_set_weights_fixed). */
static oc_status pack_weights(oc_model *m)
{
    for (int i = 1; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        oc_conv_shape s;
        size_t bytes;
        if (!nd->epi_last)
            continue;
        oc_nn_conv_shape(m, nd, 1, &s);
        if (!(bytes = oc_conv2d_fused_pack_bytes(&s)))
            continue;
        nd->wpack = oc_alloc(bytes);
        if (!nd->wpack)
            return oc_fail(OC_ERR_NOMEM, "out of memory packing the weights");
        oc_conv2d_fused_pack(&s, oc_nn_param(m, nd, 0), nd->wpack);
    }
    return OC_OK;
}

/* Extends the chain of conv node i; returns its last node (i: nothing to fuse). */
static int match_chain(oc_model *m, int i)
{
    oc_node *cv = &m->nodes[i];
    int cur = i;
    while (cur + 1 < m->n_nodes && m->nodes[cur].n_consumers == 1 && !cv->epi_act) {
        oc_node *nx = &m->nodes[cur + 1];
        if (!reads(nx, cur))
            break;
        if (nx->op == OC_OP_BATCHNORM && !cv->epi_bn && !cv->epi_add) {
            cv->epi_bn = cur + 1;
        } else if (nx->op == OC_OP_ADD && !cv->epi_add) {
            int r = nx->in[0] == cur ? nx->in[1] : nx->in[0];
            if (r >= i) /* not ready when the conv runs (or the chain itself: add(y, y)) */
                break;
            cv->epi_add = cur + 1;
            cv->epi_res = r;
        } else if (act_of(nx->op) != OC_ACT_IDENTITY) {
            cv->epi_act = cur + 1;
        } else {
            break;
        }
        cur++;
    }
    return cur;
}

static void epilogue_of(const oc_model *m, const oc_node *nd, oc_conv_epilogue *e)
{
    e->pre = nd->epi_pre;
    e->scale = nd->epi_scale;
    e->shift = nd->epi_shift;
    e->res = nd->epi_add ? m->nodes[nd->epi_res].y : NULL;
    e->act = nd->epi_act ? act_of(m->nodes[nd->epi_act].op) : OC_ACT_IDENTITY;
    e->alpha = nd->epi_act ? m->nodes[nd->epi_act].alpha : 0.0f;
    e->w_packed = nd->wpack;
}

/* The fused conv whose chain's output only conv node j reads, j's input: its index, or 0. */
static int fused_feeding(const oc_model *m, int j)
{
    const oc_node *b = &m->nodes[j];
    if (b->op != OC_OP_CONV2D || !b->epi_last || !b->wpack || b->n_in != 1)
        return 0;
    for (int i = j - 1; i > 0; i--)
        if (m->nodes[i].epi_last == b->in[0])
            return m->nodes[b->in[0]].n_consumers == 1 && m->nodes[i].op == OC_OP_CONV2D ? i
                                                                                         : 0;
    return 0;
}

/* Inverted-residual blocks (weights_fixed inference): a fused 1x1 conv A whose output only a
 * fused depthwise conv B reads, whose output only a fused 1x1 conv C reads, with C's residual
 * (if any) computed before A, runs as one block op (ops.h, oc_block_fused_ok) from A's step:
 * B and C are absorbed, and C's chain's output is written at A's step (plan.c). Without such
 * an A (MobileNetV2's first block), B and C run as a block from B's step. */
static void plan_blocks(oc_model *m)
{
    for (int c = 1; c < m->n_nodes; c++) {
        int b = fused_feeding(m, c), a = b ? fused_feeding(m, b) : 0;
        oc_node *B = &m->nodes[b], *C = &m->nodes[c];
        oc_conv_shape sa, sb, sc;
        oc_conv_epilogue ea, ec;
        if (!b || B->absorbed || B->epi_add)
            continue;
        oc_nn_conv_shape(m, B, 1, &sb);
        oc_nn_conv_shape(m, C, 1, &sc);
        epilogue_of(m, C, &ec);
        if (a) { /* with the expand layer a, if it fits */
            oc_nn_conv_shape(m, &m->nodes[a], 1, &sa);
            epilogue_of(m, &m->nodes[a], &ea);
            if (m->nodes[a].absorbed || (C->epi_add && C->epi_res >= a) ||
                !oc_block_fused_ok(&sa, &sb, &sc, ea.act, ec.act))
                a = 0;
        }
        if (!a && ((C->epi_add && C->epi_res >= b) ||
                   !oc_block_fused_ok(NULL, &sb, &sc, OC_ACT_IDENTITY, ec.act)))
            continue;
        oc_node *F = &m->nodes[a ? a : b]; /* the block's first node runs it */
        F->blk_dw = b;
        F->blk_pr = c;
        for (int j = a ? b : c; j <= C->epi_last; j++)
            m->nodes[j].absorbed = 1;
    }
}

size_t oc_nn_blocks_workspace(oc_model *m)
{
    size_t ws = 0;
    for (int i = 1; i < m->n_nodes; i++) {
        oc_conv_shape s;
        if (!m->nodes[i].blk_dw)
            continue;
        oc_nn_conv_shape(m, &m->nodes[m->nodes[i].blk_dw], 1, &s);
        size_t b = oc_block_fused_workspace(&s, oc_get_threads());
        ws = b > ws ? b : ws;
    }
    return ws;
}

oc_status oc_nn_plan_epilogues(oc_model *m)
{
    size_t floats = 0;
    float *p;
    oc_status st;
    oc_nn_epilogues_release(m);
    if (m->no_fusion)
        return OC_OK;
    for (int i = 1; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        int last;
        if (nd->op != OC_OP_CONV2D)
            continue;
        last = match_chain(m, i);
        if (last == i)
            continue;
        nd->epi_last = last;
        for (int j = i + 1; j <= last; j++)
            m->nodes[j].absorbed = 1;
        floats += 3 * (size_t)nd->C;
        i = last;
    }
    if (!floats)
        return OC_OK;
    m->epi_buf = malloc(floats * sizeof(float));
    if (!m->epi_buf) {
        oc_nn_epilogues_release(m);
        return oc_fail(OC_ERR_NOMEM, "out of memory planning the model");
    }
    p = m->epi_buf;
    for (int i = 1; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        if (!nd->epi_last)
            continue;
        nd->epi_pre = p;
        nd->epi_scale = p + nd->C;
        nd->epi_shift = p + 2 * (size_t)nd->C;
        p += 3 * (size_t)nd->C;
    }
    if (m->weights_fixed && (st = pack_weights(m)) != OC_OK) {
        oc_nn_epilogues_release(m);
        return st;
    }
    if (m->weights_fixed) /* computed once, as the packing; otherwise on every forward */
        for (int i = 1; i < m->n_nodes; i++)
            if (m->nodes[i].epi_last)
                fill_affine(m, &m->nodes[i]);
    if (m->weights_fixed)
        plan_blocks(m);
    return OC_OK;
}

void oc_nn_conv_fwd_fused(oc_model *m, oc_node *nd, int n)
{
    oc_conv_shape s;
    oc_conv_epilogue e;
    if (!m->weights_fixed)
        fill_affine(m, nd);
    epilogue_of(m, nd, &e);
    oc_nn_conv_shape(m, nd, n, &s);
    oc_conv2d_fwd_fused(&s, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0), &e,
                        m->nodes[nd->epi_last].y, m->ws);
}

void oc_nn_block_fwd_fused(oc_model *m, oc_node *nd, int n)
{
    oc_node *b = &m->nodes[nd->blk_dw], *c = &m->nodes[nd->blk_pr];
    const int expand = b != nd;
    oc_conv_shape sa, sb, sc;
    oc_conv_epilogue ea, eb, ec;
    oc_nn_conv_shape(m, nd, n, &sa);
    oc_nn_conv_shape(m, b, n, &sb);
    oc_nn_conv_shape(m, c, n, &sc);
    epilogue_of(m, nd, &ea);
    epilogue_of(m, b, &eb);
    epilogue_of(m, c, &ec);
    if (!oc_block_fused_ok(expand ? &sa : NULL, &sb, &sc, ea.act, ec.act) ||
        oc_block_fused_workspace(&sb, 1) > m->ws_size) {
        /* the CPU settings changed since planning: the layers (their buffers exist) */
        if (expand)
            oc_nn_conv_fwd_fused(m, nd, n);
        oc_nn_conv_fwd_fused(m, b, n);
        oc_nn_conv_fwd_fused(m, c, n);
        return;
    }
    oc_block_fwd_fused(expand ? &sa : NULL, &sb, &sc, oc_nn_in(m, nd, 0), oc_nn_param(m, nd, 0),
                       oc_nn_param(m, c, 0), &ea, &eb, &ec, m->nodes[c->epi_last].y, m->ws,
                       m->ws_size);
}
