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

/* Creates the repository on first use, stages entries.jsonl (as segments,
 * git_lib.h: only the last one and the new ones are read), checkpoint,
 * checkpoint.state, checkpoints/ and .gitignore (as `git add` would, index
 * included), and commits them as "hsmsign <hsmsign@localhost>" when the tree differs from
 * HEAD's. The caller holds the audit log's lock (hs_audit_lock): git lock
 * files found then were left by a killed process and are removed.
 * known_changed (the caller has just written a new checkpoint) is no longer
 * needed: comparing tree ids costs nothing. *committed tells whether a
 * commit was made. */
hs_result hs_auditgit_commit(const char *dir, const char *message, bool known_changed,
                             bool *committed, hs_error *e) HS_MUST_CHECK;

/* Starts libgit2's initialisation on a thread, once per process, so that
 * a command that will commit does not wait for it then (git.c says why
 * it is slow). hs_auditgit_warm_wait joins that thread; call it before
 * the process exits (hs_audit_close does). Failures only leave the
 * initialisation to the first commit, which reports them. */
void hs_auditgit_warm_up(void);
void hs_auditgit_warm_wait(void);

/* Lines per segment of the entries in git (git_lib.h): 256 by default.
 * Tests set it small to cross segment boundaries with a few entries;
 * changing it on a log only changes how later segments are cut. */
extern unsigned hs_auditgit_segment_entries;

typedef struct hs_auditgit_report {
    size_t commits;       /* commits checked */
    size_t skipped;       /* commits before the trusted checkpoint's, not read */
    bool from_checkpoint; /* the walk started at old_note's commit */
} hs_auditgit_report;

/* Walks the first-parent history to HEAD, then the working tree: each
 * state's entries file starts with the previous state's bytes, each
 * checkpoint verifies with pub and commits to a prefix of its own entries,
 * and checkpoint sizes never decrease. The tree is extended, never
 * rebuilt: hashing costs the entries once, and each commit a comparison
 * of its bytes with its parent's (none when the blob is the same).
 *
 * old_note (may be NULL): a checkpoint the caller has verified and
 * trusts (`--checkpoint OLD`, proven a prefix of the latest by
 * hs_auditlog_verify). The walk then starts at the newest commit whose
 * checkpoint file is old_note byte for byte, whose entries must give its
 * root; the commits before it are not read (what they held is what OLD
 * commits to). With no such commit, from the root commit. */
hs_result hs_auditgit_verify(const char *dir, EVP_PKEY *pub, const char *old_note, size_t old_len,
                             hs_auditgit_report *rep, hs_error *e) HS_MUST_CHECK;

#endif
