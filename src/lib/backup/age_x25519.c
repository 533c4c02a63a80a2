/* X25519 recipients ("age1...") and identities ("AGE-SECRET-KEY-...").
 *
 * Wrapping: an ephemeral key pair per file; the stanza carries the
 * ephemeral public key (the "share"), and the file key encrypted with
 * ChaCha20-Poly1305 under HKDF-SHA256(ikm = shared secret, salt = share ||
 * recipient, info = "age-encryption.org/v1/X25519"), nonce zero. */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "backup/age_internal.h"
#include "backup/bech32.h"
#include "util/encoding.h"
#include "util/secmem.h"

static const char RECIPIENT_HRP[] = "age";
static const char IDENTITY_HRP[] = "age-secret-key-";
static const char STANZA_TYPE[] = "X25519";
static const char WRAP_LABEL[] = "age-encryption.org/v1/X25519";

/* A key string the caller passed in is a usage error, whatever bech32
 * found wrong with it. */
static hs_result as_usage_error(hs_error *e, const char *context)
{
    if (e == NULL)
        return HS_E_USAGE;
    (void)hs_error_prefix(e, "%s", context);
    e->code = HS_E_USAGE;
    return HS_E_USAGE;
}

hs_result age_x25519_parse_recipient(const char *s, uint8_t pub[AGE_X25519_LEN], hs_error *e)
{
    char hrp[32];
    size_t n = 0;
    hs_result rc = hs_bech32_decode(s, HS_BECH32_NO_LIMIT, hrp, sizeof hrp, pub,
                                    AGE_X25519_LEN, &n, e);
    if (rc != HS_OK) {
        char context[128];
        snprintf(context, sizeof context, "age recipient \"%.80s\": ", s);
        return as_usage_error(e, context);
    }
    if (strcmp(hrp, RECIPIENT_HRP) != 0 || n != AGE_X25519_LEN)
        return hs_fail(e, HS_E_USAGE,
                       "age recipient \"%.80s\": not an X25519 recipient (\"age1...\", 32 bytes)",
                       s);
    /* age only ever writes the lower-case form of recipients. */
    for (const char *p = s; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            return hs_fail(e, HS_E_USAGE, "age recipient \"%.80s\": must be lower case", s);
    }
    return HS_OK;
}

hs_result age_x25519_parse_identity(const char *s, uint8_t secret[AGE_X25519_LEN], hs_error *e)
{
    char hrp[32];
    size_t n = 0;
    /* Never echo the string: it is a secret key. */
    if (strncmp(s, "AGE-SECRET-KEY-PQ-", 18) == 0 || strncmp(s, "AGE-PLUGIN-", 11) == 0)
        return hs_fail(e, HS_E_USAGE,
                       "age identity: post-quantum and plugin identities are not supported");
    hs_result rc = hs_bech32_decode(s, HS_BECH32_NO_LIMIT, hrp, sizeof hrp, secret,
                                    AGE_X25519_LEN, &n, e);
    if (rc != HS_OK) {
        hs_wipe(secret, AGE_X25519_LEN);
        return as_usage_error(e, "age identity: ");
    }
    if (strcmp(hrp, IDENTITY_HRP) != 0 || n != AGE_X25519_LEN) {
        hs_wipe(secret, AGE_X25519_LEN);
        return hs_fail(e, HS_E_USAGE,
                       "age identity: not an X25519 identity (\"AGE-SECRET-KEY-...\", 32 bytes)");
    }
    for (const char *p = s; *p; p++) {
        if (*p >= 'a' && *p <= 'z') {
            hs_wipe(secret, AGE_X25519_LEN);
            return hs_fail(e, HS_E_USAGE, "age identity: must be upper case");
        }
    }
    return HS_OK;
}

/* Public key of a private scalar. */
static hs_result x25519_public(const uint8_t secret[AGE_X25519_LEN],
                               uint8_t pub[AGE_X25519_LEN], hs_error *e)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret, AGE_X25519_LEN);
    size_t len = AGE_X25519_LEN;
    bool ok = k != NULL && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 &&
              len == AGE_X25519_LEN;
    EVP_PKEY_free(k);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "age: X25519 public key computation failed");
    return HS_OK;
}

/* X25519(secret, peer). A low-order peer point gives the all-zero shared
 * secret, which age forbids (it would make the wrap key public);
 * libcrypto refuses to return it, and we check again in case it does. */
static hs_result x25519_shared(const uint8_t secret[AGE_X25519_LEN],
                               const uint8_t peer[AGE_X25519_LEN],
                               uint8_t shared[AGE_X25519_LEN], hs_error *e)
{
    static const uint8_t zero[AGE_X25519_LEN] = {0};
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret, AGE_X25519_LEN);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, AGE_X25519_LEN);
    EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    if (ctx == NULL || p == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer(ctx, p) != 1) {
        EVP_PKEY_CTX_free(ctx);
        EVP_PKEY_free(k);
        EVP_PKEY_free(p);
        return hs_fail(e, HS_E_CRYPTO, "age: X25519 key agreement setup failed in libcrypto");
    }
    size_t len = AGE_X25519_LEN;
    int ok = EVP_PKEY_derive(ctx, shared, &len);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(k);
    EVP_PKEY_free(p);
    if (ok != 1 || len != AGE_X25519_LEN || hs_ct_equal(shared, zero, AGE_X25519_LEN)) {
        hs_wipe(shared, AGE_X25519_LEN);
        return hs_fail(e, HS_E_FORMAT,
                       "age header: X25519 share is a low-order point (all-zero shared secret)");
    }
    return HS_OK;
}

