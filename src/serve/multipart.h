/* A multipart/form-data parser over a complete request body (RFC 7578). */
#ifndef OC_SERVE_MULTIPART_H
#define OC_SERVE_MULTIPART_H

#include <stddef.h>

typedef struct {
    char name[128];        /* form field name ("" when absent) */
    char filename[256];    /* "" when absent */
    char content_type[128];
    const unsigned char *data; /* points into the body */
    size_t len;
} mp_part;

/* Extracts the boundary parameter from a Content-Type value; returns 0 if it has none or it is
 * longer than 70 characters (the RFC's limit). */
int mp_boundary(const char *content_type, char *boundary, size_t cap);

/* Splits `body` into at most `max_parts` parts. Returns the number of parts, or -1 when the body
 * is malformed (no closing boundary, truncated headers) with a reason in *why. */
int mp_parse(const unsigned char *body, size_t len, const char *boundary, mp_part *parts,
             int max_parts, const char **why);

#endif
