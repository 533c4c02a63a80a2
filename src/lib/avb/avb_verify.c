#include "avb/avb_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rsa.h>

#include "avb/avb_bytes.h"
#include "avb/avb_desc.h"
#include "avb/avb_hashtree.h"
#include "avb/avb_pubkey.h"
#include "util/encoding.h"

#define HASH_READ_CHUNK (1024 * 1024)
#define MAX_CHAIN_DEPTH 4

hs_result hs_avb_rsa_verify(EVP_PKEY *key, const hs_avb_alg *alg, const uint8_t *digest,
                            const uint8_t *sig, size_t sig_len, const char *what, hs_error *e)
{
    EVP_PKEY_CTX *ctx = key ? EVP_PKEY_CTX_new(key, NULL) : NULL;
    int ok = ctx != NULL && EVP_PKEY_verify_init(ctx) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_PKEY_CTX_set_signature_md(ctx, hs_avb_alg_md(alg)) > 0 &&
             EVP_PKEY_verify(ctx, sig, sig_len, digest, alg->hash_len) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY, "%s: %s signature does not verify with the public key", what,
                       alg->name);
    return HS_OK;
}

hs_result hs_avb_vbmeta_verify_signature(const hs_avb_vbmeta *v, const char *what, hs_error *e)
{
    const hs_avb_alg *alg = v->alg;
    if (alg->hash_len == 0)
        return HS_OK;
    uint8_t digest[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, hs_avb_alg_md(alg), NULL) &&
             EVP_DigestUpdate(ctx, v->header.p, v->header.len) &&
             EVP_DigestUpdate(ctx, v->aux.p, v->aux.len) && EVP_DigestFinal_ex(ctx, digest, NULL);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "%s: hashing the vbmeta struct failed", what);
    if (!hs_ct_equal(digest, v->hash.p, alg->hash_len))
        return hs_fail(e, HS_E_VERIFY, "%s: vbmeta hash does not match header and auxiliary block",
                       what);
    EVP_PKEY *key = NULL;
    hs_result r = hs_avb_pubkey_decode(v->public_key.p, v->public_key.len, what, &key, NULL, e);
    if (r == HS_OK)
        r = hs_avb_rsa_verify(key, alg, digest, v->signature.p, v->signature.len, what, e);
    EVP_PKEY_free(key);
    return r;
}

/* dir/NAME.ext beside the image being verified. */
static char *partition_path(const char *image_path, hs_avb_bytes name)
{
    const char *slash = strrchr(image_path, '/');
    const char *base = slash ? slash + 1 : image_path;
    const char *dot = strrchr(base, '.');
    const char *ext = dot ? dot : "";
    size_t dir_len = (size_t)(base - image_path), ext_len = strlen(ext);
    char *p = malloc(dir_len + name.len + ext_len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, image_path, dir_len);
    memcpy(p + dir_len, name.p, name.len);
    memcpy(p + dir_len + name.len, ext, ext_len + 1); /* with its NUL */
    return p;
}

/* The image of a hash or hashtree descriptor's partition: a plain name
 * beside the image (or, with no name, the image itself), opened only as a
 * regular file that is not a symlink, and without blocking (a FIFO named
 * like a partition used to hang verification). */
