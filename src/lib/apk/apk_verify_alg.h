/* The APK Signature Scheme v2/v3 signature algorithms as a verifier sees
 * them (apksig's SignatureAlgorithm): which key type, hash, padding,
 * content digest and lowest platform each ID means. The signer's own table
 * (apk_signing_block.h) only holds what hsmsign signs with; this one also
 * knows DSA and the verity variants, which appear in APKs from elsewhere. */
#ifndef HSMSIGN_ANDROID_APK_VERIFY_ALG_H
#define HSMSIGN_ANDROID_APK_VERIFY_ALG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

typedef enum hs_apk_key_type { HS_APK_KEY_RSA, HS_APK_KEY_EC, HS_APK_KEY_DSA } hs_apk_key_type;

typedef enum hs_apk_content_alg {
    HS_APK_CONTENT_SHA256 = 1, /* chunked SHA-256 */
    HS_APK_CONTENT_SHA512 = 2, /* chunked SHA-512 */
    HS_APK_CONTENT_VERITY = 3, /* fs-verity root of SHA-256 4 KiB blocks */
} hs_apk_content_alg;

typedef struct hs_apk_valg {
    uint32_t id;
    hs_apk_key_type key;
    bool pss;             /* RSA-PSS, MGF1 with the same hash, salt = hash length */
    bool sha512;          /* the signature's hash (else SHA-256) */
    hs_apk_content_alg content;
    int min_sdk;          /* first platform that verifies it */
} hs_apk_valg;

/* NULL when the ID is unknown (such signatures are skipped, as Android does). */
const hs_apk_valg *hs_apk_valg_find(uint32_t id);

/* true when sig is alg's signature of data by key; false for a wrong key
 * type as well (apksig reports that as a malformed key). */
bool hs_apk_valg_verify(const hs_apk_valg *alg, EVP_PKEY *key, const uint8_t *data, size_t len,
                        const uint8_t *sig, size_t sig_len);

#endif
