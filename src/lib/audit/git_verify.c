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
#include "audit/merkle.h"
#include "audit/record.h"
#include "audit/state.h"
#include "util/file.h"

#define MAX_BLOB ((size_t)1 << 32)
/* A history longer than this is not one hsmsign wrote (one commit per
 * command). */
#define MAX_COMMITS ((size_t)1 << 28)

/* A state of the entries as pieces laid end to end: the log/ segments of
 * a commit (git_lib.h), the whole entries.jsonl of a commit from before
 * them, or the working tree's file split where it still matches the last
 * commit's pieces. Pieces with the same id at the same place hold the same
 * bytes: comparing two states reads only the pieces that differ. */
typedef struct piece {
    git_oid id;
    uint64_t start, size;
    const uint8_t *mem; /* the bytes in memory (the working tree), else a blob */
} piece;

typedef struct dirent_ref {
    git_oid id;       /* a log/ directory's tree */
    size_t first, n;  /* its pieces */
} dirent_ref;

typedef struct view {
    piece *p;
    size_t n, cap;
    dirent_ref *d;
    size_t nd, dcap;
    uint64_t len, complete; /* bytes, and bytes up to the last newline */
} view;

static void view_free(view *v)
{
    free(v->p);
    free(v->d);
    memset(v, 0, sizeof *v);
}

static hs_result grow(void **arr, size_t *cap, size_t need, size_t size, hs_error *e)
{
    if (need <= *cap)
        return HS_OK;
    size_t bigger = *cap < 32 ? 64 : *cap * 2;
    if (bigger < need)
        bigger = need;
    void *p = bigger < SIZE_MAX / size ? realloc(*arr, bigger * size) : NULL;
    if (p == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    *arr = p;
    *cap = bigger;
    return HS_OK;
}

static hs_result add_piece(view *v, const git_oid *id, uint64_t size, const uint8_t *mem,
                           hs_error *e)
{
    hs_result r = grow((void **)&v->p, &v->cap, v->n + 1, sizeof *v->p, e);
    if (r != HS_OK)
        return r;
    if (v->len > MAX_BLOB * (uint64_t)256 || size > MAX_BLOB)
        return hs_fail(e, HS_E_VERIFY, "audit log too large");
    v->p[v->n++] = (piece){.id = *id, .start = v->len, .size = size, .mem = mem};
    v->len += size;
    return HS_OK;
}

/* Reads the pieces of a view, one blob held at a time (libgit2 caches no
 * blob: each lookup inflates it). */
typedef struct reader {
    git_repository *repo;
    const char *dir;
    const view *v;
    size_t idx;
    git_blob *blob;
} reader;

static void reader_close(reader *rd)
{
    git_blob_free(rd->blob);
    rd->blob = NULL;
}

/* The bytes of the view from off (< v->len) to the end of its piece. */
static hs_result reader_at(reader *rd, uint64_t off, const uint8_t **out, size_t *avail,
                           hs_error *e)
{
    const view *v = rd->v;
    size_t lo = 0, hi = v->n; /* the first piece ending after off */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->p[mid].start + v->p[mid].size > off)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == v->n)
        return hs_fail(e, HS_E_INTERNAL, "audit log %s: read past the entries", rd->dir);
    const piece *pc = &v->p[lo];
    const uint8_t *base = pc->mem;
    if (base == NULL) {
        if (rd->blob == NULL || rd->idx != lo) {
            reader_close(rd);
            if (git_blob_lookup(&rd->blob, rd->repo, &pc->id) != 0)
                return hs_git_fail(e, rd->dir, "reading the entries");
            rd->idx = lo;
        }
        if (git_blob_rawsize(rd->blob) != pc->size)
            return hs_fail(e, HS_E_VERIFY, "audit log %s: git: a segment's size changed", rd->dir);
        base = git_blob_rawcontent(rd->blob);
    }
    *out = base + (off - pc->start);
    *avail = (size_t)(pc->size - (off - pc->start));
    return HS_OK;
}

/* v->complete: where the last newline ends (bytes after it are a torn
 * append). */
static hs_result find_complete(reader *rd, view *v, hs_error *e)
{
    v->complete = 0;
    for (size_t i = v->n; i-- > 0;) {
        if (v->p[i].size == 0)
            continue;
        const uint8_t *p;
        size_t avail;
        hs_result r = reader_at(rd, v->p[i].start, &p, &avail, e);
        if (r != HS_OK)
            return r;
        const uint8_t *nl = memrchr(p, '\n', avail);
        if (nl != NULL) {
            v->complete = v->p[i].start + (uint64_t)(nl - p) + 1;
            return HS_OK;
        }
    }
    return HS_OK;
}

