/* APK Signing Block and the v2/v3 scheme values inside it, laid out
 * exactly as apksig (apksigner) writes them. */
#ifndef HSMSIGN_ANDROID_APK_SIGNING_BLOCK_H
#define HSMSIGN_ANDROID_APK_SIGNING_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "apk/apk_buf.h"
#include "signer/sigalg.h"
#include "util/result.h"

#define HS_APK_BLOCK_ID_V2 0x7109871au
#define HS_APK_BLOCK_ID_V3 0xf05368c0u
#define HS_APK_BLOCK_ID_V31 0x1b93ad61u
#define HS_APK_BLOCK_ID_PADDING 0x42726577u
#define HS_APK_BLOCK_MAGIC "APK Sig Block 42"
#define HS_APK_BLOCK_ALIGNMENT 4096u
/* Additional attribute in v2 signed data saying "v3 was applied too", so
 * Android 9+ rejects the APK if someone strips the v3 block. */
#define HS_APK_ATTR_STRIPPING_PROTECTION 0xbeeff00du
#define HS_APK_V3_MAX_SDK 0x7fffffffu
/* v3 signed data's attribute carrying the signing certificate lineage. */
#define HS_APK_ATTR_PROOF_OF_ROTATION 0x3ba06f8cu
/* v3.0 signed data's attribute naming the SDK from which the v3.1 block
 * takes over: Android 13+ rejects the APK if that block is stripped. */
#define HS_APK_ATTR_ROTATION_MIN_SDK 0x559f8b02u
/* v3.1 signed data's attribute: the rotation targets the development
 * release that still reports the last release's SDK version. */
#define HS_APK_ATTR_ROTATION_DEV_RELEASE 0xc2a6b3bau

/* An APK signature algorithm: its ID, the hs_sig_alg the signer uses, the
 * hash of the chunked content digest and the lowest SDK that knows it. */
typedef struct hs_apk_sig_algorithm {
    uint32_t id;
    hs_sig_alg alg;
    const EVP_MD *content_md;
    uint32_t min_sdk;
} hs_apk_sig_algorithm;

/* apksigner's choice for a key: RSA <= 3072 bits PKCS#1 SHA-256 (0x0103),
 * larger SHA-512 (0x0104); EC P-256 ECDSA SHA-256 (0x0201), larger curves
 * SHA-512 (0x0202). */
hs_result hs_apk_choose_algorithm(EVP_PKEY *pub, const char *what, hs_apk_sig_algorithm *out,
                                  hs_error *e) HS_MUST_CHECK;
/* Looks an algorithm ID up (for the verifier); false when unknown. */
bool hs_apk_algorithm_by_id(uint32_t id, hs_apk_sig_algorithm *out);

typedef enum hs_apk_scheme { HS_APK_SCHEME_V2 = 2, HS_APK_SCHEME_V3 = 3 } hs_apk_scheme;

typedef struct hs_apk_signer_input {
    const hs_apk_sig_algorithm *algorithm;
    const uint8_t *content_digest;
    size_t content_digest_len;
    const uint8_t *cert_der;
    size_t cert_der_len;
    const uint8_t *spki_der; /* SubjectPublicKeyInfo of the signing key */
    size_t spki_der_len;
    bool v3_also;            /* v2 only: add the stripping-protection attribute */
    /* v3 only: the proof-of-rotation attribute's value (lineage version and
     * nodes, apk_lineage_write.h); NULL: none. */
    const uint8_t *lineage;
    size_t lineage_len;
    /* v3 only: the platforms this signer is for (the v3.0 or v3.1 block). */
    uint32_t min_sdk, max_sdk;
    /* v3.0 next to a v3.1 block: that block's lowest SDK (the
     * HS_APK_ATTR_ROTATION_MIN_SDK attribute); 0: none. */
    uint32_t rotation_min_sdk_attr;
    bool dev_release_attr;   /* v3.1: HS_APK_ATTR_ROTATION_DEV_RELEASE */
} hs_apk_signer_input;

/* The signed_data the signature covers (without its own length prefix). */
hs_result hs_apk_build_signed_data(hs_apk_scheme scheme, const hs_apk_signer_input *in,
                                   hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;
/* The whole scheme value (the ID-value pair's value) with one signer. */
hs_result hs_apk_build_scheme_value(hs_apk_scheme scheme, const hs_apk_signer_input *in,
                                    const hs_apk_buf *signed_data, const uint8_t *sig,
                                    size_t sig_len, hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;

typedef struct hs_apk_block_pair {
    uint32_t id;
    const uint8_t *value;
    size_t len;
} hs_apk_block_pair;

/* Size prefix, pairs, the verity-padding pair that rounds the block to a
 * multiple of 4096 (as apksig does), size again, magic. */
hs_result hs_apk_build_signing_block(const hs_apk_block_pair *pairs, size_t count,
                                     hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;

/* Finds the value of pair id in a signing block (as located by hs_zip:
 * block_len bytes from the leading size to the magic). */
hs_result hs_apk_block_find(const uint8_t *block, size_t block_len, uint32_t id,
                            const uint8_t **value, size_t *value_len, bool *found,
                            hs_error *e) HS_MUST_CHECK;

#endif
