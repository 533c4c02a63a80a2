/* avbtool --signing_helper blocks: OpenSSL builds the PKCS#1 v1.5 type 1
 * blocks (independently of our code); valid ones must parse to the right
 * digest, and signing only that digest must give the same bytes as the raw
 * RSA operation avbtool expects. Every malformation must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "avb/avb_helper.h"

static const uint8_t sha256_di[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t sha512_di[19] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

static EVP_PKEY *load_key(unsigned bits)
{
    const char *dir = getenv("HSMSIGN_VECTORS");
    char path[512];
    snprintf(path, sizeof path, "%s/avb/testkey_rsa%u.pem", dir ? dir : "tests/vectors", bits);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(key);
    return key;
}

/* EM for digest d, made by OpenSSL: a PKCS#1 v1.5 signature opened with
 * the public key and no padding removal. */
static size_t make_block(size_t mod_len, size_t hash_len, const uint8_t *d, uint8_t *em)
{
    EVP_PKEY *key = load_key((unsigned)mod_len * 8);
    uint8_t sig[1024];
    size_t sig_len = sizeof sig, em_len = mod_len;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(key, NULL);
    assert_true(EVP_PKEY_sign_init(c) > 0 &&
                EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0 &&
                EVP_PKEY_CTX_set_signature_md(c, hash_len == 32 ? EVP_sha256() : EVP_sha512()) > 0);
    assert_int_equal(EVP_PKEY_sign(c, sig, &sig_len, d, hash_len), 1);
    EVP_PKEY_CTX_free(c);
    c = EVP_PKEY_CTX_new(key, NULL);
    assert_true(EVP_PKEY_verify_recover_init(c) > 0 &&
                EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING) > 0);
    assert_int_equal(EVP_PKEY_verify_recover(c, em, &em_len, sig, sig_len), 1);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(key);
    assert_int_equal(em_len, mod_len);
    return mod_len;
}

/* 00 01 FF*ps 00 payload, zero-filled after, by hand for malformed cases. */
static void hand_block(uint8_t *em, size_t len, size_t ps, const uint8_t *payload,
                       size_t payload_len)
{
    memset(em, 0, len);
    em[1] = 0x01;
    memset(em + 2, 0xff, ps);
    memcpy(em + 3 + ps, payload, payload_len);
}

static void digest_of(const char *msg, size_t hash_len, uint8_t *d)
{
    assert_int_equal(
        EVP_Digest(msg, strlen(msg), d, NULL, hash_len == 32 ? EVP_sha256() : EVP_sha512(), NULL),
        1);
}

static void expect_refused(const char *alg, const uint8_t *em, size_t len, const char *needle)
{
    hs_avb_helper_block hb;
    hs_error e = {0};
    assert_int_equal(hs_avb_helper_parse_block(alg, em, len, &hb, &e), HS_E_FORMAT);
    if (strstr(e.msg, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
}

static void test_valid_blocks_all_algorithms(void **state)
{
    (void)state;
    static const struct { const char *name; size_t mod, hash; hs_sig_alg sig;
    } algs[] = {
        {"SHA256_RSA2048", 256, 32, HS_SIG_RSA_PKCS1_SHA256},
        {"SHA256_RSA4096", 512, 32, HS_SIG_RSA_PKCS1_SHA256},
        {"SHA256_RSA8192", 1024, 32, HS_SIG_RSA_PKCS1_SHA256},
        {"SHA512_RSA2048", 256, 64, HS_SIG_RSA_PKCS1_SHA512},
        {"SHA512_RSA4096", 512, 64, HS_SIG_RSA_PKCS1_SHA512},
        {"SHA512_RSA8192", 1024, 64, HS_SIG_RSA_PKCS1_SHA512},
    };
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        uint8_t d[64], em[1024];
        hs_avb_helper_block hb;
        hs_error e = {0};
        digest_of(algs[i].name, algs[i].hash, d);
        size_t len = make_block(algs[i].mod, algs[i].hash, d, em);
        assert_int_equal(hs_avb_helper_parse_block(algs[i].name, em, len, &hb, &e), HS_OK);
        assert_int_equal(hb.digest_len, algs[i].hash);
        assert_memory_equal(hb.digest, d, algs[i].hash);
        assert_int_equal(hb.sig_alg, algs[i].sig);
        assert_int_equal(hb.digest_info_len, 19 + algs[i].hash);
        assert_memory_equal(hb.digest_info, algs[i].hash == 32 ? sha256_di : sha512_di, 19);
        assert_memory_equal(hb.digest_info + 19, d, algs[i].hash);
    }
}

/* Signing only the parsed digest (what goes to the HSM as CKM_RSA_PKCS)
 * must equal the raw RSA operation on avbtool's block. */
static void test_digest_signature_equals_raw_rsa(void **state)
{
    (void)state;
    EVP_PKEY *key = load_key(2048);
    for (int sha512 = 0; sha512 <= 1; sha512++) {
        size_t hash_len = sha512 ? 64 : 32;
        uint8_t d[64], em[256], raw[256], pkcs[256];
        size_t raw_len = sizeof raw, pkcs_len = sizeof pkcs;
        hs_avb_helper_block hb;
        hs_error e = {0};
        digest_of("vbmeta", hash_len, d);
        make_block(256, hash_len, d, em);
        assert_int_equal(hs_avb_helper_parse_block(sha512 ? "SHA512_RSA2048" : "SHA256_RSA2048", em,
                                                   256, &hb, &e),
                         HS_OK);
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(key, NULL);
        assert_true(EVP_PKEY_sign_init(c) > 0 &&
                    EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING) > 0);
        assert_int_equal(EVP_PKEY_sign(c, raw, &raw_len, em, sizeof em), 1);
        EVP_PKEY_CTX_free(c);
        c = EVP_PKEY_CTX_new(key, NULL);
        assert_true(EVP_PKEY_sign_init(c) > 0 &&
                    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0 &&
                    EVP_PKEY_CTX_set_signature_md(c, sha512 ? EVP_sha512() : EVP_sha256()) > 0);
        assert_int_equal(EVP_PKEY_sign(c, pkcs, &pkcs_len, hb.digest, hb.digest_len), 1);
        EVP_PKEY_CTX_free(c);
        assert_int_equal(raw_len, pkcs_len);
        assert_memory_equal(raw, pkcs, raw_len);
    }
    EVP_PKEY_free(key);
}

