/* Shared by apk_verify*.c; not a public API. The rules follow AOSP
 * apksig's ApkVerifier for a platform range [min_sdk, max_sdk]. */
#ifndef HSMSIGN_ANDROID_APK_VERIFY_INTERNAL_H
#define HSMSIGN_ANDROID_APK_VERIFY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/apk.h"
#include "apk/apk_lineage.h"
#include "apk/apk_verify_alg.h"
#include "zip/zip.h"
#include "util/result.h"

#define HS_SDK_JB_MR2 18
#define HS_SDK_KITKAT 19
#define HS_SDK_N 24
#define HS_SDK_O 26
#define HS_SDK_P 28
#define HS_SDK_R 30
#define HS_SDK_T 33
#define HS_SDK_LATEST 0x7fffffff
/* apksig's Constants.MAX_APK_SIGNERS (and Android 13+'s): more signers
 * than this is refused. apksigner 31 had no limit (docs/apk.md). */
#define HS_APK_MAX_SIGNERS 10

/* Content digests of the APK, computed on first use. */
typedef struct hs_apk_digests {
    const hs_zip *zip;
    uint8_t sha256[32], sha512[64];
    bool have256, have512;
} hs_apk_digests;

hs_result hs_apk_digests_get(hs_apk_digests *d, hs_apk_content_alg alg, const uint8_t **out,
                             size_t *len, hs_error *e) HS_MUST_CHECK;

hs_result hs_apk_cert_set(hs_apk_cert *c, const uint8_t *der, size_t len, hs_error *e) HS_MUST_CHECK;

/* One verified v2/v3/v3.1 signer. */
typedef struct hs_apk_scheme_signer {
    hs_apk_cert cert;          /* its first certificate */
    uint32_t min_sdk, max_sdk; /* v3: the platforms it is for; v2: 0 and HS_SDK_LATEST */
    bool dev_release;          /* v3.1: rotation targets a development release */
    hs_apk_lineage lineage;    /* v3 proof of rotation; points into the APK map */
    uint32_t alg_id;           /* a verified signature's algorithm */
    uint8_t sig_sha256[32];    /* SHA-256 of its first verified signature */
} hs_apk_scheme_signer;

typedef struct hs_apk_scheme_result {
    hs_apk_scheme_signer *signers; /* in block order */
    size_t count;
    hs_apk_lineage lineage;        /* v3: the signers' lineages merged */
} hs_apk_scheme_result;

typedef struct hs_apk_scheme_params {
    uint32_t block_id;  /* HS_APK_BLOCK_ID_V2 / _V3 / _V31 */
    int min_sdk, max_sdk;
    int rotation_min_sdk; /* v3 when a v3.1 block verified: its lowest signer SDK; else 0 */
    /* v2: schemes the platform range knows (bit 1<<2, 1<<3) and found (verified) */
    unsigned supported_schemes, found_schemes;
} hs_apk_scheme_params;

/* Verifies the scheme block value (the ID-value pair's value). */
hs_result hs_apk_verify_scheme(hs_apk_digests *d, const hs_apk_scheme_params *p,
                               const uint8_t *value, size_t len, hs_apk_scheme_result *out,
                               hs_error *e) HS_MUST_CHECK;
void hs_apk_scheme_result_free(hs_apk_scheme_result *r);

typedef struct hs_apk_v1_signer {
    hs_apk_cert cert;
    uint8_t sig_sha256[32]; /* SHA-256 of the SignerInfo's signature */
} hs_apk_v1_signer;

typedef struct hs_apk_v1_result {
    bool present;             /* META-INF/MANIFEST.MF or a signature file exists */
    hs_apk_v1_signer *signers;
    size_t count;
} hs_apk_v1_result;

/* JAR signature verification for [min_sdk, max_sdk], with the v2/v3
 * stripping protection of X-Android-APK-Signed against found_schemes. */
hs_result hs_apk_verify_v1(const hs_zip *z, int min_sdk, int max_sdk, unsigned supported_schemes,
                           unsigned found_schemes, hs_apk_v1_result *out,
                           hs_error *e) HS_MUST_CHECK;
void hs_apk_v1_result_free(hs_apk_v1_result *r);

/* One SignerInfo of a JAR signature block, checked against the .SF bytes. */
typedef struct hs_pkcs7_signer {
    const uint8_t *cert;  /* signer certificate as stored in SignedData */
    size_t cert_len;
    const uint8_t *sig;
    size_t sig_len;
} hs_pkcs7_signer;

/* apksig's verifySigBlockAgainstSigFile: the first SignerInfo (every one
 * from Android 7.0) that verifies; HS_E_VERIFY when none does, or when one
 * is malformed or uses an algorithm some platform in range lacks. */
hs_result hs_apk_pkcs7_verify(const uint8_t *block, size_t block_len, const uint8_t *sf,
                              size_t sf_len, int min_sdk, int max_sdk, const char *what,
                              hs_pkcs7_signer *out, hs_error *e) HS_MUST_CHECK;

#endif
