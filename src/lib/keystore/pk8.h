/* Plaintext private keys being imported (AOSP .pk8 and PEM), parsed by a
 * small strict DER reader instead of OpenSSL so that the private parts are
 * never copied into ordinary heap memory (OpenSSL's d2i would put them in
 * BIGNUMs): every span the parser returns points into the caller's buffer
 * (hs_read_secret_file's locked memory) or, for PEM, into the locked buffer
 * the base64 was decoded into, owned by the hs_pk8_key.
 *
 * Accepted: PKCS#8 PrivateKeyInfo (version 0, unencrypted) holding an RSA
 * or EC P-256 key, bare PKCS#1 RSAPrivateKey and SEC1 ECPrivateKey, each in
 * DER or in a PEM block labelled PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE
 * KEY. DER is read strictly: definite minimal lengths, minimal non-negative
 * INTEGERs, nothing after the key. Encrypted keys are refused. */
#ifndef HSMSIGN_KEYSTORE_PK8_H
#define HSMSIGN_KEYSTORE_PK8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/result.h"

typedef struct hs_pk8_span {
    const uint8_t *p;
    size_t len;
} hs_pk8_span;

/* RSA components in the order of RSAPrivateKey (and of PKCS#11's
 * CKA_MODULUS .. CKA_COEFFICIENT). */
enum {
    HS_PK8_N,
    HS_PK8_E,
    HS_PK8_D,
    HS_PK8_P,
    HS_PK8_Q,
    HS_PK8_DP,
    HS_PK8_DQ,
    HS_PK8_QINV,
    HS_PK8_RSA_PARTS
};

typedef struct hs_pk8_key {
    bool rsa;
    /* RSA: big-endian magnitudes, no sign byte. */
    hs_pk8_span rsa_parts[HS_PK8_RSA_PARTS];
    /* EC P-256: the 32-byte private scalar and the public point (SEC1). */
    hs_pk8_span ec_scalar, ec_point;
    /* PEM input: the DER decoded from it (locked memory), which the spans
     * point into; NULL for DER input. */
    uint8_t *der;
    size_t der_cap;
} hs_pk8_key;

/* Parses a private key file's bytes. Failures name path: HS_E_FORMAT
 * "PATH: not an unencrypted PKCS#8 (.pk8) or PEM private key (REASON)",
 * HS_E_USAGE for a well-formed key of a type hsmsign does not sign with.
 * in must outlive out. Free with hs_pk8_free, also after a failure. */
hs_result hs_pk8_parse(const uint8_t *in, size_t len, const char *path, hs_pk8_key *out,
                       hs_error *e) HS_MUST_CHECK;

/* The public half as an OpenSSL key (public data only), to compare with
 * the certificate and to learn the key's size. */
hs_result hs_pk8_public(const hs_pk8_key *k, const char *path, EVP_PKEY **out,
                        hs_error *e) HS_MUST_CHECK;

/* Wipes and frees what the key owns; the spans are cleared. */
void hs_pk8_free(hs_pk8_key *k);

#endif
