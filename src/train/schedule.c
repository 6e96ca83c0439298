/* Learning-rate schedules as pure functions of the step (ocelot.h documents each shape and the
 * torch.optim.lr_scheduler class it reproduces). Closed forms throughout: torch's schedulers
 * update recursively (lr *= ratio), which agrees with these to double rounding. */
#include "core/core.h"

#include <math.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

oc_schedule oc_schedule_defaults(oc_sched_type type, double lr, int64_t total_steps)
{
    oc_schedule s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.lr = lr;
    s.total_steps = total_steps;
    s.gamma = 0.1;
    s.step_size = total_steps / 3 > 0 ? total_steps / 3 : 1;
    if (type == OC_SCHED_TRIANGULAR) {
        s.pct_start = 0.2;
        s.div_factor = 5;
    } else {
        s.pct_start = 0.3;
        s.div_factor = 25;
    }
    s.final_div_factor = 1e4;
    return s;
}

static const char *const sched_names[] = {"constant", "step", "cosine", "onecycle", "triangular"};

oc_status oc_sched_type_parse(const char *name, oc_sched_type *out)
{
    if (!name || !out)
        return oc_fail(OC_ERR_ARG, "schedule name: NULL argument");
    for (int i = 0; i < (int)(sizeof sched_names / sizeof *sched_names); i++)
        if (strcmp(name, sched_names[i]) == 0) {
            *out = (oc_sched_type)i;
            return OC_OK;
        }
    return oc_fail(OC_ERR_ARG,
                   "unknown schedule '%s' (expected constant, step, cosine, onecycle or "
                   "triangular)", name);
}

const char *oc_sched_type_name(oc_sched_type t)
{
    if ((int)t < 0 || (int)t >= (int)(sizeof sched_names / sizeof *sched_names))
        return "?";
    return sched_names[t];
}

static int finite_nonneg(double x)
{
    return isfinite(x) && x >= 0;
}

oc_status oc_schedule_check(const oc_schedule *s)
{
    if (!s)
        return oc_fail(OC_ERR_ARG, "schedule: NULL");
    if ((int)s->type < 0 || s->type > OC_SCHED_TRIANGULAR)
        return oc_fail(OC_ERR_ARG, "schedule: unknown type %d", (int)s->type);
    if (!finite_nonneg(s->lr))
        return oc_fail(OC_ERR_ARG, "schedule: invalid lr %g", s->lr);
    if (s->warmup_steps < 0)
        return oc_fail(OC_ERR_ARG, "schedule: negative warm-up %lld", (long long)s->warmup_steps);
    if (s->warmup_steps > 0 && !(s->warmup_start >= 0 && s->warmup_start <= 1))
        return oc_fail(OC_ERR_ARG, "schedule: warm-up start factor %g outside [0, 1]",
                       s->warmup_start);
    switch (s->type) {
    case OC_SCHED_CONSTANT:
        break;
    case OC_SCHED_STEP:
        if (!finite_nonneg(s->gamma))
            return oc_fail(OC_ERR_ARG, "step schedule: invalid gamma %g", s->gamma);
        if (s->n_milestones < 0 || s->n_milestones > OC_SCHED_MAX_MILESTONES)
            return oc_fail(OC_ERR_ARG, "step schedule: %d milestones (at most %d)",
                           s->n_milestones, OC_SCHED_MAX_MILESTONES);
        if (s->n_milestones == 0 && s->step_size < 1)
            return oc_fail(OC_ERR_ARG, "step schedule: step_size %lld < 1",
                           (long long)s->step_size);
        for (int i = 0; i < s->n_milestones; i++)
            if (s->milestones[i] < 0 || (i > 0 && s->milestones[i] < s->milestones[i - 1]))
                return oc_fail(OC_ERR_ARG, "step schedule: milestones must be ascending and "
                               "non-negative (milestone %d is %lld)", i,
                               (long long)s->milestones[i]);
        break;
    case OC_SCHED_COSINE:
    case OC_SCHED_ONECYCLE:
    case OC_SCHED_TRIANGULAR:
        if (s->total_steps <= s->warmup_steps)
            return oc_fail(OC_ERR_ARG, "%s schedule: total_steps %lld must exceed the %lld "
                           "warm-up steps", oc_sched_type_name(s->type),
                           (long long)s->total_steps, (long long)s->warmup_steps);
        if (!finite_nonneg(s->lr_min))
            return oc_fail(OC_ERR_ARG, "schedule: invalid lr_min %g", s->lr_min);
        if (s->type == OC_SCHED_COSINE)
            break;
        if (!(s->pct_start >= 0 && s->pct_start < 1))
            return oc_fail(OC_ERR_ARG, "%s schedule: pct_start %g outside [0, 1)",
                           oc_sched_type_name(s->type), s->pct_start);
        if (!(isfinite(s->div_factor) && s->div_factor > 0))
            return oc_fail(OC_ERR_ARG, "schedule: invalid div_factor %g", s->div_factor);
        if (s->type == OC_SCHED_ONECYCLE &&
            !(isfinite(s->final_div_factor) && s->final_div_factor > 0))
            return oc_fail(OC_ERR_ARG, "onecycle schedule: invalid final_div_factor %g",
                           s->final_div_factor);
        break;
    }
    return OC_OK;
}

