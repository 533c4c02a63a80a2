#include "util/file.h"
#include "util/release.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/secmem.h"
#include "util/stale_tmp.h"

enum {
    READ_SECRET = 1,  /* into locked memory */
    READ_TRUSTED = 2, /* only a file no other user can write (hs_read_trusted_file) */
};

static char *dir_of(const char *path);

/* Owned by the real user or root, and not writable by group or others:
 * nobody else can have chosen what it says. Writes the reason it is not
 * into why. */
static bool untrusted(const struct stat *st, char *why, size_t cap)
{
    if (st->st_uid != getuid() && st->st_uid != 0)
        snprintf(why, cap, "owned by another user (uid %ju)", (uintmax_t)st->st_uid);
    else if (st->st_mode & (S_IWGRP | S_IWOTH))
        snprintf(why, cap, "writable by group or others (mode %04o)",
                 (unsigned)(st->st_mode & 07777));
    else
        return false;
    return true;
}

/* The directory of path must be trusted too, or another user could replace
 * the file (or the link) between two runs. */
static hs_result check_dir_trusted(const char *file, const char *path, hs_error *e)
{
    char *dir = dir_of(path);
    if (dir == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", file);
    struct stat st;
    char why[96];
    hs_result r = HS_OK;
    if (stat(dir, &st) != 0)
        r = hs_fail(e, HS_E_IO, "%s: cannot stat its directory %s: %s", file, dir, strerror(errno));
    else if (untrusted(&st, why, sizeof why))
        r = hs_fail(e, HS_E_USAGE, "%s: refused: its directory %s is %s", file, dir, why);
    free(dir);
    return r;
}

/* Checks the opened file (fstat: no race with a rename), its directory
 * and, when path is a symbolic link, the directory of the final target. */
static hs_result check_trusted(const char *path, const struct stat *st, hs_error *e)
{
    char why[96];
    if (!S_ISREG(st->st_mode))
        return hs_fail(e, HS_E_USAGE, "%s: refused: not a regular file", path);
    if (untrusted(st, why, sizeof why))
        return hs_fail(e, HS_E_USAGE, "%s: refused: it is %s", path, why);
    hs_result r = check_dir_trusted(path, path, e);
    char *target = r == HS_OK ? realpath(path, NULL) : NULL;
    if (r == HS_OK && target == NULL)
        r = hs_fail(e, HS_E_IO, "%s: cannot resolve: %s", path, strerror(errno));
    if (r == HS_OK)
        r = check_dir_trusted(path, target, e);
    free(target);
    return r;
}

/* Reads a whole regular file of at most max_len bytes, with a NUL after
 * the last byte, into plain memory or (READ_SECRET) locked memory. */
static hs_result read_whole(const char *path, size_t max_len, unsigned flags, uint8_t **out,
                            size_t *out_len, hs_error *e)
{
    *out = NULL;
    *out_len = 0;
    bool secret = flags & READ_SECRET;
    /* O_NONBLOCK: a FIFO given as a file fails below (not a regular
     * file) instead of waiting for a writer forever; it changes nothing
     * for a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return hs_fail(e, errno == ENOENT ? HS_E_NOTFOUND : HS_E_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat st;
    hs_result r = HS_OK;
    if (fstat(fd, &st) != 0)
        r = hs_fail(e, HS_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if ((flags & READ_TRUSTED) && (r = check_trusted(path, &st, e)) != HS_OK)
        ;
    else if (!S_ISREG(st.st_mode))
        r = hs_fail(e, HS_E_IO, "%s: not a regular file", path);
    else if ((uintmax_t)st.st_size > max_len)
        r = hs_fail(e, HS_E_FORMAT, "%s: file is %jd bytes, more than the %zu this reader accepts",
                    path, (intmax_t)st.st_size, max_len);
    if (r != HS_OK) {
        close(fd);
        return r;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = secret ? hs_secure_alloc(size + 1) : malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size && r == HS_OK) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            r = hs_fail(e, HS_E_IO, "%s: read failed: %s", path,
                        n < 0 ? strerror(errno) : "file shrank while reading");
        else
            got += (size_t)n;
    }
    close(fd);
    if (r != HS_OK) {
        if (secret)
            hs_secure_free(buf, size + 1);
        else
            free(buf);
        return r;
    }
    buf[size] = '\0';
    *out = buf;
    *out_len = size;
    return HS_OK;
}

hs_result hs_read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                       hs_error *e)
{
    return read_whole(path, max_len, 0, out, out_len, e);
}

hs_result hs_write_fd_all(int fd, const void *data, size_t len, const char *what, hs_error *e)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "%s: write failed: %s", what, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return HS_OK;
}

static char *dir_of(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return NULL;
    char *d = strdup(dirname(copy));
    free(copy);
    return d;
}

hs_result hs_fsync_dir(const char *dir, hs_error *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hs_fail(e, HS_E_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems refuse fsync on directories; that is not an error
     * we can act on. */
    if (rc != 0 && err != EINVAL && err != ENOTSUP)
        return hs_fail(e, HS_E_IO, "%s: fsync of directory failed: %s", dir, strerror(err));
    return HS_OK;
}

/* Creates and locks "<path>.tmp.XXXXXX". The lock is what tells a live
 * temporary file from one left by a killed writer (see stale_tmp.c); it is
 * held until the file is renamed into place or removed. */
static hs_result create_locked_tmp(hs_atomic_file *af, size_t n, hs_error *e)
{
    /* A cleaner can remove the file between mkstemp and flock (it is not
     * locked yet); after locking, the name must still be ours, or we start
     * again with a new name. A cleaner holds a lock only for a few system
     * calls, so contention is retried with a new name rather than waited
     * for, and a few attempts are plenty. */
    for (int attempt = 0; attempt < 16; attempt++) {
        snprintf(af->tmp_path, n, "%s.tmp.XXXXXX", af->path);
        af->fd = mkostemp(af->tmp_path, O_CLOEXEC);
        if (af->fd < 0)
            return hs_fail(e, HS_E_IO, "%s: cannot create a temporary file beside it: %s",
                           af->path, strerror(errno));
        int rc;
        while ((rc = flock(af->fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
        }
        /* A file system without flock support also refuses the cleaner's
         * lock, so there an unlocked file is never removed: go on without. */
        bool unsupported = rc != 0 && errno != EWOULDBLOCK;
        struct stat mine, named;
        if (unsupported ||
            (rc == 0 && fstat(af->fd, &mine) == 0 && lstat(af->tmp_path, &named) == 0 &&
             mine.st_dev == named.st_dev && mine.st_ino == named.st_ino))
            return HS_OK;
        /* Lost to a cleaner: the name is no longer ours to unlink. */
        close(af->fd);
        af->fd = -1;
    }
    return hs_fail(e, HS_E_IO, "%s: cannot create a temporary file beside it: it was removed "
                               "each time before it could be locked", af->path);
}

hs_result hs_atomic_open(hs_atomic_file *af, const char *path, mode_t mode, hs_error *e)
{
    af->fd = -1;
    af->path = strdup(path);
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    af->tmp_path = malloc(n);
    if (af->path == NULL || af->tmp_path == NULL) {
        hs_atomic_abort(af);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", path);
    }
    /* Temporary files of this path left by a killed writer (best effort:
     * only unlocked regular files, see stale_tmp.h). */
    (void)hs_stale_tmp_remove(path);
    hs_result r = create_locked_tmp(af, n, e);
    if (r != HS_OK) {
        free(af->tmp_path);
        af->tmp_path = NULL;
        hs_atomic_abort(af);
        return r;
    }
    if (fchmod(af->fd, mode) != 0) {
        int err = errno;
        hs_atomic_abort(af);
        return hs_fail(e, HS_E_IO, "%s: cannot set permissions: %s", path, strerror(err));
    }
    return HS_OK;
}

hs_result hs_atomic_write_all(hs_atomic_file *af, const void *data, size_t len, hs_error *e)
{
    return hs_write_fd_all(af->fd, data, len, af->path, e);
}

/* Gives the temporary file its final name only if that name is free,
 * atomically: renameat2(RENAME_NOREPLACE), or on a file system without it
 * (EINVAL: e.g. some network and FUSE file systems) link() + unlink of
 * the temporary name, which also fails with EEXIST rather than replace.
 * There is no third way that is both atomic and non-replacing, so a file
 * system with neither is an error that says so. */
static hs_result place_no_replace(hs_atomic_file *af, hs_error *e)
{
    int err = 0;
    if (renameat2(AT_FDCWD, af->tmp_path, AT_FDCWD, af->path, RENAME_NOREPLACE) == 0)
        return HS_OK;
    err = errno;
    if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) {
        if (link(af->tmp_path, af->path) == 0) {
            unlink(af->tmp_path);
            return HS_OK;
        }
        err = errno;
        if (err == EPERM || err == EOPNOTSUPP || err == ENOSYS)
            return hs_fail(e, HS_E_IO,
                           "%s: the file system supports neither rename without replacing nor "
                           "hard links (%s), so the file cannot be written without risking "
                           "replacing an existing one",
                           af->path, strerror(err));
    }
    if (err == EEXIST)
        return hs_fail(e, HS_E_EXISTS, "%s: already exists; refusing to overwrite", af->path);
    return hs_fail(e, HS_E_IO, "%s: cannot move into place: %s", af->path, strerror(err));
}

/* fsync and rename; the descriptor is closed and the temporary name
 * forgotten, af->path kept. */
static hs_result commit_file(hs_atomic_file *af, bool no_replace, hs_error *e)
{
    if (fsync(af->fd) != 0)
        return hs_fail(e, HS_E_IO, "%s: fsync failed: %s", af->path, strerror(errno));
    /* The descriptor, and so the lock, stays open until the temporary name
     * is gone: closed earlier, a concurrent hs_atomic_open of this path
     * could take the complete file for a stale one and remove it before
     * the rename. On failure it is left to hs_atomic_abort. */
    if (no_replace) {
        hs_result r = place_no_replace(af, e);
        if (r != HS_OK)
            return r;
    } else {
        /* The file replaced is freed at its last close, not in the rename
         * (release.h). */
        int old = hs_release_hold(af->path);
        if (rename(af->tmp_path, af->path) != 0) {
            int err = errno;
            if (old >= 0)
                (void)close(old);
            return hs_fail(e, HS_E_IO, "%s: cannot rename into place: %s", af->path,
                           strerror(err));
        }
        hs_release_later(old);
    }
    /* After a successful fsync, close cannot lose data (an error from it
     * would only repeat a write-back error fsync already reported), and the
     * file is in place: its result does not change the outcome. */
    (void)close(af->fd);
    af->fd = -1;
    free(af->tmp_path);
    af->tmp_path = NULL;
    return HS_OK;
}

hs_result hs_atomic_commit_no_dir_sync(hs_atomic_file *af, hs_error *e)
{
    return commit_file(af, false, e);
}

hs_result hs_atomic_commit(hs_atomic_file *af, bool no_replace, hs_error *e)
{
    hs_result r = commit_file(af, no_replace, e);
    if (r != HS_OK)
        return r;
    char *dir = dir_of(af->path);
    if (dir == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", af->path);
    r = hs_fsync_dir(dir, e);
    free(dir);
    free(af->path);
    af->path = NULL;
    return r;
}

void hs_atomic_abort(hs_atomic_file *af)
{
    /* Unlink before close: while the lock is held the name is surely ours
     * (no cleaner removes a locked file, so no one else can have made a
     * file of that name). */
    if (af->tmp_path != NULL && af->fd >= 0)
        unlink(af->tmp_path);
    if (af->fd >= 0)
        close(af->fd);
    af->fd = -1;
    free(af->tmp_path);
    af->tmp_path = NULL;
    free(af->path);
    af->path = NULL;
}

hs_result hs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                               bool no_replace, hs_error *e)
{
    hs_atomic_file af;
    hs_result r = hs_atomic_open(&af, path, mode, e);
    if (r != HS_OK)
        return r;
    r = hs_atomic_write_all(&af, data, len, e);
    if (r == HS_OK)
        r = hs_atomic_commit(&af, no_replace, e);
    hs_atomic_abort(&af);
    return r;
}

static hs_result overwrite_fd(int fd, const char *path, const void *data, size_t len,
                              hs_error *e)
{
    /* Reserve the space first so that a full disk is found before any
     * byte of OUT changes (file systems without fallocate skip this). */
    int err = len > 0 ? posix_fallocate(fd, 0, (off_t)len) : 0;
    if (err != 0 && err != EOPNOTSUPP && err != EINVAL)
        return hs_fail(e, HS_E_IO, "%s: cannot reserve %zu bytes: %s", path, len, strerror(err));
    if (lseek(fd, 0, SEEK_SET) != 0)
        return hs_fail(e, HS_E_IO, "%s: cannot seek: %s", path, strerror(errno));
    hs_result r = hs_write_fd_all(fd, data, len, path, e);
    if (r != HS_OK)
        return r;
    if (ftruncate(fd, (off_t)len) != 0)
        return hs_fail(e, HS_E_IO, "%s: cannot truncate: %s", path, strerror(errno));
    if (fsync(fd) != 0)
        return hs_fail(e, HS_E_IO, "%s: fsync failed: %s", path, strerror(errno));
    return HS_OK;
}

hs_result hs_write_file_in_place(const char *path, const void *data, size_t len, mode_t mode,
                                 bool *in_place, hs_error *e)
{
    *in_place = false;
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT)
        return hs_write_file_atomic(path, data, len, mode, false, e);
    if (fd < 0)
        return hs_fail(e, HS_E_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    struct stat st;
    hs_result r = HS_OK;
    if (fstat(fd, &st) != 0)
        r = hs_fail(e, HS_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        r = hs_fail(e, HS_E_IO, "%s: not a regular file", path);
    if (r == HS_OK)
        r = overwrite_fd(fd, path, data, len, e);
    *in_place = r == HS_OK;
    if (close(fd) != 0 && r == HS_OK)
        r = hs_fail(e, HS_E_IO, "%s: close failed: %s", path, strerror(errno));
    return r;
}

hs_result hs_mkdir_p(const char *dir, mode_t mode, hs_error *e)
{
    char *p = strdup(dir);
    if (p == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            if (mkdir(p, mode) != 0 && errno != EEXIST) {
                int err = errno;
                hs_result r = hs_fail(e, HS_E_IO, "%s: cannot create directory: %s", p, strerror(err));
                free(p);
                return r;
            }
            if (end)
                break;
            *s = '/';
        }
    }
    struct stat st;
    hs_result r = HS_OK;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        r = hs_fail(e, HS_E_IO, "%s: not a directory", dir);
    free(p);
    return r;
}

bool hs_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

hs_result hs_read_secret_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                              hs_error *e)
{
    return read_whole(path, max_len, READ_SECRET, out, out_len, e);
}

hs_result hs_read_trusted_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                               hs_error *e)
{
    return read_whole(path, max_len, READ_TRUSTED, out, out_len, e);
}
