#include "audit/merkle.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/encoding.h"

#define HLEN HS_MERKLE_HASH_LEN

/* One digest context and one fetched SHA-256 reused for every hash of a
 * call: a tree of 100k leaves takes 200k hashes, and fetching the
 * algorithm each time would dominate. */
typedef struct hasher {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
} hasher;

static hs_result hasher_open(hasher *h, hs_error *e)
{
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->ctx = EVP_MD_CTX_new();
    if (h->md == NULL || h->ctx == NULL) {
        EVP_MD_free(h->md);
        EVP_MD_CTX_free(h->ctx);
        return hs_fail(e, HS_E_CRYPTO, "Merkle tree: SHA-256 is not available");
    }
    return HS_OK;
}

static void hasher_close(hasher *h)
{
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
}

/* SHA-256(prefix || a || b); prefix < 0 means none. */
static bool hash3(hasher *h, int prefix, const uint8_t *a, size_t a_len, const uint8_t *b,
                  size_t b_len, uint8_t out[HLEN])
{
    uint8_t p = (uint8_t)prefix;
    unsigned int out_len = 0;
    return EVP_DigestInit_ex2(h->ctx, h->md, NULL) == 1 &&
           (prefix < 0 || EVP_DigestUpdate(h->ctx, &p, 1) == 1) &&
           EVP_DigestUpdate(h->ctx, a, a_len) == 1 && EVP_DigestUpdate(h->ctx, b, b_len) == 1 &&
           EVP_DigestFinal_ex(h->ctx, out, &out_len) == 1 && out_len == HLEN;
}

static bool node(hasher *h, const uint8_t *left, const uint8_t *right, uint8_t out[HLEN])
{
    return hash3(h, 0x01, left, HLEN, right, HLEN, out);
}

static hs_result hash_failed(hs_error *e)
{
    return hs_fail(e, HS_E_CRYPTO, "Merkle tree: SHA-256 failed");
}

hs_result hs_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[HLEN], hs_error *e)
{
    hasher h;
    hs_result rc = hasher_open(&h, e);
    if (rc != HS_OK)
        return rc;
    bool ok = hash3(&h, 0x00, data, len, NULL, 0, out);
    hasher_close(&h);
    return ok ? HS_OK : hash_failed(e);
}

struct hs_merkle_hasher {
    hasher h;
};

