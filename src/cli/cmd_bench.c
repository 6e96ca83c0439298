/* ocelot bench: throughput and latency of a model's inference or training step on synthetic
 * data (seeded random input and labels), so kernels can be compared with other frameworks on
 * the same architecture, batch and thread count. */
#include "cli.h"
#include "ops/ops.h" /* oc_softmax_xent: the loss the trainer uses (not in the public API) */

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* The optimizer of the timed training step: SGD with momentum, as `ocelot train` and the
 * PyTorch peer in bench/bench_train.py. A small rate keeps random-label training finite. */
#define BENCH_LR 0.01
#define BENCH_MOMENTUM 0.9
#define BENCH_WEIGHT_DECAY 5e-4

static void bench_help(FILE *out)
{
    fprintf(out,
            "usage: ocelot bench MODEL|ZOO-NAME|SPEC.json [options]\n\n"
            "Measures images/s, per-batch latency (p50/p90/p99), GFLOP/s and peak memory of\n"
            "inference (forward only, eval mode) or, with --train, of whole training steps\n"
            "(forward, softmax cross-entropy, backward, SGD-momentum update) on seeded random\n"
            "data. Warm-up iterations are not counted.\n\n"
            "options:\n"
            "  --train            time training steps instead of inference\n"
            "  --batch N          images per batch (default 128 with --train, else 1)\n"
            "  --threads N        compute threads (default: one per core)\n"
            "  --input HxWxC      input size for a zoo name or spec (default 32x32x3)\n"
            "  --classes N        classes for a zoo name or spec (default 10)\n"
            "  --iters N          timed iterations (default 20)\n"
            "  --warmup N         untimed iterations first (default 3)\n"
            "  --precision P      fp32 (default) or bf16: conv and dense products with bfloat16\n"
            "                     operands and fp32 sums (needs a CPU with AVX512_BF16)\n"
            "  --seed N           seed of the weights and the synthetic data (default 0)\n"
            "  --profile          also time every layer (forward and backward) and print where a\n"
            "                     step's time goes; adds two clock reads per layer\n"
            "  --json             print the result as JSON (schema ocelot.bench/1)\n"
            "  -h, --help         this help\n\n"
            "GFLOP/s counts the model's forward FLOPs (multiply-add = 2) per image, times 3 for a\n"
            "training step (forward + backward-data + backward-weights).\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted[n]. */
static double percentile(const double *sorted, int n, double p)
{
    int k = (int)ceil(p / 100.0 * n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

/* A model file starts with its 8-byte header length; a JSON spec with '{' (after spaces). */
static int is_model_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    int c;
    if (!f)
        return 0;
    do
        c = fgetc(f);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    fclose(f);
    return c != EOF && c != '{';
}

typedef struct {
    int train, batch, iters, warmup, json, profile;
    oc_precision precision;
    int h, w, c, classes;   /* 0: not given */
    uint64_t seed;
    const char *model;
} bench_opts;

typedef struct {
    double total_s, mean_s, p50_s, p90_s, p99_s, min_s;
    double final_loss;
} bench_result;

/* Runs warm-up then timed iterations; lat[iters] receives each timed one's seconds. */
static int run_bench(oc_model *m, const bench_opts *o, const float *x, const int32_t *labels,
                     double *lat, bench_result *res)
{
    oc_optimizer *opt = NULL;
    float *dlogits = NULL;
    const float *logits;
    int classes = oc_model_num_classes(m);
    int rc = CLI_FAIL;
    double loss = 0;

    if (oc_model_plan(m, o->batch, o->train) != OC_OK)
        return cli_error("planning the model");
    if (o->train) {
        oc_optim_config cfg = oc_optim_defaults(OC_OPTIM_SGD);
        cfg.lr = BENCH_LR;
        cfg.momentum = BENCH_MOMENTUM;
        cfg.weight_decay = BENCH_WEIGHT_DECAY;
        if (oc_optimizer_new_for_model(&opt, &cfg, m) != OC_OK)
            return cli_error("creating the optimizer");
        dlogits = malloc(sizeof *dlogits * (size_t)o->batch * (size_t)classes);
        if (!dlogits) {
            fprintf(stderr, "ocelot bench: out of memory\n");
            goto done;
        }
    }
    for (int it = 0; it < o->warmup + o->iters; it++) {
        double t0;
        if (it == o->warmup && o->profile && oc_model_set_profiling(m, 1) != OC_OK) {
            rc = cli_error("starting the layer profile");
            goto done;
        }
        t0 = now_s();
        if (oc_model_forward(m, x, o->batch, o->train, &logits) != OC_OK) {
            rc = cli_error("forward");
            goto done;
        }
        if (o->train) {
            size_t n_params;
            float *params = oc_model_params(m, &n_params);
            oc_model_zero_grad(m);
            loss = oc_softmax_xent(o->batch, classes, logits, labels, NULL, 0.0f, NULL, dlogits);
            if (oc_model_backward(m, dlogits) != OC_OK) {
                rc = cli_error("backward");
                goto done;
            }
            if (oc_optimizer_step(opt, params, oc_model_grads(m, &n_params)) != OC_OK) {
                rc = cli_error("optimizer step");
                goto done;
            }
        }
        if (it >= o->warmup)
            lat[it - o->warmup] = now_s() - t0;
    }
    res->total_s = 0;
    for (int i = 0; i < o->iters; i++)
        res->total_s += lat[i];
    res->mean_s = res->total_s / o->iters;
    qsort(lat, (size_t)o->iters, sizeof *lat, cmp_double);
    res->min_s = lat[0];
    res->p50_s = percentile(lat, o->iters, 50);
    res->p90_s = percentile(lat, o->iters, 90);
    res->p99_s = percentile(lat, o->iters, 99);
    res->final_loss = loss;
    rc = CLI_OK;
done:
    free(dlogits);
    oc_optimizer_free(opt);
    return rc;
}

static int print_json(const bench_opts *o, oc_model *m, const bench_result *r, double gflop,
                      double rss_mib)
{
    cJSON *j = cJSON_CreateObject(), *lat;
    int h, w, c;
    char *text;
    oc_model_input_shape(m, &h, &w, &c);
    if (!j)
        goto nomem;
    cJSON_AddStringToObject(j, "schema", "ocelot.bench/1");
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "mode", o->train ? "train" : "infer");
    cJSON_AddStringToObject(j, "precision", oc_precision_name(o->precision));
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "threads", oc_get_threads());
    cJSON_AddNumberToObject(j, "height", h);
    cJSON_AddNumberToObject(j, "width", w);
    cJSON_AddNumberToObject(j, "channels", c);
    cJSON_AddNumberToObject(j, "classes", oc_model_num_classes(m));
    cJSON_AddNumberToObject(j, "params", (double)oc_model_param_count(m));
    cJSON_AddNumberToObject(j, "flops_per_image", oc_model_flops(m));
    cJSON_AddNumberToObject(j, "iters", o->iters);
    cJSON_AddNumberToObject(j, "warmup", o->warmup);
    cJSON_AddNumberToObject(j, "images_per_s", o->batch / r->mean_s);
    cJSON_AddNumberToObject(j, "gflops_per_s", gflop / r->mean_s);
    lat = cJSON_AddObjectToObject(j, "latency_ms");
    if (!lat)
        goto nomem;
    cJSON_AddNumberToObject(lat, "mean", 1e3 * r->mean_s);
    cJSON_AddNumberToObject(lat, "min", 1e3 * r->min_s);
    cJSON_AddNumberToObject(lat, "p50", 1e3 * r->p50_s);
    cJSON_AddNumberToObject(lat, "p90", 1e3 * r->p90_s);
    cJSON_AddNumberToObject(lat, "p99", 1e3 * r->p99_s);
    cJSON_AddNumberToObject(j, "plan_mib", (double)oc_model_plan_bytes(m) / 1048576.0);
    cJSON_AddNumberToObject(j, "peak_rss_mib", rss_mib);
    if (o->train)
        cJSON_AddNumberToObject(j, "final_loss", r->final_loss);
    if (o->profile) {
        cJSON *layers = cJSON_AddArrayToObject(j, "profile");
        double sum = 0;
        if (!layers)
            goto nomem;
        for (int i = 1; i < oc_model_num_nodes(m); i++) {
            oc_node_info info;
            double f = 0, b = 0;
            cJSON *l = cJSON_CreateObject();
            if (!l)
                goto nomem;
            cJSON_AddItemToArray(layers, l);
            oc_model_node_info(m, i, &info);
            oc_model_node_time(m, i, &f, &b);
            sum += f + b;
            cJSON_AddStringToObject(l, "node", info.name);
            cJSON_AddStringToObject(l, "op", info.op);
            cJSON_AddNumberToObject(l, "forward_ms", 1e3 * f / o->iters);
            cJSON_AddNumberToObject(l, "backward_ms", 1e3 * b / o->iters);
        }
        cJSON_AddNumberToObject(j, "profile_other_ms", 1e3 * (r->total_s - sum) / o->iters);
    }
    text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text)
        goto nomem;
    printf("%s\n", text);
    free(text);
    return CLI_OK;
nomem:
    cJSON_Delete(j);
    fprintf(stderr, "ocelot bench: out of memory\n");
    return CLI_FAIL;
}

