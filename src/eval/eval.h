/* Private helpers of the eval layer: PNG encoding for the report (string building, HTML
 * escaping and base64 are in core/core.h). */
#ifndef OC_EVAL_H
#define OC_EVAL_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encodes an 8-bit image (channels 1, 3 or 4, HWC) as PNG into a malloc'd buffer.
 * Errors: OC_ERR_ARG, OC_ERR_NOMEM, OC_ERR_FORMAT (libpng failure). */
oc_status oc_png_encode(const uint8_t *pixels, int height, int width, int channels,
                        uint8_t **out, size_t *out_len);

#endif /* OC_EVAL_H */
