/* Shared by apk_verify*.c; not a public API. */
#ifndef HSMSIGN_ANDROID_APK_VERIFY_INTERNAL_H
#define HSMSIGN_ANDROID_APK_VERIFY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "android/zip.h"
#include "util/result.h"

typedef struct hs_apk_v1_result {
    bool present;                /* MANIFEST.MF and a signature file exist */
    bool signed_with_v2, signed_with_v3; /* X-Android-APK-Signed */
    uint8_t *cert_der;           /* malloc'd signer certificate */
    size_t cert_der_len;
    uint8_t sig_sha256[32];      /* SHA-256 of the signer's signature bytes */
} hs_apk_v1_result;

/* JAR signature: .SF signed by the PKCS#7 block, MANIFEST.MF digest in the
 * .SF, every content entry's digest in MANIFEST.MF and nothing extra. */
hs_result hs_apk_verify_v1(const hs_zip *z, hs_apk_v1_result *out, hs_error *e) HS_MUST_CHECK;

/* v2 additional attributes: the stripping-protection attribute naming v3
 * requires a v3 block. */
hs_result hs_apk_verify_v2_attrs(const uint8_t *attrs, size_t len, bool v3_present,
                                 hs_error *e) HS_MUST_CHECK;

#endif
