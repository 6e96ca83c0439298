/* Private header of the nn layer: the graph (nodes, attributes, parameter views), the op table
 * and the planner's buffers. The public face is the "nn: models" section of ocelot.h. */
#ifndef OC_NN_H
#define OC_NN_H

#include "core/core.h"
#include "ops/ops.h"

#include <cjson/cJSON.h>

typedef enum {
    OC_OP_INPUT = 0,
    OC_OP_CONV2D,
    OC_OP_DENSE,
    OC_OP_BATCHNORM,
    OC_OP_RELU,
    OC_OP_RELU6,
    OC_OP_LEAKY_RELU,
    OC_OP_GELU,
    OC_OP_SILU,
    OC_OP_SIGMOID,
    OC_OP_HARDSWISH,
    OC_OP_IDENTITY,
    OC_OP_MAXPOOL,
    OC_OP_AVGPOOL,
    OC_OP_GLOBAL_AVGPOOL,
    OC_OP_DROPOUT,
    OC_OP_FLATTEN,
    OC_OP_ADD,
    OC_OP_CONCAT,
    OC_OP_CHANNEL_MUL,
    OC_OP_SHORTCUT_PAD,
    OC_OP_COUNT
} oc_op_type;

/* Weight initialisers ("init" attribute of conv2d / dense). */
typedef enum {
    OC_INIT_DEFAULT = 0, /* PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    OC_INIT_HE_FAN_IN,   /* kaiming_normal_(mode='fan_in', relu): N(0, 2/fan_in) */
    OC_INIT_HE_FAN_OUT,  /* kaiming_normal_(mode='fan_out', relu): N(0, 2/fan_out) */
    OC_INIT_NORMAL,      /* N(0, init_std^2) */
    OC_INIT_DIRAC,       /* the default, then filter k < C is the identity on channel k
                          * (torch.nn.init.dirac_ on the first C filters, airbench) */
    OC_INIT_WHITEN       /* the default until oc_model_init_whiten sets it from data */
} oc_init_kind;

/* Bits of oc_node.freeze: tensors the optimizers leave alone ("freeze" in the spec). */
#define OC_FREEZE_WEIGHT 1u
#define OC_FREEZE_BIAS 2u

typedef struct {
    char *name;
    oc_op_type op;
    int n_in;
    int *in; /* node indices, all < this node's index */

    /* attributes (those of other ops stay at their defaults) */
    int filters, kh, kw, sh, sw, dh, dw, groups, bias; /* conv2d, pools (kh..sw) */
    int same;       /* padding "same": pad_h/pad_w derived from the input, P = ceil(H/stride) */
    int ph, pw;     /* explicit padding (top/left = bottom/right) */
    int units, units_classes; /* dense; units_classes: the spec said "classes" */
    float eps, momentum;      /* batchnorm */
    float alpha;              /* leaky_relu */
    float p;                  /* dropout */
    int count_include_pad;    /* avgpool */
    int channels;             /* shortcut_pad output channels */
    oc_init_kind init;
    float init_std;
    int bias_zero; /* "bias_init": "zeros" */
    float scale;   /* dense: output multiplier (1 = none) */
    unsigned freeze; /* OC_FREEZE_* bits */

    /* inferred by oc_nn_infer */
    int H, W, C;          /* per-image output shape */
    int pad_top, pad_left; /* padding actually used */
    int64_t params;       /* trainable parameters */
    double flops;         /* forward FLOPs per image */
    int t0, nt;           /* tensors [t0, t0+nt) of the model belong to this node */
    int *c_in;            /* concat: channels of each input */
    const float **x_ptr;  /* concat: scratch list of input pointers */
    float **dx_ptr;       /* concat: scratch list of input gradient pointers */
    int n_consumers;      /* nodes reading this one */
    int last_consumer;    /* highest index of a consumer (0: none) */

    /* planned buffers (NULL when not planned / not needed) */
    float *y;          /* [N][H][W][C] output */
    float *dy;         /* [N][H][W][C] gradient of the output (training plans) */
    float *save_mean;  /* batchnorm [C] */
    float *save_invstd;
    int32_t *argmax;   /* maxpool [N][P][Q][C] */
    float *mask;       /* dropout [N][H][W][C] */
    int dy_zero_at;    /* backward: zero dy just before node dy_zero_at runs backward */
    int sets_dx;       /* backward writes its input's gradient rather than accumulating into it
                        * (it is that gradient's first writer): no zeroing before (plan.c);
                        * bit k for input k (an add sets either or both) */
    /* training plans may drop a batch norm's output after forward and rebuild it from the kept
     * input for backward (plan.c): on the node holding that output (the batch norm, or the
     * activation fused into it), y is y_fwd in forward and y_bwd from just before node
     * recompute_at runs backward (0: never rebuilt) */
    float *y_fwd, *y_bwd;
    int recompute_at;

    /* fusion, decided by the planner: a node with fuse_act != OC_ACT_IDENTITY also applies
     * the activation node right after it (its only consumer), writing that node's y and, in
     * backward, reading that node's dy; the activation node is then `fused` (does nothing)
     * and the producer's own y aliases the activation's, its dy is not planned. */
    oc_act fuse_act;
    int fused;

    /* inference conv epilogue, decided by the planner (epilogue.c): in inference forwards a
     * conv2d with epi_last > 0 also runs the nodes after it up to epi_last (a batch norm, an
     * add of node epi_res, an activation) in its output pass (oc_conv2d_fwd_fused) and writes
     * epi_last's y; those nodes are `absorbed`: inference forwards skip them. Training
     * forwards ignore all of this. */
    int epi_last, epi_bn, epi_add, epi_act, epi_res; /* node indices; 0 / -1 (epi_res): none */
    int absorbed;
    /* weights_fixed inference: a fused 1x1 conv that starts an inverted-residual block runs it
     * whole (ops.h, oc_block_fwd_fused): blk_dw is the depthwise conv, blk_pr the project 1x1
     * conv (both fused, absorbed here); 0: none (epilogue.c) */
    int blk_dw, blk_pr;
    float *wpack; /* weights_fixed: a fused conv's weights packed for its kernel, or NULL */
    float *epi_pre, *epi_scale, *epi_shift; /* [C] each, in the model's epi_buf, refreshed
                                             * by each fused forward */
} oc_node;

