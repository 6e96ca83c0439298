/* Private helpers of the eval layer: a growable string buffer, HTML escaping, base64 and PNG
 * encoding for the report. */
#ifndef OC_EVAL_H
#define OC_EVAL_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable NUL-terminated string. Appends after an allocation failure are ignored and
 * `failed` stays set, so a builder can run to the end and check once. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} oc_sb;

void oc_sb_init(oc_sb *s);
void oc_sb_release(oc_sb *s);
void oc_sb_putn(oc_sb *s, const char *p, size_t n);
void oc_sb_puts(oc_sb *s, const char *p);
void oc_sb_printf(oc_sb *s, const char *fmt, ...) OC_PRINTF(2, 3);
/* Appends `n` copies of byte c. */
void oc_sb_pad(oc_sb *s, char c, size_t n);
/* Appends text escaped for HTML/XML text and attribute values (& < > " '); control characters
 * other than tab and newline are dropped. */
void oc_sb_html(oc_sb *s, const char *text);
/* Hands the buffer to the caller (NULL if an allocation failed) and resets the builder. */
char *oc_sb_take(oc_sb *s, size_t *len);

/* Display width of UTF-8 text in terminal columns (one per code point). */
size_t oc_utf8_width(const char *s);
/* Bytes of the longest prefix of s that is at most `cols` code points wide. */
size_t oc_utf8_prefix(const char *s, size_t cols);

/* Standard base64 (RFC 4648, with padding) of n bytes appended to s. */
void oc_sb_base64(oc_sb *s, const uint8_t *data, size_t n);

/* Encodes an 8-bit image (channels 1, 3 or 4, HWC) as PNG into a malloc'd buffer.
 * Errors: OC_ERR_ARG, OC_ERR_NOMEM, OC_ERR_FORMAT (libpng failure). */
oc_status oc_png_encode(const uint8_t *pixels, int height, int width, int channels,
                        uint8_t **out, size_t *out_len);

#endif /* OC_EVAL_H */
