/* Replaced outputs freed off the critical path (util/release.c, used by
 * hs_atomic_commit): only a large regular file with one link is held (not
 * a symlink, a FIFO, a small or a hard-linked file), the new content is in
 * place at once, and after hs_release_wait no descriptor of a replaced
 * file is left open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/file.h"
#include "util/release.h"

static char root[] = "/tmp/hsmsign-test-release-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(root) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", root, name);
}

static void make_file(const char *path, size_t size, char fill)
{
    char *data = malloc(size ? size : 1);
    assert_non_null(data);
    memset(data, fill, size);
    hs_error e;
    assert_int_equal(hs_write_file_atomic(path, data, size, 0644, false, &e), HS_OK);
    free(data);
}

/* Descriptors of this process that name a deleted file. */
static int deleted_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char link[300], target[600];
        snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strstr(target, root) != NULL && strstr(target, " (deleted)") != NULL)
            n++;
    }
    closedir(d);
    return n;
}

static void only_large_single_link_regular_files_are_held(void **state)
{
    (void)state;
    char big[300], small[300], linked[300], link2[300], sym[300], fifo[300], none[300];
    path_of(big, sizeof big, "big");
    path_of(small, sizeof small, "small");
    path_of(linked, sizeof linked, "linked");
    path_of(link2, sizeof link2, "linked2");
    path_of(sym, sizeof sym, "sym");
    path_of(fifo, sizeof fifo, "fifo");
    path_of(none, sizeof none, "none");
    make_file(big, HS_RELEASE_MIN_SIZE, 'a');
    make_file(small, HS_RELEASE_MIN_SIZE - 1, 'a');
    make_file(linked, HS_RELEASE_MIN_SIZE, 'a');
    assert_int_equal(link(linked, link2), 0);
    assert_int_equal(symlink(big, sym), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int fd = hs_release_hold(big);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(hs_release_hold(small), -1);
    assert_int_equal(hs_release_hold(linked), -1); /* the rename frees nothing */
    assert_int_equal(hs_release_hold(sym), -1);    /* never followed */
    assert_int_equal(hs_release_hold(fifo), -1);   /* and no wait for a writer */
    assert_int_equal(hs_release_hold(none), -1);
}

static void replaced_files_are_closed_by_wait(void **state)
{
    (void)state;
    char out[300];
    path_of(out, sizeof out, "out.apk");
    /* Three replacements of a large output: the new bytes are in place
     * at once, the old files are closed once hs_release_wait returns. */
    for (int i = 0; i < 3; i++)
        make_file(out, 2 * HS_RELEASE_MIN_SIZE, (char)('a' + i));
    hs_release_wait();
    assert_int_equal(deleted_fds(), 0);
    int fd = open(out, O_RDONLY);
    assert_true(fd >= 0);
    char c = 0;
    assert_int_equal(pread(fd, &c, 1, HS_RELEASE_MIN_SIZE), 1);
    close(fd);
    assert_int_equal(c, 'c');
}

static void more_replacements_than_threads(void **state)
{
    (void)state;
    char out[300];
    path_of(out, sizeof out, "many.apk");
    for (int i = 0; i < 40; i++) /* past MAX_PENDING: closed in place */
        make_file(out, HS_RELEASE_MIN_SIZE, 'x');
    hs_release_wait();
    assert_int_equal(deleted_fds(), 0);
    hs_release_later(-1); /* nothing to do, no thread */
    hs_release_wait();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_large_single_link_regular_files_are_held),
        cmocka_unit_test(replaced_files_are_closed_by_wait),
        cmocka_unit_test(more_replacements_than_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
