/* The speed-run pieces (airnet, recipe cifar10-fast): the Jacobi eigensolver, the whitening
 * initialisation, dirac init, frozen tensors, the optimizer's norm lr scale, alternating flip,
 * multi-view test-time augmentation and the recipe table. */
#include "test.h"
#include "core/core.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A = Q diag(d) Q^T with a random orthogonal Q (Gram-Schmidt of random rows): the solver must
 * return d in descending order and A v = lambda v with orthonormal v. */
static void eigen_recovers_a_known_spectrum(void)
{
    enum { n = 12 };
    double q[n][n], a[n * n], val[n], vec[n * n], d[n];
    oc_rng r;
    oc_rng_seed(&r, 5, 0);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++)
            q[i][k] = (double)oc_rng_normal(&r);
        for (int j = 0; j < i; j++) {
            double dot = 0;
            for (int k = 0; k < n; k++)
                dot += q[i][k] * q[j][k];
            for (int k = 0; k < n; k++)
                q[i][k] -= dot * q[j][k];
        }
        double norm = 0;
        for (int k = 0; k < n; k++)
            norm += q[i][k] * q[i][k];
        for (int k = 0; k < n; k++)
            q[i][k] /= sqrt(norm);
        d[i] = i == 3 ? d[2] : 10.0 / (i + 1) - 0.5; /* a repeated value and negatives */
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            a[i * n + j] = 0;
            for (int k = 0; k < n; k++)
                a[i * n + j] += q[k][i] * d[k] * q[k][j];
        }
    int sweeps = oc_eigen_sym(n, a, val, vec);
    T_CHECK(sweeps > 0 && sweeps < 20, "sweeps %d", sweeps);
    for (int i = 0; i < n; i++) {
        T_CHECK(fabs(val[i] - d[i]) < 1e-12, "value %d: %.15g, want %.15g", i, val[i], d[i]);
        if (i)
            T_CHECK(val[i] <= val[i - 1], "not descending at %d", i);
        for (int j = 0; j < n; j++) {
            double av = 0, dot = 0;
            for (int k = 0; k < n; k++) {
                av += a[j * n + k] * vec[i * n + k];
                dot += vec[i * n + k] * vec[j * n + k];
            }
            T_CHECK(fabs(av - val[i] * vec[i * n + j]) < 1e-12, "A v != lambda v (%d, %d)", i, j);
            T_CHECK(fabs(dot - (i == j)) < 1e-12, "v%d . v%d = %g", i, j, dot);
        }
    }
    /* 1 x 1, a diagonal matrix (no rotation needed) and bad input */
    a[0] = -2;
    T_CHECK(oc_eigen_sym(1, a, val, vec) == 0 && val[0] == -2 && vec[0] == 1, "1 x 1");
    double diag[9] = {1, 0, 0, 0, 3, 0, 0, 0, 2};
    T_CHECK(oc_eigen_sym(3, diag, val, vec) == 0 && val[0] == 3 && val[1] == 2 && val[2] == 1 &&
                vec[1] == 1 && vec[5] == 1 && vec[6] == 1,
            "diagonal: %g %g %g", val[0], val[1], val[2]);
    T_CHECK(oc_eigen_sym(0, a, val, vec) == -1, "n = 0 accepted");
}

static const char *whiten_spec =
    "{\"nodes\":[{\"name\":\"w\",\"op\":\"conv2d\",\"filters\":24,\"kernel\":2,\"init\":\"whiten\","
    "\"freeze\":[\"weight\"]},{\"op\":\"global_avgpool\"},{\"op\":\"dense\",\"units\":\"classes\"}]}";

/* Correlated images (neighbouring pixels and channels share components): after the init, the
 * first 12 filters map patches to outputs with covariance W Sigma W^T = diag(l / (l + eps)),
 * i.e. whitened, and the last 12 are their negatives. */
