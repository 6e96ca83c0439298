/* Growable strings and JSON string escaping for replies. */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(strbuf *s)
{
    s->cap = 512;
    s->len = 0;
    s->buf = malloc(s->cap);
    s->oom = s->buf == NULL;
    if (s->buf)
        s->buf[0] = 0;
}

static int grow(strbuf *s, size_t extra)
{
    char *nb;
    size_t cap = s->cap;
    if (s->oom)
        return 0;
    if (s->len + extra + 1 <= s->cap)
        return 1;
    while (s->len + extra + 1 > cap)
        cap *= 2;
    nb = realloc(s->buf, cap);
    if (!nb) {
        s->oom = 1;
        return 0;
    }
    s->buf = nb;
    s->cap = cap;
    return 1;
}

void sb_add(strbuf *s, const char *text)
{
    size_t n = strlen(text);
    if (!grow(s, n))
        return;
    memcpy(s->buf + s->len, text, n + 1);
    s->len += n;
}

void sb_addf(strbuf *s, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !grow(s, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

void sb_json_str(strbuf *s, const char *text)
{
    sb_add(s, "\"");
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_add(s, "\\\""); break;
        case '\\': sb_add(s, "\\\\"); break;
        case '\n': sb_add(s, "\\n"); break;
        case '\r': sb_add(s, "\\r"); break;
        case '\t': sb_add(s, "\\t"); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_add(s, esc);
            } else {
                char c[2] = {(char)*p, 0};
                sb_add(s, c);
            }
        }
    }
    sb_add(s, "\"");
}

void sb_release(strbuf *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}
