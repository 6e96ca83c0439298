/* CSV manifests: one "path,label" sample per line. An optional header row names the columns
 * (path/file/filename/image/img and label/class/target/category, any case; other columns are
 * ignored); without one the first two columns are used. Fields may be double-quoted. Relative
 * paths are relative to the CSV's folder. Labels that are all non-negative integers are class
 * indices (classes 0..max); otherwise the class names are the sorted distinct labels. */
#include "data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CSV_MAX_FIELDS 64

/* Splits line in place into fields; returns the count. */
static int split_fields(char *line, char **f)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *w;
        if (n == CSV_MAX_FIELDS)
            return n;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '"') {
            p++;
            f[n++] = w = p;
            while (*p) {
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++;
        } else {
            f[n++] = p;
            while (*p && *p != ',')
                p++;
            w = p;
            while (w > f[n - 1] && (w[-1] == ' ' || w[-1] == '\t'))
                w--;
        }
        {
            int more = *p == ',';
            *w = 0; /* may overwrite the comma itself */
            if (!more)
                return n;
        }
        p++;
    }
}

static int name_in(const char *s, const char *const *names)
{
    for (; *names; names++)
        if (!strcasecmp(s, *names))
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_index(const char *s, long *v)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return 0;
    *v = strtol(s, &end, 10);
    return !*end && *v >= 0 && *v < 1000000;
}

oc_status ds_open_csv(const char *file, const oc_dataset_opts *o, oc_dataset **out)
{
    static const char *const path_cols[] = {"path", "file", "filename", "image", "img",
                                            "filepath", NULL};
    static const char *const label_cols[] = {"label", "class", "target", "category", NULL};
    uint8_t *text = NULL;
    size_t len;
    char *dir = NULL, *save = NULL, *line;
    char **paths = NULL, **labels = NULL, **uniq = NULL;
    int64_t n = 0, cap = 0, nuniq = 0;
    int pcol = 0, lcol = 1, lineno = 0, all_int = 1;
    long maxidx = -1;
    oc_dataset *ds = NULL;
    oc_status st;
    *out = NULL;
    if (o->split == OC_SPLIT_TEST)
        return oc_fail(OC_ERR_ARG, "csv '%s' has no official test split", file);
    if ((st = read_file(file, 0, &text, &len)) != OC_OK)
        return st;
    text[len] = 0;
    if (memchr(text, 0, len)) {
        st = oc_fail(OC_ERR_FORMAT, "csv '%s' is not a text file", file);
        goto done;
    }
    dir = strdup(file);
    if (!dir) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            strcpy(dir, ".");
    }
    for (line = strtok_r((char *)text, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        char *f[CSV_MAX_FIELDS], full[8192];
        int nf;
        struct stat sb;
        lineno++;
        if (lineno == 1 && (uint8_t)line[0] == 0xEF && (uint8_t)line[1] == 0xBB &&
            (uint8_t)line[2] == 0xBF)
            line += 3; /* UTF-8 byte-order mark */
        nf = split_fields(line, f);
        if (nf == 1 && !f[0][0])
            continue;
        if (n == 0 && lineno == 1) {
            int hp = -1, hl = -1;
            for (int i = 0; i < nf; i++) {
                if (hp < 0 && name_in(f[i], path_cols))
                    hp = i;
                else if (hl < 0 && name_in(f[i], label_cols))
                    hl = i;
            }
            if (hp >= 0 && hl >= 0) {
                pcol = hp;
                lcol = hl;
                continue;
            }
        }
        if (nf <= pcol || nf <= lcol || !f[pcol][0] || !f[lcol][0]) {
            st = oc_fail(OC_ERR_FORMAT, "csv '%s' line %d: expected path,label", file, lineno);
            goto done;
        }
        if (f[pcol][0] == '/')
            snprintf(full, sizeof full, "%s", f[pcol]);
        else
            snprintf(full, sizeof full, "%s/%s", dir, f[pcol]);
        if (stat(full, &sb) != 0) {
            st = oc_fail(OC_ERR_IO, "csv '%s' line %d: image '%s' is missing: %s", file, lineno,
                         full, strerror(errno));
            goto done;
        }
        if (n == cap) {
            int64_t nc = cap ? cap * 2 : 256;
            char **p1 = realloc(paths, sizeof *p1 * (size_t)nc);
            char **p2 = p1 ? realloc(labels, sizeof *p2 * (size_t)nc) : NULL;
            if (p1)
                paths = p1;
            if (!p1 || !p2) {
                st = oc_fail(OC_ERR_NOMEM, "out of memory");
                goto done;
            }
            labels = p2;
            cap = nc;
        }
        paths[n] = strdup(full);
        labels[n] = strdup(f[lcol]);
        n++;
        if (!paths[n - 1] || !labels[n - 1]) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory");
            goto done;
        }
        {
            long v;
            if (is_index(f[lcol], &v)) {
                if (v > maxidx)
                    maxidx = v;
            } else {
                all_int = 0;
            }
        }
    }
    if (n == 0) {
        st = oc_fail(OC_ERR_FORMAT, "csv '%s' lists no images", file);
        goto done;
    }
    if ((st = ds_new("csv", DS_FILES, n, &ds)) != OC_OK)
        goto done;
    if (all_int) {
        for (int64_t i = 0; i < n; i++)
            ds->labels[i] = (int32_t)strtol(labels[i], NULL, 10);
        st = ds_set_numbered_classes(ds, (int)maxidx + 1);
    } else {
        uniq = malloc(sizeof *uniq * (size_t)n);
        if (!uniq) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(uniq, labels, sizeof *uniq * (size_t)n);
        qsort(uniq, (size_t)n, sizeof *uniq, cmp_str);
        for (int64_t i = 0; i < n; i++)
            if (i == 0 || strcmp(uniq[i], uniq[nuniq - 1]))
                uniq[nuniq++] = uniq[i];
        for (int64_t i = 0; i < n; i++) {
            char **hit = bsearch(&labels[i], uniq, (size_t)nuniq, sizeof *uniq, cmp_str);
            ds->labels[i] = (int32_t)(hit - uniq);
        }
        st = ds_set_classes(ds, (int)nuniq, (const char *const *)uniq);
    }
    for (int64_t i = 0; i < n; i++) {
        ds->paths[i] = paths[i];
        paths[i] = NULL;
    }
done:
    if (st != OC_OK) {
        oc_dataset_free(ds);
        ds = NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        free(paths[i]);
        free(labels[i]);
    }
    free(paths);
    free(labels);
    free(uniq);
    free(dir);
    free(text);
    *out = ds;
    return st;
}
