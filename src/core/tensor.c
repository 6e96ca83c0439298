/* Dense tensors. */
#include "core.h"

#include <string.h>

size_t oc_dtype_size(oc_dtype dt)
{
    switch (dt) {
    case OC_DTYPE_F32: return 4;
    case OC_DTYPE_BF16: return 2;
    case OC_DTYPE_I8: return 1;
    case OC_DTYPE_U8: return 1;
    case OC_DTYPE_I32: return 4;
    }
    return 0;
}

const char *oc_dtype_name(oc_dtype dt)
{
    switch (dt) {
    case OC_DTYPE_F32: return "f32";
    case OC_DTYPE_BF16: return "bf16";
    case OC_DTYPE_I8: return "i8";
    case OC_DTYPE_U8: return "u8";
    case OC_DTYPE_I32: return "i32";
    }
    return "?";
}

int64_t oc_tensor_numel(const oc_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t oc_tensor_nbytes(const oc_tensor *t)
{
    return (size_t)oc_tensor_numel(t) * oc_dtype_size(t->dtype);
}

oc_tensor oc_tensor_view(void *data, oc_dtype dt, int ndim, const int64_t *shape)
{
    oc_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    for (int i = 0; i < ndim && i < OC_MAX_DIMS; i++)
        t.shape[i] = shape[i];
    t.data = data;
    return t;
}

oc_status oc_tensor_new(oc_tensor **out, oc_dtype dt, int ndim, const int64_t *shape)
{
    size_t bytes = oc_dtype_size(dt);
    oc_tensor *t;

    *out = NULL;
    if (ndim < 0 || ndim > OC_MAX_DIMS || bytes == 0)
        return oc_fail(OC_ERR_ARG, "tensor: ndim %d out of range 0..%d", ndim, OC_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return oc_fail(OC_ERR_ARG, "tensor: negative dimension %lld", (long long)shape[i]);
        if (!oc_mul_ok(bytes, (size_t)shape[i], &bytes))
            return oc_fail(OC_ERR_NOMEM, "tensor: size overflows");
    }
    t = oc_alloc(sizeof *t);
    if (!t)
        return oc_fail(OC_ERR_NOMEM, "tensor: out of memory");
    *t = oc_tensor_view(NULL, dt, ndim, shape);
    t->data = oc_alloc_zero(bytes);
    if (!t->data) {
        oc_free(t);
        return oc_fail(OC_ERR_NOMEM, "tensor: out of memory for %zu bytes", bytes);
    }
    t->owned = 1;
    *out = t;
    return OC_OK;
}

void oc_tensor_free(oc_tensor *t)
{
    if (!t)
        return;
    if (t->owned)
        oc_free(t->data);
    oc_free(t);
}
