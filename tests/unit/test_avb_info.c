/* Parsing AVB metadata from avbtool-made images (tests/vectors/avb): the
 * fields, the info_image rendering (compared with avbtool's own output),
 * signature checks, and strictness: inconsistent sizes, truncation and
 * single-byte corruption are errors, never out-of-bounds reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "avb/avb_bytes.h"
#include "avb/avb_info.h"
#include "avb/avb_verify.h"
#include "util/file.h"

static const char *vector_path(const char *name)
{
    static char path[512];
    const char *dir = getenv("HSMSIGN_VECTORS");
    snprintf(path, sizeof path, "%s/avb/%s", dir ? dir : "tests/vectors", name);
    return path;
}

static void read_vector(const char *name, uint8_t **data, size_t *len)
{
    hs_error e = {0};
    assert_int_equal(hs_read_file(vector_path(name), 16 << 20, data, len, &e), HS_OK);
}

static void test_vbmeta_fields(void **state)
{
    (void)state;
    hs_avb_image img;
    hs_error e = {0};
    assert_int_equal(hs_avb_image_load(vector_path("vbmeta.img"), &img, &e), HS_OK);
    const hs_avb_vbmeta *v = &img.vbmeta;
    assert_false(img.has_footer);
    assert_string_equal(v->alg->name, "SHA256_RSA4096");
    assert_int_equal(v->rollback_index, 7);
    assert_int_equal(v->auth_size, 576);
    assert_int_equal(v->aux_size, 2240);
    assert_string_equal(v->release_string, "avbtool 1.3.0");
    static const uint64_t tags[] = {4, 0, 3, 2, 1};
    assert_int_equal(v->n_descs, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(v->descs[i].tag, tags[i]);
    assert_int_equal(v->descs[0].rollback_index_location, 1);
    assert_int_equal(v->descs[0].public_key.len, 520);
    assert_memory_equal(v->descs[1].value.p, "42", 2);
    assert_int_equal(v->descs[3].image_size, 300000);
    assert_int_equal(v->descs[4].tree_size, 12288);
    assert_int_equal(hs_avb_vbmeta_verify_signature(v, "vbmeta.img", &e), HS_OK);
    hs_avb_image_free(&img);
}

static void test_info_matches_avbtool(void **state)
{
    (void)state;
    hs_avb_image img;
    hs_error e = {0};
    char *text;
    uint8_t *expect;
    size_t expect_len;
    assert_int_equal(hs_avb_image_load(vector_path("vbmeta.img"), &img, &e), HS_OK);
    assert_int_equal(hs_avb_info_format(&img, &text, &e), HS_OK);
    read_vector("vbmeta.info.txt", &expect, &expect_len);
    assert_string_equal(text, (const char *)expect);
    free(text);
    free(expect);
    hs_avb_image_free(&img);
}

static void test_footer_images(void **state)
{
    (void)state;
    hs_avb_image img;
    hs_error e = {0};
    char *text;
    assert_int_equal(hs_avb_image_load(vector_path("boot.img"), &img, &e), HS_OK);
    assert_true(img.has_footer);
    assert_int_equal(img.footer.original_image_size, 300000);
    assert_int_equal(img.footer.vbmeta_offset, 303104);
    assert_int_equal(img.footer.vbmeta_size, 2112);
    assert_int_equal(hs_avb_vbmeta_verify_signature(&img.vbmeta, "boot.img", &e), HS_OK);
    assert_int_equal(hs_avb_info_format(&img, &text, &e), HS_OK);
    assert_non_null(
        strstr(text, "Footer version:           1.0\nImage size:               1048576 bytes\n"
                     "Original image size:      300000 bytes\nVBMeta offset:            303104\n"
                     "VBMeta size:              2112 bytes\n--\n"));
    free(text);
    hs_avb_image_free(&img);

    assert_int_equal(hs_avb_image_load(vector_path("system.img"), &img, &e), HS_OK);
    assert_string_equal(img.vbmeta.alg->name, "NONE");
    assert_int_equal(img.vbmeta.public_key.len, 0);
    assert_int_equal(hs_avb_vbmeta_verify_signature(&img.vbmeta, "system.img", &e), HS_OK);
    hs_avb_image_free(&img);
}

static void test_changed_signature_is_refused(void **state)
{
    (void)state;
    uint8_t *blob;
    size_t len;
    hs_avb_vbmeta v;
    hs_error e = {0};
    read_vector("vbmeta.img", &blob, &len);
    blob[256 + 32 + 100] ^= 1; /* inside the signature */
    assert_int_equal(hs_avb_vbmeta_parse(blob, len, "vbmeta.img", &v, &e), HS_OK);
    assert_int_equal(hs_avb_vbmeta_verify_signature(&v, "vbmeta.img", &e), HS_E_VERIFY);
    hs_avb_vbmeta_free(&v);
    blob[256 + 32 + 100] ^= 1;
    blob[256 + 576 + 40] ^= 1; /* inside the aux block */
    assert_int_equal(hs_avb_vbmeta_parse(blob, len, "vbmeta.img", &v, &e), HS_OK);
    assert_int_equal(hs_avb_vbmeta_verify_signature(&v, "vbmeta.img", &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "vbmeta hash does not match"));
    hs_avb_vbmeta_free(&v);
    free(blob);
}

