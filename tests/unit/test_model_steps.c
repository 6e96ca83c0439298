/* train + nn: whole-model optimizer parity with PyTorch. For each zoo model, ocelot and
 * torch.optim start from the same weights (an integer hash both sides compute, so the fixture
 * need not store them), train 5 steps on the same fixed batch (training mode, batch norm with
 * batch statistics, dropout disabled) with SGD-Nesterov and with AdamW + cosine schedule, and
 * must agree on the loss at every step and on every tensor afterwards (parameters and
 * batch-norm running statistics). Fixture: tests/ref/gen_model_steps.py (reference in float64).
 *
 * Per-tensor criterion, over the sampled elements of a tensor (up to SAMPLES, evenly spaced in
 * ocelot layout; all of it when smaller): max |a - b| <= REL * max |b|, i.e. 1e-4 relative to
 * the tensor's own scale (an element-wise relative test would be meaningless for weights that
 * pass near zero). Loss: |a - b| <= REL * |b|. No slack: the cases are chosen well conditioned
 * (the generator refuses a case where PyTorch's own float32 run lands farther than REL / 10
 * from float64; the notes print that distance as "torch f32"). A guard checks the steps really
 * moved the weights far beyond the tolerance, so the comparison has teeth. */
#include "test.h"
#include "ocelot.h"
#include "nn/nn.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 5
#define SAMPLES 128
#define REL 1e-4
/* AdamW eps: 100x above float32's noise on the first gradient (~1e-7..1e-6) so that gradients
 * which are exactly 0 in exact arithmetic (e.g. MobileNet's projection batch-norm shifts, which
 * feed only 1x1 conv + batch norm) do not take +-lr steps of random sign; below the typical
 * |gradient| so AdamW's normalisation is still what is tested (gen_model_steps.py). */
#define ADAMW_EPS 1e-4

typedef struct {
    const char *key;  /* fixture prefix */
    const char *zoo;  /* oc_model_create name */
    int H, W, C, classes, batch;
    double sgd_lr, adamw_lr;
    double relu6_shift; /* added to the batch-norm shifts that feed a ReLU6 (init_value) */
    int min_moved_pct;  /* the "moved" guard: this % of the trainable tensors must move */
} model_case;

/* Must match MODELS in tests/ref/gen_model_steps.py (but for min_moved_pct). MobileNet's SGD
 * moves 27 of its 158 trainable tensors by more than 1e-3 of their scale (AdamW: 106): its
 * gradients grow ~70x from the classifier back to the stem, and at lr 1e-3 torch's loss already
 * rises over the 5 steps. It still has teeth: momentum 0.91 instead of 0.9 fails it (1.4e-3). */
static const model_case MODELS[] = {
    {"cnn", "cnn", 16, 16, 3, 10, 8, 1e-2, 1e-3, 0, 50},
    {"resnet20", "resnet20", 8, 8, 3, 10, 8, 1e-3, 2e-4, 0, 50},
    {"resnet56", "resnet56", 8, 8, 3, 10, 4, 3e-4, 1e-4, 0, 50},
    {"resnet18", "resnet18", 16, 16, 3, 10, 4, 1e-3, 5e-5, 0, 50},
    {"mobilenetv2_cifar", "mobilenetv2_cifar:width=0.25", 16, 16, 3, 10, 4, 6e-4, 5e-4, 3, 15},
};

#define ADAMW_WD 5e-2

/* ---- inputs and weights: oc_test_sym_uniform (test.h), as gen_model_steps.py computes them;
 * weights as init_value there, double rounded to float ---- */

/* Element i of tensor t at initialisation. A MobileNet batch norm that feeds a ReLU6 (one of
 * its conv-BN-ReLU6 triples, named "*.1") starts with relu6_shift added to its shift: that puts
 * the ReLU6 kinks ~3 standard deviations out, where float32 rounding rarely flips an input
 * across one (gen_model_steps.py: without it such flips put float32 runs 1e-5..1e-1 off). */
static float init_value(const oc_param_info *t, size_t i, double relu6_shift)
{
    const size_t len = strlen(t->name);
    const double u = oc_test_sym_uniform(oc_test_fnv1a(t->name), i);
    switch (t->kind) {
    case OC_PARAM_WEIGHT:
        return (float)(sqrt(6.0 / ((double)t->numel / (double)t->shape[0])) * u);
    case OC_PARAM_NORM_SCALE:
        return (float)(1.0 + 0.2 * u);
    case OC_PARAM_STATE:
        return len > 12 && !strcmp(t->name + len - 12, ".running_var") ? 1.0f : 0.0f;
    case OC_PARAM_NORM_SHIFT:
        if (len > 7 && !strcmp(t->name + len - 7, ".1.bias"))
            return (float)(0.1 * u + relu6_shift);
        return (float)(0.1 * u);
    default: /* biases */
        return (float)(0.1 * u);
    }
}

