/* ocelot info: a model's layers (output shapes, parameters, FLOPs), totals, classes and
 * preprocessing, as a table (like Keras's model.summary()) or JSON. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void info_usage(FILE *out)
{
    fprintf(out,
            "usage: ocelot info MODEL|ZOO-NAME|SPEC.json [--input HxWxC] [--classes N] [--json]\n"
            "\n"
            "Shows a model's layers (output shape, parameters, FLOPs per image), the totals\n"
            "(parameters, MFLOPs per image, activation memory at batch 1), its classes and its\n"
            "preprocessing. MODEL is a model file; otherwise the argument is a zoo name (with\n"
            "options, e.g. mobilenetv2:width=0.5) or a JSON spec file (docs/model-spec.md).\n"
            "\n"
            "options:\n"
            "  --input HxWxC  input size for zoo names and specs (default 32x32x3; 224x224x3\n"
            "                 for mobilenetv2)\n"
            "  --classes N    number of classes for zoo names and specs (default 10; 1000 for\n"
            "                 mobilenetv2)\n"
            "  --json         print JSON instead of the table\n"
            "  -h, --help     this help\n"
            "\nzoo:");
    for (const char *const *z = oc_zoo_names(); *z; z++)
        fprintf(out, " %s", *z);
    fprintf(out, "\n");
}

/* 1 when `path` is an existing file that is not a JSON spec (a safetensors model file). */
static int is_model_file(const char *path, int *exists)
{
    FILE *f = fopen(path, "rb");
    int c;
    *exists = f != NULL;
    if (!f)
        return 0;
    do
        c = fgetc(f);
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t');
    fclose(f);
    return c != '{';
}

static int parse_input(const char *s, int *h, int *w, int *c)
{
    char tail;
    return sscanf(s, "%dx%dx%d%c", h, w, c, &tail) == 3 && *h >= 1 && *w >= 1 && *c >= 1 &&
           *h <= 16384 && *w <= 16384 && *c <= 4096;
}

static void fmt_shape(char *buf, size_t n, const oc_node_info *ni)
{
    if (ni->out_h == 1 && ni->out_w == 1 && strcmp(ni->op, "input") != 0)
        snprintf(buf, n, "%d", ni->out_c);
    else
        snprintf(buf, n, "%d x %d x %d", ni->out_h, ni->out_w, ni->out_c);
}

static const char *resize_name(oc_resize_mode r)
{
    return r == OC_RESIZE_CENTER_CROP ? "center-crop" : "stretch";
}

static int print_json(oc_model *m, const char *what, size_t act_bytes)
{
    cJSON *root = cJSON_CreateObject(), *layers, *classes, *pre, *meta;
    oc_preprocess *pp = oc_model_preprocess(m);
    int h, w, c;
    char *text;
    oc_model_input_shape(m, &h, &w, &c);
    cJSON_AddStringToObject(root, "model", what);
    {
        int in[3] = {h, w, c};
        cJSON_AddItemToObject(root, "input", cJSON_CreateIntArray(in, 3));
    }
    cJSON_AddNumberToObject(root, "parameters", (double)oc_model_param_count(m));
    cJSON_AddNumberToObject(root, "flops", oc_model_flops(m));
    cJSON_AddNumberToObject(root, "activation_bytes_batch1", (double)act_bytes);
    layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < oc_model_num_nodes(m); i++) {
        oc_node_info ni;
        cJSON *l = cJSON_CreateObject();
        int shape[3];
        oc_model_node_info(m, i, &ni);
        shape[0] = ni.out_h;
        shape[1] = ni.out_w;
        shape[2] = ni.out_c;
        cJSON_AddStringToObject(l, "name", ni.name);
        cJSON_AddStringToObject(l, "op", ni.op);
        cJSON_AddItemToObject(l, "output", cJSON_CreateIntArray(shape, 3));
        cJSON_AddNumberToObject(l, "parameters", (double)ni.params);
        cJSON_AddNumberToObject(l, "flops", ni.flops);
        cJSON_AddItemToArray(layers, l);
    }
    classes = cJSON_AddArrayToObject(root, "classes");
    for (int i = 0; i < oc_model_num_classes(m); i++)
        cJSON_AddItemToArray(classes, cJSON_CreateString(oc_model_class_name(m, i)));
    pre = cJSON_AddObjectToObject(root, "preprocess");
    cJSON_AddNumberToObject(pre, "height", pp->height);
    cJSON_AddNumberToObject(pre, "width", pp->width);
    cJSON_AddNumberToObject(pre, "channels", pp->channels);
    {
        double mean[4], sd[4];
        int n = pp->channels < 4 ? pp->channels : 4;
        for (int i = 0; i < n; i++) {
            mean[i] = (double)pp->mean[i];
            sd[i] = (double)pp->std[i];
        }
        cJSON_AddItemToObject(pre, "mean", cJSON_CreateDoubleArray(mean, n));
        cJSON_AddItemToObject(pre, "std", cJSON_CreateDoubleArray(sd, n));
    }
    cJSON_AddStringToObject(pre, "resize", resize_name(pp->resize));
    meta = cJSON_AddObjectToObject(root, "metadata");
    for (int i = 0; i < oc_model_num_meta(m); i++) {
        const char *key = oc_model_meta_key(m, i);
        cJSON *v = cJSON_Parse(oc_model_get_meta(m, key));
        if (v)
            cJSON_AddItemToObject(meta, key, v);
    }
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "ocelot info: out of memory\n");
        return CLI_FAIL;
    }
    printf("%s\n", text);
    free(text);
    return CLI_OK;
}

