/* A small streaming tar reader over plain, gzip (zlib) or xz (liblzma) files, so datasets are
 * read straight from their archives without unpacking to disk. Understands ustar names with a
 * prefix, GNU long names ('L') and pax 'path' records; only regular files are returned. */
#include "data.h"

#include <errno.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

enum { ZS_PLAIN, ZS_GZIP, ZS_XZ };

struct zstream {
    FILE *f;
    int kind;
    char path[512];
    uint8_t in[1 << 16];
    z_stream z;
    lzma_stream x;
    int eof_in, ended;
};

static oc_status zs_fill(zstream *s, const uint8_t **next, size_t *avail)
{
    size_t n;
    if (*avail || s->eof_in)
        return OC_OK;
    n = fread(s->in, 1, sizeof s->in, s->f);
    if (ferror(s->f))
        return oc_fail(OC_ERR_IO, "read '%s': %s", s->path, strerror(errno));
    if (n == 0)
        s->eof_in = 1;
    *next = s->in;
    *avail = n;
    return OC_OK;
}

oc_status zs_open(const char *path, zstream **out)
{
    zstream *s = calloc(1, sizeof *s);
    uint8_t magic[6] = {0};
    size_t n;
    *out = NULL;
    if (!s)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    snprintf(s->path, sizeof s->path, "%s", path);
    s->f = fopen(path, "rb");
    if (!s->f) {
        free(s);
        return oc_fail(OC_ERR_IO, "open '%s': %s", path, strerror(errno));
    }
    n = fread(magic, 1, 6, s->f);
    rewind(s->f);
    if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        s->kind = ZS_GZIP;
        if (inflateInit2(&s->z, 15 + 16) != Z_OK) {
            fclose(s->f);
            free(s);
            return oc_fail(OC_ERR_NOMEM, "zlib init failed");
        }
    } else if (n == 6 && !memcmp(magic, "\xFD" "7zXZ\0", 6)) {
        lzma_stream init = LZMA_STREAM_INIT;
        s->kind = ZS_XZ;
        s->x = init;
        /* Multi-block archives (xz -T0) decode on two threads: about 10 s of CPU for the
         * 140 MB CIFAR-10 archive. Single-block files fall back to one thread inside liblzma. */
        lzma_mt mt = {.flags = LZMA_CONCATENATED, .threads = 2, .timeout = 0,
                      .memlimit_threading = UINT64_C(1) << 30, .memlimit_stop = UINT64_MAX};
        if (lzma_stream_decoder_mt(&s->x, &mt) != LZMA_OK &&
            lzma_stream_decoder(&s->x, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
            fclose(s->f);
            free(s);
            return oc_fail(OC_ERR_NOMEM, "liblzma init failed");
        }
    } else {
        s->kind = ZS_PLAIN;
    }
    *out = s;
    return OC_OK;
}

oc_status zs_read(zstream *s, void *buf, size_t n, size_t *got)
{
    oc_status st;
    *got = 0;
    if (s->kind == ZS_PLAIN) {
        *got = fread(buf, 1, n, s->f);
        if (ferror(s->f))
            return oc_fail(OC_ERR_IO, "read '%s': %s", s->path, strerror(errno));
        return OC_OK;
    }
    while (*got < n && !s->ended) {
        if (s->kind == ZS_GZIP) {
            const uint8_t *next = s->z.next_in;
            size_t avail = s->z.avail_in;
            int rc;
            if ((st = zs_fill(s, &next, &avail)) != OC_OK)
                return st;
            if (!avail && s->eof_in)
                return oc_fail(OC_ERR_FORMAT, "'%s': truncated gzip stream", s->path);
            s->z.next_in = (Bytef *)next;
            s->z.avail_in = (uInt)avail;
            s->z.next_out = (Bytef *)buf + *got;
            s->z.avail_out = (uInt)(n - *got > (1u << 30) ? (1u << 30) : n - *got);
            {
                uInt before = s->z.avail_out;
                rc = inflate(&s->z, Z_NO_FLUSH);
                *got += before - s->z.avail_out;
            }
            if (rc == Z_STREAM_END) {
                /* another gzip member may follow */
                const uint8_t *nx = s->z.next_in;
                size_t av = s->z.avail_in;
                if ((st = zs_fill(s, &nx, &av)) != OC_OK)
                    return st;
                if (!av) {
                    s->ended = 1;
                } else {
                    inflateReset(&s->z);
                    s->z.next_in = (Bytef *)nx;
                    s->z.avail_in = (uInt)av;
                }
            } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
                return oc_fail(OC_ERR_FORMAT, "'%s': corrupt gzip data (%s)", s->path,
                               s->z.msg ? s->z.msg : "inflate failed");
            }
        } else {
            const uint8_t *next = s->x.next_in;
            size_t avail = s->x.avail_in;
            lzma_ret rc;
            if ((st = zs_fill(s, &next, &avail)) != OC_OK)
                return st;
            s->x.next_in = next;
            s->x.avail_in = avail;
            s->x.next_out = (uint8_t *)buf + *got;
            s->x.avail_out = n - *got;
            rc = lzma_code(&s->x, s->eof_in ? LZMA_FINISH : LZMA_RUN);
            *got = n - s->x.avail_out;
            if (rc == LZMA_STREAM_END)
                s->ended = 1;
            else if (rc == LZMA_BUF_ERROR && s->eof_in)
                return oc_fail(OC_ERR_FORMAT, "'%s': truncated xz stream", s->path);
            else if (rc != LZMA_OK)
                return oc_fail(OC_ERR_FORMAT, "'%s': corrupt xz data (liblzma error %d)",
                               s->path, (int)rc);
        }
    }
    return OC_OK;
}

