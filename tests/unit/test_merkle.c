#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audit/merkle.h"
#include "util/encoding.h"

#define H HS_MERKLE_HASH_LEN
#define MAXP HS_MERKLE_MAX_PROOF

typedef struct vectors {
    json_t *root;
    size_t leaf_count;
    uint8_t leaves[8][H]; /* leaf hashes */
    /* the vectors' proofs, [tree size][index] and [old size][new size] */
    uint8_t inclusion[9][8][4 * H];
    size_t inclusion_len[9][8];
    uint8_t consistency[9][9][4 * H];
    size_t consistency_len[9][9];
} vectors;

static bool load_hashes(json_t *arr, uint8_t *out, size_t max)
{
    if (!json_is_array(arr) || json_array_size(arr) > max)
        return false;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *hex = json_string_value(json_array_get(arr, i));
        if (hex == NULL || !hs_hex_decode(hex, out + i * H, H))
            return false;
    }
    return true;
}

static int setup(void **state)
{
    const char *dir = getenv("HSMSIGN_VECTORS");
    char path[1024];
    snprintf(path, sizeof path, "%s/tlog/rfc6962.json", dir != NULL ? dir : "tests/vectors");
    json_error_t jerr;
    vectors *v = calloc(1, sizeof *v);
    v->root = json_load_file(path, 0, &jerr);
    if (v->root == NULL) {
        print_error("%s: %s\n", path, jerr.text);
        free(v);
        return -1;
    }
    json_t *inputs = json_object_get(v->root, "leaf_inputs_hex");
    v->leaf_count = json_array_size(inputs);
    if (v->leaf_count != 8)
        return -1;
    for (size_t i = 0; i < v->leaf_count; i++) {
        const char *hex = json_string_value(json_array_get(inputs, i));
        uint8_t data[64];
        size_t len = strlen(hex) / 2;
        hs_error e = {0};
        if (len > sizeof data || !hs_hex_decode(hex, data, len) ||
            hs_merkle_leaf_hash(data, len, v->leaves[i], &e) != HS_OK)
            return -1;
    }
    json_t *inc = json_object_get(v->root, "inclusion");
    for (size_t c = 0; c < json_array_size(inc); c++) {
        json_t *tc = json_array_get(inc, c);
        size_t n = (size_t)json_integer_value(json_object_get(tc, "tree_size"));
        size_t i = (size_t)json_integer_value(json_object_get(tc, "index"));
        json_t *hashes = json_object_get(tc, "path_hex");
        if (n > 8 || i >= n || !load_hashes(hashes, v->inclusion[n][i], 4))
            return -1;
        v->inclusion_len[n][i] = json_array_size(hashes);
    }
    json_t *con = json_object_get(v->root, "consistency");
    for (size_t c = 0; c < json_array_size(con); c++) {
        json_t *tc = json_array_get(con, c);
        size_t m = (size_t)json_integer_value(json_object_get(tc, "old_size"));
        size_t n = (size_t)json_integer_value(json_object_get(tc, "new_size"));
        json_t *proof = json_object_get(tc, "proof_hex");
        if (n > 8 || m > n || !load_hashes(proof, v->consistency[m][n], 4))
            return -1;
        v->consistency_len[m][n] = json_array_size(proof);
    }
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    vectors *v = *state;
    json_decref(v->root);
    free(v);
    return 0;
}

static void hex_hash(const char *hex, uint8_t out[H])
{
    assert_non_null(hex);
    assert_true(hs_hex_decode(hex, out, H));
}

/* A JSON array of hex hashes into a proof buffer. */
static size_t hex_proof(json_t *arr, uint8_t *out)
{
    size_t n = json_array_size(arr);
    assert_true(n <= MAXP);
    for (size_t i = 0; i < n; i++)
        hex_hash(json_string_value(json_array_get(arr, i)), out + i * H);
    return n;
}

static void root_of(const vectors *v, size_t size, uint8_t out[H])
{
    hs_error e = {0};
    assert_int_equal(hs_merkle_root(&v->leaves[0][0], size, out, &e), HS_OK);
}

