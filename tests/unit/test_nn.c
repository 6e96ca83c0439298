/* nn: zoo parameter counts, spec validation messages, JSON round trip, a whole-model gradient
 * check over a graph that uses every op, the planner's no-allocation guarantee, and buffer
 * sharing (inference plans give the same logits as training plans; training plans that share
 * memory by lifetime give the results of plans that share nothing, and no two buffers live at
 * a common step overlap). */
#include "test.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static oc_model *zoo(const char *name, int h, int w, int c, int k)
{
    oc_model *m = NULL;
    oc_status st = oc_model_create(&m, name, h, w, c, k, 7);
    T_CHECK(st == OC_OK, "create %s: %s", name, oc_last_error());
    return m;
}

/* Published figures: Keras cifar10_cnn with 'same' padding (2,168,362); He et al. 2016 / the
 * akamaster CIFAR ResNet-20 (0.27M: 269,722); kuangliu's CIFAR ResNet-18 (11,173,962);
 * torchvision MobileNetV2 (3,504,872). ResNet-56 with option-A shortcuts has 853,018 (the paper's
 * "0.85M"); 855,770 is the count with 1x1 projection shortcuts (+2 x (conv + BN) = 2,752).
 * mobilenetv2_cifar at 10 classes: the same layers as torchvision's with a 10-way classifier,
 * 3,504,872 - 1281 * 990 = 2,236,682. */
static void zoo_param_counts(void)
{
    static const struct {
        const char *name;
        int h, w, c, k;
        int64_t params;
    } cases[] = {
        {"cnn", 32, 32, 3, 10, 2168362},
        {"resnet20", 32, 32, 3, 10, 269722},
        {"resnet56", 32, 32, 3, 10, 853018},
        {"resnet18", 32, 32, 3, 10, 11173962},
        {"mobilenetv2", 224, 224, 3, 1000, 3504872},
        {"mobilenetv2_cifar", 32, 32, 3, 10, 2236682},
        {"airnet", 32, 32, 3, 10, 1972792},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        oc_model *m = zoo(cases[i].name, cases[i].h, cases[i].w, cases[i].c, cases[i].k);
        if (!m)
            continue;
        T_CHECK(oc_model_param_count(m) == cases[i].params, "%s: %lld parameters, want %lld",
                cases[i].name, (long long)oc_model_param_count(m), (long long)cases[i].params);
        oc_test_note("%-18s %10lld parameters, %8.2f MFLOPs/image, %d nodes", cases[i].name,
                     (long long)oc_model_param_count(m), oc_model_flops(m) / 1e6,
                     oc_model_num_nodes(m));
        oc_model_free(m);
    }
    /* the width multiplier shrinks channels (rounded to multiples of 8) */
    {
        oc_model *full = zoo("mobilenetv2_cifar", 32, 32, 3, 10);
        oc_model *half = zoo("mobilenetv2_cifar:width=0.5", 32, 32, 3, 10);
        if (full && half) {
            T_CHECK(oc_model_param_count(half) < oc_model_param_count(full) / 2,
                    "width=0.5: %lld parameters", (long long)oc_model_param_count(half));
            int t = oc_model_find_tensor(half, "features.0.0.weight");
            T_CHECK(t >= 0 && oc_model_tensor(half, t)->shape[0] == 16, "stem of width 0.5");
        }
        oc_model_free(full);
        oc_model_free(half);
    }
}

static void expect_error(const char *spec, oc_status want, const char *needle)
{
    oc_model *m = NULL;
    oc_status st = oc_model_from_json(&m, spec, strlen(spec), 8, 8, 3, 4, 1);
    T_CHECK(st == want, "status %s, want %s for %s", oc_status_name(st), oc_status_name(want),
            spec);
    T_CHECK(m == NULL, "model returned on failure");
    T_CHECK(strstr(oc_last_error(), needle) != NULL, "message '%s' lacks '%s'", oc_last_error(),
            needle);
    oc_model_free(m);
}

static void spec_errors_are_clear(void)
{
    expect_error("{\"nodes\":[{\"name\":\"c\",\"op\":\"conv3d\"}]}", OC_ERR_FORMAT,
                 "node 'c': unknown op 'conv3d'");
    expect_error("{\"nodes\":[{\"name\":\"conv3\",\"op\":\"conv2d\",\"filters\":4,\"kernel\":0}]}",
                 OC_ERR_FORMAT, "node 'conv3': kernel 0 must be >= 1");
    expect_error("{\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"filters\":4,\"kernal\":3}]}",
                 OC_ERR_FORMAT, "unknown attribute 'kernal'");
    expect_error("{\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"kernel\":3}]}", OC_ERR_FORMAT,
                 "node 'c': conv2d needs \"filters\"");
    expect_error("{\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"filters\":4,\"kernel\":9}]}",
                 OC_ERR_SHAPE, "does not fit its 8x8 input");
    expect_error("{\"nodes\":[{\"name\":\"a\",\"op\":\"relu\",\"inputs\":[\"nope\"]}]}",
                 OC_ERR_FORMAT, "node 'a': unknown input 'nope'");
    expect_error("{\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"filters\":4,\"kernel\":3,"
                 "\"stride\":2},{\"name\":\"s\",\"op\":\"add\",\"inputs\":[\"input\",\"c\"]},"
                 "{\"op\":\"dense\",\"units\":\"classes\"}]}",
                 OC_ERR_SHAPE, "node 's': cannot add 'input' (8x8x3) and 'c' (3x3x4)");
    expect_error("{\"nodes\":[{\"name\":\"f\",\"op\":\"flatten\"},{\"name\":\"d\",\"op\":\"dense\","
                 "\"units\":5}]}",
                 OC_ERR_SHAPE, "node 'd': the last node must output [N][classes] = [N][4]");
    expect_error("{\"nodes\":[{\"name\":\"r\",\"op\":\"relu\"},{\"name\":\"d\",\"op\":\"dense\","
                 "\"units\":4,\"inputs\":[\"input\"]}]}",
                 OC_ERR_FORMAT, "node 'r': its output is never used");
    expect_error("{\"nodes\":[{\"name\":\"d\",\"op\":\"dropout\",\"p\":1}]}", OC_ERR_FORMAT,
                 "node 'd': p 1 must be in [0, 1)");
    expect_error("{\"nodes\":[{\"name\":\"a\",\"op\":\"add\"}]}", OC_ERR_FORMAT,
                 "node 'a': add takes 2 inputs, not 1");
    expect_error("{\"nodes\":[{\"name\":\"x\",\"op\":\"relu\"},{\"name\":\"x\",\"op\":\"relu\"}]}",
                 OC_ERR_FORMAT, "'x' is used twice");
    expect_error("{\"nodes\":[}", OC_ERR_FORMAT, "invalid JSON");
    expect_error("{\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"filters\":4,\"kernel\":3,"
                 "\"bias\":false,\"freeze\":[\"bias\"]}]}",
                 OC_ERR_FORMAT, "node 'c': freeze names \"bias\" but it has none");
    expect_error("{\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"filters\":4,\"kernel\":3,"
                 "\"freeze\":[\"gamma\"]}]}",
                 OC_ERR_FORMAT, "node 'c': freeze must be true, false or a list");
    expect_error("{\"nodes\":[{\"name\":\"r\",\"op\":\"relu\",\"freeze\":true}]}",
                 OC_ERR_FORMAT, "unknown attribute 'freeze' for relu");
    expect_error("{\"nodes\":[{\"name\":\"d\",\"op\":\"dense\",\"units\":4,\"init\":\"dirac\"}]}",
                 OC_ERR_FORMAT, "node 'd': init \"dirac\" and \"whiten\" are for conv2d");
    expect_error("{\"format\":\"ocelot-graph\",\"version\":2,\"nodes\":[]}", OC_ERR_FORMAT,
                 "version 2 is not supported");
    {
        oc_model *m = NULL;
        T_CHECK(oc_model_create(&m, "resnet21", 32, 32, 3, 10, 1) == OC_ERR_ARG, "bad zoo name");
        T_CHECK(strstr(oc_last_error(), "resnet20") != NULL, "no zoo list: %s", oc_last_error());
        T_CHECK(oc_model_create(&m, "resnet20:width=2", 32, 32, 3, 10, 1) == OC_ERR_ARG,
                "option accepted");
        T_CHECK(oc_model_create(&m, "mobilenetv2:width=0", 32, 32, 3, 10, 1) == OC_ERR_ARG,
                "width 0 accepted");
    }
}

