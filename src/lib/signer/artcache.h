/* The artifact cache (docs/cache.md, opt-in): whole signed outputs keyed
 * by (input SHA-256, key, every option, hsmsign version), so that
 * re-signing an unchanged artifact does not rebuild it.
 *
 * Nothing read from it is trusted. An entry is two files in a private
 * directory (util/privdir.h), DIR/<name>.out (the output) and
 * DIR/<name>.meta (the signing requests that made it: algorithm,
 * purpose, digest, SHA-256 of the bytes signed and of the signature). The
 * caller copies the output next to its destination, verifies the copy
 * (the format's verifier, with the key's certificate), checks that the
 * signatures the verifier found are exactly those of the meta, and
 * replays each request through the signer with reuse_only (sign_fn.h):
 * the signature cache's verified, logged reuse. Any failure drops the
 * entry and the artifact is signed as if there had been none. */
#ifndef HSMSIGN_SIGNER_ARTCACHE_H
#define HSMSIGN_SIGNER_ARTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signer/sigalg.h"
#include "util/file.h"
#include "util/result.h"

#define HS_ARTCACHE_MAGIC "hsmsign artifact cache 1"
#define HS_ARTCACHE_SIGS_MAX 8
#define HS_ARTCACHE_META_MAX 4096
#define HS_ARTCACHE_OP_MAX 32

typedef struct hs_artcache hs_artcache;

typedef struct hs_artcache_sig {
    hs_sig_alg alg;
    char operation[HS_ARTCACHE_OP_MAX]; /* "apk-v2", "jar-sf", ... */
    uint8_t digest[HS_MAX_DIGEST_LEN];
    size_t digest_len;
    uint8_t tbs_sha256[32];
    uint8_t sig_sha256[32];
} hs_artcache_sig;

typedef struct hs_artcache_meta {
    hs_artcache_sig sigs[HS_ARTCACHE_SIGS_MAX];
    size_t n;
} hs_artcache_meta;

/* Opens (creates 0700) DIR; HS_E_VERIFY when it is not private. */
hs_result hs_artcache_open(const char *dir, hs_artcache **out, hs_error *e) HS_MUST_CHECK;
void hs_artcache_free(hs_artcache *c);
const char *hs_artcache_dir(const hs_artcache *c);

/* The entry name: 64 hex digits of SHA-256 over a domain tag, the input's
 * SHA-256, the key's public-key SHA-256, the key name, the options (a
 * canonical text naming every option that changes the output) and the
 * hsmsign version, NUL-separated. */
hs_result hs_artcache_name(const uint8_t input_sha256[32], const uint8_t key_sha256[32],
                           const char *key_name, const char *options, char name[65],
                           hs_error *e) HS_MUST_CHECK;

/* SHA-256 of a whole file, read in blocks (an input's, for the name). */
hs_result hs_artcache_file_sha256(const char *path, uint8_t sha[32], hs_error *e) HS_MUST_CHECK;

/* Copies the entry's output into af (opened by the caller on the
 * destination) and reads its meta; *output_sha256 is the SHA-256 of the
 * bytes copied. *found false: no entry. HS_E_FORMAT naming the file: an
 * entry that cannot be used (the caller drops it). */
hs_result hs_artcache_fetch(hs_artcache *c, const char *name, hs_atomic_file *af,
                            hs_artcache_meta *m, uint8_t output_sha256[32], bool *found,
                            hs_error *e) HS_MUST_CHECK;
/* Stores output (a file) and its meta under name, 0600, atomically (meta
 * last: an entry without its meta is not used). */
hs_result hs_artcache_store(hs_artcache *c, const char *name, const char *output,
                            const hs_artcache_meta *m, hs_error *e) HS_MUST_CHECK;
/* Removes both files of the entry, if any. */
hs_result hs_artcache_drop(hs_artcache *c, const char *name, hs_error *e) HS_MUST_CHECK;

/* The meta format, for the unit tests: text malloc'd. */
hs_result hs_artcache_meta_format(const hs_artcache_meta *m, char **text, size_t *len,
                                  hs_error *e) HS_MUST_CHECK;
hs_result hs_artcache_meta_parse(const char *text, size_t len, hs_artcache_meta *m,
                                 hs_error *e) HS_MUST_CHECK;

#endif
