#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/encoding.h"

static void hex_round_trip(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xff};
    char hex[9];
    hs_hex_encode(in, sizeof in, hex);
    assert_string_equal(hex, "0001abff");
    uint8_t out[4];
    assert_true(hs_hex_decode("0001ABff", out, sizeof out));
    assert_memory_equal(in, out, sizeof in);
}

static void hex_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t out[2];
    assert_false(hs_hex_decode("abc", out, 2));   /* odd length */
    assert_false(hs_hex_decode("abcdef", out, 2)); /* too long */
    assert_false(hs_hex_decode("zz00", out, 2));  /* not hex */
}

static void base64_known_answers(void **state)
{
    (void)state;
    /* RFC 4648 section 10 test vectors. */
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *b = hs_base64_encode((const uint8_t *)plain[i], strlen(plain[i]));
        assert_non_null(b);
        assert_string_equal(b, enc[i]);
        free(b);
        uint8_t *out;
        size_t len;
        assert_true(hs_base64_decode(enc[i], &out, &len));
        assert_int_equal(len, strlen(plain[i]));
        assert_memory_equal(out, plain[i], len);
        free(out);
    }
}

static void base64_is_strict(void **state)
{
    (void)state;
    uint8_t *out;
    size_t len;
    assert_false(hs_base64_decode("Zg=", &out, &len));   /* bad length */
    assert_false(hs_base64_decode("Zh==", &out, &len));  /* non-canonical trailing bits */
    assert_false(hs_base64_decode("Zm9v\n", &out, &len)); /* whitespace */
    assert_false(hs_base64_decode("Zm*v", &out, &len));  /* alphabet */
}

static void ct_equal_compares(void **state)
{
    (void)state;
    assert_true(hs_ct_equal("abcd", "abcd", 4));
    assert_false(hs_ct_equal("abcd", "abce", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex_round_trip),
        cmocka_unit_test(hex_rejects_bad_input),
        cmocka_unit_test(base64_known_answers),
        cmocka_unit_test(base64_is_strict),
        cmocka_unit_test(ct_equal_compares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
