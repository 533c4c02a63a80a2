/* The ceremony transcript: JSON round trip, strict reading, the text form,
 * and signature checking with a software key (OpenSSL signs, so our
 * verifier is checked against an independent signer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ceremony/transcript.h"
#include "keystore/auditkey.h"
#include "util/file.h"

static EVP_PKEY *ed_key;

static int setup(void **state)
{
    (void)state;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    int ok = c != NULL && EVP_PKEY_keygen_init(c) == 1 && EVP_PKEY_keygen(c, &ed_key) == 1;
    EVP_PKEY_CTX_free(c);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(ed_key);
    return 0;
}

static hs_transcript *sample(void)
{
    hs_transcript *t = calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "Example OS 2026");
    snprintf(t->date, sizeof t->date, "2026-11-22T10:00:00Z");
    snprintf(t->tool_version, sizeof t->tool_version, "0.1.0");
    memset(t->tool_sha256, 0xab, 32);
    for (int i = 0; i < 2; i++) {
        snprintf(t->tokens[i].role, sizeof t->tokens[i].role, "%s", i ? "backup" : "primary");
        snprintf(t->tokens[i].label, sizeof t->tokens[i].label, "hsm-%d", i);
        snprintf(t->tokens[i].serial, sizeof t->tokens[i].serial, "00112233445566%02d", i);
        snprintf(t->tokens[i].model, sizeof t->tokens[i].model, "SoftHSM v2");
        snprintf(t->tokens[i].manufacturer, sizeof t->tokens[i].manufacturer, "SoftHSM project");
        snprintf(t->tokens[i].firmware, sizeof t->tokens[i].firmware, "2.6");
        snprintf(t->tokens[i].hardware, sizeof t->tokens[i].hardware, "2.%d", i);
    }
    t->n_libs = 2;
    snprintf(t->libs[0].path, sizeof t->libs[0].path, "/usr/lib/libc.so.6");
    snprintf(t->libs[1].path, sizeof t->libs[1].path, "/usr/lib/libcrypto.so.3");
    memset(t->libs[1].sha256, 0x77, 32);
    snprintf(t->module.path, sizeof t->module.path, "/usr/lib/softhsm/libsofthsm2.so");
    memset(t->module.sha256, 0x66, 32);
    t->holders_may_hold_roles = true;
    snprintf(t->wrap_label, sizeof t->wrap_label, "hsmsign-wrap");
    memcpy(t->kcv, "\x12\x34\x56", 3);
    memset(t->set_id, 0x5a, sizeof t->set_id);
    t->threshold = 2;
    t->n_holders = 3;
    for (size_t i = 0; i < 3; i++) {
        snprintf(t->holders[i].name, sizeof t->holders[i].name, "holder %zu", i);
        snprintf(t->holders[i].recipient, sizeof t->holders[i].recipient, "age1recipient%zu", i);
        snprintf(t->holders[i].file.path, sizeof t->holders[i].file.path, "shares/%02zu.age", i);
        memset(t->holders[i].file.sha256, (int)i + 1, 32);
        t->holders[i].x = (uint8_t)(200 + i);
        memset(t->holders[i].salt, 0x30 + (int)i, sizeof t->holders[i].salt);
        memset(t->holders[i].commitment, 0x90 + (int)i, 32);
    }
    for (int r = 0; r < HS_ROLE_COUNT; r++) {
        t->roles[r].n = 1;
        snprintf(t->roles[r].r[0], sizeof t->roles[r].r[0], "age1role%d", r);
    }
    for (int i = 0; i < HS_TRANSCRIPT_CREDENTIALS; i++) {
        hs_transcript_credential *c = &t->credentials[i];
        snprintf(c->token, sizeof c->token, "%s", i < 2 ? "primary" : "backup");
        snprintf(c->credential, sizeof c->credential, "%s", i % 2 ? "user-pin" : "so-pin");
        c->role = i % 2 ? HS_ROLE_OPERATOR : HS_ROLE_ADMIN;
        snprintf(c->file.path, sizeof c->file.path, "credentials/%d.age", i);
        memset(c->file.sha256, 0x40 + i, 32);
    }
    snprintf(t->audit_alg, sizeof t->audit_alg, "ed25519");
    snprintf(t->audit_label, sizeof t->audit_label, "hsmsign-audit");
    uint8_t fp[32];
    hs_error e;
    if (hs_auditkey_public_pem(ed_key, &t->audit_pem, fp, &e) != HS_OK)
        return NULL;
    memcpy(t->audit_fingerprint, fp, 32);
    snprintf(t->audit_pem_file.path, sizeof t->audit_pem_file.path, "audit-key.pem");
    return t;
}

static void test_round_trip(void **state)
{
    (void)state;
    hs_transcript *t = sample(), *back;
    assert_non_null(t);
    char *json, *json2;
    hs_error e;
    assert_int_equal(hs_transcript_to_json(t, &json, &e), HS_OK);
    assert_int_equal(hs_transcript_parse(json, strlen(json), "t.json", &back, &e), HS_OK);
    assert_int_equal(back->threshold, 2);
    assert_int_equal(back->n_holders, 3);
    assert_memory_equal(back->kcv, t->kcv, 3);
    assert_memory_equal(back->set_id, t->set_id, sizeof t->set_id);
    assert_string_equal(back->holders[2].name, "holder 2");
    assert_memory_equal(back->holders[1].file.sha256, t->holders[1].file.sha256, 32);
    assert_int_equal(back->credentials[3].role, HS_ROLE_OPERATOR);
    assert_string_equal(back->audit_pem, t->audit_pem);
    assert_int_equal(back->version, HS_TRANSCRIPT_VERSION);
    assert_int_equal(back->holders[2].x, 202);
    assert_memory_equal(back->holders[1].commitment, t->holders[1].commitment, 32);
    assert_memory_equal(back->holders[1].salt, t->holders[1].salt, HS_TRANSCRIPT_SALT_LEN);
    assert_string_equal(back->tokens[1].firmware, "2.6");
    assert_string_equal(back->tokens[1].hardware, "2.1");
    assert_int_equal(back->n_libs, 2);
    assert_string_equal(back->libs[1].path, "/usr/lib/libcrypto.so.3");
    assert_memory_equal(back->module.sha256, t->module.sha256, 32);
    assert_true(back->holders_may_hold_roles);
    assert_false(back->memory_locked);
    assert_int_equal(hs_transcript_to_json(back, &json2, &e), HS_OK);
    assert_string_equal(json, json2); /* what is read is all that was written */
    free(json);
    free(json2);
    hs_transcript_free(back);
    hs_transcript_free(t);
}

