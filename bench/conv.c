/* Convolution benchmark: GFLOP/s of each pass (forward, backward-data, backward-weights, and
 * the fused inference forward from weights packed once, with and without Winograd) of
 * oc_conv2d on layer shapes of the zoo's networks (CIFAR at batch 128, 224x224 at batch 1), 1
 * and 2 threads. Build and run: see bench/README.md. Each figure is the median of RUNS (5)
 * timed runs after a warm-up (-DOC_BENCH_MIN: the fastest); OC_BENCH_CPU_TIME=1 times 1-thread
 * runs with the thread's CPU clock. */
#include "core/core.h"
#include "ops/ops.h"
#include "timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RUNS
#define RUNS 5
#endif

typedef struct {
    const char *name;
    int N, H, W, C, K, R, stride, pad, groups;
} conv_case;

static const conv_case cases[] = {
    {"resnet20 stage 1 (16->16)", 128, 32, 32, 16, 16, 3, 1, 1, 1},
    {"resnet20 stage 2 in (16->32 /2)", 128, 32, 32, 16, 32, 3, 2, 1, 1},
    {"resnet20 stage 2 (32->32)", 128, 16, 16, 32, 32, 3, 1, 1, 1},
    {"resnet20 stage 3 in (32->64 /2)", 128, 16, 16, 32, 64, 3, 2, 1, 1},
    {"resnet20 stage 3 (64->64)", 128, 8, 8, 64, 64, 3, 1, 1, 1},
    {"resnet18 stage 1 (64->64)", 128, 32, 32, 64, 64, 3, 1, 1, 1},
    {"resnet18 stage 3 (256->256)", 128, 8, 8, 256, 256, 3, 1, 1, 1},
    {"resnet18 stage 4 (512->512)", 128, 4, 4, 512, 512, 3, 1, 1, 1},
    {"mobilenetv2 dw 3x3 (96, 16x16)", 128, 16, 16, 96, 96, 3, 1, 1, 96},
    {"resnet18@224 b1 layer1 (64, 224)", 1, 224, 224, 64, 64, 3, 1, 1, 1},
    {"resnet18@224 b1 layer2 (128, 112)", 1, 112, 112, 128, 128, 3, 1, 1, 1},
    {"resnet18@224 b1 layer3 (256, 56)", 1, 56, 56, 256, 256, 3, 1, 1, 1},
    {"resnet18@224 b1 layer4 (512, 28)", 1, 28, 28, 512, 512, 3, 1, 1, 1},
    {"mobilenetv2@224 b1 stem (3->32 /2)", 1, 224, 224, 3, 32, 3, 2, 1, 1},
    {"mnv2@224 b1 1x1 16->96 (112)", 1, 112, 112, 16, 96, 1, 1, 0, 1},
    {"mnv2@224 b1 dw 144 (56)", 1, 56, 56, 144, 144, 3, 1, 1, 144},
    {"mnv2@224 b1 dw 96 /2 (112)", 1, 112, 112, 96, 96, 3, 2, 1, 96},
    {"mnv2@224 b1 dw 960 (7)", 1, 7, 7, 960, 960, 3, 1, 1, 960},
    {"mnv2@224 b1 1x1 24->144 (56)", 1, 56, 56, 24, 144, 1, 1, 0, 1},
    {"mnv2@224 b1 1x1 144->24 (56)", 1, 56, 56, 144, 24, 1, 1, 0, 1},
    {"mnv2@224 b1 1x1 96->576 (14)", 1, 14, 14, 96, 576, 1, 1, 0, 1},
    {"mnv2@224 b1 1x1 576->96 (14)", 1, 14, 14, 576, 96, 1, 1, 0, 1},
    {"mnv2@224 b1 1x1 960->160 (7)", 1, 7, 7, 960, 160, 1, 1, 0, 1},
    {"mnv2@224 b1 1x1 320->1280 (7)", 1, 7, 7, 320, 1280, 1, 1, 0, 1},
    {"airnet b256 24->64 (31x31)", 256, 31, 31, 24, 64, 3, 1, 1, 1},
    {"airnet b256 64->256 (15x15)", 256, 15, 15, 64, 256, 3, 1, 1, 1},
    {"airnet b256 256->256 (7x7)", 256, 7, 7, 256, 256, 3, 1, 1, 1},
    {"mnv2_cifar 1x1 24->144 (32x32)", 128, 32, 32, 24, 144, 1, 1, 0, 1},
    {"mnv2_cifar 1x1 144->24 (32x32)", 128, 32, 32, 144, 24, 1, 1, 0, 1},
    {"cnn conv1 stem (3->32, 32x32)", 128, 32, 32, 3, 32, 3, 1, 1, 1},
    {"cnn conv2 (32->32, 32x32)", 128, 32, 32, 32, 32, 3, 1, 1, 1},
    {"cnn conv4 (64->64, 16x16)", 128, 16, 16, 64, 64, 3, 1, 1, 1},
};

