/* The dataset object: spec parsing, accessors and get(i), shared by every reader. */
#include "data.h"

#include <stdlib.h>
#include <string.h>

#define FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

oc_status ds_new(const char *kind, ds_storage storage, int64_t count, oc_dataset **out)
{
    oc_dataset *ds = calloc(1, sizeof *ds);
    *out = NULL;
    if (!ds)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    snprintf(ds->kind, sizeof ds->kind, "%s", kind);
    ds->storage = storage;
    ds->count = count;
    ds->n_train = count;
    ds->labels = calloc(count ? (size_t)count : 1, sizeof *ds->labels);
    if (storage == DS_FILES)
        ds->paths = calloc(count ? (size_t)count : 1, sizeof *ds->paths);
    if (!ds->labels || (storage == DS_FILES && !ds->paths)) {
        oc_dataset_free(ds);
        return oc_fail(OC_ERR_NOMEM, "out of memory for %lld samples", (long long)count);
    }
    *out = ds;
    return OC_OK;
}

oc_status ds_set_classes(oc_dataset *ds, int n, const char *const *names)
{
    ds->class_names = calloc((size_t)n, sizeof *ds->class_names);
    if (!ds->class_names)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    ds->num_classes = n;
    for (int k = 0; k < n; k++)
        if (!(ds->class_names[k] = strdup(names[k])))
            return oc_fail(OC_ERR_NOMEM, "out of memory");
    return OC_OK;
}