/* The walk so far: the previous state, and the tree of the latest
 * checkpoint checked, over its bytes. Each state then costs a comparison
 * of the pieces that differ from the previous one and the hashes of the
 * entries its checkpoint newly covers: the tree is never rebuilt. */
typedef struct walk {
    git_repository *repo;
    git_odb *odb;
    const char *dir;
    view prev;
    hs_auditstate st;
    uint64_t last_size;
    hs_merkle_hasher *h;
} walk;

/* One line from off (which starts one, before v->complete): hashed where
 * it lies, or gathered into *buf when it crosses pieces. */
static hs_result hash_line(walk *w, reader *rd, uint64_t off, uint8_t **buf, size_t *cap,
                           uint8_t leaf[HS_MERKLE_HASH_LEN], size_t *line_len, hs_error *e)
{
    const uint8_t *p;
    size_t avail;
    hs_result r = reader_at(rd, off, &p, &avail, e);
    const uint8_t *nl = r == HS_OK ? memchr(p, '\n', avail) : NULL;
    if (r == HS_OK && nl != NULL) {
        *line_len = (size_t)(nl - p);
        return hs_merkle_hasher_leaf(w->h, p, *line_len, leaf, e);
    }
    size_t have = 0;
    while (r == HS_OK && nl == NULL) {
        r = grow((void **)buf, cap, have + avail, 1, e);
        if (r == HS_OK) {
            memcpy(*buf + have, p, avail);
            have += avail;
            off += avail;
            r = reader_at(rd, off, &p, &avail, e);
        }
        nl = r == HS_OK ? memchr(p, '\n', avail) : NULL;
    }
    size_t tail = nl != NULL ? (size_t)(nl - p) : 0;
    if (r == HS_OK)
        r = grow((void **)buf, cap, have + tail + 1, 1, e);
    if (r != HS_OK)
        return r;
    memcpy(*buf + have, p, tail);
    *line_len = have + tail;
    return hs_merkle_hasher_leaf(w->h, *buf, *line_len, leaf, e);
}

/* Extends w->st over v to the checkpoint's size, and compares the root. */
static hs_result cover(walk *w, const view *v, const hs_checkpoint *cp, hs_error *e)
{
    reader rd = {.repo = w->repo, .dir = w->dir, .v = v};
    uint8_t *buf = NULL;
    size_t cap = 0;
    hs_result r = HS_OK;
    while (r == HS_OK && w->st.size < cp->size) {
        if (w->st.end >= v->complete) {
            r = hs_fail(e, HS_E_VERIFY, "checkpoint of '%s' covers %llu entries but the log has "
                                        "only %llu: entries were removed", cp->origin,
                        (unsigned long long)cp->size, (unsigned long long)w->st.size);
            break;
        }
        uint8_t leaf[HS_MERKLE_HASH_LEN];
        size_t len = 0;
        r = hash_line(w, &rd, w->st.end, &buf, &cap, leaf, &len, e);
        if (r == HS_OK)
            r = hs_auditstate_push_leaf(&w->st, leaf, len, e);
    }
    free(buf);
    reader_close(&rd);
    uint8_t root[HS_MERKLE_HASH_LEN];
    if (r == HS_OK)
        r = hs_auditstate_root(&w->st, root, e);
    if (r == HS_OK)
        r = hs_auditlog_compare_root(cp, root, e);
    return r;
}

/* The bytes [from, to) of a and b are the same. */
static hs_result same_bytes(walk *w, const view *a, const view *b, uint64_t from, uint64_t to,
                            bool *same, hs_error *e)
{
    reader ra = {.repo = w->repo, .dir = w->dir, .v = a};
    reader rb = {.repo = w->repo, .dir = w->dir, .v = b};
    hs_result r = HS_OK;
    *same = true;
    for (uint64_t off = from; r == HS_OK && *same && off < to;) {
        const uint8_t *pa, *pb;
        size_t na, nb;
        r = reader_at(&ra, off, &pa, &na, e);
        if (r == HS_OK)
            r = reader_at(&rb, off, &pb, &nb, e);
        if (r != HS_OK)
            break;
        size_t n = na < nb ? na : nb;
        if (n > to - off)
            n = (size_t)(to - off);
        *same = memcmp(pa, pb, n) == 0;
        off += n;
    }
    reader_close(&ra);
    reader_close(&rb);
    return r;
}

/* The state v (taken over; note: its checkpoint, may be empty) extends
 * the previous one: byte prefix, and a checkpoint no smaller that commits
 * to a prefix of its entries. */
