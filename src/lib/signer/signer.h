/* The signer chokepoint: every signature hsmsign makes, of every format,
 * passes through hs_signer_sign, which
 *   1. finds the key (key file in the key store) and checks it was made
 *      for this token's profile and under its wrap key,
 *   1a. with a signature cache (sigcache.h, docs/cache.md): takes a
 *      signature already made for the same key, algorithm and digest,
 *      verifies it with the key's public key and records a "reuse" entry
 *      naming the original; no HSM operation, no unwrap. An entry that
 *      fails is dropped, reported through the warning callback, and the
 *      request goes on to the HSM; wrapped keys are unwrapped lazily, on
 *      the first signature that needs the HSM,
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
#include "signer/sigcache.h"
#include "signer/sign_fn.h"

typedef struct hs_signer hs_signer;

typedef struct hs_signer_stats {
    unsigned unwraps;    /* C_UnwrapKey calls that succeeded */
    unsigned signatures; /* signatures released */
    unsigned recoveries; /* sessions reopened after the token dropped them */
    unsigned reused;     /* ... of the signatures, taken from the signature cache */
    unsigned dropped;    /* cache entries dropped as corrupt or forged */
} hs_signer_stats;

/* p11 must be logged in; profile is the token's (p11/profile.h); wrap is
 * its wrap key, NULL for a profile without one (resident: keys are found
 * by CKA_ID and checked instead of unwrapped); audit must be open. None is
 * owned by the signer. */
hs_result hs_signer_new(hs_p11 *p11, hs_profile profile, const hs_wrapkey *wrap,
                        const char *keystore_dir, hs_audit *audit, hs_signer **out,
                        hs_error *e) HS_MUST_CHECK;
/* What a signer forwards to when another process holds the token (the
 * agent, src/lib/agent/): that process's own chokepoint signs, verifies,
 * records and makes the entry durable before answering. key_fp is the
 * SHA-256 of the key file's public key here, so the other side refuses a
 * key store that disagrees. */
typedef struct hs_signer_remote {
    void *ctx;
    hs_result (*sign)(void *ctx, const hs_sign_request *req, const uint8_t key_fp[32],
                      uint8_t **sig, size_t *sig_len, hs_error *e);
    hs_result (*record_output)(void *ctx, const char *purpose, const char *key_name,
                               const char *artifact, const uint8_t input_sha256[32],
                               const uint8_t output_sha256[32], hs_error *e);
} hs_signer_remote;

/* A signer without a token: key files are read from keystore_dir and
 * checked against wrap_kcv (the remote side's wrap key) and signatures
 * are made by `remote` (borrowed), then verified here with the key file's
 * public key. hs_signer_p11 is NULL; adopt and record fail. token_label
 * names the remote token in messages. */
hs_result hs_signer_new_remote(const hs_signer_remote *remote, const char *token_label,
                               const hs_wrapkey *wrap, const char *keystore_dir, hs_signer **out,
                               hs_error *e) HS_MUST_CHECK;
/* Destroys every unwrapped session object. */
void hs_signer_free(hs_signer *s);

/* yubihsm profile: keeps up to n unwrapped keys on the device between
 * signatures (the agent, during a release), deleting the least recently
 * used beyond that; 0 (the default) deletes each after use. All are
 * deleted by hs_signer_free. */
void hs_signer_set_resident_keys(hs_signer *s, size_t n);

/* Gives a local signer its signature cache (owned from now on; NULL turns
 * it off). A remote signer never caches: the process that holds the token
 * does. */
void hs_signer_set_cache(hs_signer *s, hs_sigcache *cache);
/* A signature cache is set (reuse_only requests can succeed). */
bool hs_signer_has_cache(const hs_signer *s);
/* Where the signer reports what the caller should hear but that does not
 * fail the request (a cache entry dropped as corrupt, a cache write that
 * failed); without one these are dropped. The library never prints. */
typedef void (*hs_signer_warn_fn)(void *ctx, const char *message);
void hs_signer_set_warn(hs_signer *s, hs_signer_warn_fn fn, void *ctx);
/* Makes the entries of deferred signatures durable (hs_audit_sync), then
 * stores those signatures in the cache: a signature reaches no file, not
 * even the cache, before its entry is durable. hs_sign_fn.sync calls it. */
hs_result hs_signer_sync(hs_signer *s, hs_error *e) HS_MUST_CHECK;

hs_result hs_signer_sign(hs_signer *s, const hs_sign_request *req, uint8_t **sig, size_t *sig_len,
                         hs_error *e) HS_MUST_CHECK;
hs_sign_fn hs_signer_fn(hs_signer *s);

/* "Sign this digest": a SHA-256 digest computed by someone else (an A/B
 * payload's hash from delta_generator, for releasetools' --payload_signer),
 * signed as `openssl pkeyutl -sign -pkeyopt digest:sha256` does with the
 * key: RSA PKCS#1 v1.5 over the SHA-256 DigestInfo, or DER ECDSA for an EC
 * key. The bytes signed never reach hsmsign, only their SHA-256, so the
 * audit entry's tbs_sha256 is the digest itself; operation names the
 * purpose ("payload-digest"), artifact the file the digest came from and
 * artifact_sha256 that file's SHA-256 (either may be NULL). */
hs_result hs_signer_sign_digest(hs_signer *s, const char *key_name, const uint8_t digest[32],
                                const char *operation, const char *artifact,
                                const uint8_t *artifact_sha256, uint8_t **sig, size_t *sig_len,
                                hs_error *e) HS_MUST_CHECK;

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
/* The same without the fsync (hs_audit_append_deferred): for outputs
 * published in a group after one hs_signer_sync (sign batch). */
hs_result hs_signer_record_output_deferred(hs_signer *s, const char *purpose,
                                           const char *key_name, const char *artifact,
                                           const uint8_t input_sha256[32],
                                           const uint8_t output_sha256[32],
                                           hs_error *e) HS_MUST_CHECK;

hs_signer_stats hs_signer_get_stats(const hs_signer *s);
hs_p11 *hs_signer_p11(hs_signer *s);
hs_profile hs_signer_profile(const hs_signer *s);
const hs_wrapkey *hs_signer_wrapkey(const hs_signer *s);
const char *hs_signer_keystore(const hs_signer *s);

#endif
