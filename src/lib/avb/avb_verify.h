/* Verifying AVB images like `avbtool verify_image`: the vbmeta signature
 * with the embedded public key (optionally pinned to an expected key), the
 * digest of every hash descriptor and the root and stored tree of every
 * hashtree descriptor against the partition images, and chain partition
 * descriptors against expected keys or by following them. Partition images
 * are found beside the verified image as NAME + its extension (vbmeta.img
 * -> boot.img), as avbtool does. */
#ifndef HSMSIGN_ANDROID_AVB_VERIFY_H
#define HSMSIGN_ANDROID_AVB_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "avb/avb_alg.h"
#include "avb/avb_info.h"
#include "util/result.h"

typedef struct hs_avb_expected_chain {
    const char *partition_name;
    uint32_t rollback_index_location;
    const uint8_t *public_key; /* AVB key blob */
    size_t public_key_len;
} hs_avb_expected_chain;

typedef struct hs_avb_verify_opts {
    const uint8_t *expected_public_key; /* AVB key blob the top-level image must carry, or NULL */
    size_t expected_public_key_len;
    const hs_avb_expected_chain *chains;
    size_t n_chains;
    bool follow_chain_partitions;       /* verify chained images with the key in the descriptor */
} hs_avb_verify_opts;

typedef struct hs_avb_verify_report {
    unsigned vbmeta_checked;   /* vbmeta structs whose signature (or NONE) was checked */
    unsigned unsigned_vbmeta;  /* of which algorithm NONE */
    unsigned hashes_checked;
    unsigned hashtrees_checked;
    unsigned chains_checked;
} hs_avb_verify_report;

/* RSA PKCS#1 v1.5 check of sig over digest with alg's hash. */
hs_result hs_avb_rsa_verify(EVP_PKEY *key, const hs_avb_alg *alg, const uint8_t *digest,
                            const uint8_t *sig, size_t sig_len, const char *what,
                            hs_error *e) HS_MUST_CHECK;

/* Checks the auth-block hash over header ‖ aux and the signature with the
 * embedded key. Algorithm NONE passes (reported by the caller). */
hs_result hs_avb_vbmeta_verify_signature(const hs_avb_vbmeta *v, const char *what,
                                         hs_error *e) HS_MUST_CHECK;

hs_result hs_avb_verify_image(const char *path, const hs_avb_verify_opts *opts,
                              hs_avb_verify_report *report, hs_error *e) HS_MUST_CHECK;

#endif
