/* The entry data check of the APK signer (zip_check.c): good archives pass
 * whatever the size of the pieces they are fed in, and each kind of
 * damaged entry is refused with the entry and the reason named. Archives
 * are built here, deflated with zlib. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#define ZLIB_CONST
#include <zlib.h>

#include "zip/zip.h"
#include "zip/zip_check.h"
#include "zip/zip_inflate.h"
#include "util/file.h"

#define MAX_ZIP (1024u * 1024u)

/* One entry: its uncompressed bytes, and how its headers lie about them. */
typedef struct spec {
    const char *name;
    const uint8_t *data;
    size_t len;
    uint16_t method;       /* 0 stored, 8 deflated, other: written stored */
    long extra_tail;       /* deflated: bytes added (> 0) or cut (< 0) */
    long size_delta;       /* added to the declared uncompressed size */
    uint32_t crc_xor;      /* xored into the declared CRC-32 */
} spec;

static char tmp_path[256];

static size_t deflate_raw(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_in = in;
    s.avail_in = (uInt)len;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
    size_t n = cap - s.avail_out;
    deflateEnd(&s);
    return n;
}

static void put_header(uint8_t *h, bool central, const spec *sp, uint32_t csize, uint32_t crc,
                       uint32_t lfh_offset)
{
    size_t at = central ? 2 : 0; /* the CD record has "version made by" first */
    memset(h, 0, central ? 46 : 30);
    hs_put_le32(h, central ? 0x02014b50 : 0x04034b50);
    hs_put_le16(h + 4 + at, 20);
    hs_put_le16(h + 8 + at, sp->method);
    hs_put_le32(h + 14 + at, crc);
    hs_put_le32(h + 18 + at, csize);
    hs_put_le32(h + 22 + at, (uint32_t)((long)sp->len + sp->size_delta));
    hs_put_le16(h + 26 + at, (uint16_t)strlen(sp->name));
    if (central)
        hs_put_le32(h + 42, lfh_offset);
}

/* Writes the archive to tmp_path. */
static void build(const spec *sp, size_t n)
{
    uint8_t *buf = calloc(1, MAX_ZIP), *comp = malloc(MAX_ZIP);
    uint32_t offsets[8], csizes[8], crcs[8];
    size_t pos = 0;
    assert_non_null(buf);
    assert_non_null(comp);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(sp[i].name), clen = sp[i].len;
        const uint8_t *cdata = sp[i].data;
        if (sp[i].method == 8) {
            clen = deflate_raw(sp[i].data, sp[i].len, comp, MAX_ZIP);
            clen = (size_t)((long)clen + sp[i].extra_tail);
            cdata = comp;
            if (sp[i].extra_tail > 0)
                memset(comp + clen - (size_t)sp[i].extra_tail, 0x5a, (size_t)sp[i].extra_tail);
        }
        crcs[i] = hs_crc32_update(0, sp[i].data, sp[i].len) ^ sp[i].crc_xor;
        csizes[i] = (uint32_t)clen;
        offsets[i] = (uint32_t)pos;
        put_header(buf + pos, false, &sp[i], csizes[i], crcs[i], 0);
        memcpy(buf + pos + 30, sp[i].name, nl);
        if (clen > 0)
            memcpy(buf + pos + 30 + nl, cdata, clen);
        pos += 30 + nl + clen;
    }
    size_t cd = pos;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(sp[i].name);
        put_header(buf + pos, true, &sp[i], csizes[i], crcs[i], offsets[i]);
        memcpy(buf + pos + 46, sp[i].name, nl);
        pos += 46 + nl;
    }
    uint8_t *eocd = buf + pos;
    hs_put_le32(eocd, 0x06054b50);
    hs_put_le16(eocd + 8, (uint16_t)n);
    hs_put_le16(eocd + 10, (uint16_t)n);
    hs_put_le32(eocd + 12, (uint32_t)(pos - cd));
    hs_put_le32(eocd + 16, (uint32_t)cd);
    pos += 22;
    hs_error e = {0};
    unlink(tmp_path);
    assert_int_equal(hs_write_file_atomic(tmp_path, buf, pos, 0600, false, &e), HS_OK);
    free(buf);
    free(comp);
}

/* Feeds the archive in pieces of `piece` bytes; the check's result. */
static hs_result check_in_pieces(size_t piece, hs_error *e)
{
    hs_zip z;
    hs_zip_check *c = NULL;
    assert_int_equal(hs_zip_open(&z, tmp_path, e), HS_OK);
    assert_int_equal(hs_zip_check_new(&z, &c, e), HS_OK);
    for (uint64_t off = 0; off < z.size; off += piece) {
        size_t n = z.size - off < piece ? (size_t)(z.size - off) : piece;
        if (!hs_zip_check_feed(c, off, z.map + off, n))
            break;
    }
    hs_result r = hs_zip_check_end(c, e);
    hs_zip_check_free(c);
    hs_zip_close(&z);
    return r;
}

