/* The vbmeta builder's option handling: descriptor order and encoding,
 * de-duplication of included descriptors, required libavb version,
 * release string, chain partition checks, and the signer contract (one
 * call, right algorithm, signature length and key checked). Byte equality
 * with avbtool is proven by tests/integration/avb_vectors.sh; here the
 * signer is a small OpenSSL callback of this file. */
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

#include "avb/avb_info.h"
#include "avb/avb_vbmeta.h"
#include "avb/avb_verify.h"

typedef struct test_signer {
    EVP_PKEY *key;
    unsigned calls;
    hs_sig_alg last_alg;
    size_t truncate_by; /* return a signature this much too short */
} test_signer;

static hs_result test_sign(void *ctx, const hs_sign_request *req, uint8_t **sig, size_t *sig_len,
                           hs_error *e)
{
    test_signer *s = ctx;
    s->calls++;
    s->last_alg = req->alg;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(s->key, NULL);
    size_t len = 0;
    if (EVP_PKEY_sign_init(c) <= 0 || EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(c, hs_sig_alg_md(req->alg)) <= 0 ||
        EVP_PKEY_sign(c, NULL, &len, req->digest, req->digest_len) <= 0)
        return hs_fail(e, HS_E_CRYPTO, "test signer failed");
    *sig = malloc(len);
    assert_int_equal(EVP_PKEY_sign(c, *sig, &len, req->digest, req->digest_len), 1);
    EVP_PKEY_CTX_free(c);
    *sig_len = len - s->truncate_by;
    return HS_OK;
}

static const char *vector_path(const char *name)
{
    static char path[4][512];
    static int next;
    const char *dir = getenv("HSMSIGN_VECTORS");
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/avb/%s", dir ? dir : "tests/vectors", name);
    return p;
}

static EVP_PKEY *load_key(const char *name)
{
    FILE *f = fopen(vector_path(name), "r");
    assert_non_null(f);
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(key);
    return key;
}

static void build(const hs_avb_vbmeta_opts *o, test_signer *s, hs_result want, hs_avb_vbmeta *out,
                  hs_error *e)
{
    hs_sign_fn fn = {test_sign, s};
    hs_avb_buf blob = {0};
    hs_avb_report rep;
    memset(&rep, 0, sizeof rep);
    hs_result r = hs_avb_vbmeta_build(o, NULL, 0, 0, &fn, "test", &blob, &rep, e);
    if (r != want)
        fail_msg("build returned %d, wanted %d: %s", r, want, e->msg);
    if (r == HS_OK) {
        assert_int_equal(rep.vbmeta_size, blob.len);
        assert_int_equal(hs_avb_vbmeta_parse(blob.data, blob.len, "built", out, e), HS_OK);
    }
    hs_avb_buf_free(&blob);
}

static void test_unsigned_descriptor_order_and_encoding(void **state)
{
    (void)state;
    const char *props[] = {"b:2", "a:x:y"};
    const char *cmdlines[] = {"console=ttyS0"};
    hs_avb_vbmeta_opts o = {0};
    o.props = props;
    o.n_props = 2;
    o.kernel_cmdlines = cmdlines;
    o.n_kernel_cmdlines = 1;
    o.rollback_index = 0x0102030405060708ull;
    o.flags = 3;
    hs_avb_vbmeta v;
    hs_error e = {0};
    test_signer s = {0};
    build(&o, &s, HS_OK, &v, &e);
    assert_int_equal(s.calls, 0);
    assert_string_equal(v.alg->name, "NONE");
    assert_int_equal(v.auth_size, 0);
    assert_int_equal(v.rollback_index, 0x0102030405060708ull);
    assert_int_equal(v.flags, 3);
    assert_int_equal(v.required_minor, 0);
    assert_string_equal(v.release_string, "avbtool 1.3.0");
    assert_int_equal(v.n_descs, 3);
    /* given order: props (split at the first ':'), then cmdlines */
    assert_int_equal(v.descs[0].tag, 0);
    assert_int_equal(v.descs[1].tag, 0);
    assert_memory_equal(v.descs[1].key.p, "a", 1);
    assert_int_equal(v.descs[1].value.len, 3);
    assert_memory_equal(v.descs[1].value.p, "x:y", 3);
    assert_int_equal(v.descs[2].tag, 3);
    /* property "b" -> "2", byte for byte from the format (notes section 3.2):
     * tag 0, 24 bytes following (16 + 1+1 + 1+1 = 20, padded), key_len 1, value_len 1 */
    static const uint8_t want[40] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24,
                                     0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
                                     'b', 0, '2', 0, 0, 0, 0, 0};
    assert_int_equal(v.descs[0].raw.len, sizeof want);
    assert_memory_equal(v.descs[0].raw.p, want, sizeof want);
    assert_int_equal(v.aux_size % 64, 0);
    hs_avb_vbmeta_free(&v);
}

static void test_included_descriptors_deduplicated(void **state)
{
    (void)state;
    /* boot.img's hash descriptor for "boot" appears in both images: the
     * last one seen is kept, once; sorted by type and partition name. */
    const char *inc[] = {vector_path("vbmeta_sha512_rsa8192.img"), vector_path("system.img"),
                         vector_path("boot.img")};
    hs_avb_vbmeta_opts o = {0};
    o.include_descriptors_from_image = inc;
    o.n_include_descriptors_from_image = 3;
    hs_avb_vbmeta v;
    hs_error e = {0};
    test_signer s = {0};
    build(&o, &s, HS_OK, &v, &e);
    assert_int_equal(v.n_descs, 2);
    assert_int_equal(v.descs[0].tag, 2); /* AvbHashDescriptor_boot < AvbHashtreeDescriptor_system */
    assert_int_equal(v.descs[1].tag, 1);
    assert_memory_equal(v.descs[0].partition_name.p, "boot", 4);
    hs_avb_vbmeta_free(&v);
}