static void test_malformed_blocks(void **state)
{
    (void)state;
    uint8_t d[64], good[256], em[256];
    digest_of("x", 32, d);
    make_block(256, 32, d, good);

    memcpy(em, good, 256);
    expect_refused("SHA256_RSA2048", em, 255, "needs a 256-byte block");
    expect_refused("SHA256_RSA4096", em, 256, "needs a 512-byte block");
    em[0] = 0x01;
    expect_refused("SHA256_RSA2048", em, 256, "does not start with 00 01");
    memcpy(em, good, 256);
    em[1] = 0x02; /* type 2 (encryption) padding */
    expect_refused("SHA256_RSA2048", em, 256, "does not start with 00 01");
    memcpy(em, good, 256);
    em[50] = 0xfe;
    expect_refused("SHA256_RSA2048", em, 256, "padding byte 50 is fe");
    memcpy(em, good, 256);
    em[256 - 52] = 0xff; /* separator gone */
    expect_refused("SHA256_RSA2048", em, 256, "padding byte 205 is 30, not ff or the 00 separator");
    memcpy(em, good, 256);
    em[256 - 32 - 19 + 14] = 0x02; /* OID now says SHA-384 */
    expect_refused("SHA256_RSA2048", em, 256, "no SHA-256 or SHA-512 DigestInfo");

    /* A SHA-512 digest handed to a SHA-256 algorithm, and the reverse. */
    uint8_t d512[64];
    digest_of("x", 64, d512);
    make_block(256, 64, d512, em);
    expect_refused("SHA256_RSA2048", em, 256,
                   "carries a SHA-512 digest, SHA256_RSA2048 needs SHA-256");
    expect_refused("SHA512_RSA2048", good, 256,
                   "carries a SHA-256 digest, SHA512_RSA2048 needs SHA-512");

    /* A DigestInfo with a trailing byte (padding one byte shorter). */
    uint8_t t[19 + 33];
    memcpy(t, sha256_di, 19);
    memcpy(t + 19, d, 32);
    t[51] = 0xaa;
    hand_block(em, 256, 256 - 3 - sizeof t, t, sizeof t);
    expect_refused("SHA256_RSA2048", em, 256, "DigestInfo is 52 bytes");

    /* Fewer than 8 padding bytes. */
    hand_block(em, 256, 5, t, 51);
    expect_refused("SHA256_RSA2048", em, 256, "only 5 padding bytes");

    hs_avb_helper_block hb;
    hs_error e = {0};
    assert_int_equal(hs_avb_helper_parse_block("NONE", good, 256, &hb, &e), HS_E_USAGE);
    assert_int_equal(hs_avb_helper_parse_block("SHA1_RSA2048", good, 256, &hb, &e), HS_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_blocks_all_algorithms),
        cmocka_unit_test(test_digest_signature_equals_raw_rsa),
        cmocka_unit_test(test_malformed_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
