/* train: learning-rate schedules against torch.optim.lr_scheduler's value at every step
 * (fixture from tests/ref/gen_optim.py), warm-up composition, edge cases, argument checks. */
#include "test.h"
#include "ocelot.h"

#include <math.h>
#include <string.h>

/* torch steps its schedulers recursively (lr *= ratio) in double; ours are closed forms. The
 * two agree to double rounding accumulated over the steps, far inside 1e-9 relative. */
#define LR_ATOL 1e-15
#define LR_RTOL 1e-9

typedef struct {
    const char *name;
    oc_schedule s;
} sched_case;

/* Must match gen_schedule() in tests/ref/gen_optim.py. */
static int make_cases(sched_case *c)
{
    int n = 0;
    c[n].name = "constant";
    c[n++].s = oc_schedule_defaults(OC_SCHED_CONSTANT, 0.1, 20);

    c[n].name = "step";
    c[n].s = oc_schedule_defaults(OC_SCHED_STEP, 0.2, 30);
    c[n].s.step_size = 7;
    c[n++].s.gamma = 0.5;

    c[n].name = "multistep";
    c[n].s = oc_schedule_defaults(OC_SCHED_STEP, 0.1, 30);
    c[n].s.gamma = 0.3;
    c[n].s.n_milestones = 4;
    c[n].s.milestones[0] = 5;
    c[n].s.milestones[1] = 12;
    c[n].s.milestones[2] = 12;
    c[n++].s.milestones[3] = 20;

    c[n].name = "cosine";
    c[n].s = oc_schedule_defaults(OC_SCHED_COSINE, 0.05, 40);
    c[n++].s.lr_min = 1e-4;

    c[n].name = "onecycle";
    c[n].s = oc_schedule_defaults(OC_SCHED_ONECYCLE, 0.4, 50);
    c[n].s.pct_start = 0.25;
    c[n].s.div_factor = 10;
    c[n++].s.final_div_factor = 100;

    c[n].name = "onecycle_default";
    c[n++].s = oc_schedule_defaults(OC_SCHED_ONECYCLE, 1.0, 37);

    c[n].name = "warmup_cosine";
    c[n].s = oc_schedule_defaults(OC_SCHED_COSINE, 0.1, 30);
    c[n].s.warmup_steps = 5;
    c[n++].s.warmup_start = 0.1;

    c[n].name = "warmup_step";
    c[n].s = oc_schedule_defaults(OC_SCHED_STEP, 0.08, 20);
    c[n].s.step_size = 4;
    c[n].s.gamma = 0.5;
    c[n].s.warmup_steps = 3;
    c[n++].s.warmup_start = 0.25;

    c[n].name = "onecycle_total1";
    c[n++].s = oc_schedule_defaults(OC_SCHED_ONECYCLE, 0.5, 1);

    c[n].name = "cosine_total1";
    c[n].s = oc_schedule_defaults(OC_SCHED_COSINE, 0.1, 1);
    c[n++].s.lr_min = 0.01;

    c[n].name = "triangular";
    c[n++].s = oc_schedule_defaults(OC_SCHED_TRIANGULAR, 0.3, 45);
    return n;
}

static void matches_torch(void)
{
    sched_case cases[32];
    int n = make_cases(cases);
    oc_fixture *fx = oc_fixture_load("schedule");
    if (!fx)
        return;
    for (int k = 0; k < n; k++) {
        char key[64];
        oc_fixture_array *hi;
        const float *lo;
        double worst = 0;
        int bad = 0;
        snprintf(key, sizeof key, "%s.lo", cases[k].name);
        hi = oc_fixture_get(fx, cases[k].name);
        lo = oc_fixture_f32(fx, key);
        if (!hi || !lo)
            continue;
        T_CHECK(oc_schedule_check(&cases[k].s) == OC_OK, "%s: check: %s", cases[k].name,
                oc_last_error());
        for (int64_t t = 0; t < hi->numel; t++) {
            double want = (double)((float *)hi->data)[t] + (double)lo[t];
            double got = oc_schedule_lr(&cases[k].s, t);
            double d = fabs(got - want);
            if (d > worst)
                worst = d;
            if (!(d <= LR_ATOL + LR_RTOL * fabs(want)) && bad++ < 3)
                oc_test_fail(__FILE__, __LINE__, "%s step %lld: got %.17g want %.17g",
                             cases[k].name, (long long)t, got, want);
        }
        oc_test_note("%-18s %3lld steps, max |lr - torch| %.2e", cases[k].name,
                     (long long)hi->numel, worst);
    }
    oc_fixture_free(fx);
}

