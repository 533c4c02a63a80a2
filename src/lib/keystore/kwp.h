/* The wrapped-blob format: RFC 5649 (AES key wrap with padding, "KWP"),
 * whatever the token calls it.
 *
 * PKCS#11 3.0 names RFC 5649 CKM_AES_KEY_WRAP_KWP (0x210B). Before 3.0
 * there was only CKM_AES_KEY_WRAP_PAD (0x210A), which SoftHSM implements as
 * RFC 5649 and NSS softokn as RFC 3394 over PKCS#7-padded input: the same
 * number, two incompatible formats. So hsmsign never trusts the number: it
 * asks each candidate mechanism to read an RFC 5649 blob made on the host
 * and to write one the host can open (hs_kwp_detect), and uses the first
 * that does both. Key files made on one token then open on any other that
 * holds the same wrap key (docs/key-file.md). */
#ifndef HSMSIGN_KEYSTORE_KWP_H
#define HSMSIGN_KEYSTORE_KWP_H

#include <stddef.h>
#include <stdint.h>

#include "keystore/keyalg.h"
#include "p11/p11.h"

/* PKCS#11 3.0; p11-kit's header predates it. */
#ifndef CKM_AES_KEY_WRAP_KWP
#define CKM_AES_KEY_WRAP_KWP 0x0000210BUL
/* Refuses, naming the token's limitation, a key the token cannot keep
 * wrapped: EC keys on NSS softokn, which cannot unwrap the EC keys it
 * wraps (its PKCS#8 for EC lacks what its own unwrap needs). */
hs_result hs_kwp_token_can_hold(const hs_p11 *p, hs_keyalg alg, const char *name,
                                hs_error *e) HS_MUST_CHECK;

#endif

/* A fixed RSA-1024 private key (PKCS#8 DER), public on purpose: the
 * known answer of hs_kwp_detect and the plaintext of wrap-key canaries.
 * It signs nothing. */
extern const uint8_t hs_kwp_test_key[];
extern const size_t hs_kwp_test_key_len;

/* RFC 5649 on the host (OpenSSL), for known answers and canaries.
 * *out is malloc'd. */
hs_result hs_kwp_host_wrap(const uint8_t key[32], const uint8_t *in, size_t in_len,
                           uint8_t **out, size_t *out_len, hs_error *e) HS_MUST_CHECK;

/* The mechanism with which this token reads and writes RFC 5649 blobs:
 * CKM_AES_KEY_WRAP_KWP or CKM_AES_KEY_WRAP_PAD. HS_E_P11 naming what was
 * tried when none does. Needs a logged-in key session; leaves no object
 * behind. */
hs_result hs_kwp_detect(hs_p11 *p, CK_MECHANISM_TYPE *mech, hs_error *e) HS_MUST_CHECK;

/* Makes the test key a private, extractable session object (unwrapping
 * its host-made RFC 5649 blob with mech under the known-answer AES key),
 * for the token to wrap as a canary. The caller destroys *h. */
hs_result hs_kwp_test_object(hs_p11 *p, CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE *h,
                             hs_error *e) HS_MUST_CHECK;

/* True for the two mechanism numbers that can be RFC 5649 on some token. */
bool hs_kwp_candidate(CK_MECHANISM_TYPE m);

/* Whether the token is NSS softokn, whose limitations hsmsign names
 * (no CKA_CHECK_VALUE on AES keys, no EC unwrap of what it wrapped, no
 * custody attributes). */
bool hs_p11_is_nss(const hs_p11 *p);

/* Refuses, naming the token's limitation, a key the token cannot keep
 * wrapped: EC keys on NSS softokn, which cannot unwrap the EC keys it
 * wraps (its PKCS#8 for EC lacks what its own unwrap needs). */
hs_result hs_kwp_token_can_hold(const hs_p11 *p, hs_keyalg alg, const char *name,
                                hs_error *e) HS_MUST_CHECK;

#endif
