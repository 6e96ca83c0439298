/* Test-time augmentation over flips and one-pixel shifts (airbench94's infer with tta_level
 * 0-2): the logits of several views of each image, weighted and summed. */
#include "core/core.h"

#include <string.h>

/* dst = src mirrored left-right (flip) and shifted by (dy, dx) with reflect padding:
 * dst(y, x) = src'(y + dy, x + dx), src' the mirrored image, indices reflected at the border
 * (torch's F.pad 'reflect': -1 -> 1). */
static void view(const float *src, float *dst, int n, int H, int W, int C, int flip, int dy,
                 int dx)
{
    for (int i = 0; i < n; i++) {
        const float *s = src + (size_t)i * H * W * C;
        float *d = dst + (size_t)i * H * W * C;
        for (int y = 0; y < H; y++) {
            int sy = y + dy;
            sy = sy < 0 ? -sy : sy >= H ? 2 * (H - 1) - sy : sy;
            for (int x = 0; x < W; x++) {
                int sx = x + dx;
                sx = sx < 0 ? -sx : sx >= W ? 2 * (W - 1) - sx : sx;
                if (flip)
                    sx = W - 1 - sx;
                memcpy(d + ((size_t)y * W + x) * C, s + ((size_t)sy * W + sx) * C,
                       (size_t)C * sizeof *d);
            }
        }
    }
}

oc_status oc_model_forward_tta(oc_model *m, const float *x, int n, int level, float *scratch,
                               float *logits)
{
    /* (flip, dy, dx, weight) per view; airbench pads by 1 and crops [0:32] (content moves
     * down-right: dy = dx = -1) and [2:34] (up-left: +1) */
    static const struct {
        int flip, dy, dx;
        float w[3];
    } views[6] = {{0, 0, 0, {1.0f, 0.5f, 0.25f}},   {1, 0, 0, {0, 0.5f, 0.25f}},
                  {0, -1, -1, {0, 0, 0.125f}},      {1, -1, -1, {0, 0, 0.125f}},
                  {0, 1, 1, {0, 0, 0.125f}},        {1, 1, 1, {0, 0, 0.125f}}};
    int H, W, C, K;
    size_t out;
    if (!m || !x || !logits || n < 1 || level < 0 || level > 2 || (level > 0 && !scratch))
        return oc_fail(OC_ERR_ARG, "oc_model_forward_tta: NULL argument, n < 1 or level %d "
                                   "outside 0-2", level);
    oc_model_input_shape(m, &H, &W, &C);
    K = oc_model_num_classes(m);
    out = (size_t)n * (size_t)K;
    memset(logits, 0, out * sizeof *logits);
    for (int v = 0; v < 6; v++) {
        const float *y, *in = x;
        float wgt = views[v].w[level];
        oc_status st;
        if (wgt == 0)
            continue;
        if (views[v].flip || views[v].dy || views[v].dx) {
            view(x, scratch, n, H, W, C, views[v].flip, views[v].dy, views[v].dx);
            in = scratch;
        }
        st = oc_model_forward(m, in, n, 0, &y);
        if (st != OC_OK)
            return st;
        for (size_t i = 0; i < out; i++)
            logits[i] += wgt * y[i];
    }
    return OC_OK;
}
