/* The model zoo: each architecture is written as a spec (the same JSON a user would write),
 * with node names equal to the PyTorch reference's module paths (tests/ref/torch_zoo.py), so
 * tensor names match state_dict keys.
 *
 *  cnn               the Keras cifar10_cnn example, 'same' padding everywhere (2,168,362
 *                    parameters at 32x32x3, 10 classes)
 *  resnet20/56       He et al. 2016, CIFAR ResNets with option-A shortcuts, as
 *                    akamaster/pytorch_resnet_cifar10 (269,722 / 855,770 parameters)
 *  resnet18          CIFAR ResNet-18 as kuangliu/pytorch-cifar: 3x3 stem, no max pool,
 *                    1x1 projection shortcuts (11,173,962 parameters)
 *  mobilenetv2       torchvision's MobileNetV2 (3,504,872 parameters at 1000 classes)
 *  mobilenetv2_cifar the same with a stride-1 stem and the first stride-2 stage at stride 1
 *  airnet            Keller Jordan's airbench94 speed-run net: a frozen 2x2 whitening conv,
 *                    three conv groups (64, 256, 256) with frozen-scale batch norm and GELU,
 *                    max-pool 3, a bias-free linear layer scaled by 1/9 (1,972,792 parameters
 *                    at 10 classes, 1,440 of them frozen)
 * Options follow the name: "mobilenetv2:width=0.5" (width multiplier, torchvision's
 * width_mult with channels rounded to multiples of 8). */
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const zoo_names[] = {"cnn",      "resnet20",    "resnet56",         "resnet18",
                                        "mobilenetv2", "mobilenetv2_cifar", "airnet", NULL};

const char *const *oc_zoo_names(void)
{
    return zoo_names;
}

/* Length of the base name (up to ':'). */
static size_t base_len(const char *name)
{
    const char *c = strchr(name, ':');
    return c ? (size_t)(c - name) : strlen(name);
}

static int zoo_index(const char *name)
{
    size_t n = base_len(name);
    for (int i = 0; zoo_names[i]; i++)
        if (strlen(zoo_names[i]) == n && !strncmp(zoo_names[i], name, n))
            return i;
    return -1;
}

int oc_zoo_has(const char *name)
{
    return zoo_index(name) >= 0;
}

/* ---------------------------------------------------------------- spec builder */

typedef struct {
    cJSON *root, *nodes;
    int oom;
} builder;

static cJSON *add_node(builder *b, const char *name, const char *op, const char *in0,
                       const char *in1)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) {
        b->oom = 1;
        return NULL;
    }
    cJSON_AddItemToArray(b->nodes, j);
    cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "op", op);
    if (in0) {
        cJSON *ins = cJSON_AddArrayToObject(j, "inputs");
        if (!ins) {
            b->oom = 1;
            return j;
        }
        cJSON_AddItemToArray(ins, cJSON_CreateString(in0));
        if (in1)
            cJSON_AddItemToArray(ins, cJSON_CreateString(in1));
    }
    return j;
}

static void num(cJSON *j, const char *key, double v)
{
    if (j)
        cJSON_AddNumberToObject(j, key, v);
}

static void str(cJSON *j, const char *key, const char *v)
{
    if (j)
        cJSON_AddStringToObject(j, key, v);
}

/* conv2d; pad < 0 means "same"; init NULL means the default */
static void conv(builder *b, const char *name, const char *in, int filters, int k, int stride,
                 int pad, int groups, int bias, const char *init)
{
    cJSON *j = add_node(b, name, "conv2d", in, NULL);
    num(j, "filters", filters);
    num(j, "kernel", k);
    num(j, "stride", stride);
    if (pad < 0)
        str(j, "padding", "same");
    else
        num(j, "padding", pad);
    if (groups != 1)
        num(j, "groups", groups);
    if (j)
        cJSON_AddBoolToObject(j, "bias", bias);
    if (init)
        str(j, "init", init);
}

static void simple(builder *b, const char *name, const char *op, const char *in)
{
    add_node(b, name, op, in, NULL);
}

static void dropout(builder *b, const char *name, double p)
{
    num(add_node(b, name, "dropout", NULL, NULL), "p", p);
}

static void dense_classes(builder *b, const char *name, const char *init, int bias_zero,
                          double std)
{
    cJSON *j = add_node(b, name, "dense", NULL, NULL);
    str(j, "units", "classes");
    if (init)
        str(j, "init", init);
    if (init && !strcmp(init, "normal"))
        num(j, "init_std", std);
    if (bias_zero)
        str(j, "bias_init", "zeros");
}