/* Issue 14: the module's configuration string and the wrap key's canary,
 * optional, read back as written; absent when not set (older readers of
 * a SoftHSM ceremony's transcript see no new field). */
static void test_init_args_and_canary(void **state)
{
    (void)state;
    hs_transcript *t = sample(), *back;
    assert_non_null(t);
    char *json, *json2, *text;
    hs_error e;
    assert_int_equal(hs_transcript_to_json(t, &json, &e), HS_OK);
    assert_null(strstr(json, "init_args"));
    assert_null(strstr(json, "canary"));
    free(json);
    snprintf(t->module_init_args, sizeof t->module_init_args,
             "configdir='sql:/x' certPrefix='' keyPrefix='' secmod='secmod.db' flags=");
    memset(t->wrap_canary, 0xa5, 40);
    t->wrap_canary_len = 40;
    assert_int_equal(hs_transcript_to_json(t, &json, &e), HS_OK);
    assert_int_equal(hs_transcript_parse(json, strlen(json), "t.json", &back, &e), HS_OK);
    assert_string_equal(back->module_init_args, t->module_init_args);
    assert_int_equal(back->wrap_canary_len, 40);
    assert_memory_equal(back->wrap_canary, t->wrap_canary, 40);
    assert_int_equal(hs_transcript_to_json(back, &json2, &e), HS_OK);
    assert_string_equal(json, json2);
    assert_int_equal(hs_transcript_to_text(t, &text, &e), HS_OK);
    assert_non_null(strstr(text, "C_Initialize pReserved): configdir='sql:/x'"));
    assert_non_null(strstr(text, "canary (RFC 5649"));
    free(text);
    free(json);
    free(json2);
    hs_transcript_free(back);
    hs_transcript_free(t);
}

static void expect_bad(const char *json, const char *needle)
{
    hs_transcript *t = NULL;
    hs_error e;
    hs_result r = hs_transcript_parse(json, strlen(json), "bad.json", &t, &e);
    if (r != HS_E_FORMAT || strstr(e.msg, needle) == NULL)
        fail_msg("expected a format error with '%s', got %d: %s", needle, r, e.msg);
    assert_null(t);
}

