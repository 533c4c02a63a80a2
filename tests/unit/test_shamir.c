#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "backup/shamir.h"

#define MAX_N 10u
#define MAX_LEN 100u

static const size_t LENGTHS[] = {1, 16, 32, 33, 100};

typedef struct split_set {
    unsigned n;
    size_t len;
    uint8_t secret[MAX_LEN];
    uint8_t xs[255];
    uint8_t buf[255][MAX_LEN];
    uint8_t *ys[255];
} split_set;

static void make_split(split_set *s, unsigned k, unsigned n, size_t len)
{
    hs_error e = {0};
    s->n = n;
    s->len = len;
    assert_int_equal(RAND_bytes(s->secret, (int)len), 1);
    for (unsigned i = 0; i < n; i++)
        s->ys[i] = s->buf[i];
    assert_int_equal(hs_shamir_split(s->secret, len, k, n, s->xs, s->ys, &e), HS_OK);
    bool seen[256] = {false};
    for (unsigned i = 0; i < n; i++) {
        assert_int_not_equal(s->xs[i], 0);
        assert_false(seen[s->xs[i]]);
        seen[s->xs[i]] = true;
    }
}

/* Combines the shares at positions members[0..count-1]. */
static void combine_members(const split_set *s, const unsigned *members, unsigned count,
                            uint8_t *out)
{
    uint8_t xs[255];
    const uint8_t *ys[255];
    for (unsigned i = 0; i < count; i++) {
        xs[i] = s->xs[members[i]];
        ys[i] = s->buf[members[i]];
    }
    hs_error e = {0};
    assert_int_equal(hs_shamir_combine(count, xs, ys, s->len, out, &e), HS_OK);
}

static bool next_subset(unsigned *pos, unsigned k, unsigned n)
{
    for (unsigned i = k; i-- > 0;)
        if (pos[i] < n - k + i) {
            pos[i]++;
            for (unsigned j = i + 1; j < k; j++)
                pos[j] = pos[j - 1] + 1;
            return true;
        }
    return false;
}

static void random_subset(unsigned *pos, unsigned k, unsigned n)
{
    unsigned perm[255];
    for (unsigned i = 0; i < n; i++)
        perm[i] = i;
    for (unsigned i = n - 1; i > 0; i--) { /* Fisher-Yates; bias is irrelevant here */
        unsigned r;
        assert_int_equal(RAND_bytes((uint8_t *)&r, sizeof r), 1);
        unsigned j = r % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memcpy(pos, perm, k * sizeof *pos);
}

/* Every k-subset for n <= 7 (at most 35 per case), a random sample of 40
 * for larger n; each must give the secret back. k-1 shares must not. */
static void split_combine_all_thresholds(void **state)
{
    (void)state;
    static split_set s;
    unsigned long combined = 0;
    for (unsigned n = 2; n <= MAX_N; n++)
        for (unsigned k = 2; k <= n; k++)
            for (size_t l = 0; l < sizeof LENGTHS / sizeof LENGTHS[0]; l++) {
                make_split(&s, k, n, LENGTHS[l]);
                uint8_t out[MAX_LEN];
                unsigned pos[MAX_N];
                if (n <= 7) {
                    for (unsigned i = 0; i < k; i++)
                        pos[i] = i;
                    do {
                        memset(out, 0, sizeof out);
                        combine_members(&s, pos, k, out);
                        assert_memory_equal(out, s.secret, s.len);
                        combined++;
                    } while (next_subset(pos, k, n));
                } else {
                    for (int t = 0; t < 40; t++) {
                        random_subset(pos, k, n);
                        combine_members(&s, pos, k, out);
                        assert_memory_equal(out, s.secret, s.len);
                        combined++;
                    }
                }
                /* more than k shares interpolate the same polynomial */
                for (unsigned i = 0; i < n; i++)
                    pos[i] = n - 1 - i;
                combine_members(&s, pos, n, out);
                assert_memory_equal(out, s.secret, s.len);
                /* k-1 shares: a wrong secret (certain in practice for >= 16 bytes) */
                if (k >= 3 && s.len >= 16) {
                    random_subset(pos, k - 1, n);
                    combine_members(&s, pos, k - 1, out);
                    assert_memory_not_equal(out, s.secret, s.len);
                }
            }
    assert_true(combined > 1000);
}

/* k = 2 has no k-1 >= 2 subset to combine; one share alone must at least
 * not be the secret. */
static void one_share_is_not_the_secret(void **state)
{
    (void)state;
    static split_set s;
    for (unsigned n = 2; n <= MAX_N; n++) {
        make_split(&s, 2, n, 32);
        for (unsigned i = 0; i < n; i++)
            assert_memory_not_equal(s.buf[i], s.secret, 32);
    }
}

/* Check against a polynomial built by hand: f(x) = s + a x + b x^2 per
 * byte, evaluated with a branchy test-only multiplication. */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
    unsigned x = a, y = b, p = 0;
    while (y) {
        if (y & 1)
            p ^= x;
        y >>= 1;
        x <<= 1;
        if (x & 0x100)
            x ^= 0x11b;
    }
    return (uint8_t)p;
}

