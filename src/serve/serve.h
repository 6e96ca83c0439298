/* Private pieces of the HTTP server shared between its files. */
#ifndef OC_SERVE_H
#define OC_SERVE_H

#include "ocelot.h"
#include "core/core.h"
#include "serve/metrics.h"

#include <stddef.h>

/* The embedded web page (page.c). */
extern const char serve_page_html[];


/* ---- server internals (server.c, batcher.c, routes.c) ---- */
#include <microhttpd.h>
#include <pthread.h>

typedef struct request request;
typedef struct oc_server_model model_entry;

struct oc_server_model {
    char name[64];
    oc_model *model;
    oc_classifier *clf;
    oc_server *srv;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    request *head, *tail; /* FIFO of requests waiting for a batch */
    int queued_images;
    int running;
    oc_input *batch_in;       /* [max_batch] */
    oc_prediction *batch_out; /* [max_batch * classes] */
};

struct oc_server {
    oc_server_config cfg;
    char host[64];
    struct MHD_Daemon *daemon;
    int port;
    model_entry *models;
    int n_models;
    metrics *metrics;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int in_flight;
    int shutting_down;
    int started;
};

typedef enum { REQ_SIMPLE = 0, REQ_PREDICT, REQ_INFER } req_kind;

struct request {
    oc_server *srv;
    struct MHD_Connection *conn;
    double t0;
    char method[12];
    char url[192];
    route_id route;
    req_kind kind;
    model_entry *model;
    int topk;           /* predictions per image */
    int classification; /* infer: 0 = probabilities, else top-k as "score:index:label" */
    char *infer_id;     /* infer: the request's "id", echoed */
    unsigned char *body;
    size_t len, cap;
    int too_large;
    int status;         /* the status replied (0 until a reply is queued) */
    size_t reply_bytes;
    /* batching */
    int n;
    oc_input *inputs;
    char (*names)[128];
    oc_prediction *preds; /* [n * topk] */
    float *tensor;        /* infer: converted input data */
    double t_enqueue;
    request *qnext;
    int done;             /* set by the batch thread under the model lock */
};

/* batcher.c */
oc_status batcher_start(model_entry *me);
void batcher_stop(model_entry *me);
/* Queues a request whose inputs are ready; the batch thread classifies them, sets done and
 * resumes the (suspended) connection. */
void batcher_submit(model_entry *me, request *r);

/* routes.c: called once the whole request has arrived (or after resume when done). */
enum MHD_Result route_request(request *r);
/* Classifies the request's route and checks method / headers on the first call; queues an
 * early reply (405, 404, 413, 415) when it can. */
enum MHD_Result route_begin(request *r);

/* server.c */
enum MHD_Result reply(request *r, int status, const char *ctype, char *body, size_t len);
enum MHD_Result reply_error(request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result reply_static(request *r, int status, const char *ctype, const char *text);

#endif
