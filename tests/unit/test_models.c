/* Whole zoo models against PyTorch (tests/ref/gen_models.py): one training step (batch
 * statistics, dropout off) from the same deterministic "recipe" weights; logits, the loss,
 * every parameter gradient and the batch-norm running statistics after the step.
 *
 * Criterion, per model: rtol = max(1e-3, 2 * r32), where r32 is the worst relative error that
 * PyTorch float32 itself makes on this model's gradients (the fixture's e: entries against the
 * float64 reference). Per tensor, every stored entry satisfies |a - b| <= rtol * scale, scale =
 * max|b| over the whole tensor (gn: for sampled tensors) but at least 1e-3 of the model's
 * largest gradient (a batch-norm shift followed by another batch norm has a true gradient of 0,
 * where only rounding is left); sampled tensors also need | ||a||_2 - ||b||_2 | <= rtol ||b||_2.
 * The reference runs in float64, so the measured error is ocelot's float32 error. For cnn and
 * the ResNets r32 < 1e-4 and the 1e-3 term decides. The MobileNets are ill-conditioned in
 * float32 with any weights tried (depthwise + batch norm over few positions amplify rounding
 * and ReLU6 mask flips): PyTorch float32 is off by up to 2.6% / 6.6% there, and ocelot must be
 * within twice that. */
#include "test.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-3
#define ATOL 1e-7

/* torch_zoo.recipe_tensor, bit for bit (double, then rounded to float). */
static double recipe_phase(const char *name)
{
    uint64_t h = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h * 31 + *p) % 1000003;
    return (double)(h % 1000) / 100.0;
}

static void recipe_fill(const oc_param_info *t, float *p)
{
    const double ph = recipe_phase(t->name);
    const size_t len = strlen(t->name);
    const int is_var = len > 12 && !strcmp(t->name + len - 12, ".running_var");
    const double wscale = 2.0 / sqrt((double)t->numel / (double)t->shape[0]);
    for (size_t i = 0; i < t->numel; i++) {
        double v = sin(0.7071 * (double)i + ph) * cos(0.0133 * (double)i + ph / 2);
        switch (t->kind) {
        case OC_PARAM_WEIGHT: v *= wscale; break;
        case OC_PARAM_BIAS:
        case OC_PARAM_NORM_SHIFT: v *= 0.1; break;
        case OC_PARAM_NORM_SCALE: v = 1.0 + 0.2 * v; break;
        case OC_PARAM_STATE: v = is_var ? 1.0 + 0.5 * fabs(v) : 0.1 * v; break;
        }
        p[i] = (float)v;
    }
}

static oc_fixture_array *find(oc_fixture *f, const char *prefix, const char *name)
{
    char key[160];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->arrays[i].name, key))
            return &f->arrays[i];
    return NULL;
}

static double max_abs(const float *v, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)v[i]));
    return m;
}

/* Worst |a-b| / scale over the entries; fails beyond rtol. */
static double compare(const char *what, const float *a, const float *b, int64_t n, double scale,
                      double rtol)
{
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    T_CHECK(worst <= rtol * scale + ATOL,
            "%s: |diff| %.3g at [%lld] (got %.8g want %.8g) > %.2g * scale %.3g", what, worst,
            (long long)at, (double)a[at], (double)b[at], rtol, scale);
    return scale > 0 ? worst / scale : worst;
}

/* The reference scale of parameter `name`'s gradient (max |g|), or -1 if absent. */
static double ref_scale(oc_fixture *f, const char *name)
{
    oc_fixture_array *full = find(f, "g:", name), *stats = find(f, "gn:", name);
    if (full)
        return max_abs(full->data, full->numel);
    if (stats && stats->numel == 2)
        return (double)((float *)stats->data)[0];
    return -1;
}

/* rtol = max(1e-3, 2 * PyTorch float32's worst relative gradient error); *floor_out receives
 * 1e-3 of the largest gradient. */
static double model_rtol(oc_fixture *f, oc_model *m, double *floor_out, double *r32_out)
{
    double gmax = 0, r32 = 0;
    for (int i = 0; i < oc_model_num_tensors(m); i++)
        gmax = fmax(gmax, ref_scale(f, oc_model_tensor(m, i)->name));
    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const char *name = oc_model_tensor(m, i)->name;
        oc_fixture_array *e = find(f, "e:", name);
        double sc = ref_scale(f, name);
        if (e && sc >= 0)
            r32 = fmax(r32, (double)((float *)e->data)[0] / fmax(sc, 1e-3 * gmax));
    }
    *floor_out = 1e-3 * gmax;
    *r32_out = r32;
    return fmax(RTOL, 2 * r32);
}

