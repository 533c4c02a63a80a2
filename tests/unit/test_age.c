/* age: keys, round trips at the chunk boundaries, armor, passphrases,
 * identity files, and the strict header parser on malformed input.
 * Conformance against external vectors is in test_age_vectors.c and
 * interoperability with the age CLI in tests/integration/age_interop.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vectors.h"

#include "backup/age.h"
#include "backup/age_internal.h"
#include "util/secmem.h"

/* CCTV identity and its recipient as `age-keygen -y` prints it. */
/* The identity comes from the vector file at run time (tests/vectors/age/x25519). */
static char *VECTOR_IDENTITY;
static const char VECTOR_RECIPIENT[] =
    "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef";

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + (i >> 8));
    return p;
}

static void keygen_and_recipient(void **state)
{
    (void)state;
    char *id = NULL, *rcpt = NULL, *again = NULL;
    hs_error e;
    assert_int_equal(hs_age_keygen(&id, &rcpt, &e), HS_OK);
    assert_true(strncmp(id, "AGE-SECRET-KEY-", 15) == 0 && id[15] == '1');
    assert_int_equal(strlen(id), 74);
    assert_true(strncmp(rcpt, "age1", 4) == 0);
    assert_int_equal(strlen(rcpt), 62);
    assert_int_equal(hs_age_identity_to_recipient(id, &again, &e), HS_OK);
    assert_string_equal(again, rcpt);
    assert_int_equal(hs_age_recipient_check(rcpt, &e), HS_OK);
    free(again);
    free(rcpt);
    hs_age_secret_free(id);

    assert_int_equal(hs_age_identity_to_recipient(VECTOR_IDENTITY, &again, &e), HS_OK);
    assert_string_equal(again, VECTOR_RECIPIENT);
    free(again);
}

static void bad_keys_rejected(void **state)
{
    (void)state;
    char *r = NULL;
    hs_error e;
    /* A recipient is not an identity, and vice versa. */
    assert_int_equal(hs_age_identity_to_recipient(VECTOR_RECIPIENT, &r, &e), HS_E_USAGE);
    assert_int_equal(hs_age_recipient_check(VECTOR_IDENTITY, &e), HS_E_USAGE);
    /* Lower-case identities and upper-case recipients are not what age writes. */
    char lower[128];
    assert_true(strlen(VECTOR_IDENTITY) < sizeof lower);
    for (size_t i = 0; i <= strlen(VECTOR_IDENTITY); i++)
        lower[i] = (char)((VECTOR_IDENTITY[i] >= 'A' && VECTOR_IDENTITY[i] <= 'Z')
                              ? VECTOR_IDENTITY[i] + 32
                              : VECTOR_IDENTITY[i]);
    assert_int_equal(hs_age_identity_to_recipient(lower, &r, &e), HS_E_USAGE);
    /* The error never repeats the secret. */
    assert_null(strstr(e.msg, "EGTZVFF"));
    assert_null(strstr(e.msg, "egtzvff"));
    assert_int_equal(hs_age_recipient_check("age1qqqq", &e), HS_E_USAGE);
    const char *pq = "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG";
    assert_int_equal(hs_age_identity_to_recipient(pq, &r, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "not supported"));
}

static void round_trip_size(size_t n, bool armor)
{
    const char *recipients[] = {VECTOR_RECIPIENT};
    const char *identities[] = {VECTOR_IDENTITY};
    uint8_t *plain = pattern(n), *enc = NULL, *dec = NULL;
    size_t enc_len = 0, dec_len = 0;
    hs_error e;
    assert_int_equal(hs_age_encrypt(recipients, 1, plain, n, armor, &enc, &enc_len, &e), HS_OK);
    if (armor)
        assert_true(memcmp(enc, "-----BEGIN AGE ENCRYPTED FILE-----\n", 35) == 0);
    else
        assert_true(memcmp(enc, "age-encryption.org/v1\n-> X25519 ", 32) == 0);
    assert_int_equal(hs_age_decrypt(identities, 1, NULL, enc, enc_len, &dec, &dec_len, &e),
                     HS_OK);
    assert_int_equal(dec_len, n);
    assert_memory_equal(dec, plain, n);
    hs_secure_free(dec, dec_len);
    free(enc);
    free(plain);
}

