/* `audit verify --git`: the log's git history was only appended to (see
 * git.h). The commits and blobs are read with libgit2 in this process (see
 * git_lib.h): no git command runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/checkpoint.h"
#include "audit/git.h"
#include "audit/git_lib.h"
#include "audit/log.h"
#include "audit/record.h"

#define MAX_BLOB ((size_t)1 << 32)
/* A history longer than this is not one hsmsign wrote (one commit per
 * command). */
#define MAX_COMMITS ((size_t)1 << 28)

/* One state of the log: a commit, or the working tree. */
typedef struct state {
    hs_auditlog log;
    uint8_t *note;
    size_t note_len;
} state;

static void state_free(state *s)
{
    hs_auditlog_free(&s->log);
    free(s->note);
    memset(s, 0, sizeof *s);
}

/* cur must extend prev: byte prefix, and a checkpoint no smaller. */
static hs_result check_step(const char *dir, const char *rev, const state *prev, const state *cur,
                            uint64_t *last_size, EVP_PKEY *pub, hs_error *e)
{
    if (cur->log.len < prev->log.len ||
        (prev->log.len > 0 && memcmp(cur->log.data, prev->log.data, prev->log.len) != 0))
        return hs_fail(e, HS_E_VERIFY, "audit log %s: commit %.12s does not extend the entries of "
                                       "its parent: history was rewritten", dir, rev);
    if (cur->note_len == 0)
        return HS_OK;
    hs_checkpoint cp;
    hs_result r = hs_auditlog_check_checkpoint(&cur->log, (const char *)cur->note, cur->note_len,
                                               pub, &cp, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "audit log %s: commit %.12s: ", dir, rev);
    if (cp.size < *last_size)
        return hs_fail(e, HS_E_VERIFY, "audit log %s: commit %.12s: checkpoint size %llu is smaller "
                                       "than its predecessor's %llu", dir, rev,
                       (unsigned long long)cp.size, (unsigned long long)*last_size);
    *last_size = cp.size;
    return HS_OK;
}

/* The bytes of path in tree, NUL-terminated and malloc'd; a path the
 * commit does not have reads as an empty file (the first commits may have
 * no checkpoint). */