static void expect_format_error(uint8_t *blob, size_t len, size_t off, uint64_t value, int width,
                                const char *needle)
{
    uint8_t saved[8];
    memcpy(saved, blob + off, 8);
    if (width == 8)
        hs_avb_put_be64(blob + off, value);
    else
        hs_avb_put_be32(blob + off, (uint32_t)value);
    hs_avb_vbmeta v;
    hs_error e = {0};
    assert_int_equal(hs_avb_vbmeta_parse(blob, len, "vbmeta.img", &v, &e), HS_E_FORMAT);
    if (strstr(e.msg, needle) == NULL)
        fail_msg("field at %zu: message \"%s\" lacks \"%s\"", off, e.msg, needle);
    memcpy(blob + off, saved, 8);
}

static void test_inconsistent_sizes(void **state)
{
    (void)state;
    uint8_t *blob;
    size_t len;
    read_vector("vbmeta.img", &blob, &len);
    expect_format_error(blob, len, 0, 0x41564231, 4, "no AVB0 magic");
    expect_format_error(blob, len, 8, 9, 4, "requires libavb 1.9");
    expect_format_error(blob, len, 12, UINT64_MAX - 63, 8, "run past");
    expect_format_error(blob, len, 20, UINT64_MAX - 63, 8, "run past");
    expect_format_error(blob, len, 12, 577, 8, "multiples of 64");
    expect_format_error(blob, len, 28, 7, 4, "unknown vbmeta algorithm");
    expect_format_error(blob, len, 32, 560, 8, "hash (offset 560");
    expect_format_error(blob, len, 48, UINT64_MAX, 8, "signature");
    expect_format_error(blob, len, 56, 511, 8, "does not fit SHA256_RSA4096");
    expect_format_error(blob, len, 64, 2000, 8, "public key (offset 2000");
    expect_format_error(blob, len, 88, UINT64_MAX - 5, 8, "public key metadata");
    expect_format_error(blob, len, 104, 2241, 8, "descriptors");
    expect_format_error(blob, len, 104, 1185, 8, "descriptor");
    /* first descriptor (chain, at aux offset 0): num_bytes_following */
    size_t d0 = 256 + 576;
    expect_format_error(blob, len, d0 + 8, 8 * 1000, 8, "claims");
    expect_format_error(blob, len, d0 + 8, 611, 8, "multiple of 8");
    expect_format_error(blob, len, d0 + 20, 0xffffffff, 4, "field lengths");
    /* second descriptor (property "com.example.build" -> "42"): key length */
    size_t d1 = d0 + 16 + hs_avb_get_be64(blob + d0 + 8);
    expect_format_error(blob, len, d1 + 16, 30, 8, "field lengths");
    expect_format_error(blob, len, d1 + 16, UINT64_MAX, 8, "exceed");
    expect_format_error(blob, len, d1 + 32 + 17, 0x61000000, 4, "NUL-terminated");
    /* the vbmeta struct cut short */
    hs_avb_vbmeta v;
    hs_error e = {0};
    assert_int_equal(hs_avb_vbmeta_parse(blob, 3071, "vbmeta.img", &v, &e), HS_E_FORMAT);
    assert_int_equal(hs_avb_vbmeta_parse(blob, 255, "vbmeta.img", &v, &e), HS_E_FORMAT);
    free(blob);
}

