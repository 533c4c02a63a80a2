/* The audit log's entries in git as log/ segments (audit/git_lib.h):
 * where hs_auditgit_commit cuts them, that a commit rewrites only the last
 * segment, and that hs_auditgit_verify reads segments across boundaries
 * and still finds a rewritten old segment. Segments of a few lines
 * (hs_auditgit_segment_entries), no checkpoints (verify then checks the
 * bytes only), no token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit/git.h"
#include "audit/git_lib.h"
#include "audit/log.h"
#include "audit/record.h"

static char dir[64];
static size_t lines; /* entries.jsonl holds lines 0 to lines-1 */

static void append(size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/" HS_AUDIT_ENTRIES_FILE, dir);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++, lines++)
        fprintf(f, "{\"op\":\"sign\",\"seq\":%zu}\n", lines);
    assert_int_equal(fclose(f), 0);
}

static void commit(void)
{
    hs_error e;
    bool committed = false;
    assert_int_equal(hs_auditgit_commit(dir, "test", true, &committed, &e), HS_OK);
    assert_true(committed);
}

static hs_result verify(hs_error *e)
{
    hs_auditgit_report rep;
    return hs_auditgit_verify(dir, NULL, NULL, 0, &rep, e);
}

static void expect_rewrite_found(void)
{
    hs_error e;
    assert_int_equal(verify(&e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "history was rewritten"));
}

static git_repository *open_repo(void)
{
    git_repository *repo = NULL;
    hs_error e;
    assert_int_equal(hs_git_open(dir, false, &repo, &e), HS_OK);
    return repo;
}

/* HEAD's blob at path (NULL when absent), its id in *id. */
static git_blob *head_blob(git_repository *repo, const char *path, git_oid *id)
{
    git_object *obj = NULL;
    char spec[128];
    snprintf(spec, sizeof spec, "HEAD:%s", path);
    if (git_revparse_single(&obj, repo, spec) != 0)
        return NULL;
    assert_int_equal(git_object_type(obj), GIT_OBJECT_BLOB);
    if (id != NULL)
        *id = *git_object_id(obj);
    return (git_blob *)obj;
}

/* HEAD's segment seg holds lines [first, first+n) and nothing else. */
static void expect_segment(git_repository *repo, unsigned long long seg, size_t first, size_t n)
{
    char path[64], want[4096];
    snprintf(path, sizeof path, HS_AUDIT_SEGMENT_PATH, seg / HS_AUDIT_SEGMENTS_PER_DIR, seg);
    size_t len = 0;
    for (size_t i = first; i < first + n; i++)
        len += (size_t)snprintf(want + len, sizeof want - len, "{\"op\":\"sign\",\"seq\":%zu}\n", i);
    git_blob *b = head_blob(repo, path, NULL);
    assert_non_null(b);
    assert_int_equal(git_blob_rawsize(b), len);
    assert_memory_equal(git_blob_rawcontent(b), want, len);
    git_blob_free(b);
}

