/* Writing and reading the ceremony transcript (see transcript.h). */
#include "ceremony/transcript.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keystore/auditkey.h"
#include "util/encoding.h"
#include "util/file.h"
#include "util/json.h"

static json_t *hex(const uint8_t *b, size_t n)
{
    char buf[2 * 64 + 1];
    hs_hex_encode(b, n, buf);
    return json_string(buf);
}

static json_t *file_json(const hs_transcript_file *f)
{
    return json_pack("{s:s, s:o}", "file", f->path, "sha256", hex(f->sha256, 32));
}

static json_t *recipients_json(const hs_ceremony_recipients *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n; i++)
        json_array_append_new(a, json_string(r->r[i]));
    return a;
}

static json_t *build(const hs_transcript *t)
{
    json_t *tokens = json_array(), *holders = json_array(), *creds = json_array();
    for (int i = 0; i < 2; i++)
        json_array_append_new(tokens, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "role",
                                                t->tokens[i].role, "label", t->tokens[i].label,
                                                "serial", t->tokens[i].serial, "model",
                                                t->tokens[i].model, "manufacturer",
                                                t->tokens[i].manufacturer, "firmware",
                                                t->tokens[i].firmware, "hardware",
                                                t->tokens[i].hardware));
    for (size_t i = 0; i < t->n_holders; i++) {
        const hs_transcript_holder *th = &t->holders[i];
        json_t *h = file_json(&th->file);
        json_object_set_new(h, "name", json_string(th->name));
        json_object_set_new(h, "recipient", json_string(th->recipient));
        json_object_set_new(h, "x", json_integer(th->x));
        json_object_set_new(h, "commitment_salt", hex(th->salt, HS_TRANSCRIPT_SALT_LEN));
        json_object_set_new(h, "commitment", hex(th->commitment, 32));
        json_array_append_new(holders, h);
    }
    for (int i = 0; i < HS_TRANSCRIPT_CREDENTIALS; i++) {
        const hs_transcript_credential *c = &t->credentials[i];
        json_t *o = json_pack("{s:s, s:s, s:s}", "token", c->token, "credential", c->credential,
                              "role", hs_ceremony_role_name(c->role));
        json_object_update_new(o, file_json(&c->file));
        json_array_append_new(creds, o);
    }
    json_t *roles = json_object();
    for (int i = 0; i < HS_ROLE_COUNT; i++)
        json_object_set_new(roles, hs_ceremony_role_name((hs_ceremony_role)i),
                            recipients_json(&t->roles[i]));
    json_t *audit = json_pack("{s:s, s:s, s:s, s:s, s:o}", "token", "primary", "label",
                              t->audit_label, "algorithm", t->audit_alg, "public_key_pem",
                              t->audit_pem != NULL ? t->audit_pem : "", "spki_sha256",
                              hex(t->audit_fingerprint, 32));
    json_object_update_new(audit, file_json(&t->audit_pem_file));
    json_t *libs = json_array();
    for (size_t i = 0; i < t->n_libs; i++)
        json_array_append_new(libs, file_json(&t->libs[i]));
    json_t *o = json_pack(
        "{s:s, s:i, s:s, s:s, s:{s:s, s:s, s:o, s:o, s:o}, s:o, s:{s:s, s:s, s:o, s:s}, "
        "s:{s:o, s:i, s:i, s:o}, s:o, s:b, s:o, s:o, s:b}",
        "format", HS_TRANSCRIPT_FORMAT, "version", HS_TRANSCRIPT_VERSION, "ceremony", t->name,
        "date", t->date, "tool", "name", "hsmsign", "version", t->tool_version, "sha256",
        hex(t->tool_sha256, 32), "libraries", libs, "pkcs11_module", file_json(&t->module),
        "tokens", tokens, "wrap_key", "label", t->wrap_label,
        "algorithm", "aes-256", "check_value", hex(t->kcv, HS_SHARE_KCV_LEN), "profile",
        t->profile[0] ? t->profile : "wrapped", "shares", "set_id",
        hex(t->set_id, HS_SHARE_SET_ID_LEN), "threshold", (int)t->threshold, "count",
        (int)t->n_holders, "holders", holders, "roles", roles, "holders_may_hold_roles",
        t->holders_may_hold_roles, "credentials", creds, "audit_key", audit, "memory_locked",
        t->memory_locked);
    if (o != NULL && t->module_init_args[0] != '\0')
        json_object_set_new(json_object_get(o, "tool"), "pkcs11_module_init_args",
                            json_string(t->module_init_args));
    if (o != NULL && t->wrap_canary_len > 0) {
        char *c = hs_base64_encode(t->wrap_canary, t->wrap_canary_len);
        if (c == NULL || json_object_set_new(json_object_get(o, "wrap_key"), "canary",
                                             json_string(c)) != 0) {
            json_decref(o);
            o = NULL;
        }
        free(c);
    }
    return o;
}