hs_result hs_merkle_hasher_new(hs_merkle_hasher **out, hs_error *e)
{
    *out = malloc(sizeof **out);
    if (*out == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = hasher_open(&(*out)->h, e);
    if (r != HS_OK) {
        free(*out);
        *out = NULL;
    }
    return r;
}

void hs_merkle_hasher_free(hs_merkle_hasher *h)
{
    if (h == NULL)
        return;
    hasher_close(&h->h);
    free(h);
}

hs_result hs_merkle_hasher_leaf(hs_merkle_hasher *h, const uint8_t *data, size_t len,
                                uint8_t out[HLEN], hs_error *e)
{
    return hash3(&h->h, 0x00, data, len, NULL, 0, out) ? HS_OK : hash_failed(e);
}

hs_result hs_merkle_node_hash(const uint8_t left[HLEN], const uint8_t right[HLEN],
                              uint8_t out[HLEN], hs_error *e)
{
    hasher h;
    hs_result rc = hasher_open(&h, e);
    if (rc != HS_OK)
        return rc;
    bool ok = node(&h, left, right, out);
    hasher_close(&h);
    return ok ? HS_OK : hash_failed(e);
}

/* The largest power of two strictly below n (n >= 2): where RFC 6962
 * splits a tree of n leaves. */
static size_t split_point(size_t n)
{
    size_t k = 1;
    while (k < n - k)
        k <<= 1;
    return k;
}

/* MTH of the n >= 1 leaf hashes at `leaves`. Every node of the subtree is
 * hashed once: O(n) time, O(log n) stack. */
static bool subtree_root(hasher *h, const uint8_t *leaves, size_t n, uint8_t out[HLEN])
{
    if (n == 1) {
        memcpy(out, leaves, HLEN);
        return true;
    }
    size_t k = split_point(n);
    uint8_t left[HLEN], right[HLEN];
    return subtree_root(h, leaves, k, left) && subtree_root(h, leaves + k * HLEN, n - k, right) &&
           node(h, left, right, out);
}

static bool empty_root(hasher *h, uint8_t out[HLEN])
{
    return hash3(h, -1, NULL, 0, NULL, 0, out);
}

hs_result hs_merkle_root(const uint8_t *leaf_hashes, size_t size, uint8_t out[HLEN], hs_error *e)
{
    hasher h;
    hs_result rc = hasher_open(&h, e);
    if (rc != HS_OK)
        return rc;
    bool ok = size == 0 ? empty_root(&h, out) : subtree_root(&h, leaf_hashes, size, out);
    hasher_close(&h);
    return ok ? HS_OK : hash_failed(e);
}

/* Proofs are computed top-down (each level's sibling subtree), but
 * listed bottom-up; this reverses the hashes collected. */
static void reverse_hashes(uint8_t *hashes, size_t count)
{
    uint8_t tmp[HLEN];
    for (size_t i = 0, j = count; i + 1 < j; i++, j--) {
        memcpy(tmp, hashes + i * HLEN, HLEN);
        memcpy(hashes + i * HLEN, hashes + (j - 1) * HLEN, HLEN);
        memcpy(hashes + (j - 1) * HLEN, tmp, HLEN);
    }
}

hs_result hs_merkle_inclusion_proof(const uint8_t *leaf_hashes, size_t tree_size, size_t index,
                                    uint8_t *proof, size_t *proof_len, hs_error *e)
{
    *proof_len = 0;
    if (index >= tree_size)
        return hs_fail(e, HS_E_USAGE, "inclusion proof: leaf %zu is not in a tree of %zu leaves",
                       index, tree_size);
    hasher h;
    hs_result rc = hasher_open(&h, e);
    if (rc != HS_OK)
        return rc;
    const uint8_t *sub = leaf_hashes; /* the subtree that holds the leaf */
    size_t n = tree_size, m = index, count = 0;
    bool ok = true;
    while (ok && n > 1) {
        size_t k = split_point(n);
        if (m < k) { /* leaf on the left: the sibling is the right subtree */
            ok = subtree_root(&h, sub + k * HLEN, n - k, proof + count * HLEN);
            n = k;
        } else {
            ok = subtree_root(&h, sub, k, proof + count * HLEN);
            sub += k * HLEN;
            m -= k;
            n -= k;
        }
        count++;
    }
    hasher_close(&h);
    if (!ok)
        return hash_failed(e);
    reverse_hashes(proof, count);
    *proof_len = count;
    return HS_OK;
}

hs_result hs_merkle_consistency_proof(const uint8_t *leaf_hashes, size_t old_size,
                                      size_t new_size, uint8_t *proof, size_t *proof_len,
                                      hs_error *e)
{
    *proof_len = 0;
    if (old_size > new_size)
        return hs_fail(e, HS_E_USAGE,
                       "consistency proof: the old tree (%zu leaves) is larger than the new one "
                       "(%zu leaves)",
                       old_size, new_size);
    if (old_size == 0 || old_size == new_size)
        return HS_OK;
    hasher h;
    hs_result rc = hasher_open(&h, e);
    if (rc != HS_OK)
        return rc;
    /* SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1, unrolled: `complete`
     * is b, true while the old tree is still the whole current subtree's
     * left edge (then its root is known to the verifier and not sent). */
    const uint8_t *sub = leaf_hashes;
    size_t m = old_size, n = new_size, count = 0;
    bool complete = true, ok = true;
    while (ok && m != n) {
        size_t k = split_point(n);
        if (m <= k) {
            ok = subtree_root(&h, sub + k * HLEN, n - k, proof + count * HLEN);
            n = k;
        } else {
            ok = subtree_root(&h, sub, k, proof + count * HLEN);
            sub += k * HLEN;
            m -= k;
            n -= k;
            complete = false;
        }
        count++;
    }
    if (ok && !complete) {
        ok = subtree_root(&h, sub, n, proof + count * HLEN);
        count++;
    }
    hasher_close(&h);
    if (!ok)
        return hash_failed(e);
    reverse_hashes(proof, count);
    *proof_len = count;
    return HS_OK;
}

hs_result hs_merkle_verify_inclusion(const uint8_t leaf_hash[HLEN], size_t index,
                                     size_t tree_size, const uint8_t *proof, size_t proof_len,
                                     const uint8_t root[HLEN], hs_error *e)
{
    if (index >= tree_size)
        return hs_fail(e, HS_E_VERIFY, "inclusion proof: leaf %zu is not in a tree of %zu leaves",
                       index, tree_size);
    if (proof_len > HS_MERKLE_MAX_PROOF)
        return hs_fail(e, HS_E_VERIFY, "inclusion proof: %zu hashes is too long for any tree",
                       proof_len);
    hasher h;
    hs_result rc = hasher_open(&h, e);
    if (rc != HS_OK)
        return rc;
    uint64_t fn = index, sn = tree_size - 1;
    uint8_t r[HLEN];
    memcpy(r, leaf_hash, HLEN);
    bool ok = true, shape_ok = true;
    for (size_t i = 0; ok && shape_ok && i < proof_len; i++) {
        const uint8_t *p = proof + i * HLEN;
        if (sn == 0) {
            shape_ok = false; /* more hashes than the tree has levels */
            break;
        }
        if ((fn & 1) || fn == sn) {
            ok = node(&h, p, r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ok = node(&h, r, p, r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    hasher_close(&h);
    if (!ok)
        return hash_failed(e);
    if (!shape_ok || sn != 0)
        return hs_fail(e, HS_E_VERIFY,
                       "inclusion proof: %zu hashes is the wrong length for leaf %zu of a tree "
                       "of %zu leaves",
                       proof_len, index, tree_size);
    if (!hs_ct_equal(r, root, HLEN))
        return hs_fail(e, HS_E_VERIFY,
                       "inclusion proof: leaf %zu does not lead to the root of the tree of %zu "
                       "leaves",
                       index, tree_size);
    return HS_OK;
}

/* old_size 0 (every tree extends the empty one) or old_size == new_size:
 * no hashes to check, only the roots. */
static hs_result verify_trivial_consistency(size_t old_size, size_t new_size,
                                            const uint8_t *old_root, const uint8_t *new_root,
                                            size_t proof_len, hs_error *e)
{
    if (proof_len != 0)
        return hs_fail(e, HS_E_VERIFY,
                       "consistency proof from %zu to %zu leaves must be empty, it has %zu hashes",
                       old_size, new_size, proof_len);
    if (old_size == 0) {
        hasher h;
        hs_result rc = hasher_open(&h, e);
        if (rc != HS_OK)
            return rc;
        uint8_t empty[HLEN];
        bool ok = empty_root(&h, empty);
        hasher_close(&h);
        if (!ok)
            return hash_failed(e);
        if (!hs_ct_equal(old_root, empty, HLEN))
            return hs_fail(e, HS_E_VERIFY,
                           "consistency proof: the old root is not the empty tree's root");
        return HS_OK;
    }
    if (!hs_ct_equal(old_root, new_root, HLEN))
        return hs_fail(e, HS_E_VERIFY,
                       "consistency proof: the two trees of %zu leaves have different roots",
                       old_size);
    return HS_OK;
}

/* The proof as the verifier walks it: RFC 9162 prepends the old root when
 * the old size is a power of two (the old tree is then a complete subtree
 * of the new one and its root was not sent). */
typedef struct walk {
    const uint8_t *first; /* the prepended old root, or NULL */
    const uint8_t *proof;
    size_t proof_len;
} walk;

static size_t walk_len(const walk *w)
{
    return w->proof_len + (w->first != NULL);
}

static const uint8_t *walk_at(const walk *w, size_t i)
{
    if (w->first != NULL)
        return i == 0 ? w->first : w->proof + (i - 1) * HLEN;
    return w->proof + i * HLEN;
}

/* RFC 9162 2.1.4.2 steps 3-7: rebuilds both roots from the proof. */
static bool rebuild_roots(hasher *h, const walk *w, uint64_t old_size, uint64_t new_size,
                          uint8_t fr[HLEN], uint8_t sr[HLEN], bool *shape_ok)
{
    uint64_t fn = old_size - 1, sn = new_size - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    memcpy(fr, walk_at(w, 0), HLEN);
    memcpy(sr, walk_at(w, 0), HLEN);
    for (size_t i = 1; i < walk_len(w); i++) {
        const uint8_t *c = walk_at(w, i);
        if (sn == 0) {
            *shape_ok = false;
            return true;
        }
        if ((fn & 1) || fn == sn) {
            if (!node(h, c, fr, fr) || !node(h, c, sr, sr))
                return false;
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else if (!node(h, sr, c, sr)) {
            return false;
        }
        fn >>= 1;
        sn >>= 1;
    }
    *shape_ok = sn == 0;
    return true;
}

hs_result hs_merkle_verify_consistency(size_t old_size, size_t new_size,
                                       const uint8_t old_root[HLEN], const uint8_t new_root[HLEN],
                                       const uint8_t *proof, size_t proof_len, hs_error *e)
{
    if (old_size > new_size)
        return hs_fail(e, HS_E_VERIFY,
                       "consistency proof: the old tree (%zu leaves) is larger than the new one "
                       "(%zu leaves)",
                       old_size, new_size);
    if (old_size == 0 || old_size == new_size)
        return verify_trivial_consistency(old_size, new_size, old_root, new_root, proof_len, e);
    if (proof_len == 0 || proof_len > HS_MERKLE_MAX_PROOF)
        return hs_fail(e, HS_E_VERIFY,
                       "consistency proof from %zu to %zu leaves: %zu hashes is the wrong length",
                       old_size, new_size, proof_len);
    bool power_of_two = (old_size & (old_size - 1)) == 0;
    walk w = {power_of_two ? old_root : NULL, proof, proof_len};
    hasher h;
    hs_result rc = hasher_open(&h, e);
    if (rc != HS_OK)
        return rc;
    uint8_t fr[HLEN], sr[HLEN];
    bool shape_ok = true;
    bool ok = rebuild_roots(&h, &w, old_size, new_size, fr, sr, &shape_ok);
    hasher_close(&h);
    if (!ok)
        return hash_failed(e);
    if (!shape_ok)
        return hs_fail(e, HS_E_VERIFY,
                       "consistency proof from %zu to %zu leaves: %zu hashes is the wrong length",
                       old_size, new_size, proof_len);
    if (!hs_ct_equal(fr, old_root, HLEN))
        return hs_fail(e, HS_E_VERIFY,
                       "consistency proof from %zu to %zu leaves does not lead to the old root",
                       old_size, new_size);
    if (!hs_ct_equal(sr, new_root, HLEN))
        return hs_fail(e, HS_E_VERIFY,
                       "consistency proof from %zu to %zu leaves does not lead to the new root",
                       old_size, new_size);
    return HS_OK;
}
