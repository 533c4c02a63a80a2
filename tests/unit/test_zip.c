/* ZIP reader: valid archives, every class of bad input named in the issue
 * (each must fail with a message naming the file and the reason), and the
 * inflater against zlib-compressed data written by aapt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "zip/zip.h"
#include "zip/zip_inflate.h"
#include "util/file.h"

typedef struct test_entry {
    const char *name;
    const char *data;
} test_entry;

static char tmp_path[256];

/* Writes a stored-only ZIP the simple way: LFHs, CD, EOCD with comment. */
static size_t build_zip(uint8_t *buf, const test_entry *ents, size_t n, const char *comment,
                        size_t comment_len)
{
    size_t pos = 0, offsets[8];
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(ents[i].name), dl = strlen(ents[i].data);
        uint32_t crc = hs_crc32_update(0, (const uint8_t *)ents[i].data, dl);
        offsets[i] = pos;
        uint8_t *h = buf + pos;
        memset(h, 0, 30);
        hs_put_le32(h, 0x04034b50);
        hs_put_le16(h + 4, 10);
        hs_put_le32(h + 14, crc);
        hs_put_le32(h + 18, (uint32_t)dl);
        hs_put_le32(h + 22, (uint32_t)dl);
        hs_put_le16(h + 26, (uint16_t)nl);
        memcpy(h + 30, ents[i].name, nl);
        memcpy(h + 30 + nl, ents[i].data, dl);
        pos += 30 + nl + dl;
    }
    size_t cd = pos;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(ents[i].name), dl = strlen(ents[i].data);
        uint8_t *h = buf + pos;
        memset(h, 0, 46);
        hs_put_le32(h, 0x02014b50);
        hs_put_le16(h + 4, 20);
        hs_put_le16(h + 6, 10);
        hs_put_le32(h + 16, hs_crc32_update(0, (const uint8_t *)ents[i].data, dl));
        hs_put_le32(h + 20, (uint32_t)dl);
        hs_put_le32(h + 24, (uint32_t)dl);
        hs_put_le16(h + 28, (uint16_t)nl);
        hs_put_le32(h + 42, (uint32_t)offsets[i]);
        memcpy(h + 46, ents[i].name, nl);
        pos += 46 + nl;
    }
    uint8_t *eocd = buf + pos;
    memset(eocd, 0, 22);
    hs_put_le32(eocd, 0x06054b50);
    hs_put_le16(eocd + 8, (uint16_t)n);
    hs_put_le16(eocd + 10, (uint16_t)n);
    hs_put_le32(eocd + 12, (uint32_t)(pos - cd));
    hs_put_le32(eocd + 16, (uint32_t)cd);
    hs_put_le16(eocd + 20, (uint16_t)comment_len);
    memcpy(eocd + 22, comment, comment_len);
    return pos + 22 + comment_len;
}

static void write_tmp(const uint8_t *data, size_t len)
{
    hs_error e = {0};
    unlink(tmp_path);
    assert_int_equal(hs_write_file_atomic(tmp_path, data, len, 0600, false, &e), HS_OK);
}

static void expect_error(const uint8_t *data, size_t len, const char *reason)
{
    hs_zip z;
    hs_error e = {0};
    write_tmp(data, len);
    hs_result r = hs_zip_open(&z, tmp_path, &e);
    if (r == HS_OK || strstr(e.msg, reason) == NULL || strstr(e.msg, tmp_path) == NULL)
        fail_msg("expected an error containing \"%s\", got %d: %s", reason, r, e.msg);
    assert_int_equal(r, HS_E_FORMAT);
}

static const test_entry two[] = {{"a.txt", "hello"}, {"dir/b.bin", "world!"}};

static void test_valid_archive(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "hi", 2);
    write_tmp(buf, len);
    hs_zip z;
    hs_error e = {0};
    assert_int_equal(hs_zip_open(&z, tmp_path, &e), HS_OK);
    assert_int_equal(z.entry_count, 2);
    assert_false(z.has_signing_block);
    assert_int_equal(hs_zip_find(&z, "dir/b.bin"), 1);
    assert_int_equal(hs_zip_find(&z, "dir/b"), -1);
    uint8_t *data = NULL;
    size_t dlen = 0;
    assert_int_equal(hs_zip_read_entry(&z, &z.entries[1], 100, &data, &dlen, &e), HS_OK);
    assert_int_equal(dlen, 6);
    assert_memory_equal(data, "world!", 6);
    free(data);
    assert_int_equal(hs_zip_read_entry(&z, &z.entries[1], 5, &data, &dlen, &e), HS_E_FORMAT);
    hs_zip_close(&z);
}

