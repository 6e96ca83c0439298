/* Request routing and the handlers: the page, TorchServe-style predictions, the KServe v2
 * routes and /metrics. */
#include "serve.h"
#include "serve/multipart.h"
#include "core/core.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PARTS 256
#define MAX_INFER_IMAGES 1024

static model_entry *find_model(oc_server *s, const char *name, size_t len)
{
    for (int i = 0; i < s->n_models; i++)
        if (strlen(s->models[i].name) == len && !strncmp(s->models[i].name, name, len))
            return &s->models[i];
    return NULL;
}

static int is_get(const request *r)
{
    return !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
}

/* Splits "/v2/models/{name}[/rest]" style paths: returns the model for the segment after
 * `prefix` and points *rest at what follows it ("" or "/ready"...). */
static int match_model(request *r, const char *prefix, const char **rest, model_entry **me)
{
    size_t pl = strlen(prefix);
    const char *name, *slash;
    if (strncmp(r->url, prefix, pl))
        return 0;
    name = r->url + pl;
    slash = strchr(name, '/');
    *rest = slash ? slash : name + strlen(name);
    *me = find_model(r->srv, name, (size_t)(*rest - name));
    if (!*me) {
        size_t n = (size_t)(*rest - name);
        r->model = NULL;
        return n > 0 ? -1 : 0;
    }
    return 1;
}

static int ctype_is(const char *ct, const char *prefix)
{
    return ct && !strncasecmp(ct, prefix, strlen(prefix));
}

enum MHD_Result route_begin(request *r)
{
    oc_server *s = r->srv;
    const char *rest = "", *cl, *ct;
    model_entry *me = NULL;
    int m;

    r->route = ROUTE_OTHER;
    if (!strcmp(r->url, "/") || !strcmp(r->url, "/index.html"))
        r->route = ROUTE_PAGE;
    else if (!strcmp(r->url, "/metrics"))
        r->route = ROUTE_METRICS;
    else if (!strcmp(r->url, "/models") || !strcmp(r->url, "/v2") ||
             !strncmp(r->url, "/v2/health/", 11))
        r->route = !strncmp(r->url, "/v2/health/", 11) ? ROUTE_V2_HEALTH : ROUTE_V2_METADATA;
    else if ((m = match_model(r, "/predictions/", &rest, &me)) != 0) {
        r->route = ROUTE_PREDICTIONS;
        if (m < 0 || *rest)
            return reply_error(r, 404, "no model named '%.*s' is served (GET /models lists them)",
                               (int)(rest - r->url - 13), r->url + 13);
        r->model = me;
        r->kind = REQ_PREDICT;
    } else if ((m = match_model(r, "/v2/models/", &rest, &me)) != 0) {
        r->route = !strcmp(rest, "/infer") ? ROUTE_V2_INFER : ROUTE_V2_METADATA;
        if (m < 0)
            return reply_error(r, 404, "no model named '%.*s' is served",
                               (int)(rest - r->url - 11), r->url + 11);
        if (*rest && strcmp(rest, "/ready") && strcmp(rest, "/infer"))
            return reply_error(r, 404, "no such route: %s", r->url);
        r->model = me;
        if (r->route == ROUTE_V2_INFER)
            r->kind = REQ_INFER;
    }
    if (r->route == ROUTE_OTHER)
        return reply_error(r, 404, "no such route: %s (see GET / for the page, "
                                   "POST /predictions/{model}, /v2/...)", r->url);
    if (r->kind == REQ_SIMPLE) {
        if (!is_get(r))
            return reply_error(r, 405, "%s does not accept %s; use GET", r->url, r->method);
        return MHD_YES;
    }
    if (strcmp(r->method, "POST"))
        return reply_error(r, 405, "%s accepts POST only, not %s", r->url, r->method);
    cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body)
        return reply_error(r, 413, "request body of %s bytes is larger than the limit of %zu",
                           cl, s->cfg.max_body);
    ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (r->kind == REQ_PREDICT && ct && !ctype_is(ct, "image/") &&
        !ctype_is(ct, "application/octet-stream") && !ctype_is(ct, "multipart/form-data"))
        return reply_error(r, 415, "unsupported Content-Type '%s': send image bytes (image/jpeg, "
                                   "image/png, image/webp) or multipart/form-data", ct);
    if (r->kind == REQ_INFER && ct && !ctype_is(ct, "application/json"))
        return reply_error(r, 415, "unsupported Content-Type '%s': the v2 infer route takes "
                                   "application/json", ct);
    return MHD_YES;
}

