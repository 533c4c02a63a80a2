#include "keystore/keystore.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

#define SUFFIX ".key"

hs_result hs_keystore_path(const char *dir, const char *name, char *out, size_t cap, hs_error *e)
{
    hs_result r = hs_key_name_check(name, e);
    if (r != HS_OK)
        return r;
    int n = snprintf(out, cap, "%s/%s" SUFFIX, dir, name);
    if (n < 0 || (size_t)n >= cap)
        return hs_fail(e, HS_E_USAGE, "key store path %s/%s is too long", dir, name);
    return HS_OK;
}

bool hs_keystore_exists(const char *dir, const char *name)
{
    char path[4096];
    return hs_keystore_path(dir, name, path, sizeof path, NULL) == HS_OK && access(path, F_OK) == 0;
}

hs_result hs_keystore_load(const char *dir, const char *name, hs_keyfile *kf, hs_error *e)
{
    char path[4096];
    hs_result r = hs_keystore_path(dir, name, path, sizeof path, e);
    if (r != HS_OK)
        return r;
    if (access(path, F_OK) != 0)
        return hs_fail(e, HS_E_NOTFOUND,
                       "unknown key '%s': %s does not exist (`hsmsign key list` shows the keys in %s)",
                       name, path, dir);
    r = hs_keyfile_load(path, kf, e);
    if (r == HS_OK && strcmp(kf->name, name) != 0) {
        hs_fail(e, HS_E_FORMAT, "key file %s is for key '%s', not '%s' (was it renamed?)", path,
                kf->name, name);
        hs_keyfile_free(kf);
        return HS_E_FORMAT;
    }
    return r;
}

hs_result hs_keystore_save(const char *dir, const hs_keyfile *kf, hs_error *e)
{
    char path[4096];
    hs_result r = hs_keystore_path(dir, kf->name, path, sizeof path, e);
    if (r == HS_OK)
        r = hs_mkdir_p(dir, 0755, e);
    if (r != HS_OK)
        return r;
    char *text;
    r = hs_keyfile_serialize(kf, &text, e);
    if (r != HS_OK)
        return r;
    r = hs_write_file_atomic(path, text, strlen(text), 0644, true, e);
    free(text);
    if (r == HS_E_EXISTS)
        return hs_fail(e, HS_E_EXISTS, "key '%s' already exists (%s); refusing to overwrite it",
                       kf->name, path);
    return r;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

hs_result hs_keystore_list(const char *dir, char ***names, size_t *n, hs_error *e)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return HS_OK; /* no key store yet: no keys */
        return hs_fail(e, HS_E_IO, "key store %s: %s", dir, strerror(errno));
    }
    size_t cap = 0;
    char **list = NULL;
    struct dirent *de;
    hs_result r = HS_OK;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= strlen(SUFFIX) || strcmp(de->d_name + len - strlen(SUFFIX), SUFFIX) != 0 ||
            de->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(list, cap * sizeof *list);
            if (grown == NULL) {
                r = hs_fail(e, HS_E_NOMEM, "out of memory");
                break;
            }
            list = grown;
        }
        list[*n] = strndup(de->d_name, len - strlen(SUFFIX));
        if (list[*n] == NULL) {
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (r != HS_OK) {
        hs_keystore_list_free(list, *n);
        *n = 0;
        return r;
    }
    if (*n > 0)
        qsort(list, *n, sizeof *list, compare_names);
    *names = list;
    return HS_OK;
}

void hs_keystore_list_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
