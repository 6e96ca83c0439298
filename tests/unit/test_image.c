/* data: image decoding (JPEG, PNG variants, WebP), conversions, the decompression-bomb guard,
 * corrupt inputs, resizing and the model-input transform. */
#include "test.h"
#include "ocelot.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <webp/encode.h>
#include <zlib.h>

#define PHOTOS "../shared/data/photos"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Encodes a PNG in memory with libpng: rows of `channels` samples at `depth` bits (16-bit
 * samples given big-endian as libpng stores them). */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, n);
    m->n += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

static membuf encode_png(int w, int h, int color, int depth, int interlace, const uint8_t *data,
                         const png_color *palette, int npal, const uint8_t *trns, int ntrns)
{
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int ch = color == PNG_COLOR_TYPE_GRAY ? 1 : color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
           : color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGBA ? 4 : 1;
    size_t stride = (size_t)w * ch * (depth == 16 ? 2 : 1);
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    if (setjmp(png_jmpbuf(png))) {
        T_CHECK(0, "libpng failed while writing the test image");
        png_destroy_write_struct(&png, &info);
        free(rows);
        return m;
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npal);
    if (trns)
        png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)data + (size_t)y * stride;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return m;
}

static void png_rgb_roundtrip_and_interlace(void)
{
    enum { W = 7, H = 5 };
    uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        px[i] = (uint8_t)(i * 37 + 11);
    for (int il = 0; il < 2; il++) {
        membuf m = encode_png(W, H, PNG_COLOR_TYPE_RGB, 8, il ? PNG_INTERLACE_ADAM7 : 0, px,
                              NULL, 0, NULL, 0);
        oc_image img = {0};
        int w, h, c;
        oc_image_format f;
        T_CHECK(oc_image_probe(m.p, m.n, &f, &w, &h, &c) == OC_OK && f == OC_IMAGE_PNG &&
                    w == W && h == H && c == 3,
                "probe: %s", oc_last_error());
        T_CHECK(oc_image_decode(m.p, m.n, NULL, &img) == OC_OK, "decode: %s", oc_last_error());
        T_CHECK(img.width == W && img.height == H && img.channels == 3, "shape %dx%dx%d",
                img.width, img.height, img.channels);
        T_CHECK(img.data && !memcmp(img.data, px, sizeof px), "pixels differ (interlace %d)", il);
        oc_image_release(&img);
        free(m.p);
    }
}

