/* The audit log directory as a git repository, driven by running the git
 * command (posix_spawn; no library): each checkpoint commits the entries
 * and checkpoints, and `audit verify --git` walks the history to check it
 * was only ever appended to. */
#ifndef HSMSIGN_AUDIT_GIT_H
#define HSMSIGN_AUDIT_GIT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/result.h"

/* Creates the repository on first use, stages entries.jsonl, checkpoint
 * and checkpoints/, and commits them when they changed. known_changed says
 * the caller has just written a new checkpoint, so there is something to
 * commit: the commit is tried first and `git diff --cached` (one process
 * of three) runs only if it fails.
 * *committed tells whether a commit was made. */
hs_result hs_auditgit_commit(const char *dir, const char *message, bool known_changed,
                             bool *committed, hs_error *e) HS_MUST_CHECK;

/* Walks the first-parent history from the root commit to HEAD, then the
 * working tree: each state's entries file starts with the previous
 * state's bytes, each checkpoint verifies with pub and commits to a prefix
 * of its own entries, and checkpoint sizes never decrease. */
hs_result hs_auditgit_verify(const char *dir, EVP_PKEY *pub, size_t *commits,
                             hs_error *e) HS_MUST_CHECK;

#endif
