/* Data augmentation from a short text spec (grammar and every op: docs/augment.md). Image ops
 * run on the uint8 image after it is fitted to the model's input size, in the order written;
 * cutout runs on the normalised floats (its zeros are the mean colour); mixup mixes whole
 * batches in the loader. All randomness comes from the oc_rng the caller passes. */
#include "data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    AUG_CROP = 0, AUG_FLIP, AUG_VFLIP, AUG_ROTATE, AUG_SCALE, AUG_COLOR, AUG_CUTOUT, AUG_MIXUP,
    AUG_ALTFLIP, AUG_NUM_OPS
} aug_type;

enum { PAD_ZERO = 0, PAD_REFLECT, PAD_EDGE };

typedef struct {
    aug_type type;
    float v[3]; /* parameters, meaning per op (see parse) */
    int mode;
} aug_op;

#define AUG_MAX_OPS 16

struct oc_augment {
    int n;
    aug_op ops[AUG_MAX_OPS];
    int has_cutout;
    aug_op cutout;
    float mixup_alpha;
};

static const char *const op_names[AUG_NUM_OPS] = {"crop",  "flip",  "vflip",  "rotate", "scale",
                                                  "color", "cutout", "mixup", "altflip"};

/* Stream of the altflip's epoch-0 coin (one per dataset sample, independent of the epoch). */
#define ALTFLIP_STREAM 0xa17f11b5ull

static int parse_num(const char *s, float lo, float hi, float *out)
{
    char *end;
    double v;
    if (!*s)
        return 0;
    v = strtod(s, &end);
    if (*end || !(v >= (double)lo && v <= (double)hi))
        return 0;
    *out = (float)v;
    return 1;
}

static oc_status bad_value(const char *op, const char *key, const char *val, const char *want)
{
    return oc_fail(OC_ERR_ARG, "augment: %s: bad value '%s' for %s (expected %s)", op, val, key,
                   want);
}

/* Applies one "key=value" or bare "value" parameter to op. */
static oc_status parse_param(aug_op *op, const char *name, char *param)
{
    char *eq = strchr(param, '=');
    const char *key = eq ? param : "";
    char *val = eq ? eq + 1 : param;
    if (eq)
        *eq = 0;
    switch (op->type) {
    case AUG_CROP:
        if (!*key || !strcmp(key, "pad")) {
            if (!parse_num(val, 0, 1024, &op->v[0]) || op->v[0] != floorf(op->v[0]))
                return bad_value(name, "pad", val, "an integer 0..1024");
            return OC_OK;
        }
        if (!strcmp(key, "mode")) {
            if (!strcmp(val, "zero"))
                op->mode = PAD_ZERO;
            else if (!strcmp(val, "reflect"))
                op->mode = PAD_REFLECT;
            else if (!strcmp(val, "edge"))
                op->mode = PAD_EDGE;
            else
                return bad_value(name, "mode", val, "zero, reflect or edge");
            return OC_OK;
        }
        break;
    case AUG_FLIP:
    case AUG_VFLIP:
        if (!*key || !strcmp(key, "p")) {
            if (!parse_num(val, 0, 1, &op->v[0]))
                return bad_value(name, "p", val, "a probability 0..1");
            return OC_OK;
        }
        break;
    case AUG_ROTATE:
        if (!*key || !strcmp(key, "deg")) {
            if (!parse_num(val, 0, 180, &op->v[0]))
                return bad_value(name, "deg", val, "degrees 0..180");
            return OC_OK;
        }
        break;
    case AUG_SCALE:
        if (!*key || !strcmp(key, "range")) {
            char *dash = strchr(val + 1, '-');
            if (dash) {
                *dash = 0;
                if (!parse_num(val, 0.1f, 10, &op->v[0]) || !parse_num(dash + 1, 0.1f, 10, &op->v[1]))
                    return bad_value(name, "range", val, "LO-HI within 0.1..10");
            } else {
                if (!parse_num(val, 0.1f, 10, &op->v[0]))
                    return bad_value(name, "range", val, "LO-HI within 0.1..10");
                op->v[1] = op->v[0];
            }
            if (op->v[0] > op->v[1])
                return oc_fail(OC_ERR_ARG, "augment: scale: LO %g is above HI %g",
                               (double)op->v[0], (double)op->v[1]);
            return OC_OK;
        }
        break;
    case AUG_COLOR: {
        int which = !*key ? 3 : !strcmp(key, "brightness") ? 0 : !strcmp(key, "contrast") ? 1
                              : !strcmp(key, "saturation") ? 2 : -1;
        float v;
        if (which < 0)
            break;
        if (!parse_num(val, 0, 1, &v))
            return bad_value(name, *key ? key : "strength", val, "a strength 0..1");
        for (int i = 0; i < 3; i++)
            if (which == 3 || which == i)
                op->v[i] = v;
        return OC_OK;
    }
    case AUG_CUTOUT:
        if (!*key || !strcmp(key, "size")) {
            if (!parse_num(val, 1, 4096, &op->v[0]) || op->v[0] != floorf(op->v[0]))
                return bad_value(name, "size", val, "an integer 1..4096");
            return OC_OK;
        }
        if (!strcmp(key, "p")) {
            if (!parse_num(val, 0, 1, &op->v[1]))
                return bad_value(name, "p", val, "a probability 0..1");
            return OC_OK;
        }
        break;
    case AUG_MIXUP:
        if (!*key || !strcmp(key, "alpha")) {
            if (!parse_num(val, 0.001f, 100, &op->v[0]))
                return bad_value(name, "alpha", val, "a Beta parameter 0.001..100");
            return OC_OK;
        }
        break;
    default:
        break;
    }
    return oc_fail(OC_ERR_ARG, "augment: %s has no parameter '%s'%s", name, *key ? key : val,
                   *key ? "" : " (bare value not accepted)");
}

