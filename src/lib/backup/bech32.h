/* Bech32 (BIP-173) encoding, as age uses it for its keys.
 *
 * age differs from BIP-173 in one respect: its strings may be longer than
 * 90 characters (post-quantum and plugin keys are), so the length limit is
 * a parameter: pass HS_BECH32_BIP173_MAX_LEN for BIP-173 behaviour and
 * HS_BECH32_NO_LIMIT for age. Strings are all lower case or all upper case;
 * the checksum is always computed over the lower-case form. */
#ifndef HSMSIGN_BACKUP_BECH32_H
#define HSMSIGN_BACKUP_BECH32_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define HS_BECH32_BIP173_MAX_LEN 90
#define HS_BECH32_NO_LIMIT 0

/* Bytes needed (with the terminating NUL) to encode data_len bytes. */
size_t hs_bech32_encoded_size(size_t hrp_len, size_t data_len);

/* Encodes 8-bit data under hrp (printable ASCII, one case) into out, which
 * holds out_cap bytes. upper selects the all-upper-case form that age uses
 * for secret keys. out may be secure memory: nothing is copied elsewhere
 * without being wiped. */
hs_result hs_bech32_encode(const char *hrp, const uint8_t *data, size_t data_len, bool upper,
                           char *out, size_t out_cap, hs_error *e) HS_MUST_CHECK;

/* Checks the string and its checksum and returns the human-readable part
 * (lower-cased, NUL-terminated, in hrp[hrp_cap]) and the 5-bit data words
 * without the checksum. max_len 0 means no length limit. */
hs_result hs_bech32_decode_words(const char *s, size_t max_len, char *hrp, size_t hrp_cap,
                                 uint8_t *words, size_t words_cap, size_t *n_words,
                                 hs_error *e) HS_MUST_CHECK;

/* hs_bech32_decode_words, then regroups the words into 8-bit bytes,
 * rejecting more than 4 bits of padding or non-zero padding bits. */
hs_result hs_bech32_decode(const char *s, size_t max_len, char *hrp, size_t hrp_cap,
                           uint8_t *data, size_t data_cap, size_t *data_len,
                           hs_error *e) HS_MUST_CHECK;

#endif
