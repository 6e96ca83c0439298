/* The planner and the step: one arena holds every activation, activation gradient, auxiliary
 * buffer (batch-norm saved statistics, max-pool argmax, dropout masks), the kept input and the
 * shared kernel workspace, all sized once for a maximum batch. forward / backward then only
 * run kernels over those buffers.
 *
 * Buffer sharing: buffers whose lifetimes do not overlap share memory, assigned greedily
 * (largest first, lowest free offset; as TFLite's arena planner).
 *  - Inference plans: node i's output lives from step i to its last consumer's step.
 *  - Training plans keep every activation (backward reads them). Activation gradients are
 *    shared by lifetime in backward order: node i's gradient is first written when its last
 *    consumer runs backward (it is zeroed just before) and last read by node i's backward.
 *
 * Fusion: a batch norm or an add whose only consumer is a ReLU or ReLU6 (batch norm: or GELU)
 * right after it runs both (one pass forward, one backward, bitwise the same results): the
 * activation's buffers serve both nodes, the producer's own output and gradient buffers are
 * not planned. Inference also runs a conv's batch norm, residual add and activation in the
 * conv's output pass (epilogue.c); an inference plan gives such a chain one buffer, its last
 * node's. */
#include "nn.h"

#include <stdlib.h>
#include <string.h>

#define OC_NN_ALIGN 64

typedef struct {
    size_t size;
    int start, end; /* inclusive steps */
    size_t off;
} buf_req;

static size_t align_up(size_t n)
{
    return (n + OC_NN_ALIGN - 1) / OC_NN_ALIGN * OC_NN_ALIGN;
}

static int by_size_desc(const void *a, const void *b)
{
    const buf_req *x = *(const buf_req *const *)a, *y = *(const buf_req *const *)b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->start - y->start;
}

/* Assigns offsets so that buffers with overlapping lifetimes never overlap in memory; returns
 * the total size, or SIZE_MAX when out of memory. */
static size_t assign_offsets(buf_req *b, int n)
{
    buf_req **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    buf_req **placed = malloc((size_t)(n ? n : 1) * sizeof *placed);
    size_t total = 0;
    int n_placed = 0;
    if (!order || !placed) {
        free(order);
        free(placed);
        return SIZE_MAX;
    }
    for (int i = 0; i < n; i++)
        order[i] = &b[i];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    for (int i = 0; i < n; i++) {
        buf_req *r = order[i];
        size_t off = 0;
        int moved = 1;
        if (r->size == 0) {
            r->off = 0;
            continue;
        }
        /* lowest offset that clears every live, overlapping placed buffer */
        while (moved) {
            moved = 0;
            for (int k = 0; k < n_placed; k++) {
                const buf_req *p = placed[k];
                if (p->end < r->start || r->end < p->start)
                    continue;
                if (off < p->off + p->size && p->off < off + r->size) {
                    off = p->off + p->size;
                    moved = 1;
                }
            }
        }
        r->off = off;
        placed[n_placed++] = r;
        if (off + r->size > total)
            total = off + r->size;
    }
    free(order);
    free(placed);
    return total;
}

void oc_nn_plan_release(oc_model *m)
{
    oc_arena_release(&m->arena);
    m->plan_batch = 0;
    m->plan_training = 0;
    m->ws = NULL;
    m->ws_size = 0;
    m->argmax_scratch = NULL;
    m->x_copy = NULL;
    m->fwd_training = 0;
    oc_nn_epilogues_release(m);
    for (int i = 0; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        nd->y = nd->dy = nd->save_mean = nd->save_invstd = nd->mask = NULL;
        nd->argmax = NULL;
    }
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Does node 0 need a gradient buffer? conv2d and dense can skip their input gradient. */
static int input_needs_grad(const oc_model *m)
{
    if (m->want_input_grad)
        return 1;
    for (int i = 1; i < m->n_nodes; i++) {
        const oc_node *nd = &m->nodes[i];
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] == 0 && nd->op != OC_OP_CONV2D && nd->op != OC_OP_DENSE)
                return 1;
    }
    return 0;
}

