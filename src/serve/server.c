/* The HTTP server's lifecycle and connection handling on libmicrohttpd.
 *
 * Threads: libmicrohttpd's polling threads (epoll) read requests and write replies and never
 * block on inference; each model has one batch thread (batcher.c). A prediction request is
 * read whole, its connection suspended and queued; the batch thread classifies it with others
 * and resumes the connection, whose reply is then queued from the polling thread. */
#include "serve.h"
#include "core/core.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void oc_server_config_init(oc_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->max_batch = 32;
    cfg->max_delay_ms = 5;
    cfg->max_body = (size_t)16 << 20;
    cfg->timeout_s = 15;
    cfg->max_connections = 4096;
    cfg->http_threads = 2;
}

oc_status oc_server_new(oc_server **out, const oc_server_config *cfg)
{
    oc_server *s;
    *out = NULL;
    if (!cfg || cfg->port < 0 || cfg->port > 65535 || cfg->max_batch < 1 ||
        cfg->max_batch > 1024 || cfg->max_delay_ms < 0 || cfg->max_body < 1 ||
        cfg->timeout_s < 1 || cfg->max_connections < 1 || cfg->http_threads < 1)
        return oc_fail(OC_ERR_ARG, "server: invalid configuration (port 0-65535, max batch "
                                   "1-1024, positive limits)");
    s = calloc(1, sizeof *s);
    if (!s)
        return oc_fail(OC_ERR_NOMEM, "server: out of memory");
    s->cfg = *cfg;
    snprintf(s->host, sizeof s->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
    s->cfg.host = s->host;
    s->metrics = metrics_new();
    if (!s->metrics) {
        free(s);
        return oc_fail(OC_ERR_NOMEM, "server: out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    *out = s;
    return OC_OK;
}

static int valid_model_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= 64)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

oc_status oc_server_add_model(oc_server *s, const char *name, oc_model *model)
{
    model_entry *grown, *me;
    oc_status st;
    if (!s || !name || !model)
        return oc_fail(OC_ERR_ARG, "server: NULL argument");
    if (s->started)
        return oc_fail(OC_ERR_ARG, "server: add models before starting");
    if (!valid_model_name(name))
        return oc_fail(OC_ERR_ARG,
                       "server: model name '%s' must be 1-63 letters, digits, '-', '_' or '.'",
                       name);
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].name, name))
            return oc_fail(OC_ERR_ARG, "server: two models are named '%s'; rename one file",
                           name);
    grown = realloc(s->models, (size_t)(s->n_models + 1) * sizeof *grown);
    if (!grown)
        return oc_fail(OC_ERR_NOMEM, "server: out of memory");
    s->models = grown;
    me = &s->models[s->n_models];
    memset(me, 0, sizeof *me);
    snprintf(me->name, sizeof me->name, "%s", name);
    me->model = model;
    me->srv = s;
    st = oc_classifier_new(&me->clf, model, s->cfg.max_batch);
    if (st != OC_OK)
        return st;
    me->batch_in = calloc((size_t)s->cfg.max_batch, sizeof *me->batch_in);
    me->batch_out = calloc((size_t)s->cfg.max_batch * (size_t)oc_model_num_classes(model),
                           sizeof *me->batch_out);
    if (!me->batch_in || !me->batch_out) {
        free(me->batch_in);
        free(me->batch_out);
        oc_classifier_free(me->clf);
        return oc_fail(OC_ERR_NOMEM, "server: out of memory");
    }
    s->n_models++;
    return OC_OK;
}

/* ---- replies ---- */