static void json_round_trip(void)
{
    const char *names[] = {"cnn", "resnet20", "resnet56", "mobilenetv2_cifar:width=0.75",
                           "airnet"};
    for (int i = 0; i < 5; i++) {
        oc_model *a = zoo(names[i], 32, 32, 3, 10), *b = NULL;
        char *ja, *jb;
        if (!a)
            continue;
        ja = oc_model_to_json(a);
        T_CHECK(ja != NULL, "to_json");
        T_CHECK(oc_model_from_json(&b, ja, strlen(ja), 32, 32, 3, 10, 7) == OC_OK, "%s: %s",
                names[i], oc_last_error());
        if (b) {
            size_t na, nb;
            jb = oc_model_to_json(b);
            T_CHECK(jb && !strcmp(ja, jb), "%s: JSON differs after a round trip", names[i]);
            T_CHECK(oc_model_num_tensors(a) == oc_model_num_tensors(b), "tensor count");
            for (int t = 0; t < oc_model_num_tensors(a) && t < oc_model_num_tensors(b); t++)
                T_CHECK(!strcmp(oc_model_tensor(a, t)->name, oc_model_tensor(b, t)->name) &&
                            oc_model_tensor(a, t)->numel == oc_model_tensor(b, t)->numel,
                        "tensor %d differs", t);
            float *pa = oc_model_params(a, &na), *pb = oc_model_params(b, &nb);
            T_CHECK(na == nb && !memcmp(pa, pb, na * sizeof *pa),
                    "%s: same seed, different parameters", names[i]);
            T_CHECK(fabs(oc_model_flops(a) - oc_model_flops(b)) < 1, "FLOPs differ");
            free(jb);
        }
        /* the final dense says "classes", so the same spec fits another class count */
        oc_model_free(b);
        b = NULL;
        T_CHECK(oc_model_from_json(&b, ja, strlen(ja), 32, 32, 3, 7, 7) == OC_OK, "%s: %s",
                names[i], oc_last_error());
        T_CHECK(b && oc_model_num_classes(b) == 7, "classes");
        free(ja);
        oc_model_free(a);
        oc_model_free(b);
    }
}

/* Every op type in one small graph: input 5x7x3, 3 classes. The ops with kinks (relu,
 * leaky_relu, relu6, hardswish, maxpool) sit on small tensors, so fewer central differences
 * straddle a kink (those are detected and skipped, see kink_signature). */
static const char *all_ops_spec =
    "{\"format\":\"ocelot-graph\",\"version\":1,\"nodes\":["
    "{\"name\":\"c1\",\"op\":\"conv2d\",\"filters\":6,\"kernel\":3,\"padding\":\"same\","
    "\"init\":\"dirac\"},"
    "{\"name\":\"bn1\",\"op\":\"batchnorm\"},"
    "{\"name\":\"g\",\"op\":\"gelu\"},"
    "{\"name\":\"c2\",\"op\":\"conv2d\",\"filters\":6,\"kernel\":[3,2],\"stride\":2,"
    "\"padding\":1,\"dilation\":[1,2],\"groups\":2},"
    "{\"name\":\"s\",\"op\":\"silu\"},"
    "{\"name\":\"ap\",\"op\":\"avgpool\",\"kernel\":3,\"stride\":1,\"padding\":1,"
    "\"count_include_pad\":false},"
    "{\"name\":\"mp\",\"op\":\"maxpool\",\"kernel\":2,\"stride\":1,\"padding\":\"same\",\"inputs\":[\"s\"]},"
    "{\"name\":\"hs\",\"op\":\"hardswish\"},"
    "{\"name\":\"sg\",\"op\":\"sigmoid\",\"inputs\":[\"ap\"]},"
    "{\"name\":\"cat\",\"op\":\"concat\",\"inputs\":[\"hs\",\"sg\",\"s\"]},"
    "{\"name\":\"sq\",\"op\":\"global_avgpool\"},"
    "{\"name\":\"fc_se\",\"op\":\"dense\",\"units\":18},"
    "{\"name\":\"lr\",\"op\":\"leaky_relu\",\"alpha\":0.2},"
    "{\"name\":\"r6\",\"op\":\"relu6\"},"
    "{\"name\":\"sgm\",\"op\":\"sigmoid\"},"
    "{\"name\":\"cm\",\"op\":\"channel_mul\",\"inputs\":[\"cat\",\"sgm\"]},"
    "{\"name\":\"c3\",\"op\":\"conv2d\",\"filters\":12,\"kernel\":1},"
    "{\"name\":\"sp\",\"op\":\"shortcut_pad\",\"channels\":12,\"stride\":2,\"inputs\":[\"g\"]},"
    "{\"name\":\"ad\",\"op\":\"add\",\"inputs\":[\"c3\",\"sp\"]},"
    "{\"name\":\"bn2\",\"op\":\"batchnorm\",\"momentum\":0.2,\"eps\":0.001},"
    "{\"name\":\"r\",\"op\":\"relu\"},"
    "{\"name\":\"id\",\"op\":\"identity\"},"
    "{\"name\":\"dr\",\"op\":\"dropout\",\"p\":0.3},"
    "{\"name\":\"fl\",\"op\":\"flatten\"},"
    "{\"name\":\"out\",\"op\":\"dense\",\"units\":\"classes\",\"scale\":-0.7}]}";

