/* The AVB public key blob (AvbRSAPublicKeyHeader followed by the modulus
 * and R^2 mod n), as written by `avbtool extract_public_key`, embedded in
 * vbmeta images and chain partition descriptors, and flashed as
 * avb_pkmd.bin. The exponent is always 65537. */
#ifndef HSMSIGN_ANDROID_AVB_PUBKEY_H
#define HSMSIGN_ANDROID_AVB_PUBKEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/result.h"

/* Encodes an RSA public key (exponent 65537, 1024..8192 bits) as the AVB
 * blob; *blob is malloc'd. */
hs_result hs_avb_pubkey_encode(EVP_PKEY *key, uint8_t **blob, size_t *blob_len,
                               hs_error *e) HS_MUST_CHECK;

/* Strictly parses an AVB key blob: the length must match key_num_bits and
 * n0inv and rr must be exactly what the modulus implies, so a file that is
 * not an AVB key is refused. what names the input in messages. *key is a
 * new RSA public key (free with EVP_PKEY_free); *num_bits may be NULL. */
hs_result hs_avb_pubkey_decode(const uint8_t *blob, size_t blob_len, const char *what,
                               EVP_PKEY **key, uint32_t *num_bits, hs_error *e) HS_MUST_CHECK;

/* extract_public_key: writes key's blob to path atomically (mode 0644). */
hs_result hs_avb_pubkey_write(EVP_PKEY *key, const char *path, hs_error *e) HS_MUST_CHECK;

/* Reads and checks an .avbpubkey file; *blob is malloc'd. */
hs_result hs_avb_pubkey_read(const char *path, uint8_t **blob, size_t *blob_len,
                             hs_error *e) HS_MUST_CHECK;

#endif
