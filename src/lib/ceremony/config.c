/* Reading the ceremony configuration (see config.h). */
#include "ceremony/config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/age.h"
#include "keystore/wrapkey.h"
#include "p11/admin.h"
#include "util/file.h"
#include "util/json.h"

const char *hs_ceremony_role_name(hs_ceremony_role role)
{
    static const char *const names[HS_ROLE_COUNT] = {"admin", "operator", "auditor"};
    return role < HS_ROLE_COUNT ? names[role] : "?";
}

static hs_result check_recipient(const char *r, const char *src, const char *where, hs_error *e)
{
    hs_error why;
    if (hs_age_recipient_check(r, &why) != HS_OK)
        return hs_fail(e, HS_E_FORMAT, "%s: %s: '%s' is not an age X25519 recipient: %s", src,
                       where, r, why.msg);
    return HS_OK;
}

static hs_result parse_tokens(json_t *root, hs_ceremony_config *c, const char *src, hs_error *e)
{
    static const char *const keys[] = {"primary", "backup"};
    json_t *t = json_object_get(root, "tokens");
    if (!json_is_object(t))
        return hs_fail(e, HS_E_FORMAT, "%s: field 'tokens' must be an object with 'primary' and "
                                       "'backup'", src);
    hs_result r = hs_json_check_fields(t, keys, 0, HS_JSON_COUNT(keys), src, "tokens.", e);
    if (r == HS_OK)
        r = hs_json_get_string(t, "primary", true, c->primary, sizeof c->primary, src, "tokens.", e);
    if (r == HS_OK)
        r = hs_json_get_string(t, "backup", true, c->backup, sizeof c->backup, src, "tokens.", e);
    char a[64], b[64];
    if (r == HS_OK)
        r = hs_p11_spec_label(c->primary, a, sizeof a, e);
    if (r == HS_OK)
        r = hs_p11_spec_label(c->backup, b, sizeof b, e);
    if (r == HS_E_USAGE) {
        e->code = HS_E_FORMAT; /* a bad token spec is a defect of the file */
        return hs_error_prefix(e, "%s: tokens: ", src);
    }
    if (r != HS_OK)
        return r;
    if (strcmp(a, b) == 0)
        return hs_fail(e, HS_E_FORMAT, "%s: the primary and backup tokens are both '%s': they "
                                       "must be two different tokens", src, a);
    return HS_OK;
}

static hs_result parse_holder(json_t *h, size_t i, hs_ceremony_config *c, const char *src,
                              hs_error *e)
{
    static const char *const keys[] = {"name", "recipient"};
    /* "holders[N] (NAME)" whole, NAME up to HS_SHARE_LABEL_MAX bytes: gcc
     * -O0 (buildtype=debug, make check-valgrind) rejects a smaller buffer. */
    char where[32 + HS_SHARE_LABEL_MAX];
    snprintf(where, sizeof where, "holders[%zu].", i);
    if (!json_is_object(h))
        return hs_fail(e, HS_E_FORMAT, "%s: holders[%zu] must be an object with 'name' and "
                                       "'recipient'", src, i);
    hs_ceremony_holder *d = &c->holders[i];
    hs_result r = hs_json_check_fields(h, keys, 0, HS_JSON_COUNT(keys), src, where, e);
    if (r == HS_OK)
        r = hs_json_get_string(h, "name", true, d->name, sizeof d->name, src, where, e);
    if (r == HS_OK)
        r = hs_json_get_string(h, "recipient", true, d->recipient, sizeof d->recipient, src, where, e);
    if (r != HS_OK)
        return r;
    if (!hs_share_label_ok(d->name))
        return hs_fail(e, HS_E_FORMAT, "%s: %sname: control characters or malformed UTF-8", src,
                       where);
    snprintf(where, sizeof where, "holders[%zu] (%s)", i, d->name);
    r = check_recipient(d->recipient, src, where, e);
    for (size_t j = 0; r == HS_OK && j < i; j++) {
        if (strcmp(c->holders[j].name, d->name) == 0)
            r = hs_fail(e, HS_E_FORMAT, "%s: holders[%zu] and holders[%zu] are both named '%s'",
                        src, j, i, d->name);
        else if (strcmp(c->holders[j].recipient, d->recipient) == 0)
            r = hs_fail(e, HS_E_FORMAT,
                        "%s: holders '%s' and '%s' have the same recipient: one person holding "
                        "two shares defeats the threshold",
                        src, c->holders[j].name, d->name);
    }
    return r;
}

