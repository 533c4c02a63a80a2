/* AVB public key blobs: our encoder must reproduce avbtool's
 * extract_public_key outputs for the AOSP test keys; the parser must give
 * back the same RSA key and refuse anything that is not an AVB key. */
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

#include "avb/avb_pubkey.h"
#include "util/file.h"

static char *vector_path(const char *name)
{
    static char path[512];
    const char *dir = getenv("HSMSIGN_VECTORS");
    snprintf(path, sizeof path, "%s/avb/%s", dir ? dir : "tests/vectors", name);
    return path;
}

static EVP_PKEY *load_pem(const char *name)
{
    FILE *f = fopen(vector_path(name), "r");
    assert_non_null(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(key);
    return key;
}

static void read_vector(const char *name, uint8_t **data, size_t *len)
{
    hs_error e = {0};
    assert_int_equal(hs_read_file(vector_path(name), 1 << 20, data, len, &e), HS_OK);
}

static void test_encode_matches_avbtool(void **state)
{
    (void)state;
    const char *pems[] = {"testkey_rsa2048.pem", "testkey_rsa4096.pem"};
    const char *blobs[] = {"testkey_rsa2048.avbpubkey", "testkey_rsa4096.avbpubkey"};
    for (int i = 0; i < 2; i++) {
        EVP_PKEY *key = load_pem(pems[i]);
        uint8_t *mine, *theirs;
        size_t mine_len, theirs_len;
        hs_error e = {0};
        assert_int_equal(hs_avb_pubkey_encode(key, &mine, &mine_len, &e), HS_OK);
        read_vector(blobs[i], &theirs, &theirs_len);
        assert_int_equal(mine_len, theirs_len);
        assert_memory_equal(mine, theirs, theirs_len);
        free(mine);
        free(theirs);
        EVP_PKEY_free(key);
    }
}

static void test_decode_gives_the_same_key(void **state)
{
    (void)state;
    const char *pems[] = {"testkey_rsa2048.pem", "testkey_rsa4096.pem", "testkey_rsa8192.pem"};
    const uint32_t bits[] = {2048, 4096, 8192};
    for (int i = 0; i < 3; i++) {
        EVP_PKEY *key = load_pem(pems[i]), *back = NULL;
        uint8_t *blob;
        size_t len;
        uint32_t nbits = 0;
        hs_error e = {0};
        assert_int_equal(hs_avb_pubkey_encode(key, &blob, &len, &e), HS_OK);
        assert_int_equal(len, 8 + 2 * bits[i] / 8);
        assert_int_equal(hs_avb_pubkey_decode(blob, len, "blob", &back, &nbits, &e), HS_OK);
        assert_int_equal(nbits, bits[i]);
        assert_int_equal(EVP_PKEY_eq(key, back), 1);
        EVP_PKEY_free(back);
        free(blob);
        EVP_PKEY_free(key);
    }
}

static void expect_not_avb(const uint8_t *blob, size_t len, const char *needle)
{
    EVP_PKEY *key = NULL;
    hs_error e = {0};
    assert_int_equal(hs_avb_pubkey_decode(blob, len, "x.avbpubkey", &key, NULL, &e), HS_E_FORMAT);
    assert_null(key);
    if (strstr(e.msg, "not an AVB public key") == NULL || strstr(e.msg, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
}

static void test_decode_is_strict(void **state)
{
    (void)state;
    uint8_t *good, *b;
    size_t len;
    read_vector("testkey_rsa2048.avbpubkey", &good, &len);
    b = malloc(len + 1);
    memcpy(b, good, len);
    expect_not_avb(b, len - 1, "519 bytes");
    b[len] = 0;
    expect_not_avb(b, len + 1, "521 bytes");
    expect_not_avb(b, 4, "too short");
    b[2] = 0x09; /* 2304 bits */
    expect_not_avb(b, len, "key_num_bits 2304");
    memcpy(b, good, len);
    b[5] ^= 1; /* n0inv */
    expect_not_avb(b, len, "n0inv or R^2");
    memcpy(b, good, len);
    b[len - 1] ^= 1; /* rr */
    expect_not_avb(b, len, "n0inv or R^2");
    memcpy(b, good, len);
    b[8 + 255] ^= 1; /* even modulus */
    expect_not_avb(b, len, "modulus");
    memcpy(b, good, len);
    b[8] = 0x00; /* 2040-bit modulus in a 2048-bit blob is still fine by avbtool's rounding */
    b[9] = 0x01;
    expect_not_avb(b, len, "n0inv or R^2"); /* but then n0inv/rr no longer fit */
    free(b);
    free(good);

    /* A PEM file is not an AVB key. */
    uint8_t *pem;
    size_t pem_len;
    read_vector("testkey_rsa2048.pem", &pem, &pem_len);
    expect_not_avb(pem, pem_len, "key_num_bits");
    free(pem);
}

static void test_encode_refuses_non_avb_keys(void **state)
{
    (void)state;
    hs_error e = {0};
    uint8_t *blob;
    size_t len;
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ec);
    assert_int_equal(hs_avb_pubkey_encode(ec, &blob, &len, &e), HS_E_USAGE);
    EVP_PKEY_free(ec);

    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *e3 = NULL;
    BIGNUM *three = BN_new();
    assert_true(BN_set_word(three, 3));
    assert_true(EVP_PKEY_keygen_init(c) > 0 && EVP_PKEY_CTX_set_rsa_keygen_bits(c, 1024) > 0 &&
                EVP_PKEY_CTX_set1_rsa_keygen_pubexp(c, three) > 0 && EVP_PKEY_keygen(c, &e3) > 0);
    assert_int_equal(hs_avb_pubkey_encode(e3, &blob, &len, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "65537"));
    BN_free(three);
    EVP_PKEY_free(e3);
    EVP_PKEY_CTX_free(c);
}

static void test_read_file(void **state)
{
    (void)state;
    uint8_t *blob;
    size_t len;
    hs_error e = {0};
    assert_int_equal(hs_avb_pubkey_read(vector_path("testkey_rsa4096.avbpubkey"), &blob, &len, &e),
                     HS_OK);
    assert_int_equal(len, 1032);
    free(blob);
    assert_int_equal(hs_avb_pubkey_read(vector_path("vbmeta.img"), &blob, &len, &e), HS_E_FORMAT);
    assert_int_equal(hs_avb_pubkey_read(vector_path("no-such.avbpubkey"), &blob, &len, &e),
                     HS_E_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_matches_avbtool),
        cmocka_unit_test(test_decode_gives_the_same_key),
        cmocka_unit_test(test_decode_is_strict),
        cmocka_unit_test(test_encode_refuses_non_avb_keys),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