/* Marks the fusable (batch norm or add, activation) pairs; see the top of this file. */
static void plan_fusion(oc_model *m)
{
    for (int i = 0; i < m->n_nodes; i++) {
        m->nodes[i].fuse_act = OC_ACT_IDENTITY;
        m->nodes[i].fused = 0;
    }
    if (m->no_fusion)
        return;
    for (int i = 1; i + 1 < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i], *next = &m->nodes[i + 1];
        oc_act act = next->op == OC_OP_RELU    ? OC_ACT_RELU
                     : next->op == OC_OP_RELU6 ? OC_ACT_RELU6
                     : next->op == OC_OP_GELU && nd->op == OC_OP_BATCHNORM ? OC_ACT_GELU
                                                                           : OC_ACT_IDENTITY;
        if ((nd->op != OC_OP_BATCHNORM && nd->op != OC_OP_ADD) || nd->n_consumers != 1 ||
            next->n_in != 1 ||
            next->in[0] != i || act == OC_ACT_IDENTITY || nd->fused)
            continue;
        nd->fuse_act = act;
        next->fused = 1;
    }
}

oc_status oc_model_plan(oc_model *m, int max_batch, int training)
{
    const int n_nodes = m->n_nodes;
    buf_req *act = NULL, *grad = NULL;
    size_t act_total, grad_total = 0, aux_total = 0, ws = 0, argmax_scratch = 0, x_bytes = 0;
    size_t total;
    unsigned char *act_base, *grad_base = NULL, *aux;
    oc_status st = OC_OK;
    int dy0;

    if (!m)
        return oc_fail(OC_ERR_ARG, "oc_model_plan: model is NULL");
    if (max_batch < 1)
        return oc_fail(OC_ERR_ARG, "oc_model_plan: batch %d must be >= 1", max_batch);
    oc_nn_plan_release(m);
    training = training != 0;
    dy0 = training && input_needs_grad(m);
    plan_fusion(m);
    if ((st = oc_nn_plan_epilogues(m)) != OC_OK)
        return st;

    act = calloc((size_t)n_nodes, sizeof *act);
    grad = calloc((size_t)n_nodes, sizeof *grad);
    if (!act || !grad) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory planning the model");
        goto done;
    }
    for (int i = 0; i < n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        size_t bytes;
        if (!oc_mul_ok((size_t)oc_nn_size(nd) * sizeof(float), (size_t)max_batch, &bytes) ||
            bytes > SIZE_MAX / 4) {
            st = oc_fail(OC_ERR_NOMEM, "node '%s': batch %d is too large", nd->name, max_batch);
            goto done;
        }
        bytes = align_up(bytes);
        if (i == 0) {
            x_bytes = training ? bytes : 0; /* inference reads the caller's input */
            act[i].size = 0;
        } else {
            act[i].size = bytes;
        }
        act[i].start = training ? 0 : i;
        act[i].end = training ? n_nodes : (i == n_nodes - 1 ? n_nodes : nd->last_consumer);
        if (training && (i > 0 || dy0)) {
            /* backward step of node j is n_nodes-1-j */
            grad[i].size = bytes;
            grad[i].start = i == n_nodes - 1 ? 0 : n_nodes - 1 - nd->last_consumer;
            grad[i].end = n_nodes - 1 - i;
        }
        nd->dy_zero_at = nd->last_consumer;
        if (nd->fuse_act != OC_ACT_IDENTITY) {
            /* node i + 1 holds the output and its gradient (see plan_fusion) */
            act[i].size = 0;
            grad[i].size = 0;
        }
        if (nd->fused) {
            act[i].start = training ? 0 : i - 1; /* written by node i - 1 */
            if (training)
                grad[i].end = n_nodes - i; /* read by node i - 1's backward */
        }

        /* auxiliary buffers and workspace */
        if (nd->op == OC_OP_BATCHNORM && training)
            aux_total += 2 * align_up((size_t)nd->C * sizeof(float));
        if (nd->op == OC_OP_MAXPOOL) {
            if (training)
                aux_total += bytes; /* int32 argmax, same count as the output */
            else
                argmax_scratch = max_sz(argmax_scratch, bytes);
        }
        if (nd->op == OC_OP_DROPOUT && training)
            aux_total += bytes;
        if (nd->op == OC_OP_CONV2D) {
            /* a conv kernel's workspace grows with the batch up to a fixed budget, so the
             * largest over the batches this plan serves is at 1 or at max_batch */
            const int batches[2] = {1, max_batch};
            for (int b = 0; b < 2; b++) {
                oc_conv_shape s;
                oc_nn_conv_shape(m, nd, batches[b], &s);
                ws = max_sz(ws, oc_conv2d_fwd_workspace(&s));
                if (training) {
                    ws = max_sz(ws, oc_conv2d_bwd_weights_workspace(&s));
                    if (nd->in[0] != 0 || dy0)
                        ws = max_sz(ws, oc_conv2d_bwd_data_workspace(&s));
                }
            }
        }
    }
    if (!training) /* a fused conv chain writes only its last node's buffer, from its step */
        for (int i = 1; i < n_nodes; i++) {
            const oc_node *nd = &m->nodes[i];
            if (!nd->epi_last)
                continue;
            for (int j = i; j < nd->epi_last; j++)
                act[j].size = 0;
            act[nd->epi_last].start = i;
        }
    act_total = assign_offsets(act, n_nodes);
    if (training)
        grad_total = assign_offsets(grad, n_nodes);
    if (act_total == SIZE_MAX || grad_total == SIZE_MAX) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory planning the model");
        goto done;
    }
    ws = align_up(ws);
    total = act_total + grad_total + aux_total + ws + align_up(argmax_scratch) + x_bytes +
            6 * OC_NN_ALIGN;
    if ((st = oc_arena_init(&m->arena, total)) != OC_OK) {
        oc_fail_context(st, "planning batch %d", max_batch);
        goto done;
    }
    act_base = oc_arena_alloc(&m->arena, act_total);
    if (training)
        grad_base = oc_arena_alloc(&m->arena, grad_total);
    aux = oc_arena_alloc(&m->arena, aux_total);
    m->ws = ws ? oc_arena_alloc(&m->arena, ws) : NULL;
    m->ws_size = ws;
    if (argmax_scratch)
        m->argmax_scratch = oc_arena_alloc(&m->arena, argmax_scratch);
    if (training)
        m->x_copy = oc_arena_alloc(&m->arena, x_bytes);
    OC_ASSERT(m->arena.used <= m->arena.cap);
    for (int i = 0; i < n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        size_t bytes = act[i].size ? act[i].size : x_bytes;
        if (i > 0)
            nd->y = (float *)(act_base + act[i].off);
        if (grad[i].size)
            nd->dy = (float *)(grad_base + grad[i].off);
        if (nd->fused)
            m->nodes[i - 1].y = nd->y; /* the fused producer's output is this one's */
        if (!training)
            continue;
        if (nd->op == OC_OP_BATCHNORM) {
            size_t c = align_up((size_t)nd->C * sizeof(float));
            nd->save_mean = (float *)aux;
            nd->save_invstd = (float *)(aux + c);
            aux += 2 * c;
        }
        if (nd->op == OC_OP_MAXPOOL) {
            nd->argmax = (int32_t *)aux;
            aux += bytes;
        }
        if (nd->op == OC_OP_DROPOUT) {
            nd->mask = (float *)aux;
            aux += bytes;
        }
    }
    m->nodes[0].y = m->x_copy;
    m->plan_batch = max_batch;
    m->plan_training = training;
    m->n_plans++;