/* torch OneCycleLR._annealing_cos */
static double anneal_cos(double start, double end, double pct)
{
    return end + (start - end) / 2.0 * (cos(PI * pct) + 1.0);
}

/* OneCycleLR.get_lr with three_phase=False over T steps: phase 1 ends at the float step
 * pct_start*T - 1, phase 2 at T - 1; the last phase also takes any later step (held at its end
 * value here, where torch raises). A zero-length phase counts as finished. */
static double onecycle(const oc_schedule *s, int64_t t, int64_t T)
{
    double initial = s->lr / s->div_factor, min_lr = initial / s->final_div_factor;
    double end1 = s->pct_start * (double)T - 1.0, end2 = (double)T - 1.0;
    double x = (double)t, start, end, from, to, pct;
    if (x >= end2)
        return min_lr;
    if (x <= end1) {
        start = 0;
        end = end1;
        from = initial;
        to = s->lr;
    } else {
        start = end1;
        end = end2;
        from = s->lr;
        to = min_lr;
    }
    pct = end > start ? (x - start) / (end - start) : 1.0;
    return anneal_cos(from, to, pct);
}

/* Piecewise linear through (0, lr/div), (floor(pct_start*T), lr), (T, lr_min), as airbench's
 * np.interp; a peak at step 0 starts at lr. */
static double triangular(const oc_schedule *s, int64_t t, int64_t T)
{
    int64_t peak = (int64_t)floor(s->pct_start * (double)T);
    if (t >= T)
        return s->lr_min;
    if (t < peak) {
        double lo = s->lr / s->div_factor;
        return lo + (s->lr - lo) * (double)t / (double)peak;
    }
    return s->lr + (s->lr_min - s->lr) * (double)(t - peak) / (double)(T - peak);
}

/* The main shape at step t of its own span of T steps (t >= 0). */
static double main_lr(const oc_schedule *s, int64_t t, int64_t T)
{
    switch (s->type) {
    case OC_SCHED_CONSTANT:
        return s->lr;
    case OC_SCHED_STEP: {
        int64_t k = 0;
        if (s->n_milestones > 0) {
            while (k < s->n_milestones && s->milestones[k] <= t)
                k++;
        } else {
            k = t / s->step_size;
        }
        return s->lr * pow(s->gamma, (double)k);
    }
    case OC_SCHED_COSINE:
        if (t >= T)
            return s->lr_min;
        return s->lr_min + (s->lr - s->lr_min) * (1.0 + cos(PI * (double)t / (double)T)) / 2.0;
    case OC_SCHED_ONECYCLE:
        return onecycle(s, t, T);
    case OC_SCHED_TRIANGULAR:
        return triangular(s, t, T);
    }
    return s->lr;
}

double oc_schedule_lr(const oc_schedule *s, int64_t step)
{
    int64_t W = s->warmup_steps, T = s->total_steps - W;
    if (step < 0)
        step = 0;
    if (step < W) {
        double f = s->warmup_start + (1.0 - s->warmup_start) * (double)step / (double)W;
        return main_lr(s, 0, T) * f;
    }
    return main_lr(s, step - W, T);
}
