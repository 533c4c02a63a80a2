/* The durable record of every key use: the entry point the signer calls
 * before it releases a signature.
 *
 * Entries are appended to DIR/entries.jsonl, one canonical JSON object per
 * line (sorted keys, compact), under an exclusive lock on DIR/.lock, and
 * fsynced (file, and directory on creation) before hs_audit_append returns.
 * A line left incomplete by a crash was never acknowledged (its signature
 * never left the process) and is cut off by the next append. Format:
 * docs/audit-log.md. */
#ifndef HSMSIGN_AUDIT_RECORD_H
#define HSMSIGN_AUDIT_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "keystore/auditkey.h"
#include "p11/p11.h"
#include "util/result.h"

#define HS_AUDIT_DEFAULT_DIR "./audit"
#define HS_AUDIT_ENTRIES_FILE "entries.jsonl"
#define HS_AUDIT_FORMAT_VERSION 1

typedef struct hs_audit hs_audit;

/* The log an `audit restart` set aside, recorded in the new log's first
 * entry. */
typedef struct hs_audit_prior {
    const char *dir;               /* where the old log now is */
    size_t entries;                /* its complete entries */
    const uint8_t *entries_sha256; /* SHA-256 of its whole entries file */
    bool has_checkpoint;           /* a checkpoint file could be parsed */
    bool checkpoint_verified;      /* ... and verifies with the new log's audit key */
    uint64_t checkpoint_size;
    const uint8_t *checkpoint_root; /* 32 bytes, when has_checkpoint */
} hs_audit_prior;

typedef struct hs_audit_entry {
    const char *operation;        /* "sign", "reuse", "unwrap", "generate", "import", "wrapkey-create" */
    const char *purpose;          /* what was signed: "raw", "x509-self-signed", "apk-v2", ... */
    const char *key_name;
    const uint8_t *key_fingerprint; /* SHA-256 of the SubjectPublicKeyInfo, or NULL */
    const char *algorithm;
    const uint8_t *tbs_sha256;    /* SHA-256 of exactly the bytes signed, or NULL */
    const uint8_t *sig_sha256;    /* SHA-256 of the signature, or NULL */
    const char *artifact;         /* path as given, or NULL */
    const uint8_t *input_sha256;  /* or NULL */
    const uint8_t *output_sha256; /* or NULL */
    const char *reason;           /* why ("audit-restart"), or NULL */
    const hs_audit_prior *prior;  /* the log set aside ("audit-restart"), or NULL */
    /* "reuse": the signature came from the signature cache; the entry that
     * recorded it when it was made (seq, and its process's batch id). */
    const uint64_t *reuse_of_seq; /* or NULL */
    const char *reuse_of_batch;
} hs_audit_entry;

typedef struct hs_audit_context {
    const char *token_label;
    const char *token_serial;
    const char *batch_id; /* one id per hsmsign process unless given */
    /* The log's audit key (borrowed; must outlive the handle): its public
     * key checks the log before the first append (the gate, log.h), and
     * with p11 (logged in) it signs the size-0 checkpoint of a log that
     * does not exist yet. p11 may be NULL when the log must exist. */
    const hs_auditkey *audit_key;
    hs_p11 *p11;
} hs_audit_context;

/* Opens the log DIR. A directory that does not exist is created as a new
 * log (hs_auditlog_init); an existing one is checked by the gate under the
 * lock before this handle's first entry is appended, and an append fails
 * with HS_E_AUDIT, appending nothing, when it does not hold. Without an
 * audit key the log cannot be checked: HS_E_AUDIT. */
hs_result hs_audit_open(const char *dir, const hs_audit_context *ctx, hs_audit **out,
                        hs_error *e) HS_MUST_CHECK;
/* Runs the gate now (it runs anyway before the first append): for a
 * command that changes the token before its first entry, so that it
 * refuses before touching anything. HS_E_AUDIT when the log does not hold. */
hs_result hs_audit_check(hs_audit *a, hs_error *e) HS_MUST_CHECK;
/* Appends and fsyncs; on any failure nothing is acknowledged and the
 * caller must discard what the entry was about. *seq gets the entry's
 * sequence number (may be NULL). */
hs_result hs_audit_append(hs_audit *a, const hs_audit_entry *entry, uint64_t *seq,
                          hs_error *e) HS_MUST_CHECK;
/* Group commit: appends without the fsync. The caller must call
 * hs_audit_sync before anything the entry is about leaves the process
 * (the APK signer: before the signature bytes are written to any file).
 * Several entries then cost one fsync. Any later hs_audit_append or
 * checkpoint also makes them durable. */
hs_result hs_audit_append_deferred(hs_audit *a, const hs_audit_entry *entry, uint64_t *seq,
                                   hs_error *e) HS_MUST_CHECK;
/* fsyncs the entries file if this handle appended without fsync since the
 * last one; nothing to do otherwise. */
hs_result hs_audit_sync(hs_audit *a, hs_error *e) HS_MUST_CHECK;
/* fsyncs DIR's entries file, whoever appended to it. */
hs_result hs_audit_fsync_entries(const char *dir, hs_error *e) HS_MUST_CHECK;
/* Closing syncs deferred entries, best effort (their results were never
 * released if the caller kept the rule above). */
void hs_audit_close(hs_audit *a);
const char *hs_audit_batch_id(const hs_audit *a);
/* Entries this handle appended. */
size_t hs_audit_appended(const hs_audit *a);

/* Deferred checkpoints (docs/audit-log.md): a "reuse" entry records a
 * signature the HSM made earlier, whose own "sign" entry a checkpoint
 * signs for, and an "output" entry the hash of a file written; neither
 * records a use of a key in the HSM. They are made
 * durable (fsync) like every entry, but do not by themselves call for a
 * new checkpoint: the next one, signed for any other entry or by `hsmsign
 * audit checkpoint`, covers them. A re-run served wholly from the
 * signature cache then costs no signature at all, not even the audit
 * key's. */
#define HS_AUDIT_OP_REUSE "reuse"
#define HS_AUDIT_OP_OUTPUT "output"
bool hs_audit_op_defers_checkpoint(const char *operation);
/* Entries this handle appended whose operation does not defer the
 * checkpoint, in all. */
size_t hs_audit_fresh(const hs_audit *a);
/* This handle appended an entry that does not defer the checkpoint
 * since its last one: a command (or the agent's batch) ends by signing one. */
bool hs_audit_checkpoint_due(const hs_audit *a);
/* A checkpoint covering every entry this handle appended was signed. */
void hs_audit_checkpoint_done(hs_audit *a);
const char *hs_audit_dir(const hs_audit *a);

#endif
