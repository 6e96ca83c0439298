/* The safetensors container: a writer (atomic, aligned, gap-free) and a memory-mapping reader
 * that validates every field before anything is used (io.h states the contract). */
#include "io.h"

#include "core/core.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors stores little-endian data; this code copies host memory as is"
#endif

/* The data section starts at a multiple of this file offset. 64 covers every SIMD load and a
 * cache line; the mapping itself is page aligned. */
#define ST_ALIGN 64
/* JSON numbers are doubles: integers above 2^53 are not exact, so no offset or dimension may
 * exceed it (9 PB; nothing real comes close). */
#define ST_MAX_INT ((uint64_t)1 << 53)

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [OC_ST_F32] = {"F32", 4}, [OC_ST_BF16] = {"BF16", 2}, [OC_ST_I8] = {"I8", 1},
    [OC_ST_U8] = {"U8", 1},   [OC_ST_I32] = {"I32", 4},   [OC_ST_I64] = {"I64", 8},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *oc_st_dtype_name(oc_st_dtype dt)
{
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes[dt].name : "?";
}

size_t oc_st_dtype_size(oc_st_dtype dt)
{
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes[dt].size : 0;
}

static int dtype_from_name(const char *s, oc_st_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *out = (oc_st_dtype)i;
            return 1;
        }
    return 0;
}

/* Byte size of a tensor; false on overflow. */
static int tensor_bytes(oc_st_dtype dt, int ndim, const int64_t *shape, size_t *out)
{
    size_t n = oc_st_dtype_size(dt);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || (uint64_t)shape[d] > ST_MAX_INT || !oc_mul_ok(n, (size_t)shape[d], &n))
            return 0;
    if (n > ST_MAX_INT)
        return 0;
    *out = n;
    return 1;
}

/* ================================================================ writer */

typedef struct {
    const oc_st_tensor *tensors;
    const int *order;     /* [n] tensor indices in data order */
    const size_t *nbytes; /* [n] */
    int n;
    const char *header;   /* JSON text */
    size_t header_len;    /* padded length written (JSON + spaces) */
} st_writer;

static oc_status write_all(FILE *f, const void *p, size_t n)
{
    errno = 0;
    if (n && fwrite(p, 1, n, f) != n)
        return oc_fail(OC_ERR_IO, "%s", errno ? strerror(errno) : "short write");
    return OC_OK;
}

static oc_status st_write_body(void *ctx, void *file)
{
    st_writer *w = ctx;
    FILE *f = file;
    unsigned char len[8];
    size_t json_len = strlen(w->header);
    char spaces[ST_ALIGN];
    oc_status st;

    memset(spaces, ' ', sizeof spaces);

    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)w->header_len >> (8 * i));
    if ((st = write_all(f, len, 8)) != OC_OK || (st = write_all(f, w->header, json_len)) != OC_OK)
        return st;
    for (size_t pad = w->header_len - json_len; pad > 0;) {
        size_t k = pad < ST_ALIGN ? pad : ST_ALIGN;
        if ((st = write_all(f, spaces, k)) != OC_OK)
            return st;
        pad -= k;
    }
    for (int i = 0; i < w->n; i++) {
        const oc_st_tensor *t = &w->tensors[w->order[i]];
        if ((st = write_all(f, t->data, w->nbytes[w->order[i]])) != OC_OK)
            return st;
    }
    return OC_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names that must be unique: reports the first duplicate, or NULL. */
static const char *find_duplicate(const char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i]))
            return names[i];
    return NULL;
}

