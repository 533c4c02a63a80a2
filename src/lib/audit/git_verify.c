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
#include "audit/state.h"
#include "util/file.h"

#define MAX_BLOB ((size_t)1 << 32)
/* A history longer than this is not one hsmsign wrote (one commit per
 * command). */
#define MAX_COMMITS ((size_t)1 << 28)

/* The walk so far: the previous state's complete lines, and the tree of
 * the latest checkpoint checked, over those bytes. Each state then costs
 * a comparison of its bytes with the previous ones and the hashes of the
 * entries its checkpoint newly covers: the tree is never rebuilt. */
typedef struct walk {
    uint8_t *prev;
    size_t prev_len;
    git_oid prev_blob; /* the previous commit's entries blob */
    bool have_blob;
    hs_auditstate st;
    uint64_t last_size;
} walk;

/* Extends w->st over data (which starts with the bytes it covers) to the
 * checkpoint's size, and compares the root. */
static hs_result cover(walk *w, const uint8_t *data, size_t complete, const hs_checkpoint *cp,
                       hs_error *e)
{
    hs_result r = HS_OK;
    while (r == HS_OK && w->st.size < cp->size) {
        const uint8_t *start = data + w->st.end,
                      *nl = memchr(start, '\n', complete - (size_t)w->st.end);
        if (nl == NULL)
            return hs_fail(e, HS_E_VERIFY, "checkpoint of '%s' covers %llu entries but the log has "
                                           "only %llu: entries were removed", cp->origin,
                           (unsigned long long)cp->size, (unsigned long long)w->st.size);
        uint8_t leaf[HS_MERKLE_HASH_LEN];
        r = hs_merkle_leaf_hash(start, (size_t)(nl - start), leaf, e);
        if (r == HS_OK)
            r = hs_auditstate_push_leaf(&w->st, leaf, (size_t)(nl - start), e);
    }
    uint8_t root[HS_MERKLE_HASH_LEN];
    if (r == HS_OK)
        r = hs_auditstate_root(&w->st, root, e);
    if (r == HS_OK)
        r = hs_auditlog_compare_root(cp, root, e);
    return r;
}

/* The state (data: its entries file, taken over; note: its checkpoint,
 * may be empty) extends the previous one: byte prefix, and a checkpoint
 * no smaller that commits to a prefix of its entries. */
