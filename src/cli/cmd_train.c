/* ocelot train: train a model on a dataset (a shell over oc_train). */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int stop_requested;

static void on_signal(int sig)
{
    if (stop_requested) {
        /* a second Ctrl-C: the user does not want to wait for the checkpoint */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    stop_requested = 1;
}

static void train_help(FILE *out)
{
    fprintf(out,
            "usage: ocelot train --data SPEC [options]\n\n"
            "Trains a classifier and writes the best model (by validation accuracy) to --out,\n"
            "a per-epoch CSV log beside it (OUT.csv) and a checkpoint each epoch (OUT.ckpt).\n\n"
            "data:\n"
            "  --data SPEC          cifar10:DIR|FILE, cifar100:DIR|FILE, fashion-mnist[:DIR],\n"
            "                       mnist:DIR, idx:DIR, folder:DIR, csv:FILE\n"
            "  --val-split F        hold out F of the training data, stratified and seeded\n"
            "                       (default: 0.2, or the official test split when there is one)\n"
            "  --limit N            train on a stratified subset of N images (quick trials)\n"
            "  --augment SPEC       e.g. \"crop:pad=4,flip,cutout:8,mixup:0.2\" (docs/augment.md);\n"
            "                       default crop:pad=4,flip for colour images, none for grey\n"
            "  --input HxWxC        input size (default: the dataset's; folders 32x32x3)\n"
            "model and optimisation:\n"
            "  --recipe NAME        start from a named recipe's settings (the options below\n"
            "                       still override them); see the list at the end\n"
            "  --model NAME|FILE    zoo name (cnn, resnet20, resnet56, resnet18, mobilenetv2,\n"
            "                       mobilenetv2_cifar, airnet) or a JSON spec (default\n"
            "                       resnet20, or the recipe's)\n"
            "  --epochs N           default 15\n"
            "  --batch N            default 128\n"
            "  --optimizer NAME     sgd (Nesterov) or adamw (default: sgd with batch norm, else\n"
            "                       adamw)\n"
            "  --lr X               default 0.1 x batch/128 (sgd), 1e-3 x sqrt(batch/32)\n"
            "                       (adamw)\n"
            "  --momentum X         sgd momentum (default 0.9)\n"
            "  --weight-decay X     default 5e-4 (sgd), 0.05 (adamw)\n"
            "  --schedule NAME      cosine (default), onecycle, step, triangular, constant\n"
            "  --warmup EPOCHS      linear warm-up (default 1 when epochs >= 5)\n"
            "  --label-smoothing X  default 0\n"
            "  --ema DECAY          keep an exponential moving average of the weights\n"
            "  --early-stop N       stop after N epochs without improvement\n"
            "  --val-every N        validate every N epochs and after the last (default 1)\n"
            "  --keep best|last     write the best model by validation accuracy (default) or\n"
            "                       the last one\n"
            "  --lookahead K        every K steps pull the weights to their moving average and\n"
            "                       go on from it (airbench's lookahead; 0: off)\n"
            "  --freeze-after T:E   tensor T (e.g. whiten.bias) trains for E epochs, then stays\n"
            "  --seed N             default 0; same seed and threads = same bits\n"
            "  --precision P        fp32 (default) or bf16: conv and dense products with\n"
            "                       bfloat16 operands and fp32 sums, fp32 master weights\n"
            "                       (needs a CPU with AVX512_BF16); the saved model runs fp32\n"
            "files and running:\n"
            "  --out FILE           the model (default model.ocm)\n"
            "  --checkpoint FILE    default OUT.ckpt\n"
            "  --log FILE           per-epoch CSV (default OUT.csv)\n"
            "  --resume FILE        continue from a checkpoint, bitwise as if never stopped\n"
            "  --threads N          compute threads (default: one per core)\n"
            "  --workers N          data loading threads (default 2)\n"
            "  --json               print the final summary as JSON\n"
            "  --quiet              no progress output\n"
            "  -h, --help           this help\n\n"
            "Ctrl-C (or SIGTERM) writes a checkpoint of the current position and exits; a second\n"
            "Ctrl-C exits at once.\n\nrecipes (docs/recipes.md):\n");
    for (const char *const *r = oc_recipe_names(); *r; r++)
        fprintf(out, "  %-20s %s\n", *r, oc_recipe_summary(*r));
}

/* The --recipe argument wherever it stands, so it applies before every other option. */
static const char *find_recipe(int argc, char **argv)
{
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--recipe") && i + 1 < argc)
            name = argv[++i];
        else if (!strncmp(argv[i], "--recipe=", 9))
            name = argv[i] + 9;
    }
    return name;
}

