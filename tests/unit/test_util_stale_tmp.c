/* Stale temporary files (util/stale_tmp.c and its use by hs_atomic_open):
 * what a killed writer leaves is removed, and nothing else is: not a live
 * writer's file, not a symlink or its target, not another output's
 * temporary file, not a name that only looks similar. Writers are real
 * processes (fork) using hs_atomic_*, killed with SIGKILL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/file.h"
#include "util/stale_tmp.h"

static char root[] = "/tmp/hsmsign-test-stale-XXXXXX";
static char dir[600]; /* a fresh directory per test */

static int setup(void **state)
{
    (void)state;
    return mkdtemp(root) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd);
}

static int fresh_dir(void **state)
{
    static int n;
    (void)state;
    snprintf(dir, sizeof dir, "%s/t%d", root, n++);
    return mkdir(dir, 0755);
}

/* NAME in the test's directory, in one of 4 rotating buffers: copy it to
 * keep it across more calls. */
static char *in_dir(const char *name)
{
    static char bufs[4][1024];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, sizeof bufs[0], "%s/%s", dir, name);
    return p;
}

static void make_file(const char *name, const char *content)
{
    FILE *f = fopen(in_dir(name), "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
}

static bool exists(const char *name)
{
    struct stat st;
    return lstat(in_dir(name), &st) == 0;
}

static int count_entries(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Run in a forked child: dies with the test process, so a failed
 * assertion (which returns from the test without reaching kill_writer)
 * leaves no child behind to hold the test runner's output pipe open. */
static void die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(1);
}

/* A writer in another process: hs_atomic_open + a write, then it reports
 * its temporary file's name on a pipe and waits to be killed. */
static pid_t start_writer(const char *path, char *tmp_name, size_t tmp_size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t parent = getpid(), pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        die_with_parent(parent);
        close(fds[0]);
        hs_atomic_file af;
        hs_error e;
        if (hs_atomic_open(&af, path, 0644, &e) != HS_OK ||
            hs_atomic_write_all(&af, "partial", 7, &e) != HS_OK)
            _exit(1);
        const char *base = strrchr(af.tmp_path, '/') + 1;
        if (write(fds[1], base, strlen(base) + 1) != (ssize_t)strlen(base) + 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    ssize_t n = read(fds[0], tmp_name, tmp_size);
    close(fds[0]);
    assert_true(n > 0 && tmp_name[n - 1] == '\0');
    return pid;
}

static void kill_writer(pid_t pid)
{
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* A writer killed with SIGKILL leaves its temporary file; the next
 * hs_atomic_open of the same path removes it, and the output completes
 * with nothing else left in the directory. While the writer lives, its
 * file is kept. */
static void killed_writers_file_is_removed_live_one_kept(void **state)
{
    (void)state;
    char path[1024], tmp[256];
    snprintf(path, sizeof path, "%s", in_dir("out.apk"));
    pid_t pid = start_writer(path, tmp, sizeof tmp);
    assert_true(exists(tmp));
    assert_int_equal(strncmp(tmp, "out.apk.tmp.", 12), 0);

    /* Live (locked): kept, by the cleaner and by another writer's open. */
    assert_int_equal(hs_stale_tmp_remove(path), 0);
    assert_true(exists(tmp));
    hs_error e;
    assert_int_equal(hs_write_file_atomic(path, "v1", 2, 0644, false, &e), HS_OK);
    assert_true(exists(tmp));
    assert_int_equal(count_entries(), 2);

    kill_writer(pid);
    assert_true(exists(tmp)); /* SIGKILL left it */
    assert_int_equal(hs_write_file_atomic(path, "v2", 2, 0644, false, &e), HS_OK);
    assert_false(exists(tmp));
    assert_int_equal(count_entries(), 1); /* out.apk only */
}

/* In-process writers are told apart too (flock is per open file). */
static void open_writer_in_same_process_is_kept(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", in_dir("same.bin"));
    hs_error e;
    hs_atomic_file a, b;
    assert_int_equal(hs_atomic_open(&a, path, 0600, &e), HS_OK);
    assert_int_equal(hs_atomic_write_all(&a, "a", 1, &e), HS_OK);
    assert_int_equal(hs_stale_tmp_remove(path), 0);
    assert_int_equal(hs_atomic_open(&b, path, 0600, &e), HS_OK);
    assert_int_equal(access(a.tmp_path, F_OK), 0);
    assert_int_equal(hs_atomic_write_all(&b, "b", 1, &e), HS_OK);
    assert_int_equal(hs_atomic_commit(&b, false, &e), HS_OK);
    hs_atomic_abort(&b);
    assert_int_equal(hs_atomic_commit(&a, false, &e), HS_OK);
    hs_atomic_abort(&a);
    assert_int_equal(count_entries(), 1);
}

/* Stale regular files matching exactly "<base>.tmp.XXXXXX" go; every
 * other entry stays, with its content. */
static void only_stale_temporaries_of_that_path_are_removed(void **state)
{
    (void)state;
    const char *stale[] = {"out.apk.tmp.AbC123", "out.apk.tmp.zzzzzz", "out.apk.tmp.000000"};
    const char *kept[] = {
        "out.apk",               /* the output itself */
        "other.apk.tmp.AbC123",  /* another output's temporary file */
        "xout.apk.tmp.AbC123",   /* a longer name ending like ours */
        "ut.apk.tmp.AbC123",     /* a shorter one */
        "out.apk.tmp.AbC12",     /* 5 random characters */
        "out.apk.tmp.AbC1234",   /* 7 */
        "out.apk.tmp.AbC-23",    /* not an mkstemp character */
        "out.apk.tmp.AbC123.x",  /* a suffix after it */
        "out.apk.tmp.",          /* nothing after the infix */
        "out.apk.TMP.AbC123",    /* case matters */
        "out.apk.tmp-AbC123",
    };
    for (size_t i = 0; i < sizeof stale / sizeof *stale; i++)
        make_file(stale[i], "stale");
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        make_file(kept[i], kept[i]);
    assert_int_equal(mkdir(in_dir("out.apk.tmp.Dir123"), 0755), 0); /* not a regular file */
    assert_int_equal(mkfifo(in_dir("out.apk.tmp.Fif123"), 0644), 0); /* must not block */

    assert_int_equal(hs_stale_tmp_remove(in_dir("out.apk")), 3);
    for (size_t i = 0; i < sizeof stale / sizeof *stale; i++)
        assert_false(exists(stale[i]));
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        uint8_t *buf;
        size_t len;
        hs_error e;
        assert_int_equal(hs_read_file(in_dir(kept[i]), 100, &buf, &len, &e), HS_OK);
        assert_string_equal((char *)buf, kept[i]);
        free(buf);
    }
    assert_true(exists("out.apk.tmp.Dir123"));
    assert_true(exists("out.apk.tmp.Fif123"));
    assert_int_equal(count_entries(), (int)(sizeof kept / sizeof *kept) + 2);
    /* Idempotent: nothing more to remove. */
    assert_int_equal(hs_stale_tmp_remove(in_dir("out.apk")), 0);
}

/* A symlink named like a temporary file is not followed nor removed: the
 * link stays, and so does its target, byte for byte. */
static void symlink_named_like_a_temporary_is_kept(void **state)
{
    (void)state;
    make_file("target.txt", "precious");
    assert_int_equal(symlink(in_dir("target.txt"), in_dir("out.apk.tmp.Sym123")), 0);
    assert_int_equal(symlink("/nonexistent", in_dir("out.apk.tmp.Dng123")), 0);
    assert_int_equal(hs_stale_tmp_remove(in_dir("out.apk")), 0);
    struct stat st;
    assert_int_equal(lstat(in_dir("out.apk.tmp.Sym123"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(lstat(in_dir("out.apk.tmp.Dng123"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    uint8_t *buf;
    size_t len;
    hs_error e;
    assert_int_equal(hs_read_file(in_dir("target.txt"), 100, &buf, &len, &e), HS_OK);
    assert_string_equal((char *)buf, "precious");
    free(buf);
    /* hs_atomic_open of the path does the same. */
    assert_int_equal(hs_write_file_atomic(in_dir("out.apk"), "x", 1, 0644, false, &e), HS_OK);
    assert_int_equal(lstat(in_dir("out.apk.tmp.Sym123"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(count_entries(), 4);
}

/* A relative path and a file in the current directory are handled. */
static void relative_path(void **state)
{
    (void)state;
    make_file("rel.txt.tmp.Rel123", "stale");
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    size_t n = hs_stale_tmp_remove("rel.txt");
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(n, 1);
    assert_false(exists("rel.txt.tmp.Rel123"));
    /* A path naming a directory has no temporary files. */
    assert_int_equal(hs_stale_tmp_remove("/"), 0);
}

/* The whole-directory variant (the audit log's checkpoints/): any stem,
 * same safety rules. */
static void whole_directory_variant(void **state)
{
    (void)state;
    make_file("00000000000000000005", "cp");
    make_file("00000000000000000005.tmp.Ab1234", "stale");
    make_file("00000000000000000007.tmp.Cd5678", "stale");
    make_file(".tmp.Ef9012", "no stem"); /* not a temporary of any name */
    assert_int_equal(symlink(in_dir("00000000000000000005"), in_dir("x.tmp.Lnk123")), 0);
    char live[256];
    pid_t pid = start_writer(in_dir("00000000000000000009"), live, sizeof live);
    assert_int_equal(hs_stale_tmp_remove_in_dir(dir), 2);
    assert_true(exists("00000000000000000005"));
    assert_false(exists("00000000000000000005.tmp.Ab1234"));
    assert_false(exists("00000000000000000007.tmp.Cd5678"));
    assert_true(exists(".tmp.Ef9012"));
    assert_true(exists("x.tmp.Lnk123"));
    assert_true(exists(live));
    kill_writer(pid);
    assert_int_equal(hs_stale_tmp_remove_in_dir(dir), 1);
    assert_false(exists(live));
    assert_int_equal(hs_stale_tmp_remove_in_dir(in_dir("missing")), 0);
}

/* Cleaners running flat out against a writer of the same path never make
 * it fail or lose an output: the writer's lock covers its file from just
 * after mkstemp (a file removed before the lock is detected and replaced)
 * until the rename.
 *
 * No time window: the writes start once every cleaner has made a pass
 * (each says so on a pipe), and go on until there were at least
 * MIN_WRITES of them and every cleaner made MIN_PASSES more passes
 * meanwhile, counted in shared memory. A loaded machine makes the test
 * slower, never wrong (meson's timeout bounds it). */
enum { CLEANERS = 3, MIN_WRITES = 200, MIN_PASSES = 50 };

static bool cleaners_kept_up(const unsigned long *passes, const unsigned long *at_start)
{
    for (int i = 0; i < CLEANERS; i++)
        if (__atomic_load_n(&passes[i], __ATOMIC_RELAXED) - at_start[i] < MIN_PASSES)
            return false;
    return true;
}

/* One atomic write and its read-back; false (and the first message in
 * msg) on any difference. */
static bool write_and_check(const char *path, int n, char *msg, size_t cap)
{
    hs_error e;
    char data[32];
    int len = snprintf(data, sizeof data, "write %d", n);
    if (hs_write_file_atomic(path, data, (size_t)len, 0644, false, &e) != HS_OK) {
        if (msg[0] == '\0')
            snprintf(msg, cap, "%s", e.msg);
        return false;
    }
    uint8_t *buf;
    size_t got;
    bool same = hs_read_file(path, 100, &buf, &got, &e) == HS_OK && got == (size_t)len &&
                memcmp(buf, data, got) == 0;
    free(buf); /* NULL on failure */
    return same;
}

static void concurrent_cleaners_never_break_a_writer(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", in_dir("busy.out"));
    unsigned long *passes = mmap(NULL, CLEANERS * sizeof *passes, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(passes != MAP_FAILED);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t parent = getpid(), cleaners[CLEANERS];
    for (int i = 0; i < CLEANERS; i++) {
        cleaners[i] = fork();
        assert_true(cleaners[i] >= 0);
        if (cleaners[i] == 0) {
            die_with_parent(parent);
            close(ready[0]);
            for (;;) {
                (void)hs_stale_tmp_remove(path);
                if (__atomic_fetch_add(&passes[i], 1, __ATOMIC_RELAXED) == 0 &&
                    write(ready[1], "r", 1) != 1)
                    _exit(1);
            }
        }
    }
    close(ready[1]);
    for (int i = 0; i < CLEANERS; i++) {
        char c;
        assert_int_equal(read(ready[0], &c, 1), 1); /* blocks until cleaner i runs */
    }
    close(ready[0]);
    unsigned long at_start[CLEANERS];
    for (int i = 0; i < CLEANERS; i++)
        at_start[i] = __atomic_load_n(&passes[i], __ATOMIC_RELAXED);
    int writes = 0, failures = 0;
    char msg[sizeof ((hs_error *)0)->msg] = "";
    while (writes < MIN_WRITES || !cleaners_kept_up(passes, at_start))
        failures += !write_and_check(path, writes++, msg, sizeof msg);
    for (int i = 0; i < CLEANERS; i++)
        kill_writer(cleaners[i]);
    print_message("# %d writes against %d cleaners (%lu, %lu, %lu passes), %d failures %s\n",
                  writes, CLEANERS, passes[0] - at_start[0], passes[1] - at_start[1],
                  passes[2] - at_start[2], failures, msg);
    munmap(passes, CLEANERS * sizeof *passes);
    assert_int_equal(failures, 0);
    assert_int_equal(count_entries(), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(killed_writers_file_is_removed_live_one_kept, fresh_dir),
        cmocka_unit_test_setup(open_writer_in_same_process_is_kept, fresh_dir),
        cmocka_unit_test_setup(only_stale_temporaries_of_that_path_are_removed, fresh_dir),
        cmocka_unit_test_setup(symlink_named_like_a_temporary_is_kept, fresh_dir),
        cmocka_unit_test_setup(relative_path, fresh_dir),
        cmocka_unit_test_setup(whole_directory_variant, fresh_dir),
        cmocka_unit_test_setup(concurrent_cleaners_never_break_a_writer, fresh_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