static void round_trips_at_chunk_boundaries(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 47, 48, 65535, 65536, 65537, 2 * 65536, 3 * 65536 + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        round_trip_size(sizes[i], false);
        round_trip_size(sizes[i], true);
    }
}

/* The payload length follows from the chunking rules: one tag per 64 KiB
 * chunk, a full last chunk when the size is a multiple of 64 KiB, and one
 * empty chunk only for an empty payload. */
static void payload_layout(void **state)
{
    (void)state;
    /* An empty payload may come as a NULL pointer. */
    const char *recipients[] = {VECTOR_RECIPIENT};
    const char *identities[] = {VECTOR_IDENTITY};
    uint8_t *enc = NULL, *dec = NULL;
    size_t enc_len = 0, dec_len = 1;
    hs_error e;
    assert_int_equal(hs_age_encrypt(recipients, 1, NULL, 0, false, &enc, &enc_len, &e), HS_OK);
    assert_int_equal(hs_age_decrypt(identities, 1, NULL, enc, enc_len, &dec, &dec_len, &e),
                     HS_OK);
    assert_int_equal(dec_len, 0);
    assert_non_null(dec);
    hs_secure_free(dec, dec_len);
    free(enc);

    assert_int_equal(age_stream_encrypted_len(0), 16 + 16);
    assert_int_equal(age_stream_encrypted_len(1), 16 + 1 + 16);
    assert_int_equal(age_stream_encrypted_len(65536), 16 + 65536 + 16);
    assert_int_equal(age_stream_encrypted_len(65537), 16 + 65537 + 32);
}

static void multiple_recipients(void **state)
{
    (void)state;
    char *ids[3], *rcpts[3];
    hs_error e;
    for (int i = 0; i < 3; i++)
        assert_int_equal(hs_age_keygen(&ids[i], &rcpts[i], &e), HS_OK);
    const uint8_t msg[] = "share 2 of 3";
    uint8_t *enc, *dec;
    size_t enc_len, dec_len;
    assert_int_equal(hs_age_encrypt((const char *const *)rcpts, 2, msg, sizeof msg, false, &enc,
                                    &enc_len, &e),
                     HS_OK);
    for (int i = 0; i < 2; i++) {
        const char *one[] = {ids[i]};
        assert_int_equal(hs_age_decrypt(one, 1, NULL, enc, enc_len, &dec, &dec_len, &e), HS_OK);
        assert_memory_equal(dec, msg, sizeof msg);
        hs_secure_free(dec, dec_len);
    }
    /* The third key is not a recipient; with it first, the second still works. */
    const char *wrong[] = {ids[2]};
    assert_int_equal(hs_age_decrypt(wrong, 1, NULL, enc, enc_len, &dec, &dec_len, &e),
                     HS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "no identity matched any recipient stanza"));
    assert_null(dec);
    const char *both[] = {ids[2], ids[1]};
    assert_int_equal(hs_age_decrypt(both, 2, NULL, enc, enc_len, &dec, &dec_len, &e), HS_OK);
    hs_secure_free(dec, dec_len);
    free(enc);
    for (int i = 0; i < 3; i++) {
        hs_age_secret_free(ids[i]);
        free(rcpts[i]);
    }
}