static void test_not_a_zip(void **state)
{
    (void)state;
    expect_error((const uint8_t *)"", 0, "not a ZIP archive");
    expect_error((const uint8_t *)"hello, this is text and not a zip file", 38,
                 "not a ZIP archive");
}

static void test_truncated(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "", 0);
    /* Every truncation must be refused, never crash or read past the end. */
    for (size_t cut = 1; cut < len; cut++) {
        hs_zip z;
        hs_error e = {0};
        write_tmp(buf, len - cut);
        assert_int_not_equal(hs_zip_open(&z, tmp_path, &e), HS_OK);
    }
    expect_error(buf, len - 3, "truncated ZIP archive");
}

static void test_garbage_after_eocd(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "", 0);
    memcpy(buf + len, "junk", 4);
    expect_error(buf, len + 4, "garbage after the end-of-central-directory record");
}

static void test_second_eocd_in_comment(void **state)
{
    (void)state;
    /* a whole (valid) end record as the comment: two candidates */
    uint8_t buf[1024], comment[22] = {0x50, 0x4b, 0x05, 0x06};
    size_t len = build_zip(buf, two, 2, (const char *)comment, sizeof comment);
    expect_error(buf, len, "two end-of-central-directory records");
    /* an end record signature inside the comment */
    len = build_zip(buf, two, 2, "ab" "PK\x05\x06" "cdefgh", 12);
    expect_error(buf, len, "second end-of-central-directory record");
}

static void test_cd_outside_file(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "", 0);
    hs_put_le32(buf + len - 22 + 16, 100000);
    expect_error(buf, len, "points outside the file");
    len = build_zip(buf, two, 2, "", 0);
    hs_put_le32(buf + len - 22 + 12, 0xfffffff0u);
    expect_error(buf, len, "points outside the file");
}

static void test_duplicate_names(void **state)
{
    (void)state;
    static const test_entry dup[] = {{"same", "one"}, {"same", "two"}};
    uint8_t buf[1024];
    size_t len = build_zip(buf, dup, 2, "", 0);
    expect_error(buf, len, "duplicate entry name same");
}

static void test_overlapping_entries(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "", 0);
    /* a.txt claims 20 bytes: its data now runs into b.bin's local header */
    hs_put_le32(buf + 18, 20);
    hs_put_le32(buf + 22, 20);
    size_t cd = hs_le32(buf + len - 22 + 16);
    hs_put_le32(buf + cd + 20, 20);
    hs_put_le32(buf + cd + 24, 20);
    hs_put_le32(buf + cd + 16, hs_le32(buf + 14));
    expect_error(buf, len, "overlap");
}

static void test_entry_overlapping_cd(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "", 0);
    size_t cd = hs_le32(buf + len - 22 + 16);
    size_t second = cd + 46 + strlen(two[0].name);
    hs_put_le32(buf + second + 20, 200);
    hs_put_le32(buf + second + 24, 200);
    expect_error(buf, len, "disagree on CRC or sizes");
    hs_put_le32(buf + 40 + 18, 200); /* LFH of dir/b.bin too: now data runs into the CD */
    hs_put_le32(buf + 40 + 22, 200);
    expect_error(buf, len, "overlaps the central directory");
}

static void test_zip64_refused(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "", 0);
    hs_put_le16(buf + len - 22 + 8, 0xffff);
    hs_put_le16(buf + len - 22 + 10, 0xffff);
    expect_error(buf, len, "zip64 archives are not supported");
    len = build_zip(buf, two, 2, "", 0);
    size_t cd = hs_le32(buf + len - 22 + 16);
    hs_put_le32(buf + cd + 42, 0xffffffffu);
    expect_error(buf, len, "zip64 archives are not supported");
}