static hs_result check_step(const char *dir, const char *rev, walk *w, uint8_t *data, size_t len,
                            const uint8_t *note, size_t note_len, EVP_PKEY *pub, hs_error *e)
{
    size_t complete = len;
    while (complete > 0 && data[complete - 1] != '\n')
        complete--;
    hs_result r = HS_OK;
    if (complete < w->prev_len || (w->prev_len > 0 && memcmp(data, w->prev, w->prev_len) != 0))
        r = hs_fail(e, HS_E_VERIFY, "audit log %s: commit %.12s does not extend the entries of "
                                    "its parent: history was rewritten", dir, rev);
    hs_checkpoint cp;
    if (r == HS_OK && note_len > 0) {
        r = hs_auditlog_verify_note((const char *)note, note_len, pub, &cp, e);
        if (r == HS_OK && cp.size < w->last_size)
            r = hs_fail(e, HS_E_VERIFY, "checkpoint size %llu is smaller than its predecessor's "
                                        "%llu", (unsigned long long)cp.size,
                        (unsigned long long)w->last_size);
        if (r == HS_OK)
            r = cover(w, data, complete, &cp, e);
        if (r == HS_OK)
            w->last_size = cp.size;
        if (r != HS_OK)
            hs_error_prefix(e, "audit log %s: commit %.12s: ", dir, rev);
    }
    free(w->prev);
    w->prev = data;
    w->prev_len = complete;
    return r;
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

static hs_result commit_tree_of(const char *dir, git_repository *repo, const git_oid *id,
                                git_tree **tree, hs_error *e)
{
    git_commit *commit = NULL;
    *tree = NULL;
    hs_result r = HS_OK;
    if (git_commit_lookup(&commit, repo, id) != 0 || git_commit_tree(tree, commit) != 0)
        r = hs_git_fail(e, dir, "reading a commit");
    git_commit_free(commit);
    return r;
}

/* The blob id of path in tree (*found false when absent). */
static hs_result blob_id(const char *dir, const git_tree *tree, const char *path, git_oid *out,
                         bool *found, hs_error *e)
{
    git_tree_entry *te = NULL;
    *found = false;
    int rc = git_tree_entry_bypath(&te, tree, path);
    if (rc != 0 && rc != GIT_ENOTFOUND)
        return hs_git_fail(e, dir, path);
    if (rc == 0) {
        *out = *git_tree_entry_id(te);
        *found = true;
    }
    git_tree_entry_free(te);
    return HS_OK;
}

/* One commit: an entries blob the same as the previous commit's needs no
 * reading (same bytes), only its checkpoint. */
static hs_result check_commit(const char *dir, git_repository *repo, const git_oid *id,
                              walk *w, EVP_PKEY *pub, hs_error *e)
{
    char rev[GIT_OID_HEXSZ + 1];
    git_oid_tostr(rev, sizeof rev, id);
    git_tree *tree = NULL;
    git_oid blob;
    bool found = false;
    uint8_t *entries = NULL, *note = NULL;
    size_t len = 0, note_len = 0;
    hs_result r = commit_tree_of(dir, repo, id, &tree, e);
    if (r == HS_OK)
        r = blob_id(dir, tree, HS_AUDIT_ENTRIES_FILE, &blob, &found, e);
    bool same = r == HS_OK && found && w->have_blob && git_oid_equal(&blob, &w->prev_blob);
    if (r == HS_OK && same) {
        entries = malloc(w->prev_len + 1);
        if (entries == NULL)
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
        else if (w->prev_len > 0)
            memcpy(entries, w->prev, w->prev_len);
        len = w->prev_len;
    } else if (r == HS_OK) {
        r = read_blob(dir, repo, tree, HS_AUDIT_ENTRIES_FILE, &entries, &len, e);
    }
    if (r == HS_OK)
        r = read_blob(dir, repo, tree, HS_AUDIT_CHECKPOINT_FILE, &note, &note_len, e);
    if (r == HS_OK) {
        r = check_step(dir, rev, w, entries, len, note, note_len, pub, e);
        entries = NULL; /* taken over */
        w->prev_blob = blob;
        w->have_blob = found;
    }
    free(entries);
    free(note);
    git_tree_free(tree);
    return r;
}

/* The newest commit whose checkpoint is old_note, byte for byte (only the
 * small checkpoint blobs are read); count when none is. */
static hs_result find_base(const char *dir, git_repository *repo, const git_oid *ids, size_t count,
                           const char *old_note, size_t old_len, size_t *base, hs_error *e)
{
    *base = count;
    hs_result r = HS_OK;
    for (size_t i = count; r == HS_OK && *base == count && i-- > 0;) {
        git_tree *tree = NULL;
        uint8_t *note = NULL;
        size_t len = 0;
        r = commit_tree_of(dir, repo, &ids[i], &tree, e);
        if (r == HS_OK)
            r = read_blob(dir, repo, tree, HS_AUDIT_CHECKPOINT_FILE, &note, &len, e);
        if (r == HS_OK && len == old_len && memcmp(note, old_note, len) == 0)
            *base = i;
        free(note);
        git_tree_free(tree);
    }
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

/* The working tree may hold entries appended since the last commit,
 * never fewer. */
static hs_result check_worktree(const char *dir, walk *w, EVP_PKEY *pub, hs_error *e)
{
    char *path;
    uint8_t *data = NULL;
    size_t len = 0;
    if (asprintf(&path, "%s/" HS_AUDIT_ENTRIES_FILE, dir) < 0)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = hs_read_file(path, MAX_BLOB, &data, &len, e);
    free(path);
    if (r == HS_OK)
        r = check_step(dir, "(working tree)", w, data, len, NULL, 0, pub, e);
    return r;
}

hs_result hs_auditgit_verify(const char *dir, EVP_PKEY *pub, const char *old_note, size_t old_len,
                             hs_auditgit_report *rep, hs_error *e)
{
    memset(rep, 0, sizeof *rep);
    git_repository *repo = NULL;
    git_oid *ids = NULL;
    size_t count = 0, base = 0;
    hs_result r = hs_git_open(dir, false, &repo, e);
    if (r == HS_OK)
        r = first_parents(dir, repo, &ids, &count, e);
    if (r != HS_OK) {
        git_repository_free(repo);
        return hs_error_prefix(e, "no git history to verify: ");
    }
    if (old_note != NULL)
        r = find_base(dir, repo, ids, count, old_note, old_len, &base, e);
    rep->from_checkpoint = r == HS_OK && old_note != NULL && base < count;
    if (!rep->from_checkpoint)
        base = 0;
    rep->skipped = base;
    walk w;
    memset(&w, 0, sizeof w);
    hs_auditstate_init(&w.st);
    for (size_t i = base; r == HS_OK && i < count; i++) {
        r = check_commit(dir, repo, &ids[i], &w, pub, e);
        if (r == HS_OK)
            rep->commits++;
    }
    if (r == HS_OK)
        r = check_worktree(dir, &w, pub, e);
    free(w.prev);
    free(ids);
    git_repository_free(repo);
    return r;
}