/* Per layer, ms per timed iteration and share of the whole; "other" is what no layer ran (the
 * loss, the optimizer step, copying the input). */
static void print_profile(const bench_opts *o, oc_model *m, const bench_result *r)
{
    double sum = 0;
    printf("\n  %-28s %-12s %10s %10s %7s\n", "layer", "op", "fwd ms", o->train ? "bwd ms" : "",
           "share");
    for (int i = 1; i < oc_model_num_nodes(m); i++) {
        oc_node_info info;
        double f = 0, b = 0;
        oc_model_node_info(m, i, &info);
        oc_model_node_time(m, i, &f, &b);
        sum += f + b;
        if (f + b <= 0)
            continue; /* fused into its producer */
        printf("  %-28s %-12s %10.3f ", info.name, info.op, 1e3 * f / o->iters);
        if (o->train)
            printf("%10.3f", 1e3 * b / o->iters);
        else
            printf("%10s", "");
        printf(" %6.1f%%\n", 100.0 * (f + b) / r->total_s);
    }
    printf("  %-28s %-12s %21.3f %6.1f%%\n", "other", "", 1e3 * (r->total_s - sum) / o->iters,
           100.0 * (r->total_s - sum) / r->total_s);
}

static void print_text(const bench_opts *o, oc_model *m, const bench_result *r, double gflop,
                       double rss_mib)
{
    int h, w, c;
    oc_model_input_shape(m, &h, &w, &c);
    printf("%s  %s  %dx%dx%d  %d classes  batch %d  threads %d  %s\n", o->model,
           o->train ? "training step" : "inference", h, w, c, oc_model_num_classes(m), o->batch,
           oc_get_threads(), oc_precision_name(o->precision));
    printf("  %.1f images/s   %.2f GFLOP/s   (%.3f GFLOP per %s)\n", o->batch / r->mean_s,
           gflop / r->mean_s, gflop, o->train ? "step" : "batch");
    printf("  latency per batch (ms): mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  min %.3f"
           "   (%d timed, %d warm-up)\n",
           1e3 * r->mean_s, 1e3 * r->p50_s, 1e3 * r->p90_s, 1e3 * r->p99_s, 1e3 * r->min_s,
           o->iters, o->warmup);
    printf("  peak RSS %.1f MiB   plan %.1f MiB\n", rss_mib,
           (double)oc_model_plan_bytes(m) / 1048576.0);
    if (o->train)
        printf("  final loss %.4f\n", r->final_loss);
    if (o->profile)
        print_profile(o, m, r);
}

