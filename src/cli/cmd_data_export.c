/* ocelot data export: write sample images of a dataset as PNG files (to look at, or to try
 * `ocelot predict` / the server on), named INDEX_CLASS.png. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char export_usage[] =
    "usage: ocelot data export SPEC --out DIR [--n 10] [--split test|train|all]\n\n"
    "Writes N images of the split (default: the test split when the dataset has one) as\n"
    "DIR/INDEX_CLASS.png, taking classes in turn so every class appears.\n";

/* A file-name-safe copy of a class name. */
static void safe_name(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        out[n++] = (*in == '/' || *in == ' ' || *in == '\\') ? '-' : *in;
    out[n] = 0;
}

int cmd_data_export(int argc, char **argv)
{
    const char *spec = NULL, *out = NULL, *split_name = NULL;
    long n = 10;
    oc_dataset *ds = NULL;
    oc_image img = {0};
    int64_t *idx = NULL, count = 0;
    int64_t *next = NULL;
    int classes, rc = CLI_FAIL, written = 0;
    oc_split split;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(export_usage, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--out") && v) {
            out = v;
            i++;
        } else if (!strcmp(a, "--n") && v) {
            if (!cli_parse_int(v, 1, 100000, &n))
                return cli_usage_error("data export", "--n wants 1..100000, not '%s'", v);
            i++;
        } else if (!strcmp(a, "--split") && v) {
            if (strcmp(v, "test") && strcmp(v, "train") && strcmp(v, "all"))
                return cli_usage_error("data export", "--split is test, train or all");
            split_name = v;
            i++;
        } else if (a[0] == '-') {
            return cli_usage_error("data export", "unknown option or missing value: '%s'", a);
        } else if (!spec) {
            spec = a;
        } else {
            return cli_usage_error("data export", "unexpected argument '%s'", a);
        }
    }
    if (!spec || !out)
        return cli_usage_error("data export", "needs a dataset SPEC and --out DIR");
    if (oc_dataset_open(spec, NULL, &ds) != OC_OK)
        return cli_error(spec);
    if (!split_name)
        split = oc_dataset_has_test_split(ds) ? OC_SPLIT_TEST : OC_SPLIT_ALL;
    else
        split = !strcmp(split_name, "test") ? OC_SPLIT_TEST
                : !strcmp(split_name, "train") ? OC_SPLIT_TRAIN
                                               : OC_SPLIT_ALL;
    if (split == OC_SPLIT_TEST && !oc_dataset_has_test_split(ds)) {
        fprintf(stderr, "ocelot data export: '%s' has no test split; use --split all\n", spec);
        goto done;
    }
    if (oc_dataset_indices(ds, split, &idx, &count) != OC_OK) {
        rc = cli_error("data export");
        goto done;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "ocelot data export: cannot create '%s': %s\n", out, strerror(errno));
        goto done;
    }
    classes = oc_dataset_num_classes(ds);
    next = calloc((size_t)classes, sizeof *next); /* per class: where its scan resumes */
    if (!next) {
        rc = cli_error("data export");
        goto done;
    }
    for (int round = 0; written < n; round++) {
        int progress = 0;
        for (int c = 0; c < classes && written < n; c++) {
            while (next[c] < count && oc_dataset_label(ds, idx[next[c]]) != c)
                next[c]++;
            if (next[c] >= count)
                continue;
            {
                int64_t i = idx[next[c]++];
                char name[128], path[4096];
                safe_name(oc_dataset_class_name(ds, c), name, sizeof name);
                snprintf(path, sizeof path, "%s/%lld_%s.png", out, (long long)i, name);
                if (oc_dataset_get(ds, i, &img, NULL) != OC_OK ||
                    oc_image_save_png(&img, path) != OC_OK) {
                    rc = cli_error(path);
                    goto done;
                }
                written++;
                progress = 1;
            }
        }
        if (!progress)
            break;
    }
    printf("wrote %d images to %s\n", written, out);
    rc = CLI_OK;
done:
    oc_image_release(&img);
    free(next);
    free(idx);
    oc_dataset_free(ds);
    return rc;
}
