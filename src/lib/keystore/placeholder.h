/* The placeholder NAME.pk8 of a releasetools key directory (`hsmsign key
 * export-releasetools`). releasetools refuses to run unless KEY.pk8 exists
 * next to KEY.x509.pem (the OTA step's "Private key ... doesn't exist"),
 * but the private key stays in the HSM, so the file holds no key material:
 * a few lines of text naming hsmsign, the key and its public key's SHA-256.
 *
 *   HSMSIGN-PLACEHOLDER-PK8 1
 *   This is not a private key. ...
 *   key: NAME
 *   public-key-sha256: 64 hex digits
 *
 * It starts with neither a DER SEQUENCE (0x30) nor "-----BEGIN", so every
 * PKCS#8/PEM reader (openssl, java signapk, hsmsign key import) refuses it
 * at the first byte, and anyone who opens it reads what it is. A drop-in
 * signer (hsmsign signapk) may read the key name from it. Format:
 * docs/releasetools.md. */
#ifndef HSMSIGN_KEYSTORE_PLACEHOLDER_H
#define HSMSIGN_KEYSTORE_PLACEHOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keystore/keyfile.h"
#include "util/result.h"

#define HS_PLACEHOLDER_MAGIC "HSMSIGN-PLACEHOLDER-PK8 1\n"

/* The placeholder text for a key, malloc'd and NUL-terminated. */
hs_result hs_placeholder_pk8_format(const hs_keyfile *kf, char **text, size_t *len,
                                    hs_error *e) HS_MUST_CHECK;

/* True when data starts with the placeholder's first line. */
bool hs_placeholder_pk8_is(const uint8_t *data, size_t len);

/* The key name and fingerprint a placeholder names; HS_E_FORMAT naming
 * path when data is not a well-formed placeholder. */
hs_result hs_placeholder_pk8_parse(const uint8_t *data, size_t len, const char *path,
                                   char name[HS_KEY_NAME_MAX + 1], uint8_t fingerprint[32],
                                   hs_error *e) HS_MUST_CHECK;

#endif
