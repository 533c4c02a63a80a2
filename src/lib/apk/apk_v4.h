/* APK Signature Scheme v4: the .idsig file beside the APK (incremental
 * install), as apksigner writes it:
 *   u32 version=2 | lp(hashing_info) | lp(signing_info) | lp(merkle tree)
 *   hashing_info = u32 1 (SHA-256) | u8 12 (4 KiB) | lp(salt: empty) | lp(root)
 *   signing_info = lp(apk digest) | lp(cert) | lp(additional: empty) |
 *                  lp(SPKI) | u32 alg_id | lp(signature)
 * The signature covers u32 size | u64 file size | u32 1 | u8 12 | lp(salt)
 * | lp(root) | lp(apk digest) | lp(cert) | lp(additional). The tree is
 * fs-verity's: SHA-256 of every 4 KiB block of the whole APK (the last one
 * zero-padded), level by level up to one page, stored root level first. */
#ifndef HSMSIGN_ANDROID_APK_V4_H
#define HSMSIGN_ANDROID_APK_V4_H

#include <stddef.h>
#include <stdint.h>

#include "apk/apk_buf.h"
#include "util/result.h"

typedef struct hs_apk_v4 {
    hs_apk_buf tree;
    uint8_t root[32];
    uint64_t file_size;
    const uint8_t *apk_digest; /* the v3 (else v2) content digest */
    size_t apk_digest_len;
    const uint8_t *cert_der;
    size_t cert_der_len;
    const uint8_t *spki_der;
    size_t spki_der_len;
} hs_apk_v4;

/* Hashes the first file_size bytes of fd into v4->tree and v4->root. */
hs_result hs_apk_v4_tree(hs_apk_v4 *v4, int fd, uint64_t file_size, const char *what,
                         hs_error *e) HS_MUST_CHECK;
/* The bytes the v4 signature covers. */
hs_result hs_apk_v4_signed_data(const hs_apk_v4 *v4, hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;
/* One signing_info (without its length prefix) for v4's signer. */
hs_result hs_apk_v4_signing_info(const hs_apk_v4 *v4, uint32_t alg_id, const uint8_t *sig,
                                 size_t sig_len, hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;
/* The whole .idsig file. v31_info (NULL: none): the v3.1 signer's
 * signing_info, which apksig appends to the v3.0 signer's inside the
 * signing_info field as u32 block ID 0x1b93ad61 | lp(signing_info). */
hs_result hs_apk_v4_file(const hs_apk_v4 *v4, uint32_t alg_id, const uint8_t *sig, size_t sig_len,
                         const hs_apk_buf *v31_info, hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;
void hs_apk_v4_free(hs_apk_v4 *v4);

#endif