static void whitening_decorrelates_patches(void)
{
    enum { n = 40, H = 9, Wd = 10, C = 3, d = 12 };
    float *x = malloc(sizeof(float) * n * H * Wd * C);
    double cov[d * d] = {0};
    oc_model *m = NULL;
    oc_rng r;
    int count = -1;
    if (oc_model_from_json(&m, whiten_spec, strlen(whiten_spec), H, Wd, C, 4, 1) != OC_OK) {
        T_CHECK(0, "build: %s", oc_last_error());
        free(x);
        return;
    }
    T_CHECK(oc_model_num_whiten(m) == 1, "whiten layers");
    oc_rng_seed(&r, 9, 0);
    for (int i = 0; i < n * H * Wd; i++) {
        float a = oc_rng_normal(&r), b = oc_rng_normal(&r);
        for (int c = 0; c < C; c++)
            x[i * C + c] = a + 0.3f * (float)c * b + 0.2f * oc_rng_normal(&r) +
                           (i % Wd ? 0.8f * x[(i - 1) * C + c] : 0);
    }
    T_CHECK(oc_model_init_whiten(m, x, n, 0, &count) == OC_OK && count == 1, "init: %s",
            oc_last_error());
    const float *w = oc_model_params(m, NULL) + oc_model_tensor(m, 0)->offset;
    const float *bias = oc_model_params(m, NULL) + oc_model_tensor(m, 1)->offset;
    int64_t np = 0;
    for (int i = 0; i < n; i++)
        for (int y = 0; y + 2 <= H; y++)
            for (int xx = 0; xx + 2 <= Wd; xx++, np++) {
                double p[d], o[d];
                for (int k = 0; k < d; k++) {
                    int rr = k / 6, ss = k / 3 % 2, c = k % 3;
                    p[k] = x[((i * H + y + rr) * Wd + xx + ss) * C + c];
                }
                for (int f = 0; f < d; f++) {
                    o[f] = 0;
                    for (int k = 0; k < d; k++)
                        o[f] += (double)w[f * d + k] * p[k];
                }
                for (int a = 0; a < d; a++)
                    for (int b = 0; b < d; b++)
                        cov[a * d + b] += o[a] * o[b];
            }
    double worst = 0;
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double e = fabs(cov[a * d + b] / (double)np - (a == b));
            worst = e > worst ? e : worst;
        }
    T_CHECK(worst < 1e-4, "output covariance differs from I by %g", worst);
    for (int k = 0; k < d * d; k++)
        T_CHECK(w[d * d + k] == -w[k], "filter %d is not the negative of %d", d + k / d, k / d);
    for (int k = 0; k < 24; k++)
        T_CHECK(bias[k] == 0, "bias %d = %g", k, (double)bias[k]);
    T_CHECK(oc_model_tensor(m, 0)->frozen && !oc_model_tensor(m, 1)->frozen, "freeze flags");
    oc_model_free(m);

    /* a whitening layer of the wrong width is refused, naming it */
    const char *bad = "{\"nodes\":[{\"name\":\"w\",\"op\":\"conv2d\",\"filters\":20,\"kernel\":2,"
                      "\"init\":\"whiten\"},{\"op\":\"global_avgpool\"},"
                      "{\"op\":\"dense\",\"units\":\"classes\"}]}";
    m = NULL;
    T_CHECK(oc_model_from_json(&m, bad, strlen(bad), H, Wd, C, 4, 1) == OC_OK, "build");
    T_CHECK(m && oc_model_init_whiten(m, x, n, 5e-4, NULL) == OC_ERR_ARG &&
                strstr(oc_last_error(), "node 'w'"),
            "wrong width accepted: %s", oc_last_error());
    oc_model_free(m);
    free(x);
}

/* torch.nn.init.dirac_(w[:C]): filter k < C is a centred one-hot on channel k; the rest keep
 * the default init. airnet's 256 -> 256 convs start as the identity. */
static void dirac_init_is_identity(void)
{
    oc_model *m = NULL;
    T_CHECK(oc_model_create(&m, "airnet", 32, 32, 3, 10, 3) == OC_OK, "%s", oc_last_error());
    if (!m)
        return;
    int t = oc_model_find_tensor(m, "layers.0.conv1.weight");
    const oc_param_info *ti = oc_model_tensor(m, t);
    const float *w = oc_model_params(m, NULL) + ti->offset;
    T_CHECK(ti->shape[0] == 64 && ti->shape[3] == 24, "shape");
    for (int k = 0; k < 64; k++)
        for (int e = 0; e < 9 * 24; e++) {
            float v = w[k * 9 * 24 + e];
            if (k < 24)
                T_CHECK(v == (e == 4 * 24 + k ? 1.0f : 0.0f), "filter %d element %d = %g", k, e,
                        (double)v);
            else
                T_CHECK(fabsf(v) <= 1 / sqrtf(216), "filter %d: %g is no default init", k,
                        (double)v);
        }
    int b = oc_model_find_tensor(m, "layers.2.norm1.weight");
    T_CHECK(b >= 0 && oc_model_tensor(m, b)->frozen, "batch-norm scale not frozen");
    b = oc_model_find_tensor(m, "layers.2.norm1.bias");
    T_CHECK(b >= 0 && !oc_model_tensor(m, b)->frozen, "batch-norm shift frozen");
    oc_model_free(m);
}

/* SGD over three tensors: a weight, a frozen one and a batch-norm shift with norm_lr_scale 4:
 * the frozen one never moves (until thawed); the shift takes 4x the gradient step and the same
 * decay step as the weight would. */
