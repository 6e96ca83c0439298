/* The optimizer and EMA bound to a model's flat buffers and tensor table. Kept apart from
 * optim.c / ema.c so those need nothing from the nn layer. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

oc_status oc_optimizer_new_for_model(oc_optimizer **out, const oc_optim_config *cfg, oc_model *m)
{
    size_t n = 0;
    int nt;
    oc_param_info *infos;
    oc_status st;

    if (!out || !m)
        return oc_fail(OC_ERR_ARG, "oc_optimizer_new_for_model: NULL argument");
    *out = NULL;
    oc_model_params(m, &n);
    nt = oc_model_num_tensors(m);
    infos = calloc(nt > 0 ? (size_t)nt : 1, sizeof *infos);
    if (!infos)
        return oc_fail(OC_ERR_NOMEM, "optimizer: out of memory");
    for (int i = 0; i < nt; i++)
        infos[i] = *oc_model_tensor(m, i);
    st = oc_optimizer_new(out, cfg, n, infos, nt);
    free(infos);
    return st;
}

oc_status oc_ema_new_for_model(oc_ema **out, double decay, int warmup, oc_model *m)
{
    size_t np = 0, ns = 0;
    const float *p, *s;
    if (!out || !m)
        return oc_fail(OC_ERR_ARG, "oc_ema_new_for_model: NULL argument");
    p = oc_model_params(m, &np);
    s = oc_model_state(m, &ns);
    return oc_ema_new(out, decay, warmup, p, np, s, ns);
}

oc_status oc_ema_copy_to_model(oc_ema *e, oc_model *m)
{
    size_t np = 0, ns = 0, ep = 0, es = 0;
    float *p, *s;
    const float *ap, *as;
    if (!e || !m)
        return oc_fail(OC_ERR_ARG, "oc_ema_copy_to_model: NULL argument");
    p = oc_model_params(m, &np);
    s = oc_model_state(m, &ns);
    ap = oc_ema_params(e, &ep);
    as = oc_ema_state(e, &es);
    if (np != ep || ns != es)
        return oc_fail(OC_ERR_SHAPE, "ema: model has %zu params + %zu state floats, the average "
                       "%zu + %zu", np, ns, ep, es);
    if (np)
        memcpy(p, ap, np * sizeof(float));
    if (ns)
        memcpy(s, as, ns * sizeof(float));
    return OC_OK;
}
