#include "util/outpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

/* The kernel's own limit on symlinks in one lookup (ELOOP). */
#define MAX_LINK_HOPS 40
/* How deep a protected directory is searched for a hard link of the
 * output: the audit log and key store are shallow (the log's .git objects
 * sit at depth 3). */
#define MAX_SCAN_DEPTH 6

/* The components missing below the longest existing prefix, last first. */
typedef struct missing_tail {
    char **v;
    size_t n, cap;
} missing_tail;

static void tail_free(missing_tail *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
}

static bool tail_push(missing_tail *t, const char *comp)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **v = realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return false;
        t->v = v;
        t->cap = cap;
    }
    if ((t->v[t->n] = strdup(comp)) == NULL)
        return false;
    t->n++;
    return true;
}

/* "dir/comp" (or "/comp" when dir is "/"); NULL when out of memory. */
static char *join(const char *dir, const char *comp)
{
    char *out = NULL;
    const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
    return asprintf(&out, "%s%s%s", dir, sep, comp) < 0 ? NULL : out;
}

/* Splits buf in place into its parent and last component: trailing
 * slashes go, "a" has parent ".", "/a" has parent "/". *parent is
 * malloc'd. buf is never "/" here (the root always exists). */
static bool split_last(char *buf, char **parent, const char **comp)
{
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL) {
        *comp = buf;
        *parent = strdup(".");
    } else if (slash == buf) {
        *comp = buf + 1;
        *parent = strdup("/");
    } else {
        *slash = '\0';
        *comp = slash + 1;
        *parent = strdup(buf);
    }
    return *parent != NULL;
}

/* Where a write through the dangling symlink `link` would land; NULL
 * (errno set) when it is not a symlink or cannot be read. */
static char *follow_dangling(const char *link)
{
    struct stat st;
    if (lstat(link, &st) != 0 || !S_ISLNK(st.st_mode))
        return NULL;
    char target[PATH_MAX];
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        return NULL;
    target[n] = '\0';
    if (target[0] == '/')
        return strdup(target);
    char *copy = strdup(link), *parent = NULL;
    const char *comp;
    char *out = NULL;
    if (copy != NULL && split_last(copy, &parent, &comp))
        out = join(parent, target);
    free(copy);
    free(parent);
    return out;
}

/* Appends the missing components to the resolved prefix, lexically: they
 * do not exist, so they hold no symlink, and ".." takes one back. */
static char *append_tail(char *real, const missing_tail *t)
{
    for (size_t i = t->n; i-- > 0 && real != NULL;) {
        const char *comp = t->v[i];
        if (strcmp(comp, ".") == 0 || comp[0] == '\0')
            continue;
        if (strcmp(comp, "..") == 0) {
            char *slash = strrchr(real, '/');
            slash[slash == real ? 1 : 0] = '\0';
            continue;
        }
        char *next = join(real, comp);
        free(real);
        real = next;
    }
    return real;
}

