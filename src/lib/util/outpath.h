/* Where an output path really points, and whether hsmsign may write there.
 *
 * The audit log and the key store hold files that must never be replaced
 * by a command's output (`sign raw IN audit/entries.jsonl` used to destroy
 * the log; `... keys/k1.key` the only wrapped copy of a key). A string
 * comparison of paths is not enough: `audit/../audit/x`, a symlinked
 * directory, a symlink file or a second spelling of the same directory all
 * reach the same files. So paths are resolved as the kernel would: the
 * longest existing prefix by realpath (symlinks and ".." followed), the
 * missing rest appended lexically, a dangling symlink followed to where a
 * write through it would land; and "inside" is decided both by the
 * resolved strings and by device+inode of the directory and every
 * existing ancestor of the output (bind mounts, other spellings).
 *
 * This is a check before writing, not a lock: someone who can rename
 * directories between the check and the write is outside the threat this
 * guards against (a mistyped or hostile argument or manifest). */
#ifndef HSMSIGN_UTIL_OUTPATH_H
#define HSMSIGN_UTIL_OUTPATH_H

#include <stdbool.h>
#include <stddef.h>

#include "util/result.h"

typedef struct hs_protected_dir {
    const char *path; /* as configured; need not exist yet */
    const char *what; /* for messages: "audit log", "key store" */
} hs_protected_dir;

/* The absolute path `path` names, resolved as above; *out is malloc'd.
 * HS_E_IO when an existing prefix cannot be resolved (e.g. EACCES). */
hs_result hs_path_resolve(const char *path, char **out, hs_error *e) HS_MUST_CHECK;

/* HS_E_USAGE, with a message naming path, the directory and the reason,
 * when path resolves to one of dirs or into one (at any depth), or is an
 * existing file with a hard link inside one. */
hs_result hs_outpath_check(const char *path, const hs_protected_dir *dirs, size_t n,
                           hs_error *e) HS_MUST_CHECK;

/* Sets *same when a and b name the same file: equal once resolved, or the
 * same device+inode when both exist (hard links). */
hs_result hs_path_same(const char *a, const char *b, bool *same, hs_error *e) HS_MUST_CHECK;

/* HS_E_USAGE when output names the same file as input: an input is never
 * replaced by an output. `role` names the input in the message: "output X
 * is the <role> file Y". */
hs_result hs_outpath_not_input(const char *output, const char *input, const char *role,
                               hs_error *e) HS_MUST_CHECK;

#endif
