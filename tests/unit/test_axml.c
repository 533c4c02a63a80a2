/* Binary AndroidManifest.xml: minSdkVersion from manifests compiled by aapt
 * (integer and codename), and strict refusal of damaged documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "apk/axml.h"
#include "util/file.h"

static uint8_t *load(const char *name, size_t *len)
{
    char path[512];
    const char *dir = getenv("HSMSIGN_VECTORS");
    snprintf(path, sizeof path, "%s/apk/%s", dir ? dir : "tests/vectors", name);
    uint8_t *data = NULL;
    hs_error e = {0};
    if (hs_read_file(path, 1 << 20, &data, len, &e) != HS_OK)
        fail_msg("%s", e.msg);
    return data;
}

static int min_sdk_of(const char *vector)
{
    size_t len = 0;
    uint8_t *xml = load(vector, &len);
    int sdk = -1;
    hs_error e = {0};
    if (hs_axml_min_sdk(xml, len, vector, &sdk, &e) != HS_OK)
        fail_msg("%s", e.msg);
    free(xml);
    return sdk;
}

static void test_integer_min_sdk(void **state)
{
    (void)state;
    assert_int_equal(min_sdk_of("manifest-21.axml"), 21);
    assert_int_equal(min_sdk_of("manifest-33.axml"), 33);
}

/* apksig: a codename maps through its first letter, O = 25, +1 per letter. */
static void test_codename_min_sdk(void **state)
{
    (void)state;
    assert_int_equal(min_sdk_of("manifest-Tiramisu.axml"), 30);
}

static void test_min_sdk_from_apk(void **state)
{
    (void)state;
    char path[512];
    const char *dir = getenv("HSMSIGN_VECTORS");
    snprintf(path, sizeof path, "%s/apk/app21.apk", dir ? dir : "tests/vectors");
    hs_zip z;
    hs_error e = {0};
    int sdk = 0;
    assert_int_equal(hs_zip_open(&z, path, &e), HS_OK);
    assert_int_equal(hs_axml_apk_min_sdk(&z, &sdk, &e), HS_OK);
    assert_int_equal(sdk, 21);
    hs_zip_close(&z);
}

/* Every truncation and many single-byte corruptions: an error or a value,
 * never a read outside the buffer (the test runs under the sanitizers and
 * valgrind in CI builds). */
/* targetSdkVersion and targetSandboxVersion, as APK verification reads
 * them: the manifests say targetSdkVersion="33" and no sandbox version (1). */
static void test_sdk_info(void **state)
{
    (void)state;
    static const char *const names[] = {"manifest-21.axml", "manifest-33.axml"};
    static const int mins[] = {21, 33};
    for (size_t i = 0; i < 2; i++) {
        size_t len = 0;
        uint8_t *xml = load(names[i], &len);
        hs_axml_sdk info = {0};
        hs_error e = {0};
        if (hs_axml_sdk_info(xml, len, names[i], &info, &e) != HS_OK)
            fail_msg("%s", e.msg);
        assert_int_equal(info.min_sdk, mins[i]);
        assert_int_equal(info.target_sdk, 33);
        assert_int_equal(info.target_sandbox, 1);
        free(xml);
    }
}

static void test_damaged_documents(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *xml = load("manifest-33.axml", &len);
    hs_error e = {0};
    int sdk = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, xml, cut);
        hs_result r = hs_axml_min_sdk(copy, cut, "cut", &sdk, &e);
        if (cut < 8)
            assert_int_equal(r, HS_E_FORMAT);
        free(copy);
    }
    for (size_t i = 0; i < len; i++) {
        for (unsigned v = 0; v < 256; v += 85) {
            uint8_t saved = xml[i];
            xml[i] = (uint8_t)v;
            hs_result r = hs_axml_min_sdk(xml, len, "flip", &sdk, &e);
            assert_true(r == HS_OK || r == HS_E_FORMAT);
            xml[i] = saved;
        }
    }
    /* The document's declared size larger than the buffer is refused. */
    assert_int_equal(hs_axml_min_sdk(xml, len - 1, "short", &sdk, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "short"));
    xml[0] = 0x01; /* not an XML chunk */
    assert_int_equal(hs_axml_min_sdk(xml, len, "notxml", &sdk, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "not an Android binary XML document"));
    free(xml);
}

static void test_apk_without_manifest(void **state)
{
    (void)state;
    /* An empty archive: EOCD only. */
    uint8_t eocd[22] = {0x50, 0x4b, 0x05, 0x06};
    char path[] = "/tmp/hsmsign-test-axml-XXXXXX";
    hs_error e = {0};
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(hs_write_fd_all(fd, eocd, sizeof eocd, path, &e), HS_OK);
    hs_zip z;
    int sdk = 0;
    assert_int_equal(hs_zip_open(&z, path, &e), HS_OK);
    assert_int_equal(hs_axml_apk_min_sdk(&z, &sdk, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "no AndroidManifest.xml"));
    hs_zip_close(&z);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer_min_sdk),  cmocka_unit_test(test_codename_min_sdk),
        cmocka_unit_test(test_min_sdk_from_apk), cmocka_unit_test(test_damaged_documents),
        cmocka_unit_test(test_sdk_info),
        cmocka_unit_test(test_apk_without_manifest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
