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
#include "avb/avb_inplace.h"
#include "util/encoding.h"
#include "util/file.h"

#define COPY_CHUNK (4u * 1024 * 1024)
#define MAX_SALT 1024

/* The input image with any existing footer stripped: data_size is what
 * will be hashed (avbtool: the footer's original size; after an
 * interrupted in-place write, the size its pending record names). It is
 * opened for writing when it can be, for the in-place path. */
typedef struct input_image {
    int fd;
    bool writable;
    mode_t mode;
    uint64_t file_size, data_size;
    bool had_footer, pending;
} input_image;

static int open_image_fd(const char *path, bool *writable)
{
    /* O_NONBLOCK: a FIFO fails the regular-file check, never blocks. */
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    *writable = fd >= 0;
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == ETXTBSY || errno == EPERM))
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    return fd;
}

static hs_result read_layout(input_image *in, const char *path, hs_error *e)
{
    hs_avb_footer f;
    hs_result r = hs_avb_image_read_footer(in->fd, path, in->file_size, &in->had_footer, &f, e);
    if (r != HS_OK)
        return r;
    in->data_size = in->had_footer ? f.original_image_size : in->file_size;
    if (!in->had_footer)
        r = hs_avb_inplace_pending(in->fd, path, in->file_size, &in->pending, &in->data_size, e);
    return r;
}

