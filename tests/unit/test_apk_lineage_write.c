/* The signing certificate lineage writer and reader (apk_lineage_write.c):
 * create and extend with signatures through hs_sign_fn, encode, read back
 * with every link checked; forged, truncated, padded or inconsistent
 * lineages refused. Byte equality with apksigner rotate is in
 * tests/integration/test_apk_rotation.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "apk/apk_lineage_write.h"
#include "soft_signer.h"

#define KEYS 3

static soft_signer signers[KEYS];
static uint8_t *certs[KEYS];
static size_t cert_lens[KEYS];
static hs_apk_key keys[KEYS];
static const char *const names[KEYS] = {"k0", "k1", "k2"};

static void make_key(int i)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    assert_non_null(pk);
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)names[i], -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, pk);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    int len = i2d_X509(x, &certs[i]);
    assert_true(len > 0);
    cert_lens[i] = (size_t)len;
    X509_free(x);
    soft_signer_adopt(&signers[i], pk);
    EVP_PKEY_free(pk);
    keys[i] = (hs_apk_key){.key_name = names[i], .cert_der = certs[i],
                           .cert_der_len = cert_lens[i],
                           .public_key = soft_signer_public(&signers[i])};
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < KEYS; i++)
        make_key(i);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < KEYS; i++) {
        soft_signer_free(&signers[i]);
        OPENSSL_free(certs[i]);
    }
    return 0;
}

/* k0 -> k1 -> k2, encoded as a file. */
static void three(hs_apk_buf *file)
{
    hs_lineage l;
    hs_error e;
    assert_int_equal(hs_lineage_init(&l, certs[0], cert_lens[0], HS_LINEAGE_CAP_DEFAULT, &e), HS_OK);
    assert_int_equal(hs_lineage_extend(&l, &keys[0], &keys[1], 7, soft_signer_fn(&signers[0]),
                                       "t", &e), HS_OK);
    assert_int_equal(hs_lineage_extend(&l, &keys[1], &keys[2], 31, soft_signer_fn(&signers[1]),
                                       "t", &e), HS_OK);
    assert_int_equal(hs_lineage_encode_file(&l, file, &e), HS_OK);
    hs_lineage_free(&l);
}

static void test_round_trip(void **state)
{
    (void)state;
    hs_apk_buf file = {0}, again = {0}, nodes = {0};
    hs_lineage l;
    hs_error e;
    three(&file);
    assert_int_equal(hs_lineage_parse(file.data, file.len, "f", &l, &e), HS_OK);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.nodes[0].flags, HS_LINEAGE_CAP_DEFAULT);
    assert_int_equal(l.nodes[1].flags, 7);
    assert_int_equal(l.nodes[2].flags, 31);
    assert_int_equal(l.nodes[0].parent_alg, 0);
    assert_int_equal(l.nodes[0].sig_alg, 0x0201);
    assert_int_equal(l.nodes[1].parent_alg, 0x0201);
    assert_int_equal(l.nodes[2].sig_alg, 0);
    assert_int_equal(l.nodes[0].sig_len, 0);
    assert_int_equal(hs_lineage_find(&l, certs[2], cert_lens[2]), 2);
    assert_int_equal(hs_lineage_encode_file(&l, &again, &e), HS_OK);
    assert_int_equal(again.len, file.len);
    assert_memory_equal(again.data, file.data, file.len);
    assert_int_equal(hs_lineage_encode_nodes(&l, &nodes, &e), HS_OK);
    assert_int_equal(nodes.len + 12, file.len); /* the file adds magic, version, length */
    assert_memory_equal(nodes.data, file.data + 12, nodes.len);
    assert_true(hs_lineage_nodes_start_with(nodes.data, nodes.len, certs[0], cert_lens[0]));
    assert_false(hs_lineage_nodes_start_with(nodes.data, nodes.len, certs[1], cert_lens[1]));
    hs_lineage_free(&l);
    hs_apk_buf_free(&file);
    hs_apk_buf_free(&again);
    hs_apk_buf_free(&nodes);
}