static void passphrase_round_trip(void **state)
{
    (void)state;
    const uint8_t msg[] = "wrap key share";
    uint8_t *enc, *dec;
    size_t enc_len, dec_len;
    hs_error e;
    assert_int_equal(hs_age_encrypt_passphrase("correct horse", 10, msg, sizeof msg, true, &enc,
                                               &enc_len, &e),
                     HS_OK);
    assert_int_equal(hs_age_decrypt(NULL, 0, "correct horse", enc, enc_len, &dec, &dec_len, &e),
                     HS_OK);
    assert_memory_equal(dec, msg, sizeof msg);
    hs_secure_free(dec, dec_len);
    assert_int_equal(hs_age_decrypt(NULL, 0, "wrong horse", enc, enc_len, &dec, &dec_len, &e),
                     HS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "wrong passphrase"));
    const char *ids[] = {VECTOR_IDENTITY};
    assert_int_equal(hs_age_decrypt(ids, 1, NULL, enc, enc_len, &dec, &dec_len, &e),
                     HS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "no passphrase was given"));
    free(enc);

    assert_int_equal(hs_age_encrypt_passphrase("pw", 23, msg, sizeof msg, false, &enc, &enc_len,
                                               &e),
                     HS_E_USAGE);
    assert_int_equal(hs_age_encrypt_passphrase("", 10, msg, sizeof msg, false, &enc, &enc_len,
                                               &e),
                     HS_E_USAGE);
}

/* ---------------------------------------------------- header parser */

static hs_result parse_text(const char *text, hs_error *e)
{
    age_header h;
    hs_result rc = age_header_parse((const uint8_t *)text, strlen(text), &h, e);
    if (rc == HS_OK)
        age_header_free(&h);
    return rc;
}

#define MAC_LINE "--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
#define INTRO "age-encryption.org/v1\n"
#define BODY43 "hjabGXwSLQ9c3S6Lw2i+S2Tu2fiwQHHslbBN6B41FLE\n"
#define FULL64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"

static void header_parser_accepts_canonical(void **state)
{
    (void)state;
    age_header h;
    hs_error e;
    const char *text = INTRO "-> X25519 abc\n" BODY43 "-> grease !\"#$%&'()*+,-./~\n"
                             FULL64 "\n" "-> empty\n\n" MAC_LINE "payload";
    assert_int_equal(age_header_parse((const uint8_t *)text, strlen(text), &h, &e), HS_OK);
    assert_int_equal(h.n_stanzas, 3);
    assert_string_equal(h.stanzas[0].args[0], "X25519");
    assert_int_equal(h.stanzas[0].n_args, 2);
    assert_int_equal(h.stanzas[0].body_len, 32);
    assert_int_equal(h.stanzas[1].body_len, 48);
    assert_int_equal(h.stanzas[2].body_len, 0);
    assert_int_equal(h.n_stanzas, 3);
    assert_memory_equal(text + h.payload_offset, "payload", 7);
    /* The MAC covers the header up to and including "---". */
    assert_memory_equal(text + h.mac_input_len - 3, "--- ", 4);
    age_header_free(&h);
}