hs_result hs_transcript_to_json(const hs_transcript *t, char **out, hs_error *e)
{
    json_t *o = build(t);
    char *s = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    *out = NULL;
    if (s == NULL)
        return hs_fail(e, HS_E_NOMEM, "cannot build the transcript");
    size_t n = strlen(s);
    *out = malloc(n + 2);
    if (*out != NULL) {
        memcpy(*out, s, n);
        memcpy(*out + n, "\n", 2);
    }
    free(s);
    return *out != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
}

/* A growing text buffer for the printable transcript. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
    bool failed;
} text_buf;

static void add(text_buf *b, const char *fmt, ...) HS_PRINTF(2, 3);
static void add(text_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (b->failed)
            return;
        va_start(ap, fmt);
        int n = vsnprintf(b->s != NULL ? b->s + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 256;
        char *s = realloc(b->s, cap);
        if (s == NULL) {
            b->failed = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static const char *hexs(const uint8_t *b, size_t n, char *buf)
{
    hs_hex_encode(b, n, buf);
    return buf;
}

hs_result hs_transcript_to_text(const hs_transcript *t, char **out, hs_error *e)
{
    text_buf b = {NULL, 0, 0, false};
    char h[129];
    add(&b, "HSMSIGN PROVISIONING CEREMONY TRANSCRIPT (format %s v%d)\n\n", HS_TRANSCRIPT_FORMAT,
        HS_TRANSCRIPT_VERSION);
    add(&b, "Ceremony:        %s\nDate (UTC):      %s\n", t->name, t->date);
    add(&b, "Tool:            hsmsign %s\nTool SHA-256:    %s\n", t->tool_version,
        hexs(t->tool_sha256, 32, h));
    add(&b, "PKCS#11 module:  %s\n  sha256 %s\nShared libraries loaded:\n", t->module.path,
        hexs(t->module.sha256, 32, h));
    for (size_t i = 0; i < t->n_libs; i++)
        add(&b, "  %s\n    sha256 %s\n", t->libs[i].path, hexs(t->libs[i].sha256, 32, h));
    if (t->module_init_args[0] != '\0')
        add(&b, "PKCS#11 module configuration (C_Initialize pReserved): %s\n",
            t->module_init_args);
    add(&b, "Secrets in locked memory: %s\n\n", t->memory_locked ? "yes" : "NO (mlock failed)");
    add(&b, "TOKENS\n");
    for (int i = 0; i < 2; i++)
        add(&b, "  %-8s label '%s', serial %s, model %s, manufacturer %s, firmware %s, "
                "hardware %s\n",
            t->tokens[i].role, t->tokens[i].label, t->tokens[i].serial, t->tokens[i].model,
            t->tokens[i].manufacturer, t->tokens[i].firmware, t->tokens[i].hardware);
    add(&b, "\nWRAP KEY (profile %s)\n  label %s, AES-256, check value (KCV) %s\n",
        t->profile[0] ? t->profile : "wrapped", t->wrap_label,
        hexs(t->kcv, HS_SHARE_KCV_LEN, h));
    if (t->wrap_canary_len > 0) {
        uint8_t d[32];
        SHA256(t->wrap_canary, t->wrap_canary_len, d);
        add(&b, "  canary (RFC 5649 of hsmsign's public test key) sha256 %s\n",
            hexs(d, 32, h));
    }
    add(&b, "\n");
    add(&b, "SHARES: %u of %zu needed to restore, share set %s\n", t->threshold, t->n_holders,
        hexs(t->set_id, HS_SHARE_SET_ID_LEN, h));
    for (size_t i = 0; i < t->n_holders; i++) {
        add(&b, "  %-20s %s\n    recipient %s\n    sha256    %s\n", t->holders[i].name,
            t->holders[i].file.path, t->holders[i].recipient,
            hexs(t->holders[i].file.sha256, 32, h));
        add(&b, "    x %u, commitment %s\n", t->holders[i].x,
            hexs(t->holders[i].commitment, 32, h));
    }
    add(&b, "\nROLE RECIPIENTS (share holders %s hold a role)\n",
        t->holders_may_hold_roles ? "MAY, as the configuration says," : "do not");
    for (int r = 0; r < HS_ROLE_COUNT; r++)
        for (size_t i = 0; i < t->roles[r].n; i++)
            add(&b, "  %-9s %s\n", hs_ceremony_role_name((hs_ceremony_role)r), t->roles[r].r[i]);
    add(&b, "\nCREDENTIALS (age-encrypted to the role's recipients)\n");
    for (int i = 0; i < HS_TRANSCRIPT_CREDENTIALS; i++) {
        const hs_transcript_credential *c = &t->credentials[i];
        add(&b, "  %s %s for %s: %s\n    sha256 %s\n", c->token, c->credential,
            hs_ceremony_role_name(c->role), c->file.path, hexs(c->file.sha256, 32, h));
    }
    add(&b, "\nAUDIT KEY (in the primary token, label %s, %s)\n", t->audit_label, t->audit_alg);
    add(&b, "  SubjectPublicKeyInfo SHA-256 %s\n  file %s\n%s", hexs(t->audit_fingerprint, 32, h),
        t->audit_pem_file.path, t->audit_pem != NULL ? t->audit_pem : "");
    add(&b, "\nSignatures of those present (name, role, date, signature):\n\n"
            "  ______________________________________________________________\n\n"
            "  ______________________________________________________________\n\n"
            "  ______________________________________________________________\n");
    if (b.failed) {
        free(b.s);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    *out = b.s;
    return HS_OK;
}

/* --- reading ------------------------------------------------------------ */