/* Every proper prefix, and one byte more, is refused. */
static void test_truncated_and_padded(void **state)
{
    (void)state;
    hs_apk_buf file = {0};
    hs_lineage l;
    hs_error e;
    three(&file);
    for (size_t n = 0; n < file.len; n++)
        assert_int_not_equal(hs_lineage_parse(file.data, n, "f", &l, &e), HS_OK);
    uint8_t *more = malloc(file.len + 1);
    memcpy(more, file.data, file.len);
    more[file.len] = 0;
    assert_int_equal(hs_lineage_parse(more, file.len + 1, "f", &l, &e), HS_E_FORMAT);
    free(more);
    hs_apk_buf_free(&file);
}

/* A flipped bit in a signed node (after the first, whose certificate no
 * one signs) is refused or, where it lands in a field no signature covers
 * (flags, the newest signer's algorithm), read back with that field
 * changed: a link's certificate or signature never changes unnoticed. */
static void test_every_bit_flip(void **state)
{
    (void)state;
    hs_apk_buf file = {0};
    hs_lineage orig, l;
    hs_error e;
    three(&file);
    assert_int_equal(hs_lineage_parse(file.data, file.len, "f", &orig, &e), HS_OK);
    size_t accepted = 0;
    size_t first_signed = 12 + 4 + 4 + (size_t)(file.data[16] | file.data[17] << 8);
    for (size_t i = first_signed; i < file.len; i++) {
        file.data[i] ^= 0x01;
        if (hs_lineage_parse(file.data, file.len, "f", &l, &e) == HS_OK) {
            accepted++;
            bool same = true;
            for (size_t k = 0; k < 3; k++)
                same = same && l.nodes[k].flags == orig.nodes[k].flags &&
                       l.nodes[k].sig_alg == orig.nodes[k].sig_alg;
            assert_false(same);
            hs_lineage_free(&l);
        }
        file.data[i] ^= 0x01;
    }
    assert_true(accepted <= 3 * 32); /* flags of two nodes, the last algorithm */
    hs_lineage_free(&orig);
    hs_apk_buf_free(&file);
}

static uint32_t le32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32_at(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A byte more inside the newest node (lengths adjusted so the file is
 * otherwise well-formed) is refused: nothing is left unread. */
static void test_padded_node(void **state)
{
    (void)state;
    hs_apk_buf file = {0};
    hs_lineage l;
    hs_error e;
    three(&file);
    size_t at = 16, last = 0;
    while (at < file.len) {
        last = at;
        at += 4 + le32_at(file.data + at);
    }
    uint8_t *p = malloc(file.len + 1);
    memcpy(p, file.data, file.len);
    p[file.len] = 0;
    put_le32_at(p + 8, le32_at(p + 8) + 1);
    put_le32_at(p + last, le32_at(p + last) + 1);
    assert_int_equal(hs_lineage_parse(p, file.len + 1, "f", &l, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "certificate #3: malformed node"));
    free(p);
    hs_apk_buf_free(&file);
}

static void test_forged_signature(void **state)
{
    (void)state;
    hs_apk_buf file = {0};
    hs_lineage l;
    hs_error e;
    three(&file);
    /* the last byte is in the newest node's signature (DER ECDSA) */
    file.data[file.len - 1] ^= 0x01;
    assert_int_equal(hs_lineage_parse(file.data, file.len, "f", &l, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "certificate #3 is not signed by certificate #2"));
    hs_apk_buf_free(&file);
}

static void test_extend_refusals(void **state)
{
    (void)state;
    hs_lineage l;
    hs_error e;
    unsigned calls = signers[0].calls + signers[1].calls;
    assert_int_equal(hs_lineage_init(&l, certs[0], cert_lens[0], HS_LINEAGE_CAP_DEFAULT, &e), HS_OK);
    soft_signer *s = &signers[1];
    /* parent not the newest signer */
    assert_int_equal(hs_lineage_extend(&l, &keys[1], &keys[2], 0, soft_signer_fn(s), "t", &e),
                     HS_E_USAGE);
    /* a certificate twice */
    assert_int_equal(hs_lineage_extend(&l, &keys[0], &keys[0], 0, soft_signer_fn(&signers[0]),
                                       "t", &e), HS_E_USAGE);
    assert_int_equal(signers[0].calls + signers[1].calls, calls); /* nothing signed */
    assert_int_equal(l.count, 1);
    hs_lineage_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated_and_padded),
        cmocka_unit_test(test_every_bit_flip),
        cmocka_unit_test(test_padded_node),
        cmocka_unit_test(test_forged_signature),
        cmocka_unit_test(test_extend_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
