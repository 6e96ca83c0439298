/* The `ocelot` command line: one file per subcommand, each exposing cmd_<name>. Only cli/
 * writes to stdout or decides the process's exit status. */
#ifndef OC_CLI_H
#define OC_CLI_H

#include "ocelot.h"

#include <stdio.h>

/* Exit codes shared by every subcommand. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_PARTIAL = 3 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand's name */
} cli_command;

/* Prints "ocelot: <msg>: <oc_last_error()>" to stderr and returns CLI_FAIL. */
int cli_error(const char *what);
/* Prints a usage error and the hint to run --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Installs a log callback that prints warnings and errors to stderr (and info with -v). */
void cli_install_log(int verbose);

/* Option parsing helpers: parse a whole string as a number, reject trailing junk. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *s, double lo, double hi, double *out);
/* --precision for `cmd`: 0 with *out set, or the usage error (unknown name, CPU without it). */
int cli_parse_precision(const char *cmd, const char *s, oc_precision *out);

int cmd_version(int argc, char **argv);
int cmd_model_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_data_export(int argc, char **argv);
int cmd_bench_model(int argc, char **argv);

#endif
