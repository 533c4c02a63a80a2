/* Custody of the signing keys, enforced by the token itself.
 *
 * Whoever holds the user PIN and one key file can ask the token to unwrap
 * the key file's blob. Without limits they choose the attributes of what
 * comes out (extractable, not sensitive, a token object, a generic secret
 * whose value is the plaintext PKCS#8) and read the key: the classic
 * PKCS#11 wrap/unwrap attack (Clulow 2003). hsmsign therefore never relies
 * on its own good behaviour: the wrap key carries
 *   - CKA_UNWRAP_TEMPLATE: what it unwraps is a sensitive, non-extractable,
 *     non-modifiable, non-copyable, sign-only private session object;
 *   - CKA_WRAP_TEMPLATE: it wraps private keys only;
 *   - CKA_ALLOWED_MECHANISMS: the token's RFC 5649 mechanism only
 *     (CKM_AES_KEY_WRAP_PAD or _KWP, kwp.h), so the blob cannot be fed
 *     through another mode (ECB, CBC, RFC 3394);
 *   - CKA_MODIFIABLE, CKA_COPYABLE and (PKCS#11 2.40+) CKA_DESTROYABLE
 *     false, so none of this can be undone or the key thrown away;
 * and every command that uses the wrap key reads this back and refuses a
 * key that lacks any of it (hs_custody_check_wrapkey).
 *
 * NSS softokn keeps none of this (it refuses CKA_ALLOWED_MECHANISMS,
 * CKA_COPYABLE and CKA_DESTROYABLE, stores CKA_UNWRAP_TEMPLATE as opaque
 * bytes and enforces nothing of it); its wrap keys are used only with
 * hs_p11.accept_custody_gap (docs/tokens.md).
 *
 * The audit key likewise can only sign (its private half) and verify (its
 * public half). */
#ifndef HSMSIGN_KEYSTORE_CUSTODY_H
#define HSMSIGN_KEYSTORE_CUSTODY_H

#include <stdbool.h>
#include <stddef.h>

#include "p11/p11.h"

/* Room for the wrap key's own custody attributes (hs_custody_wrapkey_attrs). */
#define HS_CUSTODY_WRAPKEY_ATTRS 5
/* Number of attributes in the unwrap template. */
#define HS_CUSTODY_UNWRAP_ATTRS 12

/* The attributes every object unwrapped by the wrap key is forced to have.
 * Points to static storage. The signer's C_UnwrapKey template must carry
 * each of them with the same value (tokens refuse a template that
 * conflicts with, or leaves out, an attribute of CKA_UNWRAP_TEMPLATE), and
 * must END with them: the last one is CKA_MODIFIABLE=false, after which
 * SoftHSM accepts no further attribute. */
const CK_ATTRIBUTE *hs_custody_unwrap_template(void);

/* Fills out[0..HS_CUSTODY_WRAPKEY_ATTRS) with the custody attributes of a
 * new wrap key: CKA_UNWRAP_TEMPLATE, CKA_WRAP_TEMPLATE,
 * CKA_ALLOWED_MECHANISMS (*mech, the token's RFC 5649 mechanism: kwp.h),
 * CKA_COPYABLE=false, CKA_DESTROYABLE=false (last, so a token older than
 * PKCS#11 2.40 can be retried without it). Points to static storage and to
 * *mech, which must outlive out. */
void hs_custody_wrapkey_attrs(CK_ATTRIBUTE out[HS_CUSTODY_WRAPKEY_ATTRS],
                              const CK_MECHANISM_TYPE *mech);

/* Copies the unwrap template into out (room for HS_CUSTODY_UNWRAP_ATTRS)
 * and returns its length. With gap (a token that does not enforce custody,
 * NSS), the attributes such a token refuses in a template are left out:
 * CKA_COPYABLE. */
CK_ULONG hs_custody_unwrap_attrs(bool gap, CK_ATTRIBUTE out[HS_CUSTODY_UNWRAP_ATTRS]);

/* What a wrap key lacks, for `wrapkey show` and for the refusal message. */
typedef struct hs_custody_report {
    bool ok;
    char problem[512]; /* the first weakness found, in words; empty when ok */
} hs_custody_report;

/* Reads the wrap key's attributes back and reports the first way in which
 * they are missing or weaker than hsmsign makes them. HS_OK with rep->ok
 * false is a weak key; errors are only failures to ask the token. */
hs_result hs_custody_inspect_wrapkey(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                     hs_custody_report *rep, hs_error *e) HS_MUST_CHECK;

/* hs_custody_inspect_wrapkey, and HS_E_VERIFY with a message that names
 * the token, the key, what is missing and what to do, when it is weak. */
hs_result hs_custody_check_wrapkey(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                   const char *label, hs_error *e) HS_MUST_CHECK;

/* The custody attributes of the audit key pair: private half sign-only,
 * public half verify-only, neither modifiable nor (2.40+) destroyable.
 * Filled into out (room for HS_CUSTODY_AUDITKEY_ATTRS), the count in *n;
 * the CKA_DESTROYABLE entry is last. */
#define HS_CUSTODY_AUDITKEY_ATTRS 8
void hs_custody_auditkey_private_attrs(CK_ATTRIBUTE out[HS_CUSTODY_AUDITKEY_ATTRS], CK_ULONG *n);
void hs_custody_auditkey_public_attrs(CK_ATTRIBUTE out[HS_CUSTODY_AUDITKEY_ATTRS], CK_ULONG *n);

/* True for the return values with which a token says it does not know an
 * attribute we may leave out (CKA_DESTROYABLE on a PKCS#11 2.20 token). */
bool hs_custody_attr_unknown(CK_RV rv);

#endif
