/* `audit policy` (see policy.h). */
#include "audit/policy.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/log.h"
#include "util/file.h"

#define MAX_POLICY (1u << 20)

static hs_result add_violation(hs_policy_report *rep, hs_error *e, const char *fmt, ...)
    HS_PRINTF(3, 4);

static hs_result add_violation(hs_policy_report *rep, hs_error *e, const char *fmt, ...)
{
    char **more = realloc(rep->messages, (rep->violations + 1) * sizeof *more);
    if (more == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    rep->messages = more;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&more[rep->violations], fmt, ap);
    va_end(ap);
    if (n < 0)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    rep->violations++;
    return HS_OK;
}

/* Checks the policy's shape once, so the rules below can trust it. */
static hs_result load_policy(const char *path, json_t **keys, json_t **root, hs_error *e)
{
    json_error_t jerr;
    *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (*root == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: not valid JSON (line %d: %s)", path, jerr.line,
                       jerr.text);
    json_t *v = json_object_get(*root, "version");
    *keys = json_object_get(*root, "keys");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return hs_fail(e, HS_E_FORMAT, "%s: unknown policy version (expected \"version\": 1)", path);
    if (!json_is_object(*keys))
        return hs_fail(e, HS_E_FORMAT, "%s: \"keys\" must be an object of key names", path);
    const char *name;
    json_t *rule;
    json_object_foreach(*keys, name, rule) {
        json_t *arts = json_object_get(rule, "artifacts"), *per = json_object_get(rule, "per_release");
        bool ok = json_is_object(rule) && json_is_array(arts) &&
                  (per == NULL || (json_is_integer(per) && json_integer_value(per) >= 0));
        for (size_t i = 0; ok && i < json_array_size(arts); i++)
            ok = json_is_string(json_array_get(arts, i));
        if (!ok)
            return hs_fail(e, HS_E_FORMAT, "%s: key '%s': expected {\"artifacts\": [patterns], "
                                           "\"per_release\": N (optional)}", path, name);
    }
    return HS_OK;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static bool allowed(json_t *rule, const char *artifact)
{
    json_t *arts = json_object_get(rule, "artifacts");
    for (size_t i = 0; i < json_array_size(arts); i++)
        if (fnmatch(json_string_value(json_array_get(arts, i)), base_name(artifact), 0) == 0)
            return true;
    return false;
}

/* counts[batch][key] = set of artifacts (a JSON object used as a set:
 * v2 and v3 signatures of one APK are one artifact). */
static hs_result check_entry(json_t *keys, json_t *o, json_t *counts, hs_policy_report *rep,
                             hs_error *e)
{
    const char *key = json_string_value(json_object_get(o, "key"));
    const char *artifact = json_string_value(json_object_get(o, "artifact"));
    const char *batch = json_string_value(json_object_get(o, "batch"));
    json_int_t seq = json_integer_value(json_object_get(o, "seq"));
    rep->signatures++;
    json_t *rule = json_object_get(keys, key != NULL ? key : "");
    hs_result r = HS_OK;
    if (rule == NULL)
        r = add_violation(rep, e, "entry %lld: key '%s' signed %s but the policy allows it nothing",
                          (long long)seq, key ? key : "?", artifact);
    else if (!allowed(rule, artifact))
        r = add_violation(rep, e, "entry %lld: key '%s' may not sign '%s' (no pattern matches)",
                          (long long)seq, key, base_name(artifact));
    json_t *per_batch = json_object_get(counts, batch ? batch : "");
    if (per_batch == NULL) {
        per_batch = json_object();
        json_object_set_new(counts, batch ? batch : "", per_batch);
    }
    json_t *set = json_object_get(per_batch, key ? key : "");
    if (set == NULL) {
        set = json_object();
        json_object_set_new(per_batch, key ? key : "", set);
    }
    json_object_set_new(set, artifact, json_true());
    return r;
}

static hs_result check_counts(json_t *keys, json_t *counts, hs_policy_report *rep, hs_error *e)
{
    const char *batch;
    json_t *per_batch;
    hs_result r = HS_OK;
    json_object_foreach(counts, batch, per_batch) {
        rep->batches++;
        const char *name;
        json_t *rule;
        json_object_foreach(keys, name, rule) {
            json_t *per = json_object_get(rule, "per_release");
            if (per == NULL)
                continue;
            size_t got = json_object_size(json_object_get(per_batch, name));
            if ((json_int_t)got != json_integer_value(per) && r == HS_OK)
                r = add_violation(rep, e, "release %s: key '%s' signed %zu artifacts, the policy "
                                          "expects %lld", batch, name, got,
                                  (long long)json_integer_value(per));
        }
    }
    return r;
}

hs_result hs_audit_policy_check(const char *log_dir, const char *policy_path, const char *batch,
                                hs_policy_report *rep, hs_error *e)
{
    memset(rep, 0, sizeof *rep);
    json_t *root = NULL, *keys = NULL, *counts = json_object();
    hs_auditlog log;
    hs_result r = counts != NULL ? load_policy(policy_path, &keys, &root, e)
                                 : hs_fail(e, HS_E_NOMEM, "out of memory");
    bool loaded = false;
    if (r == HS_OK)
        loaded = (r = hs_auditlog_load(log_dir, &log, e)) == HS_OK;
    for (size_t i = 0; r == HS_OK && i < log.count; i++) {
        size_t len;
        const char *line = hs_auditlog_entry(&log, i, &len);
        json_t *o = json_loadb(line, len, 0, NULL);
        const char *op = json_string_value(json_object_get(o, "op"));
        const char *b = json_string_value(json_object_get(o, "batch"));
        /* Signatures of artifacts (made, or reused from the signature
         * cache: released either way); a key's self-signed certificate
         * has none. */
        if (op != NULL && (strcmp(op, "sign") == 0 || strcmp(op, "reuse") == 0) &&
            json_is_string(json_object_get(o, "artifact")) &&
            (batch == NULL || (b != NULL && strcmp(b, batch) == 0)))
            r = check_entry(keys, o, counts, rep, e);
        json_decref(o);
    }
    if (r == HS_OK)
        r = check_counts(keys, counts, rep, e);
    if (loaded)
        hs_auditlog_free(&log);
    json_decref(counts);
    json_decref(root);
    return r;
}

void hs_policy_report_free(hs_policy_report *rep)
{
    for (size_t i = 0; i < rep->violations; i++)
        free(rep->messages[i]);
    free(rep->messages);
    memset(rep, 0, sizeof *rep);
}
