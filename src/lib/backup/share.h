/* Backup shares of a secret (the wrap key), format "hsmsign-share v1".
 *
 * The secret is not split directly. A fresh random 32-byte key K is split
 * k-of-n with Shamir (shamir.h), and every share carries the same
 * AES-256-GCM encryption of the secret under K, with the share set's
 * metadata as associated data. Recovery therefore knows whether it got the
 * original back (the tag verifies) instead of silently producing a wrong
 * key, and with k+1 or more shares it can name the share that is wrong.
 * Each share also has a SHA-256 checksum over its other fields, so
 * accidental damage to one share is found without the others. The text
 * encoding is specified in docs/share-format.md. */
#ifndef HSMSIGN_BACKUP_SHARE_H
#define HSMSIGN_BACKUP_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define HS_SHARE_VERSION 1u
#define HS_SHARE_SET_ID_LEN 16u
#define HS_SHARE_KEY_LEN 32u   /* K, the Shamir-split key; also the y length */
#define HS_SHARE_KCV_LEN 3u    /* AES key check value of the secret */
#define HS_SHARE_NONCE_LEN 12u /* AES-GCM nonce */
#define HS_SHARE_TAG_LEN 16u   /* AES-GCM tag */
#define HS_SHARE_SECRET_MAX 32u
#define HS_SHARE_LABEL_MAX 128u /* bytes of UTF-8, no control characters */
#define HS_SHARE_CHECKSUM_LEN 32u
#define HS_SHARE_MAX_SHARES 255u
/* Upper bound of a serialized share, for callers' buffers. */
#define HS_SHARE_TEXT_MAX 1024u
/* k-subsets recovery tries, at most, to find which share is wrong. */
#define HS_SHARE_MAX_SUBSETS 20000ul

/* One share, a plain value (no pointers): it may live on the stack or in
 * hs_secure_alloc memory. y is secret; wipe with hs_share_wipe. */
typedef struct hs_share {
    uint8_t set_id[HS_SHARE_SET_ID_LEN]; /* random, the same in all n shares */
    unsigned k;                          /* threshold */
    unsigned n;                          /* shares in the set */
    uint8_t x;                           /* this share's coordinate, 1..255 */
    uint8_t y[HS_SHARE_KEY_LEN];         /* this share's point on K's polynomials */
    uint8_t kcv[HS_SHARE_KCV_LEN];       /* first 3 bytes of AES-ECB(secret, 0^16) */
    uint8_t nonce[HS_SHARE_NONCE_LEN];
    uint8_t ciphertext[HS_SHARE_SECRET_MAX];
    size_t ciphertext_len; /* = the secret's length: 16, 24 or 32 */
    uint8_t tag[HS_SHARE_TAG_LEN];
    char label[HS_SHARE_LABEL_MAX + 1]; /* NUL-terminated, e.g. the holder's name */
    uint8_t checksum[HS_SHARE_CHECKSUM_LEN];
} hs_share;

/* Why recovery set a share aside. */
typedef enum hs_share_fault {
    HS_SHARE_FAULT_NONE = 0,
    HS_SHARE_FAULT_CHECKSUM, /* the checksum does not match: the share is damaged */
    HS_SHARE_FAULT_WRONG_Y,  /* intact, but its point is not on the set's polynomial */
} hs_share_fault;

/* What hs_share_recover did (filled on failure too: the shares set aside
 * so far). Indices are 0-based positions in the array given; messages
 * (error and warning) number shares from 1. */
typedef struct hs_share_report {
    size_t used_count; /* the k shares the secret was reconstructed from */
    size_t used[HS_SHARE_MAX_SHARES];
    size_t bad_count; /* shares set aside; recovery may still succeed */
    size_t bad[HS_SHARE_MAX_SHARES];
    hs_share_fault bad_fault[HS_SHARE_MAX_SHARES];
    unsigned long subsets_tried; /* k-subsets combined and decrypted */
    /* Empty, or one line per share set aside, e.g. "share 2 (bob): ...".
     * A caller must show it: those shares need to be replaced. */
    char warning[2048];
} hs_share_report;

/* Generates K and a set id, splits K k-of-n (2 <= k <= n <= 255), encrypts
 * secret (an AES key: 16, 24 or 32 bytes) under K and writes n complete
 * shares (checksums set) to *out, an hs_secure_alloc array freed with
 * hs_share_free_array(*out, n). labels: n strings (holder names) or NULL
 * for "share 1".."share n". */
