/* Growable strings with HTML and JSON escaping, UTF-8 widths and base64: what the reports,
 * the JSON replies and the terminal tables are built with. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void oc_sb_init(oc_sb *s)
{
    s->buf = NULL;
    s->len = s->cap = 0;
    s->failed = false;
}

void oc_sb_release(oc_sb *s)
{
    free(s->buf);
    oc_sb_init(s);
}

/* Makes room for `extra` more bytes plus the terminating NUL. */
static bool reserve(oc_sb *s, size_t extra)
{
    size_t need, cap;
    char *p;
    if (s->failed)
        return false;
    if (extra > SIZE_MAX - s->len - 1) {
        s->failed = true;
        return false;
    }
    need = s->len + extra + 1;
    if (need <= s->cap)
        return true;
    cap = s->cap ? s->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(s->buf, cap);
    if (!p) {
        s->failed = true;
        return false;
    }
    s->buf = p;
    s->cap = cap;
    return true;
}

void oc_sb_putn(oc_sb *s, const char *p, size_t n)
{
    if (!reserve(s, n))
        return;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
}

void oc_sb_puts(oc_sb *s, const char *p)
{
    oc_sb_putn(s, p, strlen(p));
}

void oc_sb_printf(oc_sb *s, const char *fmt, ...)
{
    va_list ap;
    int n;
    char small[256];
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        oc_sb_putn(s, small, (size_t)n);
        return;
    }
    if (!reserve(s, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

void oc_sb_pad(oc_sb *s, char c, size_t n)
{
    if (!reserve(s, n))
        return;
    memset(s->buf + s->len, c, n);
    s->len += n;
    s->buf[s->len] = 0;
}

void oc_sb_html(oc_sb *s, const char *text)
{
    const char *run = text;
    for (const char *p = text;; p++) {
        unsigned char c = (unsigned char)*p;
        const char *rep = NULL;
        bool drop = false;
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: drop = c != 0 && c != '\t' && c != '\n' && (c < 0x20 || c == 0x7f); break;
        }
        if (c == 0 || rep || drop) {
            oc_sb_putn(s, run, (size_t)(p - run));
            if (rep)
                oc_sb_puts(s, rep);
            run = p + 1;
        }
        if (c == 0)
            break;
    }
}

char *oc_sb_take(oc_sb *s, size_t *len)
{
    char *p;
    if (!s->failed && !s->buf)
        reserve(s, 0);
    if (s->failed) {
        oc_sb_release(s);
        if (len)
            *len = 0;
        return NULL;
    }
    p = s->buf;
    if (len)
        *len = s->len;
    oc_sb_init(s);
    return p;
}

size_t oc_utf8_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

size_t oc_utf8_prefix(const char *s, size_t cols)
{
    size_t i = 0, w = 0;
    while (s[i]) {
        size_t j = i + 1;
        while (s[j] && ((unsigned char)s[j] & 0xC0) == 0x80)
            j++;
        if (w + 1 > cols)
            break;
        w++;
        i = j;
    }
    return i;
}

void oc_sb_base64(oc_sb *s, const uint8_t *data, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out = (n + 2) / 3 * 4;
    char *o;
    size_t i;
    if (n > SIZE_MAX / 4 * 3 - 3 || !reserve(s, out)) {
        s->failed = true;
        return;
    }
    o = s->buf + s->len;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    s->len += out;
    s->buf[s->len] = 0;
}

void oc_sb_json(oc_sb *s, const char *text)
{
    oc_sb_putn(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        switch (*p) {
        case '"': oc_sb_puts(s, "\\\""); break;
        case '\\': oc_sb_puts(s, "\\\\"); break;
        case '\n': oc_sb_puts(s, "\\n"); break;
        case '\r': oc_sb_puts(s, "\\r"); break;
        case '\t': oc_sb_puts(s, "\\t"); break;
        default:
            if (*p < 0x20)
                oc_sb_printf(s, "\\u%04x", *p);
            else
                oc_sb_putn(s, (const char *)p, 1);
        }
    }
    oc_sb_putn(s, "\"", 1);
}
