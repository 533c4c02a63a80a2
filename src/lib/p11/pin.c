#include "p11/pin.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
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

/* Environment PINs already taken out of the environment, kept in locked
 * memory so that a second read of the same variable in this process (token
 * init's SO and user PIN from one variable, a ceremony's two tokens) still
 * finds it. Never freed: it dies with the process, locked and undumpable. */
#define ENV_TAKEN_MAX 8
static struct {
    char name[128];
    char *pin; /* hs_secure_alloc'd, HS_PIN_MAX */
} env_taken[ENV_TAKEN_MAX];
static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;

extern char **environ;

/* Removes every NAME=... entry from the environment and wipes its bytes in
 * place: for the environment the process started with, those bytes are
 * what /proc/PID/environ shows for as long as the process lives, and
 * unsetenv alone only drops the pointer. Values are wiped before unsetenv
 * (which needs the names); the names after it. Must hold env_lock. */
static void scrub_env(const char *name)
{
    size_t name_len = strlen(name);
    char *hits[16];
    size_t n_hits = 0;
    for (char **ep = environ; ep != NULL && *ep != NULL; ep++) {
        if (strncmp(*ep, name, name_len) != 0 || (*ep)[name_len] != '=')
            continue;
        hs_wipe(*ep + name_len + 1, strlen(*ep + name_len + 1));
        if (n_hits < sizeof hits / sizeof hits[0])
            hits[n_hits++] = *ep;
    }
    (void)unsetenv(name);
    for (size_t i = 0; i < n_hits; i++)
        hs_wipe(hits[i], name_len + 1);
}

static void remember_env(const char *name, const char *pin)
{
    size_t free_slot = ENV_TAKEN_MAX;
    for (size_t i = 0; i < ENV_TAKEN_MAX; i++) {
        if (env_taken[i].pin == NULL) {
            if (free_slot == ENV_TAKEN_MAX)
                free_slot = i;
        } else if (strcmp(env_taken[i].name, name) == 0) {
            free_slot = i;
            break;
        }
    }
    /* Not kept (no slot, name too long, no memory): a second read of the
     * variable then says it is not set. */
    if (free_slot == ENV_TAKEN_MAX || strlen(name) >= sizeof env_taken[0].name)
        return;
    if (env_taken[free_slot].pin == NULL)
        env_taken[free_slot].pin = hs_secure_alloc(HS_PIN_MAX);
    if (env_taken[free_slot].pin == NULL)
        return;
    snprintf(env_taken[free_slot].name, sizeof env_taken[0].name, "%s", name);
    snprintf(env_taken[free_slot].pin, HS_PIN_MAX, "%s", pin);
}

/* The copy kept of a variable already taken, or NULL. Must hold env_lock. */
static const char *taken_pin(const char *name)
{
    for (size_t i = 0; i < ENV_TAKEN_MAX; i++)
        if (env_taken[i].pin != NULL && strcmp(env_taken[i].name, name) == 0)
            return env_taken[i].pin;
    return NULL;
}

/* env:VAR: the PIN is copied into buf (locked memory), then the variable is
 * removed from the environment and its bytes wiped, so that no child, no
 * reader of /proc/PID/environ and no core dump sees it. A value the
 * environment holds again (set after it was taken) wins over the copy. */
static hs_result take_env(const char *name, char *buf, const char *what, hs_error *e)
{
    hs_result r = HS_OK;
    pthread_mutex_lock(&env_lock);
    const char *v = getenv(name);
    const char *kept = taken_pin(name);
    if (v == NULL && kept != NULL)
        snprintf(buf, HS_PIN_MAX, "%s", kept);
    else if (v == NULL)
        r = hs_fail(e, HS_E_USAGE, "%s: environment variable %s is not set", what, name);
    else if (strlen(v) >= HS_PIN_MAX)
        r = hs_fail(e, HS_E_USAGE, "%s: environment variable %s is too long", what, name);
    else {
        snprintf(buf, HS_PIN_MAX, "%s", v);
        remember_env(name, buf);
    }
    /* Even a value refused as too long was a secret. */
    if (v != NULL)
        scrub_env(name);
    pthread_mutex_unlock(&env_lock);
    return r;
}

bool hs_pin_env_available(const char *name)
{
    pthread_mutex_lock(&env_lock);
    bool yes = getenv(name) != NULL || taken_pin(name) != NULL;
    pthread_mutex_unlock(&env_lock);
    return yes;
}

hs_result hs_pin_read(const hs_pin_source *src, const char *what, char **pin, hs_error *e)
{
    *pin = hs_secure_alloc(HS_PIN_MAX);
    if (*pin == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: cannot allocate secure memory", what);
    char *buf = *pin;
    hs_result r = HS_OK;
    switch (src->kind) {
    case HS_PIN_ENV:
        r = take_env(src->arg, buf, what, e);
        break;
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
