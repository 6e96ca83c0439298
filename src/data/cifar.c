/* CIFAR-10 / CIFAR-100 binary batches, from a directory or straight from the .tar/.tar.gz/.tar.xz
 * archive. A record is the label byte(s) then 1024 R, 1024 G, 1024 B bytes (32x32 row-major);
 * CIFAR-100 has two label bytes, coarse then fine, and we use the fine label. Records are
 * transposed to HWC while loading into the dataset's single pixel buffer: train files first
 * (in batch order), then the test file. */
#include "data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_PIXELS 3072

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

static const char *const cifar100_names[100] = {
    "apple",      "aquarium_fish", "baby",         "bear",       "beaver",      "bed",
    "bee",        "beetle",        "bicycle",      "bottle",     "bowl",        "boy",
    "bridge",     "bus",           "butterfly",    "camel",      "can",         "castle",
    "caterpillar", "cattle",       "chair",        "chimpanzee", "clock",       "cloud",
    "cockroach",  "couch",         "crab",         "crocodile",  "cup",         "dinosaur",
    "dolphin",    "elephant",      "flatfish",     "forest",     "fox",         "girl",
    "hamster",    "house",         "kangaroo",     "keyboard",   "lamp",        "lawn_mower",
    "leopard",    "lion",          "lizard",       "lobster",    "man",         "maple_tree",
    "motorcycle", "mountain",      "mouse",        "mushroom",   "oak_tree",    "orange",
    "orchid",     "otter",         "palm_tree",    "pear",       "pickup_truck", "pine_tree",
    "plain",      "plate",         "poppy",        "porcupine",  "possum",      "rabbit",
    "raccoon",    "ray",           "road",         "rocket",     "rose",        "sea",
    "seal",       "shark",         "shrew",        "skunk",      "skyscraper",  "snail",
    "snake",      "spider",        "squirrel",     "streetcar",  "sunflower",   "sweet_pepper",
    "table",      "tank",          "telephone",    "television", "tiger",       "tractor",
    "train",      "trout",         "tulip",        "turtle",     "wardrobe",    "whale",
    "willow_tree", "wolf",         "woman",        "worm"};

#define MAX_FILES 6

typedef struct {
    int hundred;
    int rec;              /* record bytes */
    int label_off;        /* label byte used */
    int nfiles;
    const char *files[MAX_FILES]; /* wanted, in dataset order */
    int is_test[MAX_FILES];
    /* per wanted file: where its records landed in the growing buffer */
    int64_t first[MAX_FILES], n[MAX_FILES];
    int seen[MAX_FILES];
    uint8_t *pix;         /* growing [records][32][32][3] */
    int32_t *lab;
    int64_t nrec, cap;
    char names_text[4096];
    int have_names;
} cifar_load;