#define GN 2
#define GH 5
#define GW 7
#define GC 3
/* conv2d.c's test hook: 0 forces the portable kernels. */
void oc_conv2d_allow_simd(int allow);

#define GK 3

/* Which side of every kink the last forward was on: the inputs of relu / leaky_relu (0),
 * relu6 (0, 6), hardswish (-3, 3) and every max-pool argmax, hashed. A central difference whose
 * two sides differ here straddles a kink and says nothing about the derivative. */
static uint64_t kink_signature(const oc_model *m, int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 1; i < m->n_nodes; i++) {
        const oc_node *nd = &m->nodes[i];
        const float *x = m->nodes[nd->in[0]].y;
        int64_t cnt = (int64_t)n * oc_nn_size(&m->nodes[nd->in[0]]);
        for (int64_t k = 0; k < cnt; k++) {
            int side;
            switch (nd->op) {
            case OC_OP_RELU:
            case OC_OP_LEAKY_RELU: side = x[k] > 0; break;
            case OC_OP_RELU6: side = (x[k] > 0) + (x[k] > 6); break;
            case OC_OP_HARDSWISH: side = (x[k] > -3) + (x[k] > 3); break;
            default: side = -1;
            }
            if (side < 0)
                break;
            h = (h ^ (uint64_t)side) * 1099511628211ull;
        }
        if (nd->op == OC_OP_MAXPOOL)
            for (int64_t k = 0; k < (int64_t)n * oc_nn_size(nd); k++)
                h = (h ^ (uint64_t)(uint32_t)nd->argmax[k]) * 1099511628211ull;
    }
    return h;
}

/* L = sum g * logits in double, dropout masks replayed from the saved stream; *sig receives
 * the kink signature. */
static double loss_of(oc_model *m, const float *x, const float *g, const oc_rng *saved,
                      uint64_t *sig)
{
    const float *logits;
    double L = 0;
    *oc_model_rng(m) = *saved;
    if (oc_model_forward(m, x, GN, 1, &logits) != OC_OK)
        return NAN;
    for (int i = 0; i < GN * GK; i++)
        L += (double)g[i] * (double)logits[i];
    *sig = kink_signature(m, GN);
    return L;
}

/* Central difference of entry *v; returns 0 (and skips) when the step straddles a kink. */
static int numeric(oc_model *m, float *v, const float *x, const float *g, const oc_rng *saved,
                   uint64_t base, double *out)
{
    const float h = 1e-2f, keep = *v;
    uint64_t sp, sm;
    double lp, lm;
    *v = keep + h;
    lp = loss_of(m, x, g, saved, &sp);
    *v = keep - h;
    lm = loss_of(m, x, g, saved, &sm);
    *v = keep;
    *out = (lp - lm) / (2.0 * (double)h);
    return sp == base && sm == base;
}

static void gradcheck_every_op(void)
{
    oc_model *m = NULL;
    float x[GN * GH * GW * GC], g[GN * GK];
    const float *logits;
    oc_rng r, saved;
    int seen[OC_OP_COUNT] = {0};
    double worst = 0, worst_x = 0;
    const char *worst_name = "";
    double floor_scale = 0;
    uint64_t base;
    int n_skipped = 0, n_checked = 0;

    if (oc_model_from_json(&m, all_ops_spec, strlen(all_ops_spec), GH, GW, GC, GK, 3) != OC_OK) {
        T_CHECK(0, "build: %s", oc_last_error());
        return;
    }
    for (int i = 1; i < m->n_nodes; i++)
        seen[m->nodes[i].op] = 1;
    for (int op = 1; op < OC_OP_COUNT; op++)
        T_CHECK(seen[op], "the graph lacks op %s", oc_nn_op((oc_op_type)op)->name);
    oc_rng_seed(&r, 11, 0);
    for (int i = 0; i < GN * GH * GW * GC; i++)
        x[i] = oc_rng_normal(&r);
    for (int i = 0; i < GN * GK; i++)
        g[i] = oc_rng_normal(&r);
    T_CHECK(oc_model_set_input_grad(m, 1) == OC_OK, "input grad");
    /* kink_signature reads outputs after forward, which a shared plan may already have reused
     * (training_plan_sharing_is_exact: sharing changes no bit of the results) */
    m->no_sharing = 1;
    saved = *oc_model_rng(m);
    oc_model_zero_grad(m);
    *oc_model_rng(m) = saved;
    T_CHECK(oc_model_forward(m, x, GN, 1, &logits) == OC_OK, "forward: %s", oc_last_error());
    T_CHECK(m->dropout_used, "dropout drew no mask");
    /* before backward: its gradients reuse the memory of outputs it no longer needs */
    base = kink_signature(m, GN);
    T_CHECK(oc_model_backward(m, g) == OC_OK, "backward: %s", oc_last_error());

    /* parameters: per tensor, max |numeric - analytic| <= 1e-2 * max(max |analytic|, floor),
     * floor = 1e-3 of the largest gradient (a conv bias before batch norm has a true gradient
     * of 0, where only rounding is left) */
    for (size_t i = 0; i < oc_model_num_tensors(m) + 0u; i++) {
        const oc_param_info *ti = oc_model_tensor(m, (int)i);
        const float *an = oc_model_grads(m, NULL) + ti->offset;
        if (ti->kind != OC_PARAM_STATE)
            for (size_t k = 0; k < ti->numel; k++)
                floor_scale = fmax(floor_scale, 1e-3 * fabs((double)an[k]));
    }
    for (int t = 0; t < oc_model_num_tensors(m); t++) {
        const oc_param_info *ti = oc_model_tensor(m, t);
        float *p, *an;
        double err = 0, scale = floor_scale, num;
        int skipped = 0;
        if (ti->kind == OC_PARAM_STATE)
            continue;
        p = oc_model_params(m, NULL) + ti->offset;
        an = oc_model_grads(m, NULL) + ti->offset;
        /* every entry of small tensors, an evenly spread subset (about 40) of larger ones */
        size_t step = ti->numel > 40 ? ti->numel / 40 : 1, tried = 0;
        for (size_t i = 0; i < ti->numel; i++)
            scale = fmax(scale, fabs((double)an[i]));
        for (size_t i = 0; i < ti->numel; i += step) {
            tried++;
            if (!numeric(m, &p[i], x, g, &saved, base, &num)) {
                skipped++;
                continue;
            }
            err = fmax(err, fabs(num - (double)an[i]));
        }
        n_skipped += skipped;
        n_checked += (int)tried - skipped;
        T_CHECK(err <= 1e-2 * scale, "%s: max |numeric - analytic| %.3g > 1e-2 * %.3g",
                ti->name, err, scale);
        T_CHECK(skipped * 4 <= 3 * (int)tried, "%s: %d of %zu entries straddle a kink",
                ti->name, skipped, tried);
        if (err / scale > worst) {
            worst = err / scale;
            worst_name = ti->name;
        }
    }
    /* the input gradient */
    {
        float dx[GN * GH * GW * GC];
        const float *gx = oc_model_input_grad(m);
        double err = 0, scale = 0, num;
        T_CHECK(gx != NULL, "no input gradient");
        if (gx) {
            memcpy(dx, gx, sizeof dx);
            for (int i = 0; i < GN * GH * GW * GC; i++)
                scale = fmax(scale, fabs((double)dx[i]));
            for (int i = 0; i < GN * GH * GW * GC; i += 3)
                if (numeric(m, &x[i], x, g, &saved, base, &num))
                    err = fmax(err, fabs(num - (double)dx[i]));
                else
                    n_skipped++;
            T_CHECK(err <= 1e-2 * scale, "input: max |numeric - analytic| %.3g > 1e-2 * %.3g",
                    err, scale);
            worst_x = scale > 0 ? err / scale : err;
        }
    }
    oc_test_note("%lld parameters, %d entries checked, %d straddling a kink skipped; worst "
                 "relative error %.2e (%s); input %.2e",
                 (long long)oc_model_param_count(m), n_checked, n_skipped, worst, worst_name,
                 worst_x);
    oc_model_free(m);
}

