#include "backup/gf256.h"

uint8_t hs_gf256_add(uint8_t a, uint8_t b)
{
    return (uint8_t)(a ^ b);
}

/* Shift-and-add over the 8 bits of b. The masks replace the two
 * data-dependent decisions of the schoolbook method ("is this bit of b
 * set?" and "did the shift overflow past x^7?") so that the same
 * instructions run for every pair of inputs. */
uint8_t hs_gf256_mul(uint8_t a, uint8_t b)
{
    unsigned acc = 0;
    unsigned aa = a;
    unsigned bb = b;
    for (int bit = 0; bit < 8; bit++) {
        unsigned take = 0u - (bb & 1u);       /* all ones when this bit of b is set */
        acc ^= aa & take;
        unsigned carry = 0u - ((aa >> 7) & 1u); /* all ones when x^7 shifts out */
        aa = ((aa << 1) ^ (0x11bu & carry)) & 0xffu;
        bb >>= 1;
    }
    return (uint8_t)acc;
}

/* The multiplicative group has order 255, so a^254 = a^-1 for a != 0 and
 * 0^254 = 0. 254 = 0b11111110: square seven times and multiply each square
 * into the result, a fixed sequence of operations whatever a is. */
uint8_t hs_gf256_inv(uint8_t a)
{
    uint8_t square = a;
    uint8_t result = 1;
    for (int i = 0; i < 7; i++) {
        square = hs_gf256_mul(square, square); /* a^2, a^4, ..., a^128 */
        result = hs_gf256_mul(result, square);
    }
    return result;
}
