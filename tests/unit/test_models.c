/* Whole zoo models against PyTorch (tests/ref/gen_models.py): one training step (batch
 * statistics, dropout off) from the same deterministic weights; logits, the loss, every
 * parameter gradient and the batch-norm running statistics after the step.
 *
 * Criterion, every model: rtol = 1e-3 against PyTorch in float64. Per tensor, every stored
 * entry satisfies |a - b| <= rtol * scale, scale = max|b| over the whole tensor (gn: for
 * sampled tensors) but at least 1e-3 of the model's largest gradient (a batch-norm shift
 * followed by another batch norm has a true gradient of 0, where only rounding is left);
 * sampled tensors also need | ||a||_2 - ||b||_2 | <= rtol ||b||_2. The logits (scale max|b|)
 * and the loss meet the same rtol; the running statistics too.
 *
 * Weights come from one of two recipes that both sides compute (gen_models.py explains):
 * "sincos" (cnn, ResNets; the input is stored) and "hash" (MobileNets; the input is a hash
 * stream too, and the fixture's w: arrays replace the batch-norm shifts that feed a ReLU6,
 * chosen so that no ReLU6 input is within 1e-3 of a kink, where float32 rounding could flip a
 * mask). The fixture's e: entries hold PyTorch float32's own error; the test prints the worst
 * as the case's conditioning (all models: below 3e-4 of scale), it does not widen rtol. */
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

/* ---- the "hash" recipe (torch_zoo.hash_tensor over oc_test_sym_uniform), double rounded to
 * float ---- */

static void hash_fill(const oc_param_info *t, float *p)
{
    const size_t len = strlen(t->name);
    const int is_var = len > 12 && !strcmp(t->name + len - 12, ".running_var");
    const uint32_t seed = oc_test_fnv1a(t->name);
    const double wscale = sqrt(3.0 / ((double)t->numel / (double)t->shape[0]));
    for (size_t i = 0; i < t->numel; i++) {
        double u = oc_test_sym_uniform(seed, i), v = 0;
        switch (t->kind) {
        case OC_PARAM_WEIGHT: v = wscale * u; break;
        case OC_PARAM_BIAS:
        case OC_PARAM_NORM_SHIFT: v = 0.1 * u; break;
        case OC_PARAM_NORM_SCALE: v = 1.0 + 0.2 * u; break;
        case OC_PARAM_STATE: v = is_var ? 1.0 : 0.0; break;
        }
        p[i] = (float)v;
    }
}

typedef enum { RECIPE_SINCOS, RECIPE_HASH } recipe_kind;

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

/* PyTorch float32's worst relative gradient error (the e: entries; informational); *floor_out
 * receives 1e-3 of the largest gradient. */
static double torch_f32_error(oc_fixture *f, oc_model *m, double *floor_out)
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
    return r32;
}

