#include "avb/avb_footer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "avb/avb_alg.h"
#include "avb/avb_desc.h"
#include "avb/avb_bytes.h"
#include "avb/avb_hashtree.h"
#include "avb/avb_info.h"
#include "util/encoding.h"
#include "util/file.h"

#define COPY_CHUNK (4u * 1024 * 1024)
#define MAX_SALT 1024

/* The input image, opened read-only, with any existing footer stripped:
 * data_size is what will be hashed (avbtool: the footer's original size). */
typedef struct input_image {
    int fd;
    mode_t mode;
    uint64_t file_size, data_size;
    bool had_footer;
} input_image;

static hs_result open_input(const char *path, input_image *in, hs_error *e)
{
    struct stat st;
    memset(in, 0, sizeof *in);
    in->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO fails below, never blocks */
    if (in->fd < 0)
        return hs_fail(e, errno == ENOENT ? HS_E_NOTFOUND : HS_E_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    if (fstat(in->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(in->fd);
        in->fd = -1;
        return hs_fail(e, HS_E_IO, "%s: not a regular file", path);
    }
    in->mode = st.st_mode & 07777;
    in->file_size = (uint64_t)st.st_size;
    hs_avb_footer f;
    hs_result r = hs_avb_image_read_footer(in->fd, path, in->file_size, &in->had_footer, &f, e);
    if (r != HS_OK) {
        close(in->fd);
        in->fd = -1;
        return r;
    }
    in->data_size = in->had_footer ? f.original_image_size : in->file_size;
    return HS_OK;
}

static hs_result check_partition_size(const char *path, uint64_t partition_size, hs_error *e)
{
    if (partition_size == 0 || partition_size % HS_AVB_BLOCK_SIZE != 0)
        return hs_fail(e, HS_E_USAGE, "%s: partition size %llu is not a non-zero multiple of %d",
                       path, (unsigned long long)partition_size, HS_AVB_BLOCK_SIZE);
    return HS_OK;
}

static hs_result get_salt(const hs_avb_footer_opts *o, size_t digest_len, uint8_t *salt,
                          size_t *salt_len, hs_error *e)
{
    if (o->salt_hex == NULL) {
        *salt_len = digest_len;
        if (RAND_bytes(salt, (int)digest_len) != 1)
            return hs_fail(e, HS_E_CRYPTO, "cannot generate a random salt");
        return HS_OK;
    }
    size_t hex_len = strlen(o->salt_hex);
    if (hex_len % 2 != 0 || hex_len / 2 > MAX_SALT ||
        !hs_hex_decode(o->salt_hex, salt, hex_len / 2))
        return hs_fail(e, HS_E_USAGE,
                       "salt \"%s\" is not an even number of hex digits (at most %d bytes)",
                       o->salt_hex, MAX_SALT);
    *salt_len = hex_len / 2;
    return HS_OK;
}

static hs_result resolve_md(const hs_avb_footer_opts *o, const char *def, const char **name,
                            const EVP_MD **md, hs_error *e)
{
    *name = o->hash_algorithm ? o->hash_algorithm : def;
    *md = hs_avb_hash_md(*name);
    if (*md == NULL)
        return hs_fail(e, HS_E_USAGE, "unsupported hash algorithm \"%s\" (sha1, sha256, sha512)",
                       *name);
    if (o->partition_name == NULL)
        return hs_fail(e, HS_E_USAGE, "a partition name is required");
    /* avbtool's default name is empty: the descriptor is the image's own. */
    return hs_avb_partition_name_check((const uint8_t *)o->partition_name,
                                       strlen(o->partition_name), true, "--partition-name", e);
}

/* Copies data_size bytes of the input to the temporary file while hashing
 * salt ‖ data. */
static hs_result copy_and_hash(const input_image *in, const char *path, hs_atomic_file *af,
                               const EVP_MD *md, const uint8_t *salt, size_t salt_len,
                               uint8_t *digest, hs_error *e)
{
    uint8_t *buf = malloc(COPY_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    hs_result r = HS_OK;
    if (buf == NULL || ctx == NULL || !EVP_DigestInit_ex(ctx, md, NULL) ||
        !EVP_DigestUpdate(ctx, salt, salt_len))
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    for (uint64_t pos = 0; pos < in->data_size && r == HS_OK;) {
        size_t n = in->data_size - pos < COPY_CHUNK ? (size_t)(in->data_size - pos) : COPY_CHUNK;
        r = hs_avb_pread_all(in->fd, buf, n, pos, path, e);
        if (r == HS_OK && !EVP_DigestUpdate(ctx, buf, n))
            r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", path);
        if (r == HS_OK)
            r = hs_atomic_write_all(af, buf, n, e);
        pos += n;
    }
    if (r == HS_OK && !EVP_DigestFinal_ex(ctx, digest, NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", path);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return r;
}

static hs_result pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off, const char *path,
                            hs_error *e)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "%s: write failed: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return HS_OK;
}

/* Writes the vbmeta blob at vbmeta_offset and the footer block at the end
 * of the partition; the gap reads as zeros (a hole, like avbtool's
 * DONT_CARE truncate). */
static hs_result write_tail(hs_atomic_file *af, const char *path, const hs_avb_buf *vbmeta,
                            uint64_t vbmeta_offset, uint64_t original_size, uint64_t partition_size,
                            hs_avb_report *rep, hs_error *e)
{
    uint64_t padded = 0;
    if (!hs_avb_round_up(vbmeta->len, HS_AVB_BLOCK_SIZE, &padded) ||
        vbmeta_offset + padded > partition_size - HS_AVB_BLOCK_SIZE)
        return hs_fail(
            e, HS_E_USAGE,
            "%s: image, metadata and footer (%llu bytes) do not fit the %llu-byte partition", path,
            (unsigned long long)(vbmeta_offset + padded + HS_AVB_BLOCK_SIZE),
            (unsigned long long)partition_size);
    hs_result r = pwrite_all(af->fd, vbmeta->data, vbmeta->len, vbmeta_offset, af->tmp_path, e);
    if (r != HS_OK)
        return r;
    uint8_t block[HS_AVB_BLOCK_SIZE];
    memset(block, 0, sizeof block);
    hs_avb_footer f = {1, 0, original_size, vbmeta_offset, vbmeta->len};
    hs_avb_footer_encode(&f, block + HS_AVB_BLOCK_SIZE - HS_AVB_FOOTER_SIZE);
    rep->original_image_size = original_size;
    rep->vbmeta_offset = vbmeta_offset;
    rep->partition_size = partition_size;
    return pwrite_all(af->fd, block, sizeof block, partition_size - HS_AVB_BLOCK_SIZE, af->tmp_path,
                      e);
}

/* The file to replace: a symlinked image is replaced at its target, as
 * avbtool's in-place update would change the target. */
static hs_result open_output(hs_atomic_file *af, const char *path, mode_t mode, hs_error *e)
{
    char *real = realpath(path, NULL);
    if (real == NULL)
        return hs_fail(e, HS_E_IO, "%s: cannot resolve path: %s", path, strerror(errno));
    hs_result r = hs_atomic_open(af, real, mode, e);
    free(real);
    return r;
}

static hs_result finish(hs_atomic_file *af, input_image *in, hs_result r, hs_error *e)
{
    if (r == HS_OK)
        r = hs_atomic_commit(af, false, e);
    hs_atomic_abort(af);
    close(in->fd);
    return r;
}

hs_result hs_avb_add_hash_footer(const char *path, const hs_avb_footer_opts *o,
                                 const hs_sign_fn *signer, hs_avb_report *rep, hs_error *e)
{
    input_image in;
    hs_atomic_file af = {.fd = -1};
    const char *alg_name;
    const EVP_MD *md;
    uint8_t salt[MAX_SALT], digest[EVP_MAX_MD_SIZE];
    size_t salt_len;
    memset(rep, 0, sizeof *rep);
    hs_result r;
    if ((r = resolve_md(o, "sha256", &alg_name, &md, e)) != HS_OK ||
        (r = check_partition_size(path, o->partition_size, e)) != HS_OK)
        return r;
    uint64_t max_metadata = HS_AVB_MAX_VBMETA_SIZE + HS_AVB_MAX_FOOTER_SIZE;
    if (o->partition_size < max_metadata)
        return hs_fail(e, HS_E_USAGE, "%s: partition size %llu is too small, needs at least %llu",
                       path, (unsigned long long)o->partition_size,
                       (unsigned long long)max_metadata);
    if ((r = get_salt(o, (size_t)EVP_MD_get_size(md), salt, &salt_len, e)) != HS_OK ||
        (r = open_input(path, &in, e)) != HS_OK)
        return r;
    hs_avb_buf desc = {0}, vbmeta = {0};
    if (in.data_size > o->partition_size - max_metadata) {
        r = hs_fail(e, HS_E_USAGE,
                    "%s: image size of %llu exceeds the maximum of %llu for a %llu-byte partition",
                    path, (unsigned long long)in.data_size,
                    (unsigned long long)(o->partition_size - max_metadata),
                    (unsigned long long)o->partition_size);
        goto out;
    }
    if ((r = open_output(&af, path, in.mode, e)) != HS_OK ||
        (r = copy_and_hash(&in, path, &af, md, salt, salt_len, digest, e)) != HS_OK)
        goto out;
    hs_avb_desc d;
    memset(&d, 0, sizeof d);
    d.image_size = in.data_size;
    snprintf(d.hash_algorithm, sizeof d.hash_algorithm, "%s", alg_name);
    d.partition_name =
        (hs_avb_bytes){(const uint8_t *)o->partition_name, strlen(o->partition_name)};
    d.salt = (hs_avb_bytes){salt, salt_len};
    d.digest = (hs_avb_bytes){digest, (size_t)EVP_MD_get_size(md)};
    if ((r = hs_avb_desc_hash(&desc, &d, e)) != HS_OK ||
        (r = hs_avb_vbmeta_build(&o->vbmeta, desc.data, desc.len, 0, signer,
                                 o->artifact ? o->artifact : path, &vbmeta, rep, e)) != HS_OK)
        goto out;
    memcpy(rep->image_digest, digest, d.digest.len);
    rep->image_digest_len = d.digest.len;
    uint64_t vbmeta_offset = 0;
    (void)hs_avb_round_up(in.data_size, HS_AVB_BLOCK_SIZE,
                          &vbmeta_offset); /* cannot overflow: data_size < partition_size */
    r = write_tail(&af, path, &vbmeta, vbmeta_offset, in.data_size, o->partition_size, rep, e);
out:
    hs_avb_buf_free(&desc);
    hs_avb_buf_free(&vbmeta);
    return finish(&af, &in, r, e);
}

/* avbtool's room check: the image plus a tree for the whole partition plus
 * metadata must fit. */
static hs_result hashtree_max_image(const char *path, uint64_t partition_size, const EVP_MD *md,
                                    uint64_t *max, hs_error *e)
{
    uint64_t max_tree;
    hs_result r = hs_avb_hashtree_size(partition_size, HS_AVB_BLOCK_SIZE, md, &max_tree, e);
    if (r != HS_OK)
        return r;
    uint64_t meta = max_tree + HS_AVB_MAX_VBMETA_SIZE + HS_AVB_MAX_FOOTER_SIZE;
    if (partition_size < meta)
        return hs_fail(e, HS_E_USAGE,
                       "%s: partition size %llu is too small for a hash tree and metadata (%llu)",
                       path, (unsigned long long)partition_size, (unsigned long long)meta);
    *max = partition_size - meta;
    return HS_OK;
}

static hs_result hashtree_descriptor(const hs_avb_footer_opts *o, const char *alg_name,
                                     uint64_t image_size, const hs_avb_hashtree *t,
                                     const uint8_t *salt, size_t salt_len, hs_avb_buf *out,
                                     hs_error *e)
{
    hs_avb_desc d;
    memset(&d, 0, sizeof d);
    d.dm_verity_version = 1;
    d.image_size = image_size;
    d.tree_offset = image_size;
    d.tree_size = t->tree_size;
    d.data_block_size = d.hash_block_size = HS_AVB_BLOCK_SIZE;
    snprintf(d.hash_algorithm, sizeof d.hash_algorithm, "%s", alg_name);
    d.partition_name =
        (hs_avb_bytes){(const uint8_t *)o->partition_name, strlen(o->partition_name)};
    d.salt = (hs_avb_bytes){salt, salt_len};
    d.digest = (hs_avb_bytes){t->root, t->root_len};
    return hs_avb_desc_hashtree(out, &d, e);
}

hs_result hs_avb_add_hashtree_footer(const char *path, const hs_avb_footer_opts *o,
                                     const hs_sign_fn *signer, hs_avb_report *rep, hs_error *e)
{
    input_image in;
    hs_atomic_file af = {.fd = -1};
    const char *alg_name;
    const EVP_MD *md;
    uint8_t salt[MAX_SALT];
    size_t salt_len;
    uint64_t max_image = 0, padded = 0;
    memset(rep, 0, sizeof *rep);
    hs_result r;
    if (!o->do_not_generate_fec)
        return hs_fail(e, HS_E_USAGE,
                       "%s: FEC generation is not supported; use do_not_generate_fec "
                       "(avbtool --do_not_generate_fec)",
                       path);
    bool dynamic = o->partition_size == 0; /* avbtool without --partition_size */
    max_image = UINT64_MAX;
    if ((r = resolve_md(o, "sha1", &alg_name, &md, e)) != HS_OK ||
        (!dynamic && (r = check_partition_size(path, o->partition_size, e)) != HS_OK) ||
        (!dynamic && (r = hashtree_max_image(path, o->partition_size, md, &max_image, e)) != HS_OK) ||
        (r = get_salt(o, (size_t)EVP_MD_get_size(md), salt, &salt_len, e)) != HS_OK ||
        (r = open_input(path, &in, e)) != HS_OK)
        return r;
    if (dynamic && in.file_size % HS_AVB_BLOCK_SIZE != 0) {
        r = hs_fail(e, HS_E_USAGE, "%s: file size of %llu is not a multiple of the image block "
                    "size %d", path, (unsigned long long)in.file_size, HS_AVB_BLOCK_SIZE);
        close(in.fd);
        return r;
    }
    hs_avb_buf desc = {0}, vbmeta = {0};
    hs_avb_hashtree t = {0};
    if (!hs_avb_round_up(in.data_size, HS_AVB_BLOCK_SIZE, &padded) || padded > max_image ||
        padded == 0) {
        r = hs_fail(e, HS_E_USAGE,
                    "%s: image size of %llu exceeds the maximum of %llu for a %llu-byte partition",
                    path, (unsigned long long)in.data_size, (unsigned long long)max_image,
                    (unsigned long long)o->partition_size);
        goto out;
    }
    if ((r = open_output(&af, path, in.mode, e)) != HS_OK ||
        (r = hs_avb_hashtree_build(in.fd, path, in.data_size, padded, HS_AVB_BLOCK_SIZE, md, salt,
                                   salt_len, af.fd, af.tmp_path, &t, e)) != HS_OK ||
        (r = hs_atomic_write_all(&af, t.tree, (size_t)t.tree_size, e)) != HS_OK ||
        (r = hashtree_descriptor(o, alg_name, padded, &t, salt, salt_len, &desc, e)) != HS_OK ||
        (r = hs_avb_vbmeta_build(&o->vbmeta, desc.data, desc.len, 0, signer,
                                 o->artifact ? o->artifact : path, &vbmeta, rep, e)) != HS_OK)
        goto out;
    memcpy(rep->image_digest, t.root, t.root_len);
    rep->image_digest_len = t.root_len;
    rep->tree_offset = padded;
    rep->tree_size = t.tree_size;
    uint64_t vbmeta_offset = padded + t.tree_size, partition_size = o->partition_size;
    if (dynamic) { /* vbmeta padded to a block, then the footer block */
        uint64_t vb_padded = 0;
        (void)hs_avb_round_up(vbmeta.len, HS_AVB_BLOCK_SIZE, &vb_padded); /* vbmeta is small */
        partition_size = vbmeta_offset + vb_padded + HS_AVB_BLOCK_SIZE;
    }
    r = write_tail(&af, path, &vbmeta, vbmeta_offset, in.data_size, partition_size, rep, e);
out:
    hs_avb_hashtree_free(&t);
    hs_avb_buf_free(&desc);
    hs_avb_buf_free(&vbmeta);
    return finish(&af, &in, r, e);
}