static void plan_once_then_no_allocation(void)
{
    oc_model *m = zoo("resnet20", 16, 16, 3, 10);
    float x[4 * 16 * 16 * 3], dl[4 * 10];
    const float *logits;
    size_t used, cap;
    int plans;
    if (!m)
        return;
    for (int i = 0; i < 4 * 16 * 16 * 3; i++)
        x[i] = sinf((float)i * 0.37f);
    for (int i = 0; i < 40; i++)
        dl[i] = cosf((float)i);
    T_CHECK(oc_model_plan(m, 4, 1) == OC_OK, "plan: %s", oc_last_error());
    used = oc_nn_arena_used(m);
    cap = oc_model_plan_bytes(m);
    plans = oc_nn_plan_count(m);
    for (int step = 0; step < 4; step++) {
        int n = step % 2 ? 2 : 4;
        oc_model_zero_grad(m);
        T_CHECK(oc_model_forward(m, x, n, 1, &logits) == OC_OK, "forward");
        T_CHECK(oc_model_backward(m, dl) == OC_OK, "backward");
        T_CHECK(oc_model_backward(m, dl) == OC_ERR_ARG, "a second backward accepted");
        T_CHECK(oc_model_forward(m, x, n, 0, &logits) == OC_OK, "eval forward");
    }
    T_CHECK(oc_nn_plan_count(m) == plans, "re-planned %d times", oc_nn_plan_count(m) - plans);
    T_CHECK(oc_nn_arena_used(m) == used && oc_model_plan_bytes(m) == cap,
            "arena changed: used %zu -> %zu", used, oc_nn_arena_used(m));
    T_CHECK(oc_model_forward(m, x, 0, 1, &logits) == OC_ERR_ARG, "batch 0 accepted");
    oc_test_note("training plan for batch 4 at 16x16: %.2f MiB, %d plan(s) for 8 steps",
                 (double)cap / 1048576.0, oc_nn_plan_count(m));
    /* a larger batch plans again, once */
    T_CHECK(oc_model_forward(m, x, 1, 1, &logits) == OC_OK, "forward");
    T_CHECK(oc_model_backward(m, dl) == OC_OK, "backward");
    oc_model_free(m);
    m = NULL;
    T_CHECK(oc_model_create(&m, "resnet20", 16, 16, 3, 10, 7) == OC_OK, "create");
    if (m) {
        T_CHECK(oc_model_backward(m, dl) == OC_ERR_ARG, "backward without forward accepted");
        oc_model_free(m);
    }
}

/* Inference plans share activation buffers by lifetime: the logits must equal those of a
 * training plan (whose inference runs every node on its own) within the rounding of the conv
 * epilogues, and the plan must be smaller. */
static void inference_plan_shares_buffers(void)
{
    const char *names[] = {"resnet20", "mobilenetv2_cifar:width=0.5", "cnn"};
    for (int k = 0; k < 3; k++) {
        oc_model *m = zoo(names[k], 16, 16, 3, 10);
        float x[3 * 16 * 16 * 3], ref[30];
        const float *logits;
        size_t infer_bytes;
        if (!m)
            continue;
        for (int i = 0; i < 3 * 16 * 16 * 3; i++)
            x[i] = sinf((float)i * 0.11f);
        T_CHECK(oc_model_plan(m, 3, 0) == OC_OK, "plan");
        infer_bytes = oc_model_plan_bytes(m);
        T_CHECK(oc_model_forward(m, x, 3, 0, &logits) == OC_OK, "forward");
        memcpy(ref, logits, sizeof ref);
        T_CHECK(oc_model_plan(m, 3, 1) == OC_OK, "plan");
        T_CHECK(oc_model_forward(m, x, 3, 0, &logits) == OC_OK, "forward");
        T_CLOSE(names[k], logits, ref, 30, 1e-5, 1e-5);
        T_CHECK(infer_bytes < oc_model_plan_bytes(m), "inference plan not smaller");
        oc_test_note("%s batch 3 at 16x16: inference plan %.2f MiB, training plan %.2f MiB",
                     names[k], (double)infer_bytes / 1048576.0,
                     (double)oc_model_plan_bytes(m) / 1048576.0);
        oc_model_free(m);
    }
}

/* Planner fusion (batch norm + ReLU / ReLU6 / GELU, add + ReLU, plan.c) gives bit for bit the results of running
 * every node on its own: training logits, every gradient and running statistic after two
 * steps; inference logits (with the conv epilogues too) within rounding; the fused training
 * plan is smaller. */