static void combine_recovers_hand_made_polynomial(void **state)
{
    (void)state;
    const uint8_t secret[4] = {0x00, 0x42, 0xff, 0x80};
    const uint8_t a[4] = {0x01, 0x9c, 0x00, 0x37};
    const uint8_t b[4] = {0xfe, 0x01, 0x55, 0x00};
    const uint8_t xs[3] = {0x03, 0xa1, 0xff};
    uint8_t buf[3][4];
    const uint8_t *ys[3] = {buf[0], buf[1], buf[2]};
    for (int i = 0; i < 3; i++)
        for (int p = 0; p < 4; p++) {
            uint8_t x = xs[i];
            buf[i][p] = (uint8_t)(secret[p] ^ ref_mul(a[p], x) ^ ref_mul(b[p], ref_mul(x, x)));
        }
    uint8_t out[4];
    hs_error e = {0};
    assert_int_equal(hs_shamir_combine(3, xs, ys, 4, out, &e), HS_OK);
    assert_memory_equal(out, secret, 4);
}

static void largest_set_uses_every_x(void **state)
{
    (void)state;
    static split_set s;
    make_split(&s, 255, 255, 8);
    unsigned pos[255];
    for (unsigned i = 0; i < 255; i++)
        pos[i] = i;
    uint8_t out[8];
    combine_members(&s, pos, 255, out);
    assert_memory_equal(out, s.secret, 8);
    /* 254 of the 255 shares are not enough */
    combine_members(&s, pos + 1, 254, out);
    assert_memory_not_equal(out, s.secret, 8);
}

static void splits_are_randomized(void **state)
{
    (void)state;
    static split_set s1, s2;
    make_split(&s1, 3, 5, 32);
    s2 = s1;
    hs_error e = {0};
    for (unsigned i = 0; i < 5; i++)
        s2.ys[i] = s2.buf[i];
    assert_int_equal(hs_shamir_split(s1.secret, 32, 3, 5, s2.xs, s2.ys, &e), HS_OK);
    /* same secret, different x and different coefficients */
    assert_memory_not_equal(s1.xs, s2.xs, 5);
    assert_memory_not_equal(s1.buf[0], s2.buf[0], 32);
}

static void bad_parameters_refused(void **state)
{
    (void)state;
    uint8_t secret[16] = {1}, xs[256], buf[256][16];
    uint8_t *ys[256];
    for (int i = 0; i < 256; i++)
        ys[i] = buf[i];
    hs_error e = {0};
    assert_int_equal(hs_shamir_split(secret, 16, 1, 3, xs, ys, &e), HS_E_USAGE);
    assert_int_equal(hs_shamir_split(secret, 16, 4, 3, xs, ys, &e), HS_E_USAGE);
    assert_int_equal(hs_shamir_split(secret, 16, 2, 256, xs, ys, &e), HS_E_USAGE);
    assert_int_equal(hs_shamir_split(secret, 0, 2, 3, xs, ys, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "empty"));
}

static void duplicate_or_zero_x_refused(void **state)
{
    (void)state;
    static split_set s;
    make_split(&s, 3, 5, 32);
    uint8_t xs[3] = {s.xs[0], s.xs[1], s.xs[0]};
    const uint8_t *ys[3] = {s.buf[0], s.buf[1], s.buf[0]};
    uint8_t out[32];
    hs_error e = {0};
    assert_int_equal(hs_shamir_combine(3, xs, ys, 32, out, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "twice"));
    xs[2] = 0;
    assert_int_equal(hs_shamir_combine(3, xs, ys, 32, out, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "x = 0"));
    assert_int_equal(hs_shamir_combine(1, xs, ys, 32, out, &e), HS_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_combine_all_thresholds),
        cmocka_unit_test(one_share_is_not_the_secret),
        cmocka_unit_test(combine_recovers_hand_made_polynomial),
        cmocka_unit_test(largest_set_uses_every_x),
        cmocka_unit_test(splits_are_randomized),
        cmocka_unit_test(bad_parameters_refused),
        cmocka_unit_test(duplicate_or_zero_x_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
