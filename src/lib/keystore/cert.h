/* Self-signed X.509 certificates whose signature comes from the HSM.
 *
 * OpenSSL builds the TBSCertificate; its SHA-256 goes through hs_sign_fn
 * (the signer chokepoint), and the Certificate is assembled around the
 * returned signature, so the private key never needs to be an OpenSSL
 * object. */
#ifndef HSMSIGN_KEYSTORE_CERT_H
#define HSMSIGN_KEYSTORE_CERT_H

#include <openssl/x509.h>

#include "keystore/keyalg.h"
#include "signer/sign_fn.h"

/* Parses "CN=platform, O=Android, C=US" or the OpenSSL "/C=US/O=Android/CN=platform"
 * form. Commas inside a value can be escaped as "\,". */
hs_result hs_dn_parse(const char *text, X509_NAME **out, hs_error *e) HS_MUST_CHECK;

hs_result hs_cert_self_signed(EVP_PKEY *pub, hs_keyalg alg, const char *subject,
                              unsigned validity_days, const char *key_name, hs_sign_fn sign,
                              X509 **out, hs_error *e) HS_MUST_CHECK;

/* Writes the certificate as DER into a malloc'd buffer. */
hs_result hs_cert_der(X509 *cert, uint8_t **der, size_t *len, hs_error *e) HS_MUST_CHECK;

#endif
