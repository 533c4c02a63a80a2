/* Bounded flock waits (see flock.h). */
#include "util/flock.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>

/* The first polls come quickly, as the holders we expect keep the lock
 * for milliseconds (a C_Login, an audit entry); 50 ms at most between
 * polls keeps a long wait cheap. */
#define POLL_FIRST_MS 1u
#define POLL_MAX_MS 50u

void hs_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

unsigned hs_env_timeout_ms(const char *name, unsigned default_ms)
{
    const char *env = getenv(name);
    if (env == NULL || *env < '0' || *env > '9')
        return default_ms;
    char *end;
    errno = 0;
    unsigned long s = strtoul(env, &end, 10);
    if (errno != 0 || *end != '\0' || s > 3600)
        return default_ms;
    return (unsigned)s * 1000u;
}

int hs_flock_wait(int fd, unsigned timeout_ms)
{
    unsigned step = POLL_FIRST_MS;
    for (unsigned waited = 0;; waited += step, step = step * 2 > POLL_MAX_MS ? POLL_MAX_MS : step * 2) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        int err = errno;
        if (err != EWOULDBLOCK && err != EINTR)
            return err;
        if (waited >= timeout_ms)
            return EWOULDBLOCK;
        hs_sleep_ms(step);
    }
}
