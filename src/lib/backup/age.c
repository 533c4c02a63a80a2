/* age v1: keys, encryption and decryption of whole files in memory.
 * The pieces live beside this file: header (age_header.c), recipient
 * types (age_x25519.c, age_scrypt.c), payload (age_stream.c), armor
 * (age_armor.c). */
#include "backup/age.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "backup/age_internal.h"
#include "backup/bech32.h"
#include "util/encoding.h"
#include "util/secmem.h"

static const char IDENTITY_HRP_UPPER[] = "AGE-SECRET-KEY-";
static const char RECIPIENT_HRP[] = "age";

void hs_age_secret_free(char *secret)
{
    if (secret != NULL)
        hs_secure_free(secret, strlen(secret) + 1);
}

void hs_age_identities_free(char **identities, size_t n)
{
    if (identities == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        hs_age_secret_free(identities[i]);
    free(identities);
}

/* ------------------------------------------------------------------ keys */

static hs_result public_of(const uint8_t secret[AGE_X25519_LEN], uint8_t pub[AGE_X25519_LEN],
                           hs_error *e)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret, AGE_X25519_LEN);
    size_t len = AGE_X25519_LEN;
    bool ok = k != NULL && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1;
    EVP_PKEY_free(k);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "age: X25519 public key computation failed");
    return HS_OK;
}