static void fusion_matches_separate_nodes(void)
{
    /* batch norm + ReLU, ReLU6 and GELU (airnet), add + ReLU */
    const char *names[] = {"resnet20", "mobilenetv2_cifar:width=0.5", "airnet"};
    const int hw[] = {16, 16, 28};
    for (int k = 0; k < 3; k++) {
        oc_model *m[2] = {zoo(names[k], hw[k], hw[k], 3, 10), zoo(names[k], hw[k], hw[k], 3, 10)};
        float x[3 * 28 * 28 * 3], dl[30], out[2][30];
        size_t bytes[2], np = 0, ns = 0;
        const float *logits;
        if (!m[0] || !m[1]) {
            oc_model_free(m[0]);
            oc_model_free(m[1]);
            continue;
        }
        for (int i = 0; i < 3 * hw[k] * hw[k] * 3; i++)
            x[i] = sinf((float)i * 0.23f);
        for (int i = 0; i < 30; i++)
            dl[i] = cosf((float)i * 0.7f);
        m[1]->no_fusion = 1;
        for (int v = 0; v < 2; v++) {
            T_CHECK(oc_model_plan(m[v], 3, 1) == OC_OK, "plan");
            bytes[v] = oc_model_plan_bytes(m[v]);
            oc_model_zero_grad(m[v]);
            for (int step = 0; step < 2; step++) {
                T_CHECK(oc_model_forward(m[v], x, 3, 1, &logits) == OC_OK, "forward");
                T_CHECK(oc_model_backward(m[v], dl) == OC_OK, "backward");
            }
            memcpy(out[v], logits, sizeof out[v]);
        }
        T_CHECK(!memcmp(out[0], out[1], sizeof out[0]), "%s: training logits differ", names[k]);
        T_CHECK(!memcmp(oc_model_grads(m[0], &np), oc_model_grads(m[1], NULL),
                        np * sizeof(float)),
                "%s: gradients differ", names[k]);
        T_CHECK(!memcmp(oc_model_state(m[0], &ns), oc_model_state(m[1], NULL),
                        ns * sizeof(float)),
                "%s: running statistics differ", names[k]);
        T_CHECK(bytes[0] < bytes[1], "%s: fused plan %zu bytes, unfused %zu", names[k],
                bytes[0], bytes[1]);
        for (int v = 0; v < 2; v++) {
            T_CHECK(oc_model_plan(m[v], 3, 0) == OC_OK, "plan");
            T_CHECK(oc_model_forward(m[v], x, 3, 0, &logits) == OC_OK, "forward");
            memcpy(out[v], logits, sizeof out[v]);
        }
        /* inference also runs the conv epilogues (epilogue.c), whose GEMM blocks may sum in
         * another order than the whole-layer GEMM: equal within rounding */
        T_CLOSE(names[k], out[0], out[1], 30, 1e-5, 1e-5);
        oc_test_note("%s batch 3 at %dx%d: training plan fused %.2f MiB, unfused %.2f MiB",
                     names[k], hw[k], hw[k], (double)bytes[0] / 1048576.0,
                     (double)bytes[1] / 1048576.0);
        oc_model_free(m[0]);
        oc_model_free(m[1]);
    }
}

/* Inference conv epilogues (epilogue.c): a conv's batch norm, residual add and activation run
 * in its output pass. Against the unfused oracle (no_fusion) on models with every chain kind
 * (resnet18: projection shortcuts, cnn: conv + bias + ReLU without batch norm, mobilenetv2:
 * ReLU6, depthwise, residuals without activation), with non-trivial running statistics; the
 * stored parameters and statistics are left untouched; and the folded values follow the
 * parameters: after writing new weights and statistics through oc_model_params /
 * oc_model_state (no re-plan, no training forward in between) and after a training step, the
 * fused logits still match the unfused ones computed from the same parameters. */
static void conv_epilogues_match_unfused(void)
{
    const char *names[] = {"resnet20", "resnet18", "cnn", "mobilenetv2_cifar:width=0.5"};
    for (int k = 0; k < 4; k++) {
        oc_model *m[2] = {zoo(names[k], 16, 16, 3, 10), zoo(names[k], 16, 16, 3, 10)};
        float x[2 * 16 * 16 * 3], dl[20], out[2][20];
        size_t np = 0, ns = 0;
        float *p0, *s0, *keep_p, *keep_s;
        const float *logits;
        int fused = 0;
        if (!m[0] || !m[1]) {
            oc_model_free(m[0]);
            oc_model_free(m[1]);
            continue;
        }
        m[1]->no_fusion = 1;
        for (int i = 0; i < 2 * 16 * 16 * 3; i++)
            x[i] = sinf((float)i * 0.37f);
        for (int i = 0; i < 20; i++)
            dl[i] = cosf((float)i * 0.5f) * 0.1f;
        /* running statistics away from (0, 1) so the folding has something to fold */
        p0 = oc_model_params(m[0], &np);
        s0 = oc_model_state(m[0], &ns);
        for (size_t i = 0; i < ns; i++)
            s0[i] = 0.5f + 0.4f * sinf((float)i);
        memcpy(oc_model_state(m[1], NULL), s0, ns * sizeof(float));
        for (int round = 0; round < 3; round++) {
            for (int v = 0; v < 2; v++) {
                if (round == 0)
                    T_CHECK(oc_model_plan(m[v], 2, 0) == OC_OK, "plan");
                T_CHECK(oc_model_forward(m[v], x, 2, 0, &logits) == OC_OK, "forward");
                memcpy(out[v], logits, sizeof out[v]);
            }
            for (int i = 1; i < m[0]->n_nodes; i++)
                fused += m[0]->nodes[i].epi_last > 0;
            T_CHECK(fused > 0, "%s: no conv epilogue planned", names[k]);
            T_CLOSE(names[k], out[0], out[1], 20, 1e-5, 1e-5);
            if (round == 0) {
                /* inference leaves the stored tensors alone */
                keep_p = malloc(np * sizeof(float));
                keep_s = malloc(ns * sizeof(float));
                memcpy(keep_p, p0, np * sizeof(float));
                memcpy(keep_s, s0, ns * sizeof(float));
                T_CHECK(oc_model_forward(m[0], x, 2, 0, &logits) == OC_OK, "forward");
                T_CHECK(!memcmp(keep_p, p0, np * sizeof(float)) &&
                            !memcmp(keep_s, s0, ns * sizeof(float)),
                        "%s: inference changed the parameters", names[k]);
                free(keep_p);
                free(keep_s);
                /* new weights and statistics written in place, same plan */
                for (size_t i = 0; i < np; i++)
                    p0[i] *= 1.0f + 0.1f * cosf((float)i);
                for (size_t i = 0; i < ns; i++)
                    s0[i] = 0.3f + 0.2f * cosf((float)i);
                memcpy(oc_model_params(m[1], NULL), p0, np * sizeof(float));
                memcpy(oc_model_state(m[1], NULL), s0, ns * sizeof(float));
            } else if (round == 1) {
                /* a training step (re-plans for training; running statistics move) */
                for (int v = 0; v < 2; v++) {
                    oc_model_zero_grad(m[v]);
                    T_CHECK(oc_model_forward(m[v], x, 2, 1, &logits) == OC_OK, "train fwd");
                    T_CHECK(oc_model_backward(m[v], dl) == OC_OK, "backward");
                }
                T_CHECK(!memcmp(oc_model_state(m[0], NULL), oc_model_state(m[1], NULL),
                                ns * sizeof(float)),
                        "%s: training step differs", names[k]);
            }
        }
        oc_model_free(m[0]);
        oc_model_free(m[1]);
    }
}

