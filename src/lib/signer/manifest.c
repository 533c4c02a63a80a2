#include "signer/manifest.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/file.h"

#define MANIFEST_MAX (16 * 1024 * 1024)

void hs_batch_items_free(hs_batch_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].input);
        free(items[i].output);
        free(items[i].key);
    }
    free(items);
}

static char *resolve(const char *base_dir, const char *p)
{
    char *out = NULL;
    if (p[0] == '/' || strcmp(base_dir, ".") == 0)
        return strdup(p);
    return asprintf(&out, "%s/%s", base_dir, p) < 0 ? NULL : out;
}

static hs_result parse_item(json_t *o, size_t i, const char *path, const char *dir, hs_batch_item *it,
                            hs_error *e)
{
    if (!json_is_object(o))
        return hs_fail(e, HS_E_FORMAT, "manifest %s: entry %zu is not an object", path, i + 1);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "input") != 0 && strcmp(key, "output") != 0 && strcmp(key, "key") != 0 &&
            strcmp(key, "min_sdk") != 0)
            return hs_fail(e, HS_E_FORMAT,
                           "manifest %s: entry %zu has unknown field '%s' (known: input, output, key, min_sdk)",
                           path, i + 1, key);
    }
    const char *in = json_string_value(json_object_get(o, "input"));
    const char *out = json_string_value(json_object_get(o, "output"));
    const char *k = json_string_value(json_object_get(o, "key"));
    if (in == NULL || out == NULL || k == NULL)
        return hs_fail(e, HS_E_FORMAT, "manifest %s: entry %zu needs string fields input, output and key",
                       path, i + 1);
    json_t *sdk = json_object_get(o, "min_sdk");
    it->min_sdk = -1;
    if (sdk != NULL) {
        if (!json_is_integer(sdk) || json_integer_value(sdk) < 1 || json_integer_value(sdk) > 10000)
            return hs_fail(e, HS_E_FORMAT, "manifest %s: entry %zu: min_sdk must be an API level",
                           path, i + 1);
        it->min_sdk = (int)json_integer_value(sdk);
    }
    it->input = resolve(dir, in);
    it->output = resolve(dir, out);
    it->key = strdup(k);
    if (it->input == NULL || it->output == NULL || it->key == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    return HS_OK;
}

hs_result hs_batch_manifest_load(const char *path, hs_batch_item **items, size_t *n, hs_error *e)
{
    *items = NULL;
    *n = 0;
    uint8_t *text;
    size_t len;
    hs_result r = hs_read_file(path, MANIFEST_MAX, &text, &len, e);
    if (r != HS_OK)
        return r;
    json_error_t je;
    json_t *root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (root == NULL)
        return hs_fail(e, HS_E_FORMAT, "manifest %s: not valid JSON (line %d: %s)", path, je.line, je.text);
    json_t *list = root;
    if (json_is_object(root)) {
        json_t *v = json_object_get(root, "version");
        list = json_object_get(root, "apks");
        if (!json_is_integer(v) || json_integer_value(v) != 1 || json_object_size(root) != 2) {
            json_decref(root);
            return hs_fail(e, HS_E_FORMAT,
                           "manifest %s: expected a list, or {\"version\": 1, \"apks\": [...]}", path);
        }
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        json_decref(root);
        return hs_fail(e, HS_E_FORMAT, "manifest %s: no entries", path);
    }
    char *copy = strdup(path);
    const char *dir = copy != NULL ? dirname(copy) : ".";
    size_t count = json_array_size(list);
    hs_batch_item *out = calloc(count, sizeof *out);
    r = out != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t i = 0; i < count && r == HS_OK; i++)
        r = parse_item(json_array_get(list, i), i, path, dir, &out[i], e);
    for (size_t i = 0; i < count && r == HS_OK; i++)
        for (size_t j = i + 1; j < count && r == HS_OK; j++)
            if (strcmp(out[i].output, out[j].output) == 0)
                r = hs_fail(e, HS_E_FORMAT, "manifest %s: entries %zu and %zu write the same output %s",
                            path, i + 1, j + 1, out[i].output);
    free(copy);
    json_decref(root);
    if (r != HS_OK) {
        hs_batch_items_free(out, count);
        return r;
    }
    *items = out;
    *n = count;
    return HS_OK;
}
