/* Prometheus text exposition (format 0.0.4) of the server's counters. */
#include "metrics.h"
#include "core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 400, 404, 405, 408, 413, 415, 500, 503};
#define N_STATUS ((int)(sizeof statuses / sizeof statuses[0]))
static const double latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
#define N_LAT ((int)(sizeof latency_buckets / sizeof latency_buckets[0]))
static const int batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define N_BATCH ((int)(sizeof batch_buckets / sizeof batch_buckets[0]))

struct metrics {
    pthread_mutex_t lock;
    unsigned long long requests[ROUTE_COUNT][N_STATUS + 1]; /* last column: other statuses */
    unsigned long long lat_count[N_LAT + 1];
    double lat_sum;
    unsigned long long lat_total;
    unsigned long long batch_count[N_BATCH + 1];
    unsigned long long batch_total, batch_images;
};

const char *route_name(route_id r)
{
    static const char *names[ROUTE_COUNT] = {"page",        "predictions", "v2_health",
                                             "v2_metadata", "v2_infer",    "metrics",
                                             "other"};
    return names[r];
}

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void metrics_request(metrics *m, route_id route, int status, double seconds)
{
    int s = N_STATUS, b = 0;
    for (int i = 0; i < N_STATUS; i++)
        if (statuses[i] == status)
            s = i;
    while (b < N_LAT && seconds > latency_buckets[b])
        b++;
    pthread_mutex_lock(&m->lock);
    m->requests[route][s]++;
    m->lat_count[b]++;
    m->lat_sum += seconds;
    m->lat_total++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_batch(metrics *m, int n)
{
    int b = 0;
    while (b < N_BATCH && n > batch_buckets[b])
        b++;
    pthread_mutex_lock(&m->lock);
    m->batch_count[b]++;
    m->batch_total++;
    m->batch_images += (unsigned long long)n;
    pthread_mutex_unlock(&m->lock);
}

char *metrics_render(metrics *m, size_t *len)
{
    oc_sb s;
    unsigned long long cum = 0;
    oc_sb_init(&s);
    pthread_mutex_lock(&m->lock);
    oc_sb_printf(&s, "# HELP ocelot_http_requests_total HTTP requests by route and status.\n"
                  "# TYPE ocelot_http_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int i = 0; i <= N_STATUS; i++)
            if (m->requests[r][i])
                oc_sb_printf(&s, "ocelot_http_requests_total{route=\"%s\",status=\"%s%d\"} %llu\n",
                          route_name((route_id)r), i == N_STATUS ? "other_" : "",
                          i == N_STATUS ? 0 : statuses[i], m->requests[r][i]);
    oc_sb_printf(&s, "# HELP ocelot_http_request_errors_total HTTP requests answered 4xx or 5xx.\n"
                  "# TYPE ocelot_http_request_errors_total counter\n");
    {
        unsigned long long errors = 0;
        for (int r = 0; r < ROUTE_COUNT; r++)
            for (int i = 0; i <= N_STATUS; i++)
                if (i == N_STATUS || statuses[i] >= 400)
                    errors += m->requests[r][i];
        oc_sb_printf(&s, "ocelot_http_request_errors_total %llu\n", errors);
    }
    oc_sb_printf(&s, "# HELP ocelot_http_request_duration_seconds Time from request to reply.\n"
                  "# TYPE ocelot_http_request_duration_seconds histogram\n");
    for (int b = 0; b < N_LAT; b++) {
        cum += m->lat_count[b];
        oc_sb_printf(&s, "ocelot_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                  latency_buckets[b], cum);
    }
    oc_sb_printf(&s,
              "ocelot_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
              "ocelot_http_request_duration_seconds_sum %.6f\n"
              "ocelot_http_request_duration_seconds_count %llu\n",
              m->lat_total, m->lat_sum, m->lat_total);
    oc_sb_printf(&s, "# HELP ocelot_batch_size Images per model forward pass.\n"
                  "# TYPE ocelot_batch_size histogram\n");
    cum = 0;
    for (int b = 0; b < N_BATCH; b++) {
        cum += m->batch_count[b];
        oc_sb_printf(&s, "ocelot_batch_size_bucket{le=\"%d\"} %llu\n", batch_buckets[b], cum);
    }
    oc_sb_printf(&s,
              "ocelot_batch_size_bucket{le=\"+Inf\"} %llu\nocelot_batch_size_sum %llu\n"
              "ocelot_batch_size_count %llu\n",
              m->batch_total, m->batch_images, m->batch_total);
    pthread_mutex_unlock(&m->lock);
    return oc_sb_take(&s, len);
}