static hs_result open_partition(const hs_avb_image *img, const hs_avb_desc *d, char **path, int *fd,
                                hs_error *e)
{
    hs_result r = hs_avb_partition_name_check(d->partition_name.p, d->partition_name.len, true,
                                              img->path, e);
    if (r != HS_OK)
        return r;
    *path = d->partition_name.len ? partition_path(img->path, d->partition_name)
                                  : strdup(img->path);
    if (*path == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    /* The image being verified (a footer's own hash descriptor) was named
     * by the caller, or already opened without following a link. */
    bool self = strcmp(*path, img->path) == 0;
    r = hs_avb_open_regular(*path, self, fd, e);
    if (r != HS_OK) {
        hs_error_prefix(e, "partition image: ");
        free(*path);
        *path = NULL;
    }
    return r;
}

static hs_result hash_file_prefix(int fd, const char *path, const EVP_MD *md, hs_avb_bytes salt,
                                  uint64_t size, uint8_t *digest, hs_error *e)
{
    uint8_t *buf = malloc(HASH_READ_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    hs_result r = HS_OK;
    if (buf == NULL || ctx == NULL || !EVP_DigestInit_ex(ctx, md, NULL) ||
        !EVP_DigestUpdate(ctx, salt.p, salt.len))
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    for (uint64_t pos = 0; pos < size && r == HS_OK;) {
        size_t n = size - pos < HASH_READ_CHUNK ? (size_t)(size - pos) : HASH_READ_CHUNK;
        r = hs_avb_pread_all(fd, buf, n, pos, path, e);
        if (r == HS_OK && !EVP_DigestUpdate(ctx, buf, n))
            r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", path);
        pos += n;
    }
    if (r == HS_OK && !EVP_DigestFinal_ex(ctx, digest, NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", path);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return r;
}

static hs_result verify_hash(const hs_avb_image *img, const hs_avb_desc *d, hs_error *e)
{
    char *path;
    int fd;
    hs_result r = open_partition(img, d, &path, &fd, e);
    if (r != HS_OK)
        return r;
    uint8_t digest[EVP_MAX_MD_SIZE];
    r = hash_file_prefix(fd, path, hs_avb_hash_md(d->hash_algorithm), d->salt, d->image_size,
                         digest, e);
    if (r == HS_OK && d->digest.len > 0 && !hs_ct_equal(digest, d->digest.p, d->digest.len))
        r = hs_fail(e, HS_E_VERIFY, "%s: %s digest does not match the hash descriptor in %s", path,
                    d->hash_algorithm, img->path);
    close(fd);
    free(path);
    return r;
}

static hs_result verify_hashtree(const hs_avb_image *img, const hs_avb_desc *d, hs_error *e)
{
    char *path;
    int fd;
    hs_result r = open_partition(img, d, &path, &fd, e);
    if (r != HS_OK)
        return r;
    hs_avb_hashtree t = {0};
    uint8_t *ondisk = NULL;
    if (d->hash_block_size != d->data_block_size) {
        r = hs_fail(e, HS_E_FORMAT, "%s: hashtree descriptor block sizes differ (%u, %u)",
                    img->path, d->data_block_size, d->hash_block_size);
        goto out;
    }
    r = hs_avb_hashtree_build(fd, path, d->image_size, d->image_size, d->data_block_size,
                              hs_avb_hash_md(d->hash_algorithm), d->salt.p, d->salt.len, -1, NULL,
                              &t, e);
    if (r != HS_OK)
        goto out;
    if (d->digest.len > 0 &&
        (d->digest.len != t.root_len || !hs_ct_equal(t.root, d->digest.p, t.root_len))) {
        r = hs_fail(e, HS_E_VERIFY,
                    "%s: hash tree root does not match the hashtree descriptor in %s", path,
                    img->path);
        goto out;
    }
    if (t.tree_size != d->tree_size) {
        r = hs_fail(e, HS_E_VERIFY, "%s: descriptor tree size %llu, expected %llu", path,
                    (unsigned long long)d->tree_size, (unsigned long long)t.tree_size);
        goto out;
    }
    if (t.tree_size > 0) {
        ondisk = malloc((size_t)t.tree_size);
        if (ondisk == NULL) {
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
            goto out;
        }
        r = hs_avb_pread_all(fd, ondisk, (size_t)t.tree_size, d->tree_offset, path, e);
        if (r == HS_OK && memcmp(ondisk, t.tree, (size_t)t.tree_size) != 0)
            r = hs_fail(e, HS_E_VERIFY, "%s: stored hash tree at offset %llu contains invalid data",
                        path, (unsigned long long)d->tree_offset);
    }
out:
    free(ondisk);
    hs_avb_hashtree_free(&t);
    close(fd);
    free(path);
    return r;
}

static hs_result verify_path(const char *path, const hs_avb_bytes *expected_key,
                             const hs_avb_verify_opts *o, int depth, hs_avb_verify_report *rep,
                             hs_error *e);

static const hs_avb_expected_chain *find_chain(const hs_avb_verify_opts *o, hs_avb_bytes name)
{
    for (size_t i = 0; i < o->n_chains; i++)
        if (strlen(o->chains[i].partition_name) == name.len &&
            memcmp(o->chains[i].partition_name, name.p, name.len) == 0)
            return &o->chains[i];
    return NULL;
}

static hs_result verify_chain(const hs_avb_image *img, const hs_avb_desc *d,
                              const hs_avb_verify_opts *o, int depth, hs_avb_verify_report *rep,
                              hs_error *e)
{
    /* Before anything else: the name is untrusted until the signature of
     * the chained image is checked, and it names the file to open. */
    hs_result r = hs_avb_partition_name_check(d->partition_name.p, d->partition_name.len, false,
                                              img->path, e);
    if (r != HS_OK)
        return r;
    const hs_avb_expected_chain *x = find_chain(o, d->partition_name);
    int nlen = (int)d->partition_name.len;
    if (x != NULL) {
        if (x->rollback_index_location != d->rollback_index_location)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: chain partition %.*s uses rollback index location %u, expected %u",
                           img->path, nlen, (const char *)d->partition_name.p,
                           d->rollback_index_location, x->rollback_index_location);
        if (x->public_key_len != d->public_key.len ||
            memcmp(x->public_key, d->public_key.p, d->public_key.len) != 0)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: chain partition %.*s carries a different public key than expected",
                           img->path, nlen, (const char *)d->partition_name.p);
    } else if (!o->follow_chain_partitions) {
        return hs_fail(
            e, HS_E_VERIFY,
            "%s: no expected key for chain partition %.*s (give one, or follow chain partitions)",
            img->path, nlen, (const char *)d->partition_name.p);
    }
    rep->chains_checked++;
    if (!o->follow_chain_partitions)
        return HS_OK;
    char *path = partition_path(img->path, d->partition_name);
    if (path == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    r = verify_path(path, &d->public_key, o, depth + 1, rep, e);
    free(path);
    return r;
}

static hs_result verify_descriptors(const hs_avb_image *img, const hs_avb_verify_opts *o, int depth,
                                    hs_avb_verify_report *rep, hs_error *e)
{
    hs_result r = HS_OK;
    for (size_t i = 0; i < img->vbmeta.n_descs && r == HS_OK; i++) {
        const hs_avb_desc *d = &img->vbmeta.descs[i];
        switch (d->tag) {
        case HS_AVB_DESC_HASH:
            if ((r = verify_hash(img, d, e)) == HS_OK)
                rep->hashes_checked++;
            break;
        case HS_AVB_DESC_HASHTREE:
            if ((r = verify_hashtree(img, d, e)) == HS_OK)
                rep->hashtrees_checked++;
            break;
        case HS_AVB_DESC_CHAIN_PARTITION:
            r = verify_chain(img, d, o, depth, rep, e);
            break;
        default: break;
        }
    }
    return r;
}

static hs_result verify_path(const char *path, const hs_avb_bytes *expected_key,
                             const hs_avb_verify_opts *o, int depth, hs_avb_verify_report *rep,
                             hs_error *e)
{
    if (depth > MAX_CHAIN_DEPTH)
        return hs_fail(e, HS_E_FORMAT, "%s: chain partitions nested too deeply", path);
    hs_avb_image img;
    /* Chained images (depth > 0) are named by a descriptor: no symlinks. */
    hs_result r = depth == 0 ? hs_avb_image_load(path, &img, e)
                             : hs_avb_partition_image_load(path, &img, e);
    if (r != HS_OK)
        return r;
    r = hs_avb_vbmeta_verify_signature(&img.vbmeta, path, e);
    if (r == HS_OK && expected_key != NULL &&
        (expected_key->len != img.vbmeta.public_key.len ||
         memcmp(expected_key->p, img.vbmeta.public_key.p, expected_key->len) != 0 ||
         img.vbmeta.alg->hash_len == 0))
        r = hs_fail(e, HS_E_VERIFY, "%s: embedded public key does not match the expected key",
                    path);
    if (r == HS_OK) {
        rep->vbmeta_checked++;
        if (img.vbmeta.alg->hash_len == 0)
            rep->unsigned_vbmeta++;
        r = verify_descriptors(&img, o, depth, rep, e);
    }
    hs_avb_image_free(&img);
    return r;
}

hs_result hs_avb_verify_image(const char *path, const hs_avb_verify_opts *opts,
                              hs_avb_verify_report *report, hs_error *e)
{
    hs_avb_verify_opts none = {0};
    const hs_avb_verify_opts *o = opts ? opts : &none;
    memset(report, 0, sizeof *report);
    hs_avb_bytes key = {o->expected_public_key, o->expected_public_key_len};
    return verify_path(path, o->expected_public_key ? &key : NULL, o, 0, report, e);
}