typedef struct {
    int tty, quiet;
    double last_print;
} progress_state;

static void fmt_time(double s, char *out, size_t cap)
{
    long t = (long)(s + 0.5);
    if (!isfinite(s) || s < 0)
        snprintf(out, cap, "--:--");
    else if (t >= 3600)
        snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, cap, "%02ld:%02ld", t / 60, t % 60);
}

static void on_progress(const oc_train_progress *p, void *user)
{
    progress_state *ps = user;
    char eta[32], el[32];
    if (ps->quiet)
        return;
    fmt_time(p->eta_s, eta, sizeof eta);
    fmt_time(p->elapsed_s, el, sizeof el);
    if (p->event == OC_TRAIN_STEP) {
        double now = p->elapsed_s;
        /* a TTY gets a live line a few times a second; a log gets a line every 30 s */
        if (ps->tty ? now - ps->last_print < 0.2 && p->batch != p->batches
                    : now - ps->last_print < 30)
            return;
        ps->last_print = now;
        fprintf(stderr, "%sepoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.2f%%  lr %.4g  "
                        "%.0f img/s  elapsed %s  ETA %s%s",
                ps->tty ? "\r\033[K" : "", (long long)p->epoch, (long long)p->epochs,
                (long long)p->batch, (long long)p->batches, p->loss, 100 * p->accuracy, p->lr,
                p->images_per_s, el, eta, ps->tty ? "" : "\n");
        fflush(stderr);
        return;
    }
    if (!p->validated) {
        fprintf(stderr, "%sepoch %lld/%lld  loss %.4f  acc %.2f%%  (%s not run: --val-every)  "
                        "%.0f img/s  elapsed %s\n",
                ps->tty ? "\r\033[K" : "", (long long)p->epoch, (long long)p->epochs, p->loss,
                100 * p->accuracy, p->val_name, p->images_per_s, el);
        fflush(stderr);
        return;
    }
    fprintf(stderr, "%sepoch %lld/%lld  loss %.4f  acc %.2f%%  %s_loss %.4f  %s_acc %.2f%%%s  "
                    "%.0f img/s  elapsed %s\n",
            ps->tty ? "\r\033[K" : "", (long long)p->epoch, (long long)p->epochs, p->loss,
            100 * p->accuracy, p->val_name, p->val_loss, p->val_name, 100 * p->val_accuracy,
            p->improved ? " *" : "  ", p->images_per_s, el);
    fflush(stderr);
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'D'},       {"model", required_argument, NULL, 'M'},
        {"epochs", required_argument, NULL, 'e'},     {"batch", required_argument, NULL, 'b'},
        {"lr", required_argument, NULL, 'l'},         {"optimizer", required_argument, NULL, 'o'},
        {"momentum", required_argument, NULL, 'm'},   {"weight-decay", required_argument, NULL, 'w'},
        {"schedule", required_argument, NULL, 'S'},   {"warmup", required_argument, NULL, 'W'},
        {"label-smoothing", required_argument, NULL, 'L'},
        {"augment", required_argument, NULL, 'a'},    {"val-split", required_argument, NULL, 'v'},
        {"limit", required_argument, NULL, 'n'},      {"seed", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},    {"workers", required_argument, NULL, 'k'},
        {"ema", required_argument, NULL, 'E'},        {"early-stop", required_argument, NULL, 'x'},
        {"out", required_argument, NULL, 'O'},        {"checkpoint", required_argument, NULL, 'C'},
        {"log", required_argument, NULL, 'g'},        {"resume", required_argument, NULL, 'R'},
        {"input", required_argument, NULL, 'I'},      {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},            {"help", no_argument, NULL, 'h'},
        {"precision", required_argument, NULL, 'P'},
        {"recipe", required_argument, NULL, 'r'},   {"keep", required_argument, NULL, 'K'},
        {"lookahead", required_argument, NULL, 'A'}, {"freeze-after", required_argument, NULL, 'Z'},
        {"val-every", required_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    oc_train_config cfg;
    oc_train_summary sum;
    progress_state ps = {0, 0, -1e9};
    int c, json = 0;
    long v;
    oc_status st;

    oc_train_config_init(&cfg);
    cfg.out = "model.ocm";
    {
        const char *recipe = find_recipe(argc, argv);
        if (recipe && oc_recipe_apply(recipe, &cfg) != OC_OK)
            return cli_usage_error("train", "%s", oc_last_error());
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'D': cfg.data = optarg; break;
        case 'M': cfg.model = optarg; break;
        case 'e':
            if (!cli_parse_int(optarg, 1, 100000, &v))
                return cli_usage_error("train", "--epochs must be 1-100000, not '%s'", optarg);
            cfg.epochs = (int)v;
            break;
        case 'b':
            if (!cli_parse_int(optarg, 1, 65536, &v))
                return cli_usage_error("train", "--batch must be 1-65536, not '%s'", optarg);
            cfg.batch = (int)v;
            break;
        case 'l':
            if (!cli_parse_double(optarg, 1e-9, 1e6, &cfg.lr))
                return cli_usage_error("train", "--lr must be a positive number, not '%s'", optarg);
            break;
        case 'o':
            if (strcmp(optarg, "sgd") && strcmp(optarg, "adamw"))
                return cli_usage_error("train", "--optimizer is sgd or adamw, not '%s'", optarg);
            cfg.optimizer = optarg;
            break;
        case 'm':
            if (!cli_parse_double(optarg, 0, 0.9999, &cfg.momentum))
                return cli_usage_error("train", "--momentum must be in [0, 1), not '%s'", optarg);
            break;
        case 'w':
            if (!cli_parse_double(optarg, 0, 10, &cfg.weight_decay))
                return cli_usage_error("train", "--weight-decay must be 0-10, not '%s'", optarg);
            break;
        case 'S': cfg.schedule = optarg; break;
        case 'W':
            if (!cli_parse_double(optarg, 0, 1000, &cfg.warmup_epochs))
                return cli_usage_error("train", "--warmup must be 0-1000 epochs, not '%s'",
                                       optarg);
            break;
        case 'L':
            if (!cli_parse_double(optarg, 0, 0.99, &cfg.label_smoothing))
                return cli_usage_error("train", "--label-smoothing must be in [0, 1)");
            break;
        case 'a': cfg.augment = optarg; break;
        case 'v':
            if (!cli_parse_double(optarg, 0, 0.95, &cfg.val_split))
                return cli_usage_error("train", "--val-split must be 0-0.95, not '%s'", optarg);
            break;
        case 'n':
            if (!cli_parse_int(optarg, 1, 2000000000, &v))
                return cli_usage_error("train", "--limit must be a positive count");
            cfg.limit = v;
            break;
        case 's':
            if (!cli_parse_int(optarg, 0, 2147483647, &v))
                return cli_usage_error("train", "--seed must be 0-2147483647, not '%s'", optarg);
            cfg.seed = (uint64_t)v;
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 256, &v))
                return cli_usage_error("train", "--threads must be 1-256, not '%s'", optarg);
            oc_set_threads((int)v);
            break;
        case 'k':
            if (!cli_parse_int(optarg, 0, 64, &v))
                return cli_usage_error("train", "--workers must be 0-64, not '%s'", optarg);
            cfg.workers = (int)v;
            break;
        case 'E':
            if (!cli_parse_double(optarg, 0, 0.999999, &cfg.ema_decay))
                return cli_usage_error("train", "--ema must be in [0, 1), e.g. 0.999");
            break;
        case 'x':
            if (!cli_parse_int(optarg, 1, 100000, &v))
                return cli_usage_error("train", "--early-stop must be a positive epoch count");
            cfg.early_stop = (int)v;
            break;
        case 'O': cfg.out = optarg; break;
        case 'C': cfg.checkpoint = optarg; break;
        case 'g': cfg.log_csv = optarg; break;
        case 'R': cfg.resume = optarg; break;
        case 'I': {
            int h, w, ch;
            char tail;
            if (sscanf(optarg, "%dx%dx%d%c", &h, &w, &ch, &tail) != 3 || h < 1 || w < 1 ||
                h > 4096 || w > 4096 || (ch != 1 && ch != 3))
                return cli_usage_error("train", "--input must look like 32x32x3 (channels 1 or "
                                                "3), not '%s'", optarg);
            cfg.input_h = h;
            cfg.input_w = w;
            cfg.input_c = ch;
            break;
        }
        case 'P':
            if (cli_parse_precision("train", optarg, &cfg.precision) != 0)
                return CLI_USAGE;
            break;
        case 'j': json = 1; break;
        case 'q': ps.quiet = 1; break;
        case 'r': break; /* applied before the loop */
        case 'K':
            if (strcmp(optarg, "best") && strcmp(optarg, "last"))
                return cli_usage_error("train", "--keep is best or last, not '%s'", optarg);
            cfg.keep_last = !strcmp(optarg, "last");
            break;
        case 'A':
            if (!cli_parse_int(optarg, 0, 100000, &v))
                return cli_usage_error("train", "--lookahead must be 0-100000 steps, not '%s'",
                                       optarg);
            cfg.lookahead = (int)v;
            break;
        case 'Z': cfg.freeze_after = optarg; break;
        case 'V':
            if (!cli_parse_int(optarg, 1, 100000, &v))
                return cli_usage_error("train", "--val-every must be 1-100000 epochs, not '%s'",
                                       optarg);
            cfg.val_every = (int)v;
            break;
        case 'h': train_help(stdout); return CLI_OK;
        default: return cli_usage_error("train", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!cfg.data && !cfg.resume)
        return cli_usage_error("train", "--data is required (e.g. --data fashion-mnist or "
                                        "--data cifar10:DIR)");
    ps.tty = isatty(STDERR_FILENO);
    cfg.progress = on_progress;
    cfg.progress_user = &ps;
    cfg.stop = &stop_requested;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    st = oc_train(&cfg, &sum);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (st == OC_ERR_INTERRUPTED) {
        fprintf(stderr, "\nocelot train: %s\n", oc_last_error());
        return 130;
    }
    if (st != OC_OK)
        return cli_error("train");
    if (json)
        printf("{\"model\":\"%s\",\"epochs\":%lld,\"best_val_accuracy\":%.6f,\"best_epoch\":%lld,"
               "\"train_loss\":%.6f,\"train_accuracy\":%.6f,\"seconds\":%.3f,"
               "\"images_per_s\":%.1f,\"stopped_early\":%s,\"final_val_accuracy\":%.6f}\n",
               cfg.out, (long long)sum.epochs_run, sum.best_val_accuracy,
               (long long)sum.best_epoch, sum.final_train_loss, sum.final_train_accuracy,
               sum.seconds, sum.images_per_s, sum.stopped_early ? "true" : "false",
               sum.final_val_accuracy);
    else if (cfg.keep_last)
        fprintf(stderr,
                "ocelot train: final validation accuracy %.2f%% (best %.2f%% at epoch %lld); the "
                "last model written to %s (%.1f s, %.0f img/s)%s\n",
                100 * sum.final_val_accuracy, 100 * sum.best_val_accuracy,
                (long long)sum.best_epoch, cfg.out, sum.seconds, sum.images_per_s,
                sum.stopped_early ? "; stopped early" : "");
    else
        fprintf(stderr,
                "ocelot train: best validation accuracy %.2f%% at epoch %lld; model written "
                "to %s (%.1f s, %.0f img/s)%s\n",
                100 * sum.best_val_accuracy, (long long)sum.best_epoch, cfg.out, sum.seconds,
                sum.images_per_s, sum.stopped_early ? "; stopped early" : "");
    return CLI_OK;
}
