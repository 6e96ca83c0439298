/* The fused inverted-residual block (ops/block.c) against its layers run one at a time
 * (oc_conv2d_fwd_fused, each from its kept packed weights): bitwise, on stride 1 and 2, 3x3
 * and 5x5, odd sizes, a batch of 2, a 7x7 map, with and without a residual or an expand layer,
 * band budgets from one output row to the whole map, 1 and 2 threads. */
#include "test.h"
#include "core/core.h"
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

void oc_conv2d_allow_simd(int allow);

static float *randv(oc_rng *r, int64_t n, float scale)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * oc_rng_normal(r);
    return v;
}

static oc_conv_shape conv(int N, int H, int W, int C, int K, int R, int stride, int pad, int G)
{
    oc_conv_shape s = {N, H, W, C, K, R, R, 0, 0, stride, stride, pad, pad, 1, 1, G};
    T_CHECK(oc_conv_shape_init(&s) == 0, "shape");
    return s;
}

/* A layer's epilogue with random affine vectors and its weights packed as a model keeps them. */
typedef struct {
    oc_conv_shape s;
    float *w, *pre, *scale, *shift;
    void *packed;
    oc_conv_epilogue e;
} layer;

static void layer_init(layer *l, oc_rng *r, oc_conv_shape s, oc_act act)
{
    l->s = s;
    l->w = randv(r, (int64_t)s.K * s.R * s.S * (s.C / s.groups), 0.2f);
    l->pre = randv(r, s.K, 0.1f);
    l->scale = randv(r, s.K, 1.0f);
    l->shift = randv(r, s.K, 0.5f);
    l->packed = oc_alloc(oc_conv2d_fused_pack_bytes(&s) + 64);
    oc_conv2d_fused_pack(&s, l->w, l->packed);
    oc_conv_epilogue e = {l->pre, l->scale, l->shift, NULL, act, 0.0f, l->packed};
    l->e = e;
}

static void layer_free(layer *l)
{
    free(l->w), free(l->pre), free(l->scale), free(l->shift);
    oc_free(l->packed);
}

