/* checkpoint.state: what the gate needs to check the log and extend it
 * without re-reading it (docs/audit-log.md, "The fast gate").
 *
 * For the tree of the latest checkpoint (size N) it keeps
 *   - the compact range: the roots of the complete subtrees that make up
 *     the first N leaves, one per set bit of N, largest (leftmost) first;
 *     folding them from the right gives the tree's root;
 *   - the byte range [last_start, end) of entry N-1 in entries.jsonl
 *     (newline included), so entries after N start at byte `end`;
 *   - entry N-1's leaf hash and its audit path inside the last (smallest)
 *     subtree, which ties that leaf to the root.
 * Nothing in it is trusted by itself: hs_auditstate_check accepts it only
 * when it reproduces the root of a checkpoint whose signature was
 * verified, so the signature authenticates the state. Appending a leaf
 * and computing the root cost O(log N). */
#ifndef HSMSIGN_AUDIT_STATE_H
#define HSMSIGN_AUDIT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "audit/checkpoint.h"
#include "audit/merkle.h"
#include "util/result.h"

#define HS_AUDIT_STATE_FILE "checkpoint.state"
/* One subtree per bit of a 64-bit size. */
#define HS_AUDITSTATE_MAX 64

typedef struct hs_auditstate {
    uint64_t size;       /* leaves covered */
    uint64_t last_start; /* entry size-1 starts here in entries.jsonl ... */
    uint64_t end;        /* ... and ends here, after its newline */
    size_t nroots;       /* popcount(size) */
    uint8_t roots[HS_AUDITSTATE_MAX][HS_MERKLE_HASH_LEN];
    uint8_t last_leaf[HS_MERKLE_HASH_LEN];
    size_t npath;        /* trailing zero bits of size: depth of the last subtree */
    uint8_t path[HS_AUDITSTATE_MAX][HS_MERKLE_HASH_LEN]; /* left siblings, bottom up */
} hs_auditstate;

/* The empty tree. */
void hs_auditstate_init(hs_auditstate *s);

/* Appends the leaf whose hash is given, for an entry of line_len bytes
 * (newline excluded) that starts at the current end. */
hs_result hs_auditstate_push_leaf(hs_auditstate *s, const uint8_t leaf[HS_MERKLE_HASH_LEN],
                                  size_t line_len, hs_error *e) HS_MUST_CHECK;

/* The root of the tree of s->size leaves (SHA-256("") when empty). */
hs_result hs_auditstate_root(const hs_auditstate *s, uint8_t out[HS_MERKLE_HASH_LEN],
                             hs_error *e) HS_MUST_CHECK;

/* s is the state of cp's tree: same size, a well-formed range whose root
 * is cp's root, and a last leaf whose path leads to the last subtree.
 * HS_E_VERIFY when not. cp must already have been verified. */
hs_result hs_auditstate_check(const hs_auditstate *s, const hs_checkpoint *cp,
                              hs_error *e) HS_MUST_CHECK;

/* JSON, one line: {"end":..,"last_leaf":hex,"last_start":..,"path":[hex..],
 * "roots":[hex..],"size":..,"v":1}; *text malloc'd, NUL-terminated. */
hs_result hs_auditstate_format(const hs_auditstate *s, char **text, size_t *len,
                               hs_error *e) HS_MUST_CHECK;
/* HS_E_FORMAT when text is not a state (the caller then falls back to a
 * full check). Does not check the hashes: hs_auditstate_check does. */
hs_result hs_auditstate_parse(const char *text, size_t len, hs_auditstate *s,
                              hs_error *e) HS_MUST_CHECK;

/* With s checked against the signed checkpoint: the entries file at fd
 * still holds entry size-1, byte for byte, at [last_start, end) (the file
 * was not cut short, nor its last covered entry rewritten), and every
 * complete line after `end` is an entry whose seq is its index; those are
 * appended to s. A torn last line (no newline) is ignored, as everywhere.
 * HS_E_VERIFY naming the entry and the check. Reads only the bytes from
 * last_start on. */
hs_result hs_auditstate_extend(hs_auditstate *s, int fd, hs_error *e) HS_MUST_CHECK;

#endif