static hs_result bad(hs_error *e, const char *src, const char *what)
{
    return hs_fail(e, HS_E_FORMAT, "transcript %s: %s", src, what);
}

static bool copy_str(json_t *v, char *dst, size_t cap)
{
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return false;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static bool get_hex(json_t *v, uint8_t *dst, size_t n)
{
    return json_is_string(v) && json_string_length(v) == 2 * n &&
           hs_hex_decode(json_string_value(v), dst, n);
}

static bool parse_file(json_t *o, hs_transcript_file *f)
{
    return copy_str(json_object_get(o, "file"), f->path, sizeof f->path) &&
           get_hex(json_object_get(o, "sha256"), f->sha256, 32);
}

static hs_result parse_tokens(json_t *a, hs_transcript *t, const char *src, hs_error *e)
{
    if (!json_is_array(a) || json_array_size(a) != 2)
        return bad(e, src, "'tokens' must list the primary and the backup token");
    for (size_t i = 0; i < 2; i++) {
        json_t *o = json_array_get(a, i);
        hs_transcript_token *d = &t->tokens[i];
        json_t *role, *label, *serial, *model, *manuf, *fw, *hw;
        if (t->version >= 2 &&
            (json_unpack(o, "{s:o, s:o}", "firmware", &fw, "hardware", &hw) != 0 ||
             !copy_str(fw, d->firmware, sizeof d->firmware) ||
             !copy_str(hw, d->hardware, sizeof d->hardware)))
            return bad(e, src, "malformed firmware or hardware version in 'tokens'");
        if (json_unpack(o, t->version >= 2 ? "{s:o, s:o, s:o, s:o, s:o, s?o, s?o !}"
                                           : "{s:o, s:o, s:o, s:o, s:o !}",
                        "role", &role, "label", &label, "serial", &serial, "model", &model,
                        "manufacturer", &manuf, "firmware", &fw, "hardware", &hw) != 0 ||
            !copy_str(role, d->role, sizeof d->role) || !copy_str(label, d->label, sizeof d->label) ||
            !copy_str(serial, d->serial, sizeof d->serial) ||
            !copy_str(model, d->model, sizeof d->model) ||
            !copy_str(manuf, d->manufacturer, sizeof d->manufacturer))
            return bad(e, src, "malformed entry in 'tokens'");
    }
    return HS_OK;
}

static hs_result parse_shares(json_t *o, hs_transcript *t, const char *src, hs_error *e)
{
    json_t *set_id, *holders;
    int k, n;
    if (json_unpack(o, "{s:o, s:i, s:i, s:o !}", "set_id", &set_id, "threshold", &k, "count", &n,
                    "holders", &holders) != 0 ||
        !get_hex(set_id, t->set_id, HS_SHARE_SET_ID_LEN) || !json_is_array(holders) || k < 2 ||
        n < k || n > (int)HS_SHARE_MAX_SHARES || json_array_size(holders) != (size_t)n)
        return bad(e, src, "malformed 'shares'");
    t->threshold = (unsigned)k;
    t->n_holders = (size_t)n;
    for (size_t i = 0; i < t->n_holders; i++) {
        json_t *h = json_array_get(holders, i), *name, *rcpt, *file, *sha, *salt, *cm;
        hs_transcript_holder *d = &t->holders[i];
        int x = 0;
        if (t->version >= 2 &&
            (json_unpack(h, "{s:i, s:o, s:o}", "x", &x, "commitment_salt", &salt, "commitment",
                         &cm) != 0 ||
             x < 1 || x > 255 || !get_hex(salt, d->salt, HS_TRANSCRIPT_SALT_LEN) ||
             !get_hex(cm, d->commitment, 32)))
            return bad(e, src, "malformed share commitment in 'shares.holders'");
        d->x = (uint8_t)x;
        if (json_unpack(h, t->version >= 2 ? "{s:o, s:o, s:o, s:o, s?i, s?o, s?o !}"
                                           : "{s:o, s:o, s:o, s:o !}",
                        "name", &name, "recipient", &rcpt, "file", &file, "sha256", &sha, "x",
                        &x, "commitment_salt", &salt, "commitment", &cm) != 0 ||
            !copy_str(name, d->name, sizeof d->name) ||
            !copy_str(rcpt, d->recipient, sizeof d->recipient) || !parse_file(h, &d->file))
            return bad(e, src, "malformed entry in 'shares.holders'");
    }
    return HS_OK;
}

static hs_result parse_roles(json_t *o, hs_transcript *t, const char *src, hs_error *e)
{
    if (!json_is_object(o) || json_object_size(o) != HS_ROLE_COUNT)
        return bad(e, src, "'roles' must have admin, operator and auditor");
    for (int r = 0; r < HS_ROLE_COUNT; r++) {
        json_t *a = json_object_get(o, hs_ceremony_role_name((hs_ceremony_role)r));
        if (!json_is_array(a) || json_array_size(a) > HS_CEREMONY_ROLE_MAX)
            return bad(e, src, "malformed 'roles'");
        t->roles[r].n = json_array_size(a);
        for (size_t i = 0; i < t->roles[r].n; i++)
            if (!copy_str(json_array_get(a, i), t->roles[r].r[i], sizeof t->roles[r].r[i]))
                return bad(e, src, "malformed recipient in 'roles'");
    }
    return HS_OK;
}

static hs_result parse_credentials(json_t *a, hs_transcript *t, const char *src, hs_error *e)
{
    if (!json_is_array(a) || json_array_size(a) != HS_TRANSCRIPT_CREDENTIALS)
        return bad(e, src, "'credentials' must list four PIN files");
    for (size_t i = 0; i < HS_TRANSCRIPT_CREDENTIALS; i++) {
        json_t *o = json_array_get(a, i), *tok, *cred, *role, *file, *sha;
        hs_transcript_credential *d = &t->credentials[i];
        char role_name[16];
        if (json_unpack(o, "{s:o, s:o, s:o, s:o, s:o !}", "token", &tok, "credential", &cred,
                        "role", &role, "file", &file, "sha256", &sha) != 0 ||
            !copy_str(tok, d->token, sizeof d->token) ||
            !copy_str(cred, d->credential, sizeof d->credential) ||
            !copy_str(role, role_name, sizeof role_name) || !parse_file(o, &d->file))
            return bad(e, src, "malformed entry in 'credentials'");
        d->role = strcmp(role_name, "admin") == 0 ? HS_ROLE_ADMIN : HS_ROLE_OPERATOR;
    }
    return HS_OK;
}

static hs_result parse_audit(json_t *o, hs_transcript *t, const char *src, hs_error *e)
{
    json_t *tok, *label, *alg, *pem, *fp, *file, *sha;
    if (json_unpack(o, "{s:o, s:o, s:o, s:o, s:o, s:o, s:o !}", "token", &tok, "label", &label,
                    "algorithm", &alg, "public_key_pem", &pem, "spki_sha256", &fp, "file", &file,
                    "sha256", &sha) != 0 ||
        !copy_str(label, t->audit_label, sizeof t->audit_label) ||
        !copy_str(alg, t->audit_alg, sizeof t->audit_alg) || !json_is_string(pem) ||
        !get_hex(fp, t->audit_fingerprint, 32) || !parse_file(o, &t->audit_pem_file))
        return bad(e, src, "malformed 'audit_key'");
    t->audit_pem = strdup(json_string_value(pem));
    return t->audit_pem != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
}

/* An aborted ceremony's record stands where its transcript would: any
 * share of its set is void, and reading it says so instead of failing on
 * a missing field. */
static hs_result aborted(json_t *root, const char *src, hs_error *e)
{
    const char *name = "?", *set = "?", *failed = "?";
    (void)json_unpack(root, "{s?s, s?s, s?s}", "ceremony", &name, "share_set", &set,
                      "failed_at", &failed);
    return hs_fail(e, HS_E_VERIFY,
                   "%s: ceremony '%s' was ABORTED (%s): its share set %s is void and its shares "
                   "must not be used; reset both tokens and run a new ceremony "
                   "(docs/ceremony.md, \"If a ceremony fails\")",
                   src, name, failed, set);
}

hs_result hs_transcript_aborted_json(const hs_transcript *t, const char *const *done,
                                     size_t n_done, const char *failed_at, const char *error,
                                     char **out, hs_error *e)
{
    json_t *steps = json_array();
    for (size_t i = 0; i < n_done; i++)
        json_array_append_new(steps, json_string(done[i]));
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:s, s:s, s:s}", "format",
                          HS_ABORTED_FORMAT, "version", 1, "ceremony", t->name, "date", t->date,
                          "share_set", hex(t->set_id, HS_SHARE_SET_ID_LEN), "done", steps,
                          "failed_at", failed_at, "error", error, "recovery",
                          "the share set is void: destroy its shares; reset both tokens "
                          "(--force-reset on SoftHSM, the vendor's tool on hardware) and run a "
                          "new ceremony into a new directory and a new audit log");
    char *str = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    *out = NULL;
    if (str == NULL)
        return hs_fail(e, HS_E_NOMEM, "cannot build the aborted-ceremony record");
    size_t n = strlen(str);
    *out = malloc(n + 2);
    if (*out != NULL) {
        memcpy(*out, str, n);
        memcpy(*out + n, "\n", 2);
    }
    free(str);
    return *out != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
}