/* ---- simple GET routes ---- */

static void add_model_json(oc_sb *sb, model_entry *me)
{
    int h, w, c, k = oc_model_num_classes(me->model);
    oc_model_input_shape(me->model, &h, &w, &c);
    oc_sb_puts(sb, "{\"name\":");
    oc_sb_json(sb, me->name);
    oc_sb_printf(sb, ",\"input\":[%d,%d,%d],\"classes\":[", h, w, c);
    for (int i = 0; i < k; i++) {
        if (i)
            oc_sb_puts(sb, ",");
        oc_sb_json(sb, oc_model_class_name(me->model, i));
    }
    oc_sb_puts(sb, "]}");
}

static enum MHD_Result send_sb(request *r, int status, oc_sb *sb)
{
    size_t len;
    char *text = oc_sb_take(sb, &len);
    if (!text)
        return reply_error(r, 503, "out of memory");
    return reply(r, status, "application/json", text, len);
}

static enum MHD_Result get_route(request *r)
{
    oc_server *s = r->srv;
    oc_sb sb;
    if (r->route == ROUTE_PAGE)
        return reply_static(r, 200, "text/html; charset=utf-8", serve_page_html);
    if (r->route == ROUTE_METRICS) {
        size_t len;
        char *text = metrics_render(s->metrics, &len);
        if (!text)
            return reply_error(r, 503, "out of memory");
        return reply(r, 200, "text/plain; version=0.0.4", text, len);
    }
    oc_sb_init(&sb);
    if (!strcmp(r->url, "/v2/health/live")) {
        oc_sb_puts(&sb, "{\"live\":true}\n");
        return send_sb(r, 200, &sb);
    }
    if (!strcmp(r->url, "/v2/health/ready")) {
        int down;
        pthread_mutex_lock(&s->lock);
        down = s->shutting_down;
        pthread_mutex_unlock(&s->lock);
        oc_sb_puts(&sb, down ? "{\"ready\":false}\n" : "{\"ready\":true}\n");
        return send_sb(r, down ? 503 : 200, &sb);
    }
    if (!strcmp(r->url, "/v2")) {
        oc_sb_printf(&sb, "{\"name\":\"ocelot\",\"version\":\"%s\",\"extensions\":"
                     "[\"classification\"]}\n", oc_version());
        return send_sb(r, 200, &sb);
    }
    if (!strcmp(r->url, "/models")) {
        oc_sb_puts(&sb, "{\"models\":[");
        for (int i = 0; i < s->n_models; i++) {
            if (i)
                oc_sb_puts(&sb, ",");
            add_model_json(&sb, &s->models[i]);
        }
        oc_sb_puts(&sb, "]}\n");
        return send_sb(r, 200, &sb);
    }
    if (r->model) {
        const char *rest = r->url + 11 + strlen(r->model->name);
        int h, w, c;
        if (!strcmp(rest, "/ready")) {
            oc_sb_puts(&sb, "{\"name\":");
            oc_sb_json(&sb, r->model->name);
            oc_sb_puts(&sb, ",\"ready\":true}\n");
            return send_sb(r, 200, &sb);
        }
        oc_model_input_shape(r->model->model, &h, &w, &c);
        oc_sb_puts(&sb, "{\"name\":");
        oc_sb_json(&sb, r->model->name);
        oc_sb_printf(&sb,
                ",\"versions\":[\"1\"],\"platform\":\"ocelot\",\"inputs\":[{\"name\":\"input\","
                "\"datatype\":\"FP32\",\"shape\":[-1,%d,%d,%d]}],\"outputs\":[{\"name\":"
                "\"output\",\"datatype\":\"FP32\",\"shape\":[-1,%d]}],\"parameters\":{\"layout\":"
                "\"NHWC\",\"classes\":[",
                h, w, c, oc_model_num_classes(r->model->model));
        for (int i = 0; i < oc_model_num_classes(r->model->model); i++) {
            if (i)
                oc_sb_puts(&sb, ",");
            oc_sb_json(&sb, oc_model_class_name(r->model->model, i));
        }
        oc_sb_puts(&sb, "]}}\n");
        return send_sb(r, 200, &sb);
    }
    oc_sb_release(&sb);
    return reply_error(r, 404, "no such route: %s", r->url);
}

/* ---- predictions ---- */

