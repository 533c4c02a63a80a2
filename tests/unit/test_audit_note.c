/* Signed notes, checkpoints, the log's leaves and inclusion proofs, with
 * the Go sumdb/note reference vector (tests/vectors/note). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "audit/checkpoint.h"
#include "audit/log.h"
#include "audit/note.h"
#include "audit/proof.h"
#include "util/encoding.h"
#include "util/file.h"

static char *read_vector(const char *name, size_t *len)
{
    const char *dir = getenv("HSMSIGN_VECTORS");
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/note/%s", dir, name);
    uint8_t *data;
    size_t n;
    hs_error e;
    assert_int_equal(hs_read_file(path, 65536, &data, &n, &e), HS_OK);
    if (len != NULL)
        *len = n;
    return (char *)data;
}

/* "name+id+base64(0x01 || 32 bytes)", after `plus_before` '+' signs (2 for
 * a verifier key, 4 with the PRIVATE+KEY+ prefix; the base64 may itself
 * hold '+'): the 32 key bytes. */
static void key_bytes(const char *key, unsigned plus_before, uint8_t out[32])
{
    const char *b64 = key;
    for (unsigned i = 0; i < plus_before; i++) {
        b64 = strchr(b64, '+');
        assert_non_null(b64);
        b64++;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%s", b64);
    buf[strcspn(buf, "\n")] = '\0';
    uint8_t *raw;
    size_t len;
    assert_true(hs_base64_decode(buf, &raw, &len));
    assert_int_equal(len, 33);
    assert_int_equal(raw[0], 0x01);
    memcpy(out, raw + 1, 32);
    free(raw);
}

static EVP_PKEY *go_public(void)
{
    char *vkey = read_vector("peterneumann.vkey", NULL);
    uint8_t raw[32];
    key_bytes(vkey, 2, raw);
    free(vkey);
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
    assert_non_null(k);
    return k;
}

static EVP_PKEY *go_private(void)
{
    char *skey = read_vector("peterneumann.skey", NULL);
    uint8_t seed[32];
    key_bytes(skey, 4, seed);
    free(skey);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    assert_non_null(k);
    return k;
}

static void sign_with(EVP_PKEY *k, const char *text, uint8_t *sig, size_t *sig_len)
{
    bool ed = EVP_PKEY_get_id(k) == EVP_PKEY_ED25519;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(c, NULL, ed ? NULL : EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(c, sig, sig_len, (const uint8_t *)text, strlen(text)), 1);
    EVP_MD_CTX_free(c);
}

static void test_go_vector_key_id_and_verify(void **state)
{
    (void)state;
    EVP_PKEY *pub = go_public();
    hs_error e;
    uint32_t id;
    assert_int_equal(hs_note_key_id("PeterNeumann", pub, &id, &e), HS_OK);
    assert_int_equal(id, 0xc74f20a3u);
    size_t len, text_len;
    char *note = read_vector("peterneumann.note", &len);
    assert_int_equal(hs_note_verify(note, len, "PeterNeumann", pub, &text_len, &e), HS_OK);
    assert_int_equal(text_len, strlen("If you think cryptography is the answer to your problem,\n"
                                      "then you don't know what your problem is.\n"));
    /* Signed by "PeterNeumann", not by another name. */
    assert_int_equal(hs_note_verify(note, len, "EnochRoot", pub, &text_len, &e), HS_E_VERIFY);
    /* One byte of the text changed. */
    note[3] ^= 1;
    assert_int_equal(hs_note_verify(note, len, "PeterNeumann", pub, &text_len, &e), HS_E_VERIFY);
    note[3] ^= 1;
    /* No blank line before the signatures. */
    char *blank = strstr(note, "\n\n");
    assert_non_null(blank);
    blank[1] = 'x';
    assert_int_equal(hs_note_verify(note, len, "PeterNeumann", pub, &text_len, &e), HS_E_FORMAT);
    free(note);
    EVP_PKEY_free(pub);
}

static void test_go_vector_reproduced(void **state)
{
    (void)state;
    EVP_PKEY *priv = go_private();
    const char *text = "If you think cryptography is the answer to your problem,\n"
                       "then you don't know what your problem is.\n";
    uint8_t sig[64];
    size_t sig_len = sizeof sig;
    sign_with(priv, text, sig, &sig_len);
    char *note;
    hs_error e;
    assert_int_equal(hs_note_assemble(text, "PeterNeumann", priv, sig, sig_len, &note, &e), HS_OK);
    size_t len;
    char *want = read_vector("peterneumann.note", &len);
    assert_int_equal(strlen(note), len);
    assert_memory_equal(note, want, len);
    free(note);
    free(want);
    EVP_PKEY_free(priv);
}

static void test_ecdsa_note_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    const char *text = "example.org/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    uint8_t sig[80];
    size_t sig_len = sizeof sig;
    sign_with(k, text, sig, &sig_len);
    char *note;
    hs_error e;
    size_t text_len;
    assert_int_equal(hs_note_assemble(text, "example.org/log", k, sig, sig_len, &note, &e), HS_OK);
    assert_int_equal(hs_note_verify(note, strlen(note), "example.org/log", k, &text_len, &e), HS_OK);
    assert_int_equal(text_len, strlen(text));
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_int_equal(hs_note_verify(note, strlen(note), "example.org/log", other, &text_len, &e),
                     HS_E_VERIFY);
    EVP_PKEY_free(other);
    free(note);
    EVP_PKEY_free(k);
}