static bool get_canary(json_t *v, hs_transcript *t)
{
    uint8_t *b;
    size_t n;
    if (!json_is_string(v) || !hs_base64_decode(json_string_value(v), &b, &n))
        return false;
    bool ok = n >= 16 && n <= sizeof t->wrap_canary;
    if (ok) {
        memcpy(t->wrap_canary, b, n);
        t->wrap_canary_len = n;
    }
    free(b);
    return ok;
}

/* v2: the libraries and module in 'tool'. */
static hs_result parse_tool_files(json_t *tool, hs_transcript *t, const char *src, hs_error *e)
{
    json_t *libs = json_object_get(tool, "libraries");
    if (!json_is_array(libs) || json_array_size(libs) > HS_TRANSCRIPT_LIBS_MAX ||
        !parse_file(json_object_get(tool, "pkcs11_module"), &t->module))
        return bad(e, src, "malformed 'tool.libraries' or 'tool.pkcs11_module'");
    t->n_libs = json_array_size(libs);
    for (size_t i = 0; i < t->n_libs; i++)
        if (!parse_file(json_array_get(libs, i), &t->libs[i]))
            return bad(e, src, "malformed entry in 'tool.libraries'");
    return HS_OK;
}

static hs_result parse_root(json_t *root, hs_transcript *t, const char *src, hs_error *e)
{
    const char *format;
    int version;
    json_t *name, *date, *tool, *tokens, *wrap, *shares, *roles, *creds, *audit;
    if (json_unpack(root, "{s:s, s:i}", "format", &format, "version", &version) != 0)
        return bad(e, src, "not an hsmsign ceremony transcript");
    if (strcmp(format, HS_ABORTED_FORMAT) == 0)
        return aborted(root, src, e);
    if (strcmp(format, HS_TRANSCRIPT_FORMAT) != 0)
        return bad(e, src, "not an hsmsign ceremony transcript");
    if (version != 1 && version != HS_TRANSCRIPT_VERSION)
        return hs_fail(e, HS_E_FORMAT,
                       "transcript %s: unsupported version %d (this tool reads 1 and %d)", src,
                       version, HS_TRANSCRIPT_VERSION);
    t->version = (unsigned)version;
    int may = 0, locked = 0;
    if (version >= 2 &&
        json_unpack(root, "{s:b, s:b}", "holders_may_hold_roles", &may, "memory_locked",
                    &locked) != 0)
        return bad(e, src, "missing 'holders_may_hold_roles' or 'memory_locked'");
    t->holders_may_hold_roles = may != 0;
    t->memory_locked = locked != 0;
    if (json_unpack(root,
                    version >= 2 ? "{s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, "
                                   "s:b !}"
                                 : "{s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o !}",
                    "format", &format, "version", &version, "ceremony", &name, "date", &date,
                    "tool", &tool, "tokens", &tokens, "wrap_key", &wrap, "shares", &shares,
                    "roles", &roles, "credentials", &creds, "audit_key", &audit,
                    "holders_may_hold_roles", &may, "memory_locked", &locked) != 0)
        return bad(e, src, "missing or unknown top-level field");
    json_t *tname, *tver, *tsha, *tlibs, *tmod, *wlabel, *walg, *wkcv, *tinit = NULL,
           *wcanary = NULL, *wprofile = NULL;
    if (!copy_str(name, t->name, sizeof t->name) || !copy_str(date, t->date, sizeof t->date) ||
        json_unpack(tool, version >= 2 ? "{s:o, s:o, s:o, s:o, s:o, s?o !}" : "{s:o, s:o, s:o !}",
                    "name", &tname, "version", &tver, "sha256", &tsha, "libraries", &tlibs,
                    "pkcs11_module", &tmod, "pkcs11_module_init_args", &tinit) != 0 ||
        (tinit != NULL && !copy_str(tinit, t->module_init_args, sizeof t->module_init_args)) ||
        !copy_str(tver, t->tool_version, sizeof t->tool_version) ||
        !get_hex(tsha, t->tool_sha256, 32) ||
        json_unpack(wrap, version >= 2 ? "{s:o, s:o, s:o, s?o, s?o !}" : "{s:o, s:o, s:o !}",
                    "label", &wlabel, "algorithm", &walg, "check_value", &wkcv, "canary",
                    &wcanary, "profile", &wprofile) != 0 ||
        (wcanary != NULL && !get_canary(wcanary, t)) ||
        (wprofile != NULL && !copy_str(wprofile, t->profile, sizeof t->profile)) ||
        !copy_str(wlabel, t->wrap_label, sizeof t->wrap_label) ||
        !get_hex(wkcv, t->kcv, HS_SHARE_KCV_LEN))
        return bad(e, src, "malformed 'ceremony', 'date', 'tool' or 'wrap_key'");
    hs_result r = version >= 2 ? parse_tool_files(tool, t, src, e) : HS_OK;
    if (r == HS_OK)
        r = parse_tokens(tokens, t, src, e);
    if (r == HS_OK)
        r = parse_shares(shares, t, src, e);
    if (r == HS_OK)
        r = parse_roles(roles, t, src, e);
    if (r == HS_OK)
        r = parse_credentials(creds, t, src, e);
    if (r == HS_OK)
        r = parse_audit(audit, t, src, e);
    return r;
}

