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
     * v1 and v2, as apksigner does with --next-signer; NULL: one key signs
     * every scheme. Both NULL: no rotation. */
    const uint8_t *lineage;
    size_t lineage_len;
    const hs_apk_key *v3_key;
    /* Called once the output is complete (rep has its SHA-256) and before
     * it is renamed into place; an error aborts, leaving no output. The
     * product records the output in the audit log here, so an APK never
     * appears without its entries. NULL: none. */
    hs_result (*before_commit)(void *ctx, const char *out, const struct hs_apk_report *rep,
                               hs_error *e);
    void *before_commit_ctx;
} hs_apk_options;

/* Fills the defaults: min_sdk -1, schemes -1, alignment preserved (so the
 * output is byte-identical to apksigner 31's). */
void hs_apk_options_init(hs_apk_options *opt);

typedef struct hs_apk_report {
    int min_sdk;
    bool v1, v2, v3, v4;      /* schemes applied (v4: <out>.idsig written) */
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

typedef struct hs_apk_verify_report {
    int min_sdk;                 /* from the manifest, -1 when it cannot be read */
    bool v1_present, v2_present, v3_present;
    bool v1, v2, v3;             /* present and verified */
    uint32_t algorithm_id;       /* of the v3 (else v2) signer */
    uint8_t *cert_der;           /* signer certificate (v3, else v2, else v1); malloc'd */
    size_t cert_der_len;
    uint8_t cert_sha256[32];
    /* SHA-256 of the first verified signature of the v2 / v3 signer (zero
     * when absent), what an audit entry records as sig_sha256: lets
     * `audit check` match an APK's signatures with the log. */
    uint8_t v2_sig_sha256[32], v3_sig_sha256[32];
    uint8_t v1_sig_sha256[32]; /* likewise for the JAR signature block's signature */
} hs_apk_verify_report;

/* HS_OK when at least one scheme is present and every present scheme
 * verifies (digests, signature with the embedded key, key matches the
 * certificate, same signer across schemes); HS_E_VERIFY otherwise. The
 * report is filled as far as the checks got; free it in every case. */
hs_result hs_apk_verify_file(const char *path, hs_apk_verify_report *rep,
                             hs_error *e) HS_MUST_CHECK;
void hs_apk_verify_report_free(hs_apk_verify_report *rep);

#endif