static void png_16bit_palette_gray_alpha(void)
{
    oc_image img = {0};
    oc_decode_opts o = {0};
    /* 16-bit RGB: strip16 keeps the high byte */
    uint8_t px16[2 * 2 * 3 * 2];
    for (int i = 0; i < 12; i++) {
        px16[2 * i] = (uint8_t)(i * 20);
        px16[2 * i + 1] = 0xAB;
    }
    membuf m = encode_png(2, 2, PNG_COLOR_TYPE_RGB, 16, 0, px16, NULL, 0, NULL, 0);
    T_CHECK(oc_image_decode(m.p, m.n, NULL, &img) == OC_OK, "16-bit: %s", oc_last_error());
    for (int i = 0; i < 12 && img.data; i++)
        T_CHECK(img.data[i] == i * 20, "16-bit sample %d = %d, want %d", i, img.data[i], i * 20);
    free(m.p);
    /* palette with transparency: index 1 fully transparent red -> white on composite */
    {
        png_color pal[2] = {{10, 20, 30}, {255, 0, 0}};
        uint8_t trns[2] = {255, 0};
        uint8_t idx[4] = {0, 1, 1, 0};
        m = encode_png(2, 2, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, pal, 2, trns, 2);
        o.channels = 3;
        T_CHECK(oc_image_decode(m.p, m.n, &o, &img) == OC_OK, "palette: %s", oc_last_error());
        T_CHECK(img.data[0] == 10 && img.data[1] == 20 && img.data[2] == 30, "palette entry 0");
        T_CHECK(img.data[3] == 255 && img.data[4] == 255 && img.data[5] == 255,
                "transparent pixel not white: %d,%d,%d", img.data[3], img.data[4], img.data[5]);
        o.alpha = OC_ALPHA_DROP;
        T_CHECK(oc_image_decode(m.p, m.n, &o, &img) == OC_OK, "palette drop");
        T_CHECK(img.data[3] == 255 && img.data[4] == 0 && img.data[5] == 0, "drop kept colour");
        o.channels = 0;
        T_CHECK(oc_image_decode(m.p, m.n, &o, &img) == OC_OK && img.channels == 4 &&
                    img.data[7] == 0,
                "native palette+tRNS should give RGBA with alpha 0");
        free(m.p);
    }
    /* gray+alpha, half transparent black over white -> 128 (rounded 127.5) */
    {
        uint8_t ga[2] = {0, 128};
        m = encode_png(1, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, NULL, 0, NULL, 0);
        o.channels = 1;
        o.alpha = OC_ALPHA_WHITE;
        T_CHECK(oc_image_decode(m.p, m.n, &o, &img) == OC_OK, "gray+alpha: %s", oc_last_error());
        T_CHECK(img.channels == 1 && img.data[0] == 127, "composite %d, want 127", img.data[0]);
        free(m.p);
    }
    /* 1-bit gray expands to 0 / 255 */
    {
        uint8_t bits[1] = {0xA0}; /* 1 0 1 0 */
        m = encode_png(4, 1, PNG_COLOR_TYPE_GRAY, 1, 0, bits, NULL, 0, NULL, 0);
        o.channels = 0;
        T_CHECK(oc_image_decode(m.p, m.n, &o, &img) == OC_OK, "1-bit: %s", oc_last_error());
        T_CHECK(img.channels == 1 && img.data[0] == 255 && img.data[1] == 0 &&
                    img.data[2] == 255 && img.data[3] == 0,
                "1-bit values %d %d %d %d", img.data[0], img.data[1], img.data[2], img.data[3]);
        free(m.p);
    }
    oc_image_release(&img);
}

