/* The APK content digest in steps (apk_digest.h): a section's prefix read
 * from another file, bytes past it held back until the caller opens the
 * job, a job finished or cancelled unopened failing and releasing its
 * helpers; and the output's early fdatasync
 * (apk_out.c), whose failure must reach the caller. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "apk/apk_digest.h"
#include "apk/apk_sign_internal.h"

/* Two chunks and a bit, the prefix ending inside the second chunk: one
 * chunk straddles the prefix end. */
#define LEN (2u * HS_APK_CHUNK_SIZE + 4099u)
#define PREFIX (HS_APK_CHUNK_SIZE + 300001u)

static char dir[64];
static uint8_t *content;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hsmsign-apk-digest-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    content = malloc(LEN);
    if (content == NULL)
        return -1;
    for (size_t i = 0; i < LEN; i++)
        content[i] = (uint8_t)(i * 131u + (i >> 12));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(content);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* A file holding content, with [from, to) replaced by 0xee. */
static int file_with_garbage(const char *name, size_t from, size_t to)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    uint8_t *copy = malloc(LEN);
    assert_non_null(copy);
    memcpy(copy, content, LEN);
    memset(copy + from, 0xee, to - from);
    assert_int_equal(pwrite(fd, copy, LEN, 0), (ssize_t)LEN);
    free(copy);
    return fd;
}

static size_t expected_digest(uint8_t *out)
{
    hs_apk_section mem = {.len = LEN, .mem = content};
    size_t out_len = 0;
    hs_error e = {0};
    assert_int_equal(hs_apk_content_digest(EVP_sha256(), &mem, 1, NULL, "mem", out, &out_len, &e),
                     HS_OK);
    return out_len;
}

/* The prefix comes from prefix_fd and only the rest from fd: each file is
 * wrong where the other is read, so any byte taken from the wrong one
 * changes the digest. With and without worker threads. */
static void test_prefix_from_other_file(void **state)
{
    (void)state;
    uint8_t want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    size_t want_len = expected_digest(want);
    int in = file_with_garbage("in", PREFIX, LEN);
    int out = file_with_garbage("out", 0, PREFIX);
    hs_apk_section sec = {.fd = out, .len = LEN, .prefix_fd = in, .prefix_len = PREFIX};
    for (unsigned workers = 0; workers <= 2; workers += 2) {
        hs_apk_digest_job *job = NULL;
        hs_error e = {0};
        assert_int_equal(hs_apk_digest_start(EVP_sha256(), &sec, 1, workers, "out", &job, &e),
                         HS_OK);
        hs_apk_digest_open(job);
        hs_apk_digest_work(job);
        size_t got_len = 0;
        assert_int_equal(hs_apk_digest_finish(job, got, &got_len, &e), HS_OK);
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, want, want_len);
    }
    close(in);
    close(out);
}

/* The rest of the section is written after the workers started: opened
 * only then, the digest is still the content's. */
static void test_rest_written_after_start(void **state)
{
    (void)state;
    uint8_t want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    size_t want_len = expected_digest(want);
    int in = file_with_garbage("in2", PREFIX, LEN);
    int out = file_with_garbage("out2", 0, LEN);
    hs_apk_section sec = {.fd = out, .len = LEN, .prefix_fd = in, .prefix_len = PREFIX};
    hs_apk_digest_job *job = NULL;
    hs_error e = {0};
    assert_int_equal(hs_apk_digest_start(EVP_sha256(), &sec, 1, 2, "out", &job, &e), HS_OK);
    assert_int_equal(pwrite(out, content + PREFIX, LEN - PREFIX, PREFIX), (ssize_t)(LEN - PREFIX));
    hs_apk_digest_open(job);
    size_t got_len = 0;
    assert_int_equal(hs_apk_digest_finish(job, got, &got_len, &e), HS_OK);
    assert_memory_equal(got, want, want_len);
    close(in);
    close(out);
}

/* Finished without being opened (the caller failed writing the rest): the
 * workers waiting for it are released and the job fails rather than
 * digesting bytes that were never declared written. */
static void test_unopened_job_is_cancelled(void **state)
{
    (void)state;
    int in = file_with_garbage("in3", PREFIX, LEN);
    int out = file_with_garbage("out3", 0, LEN);
    hs_apk_section sec = {.fd = out, .len = LEN, .prefix_fd = in, .prefix_len = PREFIX};
    hs_apk_digest_job *job = NULL;
    hs_error e = {0};
    assert_int_equal(hs_apk_digest_start(EVP_sha256(), &sec, 1, 2, "out", &job, &e), HS_OK);
    uint8_t got[EVP_MAX_MD_SIZE];
    size_t got_len = 0;
    assert_int_not_equal(hs_apk_digest_finish(job, got, &got_len, &e), HS_OK);
    close(in);
    close(out);
}

static void *helper(void *job)
{
    hs_apk_digest_work(job);
    return NULL;
}

/* A thread of the caller's helps (the signer's hasher) and waits for the
 * rest of the section; the caller fails before writing it: cancel releases
 * the helper, so the caller can join it before finishing (without cancel
 * this test hangs until its timeout). */
static void test_cancel_releases_helpers(void **state)
{
    (void)state;
    int out = file_with_garbage("out4", 0, LEN);
    hs_apk_section sec = {.fd = out, .len = LEN};
    hs_apk_digest_job *job = NULL;
    hs_error e = {0};
    assert_int_equal(hs_apk_digest_start(EVP_sha256(), &sec, 1, 0, "out", &job, &e), HS_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, helper, job), 0);
    hs_apk_digest_cancel(job);
    assert_int_equal(pthread_join(t, NULL), 0);
    uint8_t got[EVP_MAX_MD_SIZE];
    size_t got_len = 0;
    assert_int_not_equal(hs_apk_digest_finish(job, got, &got_len, &e), HS_OK);
    close(out);
}

/* The early fdatasync of a large output fails (a pipe cannot be synced):
 * the failure is the caller's, not swallowed by the thread. A write-back
 * error is reported once per open file, so the final fsync would not
 * report it again. */
static void test_early_sync_failure_reported(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    hs_apk_out o;
    memset(&o, 0, sizeof o);
    o.af.fd = p[1];
    o.af.path = "pipe";
    o.pos = HS_APK_EARLY_SYNC_MIN;
    hs_apk_out_start_sync(&o);
    hs_error e = {0};
    assert_int_equal(hs_apk_out_end_sync(&o, &e), HS_E_IO);
    assert_non_null(strstr(e.msg, "pipe: fsync failed"));
    hs_apk_out_abort(&o); /* nothing left to join or free */
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_from_other_file),
        cmocka_unit_test(test_rest_written_after_start),
        cmocka_unit_test(test_unopened_job_is_cancelled),
        cmocka_unit_test(test_cancel_releases_helpers),
        cmocka_unit_test(test_early_sync_failure_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