enum MHD_Result reply(request *r, int status, const char *ctype, char *body, size_t len)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == 405) {
        const char *allow = r->route == ROUTE_PREDICTIONS || r->route == ROUTE_V2_INFER
                                ? "POST"
                                : "GET, HEAD";
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    }
    r->status = status;
    r->reply_bytes = len;
    ret = MHD_queue_response(r->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result reply_static(request *r, int status, const char *ctype, const char *text)
{
    size_t n = strlen(text);
    char *copy = malloc(n + 1);
    if (!copy)
        return MHD_NO;
    memcpy(copy, text, n + 1);
    return reply(r, status, ctype, copy, n);
}

enum MHD_Result reply_error(request *r, int status, const char *fmt, ...)
{
    char msg[512];
    oc_sb sb;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    oc_sb_init(&sb);
    oc_sb_puts(&sb, "{\"error\":");
    oc_sb_json(&sb, msg);
    oc_sb_puts(&sb, "}\n");
    {
        size_t len;
        char *text = oc_sb_take(&sb, &len);
        if (!text)
            return MHD_NO;
        return reply(r, status, "application/json", text, len);
    }
}

/* ---- connection handling ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    oc_server *s = cls;
    request *r = *con_cls;

    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->t0 = oc_now();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->url, sizeof r->url, "%s", url);
        *con_cls = r;
        pthread_mutex_lock(&s->lock);
        s->in_flight++;
        pthread_mutex_unlock(&s->lock);
        return route_begin(r);
    }
    if (r->status) {
        /* an early reply is queued; drop whatever body still arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->len + n > s->cfg.max_body) {
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            /* the declared length (already checked against the limit) sizes the buffer
             * exactly, so a small image costs a small allocation; chunked bodies grow */
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
            size_t declared = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
            size_t cap = r->cap ? r->cap * 2 : declared >= r->len + n ? declared : 16384;
            unsigned char *nb;
            while (cap < r->len + n)
                cap *= 2;
            nb = realloc(r->body, cap);
            if (!nb)
                return reply_error(r, 503, "out of memory reading the request body");
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->too_large)
        return reply_error(r, 413, "request body larger than the limit of %zu bytes",
                           s->cfg.max_body);
    return route_request(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    oc_server *s = cls;
    request *r = *con_cls;
    double dt;
    if (!r)
        return;
    dt = oc_now() - r->t0;
    metrics_request(s->metrics, r->route, r->status, dt);
    if (s->cfg.access_log) {
        char line[512], addr[64] = "-";
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                          addr, sizeof addr);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                          addr, sizeof addr);
        }
        snprintf(line, sizeof line, "%s \"%s %s\" %d %zu %.2fms%s", addr, r->method, r->url,
                 r->status, r->reply_bytes, dt * 1e3,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
        s->cfg.access_log(line, s->cfg.access_log_user);
    }
    free(r->body);
    free(r->inputs);
    free(r->names);
    free(r->preds);
    free(r->tensor);
    free(r->infer_id);
    free(r);
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    s->in_flight--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    oc_log(OC_LOG_DEBUG, "http: %s", msg);
}

oc_status oc_server_start(oc_server *s)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    struct rlimit rl;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    if (!s || s->started)
        return oc_fail(OC_ERR_ARG, "server: already started");
    if (s->n_models == 0)
        return oc_fail(OC_ERR_ARG, "server: no models to serve");
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, s->host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)s->cfg.port);
        sl = sizeof *sin;
    } else if (inet_pton(AF_INET6, s->host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)s->cfg.port);
        sl = sizeof *sin6;
        flags |= MHD_USE_IPv6;
    } else {
        return oc_fail(OC_ERR_ARG, "server: '%s' is not an IPv4 or IPv6 address", s->host);
    }
    (void)sl;
    /* many slow clients each hold a descriptor: raise the soft limit to the hard one */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < s->n_models; i++) {
        oc_status st = batcher_start(&s->models[i]);
        if (st != OC_OK) {
            for (int j = 0; j < i; j++)
                batcher_stop(&s->models[j]);
            return st;
        }
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->cfg.timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)s->cfg.max_connections,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)s->cfg.http_threads,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned int)1, MHD_OPTION_END);
    if (!s->daemon) {
        for (int i = 0; i < s->n_models; i++)
            batcher_stop(&s->models[i]);
        return oc_fail(OC_ERR_IO, "server: cannot listen on %s:%d (port in use, or not "
                                  "allowed?)",
                       s->host, s->cfg.port);
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->cfg.port;
    s->started = 1;
    return OC_OK;
}

int oc_server_port(const oc_server *s)
{
    return s ? s->port : 0;
}

void oc_server_stop(oc_server *s, double grace_s)
{
    double deadline;
    if (!s || !s->started)
        return;
    pthread_mutex_lock(&s->lock);
    s->shutting_down = 1;
    pthread_mutex_unlock(&s->lock);
    {
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
    /* requests in flight finish: their batches run and their replies go out */
    deadline = oc_now() + grace_s;
    pthread_mutex_lock(&s->lock);
    while (s->in_flight > 0 && oc_now() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->idle, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    /* batch threads drain their queues (resuming every suspended connection) before exiting,
     * which MHD_stop_daemon requires */
    for (int i = 0; i < s->n_models; i++)
        batcher_stop(&s->models[i]);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    s->started = 0;
}

void oc_server_free(oc_server *s)
{
    if (!s)
        return;
    if (s->started)
        oc_server_stop(s, 0);
    for (int i = 0; i < s->n_models; i++) {
        oc_classifier_free(s->models[i].clf);
        free(s->models[i].batch_in);
        free(s->models[i].batch_out);
    }
    free(s->models);
    metrics_free(s->metrics);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    free(s);
}