static void roots_match_vectors(void **state)
{
    vectors *v = *state;
    uint8_t got[H], want[H];
    hex_hash(json_string_value(json_object_get(v->root, "empty_tree_root_hex")), want);
    root_of(v, 0, got);
    assert_memory_equal(got, want, H);
    json_t *roots = json_object_get(v->root, "roots_hex");
    assert_int_equal(json_object_size(roots), 8);
    for (size_t n = 1; n <= 8; n++) {
        char key[4];
        snprintf(key, sizeof key, "%zu", n);
        hex_hash(json_string_value(json_object_get(roots, key)), want);
        root_of(v, n, got);
        assert_memory_equal(got, want, H);
    }
}

/* Number of hashes in the audit path of leaf i of a tree of n leaves. */
static size_t expected_path_len(size_t i, size_t n)
{
    size_t levels = 0;
    while (n > 1) {
        size_t k = 1;
        while (2 * k < n)
            k *= 2;
        if (i < k) {
            n = k;
        } else {
            i -= k;
            n -= k;
        }
        levels++;
    }
    return levels;
}

static void root_of(const vectors *v, size_t size, uint8_t out[H]);

static void check_inclusion_rejections(const vectors *v, size_t size, size_t index,
                                       uint8_t *proof, size_t len, const uint8_t *root)
{
    hs_error e = {0};
    const uint8_t *leaf = v->leaves[index];
    for (size_t i = 0; i < len * H; i++) { /* every byte of every hash */
        proof[i] ^= 0x01;
        assert_int_equal(hs_merkle_verify_inclusion(leaf, index, size, proof, len, root, &e),
                         HS_E_VERIFY);
        proof[i] ^= 0x01;
    }
    uint8_t bad[H];
    memcpy(bad, root, H);
    bad[H - 1] ^= 0x80;
    assert_int_equal(hs_merkle_verify_inclusion(leaf, index, size, proof, len, bad, &e),
                     HS_E_VERIFY);
    memcpy(bad, leaf, H);
    bad[0] ^= 0x01;
    assert_int_equal(hs_merkle_verify_inclusion(bad, index, size, proof, len, root, &e),
                     HS_E_VERIFY);
    for (size_t other = 0; other < size + 2; other++) /* every wrong index */
        if (other != index)
            assert_int_equal(
                hs_merkle_verify_inclusion(leaf, other, size, proof, len, root, &e), HS_E_VERIFY);
    /* Every other tree size that holds the leaf, with that tree's root: the
     * proof must not pass unless it is also that tree's proof (a left leaf
     * whose siblings are the same subtrees, e.g. leaf 0 of sizes 5..8
     * shares its first siblings; never the whole path here). */
    for (size_t other = index + 1; other <= 8; other++) {
        if (other == size)
            continue;
        uint8_t other_root[H];
        root_of(v, other, other_root);
        bool same_proof = v->inclusion_len[other][index] == len &&
                          memcmp(v->inclusion[other][index], proof, len * H) == 0;
        assert_int_equal(hs_merkle_verify_inclusion(leaf, index, other, proof, len, other_root, &e),
                         same_proof ? HS_OK : HS_E_VERIFY);
    }
    /* A size whose path to the leaf has another length, with this root.
     * (RFC 9162 verification binds the size only through the path's shape:
     * e.g. leaf 0's proof for 3 leaves also "fits" a claimed size of 4
     * with the same root; checkpoints sign root and size together.) */
    for (size_t other = index + 1; other <= size + 8; other++)
        if (expected_path_len(index, other) != len)
            assert_int_equal(
                hs_merkle_verify_inclusion(leaf, index, other, proof, len, root, &e), HS_E_VERIFY);
    if (len > 0)
        assert_int_equal(hs_merkle_verify_inclusion(leaf, index, size, proof, len - 1, root, &e),
                         HS_E_VERIFY);
    memcpy(proof + len * H, proof, H); /* one hash too many */
    assert_int_equal(hs_merkle_verify_inclusion(leaf, index, size, proof, len + 1, root, &e),
                     HS_E_VERIFY);
}

