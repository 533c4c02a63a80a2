#include "signer/sigcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/encoding.h"
#include "util/file.h"
#include "util/privdir.h"

struct hs_sigcache {
    char *dir;
};

hs_result hs_sigcache_open(const char *dir, hs_sigcache **out, hs_error *e)
{
    *out = NULL;
    hs_result r = hs_privdir_open(dir, "signature cache", "--signature-cache", e);
    if (r != HS_OK)
        return r;
    hs_sigcache *c = calloc(1, sizeof *c);
    if (c == NULL || (c->dir = strdup(dir)) == NULL) {
        free(c);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    *out = c;
    return HS_OK;
}

void hs_sigcache_free(hs_sigcache *c)
{
    if (c == NULL)
        return;
    free(c->dir);
    free(c);
}

const char *hs_sigcache_dir(const hs_sigcache *c)
{
    return c->dir;
}

void hs_sigcache_name(const uint8_t key_sha256[32], hs_sig_alg alg, const uint8_t *digest,
                      size_t digest_len, char name[65])
{
    static const char tag[] = "hsmsign signature cache key 1";
    const char *an = hs_sig_alg_name(alg);
    /* tag NUL key alg-name NUL digest: the NULs separate the variable
     * parts, so no two requests share a name. */
    uint8_t buf[sizeof tag + 32 + 64 + HS_MAX_DIGEST_LEN], h[32];
    size_t al = strnlen(an, 63), dl = digest_len < HS_MAX_DIGEST_LEN ? digest_len : HS_MAX_DIGEST_LEN;
    size_t n = 0;
    memcpy(buf, tag, sizeof tag), n += sizeof tag;
    memcpy(buf + n, key_sha256, 32), n += 32;
    memcpy(buf + n, an, al), n += al;
    buf[n++] = '\0';
    memcpy(buf + n, digest, dl), n += dl;
    SHA256(buf, n, h);
    hs_hex_encode(h, 32, name);
}

static hs_result entry_path(const hs_sigcache *c, const uint8_t key_sha256[32], hs_sig_alg alg,
                            const uint8_t *digest, size_t digest_len, char **path, hs_error *e)
{
    char name[65];
    hs_sigcache_name(key_sha256, alg, digest, digest_len, name);
    if (asprintf(path, "%s/%s", c->dir, name) < 0) {
        *path = NULL;
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    return HS_OK;
}

hs_result hs_sigcache_format(const hs_sigcache_entry *en, char **text, size_t *len, hs_error *e)
{
    *text = NULL;
    *len = 0;
    if (en->digest_len > HS_MAX_DIGEST_LEN || en->sig_len == 0 || en->sig_len > HS_SIGCACHE_SIG_MAX)
        return hs_fail(e, HS_E_INTERNAL, "signature cache entry with bad lengths");
    char key[65], digest[2 * HS_MAX_DIGEST_LEN + 1], sig[2 * HS_SIGCACHE_SIG_MAX + 1];
    hs_hex_encode(en->key_sha256, 32, key);
    hs_hex_encode(en->digest, en->digest_len, digest);
    hs_hex_encode(en->sig, en->sig_len, sig);
    int n = asprintf(text, HS_SIGCACHE_MAGIC "\nkey_sha256 %s\nalg %s\ndigest %s\nsig %s\n"
                           "audit_seq %" PRIu64 "\naudit_batch %s\n",
                     key, hs_sig_alg_name(en->alg), digest, sig, en->seq, en->batch);
    if (n < 0) {
        *text = NULL;
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    *len = (size_t)n;
    return HS_OK;
}

/* The next line "NAME VALUE\n" into *value (NUL-terminated in place). */
static bool field(char **cur, const char *name, char **value)
{
    size_t n = strlen(name);
    char *line = *cur, *nl = strchr(line, '\n');
    if (nl == NULL || strncmp(line, name, n) != 0 || line[n] != ' ')
        return false;
    *nl = '\0';
    *value = line + n + 1;
    *cur = nl + 1;
    return true;
}

static bool hex_field(char **cur, const char *name, uint8_t *out, size_t max, size_t *len)
{
    char *v;
    if (!field(cur, name, &v))
        return false;
    size_t hl = strlen(v);
    if (hl == 0 || hl % 2 != 0 || hl / 2 > max || strspn(v, "0123456789abcdef") != hl)
        return false; /* one spelling: what hs_sigcache_format writes */
    *len = hl / 2;
    return hs_hex_decode(v, out, *len);
}

static bool seq_field(char **cur, uint64_t *seq)
{
    char *v, *end;
    if (!field(cur, "audit_seq", &v) || v[0] < '0' || v[0] > '9')
        return false;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    *seq = x;
    return errno == 0 && *end == '\0';
}

static bool parse_fields(char *cur, hs_sigcache_entry *en)
{
    size_t klen = 0;
    char *alg, *batch;
    if (!hex_field(&cur, "key_sha256", en->key_sha256, 32, &klen) || klen != 32)
        return false;
    if (!field(&cur, "alg", &alg) || !hs_sig_alg_parse(alg, &en->alg))
        return false;
    if (!hex_field(&cur, "digest", en->digest, HS_MAX_DIGEST_LEN, &en->digest_len) ||
        en->digest_len != hs_sig_alg_digest_len(en->alg))
        return false;
    if (!hex_field(&cur, "sig", en->sig, HS_SIGCACHE_SIG_MAX, &en->sig_len))
        return false;
    if (!seq_field(&cur, &en->seq) || !field(&cur, "audit_batch", &batch) ||
        strlen(batch) > HS_SIGCACHE_BATCH_MAX)
        return false;
    snprintf(en->batch, sizeof en->batch, "%s", batch);
    return *cur == '\0';
}

hs_result hs_sigcache_parse(const char *text, size_t len, hs_sigcache_entry *en, hs_error *e)
{
    memset(en, 0, sizeof *en);
    size_t ml = strlen(HS_SIGCACHE_MAGIC);
    if (len > HS_SIGCACHE_FILE_MAX || memchr(text, '\0', len) != NULL || len < ml + 1 ||
        memcmp(text, HS_SIGCACHE_MAGIC "\n", ml + 1) != 0)
        return hs_fail(e, HS_E_FORMAT, "not a signature cache entry (version 1)");
    char *copy = strndup(text + ml + 1, len - ml - 1);
    if (copy == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    bool ok = parse_fields(copy, en);
    free(copy);
    return ok ? HS_OK : hs_fail(e, HS_E_FORMAT, "malformed signature cache entry");
}

/* Reads an entry file: a regular file of ours, not followed through a
 * link, of bounded size. */
static hs_result read_entry(const char *path, char **text, size_t *len, bool *found, hs_error *e)
{
    *text = NULL;
    int fd;
    uint64_t size;
    hs_result r = hs_privdir_open_file(path, HS_SIGCACHE_FILE_MAX, &fd, &size, found, e);
    if (r != HS_OK || !*found)
        return r;
    if ((*text = malloc(HS_SIGCACHE_FILE_MAX + 1)) == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    ssize_t got = r == HS_OK ? read(fd, *text, HS_SIGCACHE_FILE_MAX + 1) : -1;
    if (r == HS_OK && (got < 0 || got > HS_SIGCACHE_FILE_MAX))
        r = hs_fail(e, HS_E_FORMAT, "%s: cannot read it", path);
    close(fd);
    if (r != HS_OK) {
        free(*text);
        *text = NULL;
        return r;
    }
    *len = (size_t)got;
    return HS_OK;
}

hs_result hs_sigcache_lookup(hs_sigcache *c, const uint8_t key_sha256[32], hs_sig_alg alg,
                             const uint8_t *digest, size_t digest_len, hs_sigcache_entry *en,
                             bool *found, hs_error *e)
{
    *found = false;
    char *path = NULL, *text = NULL;
    size_t len = 0;
    hs_result r = entry_path(c, key_sha256, alg, digest, digest_len, &path, e);
    if (r == HS_OK)
        r = read_entry(path, &text, &len, found, e);
    if (r != HS_OK || !*found)
        goto out;
    r = hs_sigcache_parse(text, len, en, e);
    /* A file renamed to another request's name would otherwise hand out
     * that request's (valid) signature for this one. */
    if (r == HS_OK && (!hs_ct_equal(en->key_sha256, key_sha256, 32) || en->alg != alg ||
                       en->digest_len != digest_len ||
                       !hs_ct_equal(en->digest, digest, digest_len)))
        r = hs_fail(e, HS_E_FORMAT, "it records another key, algorithm or digest than its name");
    if (r != HS_OK && r != HS_E_NOMEM && path != NULL && strstr(e->msg, path) == NULL)
        hs_error_prefix(e, "%s: ", path);
out:
    free(text);
    free(path);
    return r;
}

hs_result hs_sigcache_store(hs_sigcache *c, const hs_sigcache_entry *en, hs_error *e)
{
    char *path = NULL, *text = NULL;
    size_t len = 0;
    hs_result r = entry_path(c, en->key_sha256, en->alg, en->digest, en->digest_len, &path, e);
    if (r == HS_OK)
        r = hs_sigcache_format(en, &text, &len, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(path, text, len, 0600, false, e);
    free(text);
    free(path);
    return r;
}

hs_result hs_sigcache_drop(hs_sigcache *c, const uint8_t key_sha256[32], hs_sig_alg alg,
                           const uint8_t *digest, size_t digest_len, hs_error *e)
{
    char *path = NULL;
    hs_result r = entry_path(c, key_sha256, alg, digest, digest_len, &path, e);
    if (r == HS_OK && unlink(path) != 0 && errno != ENOENT)
        r = hs_fail(e, HS_E_IO, "signature cache %s: cannot remove: %s", path, strerror(errno));
    free(path);
    return r;
}

static bool is_entry_name(const char *name)
{
    if (strlen(name) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    return true;
}

/* Visits the entry files of the cache: counts them, removing them when
 * asked. */
static hs_result walk(hs_sigcache *c, bool remove, size_t *entries, uint64_t *bytes, hs_error *e)
{
    *entries = 0;
    *bytes = 0;
    DIR *d = opendir(c->dir);
    if (d == NULL)
        return hs_fail(e, HS_E_IO, "signature cache %s: %s", c->dir, strerror(errno));
    hs_result r = HS_OK;
    struct dirent *de;
    while (r == HS_OK && (de = readdir(d)) != NULL) {
        struct stat st;
        if (!is_entry_name(de->d_name) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (remove && unlinkat(dirfd(d), de->d_name, 0) != 0)
            r = hs_fail(e, HS_E_IO, "signature cache %s/%s: cannot remove: %s", c->dir,
                        de->d_name, strerror(errno));
        (*entries)++;
        *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return r;
}

hs_result hs_sigcache_count(hs_sigcache *c, size_t *entries, uint64_t *bytes, hs_error *e)
{
    return walk(c, false, entries, bytes, e);
}

hs_result hs_sigcache_clear(hs_sigcache *c, size_t *removed, hs_error *e)
{
    uint64_t bytes;
    return walk(c, true, removed, &bytes, e);
}