static void init_follows_pytorch(void)
{
    oc_model *m = zoo("cnn", 32, 32, 3, 10);
    if (!m)
        return;
    /* conv1.weight: U(-1/sqrt(27), 1/sqrt(27)); fc1.weight fan_in 4096 */
    const char *names[] = {"conv1.weight", "conv1.bias", "fc1.weight"};
    const double fan[] = {27, 27, 4096};
    for (int k = 0; k < 3; k++) {
        const oc_param_info *t = oc_model_tensor(m, oc_model_find_tensor(m, names[k]));
        const float *p = oc_model_params(m, NULL) + t->offset;
        double b = 1.0 / sqrt(fan[k]), mx = 0, sq = 0;
        for (size_t i = 0; i < t->numel; i++) {
            mx = fmax(mx, fabs((double)p[i]));
            sq += (double)p[i] * (double)p[i];
        }
        T_CHECK(mx <= b && (t->numel < 1000 || mx > 0.99 * b), "%s: max %g, bound %g", names[k], mx, b);
        if (t->numel > 1000)
            T_CHECK(fabs(sqrt(sq / (double)t->numel) - b / sqrt(3.0)) < 0.02 * b, "%s: rms", names[k]);
    }
    oc_model_free(m);
    m = zoo("resnet20", 32, 32, 3, 10);
    if (m) {
        const oc_param_info *v = oc_model_tensor(m, oc_model_find_tensor(m, "bn1.running_var"));
        const oc_param_info *w = oc_model_tensor(m, oc_model_find_tensor(m, "bn1.weight"));
        T_CHECK(v->kind == OC_PARAM_STATE && oc_model_state(m, NULL)[v->offset] == 1.0f, "var");
        T_CHECK(w->kind == OC_PARAM_NORM_SCALE && oc_model_params(m, NULL)[w->offset] == 1.0f,
                "gamma");
        oc_model_free(m);
    }
}


/* The offset assignment on random requests: buffers live at a common step never overlap,
 * buffers that are not share memory, the total covers every buffer. */
static void assign_offsets_never_overlap(void)
{
    oc_rng r;
    oc_rng_seed(&r, 5, 0);
    for (int trial = 0; trial < 200; trial++) {
        oc_nn_buf b[48];
        const int n = 1 + (int)(oc_rng_uniform(&r) * 47.0f);
        size_t total, need = 0;
        int bad = 0;
        for (int i = 0; i < n; i++) {
            int s0 = (int)(oc_rng_uniform(&r) * 30.0f), len = (int)(oc_rng_uniform(&r) * 8.0f);
            b[i].size = (size_t)(oc_rng_uniform(&r) * 9.0f) * 64; /* some 0 */
            b[i].start = s0;
            b[i].end = s0 + len;
            b[i].off = 12345;
        }
        total = oc_nn_assign_offsets(b, n);
        for (int i = 0; i < n; i++) {
            if (b[i].size && b[i].off + b[i].size > need)
                need = b[i].off + b[i].size;
            for (int k = i + 1; k < n; k++)
                if (b[i].size && b[k].size && !(b[i].end < b[k].start || b[k].end < b[i].start) &&
                    b[i].off < b[k].off + b[k].size && b[k].off < b[i].off + b[i].size)
                    bad++;
        }
        T_CHECK(bad == 0, "trial %d: %d overlapping pairs", trial, bad);
        T_CHECK(total == need, "trial %d: total %zu, buffers end at %zu", trial, total, need);
    }
    {
        /* a chain, each buffer live together with the next: the first and the last share */
        oc_nn_buf b[3] = {{640, 0, 1, 0}, {128, 1, 2, 0}, {640, 2, 3, 0}};
        T_CHECK(oc_nn_assign_offsets(b, 3) == 768, "disjoint lifetimes did not share");
        T_CHECK(b[0].off == b[2].off && b[1].off == 640, "offsets %zu %zu %zu", b[0].off,
                b[1].off, b[2].off);
    }
}

/* A model of the zoo or the all-ops graph. */
static oc_model *plan_model(const char *name, int h, int w)
{
    oc_model *m = NULL;
    oc_status st = name ? oc_model_create(&m, name, h, w, 3, GK, 7)
                        : oc_model_from_json(&m, all_ops_spec, strlen(all_ops_spec), h, w, 3, GK, 7);
    T_CHECK(st == OC_OK, "create %s: %s", name ? name : "all ops", oc_last_error());
    return m;
}

/* Deterministic inputs sin(i fx) and logit gradients cos(i fd). */
static void waves(float *x, int nx, float fx, float *dl, int nd, float fd)
{
    for (int i = 0; i < nx; i++)
        x[i] = sinf((float)i * fx);
    for (int i = 0; i < nd; i++)
        dl[i] = cosf((float)i * fd);
}

/* Training plans share memory between buffers whose lifetimes on the forward + backward
 * timeline do not overlap (an output dropped after its last reader, gradients in the memory of
 * outputs backward is done with). A lifetime cut short lets a later buffer overwrite values
 * still to be read: the results would then differ from a plan that shares nothing
 * (no_sharing). Two steps with an update between, then logits, every gradient, the input
 * gradient and the running statistics must match bit for bit, and the shared plan must have no
 * conflicting pair of buffers and be smaller. */