static void inclusion_proofs_match_vectors(void **state)
{
    vectors *v = *state;
    json_t *cases = json_object_get(v->root, "inclusion");
    assert_int_equal(json_array_size(cases), 36); /* 1 + 2 + ... + 8 */
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *tc = json_array_get(cases, c);
        size_t size = (size_t)json_integer_value(json_object_get(tc, "tree_size"));
        size_t index = (size_t)json_integer_value(json_object_get(tc, "index"));
        uint8_t want[MAXP * H], got[(MAXP + 1) * H], root[H];
        size_t want_len = hex_proof(json_object_get(tc, "path_hex"), want), got_len = 99;
        hs_error e = {0};
        assert_int_equal(
            hs_merkle_inclusion_proof(&v->leaves[0][0], size, index, got, &got_len, &e), HS_OK);
        assert_int_equal(got_len, want_len);
        if (want_len > 0)
            assert_memory_equal(got, want, want_len * H);
        root_of(v, size, root);
        assert_int_equal(
            hs_merkle_verify_inclusion(v->leaves[index], index, size, want, want_len, root, &e),
            HS_OK);
        check_inclusion_rejections(v, size, index, got, got_len, root);
    }
}

static void check_consistency_rejections(const vectors *v, size_t m, size_t n, uint8_t *proof, size_t len,
                                         const uint8_t *old_root, const uint8_t *new_root)
{
    hs_error e = {0};
    for (size_t i = 0; i < len * H; i++) {
        proof[i] ^= 0x01;
        assert_int_equal(hs_merkle_verify_consistency(m, n, old_root, new_root, proof, len, &e),
                         HS_E_VERIFY);
        proof[i] ^= 0x01;
    }
    uint8_t bad[H];
    memcpy(bad, old_root, H);
    bad[5] ^= 0x20;
    assert_int_equal(hs_merkle_verify_consistency(m, n, bad, new_root, proof, len, &e),
                     HS_E_VERIFY);
    memcpy(bad, new_root, H);
    bad[5] ^= 0x20;
    assert_int_equal(hs_merkle_verify_consistency(m, n, old_root, bad, proof, len, &e),
                     HS_E_VERIFY);
    /* Every other pair of sizes, with those trees' roots: the proof must
     * fail unless it is also that pair's proof. */
    for (size_t m2 = 1; m2 <= 8; m2++)
        for (size_t n2 = m2; n2 <= 8; n2++) {
            if (m2 == m && n2 == n)
                continue;
            uint8_t r1[H], r2[H];
            root_of(v, m2, r1);
            root_of(v, n2, r2);
            bool same_proof = v->consistency_len[m2][n2] == len &&
                              (len == 0 || memcmp(v->consistency[m2][n2], proof, len * H) == 0);
            hs_result want = same_proof ? HS_OK : HS_E_VERIFY;
            assert_int_equal(hs_merkle_verify_consistency(m2, n2, r1, r2, proof, len, &e), want);
        }
    /* Sizes out of order or beyond the proof's reach, with these roots. */
    assert_int_equal(hs_merkle_verify_consistency(n + 1, n, old_root, new_root, proof, len, &e),
                     HS_E_VERIFY);
    assert_int_equal(hs_merkle_verify_consistency(m, n + 64, old_root, new_root, proof, len, &e),
                     HS_E_VERIFY);
    if (len > 0)
        assert_int_equal(
            hs_merkle_verify_consistency(m, n, old_root, new_root, proof, len - 1, &e),
            HS_E_VERIFY);
    memcpy(proof + len * H, new_root, H);
    assert_int_equal(hs_merkle_verify_consistency(m, n, old_root, new_root, proof, len + 1, &e),
                     HS_E_VERIFY);
}

