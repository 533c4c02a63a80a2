/* Stale temporary file removal (see stale_tmp.h).
 *
 * Why a lock and not an age or a pid: a writer may keep its temporary file
 * open for as long as a large APK takes to sign, and a pid can be reused;
 * an flock is dropped by the kernel exactly when the writer dies (all its
 * descriptors close), and is per open file description, so it also tells
 * two writers of one process apart.
 *
 * The race with a live writer: the writer creates its file (mkstemp) and
 * only then locks it, so a cleaner can find it unlocked in between. That is
 * settled on the writer's side (hs_atomic_open): after locking, it checks
 * that its name still refers to its file and, if a cleaner removed it,
 * starts again with a new name. Once the writer holds the lock no cleaner
 * can remove its name, since a cleaner unlinks only while holding the lock
 * on the very inode the name refers to (checked after locking). An age
 * threshold was not used: it would narrow the window, not close it, and
 * would leave a just-killed run's files to the re-run that follows. */
#include "util/stale_tmp.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_INFIX ".tmp."
#define TMP_INFIX_LEN (sizeof TMP_INFIX - 1)
#define TMP_RANDOM_LEN 6 /* the XXXXXX of mkstemp */

/* mkstemp replaces XXXXXX with ASCII letters and digits (glibc: all 62,
 * musl: letters); a locale-independent test. */
static bool is_mkstemp_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* NAME is "<stem>.tmp.XXXXXX" with a non-empty stem, equal to BASE unless
 * BASE is NULL. */
static bool is_tmp_name(const char *name, const char *base, size_t base_len)
{
    size_t len = strlen(name), tail = TMP_INFIX_LEN + TMP_RANDOM_LEN;
    if (len <= tail)
        return false;
    size_t stem = len - tail;
    if (base != NULL && (stem != base_len || memcmp(name, base, base_len) != 0))
        return false;
    if (memcmp(name + stem, TMP_INFIX, TMP_INFIX_LEN) != 0)
        return false;
    for (size_t i = stem + TMP_INFIX_LEN; i < len; i++)
        if (!is_mkstemp_char(name[i]))
            return false;
    return true;
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Removes DIR_FD/NAME if it is a regular file nobody holds locked. */
static bool remove_if_stale(int dir_fd, const char *name)
{
    struct stat before, opened, now;
    /* lstat first so that a device or FIFO named like a temporary file is
     * never even opened; O_NOFOLLOW refuses a symlink swapped in after it,
     * O_NONBLOCK keeps a FIFO swapped in from blocking the open. */
    if (fstatat(dir_fd, name, &before, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(before.st_mode))
        return false;
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return false;
    /* The lock succeeding means no live writer. The name is checked again
     * after locking: the file we locked must still be the one the name
     * refers to, or we would unlink a name some other file now has. */
    bool removed = fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode) &&
                   same_inode(&before, &opened) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
                   fstatat(dir_fd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
                   same_inode(&now, &opened) && unlinkat(dir_fd, name, 0) == 0;
    close(fd); /* releases the lock */
    return removed;
}

/* Removes the stale "<base>.tmp.XXXXXX" (any stem when BASE is NULL) of
 * DIR. Unlinking entries while reading the directory is allowed: readdir
 * then may or may not return the removed entries, nothing else changes. */
static size_t remove_matching(const char *dir, const char *base)
{
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return 0;
    DIR *d = fdopendir(dir_fd);
    if (d == NULL) {
        close(dir_fd);
        return 0;
    }
    size_t removed = 0, base_len = base != NULL ? strlen(base) : 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (is_tmp_name(de->d_name, base, base_len) && remove_if_stale(dirfd(d), de->d_name))
            removed++;
    closedir(d);
    return removed;
}

size_t hs_stale_tmp_remove(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return remove_matching(".", path);
    if (slash[1] == '\0')
        return 0; /* a directory, not a file */
    char *dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
    if (dir == NULL)
        return 0;
    size_t removed = remove_matching(dir, slash + 1);
    free(dir);
    return removed;
}

size_t hs_stale_tmp_remove_in_dir(const char *dir)
{
    return remove_matching(dir, NULL);
}