static void optimizer_frozen_and_norm_scale(void)
{
    oc_param_info t[3] = {{.name = "w", .kind = OC_PARAM_WEIGHT, .offset = 0, .numel = 2},
                          {.name = "f", .kind = OC_PARAM_WEIGHT, .offset = 2, .numel = 2,
                           .frozen = 1},
                          {.name = "b", .kind = OC_PARAM_NORM_SHIFT, .offset = 4, .numel = 2}};
    oc_optim_config c = oc_optim_defaults(OC_OPTIM_SGD);
    oc_optimizer *o = NULL;
    float p[6] = {1, 2, 3, 4, 1, 2}, g[6] = {0.5f, -1, 7, 7, 0.5f, -1};
    c.lr = 0.1;
    c.weight_decay = 0.2;
    c.norm_lr_scale = 4;
    T_CHECK(oc_optimizer_new(&o, &c, 6, t, 3) == OC_OK, "%s", oc_last_error());
    if (!o)
        return;
    T_CHECK(oc_optimizer_step(o, p, g) == OC_OK, "step");
    for (int i = 0; i < 2; i++) {
        float p0 = (float)(i + 1);
        T_CHECK(fabsf(p[i] - (p0 - 0.1f * (g[i] + 0.2f * p0))) < 1e-6f, "weight %d: %g", i,
                (double)p[i]);
        T_CHECK(p[2 + i] == 3 + i, "frozen tensor moved to %g", (double)p[2 + i]);
        T_CHECK(fabsf(p[4 + i] - (p0 - 0.4f * (g[4 + i] + 0.05f * p0))) < 1e-6f, "shift %d: %g",
                i, (double)p[4 + i]);
    }
    T_CHECK(oc_optimizer_set_frozen(o, 2, 0) == OC_OK, "thaw");
    T_CHECK(oc_optimizer_set_frozen(o, 1, 1) == OC_ERR_ARG, "no tensor starts at 1");
    T_CHECK(oc_optimizer_step(o, p, g) == OC_OK && p[2] != 3, "thawed tensor did not move");
    oc_optimizer_free(o);
    c.norm_lr_scale = -1;
    T_CHECK(oc_optimizer_new(&o, &c, 6, t, 3) == OC_ERR_ARG, "negative scale accepted");
}

/* altflip: epoch 0 mirrors a fair coin's choice per sample, each later epoch the opposite of
 * the one before; about half the samples start mirrored. */
static void alternating_flip(void)
{
    enum { H = 4, W = 5, C = 3, N = H * W * C };
    oc_augment *a = NULL;
    oc_image img = {0}, scratch[2] = {{0}, {0}};
    oc_preprocess pp = {.height = H, .width = W, .channels = C, .resize = OC_RESIZE_STRETCH};
    float e[3][N];
    int mirrored0 = 0;
    for (int c = 0; c < 4; c++)
        pp.std[c] = 1.0f / 255.0f;
    T_CHECK(oc_augment_parse("altflip", &a) == OC_OK, "%s", oc_last_error());
    T_CHECK(oc_augment_parse("altflip:0.5", &(oc_augment *){NULL}) == OC_ERR_ARG,
            "altflip took a parameter");
    oc_image_alloc(&img, H, W, C);
    for (int i = 0; i < N; i++)
        img.data[i] = (uint8_t)(i * 7 % 256);
    for (int64_t index = 0; index < 200; index++) {
        for (int ep = 0; ep < 3; ep++)
            T_CHECK(oc_augment_sample_at(a, &img, &pp, 42, ep, index, scratch, e[ep]) == OC_OK,
                    "sample");
        int m0 = e[0][0] != (float)img.data[0];
        mirrored0 += m0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    size_t i = ((size_t)y * W + x) * C + c, f = ((size_t)y * W + W - 1 - x) * C + c;
                    T_CHECK(e[1][i] == e[0][f], "epoch 1 is not epoch 0 mirrored");
                    T_CHECK(e[2][i] == e[0][i], "epoch 2 differs from epoch 0");
                    T_CHECK(e[0][i] == (float)img.data[m0 ? f : i], "epoch 0 is no flip");
                }
    }
    T_CHECK(mirrored0 > 70 && mirrored0 < 130, "%d of 200 mirrored in epoch 0", mirrored0);
    oc_image_release(&img);
    oc_image_release(&scratch[0]);
    oc_image_release(&scratch[1]);
    oc_augment_free(a);
}

/* oc_model_forward_tta against the views built by hand: level 0 = the plain forward, level 2 =
 * 1/4 (x + mirror) + 1/8 (four reflect-shifted views). */
