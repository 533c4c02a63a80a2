/* Merkle tree hashing of RFC 6962 / RFC 9162 (Certificate Transparency).
 *
 * leaf hash = SHA-256(0x00 || data), interior node = SHA-256(0x01 || left
 * || right), the empty tree's root = SHA-256(""). A tree of n leaves
 * splits at the largest power of two below n: the left subtree is always
 * complete.
 *
 * Tree functions work over an array of leaf hashes (the audit log keeps
 * them), `size` hashes of HS_MERKLE_HASH_LEN bytes laid end to end. The
 * verify functions need no leaves, only the hashes a verifier is given, so
 * they run offline (`hsmsign audit verify-proof`). */
#ifndef HSMSIGN_AUDIT_MERKLE_H
#define HSMSIGN_AUDIT_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define HS_MERKLE_HASH_LEN 32u
/* Upper bound on the hashes in any inclusion or consistency proof of a
 * tree whose size fits in 64 bits; proof buffers hold this many. */
#define HS_MERKLE_MAX_PROOF 130u

hs_result hs_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[HS_MERKLE_HASH_LEN],
                              hs_error *e) HS_MUST_CHECK;
/* One SHA-256 context kept for many leaf hashes: `audit verify` hashes
 * every entry, and fetching the algorithm and making a context for each
 * (what hs_merkle_leaf_hash does) cost more than hashing a 700-byte line. */
typedef struct hs_merkle_hasher hs_merkle_hasher;
hs_result hs_merkle_hasher_new(hs_merkle_hasher **h, hs_error *e) HS_MUST_CHECK;
void hs_merkle_hasher_free(hs_merkle_hasher *h);
hs_result hs_merkle_hasher_leaf(hs_merkle_hasher *h, const uint8_t *data, size_t len,
                                uint8_t out[HS_MERKLE_HASH_LEN], hs_error *e) HS_MUST_CHECK;

hs_result hs_merkle_node_hash(const uint8_t left[HS_MERKLE_HASH_LEN],
                              const uint8_t right[HS_MERKLE_HASH_LEN],
                              uint8_t out[HS_MERKLE_HASH_LEN], hs_error *e) HS_MUST_CHECK;

/* Root of the tree of the first `size` leaves (size 0: SHA-256("")). */
hs_result hs_merkle_root(const uint8_t *leaf_hashes, size_t size, uint8_t out[HS_MERKLE_HASH_LEN],
                         hs_error *e) HS_MUST_CHECK;

/* Inclusion proof (audit path, RFC 9162 2.1.3.1) of leaf `index` in the
 * tree of the first tree_size leaves: *proof_len hashes written to proof,
 * which holds HS_MERKLE_MAX_PROOF * HS_MERKLE_HASH_LEN bytes. */
hs_result hs_merkle_inclusion_proof(const uint8_t *leaf_hashes, size_t tree_size, size_t index,
                                    uint8_t *proof, size_t *proof_len, hs_error *e) HS_MUST_CHECK;

/* RFC 9162 2.1.3.2. HS_OK when the proof shows leaf_hash at index in the
 * tree of tree_size leaves with this root, HS_E_VERIFY when not. */
hs_result hs_merkle_verify_inclusion(const uint8_t leaf_hash[HS_MERKLE_HASH_LEN], size_t index,
                                     size_t tree_size, const uint8_t *proof, size_t proof_len,
                                     const uint8_t root[HS_MERKLE_HASH_LEN],
                                     hs_error *e) HS_MUST_CHECK;

/* Consistency proof (RFC 9162 2.1.4.1) that the tree of the first
 * old_size leaves is a prefix of the tree of the first new_size leaves,
 * 0 <= old_size <= new_size. Empty when old_size is 0 or equal to
 * new_size. proof holds HS_MERKLE_MAX_PROOF hashes. */
hs_result hs_merkle_consistency_proof(const uint8_t *leaf_hashes, size_t old_size,
                                      size_t new_size, uint8_t *proof, size_t *proof_len,
                                      hs_error *e) HS_MUST_CHECK;

/* RFC 9162 2.1.4.2, plus the trivial cases: old_size == new_size needs an
 * empty proof and equal roots, old_size == 0 an empty proof and old_root
 * equal to the empty tree's root. HS_OK or HS_E_VERIFY. */
hs_result hs_merkle_verify_consistency(size_t old_size, size_t new_size,
                                       const uint8_t old_root[HS_MERKLE_HASH_LEN],
                                       const uint8_t new_root[HS_MERKLE_HASH_LEN],
                                       const uint8_t *proof, size_t proof_len,
                                       hs_error *e) HS_MUST_CHECK;

#endif
