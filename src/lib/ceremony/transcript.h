/* The ceremony transcript: what was done, to which tokens, and everything
 * needed later to check shares and restore the wrap key (its check value,
 * the share set, the SHA-256 of every file written). Written as JSON
 * (machine-readable, read back by restore and `shares verify`) and as text
 * to print and sign on paper; both are signed by the audit key, the
 * signatures in FILE.sig beside them. Format: docs/ceremony.md. Holds no
 * secret. */
#ifndef HSMSIGN_CEREMONY_TRANSCRIPT_H
#define HSMSIGN_CEREMONY_TRANSCRIPT_H

#include <stdbool.h>
#include <stdint.h>

#include "ceremony/config.h"

#define HS_TRANSCRIPT_FORMAT "hsmsign-ceremony-transcript"
#define HS_TRANSCRIPT_VERSION 2 /* written; version 1 is still read */
#define HS_TRANSCRIPT_LIBS_MAX 64
#define HS_ABORTED_FORMAT "hsmsign-ceremony-aborted"
#define HS_TRANSCRIPT_SALT_LEN 16
#define HS_TRANSCRIPT_MAX (4u << 20)
#define HS_TRANSCRIPT_PATH_MAX 255
#define HS_TRANSCRIPT_CANARY_MAX 1024

typedef struct hs_transcript_file {
    char path[HS_TRANSCRIPT_PATH_MAX + 1]; /* relative to the ceremony directory */
    uint8_t sha256[32];
} hs_transcript_file;

typedef struct hs_transcript_token {
    char role[8]; /* "primary" or "backup" */
    char label[33], serial[17], model[17], manufacturer[33];
    char firmware[16], hardware[16]; /* "major.minor" from C_GetTokenInfo; v2 */
} hs_transcript_token;

typedef struct hs_transcript_holder {
    char name[HS_SHARE_LABEL_MAX + 1];
    char recipient[HS_CEREMONY_RECIPIENT_MAX + 1];
    hs_transcript_file file; /* the age-encrypted share */
    /* v2: the share's x and a salted commitment to the plain share
     * (hs_share_commitment), so each share is checkable alone. */
    uint8_t x;
    uint8_t salt[HS_TRANSCRIPT_SALT_LEN];
    uint8_t commitment[32];
} hs_transcript_holder;

typedef struct hs_transcript_credential {
    char token[8];       /* "primary" or "backup" */
    char credential[16]; /* "so-pin" or "user-pin" */
    hs_ceremony_role role;
    hs_transcript_file file; /* age-encrypted to the role's recipients */
} hs_transcript_credential;

#define HS_TRANSCRIPT_CREDENTIALS 4

typedef struct hs_transcript {
    unsigned version; /* as read; HS_TRANSCRIPT_VERSION when written */
    char name[HS_CEREMONY_NAME_MAX + 1];
    char date[32]; /* UTC, ISO 8601 */
    char tool_version[64];
    uint8_t tool_sha256[32];
    hs_transcript_token tokens[2]; /* primary, backup */
    char wrap_label[64];
    char profile[16]; /* token profile (p11/profile.h); absent from older transcripts: "wrapped" */
    uint8_t kcv[HS_SHARE_KCV_LEN];
    uint8_t set_id[HS_SHARE_SET_ID_LEN];
    unsigned threshold;
    size_t n_holders;
    hs_transcript_holder holders[HS_SHARE_MAX_SHARES];
    hs_ceremony_recipients roles[HS_ROLE_COUNT];
    hs_transcript_credential credentials[HS_TRANSCRIPT_CREDENTIALS];
    char audit_alg[32];
    char audit_label[64];
    char *audit_pem; /* malloc'd PEM SubjectPublicKeyInfo */
    uint8_t audit_fingerprint[32]; /* SHA-256 of the SubjectPublicKeyInfo DER */
    hs_transcript_file audit_pem_file;
    /* v2: what ran the ceremony, beyond the executable's hash: each shared
     * library mapped (from /proc/self/maps) and the PKCS#11 module file;
     * whether a share holder may also hold a role (the config said so);
     * whether the secrets' memory was locked. */
    size_t n_libs;
    hs_transcript_file libs[HS_TRANSCRIPT_LIBS_MAX];
    hs_transcript_file module;
    /* Optional in v2 (issue 14): the module's C_Initialize configuration
     * string ("" when none), and the wrap key's canary: the public test key
     * wrapped under it in RFC 5649 on the host (keystore/wrapkey.h), which
     * names the key on tokens without CKA_CHECK_VALUE (len 0 when absent). */
    char module_init_args[512];
    uint8_t wrap_canary[HS_TRANSCRIPT_CANARY_MAX];
    size_t wrap_canary_len;
    bool holders_may_hold_roles;
    bool memory_locked;
} hs_transcript;

/* The JSON form (malloc'd, NUL-terminated, ending in a newline). */
hs_result hs_transcript_to_json(const hs_transcript *t, char **out, hs_error *e) HS_MUST_CHECK;
/* The human-readable form, to print and sign. */
hs_result hs_transcript_to_text(const hs_transcript *t, char **out, hs_error *e) HS_MUST_CHECK;

/* The record an aborted ceremony writes in place of its transcript (JSON,
 * format HS_ABORTED_FORMAT): t's name, date and share set, the steps done,
 * where and why it failed. hs_transcript_parse refuses it (HS_E_VERIFY),
 * saying the share set is void. */
hs_result hs_transcript_aborted_json(const hs_transcript *t, const char *const *done,
                                     size_t n_done, const char *failed_at, const char *error,
                                     char **out, hs_error *e) HS_MUST_CHECK;

/* Strict reader of the JSON form (versions 1 and 2). *out is malloc'd: hs_transcript_free. */
hs_result hs_transcript_parse(const char *text, size_t len, const char *source,
                              hs_transcript **out, hs_error *e) HS_MUST_CHECK;

/* Where trust in a transcript comes from: the auditor's own copy of the
 * audit public key, never the key written inside the transcript. */
typedef struct hs_transcript_trust {
    const char *audit_key; /* PEM file (--audit-key), or NULL */
    bool allow_unsigned;   /* --unsigned-transcript: go on without a checked signature */
} hs_transcript_trust;

/* Reads PATH and verifies PATH.sig with trust->audit_key, which the
 * transcript must also name as its audit key. A missing or bad signature
 * is HS_E_VERIFY, no audit_key HS_E_USAGE, unless allow_unsigned (then no
 * signature is needed; one that is there is still checked when a key is
 * given). *signature_checked says whether a signature was verified. */
hs_result hs_transcript_load(const char *path, const hs_transcript_trust *trust,
                             hs_transcript **out, bool *signature_checked,
                             hs_error *e) HS_MUST_CHECK;

void hs_transcript_free(hs_transcript *t);

#endif
