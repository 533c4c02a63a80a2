/* Encoders for the five AVB descriptor types, byte-compatible with
 * avbtool's encode(): big-endian fixed part, variable fields, zero padding
 * to a multiple of 8. */
#ifndef HSMSIGN_ANDROID_AVB_DESC_H
#define HSMSIGN_ANDROID_AVB_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "avb/avb_bytes.h"
#include "avb/avb_info.h"

hs_result hs_avb_desc_property(hs_avb_buf *out, const char *key, size_t key_len,
                               const uint8_t *value, size_t value_len, hs_error *e) HS_MUST_CHECK;

hs_result hs_avb_desc_kernel_cmdline(hs_avb_buf *out, uint32_t flags, const char *cmdline,
                                     hs_error *e) HS_MUST_CHECK;

/* Partition names are file names: verification finds a partition's image
 * as NAME + the vbmeta image's extension beside it, so a name is a plain
 * name: 1 to 128 bytes of printable ASCII, no '/', no "..". `where` (the
 * image or option the name came from) starts the message, which shows the
 * name with control bytes escaped. An empty name is accepted only when
 * allow_empty (hash and hashtree descriptors of the image itself). */
hs_result hs_avb_partition_name_check(const uint8_t *name, size_t len, bool allow_empty,
                                      const char *where, hs_error *e) HS_MUST_CHECK;

hs_result hs_avb_desc_chain(hs_avb_buf *out, const char *partition_name,
                            uint32_t rollback_index_location, const uint8_t *pubkey,
                            size_t pubkey_len, uint32_t flags, hs_error *e) HS_MUST_CHECK;

/* Hash and hashtree descriptors from the parsed form (hs_avb_desc fields:
 * partition_name, salt and digest point at caller-owned bytes). */
hs_result hs_avb_desc_hash(hs_avb_buf *out, const hs_avb_desc *d, hs_error *e) HS_MUST_CHECK;
hs_result hs_avb_desc_hashtree(hs_avb_buf *out, const hs_avb_desc *d, hs_error *e) HS_MUST_CHECK;

/* Re-encodes a parsed descriptor the way avbtool does when it copies
 * descriptors from another image: the meaningful bytes, then zero padding. */
hs_result hs_avb_desc_copy(hs_avb_buf *out, const hs_avb_desc *d, hs_error *e) HS_MUST_CHECK;

#endif
