/* Private io API: the generic safetensors layer, atomic file writes and training checkpoints.
 *
 * Safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 header
 * length N, N bytes of JSON header, then the data section. The header maps each tensor name to
 * {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data
 * section) and may hold "__metadata__": {"key": "string value", ...}.
 *
 * What ocelot writes: the header is padded with spaces so the data section starts on a 64-byte
 * file offset, and tensors are packed without gaps in order of decreasing element size, so every
 * tensor is aligned to its element size inside a page-aligned mapping (and the file stays valid
 * for the reference reader, which rejects gaps). The layout of ocelot's model file on top of this
 * is docs/model-file.md.
 */
#ifndef OC_IO_H
#define OC_IO_H

#include "ocelot.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- safetensors */

typedef enum {
    OC_ST_F32 = 0,
    OC_ST_BF16,
    OC_ST_I8,
    OC_ST_U8,
    OC_ST_I32,
    OC_ST_I64
} oc_st_dtype;

#define OC_ST_MAX_DIMS 8
/* Largest header accepted (the reference implementation's limit too). */
#define OC_ST_MAX_HEADER ((uint64_t)100 << 20)

/* One named tensor. For writing, the caller fills every field (`data` is borrowed for the
 * duration of the call; `nbytes` is ignored and computed from dtype and shape). For reading,
 * `name` and `data` point into the open file (valid until oc_st_close) and `nbytes` is set. */
