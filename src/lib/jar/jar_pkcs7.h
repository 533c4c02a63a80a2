/* The PKCS#7 SignedData signature block of a JAR signature (.RSA/.EC),
 * encoded in DER by hand exactly as apksig does: digestAlgorithms {H},
 * detached id-data, the certificate, one SignerInfo (version 1,
 * issuerAndSerialNumber, no signed attributes, signature over the .SF). */
#ifndef HSMSIGN_ANDROID_JAR_PKCS7_H
#define HSMSIGN_ANDROID_JAR_PKCS7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/apk_buf.h"
#include "util/result.h"

/* cert_der: the signer's certificate; sha256: digest algorithm SHA-256
 * (else SHA-1); rsa: rsaEncryption as signature algorithm (else
 * id-ecPublicKey). */
hs_result hs_jar_pkcs7_build(const uint8_t *cert_der, size_t cert_len, bool sha256, bool rsa,
                             const uint8_t *sig, size_t sig_len, hs_apk_buf *out,
                             hs_error *e) HS_MUST_CHECK;

/* The same SignedData as Bouncy Castle's CMSSignedDataGenerator writes it
 * for signapk -w (RSA, no signed attributes, detached). */
hs_result hs_jar_pkcs7_build_bc_rsa(const uint8_t *cert_der, size_t cert_len, bool sha256,
                                    const uint8_t *sig, size_t sig_len, hs_apk_buf *out,
                                    hs_error *e) HS_MUST_CHECK;

#endif
