/* Status codes, the thread-local last-error message, assertions and logging. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

oc_status oc_fail(oc_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

oc_status oc_fail_context(oc_status st, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* the combined message is truncated to the buffer; the prefix always survives */
    size_t n = strlen(prefix);
    memcpy(last_error, prefix, n);
    if (n + 2 < sizeof last_error) {
        memcpy(last_error + n, ": ", 2);
        n += 2;
        size_t m = strlen(old);
        if (m > sizeof last_error - 1 - n)
            m = sizeof last_error - 1 - n;
        memcpy(last_error + n, old, m);
        n += m;
    }
    last_error[n] = 0;
    return st;
}

const char *oc_last_error(void)
{
    return last_error;
}

const char *oc_status_name(oc_status st)
{
    switch (st) {
    case OC_OK: return "OC_OK";
    case OC_ERR_NOMEM: return "OC_ERR_NOMEM";
    case OC_ERR_IO: return "OC_ERR_IO";
    case OC_ERR_FORMAT: return "OC_ERR_FORMAT";
    case OC_ERR_SHAPE: return "OC_ERR_SHAPE";
    case OC_ERR_ARG: return "OC_ERR_ARG";
    case OC_ERR_UNSUPPORTED: return "OC_ERR_UNSUPPORTED";
    case OC_ERR_NUMERIC: return "OC_ERR_NUMERIC";
    case OC_ERR_INTERRUPTED: return "OC_ERR_INTERRUPTED";
    }
    return "OC_ERR_UNKNOWN";
}

const char *oc_version(void)
{
    return OC_VERSION_STRING;
}

_Noreturn void oc_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ocelot: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

static oc_log_fn log_fn;
static void *log_user;

void oc_set_log(oc_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void oc_log(oc_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (!log_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}
