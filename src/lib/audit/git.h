/* The audit log directory as a git repository, written and read with
 * libgit2 in this process (no git command is run; git_lib.h says what a
 * hostile .git/config can and cannot do): each checkpoint commits the
 * entries and checkpoints, and `audit verify --git` walks the history to
 * check it was only ever appended to. */
#ifndef HSMSIGN_AUDIT_GIT_H
#define HSMSIGN_AUDIT_GIT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/result.h"

/* Creates the repository on first use, stages entries.jsonl, checkpoint,
 * checkpoints/ and .gitignore (as `git add` would, index included), and
 * commits them as "hsmsign <hsmsign@localhost>" when the tree differs from
 * HEAD's. The caller holds the audit log's lock (hs_audit_lock): git lock
 * files found then were left by a killed process and are removed.
 * known_changed (the caller has just written a new checkpoint) is no longer
 * needed: comparing tree ids costs nothing. *committed tells whether a
 * commit was made. */
hs_result hs_auditgit_commit(const char *dir, const char *message, bool known_changed,
                             bool *committed, hs_error *e) HS_MUST_CHECK;

/* Walks the first-parent history from the root commit to HEAD, then the
 * working tree: each state's entries file starts with the previous
 * state's bytes, each checkpoint verifies with pub and commits to a prefix
 * of its own entries, and checkpoint sizes never decrease. */
hs_result hs_auditgit_verify(const char *dir, EVP_PKEY *pub, size_t *commits,
                             hs_error *e) HS_MUST_CHECK;

#endif
