/* Image decoding (JPEG via libjpeg-turbo, PNG via libpng, WebP via libwebp), channel
 * conversion and PNG writing. The format comes from magic bytes, never from a file name. Both
 * libjpeg and libpng report errors by longjmp: each decoder keeps every resource it allocates
 * after setjmp in a context struct, so the error path can free it. */
#include "data.h"

#include <errno.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

oc_status image_reserve(oc_image *img, int h, int w, int c)
{
    size_t n;
    if (h < 1 || w < 1 || (c != 1 && c != 3 && c != 4))
        return oc_fail(OC_ERR_ARG, "image size %dx%dx%d is invalid", h, w, c);
    if (!oc_mul_ok((size_t)h, (size_t)w, &n) || !oc_mul_ok(n, (size_t)c, &n))
        return oc_fail(OC_ERR_NOMEM, "image %dx%dx%d is too large", h, w, c);
    if (n > img->cap || !img->data) {
        uint8_t *p = malloc(n);
        if (!p)
            return oc_fail(OC_ERR_NOMEM, "out of memory for a %dx%dx%d image", h, w, c);
        free(img->data);
        img->data = p;
        img->cap = n;
    }
    img->height = h;
    img->width = w;
    img->channels = c;
    return OC_OK;
}

oc_status oc_image_alloc(oc_image *img, int height, int width, int channels)
{
    if (!img)
        return oc_fail(OC_ERR_ARG, "oc_image_alloc: img is NULL");
    return image_reserve(img, height, width, channels);
}