static void block_matches_layers(void)
{
    static const struct {
        const char *name;
        int N, H, W, Cin, hidden, Cout, R, stride, res;
        oc_act act_dw;
    } cs[] = {
        {"no expand layer", 1, 21, 20, 32, 32, 16, 3, 1, 0, OC_ACT_RELU6},
        {"3x3 s1 residual", 1, 20, 19, 24, 144, 24, 3, 1, 1, OC_ACT_RELU6},
        {"3x3 s2 odd", 1, 23, 23, 16, 96, 32, 3, 2, 0, OC_ACT_RELU6},
        {"5x5 s2", 1, 19, 21, 16, 128, 32, 5, 2, 0, OC_ACT_RELU},
        {"batch 2", 2, 14, 14, 32, 192, 32, 3, 1, 1, OC_ACT_RELU6},
        {"7x7 map", 1, 7, 7, 160, 960, 160, 3, 1, 1, OC_ACT_GELU},
    };
    /* 1: one output row per band; 0: the default; 64 MiB: the whole map in one band */
    static const size_t budgets[] = {1, 64 * 1024, 0, 64 << 20};
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        oc_rng r;
        oc_rng_seed(&r, 300 + c, 0);
        const int pad = cs[c].R / 2;
        layer ex, dw, pr;
        const int expand = cs[c].Cin != cs[c].hidden; /* else x feeds the depthwise layer */
        layer_init(&ex, &r, conv(cs[c].N, cs[c].H, cs[c].W, cs[c].Cin, cs[c].hidden, 1, 1, 0, 1),
                   OC_ACT_RELU6);
        layer_init(&dw, &r,
                   conv(cs[c].N, cs[c].H, cs[c].W, cs[c].hidden, cs[c].hidden, cs[c].R,
                        cs[c].stride, pad, cs[c].hidden),
                   cs[c].act_dw);
        layer_init(&pr, &r, conv(cs[c].N, dw.s.P, dw.s.Q, cs[c].hidden, cs[c].Cout, 1, 1, 0, 1),
                   OC_ACT_IDENTITY);
        const int64_t nx = (int64_t)cs[c].N * cs[c].H * cs[c].W * cs[c].Cin;
        const int64_t nh = (int64_t)cs[c].N * ex.s.P * ex.s.Q * cs[c].hidden;
        const int64_t nd = (int64_t)cs[c].N * dw.s.P * dw.s.Q * cs[c].hidden;
        const int64_t ny = (int64_t)cs[c].N * pr.s.P * pr.s.Q * cs[c].Cout;
        float *x = randv(&r, nx, 1.0f), *res = cs[c].res ? randv(&r, ny, 1.0f) : NULL;
        float *h = malloc((size_t)nh * sizeof(float)), *d = malloc((size_t)nd * sizeof(float));
        float *want = malloc((size_t)ny * sizeof(float)), *got = malloc((size_t)ny * sizeof(float));
        size_t wsb = oc_conv2d_fwd_workspace(&ex.s);
        wsb = oc_conv2d_fwd_workspace(&dw.s) > wsb ? oc_conv2d_fwd_workspace(&dw.s) : wsb;
        wsb = oc_conv2d_fwd_workspace(&pr.s) > wsb ? oc_conv2d_fwd_workspace(&pr.s) : wsb;
        void *ws = oc_alloc(wsb + 64);
        pr.e.res = res;
        const oc_conv_shape *exs = expand ? &ex.s : NULL;
        T_CHECK(oc_block_fused_ok(exs, &dw.s, &pr.s, ex.e.act, pr.e.act) ==
                    (__builtin_cpu_supports("avx512f") != 0),
                "%s: block not accepted", cs[c].name);
        if (expand)
            oc_conv2d_fwd_fused(&ex.s, x, ex.w, &ex.e, h, ws);
        oc_conv2d_fwd_fused(&dw.s, expand ? h : x, dw.w, &dw.e, d, ws);
        oc_conv2d_fwd_fused(&pr.s, d, pr.w, &pr.e, want, ws);
        if (!__builtin_cpu_supports("avx512f")) {
            oc_test_note("no AVX-512F: the fused block is not offered on this CPU (checked)");
        } else {
            for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++)
                for (int nt = 1; nt <= 2; nt++) {
                    oc_block_set_band_bytes(budgets[b]);
                    oc_set_threads(nt);
                    size_t bws = oc_block_fused_workspace(&dw.s, nt);
                    void *bw = oc_alloc(bws);
                    memset(got, 0xff, (size_t)ny * sizeof(float));
                    oc_block_fwd_fused(exs, &dw.s, &pr.s, x, ex.w, pr.w, &ex.e, &dw.e, &pr.e,
                                       got, bw, bws);
                    T_CHECK(!memcmp(got, want, (size_t)ny * sizeof(float)),
                            "%s, band budget %zu, %d threads: differs from the layers",
                            cs[c].name, budgets[b], nt);
                    oc_free(bw);
                }
            oc_block_set_band_bytes(0);
            oc_set_threads(0);
        }
        /* without the AVX-512 kernels (test hook) the block is not offered */
        oc_conv2d_allow_simd(0);
        T_CHECK(!oc_block_fused_ok(exs, &dw.s, &pr.s, ex.e.act, pr.e.act),
                "%s: offered without AVX-512", cs[c].name);
        oc_conv2d_allow_simd(1);
        /* nor with a generic activation on a 1x1 layer */
        T_CHECK(!oc_block_fused_ok(&ex.s, &dw.s, &pr.s, OC_ACT_GELU, pr.e.act),
                "%s: offered with GELU after the expand layer", cs[c].name);
        T_CHECK(!oc_block_fused_ok(exs, &dw.s, &pr.s, ex.e.act, OC_ACT_GELU),
                "%s: offered with GELU after the project layer", cs[c].name);
        layer_free(&ex), layer_free(&dw), layer_free(&pr);
        free(x), free(res), free(h), free(d), free(want), free(got);
        oc_free(ws);
    }
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"block_matches_layers", block_matches_layers},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
