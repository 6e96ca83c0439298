/* Classifying images: decode -> the model's preprocessing -> one batched forward -> softmax ->
 * top-k. Decoding and preprocessing run on the thread pool, one image per thread at a time. */
#include "core/core.h"
#include "ocelot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PREP_THREADS 64

struct oc_classifier {
    oc_model *model;
    int max_batch;
    int H, W, C, K;
    oc_preprocess pp;
    float *x;     /* [max_batch][H][W][C] model inputs of the images that decoded */
    int *slot;    /* [max_batch] input index of each row of x, or -1 */
    float *probs; /* [max_batch][K] */
    oc_image img[MAX_PREP_THREADS]; /* per-thread decode buffers, reused across calls */
};

oc_status oc_classifier_new(oc_classifier **out, oc_model *model, int max_batch)
{
    oc_classifier *c;
    size_t per;
    *out = NULL;
    if (!model || max_batch < 1 || max_batch > 65536)
        return oc_fail(OC_ERR_ARG, "classifier: need a model and a max batch of 1-65536");
    c = calloc(1, sizeof *c);
    if (!c)
        return oc_fail(OC_ERR_NOMEM, "classifier: out of memory");
    c->model = model;
    c->max_batch = max_batch;
    oc_model_input_shape(model, &c->H, &c->W, &c->C);
    c->K = oc_model_num_classes(model);
    c->pp = *oc_model_preprocess(model);
    /* the model's input shape is authoritative for what the network accepts */
    c->pp.height = c->H;
    c->pp.width = c->W;
    c->pp.channels = c->C;
    per = (size_t)c->H * (size_t)c->W * (size_t)c->C;
    c->x = oc_alloc((size_t)max_batch * per * sizeof *c->x);
    c->slot = calloc((size_t)max_batch, sizeof *c->slot);
    c->probs = oc_alloc((size_t)max_batch * (size_t)c->K * sizeof *c->probs);
    if (!c->x || !c->slot || !c->probs) {
        oc_classifier_free(c);
        return oc_fail(OC_ERR_NOMEM, "classifier: out of memory for a batch of %d", max_batch);
    }
    if (oc_model_plan(model, max_batch, 0) != OC_OK) {
        oc_status st = oc_fail_context(OC_ERR_NOMEM, "classifier");
        oc_classifier_free(c);
        return st;
    }
    *out = c;
    return OC_OK;
}

void oc_classifier_free(oc_classifier *c)
{
    if (!c)
        return;
    for (int i = 0; i < MAX_PREP_THREADS; i++)
        oc_image_release(&c->img[i]);
    oc_free(c->x);
    free(c->slot);
    oc_free(c->probs);
    free(c);
}

typedef struct {
    oc_classifier *c;
    oc_input *in;
    int n;
    float **dst; /* [n] row of x for input i */
} prep_ctx;

static void set_error(oc_input *in, oc_status st, const char *msg)
{
    in->status = st;
    snprintf(in->error, sizeof in->error, "%s", msg);
}

static void prep_one(oc_classifier *c, oc_input *in, oc_image *img, float *dst)
{
    oc_decode_opts dopts;
    oc_status st;
    size_t per = (size_t)c->H * (size_t)c->W * (size_t)c->C;
    in->status = OC_OK;
    in->error[0] = 0;
    if (!in->data) {
        set_error(in, OC_ERR_ARG, "no image data");
        return;
    }
    switch (in->kind) {
    case OC_INPUT_ENCODED:
        memset(&dopts, 0, sizeof dopts);
        dopts.channels = c->C;
        if (in->size == 0) {
            set_error(in, OC_ERR_FORMAT, "empty image (0 bytes)");
            return;
        }
        st = oc_image_decode(in->data, in->size, &dopts, img);
        if (st == OC_OK)
            st = oc_image_to_input(img, &c->pp, dst);
        break;
    case OC_INPUT_PIXELS: {
        oc_image view;
        if (in->height < 1 || in->width < 1 ||
            (in->channels != 1 && in->channels != 3 && in->channels != 4)) {
            set_error(in, OC_ERR_ARG, "pixels need a positive size and 1, 3 or 4 channels");
            return;
        }
        memset(&view, 0, sizeof view);
        view.height = in->height;
        view.width = in->width;
        view.channels = in->channels;
        view.data = (uint8_t *)(uintptr_t)in->data;
        st = oc_image_to_input(&view, &c->pp, dst);
        break;
    }
    case OC_INPUT_TENSOR:
        if (in->size != per * sizeof(float)) {
            char msg[160];
            snprintf(msg, sizeof msg, "tensor input must be %dx%dx%d floats (%zu bytes), got %zu "
                                      "bytes", c->H, c->W, c->C, per * sizeof(float), in->size);
            set_error(in, OC_ERR_SHAPE, msg);
            return;
        }
        memcpy(dst, in->data, in->size);
        st = OC_OK;
        break;
    default:
        set_error(in, OC_ERR_ARG, "unknown input kind");
        return;
    }
    if (st != OC_OK)
        set_error(in, st, oc_last_error());
}