static void print_table(oc_model *m, const char *what, size_t act_bytes)
{
    oc_preprocess *pp = oc_model_preprocess(m);
    int h, w, c, name_w = 20, n_classes = oc_model_num_classes(m);
    oc_model_input_shape(m, &h, &w, &c);
    for (int i = 0; i < oc_model_num_nodes(m); i++) {
        oc_node_info ni;
        oc_model_node_info(m, i, &ni);
        if ((int)strlen(ni.name) > name_w)
            name_w = (int)strlen(ni.name);
    }
    if (name_w > 40)
        name_w = 40;
    printf("Model: %s (input %d x %d x %d, %d classes)\n", what, h, w, c, n_classes);
    printf("%-*s  %-15s  %-16s  %12s  %10s\n", name_w, "Layer", "Op", "Output shape", "Params",
           "MFLOPs");
    for (int i = 0; i < name_w + 15 + 16 + 12 + 10 + 8; i++)
        putchar('-');
    putchar('\n');
    for (int i = 0; i < oc_model_num_nodes(m); i++) {
        oc_node_info ni;
        char shape[48];
        oc_model_node_info(m, i, &ni);
        fmt_shape(shape, sizeof shape, &ni);
        printf("%-*.*s  %-15s  %-16s  %12lld  %10.3f\n", name_w, name_w, ni.name, ni.op, shape,
               (long long)ni.params, ni.flops / 1e6);
    }
    for (int i = 0; i < name_w + 15 + 16 + 12 + 10 + 8; i++)
        putchar('-');
    putchar('\n');
    printf("Parameters:        %lld (%.2f MB as float32)\n", (long long)oc_model_param_count(m),
           (double)oc_model_param_count(m) * 4.0 / 1e6);
    printf("FLOPs per image:   %.2f M (multiply-add = 2)\n", oc_model_flops(m) / 1e6);
    printf("Activation memory: %.2f MB at batch 1 (inference plan)\n", (double)act_bytes / 1e6);
    printf("Classes (%d):", n_classes);
    for (int i = 0; i < n_classes && i < 10; i++)
        printf(" %s", oc_model_class_name(m, i));
    printf("%s\n", n_classes > 10 ? " ..." : "");
    printf("Preprocessing:     %s to %d x %d x %d, scale to [0,1], mean", resize_name(pp->resize),
           pp->height, pp->width, pp->channels);
    for (int i = 0; i < pp->channels && i < 4; i++)
        printf(" %g", (double)pp->mean[i]);
    printf(", std");
    for (int i = 0; i < pp->channels && i < 4; i++)
        printf(" %g", (double)pp->std[i]);
    printf("\n");
    for (int i = 0; i < oc_model_num_meta(m); i++) {
        const char *key = oc_model_meta_key(m, i);
        const char *v = oc_model_get_meta(m, key);
        printf("Metadata %-9s %.*s%s\n", key, 100, v, strlen(v) > 100 ? " ..." : "");
    }
}

int cmd_model_info(int argc, char **argv)
{
    const char *what = NULL;
    int h = 0, w = 0, c = 0, json = 0, exists;
    long classes = 0;
    oc_model *m = NULL;
    oc_status st;
    size_t act_bytes;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            info_usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--input")) {
            if (i + 1 >= argc || !parse_input(argv[++i], &h, &w, &c))
                return cli_usage_error("info", "--input needs HxWxC, e.g. 32x32x3");
        } else if (!strcmp(a, "--classes")) {
            if (i + 1 >= argc || !cli_parse_int(argv[++i], 1, 1000000, &classes))
                return cli_usage_error("info", "--classes needs a number from 1 to 1000000");
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("info", "unknown option '%s'", a);
        } else if (what) {
            return cli_usage_error("info", "one model at a time ('%s' and '%s')", what, a);
        } else {
            what = a;
        }
    }
    if (!what)
        return cli_usage_error("info", "missing MODEL (a model file, zoo name or spec)");

    if (is_model_file(what, &exists)) {
        if (h || classes)
            fprintf(stderr, "ocelot info: --input and --classes are ignored for a model file\n");
        st = oc_model_load(what, &m);
        if (st != OC_OK)
            return cli_error("cannot load model");
    } else {
        int big = !strncmp(what, "mobilenetv2", 11) && strncmp(what, "mobilenetv2_cifar", 17);
        if (!h) {
            h = w = big ? 224 : 32;
            c = 3;
        }
        if (!classes)
            classes = big ? 1000 : 10;
        st = oc_model_create(&m, what, h, w, c, (int)classes, 0);
        if (st != OC_OK)
            return cli_error("cannot build model");
    }
    st = oc_model_plan(m, 1, 0);
    if (st != OC_OK) {
        oc_model_free(m);
        return cli_error("cannot plan the model");
    }
    act_bytes = oc_model_plan_bytes(m);
    if (json) {
        rc = print_json(m, what, act_bytes);
    } else {
        print_table(m, what, act_bytes);
        rc = CLI_OK;
    }
    oc_model_free(m);
    return rc;
}