oc_status oc_st_write(const char *path, const oc_st_tensor *tensors, int n_tensors,
                      const oc_st_meta *meta, int n_meta)
{
    oc_status st = OC_OK;
    int *order = NULL;
    size_t *nbytes = NULL;
    const char **names = NULL;
    const char *dup;
    cJSON *root = NULL, *md;
    char *json = NULL;
    size_t offset = 0, json_len;
    st_writer w;

    if (!path || n_tensors < 0 || n_meta < 0 || (n_tensors && !tensors) || (n_meta && !meta))
        return oc_fail(OC_ERR_ARG, "safetensors write: bad arguments");
    order = malloc(sizeof *order * (size_t)(n_tensors + 1));
    nbytes = malloc(sizeof *nbytes * (size_t)(n_tensors + 1));
    names = malloc(sizeof *names * (size_t)(n_tensors + n_meta + 1));
    root = cJSON_CreateObject();
    if (!order || !nbytes || !names || !root) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }

    for (int i = 0; i < n_tensors; i++) {
        const oc_st_tensor *t = &tensors[i];
        if (!t->name || !*t->name || !strcmp(t->name, "__metadata__")) {
            st = oc_fail(OC_ERR_ARG, "tensor %d: name '%s' not allowed", i,
                         t->name ? t->name : "(null)");
            goto cleanup;
        }
        if ((int)t->dtype < 0 || (int)t->dtype >= N_DTYPES || t->ndim < 0 ||
            t->ndim > OC_ST_MAX_DIMS) {
            st = oc_fail(OC_ERR_ARG, "tensor '%s': bad dtype %d or ndim %d", t->name,
                         (int)t->dtype, t->ndim);
            goto cleanup;
        }
        if (!tensor_bytes(t->dtype, t->ndim, t->shape, &nbytes[i])) {
            st = oc_fail(OC_ERR_ARG, "tensor '%s': negative or too large shape", t->name);
            goto cleanup;
        }
        if (nbytes[i] && !t->data) {
            st = oc_fail(OC_ERR_ARG, "tensor '%s': no data", t->name);
            goto cleanup;
        }
        names[i] = t->name;
    }
    if ((dup = find_duplicate(names, n_tensors))) {
        st = oc_fail(OC_ERR_ARG, "duplicate tensor name '%s'", dup);
        goto cleanup;
    }
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value) {
            st = oc_fail(OC_ERR_ARG, "metadata entry %d has a NULL key or value", i);
            goto cleanup;
        }
        names[i] = meta[i].key;
    }
    if ((dup = find_duplicate(names, n_meta))) {
        st = oc_fail(OC_ERR_ARG, "duplicate metadata key '%s'", dup);
        goto cleanup;
    }

    /* Data order: decreasing element size, stable. Packed without gaps, every tensor then starts
     * at a multiple of its element size (the section starts 64-aligned). */
    {
        int k = 0;
        for (size_t es = 8; es >= 1; es /= 2)
            for (int i = 0; i < n_tensors; i++)
                if (oc_st_dtype_size(tensors[i].dtype) == es)
                    order[k++] = i;
        OC_ASSERT(k == n_tensors);
    }

    if (n_meta) {
        md = cJSON_AddObjectToObject(root, "__metadata__");
        if (!md)
            goto nomem;
        for (int i = 0; i < n_meta; i++)
            if (!cJSON_AddStringToObject(md, meta[i].key, meta[i].value))
                goto nomem;
    }
    for (int k = 0; k < n_tensors; k++) {
        const oc_st_tensor *t = &tensors[order[k]];
        cJSON *e = cJSON_AddObjectToObject(root, t->name), *shape, *offs;
        if (!e || !cJSON_AddStringToObject(e, "dtype", oc_st_dtype_name(t->dtype)) ||
            !(shape = cJSON_AddArrayToObject(e, "shape")) ||
            !(offs = cJSON_AddArrayToObject(e, "data_offsets")))
            goto nomem;
        for (int d = 0; d < t->ndim; d++) {
            cJSON *v = cJSON_CreateNumber((double)t->shape[d]);
            if (!v || !cJSON_AddItemToArray(shape, v))
                goto nomem;
        }
        if (offset > ST_MAX_INT - nbytes[order[k]]) {
            st = oc_fail(OC_ERR_ARG, "tensors too large for one file");
            goto cleanup;
        }
        cJSON *b = cJSON_CreateNumber((double)offset);
        if (!b || !cJSON_AddItemToArray(offs, b))
            goto nomem;
        offset += nbytes[order[k]];
        cJSON *en = cJSON_CreateNumber((double)offset);
        if (!en || !cJSON_AddItemToArray(offs, en))
            goto nomem;
    }
    json = cJSON_PrintUnformatted(root);
    if (!json)
        goto nomem;
    json_len = strlen(json);

    w.tensors = tensors;
    w.order = order;
    w.nbytes = nbytes;
    w.n = n_tensors;
    w.header = json;
    w.header_len = (8 + json_len + ST_ALIGN - 1) / ST_ALIGN * ST_ALIGN - 8;
    st = oc_atomic_write(path, st_write_body, &w);
    goto cleanup;

nomem:
    st = oc_fail(OC_ERR_NOMEM, "out of memory building the safetensors header");
cleanup:
    free(json);
    cJSON_Delete(root);
    free(names);
    free(nbytes);
    free(order);
    return st;
}

/* ================================================================ reader */

