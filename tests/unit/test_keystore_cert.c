/* Distinguished names and HSM-style self-signed certificates (the
 * signature comes through hs_sign_fn; here the soft signer fixture). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/x509v3.h>

#include "keystore/cert.h"
#include "soft_signer.h"

static char *name_text(X509_NAME *n)
{
    return X509_NAME_oneline(n, NULL, 0);
}

static void parses_both_dn_forms(void **state)
{
    (void)state;
    hs_error e;
    X509_NAME *n;
    assert_int_equal(hs_dn_parse("CN=platform, O=Example OS, C=US", &n, &e), HS_OK);
    char *t = name_text(n);
    assert_string_equal(t, "/CN=platform/O=Example OS/C=US");
    OPENSSL_free(t);
    X509_NAME_free(n);
    assert_int_equal(hs_dn_parse("/C=US/ST=California/L=Mountain View/O=Android/CN=Android", &n, &e), HS_OK);
    t = name_text(n);
    assert_string_equal(t, "/C=US/ST=California/L=Mountain View/O=Android/CN=Android");
    OPENSSL_free(t);
    X509_NAME_free(n);
    assert_int_equal(hs_dn_parse("CN=a\\, b, O=x", &n, &e), HS_OK);
    t = name_text(n);
    assert_string_equal(t, "/CN=a, b/O=x");
    OPENSSL_free(t);
    X509_NAME_free(n);
}

static void rejects_bad_dns(void **state)
{
    (void)state;
    hs_error e;
    X509_NAME *n;
    const char *bad[] = {"", "platform", "CN=", "=x", "XX=1", "CN=a,,O=b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(hs_dn_parse(bad[i], &n, &e), HS_E_USAGE);
        assert_null(n);
        assert_non_null(strstr(e.msg, "subject"));
    }
}

static void self_signed_certificate_verifies(void **state)
{
    (void)state;
    const char *algs[] = {"RSA", "EC"};
    for (int i = 0; i < 2; i++) {
        EVP_PKEY *key = i == 0 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
        assert_non_null(key);
        soft_signer ss;
        hs_error e;
        soft_signer_adopt(&ss, key);
        X509 *cert;
        hs_keyalg alg = i == 0 ? HS_KEY_RSA2048 : HS_KEY_EC_P256;
        assert_int_equal(hs_cert_self_signed(key, alg, "CN=test, O=hsmsign", 365, algs[i],
                                             soft_signer_fn(&ss), &cert, &e),
                         HS_OK);
        assert_int_equal(ss.calls, 1); /* exactly one signature per certificate */
        /* OpenSSL's own verification of the assembled certificate. */
        assert_int_equal(X509_verify(cert, key), 1);
        assert_int_equal(X509_check_issued(cert, cert), X509_V_OK);
        assert_int_equal(X509_get_version(cert), 2);
        assert_int_equal(X509_get_signature_nid(cert),
                         i == 0 ? NID_sha256WithRSAEncryption : NID_ecdsa_with_SHA256);
        ASN1_OCTET_STRING *skid = X509_get_ext_d2i(cert, NID_subject_key_identifier, NULL, NULL);
        assert_non_null(skid);
        ASN1_OCTET_STRING_free(skid);
        /* Another key must not verify it: the check above can fail. */
        EVP_PKEY *other = EVP_RSA_gen(2048);
        assert_int_not_equal(X509_verify(cert, other), 1);
        EVP_PKEY_free(other);
        X509_free(cert);
        soft_signer_free(&ss);
        EVP_PKEY_free(key);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_both_dn_forms),
        cmocka_unit_test(rejects_bad_dns),
        cmocka_unit_test(self_signed_certificate_verifies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
