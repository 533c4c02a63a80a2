/* The age payload: a 16-byte nonce, then the plaintext in 64 KiB chunks,
 * each sealed with ChaCha20-Poly1305 under HKDF-SHA256(ikm = file key,
 * salt = nonce, info = "payload"). The chunk nonce is an 11-byte
 * big-endian counter and a flag byte that is 1 on the last chunk only,
 * so truncation and reordering are detected.
 *
 * The last chunk may be full (then nothing follows it) and may be empty
 * only when the whole payload is empty. Because the whole file is in
 * memory, each chunk's position decides whether it must carry the last
 * flag; a chunk marked last anywhere else fails authentication. */
#include <string.h>

#include "backup/age_internal.h"
#include "util/secmem.h"

#define ENC_CHUNK_LEN (AGE_CHUNK_LEN + AGE_AEAD_TAG_LEN)
#define COUNTER_LEN 11

static void chunk_nonce(uint64_t counter, bool last, uint8_t nonce[AGE_AEAD_NONCE_LEN])
{
    memset(nonce, 0, AGE_AEAD_NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[COUNTER_LEN - 1 - i] = (uint8_t)(counter >> (8 * i));
    nonce[COUNTER_LEN] = last ? 1 : 0;
}

static hs_result payload_key(const uint8_t file_key[AGE_FILE_KEY_LEN],
                             const uint8_t nonce[AGE_PAYLOAD_NONCE_LEN],
                             uint8_t key[AGE_AEAD_KEY_LEN], hs_error *e)
{
    return age_hkdf_sha256(file_key, AGE_FILE_KEY_LEN, nonce, AGE_PAYLOAD_NONCE_LEN, "payload",
                           key, AGE_AEAD_KEY_LEN, e);
}

static size_t chunk_count(size_t plain_len)
{
    return plain_len == 0 ? 1 : (plain_len - 1) / AGE_CHUNK_LEN + 1;
}

size_t age_stream_encrypted_len(size_t plain_len)
{
    size_t chunks = chunk_count(plain_len);
    size_t overhead = AGE_PAYLOAD_NONCE_LEN + chunks * AGE_AEAD_TAG_LEN;
    if (plain_len > SIZE_MAX - overhead)
        return 0;
    return plain_len + overhead;
}

hs_result age_stream_encrypt(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *plain,
                             size_t plain_len, uint8_t *out, hs_error *e)
{
    uint8_t key[AGE_AEAD_KEY_LEN], nonce[AGE_AEAD_NONCE_LEN];
    hs_result rc = age_random(out, AGE_PAYLOAD_NONCE_LEN, e);
    if (rc == HS_OK)
        rc = payload_key(file_key, out, key, e);
    size_t chunks = chunk_count(plain_len);
    uint8_t *dst = out + AGE_PAYLOAD_NONCE_LEN;
    for (size_t i = 0; rc == HS_OK && i < chunks; i++) {
        size_t off = i * AGE_CHUNK_LEN;
        size_t n = plain_len - off > AGE_CHUNK_LEN ? AGE_CHUNK_LEN : plain_len - off;
        chunk_nonce(i, i + 1 == chunks, nonce);
        /* plain may be NULL for an empty payload; never offset NULL. */
        rc = age_aead_seal(key, nonce, n > 0 ? plain + off : NULL, n, dst, e);
        dst += n + AGE_AEAD_TAG_LEN;
    }
    hs_wipe(key, sizeof key);
    return rc;
}

hs_result age_stream_decrypt(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *in,
                             size_t len, uint8_t **plain, size_t *plain_len, hs_error *e)
{
    uint8_t key[AGE_AEAD_KEY_LEN], nonce[AGE_AEAD_NONCE_LEN];
    *plain = NULL;
    *plain_len = 0;
    if (len < AGE_PAYLOAD_NONCE_LEN)
        return hs_fail(e, HS_E_FORMAT,
                       "age payload: file ends %s the 16-byte payload nonce (truncated)",
                       len == 0 ? "before" : "inside");
    const uint8_t *p = in + AGE_PAYLOAD_NONCE_LEN;
    size_t rest = len - AGE_PAYLOAD_NONCE_LEN;
    if (rest == 0)
        return hs_fail(e, HS_E_FORMAT, "age payload: no chunks after the nonce (truncated)");

    /* Plaintext is never longer than the ciphertext. */
    uint8_t *out = hs_secure_alloc(rest);
    if (out == NULL)
        return hs_fail(e, HS_E_NOMEM, "age payload: out of secure memory for %zu bytes", rest);
    hs_result rc = payload_key(file_key, in, key, e);
    size_t produced = 0;
    for (uint64_t i = 0; rc == HS_OK && rest > 0; i++) {
        bool last = rest <= ENC_CHUNK_LEN;
        size_t n = last ? rest : ENC_CHUNK_LEN;
        if (n < AGE_AEAD_TAG_LEN) {
            rc = hs_fail(e, HS_E_FORMAT,
                         "age payload: chunk %llu is %zu bytes, shorter than its 16-byte tag "
                         "(truncated)",
                         (unsigned long long)i, n);
            break;
        }
        if (last && n == AGE_AEAD_TAG_LEN && i > 0) {
            rc = hs_fail(e, HS_E_FORMAT,
                         "age payload: last chunk is empty, which only an empty payload may "
                         "have");
            break;
        }
        chunk_nonce(i, last, nonce);
        rc = age_aead_open(key, nonce, p, n, out + produced, e);
        if (rc != HS_OK) {
            rc = hs_fail(e, HS_E_VERIFY,
                         "age payload: chunk %llu failed authentication (corrupted, truncated "
                         "or extended file)",
                         (unsigned long long)i);
            break;
        }
        produced += n - AGE_AEAD_TAG_LEN;
        p += n;
        rest -= n;
    }
    hs_wipe(key, sizeof key);
    if (rc != HS_OK) {
        hs_secure_free(out, len);
        return rc;
    }
    *plain = out;
    *plain_len = produced;
    return HS_OK;
}