static void set_defaults(aug_op *op)
{
    memset(op->v, 0, sizeof op->v);
    op->mode = PAD_ZERO;
    switch (op->type) {
    case AUG_CROP: op->v[0] = 4; break;
    case AUG_FLIP:
    case AUG_VFLIP: op->v[0] = 0.5f; break;
    case AUG_ROTATE: op->v[0] = 15; break;
    case AUG_SCALE: op->v[0] = 0.9f; op->v[1] = 1.1f; break;
    case AUG_COLOR: op->v[0] = op->v[1] = op->v[2] = 0.2f; break;
    case AUG_CUTOUT: op->v[0] = 8; op->v[1] = 1; break;
    case AUG_MIXUP: op->v[0] = 0.2f; break;
    default: break;
    }
}

oc_status oc_augment_parse(const char *spec, oc_augment **out)
{
    oc_augment *a;
    char *copy, *save = NULL, *item;
    oc_status st = OC_OK;
    unsigned seen = 0;
    if (!out)
        return oc_fail(OC_ERR_ARG, "oc_augment_parse: out is NULL");
    *out = NULL;
    a = calloc(1, sizeof *a);
    if (!a)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    if (!spec || !*spec || !strcmp(spec, "none")) {
        *out = a;
        return OC_OK;
    }
    copy = strdup(spec);
    if (!copy) {
        free(a);
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    }
    save = copy;
    while (st == OC_OK && (item = strsep(&save, ",")) != NULL) {
        char *psave = NULL, *name, *param;
        aug_op op;
        int t;
        while (*item == ' ')
            item++;
        for (char *e = item + strlen(item); e > item && e[-1] == ' ';)
            *--e = 0;
        name = strtok_r(item, ":", &psave);
        if (!name || item[0] == ':') {
            st = oc_fail(OC_ERR_ARG, "augment: empty op in '%s'", spec);
            break;
        }
        for (t = 0; t < AUG_NUM_OPS; t++)
            if (!strcmp(name, op_names[t]))
                break;
        if (t == AUG_NUM_OPS) {
            st = oc_fail(OC_ERR_ARG,
                         "augment: unknown op '%s' (known: crop, flip, altflip, vflip, rotate, "
                         "scale, color, cutout, mixup)",
                         name);
            break;
        }
        if (seen & (1u << t)) {
            st = oc_fail(OC_ERR_ARG, "augment: op '%s' appears twice", name);
            break;
        }
        seen |= 1u << t;
        op.type = (aug_type)t;
        set_defaults(&op);
        while (st == OC_OK && (param = strtok_r(NULL, ":", &psave)) != NULL)
            st = parse_param(&op, name, param);
        if (st != OC_OK)
            break;
        if (op.type == AUG_MIXUP) {
            a->mixup_alpha = op.v[0];
        } else if (op.type == AUG_CUTOUT) {
            a->has_cutout = 1;
            a->cutout = op;
        } else {
            a->ops[a->n++] = op;
        }
    }
    free(copy);
    if (st != OC_OK) {
        free(a);
        return st;
    }
    *out = a;
    return OC_OK;
}

