/* The planner and the step: one arena holds every activation, activation gradient, auxiliary
 * buffer (batch-norm saved statistics, max-pool argmax, dropout masks), the kept input and the
 * shared kernel workspace, all sized once for a maximum batch. forward / backward then only
 * run kernels over those buffers.
 *
 * Buffer sharing: buffers whose lifetimes do not overlap share memory, assigned greedily
 * (largest first, lowest free offset; as TFLite's arena planner).
 *  - Inference plans: node i's output lives from step i to its last consumer's step.
 *  - Training plans put forward and backward on one timeline: node i runs forward at step i
 *    and backward at step BWD(j) = 2T - 1 - j (T nodes). An output lives until its last
 *    forward reader, and on until the backward of any node that reads it there (ops with
 *    bwd_reads_inputs, and a fused producer reading the activation's output), so e.g. a
 *    convolution's output that only feeds a max pool is gone after the pool's forward and a
 *    batch norm's output that only feeds an add after the add's forward. A gradient is first
 *    written when its last consumer runs backward (it is zeroed just before) and last read by
 *    its node's backward. Argmax and dropout masks live from their node's forward to its
 *    backward. Gradients thus reuse the memory of outputs that backward no longer needs.
 *  - Batch-norm outputs (with a fused activation) that backward reads are not held from
 *    forward to backward: they are rebuilt bitwise from the batch norm's input, which its own
 *    backward keeps anyway, and saved statistics, just before their first backward reader
 *    (one normalising pass each, a few percent of a step; it halves the activations kept by
 *    conv -> BN -> ReLU stacks).
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

static size_t align_up(size_t n)
{
    return (n + OC_NN_ALIGN - 1) / OC_NN_ALIGN * OC_NN_ALIGN;
}

static int by_size_desc(const void *a, const void *b)
{
    const oc_nn_buf *x = *(const oc_nn_buf *const *)a, *y = *(const oc_nn_buf *const *)b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->start - y->start;
}

size_t oc_nn_assign_offsets(oc_nn_buf *b, int n)
{
    oc_nn_buf **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    oc_nn_buf **placed = malloc((size_t)(n ? n : 1) * sizeof *placed);
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
        oc_nn_buf *r = order[i];
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
                const oc_nn_buf *p = placed[k];
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
        nd->y_fwd = nd->y_bwd = NULL;
        nd->recompute_at = 0;
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

/* Step of node j's backward on the training timeline (see the top of this file), and a step
 * after every other. */
#define BWD(T, j) (2 * (T) - 1 - (j))
#define PLAN_END(T) (2 * (T))

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

/* Records that node c's backward reads an output: b->start the highest such c, b->end the
 * lowest. */
static void note_reader(oc_nn_buf *b, int c)
{
    b->start = max_int(b->start, c);
    b->end = b->end && b->end < c ? b->end : c;
}

/* The buffer requests of a plan, 4 per node: r[i] its output (node 0: the kept input of a
 * training plan), r[T + i] its gradient, r[2T + i] its argmax or dropout mask, r[3T + i] its
 * output rebuilt for backward (see rebuild below). Fusion must be planned already. Inference
 * plans ask for outputs only. */
