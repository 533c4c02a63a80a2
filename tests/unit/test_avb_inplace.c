/* The in-place footer protocol's pieces (src/lib/avb/avb_inplace.h): the
 * pending record is recognised only when it describes the very file it
 * ends (size, original size, checksum), a rollback restores the original
 * bytes and size, and publish replaces the record with the footer. The
 * crash behaviour end to end is tests/integration/test_avb_crash.sh. */
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

#include "avb/avb_bytes.h"
#include "avb/avb_info.h"
#include "avb/avb_inplace.h"

#define ORIG 10000u  /* not a multiple of 4096, as images rarely are */
#define PART 65536u

static int make_image(char *path, uint8_t *orig)
{
    strcpy(path, "/tmp/hsmsign-inplace.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    for (size_t i = 0; i < ORIG; i++)
        orig[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(write(fd, orig, ORIG), ORIG);
    return fd;
}

static uint64_t file_size(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return (uint64_t)st.st_size;
}

static void assert_original(int fd, const uint8_t *orig)
{
    uint8_t buf[ORIG];
    hs_error e = {0};
    assert_int_equal(file_size(fd), ORIG);
    assert_int_equal(hs_avb_pread_all(fd, buf, ORIG, 0, "img", &e), HS_OK);
    assert_memory_equal(buf, orig, ORIG);
}

static void pending_recognised_and_rolled_back(void **state)
{
    (void)state;
    char path[64];
    uint8_t orig[ORIG];
    int fd = make_image(path, orig);
    hs_error e = {0};
    hs_avb_inplace ip;
    bool pending = true;
    uint64_t size = 0;
    assert_int_equal(hs_avb_inplace_pending(fd, "img", ORIG, &pending, &size, &e), HS_OK);
    assert_false(pending); /* a plain image */

    assert_int_equal(hs_avb_inplace_begin(&ip, fd, "img", ORIG, PART, &e), HS_OK);
    assert_int_equal(file_size(fd), PART);
    assert_int_equal(hs_avb_inplace_pending(fd, "img", PART, &pending, &size, &e), HS_OK);
    assert_true(pending);
    assert_int_equal(size, ORIG);
    /* The same bytes at the end of a longer file describe another file. */
    assert_int_equal(ftruncate(fd, PART + 4096), 0);
    uint8_t rec[64];
    assert_int_equal(hs_avb_pread_all(fd, rec, 64, PART - 64, "img", &e), HS_OK);
    assert_int_equal(hs_avb_pwrite_all(fd, rec, 64, PART + 4096 - 64, "img", &e), HS_OK);
    assert_int_equal(hs_avb_inplace_pending(fd, "img", PART + 4096, &pending, &size, &e), HS_OK);
    assert_false(pending);
    /* One flipped checksum bit: not a record. */
    rec[63] ^= 1;
    assert_int_equal(hs_avb_pwrite_all(fd, rec, 64, PART + 4096 - 64, "img", &e), HS_OK);
    rec[63] ^= 1;
    assert_int_equal(ftruncate(fd, PART), 0);
    rec[40] ^= 0x80;
    assert_int_equal(hs_avb_pwrite_all(fd, rec, 64, PART - 64, "img", &e), HS_OK);
    assert_int_equal(hs_avb_inplace_pending(fd, "img", PART, &pending, &size, &e), HS_OK);
    assert_false(pending);
    rec[40] ^= 0x80;
    assert_int_equal(hs_avb_pwrite_all(fd, rec, 64, PART - 64, "img", &e), HS_OK);

    /* An interrupted write found by the next begin is cut back first. */
    assert_int_equal(hs_avb_inplace_begin(&ip, fd, "img", ORIG, PART, &e), HS_OK);
    hs_avb_inplace_rollback(&ip);
    assert_original(fd, orig);
    close(fd);
    unlink(path);
}

static void publish_replaces_the_record(void **state)
{
    (void)state;
    char path[64];
    uint8_t orig[ORIG], footer[64], got[64];
    int fd = make_image(path, orig);
    hs_error e = {0};
    hs_avb_inplace ip;
    assert_int_equal(hs_avb_inplace_begin(&ip, fd, "img", ORIG, PART, &e), HS_OK);
    hs_avb_footer f = {1, 0, ORIG, 12288, 1000};
    hs_avb_footer_encode(&f, footer);
    assert_int_equal(hs_avb_inplace_publish(&ip, footer, &e), HS_OK);
    hs_avb_inplace_rollback(&ip); /* after publish: must not cut back */
    assert_int_equal(file_size(fd), PART);
    assert_int_equal(hs_avb_pread_all(fd, got, 64, PART - 64, "img", &e), HS_OK);
    assert_memory_equal(got, footer, 64);
    bool pending = true;
    uint64_t size = 0;
    assert_int_equal(hs_avb_inplace_pending(fd, "img", PART, &pending, &size, &e), HS_OK);
    assert_false(pending);
    uint8_t head[ORIG];
    assert_int_equal(hs_avb_pread_all(fd, head, ORIG, 0, "img", &e), HS_OK);
    assert_memory_equal(head, orig, ORIG);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pending_recognised_and_rolled_back),
        cmocka_unit_test(publish_replaces_the_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
