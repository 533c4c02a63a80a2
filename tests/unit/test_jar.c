/* v1 (JAR) signing: MANIFEST.MF, .SF and the PKCS#7 .RSA block equal
 * apksigner 31's byte for byte (tests/vectors/apk), and the manifest
 * writer/parser follow java.util.jar's line rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "apk/apk.h"
#include "jar/jar_manifest.h"
#include "zip/zip.h"
#include "zip/zip_inflate.h"
#include "soft_signer.h"

static const char *vector(const char *name)
{
    static char path[512];
    const char *d = getenv("HSMSIGN_VECTORS");
    snprintf(path, sizeof path, "%s/apk/%s", d ? d : "tests/vectors", name);
    return path;
}

static uint8_t *entry_of(const char *apk, const char *name, size_t *len)
{
    hs_zip z;
    hs_error e = {0};
    if (hs_zip_open(&z, apk, &e) != HS_OK)
        fail_msg("%s", e.msg);
    long i = hs_zip_find(&z, name);
    if (i < 0)
        fail_msg("%s: no entry %s", apk, name);
    uint8_t *data = NULL;
    if (hs_zip_read_entry(&z, &z.entries[i], 1 << 20, &data, len, &e) != HS_OK)
        fail_msg("%s", e.msg);
    hs_zip_close(&z);
    return data;
}

static void sign_v1(const char *out, const char *v1_name)
{
    soft_signer s;
    hs_error e = {0};
    assert_int_equal(soft_signer_load(&s, vector("testkey.pk8"), &e), HS_OK);
    FILE *f = fopen(vector("testkey.x509.pem"), "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    uint8_t *der = NULL;
    int der_len = i2d_X509(cert, &der);
    hs_apk_key key = {.key_name = "testkey", .cert_der = der, .cert_der_len = (size_t)der_len,
                      .public_key = X509_get0_pubkey(cert), .v1_name = v1_name};
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    opt.v1 = 1;
    hs_apk_report rep;
    char in[512];
    snprintf(in, sizeof in, "%s", vector("app21.apk"));
    if (hs_apk_sign_file(in, out, &key, &opt, soft_signer_fn(&s), &rep, &e) != HS_OK)
        fail_msg("%s", e.msg);
    assert_true(rep.v1);
    OPENSSL_free(der);
    X509_free(cert);
    soft_signer_free(&s);
}

static void test_v1_files_identical_to_apksigner(void **state)
{
    (void)state;
    char out[] = "/tmp/hsmsign-test-jar-XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    unlink(out);
    sign_v1(out, "testkey");
    static const char *const files[] = {"META-INF/MANIFEST.MF", "META-INF/TESTKEY.SF",
                                        "META-INF/TESTKEY.RSA"};
    char ref[512];
    snprintf(ref, sizeof ref, "%s", vector("app21.v1v2v3.apksigner.apk"));
    for (size_t i = 0; i < 3; i++) {
        size_t got_len, want_len;
        uint8_t *got = entry_of(out, files[i], &got_len);
        uint8_t *want = entry_of(ref, files[i], &want_len);
        if (got_len != want_len || memcmp(got, want, want_len) != 0)
            fail_msg("%s differs from apksigner's", files[i]);
        free(got);
        free(want);
    }
    unlink(out);
}

static void test_signer_name_sanitized(void **state)
{
    (void)state;
    char out[] = "/tmp/hsmsign-test-jar-XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    unlink(out);
    sign_v1(out, "release.key+x");
    size_t len;
    free(entry_of(out, "META-INF/RELEASE_.SF", &len)); /* upper case, 8 chars, '.' -> '_' */
    free(entry_of(out, "META-INF/RELEASE_.RSA", &len));
    unlink(out);
}

static void test_line_wrapping(void **state)
{
    (void)state;
    char value[200];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = 0;
    hs_apk_buf b = {0};
    hs_jar_write_attr(&b, "Name", value);
    /* "Name: " + 199 = 205 bytes: 70, then 69 and 66 on continuation lines. */
    const char *s = (const char *)b.data;
    assert_int_equal(b.len, 205 + 2 * 3 + 2);
    assert_memory_equal(s + 70, "\r\n ", 3);
    assert_memory_equal(s + 70 + 3 + 69, "\r\n ", 3);
    assert_memory_equal(s + b.len - 2, "\r\n", 2);
    /* and the parser joins it back */
    hs_jar_attrs attrs = {0};
    hs_error e = {0};
    assert_int_equal(hs_jar_manifest_parse_main(s, b.len, "t", &attrs, &e), HS_OK);
    assert_string_equal(hs_jar_attrs_get(&attrs, "name"), value);
    hs_jar_attrs_free(&attrs);
    hs_apk_buf_free(&b);
}

static void test_main_section_order_and_errors(void **state)
{
    (void)state;
    hs_jar_attrs attrs = {0};
    hs_error e = {0};
    const char *text = "Zeta: 1\r\nManifest-Version: 1.0\nAlpha: a\r\n b\r\n\r\nName: x\r\n";
    assert_int_equal(hs_jar_manifest_parse_main(text, strlen(text), "t", &attrs, &e), HS_OK);
    assert_int_equal(attrs.count, 3);
    assert_string_equal(hs_jar_attrs_get(&attrs, "ALPHA"), "ab");
    hs_apk_buf b = {0};
    hs_jar_write_main(&b, &attrs, "Manifest-Version");
    const char *want = "Manifest-Version: 1.0\r\nAlpha: ab\r\nZeta: 1\r\n\r\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    hs_apk_buf_free(&b);
    hs_jar_attrs_free(&attrs);
    const char *bad = "Manifest-Version 1.0\r\n";
    assert_int_equal(hs_jar_manifest_parse_main(bad, strlen(bad), "bad.mf", &attrs, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "bad.mf"));
    hs_jar_attrs_free(&attrs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_files_identical_to_apksigner),
        cmocka_unit_test(test_signer_name_sanitized),
        cmocka_unit_test(test_line_wrapping),
        cmocka_unit_test(test_main_section_order_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
