/* The artifact cache (see artcache.h, docs/cache.md). */
#include "signer/artcache.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/encoding.h"
#include "util/privdir.h"

/* A cached APK is read back whole by nothing: it is copied in blocks. */
#define OUTPUT_MAX ((uint64_t)4 << 30)
#define COPY_BLOCK 65536

struct hs_artcache {
    char *dir;
};

hs_result hs_artcache_open(const char *dir, hs_artcache **out, hs_error *e)
{
    *out = NULL;
    hs_result r = hs_privdir_open(dir, "artifact cache", "--artifact-cache", e);
    if (r != HS_OK)
        return r;
    hs_artcache *c = calloc(1, sizeof *c);
    if (c == NULL || (c->dir = strdup(dir)) == NULL) {
        free(c);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    *out = c;
    return HS_OK;
}

void hs_artcache_free(hs_artcache *c)
{
    if (c == NULL)
        return;
    free(c->dir);
    free(c);
}

const char *hs_artcache_dir(const hs_artcache *c)
{
    return c->dir;
}

hs_result hs_artcache_name(const uint8_t input_sha256[32], const uint8_t key_sha256[32],
                           const char *key_name, const char *options, char name[65], hs_error *e)
{
    static const char tag[] = "hsmsign artifact cache key 1";
    static const char version[] = "hsmsign " HSMSIGN_VERSION;
    /* Each variable-length part ends with its NUL, so no two keys share a
     * name. */
    const void *part[] = {tag, input_sha256, key_sha256, key_name, options, version};
    const size_t len[] = {sizeof tag, 32, 32, strlen(key_name) + 1, strlen(options) + 1,
                          sizeof version};
    uint8_t d[32];
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    bool ok = h != NULL && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < 6; i++)
        ok = EVP_DigestUpdate(h, part[i], len[i]) == 1;
    ok = ok && EVP_DigestFinal_ex(h, d, NULL) == 1;
    EVP_MD_CTX_free(h);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "artifact cache: SHA-256 failed");
    hs_hex_encode(d, 32, name);
    return HS_OK;
}

