/* Private key files for import (keystore/pk8.c): every encoding OpenSSL
 * writes of keys made at test time parses to the same components, and
 * damaged or unsupported input is refused with the file named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "keystore/pk8.h"
#include "keystore/placeholder.h"

/* Keys made once for the whole run (RSA generation is the slow part). */
static EVP_PKEY *rsa_key, *ec_key;

static int make_keys(void **state)
{
    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return rsa_key != NULL && ec_key != NULL ? 0 : -1;
}

static int free_keys(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    return 0;
}

typedef struct blob {
    uint8_t *p;
    size_t len;
} blob;

/* The key in one of OpenSSL's encodings: output "DER" or "PEM", structure
 * "PrivateKeyInfo" (PKCS#8) or "type-specific" (PKCS#1 / SEC1). */
static blob encode(EVP_PKEY *k, const char *output, const char *structure)
{
    blob b = {NULL, 0};
    OSSL_ENCODER_CTX *ctx =
        OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_KEYPAIR, output, structure, NULL);
    assert_non_null(ctx);
    assert_int_equal(OSSL_ENCODER_to_data(ctx, &b.p, &b.len), 1);
    OSSL_ENCODER_CTX_free(ctx);
    return b;
}

static void free_blob(blob *b)
{
    OPENSSL_free(b->p);
    b->p = NULL;
}

static void assert_span_is_bn(hs_pk8_span s, EVP_PKEY *k, const char *param)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    uint8_t buf[1024];
    int n = BN_bn2bin(bn, buf);
    BN_clear_free(bn);
    assert_int_equal(s.len, (size_t)n);
    assert_memory_equal(s.p, buf, s.len);
}

static void assert_rsa_parts(const hs_pk8_key *k)
{
    static const char *const params[HS_PK8_RSA_PARTS] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    assert_true(k->rsa);
    for (size_t i = 0; i < HS_PK8_RSA_PARTS; i++)
        assert_span_is_bn(k->rsa_parts[i], rsa_key, params[i]);
}

