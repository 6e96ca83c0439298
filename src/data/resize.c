/* Resizing and the model's input transform. Separable: each axis gets a list of source taps
 * and weights; an area (box) filter when that axis shrinks, bilinear when it grows. A horizontal
 * pass writes a float row buffer, a vertical pass combines rows, rounding once at the end. */
#include "data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int *start;   /* [out] first source index */
    int *count;   /* [out] taps */
    float *w;     /* [out][max_taps] */
    int max_taps;
} axis_taps;

static void taps_free(axis_taps *t)
{
    free(t->start);
    free(t->count);
    free(t->w);
}

/* Taps mapping `in` source samples starting at `off` onto `out` samples. */
static oc_status taps_make(axis_taps *t, int off, int in, int out)
{
    double scale = (double)in / out;
    t->max_taps = in > out ? (int)ceil(scale) + 2 : 2;
    t->start = malloc(sizeof(int) * (size_t)out);
    t->count = malloc(sizeof(int) * (size_t)out);
    t->w = calloc((size_t)out * (size_t)t->max_taps, sizeof(float));
    if (!t->start || !t->count || !t->w) {
        taps_free(t);
        return oc_fail(OC_ERR_NOMEM, "out of memory for resize taps");
    }
    for (int j = 0; j < out; j++) {
        float *w = t->w + (size_t)j * t->max_taps;
        if (in > out) {
            /* area: output j covers source [j*scale, (j+1)*scale) */
            double a = j * scale, b = (j + 1) * scale;
            int s = (int)floor(a), e = (int)ceil(b);
            if (e > in)
                e = in;
            t->start[j] = off + s;
            t->count[j] = e - s;
            for (int k = s; k < e; k++) {
                double lo = k > a ? k : a, hi = k + 1 < b ? k + 1 : b;
                w[k - s] = (float)((hi - lo) / scale);
            }
        } else if (in == out) {
            t->start[j] = off + j;
            t->count[j] = 1;
            w[0] = 1.0f;
        } else {
            double x = (j + 0.5) * scale - 0.5;
            int x0;
            double f;
            if (x < 0)
                x = 0;
            x0 = (int)floor(x);
            if (x0 >= in - 1) {
                t->start[j] = off + in - 1;
                t->count[j] = 1;
                w[0] = 1.0f;
                continue;
            }
            f = x - x0;
            t->start[j] = off + x0;
            t->count[j] = 2;
            w[0] = (float)(1.0 - f);
            w[1] = (float)f;
        }
    }
    return OC_OK;
}

/* Resizes the region [y0, y0+rh) x [x0, x0+rw) of src into dst (already sized). */
static oc_status resize_region(const oc_image *src, int y0, int x0, int rh, int rw, oc_image *dst)
{
    axis_taps tx = {0}, ty = {0};
    float *rows = NULL;
    int C = src->channels, W = dst->width, H = dst->height;
    size_t row_len = (size_t)W * C;
    oc_status st = taps_make(&tx, x0, rw, W);
    if (st != OC_OK)
        return st;
    st = taps_make(&ty, y0, rh, H);
    if (st != OC_OK)
        goto done;
    /* horizontal pass over every source row of the region: rh x W x C floats */
    rows = malloc(sizeof(float) * row_len * (size_t)rh);
    if (!rows) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory for resize");
        goto done;
    }
    for (int y = 0; y < rh; y++) {
        const uint8_t *s = src->data + ((size_t)(y0 + y) * src->width) * C;
        float *r = rows + (size_t)y * row_len;
        for (int j = 0; j < W; j++) {
            const float *w = tx.w + (size_t)j * tx.max_taps;
            const uint8_t *p = s + (size_t)tx.start[j] * C;
            for (int c = 0; c < C; c++) {
                float acc = 0;
                for (int k = 0; k < tx.count[j]; k++)
                    acc += w[k] * (float)p[k * C + c];
                r[j * C + c] = acc;
            }
        }
    }
    for (int i = 0; i < H; i++) {
        const float *w = ty.w + (size_t)i * ty.max_taps;
        uint8_t *d = dst->data + (size_t)i * row_len;
        for (size_t q = 0; q < row_len; q++) {
            float acc = 0;
            for (int k = 0; k < ty.count[i]; k++)
                acc += w[k] * rows[(size_t)(ty.start[i] - y0 + k) * row_len + q];
            acc = floorf(acc + 0.5f);
            d[q] = (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
        }
    }
done:
    free(rows);
    taps_free(&tx);
    taps_free(&ty);
    return st;
}

