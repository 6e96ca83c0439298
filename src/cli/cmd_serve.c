/* ocelot serve: the HTTP server over one or more model files. */
#include "cli.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void serve_help(FILE *out)
{
    fprintf(out,
            "usage: ocelot serve MODEL... [options]\n\n"
            "Serves models over HTTP: a web page at /, POST /predictions/{model} (TorchServe\n"
            "style: raw image bytes or multipart field 'data', ?topk=N), the KServe v2 routes\n"
            "(/v2/health/live, /v2/health/ready, /v2, /v2/models/{model}[/ready|/infer]),\n"
            "GET /models and Prometheus /metrics. A model's name is its file name without the\n"
            "extension; write NAME=FILE to choose another.\n\n"
            "options:\n"
            "  --host ADDR         address to bind (default 127.0.0.1; 0.0.0.0 for all)\n"
            "  --port N            port (default 8080; 0 picks a free one)\n"
            "  --threads N         compute threads (default: one per core)\n"
            "  --max-batch N       images per forward pass (default 32)\n"
            "  --max-delay-ms N    how long a batch waits for more requests (default 5)\n"
            "  --max-body MB       request body limit in MiB (default 16)\n"
            "  --timeout S         idle connection timeout in seconds (default 15)\n"
            "  --quiet             no access log\n"
            "  -h, --help          this help\n\n"
            "SIGINT / SIGTERM stop it gracefully: requests in flight finish first.\n");
}

typedef struct {
    pthread_mutex_t lock;
} log_state;

static void access_log(const char *line, void *user)
{
    log_state *ls = user;
    pthread_mutex_lock(&ls->lock);
    fprintf(stdout, "%s\n", line);
    fflush(stdout);
    pthread_mutex_unlock(&ls->lock);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},       {"port", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},    {"max-batch", required_argument, NULL, 'b'},
        {"max-delay-ms", required_argument, NULL, 'd'}, {"max-body", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, 'T'},    {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0}};
    oc_server_config cfg;
    oc_server *srv = NULL;
    oc_model **models = NULL;
    int n_models = 0, quiet = 0, c, rc = CLI_FAIL, sig;
    log_state ls;
    sigset_t set;
    long v;
    double mb;

    /* Serving alternates short forward passes with idle waits. Spinning pool workers then burn
     * the cores other processes need (measured on a loaded 2-core machine with the earlier
     * OpenMP build: 0.5 requests/s spinning against 210 passive), and per-thread malloc arenas
     * let resident memory creep under sustained load. glibc reads MALLOC_ARENA_MAX when the
     * process starts, so set both and start again, once, unless the user chose otherwise. */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("OCELOT_SERVE_REEXEC")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        setenv("MALLOC_ARENA_MAX", "2", 0);
        setenv("OCELOT_SERVE_REEXEC", "1", 1);
        execv("/proc/self/exe", argv - 1); /* main passes argv + 1; on failure, go on as is */
    }
    oc_server_config_init(&cfg);
    pthread_mutex_init(&ls.lock, NULL);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H': cfg.host = optarg; break;
        case 'p':
            if (!cli_parse_int(optarg, 0, 65535, &v))
                return cli_usage_error("serve", "--port must be 0-65535, not '%s'", optarg);
            cfg.port = (int)v;
            break;
        case 't':
            if (!cli_parse_int(optarg, 1, 256, &v))
                return cli_usage_error("serve", "--threads must be 1-256, not '%s'", optarg);
            oc_set_threads((int)v);
            break;
        case 'b':
            if (!cli_parse_int(optarg, 1, 1024, &v))
                return cli_usage_error("serve", "--max-batch must be 1-1024, not '%s'", optarg);
            cfg.max_batch = (int)v;
            break;
        case 'd':
            if (!cli_parse_int(optarg, 0, 10000, &v))
                return cli_usage_error("serve", "--max-delay-ms must be 0-10000, not '%s'",
                                       optarg);
            cfg.max_delay_ms = (int)v;
            break;
        case 'm':
            if (!cli_parse_double(optarg, 0.001, 4096, &mb))
                return cli_usage_error("serve", "--max-body must be 0.001-4096 MiB, not '%s'",
                                       optarg);
            cfg.max_body = (size_t)(mb * 1048576.0);
            break;
        case 'T':
            if (!cli_parse_int(optarg, 1, 3600, &v))
                return cli_usage_error("serve", "--timeout must be 1-3600 s, not '%s'", optarg);
            cfg.timeout_s = (int)v;
            break;
        case 'q': quiet = 1; break;
        case 'h': serve_help(stdout); return CLI_OK;
        default: return cli_usage_error("serve", "unknown option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("serve", "name at least one model file to serve");
    if (!quiet) {
        cfg.access_log = access_log;
        cfg.access_log_user = &ls;
    }
    models = calloc((size_t)(argc - optind), sizeof *models);
    if (!models)
        return cli_error("serve");
    if (oc_server_new(&srv, &cfg) != OC_OK) {
        cli_error("serve");
        goto done;
    }
    for (int i = optind; i < argc; i++) {
        char name[64];
        const char *path = argv[i], *eq = strchr(argv[i], '=');
        if (eq && eq != argv[i]) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
            path = eq + 1;
        } else {
            const char *base = strrchr(path, '/');
            char *dot;
            snprintf(name, sizeof name, "%s", base ? base + 1 : path);
            dot = strrchr(name, '.');
            if (dot && dot != name)
                *dot = 0;
        }
        if (oc_model_load(path, &models[n_models]) != OC_OK) {
            fprintf(stderr, "ocelot serve: cannot load model '%s': %s\n", path, oc_last_error());
            goto done;
        }
        n_models++;
        oc_model_set_weights_fixed(models[n_models - 1], 1); /* pack the weights once */
        if (oc_server_add_model(srv, name, models[n_models - 1]) != OC_OK) {
            cli_error("serve");
            goto done;
        }
    }
    /* block the stop signals in every thread the server starts; the main thread waits */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (oc_server_start(srv) != OC_OK) {
        cli_error("serve");
        goto done;
    }
    fprintf(stderr, "ocelot: serving %d model%s on http://%s:%d/ (Ctrl-C stops)\n", n_models,
            n_models == 1 ? "" : "s", cfg.host, oc_server_port(srv));
    fflush(stderr);
    sigwait(&set, &sig);
    fprintf(stderr, "ocelot: %s received, finishing requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    oc_server_stop(srv, 30.0);
    fprintf(stderr, "ocelot: stopped\n");
    rc = CLI_OK;
done:
    oc_server_free(srv);
    for (int i = 0; i < n_models; i++)
        oc_model_free(models[i]);
    free(models);
    pthread_mutex_destroy(&ls.lock);
    return rc;
}
