/* Softmax cross-entropy: central-difference gradient of the mean loss (hard labels with label
 * smoothing 0 / 0.1 and soft targets), PyTorch parity (tests/ref/gen_misc_ops.py: smoothing 0,
 * 0.1, 0.2, soft targets, logits near 200 and -100), stability on huge logits, optional
 * outputs, and invalid labels. */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *alloc_f(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

/* The oracle in double, straight from the definition: q = (1-eps) onehot + eps/K or the given
 * soft target, loss = mean_n -sum_k q_k log softmax(x)_k. */
static double ref_loss(int N, int K, const float *x, const int32_t *labels, const float *target,
                       double eps)
{
    double total = 0;
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY, s = 0;
        for (int k = 0; k < K; k++)
            mx = fmax(mx, (double)x[n * K + k]);
        for (int k = 0; k < K; k++)
            s += exp((double)x[n * K + k] - mx);
        for (int k = 0; k < K; k++) {
            double q = target ? (double)target[n * K + k]
                              : (k == labels[n] ? 1 - eps : 0) + eps / K;
            total -= q * ((double)x[n * K + k] - mx - log(s));
        }
    }
    return total / N;
}

static void xent_gradcheck(void)
{
    const int N = 5, K = 7;
    const double h = 1e-2;
    const float eps_list[3] = {0.0f, 0.1f, -1.0f}; /* -1: soft targets */
    oc_rng r;
    float *x = alloc_f(N * K), *d = alloc_f(N * K), *target = alloc_f(N * K);
    int32_t labels[5];

    oc_rng_seed(&r, 8, 0);
    for (int i = 0; i < N * K; i++)
        x[i] = 2.0f * oc_rng_normal(&r);
    for (int n = 0; n < N; n++) {
        float sum = 0;
        labels[n] = (int32_t)oc_rng_below(&r, (uint64_t)K);
        for (int k = 0; k < K; k++)
            sum += target[n * K + k] = oc_rng_uniform(&r);
        for (int k = 0; k < K; k++)
            target[n * K + k] /= sum;
    }
    for (int t = 0; t < 3; t++) {
        const float *tg = eps_list[t] < 0 ? target : NULL;
        float eps = eps_list[t] < 0 ? 0.0f : eps_list[t];
        double worst = 0, scale = 0;
        double num[35];
        /* dlogits is OVERWRITTEN (the exception to the accumulate rule): pre-fill with junk */
        for (int i = 0; i < N * K; i++)
            d[i] = 1e3f;
        oc_softmax_xent(N, K, x, labels, tg, eps, NULL, d);
        for (int i = 0; i < N * K; i++) {
            float keep = x[i];
            float hi = (float)((double)keep + h), lo = (float)((double)keep - h);
            double lp, lm;
            x[i] = hi;
            lp = oc_softmax_xent(N, K, x, labels, tg, eps, NULL, NULL);
            x[i] = lo;
            lm = oc_softmax_xent(N, K, x, labels, tg, eps, NULL, NULL);
            x[i] = keep;
            num[i] = (lp - lm) / ((double)hi - (double)lo);
            scale = fmax(scale, fabs(num[i]));
        }
        for (int i = 0; i < N * K; i++) {
            double den = fmax(fmax(fabs((double)d[i]), fabs(num[i])), 1e-2 * scale);
            worst = fmax(worst, fabs((double)d[i] - num[i]) / den);
        }
        oc_test_note("%s, smoothing %.1f: worst relative error %.2e",
                     tg ? "soft targets" : "hard labels", (double)eps, worst);
        T_CHECK(worst < 1e-2, "case %d: relative error %.3g", t, worst);
    }
    free(x), free(d), free(target);
}

static void xent_matches_torch(void)
{
    oc_fixture *f = oc_fixture_load("loss");
    int cases = 0;
    if (!f)
        return;
    for (int i = 0;; i++) {
        char k[64], what[96];
        int found = 0;
        snprintf(k, sizeof k, "ce%d_shape", i);
        for (int a = 0; a < f->n; a++)
            found |= strcmp(f->arrays[a].name, k) == 0;
        if (!found)
            break;
#define FXA(name) (snprintf(k, sizeof k, "ce%d_%s", i, name), oc_fixture_get(f, k))
        const int32_t *shape = FXA("shape")->data;
        const int soft = ((const int32_t *)FXA("soft")->data)[0];
        const float eps = ((const float *)FXA("smoothing")->data)[0];
        const int N = shape[0], K = shape[1];
        const float *x = FXA("logits")->data;
        const int32_t *labels = soft ? NULL : FXA("labels")->data;
        const float *target = soft ? FXA("target")->data : NULL;
        const float want = ((const float *)FXA("loss")->data)[0];
        float *p = alloc_f(N * K), *d = alloc_f(N * K);
        double loss = oc_softmax_xent(N, K, x, labels, target, eps, p, d);
        float lossf = (float)loss;

        snprintf(what, sizeof what, "case %d (%s, smoothing %.1f) loss", i,
                 soft ? "soft" : "hard", (double)eps);
        T_CLOSE(what, &lossf, &want, 1, 1e-4, 1e-4);
        snprintf(what, sizeof what, "case %d dlogits", i);
        T_CLOSE(what, d, FXA("dlogits")->data, N * K, 1e-4, 1e-4);
        snprintf(what, sizeof what, "case %d probs", i);
        T_CLOSE(what, p, FXA("probs")->data, N * K, 1e-4, 1e-4);
        oc_test_note("case %d: loss %.7f, torch %.7f", i, loss, (double)want);
#undef FXA
        free(p), free(d);
        cases++;
    }
    T_CHECK(cases >= 6, "expected 6 cases in loss.bin, found %d", cases);
    oc_fixture_free(f);
}