void oc_image_release(oc_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

int decoded_channels(int src_c, int want)
{
    if (want)
        return want;
    return src_c == 2 ? 4 : src_c;
}

/* ITU-R BT.601 luma in 16.16 fixed point: 0.299, 0.587, 0.114 (sum 65536), rounded. */
static inline uint8_t luma(unsigned r, unsigned g, unsigned b)
{
    return (uint8_t)((19595u * r + 38470u * g + 7471u * b + 32768u) >> 16);
}

/* Composites value v with alpha a over white: v*a/255 + 255*(255-a)/255, rounded. */
static inline uint8_t over_white(unsigned v, unsigned a)
{
    return (uint8_t)((v * a + 255u * (255u - a) + 127u) / 255u);
}

void convert_channels(const uint8_t *src, int src_c, uint8_t *dst, int dst_c, size_t n,
                      oc_alpha_mode alpha)
{
    if (src_c == dst_c) {
        memcpy(dst, src, n * (size_t)src_c);
        return;
    }
    for (size_t i = 0; i < n; i++, src += src_c, dst += dst_c) {
        unsigned r, g, b, a = 255;
        if (src_c <= 2) {
            r = g = b = src[0];
            if (src_c == 2)
                a = src[1];
        } else {
            r = src[0];
            g = src[1];
            b = src[2];
            if (src_c == 4)
                a = src[3];
        }
        if (dst_c == 4) {
            dst[0] = (uint8_t)r;
            dst[1] = (uint8_t)g;
            dst[2] = (uint8_t)b;
            dst[3] = (uint8_t)a;
            continue;
        }
        if (a != 255 && alpha == OC_ALPHA_WHITE) {
            r = over_white(r, a);
            g = over_white(g, a);
            b = over_white(b, a);
        }
        if (dst_c == 1) {
            dst[0] = src_c <= 2 ? (uint8_t)r : luma(r, g, b);
        } else {
            dst[0] = (uint8_t)r;
            dst[1] = (uint8_t)g;
            dst[2] = (uint8_t)b;
        }
    }
}

oc_image_format oc_image_detect(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (!p)
        return OC_IMAGE_UNKNOWN;
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return OC_IMAGE_JPEG;
    if (len >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
        return OC_IMAGE_PNG;
    if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
        return OC_IMAGE_WEBP;
    return OC_IMAGE_UNKNOWN;
}

const char *oc_image_format_name(oc_image_format f)
{
    switch (f) {
    case OC_IMAGE_JPEG: return "jpeg";
    case OC_IMAGE_PNG: return "png";
    case OC_IMAGE_WEBP: return "webp";
    default: return "unknown";
    }
}

static oc_status check_limit(int w, int h, int64_t max_pixels)
{
    if (max_pixels <= 0)
        max_pixels = OC_IMAGE_DEFAULT_MAX_PIXELS;
    if (w < 1 || h < 1)
        return oc_fail(OC_ERR_FORMAT, "image has an empty size %dx%d", w, h);
    if ((int64_t)w * (int64_t)h > max_pixels)
        return oc_fail(OC_ERR_FORMAT,
                       "image is %dx%d = %lld pixels, above the pixel limit of %lld "
                       "(decompression-bomb guard)",
                       w, h, (long long)w * h, (long long)max_pixels);
    return OC_OK;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* A truncated file is only a warning to libjpeg ("premature end of data segment"), which then
 * fills the rest with grey and reports success; here it is an error. Other corrupt-data warnings
 * (extraneous bytes before a marker, common in real files) are ignored. */
static void jpeg_emit(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        jpeg_error_exit(cinfo);
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    uint8_t *row; /* CMYK conversion row */
} jpeg_ctx;

static oc_status decode_jpeg(const uint8_t *buf, size_t len, const oc_decode_opts *o,
                             oc_image *out, int probe_only, int *pw, int *ph, int *pc)
{
    jpeg_ctx *x = calloc(1, sizeof *x);
    volatile oc_status st = OC_OK;
    int src_c, dst_c, cmyk;
    if (!x)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    x->cinfo.err = jpeg_std_error(&x->err.pub);
    x->err.pub.error_exit = jpeg_error_exit;
    x->err.pub.emit_message = jpeg_emit;
    if (setjmp(x->err.jmp)) {
        st = oc_fail(OC_ERR_FORMAT, "corrupt JPEG: %s", x->err.msg);
        goto done;
    }
    jpeg_create_decompress(&x->cinfo);
    jpeg_mem_src(&x->cinfo, buf, (unsigned long)len);
    jpeg_read_header(&x->cinfo, TRUE);
    cmyk = x->cinfo.jpeg_color_space == JCS_CMYK || x->cinfo.jpeg_color_space == JCS_YCCK;
    src_c = x->cinfo.num_components == 1 ? 1 : 3;
    if (probe_only) {
        *pw = (int)x->cinfo.image_width;
        *ph = (int)x->cinfo.image_height;
        *pc = src_c;
        goto done;
    }
    st = check_limit((int)x->cinfo.image_width, (int)x->cinfo.image_height, o->max_pixels);
    if (st != OC_OK)
        goto done;
    dst_c = decoded_channels(src_c, o->channels);
    if (cmyk)
        x->cinfo.out_color_space = JCS_CMYK;
    else
        x->cinfo.out_color_space = dst_c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&x->cinfo);
    {
        int w = (int)x->cinfo.output_width, h = (int)x->cinfo.output_height;
        int oc = x->cinfo.output_components;
        st = image_reserve(out, h, w, dst_c);
        if (st != OC_OK)
            goto done;
        x->row = malloc((size_t)w * 4);
        if (!x->row) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory");
            goto done;
        }
        while (x->cinfo.output_scanline < x->cinfo.output_height) {
            int y = (int)x->cinfo.output_scanline;
            uint8_t *dst = out->data + (size_t)y * w * dst_c;
            JSAMPROW rp = x->row;
            jpeg_read_scanlines(&x->cinfo, &rp, 1);
            if (cmyk) {
                /* Adobe writes inverted CMYK: R = C*K/255 on the stored values. */
                for (int i = 0; i < w; i++) {
                    uint8_t *p = x->row + 4 * i;
                    unsigned k = p[3];
                    p[0] = (uint8_t)((p[0] * k + 127) / 255);
                    p[1] = (uint8_t)((p[1] * k + 127) / 255);
                    p[2] = (uint8_t)((p[2] * k + 127) / 255);
                    p[3] = 255;
                }
                convert_channels(x->row, 4, dst, dst_c, (size_t)w, OC_ALPHA_DROP);
            } else {
                convert_channels(x->row, oc, dst, dst_c, (size_t)w, OC_ALPHA_DROP);
            }
        }
        jpeg_finish_decompress(&x->cinfo);
    }
done:
    jpeg_destroy_decompress(&x->cinfo);
    free(x->row);
    free(x);
    return st;
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    png_structp png;
    png_infop info;
    const uint8_t *buf;
    size_t len, pos;
    uint8_t *pixels;     /* native decoded rows */
    png_bytep *rows;
    char msg[256];
} png_ctx;

static void png_err_fn(png_structp png, png_const_charp msg)
{
    png_ctx *x = png_get_error_ptr(png);
    snprintf(x->msg, sizeof x->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep data, png_size_t n)
{
    png_ctx *x = png_get_io_ptr(png);
    if (n > x->len - x->pos)
        png_error(png, "truncated PNG data (read past the end)");
    memcpy(data, x->buf + x->pos, n);
    x->pos += n;
}

static oc_status decode_png(const uint8_t *buf, size_t len, const oc_decode_opts *o,
                            oc_image *out, int probe_only, int *pw, int *ph, int *pc)
{
    png_ctx *x;
    volatile oc_status st = OC_OK;
    /* The guard reads IHDR straight from the bytes: png_read_info would first read on to the
     * next chunks, and a bomb need not be well-formed past its header. */
    if (!probe_only && len >= 24 && !memcmp(buf + 12, "IHDR", 4)) {
        uint32_t w = (uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 | (uint32_t)buf[18] << 8 |
                     buf[19];
        uint32_t h = (uint32_t)buf[20] << 24 | (uint32_t)buf[21] << 16 | (uint32_t)buf[22] << 8 |
                     buf[23];
        if (w > INT32_MAX || h > INT32_MAX)
            return oc_fail(OC_ERR_FORMAT, "image is %lux%lu pixels, above the pixel limit",
                           (unsigned long)w, (unsigned long)h);
        if ((st = check_limit((int)w, (int)h, o->max_pixels)) != OC_OK)
            return st;
    }
    x = calloc(1, sizeof *x);
    if (!x)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    x->buf = buf;
    x->len = len;
    x->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, x, png_err_fn, png_warn_fn);
    if (!x->png || !(x->info = png_create_info_struct(x->png))) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory for the PNG decoder");
        goto done;
    }
    if (setjmp(png_jmpbuf(x->png))) {
        st = oc_fail(OC_ERR_FORMAT, "corrupt PNG: %s", x->msg);
        goto done;
    }
    png_set_read_fn(x->png, x, png_read_mem);
    png_read_info(x->png, x->info);
    {
        png_uint_32 w = png_get_image_width(x->png, x->info);
        png_uint_32 h = png_get_image_height(x->png, x->info);
        int color = png_get_color_type(x->png, x->info);
        int src_c, dst_c, nat_c;
        if (probe_only) {
            *pw = (int)w;
            *ph = (int)h;
            *pc = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1;
            if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(x->png, x->info, PNG_INFO_tRNS))
                *pc += 1;
            goto done;
        }
        if (w > INT32_MAX || h > INT32_MAX) {
            st = oc_fail(OC_ERR_FORMAT, "image is %lux%lu pixels, above the pixel limit",
                         (unsigned long)w, (unsigned long)h);
            goto done;
        }
        st = check_limit((int)w, (int)h, o->max_pixels);
        if (st != OC_OK)
            goto done;
        png_set_expand(x->png);  /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
        png_set_strip_16(x->png);
        png_set_packing(x->png);
        png_set_interlace_handling(x->png);
        png_read_update_info(x->png, x->info);
        nat_c = png_get_channels(x->png, x->info);
        src_c = nat_c;
        dst_c = decoded_channels(src_c, o->channels);
        x->pixels = malloc((size_t)w * h * (size_t)nat_c);
        x->rows = malloc(sizeof *x->rows * h);
        if (!x->pixels || !x->rows) {
            st = oc_fail(OC_ERR_NOMEM, "out of memory for a %lux%lu PNG", (unsigned long)w,
                         (unsigned long)h);
            goto done;
        }
        for (png_uint_32 y = 0; y < h; y++)
            x->rows[y] = x->pixels + (size_t)y * w * nat_c;
        png_read_image(x->png, x->rows);
        png_read_end(x->png, NULL);
        st = image_reserve(out, (int)h, (int)w, dst_c);
        if (st != OC_OK)
            goto done;
        convert_channels(x->pixels, src_c, out->data, dst_c, (size_t)w * h, o->alpha);
    }
done:
    png_destroy_read_struct(x->png ? &x->png : NULL, x->info ? &x->info : NULL, NULL);
    free(x->pixels);
    free(x->rows);
    free(x);
    return st;
}