static hs_result encode_recipient(const uint8_t pub[AGE_X25519_LEN], char **out, hs_error *e)
{
    size_t cap = hs_bech32_encoded_size(strlen(RECIPIENT_HRP), AGE_X25519_LEN);
    char *s = malloc(cap);
    if (s == NULL)
        return hs_fail(e, HS_E_NOMEM, "age: out of memory");
    hs_result rc = hs_bech32_encode(RECIPIENT_HRP, pub, AGE_X25519_LEN, false, s, cap, e);
    if (rc != HS_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return HS_OK;
}

hs_result hs_age_keygen(char **identity_out, char **recipient_out, hs_error *e)
{
    *identity_out = NULL;
    *recipient_out = NULL;
    size_t cap = hs_bech32_encoded_size(strlen(IDENTITY_HRP_UPPER), AGE_X25519_LEN);
    uint8_t *secret = hs_secure_alloc(AGE_X25519_LEN);
    char *identity = hs_secure_alloc(cap);
    uint8_t pub[AGE_X25519_LEN];
    hs_result rc = HS_OK;
    if (secret == NULL || identity == NULL)
        rc = hs_fail(e, HS_E_NOMEM, "age keygen: out of secure memory");
    if (rc == HS_OK)
        rc = age_random(secret, AGE_X25519_LEN, e);
    if (rc == HS_OK)
        rc = public_of(secret, pub, e);
    if (rc == HS_OK)
        rc = hs_bech32_encode(IDENTITY_HRP_UPPER, secret, AGE_X25519_LEN, true, identity, cap,
                              e);
    if (rc == HS_OK)
        rc = encode_recipient(pub, recipient_out, e);
    hs_secure_free(secret, AGE_X25519_LEN);
    if (rc != HS_OK) {
        hs_secure_free(identity, cap);
        return rc;
    }
    *identity_out = identity;
    return HS_OK;
}

hs_result hs_age_identity_to_recipient(const char *identity, char **recipient_out, hs_error *e)
{
    *recipient_out = NULL;
    uint8_t *secret = hs_secure_alloc(AGE_X25519_LEN);
    uint8_t pub[AGE_X25519_LEN];
    if (secret == NULL)
        return hs_fail(e, HS_E_NOMEM, "age: out of secure memory");
    hs_result rc = age_x25519_parse_identity(identity, secret, e);
    if (rc == HS_OK)
        rc = public_of(secret, pub, e);
    if (rc == HS_OK)
        rc = encode_recipient(pub, recipient_out, e);
    hs_secure_free(secret, AGE_X25519_LEN);
    return rc;
}

hs_result hs_age_recipient_check(const char *recipient, hs_error *e)
{
    uint8_t pub[AGE_X25519_LEN];
    return age_x25519_parse_recipient(recipient, pub, e);
}

/* ------------------------------------------------------------ encryption */

static void free_stanzas(age_stanza *stanzas, size_t n)
{
    for (size_t i = 0; i < n; i++)
        age_stanza_free(&stanzas[i]);
    free(stanzas);
}

/* Header, payload and optional armor around stanzas that already wrap
 * file_key. */
static hs_result seal_file(const age_stanza *stanzas, size_t n,
                           const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *plain,
                           size_t plain_len, bool armor, uint8_t **out, size_t *out_len,
                           hs_error *e)
{
    uint8_t *header = NULL;
    size_t header_len = 0;
    hs_result rc = age_header_serialize(stanzas, n, file_key, &header, &header_len, e);
    if (rc != HS_OK)
        return rc;
    size_t payload_len = age_stream_encrypted_len(plain_len);
    if (payload_len == 0 || payload_len > SIZE_MAX - header_len) {
        free(header);
        return hs_fail(e, HS_E_USAGE, "age: plaintext of %zu bytes is too large", plain_len);
    }
    uint8_t *file = malloc(header_len + payload_len);
    if (file == NULL) {
        free(header);
        return hs_fail(e, HS_E_NOMEM, "age: out of memory for %zu bytes",
                       header_len + payload_len);
    }
    memcpy(file, header, header_len);
    free(header);
    size_t file_len = header_len + payload_len;
    rc = age_stream_encrypt(file_key, plain, plain_len, file + header_len, e);
    if (rc == HS_OK && armor) {
        uint8_t *text = NULL;
        size_t text_len = 0;
        rc = age_armor_encode(file, file_len, &text, &text_len, e);
        free(file);
        file = text;
        file_len = text_len;
    }
    if (rc != HS_OK) {
        free(file);
        return rc;
    }
    *out = file;
    *out_len = file_len;
    return HS_OK;
}

hs_result hs_age_encrypt(const char *const *recipients, size_t n_recipients,
                         const uint8_t *plain, size_t plain_len, bool armor, uint8_t **out,
                         size_t *out_len, hs_error *e)
{
    *out = NULL;
    *out_len = 0;
    if (n_recipients == 0)
        return hs_fail(e, HS_E_USAGE, "age: no recipients to encrypt to");
    age_stanza *stanzas = calloc(n_recipients, sizeof *stanzas);
    if (stanzas == NULL)
        return hs_fail(e, HS_E_NOMEM, "age: out of memory");
    uint8_t file_key[AGE_FILE_KEY_LEN];
    uint8_t pub[AGE_X25519_LEN];
    size_t made = 0;
    hs_result rc = age_random(file_key, sizeof file_key, e);
    for (size_t i = 0; rc == HS_OK && i < n_recipients; i++) {
        rc = age_x25519_parse_recipient(recipients[i], pub, e);
        if (rc == HS_OK)
            rc = age_x25519_wrap(pub, file_key, &stanzas[i], e);
        if (rc == HS_OK)
            made = i + 1;
    }
    if (rc == HS_OK)
        rc = seal_file(stanzas, made, file_key, plain, plain_len, armor, out, out_len, e);
    hs_wipe(file_key, sizeof file_key);
    free_stanzas(stanzas, made);
    return rc;
}

hs_result hs_age_encrypt_passphrase(const char *passphrase, int log2_work_factor,
                                    const uint8_t *plain, size_t plain_len, bool armor,
                                    uint8_t **out, size_t *out_len, hs_error *e)
{
    *out = NULL;
    *out_len = 0;
    if (passphrase == NULL || passphrase[0] == '\0')
        return hs_fail(e, HS_E_USAGE, "age: the passphrase is empty");
    if (log2_work_factor == 0)
        log2_work_factor = HS_AGE_DEFAULT_SCRYPT_LOG2_WORK;
    /* A file above the decryption limit could not be opened again. */
    if (log2_work_factor < 1 || log2_work_factor > HS_AGE_MAX_SCRYPT_LOG2_WORK)
        return hs_fail(e, HS_E_USAGE, "age: scrypt work factor %d is outside 1..%d",
                       log2_work_factor, HS_AGE_MAX_SCRYPT_LOG2_WORK);
    age_stanza stanza;
    uint8_t file_key[AGE_FILE_KEY_LEN];
    hs_result rc = age_random(file_key, sizeof file_key, e);
    if (rc == HS_OK)
        rc = age_scrypt_wrap(passphrase, log2_work_factor, file_key, &stanza, e);
    if (rc == HS_OK) {
        rc = seal_file(&stanza, 1, file_key, plain, plain_len, armor, out, out_len, e);
        age_stanza_free(&stanza);
    }
    hs_wipe(file_key, sizeof file_key);
    return rc;
}

/* ------------------------------------------------------------ decryption */

static bool has_stanza(const age_header *h, const char *type)
{
    for (size_t i = 0; i < h->n_stanzas; i++) {
        if (strcmp(h->stanzas[i].args[0], type) == 0)
            return true;
    }
    return false;
}

static hs_result no_match(const age_header *h, bool have_passphrase, hs_error *e)
{
    if (has_stanza(h, "scrypt") && !have_passphrase)
        return hs_fail(e, HS_E_NOTFOUND,
                       "no identity matched any recipient stanza (the file is "
                       "passphrase-encrypted and no passphrase was given)");
    if (has_stanza(h, "scrypt"))
        return hs_fail(e, HS_E_NOTFOUND,
                       "no identity matched any recipient stanza (wrong passphrase)");
    return hs_fail(e, HS_E_NOTFOUND,
                   "no identity matched any recipient stanza (%zu stanza%s, first of type "
                   "\"%.40s\")",
                   h->n_stanzas, h->n_stanzas == 1 ? "" : "s", h->stanzas[0].args[0]);
}

/* Finds the file key: each identity tries every stanza of its type, in
 * the order age uses; a malformed stanza of a known type is an error. */
static hs_result unwrap_file_key(const age_header *h, const uint8_t *secrets, size_t n_secrets,
                                 const char *passphrase, uint8_t file_key[AGE_FILE_KEY_LEN],
                                 hs_error *e)
{
    bool matched = false;
    if (has_stanza(h, "scrypt") && h->n_stanzas != 1)
        return hs_fail(e, HS_E_FORMAT,
                       "age header: an scrypt (passphrase) stanza must be the only stanza, "
                       "this header has %zu",
                       h->n_stanzas);
    for (size_t i = 0; i < n_secrets && !matched; i++) {
        hs_result rc = age_x25519_unwrap(secrets + i * AGE_X25519_LEN, h->stanzas, h->n_stanzas,
                                         file_key, &matched, e);
        if (rc != HS_OK)
            return rc;
    }
    if (!matched && passphrase != NULL) {
        hs_result rc = age_scrypt_unwrap(passphrase, h->stanzas, h->n_stanzas, file_key,
                                         &matched, e);
        if (rc != HS_OK)
            return rc;
    }
    return matched ? HS_OK : no_match(h, passphrase != NULL, e);
}

static hs_result decrypt_binary(const uint8_t *secrets, size_t n_secrets,
                                const char *passphrase, const uint8_t *in, size_t in_len,
                                uint8_t **plain, size_t *plain_len, hs_error *e)
{
    age_header h;
    uint8_t file_key[AGE_FILE_KEY_LEN];
    uint8_t mac[AGE_MAC_LEN];
    hs_result rc = age_header_parse(in, in_len, &h, e);
    if (rc != HS_OK)
        return rc;
    rc = unwrap_file_key(&h, secrets, n_secrets, passphrase, file_key, e);
    if (rc == HS_OK)
        rc = age_header_mac(file_key, in, h.mac_input_len, mac, e);
    if (rc == HS_OK && !hs_ct_equal(mac, h.mac, AGE_MAC_LEN))
        rc = hs_fail(e, HS_E_VERIFY,
                     "age header: MAC mismatch (wrong identity or corrupted file)");
    if (rc == HS_OK)
        rc = age_stream_decrypt(file_key, in + h.payload_offset, in_len - h.payload_offset,
                                plain, plain_len, e);
    hs_wipe(file_key, sizeof file_key);
    age_header_free(&h);
    return rc;
}

hs_result hs_age_decrypt(const char *const *identities, size_t n_identities,
                         const char *passphrase, const uint8_t *in, size_t in_len,
                         uint8_t **plain, size_t *plain_len, hs_error *e)
{
    *plain = NULL;
    *plain_len = 0;
    if (passphrase != NULL && passphrase[0] == '\0')
        return hs_fail(e, HS_E_USAGE, "age: the passphrase is empty");
    if (n_identities == 0 && passphrase == NULL)
        return hs_fail(e, HS_E_USAGE, "age: no identity and no passphrase to decrypt with");
    if (n_identities > SIZE_MAX / AGE_X25519_LEN - 1)
        return hs_fail(e, HS_E_USAGE, "age: too many identities");

    size_t secrets_len = (n_identities + 1) * AGE_X25519_LEN;
    uint8_t *secrets = hs_secure_alloc(secrets_len);
    if (secrets == NULL)
        return hs_fail(e, HS_E_NOMEM, "age: out of secure memory");
    hs_result rc = HS_OK;
    for (size_t i = 0; rc == HS_OK && i < n_identities; i++) {
        rc = age_x25519_parse_identity(identities[i], secrets + i * AGE_X25519_LEN, e);
        if (rc != HS_OK && n_identities > 1)
            (void)hs_error_prefix(e, "identity %zu of %zu: ", i + 1, n_identities);
    }

    uint8_t *binary = NULL;
    size_t binary_len = 0;
    if (rc == HS_OK && age_armor_detect(in, in_len)) {
        rc = age_armor_decode(in, in_len, &binary, &binary_len, e);
        in = binary;
        in_len = binary_len;
    }
    if (rc == HS_OK)
        rc = decrypt_binary(secrets, n_identities, passphrase, in, in_len, plain, plain_len, e);
    free(binary);
    hs_secure_free(secrets, secrets_len);
    return rc;
}

/* --------------------------------------------------------- identity file */

static hs_result add_identity(const char *line, size_t n, size_t line_no, char ***list,
                              size_t *count, hs_error *e)
{
    if (memchr(line, '\0', n) != NULL)
        return hs_fail(e, HS_E_FORMAT, "age identity file: line %zu contains a NUL byte",
                       line_no);
    char *copy = hs_secure_alloc(n + 1);
    uint8_t *secret = hs_secure_alloc(AGE_X25519_LEN);
    char **grown = (copy && secret) ? realloc(*list, (*count + 1) * sizeof *grown) : NULL;
    hs_result rc = HS_OK;
    if (grown == NULL) {
        rc = hs_fail(e, HS_E_NOMEM, "age identity file: out of memory");
    } else {
        *list = grown;
        memcpy(copy, line, n);
        copy[n] = '\0';
        rc = age_x25519_parse_identity(copy, secret, e);
        if (rc != HS_OK) {
            (void)hs_error_prefix(e, "age identity file: line %zu: ", line_no);
            if (e != NULL)
                e->code = HS_E_FORMAT;
            rc = HS_E_FORMAT;
        }
    }
    hs_secure_free(secret, AGE_X25519_LEN);
    if (rc != HS_OK) {
        hs_secure_free(copy, n + 1);
        return rc;
    }
    (*list)[(*count)++] = copy;
    return HS_OK;
}

hs_result hs_age_parse_identity_file(const uint8_t *text, size_t len, char ***identities,
                                     size_t *n, hs_error *e)
{
    char **list = NULL;
    size_t count = 0;
    size_t pos = 0, line_no = 0;
    hs_result rc = HS_OK;
    *identities = NULL;
    *n = 0;
    while (rc == HS_OK && pos < len) {
        const uint8_t *start = text + pos;
        const uint8_t *lf = memchr(start, '\n', len - pos);
        size_t raw = lf ? (size_t)(lf - start) : len - pos;
        pos += raw + (lf ? 1 : 0);
        line_no++;
        size_t line_len = (raw > 0 && start[raw - 1] == '\r') ? raw - 1 : raw;
        if (line_len == 0 || start[0] == '#')
            continue;
        rc = add_identity((const char *)start, line_len, line_no, &list, &count, e);
    }
    if (rc == HS_OK && count == 0)
        rc = hs_fail(e, HS_E_FORMAT, "age identity file: no identity in it");
    if (rc != HS_OK) {
        hs_age_identities_free(list, count);
        return rc;
    }
    *identities = list;
    *n = count;
    return HS_OK;
}