/* Warm-up is linear from warmup_start * lr0 and hands over continuously to the main shape,
 * which then runs over total - warmup steps (torch's SequentialLR semantics). */
static void warmup_composes(void)
{
    oc_sched_type types[5] = {OC_SCHED_CONSTANT, OC_SCHED_STEP, OC_SCHED_COSINE,
                              OC_SCHED_ONECYCLE, OC_SCHED_TRIANGULAR};
    for (int i = 0; i < 5; i++) {
        oc_schedule plain = oc_schedule_defaults(types[i], 0.2, 40), w = plain;
        w.warmup_steps = 10;
        w.warmup_start = 0;
        w.total_steps = 50;
        T_CHECK(oc_schedule_check(&w) == OC_OK, "%s: %s", oc_sched_type_name(types[i]),
                oc_last_error());
        T_CHECK(oc_schedule_lr(&w, 0) == 0.0, "%s: warm-up does not start at 0",
                oc_sched_type_name(types[i]));
        for (int t = 1; t <= 10; t++) {
            double want = oc_schedule_lr(&plain, 0) * t / 10.0;
            T_CHECK(fabs(oc_schedule_lr(&w, t) - want) <= 1e-15, "%s: warm-up step %d: %g vs %g",
                    oc_sched_type_name(types[i]), t, oc_schedule_lr(&w, t), want);
        }
        for (int t = 0; t < 45; t++)
            T_CHECK(oc_schedule_lr(&w, t + 10) == oc_schedule_lr(&plain, t),
                    "%s: main shape not shifted by the warm-up at %d",
                    oc_sched_type_name(types[i]), t);
    }
}