void oc_augment_free(oc_augment *a)
{
    free(a);
}

float oc_augment_mixup_alpha(const oc_augment *a)
{
    return a ? a->mixup_alpha : 0.0f;
}

void oc_augment_rng(oc_rng *r, uint64_t seed, int64_t epoch, int64_t index)
{
    /* index < 2^40 and epoch < 2^23 map to distinct streams */
    oc_rng_seed(r, seed, ((uint64_t)epoch << 40) ^ (uint64_t)index);
}

/* ---------------------------------------------------------------- ops */

static int reflect_index(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n) {
        if (i < 0)
            i = -i;
        if (i >= n)
            i = 2 * (n - 1) - i;
    }
    return i;
}

static void op_crop(const aug_op *op, const oc_image *src, oc_image *dst, oc_rng *r)
{
    int pad = (int)op->v[0], H = src->height, W = src->width, C = src->channels;
    int dy = (int)oc_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
    int dx = (int)oc_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
    for (int y = 0; y < H; y++) {
        uint8_t *d = dst->data + (size_t)y * W * C;
        int sy = y + dy;
        if (sy < 0 || sy >= H) {
            if (op->mode == PAD_ZERO) {
                memset(d, 0, (size_t)W * C);
                continue;
            }
            sy = op->mode == PAD_REFLECT ? reflect_index(sy, H) : (sy < 0 ? 0 : H - 1);
        }
        for (int x = 0; x < W; x++) {
            int sx = x + dx;
            if (sx < 0 || sx >= W) {
                if (op->mode == PAD_ZERO) {
                    memset(d + (size_t)x * C, 0, (size_t)C);
                    continue;
                }
                sx = op->mode == PAD_REFLECT ? reflect_index(sx, W) : (sx < 0 ? 0 : W - 1);
            }
            memcpy(d + (size_t)x * C, src->data + ((size_t)sy * W + sx) * C, (size_t)C);
        }
    }
}

static void flip_h(oc_image *img)
{
    int W = img->width, C = img->channels;
    for (int y = 0; y < img->height; y++) {
        uint8_t *row = img->data + (size_t)y * W * C;
        for (int x = 0; x < W / 2; x++)
            for (int c = 0; c < C; c++) {
                uint8_t t = row[x * C + c];
                row[x * C + c] = row[(W - 1 - x) * C + c];
                row[(W - 1 - x) * C + c] = t;
            }
    }
}

static void flip_v(oc_image *img)
{
    size_t row = (size_t)img->width * img->channels;
    for (int y = 0; y < img->height / 2; y++) {
        uint8_t *a = img->data + (size_t)y * row, *b = img->data + (size_t)(img->height - 1 - y) * row;
        for (size_t i = 0; i < row; i++) {
            uint8_t t = a[i];
            a[i] = b[i];
            b[i] = t;
        }
    }
}

/* dst(p) = src(M (p - c) + c) with bilinear sampling, zero outside; pixel centres at +0.5. */
static void warp(const oc_image *src, oc_image *dst, float m00, float m01, float m10, float m11)
{
    int H = src->height, W = src->width, C = src->channels;
    float cx = 0.5f * (float)W, cy = 0.5f * (float)H;
    for (int y = 0; y < H; y++) {
        float py = (float)y + 0.5f - cy;
        for (int x = 0; x < W; x++) {
            float px = (float)x + 0.5f - cx;
            float sx = m00 * px + m01 * py + cx - 0.5f;
            float sy = m10 * px + m11 * py + cy - 0.5f;
            int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
            float fx = sx - (float)x0, fy = sy - (float)y0;
            uint8_t *d = dst->data + ((size_t)y * W + x) * C;
            for (int c = 0; c < C; c++) {
                float acc = 0;
                for (int k = 0; k < 4; k++) {
                    int xx = x0 + (k & 1), yy = y0 + (k >> 1);
                    float w = ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy);
                    if (xx >= 0 && xx < W && yy >= 0 && yy < H && w != 0.0f)
                        acc += w * (float)src->data[((size_t)yy * W + xx) * C + c];
                }
                acc = floorf(acc + 0.5f);
                d[c] = (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
            }
        }
    }
}

