/* Removal of temporary files left behind by writers that died.
 *
 * hs_atomic_open writes "<path>.tmp.XXXXXX" (mkstemp) and holds an
 * exclusive flock on it until it is renamed into place or removed. A
 * process killed with SIGKILL cannot remove its temporary file, but the
 * kernel drops its lock: a temporary file that can be locked has no live
 * writer and can be removed. Nothing here prints; removal is best effort
 * (a file that cannot be inspected or removed is left alone). */
#ifndef HSMSIGN_UTIL_STALE_TMP_H
#define HSMSIGN_UTIL_STALE_TMP_H

#include <stddef.h>

/* Removes the stale temporary files of PATH: entries of its directory
 * named "<basename of PATH>.tmp." followed by 6 mkstemp characters
 * ([A-Za-z0-9]), that are regular files (symlinks are never followed nor
 * removed) and that no writer has locked. Returns how many were removed. */
size_t hs_stale_tmp_remove(const char *path);

/* The same for every "<name>.tmp.XXXXXX" in DIR, whatever <name>: only for
 * a directory whose files are all written by hsmsign under a lock that
 * serialises them, such as the audit log's checkpoints/, where a kill
 * leaves a temporary file of a name that is never written again. */
size_t hs_stale_tmp_remove_in_dir(const char *dir);

#endif
