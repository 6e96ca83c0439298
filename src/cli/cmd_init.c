/* ocelot init: write an untrained model file (for inspection, serving tests, or as the start of
 * a fine-tune). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void init_usage(FILE *out)
{
    const char *const *zoo = oc_zoo_names();
    fprintf(out,
            "usage: ocelot init --model NAME|spec.json --out FILE [options]\n\n"
            "Writes a model with freshly initialised (untrained) weights to FILE.\n\n"
            "options:\n"
            "  --model NAME|FILE    a zoo architecture or a JSON spec file (required)\n"
            "  --out FILE           the model file to write (required; replaced atomically)\n"
            "  --input HxWxC        input height, width and channels (default 32x32x3)\n"
            "  --classes N          number of classes (default 10, or the number of names)\n"
            "  --class-names A,B,.. class names, comma separated\n"
            "  --seed S             seed of the weight initialisation (default 0)\n"
            "  -h, --help           show this help\n\nzoo:");
    for (int i = 0; zoo && zoo[i]; i++)
        fprintf(out, " %s", zoo[i]);
    fprintf(out, "\n");
}

/* Splits "a,b,c" into a malloc'd array of malloc'd names; returns the count or -1 on an empty
 * name. */
static int split_names(const char *s, char ***out)
{
    int n = 1, k = 0;
    char **names;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    names = calloc((size_t)n, sizeof *names);
    if (!names)
        return -1;
    for (const char *p = s;; k++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || !(names[k] = strndup(p, len))) {
            for (int i = 0; i < k; i++)
                free(names[i]);
            free(names);
            return -1;
        }
        if (!e)
            break;
        p = e + 1;
    }
    *out = names;
    return n;
}

/* "HxWxC": H and W in [1, 8192], C in [1, 4] (the preprocessing keeps 4 channel statistics). */
static int parse_hwc(const char *s, int *h, int *w, int *c)
{
    int *out[3] = {h, w, c};
    const long hi[3] = {8192, 8192, 4};
    for (int i = 0; i < 3; i++) {
        char *end;
        long v;
        if (*s < '0' || *s > '9')
            return 0;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || v < 1 || v > hi[i] || *end != (i < 2 ? 'x' : 0))
            return 0;
        *out[i] = (int)v;
        s = end + (i < 2);
    }
    return 1;
}

int cmd_init(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *names_arg = NULL;
    int h = 32, w = 32, c = 3, rc = CLI_FAIL;
    long classes = 0, seed = 0;
    char **names = NULL;
    int n_names = 0;
    oc_model *m = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            init_usage(stdout);
            return CLI_OK;
        }
        if (strcmp(a, "--model") && strcmp(a, "--out") && strcmp(a, "--input") &&
            strcmp(a, "--classes") && strcmp(a, "--class-names") && strcmp(a, "--seed"))
            return cli_usage_error("init", "unknown option '%s'", a);
        if (!v)
            return cli_usage_error("init", "%s needs a value", a);
        i++;
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--class-names"))
            names_arg = v;
        else if (!strcmp(a, "--input")) {
            if (!parse_hwc(v, &h, &w, &c))
                return cli_usage_error("init", "--input '%s': expected HxWxC, e.g. 32x32x3 "
                                       "(C from 1 to 4)", v);
        } else if (!strcmp(a, "--classes")) {
            if (!cli_parse_int(v, 1, 1000000, &classes))
                return cli_usage_error("init", "--classes '%s': expected an integer >= 1", v);
        } else if (!cli_parse_int(v, 0, 0x7fffffffL, &seed)) {
            return cli_usage_error("init", "--seed '%s': expected a non-negative integer", v);
        }
    }
    if (!model)
        return cli_usage_error("init", "--model is required");
    if (!out)
        return cli_usage_error("init", "--out is required");
    if (names_arg) {
        n_names = split_names(names_arg, &names);
        if (n_names < 0)
            return cli_usage_error("init", "--class-names '%s': empty name", names_arg);
        if (classes && classes != n_names) {
            rc = cli_usage_error("init", "--classes %ld but --class-names lists %d names",
                                 classes, n_names);
            goto cleanup;
        }
        classes = n_names;
    }
    if (!classes)
        classes = 10;

    if (oc_model_create(&m, model, h, w, c, (int)classes, (uint64_t)seed) != OC_OK) {
        rc = cli_error("cannot create the model");
        goto cleanup;
    }
    if (names && oc_model_set_class_names(m, n_names, (const char *const *)names) != OC_OK) {
        rc = cli_error("class names");
        goto cleanup;
    }
    if (oc_model_save(m, out) != OC_OK) {
        rc = cli_error("cannot write the model file");
        goto cleanup;
    }
    printf("wrote %s: %s, input %dx%dx%d, %ld classes, %lld parameters, seed %ld\n", out, model,
           h, w, c, classes, (long long)oc_model_param_count(m), seed);
    rc = CLI_OK;

cleanup:
    oc_model_free(m);
    for (int i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    return rc;
}