static hs_result read_root(json_t *root, void *t, const char *src, hs_error *e)
{
    return parse_root(root, t, src, e);
}

static void release(void *t)
{
    hs_transcript_free(t);
}

hs_result hs_transcript_parse(const char *text, size_t len, const char *source,
                              hs_transcript **out, hs_error *e)
{
    const char *src = source != NULL ? source : "(input)";
    char what[sizeof "transcript " + 4096]; /* a path; hs_error truncates longer */
    snprintf(what, sizeof what, "transcript %s", src);
    void *t;
    hs_result r = hs_json_read_object(text, len, what, src, sizeof(hs_transcript), read_root,
                                      release, &t, e);
    *out = t;
    return r;
}

/* The transcript must name the pinned key too: a transcript signed by the
 * auditor's key but carrying another public key would mislead whoever
 * reads its audit_key later. */
static hs_result check_names_pinned(const hs_transcript *t, EVP_PKEY *pinned, const char *path,
                                    const char *pem_path, hs_error *e)
{
    char *pem = NULL;
    uint8_t fp[32];
    hs_result r = hs_auditkey_public_pem(pinned, &pem, fp, e);
    free(pem);
    if (r == HS_OK && !hs_ct_equal(fp, t->audit_fingerprint, 32))
        r = hs_fail(e, HS_E_VERIFY,
                    "transcript %s: its audit key is not the pinned auditor's key %s (SPKI "
                    "SHA-256 differs): it comes from another ceremony or was replaced",
                    path, pem_path);
    return r;
}