static oc_status plan_requests(const oc_model *m, int max_batch, int training, oc_nn_buf *r)
{
    const int T = m->n_nodes;
    const int dy0 = training && input_needs_grad(m);
    memset(r, 0, 4 * (size_t)T * sizeof *r);
    for (int i = 0; i < T; i++) {
        const oc_node *nd = &m->nodes[i];
        oc_nn_buf *y = &r[i], *dy = &r[T + i], *aux = &r[2 * T + i];
        size_t bytes;
        if (!oc_mul_ok((size_t)oc_nn_size(nd) * sizeof(float), (size_t)max_batch, &bytes) ||
            bytes > SIZE_MAX / 8)
            return oc_fail(OC_ERR_NOMEM, "node '%s': batch %d is too large", nd->name,
                           max_batch);
        bytes = align_up(bytes);
        /* node i + 1 holds a fused producer's output and gradient (see plan_fusion) */
        y->size = nd->fuse_act != OC_ACT_IDENTITY ? 0 : bytes;
        y->start = nd->fused ? i - 1 : i; /* a fused activation's is written by node i - 1 */
        y->end = i == T - 1 ? PLAN_END(T) : nd->last_consumer;
        if (i == 0 && !training)
            y->size = 0; /* inference reads the caller's input */
        if (!training)
            continue;
        if (nd->fuse_act == OC_ACT_IDENTITY && (i > 0 || dy0)) {
            dy->size = bytes;
            dy->start = i == T - 1 ? BWD(T, i) : BWD(T, nd->last_consumer);
            /* a fused activation's gradient is read by node i - 1's backward */
            dy->end = BWD(T, nd->fused ? i - 1 : i);
            if (i == 0) { /* the input gradient stays readable until the next backward */
                dy->start = 0;
                dy->end = PLAN_END(T);
            }
        }
        if (nd->op == OC_OP_MAXPOOL || nd->op == OC_OP_DROPOUT) {
            aux->size = bytes; /* int32 argmax or float mask, one per output */
            aux->start = i;
            aux->end = BWD(T, i);
        }
    }
    if (!training)
        return OC_OK;
    /* Outputs that backward reads stay until then. First note the readers of each output:
     * r[3T + i].start / .end hold the highest / lowest index of a node whose backward reads
     * node i's output (0: none). */
    for (int c = 1; c < T; c++) {
        const oc_node *nd = &m->nodes[c];
        for (int k = 0; k < nd->n_in; k++)
            if (oc_nn_op(nd->op)->bwd_reads_inputs && !nd->fused)
                note_reader(&r[3 * T + nd->in[k]], c);
        /* an add's fused activation takes its derivative from its output (a batch norm's
         * recomputes the normalised value from its input instead: norm.c) */
        if (nd->fuse_act != OC_ACT_IDENTITY && nd->op != OC_OP_BATCHNORM)
            note_reader(&r[3 * T + c + 1], c);
    }
    /* A batch norm's output (with its fused activation) is cheap to rebuild from the batch
     * norm's input, which its own backward keeps anyway: rather than holding it from forward
     * to the end of backward, drop it after its last forward reader and rebuild it (bitwise)
     * just before its first backward reader, in a buffer live from there to the last one. Not
     * when the input is itself rebuilt (it would not be there yet) or for the logits. */
    for (int h = 0; h < T; h++) {
        oc_nn_buf *rb = &r[3 * T + h];
        const int hi = rb->start, lo = rb->end, p = m->nodes[h].fused ? h - 1 : h;
        rb->start = rb->end = 0;
        if (!hi)
            continue;
        if (m->nodes[p].op == OC_OP_BATCHNORM && h != T - 1 && r[h].size && !m->no_sharing &&
            !r[3 * T + m->nodes[p].in[0]].size) {
            rb->size = r[h].size;
            rb->start = BWD(T, hi);
            rb->end = BWD(T, lo);
        } else {
            r[h].end = max_int(r[h].end, BWD(T, lo));
        }
    }
    if (m->no_sharing)
        for (int k = 0; k < 4 * T; k++) {
            r[k].start = 0;
            r[k].end = PLAN_END(T);
        }
    return OC_OK;
}

/* Ops whose backward can set their (single) input's gradient instead of adding to it: batch
 * norm, max pool, convolution, the activations (unless fused into their producer, whose
 * backward then runs theirs), dropout, flatten and identity. An add sets each input's on its
 * own (below). */
static int can_set_dx(const oc_node *nd)
{
    switch (nd->op) {
    case OC_OP_BATCHNORM:
    case OC_OP_MAXPOOL:
    case OC_OP_CONV2D:
    case OC_OP_DROPOUT:
    case OC_OP_FLATTEN:
    case OC_OP_SHORTCUT_PAD:
    case OC_OP_IDENTITY: return 1;
    case OC_OP_RELU:
    case OC_OP_RELU6:
    case OC_OP_LEAKY_RELU:
    case OC_OP_GELU:
    case OC_OP_SILU:
    case OC_OP_SIGMOID:
    case OC_OP_HARDSWISH: return !nd->fused;
    default: return 0;
    }
}

/* Inference plans: a fused conv chain (epilogue.c) writes only its last node's buffer, from
 * the conv's step; an inverted-residual block writes its output at its first conv's step. The
 * block's inner outputs keep their buffers: unused, unless the CPU settings changed since
 * planning and its layers run one by one, at that same step, when nothing else is live. */
static void fused_lifetimes(const oc_model *m, oc_nn_buf *req)
{
    for (int i = 1; i < m->n_nodes; i++) {
        const oc_node *nd = &m->nodes[i];
        if (!nd->epi_last)
            continue;
        for (int j = i; j < nd->epi_last; j++)
            req[j].size = 0;
        req[nd->epi_last].start = i;
    }
    for (int i = 1; i < m->n_nodes; i++)
        if (m->nodes[i].blk_pr)
            req[m->nodes[m->nodes[i].blk_pr].epi_last].start = i;
}

