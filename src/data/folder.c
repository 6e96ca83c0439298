/* Image folders: DIR/<class>/... (class names = sorted sub-folder names), or DIR/train/<class>
 * and DIR/test/<class> for an official split. Files are found recursively inside each class
 * folder by extension (.jpg .jpeg .png .webp, any case) and sorted by path, so the sample order
 * is the same on every machine; they are decoded on get (the format comes from magic bytes). */
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
    char **v;
    int64_t n, cap;
} strvec;

static oc_status sv_push(strvec *s, const char *str)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 64;
        char **p = realloc(s->v, sizeof *p * (size_t)cap);
        if (!p)
            return oc_fail(OC_ERR_NOMEM, "out of memory");
        s->v = p;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str)))
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    s->n++;
    return OC_OK;
}

static void sv_free(strvec *s)
{
    for (int64_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
                   !strcasecmp(dot, ".png") || !strcasecmp(dot, ".webp"));
}

/* Names of the entries of `dir` (not hidden), sorted; dirs_only selects sub-directories. */
static oc_status list_dir(const char *dir, int dirs_only, strvec *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    oc_status st = OC_OK;
    char path[8192];
    if (!d)
        return oc_fail(OC_ERR_IO, "open folder '%s': %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (dirs_only != is_dir(path))
            continue;
        if ((st = sv_push(out, e->d_name)) != OC_OK)
            break;
    }
    closedir(d);
    if (st == OC_OK && out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return st;
}

/* Appends every image file under dir (recursively, depth-limited) to files, sorted. */
static oc_status walk(const char *dir, int depth, strvec *files)
{
    strvec sub = {0}, names = {0};
    oc_status st;
    char path[8192];
    if (depth > 16)
        return oc_fail(OC_ERR_FORMAT, "folder '%s' nests too deep", dir);
    if ((st = list_dir(dir, 0, &names)) != OC_OK)
        return st;
    for (int64_t i = 0; i < names.n && st == OC_OK; i++) {
        if (!has_image_ext(names.v[i]))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, names.v[i]);
        st = sv_push(files, path);
    }
    if (st == OC_OK)
        st = list_dir(dir, 1, &sub);
    for (int64_t i = 0; i < sub.n && st == OC_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, sub.v[i]);
        st = walk(path, depth + 1, files);
    }
    sv_free(&sub);
    sv_free(&names);
    return st;
}

oc_status ds_open_folder(const char *dir, const oc_dataset_opts *o, oc_dataset **out)
{
    char trdir[4200], tedir[4200], path[8400];
    int split_layout;
    strvec classes = {0}, tmp = {0}, files[2] = {{0}, {0}};
    int32_t *labs[2] = {NULL, NULL};
    oc_dataset *ds = NULL;
    oc_status st = OC_OK;
    int nroots = 1;
    const char *roots[2];
    *out = NULL;
    if (!is_dir(dir))
        return oc_fail(OC_ERR_IO, "folder dataset '%s' is not a directory", dir);
    snprintf(trdir, sizeof trdir, "%s/train", dir);
    snprintf(tedir, sizeof tedir, "%s/test", dir);
    split_layout = is_dir(trdir) && is_dir(tedir);
    roots[0] = dir;
    if (split_layout) {
        roots[0] = trdir;
        roots[1] = tedir;
        nroots = 2;
    } else if (o->split == OC_SPLIT_TEST) {
        return oc_fail(OC_ERR_ARG, "folder '%s' has no official test split (train/ and test/)",
                       dir);
    }
    /* class names: union of the roots' sub-folders, sorted, unique */
    for (int r = 0; r < nroots && st == OC_OK; r++)
        st = list_dir(roots[r], 1, &tmp);
    if (st != OC_OK)
        goto done;
    if (tmp.n > 1)
        qsort(tmp.v, (size_t)tmp.n, sizeof *tmp.v, cmp_str);
    for (int64_t i = 0; i < tmp.n && st == OC_OK; i++)
        if (i == 0 || strcmp(tmp.v[i], tmp.v[i - 1]))
            st = sv_push(&classes, tmp.v[i]);
    if (st != OC_OK)
        goto done;
    if (classes.n == 0) {
        st = oc_fail(OC_ERR_FORMAT, "folder '%s' has no class sub-folders (expected "
                                    "%s/<class>/<images>)", dir, dir);
        goto done;
    }
    if (classes.n > 100000) {
        st = oc_fail(OC_ERR_FORMAT, "folder '%s' has too many class folders", dir);
        goto done;
    }
    for (int r = 0; r < nroots; r++) {
        int want = r == 0 ? o->split != OC_SPLIT_TEST : o->split != OC_SPLIT_TRAIN;
        for (int k = 0; k < classes.n; k++) {
            int64_t before = files[r].n;
            snprintf(path, sizeof path, "%s/%s", roots[r], classes.v[k]);
            if (!is_dir(path))
                continue;
            if ((st = walk(path, 0, &files[r])) != OC_OK)
                goto done;
            if (files[r].n == before) {
                st = oc_fail(OC_ERR_FORMAT, "class folder '%s' has no images (.jpg, .jpeg, "
                                            ".png, .webp)", path);
                goto done;
            }
            {
                int32_t *p = realloc(labs[r], sizeof *p * (size_t)files[r].n);
                if (!p) {
                    st = oc_fail(OC_ERR_NOMEM, "out of memory");
                    goto done;
                }
                labs[r] = p;
                for (int64_t i = before; i < files[r].n; i++)
                    p[i] = k;
            }
        }
        if (!want) {
            sv_free(&files[r]);
            free(labs[r]);
            labs[r] = NULL;
        }
    }
    if ((st = ds_new("folder", DS_FILES, files[0].n + files[1].n, &ds)) != OC_OK)
        goto done;
    ds->has_test = split_layout;
    ds->n_train = files[0].n;
    for (int64_t r = 0, at = 0; r < 2; r++)
        for (int64_t i = 0; i < files[r].n; i++, at++) {
            ds->paths[at] = files[r].v[i];
            files[r].v[i] = NULL;
            ds->labels[at] = labs[r][i];
        }
    st = ds_set_classes(ds, (int)classes.n, (const char *const *)classes.v);
done:
    if (st != OC_OK) {
        oc_dataset_free(ds);
        ds = NULL;
    }
    sv_free(&classes);
    sv_free(&tmp);
    for (int r = 0; r < 2; r++) {
        sv_free(&files[r]);
        free(labs[r]);
    }
    *out = ds;
    return st;
}