static void webp_lossless_roundtrip(void)
{
    enum { W = 6, H = 4 };
    uint8_t px[W * H * 4], *enc = NULL;
    oc_image img = {0};
    size_t n;
    for (int i = 0; i < W * H * 4; i++)
        px[i] = (uint8_t)(i * 13 + 7);
    for (int i = 0; i < W * H; i++)
        px[4 * i + 3] = 255;
    n = WebPEncodeLosslessRGBA(px, W, H, W * 4, &enc);
    T_CHECK(n > 0, "WebP encoder failed");
    T_CHECK(oc_image_detect(enc, n) == OC_IMAGE_WEBP, "not detected as WebP");
    T_CHECK(oc_image_decode(enc, n, &(oc_decode_opts){.channels = 4}, &img) == OC_OK,
            "decode: %s", oc_last_error());
    T_CHECK(img.width == W && img.height == H && img.data && !memcmp(img.data, px, sizeof px),
            "WebP pixels differ");
    T_CHECK(oc_image_decode(enc, n / 2, NULL, &img) == OC_ERR_FORMAT, "truncated WebP accepted");
    T_CHECK(strstr(oc_last_error(), "WebP") != NULL, "message: %s", oc_last_error());
    WebPFree(enc);
    oc_image_release(&img);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static void decodes_every_shared_photo(void)
{
    DIR *d = opendir(PHOTOS);
    struct dirent *e;
    int n = 0, gray = 0, rgba = 0, tiny = 0, big = 0;
    double t0 = now_s();
    T_CHECK(d != NULL, "cannot open %s", PHOTOS);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        oc_image img = {0}, rgb = {0};
        int w, h, c;
        size_t len;
        uint8_t *buf;
        if (!ends_with(e->d_name, ".jpg") && !ends_with(e->d_name, ".jpeg") &&
            !ends_with(e->d_name, ".png"))
            continue;
        snprintf(path, sizeof path, "%s/%s", PHOTOS, e->d_name);
        buf = slurp(path, &len);
        T_CHECK(buf && oc_image_probe(buf, len, NULL, &w, &h, &c) == OC_OK, "probe %s: %s", path,
                oc_last_error());
        T_CHECK(oc_image_load(path, NULL, &img) == OC_OK, "%s: %s", path, oc_last_error());
        T_CHECK(img.width == w && img.height == h, "%s: probe %dx%d, decode %dx%d", path, w, h,
                img.width, img.height);
        T_CHECK(oc_image_load(path, &(oc_decode_opts){.channels = 3}, &rgb) == OC_OK &&
                    rgb.channels == 3,
                "%s as RGB: %s", path, oc_last_error());
        if (img.channels == 1) {
            gray++;
            for (size_t i = 0; i < (size_t)w * h && rgb.data; i++)
                if (rgb.data[3 * i] != img.data[i] || rgb.data[3 * i + 1] != img.data[i] ||
                    rgb.data[3 * i + 2] != img.data[i]) {
                    T_CHECK(0, "%s: gray->RGB does not replicate at %zu", path, i);
                    break;
                }
        }
        if (img.channels == 4) {
            rgba++;
            /* composite on white, by the formula */
            for (size_t i = 0; i < (size_t)w * h && rgb.data; i++) {
                unsigned a = img.data[4 * i + 3], v = img.data[4 * i];
                unsigned want = (v * a + 255 * (255 - a) + 127) / 255;
                if (rgb.data[3 * i] != want) {
                    T_CHECK(0, "%s: alpha composite at %zu: %u want %u", path, i,
                            rgb.data[3 * i], want);
                    break;
                }
            }
        }
        if (w == 1 && h == 1)
            tiny++;
        if (w == 4638 && h == 3072)
            big++;
        if (img.channels == 3) {
            /* RGB -> gray is BT.601 luma */
            oc_image g = {0};
            T_CHECK(oc_image_load(path, &(oc_decode_opts){.channels = 1}, &g) == OC_OK,
                    "%s gray: %s", path, oc_last_error());
            if (ends_with(path, ".png") && g.data) {
                for (size_t i = 0; i < (size_t)w * h; i++) {
                    const uint8_t *p = img.data + 3 * i;
                    double y = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
                    if (fabs(y - g.data[i]) > 0.51) {
                        T_CHECK(0, "%s: luma at %zu: %d want %.2f", path, i, g.data[i], y);
                        break;
                    }
                }
            }
            oc_image_release(&g);
        }
        free(buf);
        oc_image_release(&img);
        oc_image_release(&rgb);
        n++;
    }
    closedir(d);
    T_CHECK(n >= 18, "decoded only %d photos", n);
    T_CHECK(gray >= 1 && rgba >= 1 && tiny == 1 && big == 1,
            "expected a gray, an RGBA, a 1x1 and the 4638x3072 photo (got %d %d %d %d)", gray,
            rgba, tiny, big);
    oc_test_note("decoded %d photos (%d gray, %d RGBA) in %.2f s", n, gray, rgba,
                 now_s() - t0);
}