void zs_close(zstream *s)
{
    if (!s)
        return;
    if (s->kind == ZS_GZIP)
        inflateEnd(&s->z);
    else if (s->kind == ZS_XZ)
        lzma_end(&s->x);
    fclose(s->f);
    free(s);
}

/* ---------------------------------------------------------------- tar */

struct tar_reader {
    zstream *z;
    char name[4096];
    char long_name[4096];
    uint64_t remaining; /* data bytes of the current entry not read yet */
    uint64_t padding;   /* to the next 512-byte boundary */
};

oc_status tar_open(const char *path, tar_reader **out)
{
    tar_reader *t = calloc(1, sizeof *t);
    oc_status st;
    *out = NULL;
    if (!t)
        return oc_fail(OC_ERR_NOMEM, "out of memory");
    st = zs_open(path, &t->z);
    if (st != OC_OK) {
        free(t);
        return st;
    }
    *out = t;
    return OC_OK;
}

static oc_status skip(tar_reader *t, uint64_t n)
{
    uint8_t buf[8192];
    while (n) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf, got;
        oc_status st = zs_read(t->z, buf, k, &got);
        if (st != OC_OK)
            return st;
        if (got != k)
            return oc_fail(OC_ERR_FORMAT, "truncated tar archive");
        n -= k;
    }
    return OC_OK;
}

static int parse_octal(const uint8_t *p, int n, uint64_t *v)
{
    uint64_t x = 0;
    int i = 0, digits = 0;
    if (p[0] & 0x80) { /* GNU base-256 for large sizes */
        x = p[0] & 0x3f;
        for (i = 1; i < n; i++)
            x = (x << 8) | p[i];
        *v = x;
        return 1;
    }
    while (i < n && (p[i] == ' ' || p[i] == 0))
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++, digits++)
        x = x * 8 + (uint64_t)(p[i] - '0');
    *v = x;
    return digits > 0;
}

oc_status tar_next(tar_reader *t, const char **name, uint64_t *size, int *done)
{
    uint8_t h[512];
    oc_status st;
    *done = 0;
    if ((st = skip(t, t->remaining + t->padding)) != OC_OK)
        return st;
    t->remaining = t->padding = 0;
    for (;;) {
        size_t got;
        uint64_t sz, chk, sum = 0;
        char type;
        int zero = 1;
        if ((st = zs_read(t->z, h, 512, &got)) != OC_OK)
            return st;
        if (got == 0) {
            *done = 1;
            return OC_OK;
        }
        if (got != 512)
            return oc_fail(OC_ERR_FORMAT, "truncated tar archive (partial header)");
        for (int i = 0; i < 512; i++)
            zero &= h[i] == 0;
        if (zero) {
            *done = 1;
            return OC_OK;
        }
        for (int i = 0; i < 512; i++)
            sum += (i >= 148 && i < 156) ? ' ' : h[i];
        if (!parse_octal(h + 148, 8, &chk) || chk != sum)
            return oc_fail(OC_ERR_FORMAT, "not a tar archive (bad header checksum)");
        if (!parse_octal(h + 124, 12, &sz))
            return oc_fail(OC_ERR_FORMAT, "corrupt tar header (size)");
        type = (char)h[156];
        if (type == 'L' || type == 'x') {
            /* GNU long name or pax extended header: read its data */
            char *data;
            if (sz > 1 << 20)
                return oc_fail(OC_ERR_FORMAT, "tar extended header too large");
            data = malloc((size_t)sz + 1);
            if (!data)
                return oc_fail(OC_ERR_NOMEM, "out of memory");
            if ((st = zs_read(t->z, data, (size_t)sz, &got)) != OC_OK || got != sz) {
                free(data);
                return st != OC_OK ? st : oc_fail(OC_ERR_FORMAT, "truncated tar archive");
            }
            data[sz] = 0;
            if (type == 'L') {
                snprintf(t->long_name, sizeof t->long_name, "%s", data);
            } else {
                /* records "LEN key=value\n" */
                char *p = data, *end = data + sz;
                while (p < end) {
                    char *sp = memchr(p, ' ', (size_t)(end - p));
                    long len = strtol(p, NULL, 10);
                    if (!sp || len <= 0 || p + len > end)
                        break;
                    if (!strncmp(sp + 1, "path=", 5)) {
                        int vl = (int)(p + len - (sp + 6) - 1);
                        if (vl > 0 && vl < (int)sizeof t->long_name)
                            snprintf(t->long_name, sizeof t->long_name, "%.*s", vl, sp + 6);
                    }
                    p += len;
                }
            }
            free(data);
            if ((st = skip(t, (512 - sz % 512) % 512)) != OC_OK)
                return st;
            continue;
        }
        if (t->long_name[0]) {
            snprintf(t->name, sizeof t->name, "%s", t->long_name);
            t->long_name[0] = 0;
        } else if (h[345] && !memcmp(h + 257, "ustar", 5)) {
            snprintf(t->name, sizeof t->name, "%.155s/%.100s", (char *)h + 345, (char *)h);
        } else {
            snprintf(t->name, sizeof t->name, "%.100s", (char *)h);
        }
        if (type == '0' || type == 0 || type == '7') {
            t->remaining = sz;
            t->padding = (512 - sz % 512) % 512;
            *name = t->name;
            *size = sz;
            return OC_OK;
        }
        /* directories, links, ...: skip their data (normally none) */
        if (type != '5' && (st = skip(t, sz + (512 - sz % 512) % 512)) != OC_OK)
            return st;
    }
}

