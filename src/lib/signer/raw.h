/* `sign raw`: a detached signature over a whole file, as `openssl dgst
 * -sign` makes it (raw RSA bytes; DER ECDSA-Sig-Value), for anything the
 * Android tools sign with OpenSSL. One pass over the input computes the
 * algorithm's digest and the SHA-256 for the audit entry together. */
#ifndef HSMSIGN_SIGNER_RAW_H
#define HSMSIGN_SIGNER_RAW_H

#include "signer/signer.h"

typedef struct hs_raw_report {
    uint64_t input_size;
    uint8_t input_sha256[32];
    uint8_t sig_sha256[32];
    size_t sig_len;
} hs_raw_report;

hs_result hs_sign_raw_file(hs_signer *s, const char *key_name, hs_sig_alg alg, const char *in,
                           const char *out, hs_raw_report *rep, hs_error *e) HS_MUST_CHECK;

/* Hashes a file once with two digests (md and SHA-256). */
hs_result hs_hash_file(const char *path, const EVP_MD *md, uint8_t *digest, unsigned *digest_len,
                       uint8_t sha256[32], uint64_t *size, hs_error *e) HS_MUST_CHECK;

#endif