static hs_result read_blob(const char *dir, git_repository *repo, const git_tree *tree,
                           const char *path, uint8_t **out, size_t *len, hs_error *e)
{
    *out = NULL;
    *len = 0;
    git_tree_entry *te = NULL;
    git_blob *blob = NULL;
    hs_result r = HS_OK;
    int rc = git_tree_entry_bypath(&te, tree, path);
    if (rc == GIT_ENOTFOUND) {
        *out = calloc(1, 1);
        return *out != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    if (rc != 0 || git_tree_entry_type(te) != GIT_OBJECT_BLOB ||
        git_blob_lookup(&blob, repo, git_tree_entry_id(te)) != 0) {
        r = rc == 0 && git_tree_entry_type(te) != GIT_OBJECT_BLOB
                ? hs_fail(e, HS_E_VERIFY, "audit log %s: git: %s is not a file", dir, path)
                : hs_git_fail(e, dir, path);
        goto out;
    }
    git_object_size_t size = git_blob_rawsize(blob);
    if (size > MAX_BLOB) {
        r = hs_fail(e, HS_E_IO, "audit log %s: git: %s is too large", dir, path);
        goto out;
    }
    *out = malloc((size_t)size + 1);
    if (*out == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(*out, git_blob_rawcontent(blob), (size_t)size);
    (*out)[size] = '\0';
    *len = (size_t)size;
out:
    git_blob_free(blob);
    git_tree_entry_free(te);
    return r;
}

static hs_result load_state(const char *dir, git_repository *repo, const git_oid *id, state *s,
                            hs_error *e)
{
    memset(s, 0, sizeof *s);
    git_commit *commit = NULL;
    git_tree *tree = NULL;
    uint8_t *entries = NULL;
    size_t len;
    hs_result r = HS_OK;
    if (git_commit_lookup(&commit, repo, id) != 0 || git_commit_tree(&tree, commit) != 0)
        r = hs_git_fail(e, dir, "reading a commit");
    if (r == HS_OK)
        r = read_blob(dir, repo, tree, HS_AUDIT_ENTRIES_FILE, &entries, &len, e);
    if (r == HS_OK)
        r = hs_auditlog_from_bytes(entries, len, &s->log, e);
    if (r == HS_OK)
        r = read_blob(dir, repo, tree, HS_AUDIT_CHECKPOINT_FILE, &s->note, &s->note_len, e);
    if (r != HS_OK)
        state_free(s);
    git_tree_free(tree);
    git_commit_free(commit);
    return r;
}

/* HEAD's first-parent chain, root first. */
static hs_result first_parents(const char *dir, git_repository *repo, git_oid **out,
                               size_t *count, hs_error *e)
{
    *out = NULL;
    *count = 0;
    git_oid id;
    if (git_reference_name_to_id(&id, repo, "HEAD") != 0)
        return hs_git_fail(e, dir, "HEAD");
    git_oid *ids = NULL;
    size_t n = 0, cap = 0;
    hs_result r = HS_OK;
    for (bool more = true; r == HS_OK && more;) {
        if (n == cap) {
            size_t bigger = cap == 0 ? 64 : cap * 2;
            git_oid *grown = bigger <= MAX_COMMITS ? realloc(ids, bigger * sizeof *ids) : NULL;
            if (grown == NULL) {
                r = hs_fail(e, HS_E_NOMEM, "audit log %s: git: history too long", dir);
                break;
            }
            ids = grown;
            cap = bigger;
        }
        ids[n++] = id;
        git_commit *c = NULL;
        if (git_commit_lookup(&c, repo, &id) != 0) {
            r = hs_git_fail(e, dir, "reading a commit");
            break;
        }
        more = git_commit_parentcount(c) > 0;
        if (more)
            id = *git_commit_parent_id(c, 0);
        git_commit_free(c);
    }
    if (r != HS_OK) {
        free(ids);
        return r;
    }
    for (size_t i = 0; i < n / 2; i++) {
        git_oid t = ids[i];
        ids[i] = ids[n - 1 - i];
        ids[n - 1 - i] = t;
    }
    *out = ids;
    *count = n;
    return HS_OK;
}

hs_result hs_auditgit_verify(const char *dir, EVP_PKEY *pub, size_t *commits, hs_error *e)
{
    *commits = 0;
    git_repository *repo = NULL;
    git_oid *ids = NULL;
    size_t count = 0;
    hs_result r = hs_git_open(dir, false, &repo, e);
    if (r == HS_OK)
        r = first_parents(dir, repo, &ids, &count, e);
    if (r != HS_OK) {
        git_repository_free(repo);
        return hs_error_prefix(e, "no git history to verify: ");
    }
    state prev;
    memset(&prev, 0, sizeof prev);
    uint64_t last_size = 0;
    for (size_t i = 0; r == HS_OK && i < count; i++) {
        char rev[GIT_OID_HEXSZ + 1];
        git_oid_tostr(rev, sizeof rev, &ids[i]);
        state cur;
        r = load_state(dir, repo, &ids[i], &cur, e);
        if (r == HS_OK)
            r = check_step(dir, rev, &prev, &cur, &last_size, pub, e);
        state_free(&prev);
        prev = cur; /* zeroed by load_state on failure */
        if (r == HS_OK)
            (*commits)++;
    }
    /* The working tree may hold entries appended since the last commit,
     * never fewer. */
    if (r == HS_OK) {
        state cur;
        memset(&cur, 0, sizeof cur);
        r = hs_auditlog_load(dir, &cur.log, e);
        if (r == HS_OK)
            r = check_step(dir, "(working tree)", &prev, &cur, &last_size, pub, e);
        state_free(&cur);
    }
    state_free(&prev);
    free(ids);
    git_repository_free(repo);
    return r;
}
