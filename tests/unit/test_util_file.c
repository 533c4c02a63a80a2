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

/* A caller holding the file open reads the new bytes through its handle
 * (same inode), a longer old content is cut, and a missing file is
 * HS_E_NOTFOUND, not created. */
static void in_place_write_keeps_the_inode(void **state)
{
    (void)state;
    char path[512], missing[512];
    snprintf(path, sizeof path, "%s/inplace.sig", dir);
    snprintf(missing, sizeof missing, "%s/missing.sig", dir);
    hs_error e;
    assert_int_equal(hs_write_file_atomic(path, "old contents, longer", 20, 0644, false, &e), HS_OK);
    FILE *held = fopen(path, "rb");
    assert_non_null(held);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(hs_write_file_in_place(path, "new", 3, &e), HS_OK);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    char buf[32] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf, held), 3);
    assert_memory_equal(buf, "new", 3);
    fclose(held);
    assert_int_equal(hs_write_file_in_place(missing, "x", 1, &e), HS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "missing.sig"));
    assert_int_equal(access(missing, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(atomic_write_then_read),
        cmocka_unit_test(abort_leaves_nothing),
        cmocka_unit_test(read_errors_name_the_file),
        cmocka_unit_test(unwritable_directory_fails_cleanly),
        cmocka_unit_test(secure_memory_is_usable_and_wiped),
        cmocka_unit_test(in_place_write_keeps_the_inode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
