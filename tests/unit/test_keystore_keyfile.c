/* The key file format: round trip, and strict reading of every way a file
 * can be wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "keystore/cert.h"
#include "keystore/keyfile.h"
#include "soft_signer.h"
#include "util/encoding.h"

static char *good_text; /* a valid serialized key file */

static int setup(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_RSA_gen(2048);
    soft_signer ss;
    hs_error e;
    soft_signer_adopt(&ss, key);
    hs_keyfile kf;
    memset(&kf, 0, sizeof kf);
    snprintf(kf.name, sizeof kf.name, "platform");
    kf.alg = HS_KEY_RSA2048;
    snprintf(kf.origin, sizeof kf.origin, "generated");
    snprintf(kf.created, sizeof kf.created, "2026-11-22T10:00:00Z");
    snprintf(kf.wrap_label, sizeof kf.wrap_label, "hsmsign-wrap");
    memcpy(kf.wrap_kcv, "\xab\xcd\xef", 3);
    kf.wrapped_len = 1232;
    kf.wrapped = malloc(kf.wrapped_len);
    RAND_bytes(kf.wrapped, (int)kf.wrapped_len);
    if (hs_keyfile_set_public(&kf, key, &e) != HS_OK ||
        hs_cert_self_signed(key, kf.alg, "CN=platform", 10, "platform", soft_signer_fn(&ss), &kf.cert,
                            &e) != HS_OK ||
        hs_keyfile_serialize(&kf, &good_text, &e) != HS_OK)
        return -1;
    hs_keyfile_free(&kf);
    soft_signer_free(&ss);
    EVP_PKEY_free(key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(good_text);
    return 0;
}

static hs_result parse_text(const char *text, hs_keyfile *kf, hs_error *e)
{
    return hs_keyfile_parse((const uint8_t *)text, strlen(text), "keys/platform.key", kf, e);
}

static void round_trip(void **state)
{
    (void)state;
    hs_keyfile kf;
    hs_error e;
    assert_int_equal(parse_text(good_text, &kf, &e), HS_OK);
    assert_string_equal(kf.name, "platform");
    assert_int_equal(kf.alg, HS_KEY_RSA2048);
    assert_memory_equal(kf.wrap_kcv, "\xab\xcd\xef", 3);
    assert_int_equal(kf.wrapped_len, 1232);
    uint8_t fp[32];
    SHA256(kf.spki, kf.spki_len, fp);
    assert_memory_equal(fp, kf.fingerprint, 32);
    char *again;
    assert_int_equal(hs_keyfile_serialize(&kf, &again, &e), HS_OK);
    assert_string_equal(again, good_text); /* stable encoding */
    free(again);
    hs_keyfile_free(&kf);
}

/* Rewrites one field and recomputes the checksum, as a careful forger
 * would, so the field checks themselves are exercised. */
static char *forge(const char *field, json_t *value)
{
    json_t *o = json_loads(good_text, 0, NULL);
    if (value != NULL)
        json_object_set_new(o, field, value);
    else
        json_object_del(o, field);
    json_object_del(o, "checksum");
    char *canon = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
    uint8_t d[32];
    SHA256((uint8_t *)canon, strlen(canon), d);
    free(canon);
    char sum[72] = "sha256:";
    hs_hex_encode(d, 32, sum + 7);
    json_object_set_new(o, "checksum", json_string(sum));
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    return text;
}

static void expect_format_error(const char *text, const char *words)
{
    hs_keyfile kf;
    hs_error e;
    assert_int_equal(parse_text(text, &kf, &e), HS_E_FORMAT);
    if (strstr(e.msg, words) == NULL)
        fail_msg("message '%s' lacks '%s'", e.msg, words);
    assert_non_null(strstr(e.msg, "keys/platform.key"));
}

static json_t *wrap_with(const char *kcv, const char *canary)
{
    json_t *w = json_pack("{s:s, s:s, s:s}", "mechanism", "CKM_AES_KEY_WRAP_PAD", "key_label",
                          "hsmsign-wrap", "key_check_value", kcv);
    if (canary != NULL)
        json_object_set_new(w, "canary", json_string(canary));
    return w;
}

/* Issue 14: a key file made on a token without CKA_CHECK_VALUE has an
 * empty check value and a canary; the canary is optional otherwise. */
static void wrap_canary(void **state)
{
    (void)state;
    hs_keyfile kf;
    hs_error e;
    static const char canary[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"; /* 24 bytes */
    char *t = forge("wrap", wrap_with("", canary));
    assert_int_equal(parse_text(t, &kf, &e), HS_OK);
    assert_true(kf.wrap_kcv_unknown);
    assert_int_equal(kf.wrap_canary_len, 24);
    assert_int_equal(kf.wrap_canary[23], 23);
    char *again;
    assert_int_equal(hs_keyfile_serialize(&kf, &again, &e), HS_OK);
    assert_non_null(strstr(again, "\"key_check_value\": \"\""));
    assert_non_null(strstr(again, canary));
    free(again);
    hs_keyfile_free(&kf);
    free(t);
    t = forge("wrap", wrap_with("abcdef", canary));
    assert_int_equal(parse_text(t, &kf, &e), HS_OK);
    assert_false(kf.wrap_kcv_unknown);
    assert_int_equal(kf.wrap_canary_len, 24);
    hs_keyfile_free(&kf);
    free(t);
    t = forge("wrap", wrap_with("", NULL));
    expect_format_error(t, "may be empty only with a wrap.canary");
    free(t);
    t = forge("wrap", wrap_with("abcdef", "!!"));
    expect_format_error(t, "wrap.canary is not valid base64");
    free(t);
    json_t *w = wrap_with("abcdef", NULL);
    json_object_set_new(w, "extra", json_string("x"));
    t = forge("wrap", w);
    expect_format_error(t, "unknown field 'wrap.extra'");
    free(t);
}

static void rejects_each_kind_of_damage(void **state)
{
    (void)state;
    char *t;
    expect_format_error("not json", "not valid JSON");
    expect_format_error("{\"format\":\"other\"}", "is not an hsmsign key file");
    t = forge("version", json_integer(2));
    expect_format_error(t, "unsupported version 2");
    free(t);
    t = forge("extra", json_string("x"));
    expect_format_error(t, "unknown field 'extra'");
    free(t);
    t = forge("certificate", NULL);
    expect_format_error(t, "field 'certificate' is missing");
    free(t);
    t = forge("algorithm", json_string("rsa4096"));
    expect_format_error(t, "public key is not rsa4096");
    free(t);
    t = forge("public_key_sha256", json_string("00"));
    expect_format_error(t, "public_key_sha256 does not match");
    free(t);
    t = forge("wrapped_private_key", json_string("!!!"));
    expect_format_error(t, "wrapped_private_key is not valid base64");
    free(t);
    t = forge("origin", json_string("stolen"));
    expect_format_error(t, "origin must be");
    free(t);
    /* One flipped byte anywhere: checksum or parse error, never accepted. */
    size_t n = strlen(good_text);
    for (size_t i = 0; i < n; i += 7) {
        char *copy = strdup(good_text);
        copy[i] ^= 0x01;
        hs_keyfile kf;
        hs_error e;
        hs_result r = parse_text(copy, &kf, &e);
        if (r == HS_OK)
            fail_msg("flipping byte %zu was not detected", i);
        assert_int_equal(r, HS_E_FORMAT);
        free(copy);
    }
    /* Truncation at any point. */
    for (size_t len = 0; len < n; len += 97) {
        hs_keyfile kf;
        hs_error e;
        assert_int_equal(hs_keyfile_parse((const uint8_t *)good_text, len, "keys/platform.key", &kf, &e),
                         HS_E_FORMAT);
    }
}

/* A key file made before profiles has no "profile": it is a wrapped one. */
static void no_profile_is_wrapped(void **state)
{
    (void)state;
    char *t = forge("profile", NULL);
    hs_keyfile kf;
    hs_error e;
    assert_int_equal(parse_text(t, &kf, &e), HS_OK);
    assert_int_equal(kf.profile, HS_PROFILE_WRAPPED);
    assert_int_equal(kf.wrapped_len, 1232);
    hs_keyfile_free(&kf);
    free(t);
    assert_non_null(strstr(good_text, "\"profile\": \"wrapped\""));
    t = forge("profile", json_string("tpm"));
    expect_format_error(t, "profile must be wrapped, yubihsm or resident");
    free(t);
    t = forge("profile", json_string("resident")); /* with wrap fields, no token_key */
    expect_format_error(t, "field 'token_key' is missing");
    free(t);
}

/* The resident profile: the object's CKA_ID instead of a wrapped blob. */
static void resident_round_trip(void **state)
{
    (void)state;
    hs_keyfile kf, back;
    hs_error e;
    assert_int_equal(parse_text(good_text, &kf, &e), HS_OK);
    kf.profile = HS_PROFILE_RESIDENT;
    free(kf.wrapped);
    kf.wrapped = NULL;
    kf.wrapped_len = 0;
    kf.key_id_len = 16;
    memcpy(kf.key_id, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
    char *text;
    assert_int_equal(hs_keyfile_serialize(&kf, &text, &e), HS_OK);
    hs_keyfile_free(&kf);
    assert_non_null(strstr(text, "\"id\": \"0102030405060708090a0b0c0d0e0f10\""));
    assert_null(strstr(text, "wrapped_private_key"));
    assert_null(strstr(text, "\"wrap\""));
    assert_int_equal(parse_text(text, &back, &e), HS_OK);
    assert_int_equal(back.profile, HS_PROFILE_RESIDENT);
    assert_int_equal(back.key_id_len, 16);
    assert_memory_equal(back.key_id, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
    assert_null(back.wrapped);
    char *again;
    assert_int_equal(hs_keyfile_serialize(&back, &again, &e), HS_OK);
    assert_string_equal(again, text);
    hs_keyfile_free(&back);
    free(again);
    /* Strict as the wrapped form: wrapped fields, a bad ID or label refused. */
    free(good_text);
    good_text = text; /* forge() edits good_text; teardown frees it */
    char *t = forge("wrapped_private_key", json_string("AAAA"));
    expect_format_error(t, "unknown field 'wrapped_private_key'");
    free(t);
    t = forge("token_key", json_pack("{s:s, s:s}", "id", "0g", "label", "platform"));
    expect_format_error(t, "token_key.id is not 1 to 64 hex bytes");
    free(t);
    t = forge("token_key", json_pack("{s:s, s:s}", "id", "0102", "label", "media"));
    expect_format_error(t, "token_key.label is not the key's name");
    free(t);
    t = forge("token_key", json_pack("{s:s, s:s, s:s}", "id", "0102", "label", "platform", "x", ""));
    expect_format_error(t, "unknown field 'token_key.x'");
    free(t);
}

/* The yubihsm profile: the vendor mechanism and the object ID the blob
 * restores, required; no canary needed without a check value. */
static void yubihsm_round_trip(void **state)
{
    (void)state;
    hs_keyfile kf, back;
    hs_error e;
    assert_int_equal(parse_text(good_text, &kf, &e), HS_OK);
    kf.profile = HS_PROFILE_YUBIHSM;
    kf.key_id_len = 2;
    memcpy(kf.key_id, "\x48\x55", 2);
    kf.wrap_kcv_unknown = true;
    char *text;
    assert_int_equal(hs_keyfile_serialize(&kf, &text, &e), HS_OK);
    hs_keyfile_free(&kf);
    assert_non_null(strstr(text, "\"mechanism\": \"CKM_YUBICO_AES_CCM_WRAP\""));
    assert_non_null(strstr(text, "\"object_id\": \"4855\""));
    assert_int_equal(parse_text(text, &back, &e), HS_OK);
    assert_int_equal(back.profile, HS_PROFILE_YUBIHSM);
    assert_int_equal(back.key_id_len, 2);
    assert_memory_equal(back.key_id, "\x48\x55", 2);
    assert_true(back.wrap_kcv_unknown);
    assert_int_equal(back.wrapped_len, 1232);
    hs_keyfile_free(&back);
    char *saved = good_text;
    good_text = text;
    char *t = forge("wrap", json_pack("{s:s, s:s, s:s}", "mechanism", "CKM_YUBICO_AES_CCM_WRAP",
                                      "key_label", "hsmsign-wrap", "key_check_value", ""));
    expect_format_error(t, "field 'wrap.object_id' is missing");
    free(t);
    t = forge("wrap", json_pack("{s:s, s:s, s:s, s:s}", "mechanism", "CKM_AES_KEY_WRAP_PAD",
                                "key_label", "hsmsign-wrap", "key_check_value", "", "object_id",
                                "4855"));
    expect_format_error(t, "wrap mechanism must be CKM_YUBICO_AES_CCM_WRAP");
    free(t);
    t = forge("wrap", json_pack("{s:s, s:s, s:s, s:s}", "mechanism", "CKM_YUBICO_AES_CCM_WRAP",
                                "key_label", "hsmsign-wrap", "key_check_value", "", "object_id",
                                "48"));
    expect_format_error(t, "wrap.object_id is not 2 hex bytes");
    free(t);
    good_text = saved;
    free(text);
}

static void key_names(void **state)
{
    (void)state;
    hs_error e;
    assert_int_equal(hs_key_name_check("com.android.foo.apex-payload_2", &e), HS_OK);
    const char *bad[] = {"", ".hidden", "-x", "a/b", "../x", "a b", "ä"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hs_key_name_check(bad[i], &e), HS_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(rejects_each_kind_of_damage),
        cmocka_unit_test(wrap_canary),
        cmocka_unit_test(key_names),
        cmocka_unit_test(no_profile_is_wrapped),
        cmocka_unit_test(yubihsm_round_trip),
        cmocka_unit_test(resident_round_trip), /* last: it replaces good_text */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
