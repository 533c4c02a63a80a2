/* Running git for the audit log (git.c): shared by the commit path and
 * the history verifier (git_verify.c). Internal to src/lib/audit. */
#ifndef HSMSIGN_AUDIT_GIT_RUN_H
#define HSMSIGN_AUDIT_GIT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/result.h"

typedef struct hs_git_proc {
    pid_t pid;
    int out_fd; /* its stdout when captured, else -1 */
} hs_git_proc;

/* Starts `git --git-dir=DIR/.git --work-tree=DIR <fixed config> args...`;
 * stdin from stdin_fd (or /dev/null when < 0), stderr discarded. */
hs_result hs_git_spawn(const char *dir, const char *const *args, int stdin_fd, bool capture,
                       hs_git_proc *proc, hs_error *e) HS_MUST_CHECK;
/* Closes its stdout and reaps it: the exit status (128 if killed). */
int hs_git_wait(hs_git_proc *proc);
/* Runs git to completion, capturing stdout (NUL-terminated, malloc'd);
 * fails unless it exits 0. */
hs_result hs_git_run(const char *dir, const char *const *args, uint8_t **out, size_t *out_len,
                     hs_error *e) HS_MUST_CHECK;

#endif
