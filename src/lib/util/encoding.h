/* Hex and base64 encodings, and constant-time comparison. */
#ifndef HSMSIGN_UTIL_ENCODING_H
#define HSMSIGN_UTIL_ENCODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/* Lower-case hex; out must hold 2*len+1 bytes. */
void hs_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly out_len bytes from a hex string of 2*out_len digits
 * (either case). Returns false on any other length or a non-hex digit. */
bool hs_hex_decode(const char *in, uint8_t *out, size_t out_len) HS_MUST_CHECK;

/* Standard base64 with padding, no line breaks. Returns a malloc'd
 * NUL-terminated string, or NULL on allocation failure. */
char *hs_base64_encode(const uint8_t *in, size_t len);
/* Strict decoder: canonical padded base64, no whitespace. Returns false on
 * malformed input. *out is malloc'd. */
bool hs_base64_decode(const char *in, uint8_t **out, size_t *out_len) HS_MUST_CHECK;

/* Constant-time equality for MACs, digests and check values. */
bool hs_ct_equal(const void *a, const void *b, size_t len);

#endif