static void consistency_proofs_match_vectors(void **state)
{
    vectors *v = *state;
    json_t *cases = json_object_get(v->root, "consistency");
    assert_int_equal(json_array_size(cases), 36);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *tc = json_array_get(cases, c);
        size_t m = (size_t)json_integer_value(json_object_get(tc, "old_size"));
        size_t n = (size_t)json_integer_value(json_object_get(tc, "new_size"));
        uint8_t want[MAXP * H], got[(MAXP + 1) * H], old_root[H], new_root[H];
        size_t want_len = hex_proof(json_object_get(tc, "proof_hex"), want), got_len = 99;
        hs_error e = {0};
        assert_int_equal(
            hs_merkle_consistency_proof(&v->leaves[0][0], m, n, got, &got_len, &e), HS_OK);
        assert_int_equal(got_len, want_len);
        if (want_len > 0)
            assert_memory_equal(got, want, want_len * H);
        root_of(v, m, old_root);
        root_of(v, n, new_root);
        assert_int_equal(
            hs_merkle_verify_consistency(m, n, old_root, new_root, want, want_len, &e), HS_OK);
        check_consistency_rejections(v, m, n, got, got_len, old_root, new_root);
    }
}

static void empty_tree_edge_cases(void **state)
{
    vectors *v = *state;
    uint8_t empty[H], r3[H], proof[(MAXP + 1) * H];
    size_t len = 99;
    hs_error e = {0};
    root_of(v, 0, empty);
    root_of(v, 3, r3);
    assert_int_equal(hs_merkle_consistency_proof(&v->leaves[0][0], 0, 3, proof, &len, &e), HS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(hs_merkle_verify_consistency(0, 3, empty, r3, proof, 0, &e), HS_OK);
    assert_int_equal(hs_merkle_verify_consistency(0, 3, r3, r3, proof, 0, &e), HS_E_VERIFY);
    assert_int_equal(hs_merkle_consistency_proof(&v->leaves[0][0], 4, 3, proof, &len, &e),
                     HS_E_USAGE);
    assert_int_equal(hs_merkle_inclusion_proof(&v->leaves[0][0], 3, 3, proof, &len, &e),
                     HS_E_USAGE);
    assert_int_equal(hs_merkle_verify_inclusion(v->leaves[0], 0, 0, proof, 0, empty, &e),
                     HS_E_VERIFY);
}

/* ---- Larger trees, against a test-only reference written differently:
 * the root by the "stack of complete subtrees" method, which never splits
 * at powers of two explicitly. */

static void sha(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t one = 1;
    assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, &one, 1), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, a, alen), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, b, blen), 1);
    assert_int_equal(EVP_DigestFinal_ex(ctx, out, NULL), 1);
    EVP_MD_CTX_free(ctx);
}

static void stack_root(const uint8_t *leaves, size_t n, uint8_t out[H])
{
    uint8_t stack[64][H];
    size_t depth = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(stack[depth++], leaves + i * H, H);
        /* merge while the count of leaves so far has trailing zero bits */
        for (size_t c = i + 1; (c & 1) == 0; c >>= 1, depth--)
            sha(stack[depth - 2], H, stack[depth - 1], H, stack[depth - 2]);
    }
    while (depth > 1) { /* fold the incomplete right edge, right to left */
        sha(stack[depth - 2], H, stack[depth - 1], H, stack[depth - 2]);
        depth--;
    }
    memcpy(out, stack[0], H);
}

static uint8_t *random_leaves(size_t n)
{
    uint8_t *leaves = malloc(n * H);
    assert_non_null(leaves);
    assert_int_equal(RAND_bytes(leaves, (int)(n * H)), 1);
    return leaves;
}

