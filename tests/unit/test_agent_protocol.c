/* The agent's wire format (src/lib/agent/protocol.h): sign requests
 * survive the round trip field by field; malformed and oversized lines
 * are refused; errors cross the wire with their code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/protocol.h"

static void put(hs_agent_inbuf *b, const char *s)
{
    memcpy(b->data + b->len, s, strlen(s));
    b->len += strlen(s);
}

static void sign_request_round_trip(void **state)
{
    (void)state;
    uint8_t digest[32], art[32], fp[32];
    for (int i = 0; i < 32; i++)
        digest[i] = (uint8_t)i, art[i] = (uint8_t)(0x80 + i), fp[i] = (uint8_t)(0xf0 ^ i);
    hs_sign_request req = {.key_name = "platform", .alg = HS_SIG_RSA_PSS_SHA256, .digest = digest,
                           .digest_len = 32, .operation = "apk-v3", .artifact = "a b.apk",
                           .artifact_sha256 = art};
    memset(req.tbs_sha256, 0x5a, 32);
    json_t *j = hs_agent_sign_json(&req, fp);
    char *line = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    hs_agent_inbuf *b = calloc(1, sizeof *b);
    put(b, line);
    put(b, "\n{\"op\":\"hello\"}\n");
    free(line);
    hs_error e;
    json_t *msg;
    assert_int_equal(hs_agent_inbuf_take(b, &msg, &e), HS_OK);
    assert_non_null(msg);
    hs_agent_sign_msg m;
    assert_int_equal(hs_agent_sign_parse(msg, &m, &e), HS_OK);
    json_decref(msg);
    assert_string_equal(m.req.key_name, "platform");
    assert_int_equal(m.req.alg, HS_SIG_RSA_PSS_SHA256);
    assert_int_equal(m.req.digest_len, 32);
    assert_memory_equal(m.req.digest, digest, 32);
    assert_memory_equal(m.req.tbs_sha256, req.tbs_sha256, 32);
    assert_string_equal(m.req.operation, "apk-v3");
    assert_string_equal(m.req.artifact, "a b.apk");
    assert_memory_equal(m.req.artifact_sha256, art, 32);
    assert_memory_equal(m.key_fingerprint, fp, 32);
    assert_false(m.req.defer_durability);
    hs_agent_sign_msg_free(&m);
    /* The second line is still there, the first gone. */
    assert_int_equal(hs_agent_inbuf_take(b, &msg, &e), HS_OK);
    assert_string_equal(hs_agent_str(msg, "op"), "hello");
    json_decref(msg);
    assert_int_equal(b->len, 0);
    free(b);
}

static void sign_request_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        /* digest one byte short for SHA-256 */
        "{\"key\":\"k\",\"operation\":\"raw\",\"alg\":\"rsa-pkcs1-sha256\",\"digest\":\"00\","
        "\"tbs_sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000" "\","
        "\"key_fingerprint\":\"" "0000000000000000000000000000000000000000000000000000000000000000" "\"}",
        /* unknown algorithm */
        "{\"key\":\"k\",\"operation\":\"raw\",\"alg\":\"md5\"}",
        /* no key */
        "{\"operation\":\"raw\",\"alg\":\"rsa-pkcs1-sha256\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *msg = json_loads(bad[i], 0, NULL);
        assert_non_null(msg);
        hs_agent_sign_msg m;
        hs_error e;
        assert_int_equal(hs_agent_sign_parse(msg, &m, &e), HS_E_FORMAT);
        json_decref(msg);
    }
}

static void lines_refused(void **state)
{
    (void)state;
    hs_agent_inbuf *b = calloc(1, sizeof *b);
    hs_error e;
    json_t *msg;
    put(b, "{\"op\":");
    assert_int_equal(hs_agent_inbuf_take(b, &msg, &e), HS_OK); /* incomplete: wait */
    assert_null(msg);
    put(b, "\n");
    assert_int_equal(hs_agent_inbuf_take(b, &msg, &e), HS_E_FORMAT);
    put(b, "[1,2]\n");
    assert_int_equal(hs_agent_inbuf_take(b, &msg, &e), HS_E_FORMAT); /* not an object */
    b->len = 0;
    memset(b->data, 'x', sizeof b->data);
    b->len = sizeof b->data; /* full, no newline */
    assert_int_equal(hs_agent_inbuf_take(b, &msg, &e), HS_E_FORMAT);
    free(b);
}

static void errors_cross_the_wire(void **state)
{
    (void)state;
    hs_error in, out;
    hs_fail(&in, HS_E_AUDIT, "audit log full");
    in.ckr = 0;
    json_t *j = hs_agent_error_json(&in);
    assert_int_equal(hs_agent_response_check(j, &out), HS_E_AUDIT);
    assert_non_null(strstr(out.msg, "audit log full"));
    json_decref(j);
    json_t *ok = json_pack("{s:b}", "ok", 1);
    assert_int_equal(hs_agent_response_check(ok, &out), HS_OK);
    json_decref(ok);
    /* A made-up code is not trusted as a success. */
    json_t *odd = json_pack("{s:b, s:i, s:s}", "ok", 0, "code", 0, "error", "x");
    assert_int_equal(hs_agent_response_check(odd, &out), HS_E_INTERNAL);
    json_decref(odd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sign_request_round_trip),
        cmocka_unit_test(sign_request_refused),
        cmocka_unit_test(lines_refused),
        cmocka_unit_test(errors_cross_the_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
