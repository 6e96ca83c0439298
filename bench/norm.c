/* Batch-norm benchmark: milliseconds and GB/s of the training forward (statistics, then
 * normalise + activation) and the backward (dx set, dgamma, dbeta) of
 * oc_batchnorm_act_fwd_train / oc_batchnorm_act_bwd_set on the shapes of the zoo's batch-128
 * training steps, with no activation and with each fused one (ReLU, ReLU6, GELU), 1 and 2
 * threads. GB/s counts the tensor passes each makes (forward: x read twice, y written;
 * backward: x and dy read twice, dx written), so a pass at the memory's bandwidth shows it.
 * Each figure is the median of RUNS (7) timed runs after a warm-up. Build and run: see
 * bench/README.md. */
#include "core/core.h"
#include "ops/ops.h"
#include "timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RUNS
#define RUNS 7
#endif

typedef struct {
    const char *name;
    int64_t M; /* N * H * W */
    int C;
} bn_case;

static const bn_case cases[] = {
    {"resnet20 stage 1 (16 x 32x32)", 128 * 32 * 32, 16},
    {"resnet18 stage 1 (64 x 32x32)", 128 * 32 * 32, 64},
    {"mobilenetv2_cifar expand (144 x 32x32)", 128 * 32 * 32, 144},
    {"mobilenetv2_cifar expand (384 x 8x8)", 128 * 8 * 8, 384},
    {"airnet b1024 (64 x 31x31)", 1024 * 31 * 31, 64},
};

static const oc_act acts[] = {OC_ACT_IDENTITY, OC_ACT_RELU, OC_ACT_RELU6, OC_ACT_GELU};
static const char *act_names[] = {"none", "relu", "relu6", "gelu"};

static void fill(float *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (float)((seed >> 40) & 0xffff) / 32768.0f - 1.0f;
    }
}

int main(int argc, char **argv)
{
    int only = argc > 1 ? atoi(argv[1]) : -1;
    int max_threads = argc > 2 ? atoi(argv[2]) : 2;
    printf("%-40s %-6s %-9s %22s %22s\n", "shape", "act", "pass", "1 thread", "2 threads");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (only >= 0 && (size_t)only != i)
            continue;
        const bn_case *bc = &cases[i];
        const int C = bc->C;
        const size_t n = (size_t)bc->M * (size_t)C, cb = (size_t)C * sizeof(float);
        float *x = oc_alloc(n * sizeof(float)), *y = oc_alloc(n * sizeof(float));
        float *dy = oc_alloc(n * sizeof(float)), *dx = oc_alloc(n * sizeof(float));
        float *gamma = oc_alloc(cb), *beta = oc_alloc(cb), *rmean = oc_alloc(cb);
        float *rvar = oc_alloc(cb), *mean = oc_alloc(cb), *invstd = oc_alloc(cb);
        float *dgamma = oc_alloc(cb), *dbeta = oc_alloc(cb);
        if (!x || !y || !dy || !dx || !gamma || !beta || !rmean || !rvar || !mean || !invstd ||
            !dgamma || !dbeta)
            return 1;
        fill(x, n, 1), fill(dy, n, 2), fill(gamma, (size_t)C, 3), fill(beta, (size_t)C, 4);
        for (int a = 0; a < 4; a++) {
            double ms[2][3] = {{0}};
            for (int t = 1; t <= max_threads && t <= 2; t++) {
                double tf[RUNS], tb[RUNS];
                oc_set_threads(t);
                for (int r = -1; r < RUNS; r++) {
                    for (int c = 0; c < C; c++)
                        rmean[c] = 0.0f, rvar[c] = 1.0f;
                    double t0 = bench_now();
                    oc_batchnorm_act_fwd_train(bc->M, C, x, gamma, beta, 1e-5f, 0.1f, rmean, rvar,
                                               mean, invstd, acts[a], y);
                    double t1 = bench_now();
                    memset(dgamma, 0, cb), memset(dbeta, 0, cb);
                    double t2 = bench_now();
                    oc_batchnorm_act_bwd_set(bc->M, C, x, gamma, beta, mean, invstd, acts[a], dy,
                                             dx, dgamma, dbeta);
                    double t3 = bench_now();
                    if (r >= 0)
                        tf[r] = t1 - t0, tb[r] = t3 - t2;
                }
                ms[0][t] = bench_median(tf, RUNS) * 1e3;
                ms[1][t] = bench_median(tb, RUNS) * 1e3;
            }
            const double gb = (double)n * sizeof(float) * 1e-9; /* one tensor pass, GB */
            for (int p = 0; p < 2; p++) {
                const double passes = p ? 5.0 : 3.0;
                printf("%-40s %-6s %-9s", a || p ? "" : bc->name, p ? "" : act_names[a],
                       p ? "backward" : "forward");
                for (int t = 1; t <= 2; t++)
                    if (ms[p][t] > 0)
                        printf(" %8.2f ms %6.1f GB/s", ms[p][t], passes * gb / (ms[p][t] * 1e-3));
                printf("\n");
            }
        }
        oc_free(x), oc_free(y), oc_free(dy), oc_free(dx), oc_free(gamma), oc_free(beta);
        oc_free(rmean), oc_free(rvar), oc_free(mean), oc_free(invstd), oc_free(dgamma);
        oc_free(dbeta);
    }
    oc_set_threads(0);
    return 0;
}