static void all_proofs_verify_up_to_70_leaves(void **state)
{
    (void)state;
    uint8_t *leaves = random_leaves(70);
    uint8_t proof[MAXP * H], roots[71][H];
    hs_error e = {0};
    for (size_t n = 1; n <= 70; n++) {
        assert_int_equal(hs_merkle_root(leaves, n, roots[n], &e), HS_OK);
        uint8_t ref[H];
        stack_root(leaves, n, ref);
        assert_memory_equal(roots[n], ref, H);
    }
    for (size_t n = 1; n <= 70; n++) {
        for (size_t i = 0; i < n; i++) {
            size_t len;
            assert_int_equal(hs_merkle_inclusion_proof(leaves, n, i, proof, &len, &e), HS_OK);
            assert_int_equal(
                hs_merkle_verify_inclusion(leaves + i * H, i, n, proof, len, roots[n], &e), HS_OK);
        }
        for (size_t m = 1; m <= n; m++) {
            size_t len;
            assert_int_equal(hs_merkle_consistency_proof(leaves, m, n, proof, &len, &e), HS_OK);
            assert_int_equal(
                hs_merkle_verify_consistency(m, n, roots[m], roots[n], proof, len, &e), HS_OK);
            if (m < n) /* a proof is not valid for the neighbouring old size */
                assert_int_equal(hs_merkle_verify_consistency(m + 1, n, roots[m + 1], roots[n],
                                                              proof, len, &e),
                                 HS_E_VERIFY);
        }
    }
    free(leaves);
}

/* CPU time of this process, not wall-clock time: other processes on a
 * loaded machine do not count against the bounds below. */
static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void hundred_thousand_leaves_are_fast(void **state)
{
    (void)state;
    const size_t n = 100000;
    /* 20 random (leaf, old size) pairs; 2 under `make check-asan`
     * (HSMSIGN_SANITIZED), where each pair costs some 4 s (every hash
     * allocates, and the allocator records a full stack) and the timing
     * bounds below are off. The 20 pairs still run in `make check`. */
    const int rounds = getenv("HSMSIGN_SANITIZED") != NULL ? 2 : 20;
    uint8_t *leaves = random_leaves(n);
    uint8_t root[H], ref[H], old_root[H], proof[MAXP * H];
    hs_error e = {0};
    struct timespec t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    assert_int_equal(hs_merkle_root(leaves, n, root, &e), HS_OK);
    double root_time = seconds_since(&t0);
    stack_root(leaves, n, ref);
    assert_memory_equal(root, ref, H);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (int t = 0; t < rounds; t++) {
        uint32_t r[2];
        assert_int_equal(RAND_bytes((uint8_t *)r, sizeof r), 1);
        size_t i = r[0] % n, m = 1 + r[1] % n, len;
        assert_int_equal(hs_merkle_inclusion_proof(leaves, n, i, proof, &len, &e), HS_OK);
        assert_true(len <= 17); /* ceil(log2(100000)) */
        assert_int_equal(hs_merkle_verify_inclusion(leaves + i * H, i, n, proof, len, root, &e),
                         HS_OK);
        assert_int_equal(hs_merkle_consistency_proof(leaves, m, n, proof, &len, &e), HS_OK);
        assert_true(len <= 2 * 17);
        assert_int_equal(hs_merkle_root(leaves, m, old_root, &e), HS_OK);
        assert_int_equal(hs_merkle_verify_consistency(m, n, old_root, root, proof, len, &e), HS_OK);
    }
    double proof_time = seconds_since(&t0);
    print_message("100k leaves: root %.3f s, %d x (inclusion + consistency + old root) %.3f s\n",
                  root_time, rounds, proof_time);
    /* generous bounds in CPU seconds; a quadratic algorithm would
     * take minutes. Not in sanitizer builds (make check-asan), which run
     * many times slower: there only the results above count. */
#ifndef __SANITIZE_ADDRESS__
    assert_true(root_time < 2.0);
    assert_true(proof_time < 20.0);
#endif
    free(leaves);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roots_match_vectors),
        cmocka_unit_test(inclusion_proofs_match_vectors),
        cmocka_unit_test(consistency_proofs_match_vectors),
        cmocka_unit_test(empty_tree_edge_cases),
        cmocka_unit_test(all_proofs_verify_up_to_70_leaves),
        cmocka_unit_test(hundred_thousand_leaves_are_fast),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