int cmd_bench_model(int argc, char **argv)
{
    static const struct option opts[] = {
        {"train", no_argument, NULL, 'T'},         {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"input", required_argument, NULL, 'I'},
        {"classes", required_argument, NULL, 'k'}, {"iters", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},  {"precision", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},    {"json", no_argument, NULL, 'j'},
        {"profile", no_argument, NULL, 'P'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bench_opts o = {0, 0, 20, 3, 0, 0, OC_PRECISION_F32, 0, 0, 0, 0, 0, NULL};
    bench_result res = {0};
    oc_model *m = NULL;
    float *x = NULL;
    int32_t *labels = NULL;
    double *lat = NULL, gflop;
    struct rusage ru;
    int c, rc = CLI_FAIL, h, w, ch, classes;
    long v;
    size_t n_in;
    oc_rng rng;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'T': o.train = 1; break;
        case 'b':
            if (!cli_parse_int(optarg, 1, 65536, &v))
                return cli_usage_error("bench", "--batch must be 1-65536, not '%s'", optarg);
            o.batch = (int)v;
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 256, &v))
                return cli_usage_error("bench", "--threads must be 1-256, not '%s'", optarg);
            oc_set_threads((int)v);
            break;
        case 'I': {
            char tail;
            if (sscanf(optarg, "%dx%dx%d%c", &h, &w, &ch, &tail) != 3 || h < 1 || w < 1 ||
                h > 4096 || w > 4096 || ch < 1 || ch > 4)
                return cli_usage_error("bench", "--input must look like 32x32x3 (channels 1-4), "
                                                "not '%s'", optarg);
            o.h = h;
            o.w = w;
            o.c = ch;
            break;
        }
        case 'k':
            if (!cli_parse_int(optarg, 2, 100000, &v))
                return cli_usage_error("bench", "--classes must be 2-100000, not '%s'", optarg);
            o.classes = (int)v;
            break;
        case 'n':
            if (!cli_parse_int(optarg, 1, 1000000, &v))
                return cli_usage_error("bench", "--iters must be 1-1000000, not '%s'", optarg);
            o.iters = (int)v;
            break;
        case 'w':
            if (!cli_parse_int(optarg, 0, 1000000, &v))
                return cli_usage_error("bench", "--warmup must be 0-1000000, not '%s'", optarg);
            o.warmup = (int)v;
            break;
        case 'p':
            if (cli_parse_precision("bench", optarg, &o.precision) != 0)
                return CLI_USAGE;
            break;
        case 's':
            if (!cli_parse_int(optarg, 0, 2147483647, &v))
                return cli_usage_error("bench", "--seed must be 0-2147483647, not '%s'", optarg);
            o.seed = (uint64_t)v;
            break;
        case 'j': o.json = 1; break;
        case 'P': o.profile = 1; break;
        case 'h': bench_help(stdout); return CLI_OK;
        default: return cli_usage_error("bench", "unknown option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("bench", "which model? (a model file, a zoo name such as "
                                        "resnet20, or a JSON spec)");
    if (optind + 1 < argc)
        return cli_usage_error("bench", "unexpected argument '%s'", argv[optind + 1]);
    o.model = argv[optind];
    if (!o.batch)
        o.batch = o.train ? 128 : 1;

    if (is_model_file(o.model)) {
        if (o.h || o.classes)
            return cli_usage_error("bench", "--input and --classes apply to zoo names and specs; "
                                            "'%s' is a model file", o.model);
        if (oc_model_load(o.model, &m) != OC_OK)
            return cli_error("loading the model");
    } else if (oc_model_create(&m, o.model, o.h ? o.h : 32, o.w ? o.w : 32, o.c ? o.c : 3,
                               o.classes ? o.classes : 10, o.seed) != OC_OK) {
        fprintf(stderr, "ocelot bench: '%s': %s\n", o.model, oc_last_error());
        return CLI_FAIL;
    }
    if (oc_model_set_precision(m, o.precision) != OC_OK) {
        rc = cli_error("setting the precision");
        goto done;
    }
    if (!o.train) /* inference with fixed weights, as predict and serve run it */
        oc_model_set_weights_fixed(m, 1);
    oc_model_input_shape(m, &h, &w, &ch);
    classes = oc_model_num_classes(m);

    n_in = (size_t)o.batch * (size_t)h * (size_t)w * (size_t)ch;
    x = malloc(sizeof *x * n_in);
    labels = malloc(sizeof *labels * (size_t)o.batch);
    lat = malloc(sizeof *lat * (size_t)o.iters);
    if (!x || !labels || !lat) {
        fprintf(stderr, "ocelot bench: out of memory for a batch of %d\n", o.batch);
        goto done;
    }
    oc_rng_seed(&rng, o.seed, 1);
    for (size_t i = 0; i < n_in; i++)
        x[i] = oc_rng_normal(&rng);
    for (int i = 0; i < o.batch; i++)
        labels[i] = (int32_t)oc_rng_below(&rng, (uint64_t)classes);

    rc = run_bench(m, &o, x, labels, lat, &res);
    if (rc != CLI_OK)
        goto done;
    if (o.train && !isfinite(res.final_loss))
        fprintf(stderr, "ocelot bench: warning: the loss became %g; timings of non-finite "
                        "arithmetic may not be representative\n", res.final_loss);
    getrusage(RUSAGE_SELF, &ru);
    gflop = oc_model_flops(m) * o.batch * (o.train ? 3 : 1) / 1e9;
    if (o.json)
        rc = print_json(&o, m, &res, gflop, (double)ru.ru_maxrss / 1024.0);
    else
        print_text(&o, m, &res, gflop, (double)ru.ru_maxrss / 1024.0);
done:
    free(lat);
    free(labels);
    free(x);
    oc_model_free(m);
    return rc;
}