static uint8_t text[200000], noise[70000];

static void expect_refused(const spec *sp, size_t n, const char *entry, const char *reason)
{
    static const size_t pieces[] = {1, 13, 4096, 65536, MAX_ZIP};
    build(sp, n);
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        hs_error e = {0};
        assert_int_equal(check_in_pieces(pieces[i], &e), HS_E_FORMAT);
        char want[128];
        snprintf(want, sizeof want, "entry %s: %s", entry, reason);
        if (strstr(e.msg, want) == NULL || strstr(e.msg, tmp_path) == NULL)
            fail_msg("piece %zu: '%s' does not say '%s'", pieces[i], e.msg, want);
    }
}

static void test_good_archive_passes_in_any_pieces(void **state)
{
    (void)state;
    spec sp[] = {
        {"AndroidManifest.xml", text, 3000, 8, 0, 0, 0},
        {"dir/", NULL, 0, 0, 0, 0, 0},
        {"res/raw/noise.bin", noise, sizeof noise, 0, 0, 0, 0},
        {"assets/text.txt", text, sizeof text, 8, 0, 0, 0},
        {"assets/noise.z", noise, sizeof noise, 8, 0, 0, 0},
        {"empty", NULL, 0, 0, 0, 0, 0},
    };
    static const size_t pieces[] = {1, 7, 4096, 65536, 1024 * 1024};
    build(sp, sizeof sp / sizeof sp[0]);
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        hs_error e = {0};
        if (check_in_pieces(pieces[i], &e) != HS_OK)
            fail_msg("piece %zu: %s", pieces[i], e.msg);
    }
}

static void test_damaged_entries_are_named(void **state)
{
    (void)state;
    spec good = {"assets/text.txt", text, sizeof text, 8, 0, 0, 0};
    spec sp[2] = {{"raw.bin", noise, 5000, 0, 0, 0, 0}, good};
    sp[1].extra_tail = 3;
    expect_refused(sp, 2, "assets/text.txt", "bytes follow the end of its deflate stream");
    sp[1].extra_tail = -5;
    expect_refused(sp, 2, "assets/text.txt",
                   "its deflate data ends before the deflate stream does");
    sp[1].extra_tail = 0;
    sp[1].size_delta = 1;
    expect_refused(sp, 2, "assets/text.txt", "inflates to fewer bytes than its declared size");
    sp[1].size_delta = -1;
    expect_refused(sp, 2, "assets/text.txt", "inflates to more than its declared size");
    sp[1].size_delta = 0;
    sp[1].crc_xor = 1;
    expect_refused(sp, 2, "assets/text.txt", "CRC-32 does not match");
    sp[1] = good;
    sp[0].crc_xor = 0x80000000u;
    expect_refused(sp, 2, "raw.bin", "CRC-32 does not match");
    sp[0].crc_xor = 0;
    sp[0].method = 12; /* bzip2: written stored here, refused by method */
    expect_refused(sp, 2, "raw.bin", "compression method is neither stored nor deflated");
    spec empty_deflated = {"empty.z", NULL, 0, 8, -2, 0, 0}; /* 0 compressed bytes */
    expect_refused(&empty_deflated, 1, "empty.z", "its deflate data ends before");
}

static void test_corrupt_deflate_is_named(void **state)
{
    (void)state;
    /* A reserved block type (BTYPE 3) in the first byte: zlib's
     * "invalid block type". Built by hand: one deflated entry whose data
     * starts 0xff. */
    spec sp = {"AndroidManifest.xml", text, 3000, 8, 0, 0, 0};
    build(&sp, 1);
    uint8_t *b = NULL;
    size_t len = 0;
    hs_error e = {0};
    assert_int_equal(hs_read_file(tmp_path, MAX_ZIP, &b, &len, &e), HS_OK);
    b[30 + strlen(sp.name)] = 0xff;
    unlink(tmp_path);
    assert_int_equal(hs_write_file_atomic(tmp_path, b, len, 0600, false, &e), HS_OK);
    free(b);
    assert_int_equal(check_in_pieces(4096, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "entry AndroidManifest.xml: corrupt deflate data"));
}

int main(void)
{
    snprintf(tmp_path, sizeof tmp_path, "%s/hsmsign-zipcheck-%ld.zip",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (uint8_t)("hsmsign checks every entry "[i % 27]);
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (uint8_t)(x >> 16);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_archive_passes_in_any_pieces),
        cmocka_unit_test(test_damaged_entries_are_named),
        cmocka_unit_test(test_corrupt_deflate_is_named),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(tmp_path);
    return rc;
}
