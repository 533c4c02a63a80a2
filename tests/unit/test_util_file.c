#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/file.h"
#include "util/secmem.h"

static char dir[] = "/tmp/hsmsign-test-file-XXXXXX";

static int count_entries(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(dp);
    return n;
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void atomic_write_then_read(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    hs_error e;
    assert_int_equal(hs_write_file_atomic(path, "hello", 5, 0644, false, &e), HS_OK);
    uint8_t *buf;
    size_t len;
    assert_int_equal(hs_read_file(path, 100, &buf, &len, &e), HS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(buf[5], 0);
    free(buf);
    /* Replacing is allowed by default, refused with no_replace. */
    assert_int_equal(hs_write_file_atomic(path, "bye", 3, 0644, false, &e), HS_OK);
    assert_int_equal(hs_write_file_atomic(path, "x", 1, 0644, true, &e), HS_E_EXISTS);
    assert_non_null(strstr(e.msg, "a.txt"));
    assert_int_equal(hs_read_file(path, 100, &buf, &len, &e), HS_OK);
    assert_memory_equal(buf, "bye", 3);
    free(buf);
    /* No temporary file is left behind in either case. */
    assert_int_equal(count_entries(dir), 1);
}

static void abort_leaves_nothing(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/b.txt", dir);
    hs_error e;
    hs_atomic_file af;
    assert_int_equal(hs_atomic_open(&af, path, 0600, &e), HS_OK);
    assert_int_equal(hs_atomic_write_all(&af, "partial", 7, &e), HS_OK);
    hs_atomic_abort(&af);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_entries(dir), 1); /* only a.txt from the previous test */
}

static void read_errors_name_the_file(void **state)
{
    (void)state;
    hs_error e;
    uint8_t *buf;
    size_t len;
    assert_int_equal(hs_read_file("/nonexistent/zz", 10, &buf, &len, &e), HS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "/nonexistent/zz"));
    char path[512];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    assert_int_equal(hs_read_file(path, 1, &buf, &len, &e), HS_E_FORMAT);
    assert_int_equal(hs_read_file(dir, 10, &buf, &len, &e), HS_E_IO);
}

static void unwritable_directory_fails_cleanly(void **state)
{
    (void)state;
    hs_error e;
    assert_int_not_equal(hs_write_file_atomic("/nonexistent-dir/x", "a", 1, 0644, false, &e), HS_OK);
    assert_non_null(strstr(e.msg, "/nonexistent-dir/x"));
}

/* The signapk drop-in contract: an existing file keeps its inode (a
 * handle opened before reads the new bytes, shorter or longer), a missing
 * one is created, and a target that cannot be written is left alone. */
static void in_place_write_keeps_the_inode(void **state)
{
    (void)state;
    char path[512], sub[512];
    snprintf(path, sizeof path, "%s/held", dir);
    hs_error e;
    bool in_place = true;
    assert_int_equal(hs_write_file_in_place(path, "first version", 13, 0644, &in_place, &e), HS_OK);
    assert_false(in_place); /* created */
    FILE *held = fopen(path, "rb");
    assert_non_null(held);
    struct stat before, after;
    assert_int_equal(fstat(fileno(held), &before), 0);
    assert_int_equal(hs_write_file_in_place(path, "v2", 2, 0644, &in_place, &e), HS_OK);
    assert_true(in_place);
    char buf[32] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf, held), 2);
    assert_string_equal(buf, "v2");
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    fclose(held);
    snprintf(sub, sizeof sub, "%s/adir", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(hs_write_file_in_place(sub, "x", 1, 0644, &in_place, &e), HS_E_IO);
    assert_non_null(strstr(e.msg, "adir"));
    assert_false(in_place);
}

static void secure_memory_is_usable_and_wiped(void **state)
{
    (void)state;
    uint8_t *p = hs_secure_alloc(100);
    assert_non_null(p);
    memset(p, 0xaa, 100);
    hs_secure_free(p, 100);
    char path[512];
    snprintf(path, sizeof path, "%s/deep/er/dir", dir);
    hs_error e;
    assert_int_equal(hs_mkdir_p(path, 0700, &e), HS_OK);
    assert_int_equal(hs_mkdir_p(path, 0700, &e), HS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(atomic_write_then_read),
        cmocka_unit_test(abort_leaves_nothing),
        cmocka_unit_test(read_errors_name_the_file),
        cmocka_unit_test(unwritable_directory_fails_cleanly),
        cmocka_unit_test(in_place_write_keeps_the_inode),
        cmocka_unit_test(secure_memory_is_usable_and_wiped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