static float uniform_in(oc_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * oc_rng_uniform(r);
}

static uint8_t clamp_u8(float v)
{
    v = floorf(v + 0.5f);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Brightness, contrast, saturation in that order, factors uniform in [1-s, 1+s] (torchvision
 * ColorJitter's definitions: contrast blends with the mean grey level, saturation with the
 * pixel's own grey value). */
static void op_color(const aug_op *op, oc_image *img, oc_rng *r)
{
    int C = img->channels;
    size_t n = (size_t)img->height * img->width;
    float fb = uniform_in(r, 1 - op->v[0], 1 + op->v[0]);
    float fc = uniform_in(r, 1 - op->v[1], 1 + op->v[1]);
    float fs = uniform_in(r, 1 - op->v[2], 1 + op->v[2]);
    double mean = 0;
    int cc = C >= 3 ? 3 : 1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = img->data + i * C;
        mean += cc == 3 ? 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] : p[0];
    }
    mean = mean / (double)n * (double)fb;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = img->data + i * C;
        float v[3], g;
        for (int c = 0; c < cc; c++) {
            v[c] = (float)p[c] * fb;
            v[c] = v[c] > 255 ? 255 : v[c];
            v[c] = ((v[c] - (float)mean) * fc + (float)mean);
            v[c] = v[c] < 0 ? 0 : v[c] > 255 ? 255 : v[c];
        }
        if (cc == 3) {
            g = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
            for (int c = 0; c < 3; c++)
                v[c] = g + (v[c] - g) * fs;
        }
        for (int c = 0; c < cc; c++)
            p[c] = clamp_u8(v[c]);
    }
}

static void op_cutout(const aug_op *op, const oc_preprocess *pp, float *out, oc_rng *r)
{
    int H = pp->height, W = pp->width, C = pp->channels, s = (int)op->v[0];
    int cy, cx, y0, y1, x0, x1;
    if (oc_rng_uniform(r) >= op->v[1])
        return;
    /* DeVries & Taylor 2017: the centre is anywhere in the image, the square is clipped */
    cy = (int)oc_rng_below(r, (uint64_t)H);
    cx = (int)oc_rng_below(r, (uint64_t)W);
    y0 = cy - s / 2 < 0 ? 0 : cy - s / 2;
    x0 = cx - s / 2 < 0 ? 0 : cx - s / 2;
    y1 = cy - s / 2 + s > H ? H : cy - s / 2 + s;
    x1 = cx - s / 2 + s > W ? W : cx - s / 2 + s;
    for (int y = y0; y < y1; y++)
        memset(out + ((size_t)y * W + x0) * C, 0, sizeof(float) * (size_t)(x1 - x0) * C);
}

/* alt_flip: whether altflip mirrors this sample in this epoch, or -1 (unknown epoch: a coin
 * from rng). */
