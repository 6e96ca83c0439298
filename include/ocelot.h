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
 * gradient buffer. Errors: OC_ERR_ARG (no training forward before). */
OC_API oc_status oc_model_backward(oc_model *m, const float *dlogits);
OC_API void oc_model_zero_grad(oc_model *m);

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

/* ================================================================ data
 * (section owned by src/data) */

/* ================================================================ eval
 * (section owned by src/eval) */

/* ================================================================ serve
 * (section owned by src/serve) */

#ifdef __cplusplus
}
#endif
#endif /* OCELOT_H */
