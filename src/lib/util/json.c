/* Strict JSON readers (see json.h). */
#include "util/json.h"

#include <stdlib.h>
#include <string.h>

hs_result hs_json_load_strict(const char *text, size_t len, const char *what, json_t **root,
                              hs_error *e)
{
    json_error_t je;
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (*root == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: line %d: %s", what, je.line, je.text);
    return HS_OK;
}

hs_result hs_json_read_object(const char *text, size_t len, const char *what, const char *src,
                              size_t size, hs_json_reader read, void (*release)(void *),
                              void **out, hs_error *e)
{
    *out = NULL;
    json_t *root;
    hs_result r = hs_json_load_strict(text, len, what, &root, e);
    if (r != HS_OK)
        return r;
    void *obj = calloc(1, size);
    r = obj == NULL ? hs_fail(e, HS_E_NOMEM, "out of memory") : read(root, obj, src, e);
    json_decref(root);
    if (r != HS_OK) {
        release(obj);
        return r;
    }
    *out = obj;
    return HS_OK;
}

hs_result hs_json_check_fields(json_t *obj, const char *const *names, size_t n_required, size_t n,
                               const char *what, const char *where, hs_error *e)
{
    for (size_t i = 0; i < n_required; i++)
        if (json_object_get(obj, names[i]) == NULL)
            return hs_fail(e, HS_E_FORMAT, "%s: field '%s%s' is missing", what, where, names[i]);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(key, names[i]) == 0;
        if (!known)
            return hs_fail(e, HS_E_FORMAT, "%s: unknown field '%s%s'", what, where, key);
    }
    return HS_OK;
}

hs_result hs_json_get_string(json_t *obj, const char *key, bool required, char *dst, size_t cap,
                             const char *what, const char *where, hs_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (required)
            return hs_fail(e, HS_E_FORMAT, "%s: missing field '%s%s'", what, where, key);
        return HS_OK;
    }
    if (!json_is_string(v))
        return hs_fail(e, HS_E_FORMAT, "%s: field '%s%s' must be a string", what, where, key);
    size_t len = json_string_length(v);
    if (len == 0 || len >= cap || strlen(json_string_value(v)) != len)
        return hs_fail(e, HS_E_FORMAT, "%s: field '%s%s' must be 1 to %zu bytes without NUL",
                       what, where, key, cap - 1);
    memcpy(dst, json_string_value(v), len + 1);
    return HS_OK;
}