static void assert_ec_parts(const hs_pk8_key *k)
{
    assert_false(k->rsa);
    BIGNUM *d = NULL;
    uint8_t scalar[32], point[65];
    size_t point_len = 0;
    assert_int_equal(EVP_PKEY_get_bn_param(ec_key, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
    assert_int_equal(BN_bn2binpad(d, scalar, 32), 32);
    BN_clear_free(d);
    assert_int_equal(EVP_PKEY_get_octet_string_param(ec_key, OSSL_PKEY_PARAM_PUB_KEY, point,
                                                     sizeof point, &point_len), 1);
    assert_int_equal(k->ec_scalar.len, 32);
    assert_memory_equal(k->ec_scalar.p, scalar, 32);
    assert_int_equal(k->ec_point.len, point_len);
    assert_memory_equal(k->ec_point.p, point, point_len);
}

/* Parses b and checks the public half matches the key it came from. */
static void parse_ok(blob b, EVP_PKEY *want, hs_pk8_key *k)
{
    hs_error e;
    hs_result r = hs_pk8_parse(b.p, b.len, "k.pk8", k, &e);
    if (r != HS_OK)
        fail_msg("%s", e.msg);
    EVP_PKEY *pub = NULL;
    assert_int_equal(hs_pk8_public(k, "k.pk8", &pub, &e), HS_OK);
    assert_int_equal(EVP_PKEY_eq(pub, want), 1);
    EVP_PKEY_free(pub);
}

static void reads_every_encoding_of_rsa(void **state)
{
    (void)state;
    static const char *const forms[][2] = {
        {"DER", "PrivateKeyInfo"}, {"PEM", "PrivateKeyInfo"},
        {"DER", "type-specific"},  {"PEM", "type-specific"},
    };
    for (size_t i = 0; i < 4; i++) {
        blob b = encode(rsa_key, forms[i][0], forms[i][1]);
        hs_pk8_key k;
        parse_ok(b, rsa_key, &k);
        assert_rsa_parts(&k);
        /* DER is read in place; PEM is decoded into locked memory. */
        if (strcmp(forms[i][0], "DER") == 0)
            assert_true(k.rsa_parts[HS_PK8_D].p > b.p && k.rsa_parts[HS_PK8_D].p < b.p + b.len);
        else
            assert_true(k.rsa_parts[HS_PK8_D].p > k.der && k.rsa_parts[HS_PK8_D].p < k.der + k.der_cap);
        hs_pk8_free(&k);
        assert_null(k.der);
        free_blob(&b);
    }
}

static void reads_every_encoding_of_ec(void **state)
{
    (void)state;
    static const char *const forms[][2] = {
        {"DER", "PrivateKeyInfo"}, {"PEM", "PrivateKeyInfo"},
        {"DER", "type-specific"},  {"PEM", "type-specific"},
    };
    for (size_t i = 0; i < 4; i++) {
        blob b = encode(ec_key, forms[i][0], forms[i][1]);
        hs_pk8_key k;
        parse_ok(b, ec_key, &k);
        assert_ec_parts(&k);
        hs_pk8_free(&k);
        free_blob(&b);
    }
}

/* `openssl ecparam -genkey` writes an EC PARAMETERS block first; a file
 * may also carry the certificate after the key. */
static void skips_other_pem_blocks(void **state)
{
    (void)state;
    blob key = encode(ec_key, "PEM", "type-specific");
    const char params[] = "-----BEGIN EC PARAMETERS-----\r\nBggqhkjOPQMBBw==\r\n"
                          "-----END EC PARAMETERS-----\r\n";
    size_t len = strlen(params) + key.len + 10;
    uint8_t *all = malloc(len);
    assert_non_null(all);
    memcpy(all, params, strlen(params));
    memcpy(all + strlen(params), key.p, key.len);
    memcpy(all + strlen(params) + key.len, "trailer\n\n\n", 10);
    hs_pk8_key k;
    parse_ok((blob){all, len}, ec_key, &k);
    assert_ec_parts(&k);
    hs_pk8_free(&k);
    free(all);
    free_blob(&key);
}

/* Expects refusal with the file named and, for HS_E_FORMAT, the reason. */
static void refused(const uint8_t *p, size_t len, hs_result want, const char *reason)
{
    hs_pk8_key k;
    hs_error e;
    hs_result r = hs_pk8_parse(p, len, "bad.pk8", &k, &e);
    hs_pk8_free(&k);
    if (r != want)
        fail_msg("expected %d, got %d (%s)", want, r, r == HS_OK ? "parsed" : e.msg);
    assert_non_null(strstr(e.msg, "bad.pk8: "));
    if (want == HS_E_FORMAT)
        assert_non_null(strstr(e.msg, "not an unencrypted PKCS#8 (.pk8) or PEM private key"));
    if (reason != NULL && strstr(e.msg, reason) == NULL)
        fail_msg("message '%s' does not say '%s'", e.msg, reason);
}

static void refuses_every_truncation(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {rsa_key, ec_key};
    for (size_t i = 0; i < 2; i++) {
        blob b = encode(keys[i], "DER", "PrivateKeyInfo");
        for (size_t n = 0; n < b.len; n++)
            refused(b.p, n, HS_E_FORMAT, NULL);
        free_blob(&b);
        b = encode(keys[i], "PEM", "PrivateKeyInfo");
        /* Cut inside the END line, or before it. */
        for (size_t n = 0; n + 3 < b.len; n += 7)
            refused(b.p, n, HS_E_FORMAT, NULL);
        free_blob(&b);
    }
}

static void refuses_damaged_der(void **state)
{
    (void)state;
    blob b = encode(ec_key, "DER", "PrivateKeyInfo");
    uint8_t buf[512];
    /* A P-256 PKCS#8 is 30 81 LL, then the version 02 01 00. */
    assert_true(b.len + 4 < sizeof buf);
    assert_memory_equal(b.p, "\x30\x81", 2);
    assert_memory_equal(b.p + 3, "\x02\x01\x00", 3);
    uint8_t ll = b.p[2];

    /* Trailing garbage after the key. */
    memcpy(buf, b.p, b.len);
    buf[b.len] = 0;
    refused(buf, b.len + 1, HS_E_FORMAT, "data after the key");

    /* The outer length with a leading zero byte (30 82 00 LL): not DER. */
    memcpy(buf, "\x30\x82\x00", 3);
    buf[3] = ll;
    memcpy(buf + 4, b.p + 3, b.len - 3);
    refused(buf, b.len + 1, HS_E_FORMAT, "shortest form");

    /* A short length in long form: the version as 02 81 01 00. */
    memcpy(buf, b.p, 3);
    buf[2] = (uint8_t)(ll + 1);
    memcpy(buf + 3, "\x02\x81\x01\x00", 4);
    memcpy(buf + 7, b.p + 6, b.len - 6);
    refused(buf, b.len + 1, HS_E_FORMAT, "shortest form");

    /* A non-minimal INTEGER: the version as 02 02 00 00. */
    memcpy(buf + 3, "\x02\x02\x00\x00", 4);
    refused(buf, b.len + 1, HS_E_FORMAT, "INTEGER not in its shortest form");

    /* Indefinite length (BER). */
    memcpy(buf, b.p, b.len);
    buf[1] = 0x80;
    refused(buf, b.len, HS_E_FORMAT, "indefinite");

    /* A length larger than the input. */
    memcpy(buf, b.p, b.len);
    buf[2] = (uint8_t)(ll + 1);
    refused(buf, b.len, HS_E_FORMAT, "truncated");

    /* Version 5 instead of 0. */
    memcpy(buf, b.p, b.len);
    buf[5] = 5;
    refused(buf, b.len, HS_E_FORMAT, "version");

    /* A negative INTEGER. */
    buf[5] = 0xff;
    refused(buf, b.len, HS_E_FORMAT, "negative");
    free_blob(&b);
}

static void refuses_other_algorithms(void **state)
{
    (void)state;
    /* Wrong OID: rsaEncryption (…1.1.1) turned into …1.1.2. */
    blob b = encode(rsa_key, "DER", "PrivateKeyInfo");
    static const uint8_t oid_rsa[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                      0x0d, 0x01, 0x01, 0x01};
    uint8_t *at = memmem(b.p, b.len, oid_rsa, sizeof oid_rsa);
    assert_non_null(at);
    at[sizeof oid_rsa - 1] = 0x02;
    refused(b.p, b.len, HS_E_USAGE, "key type not supported");
    free_blob(&b);

    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(p384);
    assert_non_null(ed);
    b = encode(p384, "DER", "PrivateKeyInfo");
    refused(b.p, b.len, HS_E_USAGE, "key type not supported");
    free_blob(&b);
    b = encode(p384, "PEM", "type-specific");
    refused(b.p, b.len, HS_E_USAGE, "key type not supported");
    free_blob(&b);
    b = encode(ed, "DER", "PrivateKeyInfo");
    refused(b.p, b.len, HS_E_USAGE, "key type not supported");
    free_blob(&b);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
}

static void refuses_encrypted_keys(void **state)
{
    (void)state;
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(i2d_PKCS8PrivateKey_bio(bio, ec_key, EVP_aes_128_cbc(), NULL, 0, NULL,
                                             (void *)"pass"), 1);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    refused((const uint8_t *)p, (size_t)n, HS_E_FORMAT, "it is encrypted");
    (void)BIO_reset(bio);
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, ec_key, EVP_aes_128_cbc(), NULL, 0, NULL,
                                                   (void *)"pass"), 1);
    n = BIO_get_mem_data(bio, &p);
    refused((const uint8_t *)p, (size_t)n, HS_E_FORMAT, "it is encrypted");
    (void)BIO_reset(bio);
    /* Traditional PEM encryption: Proc-Type / DEK-Info headers. */
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, rsa_key, EVP_aes_128_cbc(),
                                                          (unsigned char *)"pass", 4, NULL, NULL),
                     1);
    n = BIO_get_mem_data(bio, &p);
    refused((const uint8_t *)p, (size_t)n, HS_E_FORMAT, "it is encrypted");
    BIO_free(bio);
}