static void tta_views(void)
{
    enum { n = 2, H = 6, W = 5, C = 3, K = 4 };
    const char *spec = "{\"nodes\":[{\"op\":\"conv2d\",\"filters\":4,\"kernel\":3},"
                       "{\"op\":\"relu\"},{\"op\":\"flatten\"},"
                       "{\"op\":\"dense\",\"units\":\"classes\"}]}";
    oc_model *m = NULL;
    float x[n * H * W * C], v[n * H * W * C], scratch[n * H * W * C], tta[n * K], want[n * K];
    const float *y;
    oc_rng r;
    T_CHECK(oc_model_from_json(&m, spec, strlen(spec), H, W, C, K, 2) == OC_OK, "%s",
            oc_last_error());
    if (!m)
        return;
    oc_rng_seed(&r, 4, 0);
    for (int i = 0; i < n * H * W * C; i++)
        x[i] = oc_rng_normal(&r);
    T_CHECK(oc_model_forward_tta(m, x, n, 0, scratch, tta) == OC_OK, "level 0");
    oc_model_forward(m, x, n, 0, &y);
    T_CLOSE("level 0", tta, y, n * K, 0, 0);
    memset(want, 0, sizeof want);
    static const int views[6][4] = {{0, 0, 0, 2}, {1, 0, 0, 2}, {0, -1, -1, 1},
                                    {1, -1, -1, 1}, {0, 1, 1, 1}, {1, 1, 1, 1}};
    for (int k = 0; k < 6; k++) {
        for (int i = 0; i < n; i++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++) {
                    /* padded-and-cropped as airbench: F.pad(x, 1, 'reflect')[1+dy:, 1+dx:] */
                    int sy = yy + views[k][1], sx = xx + views[k][2];
                    sy = sy < 0 ? 1 : sy >= H ? H - 2 : sy;
                    sx = sx < 0 ? 1 : sx >= W ? W - 2 : sx;
                    if (views[k][0])
                        sx = W - 1 - sx;
                    memcpy(v + ((i * H + yy) * W + xx) * C, x + ((i * H + sy) * W + sx) * C,
                           C * sizeof(float));
                }
        oc_model_forward(m, v, n, 0, &y);
        for (int i = 0; i < n * K; i++)
            want[i] += 0.125f * (float)views[k][3] * y[i];
    }
    T_CHECK(oc_model_forward_tta(m, x, n, 2, scratch, tta) == OC_OK, "level 2");
    T_CLOSE("level 2", tta, want, n * K, 1e-6, 1e-5);
    T_CHECK(oc_model_forward_tta(m, x, n, 3, scratch, tta) == OC_ERR_ARG, "level 3 accepted");
    oc_model_free(m);
}

/* The recipe sets what it promises and leaves the caller's files and data alone. */
static void recipe_table(void)
{
    oc_train_config c;
    oc_train_config_init(&c);
    c.data = "cifar10:x";
    c.out = "o.ocm";
    T_CHECK(oc_recipe_names()[0] && !strcmp(oc_recipe_names()[0], "cifar10-fast"), "names");
    T_CHECK(oc_recipe_summary("cifar10-fast") && !oc_recipe_summary("nope"), "summaries");
    T_CHECK(oc_recipe_apply("cifar10-fast", &c) == OC_OK, "%s", oc_last_error());
    T_CHECK(!strcmp(c.model, "airnet") && c.batch == 1024 && c.epochs == 10 &&
                !strcmp(c.recipe, "cifar10-fast") && !strcmp(c.data, "cifar10:x") &&
                !strcmp(c.out, "o.ocm"),
            "fields");
    /* airbench's decoupled figures: lr x (1 + 1/(1-m)) = 11.5 and lr x wd x 7.667 = 0.0153 */
    T_CHECK(fabs(c.lr * (1 + 1 / (1 - c.momentum)) - 11.5) < 1e-9, "lr %g", c.lr);
    T_CHECK(fabs(c.lr * c.weight_decay * (1 + 1 / (1 - c.momentum)) - 0.0153) < 1e-12,
            "weight decay %g", c.weight_decay);
    T_CHECK(oc_recipe_apply("cifar10-slow", &c) == OC_ERR_ARG &&
                strstr(oc_last_error(), "cifar10-fast"),
            "unknown recipe: %s", oc_last_error());
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"eigen_recovers_a_known_spectrum", eigen_recovers_a_known_spectrum},
        {"whitening_decorrelates_patches", whitening_decorrelates_patches},
        {"dirac_init_is_identity", dirac_init_is_identity},
        {"optimizer_frozen_and_norm_scale", optimizer_frozen_and_norm_scale},
        {"alternating_flip", alternating_flip},
        {"tta_views", tta_views},
        {"recipe_table", recipe_table},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
