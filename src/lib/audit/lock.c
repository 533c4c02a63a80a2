/* The audit log's lock (see lock.h). */
#include "audit/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/flock.h"

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
    unsigned timeout = hs_env_timeout_ms("HSMSIGN_AUDIT_LOCK_TIMEOUT", HS_AUDIT_LOCK_TIMEOUT_MS);
    int err = hs_flock_wait(fd, timeout);
    if (err == 0) {
        *fd_out = fd;
        return HS_OK;
    }
    close(fd);
    if (err != EWOULDBLOCK)
        return hs_fail(e, HS_E_AUDIT, "audit log %s: cannot lock: %s", dir, strerror(err));
    return hs_fail(e, HS_E_AUDIT,
                   "audit log %s is locked by another process (%s held for more than %u s)",
                   dir, path, timeout / 1000u);
}

void hs_audit_unlock(int fd)
{
    if (fd < 0)
        return;
    flock(fd, LOCK_UN);
    close(fd);
}
