/* Signing and verifying APKs: JAR signing (v1) and APK Signature Scheme v2
 * and v3, with output byte-identical to `apksigner sign` given the same
 * key, certificate, input and schemes.
 *
 * The library never holds the private key: every signature is obtained
 * through the hs_sign_fn (one call per scheme per APK) with a digest
 * computed here. Outputs go through hs_atomic_*: on any error there is no
 * output file and no temporary file. */
#ifndef HSMSIGN_ANDROID_APK_H
#define HSMSIGN_ANDROID_APK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "signer/sign_fn.h"
#include "util/result.h"

struct hs_apk_report;

typedef struct hs_apk_key {
    const char *key_name;          /* passed through to hs_sign_request.key_name */
    const uint8_t *cert_der;       /* signing certificate */
    size_t cert_der_len;
    EVP_PKEY *public_key;          /* chooses the algorithm; must match the certificate */
    const char *v1_name;           /* v1 file base name (CERT -> META-INF/CERT.SF); NULL: "CERT" */
} hs_apk_key;

typedef struct hs_apk_options {
    int min_sdk;              /* -1: read from AndroidManifest.xml */
    int v1, v2, v3;           /* -1: default (v1 only when min_sdk < 24; v2, v3 on); 0/1 explicit */
    bool v4;                  /* also write <out>.idsig (needs v2 or v3); default off */
    /* apksig's --alignment-preserved. true (the default set by
     * hs_apk_options_init, and the only behaviour of apksigner 31): an entry
     * keeps its data alignment; a stored entry that was aligned in the input
     * (4, or 4096 for .so) and moves is re-aligned with a 0xd935 extra field.
     * false (newer apksig's default): every stored entry gets a 0xd935 field
     * aligning it, like zipalign -p. */
    bool alignment_preserved;
    const char *artifact;     /* input path as given, for the audit entry; NULL: the input path */
    /* Key rotation (apksigner sign --lineage): v3 carries this lineage
     * (version and nodes, hs_lineage_encode_nodes) in its proof-of-rotation
     * attribute. v3_key: the newest signer, signing v3 (and v4), while the
     * key given to hs_apk_sign_file, an older signer of the lineage, signs
     * v1 and v2, as apksigner does with --next-signer (with a v3.1 block,
     * see rotation_min_sdk, v3_key signs v3.1 and the older key v3.0 and
     * v4, v4 then also carrying v3_key's signature); NULL: one key signs
     * every scheme. Both NULL: no rotation. */
    const uint8_t *lineage;
    size_t lineage_len;
    const hs_apk_key *v3_key;
    /* With a lineage, apksig's --rotation-min-sdk-version (apksig 33+):
     * from this SDK on the newest signer signs, in the v3.1 block when the
     * value is 33 or more and the older signer (the key given to
     * hs_apk_sign_file) then signs the v3.0 block for the platforms below;
     * 1..32: no v3.1, the newest signer signs v3.0 from SDK 28 on.
     * HS_APK_ROTATION_DEFAULT (hs_apk_options_init): 33, apksig 33+'s
     * default. HS_APK_ROTATION_APKSIGNER31: apksigner 31's layout (it
     * predates v3.1): the newest signer signs v3.0 from the algorithm's
     * minimum SDK (24). Without a lineage: ignored. */
    int rotation_min_sdk;
    /* apksig's --rotation-targets-dev-release: the v3.1 signer is for the
     * development release after rotation_min_sdk (which must be >= 33), so
     * v3.0 covers rotation_min_sdk too. apksig implies it for SDK 34
     * (written as 33). */
    bool rotation_targets_dev_release;
    /* Called once the output is complete (rep has its SHA-256) and before
     * it is renamed into place; an error aborts, leaving no output. The
     * product records the output in the audit log here, so an APK never
     * appears without its entries. NULL: none. */
    hs_result (*before_commit)(void *ctx, const char *out, const struct hs_apk_report *rep,
                               hs_error *e);
    void *before_commit_ctx;
    /* Batch durability (sign batch): when non-NULL and the APK has no v4
     * file, the output is left unpublished in *defer: its entries (the
     * signatures' and before_commit's) may all be deferred appends, its
     * tail (signing block, CD, EOCD: the only bytes holding signatures
     * unless v1) stays in memory, and nothing of it is visible. The caller
     * makes the log durable once for many (hs_sign_fn.sync), then
     * hs_apk_pending_write and hs_apk_pending_publish each, then fsyncs
     * each directory once (hs_fsync_dir). With v4, *defer stays NULL and
     * the output is committed as without it. */
    struct hs_apk_pending **defer;
} hs_apk_options;

#define HS_APK_ROTATION_DEFAULT 33
#define HS_APK_ROTATION_APKSIGNER31 0

/* Fills the defaults: min_sdk -1, schemes -1, alignment preserved (so the
 * output is byte-identical to apksigner 31's), rotation min SDK 33 (as
 * apksig 33+; apksigner 31 has no v3.1). */
