/* Private helpers of the data layer: the dataset object shared by the readers, the tar stream
 * reader, whole-file reading and channel conversion. */
#ifndef OC_DATA_H
#define OC_DATA_H

#include "core/core.h"

#include <stdio.h>

/* How samples are stored. */
typedef enum {
    DS_MEMORY = 0, /* one uint8 buffer [count][h][w][c] */
    DS_FILES       /* one image file per sample, decoded on get */
} ds_storage;

struct oc_dataset {
    char kind[16];
    ds_storage storage;
    int64_t count, n_train; /* [0, n_train) train, [n_train, count) test */
    int has_test;
    int num_classes;
    char **class_names;     /* [num_classes] */
    int32_t *labels;        /* [count] */
    /* DS_MEMORY */
    int h, w, c;
    uint8_t *pixels;        /* [count][h][w][c], malloc'd */
    /* DS_FILES */
    char **paths;           /* [count] */
    /* conversion on get */
    oc_decode_opts decode;
};

/* Allocates a dataset with room for `count` labels (and paths when storage is DS_FILES). */
oc_status ds_new(const char *kind, ds_storage storage, int64_t count, oc_dataset **out);
/* Copies names[n] as the class names. */
oc_status ds_set_classes(oc_dataset *ds, int n, const char *const *names);
/* Numbered class names "0" .. "n-1". */
oc_status ds_set_numbered_classes(oc_dataset *ds, int n);

/* Readers (spec.c dispatches to them). */
oc_status ds_open_cifar(const char *path, int hundred, const oc_dataset_opts *o, oc_dataset **out);
oc_status ds_open_idx(const char *dir, const char *kind, const oc_dataset_opts *o,
                      oc_dataset **out);
oc_status ds_open_folder(const char *dir, const oc_dataset_opts *o, oc_dataset **out);
oc_status ds_open_csv(const char *file, const oc_dataset_opts *o, oc_dataset **out);

/* Reads a whole file into a malloc'd buffer (max `limit` bytes; 0 = no limit). */
oc_status read_file(const char *path, size_t limit, uint8_t **buf, size_t *len);

/* Converts n pixels of src_c channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) to dst_c (1, 3 or
 * 4). src and dst must not overlap. */
void convert_channels(const uint8_t *src, int src_c, uint8_t *dst, int dst_c, size_t n,
                      oc_alpha_mode alpha);
/* Channel count the decoder returns for stored count `src_c` and requested `want` (0 = as
 * stored). */
int decoded_channels(int src_c, int want);

/* img (already pp->height x pp->width x pp->channels) -> (v/255 - mean) / std. */
void image_normalize(const oc_image *img, const oc_preprocess *pp, float *out);

/* Mixup of a batch x[n][len] in place (tmp: n*len floats, perm: n ints of scratch); writes
 * soft targets[n][K]. */
void augment_mixup(float alpha, oc_rng *r, int n, int K, size_t len, float *x, float *tmp,
                   int *perm, const int32_t *labels, float *targets);

/* Grows img to h x w x c without keeping contents. */
oc_status image_reserve(oc_image *img, int h, int w, int c);

/* ---- tar over plain / gzip / xz streams ---- */
typedef struct tar_reader tar_reader;
oc_status tar_open(const char *path, tar_reader **out);
/* Next regular file entry: *name (valid until the next call), *size. *done = 1 at the end. */
oc_status tar_next(tar_reader *t, const char **name, uint64_t *size, int *done);
/* Reads exactly n bytes of the current entry's data. Errors: truncated archive. */
oc_status tar_read(tar_reader *t, void *buf, size_t n);
void tar_close(tar_reader *t);

/* Decompressing stream over a file: gzip (zlib), xz (liblzma) or plain bytes, by magic. */
typedef struct zstream zstream;
oc_status zs_open(const char *path, zstream **out);
/* Reads up to n bytes; *got < n only at the end. */
oc_status zs_read(zstream *z, void *buf, size_t n, size_t *got);
void zs_close(zstream *z);

#endif /* OC_DATA_H */
