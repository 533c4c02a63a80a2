/* The signature cache of the signer chokepoint (docs/cache.md): signatures
 * already made, keyed by (key fingerprint, signature algorithm, digest of
 * the to-be-signed bytes), so that re-signing an unchanged artifact costs
 * no HSM operation.
 *
 * Nothing read from the cache is trusted: the signer verifies a cached
 * signature with the key's public key before it reuses it, and drops an
 * entry that does not parse, does not match its request or does not
 * verify. The cache only saves work; it can never make a signature the
 * key did not make.
 *
 * One file per signature, DIR/<64 hex>, mode 0600, written atomically
 * (util/file.h); DIR is created 0700 and refused when it is a symbolic
 * link, not a directory, not owned by this user or writable by group or
 * others (someone else could then plant or remove entries). */
#ifndef HSMSIGN_SIGNER_SIGCACHE_H
#define HSMSIGN_SIGNER_SIGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signer/sigalg.h"
#include "util/result.h"

#define HS_SIGCACHE_MAGIC "hsmsign signature cache 1"
/* RSA up to 8192 bits; a DER ECDSA P-521 signature is at most 139 bytes. */
#define HS_SIGCACHE_SIG_MAX 1024
/* A whole entry file is far smaller: the hex fields above plus a batch id. */
#define HS_SIGCACHE_FILE_MAX 4096
#define HS_SIGCACHE_BATCH_MAX 40

typedef struct hs_sigcache hs_sigcache;

typedef struct hs_sigcache_entry {
    uint8_t key_sha256[32];   /* SHA-256 of the key's SubjectPublicKeyInfo */
    hs_sig_alg alg;
    uint8_t digest[HS_MAX_DIGEST_LEN];
    size_t digest_len;
    uint8_t sig[HS_SIGCACHE_SIG_MAX];
    size_t sig_len;
    /* The audit entry that recorded the signature when it was made: its
     * seq and its process's batch id, named by the reuse entries. */
    uint64_t seq;
    char batch[HS_SIGCACHE_BATCH_MAX + 1];
} hs_sigcache_entry;

/* Opens DIR, creating it (0700, and its parents) when missing. HS_E_VERIFY
 * naming DIR and the reason when it is not private to this user. */
hs_result hs_sigcache_open(const char *dir, hs_sigcache **out, hs_error *e) HS_MUST_CHECK;
void hs_sigcache_free(hs_sigcache *c);
const char *hs_sigcache_dir(const hs_sigcache *c);

/* The entry for (key, alg, digest) into *en. *found is false when there is
 * none. HS_E_FORMAT (with the file named) when a file exists but cannot
 * be used: not a regular file of ours, malformed, or recording another
 * request than its name says; the caller drops it (hs_sigcache_drop).
 * The signature in *en is not verified here. */
hs_result hs_sigcache_lookup(hs_sigcache *c, const uint8_t key_sha256[32], hs_sig_alg alg,
                             const uint8_t *digest, size_t digest_len, hs_sigcache_entry *en,
                             bool *found, hs_error *e) HS_MUST_CHECK;
/* Writes (replaces) the entry's file atomically, mode 0600. */
hs_result hs_sigcache_store(hs_sigcache *c, const hs_sigcache_entry *en, hs_error *e) HS_MUST_CHECK;
/* Removes the entry for (key, alg, digest), if any. */
hs_result hs_sigcache_drop(hs_sigcache *c, const uint8_t key_sha256[32], hs_sig_alg alg,
                           const uint8_t *digest, size_t digest_len, hs_error *e) HS_MUST_CHECK;

/* The entry file format (docs/cache.md), exposed for the unit tests.
 * format: *text malloc'd. parse: HS_E_FORMAT with the reason. */
hs_result hs_sigcache_format(const hs_sigcache_entry *en, char **text, size_t *len,
                             hs_error *e) HS_MUST_CHECK;
hs_result hs_sigcache_parse(const char *text, size_t len, hs_sigcache_entry *en,
                            hs_error *e) HS_MUST_CHECK;
/* The file name of an entry: 64 hex digits of SHA-256 over a domain tag,
 * the key fingerprint, the algorithm's name and the digest. */
void hs_sigcache_name(const uint8_t key_sha256[32], hs_sig_alg alg, const uint8_t *digest,
                      size_t digest_len, char name[65]);

/* `cache show` and `cache clear`: entry files in c's directory (names of 64
 * hex digits; anything else is left alone) and their bytes; clear removes
 * them. */
hs_result hs_sigcache_count(hs_sigcache *c, size_t *entries, uint64_t *bytes,
                            hs_error *e) HS_MUST_CHECK;
hs_result hs_sigcache_clear(hs_sigcache *c, size_t *removed, hs_error *e) HS_MUST_CHECK;

#endif
