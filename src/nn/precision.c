/* The model's arithmetic precision. A bf16 model keeps fp32 parameters; its forward and
 * backward run with the calling thread in bf16 math mode (ops.h: oc_math_set), so every GEMM
 * of a convolution or dense layer rounds its operands to bfloat16 and sums in fp32, while
 * batch norm, activations, pooling and the loss stay fp32. */
#include "nn.h"

#include <string.h>

oc_status oc_precision_parse(const char *name, oc_precision *out)
{
    if (name && (!strcmp(name, "fp32") || !strcmp(name, "f32"))) {
        *out = OC_PRECISION_F32;
        return OC_OK;
    }
    if (name && !strcmp(name, "bf16")) {
        *out = OC_PRECISION_BF16;
        return OC_OK;
    }
    return oc_fail(OC_ERR_ARG, "unknown precision '%s' (fp32, bf16)", name ? name : "(null)");
}

const char *oc_precision_name(oc_precision p)
{
    return p == OC_PRECISION_BF16 ? "bf16" : "fp32";
}

int oc_precision_supported(oc_precision p)
{
    return p == OC_PRECISION_F32 || (p == OC_PRECISION_BF16 && oc_bf16_supported());
}

oc_status oc_model_set_precision(oc_model *m, oc_precision p)
{
    if (!m)
        return oc_fail(OC_ERR_ARG, "oc_model_set_precision: model is NULL");
    if (p != OC_PRECISION_F32 && p != OC_PRECISION_BF16)
        return oc_fail(OC_ERR_ARG, "oc_model_set_precision: unknown precision %d", (int)p);
    if (!oc_precision_supported(p))
        return oc_fail(OC_ERR_UNSUPPORTED,
                       "bf16 needs a CPU with AVX512_BF16 (e.g. AMD Zen 4 or later, Intel "
                       "Cooper Lake or Sapphire Rapids); this one has none, use fp32");
    m->precision = p;
    return OC_OK;
}

oc_precision oc_model_precision(const oc_model *m)
{
    return m ? m->precision : OC_PRECISION_F32;
}

oc_math_mode oc_nn_math_enter(const oc_model *m)
{
    return oc_math_set(m->precision == OC_PRECISION_BF16 ? OC_MATH_BF16 : OC_MATH_F32);
}
