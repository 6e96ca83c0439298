/* MD5 (RFC 1321), for verifying downloaded dataset archives against their published sums. */
#include "data.h"

#include <errno.h>
#include <string.h>

typedef struct {
    uint32_t a, b, c, d;
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
} md5_ctx;

static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
    0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
    0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
    0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
    0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
    0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391};
static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                          5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                          4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                          6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_block(md5_ctx *c, const uint8_t *p)
{
    uint32_t m[16], a = c->a, b = c->b, cc = c->c, d = c->d;
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & cc) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & cc);
            g = (5 * i + 1) & 15;
        } else if (i < 48) {
            f = b ^ cc ^ d;
            g = (3 * i + 5) & 15;
        } else {
            f = cc ^ (b | ~d);
            g = (7 * i) & 15;
        }
        f += a + K[i] + m[g];
        a = d;
        d = cc;
        cc = b;
        b += (f << R[i]) | (f >> (32 - R[i]));
    }
    c->a += a;
    c->b += b;
    c->c += cc;
    c->d += d;
}

static void md5_init(md5_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->a = 0x67452301;
    c->b = 0xefcdab89;
    c->c = 0x98badcfe;
    c->d = 0x10325476;
}

static void md5_update(md5_ctx *c, const uint8_t *p, size_t n)
{
    c->len += n;
    if (c->fill) {
        size_t k = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->buf + c->fill, p, k);
        c->fill += k;
        p += k;
        n -= k;
        if (c->fill < 64)
            return;
        md5_block(c, c->buf);
        c->fill = 0;
    }
    for (; n >= 64; n -= 64, p += 64)
        md5_block(c, p);
    memcpy(c->buf, p, n);
    c->fill = n;
}

static void md5_final(md5_ctx *c, uint8_t out[16])
{
    uint64_t bits = c->len * 8;
    uint8_t pad[72] = {0x80};
    size_t padn = c->fill < 56 ? 56 - c->fill : 120 - c->fill;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (8 * i));
    md5_update(c, pad, padn);
    md5_update(c, lenb, 8);
    for (int i = 0; i < 4; i++) {
        uint32_t v = i == 0 ? c->a : i == 1 ? c->b : i == 2 ? c->c : c->d;
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = (uint8_t)(v >> (8 * k));
    }
}

void oc_md5(const void *buf, size_t len, uint8_t digest[16])
{
    md5_ctx c;
    md5_init(&c);
    md5_update(&c, buf, len);
    md5_final(&c, digest);
}

oc_status oc_md5_file(const char *path, char hex[33])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t buf[1 << 16], d[16];
    md5_ctx c;
    size_t n;
    FILE *f;
    if (!path || !hex)
        return oc_fail(OC_ERR_ARG, "oc_md5_file: NULL argument");
    f = fopen(path, "rb");
    if (!f)
        return oc_fail(OC_ERR_IO, "open '%s': %s", path, strerror(errno));
    md5_init(&c);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        md5_update(&c, buf, n);
    if (ferror(f)) {
        fclose(f);
        return oc_fail(OC_ERR_IO, "read '%s': %s", path, strerror(errno));
    }
    fclose(f);
    md5_final(&c, d);
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[32] = 0;
    return OC_OK;
}
