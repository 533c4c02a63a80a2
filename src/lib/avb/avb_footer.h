/* `avbtool add_hash_footer` and `add_hashtree_footer`: append the vbmeta
 * struct (and for hashtree images the dm-verity hash tree) to a partition
 * image and end the partition with the 64-byte AVB footer, byte-identical
 * to avbtool 1.3.0.
 *
 * Layout (partition_size bytes, a multiple of 4096; for hashtree footers a
 * partition_size of 0 is avbtool's default: no partition, the footer block
 * right after the vbmeta, as releasetools re-signs APEX payloads):
 *   hash:     image ‖ zeros to 4096 ‖ vbmeta ‖ zeros ... ‖ footer block
 *   hashtree: image ‖ zeros to 4096 ‖ hash tree ‖ vbmeta ‖ zeros ... ‖ footer block
 * where the footer block is 4032 zero bytes and the AvbFooter.
 *
 * Like avbtool, an existing footer is replaced (the image is cut back to
 * the footer's original size first). Unlike avbtool, the change is
 * crash-safe and any error leaves the image unchanged: an image without a
 * footer is changed in place (same inode, only the tail written) under the
 * protocol of avb_inplace.h; an image with a footer (or one not writable)
 * is rewritten to a temporary file beside it, fsynced and renamed over the
 * original. The image is read once, in bounded chunks. FEC is not generated (it needs AOSP's
 * `fec` tool): callers must set do_not_generate_fec, as avbtool's
 * --do_not_generate_fec. */
#ifndef HSMSIGN_ANDROID_AVB_FOOTER_H
#define HSMSIGN_ANDROID_AVB_FOOTER_H

#include <stdbool.h>
#include <stdint.h>

#include "avb/avb_vbmeta.h"
#include "signer/sign_fn.h"
#include "util/result.h"

typedef struct hs_avb_footer_opts {
    const char *partition_name;  /* "" is avbtool's default (no --partition_name) */
    uint64_t partition_size;     /* multiple of 4096; hashtree: 0 = end right after the metadata */
    const char *artifact;        /* names the image in the audit entry; NULL: image_path */
    const char *hash_algorithm;  /* NULL: avbtool's default (sha256 hash, sha1 hashtree) */
    const char *salt_hex;        /* NULL: random salt of the digest size; "": no salt */
    bool do_not_generate_fec;    /* hashtree: required, FEC generation is not supported */
    hs_avb_vbmeta_opts vbmeta;   /* algorithm, key, rollback index, props, ... */
} hs_avb_footer_opts;

hs_result hs_avb_add_hash_footer(const char *image_path, const hs_avb_footer_opts *opts,
                                 const hs_sign_fn *signer, hs_avb_report *report,
                                 hs_error *e) HS_MUST_CHECK;

hs_result hs_avb_add_hashtree_footer(const char *image_path, const hs_avb_footer_opts *opts,
                                     const hs_sign_fn *signer, hs_avb_report *report,
                                     hs_error *e) HS_MUST_CHECK;

#endif
