#include "signer/manifest.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/file.h"
#include "util/outpath.h"

#define MANIFEST_MAX (16 * 1024 * 1024)

void hs_batch_items_free(hs_batch_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].input);
        free(items[i].output);
        free(items[i].key);
        free(items[i].lineage);
        free(items[i].old_key);
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

/* lineage (a path, relative to the manifest) and old_key: key rotation. */
static hs_result optional_strings(json_t *o, size_t i, const char *path, const char *dir,
                                  hs_batch_item *it, hs_error *e)
{
    json_t *lin = json_object_get(o, "lineage"), *old = json_object_get(o, "old_key");
    if ((lin != NULL && !json_is_string(lin)) || (old != NULL && !json_is_string(old)))
        return hs_fail(e, HS_E_FORMAT, "manifest %s: entry %zu: lineage and old_key are strings",
                       path, i + 1);
    if (old != NULL && lin == NULL)
        return hs_fail(e, HS_E_FORMAT, "manifest %s: entry %zu: old_key needs a lineage", path,
                       i + 1);
    if (lin != NULL && (it->lineage = resolve(dir, json_string_value(lin))) == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    if (old != NULL && (it->old_key = strdup(json_string_value(old))) == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    return HS_OK;
}

/* rotation_min_sdk: an API level or "apksigner31" (0), only with a lineage. */
static hs_result rotation_min_sdk(json_t *o, size_t i, const char *path, hs_batch_item *it,
                                  hs_error *e)
{
    json_t *v = json_object_get(o, "rotation_min_sdk");
    it->rotation_min_sdk = -1;
    if (v == NULL)
        return HS_OK;
    if (it->lineage == NULL)
        return hs_fail(e, HS_E_FORMAT, "manifest %s: entry %zu: rotation_min_sdk needs a lineage",
                       path, i + 1);
    if (json_is_string(v) && strcmp(json_string_value(v), "apksigner31") == 0)
        it->rotation_min_sdk = 0;
    else if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 10000)
        it->rotation_min_sdk = (int)json_integer_value(v);
    else
        return hs_fail(e, HS_E_FORMAT, "manifest %s: entry %zu: rotation_min_sdk must be an API "
                       "level or \"apksigner31\"", path, i + 1);
    return HS_OK;
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
            strcmp(key, "min_sdk") != 0 && strcmp(key, "lineage") != 0 &&
            strcmp(key, "old_key") != 0 && strcmp(key, "rotation_min_sdk") != 0)
            return hs_fail(e, HS_E_FORMAT,
                           "manifest %s: entry %zu has unknown field '%s' (known: input, output, "
                           "key, min_sdk, lineage, old_key, rotation_min_sdk)",
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
    hs_result r = optional_strings(o, i, path, dir, it, e);
    if (r == HS_OK)
        r = rotation_min_sdk(o, i, path, it, e);
    if (r != HS_OK)
        return r;
    it->input = resolve(dir, in);
    it->output = resolve(dir, out);
    it->key = strdup(k);
    if (it->input == NULL || it->output == NULL || it->key == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    return HS_OK;
}

/* A manifest path as the file system sees it: resolved (util/outpath.h),
 * and its device+inode when it exists, so `a`, `./a`, `sub/../a`, a
 * symlink to a and a hard link of a are all one file. */
typedef struct file_id {
    char *resolved;
    bool exists;
    dev_t dev;
    ino_t ino;
} file_id;

static hs_result identify(const char *p, file_id *id, hs_error *e)
{
    struct stat st;
    hs_result r = hs_path_resolve(p, &id->resolved, e);
    id->exists = r == HS_OK && stat(id->resolved, &st) == 0;
    if (id->exists) {
        id->dev = st.st_dev;
        id->ino = st.st_ino;
    }
    return r;
}

static bool same_id(const file_id *a, const file_id *b)
{
    return strcmp(a->resolved, b->resolved) == 0 ||
           (a->exists && b->exists && a->dev == b->dev && a->ino == b->ino);
}

/* Two entries writing one file, or an entry writing a file some entry
 * reads, are refused before anything is signed: the second write would
 * silently replace the first, and an input is never changed. */
static hs_result check_collisions(const char *path, const hs_batch_item *items, size_t n,
                                  hs_error *e)
{
    file_id *in = calloc(n, sizeof *in), *out = calloc(n, sizeof *out);
    hs_result r = in != NULL && out != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n && r == HS_OK; i++) {
        r = identify(items[i].input, &in[i], e);
        if (r == HS_OK)
            r = identify(items[i].output, &out[i], e);
        if (r != HS_OK)
            hs_error_prefix(e, "manifest %s: entry %zu: ", path, i + 1);
    }
    for (size_t i = 0; i < n && r == HS_OK; i++) {
        for (size_t j = i + 1; j < n && r == HS_OK; j++)
            if (same_id(&out[i], &out[j]))
                r = hs_fail(e, HS_E_FORMAT,
                            "manifest %s: entries %zu and %zu write the same output (%s and %s "
                            "are both %s)",
                            path, i + 1, j + 1, items[i].output, items[j].output,
                            out[i].resolved);
        for (size_t j = 0; j < n && r == HS_OK; j++)
            if (same_id(&out[i], &in[j]))
                r = hs_fail(e, HS_E_FORMAT,
                            "manifest %s: the output %s of entry %zu is the input %s of entry "
                            "%zu; an input is never overwritten",
                            path, items[i].output, i + 1, items[j].input, j + 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (in != NULL)
            free(in[i].resolved);
        if (out != NULL)
            free(out[i].resolved);
    }
    free(in);
    free(out);
    return r;
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
    if (r == HS_OK)
        r = check_collisions(path, out, count, e);
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