static void refuses_damaged_pem(void **state)
{
    (void)state;
    refused((const uint8_t *)"not a key\n", 10, HS_E_FORMAT, "neither DER nor a PEM");
    refused((const uint8_t *)"", 0, HS_E_FORMAT, NULL);
    const char *bad[] = {
        "-----BEGIN PRIVATE KEY-----\nMIGH\n",                               /* no END */
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",           /* empty */
        "-----BEGIN PRIVATE KEY-----\nMIG!\n-----END PRIVATE KEY-----\n",     /* not base64 */
        "-----BEGIN PRIVATE KEY-----\nMIGHA\n-----END PRIVATE KEY-----\n",    /* length */
        "-----BEGIN PRIVATE KEY-----\nMA==\nMAAA\n-----END PRIVATE KEY-----\n", /* pad inside */
        "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n",   /* END label */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused((const uint8_t *)bad[i], strlen(bad[i]), HS_E_FORMAT, NULL);

    /* A PKCS#1 key under the PKCS#8 label. */
    blob pem = encode(rsa_key, "PEM", "type-specific");
    static const char begin[] = "-----BEGIN RSA PRIVATE KEY-----\n";
    static const char end[] = "-----END RSA PRIVATE KEY-----\n";
    assert_memory_equal(pem.p, begin, strlen(begin));
    size_t body = pem.len - strlen(begin) - strlen(end);
    assert_memory_equal(pem.p + pem.len - strlen(end), end, strlen(end));
    char *text = malloc(pem.len);
    assert_non_null(text);
    int n = snprintf(text, pem.len, "-----BEGIN PRIVATE KEY-----\n%.*s-----END PRIVATE KEY-----\n",
                     (int)body, (const char *)pem.p + strlen(begin));
    assert_true(n > 0 && (size_t)n < pem.len);
    refused((const uint8_t *)text, (size_t)n, HS_E_FORMAT, "label does not match");
    free(text);
    free_blob(&pem);
}

/* The placeholder .pk8 of `key export-releasetools`: formatted, recognized
 * and parsed back; an import of it is refused naming the key; damaged
 * ones are not placeholders. */
static void placeholder_round_trip_and_refused_as_key(void **state)
{
    (void)state;
    hs_keyfile kf;
    memset(&kf, 0, sizeof kf);
    snprintf(kf.name, sizeof kf.name, "releasekey");
    for (int i = 0; i < 32; i++)
        kf.fingerprint[i] = (uint8_t)(0xa0 + i);
    char *text;
    size_t len;
    hs_error e;
    assert_int_equal(hs_placeholder_pk8_format(&kf, &text, &len, &e), HS_OK);
    assert_true(hs_placeholder_pk8_is((const uint8_t *)text, len));
    assert_true(text[0] != 0x30 && strncmp(text, "-----BEGIN", 10) != 0);
    assert_non_null(strstr(text, "not a private key"));
    char name[HS_KEY_NAME_MAX + 1];
    uint8_t fp[32];
    assert_int_equal(hs_placeholder_pk8_parse((const uint8_t *)text, len, "p.pk8", name, fp, &e),
                     HS_OK);
    assert_string_equal(name, "releasekey");
    assert_memory_equal(fp, kf.fingerprint, 32);

    hs_pk8_key k;
    assert_int_equal(hs_pk8_parse((const uint8_t *)text, len, "keys/releasekey.pk8", &k, &e),
                     HS_E_USAGE);
    assert_non_null(strstr(e.msg, "keys/releasekey.pk8"));
    assert_non_null(strstr(e.msg, "export-releasetools"));
    assert_non_null(strstr(e.msg, "'releasekey'"));
    hs_pk8_free(&k);

    /* A bad fingerprint line, or no key line: not a placeholder. */
    char *bad = strdup(text);
    char *f = strstr(bad, "public-key-sha256: ");
    f[strlen("public-key-sha256: ")] = 'z';
    assert_int_equal(hs_placeholder_pk8_parse((const uint8_t *)bad, len, "p.pk8", name, fp, &e),
                     HS_E_FORMAT);
    strcpy(strstr(bad, "key: "), "\n");
    assert_int_equal(hs_placeholder_pk8_parse((const uint8_t *)bad, strlen(bad), "p.pk8", name,
                                              fp, &e),
                     HS_E_FORMAT);
    assert_false(hs_placeholder_pk8_is((const uint8_t *)"HSMSIGN-PLACEHOLDER", 19));
    free(bad);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_every_encoding_of_rsa),
        cmocka_unit_test(reads_every_encoding_of_ec),
        cmocka_unit_test(skips_other_pem_blocks),
        cmocka_unit_test(refuses_every_truncation),
        cmocka_unit_test(refuses_damaged_der),
        cmocka_unit_test(refuses_other_algorithms),
        cmocka_unit_test(refuses_encrypted_keys),
        cmocka_unit_test(refuses_damaged_pem),
        cmocka_unit_test(placeholder_round_trip_and_refused_as_key),
    };
    return cmocka_run_group_tests(tests, make_keys, free_keys);
}
