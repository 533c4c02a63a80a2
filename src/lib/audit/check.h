/* `audit check`: signatures made by our keys that the log does not know.
 *
 * Walks a directory of release artifacts, finds every signature it can
 * read — APK v1, v2 and v3 signers (their signature bytes), raw detached
 * signatures FILE.sig next to FILE, the vbmeta signature of AVB images
 * (*.img: vbmeta images and partition images with a footer) and the
 * whole-file signature of OTA packages (*.zip, signapk -w), an APEX's
 * container (APK signers) and payload (vbmeta, *.apex) — keeps those whose public key is one
 * of the key store's keys, and reports each whose SHA-256 is the
 * sig_sha256 of no log entry: a signature made outside hsmsign, or with
 * its entry removed. */
#ifndef HSMSIGN_AUDIT_CHECK_H
#define HSMSIGN_AUDIT_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

typedef struct hs_audit_finding {
    char *path;          /* artifact, malloc'd */
    const char *scheme;  /* "jar-sf", "apk-v2", "apk-v3", "raw", "avb",
                            "ota-wholefile" */
    char key[129];       /* the key store's name for the signing key */
    uint8_t sig_sha256[32];
} hs_audit_finding;

typedef struct hs_audit_check_report {
    size_t files;       /* artifacts examined */
    size_t signatures;  /* signatures found */
    size_t ours;        /* ... made by a key of the key store */
    size_t unlogged;    /* ... of which have no log entry: findings */
    hs_audit_finding *findings;
} hs_audit_check_report;

/* dir may also be a single artifact file. */
hs_result hs_audit_check_dir(const char *log_dir, const char *keystore_dir, const char *dir,
                             hs_audit_check_report *rep, hs_error *e) HS_MUST_CHECK;
void hs_audit_check_report_free(hs_audit_check_report *rep);

#endif
