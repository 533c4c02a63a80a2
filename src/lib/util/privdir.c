/* Private cache directories (see privdir.h). */
#include "util/privdir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

static hs_result check_private(const char *dir, const char *what, const char *option, hs_error *e)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return hs_fail(e, HS_E_IO, "%s %s: %s", what, dir, strerror(errno));
    const char *why = S_ISLNK(st.st_mode)      ? "is a symbolic link"
                      : !S_ISDIR(st.st_mode)   ? "is not a directory"
                      : st.st_uid != geteuid() ? "is owned by another user"
                      : (st.st_mode & 022)     ? "is writable by group or others"
                                               : NULL;
    if (why != NULL)
        return hs_fail(e, HS_E_VERIFY,
                       "%s %s %s; it must be a directory of this user that no one else can "
                       "write (chmod 700), or turn the cache off with %s off",
                       what, dir, why, option);
    return HS_OK;
}

hs_result hs_privdir_open(const char *dir, const char *what, const char *option, hs_error *e)
{
    struct stat st;
    hs_result r = HS_OK;
    if (lstat(dir, &st) != 0 && errno == ENOENT)
        r = hs_mkdir_p(dir, 0700, e);
    return r == HS_OK ? check_private(dir, what, option, e) : r;
}

hs_result hs_privdir_open_file(const char *path, uint64_t max, int *fd, uint64_t *size,
                               bool *found, hs_error *e)
{
    *found = false;
    *size = 0;
    *fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (*fd < 0)
        return errno == ENOENT ? HS_OK : hs_fail(e, HS_E_FORMAT, "%s: %s", path, strerror(errno));
    *found = true;
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (uint64_t)st.st_size > max) {
        close(*fd);
        *fd = -1;
        return hs_fail(e, HS_E_FORMAT,
                       "%s: not a regular file of this user of at most %" PRIu64 " bytes", path,
                       max);
    }
    *size = (uint64_t)st.st_size;
    return HS_OK;
}