static void init_tensor(float *dst, const oc_param_info *t, double relu6_shift)
{
    for (size_t i = 0; i < t->numel; i++)
        dst[i] = init_value(t, i, relu6_shift);
}

static void init_model(oc_model *m, double relu6_shift)
{
    float *p = oc_model_params(m, NULL), *s = oc_model_state(m, NULL);
    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        const oc_param_info *t = oc_model_tensor(m, i);
        init_tensor((t->kind == OC_PARAM_STATE ? s : p) + t->offset, t, relu6_shift);
    }
}

/* ---- one training run ---- */

static double fixture_scalar(oc_fixture *fx, const char *key)
{
    const float *v = oc_fixture_f32(fx, key);
    return v ? (double)v[0] : (double)NAN;
}

static void run(const model_case *mc, oc_fixture *fx, oc_model *m, const float *x,
                const int32_t *labels, int adamw)
{
    const char *opt_name = adamw ? "adamw" : "sgd";
    char key[200];
    oc_optim_config cfg;
    oc_schedule sched;
    oc_optimizer *o = NULL;
    float *dlogits = NULL, *params, *grads, *state;
    const float *loss_want;
    double worst_loss = 0, worst_rel = 0, worst32 = 0;
    const char *worst_name = "";
    int classes = mc->classes, checked = 0, trainable = 0, moved = 0, bad = 0;

    if (adamw) {
        cfg = oc_optim_defaults(OC_OPTIM_ADAMW);
        cfg.lr = mc->adamw_lr;
        cfg.weight_decay = ADAMW_WD;
        cfg.eps = ADAMW_EPS;
        sched = oc_schedule_defaults(OC_SCHED_COSINE, mc->adamw_lr, STEPS);
    } else {
        cfg = oc_optim_defaults(OC_OPTIM_SGD);
        cfg.lr = mc->sgd_lr;
        cfg.momentum = 0.9;
        cfg.nesterov = 1;
        cfg.weight_decay = 5e-4;
        sched = oc_schedule_defaults(OC_SCHED_CONSTANT, mc->sgd_lr, STEPS);
    }
    snprintf(key, sizeof key, "%s.%s.loss", mc->key, opt_name);
    loss_want = oc_fixture_f32(fx, key);
    init_model(m, mc->relu6_shift);
    T_CHECK(oc_optimizer_new_for_model(&o, &cfg, m) == OC_OK, "optimizer: %s", oc_last_error());
    dlogits = malloc((size_t)mc->batch * (size_t)classes * sizeof *dlogits);
    if (!o || !loss_want || !dlogits)
        goto done;
    params = oc_model_params(m, NULL);
    grads = oc_model_grads(m, NULL);
    state = oc_model_state(m, NULL);

    for (int s = 0; s < STEPS; s++) {
        const float *logits = NULL;
        double loss, want = (double)loss_want[s], tol;
        oc_status st = oc_model_forward(m, x, mc->batch, 1, &logits);
        T_CHECK(st == OC_OK, "forward: %s", oc_last_error());
        if (st != OC_OK)
            goto done;
        loss = oc_softmax_xent(mc->batch, classes, logits, labels, NULL, 0.0f, NULL, dlogits);
        oc_model_zero_grad(m);
        st = oc_model_backward(m, dlogits);
        T_CHECK(st == OC_OK, "backward: %s", oc_last_error());
        oc_optimizer_set_lr(o, oc_schedule_lr(&sched, s));
        oc_optimizer_step(o, params, grads);
        tol = REL * fabs(want);
        T_CHECK(fabs(loss - want) <= tol, "%s %s step %d: loss %.7f, torch %.7f (tolerance %.2g)",
                mc->key, opt_name, s + 1, loss, want, tol);
        worst_loss = fmax(worst_loss, fabs(loss - want) / fabs(want));
    }
    T_CHECK(loss_want[STEPS - 1] < loss_want[0], "%s: torch's loss did not fall (%g -> %g)",
            opt_name, (double)loss_want[0], (double)loss_want[STEPS - 1]);

    for (int i = 0; i < oc_model_num_tensors(m); i++) {
        oc_param_info t = *oc_model_tensor(m, i);
        const float *a = (t.kind == OC_PARAM_STATE ? state : params) + t.offset;
        const float *b;
        oc_fixture_array *want;
        size_t k = t.numel < SAMPLES ? t.numel : SAMPLES;
        double max_b = 0, max_d = 0, max_move = 0, e32;
        snprintf(key, sizeof key, "%s.%s.%s", mc->key, opt_name, t.name);
        want = oc_fixture_get(fx, key);
        snprintf(key, sizeof key, "%s.%s.%s:e32", mc->key, opt_name, t.name);
        e32 = fixture_scalar(fx, key);
        if (!want)
            continue;
        if ((size_t)want->numel != k) {
            T_CHECK(0, "%s: %lld samples in the fixture, want %zu", t.name,
                    (long long)want->numel, k);
            continue;
        }
        b = want->data;
        for (size_t j = 0; j < k; j++) {
            size_t idx = j * t.numel / k;
            max_b = fmax(max_b, fabs((double)b[j]));
            max_d = fmax(max_d, fabs((double)a[idx] - (double)b[j]));
            if (isnan(a[idx]))
                max_d = INFINITY;
        }
        /* how far torch's steps moved it from the initial values at the same samples */
        if (t.kind != OC_PARAM_STATE) {
            for (size_t j = 0; j < k; j++)
                max_move = fmax(max_move,
                                fabs((double)b[j] - (double)init_value(&t, j * t.numel / k,
                                                                  mc->relu6_shift)));
            trainable++;
            moved += max_move > 10 * REL * max_b;
        }
        if (!(max_d <= REL * max_b) && bad++ < 8)
            oc_test_fail(__FILE__, __LINE__, "%s %s %s: max |a-b| %.3g > %.3g (1e-4 * max|b|; "
                         "torch float32 off by %.3g)", mc->key, opt_name, t.name, max_d,
                         REL * max_b, e32);
        if (max_b > 0)
            worst32 = fmax(worst32, e32 / max_b);
        if (max_b > 0 && max_d / max_b > worst_rel) {
            worst_rel = max_d / max_b;
            worst_name = t.name;
        }
        checked++;
    }
    if (bad > 8)
        oc_test_fail(__FILE__, __LINE__, "%s %s: %d tensors out of tolerance in all", mc->key,
                     opt_name, bad);
    oc_test_note("%-8s %-5s loss %.4f -> %.4f, worst loss rel err %.1e; %d tensors, worst "
                 "max|a-b|/max|b| %.1e (%s; torch f32 %.1e); %d/%d moved > 1e-3",
                 mc->key, opt_name, (double)loss_want[0], (double)loss_want[STEPS - 1],
                 worst_loss, checked, worst_rel, worst_name, worst32, moved, trainable);
    T_CHECK(100 * moved >= mc->min_moved_pct * trainable, "%s %s: only %d of %d trainable "
            "tensors moved by more than 10x the tolerance; the case does not test much", mc->key,
            opt_name, moved, trainable);
done:
    oc_optimizer_free(o);
    free(dlogits);
}