oc_status ds_set_numbered_classes(oc_dataset *ds, int n)
{
    ds->class_names = calloc((size_t)n, sizeof *ds->class_names);
    if (!ds->class_names)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    ds->num_classes = n;
    for (int k = 0; k < n; k++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", k);
        if (!(ds->class_names[k] = strdup(buf)))
            return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    return OC_OK;
}

void oc_dataset_free(oc_dataset *ds)
{
    if (!ds)
        return;
    if (ds->class_names)
        for (int k = 0; k < ds->num_classes; k++)
            free(ds->class_names[k]);
    free(ds->class_names);
    if (ds->paths)
        for (int64_t i = 0; i < ds->count; i++)
            free(ds->paths[i]);
    free(ds->paths);
    free(ds->labels);
    free(ds->pixels);
    free(ds);
}

oc_status oc_dataset_open(const char *spec, const oc_dataset_opts *opts, oc_dataset **out)
{
    oc_dataset_opts o = {0};
    const char *colon, *arg;
    char kind[32];
    size_t kl;
    oc_status st;
    if (!out)
        return oc_fail(OC_ERR_ARG, "oc_dataset_open: out is NULL");
    *out = NULL;
    if (!spec || !*spec)
        return oc_fail(OC_ERR_ARG, "empty dataset spec");
    if (opts)
        o = *opts;
    if (o.channels != 0 && o.channels != 1 && o.channels != 3 && o.channels != 4)
        return oc_fail(OC_ERR_ARG, "dataset channels must be 0, 1, 3 or 4, not %d", o.channels);
    if (o.split < OC_SPLIT_ALL || o.split > OC_SPLIT_TEST)
        return oc_fail(OC_ERR_ARG, "bad split %d", (int)o.split);
    colon = strchr(spec, ':');
    kl = colon ? (size_t)(colon - spec) : strlen(spec);
    arg = colon ? colon + 1 : "";
    if (kl >= sizeof kind)
        return oc_fail(OC_ERR_ARG, "unknown dataset kind in spec '%s'", spec);
    memcpy(kind, spec, kl);
    kind[kl] = 0;
    if (strcmp(kind, "fashion-mnist") != 0 && !*arg)
        return oc_fail(OC_ERR_ARG, "dataset spec '%s' needs a path: %s:PATH", spec, kind);
    if (!strcmp(kind, "cifar10"))
        st = ds_open_cifar(arg, 0, &o, out);
    else if (!strcmp(kind, "cifar100"))
        st = ds_open_cifar(arg, 1, &o, out);
    else if (!strcmp(kind, "fashion-mnist"))
        st = ds_open_idx(*arg ? arg : FASHION_MNIST_DEFAULT_DIR, kind, &o, out);
    else if (!strcmp(kind, "mnist") || !strcmp(kind, "idx"))
        st = ds_open_idx(arg, kind, &o, out);
    else if (!strcmp(kind, "folder"))
        st = ds_open_folder(arg, &o, out);
    else if (!strcmp(kind, "csv"))
        st = ds_open_csv(arg, &o, out);
    else
        return oc_fail(OC_ERR_ARG,
                       "unknown dataset kind '%s' in spec '%s' (expected cifar10:, cifar100:, "
                       "fashion-mnist[:DIR], mnist:, idx:, folder: or csv:)",
                       kind, spec);
    if (st != OC_OK)
        return st;
    (*out)->decode.channels = o.channels;
    if ((*out)->storage == DS_FILES && !o.channels)
        (*out)->decode.channels = 3;
    (*out)->decode.max_pixels = o.max_pixels;
    (*out)->decode.alpha = OC_ALPHA_WHITE;
    return OC_OK;
}

int64_t oc_dataset_count(const oc_dataset *ds)
{
    return ds ? ds->count : 0;
}

int oc_dataset_num_classes(const oc_dataset *ds)
{
    return ds ? ds->num_classes : 0;
}

const char *oc_dataset_class_name(const oc_dataset *ds, int k)
{
    if (!ds || k < 0 || k >= ds->num_classes)
        return NULL;
    return ds->class_names[k];
}

const char *oc_dataset_kind(const oc_dataset *ds)
{
    return ds ? ds->kind : "";
}

int oc_dataset_has_test_split(const oc_dataset *ds)
{
    return ds ? ds->has_test : 0;
}

void oc_dataset_split_range(const oc_dataset *ds, oc_split split, int64_t *begin, int64_t *end)
{
    int64_t b = 0, e = ds ? ds->count : 0;
    if (ds && split == OC_SPLIT_TRAIN)
        e = ds->n_train;
    else if (ds && split == OC_SPLIT_TEST)
        b = ds->n_train;
    *begin = b;
    *end = e;
}

int32_t oc_dataset_label(const oc_dataset *ds, int64_t i)
{
    if (!ds || i < 0 || i >= ds->count)
        return -1;
    return ds->labels[i];
}

void oc_dataset_image_shape(const oc_dataset *ds, int *height, int *width, int *channels)
{
    int mem = ds && ds->storage == DS_MEMORY;
    if (height)
        *height = mem ? ds->h : 0;
    if (width)
        *width = mem ? ds->w : 0;
    if (channels)
        *channels = mem ? (ds->decode.channels ? ds->decode.channels : ds->c) : 0;
}

const char *oc_dataset_path(const oc_dataset *ds, int64_t i)
{
    if (!ds || ds->storage != DS_FILES || i < 0 || i >= ds->count)
        return NULL;
    return ds->paths[i];
}

oc_status oc_dataset_get(const oc_dataset *ds, int64_t i, oc_image *img, int32_t *label)
{
    oc_status st;
    if (!ds || !img)
        return oc_fail(OC_ERR_ARG, "oc_dataset_get: NULL argument");
    if (i < 0 || i >= ds->count)
        return oc_fail(OC_ERR_ARG, "sample index %lld out of range [0, %lld)", (long long)i,
                       (long long)ds->count);
    if (ds->storage == DS_MEMORY) {
        int c = ds->decode.channels ? ds->decode.channels : ds->c;
        size_t n = (size_t)ds->h * ds->w;
        if ((st = image_reserve(img, ds->h, ds->w, c)) != OC_OK)
            return st;
        convert_channels(ds->pixels + (size_t)i * n * ds->c, ds->c, img->data, c, n,
                         OC_ALPHA_WHITE);
    } else {
        st = oc_image_load(ds->paths[i], &ds->decode, img);
        if (st != OC_OK)
            return st;
    }
    if (label)
        *label = ds->labels[i];
    return OC_OK;
}

oc_status oc_dataset_indices(const oc_dataset *ds, oc_split split, int64_t **out, int64_t *n)
{
    int64_t b, e;
    if (!ds || !out || !n)
        return oc_fail(OC_ERR_ARG, "oc_dataset_indices: NULL argument");
    oc_dataset_split_range(ds, split, &b, &e);
    *out = malloc(sizeof **out * (size_t)(e - b > 0 ? e - b : 1));
    if (!*out)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    for (int64_t i = b; i < e; i++)
        (*out)[i - b] = i;
    *n = e - b;
    return OC_OK;
}