oc_status oc_model_plan(oc_model *m, int max_batch, int training)
{
    const int T = m ? m->n_nodes : 0;
    oc_nn_buf *req = NULL;
    size_t buf_total, stats_total = 0, ws = 0, argmax_scratch = 0, total;
    unsigned char *base, *stats;
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
    /* inference plans only: a training plan shares buffers by the training timeline, where a
     * chain's last buffer may alias the conv's residual input before the chain ends */
    if (training)
        oc_nn_epilogues_release(m);
    else if ((st = oc_nn_plan_epilogues(m)) != OC_OK)
        return st;

    req = malloc(4 * (size_t)T * sizeof *req);
    if (!req) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory planning the model");
        goto done;
    }
    if ((st = plan_requests(m, max_batch, training, req)) != OC_OK)
        goto done;
    for (int i = 0; i < T; i++) {
        oc_node *nd = &m->nodes[i];
        nd->dy_zero_at = nd->last_consumer;
        /* a node that writes its input's gradient first sets it rather than adding to zeros
         * (the same bits; one pass over the gradient less) */
        nd->sets_dx = training && can_set_dx(nd) &&
                      m->nodes[nd->in[0]].last_consumer == i && !m->no_sharing;
        /* an add sets each input gradient it writes first (bit k: input k), unless its two
         * inputs are one tensor */
        if (training && nd->op == OC_OP_ADD && !m->no_sharing && nd->in[0] != nd->in[1])
            nd->sets_dx = (m->nodes[nd->in[0]].last_consumer == i) |
                          (m->nodes[nd->in[1]].last_consumer == i) << 1;
        /* batch-norm statistics (small, kept apart) and the workspace shared by all kernels */
        if (nd->op == OC_OP_BATCHNORM && training)
            stats_total += 2 * align_up((size_t)nd->C * sizeof(float));
        if (nd->op == OC_OP_MAXPOOL && !training)
            argmax_scratch = max_sz(argmax_scratch, align_up((size_t)max_batch *
                                                             (size_t)oc_nn_size(nd) * 4));
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
    if (!training) {
        fused_lifetimes(m, req);
        ws = max_sz(ws, oc_nn_blocks_workspace(m));
    }
    buf_total = oc_nn_assign_offsets(req, 4 * T);
    if (buf_total == SIZE_MAX) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory planning the model");
        goto done;
    }
    ws = align_up(ws);
    total = buf_total + stats_total + ws + align_up(argmax_scratch) + 4 * OC_NN_ALIGN;
    if ((st = oc_arena_init(&m->arena, total)) != OC_OK) {
        oc_fail_context(st, "planning batch %d", max_batch);
        goto done;
    }
    base = oc_arena_alloc(&m->arena, buf_total);
    stats = oc_arena_alloc(&m->arena, stats_total);
    m->ws = ws ? oc_arena_alloc(&m->arena, ws) : NULL;
    m->ws_size = ws;
    if (argmax_scratch)
        m->argmax_scratch = oc_arena_alloc(&m->arena, argmax_scratch);
    OC_ASSERT(m->arena.used <= m->arena.cap);
    for (int i = 0; i < T; i++) {
        oc_node *nd = &m->nodes[i];
        const oc_nn_buf *y = &req[i], *dy = &req[T + i], *aux = &req[2 * T + i];
        const oc_nn_buf *rb = &req[3 * T + i];
        if (y->size)
            nd->y = (float *)(base + y->off);
        if (dy->size)
            nd->dy = (float *)(base + dy->off);
        if (nd->fused) /* the fused producer's output is this one's */
            m->nodes[i - 1].y = m->nodes[i - 1].y_fwd = nd->y;
        nd->y_fwd = nd->y;
        if (rb->size) {
            nd->y_bwd = (float *)(base + rb->off);
            nd->recompute_at = BWD(T, rb->start);
        }
        if (!training)
            continue;
        if (nd->op == OC_OP_BATCHNORM) {
            size_t c = align_up((size_t)nd->C * sizeof(float));
            nd->save_mean = (float *)stats;
            nd->save_invstd = (float *)(stats + c);
            stats += 2 * c;
        }
        if (nd->op == OC_OP_MAXPOOL)
            nd->argmax = (int32_t *)(base + aux->off);
        if (nd->op == OC_OP_DROPOUT)
            nd->mask = (float *)(base + aux->off);
    }
    m->x_copy = training ? m->nodes[0].y : NULL;
    m->plan_batch = max_batch;
    m->plan_training = training;
    m->n_plans++;
