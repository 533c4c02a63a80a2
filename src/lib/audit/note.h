/* C2SP signed notes (c2sp.org/signed-note): a text ending in a newline, a
 * blank line, then signature lines "— NAME base64(key ID || signature)".
 *
 * Two signature types, chosen by the audit key's algorithm:
 * - 0x01 Ed25519 over the note text; key ID = SHA-256(NAME || 0x0A || 0x01
 *   || 32-byte public key)[:4].
 * - 0x02 ECDSA (P-256) as github.com/transparency-dev/witness does it: a
 *   DER ECDSA-Sig-Value over SHA-256(note text); key ID = SHA-256(DER
 *   SubjectPublicKeyInfo)[:4].
 * Both verify with openssl over the exact note text (see docs/audit-log.md). */
#ifndef HSMSIGN_AUDIT_NOTE_H
#define HSMSIGN_AUDIT_NOTE_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/* The key ID of (name, public key) for the key's signature type. */
hs_result hs_note_key_id(const char *name, EVP_PKEY *pub, uint32_t *id, hs_error *e) HS_MUST_CHECK;

/* Builds the signed note: text (must end in '\n'), blank line, one
 * signature line for (name, pub) carrying sig. *note is malloc'd. */
hs_result hs_note_assemble(const char *text, const char *name, EVP_PKEY *pub, const uint8_t *sig,
                           size_t sig_len, char **note, hs_error *e) HS_MUST_CHECK;

/* Checks a signed note against one trusted key: every line from (name,
 * key ID) must verify, and at least one must be present. *text_len gets
 * the length of the note text (which starts at note[0]). HS_E_FORMAT for
 * a malformed note, HS_E_VERIFY when unsigned by the key or forged. */
hs_result hs_note_verify(const char *note, size_t len, const char *name, EVP_PKEY *pub,
                         size_t *text_len, hs_error *e) HS_MUST_CHECK;

#endif
