/* bech32: BIP-173 test vectors (valid and invalid strings), age's
 * lifting of the 90-character limit, 8-bit conversion rules, and a known
 * answer produced by age-keygen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vectors.h"

#include "backup/bech32.h"

/* BIP-173, "Test vectors": valid Bech32 strings (checksum level). */
static const char *const VALID[] = {
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
};

/* BIP-173 invalid strings, with the reason each is invalid. */
static const char *const INVALID[] = {
    "\x20" "1nwldj5",   /* HRP character out of range */
    "\x7f" "1axkwrx",   /* HRP character out of range */
    "\x80" "1eym55h",   /* HRP character out of range */
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
                        /* overall max length exceeded */
    "pzry9x0s0muk",     /* no separator character */
    "1pzry9x0s0muk",    /* empty HRP */
    "x1b4n0q5v",        /* invalid data character */
    "li1dgmt3",         /* too short checksum */
    "de1lg7wt" "\xff",  /* invalid character in checksum */
    "A1G7SGD8",         /* checksum calculated with uppercase form of HRP */
    "10a06t8",          /* empty HRP */
    "1qzzfhee",         /* empty HRP */
};

static void bip173_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VALID / sizeof VALID[0]; i++) {
        char hrp[100];
        uint8_t words[100];
        size_t n;
        hs_error e;
        hs_result rc = hs_bech32_decode_words(VALID[i], HS_BECH32_BIP173_MAX_LEN, hrp, sizeof hrp,
                                              words, sizeof words, &n, &e);
        if (rc != HS_OK)
            print_message("valid vector %zu rejected: %s\n", i, e.msg);
        assert_int_equal(rc, HS_OK);
        /* The human-readable part is everything before the last '1'. */
        const char *sep = strrchr(VALID[i], '1');
        assert_int_equal(strlen(hrp), (size_t)(sep - VALID[i]));
        assert_int_equal(n, strlen(sep + 1) - 6);
    }
}

static void bip173_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof INVALID / sizeof INVALID[0]; i++) {
        char hrp[100];
        uint8_t words[100];
        size_t n;
        hs_error e;
        hs_result rc = hs_bech32_decode_words(INVALID[i], HS_BECH32_BIP173_MAX_LEN, hrp,
                                              sizeof hrp, words, sizeof words, &n, &e);
        if (rc == HS_OK)
            print_message("invalid vector %zu accepted\n", i);
        assert_int_equal(rc, HS_E_FORMAT);
    }
}

/* The 84-character-HRP vector is invalid only for its length: with age's
 * unlimited mode its checksum verifies. */
static void no_length_limit_for_age(void **state)
{
    (void)state;
    char hrp[100];
    uint8_t words[100];
    size_t n;
    hs_error e;
    assert_int_equal(hs_bech32_decode_words(INVALID[3], HS_BECH32_NO_LIMIT, hrp, sizeof hrp,
                                            words, sizeof words, &n, &e),
                     HS_OK);
    assert_int_equal(strlen(hrp), 84);
}

static void mixed_case_rejected(void **state)
{
    (void)state;
    char hrp[16];
    uint8_t words[16];
    size_t n;
    hs_error e;
    assert_int_equal(hs_bech32_decode_words("A12uEL5L", 0, hrp, sizeof hrp, words, sizeof words,
                                            &n, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "mixed"));
}

/* Known answer from the age CLI: `age-keygen -y` on this CCTV identity. */
/* The identity comes from the vector file at run time (tests/vectors/age/x25519). */
static char *VECTOR_IDENTITY;
static const char VECTOR_RECIPIENT[] =
    "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef";

static void round_trip_age_identity(void **state)
{
    (void)state;
    char hrp[32];
    uint8_t key[32];
    size_t n;
    hs_error e;
    assert_int_equal(hs_bech32_decode(VECTOR_IDENTITY, 0, hrp, sizeof hrp, key, sizeof key, &n,
                                      &e),
                     HS_OK);
    assert_string_equal(hrp, "age-secret-key-");
    assert_int_equal(n, 32);
    char out[100];
    assert_int_equal(hs_bech32_encode("AGE-SECRET-KEY-", key, n, true, out, sizeof out, &e),
                     HS_OK);
    assert_string_equal(out, VECTOR_IDENTITY);
    assert_int_equal(hs_bech32_encoded_size(15, 32), strlen(VECTOR_IDENTITY) + 1);

    /* Too small a buffer is refused, never overrun. */
    assert_int_equal(hs_bech32_encode("age", key, n, false, out, 20, &e), HS_E_INTERNAL);
}

