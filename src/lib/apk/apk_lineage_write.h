/* SigningCertificateLineage, the signing half: the file `apksigner rotate`
 * writes (AOSP apksig SigningCertificateLineage / V3SigningCertificateLineage),
 * created and extended with signatures made through hs_sign_fn (the HSM,
 * through the signer chokepoint), and read back, every link checked, to
 * sign an APK with it (v3's proof-of-rotation attribute).
 *
 * File (little-endian):   u32 magic 0x3eff39d1, u32 version 1,
 *                         lp(u32 version 1, lp(node)...)
 * node:                   lp(signed data = lp(certificate), u32 algorithm
 *                         the parent signed it with), u32 flags, u32
 *                         algorithm this signer signs the next one with
 *                         (0: none yet), lp(signature by the parent; empty
 *                         for the first signer)
 * lp(x) is a u32 length then x. Nodes are decoded by apk_lineage.c's
 * hs_apk_lineage_read_node, which the verifier's parser shares. */
#ifndef HSMSIGN_ANDROID_APK_LINEAGE_WRITE_H
#define HSMSIGN_ANDROID_APK_LINEAGE_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apk/apk.h"
#include "apk/apk_buf.h"
#include "apk/apk_lineage.h"
#include "signer/sign_fn.h"
#include "util/result.h"

/* Capabilities an older certificate keeps: HS_APK_LINEAGE_INSTALLED_DATA
 * etc. (apk_lineage.h); apksig's default: everything but rollback. */
#define HS_LINEAGE_CAP_DEFAULT                                                     \
    (HS_APK_LINEAGE_INSTALLED_DATA | HS_APK_LINEAGE_SHARED_USER_ID |                 \
     HS_APK_LINEAGE_PERMISSION | HS_APK_LINEAGE_AUTH)

typedef struct hs_lineage_node {
    uint8_t *cert_der;
    size_t cert_der_len;
    uint32_t parent_alg; /* algorithm the parent signed this node with (0: first) */
    uint32_t flags;
    uint32_t sig_alg;    /* algorithm this signer signed the next node with (0: last) */
    uint8_t *sig;        /* the parent's signature over the signed data */
    size_t sig_len;
} hs_lineage_node;

typedef struct hs_lineage {
    hs_lineage_node *nodes; /* oldest first */
    size_t count;
} hs_lineage;

/* A lineage of one: the original signer, no signature. */
hs_result hs_lineage_init(hs_lineage *l, const uint8_t *cert_der, size_t cert_der_len,
                          uint32_t flags, hs_error *e) HS_MUST_CHECK;
/* Appends `child`, signed by `parent` (which must be the newest signer)
 * with the algorithm apksig picks for the parent's key, through sign. */
hs_result hs_lineage_extend(hs_lineage *l, const hs_apk_key *parent, const hs_apk_key *child,
                            uint32_t child_flags, hs_sign_fn sign, const char *artifact,
                            hs_error *e) HS_MUST_CHECK;
/* Parses a lineage file and checks every link: known algorithm, the
 * parent's signature over the child's signed data with the parent's key,
 * the algorithm named on both sides equal, no certificate twice, nothing
 * left over. `what` names the file in errors. */
hs_result hs_lineage_parse(const uint8_t *data, size_t len, const char *what, hs_lineage *l,
                           hs_error *e) HS_MUST_CHECK;
hs_result hs_lineage_read_file(const char *path, hs_lineage *l, hs_error *e) HS_MUST_CHECK;
/* The index of the node with this certificate, or -1. */
long hs_lineage_find(const hs_lineage *l, const uint8_t *cert_der, size_t cert_der_len);
/* Version and nodes: the proof-of-rotation attribute's value. */
hs_result hs_lineage_encode_nodes(const hs_lineage *l, hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;
/* The whole file, as apksigner rotate writes it. */
hs_result hs_lineage_encode_file(const hs_lineage *l, hs_apk_buf *out, hs_error *e) HS_MUST_CHECK;
/* True when encoded nodes (hs_lineage_encode_nodes) start with this
 * certificate: apksig signs v1 only with a lineage's first signer. */
bool hs_lineage_nodes_start_with(const uint8_t *nodes, size_t len, const uint8_t *cert_der,
                                 size_t cert_der_len);
void hs_lineage_free(hs_lineage *l);

#endif
