/* Signing certificate lineage (apk_lineage.c): apksig's own lineage files
 * parse with every link verified; a forged, reordered or duplicated link,
 * a bad magic or version is refused; merging follows apksig. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apk/apk_lineage.h"
#include "zip/zip.h"
#include "util/file.h"

static uint8_t *load(const char *name, size_t *len)
{
    char path[512];
    const char *dir = getenv("HSMSIGN_VECTORS");
    snprintf(path, sizeof path, "%s/apksig/lineage/%s", dir ? dir : "tests/vectors", name);
    uint8_t *data = NULL;
    hs_error e = {0};
    if (hs_read_file(path, 1 << 20, &data, len, &e) != HS_OK)
        fail_msg("%s", e.msg);
    return data;
}

static hs_result parse(const uint8_t *p, size_t len, hs_apk_lineage *l, hs_error *e)
{
    return hs_apk_lineage_parse(p, len, HS_APK_LINEAGE_FILE, "test", l, e);
}

static void test_three_signers(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = load("rsa-2048-lineage-3-signers", &len);
    hs_apk_lineage l;
    hs_error e = {0};
    if (parse(data, len, &l, &e) != HS_OK)
        fail_msg("%s", e.msg);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.nodes[0].parent_sig_alg, 0);
    assert_int_equal(l.nodes[0].sig_len, 0);
    assert_int_equal(l.nodes[1].parent_sig_alg, l.nodes[0].sig_alg);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(hs_apk_lineage_find(&l, l.nodes[i].cert, l.nodes[i].cert_len), (long)i);
    /* the v3 attribute form is what follows magic, version and length */
    hs_apk_lineage attr;
    assert_int_equal(hs_apk_lineage_parse(data + 12, len - 12, HS_APK_LINEAGE_V3_ATTR, "attr",
                                          &attr, &e), HS_OK);
    assert_int_equal(attr.count, 3);
    hs_apk_lineage_free(&attr);
    hs_apk_lineage_free(&l);
    free(data);
}

/* Offset of node i (0-based) in a lineage file. */
static size_t node_offset(const uint8_t *p, size_t i)
{
    size_t off = 16; /* magic, version, length, version */
    while (i-- > 0)
        off += 4 + hs_le32(p + off);
    return off;
}

static void test_forged_link(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = load("rsa-2048-lineage-3-signers", &len);
    hs_apk_lineage l;
    hs_error e = {0};
    /* last byte of node #2 is in the old key's signature over it */
    size_t end2 = node_offset(data, 2);
    data[end2 - 1] ^= 1;
    assert_int_equal(parse(data, len, &l, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "#2 is not signed by certificate #1"));
    free(data);
}

static void test_reordered_links(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = load("rsa-2048-lineage-3-signers", &len);
    uint8_t *swapped = malloc(len);
    assert_non_null(swapped);
    size_t a = node_offset(data, 1), b = node_offset(data, 2), end = node_offset(data, 3);
    assert_int_equal(end, len);
    /* nodes #2 and #3 swapped: #3 is not signed by #1 */
    memcpy(swapped, data, a);
    memcpy(swapped + a, data + b, end - b);
    memcpy(swapped + a + (end - b), data + a, b - a);
    hs_apk_lineage l;
    hs_error e = {0};
    assert_int_equal(parse(swapped, len, &l, &e), HS_E_VERIFY);
    /* node #1 twice: a duplicate certificate */
    size_t dup_len = a + (a - 16);
    memcpy(swapped, data, a);
    memcpy(swapped + a, data + 16, a - 16);
    hs_put_le32(swapped + 8, (uint32_t)(dup_len - 12));
    assert_int_not_equal(parse(swapped, dup_len, &l, &e), HS_OK);
    free(swapped);
    free(data);
}

static void test_bad_headers(void **state)
{
    (void)state;
    const char *files[] = {"rsa-2048-lineage-invalid-magic", "rsa-2048-lineage-invalid-version"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        uint8_t *data = load(files[i], &len);
        hs_apk_lineage l;
        hs_error e = {0};
        assert_int_equal(parse(data, len, &l, &e), HS_E_FORMAT);
        free(data);
    }
    hs_apk_lineage l;
    hs_error e = {0};
    static const uint8_t truncated[] = {0xd1, 0x39, 0xff, 0x3e, 1, 0, 0, 0, 9, 0, 0};
    assert_int_equal(parse(truncated, sizeof truncated, &l, &e), HS_E_FORMAT);
    static const uint8_t empty[] = {0xd1, 0x39, 0xff, 0x3e, 1, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0};
    assert_int_equal(parse(empty, sizeof empty, &l, &e), HS_E_FORMAT); /* no certificate */
}

static void test_merge(void **state)
{
    (void)state;
    size_t len3, len2;
    uint8_t *d3 = load("rsa-2048-lineage-3-signers", &len3);
    uint8_t *d2 = load("rsa-2048-lineage-2-signers", &len2);
    hs_apk_lineage l3, l2, m;
    hs_error e = {0};
    assert_int_equal(parse(d3, len3, &l3, &e), HS_OK);
    assert_int_equal(parse(d2, len2, &l2, &e), HS_OK);
    /* the 2-signer lineage is the start of the 3-signer one */
    assert_int_equal(hs_apk_lineage_merge(&l2, &l3, &m, &e), HS_OK);
    assert_int_equal(m.count, 3);
    hs_apk_lineage_free(&m);
    /* a lineage starting at the 3-signer's second certificate continues it */
    hs_apk_lineage tail = {l3.nodes + 1, 2};
    assert_int_equal(hs_apk_lineage_merge(&tail, &l3, &m, &e), HS_OK);
    assert_int_equal(m.count, 3);
    hs_apk_lineage_free(&m);
    /* diverging: same root, a different second certificate */
    hs_apk_lineage fork = {NULL, 0};
    assert_int_equal(hs_apk_lineage_copy(&l2, &fork, &e), HS_OK);
    fork.nodes[1] = l3.nodes[2];
    assert_int_equal(hs_apk_lineage_merge(&fork, &l3, &m, &e), HS_E_VERIFY);
    hs_apk_lineage_free(&fork);
    hs_apk_lineage_free(&l2);
    hs_apk_lineage_free(&l3);
    free(d2);
    free(d3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_signers), cmocka_unit_test(test_forged_link),
        cmocka_unit_test(test_reordered_links), cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
