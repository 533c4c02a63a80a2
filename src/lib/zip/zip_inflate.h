/* Raw DEFLATE (RFC 1951) decoder and CRC-32 (zlib's), for reading
 * compressed ZIP entries whole (AndroidManifest.xml, v1 entry digests).
 * Output is bounded by the size the central directory declares, and the
 * CRC-32 is checked. */
#ifndef HSMSIGN_ANDROID_ZIP_INFLATE_H
#define HSMSIGN_ANDROID_ZIP_INFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "zip/zip.h"
#include "util/result.h"

uint32_t hs_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/* Decodes exactly out_len bytes from in; false on malformed or
 * mis-sized input. */
bool hs_inflate_raw(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len);

/* An entry's uncompressed bytes (stored or deflated), malloc'd, at most
 * max_len bytes, CRC-checked. */
hs_result hs_zip_read_entry(const hs_zip *z, const hs_zip_entry *ent, size_t max_len,
                            uint8_t **out, size_t *out_len, hs_error *e) HS_MUST_CHECK;

#endif