static hs_result path_of(const hs_artcache *c, const char *name, const char *ext, char **path,
                         hs_error *e)
{
    if (asprintf(path, "%s/%s.%s", c->dir, name, ext) < 0) {
        *path = NULL;
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    return HS_OK;
}

hs_result hs_artcache_meta_format(const hs_artcache_meta *m, char **text, size_t *len, hs_error *e)
{
    *text = NULL;
    *len = 0;
    size_t cap = HS_ARTCACHE_META_MAX + 1, n = 0;
    char *t = malloc(cap);
    if (t == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    int k = snprintf(t, cap, "%s\n", HS_ARTCACHE_MAGIC);
    for (size_t i = 0; k > 0 && (size_t)k < cap - n && i < m->n; i++) {
        n += (size_t)k;
        const hs_artcache_sig *s = &m->sigs[i];
        char digest[2 * HS_MAX_DIGEST_LEN + 1], tbs[65], sig[65];
        hs_hex_encode(s->digest, s->digest_len, digest);
        hs_hex_encode(s->tbs_sha256, 32, tbs);
        hs_hex_encode(s->sig_sha256, 32, sig);
        k = snprintf(t + n, cap - n, "sig %s %s %s %s %s\n", hs_sig_alg_name(s->alg), s->operation,
                     digest, tbs, sig);
    }
    if (k <= 0 || (size_t)k >= cap - n || m->n > HS_ARTCACHE_SIGS_MAX) {
        free(t);
        return hs_fail(e, HS_E_INTERNAL, "artifact cache meta too large");
    }
    *text = t;
    *len = n + (size_t)k;
    return HS_OK;
}

/* "sig ALG OP DIGEST TBS SIG": every field present, lowercase hex of the
 * right lengths. */
static bool parse_sig(char *line, hs_artcache_sig *s)
{
    char *save = NULL, *f[6];
    for (int i = 0; i < 6; i++)
        if ((f[i] = strtok_r(i == 0 ? line : NULL, " ", &save)) == NULL)
            return false;
    if (strtok_r(NULL, " ", &save) != NULL || strcmp(f[0], "sig") != 0 ||
        !hs_sig_alg_parse(f[1], &s->alg) || strlen(f[2]) >= sizeof s->operation)
        return false;
    memcpy(s->operation, f[2], strlen(f[2]) + 1);
    s->digest_len = hs_sig_alg_digest_len(s->alg);
    return strlen(f[3]) == 2 * s->digest_len && hs_hex_decode(f[3], s->digest, s->digest_len) &&
           strlen(f[4]) == 64 && hs_hex_decode(f[4], s->tbs_sha256, 32) && strlen(f[5]) == 64 &&
           hs_hex_decode(f[5], s->sig_sha256, 32);
}

hs_result hs_artcache_meta_parse(const char *text, size_t len, hs_artcache_meta *m, hs_error *e)
{
    memset(m, 0, sizeof *m);
    char *t = len <= HS_ARTCACHE_META_MAX ? strndup(text, len) : NULL;
    if (t == NULL || strlen(t) != len || len == 0 || t[len - 1] != '\n') {
        free(t);
        return hs_fail(e, HS_E_FORMAT, "not an artifact cache meta file");
    }
    char *save = NULL, *line = strtok_r(t, "\n", &save);
    bool ok = line != NULL && strcmp(line, HS_ARTCACHE_MAGIC) == 0;
    while (ok && (line = strtok_r(NULL, "\n", &save)) != NULL)
        ok = m->n < HS_ARTCACHE_SIGS_MAX && parse_sig(line, &m->sigs[m->n++]);
    free(t);
    if (!ok || m->n == 0)
        return hs_fail(e, HS_E_FORMAT, "malformed artifact cache meta (version, fields or hex)");
    return HS_OK;
}

static hs_result read_meta(const char *path, hs_artcache_meta *m, bool *found, hs_error *e)
{
    int fd;
    uint64_t size;
    hs_result r = hs_privdir_open_file(path, HS_ARTCACHE_META_MAX, &fd, &size, found, e);
    if (r != HS_OK || !*found)
        return r;
    char buf[HS_ARTCACHE_META_MAX + 1];
    ssize_t got = read(fd, buf, sizeof buf);
    close(fd);
    if (got < 0 || (uint64_t)got != size)
        return hs_fail(e, HS_E_FORMAT, "%s: cannot read it", path);
    r = hs_artcache_meta_parse(buf, (size_t)got, m, e);
    return r == HS_OK ? r : hs_error_prefix(e, "%s: ", path);
}

/* Copies fd (size bytes) into af (NULL: only hashes), hashing what it
 * copies. */
static hs_result copy_hashed(int fd, uint64_t size, const char *path, hs_atomic_file *af,
                             uint8_t sha[32], hs_error *e)
{
    uint8_t *buf = malloc(COPY_BLOCK);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    hs_result r = h != NULL && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1
                      ? HS_OK
                      : hs_fail(e, HS_E_CRYPTO, "artifact cache: SHA-256 failed");
    uint64_t done = 0;
    while (r == HS_OK && done < size) {
        ssize_t got = read(fd, buf, COPY_BLOCK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            r = hs_fail(e, HS_E_FORMAT, "%s: cannot read it (changed while read?)", path);
            break;
        }
        r = EVP_DigestUpdate(h, buf, (size_t)got) == 1
                ? (af != NULL ? hs_atomic_write_all(af, buf, (size_t)got, e) : HS_OK)
                : hs_fail(e, HS_E_CRYPTO, "artifact cache: SHA-256 failed");
        done += (uint64_t)got;
    }
    if (r == HS_OK && EVP_DigestFinal_ex(h, sha, NULL) != 1)
        r = hs_fail(e, HS_E_CRYPTO, "artifact cache: SHA-256 failed");
    EVP_MD_CTX_free(h);
    free(buf);
    return r;
}

hs_result hs_artcache_file_sha256(const char *path, uint8_t sha[32], hs_error *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    hs_result r = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                      ? copy_hashed(fd, (uint64_t)st.st_size, path, NULL, sha, e)
                      : hs_fail(e, HS_E_IO, "%s: not a regular file", path);
    close(fd);
    return r;
}

hs_result hs_artcache_fetch(hs_artcache *c, const char *name, hs_atomic_file *af,
                            hs_artcache_meta *m, uint8_t output_sha256[32], bool *found,
                            hs_error *e)
{
    *found = false;
    char *meta_path = NULL, *out_path = NULL;
    int fd = -1;
    bool meta_found = false;
    uint64_t size = 0;
    hs_result r = path_of(c, name, "meta", &meta_path, e);
    if (r == HS_OK)
        r = path_of(c, name, "out", &out_path, e);
    if (r == HS_OK)
        r = read_meta(meta_path, m, &meta_found, e);
    if (r == HS_OK && meta_found)
        r = hs_privdir_open_file(out_path, OUTPUT_MAX, &fd, &size, found, e);
    if (r == HS_OK && meta_found && !*found) /* meta without output: unusable */
        r = hs_fail(e, HS_E_FORMAT, "%s: missing", out_path);
    *found = *found || (r != HS_OK && meta_found);
    if (r == HS_OK && *found)
        r = copy_hashed(fd, size, out_path, af, output_sha256, e);
    if (fd >= 0)
        close(fd);
    free(meta_path);
    free(out_path);
    return r;
}

hs_result hs_artcache_store(hs_artcache *c, const char *name, const char *output,
                            const hs_artcache_meta *m, hs_error *e)
{
    char *meta_path = NULL, *out_path = NULL, *text = NULL;
    size_t len = 0;
    uint8_t *data = NULL;
    size_t data_len = 0;
    hs_result r = path_of(c, name, "meta", &meta_path, e);
    if (r == HS_OK)
        r = path_of(c, name, "out", &out_path, e);
    if (r == HS_OK)
        r = hs_artcache_meta_format(m, &text, &len, e);
    if (r == HS_OK)
        r = hs_read_file(output, (size_t)OUTPUT_MAX, &data, &data_len, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(out_path, data, data_len, 0600, false, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(meta_path, text, len, 0600, false, e);
    free(data);
    free(text);
    free(meta_path);
    free(out_path);
    return r;
}

hs_result hs_artcache_drop(hs_artcache *c, const char *name, hs_error *e)
{
    hs_result r = HS_OK;
    static const char *const exts[] = {"meta", "out"};
    for (size_t i = 0; r == HS_OK && i < 2; i++) {
        char *path = NULL;
        r = path_of(c, name, exts[i], &path, e);
        if (r == HS_OK && unlink(path) != 0 && errno != ENOENT)
            r = hs_fail(e, HS_E_IO, "artifact cache %s: cannot remove: %s", path,
                        strerror(errno));
        free(path);
    }
    return r;
}
