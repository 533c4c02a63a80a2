#include "p11/pin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/secmem.h"

hs_result hs_pin_source_parse(const char *spec, hs_pin_source *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    const char *arg = strchr(spec, ':');
    size_t kind_len = arg != NULL ? (size_t)(arg - spec) : strlen(spec);
    if (arg != NULL)
        arg++;
    if (kind_len == 6 && strncmp(spec, "prompt", 6) == 0 && arg == NULL) {
        out->kind = HS_PIN_PROMPT;
        return HS_OK;
    }
    if (arg == NULL || *arg == '\0')
        goto bad;
    if (strlen(arg) >= sizeof out->arg)
        return hs_fail(e, HS_E_USAGE, "PIN source '%.40s...': argument too long", spec);
    if (kind_len == 3 && strncmp(spec, "env", 3) == 0)
        out->kind = HS_PIN_ENV;
    else if (kind_len == 4 && strncmp(spec, "file", 4) == 0)
        out->kind = HS_PIN_FILE;
    else if (kind_len == 2 && strncmp(spec, "fd", 2) == 0) {
        char *end;
        long fd = strtol(arg, &end, 10);
        if (*end != '\0' || fd < 0 || fd > 65535)
            return hs_fail(e, HS_E_USAGE, "PIN source '%s': fd must be a descriptor number", spec);
        out->kind = HS_PIN_FD;
        out->fd = (int)fd;
    } else
        goto bad;
    snprintf(out->arg, sizeof out->arg, "%s", arg);
    return HS_OK;
bad:
    return hs_fail(e, HS_E_USAGE,
                   "PIN source '%s' not understood: use env:VAR, file:PATH, fd:N or prompt "
                   "(a PIN itself is never accepted on the command line)",
                   spec);
}

/* Reads up to cap-1 bytes from fd: a PIN is one line. */
static hs_result read_fd_line(int fd, char *buf, size_t cap, const char *what, hs_error *e)
{
    size_t len = 0;
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "%s: read failed: %s", what, strerror(errno));
        if (n == 0 || c == '\n')
            break;
        if (len + 1 >= cap)
            return hs_fail(e, HS_E_USAGE, "%s: longer than %zu bytes", what, cap - 1);
        buf[len++] = c;
    }
    buf[len] = '\0';
    return HS_OK;
}

hs_result hs_pin_read(const hs_pin_source *src, const char *what, char **pin, hs_error *e)
{
    *pin = hs_secure_alloc(HS_PIN_MAX);
    if (*pin == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: cannot allocate secure memory", what);
    char *buf = *pin;
    hs_result r = HS_OK;
    switch (src->kind) {
    case HS_PIN_ENV: {
        const char *v = getenv(src->arg);
        if (v == NULL)
            r = hs_fail(e, HS_E_USAGE, "%s: environment variable %s is not set", what, src->arg);
        else if (strlen(v) >= HS_PIN_MAX)
            r = hs_fail(e, HS_E_USAGE, "%s: environment variable %s is too long", what, src->arg);
        else
            snprintf(buf, HS_PIN_MAX, "%s", v);
        break;
    }
    case HS_PIN_FILE: {
        int fd = open(src->arg, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            r = hs_fail(e, HS_E_IO, "%s: cannot open PIN file %s: %s", what, src->arg,
                        strerror(errno));
            break;
        }
        char label[600];
        snprintf(label, sizeof label, "%s (file %s)", what, src->arg);
        r = read_fd_line(fd, buf, HS_PIN_MAX, label, e);
        close(fd);
        break;
    }
    case HS_PIN_FD: {
        char label[600];
        snprintf(label, sizeof label, "%s (fd %s)", what, src->arg);
        r = read_fd_line(src->fd, buf, HS_PIN_MAX, label, e);
        break;
    }
    case HS_PIN_PROMPT:
        if (src->prompt == NULL) {
            r = hs_fail(e, HS_E_USAGE, "%s: no PIN source given and no terminal to prompt on "
                        "(use --pin-source env:VAR, file:PATH or fd:N)", what);
            break;
        }
        char prompt[600];
        snprintf(prompt, sizeof prompt, "Enter %s: ", what);
        r = src->prompt(prompt, buf, HS_PIN_MAX, e);
        break;
    }
    if (r == HS_OK) {
        size_t n = strlen(buf);
        if (n > 0 && buf[n - 1] == '\r')
            buf[n - 1] = '\0';
        if (buf[0] == '\0')
            r = hs_fail(e, HS_E_USAGE, "%s is empty", what);
    }
    if (r != HS_OK) {
        hs_pin_free(*pin);
        *pin = NULL;
    }
    return r;
}

void hs_pin_free(char *pin)
{
    hs_secure_free(pin, HS_PIN_MAX);
}