/* ---------------------------------------------------------------- WebP */

static oc_status decode_webp(const uint8_t *buf, size_t len, const oc_decode_opts *o,
                             oc_image *out, int probe_only, int *pw, int *ph, int *pc)
{
    WebPBitstreamFeatures f;
    uint8_t *tmp;
    int src_c, dst_c;
    oc_status st;
    if (WebPGetFeatures(buf, len, &f) != VP8_STATUS_OK)
        return oc_fail(OC_ERR_FORMAT, "corrupt WebP: bad header");
    src_c = f.has_alpha ? 4 : 3;
    if (probe_only) {
        *pw = f.width;
        *ph = f.height;
        *pc = src_c;
        return OC_OK;
    }
    st = check_limit(f.width, f.height, o->max_pixels);
    if (st != OC_OK)
        return st;
    dst_c = decoded_channels(src_c, o->channels);
    tmp = malloc((size_t)f.width * f.height * (size_t)src_c);
    if (!tmp)
        return oc_fail(OC_ERR_NOMEM, "out of memory for a %dx%d WebP", f.width, f.height);
    if (!(src_c == 4 ? WebPDecodeRGBAInto(buf, len, tmp, (size_t)f.width * f.height * 4,
                                          f.width * 4)
                     : WebPDecodeRGBInto(buf, len, tmp, (size_t)f.width * f.height * 3,
                                         f.width * 3))) {
        free(tmp);
        return oc_fail(OC_ERR_FORMAT, "corrupt WebP: decoding failed (truncated or damaged)");
    }
    st = image_reserve(out, f.height, f.width, dst_c);
    if (st == OC_OK)
        convert_channels(tmp, src_c, out->data, dst_c, (size_t)f.width * f.height, o->alpha);
    free(tmp);
    return st;
}