void hs_apk_options_init(hs_apk_options *opt);

typedef struct hs_apk_report {
    int min_sdk;
    bool v1, v2, v3, v4;      /* schemes applied (v4: <out>.idsig written) */
    bool v31;                 /* a v3.1 block (rotation for rotation_min_sdk and later) */
    unsigned signatures;      /* hs_sign_fn calls made */
    uint32_t algorithm_id;    /* v2/v3 signature algorithm (0x0103, 0x0104, 0x0201, ...) */
    uint8_t content_digest[64];
    size_t content_digest_len;
    uint8_t input_sha256[32], output_sha256[32];
} hs_apk_report;

/* Signs in into out (out must not name the same file as in). rep may be NULL.
 * With opt->v4 the APK Signature Scheme v4 file goes to "<out>.idsig"; the
 * APK and the .idsig are committed together (neither is left on error). */
hs_result hs_apk_sign_file(const char *in, const char *out, const hs_apk_key *key,
                           const hs_apk_options *opt, hs_sign_fn sign, hs_apk_report *rep,
                           hs_error *e) HS_MUST_CHECK;

/* An output left unpublished by hs_apk_options.defer: a temporary file
 * beside its destination plus its tail in memory (a few KB to 1 MB). */
typedef struct hs_apk_pending hs_apk_pending;
/* Writes the tail and starts its writeback. Only once the entries of its
 * signatures are durable. */
hs_result hs_apk_pending_write(hs_apk_pending *p, hs_error *e) HS_MUST_CHECK;
/* fsync and rename into place; the directory's fsync is the caller's. */
hs_result hs_apk_pending_publish(hs_apk_pending *p, hs_error *e) HS_MUST_CHECK;
/* The destination path (valid until free). */
const char *hs_apk_pending_path(const hs_apk_pending *p);
/* Bytes of memory it holds (for bounding a group). */
size_t hs_apk_pending_size(const hs_apk_pending *p);
/* Removes the temporary file unless published; NULL is fine. */
void hs_apk_pending_free(hs_apk_pending *p);

/* A certificate exactly as the APK stores it (not re-encoded). */
typedef struct hs_apk_cert {
    uint8_t *der; /* malloc'd */
    size_t len;
} hs_apk_cert;

/* The platform range to verify for, as apksigner's --min-sdk-version and
 * --max-sdk-version. */
typedef struct hs_apk_verify_options {
    int min_sdk; /* -1: the manifest's minSdkVersion (apksigner's default) */
    int max_sdk; /* -1: every platform (apksigner's default) */
} hs_apk_verify_options;

#define HS_APK_SDK_LATEST 0x7fffffff

typedef struct hs_apk_verify_report {
    int min_sdk;                 /* from the manifest, -1 when it cannot be read */
    int target_sdk;              /* likewise */
    int range_min, range_max;    /* the platform range checked */
    bool v1_present, v2_present, v3_present, v31_present;
    /* verified; a scheme the platforms in range skip (v1 from Android 7.0
     * when v2+ is there, v2 from 9 when v3 is there) is not checked and
     * stays false, as in apksigner's report */
    bool v1, v2, v3, v31;
    uint32_t algorithm_id;       /* of the v3 (else v2) signer */
    uint8_t *cert_der;           /* THE signer certificate (as apksigner reports it); malloc'd */
    size_t cert_der_len;
    uint8_t cert_sha256[32];
    /* Every signer certificate apksigner prints (v3.1/v3: the newest; v2,
     * v1: each signer), and the lineage (oldest first) when rotated. */
    hs_apk_cert *signers;
    size_t signer_count;
    hs_apk_cert *lineage;
    size_t lineage_count;
    /* SHA-256 of the first verified signature of the v2 / v3 signer (zero
     * when absent), what an audit entry records as sig_sha256: lets
     * `audit check` match an APK's signatures with the log. */
    uint8_t v2_sig_sha256[32], v3_sig_sha256[32];
    uint8_t v1_sig_sha256[32]; /* likewise for the JAR signature block's signature */
} hs_apk_verify_report;

/* HS_OK when Android verifies the APK on every platform of the range,
 * following AOSP apksig's ApkVerifier (the rules apksigner applies):
 * v3.1, v3, v2 and v1 in the order and for the platforms Android checks
 * them, target SDK / sandbox rules, and the same signer (or a lineage
 * linking them) across schemes. HS_E_VERIFY otherwise, HS_E_USAGE for a
 * bad range. The report is filled as far as the checks got; free it in
 * every case. opt NULL: apksigner's default range. */
hs_result hs_apk_verify_file_range(const char *path, const hs_apk_verify_options *opt,
                                   hs_apk_verify_report *rep, hs_error *e) HS_MUST_CHECK;
/* The same with apksigner's default range. */
hs_result hs_apk_verify_file(const char *path, hs_apk_verify_report *rep,
                             hs_error *e) HS_MUST_CHECK;
void hs_apk_verify_report_free(hs_apk_verify_report *rep);

#endif
