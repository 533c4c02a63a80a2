#include "util/result.h"

#include <stdio.h>
#include <string.h>

hs_result hs_vfail(hs_error *e, hs_result code, const char *fmt, va_list ap)
{
    if (e != NULL) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

/* Parenthesized: result.h defines an hs_fail macro for the static analyzer. */
hs_result (hs_fail)(hs_error *e, hs_result code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hs_vfail(e, code, fmt, ap);
    va_end(ap);
    return code;
}

hs_result hs_error_prefix(hs_error *e, const char *fmt, ...)
{
    if (e == NULL)
        return HS_E_INTERNAL;
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used < sizeof e->msg - 1)
        snprintf(e->msg + used, sizeof e->msg - used, "%s", old);
    return e->code;
}

void hs_error_clear(hs_error *e)
{
    if (e != NULL) {
        e->code = HS_OK;
        e->ckr = 0;
        e->msg[0] = '\0';
    }
}

const char *hs_result_name(hs_result code)
{
    switch (code) {
    case HS_OK: return "ok";
    case HS_E_VERIFY: return "verification failed";
    case HS_E_USAGE: return "usage error";
    case HS_E_IO: return "I/O error";
    case HS_E_P11: return "PKCS#11 error";
    case HS_E_FORMAT: return "malformed input";
    case HS_E_CRYPTO: return "cryptographic error";
    case HS_E_AUDIT: return "audit log error";
    case HS_E_NOTFOUND: return "not found";
    case HS_E_EXISTS: return "already exists";
    case HS_E_NOMEM: return "out of memory";
    case HS_E_INTERNAL: return "internal error";
    }
    return "unknown error";
}

int hs_result_exit_code(hs_result code)
{
    switch (code) {
    case HS_OK: return 0;
    case HS_E_VERIFY: return 1;
    case HS_E_USAGE: return 2;
    case HS_E_IO: return 3;
    case HS_E_P11: return 4;
    case HS_E_FORMAT: return 5;
    case HS_E_CRYPTO: return 6;
    case HS_E_AUDIT: return 7;
    case HS_E_NOTFOUND: return 8;
    case HS_E_EXISTS: return 9;
    case HS_E_NOMEM: return 10;
    case HS_E_INTERNAL: return 11;
    }
    return 11;
}