/* ---------------------------------------------------------------- public */

static oc_status dispatch(const void *buf, size_t len, const oc_decode_opts *o, oc_image *out,
                          int probe, int *w, int *h, int *c, oc_image_format *fmt)
{
    oc_image_format f = oc_image_detect(buf, len);
    if (fmt)
        *fmt = f;
    switch (f) {
    case OC_IMAGE_JPEG: return decode_jpeg(buf, len, o, out, probe, w, h, c);
    case OC_IMAGE_PNG: return decode_png(buf, len, o, out, probe, w, h, c);
    case OC_IMAGE_WEBP: return decode_webp(buf, len, o, out, probe, w, h, c);
    default:
        if (len == 0)
            return oc_fail(OC_ERR_FORMAT, "empty image data");
        return oc_fail(OC_ERR_FORMAT, "unknown image format (not JPEG, PNG or WebP by its "
                                      "magic bytes)");
    }
}

oc_status oc_image_probe(const void *buf, size_t len, oc_image_format *fmt, int *width,
                         int *height, int *channels)
{
    int w = 0, h = 0, c = 0;
    oc_status st;
    if (!buf && len)
        return oc_fail(OC_ERR_ARG, "oc_image_probe: buf is NULL");
    st = dispatch(buf, len, NULL, NULL, 1, &w, &h, &c, fmt);
    if (st != OC_OK)
        return st;
    if (width)
        *width = w;
    if (height)
        *height = h;
    if (channels)
        *channels = c;
    return OC_OK;
}

oc_status oc_image_decode(const void *buf, size_t len, const oc_decode_opts *opts, oc_image *out)
{
    oc_decode_opts o = {0};
    if (!out || (!buf && len))
        return oc_fail(OC_ERR_ARG, "oc_image_decode: NULL argument");
    if (opts)
        o = *opts;
    if (o.channels != 0 && o.channels != 1 && o.channels != 3 && o.channels != 4)
        return oc_fail(OC_ERR_ARG, "oc_image_decode: channels must be 0, 1, 3 or 4, not %d",
                       o.channels);
    return dispatch(buf, len, &o, out, 0, NULL, NULL, NULL, NULL);
}

