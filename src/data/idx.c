/* IDX files (MNIST, Fashion-MNIST): {train,t10k}-images-idx3-ubyte and -labels-idx1-ubyte,
 * gzipped or not (zlib's gzread reads both). Header: two zero bytes, type 0x08 (ubyte), the
 * number of dimensions, then big-endian u32 sizes. Magic, sizes and the exact data length are
 * all checked. */
#include "data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};

/* Finds DIR/<base> or DIR/<base>.gz. */
static int find_file(const char *dir, const char *base, char *path, size_t cap)
{
    struct stat sb;
    snprintf(path, cap, "%s/%s", dir, base);
    if (stat(path, &sb) == 0)
        return 1;
    snprintf(path, cap, "%s/%s.gz", dir, base);
    return stat(path, &sb) == 0;
}

static oc_status gz_exact(gzFile f, const char *path, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        unsigned k = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, k);
        if (got < 0) {
            int err;
            const char *m = gzerror(f, &err);
            return oc_fail(OC_ERR_FORMAT, "'%s': %s", path, m);
        }
        if (got == 0)
            return oc_fail(OC_ERR_FORMAT, "'%s': truncated IDX data", path);
        p += got;
        n -= (size_t)got;
    }
    return OC_OK;
}

/* Reads an IDX header with `ndim` dimensions into dims. */
static oc_status idx_header(gzFile f, const char *path, int ndim, uint32_t *dims)
{
    uint8_t h[4], d[12];
    oc_status st = gz_exact(f, path, h, 4);
    if (st != OC_OK)
        return st;
    if (h[0] != 0 || h[1] != 0 || h[2] != 0x08 || h[3] != ndim)
        return oc_fail(OC_ERR_FORMAT,
                       "'%s': bad IDX magic %02x%02x%02x%02x (expected 000008%02x: ubyte, %d "
                       "dimensions)",
                       path, h[0], h[1], h[2], h[3], ndim, ndim);
    if ((st = gz_exact(f, path, d, (size_t)ndim * 4)) != OC_OK)
        return st;
    for (int i = 0; i < ndim; i++)
        dims[i] = (uint32_t)d[4 * i] << 24 | (uint32_t)d[4 * i + 1] << 16 |
                  (uint32_t)d[4 * i + 2] << 8 | d[4 * i + 3];
    return OC_OK;
}

static oc_status at_end(gzFile f, const char *path)
{
    uint8_t extra;
    if (gzread(f, &extra, 1) != 0)
        return oc_fail(OC_ERR_FORMAT, "'%s': trailing data after the IDX payload", path);
    return OC_OK;
}

typedef struct {
    char images[4200], labels[4200];
} idx_pair;

/* Loads one images/labels pair into ds at sample offset `at` (ds already sized when `ds` is
 * given); with ds == NULL only reads the headers and returns the count. */