static void fill(float *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (float)((seed >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
}

typedef enum { FWD, BWD_DATA, BWD_WEIGHTS, FUSED } pass;

/* conv2d.c's test hook: 0 packs wide 3x3 layers for the direct / im2col kernels */
void oc_conv2d_allow_winograd(int allow);

static double time_pass(const oc_conv_shape *s, pass ps, const float *x, const float *w,
                        const float *dy, float *y, float *dx, float *dw, void *ws,
                        const oc_conv_epilogue *e)
{
    double t[RUNS];
    for (int r = -1; r < RUNS; r++) {
        if (ps == BWD_DATA) /* it accumulates into dx */
            memset(dx, 0, (size_t)s->N * s->H * s->W * s->C * sizeof(float));
        double t0 = bench_now();
        if (ps == FWD)
            oc_conv2d_fwd(s, x, w, NULL, y, ws);
        else if (ps == BWD_DATA)
            oc_conv2d_bwd_data(s, dy, w, dx, ws);
        else if (ps == FUSED)
            oc_conv2d_fwd_fused(s, x, w, e, y, ws);
        else
            oc_conv2d_bwd_weights(s, x, dy, dw, NULL, ws);
        if (r >= 0)
            t[r] = bench_now() - t0;
    }
#ifdef OC_BENCH_MIN
    return bench_min(t, RUNS);
#else
    return bench_median(t, RUNS);
#endif
}

int main(int argc, char **argv)
{
    int only = argc > 1 ? atoi(argv[1]) : -1;
    int max_threads = argc > 2 ? atoi(argv[2]) : 2;
    if (getenv("OC_BENCH_BF16")) { /* bf16 math, as a bf16 model's training step runs */
        if (!oc_bf16_supported()) {
            fprintf(stderr, "OC_BENCH_BF16: this CPU has no AVX512_BF16\n");
            return 1;
        }
        oc_math_set(OC_MATH_BF16);
    }
    static const char *pass_name[5] = {"fwd", "bwd-data", "bwd-weights", "fused, kept",
                                       "fused, kept w/o Winograd"};
    printf("%-34s %-25s %14s %14s\n", "shape", "pass", "1 thread", "2 threads");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (only >= 0 && (size_t)only != i)
            continue;
        const conv_case *cc = &cases[i];
        oc_conv_shape s = {0};
        s.N = cc->N, s.H = cc->H, s.W = cc->W, s.C = cc->C, s.K = cc->K, s.R = cc->R,
        s.S = cc->R, s.stride_h = s.stride_w = cc->stride, s.pad_h = s.pad_w = cc->pad,
        s.dil_h = s.dil_w = 1, s.groups = cc->groups;
        if (oc_conv_shape_init(&s) != 0)
            return 1;
        size_t nx = (size_t)s.N * s.H * s.W * s.C, ny = (size_t)s.N * s.P * s.Q * s.K;
        size_t nw = (size_t)s.K * s.R * s.S * (s.C / s.groups);
        size_t wsb = oc_conv2d_fwd_workspace(&s);
        if (oc_conv2d_bwd_data_workspace(&s) > wsb)
            wsb = oc_conv2d_bwd_data_workspace(&s);
        if (oc_conv2d_bwd_weights_workspace(&s) > wsb)
            wsb = oc_conv2d_bwd_weights_workspace(&s);
        float *x = oc_alloc(nx * sizeof(float)), *dx = oc_alloc(nx * sizeof(float));
        float *y = oc_alloc(ny * sizeof(float)), *dy = oc_alloc(ny * sizeof(float));
        float *w = oc_alloc(nw * sizeof(float)), *dw = oc_alloc(nw * sizeof(float));
        float *pre = oc_alloc_zero((size_t)s.K * sizeof(float));
        float *scale = oc_alloc((size_t)s.K * sizeof(float));
        void *ws = oc_alloc(wsb + 64);
        size_t kept_bytes = oc_conv2d_fused_pack_bytes(&s);
        void *kept = oc_alloc(kept_bytes + 64);
        oc_conv_epilogue e = {pre, scale, pre, NULL, OC_ACT_IDENTITY, 0.0f, kept};
        if (!x || !dx || !y || !dy || !w || !dw || !pre || !scale || !ws || !kept)
            return 1;
        for (int k = 0; k < s.K; k++)
            scale[k] = 1.0f;
        fill(x, nx, 1), fill(dy, ny, 2), fill(w, nw, 3);
        memset(dw, 0, nw * sizeof(float));
        double gflop = 2.0 * (double)ny * s.R * s.S * (s.C / s.groups) * 1e-9;
        for (int p = 0; p < 5; p++) {
            double g[3] = {0};
            /* inference: weights packed once, as a model with fixed weights keeps them */
            oc_conv2d_allow_winograd(p != 4);
            if (p >= 3) {
                if (oc_conv2d_fused_pack_bytes(&s) > kept_bytes)
                    return 1;
                oc_conv2d_fused_pack(&s, w, kept);
            }
            for (int t = 1; t <= max_threads && t <= 2; t++) {
                oc_set_threads(t);
                bench_cpu_time = t == 1 && getenv("OC_BENCH_CPU_TIME");
                g[t] = gflop / time_pass(&s, p >= 3 ? FUSED : (pass)p, x, w, dy, y, dx, dw, ws, &e);
            }
            oc_conv2d_allow_winograd(1);
            printf("%-34s %-25s %9.1f GF/s %9.1f GF/s\n", p ? "" : cc->name, pass_name[p], g[1],
                   g[2]);
        }
        oc_free(x), oc_free(dx), oc_free(y), oc_free(dy), oc_free(w), oc_free(dw), oc_free(ws);
        oc_free(pre), oc_free(scale), oc_free(kept);
    }
    oc_set_threads(0);
    return 0;
}
