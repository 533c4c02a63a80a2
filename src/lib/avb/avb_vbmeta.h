/* Building a vbmeta struct (`avbtool make_vbmeta_image`, and the vbmeta
 * that add_hash_footer / add_hashtree_footer append): header,
 * authentication block (hash ‖ signature), auxiliary block (descriptors ‖
 * public key ‖ public key metadata), byte-identical to avbtool 1.3.0.
 *
 * The library never holds the private key: the signature comes from ONE
 * hs_sign_fn call (RSA PKCS#1 v1.5, SHA-256 or SHA-512 by algorithm) over
 * the digest of header ‖ auxiliary block; the result is checked against
 * opts->public_key before it is embedded. */
#ifndef HSMSIGN_ANDROID_AVB_VBMETA_H
#define HSMSIGN_ANDROID_AVB_VBMETA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "avb/avb_bytes.h"
#include "signer/sign_fn.h"
#include "util/result.h"

/* Options shared by make_vbmeta_image and the footer commands, named like
 * avbtool's flags. Strings are borrowed. */
typedef struct hs_avb_vbmeta_opts {
    const char *algorithm;           /* "SHA256_RSA4096", ...; NULL or "NONE": unsigned */
    EVP_PKEY *public_key;            /* the signing key's public half; required unless NONE */
    const char *key_name;            /* key store name, passed to the signer */
    const char *public_key_metadata_path;
    uint64_t rollback_index;
    uint32_t flags;                  /* HS_AVB_FLAG_* */
    uint32_t rollback_index_location;
    const char *const *props;        /* "KEY:VALUE" */
    size_t n_props;
    const char *const *props_from_file; /* "KEY:PATH" */
    size_t n_props_from_file;
    const char *const *kernel_cmdlines;
    size_t n_kernel_cmdlines;
    const char *const *include_descriptors_from_image; /* vbmeta images or images with a footer */
    size_t n_include_descriptors_from_image;
    const char *const *chain_partitions; /* "NAME:ROLLBACK_INDEX_LOCATION:PUBKEY_PATH" */
    size_t n_chain_partitions;
    const char *release_string;      /* NULL: "avbtool 1.3.0" */
    const char *append_to_release_string;
} hs_avb_vbmeta_opts;

/* What was signed, for the CLI's report and --json output. */
typedef struct hs_avb_report {
    const char *algorithm;           /* static string */
    bool signed_vbmeta;              /* false for NONE */
    uint8_t vbmeta_digest[64];       /* hash of header ‖ aux (the auth-block hash) */
    size_t vbmeta_digest_len;
    uint8_t tbs_sha256[32];          /* SHA-256 of header ‖ aux, as audited */
    uint64_t vbmeta_size;            /* unpadded */
    uint32_t required_minor;
    /* footers only */
    uint64_t original_image_size, vbmeta_offset, partition_size;
    uint8_t image_digest[64];        /* hash descriptor digest or hashtree root */
    size_t image_digest_len;
    uint64_t tree_offset, tree_size;
} hs_avb_report;

/* Builds the vbmeta blob into *out (zero it first). first_descs are encoded
 * descriptors placed first (a footer's own hash or hashtree descriptor);
 * min_required_minor is the caller's own libavb requirement. artifact names
 * the image for the signer's audit entry. */
hs_result hs_avb_vbmeta_build(const hs_avb_vbmeta_opts *opts, const uint8_t *first_descs,
                              size_t first_len, uint32_t min_required_minor,
                              const hs_sign_fn *signer, const char *artifact, hs_avb_buf *out,
                              hs_avb_report *report, hs_error *e) HS_MUST_CHECK;

/* make_vbmeta_image: writes the vbmeta struct to output_path atomically,
 * zero-padded to a multiple of padding_size when it is not 0. */
hs_result hs_avb_make_vbmeta_image(const char *output_path, const hs_avb_vbmeta_opts *opts,
                                   uint64_t padding_size, const hs_sign_fn *signer,
                                   hs_avb_report *report, hs_error *e) HS_MUST_CHECK;

#endif
