/* The primitives age is built from, over OpenSSL 3 libcrypto: HKDF-SHA256,
 * HMAC-SHA256, ChaCha20-Poly1305 and the system CSPRNG. */
#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "backup/age_internal.h"
#include "util/secmem.h"

hs_result age_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                          size_t salt_len, const char *info, uint8_t *out, size_t out_len,
                          hs_error *e)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (ctx == NULL)
        return hs_fail(e, HS_E_CRYPTO, "age: HKDF-SHA256 is not available in libcrypto");

    OSSL_PARAM params[5];
    size_t p = 0;
    params[p++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[p++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    /* An absent salt is HashLen zero bytes (RFC 5869), the same as age's
     * empty salt; OpenSSL rejects an explicit empty one. */
    if (salt_len > 0)
        params[p++] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    params[p++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    params[p] = OSSL_PARAM_construct_end();

    int ok = EVP_KDF_derive(ctx, out, out_len, params);
    EVP_KDF_CTX_free(ctx);
    if (ok != 1)
        return hs_fail(e, HS_E_CRYPTO, "age: HKDF-SHA256 (%s) failed", info);
    return HS_OK;
}

hs_result age_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg,
                          size_t msg_len, uint8_t mac[AGE_MAC_LEN], hs_error *e)
{
    size_t got = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, msg, msg_len, mac,
                  AGE_MAC_LEN, &got) == NULL ||
        got != AGE_MAC_LEN)
        return hs_fail(e, HS_E_CRYPTO, "age: HMAC-SHA256 failed");
    return HS_OK;
}

static hs_result aead(bool seal, const uint8_t key[AGE_AEAD_KEY_LEN],
                      const uint8_t nonce[AGE_AEAD_NONCE_LEN], const uint8_t *in, size_t len,
                      uint8_t *out, hs_error *e)
{
    size_t data_len = seal ? len : len - AGE_AEAD_TAG_LEN;
    if (!seal && len < AGE_AEAD_TAG_LEN)
        return hs_fail(e, HS_E_INTERNAL, "age: ciphertext shorter than its tag");
    if (data_len > INT_MAX)
        return hs_fail(e, HS_E_USAGE, "age: AEAD input too large");

    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return hs_fail(e, HS_E_NOMEM, "age: out of memory");
    hs_result rc = HS_E_CRYPTO;
    int n = 0;
    uint8_t tag[AGE_AEAD_TAG_LEN];
    if (EVP_CipherInit_ex2(ctx, EVP_chacha20_poly1305(), key, nonce, seal ? 1 : 0, NULL) != 1)
        goto out;
    if (!seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AGE_AEAD_TAG_LEN,
                                     (void *)(in + data_len)) != 1)
        goto out;
    if (data_len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)data_len) != 1)
        goto out;
    if (EVP_CipherFinal_ex(ctx, out + n, &n) != 1) {
        if (!seal) {
            hs_wipe(out, data_len); /* never hand out unauthenticated plaintext */
            rc = HS_E_VERIFY;
        }
        goto out;
    }
    if (seal) {
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AGE_AEAD_TAG_LEN, tag) != 1)
            goto out;
        memcpy(out + data_len, tag, AGE_AEAD_TAG_LEN);
    }
    rc = HS_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (rc == HS_E_VERIFY)
        return hs_fail(e, rc, "ChaCha20-Poly1305 authentication failed");
    if (rc != HS_OK)
        return hs_fail(e, rc, "age: ChaCha20-Poly1305 %s failed in libcrypto",
                       seal ? "encryption" : "decryption");
    return HS_OK;
}

hs_result age_aead_seal(const uint8_t key[AGE_AEAD_KEY_LEN],
                        const uint8_t nonce[AGE_AEAD_NONCE_LEN], const uint8_t *in, size_t len,
                        uint8_t *out, hs_error *e)
{
    return aead(true, key, nonce, in, len, out, e);
}

hs_result age_aead_open(const uint8_t key[AGE_AEAD_KEY_LEN],
                        const uint8_t nonce[AGE_AEAD_NONCE_LEN], const uint8_t *in, size_t len,
                        uint8_t *out, hs_error *e)
{
    return aead(false, key, nonce, in, len, out, e);
}

hs_result age_random(uint8_t *out, size_t len, hs_error *e)
{
    /* File keys and ephemeral keys protect shares and PINs: the private generator. */
    if (len > INT_MAX || RAND_priv_bytes(out, (int)len) != 1)
        return hs_fail(e, HS_E_CRYPTO, "age: the random number generator failed");
    return HS_OK;
}