static void corrupt_images_are_errors(void)
{
    size_t len;
    uint8_t *jpg = slurp(PHOTOS "/cat_manasa.jpeg", &len), *png;
    oc_image img = {0};
    oc_status st;
    T_CHECK(jpg != NULL, "missing test photo");
    if (!jpg)
        return;
    st = oc_image_decode(jpg, len / 2, NULL, &img);
    T_CHECK(st == OC_ERR_FORMAT, "truncated JPEG gave %s", oc_status_name(st));
    T_CHECK(strstr(oc_last_error(), "JPEG") != NULL, "message: %s", oc_last_error());
    st = oc_image_decode(jpg, 200, NULL, &img);
    T_CHECK(st == OC_ERR_FORMAT, "JPEG cut in its header gave %s", oc_status_name(st));
    free(jpg);
    png = slurp(PHOTOS "/cat_chelsea.png", &len);
    if (png) {
        st = oc_image_decode(png, len / 3, NULL, &img);
        T_CHECK(st == OC_ERR_FORMAT, "truncated PNG gave %s", oc_status_name(st));
        T_CHECK(strstr(oc_last_error(), "PNG") != NULL, "message: %s", oc_last_error());
        png[len / 2] ^= 0x55; /* corrupt compressed data: CRC or inflate error */
        st = oc_image_decode(png, len, NULL, &img);
        T_CHECK(st == OC_ERR_FORMAT, "corrupted PNG gave %s", oc_status_name(st));
        free(png);
    }
    {
        const char *text = "this is not an image, just text named photo.jpg\n";
        st = oc_image_decode(text, strlen(text), NULL, &img);
        T_CHECK(st == OC_ERR_FORMAT && strstr(oc_last_error(), "unknown image format"),
                "text: %s %s", oc_status_name(st), oc_last_error());
        st = oc_image_decode("", 0, NULL, &img);
        T_CHECK(st == OC_ERR_FORMAT && strstr(oc_last_error(), "empty"), "empty: %s",
                oc_last_error());
        st = oc_image_load("/nonexistent/x.png", NULL, &img);
        T_CHECK(st == OC_ERR_IO, "missing file gave %s", oc_status_name(st));
    }
    oc_image_release(&img);
}

/* A PNG whose IHDR claims 100000 x 100000 and which then ends: the guard must reject it from
 * the header alone. A decoder that allocated or decoded first would fail differently
 * ("truncated") or run out of memory. */
static void bomb_guard_rejects_before_allocating(void)
{
    uint8_t png[8 + 25];
    uint8_t ihdr[17] = {'I', 'H', 'D', 'R', 0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 2, 0, 0, 0};
    uLong crc = crc32(0, ihdr, 17);
    oc_image img = {0};
    oc_status st;
    size_t len;
    uint8_t *big;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    memcpy(png + 8, "\0\0\0\x0d", 4);
    memcpy(png + 12, ihdr, 17);
    png[29] = (uint8_t)(crc >> 24);
    png[30] = (uint8_t)(crc >> 16);
    png[31] = (uint8_t)(crc >> 8);
    png[32] = (uint8_t)crc;
    st = oc_image_decode(png, sizeof png, NULL, &img);
    T_CHECK(st == OC_ERR_FORMAT, "bomb gave %s", oc_status_name(st));
    T_CHECK(strstr(oc_last_error(), "pixel limit") && strstr(oc_last_error(), "100000x100000"),
            "message: %s", oc_last_error());
    T_CHECK(img.data == NULL, "pixels were allocated for the bomb");
    /* the limit is configurable: the 14 MP photo passes by default, fails at 10 MP */
    big = slurp(PHOTOS "/awkward_large_4638x3072_horses_upscaled.jpg", &len);
    if (big) {
        st = oc_image_decode(big, len, &(oc_decode_opts){.max_pixels = 10000000}, &img);
        T_CHECK(st == OC_ERR_FORMAT && strstr(oc_last_error(), "pixel limit"),
                "10 MP limit: %s", oc_last_error());
        T_CHECK(img.data == NULL, "allocated before the limit check");
        free(big);
    }
    oc_image_release(&img);
}

