/* The ceremony configuration reader: a valid file and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "backup/age.h"
#include "ceremony/config.h"

#define HOLDERS 5
static char *rcpt[HOLDERS + 3];

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < HOLDERS + 3; i++) {
        char *id;
        hs_error e;
        if (hs_age_keygen(&id, &rcpt[i], &e) != HS_OK)
            return -1;
        hs_age_secret_free(id);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < HOLDERS + 3; i++)
        free(rcpt[i]);
    return 0;
}

static json_t *valid(void)
{
    const char *names[HOLDERS] = {"alice", "bob", "carol", "dave", "Ève"};
    json_t *holders = json_array();
    for (int i = 0; i < HOLDERS; i++)
        json_array_append_new(holders,
                              json_pack("{s:s, s:s}", "name", names[i], "recipient", rcpt[i]));
    return json_pack("{s:i, s:s, s:{s:s, s:s}, s:i, s:o, s:{s:[s], s:s, s:[s]}}", "version", 1,
                     "name", "Example OS 2026", "tokens", "primary", "pkcs11:token=hsm%20one",
                     "backup", "hsm-two", "threshold", 3, "holders", holders, "roles", "admin",
                     rcpt[HOLDERS], "operator", rcpt[HOLDERS + 1], "auditor", rcpt[HOLDERS + 2]);
}

/* Parses j (consumed); returns the result and leaves the message in e. */
static hs_result parse(json_t *j, hs_ceremony_config **c, hs_error *e)
{
    char *text = json_dumps(j, 0);
    json_decref(j);
    hs_error_clear(e);
    hs_result r = hs_ceremony_config_parse(text, strlen(text), "test.json", c, e);
    free(text);
    return r;
}

static void test_valid(void **state)
{
    (void)state;
    hs_ceremony_config *c;
    hs_error e;
    assert_int_equal(parse(valid(), &c, &e), HS_OK);
    assert_string_equal(c->name, "Example OS 2026");
    assert_string_equal(c->primary, "pkcs11:token=hsm%20one");
    assert_string_equal(c->backup, "hsm-two");
    assert_int_equal(c->threshold, 3);
    assert_int_equal(c->n_holders, HOLDERS);
    assert_string_equal(c->holders[4].name, "Ève");
    assert_string_equal(c->holders[2].recipient, rcpt[2]);
    for (int r = 0; r < HS_ROLE_COUNT; r++) {
        assert_int_equal(c->roles[r].n, 1);
        assert_string_equal(c->roles[r].r[0], rcpt[HOLDERS + r]);
    }
    assert_string_equal(c->wrap_label, "hsmsign-wrap");
    assert_int_equal(c->audit_alg, HS_AUDITKEY_AUTO);
    free(c);
}

static void test_options(void **state)
{
    (void)state;
    json_t *j = valid();
    json_object_set_new(j, "wrap-key-label", json_string("org-wrap"));
    json_object_set_new(j, "audit-key-algorithm", json_string("ecdsa-p256"));
    json_t *roles = json_object_get(j, "roles");
    json_object_set_new(roles, "admin", json_pack("[s, s]", rcpt[HOLDERS], rcpt[HOLDERS + 2]));
    hs_ceremony_config *c;
    hs_error e;
    assert_int_equal(parse(j, &c, &e), HS_OK);
    assert_string_equal(c->wrap_label, "org-wrap");
    assert_int_equal(c->audit_alg, HS_AUDITKEY_P256);
    assert_int_equal(c->roles[HS_ROLE_ADMIN].n, 2);
    free(c);
}

typedef void (*mutate_fn)(json_t *j);

static void expect_refused(mutate_fn m, const char *needle)
{
    json_t *j = valid();
    m(j);
    hs_ceremony_config *c = NULL;
    hs_error e;
    hs_result r = parse(j, &c, &e);
    if (r == HS_OK || strstr(e.msg, needle) == NULL)
        fail_msg("expected a refusal mentioning '%s', got %d: %s", needle, r, e.msg);
    assert_int_equal(r, HS_E_FORMAT);
    assert_null(c);
}