static void test_bad_local_header(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_zip(buf, two, 2, "", 0);
    buf[30] = 'X'; /* name in the LFH differs from the CD */
    expect_error(buf, len, "name differ");
    len = build_zip(buf, two, 2, "", 0);
    size_t cd = hs_le32(buf + len - 22 + 16);
    hs_put_le16(buf + len - 22 + 8, 3);
    hs_put_le16(buf + len - 22 + 10, 3);
    expect_error(buf, len, "central directory record #3");
    len = build_zip(buf, two, 2, "", 0);
    hs_put_le16(buf + len - 22 + 8, 1);
    hs_put_le16(buf + len - 22 + 10, 1);
    expect_error(buf, len, "unused bytes at the end of the central directory");
    (void)cd;
}

static const char *vector(const char *name, char *buf, size_t len)
{
    const char *dir = getenv("HSMSIGN_VECTORS");
    snprintf(buf, len, "%s/apk/%s", dir ? dir : "tests/vectors", name);
    return buf;
}

/* aapt deflated AndroidManifest.xml with zlib; unzip extracted the same
 * file as manifest-21.axml. Our inflater must agree byte for byte. */
static void test_inflate_matches_zlib(void **state)
{
    (void)state;
    char p1[512], p2[512];
    hs_zip z;
    hs_error e = {0};
    assert_int_equal(hs_zip_open(&z, vector("app21.apk", p1, sizeof p1), &e), HS_OK);
    long i = hs_zip_find(&z, "AndroidManifest.xml");
    assert_true(i >= 0);
    assert_int_equal(z.entries[i].method, 8);
    uint8_t *got = NULL, *want = NULL;
    size_t got_len = 0, want_len = 0;
    assert_int_equal(hs_zip_read_entry(&z, &z.entries[i], 1 << 20, &got, &got_len, &e), HS_OK);
    assert_int_equal(hs_read_file(vector("manifest-21.axml", p2, sizeof p2), 1 << 20, &want,
                                  &want_len, &e),
                     HS_OK);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    /* Corrupted compressed data: refused (bad stream or CRC), never a crash. */
    const hs_zip_entry *ent = &z.entries[i];
    uint8_t *copy = malloc(ent->compressed_size);
    memcpy(copy, z.map + ent->data_offset, ent->compressed_size);
    for (size_t k = 0; k < ent->compressed_size; k += 7) {
        copy[k] ^= 0x55;
        (void)hs_inflate_raw(copy, ent->compressed_size, got, got_len);
        copy[k] ^= 0x55;
    }
    for (size_t cut = 0; cut < ent->compressed_size; cut += 13)
        assert_false(hs_inflate_raw(copy, cut, got, got_len));
    free(copy);
    free(got);
    free(want);
    hs_zip_close(&z);
}

static void test_signing_block_found(void **state)
{
    (void)state;
    char p[512];
    hs_zip z;
    hs_error e = {0};
    assert_int_equal(hs_zip_open(&z, vector("app21.v2v3.apksigner.apk", p, sizeof p), &e), HS_OK);
    assert_true(z.has_signing_block);
    assert_int_equal((z.cd_offset - z.entries_end) % 4096, 0);
    assert_memory_equal(z.map + z.cd_offset - 16, "APK Sig Block 42", 16);
    hs_zip_close(&z);
}

static void test_crc32_known_value(void **state)
{
    (void)state;
    /* The standard check value of CRC-32/ISO-HDLC. */
    assert_int_equal(hs_crc32_update(0, (const uint8_t *)"123456789", 9), 0xcbf43926u);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/hsmsign-test-zip-%d.zip", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(tmp_path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_archive),        cmocka_unit_test(test_not_a_zip),
        cmocka_unit_test(test_truncated),            cmocka_unit_test(test_garbage_after_eocd),
        cmocka_unit_test(test_second_eocd_in_comment), cmocka_unit_test(test_cd_outside_file),
        cmocka_unit_test(test_duplicate_names),      cmocka_unit_test(test_overlapping_entries),
        cmocka_unit_test(test_entry_overlapping_cd), cmocka_unit_test(test_zip64_refused),
        cmocka_unit_test(test_bad_local_header),     cmocka_unit_test(test_inflate_matches_zlib),
        cmocka_unit_test(test_signing_block_found),  cmocka_unit_test(test_crc32_known_value),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
