/* Prometheus metrics of the HTTP server: requests by route and status, a latency histogram,
 * batch sizes. Thread safe. */
#ifndef OC_SERVE_METRICS_H
#define OC_SERVE_METRICS_H

#include <stddef.h>

typedef enum {
    ROUTE_PAGE = 0,
    ROUTE_PREDICTIONS,
    ROUTE_V2_HEALTH,
    ROUTE_V2_METADATA,
    ROUTE_V2_INFER,
    ROUTE_METRICS,
    ROUTE_OTHER,
    ROUTE_COUNT
} route_id;

typedef struct metrics metrics;

metrics *metrics_new(void);
void metrics_free(metrics *m);
void metrics_request(metrics *m, route_id route, int status, double seconds);
void metrics_batch(metrics *m, int batch_size);
/* Renders the exposition text; returns a malloc'ed string (NULL on out-of-memory). */
char *metrics_render(metrics *m, size_t *len);
const char *route_name(route_id r);

#endif
