/* Passphrase recipients: "-> scrypt <base64 salt> <log2 N>".
 *
 * The wrap key is scrypt(passphrase, "age-encryption.org/v1/scrypt" ||
 * salt, N = 2^log2N, r = 8, p = 1), 32 bytes; the file key is encrypted
 * under it with ChaCha20-Poly1305, nonce zero. An scrypt stanza must be
 * the only stanza in a header (checked by the caller), so a passphrase
 * file cannot silently also be readable by someone else. */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "backup/age.h"
#include "backup/age_internal.h"
#include "util/secmem.h"

static const char STANZA_TYPE[] = "scrypt";
static const char SALT_LABEL[] = "age-encryption.org/v1/scrypt";
#define SALT_LEN 16
#define SCRYPT_R 8
#define SCRYPT_P 1

static hs_result derive(const char *passphrase, const uint8_t salt[SALT_LEN], int log2_work,
                        uint8_t key[AGE_AEAD_KEY_LEN], hs_error *e)
{
    uint8_t full_salt[sizeof SALT_LABEL - 1 + SALT_LEN];
    memcpy(full_salt, SALT_LABEL, sizeof SALT_LABEL - 1);
    memcpy(full_salt + sizeof SALT_LABEL - 1, salt, SALT_LEN);
    uint64_t n = (uint64_t)1 << log2_work;
    /* scrypt needs 128 * r * N bytes; allow that plus slack, since
     * libcrypto's default limit (32 MiB) is below age's usual 2^18. */
    uint64_t maxmem = 128 * SCRYPT_R * (n + 2) + (1u << 20);
    if (EVP_PBE_scrypt(passphrase, strlen(passphrase), full_salt, sizeof full_salt, n, SCRYPT_R,
                       SCRYPT_P, maxmem, key, AGE_AEAD_KEY_LEN) != 1)
        return hs_fail(e, HS_E_CRYPTO,
                       "age: scrypt with work factor 2^%d failed (out of memory?)", log2_work);
    return HS_OK;
}

hs_result age_scrypt_wrap(const char *passphrase, int log2_work,
                          const uint8_t file_key[AGE_FILE_KEY_LEN], age_stanza *out,
                          hs_error *e)
{
    static const uint8_t zero_nonce[AGE_AEAD_NONCE_LEN] = {0};
    uint8_t salt[SALT_LEN], key[AGE_AEAD_KEY_LEN];
    uint8_t body[AGE_FILE_KEY_LEN + AGE_AEAD_TAG_LEN];
    char salt_text[32], work_text[16];

    hs_result rc = age_random(salt, sizeof salt, e);
    if (rc == HS_OK)
        rc = derive(passphrase, salt, log2_work, key, e);
    if (rc == HS_OK)
        rc = age_aead_seal(key, zero_nonce, file_key, AGE_FILE_KEY_LEN, body, e);
    if (rc == HS_OK) {
        age_b64_encode(salt, sizeof salt, false, salt_text);
        snprintf(work_text, sizeof work_text, "%d", log2_work);
        const char *args[] = {STANZA_TYPE, salt_text, work_text, NULL};
        rc = age_stanza_new(out, args, body, sizeof body, e);
    }
    hs_wipe(key, sizeof key);
    return rc;
}

/* The work factor is a decimal number without sign or leading zero. */
static hs_result parse_work_factor(const char *text, int *log2_work, hs_error *e)
{
    size_t len = strlen(text);
    bool digits = len > 0 && len <= 9 && text[0] != '0';
    for (size_t i = 0; digits && i < len; i++)
        digits = text[i] >= '0' && text[i] <= '9';
    if (!digits)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: scrypt work factor \"%.20s\" is not a decimal number "
                       "from 1 without leading zeros",
                       text);
    long v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (text[i] - '0');
    if (v > HS_AGE_MAX_SCRYPT_LOG2_WORK)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: scrypt work factor 2^%ld exceeds the limit 2^%d (memory "
                       "and time double with each step: 2^22 already needs 4 GiB; a larger "
                       "value is refused as age refuses it, to stop denial of service)",
                       v, HS_AGE_MAX_SCRYPT_LOG2_WORK);
    *log2_work = (int)v;
    return HS_OK;
}

static hs_result unwrap_one(const char *passphrase, const age_stanza *s,
                            uint8_t file_key[AGE_FILE_KEY_LEN], bool *matched, hs_error *e)
{
    static const uint8_t zero_nonce[AGE_AEAD_NONCE_LEN] = {0};
    uint8_t salt[SALT_LEN + 1], key[AGE_AEAD_KEY_LEN];
    size_t salt_len = 0;
    int log2_work = 0;

    if (s->n_args != 3)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: scrypt stanza must have two arguments (salt, work factor), "
                       "has %zu",
                       s->n_args - 1);
    if (!age_b64_decode(s->args[1], strlen(s->args[1]), false, salt, sizeof salt, &salt_len) ||
        salt_len != SALT_LEN)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: scrypt salt is not 16 bytes of canonical base64");
    hs_result rc = parse_work_factor(s->args[2], &log2_work, e);
    if (rc != HS_OK)
        return rc;
    if (s->body_len != AGE_FILE_KEY_LEN + AGE_AEAD_TAG_LEN)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: scrypt stanza body is %zu bytes, expected %d (a 16-byte "
                       "file key and its tag)",
                       s->body_len, AGE_FILE_KEY_LEN + AGE_AEAD_TAG_LEN);
    rc = derive(passphrase, salt, log2_work, key, e);
    if (rc == HS_OK) {
        hs_error ignored;
        *matched = age_aead_open(key, zero_nonce, s->body, s->body_len, file_key, &ignored) ==
                   HS_OK;
    }
    hs_wipe(key, sizeof key);
    return rc;
}

hs_result age_scrypt_unwrap(const char *passphrase, const age_stanza *stanzas, size_t n,
                            uint8_t file_key[AGE_FILE_KEY_LEN], bool *matched, hs_error *e)
{
    hs_result rc = HS_OK;
    *matched = false;
    for (size_t i = 0; rc == HS_OK && !*matched && i < n; i++) {
        if (strcmp(stanzas[i].args[0], STANZA_TYPE) == 0)
            rc = unwrap_one(passphrase, &stanzas[i], file_key, matched, e);
    }
    return rc;
}