/* Every single-byte change to the vbmeta struct either still parses or is
 * a clean format error (run under ASan/valgrind for the memory claim). */
static void test_single_byte_corruption(void **state)
{
    (void)state;
    uint8_t *blob;
    size_t len;
    read_vector("vbmeta.img", &blob, &len);
    size_t errors = 0;
    for (size_t i = 0; i < 3072; i++) {
        for (int k = 0; k < 2; k++) {
            uint8_t saved = blob[i];
            blob[i] = k ? 0xff : (uint8_t)(saved ^ 0x80);
            hs_avb_vbmeta v;
            hs_error e = {0};
            hs_result r = hs_avb_vbmeta_parse(blob, len, "vbmeta.img", &v, &e);
            if (r == HS_OK)
                hs_avb_vbmeta_free(&v);
            else
                errors++;
            assert_true(r == HS_OK || r == HS_E_FORMAT);
            blob[i] = saved;
        }
    }
    assert_true(errors > 100); /* the header fields are checked */
    free(blob);
}

static void test_footer_parse(void **state)
{
    (void)state;
    uint8_t *img;
    size_t len;
    bool found;
    hs_avb_footer f;
    hs_error e = {0};
    read_vector("boot.img", &img, &len);
    uint8_t *tail = img + len - 64;
    assert_int_equal(hs_avb_footer_parse(tail, 64, len, "boot.img", &found, &f, &e), HS_OK);
    assert_true(found);
    uint8_t again[64];
    hs_avb_footer_encode(&f, again);
    assert_memory_equal(again, tail, 64);
    /* truncated by 10 bytes: the magic sits 10 bytes into the last 64 */
    assert_int_equal(hs_avb_footer_parse(tail - 10, 64, len - 10, "cut.img", &found, &f, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "truncated AVB footer"));
    tail[11] = 2; /* footer version 1.2: readable */
    assert_int_equal(hs_avb_footer_parse(tail, 64, len, "boot.img", &found, &f, &e), HS_OK);
    tail[11] = 0;
    tail[7] = 2; /* major version 2: not */
    assert_int_equal(hs_avb_footer_parse(tail, 64, len, "boot.img", &found, &f, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "version 2"));
    hs_avb_footer_encode(&(hs_avb_footer){1, 0, 500000, 303104, 2112}, tail);
    assert_int_equal(hs_avb_footer_parse(tail, 64, len, "boot.img", &found, &f, &e), HS_E_FORMAT);
    hs_avb_footer_encode(&(hs_avb_footer){1, 0, 300000, 303104, len}, tail);
    assert_int_equal(hs_avb_footer_parse(tail, 64, len, "boot.img", &found, &f, &e), HS_E_FORMAT);
    /* no magic: not a footer, not an error */
    assert_int_equal(hs_avb_footer_parse(img, 64, len, "boot.img", &found, &f, &e), HS_OK);
    assert_false(found);
    free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vbmeta_fields),
        cmocka_unit_test(test_info_matches_avbtool),
        cmocka_unit_test(test_footer_images),
        cmocka_unit_test(test_changed_signature_is_refused),
        cmocka_unit_test(test_inconsistent_sizes),
        cmocka_unit_test(test_single_byte_corruption),
        cmocka_unit_test(test_footer_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