static hs_result parse_holders(json_t *root, hs_ceremony_config *c, const char *src, hs_error *e)
{
    json_t *hs = json_object_get(root, "holders");
    if (!json_is_array(hs) || json_array_size(hs) < 2 ||
        json_array_size(hs) > HS_SHARE_MAX_SHARES)
        return hs_fail(e, HS_E_FORMAT, "%s: field 'holders' must be an array of 2 to %u holders",
                       src, HS_SHARE_MAX_SHARES);
    c->n_holders = json_array_size(hs);
    for (size_t i = 0; i < c->n_holders; i++) {
        hs_result r = parse_holder(json_array_get(hs, i), i, c, src, e);
        if (r != HS_OK)
            return r;
    }
    json_t *k = json_object_get(root, "threshold");
    if (!json_is_integer(k))
        return hs_fail(e, HS_E_FORMAT, "%s: field 'threshold' must be an integer", src);
    json_int_t kv = json_integer_value(k);
    if (kv < 2 || (size_t)kv > c->n_holders)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: threshold %lld is out of range: it must be 2 to the number of "
                       "holders (%zu)",
                       src, (long long)kv, c->n_holders);
    c->threshold = (unsigned)kv;
    return HS_OK;
}

static hs_result parse_role(json_t *roles, hs_ceremony_role role, hs_ceremony_config *c,
                            const char *src, hs_error *e)
{
    const char *name = hs_ceremony_role_name(role);
    json_t *v = json_object_get(roles, name);
    if (v == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: missing field 'roles.%s'", src, name);
    json_t *one = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
    hs_ceremony_recipients *d = &c->roles[role];
    hs_result r = HS_OK;
    if (!json_is_array(one) || json_array_size(one) == 0 ||
        json_array_size(one) > HS_CEREMONY_ROLE_MAX)
        r = hs_fail(e, HS_E_FORMAT, "%s: 'roles.%s' must be a recipient or an array of 1 to %d "
                                    "recipients", src, name, HS_CEREMONY_ROLE_MAX);
    for (size_t i = 0; r == HS_OK && i < json_array_size(one); i++) {
        json_t *s = json_array_get(one, i);
        char where[48];
        snprintf(where, sizeof where, "roles.%s[%zu]", name, i);
        if (!json_is_string(s) || json_string_length(s) > HS_CEREMONY_RECIPIENT_MAX)
            r = hs_fail(e, HS_E_FORMAT, "%s: %s must be an age recipient string", src, where);
        else
            r = check_recipient(json_string_value(s), src, where, e);
        for (size_t j = 0; r == HS_OK && j < i; j++)
            if (strcmp(d->r[j], json_string_value(s)) == 0)
                r = hs_fail(e, HS_E_FORMAT, "%s: %s repeats a recipient", src, where);
        if (r == HS_OK)
            snprintf(d->r[d->n++], sizeof d->r[0], "%s", json_string_value(s));
    }
    json_decref(one);
    return r;
}

static hs_result parse_roles(json_t *root, hs_ceremony_config *c, const char *src, hs_error *e)
{
    static const char *const keys[] = {"admin", "operator", "auditor"};
    json_t *roles = json_object_get(root, "roles");
    if (!json_is_object(roles))
        return hs_fail(e, HS_E_FORMAT, "%s: field 'roles' must be an object with 'admin', "
                                       "'operator' and 'auditor'", src);
    hs_result r = hs_json_check_fields(roles, keys, 0, HS_JSON_COUNT(keys), src, "roles.", e);
    for (int i = 0; r == HS_OK && i < HS_ROLE_COUNT; i++)
        r = parse_role(roles, (hs_ceremony_role)i, c, src, e);
    return r;
}

/* docs/ceremony.md promises that nobody holds both PINs, and that share
 * holders hold no PIN unless the configuration says so: checked here, so a
 * configuration that breaks the promise is refused before any token is
 * touched. */
static bool in_role(const hs_ceremony_recipients *r, const char *recipient)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->r[i], recipient) == 0)
            return true;
    return false;
}

static hs_result check_separation(json_t *root, hs_ceremony_config *c, const char *src,
                                  hs_error *e)
{
    const hs_ceremony_recipients *admin = &c->roles[HS_ROLE_ADMIN];
    const hs_ceremony_recipients *op = &c->roles[HS_ROLE_OPERATOR];
    for (size_t i = 0; i < admin->n; i++)
        if (in_role(op, admin->r[i]))
            return hs_fail(e, HS_E_FORMAT,
                           "%s: recipient %s is both admin and operator: one person would hold "
                           "the SO and the user PIN; give the roles different recipients",
                           src, admin->r[i]);
    json_t *v = json_object_get(root, "holders-may-hold-roles");
    if (v != NULL && !json_is_boolean(v))
        return hs_fail(e, HS_E_FORMAT, "%s: 'holders-may-hold-roles' must be true or false", src);
    c->holders_may_hold_roles = v != NULL && json_is_true(v);
    for (size_t i = 0; !c->holders_may_hold_roles && i < c->n_holders; i++) {
        const char *rc = c->holders[i].recipient;
        if (in_role(admin, rc) || in_role(op, rc))
            return hs_fail(e, HS_E_FORMAT,
                           "%s: share holder '%s' is also %s: a holder may hold a PIN only when "
                           "the configuration says so (\"holders-may-hold-roles\": true)",
                           src, c->holders[i].name, in_role(admin, rc) ? "admin" : "operator");
    }
    return HS_OK;
}