hs_result hs_share_split_secret(const uint8_t *secret, size_t secret_len, unsigned k, unsigned n,
                                const char *const *labels, hs_share **out,
                                hs_error *e) HS_MUST_CHECK;
void hs_share_free_array(hs_share *shares, size_t n);

/* A salted commitment to one share (docs/share-format.md, "Commitments"):
 * SHA-256("hsmsign-share-commitment v1" NUL || salt || set id || x || y).
 * y is uniformly random, so it reveals nothing usable; published in the
 * signed transcript, it lets each share be checked alone, unlike the
 * checksum, which anyone altering a share can recompute. */
#define HS_SHARE_COMMIT_SALT_LEN 16u
void hs_share_commitment(const hs_share *s, const uint8_t salt[HS_SHARE_COMMIT_SALT_LEN],
                         uint8_t out[32]);

/* Recovers the secret from k-subsets of the n shares that together cover
 * every share, and compares it with secret (done by the split before it
 * returns). touched (may be NULL) says which shares a subset used. */
hs_result hs_share_self_check(const hs_share *shares, unsigned n, const uint8_t *secret,
                              size_t secret_len, bool touched[HS_SHARE_MAX_SHARES],
                              hs_error *e) HS_MUST_CHECK;
void hs_share_wipe(hs_share *share);

/* The checksum is SHA-256 over the binary encoding of every other field
 * (docs/share-format.md). */
hs_result hs_share_compute_checksum(const hs_share *share, uint8_t out[HS_SHARE_CHECKSUM_LEN],
                                    hs_error *e) HS_MUST_CHECK;
hs_result hs_share_update_checksum(hs_share *share, hs_error *e) HS_MUST_CHECK;
/* HS_OK when the stored checksum matches, HS_E_VERIFY when not. */
hs_result hs_share_verify_checksum(const hs_share *share, hs_error *e) HS_MUST_CHECK;

/* Writes the text form (NUL-terminated) to buf, *out_len bytes without the
 * NUL. HS_SHARE_TEXT_MAX bytes always suffice. buf holds y: wipe it. */
hs_result hs_share_serialize(const hs_share *share, char *buf, size_t buf_size, size_t *out_len,
                             hs_error *e) HS_MUST_CHECK;
/* Strict reader of the text form: unknown version, a missing, unknown or
 * repeated field, a malformed value, CR line endings or a missing final
 * newline are errors. `source` names the input in messages (a path, or
 * NULL for "share"). The checksum is NOT verified here, so that recovery
 * can name a damaged share among others: use hs_share_verify_checksum. */
hs_result hs_share_parse(const char *text, size_t len, const char *source, hs_share *out,
                         hs_error *e) HS_MUST_CHECK;

/* Reconstructs the secret from count shares into secret_out (secret_len
 * bytes; the caller wipes it) and fills *report.
 *
 * Refuses (HS_E_VERIFY or HS_E_USAGE, naming the share by number and
 * label): shares of different sets or disagreeing on k, n, check value or
 * ciphertext; a repeated x; fewer than k intact shares. Shares whose
 * checksum fails are set aside (and named in the report) as long as k
 * intact ones remain. When the intact shares do not decrypt together,
 * k-subsets are tried (at most HS_SHARE_MAX_SUBSETS) to find the shares
 * that are wrong, which are set aside and named; with exactly k shares
 * the wrong one cannot be identified and recovery fails. On success the
 * secret decrypted and matches the check value. */
hs_result hs_share_recover(const hs_share *shares, size_t count, uint8_t *secret_out,
                           size_t secret_len, hs_share_report *report, hs_error *e) HS_MUST_CHECK;

/* True for 1 to HS_SHARE_LABEL_MAX bytes of well-formed UTF-8 without
 * control characters: what a label may hold. */
bool hs_share_label_ok(const char *label);

/* The AES key check value: first 3 bytes of AES-ECB(key, 16 zero bytes),
 * what PKCS#11 tokens report as CKA_CHECK_VALUE for an AES key. */
hs_result hs_share_aes_kcv(const uint8_t *key, size_t key_len, uint8_t out[HS_SHARE_KCV_LEN],
                           hs_error *e) HS_MUST_CHECK;

#endif
