/* PIN sources: parsing, reading, and refusing what the contract forbids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "p11/pin.h"

static void parses_every_kind(void **state)
{
    (void)state;
    hs_pin_source s;
    hs_error e;
    assert_int_equal(hs_pin_source_parse("env:MY_PIN", &s, &e), HS_OK);
    assert_int_equal(s.kind, HS_PIN_ENV);
    assert_string_equal(s.arg, "MY_PIN");
    assert_int_equal(hs_pin_source_parse("file:/run/pin", &s, &e), HS_OK);
    assert_int_equal(s.kind, HS_PIN_FILE);
    assert_int_equal(hs_pin_source_parse("fd:3", &s, &e), HS_OK);
    assert_int_equal(s.kind, HS_PIN_FD);
    assert_int_equal(s.fd, 3);
    assert_int_equal(hs_pin_source_parse("prompt", &s, &e), HS_OK);
    assert_int_equal(s.kind, HS_PIN_PROMPT);
}

static void refuses_a_literal_pin(void **state)
{
    (void)state;
    hs_pin_source s;
    hs_error e;
    const char *bad[] = {"1234", "pin:1234", "env:", "fd:x", "fd:-1", "prompt:now", "file:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(hs_pin_source_parse(bad[i], &s, &e), HS_E_USAGE);
        assert_non_null(strstr(e.msg, "PIN source"));
    }
}

static void reads_env_file_and_fd(void **state)
{
    (void)state;
    hs_pin_source s;
    hs_error e;
    char *pin;
    setenv("TEST_PIN_VAR", "s3cret", 1);
    assert_int_equal(hs_pin_source_parse("env:TEST_PIN_VAR", &s, &e), HS_OK);
    assert_int_equal(hs_pin_read(&s, "user PIN", &pin, &e), HS_OK);
    assert_string_equal(pin, "s3cret");
    hs_pin_free(pin);

    char path[] = "/tmp/hsmsign-pin-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "fromfile\r\nsecond line\n", 22), 22);
    close(fd);
    char spec[64];
    snprintf(spec, sizeof spec, "file:%s", path);
    assert_int_equal(hs_pin_source_parse(spec, &s, &e), HS_OK);
    assert_int_equal(hs_pin_read(&s, "user PIN", &pin, &e), HS_OK);
    assert_string_equal(pin, "fromfile"); /* first line, CR LF removed */
    hs_pin_free(pin);

    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "piped\n", 6), 6);
    close(p[1]);
    snprintf(spec, sizeof spec, "fd:%d", p[0]);
    assert_int_equal(hs_pin_source_parse(spec, &s, &e), HS_OK);
    assert_int_equal(hs_pin_read(&s, "user PIN", &pin, &e), HS_OK);
    assert_string_equal(pin, "piped");
    hs_pin_free(pin);
    close(p[0]);
    unlink(path);
}

/* env:VAR takes the PIN out of the environment: the entry is gone (a child
 * would not inherit it) and its bytes, which for the initial environment
 * are what /proc/PID/environ shows, are wiped in place. A second read of
 * the same variable still gets the PIN. */
static void env_pin_is_taken_out_of_the_environment(void **state)
{
    (void)state;
    hs_pin_source s;
    hs_error e;
    char *pin;
    /* putenv: the entry is this buffer, as an inherited one is the stack's. */
    static char entry[] = "TEST_TAKEN_PIN=wipe-me-1234";
    static char dup[] = "TEST_TAKEN_PIN=second-copy";
    assert_int_equal(putenv(entry), 0);
    extern char **environ;
    /* A second entry of the same name (possible through execve) goes too. */
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    /* Static: setenv/unsetenv may replace environ later, and a heap copy
     * would then be leaked (LeakSanitizer, make check-asan). */
    static char *env2[1024];
    assert_true(n + 2 <= sizeof env2 / sizeof env2[0]);
    memcpy(env2, environ, n * sizeof *env2);
    env2[n] = dup;
    environ = env2;
    assert_int_equal(hs_pin_source_parse("env:TEST_TAKEN_PIN", &s, &e), HS_OK);
    assert_int_equal(hs_pin_read(&s, "user PIN", &pin, &e), HS_OK);
    assert_string_equal(pin, "wipe-me-1234");
    hs_pin_free(pin);
    assert_null(getenv("TEST_TAKEN_PIN"));
    for (size_t i = 0; environ[i] != NULL; i++)
        assert_null(strstr(environ[i], "TEST_TAKEN_PIN"));
    for (size_t i = 0; i < sizeof entry; i++)
        assert_int_equal(entry[i], 0);
    for (size_t i = 0; i < sizeof dup; i++)
        assert_int_equal(dup[i], 0);
    assert_true(hs_pin_env_available("TEST_TAKEN_PIN"));
    assert_int_equal(hs_pin_read(&s, "SO PIN", &pin, &e), HS_OK);
    assert_string_equal(pin, "wipe-me-1234");
    hs_pin_free(pin);
    /* A value set again later wins over the kept copy. */
    setenv("TEST_TAKEN_PIN", "newer", 1);
    assert_int_equal(hs_pin_read(&s, "user PIN", &pin, &e), HS_OK);
    assert_string_equal(pin, "newer");
    hs_pin_free(pin);
    assert_null(getenv("TEST_TAKEN_PIN"));
    assert_false(hs_pin_env_available("TEST_NEVER_SET_PIN"));
}

static void read_errors_are_clear(void **state)
{
    (void)state;
    hs_pin_source s;
    hs_error e;
    char *pin = (char *)1;
    unsetenv("TEST_PIN_UNSET");
    assert_int_equal(hs_pin_source_parse("env:TEST_PIN_UNSET", &s, &e), HS_OK);
    assert_int_equal(hs_pin_read(&s, "user PIN of token 't'", &pin, &e), HS_E_USAGE);
    assert_null(pin);
    assert_non_null(strstr(e.msg, "TEST_PIN_UNSET is not set"));
    assert_non_null(strstr(e.msg, "token 't'"));
    setenv("TEST_PIN_EMPTY", "", 1);
    assert_int_equal(hs_pin_source_parse("env:TEST_PIN_EMPTY", &s, &e), HS_OK);
    assert_int_equal(hs_pin_read(&s, "user PIN", &pin, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "empty"));
    /* prompt without a prompt function (no terminal) */
    assert_int_equal(hs_pin_source_parse("prompt", &s, &e), HS_OK);
    assert_int_equal(hs_pin_read(&s, "user PIN", &pin, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "--pin-source"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_every_kind),
        cmocka_unit_test(refuses_a_literal_pin),
        cmocka_unit_test(reads_env_file_and_fd),
        cmocka_unit_test(env_pin_is_taken_out_of_the_environment),
        cmocka_unit_test(read_errors_are_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