static int alloc_inputs(request *r, int n)
{
    r->n = n;
    r->inputs = calloc((size_t)n, sizeof *r->inputs);
    r->names = calloc((size_t)n, sizeof *r->names);
    r->preds = calloc((size_t)n * (size_t)r->topk, sizeof *r->preds);
    return r->inputs && r->names && r->preds;
}

static enum MHD_Result start_predict(request *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *tk = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "topk");
    int classes = oc_model_num_classes(r->model->model);
    r->topk = 5;
    if (tk) {
        char *end;
        long v = strtol(tk, &end, 10);
        if (*end || v < 1 || v > 1000)
            return reply_error(r, 400, "topk must be an integer from 1 to 1000, not '%s'", tk);
        r->topk = (int)v;
    }
    if (r->topk > classes)
        r->topk = classes;
    if (r->len == 0)
        return reply_error(r, 400, "empty body: send the image bytes, or multipart/form-data "
                                   "with the image in field 'data'");
    if (ctype_is(ct, "multipart/form-data")) {
        char boundary[80];
        mp_part *parts;
        const char *why = NULL;
        int n, used = 0;
        if (!mp_boundary(ct, boundary, sizeof boundary))
            return reply_error(r, 400, "multipart/form-data without a valid boundary parameter");
        parts = calloc(MAX_PARTS, sizeof *parts);
        if (!parts)
            return reply_error(r, 503, "out of memory");
        n = mp_parse(r->body, r->len, boundary, parts, MAX_PARTS, &why);
        if (n < 0) {
            free(parts);
            return reply_error(r, 400, "%s", why);
        }
        for (int i = 0; i < n; i++)
            used += !strcmp(parts[i].name, "data") || parts[i].filename[0];
        if (used == 0) {
            free(parts);
            return reply_error(r, 400, "multipart body has no image: put it in field 'data'");
        }
        if (!alloc_inputs(r, used)) {
            free(parts);
            return reply_error(r, 503, "out of memory");
        }
        used = 0;
        for (int i = 0; i < n; i++) {
            if (strcmp(parts[i].name, "data") && !parts[i].filename[0])
                continue;
            r->inputs[used].kind = OC_INPUT_ENCODED;
            r->inputs[used].data = parts[i].data;
            r->inputs[used].size = parts[i].len;
            /* names longer than the reply field are cut, deliberately */
            snprintf(r->names[used], sizeof r->names[used], "%.127s",
                     parts[i].filename[0] ? parts[i].filename : parts[i].name);
            used++;
        }
        free(parts);
    } else {
        if (!alloc_inputs(r, 1))
            return reply_error(r, 503, "out of memory");
        r->inputs[0].kind = OC_INPUT_ENCODED;
        r->inputs[0].data = r->body;
        r->inputs[0].size = r->len;
    }
    MHD_suspend_connection(r->conn);
    batcher_submit(r->model, r);
    return MHD_YES;
}

static void add_predictions(oc_sb *sb, const oc_prediction *p, int k)
{
    oc_sb_puts(sb, "[");
    for (int j = 0; j < k; j++) {
        if (j)
            oc_sb_puts(sb, ",");
        oc_sb_puts(sb, "{\"label\":");
        oc_sb_json(sb, p[j].label ? p[j].label : "");
        oc_sb_printf(sb, ",\"index\":%d,\"probability\":%.6f}", p[j].index, (double)p[j].probability);
    }
    oc_sb_puts(sb, "]");
}

static enum MHD_Result finish_predict(request *r)
{
    oc_sb sb;
    double ms = (oc_now() - r->t0) * 1e3;
    if (r->n == 1) {
        oc_input *in = &r->inputs[0];
        if (in->status != OC_OK)
            return reply_error(r, in->status == OC_ERR_NOMEM ? 503 : 400,
                               "cannot classify the image: %s", in->error);
        oc_sb_init(&sb);
        oc_sb_puts(&sb, "{\"predictions\":");
        add_predictions(&sb, r->preds, r->topk);
        oc_sb_puts(&sb, ",\"model\":");
        oc_sb_json(&sb, r->model->name);
        oc_sb_printf(&sb, ",\"latency_ms\":%.3f}\n", ms);
        return send_sb(r, 200, &sb);
    }
    oc_sb_init(&sb);
    oc_sb_puts(&sb, "{\"results\":[");
    for (int i = 0; i < r->n; i++) {
        if (i)
            oc_sb_puts(&sb, ",");
        oc_sb_puts(&sb, "{\"name\":");
        oc_sb_json(&sb, r->names[i]);
        if (r->inputs[i].status != OC_OK) {
            oc_sb_puts(&sb, ",\"error\":");
            oc_sb_json(&sb, r->inputs[i].error);
        } else {
            oc_sb_puts(&sb, ",\"predictions\":");
            add_predictions(&sb, &r->preds[(size_t)i * (size_t)r->topk], r->topk);
        }
        oc_sb_puts(&sb, "}");
    }
    oc_sb_puts(&sb, "],\"model\":");
    oc_sb_json(&sb, r->model->name);
    oc_sb_printf(&sb, ",\"latency_ms\":%.3f}\n", ms);
    return send_sb(r, 200, &sb);
}