done:
    free(act);
    free(grad);
    return st;
}

oc_status oc_model_forward(oc_model *m, const float *x, int n, int training,
                           const float **logits)
{
    oc_math_mode math;
    oc_status st;
    if (!m || !x || !logits)
        return oc_fail(OC_ERR_ARG, "oc_model_forward: NULL argument");
    *logits = NULL;
    if (n < 1)
        return oc_fail(OC_ERR_ARG, "oc_model_forward: batch %d must be >= 1", n);
    training = training != 0;
    if (m->plan_batch < n || (training && !m->plan_training)) {
        int b = n > m->plan_batch ? n : m->plan_batch;
        if ((st = oc_model_plan(m, b, training || m->plan_training)) != OC_OK)
            return st;
    }
    if (training) {
        memcpy(m->x_copy, x, (size_t)n * (size_t)oc_nn_size(&m->nodes[0]) * sizeof(float));
        m->nodes[0].y = m->x_copy;
    } else {
        m->nodes[0].y = (float *)x; /* read only */
    }
    m->x = m->nodes[0].y;
    m->dropout_used = 0;
    m->fwd_training = 0;
    math = oc_nn_math_enter(m);
    for (int i = 1; i < m->n_nodes; i++) {
        oc_node *nd = &m->nodes[i];
        double t0;
        if (!training && nd->absorbed) /* ran in a conv's epilogue (epilogue.c) */
            continue;
        t0 = m->prof ? oc_now() : 0.0;
        oc_nn_op(nd->op)->fwd(m, nd, n, training);
        if (m->prof)
            m->prof[2 * i] += oc_now() - t0;
    }
    oc_math_set(math);
    m->fwd_n = n;
    m->fwd_training = training;
    *logits = m->nodes[m->n_nodes - 1].y;
    return OC_OK;
}