static hs_result wrap_key(const uint8_t shared[AGE_X25519_LEN],
                          const uint8_t share[AGE_X25519_LEN],
                          const uint8_t recipient[AGE_X25519_LEN],
                          uint8_t key[AGE_AEAD_KEY_LEN], hs_error *e)
{
    uint8_t salt[2 * AGE_X25519_LEN];
    memcpy(salt, share, AGE_X25519_LEN);
    memcpy(salt + AGE_X25519_LEN, recipient, AGE_X25519_LEN);
    return age_hkdf_sha256(shared, AGE_X25519_LEN, salt, sizeof salt, WRAP_LABEL, key,
                           AGE_AEAD_KEY_LEN, e);
}

hs_result age_x25519_wrap(const uint8_t pub[AGE_X25519_LEN],
                          const uint8_t file_key[AGE_FILE_KEY_LEN], age_stanza *out,
                          hs_error *e)
{
    static const uint8_t zero_nonce[AGE_AEAD_NONCE_LEN] = {0};
    uint8_t eph[AGE_X25519_LEN], share[AGE_X25519_LEN], shared[AGE_X25519_LEN];
    uint8_t key[AGE_AEAD_KEY_LEN], body[AGE_FILE_KEY_LEN + AGE_AEAD_TAG_LEN];
    char share_text[64];

    hs_result rc = age_random(eph, sizeof eph, e);
    if (rc == HS_OK)
        rc = x25519_public(eph, share, e);
    if (rc == HS_OK)
        rc = x25519_shared(eph, pub, shared, e);
    if (rc == HS_OK)
        rc = wrap_key(shared, share, pub, key, e);
    if (rc == HS_OK)
        rc = age_aead_seal(key, zero_nonce, file_key, AGE_FILE_KEY_LEN, body, e);
    if (rc == HS_OK) {
        age_b64_encode(share, sizeof share, false, share_text);
        const char *args[] = {STANZA_TYPE, share_text, NULL};
        rc = age_stanza_new(out, args, body, sizeof body, e);
    }
    hs_wipe(eph, sizeof eph);
    hs_wipe(shared, sizeof shared);
    hs_wipe(key, sizeof key);
    return rc;
}

/* One X25519 stanza: malformed is an error, a wrong key is "not ours". */
static hs_result unwrap_one(const uint8_t secret[AGE_X25519_LEN],
                            const uint8_t our_pub[AGE_X25519_LEN], const age_stanza *s,
                            uint8_t file_key[AGE_FILE_KEY_LEN], bool *matched, hs_error *e)
{
    static const uint8_t zero_nonce[AGE_AEAD_NONCE_LEN] = {0};
    uint8_t share[AGE_X25519_LEN + 1], shared[AGE_X25519_LEN], key[AGE_AEAD_KEY_LEN];
    size_t share_len = 0;

    if (s->n_args != 2)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: X25519 stanza must have exactly one argument, has %zu",
                       s->n_args - 1);
    if (!age_b64_decode(s->args[1], strlen(s->args[1]), false, share, sizeof share,
                        &share_len) ||
        share_len != AGE_X25519_LEN)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: X25519 stanza share is not 32 bytes of canonical base64");
    /* The file key length is checked before any decryption (age does). */
    if (s->body_len != AGE_FILE_KEY_LEN + AGE_AEAD_TAG_LEN)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: X25519 stanza body is %zu bytes, expected %d (a 16-byte "
                       "file key and its tag)",
                       s->body_len, AGE_FILE_KEY_LEN + AGE_AEAD_TAG_LEN);

    hs_result rc = x25519_shared(secret, share, shared, e);
    if (rc == HS_OK)
        rc = wrap_key(shared, share, our_pub, key, e);
    if (rc == HS_OK) {
        hs_error ignored;
        *matched = age_aead_open(key, zero_nonce, s->body, s->body_len, file_key, &ignored) ==
                   HS_OK;
    }
    hs_wipe(shared, sizeof shared);
    hs_wipe(key, sizeof key);
    return rc;
}

hs_result age_x25519_unwrap(const uint8_t secret[AGE_X25519_LEN], const age_stanza *stanzas,
                            size_t n, uint8_t file_key[AGE_FILE_KEY_LEN], bool *matched,
                            hs_error *e)
{
    uint8_t our_pub[AGE_X25519_LEN];
    *matched = false;
    hs_result rc = x25519_public(secret, our_pub, e);
    for (size_t i = 0; rc == HS_OK && !*matched && i < n; i++) {
        if (strcmp(stanzas[i].args[0], STANZA_TYPE) == 0)
            rc = unwrap_one(secret, our_pub, &stanzas[i], file_key, matched, e);
    }
    return rc;
}
