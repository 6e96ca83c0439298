/* ocelot — image classification in C11.
 *
 * The one public header. Every stage of the pipeline (data, model, training, evaluation,
 * serving) is a call here; the `ocelot` CLI and the HTTP server are thin shells over it.
 *
 * Conventions:
 *  - Fallible functions return oc_status; results come back through out-parameters.
 *    oc_last_error() explains the most recent failure on the calling thread.
 *  - Whoever calls a _new / _load function calls the matching _free; every _free accepts NULL.
 *  - Activations are NHWC float32; conv weights are [K][R][S][C/groups] (out, kh, kw, in).
 */
#ifndef OCELOT_H
#define OCELOT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(OC_BUILDING_LIBRARY) && defined(__GNUC__)
#define OC_API __attribute__((visibility("default")))
#else
#define OC_API
#endif

#define OC_VERSION_MAJOR 0
#define OC_VERSION_MINOR 1
#define OC_VERSION_PATCH 0
#define OC_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- status and errors */

typedef enum {
    OC_OK = 0,
    OC_ERR_NOMEM,       /* allocation failed */
    OC_ERR_IO,          /* open/read/write failed */
    OC_ERR_FORMAT,      /* malformed file, image or request */
    OC_ERR_SHAPE,       /* incompatible tensor shapes */
    OC_ERR_ARG,         /* invalid argument */
    OC_ERR_UNSUPPORTED, /* valid but not supported (yet) */
    OC_ERR_NUMERIC,     /* NaN or Inf where a finite number was needed */
    OC_ERR_INTERRUPTED  /* stopped by a signal or callback */
} oc_status;

/* Message for the last failure on this thread; valid until the next failure on this thread.
 * Never NULL ("" when nothing failed yet). */
OC_API const char *oc_last_error(void);

/* Short constant name of a status code ("OC_ERR_FORMAT"). */
OC_API const char *oc_status_name(oc_status st);

/* Library version string, e.g. "0.1.0". */
OC_API const char *oc_version(void);

/* ---------------------------------------------------------------- logging */

typedef enum { OC_LOG_DEBUG = 0, OC_LOG_INFO, OC_LOG_WARN, OC_LOG_ERROR } oc_log_level;

/* The library never prints. It reports through this callback; NULL (the default) drops
 * every message. The callback may be called from any thread. */
typedef void (*oc_log_fn)(oc_log_level level, const char *msg, void *user);
OC_API void oc_set_log(oc_log_fn fn, void *user);

/* ---------------------------------------------------------------- threads */

/* Sets the number of threads the kernels use (0 = one per online core). Not thread safe: call
 * it at start-up or between steps. */
OC_API void oc_set_threads(int n);
OC_API int oc_get_threads(void);

/* ---------------------------------------------------------------- tensors */

typedef enum { OC_DTYPE_F32 = 0, OC_DTYPE_BF16, OC_DTYPE_I8, OC_DTYPE_U8, OC_DTYPE_I32 } oc_dtype;

#define OC_MAX_DIMS 6

/* A dense, contiguous, row-major tensor. `data` is owned when `owned` is non-zero (made by
 * oc_tensor_new); views (oc_tensor_view) never own memory. */
typedef struct {
    oc_dtype dtype;
    int ndim;
    int64_t shape[OC_MAX_DIMS];
    void *data;
    int owned;
} oc_tensor;

/* Size in bytes of one element of `dt`. */
OC_API size_t oc_dtype_size(oc_dtype dt);
/* Lower-case name ("f32", "bf16", "i8", "u8", "i32"). */
OC_API const char *oc_dtype_name(oc_dtype dt);

/* Allocates a zero-filled tensor (64-byte aligned). Errors: OC_ERR_ARG (bad ndim or negative
 * dim), OC_ERR_NOMEM (including size overflow). */
OC_API oc_status oc_tensor_new(oc_tensor **out, oc_dtype dt, int ndim, const int64_t *shape);
/* A non-owning tensor over `data`. */
OC_API oc_tensor oc_tensor_view(void *data, oc_dtype dt, int ndim, const int64_t *shape);
OC_API void oc_tensor_free(oc_tensor *t);
OC_API int64_t oc_tensor_numel(const oc_tensor *t);
OC_API size_t oc_tensor_nbytes(const oc_tensor *t);

/* ---------------------------------------------------------------- random numbers */

/* xoshiro256** stream. Streams seeded with the same seed and different `stream` ids are
 * independent, which is how every thread and every data worker gets its own. */
typedef struct {
    uint64_t s[4];
} oc_rng;