static void test_checkpoint_format_parse(void **state)
{
    (void)state;
    hs_checkpoint c = {.size = 12345};
    snprintf(c.origin, sizeof c.origin, "hsmsign.audit/abc");
    for (unsigned i = 0; i < sizeof c.root; i++)
        c.root[i] = (uint8_t)i;
    char *text;
    hs_error e;
    assert_int_equal(hs_checkpoint_format(&c, &text, &e), HS_OK);
    assert_string_equal(text, "hsmsign.audit/abc\n12345\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    hs_checkpoint back;
    assert_int_equal(hs_checkpoint_parse(text, strlen(text), &back, &e), HS_OK);
    assert_memory_equal(&back, &c, sizeof c);
    free(text);
    static const char *const bad[] = {
        "o\n012\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", /* leading zero */
        "o\n12\nAAECAw==\n",                                    /* short root */
        "o\n12\n",                                              /* no root */
        "\n12\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",   /* empty origin */
        "o\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hs_checkpoint_parse(bad[i], strlen(bad[i]), &back, &e), HS_E_FORMAT);
}

/* A log of n entries with correct sequence numbers, as bytes. */
static hs_auditlog make_log(size_t n)
{
    char *buf = malloc(64 * n + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(buf + len, "{\"op\":\"sign\",\"seq\":%zu}\n", i);
    hs_auditlog log;
    hs_error e;
    assert_int_equal(hs_auditlog_from_bytes((uint8_t *)buf, len, &log, &e), HS_OK);
    assert_int_equal(log.count, n);
    return log;
}

static char *signed_checkpoint(const hs_auditlog *log, EVP_PKEY *k)
{
    hs_checkpoint c = {.size = log->count};
    snprintf(c.origin, sizeof c.origin, "test.example/log");
    hs_error e;
    assert_int_equal(hs_merkle_root(log->leaves, log->count, c.root, &e), HS_OK);
    char *text, *note;
    assert_int_equal(hs_checkpoint_format(&c, &text, &e), HS_OK);
    uint8_t sig[64];
    size_t sig_len = sizeof sig;
    sign_with(k, text, sig, &sig_len);
    assert_int_equal(hs_note_assemble(text, c.origin, k, sig, sig_len, &note, &e), HS_OK);
    free(text);
    return note;
}

static void test_log_checkpoint_and_proofs(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    hs_auditlog log = make_log(7);
    hs_error e;
    assert_int_equal(hs_auditlog_check_entries(&log, &e), HS_OK);
    char *note = signed_checkpoint(&log, k);
    hs_checkpoint cp;
    assert_int_equal(hs_auditlog_check_checkpoint(&log, note, strlen(note), k, &cp, &e), HS_OK);
    assert_int_equal(cp.size, 7);
    for (size_t i = 0; i < 7; i++) {
        char *proof;
        assert_int_equal(hs_proof_make(&log, i, note, strlen(note), &proof, &e), HS_OK);
        hs_proof_result res;
        assert_int_equal(hs_proof_verify(proof, strlen(proof), k, &res, &e), HS_OK);
        assert_int_equal(res.index, i);
        size_t len;
        const char *entry = hs_auditlog_entry(&log, i, &len);
        assert_int_equal(res.entry_len, len);
        assert_memory_equal(res.entry, entry, len);
        hs_proof_result_free(&res);
        /* The same proof claimed for the next index fails. */
        char *idx = strstr(proof, "index ");
        idx[6] = (char)('0' + (i + 1) % 7);
        assert_int_equal(hs_proof_verify(proof, strlen(proof), k, &res, &e), HS_E_VERIFY);
        free(proof);
    }
    /* A shorter log (the last entry removed) no longer matches. */
    hs_auditlog shorter = make_log(6);
    assert_int_equal(hs_auditlog_check_checkpoint(&shorter, note, strlen(note), k, &cp, &e),
                     HS_E_VERIFY);
    /* A longer log that extends it still does. */
    hs_auditlog longer = make_log(9);
    assert_int_equal(hs_auditlog_check_checkpoint(&longer, note, strlen(note), k, &cp, &e), HS_OK);
    /* Another key's view fails. */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_int_equal(hs_auditlog_check_checkpoint(&log, note, strlen(note), other, &cp, &e),
                     HS_E_VERIFY);
    EVP_PKEY_free(other);
    hs_auditlog_free(&shorter);
    hs_auditlog_free(&longer);
    free(note);
    hs_auditlog_free(&log);
    EVP_PKEY_free(k);
}

static void test_log_sequence_and_torn_line(void **state)
{
    (void)state;
    const char text[] = "{\"seq\":0}\n{\"seq\":2}\n{\"seq\":1}\n{\"seq\":3";
    uint8_t *buf = malloc(sizeof text);
    memcpy(buf, text, sizeof text);
    hs_auditlog log;
    hs_error e;
    assert_int_equal(hs_auditlog_from_bytes(buf, sizeof text - 1, &log, &e), HS_OK);
    assert_int_equal(log.count, 3);
    assert_true(log.torn);
    assert_int_equal(hs_auditlog_check_entries(&log, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "sequence number 2, expected 1"));
    hs_auditlog_free(&log);
}

/* The one-pass prefix roots agree with the tree code that reproduces the
 * RFC 6962 vectors (test_merkle), for every size up to 70, and sizes out
 * of order are refused. */
static void test_prefix_roots(void **state)
{
    (void)state;
    hs_auditlog log = make_log(70);
    hs_error e;
    uint64_t sizes[71];
    uint8_t roots[71 * HS_MERKLE_HASH_LEN];
    for (size_t m = 0; m <= log.count; m++)
        sizes[m] = m;
    assert_int_equal(hs_auditlog_roots(&log, sizes, log.count + 1, roots, &e), HS_OK);
    for (size_t m = 0; m <= log.count; m++) {
        uint8_t want[HS_MERKLE_HASH_LEN];
        assert_int_equal(hs_merkle_root(log.leaves, m, want, &e), HS_OK);
        assert_memory_equal(roots + m * HS_MERKLE_HASH_LEN, want, HS_MERKLE_HASH_LEN);
    }
    uint64_t bad[2] = {5, 4};
    assert_int_not_equal(hs_auditlog_roots(&log, bad, 2, roots, &e), HS_OK);
    hs_auditlog_free(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_vector_key_id_and_verify),
        cmocka_unit_test(test_go_vector_reproduced),
        cmocka_unit_test(test_ecdsa_note_round_trip),
        cmocka_unit_test(test_checkpoint_format_parse),
        cmocka_unit_test(test_log_checkpoint_and_proofs),
        cmocka_unit_test(test_log_sequence_and_torn_line),
        cmocka_unit_test(test_prefix_roots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