static oc_status sample(const oc_augment *a, const oc_image *img, const oc_preprocess *pp,
                        oc_rng *rng, int alt_flip, oc_image scratch[2], float *out)
{
    oc_status st;
    int cur = 0;
    if (!img || !pp || !scratch || !out || (a && (a->n || a->has_cutout) && !rng))
        return oc_fail(OC_ERR_ARG, "oc_augment_sample: NULL argument");
    if ((st = oc_image_fit(img, pp, &scratch[0])) != OC_OK)
        return st;
    for (int i = 0; a && i < a->n; i++) {
        const aug_op *op = &a->ops[i];
        oc_image *s = &scratch[cur], *d = &scratch[1 - cur];
        switch (op->type) {
        case AUG_CROP:
            if (op->v[0] == 0)
                break;
            if ((st = image_reserve(d, s->height, s->width, s->channels)) != OC_OK)
                return st;
            op_crop(op, s, d, rng);
            cur = 1 - cur;
            break;
        case AUG_FLIP:
            if (oc_rng_uniform(rng) < op->v[0])
                flip_h(s);
            break;
        case AUG_VFLIP:
            if (oc_rng_uniform(rng) < op->v[0])
                flip_v(s);
            break;
        case AUG_ALTFLIP:
            if (alt_flip < 0 ? oc_rng_uniform(rng) < 0.5f : alt_flip)
                flip_h(s);
            break;
        case AUG_ROTATE:
        case AUG_SCALE: {
            float m00, m01, m10, m11;
            if (op->type == AUG_ROTATE) {
                float t = uniform_in(rng, -op->v[0], op->v[0]) * (float)(M_PI / 180.0);
                m00 = cosf(t);
                m01 = -sinf(t);
                m10 = sinf(t);
                m11 = cosf(t);
            } else {
                float f = 1.0f / uniform_in(rng, op->v[0], op->v[1]);
                m00 = m11 = f;
                m01 = m10 = 0;
            }
            if ((st = image_reserve(d, s->height, s->width, s->channels)) != OC_OK)
                return st;
            warp(s, d, m00, m01, m10, m11);
            cur = 1 - cur;
            break;
        }
        case AUG_COLOR:
            op_color(op, s, rng);
            break;
        default:
            break;
        }
    }
    image_normalize(&scratch[cur], pp, out);
    if (a && a->has_cutout)
        op_cutout(&a->cutout, pp, out, rng);
    return OC_OK;
}

oc_status oc_augment_sample(const oc_augment *a, const oc_image *img, const oc_preprocess *pp,
                            oc_rng *rng, oc_image scratch[2], float *out)
{
    return sample(a, img, pp, rng, -1, scratch, out);
}

/* Alternating flip (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds", section 3.6): a fair coin
 * per sample decides epoch 0; every later epoch mirrors exactly the samples the previous one
 * did not, so each pair of epochs sees both orientations of every image. */
oc_status oc_augment_sample_at(const oc_augment *a, const oc_image *img, const oc_preprocess *pp,
                               uint64_t seed, int64_t epoch, int64_t index, oc_image scratch[2],
                               float *out)
{
    oc_rng r, coin;
    int alt;
    oc_augment_rng(&r, seed, epoch, index);
    oc_rng_seed(&coin, seed ^ ALTFLIP_STREAM, (uint64_t)index);
    alt = (oc_rng_uniform(&coin) < 0.5f) ^ (int)(epoch & 1);
    return sample(a, img, pp, &r, alt, scratch, out);
}

/* Gamma(k, 1) by Marsaglia & Tsang (2000); k < 1 through Gamma(k+1) * U^(1/k). */
static double gamma_sample(oc_rng *r, double k)
{
    double boost = 1.0, d, c;
    if (k < 1) {
        double u = oc_rng_uniform(r);
        boost = pow(u > 1e-12 ? u : 1e-12, 1.0 / k);
        k += 1;
    }
    d = k - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = oc_rng_normal(r), v = 1 + c * x, u;
        if (v <= 0)
            continue;
        v = v * v * v;
        u = oc_rng_uniform(r);
        if (u < 1 - 0.0331 * x * x * x * x)
            return d * v * boost;
        if (u > 0 && log(u) < 0.5 * x * x + d * (1 - v + log(v)))
            return d * v * boost;
    }
}

void augment_mixup(float alpha, oc_rng *r, int n, int K, size_t len, float *x, float *tmp,
                   int *perm, const int32_t *labels, float *targets)
{
    double ga = gamma_sample(r, (double)alpha), gb = gamma_sample(r, (double)alpha);
    float lam = ga + gb > 0 ? (float)(ga / (ga + gb)) : 0.5f;
    memcpy(tmp, x, sizeof(float) * len * (size_t)n);
    memset(targets, 0, sizeof(float) * (size_t)n * K);
    /* Zhang et al. 2018: one lambda ~ Beta(alpha, alpha) per batch; each sample is mixed with
     * its partner in a seeded random permutation of the batch */
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)oc_rng_below(r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < n; i++) {
        int j = perm[i];
        const float *xj = tmp + (size_t)j * len;
        float *xi = x + (size_t)i * len;
        for (size_t q = 0; q < len; q++)
            xi[q] = lam * xi[q] + (1 - lam) * xj[q];
        targets[(size_t)i * K + labels[i]] += lam;
        targets[(size_t)i * K + labels[j]] += 1 - lam;
    }
}
