#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backup/gf256.h"

/* Test-only reference multiplication, written differently from the
 * library's masked loop: Russian peasant with ordinary branches, reducing
 * with the full 9-bit polynomial 0x11b. */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
    unsigned x = a, y = b, product = 0;
    while (y != 0) {
        if (y & 1)
            product ^= x;
        y >>= 1;
        x <<= 1;
        if (x & 0x100)
            x ^= 0x11b;
    }
    return (uint8_t)product;
}

static void mul_matches_reference_for_all_pairs(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++)
            assert_int_equal(hs_gf256_mul((uint8_t)a, (uint8_t)b), ref_mul((uint8_t)a, (uint8_t)b));
}

static void add_is_xor_and_self_inverse(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++) {
            uint8_t s = hs_gf256_add((uint8_t)a, (uint8_t)b);
            assert_int_equal(s, a ^ b);
            assert_int_equal(hs_gf256_add(s, (uint8_t)b), a);
            assert_int_equal(s, hs_gf256_add((uint8_t)b, (uint8_t)a));
        }
}

static void mul_commutes_and_has_identity_and_zero(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        assert_int_equal(hs_gf256_mul((uint8_t)a, 1), a);
        assert_int_equal(hs_gf256_mul((uint8_t)a, 0), 0);
        for (unsigned b = 0; b < 256; b++)
            assert_int_equal(hs_gf256_mul((uint8_t)a, (uint8_t)b),
                             hs_gf256_mul((uint8_t)b, (uint8_t)a));
    }
}

/* All 16.7M triples: associativity and distributivity. Assertions are
 * counted rather than asserted one by one to keep the run short. */
static void associative_and_distributive_for_all_triples(void **state)
{
    (void)state;
    unsigned long assoc_bad = 0, distrib_bad = 0;
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++) {
            uint8_t ab = hs_gf256_mul((uint8_t)a, (uint8_t)b);
            for (unsigned c = 0; c < 256; c++) {
                uint8_t left = hs_gf256_mul(ab, (uint8_t)c);
                uint8_t right = hs_gf256_mul((uint8_t)a, hs_gf256_mul((uint8_t)b, (uint8_t)c));
                assoc_bad += left != right;
                uint8_t d1 = hs_gf256_mul((uint8_t)a, hs_gf256_add((uint8_t)b, (uint8_t)c));
                uint8_t d2 = hs_gf256_add(ab, hs_gf256_mul((uint8_t)a, (uint8_t)c));
                distrib_bad += d1 != d2;
            }
        }
    assert_int_equal(assoc_bad, 0);
    assert_int_equal(distrib_bad, 0);
}

static void every_nonzero_element_has_its_unique_inverse(void **state)
{
    (void)state;
    assert_int_equal(hs_gf256_inv(0), 0);
    for (unsigned a = 1; a < 256; a++) {
        uint8_t inv = hs_gf256_inv((uint8_t)a);
        assert_int_equal(ref_mul((uint8_t)a, inv), 1);
        /* unique: no other b is an inverse (checked with the reference) */
        for (unsigned b = 1; b < 256; b++)
            if (b != inv)
                assert_int_not_equal(ref_mul((uint8_t)a, (uint8_t)b), 1);
    }
}

/* The field is AES's: FIPS-197 section 4.2 worked examples. */
static void fips197_products(void **state)
{
    (void)state;
    assert_int_equal(hs_gf256_mul(0x57, 0x83), 0xc1);
    assert_int_equal(hs_gf256_mul(0x57, 0x13), 0xfe);
    assert_int_equal(hs_gf256_mul(0x57, 0x02), 0xae);
    assert_int_equal(hs_gf256_mul(0x57, 0x04), 0x47);
    assert_int_equal(hs_gf256_mul(0x57, 0x08), 0x8e);
    assert_int_equal(hs_gf256_mul(0x57, 0x10), 0x07);
    assert_int_equal(hs_gf256_inv(0x53), 0xca);
}

/* AES MixColumns of one column, built on our multiplication; the known
 * answers are the standard MixColumns test columns. */
static void mix_column(const uint8_t in[4], uint8_t out[4])
{
    for (int r = 0; r < 4; r++)
        out[r] = (uint8_t)(hs_gf256_mul(2, in[r]) ^ hs_gf256_mul(3, in[(r + 1) % 4]) ^
                           in[(r + 2) % 4] ^ in[(r + 3) % 4]);
}

static void aes_mixcolumns_known_answers(void **state)
{
    (void)state;
    static const uint8_t cases[][2][4] = {
        {{0xdb, 0x13, 0x53, 0x45}, {0x8e, 0x4d, 0xa1, 0xbc}},
        {{0xf2, 0x0a, 0x22, 0x5c}, {0x9f, 0xdc, 0x58, 0x9d}},
        {{0x01, 0x01, 0x01, 0x01}, {0x01, 0x01, 0x01, 0x01}},
        {{0xc6, 0xc6, 0xc6, 0xc6}, {0xc6, 0xc6, 0xc6, 0xc6}},
        {{0xd4, 0xd4, 0xd4, 0xd5}, {0xd5, 0xd5, 0xd7, 0xd6}},
        {{0x2d, 0x26, 0x31, 0x4c}, {0x4d, 0x7e, 0xbd, 0xf8}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[4];
        mix_column(cases[i][0], out);
        assert_memory_equal(out, cases[i][1], 4);
    }
}

/* The AES S-box is the affine map of the field inverse: its published
 * first and last rows pin down inv (with inv(0) = 0). */
static uint8_t rotl8(uint8_t b, int n)
{
    return (uint8_t)((b << n) | (b >> (8 - n)));
}

static uint8_t sbox(uint8_t x)
{
    uint8_t b = hs_gf256_inv(x);
    return (uint8_t)(b ^ rotl8(b, 1) ^ rotl8(b, 2) ^ rotl8(b, 3) ^ rotl8(b, 4) ^ 0x63);
}

static void aes_sbox_rows(void **state)
{
    (void)state;
    static const uint8_t first_row[16] = {0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5,
                                          0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76};
    static const uint8_t last_row[16] = {0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68,
                                         0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16};
    for (unsigned i = 0; i < 16; i++) {
        assert_int_equal(sbox((uint8_t)i), first_row[i]);
        assert_int_equal(sbox((uint8_t)(0xf0 + i)), last_row[i]);
    }
    assert_int_equal(sbox(0x53), 0xed); /* FIPS-197 section 5.1.1 example */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mul_matches_reference_for_all_pairs),
        cmocka_unit_test(add_is_xor_and_self_inverse),
        cmocka_unit_test(mul_commutes_and_has_identity_and_zero),
        cmocka_unit_test(associative_and_distributive_for_all_triples),
        cmocka_unit_test(every_nonzero_element_has_its_unique_inverse),
        cmocka_unit_test(fips197_products),
        cmocka_unit_test(aes_mixcolumns_known_answers),
        cmocka_unit_test(aes_sbox_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
