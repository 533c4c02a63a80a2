/* APEX files: an APK-signed zip container holding apex_payload.img (a file
 * system image with an AVB hashtree footer signed by the payload key) and
 * apex_pubkey (that key's AVB public key blob).
 *
 * hs_apex_sign re-signs an uncompressed APEX byte-identically to AOSP
 * releasetools' apex_utils.SignUncompressedApex (sign_apex.py) with the
 * same keys:
 *   1. the payload's footer is read as ParseApexPayloadInfo reads
 *      `avbtool info_image`: the vbmeta algorithm, the (last) hash
 *      algorithm and salt, the apex.key property;
 *   2. `avbtool add_hashtree_footer --do_not_generate_fec --algorithm A
 *      --key PAYLOAD --prop apex.key:NAME --salt S --hash_algorithm H`:
 *      no partition size and no partition name, so the old footer is
 *      replaced by tree ‖ vbmeta ‖ footer block right after the image,
 *      every other property of the old vbmeta dropped;
 *   3. apex_payload.img and apex_pubkey are deleted (zip2zip) and appended
 *      again STORED with mode 0100644 (common.ZipWrite in a ZipFile opened
 *      'a'), the other entries keep their data, method and attributes;
 *   4. the container is signed like `signapk -a 4096 --align-file-size
 *      [--min-sdk-version N]` (signapk/signapk.h).
 * Signapk rewrites the whole archive (sorted names, re-deflated data,
 * fixed times), so of the intermediate zip only what signapk reads
 * matters: names, methods, data, and the Unix mode of stored entries;
 * that is what step 3 reproduces.
 *
 * Not supported (refused with a message): compressed APEXes (.capex,
 * original_apex inside), payloads stored deflated. APKs inside the payload
 * are not re-signed (releasetools would need `-e` keys and apexer for
 * them); the payload file system is not read.
 *
 * Both signatures go through the hs_sign_fn: the payload's vbmeta (audit
 * operation "avb-vbmeta", artifact "IN!apex_payload.img") and the
 * container's v1/v2/v3 signatures. */
#ifndef HSMSIGN_APEX_APEX_H
#define HSMSIGN_APEX_APEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "apk/apk.h"
#include "apk/apk_buf.h"
#include "avb/avb_info.h"
#include "signer/sign_fn.h"
#include "util/result.h"
#include "zip/zip.h"

#define HS_APEX_PAYLOAD "apex_payload.img"
#define HS_APEX_PUBKEY "apex_pubkey"
#define HS_APEX_ALIGNMENT 4096

/* What releasetools' ParseApexPayloadInfo takes from the payload. */
typedef struct hs_apex_payload_info {
    const hs_avb_alg *alg;        /* vbmeta algorithm (never NONE) */
    char hash_algorithm[33];      /* of the last hash/hashtree descriptor */
    char *salt_hex;               /* its salt, lower-case hex, malloc'd ("" when empty) */
    char *apex_key;               /* the last apex.key property, malloc'd */
} hs_apex_payload_info;

/* The payload entry of an open APEX container (stored, as every APEX
 * has it) and its vbmeta, read from the footer at the entry's end.
 * Errors name the file and what is missing: no apex_payload.img (not an
 * APEX), original_apex (compressed), a deflated payload, no AVB footer. */
hs_result hs_apex_payload_vbmeta(const hs_zip *z, const hs_zip_entry **payload,
                                 hs_avb_vbmeta *vbmeta, hs_error *e) HS_MUST_CHECK;

/* ParseApexPayloadInfo over a parsed payload vbmeta (what names the
 * payload in messages). */
hs_result hs_apex_payload_info_get(const hs_avb_vbmeta *v, const char *what,
                                   hs_apex_payload_info *info, hs_error *e) HS_MUST_CHECK;
void hs_apex_payload_info_free(hs_apex_payload_info *info);

typedef struct hs_apex_sign_options {
    const char *payload_key;      /* key store name of the payload key */
    EVP_PKEY *payload_public;     /* its public key (RSA, the size the payload's algorithm needs) */
    const hs_apk_key *container;  /* the container key and certificate */
    int min_sdk;                  /* --min-sdk-version; -1: the container's AndroidManifest.xml */
    const char *tmp_dir;          /* where the work files go (a private directory is made
                                     in it and removed); NULL: /tmp */
} hs_apex_sign_options;

typedef struct hs_apex_sign_result {
    hs_apk_buf out;               /* the signed APEX */
    int min_sdk;
    unsigned signatures;          /* payload + container */
    char *apex_key;               /* the payload's apex.key name, malloc'd */
    char algorithm[32];           /* payload algorithm */
    uint8_t input_sha256[32], output_sha256[32];
} hs_apex_sign_result;

hs_result hs_apex_sign(const char *in, const hs_apex_sign_options *opt, hs_sign_fn sign,
                       hs_apex_sign_result *res, hs_error *e) HS_MUST_CHECK;
void hs_apex_sign_result_free(hs_apex_sign_result *res);

#endif