/* ---- KServe v2 infer ---- */

/* Flattens a (possibly nested) JSON number array into out[0..cap); returns the count or -1. */
static long flatten(const cJSON *a, float *out, long cap, long at)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (cJSON_IsArray(e)) {
            at = flatten(e, out, cap, at);
            if (at < 0)
                return -1;
        } else if (cJSON_IsNumber(e)) {
            if (at >= cap)
                return -1;
            out[at++] = (float)e->valuedouble;
        } else {
            return -1;
        }
    }
    return at;
}

static enum MHD_Result start_infer(request *r)
{
    cJSON *root, *inputs, *in, *shape, *dtype, *data, *outputs, *id;
    int h, w, c, dims[4], nd = 0, is_u8;
    long per, total, got;
    enum MHD_Result ret;
    oc_model_input_shape(r->model->model, &h, &w, &c);
    root = cJSON_ParseWithLength((const char *)r->body, r->len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return reply_error(r, 400, "body is not a JSON object (KServe v2 inference request)");
    }
    inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    in = cJSON_IsArray(inputs) ? cJSON_GetArrayItem(inputs, 0) : NULL;
    if (!cJSON_IsObject(in) || cJSON_GetArraySize(inputs) != 1) {
        ret = reply_error(r, 400, "'inputs' must be an array with one tensor");
        goto done;
    }
    shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    dtype = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (!cJSON_IsArray(shape) || !cJSON_IsString(dtype) || !cJSON_IsArray(data)) {
        ret = reply_error(r, 400, "the input needs 'shape', 'datatype' and 'data'");
        goto done;
    }
    is_u8 = !strcmp(dtype->valuestring, "UINT8");
    if (!is_u8 && strcmp(dtype->valuestring, "FP32")) {
        ret = reply_error(r, 400, "datatype '%s' is not supported: use FP32 (preprocessed NHWC) "
                                  "or UINT8 (raw NHWC pixels)", dtype->valuestring);
        goto done;
    }
    {
        const cJSON *d;
        cJSON_ArrayForEach(d, shape)
        {
            if (nd == 4 || !cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 65536) {
                nd = -1;
                break;
            }
            dims[nd++] = (int)d->valuedouble;
        }
    }
    if (nd == 3) {
        dims[3] = dims[2];
        dims[2] = dims[1];
        dims[1] = dims[0];
        dims[0] = 1;
        nd = 4;
    }
    if (nd != 4 || dims[0] > MAX_INFER_IMAGES) {
        ret = reply_error(r, 400, "shape must be [N,H,W,C] (N <= %d) or [H,W,C]",
                          MAX_INFER_IMAGES);
        goto done;
    }
    if (!is_u8 && (dims[1] != h || dims[2] != w || dims[3] != c)) {
        ret = reply_error(r, 400, "FP32 input must be [N,%d,%d,%d] for this model, got "
                                  "[%d,%d,%d,%d]", h, w, c, dims[0], dims[1], dims[2], dims[3]);
        goto done;
    }
    if (is_u8 && dims[3] != 1 && dims[3] != 3 && dims[3] != 4) {
        ret = reply_error(r, 400, "UINT8 images need 1, 3 or 4 channels");
        goto done;
    }
    per = (long)dims[1] * dims[2] * dims[3];
    total = per * dims[0];
    if (total > (long)(r->srv->cfg.max_body)) {
        ret = reply_error(r, 413, "tensor of %ld values is too large", total);
        goto done;
    }
    r->tensor = malloc((size_t)total * sizeof *r->tensor);
    if (!r->tensor) {
        ret = reply_error(r, 503, "out of memory");
        goto done;
    }
    got = flatten(data, r->tensor, total, 0);
    if (got != total) {
        ret = reply_error(r, 400, "'data' must hold exactly %ld numbers for shape "
                                  "[%d,%d,%d,%d]", total, dims[0], dims[1], dims[2], dims[3]);
        goto done;
    }
    if (is_u8) {
        /* pixels travel as bytes to the classifier, which resizes and normalises them */
        unsigned char *px = (unsigned char *)r->tensor;
        for (long i = 0; i < total; i++) {
            float v = r->tensor[i];
            px[i] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
        }
    }
    r->classification = 0;
    outputs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (cJSON_IsArray(outputs)) {
        const cJSON *o;
        cJSON_ArrayForEach(o, outputs)
        {
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(o, "parameters");
            const cJSON *cls = cJSON_GetObjectItemCaseSensitive(params, "classification");
            if (cJSON_IsNumber(cls) && cls->valuedouble >= 1)
                r->classification = (int)cls->valuedouble;
        }
    }
    id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (cJSON_IsString(id))
        r->infer_id = strdup(id->valuestring);
    {
        int classes = oc_model_num_classes(r->model->model);
        r->topk = r->classification ? r->classification : classes;
        if (r->topk > classes)
            r->topk = classes;
    }
    if (!alloc_inputs(r, dims[0])) {
        ret = reply_error(r, 503, "out of memory");
        goto done;
    }
    for (int i = 0; i < dims[0]; i++) {
        oc_input *x = &r->inputs[i];
        if (is_u8) {
            x->kind = OC_INPUT_PIXELS;
            x->data = (unsigned char *)r->tensor + (size_t)i * (size_t)per;
            x->height = dims[1];
            x->width = dims[2];
            x->channels = dims[3];
        } else {
            x->kind = OC_INPUT_TENSOR;
            x->data = r->tensor + (size_t)i * (size_t)per;
            x->size = (size_t)per * sizeof(float);
        }
    }
    /* the body is no longer needed; inputs point into r->tensor */
    MHD_suspend_connection(r->conn);
    batcher_submit(r->model, r);
    ret = MHD_YES;
done:
    cJSON_Delete(root);
    return ret;
}