/* ---------------------------------------------------------------- architectures */

static void build_cnn(builder *b)
{
    cJSON *j;
    conv(b, "conv1", NULL, 32, 3, 1, -1, 1, 1, NULL);
    simple(b, "relu1", "relu", NULL);
    conv(b, "conv2", NULL, 32, 3, 1, -1, 1, 1, NULL);
    simple(b, "relu2", "relu", NULL);
    j = add_node(b, "pool1", "maxpool", NULL, NULL);
    num(j, "kernel", 2);
    dropout(b, "drop1", 0.25);
    conv(b, "conv3", NULL, 64, 3, 1, -1, 1, 1, NULL);
    simple(b, "relu3", "relu", NULL);
    conv(b, "conv4", NULL, 64, 3, 1, -1, 1, 1, NULL);
    simple(b, "relu4", "relu", NULL);
    j = add_node(b, "pool2", "maxpool", NULL, NULL);
    num(j, "kernel", 2);
    dropout(b, "drop2", 0.25);
    simple(b, "flatten", "flatten", NULL);
    j = add_node(b, "fc1", "dense", NULL, NULL);
    num(j, "units", 512);
    simple(b, "relu5", "relu", NULL);
    dropout(b, "drop3", 0.5);
    dense_classes(b, "fc2", NULL, 0, 0);
}

/* conv -> bn [-> relu], names "<p>conv<i>", "<p>bn<i>", "<p>relu<i>" */
static void conv_bn(builder *b, const char *p, int i, const char *in, int filters, int k,
                    int stride, int relu, const char *init)
{
    char c[96], n[96], r[96];
    snprintf(c, sizeof c, "%sconv%d", p, i);
    snprintf(n, sizeof n, "%sbn%d", p, i);
    snprintf(r, sizeof r, "%srelu%d", p, i);
    conv(b, c, in, filters, k, stride, k / 2, 1, 0, init);
    simple(b, n, "batchnorm", NULL);
    if (relu)
        simple(b, r, "relu", NULL);
}

/* He et al. CIFAR ResNet (option A) for depth 6n+2 and kuangliu's ResNet-18 (option B). */
static void build_resnet(builder *b, int blocks_per_stage, int n_stages, const int *planes,
                         int option_a)
{
    const char *init = option_a ? "he_fan_in" : NULL;
    char prev[128], p[64], name[128], sc[128];
    int in_planes = planes[0];
    conv_bn(b, "", 1, NULL, planes[0], 3, 1, 1, init);
    snprintf(prev, sizeof prev, "relu1");
    for (int s = 0; s < n_stages; s++)
        for (int k = 0; k < blocks_per_stage; k++) {
            int stride = (s > 0 && k == 0) ? 2 : 1;
            snprintf(p, sizeof p, "layer%d.%d.", s + 1, k);
            conv_bn(b, p, 1, prev, planes[s], 3, stride, 1, init);
            conv_bn(b, p, 2, NULL, planes[s], 3, 1, 0, init);
            if (stride != 1 || in_planes != planes[s]) {
                if (option_a) {
                    snprintf(sc, sizeof sc, "%sshortcut", p);
                    cJSON *j = add_node(b, sc, "shortcut_pad", prev, NULL);
                    num(j, "channels", planes[s]);
                    num(j, "stride", 2);
                } else {
                    snprintf(sc, sizeof sc, "%sshortcut.0", p);
                    conv(b, sc, prev, planes[s], 1, stride, 0, 1, 0, NULL);
                    snprintf(sc, sizeof sc, "%sshortcut.1", p);
                    simple(b, sc, "batchnorm", NULL);
                }
            } else {
                snprintf(sc, sizeof sc, "%s", prev);
            }
            snprintf(name, sizeof name, "%sbn2", p);
            snprintf(prev, sizeof prev, "%sadd", p);
            add_node(b, prev, "add", name, sc);
            snprintf(prev, sizeof prev, "%srelu", p);
            simple(b, prev, "relu", NULL);
            in_planes = planes[s];
        }
    simple(b, "avgpool", "global_avgpool", NULL);
    dense_classes(b, "linear", init, 0, 0);
}

/* torchvision's _make_divisible */
static int make_divisible(double v, int divisor)
{
    int nv = (int)(v + divisor / 2.0) / divisor * divisor;
    if (nv < divisor)
        nv = divisor;
    if (nv < 0.9 * v)
        nv += divisor;
    return nv;
}

