/* The whole-file signature of an OTA package (signapk -w, `sign ota`),
 * read as recovery's verifier reads it: the last 6 bytes of the file are
 * u16 signature start (counted back from the end of the file), 0xffff,
 * u16 comment size, where the comment size is that of the archive's EOCD
 * comment; the PKCS#7 SignedData block lies between the signature start
 * and the footer, and it signs the whole file but the comment and its
 * length field (docs/signapk.md). */
#ifndef HSMSIGN_ANDROID_OTA_VERIFY_H
#define HSMSIGN_ANDROID_OTA_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

typedef struct hs_ota_signature {
    uint8_t *cert_der;      /* the signer's certificate, malloc'd */
    size_t cert_der_len;
    uint8_t sig_sha256[32]; /* SHA-256 of the signature value (SignerInfo) */
} hs_ota_signature;

/* HS_OK: path carries a whole-file signature that verifies with the
 * certificate it holds. HS_E_NOTFOUND: no whole-file footer (an ordinary
 * zip). HS_E_VERIFY: a footer whose signature is malformed or does not
 * verify. HS_E_IO: unreadable. */
hs_result hs_ota_wholefile_verify(const char *path, hs_ota_signature *out,
                                  hs_error *e) HS_MUST_CHECK;
void hs_ota_signature_free(hs_ota_signature *s);

#endif