hs_result hs_path_resolve(const char *path, char **out, hs_error *e)
{
    *out = NULL;
    if (path[0] == '\0')
        return hs_fail(e, HS_E_USAGE, "an empty path");
    missing_tail tail = {0};
    char *buf = strdup(path), *real = NULL;
    hs_result r = buf != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    int hops = 0;
    while (r == HS_OK && (real = realpath(buf, NULL)) == NULL) {
        /* "." and "/" end the walk up; only a removed working directory
         * makes them fail. */
        if ((errno != ENOENT && errno != ENOTDIR) || strcmp(buf, ".") == 0 ||
            strcmp(buf, "/") == 0) {
            r = hs_fail(e, HS_E_IO, "%s: cannot resolve %s: %s", path, buf, strerror(errno));
            break;
        }
        char *next = hops < MAX_LINK_HOPS ? follow_dangling(buf) : NULL;
        if (next != NULL) {
            hops++;
        } else {
            const char *comp;
            if (!split_last(buf, &next, &comp) || !tail_push(&tail, comp)) {
                free(next);
                r = hs_fail(e, HS_E_NOMEM, "out of memory");
                break;
            }
        }
        free(buf);
        buf = next;
    }
    if (r == HS_OK && (*out = append_tail(real, &tail)) == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    free(buf);
    tail_free(&tail);
    return r;
}

/* Resolved path t is dir p or below it, by name. */
static bool below_by_name(const char *t, const char *p)
{
    size_t n = strlen(p);
    if (strcmp(p, "/") == 0)
        return true;
    return strncmp(t, p, n) == 0 && (t[n] == '\0' || t[n] == '/');
}

/* Some existing ancestor of the resolved path t (t included) is the
 * directory dir, by device+inode: catches a second spelling of dir that
 * realpath cannot see through (a bind mount). */
static hs_result below_by_inode(const char *t, const struct stat *dir, bool *below, hs_error *e)
{
    *below = false;
    char *s = strdup(t);
    if (s == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    for (;;) {
        struct stat st;
        if (stat(s, &st) == 0 && st.st_dev == dir->st_dev && st.st_ino == dir->st_ino) {
            *below = true;
            break;
        }
        char *slash = strrchr(s, '/');
        if (slash == NULL || strcmp(s, "/") == 0)
            break;
        slash[slash == s ? 1 : 0] = '\0';
    }
    free(s);
    return HS_OK;
}

/* Finds a name for the file `target` (device+inode) under dir; *found is
 * malloc'd, NULL when there is none. Best effort: unreadable
 * subdirectories are skipped (the writes that matter go to files hsmsign
 * itself created, which it can read). */
static void find_hard_link(const char *dir, const struct stat *target, int depth, char **found)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while (*found == NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        char *child = join(dir, de->d_name);
        if (child == NULL)
            break;
        if (st.st_dev == target->st_dev && st.st_ino == target->st_ino) {
            *found = child;
            break;
        }
        if (S_ISDIR(st.st_mode) && depth < MAX_SCAN_DEPTH)
            find_hard_link(child, target, depth + 1, found);
        free(child);
    }
    closedir(d);
}

static hs_result check_dir(const char *path, const char *t, const struct stat *tst,
                           const hs_protected_dir *d, hs_error *e)
{
    char *p;
    hs_result r = hs_path_resolve(d->path, &p, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s %s: ", d->what, d->path);
    struct stat pst;
    bool dir_exists = stat(p, &pst) == 0 && S_ISDIR(pst.st_mode);
    bool below = below_by_name(t, p);
    if (!below && dir_exists)
        r = below_by_inode(t, &pst, &below, e);
    const char *shown = strcmp(path, t) == 0 ? "" : " (it resolves to ";
    if (r == HS_OK && below) {
        r = hs_fail(e, HS_E_USAGE,
                    "output %s%s%s%s is inside the %s %s; refusing to write there (choose a path "
                    "outside it)",
                    path, shown, *shown ? t : "", *shown ? ")" : "", d->what, d->path);
    } else if (r == HS_OK && dir_exists && tst != NULL && S_ISREG(tst->st_mode) &&
               tst->st_nlink > 1) {
        char *found = NULL;
        find_hard_link(p, tst, 0, &found);
        if (found != NULL)
            r = hs_fail(e, HS_E_USAGE,
                        "output %s is a hard link to %s in the %s %s; refusing to write it", path,
                        found, d->what, d->path);
        free(found);
    }
    free(p);
    return r;
}

hs_result hs_outpath_check(const char *path, const hs_protected_dir *dirs, size_t n, hs_error *e)
{
    char *t;
    hs_result r = hs_path_resolve(path, &t, e);
    if (r != HS_OK)
        return r;
    struct stat tst;
    bool exists = stat(t, &tst) == 0;
    for (size_t i = 0; i < n && r == HS_OK; i++)
        r = check_dir(path, t, exists ? &tst : NULL, &dirs[i], e);
    free(t);
    return r;
}

hs_result hs_path_same(const char *a, const char *b, bool *same, hs_error *e)
{
    *same = false;
    char *ra = NULL, *rb = NULL;
    hs_result r = hs_path_resolve(a, &ra, e);
    if (r == HS_OK)
        r = hs_path_resolve(b, &rb, e);
    if (r == HS_OK)
        *same = strcmp(ra, rb) == 0 || hs_same_file(ra, rb);
    free(ra);
    free(rb);
    return r;
}

hs_result hs_outpath_not_input(const char *output, const char *input, const char *role,
                               hs_error *e)
{
    bool same;
    hs_result r = hs_path_same(output, input, &same, e);
    if (r == HS_OK && same)
        r = hs_fail(e, HS_E_USAGE, "output %s is the %s file %s; an input is never "
                                   "overwritten (choose another output path)",
                    output, role, input);
    return r;
}