static oc_status load_pair(const idx_pair *p, oc_dataset *ds, int64_t at, int64_t *count,
                           uint32_t *hw)
{
    gzFile fi = NULL, fl = NULL;
    uint32_t di[3], dl[1];
    oc_status st;
    uint8_t *lab = NULL;
    fi = gzopen(p->images, "rb");
    if (!fi)
        return oc_fail(OC_ERR_IO, "open '%s': %s", p->images, strerror(errno));
    fl = gzopen(p->labels, "rb");
    if (!fl) {
        st = oc_fail(OC_ERR_IO, "open '%s': %s", p->labels, strerror(errno));
        goto done;
    }
    if ((st = idx_header(fi, p->images, 3, di)) != OC_OK ||
        (st = idx_header(fl, p->labels, 1, dl)) != OC_OK)
        goto done;
    if (di[0] != dl[0]) {
        st = oc_fail(OC_ERR_FORMAT, "'%s' has %u images but '%s' has %u labels", p->images,
                     di[0], p->labels, dl[0]);
        goto done;
    }
    if (di[0] == 0 || di[0] > (1u << 28) || di[1] == 0 || di[2] == 0 || di[1] > 4096 ||
        di[2] > 4096) {
        st = oc_fail(OC_ERR_FORMAT, "'%s': implausible IDX sizes %u x %u x %u", p->images, di[0],
                     di[1], di[2]);
        goto done;
    }
    *count = di[0];
    if (!ds) {
        hw[0] = di[1];
        hw[1] = di[2];
        goto done;
    }
    if (di[1] != (uint32_t)ds->h || di[2] != (uint32_t)ds->w) {
        st = oc_fail(OC_ERR_FORMAT, "'%s': images are %ux%u, the train images %dx%d", p->images,
                     di[1], di[2], ds->h, ds->w);
        goto done;
    }
    if ((st = gz_exact(fi, p->images, ds->pixels + (size_t)at * di[1] * di[2],
                       (size_t)di[0] * di[1] * di[2])) != OC_OK ||
        (st = at_end(fi, p->images)) != OC_OK)
        goto done;
    lab = malloc(di[0]);
    if (!lab) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = gz_exact(fl, p->labels, lab, di[0])) != OC_OK ||
        (st = at_end(fl, p->labels)) != OC_OK)
        goto done;
    for (uint32_t i = 0; i < di[0]; i++)
        ds->labels[at + i] = lab[i];
done:
    free(lab);
    if (fi)
        gzclose(fi);
    if (fl)
        gzclose(fl);
    return st;
}

oc_status ds_open_idx(const char *dir, const char *kind, const oc_dataset_opts *o,
                      oc_dataset **out)
{
    static const char *const prefix[2] = {"train", "t10k"};
    idx_pair pairs[2];
    int use[2] = {o->split != OC_SPLIT_TEST, o->split != OC_SPLIT_TRAIN};
    int64_t counts[2] = {0, 0}, total = 0;
    uint32_t hw[2] = {0, 0};
    oc_dataset *ds = NULL;
    oc_status st = OC_OK;
    int maxlab = -1;
    *out = NULL;
    for (int s = 0; s < 2; s++) {
        char base[64];
        if (!use[s])
            continue;
        snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix[s]);
        if (!find_file(dir, base, pairs[s].images, sizeof pairs[s].images))
            return oc_fail(OC_ERR_IO, "%s: no %s[.gz] in '%s'", kind, base, dir);
        snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix[s]);
        if (!find_file(dir, base, pairs[s].labels, sizeof pairs[s].labels))
            return oc_fail(OC_ERR_IO, "%s: no %s[.gz] in '%s'", kind, base, dir);
        if ((st = load_pair(&pairs[s], NULL, 0, &counts[s], hw)) != OC_OK)
            return st;
        total += counts[s];
    }
    if ((st = ds_new(kind, DS_MEMORY, total, &ds)) != OC_OK)
        return st;
    ds->h = (int)hw[0];
    ds->w = (int)hw[1];
    ds->c = 1;
    ds->has_test = 1;
    ds->n_train = counts[0];
    ds->pixels = malloc((size_t)total * hw[0] * hw[1]);
    if (!ds->pixels) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory for %lld images", (long long)total);
        goto done;
    }
    for (int s = 0; s < 2; s++)
        if (use[s] && (st = load_pair(&pairs[s], ds, s ? counts[0] : 0, &counts[s], hw)) != OC_OK)
            goto done;
    for (int64_t i = 0; i < total; i++)
        if (ds->labels[i] > maxlab)
            maxlab = ds->labels[i];
    if (!strcmp(kind, "fashion-mnist")) {
        if (maxlab > 9) {
            st = oc_fail(OC_ERR_FORMAT, "fashion-mnist: label %d out of range 0..9", maxlab);
            goto done;
        }
        st = ds_set_classes(ds, 10, fashion_names);
    } else {
        st = ds_set_numbered_classes(ds, !strcmp(kind, "mnist") && maxlab <= 9 ? 10 : maxlab + 1);
    }
done:
    if (st != OC_OK) {
        oc_dataset_free(ds);
        ds = NULL;
    }
    *out = ds;
    return st;
}
