/* The audit key: a signing key pair generated inside the primary token
 * during the provisioning ceremony (a token object, private key sensitive
 * and non-extractable), label "hsmsign-audit". It signs the ceremony
 * transcript and, later, the audit log's checkpoints. Ed25519 where the
 * token supports CKM_EDDSA, else ECDSA P-256 over SHA-256. */
#ifndef HSMSIGN_KEYSTORE_AUDITKEY_H
#define HSMSIGN_KEYSTORE_AUDITKEY_H

#include <openssl/evp.h>
#include <stdint.h>

#include "p11/p11.h"

#define HS_AUDITKEY_LABEL "hsmsign-audit"

typedef enum hs_auditkey_alg {
    HS_AUDITKEY_AUTO = 0, /* Ed25519 when the token can, else P-256 */
    HS_AUDITKEY_ED25519,
    HS_AUDITKEY_P256,
} hs_auditkey_alg;

typedef struct hs_auditkey {
    hs_auditkey_alg alg;
    CK_OBJECT_HANDLE priv, pub;
    EVP_PKEY *public_key; /* owned; freed by hs_auditkey_clear */
} hs_auditkey;

/* "ed25519" or "ecdsa-p256-sha256". */
const char *hs_auditkey_alg_name(hs_auditkey_alg alg);

/* Generates the audit key pair in the (logged-in) token. Fails with
 * HS_E_EXISTS when the token already has one. */
hs_result hs_auditkey_generate(hs_p11 *p, hs_auditkey_alg want, hs_auditkey *out,
                               hs_error *e) HS_MUST_CHECK;

/* Finds the token's audit key. */
hs_result hs_auditkey_find(hs_p11 *p, hs_auditkey *out, hs_error *e) HS_MUST_CHECK;

/* The audit public key alone (*pub owned by the caller): the public
 * object is CKA_PRIVATE=false, so no login is needed. */
hs_result hs_auditkey_find_public(hs_p11 *p, EVP_PKEY **pub, hs_error *e) HS_MUST_CHECK;

/* Signs msg: Ed25519 over the message itself (64 raw bytes); P-256 ECDSA
 * over SHA-256(msg), DER-encoded as `openssl dgst -verify` expects. The
 * signature is verified with the public key before it is returned.
 * *sig is malloc'd. */
hs_result hs_auditkey_sign(hs_p11 *p, const hs_auditkey *k, const uint8_t *msg, size_t len,
                           uint8_t **sig, size_t *sig_len, hs_error *e) HS_MUST_CHECK;

/* The algorithm hs_auditkey_generate would use on the selected token,
 * checking its mechanisms (the ceremony asks before changing anything). */
hs_result hs_auditkey_choose_alg(hs_p11 *p, hs_auditkey_alg want, hs_auditkey_alg *alg,
                                 hs_error *e) HS_MUST_CHECK;

/* Reads an audit public key (SubjectPublicKeyInfo PEM, Ed25519 or P-256)
 * from a file: the auditor's own copy, pinned from outside. */
hs_result hs_auditkey_load_public(const char *path, EVP_PKEY **out, hs_error *e) HS_MUST_CHECK;

/* Verifies a signature made by hs_auditkey_sign with a public key alone
 * (no token), e.g. from a transcript. HS_E_VERIFY when it does not match. */
hs_result hs_auditkey_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, const uint8_t *sig,
                             size_t sig_len, hs_error *e) HS_MUST_CHECK;

/* The public key as PEM (SubjectPublicKeyInfo), malloc'd, and the SHA-256
 * of its DER encoding. */
hs_result hs_auditkey_public_pem(EVP_PKEY *pub, char **pem, uint8_t fingerprint[32],
                                 hs_error *e) HS_MUST_CHECK;

void hs_auditkey_clear(hs_auditkey *k);

#endif
