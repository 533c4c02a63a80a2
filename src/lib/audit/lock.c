/* The audit log's lock (see lock.h). */
#include "audit/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

hs_result hs_audit_lock(const char *dir, int *fd_out, hs_error *e)
{
    *fd_out = -1;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" HS_AUDIT_LOCK_FILE, dir) >= sizeof path)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: path too long", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: cannot open its lock file: %s", dir,
                       strerror(errno));
    /* Polling rather than a blocking flock interrupted by an alarm: no
     * signal handler to install in a library. */
    const unsigned step = 50;
    unsigned timeout = HS_AUDIT_LOCK_TIMEOUT_MS;
    const char *env = getenv("HSMSIGN_AUDIT_LOCK_TIMEOUT");
    if (env != NULL && *env >= '0' && *env <= '9') {
        /* Seconds, 0 to 3600; anything else (trailing junk, overflow) is
         * ignored, which atoi could not tell apart from a number. */
        char *end;
        errno = 0;
        unsigned long s = strtoul(env, &end, 10);
        if (errno == 0 && *end == '\0' && s <= 3600)
            timeout = (unsigned)s * 1000u;
    }
    for (unsigned waited = 0;; waited += step) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *fd_out = fd;
            return HS_OK;
        }
        int err = errno;
        if (err != EWOULDBLOCK && err != EINTR) {
            close(fd);
            return hs_fail(e, HS_E_AUDIT, "audit log %s: cannot lock: %s", dir, strerror(err));
        }
        if (waited >= timeout) {
            close(fd);
            return hs_fail(e, HS_E_AUDIT,
                           "audit log %s is locked by another process (%s held for more than "
                           "%u s)", dir, path, timeout / 1000u);
        }
        sleep_ms(step);
    }
}

void hs_audit_unlock(int fd)
{
    if (fd < 0)
        return;
    flock(fd, LOCK_UN);
    close(fd);
}
