/* ocelot: entry point and subcommand dispatch. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const cli_command commands[] = {
    {"train", "train a model on a dataset", cmd_train},
    {"eval", "score a model: accuracy, per-class metrics, confusion matrix, report", cmd_eval},
    {"predict", "classify image files, directories and globs", cmd_predict},
    {"serve", "serve models over HTTP (web page, TorchServe and KServe v2 APIs)", cmd_serve},
    {"info", "show a model's layers, shapes, parameters, FLOPs, classes and preprocessing",
     cmd_model_info},
    {"init", "write an untrained model file", cmd_init},
    {"data", "inspect, preview, benchmark, fetch and export datasets", cmd_data},
    {"bench", "measure inference or training speed and memory on synthetic data", cmd_bench_model},
    {"version", "print the version", cmd_version},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *out)
{
    fprintf(out, "ocelot %s — train, evaluate and serve image classifiers\n\n"
                 "usage: ocelot <command> [options]\n\ncommands:\n",
            oc_version());
    for (int i = 0; i < n_commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'ocelot <command> --help' for a command's options.\n");
}

int cli_error(const char *what)
{
    fprintf(stderr, "ocelot: %s: %s\n", what, oc_last_error());
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ocelot %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'ocelot %s --help' for usage.\n", cmd);
    return CLI_USAGE;
}

static void log_to_stderr(oc_log_level level, const char *msg, void *user)
{
    int verbose = (int)(intptr_t)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level < OC_LOG_WARN && !verbose)
        return;
    fprintf(stderr, "ocelot: %s: %s\n", names[level], msg);
}

void cli_install_log(int verbose)
{
    oc_set_log(log_to_stderr, (void *)(intptr_t)verbose);
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (!s || !*s)
        return 0;
    v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int cli_parse_precision(const char *cmd, const char *s, oc_precision *out)
{
    if (oc_precision_parse(s, out) != OC_OK)
        return cli_usage_error(cmd, "--precision must be fp32 or bf16, not '%s'", s);
    if (!oc_precision_supported(*out))
        return cli_usage_error(cmd, "--precision %s needs a CPU with AVX512_BF16; this one has none",
                               s);
    return 0;
}

int cli_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;
    if (!s || !*s)
        return 0;
    v = strtod(s, &end);
    if (*end || !(v >= lo && v <= hi))
        return 0;
    *out = v;
    return 1;
}

int cmd_version(int argc, char **argv)
{
    printf("ocelot %s\n", oc_version());
    return CLI_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version"))
        return cmd_version(argc - 1, argv + 1);
    cli_install_log(0);
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ocelot: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
