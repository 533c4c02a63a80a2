/* Arithmetic in GF(2^8) with the AES reduction polynomial
 * x^8 + x^4 + x^3 + x + 1 (0x11b), the field of Shamir's secret sharing.
 *
 * Every function runs in time independent of its arguments: no table
 * indexed by a value, no branch on a value. Shares and the secret pass
 * through these functions, and a lookup table or early exit would leak
 * them through cache or timing side channels. */
#ifndef HSMSIGN_BACKUP_GF256_H
#define HSMSIGN_BACKUP_GF256_H

#include <stdint.h>

/* Addition and subtraction are the same operation: XOR. */
uint8_t hs_gf256_add(uint8_t a, uint8_t b);
uint8_t hs_gf256_mul(uint8_t a, uint8_t b);
/* Multiplicative inverse, computed as a^254; by convention inv(0) = 0
 * (callers never divide by zero: x coordinates are distinct and non-zero). */
uint8_t hs_gf256_inv(uint8_t a);

#endif