static void training_plan_sharing_is_exact(void)
{
    static const struct {
        const char *name; /* NULL: the all-ops graph */
        int h, w, input_grad;
    } cases[] = {{"cnn", 16, 16, 0},
                 {"resnet20", 16, 16, 1},
                 {"resnet18", 8, 8, 0},
                 {"mobilenetv2_cifar:width=0.5", 16, 16, 0},
                 {"airnet", 32, 32, 1},
                 {NULL, GH, GW, 1}};
    enum { NB = 3 };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *nm = cases[c].name ? cases[c].name : "all ops";
        const int h = cases[c].h, w = cases[c].w, n_in = NB * h * w * 3;
        oc_model *m[2] = {plan_model(cases[c].name, h, w), plan_model(cases[c].name, h, w)};
        float *x = malloc((size_t)n_in * sizeof *x), *dx[2] = {NULL, NULL};
        float dl[NB * GK], out[2][NB * GK];
        size_t bytes[2], np = 0, ns = 0;
        const float *logits = NULL;
        if (!m[0] || !m[1] || !x) {
            oc_model_free(m[0]);
            oc_model_free(m[1]);
            free(x);
            continue;
        }
        waves(x, n_in, 0.37f, dl, NB * GK, 0.9f);
        m[1]->no_sharing = 1;
        for (int v = 0; v < 2; v++) {
            float *p = oc_model_params(m[v], &np);
            const float *g = oc_model_grads(m[v], NULL);
            T_CHECK(oc_model_set_input_grad(m[v], cases[c].input_grad) == OC_OK, "input grad");
            T_CHECK(oc_model_plan(m[v], NB, 1) == OC_OK, "plan: %s", oc_last_error());
            bytes[v] = oc_model_plan_bytes(m[v]);
            T_CHECK(oc_nn_plan_conflicts(m[v]) == 0, "%s: %d conflicting buffer pairs", nm,
                    oc_nn_plan_conflicts(m[v]));
            for (int step = 0; step < 2; step++) {
                oc_model_zero_grad(m[v]);
                T_CHECK(oc_model_forward(m[v], x, NB, 1, &logits) == OC_OK, "forward");
                memcpy(out[v], logits, sizeof out[v]);
                T_CHECK(oc_model_backward(m[v], dl) == OC_OK, "backward");
                if (step == 0)
                    for (size_t i = 0; i < np; i++)
                        p[i] -= 0.05f * g[i];
            }
            if (cases[c].input_grad && oc_model_input_grad(m[v])) {
                dx[v] = malloc((size_t)n_in * sizeof *dx[v]);
                if (dx[v])
                    memcpy(dx[v], oc_model_input_grad(m[v]), (size_t)n_in * sizeof *dx[v]);
            }
        }
        T_CHECK(!memcmp(out[0], out[1], sizeof out[0]), "%s: training logits differ", nm);
        T_CHECK(!memcmp(oc_model_grads(m[0], NULL), oc_model_grads(m[1], NULL),
                        np * sizeof(float)),
                "%s: gradients differ", nm);
        T_CHECK(!memcmp(oc_model_state(m[0], &ns), oc_model_state(m[1], NULL),
                        ns * sizeof(float)),
                "%s: running statistics differ", nm);
        if (cases[c].input_grad)
            T_CHECK(dx[0] && dx[1] && !memcmp(dx[0], dx[1], (size_t)n_in * sizeof(float)),
                    "%s: input gradients differ", nm);
        T_CHECK(bytes[0] < bytes[1], "%s: shared plan %zu bytes, unshared %zu", nm, bytes[0],
                bytes[1]);
        oc_test_note("%s batch %d at %dx%d: training plan %.2f MiB, sharing nothing %.2f MiB", nm,
                     NB, h, w, (double)bytes[0] / 1048576.0, (double)bytes[1] / 1048576.0);
        oc_model_free(m[0]);
        oc_model_free(m[1]);
        free(x);
        free(dx[0]);
        free(dx[1]);
    }
}

/* Tensors marked untrained (oc_model_set_trainable) cut the backward short: with the stem of
 * resnet20 and of airnet untrained, every other gradient is bitwise the full backward's, the
 * untrained ones stay as they were, and the layers before the first trained one spend no time
 * in backward (the profile counts none); with the input's gradient wanted, nothing is cut. */
static void untrained_prefix_skips_backward(void)
{
    static const struct {
        const char *name;
        int h, w, cut; /* nodes [1, cut) untrained */
    } cases[] = {{"resnet20", 16, 16, 4}, {"airnet", 32, 32, 3}, {"cnn", 16, 16, 6}};
    enum { NB = 3 };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int h = cases[c].h, w = cases[c].w, n_in = NB * h * w * 3;
        oc_model *m[2] = {plan_model(cases[c].name, h, w), plan_model(cases[c].name, h, w)};
        float *x = malloc((size_t)n_in * sizeof *x), dl[NB * GK];
        const float *logits;
        size_t np = 0;
        int cut_tensors = 0;
        if (!m[0] || !m[1] || !x) {
            oc_model_free(m[0]);
            oc_model_free(m[1]);
            free(x);
            continue;
        }
        waves(x, n_in, 0.29f, dl, NB * GK, 0.7f);
        /* m[1]: every parameter tensor of nodes [1, cut) untrained */
        for (int i = 1; i < cases[c].cut; i++) {
            const oc_node *nd = &m[1]->nodes[i];
            for (int k = 0; k < nd->nt; k++)
                if (m[1]->tensors[nd->t0 + k].kind != OC_PARAM_STATE) {
                    T_CHECK(oc_model_set_trainable(m[1], nd->t0 + k, 0) == OC_OK, "set");
                    cut_tensors++;
                }
        }
        T_CHECK(cut_tensors > 0, "%s: nothing to cut", cases[c].name);
        T_CHECK(oc_model_set_trainable(m[1], -1, 0) == OC_ERR_ARG, "bad index accepted");
        for (int v = 0; v < 2; v++) {
            float *g = oc_model_grads(m[v], &np);
            for (size_t i = 0; i < np; i++)
                g[i] = 0.5f; /* untrained gradients must keep this */
            T_CHECK(oc_model_set_profiling(m[v], 1) == OC_OK, "profiling");
            T_CHECK(oc_model_forward(m[v], x, NB, 1, &logits) == OC_OK, "forward");
            T_CHECK(oc_model_backward(m[v], dl) == OC_OK, "backward");
        }
        {
            const float *g0 = oc_model_grads(m[0], NULL), *g1 = oc_model_grads(m[1], NULL);
            int bad = 0, kept = 1;
            for (int t = 0; t < m[1]->n_tensors; t++) {
                const oc_param_info *ti = &m[1]->tensors[t];
                if (ti->kind == OC_PARAM_STATE)
                    continue;
                if (m[1]->untrained && m[1]->untrained[t]) {
                    for (size_t i = 0; i < ti->numel; i++)
                        kept &= g1[ti->offset + i] == 0.5f;
                } else if (memcmp(g0 + ti->offset, g1 + ti->offset, ti->numel * sizeof(float)))
                    bad++;
            }
            T_CHECK(bad == 0, "%s: %d trained gradients differ from the full backward",
                    cases[c].name, bad);
            T_CHECK(kept, "%s: an untrained gradient was written", cases[c].name);
        }
        int first = cases[c].cut; /* the first node that trains, at or after the cut */
        while (first < m[1]->n_nodes && !oc_nn_node_trains(m[1], &m[1]->nodes[first]))
            first++;
        for (int i = 1; i < m[1]->n_nodes; i++) {
            double f, b0, b1;
            oc_model_node_time(m[0], i, &f, &b0);
            oc_model_node_time(m[1], i, &f, &b1);
            if (i < first)
                T_CHECK(b1 == 0.0, "%s: node %d ran backward (%g s)", cases[c].name, i, b1);
            else if (!m[1]->nodes[i].fused)
                T_CHECK(b1 > 0.0 && b0 > 0.0, "%s: node %d skipped", cases[c].name, i);
        }
        /* with the input's gradient wanted, the whole backward runs */
        T_CHECK(oc_model_set_input_grad(m[1], 1) == OC_OK, "input grad");
        T_CHECK(oc_model_set_profiling(m[1], 1) == OC_OK, "profiling");
        T_CHECK(oc_model_forward(m[1], x, NB, 1, &logits) == OC_OK, "forward");
        T_CHECK(oc_model_backward(m[1], dl) == OC_OK, "backward");
        {
            double f, b;
            oc_model_node_time(m[1], 1, &f, &b);
            T_CHECK(b > 0.0, "%s: input gradient wanted, node 1 skipped", cases[c].name);
        }
        oc_model_free(m[0]);
        oc_model_free(m[1]);
        free(x);
    }
}