struct oc_model {
    int H, W, C, classes;
    int n_nodes;
    oc_node *nodes; /* nodes[0] is the input */

    int n_tensors;
    oc_param_info *tensors;
    float *params, *grads, *state;
    size_t n_params, n_state;
    uint64_t seed;
    oc_rng rng;

    char **class_names;
    oc_preprocess pre;
    int n_meta;
    char **meta_key, **meta_val;

    /* plan */
    oc_arena arena;
    int plan_batch, plan_training;
    int n_plans;        /* how many times a plan was built (tests: no re-planning per step) */
    void *ws;           /* shared kernel workspace */
    size_t ws_size;
    int32_t *argmax_scratch; /* inference plans: maxpool argmax, shared */
    float *x_copy;      /* training plans: the forward input, kept for backward */
    const float *x;     /* input of the last forward */
    int fwd_n;          /* batch of the last forward */
    int fwd_training;   /* the last forward was a training one */
    int dropout_used;   /* the last training forward drew dropout masks */
    int dropout_off;    /* test hook: training forwards skip dropout */
    int want_input_grad;
    unsigned char *untrained; /* [n_tensors] or NULL: oc_model_set_trainable(.., 0) */
    int weights_fixed;  /* oc_model_set_weights_fixed: inference plans keep packed weights */
    int bwd_first;      /* the backward in progress runs nodes [bwd_first, n_nodes) (0 when
                         * the input's gradient is wanted; 0 outside backward) */
    oc_precision precision; /* conv / dense GEMMs in forward and backward (precision.c) */
    int no_fusion;      /* test hook: plan every node on its own (plan.c, plan_fusion; and
                         * no inference conv epilogues, epilogue.c) */
    float *epi_buf;     /* the conv epilogues' per-channel vectors (epilogue.c) */
    double *prof;       /* [n_nodes][2] seconds in forward, backward (profile.c); NULL: off */
    int no_sharing;     /* test hook: the plain training plan (every buffer kept for the whole
                         * step, nothing rebuilt, every gradient zeroed) that the shared one
                         * must match bit for bit */
};

/* ---- op table (layers.c) ---- */
typedef struct {
    const char *name;
    int min_in, max_in;               /* number of inputs */
    const char *const *attrs;         /* accepted spec attributes besides name/op/inputs */
    oc_status (*parse)(oc_node *nd, const cJSON *j);
    void (*emit)(const oc_node *nd, cJSON *j);
    oc_status (*infer)(oc_model *m, oc_node *nd); /* shape, tensors, FLOPs */
    void (*fwd)(oc_model *m, oc_node *nd, int n, int training);
    void (*bwd)(oc_model *m, oc_node *nd, int n);
    /* bwd reads the outputs (y) of the node's inputs: the planner keeps them until this node's
     * backward (plan.c); without it they are dropped after their last forward reader. */
    int bwd_reads_inputs;
} oc_op_def;

const oc_op_def *oc_nn_op(oc_op_type op);
/* The op called `name`, or -1. */
int oc_nn_op_find(const char *name);

/* Declares a tensor of node nd (called from infer); state tensors go to the state buffer. */
oc_status oc_nn_add_tensor(oc_model *m, oc_node *nd, const char *suffix, oc_param_kind kind,
                           int ndim, const int64_t *shape);
/* Tensor views (valid once the model's buffers exist). */
float *oc_nn_param(oc_model *m, const oc_node *nd, int k);
float *oc_nn_grad(oc_model *m, const oc_node *nd, int k);
/* Input buffer j of node nd. */
static inline const float *oc_nn_in(const oc_model *m, const oc_node *nd, int j)
{
    return m->nodes[nd->in[j]].y;
}
static inline float *oc_nn_din(const oc_model *m, const oc_node *nd, int j)
{
    return m->nodes[nd->in[j]].dy;
}
/* The same, or NULL where the backward in progress needs no gradient of that input (it stops
 * before the input's node: oc_model_set_trainable); for ops that can skip their input
 * gradient (conv2d, dense). */
