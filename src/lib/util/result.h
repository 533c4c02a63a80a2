/* Result codes and error messages shared by every library function.
 *
 * The library never prints and never exits: a function returns an
 * hs_result and, on failure, fills an hs_error with a message that names
 * the file, key or token involved and the reason in words. The CLI maps
 * the code to an exit status (see hs_result_exit_code). */
#ifndef HSMSIGN_UTIL_RESULT_H
#define HSMSIGN_UTIL_RESULT_H

#include <stdarg.h>
#include <stddef.h>

#define HS_MUST_CHECK __attribute__((warn_unused_result))
#define HS_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef enum hs_result {
    HS_OK = 0,
    HS_E_VERIFY,   /* a signature, digest, check value or policy did not match */
    HS_E_USAGE,    /* the caller asked for something impossible or malformed */
    HS_E_IO,       /* a file or directory could not be read or written */
    HS_E_P11,      /* the PKCS#11 module or token failed */
    HS_E_FORMAT,   /* an input file is malformed, truncated or of an unknown version */
    HS_E_CRYPTO,   /* a host-side cryptographic operation failed */
    HS_E_AUDIT,    /* the audit record could not be made durable */
    HS_E_NOTFOUND, /* a key, token, object or file does not exist */
    HS_E_EXISTS,   /* refusing to overwrite something that exists */
    HS_E_NOMEM,    /* out of memory (or locked memory) */
    HS_E_INTERNAL, /* a bug: an invariant did not hold */
} hs_result;

typedef struct hs_error {
    hs_result code;
    unsigned long ckr; /* PKCS#11 return value when code == HS_E_P11, else 0 */
    char msg[1024];
} hs_error;

/* Sets *e (if not NULL) and returns code, so callers can write
 * `return hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));`. */
hs_result hs_fail(hs_error *e, hs_result code, const char *fmt, ...) HS_PRINTF(3, 4);
hs_result hs_vfail(hs_error *e, hs_result code, const char *fmt, va_list ap) HS_PRINTF(3, 0);
#ifdef __clang_analyzer__
/* The static analyzer (clang-tidy, `make lint`) does not look into variadic
 * functions, so after `r = p != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, ...)`
 * it also explores r == HS_OK with p == NULL, and reports dereferences on
 * paths that cannot happen. This states the contract for it alone: the
 * result is the code argument. Compiled code never sees this macro. */
#define hs_fail(e, code, ...) ((hs_fail)((e), (code), __VA_ARGS__), (code))
#endif

/* Prepends context ("key file keys/platform.key: ") to an existing message
 * and returns its code unchanged. */
hs_result hs_error_prefix(hs_error *e, const char *fmt, ...) HS_PRINTF(2, 3);

void hs_error_clear(hs_error *e);

/* Short name of a code ("I/O error"), for logs and JSON output. */
const char *hs_result_name(hs_result code);

/* Exit status contract (DESIGN.md): 0 success, 1 verification or policy
 * failure, 2 usage error, 3 and up operational errors. */
int hs_result_exit_code(hs_result code);

#endif
