/* AVB 2.0 constants: the vbmeta signature algorithms (AvbAlgorithmType),
 * the descriptor hash functions, the release string avbtool 1.3.0 writes,
 * and the fixed sizes of the on-disk structures. */
#ifndef HSMSIGN_ANDROID_AVB_ALG_H
#define HSMSIGN_ANDROID_AVB_ALG_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "signer/sigalg.h"

/* What avbtool 1.3.0 (the version our vectors come from) writes. */
#define HS_AVB_RELEASE_STRING "avbtool 1.3.0"
#define HS_AVB_RELEASE_STRING_MAX 47 /* 48-byte field, NUL-terminated */

#define HS_AVB_HEADER_SIZE 256
#define HS_AVB_FOOTER_SIZE 64
#define HS_AVB_BLOCK_SIZE 4096
/* avbtool's conservative room for metadata when checking partition sizes. */
#define HS_AVB_MAX_VBMETA_SIZE (64 * 1024)
#define HS_AVB_MAX_FOOTER_SIZE 4096

/* libavb version this code writes and accepts. */
#define HS_AVB_VERSION_MAJOR 1
#define HS_AVB_VERSION_MINOR_MAX 3

#define HS_AVB_FLAG_HASHTREE_DISABLED 1u
#define HS_AVB_FLAG_VERIFICATION_DISABLED 2u

enum {
    HS_AVB_DESC_PROPERTY = 0,
    HS_AVB_DESC_HASHTREE = 1,
    HS_AVB_DESC_HASH = 2,
    HS_AVB_DESC_KERNEL_CMDLINE = 3,
    HS_AVB_DESC_CHAIN_PARTITION = 4,
};

typedef struct hs_avb_alg {
    const char *name;      /* "SHA256_RSA4096" */
    uint32_t type;         /* AvbAlgorithmType */
    size_t hash_len;       /* 0 for NONE */
    size_t sig_len;        /* = modulus bytes */
    size_t pubkey_len;     /* AvbRSAPublicKeyHeader blob size */
    hs_sig_alg sig_alg;    /* what hs_sign_fn is asked for */
} hs_avb_alg;

const hs_avb_alg *hs_avb_alg_by_name(const char *name);
const hs_avb_alg *hs_avb_alg_by_type(uint32_t type);
/* NULL for NONE. */
const EVP_MD *hs_avb_alg_md(const hs_avb_alg *alg);

/* Hash functions allowed in hash and hashtree descriptors ("sha1",
 * "sha256", "sha512"); NULL for anything else. */
const EVP_MD *hs_avb_hash_md(const char *name);

#endif
