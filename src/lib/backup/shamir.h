/* Shamir's k-of-n secret sharing over GF(2^8), byte by byte.
 *
 * Each byte of the secret is the constant term of its own random
 * polynomial of degree k-1; share i holds the value of every polynomial at
 * the share's x coordinate. Any k shares determine the polynomials (and so
 * the secret) by Lagrange interpolation at 0; k-1 shares say nothing about
 * it. The arithmetic is constant time (see gf256.h).
 *
 * These functions know nothing about which share is right: a wrong share
 * silently yields a wrong secret. share.h adds the integrity checks. */
#ifndef HSMSIGN_BACKUP_SHAMIR_H
#define HSMSIGN_BACKUP_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define HS_SHAMIR_MAX_SHARES 255u

/* Splits secret (len >= 1 bytes) k-of-n, 2 <= k <= n <= 255. Writes n
 * distinct, random, non-zero x coordinates to xs[0..n-1] and the share
 * bytes for xs[i] to ys[i][0..len-1] (n caller-provided buffers of len
 * bytes; the caller wipes them). */
hs_result hs_shamir_split(const uint8_t *secret, size_t len, unsigned k, unsigned n, uint8_t *xs,
                          uint8_t *const *ys, hs_error *e) HS_MUST_CHECK;

/* Interpolates count >= 2 shares (x coordinates xs, share bytes ys[i] of
 * len bytes each) at 0 and writes len bytes to secret_out. Refuses a zero
 * or repeated x. Given fewer than the threshold, or a wrong share, it
 * returns a wrong secret: it cannot know. */
hs_result hs_shamir_combine(unsigned count, const uint8_t *xs, const uint8_t *const *ys, size_t len,
                            uint8_t *secret_out, hs_error *e) HS_MUST_CHECK;

#endif
