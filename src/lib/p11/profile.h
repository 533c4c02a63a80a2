/* Token profiles: how hsmsign keeps and uses signing keys on a given
 * token. One PKCS#11 API, three ways of holding keys:
 *
 *   wrapped   an AES wrap key (from the ceremony's shares) stays in the
 *             token; each signing key lives outside it, wrapped (RFC 5649),
 *             and is unwrapped into a session object to sign.
 *   yubihsm   as wrapped, with the YubiHSM 2's own wrap mechanism; its
 *             unwrapped keys are persistent objects, deleted after use.
 *   resident  no wrap key: each signing key is generated as a sensitive,
 *             non-extractable token object and found by CKA_ID. For tokens
 *             with storage but no usable wrap mechanism (tpm2-pkcs11,
 *             opencryptoki, most cloud HSMs). No shares back these keys up.
 *
 * The profile is chosen from the module's identity and mechanisms
 * (hs_profile_detect), or named by the user (--profile), and recorded in
 * every key file it makes. */
#ifndef HSMSIGN_P11_PROFILE_H
#define HSMSIGN_P11_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "p11/p11.h"

/* WRAPPED is 0: a key file without a "profile" field is a wrapped one. */
typedef enum hs_profile {
    HS_PROFILE_WRAPPED = 0,
    HS_PROFILE_YUBIHSM,
    HS_PROFILE_RESIDENT,
} hs_profile;

#define HS_PROFILE_COUNT 3

/* Where a profile keeps a signing key between uses, which decides how the
 * signer makes it usable. */
typedef enum hs_key_storage {
    HS_KEYS_WRAPPED_SESSION,    /* unwrap into a session object, gone with the session */
    HS_KEYS_WRAPPED_PERSISTENT, /* unwrap into a token object, delete after use (YubiHSM) */
    HS_KEYS_RESIDENT,           /* a token object for good, found by CKA_ID */
} hs_key_storage;

/* What the rest of hsmsign asks of a profile. */
typedef struct hs_profile_ops {
    hs_profile id;
    const char *name;        /* "wrapped", "yubihsm", "resident" */
    hs_key_storage storage;
    bool has_wrap_key;       /* a wrap key, shares and ceremonies exist */
    bool implemented;        /* false: chosen or named, but refused for now */
    const char *keys_summary; /* one sentence for `token info` */
} hs_profile_ops;

const hs_profile_ops *hs_profile_ops_of(hs_profile p);
const char *hs_profile_name(hs_profile p);
/* Accepts the names above; false for anything else. */
bool hs_profile_parse(const char *name, hs_profile *out);

/* Why the profile was chosen, for `token info` and error messages. */
typedef struct hs_profile_choice {
    hs_profile profile;
    bool requested;   /* named by --profile / config, not detected */
    char why[200];
} hs_profile_choice;

/* Chooses the profile of the selected token: `requested` (a profile name
 * from --profile, NULL for automatic) or detection: Yubico's module is
 * yubihsm; a token with CKM_AES_KEY_WRAP_PAD (or CKM_AES_KEY_WRAP_KWP) for
 * both wrapping and unwrapping is wrapped; any other is resident. An
 * unknown name is HS_E_USAGE; a profile not implemented yet is refused
 * (HS_E_P11) with what it is for. */
hs_result hs_profile_choose(hs_p11 *p, const char *requested, hs_profile_choice *out,
                            hs_error *e) HS_MUST_CHECK;
/* The same choice without refusing a profile not implemented yet
 * (`token info` shows it). */
hs_result hs_profile_select(hs_p11 *p, const char *requested, hs_profile_choice *out,
                            hs_error *e) HS_MUST_CHECK;

/* Refuses a key size the token's key-pair mechanism cannot make, naming
 * the token's limit from CK_MECHANISM_INFO (tpm2-pkcs11: RSA up to 3072).
 * bits: the RSA modulus or the curve size. */
hs_result hs_p11_check_key_size(hs_p11 *p, CK_MECHANISM_TYPE gen, unsigned long bits,
                                const char *what, hs_error *e) HS_MUST_CHECK;

/* C_GenerateKeyPair with templates some tokens cannot honour in full,
 * tried in this order until one is taken:
 *   1. as given;
 *   2. without the last entry of each template (the caller puts there an
 *      attribute older tokens do not know, e.g. CKA_MODIFIABLE or
 *      CKA_DESTROYABLE false);
 *   3. and 4. as 1. and 2. without CKA_DECRYPT false (private) and
 *      CKA_ENCRYPT false (public): tpm2-pkcs11 makes every key able to
 *      sign and decrypt and refuses a template that says otherwise
 *      (CKR_GENERAL_ERROR). *relaxed is set then.
 * Returns the last CK_RV. */
/* The codes with which tokens refuse part of a key template (tpm2-pkcs11:
 * CKR_GENERAL_ERROR): worth another try with less; anything else (a
 * device error) is not retried. */
bool hs_p11_template_refused(CK_RV rv);

CK_RV hs_p11_generate_pair(hs_p11 *p, CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_ATTRIBUTE *pub,
                           CK_ULONG n_pub, CK_ATTRIBUTE *priv, CK_ULONG n_priv,
                           CK_OBJECT_HANDLE *h_pub, CK_OBJECT_HANDLE *h_priv, bool *relaxed);

/* A private key hsmsign keeps in the token (resident profile) is used
 * only while the token says it cannot leave: CKA_PRIVATE and
 * CKA_SENSITIVE true, CKA_EXTRACTABLE false. Else HS_E_VERIFY naming the
 * attribute: checked when a key is generated or imported (a token may
 * ignore the template) and before each first use (a token may let a PIN
 * holder change them: tpm2-pkcs11 1.9 does). */
hs_result hs_p11_check_key_kept(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                const char *name, hs_error *e) HS_MUST_CHECK;

/* The module's C_GetInfo strings (blank padding removed). */
typedef struct hs_p11_module_info {
    char manufacturer[33], description[33];
    unsigned lib_major, lib_minor, cryptoki_major, cryptoki_minor;
} hs_p11_module_info;

hs_result hs_p11_module_info_get(hs_p11 *p, hs_p11_module_info *out, hs_error *e) HS_MUST_CHECK;

#endif