static void prep_worker(void *arg, int tid, int nt)
{
    prep_ctx *p = arg;
    for (int i = tid; i < p->n; i += nt)
        prep_one(p->c, &p->in[i], &p->c->img[tid], p->dst[i]);
}

/* probs = softmax(logits) per row; subtract the row max first: logits from an untrained or
 * overconfident net can pass 88, where expf overflows. */
static void softmax_rows(const float *logits, int n, int k, float *probs)
{
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k, mx = l[0];
        double sum = 0;
        for (int j = 1; j < k; j++)
            mx = l[j] > mx ? l[j] : mx;
        for (int j = 0; j < k; j++) {
            p[j] = expf(l[j] - mx);
            sum += (double)p[j];
        }
        for (int j = 0; j < k; j++)
            p[j] = (float)((double)p[j] / sum);
    }
}

static void top_k(const oc_model *m, const float *p, int k_classes, int topk, oc_prediction *out)
{
    for (int j = 0; j < topk; j++) {
        int best = -1;
        for (int c = 0; c < k_classes; c++) {
            int taken = 0;
            for (int t = 0; t < j; t++)
                taken |= out[t].index == c;
            /* ties go to the lower index, like a stable sort */
            if (!taken && (best < 0 || p[c] > p[best]))
                best = c;
        }
        out[j].index = best;
        out[j].probability = p[best];
        out[j].label = oc_model_class_name(m, best);
    }
}

oc_status oc_classifier_run(oc_classifier *c, oc_input *inputs, int n, int topk,
                            oc_prediction *out)
{
    size_t per;
    float **dst;
    const float *logits;
    int rows = 0;
    oc_status st;

    if (!c || !inputs || !out || n < 1 || n > c->max_batch)
        return oc_fail(OC_ERR_ARG, "classify: need 1 to %d inputs and an output array",
                       c ? c->max_batch : 0);
    if (topk < 1)
        return oc_fail(OC_ERR_ARG, "classify: topk must be >= 1");
    if (topk > c->K)
        topk = c->K;
    per = (size_t)c->H * (size_t)c->W * (size_t)c->C;
    dst = malloc((size_t)n * sizeof *dst);
    if (!dst)
        return oc_fail(OC_ERR_NOMEM, "classify: out of memory");
    for (int i = 0; i < n; i++)
        dst[i] = c->x + (size_t)i * per;
    {
        prep_ctx p = {c, inputs, n, dst};
        oc_parallel_n(prep_worker, &p, n < MAX_PREP_THREADS ? n : MAX_PREP_THREADS);
    }
    /* compact the rows of images that decoded, so the forward pass sees only those */
    for (int i = 0; i < n; i++) {
        if (inputs[i].status != OC_OK)
            continue;
        if (rows != i)
            memmove(c->x + (size_t)rows * per, dst[i], per * sizeof *c->x);
        c->slot[rows++] = i;
    }
    free(dst);
    memset(out, 0, (size_t)n * (size_t)topk * sizeof *out);
    for (int i = 0; i < n * topk; i++)
        out[i].index = -1;
    if (rows == 0)
        return OC_OK;
    st = oc_model_forward(c->model, c->x, rows, 0, &logits);
    if (st != OC_OK)
        return oc_fail_context(st, "classify");
    softmax_rows(logits, rows, c->K, c->probs);
    for (int r = 0; r < rows; r++)
        top_k(c->model, c->probs + (size_t)r * c->K, c->K, topk,
              out + (size_t)c->slot[r] * topk);
    return OC_OK;
}

oc_status oc_classify_file(oc_model *model, const char *path, int topk, oc_prediction *out)
{
    oc_classifier *c = NULL;
    oc_input in;
    oc_status st;
    FILE *f;
    long size;
    void *buf = NULL;

    if (!model || !path || !out)
        return oc_fail(OC_ERR_ARG, "classify: NULL argument");
    f = fopen(path, "rb");
    if (!f)
        return oc_fail(OC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return oc_fail(OC_ERR_IO, "cannot read '%s': not a regular file?", path);
    }
    buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return oc_fail(OC_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(buf);
        return oc_fail(OC_ERR_IO, "cannot read '%s'", path);
    }
    fclose(f);
    st = oc_classifier_new(&c, model, 1);
    if (st != OC_OK)
        goto done;
    memset(&in, 0, sizeof in);
    in.kind = OC_INPUT_ENCODED;
    in.data = buf;
    in.size = (size_t)size;
    st = oc_classifier_run(c, &in, 1, topk, out);
    if (st == OC_OK && in.status != OC_OK)
        st = oc_fail(in.status, "%s: %s", path, in.error);
done:
    oc_classifier_free(c);
    free(buf);
    return st;
}