typedef struct {
    const char *name;
    oc_st_dtype dtype;
    int ndim;
    int64_t shape[OC_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} oc_st_tensor;

/* One metadata entry: both strings (the format stores only strings; JSON goes in as text). */
typedef struct {
    const char *key;
    const char *value;
} oc_st_meta;

/* The format's dtype name ("F32", "BF16", "I8", "U8", "I32", "I64") and element size. */
const char *oc_st_dtype_name(oc_st_dtype dt);
size_t oc_st_dtype_size(oc_st_dtype dt);

/* Writes a safetensors file ATOMICALLY (oc_atomic_write): either `path` ends up holding the
 * complete new file or it is left as it was. Names must be unique, non-empty and not
 * "__metadata__"; metadata keys unique. Errors: OC_ERR_ARG (bad names, dtype, shape), OC_ERR_NOMEM,
 * OC_ERR_IO (with the path and the system's reason). */
oc_status oc_st_write(const char *path, const oc_st_tensor *tensors, int n_tensors,
                      const oc_st_meta *meta, int n_meta);

/* An open, fully validated safetensors file. Not thread safe to open/close concurrently, but
 * once open every getter is read-only and may be called from any thread. */
typedef struct oc_st_file oc_st_file;

/* Memory-maps `path` read-only and validates everything before returning: length prefix, header
 * size, JSON syntax, that the header is an object, every tensor entry (known dtype, shape a list
 * of at most OC_ST_MAX_DIMS non-negative integers whose byte size does not overflow, offsets
 * [begin, end] with begin <= end inside the data section and end - begin == numel * dtype size),
 * unique names, no two tensors overlapping, metadata an object of strings. Tensor data is used in
 * place from the mapping when it is aligned to its element size and copied to an aligned buffer
 * otherwise (files written by other tools). Errors: OC_ERR_IO (open, stat, mmap), OC_ERR_FORMAT
 * (the message names the file, the tensor or key, and the problem), OC_ERR_NOMEM. */
oc_status oc_st_open(const char *path, oc_st_file **out);
/* Same over a buffer in memory, which is BORROWED: it must outlive the returned file. `what`
 * names the source in error messages (NULL: "buffer"). */
oc_status oc_st_open_memory(const void *buf, size_t len, const char *what, oc_st_file **out);
void oc_st_close(oc_st_file *f);

/* Tensors in data-offset order. */
int oc_st_num_tensors(const oc_st_file *f);
const oc_st_tensor *oc_st_tensor_at(const oc_st_file *f, int i);
/* The tensor called `name`, or NULL. */
const oc_st_tensor *oc_st_find(const oc_st_file *f, const char *name);
/* Metadata (in header order); get returns NULL when absent. */
int oc_st_num_meta(const oc_st_file *f);
const oc_st_meta *oc_st_meta_at(const oc_st_file *f, int i);
const char *oc_st_meta_get(const oc_st_file *f, const char *key);

/* ---------------------------------------------------------------- atomic writes */

/* Streams a file's content: called once with the open FILE; returns OC_OK or a failure (with
 * oc_fail). */
typedef oc_status (*oc_write_fn)(void *ctx, void *file /* FILE * */);

/* Writes `path` atomically: creates a temporary file beside it (same directory, so rename is
 * atomic), lets `fn` fill it, then fflush + fsync + rename over `path` + fsync of the directory.
 * On any failure the temporary file is removed and an existing `path` is untouched. The new file
 * gets mode 0644. Errors: OC_ERR_IO naming the path and the reason, or whatever `fn` returned. */
oc_status oc_atomic_write(const char *path, oc_write_fn fn, void *ctx);

/* ---------------------------------------------------------------- checkpoints
 *
 * A checkpoint is a model file (docs/model-file.md) plus the training position: extra named
 * tensors (optimizer state: momentum buffers, Adam moments, EMA weights ...) stored under the
 * prefix OC_CKPT_PREFIX, and a JSON document chosen by the training loop (epoch, step, RNG
 * states as strings, config) stored as the metadata value "checkpoint". oc_model_load reads a
 * checkpoint as a plain model (it skips the prefixed tensors), so `eval` and `predict` accept
 * checkpoints. The dropout stream of the model (oc_model_rng) is saved and restored too. */

#define OC_CKPT_PREFIX "__checkpoint__."

typedef struct oc_checkpoint oc_checkpoint;

/* Saves `m` (parameters, state, graph, classes, preprocessing, metadata), `n_extra` extra
 * tensors (names without the prefix; data borrowed for the call) and `meta_json` (a JSON text;
 * NULL stores "{}") atomically to `path`. Errors: OC_ERR_ARG (duplicate or bad names, invalid
 * JSON), OC_ERR_NOMEM, OC_ERR_IO. */
oc_status oc_checkpoint_save(const char *path, const oc_model *m, const oc_st_tensor *extra,
                             int n_extra, const char *meta_json);

/* Loads a checkpoint: *model gets the model (as oc_model_load, plus its dropout RNG), *ckpt a
 * handle on the extra tensors and JSON (the file stays mapped until oc_checkpoint_free; the
 * model does not depend on it). Errors as oc_model_load, and OC_ERR_FORMAT when the file is a
 * model file but not a checkpoint. On failure both outputs are NULL. */
oc_status oc_checkpoint_load(const char *path, oc_model **model, oc_checkpoint **ckpt);
void oc_checkpoint_free(oc_checkpoint *c);

/* The JSON text given to oc_checkpoint_save (valid until oc_checkpoint_free). */
const char *oc_checkpoint_meta(const oc_checkpoint *c);
/* Extra tensors, named as given to save (without the prefix); data is read-only, valid until
 * oc_checkpoint_free. */
int oc_checkpoint_num_tensors(const oc_checkpoint *c);
const oc_st_tensor *oc_checkpoint_tensor(const oc_checkpoint *c, int i);
const oc_st_tensor *oc_checkpoint_find(const oc_checkpoint *c, const char *name);
/* Copies extra tensor `name` into dst[n] after checking that it exists, is F32 and holds
 * exactly n values. Errors: OC_ERR_FORMAT naming the tensor and what differs. */
oc_status oc_checkpoint_read_f32(const oc_checkpoint *c, const char *name, float *dst, size_t n);

/* RNG states as text for the checkpoint JSON: 64 lower-case hex digits (the four state words),
 * NUL-terminated, so no precision is lost in JSON numbers. */
#define OC_RNG_TEXT_LEN 65
void oc_rng_to_text(const oc_rng *r, char out[OC_RNG_TEXT_LEN]);
/* Parses what oc_rng_to_text wrote. Errors: OC_ERR_FORMAT. */
oc_status oc_rng_from_text(const char *s, oc_rng *r);

#endif /* OC_IO_H */