oc_status tar_read(tar_reader *t, void *buf, size_t n)
{
    size_t got;
    oc_status st;
    if (n > t->remaining)
        return oc_fail(OC_ERR_FORMAT, "read past the end of tar entry '%s'", t->name);
    st = zs_read(t->z, buf, n, &got);
    if (st != OC_OK)
        return st;
    if (got != n)
        return oc_fail(OC_ERR_FORMAT, "truncated tar archive (in '%s')", t->name);
    t->remaining -= n;
    return OC_OK;
}

void tar_close(tar_reader *t)
{
    if (!t)
        return;
    zs_close(t->z);
    free(t);
}

/* Creates every directory of `path` up to its last '/'. */
static oc_status make_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            oc_status st = oc_fail(OC_ERR_IO, "mkdir '%s': %s", path, strerror(errno));
            *p = '/';
            return st;
        }
        *p = '/';
    }
    return OC_OK;
}

static int unsafe_name(const char *name)
{
    const char *p = name;
    if (name[0] == '/' || !name[0])
        return 1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        p += n;
        if (*p == '/')
            p++;
    }
    return 0;
}

oc_status oc_tar_extract(const char *archive, const char *dest_dir, int *n_files)
{
    tar_reader *t = NULL;
    oc_status st;
    uint8_t *buf = NULL;
    int count = 0;
    if (n_files)
        *n_files = 0;
    if (!archive || !dest_dir)
        return oc_fail(OC_ERR_ARG, "oc_tar_extract: NULL argument");
    if ((st = tar_open(archive, &t)) != OC_OK)
        return st;
    buf = malloc(1 << 20);
    if (!buf) {
        st = oc_fail(OC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        const char *name;
        uint64_t size;
        int end;
        char path[8192];
        FILE *f;
        if ((st = tar_next(t, &name, &size, &end)) != OC_OK || end)
            break;
        if (unsafe_name(name)) {
            st = oc_fail(OC_ERR_FORMAT, "'%s': refusing unsafe member name '%s'", archive, name);
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dest_dir, name);
        if ((st = make_parents(path)) != OC_OK)
            break;
        f = fopen(path, "wb");
        if (!f) {
            st = oc_fail(OC_ERR_IO, "create '%s': %s", path, strerror(errno));
            break;
        }
        while (size) {
            size_t k = size < (1 << 20) ? (size_t)size : (1 << 20);
            if ((st = tar_read(t, buf, k)) != OC_OK)
                break;
            if (fwrite(buf, 1, k, f) != k) {
                st = oc_fail(OC_ERR_IO, "write '%s': %s", path, strerror(errno));
                break;
            }
            size -= k;
        }
        if (fclose(f) != 0 && st == OC_OK)
            st = oc_fail(OC_ERR_IO, "close '%s': %s", path, strerror(errno));
        if (st != OC_OK)
            break;
        count++;
    }
done:
    if (st != OC_OK)
        oc_fail_context(st, "extract '%s'", archive);
    free(buf);
    tar_close(t);
    if (n_files)
        *n_files = count;
    return st;
}
