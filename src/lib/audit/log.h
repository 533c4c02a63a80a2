/* The tamper-evident audit log: the entries of record.h as leaves of an
 * RFC 6962 Merkle tree (leaf = one entry line without its newline), and
 * C2SP checkpoints committing to that tree, signed by the HSM-resident
 * audit key.
 *
 * Files in the log directory (docs/audit-log.md):
 *   entries.jsonl            the entries (record.c appends them)
 *   checkpoint               the latest signed checkpoint (atomic replace)
 *   checkpoints/<size>       every checkpoint ever signed, by tree size
 *
 * A checkpoint is only signed after the previous one has been checked to
 * be a prefix of the current tree, so the log never signs two
 * inconsistent checkpoints, even when someone edited the entries. */
#ifndef HSMSIGN_AUDIT_LOG_H
#define HSMSIGN_AUDIT_LOG_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/checkpoint.h"
#include "keystore/auditkey.h"
#include "util/result.h"

#define HS_AUDIT_CHECKPOINT_FILE "checkpoint"
#define HS_AUDIT_CHECKPOINT_DIR "checkpoints"
#define HS_AUDIT_ORIGIN_PREFIX "hsmsign.audit/"

/* A loaded log: complete lines only (a torn last line was never
 * acknowledged and is not part of the log). */
typedef struct hs_auditlog {
    uint8_t *data;
    size_t len;        /* bytes of the complete lines */
    bool torn;         /* bytes after the last newline were ignored */
    size_t count;      /* entries */
    size_t *offsets;   /* count + 1 offsets: entry i is [offsets[i], offsets[i+1] - 1) */
    uint8_t *leaves;   /* count leaf hashes */
} hs_auditlog;

/* Loads DIR/entries.jsonl (absent: an empty log). */
hs_result hs_auditlog_load(const char *dir, hs_auditlog *log, hs_error *e) HS_MUST_CHECK;
/* Same over bytes already read; takes ownership of data (malloc'd). */
hs_result hs_auditlog_from_bytes(uint8_t *data, size_t len, hs_auditlog *log,
                                 hs_error *e) HS_MUST_CHECK;
void hs_auditlog_free(hs_auditlog *log);
/* The roots of the first sizes[k] entries (k < n, sizes ascending, none
 * above log->count) into out + 32 * k, in one pass over the leaves:
 * checking any number of checkpoints costs one tree. */
hs_result hs_auditlog_roots(const hs_auditlog *log, const uint64_t *sizes, size_t n,
                            uint8_t *out, hs_error *e) HS_MUST_CHECK;
/* Entry i's bytes, without the newline. */
const char *hs_auditlog_entry(const hs_auditlog *log, size_t i, size_t *len);
/* Each entry is a JSON object whose "seq" is its index (catches entries
 * removed, duplicated or swapped even before the tree is compared). */
hs_result hs_auditlog_check_entries(const hs_auditlog *log, hs_error *e) HS_MUST_CHECK;
/* One entry line (no newline): a JSON object whose "seq" is i. */
hs_result hs_auditlog_check_entry(const char *line, size_t len, size_t i,
                                  hs_error *e) HS_MUST_CHECK;

/* The note's signature, by pub, under the origin it names; *cp is the
 * signed checkpoint. Says nothing about any log. */
hs_result hs_auditlog_verify_note(const char *note, size_t len, EVP_PKEY *pub,
                                  hs_checkpoint *cp, hs_error *e) HS_MUST_CHECK;
/* HS_E_VERIFY, naming the checkpoint, unless root is cp's root. */
hs_result hs_auditlog_compare_root(const hs_checkpoint *cp, const uint8_t root[HS_MERKLE_HASH_LEN],
                                   hs_error *e) HS_MUST_CHECK;

/* Verifies a signed checkpoint note with the auditor's key (the key name
 * is the checkpoint's origin) and that it commits to a prefix of log. */
hs_result hs_auditlog_check_checkpoint(const hs_auditlog *log, const char *note, size_t len,
                                       EVP_PKEY *pub, hs_checkpoint *cp,
                                       hs_error *e) HS_MUST_CHECK;