/* torchvision.models.MobileNetV2 (ConvBNReLU blocks, ReLU6, inverted residuals). */
static void build_mobilenetv2(builder *b, double width, int cifar)
{
    static const int setting[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                      {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
    const char *init = "he_fan_out";
    int in_c = make_divisible(32 * width, 8);
    int last_c = make_divisible(1280 * (width > 1.0 ? width : 1.0), 8);
    int idx = 1;
    char n[128], prev[128];

    conv(b, "features.0.0", NULL, in_c, 3, cifar ? 1 : 2, 1, 1, 0, init);
    simple(b, "features.0.1", "batchnorm", NULL);
    simple(b, "features.0.2", "relu6", NULL);
    snprintf(prev, sizeof prev, "features.0.2");
    for (int s = 0; s < 7; s++) {
        int t = setting[s][0], out_c = make_divisible(setting[s][1] * width, 8);
        int stride0 = (cifar && s == 1) ? 1 : setting[s][3];
        for (int i = 0; i < setting[s][2]; i++, idx++) {
            int stride = i == 0 ? stride0 : 1;
            int hidden = (int)lround(in_c * (double)t);
            int res = stride == 1 && in_c == out_c;
            int j = 0;
            char block_in[128];
            snprintf(block_in, sizeof block_in, "%s", prev);
            if (t != 1) {
                snprintf(n, sizeof n, "features.%d.conv.0.0", idx);
                conv(b, n, prev, hidden, 1, 1, 0, 1, 0, init);
                snprintf(n, sizeof n, "features.%d.conv.0.1", idx);
                simple(b, n, "batchnorm", NULL);
                snprintf(n, sizeof n, "features.%d.conv.0.2", idx);
                simple(b, n, "relu6", NULL);
                snprintf(prev, sizeof prev, "%s", n);
                j = 1;
            }
            snprintf(n, sizeof n, "features.%d.conv.%d.0", idx, j);
            conv(b, n, prev, hidden, 3, stride, 1, hidden, 0, init);
            snprintf(n, sizeof n, "features.%d.conv.%d.1", idx, j);
            simple(b, n, "batchnorm", NULL);
            snprintf(n, sizeof n, "features.%d.conv.%d.2", idx, j);
            simple(b, n, "relu6", NULL);
            snprintf(n, sizeof n, "features.%d.conv.%d", idx, j + 1);
            conv(b, n, NULL, out_c, 1, 1, 0, 1, 0, init);
            snprintf(n, sizeof n, "features.%d.conv.%d", idx, j + 2);
            simple(b, n, "batchnorm", NULL);
            snprintf(prev, sizeof prev, "%s", n);
            if (res) {
                char sum[128];
                snprintf(sum, sizeof sum, "features.%d.add", idx);
                add_node(b, sum, "add", block_in, prev);
                snprintf(prev, sizeof prev, "%s", sum);
            }
            in_c = out_c;
        }
    }
    snprintf(n, sizeof n, "features.%d.0", idx);
    conv(b, n, NULL, last_c, 1, 1, 0, 1, 0, init);
    snprintf(n, sizeof n, "features.%d.1", idx);
    simple(b, n, "batchnorm", NULL);
    snprintf(n, sizeof n, "features.%d.2", idx);
    simple(b, n, "relu6", NULL);
    simple(b, "pool", "global_avgpool", NULL);
    dropout(b, "classifier.0", 0.2);
    dense_classes(b, "classifier.1", "normal", 1, 0.01);
}

/* "freeze": ["weight"] */
static void freeze_weight(builder *b, cJSON *j)
{
    cJSON *f = j ? cJSON_AddArrayToObject(j, "freeze") : NULL;
    if (!f || !cJSON_AddItemToArray(f, cJSON_CreateString("weight")))
        b->oom = 1;
}

/* airbench94 (KellerJordan/cifar10-airbench, legacy/airbench94.py): whiten (conv 2x2, 24
 * filters, init from the data, weight frozen) -> GELU -> 3 x ConvGroup -> MaxPool(3) ->
 * Linear(256, classes, no bias) x 1/9. A ConvGroup is conv3x3 -> maxpool 2 -> BN -> GELU ->
 * conv3x3 -> BN -> GELU, convs bias-free with dirac init, batch norms with eps 1e-12, torch
 * momentum 0.4 (airbench's "0.6" is 1 - momentum) and a frozen scale of 1. Node names follow
 * torch_zoo.py's twin. */
static void build_airnet(builder *b, int channels)
{
    static const int widths[3] = {64, 256, 256};
    cJSON *j;
    char n[64];
    conv(b, "whiten", NULL, 2 * 2 * 2 * channels, 2, 1, 0, 1, 1, "whiten");
    j = cJSON_GetArrayItem(b->nodes, cJSON_GetArraySize(b->nodes) - 1);
    str(j, "bias_init", "zeros");
    freeze_weight(b, j);
    simple(b, "whiten_act", "gelu", NULL);
    for (int g = 0; g < 3; g++)
        for (int k = 1; k <= 2; k++) {
            snprintf(n, sizeof n, "layers.%d.conv%d", g, k);
            conv(b, n, NULL, widths[g], 3, 1, -1, 1, 0, "dirac");
            if (k == 1) {
                snprintf(n, sizeof n, "layers.%d.pool", g);
                num(add_node(b, n, "maxpool", NULL, NULL), "kernel", 2);
            }
            snprintf(n, sizeof n, "layers.%d.norm%d", g, k);
            j = add_node(b, n, "batchnorm", NULL, NULL);
            num(j, "eps", 1e-12);
            num(j, "momentum", 0.4);
            freeze_weight(b, j);
            snprintf(n, sizeof n, "layers.%d.act%d", g, k);
            simple(b, n, "gelu", NULL);
        }
    num(add_node(b, "pool", "maxpool", NULL, NULL), "kernel", 3);
    simple(b, "flatten", "flatten", NULL);
    j = add_node(b, "head", "dense", NULL, NULL);
    str(j, "units", "classes");
    if (j)
        cJSON_AddBoolToObject(j, "bias", 0);
    num(j, "scale", 1.0 / 9.0);
}

/* Parses "width=X" options of the mobilenets; other models take none. */
static oc_status parse_options(const char *name, int accepts_width, double *width)
{
    const char *o = strchr(name, ':');
    *width = 1.0;
    while (o && *o) {
        const char *end;
        o++;
        end = strchr(o, ',');
        if (!end)
            end = o + strlen(o);
        if (accepts_width && !strncmp(o, "width=", 6)) {
            char buf[32], *stop;
            size_t len = (size_t)(end - o - 6);
            if (len == 0 || len >= sizeof buf)
                return oc_fail(OC_ERR_ARG, "zoo model '%s': bad width", name);
            memcpy(buf, o + 6, len);
            buf[len] = 0;
            *width = strtod(buf, &stop);
            if (*stop || !(*width > 0.0 && *width <= 4.0))
                return oc_fail(OC_ERR_ARG, "zoo model '%s': width must be a number in (0, 4]",
                               name);
        } else {
            return oc_fail(OC_ERR_ARG, "zoo model '%s': unknown option '%.*s'%s", name,
                           (int)(end - o), o,
                           accepts_width ? " (known: width=X)" : " (this model takes none)");
        }
        o = *end ? end : NULL;
    }
    return OC_OK;
}

oc_status oc_zoo_spec(const char *name, int height, int width, int channels, int classes,
                      cJSON **out)
{
    static const int cifar_planes[3] = {16, 32, 64};
    static const int r18_planes[4] = {64, 128, 256, 512};
    builder b = {0};
    int z = zoo_index(name);
    double wm;
    oc_status st;

    *out = NULL;
    if (z < 0)
        return oc_fail(OC_ERR_ARG, "unknown zoo model '%s'", name);
    st = parse_options(name, !strncmp(zoo_names[z], "mobilenetv2", 11), &wm);
    if (st != OC_OK)
        return st;
    b.root = cJSON_CreateObject();
    if (!b.root)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(b.root, "format", "ocelot-graph");
    cJSON_AddNumberToObject(b.root, "version", 1);
    b.nodes = cJSON_AddArrayToObject(b.root, "nodes");
    if (!b.nodes)
        b.oom = 1;
    else if (!strcmp(zoo_names[z], "cnn"))
        build_cnn(&b);
    else if (!strcmp(zoo_names[z], "resnet20"))
        build_resnet(&b, 3, 3, cifar_planes, 1);
    else if (!strcmp(zoo_names[z], "resnet56"))
        build_resnet(&b, 9, 3, cifar_planes, 1);
    else if (!strcmp(zoo_names[z], "resnet18"))
        build_resnet(&b, 2, 4, r18_planes, 0);
    else if (!strcmp(zoo_names[z], "airnet"))
        build_airnet(&b, channels);
    else
        build_mobilenetv2(&b, wm, !strcmp(zoo_names[z], "mobilenetv2_cifar"));
    if (b.oom) {
        cJSON_Delete(b.root);
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    *out = b.root;
    return OC_OK;
}