done:
    free(req);
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
    for (int i = 1; i < m->n_nodes; i++) /* outputs rebuilt by the last backward */
        if (m->nodes[i].recompute_at) {
            m->nodes[i].y = m->nodes[i].y_fwd;
            if (m->nodes[i].fused)
                m->nodes[i - 1].y = m->nodes[i].y_fwd;
        }
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

/* Rebuilds the dropped output held by node h (a batch norm's, or that of the activation fused
 * into it) into its backward buffer; see plan_requests. */
static void rebuild(oc_model *m, oc_node *h, int n)
{
    oc_node *bn = h->fused ? h - 1 : h;
    h->y = bn->y = h->y_bwd;
    oc_nn_bn_rebuild(m, bn, n);
}

oc_status oc_model_backward(oc_model *m, const float *dlogits)
{
    const int last = m ? m->n_nodes - 1 : 0;
    oc_math_mode math;
    int n;
    if (!m || !dlogits)
        return oc_fail(OC_ERR_ARG, "oc_model_backward: NULL argument");
    if (!m->fwd_training || !m->plan_training)
        return oc_fail(OC_ERR_ARG, "oc_model_backward: needs a training forward first (one "
                                   "backward per forward)");
    n = m->fwd_n;
    memcpy(m->nodes[last].dy, dlogits, (size_t)n * (size_t)m->classes * sizeof(float));
    /* nodes are in topological order: before the first one that trains, no gradient is
     * needed (unless the input's is), so backward stops there */
    m->bwd_first = m->want_input_grad ? 0 : 1;
    while (m->bwd_first >= 1 && m->bwd_first <= last &&
           !oc_nn_node_trains(m, &m->nodes[m->bwd_first]))
        m->bwd_first++;
    math = oc_nn_math_enter(m);
    for (int i = last; i >= 1 && i >= m->bwd_first; i--) {
        oc_node *nd = &m->nodes[i];
        double t0 = m->prof ? oc_now() : 0.0;
        for (int k = 0; k < nd->n_in; k++)
            if (m->nodes[nd->in[k]].recompute_at == i)
                rebuild(m, &m->nodes[nd->in[k]], n);
        for (int k = 0; k < nd->n_in; k++) {
            oc_node *in = &m->nodes[nd->in[k]];
            if (in->dy && in->dy_zero_at == i && !(nd->sets_dx >> k & 1))
                memset(in->dy, 0, (size_t)n * (size_t)oc_nn_size(in) * sizeof(float));
        }
        oc_nn_op(nd->op)->bwd(m, nd, n);
        if (m->prof)
            m->prof[2 * i + 1] += oc_now() - t0;
    }
    oc_math_set(math);
    m->bwd_first = 0;
    m->fwd_training = 0; /* the forward's values are partly overwritten now */
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

/* The memory of request k of the current plan (see plan_requests), or NULL. */
static const void *planned_ptr(const oc_model *m, int k)
{
    const int T = m->n_nodes;
    const oc_node *nd = &m->nodes[k % T];
    if (k < T)
        return k == 0 ? (const void *)m->x_copy
                      : nd->fuse_act != OC_ACT_IDENTITY ? NULL : (const void *)nd->y_fwd;
    if (k < 2 * T)
        return nd->dy;
    if (k >= 3 * T)
        return nd->y_bwd;
    return nd->op == OC_OP_MAXPOOL ? (const void *)nd->argmax : (const void *)nd->mask;
}

int oc_nn_plan_conflicts(const oc_model *m)
{
    const int T = m->n_nodes;
    const unsigned char *lo = m->arena.base, *hi = m->arena.base + m->arena.cap;
    oc_nn_buf *r;
    int bad = 0;
    if (!m->plan_batch)
        return 0;
    r = malloc(4 * (size_t)T * sizeof *r);
    if (!r || plan_requests(m, m->plan_batch, m->plan_training, r) != OC_OK) {
        free(r);
        return -1;
    }
    if (!m->plan_training)
        fused_lifetimes(m, r);
    for (int a = 0; a < 4 * T; a++) {
        const unsigned char *pa = planned_ptr(m, a);
        if (!r[a].size)
            continue;
        if (!pa || pa < lo || pa + r[a].size > hi) {
            bad++;
            continue;
        }
        for (int b = a + 1; b < 4 * T; b++) {
            const unsigned char *pb = planned_ptr(m, b);
            if (!r[b].size || !pb || r[a].end < r[b].start || r[b].end < r[a].start)
                continue;
            if (pa < pb + r[b].size && pb < pa + r[a].size)
                bad++;
        }
    }
    free(r);
    return bad;
}