static hs_result open_input(const char *path, input_image *in, hs_error *e)
{
    struct stat st;
    memset(&st, 0, sizeof st);
    memset(in, 0, sizeof *in);
    in->fd = open_image_fd(path, &in->writable);
    if (in->fd < 0)
        return hs_fail(e, errno == ENOENT ? HS_E_NOTFOUND : HS_E_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    hs_result r = HS_OK;
    if (fstat(in->fd, &st) != 0 || !S_ISREG(st.st_mode))
        r = hs_fail(e, HS_E_IO, "%s: not a regular file", path);
    in->mode = st.st_mode & 07777;
    in->file_size = (uint64_t)st.st_size;
    if (r == HS_OK)
        r = read_layout(in, path, e);
    if (r != HS_OK) {
        close(in->fd);
        in->fd = -1;
    }
    return r;
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

/* Where the new tail goes. In place (an image without a footer that we
 * can write): the image itself, under the protocol of avb_inplace.h, so
 * the inode and the original bytes stay and nothing is copied. Otherwise
 * (re-signing an image with a footer, whose signed vbmeta pins the old
 * hash tree at the very offsets the new one needs, or a read-only file): a
 * copy of the image in a temporary file renamed over it. */
typedef struct footer_out {
    bool in_place;
    hs_atomic_file af;
    hs_avb_inplace ip;
    int fd;           /* the tail's file: the image or the temporary copy */
    const char *what; /* its name, for errors */
} footer_out;

/* The file to replace: a symlinked image is replaced at its target, as
 * avbtool's in-place update would change the target. */
static hs_result open_copy(footer_out *out, const char *path, mode_t mode, hs_error *e)
{
    char *real = realpath(path, NULL);
    if (real == NULL)
        return hs_fail(e, HS_E_IO, "%s: cannot resolve path: %s", path, strerror(errno));
    hs_result r = hs_atomic_open(&out->af, real, mode, e);
    free(real);
    out->fd = out->af.fd;
    out->what = out->af.tmp_path;
    return r;
}

static hs_result open_output(footer_out *out, const input_image *in, const char *path,
                             uint64_t partition_size, hs_error *e)
{
    memset(out, 0, sizeof *out);
    out->af.fd = -1;
    /* Without a partition size (avbtool's default for APEX payloads) the
     * footer's place is known only once the vbmeta is built, too late for
     * the pending record: such images (small, temporary) are copied. */
    out->in_place = in->writable && !in->had_footer && partition_size != 0;
    if (!out->in_place)
        return open_copy(out, path, in->mode, e);
    out->fd = in->fd;
    out->what = path;
    return hs_avb_inplace_begin(&out->ip, in->fd, path, in->data_size, partition_size, e);
}

/* Hashes salt ‖ the data_size bytes of the input; for a copy, writes them
 * to the temporary file on the way. */
static hs_result hash_data(const input_image *in, const char *path, footer_out *out,
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
        if (r == HS_OK && !out->in_place)
            r = hs_atomic_write_all(&out->af, buf, n, e);
        pos += n;
    }
    if (r == HS_OK && !EVP_DigestFinal_ex(ctx, digest, NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", path);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return r;
}

/* Writes the vbmeta blob at vbmeta_offset and the footer block at the end
 * of the partition; the gap reads as zeros (a hole, like avbtool's
 * DONT_CARE truncate). In place the footer is the publishing write. */
static hs_result write_tail(footer_out *out, const char *path, const hs_avb_buf *vbmeta,
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
    hs_result r =
        hs_avb_pwrite_all(out->fd, vbmeta->data, vbmeta->len, vbmeta_offset, out->what, e);
    if (r != HS_OK)
        return r;
    uint8_t block[HS_AVB_BLOCK_SIZE];
    memset(block, 0, sizeof block);
    hs_avb_footer f = {1, 0, original_size, vbmeta_offset, vbmeta->len};
    uint8_t *footer = block + HS_AVB_BLOCK_SIZE - HS_AVB_FOOTER_SIZE;
    hs_avb_footer_encode(&f, footer);
    rep->original_image_size = original_size;
    rep->vbmeta_offset = vbmeta_offset;
    rep->partition_size = partition_size;
    if (out->in_place) /* the zeros before it were written by begin */
        return hs_avb_inplace_publish(&out->ip, footer, e);
    return hs_avb_pwrite_all(out->fd, block, sizeof block, partition_size - HS_AVB_BLOCK_SIZE,
                             out->what, e);
}

static hs_result finish(footer_out *out, input_image *in, hs_result r, hs_error *e)
{
    if (r == HS_OK && !out->in_place)
        r = hs_atomic_commit(&out->af, false, e);
    hs_atomic_abort(&out->af);
    if (r != HS_OK && out->in_place)
        hs_avb_inplace_rollback(&out->ip);
    close(in->fd);
    return r;
}

hs_result hs_avb_add_hash_footer(const char *path, const hs_avb_footer_opts *o,
                                 const hs_sign_fn *signer, hs_avb_report *rep, hs_error *e)
{
    input_image in;
    footer_out out = {.af = {.fd = -1}};
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
    if ((r = open_output(&out, &in, path, o->partition_size, e)) != HS_OK ||
        (r = hash_data(&in, path, &out, md, salt, salt_len, digest, e)) != HS_OK)
        goto out;
    hs_avb_inplace_crash_point(2);
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
    r = write_tail(&out, path, &vbmeta, vbmeta_offset, in.data_size, o->partition_size, rep, e);
out:
    hs_avb_buf_free(&desc);
    hs_avb_buf_free(&vbmeta);
    return finish(&out, &in, r, e);
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
    footer_out out = {.af = {.fd = -1}};
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
    /* In place the image is only read (its zero padding to a block is a
     * hole past the old end); a copy gets the padded image from the same
     * pass. The tree goes right after the padded image either way. */
    if ((r = open_output(&out, &in, path, o->partition_size, e)) != HS_OK ||
        (r = hs_avb_hashtree_build(in.fd, path, in.data_size, padded, HS_AVB_BLOCK_SIZE, md, salt,
                                   salt_len, out.in_place ? -1 : out.fd, out.what, &t, e)) !=
            HS_OK ||
        (r = hs_avb_pwrite_all(out.fd, t.tree, (size_t)t.tree_size, padded, out.what, e)) != HS_OK)
        goto out;
    hs_avb_inplace_crash_point(2);
    if ((r = hashtree_descriptor(o, alg_name, padded, &t, salt, salt_len, &desc, e)) != HS_OK ||
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
    r = write_tail(&out, path, &vbmeta, vbmeta_offset, in.data_size, partition_size, rep, e);
out:
    hs_avb_hashtree_free(&t);
    hs_avb_buf_free(&desc);
    hs_avb_buf_free(&vbmeta);
    return finish(&out, &in, r, e);
}
