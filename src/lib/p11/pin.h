/* Where a PIN comes from. A PIN is never taken from argv: the contract
 * (DESIGN.md) allows env:VAR, file:PATH, fd:N and prompt. The PIN is read
 * into locked memory at the moment of login and wiped after it. */
#ifndef HSMSIGN_P11_PIN_H
#define HSMSIGN_P11_PIN_H

#include <stdbool.h>
#include <stddef.h>

#include "util/result.h"

typedef enum hs_pin_kind {
    HS_PIN_ENV,
    HS_PIN_FILE,
    HS_PIN_FD,
    HS_PIN_PROMPT,
} hs_pin_kind;

/* Asks a person for a PIN (the CLI supplies it: the library does no
 * terminal I/O). Writes at most cap-1 bytes and a NUL into buf. */
typedef hs_result (*hs_pin_prompt_fn)(const char *prompt, char *buf, size_t cap, hs_error *e);

typedef struct hs_pin_source {
    hs_pin_kind kind;
    char arg[512];            /* variable name, path or fd number */
    int fd;                   /* HS_PIN_FD: arg as parsed and range-checked */
    hs_pin_prompt_fn prompt;  /* used for HS_PIN_PROMPT */
} hs_pin_source;

#define HS_PIN_MAX 256

/* Parses "env:VAR", "file:PATH", "fd:N" or "prompt". */
hs_result hs_pin_source_parse(const char *spec, hs_pin_source *out, hs_error *e) HS_MUST_CHECK;

/* Reads the PIN. *pin is hs_secure_alloc'd (HS_PIN_MAX bytes), NUL-
 * terminated, with a trailing newline removed; free with hs_pin_free.
 * what names the PIN in messages ("user PIN of token 'demo'").
 * env:VAR takes the variable out of the environment: it is unset and its
 * bytes (NAME=VALUE) wiped in place, so that children, /proc/PID/environ
 * and core dumps never show it; a later read of the same variable in this
 * process gets a copy kept in locked memory. */
hs_result hs_pin_read(const hs_pin_source *src, const char *what, char **pin,
                      hs_error *e) HS_MUST_CHECK;
void hs_pin_free(char *pin);

/* Whether env:name would find a PIN: set in the environment, or already
 * taken out of it by hs_pin_read. */
bool hs_pin_env_available(const char *name);

#endif