OC_API void oc_rng_seed(oc_rng *r, uint64_t seed, uint64_t stream);
OC_API uint64_t oc_rng_u64(oc_rng *r);
/* Uniform in [0, 1). */
OC_API float oc_rng_uniform(oc_rng *r);
/* Uniform integer in [0, n); n > 0. */
OC_API uint64_t oc_rng_below(oc_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
OC_API float oc_rng_normal(oc_rng *r);

/* ================================================================ nn: models
 * (section owned by src/nn)
 *
 * A model is a DAG of nodes (conv2d, dense, batchnorm, activations, pooling, add, concat, ...)
 * over one NHWC float32 input, ending in logits [N][classes]. All trainable parameters live in
 * one contiguous buffer and all their gradients in another; non-trainable state (batch-norm
 * running statistics) in a third. Every named tensor is a view into those buffers.
 * A model is not thread safe: one thread at a time runs forward/backward on it. */

typedef struct oc_model oc_model;

/* What a tensor of the model is, so optimizers can treat kinds differently (e.g. no weight
 * decay on batch-norm parameters) and files can tell trainable weights from state. */
typedef enum {
    OC_PARAM_WEIGHT = 0, /* conv / dense weights */
    OC_PARAM_BIAS,
    OC_PARAM_NORM_SCALE, /* batch-norm gamma */
    OC_PARAM_NORM_SHIFT, /* batch-norm beta */
    OC_PARAM_STATE       /* not trainable (running mean / var): lives in the state buffer */
} oc_param_kind;

typedef struct {
    const char *name;   /* PyTorch-style: "layer1.0.conv1.weight", "bn1.running_mean" */
    oc_param_kind kind;
    int ndim;
    int64_t shape[4];   /* ocelot layout: conv [K][R][S][C/g], dense [O][I], vectors [C] */
    size_t offset;      /* in floats, into the params buffer (or the state buffer for STATE) */
    size_t numel;
    int frozen;         /* the spec's "freeze": optimizers leave it as it is */
} oc_param_info;

/* One layer of the model, for summaries (ocelot info). */
typedef struct {
    const char *name;
    const char *op;       /* "conv2d", "relu", ... */
    int out_h, out_w, out_c; /* per-image output shape (dense: 1 x 1 x units) */
    int64_t params;       /* trainable parameters owned by this node */
    double flops;         /* forward FLOPs per image (multiply-add = 2) */
} oc_node_info;

/* How raw pixels become the model's input: resize to height x width (see `resize`), scale to
 * [0,1], then (x - mean[c]) / std[c]. */
typedef enum {
    OC_RESIZE_STRETCH = 0,   /* resize to exactly H x W, ignoring aspect ratio */
    OC_RESIZE_CENTER_CROP    /* resize the shorter side to fit, then center-crop */
} oc_resize_mode;

typedef struct {
    int height, width, channels;
    float mean[4], std[4];
    oc_resize_mode resize;
} oc_preprocess;

/* NULL-terminated list of the built-in architectures ("cnn", "resnet20", ...). */
OC_API const char *const *oc_zoo_names(void);

/* Builds a model with freshly initialised parameters (PyTorch's default initialisers, seeded).
 * `name_or_path` is a zoo name or the path of a JSON spec file (the schema the model file
 * stores; docs/model-spec.md). Errors: OC_ERR_ARG (unknown name, bad sizes), OC_ERR_FORMAT
 * (bad spec), OC_ERR_SHAPE (layers that do not fit the input). */
OC_API oc_status oc_model_create(oc_model **out, const char *name_or_path, int height, int width,
                                 int channels, int classes, uint64_t seed);
/* Same from a JSON spec held in memory. */
OC_API oc_status oc_model_from_json(oc_model **out, const char *json, size_t len, int height,
                                    int width, int channels, int classes, uint64_t seed);
/* The graph as JSON (the spec schema); caller frees with free(). NULL on out-of-memory. */
OC_API char *oc_model_to_json(const oc_model *m);
OC_API void oc_model_free(oc_model *m);

/* Re-initialises every parameter and state tensor as at creation, from `seed`. */
OC_API void oc_model_init_params(oc_model *m, uint64_t seed);
/* Sets every conv2d with "init": "whiten" (it must read the input image, have no groups,
 * stride 1, and 2 x R x S x C filters) from images x[n][H][W][C] (normalised like the model's
 * input): the eigenvectors v_i of the uncentred covariance of all R x S patches, scaled to
 * v_i / sqrt(lambda_i + eps), largest eigenvalue first, then their negatives (airbench's
 * whitening layer); its bias becomes 0. Returns in *count how many layers it set. Errors:
 * OC_ERR_ARG (n < 1, a whiten layer of another shape), OC_ERR_NOMEM. */
OC_API oc_status oc_model_init_whiten(oc_model *m, const float *x, int n, double eps, int *count);
/* The number of conv2d layers with "init": "whiten" (what oc_model_init_whiten would set). */
OC_API int oc_model_num_whiten(const oc_model *m);

OC_API int oc_model_num_classes(const oc_model *m);
OC_API void oc_model_input_shape(const oc_model *m, int *height, int *width, int *channels);
OC_API int64_t oc_model_param_count(const oc_model *m); /* trainable parameters */
OC_API double oc_model_flops(const oc_model *m);        /* forward FLOPs per image */
OC_API int oc_model_num_nodes(const oc_model *m);
OC_API void oc_model_node_info(const oc_model *m, int i, oc_node_info *info);

/* The flat buffers. Pointers stay valid for the model's lifetime. */
OC_API float *oc_model_params(oc_model *m, size_t *n);
OC_API float *oc_model_grads(oc_model *m, size_t *n);
OC_API float *oc_model_state(oc_model *m, size_t *n);
OC_API int oc_model_num_tensors(const oc_model *m);
OC_API const oc_param_info *oc_model_tensor(const oc_model *m, int i);
/* Index of the tensor called `name`, or -1. */
OC_API int oc_model_find_tensor(const oc_model *m, const char *name);
/* Whether training needs tensor i's gradient (default: yes, unless the spec freezes it). Set it
 * to 0 for a tensor the optimizer leaves alone (oc_optimizer_set_frozen) and backward skips
 * what only it needed: the layers before the first one with a trainable tensor run no
 * backward at all, and that layer computes no input gradient (a frozen stem or backbone costs
 * no backward pass), and a convolution skips the gradient of such a weight or bias. What the
 * gradients of these tensors then hold is unspecified (those backward skips are left as they
 * were). Errors: OC_ERR_ARG (no tensor i, or a state tensor). */
OC_API oc_status oc_model_set_trainable(oc_model *m, int i, int trainable);
/* A promise that the parameters will not change (predict, serve, eval): inference forwards may
 * then keep derived copies of them, each convolution's weights packed for its kernel once
 * instead of on every call (ONNX Runtime pre-packs at session creation the same way). The
 * results are the same bits, except that 3x3 layers wider than 128 x 128 channels then run
 * Winograd F(2x2, 3x3) on filters transformed once (equal within fp32 rounding). The copies
 * cost memory (resnet18 at 224x224: 47 MB of weights, 62 MiB more at peak). Turning it on, or
 * on again after the parameters changed, drops the plan, so the next forward packs the
 * current weights; training forwards ignore it. Off by default. */
OC_API oc_status oc_model_set_weights_fixed(oc_model *m, int fixed);

/* Sizes every activation, gradient and scratch buffer for batches of up to `max_batch` (one
 * allocation; forward/backward then never allocate). Training plans also keep what backward
 * needs. Called implicitly by forward with a larger batch, but call it once up front. */
OC_API oc_status oc_model_plan(oc_model *m, int max_batch, int training);

/* Runs the model on x[n][H][W][C]. `training` selects batch statistics, dropout and keeping
 * activations for backward. *logits points into the model's buffers ([n][classes]), valid until
 * the next forward. Errors: OC_ERR_ARG (n < 1), OC_ERR_NOMEM (planning). */
OC_API oc_status oc_model_forward(oc_model *m, const float *x, int n, int training,
                                  const float **logits);
/* Backpropagates dlogits[n][classes] through the last training forward, ACCUMULATING into the
 * gradient buffer. Once per training forward: backward reuses the memory of the forward's
 * values as it goes. A convolution weight frozen by the spec ("freeze") may get no gradient
 * (its slot keeps its value). Errors: OC_ERR_ARG (no training forward before, or it was
 * already backpropagated). */
OC_API oc_status oc_model_backward(oc_model *m, const float *dlogits);
OC_API void oc_model_zero_grad(oc_model *m);
/* Bytes of the current plan's arena (activations, their gradients, scratch); 0 before any
 * plan. E.g. oc_model_plan(m, 1, 0) then this = activation memory of one image. */
OC_API size_t oc_model_plan_bytes(const oc_model *m);
/* Layer profile: while on, forward and backward add each node's wall time to per-node
 * counters (a fused activation's time counts in its producer). Turning it on (again) starts the
 * counters at zero. oc_model_node_time gives node i's seconds in forward and in backward so far;
 * it returns 0 when profiling is off or i is out of range. Errors: OC_ERR_NOMEM. */
OC_API oc_status oc_model_set_profiling(oc_model *m, int enabled);
OC_API int oc_model_node_time(const oc_model *m, int i, double *fwd_s, double *bwd_s);
/* Also computes d(loss)/d(input) in backward (saliency, adversarial attacks); off by default
 * (it costs the first layer's input gradient). Changing it drops the plan; the next forward
 * plans again. oc_model_input_grad returns [n][H][W][C] of the last backward, or NULL when off
 * or before a training plan. */
OC_API oc_status oc_model_set_input_grad(oc_model *m, int enabled);
OC_API const float *oc_model_input_grad(const oc_model *m);

/* Arithmetic of the convolution and dense products (forward, backward-data, backward-weights).
 * OC_PRECISION_BF16 rounds both operands of each product to bfloat16 and sums in fp32 with the
 * CPU's AVX512_BF16 dot products; parameters (the fp32 master weights), optimizer state,
 * batch-norm statistics, the loss and every other op stay fp32. A new or loaded model starts
 * at OC_PRECISION_F32. */
typedef enum { OC_PRECISION_F32 = 0, OC_PRECISION_BF16 } oc_precision;

/* Parses "fp32" (or "f32") / "bf16". Errors: OC_ERR_ARG. */
OC_API oc_status oc_precision_parse(const char *name, oc_precision *out);
/* "fp32" / "bf16". */
OC_API const char *oc_precision_name(oc_precision p);
/* 1 when this CPU runs `p` (bf16 needs AVX512_BF16). */
OC_API int oc_precision_supported(oc_precision p);
/* Sets the model's precision for later forward / backward calls. Errors: OC_ERR_ARG (unknown
 * value), OC_ERR_UNSUPPORTED (the CPU lacks AVX512_BF16). */
OC_API oc_status oc_model_set_precision(oc_model *m, oc_precision p);
OC_API oc_precision oc_model_precision(const oc_model *m);

/* The stream dropout draws from; part of a checkpoint so resumed runs are bitwise identical. */
OC_API oc_rng *oc_model_rng(oc_model *m);

/* Class names (count must equal the number of classes; copied). Default: "0", "1", ... */
OC_API oc_status oc_model_set_class_names(oc_model *m, int n, const char *const *names);
OC_API const char *oc_model_class_name(const oc_model *m, int i);
/* The preprocessing stored with the model (mutable). Default: stretch, mean 0, std 1. */
OC_API oc_preprocess *oc_model_preprocess(oc_model *m);
/* Free-form metadata stored in the model file: key -> JSON text (e.g. "training", "split",
 * "history"). set copies; get returns NULL when absent. */
OC_API oc_status oc_model_set_meta(oc_model *m, const char *key, const char *json);
OC_API const char *oc_model_get_meta(const oc_model *m, const char *key);
OC_API int oc_model_num_meta(const oc_model *m);
OC_API const char *oc_model_meta_key(const oc_model *m, int i);

/* ================================================================ io: model files
 * (section owned by src/io)
 *
 * A model file is a valid safetensors file: weights and state as named tensors; the graph,
 * preprocessing, class names and metadata in the header's __metadata__ (docs/model-file.md). */

/* Writes atomically: a temporary file beside `path`, fsync, rename. Errors: OC_ERR_IO. */
OC_API oc_status oc_model_save(const oc_model *m, const char *path);
/* Loads (memory-maps and validates) a model file. Errors: OC_ERR_IO, OC_ERR_FORMAT (with what
 * is wrong: truncation, bad header, absurd shapes, offsets past the end, unknown version). */
OC_API oc_status oc_model_load(const char *path, oc_model **out);

/* ================================================================ train
 * (section owned by src/train) */

/* ---- optimizers ----
 * An optimizer updates a flat params buffer from the matching flat grads buffer, tensor by
 * tensor (oc_param_info: offset, numel, kind), with torch.optim's exact update rules:
 *  SGD   (torch.optim.SGD): g += wd*p; with momentum, buf = g on the first step, else
 *        buf = momentum*buf + (1-dampening)*g; g = nesterov ? g + momentum*buf : buf; p -= lr*g.
 *  AdamW (torch.optim.AdamW, amsgrad off): p *= 1 - lr*wd; m = b1*m + (1-b1)*g;
 *        v = b2*v + (1-b2)*g*g; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * Weight decay applies to every tensor (torch's default) except the kinds in `no_decay`.
 * All optimizer state lives in ONE flat float buffer (SGD with momentum: n floats; AdamW: 2n,
 * first moments then second moments; plain SGD: none), indexed like the params buffer, so a
 * checkpoint writes it and the step count. Steps are deterministic (elementwise; any thread
 * count gives bitwise identical results). An optimizer is not thread safe. */
typedef enum { OC_OPTIM_SGD = 0, OC_OPTIM_ADAMW } oc_optim_type;

/* Bits for oc_optim_config.no_decay. */
#define OC_NO_DECAY_BIAS (1u << OC_PARAM_BIAS)
#define OC_NO_DECAY_NORM ((1u << OC_PARAM_NORM_SCALE) | (1u << OC_PARAM_NORM_SHIFT))

typedef struct {
    oc_optim_type type;
    double lr;           /* current learning rate; oc_optimizer_set_lr changes it */
    double weight_decay;
    unsigned no_decay;   /* bitmask of (1u << oc_param_kind) excluded from weight decay */
    double momentum;     /* SGD */
    double dampening;    /* SGD */
    int nesterov;        /* SGD; needs momentum > 0 and dampening == 0, as torch */
    double beta1, beta2; /* AdamW */
    double eps;          /* AdamW */
    double norm_lr_scale; /* > 1: batch-norm shifts (OC_PARAM_NORM_SHIFT) train at this times the
                             learning rate, their weight decay divided by it so the decay step
                             lr x wd stays (airbench's bias_scaler); 0 or 1: off */
} oc_optim_config;

typedef struct oc_optimizer oc_optimizer;

/* torch's defaults for `type`: SGD lr 0.01 (torch has none), no momentum, no weight decay;
 * AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2. no_decay = 0. */
OC_API oc_optim_config oc_optim_defaults(oc_optim_type type);
/* Parses "sgd" / "adamw". Errors: OC_ERR_ARG. */
OC_API oc_status oc_optim_type_parse(const char *name, oc_optim_type *out);

/* Creates an optimizer for a params buffer of n_params floats holding `tensors` (copied;
 * OC_PARAM_STATE entries are ignored; floats no tensor covers are never touched). Errors:
 * OC_ERR_ARG (bad hyper-parameters, tensors outside the buffer or overlapping), OC_ERR_NOMEM. */
OC_API oc_status oc_optimizer_new(oc_optimizer **out, const oc_optim_config *cfg, size_t n_params,
                                  const oc_param_info *tensors, int n_tensors);
/* Same over a model's params buffer and tensor table. */
OC_API oc_status oc_optimizer_new_for_model(oc_optimizer **out, const oc_optim_config *cfg,
                                            oc_model *m);
OC_API void oc_optimizer_free(oc_optimizer *o);

/* One update of params[n_params] from grads[n_params] at the current learning rate; the step
 * count goes up by one. Errors: OC_ERR_ARG (NULL buffers). */
OC_API oc_status oc_optimizer_step(oc_optimizer *o, float *params, const float *grads);
OC_API void oc_optimizer_set_lr(oc_optimizer *o, double lr);
OC_API double oc_optimizer_lr(const oc_optimizer *o);
OC_API const oc_optim_config *oc_optimizer_config(const oc_optimizer *o);

/* The state buffer (*n floats; may be 0 and NULL) to save or restore in place, and the number
 * of steps taken (AdamW's bias correction and SGD's first-step rule depend on it). Restoring
 * means writing the buffer and calling set_steps. reset zeroes both. */
OC_API float *oc_optimizer_state(oc_optimizer *o, size_t *n);
OC_API int64_t oc_optimizer_steps(const oc_optimizer *o);
OC_API void oc_optimizer_set_steps(oc_optimizer *o, int64_t steps);
OC_API void oc_optimizer_reset(oc_optimizer *o);
/* Freezes (frozen = 1) or thaws the tensor that starts at `offset` in the params buffer: a
 * frozen tensor is not updated at all (torch: requires_grad = False, its momentum kept for a
 * thaw). Tensors whose oc_param_info says frozen start frozen. Errors: OC_ERR_ARG (no tensor
 * starts there). */
OC_API oc_status oc_optimizer_set_frozen(oc_optimizer *o, size_t offset, int frozen);

/* ---- learning-rate schedules ----
 * A schedule is a pure function lr(step) of its config, step = 0, 1, ... (optimizer steps taken
 * so far). An optional linear warm-up runs first, as torch's
 *   SequentialLR([LinearLR(start_factor=warmup_start, total_iters=W), main], milestones=[W]):
 * lr(t < W) = lr0 * (warmup_start + (1 - warmup_start) * t / W), where lr0 is main's lr at 0;
 * then lr(t >= W) = main(t - W), and main spans T' = total_steps - W steps. Main shapes:
 *  CONSTANT    lr.
 *  STEP        lr * gamma^floor(t / step_size) (StepLR), or, when n_milestones > 0,
 *              lr * gamma^(number of milestones <= t) (MultiStepLR).
 *  COSINE      lr_min + (lr - lr_min) * (1 + cos(pi * t / T')) / 2 (CosineAnnealingLR with
 *              T_max = T' stepped per iteration); lr_min for t >= T'.
 *  ONECYCLE    OneCycleLR(max_lr = lr, total_steps = T', pct_start, div_factor,
 *              final_div_factor, anneal cos, three_phase false): cosine from lr/div_factor up to
 *              lr at step pct_start*T' - 1, then down to lr/div_factor/final_div_factor at T'-1
 *              (held after). Momentum cycling is not part of it.
 *  TRIANGULAR  the speed-run shape (airbench): piecewise linear through (0, lr/div_factor),
 *              (floor(pct_start*T'), lr), (T', lr_min); lr_min after T'.
 * Negative steps count as 0. */
typedef enum {
    OC_SCHED_CONSTANT = 0,
    OC_SCHED_STEP,
    OC_SCHED_COSINE,
    OC_SCHED_ONECYCLE,
    OC_SCHED_TRIANGULAR
} oc_sched_type;

#define OC_SCHED_MAX_MILESTONES 16

typedef struct {
    oc_sched_type type;
    double lr;                /* base LR (ONECYCLE: max_lr; TRIANGULAR: peak) */
    double lr_min;            /* COSINE eta_min; TRIANGULAR end value */
    int64_t total_steps;      /* the whole run, warm-up included (not needed by CONSTANT/STEP) */
    int64_t step_size;        /* STEP */
    double gamma;             /* STEP */
    int n_milestones;         /* STEP: 0 = every step_size steps */
    int64_t milestones[OC_SCHED_MAX_MILESTONES]; /* STEP, ascending, counted after warm-up */
    double pct_start;         /* ONECYCLE, TRIANGULAR: fraction of T' spent rising */
    double div_factor;        /* ONECYCLE, TRIANGULAR: start = lr / div_factor */
    double final_div_factor;  /* ONECYCLE: end = lr / div_factor / final_div_factor */
    int64_t warmup_steps;     /* 0: no warm-up */
    double warmup_start;      /* warm-up's first factor, in [0, 1] */
} oc_schedule;

/* A schedule of `type` with torch's defaults: gamma 0.1, step_size total/3 (at least 1),
 * lr_min 0, pct_start 0.3 / div 25 / final_div 1e4 (ONECYCLE), pct_start 0.2 / div 5
 * (TRIANGULAR), no warm-up (warmup_start 0 once warmup_steps is set). */
OC_API oc_schedule oc_schedule_defaults(oc_sched_type type, double lr, int64_t total_steps);
/* Checks the config. Errors: OC_ERR_ARG with what is wrong. */
OC_API oc_status oc_schedule_check(const oc_schedule *s);
/* The learning rate after `step` optimizer steps (use it for step `step` + 1). The config must
 * pass oc_schedule_check. */
OC_API double oc_schedule_lr(const oc_schedule *s, int64_t step);
/* "constant", "step", "cosine", "onecycle", "triangular" <-> type. Errors: OC_ERR_ARG. */
OC_API oc_status oc_sched_type_parse(const char *name, oc_sched_type *out);
OC_API const char *oc_sched_type_name(oc_sched_type t);

/* ---- exponential moving average of weights ----
 * After each optimizer step, ema = d*ema + (1-d)*current over the params buffer AND the
 * non-trainable state buffer (batch-norm running statistics averaged too, as timm's
 * ModelEmaV2 averages every state_dict entry). d = decay, or with warm-up the TF
 * ExponentialMovingAverage rule d_t = min(decay, (1 + t) / (10 + t)), t = updates before this
 * one. The EMA starts as a copy of the weights given to oc_ema_new. */
typedef struct oc_ema oc_ema;

/* Copies params[n_params] and state[n_state] (state may be NULL when n_state is 0).
 * Errors: OC_ERR_ARG (decay outside [0, 1], NULL buffers), OC_ERR_NOMEM. */
OC_API oc_status oc_ema_new(oc_ema **out, double decay, int warmup, const float *params,
                            size_t n_params, const float *state, size_t n_state);
OC_API oc_status oc_ema_new_for_model(oc_ema **out, double decay, int warmup, oc_model *m);
OC_API void oc_ema_free(oc_ema *e);
/* Folds the current weights in (same sizes as at creation). */
OC_API void oc_ema_update(oc_ema *e, const float *params, const float *state);
/* The same update with this decay instead of the configured one (schedules such as
 * airbench's lookahead, whose decay grows over the run). */
OC_API void oc_ema_update_with(oc_ema *e, double decay, const float *params, const float *state);
/* The decay the next update will use. */
OC_API double oc_ema_decay(const oc_ema *e);
/* The averaged buffers (to evaluate with, or save), and the update count (checkpoints). */
OC_API float *oc_ema_params(oc_ema *e, size_t *n);
OC_API float *oc_ema_state(oc_ema *e, size_t *n);
OC_API int64_t oc_ema_updates(const oc_ema *e);
OC_API void oc_ema_set_updates(oc_ema *e, int64_t t);
/* Copies the averages into a model's buffers (sizes must match). Errors: OC_ERR_SHAPE. */
OC_API oc_status oc_ema_copy_to_model(oc_ema *e, oc_model *m);

/* ---- the training loop (src/train/trainer.c) ----
 * oc_train runs a whole training job: open the data, split it, build the model, train with
 * background loading, validate each epoch, keep the best model, checkpoint each epoch
 * atomically, resume bitwise, stop cleanly on request. The CLI's `train` is a shell over it. */

typedef enum {
    OC_TRAIN_STEP = 0,  /* after each optimizer step */
    OC_TRAIN_EPOCH      /* after each epoch (and its validation, when `validated`) */
} oc_train_event;

typedef struct {
    oc_train_event event;
    int64_t epoch, epochs;          /* epoch is 1-based */
    int64_t batch, batches;         /* batches done in this epoch, of how many */
    int64_t global_step, total_steps;
    double loss, accuracy;          /* running means over this epoch's training batches */
    double lr;
    double images_per_s;            /* training throughput of this epoch so far */
    double elapsed_s, eta_s;        /* whole run */
    int validated;                  /* OC_TRAIN_EPOCH: 0 when val_every skipped this epoch's
                                       validation (val_* and improved are then 0) */
    double val_loss, val_accuracy;  /* OC_TRAIN_EPOCH only */
    int improved;                   /* OC_TRAIN_EPOCH: best validation accuracy so far */
    const char *val_name;           /* "val" or "test" (validating on the official test split) */
} oc_train_progress;

typedef void (*oc_train_progress_fn)(const oc_train_progress *p, void *user);

typedef struct {
    const char *data;          /* dataset spec (required): cifar10:DIR, fashion-mnist, ... */
    const char *model;         /* zoo name or JSON spec path (default "resnet20") */
    int input_h, input_w, input_c; /* 0: the dataset's image shape (folder / csv: 32x32x3) */
    int epochs;                /* default 15 */
    int batch;                 /* default 128 */
    const char *optimizer;     /* "sgd" (Nesterov, momentum 0.9) or "adamw"; NULL: sgd for
                                  models with batch norm, adamw for those without */
    double lr;                 /* 0: 0.1 x batch/128 for sgd, 1e-3 x sqrt(batch/32) for
                                  adamw (2e-3 at batch 128) */
    double momentum;           /* sgd; default 0.9 */
    double weight_decay;       /* < 0: 5e-4 for sgd, 0.05 for adamw */
    const char *schedule;      /* "cosine" (default), "onecycle", "step", "triangular",
                                  "constant" */
    double warmup_epochs;      /* linear warm-up; < 0: 1 epoch when epochs >= 5, else 0 */
    double label_smoothing;    /* default 0 */
    const char *augment;       /* spec (docs/augment.md); NULL: "crop:pad=4,flip" for colour
                                  images, none for grey; "none": none */
    double val_split;          /* < 0: 0 when the data has an official test split (validate on
                                  it), else 0.2 (stratified, seeded) */
    int64_t limit;             /* > 0: train on a stratified subset of this many images */
    uint64_t seed;             /* default 0 */
    int workers;               /* loader threads; default 2 */
    double ema_decay;          /* > 0: keep an EMA of the weights, validate and save it */
    int early_stop;            /* > 0: stop after this many epochs without improvement */
    oc_precision precision;    /* conv / dense arithmetic (oc_model_set_precision); default
                                  OC_PRECISION_F32; recorded in the model's "training" info */
    const char *recipe;        /* the recipe these settings came from (oc_recipe_apply), kept
                                  in the model's training info; NULL: none */
    double peak_at;            /* triangular / onecycle: where the peak lies, as a fraction of
                                  the (post-warm-up) run; 0: the schedule's default */
    double lr_start;           /* triangular: first learning rate as a fraction of the peak;
                                  0: the default 0.2 */
    double lr_end;             /* cosine / triangular: last learning rate as a fraction of
                                  the peak; default 0 */
    double norm_lr_scale;      /* > 1: batch-norm shifts learn this much faster, their decay
                                  unchanged (oc_optim_config.norm_lr_scale) */
    int decay_norm;            /* 1: weight decay on batch-norm tensors too (default: not) */
    int lookahead;             /* > 0: every this many steps, pull the weights to their
                                  moving average and continue from it (airbench's lookahead;
                                  ends with the average) */
    const char *freeze_after;  /* "TENSOR:EPOCHS": that tensor trains for EPOCHS epochs, then
                                  stays (e.g. "whiten.bias:3"); NULL: none */
    int keep_last;             /* 1: `out` is the model after the last epoch, not the best one
                                  by validation accuracy */
    int val_every;             /* > 1: validate only every this many epochs and after the last
                                  (the best model is chosen among those); 0 or 1: every epoch */
    const char *out;           /* the best model by validation accuracy (required) */
    const char *checkpoint;    /* NULL: out + ".ckpt" */
    const char *log_csv;       /* per-epoch CSV log; NULL: out + ".csv" */
    const char *resume;        /* continue from this checkpoint (its config wins) */
    oc_train_progress_fn progress;
    void *progress_user;
    volatile int *stop;        /* set non-zero (a signal handler) to checkpoint and stop */
} oc_train_config;

typedef struct {
    int64_t epochs_run;        /* epochs completed, counting those before a resume */
    double best_val_accuracy;
    int64_t best_epoch;
    double final_train_loss, final_train_accuracy;
    double final_val_accuracy; /* of the last epoch run (the model written with keep_last) */
    double seconds;            /* wall time of this call */
    double images_per_s;       /* mean training throughput of this call */
    int stopped_early;
} oc_train_summary;

/* The defaults documented above. */
OC_API void oc_train_config_init(oc_train_config *cfg);

/* ---- recipes (src/train/recipe.c): named, tested settings for oc_train (docs/recipes.md) */
/* NULL-terminated list of recipe names ("cifar10-fast", ...). */
OC_API const char *const *oc_recipe_names(void);
/* One line describing the recipe, or NULL for an unknown name. */
OC_API const char *oc_recipe_summary(const char *name);
/* Overwrites the fields of cfg the recipe sets (model, epochs, batch, optimizer, lr, ...) and
 * sets cfg->recipe; apply it before the caller's own choices so those still win. Leaves data,
 * files, seed and workers alone. Errors: OC_ERR_ARG (unknown name, listing the known ones). */
OC_API oc_status oc_recipe_apply(const char *name, oc_train_config *cfg);
/* Runs the job. Errors: whatever opening the data or model reports; OC_ERR_NUMERIC when the
 * loss becomes NaN or Inf (the last checkpoint, from the end of the previous epoch, is kept);
 * OC_ERR_INTERRUPTED when *stop was set (a checkpoint of the current position was written
 * first, so --resume continues exactly there); OC_ERR_IO writing files. `summary` may be NULL. */
OC_API oc_status oc_train(const oc_train_config *cfg, oc_train_summary *summary);

/* ================================================================ data
 * (section owned by src/data)
 *
 * Images are uint8, HWC (channels innermost), 1 (gray), 3 (RGB) or 4 (RGBA) channels.
 * A dataset is a numbered list of (image, label) samples; samples [0, n_train) form the official
 * train split and [n_train, count) the official test split (empty when the format has none).
 * The batch loader turns an index list into float NHWC batches on background threads. */

/* An image in caller-owned storage. Start from {0} (or oc_image_release'd); the functions that
 * fill one reuse `data` when `cap` is large enough and grow it otherwise, so a loop that
 * decodes into the same oc_image does not allocate once it has warmed up. */
typedef struct {
    int height, width, channels;
    uint8_t *data; /* [height][width][channels] */
    size_t cap;    /* bytes allocated at data */
} oc_image;

/* Makes `img` height x width x channels (contents undefined). Errors: OC_ERR_ARG, OC_ERR_NOMEM. */
OC_API oc_status oc_image_alloc(oc_image *img, int height, int width, int channels);
/* Frees the pixels and zeroes the struct. Accepts NULL and zeroed images. */
OC_API void oc_image_release(oc_image *img);

typedef enum { OC_IMAGE_UNKNOWN = 0, OC_IMAGE_JPEG, OC_IMAGE_PNG, OC_IMAGE_WEBP } oc_image_format;

/* Alpha handling when the requested channel count has no alpha. */
typedef enum { OC_ALPHA_WHITE = 0, OC_ALPHA_DROP } oc_alpha_mode;

#define OC_IMAGE_DEFAULT_MAX_PIXELS INT64_C(64000000) /* 64 megapixels */

typedef struct {
    int channels;       /* 1, 3 or 4; 0 = as stored (gray 1, gray+alpha 4, RGB 3, RGBA 4) */
    oc_alpha_mode alpha; /* OC_ALPHA_WHITE: composite on white (default); DROP: ignore alpha */
    int64_t max_pixels; /* width*height limit checked on the header before any pixel buffer is
                           allocated (decompression-bomb guard); 0 = OC_IMAGE_DEFAULT_MAX_PIXELS */
} oc_decode_opts;

/* Format from the first bytes (magic numbers, never the file name). */
OC_API oc_image_format oc_image_detect(const void *buf, size_t len);
OC_API const char *oc_image_format_name(oc_image_format f); /* "jpeg", "png", "webp", "unknown" */

/* Reads only the header: format, size and stored channel count (gray+alpha reports 2).
 * Any pointer may be NULL. Errors: OC_ERR_FORMAT (unknown or corrupt header). */
OC_API oc_status oc_image_probe(const void *buf, size_t len, oc_image_format *fmt, int *width,
                                int *height, int *channels);

/* Decodes a JPEG, PNG (1-16 bit, palette, gray, alpha, interlaced) or WebP image from memory
 * into `out` (see oc_image for reuse). Conversions: gray -> RGB replicates; RGB -> gray is ITU-R
 * BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded); alpha per opts->alpha. `opts` may be NULL
 * (defaults). Thread safe. Errors: OC_ERR_FORMAT (unknown format, corrupt or truncated data,
 * image above the pixel limit: message says which), OC_ERR_NOMEM, OC_ERR_ARG. */
OC_API oc_status oc_image_decode(const void *buf, size_t len, const oc_decode_opts *opts,
                                 oc_image *out);
/* Same from a file (read whole, then decoded). Errors add OC_ERR_IO. */
OC_API oc_status oc_image_load(const char *path, const oc_decode_opts *opts, oc_image *out);
/* Writes an 8-bit PNG (gray, RGB or RGBA by img->channels). Errors: OC_ERR_IO, OC_ERR_ARG. */
OC_API oc_status oc_image_save_png(const oc_image *img, const char *path);

/* Resizes src to height x width (same channels) into dst (dst != src). Per axis: an area
 * (box) filter when shrinking, exact averages for integer factors; bilinear with half-pixel
 * centres (PyTorch align_corners=False) when enlarging. Errors: OC_ERR_ARG, OC_ERR_NOMEM. */
OC_API oc_status oc_image_resize(const oc_image *src, int height, int width, oc_image *dst);
/* Brings src to pp->height x pp->width x pp->channels as uint8: channel conversion, then
 * OC_RESIZE_STRETCH resizes the whole image, OC_RESIZE_CENTER_CROP resizes the largest centred
 * region with the target's aspect ratio. dst != src. */
OC_API oc_status oc_image_fit(const oc_image *src, const oc_preprocess *pp, oc_image *dst);
/* The model's input for one image: oc_image_fit, then out[y][x][c] = (v/255 - mean[c]) / std[c].
 * out holds pp->height * pp->width * pp->channels floats. Thread safe. */
OC_API oc_status oc_image_to_input(const oc_image *img, const oc_preprocess *pp, float *out);

/* ---- datasets ---- */

typedef struct oc_dataset oc_dataset;

typedef enum { OC_SPLIT_ALL = 0, OC_SPLIT_TRAIN, OC_SPLIT_TEST } oc_split;

typedef struct {
    oc_split split;     /* load everything (default) or only the official train / test part */
    int channels;       /* decoded datasets (folder, csv): 0 = 3; in-memory ones convert on get */
    int64_t max_pixels; /* decode limit for folder / csv images (0 = default) */
} oc_dataset_opts;

/* Opens a dataset from a spec (docs in `ocelot data --help`):
 *   cifar10:PATH, cifar100:PATH   directory of the binary batches, or the .tar/.tar.gz/.tar.xz
 *   fashion-mnist[:DIR]           IDX files, default /usr/share/datasets/fashion-mnist
 *   mnist:DIR, idx:DIR            {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *   folder:DIR                    DIR/<class>/IMAGES (jpg, png, webp), or DIR/train/<class>
 *                                 and DIR/test/<class>
 *   csv:FILE                      path,label lines (optional header naming path/file and
 *                                 label/class columns); paths relative to the CSV's folder
 * CIFAR and IDX load into one uint8 buffer; folder and csv decode lazily in oc_dataset_get.
 * opts may be NULL. Errors: OC_ERR_ARG (bad spec, no test split when one was asked for),
 * OC_ERR_IO, OC_ERR_FORMAT (wrong magic, truncated batch, empty folder, ...), OC_ERR_NOMEM. */
OC_API oc_status oc_dataset_open(const char *spec, const oc_dataset_opts *opts, oc_dataset **out);
OC_API void oc_dataset_free(oc_dataset *ds);

OC_API int64_t oc_dataset_count(const oc_dataset *ds);
OC_API int oc_dataset_num_classes(const oc_dataset *ds);
OC_API const char *oc_dataset_class_name(const oc_dataset *ds, int k);
/* "cifar10", "cifar100", "fashion-mnist", "mnist", "idx", "folder", "csv". */
OC_API const char *oc_dataset_kind(const oc_dataset *ds);
/* 1 when the source has an official test split (CIFAR, IDX, folder with train/ and test/). */
OC_API int oc_dataset_has_test_split(const oc_dataset *ds);
/* Samples of `split` are [*begin, *end) (ALL: everything). */
OC_API void oc_dataset_split_range(const oc_dataset *ds, oc_split split, int64_t *begin,
                                   int64_t *end);
/* Label of sample i without decoding. */
OC_API int32_t oc_dataset_label(const oc_dataset *ds, int64_t i);
/* Fixed image shape of in-memory datasets; 0s when images vary (folder, csv). */
OC_API void oc_dataset_image_shape(const oc_dataset *ds, int *height, int *width, int *channels);
/* File behind sample i (folder, csv), NULL for in-memory datasets. */
OC_API const char *oc_dataset_path(const oc_dataset *ds, int64_t i);
/* Sample i into img (reused as for oc_image_decode) and *label (may be NULL). Thread safe.
 * Errors: OC_ERR_ARG (i out of range), decode errors prefixed with the file's path. */
OC_API oc_status oc_dataset_get(const oc_dataset *ds, int64_t i, oc_image *img, int32_t *label);

/* ---- index lists ----
 * Index lists are int64_t arrays allocated with malloc; the caller frees them with free(). */

/* All indices of `split` in order. */
OC_API oc_status oc_dataset_indices(const oc_dataset *ds, oc_split split, int64_t **out,
                                    int64_t *n);
/* Stratified, seeded train / validation split of idx[n]: in each class, round(frac * count)
 * samples (at least 1 when the class has 2+ samples and frac > 0) go to validation. Both outputs
 * keep the input order; the result depends only on (labels, idx, frac, seed).
 * Errors: OC_ERR_ARG (frac outside [0, 1)), OC_ERR_NOMEM. */
OC_API oc_status oc_split_stratified(const oc_dataset *ds, const int64_t *idx, int64_t n,
                                     double frac, uint64_t seed, int64_t **train, int64_t *n_train,
                                     int64_t **val, int64_t *n_val);
/* A stratified, seeded subset of `limit` indices of idx[n] (class proportions kept by largest
 * remainder; input order kept). limit >= n returns a copy. */
OC_API oc_status oc_subset_stratified(const oc_dataset *ds, const int64_t *idx, int64_t n,
                                      int64_t limit, uint64_t seed, int64_t **out, int64_t *n_out);

/* ---- augmentation (grammar: docs/augment.md) ---- */

typedef struct oc_augment oc_augment;

/* Parses e.g. "crop:pad=4,flip,rotate:15,scale:0.9-1.1,color:0.2,cutout:8,mixup:0.2".
 * NULL, "" and "none" give an augmentation that does nothing. Errors: OC_ERR_ARG with a
 * message naming the offending op or parameter. */
OC_API oc_status oc_augment_parse(const char *spec, oc_augment **out);
OC_API void oc_augment_free(oc_augment *a);
/* The mixup alpha (0 when the spec has no mixup). */
OC_API float oc_augment_mixup_alpha(const oc_augment *a);
/* One sample: fit img to pp (oc_image_fit), the image ops in spec order, normalisation, then
 * cutout, writing pp->height*pp->width*pp->channels floats. Randomness comes only from `rng`;
 * the loader seeds it from (seed, epoch, sample index). `scratch` is reused working storage.
 * a may be NULL (no augmentation). Thread safe for distinct rng/scratch. */
OC_API oc_status oc_augment_sample(const oc_augment *a, const oc_image *img,
                                   const oc_preprocess *pp, oc_rng *rng, oc_image scratch[2],
                                   float *out);
/* Seeds `r` for sample `index` of epoch `epoch` (what the loader uses). */
OC_API void oc_augment_rng(oc_rng *r, uint64_t seed, int64_t epoch, int64_t index);
/* oc_augment_sample for dataset sample `index` in epoch `epoch`, its stream seeded by
 * oc_augment_rng(seed, epoch, index) (what the loader calls). Only this form knows the epoch,
 * which "altflip" needs; oc_augment_sample treats altflip as a flip with p = 0.5. */
OC_API oc_status oc_augment_sample_at(const oc_augment *a, const oc_image *img,
                                      const oc_preprocess *pp, uint64_t seed, int64_t epoch,
                                      int64_t index, oc_image scratch[2], float *out);

/* ---- batch loader ---- */

typedef struct oc_loader oc_loader;

typedef struct {
    int batch_size;         /* > 0 */
    uint64_t seed;          /* shuffling and augmentation */
    int shuffle;            /* 1: a new permutation each epoch, from (seed, epoch) */
    int drop_last;          /* 1: skip the last partial batch of an epoch */
    int workers;            /* background threads (0 = produce batches in oc_loader_next) */
    int prefetch;           /* batches prepared ahead (0 = 2) */
    const char *augment;    /* augmentation spec; NULL = none */
    oc_preprocess pp;       /* input size, channels, normalisation, resize policy */
    int64_t start_epoch;    /* resume position: first batch returned is (start_epoch, */
    int64_t start_batch;    /* start_batch); start_batch may equal the batches of an epoch
                               (then it is the next epoch's first) */
} oc_loader_opts;

/* batch 128, seed 0, shuffle, keep last, 2 workers, prefetch 2, no augmentation, 32x32x3,
 * mean 0, std 1, stretch. */
OC_API void oc_loader_opts_default(oc_loader_opts *o);

typedef struct {
    int n;                   /* samples in this batch (< batch_size only for a last batch) */
    int64_t epoch, batch;    /* position of this batch */
    float *x;                /* [n][H][W][C] */
    int32_t *labels;         /* [n] */
    float *targets;          /* [n][classes] soft targets when mixup is on, else NULL */
    const int64_t *indices;  /* [n] dataset indices */
} oc_batch;

/* A loader over idx[n] (copied) of `ds` (borrowed: must outlive the loader). Batch contents
 * depend only on (dataset, idx, opts), never on the number of workers or timing.
 * Errors: OC_ERR_ARG (bad options, empty index list, index out of range), OC_ERR_NOMEM. */
OC_API oc_status oc_loader_new(oc_dataset *ds, const int64_t *idx, int64_t n,
                               const oc_loader_opts *opts, oc_loader **out);
/* Batches per epoch. */
OC_API int64_t oc_loader_num_batches(const oc_loader *l);
/* The next batch; epochs follow each other without end. *out stays valid until the next call
 * or oc_loader_free. Errors: a sample that failed to load or augment (message says which). */
OC_API oc_status oc_loader_next(oc_loader *l, const oc_batch **out);
/* Stops the workers and frees everything. Accepts NULL. */
OC_API void oc_loader_free(oc_loader *l);

/* ---- archives and checksums (used by `ocelot data fetch`) ---- */

/* MD5 (RFC 1321) of a file as 32 lower-case hex digits plus NUL. Errors: OC_ERR_IO. */
OC_API oc_status oc_md5_file(const char *path, char hex[33]);
OC_API void oc_md5(const void *buf, size_t len, uint8_t digest[16]);
/* Extracts the regular files of a .tar, .tar.gz or .tar.xz (detected by magic) under dest_dir,
 * keeping their relative paths; rejects absolute paths and "..". Returns the number of files
 * written in *n_files (may be NULL). Errors: OC_ERR_IO, OC_ERR_FORMAT. */
OC_API oc_status oc_tar_extract(const char *archive, const char *dest_dir, int *n_files);

/* ================================================================ eval
 * (section owned by src/eval)
 *
 * Metrics are computed from predictions alone, streamed in batches: create an oc_metrics for K
 * classes, oc_metrics_add() each batch of (true labels, N x K scores), then query. Every query
 * reflects all batches added so far and costs O(K^2) at most; nothing is kept per sample except
 * the bounded list of most confident mistakes. An oc_metrics is not thread safe.
 *
 * Conventions (scikit-learn 1.2 with labels=range(K), zero_division=0):
 *  - the prediction is the arg-max score (the lowest index among equal maxima);
 *  - confusion matrix rows = true class, columns = predicted class;
 *  - precision of a class never predicted, recall of a class absent from the truth, and F1 when
 *    precision + recall = 0 are 0; such classes still count in the macro average;
 *  - weighted averages weight each class by its support;
 *  - top-k: the true class is among the k highest scores, ties broken towards the lower index as
 *    for the arg-max (so top-1 = accuracy); k >= K gives 1;
 *  - calibration (ECE): confidence = the highest probability; 15 equal-width bins (i/15,(i+1)/15]
 *    (a confidence of 0 goes to the first); ECE = sum over bins |B|/N * |accuracy(B) - mean
 *    confidence(B)| (Guo et al. 2017, "On Calibration of Modern Neural Networks"). */

/* Test-time augmentation (src/eval/tta.c): logits[n][classes] of x[n][H][W][C] averaged over
 * views of each image, as airbench's tta_level. level 0: the image; 1: the image and its mirror,
 * 1/2 each; 2: 1/4 each for the image and its mirror, 1/8 each for the four views shifted one
 * pixel up-left or down-right (reflect padding), mirrored or not. x is left unchanged;
 * scratch holds n*H*W*C floats. Runs inference forwards (plan the model for n first).
 * Errors: OC_ERR_ARG (level outside 0-2, n < 1, NULL), forward's errors. */
OC_API oc_status oc_model_forward_tta(oc_model *m, const float *x, int n, int level,
                                      float *scratch, float *logits);

#define OC_METRICS_ECE_BINS 15

typedef struct oc_metrics oc_metrics;

typedef enum {
    OC_SCORES_PROBS = 0, /* rows are probabilities: finite, >= 0, summing to 1 (within 1e-3) */
    OC_SCORES_LOGITS     /* rows are logits: any finite values; softmax is applied */
} oc_score_kind;

/* Per-class figures. */
typedef struct {
    double precision, recall, f1;
    int64_t support;   /* true samples of this class */
    int64_t predicted; /* samples predicted as this class */
} oc_class_metrics;

typedef struct {
    int64_t count;                          /* samples added */
    int classes;
    double accuracy;
    double top5;                            /* top-5 accuracy (1 when classes <= 5) */
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
    double ece;                             /* expected calibration error, 15 bins */
    double mean_confidence;                 /* mean highest probability */
    double nll;                             /* mean -log p(true class), p clamped to >= 1e-12 */
} oc_metrics_summary;

/* One cell of the confusion matrix off its diagonal. */
typedef struct {
    int true_label, pred_label;
    int64_t count;
} oc_confusion;

/* A wrong prediction: `index` counts samples across every batch added, from 0. */
typedef struct {
    int64_t index;
    int true_label, pred_label;
    float probability; /* probability of the (wrong) predicted class */
} oc_mistake;

/* One reliability-diagram bin. */
typedef struct {
    double lower, upper;   /* (lower, upper] */
    int64_t count;
    double accuracy;       /* 0 when empty */
    double confidence;     /* mean confidence; 0 when empty */
} oc_calibration_bin;

/* Creates an empty accumulator for `classes` (>= 2) classes. `names` (may be NULL: "0", "1",
 * ...) is copied. Up to `max_mistakes` (>= 0) most confident mistakes are kept.
 * Errors: OC_ERR_ARG, OC_ERR_NOMEM. */
OC_API oc_status oc_metrics_new(oc_metrics **out, int classes, const char *const *names,
                                int max_mistakes);
OC_API void oc_metrics_free(oc_metrics *m);
/* Forgets every sample added (names and sizes stay). */
OC_API void oc_metrics_reset(oc_metrics *m);

/* Adds n samples: labels[n] in [0, classes) and scores[n][classes] of the given kind. The batch
 * is validated first and either all of it or none of it is counted. Errors: OC_ERR_ARG (label
 * out of range, probabilities that are negative or do not sum to 1), OC_ERR_NUMERIC (NaN/Inf). */
OC_API oc_status oc_metrics_add(oc_metrics *m, const int32_t *labels, const float *scores, int n,
                                oc_score_kind kind);

OC_API int oc_metrics_classes(const oc_metrics *m);
OC_API int64_t oc_metrics_count(const oc_metrics *m);
OC_API const char *oc_metrics_class_name(const oc_metrics *m, int i);

/* Every figure at once. With no samples added everything is 0. */
OC_API void oc_metrics_summarize(const oc_metrics *m, oc_metrics_summary *out);
/* Per-class figures of class i (0 <= i < classes). */
OC_API void oc_metrics_class(const oc_metrics *m, int i, oc_class_metrics *out);
/* Top-k accuracy for any k >= 1. */
OC_API double oc_metrics_topk(const oc_metrics *m, int k);
/* The confusion matrix, [classes][classes] row-major, rows = true; valid until the next add,
 * reset or free. */
OC_API const int64_t *oc_metrics_confusion(const oc_metrics *m);
/* Writes up to `max` off-diagonal cells with the largest non-zero counts (ties: lower true
 * label, then lower predicted label, first) to out[]; returns how many were written. */
OC_API int oc_metrics_top_confusions(const oc_metrics *m, oc_confusion *out, int max);
/* The kept mistakes, most confident first (ties: lower index first); *n gets their number.
 * Valid until the next add, reset or free. */
OC_API const oc_mistake *oc_metrics_mistakes(const oc_metrics *m, int *n);
/* Bin b (0 <= b < OC_METRICS_ECE_BINS) of the reliability diagram. */
OC_API void oc_metrics_calibration(const oc_metrics *m, int b, oc_calibration_bin *out);

/* The metrics as JSON (what `ocelot eval --json` prints); caller frees with free(); NULL on
 * out-of-memory. Schema "ocelot.eval/1" (stable; fields are only ever added):
 *   {"schema":"ocelot.eval/1", "count":N, "classes":[names],
 *    "accuracy":x, "top5":x, "ece":x, "mean_confidence":x, "nll":x,
 *    "per_class":[{"name":s,"precision":x,"recall":x,"f1":x,"support":n}, ...],
 *    "macro_avg":{"precision":x,"recall":x,"f1":x,"support":N},
 *    "weighted_avg":{"precision":x,"recall":x,"f1":x,"support":N},
 *    "confusion_matrix":[[n, ...], ...],            rows = true, columns = predicted
 *    "calibration":[{"lower":x,"upper":x,"count":n,"accuracy":x,"confidence":x}, x15],
 *    "top_confusions":[{"true":s,"predicted":s,"count":n}, ...],          at most 10
 *    "mistakes":[{"index":n,"true":s,"predicted":s,"probability":x}, ...]} kept mistakes */
OC_API char *oc_metrics_to_json(const oc_metrics *m);
/* The metrics as terminal text: a classification-report table (precision, recall, f1-score,
 * support per class, accuracy, top-5, macro and weighted averages, ECE), then the confusion
 * matrix with class names, columns aligned (UTF-8 aware). Caller frees with free(); NULL on
 * out-of-memory. */
OC_API char *oc_metrics_to_text(const oc_metrics *m);

/* ---- the HTML report ----
 * One self-contained HTML file: inline CSS and SVG, images as data: URIs, no scripts, nothing
 * fetched from the network. Sections: summary, training curves (when a history is given),
 * confusion-matrix heat map, per-class precision / recall / F1 bars, calibration, most
 * confident mistakes (when images are given). Every caller string is HTML-escaped. */

/* One thumbnail for the mistakes section. The pixels are borrowed. */
typedef struct {
    const uint8_t *pixels;       /* [height][width][channels] uint8 */
    int height, width, channels; /* channels 1 (grey), 3 (RGB) or 4 (RGBA); sides <= 4096 */
    int true_label, pred_label;
    float probability;           /* of the predicted class */
    int64_t index;               /* sample index shown in the caption; -1 hides it */
} oc_report_image;

typedef struct {
    const char *title;       /* NULL: "ocelot evaluation report" */
    const char *model_name;  /* NULL: not shown */
    const char *dataset;     /* NULL: not shown */
    const char *date;        /* NULL: the current local time, "YYYY-MM-DD HH:MM" */
    /* Per-epoch training history, NULL for none. Either CSV text with a header row naming
     * any of the columns epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds (in any order;
     * others ignored; empty or "nan" cells leave gaps; seconds = what that epoch took), or a
     * JSON array of objects with those keys. */
    const char *history;
    const oc_report_image *images; /* the mistakes to show, n_images of them (may be 0) */
    int n_images;
} oc_report_info;

/* Renders the report into a NUL-terminated string (*out, caller frees with free(); *len its
 * length, may be NULL). Errors: OC_ERR_ARG (bad image, label out of range), OC_ERR_FORMAT
 * (unreadable history), OC_ERR_NOMEM. */
OC_API oc_status oc_report_html(const oc_metrics *m, const oc_report_info *info, char **out,
                                size_t *len);
/* Renders and writes the report to `path` atomically (a temporary file beside it, fsync,
 * rename). Errors: those of oc_report_html, OC_ERR_IO. */
OC_API oc_status oc_report_write(const oc_metrics *m, const oc_report_info *info,
                                 const char *path);

/* ================================================================ predict
 * (section owned by src/predict)
 *
 * Classifying images with a model: decode -> the model's preprocessing -> forward -> softmax ->
 * top-k. What `ocelot predict`, the HTTP server and embedding programs use. */

typedef struct {
    int index;          /* class index */
    float probability;  /* softmax probability */
    const char *label;  /* the model's class name (borrowed from the model) */
} oc_prediction;

typedef enum {
    OC_INPUT_ENCODED = 0, /* data: JPEG / PNG / WebP file bytes, size: their count */
    OC_INPUT_PIXELS,      /* data: uint8 HWC pixels of height x width x channels (any size) */
    OC_INPUT_TENSOR       /* data: float model input [H][W][C], already preprocessed */
} oc_input_kind;

/* One image of a batch. The caller fills kind, data, size / height, width, channels; the
 * classifier fills status and error. */
typedef struct {
    oc_input_kind kind;
    const void *data;
    size_t size;
    int height, width, channels;
    oc_status status;   /* out: OC_OK, or why this image could not be classified */
    char error[192];    /* out: message when status != OC_OK */
} oc_input;

typedef struct oc_classifier oc_classifier;

/* A classifier over `model` (borrowed: it must outlive the classifier) for batches of up to
 * `max_batch` images; all buffers are allocated here, once. Not thread safe: one caller at a
 * time (the server gives each model one batching thread). */
OC_API oc_status oc_classifier_new(oc_classifier **out, oc_model *model, int max_batch);
OC_API void oc_classifier_free(oc_classifier *c);

/* Classifies n <= max_batch inputs in one forward pass. out receives n * topk predictions,
 * best first (image i at out[i * topk]); topk is clamped to the class count. Images that fail
 * (corrupt, too large, wrong size for a tensor) get their own status and message and
 * predictions with index -1; the call returns OC_OK when the batch ran, even if some images failed.
 * Errors: OC_ERR_ARG (n out of range, NULL pointers), OC_ERR_NOMEM. */
OC_API oc_status oc_classifier_run(oc_classifier *c, oc_input *inputs, int n, int topk,
                                   oc_prediction *out);

/* One-shot convenience: classify the image file at `path`; out receives topk predictions.
 * Errors: OC_ERR_IO, OC_ERR_FORMAT (not a decodable image), OC_ERR_NOMEM. */
OC_API oc_status oc_classify_file(oc_model *model, const char *path, int topk,
                                  oc_prediction *out);

/* ================================================================ serve
 * (section owned by src/serve)
 *
 * The HTTP server (libmicrohttpd): the web page, TorchServe-style POST /predictions/{model},
 * the KServe v2 / Triton routes, Prometheus /metrics. Requests for one model arriving within
 * max_delay_ms are classified as one batch. */

typedef struct oc_server oc_server;

/* Called once per request, from the server's threads, with one access-log line (no newline). */
typedef void (*oc_access_log_fn)(const char *line, void *user);

typedef struct {
    const char *host;        /* address to bind (default "127.0.0.1") */
    int port;                /* 0 picks a free port (see oc_server_port) */
    int max_batch;           /* images per forward pass (default 32) */
    int max_delay_ms;        /* how long a batch waits for more requests (default 5) */
    size_t max_body;         /* bytes; larger bodies get 413 (default 16 MiB) */
    int timeout_s;           /* idle connection timeout (default 15) */
    int max_connections;     /* default 4096 */
    int http_threads;        /* connection-handling threads (default 2) */
    oc_access_log_fn access_log; /* may be NULL */
    void *access_log_user;
} oc_server_config;

/* Fills the defaults above. */
OC_API void oc_server_config_init(oc_server_config *cfg);

OC_API oc_status oc_server_new(oc_server **out, const oc_server_config *cfg);
/* Serves `model` (borrowed: it must outlive the server) under `name` (letters, digits, '-',
 * '_', '.'). Call before oc_server_start. Errors: OC_ERR_ARG (bad or duplicate name). */
OC_API oc_status oc_server_add_model(oc_server *s, const char *name, oc_model *model);
/* Binds and starts serving on background threads. Errors: OC_ERR_IO (cannot bind). */
OC_API oc_status oc_server_start(oc_server *s);
/* The bound port (after start). */
OC_API int oc_server_port(const oc_server *s);
/* Graceful stop: stops accepting connections, lets requests in flight finish (up to
 * `grace_s` seconds), then stops. Safe to call once from any thread but a server thread. */
OC_API void oc_server_stop(oc_server *s, double grace_s);
OC_API void oc_server_free(oc_server *s);

#ifdef __cplusplus
}
#endif
#endif /* OCELOT_H */
