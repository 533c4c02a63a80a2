/* The wrap key: one AES-256 key inside the token under which every signing
 * key is stored outside it, in RFC 5649 (keystore/kwp.h). Sensitive, never
 * extractable, usable only for wrap/unwrap.
 *
 * Its identity: CKA_CHECK_VALUE where the token has it; where it does not
 * (NSS softokn), a canary: the public test key hs_kwp_test_key wrapped
 * under it. Only the same AES key unwraps a canary (RFC 5649's integrity
 * check), on any token, so key files carry one and a token proves it
 * holds their wrap key by unwrapping it. */
#ifndef HSMSIGN_KEYSTORE_WRAPKEY_H
#define HSMSIGN_KEYSTORE_WRAPKEY_H

#include <stdint.h>

#include "keystore/custody.h"
#include "keystore/keyfile.h"
#include "p11/p11.h"

#define HS_WRAPKEY_DEFAULT_LABEL "hsmsign-wrap"

typedef struct hs_wrapkey {
    CK_OBJECT_HANDLE handle;
    uint8_t kcv[HS_KCV_LEN]; /* CKA_CHECK_VALUE: first 3 bytes of AES-ECB(key, 0^16) */
    bool have_kcv;           /* false: the token has no CKA_CHECK_VALUE (NSS) */
    bool trusted;            /* CKA_TRUSTED: keys can be CKA_WRAP_WITH_TRUSTED */
    /* The token does not enforce the custody attributes (custody.h) and the
     * caller accepted that (hs_p11.accept_custody_gap). */
    bool custody_gap;
    CK_MECHANISM_TYPE mech;  /* the token's RFC 5649 mechanism (hs_kwp_detect) */
    char label[64];
} hs_wrapkey;

/* Generates the wrap key inside the token. Fails with HS_E_EXISTS if the
 * token already has an hsmsign wrap key. */
hs_result hs_wrapkey_create(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e) HS_MUST_CHECK;

/* Imports a wrap key from host memory (the provisioning and restore
 * ceremonies, which reconstruct it from shares) as sensitive and
 * non-extractable. */
hs_result hs_wrapkey_import(hs_p11 *p, const char *label, const uint8_t key[32], hs_wrapkey *out,
                            hs_error *e) HS_MUST_CHECK;

/* Finds the token's wrap key by label (NULL: the default) and checks its
 * custody attributes (custody.h): HS_E_VERIFY, saying what to do, when
 * they are missing or weaker, so no command ever unwraps under a key that
 * would let a PIN holder read the signing keys. */
hs_result hs_wrapkey_find(hs_p11 *p, const char *label, hs_wrapkey *out, hs_error *e) HS_MUST_CHECK;

/* Finds the wrap key and reports its custody without refusing a weak one
 * (`wrapkey show`). */
hs_result hs_wrapkey_inspect(hs_p11 *p, const char *label, hs_wrapkey *out,
                             hs_custody_report *rep, hs_error *e) HS_MUST_CHECK;

/* Upgrades a token whose wrap key lacks the custody attributes: imports
 * the same key (from shares, in host memory) with them under the same
 * label, then destroys every unprotected copy; *replaced counts those.
 * Refuses when a key with that label has another check value. Safe to run
 * again after an interruption. */
hs_result hs_wrapkey_replace(hs_p11 *p, const char *label, const uint8_t key[32],
                             hs_wrapkey *out, size_t *replaced, hs_error *e) HS_MUST_CHECK;

/* Whether w is the wrap key a key file was made under: by check value
 * when both have one, else by unwrapping the key file's canary. HS_OK
 * when it is, or when neither can tell (an old key file on a token without
 * CKA_CHECK_VALUE: then RFC 5649's integrity check refuses a wrong key at
 * unwrap); HS_E_VERIFY naming both keys when it is not. */
hs_result hs_wrapkey_matches(hs_p11 *p, const hs_wrapkey *w, const hs_keyfile *kf,
                             const char *what, hs_error *e) HS_MUST_CHECK;

/* Reads what hsmsign needs to know of the wrap key h (check value, when
 * the token keeps one; CKA_TRUSTED); mech is the mechanism it wraps with. */
hs_result hs_wrapkey_describe(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                              const char *label, CK_MECHANISM_TYPE mech, hs_wrapkey *out,
                              hs_error *e) HS_MUST_CHECK;

/* The canary for a new key file, made by the token: the test key wrapped
 * under w. *out is malloc'd. Only key generation and import need it, so
 * signing pays nothing for it. */
hs_result hs_wrapkey_make_canary(hs_p11 *p, const hs_wrapkey *w, uint8_t **out, size_t *out_len,
                                 hs_error *e) HS_MUST_CHECK;

/* The canary of a key held in host memory (ceremony transcripts). */
hs_result hs_wrapkey_canary_of(const uint8_t key[32], uint8_t **out, size_t *out_len,
                               hs_error *e) HS_MUST_CHECK;

/* The check value of a key held in host memory, computed the way tokens
 * compute CKA_CHECK_VALUE, so a restored key can be matched. */
hs_result hs_wrapkey_kcv_of(const uint8_t key[32], uint8_t kcv[HS_KCV_LEN], hs_error *e) HS_MUST_CHECK;

#endif