oc_status oc_model_backward(oc_model *m, const float *dlogits)
{
    const int last = m ? m->n_nodes - 1 : 0;
    oc_math_mode math;
    int n;
    if (!m || !dlogits)
        return oc_fail(OC_ERR_ARG, "oc_model_backward: NULL argument");
    if (!m->fwd_training || !m->plan_training)
        return oc_fail(OC_ERR_ARG, "oc_model_backward: needs a training forward first");
    n = m->fwd_n;
    memcpy(m->nodes[last].dy, dlogits, (size_t)n * (size_t)m->classes * sizeof(float));
    math = oc_nn_math_enter(m);
    for (int i = last; i >= 1; i--) {
        oc_node *nd = &m->nodes[i];
        double t0 = m->prof ? oc_now() : 0.0;
        for (int k = 0; k < nd->n_in; k++) {
            oc_node *in = &m->nodes[nd->in[k]];
            if (in->dy && in->dy_zero_at == i)
                memset(in->dy, 0, (size_t)n * (size_t)oc_nn_size(in) * sizeof(float));
        }
        oc_nn_op(nd->op)->bwd(m, nd, n);
        if (m->prof)
            m->prof[2 * i + 1] += oc_now() - t0;
    }
    oc_math_set(math);
    return OC_OK;
}

oc_status oc_model_set_input_grad(oc_model *m, int enabled)
{
    if (!m)
        return oc_fail(OC_ERR_ARG, "oc_model_set_input_grad: model is NULL");
    if ((enabled != 0) != m->want_input_grad) {
        m->want_input_grad = enabled != 0;
        oc_nn_plan_release(m); /* the next forward plans again */
    }
    return OC_OK;
}

const float *oc_model_input_grad(const oc_model *m)
{
    if (!m || !m->want_input_grad || !m->plan_training)
        return NULL;
    return m->nodes[0].dy;
}

size_t oc_model_plan_bytes(const oc_model *m)
{
    return m ? m->arena.cap : 0;
}

int oc_nn_plan_count(const oc_model *m)
{
    return m->n_plans;
}

size_t oc_nn_arena_used(const oc_model *m)
{
    return m->arena.used;
}