static hs_result parse_options(json_t *root, hs_ceremony_config *c, const char *src, hs_error *e)
{
    snprintf(c->wrap_label, sizeof c->wrap_label, "%s", HS_WRAPKEY_DEFAULT_LABEL);
    hs_result r = hs_json_get_string(root, "wrap-key-label", false, c->wrap_label, sizeof c->wrap_label,
                             src, "", e);
    char alg[32] = "auto";
    if (r == HS_OK)
        r = hs_json_get_string(root, "audit-key-algorithm", false, alg, sizeof alg, src, "", e);
    if (r != HS_OK)
        return r;
    if (strcmp(alg, "auto") == 0)
        c->audit_alg = HS_AUDITKEY_AUTO;
    else if (strcmp(alg, "ed25519") == 0)
        c->audit_alg = HS_AUDITKEY_ED25519;
    else if (strcmp(alg, "ecdsa-p256") == 0)
        c->audit_alg = HS_AUDITKEY_P256;
    else
        return hs_fail(e, HS_E_FORMAT, "%s: audit-key-algorithm '%s' is not one of auto, "
                                       "ed25519, ecdsa-p256", src, alg);
    return HS_OK;
}

static hs_result parse_root(json_t *root, hs_ceremony_config *c, const char *src, hs_error *e)
{
    static const char *const keys[] = {"version", "name", "tokens", "threshold", "holders",
                                       "roles", "wrap-key-label", "audit-key-algorithm",
                                       "holders-may-hold-roles"};
    if (!json_is_object(root))
        return hs_fail(e, HS_E_FORMAT, "%s: the configuration must be a JSON object", src);
    json_t *v = json_object_get(root, "version");
    if (!json_is_integer(v))
        return hs_fail(e, HS_E_FORMAT, "%s: missing integer field 'version' (this tool reads "
                                       "version %d)", src, HS_CEREMONY_CONFIG_VERSION);
    if (json_integer_value(v) != HS_CEREMONY_CONFIG_VERSION)
        return hs_fail(e, HS_E_FORMAT, "%s: unsupported version %lld (this tool reads version %d)",
                       src, (long long)json_integer_value(v), HS_CEREMONY_CONFIG_VERSION);
    hs_result r = hs_json_check_fields(root, keys, 0, HS_JSON_COUNT(keys), src, "", e);
    if (r == HS_OK)
        r = hs_json_get_string(root, "name", true, c->name, sizeof c->name, src, "", e);
    if (r == HS_OK && !hs_share_label_ok(c->name))
        r = hs_fail(e, HS_E_FORMAT, "%s: name: control characters or malformed UTF-8", src);
    if (r == HS_OK)
        r = parse_tokens(root, c, src, e);
    if (r == HS_OK)
        r = parse_holders(root, c, src, e);
    if (r == HS_OK)
        r = parse_roles(root, c, src, e);
    if (r == HS_OK)
        r = parse_options(root, c, src, e);
    if (r == HS_OK)
        r = check_separation(root, c, src, e);
    if (r == HS_OK && c->threshold == c->n_holders)
        snprintf(c->warning, sizeof c->warning,
                 "threshold %u of %zu: every share is needed, losing one loses the wrap key",
                 c->threshold, c->n_holders);
    return r;
}

static hs_result read_root(json_t *root, void *c, const char *src, hs_error *e)
{
    return parse_root(root, c, src, e);
}

hs_result hs_ceremony_config_parse(const char *text, size_t len, const char *source,
                                   hs_ceremony_config **out, hs_error *e)
{
    const char *src = source != NULL ? source : "ceremony config";
    void *c;
    hs_result r = hs_json_read_object(text, len, src, src, sizeof(hs_ceremony_config), read_root,
                                      free, &c, e);
    *out = c;
    return r;
}

hs_result hs_ceremony_config_load(const char *path, hs_ceremony_config **out, hs_error *e)
{
    uint8_t *text;
    size_t len;
    *out = NULL;
    hs_result r = hs_read_file(path, HS_CEREMONY_CONFIG_MAX, &text, &len, e);
    if (r != HS_OK)
        return r;
    r = hs_ceremony_config_parse((const char *)text, len, path, out, e);
    free(text);
    return r;
}