/* Replaces the first occurrence of from in s by to (a fresh string). */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    char *out = malloc(strlen(s) + strlen(to) + 1);
    size_t head = (size_t)(at - s);
    memcpy(out, s, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static void test_strict(void **state)
{
    (void)state;
    hs_transcript *t = sample();
    char *json, *bad;
    hs_error e;
    assert_int_equal(hs_transcript_to_json(t, &json, &e), HS_OK);
    bad = replace(json, "\"version\": 2", "\"version\": 3");
    expect_bad(bad, "unsupported version 3");
    free(bad);
    bad = replace(json, "hsmsign-ceremony-transcript", "something-else");
    expect_bad(bad, "not an hsmsign ceremony transcript");
    free(bad);
    bad = replace(json, "\"ceremony\":", "\"extra\": 1, \"ceremony\":");
    expect_bad(bad, "missing or unknown top-level field");
    free(bad);
    bad = replace(json, "\"check_value\": \"123456\"", "\"check_value\": \"1234\"");
    expect_bad(bad, "wrap_key");
    free(bad);
    bad = replace(json, "\"count\": 3", "\"count\": 4");
    expect_bad(bad, "shares");
    free(bad);
    bad = replace(json, "\"threshold\": 2", "\"threshold\": 1");
    expect_bad(bad, "shares");
    free(bad);
    bad = replace(json, "\"x\": 201", "\"x\": 0");
    expect_bad(bad, "commitment");
    free(bad);
    bad = replace(json, "\"firmware\": \"2.6\"", "\"firmware\": 26");
    expect_bad(bad, "firmware");
    free(bad);
    expect_bad("{\"format\": ", "bad.json");
    free(json);
    hs_transcript_free(t);
}

static void test_text(void **state)
{
    (void)state;
    hs_transcript *t = sample();
    char *text;
    hs_error e;
    assert_int_equal(hs_transcript_to_text(t, &text, &e), HS_OK);
    assert_non_null(strstr(text, "check value (KCV) 123456"));
    assert_non_null(strstr(text, "SHARES: 2 of 3 needed"));
    assert_non_null(strstr(text, "holder 1"));
    assert_non_null(strstr(text, "BEGIN PUBLIC KEY"));
    free(text);
    hs_transcript_free(t);
}

static void write_file(const char *path, const void *data, size_t len)
{
    hs_error e;
    assert_int_equal(hs_write_file_atomic(path, data, len, 0600, false, &e), HS_OK);
}

static void sign_file(EVP_PKEY *key, const char *json, const char *sig_path)
{
    uint8_t sig[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(c, NULL, NULL, NULL, key), 1);
    assert_int_equal(EVP_DigestSign(c, sig, &sig_len, (const uint8_t *)json, strlen(json)), 1);
    EVP_MD_CTX_free(c);
    write_file(sig_path, sig, sig_len);
}

static void write_pem(EVP_PKEY *key, const char *path)
{
    char *pem;
    uint8_t fp[32];
    hs_error e;
    assert_int_equal(hs_auditkey_public_pem(key, &pem, fp, &e), HS_OK);
    write_file(path, pem, strlen(pem));
    free(pem);
}

static hs_result load(const char *path, const char *pem, bool unsigned_ok, bool *checked,
                      hs_error *e)
{
    hs_transcript_trust trust = {.audit_key = pem, .allow_unsigned = unsigned_ok};
    hs_transcript *back = NULL;
    hs_result r = hs_transcript_load(path, &trust, &back, checked, e);
    assert_true(r == HS_OK ? back != NULL : back == NULL);
    hs_transcript_free(back);
    return r;
}

/* The signature is checked with the pinned key only: unsigned, re-signed
 * with another key (which the transcript then names), or damaged is
 * refused; --unsigned-transcript is the only way past. */
static void test_signature(void **state)
{
    (void)state;
    hs_transcript *t = sample();
    char *json;
    hs_error e;
    assert_int_equal(hs_transcript_to_json(t, &json, &e), HS_OK);
    char dir[] = "/tmp/hs-transcript-XXXXXX", path[128], sig_path[160], pem[160], other_pem[160];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/transcript.json", dir);
    snprintf(sig_path, sizeof sig_path, "%s.sig", path);
    snprintf(pem, sizeof pem, "%s/auditor.pem", dir);
    snprintf(other_pem, sizeof other_pem, "%s/other.pem", dir);
    write_file(path, json, strlen(json));
    write_pem(ed_key, pem);

    bool checked = true;
    assert_int_equal(load(path, pem, false, &checked, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "no signature"));
    assert_int_equal(load(path, NULL, false, &checked, &e), HS_E_USAGE);
    assert_int_equal(load(path, pem, true, &checked, &e), HS_OK);
    assert_false(checked);

    sign_file(ed_key, json, sig_path);
    assert_int_equal(load(path, pem, false, &checked, &e), HS_OK);
    assert_true(checked);

    /* Another key signs a transcript that names it: still refused. */
    EVP_PKEY *other = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
    assert_int_equal(EVP_PKEY_keygen(kc, &other), 1);
    EVP_PKEY_CTX_free(kc);
    hs_transcript *forged = sample();
    uint8_t fp[32];
    free(forged->audit_pem);
    assert_int_equal(hs_auditkey_public_pem(other, &forged->audit_pem, fp, &e), HS_OK);
    memcpy(forged->audit_fingerprint, fp, 32);
    char *fjson;
    assert_int_equal(hs_transcript_to_json(forged, &fjson, &e), HS_OK);
    write_file(path, fjson, strlen(fjson));
    sign_file(other, fjson, sig_path);
    assert_int_equal(load(path, pem, false, &checked, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "signature"));
    /* The pinned key signs, but the transcript names another audit key. */
    sign_file(ed_key, fjson, sig_path);
    assert_int_equal(load(path, pem, false, &checked, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "not the pinned auditor's key"));
    write_pem(other, other_pem);
    sign_file(other, fjson, sig_path);
    assert_int_equal(load(path, other_pem, false, &checked, &e), HS_OK);

    write_file(path, json, strlen(json));
    sign_file(ed_key, json, sig_path);
    FILE *f = fopen(sig_path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 10, SEEK_SET), 0);
    assert_int_equal(fputc(0x55, f), 0x55);
    fclose(f);
    assert_int_equal(load(path, pem, false, &checked, &e), HS_E_VERIFY);
    assert_int_equal(load(path, pem, true, &checked, &e), HS_E_VERIFY); /* a bad one is not "unsigned" */
    EVP_PKEY_free(other);
    hs_transcript_free(forged);
    free(fjson);
    unlink(sig_path);
    unlink(path);
    unlink(pem);
    unlink(other_pem);
    rmdir(dir);
    free(json);
    hs_transcript_free(t);
}

