/* train: SGD / AdamW against torch.optim trajectories (fixture from tests/ref/gen_optim.py),
 * state save/restore, thread-count independence, argument checks, and the EMA of weights. */
#include "test.h"
#include "ocelot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Weights after each step within |a - b| <= ATOL + RTOL * |b| of torch's. torch computes in
 * float too but may fuse multiply-adds (ATen's vectorised add uses FMA), so a few ulp of
 * difference per step is expected; 1e-5 relative leaves two orders of magnitude of margin. */
#define ATOL 1e-6
#define RTOL 1e-5

#define NT 6 /* tensors in the fixture */

typedef struct {
    const char *name;
    oc_optim_config cfg;
} optim_case;

/* Must match CASES in tests/ref/gen_optim.py (same order and hyper-parameters). */
static int make_cases(optim_case *c)
{
    int n = 0;
    oc_optim_config s = oc_optim_defaults(OC_OPTIM_SGD), a = oc_optim_defaults(OC_OPTIM_ADAMW);

    c[n].name = "sgd_plain";
    c[n++].cfg = s;

    c[n].name = "sgd_momentum";
    c[n].cfg = s;
    c[n++].cfg.momentum = 0.9;

    c[n].name = "sgd_dampening";
    c[n].cfg = s;
    c[n].cfg.momentum = 0.8;
    c[n].cfg.dampening = 0.3;
    c[n++].cfg.weight_decay = 0.01;

    c[n].name = "sgd_nesterov_wd";
    c[n].cfg = s;
    c[n].cfg.momentum = 0.9;
    c[n].cfg.nesterov = 1;
    c[n++].cfg.weight_decay = 5e-2;

    c[n].name = "sgd_nesterov_nodecay";
    c[n].cfg = s;
    c[n].cfg.momentum = 0.9;
    c[n].cfg.nesterov = 1;
    c[n].cfg.weight_decay = 5e-2;
    c[n++].cfg.no_decay = OC_NO_DECAY_NORM | OC_NO_DECAY_BIAS;

    c[n].name = "adamw";
    c[n].cfg = a;
    c[n++].cfg.weight_decay = 0.1;

    c[n].name = "adamw_betas";
    c[n].cfg = a;
    c[n].cfg.beta1 = 0.8;
    c[n].cfg.beta2 = 0.95;
    c[n].cfg.eps = 1e-6;
    c[n].cfg.weight_decay = 0.05;
    c[n++].cfg.no_decay = OC_NO_DECAY_NORM;

    c[n].name = "adamw_nowd";
    c[n].cfg = a;
    c[n].cfg.weight_decay = 0.0;
    c[n++].cfg.eps = 1e-3;
    return n;
}

typedef struct {
    oc_fixture *fx;
    oc_param_info info[NT];
    size_t n;     /* floats in the params buffer */
    int steps;
    const float *p0, *grads;
} optim_fixture;

static int load(optim_fixture *f)
{
    oc_fixture_array *off, *num, *kind, *g;
    memset(f, 0, sizeof *f);
    f->fx = oc_fixture_load("optim");
    if (!f->fx)
        return 0;
    off = oc_fixture_get(f->fx, "offsets");
    num = oc_fixture_get(f->fx, "numels");
    kind = oc_fixture_get(f->fx, "kinds");
    g = oc_fixture_get(f->fx, "grads");
    f->p0 = oc_fixture_f32(f->fx, "params0");
    if (!off || !num || !kind || !g || !f->p0 || off->numel != NT) {
        T_CHECK(0, "optim fixture incomplete");
        return 0;
    }
    for (int i = 0; i < NT; i++) {
        f->info[i].name = "t";
        f->info[i].offset = (size_t)((int32_t *)off->data)[i];
        f->info[i].numel = (size_t)((int32_t *)num->data)[i];
        f->info[i].kind = (oc_param_kind)((int32_t *)kind->data)[i];
    }
    f->n = (size_t)g->shape[1];
    f->steps = (int)g->shape[0];
    f->grads = g->data;
    return 1;
}

/* Runs `steps` steps of case c from the fixture's start; returns the max relative error
 * against torch over all steps, and checks each step. */
static void run_against_torch(optim_fixture *f, const optim_case *c)
{
    char key[96];
    const float *want, *lrs;
    float *p = malloc(f->n * sizeof *p);
    oc_optimizer *o = NULL;
    double worst = 0, max_diff = 0; /* worst: largest fraction of the tolerance used */

    snprintf(key, sizeof key, "%s.params", c->name);
    want = oc_fixture_f32(f->fx, key);
    snprintf(key, sizeof key, "%s.lrs", c->name);
    lrs = oc_fixture_f32(f->fx, key);
    if (!want || !lrs)
        goto done;
    T_CHECK(oc_optimizer_new(&o, &c->cfg, f->n, f->info, NT) == OC_OK, "%s: new: %s", c->name,
            oc_last_error());
    if (!o)
        goto done;
    memcpy(p, f->p0, f->n * sizeof *p);
    for (int s = 0; s < f->steps; s++) {
        const float *w = want + (size_t)s * f->n;
        oc_optimizer_set_lr(o, (double)lrs[s]);
        T_CHECK(oc_optimizer_step(o, p, f->grads + (size_t)s * f->n) == OC_OK, "step");
        snprintf(key, sizeof key, "%s step %d", c->name, s + 1);
        T_CLOSE(key, p, w, (int64_t)f->n, ATOL, RTOL);
        for (size_t i = 0; i < f->n; i++) {
            double d = fabs((double)p[i] - (double)w[i]);
            double e = d / (ATOL + RTOL * fabs((double)w[i]));
            if (d > max_diff)
                max_diff = d;
            if (e > worst)
                worst = e;
        }
    }
    T_CHECK(oc_optimizer_steps(o) == f->steps, "step count %lld",
            (long long)oc_optimizer_steps(o));
    oc_test_note("%-22s %d steps: max |a-b| %.2e, worst |a-b|/(atol+rtol|b|) %.3f", c->name,
                 f->steps, max_diff, worst);
done:
    oc_optimizer_free(o);
    free(p);
}

static void run_type(oc_optim_type type)
{
    optim_fixture f;
    optim_case cases[16];
    int n = make_cases(cases);
    if (!load(&f))
        return;
    for (int i = 0; i < n; i++)
        if (cases[i].cfg.type == type)
            run_against_torch(&f, &cases[i]);
    oc_fixture_free(f.fx);
}

static void sgd_matches_torch(void)
{
    run_type(OC_OPTIM_SGD);
}

static void adamw_matches_torch(void)
{
    run_type(OC_OPTIM_ADAMW);
}

/* Three steps, then copy the weights, state and step count into a fresh optimizer: both go on
 * for three more steps and agree bitwise (what a checkpoint resume relies on). */
static void resume_is_bitwise(void)
{
    optim_fixture f;
    optim_case cases[16];
    int n = make_cases(cases);
    if (!load(&f))
        return;
    for (int k = 0; k < n; k++) {
        oc_optimizer *a = NULL, *b = NULL;
        float *pa = malloc(f.n * sizeof *pa), *pb = malloc(f.n * sizeof *pb);
        float *sa, *sb;
        size_t na = 0, nb = 0;
        int half = f.steps / 2;
        oc_optimizer_new(&a, &cases[k].cfg, f.n, f.info, NT);
        oc_optimizer_new(&b, &cases[k].cfg, f.n, f.info, NT);
        T_CHECK(a && b, "new: %s", oc_last_error());
        if (!a || !b)
            goto next;
        memcpy(pa, f.p0, f.n * sizeof *pa);
        for (int s = 0; s < half; s++)
            oc_optimizer_step(a, pa, f.grads + (size_t)s * f.n);
        memcpy(pb, pa, f.n * sizeof *pb);
        sa = oc_optimizer_state(a, &na);
        sb = oc_optimizer_state(b, &nb);
        T_CHECK(na == nb, "%s: state sizes %zu vs %zu", cases[k].name, na, nb);
        if (na)
            memcpy(sb, sa, na * sizeof *sa);
        oc_optimizer_set_steps(b, oc_optimizer_steps(a));
        for (int s = half; s < f.steps; s++) {
            oc_optimizer_step(a, pa, f.grads + (size_t)s * f.n);
            oc_optimizer_step(b, pb, f.grads + (size_t)s * f.n);
        }
        T_CHECK(memcmp(pa, pb, f.n * sizeof *pa) == 0, "%s: resumed run differs",
                cases[k].name);
        T_CHECK(oc_optimizer_steps(b) == f.steps, "%s: step count %lld", cases[k].name,
                (long long)oc_optimizer_steps(b));
        if (cases[k].cfg.type == OC_OPTIM_ADAMW)
            T_CHECK(na == 2 * f.n, "adamw state %zu floats, want %zu", na, 2 * f.n);
        else
            T_CHECK(na == (cases[k].cfg.momentum != 0 ? f.n : 0), "sgd state %zu floats", na);
    next:
        oc_optimizer_free(a);
        oc_optimizer_free(b);
        free(pa);
        free(pb);
    }
    oc_fixture_free(f.fx);
}

/* A buffer big enough to be split across threads: 1 thread and 4 threads agree bitwise, and
 * the floats no tensor covers are untouched. */
static void threads_bitwise(void)
{
    enum { N = 300007 };
    oc_param_info info[3] = {
        {"w", OC_PARAM_WEIGHT, 1, {200000}, 3, 200000, 0},
        {"b", OC_PARAM_BIAS, 1, {17}, 200003, 17, 0},
        {"g", OC_PARAM_NORM_SCALE, 1, {99986}, 200020, 99986, 0},
    };
    oc_optim_type types[2] = {OC_OPTIM_SGD, OC_OPTIM_ADAMW};
    float *g = malloc(N * sizeof *g), *p1 = malloc(N * sizeof *p1), *p4 = malloc(N * sizeof *p4);
    float *p0 = malloc(N * sizeof *p0);
    oc_rng r;
    int saved = oc_get_threads();
    oc_rng_seed(&r, 7, 0);
    for (int i = 0; i < N; i++) {
        p0[i] = oc_rng_normal(&r);
        g[i] = oc_rng_normal(&r);
    }
    for (int t = 0; t < 2; t++) {
        oc_optim_config cfg = oc_optim_defaults(types[t]);
        oc_optimizer *a = NULL, *b = NULL;
        cfg.momentum = 0.9;
        cfg.nesterov = 1;
        cfg.weight_decay = 0.01;
        cfg.no_decay = OC_NO_DECAY_NORM;
        T_CHECK(oc_optimizer_new(&a, &cfg, N, info, 3) == OC_OK, "new: %s", oc_last_error());
        T_CHECK(oc_optimizer_new(&b, &cfg, N, info, 3) == OC_OK, "new: %s", oc_last_error());
        memcpy(p1, p0, N * sizeof *p1);
        memcpy(p4, p0, N * sizeof *p4);
        for (int s = 0; s < 3; s++) {
            oc_set_threads(1);
            oc_optimizer_step(a, p1, g);
            oc_set_threads(4);
            oc_optimizer_step(b, p4, g);
        }
        T_CHECK(memcmp(p1, p4, N * sizeof *p1) == 0, "type %d: 1 and 4 threads differ", t);
        T_CHECK(memcmp(p1, p0, 3 * sizeof *p1) == 0 && p1[N - 1] == p0[N - 1],
                "uncovered floats changed");
        T_CHECK(p1[10] != p0[10] && p1[200010] != p0[200010], "covered floats unchanged");
        oc_optimizer_free(a);
        oc_optimizer_free(b);
    }
    oc_set_threads(saved);
    free(g);
    free(p0);
    free(p1);
    free(p4);
}

static void rejects_bad_arguments(void)
{
    oc_param_info ok[2] = {{"a", OC_PARAM_WEIGHT, 1, {10}, 0, 10, 0},
                           {"s", OC_PARAM_STATE, 1, {10}, 0, 10, 0}};
    oc_param_info overlap[2] = {{"a", OC_PARAM_WEIGHT, 1, {10}, 0, 10, 0},
                                {"b", OC_PARAM_BIAS, 1, {5}, 8, 5, 0}};
    oc_param_info outside[1] = {{"far", OC_PARAM_WEIGHT, 1, {10}, 95, 10, 0}};
    oc_optim_config c = oc_optim_defaults(OC_OPTIM_SGD);
    oc_optimizer *o = NULL;
    oc_optim_type ty;

    T_CHECK(oc_optimizer_new(&o, &c, 100, ok, 2) == OC_OK && o,
            "STATE tensors should be ignored: %s", oc_last_error());
    oc_optimizer_free(o);
    o = NULL;
    T_CHECK(oc_optimizer_new(&o, &c, 100, overlap, 2) == OC_ERR_ARG && !o, "overlap accepted");
    T_CHECK(strstr(oc_last_error(), "overlap") != NULL, "message: %s", oc_last_error());
    T_CHECK(oc_optimizer_new(&o, &c, 100, outside, 1) == OC_ERR_ARG, "outside accepted");
    T_CHECK(strstr(oc_last_error(), "far") != NULL, "message: %s", oc_last_error());
    c.lr = -1;
    T_CHECK(oc_optimizer_new(&o, &c, 100, ok, 1) == OC_ERR_ARG, "negative lr accepted");
    c = oc_optim_defaults(OC_OPTIM_SGD);
    c.nesterov = 1;
    T_CHECK(oc_optimizer_new(&o, &c, 100, ok, 1) == OC_ERR_ARG, "nesterov without momentum");
    c = oc_optim_defaults(OC_OPTIM_ADAMW);
    c.beta2 = 1.0;
    T_CHECK(oc_optimizer_new(&o, &c, 100, ok, 1) == OC_ERR_ARG, "beta2 = 1 accepted");
    c.beta2 = 0.999;
    c.eps = NAN;
    T_CHECK(oc_optimizer_new(&o, &c, 100, ok, 1) == OC_ERR_ARG, "NaN eps accepted");
    T_CHECK(o == NULL, "out set on failure");
    T_CHECK(oc_optim_type_parse("adamw", &ty) == OC_OK && ty == OC_OPTIM_ADAMW, "parse adamw");
    T_CHECK(oc_optim_type_parse("sgd", &ty) == OC_OK && ty == OC_OPTIM_SGD, "parse sgd");
    T_CHECK(oc_optim_type_parse("adam", &ty) == OC_ERR_ARG, "parse adam accepted");
}

/* EMA over the fixture's weight sequence (timm ModelEmaV2 formula computed by torch). */
static void ema_matches_reference(void)
{
    const char *tags[2] = {"fixed", "warmup"};
    double decays[2] = {0.9, 0.999};
    oc_fixture *fx = oc_fixture_load("optim");
    const float *p0, *seq, *s0, *sseq;
    oc_fixture_array *pa, *sa;
    if (!fx)
        return;
    p0 = oc_fixture_f32(fx, "params0");
    seq = oc_fixture_f32(fx, "sgd_nesterov_wd.params");
    s0 = oc_fixture_f32(fx, "ema.state0");
    sa = oc_fixture_get(fx, "ema.state_seq");
    pa = oc_fixture_get(fx, "sgd_nesterov_wd.params");
    if (!p0 || !seq || !s0 || !sa || !pa)
        goto done;
    sseq = sa->data;
    for (int k = 0; k < 2; k++) {
        char key[64];
        size_t np = (size_t)pa->shape[1], ns = (size_t)sa->shape[1], n1, n2;
        int steps = (int)pa->shape[0];
        const float *wp, *ws;
        oc_ema *e = NULL;
        snprintf(key, sizeof key, "ema.%s.params", tags[k]);
        wp = oc_fixture_f32(fx, key);
        snprintf(key, sizeof key, "ema.%s.state", tags[k]);
        ws = oc_fixture_f32(fx, key);
        T_CHECK(oc_ema_new(&e, decays[k], k == 1, p0, np, s0, ns) == OC_OK, "ema new: %s",
                oc_last_error());
        if (!e || !wp || !ws) {
            oc_ema_free(e);
            continue;
        }
        for (int t = 0; t < steps; t++) {
            double want_d = k == 1 ? fmin(decays[k], (1.0 + t) / (10.0 + t)) : decays[k];
            T_CHECK(fabs(oc_ema_decay(e) - want_d) < 1e-15, "decay at %d: %g", t, oc_ema_decay(e));
            oc_ema_update(e, seq + (size_t)t * np, sseq + (size_t)t * ns);
            snprintf(key, sizeof key, "ema %s params step %d", tags[k], t + 1);
            T_CLOSE(key, oc_ema_params(e, &n1), wp + (size_t)t * np, (int64_t)np, ATOL, RTOL);
            snprintf(key, sizeof key, "ema %s state step %d", tags[k], t + 1);
            T_CLOSE(key, oc_ema_state(e, &n2), ws + (size_t)t * ns, (int64_t)ns, ATOL, RTOL);
            T_CHECK(n1 == np && n2 == ns, "sizes");
        }
        T_CHECK(oc_ema_updates(e) == steps, "updates %lld", (long long)oc_ema_updates(e));
        oc_ema_free(e);
    }
    T_CHECK(oc_ema_new(NULL, 0.9, 0, p0, 1, NULL, 0) == OC_ERR_ARG, "NULL out accepted");
    {
        oc_ema *e = NULL;
        T_CHECK(oc_ema_new(&e, 1.5, 0, p0, 1, NULL, 0) == OC_ERR_ARG && !e, "decay 1.5 accepted");
    }
done:
    oc_fixture_free(fx);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"sgd_matches_torch", sgd_matches_torch},
        {"adamw_matches_torch", adamw_matches_torch},
        {"resume_is_bitwise", resume_is_bitwise},
        {"threads_bitwise", threads_bitwise},
        {"rejects_bad_arguments", rejects_bad_arguments},
        {"ema_matches_reference", ema_matches_reference},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof *cases));
}
