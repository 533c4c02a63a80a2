/* The one thing a format encoder (APK, JAR, AVB, OTA, X.509) needs from
 * whoever holds the key: "sign this digest". Encoders hash on the host and
 * call hs_sign_fn exactly once per signature; in the product the function
 * is the signer chokepoint (signer.h: cache, HSM, verify, audit), so an
 * encoder never talks to PKCS#11 or the audit log itself. */
#ifndef HSMSIGN_SIGNER_SIGN_FN_H
#define HSMSIGN_SIGNER_SIGN_FN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signer/sigalg.h"
#include "util/result.h"

typedef struct hs_sign_request {
    const char *key_name;      /* key store name */
    hs_sig_alg alg;
    const uint8_t *digest;     /* hash of the to-be-signed bytes under alg's hash */
    size_t digest_len;
    uint8_t tbs_sha256[32];    /* SHA-256 of exactly the bytes signed, for the audit entry */
    const char *operation;     /* what is being signed: "raw", "apk-v2", "jar-sf", "x509", ... */
    const char *artifact;      /* input path as given, or NULL */
    const uint8_t *artifact_sha256; /* SHA-256 of the whole input, or NULL */
    /* Group commit: the audit entry may be appended without its fsync; the
     * caller then calls hs_sign_fn.sync before the signature's bytes leave
     * the process (are written to any file). Only set when sync != NULL. */
    bool defer_durability;
    /* Only a signature from the signature cache (verified and logged as a
     * reuse), never a new one: HS_E_NOTFOUND when there is none. The
     * artifact cache replays the requests of a cached output this way
     * (docs/cache.md). */
    bool reuse_only;
} hs_sign_request;

/* Fills *sig (malloc'd) with the signature: raw bytes for RSA (modulus
 * length), DER ECDSA-Sig-Value for ECDSA. */
typedef hs_result (*hs_sign_cb)(void *ctx, const hs_sign_request *req, uint8_t **sig,
                                size_t *sig_len, hs_error *e);

typedef struct hs_sign_fn {
    hs_sign_cb sign;
    void *ctx;
    /* Makes the records of deferred signatures durable; NULL when the
     * signer keeps no records (test fixtures), and then nothing is deferred. */
    hs_result (*sync)(void *ctx, hs_error *e);
} hs_sign_fn;

/* Fills req->digest storage and req->tbs_sha256 from the to-be-signed
 * bytes in one call: digest_buf must hold HS_MAX_DIGEST_LEN bytes. */
hs_result hs_sign_request_hash(hs_sign_request *req, uint8_t *digest_buf, const uint8_t *tbs,
                               size_t tbs_len, hs_error *e) HS_MUST_CHECK;

#endif