/* "hsmsign.audit/<token serial>", the origin of a new log's checkpoints. */
void hs_auditlog_origin(const char *serial, char origin[HS_CHECKPOINT_ORIGIN_MAX]);

/* Creates the log explicitly (`hsmsign audit init`, and hs_audit_open for
 * a directory that does not exist): the directory, its git repository, an
 * empty entries file and a checkpoint of size 0 signed with the audit key,
 * so that a log always has a checkpoint to check. A missing directory is
 * built under DIR.init-XXXXXX and renamed into place (a kill leaves no
 * log or a whole one). An existing directory is accepted only while it
 * holds no entries and no checkpoint; otherwise HS_E_EXISTS, naming
 * `audit restart`. */
hs_result hs_auditlog_init(const char *dir, hs_p11 *p, const hs_auditkey *key,
                           hs_error *e) HS_MUST_CHECK;

/* The consistency gate, run with the log's lock held before the first
 * entry of a process is appended (record.c), so before any signature is
 * released: the latest checkpoint exists and verifies with pub,
 * checkpoints/ holds the same checkpoint, and the log extends it.
 *
 * Fast path (a checkpoint.state for the checkpoint's size, state.h): the
 * state reproduces the signed root (so the signature authenticates it),
 * the entries file still holds the last covered entry, byte for byte,
 * where the state says, and every entry after it has its index as seq.
 * Costs one signature verification, O(log n) hashes and the bytes after
 * the checkpoint: entries before the last covered one are not re-read
 * (a rewrite of those in place is found by `audit verify` and git).
 * A state that claims the checkpoint's size but does not reproduce its
 * root is refused.
 *
 * Full path (no state, one that does not parse, or one for another size:
 * an older log, or a kill between the checkpoint and its state): every
 * entry's seq is its index and the first `size` entries hash to the
 * checkpoint's root; the state is then written (best effort), which is how
 * logs of earlier versions are upgraded. HS_E_AUDIT naming the file and
 * the check that failed. */
hs_result hs_auditlog_gate(const char *dir, EVP_PKEY *pub, hs_error *e) HS_MUST_CHECK;

typedef struct hs_checkpoint_result {
    hs_checkpoint cp;
    bool signed_new; /* false: the latest checkpoint already covered the log */
    bool committed;  /* a git commit was made */
} hs_checkpoint_result;

/* Under the log's lock: runs the gate (hs_auditlog_gate; a log without a
 * checkpoint is refused, never given a fresh one), signs a checkpoint for
 * the whole log with the audit key when it grew, keeping the log's origin,
 * writes it (checkpoints/<size> first, then checkpoint), and commits
 * entries and checkpoints to the directory's git repository (git.h). */
hs_result hs_auditlog_checkpoint(const char *dir, hs_p11 *p, const hs_auditkey *key,
                                 hs_checkpoint_result *res, hs_error *e) HS_MUST_CHECK;

typedef struct hs_auditlog_report {
    size_t entries;
    size_t checkpoints;    /* signatures checked, latest and history */
    uint64_t checked_size; /* size of the latest checkpoint */
    size_t uncovered;      /* entries after the latest checkpoint */
    size_t uncovered_deferred; /* ... of which reuse/output entries, whose
                                * checkpoint is deferred by design (record.h) */
    bool torn;
    bool old_checked;      /* --checkpoint OLD was proven a prefix */
    uint64_t old_size;
} hs_auditlog_report;

/* Recomputes the tree, checks every entry's sequence number, the latest
 * checkpoint and every one in checkpoints/ (signature with pub, and that
 * the log extends it), and, when old_note is given, that the log is an
 * append-only extension of it (consistency proof from it to the latest
 * checkpoint). HS_E_VERIFY names the first problem. */
hs_result hs_auditlog_verify(const char *dir, EVP_PKEY *pub, const char *old_note, size_t old_len,
                             hs_auditlog_report *rep, hs_error *e) HS_MUST_CHECK;

#endif
