/* Private per-user cache directories (the signature cache, the artifact
 * cache: docs/cache.md) and the files in them.
 *
 * Someone who can write such a directory can plant entries (harmless:
 * every entry is verified before use) or remove them (a silent slowdown);
 * either way the cache is no longer ours, so it is refused rather than
 * used. lstat: a symbolic link could be re-pointed by whoever owns it. */
#ifndef HSMSIGN_UTIL_PRIVDIR_H
#define HSMSIGN_UTIL_PRIVDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/* Creates dir (0700, and its parents) when missing, then checks that it is
 * a directory (not a symbolic link) of this user that group and others
 * cannot write. HS_E_VERIFY "WHAT DIR is REASON; ... or turn the cache off
 * with OPTION off" (what: "signature cache"; option: "--signature-cache"). */
hs_result hs_privdir_open(const char *dir, const char *what, const char *option,
                          hs_error *e) HS_MUST_CHECK;

/* Opens a file of such a directory for reading: a regular file of this
 * user, not followed through a symbolic link, of at most max bytes. *fd is
 * -1 and *found false when there is none. HS_E_FORMAT naming the file
 * otherwise. */
hs_result hs_privdir_open_file(const char *path, uint64_t max, int *fd, uint64_t *size,
                               bool *found, hs_error *e) HS_MUST_CHECK;

#endif