oc_status read_file(const char *path, size_t limit, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    long sz;
    *buf = NULL;
    *len = 0;
    if (!f)
        return oc_fail(OC_ERR_IO, "open '%s': %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return oc_fail(OC_ERR_IO, "'%s': cannot determine size (not a regular file?)", path);
    }
    if (limit && (size_t)sz > limit) {
        fclose(f);
        return oc_fail(OC_ERR_IO, "'%s' is %ld bytes, above the limit of %zu", path, sz, limit);
    }
    p = malloc((size_t)sz + 1);
    if (!p) {
        fclose(f);
        return oc_fail(OC_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    if (fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        free(p);
        fclose(f);
        return oc_fail(OC_ERR_IO, "read '%s': short read", path);
    }
    fclose(f);
    *buf = p;
    *len = (size_t)sz;
    return OC_OK;
}

oc_status oc_image_load(const char *path, const oc_decode_opts *opts, oc_image *out)
{
    uint8_t *buf;
    size_t len;
    oc_status st;
    if (!path || !out)
        return oc_fail(OC_ERR_ARG, "oc_image_load: NULL argument");
    st = read_file(path, 0, &buf, &len);
    if (st != OC_OK)
        return st;
    st = oc_image_decode(buf, len, opts, out);
    free(buf);
    if (st != OC_OK)
        return oc_fail_context(st, "'%s'", path);
    return OC_OK;
}

typedef struct {
    png_structp png;
    png_infop info;
    FILE *f;
    png_bytep *rows;
    char msg[256];
} png_wctx;

static void png_werr(png_structp png, png_const_charp msg)
{
    png_wctx *x = png_get_error_ptr(png);
    snprintf(x->msg, sizeof x->msg, "%s", msg);
    png_longjmp(png, 1);
}

oc_status oc_image_save_png(const oc_image *img, const char *path)
{
    png_wctx *x;
    volatile oc_status st = OC_OK;
    int type;
    if (!img || !path || !img->data || img->height < 1 || img->width < 1)
        return oc_fail(OC_ERR_ARG, "oc_image_save_png: empty image or NULL path");
    switch (img->channels) {
    case 1: type = PNG_COLOR_TYPE_GRAY; break;
    case 3: type = PNG_COLOR_TYPE_RGB; break;
    case 4: type = PNG_COLOR_TYPE_RGB_ALPHA; break;
    default: return oc_fail(OC_ERR_ARG, "oc_image_save_png: %d channels", img->channels);
    }
    x = calloc(1, sizeof *x);
    if (!x)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    x->f = fopen(path, "wb");
    if (!x->f) {
        st = oc_fail(OC_ERR_IO, "create '%s': %s", path, strerror(errno));
        goto done;
    }
    x->rows = malloc(sizeof *x->rows * (size_t)img->height);
    x->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, x, png_werr, png_warn_fn);
    if (!x->rows || !x->png || !(x->info = png_create_info_struct(x->png))) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory for the PNG encoder");
        goto done;
    }
    if (setjmp(png_jmpbuf(x->png))) {
        st = oc_fail(OC_ERR_IO, "write '%s': %s", path, x->msg);
        goto done;
    }
    png_init_io(x->png, x->f);
    png_set_IHDR(x->png, x->info, (png_uint_32)img->width, (png_uint_32)img->height, 8, type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < img->height; y++)
        x->rows[y] = img->data + (size_t)y * img->width * img->channels;
    png_set_rows(x->png, x->info, x->rows);
    png_write_png(x->png, x->info, PNG_TRANSFORM_IDENTITY, NULL);
done:
    if (x->png)
        png_destroy_write_struct(&x->png, x->info ? &x->info : NULL);
    if (x->f && fclose(x->f) != 0 && st == OC_OK)
        st = oc_fail(OC_ERR_IO, "close '%s': %s", path, strerror(errno));
    free(x->rows);
    free(x);
    return st;
}