/* Logits around +-1e4 (expf overflows at 88): finite loss equal to the double oracle, probs
 * summing to 1, gradient rows summing to 0. */
static void xent_stable_on_huge_logits(void)
{
    const int N = 4, K = 9;
    float x[36], p[36], d[36];
    int32_t labels[4] = {0, 3, 8, 5};
    oc_rng r;
    double loss, want;
    oc_rng_seed(&r, 12, 0);
    for (int i = 0; i < N * K; i++)
        x[i] = (i % 2 ? 1e4f : -1e4f) + 50.0f * oc_rng_normal(&r);
    loss = oc_softmax_xent(N, K, x, labels, NULL, 0.1f, p, d);
    want = ref_loss(N, K, x, labels, NULL, 0.1);
    T_CHECK(isfinite(loss), "loss not finite: %g", loss);
    T_CHECK(fabs(loss - want) <= 1e-6 * fabs(want), "loss %.9g, oracle %.9g", loss, want);
    for (int n = 0; n < N; n++) {
        double sp = 0, sd = 0;
        for (int k = 0; k < K; k++) {
            T_CHECK(isfinite(p[n * K + k]) && isfinite(d[n * K + k]), "non-finite output");
            sp += (double)p[n * K + k];
            sd += (double)d[n * K + k];
        }
        T_CHECK(fabs(sp - 1) < 1e-6, "row %d probs sum to %.9g", n, sp);
        T_CHECK(fabs(sd) < 1e-6, "row %d gradient sums to %.3g", n, sd);
    }
    oc_test_note("loss %.6f vs oracle %.6f", loss, want);
}

/* probs and dlogits are optional and do not change the loss; the loss matches the oracle. */
static void xent_optional_outputs_and_oracle(void)
{
    const int N = 33, K = 100;
    float *x = alloc_f(N * K), *p = alloc_f(N * K), *d = alloc_f(N * K);
    int32_t labels[33];
    oc_rng r;
    double l0, l1, l2, want;
    oc_rng_seed(&r, 13, 0);
    for (int i = 0; i < N * K; i++)
        x[i] = 4.0f * oc_rng_normal(&r);
    for (int n = 0; n < N; n++)
        labels[n] = (int32_t)oc_rng_below(&r, (uint64_t)K);
    l0 = oc_softmax_xent(N, K, x, labels, NULL, 0.2f, NULL, NULL);
    l1 = oc_softmax_xent(N, K, x, labels, NULL, 0.2f, p, NULL);
    l2 = oc_softmax_xent(N, K, x, labels, NULL, 0.2f, NULL, d);
    want = ref_loss(N, K, x, labels, NULL, 0.2);
    T_CHECK(l0 == l1 && l1 == l2, "loss depends on outputs: %.17g %.17g %.17g", l0, l1, l2);
    T_CHECK(fabs(l0 - want) <= 1e-8 * fabs(want), "loss %.12g, oracle %.12g", l0, want);
    oc_test_note("N=%d K=%d smoothing 0.2: |loss - oracle| = %.2e", N, K, fabs(l0 - want));
    free(x), free(p), free(d);
}

static void xent_bad_labels_give_nan(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6}, d[6], p[6];
    int32_t bad_hi[2] = {0, 3}, bad_lo[2] = {-1, 1};
    double l;
    l = oc_softmax_xent(2, 3, x, bad_hi, NULL, 0.0f, p, d);
    T_CHECK(isnan(l), "label 3 of 3 classes accepted: %g", l);
    T_CHECK(d[3] == 0 && d[4] == 0 && d[5] == 0, "bad row got a gradient");
    T_CHECK(isfinite(d[0]) && d[0] != 0, "good row lost its gradient");
    l = oc_softmax_xent(2, 3, x, bad_lo, NULL, 0.0f, NULL, NULL);
    T_CHECK(isnan(l), "label -1 accepted: %g", l);
    T_CHECK(isnan(oc_softmax_xent(0, 3, x, bad_hi, NULL, 0.0f, NULL, NULL)), "N = 0 accepted");
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"xent_gradcheck", xent_gradcheck},
        {"xent_matches_torch", xent_matches_torch},
        {"xent_stable_on_huge_logits", xent_stable_on_huge_logits},
        {"xent_optional_outputs_and_oracle", xent_optional_outputs_and_oracle},
        {"xent_bad_labels_give_nan", xent_bad_labels_give_nan},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