/* Version 1 transcripts (made before commitments) are still read: an old
 * wrap key must stay restorable and upgradable. */
static void test_reads_version_1(void **state)
{
    (void)state;
    hs_transcript *t = sample(), *back;
    char *json;
    hs_error e;
    assert_int_equal(hs_transcript_to_json(t, &json, &e), HS_OK);
    json_t *o = json_loads(json, 0, NULL);
    json_object_set_new(o, "version", json_integer(1));
    json_object_del(o, "holders_may_hold_roles");
    json_object_del(o, "memory_locked");
    json_object_del(json_object_get(o, "tool"), "libraries");
    json_object_del(json_object_get(o, "tool"), "pkcs11_module");
    json_object_del(json_object_get(o, "wrap_key"), "profile"); /* v2 and later */
    for (size_t i = 0; i < 2; i++) {
        json_object_del(json_array_get(json_object_get(o, "tokens"), i), "firmware");
        json_object_del(json_array_get(json_object_get(o, "tokens"), i), "hardware");
    }
    json_t *h = json_object_get(json_object_get(o, "shares"), "holders");
    for (size_t i = 0; i < json_array_size(h); i++) {
        json_object_del(json_array_get(h, i), "x");
        json_object_del(json_array_get(h, i), "commitment_salt");
        json_object_del(json_array_get(h, i), "commitment");
    }
    char *v1 = json_dumps(o, 0);
    assert_int_equal(hs_transcript_parse(v1, strlen(v1), "v1.json", &back, &e), HS_OK);
    assert_int_equal(back->version, 1);
    assert_int_equal(back->holders[0].x, 0);
    hs_transcript_free(back);
    /* A version 2 transcript lacking a commitment is malformed. */
    json_object_set_new(o, "version", json_integer(2));
    free(v1);
    v1 = json_dumps(o, 0);
    assert_int_equal(hs_transcript_parse(v1, strlen(v1), "v2.json", &back, &e), HS_E_FORMAT);
    json_decref(o);
    free(v1);
    free(json);
    hs_transcript_free(t);
}

/* An aborted ceremony's record is refused by name: its shares are void. */
static void test_aborted_record(void **state)
{
    (void)state;
    hs_transcript *t = sample(), *back = NULL;
    const char *done[2] = {"checking", "writing shares"};
    char *json;
    hs_error e;
    assert_int_equal(hs_transcript_aborted_json(t, done, 2, "backup token: importing", "boom",
                                                &json, &e), HS_OK);
    assert_int_equal(hs_transcript_parse(json, strlen(json), "a.json", &back, &e), HS_E_VERIFY);
    assert_null(back);
    assert_non_null(strstr(e.msg, "ABORTED"));
    assert_non_null(strstr(e.msg, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a is void"));
    assert_non_null(strstr(e.msg, "backup token: importing"));
    free(json);
    hs_transcript_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_init_args_and_canary),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_reads_version_1),
        cmocka_unit_test(test_aborted_record),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