struct oc_st_file {
    const unsigned char *base; /* whole file */
    size_t size;
    int mapped;                /* base is our mmap */
    cJSON *root;               /* names and metadata strings point into it */
    oc_st_tensor *tensors;     /* [n] in data order */
    void **copies;             /* [n] aligned copies of misaligned tensors (or NULL) */
    int n;
    oc_st_meta *meta;
    int n_meta;
};

static void st_free(oc_st_file *f)
{
    if (!f)
        return;
    if (f->copies)
        for (int i = 0; i < f->n; i++)
            oc_free(f->copies[i]);
    free(f->copies);
    free(f->tensors);
    free(f->meta);
    cJSON_Delete(f->root);
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f);
}

void oc_st_close(oc_st_file *f)
{
    st_free(f);
}

/* A JSON number that is an exact non-negative integer <= 2^53. Returns 0 if it is a number that
 * is negative (*neg set), -1 if it is not a non-negative integer at all, 1 if fine. */
static int json_uint(const cJSON *v, uint64_t *out, int *neg)
{
    double d;
    *neg = 0;
    if (!cJSON_IsNumber(v))
        return -1;
    d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return -1;
    if (d < 0) {
        *neg = 1;
        return 0;
    }
    if (d > (double)ST_MAX_INT)
        return -1;
    *out = (uint64_t)d;
    return 1;
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "invalid";
}

typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->index - y->index;
}

/* Parses one tensor entry into t (name set by the caller); offsets into *sp. */
static oc_status parse_tensor(const char *what, const cJSON *e, oc_st_tensor *t, span *sp,
                              size_t data_size)
{
    const char *name = t->name;
    const cJSON *dt, *shape, *offs, *v;
    uint64_t b, en;
    size_t need;
    int neg, d, r;

    if (!cJSON_IsObject(e))
        return oc_fail(OC_ERR_FORMAT, "%s: tensor '%s': entry is %s, not an object", what, name,
                       json_type_name(e));
    dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt))
        return oc_fail(OC_ERR_FORMAT, "%s: tensor '%s': missing or non-string dtype", what, name);
    if (!dtype_from_name(dt->valuestring, &t->dtype))
        return oc_fail(OC_ERR_FORMAT,
                       "%s: tensor '%s': unknown dtype '%.32s' (supported: F32, BF16, I8, U8, "
                       "I32, I64)",
                       what, name, dt->valuestring);

    shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape))
        return oc_fail(OC_ERR_FORMAT, "%s: tensor '%s': shape is missing or not a list", what,
                       name);
    d = cJSON_GetArraySize(shape);
    if (d > OC_ST_MAX_DIMS)
        return oc_fail(OC_ERR_FORMAT, "%s: tensor '%s': shape has %d dimensions (at most %d)",
                       what, name, d, OC_ST_MAX_DIMS);
    t->ndim = d;
    d = 0;
    cJSON_ArrayForEach(v, shape)
    {
        uint64_t u = 0;
        r = json_uint(v, &u, &neg);
        if (r <= 0)
            return oc_fail(OC_ERR_FORMAT,
                           "%s: tensor '%s': shape must be a list of non-negative integers "
                           "(dimension %d is %s)",
                           what, name, d, neg ? "negative" : "not an integer");
        t->shape[d++] = (int64_t)u;
    }
    if (!tensor_bytes(t->dtype, t->ndim, t->shape, &need))
        return oc_fail(OC_ERR_FORMAT, "%s: tensor '%s': shape size overflows (absurd shape)", what,
                       name);

    offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        json_uint(cJSON_GetArrayItem(offs, 0), &b, &neg) <= 0 ||
        json_uint(cJSON_GetArrayItem(offs, 1), &en, &neg) <= 0)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets must be [begin, end] with non-negative "
                       "integers",
                       what, name);
    if (b > en)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] have begin > end", what, name,
                       (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets end %llu is past the end of the data "
                       "section (%zu bytes; truncated?)",
                       what, name, (unsigned long long)en, data_size);
    if (en - b != need) {
        char dims[OC_ST_MAX_DIMS * 22 + 1];
        size_t used = 0;
        dims[0] = 0;
        for (int i = 0; i < t->ndim; i++)
            used += (size_t)snprintf(dims + used, sizeof dims - used, "%s%lld", i ? ", " : "",
                                     (long long)t->shape[i]);
        return oc_fail(OC_ERR_FORMAT,
                       "%s: tensor '%s': holds %llu bytes (data_offsets [%llu, %llu]) but %s "
                       "shape [%s] needs %zu",
                       what, name, (unsigned long long)(en - b), (unsigned long long)b,
                       (unsigned long long)en, dtypes[t->dtype].name, dims, need);
    }
    t->nbytes = need;
    sp->begin = b;
    sp->end = en;
    return OC_OK;
}