static void run_model(const model_case *mc)
{
    oc_fixture *fx = oc_fixture_load("model_steps");
    oc_model *m = NULL;
    float *x = NULL;
    int32_t *labels = NULL;
    size_t nx = (size_t)mc->batch * (size_t)(mc->H * mc->W * mc->C);
    double t0 = oc_now();
    if (!fx)
        return;
    T_CHECK(oc_model_create(&m, mc->zoo, mc->H, mc->W, mc->C, mc->classes, 1) == OC_OK,
            "create %s: %s", mc->zoo, oc_last_error());
    x = malloc(nx * sizeof *x);
    labels = malloc((size_t)mc->batch * sizeof *labels);
    if (!m || !x || !labels)
        goto done;
    oc_nn_set_dropout(m, 0);
    T_CHECK(oc_model_plan(m, mc->batch, 1) == OC_OK, "plan: %s", oc_last_error());
    {
        uint32_t seed = 12345;
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)oc_test_sym_uniform(seed, i);
        for (int n = 0; n < mc->batch; n++)
            labels[n] = (int32_t)((n * 3 + 1) % mc->classes);
    }
    run(mc, fx, m, x, labels, 0);
    run(mc, fx, m, x, labels, 1);
    oc_test_note("%s: %lld parameters, batch %d at %dx%d, %.2f s", mc->zoo,
                 (long long)oc_model_param_count(m), mc->batch, mc->H, mc->W, oc_now() - t0);
done:
    oc_model_free(m);
    free(x);
    free(labels);
    oc_fixture_free(fx);
}

static void cnn(void)
{
    run_model(&MODELS[0]);
}

static void resnet20(void)
{
    run_model(&MODELS[1]);
}

static void resnet56(void)
{
    run_model(&MODELS[2]);
}

static void resnet18(void)
{
    run_model(&MODELS[3]);
}

static void mobilenetv2_cifar(void)
{
    run_model(&MODELS[4]);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"cnn", cnn},
        {"resnet20", resnet20},
        {"resnet56", resnet56},
        {"resnet18", resnet18},
        {"mobilenetv2_cifar", mobilenetv2_cifar},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof *cases));
}