static hs_result verify_pinned(const hs_transcript *t, const char *path, const char *pem_path,
                               const uint8_t *text, size_t len, const uint8_t *sig,
                               size_t sig_len, hs_error *e)
{
    EVP_PKEY *pub = NULL;
    hs_result r = hs_auditkey_load_public(pem_path, &pub, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "--audit-key: ");
    r = hs_auditkey_verify(pub, text, len, sig, sig_len, e);
    if (r != HS_OK)
        hs_error_prefix(e, "transcript %s: signature %s.sig with the pinned key %s: ", path, path,
                        pem_path);
    if (r == HS_OK)
        r = check_names_pinned(t, pub, path, pem_path, e);
    EVP_PKEY_free(pub);
    return r;
}

static hs_result check_signature(const hs_transcript *t, const char *path, const uint8_t *text,
                                 size_t len, const hs_transcript_trust *trust, bool *checked,
                                 hs_error *e)
{
    char sig_path[4096];
    int n = snprintf(sig_path, sizeof sig_path, "%s.sig", path);
    /* A shortened name would look for the signature in another file. */
    if (n < 0 || (size_t)n >= sizeof sig_path)
        return hs_fail(e, HS_E_USAGE, "%s: path too long", path);
    bool have_sig = access(sig_path, F_OK) == 0;
    if (trust->allow_unsigned && (trust->audit_key == NULL || !have_sig))
        return HS_OK;
    if (trust->audit_key == NULL)
        return hs_fail(e, HS_E_USAGE,
                       "transcript %s: give the auditor's copy of the audit public key "
                       "(--audit-key PEM): the key inside the transcript proves nothing "
                       "(--unsigned-transcript goes on without checking)",
                       path);
    if (!have_sig)
        return hs_fail(e, HS_E_VERIFY,
                       "transcript %s: no signature %s: refusing an unsigned transcript "
                       "(--unsigned-transcript goes on without it)",
                       path, sig_path);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    hs_result r = hs_read_file(sig_path, 1024, &sig, &sig_len, e);
    if (r == HS_OK)
        r = verify_pinned(t, path, trust->audit_key, text, len, sig, sig_len, e);
    free(sig);
    *checked = r == HS_OK;
    return r;
}

hs_result hs_transcript_load(const char *path, const hs_transcript_trust *trust,
                             hs_transcript **out, bool *signature_checked, hs_error *e)
{
    *out = NULL;
    *signature_checked = false;
    uint8_t *text;
    size_t len;
    hs_result r = hs_read_file(path, HS_TRANSCRIPT_MAX, &text, &len, e);
    if (r != HS_OK)
        return r;
    r = hs_transcript_parse((const char *)text, len, path, out, e);
    if (r == HS_OK)
        r = check_signature(*out, path, text, len, trust, signature_checked, e);
    free(text);
    if (r != HS_OK) {
        hs_transcript_free(*out);
        *out = NULL;
    }
    return r;
}

void hs_transcript_free(hs_transcript *t)
{
    if (t == NULL)
        return;
    free(t->audit_pem);
    free(t);
}