static hs_result check_step(walk *w, const char *rev, view *v, const uint8_t *note,
                            size_t note_len, EVP_PKEY *pub, hs_error *e)
{
    reader rd = {.repo = w->repo, .dir = w->dir, .v = v};
    hs_result r = find_complete(&rd, v, e);
    reader_close(&rd);
    const view *p = &w->prev;
    /* The pieces both start with are the same bytes: not read. */
    size_t i = 0;
    while (i < p->n && i < v->n && p->p[i].mem == NULL && git_oid_equal(&p->p[i].id, &v->p[i].id) &&
           p->p[i].size == v->p[i].size)
        i++;
    uint64_t from = i < p->n ? p->p[i].start : p->len;
    bool same = true;
    if (r == HS_OK && v->complete >= p->complete && from < p->complete)
        r = same_bytes(w, p, v, from, p->complete, &same, e);
    if (r == HS_OK && (v->complete < p->complete || !same))
        r = hs_fail(e, HS_E_VERIFY, "audit log %s: commit %.12s does not extend the entries of "
                                    "its parent: history was rewritten", w->dir, rev);
    hs_checkpoint cp;
    if (r == HS_OK && note_len > 0) {
        r = hs_auditlog_verify_note((const char *)note, note_len, pub, &cp, e);
        if (r == HS_OK && cp.size < w->last_size)
            r = hs_fail(e, HS_E_VERIFY, "checkpoint size %llu is smaller than its predecessor's "
                                        "%llu", (unsigned long long)cp.size,
                        (unsigned long long)w->last_size);
        if (r == HS_OK)
            r = cover(w, v, &cp, e);
        if (r == HS_OK)
            w->last_size = cp.size;
        if (r != HS_OK)
            hs_error_prefix(e, "audit log %s: commit %.12s: ", w->dir, rev);
    }
    view_free(&w->prev);
    w->prev = *v;
    memset(v, 0, sizeof *v);
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

/* A blob's piece; its size from the previous state when that had the same
 * blob at the same place, else from the object's header. */
static hs_result blob_piece(walk *w, view *v, const git_tree_entry *te, hs_error *e)
{
    if (git_tree_entry_type(te) != GIT_OBJECT_BLOB)
        return hs_fail(e, HS_E_VERIFY, "audit log %s: git: %s is not a file", w->dir,
                       git_tree_entry_name(te));
    const git_oid *id = git_tree_entry_id(te);
    const view *p = &w->prev;
    if (v->n < p->n && p->p[v->n].mem == NULL && git_oid_equal(&p->p[v->n].id, id))
        return add_piece(v, id, p->p[v->n].size, NULL, e);
    size_t size;
    git_object_t type;
    if (git_odb_read_header(&size, &type, w->odb, id) != 0)
        return hs_git_fail(e, w->dir, git_tree_entry_name(te));
    return add_piece(v, id, size, NULL, e);
}

/* One log/ directory: the previous state's pieces when it is the same
 * tree at the same place (only the last directory changes), else read. */
static hs_result dir_pieces(walk *w, view *v, const git_tree_entry *te, hs_error *e)
{
    if (git_tree_entry_type(te) != GIT_OBJECT_TREE)
        return hs_fail(e, HS_E_VERIFY, "audit log %s: git: " HS_AUDIT_SEGMENT_DIR "/%s is not a "
                                       "directory of segments", w->dir, git_tree_entry_name(te));
    const git_oid *id = git_tree_entry_id(te);
    hs_result r = grow((void **)&v->d, &v->dcap, v->nd + 1, sizeof *v->d, e);
    if (r != HS_OK)
        return r;
    dirent_ref *d = &v->d[v->nd++];
    *d = (dirent_ref){.id = *id, .first = v->n, .n = 0};
    const view *p = &w->prev;
    const dirent_ref *pd = v->nd <= p->nd ? &p->d[v->nd - 1] : NULL;
    if (pd != NULL && pd->first == v->n && git_oid_equal(&pd->id, id)) {
        for (size_t i = 0; r == HS_OK && i < pd->n; i++)
            r = add_piece(v, &p->p[pd->first + i].id, p->p[pd->first + i].size, NULL, e);
        d->n = v->n - d->first;
        return r;
    }
    git_tree *sub = NULL;
    if (git_tree_lookup(&sub, w->repo, id) != 0)
        return hs_git_fail(e, w->dir, HS_AUDIT_SEGMENT_DIR);
    for (size_t i = 0; r == HS_OK && i < git_tree_entrycount(sub); i++)
        r = blob_piece(w, v, git_tree_entry_byindex(sub, i), e);
    git_tree_free(sub);
    d->n = v->n - d->first;
    return r;
}

/* A commit's entries: log/'s segments in path order, or (a history from
 * before them) entries.jsonl; neither is an empty log. */
static hs_result commit_view(walk *w, const git_tree *tree, view *v, hs_error *e)
{
    memset(v, 0, sizeof *v);
    const git_tree_entry *te = git_tree_entry_byname(tree, HS_AUDIT_SEGMENT_DIR);
    if (te == NULL) {
        te = git_tree_entry_byname(tree, HS_AUDIT_ENTRIES_FILE);
        return te != NULL ? blob_piece(w, v, te, e) : HS_OK;
    }
    if (git_tree_entry_type(te) != GIT_OBJECT_TREE)
        return hs_fail(e, HS_E_VERIFY, "audit log %s: git: " HS_AUDIT_SEGMENT_DIR " is not a "
                                       "directory", w->dir);
    git_tree *log = NULL;
    if (git_tree_lookup(&log, w->repo, git_tree_entry_id(te)) != 0)
        return hs_git_fail(e, w->dir, HS_AUDIT_SEGMENT_DIR);
    hs_result r = HS_OK;
    for (size_t i = 0; r == HS_OK && i < git_tree_entrycount(log); i++)
        r = dir_pieces(w, v, git_tree_entry_byindex(log, i), e);
    git_tree_free(log);
    return r;
}

/* One commit: its pieces, compared with the previous commit's, and its
 * checkpoint. */
static hs_result check_commit(walk *w, const git_oid *id, EVP_PKEY *pub, hs_error *e)
{
    char rev[GIT_OID_HEXSZ + 1];
    git_oid_tostr(rev, sizeof rev, id);
    git_tree *tree = NULL;
    uint8_t *note = NULL;
    size_t note_len = 0;
    view v;
    memset(&v, 0, sizeof v);
    hs_result r = commit_tree_of(w->dir, w->repo, id, &tree, e);
    if (r == HS_OK)
        r = commit_view(w, tree, &v, e);
    if (r == HS_OK)
        r = read_blob(w->dir, w->repo, tree, HS_AUDIT_CHECKPOINT_FILE, &note, &note_len, e);
    if (r == HS_OK)
        r = check_step(w, rev, &v, note, note_len, pub, e);
    view_free(&v);
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
 * never fewer. Its file is cut where the last commit's pieces still match
 * it (their blob ids, computed over the file's bytes), so only the rest is
 * compared byte for byte. */
static hs_result check_worktree(walk *w, EVP_PKEY *pub, hs_error *e)
{
    char *path;
    uint8_t *data = NULL;
    size_t len = 0;
    if (asprintf(&path, "%s/" HS_AUDIT_ENTRIES_FILE, w->dir) < 0)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = hs_read_file(path, MAX_BLOB, &data, &len, e);
    free(path);
    view v;
    memset(&v, 0, sizeof v);
    const view *p = &w->prev;
    for (size_t i = 0; r == HS_OK && i < p->n; i++) {
        git_oid id;
        const piece *pc = &p->p[i];
        if (pc->mem != NULL || pc->start + pc->size > len ||
            git_odb_hash(&id, data + pc->start, (size_t)pc->size, GIT_OBJECT_BLOB) != 0 ||
            !git_oid_equal(&id, &pc->id))
            break;
        r = add_piece(&v, &id, pc->size, NULL, e);
    }
    git_oid none;
    memset(&none, 0, sizeof none);
    if (r == HS_OK && v.len < len)
        r = add_piece(&v, &none, len - v.len, data + v.len, e);
    if (r == HS_OK)
        r = check_step(w, "(working tree)", &v, NULL, 0, pub, e);
    view_free(&v);
    /* w->prev holds pointers into data: gone with it. */
    view_free(&w->prev);
    free(data);
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
    w.repo = repo;
    w.dir = dir;
    hs_auditstate_init(&w.st);
    if (r == HS_OK && git_repository_odb(&w.odb, repo) != 0)
        r = hs_git_fail(e, dir, "cannot open the object database");
    if (r == HS_OK)
        r = hs_merkle_hasher_new(&w.h, e);
    for (size_t i = base; r == HS_OK && i < count; i++) {
        r = check_commit(&w, &ids[i], pub, e);
        if (r == HS_OK)
            rep->commits++;
    }
    if (r == HS_OK)
        r = check_worktree(&w, pub, e);
    view_free(&w.prev);
    hs_merkle_hasher_free(w.h);
    git_odb_free(w.odb);
    free(ids);
    git_repository_free(repo);
    return r;
}