/* Commits on HEAD the index with path's blob replaced by bytes. */
static void commit_with(git_repository *repo, const char *path, const char *bytes, size_t len)
{
    git_index *idx = NULL;
    git_oid tree_id, id, head;
    git_tree *tree = NULL;
    git_commit *parent = NULL;
    git_signature *sig = NULL;
    assert_int_equal(git_repository_index(&idx, repo), 0);
    const git_index_entry *old = git_index_get_bypath(idx, path, 0);
    assert_non_null(old);
    git_index_entry ent = *old;
    assert_int_equal(git_blob_create_from_buffer(&ent.id, repo, bytes, len), 0);
    ent.file_size = (uint32_t)len;
    assert_int_equal(git_index_add(idx, &ent), 0);
    assert_int_equal(git_index_write(idx), 0);
    assert_int_equal(git_index_write_tree(&tree_id, idx), 0);
    assert_int_equal(git_reference_name_to_id(&head, repo, "HEAD"), 0);
    assert_int_equal(git_commit_lookup(&parent, repo, &head), 0);
    assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
    assert_int_equal(git_signature_now(&sig, "x", "x@x"), 0);
    const git_commit *parents[1] = {parent};
    assert_int_equal(git_commit_create(&id, repo, "HEAD", sig, sig, NULL, "x\n", tree, 1, parents), 0);
    git_signature_free(sig);
    git_tree_free(tree);
    git_commit_free(parent);
    git_index_free(idx);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hsmsign-audit-git.XXXXXX");
    lines = 0;
    hs_auditgit_segment_entries = 3;
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Segments of 3 lines: commits of 2, 1 and 5 lines cut 3 + 3 + 2, the
 * first segment's blob unchanged once full, and no entries.jsonl in the
 * tree (a boundary crossed inside one commit and between two). */
static void test_segments_cut_at_boundaries(void **state)
{
    (void)state;
    append(2);
    commit();
    append(1);
    commit();
    git_repository *repo = open_repo();
    git_oid first, again;
    git_blob_free(head_blob(repo, "log/000000/0000000000.jsonl", &first));
    append(5);
    commit();
    expect_segment(repo, 0, 0, 3);
    expect_segment(repo, 1, 3, 3);
    expect_segment(repo, 2, 6, 2);
    assert_null(head_blob(repo, "log/000000/0000000003.jsonl", NULL));
    assert_null(head_blob(repo, HS_AUDIT_ENTRIES_FILE, NULL));
    git_blob_free(head_blob(repo, "log/000000/0000000000.jsonl", &again));
    assert_true(git_oid_equal(&first, &again));
    git_repository_free(repo);
    append(2); /* not committed: the working tree may be ahead */
    hs_error e;
    assert_int_equal(verify(&e), HS_OK);
}

/* An old, full segment rewritten in the history and put back in the next
 * commit: the files are intact, only the history tells. */
static void test_rewritten_old_segment_found(void **state)
{
    (void)state;
    append(4);
    commit();
    append(4);
    commit();
    git_repository *repo = open_repo();
    const char *seg = "log/000000/0000000000.jsonl";
    git_blob *b = head_blob(repo, seg, NULL);
    assert_non_null(b);
    size_t len = (size_t)git_blob_rawsize(b);
    char *orig = malloc(len), *bad = malloc(len);
    assert_non_null(orig);
    assert_non_null(bad);
    memcpy(orig, git_blob_rawcontent(b), len);
    git_blob_free(b);
    memcpy(bad, orig, len);
    bad[3] = 'O'; /* "op" -> "Op" in line 0 */
    hs_error e;
    assert_int_equal(verify(&e), HS_OK);
    commit_with(repo, seg, bad, len);
    commit_with(repo, seg, orig, len);
    expect_rewrite_found();
    free(orig);
    free(bad);
    git_repository_free(repo);
}

/* Segments of one line across the boundary of log/000000/ (256 per
 * directory); a rewritten segment in the first directory is found. */
static void test_directory_boundary(void **state)
{
    (void)state;
    hs_auditgit_segment_entries = 1;
    append(200);
    commit();
    append(100);
    commit();
    git_repository *repo = open_repo();
    expect_segment(repo, 255, 255, 1);
    expect_segment(repo, 256, 256, 1);
    expect_segment(repo, 299, 299, 1);
    hs_error e;
    assert_int_equal(verify(&e), HS_OK);
    const char *bad = "{\"op\":\"sign\",\"seq\":99}\n"; /* segment 10 said 10 */
    commit_with(repo, "log/000000/0000000010.jsonl", bad, strlen(bad));
    git_repository_free(repo);
    expect_rewrite_found();
}

/* An old segment changed in the file (not in git: a commit reads only the
 * last segment) is found against the last commit. */
static void test_worktree_old_segment_changed(void **state)
{
    (void)state;
    append(7);
    commit();
    char path[128];
    snprintf(path, sizeof path, "%s/" HS_AUDIT_ENTRIES_FILE, dir);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    assert_int_equal(fseek(f, 3, SEEK_SET), 0);
    assert_int_equal(fputc('O', f), 'O');
    assert_int_equal(fclose(f), 0);
    expect_rewrite_found();
}

/* A history from before the segments (the whole file as entries.jsonl)
 * is carried on: the next commit moves to log/, verify reads both. */
static void test_old_layout_migrates(void **state)
{
    (void)state;
    hs_auditgit_segment_entries = 2;
    append(5);
    git_repository *repo = NULL;
    hs_error e;
    assert_int_equal(hs_git_open(dir, true, &repo, &e), HS_OK);
    git_index *idx = NULL;
    assert_int_equal(git_repository_index(&idx, repo), 0);
    assert_int_equal(git_index_add_bypath(idx, HS_AUDIT_ENTRIES_FILE), 0);
    git_oid tree_id, id;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    assert_int_equal(git_index_write(idx), 0);
    assert_int_equal(git_index_write_tree(&tree_id, idx), 0);
    assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
    assert_int_equal(git_signature_now(&sig, "x", "x@x"), 0);
    assert_int_equal(git_commit_create(&id, repo, "HEAD", sig, sig, NULL, "old\n", tree, 0, NULL), 0);
    git_signature_free(sig);
    git_tree_free(tree);
    git_index_free(idx);
    append(1);
    commit();
    assert_null(head_blob(repo, HS_AUDIT_ENTRIES_FILE, NULL));
    expect_segment(repo, 0, 0, 2);
    expect_segment(repo, 2, 4, 2);
    git_repository_free(repo);
    assert_int_equal(verify(&e), HS_OK);
}

/* checkpoints/ is staged as `git add checkpoints` would: every file but
 * the ignored ones, a file gone from it dropped from the next commit, and
 * (one readdir, one lstat per file since the fixed-cost work) nothing
 * dropped when the directory itself is missing. */
static void put_checkpoint(const char *name, const char *bytes)
{
    char path[160];
    snprintf(path, sizeof path, "%s/" HS_AUDIT_CHECKPOINT_DIR, dir);
    (void)mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/" HS_AUDIT_CHECKPOINT_DIR "/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(bytes, f);
    assert_int_equal(fclose(f), 0);
}

static bool in_head(const char *name)
{
    char path[160];
    snprintf(path, sizeof path, HS_AUDIT_CHECKPOINT_DIR "/%s", name);
    git_repository *repo = open_repo();
    git_blob *b = head_blob(repo, path, NULL);
    git_blob_free(b);
    git_repository_free(repo);
    return b != NULL;
}

static void test_checkpoints_staged_and_dropped(void **state)
{
    (void)state;
    put_checkpoint("0000000001.note", "a\n");
    put_checkpoint("0000000002.note", "b\n");
    put_checkpoint("0000000003.note", "c\n");
    put_checkpoint("x.tmp.123", "partial\n");
    append(1);
    commit();
    assert_true(in_head("0000000001.note") && in_head("0000000002.note") &&
                in_head("0000000003.note"));
    assert_false(in_head("x.tmp.123"));
    char path[160];
    snprintf(path, sizeof path, "%s/" HS_AUDIT_CHECKPOINT_DIR "/0000000002.note", dir);
    assert_int_equal(unlink(path), 0);
    put_checkpoint("0000000004.note", "d\n");
    append(1);
    commit();
    assert_true(in_head("0000000001.note") && in_head("0000000003.note") &&
                in_head("0000000004.note"));
    assert_false(in_head("0000000002.note"));
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/" HS_AUDIT_CHECKPOINT_DIR "'", dir);
    assert_int_equal(system(cmd), 0);
    append(1);
    commit();
    assert_true(in_head("0000000001.note") && in_head("0000000004.note"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_segments_cut_at_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_old_segment_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worktree_old_segment_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_layout_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_staged_and_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