static void recipient_decodes_to_32_bytes(void **state)
{
    (void)state;
    char hrp[8];
    uint8_t pub[32];
    size_t n;
    hs_error e;
    assert_int_equal(hs_bech32_decode(VECTOR_RECIPIENT, 0, hrp, sizeof hrp, pub, sizeof pub, &n,
                                      &e),
                     HS_OK);
    assert_string_equal(hrp, "age");
    assert_int_equal(n, 32);
    /* A one-character typo breaks the checksum. */
    char typo[sizeof VECTOR_RECIPIENT];
    memcpy(typo, VECTOR_RECIPIENT, sizeof typo);
    typo[10] = typo[10] == 'q' ? 'p' : 'q';
    assert_int_equal(hs_bech32_decode(typo, 0, hrp, sizeof hrp, pub, sizeof pub, &n, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "checksum"));
    /* Data that does not fit the caller's buffer is refused. */
    assert_int_equal(hs_bech32_decode(VECTOR_RECIPIENT, 0, hrp, sizeof hrp, pub, 31, &n, &e),
                     HS_E_FORMAT);
}

/* An independent checksum (BIP-173 reference algorithm) to build strings
 * with chosen data words. */
static uint32_t ref_polymod(const uint8_t *v, size_t n)
{
    static const uint32_t g[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    uint32_t chk = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ v[i];
        for (int j = 0; j < 5; j++)
            chk ^= ((b >> j) & 1) ? g[j] : 0;
    }
    return chk;
}

static void make_string(const uint8_t *words, size_t n, char *out)
{
    static const char cs[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    uint8_t v[64] = {3, 3, 3, 0, 1, 7, 5}; /* "age" expanded */
    memcpy(v + 7, words, n);
    memset(v + 7 + n, 0, 6);
    uint32_t mod = ref_polymod(v, 7 + n + 6) ^ 1;
    strcpy(out, "age1");
    size_t o = 4;
    for (size_t i = 0; i < n; i++)
        out[o++] = cs[words[i]];
    for (int i = 0; i < 6; i++)
        out[o++] = cs[(mod >> (5 * (5 - i))) & 31];
    out[o] = '\0';
}

static void padding_rules(void **state)
{
    (void)state;
    char s[64], hrp[8];
    uint8_t data[8];
    size_t n;
    hs_error e;
    /* Two words = 10 bits: one byte and 2 zero padding bits. */
    uint8_t ok[2] = {0x1f, 0x1c};
    make_string(ok, 2, s);
    assert_int_equal(hs_bech32_decode(s, 0, hrp, sizeof hrp, data, sizeof data, &n, &e), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(data[0], 0xff);
    /* Same with a non-zero padding bit. */
    uint8_t nonzero[2] = {0x1f, 0x1d};
    make_string(nonzero, 2, s);
    assert_int_equal(hs_bech32_decode(s, 0, hrp, sizeof hrp, data, sizeof data, &n, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "padding"));
    /* Three words = 15 bits: 7 bits of padding is more than 4. */
    uint8_t toolong[3] = {0x1f, 0x1c, 0x00};
    make_string(toolong, 3, s);
    assert_int_equal(hs_bech32_decode(s, 0, hrp, sizeof hrp, data, sizeof data, &n, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "padding"));
}

int main(void)
{
    VECTOR_IDENTITY = test_vector_header("age/x25519", "identity");
    if (VECTOR_IDENTITY == NULL) {
        fprintf(stderr, "cannot read the identity of tests/vectors/age/x25519\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bip173_valid),
        cmocka_unit_test(bip173_invalid),
        cmocka_unit_test(no_length_limit_for_age),
        cmocka_unit_test(mixed_case_rejected),
        cmocka_unit_test(round_trip_age_identity),
        cmocka_unit_test(recipient_decodes_to_32_bytes),
        cmocka_unit_test(padding_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