static oc_status check_image(const oc_image *img, const char *fn)
{
    if (!img || !img->data || img->height < 1 || img->width < 1 ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4))
        return oc_fail(OC_ERR_ARG, "%s: empty or invalid image", fn);
    return OC_OK;
}

oc_status oc_image_resize(const oc_image *src, int height, int width, oc_image *dst)
{
    oc_status st = check_image(src, "oc_image_resize");
    if (st != OC_OK)
        return st;
    if (!dst || dst == src)
        return oc_fail(OC_ERR_ARG, "oc_image_resize: dst must be a different image");
    st = image_reserve(dst, height, width, src->channels);
    if (st != OC_OK)
        return st;
    if (height == src->height && width == src->width) {
        memcpy(dst->data, src->data, (size_t)height * width * src->channels);
        return OC_OK;
    }
    return resize_region(src, 0, 0, src->height, src->width, dst);
}

static oc_status check_pp(const oc_preprocess *pp, const char *fn)
{
    if (!pp || pp->height < 1 || pp->width < 1 ||
        (pp->channels != 1 && pp->channels != 3 && pp->channels != 4))
        return oc_fail(OC_ERR_ARG, "%s: preprocess needs height, width >= 1 and 1, 3 or 4 "
                                   "channels", fn);
    return OC_OK;
}

oc_status oc_image_fit(const oc_image *src, const oc_preprocess *pp, oc_image *dst)
{
    oc_image conv = {0};
    const oc_image *s = src;
    oc_status st = check_image(src, "oc_image_fit");
    int y0 = 0, x0 = 0, rh, rw;
    if (st == OC_OK)
        st = check_pp(pp, "oc_image_fit");
    if (st != OC_OK)
        return st;
    if (!dst || dst == src)
        return oc_fail(OC_ERR_ARG, "oc_image_fit: dst must be a different image");
    if (src->channels != pp->channels) {
        st = image_reserve(&conv, src->height, src->width, pp->channels);
        if (st != OC_OK)
            return st;
        convert_channels(src->data, src->channels, conv.data, pp->channels,
                         (size_t)src->height * src->width, OC_ALPHA_WHITE);
        s = &conv;
    }
    rh = s->height;
    rw = s->width;
    if (pp->resize == OC_RESIZE_CENTER_CROP) {
        /* largest centred region with the target's aspect ratio */
        if ((int64_t)rw * pp->height > (int64_t)rh * pp->width)
            rw = (int)(((int64_t)rh * pp->width + pp->height / 2) / pp->height);
        else
            rh = (int)(((int64_t)rw * pp->height + pp->width / 2) / pp->width);
        if (rw < 1)
            rw = 1;
        if (rh < 1)
            rh = 1;
        y0 = (s->height - rh) / 2;
        x0 = (s->width - rw) / 2;
    }
    st = image_reserve(dst, pp->height, pp->width, pp->channels);
    if (st == OC_OK) {
        if (rh == pp->height && rw == pp->width) {
            for (int y = 0; y < rh; y++)
                memcpy(dst->data + (size_t)y * rw * pp->channels,
                       s->data + ((size_t)(y0 + y) * s->width + x0) * pp->channels,
                       (size_t)rw * pp->channels);
        } else {
            st = resize_region(s, y0, x0, rh, rw, dst);
        }
    }
    oc_image_release(&conv);
    return st;
}

void image_normalize(const oc_image *img, const oc_preprocess *pp, float *out)
{
    int C = pp->channels;
    float scale[4], bias[4];
    size_t n = (size_t)img->height * img->width;
    for (int c = 0; c < C; c++) {
        float sd = pp->std[c] != 0.0f ? pp->std[c] : 1.0f;
        scale[c] = 1.0f / (255.0f * sd);
        bias[c] = -pp->mean[c] / sd;
    }
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            out[i * C + c] = (float)img->data[i * C + c] * scale[c] + bias[c];
}

oc_status oc_image_to_input(const oc_image *img, const oc_preprocess *pp, float *out)
{
    oc_image fit = {0};
    oc_status st;
    if (!out)
        return oc_fail(OC_ERR_ARG, "oc_image_to_input: out is NULL");
    st = oc_image_fit(img, pp, &fit);
    if (st == OC_OK)
        image_normalize(&fit, pp, out);
    oc_image_release(&fit);
    return st;
}
