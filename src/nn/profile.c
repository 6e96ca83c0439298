/* The layer profile: per-node wall-time counters that oc_model_forward / oc_model_backward
 * (plan.c) add to while m->prof is set. Backward time includes clearing the node's input
 * gradients. Timing each node costs two clock reads, so it is off unless asked for. */
#include "nn.h"

#include <stdlib.h>

oc_status oc_model_set_profiling(oc_model *m, int enabled)
{
    if (!m)
        return oc_fail(OC_ERR_ARG, "oc_model_set_profiling: model is NULL");
    free(m->prof);
    m->prof = NULL;
    if (enabled) {
        m->prof = calloc((size_t)m->n_nodes * 2, sizeof *m->prof);
        if (!m->prof)
            return oc_fail(OC_ERR_NOMEM, "oc_model_set_profiling: out of memory");
    }
    return OC_OK;
}

int oc_model_node_time(const oc_model *m, int i, double *fwd_s, double *bwd_s)
{
    if (!m || !m->prof || i < 0 || i >= m->n_nodes)
        return 0;
    if (fwd_s)
        *fwd_s = m->prof[2 * i];
    if (bwd_s)
        *bwd_s = m->prof[2 * i + 1];
    return 1;
}