static void run_case(const char *fixture_name, const char *zoo_name, recipe_kind recipe)
{
    oc_fixture *f = oc_fixture_load(fixture_name);
    oc_fixture_array *dims, *xa;
    oc_model *m = NULL;
    const float *logits, *x;
    float *dlogits = NULL, *xbuf = NULL;
    const double rtol = RTOL;
    double worst_grad = 0, worst_live = 0, loss, gfloor = 0, r32;
    const char *worst_name = "", *live_name = "";
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
    r32 = torch_f32_error(f, m, &gfloor);
    oc_test_note("%s: N=%d %dx%d; PyTorch float32's own worst relative gradient error %.2e "
                 "(rtol %.0e)", zoo_name, N, H, W, r32, rtol);
    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const oc_param_info *t = oc_model_tensor(m, i);
        float *base = t->kind == OC_PARAM_STATE ? oc_model_state(m, NULL) : oc_model_params(m, NULL);
        oc_fixture_array *w = find(f, "w:", t->name);
        if (recipe == RECIPE_HASH)
            hash_fill(t, base + t->offset);
        else
            recipe_fill(t, base + t->offset);
        if (w) {
            T_CHECK(w->numel == (int64_t)t->numel && !w->is_int, "w:%s: bad size", t->name);
            if (w->numel == (int64_t)t->numel && !w->is_int)
                memcpy(base + t->offset, w->data, t->numel * sizeof(float));
        }
    }
    xa = find(f, "", "x");
    if (xa) {
        T_CHECK(xa->numel == (int64_t)N * H * W * C, "x: %lld values", (long long)xa->numel);
        x = xa->data;
    } else {
        oc_fixture_array *seed = oc_fixture_get(f, "xseed");
        const size_t n = (size_t)N * H * W * C;
        if (!seed || seed->numel != 1 || !(xbuf = malloc(n * sizeof *xbuf)))
            goto done;
        for (size_t i = 0; i < n; i++)
            xbuf[i] = (float)oc_test_sym_uniform((uint32_t)((int32_t *)seed->data)[0], i);
        x = xbuf;
    }
    oc_nn_set_dropout(m, 0);
    oc_model_zero_grad(m);
    T_CHECK(oc_model_forward(m, x, N, 1, &logits) == OC_OK, "forward: %s", oc_last_error());
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
        double e, sc;
        if (t->kind == OC_PARAM_STATE) {
            const float *got = oc_model_state(m, NULL) + t->offset;
            oc_fixture_array *ref = find(f, "s:", t->name);
            T_CHECK(ref && ref->numel == (int64_t)t->numel, "no running stat %s", t->name);
            if (ref && ref->numel == (int64_t)t->numel)
                compare(t->name, got, ref->data, ref->numel, max_abs(ref->data, ref->numel), RTOL);
            continue;
        }
        const float *g = oc_model_grads(m, NULL) + t->offset;
        if (t->frozen && t->ndim == 4) { /* a frozen conv weight gets no gradient (ocelot.h) */
            size_t nz = 0;
            for (size_t j = 0; j < t->numel; j++)
                nz += g[j] != 0.0f;
            T_CHECK(nz == 0, "%s is frozen but got %zu gradient values", t->name, nz);
            continue;
        }
        full = find(f, "g:", t->name);
        samp = find(f, "gs:", t->name);
        stats = find(f, "gn:", t->name);
        if (full && full->numel == (int64_t)t->numel) {
            sc = max_abs(full->data, full->numel);
            e = compare(t->name, g, full->data, full->numel,
                        fmax(max_abs(full->data, full->numel), gfloor), rtol);
        } else if (samp && stats && stats->numel == 2) {
            float got[256];
            const float *st = stats->data;
            double norm = 0;
            sc = (double)st[0];
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
        if (sc > gfloor && e > worst_live) { /* relative to its own max|g|, not the floor */
            worst_live = e;
            live_name = t->name;
        }
    }
    oc_test_note("%s: %d tensors, %lld parameters; worst gradient rel err %.2e (%s); among "
                 "gradients above the floor %.2e (%s)", zoo_name, oc_model_num_tensors(m),
                 (long long)oc_model_param_count(m), worst_grad, worst_name, worst_live,
                 live_name);
done:
    free(xbuf);
    free(dlogits);
    oc_model_free(m);
    oc_fixture_free(f);
}

static void cnn_matches_pytorch(void)
{
    run_case("model_cnn", "cnn", RECIPE_SINCOS);
}

static void resnet20_matches_pytorch(void)
{
    run_case("model_resnet20", "resnet20", RECIPE_SINCOS);
}

static void resnet56_matches_pytorch(void)
{
    run_case("model_resnet56", "resnet56", RECIPE_SINCOS);
}

static void resnet18_matches_pytorch(void)
{
    run_case("model_resnet18", "resnet18", RECIPE_SINCOS);
}

static void mobilenetv2_matches_pytorch(void)
{
    run_case("model_mobilenetv2", "mobilenetv2", RECIPE_HASH);
}

static void mobilenetv2_cifar_matches_pytorch(void)
{
    run_case("model_mobilenetv2_cifar", "mobilenetv2_cifar:width=0.5", RECIPE_HASH);
}

static void airnet_matches_pytorch(void)
{
    run_case("model_airnet", "airnet", RECIPE_HASH);
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
        {"airnet_matches_pytorch", airnet_matches_pytorch},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
