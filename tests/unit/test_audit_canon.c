/* The canonical-line fast path of `audit verify` (audit/canon.h): it
 * accepts what record.c writes and nothing jansson would reject or read
 * differently (those lines go to jansson). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "audit/canon.h"

static bool fast(const char *line, int64_t *seq)
{
    return hs_auditline_canonical_seq(line, strlen(line), seq);
}

static void test_canonical_accepted(void **state)
{
    (void)state;
    int64_t seq = -1;
    assert_true(fast("{\"alg\":\"ec-p256\",\"op\":\"sign\",\"seq\":42,\"v\":1}", &seq));
    assert_int_equal(seq, 42);
    /* Nested objects (reuse_of, prior_log), booleans, escapes. */
    assert_true(fast("{\"a\":\"x\\\"y\\\\z\\/\\n\",\"prior_log\":{\"checkpoint_verified\":true,"
                     "\"dir\":\"d\",\"entries\":0},\"reuse_of\":{\"batch\":null,\"seq\":7},"
                     "\"seq\":123456789012345678,\"z\":false}", &seq));
    assert_int_equal(seq, 123456789012345678LL);
    assert_true(fast("{\"seq\":0}", &seq));
    assert_int_equal(seq, 0);
}

/* Each is left to jansson: not canonical, or not JSON at all. */
static void test_others_left_to_jansson(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "",
        "{}",                                     /* no seq */
        "{\"seq\":\"1\"}",                        /* seq not an integer */
        "{ \"seq\":1}",                           /* whitespace */
        "{\"seq\":1,\"op\":\"sign\"}",            /* keys out of order */
        "{\"seq\":1,\"seq\":2}",                  /* duplicate key */
        "{\"a\":{\"y\":1,\"x\":2},\"seq\":1}",    /* nested keys out of order */
        "{\"a\":{\"x\":1,\"x\":2},\"seq\":1}",    /* nested duplicate */
        "{\"a\":\"\\u0000\",\"seq\":1}",          /* \u escapes */
        "{\"a\":\"\xc3\xa9\",\"seq\":1}",         /* not ASCII */
        "{\"a\":\"\\q\",\"seq\":1}",              /* bad escape */
        "{\"a\":\"tab\there\",\"seq\":1}",        /* control character */
        "{\"seq\":1234567890123456789}",          /* 19 digits */
        "{\"seq\":01}",                           /* leading zero */
        "{\"seq\":1.0}",                          /* fraction */
        "{\"seq\":1e3}",                          /* exponent */
        "{\"a\":[1],\"seq\":1}",                  /* arrays */
        "{\"a\":tru,\"seq\":1}",                  /* bad literal */
        "{\"seq\":1}x",                           /* trailing bytes */
        "{\"seq\":1",                             /* unterminated */
        "{\"seq\":1,}",                           /* trailing comma */
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int64_t seq;
        if (fast(lines[i], &seq))
            fail_msg("accepted: %s", lines[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_accepted),
        cmocka_unit_test(test_others_left_to_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