static inline float *oc_nn_din_needed(const oc_model *m, const oc_node *nd, int j)
{
    return nd->in[j] < m->bwd_first ? NULL : m->nodes[nd->in[j]].dy;
}
/* Does training need the gradient of node nd's tensor k (not frozen by the spec nor marked
 * untrained)? And of any of its tensors? (model.c) */
static inline int oc_nn_wants_grad(const oc_model *m, const oc_node *nd, int k)
{
    return !m->tensors[nd->t0 + k].frozen && !(m->untrained && m->untrained[nd->t0 + k]);
}
int oc_nn_node_trains(const oc_model *m, const oc_node *nd);
/* Per-image element count of node i's output. */
static inline int64_t oc_nn_size(const oc_node *nd)
{
    return (int64_t)nd->H * nd->W * nd->C;
}
/* Rebuilds the output of batch norm nd (y, with its fused activation) from its input and the
 * statistics saved by the last training forward of batch n: bitwise what forward wrote. */
void oc_nn_bn_rebuild(oc_model *m, oc_node *nd, int n);
/* Fills a conv / pool shape descriptor of node nd for batch n. */
void oc_nn_conv_shape(const oc_model *m, const oc_node *nd, int n, oc_conv_shape *s);
void oc_nn_pool_shape(const oc_model *m, const oc_node *nd, int n, oc_pool_shape *s);

/* ---- graph building (model.c) ---- */
/* Builds a model from a parsed spec (cJSON tree, borrowed). */
oc_status oc_nn_build(oc_model **out, const cJSON *spec, int height, int width, int channels,
                      int classes, uint64_t seed);

/* ---- spec (spec.c) ---- */
/* Parses one node object into nd (name, op, attributes; inputs resolved by the caller). */
oc_status oc_nn_parse_node(oc_node *nd, const cJSON *j, int index);
/* The spec of the model as a cJSON tree; NULL on out-of-memory. */
cJSON *oc_nn_spec(const oc_model *m);

/* ---- zoo (zoo.c) ---- */
/* 1 when `name` (up to an optional ":options" suffix) is a zoo model. */
int oc_zoo_has(const char *name);
/* The zoo model's spec for this input and class count; OC_ERR_ARG for an unknown name or
 * options. */
oc_status oc_zoo_spec(const char *name, int height, int width, int channels, int classes,
                      cJSON **out);

/* ---- planner (plan.c) ---- */
void oc_nn_plan_release(oc_model *m);
/* A buffer request: size in bytes, live from step start to step end (inclusive); off is the
 * offset assigned. */
typedef struct {
    size_t size;
    int start, end;
    size_t off;
} oc_nn_buf;
/* Assigns offsets so that requests live at a common step never overlap in memory; returns the
 * total size, or SIZE_MAX when out of memory. */
size_t oc_nn_assign_offsets(oc_nn_buf *b, int n);

/* ---- inference conv epilogues (epilogue.c) ---- */
/* Marks the conv chains whose batch norm / add / activation run in the conv's output pass at
 * inference and allocates their per-channel vectors; called by the planner. */
oc_status oc_nn_plan_epilogues(oc_model *m);
/* Frees what oc_nn_plan_epilogues set up and clears the marks. */
void oc_nn_epilogues_release(oc_model *m);
/* The fused inference forward of conv node nd (epi_last > 0). */
void oc_nn_conv_fwd_fused(oc_model *m, oc_node *nd, int n);
/* The inverted-residual block that conv node nd starts (blk_pr > 0), whole. */
void oc_nn_block_fwd_fused(oc_model *m, oc_node *nd, int n);
/* Bytes of workspace the blocks of m need (0: none), for oc_get_threads() threads. */
size_t oc_nn_blocks_workspace(oc_model *m);

/* ---- precision (precision.c) ---- */
/* Puts the calling thread in the model's math mode (ops.h: oc_math_set) for one forward or
 * backward; returns the previous mode for the caller to restore. */
oc_math_mode oc_nn_math_enter(const oc_model *m);

/* ---- test hooks ---- */
/* Training forwards skip dropout (identity), e.g. to compare against a reference. */
void oc_nn_set_dropout(oc_model *m, int enabled);
/* Number of plans built so far; the arena's `used` bytes. */
int oc_nn_plan_count(const oc_model *m);
size_t oc_nn_arena_used(const oc_model *m);
/* Pairs of the current plan's buffers (outputs, gradients, argmax, masks, the kept input) that
 * are live at a common step and overlap in memory, or lie outside the arena: 0 for a sound
 * plan. */
int oc_nn_plan_conflicts(const oc_model *m);

#endif /* OC_NN_H */
