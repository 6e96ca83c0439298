/* In-memory PNG encoding with libpng, for the report's thumbnails. */
#include "eval/eval.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int nomem;
} mem_sink;

static void sink_write(png_structp png, png_bytep data, png_size_t n)
{
    mem_sink *s = png_get_io_ptr(png);
    if (s->nomem)
        return;
    if (n > SIZE_MAX - s->len) {
        s->nomem = 1;
        return;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        uint8_t *p;
        while (cap < s->len + n)
            cap = cap > SIZE_MAX / 2 ? s->len + n : cap * 2;
        p = realloc(s->buf, cap);
        if (!p) {
            s->nomem = 1;
            return;
        }
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

static void sink_flush(png_structp png)
{
    (void)png;
}

/* libpng reports errors by longjmp; keep its messages instead of printing them. */
static void png_error_fn(png_structp png, png_const_charp msg)
{
    oc_fail(OC_ERR_FORMAT, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

oc_status oc_png_encode(const uint8_t *pixels, int height, int width, int channels,
                        uint8_t **out, size_t *out_len)
{
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, 0, PNG_COLOR_TYPE_RGB,
                                       PNG_COLOR_TYPE_RGB_ALPHA};
    png_structp png;
    png_infop info = NULL;
    mem_sink sink = {0};
    png_bytep *volatile rows = NULL;

    *out = NULL;
    *out_len = 0;
    if (!pixels || height < 1 || width < 1 || height > 65535 || width > 65535 ||
        (channels != 1 && channels != 3 && channels != 4))
        return oc_fail(OC_ERR_ARG, "png: bad image %dx%dx%d", height, width, channels);

    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_error_fn, png_warning_fn);
    if (!png)
        return oc_fail(OC_ERR_NOMEM, "png: out of memory");
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return oc_fail(OC_ERR_NOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(sink.buf);
        return OC_ERR_FORMAT; /* message set by png_error_fn */
    }
    rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (!rows) {
        png_destroy_write_struct(&png, &info);
        return oc_fail(OC_ERR_NOMEM, "png: out of memory");
    }
    for (int y = 0; y < height; y++)
        rows[y] = (png_bytep)(pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_set_write_fn(png, &sink, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color_types[channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (sink.nomem) {
        free(sink.buf);
        return oc_fail(OC_ERR_NOMEM, "png: out of memory");
    }
    *out = sink.buf;
    *out_len = sink.len;
    return OC_OK;
}