static void header_parser_rejects_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *what, *text, *msg;
    } cases[] = {
        {"empty file", "", "empty"},
        {"wrong version", "age-encryption.org/v2\n-> X\n\n" MAC_LINE, "unsupported version"},
        {"CRLF intro", "age-encryption.org/v1\r\n-> X\n\n" MAC_LINE, "not an age v1 file"},
        {"no stanza", INTRO MAC_LINE, "no recipient stanza"},
        {"no arguments", INTRO "->\n\n" MAC_LINE, "stanza line"},
        {"missing space", INTRO "->X25519\n\n" MAC_LINE, "stanza line"},
        {"empty argument", INTRO "-> X25519  abc\n\n" MAC_LINE, "argument 2"},
        {"trailing space", INTRO "-> X25519 abc \n\n" MAC_LINE, "argument 3"},
        {"control character", INTRO "-> X25519 a\tb\n\n" MAC_LINE, "visible ASCII"},
        {"spurious CR", INTRO "-> X25519 abc\n" "hjabGXwSLQ9c3S6Lw2i+S2Tu2fiwQHHslbBN6B41FLE\r\n"
                        MAC_LINE, "base64"},
        {"padding in body", INTRO "-> X abc\nAA==\n" MAC_LINE, "base64"},
        {"non-canonical body", INTRO "-> X abc\nAB\n" MAC_LINE, "base64"},
        {"body line too long", INTRO "-> X\n" "A" FULL64 "\n" MAC_LINE, "longer than 64"},
        {"missing final line", INTRO "-> X\n" FULL64 MAC_LINE, "final short line"},
        {"missing body", INTRO "-> X\n" "-> Y\n\n" MAC_LINE, "final short line"},
        {"two short lines", INTRO "-> X\nAAAA\nAAAA\n" MAC_LINE, "neither a stanza"},
        {"garbage line", INTRO "-> X\n\nhello\n" MAC_LINE, "neither a stanza"},
        {"MAC without space", INTRO "-> X\n\n---AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
         "MAC line"},
        {"MAC extra space", INTRO "-> X\n\n---  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
         "MAC line"},
        {"MAC truncated", INTRO "-> X\n\n--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
         "MAC line"},
        {"MAC not canonical", INTRO "-> X\n\n--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\n",
         "canonical"},
        {"MAC missing", INTRO "-> X\n\n", "before the MAC line"},
        {"truncated MAC line", INTRO "-> X\n\n--- AAAA", "no line ending"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_error e;
        hs_error_clear(&e);
        hs_result rc = parse_text(cases[i].text, &e);
        if (rc != HS_E_FORMAT || strstr(e.msg, cases[i].msg) == NULL)
            print_message("case \"%s\": rc %d, message \"%s\"\n", cases[i].what, rc, e.msg);
        assert_int_equal(rc, HS_E_FORMAT);
        assert_non_null(strstr(e.msg, cases[i].msg));
        assert_non_null(strstr(e.msg, "age header"));
    }
}

/* -------------------------------------------- tampering with real files */

static void encrypt_vector_recipient(const uint8_t *msg, size_t n, uint8_t **enc,
                                     size_t *enc_len)
{
    const char *recipients[] = {VECTOR_RECIPIENT};
    hs_error e;
    assert_int_equal(hs_age_encrypt(recipients, 1, msg, n, false, enc, enc_len, &e), HS_OK);
}

static hs_result decrypt_vector_identity(const uint8_t *in, size_t len, hs_error *e)
{
    const char *ids[] = {VECTOR_IDENTITY};
    uint8_t *dec = NULL;
    size_t dec_len = 0;
    hs_result rc = hs_age_decrypt(ids, 1, NULL, in, len, &dec, &dec_len, e);
    if (dec != NULL)
        hs_secure_free(dec, dec_len);
    return rc;
}

static void tampering_detected(void **state)
{
    (void)state;
    const size_t n = 70000;
    uint8_t *msg = pattern(n), *enc;
    size_t enc_len;
    hs_error e;
    encrypt_vector_recipient(msg, n, &enc, &enc_len);
    assert_int_equal(decrypt_vector_identity(enc, enc_len, &e), HS_OK);

    /* A stanza added to the header: the MAC no longer matches. */
    const char *grease = "-> grease\n\n";
    const uint8_t *mac = memmem(enc, enc_len, "\n---", 4);
    assert_non_null(mac);
    size_t at = (size_t)(mac - enc) + 1;
    uint8_t *longer = malloc(enc_len + strlen(grease));
    memcpy(longer, enc, at);
    memcpy(longer + at, grease, strlen(grease));
    memcpy(longer + at + strlen(grease), enc + at, enc_len - at);
    assert_int_equal(decrypt_vector_identity(longer, enc_len + strlen(grease), &e), HS_E_VERIFY);
    assert_string_equal(e.msg, "age header: MAC mismatch (wrong identity or corrupted file)");
    free(longer);

    /* Payload: a flipped bit, a truncation, an extension. */
    enc[enc_len - 100] ^= 1;
    assert_int_equal(decrypt_vector_identity(enc, enc_len, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "chunk 1 failed authentication"));
    enc[enc_len - 100] ^= 1;
    assert_int_equal(decrypt_vector_identity(enc, enc_len - 1, &e), HS_E_VERIFY);
    /* Cut at the chunk boundary: the first chunk is not marked last. */
    size_t header_len = at + 3 + 1 + 43 + 1;
    assert_int_equal(decrypt_vector_identity(enc, header_len + 16 + 65536 + 16, &e),
                     HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "chunk 0"));
    /* Only the nonce, or part of it. */
    assert_int_equal(decrypt_vector_identity(enc, header_len + 16, &e), HS_E_FORMAT);
    assert_int_equal(decrypt_vector_identity(enc, header_len + 5, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "nonce"));

    uint8_t *ext = malloc(enc_len + 1);
    memcpy(ext, enc, enc_len);
    ext[enc_len] = 0;
    assert_int_equal(decrypt_vector_identity(ext, enc_len + 1, &e), HS_E_VERIFY);
    free(ext);
    free(enc);
    free(msg);
}