static oc_status parse_metadata(const char *what, oc_st_file *f, const cJSON *md)
{
    const cJSON *v;
    int k = 0;
    if (!cJSON_IsObject(md))
        return oc_fail(OC_ERR_FORMAT, "%s: __metadata__ is %s, not an object of strings", what,
                       json_type_name(md));
    f->n_meta = cJSON_GetArraySize(md);
    f->meta = calloc((size_t)f->n_meta + 1, sizeof *f->meta);
    if (!f->meta)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    cJSON_ArrayForEach(v, md)
    {
        if (!cJSON_IsString(v))
            return oc_fail(OC_ERR_FORMAT, "%s: metadata value of '%.64s' is %s, not a string",
                           what, v->string, json_type_name(v));
        f->meta[k].key = v->string;
        f->meta[k].value = v->valuestring;
        k++;
    }
    return OC_OK;
}

static oc_status parse(const char *what, const unsigned char *base, size_t size, oc_st_file *f)
{
    uint64_t hlen = 0;
    const char *hdr, *end = NULL;
    const unsigned char *data;
    size_t data_size;
    const cJSON *e;
    span *spans = NULL;
    const char **names = NULL;
    const char *dup;
    int n_entries, k;
    oc_status st = OC_OK;

    if (size < 8)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: file is %zu bytes, too short for the 8-byte header length "
                       "(truncated?)",
                       what, size);
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)base[i] << (8 * i);
    if (hlen > OC_ST_MAX_HEADER)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: header length %llu is absurd (at most %llu); not a safetensors file?",
                       what, (unsigned long long)hlen, (unsigned long long)OC_ST_MAX_HEADER);
    if (hlen > size - 8)
        return oc_fail(OC_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the file (%zu bytes; "
                       "truncated?)",
                       what, (unsigned long long)hlen, size);
    if (hlen < 2)
        return oc_fail(OC_ERR_FORMAT, "%s: header of %llu bytes is not valid JSON", what,
                       (unsigned long long)hlen);
    hdr = (const char *)base + 8;
    data = base + 8 + hlen;
    data_size = size - 8 - (size_t)hlen;

    f->root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!f->root)
        return oc_fail(OC_ERR_FORMAT, "%s: header is not valid JSON (error near byte %td of %llu)",
                       what, end ? end - hdr : (ptrdiff_t)-1, (unsigned long long)hlen);
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return oc_fail(OC_ERR_FORMAT,
                           "%s: header is not valid JSON (garbage after the object at byte %td)",
                           what, p - hdr);
    if (!cJSON_IsObject(f->root))
        return oc_fail(OC_ERR_FORMAT, "%s: header is %s, not a JSON object", what,
                       json_type_name(f->root));

    n_entries = cJSON_GetArraySize(f->root);
    f->tensors = calloc((size_t)n_entries + 1, sizeof *f->tensors);
    f->copies = calloc((size_t)n_entries + 1, sizeof *f->copies);
    spans = malloc(sizeof *spans * ((size_t)n_entries + 1));
    names = malloc(sizeof *names * ((size_t)n_entries + 1));
    if (!f->tensors || !f->copies || !spans || !names) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    k = 0;
    cJSON_ArrayForEach(e, f->root)
    {
        if (!strcmp(e->string, "__metadata__")) {
            if (f->meta) {
                st = oc_fail(OC_ERR_FORMAT, "%s: duplicate __metadata__", what);
                goto cleanup;
            }
            if ((st = parse_metadata(what, f, e)) != OC_OK)
                goto cleanup;
            continue;
        }
        f->tensors[k].name = e->string;
        if ((st = parse_tensor(what, e, &f->tensors[k], &spans[k], data_size)) != OC_OK)
            goto cleanup;
        spans[k].index = k;
        names[k] = e->string;
        k++;
    }
    f->n = k;
    if ((dup = find_duplicate(names, f->n))) {
        st = oc_fail(OC_ERR_FORMAT, "%s: duplicate tensor name '%.64s'", what, dup);
        goto cleanup;
    }
    if (f->meta) {
        const char **keys = malloc(sizeof *keys * ((size_t)f->n_meta + 1));
        if (!keys) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        for (int i = 0; i < f->n_meta; i++)
            keys[i] = f->meta[i].key;
        dup = find_duplicate(keys, f->n_meta);
        if (dup)
            st = oc_fail(OC_ERR_FORMAT, "%s: duplicate metadata key '%.64s'", what, dup);
        free(keys);
        if (st != OC_OK)
            goto cleanup;
    }

    /* Overlap: sorted by begin, each non-empty tensor must start at or after the furthest end
     * seen so far. */
    qsort(spans, (size_t)f->n, sizeof *spans, cmp_span);
    {
        uint64_t max_end = 0;
        int max_i = -1;
        for (int i = 0; i < f->n; i++) {
            if (spans[i].begin == spans[i].end)
                continue;
            if (max_i >= 0 && spans[i].begin < max_end) {
                st = oc_fail(OC_ERR_FORMAT,
                             "%s: tensors '%.64s' and '%.64s' overlap (bytes [%llu, %llu) and "
                             "[%llu, %llu) of the data section)",
                             what, f->tensors[spans[max_i].index].name,
                             f->tensors[spans[i].index].name,
                             (unsigned long long)spans[max_i].begin,
                             (unsigned long long)spans[max_i].end,
                             (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
                goto cleanup;
            }
            if (spans[i].end > max_end) {
                max_end = spans[i].end;
                max_i = i;
            }
        }
    }

    /* Reorder into data order and point at the bytes: in place when aligned, else a copy. */
    {
        oc_st_tensor *sorted = calloc((size_t)f->n + 1, sizeof *sorted);
        if (!sorted) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        for (int i = 0; i < f->n; i++) {
            sorted[i] = f->tensors[spans[i].index];
            sorted[i].data = data + spans[i].begin;
        }
        free(f->tensors);
        f->tensors = sorted;
    }
    for (int i = 0; i < f->n; i++) {
        oc_st_tensor *t = &f->tensors[i];
        if ((uintptr_t)t->data % oc_st_dtype_size(t->dtype) == 0)
            continue;
        f->copies[i] = oc_alloc(t->nbytes);
        if (!f->copies[i]) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory copying misaligned tensor '%s'", t->name);
            goto cleanup;
        }
        memcpy(f->copies[i], t->data, t->nbytes);
        t->data = f->copies[i];
    }

cleanup:
    free(names);
    free(spans);
    return st;
}

