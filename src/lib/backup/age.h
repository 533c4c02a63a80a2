/* age v1 file encryption (https://c2sp.org/age), interoperable with the
 * age command-line tool.
 *
 * Supported: X25519 recipients ("age1...") and identities
 * ("AGE-SECRET-KEY-..."), passphrase (scrypt) recipients, ASCII armor.
 * Not supported: post-quantum hybrid (mlkem768x25519), SSH and plugin
 * recipients; files using only those fail with "no identity matched".
 *
 * Files are processed whole in memory: hsmsign encrypts key shares, not
 * bulk data. Decryption is strict like the reference implementation: any
 * deviation from the canonical encoding is an error. */
#ifndef HSMSIGN_BACKUP_AGE_H
#define HSMSIGN_BACKUP_AGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/* Highest scrypt work factor (log2 N) accepted, as in age: 2^22 needs
 * 4 GiB of memory and seconds of CPU, more is a denial of service. */
#define HS_AGE_MAX_SCRYPT_LOG2_WORK 22
/* age's default for new passphrase-encrypted files (about 1 s). */
#define HS_AGE_DEFAULT_SCRYPT_LOG2_WORK 18

/* A new X25519 key pair. *identity_out ("AGE-SECRET-KEY-...") is in
 * hs_secure_alloc memory: free it with hs_age_secret_free. *recipient_out
 * ("age1...") is malloc'd. */
hs_result hs_age_keygen(char **identity_out, char **recipient_out, hs_error *e) HS_MUST_CHECK;

/* The recipient ("age1...", malloc'd) of an X25519 identity. */
hs_result hs_age_identity_to_recipient(const char *identity, char **recipient_out,
                                       hs_error *e) HS_MUST_CHECK;

/* Checks that a string is a well-formed X25519 recipient. */
hs_result hs_age_recipient_check(const char *recipient, hs_error *e) HS_MUST_CHECK;

/* Encrypts to one or more X25519 recipients. armor selects the PEM-like
 * text form ("-----BEGIN AGE ENCRYPTED FILE-----"). *out is malloc'd. */
hs_result hs_age_encrypt(const char *const *recipients, size_t n_recipients,
                         const uint8_t *plain, size_t plain_len, bool armor, uint8_t **out,
                         size_t *out_len, hs_error *e) HS_MUST_CHECK;

/* Encrypts with a passphrase: scrypt with N = 2^log2_work_factor (1..22;
 * 0 means HS_AGE_DEFAULT_SCRYPT_LOG2_WORK). *out is malloc'd. */
hs_result hs_age_encrypt_passphrase(const char *passphrase, int log2_work_factor,
                                    const uint8_t *plain, size_t plain_len, bool armor,
                                    uint8_t **out, size_t *out_len, hs_error *e) HS_MUST_CHECK;

/* Decrypts a binary or armored age file with X25519 identities and/or a
 * passphrase (NULL for none). The plaintext is in hs_secure_alloc memory
 * (it holds a key share): free it with hs_secure_free(*plain, *plain_len).
 * Errors: HS_E_USAGE (a malformed identity), HS_E_FORMAT (malformed armor,
 * header or payload framing), HS_E_NOTFOUND (no identity matched),
 * HS_E_VERIFY (header MAC or payload authentication failed). */
hs_result hs_age_decrypt(const char *const *identities, size_t n_identities,
                         const char *passphrase, const uint8_t *in, size_t in_len,
                         uint8_t **plain, size_t *plain_len, hs_error *e) HS_MUST_CHECK;

/* Parses an identity file as age-keygen writes it: lines starting with '#'
 * and empty lines are ignored, every other line is one identity. Each
 * identity is checked and returned in hs_secure_alloc memory; free the
 * list with hs_age_identities_free. */
hs_result hs_age_parse_identity_file(const uint8_t *text, size_t len, char ***identities,
                                     size_t *n, hs_error *e) HS_MUST_CHECK;

/* Wipes and frees one identity string from this module. */
void hs_age_secret_free(char *secret);
void hs_age_identities_free(char **identities, size_t n);

#endif
