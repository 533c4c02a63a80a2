/* util/outpath: resolving output paths and refusing those inside a
 * protected directory, one spelling per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/outpath.h"

static char dir[] = "/tmp/hsmsign-test-outpath-XXXXXX";
static char real_dir[4096]; /* dir resolved (TMPDIR may be a symlink) */
static char log_dir[4096], key_dir[4096];

static void at(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", dir, rel);
}

static void make_file(const char *rel, const char *text)
{
    char p[4096];
    at(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_link(const char *target, const char *rel)
{
    char p[4096];
    at(p, sizeof p, rel);
    assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL || realpath(dir, real_dir) == NULL)
        return -1;
    at(log_dir, sizeof log_dir, "audit");
    at(key_dir, sizeof key_dir, "keys");
    char p[4096];
    at(p, sizeof p, "out");
    if (mkdir(log_dir, 0755) != 0 || mkdir(key_dir, 0755) != 0 || mkdir(p, 0755) != 0)
        return -1;
    make_file("audit/entries.jsonl", "log\n");
    make_file("keys/k1.key", "key\n");
    make_link("audit", "logdir");
    make_link("audit/entries.jsonl", "entries-link");
    make_link("audit/not-yet", "dangling");
    make_link("dangling", "dangling2");
    make_link("loop-b", "loop-a");
    make_link("loop-a", "loop-b");
    at(p, sizeof p, "hardlink");
    char key[4096];
    at(key, sizeof key, "keys/k1.key");
    return link(key, p);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static const hs_protected_dir *dirs(void)
{
    static hs_protected_dir d[2];
    d[0] = (hs_protected_dir){log_dir, "audit log"};
    d[1] = (hs_protected_dir){key_dir, "key store"};
    return d;
}

/* Checks `rel` (under the test directory; absolute when it starts with
 * '/') and returns the result; the message goes to *msg. */
static hs_result check(const char *rel, hs_error *e)
{
    char p[4096];
    if (rel[0] == '/')
        snprintf(p, sizeof p, "%s", rel);
    else
        at(p, sizeof p, rel);
    hs_error_clear(e);
    return hs_outpath_check(p, dirs(), 2, e);
}

static void assert_refused(const char *rel, const char *reason)
{
    hs_error e;
    assert_int_equal(check(rel, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, rel));
    assert_non_null(strstr(e.msg, reason));
}

static void assert_allowed(const char *rel)
{
    hs_error e;
    hs_result r = check(rel, &e);
    if (r != HS_OK)
        fail_msg("%s refused: %s", rel, e.msg);
}

static void refuses_files_and_new_names_in_the_log(void **state)
{
    (void)state;
    assert_refused("audit/entries.jsonl", "inside the audit log");
    assert_refused("audit/checkpoint", "inside the audit log");
    assert_refused("audit/new/deeper/file", "inside the audit log");
    assert_refused("keys/k1.key", "inside the key store");
    assert_refused("keys/new.key", "inside the key store");
}

static void refuses_the_directories_themselves(void **state)
{
    (void)state;
    assert_refused("audit", "inside the audit log");
    assert_refused("keys/", "inside the key store");
    assert_refused("keys/.", "inside the key store");
}

static void refuses_dot_dot_spellings(void **state)
{
    (void)state;
    assert_refused("audit/../audit/x", "inside the audit log");
    assert_refused("out/../keys/k1.key", "inside the key store");
    assert_refused("audit/missing/../entries.jsonl", "inside the audit log");
    assert_refused("keys/./k1.key", "inside the key store");
}

static void refuses_symlinked_directories_and_files(void **state)
{
    (void)state;
    assert_refused("logdir/entries.jsonl", "inside the audit log");
    assert_refused("logdir/new", "inside the audit log");
    assert_refused("entries-link", "inside the audit log");
    assert_refused("dangling", "inside the audit log");
    assert_refused("dangling2", "inside the audit log");
}

static void refuses_a_hard_link_of_a_protected_file(void **state)
{
    (void)state;
    assert_refused("hardlink", "is a hard link to");
}

static void allows_ordinary_outputs(void **state)
{
    (void)state;
    assert_allowed("out/a.sig");
    assert_allowed("out/../b.sig");
    assert_allowed("new-dir/c.sig"); /* a missing directory: the write will say so */
    assert_allowed("auditx/entries.jsonl"); /* a name prefix is not a directory */
    assert_allowed("keys.bak");
}

static void protected_dirs_need_not_exist(void **state)
{
    (void)state;
    char missing[4096], p[4096];
    at(missing, sizeof missing, "no-log-yet");
    at(p, sizeof p, "no-log-yet/entries.jsonl");
    hs_protected_dir d = {missing, "audit log"};
    hs_error e;
    assert_int_equal(hs_outpath_check(p, &d, 1, &e), HS_E_USAGE);
    at(p, sizeof p, "out/x");
    assert_int_equal(hs_outpath_check(p, &d, 1, &e), HS_OK);
}

static void a_symlink_loop_is_an_error_naming_the_path(void **state)
{
    (void)state;
    hs_error e;
    assert_int_equal(check("loop-a", &e), HS_E_IO);
    assert_non_null(strstr(e.msg, "loop-a"));
}

static void resolve_gives_the_kernel_s_view(void **state)
{
    (void)state;
    char p[4096], want[4096 + 64];
    char *out;
    hs_error e;
    at(p, sizeof p, "logdir/../out/./x/../y");
    assert_int_equal(hs_path_resolve(p, &out, &e), HS_OK);
    /* logdir/.. is the parent of audit, i.e. the test directory. */
    snprintf(want, sizeof want, "%s/out/y", real_dir);
    assert_string_equal(out, want);
    free(out);
    at(p, sizeof p, "dangling2");
    assert_int_equal(hs_path_resolve(p, &out, &e), HS_OK);
    snprintf(want, sizeof want, "%s/audit/not-yet", real_dir);
    assert_string_equal(out, want);
    free(out);
    assert_int_equal(hs_path_resolve("", &out, &e), HS_E_USAGE);
}

static void same_file_by_name_or_by_inode(void **state)
{
    (void)state;
    char a[4096], b[4096];
    bool same;
    hs_error e;
    at(a, sizeof a, "out/a");
    at(b, sizeof b, "out/../out/./a");
    assert_int_equal(hs_path_same(a, b, &same, &e), HS_OK); /* neither exists */
    assert_true(same);
    at(a, sizeof a, "hardlink");
    at(b, sizeof b, "keys/k1.key");
    assert_int_equal(hs_path_same(a, b, &same, &e), HS_OK);
    assert_true(same);
    at(b, sizeof b, "audit/entries.jsonl");
    assert_int_equal(hs_path_same(a, b, &same, &e), HS_OK);
    assert_false(same);
    assert_int_equal(hs_outpath_not_input(a, a, "input", &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "is the input file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_files_and_new_names_in_the_log),
        cmocka_unit_test(refuses_the_directories_themselves),
        cmocka_unit_test(refuses_dot_dot_spellings),
        cmocka_unit_test(refuses_symlinked_directories_and_files),
        cmocka_unit_test(refuses_a_hard_link_of_a_protected_file),
        cmocka_unit_test(allows_ordinary_outputs),
        cmocka_unit_test(protected_dirs_need_not_exist),
        cmocka_unit_test(a_symlink_loop_is_an_error_naming_the_path),
        cmocka_unit_test(resolve_gives_the_kernel_s_view),
        cmocka_unit_test(same_file_by_name_or_by_inode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