oc_status oc_st_open_memory(const void *buf, size_t len, const char *what, oc_st_file **out)
{
    oc_st_file *f;
    oc_status st;
    if (!out)
        return oc_fail(OC_ERR_ARG, "safetensors open: NULL output");
    *out = NULL;
    if (!buf && len)
        return oc_fail(OC_ERR_ARG, "safetensors open: NULL buffer");
    f = calloc(1, sizeof *f);
    if (!f)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    f->base = buf;
    f->size = len;
    st = parse(what ? what : "buffer", f->base, f->size, f);
    if (st != OC_OK) {
        st_free(f);
        return st;
    }
    *out = f;
    return OC_OK;
}

oc_status oc_st_open(const char *path, oc_st_file **out)
{
    oc_st_file *f = NULL;
    struct stat sb;
    oc_status st;
    int fd;
    char what[600];

    if (!out || !path)
        return oc_fail(OC_ERR_ARG, "safetensors open: NULL argument");
    *out = NULL;
    snprintf(what, sizeof what, "'%.512s'", path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return oc_fail(OC_ERR_IO, "open %s: %s", what, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        st = oc_fail(OC_ERR_IO, "stat %s: %s", what, strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = oc_fail(OC_ERR_IO, "open %s: not a regular file", what);
        goto close_fd;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto close_fd;
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            st = oc_fail(OC_ERR_IO, "mmap %s: %s", what, strerror(errno));
            goto free_file;
        }
        f->base = p;
        f->mapped = 1;
    }
    st = parse(what, f->base, f->size, f);
    if (st != OC_OK)
        goto free_file;
    close(fd);
    *out = f;
    return OC_OK;

free_file:
    st_free(f);
close_fd:
    close(fd);
    return st;
}

int oc_st_num_tensors(const oc_st_file *f)
{
    return f->n;
}

const oc_st_tensor *oc_st_tensor_at(const oc_st_file *f, int i)
{
    return i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const oc_st_tensor *oc_st_find(const oc_st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name))
            return &f->tensors[i];
    return NULL;
}

int oc_st_num_meta(const oc_st_file *f)
{
    return f->n_meta;
}

const oc_st_meta *oc_st_meta_at(const oc_st_file *f, int i)
{
    return i >= 0 && i < f->n_meta ? &f->meta[i] : NULL;
}

const char *oc_st_meta_get(const oc_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[i].key, key))
            return f->meta[i].value;
    return NULL;
}