static enum MHD_Result finish_infer(request *r)
{
    oc_sb sb;
    int classes = oc_model_num_classes(r->model->model);
    for (int i = 0; i < r->n; i++)
        if (r->inputs[i].status != OC_OK)
            return reply_error(r, 400, "input %d: %s", i, r->inputs[i].error);
    oc_sb_init(&sb);
    oc_sb_puts(&sb, "{\"model_name\":");
    oc_sb_json(&sb, r->model->name);
    oc_sb_puts(&sb, ",\"model_version\":\"1\"");
    if (r->infer_id) {
        oc_sb_puts(&sb, ",\"id\":");
        oc_sb_json(&sb, r->infer_id);
    }
    if (r->classification) {
        /* Triton's classification extension: "score:index:label" strings, best first */
        oc_sb_printf(&sb, ",\"outputs\":[{\"name\":\"output\",\"datatype\":\"BYTES\",\"shape\":"
                     "[%d,%d],\"data\":[", r->n, r->topk);
        for (int i = 0; i < r->n; i++)
            for (int j = 0; j < r->topk; j++) {
                const oc_prediction *p = &r->preds[(size_t)i * (size_t)r->topk + (size_t)j];
                char item[256];
                snprintf(item, sizeof item, "%f:%d:%s", (double)p->probability, p->index,
                         p->label ? p->label : "");
                if (i || j)
                    oc_sb_puts(&sb, ",");
                oc_sb_json(&sb, item);
            }
    } else {
        oc_sb_printf(&sb, ",\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":"
                     "[%d,%d],\"data\":[", r->n, classes);
        for (int i = 0; i < r->n; i++) {
            float probs[4096];
            const oc_prediction *p = &r->preds[(size_t)i * (size_t)r->topk];
            for (int j = 0; j < classes && j < 4096; j++)
                probs[j] = 0;
            for (int j = 0; j < r->topk; j++)
                if (p[j].index >= 0 && p[j].index < 4096)
                    probs[p[j].index] = p[j].probability;
            for (int j = 0; j < classes && j < 4096; j++)
                oc_sb_printf(&sb, "%s%.7g", i || j ? "," : "", (double)probs[j]);
        }
    }
    oc_sb_puts(&sb, "]}]}\n");
    return send_sb(r, 200, &sb);
}

enum MHD_Result route_request(request *r)
{
    if (r->kind == REQ_SIMPLE)
        return get_route(r);
    if (r->done)
        return r->kind == REQ_PREDICT ? finish_predict(r) : finish_infer(r);
    return r->kind == REQ_PREDICT ? start_predict(r) : start_infer(r);
}