static void edge_cases(void)
{
    oc_schedule s = oc_schedule_defaults(OC_SCHED_COSINE, 0.1, 10);
    s.lr_min = 0.001;
    T_CHECK(oc_schedule_lr(&s, 0) == 0.1, "cosine step 0: %g", oc_schedule_lr(&s, 0));
    T_CHECK(oc_schedule_lr(&s, -5) == 0.1, "negative step: %g", oc_schedule_lr(&s, -5));
    T_CHECK(oc_schedule_lr(&s, 10) == 0.001 && oc_schedule_lr(&s, 1000) == 0.001,
            "cosine does not hold lr_min after the end");

    s = oc_schedule_defaults(OC_SCHED_ONECYCLE, 0.5, 20);
    T_CHECK(fabs(oc_schedule_lr(&s, 0) - 0.02) < 1e-15, "onecycle start %g", oc_schedule_lr(&s, 0));
    T_CHECK(fabs(oc_schedule_lr(&s, 19) - 0.02 / 1e4) < 1e-18 &&
                oc_schedule_lr(&s, 19) == oc_schedule_lr(&s, 500),
            "onecycle does not hold its final value: %g", oc_schedule_lr(&s, 500));
    /* pct_start * total - 1 == 0: a zero-length rise (torch divides by zero here) */
    s = oc_schedule_defaults(OC_SCHED_ONECYCLE, 0.5, 10);
    s.pct_start = 0.1;
    T_CHECK(oc_schedule_lr(&s, 0) == 0.5, "zero-length rise: %g", oc_schedule_lr(&s, 0));
    T_CHECK(isfinite(oc_schedule_lr(&s, 1)) && oc_schedule_lr(&s, 1) < 0.5, "after the peak");

    s = oc_schedule_defaults(OC_SCHED_TRIANGULAR, 0.4, 1);
    T_CHECK(oc_schedule_check(&s) == OC_OK, "triangular total 1: %s", oc_last_error());
    T_CHECK(oc_schedule_lr(&s, 0) == 0.4 && oc_schedule_lr(&s, 1) == 0.0,
            "triangular total 1: %g %g", oc_schedule_lr(&s, 0), oc_schedule_lr(&s, 1));

    s = oc_schedule_defaults(OC_SCHED_COSINE, 0.3, 6);
    s.warmup_steps = 5;
    s.warmup_start = 0.5;
    T_CHECK(oc_schedule_check(&s) == OC_OK, "warm-up leaving one step: %s", oc_last_error());
    T_CHECK(oc_schedule_lr(&s, 0) == 0.15 && oc_schedule_lr(&s, 5) == 0.3 &&
                oc_schedule_lr(&s, 6) == 0.0,
            "warm-up then one cosine step: %g %g %g", oc_schedule_lr(&s, 0),
            oc_schedule_lr(&s, 5), oc_schedule_lr(&s, 6));

    s = oc_schedule_defaults(OC_SCHED_STEP, 1.0, 0);
    T_CHECK(oc_schedule_check(&s) == OC_OK && oc_schedule_lr(&s, 0) == 1.0 &&
                oc_schedule_lr(&s, 1) == 0.1,
            "step with defaults on an open-ended run: %g", oc_schedule_lr(&s, 1));
}

static void rejects_bad_configs(void)
{
    oc_schedule s;
    oc_sched_type t;

    s = oc_schedule_defaults(OC_SCHED_COSINE, 0.1, 10);
    s.warmup_steps = 10;
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "warm-up as long as the run accepted");
    T_CHECK(strstr(oc_last_error(), "warm-up") != NULL, "message: %s", oc_last_error());
    s = oc_schedule_defaults(OC_SCHED_COSINE, 0.1, 0);
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "cosine over 0 steps accepted");
    s = oc_schedule_defaults(OC_SCHED_STEP, 0.1, 10);
    s.step_size = 0;
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "step_size 0 accepted");
    s.n_milestones = 2;
    s.milestones[0] = 5;
    s.milestones[1] = 3;
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "descending milestones accepted");
    s = oc_schedule_defaults(OC_SCHED_ONECYCLE, 0.1, 10);
    s.pct_start = 1.0;
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "pct_start 1 accepted");
    s = oc_schedule_defaults(OC_SCHED_ONECYCLE, 0.1, 10);
    s.div_factor = 0;
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "div_factor 0 accepted");
    s = oc_schedule_defaults(OC_SCHED_CONSTANT, NAN, 10);
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "NaN lr accepted");
    s = oc_schedule_defaults(OC_SCHED_CONSTANT, 0.1, 10);
    s.warmup_steps = 2;
    s.warmup_start = 1.5;
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "warm-up start 1.5 accepted");
    s.type = (oc_sched_type)42;
    T_CHECK(oc_schedule_check(&s) == OC_ERR_ARG, "unknown type accepted");

    for (int i = 0; i <= OC_SCHED_TRIANGULAR; i++)
        T_CHECK(oc_sched_type_parse(oc_sched_type_name((oc_sched_type)i), &t) == OC_OK && (int)t == i,
                "name round trip %d", i);
    T_CHECK(oc_sched_type_parse("linear", &t) == OC_ERR_ARG, "unknown name accepted");
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"matches_torch", matches_torch},
        {"warmup_composes", warmup_composes},
        {"edge_cases", edge_cases},
        {"rejects_bad_configs", rejects_bad_configs},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof *cases));
}
