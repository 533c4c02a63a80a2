/* Signature algorithms hsmsign produces, independent of the format that
 * carries them. Every format (raw, APK, JAR, AVB, OTA, X.509) names one of
 * these; the signer maps it to a PKCS#11 mechanism. */
#ifndef HSMSIGN_SIGNER_SIGALG_H
#define HSMSIGN_SIGNER_SIGALG_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

typedef enum hs_sig_alg {
    HS_SIG_RSA_PKCS1_SHA1,   /* legacy JAR (minSdk < 18) and old OTA only */
    HS_SIG_RSA_PKCS1_SHA256,
    HS_SIG_RSA_PKCS1_SHA512,
    HS_SIG_RSA_PSS_SHA256,   /* MGF1 with the same hash, salt = hash length */
    HS_SIG_RSA_PSS_SHA512,
    HS_SIG_ECDSA_SHA256,     /* signature returned DER-encoded (ECDSA-Sig-Value) */
    HS_SIG_ECDSA_SHA512,
} hs_sig_alg;

#define HS_SIG_ALG_COUNT 7
#define HS_MAX_DIGEST_LEN 64

/* Names used on the command line and in audit entries: "rsa-pkcs1-sha256",
 * "rsa-pss-sha256", "ecdsa-p256-sha256" (ECDSA names carry the curve the
 * key must be on only for P-256 keys; "ecdsa-sha512" otherwise). */
const char *hs_sig_alg_name(hs_sig_alg alg);
bool hs_sig_alg_parse(const char *name, hs_sig_alg *out);

const EVP_MD *hs_sig_alg_md(hs_sig_alg alg);
size_t hs_sig_alg_digest_len(hs_sig_alg alg);
bool hs_sig_alg_is_rsa(hs_sig_alg alg);
bool hs_sig_alg_is_pss(hs_sig_alg alg);
bool hs_sig_alg_is_ecdsa(hs_sig_alg alg);

#endif