static void scrypt_must_be_alone(void **state)
{
    (void)state;
    const uint8_t msg[] = "x";
    uint8_t *enc;
    size_t enc_len;
    hs_error e;
    assert_int_equal(hs_age_encrypt_passphrase("pw", 2, msg, 1, false, &enc, &enc_len, &e),
                     HS_OK);
    /* Insert an X25519-looking stanza before the scrypt one. */
    const char *extra = "-> X25519 abc\n\n";
    size_t intro = strlen("age-encryption.org/v1\n");
    uint8_t *mixed = malloc(enc_len + strlen(extra));
    memcpy(mixed, enc, intro);
    memcpy(mixed + intro, extra, strlen(extra));
    memcpy(mixed + intro + strlen(extra), enc + intro, enc_len - intro);
    uint8_t *dec = NULL;
    size_t dec_len;
    assert_int_equal(hs_age_decrypt(NULL, 0, "pw", mixed, enc_len + strlen(extra), &dec,
                                    &dec_len, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "must be the only stanza"));
    free(mixed);
    free(enc);
    (void)msg;
}

/* ------------------------------------------------------- identity file */

static void identity_file(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof text,
             "# created: 2026-01-01T00:00:00Z\r\n# public key: %s\r\n%s\r\n\n%s",
             VECTOR_RECIPIENT, VECTOR_IDENTITY, VECTOR_IDENTITY);
    char **ids = NULL;
    size_t n = 0;
    hs_error e;
    assert_int_equal(hs_age_parse_identity_file((const uint8_t *)text, strlen(text), &ids, &n,
                                                &e),
                     HS_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], VECTOR_IDENTITY);
    assert_string_equal(ids[1], VECTOR_IDENTITY);
    hs_age_identities_free(ids, n);

    /* A truncated identity (not a key: five data characters). */
    const char *bad = "# comment\nAGE-SECRET-KEY-" "1QQQQ\n";
    assert_int_equal(hs_age_parse_identity_file((const uint8_t *)bad, strlen(bad), &ids, &n, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "line 2"));
    const char *none = "# only comments\n\n";
    assert_int_equal(hs_age_parse_identity_file((const uint8_t *)none, strlen(none), &ids, &n,
                                                &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "no identity"));
}

int main(void)
{
    VECTOR_IDENTITY = test_vector_header("age/x25519", "identity");
    if (VECTOR_IDENTITY == NULL) {
        fprintf(stderr, "cannot read the identity of tests/vectors/age/x25519\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keygen_and_recipient),
        cmocka_unit_test(bad_keys_rejected),
        cmocka_unit_test(round_trips_at_chunk_boundaries),
        cmocka_unit_test(payload_layout),
        cmocka_unit_test(multiple_recipients),
        cmocka_unit_test(passphrase_round_trip),
        cmocka_unit_test(header_parser_accepts_canonical),
        cmocka_unit_test(header_parser_rejects_malformed),
        cmocka_unit_test(tampering_detected),
        cmocka_unit_test(scrypt_must_be_alone),
        cmocka_unit_test(identity_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
