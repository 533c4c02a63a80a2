/* The verifier's pieces on apksigner-made vectors (tests/vectors/apk): the
 * JAR signature block (PKCS#7) against its .SF for a platform range, and
 * the platform range deciding which schemes Android requires. */
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

#include "apk/apk.h"
#include "apk/apk_verify_internal.h"
#include "zip/zip_inflate.h"

static char path_buf[512];

static const char *vector(const char *name)
{
    const char *dir = getenv("HSMSIGN_VECTORS");
    snprintf(path_buf, sizeof path_buf, "%s/apk/%s", dir ? dir : "tests/vectors", name);
    return path_buf;
}

static uint8_t *entry(const hs_zip *z, const char *name, size_t *len)
{
    long i = hs_zip_find(z, name);
    assert_true(i >= 0);
    uint8_t *data = NULL;
    hs_error e = {0};
    assert_int_equal(hs_zip_read_entry(z, &z->entries[i], 1 << 20, &data, len, &e), HS_OK);
    return data;
}

static void test_pkcs7_against_sf(void **state)
{
    (void)state;
    hs_zip z;
    hs_error e = {0};
    assert_int_equal(hs_zip_open(&z, vector("app21.v1v2v3.apksigner.apk"), &e), HS_OK);
    size_t block_len, sf_len;
    uint8_t *block = entry(&z, "META-INF/TESTKEY.RSA", &block_len);
    uint8_t *sf = entry(&z, "META-INF/TESTKEY.SF", &sf_len);
    hs_pkcs7_signer s;
    if (hs_apk_pkcs7_verify(block, block_len, sf, sf_len, 21, HS_SDK_LATEST, "t", &s, &e) != HS_OK)
        fail_msg("%s", e.msg);
    /* the certificate as stored: testkey.x509.pem's DER */
    FILE *f = fopen(vector("testkey.x509.pem"), "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    uint8_t *der = NULL;
    int der_len = i2d_X509(x, &der);
    assert_int_equal(s.cert_len, der_len);
    assert_memory_equal(s.cert, der, s.cert_len);
    OPENSSL_free(der);
    X509_free(x);
    /* SHA-256 with RSA does not work on API 9..17: refused for 1+ */
    assert_int_equal(hs_apk_pkcs7_verify(block, block_len, sf, sf_len, 1, HS_SDK_LATEST, "t", &s,
                                         &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "not supported"));
    /* a changed .SF no longer verifies */
    sf[sf_len / 2] ^= 1;
    assert_int_equal(hs_apk_pkcs7_verify(block, block_len, sf, sf_len, 21, HS_SDK_LATEST, "t", &s,
                                         &e), HS_E_VERIFY);
    /* truncated block */
    assert_int_equal(hs_apk_pkcs7_verify(block, block_len / 2, sf, sf_len, 21, HS_SDK_LATEST, "t",
                                         &s, &e), HS_E_VERIFY);
    free(block);
    free(sf);
    hs_zip_close(&z);
}

static hs_result verify_range(const char *name, int min, int max, hs_apk_verify_report *rep,
                              hs_error *e)
{
    const hs_apk_verify_options o = {.min_sdk = min, .max_sdk = max};
    return hs_apk_verify_file_range(vector(name), &o, rep, e);
}

/* app21.v2v3 (minSdk 21) has no JAR signature: Android 5-6 cannot install
 * it, 7+ can (v2), 9+ use v3 only. */
static void test_range_decides(void **state)
{
    (void)state;
    hs_apk_verify_report rep;
    hs_error e = {0};
    assert_int_equal(hs_apk_verify_file(vector("app21.v2v3.apksigner.apk"), &rep, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "no JAR signature"));
    assert_int_equal(rep.range_min, 21);
    hs_apk_verify_report_free(&rep);
    assert_int_equal(verify_range("app21.v2v3.apksigner.apk", 24, -1, &rep, &e), HS_OK);
    assert_true(rep.v2 && rep.v3 && !rep.v1);
    hs_apk_verify_report_free(&rep);
    assert_int_equal(verify_range("app21.v2v3.apksigner.apk", 28, -1, &rep, &e), HS_OK);
    assert_true(rep.v3 && !rep.v2); /* Android 9+ does not look at v2 when v3 is there */
    hs_apk_verify_report_free(&rep);
    assert_int_equal(verify_range("app21.v2v3.apksigner.apk", 24, 27, &rep, &e), HS_OK);
    assert_true(rep.v2 && !rep.v3);
    hs_apk_verify_report_free(&rep);
    /* v1v2v3 from 21: every scheme checked, one signer */
    assert_int_equal(verify_range("app21.v1v2v3.apksigner.apk", -1, -1, &rep, &e), HS_OK);
    assert_true(rep.v1 && rep.v2 && rep.v3);
    assert_int_equal(rep.signer_count, 1);
    assert_int_equal(rep.lineage_count, 0);
    hs_apk_verify_report_free(&rep);
    /* a range upside down is a usage error */
    assert_int_equal(verify_range("app21.v1v2v3.apksigner.apk", 30, 20, &rep, &e), HS_E_USAGE);
    hs_apk_verify_report_free(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkcs7_against_sf),
        cmocka_unit_test(test_range_decides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
