/* multipart/form-data parsing over an in-memory body. */
#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int mp_boundary(const char *ct, char *boundary, size_t cap)
{
    const char *p = ct ? strcasestr(ct, "boundary=") : NULL;
    size_t n;
    if (!p)
        return 0;
    p += 9;
    if (*p == '"') {
        const char *q = strchr(++p, '"');
        if (!q)
            return 0;
        n = (size_t)(q - p);
    } else {
        n = strcspn(p, "; \t");
    }
    if (n == 0 || n > 70 || n + 1 > cap)
        return 0;
    memcpy(boundary, p, n);
    boundary[n] = 0;
    return 1;
}

static const unsigned char *find(const unsigned char *hay, size_t hlen, const char *needle,
                                 size_t nlen)
{
    if (nlen == 0 || hlen < nlen)
        return NULL;
    for (const unsigned char *p = hay; p + nlen <= hay + hlen;) {
        const unsigned char *q = memchr(p, needle[0], (size_t)(hay + hlen - p) - nlen + 1);
        if (!q)
            return NULL;
        if (memcmp(q, needle, nlen) == 0)
            return q;
        p = q + 1;
    }
    return NULL;
}

/* Copies the value of `key="..."` from a Content-Disposition line. */
static void disposition_param(const char *line, size_t len, const char *key, char *out,
                              size_t cap)
{
    char pat[32];
    const char *p, *end = line + len;
    size_t klen = (size_t)snprintf(pat, sizeof pat, "%s=\"", key);
    out[0] = 0;
    for (p = line; p + klen <= end; p++) {
        if (strncasecmp(p, pat, klen) == 0 && (p == line || p[-1] == ' ' || p[-1] == ';')) {
            const char *v = p + klen, *q = memchr(v, '"', (size_t)(end - v));
            size_t n;
            if (!q)
                return;
            n = (size_t)(q - v);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return;
        }
    }
}

int mp_parse(const unsigned char *body, size_t len, const char *boundary, mp_part *parts,
             int max_parts, const char **why)
{
    char delim[80];
    size_t dlen = (size_t)snprintf(delim, sizeof delim, "--%s", boundary);
    const unsigned char *p, *end = body + len;
    int n = 0;

    p = find(body, len, delim, dlen);
    if (!p) {
        *why = "multipart body has no boundary line";
        return -1;
    }
    for (;;) {
        const unsigned char *hdr_end, *next;
        mp_part part;
        p += dlen;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return n; /* closing delimiter */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            *why = "multipart body is truncated after a boundary";
            return -1;
        }
        p += 2;
        hdr_end = find(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hdr_end) {
            *why = "multipart part headers are truncated";
            return -1;
        }
        memset(&part, 0, sizeof part);
        for (const unsigned char *line = p; line < hdr_end;) {
            const unsigned char *eol = find(line, (size_t)(hdr_end - line) + 2, "\r\n", 2);
            size_t ll = (size_t)(eol - line);
            if (ll > 20 && strncasecmp((const char *)line, "Content-Disposition:", 20) == 0) {
                disposition_param((const char *)line, ll, "name", part.name, sizeof part.name);
                disposition_param((const char *)line, ll, "filename", part.filename,
                                  sizeof part.filename);
            } else if (ll > 13 && strncasecmp((const char *)line, "Content-Type:", 13) == 0) {
                const char *v = (const char *)line + 13;
                size_t vl = ll - 13;
                while (vl && (*v == ' ' || *v == '\t'))
                    v++, vl--;
                if (vl >= sizeof part.content_type)
                    vl = sizeof part.content_type - 1;
                memcpy(part.content_type, v, vl);
            }
            line = eol + 2;
        }
        part.data = hdr_end + 4;
        /* the part ends at CRLF + delimiter */
        {
            char crlf_delim[84];
            size_t cl = (size_t)snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);
            next = find(part.data, (size_t)(end - part.data), crlf_delim, cl);
            if (!next) {
                *why = "multipart body is truncated: a part has no closing boundary";
                return -1;
            }
            part.len = (size_t)(next - part.data);
            p = next + 2;
        }
        if (n < max_parts)
            parts[n++] = part;
        else {
            *why = "too many parts in the multipart body";
            return -1;
        }
    }
}