/* Fixed weights (oc_model_set_weights_fixed) keep every convolution's weights packed and its
 * batch-norm affine computed: the logits are the bits of a model without the promise (no
 * layer here is wide enough for Winograd; mobilenetv2's inverted-residual blocks run whole,
 * ops/block.c), and after the parameters change, promising again packs the new weights (the
 * logits follow them). resnet18's wide layers take Winograd: its
 * logits stay within rounding of the unfixed model's. */
static void fixed_weights_are_bitwise(void)
{
    enum { NB = 2 };
    const int h = 16, w = 16, n_in = NB * h * w * 3;
    oc_model *m[2] = {plan_model("mobilenetv2_cifar", h, w), plan_model("mobilenetv2_cifar", h, w)};
    float *x = malloc((size_t)n_in * sizeof *x), out[2][NB * GK], dl[1];
    const float *logits;
    size_t np = 0;
    if (!m[0] || !m[1] || !x) {
        oc_model_free(m[0]);
        oc_model_free(m[1]);
        free(x);
        T_CHECK(0, "setup");
        return;
    }
    waves(x, n_in, 0.41f, dl, 1, 0.0f);
    T_CHECK(oc_model_set_weights_fixed(NULL, 1) == OC_ERR_ARG, "NULL model accepted");
    T_CHECK(oc_model_set_weights_fixed(m[1], 1) == OC_OK, "fixed");
    for (int round = 0; round < 2; round++) {
        for (int v = 0; v < 2; v++) {
            T_CHECK(oc_model_forward(m[v], x, NB, 0, &logits) == OC_OK, "forward");
            memcpy(out[v], logits, sizeof out[v]);
        }
        T_CHECK(!memcmp(out[0], out[1], sizeof out[0]), "round %d: fixed weights change the logits",
                round);
        T_CHECK(m[1]->nodes[0].wpack == NULL, "the input has no weights");
        if (round == 0) { /* change every parameter of both models, then promise again */
            for (int v = 0; v < 2; v++) {
                float *p = oc_model_params(m[v], &np);
                for (size_t i = 0; i < np; i++)
                    p[i] *= 0.75f;
            }
            T_CHECK(oc_model_set_weights_fixed(m[1], 1) == OC_OK, "fixed again");
        }
    }
    {
        int packed = 0, blocks = 0;
        for (int i = 0; i < m[1]->n_nodes; i++) {
            packed += m[1]->nodes[i].wpack != NULL;
            blocks += m[1]->nodes[i].blk_pr > 0;
        }
        T_CHECK(packed > 10, "only %d convolutions kept packed weights", packed);
        /* 17 inverted-residual blocks (the first without an expand layer): with AVX-512 each
         * runs whole */
        T_CHECK(blocks == (__builtin_cpu_supports("avx512f") ? 17 : 0),
                "%d inverted-residual blocks ran whole", blocks);
        T_CHECK(oc_nn_plan_conflicts(m[1]) == 0, "the fixed-weights plan has conflicts");
        oc_test_note("mobilenetv2_cifar: %d blocks ran whole (ops/block.c)", blocks);
    }
    /* a block whose kernels are gone since planning (here the test hook turns AVX-512 off; in
     * use, bf16 math) runs its layers one by one in the buffers the plan kept for them */
    oc_conv2d_allow_simd(0);
    for (int v = 0; v < 2; v++) {
        T_CHECK(oc_model_forward(m[v], x, NB, 0, &logits) == OC_OK, "forward without AVX-512");
        memcpy(out[v], logits, sizeof out[v]);
    }
    oc_conv2d_allow_simd(1);
    T_CLOSE("mobilenetv2_cifar, fixed weights, blocks planned but run layer by layer", out[1],
            out[0], NB * GK, 1e-5, 1e-5);
    oc_model_free(m[0]);
    oc_model_free(m[1]);
    m[0] = plan_model("resnet18", h, w);
    m[1] = plan_model("resnet18", h, w);
    if (m[0] && m[1]) {
        T_CHECK(oc_model_set_weights_fixed(m[1], 1) == OC_OK, "resnet18 fixed");
        for (int v = 0; v < 2; v++) {
            T_CHECK(oc_model_forward(m[v], x, NB, 0, &logits) == OC_OK, "resnet18 forward");
            memcpy(out[v], logits, sizeof out[v]);
        }
        T_CLOSE("resnet18 logits, fixed weights (Winograd)", out[1], out[0], NB * GK, 1e-4, 1e-4);
        T_CHECK(memcmp(out[0], out[1], sizeof out[0]) != 0,
                "resnet18's logits are bitwise equal: Winograd did not run");
    }
    oc_model_free(m[0]);
    oc_model_free(m[1]);
    free(x);
}

/* The conflict check itself finds an output and a gradient live at a common step placed on
 * top of each other. */
static void plan_conflicts_are_found(void)
{
    oc_model *m = zoo("resnet20", 16, 16, 3, 10);
    if (!m)
        return;
    T_CHECK(oc_model_plan(m, 2, 1) == OC_OK, "plan");
    T_CHECK(oc_nn_plan_conflicts(m) == 0, "sound plan flagged");
    /* node 1 (the stem conv) output is read by its batch norm's backward, which writes the
     * gradient of node 1 at the same step */
    {
        float *keep = m->nodes[1].dy;
        m->nodes[1].dy = m->nodes[1].y;
        T_CHECK(oc_nn_plan_conflicts(m) > 0, "an output and a gradient on top of each other "
                                             "not flagged");
        m->nodes[1].dy = keep;
    }
    T_CHECK(oc_nn_plan_conflicts(m) == 0, "restored plan flagged");
    oc_model_free(m);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"zoo_param_counts", zoo_param_counts},
        {"spec_errors_are_clear", spec_errors_are_clear},
        {"json_round_trip", json_round_trip},
        {"gradcheck_every_op", gradcheck_every_op},
        {"plan_once_then_no_allocation", plan_once_then_no_allocation},
        {"inference_plan_shares_buffers", inference_plan_shares_buffers},
        {"fusion_matches_separate_nodes", fusion_matches_separate_nodes},
        {"conv_epilogues_match_unfused", conv_epilogues_match_unfused},
        {"assign_offsets_never_overlap", assign_offsets_never_overlap},
        {"training_plan_sharing_is_exact", training_plan_sharing_is_exact},
        {"untrained_prefix_skips_backward", untrained_prefix_skips_backward},
        {"fixed_weights_are_bitwise", fixed_weights_are_bitwise},
        {"plan_conflicts_are_found", plan_conflicts_are_found},
        {"init_follows_pytorch", init_follows_pytorch},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