static void test_rollback_location_and_release_string(void **state)
{
    (void)state;
    hs_avb_vbmeta_opts o = {0};
    hs_avb_vbmeta v;
    hs_error e = {0};
    test_signer s = {0};
    o.rollback_index_location = 1;
    o.append_to_release_string = "board-x";
    build(&o, &s, HS_OK, &v, &e);
    assert_int_equal(v.required_minor, 2);
    assert_int_equal(v.rollback_index_location, 1);
    assert_string_equal(v.release_string, "avbtool 1.3.0 board-x");
    hs_avb_vbmeta_free(&v);
    o.release_string = "0123456789012345678901234567890123456789012345678"; /* 49 */
    o.append_to_release_string = NULL;
    build(&o, &s, HS_E_USAGE, &v, &e);
    assert_non_null(strstr(e.msg, "release string"));
}

static void test_chain_partition_checks(void **state)
{
    (void)state;
    hs_avb_vbmeta_opts o = {0};
    hs_avb_vbmeta v;
    hs_error e = {0};
    test_signer s = {0};
    char spec_a[600], spec_b[600], spec_c[600];
    snprintf(spec_a, sizeof spec_a, "vendor:1:%s", vector_path("testkey_rsa2048.avbpubkey"));
    snprintf(spec_b, sizeof spec_b, "odm:1:%s", vector_path("testkey_rsa4096.avbpubkey"));
    snprintf(spec_c, sizeof spec_c, "odm:2:%s", vector_path("testkey_rsa4096.avbpubkey"));
    const char *clash[] = {spec_a, spec_b};
    o.chain_partitions = clash;
    o.n_chain_partitions = 2;
    build(&o, &s, HS_E_USAGE, &v, &e);
    assert_non_null(strstr(e.msg, "already in use"));
    const char *ok[] = {spec_a, spec_c};
    o.chain_partitions = ok;
    build(&o, &s, HS_OK, &v, &e);
    assert_int_equal(v.n_descs, 2);
    assert_memory_equal(v.descs[0].partition_name.p, "odm", 3); /* specs sorted as strings */
    assert_int_equal(v.descs[0].rollback_index_location, 2);
    assert_int_equal(v.descs[0].public_key.len, 1032);
    hs_avb_vbmeta_free(&v);
    const char *bad[] = {"vendor:x:file", "vendor:1", "a:1:b:c"};
    for (int i = 0; i < 3; i++) {
        o.chain_partitions = &bad[i];
        o.n_chain_partitions = 1;
        build(&o, &s, HS_E_USAGE, &v, &e);
    }
    const char *noprop[] = {"no-colon"};
    o.n_chain_partitions = 0;
    o.props = noprop;
    o.n_props = 1;
    build(&o, &s, HS_E_USAGE, &v, &e);
    assert_non_null(strstr(e.msg, "malformed property"));
}

static void test_signer_contract(void **state)
{
    (void)state;
    EVP_PKEY *k4096 = load_key("testkey_rsa4096.pem"), *k2048 = load_key("testkey_rsa2048.pem");
    hs_avb_vbmeta_opts o = {0};
    hs_avb_vbmeta v;
    hs_error e = {0};
    test_signer s = {k4096, 0, 0, 0};
    o.algorithm = "SHA512_RSA4096";
    o.public_key = k4096;
    o.key_name = "avb";
    build(&o, &s, HS_OK, &v, &e);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.last_alg, HS_SIG_RSA_PKCS1_SHA512);
    assert_int_equal(v.auth_size, 576);
    assert_int_equal(hs_avb_vbmeta_verify_signature(&v, "built", &e), HS_OK);
    hs_avb_vbmeta_free(&v);

    s.calls = 0;
    s.truncate_by = 1;
    build(&o, &s, HS_E_CRYPTO, &v, &e);
    assert_int_equal(s.calls, 1);
    assert_non_null(strstr(e.msg, "511 signature bytes"));

    test_signer wrong = {load_key("testkey_rsa4096.pem"), 0, 0, 0};
    o.public_key = k2048; /* 2048-bit key for a 4096 algorithm */
    build(&o, &wrong, HS_E_USAGE, &v, &e);
    assert_int_equal(wrong.calls, 0);
    assert_non_null(strstr(e.msg, "wrong size"));
    o.public_key = NULL;
    build(&o, &wrong, HS_E_USAGE, &v, &e);
    o.algorithm = "SHA256_RSA3072";
    build(&o, &wrong, HS_E_USAGE, &v, &e);
    EVP_PKEY_free(wrong.key);
    EVP_PKEY_free(k4096);
    EVP_PKEY_free(k2048);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unsigned_descriptor_order_and_encoding),
        cmocka_unit_test(test_included_descriptors_deduplicated),
        cmocka_unit_test(test_rollback_location_and_release_string),
        cmocka_unit_test(test_chain_partition_checks),
        cmocka_unit_test(test_signer_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