static void run_case(const char *fixture_name, const char *zoo_name)
{
    oc_fixture *f = oc_fixture_load(fixture_name);
    oc_fixture_array *dims;
    oc_model *m = NULL;
    const float *logits;
    float *dlogits = NULL;
    double worst_grad = 0, loss, rtol = RTOL, gfloor = 0, r32 = 0;
    const char *worst_name = "";
    int N, H, W, C, K;

    if (!f)
        return;
    dims = oc_fixture_get(f, "dims");
    if (!dims || dims->numel != 5)
        goto done;
    N = ((int32_t *)dims->data)[0];
    H = ((int32_t *)dims->data)[1];
    W = ((int32_t *)dims->data)[2];
    C = ((int32_t *)dims->data)[3];
    K = ((int32_t *)dims->data)[4];
    if (oc_model_create(&m, zoo_name, H, W, C, K, 1) != OC_OK) {
        T_CHECK(0, "create %s: %s", zoo_name, oc_last_error());
        goto done;
    }
    rtol = model_rtol(f, m, &gfloor, &r32);
    oc_test_note("%s: PyTorch float32's worst relative gradient error %.2e -> rtol %.2e",
                 zoo_name, r32, rtol);
    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const oc_param_info *t = oc_model_tensor(m, i);
        float *base = t->kind == OC_PARAM_STATE ? oc_model_state(m, NULL) : oc_model_params(m, NULL);
        recipe_fill(t, base + t->offset);
    }
    oc_nn_set_dropout(m, 0);
    oc_model_zero_grad(m);
    T_CHECK(oc_model_forward(m, oc_fixture_f32(f, "x"), N, 1, &logits) == OC_OK, "forward: %s",
            oc_last_error());
    {
        const float *ref = oc_fixture_f32(f, "logits");
        double e = compare("logits", logits, ref, (int64_t)N * K, max_abs(ref, (int64_t)N * K),
                           rtol);
        oc_test_note("%s: logits max rel err %.2e", zoo_name, e);
    }
    dlogits = malloc((size_t)N * K * sizeof *dlogits);
    loss = oc_softmax_xent(N, K, logits, (const int32_t *)oc_fixture_get(f, "labels")->data, NULL,
                           0.0f, NULL, dlogits);
    {
        double ref = (double)oc_fixture_f32(f, "loss")[0];
        T_CHECK(fabs(loss - ref) <= rtol * fabs(ref), "loss %.8g, PyTorch %.8g", loss, ref);
        oc_test_note("%s: loss %.7f (PyTorch %.7f)", zoo_name, loss, ref);
    }
    T_CHECK(oc_model_backward(m, dlogits) == OC_OK, "backward: %s", oc_last_error());

    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const oc_param_info *t = oc_model_tensor(m, i);
        oc_fixture_array *full, *samp, *stats;
        double e;
        if (t->kind == OC_PARAM_STATE) {
            const float *got = oc_model_state(m, NULL) + t->offset;
            oc_fixture_array *ref = find(f, "s:", t->name);
            T_CHECK(ref && ref->numel == (int64_t)t->numel, "no running stat %s", t->name);
            if (ref && ref->numel == (int64_t)t->numel)
                compare(t->name, got, ref->data, ref->numel, max_abs(ref->data, ref->numel), RTOL);
            continue;
        }
        const float *g = oc_model_grads(m, NULL) + t->offset;
        full = find(f, "g:", t->name);
        samp = find(f, "gs:", t->name);
        stats = find(f, "gn:", t->name);
        if (full && full->numel == (int64_t)t->numel) {
            e = compare(t->name, g, full->data, full->numel,
                        fmax(max_abs(full->data, full->numel), gfloor), rtol);
        } else if (samp && stats && stats->numel == 2) {
            float got[256];
            const float *st = stats->data;
            double norm = 0;
            for (int64_t j = 0; j < samp->numel && j < 256; j++)
                got[j] = g[(j * 7919 + 13) % (int64_t)t->numel];
            e = compare(t->name, got, samp->data, samp->numel < 256 ? samp->numel : 256,
                        fmax((double)st[0], gfloor), rtol);
            for (size_t j = 0; j < t->numel; j++)
                norm += (double)g[j] * (double)g[j];
            norm = sqrt(norm);
            T_CHECK(fabs(norm - (double)st[1]) <= rtol * (double)st[1] + ATOL,
                    "%s: ||grad|| %.8g, PyTorch %.8g", t->name, norm, (double)st[1]);
            e = fmax(e, fabs(norm - (double)st[1]) / fmax((double)st[1], 1e-30));
        } else {
            T_CHECK(0, "fixture has no gradient for %s", t->name);
            continue;
        }
        if (e > worst_grad) {
            worst_grad = e;
            worst_name = t->name;
        }
    }
    oc_test_note("%s: %d tensors, %lld parameters; worst gradient rel err %.2e (%s)", zoo_name,
                 oc_model_num_tensors(m), (long long)oc_model_param_count(m), worst_grad,
                 worst_name);
done:
    free(dlogits);
    oc_model_free(m);
    oc_fixture_free(f);
}

static void cnn_matches_pytorch(void)
{
    run_case("model_cnn", "cnn");
}

static void resnet20_matches_pytorch(void)
{
    run_case("model_resnet20", "resnet20");
}

static void resnet56_matches_pytorch(void)
{
    run_case("model_resnet56", "resnet56");
}

static void resnet18_matches_pytorch(void)
{
    run_case("model_resnet18", "resnet18");
}

static void mobilenetv2_matches_pytorch(void)
{
    run_case("model_mobilenetv2", "mobilenetv2");
}

static void mobilenetv2_cifar_matches_pytorch(void)
{
    run_case("model_mobilenetv2_cifar", "mobilenetv2_cifar:width=0.5");
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"cnn_matches_pytorch", cnn_matches_pytorch},
        {"resnet20_matches_pytorch", resnet20_matches_pytorch},
        {"resnet56_matches_pytorch", resnet56_matches_pytorch},
        {"resnet18_matches_pytorch", resnet18_matches_pytorch},
        {"mobilenetv2_matches_pytorch", mobilenetv2_matches_pytorch},
        {"mobilenetv2_cifar_matches_pytorch", mobilenetv2_cifar_matches_pytorch},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