static void wanted_files(cifar_load *L, oc_split split)
{
    static const char *const train10[5] = {"data_batch_1.bin", "data_batch_2.bin",
                                           "data_batch_3.bin", "data_batch_4.bin",
                                           "data_batch_5.bin"};
    L->nfiles = 0;
    if (split != OC_SPLIT_TEST) {
        if (L->hundred) {
            L->files[L->nfiles++] = "train.bin";
        } else {
            for (int i = 0; i < 5; i++)
                L->files[L->nfiles++] = train10[i];
        }
    }
    if (split != OC_SPLIT_TRAIN) {
        L->is_test[L->nfiles] = 1;
        L->files[L->nfiles++] = L->hundred ? "test.bin" : "test_batch.bin";
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int file_slot(const cifar_load *L, const char *name)
{
    for (int i = 0; i < L->nfiles; i++)
        if (!strcmp(base_name(name), L->files[i]))
            return i;
    return -1;
}

static oc_status grow(cifar_load *L, int64_t more)
{
    int64_t need = L->nrec + more;
    if (need > L->cap) {
        int64_t cap = L->cap ? L->cap : 10000;
        uint8_t *p;
        int32_t *q;
        while (cap < need)
            cap *= 2;
        p = realloc(L->pix, (size_t)cap * CIFAR_PIXELS);
        if (!p)
            return oc_fail(OC_ERR_NOMEM, "out of memory for %lld CIFAR images", (long long)cap);
        L->pix = p;
        q = realloc(L->lab, (size_t)cap * sizeof *q);
        if (!q)
            return oc_fail(OC_ERR_NOMEM, "out of memory");
        L->lab = q;
        L->cap = cap;
    }
    return OC_OK;
}

typedef oc_status (*read_fn)(void *src, void *buf, size_t n);

/* Reads `size` bytes of file `slot` as records through `rd`. */
static oc_status read_batch(cifar_load *L, int slot, const char *name, uint64_t size, read_fn rd,
                            void *src)
{
    uint8_t *rec;
    int64_t n;
    oc_status st;
    int classes = L->hundred ? 100 : 10;
    if (size == 0 || size % (uint64_t)L->rec != 0)
        return oc_fail(OC_ERR_FORMAT,
                       "truncated CIFAR batch '%s': %llu bytes is not a whole number of "
                       "%d-byte records",
                       name, (unsigned long long)size, L->rec);
    if (L->seen[slot])
        return oc_fail(OC_ERR_FORMAT, "CIFAR batch '%s' appears twice", name);
    n = (int64_t)(size / (uint64_t)L->rec);
    if ((st = grow(L, n)) != OC_OK)
        return st;
    rec = malloc((size_t)L->rec);
    if (!rec)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    L->first[slot] = L->nrec;
    for (int64_t r = 0; r < n; r++) {
        uint8_t *dst = L->pix + (size_t)(L->nrec + r) * CIFAR_PIXELS;
        const uint8_t *planes;
        if ((st = rd(src, rec, (size_t)L->rec)) != OC_OK)
            break;
        if (rec[L->label_off] >= classes) {
            st = oc_fail(OC_ERR_FORMAT, "CIFAR batch '%s': record %lld has label %d (>= %d)",
                         name, (long long)r, rec[L->label_off], classes);
            break;
        }
        L->lab[L->nrec + r] = rec[L->label_off];
        planes = rec + (L->hundred ? 2 : 1);
        for (int p = 0; p < 1024; p++) {
            dst[3 * p] = planes[p];
            dst[3 * p + 1] = planes[1024 + p];
            dst[3 * p + 2] = planes[2048 + p];
        }
    }
    free(rec);
    if (st != OC_OK)
        return st;
    L->n[slot] = n;
    L->seen[slot] = 1;
    L->nrec += n;
    return OC_OK;
}

static oc_status file_read(void *src, void *buf, size_t n)
{
    FILE *f = src;
    if (fread(buf, 1, n, f) != n)
        return oc_fail(OC_ERR_IO, "short read");
    return OC_OK;
}

static oc_status tar_rd(void *src, void *buf, size_t n)
{
    return tar_read(src, buf, n);
}

static void take_names(cifar_load *L, const char *text, size_t len)
{
    if (len >= sizeof L->names_text)
        return;
    memcpy(L->names_text, text, len);
    L->names_text[len] = 0;
    L->have_names = 1;
}

static oc_status load_dir(cifar_load *L, const char *dir)
{
    char sub[4096], path[4200];
    struct stat sb;
    const char *base = dir;
    const char *subname = L->hundred ? "cifar-100-binary" : "cifar-10-batches-bin";
    snprintf(sub, sizeof sub, "%s/%s", dir, subname);
    snprintf(path, sizeof path, "%s/%s", dir, L->files[0]);
    if (stat(path, &sb) != 0 && stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
        base = sub;
    for (int i = 0; i < L->nfiles; i++) {
        FILE *f;
        oc_status st;
        snprintf(path, sizeof path, "%s/%s", base, L->files[i]);
        if (stat(path, &sb) != 0)
            return oc_fail(OC_ERR_IO, "CIFAR batch '%s' is missing: %s", path, strerror(errno));
        f = fopen(path, "rb");
        if (!f)
            return oc_fail(OC_ERR_IO, "open '%s': %s", path, strerror(errno));
        st = read_batch(L, i, path, (uint64_t)sb.st_size, file_read, f);
        fclose(f);
        if (st != OC_OK)
            return oc_fail_context(st, "'%s'", path);
    }
    {
        uint8_t *text;
        size_t len;
        snprintf(path, sizeof path, "%s/%s", base,
                 L->hundred ? "fine_label_names.txt" : "batches.meta.txt");
        if (read_file(path, 1 << 16, &text, &len) == OC_OK) {
            take_names(L, (const char *)text, len);
            free(text);
        }
    }
    return OC_OK;
}

static oc_status load_tar(cifar_load *L, const char *archive)
{
    tar_reader *t;
    oc_status st = tar_open(archive, &t);
    const char *meta = L->hundred ? "fine_label_names.txt" : "batches.meta.txt";
    if (st != OC_OK)
        return st;
    for (;;) {
        const char *name;
        uint64_t size;
        int end, slot;
        if ((st = tar_next(t, &name, &size, &end)) != OC_OK || end)
            break;
        slot = file_slot(L, name);
        if (slot >= 0) {
            char nm[256];
            snprintf(nm, sizeof nm, "%s", name);
            if ((st = read_batch(L, slot, nm, size, tar_rd, t)) != OC_OK)
                break;
        } else if (!strcmp(base_name(name), meta) && size < 4096) {
            char text[4096];
            if ((st = tar_read(t, text, (size_t)size)) != OC_OK)
                break;
            take_names(L, text, (size_t)size);
        }
    }
    tar_close(t);
    if (st != OC_OK)
        return oc_fail_context(st, "'%s'", archive);
    for (int i = 0; i < L->nfiles; i++)
        if (!L->seen[i])
            return oc_fail(OC_ERR_FORMAT, "'%s' has no %s (not a CIFAR-%s binary archive?)",
                           archive, L->files[i], L->hundred ? "100" : "10");
    return OC_OK;
}

/* Class names from a text file, one per line; NULL when it does not have exactly n lines. */
static int parse_names(char *text, int n, const char **out)
{
    int k = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line)
            continue;
        if (k == n)
            return 0;
        out[k++] = line;
    }
    return k == n;
}

oc_status ds_open_cifar(const char *path, int hundred, const oc_dataset_opts *o, oc_dataset **out)
{
    cifar_load *L = calloc(1, sizeof *L);
    oc_dataset *ds = NULL;
    struct stat sb;
    oc_status st;
    int classes = hundred ? 100 : 10;
    const char *names[100];
    if (!L)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    L->hundred = hundred;
    L->rec = hundred ? 3074 : 3073;
    L->label_off = hundred ? 1 : 0;
    wanted_files(L, o->split);
    if (stat(path, &sb) != 0) {
        st = oc_fail(OC_ERR_IO, "CIFAR path '%s': %s", path, strerror(errno));
        goto done;
    }
    st = S_ISDIR(sb.st_mode) ? load_dir(L, path) : load_tar(L, path);
    if (st != OC_OK)
        goto done;
    st = ds_new(hundred ? "cifar100" : "cifar10", DS_MEMORY, L->nrec, &ds);
    if (st != OC_OK)
        goto done;
    ds->h = ds->w = 32;
    ds->c = 3;
    ds->has_test = 1;
    ds->n_train = 0;
    /* reorder the files' records into dataset order unless they already are */
    {
        int in_order = 1;
        int64_t pos = 0;
        for (int i = 0; i < L->nfiles; i++) {
            in_order &= L->first[i] == pos;
            pos += L->n[i];
            if (!L->is_test[i])
                ds->n_train += L->n[i];
        }
        if (in_order) {
            ds->pixels = L->pix;
            L->pix = NULL;
            memcpy(ds->labels, L->lab, sizeof *ds->labels * (size_t)L->nrec);
        } else {
            ds->pixels = malloc((size_t)L->nrec * CIFAR_PIXELS);
            if (!ds->pixels) {
                st = oc_fail(OC_ERR_NOMEM, "out of memory for %lld CIFAR images",
                             (long long)L->nrec);
                goto done;
            }
            pos = 0;
            for (int i = 0; i < L->nfiles; i++) {
                memcpy(ds->pixels + (size_t)pos * CIFAR_PIXELS,
                       L->pix + (size_t)L->first[i] * CIFAR_PIXELS,
                       (size_t)L->n[i] * CIFAR_PIXELS);
                memcpy(ds->labels + pos, L->lab + L->first[i], sizeof(int32_t) * (size_t)L->n[i]);
                pos += L->n[i];
            }
        }
    }
    if (o->split == OC_SPLIT_TEST)
        ds->n_train = 0;
    if (L->have_names && parse_names(L->names_text, classes, names))
        st = ds_set_classes(ds, classes, names);
    else
        st = ds_set_classes(ds, classes, hundred ? cifar100_names : cifar10_names);
done:
    if (st != OC_OK) {
        oc_dataset_free(ds);
        ds = NULL;
    }
    free(L->pix);
    free(L->lab);
    free(L);
    *out = ds;
    return st;
}
