/* The signer chokepoint: every signature hsmsign makes, of every format,
 * passes through hs_signer_sign, which
 *   1. finds the key (key file in the key store) and checks it was made
 *      for this token's profile and under its wrap key,
 *   2. unwraps it once per process into a session object (resident
 *      profile: finds the token object by CKA_ID and checks its public key
 *      and that it is sensitive and not extractable),
 *   3. signs the host-computed digest in the HSM (one operation),
 *   4. verifies the signature with the key's public key,
 *   5. appends and fsyncs an audit entry,
 * and only then returns the signature. If the entry cannot be made
 * durable, the signature is wiped and the call fails.
 *
 * Sessions the token drops (CKR_SESSION_HANDLE_INVALID, a YubiHSM 2's
 * idle timeout) are recovered transparently: reopen, log in, unwrap again,
 * retry once. */
#ifndef HSMSIGN_SIGNER_SIGNER_H
#define HSMSIGN_SIGNER_SIGNER_H

#include <openssl/evp.h>

#include "audit/record.h"
#include "keystore/keyfile.h"
#include "keystore/wrapkey.h"
#include "p11/p11.h"
#include "p11/profile.h"
#include "signer/sign_fn.h"

typedef struct hs_signer hs_signer;

typedef struct hs_signer_stats {
    unsigned unwraps;    /* C_UnwrapKey calls that succeeded */
    unsigned signatures; /* signatures released */
    unsigned recoveries; /* sessions reopened after the token dropped them */
} hs_signer_stats;

/* p11 must be logged in; profile is the token's (p11/profile.h); wrap is
 * its wrap key, NULL for a profile without one (resident: keys are found
 * by CKA_ID and checked instead of unwrapped); audit must be open. None is
 * owned by the signer. */
hs_result hs_signer_new(hs_p11 *p11, hs_profile profile, const hs_wrapkey *wrap,
                        const char *keystore_dir, hs_audit *audit, hs_signer **out,
                        hs_error *e) HS_MUST_CHECK;
/* Destroys every unwrapped session object. */
void hs_signer_free(hs_signer *s);

hs_result hs_signer_sign(hs_signer *s, const hs_sign_request *req, uint8_t **sig, size_t *sig_len,
                         hs_error *e) HS_MUST_CHECK;
hs_sign_fn hs_signer_fn(hs_signer *s);

/* The key file of a key (loaded and checked once, owned by the signer). */
hs_result hs_signer_keyfile(hs_signer *s, const char *name, const hs_keyfile **kf,
                            hs_error *e) HS_MUST_CHECK;

/* Makes a private key object already in the token (a key being generated
 * or imported, before it is wrapped) signable under `name`, so its
 * certificate is signed through the chokepoint like everything else. */
hs_result hs_signer_adopt(hs_signer *s, const char *name, hs_keyalg alg, CK_OBJECT_HANDLE priv,
                          EVP_PKEY *pub, hs_error *e) HS_MUST_CHECK;
/* Forgets an adopted key (the caller destroys the object). */
void hs_signer_forget(hs_signer *s, const char *name);

/* Records a key operation that is not a signature (generate, import). */
hs_result hs_signer_record(hs_signer *s, const char *operation, const char *key_name,
                           const uint8_t *fingerprint, const char *algorithm,
                           hs_error *e) HS_MUST_CHECK;

/* Records a finished output (before it is renamed into place): what was
 * signed into which file, with the input's and the output's SHA-256, so
 * the log ties every released artifact to its signatures. */
hs_result hs_signer_record_output(hs_signer *s, const char *purpose, const char *key_name,
                                  const char *artifact, const uint8_t input_sha256[32],
                                  const uint8_t output_sha256[32], hs_error *e) HS_MUST_CHECK;

hs_signer_stats hs_signer_get_stats(const hs_signer *s);
hs_p11 *hs_signer_p11(hs_signer *s);
hs_profile hs_signer_profile(const hs_signer *s);
const hs_wrapkey *hs_signer_wrapkey(const hs_signer *s);
const char *hs_signer_keystore(const hs_signer *s);

#endif