static void m_unknown_top(json_t *j) { json_object_set_new(j, "thresold", json_integer(3)); }
static void m_no_version(json_t *j) { json_object_del(j, "version"); }
static void m_version2(json_t *j) { json_object_set_new(j, "version", json_integer(2)); }
static void m_k1(json_t *j) { json_object_set_new(j, "threshold", json_integer(1)); }
static void m_k_too_big(json_t *j) { json_object_set_new(j, "threshold", json_integer(6)); }
static void m_k_string(json_t *j) { json_object_set_new(j, "threshold", json_string("3")); }
static void m_one_holder(json_t *j)
{
    json_t *h = json_object_get(j, "holders");
    while (json_array_size(h) > 1)
        json_array_remove(h, 0);
    json_object_set_new(j, "threshold", json_integer(1));
}
static void m_dup_name(json_t *j)
{
    json_object_set_new(json_array_get(json_object_get(j, "holders"), 3), "name",
                        json_string("bob"));
}
static void m_dup_recipient(json_t *j)
{
    json_object_set_new(json_array_get(json_object_get(j, "holders"), 3), "recipient",
                        json_string(rcpt[0]));
}
static void m_bad_recipient(json_t *j)
{
    char bad[128];
    snprintf(bad, sizeof bad, "%s", rcpt[1]);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'q' ? 'p' : 'q'; /* breaks the checksum */
    json_object_set_new(json_array_get(json_object_get(j, "holders"), 1), "recipient",
                        json_string(bad));
}
static void m_holder_extra(json_t *j)
{
    json_object_set_new(json_array_get(json_object_get(j, "holders"), 0), "email",
                        json_string("a@example.org"));
}
static void m_holder_ctrl(json_t *j)
{
    json_object_set_new(json_array_get(json_object_get(j, "holders"), 0), "name",
                        json_string("al\nice"));
}
static void m_same_tokens(json_t *j)
{
    json_object_set_new(json_object_get(j, "tokens"), "backup", json_string("hsm one"));
}
static void m_uri_no_label(json_t *j)
{
    json_object_set_new(json_object_get(j, "tokens"), "backup",
                        json_string("pkcs11:serial=1234"));
}
static void m_no_backup(json_t *j) { json_object_del(json_object_get(j, "tokens"), "backup"); }
static void m_no_auditor(json_t *j) { json_object_del(json_object_get(j, "roles"), "auditor"); }
static void m_empty_role(json_t *j)
{
    json_object_set_new(json_object_get(j, "roles"), "operator", json_array());
}
static void m_role_dup(json_t *j)
{
    json_object_set_new(json_object_get(j, "roles"), "admin", json_pack("[s, s]", rcpt[0], rcpt[0]));
}
static void m_role_unknown(json_t *j)
{
    json_object_set_new(json_object_get(j, "roles"), "root", json_pack("[s]", rcpt[0]));
}
static void m_admin_is_operator(json_t *j)
{
    json_object_set_new(json_object_get(j, "roles"), "operator", json_string(rcpt[HOLDERS]));
}
static void m_admin_among_operators(json_t *j)
{
    json_object_set_new(json_object_get(j, "roles"), "operator",
                        json_pack("[s, s]", rcpt[HOLDERS + 1], rcpt[HOLDERS]));
}
static void m_holder_is_operator(json_t *j)
{
    json_object_set_new(json_object_get(j, "roles"), "operator", json_string(rcpt[1]));
}
static void m_holders_roles_not_bool(json_t *j)
{
    json_object_set_new(j, "holders-may-hold-roles", json_string("yes"));
}
static void m_bad_alg(json_t *j) { json_object_set_new(j, "audit-key-algorithm", json_string("rsa")); }
static void m_no_name(json_t *j) { json_object_del(j, "name"); }

static void test_refusals(void **state)
{
    (void)state;
    expect_refused(m_unknown_top, "unknown field 'thresold'");
    expect_refused(m_no_version, "version");
    expect_refused(m_version2, "unsupported version 2");
    expect_refused(m_k1, "threshold 1 is out of range");
    expect_refused(m_k_too_big, "threshold 6 is out of range");
    expect_refused(m_k_string, "'threshold' must be an integer");
    expect_refused(m_one_holder, "2 to 255 holders");
    expect_refused(m_dup_name, "both named 'bob'");
    expect_refused(m_dup_recipient, "same recipient");
    expect_refused(m_bad_recipient, "not an age X25519 recipient");
    expect_refused(m_holder_extra, "unknown field 'holders[0].email'");
    expect_refused(m_holder_ctrl, "control characters");
    expect_refused(m_same_tokens, "two different tokens");
    expect_refused(m_uri_no_label, "names no token label");
    expect_refused(m_no_backup, "missing field 'tokens.backup'");
    expect_refused(m_no_auditor, "roles.auditor");
    expect_refused(m_empty_role, "roles.operator");
    expect_refused(m_role_dup, "repeats a recipient");
    expect_refused(m_role_unknown, "unknown field 'roles.root'");
    expect_refused(m_bad_alg, "audit-key-algorithm 'rsa'");
    expect_refused(m_no_name, "missing field 'name'");
    expect_refused(m_admin_is_operator, "both admin and operator");
    expect_refused(m_admin_among_operators, "both admin and operator");
    expect_refused(m_holder_is_operator, "is also operator");
    expect_refused(m_holders_roles_not_bool, "must be true or false");
}

/* A holder holding a role is allowed only when said, and then recorded;
 * k = n is accepted with a warning. */
static void test_holder_role_explicit(void **state)
{
    (void)state;
    json_t *j = valid();
    json_object_set_new(json_object_get(j, "roles"), "admin", json_string(rcpt[0]));
    json_object_set_new(j, "holders-may-hold-roles", json_true());
    hs_ceremony_config *c;
    hs_error e;
    assert_int_equal(parse(j, &c, &e), HS_OK);
    assert_true(c->holders_may_hold_roles);
    assert_string_equal(c->warning, "");
    free(c);
    j = valid();
    json_object_set_new(j, "threshold", json_integer(HOLDERS));
    assert_int_equal(parse(j, &c, &e), HS_OK);
    assert_false(c->holders_may_hold_roles);
    assert_non_null(strstr(c->warning, "losing one loses the wrap key"));
    free(c);
}

static void test_malformed_json(void **state)
{
    (void)state;
    hs_ceremony_config *c;
    hs_error e;
    const char dup[] = "{\"version\": 1, \"version\": 1}";
    assert_int_equal(hs_ceremony_config_parse(dup, strlen(dup), "d.json", &c, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "d.json"));
    const char trunc[] = "{\"version\": 1, \"name\": ";
    assert_int_equal(hs_ceremony_config_parse(trunc, strlen(trunc), "t.json", &c, &e), HS_E_FORMAT);
    const char arr[] = "[1, 2]";
    assert_int_equal(hs_ceremony_config_parse(arr, strlen(arr), "a.json", &c, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "must be a JSON object"));
}

static void test_load_missing_file(void **state)
{
    (void)state;
    hs_ceremony_config *c;
    hs_error e;
    assert_int_not_equal(hs_ceremony_config_load("/nonexistent/ceremony.json", &c, &e), HS_OK);
    assert_non_null(strstr(e.msg, "/nonexistent/ceremony.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_holder_role_explicit),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_load_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
