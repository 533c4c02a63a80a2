/* libgit2 for the audit log (git.c, git_verify.c). Internal to
 * src/lib/audit.
 *
 * Everything runs in this process: no git command is started, so no child
 * inherits the environment (HSMSIGN_PIN) and nothing in the log's
 * .git/config can run a command. What libgit2 1.5 does with the settings a
 * hostile repository could carry (checked in its source, v1.5.1, and by
 * tests/integration/test_git_hostile.sh):
 *   - it starts no process at all: there is no exec, fork, posix_spawn,
 *     popen or system() in libgit2's src/; core.fsmonitor and
 *     core.hooksPath are not read, hooks are never run, core.sshCommand is
 *     only for transports, which this code never uses;
 *   - filter drivers (`filter=NAME` in .gitattributes with
 *     filter.NAME.clean/smudge) are never executed: libgit2 runs only
 *     filters registered in-process (crlf, ident), and blobs are made here
 *     with git_blob_create_from_buffer, which applies no filter at all, so
 *     the bytes committed are the file's bytes;
 *   - include.path / includeIf in .git/config are read as further config
 *     files: data, no command, and none of them changes what is committed
 *     (identity, paths and contents are fixed here);
 *   - global, XDG and system config are not read (their search paths are
 *     set empty at initialisation), nor GIT_DIR, GIT_INDEX_FILE,
 *     GIT_CONFIG_* or other environment variables (libgit2 reads those
 *     only with GIT_REPOSITORY_OPEN_FROM_ENV, not used). */
#ifndef HSMSIGN_AUDIT_GIT_LIB_H
#define HSMSIGN_AUDIT_GIT_LIB_H

#include <git2.h>
#include <stdbool.h>

#include "audit/git_dl.h" /* after <git2.h>: git_* calls go through hs_git */

#include "util/result.h"

/* The entries as git stores them (git.c writes, git_verify.c reads):
 * entries.jsonl cut into segments of HS_AUDIT_SEGMENT_ENTRIES lines,
 * log/DDDDDD/SSSSSSSSSS.jsonl (segment S, directory S / 256), whose
 * concatenation in path order is the file. A commit rewrites only the last
 * segment and adds new ones: its cost and the repository's growth follow
 * the entries appended, not the log's size (one blob of the whole file
 * cost 23 MB and 32 s per commit at a million entries). Histories written
 * before hold the whole file as entries.jsonl; both read the same. */
#define HS_AUDIT_SEGMENT_DIR "log"
#define HS_AUDIT_SEGMENTS_PER_DIR 256u
#define HS_AUDIT_SEGMENT_PATH "log/%06llu/%010llu.jsonl"

/* Opens DIR/.git (exactly there: no search upwards). With create, a
 * missing repository is created with its .gitignore. */
hs_result hs_git_open(const char *dir, bool create, git_repository **repo,
                      hs_error *e) HS_MUST_CHECK;
/* Fails (HS_E_AUDIT) with libgit2's last error: "audit log DIR: git:
 * WHAT: reason". */
hs_result hs_git_fail(hs_error *e, const char *dir, const char *what) HS_MUST_CHECK;

#endif
