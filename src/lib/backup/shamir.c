#include "backup/shamir.h"

#include <openssl/rand.h>
#include <stdbool.h>
#include <string.h>

#include "backup/gf256.h"
#include "util/secmem.h"

/* Secret positions handled per batch of random coefficients: bounds the
 * locked memory needed whatever the secret's length. */
#define POSITIONS_PER_BATCH 64u

/* n distinct non-zero x coordinates, each drawn uniformly by rejection
 * (a zero or an already used value is redrawn). The coordinates are public
 * (they are written in the shares), so branching on them is fine. */
static hs_result random_distinct_xs(unsigned n, uint8_t *xs, hs_error *e)
{
    bool used[256] = {false};
    used[0] = true;
    unsigned have = 0;
    while (have < n) {
        uint8_t draw[32];
        if (RAND_priv_bytes(draw, sizeof draw) != 1)
            return hs_fail(e, HS_E_CRYPTO, "Shamir split: the random generator failed");
        for (size_t i = 0; i < sizeof draw && have < n; i++) {
            if (used[draw[i]])
                continue;
            used[draw[i]] = true;
            xs[have++] = draw[i];
        }
    }
    return HS_OK;
}

/* Horner's rule: coeffs[0] + coeffs[1] x + ... + coeffs[degree] x^degree.
 * coeffs are spaced `stride` bytes apart. */
static uint8_t eval_poly(uint8_t constant, const uint8_t *coeffs, size_t stride, unsigned degree,
                         uint8_t x)
{
    uint8_t acc = 0;
    for (unsigned d = degree; d >= 1; d--)
        acc = hs_gf256_add(hs_gf256_mul(acc, x), coeffs[(size_t)(d - 1) * stride]);
    return hs_gf256_add(hs_gf256_mul(acc, x), constant);
}

hs_result hs_shamir_split(const uint8_t *secret, size_t len, unsigned k, unsigned n, uint8_t *xs,
                          uint8_t *const *ys, hs_error *e)
{
    if (k < 2 || k > n || n > HS_SHAMIR_MAX_SHARES)
        return hs_fail(e, HS_E_USAGE,
                       "Shamir split: %u-of-%u is not possible (need 2 <= k <= n <= 255)", k, n);
    if (len == 0)
        return hs_fail(e, HS_E_USAGE, "Shamir split: the secret is empty");
    hs_result rc = random_distinct_xs(n, xs, e);
    if (rc != HS_OK)
        return rc;

    /* Coefficients of x^1..x^(k-1) for a batch of positions, laid out as
     * coeffs[(d-1) * batch + position]. */
    size_t batch_bytes = (size_t)(k - 1) * POSITIONS_PER_BATCH;
    uint8_t *coeffs = hs_secure_alloc(batch_bytes);
    if (coeffs == NULL)
        return hs_fail(e, HS_E_NOMEM, "Shamir split: cannot allocate secure memory");
    for (size_t start = 0; start < len; start += POSITIONS_PER_BATCH) {
        size_t count = len - start < POSITIONS_PER_BATCH ? len - start : POSITIONS_PER_BATCH;
        if (RAND_priv_bytes(coeffs, (int)batch_bytes) != 1) {
            hs_secure_free(coeffs, batch_bytes);
            return hs_fail(e, HS_E_CRYPTO, "Shamir split: the random generator failed");
        }
        for (size_t p = 0; p < count; p++)
            for (unsigned i = 0; i < n; i++)
                ys[i][start + p] =
                    eval_poly(secret[start + p], coeffs + p, POSITIONS_PER_BATCH, k - 1, xs[i]);
    }
    hs_secure_free(coeffs, batch_bytes);
    return HS_OK;
}

/* Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i). In
 * characteristic 2, subtraction is XOR. */
static uint8_t lagrange_at_zero(unsigned count, const uint8_t *xs, unsigned i)
{
    uint8_t num = 1, den = 1;
    for (unsigned j = 0; j < count; j++) {
        if (j == i)
            continue;
        num = hs_gf256_mul(num, xs[j]);
        den = hs_gf256_mul(den, hs_gf256_add(xs[j], xs[i]));
    }
    return hs_gf256_mul(num, hs_gf256_inv(den));
}

hs_result hs_shamir_combine(unsigned count, const uint8_t *xs, const uint8_t *const *ys, size_t len,
                            uint8_t *secret_out, hs_error *e)
{
    if (count < 2 || count > HS_SHAMIR_MAX_SHARES)
        return hs_fail(e, HS_E_USAGE, "Shamir combine: %u shares given, need 2 to 255", count);
    bool seen[256] = {false};
    for (unsigned i = 0; i < count; i++) {
        if (xs[i] == 0)
            return hs_fail(e, HS_E_USAGE, "Shamir combine: share %u has x = 0, which is never a "
                                          "share coordinate (it would be the secret itself)",
                           i + 1);
        if (seen[xs[i]])
            return hs_fail(e, HS_E_USAGE,
                           "Shamir combine: x = %u appears twice (share %u repeats an earlier one)",
                           xs[i], i + 1);
        seen[xs[i]] = true;
    }

    uint8_t basis[HS_SHAMIR_MAX_SHARES];
    for (unsigned i = 0; i < count; i++)
        basis[i] = lagrange_at_zero(count, xs, i);
    for (size_t p = 0; p < len; p++) {
        uint8_t acc = 0;
        for (unsigned i = 0; i < count; i++)
            acc = hs_gf256_add(acc, hs_gf256_mul(basis[i], ys[i][p]));
        secret_out[p] = acc;
    }
    hs_wipe(basis, sizeof basis);
    return HS_OK;
}