static void resize_box_exact_and_bilinear_constant(void)
{
    oc_image src = {0}, dst = {0};
    /* 2x box downsample of a known pattern: each output is the rounded mean of a 2x2 block */
    oc_image_alloc(&src, 6, 8, 3);
    for (int i = 0; i < 6 * 8 * 3; i++)
        src.data[i] = (uint8_t)((i * 7919) % 256);
    T_CHECK(oc_image_resize(&src, 3, 4, &dst) == OC_OK, "resize: %s", oc_last_error());
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0;
                for (int k = 0; k < 4; k++)
                    s += src.data[((2 * y + k / 2) * 8 + 2 * x + k % 2) * 3 + c];
                int want = (2 * s + 4) / 8; /* round half up of s/4 */
                T_CHECK(dst.data[(y * 4 + x) * 3 + c] == want, "box (%d,%d,%d) = %d want %d", y,
                        x, c, dst.data[(y * 4 + x) * 3 + c], want);
            }
    /* 3x (odd factor) of a constant and bilinear 4x of a constant stay constant */
    memset(src.data, 173, 6 * 8 * 3);
    T_CHECK(oc_image_resize(&src, 2, 3, &dst) == OC_OK, "shrink");
    for (int i = 0; i < 2 * 3 * 3; i++)
        T_CHECK(dst.data[i] == 173, "area of constant at %d: %d", i, dst.data[i]);
    T_CHECK(oc_image_resize(&src, 24, 29, &dst) == OC_OK, "enlarge");
    for (int i = 0; i < 24 * 29 * 3; i++)
        if (dst.data[i] != 173) {
            T_CHECK(0, "bilinear of constant at %d: %d", i, dst.data[i]);
            break;
        }
    /* bilinear 2x of a 2-pixel ramp (align_corners=False): 10 20 -> 10 12.5 17.5 20 */
    oc_image_alloc(&src, 1, 2, 1);
    src.data[0] = 10;
    src.data[1] = 20;
    T_CHECK(oc_image_resize(&src, 1, 4, &dst) == OC_OK, "ramp");
    T_CHECK(dst.data[0] == 10 && dst.data[1] == 13 && dst.data[2] == 18 && dst.data[3] == 20,
            "ramp %d %d %d %d", dst.data[0], dst.data[1], dst.data[2], dst.data[3]);
    oc_image_release(&src);
    oc_image_release(&dst);
}

static void to_input_normalises_and_crops(void)
{
    oc_image src = {0};
    oc_preprocess pp = {.height = 2, .width = 2, .channels = 3,
                        .mean = {0.5f, 0.25f, 0.0f}, .std = {0.5f, 0.25f, 1.0f},
                        .resize = OC_RESIZE_CENTER_CROP};
    float out[12], want[12];
    /* 2 x 6 image: centre crop keeps columns 2..3 (the middle 2x2) */
    oc_image_alloc(&src, 2, 6, 3);
    for (int i = 0; i < 36; i++)
        src.data[i] = (uint8_t)(i * 7);
    T_CHECK(oc_image_to_input(&src, &pp, out) == OC_OK, "to_input: %s", oc_last_error());
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++) {
                float v = src.data[(y * 6 + x + 2) * 3 + c] / 255.0f;
                want[(y * 2 + x) * 3 + c] = (v - pp.mean[c]) / pp.std[c];
            }
    T_CLOSE("center-crop input", out, want, 12, 1e-6, 1e-5);
    /* stretch to 1x1 of a gray image requested as 1 channel */
    pp.resize = OC_RESIZE_STRETCH;
    pp.height = pp.width = 1;
    pp.channels = 1;
    pp.mean[0] = 0;
    pp.std[0] = 1;
    memset(src.data, 51, 36);
    T_CHECK(oc_image_to_input(&src, &pp, out) == OC_OK && fabsf(out[0] - 0.2f) < 1e-6f,
            "stretch gray: %g", (double)out[0]);
    pp.channels = 2;
    T_CHECK(oc_image_to_input(&src, &pp, out) == OC_ERR_ARG, "2 channels accepted");
    oc_image_release(&src);
}

int main(int argc, char **argv)
{
    static const oc_test_case cases[] = {
        {"png_rgb_roundtrip_and_interlace", png_rgb_roundtrip_and_interlace},
        {"png_16bit_palette_gray_alpha", png_16bit_palette_gray_alpha},
        {"webp_lossless_roundtrip", webp_lossless_roundtrip},
        {"decodes_every_shared_photo", decodes_every_shared_photo},
        {"corrupt_images_are_errors", corrupt_images_are_errors},
        {"bomb_guard_rejects_before_allocating", bomb_guard_rejects_before_allocating},
        {"resize_box_exact_and_bilinear_constant", resize_box_exact_and_bilinear_constant},
        {"to_input_normalises_and_crops", to_input_normalises_and_crops},
    };
    return oc_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
