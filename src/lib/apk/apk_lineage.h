/* Signing certificate lineage (APK Signature Scheme v3 key rotation), in
 * apksig's SigningCertificateLineage format:
 *
 *   lineage file: u32 magic 0x3eff39d1, u32 version (1), u32 length, then
 *   the v3 attribute form: u32 version (1), then nodes, each u32-length-prefixed:
 *     lp(signed data: lp(certificate DER) u32 algorithm-the-parent-signed-with)
 *     u32 flags (capabilities granted to this certificate)
 *     u32 algorithm this certificate signs its child with
 *     lp(signature by the PARENT's key over the signed data; empty for the root)
 *
 * Parsing verifies every link: node i's signed data verifies with node
 * i-1's certificate and algorithm, the algorithm named inside the signed
 * data is that one, and no certificate appears twice. A forged or
 * reordered link is refused. The nodes point into the caller's buffer,
 * which must outlive the lineage. Used by the verifier (the v3 proof-of-
 * rotation attribute) and by key rotation (the file apksigner rotate
 * writes). */
#ifndef HSMSIGN_ANDROID_APK_LINEAGE_H
#define HSMSIGN_ANDROID_APK_LINEAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/apk_lp.h"
#include "util/result.h"

#define HS_APK_LINEAGE_MAGIC 0x3eff39d1u
#define HS_APK_LINEAGE_VERSION 1u
/* Capability flags (apksig's SigningCertificateLineage.SignerCapabilities). */
#define HS_APK_LINEAGE_INSTALLED_DATA 1u
#define HS_APK_LINEAGE_SHARED_USER_ID 2u
#define HS_APK_LINEAGE_PERMISSION 4u
#define HS_APK_LINEAGE_ROLLBACK 8u
#define HS_APK_LINEAGE_AUTH 16u

typedef enum hs_apk_lineage_format {
    HS_APK_LINEAGE_V3_ATTR, /* the value of the v3 proof-of-rotation attribute */
    HS_APK_LINEAGE_FILE,    /* a lineage file: magic first */
} hs_apk_lineage_format;

typedef struct hs_apk_lineage_node {
    const uint8_t *cert;        /* certificate as stored (not re-encoded) */
    size_t cert_len;
    uint32_t parent_sig_alg;    /* algorithm the parent signed this node with; 0 for the root */
    uint32_t flags;
    uint32_t sig_alg;           /* algorithm this certificate signs the next node with */
    const uint8_t *signed_data; /* what the parent signed */
    size_t signed_data_len;
    const uint8_t *sig;         /* the parent's signature (empty for the root) */
    size_t sig_len;
} hs_apk_lineage_node;

typedef struct hs_apk_lineage {
    hs_apk_lineage_node *nodes; /* oldest first */
    size_t count;
} hs_apk_lineage;

/* Reads the next node of a run of length-prefixed nodes (what follows the
 * version in the v3 attribute form) into n, pointing into the run's bytes.
 * exact: nothing may follow the node's fields or its signed data's (the
 * lineage file reader's rule, apk_lineage_write.c); apksig, and so the
 * verifier, ignore such bytes. False when malformed; *why (may be NULL)
 * then says which part: "truncated", "malformed node" or "malformed
 * signed data". Shared by both readers so the layout is decoded once. */
bool hs_apk_lineage_read_node(hs_lp *nodes, hs_apk_lineage_node *n, bool exact,
                              const char **why);

/* Parses and verifies every link. HS_E_VERIFY for a link that does not
 * verify, HS_E_FORMAT for malformed bytes; what names the source in errors. */
hs_result hs_apk_lineage_parse(const uint8_t *p, size_t len, hs_apk_lineage_format fmt,
                               const char *what, hs_apk_lineage *out, hs_error *e) HS_MUST_CHECK;

/* Index of the node with exactly these certificate bytes, or -1. */
long hs_apk_lineage_find(const hs_apk_lineage *l, const uint8_t *cert, size_t cert_len);

/* apksig's mergeLineageWith: one lineage must continue the other (they
 * agree wherever both have nodes); out is the longer history. */
hs_result hs_apk_lineage_merge(const hs_apk_lineage *a, const hs_apk_lineage *b,
                               hs_apk_lineage *out, hs_error *e) HS_MUST_CHECK;

/* A deep copy (nodes still point into the original buffers). */
hs_result hs_apk_lineage_copy(const hs_apk_lineage *src, hs_apk_lineage *out,
                              hs_error *e) HS_MUST_CHECK;

void hs_apk_lineage_free(hs_apk_lineage *l);

#endif
