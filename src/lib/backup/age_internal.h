/* Internal interfaces between the age_*.c files; not part of the API. */
#ifndef HSMSIGN_BACKUP_AGE_INTERNAL_H
#define HSMSIGN_BACKUP_AGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define AGE_FILE_KEY_LEN 16
#define AGE_MAC_LEN 32
#define AGE_AEAD_KEY_LEN 32
#define AGE_AEAD_NONCE_LEN 12
#define AGE_AEAD_TAG_LEN 16
#define AGE_X25519_LEN 32
#define AGE_PAYLOAD_NONCE_LEN 16
#define AGE_CHUNK_LEN 65536
/* Base64 columns per line in stanza bodies and armor, and the bytes a
 * full line carries. */
#define AGE_COLUMNS 64
#define AGE_BYTES_PER_LINE 48

/* A recipient stanza: "-> type arg...\n" then a base64 body. args[0] is
 * the type. */
typedef struct age_stanza {
    char **args;
    size_t n_args;
    uint8_t *body;
    size_t body_len;
} age_stanza;

typedef struct age_header {
    age_stanza *stanzas;
    size_t n_stanzas;
    size_t stanzas_cap; /* allocated entries, grown geometrically */
    uint8_t mac[AGE_MAC_LEN];
    size_t mac_input_len;  /* header bytes the MAC covers: up to and including "---" */
    size_t payload_offset; /* first byte after the header */
} age_header;

/* ---- age_base64.c: strict RFC 4648 base64, padded or not ---- */
size_t age_b64_encoded_len(size_t n, bool pad);
/* Writes age_b64_encoded_len(n, pad) characters and a NUL. */
void age_b64_encode(const uint8_t *in, size_t n, bool pad, char *out);
/* Accepts only the canonical encoding (no whitespace, zero unused bits,
 * padding exactly when pad). Fails when the result exceeds out_cap. */
bool age_b64_decode(const char *s, size_t n, bool pad, uint8_t *out, size_t out_cap,
                    size_t *out_len) HS_MUST_CHECK;

/* ---- age_crypto.c: primitives over OpenSSL libcrypto ---- */
hs_result age_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                          size_t salt_len, const char *info, uint8_t *out, size_t out_len,
                          hs_error *e) HS_MUST_CHECK;
hs_result age_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg,
                          size_t msg_len, uint8_t mac[AGE_MAC_LEN], hs_error *e) HS_MUST_CHECK;
/* ChaCha20-Poly1305; out holds len + AGE_AEAD_TAG_LEN bytes. */
hs_result age_aead_seal(const uint8_t key[AGE_AEAD_KEY_LEN],
                        const uint8_t nonce[AGE_AEAD_NONCE_LEN], const uint8_t *in, size_t len,
                        uint8_t *out, hs_error *e) HS_MUST_CHECK;
/* Returns HS_E_VERIFY when the tag does not match; out holds len - tag. */
hs_result age_aead_open(const uint8_t key[AGE_AEAD_KEY_LEN],
                        const uint8_t nonce[AGE_AEAD_NONCE_LEN], const uint8_t *in, size_t len,
                        uint8_t *out, hs_error *e) HS_MUST_CHECK;
hs_result age_random(uint8_t *out, size_t len, hs_error *e) HS_MUST_CHECK;

/* ---- age_header.c ---- */
hs_result age_header_parse(const uint8_t *in, size_t len, age_header *h,
                           hs_error *e) HS_MUST_CHECK;
void age_header_free(age_header *h);
void age_stanza_free(age_stanza *s);
/* Builds a stanza from a NULL-terminated argument list and a body. */
hs_result age_stanza_new(age_stanza *s, const char *const *args, const uint8_t *body,
                         size_t body_len, hs_error *e) HS_MUST_CHECK;
/* The MAC over header[0..len) keyed from the file key. */
hs_result age_header_mac(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *header,
                         size_t len, uint8_t mac[AGE_MAC_LEN], hs_error *e) HS_MUST_CHECK;
/* Complete header (intro, stanzas, MAC line), malloc'd. */
hs_result age_header_serialize(const age_stanza *stanzas, size_t n,
                               const uint8_t file_key[AGE_FILE_KEY_LEN], uint8_t **out,
                               size_t *out_len, hs_error *e) HS_MUST_CHECK;

/* ---- age_x25519.c ---- */
hs_result age_x25519_parse_recipient(const char *s, uint8_t pub[AGE_X25519_LEN],
                                     hs_error *e) HS_MUST_CHECK;
/* secret should be secure memory. */
hs_result age_x25519_parse_identity(const char *s, uint8_t secret[AGE_X25519_LEN],
                                    hs_error *e) HS_MUST_CHECK;
hs_result age_x25519_wrap(const uint8_t pub[AGE_X25519_LEN],
                          const uint8_t file_key[AGE_FILE_KEY_LEN], age_stanza *out,
                          hs_error *e) HS_MUST_CHECK;
/* HS_OK with *matched false when no X25519 stanza is for this identity;
 * an error when one of them is malformed. */
hs_result age_x25519_unwrap(const uint8_t secret[AGE_X25519_LEN], const age_stanza *stanzas,
                            size_t n, uint8_t file_key[AGE_FILE_KEY_LEN], bool *matched,
                            hs_error *e) HS_MUST_CHECK;

/* ---- age_scrypt.c ---- */
hs_result age_scrypt_wrap(const char *passphrase, int log2_work,
                          const uint8_t file_key[AGE_FILE_KEY_LEN], age_stanza *out,
                          hs_error *e) HS_MUST_CHECK;
hs_result age_scrypt_unwrap(const char *passphrase, const age_stanza *stanzas, size_t n,
                            uint8_t file_key[AGE_FILE_KEY_LEN], bool *matched,
                            hs_error *e) HS_MUST_CHECK;

/* ---- age_stream.c: the STREAM payload (nonce, 64 KiB chunks) ---- */
/* Bytes of the payload (nonce included) for plain_len plaintext bytes;
 * 0 on overflow. */
size_t age_stream_encrypted_len(size_t plain_len);
hs_result age_stream_encrypt(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *plain,
                             size_t plain_len, uint8_t *out, hs_error *e) HS_MUST_CHECK;
/* *plain is hs_secure_alloc'd. */
hs_result age_stream_decrypt(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *in,
                             size_t len, uint8_t **plain, size_t *plain_len,
                             hs_error *e) HS_MUST_CHECK;

/* ---- age_armor.c ---- */
/* True when the input, after leading whitespace, starts like armor. */
bool age_armor_detect(const uint8_t *in, size_t len);
hs_result age_armor_encode(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                           hs_error *e) HS_MUST_CHECK;
hs_result age_armor_decode(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                           hs_error *e) HS_MUST_CHECK;

#endif
