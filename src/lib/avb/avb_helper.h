/* avbtool's signing helper protocol (`--signing_helper APP`): avbtool runs
 * `APP ALGORITHM KEY` and writes the already padded PKCS#1 v1.5 block
 *   EM = 00 01 FF..FF 00 ‖ DigestInfo ‖ digest      (modulus length)
 * to its stdin, expecting the raw RSA signature of EM on stdout
 * (`--signing_helper_with_files`: the same block in a file that the helper
 * overwrites). An HSM should not do raw RSA on caller-supplied blocks, so
 * the block is parsed and CHECKED here - structure, padding, and that the
 * DigestInfo names the algorithm's hash - and only the digest goes on to
 * hs_sign_fn (CKM_RSA_PKCS over the DigestInfo), which yields the very same
 * signature bytes. */
#ifndef HSMSIGN_ANDROID_AVB_HELPER_H
#define HSMSIGN_ANDROID_AVB_HELPER_H

#include <stddef.h>
#include <stdint.h>

#include "avb/avb_alg.h"
#include "util/result.h"

#define HS_AVB_DIGEST_INFO_PREFIX_LEN 19

typedef struct hs_avb_helper_block {
    const hs_avb_alg *alg;      /* from the ALGORITHM argument */
    hs_sig_alg sig_alg;         /* RSA PKCS#1 SHA-256 or SHA-512: what to ask the signer for */
    uint8_t digest[64];
    size_t digest_len;
    uint8_t digest_info[HS_AVB_DIGEST_INFO_PREFIX_LEN + 64]; /* DER DigestInfo ‖ digest */
    size_t digest_info_len;
} hs_avb_helper_block;

/* Parses and checks block (len must be the algorithm's modulus length). */
hs_result hs_avb_helper_parse_block(const char *algorithm, const uint8_t *block, size_t len,
                                    hs_avb_helper_block *out, hs_error *e) HS_MUST_CHECK;

#endif
